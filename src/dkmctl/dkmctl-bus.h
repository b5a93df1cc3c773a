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
        /* The break-glass policy: approver Unix groups per level, in order (NULL: none) */
        char **approval_groups;
        uint64_t max_grant_usec, request_timeout_usec;
        bool retire_needs_approval;
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
        bool has_approval_groups, has_max_grant, has_request_timeout, has_retire_needs_approval;
        uint64_t rollover_period_usec, propagation_delay_usec;
        uint32_t hot_window;
        bool allow_human_members;
        char **approval_groups; /* NULL-terminated; empty: no level (break-glass off) */
        uint64_t max_grant_usec, request_timeout_usec;
        bool retire_needs_approval;
} CtlPolicy;

/* One approval of a break-glass request. */
typedef struct CtlApproval {
        uint32_t level; /* 0-based */
        uint32_t uid;
        uint64_t usec;
} CtlApproval;

/* A request object's properties. ListRequests fills only path, id, kind, group, requester, state,
 * justification and expires_usec. */
typedef struct CtlRequest {
        char *path;
        uint64_t id;
        char *kind;          /* access, retire, protector-add, protector-remove, purge */
        char *group;         /* "" for the store-wide kinds (protector-add, protector-remove, purge) */
        char *target;        /* the protector of protector-add and protector-remove; "" otherwise (or an older dkmd) */
        uint32_t generation; /* retire */
        uint32_t requester;
        char *justification;
        uint64_t duration_usec, created_usec, deadline_usec;
        char **approval_groups; /* the level's approver groups, in order */
        CtlApproval *approvals;
        size_t n_approvals;
        char *state;
        /* 0 = not (yet). expires_usec: when a grant ends, or when a scheduled purge destroys the keys */
        uint64_t granted_usec, expires_usec, closed_usec;
        uint32_t closed_by;
        char *reason;
} CtlRequest;

void ctl_request_done(CtlRequest *r);
void ctl_requests_free(CtlRequest *requests, size_t n);

/* The manager object's properties. Those an older dkmd lacks read as absent: NULL, 0, false. */
typedef struct CtlManager {
        char *version;
        bool unlocked;             /* StoreUnlocked */
        char *store_state;         /* StoreState: unlocked, locked, waiting, withdrawn, purge-scheduled, purged */
        char *store_state_detail;  /* StoreStateDetail: why, "" when unlocked */
        uint64_t next_check_usec;  /* NextCheckUSec: the next automatic protector check, 0 = none */
        uint64_t purge_at_usec;    /* PurgeAtUSec: when a scheduled purge destroys the keys, 0 = none */
        char **approval_groups;    /* StoreApprovalGroups: the store policy's levels, in order */
        bool has_purge_delay;      /* PurgeDelayUSec was there */
        uint64_t purge_delay_usec; /* PurgeDelayUSec: the store policy's waiting period */
        char *fleet_state;         /* FleetState: connected, partitioned; "" not in a fleet; NULL an older dkmd */
        char *fleet_uri;           /* FleetUri: the directory server followed, "" none */
} CtlManager;

void ctl_manager_done(CtlManager *m);

/* One protector of the store, as dkmd's last check found it. */
typedef struct CtlProtector {
        char *name;
        char *type;   /* file, passphrase, pkcs11, tpm2, invalid */
        char *health; /* ok, unavailable, pin-refused, pcr-mismatch, withdrawn, untested, invalid */
        char *detail;
} CtlProtector;

void ctl_protectors_free(CtlProtector *protectors, size_t n);

/* What AddProtector adds: the type and its options (NULL/0: not sent). */
typedef struct CtlProtectorSpec {
        const char *type;     /* file, pkcs11, tpm2 */
        const char *uri;      /* pkcs11: "Uri" */
        const uint32_t *pcrs; /* tpm2: "Pcrs", in the order given */
        size_t n_pcrs;
} CtlProtectorSpec;

