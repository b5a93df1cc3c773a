/* SPDX-License-Identifier: MIT */
/* Tests for the store-wide policy, protector health checks and purge, in the library and through
 * the real dkm-store. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "group-file.h"
#include "store-policy.h"
#include "store.h"
#include "test-helpers.h"
#include "test-state.h"

static uint64_t now_usec(void) {
        struct timespec ts;

        ck_assert_int_eq(clock_gettime(CLOCK_REALTIME, &ts), 0);
        return (uint64_t) ts.tv_sec * 1000000U + (uint64_t) ts.tv_nsec / 1000U;
}

static size_t count_files(const char *rel) {
        struct stat st;
        char p[512];
        size_t n = 0;
        FILE *f;

        snprintf(p, sizeof(p), "ls -A '%s' | wc -l", test_state_path(rel));
        ck_assert_int_eq(stat(test_state_path(rel), &st), 0);
        f = popen(p, "re");
        ck_assert_ptr_nonnull(f);
        ck_assert_int_eq(fscanf(f, "%zu", &n), 1);
        pclose(f);
        return n;
}

/* ---- store policy ---- */

START_TEST(test_policy_default_save_load) {
        _cleanup_store_ Store *s = test_state_init_with_group("mail");
        StorePolicy p = { .purge_delay_usec = 1 }, q;
        struct stat st;

        ck_assert_int_eq(store_policy_load(s, &p), 0);
        ck_assert_uint_eq(p.n_approval_levels, 0);
        ck_assert_uint_eq(p.purge_delay_usec, STORE_PURGE_DELAY_DEFAULT_USEC);
        ck_assert_int_eq(stat(test_state_path("store.policy"), &st), -1);

        p.approval_levels[0] = 20;
        p.approval_levels[1] = 10;
        p.n_approval_levels = 2;
        p.purge_delay_usec = 12ULL * 3600 * 1000000;
        ck_assert_int_eq(store_policy_save(s, &p), 0);
        ck_assert_int_eq(stat(test_state_path("store.policy"), &st), 0);
        ck_assert_uint_eq(st.st_mode & 07777, 0600);
        ck_assert_int_eq(store_policy_load(s, &q), 0);
        ck_assert_uint_eq(q.n_approval_levels, 2);
        ck_assert_uint_eq(q.approval_levels[0], 20);
        ck_assert_uint_eq(q.approval_levels[1], 10);
        ck_assert_uint_eq(q.purge_delay_usec, p.purge_delay_usec);
        {
                _cleanup_free_ char *text = test_read_all(test_state_path("store.policy"), NULL);
                ck_assert_msg(strncmp(text, "format=1\napproval-groups=20 10\npurge-delay-usec=43200000000\nchecksum=",
                                      strlen("format=1\napproval-groups=20 10\npurge-delay-usec=43200000000\nchecksum=")) == 0,
                              "%s", text);
        }

        /* None again: an empty value, not a missing line. */
        p.n_approval_levels = 0;
        ck_assert_int_eq(store_policy_save(s, &p), 0);
        ck_assert_int_eq(store_policy_load(s, &q), 0);
        ck_assert_uint_eq(q.n_approval_levels, 0);
        /* No temp file left behind. */
        ck_assert_uint_eq(count_files("."), 5); /* format lock protectors groups store.policy */
}
END_TEST

START_TEST(test_policy_check) {
        StorePolicy p = STORE_POLICY_DEFAULT;

        ck_assert_int_eq(store_policy_check(&p), 0);
        p.purge_delay_usec = STORE_PURGE_DELAY_MIN_USEC;
        ck_assert_int_eq(store_policy_check(&p), 0);
        p.purge_delay_usec = STORE_PURGE_DELAY_MIN_USEC - 1;
        ck_assert_int_eq(store_policy_check(&p), -EINVAL);
        p.purge_delay_usec = STORE_PURGE_DELAY_MAX_USEC;
        ck_assert_int_eq(store_policy_check(&p), 0);
        p.purge_delay_usec = STORE_PURGE_DELAY_MAX_USEC + 1;
        ck_assert_int_eq(store_policy_check(&p), -EINVAL);
        p = STORE_POLICY_DEFAULT;
        for (uint32_t i = 0; i < STORE_APPROVAL_LEVELS_MAX; i++)
                p.approval_levels[i] = 100 + i;
        p.n_approval_levels = STORE_APPROVAL_LEVELS_MAX;
        ck_assert_int_eq(store_policy_check(&p), 0);
        p.n_approval_levels = STORE_APPROVAL_LEVELS_MAX + 1;
        ck_assert_int_eq(store_policy_check(&p), -EINVAL);
        p.n_approval_levels = 3;
        p.approval_levels[2] = 100;
        ck_assert_int_eq(store_policy_check(&p), -EINVAL);
        p.approval_levels[2] = (gid_t) -1;
        ck_assert_int_eq(store_policy_check(&p), -EINVAL);
}
END_TEST

