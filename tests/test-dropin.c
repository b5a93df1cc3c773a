/* SPDX-License-Identifier: MIT */
/* Tests for the groups.d drop-ins: every key, defaults, each error with its line, precedence, masking. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "group-dropin.h"
#include "test-helpers.h"

#define SEC UINT64_C(1000000)

/* top: one dir per run, removed by main() even when a test failed; base: one per test inside
 * it, holding etc/, run/ and usr/ (the three drop-in dirs, highest priority first). */
static char top[64], base[96], etc[128], run[128], usr[128];
static const char *dirs[4];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        (void) (flag == FTW_DP ? rmdir(path) : unlink(path));
        return 0;
}

static void setup(void) {
        snprintf(base, sizeof(base), "%s/t.XXXXXX", top);
        ck_assert_ptr_nonnull(mkdtemp(base));
        snprintf(etc, sizeof(etc), "%s/etc", base);
        snprintf(run, sizeof(run), "%s/run", base);
        snprintf(usr, sizeof(usr), "%s/usr", base);
        ck_assert_int_eq(mkdir(etc, 0755), 0);
        ck_assert_int_eq(mkdir(run, 0755), 0);
        ck_assert_int_eq(mkdir(usr, 0755), 0);
        dirs[0] = etc, dirs[1] = run, dirs[2] = usr, dirs[3] = NULL;
}

