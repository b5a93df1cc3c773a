/* SPDX-License-Identifier: MIT */
/* What dkmd does to key groups, without the bus: create, roll over (pending, then active after the
 * propagation delay), archive, set policy, load into the kernel, and the schedule. The bus layer
 * calls these and turns the events into signals; dkmd's timer calls manager_run_due(). */
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include "access-request.h"
#include "audit.h"
#include "store.h"

/* Internal codes for refusals with no natural errno, chosen from codes the store, loader and
 * sd-bus never return, so src/bus/bus-errors.c can name them unambiguously. */
#define MANAGER_ERRNO_HUMAN_MEMBERS EUSERS    /* a member of the gid is a person */
#define MANAGER_ERRNO_LOAD_FAILED EREMOTEIO   /* dkm-keyring-helper exited non-zero */
#define MANAGER_ERRNO_ROLLOVER_PENDING EINPROGRESS /* a generation is already pending */
#define MANAGER_ERRNO_AUDIT_FAILED ECOMM            /* the audit record could not be written durably */
#define MANAGER_ERRNO_WITHDRAWN EKEYEXPIRED         /* no protector opens the root key any more */
#define MANAGER_ERRNO_PURGE_SCHEDULED ESHUTDOWN     /* a purge waits for its time: nothing is loaded */
#define MANAGER_ERRNO_PURGED ENOTRECOVERABLE        /* the store was crypto-shredded */
#define MANAGER_ERRNO_LAST_PROTECTOR ENOTUNIQ       /* removing it would leave no way in */
#define MANAGER_ERRNO_NO_SUCH_PROTECTOR ENOMEDIUM
#define MANAGER_ERRNO_PROTECTOR_EXISTS EADDRNOTAVAIL
#define MANAGER_ERRNO_PIN_REFUSED EBADE             /* the token refused dkmd's PIN (the store says EACCES) */
#define MANAGER_ERRNO_PCR_MISMATCH EREMCHG          /* the TPM's PCRs moved (the store says EKEYREJECTED) */
#define MANAGER_ERRNO_PROTECTOR_UNAVAILABLE EHOSTDOWN /* its device cannot be reached (the store's code) */
#define MANAGER_ERRNO_FLEET_CONFLICT EUCLEAN      /* another host changed the group first; its version adopted */
#define MANAGER_ERRNO_FLEET_UNAVAILABLE EREMOTE    /* no directory server answers: the fleet's groups are read-only */
#define MANAGER_ERRNO_NOT_IN_FLEET ENONET          /* a fleet call to a dkmd started without --fleet */
#define MANAGER_ERRNO_NO_SUCH_HOST EHOSTUNREACH    /* the directory has no host entry (with a public key) of that name */

/* Who a change is made for, as the bus reported it; NULL in Manager.caller: dkmd itself (the
 * schedule, the drop-ins at start, expiry). */
typedef struct ManagerCaller {
        uid_t uid;
        pid_t pid;
        const char *comm;
        const gid_t *gids; /* primary and supplementary, as dbus-daemon reported them */
        size_t n_gids;
} ManagerCaller;

/* Told after each durable change, for signals and logs; any may be NULL. */
typedef struct ManagerEvents {
        void (*group_added)(void *userdata, const StoreGroup *g);
        void (*generation_changed)(void *userdata, const StoreGroup *g, uint32_t number, GenerationState state);
        void (*policy_changed)(void *userdata, const StoreGroup *g);
        void (*request_changed)(void *userdata, const AccessRequest *r, bool added);
        /* ManagerProtectors.state changed (or its detail); from unavailable to unlocked, dkmd
         * applies the drop-ins and loads every group. */
        void (*store_state_changed)(void *userdata, int old_state);
        /* Write one audit record durably; < 0 if it could not be: the change is then not made
         * (fail closed). NULL: nothing is audited (dkm-store, unit tests). */
        int (*audit)(void *userdata, const AuditRecord *rec);
        void *userdata;
} ManagerEvents;

/* The break-glass requests, all of them, loaded from <state dir>/requests at start. */
typedef struct ManagerRequests {
        bool open; /* false: not opened (dkm-store, tests), requests are refused */
        int dir_fd;
        AccessRequest *items; /* ascending by id */
        size_t n;
        uint64_t next_id; /* above every <id>.request name, damaged files included: ids are never reused */
} ManagerRequests;