START_TEST(test_policy_damaged) {
        static const struct {
                const char *body;
                int r;
                const char *why;
        } cases[] = {
                { "format=1\napproval-groups=\npurge-delay-usec=0\n", -EBADMSG, "out of range" },
                { "format=1\napproval-groups=\npurge-delay-usec=2592000000001\n", -EBADMSG, "out of range" },
                { "format=1\napproval-groups=\npurge-delay-usec=07\n", -EBADMSG, "malformed purge delay" },
                { "format=1\napproval-groups=5 5\npurge-delay-usec=1000000\n", -EBADMSG, "two approval levels" },
                { "format=1\napproval-groups=5  6\npurge-delay-usec=1000000\n", -EBADMSG, "malformed" },
                { "format=1\napproval-groups=4294967295\npurge-delay-usec=1000000\n", -EBADMSG, "malformed" },
                { "format=1\napproval-groups=1 2 3 4 5 6 7 8 9\npurge-delay-usec=1000000\n", -EBADMSG, "" },
                { "format=1\npurge-delay-usec=1000000\n", -EBADMSG, "expected 'approval-groups'" },
                { "format=1\napproval-groups=\n", -EBADMSG, "'purge-delay-usec' missing" },
                { "format=1\napproval-groups=\npurge-delay-usec=1000000\nextra=1\n", -EBADMSG, "unexpected key" },
                { "format=2\napproval-groups=\npurge-delay-usec=1000000\n", -EPROTONOSUPPORT, "newer dkm" },
                { "format=0\napproval-groups=\npurge-delay-usec=1000000\n", -EBADMSG, "format" },
        };
        _cleanup_store_ Store *s = test_state_init_with_group("mail");
        StorePolicy p = STORE_POLICY_DEFAULT, q;
        _cleanup_free_ char *good = NULL;
        size_t n;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                int r;

                test_write_with_checksum(test_state_path("store.policy"), cases[i].body);
                r = store_policy_load(s, &q);
                ck_assert_msg(r == cases[i].r, "case %zu: %d", i, r);
                ck_assert_ptr_nonnull(store_last_error(s));
                ck_assert_msg(strstr(store_last_error(s), "store.policy") && strstr(store_last_error(s), cases[i].why),
                              "case %zu: %s", i, store_last_error(s));
        }

        /* A flipped bit: the checksum. */
        p.purge_delay_usec = 3600ULL * 1000000;
        ck_assert_int_eq(store_policy_save(s, &p), 0);
        good = test_read_all(test_state_path("store.policy"), &n);
        good[strlen("format=1\napproval-groups=\npurge-delay-usec=3")] ^= 1;
        test_write_all(test_state_path("store.policy"), good, n);
        ck_assert_int_eq(store_policy_load(s, &q), -EBADMSG);
        ck_assert_msg(strstr(store_last_error(s), "checksum"), "%s", store_last_error(s));

        /* A refused policy leaves the file as it was. */
        ck_assert_int_eq(store_policy_save(s, &p), 0);
        p.purge_delay_usec = 0;
        ck_assert_int_eq(store_policy_save(s, &p), -EINVAL);
        ck_assert_int_eq(store_policy_load(s, &q), 0);
        ck_assert_uint_eq(q.purge_delay_usec, 3600ULL * 1000000);

        /* A directory in its place is not a policy. */
        ck_assert_int_eq(unlink(test_state_path("store.policy")), 0);
        ck_assert_int_eq(mkdir(test_state_path("store.policy"), 0700), 0);
        ck_assert_int_eq(store_policy_load(s, &q), -EBADMSG);
        ck_assert_int_eq(rmdir(test_state_path("store.policy")), 0);
}
END_TEST

START_TEST(test_policy_file_canonical) {
        StorePolicy p = STORE_POLICY_DEFAULT, q;
        _cleanup_free_ char *text = NULL, *again = NULL;
        KvError e = {};
        size_t n, m;

        p.approval_levels[0] = 0;
        p.approval_levels[1] = 4294967294U;
        p.n_approval_levels = 2;
        ck_assert_int_eq(store_policy_file_format(&p, &text, &n), 0);
        ck_assert_int_eq(store_policy_file_parse(text, n, &q, &e), 0);
        ck_assert_int_eq(store_policy_file_format(&q, &again, &m), 0);
        ck_assert_uint_eq(n, m);
        ck_assert_mem_eq(text, again, n);
        p.purge_delay_usec = 0;
        ck_assert_int_eq(store_policy_file_format(&p, &again, &m), -EINVAL);
}
END_TEST

