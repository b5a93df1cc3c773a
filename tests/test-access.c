/* SPDX-License-Identifier: MIT */
/* Break-glass access end to end: approvers, kernel grants, the grantee's dkm, the audit log and the journal. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <systemd/sd-bus.h>
#include <time.h>
#include <unistd.h>

#include <keyutils.h>

#include "audit.h"
#include "fileio.h"
#include "keyring-names.h"
#include "macro.h"
#include "test-accounts.h"
#include "test-bus.h"
#include "test-helpers.h"

/* The named errors are part of the interface: spelled out, not taken from dkmd's headers. */
#define E_NO_APPROVERS           "org.dkm.KeyManager1.Error.NoApprovers"
#define E_JUSTIFICATION_REQUIRED "org.dkm.KeyManager1.Error.JustificationRequired"
#define E_DURATION_TOO_LONG      "org.dkm.KeyManager1.Error.DurationTooLong"
#define E_ALREADY_MEMBER         "org.dkm.KeyManager1.Error.AlreadyMember"
#define E_SELF_APPROVAL          "org.dkm.KeyManager1.Error.SelfApproval"
#define E_DUPLICATE_APPROVER     "org.dkm.KeyManager1.Error.DuplicateApprover"
#define E_NOT_APPROVER           "org.dkm.KeyManager1.Error.NotApprover"
#define E_REQUEST_EXPIRED        "org.dkm.KeyManager1.Error.RequestExpired"
#define E_AUDIT_FAILED           "org.dkm.KeyManager1.Error.AuditFailed"
#define E_TOO_MANY_REQUESTS      "org.dkm.KeyManager1.Error.TooManyRequests"

#define REQUEST_IFACE    "org.dkm.KeyManager1.Request"
#define GRANT_MESSAGE_ID "df0e9d65eb4442258447e00a56dc8739"
#define USEC             1000000ULL
#define MAX_GRANT_USEC   (60 * USEC)

static const char *const key_group_tags[] = { "happy",  "kill",    "refuse", "rexp",   "noappr", "revoke",
                                              "retire", "restart", "full",   "nokeys", NULL };

/* What a test may leave behind if it fails half-way: cleaned up by the fixture's teardown in
 * the suite runner (shared memory, so the forked tests can say what they made). */
typedef struct Leftovers {
        char mount[128];              /* a tmpfs a test mounted */
        pid_t journald;               /* a systemd-journald a test started */
        char made_journal_dir[64];    /* the top directory made for its sockets */
        char made_journal_files[128]; /* its journal directory, if it made it */
} Leftovers;

static Leftovers *left;

static void leftovers_clean(void) {
        char comm[64] = "";
        FILE *f;

        if (!left)
                return;
        if (left->mount[0]) {
                (void) umount2(left->mount, MNT_DETACH);
                left->mount[0] = 0;
        }
        if (left->journald > 0) {
                char path[64];

                /* It was started with PR_SET_PDEATHSIG by a test that is gone: make sure, but
                 * only if the pid is still that program. */
                snprintf(path, sizeof(path), "/proc/%d/comm", (int) left->journald);
                if ((f = fopen(path, "re"))) {
                        if (fgets(comm, sizeof(comm), f) && strncmp(comm, "systemd-journal", 15) == 0)
                                (void) kill(left->journald, SIGTERM);
                        fclose(f);
                }
                left->journald = 0;
        }
        char *const made[] = { left->made_journal_dir, left->made_journal_files };
        for (size_t i = 0; i < ELEMENTSOF(made); i++)
                if (made[i][0]) {
                        TestRun r;

                        test_run(&r, NULL, 0, NULL,
                                 (char *const[]){ (char *) "/bin/rm", (char *) "-rf", made[i], NULL });
                        test_run_free(&r);
                        made[i][0] = 0;
                }
}

static void bus_up(void) {
        left = test_shared_new(sizeof(Leftovers));
        test_bus_start();
        test_dkmd_start(NULL);
}

static void bus_down(void) {
        test_bus_stop();
        leftovers_clean();
}

/* ---- time ---- */

static uint64_t now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * USEC + (uint64_t) ts.tv_nsec / 1000U;
}

static void sleep_ms(unsigned ms) {
        nanosleep(&(struct timespec){ ms / 1000, (long) (ms % 1000) * 1000000L }, NULL);
}

static void sleep_until(uint64_t usec) {
        for (uint64_t n = now_usec(); n < usec; n = now_usec())
                sleep_ms((unsigned) ((usec - n) / 1000U) + 1);
}

/* ---- calls as a given user ---- */

static void assert_ok(const TestCall *c, const char *what) {
        ck_assert_msg(c->r >= 0, "%s: %s: %s", what, c->error, c->message);
}

static void assert_error(const TestCall *c, const char *name, const char *what) {
        ck_assert_msg(c->r < 0 && strcmp(c->error, name) == 0, "%s: got %s (%s), want %s", what,
                      c->r >= 0 ? "success" : c->error, c->message, name);
}

static void request_access(const TestCreds *c, const char *group, const char *why, uint64_t usec, TestCall *ret) {
        (void) test_call_as(c, ret, MGR_PATH, MGR_IFACE, "RequestAccess", "sst", group, why, usec);
}

static char *must_request(const TestCreds *c, const char *group, const char *why, uint64_t usec) {
        TestCall r;

        request_access(c, group, why, usec, &r);
        assert_ok(&r, "RequestAccess");
        ck_assert_msg(strncmp(r.path, "/org/dkm/KeyManager1/request/", 29) == 0, "request path '%s'", r.path);
        return strdup(r.path);
}

static void act(const TestCreds *c, const char *request, const char *method, TestCall *ret) {
        if (strcmp(method, "Deny") == 0)
                (void) test_call_as(c, ret, request, REQUEST_IFACE, method, "s", "not without a ticket");
        else
                (void) test_call_as(c, ret, request, REQUEST_IFACE, method, NULL);
}

static void must_act(const TestCreds *c, const char *request, const char *method) {
        TestCall r;

        act(c, request, method, &r);
        assert_ok(&r, method);
}

/* ---- properties, as root ---- */

static const char *req_state(sd_bus *bus, const char *request) {
        static char state[32];
        _cleanup_free_ char *s = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;

        ck_assert_msg(sd_bus_get_property_string(bus, SVC, request, REQUEST_IFACE, "State", &e, &s) >= 0,
                      "State of %s: %s", request, e.message ?: "");
        snprintf(state, sizeof(state), "%s", s);
        return state;
}

static uint64_t req_t(sd_bus *bus, const char *request, const char *property) {
        uint64_t v = 0;

        ck_assert_int_ge(sd_bus_get_property_trivial(bus, SVC, request, REQUEST_IFACE, property, NULL, 't', &v), 0);
        return v;
}

static uint32_t req_u(sd_bus *bus, const char *request, const char *property) {
        uint32_t v = 0;

        ck_assert_int_ge(sd_bus_get_property_trivial(bus, SVC, request, REQUEST_IFACE, property, NULL, 'u', &v), 0);
        return v;
}

static char *req_s(sd_bus *bus, const char *request, const char *property) {
        char *s = NULL;

        ck_assert_int_ge(sd_bus_get_property_string(bus, SVC, request, REQUEST_IFACE, property, NULL, &s), 0);
        return s;
}

/* The Approvals property: the approver uid of each level so far; how many. */
static size_t req_approvals(sd_bus *bus, const char *request, uid_t *uids, size_t max) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        uint32_t level, uid;
        uint64_t usec;
        size_t n = 0;
        int r;

        ck_assert_int_ge(sd_bus_get_property(bus, SVC, request, REQUEST_IFACE, "Approvals", NULL, &reply, "a(uut)"), 0);
        ck_assert_int_ge(sd_bus_message_enter_container(reply, 'a', "(uut)"), 0);
        while ((r = sd_bus_message_read(reply, "(uut)", &level, &uid, &usec)) > 0) {
                ck_assert_uint_eq(level, n);
                ck_assert_uint_gt(usec, 0);
                if (n < max)
                        uids[n] = uid;
                n++;
        }
        ck_assert_int_ge(r, 0);
        return n;
}

static bool wait_state(sd_bus *bus, const char *request, const char *want, unsigned ms) {
        for (unsigned waited = 0;; waited += 50) {
                if (strcmp(req_state(bus, request), want) == 0)
                        return true;
                if (waited >= ms)
                        return false;
                sleep_ms(50);
        }
}

