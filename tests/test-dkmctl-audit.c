/* SPDX-License-Identifier: MIT */
/* The real dkmctl's audit show and audit verify against real audit logs written by the audit library, intact and
 * tampered with in every way the verifier promises to catch. No root, no bus. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "test-helpers.h"

#define PYTHON3 "/usr/bin/python3"

/* Exit statuses of dkmctl (docs/DKMCTL.md), spelled out: they are its interface. */
enum {
        S_USAGE = 2,
        S_NOT_FOUND = 3,
        S_AUDIT_BAD = 17,
};

/* Two logs written once by main(), copied for each test: "main" (2 files) and "other" (another
 * key, same shape), whose files and public key stand in for an attacker's. */
static char root[] = "/tmp/dkm-test-dkmctl-audit-XXXXXX";
static char main_log[96], other_log[96];
/* The second boundaries between the three batches of records (µs): A < t1 <= B < t2 <= C. */
static uint64_t t0, t1, t2;

/* The test's own copy of main_log, made by setup(). */
static char dir[128];

typedef struct Run {
        int status;
        char *out;
        size_t out_size;
        char *err;
} Run;

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        (void) st, (void) flag, (void) ftw;
        return remove(path) < 0 ? -1 : 0;
}

static uint64_t now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * 1000000U + (uint64_t) ts.tv_nsec / 1000U;
}

/* Sleep into the next whole second; its start, in µs. */
static uint64_t next_second(void) {
        uint64_t now = now_usec(), next = (now / 1000000U + 1) * 1000000U;

        usleep((useconds_t) (next - now + 2000));
        return next;
}

static void append(AuditLog *l, const char *event, const char *object, const char *detail) {
        ck_assert_int_eq(audit_append(l,
                                      &(AuditRecord){
                                              .event = event,
                                              .outcome = AUDIT_OUTCOME_OK,
                                              .uid = 1001,
                                              .pid = 4242,
                                              .comm = "dkmd",
                                              .object = object,
                                              .detail = detail,
                                      }),
                         0);
}

/* Batch A in audit-000001.log, B and C in audit-000002.log, a second apart; each detail names its
 * record, so the tests can say exactly which records a filter must give. */
static void make_log(const char *path, bool timed) {
        AuditLog *l;

        ck_assert_int_eq(audit_open(path, NULL, &l, NULL), 0);
        append(l, "request", "group/mail", "A1");
        append(l, "rollover", "group/mail2", "A2");
        append(l, "approve", "request/1", "A3");
        append(l, "set-policy", "xgroup/mail", "A4");
        append(l, "refused-call", "group/evil", "A5 evil\nv=1 seq=1\x1b[31m\x7f caf\xc3\xa9 \xc2\x9b \\x41");
        if (timed)
                t1 = next_second();
        ck_assert_int_eq(audit_rotate(l), 0);
        append(l, "retire", "group/mail/generation/2", "B1");
        append(l, "rollover", "group/web", "B2");
        append(l, "set-policy", "group/mail", "B3");
        if (timed)
                t2 = next_second();
        append(l, "rollover", "group/mail", "C1");
        ck_assert_int_eq(audit_close(l), 0);
}

static char *path_in(const char *d, const char *name) {
        static char p[4][256];
        static unsigned i;
        char *b = p[i++ % ELEMENTSOF(p)];

        ck_assert_int_lt(snprintf(b, sizeof(p[0]), "%s/%s", d, name), (int) sizeof(p[0]));
        return b;
}

static char *read_all(const char *path, size_t *ret_size) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        char *buf;

        ck_assert_msg(fd >= 0, "cannot open %s", path);
        ck_assert_int_eq(fstat(fd, &st), 0);
        buf = malloc((size_t) st.st_size + 1);
        ck_assert_ptr_nonnull(buf);
        ck_assert_int_eq(read(fd, buf, (size_t) st.st_size), st.st_size);
        buf[st.st_size] = 0;
        close(fd);
        *ret_size = (size_t) st.st_size;
        return buf;
}

