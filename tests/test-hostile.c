/* SPDX-License-Identifier: MIT */
/* Hostile callers: a non-member, then a compromised member, try everything the kernel and dkmd's bus API offer. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
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
#define E_NO_SUCH_REQUEST        "org.dkm.KeyManager1.Error.NoSuchRequest"
#define E_NOT_APPROVER           "org.dkm.KeyManager1.Error.NotApprover"
#define E_TOO_MANY_REQUESTS      "org.dkm.KeyManager1.Error.TooManyRequests"
#define E_DURATION_TOO_LONG      "org.dkm.KeyManager1.Error.DurationTooLong"
#define E_JUSTIFICATION_REQUIRED "org.dkm.KeyManager1.Error.JustificationRequired"

#define REQUEST_IFACE  "org.dkm.KeyManager1.Request"
#define REQUEST_PREFIX "/org/dkm/KeyManager1/request/"
/* A sanitizer's allocator keeps freed memory in quarantine (ASan: 256 MiB): RSS says nothing
 * about what dkmd holds on to there. */
#if defined(__SANITIZE_ADDRESS__)
#define SANITIZER_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZER_BUILD 1
#endif
#endif
#ifndef SANITIZER_BUILD
#define SANITIZER_BUILD 0
#endif

#define USEC           1000000ULL
#define MAX_GRANT_USEC (60 * USEC)

/* DBUS-API.md, "Break-glass requests". */
#define OPEN_PER_UID 8
#define OPEN_MAX     256
/* Enough accounts, with TW.other, to fill OPEN_MAX at OPEN_PER_UID each. */
#define EXTRA_ACCOUNTS (OPEN_MAX / OPEN_PER_UID - 1)
/* dbus-daemon's default max_message_size (bus/config-parser.c); the test bus sets no <limit>. */
#define BUS_MESSAGE_MAX (32U * 1024U * 1024U)

/* hk: the target (gid TW.grp: member, member2), generations 1..4, HotWindow 2: 4 active, 3 and 2
 * hot, 1 only on demand; approval levels appr1, appr2. hk2: another group (gid of person), 1..3,
 * HotWindow 0. hkdos: the member's denial of service, 1..2. */
static const char *const key_group_tags[] = { "hk", "hk2", "hkdos", NULL };

/* Set by the fixture in the suite runner, inherited by every forked test. */
static struct {
        char hk_path[160], hk2_path[160], hkdos_path[160];
        char hk_id[KEYRING_GROUP_ID_HEX + 1], hk2_id[KEYRING_GROUP_ID_HEX + 1];
        char sample[300];  /* hk, generation 4, by member */
        char dos_old[300]; /* hkdos, generation 1 */
        char dos_new[300]; /* hkdos, generation 2 */
} H;

#define SAMPLE_TEXT  "hk: the mail password"
#define DOS_OLD_TEXT "hkdos: old"
#define DOS_NEW_TEXT "hkdos: new"

/* ---- small things ---- */

static void sleep_ms(unsigned ms) {
        nanosleep(&(struct timespec){ ms / 1000, (long) (ms % 1000) * 1000000L }, NULL);
}

static char *repeat(char c, size_t n) {
        char *s = malloc(n + 1);

        ck_assert_ptr_nonnull(s);
        memset(s, c, n);
        s[n] = 0;
        return s;
}

/* A "Field: N kB" line of a /proc/PID file. dkmd's resident memory is read from smaps_rollup,
 * which counts exactly (VmRSS in status is an approximate per-CPU sum); its peak is status' VmHWM. */
static long proc_kib(pid_t pid, const char *file, const char *field) {
        char path[64], line[256];
        long v = -1;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/%s", (int) pid, file);
        f = fopen(path, "re");
        if (!f)
                return -1;
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, field, strlen(field)) == 0)
                        v = strtol(line + strlen(field), NULL, 10);
        fclose(f);
        return v;
}

static long rss_kib(pid_t pid) {
        return proc_kib(pid, "smaps_rollup", "Rss:");
}

static long peak_kib(pid_t pid) {
        return proc_kib(pid, "status", "VmHWM:");
}

static bool dkmd_alive(void) {
        return test_dkmd_pid() > 0 && kill(test_dkmd_pid(), 0) == 0 && rss_kib(test_dkmd_pid()) > 0;
}

/* The helper's "status GROUP" value of a line starting with prefix, as text. */
static bool helper_status_text(const char *group, const char *prefix, char *ret, size_t size) {
        TestRun r;
        bool found = false;

        test_run(&r, NULL, 0, NULL, (char *const[]){ (char *) TW.helper, (char *) "status", (char *) group, NULL });
        for (const char *p = (const char *) r.out; r.status == 0 && p && *p;) {
                if (strncmp(p, prefix, strlen(prefix)) == 0) {
                        snprintf(ret, size, "%.*s", (int) strcspn(p + strlen(prefix), " \n"), p + strlen(prefix));
                        found = true;
                        break;
                }
                p = strchr(p, '\n');
                if (p)
                        p++;
        }
        test_run_free(&r);
        return found;
}

static key_serial_t status_serial(const char *tag, const char *prefix) {
        long v = test_helper_status_value(test_key_group(tag), prefix);

        ck_assert_msg(v > 0, "%s: no '%s' in the helper's status", tag, prefix);
        return (key_serial_t) v;
}

/* ---- calls as a given user ---- */

typedef struct Call {
        int r;
        char error[128];
        char message[512];
        char path[128]; /* the reply's object path, if it is one */
} Call;

/* Fills the body of m; NULL args for a call without arguments. */
typedef int (*BuildFn)(sd_bus_message *m, const void *arg);

static Call *call_shared;

/* One method call from a child that took c's credentials (NULL: stays root), so the bus reports
 * that uid and those groups. A bus that drops the caller shows as r < 0 with no error name. */
static int call_build(const TestCreds *c, Call *ret, const char *path, const char *iface, const char *method,
                      BuildFn build, const void *arg) {
        pid_t pid;

        if (!call_shared)
                call_shared = test_shared_new(sizeof(Call));
        memset(call_shared, 0, sizeof(*call_shared));
        fflush(NULL);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                sd_bus_error e = SD_BUS_ERROR_NULL;
                sd_bus_message *m = NULL, *reply = NULL;
                sd_bus *bus = NULL;

                if (c)
                        test_become(c);
                if (sd_bus_open_system(&bus) < 0)
                        _exit(80);
                if (sd_bus_message_new_method_call(bus, &m, SVC, path, iface, method) < 0)
                        _exit(81);
                if (build && build(m, arg) < 0)
                        _exit(82);
                call_shared->r = sd_bus_call(bus, m, 60 * USEC, &e, &reply);
                if (call_shared->r < 0) {
                        snprintf(call_shared->error, sizeof(call_shared->error), "%s", e.name ?: "");
                        snprintf(call_shared->message, sizeof(call_shared->message), "%s",
                                 e.message ?: strerror(-call_shared->r));
                } else if (strcmp(sd_bus_message_get_signature(reply, true) ?: "", "o") == 0) {
                        const char *o;
                        if (sd_bus_message_read(reply, "o", &o) > 0)
                                snprintf(call_shared->path, sizeof(call_shared->path), "%s", o);
                }
                _exit(0);
        }
        ck_assert_int_eq(test_wait(pid), 0);
        *ret = *call_shared;
        return ret->r;
}

typedef struct Args {
        const char *types;
        va_list *ap;
} Args;

static int build_args(sd_bus_message *m, const void *arg) {
        const Args *a = arg;

        return a->types ? sd_bus_message_appendv(m, a->types, *a->ap) : 0;
}

static int call_as(const TestCreds *c, Call *ret, const char *path, const char *iface, const char *method,
                   const char *types, ...) {
        va_list ap;
        int r;

        va_start(ap, types);
        r = call_build(c, ret, path, iface, method, build_args, &(Args){ types, &ap });
        va_end(ap);
        return r;
}

static void assert_ok(const Call *c, const char *what) {
        ck_assert_msg(c->r >= 0, "%s: %s: %s", what, c->error, c->message);
}

static void assert_error(const Call *c, const char *name, const char *what) {
        ck_assert_msg(c->r < 0 && strcmp(c->error, name) == 0, "%s: got %s (%s), want %s", what,
                      c->r >= 0 ? "success" : c->error, c->message, name);
}

/* ---- the audit log ---- */

static const char *audit_dir(void) {
        static char dir[128];

        snprintf(dir, sizeof(dir), "%s/audit", TW.state_dir);
        return dir;
}

static uint64_t audit_last_seq(void) {
        _cleanup_(audit_reader_freep) AuditReader *r = NULL;
        const AuditFilter f = { .checkpoints = 1 };
        const AuditEntry *e;
        uint64_t last = 0;
        int k;

        ck_assert_int_eq(audit_reader_new(audit_dir(), &f, &r), 0);
        while ((k = audit_reader_next(r, &e)) > 0)
                last = e->seq;
        ck_assert_msg(k == 0, "reading the audit log: %s", audit_reader_error(r) ?: strerror(-k));
        return last;
}

/* Records after seq `after` with this event (NULL: any), outcome, uid and object (NULL: any). */
static size_t audit_count(uint64_t after, const char *event, AuditOutcome outcome, uid_t uid, const char *object) {
        _cleanup_(audit_reader_freep) AuditReader *r = NULL;
        const AuditFilter f = { .event = event };
        const AuditEntry *e;
        size_t n = 0;
        int k;

        ck_assert_int_eq(audit_reader_new(audit_dir(), &f, &r), 0);
        while ((k = audit_reader_next(r, &e)) > 0)
                if (e->seq > after && e->outcome == outcome && e->uid == uid &&
                    (!object || strcmp(e->object, object) == 0))
                        n++;
        ck_assert_msg(k == 0, "reading the audit log: %s", audit_reader_error(r) ?: strerror(-k));
        return n;
}

/* The refusal's name, and exactly one record of it: the event, "refused", the caller's uid. */
static void assert_refused(const Call *c, const char *error, uint64_t after, const char *event, uid_t uid,
                           const char *object, const char *what) {
        size_t n;

        assert_error(c, error, what);
        n = audit_count(after, event, AUDIT_OUTCOME_REFUSED, uid, object);
        ck_assert_msg(n == 1, "%s: %zu audit records event=%s outcome=refused uid=%u object=%s after seq %llu", what, n,
                      event, (unsigned) uid, object ?: "*", (unsigned long long) after);
}

/* No refusal was recorded after seq `after`: for what dkmd's code never saw. (dkmd's own timers
 * may record something meanwhile; a refusal is always a caller's.) */
static void assert_not_audited(uint64_t after, const char *what) {
        _cleanup_(audit_reader_freep) AuditReader *r = NULL;
        const AuditEntry *e;
        int k;

        ck_assert_int_eq(audit_reader_new(audit_dir(), NULL, &r), 0);
        while ((k = audit_reader_next(r, &e)) > 0)
                ck_assert_msg(e->seq <= after || e->outcome != AUDIT_OUTCOME_REFUSED,
                              "%s: dkmd recorded %s %s by uid %u", what, e->event, e->object, (unsigned) e->uid);
        ck_assert_msg(k == 0, "reading the audit log: %s", audit_reader_error(r) ?: strerror(-k));
}

static void assert_audit_verifies(void) {
        AuditReport rep = {};
        int r = audit_verify(audit_dir(), NULL, &rep);

        ck_assert_msg(r == 0, "audit_verify: %d: %s", r, rep.error);
}

static off_t audit_bytes(void) {
        char path[200];
        off_t total = 0;

        for (unsigned i = 1; i < 1000; i++) {
                struct stat st;

                snprintf(path, sizeof(path), "%s/audit-%06u.log", audit_dir(), i);
                if (stat(path, &st) < 0)
                        break;
                total += st.st_size;
        }
        return total;
}

/* Request files in <state>/requests (root's). */
static size_t request_files(void) {
        char path[160];
        struct dirent *de;
        size_t n = 0;
        DIR *d;

        snprintf(path, sizeof(path), "%s/requests", TW.state_dir);
        d = opendir(path);
        ck_assert_ptr_nonnull(d);
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        n++;
        closedir(d);
        return n;
}

/* ---- the bus, as root ---- */

static char *must_create(sd_bus *bus, const char *name, gid_t gid, bool levels, uint32_t hot_window) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        const char *path;

        ck_assert_int_ge(sd_bus_message_new_method_call(bus, &m, SVC, MGR_PATH, MGR_IFACE, "CreateGroup"), 0);
        ck_assert_int_ge(sd_bus_message_append(m, "su", name, (uint32_t) gid), 0);
        ck_assert_int_ge(sd_bus_message_open_container(m, 'a', "{sv}"), 0);
        ck_assert_int_ge(sd_bus_message_append(m, "{sv}", "HotWindow", "u", hot_window), 0);
        if (levels) {
                ck_assert_int_ge(sd_bus_message_append(m, "{sv}", "ApprovalGroups", "as", 2, TW.appr1, TW.appr2), 0);
                ck_assert_int_ge(sd_bus_message_append(m, "{sv}", "MaxGrantUSec", "t", (uint64_t) MAX_GRANT_USEC), 0);
        }
        ck_assert_int_ge(sd_bus_message_close_container(m), 0);
        ck_assert_msg(sd_bus_call(bus, m, 0, &e, &reply) >= 0, "CreateGroup %s: %s: %s", name, e.name ?: "",
                      e.message ?: "");
        ck_assert_int_ge(sd_bus_message_read(reply, "o", &path), 0);
        return strdup(path);
}

static void must_rollover(sd_bus *bus, const char *path) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;

        ck_assert_msg(sd_bus_call_method(bus, SVC, path, GROUP_IFACE, "Rollover", &e, NULL, NULL) >= 0, "Rollover: %s",
                      e.message ?: "");
}

static uint32_t group_u(sd_bus *bus, const char *path, const char *property) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        uint32_t v = 0;

        ck_assert_msg(sd_bus_get_property_trivial(bus, SVC, path, GROUP_IFACE, property, &e, 'u', &v) >= 0, "%s: %s",
                      property, e.message ?: "");
        return v;
}

