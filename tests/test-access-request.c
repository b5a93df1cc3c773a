/* SPDX-License-Identifier: MIT */
/* Tests for break-glass requests: every rule of each step, the file format, saving and loading a directory. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "access-request.h"
#include "crypto.h"
#include "kvfile.h"
#include "test-helpers.h"

#define NOW 1700000000000000ULL
#define SEC 1000000ULL
#define GID_L0 2001U /* the first approval level's group */
#define GID_L1 2002U
#define GID_OTHER 3000U
#define REQUESTER 1000U

static const gid_t none[] = { 0 };
static const gid_t g_l0[] = { 100, GID_L0 };
static const gid_t g_l1[] = { GID_L1 };
static const gid_t g_both[] = { GID_L0, GID_L1 };
static const gid_t g_other[] = { GID_OTHER, 100 };

#define CALLER(u, g) ((AccessCaller) { .uid = (u), .gids = (g), .n_gids = ELEMENTSOF(g) })
#define NOBODY(u) ((AccessCaller) { .uid = (u), .gids = none, .n_gids = 0 })

static StoreGroupPolicy two_levels(void) {
        StoreGroupPolicy p = STORE_GROUP_POLICY_DEFAULT;

        p.approval_levels[0] = GID_L0;
        p.approval_levels[1] = GID_L1;
        p.n_approval_levels = 2;
        return p;
}

/* A pending access request of REQUESTER for "mail", levels GID_L0 then GID_L1, id 1. */
static AccessRequest new_request(void) {
        StoreGroupPolicy p = two_levels();
        AccessRequest r;

        ck_assert_int_eq(access_request_init(&r, ACCESS_KIND_ACCESS, "mail", 0, REQUESTER, "INC-4711: restore a mailbox",
                                             600 * SEC, &p, NOW),
                         0);
        r.id = 1;
        return r;
}

/* A pending store-wide request of REQUESTER, levels GID_L0 then GID_L1, id 1. */
static AccessRequest new_store_request(AccessKind kind, const char *target, const char *spec) {
        StorePolicy p = STORE_POLICY_DEFAULT;
        AccessRequest r;

        p.approval_levels[0] = GID_L0;
        p.approval_levels[1] = GID_L1;
        p.n_approval_levels = 2;
        ck_assert_int_eq(access_request_init_store(&r, kind, target, spec, REQUESTER, "customer ended the contract", &p,
                                                   NOW),
                         0);
        r.id = 1;
        return r;
}

static int init_access(const char *justification, uint64_t duration) {
        StoreGroupPolicy p = two_levels();
        AccessRequest r;

        return access_request_init(&r, ACCESS_KIND_ACCESS, "mail", 0, REQUESTER, justification, duration, &p, NOW);
}

/* Approves both levels (1001 of GID_L0, 1002 of GID_L1). */
static void approve_all(AccessRequest *r) {
        AccessCaller a = CALLER(1001, g_l0), b = CALLER(1002, g_l1);

        ck_assert_int_eq(access_check_approve(r, &a, NOW + SEC), 0);
        ck_assert_int_eq(access_approve(r, &a, NOW + SEC), 0);
        ck_assert_int_eq(access_check_approve(r, &b, NOW + 2 * SEC), 1);
        ck_assert_int_eq(access_approve(r, &b, NOW + 2 * SEC), 1);
}

START_TEST(test_names) {
        AccessKind k;
        AccessState s;

        for (int i = 0; i < _ACCESS_KIND_MAX; i++) {
                ck_assert_ptr_nonnull(access_kind_to_string((AccessKind) i));
                ck_assert_int_eq(access_kind_from_string(access_kind_to_string((AccessKind) i), &k), 0);
                ck_assert_int_eq(k, i);
        }
        for (int i = 0; i < _ACCESS_STATE_MAX; i++) {
                ck_assert_ptr_nonnull(access_state_to_string((AccessState) i));
                ck_assert_int_eq(access_state_from_string(access_state_to_string((AccessState) i), &s), 0);
                ck_assert_int_eq(s, i);
                ck_assert(access_state_is_open((AccessState) i) ==
                          (i == ACCESS_STATE_PENDING || i == ACCESS_STATE_GRANTED || i == ACCESS_STATE_SCHEDULED));
        }
        ck_assert_str_eq(access_kind_to_string(ACCESS_KIND_RETIRE), "retire");
        ck_assert_str_eq(access_state_to_string(ACCESS_STATE_CANCELLED), "cancelled");
        ck_assert_ptr_null(access_kind_to_string(_ACCESS_KIND_MAX));
        ck_assert_ptr_null(access_state_to_string(_ACCESS_STATE_MAX));
        ck_assert_int_eq(access_kind_from_string("Access", &k), -EINVAL);
        ck_assert_int_eq(access_state_from_string("", &s), -EINVAL);
        ck_assert_int_eq(access_state_from_string(NULL, &s), -EINVAL);
}
END_TEST

START_TEST(test_caller_in_group) {
        AccessCaller c = CALLER(5, g_other), n = NOBODY(5);

        ck_assert(access_caller_in_group(&c, GID_OTHER));
        ck_assert(access_caller_in_group(&c, 100));
        ck_assert(!access_caller_in_group(&c, GID_L0));
        ck_assert(!access_caller_in_group(&n, 0));
}
END_TEST

START_TEST(test_init) {
        StoreGroupPolicy p = two_levels();
        AccessRequest r = new_request();

        ck_assert_uint_eq(r.kind, ACCESS_KIND_ACCESS);
        ck_assert_str_eq(r.group, "mail");
        ck_assert_uint_eq(r.generation, 0);
        ck_assert_uint_eq(r.requester, REQUESTER);
        ck_assert_str_eq(r.justification, "INC-4711: restore a mailbox");
        ck_assert_uint_eq(r.duration_usec, 600 * SEC);
        ck_assert_uint_eq(r.created_usec, NOW);
        ck_assert_uint_eq(r.deadline_usec, NOW + STORE_REQUEST_TIMEOUT_DEFAULT_USEC);
        ck_assert_uint_eq(r.n_levels, 2);
        ck_assert_uint_eq(r.levels[0], GID_L0);
        ck_assert_uint_eq(r.levels[1], GID_L1);
        ck_assert_uint_eq(r.n_approvals, 0);
        ck_assert_int_eq(r.state, ACCESS_STATE_PENDING);
        ck_assert_uint_eq(r.granted_usec + r.expires_usec + r.closed_usec + r.closed_by, 0);
        ck_assert_str_eq(r.reason, "");

        /* a request made id 0: the caller assigns one */
        ck_assert_int_eq(access_request_init(&r, ACCESS_KIND_ACCESS, "mail", 0, REQUESTER, "x", SEC, &p, NOW), 0);
        ck_assert_uint_eq(r.id, 0);

        /* retire: a generation, no duration */
        ck_assert_int_eq(access_request_init(&r, ACCESS_KIND_RETIRE, "mail", 3, REQUESTER, "old key", 0, &p, NOW), 0);
        ck_assert_uint_eq(r.generation, 3);
        ck_assert_int_eq(access_request_init(&r, ACCESS_KIND_RETIRE, "mail", 3, REQUESTER, "old key", SEC, &p, NOW),
                         -EINVAL);
        ck_assert_int_eq(access_request_init(&r, ACCESS_KIND_RETIRE, "mail", 0, REQUESTER, "old key", 0, &p, NOW),
                         -EINVAL);
        ck_assert_int_eq(access_request_init(&r, ACCESS_KIND_ACCESS, "mail", 3, REQUESTER, "x", SEC, &p, NOW), -EINVAL);

        /* arguments no caller should pass */
        ck_assert_int_eq(access_request_init(&r, ACCESS_KIND_ACCESS, "Mail", 0, REQUESTER, "x", SEC, &p, NOW), -EINVAL);
        ck_assert_int_eq(access_request_init(&r, _ACCESS_KIND_MAX, "mail", 0, REQUESTER, "x", SEC, &p, NOW), -EINVAL);
        ck_assert_int_eq(access_request_init(&r, ACCESS_KIND_ACCESS, "mail", 0, (uid_t) -1, "x", SEC, &p, NOW), -EINVAL);
        ck_assert_int_eq(access_request_init(&r, ACCESS_KIND_ACCESS, "mail", 0, REQUESTER, "x", SEC, &p, 0), -EINVAL);
        p.approval_levels[1] = GID_L0;
        ck_assert_int_eq(access_request_init(&r, ACCESS_KIND_ACCESS, "mail", 0, REQUESTER, "x", SEC, &p, NOW), -EINVAL);
}
END_TEST