static void teardown(void) {
        (void) chmod(usr, 0755); /* test_unreadable took it away */
        (void) nftw(base, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static const char *join(const char *dir, const char *file) {
        static char p[4][512];
        static unsigned i;
        char *r = p[i++ % 4];

        snprintf(r, sizeof(p[0]), "%s/%s", dir, file);
        return r;
}

static void write_bytes(const char *path, const void *data, size_t size) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

        ck_assert_msg(fd >= 0, "%s: %s", path, strerror(errno));
        ck_assert_int_eq(write(fd, data, size), (ssize_t) size);
        close(fd);
}

static void write_text(const char *dir, const char *file, const char *text) {
        write_bytes(join(dir, file), text, strlen(text));
}

/* The group file for UnixGroup=unix_group and nothing else. */
static void write_group(const char *dir, const char *file, const char *unix_group) {
        char text[256];

        snprintf(text, sizeof(text), "[KeyGroup]\nUnixGroup=%s\n", unix_group);
        write_text(dir, file, text);
}

static GroupDropin *parse_ok(const char *text) {
        _cleanup_free_ char *error = NULL;
        GroupDropin *d = NULL;
        int r;

        r = group_dropin_parse("/x/g.conf", "g", text, strlen(text), &d, &error);
        ck_assert_msg(r == 0, "parse failed (%d): %s", r, error ?: "");
        ck_assert_ptr_null(error);
        ck_assert_ptr_nonnull(d);
        return d;
}

/* The message for a refused text; checks that nothing else came back. */
static char *parse_error(const char *path, const char *name, const char *text, size_t size) {
        GroupDropin *d = NULL;
        char *error = NULL;

        ck_assert_int_eq(group_dropin_parse(path, name, text, size, &d, &error), -EBADMSG);
        ck_assert_ptr_null(d);
        ck_assert_ptr_nonnull(error);
        return error;
}

typedef struct Loaded {
        GroupDropin **d;
        size_t n;
        char **problems;
} Loaded;

static void loaded_done(Loaded *l) {
        group_dropin_free_array(l->d, l->n);
        strv_free(l->problems);
}

static Loaded load(const char *const *list) {
        Loaded l = {};

        ck_assert_int_eq(group_dropin_load_dirs(list, &l.d, &l.n, &l.problems), 0);
        for (size_t i = 1; i < l.n; i++)
                ck_assert_str_lt(l.d[i - 1]->name, l.d[i]->name);
        return l;
}

static size_t n_problems(const Loaded *l) {
        size_t n = 0;

        for (char **p = l->problems; p && *p; p++)
                n++;
        return n;
}

/* The problem about path (none: NULL); asserts there is at most one. */
static const char *problem_for(const Loaded *l, const char *path) {
        const char *found = NULL;
        size_t n = strlen(path);

        for (char **p = l->problems; p && *p; p++)
                if (strncmp(*p, path, n) == 0 && ((*p)[n] == ':')) {
                        ck_assert_msg(!found, "two problems for %s", path);
                        found = *p;
                }
        return found;
}

static const GroupDropin *find(const Loaded *l, const char *name) {
        for (size_t i = 0; i < l->n; i++)
                if (strcmp(l->d[i]->name, name) == 0)
                        return l->d[i];
        return NULL;
}

START_TEST(test_every_key) {
        _cleanup_group_dropin_ GroupDropin *d = NULL;

        d = parse_ok("# a comment\n"
                     "; another\n"
                     "\n"
                     "  [KeyGroup]  \n"
                     "UnixGroup = 1234\n"
                     "\tAlgorithm\t=\taes256-gcm\t\n"
                     "RolloverPeriod=1d12h\n"
                     "PropagationDelay=90\n"
                     "HotWindow=62\n"
                     "AllowHumanMembers=Yes"); /* no final newline: fine */
        ck_assert_str_eq(d->name, "g");
        ck_assert_str_eq(d->path, "/x/g.conf");
        ck_assert_str_eq(d->unix_group, "1234");
        ck_assert_int_eq(d->alg, CRYPT_ALG_AES256_GCM);
        ck_assert_uint_eq(d->policy.rollover_period_usec, 36 * 3600 * SEC);
        ck_assert_uint_eq(d->policy.propagation_delay_usec, 90 * SEC);
        ck_assert_uint_eq(d->policy.hot_window, STORE_HOT_WINDOW_MAX);
        ck_assert(d->policy.allow_human_members);
        d = group_dropin_free(d);

        d = parse_ok("[KeyGroup]\n# Schlüssel für Post ✓\nUnixGroup=mail-svc\nAlgorithm=xchacha20-poly1305\n"
                     "RolloverPeriod=2w\nPropagationDelay=15min\nHotWindow=0\nAllowHumanMembers=no\n");
        ck_assert_str_eq(d->unix_group, "mail-svc");
        ck_assert_int_eq(d->alg, CRYPT_ALG_XCHACHA20_POLY1305);
        ck_assert_uint_eq(d->policy.rollover_period_usec, 14 * 24 * 3600 * SEC);
        ck_assert_uint_eq(d->policy.propagation_delay_usec, 15 * 60 * SEC);
        ck_assert_uint_eq(d->policy.hot_window, 0);
        ck_assert(!d->policy.allow_human_members);
        d = group_dropin_free(d);

        d = parse_ok("[KeyGroup]\nUnixGroup=a\nApprovalGroups=  oncall\t2001   security \nMaxGrant=15min\n"
                     "RequestTimeout=2h\nRetireNeedsApproval=no\n");
        ck_assert_uint_eq(d->n_approval_groups, 3);
        ck_assert_str_eq(d->approval_groups[0], "oncall");
        ck_assert_str_eq(d->approval_groups[1], "2001");
        ck_assert_str_eq(d->approval_groups[2], "security");
        ck_assert_uint_eq(d->policy.max_grant_usec, 15 * 60 * SEC);
        ck_assert_uint_eq(d->policy.request_timeout_usec, 2 * 3600 * SEC);
        ck_assert(!d->policy.retire_needs_approval);
        d = group_dropin_free(d);

        d = parse_ok("\xef\xbb\xbf[KeyGroup]\nUnixGroup=bom\n"); /* a byte order mark is skipped */
        ck_assert_str_eq(d->unix_group, "bom");
}
END_TEST

START_TEST(test_booleans) {
        static const struct {
                const char *value;
                bool expect;
        } cases[] = {
                { "yes", true }, { "true", true }, { "on", true }, { "1", true }, { "TRUE", true },
                { "no", false }, { "false", false }, { "off", false }, { "0", false }, { "Off", false },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_group_dropin_ GroupDropin *d = NULL;
                char text[128];

                snprintf(text, sizeof(text), "[KeyGroup]\nUnixGroup=a\nAllowHumanMembers=%s\n", cases[i].value);
                d = parse_ok(text);
                ck_assert_msg(d->policy.allow_human_members == cases[i].expect, "%s", cases[i].value);
        }
}
END_TEST

START_TEST(test_defaults) {
        _cleanup_group_dropin_ GroupDropin *d = NULL;
        StoreGroupPolicy def = STORE_GROUP_POLICY_DEFAULT;

        d = parse_ok("[KeyGroup]\nUnixGroup=mail-svc\n");
        ck_assert_str_eq(d->unix_group, "mail-svc");
        ck_assert_int_eq(d->alg, CRYPT_ALG_XCHACHA20_POLY1305);
        ck_assert_uint_eq(d->policy.rollover_period_usec, def.rollover_period_usec);
        ck_assert_uint_eq(d->policy.rollover_period_usec, 0);
        ck_assert_uint_eq(d->policy.propagation_delay_usec, def.propagation_delay_usec);
        ck_assert_uint_eq(d->policy.propagation_delay_usec, 0);
        ck_assert_uint_eq(d->policy.hot_window, def.hot_window);
        ck_assert_uint_eq(d->policy.hot_window, STORE_HOT_WINDOW_DEFAULT);
        ck_assert(d->policy.allow_human_members == def.allow_human_members);
        ck_assert(!d->policy.allow_human_members);
        /* Break-glass: off (no levels), 1 h grants, requests live a day, retire needs approval. */
        ck_assert_uint_eq(d->n_approval_groups, 0);
        ck_assert_uint_eq(d->policy.max_grant_usec, 3600 * SEC);
        ck_assert_uint_eq(d->policy.request_timeout_usec, 24 * 3600 * SEC);
        ck_assert(d->policy.retire_needs_approval);
}
END_TEST

/* A literal with NUL bytes in it, and its size. */
#define BYTES(s) s, sizeof(s) - 1

/* Every error kind: its line (0: a whole-file problem) and what the message says. */
static const struct {
        const char *text;
        size_t size; /* 0: strlen(text) */
        unsigned line;
        const char *what;
} bad[] = {
        { "[KeyGroup]\nUnixGroup=a\n[Other]\n", 0, 3, "unknown section [Other]" },
        { "[KeyGroup]\n[KeyGroup]\nUnixGroup=a\n", 0, 2, "second [KeyGroup] section (first on line 1)" },
        { "[KeyGroup\nUnixGroup=a\n", 0, 1, "malformed section header" },
        { "[KeyGroup] # the group\nUnixGroup=a\n", 0, 1, "malformed section header" },
        { "# first\nUnixGroup=a\n[KeyGroup]\n", 0, 2, "UnixGroup= outside a section" },
        { "[KeyGroup]\nUnixGroup=a\nFoo=1\n", 0, 3, "unknown key 'Foo'" },
        { "[KeyGroup]\n\xef\xbb\xbf[KeyGroup]\n", 0, 2, "not a Key=Value line" },
        { "[KeyGroup]\nunixgroup=a\n", 0, 2, "unknown key 'unixgroup'" },
        { "# c\n\n; c\n[KeyGroup]\n\n  Foo = 1\nUnixGroup=a\n", 0, 6, "unknown key 'Foo'" },
        { "[KeyGroup]\nUnixGroup=a\nHotWindow=1\nHotWindow=2\n", 0, 4, "duplicate HotWindow= (first on line 3)" },
        { "[KeyGroup]\nUnixGroup=a\nUnixGroup=a\n", 0, 3, "duplicate UnixGroup= (first on line 2)" },
        { "[KeyGroup]\nAlgorithm=aes256-gcm\n", 0, 0, "missing UnixGroup=" },
        { "# nothing but a comment\n", 0, 0, "no [KeyGroup] section" },
        { "[KeyGroup]\nUnixGroup\n", 0, 2, "not a Key=Value line" },
        { "[KeyGroup]\nUnixGroup=\n", 0, 2, "UnixGroup= has no value" },
        { "[KeyGroup]\nUnixGroup=mail-svc   # the group\n", 0, 2, "comments go on lines of their own" },
        { "[KeyGroup]\nUnixGroup=4294967295\n", 0, 2, "gid out of range" },
        { "[KeyGroup]\nUnixGroup=mail:svc\n", 0, 2, "not a group name or a numeric gid" },
        { "[KeyGroup]\nUnixGroup=-mail\n", 0, 2, "not a group name or a numeric gid" },
        { "[KeyGroup]\nUnixGroup=a\nAlgorithm=rot13\n", 0, 3, "Algorithm=rot13: unknown algorithm" },
        { "[KeyGroup]\nUnixGroup=a\nRolloverPeriod=soon\n", 0, 3, "RolloverPeriod=soon: not a duration" },
        { "[KeyGroup]\nUnixGroup=a\nRolloverPeriod=99999999999999999999d\n", 0, 3, "duration too long" },
        { "[KeyGroup]\nUnixGroup=a\nPropagationDelay=10m\n", 0, 3, "PropagationDelay=10m: not a duration" },
        { "[KeyGroup]\nUnixGroup=a\nPropagationDelay=-1\n", 0, 3, "not a duration" },
        { "[KeyGroup]\nUnixGroup=a\nHotWindow=63\n", 0, 3, "HotWindow=63: not a number from 0 to 62" },
        { "[KeyGroup]\nUnixGroup=a\nHotWindow=two\n", 0, 3, "not a number from 0 to 62" },
        { "[KeyGroup]\nUnixGroup=a\nAllowHumanMembers=maybe\n", 0, 3, "not a boolean" },
        { "[KeyGroup]\nUnixGroup=a\nApprovalGroups=ops sec ops\n", 0, 3, "'ops' appears at two levels" },
        { "[KeyGroup]\nUnixGroup=a\nApprovalGroups=a b c d e f g h i\n", 0, 3, "at most 8 approval levels" },
        { "[KeyGroup]\nUnixGroup=a\nApprovalGroups=ops,sec\n", 0, 3, "not a group name or a numeric gid" },
        { "[KeyGroup]\nUnixGroup=a\nMaxGrant=0\n", 0, 3, "MaxGrant=0: must be at least 1s" },
        { "[KeyGroup]\nUnixGroup=a\nRequestTimeout=soon\n", 0, 3, "not a duration" },
        { "[KeyGroup]\nUnixGroup=a\nRetireNeedsApproval=maybe\n", 0, 3, "not a boolean" },
        { BYTES("[KeyGroup]\nUnixGroup=a\0b\n"), 2, "NUL byte" },
        { BYTES("[KeyGroup]\n\0"), 2, "NUL byte" },
        { "[KeyGroup]\r\nUnixGroup=a\r\n", 0, 1, "carriage return" },
        { "[KeyGroup]\nUnixGroup=a\n# \x1b[31m\n", 0, 3, "control character 0x1b" },
        { "[KeyGroup]\nUnixGroup=a\x7f\n", 0, 2, "control character 0x7f" },
        { "[KeyGroup]\n# \xff\nUnixGroup=a\n", 0, 2, "invalid UTF-8" },
        { "[KeyGroup]\n# \xc0\xaf overlong\nUnixGroup=a\n", 0, 2, "invalid UTF-8" },
        { "[KeyGroup]\n# \xed\xa0\x80 surrogate\nUnixGroup=a\n", 0, 2, "invalid UTF-8" },
        { "[KeyGroup]\n# \xf4\x90\x80\x80 beyond U+10FFFF\nUnixGroup=a\n", 0, 2, "invalid UTF-8" },
        { "[KeyGroup]\nUnixGroup=a\n# cut short \xe2\x82", 0, 3, "invalid UTF-8" },
};

/* "PATH:LINE: ", or "PATH: " for a whole-file problem. */
static char *expected_prefix(const char *path, unsigned line) {
        char *m;

        if (line > 0)
                ck_assert_int_ge(asprintf(&m, "%s:%u: ", path, line), 0);
        else
                ck_assert_int_ge(asprintf(&m, "%s: ", path), 0);
        return m;
}

START_TEST(test_errors) {
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                size_t size = bad[i].size ?: strlen(bad[i].text);
                _cleanup_free_ char *error = NULL, *prefix = NULL;

                error = parse_error("/x/g.conf", "g", bad[i].text, size);
                prefix = expected_prefix("/x/g.conf", bad[i].line);
                ck_assert_msg(strncmp(error, prefix, strlen(prefix)) == 0, "case %zu: '%s' does not start with '%s'", i,
                              error, prefix);
                ck_assert_msg(strstr(error + strlen(prefix), bad[i].what), "case %zu: '%s' does not say '%s'", i,
                              error, bad[i].what);
                ck_assert_msg(!strchr(error, '\n'), "case %zu: a newline in '%s'", i, error);
        }
}
END_TEST

