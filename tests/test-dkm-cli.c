/* SPDX-License-Identifier: MIT */
/* Tests for the dkm CLI: usage, exit statuses, messages, round trips as a member, streams, files. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "macro.h"
#include "test-accounts.h"
#include "test-helpers.h"

static const char *const key_group_tags[] = { "cli", "clirw", NULL };

static const char *cli(void) {
        const char *p = getenv("DKM_CLI");

        ck_assert_msg(p && access(p, X_OK) == 0, "DKM_CLI must name the built dkm");
        return p;
}

/* "dkm ARGS..." as an argv (one at a time: the array is reused by the next call). */
static char *const *dkm_argv(const char *first, ...) {
        static char *argv[32];
        size_t n = 0;
        va_list ap;

        argv[n++] = (char *) cli();
        va_start(ap, first);
        for (const char *a = first; a && n + 1 < ELEMENTSOF(argv); a = va_arg(ap, const char *))
                argv[n++] = (char *) a;
        va_end(ap);
        argv[n] = NULL;
        return argv;
}
#define DKM(...) dkm_argv(__VA_ARGS__, (const char *) NULL)

/* Failures are one line on stderr, starting "dkm: ". */
static void assert_one_line(const TestRun *r, const char *words) {
        size_t n = strlen(r->err);

        ck_assert_msg(n > 0 && strncmp(r->err, "dkm: ", 5) == 0, "stderr: '%s'", r->err);
        ck_assert_msg(strchr(r->err, '\n') == r->err + n - 1, "not one line: '%s'", r->err);
        if (words)
                ck_assert_msg(strstr(r->err, words), "'%s' lacks '%s'", r->err, words);
}

static void expect(const char *in, const TestCreds *c, char *const argv[], int status, const char *words) {
        TestRun r;

        test_run(&r, in, in ? strlen(in) : 0, c, argv);
        ck_assert_msg(r.status == status, "%s %s: status %d, want %d: %s", argv[1], argv[2] ?: "", r.status, status,
                      r.err);
        if (status != 0) {
                assert_one_line(&r, words);
                ck_assert_uint_eq(r.out_size, 0);
        }
        test_run_free(&r);
}

START_TEST(test_usage) {
        TestRun r;

        test_run(&r, NULL, 0, NULL, (char *const[]){ (char *) cli(), NULL });
        ck_assert_int_eq(r.status, 2);
        assert_one_line(&r, "no command given");
        test_run_free(&r);

        test_run(&r, NULL, 0, NULL, DKM("--help"));
        ck_assert_int_eq(r.status, 0);
        ck_assert_ptr_nonnull(strstr((char *) r.out, "encrypt -g GROUP"));
        ck_assert_ptr_nonnull(strstr((char *) r.out, "decrypt"));
        ck_assert_ptr_nonnull(strstr((char *) r.out, "rewrap"));
        ck_assert_ptr_nonnull(strstr((char *) r.out, "4 not a member of the key group"));
        ck_assert_ptr_nonnull(strstr((char *) r.out, "discard"));
        test_run_free(&r);
        test_run(&r, NULL, 0, NULL, DKM("--version"));
        ck_assert_int_eq(r.status, 0);
        ck_assert_ptr_nonnull(strstr((char *) r.out, "dkm 0.1.0"));
        test_run_free(&r);

        expect(NULL, NULL, DKM("bogus"), 2, "unknown command 'bogus'");
        expect(NULL, NULL, DKM("--bogus", "encrypt"), 2, NULL);
        expect(NULL, NULL, DKM("encrypt"), 2, "needs --group");
        expect(NULL, NULL, DKM("encrypt", "-g", "Not-Valid"), 2, "not a valid key group name");
        expect(NULL, NULL, DKM("encrypt", "-g", "x", "--ad=a", "--ad-file=b"), 2, "not both");
        expect(NULL, NULL, DKM("encrypt", "-g", "x", "--stream", "--one-shot"), 2, "exclude each other");
        expect(NULL, NULL, DKM("decrypt", "-g", "x"), 2, "encrypt only");
        expect(NULL, NULL, DKM("decrypt", "--stream"), 2, "encrypt only");
        expect(NULL, NULL, DKM("decrypt", "extra"), 2, "unexpected argument");

        /* Questions the input answers without any key. */
        expect("hello, not a ciphertext", NULL, DKM("decrypt"), 9, "not a dkm ciphertext");
        expect("", NULL, DKM("decrypt"), 9, "not a dkm ciphertext");
        expect("hello, not a ciphertext", NULL, DKM("info"), 9, "not a dkm ciphertext");
        expect("DKM\002", NULL, DKM("decrypt"), 10, "newer dkm");
        expect(NULL, NULL, DKM("decrypt", "-i", "/nonexistent/file"), 11, "cannot open /nonexistent/file");
        expect("x", NULL, DKM("decrypt", "-o", "/nonexistent/dir/out"), 11, "cannot create output file");
        expect(NULL, NULL, DKM("decrypt", "--ad-file=/nonexistent/ad"), 11, "cannot read /nonexistent/ad");
}
END_TEST

