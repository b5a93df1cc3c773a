/* SPDX-License-Identifier: MIT */
/* Break-glass requests: the rules of each step, and their checksummed files. No bus, no kernel, no clock. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "access-request.h"
#include "fileio.h"
#include "kvfile.h"
#include "utf8.h"

#define REQUEST_FILE_FORMAT 2 /* 2 added target= and spec= (store-wide kinds) */
#define REQUEST_SUFFIX ".request"
/* The largest valid file is about 5 KiB (two fully escaped texts); anything far beyond is not ours. */
#define REQUEST_FILE_MAX (64U << 10)

static const char *const kind_names[_ACCESS_KIND_MAX] = {
        [ACCESS_KIND_ACCESS] = "access",
        [ACCESS_KIND_RETIRE] = "retire",
        [ACCESS_KIND_PROTECTOR_ADD] = "protector-add",
        [ACCESS_KIND_PROTECTOR_REMOVE] = "protector-remove",
        [ACCESS_KIND_PURGE] = "purge",
        [ACCESS_KIND_HOST_ENROL] = "host-enrol",
        [ACCESS_KIND_HOST_REMOVE] = "host-remove",
};

static const char *const state_names[_ACCESS_STATE_MAX] = {
        [ACCESS_STATE_PENDING] = "pending", [ACCESS_STATE_GRANTED] = "granted",
        [ACCESS_STATE_DENIED] = "denied",   [ACCESS_STATE_CANCELLED] = "cancelled",
        [ACCESS_STATE_EXPIRED] = "expired", [ACCESS_STATE_ENDED] = "ended",
        [ACCESS_STATE_REVOKED] = "revoked", [ACCESS_STATE_DONE] = "done",
        [ACCESS_STATE_FAILED] = "failed",   [ACCESS_STATE_SCHEDULED] = "scheduled",
};

const char *access_kind_to_string(AccessKind k) {
        if ((unsigned) k >= _ACCESS_KIND_MAX)
                return NULL;
        return kind_names[k];
}

int access_kind_from_string(const char *s, AccessKind *ret) {
        for (size_t i = 0; s && i < _ACCESS_KIND_MAX; i++)
                if (strcmp(s, kind_names[i]) == 0) {
                        *ret = (AccessKind) i;
                        return 0;
                }
        return -EINVAL;
}

const char *access_state_to_string(AccessState s) {
        if ((unsigned) s >= _ACCESS_STATE_MAX)
                return NULL;
        return state_names[s];
}

int access_state_from_string(const char *s, AccessState *ret) {
        for (size_t i = 0; s && i < _ACCESS_STATE_MAX; i++)
                if (strcmp(s, state_names[i]) == 0) {
                        *ret = (AccessState) i;
                        return 0;
                }
        return -EINVAL;
}

bool access_state_is_open(AccessState s) {
        return s == ACCESS_STATE_PENDING || s == ACCESS_STATE_GRANTED || s == ACCESS_STATE_SCHEDULED;
}

bool access_kind_is_store_wide(AccessKind k) {
        return k == ACCESS_KIND_PROTECTOR_ADD || k == ACCESS_KIND_PROTECTOR_REMOVE || k == ACCESS_KIND_PURGE ||
               k == ACCESS_KIND_HOST_ENROL || k == ACCESS_KIND_HOST_REMOVE;
}

/* Every store-wide kind but purge names its object: a protector or a fleet host (same name rule). */
static bool kind_has_target(AccessKind k) {
        return access_kind_is_store_wide(k) && k != ACCESS_KIND_PURGE;
}

bool access_caller_in_group(const AccessCaller *c, gid_t gid) {
        for (size_t i = 0; i < c->n_gids; i++)
                if (c->gids[i] == gid)
                        return true;
        return false;
}

static bool caller_in_any_level(const AccessRequest *r, const AccessCaller *c) {
        for (size_t i = 0; i < r->n_levels; i++)
                if (access_caller_in_group(c, r->levels[i]))
                        return true;
        return false;
}

static uint64_t add_saturated(uint64_t a, uint64_t b) {
        return b > UINT64_MAX - a ? UINT64_MAX : a + b;
}

/* C0, DEL and C1: none of them belongs in one line of an audit record or a D-Bus property. */
static bool is_control(uint32_t cp) {
        return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f);
}

/* Unicode's spaces count as blank too, or a justification of U+00A0 would pass for one. */
static bool is_blank(uint32_t cp) {
        return cp == ' ' || (cp >= '\t' && cp <= '\r') || cp == 0x85 || cp == 0xa0 || cp == 0x1680 ||
               (cp >= 0x2000 && cp <= 0x200b) || cp == 0x2028 || cp == 0x2029 || cp == 0x202f || cp == 0x205f ||
               cp == 0x3000 || cp == 0xfeff;
}

/* A justification (allow_blank false) or a reason (true): -ACCESS_ERRNO_JUSTIFICATION_REQUIRED
 * when blank and that is not allowed, -EINVAL when too long, not UTF-8 or with a control
 * character. Blank is checked first so that "\n" asks for a justification rather than
 * complaining about a control character. */