/* The same errors through the loader: one problem each, with the same message, and the file
 * skipped while its neighbour loads. */
START_TEST(test_errors_skip_file) {
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                size_t size = bad[i].size ?: strlen(bad[i].text);
                _cleanup_free_ char *want = NULL;
                _cleanup_(loaded_done) Loaded l = {};
                const char *path = join(usr, "bad.conf");

                write_bytes(path, bad[i].text, size);
                write_group(usr, "good.conf", "good-svc");
                want = parse_error(path, "bad", bad[i].text, size);
                l = load(dirs);
                ck_assert_uint_eq(l.n, 1);
                ck_assert_str_eq(l.d[0]->name, "good");
                ck_assert_uint_eq(n_problems(&l), 1);
                ck_assert_str_eq(l.problems[0], want);
        }
}
END_TEST

START_TEST(test_precedence) {
        _cleanup_(loaded_done) Loaded l = {};
        char usr_slash[160];

        write_group(etc, "a.conf", "etc-a");
        write_group(run, "a.conf", "run-a");
        write_group(usr, "a.conf", "usr-a");
        write_group(usr, "b.conf", "usr-b");
        write_group(run, "c.conf", "run-c");
        write_group(usr, "c.conf", "usr-c");
        /* the admin's broken override wins too: reported, never a silent fallback to /usr/lib */
        write_text(etc, "d.conf", "[KeyGroup]\nUnixGroup=etc-d\nHotWindow=99\n");
        write_group(usr, "d.conf", "usr-d");
        /* sorted by group name, not by file name ("a.b.conf" < "a.conf" byte-wise) */
        write_group(usr, "a.b.conf", "usr-ab");

        snprintf(usr_slash, sizeof(usr_slash), "%s/", usr); /* a trailing slash makes no "//" */
        l = load((const char *const[]) { etc, run, usr_slash, NULL });
        ck_assert_uint_eq(l.n, 4);
        ck_assert_str_eq(l.d[0]->name, "a");
        ck_assert_str_eq(l.d[0]->unix_group, "etc-a");
        ck_assert_str_eq(l.d[0]->path, join(etc, "a.conf"));
        ck_assert_str_eq(l.d[1]->name, "a.b");
        ck_assert_str_eq(l.d[1]->path, join(usr, "a.b.conf"));
        ck_assert_str_eq(l.d[2]->name, "b");
        ck_assert_str_eq(l.d[2]->unix_group, "usr-b");
        ck_assert_str_eq(l.d[2]->path, join(usr, "b.conf"));
        ck_assert_str_eq(l.d[3]->name, "c");
        ck_assert_str_eq(l.d[3]->unix_group, "run-c");
        ck_assert_str_eq(l.d[3]->path, join(run, "c.conf"));
        ck_assert_uint_eq(n_problems(&l), 1);
        ck_assert_ptr_nonnull(problem_for(&l, join(etc, "d.conf")));
        ck_assert_ptr_nonnull(strstr(problem_for(&l, join(etc, "d.conf")), ":3: HotWindow=99"));
}
END_TEST