static uint32_t group_u(sd_bus *bus, const char *group_path, const char *property) {
        uint32_t v = 0;

        ck_assert_int_ge(sd_bus_get_property_trivial(bus, SVC, group_path, GROUP_IFACE, property, NULL, 'u', &v), 0);
        return v;
}

/* ListRequests: how many; the path of each (up to max) into paths, if not NULL. */
static size_t list_requests(sd_bus *bus, char (*paths)[128], size_t max) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *path, *kind, *group, *state, *justification;
        uint64_t id, expires;
        uint32_t requester;
        size_t n = 0;
        int r;

        ck_assert_int_ge(sd_bus_call_method(bus, SVC, MGR_PATH, MGR_IFACE, "ListRequests", NULL, &reply, NULL), 0);
        ck_assert_int_ge(sd_bus_message_enter_container(reply, 'a', "(otssusst)"), 0);
        while ((r = sd_bus_message_read(reply, "(otssusst)", &path, &id, &kind, &group, &requester, &state,
                                        &justification, &expires)) > 0) {
                if (paths && n < max)
                        snprintf(paths[n], sizeof(paths[0]), "%s", path);
                n++;
        }
        ck_assert_int_ge(r, 0);
        return n;
}

static size_t count_requests(sd_bus *bus) {
        return list_requests(bus, NULL, 0);
}

/* The state of one generation in the Generations property ("absent" if not listed). */
static const char *gen_state(sd_bus *bus, const char *group_path, uint32_t number) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        static char found[16];
        uint64_t created, activated, archived, retired;
        const char *state;
        uint32_t n;
        int r;

        snprintf(found, sizeof(found), "absent");
        ck_assert_int_ge(
                sd_bus_get_property(bus, SVC, group_path, GROUP_IFACE, "Generations", NULL, &reply, "a(ustttt)"), 0);
        ck_assert_int_ge(sd_bus_message_enter_container(reply, 'a', "(ustttt)"), 0);
        while ((r = sd_bus_message_read(reply, "(ustttt)", &n, &state, &created, &activated, &archived, &retired)) > 0)
                if (n == number)
                        snprintf(found, sizeof(found), "%s", state);
        ck_assert_int_ge(r, 0);
        return found;
}

/* CreateGroup for the world's grp: levels appr1, appr2 and MaxGrantUSec 60 s when levels, and
 * RequestTimeoutUSec when timeout_usec > 0. The object path. */
static char *create_group(sd_bus *bus, const char *name, bool levels, uint64_t timeout_usec) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        const char *path;

        ck_assert_int_ge(sd_bus_message_new_method_call(bus, &m, SVC, MGR_PATH, MGR_IFACE, "CreateGroup"), 0);
        ck_assert_int_ge(sd_bus_message_append(m, "su", name, (uint32_t) TW.gid), 0);
        ck_assert_int_ge(sd_bus_message_open_container(m, 'a', "{sv}"), 0);
        if (levels) {
                ck_assert_int_ge(sd_bus_message_append(m, "{sv}", "ApprovalGroups", "as", 2, TW.appr1, TW.appr2), 0);
                ck_assert_int_ge(sd_bus_message_append(m, "{sv}", "MaxGrantUSec", "t", (uint64_t) MAX_GRANT_USEC), 0);
        }
        if (timeout_usec > 0)
                ck_assert_int_ge(sd_bus_message_append(m, "{sv}", "RequestTimeoutUSec", "t", timeout_usec), 0);
        ck_assert_int_ge(sd_bus_message_close_container(m), 0);
        ck_assert_msg(sd_bus_call(bus, m, 0, &e, &reply) >= 0, "CreateGroup %s: %s: %s", name, e.name ?: "",
                      e.message ?: "");
        ck_assert_int_ge(sd_bus_message_read(reply, "o", &path), 0);
        return strdup(path);
}

/* ---- the dkm CLI ---- */

static const char *cli(void) {
        return test_env_path("DKM_CLI");
}

static char path_buf[4][300];

static const char *work(unsigned slot, const char *group, const char *name) {
        snprintf(path_buf[slot], sizeof(path_buf[slot]), "%s/%s-%s", TW.work_dir, group, name);
        return path_buf[slot];
}

/* "dkm decrypt -i path" as c; its status, with the one-line error in err (may be NULL). */
static int decrypt(const TestCreds *c, const char *path, const char *want, char *err, size_t err_size) {
        TestRun r;
        int status;

        test_run(&r, NULL, 0, c,
                 (char *const[]){ (char *) cli(), (char *) "decrypt", (char *) "-i", (char *) path, NULL });
        status = r.status;
        if (status == 0 && want)
                ck_assert_msg(r.out_size == strlen(want) && memcmp(r.out, want, r.out_size) == 0,
                              "decrypt as uid %u gave other plaintext", (unsigned) c->uid);
        if (status != 0)
                ck_assert_uint_eq(r.out_size, 0);
        if (err) {
                size_t l = strnlen(r.err, err_size - 1);
                memcpy(err, r.err, l);
                err[l] = 0;
        }
        test_run_free(&r);
        return status;
}

/* The plaintext must be want (status 0), or the status and the words of the error as given. */
static void decrypt_as(const TestCreds *c, const char *path, int status, const char *want_or_words) {
        char err[1024];
        int got = decrypt(c, path, status == 0 ? want_or_words : NULL, err, sizeof(err));

        ck_assert_msg(got == status, "decrypt as uid %u: status %d, want %d: %s", (unsigned) c->uid, got, status, err);
        if (status != 0)
                ck_assert_msg(strstr(err, want_or_words), "'%s' lacks '%s'", err, want_or_words);
}

/* libdkm cannot tell which group a dead grant keyring in the person's user keyring was for (a
 * dead key cannot be described), so its "access expired" / "access revoked" reflects whichever
 * grant of the person's ended, in any group. A test that checks those words starts with the
 * person's user keyring rid of the dead grants earlier tests left. */
static void unlink_dead(void *userdata) {
        key_serial_t list[256];
        long n = keyctl_read(KEY_SPEC_USER_KEYRING, (char *) list, sizeof(list));

        for (long i = 0; i < n / (long) sizeof(key_serial_t) && i < 256; i++) {
                char desc[256];

                if (keyctl_describe(list[i], desc, sizeof(desc)) < 0 && (errno == EKEYEXPIRED || errno == EKEYREVOKED))
                        ck_assert_int_eq(keyctl_unlink(list[i], KEY_SPEC_USER_KEYRING), 0);
        }
}

static void forget_ended_grants(const TestCreds *c) {
        test_wait_ok(test_fork_as(c, unlink_dead, NULL));
}

/* ---- the audit log ---- */

static const char *audit_dir(void) {
        static char dir[128];

        snprintf(dir, sizeof(dir), "%s/audit", TW.state_dir);
        return dir;
}

/* The seq of the last record (checkpoints included): records after it are the test's. */
static uint64_t audit_last_seq(const char *dir) {
        _cleanup_(audit_reader_freep) AuditReader *r = NULL;
        const AuditFilter f = { .checkpoints = 1 };
        const AuditEntry *e;
        uint64_t last = 0;
        int k;

        ck_assert_int_eq(audit_reader_new(dir, &f, &r), 0);
        while ((k = audit_reader_next(r, &e)) > 0)
                last = e->seq;
        ck_assert_msg(k == 0, "reading %s: %s", dir, audit_reader_error(r) ?: strerror(-k));
        return last;
}

/* A record after seq `after` with this event, outcome, uid and object (NULL: any). */
static bool audit_has(const char *dir, uint64_t after, const char *event, AuditOutcome outcome, uid_t uid,
                      const char *object) {
        _cleanup_(audit_reader_freep) AuditReader *r = NULL;
        const AuditFilter f = { .event = event };
        const AuditEntry *e;
        bool found = false;
        int k;

        ck_assert_int_eq(audit_reader_new(dir, &f, &r), 0);
        while ((k = audit_reader_next(r, &e)) > 0)
                if (e->seq > after && e->outcome == outcome && e->uid == uid &&
                    (!object || strcmp(e->object, object) == 0))
                        found = true;
        ck_assert_msg(k == 0, "reading %s: %s", dir, audit_reader_error(r) ?: strerror(-k));
        return found;
}