/* Whether dkmd can serve keys, as its protectors allow (manager-store.c, docs/CUSTOMER-KEY.md). */
typedef enum ManagerStoreState {
        MANAGER_STORE_UNLOCKED,        /* root key held, and a protector opens it now */
        MANAGER_STORE_DEGRADED,        /* root key held, but no protector opens it now (device away): serving, retrying */
        MANAGER_STORE_LOCKED,          /* passphrase protectors only: metadata only */
        MANAGER_STORE_WAITING,         /* no root key: devices unavailable or PIN refused; retrying with backoff */
        MANAGER_STORE_WITHDRAWN,       /* every protector gone: keys out of the kernel, loads refused */
        MANAGER_STORE_PURGE_SCHEDULED, /* a purge waits for its time: keys out of the kernel, loads refused */
        MANAGER_STORE_PURGED,          /* crypto-shredded */
        _MANAGER_STORE_STATE_MAX,
} ManagerStoreState;

/* "unlocked", "degraded", "locked", "waiting", "withdrawn", "purge-scheduled", "purged". */
const char *manager_store_state_to_string(ManagerStoreState s);

#define MANAGER_CHECK_INTERVAL_DEFAULT_USEC (60U * 1000000U) /* protector checks while all is well */
#define MANAGER_BACKOFF_MIN_USEC (1U * 1000000U)             /* first retry; doubles up to the interval */

typedef struct ManagerProtectors {
        ManagerStoreState state;
        char detail[1024];              /* why not unlocked: "NAME: why; ..." ("" when unlocked) */
        StoreProtectorStatus *status;   /* from the last check */
        size_t n_status;
        char **refused;                 /* whose PIN the token refused: not tried again by itself */
        uint64_t check_interval_usec;   /* 0: MANAGER_CHECK_INTERVAL_DEFAULT_USEC */
        uint64_t backoff_usec;          /* the next retry's wait while waiting or degraded */
        uint64_t next_check_usec;       /* CLOCK_REALTIME µs; 0: none */
} ManagerProtectors;

/* One host of the fleet's directory, as ListHosts reports it. */
typedef struct ManagerFleetHost {
        char name[65];
        char public_key[65]; /* "" if the entry has none (readable) */
        bool enrolled;       /* the entry carries a protector file */
} ManagerFleetHost;

/* In a fleet (docs/FLEET.md) the directory holds the truth. Before a group changes, pull brings its
 * local file up to the directory's copy; after the local store changed it, push publishes the new
 * file on the condition that no other host published first. Only then is it loaded. On a failed
 * push the hook has put the local file back to the directory's copy. Both return 0,
 * -MANAGER_ERRNO_FLEET_UNAVAILABLE, or (push) -MANAGER_ERRNO_FLEET_CONFLICT. */
typedef struct ManagerFleet {
        int (*pull)(void *userdata, const char *group);
        int (*push)(void *userdata, const char *group);
        /* For the bus: "connected" or "partitioned", and the URI followed ("" when none). */
        const char *(*state)(void *userdata);
        const char *(*uri)(void *userdata);
        /* Host enrolment (manager-fleet.c, docs/FLEET.md). Each returns 0,
         * -MANAGER_ERRNO_NO_SUCH_HOST (no entry, or no valid public key), -MANAGER_ERRNO_FLEET_UNAVAILABLE
         * or another negative errno. host_get: the entry's public key (64 lowercase hex) and whether it
         * carries a protector file. enrol: the root key sealed (store_protector_seal_for_host, protector
         * "fleet-HOST") to public_key_hex, published as the entry's dkmProtectorFile (never a key).
         * remove_host: the entry's dkmProtectorFile deleted (the entry stays: the admins' to delete).
         * list_hosts: every host entry, sorted by name (free with free()). May be NULL (an older
         * implementation): -MANAGER_ERRNO_NOT_IN_FLEET. */
        int (*host_get)(void *userdata, const char *host, char ret_public_key[static 65], bool *ret_enrolled);
        int (*enrol)(void *userdata, const char *host, const char *public_key_hex);
        int (*remove_host)(void *userdata, const char *host);
        int (*list_hosts)(void *userdata, ManagerFleetHost **ret, size_t *ret_n);
        void *userdata;
} ManagerFleet;


typedef struct Manager {
        Store *store; /* not owned */
        const ManagerFleet *fleet; /* NULL: a host on its own */
        ManagerEvents events;
        const ManagerCaller *caller; /* set by the bus layer for the duration of one call */
        ManagerRequests requests;
        ManagerProtectors protectors;
} Manager;

/* One audit record for the current caller (or dkmd): event, object ("group/NAME",
 * "request/ID"), outcome and a printf detail. 0, or -MANAGER_ERRNO_AUDIT_FAILED. */