START_TEST(test_masking) {
        _cleanup_(loaded_done) Loaded l = {};
        const char *elsewhere = join(base, "elsewhere.conf");

        write_text(etc, "a.conf", ""); /* empty in /etc masks /usr/lib */
        write_group(usr, "a.conf", "usr-a");
        ck_assert_int_eq(symlink("/dev/null", join(run, "b.conf")), 0); /* /dev/null in /run too */
        write_group(usr, "b.conf", "usr-b");
        write_text(usr, "c.conf", ""); /* a mask below does not hide a file above */
        write_group(etc, "c.conf", "etc-c");
        ck_assert_int_eq(symlink("/dev/null", join(etc, "d.conf")), 0); /* masking nothing: fine */
        write_group(base, "elsewhere.conf", "linked");
        ck_assert_int_eq(symlink(elsewhere, join(etc, "e.conf")), 0); /* symlinks are followed */

        l = load(dirs);
        ck_assert_ptr_null(l.problems);
        ck_assert_uint_eq(l.n, 2);
        ck_assert_str_eq(l.d[0]->name, "c");
        ck_assert_str_eq(l.d[0]->unix_group, "etc-c");
        ck_assert_str_eq(l.d[1]->name, "e");
        ck_assert_str_eq(l.d[1]->unix_group, "linked");
        ck_assert_str_eq(l.d[1]->path, join(etc, "e.conf")); /* where dkmd found it, not the target */
}
END_TEST