static size_t count_requests(sd_bus *bus) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        size_t n = 0;

        ck_assert_int_ge(sd_bus_call_method(bus, SVC, MGR_PATH, MGR_IFACE, "ListRequests", NULL, &reply, NULL), 0);
        ck_assert_int_ge(sd_bus_message_enter_container(reply, 'a', "(otssusst)"), 0);
        while (sd_bus_message_skip(reply, "(otssusst)") > 0)
                n++;
        return n;
}

/* Listed requests that are closed (not pending or granted). */
static size_t count_closed_requests(sd_bus *bus) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *state;
        size_t n = 0;

        ck_assert_int_ge(sd_bus_call_method(bus, SVC, MGR_PATH, MGR_IFACE, "ListRequests", NULL, &reply, NULL), 0);
        ck_assert_int_ge(sd_bus_message_enter_container(reply, 'a', "(otssusst)"), 0);
        while (sd_bus_message_read(reply, "(otssusst)", NULL, NULL, NULL, NULL, NULL, &state, NULL, NULL) > 0)
                if (strcmp(state, "pending") != 0 && strcmp(state, "granted") != 0)
                        n++;
        return n;
}

static const char *req_state(sd_bus *bus, const char *request) {
        static char state[32];
        _cleanup_free_ char *s = NULL;

        ck_assert_int_ge(sd_bus_get_property_string(bus, SVC, request, REQUEST_IFACE, "State", NULL, &s), 0);
        snprintf(state, sizeof(state), "%s", s);
        return state;
}

/* ---- the dkm CLI ---- */

static const char *cli(void) {
        return test_env_path("DKM_CLI");
}

/* "dkm decrypt -i path" as c: status 0 and the plaintext want, or that status and those words in
 * its one-line error. */
static void decrypt_as(const TestCreds *c, const char *path, int status, const char *want_or_words) {
        TestRun r;

        test_run(&r, NULL, 0, c,
                 (char *const[]){ (char *) cli(), (char *) "decrypt", (char *) "-i", (char *) path, NULL });
        ck_assert_msg(r.status == status, "decrypt %s as uid %u: status %d, want %d: %s", path, (unsigned) c->uid,
                      r.status, status, r.err);
        if (status == 0)
                ck_assert_msg(r.out_size == strlen(want_or_words) && memcmp(r.out, want_or_words, r.out_size) == 0,
                              "decrypt as uid %u gave other plaintext", (unsigned) c->uid);
        else {
                ck_assert_uint_eq(r.out_size, 0);
                ck_assert_msg(strstr(r.err, want_or_words), "'%s' lacks '%s'", r.err, want_or_words);
        }
        test_run_free(&r);
}

/* The service still serves: anyone's GetGroup, and a member decrypts. */
static void assert_still_serving(void) {
        TestCreds member = test_creds_member(), other = test_creds_other();
        Call c;

        ck_assert_msg(dkmd_alive(), "dkmd is gone");
        call_as(&other, &c, MGR_PATH, MGR_IFACE, "GetGroup", "s", test_key_group("hk"));
        assert_ok(&c, "GetGroup after the attack");
        decrypt_as(&member, H.sample, 0, SAMPLE_TEXT);
}

/* ---- the fixture ---- */

static void append_forged_routes(void) {
        FILE *f = fopen(TW.request_key_conf, "ae");

        ck_assert_ptr_nonnull(f);
        /* Besides the "dkm:<id>:*" line per group that test_request_key_install() wrote: lines that
         * send forged descriptions of this run only (they all name this run's pid) to the handler,
         * so that it, not /sbin/request-key's "no match", is what refuses them. The '*' goes at an
         * end: keyutils 1.6.3 matches no pattern with one in the middle, whatever its manual says. */
        static const char *const patterns[][2] = { { "dkm:dkmt-", "-*" },
                                                   { "*:dkmt-", "-forged" },
                                                   { "dkmt-", "-forged*" } };
        for (size_t i = 0; i < ELEMENTSOF(patterns); i++) {
                char pattern[96];

                snprintf(pattern, sizeof(pattern), "%s%ld%s", patterns[i][0], (long) TW.main_pid, patterns[i][1]);
                fprintf(f, "create user %s * %s request-key --state-dir=%s --runtime-dir=%s --timeout=60 %%k %%d %%c\n",
                        pattern, TW.helper, TW.state_dir, TW.runtime_dir);
        }
        ck_assert_int_eq(fclose(f), 0);
}

static void hostile_up(void) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_free_ char *hk = NULL, *hk2 = NULL, *dos = NULL;

        test_bus_start();
        test_dkmd_start(NULL);
        bus = test_bus_open();
        hk = must_create(bus, test_key_group("hk"), TW.gid, true, 2);
        for (int i = 0; i < 3; i++)
                must_rollover(bus, hk);
        hk2 = must_create(bus, test_key_group("hk2"), TW.person_gid, false, 0);
        for (int i = 0; i < 2; i++)
                must_rollover(bus, hk2);
        dos = must_create(bus, test_key_group("hkdos"), TW.gid, false, 2);
        snprintf(H.hk_path, sizeof(H.hk_path), "%s", hk);
        snprintf(H.hk2_path, sizeof(H.hk2_path), "%s", hk2);
        snprintf(H.hkdos_path, sizeof(H.hkdos_path), "%s", dos);
        ck_assert(helper_status_text(test_key_group("hk"), "id ", H.hk_id, sizeof(H.hk_id)));
        ck_assert(helper_status_text(test_key_group("hk2"), "id ", H.hk2_id, sizeof(H.hk2_id)));
        ck_assert_uint_eq(strlen(H.hk_id), KEYRING_GROUP_ID_HEX);

        /* The upcall as a real host has it (dkm.conf), for this run's groups only. */
        ck_assert_msg(test_request_key_install(), "the helper has no request-key verb");
        append_forged_routes();

        snprintf(H.sample, sizeof(H.sample), "%s/hk-sample", TW.work_dir);
        snprintf(H.dos_old, sizeof(H.dos_old), "%s/hkdos-old", TW.work_dir);
        snprintf(H.dos_new, sizeof(H.dos_new), "%s/hkdos-new", TW.work_dir);
        test_member_encrypt(test_key_group("hk"), H.sample, SAMPLE_TEXT);
        test_member_encrypt(test_key_group("hkdos"), H.dos_old, DOS_OLD_TEXT);
        must_rollover(bus, dos);
        test_member_encrypt(test_key_group("hkdos"), H.dos_new, DOS_NEW_TEXT);
        ck_assert_uint_eq(group_u(bus, hk, "ActiveGeneration"), 4);
        ck_assert_uint_eq(group_u(bus, dos, "ActiveGeneration"), 2);
}

/* Extra throwaway accounts (the global request limit needs 32 uids): "dkmt-<pid>-hNN", so that a
 * run killed outright is swept by the next one (test-accounts.c sweeps dead runs' names). */
static char extra_name[EXTRA_ACCOUNTS][48];

static void extra_accounts_remove(void) {
        for (size_t i = 0; i < EXTRA_ACCOUNTS; i++) {
                TestRun r;

                snprintf(extra_name[i], sizeof(extra_name[i]), "dkmt-%ld-h%02zu", (long) TW.main_pid, i);
                if (!getpwnam(extra_name[i]))
                        continue;
                test_run(&r, NULL, 0, NULL, (char *const[]){ (char *) "/usr/sbin/userdel", extra_name[i], NULL });
                if (r.status != 0)
                        fprintf(stderr, "userdel %s: %s", extra_name[i], r.err);
                test_run_free(&r);
        }
}

static void hostile_down(void) {
        test_bus_stop();
        extra_accounts_remove();
}

/* ======================================================================================== */
/* The kernel, as a non-member.                                                              */

typedef struct Probe {
        long ret;
        int err;
        const char *what;
} Probe;

#define SCAN_MAX 256

typedef struct Shared {
        Probe p[64];
        int n;
        key_serial_t scan[SCAN_MAX]; /* serials root found in /proc/keys */
        size_t n_scan;
        long scan_ok;   /* operations on them that did not fail with EACCES */
        long scan_seen; /* of them, how many the child's own /proc/keys shows */
        char scan_note[256];
        key_serial_t member_user; /* the member's user keyring */
        uint8_t data[64];
        _Alignas(max_align_t) char text[8192]; /* holds a Forged: aligned for its pointers */
} Shared;

/* Runs expr in the child, recording its result and errno as the next probe, named by its text. */
#define PROBE(sh, expr)                                                                                                \
        do {                                                                                                           \
                long _r;                                                                                               \
                errno = 0;                                                                                             \
                _r = (long) (expr);                                                                                    \
                (sh)->p[(sh)->n++] = (Probe){ .ret = _r, .err = _r < 0 ? errno : 0, .what = #expr };                   \
        } while (0)

typedef struct Target {
        key_serial_t ring, pointer, key, archived, registry, root_user, member_user, other_ring, other_key;
        char ring_desc[KEYRING_DESC_MAX], pointer_desc[KEYRING_DESC_MAX], gen_desc[KEYRING_DESC_MAX],
                next_desc[KEYRING_DESC_MAX];
} Target;

static Target T; /* filled by target_init() before the probes fork */

static void probe_member_user(void *userdata) {
        Shared *sh = userdata;

        sh->member_user = keyctl_get_keyring_ID(KEY_SPEC_USER_KEYRING, 0);
}

static key_serial_t registry_serial(void) {
        key_serial_t list[512];
        long n = keyctl_read(KEY_SPEC_USER_KEYRING, (char *) list, sizeof(list));

        for (long i = 0; i < n / (long) sizeof(key_serial_t) && i < 512; i++) {
                char desc[256];

                if (keyctl_describe(list[i], desc, sizeof(desc)) > 0 &&
                    strcmp(desc, "keyring;0;0;01370000;" KEYRING_REGISTRY_DESC) == 0)
                        return list[i];
        }
        return 0;
}

static void target_init(Shared *sh) {
        TestCreds member = test_creds_member();
        const char *hk = test_key_group("hk");

        memset(&T, 0, sizeof(T));
        T.ring = status_serial("hk", "keyring ");
        T.pointer = status_serial("hk", "pointer ");
        T.key = status_serial("hk", "generation 4 ");
        T.archived = status_serial("hk", "generation 3 ");
        T.other_ring = status_serial("hk2", "keyring ");
        T.other_key = status_serial("hk2", "generation 3 ");
        T.registry = registry_serial();
        T.root_user = keyctl_get_keyring_ID(KEY_SPEC_USER_KEYRING, 0);
        ck_assert_int_gt(T.registry, 0);
        ck_assert_int_gt(T.root_user, 0);
        test_wait_ok(test_fork_as(&member, probe_member_user, sh));
        T.member_user = sh->member_user;
        ck_assert_int_gt(T.member_user, 0);
        ck_assert_int_eq(keyring_group_desc(hk, T.ring_desc), 0);
        ck_assert_int_eq(keyring_pointer_desc(hk, T.pointer_desc), 0);
        snprintf(T.gen_desc, sizeof(T.gen_desc), "dkm:%s:4", H.hk_id);
        snprintf(T.next_desc, sizeof(T.next_desc), "dkm:%s:5", H.hk_id);
}

/* /proc/keys as root: every key of this run's groups and the registry (uid 0, a dkm description,
 * gid one of the key groups' or 0). */
static size_t proc_keys_ours(key_serial_t *ret, size_t max) {
        char line[1024];
        size_t n = 0;
        FILE *f = fopen("/proc/keys", "re");

        ck_assert_ptr_nonnull(f);
        while (fgets(line, sizeof(line), f) && n < max) {
                unsigned serial, perm, uid, gid;
                char type[32], desc[512];

                if (sscanf(line, "%x %*s %*s %*s %x %u %u %31s %511[^\n]", &serial, &perm, &uid, &gid, type, desc) != 6)
                        continue;
                if (uid != 0 || strncmp(desc, KEYRING_DESC_PREFIX, strlen(KEYRING_DESC_PREFIX)) != 0)
                        continue;
                if (gid == TW.gid || gid == TW.person_gid || strncmp(desc, KEYRING_REGISTRY_DESC ":", 14) == 0)
                        ret[n++] = (key_serial_t) serial;
        }
        fclose(f);
        return n;
}

static bool own_proc_keys_show(key_serial_t serial) {
        char line[1024], want[16];
        bool found = false;
        FILE *f = fopen("/proc/keys", "re");

        if (!f)
                return false;
        snprintf(want, sizeof(want), "%08x ", (unsigned) serial);
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, want, strlen(want)) == 0)
                        found = true;
        fclose(f);
        return found;
}