/* ---- protector health ---- */

static const StoreProtectorStatus *find_status(const StoreProtectorStatus *l, size_t n, const char *name) {
        for (size_t i = 0; i < n; i++)
                if (strcmp(l[i].name, name) == 0)
                        return &l[i];
        ck_abort_msg("no status for %s", name);
        return NULL;
}

static void expect_health(const StoreProtectorStatus *l, size_t n, const char *name, const char *type,
                          StoreProtectorHealth h, const char *detail) {
        const StoreProtectorStatus *st = find_status(l, n, name);

        ck_assert_msg(st->health == h, "%s: %s (%s), expected %s", name, store_protector_health_to_string(st->health),
                      st->detail, store_protector_health_to_string(h));
        ck_assert_str_eq(st->type, type);
        if (h == STORE_PROTECTOR_OK)
                ck_assert_str_eq(st->detail, "");
        else
                ck_assert_msg(strstr(st->detail, detail), "%s: '%s' lacks '%s'", name, st->detail, detail);
        /* Details are relative to the store: the path is said once, by the caller. */
        ck_assert_msg(!strstr(st->detail, TS.sdir), "%s", st->detail);
}

START_TEST(test_health_strings) {
        static const char *const want[] = { "ok", "unavailable", "pin-refused", "pcr-mismatch",
                                            "withdrawn", "untested", "invalid" };

        ck_assert_uint_eq(ELEMENTSOF(want), _STORE_PROTECTOR_HEALTH_MAX);
        for (int h = 0; h < _STORE_PROTECTOR_HEALTH_MAX; h++)
                ck_assert_str_eq(store_protector_health_to_string((StoreProtectorHealth) h), want[h]);
        ck_assert_ptr_null(store_protector_health_to_string(_STORE_PROTECTOR_HEALTH_MAX));
        ck_assert_ptr_null(store_protector_health_to_string((StoreProtectorHealth) -1));
}
END_TEST

START_TEST(test_check_file_protectors) {
        _cleanup_store_ Store *s = test_state_init_with_group("mail");
        _cleanup_secret_ Secret *pp = test_secret("correct horse");
        _cleanup_free_ StoreProtectorStatus *l = NULL;
        char *const skip[] = { (char *) "local", NULL };
        size_t n;

        ck_assert_int_eq(store_protector_add_file(s, "second"), 0);
        ck_assert_int_eq(store_protector_add_file(s, "third"), 0);
        ck_assert_int_eq(store_protector_add_passphrase(s, "paper", pp), 0);

        ck_assert_int_eq(store_protector_check(s, NULL, &l, &n), 0);
        ck_assert_uint_eq(n, 4);
        /* Sorted by name. */
        ck_assert_str_eq(l[0].name, "local");
        ck_assert_str_eq(l[1].name, "paper");
        ck_assert_str_eq(l[2].name, "second");
        ck_assert_str_eq(l[3].name, "third");
        expect_health(l, n, "local", "file", STORE_PROTECTOR_OK, "");
        expect_health(l, n, "second", "file", STORE_PROTECTOR_OK, "");
        expect_health(l, n, "paper", "passphrase", STORE_PROTECTOR_UNTESTED, "needs a passphrase");
        ck_assert_ptr_null(store_last_error(s));
        free(l);
        l = NULL;

        /* Key file gone: withdrawn. Damaged protector file: invalid. Skipped: refused, untried. */
        ck_assert_int_eq(unlink(test_state_path("protectors/second.key")), 0);
        test_write_all(test_state_path("protectors/third.protector"), "format=1\n", 9);
        ck_assert_int_eq(store_protector_check(s, skip, &l, &n), 0);
        ck_assert_uint_eq(n, 4);
        expect_health(l, n, "local", "file", STORE_PROTECTOR_REFUSED, "not tried again: the token refused the PIN before");
        expect_health(l, n, "second", "file", STORE_PROTECTOR_WITHDRAWN, "key file missing");
        expect_health(l, n, "third", "invalid", STORE_PROTECTOR_INVALID, "protectors/third.protector");
        expect_health(l, n, "paper", "passphrase", STORE_PROTECTOR_UNTESTED, "needs a passphrase");
        free(l);
        l = NULL;

        /* A protector of another store (same name, its own key file) no longer opens this one. */
        {
                _cleanup_store_ Store *other = NULL;
                char odir[160], cmd[512];

                snprintf(odir, sizeof(odir), "%s/other", TS.base);
                ck_assert_int_eq(store_init(odir, NULL, &other), 0);
                snprintf(cmd, sizeof(cmd), "cp %s/protectors/local.protector %s/protectors/local.key %s/protectors/", odir,
                         odir, TS.sdir);
                ck_assert_int_eq(system(cmd), 0);
        }
        ck_assert_int_eq(store_protector_check(s, NULL, &l, &n), 0);
        expect_health(l, n, "local", "file", STORE_PROTECTOR_WITHDRAWN, "does not unwrap the root key");
        /* Still unlocked: the check reports, the caller decides. */
        ck_assert(store_is_unlocked(s));
}
END_TEST