static int text_check(const char *s, bool allow_blank) {
        const unsigned char *u = (const unsigned char *) (s ?: "");
        size_t n = strlen((const char *) u);
        bool blank = true;

        for (size_t i = 0; i < n && blank;) {
                uint32_t cp;
                size_t l = utf8_decode(u + i, n - i, &cp);

                if (l == 0 || !is_blank(cp))
                        blank = false;
                i += l ?: 1;
        }
        if (blank && !allow_blank)
                return -ACCESS_ERRNO_JUSTIFICATION_REQUIRED;
        if (n > ACCESS_JUSTIFICATION_MAX)
                return -EINVAL;
        for (size_t i = 0; i < n;) {
                uint32_t cp;
                size_t l = utf8_decode(u + i, n - i, &cp);

                if (l == 0 || is_control(cp))
                        return -EINVAL;
                i += l;
        }
        return 0;
}

int access_request_init(AccessRequest *ret, AccessKind kind, const char *group, uint32_t generation,
                        uid_t requester, const char *justification, uint64_t duration_usec,
                        const StoreGroupPolicy *policy, uint64_t now_usec) {
        AccessRequest r;
        int k;

        if ((unsigned) kind >= _ACCESS_KIND_MAX || access_kind_is_store_wide(kind) || !store_group_name_is_valid(group) ||
            requester == (uid_t) -1 || !policy || store_group_policy_check(policy) < 0 || now_usec == 0 ||
            now_usec == UINT64_MAX)
                return -EINVAL;
        if ((kind == ACCESS_KIND_ACCESS) != (generation == 0))
                return -EINVAL;
        if (policy->n_approval_levels == 0)
                return -ACCESS_ERRNO_NO_APPROVERS;
        k = text_check(justification, false);
        if (k < 0)
                return k;
        if (kind == ACCESS_KIND_ACCESS) {
                if (duration_usec < ACCESS_DURATION_MIN_USEC || duration_usec > policy->max_grant_usec)
                        return -ACCESS_ERRNO_DURATION_TOO_LONG;
        } else if (duration_usec != 0)
                return -EINVAL;

        r = (AccessRequest) {
                .kind = kind,
                .generation = generation,
                .requester = requester,
                .duration_usec = duration_usec,
                .created_usec = now_usec,
                .deadline_usec = add_saturated(now_usec, policy->request_timeout_usec),
                .n_levels = policy->n_approval_levels,
                .state = ACCESS_STATE_PENDING,
        };
        strcpy(r.group, group);
        strcpy(r.justification, justification);
        memcpy(r.levels, policy->approval_levels, r.n_levels * sizeof(r.levels[0]));
        *ret = r;
        return 0;
}

/* A protector-add's spec: what dkmd will add, shown to approvers as is. */
static bool spec_is_valid(const char *spec) {
        return spec && spec[0] && strlen(spec) <= ACCESS_SPEC_MAX && text_check(spec, false) == 0;
}

int access_request_init_store(AccessRequest *ret, AccessKind kind, const char *target, const char *spec,
                              uid_t requester, const char *justification, const StorePolicy *policy,
                              uint64_t now_usec) {
        AccessRequest r;
        int k;

        if (!access_kind_is_store_wide(kind) || !target || requester == (uid_t) -1 || !policy ||
            store_policy_check(policy) < 0 || now_usec == 0 || now_usec == UINT64_MAX)
                return -EINVAL;
        if (kind_has_target(kind) ? !store_protector_name_is_valid(target) : target[0] != 0)
                return -EINVAL;
        if (kind == ACCESS_KIND_PROTECTOR_ADD ? !spec_is_valid(spec) : (spec && spec[0]))
                return -EINVAL;
        if (policy->n_approval_levels == 0)
                return -ACCESS_ERRNO_NO_APPROVERS;
        k = text_check(justification, false);
        if (k < 0)
                return k;

        r = (AccessRequest) {
                .kind = kind,
                .requester = requester,
                .created_usec = now_usec,
                .deadline_usec = add_saturated(now_usec, STORE_REQUEST_TIMEOUT_DEFAULT_USEC),
                .n_levels = policy->n_approval_levels,
                .state = ACCESS_STATE_PENDING,
        };
        strcpy(r.target, target);
        strcpy(r.spec, spec ?: "");
        strcpy(r.justification, justification);
        memcpy(r.levels, policy->approval_levels, r.n_levels * sizeof(r.levels[0]));
        *ret = r;
        return 0;
}

/* The refusals every step shares: a pending request past its deadline is as good as expired,
 * even before dkmd's timer has marked it. */
static int check_pending(const AccessRequest *r, uint64_t now_usec) {
        if (r->state == ACCESS_STATE_EXPIRED)
                return -ACCESS_ERRNO_REQUEST_EXPIRED;
        if (r->state != ACCESS_STATE_PENDING)
                return -ACCESS_ERRNO_REQUEST_CLOSED;
        if (now_usec >= r->deadline_usec)
                return -ACCESS_ERRNO_REQUEST_EXPIRED;
        return 0;
}