static void probe_nonmember(void *userdata) {
        Shared *sh = userdata;
        uint8_t forged[KEYRING_KEY_BYTES] = { 0x41 }, fake_ptr[KEYRING_POINTER_BYTES] = { 1 };
        char buf[256];
        key_serial_t fake;

        sh->n = 0;
        /* Read and list by serial (root knows them; below, every serial of ours in /proc/keys). */
        PROBE(sh, keyctl_read(T.key, buf, sizeof(buf)));
        PROBE(sh, keyctl_read(T.archived, buf, sizeof(buf)));
        PROBE(sh, keyctl_read(T.pointer, buf, sizeof(buf)));
        PROBE(sh, keyctl_read(T.ring, buf, sizeof(buf)));
        PROBE(sh, keyctl_read(T.registry, buf, sizeof(buf)));
        PROBE(sh, keyctl_describe(T.key, buf, sizeof(buf)));
        PROBE(sh, keyctl_get_security(T.key, buf, sizeof(buf)));
        PROBE(sh, keyctl_read(T.other_key, buf, sizeof(buf)));
        /* Search: from its own keyrings, and by walking the registry and root's user keyring. */
        PROBE(sh, keyctl_search(KEY_SPEC_USER_KEYRING, "keyring", T.ring_desc, 0));
        PROBE(sh, keyctl_search(KEY_SPEC_USER_SESSION_KEYRING, "user", T.gen_desc, 0));
        PROBE(sh, keyctl_search(KEY_SPEC_SESSION_KEYRING, "user", T.pointer_desc, 0));
        PROBE(sh, request_key("user", T.gen_desc, NULL, 0)); /* no callout: a search */
        PROBE(sh, keyctl_search(T.root_user, "keyring", KEYRING_REGISTRY_DESC, 0));
        PROBE(sh, keyctl_search(T.registry, "keyring", T.ring_desc, 0));
        PROBE(sh, keyctl_search(T.ring, "user", T.gen_desc, 0));
        PROBE(sh, keyctl_search(T.member_user, "keyring", T.ring_desc, 0));
        /* Link into its own keyrings. */
        PROBE(sh, keyctl_link(T.key, KEY_SPEC_SESSION_KEYRING));
        PROBE(sh, keyctl_link(T.ring, KEY_SPEC_USER_KEYRING));
        PROBE(sh, keyctl_link(T.registry, KEY_SPEC_SESSION_KEYRING));
        /* Attributes. */
        PROBE(sh, keyctl_setperm(T.key, 0x3f3f3f3f));
        PROBE(sh, keyctl_setperm(T.pointer, 0x3f3f3f3f));
        PROBE(sh, keyctl_setperm(T.ring, 0x3f3f3f3f));
        PROBE(sh, keyctl_chown(T.key, TW.other_uid, (gid_t) -1));
        PROBE(sh, keyctl_chown(T.key, (uid_t) -1, TW.other_gid));
        PROBE(sh, keyctl_chown(T.ring, (uid_t) -1, TW.other_gid));
        PROBE(sh, keyctl_set_timeout(T.key, 1));
        PROBE(sh, keyctl_set_timeout(T.ring, 1));
        /* Destruction. */
        PROBE(sh, keyctl_invalidate(T.key));
        PROBE(sh, keyctl_invalidate(T.pointer));
        PROBE(sh, keyctl_invalidate(T.ring));
        PROBE(sh, keyctl_revoke(T.key));
        PROBE(sh, keyctl_revoke(T.ring));
        PROBE(sh, keyctl_clear(T.ring));
        /* Rewriting and replanting. */
        PROBE(sh, keyctl_update(T.pointer, fake_ptr, sizeof(fake_ptr)));
        PROBE(sh, keyctl_update(T.key, forged, sizeof(forged)));
        PROBE(sh, keyctl_unlink(T.key, T.ring));
        PROBE(sh, keyctl_unlink(T.ring, T.registry));
        PROBE(sh, keyctl_unlink(T.ring, T.member_user));
        PROBE(sh, keyctl_move(T.key, T.ring, KEY_SPEC_SESSION_KEYRING, 0));
        PROBE(sh, add_key("user", T.next_desc, forged, sizeof(forged), T.ring));
        PROBE(sh, add_key("user", T.pointer_desc, fake_ptr, sizeof(fake_ptr), T.ring));
        PROBE(sh, add_key("keyring", T.ring_desc, NULL, 0, T.registry));
        PROBE(sh, keyctl_restrict_keyring(T.ring, NULL, NULL));
        /* A look-alike group keyring of its own, planted in a member's user keyring. */
        fake = add_key("keyring", T.ring_desc, NULL, 0, KEY_SPEC_SESSION_KEYRING);
        PROBE(sh, fake);
        PROBE(sh, keyctl_setperm(fake, 0x3f3f3f3f));
        PROBE(sh, keyctl_link(fake, T.member_user));
        /* Authority over a key it did not ask for. */
        PROBE(sh, keyctl_assume_authority(T.key));
        PROBE(sh, keyctl_instantiate(T.key, forged, sizeof(forged), 0));
        PROBE(sh, keyctl_reject(T.key, 1, ENOKEY, 0));

        /* Every key of ours root sees in /proc/keys, by serial: nothing works, and this uid's own
         * /proc/keys does not even list them (no view). */
#define SCAN(s, expr)                                                                                                  \
        do {                                                                                                           \
                errno = 0;                                                                                             \
                if ((expr) >= 0 || errno != EACCES) {                                                                  \
                        sh->scan_ok++;                                                                                 \
                        snprintf(sh->scan_note, sizeof(sh->scan_note), "%s on %d: %s", #expr, (int) (s),               \
                                 errno ? strerror(errno) : "done");                                                    \
                }                                                                                                      \
        } while (0)
        for (size_t i = 0; i < sh->n_scan; i++) {
                key_serial_t s = sh->scan[i];

                SCAN(s, keyctl_read(s, buf, sizeof(buf)));
                SCAN(s, keyctl_describe(s, buf, sizeof(buf)));
                SCAN(s, keyctl_link(s, KEY_SPEC_SESSION_KEYRING));
                SCAN(s, keyctl_setperm(s, 0x3f3f3f3f));
                SCAN(s, keyctl_set_timeout(s, 1));
                SCAN(s, keyctl_invalidate(s));
                SCAN(s, keyctl_revoke(s));
                if (own_proc_keys_show(s))
                        sh->scan_seen++;
        }
#undef SCAN
}

static void expect(const Shared *sh, int i, int err) {
        const Probe *p = &sh->p[i];

        if (err == 0)
                ck_assert_msg(p->ret >= 0, "%s: %s, want success", p->what, strerror(p->err));
        else
                ck_assert_msg(p->ret < 0 && p->err == err, "%s: ret %ld (%s), want %s", p->what, p->ret,
                              p->ret < 0 ? strerror(p->err) : "success", strerror(err));
}

START_TEST(test_kernel_nonmember) {
        Shared *sh = test_shared_new(sizeof(Shared));
        TestCreds other = test_creds_other();
        int i = 0;

        target_init(sh);
        sh->n_scan = proc_keys_ours(sh->scan, SCAN_MAX);
        /* hk: ring, pointer, 4, 3, 2; hk2: ring, pointer, 3; hkdos: ring, pointer, 2, 1; registry. */
        ck_assert_uint_ge(sh->n_scan, 13);
        test_wait_ok(test_fork_as(&other, probe_nonmember, sh));

        for (; i < 6; i++)
                expect(sh, i, EACCES); /* reads, lists, describe */
        expect(sh, i++, ENOKEY);       /* the security label: EACCES, then no authority key: ENOKEY */
        expect(sh, i++, EACCES);       /* another group's key */
        expect(sh, i++, ENOKEY);       /* its user keyring */
        expect(sh, i++, ENOKEY);       /* its user-session keyring */
        expect(sh, i++, ENOKEY);       /* its session keyring */
        expect(sh, i++, ENOKEY);       /* request_key without callout */
        for (; i < 16; i++)
                expect(sh, i, EACCES); /* root's user keyring, registry, group keyring, member's */
        for (; i < 43; i++)
                expect(sh, i, EACCES); /* link, setperm, chown, timeout, invalidate, revoke, clear,
                                        * update, unlink, move, add_key into ours, restrict */
        expect(sh, i++, 0);            /* its own look-alike keyring: fine, it is its own */
        expect(sh, i++, 0);
        expect(sh, i++, EACCES); /* but not into the member's user keyring */
        expect(sh, i++, ENOKEY); /* assume authority: there is no authorisation key for it */
        expect(sh, i++, EPERM);  /* instantiate: no authority */
        expect(sh, i++, EPERM);  /* reject */
        ck_assert_int_eq(i, sh->n);

        ck_assert_msg(sh->scan_ok == 0, "%ld operations on our keys worked for a non-member: %s", sh->scan_ok,
                      sh->scan_note);
        ck_assert_msg(sh->scan_seen == 0, "a non-member's /proc/keys shows %ld of our keys", sh->scan_seen);
        /* Nothing changed: the same serials, and the member still decrypts. */
        ck_assert_int_eq(status_serial("hk", "keyring "), T.ring);
        ck_assert_int_eq(status_serial("hk", "generation 4 "), T.key);
        ck_assert_int_eq(test_helper_status_value(test_key_group("hk"), "other-keys "), -1);
        assert_still_serving();
}
END_TEST

/* ======================================================================================== */
/* The request-key upcall with forged descriptions, as a non-member.                         */

typedef struct Forged {
        char desc[4200];
        const char *callout;
        const char *type;
        int want; /* 0: a marker */
} Forged;

static void probe_request(void *userdata) {
        Shared *sh = userdata;
        const Forged *f = (const Forged *) sh->text;
        long marker;

        sh->n = 0;
        PROBE(sh, marker = request_key(f->type, f->desc, f->callout, 0));
        PROBE(sh, keyctl_read(marker, (char *) sh->data, sizeof(sh->data)));
        PROBE(sh, keyctl_search(KEY_SPEC_USER_KEYRING, "user", f->desc, 0));
}

/* Every dkm key this uid can see, read: at most the marker. */
static void probe_readable(void *userdata) {
        Shared *sh = userdata;
        char line[1024];
        FILE *f = fopen("/proc/keys", "re");

        sh->scan_ok = sh->scan_seen = 0;
        if (!f)
                _exit(70);
        while (fgets(line, sizeof(line), f)) {
                unsigned serial;
                char type[32], desc[512], buf[256];
                long n;

                if (sscanf(line, "%x %*s %*s %*s %*x %*u %*u %31s %511[^\n]", &serial, type, desc) != 3 ||
                    strcmp(type, "user") != 0 || !strstr(desc, "dkm"))
                        continue;
                sh->scan_seen++;
                n = keyctl_read((key_serial_t) serial, buf, sizeof(buf));
                if (n >= 0 && !(n == (long) strlen(KEYRING_REQUEST_MARKER) &&
                                memcmp(buf, KEYRING_REQUEST_MARKER, (size_t) n) == 0)) {
                        sh->scan_ok++;
                        snprintf(sh->scan_note, sizeof(sh->scan_note), "%.200s", desc);
                }
        }
        fclose(f);
}

static size_t forged_list(Forged *f, size_t max) {
        size_t n = 0;
        long pid = (long) TW.main_pid;
        char *longest;

#define ADD(w, co, ...)                                                                                                \
        do {                                                                                                           \
                ck_assert_uint_lt(n, max);                                                                             \
                snprintf(f[n].desc, sizeof(f[n].desc), __VA_ARGS__);                                                   \
                f[n].callout = (co);                                                                                   \
                f[n].type = "user";                                                                                    \
                f[n].want = (w);                                                                                       \
                n++;                                                                                                   \
        } while (0)
        /* Generations that exist: a marker, nothing else. Another group's, and our own on-demand one. */
        ADD(0, "dkm", "dkm:%s:1", H.hk2_id);
        ADD(0, "dkm", "dkm:%s:1", H.hk_id);
        ADD(0, "dkm", "dkm:%s:4", H.hk_id); /* the active one: loaded already */
        /* Generation numbers: 0, the largest u32 (no such generation), too large, signed, not numbers. */
        ADD(EINVAL, "dkm", "dkm:%s:0", H.hk_id);
        ADD(ENOKEY, "dkm", "dkm:%s:4294967295", H.hk_id);
        ADD(EINVAL, "dkm", "dkm:%s:4294967296", H.hk_id);
        ADD(EINVAL, "dkm", "dkm:%s:99999999999999999999", H.hk_id);
        ADD(EINVAL, "dkm", "dkm:%s:-1", H.hk_id);
        ADD(EINVAL, "dkm", "dkm:%s:+1", H.hk_id);
        ADD(EINVAL, "dkm", "dkm:%s:01", H.hk_id);
        ADD(EINVAL, "dkm", "dkm:%s:x", H.hk_id);
        ADD(EINVAL, "dkm", "dkm:%s:1x", H.hk_id);
        ADD(EINVAL, "dkm", "dkm:%s: 1", H.hk_id);
        ADD(EINVAL, "dkm", "dkm:%s:", H.hk_id);
        /* Path-like, option-like, separators. */
        ADD(EINVAL, "dkm", "dkm:%s:../../../etc/shadow", H.hk_id);
        ADD(EINVAL, "dkm", "dkm:%s:1/../2", H.hk_id);
        ADD(EINVAL, "dkm", "dkm:%s:1 --state-dir=/tmp", H.hk_id);
        ADD(EINVAL, "dkm", "dkm:%s:--runtime-dir=/tmp", H.hk_id);
        ADD(EINVAL, "dkm", "dkm:%s:1:2", H.hk_id);
        ADD(EINVAL, "dkm", "dkm:%s:1\n", H.hk_id);
        ADD(EINVAL, "dkm", "dkm:/etc/shadow:dkmt-%ld-forged", pid);
        ADD(EINVAL, "dkm", "dkm:../../%s:1:dkmt-%ld-forged", H.hk_id, pid);
        ADD(EINVAL, "dkm", "dkm:.registry:dkmt-%ld-forged", pid);
        ADD(EINVAL, "dkm", "dkmt-%ld-forged:%s:1", pid, H.hk_id);
        /* The names of the group keyring and the pointer, as user keys. */
        ADD(EINVAL, "dkm", "%s", T.ring_desc);
        ADD(EINVAL, "dkm", "%s", T.pointer_desc);
        /* Callout information: other, empty, option-like; none at all is a plain search. */
        ADD(EINVAL, "not-dkm", "dkm:%s:1", H.hk_id);
        ADD(EINVAL, "", "dkm:%s:1", H.hk_id);
        ADD(EINVAL, "dkm --state-dir=/tmp", "dkm:%s:1", H.hk_id);
        ADD(ENOKEY, NULL, "dkm:%s:1", H.hk_id);
        ADD(ENOKEY, NULL, "dkm:%s:2", H.hk_id);
#undef ADD
        /* Overlong: 4095 bytes is the kernel's limit for a description. The handler cannot read
         * the kernel's copy back into its buffer and exits without an answer, so the kernel's own
         * negative key answers (ENOKEY). */
        longest = repeat('1', 4000);
        snprintf(f[n].desc, sizeof(f[n].desc), "dkm:%s:%s", H.hk_id, longest);
        f[n].callout = "dkm";
        f[n].type = "user";
        f[n++].want = ENOKEY;
        free(longest);
        /* Other key types with our names: a keyring is never constructed on request; no dkm line routes
         * a logon key, and the host's own config negates it. */
        ck_assert_uint_lt(n + 2, max);
        snprintf(f[n].desc, sizeof(f[n].desc), "%s", T.ring_desc);
        f[n].callout = "dkm";
        f[n].type = "keyring";
        f[n++].want = EPERM; /* the kernel constructs no keyrings on request */
        snprintf(f[n].desc, sizeof(f[n].desc), "dkm:%s:2", H.hk_id);
        f[n].callout = "dkm";
        f[n].type = "logon";
        f[n++].want = ENOKEY;
        return n;
}