static void assert_audited(uint64_t after, const char *event, AuditOutcome outcome, uid_t uid, const char *object) {
        ck_assert_msg(audit_has(audit_dir(), after, event, outcome, uid, object),
                      "no audit record event=%s outcome=%s uid=%u object=%s after seq %llu", event,
                      audit_outcome_to_string(outcome), (unsigned) uid, object ?: "*", (unsigned long long) after);
}

/* The refusal's named error, and its audit record: the action's event, "refused", the caller. */
static void assert_refused(const TestCall *c, const char *error, uint64_t after, const char *event, uid_t uid,
                           const char *object, const char *what) {
        assert_error(c, error, what);
        assert_audited(after, event, AUDIT_OUTCOME_REFUSED, uid, object);
}

static void assert_audit_verifies(const char *dir) {
        AuditReport rep = {};
        int r = audit_verify(dir, NULL, &rep);

        ck_assert_msg(r == 0, "audit_verify %s: %d: %s", dir, r, rep.error);
        ck_assert_uint_gt(rep.records, 0);
}

/* The audit object of a request: "group/NAME/request/ID" (a group's history includes its requests). */
static const char *request_object(const char *request, const char *group, char buf[static 128]) {
        const char *id = strrchr(request, '/');

        ck_assert_ptr_nonnull(id);
        snprintf(buf, 128, "group/%s/request%s", group, id);
        return buf;
}

/* ---- signals ---- */

typedef struct States {
        char s[16][16];
        size_t n;
} States;

static int on_state_changed(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        States *log = userdata;
        const char *state;

        if (sd_bus_message_read(m, "s", &state) > 0 && log->n < ELEMENTSOF(log->s))
                snprintf(log->s[log->n++], sizeof(log->s[0]), "%s", state);
        return 0;
}

static void drain(sd_bus *watcher, States *log, size_t want) {
        for (int i = 0; i < 100 && log->n < want; i++) {
                while (sd_bus_process(watcher, NULL) > 0)
                        ;
                if (log->n < want)
                        (void) sd_bus_wait(watcher, 50 * 1000);
        }
}

/* ---------------------------------------------------------------------------------------- */

/* Two levels approved in order: the person reads for 3 s, the kernel ends it, dkmd says so. */
START_TEST(test_two_levels_grant_and_expiry) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = test_bus_open();
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *watcher = test_bus_open();
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *slot = NULL;
        TestCreds person = test_creds_person(), other = test_creds_other(), a1 = test_creds_approver1(),
                  a2 = test_creds_approver2();
        const char *g = test_key_group("happy"), *ct;
        _cleanup_free_ char *gpath = create_group(bus, g, true, 0), *req = NULL, *just = NULL, *group = NULL;
        uint64_t before, after, granted, expires;
        States log = {};
        uid_t uids[4];
        char err[1024], obj[128];
        int status;

        ck_assert_ptr_nonnull(gpath);
        forget_ended_grants(&person);
        ct = work(0, g, "ct");
        test_member_encrypt(g, ct, "incident data");
        decrypt_as(&person, ct, 4, "not a member");

        req = must_request(&person, g, "INC-1: debug", 3 * USEC);
        ck_assert_int_ge(
                sd_bus_match_signal(watcher, &slot, SVC, req, REQUEST_IFACE, "StateChanged", on_state_changed, &log),
                0);
        ck_assert_int_ge(sd_bus_call_method(watcher, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                            "org.freedesktop.DBus", "GetId", NULL, NULL, NULL),
                         0);
        ck_assert_str_eq(req_state(bus, req), "pending");
        ck_assert_uint_eq(req_u(bus, req, "Requester"), TW.person_uid);
        just = req_s(bus, req, "Justification");
        ck_assert_str_eq(just, "INC-1: debug");
        group = req_s(bus, req, "Group");
        ck_assert_str_eq(group, g);
        ck_assert_uint_eq(req_t(bus, req, "DurationUSec"), 3 * USEC);
        ck_assert_uint_eq(req_approvals(bus, req, uids, 4), 0);

        must_act(&a1, req, "Approve");
        ck_assert_uint_eq(req_approvals(bus, req, uids, 4), 1);
        ck_assert_uint_eq(uids[0], TW.approver1_uid);
        ck_assert_str_eq(req_state(bus, req), "pending");
        decrypt_as(&person, ct, 4, "not a member");

        before = now_usec();
        must_act(&a2, req, "Approve");
        after = now_usec();
        ck_assert_str_eq(req_state(bus, req), "granted");
        ck_assert_uint_eq(req_approvals(bus, req, uids, 4), 2);
        ck_assert_uint_eq(uids[1], TW.approver2_uid);
        granted = req_t(bus, req, "GrantedUSec");
        expires = req_t(bus, req, "ExpiresUSec");
        ck_assert_uint_ge(granted, before);
        ck_assert_uint_le(granted, after);
        ck_assert_uint_eq(expires, granted + 3 * USEC);

        decrypt_as(&person, ct, 0, "incident data");
        decrypt_as(&other, ct, 4, "not a member");

        /* The kernel's timeout counts whole seconds from the helper's run: it ends the keys
         * within 1 s of ExpiresUSec, and dkmd ends the request only 1.1 s after it, so the end
         * is always the kernel's own ("expired", never "revoked"). */
        sleep_until(expires + USEC);
        status = decrypt(&person, ct, NULL, err, sizeof(err));
        ck_assert_msg(status == 6 && strstr(err, "access expired"), "after the grant: status %d: %s", status, err);
        ck_assert_msg(wait_state(bus, req, "ended", 3000), "state %s, want ended", req_state(bus, req));
        ck_assert_uint_gt(req_t(bus, req, "ClosedUSec"), 0);
        ck_assert_uint_eq(req_u(bus, req, "ClosedBy"), 0);

        /* One signal per durable change: each approval (still pending), the grant, the end. */
        drain(watcher, &log, 4);
        ck_assert_uint_eq(log.n, 4);
        ck_assert_str_eq(log.s[0], "pending");
        ck_assert_str_eq(log.s[1], "pending");
        ck_assert_str_eq(log.s[2], "granted");
        ck_assert_str_eq(log.s[3], "ended");

        request_object(req, g, obj);
        assert_audited(0, "request", AUDIT_OUTCOME_OK, TW.person_uid, obj);
        assert_audited(0, "approve", AUDIT_OUTCOME_OK, TW.approver1_uid, obj);
        assert_audited(0, "approve", AUDIT_OUTCOME_OK, TW.approver2_uid, obj);
        assert_audited(0, "grant", AUDIT_OUTCOME_OK, TW.approver2_uid, obj);
        assert_audited(0, "grant-end", AUDIT_OUTCOME_OK, 0, obj);
}
END_TEST