int access_check_approve(const AccessRequest *r, const AccessCaller *c, uint64_t now_usec) {
        int k;

        k = check_pending(r, now_usec);
        if (k < 0)
                return k;
        /* Before group membership: a requester who is also an approver must hear why. */
        if (c->uid == r->requester)
                return -ACCESS_ERRNO_SELF_APPROVAL;
        for (size_t i = 0; i < r->n_approvals; i++)
                if (r->approvals[i].uid == c->uid)
                        return -ACCESS_ERRNO_DUPLICATE_APPROVER;
        /* Fully approved but not yet granted: only the caller that made the last approval acts. */
        if (r->n_approvals >= r->n_levels)
                return -ACCESS_ERRNO_REQUEST_CLOSED;
        if (!access_caller_in_group(c, r->levels[r->n_approvals]))
                return -ACCESS_ERRNO_NOT_APPROVER;
        return (int) r->n_approvals;
}

int access_approve(AccessRequest *r, const AccessCaller *c, uint64_t now_usec) {
        if (r->n_approvals >= r->n_levels || r->n_levels > STORE_APPROVAL_LEVELS_MAX)
                return -EINVAL;
        r->approvals[r->n_approvals++] = (AccessApproval) { .uid = c->uid, .usec = now_usec };
        return r->n_approvals == r->n_levels;
}

int access_check_deny(const AccessRequest *r, const AccessCaller *c, const char *reason, uint64_t now_usec) {
        int k;

        k = text_check(reason, true);
        if (k < 0)
                return k;
        k = check_pending(r, now_usec);
        if (k < 0)
                return k;
        if (c->uid == r->requester)
                return -ACCESS_ERRNO_SELF_APPROVAL;
        if (!caller_in_any_level(r, c))
                return -ACCESS_ERRNO_NOT_APPROVER;
        return 0;
}

int access_check_cancel(const AccessRequest *r, const AccessCaller *c, uint64_t now_usec) {
        int k;

        /* A purge that waits for its time is stopped by anyone who could have stopped it before. */
        if (r->state == ACCESS_STATE_SCHEDULED)
                return c->uid == r->requester || caller_in_any_level(r, c) ? 0 : -EACCES;

        k = check_pending(r, now_usec);
        if (k < 0)
                return k;
        return c->uid == r->requester ? 0 : -EACCES;
}

int access_check_revoke(const AccessRequest *r, const AccessCaller *c) {
        if (r->state == ACCESS_STATE_EXPIRED)
                return -ACCESS_ERRNO_REQUEST_EXPIRED;
        if (r->state != ACCESS_STATE_GRANTED)
                return -ACCESS_ERRNO_REQUEST_CLOSED;
        return c->uid == r->requester || caller_in_any_level(r, c) ? 0 : -EACCES;
}

void access_grant(AccessRequest *r, uint64_t now_usec) {
        r->state = ACCESS_STATE_GRANTED;
        r->granted_usec = now_usec;
        r->expires_usec = add_saturated(now_usec, r->duration_usec);
}

void access_schedule(AccessRequest *r, uint64_t now_usec, uint64_t delay_usec) {
        r->state = ACCESS_STATE_SCHEDULED;
        r->granted_usec = now_usec;
        r->expires_usec = add_saturated(now_usec, delay_usec);
}

/* Copies s into out, cut at a character boundary to fit and with anything text_check() refuses
 * replaced by '?': a failure reason may come from anywhere, and a request that cannot be saved
 * and read back would be lost. */
static void copy_sanitized(char out[static ACCESS_JUSTIFICATION_MAX + 1], const char *s) {
        const unsigned char *u = (const unsigned char *) (s ?: "");
        size_t n = strlen((const char *) u), k = 0;

        for (size_t i = 0; i < n;) {
                uint32_t cp;
                size_t l = utf8_decode(u + i, n - i, &cp);

                if (l == 0 || is_control(cp)) {
                        if (k + 1 > ACCESS_JUSTIFICATION_MAX)
                                break;
                        out[k++] = '?';
                        i += l ?: 1;
                        continue;
                }
                if (k + l > ACCESS_JUSTIFICATION_MAX)
                        break;
                memcpy(out + k, u + i, l);
                k += l;
                i += l;
        }
        out[k] = 0;
}

void access_close(AccessRequest *r, AccessState s, uid_t by, const char *reason, uint64_t now_usec) {
        r->state = s;
        r->closed_by = by;
        r->closed_usec = now_usec;
        copy_sanitized(r->reason, reason);
}

uint64_t access_request_next_usec(const AccessRequest *r) {
        switch (r->state) {
        case ACCESS_STATE_PENDING:
                return r->deadline_usec;
        case ACCESS_STATE_GRANTED:
        case ACCESS_STATE_SCHEDULED:
                return r->expires_usec;
        default:
                return 0;
        }
}

/* ---- files ---- */