START_TEST(test_check_unlocks_locked_store) {
        _cleanup_store_ Store *s = test_state_init_with_group("mail"), *t = NULL;
        _cleanup_free_ StoreProtectorStatus *l = NULL;
        _cleanup_store_group_ StoreGroup *g = NULL;
        _cleanup_secret_ Secret *k1 = NULL, *k2 = NULL;
        size_t n;

        ck_assert_int_eq(store_protector_add_file(s, "zz-second"), 0);
        ck_assert_int_eq(store_group_load(s, "mail", &g), 0);
        ck_assert_int_eq(store_generation_unwrap(s, g, 1, &k1), 0);
        /* The first in order (local) is withdrawn: the next one opens the store. */
        ck_assert_int_eq(unlink(test_state_path("protectors/local.key")), 0);
        ck_assert_int_eq(store_open(TS.sdir, &t), 0);
        ck_assert(!store_is_unlocked(t));
        ck_assert_int_eq(store_protector_check(t, NULL, &l, &n), 0);
        ck_assert_uint_eq(n, 2);
        expect_health(l, n, "local", "file", STORE_PROTECTOR_WITHDRAWN, "key file missing");
        expect_health(l, n, "zz-second", "file", STORE_PROTECTOR_OK, "");
        ck_assert(store_is_unlocked(t));
        ck_assert_int_eq(store_generation_unwrap(t, g, 1, &k2), 0);
        ck_assert_int_eq(secret_equal(k1, k2), 1);
        free(l);
        l = NULL;

        /* Forgotten: locked again, and unlocked again by the next check. */
        store_forget_root_key(t);
        ck_assert(!store_is_unlocked(t));
        ck_assert_int_eq(store_group_create(t, "other", 1000, CRYPT_ALG_XCHACHA20_POLY1305, NULL, NULL), -ENOKEY);
        store_forget_root_key(t); /* twice is fine */
        store_forget_root_key(NULL);
        ck_assert_int_eq(store_protector_check(t, NULL, &l, &n), 0);
        ck_assert(store_is_unlocked(t));
        free(l);
        l = NULL;

        /* Suspended while a purge waits: checked, but not unlocked. */
        store_forget_root_key(t);
        ck_assert_int_eq(store_suspend(t, "purge pending"), 0);
        ck_assert_int_eq(store_protector_check(t, NULL, &l, &n), 0);
        expect_health(l, n, "zz-second", "file", STORE_PROTECTOR_OK, "");
        ck_assert(!store_is_unlocked(t));
        ck_assert_int_eq(store_resume(t), 0);
        free(l);
        l = NULL;

        /* Nothing opens it: still locked, no failure of the call itself. */
        store_forget_root_key(t);
        ck_assert_int_eq(unlink(test_state_path("protectors/zz-second.key")), 0);
        ck_assert_int_eq(store_protector_check(t, NULL, &l, &n), 0);
        ck_assert(!store_is_unlocked(t));
        for (size_t i = 0; i < n; i++)
                ck_assert_int_eq(l[i].health, STORE_PROTECTOR_WITHDRAWN);
}
END_TEST

/* ---- purge ---- */

/* Every wrapped blob (KEK and generation keys) of every group, before the purge. */
typedef struct Blobs {
        uint8_t b[64][CRYPT_WRAPPED_KEY_BYTES];
        size_t n;
} Blobs;