/* Every refusal has its named error and its own audit record. */
START_TEST(test_refusals) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = test_bus_open();
        TestCreds person = test_creds_person(), other = test_creds_other(), member = test_creds_member(),
                  a1 = test_creds_approver1(), a2 = test_creds_approver2(), both = test_creds_both();
        const char *g = test_key_group("refuse"), *gexp = test_key_group("rexp"), *gnone = test_key_group("noappr");
        _cleanup_free_ char *gpath = create_group(bus, g, true, 0), *gexp_path = create_group(bus, gexp, true, USEC),
                            *gnone_path = create_group(bus, gnone, false, 0), *req = NULL, *req2 = NULL, *req3 = NULL,
                            *reason = NULL;
        char obj[128], gobj[80];
        size_t n_requests;
        uint64_t seq;
        uid_t uids[4];
        TestCall c;

        ck_assert(gpath && gexp_path && gnone_path);
        snprintf(gobj, sizeof(gobj), "group/%s", g);
        req = must_request(&person, g, "INC-2: look at one record", 10 * USEC);
        request_object(req, g, obj);

        seq = audit_last_seq(audit_dir());
        act(&person, req, "Approve", &c);
        assert_refused(&c, E_SELF_APPROVAL, seq, "approve", TW.person_uid, obj, "requester approves");

        seq = audit_last_seq(audit_dir());
        act(&other, req, "Approve", &c);
        assert_refused(&c, E_NOT_APPROVER, seq, "approve", TW.other_uid, obj, "not in appr1");
        /* Levels go in order: appr2 cannot approve level 1. */
        seq = audit_last_seq(audit_dir());
        act(&a2, req, "Approve", &c);
        assert_refused(&c, E_NOT_APPROVER, seq, "approve", TW.approver2_uid, obj, "appr2 at level 1");

        must_act(&both, req, "Approve");
        seq = audit_last_seq(audit_dir());
        act(&both, req, "Approve", &c);
        assert_refused(&c, E_DUPLICATE_APPROVER, seq, "approve", TW.both_uid, obj, "one person, two levels");
        ck_assert_uint_eq(req_approvals(bus, req, uids, 4), 1);
        ck_assert_str_eq(req_state(bus, req), "pending");

        /* The requester neither denies nor lets others cancel; an approver denies. */
        seq = audit_last_seq(audit_dir());
        act(&person, req, "Deny", &c);
        assert_refused(&c, E_SELF_APPROVAL, seq, "deny", TW.person_uid, obj, "requester denies");
        must_act(&a1, req, "Deny");
        ck_assert_str_eq(req_state(bus, req), "denied");
        reason = req_s(bus, req, "Reason");
        ck_assert_str_eq(reason, "not without a ticket");
        ck_assert_uint_eq(req_u(bus, req, "ClosedBy"), TW.approver1_uid);
        assert_audited(seq, "deny", AUDIT_OUTCOME_OK, TW.approver1_uid, obj);
        seq = audit_last_seq(audit_dir());
        act(&a2, req, "Approve", &c);
        assert_refused(&c, E_INVALID_STATE, seq, "approve", TW.approver2_uid, obj, "approving a denied request");

        /* Not approved in time: expired, by dkmd's timer and for whoever comes late. */
        req2 = must_request(&person, gexp, "INC-3: too slow", 10 * USEC);
        request_object(req2, gexp, obj);
        sleep_ms(1500);
        seq = audit_last_seq(audit_dir());
        act(&a1, req2, "Approve", &c);
        assert_refused(&c, E_REQUEST_EXPIRED, seq, "approve", TW.approver1_uid, obj, "approving an expired request");
        ck_assert_msg(wait_state(bus, req2, "expired", 2000), "state %s", req_state(bus, req2));
        assert_audited(0, "expire", AUDIT_OUTCOME_OK, 0, obj);

        /* RequestAccess refusals: nothing is created. */
        n_requests = count_requests(bus);
        seq = audit_last_seq(audit_dir());
        request_access(&person, g, "INC-4: long", MAX_GRANT_USEC + USEC, &c);
        assert_refused(&c, E_DURATION_TOO_LONG, seq, "request", TW.person_uid, gobj, "over MaxGrantUSec");
        seq = audit_last_seq(audit_dir());
        request_access(&person, g, "INC-4: short", USEC / 2, &c);
        assert_refused(&c, E_DURATION_TOO_LONG, seq, "request", TW.person_uid, gobj, "under 1 s");
        seq = audit_last_seq(audit_dir());
        request_access(&person, g, "", 10 * USEC, &c);
        assert_refused(&c, E_JUSTIFICATION_REQUIRED, seq, "request", TW.person_uid, gobj, "empty justification");
        seq = audit_last_seq(audit_dir());
        request_access(&person, g, "     ", 10 * USEC, &c);
        assert_refused(&c, E_JUSTIFICATION_REQUIRED, seq, "request", TW.person_uid, gobj, "blank justification");
        seq = audit_last_seq(audit_dir());
        request_access(&member, g, "INC-5: I am in it", 10 * USEC, &c);
        assert_refused(&c, E_ALREADY_MEMBER, seq, "request", TW.member_uid, gobj, "a member asks");
        seq = audit_last_seq(audit_dir());
        request_access(NULL, g, "INC-5: root", 10 * USEC, &c);
        assert_refused(&c, E_ALREADY_MEMBER, seq, "request", 0, gobj, "root asks");
        snprintf(gobj, sizeof(gobj), "group/%s", gnone);
        seq = audit_last_seq(audit_dir());
        request_access(&person, gnone, "INC-6: no levels", 10 * USEC, &c);
        assert_refused(&c, E_NO_APPROVERS, seq, "request", TW.person_uid, gobj, "no ApprovalGroups");
        snprintf(gobj, sizeof(gobj), "group/%s", g);
        {
                char long_text[600];

                memset(long_text, 'x', sizeof(long_text) - 1);
                long_text[sizeof(long_text) - 1] = 0;
                seq = audit_last_seq(audit_dir());
                request_access(&person, g, long_text, 10 * USEC, &c);
                assert_refused(&c, E_INVALID_ARGUMENT, seq, "request", TW.person_uid, gobj, "over 512 bytes");
                seq = audit_last_seq(audit_dir());
                request_access(&person, g, "INC-6:\x1b[2J hidden", 10 * USEC, &c);
                assert_refused(&c, E_INVALID_ARGUMENT, seq, "request", TW.person_uid, gobj, "control characters");
        }
        ck_assert_uint_eq(count_requests(bus), n_requests);

        /* At most 8 open requests per requester ("other" here, so the person keeps its slots). */
        {
                char *open[8];

                for (size_t i = 0; i < ELEMENTSOF(open); i++)
                        open[i] = must_request(&other, g, "INC-13: one of many", 10 * USEC);
                seq = audit_last_seq(audit_dir());
                request_access(&other, g, "INC-13: one too many", 10 * USEC, &c);
                assert_refused(&c, E_TOO_MANY_REQUESTS, seq, "request", TW.other_uid, gobj, "a ninth open request");
                /* An admin (the admin group's member) is no approver. */
                request_object(open[0], g, obj);
                seq = audit_last_seq(audit_dir());
                act(&member, open[0], "Approve", &c);
                assert_refused(&c, E_NOT_APPROVER, seq, "approve", TW.member_uid, obj, "an admin approves");
                for (size_t i = 0; i < ELEMENTSOF(open); i++) {
                        must_act(&other, open[i], "Cancel");
                        free(open[i]);
                }
        }

        /* Cancel: the requester only. */
        req3 = must_request(&person, g, "INC-7: never mind", 10 * USEC);
        request_object(req3, g, obj);
        seq = audit_last_seq(audit_dir());
        act(&other, req3, "Cancel", &c);
        assert_refused(&c, E_ACCESS_DENIED, seq, "cancel", TW.other_uid, obj, "someone else cancels");
        seq = audit_last_seq(audit_dir());
        act(&a1, req3, "Cancel", &c);
        assert_refused(&c, E_ACCESS_DENIED, seq, "cancel", TW.approver1_uid, obj, "an approver cancels");
        ck_assert_str_eq(req_state(bus, req3), "pending");
        must_act(&person, req3, "Cancel");
        ck_assert_str_eq(req_state(bus, req3), "cancelled");
        ck_assert_uint_eq(req_u(bus, req3, "ClosedBy"), TW.person_uid);
        assert_audited(seq, "cancel", AUDIT_OUTCOME_OK, TW.person_uid, obj);
        seq = audit_last_seq(audit_dir());
        act(&a1, req3, "Approve", &c);
        assert_refused(&c, E_INVALID_STATE, seq, "approve", TW.approver1_uid, obj, "approving a cancelled request");
}
END_TEST

/* Revoke ends a live grant at once, in the kernel. */
START_TEST(test_revoke) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = test_bus_open();
        TestCreds person = test_creds_person(), a1 = test_creds_approver1(), a2 = test_creds_approver2(),
                  other = test_creds_other(), member = test_creds_member();
        const char *g = test_key_group("revoke"), *ct;
        _cleanup_free_ char *gpath = create_group(bus, g, true, 0), *req = NULL;
        char obj[128];
        uint64_t seq;
        TestCall c;

        ck_assert_ptr_nonnull(gpath);
        forget_ended_grants(&person);
        ct = work(0, g, "ct");
        test_member_encrypt(g, ct, "revocable");
        req = must_request(&person, g, "INC-8: one minute", MAX_GRANT_USEC);
        request_object(req, g, obj);
        must_act(&a1, req, "Approve");
        must_act(&a2, req, "Approve");
        ck_assert_str_eq(req_state(bus, req), "granted");
        decrypt_as(&person, ct, 0, "revocable");

        seq = audit_last_seq(audit_dir());
        act(&other, req, "Revoke", &c);
        assert_refused(&c, E_ACCESS_DENIED, seq, "revoke", TW.other_uid, obj, "someone else revokes");
        decrypt_as(&person, ct, 0, "revocable");

        must_act(&a1, req, "Revoke");
        ck_assert_str_eq(req_state(bus, req), "revoked");
        ck_assert_uint_eq(req_u(bus, req, "ClosedBy"), TW.approver1_uid);
        decrypt_as(&person, ct, 5, "access revoked");
        decrypt_as(&member, ct, 0, "revocable");
        assert_audited(seq, "revoke", AUDIT_OUTCOME_OK, TW.approver1_uid, obj);

        seq = audit_last_seq(audit_dir());
        act(&a1, req, "Revoke", &c);
        assert_refused(&c, E_INVALID_STATE, seq, "revoke", TW.approver1_uid, obj, "revoking twice");
}
END_TEST