/* What a group keyring holds, as root: the serial and description of every entry, in its order. */
static void ring_snapshot(const char *tag, char *buf, size_t size) {
        key_serial_t list[128];
        key_serial_t ring = status_serial(tag, "keyring ");
        long n;
        size_t used = 0;

        /* The owner (root) may list it; describing needs view, which the owner has. */
        n = keyctl_read(ring, (char *) list, sizeof(list));
        ck_assert_int_ge(n, 0);
        buf[0] = 0;
        for (long i = 0; i < n / (long) sizeof(key_serial_t); i++) {
                char desc[256];

                if (keyctl_describe(list[i], desc, sizeof(desc)) < 0)
                        continue;
                used += (size_t) snprintf(buf + used, size - used, "%d %s\n", (int) list[i], desc);
                ck_assert_uint_lt(used, size);
        }
}

START_TEST(test_request_key_forged) {
        Shared *sh = test_shared_new(sizeof(Shared));
        TestCreds other = test_creds_other();
        static Forged forged[64];
        static char before_hk[8192], before_hk2[8192], after[8192];
        size_t n;

        target_init(sh);
        n = forged_list(forged, ELEMENTSOF(forged));
        ck_assert_uint_le(sizeof(Forged), sizeof(sh->text));
        for (size_t i = 0; i < n; i++) {
                Forged *f = &forged[i];

                if (i == 3) {
                        /* From here on, nothing may be loaded at all. */
                        ring_snapshot("hk", before_hk, sizeof(before_hk));
                        ring_snapshot("hk2", before_hk2, sizeof(before_hk2));
                }
                memcpy(sh->text, f, sizeof(*f));
                test_wait_ok(test_fork_as(&other, probe_request, sh));
                if (f->want == 0) {
                        expect(sh, 0, 0);
                        /* The answer is the marker, never key bytes. */
                        ck_assert_msg(
                                sh->p[1].ret == (long) strlen(KEYRING_REQUEST_MARKER) &&
                                        memcmp(sh->data, KEYRING_REQUEST_MARKER, strlen(KEYRING_REQUEST_MARKER)) == 0,
                                "%s: the requester read %ld bytes that are not the marker", f->desc, sh->p[1].ret);
                        expect(sh, 2, ENOKEY); /* its keyrings do not lead to the real key */
                } else
                        ck_assert_msg(sh->p[0].ret < 0 && sh->p[0].err == f->want,
                                      "request_key(%s, '%.80s'%s, %s): %s, want %s", f->type, f->desc,
                                      strlen(f->desc) > 80 ? "..." : "", f->callout ?: "NULL",
                                      sh->p[0].ret >= 0 ? "a key" : strerror(sh->p[0].err), strerror(f->want));
        }
        ring_snapshot("hk", after, sizeof(after));
        ck_assert_str_eq(after, before_hk);
        ring_snapshot("hk2", after, sizeof(after));
        ck_assert_str_eq(after, before_hk2);

        /* What the legitimate-looking requests loaded is the group's, for the group only. */
        {
                key_serial_t k1 = status_serial("hk2", "generation 1 ");
                char buf[64];
                long r;

                ck_assert_int_eq(test_helper_status_value(test_key_group("hk"), "other-keys "), -1);
                ck_assert_int_eq(test_helper_status_value(test_key_group("hk2"), "other-keys "), -1);
                sh->scan[0] = k1;
                sh->n_scan = 1;
                test_wait_ok(test_fork_as(&other, probe_nonmember, sh));
                ck_assert_msg(sh->scan_ok == 0, "%s", sh->scan_note);
                errno = 0;
                r = keyctl_read(k1, buf, sizeof(buf)); /* not even root without the gid */
                ck_assert_msg(r < 0 && errno == EACCES, "root read hk2's generation 1: %ld %s", r, strerror(errno));
        }
        /* Nothing this uid can see reads as anything but the marker. */
        test_wait_ok(test_fork_as(&other, probe_readable, sh));
        ck_assert_msg(sh->scan_ok == 0, "a non-member reads a dkm key: %s", sh->scan_note);
        assert_still_serving();
}
END_TEST

/* ======================================================================================== */
/* Files: /run/dkm and the store.                                                            */

typedef struct FileProbe {
        char path[256];
        int flags;
        int want; /* errno, 0 = opens */
} FileProbe;

static FileProbe *file_probes;
static size_t n_file_probes;
static char planted_link[300];

static void probe_files(void *userdata) {
        Shared *sh = userdata;

        sh->n = 0;
        for (size_t i = 0; i < n_file_probes; i++) {
                int fd;

                errno = 0;
                fd = open(file_probes[i].path, file_probes[i].flags | O_CLOEXEC | O_NOFOLLOW, 0666);
                sh->p[sh->n++] = (Probe){ .ret = fd, .err = fd < 0 ? errno : 0, .what = file_probes[i].path };
                if (fd >= 0)
                        close(fd);
        }
        /* Planting a symbolic link where the helper writes. */
        errno = 0;
        sh->p[sh->n] = (Probe){ .ret = symlink("/etc/shadow", planted_link), .what = "symlink in the runtime dir" };
        sh->p[sh->n].err = sh->p[sh->n].ret < 0 ? errno : 0;
        sh->n++;
}

static void add_file_probe(const char *dir, const char *name, int flags, int want) {
        FileProbe *p = &file_probes[n_file_probes++];

        snprintf(p->path, sizeof(p->path), "%s/%s", dir, name);
        p->flags = flags;
        p->want = want;
}

static void check_file_probes(const TestCreds *c) {
        Shared *sh = test_shared_new(sizeof(Shared));

        test_wait_ok(test_fork_as(c, probe_files, sh));
        for (size_t i = 0; i < n_file_probes; i++)
                ck_assert_msg(file_probes[i].want == 0 ? sh->p[i].ret >= 0
                                                       : sh->p[i].ret < 0 && sh->p[i].err == file_probes[i].want,
                              "uid %u: open %s (flags %#x): %s, want %s", (unsigned) c->uid, file_probes[i].path,
                              (unsigned) file_probes[i].flags, sh->p[i].ret >= 0 ? "opened" : strerror(sh->p[i].err),
                              file_probes[i].want ? strerror(file_probes[i].want) : "opened");
        ck_assert_msg(sh->p[n_file_probes].ret < 0 && sh->p[n_file_probes].err == EACCES, "symlink: %s",
                      strerror(sh->p[n_file_probes].err));
}

START_TEST(test_files_unreadable) {
        TestCreds other = test_creds_other(), member = test_creds_member();
        const char *hk = test_key_group("hk");
        char name[128], grants[300];
        struct stat st;

        file_probes = calloc(64, sizeof(FileProbe));
        ck_assert_ptr_nonnull(file_probes);
        snprintf(planted_link, sizeof(planted_link), "%s/%s.planted", TW.runtime_dir, hk);
        /* A grants file exists once a grant was made (test_bus_forged_calls checks it then too). */
        snprintf(grants, sizeof(grants), "%s/%s.grants", TW.runtime_dir, hk);

        /* A non-member. */
        n_file_probes = 0;
        snprintf(name, sizeof(name), "%s.keyring", hk);
        add_file_probe(TW.runtime_dir, name, O_RDONLY, EACCES);
        add_file_probe(TW.runtime_dir, name, O_WRONLY, EACCES);
        snprintf(name, sizeof(name), "%s.uids", hk);
        add_file_probe(TW.runtime_dir, name, O_RDONLY, EACCES);
        snprintf(name, sizeof(name), "%s.epoch", hk);
        add_file_probe(TW.runtime_dir, name, O_RDONLY, EACCES);
        add_file_probe(TW.runtime_dir, name, O_RDWR, EACCES);
        if (stat(grants, &st) == 0) {
                snprintf(name, sizeof(name), "%s.grants", hk);
                add_file_probe(TW.runtime_dir, name, O_RDONLY, EACCES);
        }
        add_file_probe(TW.runtime_dir, "planted.keyring", O_WRONLY | O_CREAT | O_EXCL, EACCES);
        add_file_probe(TW.state_dir, "", O_RDONLY | O_DIRECTORY, EACCES);
        add_file_probe(TW.state_dir, "format", O_RDONLY, EACCES);
        add_file_probe(TW.state_dir, "protectors/local.key", O_RDONLY, EACCES);
        snprintf(name, sizeof(name), "groups/%s.group", hk);
        add_file_probe(TW.state_dir, name, O_RDONLY, EACCES);
        add_file_probe(TW.state_dir, "requests", O_RDONLY | O_DIRECTORY, EACCES);
        add_file_probe(TW.state_dir, "audit/audit.key", O_RDONLY, EACCES);
        add_file_probe(TW.state_dir, "audit/audit-000001.log", O_RDONLY, EACCES);
        check_file_probes(&other);

        /* A member: the serial and the epoch (its gid), nothing else. */
        file_probes[0].want = 0;
        file_probes[3].want = 0;
        check_file_probes(&member);
        free(file_probes);
}
END_TEST

/* ======================================================================================== */
/* A compromised member (a service account in the key group).                                */

static void probe_member(void *userdata) {
        Shared *sh = userdata;
        uint8_t forged[KEYRING_KEY_BYTES] = { 0x42 }, fake_ptr[KEYRING_POINTER_BYTES] = { 1 };
        char buf[256];

        sh->n = 0;
        /* It reads its keys: that is what membership is. */
        PROBE(sh, keyctl_read(T.key, buf, sizeof(buf)));
        PROBE(sh, keyctl_search(KEY_SPEC_USER_KEYRING, "user", T.gen_desc, 0));
        /* It cannot keep them anywhere, change them or their permissions, or end them for others. */
        PROBE(sh, keyctl_link(T.key, KEY_SPEC_SESSION_KEYRING));
        PROBE(sh, keyctl_link(T.pointer, KEY_SPEC_SESSION_KEYRING));
        PROBE(sh, keyctl_link(T.ring, KEY_SPEC_SESSION_KEYRING));
        PROBE(sh, keyctl_setperm(T.key, 0x3f3f3f3f));
        PROBE(sh, keyctl_setperm(T.ring, 0x3f3f3f3f));
        PROBE(sh, keyctl_chown(T.key, TW.member_uid, (gid_t) -1));
        PROBE(sh, keyctl_chown(T.key, (uid_t) -1, TW.member_gid));
        PROBE(sh, keyctl_chown(T.ring, (uid_t) -1, TW.member_gid));
        PROBE(sh, keyctl_set_timeout(T.key, 1));
        PROBE(sh, keyctl_set_timeout(T.pointer, 1));
        PROBE(sh, keyctl_set_timeout(T.ring, 1));
        PROBE(sh, keyctl_update(T.pointer, fake_ptr, sizeof(fake_ptr)));
        PROBE(sh, keyctl_update(T.key, forged, sizeof(forged)));
        PROBE(sh, keyctl_revoke(T.key));
        PROBE(sh, keyctl_revoke(T.pointer));
        PROBE(sh, keyctl_revoke(T.ring));
        PROBE(sh, keyctl_unlink(T.key, T.ring));
        PROBE(sh, keyctl_move(T.key, T.ring, KEY_SPEC_SESSION_KEYRING, 0));
        PROBE(sh, keyctl_clear(T.ring));
        PROBE(sh, add_key("user", T.next_desc, forged, sizeof(forged), T.ring));
        PROBE(sh, keyctl_restrict_keyring(T.ring, NULL, NULL));
        PROBE(sh, keyctl_unlink(T.ring, T.registry));
        /* Another group's keys (hk2: person's gid). */
        PROBE(sh, keyctl_read(T.other_key, buf, sizeof(buf)));
        PROBE(sh, keyctl_read(T.other_ring, buf, sizeof(buf)));
        PROBE(sh, keyctl_search(T.other_ring, "user", T.gen_desc, 0));
}

static void probe_unlink_own(void *userdata) {
        Shared *sh = userdata;

        sh->n = 0;
        PROBE(sh, keyctl_unlink(T.ring, KEY_SPEC_USER_KEYRING));
}

static void root_load(const char *path);

START_TEST(test_kernel_member) {
        Shared *sh = test_shared_new(sizeof(Shared));
        TestCreds member = test_creds_member();
        int i = 0;

        target_init(sh);
        test_wait_ok(test_fork_as(&member, probe_member, sh));
        ck_assert_int_eq(sh->p[i++].ret, KEYRING_KEY_BYTES);
        ck_assert_int_eq(sh->p[i++].ret, T.key);
        for (; i < sh->n; i++)
                expect(sh, i, EACCES);
        ck_assert_int_eq(status_serial("hk", "generation 4 "), T.key);
        ck_assert_int_eq(status_serial("hk", "pointer "), T.pointer);
        ck_assert_int_eq(test_helper_status_value(test_key_group("hk"), "active "), 4);

        /* What it can do is drop the group keyring from its own user keyring (its own keyring): that
         * only changes where its own processes look first. libdkm then finds the keyring through
         * /run/dkm/<group>.keyring, and the next load links it again. */
        test_wait_ok(test_fork_as(&member, probe_unlink_own, sh));
        expect(sh, 0, 0);
        {
                char want[64], status[64];

                snprintf(want, sizeof(want), "member %u ", (unsigned) TW.member_uid);
                ck_assert(helper_status_text(test_key_group("hk"), want, status, sizeof(status)));
                ck_assert_str_eq(status, "unlinked");
                decrypt_as(&member, H.sample, 0, SAMPLE_TEXT);
                root_load(H.hk_path);
                ck_assert(helper_status_text(test_key_group("hk"), want, status, sizeof(status)));
                ck_assert_str_eq(status, "linked");
        }
        assert_still_serving();
}
END_TEST

