/* SPDX-License-Identifier: MIT */
/* Tests for kernel keyrings: names and manifest parser, then the real helper on the real kernel with real uids. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <keyutils.h>

#include "fileio.h"
#include "keyring-helper.h"
#include "keyring-manifest.h"
#include "keyring-names.h"
#include "test-helpers.h"

/* ---------------------------------------------------------------------------------------- */
/* Pure parts: names, pointer payload, manifest.                                             */

static const uint8_t test_id[KEYRING_GROUP_ID_BYTES] = {
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
};
#define TEST_ID_HEX "00112233445566778899aabbccddeeff"
#define KEY_A       "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define KEY_B       "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"

START_TEST(test_group_names) {
        char big[KEYRING_GROUP_NAME_MAX + 2];

        ck_assert(keyring_group_name_is_valid("mail"));
        ck_assert(keyring_group_name_is_valid("0mail_x.y-z"));
        ck_assert(!keyring_group_name_is_valid(""));
        ck_assert(!keyring_group_name_is_valid(NULL));
        ck_assert(!keyring_group_name_is_valid(".registry"));
        ck_assert(!keyring_group_name_is_valid("-x"));
        ck_assert(!keyring_group_name_is_valid("Mail"));
        ck_assert(!keyring_group_name_is_valid("a:b"));
        ck_assert(!keyring_group_name_is_valid("a/b"));
        ck_assert(!keyring_group_name_is_valid("a b"));
        memset(big, 'a', sizeof(big) - 1);
        big[sizeof(big) - 1] = 0;
        ck_assert(!keyring_group_name_is_valid(big));
        big[KEYRING_GROUP_NAME_MAX] = 0;
        ck_assert(keyring_group_name_is_valid(big));
}
END_TEST

