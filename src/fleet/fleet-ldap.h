/* SPDX-License-Identifier: MIT */
/* The fleet's directory: key groups, hosts and the store id on OpenLDAP (docs/FLEET.md). The only
 * libldap user. Returns negative errno codes; fleet_last_error() says what failed, naming entries
 * and LDAP errors, never values (group and protector files are never printed). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fleet-config.h"
#include "macro.h"

#define FLEET_FILE_MAX (1024U * 1024U) /* a group or protector file */
#define FLEET_UUID_STRING_MAX 37U      /* entryUUID, 8-4-4-4-12 + NUL */
#define FLEET_STORE_ID_HEX 32U
#define FLEET_PUBLIC_KEY_HEX 64U

/* The last failure of this thread, e.g. "ldap://a:389/: modify cn=g,ou=groups,...: No such
 * attribute". Never holds a file's contents. */
const char *fleet_last_error(void);

/* ---- One connection to the first answering server of the list ---- */

typedef struct FleetConn FleetConn;

/* Try config's URIs in order, binding to each (simple bind with the password file's first line, or
 * SASL EXTERNAL); a dead server costs at most config->timeout_usec. config is borrowed and must
 * outlive the connection. -EHOSTDOWN: no server answered; -EPERM: every answering server refused
 * the bind; -EINVAL: bad config; -ENOENT/-EACCES: the password file. */