START_TEST(test_init_levels) {
        StoreGroupPolicy p = STORE_GROUP_POLICY_DEFAULT;
        AccessRequest r;

        ck_assert_int_eq(access_request_init(&r, ACCESS_KIND_ACCESS, "mail", 0, REQUESTER, "x", SEC, &p, NOW),
                         -ACCESS_ERRNO_NO_APPROVERS);
        ck_assert_int_eq(access_request_init(&r, ACCESS_KIND_RETIRE, "mail", 2, REQUESTER, "x", 0, &p, NOW),
                         -ACCESS_ERRNO_NO_APPROVERS);
        /* no levels is said before a bad justification: nothing the caller writes would help */
        ck_assert_int_eq(access_request_init(&r, ACCESS_KIND_ACCESS, "mail", 0, REQUESTER, "", SEC, &p, NOW),
                         -ACCESS_ERRNO_NO_APPROVERS);

        /* the levels are copied: a later policy change does not change an open request */
        for (unsigned i = 0; i < STORE_APPROVAL_LEVELS_MAX; i++)
                p.approval_levels[i] = 5000 + i;
        p.n_approval_levels = STORE_APPROVAL_LEVELS_MAX;
        ck_assert_int_eq(access_request_init(&r, ACCESS_KIND_ACCESS, "mail", 0, REQUESTER, "x", SEC, &p, NOW), 0);
        p.approval_levels[0] = 1;
        p.n_approval_levels = 1;
        ck_assert_uint_eq(r.n_levels, STORE_APPROVAL_LEVELS_MAX);
        ck_assert_uint_eq(r.levels[0], 5000);
        ck_assert_uint_eq(r.levels[7], 5007);
}
END_TEST

START_TEST(test_justification) {
        char s[ACCESS_JUSTIFICATION_MAX + 2];

        ck_assert_int_eq(init_access("", SEC), -ACCESS_ERRNO_JUSTIFICATION_REQUIRED);
        ck_assert_int_eq(init_access(NULL, SEC), -ACCESS_ERRNO_JUSTIFICATION_REQUIRED);
        ck_assert_int_eq(init_access("   ", SEC), -ACCESS_ERRNO_JUSTIFICATION_REQUIRED);
        ck_assert_int_eq(init_access(" \t\r\n ", SEC), -ACCESS_ERRNO_JUSTIFICATION_REQUIRED);
        ck_assert_int_eq(init_access("\xc2\xa0\xe3\x80\x80", SEC), -ACCESS_ERRNO_JUSTIFICATION_REQUIRED); /* NBSP, ideographic */

        /* exactly the maximum, then one byte more */
        memset(s, 'j', sizeof(s));
        s[ACCESS_JUSTIFICATION_MAX] = 0;
        ck_assert_int_eq(init_access(s, SEC), 0);
        s[ACCESS_JUSTIFICATION_MAX] = 'j';
        s[ACCESS_JUSTIFICATION_MAX + 1] = 0;
        ck_assert_int_eq(init_access(s, SEC), -EINVAL);
        memset(s, ' ', ACCESS_JUSTIFICATION_MAX + 1); /* blank is blank, however long */
        ck_assert_int_eq(init_access(s, SEC), -ACCESS_ERRNO_JUSTIFICATION_REQUIRED);

        /* control characters */
        ck_assert_int_eq(init_access("line one\nline two", SEC), -EINVAL);
        ck_assert_int_eq(init_access("a\tb", SEC), -EINVAL);
        ck_assert_int_eq(init_access("bell\x07", SEC), -EINVAL);
        ck_assert_int_eq(init_access("del\x7f", SEC), -EINVAL);
        ck_assert_int_eq(init_access("c1 \xc2\x9b", SEC), -EINVAL); /* U+009B, the C1 CSI */
        ck_assert_int_eq(init_access("esc \x1b[31mred", SEC), -EINVAL);

        /* invalid UTF-8 */
        ck_assert_int_eq(init_access("latin1 caf\xe9", SEC), -EINVAL);
        ck_assert_int_eq(init_access("\xff", SEC), -EINVAL);
        ck_assert_int_eq(init_access("overlong \xc0\xaf", SEC), -EINVAL);
        ck_assert_int_eq(init_access("cut \xe2\x82", SEC), -EINVAL);
        ck_assert_int_eq(init_access("surrogate \xed\xa0\x80", SEC), -EINVAL);
        ck_assert_int_eq(init_access("beyond \xf4\x90\x80\x80", SEC), -EINVAL);
        ck_assert_int_eq(init_access("lone \x80", SEC), -EINVAL);

        /* fine: UTF-8, punctuation, backslashes, a leading space */
        ck_assert_int_eq(init_access(" caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x94\x91 C:\\path \"quoted\" =", SEC), 0);
}
END_TEST

START_TEST(test_duration) {
        StoreGroupPolicy p = two_levels();
        AccessRequest r;

        ck_assert_int_eq(init_access("x", 0), -ACCESS_ERRNO_DURATION_TOO_LONG);
        ck_assert_int_eq(init_access("x", ACCESS_DURATION_MIN_USEC - 1), -ACCESS_ERRNO_DURATION_TOO_LONG);
        ck_assert_int_eq(init_access("x", ACCESS_DURATION_MIN_USEC), 0);
        ck_assert_int_eq(init_access("x", STORE_MAX_GRANT_DEFAULT_USEC), 0);
        ck_assert_int_eq(init_access("x", STORE_MAX_GRANT_DEFAULT_USEC + 1), -ACCESS_ERRNO_DURATION_TOO_LONG);
        ck_assert_int_eq(init_access("x", UINT64_MAX), -ACCESS_ERRNO_DURATION_TOO_LONG);
        /* a justification is checked before the duration */
        ck_assert_int_eq(init_access(" ", UINT64_MAX), -ACCESS_ERRNO_JUSTIFICATION_REQUIRED);

        p.max_grant_usec = 5 * SEC;
        ck_assert_int_eq(access_request_init(&r, ACCESS_KIND_ACCESS, "mail", 0, REQUESTER, "x", 5 * SEC, &p, NOW), 0);
        ck_assert_int_eq(access_request_init(&r, ACCESS_KIND_ACCESS, "mail", 0, REQUESTER, "x", 5 * SEC + 1, &p, NOW),
                         -ACCESS_ERRNO_DURATION_TOO_LONG);

        /* the deadline saturates rather than wrapping */
        p.request_timeout_usec = UINT64_MAX;
        ck_assert_int_eq(access_request_init(&r, ACCESS_KIND_ACCESS, "mail", 0, REQUESTER, "x", SEC, &p, NOW), 0);
        ck_assert_uint_eq(r.deadline_usec, UINT64_MAX);
}
END_TEST

START_TEST(test_approve_in_order) {
        AccessRequest r = new_request();
        AccessCaller a = CALLER(1001, g_l0), b = CALLER(1002, g_l1), both = CALLER(1003, g_both);

        /* level 1's approver cannot go first */
        ck_assert_int_eq(access_check_approve(&r, &b, NOW + SEC), -ACCESS_ERRNO_NOT_APPROVER);
        ck_assert_int_eq(access_check_approve(&r, &a, NOW + SEC), 0);
        ck_assert_int_eq(access_approve(&r, &a, NOW + SEC), 0);
        ck_assert_uint_eq(r.n_approvals, 1);
        ck_assert_uint_eq(r.approvals[0].uid, 1001);
        ck_assert_uint_eq(r.approvals[0].usec, NOW + SEC);
        ck_assert_int_eq(r.state, ACCESS_STATE_PENDING);

        /* level 0's approver cannot fill level 1 */
        ck_assert_int_eq(access_check_approve(&r, &CALLER(1004, g_l0), NOW + SEC), -ACCESS_ERRNO_NOT_APPROVER);
        ck_assert_int_eq(access_check_approve(&r, &both, NOW + 2 * SEC), 1);
        ck_assert_int_eq(access_check_approve(&r, &b, NOW + 2 * SEC), 1);
        ck_assert_int_eq(access_approve(&r, &b, NOW + 2 * SEC), 1);
        ck_assert_uint_eq(r.n_approvals, 2);
        ck_assert_uint_eq(r.approvals[1].uid, 1002);
        ck_assert_int_eq(r.state, ACCESS_STATE_PENDING); /* the caller grants */

        /* fully approved: nothing left to approve, and access_approve() refuses to overfill */
        ck_assert_int_eq(access_check_approve(&r, &both, NOW + 3 * SEC), -ACCESS_ERRNO_REQUEST_CLOSED);
        ck_assert_int_eq(access_approve(&r, &both, NOW + 3 * SEC), -EINVAL);
        ck_assert_uint_eq(r.n_approvals, 2);
}
END_TEST