/* ---------------------------------------------------------------------------------------- */

static char path_buf[8][300];

static const char *work(unsigned slot, const char *name) {
        snprintf(path_buf[slot], sizeof(path_buf[slot]), "%s/%s", TW.work_dir, name);
        return path_buf[slot];
}

static void write_file(const char *path, const void *data, size_t size) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(loop_write(fd, data, size), 0);
        close(fd);
}

static uint8_t *read_file(const char *path, size_t *ret_size) {
        char *p = NULL;

        ck_assert_int_eq(read_file_full(AT_FDCWD, path, 1U << 30, &p, ret_size), 0);
        return (uint8_t *) p;
}

/* No temporary file is ever left in the work directory. */
static void assert_no_leftovers(void) {
        DIR *d = opendir(TW.work_dir);
        struct dirent *de;

        ck_assert_ptr_nonnull(d);
        while ((de = readdir(d)))
                ck_assert_msg(strncmp(de->d_name, ".#", 2) != 0, "left behind: %s", de->d_name);
        closedir(d);
}

static void run_ok(TestRun *r, const void *in, size_t in_size, const TestCreds *c, char *const argv[]) {
        test_run(r, in, in_size, c, argv);
        ck_assert_msg(r->status == 0, "%s: status %d: %s", argv[1], r->status, r->err);
        ck_assert_str_eq(r->err, "");
}

static const char *group_new(const char *tag) {
        const char *g = test_key_group(tag);
        char gid[32];

        snprintf(gid, sizeof(gid), "--gid=%u", (unsigned) TW.gid);
        ck_assert_int_eq(test_store("group", "create", g, gid), 0);
        ck_assert_int_eq(test_store("load", g), 0);
        return g;
}

static bool info_says(const TestRun *r, const char *line) {
        return strstr((const char *) r->out, line) != NULL;
}

START_TEST(test_roundtrip) {
        const char *g = group_new("cli");
        TestCreds member = test_creds_member(), other = test_creds_other();
        TestRun ct, r;
        char want[128];

        /* stdin to stdout, with associated data. */
        run_ok(&ct, "s3cret", 6, &member, DKM("encrypt", "-g", g, "--ad=account:7"));
        ck_assert_uint_eq(ct.out_size, 6 + 68);
        run_ok(&r, ct.out, ct.out_size, &member, DKM("info"));
        ck_assert(info_says(&r, "kind:        one-shot\n"));
        snprintf(want, sizeof(want), "group:       %s\n", g);
        ck_assert(info_says(&r, want));
        ck_assert(info_says(&r, "generation:  1\n"));
        ck_assert(info_says(&r, "plaintext:   6\n"));
        test_run_free(&r);
        run_ok(&r, ct.out, ct.out_size, &member, DKM("decrypt", "--ad=account:7"));
        ck_assert(r.out_size == 6 && memcmp(r.out, "s3cret", 6) == 0);
        test_run_free(&r);

        /* Failures: one line, a distinct status, nothing on stdout. */
        test_run(&r, ct.out, ct.out_size, &member, DKM("decrypt", "--ad=account:8"));
        ck_assert_int_eq(r.status, 7);
        assert_one_line(&r, "authentication failed");
        ck_assert_ptr_nonnull(strstr(r.err, "nothing was written"));
        ck_assert_uint_eq(r.out_size, 0);
        test_run_free(&r);
        ct.out[ct.out_size - 3] ^= 4;
        test_run(&r, ct.out, ct.out_size, &member, DKM("decrypt", "--ad=account:7"));
        ck_assert_int_eq(r.status, 7);
        ck_assert_uint_eq(r.out_size, 0);
        test_run_free(&r);
        ct.out[ct.out_size - 3] ^= 4;

        test_run(&r, ct.out, ct.out_size, &other, DKM("decrypt", "--ad=account:7"));
        ck_assert_int_eq(r.status, 4);
        assert_one_line(&r, "not a member of the key group");
        test_run_free(&r);
        test_run(&r, "x", 1, &other, DKM("encrypt", "-g", g));
        ck_assert_int_eq(r.status, 4);
        assert_one_line(&r, "not a member of the key group");
        ck_assert_ptr_nonnull(strstr(r.err, g));
        test_run_free(&r);
        {
                char nosuch[80];
                snprintf(nosuch, sizeof(nosuch), "dkmt-%ld-nosuch", (long) TW.main_pid);
                test_run(&r, "x", 1, &member, DKM("encrypt", "-g", nosuch));
                ck_assert_int_eq(r.status, 3);
                assert_one_line(&r, "check the group name");
                test_run_free(&r);
        }

        /* --ad-file, and files with -o: decrypted output is private. */
        write_file(work(0, "ad"), "account:7", 9);
        run_ok(&r, "s3cret", 6, &member, DKM("encrypt", "-g", g, "--ad-file", work(0, "ad"), "-o", work(1, "one.dkm")));
        test_run_free(&r);
        run_ok(&r, NULL, 0, &member,
               DKM("decrypt", "--ad=account:7", "-i", work(1, "one.dkm"), "-o", work(2, "one.txt")));
        test_run_free(&r);
        {
                struct stat st;
                size_t n;
                _cleanup_free_ uint8_t *p = read_file(work(2, "one.txt"), &n);

                ck_assert(n == 6 && memcmp(p, "s3cret", 6) == 0);
                ck_assert_int_eq(stat(work(2, "one.txt"), &st), 0);
                ck_assert_uint_eq(st.st_mode & 0777, 0600);
                ck_assert_uint_eq(st.st_uid, TW.member_uid);
        }
        /* A failure with -o creates nothing. */
        test_run(&r, NULL, 0, &member,
                 DKM("decrypt", "--ad=wrong", "-i", work(1, "one.dkm"), "-o", work(3, "none.txt")));
        ck_assert_int_eq(r.status, 7);
        test_run_free(&r);
        ck_assert_int_eq(access(work(3, "none.txt"), F_OK), -1);
        assert_no_leftovers();
        test_run_free(&ct);
}
END_TEST