static void write_all(const char *path, const char *data, size_t size) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

        ck_assert_msg(fd >= 0, "cannot write %s", path);
        ck_assert_int_eq(write(fd, data, size), (ssize_t) size);
        ck_assert_int_eq(close(fd), 0);
}

/* An auditor's copy: the log files and audit.pub, never audit.key. */
static void copy_log(const char *from_path, const char *to_path) {
        char from[256], to[256]; /* the arguments may be path_in()'s, which it reuses */
        struct dirent *de;
        DIR *d;

        (void) snprintf(from, sizeof(from), "%s", from_path);
        (void) snprintf(to, sizeof(to), "%s", to_path);
        d = opendir(from);

        ck_assert_ptr_nonnull(d);
        ck_assert_int_eq(mkdir(to, 0700), 0);
        while ((de = readdir(d)))
                if (strncmp(de->d_name, "audit-", 6) == 0 || strcmp(de->d_name, "audit.pub") == 0) {
                        size_t size;
                        char *data = read_all(path_in(from, de->d_name), &size);

                        write_all(path_in(to, de->d_name), data, size);
                        free(data);
                }
        closedir(d);
}

static unsigned count_lines(const char *data, size_t size) {
        unsigned n = 0;

        for (size_t i = 0; i < size; i++)
                n += data[i] == '\n';
        return n;
}

/* Offset and length (with '\n') of line k (1-based). */
static void line_span(const char *data, size_t size, unsigned k, size_t *ret_off, size_t *ret_len) {
        size_t off = 0;
        const char *nl;

        for (unsigned i = 1; i < k; i++) {
                nl = memchr(data + off, '\n', size - off);
                ck_assert_ptr_nonnull(nl);
                off = (size_t) (nl - data) + 1;
        }
        nl = memchr(data + off, '\n', size - off);
        ck_assert_ptr_nonnull(nl);
        *ret_off = off;
        *ret_len = (size_t) (nl - (data + off)) + 1;
}

/* The line (1-based) of file that holds needle. */
static unsigned line_with(const char *file, const char *needle) {
        size_t size, off, len;
        char *data = read_all(path_in(dir, file), &size);
        unsigned n = count_lines(data, size);

        for (unsigned k = 1; k <= n; k++) {
                line_span(data, size, k, &off, &len);
                if (memmem(data + off, len, needle, strlen(needle))) {
                        free(data);
                        return k;
                }
        }
        free(data);
        ck_abort_msg("%s has no line with '%s'", file, needle);
        return 0;
}

static int memfd_with(const void *data, size_t size) {
        int fd = memfd_create("dkmctl-test", MFD_CLOEXEC);

        ck_assert_int_ge(fd, 0);
        if (size > 0)
                ck_assert_int_eq(write(fd, data, size), (ssize_t) size);
        ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
        return fd;
}

static char *memfd_read(int fd, size_t *ret_size) {
        off_t size = lseek(fd, 0, SEEK_END);
        char *buf = malloc((size_t) size + 1);

        ck_assert_ptr_nonnull(buf);
        ck_assert_int_eq(pread(fd, buf, (size_t) size, 0), size);
        buf[size] = 0;
        if (ret_size)
                *ret_size = (size_t) size;
        return buf;
}

static void run(Run *r, const void *in, size_t in_size, char *const argv[]) {
        int fd_in = memfd_with(in, in_size), fd_out = memfd_with(NULL, 0), fd_err = memfd_with(NULL, 0), status;
        pid_t pid = fork();

        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                if (dup2(fd_in, 0) < 0 || dup2(fd_out, 1) < 0 || dup2(fd_err, 2) < 0)
                        _exit(127);
                execv(argv[0], argv);
                _exit(127);
        }
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        r->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        r->out = memfd_read(fd_out, &r->out_size);
        r->err = memfd_read(fd_err, NULL);
        close(fd_in);
        close(fd_out);
        close(fd_err);
}

static void run_free(Run *r) {
        free(r->out);
        free(r->err);
}