START_TEST(test_self_approval) {
        AccessRequest r = new_request();
        AccessCaller self = CALLER(REQUESTER, g_both), a = CALLER(1001, g_l0);

        ck_assert_int_eq(access_check_approve(&r, &NOBODY(REQUESTER), NOW), -ACCESS_ERRNO_SELF_APPROVAL);
        /* even as a member of every level's group */
        ck_assert_int_eq(access_check_approve(&r, &self, NOW), -ACCESS_ERRNO_SELF_APPROVAL);
        ck_assert_int_eq(access_approve(&r, &a, NOW), 0);
        ck_assert_int_eq(access_check_approve(&r, &self, NOW), -ACCESS_ERRNO_SELF_APPROVAL);
        ck_assert_int_eq(access_check_deny(&r, &self, "no", NOW), -ACCESS_ERRNO_SELF_APPROVAL);
}
END_TEST

START_TEST(test_duplicate_approver) {
        AccessRequest r = new_request();
        AccessCaller both = CALLER(1003, g_both);

        ck_assert_int_eq(access_check_approve(&r, &both, NOW), 0);
        ck_assert_int_eq(access_approve(&r, &both, NOW), 0);
        ck_assert_int_eq(access_check_approve(&r, &both, NOW), -ACCESS_ERRNO_DUPLICATE_APPROVER);
        /* the same uid with other groups is still the same person */
        ck_assert_int_eq(access_check_approve(&r, &CALLER(1003, g_l1), NOW), -ACCESS_ERRNO_DUPLICATE_APPROVER);
        ck_assert_int_eq(access_check_approve(&r, &CALLER(1005, g_l1), NOW), 1);
}
END_TEST

START_TEST(test_not_approver) {
        AccessRequest r = new_request();

        ck_assert_int_eq(access_check_approve(&r, &CALLER(1009, g_other), NOW), -ACCESS_ERRNO_NOT_APPROVER);
        ck_assert_int_eq(access_check_approve(&r, &NOBODY(1009), NOW), -ACCESS_ERRNO_NOT_APPROVER);
        ck_assert_int_eq(access_check_approve(&r, &NOBODY(0), NOW), -ACCESS_ERRNO_NOT_APPROVER); /* root is no exception */
        ck_assert_uint_eq(r.n_approvals, 0);
}
END_TEST

START_TEST(test_expired) {
        AccessRequest r = new_request();
        AccessCaller a = CALLER(1001, g_l0), self = NOBODY(REQUESTER);

        ck_assert_int_eq(access_check_approve(&r, &a, r.deadline_usec - 1), 0);
        ck_assert_int_eq(access_check_approve(&r, &a, r.deadline_usec), -ACCESS_ERRNO_REQUEST_EXPIRED);
        ck_assert_int_eq(access_check_approve(&r, &a, UINT64_MAX), -ACCESS_ERRNO_REQUEST_EXPIRED);
        /* expiry is said before who is asking */
        ck_assert_int_eq(access_check_approve(&r, &self, r.deadline_usec), -ACCESS_ERRNO_REQUEST_EXPIRED);
        ck_assert_int_eq(access_check_deny(&r, &a, "", r.deadline_usec), -ACCESS_ERRNO_REQUEST_EXPIRED);
        ck_assert_int_eq(access_check_cancel(&r, &self, r.deadline_usec), -ACCESS_ERRNO_REQUEST_EXPIRED);
        ck_assert_int_eq(access_check_cancel(&r, &self, r.deadline_usec - 1), 0);

        /* once marked expired, whatever the time */
        access_close(&r, ACCESS_STATE_EXPIRED, 0, NULL, r.deadline_usec);
        ck_assert_int_eq(access_check_approve(&r, &a, NOW), -ACCESS_ERRNO_REQUEST_EXPIRED);
        ck_assert_int_eq(access_check_deny(&r, &a, "", NOW), -ACCESS_ERRNO_REQUEST_EXPIRED);
        ck_assert_int_eq(access_check_cancel(&r, &self, NOW), -ACCESS_ERRNO_REQUEST_EXPIRED);
        ck_assert_int_eq(access_check_revoke(&r, &self), -ACCESS_ERRNO_REQUEST_EXPIRED);
}
END_TEST

START_TEST(test_closed) {
        static const AccessState closed[] = {
                ACCESS_STATE_GRANTED, ACCESS_STATE_DENIED, ACCESS_STATE_CANCELLED, ACCESS_STATE_ENDED,
                ACCESS_STATE_REVOKED, ACCESS_STATE_DONE,   ACCESS_STATE_FAILED,
        };
        AccessCaller a = CALLER(1001, g_l0), self = NOBODY(REQUESTER);

        for (size_t i = 0; i < ELEMENTSOF(closed); i++) {
                AccessRequest r = new_request();

                r.state = closed[i];
                ck_assert_int_eq(access_check_approve(&r, &a, NOW), -ACCESS_ERRNO_REQUEST_CLOSED);
                ck_assert_int_eq(access_check_approve(&r, &self, NOW), -ACCESS_ERRNO_REQUEST_CLOSED);
                ck_assert_int_eq(access_check_deny(&r, &a, "", NOW), -ACCESS_ERRNO_REQUEST_CLOSED);
                ck_assert_int_eq(access_check_cancel(&r, &self, NOW), -ACCESS_ERRNO_REQUEST_CLOSED);
                if (closed[i] != ACCESS_STATE_GRANTED)
                        ck_assert_int_eq(access_check_revoke(&r, &self), -ACCESS_ERRNO_REQUEST_CLOSED);
        }
}
END_TEST

START_TEST(test_deny) {
        AccessRequest r = new_request();
        AccessCaller a = CALLER(1001, g_l0), b = CALLER(1002, g_l1);
        char s[ACCESS_JUSTIFICATION_MAX + 2];

        /* any level's member, whichever level is next */
        ck_assert_int_eq(access_check_deny(&r, &a, "no ticket", NOW), 0);
        ck_assert_int_eq(access_check_deny(&r, &b, "no ticket", NOW), 0);
        ck_assert_int_eq(access_check_deny(&r, &CALLER(1009, g_other), "no", NOW), -ACCESS_ERRNO_NOT_APPROVER);
        ck_assert_int_eq(access_check_deny(&r, &NOBODY(0), "no", NOW), -ACCESS_ERRNO_NOT_APPROVER);
        /* one who approved an earlier level may still say no to the rest */
        ck_assert_int_eq(access_approve(&r, &a, NOW), 0);
        ck_assert_int_eq(access_check_deny(&r, &a, "changed my mind", NOW), 0);

        /* a reason may be empty or missing, but not malformed */
        ck_assert_int_eq(access_check_deny(&r, &b, "", NOW), 0);
        ck_assert_int_eq(access_check_deny(&r, &b, NULL, NOW), 0);
        ck_assert_int_eq(access_check_deny(&r, &b, "  ", NOW), 0);
        ck_assert_int_eq(access_check_deny(&r, &b, "two\nlines", NOW), -EINVAL);
        ck_assert_int_eq(access_check_deny(&r, &b, "caf\xe9", NOW), -EINVAL);
        memset(s, 'r', sizeof(s));
        s[ACCESS_JUSTIFICATION_MAX] = 0;
        ck_assert_int_eq(access_check_deny(&r, &b, s, NOW), 0);
        s[ACCESS_JUSTIFICATION_MAX] = 'r';
        s[ACCESS_JUSTIFICATION_MAX + 1] = 0;
        ck_assert_int_eq(access_check_deny(&r, &b, s, NOW), -EINVAL);

        access_close(&r, ACCESS_STATE_DENIED, 1002, "no ticket", NOW + SEC);
        ck_assert_int_eq(r.state, ACCESS_STATE_DENIED);
        ck_assert_uint_eq(r.closed_by, 1002);
        ck_assert_uint_eq(r.closed_usec, NOW + SEC);
        ck_assert_str_eq(r.reason, "no ticket");
        ck_assert_int_eq(access_check_deny(&r, &b, "again", NOW + SEC), -ACCESS_ERRNO_REQUEST_CLOSED);
}
END_TEST