/* The keys, in the one order the writer uses. */
enum {
        KEY_FORMAT,
        KEY_ID,
        KEY_KIND,
        KEY_GROUP,
        KEY_GENERATION,
        KEY_TARGET,
        KEY_SPEC,
        KEY_REQUESTER,
        KEY_JUSTIFICATION,
        KEY_DURATION,
        KEY_CREATED,
        KEY_DEADLINE,
        KEY_LEVELS,
        KEY_APPROVALS,
        KEY_STATE,
        KEY_GRANTED,
        KEY_EXPIRES,
        KEY_CLOSED,
        KEY_CLOSED_BY,
        KEY_REASON,
        _KEY_MAX,
};
static const char *const keys[_KEY_MAX] = {
        [KEY_FORMAT] = "format",
        [KEY_ID] = "id",
        [KEY_KIND] = "kind",
        [KEY_GROUP] = "group",
        [KEY_GENERATION] = "generation",
        [KEY_TARGET] = "target",
        [KEY_SPEC] = "spec",
        [KEY_REQUESTER] = "requester",
        [KEY_JUSTIFICATION] = "justification",
        [KEY_DURATION] = "duration-usec",
        [KEY_CREATED] = "created-usec",
        [KEY_DEADLINE] = "deadline-usec",
        [KEY_LEVELS] = "levels",
        [KEY_APPROVALS] = "approvals",
        [KEY_STATE] = "state",
        [KEY_GRANTED] = "granted-usec",
        [KEY_EXPIRES] = "expires-usec",
        [KEY_CLOSED] = "closed-usec",
        [KEY_CLOSED_BY] = "closed-by",
        [KEY_REASON] = "reason",
};

/* Access states that a grant went through. */
static bool state_is_grant(AccessState s) {
        return s == ACCESS_STATE_GRANTED || s == ACCESS_STATE_ENDED || s == ACCESS_STATE_REVOKED;
}

/* States that only a fully approved request reaches. */
static bool state_needs_approvals(AccessState s) {
        return state_is_grant(s) || s == ACCESS_STATE_DONE || s == ACCESS_STATE_FAILED || s == ACCESS_STATE_SCHEDULED;
}

/* Access requests are granted, never "done"; only a purge waits scheduled; the others are done. */
static bool state_fits_kind(AccessKind k, AccessState s) {
        if (k == ACCESS_KIND_ACCESS)
                return s != ACCESS_STATE_DONE && s != ACCESS_STATE_SCHEDULED;
        if (state_is_grant(s))
                return false;
        return s != ACCESS_STATE_SCHEDULED || k == ACCESS_KIND_PURGE;
}

/* Whether a request of kind k in state s carries grant times (granted/expires): a grant, or a
 * purge that was scheduled (and then cancelled, done, or failed). */
static bool grant_times_fit(AccessKind k, AccessState s) {
        if (k == ACCESS_KIND_ACCESS) /* a failed access may have failed after it was granted */
                return state_is_grant(s) || s == ACCESS_STATE_FAILED;
        return k == ACCESS_KIND_PURGE && (s == ACCESS_STATE_SCHEDULED || s == ACCESS_STATE_CANCELLED ||
                                          s == ACCESS_STATE_DONE || s == ACCESS_STATE_FAILED);
}

/* What names the object of a request: a group (and a generation to retire), or for the
 * store-wide kinds a protector (and what to add) or nothing (purge). */
static int check_target(const AccessRequest *r, KvError *e) {
        bool store_wide = access_kind_is_store_wide(r->kind);

        if (strnlen(r->group, sizeof(r->group)) == sizeof(r->group) ||
            (store_wide ? r->group[0] != 0 : !store_group_name_is_valid(r->group)))
                return kverror_set(e, 0, store_wide ? "store-wide request names a group" : "invalid group name");
        if (r->kind == ACCESS_KIND_RETIRE ? r->generation == 0 : r->generation != 0)
                return kverror_set(e, 0, r->generation == 0 ? "retire request names no generation"
                                                            : "%s request names a generation", kind_names[r->kind]);
        if (strnlen(r->target, sizeof(r->target)) == sizeof(r->target) ||
            (kind_has_target(r->kind) ? !store_protector_name_is_valid(r->target) : r->target[0] != 0))
                return kverror_set(e, 0, "invalid target for a %s request", kind_names[r->kind]);
        if (strnlen(r->spec, sizeof(r->spec)) == sizeof(r->spec) ||
            (r->kind == ACCESS_KIND_PROTECTOR_ADD ? !spec_is_valid(r->spec) : r->spec[0] != 0))
                return kverror_set(e, 0, "invalid spec for a %s request", kind_names[r->kind]);
        return 0;
}

/* Every rule a request must meet, whatever it went through: the formatter refuses to write what
 * the parser would refuse to read, so dkmd never saves a request it cannot load again. The times
 * of different steps are not compared: CLOCK_REALTIME may step back between two of them, and a
 * request dkmd could not save would be worse than one whose times look odd. */