START_TEST(test_missing_and_bad_dirs) {
        _cleanup_(loaded_done) Loaded l = {}, none = {}, empty = {};
        const char *missing = join(base, "missing"), *file = join(base, "file");

        write_group(usr, "a.conf", "usr-a");
        write_text(base, "file", "not a directory\n");
        l = load((const char *const[]) { missing, file, usr, NULL });
        ck_assert_uint_eq(l.n, 1);
        ck_assert_uint_eq(n_problems(&l), 1);
        ck_assert_ptr_null(problem_for(&l, missing));
        ck_assert_ptr_nonnull(strstr(problem_for(&l, file), ": cannot open directory: Not a directory"));

        none = load((const char *const[]) { missing, NULL });
        ck_assert_uint_eq(none.n, 0);
        ck_assert_ptr_null(none.problems);
        empty = load((const char *const[]) { NULL });
        ck_assert_uint_eq(empty.n, 0);
        ck_assert_ptr_null(empty.problems);
}
END_TEST

/* Root reads any directory, so permission problems can only be seen as another user. */
START_TEST(test_unreadable) {
        _cleanup_(loaded_done) Loaded l = {};

        if (geteuid() == 0) {
                fprintf(stderr, "test_unreadable: skipped as root (permissions do not apply)\n");
                return;
        }
        write_group(run, "a.conf", "run-a");
        ck_assert_int_eq(chmod(join(run, "a.conf"), 0), 0);
        write_group(usr, "b.conf", "usr-b");
        ck_assert_int_eq(chmod(usr, 0), 0);
        l = load(dirs);
        ck_assert_uint_eq(l.n, 0);
        ck_assert_uint_eq(n_problems(&l), 2);
        ck_assert_ptr_nonnull(strstr(problem_for(&l, usr), ": cannot open directory: Permission denied"));
        ck_assert_ptr_nonnull(strstr(problem_for(&l, join(run, "a.conf")), ": cannot open: Permission denied"));
}
END_TEST