static void collect_blobs(Store *s, Blobs *out) {
        _cleanup_strv_free_ char **names = NULL;

        ck_assert_int_eq(store_group_list(s, &names), 0);
        for (char **nm = names; *nm; nm++) {
                _cleanup_store_group_ StoreGroup *g = NULL;

                ck_assert_int_eq(store_group_load(s, *nm, &g), 0);
                memcpy(out->b[out->n++], g->wrapped_kek, CRYPT_WRAPPED_KEY_BYTES);
                for (size_t i = 0; i < g->n_generations; i++)
                        if (g->generations[i].has_key)
                                memcpy(out->b[out->n++], g->generations[i].wrapped_key, CRYPT_WRAPPED_KEY_BYTES);
        }
}

static void expect_shredded(Store *s, const Blobs *blobs) {
        _cleanup_strv_free_ char **names = NULL;
        _cleanup_free_ StoreProtectorInfo *pi = NULL;
        size_t n;

        ck_assert(!store_is_unlocked(s));
        ck_assert_uint_eq(count_files("protectors"), 0);
        ck_assert_int_eq(store_protector_list(s, &pi, &n), 0);
        ck_assert_uint_eq(n, 0);
        ck_assert_int_eq(store_group_list(s, &names), 0);
        ck_assert_ptr_nonnull(names[0]);
        for (char **nm = names; *nm; nm++) {
                _cleanup_store_group_ StoreGroup *g = NULL;

                ck_assert_int_eq(store_group_load(s, *nm, &g), 0);
                ck_assert(group_kek_destroyed(g));
                for (size_t i = 0; i < g->n_generations; i++) {
                        ck_assert_int_eq(g->generations[i].state, GENERATION_RETIRED);
                        ck_assert(!g->generations[i].has_key);
                        ck_assert_uint_gt(g->generations[i].retired_usec, 0);
                        ck_assert_uint_gt(g->generations[i].created_usec, 0);
                }
        }
        for (size_t i = 0; i < blobs->n; i++)
                ck_assert_msg(!test_state_contains_or_hex(blobs->b[i], CRYPT_WRAPPED_KEY_BYTES),
                              "wrapped key %zu is still in the state directory", i);
}

START_TEST(test_purge) {
        _cleanup_store_ Store *s = test_state_init_with_group("mail"), *other = NULL;
        _cleanup_store_group_ StoreGroup *g = NULL;
        _cleanup_secret_ Secret *k = NULL;
        _cleanup_free_ char *key_file = NULL;
        Blobs blobs = {};
        uint64_t t0 = 0, t1 = 0, t2 = 0;
        size_t key_size;

        ck_assert_int_eq(store_rollover(s, "mail", NULL), 0);
        ck_assert_int_eq(store_rollover(s, "mail", NULL), 0);
        ck_assert_int_eq(store_generation_add(s, "mail", NULL), 0);
        ck_assert_int_eq(store_generation_retire(s, "mail", 1), 0);
        ck_assert_int_eq(store_group_create(s, "db", 1001, CRYPT_ALG_XCHACHA20_POLY1305, NULL, NULL), 0);
        ck_assert_int_eq(store_protector_add_file(s, "second"), 0);
        ck_assert_int_eq(store_purged(s, &t0), 0);
        ck_assert_uint_eq(t0, 0);
        collect_blobs(s, &blobs);
        ck_assert_uint_eq(blobs.n, (1 + 3) + (1 + 1)); /* mail: KEK + 3 live generations; db: KEK + 1 */
        key_file = test_read_all(test_state_path("protectors/local.key"), &key_size);
        ck_assert_uint_eq(key_size, CRYPT_KEY_BYTES);
        ck_assert_int_eq(store_group_load(s, "mail", &g), 0);

        /* Another Store, unlocked before the purge, loses its key at its next use. */
        ck_assert_int_eq(store_open(TS.sdir, &other), 0);
        ck_assert_int_eq(store_unlock(other, NULL), 0);

        t0 = now_usec();
        ck_assert_int_eq(store_purge(s), 0);
        ck_assert_ptr_null(store_last_error(s));
        expect_shredded(s, &blobs);
        ck_assert(!test_state_contains(key_file, key_size));
        ck_assert_int_eq(store_purged(s, &t1), 1);
        ck_assert_uint_ge(t1, t0);
        ck_assert_int_eq(store_purged(s, NULL), 1);

        ck_assert_int_eq(store_unlock(s, NULL), -ENOKEY);
        ck_assert_msg(strstr(store_last_error(s), "the store was purged at "), "%s", store_last_error(s));
        ck_assert_int_eq(store_protector_add_file(s, "again"), -ENOKEY);
        ck_assert_int_eq(store_group_create(s, "new", 1000, CRYPT_ALG_XCHACHA20_POLY1305, NULL, NULL), -ENOKEY);
        ck_assert_int_eq(store_generation_unwrap(s, g, 2, &k), -ENOKEY);

        ck_assert(store_is_unlocked(other));
        ck_assert_int_eq(store_rollover(other, "mail", NULL), -ENOKEY);
        ck_assert_msg(strstr(store_last_error(other), "purged at"), "%s", store_last_error(other));
        ck_assert(!store_is_unlocked(other));
        ck_assert_int_eq(store_unlock(other, NULL), -ENOKEY);
        ck_assert_int_eq(store_protector_add_file(other, "again"), -ENOKEY);

        /* Again: nothing to do, nothing fails, the first time stays. */
        ck_assert_int_eq(store_purge(s), 0);
        ck_assert_int_eq(store_purged(s, &t2), 1);
        ck_assert_uint_eq(t1, t2);
        expect_shredded(s, &blobs);
        /* Tombstones load, and say they are retired. */
        {
                _cleanup_store_group_ StoreGroup *p = NULL;
                ck_assert_int_eq(store_group_load(s, "mail", &p), 0);
                ck_assert_int_eq(store_generation_unwrap(s, p, 2, &k), -EKEYREVOKED);
        }
        /* A new Store on the purged directory: opens (metadata), never unlocks. */
        other = store_free(other);
        ck_assert_int_eq(store_open(TS.sdir, &other), 0);
        ck_assert_int_eq(store_unlock(other, NULL), -ENOKEY);
        ck_assert_msg(strstr(store_last_error(other), "purged at"), "%s", store_last_error(other));
}
END_TEST