/* "dkmctl ARGS..." as an argv (the array is reused by the next call). */
static char *const *ctl_argv(const char *first, ...) {
        static char *argv[32];
        size_t n = 0;
        va_list ap;

        argv[n++] = getenv("DKM_DKMCTL");
        ck_assert_msg(argv[0] && access(argv[0], X_OK) == 0, "$DKM_DKMCTL does not name dkmctl");
        va_start(ap, first);
        for (const char *a = first; a && n + 1 < ELEMENTSOF(argv); a = va_arg(ap, const char *))
                argv[n++] = (char *) a;
        va_end(ap);
        argv[n] = NULL;
        return argv;
}
#define CTL(...) ctl_argv(__VA_ARGS__, (const char *) NULL)

static char *opt(const char *name, const char *value) {
        static char bufs[8][512];
        static unsigned next;
        char *b = bufs[next++ % ELEMENTSOF(bufs)];

        (void) snprintf(b, sizeof(bufs[0]), "--%s=%s", name, value);
        return b;
}

static const char *dir_opt(void) {
        return opt("dir", dir);
}

/* Run dkmctl and check its status. A failure is one line on stderr holding words; a success prints
 * words on stdout and nothing on stderr. The run is handed over when ret is given. */
static void expect(char *const argv[], int status, const char *words, Run *ret) {
        Run r;

        run(&r, NULL, 0, argv);
        ck_assert_msg(r.status == status, "dkmctl %s %s %s: status %d, want %d\nstderr: %s", argv[1] ?: "",
                      argv[2] ?: "", argv[2] ? argv[3] ?: "" : "", r.status, status, r.err);
        if (status != 0) {
                size_t n = strlen(r.err);

                ck_assert_msg(n > 0 && strncmp(r.err, "dkmctl: ", 8) == 0, "stderr: '%s'", r.err);
                ck_assert_msg(strchr(r.err, '\n') == r.err + n - 1, "not one line: '%s'", r.err);
                if (words)
                        ck_assert_msg(strstr(r.err, words), "stderr '%s' lacks '%s'", r.err, words);
                ck_assert_msg(r.out_size == 0, "stdout of a failure: %s", r.out);
        } else {
                ck_assert_msg(r.err[0] == 0, "stderr of a success: %s", r.err);
                if (words)
                        ck_assert_msg(strstr(r.out, words), "stdout lacks '%s':\n%s", words, r.out);
        }
        if (ret)
                *ret = r;
        else
                run_free(&r);
}

/* r's stdout is one JSON document on one line (python's json module is the judge); python's code
 * then runs with it as d and the NULL-terminated args as sys.argv[1:]. */
static void json_check(const Run *r, const char *code, ...) {
        char program[4096];
        char *argv[16] = { (char *) PYTHON3, (char *) "-c", program };
        size_t n = 3;
        va_list ap;
        Run py;

        ck_assert_msg(r->out_size > 0 && memchr(r->out, '\n', r->out_size) == r->out + r->out_size - 1,
                      "not one line of JSON: %s", r->out);
        (void) snprintf(program, sizeof(program), "import json,sys\nd=json.load(sys.stdin)\n%s\n", code);
        va_start(ap, code);
        for (const char *a = va_arg(ap, const char *); a && n + 1 < ELEMENTSOF(argv); a = va_arg(ap, const char *))
                argv[n++] = (char *) a;
        va_end(ap);
        argv[n] = NULL;
        run(&py, r->out, r->out_size, argv);
        ck_assert_msg(py.status == 0, "JSON check failed (%d): %s\ndocument: %s\ncheck: %s", py.status, py.err, r->out,
                      code);
        run_free(&py);
}

/* audit show --json with the filter options given gives exactly these records' details, in order
 * (a comma-separated list, "" for none). */
