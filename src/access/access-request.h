/* SPDX-License-Identifier: MIT */
/* Break-glass requests (access to a group's keys, or retiring a generation): their rules, checked
 * against the caller's identity as the bus reports it, and their files. Pure apart from the
 * files: no bus, no kernel, no clock (callers pass the time). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "macro.h"
#include "store.h"

#define ACCESS_JUSTIFICATION_MAX 512U /* bytes; also the bound on a denial reason */
#define ACCESS_OPEN_PER_UID_MAX 8U    /* pending or granted requests one requester may have */
#define ACCESS_OPEN_MAX 256U          /* pending or granted requests in all */
#define ACCESS_CLOSED_KEPT_MAX 256U   /* closed requests dkmd keeps listing (the newest); the audit log keeps all */
#define ACCESS_CLOSED_RETENTION_USEC (7ULL * 24 * 3600 * 1000000) /* then a closed request's file goes too */
#define ACCESS_DURATION_MIN_USEC 1000000ULL /* kernel timeouts count whole seconds */
#define ACCESS_SPEC_MAX 1100U                /* a protector-add's spec: type and a PKCS#11 URI */

/* Internal codes for refusals with no natural errno, chosen from codes the store, loader, audit
 * log and sd-bus never return, so src/bus/bus-errors.c can name each one unambiguously. */
#define ACCESS_ERRNO_JUSTIFICATION_REQUIRED ENODATA /* empty or blank justification */
#define ACCESS_ERRNO_DURATION_TOO_LONG EDOM         /* above the policy's MaxGrantUSec (or below 1 s) */
#define ACCESS_ERRNO_NO_APPROVERS ENOLINK           /* the group's policy names no approval level */
#define ACCESS_ERRNO_SELF_APPROVAL ELOOP            /* the requester tried to approve (or deny) */
#define ACCESS_ERRNO_DUPLICATE_APPROVER EADDRINUSE  /* this person approved another level already */
#define ACCESS_ERRNO_NOT_APPROVER ENOCSI            /* not a member of the level's approver group */
#define ACCESS_ERRNO_REQUEST_EXPIRED ETIME          /* not fully approved before its deadline */
#define ACCESS_ERRNO_REQUEST_CLOSED EALREADY        /* denied, cancelled, ended...: nothing left to do */
#define ACCESS_ERRNO_NO_SUCH_REQUEST ESRCH
#define ACCESS_ERRNO_TOO_MANY_REQUESTS ETOOMANYREFS
#define ACCESS_ERRNO_ALREADY_MEMBER EISCONN /* the requester is in the group: members need no grant */

/* Wire values in request files; never renumber. */
typedef enum AccessKind {
        ACCESS_KIND_ACCESS = 0, /* read the group's generations for a while */
        ACCESS_KIND_RETIRE = 1, /* destroy one generation */
        /* Store-wide (no group; approved at the store policy's levels, docs/CUSTOMER-KEY.md): */
        ACCESS_KIND_PROTECTOR_ADD = 2,    /* add protector `target` as `spec` says */
        ACCESS_KIND_PROTECTOR_REMOVE = 3, /* remove protector `target` */
        ACCESS_KIND_PURGE = 4,            /* destroy every key, after the store policy's delay */
        ACCESS_KIND_HOST_ENROL = 5,       /* seal the root key for fleet host `target` (docs/FLEET.md) */
        ACCESS_KIND_HOST_REMOVE = 6,      /* delete fleet host `target`'s protector file from the directory */
        _ACCESS_KIND_MAX,
} AccessKind;

typedef enum AccessState {
        ACCESS_STATE_PENDING = 0,   /* waiting for approvals */
        ACCESS_STATE_GRANTED = 1,   /* access: the grant is live until expires_usec */
        ACCESS_STATE_DENIED = 2,    /* an approver said no */
        ACCESS_STATE_CANCELLED = 3, /* the requester withdrew it */
        ACCESS_STATE_EXPIRED = 4,   /* not fully approved before deadline_usec */
        ACCESS_STATE_ENDED = 5,     /* access: the grant ran out */
        ACCESS_STATE_REVOKED = 6,   /* access: ended early by Revoke() */
        ACCESS_STATE_DONE = 7,      /* retire: carried out */
        ACCESS_STATE_FAILED = 8,    /* approved, but the grant or retire could not be carried out */
        ACCESS_STATE_SCHEDULED = 9, /* purge: approved, waits until expires_usec; cancellable */
        _ACCESS_STATE_MAX,
} AccessState;

/* "access", "retire", "protector-add", "protector-remove", "purge", "host-enrol", "host-remove" */
const char *access_kind_to_string(AccessKind k);
int access_kind_from_string(const char *s, AccessKind *ret);
const char *access_state_to_string(AccessState s); /* "pending", "granted", ... as above, lowercase */
int access_state_from_string(const char *s, AccessState *ret);
/* pending, granted or scheduled: it still holds a slot and may still change. */
bool access_state_is_open(AccessState s);