/* KNOWN DENIAL OF SERVICE (docs: SECURITY.md "Denial of service", KEYRING.md): keyctl_invalidate
 * needs only search permission, and the group byte grants search, so any member can invalidate its
 * group's generation keys, the pointer and the group keyring itself, for every member on the host.
 * This test pins down exactly what it can do and what brings service back; it does not fix it. */
static key_serial_t dos_target;
static void probe_invalidate(void *userdata) {
        Shared *sh = userdata;

        sh->n = 0;
        PROBE(sh, keyctl_invalidate(dos_target));
}

static void member_invalidates(Shared *sh, key_serial_t serial) {
        TestCreds member = test_creds_member();

        dos_target = serial;
        test_wait_ok(test_fork_as(&member, probe_invalidate, sh));
        expect(sh, 0, 0);
}

static void root_load(const char *path) {
        Call c;

        call_as(NULL, &c, path, GROUP_IFACE, "Load", NULL);
        assert_ok(&c, "Load");
}

/* The timeout column of /proc/keys for serial ("perm" for none). */
static void proc_keys_timeout(key_serial_t serial, char ret[static 64]) {
        char line[1024], want[16];
        FILE *f = fopen("/proc/keys", "re");

        ck_assert_ptr_nonnull(f);
        snprintf(want, sizeof(want), "%08x ", (unsigned) serial);
        ret[0] = 0;
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, want, strlen(want)) == 0)
                        (void) sscanf(line, "%*x %*s %*s %63s", ret);
        fclose(f);
}

START_TEST(test_member_invalidate_dos) {
        Shared *sh = test_shared_new(sizeof(Shared));
        TestCreds member2 = test_creds_member2();
        const char *dos = test_key_group("hkdos");
        key_serial_t k1, k2, ptr, ring, again;
        char timeout[64];
        int status;

        k1 = status_serial("hkdos", "generation 1 ");
        k2 = status_serial("hkdos", "generation 2 ");
        ptr = status_serial("hkdos", "pointer ");
        ring = status_serial("hkdos", "keyring ");

        /* 1. An archived generation key: gone for everyone at once, but the upcall (installed, as
         *    on a real host) brings it back on the next decryption, with the upcall's timeout
         *    instead of for good, until the next load. */
        member_invalidates(sh, k1);
        ck_assert(test_proc_keys_gone(k1));
        decrypt_as(&member2, H.dos_old, 0, DOS_OLD_TEXT);
        again = status_serial("hkdos", "generation 1 ");
        ck_assert_int_ne(again, k1);
        proc_keys_timeout(again, timeout);
        ck_assert_msg(strcmp(timeout, "perm") != 0, "reloaded on demand, yet without a timeout");

        /* 2. The active generation key: the same (the upcall serves any generation the group keyring
         *    lacks), so decryption of current data survives too. */
        member_invalidates(sh, k2);
        ck_assert(test_proc_keys_gone(k2));
        decrypt_as(&member2, H.dos_new, 0, DOS_NEW_TEXT);
        proc_keys_timeout(status_serial("hkdos", "generation 2 "), timeout);
        ck_assert_msg(strcmp(timeout, "perm") != 0, "the active generation reloaded on demand, yet without a timeout");

        /* 3. The pointer: the group keyring no longer says which generation is active. libdkm
         *    refuses the group (encrypting and decrypting) until a load writes it again. */
        member_invalidates(sh, ptr);
        ck_assert(test_proc_keys_gone(ptr));
        {
                TestRun r;

                test_run(&r, "x", 1, &member2,
                         (char *const[]){ (char *) cli(), (char *) "encrypt", (char *) "-g", (char *) dos, NULL });
                status = r.status;
                test_run_free(&r);
                ck_assert_msg(status == 3, "encrypt with the pointer invalidated: status %d", status);
        }
        /* Decryption too, old data and new: libdkm accepts a group keyring only with its pointer, and
         * the upcall does not write pointers. (It says "not a member" for the reason given below.) */
        decrypt_as(&member2, H.dos_new, 4, "not a member");
        decrypt_as(&member2, H.dos_old, 4, "not a member");
        root_load(H.hkdos_path);
        ck_assert_int_gt(status_serial("hkdos", "pointer "), 0);
        decrypt_as(&member2, H.dos_new, 0, DOS_NEW_TEXT);

        /* 4. The group keyring: every member on the host loses every generation; the upcall cannot
         *    help (it loads into a loaded group keyring only). Load restores a new keyring. */
        member_invalidates(sh, ring);
        ck_assert(test_proc_keys_gone(ring));
        /* Until the garbage collector unlinks the dead keyring, a member is told "access revoked,
         * or retired" (5); after, libdkm looks for the group id through every
         * /run/dkm/<group>.keyring, may not read hk2's (another gid), and so says "not a member" (4)
         * rather than "no such key group" (3), which it says on a host with no other group. */
        decrypt_as(&member2, H.dos_new, 4, "not a member");
        decrypt_as(&member2, H.dos_old, 4, "not a member");
        root_load(H.hkdos_path);
        ck_assert_int_ne(status_serial("hkdos", "keyring "), ring);
        decrypt_as(&member2, H.dos_new, 0, DOS_NEW_TEXT);
        decrypt_as(&member2, H.dos_old, 0, DOS_OLD_TEXT);
        /* Load made the reloaded generation 1 permanent again. */
        proc_keys_timeout(status_serial("hkdos", "generation 1 "), timeout);
        ck_assert_str_eq(timeout, "perm");

        /* 5. ...and so does a restart of dkmd (it loads every group at start). */
        ring = status_serial("hkdos", "keyring ");
        member_invalidates(sh, ring);
        ck_assert(test_proc_keys_gone(ring));
        decrypt_as(&member2, H.dos_new, 4, "not a member");
        test_dkmd_stop(false);
        test_dkmd_start(NULL);
        decrypt_as(&member2, H.dos_new, 0, DOS_NEW_TEXT);

        /* A non-member cannot (test_kernel_nonmember: EACCES), and nothing else of the member's
         * tampering works (test_kernel_member). */
        assert_still_serving();
}
END_TEST

/* ======================================================================================== */
/* dkmd's bus API, as a non-member non-admin.                                                */

static char *must_request(const TestCreds *c, const char *group, const char *why) {
        Call r;

        call_as(c, &r, MGR_PATH, MGR_IFACE, "RequestAccess", "sst", group, why, (uint64_t) (30 * USEC));
        assert_ok(&r, "RequestAccess");
        ck_assert_msg(strncmp(r.path, REQUEST_PREFIX, strlen(REQUEST_PREFIX)) == 0, "request path '%s'", r.path);
        return strdup(r.path);
}

static char *request_object(const char *request) {
        char *o;

        ck_assert_int_ge(asprintf(&o, "group/%s/request/%s", test_key_group("hk"), request + strlen(REQUEST_PREFIX)),
                         0);
        return o;
}

START_TEST(test_bus_forged_calls) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = test_bus_open();
        TestCreds other = test_creds_other(), person = test_creds_person(), a1 = test_creds_approver1(),
                  a2 = test_creds_approver2();
        const char *hk = test_key_group("hk");
        _cleanup_free_ char *pending = NULL, *granted = NULL, *pobj = NULL, *gobj = NULL, *alias = NULL, *nosuch = NULL;
        char gobject[96];
        uint64_t seq;
        Call c;

        pending = must_request(&person, hk, "INC-1: pending, someone else's");
        granted = must_request(&person, hk, "INC-2: granted, someone else's");
        call_as(&a1, &c, granted, REQUEST_IFACE, "Approve", NULL);
        assert_ok(&c, "Approve level 1");
        call_as(&a2, &c, granted, REQUEST_IFACE, "Approve", NULL);
        assert_ok(&c, "Approve level 2");
        ck_assert_str_eq(req_state(bus, granted), "granted");
        pobj = request_object(pending);
        gobj = request_object(granted);
        {
                /* The grant's record in the runtime directory: root's only. */
                Shared *sh = test_shared_new(sizeof(Shared));

                file_probes = calloc(1, sizeof(FileProbe));
                ck_assert_ptr_nonnull(file_probes);
                n_file_probes = 0;
                snprintf(gobject, sizeof(gobject), "%s.grants", hk);
                add_file_probe(TW.runtime_dir, gobject, O_RDONLY, EACCES);
                snprintf(planted_link, sizeof(planted_link), "%s/%s.grants.planted", TW.runtime_dir, hk);
                test_wait_ok(test_fork_as(&other, probe_files, sh));
                ck_assert_msg(sh->p[0].ret < 0 && sh->p[0].err == EACCES, "a non-member opens %s: %s",
                              file_probes[0].path, sh->p[0].ret >= 0 ? "opened" : strerror(sh->p[0].err));
                free(file_probes);
        }

        snprintf(gobject, sizeof(gobject), "group/%s", hk);

        /* Others' requests. */
        struct {
                char **req, **obj;
                const char *method, *event, *error;
        } acts[] = {
                { &pending, &pobj, "Approve", "approve", E_NOT_APPROVER },
                { &pending, &pobj, "Deny", "deny", E_NOT_APPROVER },
                { &pending, &pobj, "Cancel", "cancel", E_ACCESS_DENIED },
                { &pending, &pobj, "Revoke", "revoke", E_INVALID_STATE },
                { &granted, &gobj, "Revoke", "revoke", E_ACCESS_DENIED },
                { &granted, &gobj, "Approve", "approve", E_INVALID_STATE },
                { &granted, &gobj, "Deny", "deny", E_INVALID_STATE },
                { &granted, &gobj, "Cancel", "cancel", E_INVALID_STATE },
        };
        for (size_t i = 0; i < ELEMENTSOF(acts); i++) {
                char what[128];

                snprintf(what, sizeof(what), "%s of %s by a non-member", acts[i].method, *acts[i].req);
                seq = audit_last_seq();
                if (strcmp(acts[i].method, "Deny") == 0)
                        call_as(&other, &c, *acts[i].req, REQUEST_IFACE, acts[i].method, "s", "no");
                else
                        call_as(&other, &c, *acts[i].req, REQUEST_IFACE, acts[i].method, NULL);
                assert_refused(&c, acts[i].error, seq, acts[i].event, TW.other_uid, *acts[i].obj, what);
        }
        ck_assert_str_eq(req_state(bus, pending), "pending");
        ck_assert_str_eq(req_state(bus, granted), "granted");

        /* One path per request: another spelling (leading zeros) names no object. */
        ck_assert_int_ge(asprintf(&alias, REQUEST_PREFIX "000%s", pending + strlen(REQUEST_PREFIX)), 0);
        call_as(&other, &c, alias, REQUEST_IFACE, "Approve", NULL);
        assert_error(&c, SD_BUS_ERROR_UNKNOWN_OBJECT, "Approve through a zero-padded path");
        ck_assert_str_eq(req_state(bus, pending), "pending");

        /* Requests that do not exist: no object, so sd-bus answers before dkmd's code runs. */
        static const char *const no_paths[] = { REQUEST_PREFIX "0",
                                                REQUEST_PREFIX "999999",
                                                REQUEST_PREFIX "18446744073709551615",
                                                REQUEST_PREFIX "18446744073709551616",
                                                REQUEST_PREFIX "_2d1",
                                                REQUEST_PREFIX "x" };
        for (size_t i = 0; i < ELEMENTSOF(no_paths); i++) {
                seq = audit_last_seq();
                call_as(&other, &c, no_paths[i], REQUEST_IFACE, "Approve", NULL);
                assert_error(&c, SD_BUS_ERROR_UNKNOWN_OBJECT, no_paths[i]);
                assert_not_audited(seq, no_paths[i]);
        }
        call_as(&other, &c, MGR_PATH, MGR_IFACE, "GetRequest", "t", (uint64_t) UINT64_MAX);
        assert_error(&c, E_NO_SUCH_REQUEST, "GetRequest of an unknown id");

        /* Groups it should not know about, or that cannot exist. */
        ck_assert_int_ge(asprintf(&nosuch, "dkmt-%ld-nosuch", (long) TW.main_pid), 0);
        {
                char obj[96];

                snprintf(obj, sizeof(obj), "group/%s", nosuch);
                seq = audit_last_seq();
                call_as(&other, &c, MGR_PATH, MGR_IFACE, "RequestAccess", "sst", nosuch, "INC-3", (uint64_t) USEC);
                assert_refused(&c, E_NO_SUCH_GROUP, seq, "request", TW.other_uid, obj, "RequestAccess, unknown group");
        }
        static const char *const bad_groups[] = { "", "..", "../../etc/shadow", "a/b", "A", "-x", "x\ny", ".registry" };
        for (size_t i = 0; i < ELEMENTSOF(bad_groups); i++) {
                seq = audit_last_seq();
                call_as(&other, &c, MGR_PATH, MGR_IFACE, "RequestAccess", "sst", bad_groups[i], "INC-4",
                        (uint64_t) USEC);
                assert_refused(&c, E_NO_SUCH_GROUP, seq, "refused-call", TW.other_uid, MGR_PATH, bad_groups[i]);
        }
        /* Bad justifications and durations: refused, and recorded without the justification. */
        struct {
                const char *why;
                uint64_t usec;
                const char *error;
        } bad_requests[] = {
                { "", USEC, E_JUSTIFICATION_REQUIRED },        { "\t \xc2\xa0", USEC, E_JUSTIFICATION_REQUIRED },
                { "INC-5\x01", USEC, E_INVALID_ARGUMENT },     { "INC-5\x1b[2J", USEC, E_INVALID_ARGUMENT },
                { "INC-5\xc2\x85", USEC, E_INVALID_ARGUMENT }, { "INC-5", 0, E_DURATION_TOO_LONG },
                { "INC-5", USEC - 1, E_DURATION_TOO_LONG },    { "INC-5", MAX_GRANT_USEC + 1, E_DURATION_TOO_LONG },
                { "INC-5", UINT64_MAX, E_DURATION_TOO_LONG },
        };
        for (size_t i = 0; i < ELEMENTSOF(bad_requests); i++) {
                seq = audit_last_seq();
                call_as(&other, &c, MGR_PATH, MGR_IFACE, "RequestAccess", "sst", hk, bad_requests[i].why,
                        bad_requests[i].usec);
                assert_refused(&c, bad_requests[i].error, seq, "request", TW.other_uid, gobject, bad_requests[i].error);
        }

        /* Every admin method, with arguments that would hand it the keys. */
        struct {
                const char *path, *iface, *method;
                int kind;
        } admin[] = {
                { MGR_PATH, MGR_IFACE, "CreateGroup", 0 },  { H.hk_path, GROUP_IFACE, "SetPolicy", 1 },
                { H.hk_path, GROUP_IFACE, "SetPolicy", 2 }, { H.hk_path, GROUP_IFACE, "Rollover", 3 },
                { H.hk_path, GROUP_IFACE, "Archive", 4 },   { H.hk_path, GROUP_IFACE, "Retire", 5 },
                { H.hk_path, GROUP_IFACE, "Load", 3 },      { MGR_PATH, MGR_IFACE, "Reload", 3 },
                { H.hk2_path, GROUP_IFACE, "Retire", 5 },   { H.hk2_path, GROUP_IFACE, "SetPolicy", 1 },
        };
        for (size_t i = 0; i < ELEMENTSOF(admin); i++) {
                char what[96];

                snprintf(what, sizeof(what), "%s on %s by a non-admin", admin[i].method, admin[i].path);
                seq = audit_last_seq();
                switch (admin[i].kind) {
                case 0: /* a group of its own, or the existing one's name, with its own gid */
                        call_as(&other, &c, admin[i].path, admin[i].iface, admin[i].method, "sua{sv}", hk,
                                (uint32_t) TW.other_gid, 1, "ApprovalGroups", "as", 1, TW.other);
                        break;
                case 1: /* approval by a group it is in (its own primary group) */
                        call_as(&other, &c, admin[i].path, admin[i].iface, admin[i].method, "a{sv}", 3,
                                "ApprovalGroups", "as", 1, TW.other, "MaxGrantUSec", "t", UINT64_MAX,
                                "RetireNeedsApproval", "b", 0);
                        break;
                case 2:
                        call_as(&other, &c, admin[i].path, admin[i].iface, admin[i].method, "a{sv}", 1,
                                "AllowHumanMembers", "b", 1);
                        break;
                case 3:
                        call_as(&other, &c, admin[i].path, admin[i].iface, admin[i].method, NULL);
                        break;
                case 4:
                        call_as(&other, &c, admin[i].path, admin[i].iface, admin[i].method, "u", (uint32_t) 3);
                        break;
                case 5:
                        call_as(&other, &c, admin[i].path, admin[i].iface, admin[i].method, "us", (uint32_t) 1,
                                "INC-6: shred it");
                        break;
                }
                assert_refused(&c, E_ACCESS_DENIED, seq, "refused-call", TW.other_uid, admin[i].path, what);
        }
        /* Properties are read-only; the name is root's (the bus policy). */
        seq = audit_last_seq();
        call_as(&other, &c, H.hk_path, "org.freedesktop.DBus.Properties", "Set", "ssv", GROUP_IFACE, "HotWindow", "u",
                (uint32_t) 0);
        ck_assert_msg(c.r < 0 && (strcmp(c.error, SD_BUS_ERROR_PROPERTY_READ_ONLY) == 0 ||
                                  strcmp(c.error, SD_BUS_ERROR_UNKNOWN_PROPERTY) == 0),
                      "Properties.Set: %s", c.r >= 0 ? "success" : c.error);
        call_as(&other, &c, "/org/freedesktop/DBus", "org.freedesktop.DBus", "RequestName", "su", SVC, (uint32_t) 0);
        ck_assert_msg(c.r < 0, "a non-root uid may own %s", SVC);
        /* ...which goes to dbus-daemon, not dkmd; the Set only to sd-bus. */
        assert_not_audited(seq, "Properties.Set, RequestName");

        /* Nothing changed. */
        ck_assert_uint_eq(group_u(bus, H.hk_path, "ActiveGeneration"), 4);
        ck_assert_uint_eq(group_u(bus, H.hk_path, "HotWindow"), 2);
        ck_assert_str_eq(req_state(bus, pending), "pending");
        ck_assert_str_eq(req_state(bus, granted), "granted");
        assert_audit_verifies();
        assert_still_serving();

        /* Tidy: the requester ends its own. */
        call_as(&person, &c, granted, REQUEST_IFACE, "Revoke", NULL);
        assert_ok(&c, "Revoke by the requester");
        call_as(&person, &c, pending, REQUEST_IFACE, "Cancel", NULL);
        assert_ok(&c, "Cancel by the requester");
}
END_TEST

