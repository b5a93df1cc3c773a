/* SPDX-License-Identifier: MIT */
/* Shared by dkmd-fleet.c (sync and following), dkmd-fleet-hosts.c (enrolment) and
 * dkmd-fleet-revisions.c (the revisions this host has seen, kept across restarts). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "dkmd-fleet.h"
#include "fleet-ldap.h"

#define log_fleet(fmt, ...) fprintf(stderr, "dkmd: fleet: " fmt "\n", ##__VA_ARGS__)

/* The directory's revision the local copy of a group was last synced with. */
typedef struct Revision {
        char *name;
        uint64_t revision;
} Revision;

struct DkmdFleet {
        FleetConfig *config;
        FleetConn *conn; /* pulls and pushes; reconnects by itself */
        FleetFollow *follow;
        char *follow_state_path;
        Manager *manager;
        ManagerFleet ops;
        char *state_dir;
        Revision *revisions; /* kept in STATE/fleet-revisions */
        size_t n_revisions;
        /* The directory's copy of the group being changed (NULL: it has none), to put back when
         * the change cannot be published. One change at a time: dkmd has one thread. */
        char *pulled_name, *pulled_text;
        size_t pulled_size;
        sd_event_source *io, *timer;
        sd_event_source *enrol_timer; /* while this host waits for its enrolment: CLOCK_MONOTONIC */
        sd_event_source *catch_up_timer; /* every check interval: read the directory's groups */
        char *installed;              /* the protector file last installed from this host's entry */
        size_t installed_size;
        int io_fd;            /* the follower's connection being watched: its descriptor */
        uint64_t io_connects; /* and which connection it was (fleet_follow_stats()->connects) */
        bool partitioned; /* the follower's last report: no server answered */
        void (*changed)(void *userdata);
        void *userdata;
};

/* After each (re)connect of the follower and every check interval: every group read from the
 * directory, what is newer taken. A safety net under the follower, which keeps the host current
 * on its own: it bounds what an unforeseen miss of the sync protocol could cost. */
void dkmd_fleet_catch_up(DkmdFleet *f);

/* The revision slot of a group (made at 0 the first time); setting a newer revision writes
 * STATE/fleet-revisions, read back at start by dkmd_fleet_revisions_load(). A copy of a group
 * not newer than its slot is never taken (dkmd-fleet-revisions.c). */
uint64_t *dkmd_fleet_revision_slot(DkmdFleet *f, const char *name);
int dkmd_fleet_revision_set(DkmdFleet *f, uint64_t *slot, uint64_t revision);
void dkmd_fleet_revisions_load(DkmdFleet *f);

/* fleet-ldap's -EHOSTDOWN as the manager names it; other codes as they are. */
int dkmd_fleet_errno(int r);

/* ManagerFleet's host operations (dkmd-fleet-hosts.c). */
int dkmd_fleet_host_get(void *userdata, const char *host, char ret_public_key[static 65], bool *ret_enrolled);
int dkmd_fleet_enrol(void *userdata, const char *host, const char *public_key_hex);
int dkmd_fleet_remove_host(void *userdata, const char *host);
int dkmd_fleet_list_hosts(void *userdata, ManagerFleetHost **ret, size_t *ret_n);

/* This host's protector from its directory entry: 1 installed, 0 nothing new, < 0 error. */
int dkmd_fleet_install_host_protector(DkmdFleet *f);
/* While the store is locked waiting for this host's enrolment: look again (after each refresh of
 * the follower, and on a timer). */
bool dkmd_fleet_waiting_for_enrolment(const DkmdFleet *f);
void dkmd_fleet_try_enrolment(DkmdFleet *f);
int dkmd_fleet_on_enrol_timer(sd_event_source *s, uint64_t usec, void *userdata);