/* Retiring a generation is break-glass grade: a request every level approves. */
START_TEST(test_retire_with_approvals) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = test_bus_open();
        TestCreds a1 = test_creds_approver1(), a2 = test_creds_approver2(), member = test_creds_member();
        const char *g = test_key_group("retire"), *ct1, *ct3;
        _cleanup_free_ char *gpath = create_group(bus, g, true, 0), *req = NULL;
        char obj[128], err[1024];
        uint64_t seq;
        uint32_t number;
        int status;
        TestCall c;

        ct1 = work(0, g, "ct1");
        test_member_encrypt(g, ct1, "under one");
        for (uint32_t want = 2; want <= 3; want++) {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;

                ck_assert_msg(sd_bus_call_method(bus, SVC, gpath, GROUP_IFACE, "Rollover", &e, &reply, NULL) >= 0,
                              "Rollover: %s", e.message ?: "");
                ck_assert_int_ge(sd_bus_message_read(reply, "u", &number), 0);
                ck_assert_uint_eq(number, want);
        }
        ct3 = work(1, g, "ct3");
        test_member_encrypt(g, ct3, "under three");
        ck_assert_str_eq(gen_state(bus, gpath, 1), "archived");
        decrypt_as(&member, ct1, 0, "under one");

        (void) test_call_as(NULL, &c, gpath, GROUP_IFACE, "Retire", "us", 1, "shred old");
        assert_ok(&c, "Retire");
        ck_assert_msg(strncmp(c.path, "/org/dkm/KeyManager1/request/", 29) == 0, "Retire gave '%s'", c.path);
        req = strdup(c.path);
        request_object(req, g, obj);
        ck_assert_str_eq(gen_state(bus, gpath, 1), "archived");
        {
                _cleanup_free_ char *kind = req_s(bus, req, "Kind");
                ck_assert_str_eq(kind, "retire");
        }
        ck_assert_uint_eq(req_u(bus, req, "Generation"), 1);
        ck_assert_uint_eq(req_u(bus, req, "Requester"), 0);

        /* Root filed it: root alone cannot also approve it. */
        seq = audit_last_seq(audit_dir());
        act(NULL, req, "Approve", &c);
        assert_refused(&c, E_SELF_APPROVAL, seq, "approve", 0, obj, "root approves its own retire");

        must_act(&a1, req, "Approve");
        ck_assert_str_eq(gen_state(bus, gpath, 1), "archived");
        decrypt_as(&member, ct1, 0, "under one");
        must_act(&a2, req, "Approve");
        ck_assert_str_eq(req_state(bus, req), "done");
        ck_assert_str_eq(gen_state(bus, gpath, 1), "retired");
        status = decrypt(&member, ct1, NULL, err, sizeof(err));
        ck_assert_msg(status == 5 || status == 3, "decrypt under a retired generation: status %d: %s", status, err);
        decrypt_as(&member, ct3, 0, "under three");
        {
                char gobj[80];
                snprintf(gobj, sizeof(gobj), "group/%s", g);
                assert_audited(seq, "retire", AUDIT_OUTCOME_OK, TW.approver2_uid, gobj);
        }
        assert_audited(seq, "request-done", AUDIT_OUTCOME_OK, TW.approver2_uid, obj);

        /* Without RetireNeedsApproval: at once, no request. */
        {
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                ck_assert_msg(sd_bus_call_method(bus, SVC, gpath, GROUP_IFACE, "SetPolicy", &e, NULL, "a{sv}", 1,
                                                 "RetireNeedsApproval", "b", 0) >= 0,
                              "SetPolicy: %s", e.message ?: "");
        }
        (void) test_call_as(NULL, &c, gpath, GROUP_IFACE, "Retire", "us", 2, "shred two");
        assert_ok(&c, "Retire without approvals");
        ck_assert_str_eq(c.path, "/");
        ck_assert_str_eq(gen_state(bus, gpath, 2), "retired");
        ck_assert_str_eq(gen_state(bus, gpath, 3), "active");
}
END_TEST

/* ---- the tests below stop and start dkmd; the one of the fixture is gone after the first ---- */

/* Requests live in files: an approval given before a restart counts after it. */
START_TEST(test_state_survives_restart) {
        TestCreds person = test_creds_person(), a1 = test_creds_approver1(), a2 = test_creds_approver2();
        const char *g = test_key_group("restart"), *ct;
        _cleanup_free_ char *gpath = NULL, *req = NULL;
        uid_t uids[4];

        forget_ended_grants(&person);
        {
                _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = test_bus_open();
                gpath = create_group(bus, g, true, 0);
        }
        ct = work(0, g, "ct");
        test_member_encrypt(g, ct, "after a restart");
        req = must_request(&person, g, "INC-9: across a restart", 30 * USEC);
        must_act(&a1, req, "Approve");

        ck_assert_int_eq(test_dkmd_stop(false), 0);
        test_dkmd_start(NULL);
        {
                _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = test_bus_open();

                ck_assert_str_eq(req_state(bus, req), "pending");
                ck_assert_uint_eq(req_approvals(bus, req, uids, 4), 1);
                ck_assert_uint_eq(uids[0], TW.approver1_uid);
                must_act(&a2, req, "Approve");
                ck_assert_str_eq(req_state(bus, req), "granted");
                decrypt_as(&person, ct, 0, "after a restart");
                /* The requester may end it early. */
                must_act(&person, req, "Revoke");
                ck_assert_str_eq(req_state(bus, req), "revoked");
                decrypt_as(&person, ct, 5, "access revoked");
        }
        ck_assert_int_eq(test_dkmd_stop(false), 0);

        /* A damaged request file is skipped at start, kept, and its id never given again. */
        {
                const char *id = strrchr(req, '/') + 1;
                char file[256], *next;
                FILE *f;

                snprintf(file, sizeof(file), "%s/requests/%s.request", TW.state_dir, id);
                f = fopen(file, "ae");
                ck_assert_ptr_nonnull(f);
                fputs("damage\n", f);
                fclose(f);
                test_dkmd_start(NULL);
                next = must_request(&person, g, "INC-10: after a damaged file", 30 * USEC);
                ck_assert_uint_gt(strtoull(strrchr(next, '/') + 1, NULL, 10), strtoull(id, NULL, 10));
                ck_assert_int_eq(access(file, F_OK), 0);
                {
                        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = test_bus_open();
                        sd_bus_error e = SD_BUS_ERROR_NULL;
                        char *s = NULL;

                        /* The damaged one is not served: its object is gone. */
                        ck_assert_int_lt(sd_bus_get_property_string(bus, SVC, req, REQUEST_IFACE, "State", &e, &s), 0);
                        sd_bus_error_free(&e);
                        must_act(&person, next, "Cancel");
                }
                free(next);
                ck_assert_int_eq(test_dkmd_stop(false), 0);
        }
}
END_TEST