/* ---- huge, nested and odd arguments ---- */

typedef struct Odd {
        int kind;
        size_t size;
        const char *s;
} Odd;

/* a{sv} bodies no well-behaved client sends. */
static int build_odd_policy(sd_bus_message *m, const void *arg) {
        const Odd *o = arg;
        int r;

        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        switch (o->kind) {
        case 0: /* HotWindow: a variant in a variant in ... (size deep) */
                r = sd_bus_message_open_container(m, 'e', "sv");
                if (r >= 0)
                        r = sd_bus_message_append(m, "s", "HotWindow");
                for (size_t i = 0; r >= 0 && i < o->size; i++)
                        r = sd_bus_message_open_container(m, 'v', "v");
                if (r >= 0)
                        r = sd_bus_message_append(m, "v", "u", (uint32_t) 1);
                for (size_t i = 0; r >= 0 && i < o->size; i++)
                        r = sd_bus_message_close_container(m);
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
                break;
        case 1: /* HotWindow as nested structs */
                r = sd_bus_message_append(m, "{sv}", "HotWindow", "((((u))))", (uint32_t) 1);
                break;
        case 2: /* ApprovalGroups with many entries */
                r = sd_bus_message_open_container(m, 'e', "sv");
                if (r >= 0)
                        r = sd_bus_message_append(m, "s", "ApprovalGroups");
                if (r >= 0)
                        r = sd_bus_message_open_container(m, 'v', "as");
                if (r >= 0)
                        r = sd_bus_message_open_container(m, 'a', "s");
                for (size_t i = 0; r >= 0 && i < o->size; i++)
                        r = sd_bus_message_append(m, "s", o->s);
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
                break;
        case 3: /* many entries with an unknown key */
                for (size_t i = 0; r >= 0 && i < o->size; i++)
                        r = sd_bus_message_append(m, "{sv}", o->s, "u", (uint32_t) 1);
                break;
        case 4: /* the same key twice, the second out of range */
                r = sd_bus_message_append(m, "{sv}{sv}", "HotWindow", "u", (uint32_t) 3, "HotWindow", "u",
                                          (uint32_t) 99);
                break;
        case 5: /* the right key, the wrong types */
                r = sd_bus_message_append(m, "{sv}{sv}", "HotWindow", "as", 1, "1", "MaxGrantUSec", "s", "1");
                break;
        case 6: /* an empty key, an empty array */
                r = sd_bus_message_append(m, "{sv}{sv}", "", "u", (uint32_t) 1, "ApprovalGroups", "as", 0);
                break;
        }
        if (r < 0)
                return r;
        return sd_bus_message_close_container(m);
}

static int build_string_args(sd_bus_message *m, const void *arg) {
        const Odd *o = arg;

        switch (o->kind) {
        case 10: /* RequestAccess(hk, huge justification) */
                return sd_bus_message_append(m, "sst", test_key_group("hk"), o->s, (uint64_t) USEC);
        case 11: /* RequestAccess(huge group name) */
                return sd_bus_message_append(m, "sst", o->s, "INC-7", (uint64_t) USEC);
        case 12: /* Deny(huge reason) */
                return sd_bus_message_append(m, "s", o->s);
        case 13: /* Retire(1, huge justification) */
                return sd_bus_message_append(m, "us", (uint32_t) 1, o->s);
        case 14: /* CreateGroup(huge name) */
                return sd_bus_message_append(m, "sua{sv}", o->s, (uint32_t) TW.other_gid, 0);
        case 15: /* GetGroup(huge name) */
                return sd_bus_message_append(m, "s", o->s);
        }
        return -EINVAL;
}

START_TEST(test_bus_huge_and_odd) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = test_bus_open();
        TestCreds other = test_creds_other(), person = test_creds_person();
        const char *hk = test_key_group("hk");
        _cleanup_free_ char *huge = repeat('a', 4U * 1024U * 1024U), *pending = NULL, *pobj = NULL;
        char gobject[96];
        uint64_t seq;
        Call c;

        snprintf(gobject, sizeof(gobject), "group/%s", hk);
        pending = must_request(&person, hk, "INC-8: someone else's");
        pobj = request_object(pending);

        /* Huge strings, as a non-member: refused by what they are, recorded without them. */
        seq = audit_last_seq();
        call_build(&other, &c, MGR_PATH, MGR_IFACE, "RequestAccess", build_string_args,
                   &(Odd){ .kind = 10, .s = huge });
        assert_refused(&c, E_INVALID_ARGUMENT, seq, "request", TW.other_uid, gobject, "4 MiB justification");
        seq = audit_last_seq();
        call_build(&other, &c, MGR_PATH, MGR_IFACE, "RequestAccess", build_string_args,
                   &(Odd){ .kind = 11, .s = huge });
        assert_refused(&c, E_NO_SUCH_GROUP, seq, "refused-call", TW.other_uid, MGR_PATH, "4 MiB group name");
        seq = audit_last_seq();
        call_build(&other, &c, pending, REQUEST_IFACE, "Deny", build_string_args, &(Odd){ .kind = 12, .s = huge });
        assert_refused(&c, E_INVALID_ARGUMENT, seq, "deny", TW.other_uid, pobj, "4 MiB reason");
        seq = audit_last_seq();
        call_build(&other, &c, H.hk_path, GROUP_IFACE, "Retire", build_string_args, &(Odd){ .kind = 13, .s = huge });
        assert_refused(&c, E_ACCESS_DENIED, seq, "refused-call", TW.other_uid, H.hk_path, "4 MiB retire justification");
        seq = audit_last_seq();
        call_build(&other, &c, MGR_PATH, MGR_IFACE, "CreateGroup", build_string_args, &(Odd){ .kind = 14, .s = huge });
        assert_refused(&c, E_ACCESS_DENIED, seq, "refused-call", TW.other_uid, MGR_PATH, "4 MiB group name to create");
        call_build(&other, &c, MGR_PATH, MGR_IFACE, "GetGroup", build_string_args, &(Odd){ .kind = 15, .s = huge });
        assert_error(&c, E_INVALID_ARGUMENT, "GetGroup of a 4 MiB name");
        /* Odd a{sv}, as a non-admin: refused before they are even parsed. */
        for (int kind = 0; kind <= 6; kind++) {
                Odd o = { .kind = kind, .size = kind == 0 ? 30 : 100000, .s = kind == 2 ? TW.other : "Nope" };

                seq = audit_last_seq();
                call_build(&other, &c, H.hk_path, GROUP_IFACE, "SetPolicy", build_odd_policy, &o);
                assert_refused(&c, E_ACCESS_DENIED, seq, "refused-call", TW.other_uid, H.hk_path, "odd SetPolicy");
        }

        /* Nesting deeper than the D-Bus limit (64 containers in all): dbus-daemon drops the sender;
         * dkmd never sees it. */
        seq = audit_last_seq();
        call_build(&other, &c, H.hk_path, GROUP_IFACE, "SetPolicy", build_odd_policy, &(Odd){ .kind = 0, .size = 100 });
        ck_assert_msg(c.r == -ECONNRESET, "100 nested variants: %d %s", c.r, c.error);
        assert_not_audited(seq, "100 nested variants");
        ck_assert(dkmd_alive());

        /* The same, as an admin (root): the parser itself. Every one is InvalidArgument, audited,
         * and changes nothing. */
        huge[1024 * 1024] = 0; /* a 1 MiB group name */
        const Odd as_root[] = {
                { .kind = 0, .size = 30 },                    /* v(v(...(u))) */
                { .kind = 1 },                                /* ((((u)))) */
                { .kind = 2, .size = 100000, .s = TW.appr1 }, /* 100000 levels */
                { .kind = 2, .size = 1, .s = huge },          /* a 1 MiB group name */
                { .kind = 3, .size = 100000, .s = "Nope" },   /* 100000 unknown keys */
                { .kind = 4 },                                /* a key twice */
                { .kind = 5 },                                /* wrong types */
                { .kind = 6 },                                /* an empty key */
        };
        for (size_t i = 0; i < ELEMENTSOF(as_root); i++) {
                char what[64];

                snprintf(what, sizeof(what), "odd SetPolicy %zu by root", i);
                seq = audit_last_seq();
                call_build(NULL, &c, H.hk_path, GROUP_IFACE, "SetPolicy", build_odd_policy, &as_root[i]);
                assert_refused(&c, E_INVALID_ARGUMENT, seq, "refused-call", 0, H.hk_path, what);
        }
        huge[1024 * 1024] = 'a';
        ck_assert_uint_eq(group_u(bus, H.hk_path, "HotWindow"), 2);

        /* Wrong types: sd-bus answers InvalidArgs before dkmd's code runs, so nothing is recorded. */
        seq = audit_last_seq();
        call_as(&other, &c, MGR_PATH, MGR_IFACE, "RequestAccess", "s", hk);
        assert_error(&c, SD_BUS_ERROR_INVALID_ARGS, "RequestAccess(s)");
        call_as(&other, &c, MGR_PATH, MGR_IFACE, "RequestAccess", "sss", hk, "INC-9", "1");
        assert_error(&c, SD_BUS_ERROR_INVALID_ARGS, "RequestAccess(sss)");
        call_as(&other, &c, pending, REQUEST_IFACE, "Approve", "s", "please");
        assert_error(&c, SD_BUS_ERROR_INVALID_ARGS, "Approve(s)");
        call_as(&other, &c, pending, REQUEST_IFACE, "Deny", NULL);
        assert_error(&c, SD_BUS_ERROR_INVALID_ARGS, "Deny()");
        call_as(&other, &c, H.hk_path, GROUP_IFACE, "SetPolicy", "a{ss}", 1, "HotWindow", "0");
        assert_error(&c, SD_BUS_ERROR_INVALID_ARGS, "SetPolicy(a{ss})");
        call_as(&other, &c, MGR_PATH, MGR_IFACE, "GetRequest", "s", "1");
        assert_error(&c, SD_BUS_ERROR_INVALID_ARGS, "GetRequest(s)");
        call_as(&other, &c, MGR_PATH, MGR_IFACE, "GiveMeTheKeys", NULL);
        assert_error(&c, SD_BUS_ERROR_UNKNOWN_METHOD, "an unknown method");
        call_as(&other, &c, MGR_PATH, "org.dkm.KeyManager1.Debug", "Dump", NULL);
        ck_assert_msg(c.r < 0, "an unknown interface answered");
        assert_not_audited(seq, "type errors");

        ck_assert_str_eq(req_state(bus, pending), "pending");
        assert_audit_verifies();
        assert_still_serving();
        call_as(&person, &c, pending, REQUEST_IFACE, "Cancel", NULL);
        assert_ok(&c, "Cancel by the requester");
}
END_TEST