int manager_audit(Manager *m, const char *event, AuditOutcome outcome, const char *object, const char *fmt, ...)
        _printf_(5, 6);

/* Create (generation 1 active) and load. A gid with a person among its members is refused
 * (-MANAGER_ERRNO_HUMAN_MEMBERS) unless policy->allow_human_members. */
int manager_create_group(Manager *m, const char *name, gid_t gid, CryptAlg alg, const StoreGroupPolicy *policy)
        _warn_unused_result_;

/* Put the group into the kernel as the store has it, for the members of its gid, after the
 * human-member check (an allowed override is logged). -MANAGER_ERRNO_LOAD_FAILED if the helper
 * failed. */
int manager_load(Manager *m, const StoreGroup *g) _warn_unused_result_;
int manager_load_all(Manager *m, unsigned *ret_failed) _warn_unused_result_;
/* Re-read group name from the store and load it (after the fleet's follower imported a new copy);
 * emits group_added (added) or policy_changed so the bus shows it. */
int manager_reload(Manager *m, const char *name, bool added) _warn_unused_result_;

/* Start a rollover now: the next generation is added pending and loaded; with no propagation
 * delay it becomes active at once (the previous active one archived), else manager_run_due()
 * promotes it when the delay has passed. -MANAGER_ERRNO_ROLLOVER_PENDING if one is pending. */
int manager_rollover(Manager *m, const char *name, uint32_t *ret_number) _warn_unused_result_;

/* Pending -> archived (the store refuses the active one with -EBUSY), then reload. */
int manager_archive(Manager *m, const char *name, uint32_t number) _warn_unused_result_;

/* Destroy a generation (crypto-shredding) in the store, then in the kernel. The approval flow
 * is the caller's (manager_request_retire()). Active refused (-EBUSY). */
int manager_retire(Manager *m, const char *name, uint32_t number) _warn_unused_result_;

/* New policy; reloads when the hot window changed, or human members became disallowed. */
int manager_set_policy(Manager *m, const char *name, const StoreGroupPolicy *policy) _warn_unused_result_;

/* CLOCK_REALTIME µs of g's next scheduled step, 0 for none: a pending generation's promotion
 * (created + propagation delay), else a rollover (active's activation + period). Pure. */
uint64_t manager_next_step_usec(const StoreGroup *g);

/* A scheduled step that failed is tried again this much later. */
#define MANAGER_RETRY_USEC (30U * 1000000U)

/* Take every step due now, in every group; *ret_next: CLOCK_REALTIME µs of the earliest step
 * still to come (0: none). Each due step happens once: a daemon that was down for several
 * periods rolls over once when it comes back. Failures are logged and counted (*ret_failed),
 * never stop the other groups. */
int manager_run_due(Manager *m, uint64_t *ret_next, unsigned *ret_failed) _warn_unused_result_;

/* Apply the groups.d drop-ins of dirs (see group_dropin_load_dirs): create the groups that do
 * not exist, set the policy of those that do. A drop-in never deletes a group or changes its
 * gid or algorithm. Every problem (malformed file, unknown UnixGroup, refused group) is logged
 * and returned as "PATH: what"; the others are still applied. -ENOMEM only. */
int manager_apply_dropins(Manager *m, char *const *dirs, char ***ret_problems) _warn_unused_result_;

/* ---- break-glass requests (manager-requests.c) ---- */

/* Opens (creating, 0700) dir and loads every request; a damaged file is logged and skipped. */
int manager_requests_open(Manager *m, const char *dir) _warn_unused_result_;
void manager_requests_close(Manager *m);
AccessRequest *manager_request_find(Manager *m, uint64_t id);

/* A new access request of m->caller for group; *ret_id its id. The refusals of
 * access_request_init(), plus -ENOENT (group), -ACCESS_ERRNO_ALREADY_MEMBER,
 * -ACCESS_ERRNO_TOO_MANY_REQUESTS, -MANAGER_ERRNO_AUDIT_FAILED. */
int manager_request_access(Manager *m, const char *group, const char *justification, uint64_t duration_usec,
                           uint64_t *ret_id) _warn_unused_result_;
/* Retire through the flow: a request when the policy wants approvals (*ret_id > 0), else the
 * generation is retired at once (*ret_id = 0). -ACCESS_ERRNO_NO_APPROVERS when approvals are
 * needed and the policy names no level. */
int manager_request_retire(Manager *m, const char *group, uint32_t generation, const char *justification,
                           uint64_t *ret_id) _warn_unused_result_;