START_TEST(test_descriptions) {
        char d[KEYRING_DESC_MAX], name[KEYRING_FILE_NAME_MAX];
        uint8_t id[KEYRING_GROUP_ID_BYTES];
        uint32_t g;

        ck_assert_int_eq(keyring_group_desc("mail", d), 0);
        ck_assert_str_eq(d, "dkm:mail");
        ck_assert_int_eq(keyring_pointer_desc("mail", d), 0);
        ck_assert_str_eq(d, "dkm:mail:active");
        ck_assert_int_eq(keyring_group_desc("Bad", d), -EINVAL);
        ck_assert_int_eq(keyring_generation_desc(test_id, 0, d), -EINVAL);
        ck_assert_int_eq(keyring_generation_desc(test_id, 4294967295U, d), 0);
        ck_assert_str_eq(d, "dkm:" TEST_ID_HEX ":4294967295");
        ck_assert_int_eq(keyring_generation_desc(test_id, 7, d), 0);
        ck_assert_str_eq(d, "dkm:" TEST_ID_HEX ":7");
        ck_assert_int_eq(keyring_generation_desc_parse(d, id, &g), 0);
        ck_assert_mem_eq(id, test_id, sizeof(id));
        ck_assert_uint_eq(g, 7);

        static const char *const bad[] = {
                "dkm:" TEST_ID_HEX ":0",
                "dkm:" TEST_ID_HEX ":07",
                "dkm:" TEST_ID_HEX ":",
                "dkm:" TEST_ID_HEX ":7x",
                "dkm:" TEST_ID_HEX ":4294967296",
                "dkm:" TEST_ID_HEX ":-1",
                "dkm:" TEST_ID_HEX "7",
                "dkm:00112233445566778899AABBCCDDEEFF:7",
                "dkm:0011223344556677:7",
                "dkm:mail:active",
                "dkm:mail",
                "xkm:" TEST_ID_HEX ":7",
                "",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                ck_assert_msg(keyring_generation_desc_parse(bad[i], id, &g) == -EINVAL, "accepted %s", bad[i]);

        ck_assert_int_eq(keyring_serial_file_name("mail", name), 0);
        ck_assert_str_eq(name, "mail.keyring");
        ck_assert_int_eq(keyring_uids_file_name("mail", name), 0);
        ck_assert_str_eq(name, "mail.uids");
        ck_assert_int_eq(keyring_serial_file_name("../x", name), -EINVAL);
}
END_TEST

START_TEST(test_pointer_payload) {
        KeyringPointer p = { .alg = CRYPT_ALG_AES256_GCM, .active = 0x01020304, .pending = 5 }, q;
        uint8_t b[KEYRING_POINTER_BYTES], c[KEYRING_POINTER_BYTES];
        static const uint8_t want[KEYRING_POINTER_BYTES] = {
                1,    2,    0,    0,    0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99,
                0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 1,    2,    3,    4,    0,    0,    0,    5,
        };

        memcpy(p.group_id, test_id, sizeof(test_id));
        keyring_pointer_pack(&p, b);
        ck_assert_mem_eq(b, want, sizeof(want));
        ck_assert_int_eq(keyring_pointer_unpack(b, sizeof(b), &q), 0);
        ck_assert_int_eq(q.alg, p.alg);
        ck_assert_uint_eq(q.active, p.active);
        ck_assert_uint_eq(q.pending, p.pending);
        ck_assert_mem_eq(q.group_id, test_id, sizeof(test_id));

        ck_assert_int_eq(keyring_pointer_unpack(b, sizeof(b) - 1, &q), -EBADMSG);
        ck_assert_int_eq(keyring_pointer_unpack(b, 0, &q), -EBADMSG);
        memcpy(c, b, sizeof(c));
        c[0] = 2;
        ck_assert_int_eq(keyring_pointer_unpack(c, sizeof(c), &q), -EPROTONOSUPPORT);
        memcpy(c, b, sizeof(c));
        c[3] = 1;
        ck_assert_int_eq(keyring_pointer_unpack(c, sizeof(c), &q), -EBADMSG);
        memcpy(c, b, sizeof(c));
        c[1] = 9;
        ck_assert_int_eq(keyring_pointer_unpack(c, sizeof(c), &q), -EBADMSG);
        memcpy(c, b, sizeof(c));
        memset(c + 20, 0, 4);
        ck_assert_int_eq(keyring_pointer_unpack(c, sizeof(c), &q), -EBADMSG);
        memcpy(c, b, sizeof(c));
        memcpy(c + 24, c + 20, 4);
        ck_assert_int_eq(keyring_pointer_unpack(c, sizeof(c), &q), -EBADMSG);
}
END_TEST

START_TEST(test_serial_and_runtime_dir) {
        int32_t s;

        ck_assert_int_eq(keyring_serial_parse("123\n", 4, &s), 0);
        ck_assert_int_eq(s, 123);
        ck_assert_int_eq(keyring_serial_parse("123", 3, &s), -EBADMSG);
        ck_assert_int_eq(keyring_serial_parse("0\n", 2, &s), -EBADMSG);
        ck_assert_int_eq(keyring_serial_parse("0123\n", 5, &s), -EBADMSG);
        ck_assert_int_eq(keyring_serial_parse("2147483648\n", 11, &s), -EBADMSG);
        ck_assert_int_eq(keyring_serial_parse("-5\n", 3, &s), -EBADMSG);
        ck_assert_int_eq(keyring_serial_parse("\n", 1, &s), -EBADMSG);

        /* Restored at the end: with CK_FORK=no the later tests share this environment. */
        _cleanup_free_ char *saved = getenv(KEYRING_RUNTIME_DIR_ENV) ? strdup(getenv(KEYRING_RUNTIME_DIR_ENV)) : NULL;

        ck_assert_int_eq(setenv(KEYRING_RUNTIME_DIR_ENV, "relative/dir", 1), 0);
        ck_assert_str_eq(keyring_runtime_dir(), "/run/dkm");
        ck_assert_int_eq(setenv(KEYRING_RUNTIME_DIR_ENV, "/tmp/x", 1), 0);
        ck_assert_str_eq(keyring_runtime_dir(), "/tmp/x");
        ck_assert_int_eq(unsetenv(KEYRING_RUNTIME_DIR_ENV), 0);
        ck_assert_str_eq(keyring_runtime_dir(), "/run/dkm");
        if (saved)
                ck_assert_int_eq(setenv(KEYRING_RUNTIME_DIR_ENV, saved, 1), 0);
}
END_TEST

#define GOOD_HEAD                                                                                                      \
        "dkm-keyring-manifest 1\n"                                                                                     \
        "group mail\n"                                                                                                 \
        "id " TEST_ID_HEX "\n"                                                                                         \
        "gid 1234\n"                                                                                                   \
        "algorithm xchacha20-poly1305\n"

static const char good_manifest[] = GOOD_HEAD "member 1001\n"
                                              "member 1002\n"
                                              "active 2\n"
                                              "pending 3\n"
                                              "generation 1 archived " KEY_A "\n"
                                              "generation 2 active " KEY_B "\n"
                                              "generation 3 pending " KEY_A "\n"
                                              "end\n";

static int parse(const char *text, KeyringManifest **ret, KeyringManifestError *error) {
        return keyring_manifest_parse(text, strlen(text), ret, error);
}

START_TEST(test_manifest_good) {
        _cleanup_keyring_manifest_ KeyringManifest *m = NULL, *m2 = NULL;
        _cleanup_secret_ Secret *text = NULL;
        KeyringManifestError e = {};
        size_t n;
        _cleanup_free_ uint8_t *ka = test_unhex(KEY_A, &n), *kb = test_unhex(KEY_B, &n);

        ck_assert_int_eq(parse(good_manifest, &m, &e), 0);
        ck_assert_str_eq(m->group, "mail");
        ck_assert_mem_eq(m->group_id, test_id, sizeof(test_id));
        ck_assert_uint_eq(m->gid, 1234);
        ck_assert_int_eq(m->alg, CRYPT_ALG_XCHACHA20_POLY1305);
        ck_assert_uint_eq(m->n_members, 2);
        ck_assert_uint_eq(m->members[0], 1001);
        ck_assert_uint_eq(m->members[1], 1002);
        ck_assert_uint_eq(m->active, 2);
        ck_assert_uint_eq(m->pending, 3);
        ck_assert_uint_eq(m->n_generations, 3);
        ck_assert_int_eq(m->generations[0].state, KEYRING_GEN_ARCHIVED);
        ck_assert_int_eq(m->generations[1].state, KEYRING_GEN_ACTIVE);
        ck_assert_int_eq(m->generations[2].state, KEYRING_GEN_PENDING);
        ck_assert_mem_eq(m->generations[0].key->data, ka, 32);
        ck_assert_mem_eq(m->generations[1].key->data, kb, 32);
        ck_assert(keyring_manifest_has_member(m, 1002));
        ck_assert(!keyring_manifest_has_member(m, 1003));
        ck_assert_ptr_nonnull(keyring_manifest_find_generation(m, 3));
        ck_assert_ptr_null(keyring_manifest_find_generation(m, 4));

        /* The writer gives back the canonical text, byte for byte. */
        ck_assert_int_eq(keyring_manifest_format(m, &text), 0);
        ck_assert_uint_eq(text->size, strlen(good_manifest));
        ck_assert_mem_eq(text->data, good_manifest, text->size);
        ck_assert_int_eq(keyring_manifest_parse((const char *) text->data, text->size, &m2, &e), 0);
        ck_assert(secret_equal(m2->generations[1].key, m->generations[1].key));

        /* No members and no pending generation is fine. */
        keyring_manifest_free(m2);
        m2 = NULL;
        ck_assert_int_eq(parse(GOOD_HEAD "active 1\npending 0\ngeneration 1 active " KEY_A "\nend\n", &m2, &e), 0);
        ck_assert_uint_eq(m2->n_members, 0);
        ck_assert_uint_eq(m2->pending, 0);
}
END_TEST

typedef struct BadCase {
        const char *text;
        unsigned line;
} BadCase;

START_TEST(test_manifest_bad) {
        static const BadCase cases[] = {
                { "", 1 },
                { "dkm-keyring-manifest 2\n", 1 },
                { "dkm-keyring-manifest 1", 1 },
                { "dkm-keyring-manifest 1\r\n", 1 },
                { "dkm-keyring-manifest 1\n", 2 },
                { "dkm-keyring-manifest 1\ngroup Mail\n", 2 },
                { "dkm-keyring-manifest 1\ngroup  mail\n", 2 },
                { "dkm-keyring-manifest 1\ngroup mail \n", 2 },
                { "dkm-keyring-manifest 1\ngroup mail\nid 0011\n", 3 },
                { "dkm-keyring-manifest 1\ngroup mail\nid 00112233445566778899AABBCCDDEEFF\n", 3 },
                { "dkm-keyring-manifest 1\ngroup mail\nid " TEST_ID_HEX "\ngid -1\n", 4 },
                { "dkm-keyring-manifest 1\ngroup mail\nid " TEST_ID_HEX "\ngid 4294967295\n", 4 },
                { "dkm-keyring-manifest 1\ngroup mail\nid " TEST_ID_HEX "\ngid 01\n", 4 },
                { "dkm-keyring-manifest 1\ngroup mail\nid " TEST_ID_HEX "\ngid 1\nalgorithm rot13\n", 5 },
                { GOOD_HEAD "member 5\nmember 5\n", 7 },
                { GOOD_HEAD "member 6\nmember 5\n", 7 },
                { GOOD_HEAD "member x\n", 6 },
                { GOOD_HEAD "member 0\n", 6 },
                { GOOD_HEAD "active 0\n", 6 },
                { GOOD_HEAD "pending 0\n", 6 },
                { GOOD_HEAD "active 1\npending 1\n", 7 },
                { GOOD_HEAD "active 1\nmember 5\n", 7 },
                { GOOD_HEAD "active 1\npending 0\nend\n", 8 },                              /* no generations */
                { GOOD_HEAD "active 1\npending 0\ngeneration 1 active " KEY_A "\n", 9 },    /* no "end" */
                { GOOD_HEAD "active 1\npending 0\ngeneration 1 active " KEY_A "\nend", 9 }, /* cut before newline */
                { GOOD_HEAD "active 1\npending 0\ngeneration 1 active 0001\nend\n", 8 },
                { GOOD_HEAD "active 1\npending 0\ngeneration 1 active " KEY_A "00\nend\n", 8 },
                { GOOD_HEAD "active 1\npending 0\ngeneration 1 active "
                            "0g0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\nend\n",
                  8 },
                { GOOD_HEAD "active 1\npending 0\ngeneration 1 active "
                            "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F\nend\n",
                  8 },
                { GOOD_HEAD "active 1\npending 0\ngeneration 1 retired " KEY_A "\nend\n", 8 },
                { GOOD_HEAD "active 1\npending 0\ngeneration 1 active\nend\n", 8 },
                { GOOD_HEAD "active 1\npending 0\ngeneration 0 active " KEY_A "\nend\n", 8 },
                { GOOD_HEAD "active 1\npending 0\ngeneration 2 active " KEY_A "\nend\n", 8 },
                { GOOD_HEAD "active 1\npending 0\ngeneration 1 archived " KEY_A "\nend\n", 8 },
                { GOOD_HEAD "active 1\npending 0\ngeneration 1 active " KEY_A "\ngeneration 2 pending " KEY_A "\nend\n",
                  9 },
                { GOOD_HEAD "active 2\npending 0\ngeneration 2 active " KEY_A "\ngeneration 1 archived " KEY_A
                            "\nend\n",
                  9 },
                { GOOD_HEAD "active 2\npending 3\ngeneration 2 active " KEY_A "\nend\n", 9 }, /* pending not listed */
                { GOOD_HEAD "active 1\npending 0\ngeneration 1 active " KEY_A "\nend\nend\n", 10 },
                { GOOD_HEAD "active 1\npending 0\ngeneration 1 active " KEY_A "\nend\n\n", 10 },
                { GOOD_HEAD "active 1\npending 0\n# comment\nend\n", 8 },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                KeyringManifest *m = NULL;
                KeyringManifestError e = {};
                int r = parse(cases[i].text, &m, &e);

                ck_assert_msg(r == -EBADMSG, "case %zu: r=%d", i, r);
                ck_assert_ptr_null(m);
                ck_assert_ptr_nonnull(e.message);
                ck_assert_msg(e.line == cases[i].line, "case %zu: line %u, want %u (%s)", i, e.line, cases[i].line,
                              e.message);
                /* Messages are fixed strings: they can never quote a key. */
                ck_assert_ptr_null(strstr(e.message, "0001020304"));
        }
}
END_TEST

START_TEST(test_manifest_limits) {
        KeyringManifest *m = NULL;
        KeyringManifestError e = {};
        char *big, *p;
        size_t size = KEYRING_MANIFEST_MAX + 1;

        /* One byte over the limit is refused before looking at it. */
        big = malloc(size);
        ck_assert_ptr_nonnull(big);
        memset(big, 'a', size);
        ck_assert_int_eq(keyring_manifest_parse(big, size, &m, &e), -E2BIG);
        /* A line over the line limit. */
        ck_assert_int_eq(keyring_manifest_parse(big, 1000, &m, &e), -EBADMSG);
        ck_assert_uint_eq(e.line, 1);
        ck_assert_str_eq(e.message, "line too long");
        /* NUL inside a line. */
        ck_assert_int_eq(keyring_manifest_parse("dkm-keyring-manifest 1\0\n", 24, &m, &e), -EBADMSG);

        /* More generations than the hot window allows. */
        p = big;
        p += sprintf(p, GOOD_HEAD "active 1\npending 0\ngeneration 1 active " KEY_A "\n");
        for (unsigned g = 2; g <= KEYRING_MANIFEST_GENERATIONS_MAX + 1; g++)
                p += sprintf(p, "generation %u archived " KEY_A "\n", g);
        p += sprintf(p, "end\n");
        ck_assert_int_eq(keyring_manifest_parse(big, (size_t) (p - big), &m, &e), -EBADMSG);
        ck_assert_str_eq(e.message, "too many generations");

        /* More members than allowed. */
        p = big;
        p += sprintf(p, GOOD_HEAD);
        for (unsigned u = 1; u <= KEYRING_MANIFEST_MEMBERS_MAX + 1; u++)
                p += sprintf(p, "member %u\n", u);
        p += sprintf(p, "active 1\npending 0\ngeneration 1 active " KEY_A "\nend\n");
        ck_assert_int_eq(keyring_manifest_parse(big, (size_t) (p - big), &m, &e), -EBADMSG);
        ck_assert_str_eq(e.message, "too many members");
        ck_assert_ptr_null(m);
        free(big);
}
END_TEST

START_TEST(test_manifest_builder) {
        _cleanup_keyring_manifest_ KeyringManifest *m = NULL;
        _cleanup_secret_ Secret *k = NULL, *short_key = NULL, *text = NULL;
        KeyringManifestError e;

        ck_assert_int_eq(crypt_keygen(&k), 0);
        ck_assert_int_eq(secret_new(16, &short_key), 0);
        ck_assert_int_eq(keyring_manifest_new("Bad", test_id, 5, CRYPT_ALG_XCHACHA20_POLY1305, &m), -EINVAL);
        ck_assert_int_eq(keyring_manifest_new("ok", test_id, (gid_t) -1, CRYPT_ALG_XCHACHA20_POLY1305, &m), -EINVAL);
        ck_assert_int_eq(keyring_manifest_new("ok", test_id, 5, (CryptAlg) 9, &m), -EINVAL);
        ck_assert_int_eq(keyring_manifest_new("ok", test_id, 5, CRYPT_ALG_AES256_GCM, &m), 0);
        ck_assert_int_eq(keyring_manifest_validate(m, &e), -EBADMSG);
        ck_assert_int_eq(keyring_manifest_format(m, &text), -EINVAL);
        ck_assert_int_eq(keyring_manifest_add_member(m, 10), 0);
        ck_assert_int_eq(keyring_manifest_add_member(m, 10), -EINVAL);
        ck_assert_int_eq(keyring_manifest_add_member(m, (uid_t) -1), -EINVAL);
        ck_assert_int_eq(keyring_manifest_add_member(m, 0), -EINVAL);
        ck_assert_int_eq(keyring_manifest_add_generation(m, 1, KEYRING_GEN_ACTIVE, short_key), -EINVAL);
        ck_assert_int_eq(keyring_manifest_add_generation(m, 1, KEYRING_GEN_ACTIVE, k), 0);
        ck_assert_int_eq(keyring_manifest_add_generation(m, 1, KEYRING_GEN_ARCHIVED, k), -EINVAL);
        m->active = 1;
        ck_assert_int_eq(keyring_manifest_validate(m, &e), 0);
        ck_assert_int_eq(keyring_manifest_format(m, &text), 0);
        m->pending = 7;
        ck_assert_int_eq(keyring_manifest_validate(m, &e), -EBADMSG);
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/* The world for the integration tests: throwaway accounts, a runtime dir, the helper.       */

/* Every group name a test may load, so cleanup can unload them all even after a crash. */
static const char *const group_tags[] = {
        "read", "deny", "poss", "root", "perm", "memb",   "retr",  "unld",
        "idem", "conc", "ptr",  "caps", "bad",  "badnew", "usage",
};

static struct {
        pid_t main_pid;
        const char *helper;
        char runtime_parent[64];
        char runtime_dir[96];
        char grp[32], member[32], other[32];
        gid_t grp_gid;
        uid_t member_uid, other_uid;
        gid_t member_gid, other_gid;
        bool grp_made, member_made, other_made;
        /* Prepared before any signal can arrive: the cleanup only forks and execs. */
        char group_names[ELEMENTSOF(group_tags)][64];
} W;

extern char **environ;

/* Async-signal-safe: fork, execve, waitpid, open, dup2, _exit only. */
static int run_quiet(char *const argv[]) {
        pid_t pid = fork();
        int status;

        if (pid < 0)
                return -1;
        if (pid == 0) {
                int null = open("/dev/null", O_RDWR);
                if (null >= 0) {
                        dup2(null, STDIN_FILENO);
                        dup2(null, STDOUT_FILENO);
                        dup2(null, STDERR_FILENO);
                }
                execve(argv[0], argv, environ);
                _exit(127);
        }
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void world_cleanup(void) {
        static volatile sig_atomic_t done = 0;

        /* Check forks every test; only the process that made the world tears it down. */
        if (getpid() != W.main_pid || done)
                return;
        done = 1;
        if (W.helper)
                for (size_t i = 0; i < ELEMENTSOF(group_tags); i++)
                        (void) run_quiet(
                                (char *const[]){ (char *) W.helper, (char *) "unload", W.group_names[i], NULL });
        if (W.member_made)
                (void) run_quiet((char *const[]){ (char *) "/usr/sbin/userdel", W.member, NULL });
        if (W.other_made)
                (void) run_quiet((char *const[]){ (char *) "/usr/sbin/userdel", W.other, NULL });
        if (W.grp_made)
                (void) run_quiet((char *const[]){ (char *) "/usr/sbin/groupdel", W.grp, NULL });
        if (W.runtime_parent[0])
                (void) run_quiet((char *const[]){ (char *) "/bin/rm", (char *) "-rf", W.runtime_parent, NULL });
}

static volatile pid_t suite_pid = 0;

/* Check's own SIGINT/SIGTERM handler SIGKILLs its whole process group, so the suite runs in
 * a child with a group of its own; the parent, which owns the world, passes the signal on,
 * waits for the suite to die, and cleans up. */
static void world_signal(int sig) {
        if (getpid() != W.main_pid) {
                signal(sig, SIG_DFL);
                raise(sig);
                return;
        }
        if (suite_pid > 0) {
                kill(suite_pid, sig);
                while (waitpid(suite_pid, NULL, 0) < 0 && errno == EINTR)
                        ;
        }
        world_cleanup();
        signal(sig, SIG_DFL);
        raise(sig);
}

static bool name_of_dead_run(const char *name) {
        long pid;

        return sscanf(name, "dkmt-%ld-", &pid) == 1 && pid > 0 && kill((pid_t) pid, 0) < 0 && errno == ESRCH;
}

/* Group keyrings and runtime dirs left by a run that was killed outright. */
static void sweep_stale_keyrings(void) {
        key_serial_t list[256], registry = 0;
        long n = keyctl_read(KEY_SPEC_USER_KEYRING, (char *) list, sizeof(list));
        char desc[256];
        DIR *d;

        for (long i = 0; i < n / (long) sizeof(key_serial_t); i++)
                if (keyctl_describe(list[i], desc, sizeof(desc)) > 0 &&
                    strcmp(desc, "keyring;0;0;01370000;" KEYRING_REGISTRY_DESC) == 0)
                        registry = list[i];
        n = registry > 0 ? keyctl_read(registry, (char *) list, sizeof(list)) : 0;
        for (long i = 0; i < n / (long) sizeof(key_serial_t); i++) {
                char *name;

                if (keyctl_describe(list[i], desc, sizeof(desc)) <= 0 || !(name = strstr(desc, ";dkm:")))
                        continue;
                name += strlen(";dkm:");
                if (name_of_dead_run(name))
                        (void) run_quiet((char *const[]){ (char *) W.helper, (char *) "unload", name, NULL });
        }
        d = opendir("/tmp");
        if (d) {
                struct dirent *de;
                while ((de = readdir(d)))
                        if (name_of_dead_run(de->d_name)) {
                                char path[300];
                                snprintf(path, sizeof(path), "/tmp/%s", de->d_name);
                                (void) run_quiet((char *const[]){ (char *) "/bin/rm", (char *) "-rf", path, NULL });
                        }
                closedir(d);
        }
}

/* Accounts left by a run that was killed outright (SIGKILL skips every cleanup). */
static void sweep_stale_accounts(void) {
        char names[64][40];
        size_t n = 0;
        struct passwd *pw;
        struct group *gr;

        setpwent();
        while ((pw = getpwent()) && n < ELEMENTSOF(names)) {
                if (name_of_dead_run(pw->pw_name))
                        snprintf(names[n++], sizeof(names[0]), "%s", pw->pw_name);
        }
        endpwent();
        for (size_t i = 0; i < n; i++)
                (void) run_quiet((char *const[]){ (char *) "/usr/sbin/userdel", names[i], NULL });
        n = 0;
        setgrent();
        while ((gr = getgrent()) && n < ELEMENTSOF(names)) {
                if (name_of_dead_run(gr->gr_name))
                        snprintf(names[n++], sizeof(names[0]), "%s", gr->gr_name);
        }
        endgrent();
        for (size_t i = 0; i < n; i++)
                (void) run_quiet((char *const[]){ (char *) "/usr/sbin/groupdel", names[i], NULL });
}

static int world_setup(void) {
        static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
        const char *nologin = "/usr/sbin/nologin";
        struct passwd *pw;
        struct group *gr;
        long pid = (long) getpid();

        W.main_pid = getpid();
        W.helper = getenv("DKM_KEYRING_HELPER");
        if (!W.helper || access(W.helper, X_OK) < 0) {
                fprintf(stderr, "DKM_KEYRING_HELPER must name the built dkm-keyring-helper\n");
                return -1;
        }
        for (size_t i = 0; i < ELEMENTSOF(group_tags); i++)
                snprintf(W.group_names[i], sizeof(W.group_names[i]), "dkmt-%ld-%s", pid, group_tags[i]);
        atexit(world_cleanup);
        for (size_t i = 0; i < ELEMENTSOF(sigs); i++)
                signal(sigs[i], world_signal);

        snprintf(W.runtime_parent, sizeof(W.runtime_parent), "/tmp/dkmt-%ld-XXXXXX", pid);
        if (!mkdtemp(W.runtime_parent) || chmod(W.runtime_parent, 0755) < 0)
                return -1;
        snprintf(W.runtime_dir, sizeof(W.runtime_dir), "%s/run", W.runtime_parent);
        setenv(KEYRING_RUNTIME_DIR_ENV, W.runtime_dir, 1);
        /* With the runtime dir set, so sweeping never touches the real /run/dkm. */
        sweep_stale_keyrings();
        sweep_stale_accounts();

        snprintf(W.grp, sizeof(W.grp), "dkmt-%ld-grp", pid);
        snprintf(W.member, sizeof(W.member), "dkmt-%ld-member", pid);
        snprintf(W.other, sizeof(W.other), "dkmt-%ld-other", pid);

        if (run_quiet((char *const[]){ (char *) "/usr/sbin/groupadd", (char *) "--system", W.grp, NULL }) != 0)
                return fprintf(stderr, "groupadd %s failed\n", W.grp), -1;
        W.grp_made = true;
        if (run_quiet((char *const[]){ (char *) "/usr/sbin/useradd", (char *) "--system", (char *) "--no-create-home",
                                       (char *) "--shell", (char *) nologin, (char *) "-G", W.grp, W.member, NULL }) !=
            0)
                return fprintf(stderr, "useradd %s failed\n", W.member), -1;
        W.member_made = true;
        if (run_quiet((char *const[]){ (char *) "/usr/sbin/useradd", (char *) "--system", (char *) "--no-create-home",
                                       (char *) "--shell", (char *) nologin, W.other, NULL }) != 0)
                return fprintf(stderr, "useradd %s failed\n", W.other), -1;
        W.other_made = true;

        gr = getgrnam(W.grp);
        if (!gr)
                return -1;
        W.grp_gid = gr->gr_gid;
        pw = getpwnam(W.member);
        if (!pw)
                return -1;
        W.member_uid = pw->pw_uid;
        W.member_gid = pw->pw_gid;
        pw = getpwnam(W.other);
        if (!pw)
                return -1;
        W.other_uid = pw->pw_uid;
        W.other_gid = pw->pw_gid;

        return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Running the helper.                                                                       */

typedef struct Run {
        int status;
        char out[16384];
        char err[4096];
} Run;

static int memfd_with(const void *data, size_t size) {
        int fd = memfd_create("dkmt", MFD_CLOEXEC);

        ck_assert_int_ge(fd, 0);
        if (size > 0)
                ck_assert_int_eq(loop_write(fd, data, size), 0);
        ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
        return fd;
}

static void slurp(int fd, char *buf, size_t size) {
        ssize_t n;

        ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
        n = loop_read(fd, buf, size - 1);
        ck_assert_int_ge(n, 0);
        buf[n] = 0;
}

static void helper_runv(Run *res, const void *in, size_t in_size, char *const argv[]) {
        int fin = memfd_with(in, in_size), fout = memfd_with(NULL, 0), ferr = memfd_with(NULL, 0), status;
        pid_t pid = fork();

        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                dup2(fin, STDIN_FILENO);
                dup2(fout, STDOUT_FILENO);
                dup2(ferr, STDERR_FILENO);
                execv(W.helper, argv);
                _exit(127);
        }
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        res->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        slurp(fout, res->out, sizeof(res->out));
        slurp(ferr, res->err, sizeof(res->err));
        close(fin);
        close(fout);
        close(ferr);
}

#define HELPER(res, in, in_size, ...)                                                                                  \
        helper_runv(res, in, in_size, (char *const[]){ (char *) "dkm-keyring-helper", __VA_ARGS__, NULL })

/* ---------------------------------------------------------------------------------------- */
/* Test key groups.                                                                          */

#define TG_GENS 8

typedef struct TGroup {
        char name[64];
        uint8_t id[KEYRING_GROUP_ID_BYTES];
        Secret *key[TG_GENS + 1]; /* by generation number */
        char key_hex[TG_GENS + 1][2 * KEYRING_KEY_BYTES + 1];
} TGroup;

static void tg_init(TGroup *g, const char *tag) {
        bool known = false;

        for (size_t i = 0; i < ELEMENTSOF(group_tags); i++)
                if (strcmp(tag, group_tags[i]) == 0) {
                        snprintf(g->name, sizeof(g->name), "%s", W.group_names[i]);
                        known = true;
                }
        ck_assert_msg(known, "tag %s missing from group_tags (cleanup would miss it)", tag);
        crypt_random(g->id, sizeof(g->id));
        for (unsigned i = 1; i <= TG_GENS; i++) {
                ck_assert_int_eq(crypt_keygen(&g->key[i]), 0);
                for (size_t j = 0; j < KEYRING_KEY_BYTES; j++)
                        sprintf(g->key_hex[i] + 2 * j, "%02x", g->key[i]->data[j]);
        }
}

/* Generations first..last, states derived from active and pending. */
static Secret *tg_manifest(const TGroup *g, const uid_t *members, size_t n_members, uint32_t active, uint32_t pending,
                           uint32_t first, uint32_t last) {
        _cleanup_keyring_manifest_ KeyringManifest *m = NULL;
        Secret *text = NULL;

        ck_assert_int_eq(keyring_manifest_new(g->name, g->id, W.grp_gid, CRYPT_ALG_XCHACHA20_POLY1305, &m), 0);
        for (size_t i = 0; i < n_members; i++)
                ck_assert_int_eq(keyring_manifest_add_member(m, members[i]), 0);
        m->active = active;
        m->pending = pending;
        for (uint32_t n = first; n <= last; n++)
                ck_assert_int_eq(keyring_manifest_add_generation(m, n,
                                                                 n == active    ? KEYRING_GEN_ACTIVE
                                                                 : n == pending ? KEYRING_GEN_PENDING
                                                                                : KEYRING_GEN_ARCHIVED,
                                                                 g->key[n]),
                                 0);
        ck_assert_int_eq(keyring_manifest_format(m, &text), 0);
        return text;
}

/* Nothing the helper prints may contain a key, in hex or raw. */
static void assert_no_key_material(const TGroup *g, const Run *r) {
        for (unsigned i = 1; i <= TG_GENS; i++) {
                ck_assert_ptr_null(strstr(r->out, g->key_hex[i]));
                ck_assert_ptr_null(strstr(r->err, g->key_hex[i]));
                ck_assert_ptr_null(memmem(r->out, strlen(r->out), g->key[i]->data, 8));
                ck_assert_ptr_null(memmem(r->err, strlen(r->err), g->key[i]->data, 8));
        }
}

static void tg_run(const TGroup *g, Run *r, const Secret *manifest, char *const argv[]) {
        helper_runv(r, manifest ? manifest->data : NULL, manifest ? manifest->size : 0, argv);
        assert_no_key_material(g, r);
}

static int tg_load(const TGroup *g, const uid_t *members, size_t n_members, uint32_t active, uint32_t pending,
                   uint32_t first, uint32_t last, key_serial_t *ret_ring) {
        _cleanup_secret_ Secret *text = tg_manifest(g, members, n_members, active, pending, first, last);
        Run r;

        tg_run(g, &r, text, (char *const[]){ (char *) "x", (char *) "load", NULL });
        if (r.status == 0 && ret_ring)
                ck_assert_int_eq(sscanf(r.out, "keyring %d", ret_ring), 1);
        if (r.status != 0)
                fprintf(stderr, "load %s: status %d: %s", g->name, r.status, r.err);
        return r.status;
}

static void tg_status(const TGroup *g, Run *r) {
        tg_run(g, r, NULL, (char *const[]){ (char *) "x", (char *) "status", (char *) g->name, NULL });
}

static int tg_unload(const TGroup *g) {
        Run r;
        tg_run(g, &r, NULL, (char *const[]){ (char *) "x", (char *) "unload", (char *) g->name, NULL });
        return r.status;
}

static int tg_retire(const TGroup *g, unsigned generation, Run *r) {
        char num[16];
        snprintf(num, sizeof(num), "%u", generation);
        tg_run(g, r, NULL, (char *const[]){ (char *) "x", (char *) "retire", (char *) g->name, num, NULL });
        return r->status;
}

static void tg_free(TGroup *g) {
        (void) tg_unload(g);
        for (unsigned i = 1; i <= TG_GENS; i++)
                g->key[i] = secret_free(g->key[i]);
}

/* A number from the status line that starts with prefix (e.g. "generation 2 "). -1 if absent. */
static long status_value(const char *out, const char *prefix) {
        const char *p = out;
        size_t n = strlen(prefix);

        while (p && *p) {
                if (strncmp(p, prefix, n) == 0)
                        return strtol(p + n, NULL, 10);
                p = strchr(p, '\n');
                if (p)
                        p++;
        }
        return -1;
}

static void gen_desc(const TGroup *g, uint32_t n, char d[KEYRING_DESC_MAX]) {
        ck_assert_int_eq(keyring_generation_desc(g->id, n, d), 0);
}

static key_serial_t gen_serial(const TGroup *g, uint32_t n) {
        char prefix[32];
        Run r;

        tg_status(g, &r);
        ck_assert_int_eq(r.status, 0);
        snprintf(prefix, sizeof(prefix), "generation %u ", (unsigned) n);
        return (key_serial_t) status_value(r.out, prefix);
}

static bool proc_keys_has(key_serial_t serial) {
        char line[512], want[16];
        bool found = false;
        FILE *f = fopen("/proc/keys", "re");

        ck_assert_ptr_nonnull(f);
        snprintf(want, sizeof(want), "%08x ", (unsigned) serial);
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, want, strlen(want)) == 0)
                        found = true;
        fclose(f);
        return found;
}

/* Invalidated keys leave /proc/keys when the garbage collector runs, which is prompt but
 * asynchronous. */
static bool proc_keys_gone(key_serial_t serial) {
        for (int i = 0; i < 200; i++) {
                if (!proc_keys_has(serial))
                        return true;
                usleep(25 * 1000);
        }
        return false;
}

/* ---------------------------------------------------------------------------------------- */
/* Running probes under other credentials.                                                   */

typedef struct Probe {
        long ret;
        int err;
} Probe;

typedef struct Shared {
        Probe p[24];
        uint8_t data[4][64];
        volatile int stop;
        volatile unsigned long reads, bad;
        volatile unsigned seen; /* bitmask of pointer states seen */
        char note[128];
} Shared;

#define PROBE(sh, i, expr)                                                                                             \
        do {                                                                                                           \
                long _r;                                                                                               \
                errno = 0;                                                                                             \
                _r = (long) (expr);                                                                                    \
                (sh)->p[i] = (Probe){ .ret = _r, .err = _r < 0 ? errno : 0 };                                          \
        } while (0)

typedef struct Creds {
        uid_t uid;
        gid_t gid;
        gid_t groups[2];
        int n_groups;
        bool keep_session; /* keep the session keyring inherited from the test */
} Creds;

static Creds creds_member(void) {
        return (Creds){ .uid = W.member_uid, .gid = W.member_gid, .groups = { W.grp_gid }, .n_groups = 1 };
}
static Creds creds_member_without_gid(void) {
        return (Creds){ .uid = W.member_uid, .gid = W.member_gid };
}
static Creds creds_other(void) {
        return (Creds){ .uid = W.other_uid, .gid = W.other_gid };
}
static Creds creds_root_without_gid(void) {
        return (Creds){ .uid = 0, .gid = 0 };
}

static Shared *shared_new(void) {
        Shared *sh = mmap(NULL, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        ck_assert_ptr_ne(sh, MAP_FAILED);
        memset(sh, 0, sizeof(*sh));
        return sh;
}

typedef void (*ProbeFn)(Shared *sh, const void *arg);

static pid_t fork_as(const Creds *c, ProbeFn fn, const void *arg, Shared *sh) {
        pid_t pid = fork();

        ck_assert_int_ge(pid, 0);
        if (pid > 0)
                return pid;
        if (setgroups((size_t) c->n_groups, c->groups) < 0 || setresgid(c->gid, c->gid, c->gid) < 0 ||
            setresuid(c->uid, c->uid, c->uid) < 0 || getuid() != c->uid || getgid() != c->gid)
                _exit(90);
        /* A fresh session keyring: the child possesses nothing the test did not give it. */
        if (!c->keep_session && keyctl_join_session_keyring(NULL) < 0)
                _exit(91);
        fn(sh, arg);
        _exit(0);
}

static void wait_ok(pid_t pid) {
        int status;

        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "probe child failed: status 0x%x", status);
}

static void run_as(const Creds *c, ProbeFn fn, const void *arg, Shared *sh) {
        wait_ok(fork_as(c, fn, arg, sh));
}

#define ASSERT_PROBE_OK(sh, i) ck_assert_msg((sh)->p[i].ret >= 0, "probe %d failed: %s", i, strerror((sh)->p[i].err))
#define ASSERT_PROBE_ERR(sh, i, e)                                                                                     \
        ck_assert_msg((sh)->p[i].ret < 0 && (sh)->p[i].err == (e), "probe %d: ret %ld errno %s, want %s", i,           \
                      (sh)->p[i].ret, strerror((sh)->p[i].err), strerror(e))
#define ASSERT_PROBE_ERR2(sh, i, e1, e2)                                                                               \
        ck_assert_msg((sh)->p[i].ret < 0 && ((sh)->p[i].err == (e1) || (sh)->p[i].err == (e2)),                        \
                      "probe %d: ret %ld errno %s", i, (sh)->p[i].ret, strerror((sh)->p[i].err))

typedef struct Target {
        char ring_desc[KEYRING_DESC_MAX];
        char gen_desc[KEYRING_DESC_MAX];
        char pointer_desc[KEYRING_DESC_MAX];
        char serial_path[256];
        uint8_t group_id[KEYRING_GROUP_ID_BYTES];
        key_serial_t ring, key, pointer;
        key_serial_t control; /* test_possession_no_bypass only */
} Target;

static void target_init(Target *t, const TGroup *g, uint32_t generation) {
        Run r;

        memset(t, 0, sizeof(*t));
        ck_assert_int_eq(keyring_group_desc(g->name, t->ring_desc), 0);
        ck_assert_int_eq(keyring_pointer_desc(g->name, t->pointer_desc), 0);
        gen_desc(g, generation, t->gen_desc);
        memcpy(t->group_id, g->id, sizeof(g->id));
        snprintf(t->serial_path, sizeof(t->serial_path), "%s/%s.keyring", W.runtime_dir, g->name);
        tg_status(g, &r);
        ck_assert_int_eq(r.status, 0);
        t->ring = (key_serial_t) status_value(r.out, "keyring ");
        t->pointer = (key_serial_t) status_value(r.out, "pointer ");
        t->key = gen_serial(g, generation);
        ck_assert_int_gt(t->ring, 0);
        ck_assert_int_gt(t->pointer, 0);
        ck_assert_int_gt(t->key, 0);
}

static long read_serial_file(const char *path) {
        char buf[32] = {};
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t n;
        int32_t s;

        if (fd < 0)
                return -1;
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0 || keyring_serial_parse(buf, (size_t) n, &s) < 0) {
                errno = EBADMSG;
                return -1;
        }
        return s;
}