START_TEST(test_not_regular) {
        _cleanup_(loaded_done) Loaded l = {};

        ck_assert_int_eq(mkdir(join(etc, "dir.conf"), 0755), 0);
        ck_assert_int_eq(mkfifo(join(etc, "fifo.conf"), 0644), 0); /* must not hang the loader */
        ck_assert_int_eq(symlink(base, join(etc, "todir.conf")), 0);
        ck_assert_int_eq(symlink(join(base, "nowhere"), join(etc, "dangling.conf")), 0);
        ck_assert_int_eq(symlink("/dev/zero", join(etc, "zero.conf")), 0);
        write_group(usr, "fifo.conf", "usr-fifo"); /* the refused winner still hides it */
        /* not drop-ins at all: ignored without a word */
        write_text(etc, "README", "hello\n");
        write_text(etc, "x.conf.dpkg-old", "junk\n");
        write_text(etc, "x.conf~", "junk\n");
        write_text(etc, ".hidden.conf", "junk\n");
        ck_assert_int_eq(symlink("root@host.1234:1700000000", join(etc, ".#x.conf")), 0); /* emacs' lock */

        l = load(dirs);
        ck_assert_uint_eq(l.n, 0);
        ck_assert_uint_eq(n_problems(&l), 5);
        ck_assert_ptr_nonnull(strstr(problem_for(&l, join(etc, "dir.conf")), ": not a regular file"));
        ck_assert_ptr_nonnull(strstr(problem_for(&l, join(etc, "fifo.conf")), ": not a regular file"));
        ck_assert_ptr_nonnull(strstr(problem_for(&l, join(etc, "todir.conf")), ": not a regular file"));
        ck_assert_ptr_nonnull(strstr(problem_for(&l, join(etc, "zero.conf")), ": not a regular file"));
        ck_assert_ptr_nonnull(
                strstr(problem_for(&l, join(etc, "dangling.conf")), ": cannot read: No such file or directory"));
}
END_TEST

/* A valid drop-in padded with comment lines to exactly size bytes. */
static char *padded(size_t size) {
        static const char head[] = "[KeyGroup]\nUnixGroup=a\n";
        char *t = malloc(size);

        ck_assert_ptr_nonnull(t);
        memcpy(t, head, strlen(head));
        memset(t + strlen(head), '#', size - strlen(head));
        for (size_t i = strlen(head) + 99; i < size; i += 100)
                t[i] = '\n';
        t[size - 1] = '\n';
        return t;
}

START_TEST(test_size_limit) {
        _cleanup_free_ char *full = padded(GROUP_DROPIN_SIZE_MAX), *over = padded(GROUP_DROPIN_SIZE_MAX + 1),
                            *huge = padded(1 << 20), *error = NULL;
        _cleanup_group_dropin_ GroupDropin *d = NULL;
        _cleanup_(loaded_done) Loaded l = {};

        ck_assert_int_eq(group_dropin_parse("/x/g.conf", "g", full, GROUP_DROPIN_SIZE_MAX, &d, NULL), 0);
        error = parse_error("/x/g.conf", "g", over, GROUP_DROPIN_SIZE_MAX + 1);
        ck_assert_str_eq(error, "/x/g.conf: larger than 64 KiB");

        write_bytes(join(usr, "full.conf"), full, GROUP_DROPIN_SIZE_MAX);
        write_bytes(join(usr, "over.conf"), over, GROUP_DROPIN_SIZE_MAX + 1);
        write_bytes(join(usr, "huge.conf"), huge, 1 << 20);
        l = load(dirs);
        ck_assert_uint_eq(l.n, 1);
        ck_assert_str_eq(l.d[0]->name, "full");
        ck_assert_uint_eq(n_problems(&l), 2);
        ck_assert_ptr_nonnull(strstr(problem_for(&l, join(usr, "over.conf")), ": larger than 64 KiB"));
        ck_assert_ptr_nonnull(strstr(problem_for(&l, join(usr, "huge.conf")), ": larger than 64 KiB"));
}
END_TEST