static int request_check(const AccessRequest *r, KvError *e) {
        bool was_granted;

        if (r->id == 0)
                return kverror_set(e, 0, "id 0");
        if ((unsigned) r->kind >= _ACCESS_KIND_MAX)
                return kverror_set(e, 0, "unknown kind");
        if (check_target(r, e) < 0)
                return -EBADMSG;
        if (r->requester == (uid_t) -1)
                return kverror_set(e, 0, "invalid requester");
        if (strnlen(r->justification, sizeof(r->justification)) == sizeof(r->justification) ||
            text_check(r->justification, false) < 0)
                return kverror_set(e, 0, "invalid justification");
        if (r->kind == ACCESS_KIND_ACCESS && r->duration_usec < ACCESS_DURATION_MIN_USEC)
                return kverror_set(e, 0, "access duration under 1 s");
        if (r->kind != ACCESS_KIND_ACCESS && r->duration_usec != 0)
                return kverror_set(e, 0, "%s request with a duration", kind_names[r->kind]);
        if (r->created_usec == 0)
                return kverror_set(e, 0, "no creation time");
        if (r->deadline_usec <= r->created_usec)
                return kverror_set(e, 0, "deadline not after creation");

        if (r->n_levels == 0 || r->n_levels > STORE_APPROVAL_LEVELS_MAX)
                return kverror_set(e, 0, "not 1 to %u approval levels", STORE_APPROVAL_LEVELS_MAX);
        for (size_t i = 0; i < r->n_levels; i++) {
                if (r->levels[i] == (gid_t) -1)
                        return kverror_set(e, 0, "invalid approval level gid");
                for (size_t j = 0; j < i; j++)
                        if (r->levels[j] == r->levels[i])
                                return kverror_set(e, 0, "gid %u appears at two approval levels",
                                                   (unsigned) r->levels[i]);
        }
        if (r->n_approvals > r->n_levels)
                return kverror_set(e, 0, "more approvals than approval levels");
        for (size_t i = 0; i < r->n_approvals; i++) {
                const AccessApproval *a = &r->approvals[i];

                if (a->uid == (uid_t) -1)
                        return kverror_set(e, 0, "invalid approver uid");
                if (a->uid == r->requester)
                        return kverror_set(e, 0, "approved by the requester");
                for (size_t j = 0; j < i; j++)
                        if (r->approvals[j].uid == a->uid)
                                return kverror_set(e, 0, "uid %u approved two levels", (unsigned) a->uid);
        }

        if ((unsigned) r->state >= _ACCESS_STATE_MAX)
                return kverror_set(e, 0, "unknown state");
        if (!state_fits_kind(r->kind, r->state))
                return kverror_set(e, 0, "%s request in state %s", kind_names[r->kind], state_names[r->state]);

        /* Only an approved request can have been granted, carried out, or have failed at that. */
        if (state_needs_approvals(r->state) && r->n_approvals != r->n_levels)
                return kverror_set(e, 0, "%s with %zu of %zu approvals", state_names[r->state], r->n_approvals,
                                   r->n_levels);
        was_granted = r->granted_usec != 0 || r->expires_usec != 0;
        if ((state_is_grant(r->state) || r->state == ACCESS_STATE_SCHEDULED) && !was_granted)
                return kverror_set(e, 0, "%s without granted and expiry times", state_names[r->state]);
        if (was_granted) {
                if (!grant_times_fit(r->kind, r->state))
                        return kverror_set(e, 0, "%s request with a grant", state_names[r->state]);
                if (r->granted_usec == 0 || r->expires_usec <= r->granted_usec)
                        return kverror_set(e, 0, "grant times out of order");
        }

        if (access_state_is_open(r->state)) {
                if (r->closed_usec != 0 || r->closed_by != 0 || r->reason[0] != 0)
                        return kverror_set(e, 0, "open request with closing details");
        } else if (r->closed_usec == 0)
                return kverror_set(e, 0, "%s request without a closing time", state_names[r->state]);
        if (r->closed_by == (uid_t) -1)
                return kverror_set(e, 0, "invalid closed-by uid");
        if (strnlen(r->reason, sizeof(r->reason)) == sizeof(r->reason) || text_check(r->reason, true) < 0)
                return kverror_set(e, 0, "invalid reason");
        return 0;
}

static int parse_uid(const char *v, uid_t *ret) {
        uint64_t u;

        /* (uid_t) -1 means "no uid" to every system call, so it is never one. */
        if (kv_parse_u64(v, UINT32_MAX - 1, &u) < 0)
                return -EBADMSG;
        *ret = (uid_t) u;
        return 0;
}

static int parse_text(const char *v, char out[static ACCESS_JUSTIFICATION_MAX + 1]) {
        _cleanup_free_ char *s = NULL;

        if (kv_unescape(v, ACCESS_JUSTIFICATION_MAX, &s) < 0)
                return -EBADMSG;
        strcpy(out, s);
        return 0;
}

/* "GID GID ...", in level order. */
static int parse_levels(AccessRequest *r, char *v) {
        char *f[STORE_APPROVAL_LEVELS_MAX];
        size_t n;
        uint64_t u;

        if (kv_split_fields(v, f, ELEMENTSOF(f), &n) < 0)
                return -EBADMSG;
        for (size_t i = 0; i < n; i++) {
                if (kv_parse_u64(f[i], UINT32_MAX - 1, &u) < 0)
                        return -EBADMSG;
                r->levels[i] = (gid_t) u;
        }
        r->n_levels = n;
        return 0;
}

