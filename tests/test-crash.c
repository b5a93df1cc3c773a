/* SPDX-License-Identifier: MIT */
/* Crash consistency end to end: dkmd SIGKILLed under a storm of D-Bus mutations, and on a full file system. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <systemd/sd-bus.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "dkm.h"
#include "macro.h"
#include "test-accounts.h"
#include "test-bus.h"
#include "test-helpers.h"

/* The named errors are part of the interface: spelled out, not taken from dkmd's headers. */
#define E_AUDIT_FAILED      "org.dkm.KeyManager1.Error.AuditFailed"
#define E_STORE_ERROR       "org.dkm.KeyManager1.Error.StoreError"
#define E_TOO_MANY_REQUESTS "org.dkm.KeyManager1.Error.TooManyRequests"
#define REQUEST_IFACE       "org.dkm.KeyManager1.Request"
#define REQUEST_PREFIX      "/org/dkm/KeyManager1/request/"

#define USEC           1000000ULL
#define KILL_WINDOW_MS 300U
#define RECENT_KEPT    50U
#define MAX_KEPT       4096U
#define MAX_REQS       16384U
#define MAX_ARCHIVES   256U
#define TMPFS_PAGE     4096U

static const char *const key_group_tags[] = { "crash", "full", "full2", NULL };

/* ---- small things ---- */

static void closedirp(DIR **d) {
        if (*d)
                (void) closedir(*d);
}

static uint64_t now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * USEC + (uint64_t) ts.tv_nsec / 1000U;
}

static uint64_t mono_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * USEC + (uint64_t) ts.tv_nsec / 1000U;
}

static void sleep_ms(unsigned ms) {
        nanosleep(&(struct timespec){ ms / 1000, (long) (ms % 1000) * 1000000L }, NULL);
}

static void sleep_until_mono(uint64_t usec) {
        for (uint64_t n = mono_usec(); n < usec; n = mono_usec()) {
                uint64_t d = usec - n;
                nanosleep(&(struct timespec){ (time_t) (d / USEC), (long) (d % USEC) * 1000L }, NULL);
        }
}

/* xorshift64*: reproducible with DKM_CRASH_SEED. Each process has its own copy. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rnd(void) {
        rng_state ^= rng_state >> 12;
        rng_state ^= rng_state << 25;
        rng_state ^= rng_state >> 27;
        return rng_state * 0x2545f4914f6cdd1dULL;
}

static unsigned rnd_below(unsigned n) {
        return (unsigned) (rnd() % n);
}

/* In a driver child: die with the test (the credential change cleared any earlier setting). */
static void die_with_parent(pid_t parent) {
        (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
                _exit(1);
}

static bool is_transport_error(const sd_bus_error *e) {
        /* dkmd gone or not there yet: the bus answers for it. */
        return !e->name || strncmp(e->name, "org.freedesktop.DBus.Error.", 27) == 0;
}

static uint64_t request_id_of(const char *path) {
        return strncmp(path, REQUEST_PREFIX, strlen(REQUEST_PREFIX)) == 0
                       ? strtoull(path + strlen(REQUEST_PREFIX), NULL, 10)
                       : 0;
}

static char *group_path(sd_bus *bus, const char *name) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        const char *path;

        ck_assert_msg(sd_bus_call_method(bus, SVC, MGR_PATH, MGR_IFACE, "GetGroup", &e, &reply, "s", name) >= 0,
                      "GetGroup %s: %s: %s", name, e.name ?: "", e.message ?: "");
        ck_assert_int_ge(sd_bus_message_read(reply, "o", &path), 0);
        return strdup(path);
}

static uint32_t get_u(sd_bus *bus, const char *path, const char *property) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        uint32_t v = 0;

        ck_assert_msg(sd_bus_get_property_trivial(bus, SVC, path, GROUP_IFACE, property, &e, 'u', &v) >= 0, "%s: %s",
                      property, e.message ?: "");
        return v;
}

static uint64_t get_t(sd_bus *bus, const char *path, const char *iface, const char *property) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        uint64_t v = 0;

        ck_assert_msg(sd_bus_get_property_trivial(bus, SVC, path, iface, property, &e, 't', &v) >= 0, "%s: %s",
                      property, e.message ?: "");
        return v;
}

static size_t get_approval_levels(sd_bus *bus, const char *path) {
        _cleanup_strv_free_ char **l = NULL;
        size_t n = 0;

        ck_assert_int_ge(sd_bus_get_property_strv(bus, SVC, path, GROUP_IFACE, "ApprovalGroups", NULL, &l), 0);
        while (l && l[n])
                n++;
        return n;
}

typedef struct Gen {
        uint32_t number;
        char state[16];
} Gen;

/* The Generations property; how many (at most max are stored). */
static size_t get_generations(sd_bus *bus, const char *path, Gen *gens, size_t max) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        uint64_t created, activated, archived, retired;
        const char *state;
        uint32_t number;
        size_t n = 0;
        int r;

        ck_assert_int_ge(sd_bus_get_property(bus, SVC, path, GROUP_IFACE, "Generations", NULL, &reply, "a(ustttt)"), 0);
        ck_assert_int_ge(sd_bus_message_enter_container(reply, 'a', "(ustttt)"), 0);
        while ((r = sd_bus_message_read(reply, "(ustttt)", &number, &state, &created, &activated, &archived,
                                        &retired)) > 0) {
                if (n < max) {
                        gens[n].number = number;
                        snprintf(gens[n].state, sizeof(gens[n].state), "%s", state);
                }
                n++;
        }
        ck_assert_int_ge(r, 0);
        return n < max ? n : max;
}

/* ---- ciphertexts ---- */

typedef struct Kept {
        uint32_t generation;
        unsigned iteration;
        bool forever; /* the first of its generation: kept to the end */
        char plaintext[64];
        uint8_t ct[160];
        size_t ct_size;
} Kept;

/* "dkm encrypt" as the member with whatever is active; the generation its header names. */
static void encrypt_as_member(const char *group, unsigned iteration, Kept *ret) {
        TestCreds member = test_creds_member();
        TestRun r;

        *ret = (Kept){ .iteration = iteration };
        snprintf(ret->plaintext, sizeof(ret->plaintext), "crash test %u: %016" PRIx64, iteration, rnd());
        test_run(&r, ret->plaintext, strlen(ret->plaintext), &member,
                 (char *const[]){ (char *) test_env_path("DKM_CLI"), (char *) "encrypt", (char *) "-g", (char *) group,
                                  NULL });
        ck_assert_msg(r.status == 0, "dkm encrypt in %s: status %d: %s", group, r.status, r.err);
        ck_assert_msg(r.out_size > 28 && r.out_size <= sizeof(ret->ct), "ciphertext of %zu bytes", r.out_size);
        memcpy(ret->ct, r.out, r.out_size);
        ret->ct_size = r.out_size;
        /* FORMAT.md: the generation, big-endian, at offset 24. */
        ret->generation =
                (uint32_t) r.out[24] << 24 | (uint32_t) r.out[25] << 16 | (uint32_t) r.out[26] << 8 | r.out[27];
        test_run_free(&r);
}

typedef struct DecryptResult {
        size_t ok, failed;
        char first[256];
} DecryptResult;

typedef struct DecryptJob {
        const Kept *kept;
        const size_t *which;
        size_t n;
        DecryptResult *result; /* shared with the child */
} DecryptJob;

/* In a child that became the member: libdkm, as a service would use it (archived generations
 * outside the hot window come through the request-key upcall). */
static void decrypt_as_member(void *userdata) {
        DecryptJob *job = userdata;

        for (size_t i = 0; i < job->n; i++) {
                const Kept *k = &job->kept[job->which[i]];
                uint8_t pt[sizeof(k->plaintext)];
                size_t pt_size = 0;
                int r = dkm_decrypt(k->ct, k->ct_size, NULL, 0, pt, sizeof(pt), &pt_size);

                if (r >= 0 && pt_size == strlen(k->plaintext) && memcmp(pt, k->plaintext, pt_size) == 0) {
                        job->result->ok++;
                        continue;
                }
                if (job->result->failed++ == 0)
                        snprintf(job->result->first, sizeof(job->result->first),
                                 "ciphertext of iteration %u under generation %u: %s", k->iteration, k->generation,
                                 r < 0 ? dkm_strerror(r) : "other plaintext");
        }
        dkm_cleanup();
}

static DecryptResult *decrypt_result;

/* Decrypt kept[which[...]] as the member; how many were checked. */
static size_t decrypt_check(const Kept *kept, const size_t *which, size_t n, char *ret_error, size_t error_size) {
        TestCreds member = test_creds_member();
        DecryptJob job = { .kept = kept, .which = which, .n = n };
        int status;

        if (!decrypt_result)
                decrypt_result = test_shared_new(sizeof(*decrypt_result));
        memset(decrypt_result, 0, sizeof(*decrypt_result));
        job.result = decrypt_result;
        status = test_wait(test_fork_as(&member, decrypt_as_member, &job));
        if (status != 0)
                snprintf(ret_error, error_size, "the decrypting child failed: status %d", status);
        else if (decrypt_result->failed > 0 || decrypt_result->ok != n)
                snprintf(ret_error, error_size, "%zu of %zu ciphertexts failed; first: %s", decrypt_result->failed, n,
                         decrypt_result->first);
        else
                ret_error[0] = 0;
        return n;
}