START_TEST(test_names) {
        static const char *const invalid[] = {
                "", "Mail", "-mail", "_mail", ".mail", "a b", "mail/x", "mail\nforged: line",
                "m\xc3\xa4il",
                "a1234567890123456789012345678901234567890123456789012345678901234", /* 65 */
        };
        static const char *const valid_64 = "a123456789012345678901234567890123456789012345678901234567890123";
        _cleanup_(loaded_done) Loaded l = {};

        for (size_t i = 0; i < ELEMENTSOF(invalid); i++) {
                _cleanup_free_ char *error = NULL;

                error = parse_error("/x/n.conf", invalid[i], "[KeyGroup]\nUnixGroup=a\n", 23);
                ck_assert_msg(strstr(error, "is not a valid key group name"), "%s", error);
                ck_assert_msg(strncmp(error, "/x/n.conf: ", 11) == 0, "%s", error);
                ck_assert_msg(!strchr(error, '\n'), "a newline in '%s'", error);
        }

        write_group(usr, "Mail.conf", "mail");
        write_text(etc, "UPPER.conf", ""); /* even a mask is reported when its name cannot be a group */
        write_group(usr, "a b.conf", "mail");
        write_group(usr, "mail\nforged: line.conf", "mail");
        write_group(usr, "a1234567890123456789012345678901234567890123456789012345678901234.conf", "mail");
        write_group(usr, "a123456789012345678901234567890123456789012345678901234567890123.conf", "mail");
        l = load(dirs);
        ck_assert_uint_eq(l.n, 1);
        ck_assert_str_eq(l.d[0]->name, valid_64);
        ck_assert_uint_eq(n_problems(&l), 5);
        for (char **p = l.problems; *p; p++) {
                ck_assert_msg(strstr(*p, "is not a valid key group name"), "%s", *p);
                ck_assert_msg(!strchr(*p, '\n'), "a newline in '%s'", *p); /* escaped as \x0a */
        }
        ck_assert_ptr_nonnull(problem_for(&l, join(usr, "mail\\x0aforged: line.conf")));
}
END_TEST

START_TEST(test_example) {
        const char *example = getenv("DKM_DROPIN_EXAMPLE");
        _cleanup_free_ char *dir = NULL;
        _cleanup_(loaded_done) Loaded l = {};
        const GroupDropin *d;

        ck_assert_msg(example, "DKM_DROPIN_EXAMPLE is not set (run through meson test)");
        dir = strdup(example);
        ck_assert_ptr_nonnull(dir);
        *strrchr(dir, '/') = 0;
        /* The shipped directory through the loader, exactly as dkmd would read it. */
        l = load((const char *const[]) { dir, NULL });
        ck_assert_msg(!l.problems, "%s", l.problems ? l.problems[0] : "");
        ck_assert_uint_eq(l.n, 1);
        d = find(&l, "mail-creds");
        ck_assert_ptr_nonnull(d);
        ck_assert_str_eq(d->path, example);
        ck_assert_str_eq(d->unix_group, "mail-svc");
        ck_assert_int_eq(d->alg, CRYPT_ALG_XCHACHA20_POLY1305);
        ck_assert_uint_eq(d->policy.rollover_period_usec, 30 * 24 * 3600 * SEC);
        ck_assert_uint_eq(d->policy.propagation_delay_usec, 10 * 60 * SEC);
        ck_assert_uint_eq(d->policy.hot_window, 2);
        ck_assert(!d->policy.allow_human_members);
        ck_assert_uint_eq(d->n_approval_groups, 2);
        ck_assert_str_eq(d->approval_groups[0], "mail-oncall");
        ck_assert_str_eq(d->approval_groups[1], "security-officers");
        ck_assert_uint_eq(d->policy.max_grant_usec, 3600 * SEC);
        ck_assert_uint_eq(d->policy.request_timeout_usec, 24 * 3600 * SEC);
        ck_assert(d->policy.retire_needs_approval);
}
END_TEST

static size_t strv_length(char **l) {
        size_t n = 0;

        while (l && l[n])
                n++;
        return n;
}