START_TEST(test_cancel) {
        AccessRequest r = new_request();

        ck_assert_int_eq(access_check_cancel(&r, &NOBODY(REQUESTER), NOW), 0);
        ck_assert_int_eq(access_check_cancel(&r, &CALLER(REQUESTER, g_both), NOW), 0);
        ck_assert_int_eq(access_check_cancel(&r, &CALLER(1001, g_l0), NOW), -EACCES);
        ck_assert_int_eq(access_check_cancel(&r, &NOBODY(0), NOW), -EACCES);
        approve_all(&r);
        ck_assert_int_eq(access_check_cancel(&r, &NOBODY(REQUESTER), NOW), 0);
        access_close(&r, ACCESS_STATE_CANCELLED, REQUESTER, NULL, NOW + 3 * SEC);
        ck_assert_str_eq(r.reason, "");
        ck_assert_int_eq(access_check_cancel(&r, &NOBODY(REQUESTER), NOW), -ACCESS_ERRNO_REQUEST_CLOSED);
}
END_TEST

START_TEST(test_revoke) {
        AccessRequest r = new_request();
        AccessCaller self = NOBODY(REQUESTER);

        /* a pending request is cancelled or denied, not revoked */
        ck_assert_int_eq(access_check_revoke(&r, &self), -ACCESS_ERRNO_REQUEST_CLOSED);
        approve_all(&r);
        ck_assert_int_eq(access_check_revoke(&r, &self), -ACCESS_ERRNO_REQUEST_CLOSED);
        access_grant(&r, NOW + 3 * SEC);
        ck_assert_int_eq(access_check_revoke(&r, &self), 0);
        ck_assert_int_eq(access_check_revoke(&r, &CALLER(1001, g_l0)), 0);
        ck_assert_int_eq(access_check_revoke(&r, &CALLER(1777, g_l1)), 0); /* any level's member, approver or not */
        ck_assert_int_eq(access_check_revoke(&r, &CALLER(1009, g_other)), -EACCES);
        ck_assert_int_eq(access_check_revoke(&r, &NOBODY(0)), -EACCES); /* dkmd decides about its admins */
        access_close(&r, ACCESS_STATE_REVOKED, 1001, NULL, NOW + 4 * SEC);
        ck_assert_int_eq(access_check_revoke(&r, &self), -ACCESS_ERRNO_REQUEST_CLOSED);
        access_close(&r, ACCESS_STATE_ENDED, 0, NULL, NOW + 4 * SEC);
        ck_assert_int_eq(access_check_revoke(&r, &self), -ACCESS_ERRNO_REQUEST_CLOSED);
}
END_TEST

START_TEST(test_grant_close_next) {
        AccessRequest r = new_request();
        char long_reason[ACCESS_JUSTIFICATION_MAX + 8];

        ck_assert_uint_eq(access_request_next_usec(&r), r.deadline_usec);
        approve_all(&r);
        ck_assert_uint_eq(access_request_next_usec(&r), r.deadline_usec);
        access_grant(&r, NOW + 3 * SEC);
        ck_assert_int_eq(r.state, ACCESS_STATE_GRANTED);
        ck_assert_uint_eq(r.granted_usec, NOW + 3 * SEC);
        ck_assert_uint_eq(r.expires_usec, NOW + 3 * SEC + 600 * SEC);
        ck_assert_uint_eq(access_request_next_usec(&r), r.expires_usec);
        access_close(&r, ACCESS_STATE_ENDED, 0, NULL, r.expires_usec);
        ck_assert_uint_eq(access_request_next_usec(&r), 0);
        ck_assert_uint_eq(r.granted_usec, NOW + 3 * SEC); /* kept: when it was granted */

        for (int s = ACCESS_STATE_DENIED; s < _ACCESS_STATE_MAX; s++) {
                r.state = (AccessState) s;
                /* a scheduled purge is due when it runs */
                ck_assert_uint_eq(access_request_next_usec(&r), s == ACCESS_STATE_SCHEDULED ? r.expires_usec : 0);
        }

        /* a failure reason from anywhere is made safe to save: control bytes and bad UTF-8 become
         * '?', and it is cut at a character boundary */
        access_close(&r, ACCESS_STATE_FAILED, 0, "helper: \x1b[1mexit\n 1 \xff caf\xc3\xa9", NOW);
        ck_assert_str_eq(r.reason, "helper: ?[1mexit? 1 ? caf\xc3\xa9");
        memset(long_reason, 'x', ACCESS_JUSTIFICATION_MAX - 1);
        strcpy(long_reason + ACCESS_JUSTIFICATION_MAX - 1, "\xc3\xa9zz");
        access_close(&r, ACCESS_STATE_FAILED, 0, long_reason, NOW);
        ck_assert_uint_eq(strlen(r.reason), ACCESS_JUSTIFICATION_MAX - 1);
        long_reason[ACCESS_JUSTIFICATION_MAX - 1] = 'y';
        access_close(&r, ACCESS_STATE_FAILED, 0, long_reason, NOW);
        ck_assert_uint_eq(strlen(r.reason), ACCESS_JUSTIFICATION_MAX);
}
END_TEST

/* ---- files ---- */

static void assert_same(const AccessRequest *a, const AccessRequest *b) {
        ck_assert_uint_eq(a->id, b->id);
        ck_assert_int_eq(a->kind, b->kind);
        ck_assert_str_eq(a->group, b->group);
        ck_assert_uint_eq(a->generation, b->generation);
        ck_assert_uint_eq(a->requester, b->requester);
        ck_assert_str_eq(a->justification, b->justification);
        ck_assert_uint_eq(a->duration_usec, b->duration_usec);
        ck_assert_uint_eq(a->created_usec, b->created_usec);
        ck_assert_uint_eq(a->deadline_usec, b->deadline_usec);
        ck_assert_uint_eq(a->n_levels, b->n_levels);
        for (size_t i = 0; i < a->n_levels; i++)
                ck_assert_uint_eq(a->levels[i], b->levels[i]);
        ck_assert_uint_eq(a->n_approvals, b->n_approvals);
        for (size_t i = 0; i < a->n_approvals; i++) {
                ck_assert_uint_eq(a->approvals[i].uid, b->approvals[i].uid);
                ck_assert_uint_eq(a->approvals[i].usec, b->approvals[i].usec);
        }
        ck_assert_int_eq(a->state, b->state);
        ck_assert_uint_eq(a->granted_usec, b->granted_usec);
        ck_assert_uint_eq(a->expires_usec, b->expires_usec);
        ck_assert_uint_eq(a->closed_usec, b->closed_usec);
        ck_assert_uint_eq(a->closed_by, b->closed_by);
        ck_assert_str_eq(a->reason, b->reason);
}

/* format, parse, format again: the same struct and the same bytes. */
static void roundtrip(const AccessRequest *r) {
        _cleanup_free_ char *text = NULL, *again = NULL;
        AccessRequest p;
        size_t size, size2;
        char error[256] = "";

        ck_assert_int_eq(access_request_format(r, &text, &size), 0);
        ck_assert_uint_eq(strlen(text), size);
        ck_assert_msg(access_request_parse(text, size, r->id, &p, error, sizeof(error)) == 0, "%s: %s\n%s",
                      access_state_to_string(r->state), error, text);
        assert_same(r, &p);
        ck_assert_int_eq(access_request_parse(text, size, 0, &p, error, sizeof(error)), 0);
        ck_assert_int_eq(access_request_format(&p, &again, &size2), 0);
        ck_assert_uint_eq(size2, size);
        ck_assert_mem_eq(again, text, size);
}