/* Does the calling process's user keyring link serial? */
static bool user_keyring_links(key_serial_t serial) {
        key_serial_t list[512];
        long n = keyctl_read(KEY_SPEC_USER_KEYRING, (char *) list, sizeof(list));

        for (long i = 0; i < n / (long) sizeof(key_serial_t); i++)
                if (list[i] == serial)
                        return true;
        return false;
}

/* ---------------------------------------------------------------------------------------- */
/* Integration tests.                                                                        */

static void probe_member_reads(Shared *sh, const void *arg) {
        const Target *t = arg;
        long ring, key, file_ring, key2, ptr;

        PROBE(sh, 0, ring = keyctl_search(KEY_SPEC_USER_KEYRING, "keyring", t->ring_desc, 0));
        PROBE(sh, 1, key = keyctl_search(ring, "user", t->gen_desc, 0));
        PROBE(sh, 2, keyctl_read(key, (char *) sh->data[0], 64));
        PROBE(sh, 3, file_ring = read_serial_file(t->serial_path));
        PROBE(sh, 4, key2 = keyctl_search(file_ring, "user", t->gen_desc, 0));
        PROBE(sh, 5, keyctl_read(key2, (char *) sh->data[1], 64));
        PROBE(sh, 6, ptr = keyctl_search(ring, "user", t->pointer_desc, 0));
        PROBE(sh, 7, keyctl_read(ptr, (char *) sh->data[2], 64));
        /* A ciphertext names group id and generation: a recursive search from the user keyring
         * finds the key without knowing the group's name. */
        PROBE(sh, 8, keyctl_search(KEY_SPEC_USER_KEYRING, "user", t->gen_desc, 0));
        PROBE(sh, 9, keyctl_read(t->key, (char *) sh->data[3], 64));
}