typedef struct AccessApproval {
        uid_t uid;
        uint64_t usec; /* CLOCK_REALTIME µs */
} AccessApproval;

typedef struct AccessRequest {
        uint64_t id; /* 1, 2, 3, ... never reused */
        AccessKind kind;
        char group[STORE_GROUP_NAME_MAX + 1];
        uint32_t generation; /* retire: the generation; access: 0 */
        /* Store-wide kinds: group is "" and target the protector's name, or the fleet host's for
         * host-enrol/host-remove ("" for purge); spec is
         * protector-add's "file", "pkcs11 URI" or "tpm2 PCR,PCR" ("tpm2" without PCRs). */
        char target[STORE_PROTECTOR_NAME_MAX + 1];
        char spec[ACCESS_SPEC_MAX + 1];
        uid_t requester;
        char justification[ACCESS_JUSTIFICATION_MAX + 1];
        uint64_t duration_usec; /* access: how long the grant lasts; retire: 0 */
        uint64_t created_usec;
        uint64_t deadline_usec; /* created + the policy's request timeout */
        /* The approver groups, in order, copied from the group's policy when the request was made:
         * a policy change later does not change what an open request needs. */
        gid_t levels[STORE_APPROVAL_LEVELS_MAX];
        size_t n_levels;
        AccessApproval approvals[STORE_APPROVAL_LEVELS_MAX]; /* approvals[i] approved levels[i] */
        size_t n_approvals;
        AccessState state;
        uint64_t granted_usec, expires_usec; /* access, once granted; purge: approved, and when it runs */
        uint64_t closed_usec;                /* when it left pending/granted; 0 while open */
        uid_t closed_by;                     /* who denied, cancelled or revoked; 0 for dkmd itself */
        char reason[ACCESS_JUSTIFICATION_MAX + 1]; /* a denial's reason, or why it failed */
} AccessRequest;

/* The caller of a method, as the bus reports it: euid and every group (primary and
 * supplementary). */
typedef struct AccessCaller {
        uid_t uid;
        const gid_t *gids;
        size_t n_gids;
} AccessCaller;

bool access_caller_in_group(const AccessCaller *c, gid_t gid);

/* Fills *ret as a new pending request (id 0: the caller assigns one) after checking, in this
 * order: policy has at least one level (-ACCESS_ERRNO_NO_APPROVERS); justification has a
 * non-blank character (Unicode spaces count as blank), at most ACCESS_JUSTIFICATION_MAX bytes,
 * valid UTF-8 without control characters (C0, DEL, C1) (-ACCESS_ERRNO_JUSTIFICATION_REQUIRED when
 * blank, -EINVAL otherwise); for ACCESS_KIND_ACCESS ACCESS_DURATION_MIN_USEC <= duration <=
 * policy->max_grant_usec (-ACCESS_ERRNO_DURATION_TOO_LONG); for ACCESS_KIND_RETIRE duration must
 * be 0 (-EINVAL). Before all of these, -EINVAL for what no caller should pass: an unknown kind, an
 * invalid group name, uid -1, a policy store_group_policy_check() refuses, now 0, a generation for
 * an access request or none (0) for a retire request. Group membership, the open-request limits
 * and whether the generation exists are the caller's checks. */
int access_request_init(AccessRequest *ret, AccessKind kind, const char *group, uint32_t generation,
                        uid_t requester, const char *justification, uint64_t duration_usec,
                        const StoreGroupPolicy *policy, uint64_t now_usec) _warn_unused_result_;

/* The same for the store-wide kinds, approved at the levels of the store policy. target: a valid
 * protector name for the protector kinds, a valid host name (the same rule) for the host kinds,
 * "" for purge (-EINVAL otherwise); spec: for
 * protector-add only, non-empty printable text up to ACCESS_SPEC_MAX bytes (-EINVAL).
 * -ACCESS_ERRNO_NO_APPROVERS if policy has no level; justification as above. Deadline: created +
 * STORE_REQUEST_TIMEOUT_DEFAULT_USEC. */
int access_request_init_store(AccessRequest *ret, AccessKind kind, const char *target, const char *spec,
                              uid_t requester, const char *justification, const StorePolicy *policy,
                              uint64_t now_usec) _warn_unused_result_;
bool access_kind_is_store_wide(AccessKind k);

/* May c approve r now? Returns the level (0-based) its approval would fill, or: -ACCESS_ERRNO_
 * REQUEST_EXPIRED (pending but now >= deadline, or state expired), -ACCESS_ERRNO_REQUEST_CLOSED
 * (any other state but pending), -ACCESS_ERRNO_SELF_APPROVAL (c is the requester),
 * -ACCESS_ERRNO_DUPLICATE_APPROVER (c approved an earlier level), -ACCESS_ERRNO_NOT_APPROVER (c
 * is not in levels[n_approvals]). Levels are approved in order. */
int access_check_approve(const AccessRequest *r, const AccessCaller *c, uint64_t now_usec) _warn_unused_result_;
/* Records c's approval (call access_check_approve() first). Returns 1 when that was the last
 * level (the caller then grants or retires), 0 otherwise, -EINVAL if every level was approved
 * already. Does not change the state. */