START_TEST(test_streams) {
        const char *g = group_new("clirw");
        TestCreds member = test_creds_member();
        const size_t size = 3 * 1024 * 1024 + 12345;
        _cleanup_free_ uint8_t *pt = malloc(size), *ct = NULL;
        size_t ct_size;
        TestRun r;

        for (size_t i = 0; i < size; i++)
                pt[i] = (uint8_t) ((i * 2654435761U) >> 13);
        write_file(work(0, "big"), pt, size);

        /* Over 1 MiB: a stream without being asked; --one-shot and --stream override. */
        run_ok(&r, NULL, 0, &member, DKM("encrypt", "-g", g, "-i", work(0, "big"), "-o", work(1, "big.dkm")));
        test_run_free(&r);
        ct = read_file(work(1, "big.dkm"), &ct_size);
        ck_assert_uint_eq(ct_size, 64 + size + 16 * (size / 65536 + 1));
        run_ok(&r, ct, ct_size, &member, DKM("info"));
        ck_assert(info_says(&r, "kind:        stream\n"));
        ck_assert(info_says(&r, "chunk-size:  65536\n"));
        test_run_free(&r);
        run_ok(&r, pt, size, &member, DKM("encrypt", "-g", g, "--one-shot"));
        ck_assert_uint_eq(r.out_size, size + 68);
        test_run_free(&r);
        run_ok(&r, "tiny", 4, &member, DKM("encrypt", "-g", g, "--stream"));
        ck_assert_uint_eq(r.out_size, 64 + 4 + 16);
        test_run_free(&r);

        /* Round trip through -o: nothing appears until the whole stream verified. */
        run_ok(&r, NULL, 0, &member, DKM("decrypt", "-i", work(1, "big.dkm"), "-o", work(2, "big.out")));
        test_run_free(&r);
        {
                size_t n;
                _cleanup_free_ uint8_t *back = read_file(work(2, "big.out"), &n);
                ck_assert(n == size && memcmp(back, pt, size) == 0);
        }
        /* Through pipes, stdin to stdout. */
        run_ok(&r, ct, ct_size, &member, DKM("decrypt"));
        ck_assert(r.out_size == size && memcmp(r.out, pt, size) == 0);
        test_run_free(&r);

        /* Truncated on a chunk boundary: status 8, no output file, no temporary file. */
        write_file(work(3, "cut.dkm"), ct, 64 + 20 * 65552);
        test_run(&r, NULL, 0, &member, DKM("decrypt", "-i", work(3, "cut.dkm"), "-o", work(4, "cut.out")));
        ck_assert_int_eq(r.status, 8);
        assert_one_line(&r, "truncated");
        ck_assert_ptr_nonnull(strstr(r.err, "nothing was written"));
        test_run_free(&r);
        ck_assert_int_eq(access(work(4, "cut.out"), F_OK), -1);
        assert_no_leftovers();
        /* The same to stdout: the verified chunks went out, and the message says to discard them. */
        test_run(&r, ct, 64 + 20 * 65552, &member, DKM("decrypt"));
        ck_assert_int_eq(r.status, 8);
        assert_one_line(&r, "discard");
        ck_assert_uint_le(r.out_size, 20 * 65536);
        test_run_free(&r);
        /* Nothing but the header, to a file and to a rewrap. */
        test_run(&r, ct, 64, &member, DKM("decrypt", "-o", work(4, "cut.out")));
        ck_assert_int_eq(r.status, 8);
        test_run_free(&r);
        test_run(&r, ct, 64, &member, DKM("rewrap"));
        ck_assert_int_eq(r.status, 8);
        ck_assert_uint_eq(r.out_size, 0);
        test_run_free(&r);
        /* Cut inside a chunk: an authentication failure. */
        test_run(&r, ct, 64 + 20 * 65552 + 100, &member, DKM("decrypt", "-o", work(4, "cut.out")));
        ck_assert_int_eq(r.status, 7);
        test_run_free(&r);
        ck_assert_int_eq(access(work(4, "cut.out"), F_OK), -1);
        assert_no_leftovers();

        /* Rewrap after a rollover: both kinds move to the new generation. */
        ck_assert_int_eq(test_store("rollover", g), 0);
        ck_assert_int_eq(test_store("load", g), 0);
        run_ok(&r, NULL, 0, &member, DKM("rewrap", "-i", work(1, "big.dkm"), "-o", work(1, "big.dkm")));
        test_run_free(&r);
        run_ok(&r, NULL, 0, &member, DKM("info", "-i", work(1, "big.dkm")));
        ck_assert(info_says(&r, "generation:  2\n"));
        test_run_free(&r);
        run_ok(&r, NULL, 0, &member, DKM("decrypt", "-i", work(1, "big.dkm")));
        ck_assert(r.out_size == size && memcmp(r.out, pt, size) == 0);
        test_run_free(&r);
        {
                TestRun one, two;

                run_ok(&one, "short", 5, &member, DKM("encrypt", "-g", g, "--ad=x"));
                run_ok(&two, one.out, one.out_size, &member, DKM("rewrap", "--ad=x"));
                ck_assert_uint_eq(two.out_size, one.out_size);
                test_run(&r, one.out, one.out_size, &member, DKM("rewrap", "--ad=y"));
                ck_assert_int_eq(r.status, 7);
                test_run_free(&r);
                run_ok(&r, two.out, two.out_size, &member, DKM("decrypt", "--ad=x"));
                ck_assert(r.out_size == 5 && memcmp(r.out, "short", 5) == 0);
                test_run_free(&r);
                test_run_free(&one);
                test_run_free(&two);
        }

        /* Retire generation 1 (the on-demand loader reports it): status 5. */
        {
                TestRun old;

                run_ok(&old, NULL, 0, &member, DKM("encrypt", "-g", g));
                ck_assert_int_eq(test_store("rollover", g), 0);
                ck_assert_int_eq(test_store("retire", g, "2"), 0);
                ck_assert_int_eq(test_store("load", g), 0);
                ck_assert(test_request_key_install());
                test_run(&r, old.out, old.out_size, &member, DKM("decrypt"));
                ck_assert_int_eq(r.status, 5);
                assert_one_line(&r, "retired");
                ck_assert_ptr_nonnull(strstr(r.err, "generation 2 of key group"));
                test_run_free(&r);
                test_request_key_remove();
                test_run_free(&old);
        }
}
END_TEST

static Suite *cli_suite(bool integration) {
        Suite *s = suite_create("dkm-cli");
        TCase *tc = tcase_create("usage");

        tcase_add_test(tc, test_usage);
        suite_add_tcase(s, tc);
        if (integration) {
                tc = tcase_create("kernel");
                tcase_set_timeout(tc, 300);
                tcase_add_test(tc, test_roundtrip);
                tcase_add_test(tc, test_streams);
                suite_add_tcase(s, tc);
        }
        return s;
}

int main(void) {
        return test_world_main(cli_suite, key_group_tags);
}