#define EXPECT_SHOW(want, ...) expect_show(want, (const char *const[]){ __VA_ARGS__, NULL })
static void expect_show(const char *want, const char *const options[]) {
        char *argv[16];
        size_t n = 0;
        Run r;

        argv[n++] = getenv("DKM_DKMCTL");
        argv[n++] = (char *) "--json";
        argv[n++] = (char *) "audit";
        argv[n++] = (char *) "show";
        argv[n++] = (char *) dir_opt();
        for (size_t i = 0; options[i] && n + 1 < ELEMENTSOF(argv); i++)
                argv[n++] = (char *) options[i];
        argv[n] = NULL;
        expect(argv, 0, NULL, &r);
        json_check(&r,
                   "got = [x['detail'].split(' ')[0] for x in d['records']]\n"
                   "want = sys.argv[1].split(',') if sys.argv[1] else []\n"
                   "assert got == want, (got, want, sys.argv[2:])",
                   want, options[0] ?: "", options[0] ? options[1] : NULL, (const char *) NULL);
        run_free(&r);
}

/* Written once for the test case, in the runner (the tests are forked from it), with a second
 * between batches, so that every time filter has a boundary. */
static void make_logs(void) {
        ck_assert_ptr_nonnull(mkdtemp(root));
        (void) snprintf(main_log, sizeof(main_log), "%s/main", root);
        (void) snprintf(other_log, sizeof(other_log), "%s/other", root);
        t0 = now_usec();
        make_log(main_log, true);
        make_log(other_log, false);
}