/* ---- the audit log ---- */

static void audit_dir_of(const char *state_dir, char *buf, size_t size) {
        snprintf(buf, size, "%s/audit", state_dir);
}

/* The path of the newest audit-NNNNNN.log in dir. */
static bool newest_audit_file(const char *dir, char *buf, size_t size) {
        _cleanup_(closedirp) DIR *d = opendir(dir);
        char best[NAME_MAX + 1] = "";
        struct dirent *de;

        if (!d)
                return false;
        while ((de = readdir(d)))
                if (strncmp(de->d_name, "audit-", 6) == 0 && strlen(de->d_name) == 16 &&
                    strcmp(de->d_name + 12, ".log") == 0 && strcmp(de->d_name, best) > 0)
                        snprintf(best, sizeof(best), "%s", de->d_name);
        if (!best[0])
                return false;
        snprintf(buf, size, "%s/%s", dir, best);
        return true;
}

/* Does the newest log file end in the middle of a line (a write cut short by the kill)? */
static bool audit_tail_torn(const char *dir) {
        char path[256], c = '\n';
        _cleanup_close_ int fd = -EBADF;
        struct stat st;

        if (!newest_audit_file(dir, path, sizeof(path)))
                return false;
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &st) < 0 || st.st_size == 0)
                return false;
        return pread(fd, &c, 1, st.st_size - 1) == 1 && c != '\n';
}

static off_t newest_audit_size(const char *dir) {
        char path[256];
        struct stat st;

        ck_assert(newest_audit_file(dir, path, sizeof(path)));
        ck_assert_int_eq(stat(path, &st), 0);
        return st.st_size;
}

/* The process is stopped (SIGSTOP taken): no write() of it is half done. */
static void wait_stopped(pid_t pid) {
        char path[64], buf[512], *p;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
        for (int i = 0; i < 2000; i++) {
                FILE *f = fopen(path, "re");
                size_t n;

                ck_assert_ptr_nonnull(f);
                n = fread(buf, 1, sizeof(buf) - 1, f);
                fclose(f);
                buf[n] = 0;
                p = strrchr(buf, ')');
                if (p && p[1] && (p[2] == 'T' || p[2] == 't'))
                        return;
                usleep(1000);
        }
        ck_abort_msg("dkmd did not stop");
}

/* audit_verify() on a log dkmd is appending to: with dkmd stopped, so no record is half written
 * (a reader may see a write() in progress). 0, or the error in rep. */
static int verify_audit_quiet(const char *dir, AuditReport *rep) {
        pid_t pid = test_dkmd_pid();
        int r;

        if (pid > 0) {
                ck_assert_int_eq(kill(pid, SIGSTOP), 0);
                wait_stopped(pid);
        }
        memset(rep, 0, sizeof(*rep));
        r = audit_verify(dir, NULL, rep);
        if (pid > 0)
                ck_assert_int_eq(kill(pid, SIGCONT), 0);
        return r;
}

/* The event records after seq `after`, in order (checkpoints skipped). */
static size_t audit_events_after(const char *dir, uint64_t after, AuditEntry *out, size_t max) {
        _cleanup_(audit_reader_freep) AuditReader *r = NULL;
        const AuditEntry *e;
        size_t n = 0;
        int k;

        ck_assert_int_eq(audit_reader_new(dir, NULL, &r), 0);
        while ((k = audit_reader_next(r, &e)) > 0)
                if (e->seq > after && n < max)
                        out[n++] = *e;
        ck_assert_msg(k == 0, "reading %s: %s", dir, audit_reader_error(r) ?: strerror(-k));
        return n;
}

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

static size_t audit_count_event(const char *dir, const char *event) {
        _cleanup_(audit_reader_freep) AuditReader *r = NULL;
        const AuditFilter f = { .event = event };
        const AuditEntry *e;
        size_t n = 0;
        int k;

        ck_assert_int_eq(audit_reader_new(dir, &f, &r), 0);
        while ((k = audit_reader_next(r, &e)) > 0)
                n++;
        ck_assert_msg(k == 0, "reading %s: %s", dir, audit_reader_error(r) ?: strerror(-k));
        return n;
}

/* ---- dkmd's children and logs ---- */

/* Children of pid whose command is the keyring helper; how many (at most max). */
static size_t helper_children(pid_t parent, pid_t *out, size_t max) {
        _cleanup_(closedirp) DIR *d = opendir("/proc");
        struct dirent *de;
        size_t n = 0;

        ck_assert_ptr_nonnull(d);
        while ((de = readdir(d)) && n < max) {
                char path[64], buf[512], *p;
                long pid = strtol(de->d_name, &p, 10), ppid;
                FILE *f;
                size_t k;

                if (pid <= 0 || *p)
                        continue;
                snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
                if (!(f = fopen(path, "re")))
                        continue;
                k = fread(buf, 1, sizeof(buf) - 1, f);
                fclose(f);
                buf[k] = 0;
                /* "pid (comm) S ppid ...": comm may hold anything, so from the last ')'. */
                p = strrchr(buf, ')');
                if (!p || sscanf(p + 1, " %*c %ld", &ppid) != 1 || ppid != (long) parent)
                        continue;
                if (strstr(buf, "(dkm-keyring-hel"))
                        out[n++] = (pid_t) pid;
        }
        return n;
}

/* dkmd's orphans: the test process is their subreaper (set at the start), so a helper that
 * outlives the dkmd that started it becomes our child. Wait for each to finish, as it would under
 * systemd (which kills them with the unit; finishing is the other outcome, and the one that could
 * race with the restarted dkmd's own load outside systemd). How many there were. */
static size_t reap_orphan_helpers(void) {
        pid_t pids[16];
        size_t n = helper_children(getpid(), pids, ELEMENTSOF(pids));

        for (size_t i = 0; i < n; i++)
                (void) test_wait(pids[i]);
        return n;
}

/* A power cut in the middle of an append leaves a prefix of its write(): the newest log file
 * ends inside its last line. (A SIGKILL does that only rarely: a write() can stop between two
 * pages of the page cache, so only an append across a page boundary can be cut.) */