/* Messages at dbus-daemon's size limit: one just under it reaches dkmd and is refused by name; one
 * over it never reaches dkmd (the bus drops the sender). dkmd stays, and gives the memory back. */
START_TEST(test_oversize_messages) {
        TestCreds other = test_creds_other();
        const size_t under = BUS_MESSAGE_MAX - 64U * 1024U, over = BUS_MESSAGE_MAX + 64U * 1024U;
        _cleanup_free_ char *big = repeat('b', over);
        char gobject[96];
        long rss_before, rss_after;
        uint64_t seq;
        Call c;

        snprintf(gobject, sizeof(gobject), "group/%s", test_key_group("hk"));
        rss_before = rss_kib(test_dkmd_pid());

        big[under] = 0;
        seq = audit_last_seq();
        call_build(&other, &c, MGR_PATH, MGR_IFACE, "RequestAccess", build_string_args, &(Odd){ .kind = 10, .s = big });
        assert_refused(&c, E_INVALID_ARGUMENT, seq, "request", TW.other_uid, gobject,
                       "a justification just under the limit");
        big[under] = 'b';

        seq = audit_last_seq();
        call_build(&other, &c, MGR_PATH, MGR_IFACE, "RequestAccess", build_string_args, &(Odd){ .kind = 10, .s = big });
        ck_assert_msg(c.r < 0, "a message over the bus limit was answered");
        ck_assert_msg(strcmp(c.error, SD_BUS_ERROR_NO_REPLY) != 0, "no reply: the bus neither refused nor dropped it");
        fprintf(stderr, "hostile: a %zu-byte message: %s (%s)\n", over, c.error[0] ? c.error : "dropped", c.message);
        assert_not_audited(seq, "a message over the bus limit");

        rss_after = rss_kib(test_dkmd_pid());
        fprintf(stderr, "hostile: dkmd RSS %ld KiB before, %ld KiB after the 32 MiB messages (peak %ld KiB)\n",
                rss_before, rss_after, peak_kib(test_dkmd_pid()));
        /* sd-bus reads the whole message; what it held is freed (glibc mmaps allocations this large).
         * A sanitizer's allocator keeps freed memory in quarantine: there RSS proves nothing. */
        if (!SANITIZER_BUILD)
                ck_assert_msg(rss_after - rss_before < 16 * 1024, "dkmd kept %ld KiB", rss_after - rss_before);
        assert_still_serving();
}
END_TEST

/* ---- exhausting state ---- */

typedef struct Batch {
        int r[OPEN_PER_UID + 2];
        char error[OPEN_PER_UID + 2][96];
        char path[OPEN_PER_UID + 2][96];
        int n;
        int cancel; /* cancel these paths instead of requesting */
} Batch;

/* Up to n RequestAccess calls on one connection, as the forked child's uid. */
static void batch_requests(void *userdata) {
        Batch *b = userdata;
        sd_bus *bus = NULL;

        if (sd_bus_open_system(&bus) < 0)
                _exit(80);
        for (int i = 0; i < b->n; i++) {
                sd_bus_error e = SD_BUS_ERROR_NULL;
                sd_bus_message *reply = NULL;
                const char *o;

                if (b->cancel) {
                        if (!b->path[i][0])
                                continue; /* that request was refused */
                        b->r[i] = sd_bus_call_method(bus, SVC, b->path[i], REQUEST_IFACE, "Cancel", &e, NULL, NULL);
                } else {
                        b->r[i] = sd_bus_call_method(bus, SVC, MGR_PATH, MGR_IFACE, "RequestAccess", &e, &reply, "sst",
                                                     test_key_group("hk"), "INC-10: fill the table", (uint64_t) USEC);
                        if (b->r[i] >= 0 && sd_bus_message_read(reply, "o", &o) > 0)
                                snprintf(b->path[i], sizeof(b->path[i]), "%s", o);
                }
                snprintf(b->error[i], sizeof(b->error[i]), "%s", e.name ?: "");
                sd_bus_error_free(&e);
                sd_bus_message_unref(reply);
        }
        sd_bus_flush_close_unref(bus);
}

/* A system account with no login (as test-accounts.c makes them); useradd may meet another run's
 * lock on /etc/passwd, so it is retried. */
static uid_t extra_account(size_t i) {
        struct passwd *pw;

        snprintf(extra_name[i], sizeof(extra_name[i]), "dkmt-%ld-h%02zu", (long) TW.main_pid, i);
        for (int attempt = 0; attempt < 50 && !(pw = getpwnam(extra_name[i])); attempt++) {
                TestRun r;

                test_run(&r, NULL, 0, NULL,
                         (char *const[]){ (char *) "/usr/sbin/useradd", (char *) "--system",
                                          (char *) "--no-create-home", (char *) "--shell", (char *) "/usr/sbin/nologin",
                                          extra_name[i], NULL });
                test_run_free(&r);
                if (r.status != 0)
                        sleep_ms(100);
        }
        pw = getpwnam(extra_name[i]);
        ck_assert_msg(pw, "useradd %s failed", extra_name[i]);
        return pw->pw_uid;
}

START_TEST(test_request_limits) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = test_bus_open();
        TestCreds creds[EXTRA_ACCOUNTS + 1];
        Batch *b = test_shared_new(sizeof(Batch) * (EXTRA_ACCOUNTS + 1));
        char gobject[96];
        long rss_empty, rss_full;
        size_t total = count_requests(bus);
        uint64_t seq;
        Call c;

        snprintf(gobject, sizeof(gobject), "group/%s", test_key_group("hk"));
        rss_empty = rss_kib(test_dkmd_pid());
        creds[0] = test_creds_other();
        for (size_t i = 0; i < EXTRA_ACCOUNTS; i++) {
                uid_t uid = extra_account(i);
                creds[i + 1] = (TestCreds){ .uid = uid, .gid = getpwuid(uid)->pw_gid };
        }

        /* Per uid: the ninth is refused, and recorded. */
        seq = audit_last_seq();
        b[0].n = OPEN_PER_UID + 1;
        test_wait_ok(test_fork_as(&creds[0], batch_requests, &b[0]));
        for (int i = 0; i < OPEN_PER_UID; i++)
                ck_assert_msg(b[0].r[i] >= 0, "request %d of uid %u: %s", i, (unsigned) creds[0].uid, b[0].error[i]);
        ck_assert_str_eq(b[0].error[OPEN_PER_UID], E_TOO_MANY_REQUESTS);
        ck_assert_uint_eq(audit_count(seq, "request", AUDIT_OUTCOME_REFUSED, TW.other_uid, gobject), 1);
        total += OPEN_PER_UID;

        /* Every other uid: until the table holds OPEN_MAX open requests in all. Requests other
         * tests left open count too, so fill until the global refusal comes. */
        for (size_t u = 1; u <= EXTRA_ACCOUNTS; u++) {
                b[u].n = OPEN_PER_UID;
                test_wait_ok(test_fork_as(&creds[u], batch_requests, &b[u]));
                for (int i = 0; i < b[u].n; i++)
                        if (b[u].r[i] >= 0)
                                total++;
                        else
                                ck_assert_str_eq(b[u].error[i], E_TOO_MANY_REQUESTS);
        }
        ck_assert_uint_eq(count_requests(bus), total);
        /* A newcomer, with no request of its own, hits the global limit: refused, and recorded. */
        seq = audit_last_seq();
        call_as(&(TestCreds){ .uid = TW.person_uid, .gid = TW.person_gid }, &c, MGR_PATH, MGR_IFACE, "RequestAccess",
                "sst", test_key_group("hk"), "INC-11: one more", (uint64_t) USEC);
        assert_refused(&c, E_TOO_MANY_REQUESTS, seq, "request", TW.person_uid, gobject, "the 257th open request");

        /* Still serving everyone else, with bounded memory. */
        rss_full = rss_kib(test_dkmd_pid());
        fprintf(stderr, "hostile: dkmd RSS %ld KiB with the table empty, %ld KiB full (%d open requests)\n", rss_empty,
                rss_full, OPEN_MAX);
        ck_assert_msg(rss_full - rss_empty < 8 * 1024, "dkmd grew by %ld KiB", rss_full - rss_empty);
        assert_still_serving();
        call_as(NULL, &c, H.hk2_path, GROUP_IFACE, "Rollover", NULL);
        assert_ok(&c, "an admin's Rollover with the request table full");

        /* Each requester cancels its own. */
        for (size_t u = 0; u <= EXTRA_ACCOUNTS; u++) {
                b[u].cancel = 1;
                for (int i = 0; i < b[u].n; i++)
                        if (b[u].r[i] < 0)
                                b[u].path[i][0] = 0;
                test_wait_ok(test_fork_as(&creds[u], batch_requests, &b[u]));
                for (int i = 0; i < b[u].n; i++)
                        ck_assert_msg(!b[u].path[i][0] || b[u].r[i] >= 0, "Cancel %s: %s", b[u].path[i], b[u].error[i]);
        }
        call_as(&(TestCreds){ .uid = TW.person_uid, .gid = TW.person_gid }, &c, MGR_PATH, MGR_IFACE, "RequestAccess",
                "sst", test_key_group("hk"), "INC-11: now there is room", (uint64_t) USEC);
        assert_ok(&c, "RequestAccess after the table emptied");
        call_as(&(TestCreds){ .uid = TW.person_uid, .gid = TW.person_gid }, &c, c.path, REQUEST_IFACE, "Cancel", NULL);
        assert_ok(&c, "Cancel");
        assert_audit_verifies();
}
END_TEST

/* Resource growth (docs/SECURITY.md, "Denial of service"): the limits count *open* requests, so
 * one non-member may request and cancel in a loop. dkmd keeps listing only the newest 256 closed
 * requests (memory and replies stay bounded); their files stay for 7 days, and every call,
 * refused ones included, appends an fsynced audit record: those grow (numbers in the test log). */
START_TEST(test_closed_requests_bounded) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = test_bus_open();
        TestCreds other = test_creds_other();
        Batch *b = test_shared_new(sizeof(Batch));
        const unsigned rounds = 40; /* x OPEN_PER_UID requests, each cancelled: more than dkmd lists */
        size_t before = count_requests(bus);
        off_t audit_before = audit_bytes();
        size_t files_before = request_files();
        long rss_before = rss_kib(test_dkmd_pid()), rss_after;
        struct timespec t0, t1;
        double secs;

        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (unsigned k = 0; k < rounds; k++) {
                memset(b, 0, sizeof(*b));
                b->n = OPEN_PER_UID;
                test_wait_ok(test_fork_as(&other, batch_requests, b));
                for (int i = 0; i < b->n; i++)
                        ck_assert_msg(b->r[i] >= 0, "round %u request %d: %s", k, i, b->error[i]);
                b->cancel = 1;
                test_wait_ok(test_fork_as(&other, batch_requests, b));
                for (int i = 0; i < b->n; i++)
                        ck_assert_msg(b->r[i] >= 0, "round %u cancel %d: %s", k, i, b->error[i]);
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        secs = (double) (t1.tv_sec - t0.tv_sec) + (double) (t1.tv_nsec - t0.tv_nsec) / 1e9;
        rss_after = rss_kib(test_dkmd_pid());
        /* Closed requests are history: dkmd keeps listing only the newest 256 (the audit log
         * has them all), so requesting and cancelling cannot grow its memory or its replies
         * without bound. Their files stay for 7 days. The timer prunes; give it a moment. */
        sleep_ms(500);
        ck_assert_uint_eq(count_closed_requests(bus), 256);
        ck_assert_uint_eq(request_files(), files_before + rounds * OPEN_PER_UID);
        fprintf(stderr,
                "hostile: %u request+cancel pairs by one non-member in %.2f s: %zu requests listed (was %zu; files "
                "in requests/: %zu), audit log +%lld bytes (%lld per pair), dkmd RSS %ld -> %ld KiB\n",
                rounds * OPEN_PER_UID, secs, count_requests(bus), before, request_files(),
                (long long) (audit_bytes() - audit_before),
                (long long) ((audit_bytes() - audit_before) / (rounds * OPEN_PER_UID)), rss_before, rss_after);
        assert_still_serving();
}
END_TEST

/* The same for refusals alone: a non-member's refused calls on one connection, as fast as it can
 * send them, each an fsynced audit record and checkpoint (numbers in the test log). */