START_TEST(test_member_reads) {
        TGroup g = {};
        Shared *sh = shared_new();
        Creds c = creds_member();
        KeyringPointer p;
        key_serial_t ring;
        Target t;

        tg_init(&g, "read");
        ck_assert_int_eq(tg_load(&g, &W.member_uid, 1, 1, 2, 1, 2, &ring), 0);
        target_init(&t, &g, 1);
        ck_assert_int_eq(t.ring, ring);
        run_as(&c, probe_member_reads, &t, sh);

        for (int i = 0; i <= 9; i++)
                ASSERT_PROBE_OK(sh, i);
        ck_assert_int_eq(sh->p[0].ret, ring);
        ck_assert_int_eq(sh->p[1].ret, t.key);
        ck_assert_int_eq(sh->p[2].ret, 32);
        ck_assert_mem_eq(sh->data[0], g.key[1]->data, 32);
        ck_assert_int_eq(sh->p[3].ret, ring);
        ck_assert_int_eq(sh->p[5].ret, 32);
        ck_assert_mem_eq(sh->data[1], g.key[1]->data, 32);
        ck_assert_int_eq(sh->p[7].ret, KEYRING_POINTER_BYTES);
        ck_assert_int_eq(keyring_pointer_unpack(sh->data[2], KEYRING_POINTER_BYTES, &p), 0);
        ck_assert_mem_eq(p.group_id, g.id, sizeof(g.id));
        ck_assert_uint_eq(p.active, 1);
        ck_assert_uint_eq(p.pending, 2);
        ck_assert_int_eq(p.alg, CRYPT_ALG_XCHACHA20_POLY1305);
        ck_assert_int_eq(sh->p[8].ret, t.key);
        ck_assert_mem_eq(sh->data[3], g.key[1]->data, 32);
        tg_free(&g);
}
END_TEST