/* A purge killed after its marker: the store already refuses to unlock, and the next purge
 * finishes the job. Also: protectors removed by hand, a damaged group file, a damaged marker. */
START_TEST(test_purge_interrupted) {
        _cleanup_store_ Store *s = test_state_init_with_group("mail");
        _cleanup_free_ StoreProtectorStatus *l = NULL;
        Blobs blobs = {};
        uint64_t t = 0;
        size_t n;

        ck_assert_int_eq(store_rollover(s, "mail", NULL), 0);
        ck_assert_int_eq(store_group_create(s, "db", 1001, CRYPT_ALG_XCHACHA20_POLY1305, NULL, NULL), 0);
        ck_assert_int_eq(store_group_create(s, "broken", 1002, CRYPT_ALG_XCHACHA20_POLY1305, NULL, NULL), 0);
        collect_blobs(s, &blobs);
        s = store_free(s);

        /* The state right after the marker's write. */
        test_write_with_checksum(test_state_path("purged"), "format=1\npurged-usec=1700000000000000\n");
        ck_assert_int_eq(store_open(TS.sdir, &s), 0);
        ck_assert_int_eq(store_purged(s, &t), 1);
        ck_assert_uint_eq(t, 1700000000000000ULL);
        ck_assert_int_eq(store_unlock(s, NULL), -ENOKEY);
        ck_assert_msg(strstr(store_last_error(s), "the store was purged at 2023-11-14T22:13:20Z"), "%s",
                      store_last_error(s));
        /* A protector of it still on disk does not bring the key back through the check either. */
        ck_assert_int_eq(store_protector_check(s, NULL, &l, &n), 0);
        ck_assert(!store_is_unlocked(s));
        ck_assert_uint_eq(n, 1);
        expect_health(l, n, "local", "file", STORE_PROTECTOR_WITHDRAWN, "the store was purged at");
        free(l);
        l = NULL;

        /* The local key file already removed by hand, a group file damaged. */
        ck_assert_int_eq(unlink(test_state_path("protectors/local.key")), 0);
        test_write_all(test_state_path("groups/broken.group"), "format=1\nname=broken\n", 21);
        ck_assert_int_eq(store_purge(s), 0);
        ck_assert_int_eq(store_purged(s, &t), 1);
        ck_assert_uint_eq(t, 1700000000000000ULL);
        ck_assert_int_eq(access(test_state_path("groups/broken.group"), F_OK), -1);
        expect_shredded(s, &blobs);

        /* A damaged marker still means purged, and the next purge writes a good one. */
        test_write_all(test_state_path("purged"), "junk\n", 5);
        ck_assert_int_eq(store_purged(s, &t), -EBADMSG);
        ck_assert_int_eq(store_unlock(s, NULL), -ENOKEY);
        ck_assert_msg(strstr(store_last_error(s), "purged"), "%s", store_last_error(s));
        ck_assert_int_eq(store_purge(s), 0);
        ck_assert_int_eq(store_purged(s, &t), 1);
        ck_assert_uint_gt(t, 1700000000000000ULL);
}
END_TEST