int fleet_connect(const FleetConfig *config, FleetConn **ret) _warn_unused_result_;
FleetConn *fleet_conn_free(FleetConn *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(FleetConn *, fleet_conn_free);
/* The URI that answered (and its index in config->uris), or NULL/-1 after the server went away.
 * The next operation reconnects, starting again from the first URI. */
/* A connection that failed over stays where it is; before a write, call this: if the first server
 * of the list answers again, the connection moves back to it (1), so every host writes to the
 * same provider and conditional writes stay exact. 0: it stays. */
int fleet_conn_prefer_primary(FleetConn *c);
const char *fleet_conn_uri(const FleetConn *c);
int fleet_conn_uri_index(const FleetConn *c);

/* Errors of every operation below: -EHOSTDOWN no server reachable (for a write: the outcome is
 * unknown, re-read); -EACCES the directory's ACLs refused it (insufficient access, or a file
 * attribute this identity may not read); -ENOENT no such entry; -EINVAL a bad name or argument;
 * -EPROTO the server does not know the schema, or the entry is malformed; -EIO anything else. */

typedef struct FleetGroup {
        char *name;
        char *text; /* the group file, NUL-terminated; size bytes */
        size_t size;
        uint64_t revision; /* 1, 2, 3, ... */
        char uuid[FLEET_UUID_STRING_MAX]; /* entryUUID */
} FleetGroup;

FleetGroup *fleet_group_free(FleetGroup *g);
DEFINE_TRIVIAL_CLEANUP_FUNC(FleetGroup *, fleet_group_free);

int fleet_group_get(FleetConn *c, const char *name, FleetGroup **ret) _warn_unused_result_;
/* Names under ou=groups, sorted; a NULL-terminated list (strv_free). */
int fleet_group_list(FleetConn *c, char ***ret_names) _warn_unused_result_;
/* Publish a group file if the directory still holds expected_revision (0: the group must not
 * exist yet). One modify: delete dkmRevision N, add N+1, replace dkmGroupFile; or one add.
 * 0 and *ret_revision = expected_revision + 1 on success; -ESTALE another writer was first
 * (re-read, redo the change, try again). */
int fleet_group_put(FleetConn *c, const char *name, const void *text, size_t size, uint64_t expected_revision,
                    uint64_t *ret_revision) _warn_unused_result_;
/* Delete if the directory still holds expected_revision (assertion control); -ESTALE otherwise. */
int fleet_group_delete(FleetConn *c, const char *name, uint64_t expected_revision) _warn_unused_result_;

typedef struct FleetHost {
        char *name;
        char public_key[FLEET_PUBLIC_KEY_HEX + 1]; /* lowercase hex */
        char *protector; /* the host's protector file; NULL if none (or not readable) */
        size_t protector_size;
} FleetHost;

FleetHost *fleet_host_free(FleetHost *h);
DEFINE_TRIVIAL_CLEANUP_FUNC(FleetHost *, fleet_host_free);

/* Create cn=HOST,ou=hosts,BASE (public_key_hex needed) or change the attributes given; NULL
 * leaves an attribute as it is. Administrators set the public key, hosts the protector file. */
int fleet_host_put(FleetConn *c, const char *host, const char *public_key_hex, const void *protector,
                   size_t protector_size) _warn_unused_result_;
int fleet_host_get(FleetConn *c, const char *host, FleetHost **ret) _warn_unused_result_;
int fleet_host_delete(FleetConn *c, const char *host) _warn_unused_result_;
/* Every dkmHost entry under ou=hosts, sorted by name (entries whose RDN is not a valid name are
 * skipped; one without a readable public key has public_key ""). Free with fleet_host_list_free(). */
int fleet_host_list(FleetConn *c, FleetHost ***ret, size_t *ret_n) _warn_unused_result_;
void fleet_host_list_free(FleetHost **l, size_t n);
/* Delete the entry's dkmProtectorFile (the host's way in; what hosts may write); 0 if it had none.
 * -ENOENT: no such entry. */
int fleet_host_clear_protector(FleetConn *c, const char *host) _warn_unused_result_;

/* cn=store,BASE: the fleet's store id (32 lowercase hex). put creates it, or checks that the
 * directory holds the same id (-EEXIST: another store's). */
int fleet_store_id_get(FleetConn *c, char ret_hex[static FLEET_STORE_ID_HEX + 1]) _warn_unused_result_;
int fleet_store_id_put(FleetConn *c, const char *hex) _warn_unused_result_;

/* ---- Following ou=groups: RFC 4533 refreshAndPersist with a persisted cookie ---- */

typedef struct FleetFollow FleetFollow;

typedef struct FleetFollowCallbacks {
        /* A group appeared or changed (each group once in a full refresh). A negative return drops
         * the connection without saving the cookie: the change comes again after the reconnect. */
        int (*group_changed)(FleetFollow *f, const FleetGroup *g, void *userdata);
        /* A group is gone; name is NULL if its entryUUID was never seen (no map entry). */
        int (*group_deleted)(FleetFollow *f, const char *name, const char *uuid, void *userdata);
        /* Connected to uri (error 0), or lost/failed (uri NULL, error < 0; fleet_last_error()). The
         * fd changes with each connection. Optional. */
        void (*connection_changed)(FleetFollow *f, const char *uri, int error, void *userdata);
        /* The refresh phase ended: the follower holds the directory's state. Optional. */
        void (*refresh_done)(FleetFollow *f, void *userdata);
} FleetFollowCallbacks;

typedef struct FleetFollowStats {
        uint64_t connects;     /* successful connections (1 + reconnects) */
        uint64_t refreshes;    /* refresh phases completed */
        uint64_t changed;      /* group_changed calls */
        uint64_t deleted;      /* group_deleted calls */
        uint64_t present;      /* entries reported unchanged ("present"): > 0 means a full refresh */
        uint64_t unreadable;   /* added/changed entries without a readable group file (ACLs) */
} FleetFollowStats;

/* state_path: the cookie and the entryUUID -> name map, read now if it exists and replaced
 * atomically (write_file_atomic, 0600) after the refresh and after each change. config is
 * borrowed. Nothing connects until fleet_follow_process(). */
int fleet_follow_new(const FleetConfig *config, const char *state_path, const FleetFollowCallbacks *cb,
                     void *userdata, FleetFollow **ret) _warn_unused_result_;
FleetFollow *fleet_follow_free(FleetFollow *f);
DEFINE_TRIVIAL_CLEANUP_FUNC(FleetFollow *, fleet_follow_free);

/* Driving it from an event loop (sd-event in dkmd):
 *   - watch fleet_follow_fd() for EPOLLIN when >= 0 (it is libldap's socket, LDAP_OPT_DESC; it
 *     changes on every reconnect: re-add the source from connection_changed);
 *   - arm a CLOCK_MONOTONIC timer at fleet_follow_next_usec() when != UINT64_MAX (a reconnect
 *     attempt: 1 s after a failure, doubling to 30 s, across the whole URI list);
 *   - on either, call fleet_follow_process(): it reads every message libldap holds (some may be
 *     buffered with the fd no longer readable, so it drains until none is left), applies them
 *     through the callbacks and saves the state.
 * fleet_follow_process() returns 0, or a negative errno only for local failures (state file);
 * connection trouble is handled inside (reconnect with backoff) and reported by callback. */
int fleet_follow_process(FleetFollow *f) _warn_unused_result_;
int fleet_follow_fd(const FleetFollow *f);
uint64_t fleet_follow_next_usec(const FleetFollow *f);
/* A simple loop for tools and tests: wait at most timeout_usec for the fd or the timer, then
 * fleet_follow_process() once. */
int fleet_follow_wait(FleetFollow *f, uint64_t timeout_usec) _warn_unused_result_;

bool fleet_follow_connected(const FleetFollow *f);
bool fleet_follow_refreshed(const FleetFollow *f); /* refresh done on the current connection */
const char *fleet_follow_uri(const FleetFollow *f);
const FleetFollowStats *fleet_follow_stats(const FleetFollow *f);