static void probe_denied(Shared *sh, const void *arg) {
        const Target *t = arg;
        char buf[64];

        PROBE(sh, 0, keyctl_read(t->key, buf, sizeof(buf)));
        PROBE(sh, 1, keyctl_search(KEY_SPEC_USER_KEYRING, "keyring", t->ring_desc, 0));
        PROBE(sh, 2, keyctl_search(t->ring, "user", t->gen_desc, 0));
        PROBE(sh, 3, keyctl_link(t->key, KEY_SPEC_USER_KEYRING));
        PROBE(sh, 4, keyctl_link(t->ring, KEY_SPEC_SESSION_KEYRING));
        PROBE(sh, 5, read_serial_file(t->serial_path));
        PROBE(sh, 6, keyctl_describe(t->key, buf, sizeof(buf)));
        PROBE(sh, 7, keyctl_read(t->pointer, buf, sizeof(buf)));
        PROBE(sh, 8, keyctl_search(KEY_SPEC_USER_KEYRING, "user", t->gen_desc, 0));
        PROBE(sh, 9, keyctl_setperm(t->key, 0x3f3f3f3f));
        PROBE(sh, 10, keyctl_read(t->ring, buf, sizeof(buf)));
        PROBE(sh, 11, keyctl_invalidate(t->key));
}

START_TEST(test_nonmember_denied) {
        TGroup g = {};
        Shared *sh = shared_new();
        Creds other = creds_other(), member_nogid = creds_member_without_gid();
        const uid_t members[] = { W.member_uid };
        Target t;

        tg_init(&g, "deny");
        ck_assert_int_eq(tg_load(&g, members, 1, 1, 0, 1, 1, NULL), 0);
        target_init(&t, &g, 1);

        /* A uid that is not a member and lacks the gid, knowing every serial. */
        run_as(&other, probe_denied, &t, sh);
        ASSERT_PROBE_ERR(sh, 0, EACCES);
        ASSERT_PROBE_ERR2(sh, 1, ENOKEY, EACCES);
        ASSERT_PROBE_ERR(sh, 2, EACCES);
        ASSERT_PROBE_ERR(sh, 3, EACCES);
        ASSERT_PROBE_ERR(sh, 4, EACCES);
        ASSERT_PROBE_ERR(sh, 5, EACCES);
        ASSERT_PROBE_ERR(sh, 6, EACCES);
        ASSERT_PROBE_ERR(sh, 7, EACCES);
        ASSERT_PROBE_ERR2(sh, 8, ENOKEY, EACCES);
        ASSERT_PROBE_ERR(sh, 9, EACCES);
        ASSERT_PROBE_ERR(sh, 10, EACCES);
        ASSERT_PROBE_ERR(sh, 11, EACCES);

        /* The member's uid in a process without the gid: its user keyring links the group
         * keyring, yet the gid is what the kernel checks. */
        memset(sh, 0, sizeof(*sh));
        run_as(&member_nogid, probe_denied, &t, sh);
        ASSERT_PROBE_ERR(sh, 0, EACCES);
        ASSERT_PROBE_ERR2(sh, 1, ENOKEY, EACCES);
        ASSERT_PROBE_ERR(sh, 2, EACCES);
        ASSERT_PROBE_ERR(sh, 3, EACCES);
        ASSERT_PROBE_ERR(sh, 5, EACCES);
        ASSERT_PROBE_ERR(sh, 7, EACCES);
        ASSERT_PROBE_ERR2(sh, 8, ENOKEY, EACCES);
        tg_free(&g);
}
END_TEST

static void probe_possessing(Shared *sh, const void *arg) {
        const Target *t = arg;
        char buf[64];

        PROBE(sh, 0, keyctl_describe(t->key, buf, sizeof(buf)));
        PROBE(sh, 1, keyctl_read(t->key, buf, sizeof(buf)));
        PROBE(sh, 2, keyctl_search(KEY_SPEC_SESSION_KEYRING, "user", t->gen_desc, 0));
        PROBE(sh, 3, keyctl_read(t->ring, buf, sizeof(buf)));
        PROBE(sh, 4, keyctl_search(t->ring, "user", t->gen_desc, 0));
        PROBE(sh, 5, keyctl_link(t->key, KEY_SPEC_USER_KEYRING));
        PROBE(sh, 6, keyctl_setperm(t->key, 0x3f3f3f3f));
        PROBE(sh, 7, keyctl_read(t->pointer, buf, sizeof(buf)));
        PROBE(sh, 8, keyctl_describe(t->ring, buf, sizeof(buf)));
        PROBE(sh, 9, keyctl_update(t->key, "x", 1));
        PROBE(sh, 10, keyctl_read(t->control, (char *) sh->data[0], 64));
}

START_TEST(test_possession_no_bypass) {
        TGroup g = {};
        Shared *sh = shared_new();
        Creds other = creds_other();
        Target t;

        tg_init(&g, "poss");
        ck_assert_int_eq(tg_load(&g, NULL, 0, 1, 0, 1, 1, NULL), 0);
        target_init(&t, &g, 1);

        /* The test (root, the keys' owner) links the group keyring, the key and the pointer
         * into a session keyring that the non-member inherits. */
        ck_assert_int_gt(keyctl_join_session_keyring(NULL), 0);
        ck_assert_int_eq(keyctl_link(t.ring, KEY_SPEC_SESSION_KEYRING), 0);
        ck_assert_int_eq(keyctl_link(t.key, KEY_SPEC_SESSION_KEYRING), 0);
        ck_assert_int_eq(keyctl_link(t.pointer, KEY_SPEC_SESSION_KEYRING), 0);
        /* The control shows the inherited session really confers possession: a key whose
         * possessor byte has search (and nobody has read) is readable by the non-member. */
        t.control = add_key("user", "dkmt:control", "hello", 5, KEY_SPEC_SESSION_KEYRING);
        ck_assert_int_gt(t.control, 0);
        ck_assert_int_eq(keyctl_setperm(t.control, 0x09000000), 0);
        other.keep_session = true;
        run_as(&other, probe_possessing, &t, sh);

        ck_assert_int_eq(sh->p[10].ret, 5);
        ck_assert_mem_eq(sh->data[0], "hello", 5);
        /* Ours: possession needs search on the key itself, which the view-only possessor
         * byte withholds, so the non-member does not even possess them: nothing at all. */
        ASSERT_PROBE_ERR(sh, 0, EACCES);
        ASSERT_PROBE_ERR(sh, 1, EACCES);
        ASSERT_PROBE_ERR2(sh, 2, EACCES, ENOKEY);
        ASSERT_PROBE_ERR(sh, 3, EACCES);
        ASSERT_PROBE_ERR(sh, 4, EACCES);
        ASSERT_PROBE_ERR(sh, 5, EACCES);
        ASSERT_PROBE_ERR(sh, 6, EACCES);
        ASSERT_PROBE_ERR(sh, 7, EACCES);
        ASSERT_PROBE_ERR(sh, 8, EACCES);
        ASSERT_PROBE_ERR(sh, 9, EACCES);
        (void) keyctl_invalidate(t.control);
        tg_free(&g);
}
END_TEST

static void probe_root(Shared *sh, const void *arg) {
        const Target *t = arg;
        char buf[64];

        PROBE(sh, 0, keyctl_read(t->key, buf, sizeof(buf)));
        PROBE(sh, 1, keyctl_read(t->pointer, buf, sizeof(buf)));
        PROBE(sh, 2, keyctl_search(KEY_SPEC_USER_KEYRING, "user", t->gen_desc, 0));
        /* Even reaching root's user keyring, which anchors the registry, gives no possession:
         * the registry has no search bit, so possession stops there. */
        PROBE(sh, 3, keyctl_link(KEY_SPEC_USER_KEYRING, KEY_SPEC_SESSION_KEYRING));
        PROBE(sh, 4, keyctl_read(t->key, buf, sizeof(buf)));
        PROBE(sh, 5, keyctl_search(KEY_SPEC_SESSION_KEYRING, "keyring", t->ring_desc, 0));
        PROBE(sh, 6, keyctl_read(t->ring, buf, sizeof(buf))); /* the owner may list the keyring */
        /* The limit of the masks, kept here so a kernel change would show: root that links the
         * group keyring into a keyring it possesses possesses the keys, and owner search plus
         * possession reads them (as does setperm, the owner having setattr). The masks stop
         * accidental reads by root, not a root that sets out to read. */
        PROBE(sh, 7, keyctl_link(t->ring, KEY_SPEC_SESSION_KEYRING));
        PROBE(sh, 8, keyctl_read(t->key, buf, sizeof(buf)));
}

START_TEST(test_root_cannot_read) {
        TGroup g = {};
        Shared *sh = shared_new();
        Creds root = creds_root_without_gid();
        Target t;

        tg_init(&g, "root");
        ck_assert_int_eq(tg_load(&g, &W.member_uid, 1, 1, 0, 1, 1, NULL), 0);
        target_init(&t, &g, 1);
        run_as(&root, probe_root, &t, sh);
        ASSERT_PROBE_ERR(sh, 0, EACCES);
        ASSERT_PROBE_ERR(sh, 1, EACCES);
        ASSERT_PROBE_ERR2(sh, 2, ENOKEY, EACCES);
        ASSERT_PROBE_OK(sh, 3);
        ASSERT_PROBE_ERR(sh, 4, EACCES);
        ASSERT_PROBE_ERR2(sh, 5, ENOKEY, EACCES);
        ck_assert_int_eq(sh->p[6].ret, 2 * (long) sizeof(key_serial_t));
        ASSERT_PROBE_OK(sh, 7);
        ck_assert_int_eq(sh->p[8].ret, 32);
        tg_free(&g);
}
END_TEST

