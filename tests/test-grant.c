/* SPDX-License-Identifier: MIT */
/* Break-glass grants against the real kernel: one person reads, for a kernel-timed while, and no one else. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <keyutils.h>

#include "crypto.h"
#include "fileio.h"
#include "keyring-manifest.h"
#include "keyring-names.h"
#include "macro.h"
#include "test-accounts.h"
#include "test-helpers.h"

static const char *const key_group_tags[] = { "grant", "gexp", "gesc", "gref", "gret", NULL };

#define GENS 3

/* A key group made here (not in the store): its keys are known to the test, so the helper's
 * load and grant get the same manifest and its output can be searched for key material. */
typedef struct Group {
        const char *name;
        uint8_t id[KEYRING_GROUP_ID_BYTES];
        Secret *key[GENS + 1];
        char key_hex[GENS + 1][2 * KEYRING_KEY_BYTES + 1];
} Group;

static void group_init(Group *g, const char *tag) {
        g->name = test_key_group(tag);
        crypt_random(g->id, sizeof(g->id));
        for (unsigned i = 1; i <= GENS; i++) {
                ck_assert_int_eq(crypt_keygen(&g->key[i]), 0);
                for (size_t j = 0; j < KEYRING_KEY_BYTES; j++)
                        sprintf(g->key_hex[i] + 2 * j, "%02x", g->key[i]->data[j]);
        }
}

static void group_free(Group *g) {
        for (unsigned i = 1; i <= GENS; i++)
                secret_free(g->key[i]);
}

/* Generations 1..active, the last one active; the member is the only member uid. */
static Secret *manifest(const Group *g, uint32_t active) {
        _cleanup_keyring_manifest_ KeyringManifest *m = NULL;
        Secret *text = NULL;

        ck_assert_int_eq(keyring_manifest_new(g->name, g->id, TW.gid, CRYPT_ALG_XCHACHA20_POLY1305, &m), 0);
        ck_assert_int_eq(keyring_manifest_add_member(m, TW.member_uid), 0);
        m->active = active;
        for (uint32_t n = 1; n <= active; n++)
                ck_assert_int_eq(keyring_manifest_add_generation(
                                         m, n, n == active ? KEYRING_GEN_ACTIVE : KEYRING_GEN_ARCHIVED, g->key[n]),
                                 0);
        ck_assert_int_eq(keyring_manifest_format(m, &text), 0);
        return text;
}

static void no_key_material(const Group *g, const TestRun *r) {
        for (unsigned i = 1; i <= GENS; i++) {
                ck_assert_ptr_null(strstr((const char *) r->out, g->key_hex[i]));
                ck_assert_ptr_null(strstr(r->err, g->key_hex[i]));
                ck_assert_ptr_null(memmem(r->out, r->out_size, g->key[i]->data, 8));
        }
}

/* The helper with a manifest (NULL: none) on stdin; its exit status. */
static int helper(const Group *g, const Secret *m, const char *a1, const char *a2, const char *a3, TestRun *ret) {
        TestRun r;
        int status;

        test_run(&r, m ? m->data : NULL, m ? m->size : 0, NULL,
                 (char *const[]){ (char *) TW.helper, (char *) a1, (char *) a2, (char *) a3, NULL });
        no_key_material(g, &r);
        status = r.status;
        if (ret)
                *ret = r;
        else
                test_run_free(&r);
        return status;
}

static void load(const Group *g, uint32_t active) {
        Secret *m = manifest(g, active);
        TestRun r;

        ck_assert_msg(helper(g, m, "load", NULL, NULL, &r) == 0, "load: %s", r.err);
        test_run_free(&r);
        secret_free(m);
}

static char uid_opt[32], seconds_opt[32];