/* Group files: "kek=-" only where every generation is retired; an all-zero KEK in hex is refused. */
START_TEST(test_group_file_destroyed_kek) {
        static const char *const head =
                "format=1\nname=g\nid=00112233445566778899aabbccddeeff\ngid=5\nalgorithm=xchacha20-poly1305\n"
                "rollover-period-usec=0\npropagation-delay-usec=0\nhot-window=2\nallow-human-members=0\n"
                "approval-levels=\nmax-grant-usec=1\nrequest-timeout-usec=1\nretire-needs-approval=1\n";
        char body[4096], zeros[2 * CRYPT_WRAPPED_KEY_BYTES + 1], key[2 * CRYPT_WRAPPED_KEY_BYTES + 1], file[8192];
        _cleanup_store_group_ StoreGroup *g = NULL;
        KvError e = {};
        uint8_t sum[CRYPT_HASH_BYTES];
        size_t n;

        memset(zeros, '0', sizeof(zeros) - 1);
        zeros[sizeof(zeros) - 1] = 0;
#define SEAL(b)                                                                                                        \
        do {                                                                                                           \
                crypt_hash((b), strlen(b), sum);                                                                       \
                n = (size_t) snprintf(file, sizeof(file), "%schecksum=", (b));                                         \
                for (size_t i_ = 0; i_ < sizeof(sum); i_++)                                                            \
                        n += (size_t) snprintf(file + n, sizeof(file) - n, "%02x", sum[i_]);                            \
                n += (size_t) snprintf(file + n, sizeof(file) - n, "\n");                                              \
        } while (0)

        snprintf(body, sizeof(body), "%skek=-\ngeneration=1 state=retired created=1 activated=2 archived=3 retired=4 key=-\n", head);
        SEAL(body);
        ck_assert_int_eq(group_file_parse(file, n, "g", &g, &e), 0);
        ck_assert(group_kek_destroyed(g));
        {
                _cleanup_free_ char *out = NULL;
                size_t m;
                ck_assert_int_eq(group_file_format(g, &out, &m), 0);
                ck_assert_uint_eq(m, n);
                ck_assert_mem_eq(out, file, n);
                /* A live generation under a destroyed KEK cannot be written either. */
                g->generations[0].has_key = true;
                g->generations[0].state = GENERATION_ARCHIVED;
                ck_assert_int_eq(group_file_format(g, &out, &m), -EINVAL);
        }
        g = store_group_free(g);

        memset(key, 'a', sizeof(key) - 1);
        key[sizeof(key) - 1] = 0;
        snprintf(body, sizeof(body), "%skek=-\ngeneration=1 state=archived created=1 activated=2 archived=3 retired=0 key=%s\n",
                 head, key);
        SEAL(body);
        ck_assert_int_eq(group_file_parse(file, n, "g", &g, &e), -EBADMSG);
        ck_assert_msg(strstr(e.msg, "kek destroyed"), "%s", e.msg);

        snprintf(body, sizeof(body), "%skek=%s\ngeneration=1 state=retired created=1 activated=2 archived=3 retired=4 key=-\n",
                 head, zeros);
        SEAL(body);
        ck_assert_int_eq(group_file_parse(file, n, "g", &g, &e), -EBADMSG);
        ck_assert_msg(strstr(e.msg, "all zeros"), "%s", e.msg);
#undef SEAL
}
END_TEST

/* ---- dkm-store ---- */

#define RUN(...) test_state_run_store(out, sizeof(out), true, (const char *const[]) { __VA_ARGS__, NULL })