START_TEST(test_roundtrip_every_state) {
        StoreGroupPolicy p = two_levels();
        AccessRequest r = new_request(), t;
        unsigned seen = 0;

        /* texts that need escaping, and UTF-8 that does not */
        strcpy(r.justification, "C:\\tmp\\x41 caf\xc3\xa9 \xf0\x9f\x94\x91 \\\\");
        roundtrip(&r);
        seen |= 1U << r.state;
        t = r;
        ck_assert_int_eq(access_approve(&t, &CALLER(1001, g_l0), NOW + SEC), 0);
        roundtrip(&t); /* pending, one approval */
        approve_all(&r);
        roundtrip(&r); /* pending, fully approved: the grant not yet made */

        t = r;
        access_grant(&t, NOW + 3 * SEC);
        roundtrip(&t);
        seen |= 1U << t.state;
        {
                AccessRequest u = t;
                access_close(&u, ACCESS_STATE_ENDED, 0, NULL, u.expires_usec);
                roundtrip(&u);
                seen |= 1U << u.state;
                u = t;
                access_close(&u, ACCESS_STATE_REVOKED, 1001, "done with it \\ thanks", NOW + 10 * SEC);
                roundtrip(&u);
                seen |= 1U << u.state;
                u = t;
                access_close(&u, ACCESS_STATE_FAILED, 0, "keyring: quota exceeded", NOW + 3 * SEC);
                roundtrip(&u); /* failed after it was granted */
        }
        t = r;
        access_close(&t, ACCESS_STATE_FAILED, 0, "helper failed", NOW + 3 * SEC);
        roundtrip(&t); /* failed before the grant */
        seen |= 1U << t.state;

        t = new_request();
        access_close(&t, ACCESS_STATE_DENIED, 1002, "", NOW + SEC);
        roundtrip(&t);
        seen |= 1U << t.state;
        /* the realtime clock stepped back between steps: odd times, still a request to keep */
        t = new_request();
        ck_assert_int_eq(access_approve(&t, &CALLER(1001, g_l0), NOW + 5 * SEC), 0);
        ck_assert_int_eq(access_approve(&t, &CALLER(1002, g_l1), NOW - 5 * SEC), 1);
        access_grant(&t, NOW - 6 * SEC);
        roundtrip(&t);
        access_close(&t, ACCESS_STATE_REVOKED, 1001, NULL, 1);
        roundtrip(&t);
        t = new_request();
        access_close(&t, ACCESS_STATE_CANCELLED, REQUESTER, NULL, NOW + SEC);
        roundtrip(&t);
        seen |= 1U << t.state;
        t = new_request();
        ck_assert_int_eq(access_approve(&t, &CALLER(1001, g_l0), NOW + SEC), 0);
        access_close(&t, ACCESS_STATE_EXPIRED, 0, NULL, t.deadline_usec);
        roundtrip(&t);
        seen |= 1U << t.state;

        /* retire: pending, done, failed, denied */
        ck_assert_int_eq(access_request_init(&t, ACCESS_KIND_RETIRE, "mail.old-keys_2", UINT32_MAX, 0,
                                             "retire the leaked generation", 0, &p, NOW),
                         0);
        t.id = UINT64_MAX;
        roundtrip(&t);
        approve_all(&t);
        {
                AccessRequest u = t;
                access_close(&u, ACCESS_STATE_DONE, 0, NULL, NOW + 3 * SEC);
                roundtrip(&u);
                seen |= 1U << u.state;
                u = t;
                access_close(&u, ACCESS_STATE_FAILED, 0, "store: generation is active", NOW + 3 * SEC);
                roundtrip(&u);
        }

        /* purge: scheduled, then cancelled in its window or done */
        t = new_store_request(ACCESS_KIND_PURGE, "", NULL);
        roundtrip(&t);
        approve_all(&t);
        access_schedule(&t, NOW + 3 * SEC, 7 * 86400 * SEC);
        roundtrip(&t);
        seen |= 1U << t.state;
        {
                AccessRequest u = t;
                access_close(&u, ACCESS_STATE_CANCELLED, 1001, NULL, NOW + 4 * SEC);
                roundtrip(&u);
                u = t;
                access_close(&u, ACCESS_STATE_DONE, 0, NULL, t.expires_usec);
                roundtrip(&u);
        }
        /* protector changes: pending, done */
        t = new_store_request(ACCESS_KIND_PROTECTOR_ADD, "customer-hsm",
                              "pkcs11 pkcs11:token=customer;object=dkm-root?module-name=softhsm2");
        roundtrip(&t);
        approve_all(&t);
        access_close(&t, ACCESS_STATE_DONE, 0, NULL, NOW + 3 * SEC);
        roundtrip(&t);
        t = new_store_request(ACCESS_KIND_PROTECTOR_REMOVE, "local", NULL);
        roundtrip(&t);
        /* fleet hosts: pending, done, failed */
        t = new_store_request(ACCESS_KIND_HOST_ENROL, "web-2", NULL);
        roundtrip(&t);
        approve_all(&t);
        access_close(&t, ACCESS_STATE_DONE, 0, NULL, NOW + 3 * SEC);
        roundtrip(&t);
        t = new_store_request(ACCESS_KIND_HOST_REMOVE, "web-3", NULL);
        roundtrip(&t);
        approve_all(&t);
        access_close(&t, ACCESS_STATE_FAILED, 0, "no directory server answers", NOW + 3 * SEC);
        roundtrip(&t);
        ck_assert_uint_eq(seen, (1U << _ACCESS_STATE_MAX) - 1);
}
END_TEST

START_TEST(test_format_refuses) {
        AccessRequest r = new_request(), t;
        char *text = NULL;
        size_t size;

        t = r;
        t.id = 0;
        ck_assert_int_eq(access_request_format(&t, &text, &size), -EINVAL);
        t = r;
        access_grant(&t, NOW); /* granted without its approvals */
        ck_assert_int_eq(access_request_format(&t, &text, &size), -EINVAL);
        t = r;
        t.state = _ACCESS_STATE_MAX;
        ck_assert_int_eq(access_request_format(&t, &text, &size), -EINVAL);
        t = r;
        memset(t.group, 'g', sizeof(t.group)); /* not NUL-terminated */
        ck_assert_int_eq(access_request_format(&t, &text, &size), -EINVAL);
        t = r;
        strcpy(t.reason, "a reason while open");
        ck_assert_int_eq(access_request_format(&t, &text, &size), -EINVAL);
        t = r;
        access_close(&t, ACCESS_STATE_DENIED, (uid_t) -1, NULL, NOW);
        ck_assert_int_eq(access_request_format(&t, &text, &size), -EINVAL);
        ck_assert_ptr_null(text);
}
END_TEST

/* The body of r's file (without its checksum line), for editing. */
static char *body_of(const AccessRequest *r) {
        char *text = NULL, *last;
        size_t size;

        ck_assert_int_eq(access_request_format(r, &text, &size), 0);
        last = strstr(text, "checksum=");
        ck_assert_ptr_nonnull(last);
        *last = 0;
        return text;
}

static char *replace_once(const char *s, const char *from, const char *to) {
        const char *at = strstr(s, from);
        char *out;

        ck_assert_msg(at, "'%s' not found in:\n%s", from, s);
        out = malloc(strlen(s) - strlen(from) + strlen(to) + 1);
        ck_assert_ptr_nonnull(out);
        memcpy(out, s, (size_t) (at - s));
        strcpy(out + (at - s), to);
        strcat(out, at + strlen(from));
        return out;
}

static char *with_checksum(const char *body, size_t *ret_size) {
        KvBuf b = {};
        char *text = NULL;

        kvbuf_printf(&b, "%s", body);
        ck_assert_int_eq(kvbuf_finish(&b, &text, ret_size), 0);
        kvbuf_done(&b);
        return text;
}

static void expect_refused(const char *body, uint64_t expected_id, int want, const char *what) {
        _cleanup_free_ char *text = NULL;
        AccessRequest p;
        char error[256] = "";
        size_t size;
        int r;

        text = with_checksum(body, &size);
        p.id = 4242;
        r = access_request_parse(text, size, expected_id, &p, error, sizeof(error));
        ck_assert_msg(r == want, "want %d, got %d (%s) for:\n%s", want, r, error, body);
        ck_assert_uint_eq(p.id, 4242); /* untouched */
        ck_assert_msg(strstr(error, what), "want '%s' in '%s'", what, error);
}