static int grant(const Group *g, uint32_t active, uid_t uid, unsigned seconds, TestRun *ret) {
        Secret *m = manifest(g, active);
        int status;

        snprintf(uid_opt, sizeof(uid_opt), "--uid=%u", (unsigned) uid);
        snprintf(seconds_opt, sizeof(seconds_opt), "--seconds=%u", seconds);
        status = helper(g, m, "grant", uid_opt, seconds_opt, ret);
        secret_free(m);
        return status;
}

static void grant_ok(const Group *g, uint32_t active, uid_t uid, unsigned seconds) {
        TestRun r;

        ck_assert_msg(grant(g, active, uid, seconds, &r) == 0, "grant: %s", r.err);
        ck_assert_ptr_nonnull(strstr((const char *) r.out, "keyring "));
        test_run_free(&r);
}

static int revoke_grant(const Group *g, uid_t uid) {
        snprintf(uid_opt, sizeof(uid_opt), "--uid=%u", (unsigned) uid);
        return helper(g, NULL, "revoke-grant", uid_opt, g->name, NULL);
}

static const char *cli(void) {
        const char *p = getenv("DKM_CLI");

        ck_assert_msg(p && access(p, X_OK) == 0, "DKM_CLI must name the built dkm");
        return p;
}

static char path_buf[4][300];

static const char *work(unsigned slot, const char *group, const char *name) {
        snprintf(path_buf[slot], sizeof(path_buf[slot]), "%s/%s-%s", TW.work_dir, group, name);
        return path_buf[slot];
}

/* "dkm encrypt" as the member, into a file everyone may read. */
static void encrypt_as_member(const Group *g, const char *path, const char *text) {
        TestCreds member = test_creds_member();
        TestRun r;
        int fd;

        test_run(&r, text, strlen(text), &member,
                 (char *const[]){ (char *) cli(), (char *) "encrypt", (char *) "-g", (char *) g->name, NULL });
        ck_assert_msg(r.status == 0, "encrypt: %s", r.err);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(loop_write(fd, r.out, r.out_size), 0);
        close(fd);
        test_run_free(&r);
}

/* "dkm decrypt -i path" as c: the plaintext must be want (status 0), or the one-line error must
 * carry words and the status be status. */
static void decrypt_as(const TestCreds *c, const char *path, int status, const char *want_or_words) {
        TestRun r;

        test_run(&r, NULL, 0, c,
                 (char *const[]){ (char *) cli(), (char *) "decrypt", (char *) "-i", (char *) path, NULL });
        ck_assert_msg(r.status == status, "decrypt as uid %u: status %d, want %d: %s", (unsigned) c->uid, r.status,
                      status, r.err);
        if (status == 0)
                ck_assert(r.out_size == strlen(want_or_words) && memcmp(r.out, want_or_words, r.out_size) == 0);
        else {
                ck_assert_uint_eq(r.out_size, 0);
                ck_assert_msg(strstr(r.err, want_or_words), "'%s' lacks '%s'", r.err, want_or_words);
        }
        test_run_free(&r);
}

/* The helper's status line "grant <uid> keyring <serial> <state> ...", or NULL. */
static char *status_grant_line(const Group *g, uid_t uid, char *buf, size_t size) {
        char prefix[64];
        TestRun r;
        const char *p;

        ck_assert_int_eq(helper(g, NULL, "status", g->name, NULL, &r), 0);
        snprintf(prefix, sizeof(prefix), "grant %u keyring ", (unsigned) uid);
        p = strstr((const char *) r.out, prefix);
        if (p) {
                const char *e = strchr(p, '\n');
                snprintf(buf, size, "%.*s", (int) (e ? e - p : (long) strlen(p)), p);
        }
        test_run_free(&r);
        return p ? buf : NULL;
}

/* The serial of uid's live grant keyring, from the helper's status. */
static key_serial_t status_grant_ring(const Group *g, uid_t uid) {
        key_serial_t ring = 0;
        TestRun r;

        ck_assert_int_eq(helper(g, NULL, "status", g->name, NULL, &r), 0);
        for (const char *p = (const char *) r.out; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
                char state[16];
                unsigned u;
                int serial;

                if (sscanf(p, "grant %u keyring %d %15s", &u, &serial, state) == 3 && u == uid &&
                    strcmp(state, "live") == 0)
                        ring = serial;
        }
        test_run_free(&r);
        ck_assert_msg(ring > 0, "no live grant for uid %u", (unsigned) uid);
        return ring;
}