static void assert_key(key_serial_t serial, const char *type, uint32_t perm, gid_t gid, const char *desc) {
        char buf[256], want[256];

        ck_assert_int_gt(keyctl_describe(serial, buf, sizeof(buf)), 0);
        snprintf(want, sizeof(want), "%s;0;%u;%08x;%s", type, (unsigned) gid, (unsigned) perm, desc);
        ck_assert_str_eq(buf, want);
}

static bool proc_keys_line_has(key_serial_t serial, const char *text) {
        char line[512], want[16];
        bool found = false;
        FILE *f = fopen("/proc/keys", "re");

        ck_assert_ptr_nonnull(f);
        snprintf(want, sizeof(want), "%08x ", (unsigned) serial);
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, want, strlen(want)) == 0 && strstr(line, text))
                        found = true;
        fclose(f);
        return found;
}

START_TEST(test_permissions) {
        TGroup g = {};
        char d[KEYRING_DESC_MAX], path[256];
        struct stat st;
        Target t;
        Run r;

        tg_init(&g, "perm");
        ck_assert_int_eq(tg_load(&g, &W.member_uid, 1, 2, 3, 1, 3, NULL), 0);
        target_init(&t, &g, 1);

        ck_assert_int_eq(keyring_group_desc(g.name, d), 0);
        assert_key(t.ring, "keyring", KEYRING_PERM_GROUP, W.grp_gid, d);
        ck_assert_int_eq(keyring_pointer_desc(g.name, d), 0);
        assert_key(t.pointer, "user", KEYRING_PERM_KEY, W.grp_gid, d);
        for (uint32_t n = 1; n <= 3; n++) {
                key_serial_t s = gen_serial(&g, n);
                gen_desc(&g, n, d);
                assert_key(s, "user", KEYRING_PERM_KEY, W.grp_gid, d);
                ck_assert(proc_keys_line_has(s, "perm 013d0b00     0"));
        }
        ck_assert(proc_keys_line_has(t.ring, "perm 013f0b00     0"));
        ck_assert(proc_keys_line_has(t.pointer, "perm 013d0b00     0"));
        /* Exactly the keys we put there: three generations and the pointer. */
        {
                key_serial_t list[16];
                ck_assert_int_eq(keyctl_read(t.ring, (char *) list, sizeof(list)), 4 * (long) sizeof(key_serial_t));
        }

        ck_assert_int_eq(stat(W.runtime_dir, &st), 0);
        ck_assert_uint_eq(st.st_mode & 07777, 0755);
        ck_assert_uint_eq(st.st_uid, 0);
        snprintf(path, sizeof(path), "%s/%s.keyring", W.runtime_dir, g.name);
        ck_assert_int_eq(stat(path, &st), 0);
        ck_assert_uint_eq(st.st_mode & 07777, 0640);
        ck_assert_uint_eq(st.st_uid, 0);
        ck_assert_uint_eq(st.st_gid, W.grp_gid);
        ck_assert_int_eq(read_serial_file(path), t.ring);
        snprintf(path, sizeof(path), "%s/%s.uids", W.runtime_dir, g.name);
        ck_assert_int_eq(stat(path, &st), 0);
        ck_assert_uint_eq(st.st_mode & 07777, 0600);

        tg_status(&g, &r);
        ck_assert_int_eq(r.status, 0);
        ck_assert_ptr_nonnull(strstr(r.out, "active 2\npending 3\n"));
        tg_free(&g);
}
END_TEST

static void probe_links(Shared *sh, const void *arg) {
        const Target *t = arg;
        char buf[64];

        sh->p[0].ret = user_keyring_links(t->ring);
        PROBE(sh, 1, keyctl_search(KEY_SPEC_USER_KEYRING, "keyring", t->ring_desc, 0));
        PROBE(sh, 2, keyctl_read(t->key, buf, sizeof(buf)));
}

