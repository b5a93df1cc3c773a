/* SPDX-License-Identifier: MIT */
/* Tests for the shared helpers: value parsing, durable file I/O, secret buffers. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "parse.h"
#include "secret.h"
#include "test-helpers.h"
#include "utf8.h"

/* ASan turns mlock() into a no-op, so only other builds can see a secret page locked. */
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

START_TEST(test_parse_uint) {
        uint64_t v;
        uint32_t w;

        ck_assert_int_eq(parse_uint64("0", UINT64_MAX, &v), 0);
        ck_assert_uint_eq(v, 0);
        ck_assert_int_eq(parse_uint64("18446744073709551615", UINT64_MAX, &v), 0);
        ck_assert_uint_eq(v, UINT64_MAX);
        ck_assert_int_eq(parse_uint64("18446744073709551616", UINT64_MAX, &v), -ERANGE);
        ck_assert_int_eq(parse_uint64("", UINT64_MAX, &v), -EINVAL);
        ck_assert_int_eq(parse_uint64("-1", UINT64_MAX, &v), -EINVAL);
        ck_assert_int_eq(parse_uint64("12x", UINT64_MAX, &v), -EINVAL);
        ck_assert_int_eq(parse_uint64(" 1", UINT64_MAX, &v), -EINVAL);
        ck_assert_int_eq(parse_uint32("4294967295", &w), 0);
        ck_assert_uint_eq(w, UINT32_MAX);
        ck_assert_int_eq(parse_uint32("4294967296", &w), -ERANGE);
}
END_TEST

START_TEST(test_parse_duration) {
        uint64_t v;
        char buf[64];

        ck_assert_int_eq(parse_duration_usec("90", &v), 0);
        ck_assert_uint_eq(v, 90 * UINT64_C(1000000));
        ck_assert_int_eq(parse_duration_usec("15min", &v), 0);
        ck_assert_uint_eq(v, 900 * UINT64_C(1000000));
        ck_assert_int_eq(parse_duration_usec("1d12h", &v), 0);
        ck_assert_uint_eq(v, 36 * 3600 * UINT64_C(1000000));
        ck_assert_int_eq(parse_duration_usec("2w", &v), 0);
        ck_assert_uint_eq(v, 14 * 86400 * UINT64_C(1000000));
        ck_assert_int_eq(parse_duration_usec("0", &v), 0);
        ck_assert_uint_eq(v, 0);
        ck_assert_int_eq(parse_duration_usec("", &v), -EINVAL);
        ck_assert_int_eq(parse_duration_usec("h", &v), -EINVAL);
        ck_assert_int_eq(parse_duration_usec("5 days", &v), -EINVAL);
        ck_assert_int_eq(parse_duration_usec("5y", &v), -EINVAL);
        ck_assert_int_eq(parse_duration_usec("99999999999999999999w", &v), -ERANGE);
        ck_assert_int_eq(parse_duration_usec("999999999999999w", &v), -ERANGE);

        format_duration_usec(36 * 3600 * UINT64_C(1000000), buf, sizeof(buf));
        ck_assert_str_eq(buf, "1d12h");
        format_duration_usec(0, buf, sizeof(buf));
        ck_assert_str_eq(buf, "0");
        format_duration_usec(61 * UINT64_C(1000000) + 5, buf, sizeof(buf));
        ck_assert_str_eq(buf, "1min1s5us");
        format_duration_usec(UINT64_MAX, buf, 4); /* truncates, never overflows */
        ck_assert_uint_eq(strlen(buf), 3);
}
END_TEST

START_TEST(test_parse_gid) {
        gid_t g;

        ck_assert_int_eq(parse_gid("0", &g), 0);
        ck_assert_uint_eq(g, 0);
        ck_assert_int_eq(parse_gid("root", &g), 0);
        ck_assert_uint_eq(g, 0);
        ck_assert_int_eq(parse_gid("no-such-group-dkm-test", &g), -ENOENT);
}
END_TEST

static char tmpdir[] = "/tmp/dkm-test-shared-XXXXXX";