START_TEST(test_parse_refuses) {
        AccessRequest r = new_request(), granted;
        _cleanup_free_ char *body = NULL, *gbody = NULL, *text = NULL;
        AccessRequest p;
        char error[256];
        size_t size;

        granted = r;
        approve_all(&granted);
        access_grant(&granted, NOW + 3 * SEC);
        body = body_of(&r);
        gbody = body_of(&granted);

        /* framing: bad checksum, truncated, empty */
        text = with_checksum(body, &size);
        ck_assert_int_eq(access_request_parse(text, size, 1, &p, error, sizeof(error)), 0);
        text[3] ^= 1;
        ck_assert_int_eq(access_request_parse(text, size, 1, &p, error, sizeof(error)), -EBADMSG);
        ck_assert_ptr_nonnull(strstr(error, "checksum mismatch"));
        text[3] ^= 1;
        for (size_t n = 0; n < size; n++) {
                ck_assert_int_eq(access_request_parse(text, n, 1, &p, error, sizeof(error)), -EBADMSG);
                ck_assert_msg(strstr(error, "truncated") || strstr(error, "checksum"), "%zu: %s", n, error);
        }
        /* any single bit flipped anywhere */
        for (size_t bit = 0; bit < size * 8; bit++) {
                text[bit / 8] ^= (char) (1 << (bit % 8));
                ck_assert_int_eq(access_request_parse(text, size, 1, &p, NULL, 0), -EBADMSG);
                text[bit / 8] ^= (char) (1 << (bit % 8));
        }

#define REFUSED(b, from, to, what) \
        do { \
                _cleanup_free_ char *t_ = replace_once(b, from, to); \
                expect_refused(t_, 1, -EBADMSG, what); \
        } while (0)
        /* keys: unknown, duplicate, out of order, missing */
        REFUSED(body, "kind=access\n", "kind=access\ncolor=blue\n", "line 4: unknown key 'color'");
        REFUSED(body, "kind=access\n", "kind=access\nkind=access\n", "line 4: duplicate key 'kind'");
        REFUSED(body, "kind=access\n", "", "line 3: key 'group' out of order (expected 'kind')");
        REFUSED(body, "reason=\n", "", "'reason' missing");
        REFUSED(body, "id=1\n", "id=1\nthis is not a key value line\n", "line 3: not a key=value line");

        /* the id must match the file's */
        REFUSED(body, "id=1\n", "id=2\n", "line 2: id 2 does not match the file name (1)");
        {
                _cleanup_free_ char *t = with_checksum(body, &size);
                ck_assert_int_eq(access_request_parse(t, size, 0, &p, error, sizeof(error)), 0);
                ck_assert_int_eq(access_request_parse(t, size, 7, &p, error, sizeof(error)), -EBADMSG);
        }
        REFUSED(body, "id=1\n", "id=0\n", "malformed id");

        /* values out of range or not canonical */
        REFUSED(body, "format=2\n", "format=0\n", "malformed format version");
        REFUSED(body, "id=1\n", "id=01\n", "malformed id");
        REFUSED(body, "id=1\n", "id=18446744073709551616\n", "malformed id");
        REFUSED(body, "kind=access\n", "kind=Access\n", "unknown kind");
        REFUSED(body, "group=mail\n", "group=Mail\n", "invalid group name");
        REFUSED(body, "group=mail\n", "group=\n", "invalid group name");
        REFUSED(body, "generation=0\n", "generation=4294967296\n", "malformed generation");
        REFUSED(body, "generation=0\n", "generation=3\n", "access request names a generation");
        REFUSED(body, "requester=1000\n", "requester=4294967295\n", "malformed requester uid");
        REFUSED(body, "requester=1000\n", "requester=-1\n", "malformed requester uid");
        REFUSED(body, "requester=1000\n", "requester=+1000\n", "malformed requester uid");
        REFUSED(body, "duration-usec=600000000\n", "duration-usec=0\n", "access duration under 1 s");
        REFUSED(body, "duration-usec=600000000\n", "duration-usec=999999\n", "access duration under 1 s");
        REFUSED(body, "duration-usec=600000000\n", "duration-usec= 600000000\n", "malformed duration");
        REFUSED(body, "created-usec=1700000000000000\n", "created-usec=0\n", "no creation time");
        REFUSED(body, "deadline-usec=1700086400000000\n", "deadline-usec=1700000000000000\n",
                "deadline not after creation");
        REFUSED(body, "deadline-usec=", "Deadline-usec=", "line 12: malformed key");
        REFUSED(body, "levels=2001 2002\n", "levels=\n", "malformed approval levels");
        REFUSED(body, "levels=2001 2002\n", "levels=2001  2002\n", "malformed approval levels");
        REFUSED(body, "levels=2001 2002\n", "levels=2001 4294967295\n", "malformed approval levels");
        REFUSED(body, "levels=2001 2002\n", "levels=1 2 3 4 5 6 7 8 9\n", "malformed approval levels");
        REFUSED(body, "levels=2001 2002\n", "levels=2001 2001\n", "gid 2001 appears at two approval levels");
        REFUSED(body, "state=pending\n", "state=open\n", "unknown state");
        REFUSED(body, "closed-by=0\n", "closed-by=4294967295\n", "malformed closed-by uid");

        /* texts: escapes must be canonical, and the rules of a justification hold */
        REFUSED(body, "justification=INC", "justification=\\qINC", "malformed justification");
        REFUSED(body, "justification=INC", "justification=\\x41INC", "malformed justification");
        REFUSED(body, "justification=INC", "justification=\\x0aINC", "invalid justification");
        REFUSED(body, "justification=INC-4711: restore a mailbox\n", "justification=\n", "invalid justification");
        REFUSED(body, "justification=INC", "justification=\xff", "invalid justification");
        REFUSED(body, "reason=\n", "reason=why\n", "open request with closing details");
        {
                char *big = malloc(ACCESS_JUSTIFICATION_MAX + 32);
                strcpy(big, "justification=");
                memset(big + strlen(big), 'j', ACCESS_JUSTIFICATION_MAX + 1);
                big[strlen("justification=") + ACCESS_JUSTIFICATION_MAX + 1] = 0;
                REFUSED(body, "justification=INC-4711: restore a mailbox", big, "malformed justification");
                free(big);
        }

        /* approvals: more than levels, malformed, by the requester or twice by one person, or in the wrong time */
        REFUSED(body, "approvals=\n", "approvals=1001 1700000000000001 1002 1700000000000002 1003 1700000000000003\n",
                "more approvals than approval levels");
        REFUSED(body, "approvals=\n",
                "approvals=1 1 2 2 3 3 4 4 5 5 6 6 7 7 8 8 9 9\n", "malformed approvals");
        REFUSED(body, "approvals=\n", "approvals=1001\n", "malformed approvals");
        REFUSED(body, "approvals=\n", "approvals=1001 1700000000000001 \n", "malformed approvals");
        REFUSED(body, "approvals=\n", "approvals=1000 1700000000000001\n", "approved by the requester");
        REFUSED(body, "approvals=\n", "approvals=1001 1700000000000001 1001 1700000000000002\n",
                "uid 1001 approved two levels");
        REFUSED(body, "approvals=\n", "approvals=1001 01\n", "malformed approvals");
        REFUSED(body, "approvals=\n", "approvals=4294967295 1\n", "malformed approvals");

        /* states and their details */
        REFUSED(body, "state=pending\n", "state=granted\n", "granted with 0 of 2 approvals");
        REFUSED(gbody, "granted-usec=1700000003000000\n", "granted-usec=0\n", "grant times out of order");
        REFUSED(gbody, "expires-usec=1700000603000000\n", "expires-usec=0\n", "grant times out of order");
        REFUSED(gbody, "granted-usec=1700000003000000\nexpires-usec=1700000603000000\n",
                "granted-usec=0\nexpires-usec=0\n", "granted without granted and expiry times");
        REFUSED(gbody, "state=granted\n", "state=pending\n", "pending request with a grant");
        REFUSED(gbody, "state=granted\n", "state=done\n", "access request in state done");
        REFUSED(gbody, "closed-usec=0\n", "closed-usec=1700000004000000\n", "open request with closing details");
        REFUSED(gbody, "state=granted\n", "state=ended\n", "ended request without a closing time");
        REFUSED(gbody, "kind=access\n", "kind=retire\n", "retire request names no generation");
        {
                _cleanup_free_ char *t1 = replace_once(gbody, "kind=access\n", "kind=retire\n");
                _cleanup_free_ char *t2 = replace_once(t1, "generation=0\n", "generation=5\n");
                _cleanup_free_ char *t3 = replace_once(t2, "duration-usec=600000000\n", "duration-usec=0\n");
                expect_refused(t2, 1, -EBADMSG, "retire request with a duration");
                expect_refused(t3, 1, -EBADMSG, "retire request in state granted");
        }

        /* a newer format is not corruption */
        {
                _cleanup_free_ char *t = replace_once(body, "format=2\n", "format=3\n");
                expect_refused(t, 1, -EPROTONOSUPPORT, "line 1: written by a newer dkm");
        }
        /* an over-long line is bounded */
        {
                _cleanup_free_ char *big = malloc(KVFILE_LINE_MAX + 32), *t = NULL;
                strcpy(big, "reason=");
                memset(big + 7, 'r', KVFILE_LINE_MAX);
                strcpy(big + 7 + KVFILE_LINE_MAX, "\n");
                t = replace_once(body, "reason=\n", big);
                expect_refused(t, 1, -EBADMSG, "longer than");
        }
#undef REFUSED
}
END_TEST

/* ---- a directory of request files ---- */

static AccessRequest *mfree_request(AccessRequest *p) {
        free(p);
        return NULL;
}

static size_t strv_length(char **l) {
        size_t n = 0;

        while (l && l[n])
                n++;
        return n;
}

static char base[] = "/tmp/dkm-test-access-XXXXXX";

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        (void) st, (void) flag, (void) ftw;
        return remove(path) < 0 ? -1 : 0;
}