static void remove_logs(void) {
        (void) nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void setup(void) {
        (void) snprintf(dir, sizeof(dir), "%s/copy-%d", root, (int) getpid());
        copy_log(main_log, dir);
}

static void teardown(void) {
        (void) nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- verify ---- */

START_TEST(test_verify_intact) {
        char state[160];
        Run r;

        expect(CTL("audit", "verify", dir_opt()), 0, "is intact", &r);
        ck_assert_ptr_nonnull(strstr(r.out, "Files:            2 (audit-000001.log to audit-000002.log)"));
        /* start + 5 (event + checkpoint) + rotate; start + 4 (event + checkpoint) + close */
        ck_assert_ptr_nonnull(strstr(r.out, "Records:          22 (seq 1 to 22)"));
        ck_assert_ptr_nonnull(strstr(r.out, "Last checkpoint:  seq 22, 0 records after it not signed"));
        ck_assert_ptr_nonnull(strstr(r.out, "Head:             seq 22, hash "));
        ck_assert_ptr_nonnull(strstr(r.out, "Closed:           yes"));
        ck_assert_ptr_nonnull(strstr(r.out, "not pinned"));
        run_free(&r);

        expect(CTL("--json", "audit", "verify", dir_opt()), 0, NULL, &r);
        json_check(&r,
                   "assert d['intact'] is True and d['files'] == 2 and d['records'] == 22\n"
                   "assert d['first_seq'] == 1 and d['last_seq'] == 22 and d['last_checkpoint_seq'] == 22\n"
                   "assert d['closed'] is True and d['unsealed'] == 0 and d['error'] is None\n"
                   "assert d['warning'] is None and d['public_key'] == 'directory' and len(d['last_hash']) == 64\n"
                   "assert d['directory'] == sys.argv[1]",
                   dir, (const char *) NULL);
        run_free(&r);

        /* A key copied earlier, kept elsewhere. */
        expect(CTL("audit", "verify", dir_opt(), opt("public-key", path_in(main_log, "audit.pub"))), 0,
               "Public key:       pinned, from ", NULL);

        /* The default directory: <$DKM_STATE_DIR>/audit. */
        (void) snprintf(state, sizeof(state), "%s/state-%d", root, (int) getpid());
        ck_assert_int_eq(mkdir(state, 0700), 0);
        copy_log(main_log, path_in(state, "audit"));
        ck_assert_int_eq(setenv("DKM_STATE_DIR", state, 1), 0);
        expect(CTL("audit", "verify"), 0, path_in(state, "audit"), NULL);
        expect(CTL("--json", "audit", "show", "--event=rollover"), 0, "\"C1\"", NULL);
        ck_assert_int_eq(unsetenv("DKM_STATE_DIR"), 0);
        (void) nftw(state, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}
END_TEST

/* verify fails with status 17, one line naming want (a file, and a record's line and seq); the
 * same with --json, whose document says what failed. Then the copy is made afresh. */
static void expect_damage(const char *want) {
        Run r;

        expect(CTL("audit", "verify", dir_opt()), S_AUDIT_BAD, want, &r);
        ck_assert_msg(strncmp(r.err, "dkmctl: audit verify: ", 22) == 0, "%s", r.err);
        ck_assert_msg(strstr(r.err, "tampered with"), "%s", r.err);
        run_free(&r);

        run(&r, NULL, 0, CTL("--json", "audit", "verify", dir_opt()));
        ck_assert_int_eq(r.status, S_AUDIT_BAD);
        json_check(&r, "assert d['intact'] is False and sys.argv[1] in d['error'], d", want, (const char *) NULL);
        run_free(&r);

        teardown();
        setup();
}

/* "DIR/FILE:LINE (seq SEQ)" as audit_verify() names a record. */
static const char *record_at(const char *file, unsigned line, unsigned seq) {
        static char buf[256];

        (void) snprintf(buf, sizeof(buf), "%s/%s:%u (seq %u): ", dir, file, line, seq);
        return buf;
}

START_TEST(test_verify_tampering) {
        const char *f1 = "audit-000001.log", *f2 = "audit-000002.log";
        size_t size, off, len, off2, len2;
        unsigned line, n1, n2;
        char *data, *p, want[256];

        data = read_all(path_in(dir, f1), &size);
        n1 = count_lines(data, size);
        free(data);
        data = read_all(path_in(dir, f2), &size);
        n2 = count_lines(data, size);
        free(data);
        ck_assert_uint_eq(n1, 12);
        ck_assert_uint_eq(n2, 10);

        /* One byte of one record's detail: A3 -> A4. Lines and seqs are equal in the first file. */
        line = line_with(f1, "detail=A3");
        data = read_all(path_in(dir, f1), &size);
        p = memmem(data, size, "detail=A3", 9);
        p[8] = '4';
        write_all(path_in(dir, f1), data, size);
        free(data);
        expect_damage(record_at(f1, line, line));

        /* A record deleted: the next one has the wrong seq. */
        line = line_with(f1, "detail=A2");
        data = read_all(path_in(dir, f1), &size);
        line_span(data, size, line, &off, &len);
        memmove(data + off, data + off + len, size - off - len);
        write_all(path_in(dir, f1), data, size - len);
        free(data);
        expect_damage(record_at(f1, line, line + 1));

        /* Two records swapped (in the second file: seq = 12 + line). */
        line = line_with(f2, "detail=B2");
        data = read_all(path_in(dir, f2), &size);
        line_span(data, size, line, &off, &len);
        line_span(data, size, line + 1, &off2, &len2);
        {
                char *swapped = malloc(size);

                ck_assert_ptr_nonnull(swapped);
                memcpy(swapped, data, off);
                memcpy(swapped + off, data + off2, len2);
                memcpy(swapped + off + len2, data + off, len);
                memcpy(swapped + off + len2 + len, data + off2 + len2, size - off2 - len2);
                write_all(path_in(dir, f2), swapped, size);
                free(swapped);
        }
        free(data);
        expect_damage(record_at(f2, line, 12 + line + 1));

        /* The last record cut mid-line. */
        data = read_all(path_in(dir, f2), &size);
        line_span(data, size, n2, &off, &len);
        write_all(path_in(dir, f2), data, off + len / 2);
        free(data);
        expect_damage(record_at(f2, n2, 12 + n2));

        /* A file emptied. */
        write_all(path_in(dir, f1), "", 0);
        (void) snprintf(want, sizeof(want), "%s/%s: empty", dir, f1);
        expect_damage(want);

        /* A file cut at a record boundary (its rotate checkpoint and the record before it gone). */
        data = read_all(path_in(dir, f1), &size);
        line_span(data, size, n1 - 1, &off, &len);
        write_all(path_in(dir, f1), data, off);
        free(data);
        expect_damage(record_at(f1, n1 - 2, n1 - 2));

        /* A whole file replaced by the same file of another log (another key, another chain). */
        data = read_all(path_in(other_log, f2), &size);
        write_all(path_in(dir, f2), data, size);
        free(data);
        expect_damage(record_at(f2, 1, 13));
        data = read_all(path_in(other_log, f1), &size);
        write_all(path_in(dir, f1), data, size);
        free(data);
        expect_damage(record_at(f1, 1, 1));

        /* The first file deleted. */
        ck_assert_int_eq(unlink(path_in(dir, f1)), 0);
        (void) snprintf(want, sizeof(want), "%s/%s: missing", dir, f1);
        expect_damage(want);

        /* The newest file deleted: the first one ends with a rotate checkpoint that promised it. */
        ck_assert_int_eq(unlink(path_in(dir, f2)), 0);
        (void) snprintf(want, sizeof(want), "%s/%s: missing", dir, f2);
        expect_damage(want);
}
END_TEST

START_TEST(test_verify_public_key) {
        char bad[160];

        /* Another log's key, or this log re-signed with another key: the pinned key tells. */
        expect(CTL("audit", "verify", dir_opt(), opt("public-key", path_in(other_log, "audit.pub"))), S_AUDIT_BAD,
               record_at("audit-000001.log", 1, 1), NULL);
        expect(CTL("audit", "verify", dir_opt(), opt("public-key", path_in(other_log, "audit.pub"))), S_AUDIT_BAD,
               "signature", NULL);
        /* A replaced audit.pub fools no one either, and a pinned key is not fooled by it. */
        {
                size_t size;
                char *data = read_all(path_in(other_log, "audit.pub"), &size);

                write_all(path_in(dir, "audit.pub"), data, size);
                free(data);
        }
        expect(CTL("audit", "verify", dir_opt()), S_AUDIT_BAD, "signature", NULL);
        expect(CTL("audit", "verify", dir_opt(), opt("public-key", path_in(main_log, "audit.pub"))), 0, "is intact",
               NULL);

        /* A key file that is no key, or none: usage. */
        (void) snprintf(bad, sizeof(bad), "%s/bad-%d.pub", root, (int) getpid());
        write_all(bad, "ed25519=1234\n", 13);
        expect(CTL("audit", "verify", dir_opt(), opt("public-key", bad)), S_USAGE, "not a public key file", NULL);
        ck_assert_int_eq(unlink(bad), 0);
        expect(CTL("audit", "verify", dir_opt(), opt("public-key", bad)), S_USAGE, "cannot read", NULL);

        /* Without a pinned key, a missing audit.pub cannot be verified against. */
        ck_assert_int_eq(unlink(path_in(dir, "audit.pub")), 0);
        expect(CTL("audit", "verify", dir_opt()), S_NOT_FOUND, "--public-key=FILE", NULL);
}
END_TEST

/* ---- show ---- */

START_TEST(test_show_filters) {
        char t1s[32], t2s[32], day[32], day_after[32], t1_utc[32];
        time_t t = (time_t) (t1 / 1000000U), d0 = (time_t) (t0 / 1000000U) / 86400 * 86400;
        struct tm tm;

        (void) snprintf(t1s, sizeof(t1s), "@%llu", (unsigned long long) (t1 / 1000000U));
        (void) snprintf(t2s, sizeof(t2s), "@%llu", (unsigned long long) (t2 / 1000000U));
        ck_assert_ptr_nonnull(gmtime_r(&t, &tm));
        ck_assert_uint_gt(strftime(t1_utc, sizeof(t1_utc), "%Y-%m-%d %H:%M:%S", &tm), 0);
        ck_assert_ptr_nonnull(gmtime_r(&d0, &tm));
        ck_assert_uint_gt(strftime(day, sizeof(day), "%Y-%m-%d", &tm), 0);
        d0 += 2 * 86400;
        ck_assert_ptr_nonnull(gmtime_r(&d0, &tm));
        ck_assert_uint_gt(strftime(day_after, sizeof(day_after), "%Y-%m-%d", &tm), 0);

        EXPECT_SHOW("A1,A2,A3,A4,A5,B1,B2,B3,C1", "--since=-1h");
        /* group/mail and what lies below it; not group/mail2, xgroup/mail, request/1. */
        EXPECT_SHOW("A1,B1,B3,C1", "--group=mail");
        EXPECT_SHOW("A2", "--group=mail2");
        EXPECT_SHOW("", "--group=mai");
        EXPECT_SHOW("", "--group=nosuchgroup");
        EXPECT_SHOW("A2,B2,C1", "--event=rollover");
        EXPECT_SHOW("B3", "--group=mail", "--event=set-policy");
        EXPECT_SHOW("", "--event=roll");

        /* since <= time < until, in each form. */
        EXPECT_SHOW("B1,B2,B3,C1", opt("since", t1s));
        EXPECT_SHOW("A1,A2,A3,A4,A5", opt("until", t1s));
        EXPECT_SHOW("B1,B2,B3", opt("since", t1s), opt("until", t2s));
        EXPECT_SHOW("B1,B2,B3,C1", opt("since", t1_utc));
        EXPECT_SHOW("A1,A2,A3,A4,A5", opt("until", t1_utc));
        EXPECT_SHOW("B1,B3", "--group=mail", opt("since", t1_utc), opt("until", t2s));
        EXPECT_SHOW("A1,A2,A3,A4,A5,B1,B2,B3,C1", opt("since", day));
        EXPECT_SHOW("", opt("until", day));
        EXPECT_SHOW("A1,A2,A3,A4,A5,B1,B2,B3,C1", opt("until", day_after));
        EXPECT_SHOW("", "--until=-1h");
        EXPECT_SHOW("", "--since=@4102444800"); /* 2100-01-01 */
}
END_TEST

START_TEST(test_show_output) {
        Run r;

        /* Every record, checkpoints included: the whole log in order. */
        expect(CTL("--json", "audit", "show", dir_opt(), "--checkpoints"), 0, NULL, &r);
        json_check(&r,
                   "rs = d['records']\n"
                   "assert [x['seq'] for x in rs] == list(range(1, 23))\n"
                   "assert [x['file'] for x in rs] == ['audit-000001.log'] * 12 + ['audit-000002.log'] * 10\n"
                   "assert [x['line'] for x in rs] == list(range(1, 13)) + list(range(1, 11))\n"
                   "assert rs[0]['type'] == 'checkpoint' and rs[0]['checkpoint'] == 'start' and rs[0]['prev'] == '0' * "
                   "64\n"
                   "assert rs[11]['checkpoint'] == 'rotate' and rs[12]['checkpoint'] == 'start'\n"
                   "assert rs[21]['checkpoint'] == 'close' and rs[2]['checkpoint'] == 'periodic'\n"
                   "assert all(rs[i]['prev'] == rs[i - 1]['hash'] for i in range(1, 22))\n"
                   "e = rs[1]\n"
                   "assert e['type'] == 'event' and e['event'] == 'request' and e['outcome'] == 'ok'\n"
                   "assert e['uid'] == 1001 and e['pid'] == 4242 and e['comm'] == 'dkmd'\n"
                   "assert e['object'] == 'group/mail' and e['detail'] == 'A1' and e['time_usec'] > 0\n"
                   "[evil] = [x for x in rs if x.get('object') == 'group/evil']\n"
                   "assert evil['detail'] == 'A5 evil\\nv=1 seq=1\\x1b[31m\\x7f caf\\u00e9 \\u009b \\\\x41', evil",
                   (const char *) NULL);
        run_free(&r);

        /* A table; every byte a terminal would act on escaped. */
        expect(CTL("audit", "show", dir_opt()), 0, "SEQ  TIME", &r);
        ck_assert_ptr_nonnull(strstr(r.out, "9 records shown."));
        ck_assert_ptr_nonnull(strstr(r.out, " UTC  request "));
        ck_assert_ptr_nonnull(strstr(r.out, "A5 evil\\x0av=1 seq=1\\x1b[31m\\x7f caf\xc3\xa9 \\xc2\\x9b \\x5cx41\n"));
        ck_assert_ptr_null(strchr(r.out, '\x1b'));
        ck_assert_ptr_null(strstr(r.out, "\xc2\x9b"));
        ck_assert_ptr_null(strstr(r.out, "\x7f"));
        run_free(&r);
        expect(CTL("--no-legend", "audit", "show", dir_opt(), "--event=approve"), 0, "request/1", &r);
        ck_assert_ptr_null(strstr(r.out, "SEQ"));
        ck_assert_ptr_null(strstr(r.out, "shown"));
        ck_assert_uint_eq(count_lines(r.out, r.out_size), 1);
        run_free(&r);
        /* Times as the table prints them are times --since reads. */
        expect(CTL("audit", "show", dir_opt(), "--checkpoints", "--since=-1h"), 0, "close, interval 1", &r);
        ck_assert_ptr_nonnull(strstr(r.out, "22 records shown."));
        run_free(&r);

        /* A malformed record: show stops with the verify status, naming it. */
        {
                size_t size;
                char *data = read_all(path_in(dir, "audit-000002.log"), &size);
                char want[160];

                memcpy(data, "v=2", 3);
                write_all(path_in(dir, "audit-000002.log"), data, size);
                free(data);
                (void) snprintf(want, sizeof(want), "%s/audit-000002.log:1: ", dir);
                expect(CTL("audit", "show", dir_opt()), S_AUDIT_BAD, want, NULL);
                expect(CTL("--json", "audit", "show", dir_opt()), S_AUDIT_BAD, want, NULL);
        }
}
END_TEST

START_TEST(test_usage) {
        static const char *const bad_times[] = {
                "",
                "@",
                "@1x",
                "@-1",
                "yesterday",
                "2025-02-30",
                "2025-13-01",
                "2025-1-01",
                "2025-01-01T00:00:00",
                "2025-01-01 24:00:00",
                "2025-01-01 12:00",
                "1969-12-31",
                "-",
                "-1y",
                "-99999999999d",
                NULL,
        };

        for (size_t i = 0; bad_times[i]; i++) {
                expect(CTL("audit", "show", dir_opt(), opt("since", bad_times[i])), S_USAGE, "not a time", NULL);
                expect(CTL("audit", "show", dir_opt(), opt("until", bad_times[i])), S_USAGE, "not a time", NULL);
        }
        expect(CTL("audit", "show", dir_opt(), "--group=a/b"), S_USAGE, "not a key group name", NULL);
        expect(CTL("audit", "show", dir_opt(), "--group="), S_USAGE, "not a key group name", NULL);
        expect(CTL("audit", "verify", dir_opt(), "--group=mail"), S_USAGE, "--group does not apply", NULL);
        expect(CTL("audit", "verify", dir_opt(), "--checkpoints"), S_USAGE, "--checkpoints does not apply", NULL);
        expect(CTL("audit", "show", dir_opt(), "--public-key=x"), S_USAGE, "--public-key does not apply", NULL);
        expect(CTL("audit", "show", "extra", dir_opt()), S_USAGE, "usage: dkmctl audit show", NULL);
        expect(CTL("audit"), S_USAGE, "show or verify", NULL);
        expect(CTL("audit", "verify", "--dir=/nonexistent/dkm-audit"), S_NOT_FOUND, "/nonexistent/dkm-audit", NULL);
        expect(CTL("audit", "show", "--dir=/nonexistent/dkm-audit"), S_NOT_FOUND, "/nonexistent/dkm-audit", NULL);
        expect(CTL("--help"), 0, "audit verify [--dir=DIR] [--public-key=FILE]", NULL);
        expect(CTL("--help"), 0, "17 the audit log is", NULL);
}
END_TEST

static Suite *dkmctl_audit_suite(void) {
        Suite *s = suite_create("dkmctl-audit");
        TCase *tc = tcase_create("audit");

        tcase_add_unchecked_fixture(tc, make_logs, remove_logs);
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_verify_intact);
        tcase_add_test(tc, test_verify_tampering);
        tcase_add_test(tc, test_verify_public_key);
        tcase_add_test(tc, test_show_filters);
        tcase_add_test(tc, test_show_output);
        tcase_add_test(tc, test_usage);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        if (crypt_init() < 0)
                return EXIT_FAILURE;
        return test_run_suite(dkmctl_audit_suite());
}