START_TEST(test_default_dirs) {
        _cleanup_strv_free_ char **a = NULL, **b = NULL, **c = NULL;

        unsetenv("DKM_GROUPS_DIRS");
        ck_assert_int_eq(group_dropin_dirs(&a), 0);
        ck_assert_uint_eq(strv_length(a), 3);
        ck_assert_str_eq(a[0] + strlen(a[0]) - strlen("/dkm/groups.d"), "/dkm/groups.d"); /* SYSCONFDIR/... */
        ck_assert_str_eq(a[1], "/run/dkm/groups.d");
        ck_assert_str_eq(a[2] + strlen(a[2]) - strlen("/lib/dkm/groups.d"), "/lib/dkm/groups.d");
        ck_assert_ptr_nonnull(strstr(DKM_GROUPS_DIRS, a[0]));

        setenv("DKM_GROUPS_DIRS", "/one::/two:", 1);
        ck_assert_int_eq(group_dropin_dirs(&b), 0);
        ck_assert_uint_eq(strv_length(b), 2);
        ck_assert_str_eq(b[0], "/one");
        ck_assert_str_eq(b[1], "/two");

        setenv("DKM_GROUPS_DIRS", "", 1); /* set but empty: no drop-ins at all */
        ck_assert_int_eq(group_dropin_dirs(&c), 0);
        ck_assert_uint_eq(strv_length(c), 0);
        unsetenv("DKM_GROUPS_DIRS");
}
END_TEST

/* A cheap fuzz run: random damage to the example never crashes, leaks (under valgrind) or gives
 * anything but a group or one message naming the file. */
START_TEST(test_mutations) {
        const char *example = getenv("DKM_DROPIN_EXAMPLE");
        char orig[4096], text[4096 + 8];
        uint64_t seed = 0x9e3779b97f4a7c15;
        unsigned accepted = 0;
        size_t n;
        FILE *f;

        ck_assert_ptr_nonnull(example);
        f = fopen(example, "re");
        ck_assert_ptr_nonnull(f);
        n = fread(orig, 1, sizeof(orig), f);
        fclose(f);
        ck_assert_uint_gt(n, 0);
        ck_assert_uint_lt(n, sizeof(orig));

        for (unsigned i = 0; i < 20000; i++) {
                _cleanup_group_dropin_ GroupDropin *d = NULL;
                _cleanup_free_ char *error = NULL;
                size_t size = n;
                int r;

                memcpy(text, orig, n);
                for (unsigned k = 0; k < 1 + i % 4; k++) {
                        seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17; /* xorshift64 */
                        if (seed % 8 == 0)
                                size = (size_t) (seed >> 8) % (size + 1); /* cut short */
                        else if (size > 0)
                                text[(seed >> 8) % size] = (char) (seed >> 40);
                }
                r = group_dropin_parse("/x/m.conf", "m", text, size, &d, &error);
                ck_assert_msg(r == 0 || r == -EBADMSG, "%d", r);
                if (r == 0) {
                        ck_assert_ptr_nonnull(d->unix_group);
                        ck_assert_int_eq(store_group_policy_check(&d->policy), 0);
                        accepted++;
                } else {
                        ck_assert_ptr_nonnull(error);
                        ck_assert_msg(strncmp(error, "/x/m.conf:", 10) == 0, "%s", error);
                        ck_assert_msg(!strchr(error, '\n'), "%s", error);
                }
        }
        ck_assert_uint_gt(accepted, 0); /* comment damage is harmless: some must pass */
}
END_TEST

static Suite *dropin_suite(void) {
        Suite *s = suite_create("dropin");
        TCase *tp = tcase_create("parse"), *tl = tcase_create("load");

        /* explicit, so a run outside meson (CK_DEFAULT_TIMEOUT unset: 4 s) behaves the same */
        tcase_set_timeout(tp, 120);
        tcase_set_timeout(tl, 120);
        tcase_add_test(tp, test_every_key);
        tcase_add_test(tp, test_booleans);
        tcase_add_test(tp, test_defaults);
        tcase_add_test(tp, test_errors);
        tcase_add_test(tp, test_default_dirs);
        tcase_add_test(tp, test_mutations);
        suite_add_tcase(s, tp);

        tcase_add_checked_fixture(tl, setup, teardown);
        tcase_add_test(tl, test_errors_skip_file);
        tcase_add_test(tl, test_precedence);
        tcase_add_test(tl, test_masking);
        tcase_add_test(tl, test_missing_and_bad_dirs);
        tcase_add_test(tl, test_unreadable);
        tcase_add_test(tl, test_not_regular);
        tcase_add_test(tl, test_size_limit);
        tcase_add_test(tl, test_names);
        tcase_add_test(tl, test_example);
        suite_add_tcase(s, tl);
        return s;
}

int main(void) {
        int r;

        snprintf(top, sizeof(top), "/tmp/dkm-test-dropin.XXXXXX");
        if (!mkdtemp(top))
                return EXIT_FAILURE;
        r = test_run_suite(dropin_suite());
        (void) nftw(top, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        return r;
}
