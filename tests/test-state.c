/* SPDX-License-Identifier: MIT */
/* A throwaway state directory per test, for the suites that drive the store library and dkm-store on disk. */
#include <check.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "macro.h"
#include "test-helpers.h"
#include "test-state.h"

TestState TS;

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        (void) (flag == FTW_DP ? rmdir(path) : unlink(path));
        return 0;
}

int test_state_begin(const char *name) {
        snprintf(TS.top, sizeof(TS.top), "/tmp/dkm-test-%s.XXXXXX", name);
        return mkdtemp(TS.top) ? 0 : -errno;
}

void test_state_end(void) {
        (void) nftw(TS.top, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int test_state_run(const char *name, Suite *s) {
        int r;

        if (test_state_begin(name) < 0)
                return EXIT_FAILURE;
        r = test_run_suite(s);
        test_state_end();
        return r;
}

void test_state_setup(void) {
        snprintf(TS.base, sizeof(TS.base), "%s/t.XXXXXX", TS.top);
        ck_assert_ptr_nonnull(mkdtemp(TS.base));
        snprintf(TS.sdir, sizeof(TS.sdir), "%s/state", TS.base);
}

void test_state_teardown(void) {
        (void) nftw(TS.base, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

const char *test_state_path(const char *rel) {
        static char p[4][512];
        static unsigned i;
        char *r = p[i++ % 4];

        snprintf(r, sizeof(p[0]), "%s/%s", TS.sdir, rel);
        return r;
}

int test_state_run_store(char *out, size_t size, bool with_stdout, const char *const *args) {
        const char *exe = getenv("DKM_STORE");
        char sd[160], of[160];
        const char *argv[16];
        size_t n = 0;
        int status;
        pid_t pid;
        FILE *f;

        ck_assert_msg(exe, "DKM_STORE is not set (meson test sets it)");
        snprintf(sd, sizeof(sd), "--state-dir=%s", TS.sdir);
        snprintf(of, sizeof(of), "%s/output", TS.base);
        argv[n++] = exe;
        argv[n++] = sd;
        for (; *args && n < ELEMENTSOF(argv) - 1; args++)
                argv[n++] = *args;
        argv[n] = NULL;
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                /* Without "e": these must stay open across exec. */
                if (!freopen(of, "w", stderr) || !freopen("/dev/null", "r", stdin))
                        _exit(127);
                if (with_stdout ? dup2(STDERR_FILENO, STDOUT_FILENO) < 0 : !freopen("/dev/null", "w", stdout))
                        _exit(127);
                execv(exe, (char *const *) argv);
                _exit(127);
        }
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFEXITED(status));
        f = fopen(of, "re");
        ck_assert_ptr_nonnull(f);
        n = fread(out, 1, size - 1, f);
        out[n] = 0;
        fclose(f);
        return WEXITSTATUS(status);
}

Store *test_state_init_with_group(const char *name) {
        Store *s = NULL;

        ck_assert_int_eq(store_init(TS.sdir, NULL, &s), 0);
        ck_assert_int_eq(store_group_create(s, name, 1000, CRYPT_ALG_XCHACHA20_POLY1305, NULL, NULL), 0);
        return s;
}

int test_state_open_unlock(Store **ret, char *why, size_t size) {
        Store *s = NULL;
        int r;

        ck_assert_int_eq(store_open(TS.sdir, &s), 0);
        r = store_unlock(s, NULL);
        snprintf(why, size, "%s", r < 0 && store_last_error(s) ? store_last_error(s) : "");
        *ret = s;
        return r;
}

void test_state_remove_key_file(void) {
        ck_assert_int_eq(unlink(test_state_path("protectors/local.key")), 0);
}

/* nftw has no user data pointer: the needle lives here. */
static const void *needle;
static size_t needle_size;
static bool needle_found;

static int find_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        if (flag == FTW_F && S_ISREG(st->st_mode)) {
                size_t n;
                _cleanup_free_ char *d = test_read_all(path, &n);
                if (memmem(d, n, needle, needle_size))
                        needle_found = true;
        }
        return 0;
}

bool test_state_contains(const void *p, size_t n) {
        needle = p;
        needle_size = n;
        needle_found = false;
        ck_assert_int_eq(nftw(TS.sdir, find_one, 16, FTW_PHYS), 0);
        return needle_found;
}

bool test_state_contains_or_hex(const void *p, size_t n) {
        _cleanup_free_ char *hex = malloc(2 * n + 1);

        ck_assert_ptr_nonnull(hex);
        for (size_t i = 0; i < n; i++)
                sprintf(hex + 2 * i, "%02x", ((const uint8_t *) p)[i]);
        return test_state_contains(p, n) || test_state_contains(hex, 2 * n);
}

bool test_store_has_protector(Store *s, const char *name, const char *type) {
        StoreProtectorInfo *l = NULL;
        size_t n = 0;
        bool found = false;

        ck_assert_int_eq(store_protector_list(s, &l, &n), 0);
        for (size_t i = 0; i < n; i++)
                if (strcmp(l[i].name, name) == 0 && strcmp(l[i].type, type) == 0)
                        found = true;
        free(l);
        return found;
}

char *test_read_all(const char *path, size_t *ret_size) {
        FILE *f = fopen(path, "re");
        char *buf = malloc(1 << 20);
        size_t n;

        ck_assert_msg(f, "%s: %m", path);
        ck_assert_ptr_nonnull(buf);
        n = fread(buf, 1, (1 << 20) - 1, f);
        fclose(f);
        buf[n] = 0;
        if (ret_size)
                *ret_size = n;
        return buf;
}

void test_write_all(const char *path, const void *data, size_t size) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, data, size), (ssize_t) size);
        close(fd);
}

void test_write_with_checksum(const char *path, const char *body) {
        uint8_t sum[CRYPT_HASH_BYTES];
        FILE *f = fopen(path, "we");

        crypt_hash(body, strlen(body), sum);
        ck_assert_ptr_nonnull(f);
        fputs(body, f);
        fputs("checksum=", f);
        for (size_t i = 0; i < sizeof(sum); i++)
                fprintf(f, "%02x", sum[i]);
        fputs("\n", f);
        fclose(f);
}

Secret *test_secret(const char *s) {
        Secret *p;

        ck_assert_int_eq(secret_new_copy(s, strlen(s), &p), 0);
        return p;
}