/* The grant is the kernel's: it works and ends with dkmd SIGKILLed; the restart records the end. */
START_TEST(test_grant_outlives_dkmd) {
        TestCreds person = test_creds_person(), a1 = test_creds_approver1(), a2 = test_creds_approver2();
        const char *g = test_key_group("kill"), *ct, *dkmctl = getenv("DKM_DKMCTL");
        _cleanup_free_ char *gpath = NULL, *req = NULL;
        uint64_t expires;
        char obj[128];

        forget_ended_grants(&person);
        (void) test_dkmd_stop(false);
        test_dkmd_start(NULL);
        {
                _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = test_bus_open();
                gpath = create_group(bus, g, true, 0);
        }
        ct = work(0, g, "ct");
        test_member_encrypt(g, ct, "while dkmd is dead");
        req = must_request(&person, g, "INC-10: dkmd dies", 3 * USEC);
        request_object(req, g, obj);
        must_act(&a1, req, "Approve");
        must_act(&a2, req, "Approve");
        {
                _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = test_bus_open();
                expires = req_t(bus, req, "ExpiresUSec");
        }
        ck_assert_int_eq(test_dkmd_stop(true) & 0x7f, SIGKILL);

        decrypt_as(&person, ct, 0, "while dkmd is dead");
        sleep_until(expires + USEC);
        /* Nothing but the kernel ended it. */
        decrypt_as(&person, ct, 6, "access expired");

        test_dkmd_start(NULL);
        {
                _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = test_bus_open();
                ck_assert_msg(wait_state(bus, req, "ended", 3000), "state %s, want ended", req_state(bus, req));
        }
        decrypt_as(&person, ct, 6, "access expired");
        ck_assert_int_eq(test_dkmd_stop(false), 0);
        assert_audit_verifies(audit_dir());
        assert_audited(0, "grant", AUDIT_OUTCOME_OK, TW.approver2_uid, obj);
        assert_audited(0, "grant-end", AUDIT_OUTCOME_OK, 0, obj);

        if (dkmctl) {
                char dir[160];
                TestRun r;

                snprintf(dir, sizeof(dir), "--dir=%s", audit_dir());
                test_run(&r, NULL, 0, NULL,
                         (char *const[]){ (char *) dkmctl, (char *) "audit", (char *) "verify", dir, NULL });
                ck_assert_msg(r.status == 0, "dkmctl audit verify: %d: %s%s", r.status, (char *) r.out, r.err);
                test_run_free(&r);
                test_run(&r, NULL, 0, NULL,
                         (char *const[]){ (char *) dkmctl, (char *) "--json", (char *) "audit", (char *) "show", dir,
                                          (char *) "--event=grant", NULL });
                ck_assert_msg(r.status == 0, "dkmctl audit show: %d: %s", r.status, r.err);
                ck_assert_msg(strstr((char *) r.out, obj) && strstr((char *) r.out, "\"event\":\"grant\""),
                              "dkmctl audit show --event=grant lacks %s: %s", obj, (char *) r.out);
                test_run_free(&r);
        }
}
END_TEST

static void run_ok(char *const argv[]) {
        TestRun r;

        test_run(&r, NULL, 0, NULL, argv);
        ck_assert_msg(r.status == 0, "%s %s: %d: %s", argv[0], argv[1] ?: "", r.status, r.err);
        test_run_free(&r);
}

static uint32_t hot_window(sd_bus *bus, const char *gpath) {
        return group_u(bus, gpath, "HotWindow");
}

/* The audit log fails closed: when a record cannot be written, nothing happens. */
START_TEST(test_audit_fails_closed) {
        const char *g = test_key_group("full");
        TestCreds person = test_creds_person();
        char dir[128], audit[160], filler[160], arg[192], buf[4096];
        _cleanup_free_ char *gpath = NULL;
        size_t n_requests;
        uint32_t active, number;
        ssize_t n;
        TestRun r;
        TestCall c;
        int fd, i;

        snprintf(dir, sizeof(dir), "%s/auditfs", TW.dir);
        snprintf(audit, sizeof(audit), "%s/audit", dir);
        snprintf(filler, sizeof(filler), "%s/filler", dir);
        snprintf(arg, sizeof(arg), "--audit-dir=%s", audit);
        ck_assert_int_eq(mkdir(dir, 0700), 0);
        ck_assert_msg(mount("tmpfs", dir, "tmpfs", 0, "size=64k,mode=0700") == 0, "mount tmpfs: %m");
        snprintf(left->mount, sizeof(left->mount), "%s", dir);

        (void) test_dkmd_stop(false);
        test_dkmd_start((const char *const[]){ arg, NULL });
        {
                _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = test_bus_open();
                gpath = create_group(bus, g, true, 0);
                active = group_u(bus, gpath, "ActiveGeneration");
                n_requests = count_requests(bus);
        }

        /* Fill the file system; then the log's last page, with records that change nothing. */
        fd = open(filler, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        ck_assert_int_ge(fd, 0);
        memset(buf, 'x', sizeof(buf));
        while ((n = write(fd, buf, sizeof(buf))) > 0)
                ;
        ck_assert_msg(n < 0 && errno == ENOSPC, "filling the tmpfs: %m");
        close(fd);
        for (i = 0; i < 40; i++) {
                (void) test_call_as(NULL, &c, gpath, GROUP_IFACE, "Load", NULL);
                if (c.r < 0)
                        break;
        }
        assert_error(&c, E_AUDIT_FAILED, "Load on a full audit file system");

        (void) test_call_as(NULL, &c, gpath, GROUP_IFACE, "Rollover", NULL);
        assert_error(&c, E_AUDIT_FAILED, "Rollover on a full audit file system");
        (void) test_call_as(NULL, &c, gpath, GROUP_IFACE, "SetPolicy", "a{sv}", 1, "HotWindow", "u", (uint32_t) 5);
        assert_error(&c, E_AUDIT_FAILED, "SetPolicy on a full audit file system");
        request_access(&person, g, "INC-11: audit full", 10 * USEC, &c);
        assert_error(&c, E_AUDIT_FAILED, "RequestAccess on a full audit file system");
        {
                _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = test_bus_open();
                ck_assert_uint_eq(group_u(bus, gpath, "ActiveGeneration"), active);
                ck_assert_uint_eq(group_u(bus, gpath, "PendingGeneration"), 0);
                ck_assert_uint_eq(hot_window(bus, gpath), 2);
                ck_assert_uint_eq(count_requests(bus), n_requests);
        }
        ck_assert_int_eq(test_store("check"), 0);
        ck_assert_int_eq(test_helper_status_value(g, "active "), (long) active);

        /* Room again: it works, and the log was never left half-written. */
        ck_assert_int_eq(unlink(filler), 0);
        (void) test_call_as(NULL, &c, gpath, GROUP_IFACE, "Rollover", NULL);
        assert_ok(&c, "Rollover after freeing space");
        {
                _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = test_bus_open();
                number = group_u(bus, gpath, "ActiveGeneration");
                ck_assert_uint_eq(number, active + 1);
        }
        ck_assert_int_eq(test_dkmd_stop(false), 0);
        assert_audit_verifies(audit);

        /* Read-only. Linux refuses to remount a file system read-only while a file on it is open
         * for writing (EBUSY), as dkmd's log is: so this is the start, which must not serve. */
        run_ok((char *const[]){ (char *) "/bin/mount", (char *) "-o", (char *) "remount,ro", dir, NULL });
        test_run(&r, NULL, 0, NULL,
                 (char *const[]){ (char *) "/usr/bin/timeout", (char *) "20", (char *) test_env_path("DKM_DKMD"),
                                  (char *) "--bus=system", (char *) "--admin-group", TW.grp, arg, NULL });
        ck_assert_msg(r.status != 0 && r.status != 124, "dkmd on a read-only audit dir: status %d", r.status);
        ck_assert_msg(strstr(r.err, "audit"), "dkmd said: %s", r.err);
        test_run_free(&r);
        ck_assert_int_eq(test_store("check"), 0);
        assert_audit_verifies(audit);

        ck_assert_int_eq(umount2(dir, 0), 0);
        left->mount[0] = 0;
}
END_TEST

/* ---- no key bytes anywhere ---- */

#define JOURNAL_SOCKET "/run/systemd/journal/socket"

static bool journal_live(void) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX, .sun_path = JOURNAL_SOCKET };
        int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        bool ok;

        ck_assert_int_ge(fd, 0);
        ok = connect(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0;
        close(fd);
        return ok;
}

