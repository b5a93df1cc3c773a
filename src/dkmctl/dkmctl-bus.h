/* SPDX-License-Identifier: MIT */
/* dkmctl's client of org.dkm.KeyManager1 (docs/DBUS-API.md): one function per method, plain C
 * results. dkmctl-bus.c is the only dkmctl file that includes sd-bus.h. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

typedef struct CtlBus CtlBus;

/* Why a call failed: the D-Bus error name and message dkmd (or the bus) answered with, or no
 * name and a local reason. unreachable: the system bus itself could not be reached. */
typedef struct CtlError {
        char *name;
        char *message;
        bool unreachable;
} CtlError;

#define CTL_ERROR_NULL                                                                                                 \
        {}
void ctl_error_done(CtlError *e);

typedef struct CtlGeneration {
        uint32_t number;
        char state[16];                                                     /* pending, active, archived, retired */
        uint64_t created_usec, activated_usec, archived_usec, retired_usec; /* CLOCK_REALTIME, 0 = not yet */
} CtlGeneration;

/* A group object's properties. */
typedef struct CtlGroup {
        char *name;
        char *path;
        char *algorithm;
        uint32_t gid;
        uint32_t active;    /* 0 = none */
        uint32_t pending;   /* 0 = none */
        uint64_t next_usec; /* NextRolloverUSec: the next scheduled step, 0 = none */
        uint64_t rollover_period_usec, propagation_delay_usec;
        uint32_t hot_window;
        bool allow_human_members;
        CtlGeneration *generations;
        size_t n_generations;
} CtlGroup;

void ctl_group_done(CtlGroup *g);
void ctl_groups_free(CtlGroup *groups, size_t n);

/* The a{sv} options of CreateGroup and SetPolicy: only the fields marked as given are sent, so
 * dkmd's defaults (CreateGroup) or the group's values (SetPolicy) hold for the others. */
typedef struct CtlPolicy {
        const char *algorithm; /* CreateGroup only; NULL: not sent */
        bool has_rollover_period, has_propagation_delay, has_hot_window, has_allow_human_members;
        uint64_t rollover_period_usec, propagation_delay_usec;
        uint32_t hot_window;
        bool allow_human_members;
} CtlPolicy;

/* Every function returns 0 or a negative errno with *e filled (e may not be NULL). */
int ctl_bus_open(CtlBus **ret, CtlError *e);
CtlBus *ctl_bus_free(CtlBus *b);
static inline void ctl_bus_freep(CtlBus **b) {
        *b = ctl_bus_free(*b);
}
#define _cleanup_ctl_bus_ _cleanup_(ctl_bus_freep)

/* The manager's properties Version and StoreUnlocked. */
int ctl_manager_get(CtlBus *b, char **ret_version, bool *ret_unlocked, CtlError *e);
/* ListGroups, then every group's properties, in the order dkmd lists them (by name). */
int ctl_groups_get_all(CtlBus *b, CtlGroup **ret, size_t *ret_n, CtlError *e);
/* GetGroup(name), then its properties. */
int ctl_group_get(CtlBus *b, const char *name, CtlGroup *ret, CtlError *e);

int ctl_group_create(CtlBus *b, const char *name, uint32_t gid, const CtlPolicy *p, CtlError *e);
int ctl_group_set_policy(CtlBus *b, const char *name, const CtlPolicy *p, CtlError *e);
int ctl_group_rollover(CtlBus *b, const char *name, uint32_t *ret_generation, CtlError *e);
int ctl_group_archive(CtlBus *b, const char *name, uint32_t generation, CtlError *e);
int ctl_group_retire(CtlBus *b, const char *name, uint32_t generation, CtlError *e);
int ctl_group_load(CtlBus *b, const char *name, CtlError *e);
/* Reload(): the problems (a NULL-terminated list, possibly empty). */
int ctl_reload(CtlBus *b, char ***ret_problems, CtlError *e);