static void refused_loop(void *userdata) {
        Batch *b = userdata;
        sd_bus *bus = NULL;

        if (sd_bus_open_system(&bus) < 0)
                _exit(80);
        for (int i = 0; i < b->n; i++) {
                sd_bus_error e = SD_BUS_ERROR_NULL;

                if (sd_bus_call_method(bus, SVC, H.hk_path, GROUP_IFACE, "Rollover", &e, NULL, NULL) >= 0 ||
                    !sd_bus_error_has_name(&e, E_ACCESS_DENIED))
                        _exit(81);
                sd_bus_error_free(&e);
        }
        sd_bus_flush_close_unref(bus);
}

START_TEST(test_refusals_grow_the_log) {
        TestCreds other = test_creds_other();
        Batch *b = test_shared_new(sizeof(Batch));
        off_t before = audit_bytes();
        uint64_t seq = audit_last_seq();
        struct timespec t0, t1;
        double secs;

        b->n = 500;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        test_wait_ok(test_fork_as(&other, refused_loop, b));
        clock_gettime(CLOCK_MONOTONIC, &t1);
        secs = (double) (t1.tv_sec - t0.tv_sec) + (double) (t1.tv_nsec - t0.tv_nsec) / 1e9;
        ck_assert_uint_eq(audit_count(seq, "refused-call", AUDIT_OUTCOME_REFUSED, TW.other_uid, H.hk_path), 500);
        fprintf(stderr,
                "hostile: 500 refused calls by one non-member in %.2f s (%.0f/s): audit log +%lld bytes (%lld each)\n",
                secs, 500 / secs, (long long) (audit_bytes() - before), (long long) ((audit_bytes() - before) / 500));
        assert_audit_verifies();
        assert_still_serving();
}
END_TEST

/* ---- what the bus says about the caller's groups ---- */

typedef struct Groups {
        int has;
        uint32_t gids[32];
        size_t n;
} Groups;

/* What dbus-daemon says about this connection's groups (GetConnectionCredentials, as dkmd asks). */
static void probe_bus_groups(void *userdata) {
        Groups *g = userdata;
        sd_bus_message *reply = NULL;
        const char *unique, *key;
        sd_bus *bus = NULL;

        if (sd_bus_open_system(&bus) < 0 || sd_bus_get_unique_name(bus, &unique) < 0 ||
            sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                               "GetConnectionCredentials", NULL, &reply, "s", unique) < 0 ||
            sd_bus_message_enter_container(reply, 'a', "{sv}") < 0)
                _exit(80);
        while (sd_bus_message_enter_container(reply, 'e', "sv") > 0) {
                if (sd_bus_message_read(reply, "s", &key) < 0)
                        _exit(81);
                if (strcmp(key, "UnixGroupIDs") == 0) {
                        const uint32_t *gids;
                        size_t size;

                        if (sd_bus_message_enter_container(reply, 'v', "au") < 0 ||
                            sd_bus_message_read_array(reply, 'u', (const void **) &gids, &size) < 0 ||
                            sd_bus_message_exit_container(reply) < 0)
                                _exit(82);
                        g->has = 1;
                        g->n = MIN(size / sizeof(uint32_t), ELEMENTSOF(g->gids));
                        memcpy(g->gids, gids, g->n * sizeof(uint32_t));
                } else if (sd_bus_message_skip(reply, "v") < 0)
                        _exit(83);
                if (sd_bus_message_exit_container(reply) < 0)
                        _exit(84);
        }
        sd_bus_message_unref(reply);
        sd_bus_flush_close_unref(bus);
}

START_TEST(test_groups_from_the_bus) {
        _cleanup_free_ char *pending = NULL, *pobj = NULL;
        TestCreds person = test_creds_person(), member_nogid = test_creds_member_without_gid(),
                  a1_nogid = { .uid = TW.approver1_uid, .gid = TW.approver1_gid };
        uint64_t seq;
        Call c;

        Groups *g = test_shared_new(sizeof(Groups));

        /* The member is in the admin group (TW.grp) in /etc/group, but this process of it does not
         * carry the gid: dbus-daemon reports the process's groups (SO_PEERGROUPS at connect), not
         * the group database's, so dkmd refuses. */
        test_wait_ok(test_fork_as(&member_nogid, probe_bus_groups, g));
        ck_assert_int_eq(g->has, 1);
        ck_assert_uint_eq(g->n, 1);
        ck_assert_uint_eq(g->gids[0], TW.member_gid);
        seq = audit_last_seq();
        call_as(&member_nogid, &c, H.hkdos_path, GROUP_IFACE, "Rollover", NULL);
        assert_refused(&c, E_ACCESS_DENIED, seq, "refused-call", TW.member_uid, H.hkdos_path,
                       "Rollover by an admin-group member without the gid in its process");
        seq = audit_last_seq();
        call_as(&member_nogid, &c, MGR_PATH, MGR_IFACE, "RequestAccess", "sst", test_key_group("hk"), "INC-12",
                (uint64_t) USEC);
        /* ...and, not being a member by the bus's word, it may ask like anyone else. */
        assert_ok(&c, "RequestAccess by a member's uid without the gid");
        call_as(&member_nogid, &c, c.path, REQUEST_IFACE, "Cancel", NULL);
        assert_ok(&c, "Cancel");

        /* An approver whose process lacks the approver group is not an approver. */
        pending = must_request(&person, test_key_group("hk"), "INC-13");
        pobj = request_object(pending);
        seq = audit_last_seq();
        call_as(&a1_nogid, &c, pending, REQUEST_IFACE, "Approve", NULL);
        assert_refused(&c, E_NOT_APPROVER, seq, "approve", TW.approver1_uid, pobj, "approver without its group");
        call_as(&person, &c, pending, REQUEST_IFACE, "Cancel", NULL);
        assert_ok(&c, "Cancel");
        assert_still_serving();
}
END_TEST

/* Calls whose caller is gone before dkmd asks dbus-daemon who it was: the bus can say nothing
 * about it, its uid or its groups. dkmd is stopped (SIGSTOP) while the caller sends and
 * disconnects, so this is not a race. Each call must be refused and recorded as uid -1, never
 * carried out, nor attributed to anyone. */
typedef struct Vanish {
        char unique[64];
        char pending[128];
} Vanish;

static void send_and_vanish(void *userdata) {
        Vanish *v = userdata;
        sd_bus_message *m = NULL;
        const char *unique;
        sd_bus *bus = NULL;

        if (sd_bus_open_system(&bus) < 0 || sd_bus_get_unique_name(bus, &unique) < 0)
                _exit(80);
        snprintf(v->unique, sizeof(v->unique), "%s", unique);
        if (sd_bus_message_new_method_call(bus, &m, SVC, MGR_PATH, MGR_IFACE, "RequestAccess") < 0 ||
            sd_bus_message_append(m, "sst", test_key_group("hk"), "INC-14: and gone", (uint64_t) USEC) < 0 ||
            sd_bus_send(bus, m, NULL) < 0)
                _exit(81);
        m = sd_bus_message_unref(m);
        if (sd_bus_message_new_method_call(bus, &m, SVC, v->pending, REQUEST_IFACE, "Approve") < 0 ||
            sd_bus_send(bus, m, NULL) < 0)
                _exit(82);
        m = sd_bus_message_unref(m);
        if (sd_bus_message_new_method_call(bus, &m, SVC, H.hk_path, GROUP_IFACE, "Rollover") < 0 ||
            sd_bus_send(bus, m, NULL) < 0)
                _exit(83);
        m = sd_bus_message_unref(m);
        if (sd_bus_flush(bus) < 0)
                _exit(84);
        _exit(0); /* the connection closes with the process, before any reply */
}

static bool bus_name_has_owner(sd_bus *bus, const char *name) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int has = 1;

        if (sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                               "NameHasOwner", NULL, &reply, "s", name) < 0 ||
            sd_bus_message_read(reply, "b", &has) < 0)
                return true;
        return has;
}

START_TEST(test_vanished_caller) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = test_bus_open();
        TestCreds person = test_creds_person(), a1 = test_creds_approver1();
        Vanish *v = test_shared_new(sizeof(Vanish));
        _cleanup_free_ char *pending = NULL;
        pid_t dkmd = test_dkmd_pid();
        size_t requests = count_requests(bus), n = 0;
        uint32_t active = group_u(bus, H.hk_path, "ActiveGeneration");
        bool gone = false;
        int status;
        uint64_t seq;
        Call c;

        pending = must_request(&person, test_key_group("hk"), "INC-15: someone else's");
        requests++;
        snprintf(v->pending, sizeof(v->pending), "%s", pending);
        seq = audit_last_seq();

        /* Nothing may fail between the stop and the continue: a stopped dkmd would hang the rest. */
        ck_assert_int_eq(kill(dkmd, SIGSTOP), 0);
        status = test_wait(test_fork_as(&a1, send_and_vanish, v)); /* an approver, to make it count */
        for (int i = 0; i < 200 && !gone; i++) {
                gone = v->unique[0] && !bus_name_has_owner(bus, v->unique);
                if (!gone)
                        sleep_ms(10);
        }
        (void) kill(dkmd, SIGCONT);
        ck_assert_int_eq(status, 0);
        ck_assert_msg(gone, "the caller's connection %s did not go", v->unique);

        /* dkmd now reads three calls from a caller the bus no longer knows. */
        for (int i = 0; i < 300 && (n = audit_count(seq, "refused-call", AUDIT_OUTCOME_REFUSED, (uid_t) -1, NULL)) < 3;
             i++)
                sleep_ms(10);
        ck_assert_msg(n == 3, "%zu refusals recorded as uid -1, want 3", n);
        ck_assert_uint_eq(audit_count(seq, "refused-call", AUDIT_OUTCOME_REFUSED, (uid_t) -1, MGR_PATH), 1);
        ck_assert_uint_eq(audit_count(seq, "refused-call", AUDIT_OUTCOME_REFUSED, (uid_t) -1, pending), 1);
        ck_assert_uint_eq(audit_count(seq, "refused-call", AUDIT_OUTCOME_REFUSED, (uid_t) -1, H.hk_path), 1);
        /* Nothing else was recorded, nothing was done. */
        ck_assert_uint_eq(audit_count(seq, NULL, AUDIT_OUTCOME_OK, TW.approver1_uid, NULL), 0);
        ck_assert_uint_eq(audit_count(seq, NULL, AUDIT_OUTCOME_OK, 0, NULL), 0);
        ck_assert_uint_eq(count_requests(bus), requests);
        ck_assert_str_eq(req_state(bus, pending), "pending");
        ck_assert_uint_eq(group_u(bus, H.hk_path, "ActiveGeneration"), active);
        assert_still_serving();
        call_as(&person, &c, pending, REQUEST_IFACE, "Cancel", NULL);
        assert_ok(&c, "Cancel");
}
END_TEST

/* ======================================================================================== */

/* Without root: the forged descriptions are refused by the parser the handler uses. */
START_TEST(test_forged_descriptions_parse) {
        static const char *const bad[] = {
                "dkm:00112233445566778899aabbccddeeff:0",
                "dkm:00112233445566778899aabbccddeeff:01",
                "dkm:00112233445566778899aabbccddeeff:-1",
                "dkm:00112233445566778899aabbccddeeff:+1",
                "dkm:00112233445566778899aabbccddeeff:x",
                "dkm:00112233445566778899aabbccddeeff:",
                "dkm:00112233445566778899aabbccddeeff:4294967296",
                "dkm:00112233445566778899aabbccddeeff:../../etc/shadow",
                "dkm:00112233445566778899aabbccddeeff:1/../2",
                "dkm:00112233445566778899aabbccddeeff:1 x",
                "dkm:00112233445566778899aabbccddeeff:1\n",
                "dkm:00112233445566778899AABBCCDDEEFF:1",
                "dkm:0011223344556677:1",
                "dkm:/etc/shadow:1",
                "dkm:.registry",
                "dkm:mail:active",
                "00112233445566778899aabbccddeeff:1",
                "",
        };
        uint8_t id[KEYRING_GROUP_ID_BYTES];
        uint32_t n;

        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                ck_assert_msg(keyring_generation_desc_parse(bad[i], id, &n) == -EINVAL, "accepted '%s'", bad[i]);
        ck_assert_int_eq(keyring_generation_desc_parse("dkm:00112233445566778899aabbccddeeff:4294967295", id, &n), 0);
        ck_assert_uint_eq(n, UINT32_MAX);
}
END_TEST

static Suite *make_suite(bool integration) {
        Suite *s = suite_create("hostile");
        TCase *tc = tcase_create("parse");

        tcase_add_test(tc, test_forged_descriptions_parse);
        suite_add_tcase(s, tc);
        if (integration) {
                tc = tcase_create("hostile");
                tcase_set_timeout(tc, 120);
                tcase_add_unchecked_fixture(tc, hostile_up, hostile_down);
                tcase_add_test(tc, test_kernel_nonmember);
                tcase_add_test(tc, test_request_key_forged);
                tcase_add_test(tc, test_files_unreadable);
                tcase_add_test(tc, test_kernel_member);
                tcase_add_test(tc, test_bus_forged_calls);
                tcase_add_test(tc, test_bus_huge_and_odd);
                tcase_add_test(tc, test_oversize_messages);
                tcase_add_test(tc, test_groups_from_the_bus);
                tcase_add_test(tc, test_vanished_caller);
                tcase_add_test(tc, test_request_limits);
                tcase_add_test(tc, test_closed_requests_bounded);
                tcase_add_test(tc, test_refusals_grow_the_log);
                /* Last: it invalidates keys and restarts dkmd. */
                tcase_add_test(tc, test_member_invalidate_dos);
                suite_add_tcase(s, tc);
        }
        return s;
}

/* Accounts a test made in a forked child are removed by the process that made the world. */
static void at_exit(void) {
        if (TW.main_pid == getpid() && geteuid() == 0)
                extra_accounts_remove();
}

int main(void) {
        test_world_want_person = true;
        test_world_want_approvers = true;
        atexit(at_exit);
        return test_world_main(make_suite, key_group_tags);
}
