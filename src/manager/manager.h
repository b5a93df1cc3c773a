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

typedef struct Manager {
        Store *store; /* not owned */
        ManagerEvents events;
        const ManagerCaller *caller; /* set by the bus layer for the duration of one call */
        ManagerRequests requests;
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
int manager_request_cancel(Manager *m, uint64_t id) _warn_unused_result_;
int manager_request_revoke(Manager *m, uint64_t id, bool admin) _warn_unused_result_;
/* Expire pending requests past their deadline, end grants that ran out (revoking their keys);
 * *ret_next: the earliest deadline or expiry still to come (0: none). */
int manager_requests_run_due(Manager *m, uint64_t *ret_next) _warn_unused_result_;