/* A journald of our own if none runs (a container without systemd): recorded in left. */
static void journal_up(void) {
        static const char *const dirs[] = { "/run/systemd", "/run/systemd/journal" };
        char machine[64] = "", files[128], log[160];
        pid_t pid, parent = getpid();
        FILE *f;

        if (journal_live())
                return;
        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                if (mkdir(dirs[i], 0755) < 0) {
                        ck_assert_int_eq(errno, EEXIST);
                        continue;
                }
                if (!left->made_journal_dir[0])
                        snprintf(left->made_journal_dir, sizeof(left->made_journal_dir), "%s", dirs[i]);
        }
        f = fopen("/etc/machine-id", "re");
        if (f) {
                if (fscanf(f, "%32s", machine) == 1) {
                        snprintf(files, sizeof(files), "/run/log/journal/%s", machine);
                        if (access(files, F_OK) < 0)
                                snprintf(left->made_journal_files, sizeof(left->made_journal_files), "%s", files);
                }
                fclose(f);
        }
        snprintf(log, sizeof(log), "%s/journald.log", TW.dir);
        fflush(NULL);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                int fd;

                (void) prctl(PR_SET_PDEATHSIG, SIGTERM);
                if (getppid() != parent)
                        _exit(126);
                fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
                if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0)
                        _exit(126);
                execl("/lib/systemd/systemd-journald", "systemd-journald", (char *) NULL);
                _exit(127);
        }
        left->journald = pid;
        for (int i = 0; i < 100 && !journal_live(); i++)
                sleep_ms(50);
        ck_assert_msg(journal_live(), "systemd-journald did not come up; see %s", log);
}

static void journal_down(void) {
        if (left->journald > 0) {
                (void) kill(left->journald, SIGTERM);
                (void) test_wait(left->journald);
                left->journald = 0;
        }
        leftovers_clean();
}

/* The entry of export-format text whose DKM_OBJECT is obj, cut out in place (NUL-terminated);
 * NULL if none. */
static char *export_entry(char *text, const char *obj) {
        for (char *e = text; e && *e;) {
                char *end = strstr(e, "\n\n");

                if (end)
                        *end = 0;
                for (char *line = strstr(e, "\nDKM_OBJECT="); line; line = strstr(line + 1, "\nDKM_OBJECT=")) {
                        char value[AUDIT_OBJECT_MAX + 1];
                        const char *v = line + strlen("\nDKM_OBJECT=");
                        size_t l = strcspn(v, "\n");

                        snprintf(value, sizeof(value), "%.*s", (int) l, v);
                        if (strcmp(value, obj) == 0)
                                return e;
                }
                e = end ? end + 2 : NULL;
        }
        return NULL;
}

/* journalctl ARGS... as root; its output (malloc'd, NUL-terminated), size in *ret_size. */
static char *journalctl(size_t *ret_size, const char *a1, const char *a2, const char *a3, const char *a4) {
        TestRun r;

        test_run(&r, NULL, 0, NULL,
                 (char *const[]){ (char *) "/usr/bin/journalctl", (char *) "--no-pager", (char *) a1, (char *) a2,
                                  (char *) a3, (char *) a4, NULL });
        ck_assert_msg(r.status == 0 || r.status == 1, "journalctl %s: %d: %s", a1, r.status, r.err);
        *ret_size = r.out_size;
        return (char *) r.out;
}

typedef struct Keys {
        int n, failed_at;
        long error;
        uint8_t key[4][KEYRING_KEY_BYTES];
        char group[KEYRING_GROUP_NAME_MAX + 1];
        uint8_t id[KEYRING_GROUP_ID_BYTES];
} Keys;

/* As a member: the generation keys as the kernel holds them for the group. */
static void read_keys(void *userdata) {
        Keys *k = userdata;
        char desc[KEYRING_DESC_MAX];
        key_serial_t ring, key;

        k->failed_at = -1;
        if (keyring_group_desc(k->group, desc) < 0 ||
            (ring = keyctl_search(KEY_SPEC_USER_KEYRING, "keyring", desc, 0)) < 0) {
                k->failed_at = 0;
                k->error = errno;
                return;
        }
        for (int i = 0; i < k->n; i++)
                if (keyring_generation_desc(k->id, (uint32_t) i + 1, desc) < 0 ||
                    (key = keyctl_search(ring, "user", desc, 0)) < 0 ||
                    keyctl_read(key, (char *) k->key[i], KEYRING_KEY_BYTES) != KEYRING_KEY_BYTES) {
                        k->failed_at = i + 1;
                        k->error = errno;
                        return;
                }
}