/* The serials of the keys in a grant keyring, as root (gid 0 may list it). */
static size_t ring_keys(key_serial_t ring, key_serial_t *ret, size_t max) {
        long n = keyctl_read(ring, (char *) ret, max * sizeof(key_serial_t));

        ck_assert_int_ge(n, 0);
        return (size_t) n / sizeof(key_serial_t);
}

static void assert_described(key_serial_t serial, const char *type, uid_t uid, uint32_t perm) {
        char buf[256], want[64];

        ck_assert_int_gt(keyctl_describe(serial, buf, sizeof(buf)), 0);
        snprintf(want, sizeof(want), "%s;%u;0;%08x;dkm:", type, (unsigned) uid, (unsigned) perm);
        ck_assert_msg(strncmp(buf, want, strlen(want)) == 0, "%s, want %s", buf, want);
}

/* Its /proc/keys line's expiry column: a timeout, not "perm". */
static bool proc_keys_timed(key_serial_t serial) {
        char line[512], want[16], expiry[16] = "";
        FILE *f = fopen("/proc/keys", "re");

        ck_assert_ptr_nonnull(f);
        snprintf(want, sizeof(want), "%08x ", (unsigned) serial);
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, want, strlen(want)) == 0)
                        ck_assert_int_eq(sscanf(line, "%*s %*s %*s %15s", expiry), 1);
        fclose(f);
        return expiry[0] && strcmp(expiry, "perm") != 0;
}

/* ---------------------------------------------------------------------------------------- */

START_TEST(test_grant_and_revoke) {
        TestCreds person = test_creds_person(), other = test_creds_other(), member = test_creds_member();
        Group g = {};
        key_serial_t ring, keys[16];
        const char *ct;
        size_t n;

        group_init(&g, "grant");
        load(&g, 2);
        ct = work(0, g.name, "ct");
        encrypt_as_member(&g, ct, "break glass");
        decrypt_as(&person, ct, 4, "not a member");

        grant_ok(&g, 2, TW.person_uid, 60);
        decrypt_as(&person, ct, 0, "break glass");
        decrypt_as(&other, ct, 4, "not a member");
        decrypt_as(&member, ct, 0, "break glass");

        /* Layout: a keyring owned by the person and gid 0, holding two generations and the
         * pointer, every one with the grant mask and a kernel timeout. */
        ring = status_grant_ring(&g, TW.person_uid);
        assert_described(ring, "keyring", TW.person_uid, KEYRING_PERM_GRANT_RING);
        ck_assert(proc_keys_timed(ring));
        n = ring_keys(ring, keys, ELEMENTSOF(keys));
        ck_assert_uint_eq(n, 3);
        for (size_t i = 0; i < n; i++) {
                assert_described(keys[i], "user", TW.person_uid, KEYRING_PERM_GRANT_KEY);
                ck_assert(proc_keys_timed(keys[i]));
        }

        /* Revoked: at once, with its own message; the members are untouched. */
        ck_assert_int_eq(revoke_grant(&g, TW.person_uid), 0);
        decrypt_as(&person, ct, 5, "access revoked");
        decrypt_as(&member, ct, 0, "break glass");
        ck_assert_int_eq(revoke_grant(&g, TW.person_uid), 9);
        {
                char line[256];
                ck_assert_ptr_nonnull(status_grant_line(&g, TW.person_uid, line, sizeof(line)));
                ck_assert_msg(strstr(line, " revoked ") || strstr(line, " gone "), "%s", line);
        }

        /* Granted again: works again; the unload of the group ends it too. */
        grant_ok(&g, 2, TW.person_uid, 60);
        decrypt_as(&person, ct, 0, "break glass");
        ring = status_grant_ring(&g, TW.person_uid);
        ck_assert_int_eq(helper(&g, NULL, "unload", g.name, NULL, NULL), 0);
        ck_assert_int_eq(keyctl_read(ring, NULL, 0), -1);
        ck_assert(errno == EKEYREVOKED || errno == ENOKEY);
        group_free(&g);
}
END_TEST