static void make_tmpdir(void) {
        ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

START_TEST(test_utf8_decode) {
        static const struct {
                const char *bytes;
                size_t n, len;
                uint32_t cp;
        } cases[] = {
                { "a", 1, 1, 'a' },
                { "\xc3\xa9", 2, 2, 0xe9 },             /* é */
                { "\xe2\x9c\x93", 3, 3, 0x2713 },       /* ✓ */
                { "\xf0\x9f\x94\x91", 4, 4, 0x1f511 }, /* 🔑 */
                { "\xf4\x8f\xbf\xbf", 4, 4, 0x10ffff },
                { "\xc3", 1, 0, 0 },                     /* cut short */
                { "\xe2\x9c", 2, 0, 0 },
                { "\xc0\xaf", 2, 0, 0 },                 /* overlong */
                { "\xe0\x80\xaf", 3, 0, 0 },
                { "\xed\xa0\x80", 3, 0, 0 },            /* surrogate */
                { "\xf4\x90\x80\x80", 4, 0, 0 },        /* beyond U+10FFFF */
                { "\x80", 1, 0, 0 },                     /* a continuation byte alone */
                { "\xff", 1, 0, 0 },
                { "\xc3(", 2, 0, 0 },                    /* a bad continuation */
                { "", 0, 0, 0 },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                uint32_t cp = UINT32_MAX;
                size_t l = utf8_decode((const unsigned char *) cases[i].bytes, cases[i].n, &cp);

                ck_assert_msg(l == cases[i].len, "case %zu: length %zu, want %zu", i, l, cases[i].len);
                if (l > 0)
                        ck_assert_uint_eq(cp, cases[i].cp);
                else
                        ck_assert_uint_eq(cp, UINT32_MAX); /* untouched */
        }
        ck_assert_uint_eq(utf8_decode((const unsigned char *) "\xc3\xa9", 2, NULL), 2);
}
END_TEST

START_TEST(test_atomic_write_and_read) {
        _cleanup_close_ int dfd = -EBADF;
        _cleanup_free_ char *data = NULL;
        struct stat st;
        size_t n;

        make_tmpdir();
        dfd = open_dir_nofollow(AT_FDCWD, tmpdir, 0700, 0);
        ck_assert_int_ge(dfd, 0);
        ck_assert_int_eq(write_file_atomic(dfd, "f", "hello", 5, 0600), 0);
        ck_assert_int_eq(fstatat(dfd, "f", &st, AT_SYMLINK_NOFOLLOW), 0);
        ck_assert_uint_eq(st.st_mode & 07777, 0600);
        ck_assert_int_eq(write_file_atomic(dfd, "f", "bye", 3, 0640), 0);
        ck_assert_int_eq(read_file_full(dfd, "f", 100, &data, &n), 0);
        ck_assert_str_eq(data, "bye");
        ck_assert_uint_eq(n, 3);
        ck_assert_int_eq(fstatat(dfd, "f", &st, AT_SYMLINK_NOFOLLOW), 0);
        ck_assert_uint_eq(st.st_mode & 07777, 0640);
        free(TAKE_PTR(data));
        ck_assert_int_eq(read_file_full(dfd, "f", 2, &data, &n), -EFBIG);
        ck_assert_int_eq(write_file_exclusive(dfd, "f", "x", 1, 0600), -EEXIST);
        ck_assert_int_eq(write_file_exclusive(dfd, "g", "x", 1, 0600), 0);

        /* symlinks are refused, never followed */
        ck_assert_int_eq(symlinkat("f", dfd, "link"), 0);
        ck_assert_int_eq(read_file_full(dfd, "link", 100, &data, &n), -ELOOP);
        ck_assert_int_eq(symlinkat(tmpdir, dfd, "dirlink"), 0);
        ck_assert_int_lt(open_dir_nofollow(dfd, "dirlink", 0700, 0), 0);
        ck_assert_int_eq(mkdirat(dfd, "sub", 0700), 0);
        ck_assert_int_eq(read_file_full(dfd, "sub", 100, &data, &n), -EBADFD);

        ck_assert_int_eq(unlink_durable(dfd, "f"), 0);
        ck_assert_int_eq(unlink_durable(dfd, "f"), 0);
        ck_assert_int_eq(read_file_full(dfd, "f", 100, &data, &n), -ENOENT);
        /* no temp files left behind */
        ck_assert_int_eq(faccessat(dfd, ".#f.tmp", F_OK, 0), -1);
        (void) unlinkat(dfd, "g", 0);
        (void) unlinkat(dfd, "link", 0);
        (void) unlinkat(dfd, "dirlink", 0);
        (void) unlinkat(dfd, "sub", AT_REMOVEDIR);
        ck_assert_int_eq(rmdir(tmpdir), 0);
}
END_TEST

START_TEST(test_secret) {
        _cleanup_secret_ Secret *a = NULL, *b = NULL, *c = NULL;

        ck_assert_int_eq(secret_new_copy("abcd", 4, &a), 0);
        ck_assert_int_eq(secret_new_copy("abcd", 4, &b), 0);
        ck_assert_int_eq(secret_new_copy("abce", 4, &c), 0);
        ck_assert(secret_equal(a, b));
        ck_assert(!secret_equal(a, c));
        ck_assert(!secret_equal(a, NULL));
        ck_assert_ptr_null(secret_free(NULL));
        /* secret memory is excluded from core dumps: sodium_malloc marks it MADV_DONTDUMP,
         * visible as "dd" in this mapping's VmFlags */
        {
                FILE *f = fopen("/proc/self/smaps", "re");
                char line[512];
                uintptr_t lo = 0, hi = 0, p = (uintptr_t) a->data;
                int in = 0, found = 0;

                ck_assert_ptr_nonnull(f);
                while (fgets(line, sizeof(line), f)) {
                        if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && strchr(line, ' ') - line > 8) {
                                in = p >= lo && p < hi;
                                continue;
                        }
                        if (in && strncmp(line, "VmFlags:", 8) == 0) {
                                ck_assert_msg(strstr(line, " dd") != NULL, "secret page is dumpable: %s", line);
                                if (!UNDER_ASAN)
                                        ck_assert_msg(strstr(line, " lo") != NULL, "secret page is not locked: %s", line);
                                found = 1;
                        }
                }
                fclose(f);
                ck_assert(found);
        }
}
END_TEST

int main(void) {
        Suite *s = suite_create("shared");
        TCase *tc = tcase_create("core");

        tcase_add_test(tc, test_parse_uint);
        tcase_add_test(tc, test_parse_duration);
        tcase_add_test(tc, test_parse_gid);
        tcase_add_test(tc, test_utf8_decode);
        tcase_add_test(tc, test_atomic_write_and_read);
        tcase_add_test(tc, test_secret);
        suite_add_tcase(s, tc);
        return test_run_suite(s);
}