static void setup(void) {
        strcpy(base, "/tmp/dkm-test-access-XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(base));
}

static void teardown(void) {
        (void) nftw(base, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void write_at(int dfd, const char *name, const void *data, size_t size) {
        int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, data, size), (ssize_t) size);
        close(fd);
}

static bool has_problem(char **problems, const char *what) {
        for (char **p = problems; p && *p; p++)
                if (strstr(*p, what))
                        return true;
        return false;
}

START_TEST(test_store_wide) {
        StorePolicy p = STORE_POLICY_DEFAULT, none_p = STORE_POLICY_DEFAULT;
        AccessCaller a = CALLER(1001, g_l0), other = CALLER(1005, g_other), self = NOBODY(REQUESTER);
        AccessRequest r;

        p.approval_levels[0] = GID_L0;
        p.n_approval_levels = 1;
        /* what each kind names: a protector (and what to add), or nothing */
        ck_assert_int_eq(access_request_init_store(&r, ACCESS_KIND_PURGE, "", NULL, REQUESTER, "why", &p, NOW), 0);
        ck_assert_str_eq(r.group, "");
        ck_assert_str_eq(r.target, "");
        ck_assert_uint_eq(r.deadline_usec, NOW + STORE_REQUEST_TIMEOUT_DEFAULT_USEC);
        ck_assert_int_eq(access_request_init_store(&r, ACCESS_KIND_PURGE, "x", NULL, REQUESTER, "why", &p, NOW), -EINVAL);
        ck_assert_int_eq(access_request_init_store(&r, ACCESS_KIND_PURGE, "", "file", REQUESTER, "why", &p, NOW), -EINVAL);
        ck_assert_int_eq(access_request_init_store(&r, ACCESS_KIND_PROTECTOR_ADD, "hsm", NULL, REQUESTER, "why", &p, NOW),
                         -EINVAL);
        ck_assert_int_eq(access_request_init_store(&r, ACCESS_KIND_PROTECTOR_ADD, "hsm", "tpm2\n", REQUESTER, "why", &p,
                                                   NOW),
                         -EINVAL);
        ck_assert_int_eq(access_request_init_store(&r, ACCESS_KIND_PROTECTOR_ADD, "Bad Name", "file", REQUESTER, "why",
                                                   &p, NOW),
                         -EINVAL);
        ck_assert_int_eq(access_request_init_store(&r, ACCESS_KIND_PROTECTOR_REMOVE, "local", "file", REQUESTER, "why",
                                                   &p, NOW),
                         -EINVAL);
        ck_assert_int_eq(access_request_init_store(&r, ACCESS_KIND_ACCESS, "", NULL, REQUESTER, "why", &p, NOW), -EINVAL);
        /* the fleet host kinds name a host (the group name rule), never a spec */
        ck_assert_int_eq(access_request_init_store(&r, ACCESS_KIND_HOST_ENROL, "web-2", NULL, REQUESTER, "why", &p, NOW),
                         0);
        ck_assert(access_kind_is_store_wide(r.kind));
        ck_assert_str_eq(r.target, "web-2");
        ck_assert_str_eq(r.group, "");
        ck_assert_int_eq(access_request_init_store(&r, ACCESS_KIND_HOST_REMOVE, "web-2", NULL, REQUESTER, "why", &p, NOW),
                         0);
        ck_assert_int_eq(access_request_init_store(&r, ACCESS_KIND_HOST_ENROL, "", NULL, REQUESTER, "why", &p, NOW),
                         -EINVAL);
        ck_assert_int_eq(access_request_init_store(&r, ACCESS_KIND_HOST_ENROL, "Web 2", NULL, REQUESTER, "why", &p, NOW),
                         -EINVAL);
        ck_assert_int_eq(access_request_init_store(&r, ACCESS_KIND_HOST_REMOVE, "web-2", "file", REQUESTER, "why", &p,
                                                   NOW),
                         -EINVAL);
        ck_assert_int_eq(access_request_init_store(&r, ACCESS_KIND_HOST_ENROL, "web-2", NULL, REQUESTER, "why", &none_p,
                                                   NOW),
                         -ACCESS_ERRNO_NO_APPROVERS);
        ck_assert_int_eq(access_request_init_store(&r, ACCESS_KIND_PURGE, "", NULL, REQUESTER, " ", &p, NOW),
                         -ACCESS_ERRNO_JUSTIFICATION_REQUIRED);
        /* no levels: a purge is never made alone */
        ck_assert_int_eq(access_request_init_store(&r, ACCESS_KIND_PURGE, "", NULL, REQUESTER, "why", &none_p, NOW),
                         -ACCESS_ERRNO_NO_APPROVERS);
        /* and the group kinds are not store-wide */
        {
                StoreGroupPolicy gp = two_levels();
                ck_assert_int_eq(access_request_init(&r, ACCESS_KIND_PURGE, "mail", 0, REQUESTER, "why", 0, &gp, NOW),
                                 -EINVAL);
        }

        /* a scheduled purge: stopped by the requester or an approver, not by anyone else */
        ck_assert_int_eq(access_request_init_store(&r, ACCESS_KIND_PURGE, "", NULL, REQUESTER, "why", &p, NOW), 0);
        r.id = 3;
        ck_assert_int_eq(access_check_approve(&r, &self, NOW), -ACCESS_ERRNO_SELF_APPROVAL);
        ck_assert_int_eq(access_check_approve(&r, &a, NOW), 0);
        ck_assert_int_eq(access_approve(&r, &a, NOW), 1);
        access_schedule(&r, NOW + SEC, 10 * SEC);
        ck_assert_int_eq(r.state, ACCESS_STATE_SCHEDULED);
        ck_assert_uint_eq(r.expires_usec, NOW + 11 * SEC);
        ck_assert_uint_eq(access_request_next_usec(&r), NOW + 11 * SEC);
        ck_assert_int_eq(access_check_cancel(&r, &self, NOW + 2 * SEC), 0);
        ck_assert_int_eq(access_check_cancel(&r, &a, NOW + 2 * SEC), 0);
        ck_assert_int_eq(access_check_cancel(&r, &other, NOW + 2 * SEC), -EACCES);
        ck_assert_int_eq(access_check_approve(&r, &CALLER(1002, g_l0), NOW + 2 * SEC), -ACCESS_ERRNO_REQUEST_CLOSED);
        ck_assert_int_eq(access_check_revoke(&r, &self), -ACCESS_ERRNO_REQUEST_CLOSED);
}
END_TEST

/* Files written before the store-wide kinds (format 1: no target=, no spec=) still load, and the
 * fields of one kind are refused in another. */
START_TEST(test_store_wide_files) {
        AccessRequest r = new_request(), p, purge = new_store_request(ACCESS_KIND_PURGE, "", NULL),
                      add = new_store_request(ACCESS_KIND_PROTECTOR_ADD, "hsm", "tpm2 7,11"),
                      enrol = new_store_request(ACCESS_KIND_HOST_ENROL, "web-2", NULL);
        _cleanup_free_ char *body = body_of(&r), *old = NULL, *text = NULL, *pbody = body_of(&purge),
                            *abody = body_of(&add), *hbody = body_of(&enrol);
        char error[256] = "";
        size_t size;

        {
                _cleanup_free_ char *v1 = replace_once(body, "format=2\n", "format=1\n");
                old = replace_once(v1, "target=\nspec=\n", "");
        }
        text = with_checksum(old, &size);
        ck_assert_msg(access_request_parse(text, size, 1, &p, error, sizeof(error)) == 0, "%s", error);
        assert_same(&r, &p);

#define REFUSED(b, from, to, what) \
        do { \
                _cleanup_free_ char *t_ = replace_once(b, from, to); \
                expect_refused(t_, 1, -EBADMSG, what); \
        } while (0)
        REFUSED(body, "group=mail\n", "group=\n", "invalid group name");
        REFUSED(body, "target=\n", "target=hsm\n", "invalid target for a access request");
        REFUSED(body, "spec=\n", "spec=file\n", "invalid spec for a access request");
        REFUSED(pbody, "group=\n", "group=mail\n", "store-wide request names a group");
        REFUSED(pbody, "target=\n", "target=hsm\n", "invalid target for a purge request");
        REFUSED(pbody, "generation=0\n", "generation=2\n", "purge request names a generation");
        REFUSED(pbody, "state=pending\n", "state=granted\n", "purge request in state granted");
        REFUSED(pbody, "duration-usec=0\n", "duration-usec=5000000\n", "purge request with a duration");
        REFUSED(abody, "target=hsm\n", "target=\n", "invalid target for a protector-add request");
        REFUSED(abody, "target=hsm\n", "target=HSM\n", "invalid target");
        REFUSED(abody, "spec=tpm2 7,11\n", "spec=\n", "invalid spec for a protector-add request");
        REFUSED(abody, "state=pending\n", "state=scheduled\n", "protector-add request in state scheduled");
        REFUSED(body, "state=pending\n", "state=scheduled\n", "access request in state scheduled");
        REFUSED(hbody, "target=web-2\n", "target=\n", "invalid target for a host-enrol request");
        REFUSED(hbody, "spec=\n", "spec=file\n", "invalid spec for a host-enrol request");
        REFUSED(hbody, "group=\n", "group=mail\n", "store-wide request names a group");
        REFUSED(hbody, "state=pending\n", "state=scheduled\n", "host-enrol request in state scheduled");
        {
                _cleanup_free_ char *t = replace_once(hbody, "kind=host-enrol\n", "kind=host-remove\n");
                _cleanup_free_ char *u = with_checksum(t, &size);

                ck_assert_msg(access_request_parse(u, size, 1, &p, error, sizeof(error)) == 0, "%s", error);
                ck_assert_int_eq(p.kind, ACCESS_KIND_HOST_REMOVE);
                ck_assert_str_eq(p.target, "web-2");
        }
#undef REFUSED
}
END_TEST

START_TEST(test_save_load_all) {
        _cleanup_close_ int dfd = -EBADF;
        _cleanup_free_ AccessRequest *list = NULL;
        _cleanup_strv_free_ char **problems = NULL;
        _cleanup_free_ char *text = NULL;
        static const uint64_t ids[] = { 10, 2, 7, 123456789012345ULL };
        AccessRequest r = new_request();
        struct stat st;
        size_t n, size;

        dfd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        ck_assert_int_ge(dfd, 0);

        /* an empty directory */
        ck_assert_int_eq(access_request_load_all(dfd, &list, &n, &problems), 0);
        ck_assert_uint_eq(n, 0);
        ck_assert_ptr_null(list);
        ck_assert_ptr_nonnull(problems);
        ck_assert_ptr_null(problems[0]);
        list = mfree_request(list);
        problems = (strv_free(problems), NULL);

        for (size_t i = 0; i < ELEMENTSOF(ids); i++) {
                r.id = ids[i];
                snprintf(r.justification, sizeof(r.justification), "request %zu", i);
                ck_assert_int_eq(access_request_save(dfd, &r), 0);
        }
        ck_assert_int_eq(fstatat(dfd, "10.request", &st, AT_SYMLINK_NOFOLLOW), 0);
        ck_assert_uint_eq(st.st_mode & 07777, 0600);
        /* saving again replaces */
        r.id = 7;
        approve_all(&r);
        access_grant(&r, NOW + 3 * SEC);
        ck_assert_int_eq(access_request_save(dfd, &r), 0);
        r.id = 0;
        ck_assert_int_eq(access_request_save(dfd, &r), -EINVAL);

        /* what must be reported, and what must be ignored */
        r.id = 5;
        ck_assert_int_eq(access_request_format(&r, &text, &size), 0);
        text[20] ^= 1;
        write_at(dfd, "5.request", text, size); /* corrupt */
        text[20] ^= 1;
        write_at(dfd, "4.request", text, size); /* says id 5 */
        write_at(dfd, "05.request", text, size);
        write_at(dfd, "abc.request", text, size);
        write_at(dfd, "3.request", text, size / 2);
        ck_assert_int_eq(mkdirat(dfd, "6.request", 0700), 0);
        ck_assert_int_eq(symlinkat("10.request", dfd, "8.request"), 0);
        ck_assert_int_eq(mkfifoat(dfd, "9.request", 0600), 0); /* would block an open */
        write_at(dfd, "bad\nname.request", "x", 1);
        write_at(dfd, "notes.txt", "hello", 5);
        write_at(dfd, "11.request.bak", text, size);
        write_at(dfd, ".#12.request.999.tmp", text, size);
        write_at(dfd, ".request", text, size);

        ck_assert_int_eq(access_request_load_all(dfd, &list, &n, &problems), 0);
        ck_assert_uint_eq(n, ELEMENTSOF(ids));
        ck_assert_uint_eq(list[0].id, 2);
        ck_assert_uint_eq(list[1].id, 7);
        ck_assert_uint_eq(list[2].id, 10);
        ck_assert_uint_eq(list[3].id, 123456789012345ULL);
        ck_assert_str_eq(list[0].justification, "request 1");
        ck_assert_int_eq(list[1].state, ACCESS_STATE_GRANTED);
        ck_assert_uint_eq(list[1].n_approvals, 2);
        ck_assert_int_eq(list[2].state, ACCESS_STATE_PENDING);

        for (char **p = problems; *p; p++)
                fprintf(stderr, "problem: %s\n", *p);
        ck_assert_uint_eq(strv_length(problems), 9);
        ck_assert(has_problem(problems, "5.request: checksum mismatch"));
        ck_assert(has_problem(problems, "4.request: line 2: id 5 does not match the file name (4)"));
        ck_assert(has_problem(problems, "05.request: not a request file name"));
        ck_assert(has_problem(problems, "abc.request: not a request file name"));
        ck_assert(has_problem(problems, "3.request: truncated"));
        ck_assert(has_problem(problems, "6.request: not a regular file"));
        ck_assert(has_problem(problems, "8.request: not a regular file"));
        ck_assert(has_problem(problems, "9.request: not a regular file"));
        ck_assert(has_problem(problems, "bad\\x0aname.request: not a request file name"));

        /* never deleted */
        ck_assert_int_eq(faccessat(dfd, "5.request", F_OK, AT_SYMLINK_NOFOLLOW), 0);
        ck_assert_int_eq(faccessat(dfd, "4.request", F_OK, AT_SYMLINK_NOFOLLOW), 0);
        ck_assert_int_eq(faccessat(dfd, "3.request", F_OK, AT_SYMLINK_NOFOLLOW), 0);

        /* nothing but broken files: no list at all */
        {
                int bfd;
                AccessRequest *none_loaded = NULL;
                _cleanup_strv_free_ char **bp = NULL;

                ck_assert_int_eq(mkdirat(dfd, "broken", 0700), 0);
                bfd = openat(dfd, "broken", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                ck_assert_int_ge(bfd, 0);
                write_at(bfd, "1.request", "junk\n", 5);
                ck_assert_int_eq(access_request_load_all(bfd, &none_loaded, &n, &bp), 0);
                ck_assert_uint_eq(n, 0);
                ck_assert_ptr_null(none_loaded);
                ck_assert_uint_eq(strv_length(bp), 1);
                close(bfd);
        }

        /* problems may be ignored */
        list = mfree_request(list);
        ck_assert_int_eq(access_request_load_all(dfd, &list, &n, NULL), 0);
        ck_assert_uint_eq(n, ELEMENTSOF(ids));
}
END_TEST

static Suite *access_suite(void) {
        Suite *s = suite_create("access-request");
        TCase *rules = tcase_create("rules"), *files = tcase_create("files");

        tcase_add_test(rules, test_names);
        tcase_add_test(rules, test_caller_in_group);
        tcase_add_test(rules, test_init);
        tcase_add_test(rules, test_init_levels);
        tcase_add_test(rules, test_justification);
        tcase_add_test(rules, test_duration);
        tcase_add_test(rules, test_approve_in_order);
        tcase_add_test(rules, test_self_approval);
        tcase_add_test(rules, test_duplicate_approver);
        tcase_add_test(rules, test_not_approver);
        tcase_add_test(rules, test_expired);
        tcase_add_test(rules, test_closed);
        tcase_add_test(rules, test_deny);
        tcase_add_test(rules, test_cancel);
        tcase_add_test(rules, test_revoke);
        tcase_add_test(rules, test_grant_close_next);
        suite_add_tcase(s, rules);

        tcase_add_test(files, test_roundtrip_every_state);
        tcase_add_test(files, test_format_refuses);
        tcase_add_test(files, test_parse_refuses);
        tcase_add_test(files, test_store_wide_files);
        tcase_add_test(rules, test_store_wide);
        tcase_add_checked_fixture(files, setup, teardown);
        tcase_add_test(files, test_save_load_all);
        suite_add_tcase(s, files);
        return s;
}

int main(void) {
        if (crypt_init() < 0)
                return EXIT_FAILURE;
        return test_run_suite(access_suite());
}