/* Every function returns 0 or a negative errno with *e filled (e may not be NULL). */
int ctl_bus_open(CtlBus **ret, CtlError *e);
CtlBus *ctl_bus_free(CtlBus *b);
static inline void ctl_bus_freep(CtlBus **b) {
        *b = ctl_bus_free(*b);
}
#define _cleanup_ctl_bus_ _cleanup_(ctl_bus_freep)

/* The manager's properties; Version and StoreUnlocked must be there, the others may not. */
int ctl_manager_get(CtlBus *b, CtlManager *ret, CtlError *e);
/* ListGroups, then every group's properties, in the order dkmd lists them (by name). */
int ctl_groups_get_all(CtlBus *b, CtlGroup **ret, size_t *ret_n, CtlError *e);
/* GetGroup(name), then its properties. */
int ctl_group_get(CtlBus *b, const char *name, CtlGroup *ret, CtlError *e);

int ctl_group_create(CtlBus *b, const char *name, uint32_t gid, const CtlPolicy *p, CtlError *e);
int ctl_group_set_policy(CtlBus *b, const char *name, const CtlPolicy *p, CtlError *e);
int ctl_group_rollover(CtlBus *b, const char *name, uint32_t *ret_generation, CtlError *e);
int ctl_group_archive(CtlBus *b, const char *name, uint32_t generation, CtlError *e);
/* Retire(generation, justification): the request filed, or "/" when it was retired at once. */
int ctl_group_retire(CtlBus *b, const char *name, uint32_t generation, const char *justification,
                     char **ret_request_path, CtlError *e);
int ctl_group_load(CtlBus *b, const char *name, CtlError *e);
/* Reload(): the problems (a NULL-terminated list, possibly empty). */
int ctl_reload(CtlBus *b, char ***ret_problems, CtlError *e);

/* RequestAccess(group, justification, duration): the new request's object path. */
int ctl_request_access(CtlBus *b, const char *group, const char *justification, uint64_t duration_usec, char **ret_path,
                       CtlError *e);
/* ListRequests: every request, oldest first (the fields it carries only). */
int ctl_requests_list(CtlBus *b, CtlRequest **ret, size_t *ret_n, CtlError *e);
/* Every property of the request at path, or of request id (found with GetRequest). */
int ctl_request_get_at(CtlBus *b, const char *path, CtlRequest *ret, CtlError *e);
int ctl_request_get(CtlBus *b, uint64_t id, CtlRequest *ret, CtlError *e);
/* Approve, Deny(reason), Cancel, Revoke of request id. */
int ctl_request_approve(CtlBus *b, uint64_t id, CtlError *e);
int ctl_request_deny(CtlBus *b, uint64_t id, const char *reason, CtlError *e);
int ctl_request_cancel(CtlBus *b, uint64_t id, CtlError *e);
int ctl_request_revoke(CtlBus *b, uint64_t id, CtlError *e);

/* Protectors: ListProtectors (the last check's results) or CheckProtectors (probe every one now). */
int ctl_protectors_list(CtlBus *b, bool check, CtlProtector **ret, size_t *ret_n, CtlError *e);
/* AddProtector(name, type, options, justification), RemoveProtector(name, justification),
 * Purge(justification): the request filed, or "/" when it was done at once (never for Purge). */
int ctl_protector_add(CtlBus *b, const char *name, const CtlProtectorSpec *spec, const char *justification,
                      char **ret_request_path, CtlError *e);
int ctl_protector_remove(CtlBus *b, const char *name, const char *justification, char **ret_request_path, CtlError *e);
int ctl_purge(CtlBus *b, const char *justification, char **ret_request_path, CtlError *e);

/* A host of the fleet's directory (ListHosts). */
typedef struct CtlHost {
        char *name;
        char *public_key; /* 64 hex, "" if the entry has none */
        char *state;      /* "enrolled", "not enrolled" */
} CtlHost;

void ctl_hosts_free(CtlHost *hosts, size_t n);
int ctl_hosts_list(CtlBus *b, CtlHost **ret, size_t *ret_n, CtlError *e);
/* EnrollHost (enrol true) or RemoveHost: "/" done at once, else the request's path. */
int ctl_host_change(CtlBus *b, bool enrol, const char *host, const char *justification, char **ret_request_path,
                    CtlError *e);