static void base64(const uint8_t *p, size_t n, char *out, bool url) {
        const char *a = url ? "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                            : "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        size_t o = 0;

        for (size_t i = 0; i < n; i += 3) {
                uint32_t v =
                        (uint32_t) p[i] << 16 | (i + 1 < n ? (uint32_t) p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
                out[o++] = a[v >> 18 & 63];
                out[o++] = a[v >> 12 & 63];
                out[o++] = i + 1 < n ? a[v >> 6 & 63] : '=';
                out[o++] = i + 2 < n ? a[v & 63] : '=';
        }
        out[o] = 0;
}

/* None of the keys, raw, in hex (either case) or base64 (either alphabet), in data. */
static void assert_no_keys(const Keys *k, const void *data, size_t size, const char *where) {
        for (int i = 0; i < k->n; i++) {
                char hex[2 * KEYRING_KEY_BYTES + 1], HEX[2 * KEYRING_KEY_BYTES + 1], b64[64], b64url[64];

                for (size_t j = 0; j < KEYRING_KEY_BYTES; j++) {
                        sprintf(hex + 2 * j, "%02x", k->key[i][j]);
                        sprintf(HEX + 2 * j, "%02X", k->key[i][j]);
                }
                base64(k->key[i], KEYRING_KEY_BYTES, b64, false);
                base64(k->key[i], KEYRING_KEY_BYTES, b64url, true);
                /* 16 bytes of a 32-byte random key do not turn up by chance. */
                ck_assert_msg(!memmem(data, size, k->key[i], 16), "generation %d's key, raw, in %s", i + 1, where);
                ck_assert_msg(!memmem(data, size, hex, 32), "generation %d's key, in hex, in %s", i + 1, where);
                ck_assert_msg(!memmem(data, size, HEX, 32), "generation %d's key, in HEX, in %s", i + 1, where);
                ck_assert_msg(!memmem(data, size, b64, 40), "generation %d's key, in base64, in %s", i + 1, where);
                ck_assert_msg(!memmem(data, size, b64url, 40), "generation %d's key, in base64url, in %s", i + 1,
                              where);
        }
}

/* The whole file (malloc'd); its size in *ret_size. */
static char *read_file(const char *path, size_t *ret_size) {
        struct stat st;
        char *data;
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

        ck_assert_msg(fd >= 0, "%s: %m", path);
        ck_assert_int_eq(fstat(fd, &st), 0);
        data = malloc((size_t) st.st_size + 1);
        ck_assert_ptr_nonnull(data);
        ck_assert_int_eq(pread(fd, data, (size_t) st.st_size, 0), st.st_size);
        close(fd);
        *ret_size = (size_t) st.st_size;
        return data;
}

/* Every regular file of dir (not recursive: the audit and request directories are flat). */
static size_t assert_no_keys_in_dir(const Keys *k, const char *dir) {
        DIR *d = opendir(dir);
        struct dirent *de;
        size_t files = 0;

        ck_assert_msg(d, "%s: %m", dir);
        while ((de = readdir(d))) {
                _cleanup_free_ char *data = NULL;
                char path[512];
                size_t size;

                snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
                if (de->d_type != DT_REG)
                        continue;
                data = read_file(path, &size);
                assert_no_keys(k, data, size, path);
                files++;
        }
        closedir(d);
        return files;
}

static void assert_no_keys_busctl(const Keys *k, char *const argv[], const char *where) {
        TestRun r;

        test_run(&r, NULL, 0, NULL, argv);
        ck_assert_msg(r.status == 0, "busctl %s: %s", where, r.err);
        ck_assert_uint_gt(r.out_size, 0);
        assert_no_keys(k, r.out, r.out_size, where);
        test_run_free(&r);
}

START_TEST(test_no_key_bytes_anywhere) {
        TestCreds person = test_creds_person(), a1 = test_creds_approver1(), a2 = test_creds_approver2(),
                  member = test_creds_member();
        const char *g = test_key_group("nokeys"), *ct;
        _cleanup_free_ char *gpath = NULL, *req = NULL, *export = NULL, *json = NULL;
        Keys *k = test_shared_new(sizeof(Keys));
        char obj[128], requests[160], want[96], match_object[96], *entry;
        size_t size, files;
        uint32_t number;
        TestRun r;
        TestCall c;

        journal_up();
        /* A dkmd started after the journal, so every record of this test reaches it. */
        (void) test_dkmd_stop(false);
        test_dkmd_start(NULL);
        {
                _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = test_bus_open();
                gpath = create_group(bus, g, true, 0);
        }
        ct = work(0, g, "ct");
        test_member_encrypt(g, ct, "no keys in the logs");
        req = must_request(&person, g, "INC-12: keys stay in the kernel", 30 * USEC);
        request_object(req, g, obj);
        must_act(&a1, req, "Approve");
        must_act(&a2, req, "Approve");
        decrypt_as(&person, ct, 0, "no keys in the logs");
        (void) test_call_as(NULL, &c, gpath, GROUP_IFACE, "Rollover", NULL);
        assert_ok(&c, "Rollover");
        {
                _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = test_bus_open();
                number = group_u(bus, gpath, "ActiveGeneration");
                ck_assert_uint_eq(number, 2);
        }

        /* The keys, from the kernel, as a member reads them. */
        test_run(&r, NULL, 0, NULL,
                 (char *const[]){ (char *) TW.store, (char *) "group", (char *) "show", (char *) g, NULL });
        {
                const char *p = r.status == 0 ? strstr((char *) r.out, "Group id:") : NULL;
                char idhex[40] = "";

                ck_assert_msg(p && sscanf(p, "Group id: %32s", idhex) == 1, "dkm-store group show: %s", r.err);
                ck_assert_int_eq(keyring_group_id_from_hex(idhex, strlen(idhex), k->id), 0);
        }
        test_run_free(&r);
        snprintf(k->group, sizeof(k->group), "%s", g);
        k->n = 2;
        test_wait_ok(test_fork_as(&member, read_keys, k));
        ck_assert_msg(k->failed_at < 0, "reading the keys as a member failed at %d: %s", k->failed_at,
                      strerror((int) k->error));
        ck_assert_msg(memcmp(k->key[0], k->key[1], KEYRING_KEY_BYTES) != 0, "two generations, one key");

        /* The journal got every record, with its message id: wait for the last one. */
        snprintf(match_object, sizeof(match_object), "DKM_OBJECT=group/%s", g);
        for (int i = 0; i < 100; i++) {
                free(export);
                export = journalctl(&size, "-o", "export", "DKM_EVENT=rollover", match_object);
                if (memmem(export, size, "DKM_OUTCOME=ok", strlen("DKM_OUTCOME=ok")))
                        break;
                sleep_ms(50);
        }
        ck_assert_msg(strstr(export, "DKM_EVENT=rollover"), "no rollover record in the journal");
        free(export);
        export = journalctl(&size, "-o", "export", "DKM_EVENT=grant", NULL);
        entry = export_entry(export, obj);
        ck_assert_msg(entry, "no grant record of %s in the journal", obj);
        ck_assert_msg(strstr(entry, "MESSAGE_ID=" GRANT_MESSAGE_ID), "grant record without its MESSAGE_ID: %s", entry);
        ck_assert_ptr_nonnull(strstr(entry, "DKM_OUTCOME=ok"));
        ck_assert_ptr_nonnull(strstr(entry, "DKM_AUDIT_SEQ="));
        ck_assert_ptr_nonnull(strstr(entry, "DKM_AUDIT_HASH="));
        snprintf(want, sizeof(want), "DKM_CALLER_UID=%u", (unsigned) TW.approver2_uid);
        ck_assert_msg(strstr(entry, want), "grant record without %s: %s", want, entry);
        free(export);

        /* Nowhere a key: the whole journal, the audit log, the request files, dkmd's log, the bus. */
        export = journalctl(&size, "-o", "export", NULL, NULL);
        /* Binary fields are raw in the export format: not a C string. */
        ck_assert_ptr_nonnull(memmem(export, size, "DKM_EVENT=grant", strlen("DKM_EVENT=grant")));
        assert_no_keys(k, export, size, "journalctl -o export");
        json = journalctl(&size, "-o", "json", NULL, NULL);
        assert_no_keys(k, json, size, "journalctl -o json");
        files = assert_no_keys_in_dir(k, audit_dir());
        ck_assert_uint_ge(files, 3); /* audit.key, audit.pub, a log */
        snprintf(requests, sizeof(requests), "%s/requests", TW.state_dir);
        ck_assert_uint_ge(assert_no_keys_in_dir(k, requests), 1);
        {
                _cleanup_free_ char *data = read_file(test_dkmd_log(), &size);

                assert_no_keys(k, data, size, "dkmd's log");
        }
        assert_no_keys_busctl(k,
                              (char *const[]){ (char *) BUSCTL, (char *) "--system", (char *) "call", (char *) SVC,
                                               (char *) MGR_PATH, (char *) "org.freedesktop.DBus.ObjectManager",
                                               (char *) "GetManagedObjects", NULL },
                              "GetManagedObjects");
        assert_no_keys_busctl(k,
                              (char *const[]){ (char *) BUSCTL, (char *) "--system", (char *) "--json=short",
                                               (char *) "call", (char *) SVC, (char *) MGR_PATH,
                                               (char *) "org.freedesktop.DBus.ObjectManager",
                                               (char *) "GetManagedObjects", NULL },
                              "GetManagedObjects (json)");
        assert_no_keys_busctl(k,
                              (char *const[]){ (char *) BUSCTL, (char *) "--system", (char *) "call", (char *) SVC,
                                               (char *) MGR_PATH, (char *) MGR_IFACE, (char *) "ListRequests", NULL },
                              "ListRequests");
        {
                _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = test_bus_open();
                static char paths[64][128];
                size_t n = list_requests(bus, paths, ELEMENTSOF(paths));

                ck_assert_uint_ge(n, 1);
                for (size_t i = 0; i < n && i < ELEMENTSOF(paths); i++)
                        assert_no_keys_busctl(
                                k,
                                (char *const[]){ (char *) BUSCTL, (char *) "--system", (char *) "call", (char *) SVC,
                                                 paths[i], (char *) "org.freedesktop.DBus.Properties",
                                                 (char *) "GetAll", (char *) "s", (char *) REQUEST_IFACE, NULL },
                                paths[i]);
        }
        assert_no_keys_busctl(k,
                              (char *const[]){ (char *) BUSCTL, (char *) "--system", (char *) "call", (char *) SVC,
                                               (char *) gpath, (char *) "org.freedesktop.DBus.Properties",
                                               (char *) "GetAll", (char *) "s", (char *) GROUP_IFACE, NULL },
                              "the group's GetAll");

        must_act(&person, req, "Revoke");
        ck_assert_int_eq(test_dkmd_stop(false), 0);
        journal_down();
}
END_TEST

/* Without root: only what needs no bus, no accounts and no kernel keys. */
START_TEST(test_usage) {
        TestRun r;

        test_run(&r, NULL, 0, NULL, (char *const[]){ (char *) test_env_path("DKM_DKMD"), (char *) "--help", NULL });
        ck_assert_int_eq(r.status, 0);
        ck_assert_ptr_nonnull(strstr((char *) r.out, "--audit-dir"));
        test_run_free(&r);
}
END_TEST

static Suite *make_suite(bool integration) {
        Suite *s = suite_create("access");
        TCase *tc = tcase_create("usage");

        tcase_add_test(tc, test_usage);
        suite_add_tcase(s, tc);
        if (integration) {
                tc = tcase_create("break-glass");
                tcase_set_timeout(tc, 120);
                tcase_add_unchecked_fixture(tc, bus_up, bus_down);
                tcase_add_test(tc, test_two_levels_grant_and_expiry);
                tcase_add_test(tc, test_refusals);
                tcase_add_test(tc, test_revoke);
                tcase_add_test(tc, test_retire_with_approvals);
                /* Last: they stop and start dkmd. */
                tcase_add_test(tc, test_state_survives_restart);
                tcase_add_test(tc, test_grant_outlives_dkmd);
                tcase_add_test(tc, test_audit_fails_closed);
                tcase_add_test(tc, test_no_key_bytes_anywhere);
                suite_add_tcase(s, tc);
        }
        return s;
}

int main(void) {
        test_world_want_person = true;
        test_world_want_approvers = true;
        return test_world_main(make_suite, key_group_tags);
}