START_TEST(test_member_removed) {
        TGroup g = {};
        Shared *sh = shared_new();
        Creds other = creds_other(), member = creds_member();
        uid_t both[2] = { W.member_uid, W.other_uid };
        char name[128];
        size_t n;
        int dfd;
        Target t;
        Run r;

        if (both[0] > both[1]) {
                both[0] = W.other_uid;
                both[1] = W.member_uid;
        }
        tg_init(&g, "memb");
        ck_assert_int_eq(tg_load(&g, both, 2, 1, 0, 1, 1, NULL), 0);
        target_init(&t, &g, 1);
        run_as(&other, probe_links, &t, sh);
        ck_assert_int_eq(sh->p[0].ret, 1);
        ck_assert_int_eq(sh->p[1].ret, -1); /* linked, but no search without the gid */
        ck_assert_int_eq(sh->p[1].err, EACCES);
        ASSERT_PROBE_ERR(sh, 2, EACCES);

        ck_assert_int_eq(tg_load(&g, &W.member_uid, 1, 1, 0, 1, 1, NULL), 0);
        memset(sh, 0, sizeof(*sh));
        run_as(&other, probe_links, &t, sh);
        ck_assert_int_eq(sh->p[0].ret, 0);
        ASSERT_PROBE_ERR(sh, 1, ENOKEY);
        ASSERT_PROBE_ERR(sh, 2, EACCES);

        memset(sh, 0, sizeof(*sh));
        run_as(&member, probe_links, &t, sh);
        ck_assert_int_eq(sh->p[0].ret, 1);
        ck_assert_int_eq(sh->p[1].ret, t.ring);
        ck_assert_int_eq(sh->p[2].ret, 32);

        tg_status(&g, &r);
        snprintf(name, sizeof(name), "member %u linked\n", (unsigned) W.member_uid);
        ck_assert_ptr_nonnull(strstr(r.out, name));
        snprintf(name, sizeof(name), "member %u ", (unsigned) W.other_uid);
        ck_assert_ptr_null(strstr(r.out, name));

        dfd = open(W.runtime_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        ck_assert_int_ge(dfd, 0);
        snprintf(name, sizeof(name), "%s.uids", g.name);
        {
                _cleanup_free_ char *text = NULL;
                char want[32];
                ck_assert_int_eq(read_file_full(dfd, name, 1024, &text, &n), 0);
                snprintf(want, sizeof(want), "%u\n", (unsigned) W.member_uid);
                ck_assert_str_eq(text, want);
        }
        close(dfd);
        tg_free(&g);
}
END_TEST

static void probe_retired(Shared *sh, const void *arg) {
        const Target *t = arg;
        char buf[64];

        PROBE(sh, 0, keyctl_read(t->key, buf, sizeof(buf)));
        PROBE(sh, 1, keyctl_search(KEY_SPEC_USER_KEYRING, "user", t->gen_desc, 0));
        PROBE(sh, 2, keyctl_search(t->ring, "user", t->gen_desc, 0));
}

START_TEST(test_retire) {
        TGroup g = {};
        Shared *sh = shared_new();
        Creds member = creds_member();
        TGroup unknown = {};
        Target t;
        Run r;

        tg_init(&g, "retr");
        ck_assert_int_eq(tg_load(&g, &W.member_uid, 1, 2, 3, 1, 3, NULL), 0);
        target_init(&t, &g, 1);
        run_as(&member, probe_retired, &t, sh);
        ck_assert_int_eq(sh->p[0].ret, 32);

        ck_assert_int_eq(tg_retire(&g, 1, &r), 0);
        memset(sh, 0, sizeof(*sh));
        run_as(&member, probe_retired, &t, sh);
        ASSERT_PROBE_ERR(sh, 0, ENOKEY);
        /* Until the garbage collector unlinks it, a search meets the dead key and says so. */
        ASSERT_PROBE_ERR2(sh, 1, ENOKEY, EKEYREVOKED);
        ASSERT_PROBE_ERR2(sh, 2, ENOKEY, EKEYREVOKED);
        ck_assert(proc_keys_gone(t.key));
        memset(sh, 0, sizeof(*sh));
        run_as(&member, probe_retired, &t, sh);
        ASSERT_PROBE_ERR(sh, 0, ENOKEY);
        ASSERT_PROBE_ERR(sh, 1, ENOKEY);
        ASSERT_PROBE_ERR(sh, 2, ENOKEY);

        /* The active generation is refused; a pending one leaves the pointer first. */
        ck_assert_int_eq(tg_retire(&g, 2, &r), KEYRING_HELPER_EXIT_BUSY);
        ck_assert_ptr_nonnull(strstr(r.err, "active"));
        ck_assert_int_gt(gen_serial(&g, 2), 0);
        ck_assert_int_eq(tg_retire(&g, 3, &r), 0);
        tg_status(&g, &r);
        ck_assert_ptr_nonnull(strstr(r.out, "active 2\npending 0\n"));
        ck_assert_int_eq(status_value(r.out, "generation 3 "), -1);
        ck_assert_int_eq(tg_retire(&g, 3, &r), KEYRING_HELPER_EXIT_NO_GENERATION);
        ck_assert_int_eq(tg_retire(&g, 1, &r), KEYRING_HELPER_EXIT_NO_GENERATION);

        tg_init(&unknown, "usage");
        ck_assert_int_eq(tg_retire(&unknown, 1, &r), KEYRING_HELPER_EXIT_NOT_LOADED);
        tg_free(&unknown);
        tg_free(&g);
}
END_TEST

START_TEST(test_unload) {
        TGroup g = {};
        Shared *sh = shared_new();
        Creds member = creds_member();
        key_serial_t keys[3];
        char path[256];
        Target t;
        Run r;

        tg_init(&g, "unld");
        ck_assert_int_eq(tg_load(&g, &W.member_uid, 1, 1, 2, 1, 2, NULL), 0);
        target_init(&t, &g, 1);
        keys[0] = t.key;
        keys[1] = gen_serial(&g, 2);
        keys[2] = t.pointer;

        ck_assert_int_eq(tg_unload(&g), 0);
        ck_assert(proc_keys_gone(t.ring));
        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                ck_assert(proc_keys_gone(keys[i]));
        snprintf(path, sizeof(path), "%s/%s.keyring", W.runtime_dir, g.name);
        ck_assert_int_eq(access(path, F_OK), -1);
        snprintf(path, sizeof(path), "%s/%s.uids", W.runtime_dir, g.name);
        ck_assert_int_eq(access(path, F_OK), -1);

        run_as(&member, probe_links, &t, sh);
        ck_assert_int_eq(sh->p[0].ret, 0);
        ASSERT_PROBE_ERR(sh, 1, ENOKEY);
        ASSERT_PROBE_ERR(sh, 2, ENOKEY);

        ck_assert_int_eq(tg_unload(&g), KEYRING_HELPER_EXIT_NOT_LOADED);
        tg_status(&g, &r);
        ck_assert_int_eq(r.status, KEYRING_HELPER_EXIT_NOT_LOADED);
        tg_free(&g);
}
END_TEST

START_TEST(test_reload_idempotent) {
        TGroup g = {};
        key_serial_t ring1, ring2, ring3, gen2;
        Run r1, r2;
        key_serial_t list[16];

        tg_init(&g, "idem");
        ck_assert_int_eq(tg_load(&g, &W.member_uid, 1, 2, 0, 1, 2, &ring1), 0);
        tg_status(&g, &r1);
        ck_assert_int_eq(tg_load(&g, &W.member_uid, 1, 2, 0, 1, 2, &ring2), 0);
        tg_status(&g, &r2);
        ck_assert_int_eq(ring1, ring2);
        ck_assert_str_eq(r1.out, r2.out);
        ck_assert_int_eq(keyctl_read(ring1, (char *) list, sizeof(list)), 3 * (long) sizeof(key_serial_t));

        /* Roll over: 3 becomes active, 1 falls out of the hot window. */
        gen2 = gen_serial(&g, 2);
        {
                key_serial_t gen1 = gen_serial(&g, 1);
                ck_assert_int_eq(tg_load(&g, &W.member_uid, 1, 3, 0, 2, 3, &ring3), 0);
                ck_assert_int_eq(ring3, ring1);
                ck_assert_int_eq(gen_serial(&g, 2), gen2);
                ck_assert_int_gt(gen_serial(&g, 3), 0);
                ck_assert_int_eq(gen_serial(&g, 1), -1);
                ck_assert(proc_keys_gone(gen1));
        }
        ck_assert_int_eq(keyctl_read(ring1, (char *) list, sizeof(list)), 3 * (long) sizeof(key_serial_t));

        /* A crash between creating the group keyring and writing the serial file is repaired. */
        {
                char path[256];
                snprintf(path, sizeof(path), "%s/%s.keyring", W.runtime_dir, g.name);
                ck_assert_int_eq(unlink(path), 0);
                ck_assert_int_eq(tg_load(&g, &W.member_uid, 1, 3, 0, 2, 3, &ring3), 0);
                ck_assert_int_eq(ring3, ring1);
                ck_assert_int_eq(read_serial_file(path), ring1);
        }
        tg_free(&g);
}
END_TEST

START_TEST(test_concurrent_loads) {
        TGroup g = {};
        _cleanup_secret_ Secret *text = NULL;
        key_serial_t list[16], ring = 0;
        pid_t pids[6];

        tg_init(&g, "conc");
        text = tg_manifest(&g, &W.member_uid, 1, 2, 0, 1, 2);
        /* Racing helpers on a group that does not exist yet: they take turns (flock on the
         * runtime dir), so exactly one creates the keyring and the others find it. */
        for (size_t i = 0; i < ELEMENTSOF(pids); i++) {
                pids[i] = fork();
                ck_assert_int_ge(pids[i], 0);
                if (pids[i] == 0) {
                        Run r;
                        helper_runv(&r, text->data, text->size, (char *const[]){ (char *) "x", (char *) "load", NULL });
                        _exit(r.status);
                }
        }
        for (size_t i = 0; i < ELEMENTSOF(pids); i++) {
                int status;
                ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
                ck_assert(WIFEXITED(status));
                ck_assert_int_eq(WEXITSTATUS(status), 0);
        }
        ck_assert_int_eq(tg_load(&g, &W.member_uid, 1, 2, 0, 1, 2, &ring), 0);
        ck_assert_int_eq(keyctl_read(ring, (char *) list, sizeof(list)), 3 * (long) sizeof(key_serial_t));
        {
                char d[KEYRING_DESC_MAX];
                ck_assert_int_eq(keyring_group_desc(g.name, d), 0);
                /* Only one keyring of that name under the registry (which may hold many
                 * other groups on a busy host: read it whole). */
                _cleanup_free_ void *reg_buf = NULL;
                key_serial_t *reg;
                long n, found = 0;
                key_serial_t registry = 0, user[256];
                long nu = keyctl_read(KEY_SPEC_USER_KEYRING, (char *) user, sizeof(user));

                if (nu > (long) sizeof(user)) /* keyctl_read says how much there was, not what it copied */
                        nu = (long) sizeof(user);
                char desc[256], want[128];

                for (long i = 0; i < nu / (long) sizeof(key_serial_t); i++)
                        if (keyctl_describe(user[i], desc, sizeof(desc)) > 0 && strstr(desc, ";" KEYRING_REGISTRY_DESC))
                                registry = user[i];
                ck_assert_int_gt(registry, 0);
                n = keyctl_read_alloc(registry, &reg_buf);
                ck_assert_int_ge(n, 0);
                reg = reg_buf;
                snprintf(want, sizeof(want), ";%s", d);
                for (long i = 0; i < n / (long) sizeof(key_serial_t); i++)
                        if (keyctl_describe(reg[i], desc, sizeof(desc)) > 0 && strlen(desc) >= strlen(want) &&
                            strcmp(desc + strlen(desc) - strlen(want), want) == 0)
                                found++;
                ck_assert_int_eq(found, 1);
        }
        tg_free(&g);
}
END_TEST

#define PTR_STATES 6
static const uint32_t ptr_states[PTR_STATES][2] = { { 1, 2 }, { 2, 0 }, { 2, 3 }, { 3, 0 }, { 3, 4 }, { 4, 0 } };

static void probe_pointer_loop(Shared *sh, const void *arg) {
        const Target *t = arg;
        long ptr = keyctl_search(KEY_SPEC_USER_KEYRING, "user", t->pointer_desc, 0);

        if (ptr < 0) {
                sh->bad = 1000000;
                return;
        }
        while (!sh->stop) {
                uint8_t buf[64];
                KeyringPointer p;
                long n = keyctl_read(ptr, (char *) buf, sizeof(buf));
                bool ok = false;

                if (n == KEYRING_POINTER_BYTES && keyring_pointer_unpack(buf, (size_t) n, &p) >= 0 &&
                    memcmp(p.group_id, t->group_id, KEYRING_GROUP_ID_BYTES) == 0)
                        for (unsigned i = 0; i < PTR_STATES; i++)
                                if (p.active == ptr_states[i][0] && p.pending == ptr_states[i][1]) {
                                        sh->seen |= 1U << i;
                                        ok = true;
                                }
                if (!ok)
                        sh->bad++;
                sh->reads++;
        }
}

START_TEST(test_pointer_atomic) {
        TGroup g = {};
        Shared *sh = shared_new();
        Creds member = creds_member();
        Target t;
        pid_t pid;

        tg_init(&g, "ptr");
        ck_assert_int_eq(tg_load(&g, &W.member_uid, 1, 1, 2, 1, 4, NULL), 0);
        target_init(&t, &g, 1);
        pid = fork_as(&member, probe_pointer_loop, &t, sh);
        for (int i = 0; i < 2000 && sh->reads == 0; i++)
                usleep(1000);
        ck_assert_uint_gt(sh->reads, 0);

        for (int round = 0; round < 3; round++)
                for (unsigned i = 0; i < PTR_STATES; i++)
                        ck_assert_int_eq(tg_load(&g, &W.member_uid, 1, ptr_states[i][0], ptr_states[i][1], 1, 4, NULL),
                                         0);
        sh->stop = 1;
        wait_ok(pid);
        ck_assert_msg(sh->bad == 0, "%lu of %lu reads saw an inconsistent pointer", sh->bad, sh->reads);
        ck_assert_msg(__builtin_popcount(sh->seen) >= 2, "reader saw only states 0x%x in %lu reads", sh->seen,
                      sh->reads);
        tg_free(&g);
}
END_TEST

static bool proc_status_line(pid_t pid, const char *key, char *ret, size_t size) {
        char path[64], line[256];
        bool found = false;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/status", (int) pid);
        f = fopen(path, "re");
        if (!f)
                return false;
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, key, strlen(key)) == 0 && line[strlen(key)] == ':') {
                        char *v = line + strlen(key) + 1;
                        v += strspn(v, " \t");
                        v[strcspn(v, "\n")] = 0;
                        snprintf(ret, size, "%s", v);
                        found = true;
                }
        fclose(f);
        return found;
}

/* Opening /proc/PID/mem is a ptrace attach check: without CAP_SYS_PTRACE it fails for a
 * process that is not dumpable, even one with the same uid and a subset of our capabilities.
 * (/proc/PID/environ would not do: on this kernel root opens it even when not dumpable.) */
static int try_mem_without_ptrace(pid_t target) {
        pid_t pid = fork();
        int status;

        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                char path[64];
                cap_t caps = cap_get_proc();
                cap_value_t v = CAP_SYS_PTRACE;
                int fd;

                if (!caps || cap_set_flag(caps, CAP_EFFECTIVE, 1, &v, CAP_CLEAR) < 0 || cap_set_proc(caps) < 0)
                        _exit(90);
                cap_free(caps); /* under valgrind, a leak at _exit() turns the status into 66 */
                snprintf(path, sizeof(path), "/proc/%d/mem", (int) target);
                fd = open(path, O_RDONLY | O_CLOEXEC);
                _exit(fd >= 0 ? 0 : errno == EACCES || errno == EPERM ? 1 : 91);
        }
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFEXITED(status));
        return WEXITSTATUS(status);
}

START_TEST(test_helper_hardened) {
        char v[64], want[32];
        int in[2], ready[2], status;
        char byte;
        pid_t pid, sleeper;
        bool dropped = false;

        ck_assert_int_eq(pipe2(in, O_CLOEXEC), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                int null = open("/dev/null", O_WRONLY | O_CLOEXEC);

                dup2(in[0], STDIN_FILENO);
                if (null >= 0)
                        dup2(null, STDERR_FILENO);
                execl(W.helper, "dkm-keyring-helper", "load", (char *) NULL);
                _exit(127);
        }
        close(in[0]);
        /* It blocks reading the manifest; by then it must have shed everything. */
        snprintf(want, sizeof(want), "%016llx", (1ULL << CAP_SETUID) | (1ULL << CAP_SETGID));
        for (int i = 0; i < 5000 && !dropped; i++) {
                dropped = proc_status_line(pid, "CapBnd", v, sizeof(v)) && strcmp(v, want) == 0;
                if (!dropped)
                        usleep(1000);
        }
        ck_assert_msg(dropped, "CapBnd %s, want %s", v, want);
        ck_assert(proc_status_line(pid, "CapEff", v, sizeof(v)));
        ck_assert_str_eq(v, want);
        ck_assert(proc_status_line(pid, "CapPrm", v, sizeof(v)));
        ck_assert_str_eq(v, want);
        ck_assert(proc_status_line(pid, "CapInh", v, sizeof(v)));
        ck_assert_str_eq(v, "0000000000000000");
        ck_assert(proc_status_line(pid, "CapAmb", v, sizeof(v)));
        ck_assert_str_eq(v, "0000000000000000");
        ck_assert(proc_status_line(pid, "NoNewPrivs", v, sizeof(v)));
        ck_assert_str_eq(v, "1");
        ck_assert_int_eq(try_mem_without_ptrace(pid), 1);

        /* The control: a dumpable process with the same uid is readable. It gives up
         * CAP_SYS_PTRACE too, so that its capabilities are a subset of the prober's. */
        ck_assert_int_eq(pipe2(ready, O_CLOEXEC), 0);
        sleeper = fork();
        ck_assert_int_ge(sleeper, 0);
        if (sleeper == 0) {
                cap_t caps = cap_get_proc();
                cap_value_t c = CAP_SYS_PTRACE;

                if (!caps || cap_set_flag(caps, CAP_EFFECTIVE, 1, &c, CAP_CLEAR) < 0 ||
                    cap_set_flag(caps, CAP_PERMITTED, 1, &c, CAP_CLEAR) < 0 || cap_set_proc(caps) < 0)
                        _exit(90);
                cap_free(caps);
                if (write(ready[1], "x", 1) != 1)
                        _exit(92);
                pause();
                _exit(0);
        }
        close(ready[1]);
        ck_assert_int_eq(read(ready[0], &byte, 1), 1);
        close(ready[0]);
        ck_assert_int_eq(try_mem_without_ptrace(sleeper), 0);
        kill(sleeper, SIGKILL);
        waitpid(sleeper, NULL, 0);

        close(in[1]); /* empty manifest */
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFEXITED(status));
        ck_assert_int_eq(WEXITSTATUS(status), KEYRING_HELPER_EXIT_MANIFEST);
}
END_TEST