int access_approve(AccessRequest *r, const AccessCaller *c, uint64_t now_usec);

/* Deny: reason as a justification but may be empty or blank or NULL (-EINVAL, checked first);
 * pending, not the requester (-ACCESS_ERRNO_SELF_APPROVAL: the requester cancels instead), a
 * member of any level's group (-ACCESS_ERRNO_NOT_APPROVER). Cancel: pending, the requester only
 * (-EACCES). Revoke: granted, the requester or a member of any level's group (-EACCES; dkmd also
 * lets its admins revoke); any other state but expired is -ACCESS_ERRNO_REQUEST_CLOSED (a pending
 * request is denied or cancelled, not revoked). Expired/closed as in access_check_approve(). */
int access_check_deny(const AccessRequest *r, const AccessCaller *c, const char *reason, uint64_t now_usec)
        _warn_unused_result_;
int access_check_cancel(const AccessRequest *r, const AccessCaller *c, uint64_t now_usec) _warn_unused_result_;
/* A scheduled purge may be cancelled until it runs by the requester or a member of any level's
 * group (-EACCES otherwise; dkmd also lets its admins); any other state as access_check_cancel(). */
int access_check_revoke(const AccessRequest *r, const AccessCaller *c) _warn_unused_result_;

/* State changes (no checks): granted at now for duration; closed in state s by uid with reason
 * (may be NULL). The reason is made fit to save: cut to ACCESS_JUSTIFICATION_MAX bytes at a
 * character boundary, control characters and bytes that are not UTF-8 replaced by '?' (a failure's
 * reason may come from anywhere). */
void access_grant(AccessRequest *r, uint64_t now_usec);
/* A fully approved purge: scheduled at now + delay. */
void access_schedule(AccessRequest *r, uint64_t now_usec, uint64_t delay_usec);
void access_close(AccessRequest *r, AccessState s, uid_t by, const char *reason, uint64_t now_usec);

/* When dkmd must next look at r: pending -> deadline_usec (then it expires), granted ->
 * expires_usec (then it ended), scheduled -> expires_usec (then it runs); 0 for closed requests. */
uint64_t access_request_next_usec(const AccessRequest *r);

/* ---- files: <dir>/<id>.request, kvfile format with a checksum line, 0600 ---- */

/* Atomically (write, fsync, rename, fsync dir) writes r; -EINVAL if r breaks a rule that
 * access_request_parse() checks, so that what is saved always loads again. */
int access_request_save(int dirfd, const AccessRequest *r) _warn_unused_result_;
/* Every *.request file of dirfd, ascending by id (*ret is malloc'd; NULL when *ret_n is 0). A file
 * that does not parse, is not a regular file or whose name is not "<id>.request" with a canonical
 * id is skipped and named in *ret_problems — never deleted. *ret_problems is a NULL-terminated
 * list, empty when all is well, of "NAME: what" (NAME with \xHH for space, backslash and anything
 * but printable ASCII); ret_problems may be NULL to ignore them. Other files (names not ending in
 * ".request", dot files such as write_file_atomic()'s temporaries) are ignored. Fails only when
 * the directory cannot be read, or -ENOMEM. */
int access_request_load_all(int dirfd, AccessRequest **ret, size_t *ret_n, char ***ret_problems)
        _warn_unused_result_;
/* Pure parse/format of one file's text (for the loader, the tests and the fuzzers). The id must
 * match expected_id unless it is 0. Parse: -EBADMSG (error gets "line N: what", or "what" for the
 * whole file; error may be NULL), -EPROTONOSUPPORT for a newer file format, -ENOMEM; *ret is
 * written only on success. Format: -EINVAL as access_request_save(). The file:
 *     format=2
 *     id=7
 *     kind=access                       access | retire | protector-add | protector-remove | purge |
 *                                       host-enrol | host-remove
 *     group=mail-creds                  empty for the store-wide kinds
 *     generation=0                      retire: the generation
 *     target=                           protector kinds: the protector; host kinds: the host (not in
 *                                       format 1 files)
 *     spec=                             protector-add: kvbuf_put_escaped() (not in format 1 files)
 *     requester=1000
 *     justification=INC-4711            kvbuf_put_escaped()
 *     duration-usec=900000000
 *     created-usec=1700000000000000
 *     deadline-usec=1700086400000000
 *     levels=2001 2002                  gids, in order
 *     approvals=1001 1700000100000000   "UID USEC" per approved level, in order; empty for none
 *     state=pending
 *     granted-usec=0
 *     expires-usec=0
 *     closed-usec=0
 *     closed-by=0
 *     reason=                           kvbuf_put_escaped()
 *     checksum=<BLAKE2b-256 hex>
 * every key once, in this order; numbers canonical decimal. */
int access_request_format(const AccessRequest *r, char **ret, size_t *ret_size) _warn_unused_result_;
int access_request_parse(const char *data, size_t size, uint64_t expected_id, AccessRequest *ret, char *error,
                         size_t error_size) _warn_unused_result_;