/* "UID USEC UID USEC ...", one pair per approved level, in order; empty for none. */
static int parse_approvals(AccessRequest *r, char *v) {
        char *f[2 * STORE_APPROVAL_LEVELS_MAX];
        size_t n = 0;

        if (*v && kv_split_fields(v, f, ELEMENTSOF(f), &n) < 0)
                return -EBADMSG;
        if (n % 2 != 0)
                return -EBADMSG;
        for (size_t i = 0; i < n / 2; i++)
                if (parse_uid(f[2 * i], &r->approvals[i].uid) < 0 ||
                    kv_parse_u64(f[2 * i + 1], UINT64_MAX, &r->approvals[i].usec) < 0)
                        return -EBADMSG;
        r->n_approvals = n / 2;
        return 0;
}

static int parse_value(AccessRequest *r, unsigned k, char *v, uint64_t expected_id, unsigned line, KvError *e) {
        uint64_t u;

        switch (k) {
        case KEY_FORMAT:
                return kv_parse_format(v, REQUEST_FILE_FORMAT, "request file", line, e);
        case KEY_ID:
                if (kv_parse_u64(v, UINT64_MAX, &r->id) < 0 || r->id == 0)
                        return kverror_set(e, line, "malformed id");
                if (expected_id != 0 && r->id != expected_id)
                        return kverror_set(e, line, "id %llu does not match the file name (%llu)",
                                           (unsigned long long) r->id, (unsigned long long) expected_id);
                return 0;
        case KEY_KIND:
                if (access_kind_from_string(v, &r->kind) < 0)
                        return kverror_set(e, line, "unknown kind");
                return 0;
        case KEY_GROUP: /* empty for the store-wide kinds; request_check() matches it to the kind */
                if (v[0] && !store_group_name_is_valid(v))
                        return kverror_set(e, line, "invalid group name");
                strcpy(r->group, v);
                return 0;
        case KEY_TARGET:
                if (v[0] && !store_protector_name_is_valid(v))
                        return kverror_set(e, line, "invalid target");
                strcpy(r->target, v);
                return 0;
        case KEY_SPEC: {
                _cleanup_free_ char *t = NULL;

                if (kv_unescape(v, ACCESS_SPEC_MAX, &t) < 0)
                        return kverror_set(e, line, "malformed spec");
                strcpy(r->spec, t);
                return 0;
        }
        case KEY_GENERATION:
                if (kv_parse_u64(v, UINT32_MAX, &u) < 0)
                        return kverror_set(e, line, "malformed generation");
                r->generation = (uint32_t) u;
                return 0;
        case KEY_REQUESTER:
                if (parse_uid(v, &r->requester) < 0)
                        return kverror_set(e, line, "malformed requester uid");
                return 0;
        case KEY_JUSTIFICATION:
                if (parse_text(v, r->justification) < 0)
                        return kverror_set(e, line, "malformed justification");
                return 0;
        case KEY_DURATION:
                if (kv_parse_u64(v, UINT64_MAX, &r->duration_usec) < 0)
                        return kverror_set(e, line, "malformed duration");
                return 0;
        case KEY_CREATED:
                if (kv_parse_u64(v, UINT64_MAX, &r->created_usec) < 0)
                        return kverror_set(e, line, "malformed creation time");
                return 0;
        case KEY_DEADLINE:
                if (kv_parse_u64(v, UINT64_MAX, &r->deadline_usec) < 0)
                        return kverror_set(e, line, "malformed deadline");
                return 0;
        case KEY_LEVELS:
                if (parse_levels(r, v) < 0)
                        return kverror_set(e, line, "malformed approval levels (1 to %u gids)",
                                           STORE_APPROVAL_LEVELS_MAX);
                return 0;
        case KEY_APPROVALS:
                if (parse_approvals(r, v) < 0)
                        return kverror_set(e, line, "malformed approvals (up to %u 'UID USEC' pairs)",
                                           STORE_APPROVAL_LEVELS_MAX);
                return 0;
        case KEY_STATE:
                if (access_state_from_string(v, &r->state) < 0)
                        return kverror_set(e, line, "unknown state");
                return 0;
        case KEY_GRANTED:
                if (kv_parse_u64(v, UINT64_MAX, &r->granted_usec) < 0)
                        return kverror_set(e, line, "malformed grant time");
                return 0;
        case KEY_EXPIRES:
                if (kv_parse_u64(v, UINT64_MAX, &r->expires_usec) < 0)
                        return kverror_set(e, line, "malformed expiry time");
                return 0;
        case KEY_CLOSED:
                if (kv_parse_u64(v, UINT64_MAX, &r->closed_usec) < 0)
                        return kverror_set(e, line, "malformed closing time");
                return 0;
        case KEY_CLOSED_BY:
                if (parse_uid(v, &r->closed_by) < 0)
                        return kverror_set(e, line, "malformed closed-by uid");
                return 0;
        case KEY_REASON:
                if (parse_text(v, r->reason) < 0)
                        return kverror_set(e, line, "malformed reason");
                return 0;
        }
        return -EINVAL;
}

static void set_error(char *error, size_t error_size, const KvError *e) {
        if (!error || error_size == 0)
                return;
        if (e->line > 0)
                (void) snprintf(error, error_size, "line %u: %s", e->line, e->msg);
        else
                (void) snprintf(error, error_size, "%s", e->msg);
}