/* The helper's view of a group plus the runtime files: what "changes nothing" compares. */
static void snapshot(const TGroup *g, char *buf, size_t size) {
        char path[256];
        long s;
        Run r;

        tg_status(g, &r);
        snprintf(path, sizeof(path), "%s/%s.keyring", W.runtime_dir, g->name);
        s = read_serial_file(path);
        snprintf(buf, size, "%d\n%s\nfile %ld\n", r.status, r.out, s);
}

START_TEST(test_bad_manifests) {
        TGroup g = {}, fresh = {};
        _cleanup_secret_ Secret *good = NULL;
        char before[20000], after[20000];
        char *huge, *text;
        size_t cut;
        Run r;

        tg_init(&g, "bad");
        tg_init(&fresh, "badnew");
        ck_assert_int_eq(tg_load(&g, &W.member_uid, 1, 1, 2, 1, 2, NULL), 0);
        snapshot(&g, before, sizeof(before));

        /* A valid manifest for new keys (3 active), then broken in every way. */
        good = tg_manifest(&g, &W.member_uid, 1, 3, 0, 3, 3);
        text = malloc(good->size + 1);
        ck_assert_ptr_nonnull(text);
        memcpy(text, good->data, good->size);
        text[good->size] = 0;
        {
                const char *key_line = strstr(text, "generation 3 active ");
                size_t key_at;
                char *variants[8];
                size_t n = 0;

                ck_assert_ptr_nonnull(key_line);
                key_at = (size_t) (key_line - text) + strlen("generation 3 active ");
                cut = key_at + 20;

                /* bad hex */
                variants[n] = strdup(text);
                variants[n++][key_at + 5] = 'z';
                /* upper-case hex */
                variants[n] = strdup(text);
                variants[n++][key_at] = 'A';
                /* wrong key size: 31 bytes */
                variants[n] = strdup(text);
                memmove(variants[n] + key_at + 62, variants[n] + key_at + 64, strlen(variants[n] + key_at + 64) + 1);
                n++;
                /* unknown state */
                variants[n] = strdup(text);
                memcpy(strstr(variants[n], " active ") + 1, "retird", 6);
                n++;
                /* wrong magic */
                variants[n] = strdup(text);
                variants[n++][0] = 'x';
                /* data after end */
                ck_assert_int_ge(asprintf(&variants[n++], "%sgeneration 9 archived %s\n", text, g.key_hex[1]), 0);

                for (size_t i = 0; i < n; i++) {
                        HELPER(&r, variants[i], strlen(variants[i]), (char *) "load");
                        ck_assert_msg(r.status == KEYRING_HELPER_EXIT_MANIFEST, "variant %zu: status %d", i, r.status);
                        ck_assert_ptr_nonnull(strstr(r.err, "dkm-keyring-helper: manifest line "));
                        ck_assert_ptr_eq(strchr(r.err, '\n'), r.err + strlen(r.err) - 1); /* one line */
                        assert_no_key_material(&g, &r);
                        free(variants[i]);
                }
        }

        /* Truncated in the middle of a key, and just before "end". */
        HELPER(&r, text, cut, (char *) "load");
        ck_assert_int_eq(r.status, KEYRING_HELPER_EXIT_MANIFEST);
        ck_assert_ptr_nonnull(strstr(r.err, "truncated"));
        assert_no_key_material(&g, &r);
        HELPER(&r, text, strlen(text) - 4, (char *) "load");
        ck_assert_int_eq(r.status, KEYRING_HELPER_EXIT_MANIFEST);
        ck_assert_ptr_nonnull(strstr(r.err, "truncated"));
        HELPER(&r, "", 0, (char *) "load");
        ck_assert_int_eq(r.status, KEYRING_HELPER_EXIT_MANIFEST);

        /* Huge input: refused on size, before parsing. */
        huge = malloc(1 << 20);
        ck_assert_ptr_nonnull(huge);
        memset(huge, 'a', 1 << 20);
        memcpy(huge, text, strlen(text));
        HELPER(&r, huge, 1 << 20, (char *) "load");
        ck_assert_int_eq(r.status, KEYRING_HELPER_EXIT_INPUT);
        ck_assert_ptr_nonnull(strstr(r.err, "larger than"));
        free(huge);

        snapshot(&g, after, sizeof(after));
        ck_assert_str_eq(before, after);

        /* A bad manifest for a group not loaded yet creates nothing. */
        {
                _cleanup_secret_ Secret *m = tg_manifest(&fresh, NULL, 0, 1, 0, 1, 1);
                HELPER(&r, m->data, m->size - 2, (char *) "load");
                ck_assert_int_eq(r.status, KEYRING_HELPER_EXIT_MANIFEST);
                tg_status(&fresh, &r);
                ck_assert_int_eq(r.status, KEYRING_HELPER_EXIT_NOT_LOADED);
        }
        free(text);
        tg_free(&fresh);
        tg_free(&g);
}
END_TEST

START_TEST(test_usage) {
        Run r;

        HELPER(&r, NULL, 0, (char *) "--help");
        ck_assert_int_eq(r.status, 0);
        ck_assert_ptr_nonnull(strstr(r.out, "load"));
        helper_runv(&r, NULL, 0, (char *const[]){ (char *) "dkm-keyring-helper", NULL });
        ck_assert_int_eq(r.status, KEYRING_HELPER_EXIT_USAGE);
        HELPER(&r, NULL, 0, (char *) "bogus");
        ck_assert_int_eq(r.status, KEYRING_HELPER_EXIT_USAGE);
        ck_assert_ptr_nonnull(strstr(r.err, "unknown command"));
        HELPER(&r, NULL, 0, (char *) "status");
        ck_assert_int_eq(r.status, KEYRING_HELPER_EXIT_USAGE);
        HELPER(&r, NULL, 0, (char *) "status", (char *) "../etc");
        ck_assert_int_eq(r.status, KEYRING_HELPER_EXIT_USAGE);
        HELPER(&r, NULL, 0, (char *) "load", (char *) "extra");
        ck_assert_int_eq(r.status, KEYRING_HELPER_EXIT_USAGE);
        HELPER(&r, NULL, 0, (char *) "retire", W.group_names[0], (char *) "0");
        ck_assert_int_eq(r.status, KEYRING_HELPER_EXIT_USAGE);
        HELPER(&r, NULL, 0, (char *) "retire", W.group_names[0], (char *) "x");
        ck_assert_int_eq(r.status, KEYRING_HELPER_EXIT_USAGE);
        HELPER(&r, NULL, 0, (char *) "status", W.group_names[ELEMENTSOF(group_tags) - 1]);
        ck_assert_int_eq(r.status, KEYRING_HELPER_EXIT_NOT_LOADED);
        ck_assert_ptr_nonnull(strstr(r.err, "not loaded"));
        HELPER(&r, NULL, 0, (char *) "unload", W.group_names[ELEMENTSOF(group_tags) - 1]);
        ck_assert_int_eq(r.status, KEYRING_HELPER_EXIT_NOT_LOADED);
}
END_TEST

static Suite *keyring_suite(bool integration) {
        Suite *s = suite_create("keyring");
        TCase *tc = tcase_create("pure");

        tcase_add_test(tc, test_group_names);
        tcase_add_test(tc, test_descriptions);
        tcase_add_test(tc, test_pointer_payload);
        tcase_add_test(tc, test_serial_and_runtime_dir);
        tcase_add_test(tc, test_manifest_good);
        tcase_add_test(tc, test_manifest_bad);
        tcase_add_test(tc, test_manifest_limits);
        tcase_add_test(tc, test_manifest_builder);
        suite_add_tcase(s, tc);

        if (integration) {
                tc = tcase_create("kernel");
                tcase_add_test(tc, test_member_reads);
                tcase_add_test(tc, test_nonmember_denied);
                tcase_add_test(tc, test_possession_no_bypass);
                tcase_add_test(tc, test_root_cannot_read);
                tcase_add_test(tc, test_permissions);
                tcase_add_test(tc, test_member_removed);
                tcase_add_test(tc, test_retire);
                tcase_add_test(tc, test_unload);
                tcase_add_test(tc, test_reload_idempotent);
                tcase_add_test(tc, test_concurrent_loads);
                tcase_add_test(tc, test_pointer_atomic);
                tcase_add_test(tc, test_helper_hardened);
                tcase_add_test(tc, test_bad_manifests);
                tcase_add_test(tc, test_usage);
                suite_add_tcase(s, tc);
        }
        return s;
}

static int run_suite_in_child(bool integration) {
        int status;
        pid_t pid;

        fflush(NULL);
        pid = fork();
        if (pid < 0)
                return EXIT_FAILURE;
        if (pid == 0) {
                (void) setpgid(0, 0);
                (void) prctl(PR_SET_PDEATHSIG, SIGTERM);
                if (getppid() != W.main_pid)
                        _exit(EXIT_FAILURE);
                status = test_run_suite(keyring_suite(integration));
                fflush(NULL);
                _exit(status);
        }
        suite_pid = pid;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return EXIT_FAILURE;
        suite_pid = 0;
        return WIFEXITED(status) ? WEXITSTATUS(status) : EXIT_FAILURE;
}

int main(void) {
        bool root = geteuid() == 0;
        int r;

        W.main_pid = getpid();
        if (!root)
                r = test_run_suite(keyring_suite(false));
        else if (world_setup() < 0)
                r = EXIT_FAILURE;
        else
                r = run_suite_in_child(true);
        world_cleanup();
        if (!root && r == EXIT_SUCCESS) {
                /* Real uids and root-owned keys cannot be had without root; CI runs as root. */
                fprintf(stderr, "not root: kernel keyring tests skipped\n");
                return 77;
        }
        return r;
}