/* m->caller approves, denies, cancels or revokes request id (the rules of access_check_*()).
 * The last approval grants (access) or retires (retire) before returning; if that fails the
 * request ends "failed" and the error is returned. revoke: admin says the caller is an admin. */
int manager_request_approve(Manager *m, uint64_t id) _warn_unused_result_;
int manager_request_deny(Manager *m, uint64_t id, const char *reason) _warn_unused_result_;
/* Cancel: a pending request by its requester; a scheduled purge also by its approvers or (admin)
 * an admin, which brings the keys back. */
int manager_request_cancel(Manager *m, uint64_t id, bool admin) _warn_unused_result_;
int manager_request_revoke(Manager *m, uint64_t id, bool admin) _warn_unused_result_;
/* Expire pending requests past their deadline, end grants that ran out (revoking their keys);
 * *ret_next: the earliest deadline or expiry still to come (0: none). */
int manager_requests_run_due(Manager *m, uint64_t *ret_next) _warn_unused_result_;

/* ---- the root key's protectors, withdrawal and purge (manager-store.c) ---- */

/* At start, before anything is loaded: purged, a scheduled purge (the keys stay out of the
 * kernel), or a first check of every protector (which unlocks the store if one opens it). */
int manager_store_start(Manager *m) _warn_unused_result_;
void manager_store_done(Manager *m);
/* Probe the protectors now (manager_run_due() does it when next_check_usec comes;
 * CheckProtectors with retry_refused). Moves between the states and acts: unlocked again ->
 * store_state_changed; every protector withdrawn -> the root key is forgotten, every group's keys
 * leave the kernel, grants are revoked. Audited. */
int manager_store_check(Manager *m, bool retry_refused);
/* 0 if keys may be loaded, else -MANAGER_ERRNO_WITHDRAWN, -MANAGER_ERRNO_PURGE_SCHEDULED,
 * -MANAGER_ERRNO_PURGED. */
int manager_store_usable(const Manager *m);

/* Protector changes for m->caller (an admin): at once when the store policy names no approval
 * level (*ret_id = 0), else a request (*ret_id its id) carried out on its last approval. spec:
 * "file", "pkcs11 URI", "tpm2" or "tpm2 PCR,PCR". */
int manager_protector_add(Manager *m, const char *name, const char *spec, const char *justification,
                          uint64_t *ret_id) _warn_unused_result_;
int manager_protector_remove(Manager *m, const char *name, const char *justification, uint64_t *ret_id)
        _warn_unused_result_;
/* Always a request (-ACCESS_ERRNO_NO_APPROVERS without levels). */
int manager_purge_request(Manager *m, const char *justification, uint64_t *ret_id) _warn_unused_result_;

/* ---- fleet hosts (manager-fleet.c, docs/FLEET.md "Host enrolment") ---- */

/* For m->caller (an admin): enrol host (the root key sealed to the public key of its directory
 * entry, published there) or remove it (its protector file deleted from the directory); at once
 * when the store policy names no approval level (*ret_id = 0), else a request (*ret_id its id)
 * carried out on its last approval. -MANAGER_ERRNO_NOT_IN_FLEET without --fleet,
 * -MANAGER_ERRNO_NO_SUCH_HOST, -MANAGER_ERRNO_FLEET_UNAVAILABLE, -ENOKEY (enrol: the store is
 * locked), -EINVAL (a bad name). Audited ("host-enrol", "host-remove"). */
int manager_host_enrol(Manager *m, const char *host, const char *justification, uint64_t *ret_id)
        _warn_unused_result_;
int manager_host_remove(Manager *m, const char *host, const char *justification, uint64_t *ret_id)
        _warn_unused_result_;
int manager_host_enrol_now(Manager *m, const char *host) _warn_unused_result_;
int manager_host_remove_now(Manager *m, const char *host) _warn_unused_result_;
/* Every host entry of the directory (anyone may ask). */
int manager_hosts_list(Manager *m, ManagerFleetHost **ret, size_t *ret_n) _warn_unused_result_;

/* Carrying out approved store-wide requests (manager-requests.c calls these). */
int manager_protector_add_now(Manager *m, const char *name, const char *spec) _warn_unused_result_;
int manager_protector_remove_now(Manager *m, const char *name) _warn_unused_result_;
/* The purge r was scheduled (or dkmd starts with it scheduled): the store is suspended, every
 * key leaves the kernel. */
int manager_purge_schedule(Manager *m, const AccessRequest *r);
/* Cancelled in its window: resumed, checked, loaded again. */
int manager_purge_cancelled(Manager *m);
/* Its time came: destroy. */
int manager_purge_now(Manager *m) _warn_unused_result_;