static int request_parse(const char *data, size_t size, uint64_t expected_id, AccessRequest *ret, KvError *e) {
        AccessRequest req = {};
        KvReader rd = {};
        unsigned next = 0;
        uint64_t format = 0;
        int r;

        /* Checksum before anything else, as in group files: corruption is never read as content. */
        r = kvreader_init_verified(&rd, data, size, e);
        if (r < 0)
                return r;
        while ((r = kvreader_next(&rd, e)) > 0) {
                unsigned k;

                for (k = 0; k < _KEY_MAX; k++)
                        if (strcmp(rd.key, keys[k]) == 0)
                                break;
                if (k == _KEY_MAX) {
                        r = kverror_set(e, rd.line, "unknown key '%.64s'", rd.key);
                        break;
                }
                if (k < next) {
                        r = kverror_set(e, rd.line, "duplicate key '%s'", rd.key);
                        break;
                }
                if (k > next) {
                        r = kverror_set(e, rd.line, "key '%s' out of order (expected '%s')", rd.key, keys[next]);
                        break;
                }
                r = parse_value(&req, k, rd.value, expected_id, rd.line, e);
                if (r < 0)
                        break;
                if (k == KEY_FORMAT && kv_parse_u64(rd.value, UINT32_MAX, &format) < 0)
                        format = 0; /* parse_value() took it already */
                next++;
                /* Format 1 (dkm before the store-wide kinds) has neither target= nor spec=. */
                if (next == KEY_TARGET && format == 1)
                        next = KEY_REQUESTER;
        }
        kvreader_done(&rd);
        if (r < 0)
                return r;
        if (next < _KEY_MAX)
                return kverror_set(e, 0, "'%s' missing", keys[next]);
        r = request_check(&req, e);
        if (r < 0)
                return r;
        *ret = req;
        return 0;
}

int access_request_parse(const char *data, size_t size, uint64_t expected_id, AccessRequest *ret, char *error,
                         size_t error_size) {
        KvError e = {};
        int r;

        r = request_parse(data, size, expected_id, ret, &e);
        if (r < 0 && r != -ENOMEM)
                set_error(error, error_size, &e);
        return r;
}

int access_request_format(const AccessRequest *r, char **ret, size_t *ret_size) {
        KvBuf b = {};
        int k;

        if (request_check(r, NULL) < 0)
                return -EINVAL;

        kvbuf_printf(&b, "format=%d\nid=%llu\nkind=%s\ngroup=%s\ngeneration=%u\ntarget=%s\nspec=",
                     REQUEST_FILE_FORMAT, (unsigned long long) r->id, kind_names[r->kind], r->group,
                     (unsigned) r->generation, r->target);
        kvbuf_put_escaped(&b, r->spec);
        kvbuf_printf(&b, "\nrequester=%u\njustification=", (unsigned) r->requester);
        kvbuf_put_escaped(&b, r->justification);
        kvbuf_printf(&b, "\nduration-usec=%llu\ncreated-usec=%llu\ndeadline-usec=%llu\nlevels=",
                     (unsigned long long) r->duration_usec, (unsigned long long) r->created_usec,
                     (unsigned long long) r->deadline_usec);
        for (size_t i = 0; i < r->n_levels; i++)
                kvbuf_printf(&b, "%s%u", i > 0 ? " " : "", (unsigned) r->levels[i]);
        kvbuf_printf(&b, "\napprovals=");
        for (size_t i = 0; i < r->n_approvals; i++)
                kvbuf_printf(&b, "%s%u %llu", i > 0 ? " " : "", (unsigned) r->approvals[i].uid,
                             (unsigned long long) r->approvals[i].usec);
        kvbuf_printf(&b, "\nstate=%s\ngranted-usec=%llu\nexpires-usec=%llu\nclosed-usec=%llu\nclosed-by=%u\nreason=",
                     state_names[r->state], (unsigned long long) r->granted_usec,
                     (unsigned long long) r->expires_usec, (unsigned long long) r->closed_usec,
                     (unsigned) r->closed_by);
        kvbuf_put_escaped(&b, r->reason);
        kvbuf_printf(&b, "\n");

        k = kvbuf_finish(&b, ret, ret_size);
        kvbuf_done(&b);
        return k;
}

int access_request_save(int dirfd, const AccessRequest *r) {
        _cleanup_free_ char *text = NULL;
        char name[32];
        size_t size;
        int k;

        k = access_request_format(r, &text, &size);
        if (k < 0)
                return k;
        (void) snprintf(name, sizeof(name), "%llu" REQUEST_SUFFIX, (unsigned long long) r->id);
        return write_file_atomic(dirfd, name, text, size, 0600);
}

/* The id a file name stands for: "<id>.request" with a canonical id; 0 if it is not one. */
static uint64_t id_of_name(const char *name) {
        size_t n = strlen(name), l = strlen(REQUEST_SUFFIX);
        char stem[21];
        uint64_t id;

        if (n <= l || n - l >= sizeof(stem))
                return 0;
        memcpy(stem, name, n - l);
        stem[n - l] = 0;
        if (kv_parse_u64(stem, UINT64_MAX, &id) < 0)
                return 0;
        return id;
}

static bool has_suffix(const char *s, const char *suffix) {
        size_t n = strlen(s), l = strlen(suffix);

        return n >= l && strcmp(s + n - l, suffix) == 0;
}