START_TEST(test_cli) {
        _cleanup_store_ Store *s = NULL;
        StorePolicy p;
        char out[4096];

        ck_assert_int_eq(RUN("init"), 0);
        ck_assert_int_eq(RUN("group", "create", "mail", "--gid=root"), 0);

        ck_assert_int_eq(RUN("policy", "show"), 0);
        ck_assert_msg(strstr(out, "Approval groups: none") && strstr(out, "Purge delay:     7d"), "%s", out);
        ck_assert_int_eq(RUN("policy", "set"), 2);
        ck_assert_int_eq(RUN("policy", "set", "--approval-groups=root,no-such-group-dkm"), 2);
        ck_assert_msg(strstr(out, "no such group 'no-such-group-dkm'"), "%s", out);
        ck_assert_int_eq(RUN("policy", "set", "--approval-groups=root,root"), 2);
        ck_assert_int_eq(RUN("policy", "set", "--purge-delay=0"), 2);
        ck_assert_int_eq(RUN("policy", "set", "--purge-delay=31d"), 2);
        ck_assert_int_eq(RUN("policy", "set", "--purge-delay=soon"), 2);
        ck_assert_int_eq(RUN("policy", "set", "extra"), 2);
        ck_assert_int_eq(access(test_state_path("store.policy"), F_OK), -1);
        ck_assert_int_eq(RUN("policy", "set", "--approval-groups=root,daemon", "--purge-delay=12h"), 0);
        ck_assert_int_eq(RUN("policy", "show"), 0);
        ck_assert_msg(strstr(out, "root (gid 0), daemon (gid 1)") && strstr(out, "12h"), "%s", out);
        ck_assert_int_eq(RUN("policy", "set", "--approval-groups="), 0);
        ck_assert_int_eq(store_open(TS.sdir, &s), 0);
        ck_assert_int_eq(store_policy_load(s, &p), 0);
        ck_assert_uint_eq(p.n_approval_levels, 0);
        ck_assert_uint_eq(p.purge_delay_usec, 12ULL * 3600 * 1000000);
        test_write_all(test_state_path("store.policy"), "junk\n", 5);
        ck_assert_int_eq(RUN("policy", "show"), 5);

        ck_assert_int_eq(RUN("protector", "add", "second"), 0);
        ck_assert_int_eq(RUN("protector", "check"), 0);
        ck_assert_msg(strstr(out, "local") && strstr(out, " ok"), "%s", out);
        ck_assert_int_eq(unlink(test_state_path("protectors/local.key")), 0);
        ck_assert_int_eq(RUN("protector", "check"), 0);
        ck_assert_msg(strstr(out, "withdrawn") && strstr(out, "key file missing"), "%s", out);
        ck_assert_int_eq(unlink(test_state_path("protectors/second.key")), 0);
        ck_assert_int_eq(RUN("protector", "check"), 4);

        ck_assert_int_eq(RUN("purge"), 2);
        ck_assert_msg(strstr(out, "--yes-destroy-everything"), "%s", out);
        ck_assert_int_eq(store_purged(s, NULL), 0);
        ck_assert_int_eq(RUN("purge", "extra", "--yes-destroy-everything"), 2);
        ck_assert_int_eq(RUN("purge", "--yes-destroy-everything"), 0);
        ck_assert_int_eq(store_purged(s, NULL), 1);
        ck_assert_int_eq(RUN("check"), 4);
        ck_assert_msg(strstr(out, "the store was purged at"), "%s", out);
        ck_assert_int_eq(RUN("protector", "check"), 4);
        ck_assert_int_eq(RUN("protector", "add", "third"), 4);
        ck_assert_int_eq(RUN("purge", "--yes-destroy-everything"), 0);
        ck_assert_msg(strstr(out, "Finished the purge"), "%s", out);
        ck_assert_int_eq(RUN("group", "show", "mail"), 0);
        ck_assert_msg(strstr(out, "retired"), "%s", out);
}
END_TEST

static Suite *store_purge_suite(void) {
        Suite *s = suite_create("store-purge");
        TCase *tc;

        tc = tcase_create("policy");
        tcase_add_checked_fixture(tc, test_state_setup, test_state_teardown);
        tcase_add_test(tc, test_policy_default_save_load);
        tcase_add_test(tc, test_policy_check);
        tcase_add_test(tc, test_policy_damaged);
        tcase_add_test(tc, test_policy_file_canonical);
        suite_add_tcase(s, tc);

        tc = tcase_create("health");
        tcase_add_checked_fixture(tc, test_state_setup, test_state_teardown);
        tcase_add_test(tc, test_health_strings);
        tcase_add_test(tc, test_check_file_protectors);
        tcase_add_test(tc, test_check_unlocks_locked_store);
        suite_add_tcase(s, tc);

        tc = tcase_create("purge");
        tcase_add_checked_fixture(tc, test_state_setup, test_state_teardown);
        tcase_add_test(tc, test_purge);
        tcase_add_test(tc, test_purge_interrupted);
        tcase_add_test(tc, test_group_file_destroyed_kek);
        tcase_add_test(tc, test_cli);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        /* Argon2id at its cheapest: the protectors' logic is under test here, not their cost. */
        setenv("DKM_TEST_PWHASH_FAST", "1", 1);
        if (crypt_init() < 0)
                return EXIT_FAILURE;
        return test_state_run("store-purge", store_purge_suite());
}