START_TEST(test_grant_expires) {
        TestCreds person = test_creds_person(), member = test_creds_member();
        Group g = {};
        const char *ct;
        struct timespec t0, t1;

        group_init(&g, "gexp");
        load(&g, 1);
        ct = work(0, g.name, "ct");
        encrypt_as_member(&g, ct, "three seconds");

        clock_gettime(CLOCK_MONOTONIC, &t0);
        grant_ok(&g, 1, TW.person_uid, 3);
        decrypt_as(&person, ct, 0, "three seconds");
        /* Nothing runs now: no daemon, no helper. The kernel alone ends the grant (timeouts count
         * whole seconds: it expires within (2, 3] s of the grant). */
        do {
                usleep(100 * 1000);
                clock_gettime(CLOCK_MONOTONIC, &t1);
        } while ((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 < 3300);
        decrypt_as(&person, ct, 6, "access expired");
        decrypt_as(&member, ct, 0, "three seconds");
        {
                char line[256];
                ck_assert_ptr_nonnull(status_grant_line(&g, TW.person_uid, line, sizeof(line)));
                ck_assert_msg(strstr(line, " expired ") || strstr(line, " gone "), "%s", line);
        }
        ck_assert_int_eq(revoke_grant(&g, TW.person_uid), 9);
        group_free(&g);
}
END_TEST

/* What the grantee's own processes try with keys they can read. */
typedef struct Escalation {
        key_serial_t ring, key, pointer;
        char gen_desc[KEYRING_DESC_MAX];
        key_serial_t share;
        long r[16];
        int e[16];
        volatile int step; /* 1: the person's share keyring is ready; 2: the other is done */
} Escalation;

#define TRY(x, i, call)                                                                                                \
        do {                                                                                                           \
                errno = 0;                                                                                             \
                (x)->r[i] = (call);                                                                                    \
                (x)->e[i] = errno;                                                                                     \
        } while (0)

static void person_tries(void *userdata) {
        Escalation *x = userdata;
        char buf[64];

        TRY(x, 0, keyctl_read(x->key, buf, sizeof(buf)));
        TRY(x, 1, keyctl_set_timeout(x->key, 3600));
        TRY(x, 2, keyctl_set_timeout(x->ring, 0));
        TRY(x, 3, keyctl_setperm(x->key, 0x3f3f3f3f));
        TRY(x, 4, keyctl_chown(x->key, (uid_t) -1, TW.person_gid));
        TRY(x, 5, keyctl_link(x->key, KEY_SPEC_SESSION_KEYRING));
        TRY(x, 6, keyctl_link(x->ring, KEY_SPEC_SESSION_KEYRING));
        TRY(x, 7, keyctl_update(x->key, "x", 1));
        TRY(x, 8, keyctl_move(x->key, x->ring, KEY_SPEC_SESSION_KEYRING, 0));
        TRY(x, 9, keyctl_setperm(x->ring, 0x3f3f3f3f));

        /* Possessing them through its own session keyring (which links its user keyring) adds
         * only the possessor's view; and a keyring shared with everyone that links that user
         * keyring must not carry them to another uid. */
        x->share = keyctl_join_session_keyring(NULL);
        if (x->share < 0 || keyctl_setperm(x->share, 0x3f3f3f3f) < 0 ||
            keyctl_link(KEY_SPEC_USER_KEYRING, KEY_SPEC_SESSION_KEYRING) < 0)
                _exit(80);
        TRY(x, 10, keyctl_set_timeout(x->key, 3600));
        TRY(x, 11, keyctl_read(x->key, buf, sizeof(buf)));
        x->step = 1;
        for (int i = 0; i < 200 && x->step != 2; i++)
                usleep(25 * 1000);
}

static void other_tries(void *userdata) {
        Escalation *x = userdata;
        char buf[64];

        /* Links the share keyring into a session keyring of its own: it possesses it, and
         * through it the person's user keyring (possessor: everything). */
        TRY(x, 12, keyctl_link(x->share, KEY_SPEC_SESSION_KEYRING));
        TRY(x, 13, keyctl_read(x->key, buf, sizeof(buf)));
        TRY(x, 14, keyctl_search(KEY_SPEC_SESSION_KEYRING, "user", x->gen_desc, 0));
        TRY(x, 15, keyctl_describe(x->ring, buf, sizeof(buf)));
}

START_TEST(test_grantee_cannot_escalate) {
        TestCreds person = test_creds_person(), other = test_creds_other();
        Escalation *x = test_shared_new(sizeof(Escalation));
        char desc[KEYRING_DESC_MAX];
        Group g = {};
        pid_t p;

        group_init(&g, "gesc");
        load(&g, 2);
        grant_ok(&g, 2, TW.person_uid, 60);
        x->ring = status_grant_ring(&g, TW.person_uid);
        ck_assert_int_eq(keyring_generation_desc(g.id, 1, x->gen_desc), 0);
        x->key = keyctl_search(x->ring, "user", x->gen_desc, 0);
        ck_assert_msg(x->key < 0, "root (gid 0) found a grant key: it must not even search them");
        {
                key_serial_t keys[8];
                size_t n = ring_keys(x->ring, keys, ELEMENTSOF(keys));
                for (size_t i = 0; i < n; i++) {
                        char buf[256];
                        ck_assert_int_gt(keyctl_describe(keys[i], buf, sizeof(buf)), 0);
                        if (strstr(buf, x->gen_desc))
                                x->key = keys[i];
                }
        }
        ck_assert_int_gt(x->key, 0);
        ck_assert_int_eq(keyring_pointer_desc(g.name, desc), 0);

        p = test_fork_as(&person, person_tries, x);
        for (int i = 0; i < 200 && x->step != 1; i++)
                usleep(25 * 1000);
        ck_assert_int_eq(x->step, 1);
        test_wait_ok(test_fork_as(&other, other_tries, x));
        x->step = 2;
        test_wait_ok(p);

        ck_assert_int_eq(x->r[0], KEYRING_KEY_BYTES);
        for (int i = 1; i <= 10; i++)
                ck_assert_msg(x->r[i] == -1 && x->e[i] == EACCES, "try %d: %ld, %s", i, x->r[i], strerror(x->e[i]));
        ck_assert_int_eq(x->r[11], KEYRING_KEY_BYTES);
        ck_assert_int_eq(x->r[12], 0); /* the share keyring itself was open to everyone */
        ck_assert_msg(x->r[13] == -1 && x->e[13] == EACCES, "other read: %ld %s", x->r[13], strerror(x->e[13]));
        ck_assert_msg(x->r[14] == -1 && (x->e[14] == EACCES || x->e[14] == ENOKEY), "other search: %ld %s", x->r[14],
                      strerror(x->e[14]));
        ck_assert_msg(x->r[15] == -1 && x->e[15] == EACCES, "other describe: %ld %s", x->r[15], strerror(x->e[15]));

        /* Its timeout is still the grant's. */
        ck_assert(proc_keys_timed(x->key));
        ck_assert_int_eq(revoke_grant(&g, TW.person_uid), 0);
        group_free(&g);
}
END_TEST

START_TEST(test_grant_refused) {
        Group g = {};
        TestRun r;
        char uid[32];

        group_init(&g, "gref");
        load(&g, 1);

        ck_assert_int_eq(grant(&g, 1, TW.member_uid, 60, &r), 2);
        ck_assert_ptr_nonnull(strstr(r.err, "member"));
        test_run_free(&r);
        ck_assert_int_eq(grant(&g, 1, TW.member2_uid, 60, &r), 2); /* in the gid, not in the manifest */
        ck_assert_ptr_nonnull(strstr(r.err, "member"));
        test_run_free(&r);
        ck_assert_int_eq(grant(&g, 1, 0, 60, NULL), 2);
        ck_assert_int_eq(grant(&g, 1, TW.person_uid, 0, NULL), 2);
        ck_assert_int_eq(grant(&g, 1, TW.person_uid, KEYRING_GRANT_SECONDS_MAX + 1, NULL), 2);
        ck_assert_int_eq(grant(&g, 1, 3999999999U, 60, &r), 2);
        ck_assert_ptr_nonnull(strstr(r.err, "no account"));
        test_run_free(&r);
        snprintf(uid, sizeof(uid), "--uid=%u", (unsigned) TW.person_uid);
        ck_assert_int_eq(helper(&g, NULL, "grant", uid, NULL, NULL), 2);
        ck_assert_int_eq(helper(&g, NULL, "grant", "--seconds=5", NULL, NULL), 2);
        ck_assert_int_eq(helper(&g, NULL, "revoke-grant", g.name, NULL, NULL), 2);
        ck_assert_int_eq(helper(&g, NULL, "revoke-grant", uid, "Bad-Name", NULL), 2);
        ck_assert_int_eq(revoke_grant(&g, TW.person_uid), 9);
        /* Nothing was made for anyone. */
        {
                char line[256];
                ck_assert_ptr_null(status_grant_line(&g, TW.person_uid, line, sizeof(line)));
        }
        group_free(&g);
}
END_TEST

START_TEST(test_retire_reaches_grants) {
        TestCreds person = test_creds_person();
        Group g = {};
        const char *ct1, *ct2;

        group_init(&g, "gret");
        load(&g, 1);
        ct1 = work(0, g.name, "ct1");
        encrypt_as_member(&g, ct1, "under one");
        load(&g, 2);
        ct2 = work(1, g.name, "ct2");
        encrypt_as_member(&g, ct2, "under two");
        grant_ok(&g, 2, TW.person_uid, 60);
        decrypt_as(&person, ct1, 0, "under one");

        /* Retired: the grant's copy is revoked with the group's key; the rest stays. */
        ck_assert_int_eq(helper(&g, NULL, "retire", g.name, "1", NULL), 0);
        {
                /* "retired" when the store answers the request-key upcall; without one (as here)
                 * the revoked copy is simply not there: "not loaded". Never the plaintext. */
                TestRun r;

                test_run(&r, NULL, 0, &person,
                         (char *const[]){ (char *) cli(), (char *) "decrypt", (char *) "-i", (char *) ct1, NULL });
                ck_assert_msg(r.status == 5 || r.status == 3, "status %d: %s", r.status, r.err);
                ck_assert_uint_eq(r.out_size, 0);
                test_run_free(&r);
        }
        decrypt_as(&person, ct2, 0, "under two");
        ck_assert_int_eq(revoke_grant(&g, TW.person_uid), 0);
        group_free(&g);
}
END_TEST

static Suite *grant_suite(bool integration) {
        Suite *s = suite_create("grant");
        TCase *tc = tcase_create("kernel");

        tcase_set_timeout(tc, 120);
        if (integration) {
                tcase_add_test(tc, test_grant_and_revoke);
                tcase_add_test(tc, test_grant_expires);
                tcase_add_test(tc, test_grantee_cannot_escalate);
                tcase_add_test(tc, test_grant_refused);
                tcase_add_test(tc, test_retire_reaches_grants);
        }
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        if (crypt_init() < 0)
                return EXIT_FAILURE;
        test_world_want_person = true;
        return test_world_main(grant_suite, key_group_tags);
}