/* Appends "NAME: what" to *l (NULL-terminated, *n entries); a name is printed with anything but
 * printable ASCII as \xHH, since the line ends up in the journal. */
static int problem_add(char ***l, size_t *n, const char *name, const char *fmt, ...) _printf_(4, 5);
static int problem_add(char ***l, size_t *n, const char *name, const char *fmt, ...) {
        _cleanup_free_ char *what = NULL, *esc = NULL;
        char **a, *line;
        size_t k = 0;
        va_list ap;
        int r;

        if (!l)
                return 0;
        va_start(ap, fmt);
        r = vasprintf(&what, fmt, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        esc = malloc(4 * strlen(name) + 1);
        if (!esc)
                return -ENOMEM;
        for (const unsigned char *p = (const unsigned char *) name; *p; p++)
                if (*p > 0x20 && *p < 0x7f && *p != '\\')
                        esc[k++] = (char) *p;
                else
                        k += (size_t) sprintf(esc + k, "\\x%02x", *p);
        esc[k] = 0;
        if (asprintf(&line, "%s: %s", esc, what) < 0)
                return -ENOMEM;
        a = realloc(*l, (*n + 2) * sizeof(char *));
        if (!a) {
                free(line);
                return -ENOMEM;
        }
        a[(*n)++] = line;
        a[*n] = NULL;
        *l = a;
        return 0;
}

static int compare_id(const void *a, const void *b) {
        const AccessRequest *x = a, *y = b;

        return x->id < y->id ? -1 : x->id > y->id;
}

static void *mfree(void *p) {
        free(p);
        return NULL;
}

static void closedirp(DIR **d) {
        if (*d)
                (void) closedir(*d);
}

int access_request_load_all(int dirfd, AccessRequest **ret, size_t *ret_n, char ***ret_problems) {
        _cleanup_free_ AccessRequest *list = NULL;
        _cleanup_strv_free_ char **problems = NULL;
        _cleanup_(closedirp) DIR *d = NULL;
        _cleanup_close_ int fd = -EBADF;
        size_t n = 0, allocated = 0, n_problems = 0;
        char ***pp = ret_problems ? &problems : NULL;
        int r = 0;

        if (pp) {
                problems = calloc(1, sizeof(char *));
                if (!problems)
                        return -ENOMEM;
        }
        /* Our own open file description: fdopendir() takes the fd over and reads from its offset. */
        fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        d = fdopendir(fd);
        if (!d)
                return negative_errno();
        TAKE_FD(fd);

        for (;;) {
                _cleanup_free_ char *data = NULL;
                char error[256] = "";
                struct dirent *de;
                struct stat st;
                uint64_t id;
                size_t size;

                errno = 0;
                de = readdir(d);
                if (!de) {
                        if (errno != 0)
                                r = -errno;
                        break;
                }
                if (de->d_name[0] == '.' || !has_suffix(de->d_name, REQUEST_SUFFIX))
                        continue; /* ".", "..", write_file_atomic()'s temporary files, anything else */

                id = id_of_name(de->d_name);
                if (id == 0) {
                        r = problem_add(pp, &n_problems, de->d_name, "not a request file name (<id>.request)");
                        if (r < 0)
                                break;
                        continue;
                }
                /* Checked before opening: a FIFO would block the open. */
                if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        if (errno == ENOENT)
                                continue; /* removed meanwhile */
                        r = problem_add(pp, &n_problems, de->d_name, "%s", strerror(errno));
                        if (r < 0)
                                break;
                        continue;
                }
                if (!S_ISREG(st.st_mode)) {
                        r = problem_add(pp, &n_problems, de->d_name, "not a regular file");
                        if (r < 0)
                                break;
                        continue;
                }
                r = read_file_full(dirfd, de->d_name, REQUEST_FILE_MAX, &data, &size);
                if (r == -ENOMEM)
                        break;
                if (r < 0) {
                        r = r == -EFBIG ? problem_add(pp, &n_problems, de->d_name, "larger than %u KiB",
                                                      REQUEST_FILE_MAX >> 10)
                                        : problem_add(pp, &n_problems, de->d_name, "%s", strerror(-r));
                        if (r < 0)
                                break;
                        continue;
                }

                if (n == allocated) {
                        size_t want = allocated ? allocated * 2 : 16;
                        AccessRequest *a = reallocarray(list, want, sizeof(*a));

                        if (!a) {
                                r = -ENOMEM;
                                break;
                        }
                        list = a;
                        allocated = want;
                }
                r = access_request_parse(data, size, id, &list[n], error, sizeof(error));
                if (r == -ENOMEM)
                        break;
                if (r < 0) {
                        r = problem_add(pp, &n_problems, de->d_name, "%s", error);
                        if (r < 0)
                                break;
                        continue;
                }
                n++;
        }
        if (r < 0)
                return r;

        if (n > 0)
                qsort(list, n, sizeof(*list), compare_id);
        else
                list = mfree(list);
        *ret = TAKE_PTR(list);
        *ret_n = n;
        if (ret_problems)
                *ret_problems = TAKE_PTR(problems);
        return 0;
}