static void tear_audit_tail(const char *dir) {
        char path[256], buf[4096];
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        off_t from, start;
        ssize_t n;

        ck_assert(newest_audit_file(dir, path, sizeof(path)));
        fd = open(path, O_RDWR | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(fstat(fd, &st), 0);
        from = st.st_size > (off_t) sizeof(buf) ? st.st_size - (off_t) sizeof(buf) : 0;
        n = pread(fd, buf, (size_t) (st.st_size - from), from);
        ck_assert_int_eq(n, st.st_size - from);
        ck_assert(n >= 2 && buf[n - 1] == '\n');
        start = n - 2;
        while (start > 0 && buf[start - 1] != '\n')
                start--;
        /* Keep 1 .. len-1 bytes of the last line (its newline is the last byte). */
        ck_assert_int_eq(ftruncate(fd, from + start + 1 + (off_t) rnd_below((unsigned) (n - start - 1))), 0);
        ck_assert_int_eq(fsync(fd), 0);
}

static size_t audit_count_scheduled(const char *dir) {
        _cleanup_(audit_reader_freep) AuditReader *r = NULL;
        const AuditFilter f = { .event = "rollover" };
        const AuditEntry *e;
        size_t n = 0;
        int k;

        ck_assert_int_eq(audit_reader_new(dir, &f, &r), 0);
        while ((k = audit_reader_next(r, &e)) > 0)
                n += e->outcome == AUDIT_OUTCOME_OK && strcmp(e->detail, "scheduled") == 0;
        ck_assert_msg(k == 0, "reading %s: %s", dir, audit_reader_error(r) ?: strerror(-k));
        return n;
}

static char history_log[160];

/* Stop dkmd (SIGKILL when hard), its log going to history_log rather than the test's stderr:
 * hundreds of restarts would bury a failure's messages. */
static int dkmd_stop_quiet(bool hard) {
        int saved = dup(STDERR_FILENO), fd, status;

        snprintf(history_log, sizeof(history_log), "%s/dkmd-previous.log", TW.dir);
        fd = open(history_log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        ck_assert_int_ge(saved, 0);
        ck_assert_int_ge(fd, 0);
        fflush(stderr);
        ck_assert_int_ge(dup2(fd, STDERR_FILENO), 0);
        status = test_dkmd_stop(hard);
        fflush(stderr);
        ck_assert_int_ge(dup2(saved, STDERR_FILENO), 0);
        close(saved);
        close(fd);
        return status;
}

static void dump_file(const char *title, const char *path) {
        char line[512];
        FILE *f = fopen(path, "re");

        if (!f)
                return;
        fprintf(stderr, "---- %s (%s) ----\n", title, path);
        while (fgets(line, sizeof(line), f))
                fputs(line, stderr);
        fclose(f);
}

/* A failed check: the logs of the killed dkmd and of the restarted one, then the failure. */
_printf_(1, 2) static void crash_fail(const char *fmt, ...) {
        char msg[1024];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        if (history_log[0])
                dump_file("the killed dkmd's log", history_log);
        dump_file("the restarted dkmd's log", test_dkmd_log());
        ck_abort_msg("%s", msg);
}

#define crash_check(cond, ...)                                                                                         \
        do {                                                                                                           \
                if (!(cond))                                                                                           \
                        crash_fail(__VA_ARGS__);                                                                       \
        } while (0)

static bool file_contains(const char *path, const char *needle) {
        char line[1024];
        bool found = false;
        FILE *f = fopen(path, "re");

        if (!f)
                return false;
        while (!found && fgets(line, sizeof(line), f))
                found = strstr(line, needle) != NULL;
        fclose(f);
        return found;
}

/* ---- the storm: what the drivers were told, shared with the test ---- */

enum { POL_HOT, POL_PERIOD, POL_DELAY, POL_LEVELS, _POL_MAX };
#define POL_VALUES 4
static const char *const pol_names[_POL_MAX] = { "HotWindow", "RolloverPeriodUSec", "PropagationDelayUSec",
                                                 "ApprovalGroups" };
/* The values each policy key takes; POL_LEVELS: 2 = appr1, appr2; 1 = appr1 only. */
static const uint64_t pol_values[_POL_MAX][POL_VALUES] = {
        { 2, 8, 30, 62 },
        { 0, USEC, 0, USEC },
        { 0, USEC, 0, USEC },
        { 2, 1, 2, 1 },
};

enum {
        REQ_CANCELLED = 1 << 0, /* the requester's Cancel was acknowledged */
        REQ_DENIED = 1 << 1,    /* an approver's Deny was acknowledged */
        REQ_APPROVED1 = 1 << 2, /* approver1's Approve was acknowledged */
        REQ_GRANTED = 1 << 3,   /* approver2's Approve (the last level) was acknowledged */
        REQ_SEEN1 = 1 << 4,     /* approver1 acted on it */
        REQ_SEEN2 = 1 << 5,     /* approver2 acted on it */
};

typedef struct Req {
        uint64_t id;
        unsigned iteration, seq;
        uint32_t flags;
} Req;

typedef struct Shared {
        unsigned iteration;
        const char *group, *group_path;
        uint64_t calls, mutations;       /* mutating calls made; acknowledged */
        uint32_t max_rollover;           /* the highest generation a Rollover reply named */
        uint32_t pol_possible[_POL_MAX]; /* bit i: the store may hold pol_values[key][i] */
        uint32_t n_archived;             /* Archive calls acknowledged this iteration */
        uint32_t archived[MAX_ARCHIVES];
        uint32_t n_req;
        Req req[MAX_REQS];
} Shared;

static Shared *sh;

static void count_call(bool acked) {
        __atomic_add_fetch(&sh->calls, 1, __ATOMIC_SEQ_CST);
        if (acked)
                __atomic_add_fetch(&sh->mutations, 1, __ATOMIC_SEQ_CST);
}

static int set_policy(sd_bus *bus, const char *path, unsigned key, unsigned idx, sd_bus_error *e) {
        uint64_t v = pol_values[key][idx];

        switch (key) {
        case POL_HOT:
                return sd_bus_call_method(bus, SVC, path, GROUP_IFACE, "SetPolicy", e, NULL, "a{sv}", 1, pol_names[key],
                                          "u", (uint32_t) v);
        case POL_LEVELS:
                if (v == 2)
                        return sd_bus_call_method(bus, SVC, path, GROUP_IFACE, "SetPolicy", e, NULL, "a{sv}", 1,
                                                  pol_names[key], "as", 2, TW.appr1, TW.appr2);
                return sd_bus_call_method(bus, SVC, path, GROUP_IFACE, "SetPolicy", e, NULL, "a{sv}", 1, pol_names[key],
                                          "as", 1, TW.appr1);
        default:
                return sd_bus_call_method(bus, SVC, path, GROUP_IFACE, "SetPolicy", e, NULL, "a{sv}", 1, pol_names[key],
                                          "t", v);
        }
}

/* The admin (root): Rollover, Archive of a pending generation, SetPolicy, as fast as dkmd answers. */
static void drive_admin(void *userdata) {
        pid_t parent = *(pid_t *) userdata;
        sd_bus *bus = NULL;

        die_with_parent(parent);
        rng_state ^= (uint64_t) getpid() << 17;
        if (sd_bus_open_system(&bus) < 0)
                _exit(80);
        for (;;) {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                unsigned op = rnd_below(100);
                uint32_t number;
                int r;

                if (op < 35) {
                        r = sd_bus_call_method(bus, SVC, sh->group_path, GROUP_IFACE, "Rollover", &e, &reply, NULL);
                        if (r >= 0 && sd_bus_message_read(reply, "u", &number) > 0) {
                                uint32_t m = __atomic_load_n(&sh->max_rollover, __ATOMIC_SEQ_CST);
                                while (number > m && !__atomic_compare_exchange_n(&sh->max_rollover, &m, number, false,
                                                                                  __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
                                        ;
                        }
                } else if (op < 50) {
                        number = 0;
                        r = sd_bus_get_property_trivial(bus, SVC, sh->group_path, GROUP_IFACE, "PendingGeneration", &e,
                                                        'u', &number);
                        if (r < 0 || number == 0) {
                                if (r < 0 && is_transport_error(&e))
                                        sleep_ms(2);
                                continue;
                        }
                        r = sd_bus_call_method(bus, SVC, sh->group_path, GROUP_IFACE, "Archive", &e, NULL, "u", number);
                        if (r >= 0 && sh->n_archived < MAX_ARCHIVES)
                                sh->archived[sh->n_archived++] = number;
                } else {
                        unsigned key = rnd_below(_POL_MAX), idx = rnd_below(POL_VALUES);

                        /* In flight, it may land whatever the reply; acknowledged, it is the value. */
                        __atomic_or_fetch(&sh->pol_possible[key], 1U << idx, __ATOMIC_SEQ_CST);
                        r = set_policy(bus, sh->group_path, key, idx, &e);
                        if (r >= 0) {
                                uint32_t same = 0;
                                for (unsigned i = 0; i < POL_VALUES; i++)
                                        if (pol_values[key][i] == pol_values[key][idx])
                                                same |= 1U << i;
                                __atomic_store_n(&sh->pol_possible[key], same, __ATOMIC_SEQ_CST);
                        }
                }
                count_call(r >= 0);
                if (r < 0 && is_transport_error(&e))
                        sleep_ms(2);
        }
}

/* The person (not a member): RequestAccess with a unique justification, sometimes Cancel. */
static void drive_person(void *userdata) {
        pid_t parent = *(pid_t *) userdata;
        sd_bus *bus = NULL;
        unsigned seq = 0;

        die_with_parent(parent);
        rng_state ^= (uint64_t) getpid() << 23;
        if (sd_bus_open_system(&bus) < 0)
                _exit(80);
        for (;;) {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                char why[64];
                const char *path;
                uint32_t n;
                int r;

                seq++;
                snprintf(why, sizeof(why), "crash i%u r%u", sh->iteration, seq);
                r = sd_bus_call_method(bus, SVC, MGR_PATH, MGR_IFACE, "RequestAccess", &e, &reply, "sst", sh->group,
                                       why, (uint64_t) USEC);
                count_call(r >= 0);
                if (r < 0) {
                        /* Requests end within a second (deadline, or the grant's end). */
                        if (sd_bus_error_has_name(&e, E_TOO_MANY_REQUESTS))
                                sleep_ms(50);
                        else if (is_transport_error(&e))
                                sleep_ms(2);
                        continue;
                }
                if (sd_bus_message_read(reply, "o", &path) <= 0 || (n = sh->n_req) >= MAX_REQS)
                        continue;
                sh->req[n] = (Req){ .id = request_id_of(path), .iteration = sh->iteration, .seq = seq };
                __atomic_store_n(&sh->n_req, n + 1, __ATOMIC_SEQ_CST);
                if (rnd_below(100) < 30) {
                        _cleanup_(sd_bus_error_free) sd_bus_error e2 = SD_BUS_ERROR_NULL;
                        r = sd_bus_call_method(bus, SVC, path, REQUEST_IFACE, "Cancel", &e2, NULL, NULL);
                        if (r >= 0)
                                __atomic_or_fetch(&sh->req[n].flags, REQ_CANCELLED, __ATOMIC_SEQ_CST);
                        count_call(r >= 0);
                }
        }
}

/* An approver: approver1 approves level 1 (or denies), approver2 the last level (or denies). */
static void drive_approver(unsigned level, pid_t parent) {
        uint32_t seen = level == 1 ? REQ_SEEN1 : REQ_SEEN2;
        sd_bus *bus = NULL;
        uint32_t from = sh->n_req;

        die_with_parent(parent);
        rng_state ^= (uint64_t) getpid() << (level == 1 ? 29 : 31);
        if (sd_bus_open_system(&bus) < 0)
                _exit(80);
        for (;;) {
                uint32_t n = __atomic_load_n(&sh->n_req, __ATOMIC_SEQ_CST);
                bool acted = false;

                for (uint32_t i = from; i < n; i++) {
                        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                        Req *q = &sh->req[i];
                        uint32_t flags = __atomic_load_n(&q->flags, __ATOMIC_SEQ_CST);
                        bool deny = rnd_below(100) < (level == 1 ? 20 : 50);
                        uint32_t done = deny ? REQ_DENIED : level == 1 ? REQ_APPROVED1 : REQ_GRANTED;
                        char path[96];
                        int r;

                        if ((flags & seen) || (level == 2 && !(flags & REQ_APPROVED1)))
                                continue;
                        __atomic_or_fetch(&q->flags, seen, __ATOMIC_SEQ_CST);
                        snprintf(path, sizeof(path), REQUEST_PREFIX "%" PRIu64, q->id);
                        if (deny)
                                r = sd_bus_call_method(bus, SVC, path, REQUEST_IFACE, "Deny", &e, NULL, "s",
                                                       "no ticket");
                        else
                                r = sd_bus_call_method(bus, SVC, path, REQUEST_IFACE, "Approve", &e, NULL, NULL);
                        count_call(r >= 0);
                        if (r >= 0)
                                __atomic_or_fetch(&q->flags, done, __ATOMIC_SEQ_CST);
                        else if (is_transport_error(&e))
                                sleep_ms(2);
                        acted = true;
                }
                if (!acted)
                        sleep_ms(1);
        }
}

static void drive_approver1(void *userdata) {
        drive_approver(1, *(pid_t *) userdata);
}

static void drive_approver2(void *userdata) {
        drive_approver(2, *(pid_t *) userdata);
}

/* ---- checks after a restart ---- */

typedef struct Listed {
        uint64_t id;
        char state[16];
        uint32_t requester;
        char justification[64];
        uint64_t expires;
} Listed;

static size_t list_requests(sd_bus *bus, Listed *out, size_t max) {
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
                ck_assert_uint_eq(request_id_of(path), id);
                if (n < max) {
                        out[n] = (Listed){ .id = id, .requester = requester, .expires = expires };
                        snprintf(out[n].state, sizeof(out[n].state), "%s", state);
                        snprintf(out[n].justification, sizeof(out[n].justification), "%s", justification);
                }
                n++;
        }
        ck_assert_int_ge(r, 0);
        ck_assert_uint_le(n, max);
        return n;
}

/* What a request file says (docs: "<id>.request", key=value lines, a checksum last). */
typedef struct FileReq {
        uint64_t id;
        char state[16];
        uint32_t requester;
        char justification[64];
        uint64_t deadline, expires;
        size_t approvals;
} FileReq;

static int compare_file_req(const void *a, const void *b) {
        const FileReq *x = a, *y = b;

        return x->id < y->id ? -1 : x->id > y->id;
}

static const char *kv(const char *text, const char *key) {
        size_t l = strlen(key);

        for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
                if (strncmp(p, key, l) == 0 && p[l] == '=')
                        return p + l + 1;
        return NULL;
}

static void kv_copy(const char *text, const char *key, char *buf, size_t size) {
        const char *v = kv(text, key);
        size_t n = v ? strcspn(v, "\n") : 0;

        snprintf(buf, size, "%.*s", (int) n, v ? v : "");
}

/* Every <id>.request file of state_dir, by id (at most max); stale temporary files counted. */
static size_t read_request_files(const char *state_dir, FileReq *out, size_t max, size_t *ret_temp) {
        _cleanup_(closedirp) DIR *d = NULL;
        _cleanup_close_ int dfd = -EBADF;
        char dir[200];
        struct dirent *de;
        size_t n = 0, temp = 0;

        snprintf(dir, sizeof(dir), "%s/requests", state_dir);
        d = opendir(dir);
        ck_assert_ptr_nonnull(d);
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        ck_assert_int_ge(dfd, 0);
        while ((de = readdir(d))) {
                size_t l = strlen(de->d_name);
                _cleanup_free_ char *text = NULL;
                _cleanup_close_ int fd = -EBADF;
                char buf[32] = "";
                struct stat st;
                FileReq *q;

                if (de->d_name[0] == '.') {
                        temp += l > 6 && strncmp(de->d_name, ".#", 2) == 0;
                        continue;
                }
                if (l <= 8 || strcmp(de->d_name + l - 8, ".request") != 0)
                        continue;
                ck_assert_uint_lt(n, max);
                fd = openat(dfd, de->d_name, O_RDONLY | O_CLOEXEC);
                if (fd < 0 && errno == ENOENT)
                        continue; /* pruned by dkmd meanwhile */
                ck_assert_int_ge(fd, 0);
                ck_assert_int_eq(fstat(fd, &st), 0);
                text = calloc(1, (size_t) st.st_size + 1);
                ck_assert_ptr_nonnull(text);
                ck_assert_int_eq(read(fd, text, (size_t) st.st_size), st.st_size);
                q = &out[n++];
                *q = (FileReq){ .id = strtoull(de->d_name, NULL, 10) };
                kv_copy(text, "state", q->state, sizeof(q->state));
                kv_copy(text, "justification", q->justification, sizeof(q->justification));
                kv_copy(text, "requester", buf, sizeof(buf));
                q->requester = (uint32_t) strtoul(buf, NULL, 10);
                kv_copy(text, "deadline-usec", buf, sizeof(buf));
                q->deadline = strtoull(buf, NULL, 10);
                kv_copy(text, "expires-usec", buf, sizeof(buf));
                q->expires = strtoull(buf, NULL, 10);
                /* "approvals=UID USEC UID USEC ...": pairs */
                {
                        char line[512];
                        size_t words = 0;

                        kv_copy(text, "approvals", line, sizeof(line));
                        for (char *w = strtok(line, " "); w; w = strtok(NULL, " "))
                                words++;
                        q->approvals = words / 2;
                }
                ck_assert_msg(q->id > 0 && q->state[0] && kv(text, "checksum"), "request file %s: '%s'", de->d_name,
                              text);
        }
        qsort(out, n, sizeof(*out), compare_file_req);
        if (ret_temp)
                *ret_temp = temp;
        return n;
}

static const Listed *find_listed(const Listed *l, size_t n, uint64_t id) {
        for (size_t i = 0; i < n; i++)
                if (l[i].id == id)
                        return &l[i];
        return NULL;
}

static const FileReq *find_file(const FileReq *f, size_t n, uint64_t id) {
        size_t lo = 0, hi = n;

        while (lo < hi) {
                size_t mid = (lo + hi) / 2;
                if (f[mid].id == id)
                        return &f[mid];
                if (f[mid].id < id)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return NULL;
}

static bool state_in(const char *state, const char *const *set) {
        for (; *set; set++)
                if (strcmp(state, *set) == 0)
                        return true;
        return false;
}

static bool state_open(const char *state) {
        return strcmp(state, "pending") == 0 || strcmp(state, "granted") == 0;
}

#define CLOSED_LISTED_MAX 256U /* DBUS-API.md: ListRequests lists the newest 256 closed requests */

/* What dkmd lists against the files: every open request and the newest closed ones are listed,
 * in the state of their file; an empty string, or what is wrong. */
static void compare_listed_files(const Listed *l, size_t n, const FileReq *f, size_t n_files, char *what, size_t size) {
        size_t closed_files = 0, closed_listed = 0;
        uint64_t oldest_closed_listed = UINT64_MAX;

        what[0] = 0;
        for (size_t i = 0; i < n; i++) {
                const FileReq *q = find_file(f, n_files, l[i].id);

                if (i > 0 && l[i - 1].id >= l[i].id) {
                        snprintf(what, size, "ListRequests out of order at %" PRIu64, l[i].id);
                        return;
                }
                if (!q || strcmp(q->state, l[i].state) != 0) {
                        snprintf(what, size, "request %" PRIu64 " listed %s, its file %s", l[i].id, l[i].state,
                                 q ? q->state : "missing");
                        return;
                }
                if (!state_open(l[i].state)) {
                        closed_listed++;
                        if (l[i].id < oldest_closed_listed)
                                oldest_closed_listed = l[i].id;
                }
        }
        for (size_t i = 0; i < n_files; i++) {
                bool listed = find_listed(l, n, f[i].id) != NULL;

                if (state_open(f[i].state)) {
                        if (!listed) {
                                snprintf(what, size, "open request %" PRIu64 " (%s) not listed", f[i].id, f[i].state);
                                return;
                        }
                        continue;
                }
                closed_files++;
                if (!listed && f[i].id > oldest_closed_listed) {
                        snprintf(what, size, "closed request %" PRIu64 " not listed, an older one is", f[i].id);
                        return;
                }
        }
        if (closed_listed != MIN(closed_files, CLOSED_LISTED_MAX))
                snprintf(what, size, "%zu closed requests listed of %zu files", closed_listed, closed_files);
}

/* Every request file loads, no request is stuck where dkmd should have moved it, and every
 * acknowledged step of the drivers is in its file (the durable truth; dkmd writes it before it
 * answers) in the state it left. */
static void check_requests(sd_bus *bus, const char *state_dir) {
        static const char *const valid[] = { "pending", "granted", "denied", "cancelled", "expired",
                                             "ended",   "revoked", "done",   "failed",    NULL };
        static Listed listed[MAX_REQS + 64];
        static FileReq files[MAX_REQS + 64];
        size_t n = 0, n_files = 0;
        char what[256] = "stuck";

        /* dkmd's schedule may close a request between the listing and the reading of the files,
         * and closes what ran out while it was down just after its start: a few tries. */
        for (int attempt = 0; attempt < 40 && what[0]; attempt++) {
                uint64_t now;

                if (attempt > 0)
                        sleep_ms(100);
                n = list_requests(bus, listed, ELEMENTSOF(listed));
                n_files = read_request_files(state_dir, files, ELEMENTSOF(files), NULL);
                now = now_usec();
                compare_listed_files(listed, n, files, n_files, what, sizeof(what));
                for (size_t i = 0; i < n_files && !what[0]; i++) {
                        crash_check(state_in(files[i].state, valid), "request %" PRIu64 " in state '%s'", files[i].id,
                                    files[i].state);
                        /* A grant past its end, or a request past its deadline, is dkmd's to close. */
                        if ((strcmp(files[i].state, "granted") == 0 && files[i].expires + USEC < now) ||
                            (strcmp(files[i].state, "pending") == 0 && files[i].deadline + USEC < now))
                                snprintf(what, sizeof(what), "request %" PRIu64 " %s past its time", files[i].id,
                                         files[i].state);
                }
        }
        crash_check(!what[0], "requests: %s", what);
        crash_check(!file_contains(test_dkmd_log(), "damaged request"), "dkmd ignored a damaged request file");

        for (uint32_t i = 0; i < sh->n_req; i++) {
                const Req *q = &sh->req[i];
                const FileReq *f = find_file(files, n_files, q->id);
                char want[64];

                crash_check(f, "acknowledged request %" PRIu64 " (iteration %u) is gone", q->id, q->iteration);
                snprintf(want, sizeof(want), "crash i%u r%u", q->iteration, q->seq);
                crash_check(strcmp(f->justification, want) == 0 && f->requester == TW.person_uid,
                            "request %" PRIu64 " is '%s' by uid %u, acknowledged as '%s' by uid %u", q->id,
                            f->justification, (unsigned) f->requester, want, (unsigned) TW.person_uid);
                if (q->flags & REQ_CANCELLED)
                        crash_check(strcmp(f->state, "cancelled") == 0, "request %" PRIu64 ": cancel acknowledged, %s",
                                    q->id, f->state);
                if (q->flags & REQ_DENIED)
                        crash_check(strcmp(f->state, "denied") == 0, "request %" PRIu64 ": denial acknowledged, %s",
                                    q->id, f->state);
                if (q->flags & REQ_GRANTED)
                        crash_check(state_in(f->state, (const char *const[]){ "granted", "ended", NULL }),
                                    "request %" PRIu64 ": grant acknowledged, %s", q->id, f->state);
                if (q->flags & REQ_APPROVED1)
                        crash_check(f->approvals >= 1 || strcmp(f->state, "pending") != 0,
                                    "request %" PRIu64 ": approval acknowledged, none recorded", q->id);
        }
}

/* The store (dkmd's properties) and the kernel (the helper's status) name the same active
 * generation. A step in progress changes the store a moment before the kernel: read the store
 * before and after, and retry while it moves. */
static uint32_t check_kernel_matches_store(sd_bus *bus, const char *group, const char *path) {
        uint32_t before = 0, after = 0;
        long kernel = -1;

        for (int attempt = 0; attempt < 60; attempt++) {
                if (attempt > 0)
                        sleep_ms(50);
                before = get_u(bus, path, "ActiveGeneration");
                kernel = test_helper_status_value(group, "active ");
                after = get_u(bus, path, "ActiveGeneration");
                if (before == after && kernel == (long) after)
                        return after;
        }
        crash_fail("the kernel's active generation is %ld, the store's %u (then %u)", kernel, before, after);
        return 0;
}

/* The store holds every generation a Rollover reply named, exactly one active (the property's),
 * at most one pending, every acknowledged Archive archived. The schedule may take a step meanwhile
 * (a pending generation's delay ends): ActiveGeneration read before and after the list must agree. */
static void check_generations(sd_bus *bus, const char *path) {
        static Gen gens[1 << 16];
        size_t n = 0, n_active = 0, n_pending = 0;
        uint32_t before = 0, after = 1;

        for (int attempt = 0; attempt < 20 && before != after; attempt++) {
                before = get_u(bus, path, "ActiveGeneration");
                n = get_generations(bus, path, gens, ELEMENTSOF(gens));
                after = get_u(bus, path, "ActiveGeneration");
        }
        crash_check(before == after, "ActiveGeneration keeps moving: %u, then %u", before, after);
        crash_check(n > 0 && n < ELEMENTSOF(gens), "%zu generations", n);
        for (size_t i = 0; i < n; i++) {
                crash_check(gens[i].number == i + 1, "generation %u listed at %zu", gens[i].number, i);
                n_active += strcmp(gens[i].state, "active") == 0;
                n_pending += strcmp(gens[i].state, "pending") == 0;
                crash_check(strcmp(gens[i].state, "retired") != 0, "generation %u retired", gens[i].number);
                if (strcmp(gens[i].state, "active") == 0)
                        crash_check(gens[i].number == after, "generation %u active, ActiveGeneration %u",
                                    gens[i].number, after);
        }
        crash_check(n_active == 1 && n_pending <= 1, "%zu active and %zu pending generations", n_active, n_pending);
        crash_check(gens[n - 1].number >= sh->max_rollover, "generation %u acknowledged, the last is %u",
                    sh->max_rollover, gens[n - 1].number);
        for (uint32_t i = 0; i < sh->n_archived; i++) {
                uint32_t g = sh->archived[i];
                crash_check(g >= 1 && g <= n && strcmp(gens[g - 1].state, "archived") == 0,
                            "archive of generation %u acknowledged, it is %s", g,
                            g >= 1 && g <= n ? gens[g - 1].state : "absent");
        }
}

/* Each policy key holds a value it was acknowledged with, or the one in flight at the kill. */
static void check_policy(sd_bus *bus, const char *path) {
        uint64_t actual[_POL_MAX] = {
                [POL_HOT] = get_u(bus, path, "HotWindow"),
                [POL_PERIOD] = get_t(bus, path, GROUP_IFACE, "RolloverPeriodUSec"),
                [POL_DELAY] = get_t(bus, path, GROUP_IFACE, "PropagationDelayUSec"),
                [POL_LEVELS] = get_approval_levels(bus, path),
        };

        for (unsigned k = 0; k < _POL_MAX; k++) {
                uint32_t bits = 0;

                for (unsigned i = 0; i < POL_VALUES; i++)
                        if (pol_values[k][i] == actual[k])
                                bits |= 1U << i;
                crash_check(bits & sh->pol_possible[k], "%s is %" PRIu64 ", neither acknowledged nor in flight",
                            pol_names[k], actual[k]);
                sh->pol_possible[k] = bits;
        }
}

/* The request records of one id, for the log of the test. */
static void print_request_records(const char *dir, const char *prefix, uint64_t id) {
        _cleanup_(audit_reader_freep) AuditReader *r = NULL;
        const AuditEntry *e;
        char object[200];
        int k;

        snprintf(object, sizeof(object), "%s%" PRIu64, prefix, id);
        ck_assert_int_eq(audit_reader_new(dir, &(AuditFilter){ .object = object, .event = "request" }, &r), 0);
        while ((k = audit_reader_next(r, &e)) > 0)
                if (strcmp(e->object, object) == 0)
                        fprintf(stderr, "crash: request id %" PRIu64 " recorded at seq %" PRIu64 ": %s: %s\n", id,
                                e->seq, audit_outcome_to_string(e->outcome), e->detail);
        ck_assert_msg(k == 0, "reading %s: %s", dir, audit_reader_error(r) ?: strerror(-k));
}

/* Audited before made, also across kills: every generation after the first has its rollover
 * record, every request its request record. A record whose change a kill prevented stays (AUDIT.md:
 * the record comes first); how many, and how many request ids were recorded for two requests (an id
 * audited, then lost with the kill before its file was written, is given again). */
static void audit_changes_check(const char *dir, const char *group, size_t n_generations, const FileReq *files,
                                size_t n_files, size_t *ret_unmade, size_t *ret_reused) {
        _cleanup_(audit_reader_freep) AuditReader *r = NULL;
        _cleanup_free_ uint64_t *ids = NULL;
        char object[128], prefix[160];
        size_t rollover_ok = 0, rollover_failed = 0, n_ids = 0, reused = 0;
        const AuditEntry *e;
        int k;

        snprintf(object, sizeof(object), "group/%s", group);
        snprintf(prefix, sizeof(prefix), "group/%s/request/", group);
        ids = calloc(MAX_REQS * 4, sizeof(uint64_t));
        ck_assert_ptr_nonnull(ids);
        ck_assert_int_eq(audit_reader_new(dir, &(AuditFilter){ .object = object }, &r), 0);
        while ((k = audit_reader_next(r, &e)) > 0) {
                if (strcmp(e->event, "rollover") == 0 && strcmp(e->object, object) == 0) {
                        rollover_ok += e->outcome == AUDIT_OUTCOME_OK;
                        rollover_failed += e->outcome == AUDIT_OUTCOME_FAILED;
                }
                if (strcmp(e->event, "request") == 0 && e->outcome == AUDIT_OUTCOME_OK &&
                    strncmp(e->object, prefix, strlen(prefix)) == 0 && n_ids < MAX_REQS * 4)
                        ids[n_ids++] = strtoull(e->object + strlen(prefix), NULL, 10);
        }
        ck_assert_msg(k == 0, "reading %s: %s", dir, audit_reader_error(r) ?: strerror(-k));
        ck_assert_msg(n_generations - 1 <= rollover_ok - rollover_failed,
                      "%zu generations were made, %zu rollovers recorded (%zu failed)", n_generations - 1, rollover_ok,
                      rollover_failed);
        for (size_t i = 0; i < n_files; i++) {
                bool found = false;
                for (size_t j = 0; j < n_ids && !found; j++)
                        found = ids[j] == files[i].id;
                ck_assert_msg(found, "request %" PRIu64 " has no request record", files[i].id);
        }
        for (size_t i = 0; i < n_ids; i++)
                for (size_t j = i + 1; j < n_ids; j++)
                        if (ids[i] == ids[j]) {
                                if (reused++ == 0)
                                        print_request_records(dir, prefix, ids[i]);
                                break;
                        }
        *ret_unmade = rollover_ok - rollover_failed - (n_generations - 1);
        *ret_reused = reused;
}

/* ---- the storm ---- */

typedef struct Stats {
        unsigned iterations, dkmd_kills, helper_kills, torn_tails, torn_made, orphan_helpers;
        uint64_t t_store_check, t_start, t_state, t_decrypt, t_audit; /* µs spent on each step */
        uint64_t ciphertexts_checked, cold_checked; /* cold: outside the hot window, through the upcall */
        size_t generations;                         /* with a kept ciphertext */
} Stats;

static unsigned iterations_wanted(void) {
        const char *s = getenv("DKM_CRASH_ITERATIONS");
        unsigned long n = s && *s ? strtoul(s, NULL, 10) : 200;

        ck_assert_msg(n > 0 && n < 100000, "DKM_CRASH_ITERATIONS=%s", s);
        return (unsigned) n;
}

START_TEST(test_kill_storm) {
        const char *g = test_key_group("crash");
        unsigned iterations = iterations_wanted();
        _cleanup_free_ char *gpath = NULL;
        static Kept kept[MAX_KEPT];
        static size_t which[MAX_KEPT];
        size_t n_kept = 0;
        uint64_t seed, started = mono_usec();
        uint32_t max_active = 0, max_ct_generation = 0;
        size_t n_generations, n_files, unmade, reused;
        char audit[200];
        bool generation_seen[1 << 16] = {};
        static FileReq end_files[MAX_REQS + 64];
        pid_t self = getpid();
        Stats st = {};

        seed = getenv("DKM_CRASH_SEED") ? strtoull(getenv("DKM_CRASH_SEED"), NULL, 0) : (uint64_t) now_usec();
        rng_state ^= seed;
        fprintf(stderr, "crash: %u iterations, seed %" PRIu64 " (DKM_CRASH_SEED)\n", iterations, seed);
        audit_dir_of(TW.state_dir, audit, sizeof(audit));

        sh = test_shared_new(sizeof(Shared));
        ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
        test_dkmd_start(NULL);
        {
                _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = test_bus_open();
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;

                ck_assert_int_ge(sd_bus_message_new_method_call(bus, &m, SVC, MGR_PATH, MGR_IFACE, "CreateGroup"), 0);
                ck_assert_int_ge(sd_bus_message_append(m, "su", g, (uint32_t) TW.gid), 0);
                ck_assert_int_ge(sd_bus_message_append(m, "a{sv}", 4, "ApprovalGroups", "as", 2, TW.appr1, TW.appr2,
                                                       "RequestTimeoutUSec", "t", USEC, "HotWindow", "u",
                                                       (uint32_t) pol_values[POL_HOT][0], "MaxGrantUSec", "t",
                                                       60 * USEC),
                                 0);
                ck_assert_msg(sd_bus_call(bus, m, 0, &e, &reply) >= 0, "CreateGroup: %s: %s", e.name ?: "",
                              e.message ?: "");
                gpath = group_path(bus, g);
        }
        sh->group = g;
        sh->group_path = gpath;
        sh->pol_possible[POL_HOT] = 1U << 0;
        sh->pol_possible[POL_PERIOD] = 1U << 0 | 1U << 2;
        sh->pol_possible[POL_DELAY] = 1U << 0 | 1U << 2;
        sh->pol_possible[POL_LEVELS] = 1U << 0 | 1U << 2;
        /* Archived generations outside the hot window come through the request-key upcall, as on
         * a host with the package installed: the kept ciphertexts span hundreds of generations. */
        ck_assert_msg(access("/sbin/request-key", X_OK) == 0, "/sbin/request-key (keyutils) is needed");
        ck_assert_msg(test_request_key_install(), "the helper has no request-key verb");

        for (unsigned it = 1; it <= iterations; it++) {
                _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
                pid_t drivers[4], helpers[8];
                uint64_t t0, t, kill_at, encrypt_at;
                bool kill_helpers = rnd_below(3) == 0;
                size_t n_helpers = 0, n;
                uint32_t active, hot;
                AuditReport rep;
                Kept k;
                char err[512];
                int r;

                sh->iteration = it;
                sh->n_archived = 0;
                drivers[0] = test_fork_as(NULL, drive_admin, &self);
                {
                        TestCreds person = test_creds_person(), a1 = test_creds_approver1(),
                                  a2 = test_creds_approver2();
                        drivers[1] = test_fork_as(&person, drive_person, &self);
                        drivers[2] = test_fork_as(&a1, drive_approver1, &self);
                        drivers[3] = test_fork_as(&a2, drive_approver2, &self);
                }

                /* The member encrypts at a random moment before the kill, with whatever is active. */
                t0 = mono_usec();
                kill_at = t0 + rnd_below(KILL_WINDOW_MS + 1) * 1000ULL;
                encrypt_at = t0 + (kill_at > t0 ? rnd() % (kill_at - t0 + 1) : 0);
                sleep_until_mono(encrypt_at);
                encrypt_as_member(g, it, &k);
                sleep_until_mono(kill_at);

                if (kill_helpers) {
                        /* The helper runs for a few ms per load: catch one in the act. */
                        for (int i = 0; i < 100 && n_helpers == 0; i++) {
                                n_helpers = helper_children(test_dkmd_pid(), helpers, ELEMENTSOF(helpers));
                                if (n_helpers == 0)
                                        usleep(500);
                        }
                        for (size_t i = 0; i < n_helpers; i++)
                                if (kill(helpers[i], SIGKILL) == 0)
                                        st.helper_kills++;
                }
                r = dkmd_stop_quiet(true);
                ck_assert_msg(WIFSIGNALED(r) && WTERMSIG(r) == SIGKILL, "dkmd ended with %d before the kill", r);
                st.dkmd_kills++;
                for (size_t i = 0; i < ELEMENTSOF(drivers); i++) {
                        (void) kill(drivers[i], SIGKILL);
                        (void) test_wait(drivers[i]);
                }
                st.orphan_helpers += reap_orphan_helpers();

                /* Keep the ciphertext: the last RECENT_KEPT, and the first of each generation for good. */
                crash_check(k.generation >= 1 && k.generation < ELEMENTSOF(generation_seen), "generation %u",
                            k.generation);
                if (!generation_seen[k.generation]) {
                        generation_seen[k.generation] = true;
                        st.generations++;
                        k.forever = true;
                }
                /* Drop the oldest recent one beyond RECENT_KEPT (kept-for-good ones stay). */
                {
                        size_t recent = 0, drop = SIZE_MAX;
                        for (size_t i = 0; i < n_kept; i++)
                                if (!kept[i].forever) {
                                        if (drop == SIZE_MAX)
                                                drop = i;
                                        recent++;
                                }
                        if (recent >= RECENT_KEPT && !k.forever && drop != SIZE_MAX) {
                                memmove(kept + drop, kept + drop + 1, (n_kept - drop - 1) * sizeof(Kept));
                                n_kept--;
                        }
                }
                ck_assert_uint_lt(n_kept, MAX_KEPT);
                kept[n_kept++] = k;
                if (k.generation > max_ct_generation)
                        max_ct_generation = k.generation;

                /* What the crash left, before anything repairs it. */
                st.torn_tails += audit_tail_torn(audit);
                if (it % 8 == 4) {
                        tear_audit_tail(audit);
                        st.torn_made++;
                }
                t = mono_usec();
                crash_check(test_store("check") == 0, "dkm-store check after the kill of iteration %u", it);
                st.t_store_check += mono_usec() - t;

                /* dkmd must start: the audit log may end in a partial record, which it repairs. */
                t = mono_usec();
                test_dkmd_start(NULL);
                st.t_start += mono_usec() - t;
                t = mono_usec();
                bus = test_bus_open();
                active = check_kernel_matches_store(bus, g, gpath);
                crash_check(active >= max_active && active >= max_ct_generation,
                            "active generation %u after the restart; %u was active before, %u encrypted", active,
                            max_active, max_ct_generation);
                max_active = active;
                check_generations(bus, gpath);
                check_policy(bus, gpath);
                check_requests(bus, TW.state_dir);
                st.t_state += mono_usec() - t;
                t = mono_usec();

                /* Every kept ciphertext, as the member: those of generations outside the hot window
                 * through the request-key upcall (a load drops what an upcall brought in). */
                hot = get_u(bus, gpath, "HotWindow");
                for (n = 0; n < n_kept; n++) {
                        which[n] = n;
                        st.cold_checked += kept[n].generation + hot < active;
                }
                st.ciphertexts_checked += decrypt_check(kept, which, n, err, sizeof(err));
                crash_check(!err[0], "iteration %u: %s", it, err);
                st.t_decrypt += mono_usec() - t;

                t = mono_usec();
                r = verify_audit_quiet(audit, &rep);
                st.t_audit += mono_usec() - t;
                crash_check(r == 0, "iteration %u: audit_verify: %d: %s", it, r, rep.error);
                st.iterations++;
                if (it % 20 == 0)
                        fprintf(stderr,
                                "crash: %u/%u iterations, %.1f s, %" PRIu64 " mutations acknowledged; seconds in "
                                "dkm-store check %.1f, restarts %.1f, state checks %.1f, decryption %.1f, audit "
                                "verify %.1f\n",
                                it, iterations, (double) (mono_usec() - started) / USEC, sh->mutations,
                                (double) st.t_store_check / USEC, (double) st.t_start / USEC,
                                (double) st.t_state / USEC, (double) st.t_decrypt / USEC, (double) st.t_audit / USEC);
        }
        {
                _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = test_bus_open();
                static Gen gens[1 << 16];

                n_generations = get_generations(bus, gpath, gens, ELEMENTSOF(gens));
                (void) dkmd_stop_quiet(false);
                n_files = read_request_files(TW.state_dir, end_files, ELEMENTSOF(end_files), NULL);
                audit_changes_check(audit, g, n_generations, end_files, n_files, &unmade, &reused);
        }
        {
                AuditReport rep = {};
                size_t temp = 0;

                ck_assert_int_eq(audit_verify(audit, NULL, &rep), 0);
                ck_assert(rep.closed);
                ck_assert_int_eq(test_store("check"), 0);
                (void) read_request_files(TW.state_dir, end_files, ELEMENTSOF(end_files), &temp);
                fprintf(stderr,
                        "crash: %u iterations in %.1f s (seed %" PRIu64 "): dkmd killed %u times, the helper %u times "
                        "(%u more outlived it), %" PRIu64 " mutations acknowledged of %" PRIu64 " calls, %zu "
                        "generations, %" PRIu32 " requests acknowledged, %" PRIu64 " ciphertext decryptions checked "
                        "(%" PRIu64 " of a generation outside the hot window; %zu kept, %zu generations), %zu "
                        "scheduled rollovers, audit: %" PRIu64 " records, %u torn "
                        "tails found after a kill and %u made, %zu audit-repair records, %zu rollovers recorded ok "
                        "but never made (killed in between), %zu request ids recorded twice, %zu stale temp files "
                        "in requests/\n",
                        st.iterations, (double) (mono_usec() - started) / USEC, seed, st.dkmd_kills, st.helper_kills,
                        st.orphan_helpers, sh->mutations, sh->calls, n_generations, sh->n_req, st.ciphertexts_checked,
                        st.cold_checked, n_kept, st.generations, audit_count_scheduled(audit), rep.records,
                        st.torn_tails, st.torn_made, audit_count_event(audit, "audit-repair"), unmade, reused, temp);
                ck_assert_uint_ge(audit_count_event(audit, "audit-repair"), st.torn_made);
                /* Request ids are spent before their record (requests/last-id): never given twice.
                 * A kill's leftover temporary files are removed at the next start. */
                ck_assert_uint_eq(reused, 0);
                ck_assert_uint_eq(temp, 0);
        }
}
END_TEST

/* ---- a full file system ---- */


static void assert_ok(const TestCall *c, const char *what) {
        ck_assert_msg(c->r >= 0, "%s: %s: %s", what, c->error, c->message);
}

/* Refused with a named error that says why: the audit log or the store could not be written. */
static void assert_refused_full(const TestCall *c, const char *what) {
        ck_assert_msg(c->r < 0, "%s succeeded on a full file system", what);
        ck_assert_msg(strcmp(c->error, E_AUDIT_FAILED) == 0 || strcmp(c->error, E_STORE_ERROR) == 0,
                      "%s on a full file system: %s: %s", what, c->error, c->message);
        if (strcmp(c->error, E_AUDIT_FAILED) == 0)
                ck_assert_msg(strstr(c->message, "audit record could not be written"), "%s: '%s'", what, c->message);
        else
                ck_assert_msg(strstr(c->message, "No space left on device"), "%s: '%s'", what, c->message);
        fprintf(stderr, "full: %s refused: %s: %s\n", what, c->error, c->message);
}

/* Full-disk state, for the cleanup of a test that fails half-way. */
static char full_mount[160];

static void full_umount(void) {
        if (full_mount[0]) {
                (void) umount2(full_mount, MNT_DETACH);
                full_mount[0] = 0;
        }
}

static void fill(const char *path) {
        char buf[16384];
        int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        ssize_t n;

        ck_assert_int_ge(fd, 0);
        memset(buf, 'x', sizeof(buf));
        while ((n = write(fd, buf, sizeof(buf))) > 0)
                ;
        /* The last partial page too. */
        while ((n = write(fd, buf, 1)) > 0)
                ;
        ck_assert_msg(n < 0 && errno == ENOSPC, "filling the tmpfs: %m");
        close(fd);
}

static void full_calls(const char *g, const char *gpath, const char *g2, TestCall out[4]) {
        TestCreds person = test_creds_person();

        test_call_as(NULL, &out[0], gpath, GROUP_IFACE, "Rollover", NULL);
        test_call_as(NULL, &out[1], gpath, GROUP_IFACE, "SetPolicy", "a{sv}", 1, "HotWindow", "u", (uint32_t) 5);
        test_call_as(&person, &out[2], MGR_PATH, MGR_IFACE, "RequestAccess", "sst", g, "full disk", (uint64_t) 30 * USEC);
        test_call_as(NULL, &out[3], MGR_PATH, MGR_IFACE, "CreateGroup", "sua{sv}", g2, (uint32_t) TW.gid, 0);
}

static char *read_all(const char *path, size_t *ret_size) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        char *buf;

        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(fstat(fd, &st), 0);
        buf = malloc((size_t) st.st_size + 1);
        ck_assert_ptr_nonnull(buf);
        ck_assert_int_eq(pread(fd, buf, (size_t) st.st_size, 0), st.st_size);
        buf[st.st_size] = 0;
        *ret_size = (size_t) st.st_size;
        return buf;
}

static void check_decrypts(const Kept *kept, size_t n) {
        size_t which[16];
        char err[512];

        ck_assert_uint_le(n, ELEMENTSOF(which));
        for (size_t i = 0; i < n; i++)
                which[i] = i;
        (void) decrypt_check(kept, which, n, err, sizeof(err));
        ck_assert_msg(!err[0], "%s", err);
}

/* AUDIT.md: a record with outcome ok is followed by one with outcome failed when the change then
 * fails. On a full file system the ok record can take the last bytes of the log's page, and the
 * failed one has no room: said here (not failed: the log is the daemon's to fix, see the issue). */
static void report_unpaired(const char *dir, uint64_t after) {
        static AuditEntry ev[256];
        size_t n = audit_events_after(dir, after, ev, ELEMENTSOF(ev));

        for (size_t i = 0; i < n; i++) {
                bool paired = false;

                if (ev[i].outcome != AUDIT_OUTCOME_OK || strcmp(ev[i].event, "refused-call") == 0)
                        continue;
                for (size_t j = i + 1; j < n && !paired; j++)
                        paired = ev[j].outcome == AUDIT_OUTCOME_FAILED && strcmp(ev[j].event, ev[i].event) == 0 &&
                                 strcmp(ev[j].object, ev[i].object) == 0;
                if (!paired)
                        fprintf(stderr,
                                "full: WARNING: audit seq %" PRIu64 " says %s of %s ok, no failed record follows, "
                                "though the change was refused\n",
                                ev[i].seq, ev[i].event, ev[i].object);
        }
}

START_TEST(test_full_disk) {
        const char *g = test_key_group("full"), *g2 = test_key_group("full2");
        char state[200], audit[220], filler[200], group_file[260], arg[220];
        /* Static: the forked callers exit with a copy of it, and valgrind checks them too. */
        static char *gpath;
        Kept kept[8];
        size_t n_kept = 0, n_requests;
        uint64_t seq_full;
        uint32_t active;
        AuditReport rep;
        TestCall c[4];
        TestRun tr;

        /* The tmpfs lives in a mount namespace of this test's own: it goes away with the test and
         * dkmd (its only users) whatever happens, and is never seen by the rest of the host. */
        ck_assert_msg(unshare(CLONE_NEWNS) == 0, "unshare: %m");
        ck_assert_msg(mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) == 0, "making / private: %m");
        snprintf(full_mount, sizeof(full_mount), "%s/fullfs", TW.dir);
        atexit(full_umount);
        ck_assert_int_eq(mkdir(full_mount, 0700), 0);
        ck_assert_msg(mount("tmpfs", full_mount, "tmpfs", 0, "size=2m,mode=0700") == 0, "mount tmpfs: %m");
        snprintf(state, sizeof(state), "%s/state", full_mount);
        snprintf(filler, sizeof(filler), "%s/filler", full_mount);
        snprintf(group_file, sizeof(group_file), "%s/groups/%s.group", state, g);
        snprintf(arg, sizeof(arg), "--state-dir=%s", state);
        audit_dir_of(state, audit, sizeof(audit));
        ck_assert_int_eq(test_store(arg, "init"), 0);

        test_dkmd_start((const char *const[]){ arg, NULL });
        {
                _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = test_bus_open();
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;

                ck_assert_msg(sd_bus_call_method(bus, SVC, MGR_PATH, MGR_IFACE, "CreateGroup", &e, NULL, "sua{sv}", g,
                                                 (uint32_t) TW.gid, 2, "ApprovalGroups", "as", 2, TW.appr1, TW.appr2,
                                                 "HotWindow", "u", (uint32_t) 8) >= 0,
                              "CreateGroup: %s: %s", e.name ?: "", e.message ?: "");
                gpath = group_path(bus, g);
        }
        encrypt_as_member(g, 1, &kept[n_kept++]);
        test_call_as(NULL, &c[0], gpath, GROUP_IFACE, "Rollover", NULL);
        assert_ok(&c[0], "Rollover");
        encrypt_as_member(g, 2, &kept[n_kept++]);
        ck_assert_uint_eq(kept[0].generation, 1);
        ck_assert_uint_eq(kept[1].generation, 2);

        /* Full: every change is refused with a named error, and nothing changes. */
        {
                _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = test_bus_open();
                active = get_u(bus, gpath, "ActiveGeneration");
                n_requests = list_requests(bus, (Listed[64]){}, 64);
        }
        seq_full = audit_last_seq(audit);
        fill(filler);
        full_calls(g, gpath, g2, c);
        assert_refused_full(&c[0], "Rollover");
        assert_refused_full(&c[1], "SetPolicy");
        assert_refused_full(&c[2], "RequestAccess");
        assert_refused_full(&c[3], "CreateGroup");
        {
                _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = test_bus_open();
                _cleanup_free_ char *again = group_path(bus, g); /* dkmd keeps serving */

                ck_assert_ptr_nonnull(again);
                ck_assert_uint_eq(get_u(bus, gpath, "ActiveGeneration"), active);
                ck_assert_uint_eq(get_u(bus, gpath, "PendingGeneration"), 0);
                ck_assert_uint_eq(get_u(bus, gpath, "HotWindow"), 8);
                ck_assert_uint_eq(list_requests(bus, (Listed[64]){}, 64), n_requests);
                ck_assert_int_eq(test_helper_status_value(g, "active "), (long) active);
        }
        ck_assert_int_eq(test_store(arg, "check"), 0);
        test_run(&tr, NULL, 0, NULL,
                 (char *const[]){ (char *) TW.store, arg, (char *) "group", (char *) "show", (char *) g2, NULL });
        ck_assert_msg(tr.status != 0, "the refused group %s exists", g2);
        test_run_free(&tr);
        check_decrypts(kept, n_kept);
        ck_assert_msg(verify_audit_quiet(audit, &rep) == 0, "audit_verify on a full file system: %s", rep.error);
        report_unpaired(audit, seq_full);

        /* Room again: the same calls succeed, and a rollover lands. */
        ck_assert_int_eq(unlink(filler), 0);
        full_calls(g, gpath, g2, c);
        assert_ok(&c[0], "Rollover after freeing space");
        assert_ok(&c[1], "SetPolicy after freeing space");
        assert_ok(&c[2], "RequestAccess after freeing space");
        assert_ok(&c[3], "CreateGroup after freeing space");
        {
                _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = test_bus_open();
                ck_assert_uint_eq(get_u(bus, gpath, "ActiveGeneration"), active + 1);
                ck_assert_uint_eq(get_u(bus, gpath, "HotWindow"), 5);
        }
        ck_assert_int_eq(test_helper_status_value(g, "active "), (long) active + 1);
        {
                TestCall cancel;
                TestCreds person = test_creds_person();
                test_call_as(&person, &cancel, c[2].path, REQUEST_IFACE, "Cancel", NULL);
                assert_ok(&cancel, "Cancel");
        }
        encrypt_as_member(g, 3, &kept[n_kept++]);
        ck_assert_uint_eq(kept[2].generation, active + 1);
        check_decrypts(kept, n_kept);

        /* Almost full: room for the audit records in the log's last page, none for the store's
         * new group file. The log says the rollover was authorized (ok), then that it failed. */
        {
                _cleanup_free_ char *before = NULL, *after = NULL;
                size_t before_size, after_size, n_events;
                AuditEntry events[8];
                uint64_t seq;
                off_t size;
                int tries;

                /* Start a fresh page of the log, then take every free page. */
                size = newest_audit_size(audit);
                for (tries = 0; tries < 100 && newest_audit_size(audit) / TMPFS_PAGE == size / TMPFS_PAGE; tries++) {
                        TestCall load;
                        test_call_as(NULL, &load, gpath, GROUP_IFACE, "Load", NULL);
                        assert_ok(&load, "Load");
                }
                ck_assert_int_lt(tries, 100);
                ck_assert_msg(newest_audit_size(audit) % TMPFS_PAGE <= TMPFS_PAGE / 2,
                              "the log's last page is over half used: %lld",
                              (long long) newest_audit_size(audit) % TMPFS_PAGE);
                fill(filler);
                before = read_all(group_file, &before_size);
                seq = audit_last_seq(audit);
                test_call_as(NULL, &c[0], gpath, GROUP_IFACE, "Rollover", NULL);
                ck_assert_msg(c[0].r < 0 && strcmp(c[0].error, E_STORE_ERROR) == 0 &&
                                      strstr(c[0].message, "No space left on device"),
                              "Rollover with room for the log only: %s: %s", c[0].r >= 0 ? "success" : c[0].error,
                              c[0].message);
                fprintf(stderr, "full: Rollover with room for the log only: %s: %s\n", c[0].error, c[0].message);
                after = read_all(group_file, &after_size);
                ck_assert_msg(before_size == after_size && memcmp(before, after, before_size) == 0,
                              "the group file changed");
                n_events = audit_events_after(audit, seq, events, ELEMENTSOF(events));
                for (size_t i = 0; i < n_events; i++)
                        fprintf(stderr, "full: audit seq %" PRIu64 ": %s %s %s: %s\n", events[i].seq, events[i].event,
                                audit_outcome_to_string(events[i].outcome), events[i].object, events[i].detail);
                /* The bus layer adds its refused-call record after the manager's two. */
                ck_assert_uint_ge(n_events, 2);
                ck_assert_str_eq(events[0].event, "rollover");
                ck_assert_int_eq(events[0].outcome, AUDIT_OUTCOME_OK);
                ck_assert_str_eq(events[1].event, "rollover");
                ck_assert_int_eq(events[1].outcome, AUDIT_OUTCOME_FAILED);
                ck_assert_str_eq(events[0].object, events[1].object);
                for (size_t i = 2; i < n_events; i++)
                        ck_assert_str_eq(events[i].event, "refused-call");
                ck_assert_msg(strstr(events[1].detail, "No space left"), "failed record: '%s'", events[1].detail);

                /* The reverse: once the log's page is full too, AuditFailed, and still no change. */
                for (tries = 0; tries < 20; tries++) {
                        test_call_as(NULL, &c[0], gpath, GROUP_IFACE, "Rollover", NULL);
                        ck_assert_msg(c[0].r < 0, "Rollover succeeded on a full file system");
                        if (strcmp(c[0].error, E_AUDIT_FAILED) == 0)
                                break;
                        ck_assert_str_eq(c[0].error, E_STORE_ERROR);
                }
                ck_assert_msg(strcmp(c[0].error, E_AUDIT_FAILED) == 0, "never AuditFailed: %s", c[0].error);
                free(after);
                after = read_all(group_file, &after_size);
                ck_assert_msg(before_size == after_size && memcmp(before, after, before_size) == 0,
                              "the group file changed");
                ck_assert_int_eq(test_store(arg, "check"), 0);
                ck_assert_msg(verify_audit_quiet(audit, &rep) == 0, "audit_verify: %s", rep.error);
        }
        ck_assert_int_eq(unlink(filler), 0);
        test_call_as(NULL, &c[0], gpath, GROUP_IFACE, "Rollover", NULL);
        assert_ok(&c[0], "Rollover after freeing space again");
        ck_assert_int_eq(test_helper_status_value(g, "active "), (long) active + 2);
        check_decrypts(kept, n_kept);

        ck_assert_int_eq(test_dkmd_stop(false), 0);
        ck_assert_msg(audit_verify(audit, NULL, &rep) == 0, "audit_verify: %s", rep.error);
        ck_assert(rep.closed);
        ck_assert_int_eq(test_store(arg, "check"), 0);
        ck_assert_int_eq(umount2(full_mount, 0), 0);
        full_mount[0] = 0;
}
END_TEST

/* Without root: only what needs no bus, no accounts and no kernel keys. */
START_TEST(test_usage) {
        TestRun r;

        test_run(&r, NULL, 0, NULL, (char *const[]){ (char *) test_env_path("DKM_DKMD"), (char *) "--help", NULL });
        ck_assert_int_eq(r.status, 0);
        test_run_free(&r);
}
END_TEST

static void bus_up(void) {
        char dir[128];

        /* dkmd reads drop-ins from the world's (empty) directory only, never the host's. */
        snprintf(dir, sizeof(dir), "%s/groups.d", TW.dir);
        ck_assert_int_eq(mkdir(dir, 0755), 0);
        ck_assert_int_eq(setenv("DKM_GROUPS_DIRS", dir, 1), 0);
        test_bus_start();
}

static Suite *make_suite(bool integration) {
        Suite *s = suite_create("crash");
        TCase *tc = tcase_create("usage");

        tcase_add_test(tc, test_usage);
        suite_add_tcase(s, tc);
        if (integration) {
                tc = tcase_create("crash");
                tcase_set_timeout(tc, 900);
                tcase_add_unchecked_fixture(tc, bus_up, test_bus_stop);
                tcase_add_test(tc, test_kill_storm);
                tcase_add_test(tc, test_full_disk);
                suite_add_tcase(s, tc);
        }
        return s;
}

int main(void) {
        test_world_want_person = true;
        test_world_want_approvers = true;
        return test_world_main(make_suite, key_group_tags);
}
