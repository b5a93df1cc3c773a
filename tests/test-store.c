/* SPDX-License-Identifier: MIT */
/* Tests for the key store: protectors, groups, generation rules, file safety, corruption, concurrency, crashes. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

#include "group-file.h"
#include "store.h"
#include "test-helpers.h"
#include "test-state.h"

/* STATEDIR/groups/NAME.group, STATEDIR/protectors/NAME.{protector,key}. */
static const char *gpath(const char *name) {
        char rel[128];
        snprintf(rel, sizeof(rel), "groups/%s.group", name);
        return test_state_path(rel);
}
static const char *ppath(const char *name, const char *suffix) {
        char rel[128];
        snprintf(rel, sizeof(rel), "protectors/%s%s", name, suffix);
        return test_state_path(rel);
}

static void to_hex(const void *p, size_t n, char *out) {
        for (size_t i = 0; i < n; i++)
                sprintf(out + 2 * i, "%02x", ((const uint8_t *) p)[i]);
}

/* The text before the checksum line. */
static char *body_of(const char *data) {
        char *b = strdup(data), *c = strstr(b, "checksum=");
        ck_assert_ptr_nonnull(c);
        *c = 0;
        return b;
}

static char *read_body(const char *path) {
        _cleanup_free_ char *d = test_read_all(path, NULL);
        return body_of(d);
}

static char *replace_once(const char *s, const char *from, const char *to) {
        const char *at = strstr(s, from);
        char *r;

        ck_assert_msg(at, "'%s' not found", from);
        r = malloc(strlen(s) - strlen(from) + strlen(to) + 1);
        sprintf(r, "%.*s%s%s", (int) (at - s), s, to, at + strlen(from));
        return r;
}

static void unwrap_bytes(Store *s, const StoreGroup *g, uint32_t n, uint8_t out[CRYPT_KEY_BYTES]) {
        _cleanup_secret_ Secret *k = NULL;
        int r = store_generation_unwrap(s, g, n, &k);
        ck_assert_msg(r == 0, "unwrap %u: %d %s", n, r, store_last_error(s) ?: "");
        ck_assert_uint_eq(k->size, CRYPT_KEY_BYTES);
        memcpy(out, k->data, CRYPT_KEY_BYTES);
}

static StoreGroup *load(Store *s, const char *name) {
        StoreGroup *g = NULL;
        int r = store_group_load(s, name, &g);
        ck_assert_msg(r == 0, "load %s: %d %s", name, r, store_last_error(s) ?: "");
        return g;
}

static Store *open_unlocked(void) {
        Store *s = NULL;
        ck_assert_int_eq(store_open(TS.sdir, &s), 0);
        ck_assert_int_eq(store_unlock(s, NULL), 0);
        return s;
}

START_TEST(test_init_open_file) {
        _cleanup_store_ Store *s = NULL;
        _cleanup_store_group_ StoreGroup *g = NULL;
        _cleanup_free_ StoreProtectorInfo *pi = NULL;
        uint8_t k1[CRYPT_KEY_BYTES], k2[CRYPT_KEY_BYTES];
        size_t n;

        ck_assert_int_eq(store_open(TS.sdir, &s), -ENOENT);
        ck_assert_ptr_nonnull(strstr(store_last_error(NULL), TS.sdir));
        ck_assert_int_eq(store_init(TS.sdir, NULL, &s), 0);
        ck_assert(store_is_unlocked(s));
        ck_assert_str_eq(store_path(s), TS.sdir);
        ck_assert_int_eq(store_group_create(s, "mail", 1234, CRYPT_ALG_XCHACHA20_POLY1305, NULL, &g), 0);
        ck_assert_ptr_null(store_last_error(s));
        unwrap_bytes(s, g, 1, k1);
        s = store_free(s);

        ck_assert_int_eq(store_init(TS.sdir, NULL, &s), -EEXIST);
        ck_assert_ptr_nonnull(strstr(store_last_error(NULL), "already"));
        ck_assert_int_eq(store_open(TS.sdir, &s), 0);
        ck_assert(!store_is_unlocked(s));
        ck_assert_int_eq(store_group_create(s, "other", 1, CRYPT_ALG_XCHACHA20_POLY1305, NULL, NULL), -ENOKEY);
        ck_assert_int_eq(store_rollover(s, "mail", NULL), -ENOKEY);
        g = store_group_free(g);
        g = load(s, "mail");
        {
                _cleanup_secret_ Secret *k = NULL;
                ck_assert_int_eq(store_generation_unwrap(s, g, 1, &k), -ENOKEY);
        }
        ck_assert_int_eq(store_unlock(s, NULL), 0);
        unwrap_bytes(s, g, 1, k2);
        ck_assert_mem_eq(k1, k2, sizeof(k1));
        ck_assert(!test_state_contains(k1, sizeof(k1)));

        ck_assert_int_eq(store_protector_list(s, &pi, &n), 0);
        ck_assert_uint_eq(n, 1);
        ck_assert_str_eq(pi[0].name, "local");
        ck_assert_str_eq(pi[0].type, "file");
}
END_TEST

START_TEST(test_passphrase) {
        _cleanup_secret_ Secret *pw = test_secret("correct horse battery staple"), *bad = test_secret("correct horse");
        _cleanup_store_ Store *s = NULL;
        _cleanup_store_group_ StoreGroup *g = NULL;
        _cleanup_free_ char *pf = NULL;
        uint8_t k1[CRYPT_KEY_BYTES], k2[CRYPT_KEY_BYTES];

        ck_assert_int_eq(store_init(TS.sdir, pw, &s), 0);
        ck_assert_int_eq(store_group_create(s, "mail", 5, CRYPT_ALG_XCHACHA20_POLY1305, NULL, &g), 0);
        unwrap_bytes(s, g, 1, k1);
        s = store_free(s);

        /* the Argon2 parameters are recorded, so unlocking uses what adding chose */
        pf = test_read_all(ppath("passphrase", ".protector"), NULL);
        ck_assert_ptr_nonnull(strstr(pf, "type=passphrase\n"));
        ck_assert_ptr_nonnull(strstr(pf, "\nopslimit=1\nmemlimit=65536\n"));

        ck_assert_int_eq(store_open(TS.sdir, &s), 0);
        ck_assert_int_eq(store_unlock(s, NULL), -ENOKEY);
        ck_assert_int_eq(store_unlock(s, bad), -ENOKEY);
        ck_assert_ptr_nonnull(strstr(store_last_error(s), "wrong passphrase"));
        ck_assert(!store_is_unlocked(s));
        ck_assert_int_eq(store_unlock(s, pw), 0);
        ck_assert(store_is_unlocked(s));
        unwrap_bytes(s, g, 1, k2);
        ck_assert_mem_eq(k1, k2, sizeof(k1));
        ck_assert(!test_state_contains(pw->data, pw->size));
}
END_TEST

START_TEST(test_protectors) {
        _cleanup_secret_ Secret *pw = test_secret("hunter2 but longer");
        _cleanup_store_ Store *s = NULL;
        _cleanup_free_ StoreProtectorInfo *pi = NULL;
        struct stat st;
        size_t n;

        ck_assert_int_eq(store_init(TS.sdir, NULL, &s), 0);
        ck_assert_int_eq(store_protector_add_passphrase(s, "pw", pw), 0);
        ck_assert_int_eq(store_protector_add_file(s, "second"), 0);
        ck_assert_int_eq(store_protector_add_file(s, "second"), -EEXIST);
        ck_assert_int_eq(store_protector_add_file(s, "Bad Name"), -EINVAL);
        ck_assert_int_eq(store_protector_add_file(s, "../evil"), -EINVAL);
        ck_assert_int_eq(store_protector_list(s, &pi, &n), 0);
        ck_assert_uint_eq(n, 3);
        ck_assert_str_eq(pi[0].name, "local");
        ck_assert_str_eq(pi[1].name, "pw");
        ck_assert_str_eq(pi[1].type, "passphrase");
        ck_assert_str_eq(pi[2].name, "second");
        ck_assert_str_eq(pi[2].type, "file");

        ck_assert_int_eq(store_protector_remove(s, "local"), 0);
        ck_assert_int_ne(stat(ppath("local", ".key"), &st), 0);
        ck_assert_int_ne(stat(ppath("local", ".protector"), &st), 0);
        ck_assert_int_eq(store_protector_remove(s, "nope"), -ENOENT);
        s = store_free(s);

        /* the second file protector alone unlocks it */
        s = open_unlocked();
        s = store_free(s);
        ck_assert_int_eq(store_open(TS.sdir, &s), 0);
        ck_assert_int_eq(store_protector_add_file(s, "third"), -ENOKEY);
        ck_assert_int_eq(store_protector_remove(s, "second"), 0);
        ck_assert_int_eq(store_unlock(s, NULL), -ENOKEY);
        ck_assert_int_eq(store_unlock(s, pw), 0);
        ck_assert_int_eq(store_protector_remove(s, "pw"), -EBUSY);
        ck_assert_ptr_nonnull(strstr(store_last_error(s), "last"));

        /* a protector that cannot be read does not count as the one that remains */
        ck_assert_int_eq(store_protector_add_file(s, "spare"), 0);
        test_write_all(ppath("spare", ".protector"), "junk\n", 5);
        ck_assert_int_eq(store_protector_remove(s, "pw"), -EBUSY);
        ck_assert_int_eq(store_protector_remove(s, "spare"), 0);
}
END_TEST

START_TEST(test_groups) {
        _cleanup_store_ Store *s = NULL;
        _cleanup_strv_free_ char **names = NULL;
        _cleanup_store_group_ StoreGroup *m = NULL, *b = NULL, *m2 = NULL;
        _cleanup_free_ char *text = NULL;
        const StoreGeneration *a;
        StoreGroupPolicy daily = STORE_GROUP_POLICY_DEFAULT, manual = STORE_GROUP_POLICY_DEFAULT;
        StoreGroupPolicy too_hot = STORE_GROUP_POLICY_DEFAULT, glass = STORE_GROUP_POLICY_DEFAULT, bad;

        daily.rollover_period_usec = 86400000000ULL;
        daily.propagation_delay_usec = 300000000ULL;
        daily.hot_window = 5;
        daily.allow_human_members = true;
        too_hot.hot_window = STORE_HOT_WINDOW_MAX + 1;
        /* gid 0 and the largest gid are levels like any other */
        glass.approval_levels[0] = 2001;
        glass.approval_levels[1] = 0;
        glass.approval_levels[2] = 4294967294U;
        glass.n_approval_levels = 3;
        glass.max_grant_usec = 900000000ULL;
        glass.request_timeout_usec = 3600000000ULL;
        glass.retire_needs_approval = false;

        ck_assert_int_eq(store_init(TS.sdir, NULL, &s), 0);
        ck_assert_int_eq(store_group_create(s, "mail", 100, CRYPT_ALG_XCHACHA20_POLY1305, &daily, &m), 0);
        ck_assert_int_eq(store_group_create(s, "hot", 100, CRYPT_ALG_XCHACHA20_POLY1305, &too_hot, NULL), -EINVAL);
        ck_assert_int_eq(store_group_create(s, "backup", 200, CRYPT_ALG_AES256_GCM, NULL, NULL), 0);
        ck_assert_int_eq(store_group_create(s, "mail", 100, CRYPT_ALG_XCHACHA20_POLY1305, NULL, NULL), -EEXIST);
        ck_assert_int_eq(store_group_create(s, "Mail", 100, CRYPT_ALG_XCHACHA20_POLY1305, NULL, NULL), -EINVAL);
        ck_assert_int_eq(store_group_create(s, ".hidden", 100, CRYPT_ALG_XCHACHA20_POLY1305, NULL, NULL), -EINVAL);
        ck_assert_int_eq(store_group_create(s, "x", (gid_t) -1, CRYPT_ALG_XCHACHA20_POLY1305, NULL, NULL), -EINVAL);
        ck_assert_int_eq(store_group_create(s, "x", 1, (CryptAlg) 77, NULL, NULL), -EPROTONOSUPPORT);

        ck_assert_int_eq(store_group_list(s, &names), 0);
        ck_assert_str_eq(names[0], "backup");
        ck_assert_str_eq(names[1], "mail");
        ck_assert_ptr_null(names[2]);

        m2 = load(s, "mail");
        ck_assert_str_eq(m2->name, "mail");
        ck_assert_uint_eq(m2->gid, 100);
        ck_assert_int_eq(m2->alg, CRYPT_ALG_XCHACHA20_POLY1305);
        ck_assert_uint_eq(m2->policy.rollover_period_usec, daily.rollover_period_usec);
        ck_assert_uint_eq(m2->policy.propagation_delay_usec, daily.propagation_delay_usec);
        ck_assert_uint_eq(m2->policy.hot_window, daily.hot_window);
        ck_assert(m2->policy.allow_human_members);
        ck_assert_uint_eq(m2->policy.n_approval_levels, 0);
        ck_assert_uint_eq(m2->policy.max_grant_usec, STORE_MAX_GRANT_DEFAULT_USEC);
        ck_assert_uint_eq(m2->policy.request_timeout_usec, STORE_REQUEST_TIMEOUT_DEFAULT_USEC);
        ck_assert(m2->policy.retire_needs_approval);
        ck_assert_mem_eq(m2->id, m->id, sizeof(m->id));
        ck_assert_uint_eq(m2->n_generations, 1);
        a = store_group_active_generation(m2);
        ck_assert_ptr_nonnull(a);
        ck_assert_uint_eq(a->number, 1);
        ck_assert(a->has_key);
        ck_assert_uint_gt(a->created_usec, 0);
        ck_assert_uint_ge(a->activated_usec, a->created_usec);
        b = load(s, "backup");
        ck_assert_int_eq(b->alg, CRYPT_ALG_AES256_GCM);
        ck_assert(memcmp(b->id, m->id, sizeof(m->id)) != 0);

        ck_assert_int_eq(store_group_set_policy(s, "mail", &too_hot), -EINVAL);
        ck_assert_int_eq(store_group_set_policy(s, "mail", &manual), 0);
        m2 = store_group_free(m2);
        m2 = load(s, "mail");
        ck_assert_uint_eq(m2->policy.rollover_period_usec, 0);
        ck_assert_uint_eq(m2->policy.hot_window, STORE_HOT_WINDOW_DEFAULT);
        ck_assert(!m2->policy.allow_human_members);

        /* break-glass: levels in order, limits, retire flag; as header lines after allow-human-members */
        ck_assert_int_eq(store_group_set_policy(s, "mail", &glass), 0);
        m2 = store_group_free(m2);
        m2 = load(s, "mail");
        ck_assert_uint_eq(m2->policy.n_approval_levels, 3);
        ck_assert_uint_eq(m2->policy.approval_levels[0], 2001);
        ck_assert_uint_eq(m2->policy.approval_levels[1], 0);
        ck_assert_uint_eq(m2->policy.approval_levels[2], 4294967294U);
        ck_assert_uint_eq(m2->policy.max_grant_usec, 900000000ULL);
        ck_assert_uint_eq(m2->policy.request_timeout_usec, 3600000000ULL);
        ck_assert(!m2->policy.retire_needs_approval);
        text = test_read_all(gpath("mail"), NULL);
        ck_assert_ptr_nonnull(strstr(text, "\nallow-human-members=0\napproval-levels=2001 0 4294967294\n"
                                           "max-grant-usec=900000000\nrequest-timeout-usec=3600000000\n"
                                           "retire-needs-approval=0\nkek="));
        for (unsigned i = 0; i < STORE_APPROVAL_LEVELS_MAX; i++)
                glass.approval_levels[i] = 3000 + i;
        glass.n_approval_levels = STORE_APPROVAL_LEVELS_MAX;
        ck_assert_int_eq(store_group_set_policy(s, "mail", &glass), 0);
        m2 = store_group_free(m2);
        m2 = load(s, "mail");
        ck_assert_uint_eq(m2->policy.n_approval_levels, STORE_APPROVAL_LEVELS_MAX);
        ck_assert_uint_eq(m2->policy.approval_levels[7], 3007);

        /* refused, by the check, by create and by set-policy, leaving the group as it was */
        bad = glass;
        bad.n_approval_levels = STORE_APPROVAL_LEVELS_MAX + 1;
        ck_assert_int_eq(store_group_policy_check(&bad), -EINVAL);
        ck_assert_int_eq(store_group_set_policy(s, "mail", &bad), -EINVAL);
        ck_assert_int_eq(store_group_create(s, "nine", 100, CRYPT_ALG_XCHACHA20_POLY1305, &bad, NULL), -EINVAL);
        bad = glass;
        bad.approval_levels[5] = bad.approval_levels[2];
        ck_assert_int_eq(store_group_policy_check(&bad), -EINVAL);
        ck_assert_int_eq(store_group_set_policy(s, "mail", &bad), -EINVAL);
        bad = glass;
        bad.approval_levels[3] = (gid_t) -1;
        ck_assert_int_eq(store_group_policy_check(&bad), -EINVAL);
        ck_assert_int_eq(store_group_set_policy(s, "mail", &bad), -EINVAL);
        bad = glass;
        bad.max_grant_usec = 0;
        ck_assert_int_eq(store_group_policy_check(&bad), -EINVAL);
        ck_assert_int_eq(store_group_set_policy(s, "mail", &bad), -EINVAL);
        bad = glass;
        bad.request_timeout_usec = 0;
        ck_assert_int_eq(store_group_policy_check(&bad), -EINVAL);
        ck_assert_int_eq(store_group_set_policy(s, "mail", &bad), -EINVAL);
        ck_assert_int_eq(store_group_create(s, "zero", 100, CRYPT_ALG_XCHACHA20_POLY1305, &bad, NULL), -EINVAL);
        ck_assert_int_eq(store_group_policy_check(&glass), 0);
        m2 = store_group_free(m2);
        m2 = load(s, "mail");
        ck_assert_uint_eq(m2->policy.n_approval_levels, STORE_APPROVAL_LEVELS_MAX);
        ck_assert_uint_eq(m2->policy.max_grant_usec, 900000000ULL);

        /* and back to none */
        ck_assert_int_eq(store_group_set_policy(s, "mail", &manual), 0);
        m2 = store_group_free(m2);
        m2 = load(s, "mail");
        ck_assert_uint_eq(m2->policy.n_approval_levels, 0);
        ck_assert(m2->policy.retire_needs_approval);
        free(text);
        text = test_read_all(gpath("mail"), NULL);
        ck_assert_ptr_nonnull(strstr(text, "\napproval-levels=\nmax-grant-usec="));

        ck_assert_int_eq(store_group_load(s, "nope", &b), -ENOENT);
        ck_assert_ptr_nonnull(strstr(store_last_error(s), "no such group"));
        ck_assert_int_eq(store_group_set_policy(s, "nope", &manual), -ENOENT);
        ck_assert_int_eq(store_group_load(s, "../format", &b), -EINVAL);
}
END_TEST

START_TEST(test_rollover) {
        _cleanup_store_ Store *s = test_state_init_with_group("mail");
        _cleanup_store_group_ StoreGroup *g = NULL;
        uint8_t keys[7][CRYPT_KEY_BYTES], again[CRYPT_KEY_BYTES];
        uint32_t n;

        g = load(s, "mail");
        unwrap_bytes(s, g, 1, keys[1]);
        for (uint32_t i = 2; i <= 4; i++) {
                ck_assert_int_eq(store_rollover(s, "mail", &n), 0);
                ck_assert_uint_eq(n, i);
        }
        g = store_group_free(g);
        g = load(s, "mail");
        ck_assert_uint_eq(g->n_generations, 4);
        for (uint32_t i = 1; i <= 4; i++) {
                const StoreGeneration *gen = &g->generations[i - 1];
                ck_assert_uint_eq(gen->number, i);
                ck_assert_int_eq(gen->state, i < 4 ? GENERATION_ARCHIVED : GENERATION_ACTIVE);
                ck_assert_uint_ge(gen->activated_usec, gen->created_usec);
                if (i < 4)
                        ck_assert_uint_ge(gen->archived_usec, gen->activated_usec);
                else
                        ck_assert_uint_eq(gen->archived_usec, 0);
                ck_assert_uint_eq(gen->retired_usec, 0);
                unwrap_bytes(s, g, i, i == 1 ? again : keys[i]);
        }
        ck_assert_mem_eq(again, keys[1], CRYPT_KEY_BYTES);
        for (int i = 1; i <= 4; i++)
                for (int j = i + 1; j <= 4; j++)
                        ck_assert(memcmp(keys[i], keys[j], CRYPT_KEY_BYTES) != 0);

        /* add: pending, durable, decryptable, not active */
        ck_assert_int_eq(store_generation_add(s, "mail", &n), 0);
        ck_assert_uint_eq(n, 5);
        g = store_group_free(g);
        g = load(s, "mail");
        ck_assert_int_eq(store_group_find_generation(g, 5)->state, GENERATION_PENDING);
        ck_assert_uint_gt(store_group_find_generation(g, 5)->created_usec, 0);
        ck_assert_uint_eq(store_group_find_generation(g, 5)->activated_usec, 0);
        ck_assert_uint_eq(store_group_active_generation(g)->number, 4);
        unwrap_bytes(s, g, 5, keys[5]);

        ck_assert_int_eq(store_generation_activate(s, "mail", 5), 0);
        ck_assert_int_eq(store_generation_activate(s, "mail", 5), -EINVAL);
        ck_assert_int_eq(store_generation_activate(s, "mail", 4), -EINVAL);
        ck_assert_int_eq(store_generation_activate(s, "mail", 99), -ENOENT);
        g = store_group_free(g);
        g = load(s, "mail");
        ck_assert_int_eq(store_group_find_generation(g, 4)->state, GENERATION_ARCHIVED);
        ck_assert_int_eq(store_group_find_generation(g, 5)->state, GENERATION_ACTIVE);

        /* archive: pending yes, active no, twice no */
        ck_assert_int_eq(store_generation_add(s, "mail", &n), 0);
        ck_assert_uint_eq(n, 6);
        ck_assert_int_eq(store_generation_archive(s, "mail", 6), 0);
        ck_assert_int_eq(store_generation_archive(s, "mail", 5), -EBUSY);
        ck_assert_int_eq(store_generation_archive(s, "mail", 6), -EALREADY);
        ck_assert_int_eq(store_generation_archive(s, "mail", 0), -ENOENT);
        g = store_group_free(g);
        g = load(s, "mail");
        ck_assert_int_eq(store_group_find_generation(g, 6)->state, GENERATION_ARCHIVED);
        ck_assert_uint_eq(store_group_find_generation(g, 6)->activated_usec, 0);
        ck_assert_uint_eq(store_group_active_generation(g)->number, 5);
        for (uint32_t i = 1; i <= 5; i++) {
                unwrap_bytes(s, g, i, again);
                ck_assert_mem_eq(again, keys[i], CRYPT_KEY_BYTES);
        }
        ck_assert_int_eq(store_rollover(s, "nope", &n), -ENOENT);
}
END_TEST

START_TEST(test_retire) {
        _cleanup_store_ Store *s = test_state_init_with_group("mail");
        _cleanup_store_group_ StoreGroup *g = NULL;
        _cleanup_free_ char *data = NULL, *after = NULL;
        uint8_t key2[CRYPT_KEY_BYTES], wrapped2[CRYPT_WRAPPED_KEY_BYTES], k[CRYPT_KEY_BYTES];
        char hex2[2 * CRYPT_WRAPPED_KEY_BYTES + 1];
        const char *stale = test_state_path("groups/.#mail.group.99999.tmp");
        size_t size;
        struct stat st;

        ck_assert_int_eq(store_rollover(s, "mail", NULL), 0);
        ck_assert_int_eq(store_rollover(s, "mail", NULL), 0);
        g = load(s, "mail");
        unwrap_bytes(s, g, 2, key2);
        memcpy(wrapped2, store_group_find_generation(g, 2)->wrapped_key, sizeof(wrapped2));
        to_hex(wrapped2, sizeof(wrapped2), hex2);
        ck_assert(test_state_contains(hex2, strlen(hex2))); /* the probe finds what is there */

        /* a temp file a killed writer left behind, holding the same wrapped key */
        data = test_read_all(gpath("mail"), &size);
        test_write_all(stale, data, size);

        ck_assert_int_eq(store_generation_retire(s, "mail", 3), -EBUSY);
        ck_assert_int_eq(store_generation_retire(s, "mail", 2), 0);
        ck_assert_int_eq(store_generation_retire(s, "mail", 2), -EALREADY);
        ck_assert_int_eq(store_generation_archive(s, "mail", 2), -EKEYREVOKED);
        ck_assert_int_eq(store_generation_retire(s, "mail", 42), -ENOENT);

        g = store_group_free(g);
        g = load(s, "mail");
        ck_assert_int_eq(store_group_find_generation(g, 2)->state, GENERATION_RETIRED);
        ck_assert(!store_group_find_generation(g, 2)->has_key);
        ck_assert_uint_gt(store_group_find_generation(g, 2)->retired_usec, 0);
        {
                _cleanup_secret_ Secret *x = NULL;
                ck_assert_int_eq(store_generation_unwrap(s, g, 2, &x), -EKEYREVOKED);
                ck_assert_ptr_null(x);
        }
        unwrap_bytes(s, g, 1, k);
        unwrap_bytes(s, g, 3, k);

        ck_assert_int_ne(stat(stale, &st), 0);
        ck_assert(!test_state_contains(hex2, strlen(hex2)));
        ck_assert(!test_state_contains(wrapped2, sizeof(wrapped2)));
        ck_assert(!test_state_contains(key2, sizeof(key2)));
        after = test_read_all(gpath("mail"), NULL);
        ck_assert_ptr_nonnull(strstr(after, "generation=2 state=retired"));
        ck_assert_ptr_nonnull(strstr(after, " key=-\n"));
}
END_TEST

static int bad_modes;
static int check_mode(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        mode_t want = S_ISDIR(st->st_mode) ? 0700 : 0600;

        if ((st->st_mode & 07777) != want || st->st_uid != geteuid() || !(S_ISDIR(st->st_mode) || S_ISREG(st->st_mode))) {
                fprintf(stderr, "%s: mode %o\n", path, (unsigned) st->st_mode);
                bad_modes++;
        }
        return 0;
}

START_TEST(test_modes) {
        _cleanup_secret_ Secret *pw = test_secret("modes");
        _cleanup_store_ Store *s = NULL;

        umask(0); /* the store must not rely on the caller's umask */
        s = test_state_init_with_group("mail");
        ck_assert_int_eq(store_protector_add_passphrase(s, "pw", pw), 0);
        ck_assert_int_eq(store_protector_add_file(s, "spare"), 0);
        ck_assert_int_eq(store_rollover(s, "mail", NULL), 0);
        bad_modes = 0;
        ck_assert_int_eq(nftw(TS.sdir, check_mode, 16, FTW_PHYS), 0);
        ck_assert_int_eq(bad_modes, 0);
}
END_TEST

START_TEST(test_symlinks_and_permissions) {
        _cleanup_store_ Store *s = test_state_init_with_group("mail");
        _cleanup_store_group_ StoreGroup *g = NULL;
        _cleanup_strv_free_ char **names = NULL;
        char link[160], real[160];

        ck_assert_int_eq(store_group_create(s, "other", 1000, CRYPT_ALG_XCHACHA20_POLY1305, NULL, NULL), 0);
        s = store_free(s);

        snprintf(link, sizeof(link), "%s/link", TS.base);
        ck_assert_int_eq(symlink(TS.sdir, link), 0);
        ck_assert_int_eq(store_open(link, &s), -ELOOP);
        ck_assert_ptr_nonnull(strstr(store_last_error(NULL), "symlink"));
        strcat(link, "/");
        ck_assert_int_eq(store_open(link, &s), -ELOOP);
        ck_assert_int_eq(store_init(link, NULL, &s), -ELOOP);

        /* a group file replaced by a symlink is refused; the others are unaffected */
        snprintf(real, sizeof(real), "%s/other.group", TS.base);
        ck_assert_int_eq(rename(gpath("other"), real), 0);
        ck_assert_int_eq(symlink(real, gpath("other")), 0);
        s = open_unlocked();
        ck_assert_int_eq(store_group_load(s, "other", &g), -ELOOP);
        ck_assert_ptr_nonnull(strstr(store_last_error(s), gpath("other")));
        ck_assert_int_eq(store_rollover(s, "other", NULL), -ELOOP);
        g = load(s, "mail");
        ck_assert_int_eq(store_group_list(s, &names), 0);
        ck_assert_str_eq(names[0], "mail");
        ck_assert_str_eq(names[1], "other");
        s = store_free(s);

        ck_assert_int_eq(chmod(TS.sdir, 0755), 0);
        ck_assert_int_eq(store_open(TS.sdir, &s), -EPERM);
        ck_assert_ptr_nonnull(strstr(store_last_error(NULL), "0755"));
        ck_assert_int_eq(chmod(TS.sdir, 0700), 0);
        ck_assert_int_eq(chmod(test_state_path("groups"), 0750), 0);
        ck_assert_int_eq(store_open(TS.sdir, &s), -EPERM);
        ck_assert_ptr_nonnull(strstr(store_last_error(NULL), "groups"));
        ck_assert_int_eq(chmod(test_state_path("groups"), 0700), 0);
        if (geteuid() == 0) {
                ck_assert_int_eq(chown(TS.sdir, 65534, (gid_t) -1), 0);
                ck_assert_int_eq(store_open(TS.sdir, &s), -EPERM);
                ck_assert_ptr_nonnull(strstr(store_last_error(NULL), "owned by uid 65534"));
                ck_assert_int_eq(chown(TS.sdir, 0, (gid_t) -1), 0);
        }
        s = open_unlocked();
}
END_TEST

START_TEST(test_format_version) {
        _cleanup_store_ Store *s = test_state_init_with_group("mail");
        _cleanup_store_group_ StoreGroup *g = NULL;
        _cleanup_free_ char *orig = NULL, *newer = NULL, *gbody = NULL, *gnewer = NULL;
        size_t size;

        s = store_free(s);
        orig = test_read_all(test_state_path("format"), &size);
        ck_assert_int_eq(strncmp(orig, "dkm-store 1\n", 12), 0);

        newer = replace_once(orig, "dkm-store 1\n", "dkm-store 2\n");
        test_write_all(test_state_path("format"), newer, strlen(newer));
        ck_assert_int_eq(store_open(TS.sdir, &s), -EPROTONOSUPPORT);
        ck_assert_ptr_nonnull(strstr(store_last_error(NULL), "newer dkm"));
        test_write_all(test_state_path("format"), "dkm-store 7\nwhatever a future version writes\n", 45);
        ck_assert_int_eq(store_open(TS.sdir, &s), -EPROTONOSUPPORT);
        test_write_all(test_state_path("format"), "dkm-store one\n", 14);
        ck_assert_int_eq(store_open(TS.sdir, &s), -EBADMSG);
        test_write_all(test_state_path("format"), "garbage", 7);
        ck_assert_int_eq(store_open(TS.sdir, &s), -EBADMSG);
        test_write_all(test_state_path("format"), orig, size - 2); /* checksum cut */
        ck_assert_int_eq(store_open(TS.sdir, &s), -EBADMSG);
        test_write_all(test_state_path("format"), orig, size);
        s = open_unlocked();

        /* a group file from a newer dkm, well-formed for its version */
        gbody = read_body(gpath("mail"));
        gnewer = replace_once(gbody, "format=1\n", "format=2\n");
        test_write_with_checksum(gpath("mail"), gnewer);
        ck_assert_int_eq(store_group_load(s, "mail", &g), -EPROTONOSUPPORT);
        ck_assert_ptr_nonnull(strstr(store_last_error(s), "newer dkm"));
        ck_assert_int_eq(store_rollover(s, "mail", NULL), -EPROTONOSUPPORT);

        ck_assert_int_eq(unlink(test_state_path("format")), 0);
        s = store_free(s);
        ck_assert_int_eq(store_open(TS.sdir, &s), -ENOENT);
}
END_TEST

static void expect_bad(Store *s, const char *name, const char *what) {
        StoreGroup *g = NULL;
        int r = store_group_load(s, name, &g);

        ck_assert_msg(r == -EBADMSG, "%s: got %d", what ?: "(corruption)", r);
        ck_assert_ptr_null(g);
        ck_assert_ptr_nonnull(store_last_error(s));
        ck_assert_msg(strstr(store_last_error(s), gpath(name)), "%s", store_last_error(s));
        if (what)
                ck_assert_msg(strstr(store_last_error(s), what), "want '%s' in '%s'", what, store_last_error(s));
}

START_TEST(test_corruption) {
        _cleanup_store_ Store *s = test_state_init_with_group("a");
        _cleanup_free_ char *orig = NULL, *body = NULL;
        _cleanup_strv_free_ char **names = NULL;
        const char *ga = gpath("a");
        size_t size;

        ck_assert_int_eq(store_group_create(s, "b", 1000, CRYPT_ALG_XCHACHA20_POLY1305, NULL, NULL), 0);
        for (int i = 0; i < 4; i++)
                ck_assert_int_eq(store_rollover(s, "a", NULL), 0);
        ck_assert_int_eq(store_generation_retire(s, "a", 2), 0);
        {
                StoreGroupPolicy p = STORE_GROUP_POLICY_DEFAULT;
                p.approval_levels[0] = 2001;
                p.approval_levels[1] = 2002;
                p.n_approval_levels = 2;
                ck_assert_int_eq(store_group_set_policy(s, "a", &p), 0);
        }
        orig = test_read_all(ga, &size);
        body = body_of(orig);

        /* The loops patch the file in place (1-byte writes, shrinking truncates): rewriting it
         * thousands of times would spend seconds in the filesystem, not in the parser. */
        {
                int fd = open(ga, O_WRONLY | O_CLOEXEC);
                ck_assert_int_ge(fd, 0);
                for (size_t bit = 0; bit < size * 8; bit++) {
                        char c = (char) (orig[bit / 8] ^ (1 << (bit % 8)));
                        ck_assert_int_eq(pwrite(fd, &c, 1, (off_t) (bit / 8)), 1);
                        expect_bad(s, "a", NULL);
                        ck_assert_int_eq(pwrite(fd, &orig[bit / 8], 1, (off_t) (bit / 8)), 1);
                }
                for (size_t len = size; len-- > 0;) {
                        ck_assert_int_eq(ftruncate(fd, (off_t) len), 0);
                        expect_bad(s, "a", NULL);
                        if (len % 97 == 0)
                                store_group_free(load(s, "b"));
                }
                close(fd);
        }
        store_group_free(load(s, "b"));
        ck_assert_int_eq(store_group_list(s, &names), 0);
        ck_assert_str_eq(names[0], "a");
        ck_assert_str_eq(names[1], "b");

        /* a mutation of a corrupted group refuses and leaves the file as it found it */
        test_write_all(ga, orig, size / 2);
        ck_assert_int_eq(store_rollover(s, "a", NULL), -EBADMSG);
        ck_assert_int_eq(store_generation_retire(s, "a", 1), -EBADMSG);
        {
                size_t n;
                _cleanup_free_ char *now = test_read_all(ga, &n);
                ck_assert_uint_eq(n, size / 2);
                ck_assert_mem_eq(now, orig, n);
        }

        /* semantic errors behind a valid checksum */
        test_write_all(ga, orig, size - 1);
        expect_bad(s, "a", "truncated");
        orig[10] ^= 1;
        test_write_all(ga, orig, size);
        orig[10] ^= 1;
        expect_bad(s, "a", "checksum mismatch");
#define BAD(from, to, what)                                              \
        do {                                                             \
                _cleanup_free_ char *t = replace_once(body, from, to);   \
                test_write_with_checksum(ga, t);                              \
                expect_bad(s, "a", what);                                \
        } while (0)
        BAD("gid=1000\n", "gid=1000\ngid=1000\n", "line 5: duplicate key 'gid'");
        BAD("gid=1000\n", "gid=1000\ncolor=blue\n", "line 5: unknown key 'color'");
        BAD("gid=1000\n", "", "line 4: key 'algorithm' out of order (expected 'gid')");
        BAD("gid=1000\n", "gid=01000\n", "line 4: malformed gid");
        BAD("name=a\n", "name=b\n", "does not match the file name");
        BAD("kek=", "kek=g", "kek is not");
        BAD("kek=", "kek=A", "kek is not");
        BAD("generation=3 state=archived", "generation=3 state=active", "second active generation");
        BAD("generation=3 ", "generation=2 ", "generation 2 appears twice");
        BAD("generation=4 ", "generation=1 ", "out of order");
        BAD("generation=3 state=archived", "generation=3 state=bogus", "unknown generation state");
        BAD("generation=3 state=archived", "generation=3  state=archived", "needs a number");
        BAD("generation=2 state=retired", "generation=2 state=archived", "no key but is not retired");
        BAD("approval-levels=2001 2002\n", "approval-levels=2001  2002\n", "line 10: malformed approval levels");
        BAD("approval-levels=2001 2002\n", "approval-levels= 2001\n", "line 10: malformed approval levels");
        BAD("approval-levels=2001 2002\n", "approval-levels=1 2 3 4 5 6 7 8 9\n", "malformed approval levels");
        BAD("approval-levels=2001 2002\n", "approval-levels=2001 x\n", "line 10: malformed approval level gid");
        BAD("approval-levels=2001 2002\n", "approval-levels=02001\n", "malformed approval level gid");
        BAD("approval-levels=2001 2002\n", "approval-levels=4294967295\n", "malformed approval level gid");
        BAD("approval-levels=2001 2002\n", "approval-levels=2001 2002 2001\n", "gid 2001 appears at two approval levels");
        BAD("retire-needs-approval=1\n", "retire-needs-approval=2\n", "line 13: retire-needs-approval must be 0 or 1");
        BAD("max-grant-usec=3600000000\n", "max-grant-usec=0\n", "line 11: malformed max grant");
        BAD("request-timeout-usec=86400000000\n", "request-timeout-usec=0\n", "line 12: malformed request timeout");
        BAD("max-grant-usec=3600000000\n", "", "key 'request-timeout-usec' out of order (expected 'max-grant-usec')");
        BAD("approval-levels=", "algorithm=xchacha20-poly1305\napproval-levels=", "duplicate key 'algorithm'");
        {
                /* every generation line removed */
                char *gen = strstr(body, "generation=");
                _cleanup_free_ char *t = strndup(body, (size_t) (gen - body));
                test_write_with_checksum(ga, t);
                expect_bad(s, "a", "no generations");
        }
        {
                /* bounded: an over-long line, an over-large file */
                _cleanup_free_ char *longp = malloc(70000), *t = NULL;
                memset(longp, 'x', 69999);
                longp[69999] = 0;
                t = replace_once(body, "approval-levels=", longp);
                test_write_with_checksum(ga, t);
                expect_bad(s, "a", "longer than");
                ck_assert_int_eq(truncate(ga, (off_t) 17 << 20), 0);
                expect_bad(s, "a", "larger than 16 MiB");
        }
        test_write_all(ga, orig, size);
        store_group_free(load(s, "a"));
}
END_TEST

/* The parser accepts exactly what the formatter writes and gives it back byte for byte. */
START_TEST(test_group_file_roundtrip) {
        _cleanup_store_ Store *s = test_state_init_with_group("mail");
        _cleanup_store_group_ StoreGroup *g = NULL, *g2 = NULL;
        _cleanup_free_ char *orig = NULL, *out = NULL;
        size_t size, out_size;
        KvError e = {};

        ck_assert_int_eq(store_rollover(s, "mail", NULL), 0);
        ck_assert_int_eq(store_generation_add(s, "mail", NULL), 0);
        ck_assert_int_eq(store_generation_retire(s, "mail", 1), 0);
        {
                StoreGroupPolicy p = STORE_GROUP_POLICY_DEFAULT;
                p.approval_levels[0] = 7;
                p.approval_levels[1] = 0;
                p.n_approval_levels = 2;
                p.max_grant_usec = 1;
                p.request_timeout_usec = UINT64_MAX;
                p.retire_needs_approval = false;
                ck_assert_int_eq(store_group_set_policy(s, "mail", &p), 0);
        }
        orig = test_read_all(gpath("mail"), &size);
        ck_assert_int_eq(group_file_parse(orig, size, "mail", &g, &e), 0);
        ck_assert_int_eq(group_file_format(g, &out, &out_size), 0);
        ck_assert_uint_eq(out_size, size);
        ck_assert_mem_eq(out, orig, size);
        ck_assert_int_eq(group_file_parse(out, out_size, NULL, &g2, &e), 0);
        ck_assert_uint_eq(g2->n_generations, 3);
        ck_assert_uint_eq(g2->policy.n_approval_levels, 2);
        ck_assert_uint_eq(g2->policy.approval_levels[0], 7);
        ck_assert_uint_eq(g2->policy.request_timeout_usec, UINT64_MAX);
        ck_assert_int_eq(group_file_parse(orig, size, "other", &g2, &e), -EBADMSG);
        ck_assert_uint_eq(e.line, 2);
}
END_TEST

/* Wrapped keys are bound to their place: a blob moved elsewhere loads (checksum fixed up) but
 * fails to unwrap. */
START_TEST(test_binding) {
        _cleanup_store_ Store *s = test_state_init_with_group("a");
        _cleanup_store_group_ StoreGroup *g = NULL;
        _cleanup_free_ char *body = NULL, *t1 = NULL, *t2 = NULL, *t3 = NULL, *bbody = NULL;
        char h1[2 * CRYPT_WRAPPED_KEY_BYTES + 1], h2[2 * CRYPT_WRAPPED_KEY_BYTES + 1], hb[2 * CRYPT_WRAPPED_KEY_BYTES + 1];
        Secret *k = NULL;

        ck_assert_int_eq(store_rollover(s, "a", NULL), 0);
        ck_assert_int_eq(store_group_create(s, "b", 1000, CRYPT_ALG_XCHACHA20_POLY1305, NULL, NULL), 0);
        g = load(s, "a");
        to_hex(g->generations[0].wrapped_key, CRYPT_WRAPPED_KEY_BYTES, h1);
        to_hex(g->generations[1].wrapped_key, CRYPT_WRAPPED_KEY_BYTES, h2);
        g = store_group_free(g);
        g = load(s, "b");
        to_hex(g->wrapped_kek, CRYPT_WRAPPED_KEY_BYTES, hb);
        g = store_group_free(g);

        body = read_body(gpath("a"));
        t1 = replace_once(body, h2, h1); /* generation 1's key placed as generation 2's */
        test_write_with_checksum(gpath("a"), t1);
        g = load(s, "a");
        ck_assert_int_eq(store_generation_unwrap(s, g, 2, &k), -EBADMSG);
        ck_assert_ptr_nonnull(strstr(store_last_error(s), "fails to authenticate"));
        g = store_group_free(g);

        bbody = read_body(gpath("b"));
        t2 = replace_once(bbody, "name=b\n", "name=a\n"); /* all of b, under a's name: b's id */
        test_write_with_checksum(gpath("a"), t2);
        g = load(s, "a");
        ck_assert_int_eq(store_generation_unwrap(s, g, 1, &k), 0); /* consistent copy: fine */
        k = secret_free(k);
        g = store_group_free(g);
        {
                char ha[2 * CRYPT_WRAPPED_KEY_BYTES + 1];
                StoreGroup *ga = NULL;
                test_write_with_checksum(gpath("a"), body);
                ga = load(s, "a");
                to_hex(ga->wrapped_kek, CRYPT_WRAPPED_KEY_BYTES, ha);
                store_group_free(ga);
                t3 = replace_once(body, ha, hb); /* b's KEK in a */
        }
        test_write_with_checksum(gpath("a"), t3);
        g = load(s, "a");
        ck_assert_int_eq(store_generation_unwrap(s, g, 1, &k), -EBADMSG);
        ck_assert_ptr_nonnull(strstr(store_last_error(s), "key-encryption key"));
}
END_TEST

#define N_WRITERS 3
#define ROLLOVERS_PER_WRITER 30

static void writer_child(int fd, const char *group, int rollovers) {
        Store *s = NULL;

        if (store_open(TS.sdir, &s) < 0 || store_unlock(s, NULL) < 0)
                _exit(2);
        for (int i = 0; i < rollovers; i++) {
                uint32_t n;
                if (store_rollover(s, group, &n) < 0) {
                        fprintf(stderr, "child: %s\n", store_last_error(s));
                        _exit(3);
                }
                if (write(fd, &n, sizeof(n)) != sizeof(n))
                        _exit(4);
        }
        store_free(s);
        _exit(0);
}

static int cmp_u32(const void *a, const void *b) {
        uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;
        return x < y ? -1 : x > y;
}

START_TEST(test_concurrent_writers) {
        _cleanup_store_ Store *s = test_state_init_with_group("g");
        _cleanup_store_group_ StoreGroup *g = NULL;
        uint32_t got[N_WRITERS * ROLLOVERS_PER_WRITER];
        size_t n_got = 0, reads = 0;
        pid_t pids[N_WRITERS];
        int p[2];

        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        for (int i = 0; i < N_WRITERS; i++) {
                pids[i] = fork();
                ck_assert_int_ge(pids[i], 0);
                if (pids[i] == 0) {
                        close(p[0]);
                        writer_child(p[1], "g", ROLLOVERS_PER_WRITER);
                }
        }
        close(p[1]);
        ck_assert_int_eq(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);

        /* Read while they write: lock-free readers always see a whole file with one active. */
        for (;;) {
                ssize_t k = read(p[0], (uint8_t *) got + n_got * sizeof(uint32_t), sizeof(got) - n_got * sizeof(uint32_t));
                StoreGroup *r = load(s, "g");

                ck_assert_ptr_nonnull(store_group_active_generation(r));
                store_group_free(r);
                reads++;
                if (k == 0)
                        break;
                if (k > 0) {
                        ck_assert_int_eq(k % (ssize_t) sizeof(uint32_t), 0);
                        n_got += (size_t) k / sizeof(uint32_t);
                } else
                        ck_assert_int_eq(errno, EAGAIN);
        }
        close(p[0]);
        for (int i = 0; i < N_WRITERS; i++) {
                int status;
                ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
                ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writer %d: status %d", i, status);
        }
        ck_assert_uint_eq(n_got, N_WRITERS * ROLLOVERS_PER_WRITER);
        qsort(got, n_got, sizeof(got[0]), cmp_u32);
        for (size_t i = 0; i < n_got; i++)
                ck_assert_uint_eq(got[i], i + 2);

        g = load(s, "g");
        ck_assert_uint_eq(g->n_generations, n_got + 1);
        for (size_t i = 0; i < g->n_generations; i++)
                ck_assert_int_eq(g->generations[i].state, i + 1 < g->n_generations ? GENERATION_ARCHIVED : GENERATION_ACTIVE);
        fprintf(stderr, "concurrent: %zu rollovers by %d writers, %zu concurrent reads\n", n_got, N_WRITERS, reads);
}
END_TEST

/* ---- crash consistency: SIGKILL a writer at random moments ---- */

#define CRASH_ROLLOVERS 200
#define CRASH_MAX_GEN 1024
#define CRASH_MAX_KILLS 150
/* Fewer than the 5 rollovers that take a generation to retirement (4 archived are kept): each
 * generation is verified at least once before it is retired, however late a kill lands. */
#define CRASH_RUN_ROLLOVERS 4
/* The window a kill lands in: a few rollovers; under valgrind they are some 20 times slower. */
#define CRASH_KILL_WINDOW_USEC (RUNNING_ON_VALGRIND ? 240000 : 12000)

typedef struct Seen {
        bool known, retired;
        uint8_t key[CRYPT_KEY_BYTES];
        char wrapped_hex[2 * CRYPT_WRAPPED_KEY_BYTES + 1];
} Seen;

static void crash_child(int fd, int rollovers) {
        Store *s = NULL;

        if (store_open(TS.sdir, &s) < 0 || store_unlock(s, NULL) < 0)
                _exit(2);
        for (int i = 0; i < rollovers; i++) {
                if (store_rollover(s, "g", NULL) < 0)
                        _exit(3);
                if (write(fd, "r", 1) != 1)
                        _exit(4);
                {
                        /* keep at most 4 archived generations: shred the oldest beyond that */
                        StoreGroup *g = NULL;
                        size_t archived = 0;

                        if (store_group_load(s, "g", &g) < 0)
                                _exit(5);
                        for (size_t j = 0; j < g->n_generations; j++)
                                archived += g->generations[j].state == GENERATION_ARCHIVED;
                        for (size_t j = 0; j < g->n_generations && archived > 4; j++)
                                if (g->generations[j].state == GENERATION_ARCHIVED) {
                                        if (store_generation_retire(s, "g", g->generations[j].number) < 0)
                                                _exit(6);
                                        break;
                                }
                        store_group_free(g);
                }
        }
        store_free(s);
        _exit(0);
}

/* After every kill: the store opens and unlocks, the group loads with exactly one active
 * generation, and every key ever seen still unwraps to the same bytes unless it was retired. */
static void crash_verify(Seen *seen, uint32_t *max_active) {
        _cleanup_store_ Store *s = open_unlocked();
        _cleanup_store_group_ StoreGroup *g = load(s, "g");
        const StoreGeneration *a = store_group_active_generation(g);
        size_t actives = 0;

        ck_assert_ptr_nonnull(a);
        ck_assert_uint_ge(a->number, *max_active); /* the active generation never goes back */
        *max_active = a->number;
        for (size_t i = 0; i < g->n_generations; i++) {
                const StoreGeneration *gen = &g->generations[i];
                ck_assert_uint_eq(gen->number, i + 1);
                ck_assert_uint_lt(gen->number, CRASH_MAX_GEN);
                actives += gen->state == GENERATION_ACTIVE;
        }
        ck_assert_uint_eq(actives, 1);
        for (uint32_t n = 1; n < CRASH_MAX_GEN; n++) {
                const StoreGeneration *gen = store_group_find_generation(g, n);
                uint8_t k[CRYPT_KEY_BYTES];

                if (seen[n].known || seen[n].retired)
                        ck_assert_msg(gen, "generation %u vanished", n);
                if (!gen)
                        continue;
                if (gen->state == GENERATION_RETIRED) {
                        seen[n].retired = true; /* only the test's own child retires */
                        seen[n].known = false;
                        continue;
                }
                ck_assert_msg(!seen[n].retired, "generation %u came back from retirement", n);
                unwrap_bytes(s, g, n, k);
                if (seen[n].known)
                        ck_assert_msg(memcmp(k, seen[n].key, sizeof(k)) == 0, "generation %u changed its key", n);
                memcpy(seen[n].key, k, sizeof(k));
                to_hex(gen->wrapped_key, sizeof(gen->wrapped_key), seen[n].wrapped_hex);
                seen[n].known = true;
        }
}

START_TEST(test_crash_consistency) {
        _cleanup_free_ Seen *seen = calloc(CRASH_MAX_GEN, sizeof(Seen));
        _cleanup_store_ Store *s = test_state_init_with_group("g");
        unsigned done = 0, kills = 0, runs = 0, retired = 0;
        uint32_t max_active = 1;
        struct timespec t0, t1;

        s = store_free(s);
        srand((unsigned) getpid());
        clock_gettime(CLOCK_MONOTONIC, &t0);
        crash_verify(seen, &max_active);
        while (done < CRASH_ROLLOVERS) {
                int p[2], status;
                char buf[256];
                ssize_t k;
                pid_t pid;

                ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
                pid = fork();
                ck_assert_int_ge(pid, 0);
                if (pid == 0) {
                        close(p[0]);
                        crash_child(p[1], (int) MIN(CRASH_ROLLOVERS - done, CRASH_RUN_ROLLOVERS));
                }
                close(p[1]);
                runs++;
                if (kills < CRASH_MAX_KILLS) {
                        usleep((useconds_t) (rand() % CRASH_KILL_WINDOW_USEC));
                        (void) kill(pid, SIGKILL);
                }
                ck_assert_int_eq(waitpid(pid, &status, 0), pid);
                /* Counted here: kill() also succeeds on a child that already exited. */
                if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
                        kills++;
                ck_assert_msg(WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) == 0),
                              "child failed: status %d", status);
                while ((k = read(p[0], buf, sizeof(buf))) > 0)
                        done += (unsigned) k;
                close(p[0]);
                crash_verify(seen, &max_active);
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        fprintf(stderr, "crash: %u rollovers in %u runs, %u SIGKILLs, active generation %u, %.1f s", done, runs,
                kills, max_active, (double) (t1.tv_sec - t0.tv_sec) + (double) (t1.tv_nsec - t0.tv_nsec) / 1e9);
        ck_assert_uint_ge(max_active, CRASH_ROLLOVERS + 1);
        ck_assert_uint_ge(kills, 10);

        /* Retired between kills, with temp files of killed writers about: no copy of a retired
         * wrapped key, nor the key itself, is left anywhere in the state directory. */
        for (uint32_t n = 1; n < CRASH_MAX_GEN; n++) {
                if (!seen[n].retired || !seen[n].wrapped_hex[0])
                        continue;
                retired++;
                ck_assert_msg(!test_state_contains(seen[n].wrapped_hex, strlen(seen[n].wrapped_hex)),
                              "generation %u: wrapped key left behind", n);
                ck_assert_msg(!test_state_contains(seen[n].key, sizeof(seen[n].key)), "generation %u: key on disk", n);
        }
        fprintf(stderr, ", %u generations retired and checked gone\n", retired);
        ck_assert_uint_gt(retired, 100);
}
END_TEST

static Suite *store_suite(void) {
        Suite *s = suite_create("store");
        TCase *tc = tcase_create("basics"), *tf = tcase_create("files"), *tx = tcase_create("concurrency");

        /* explicit, so a run outside meson (CK_DEFAULT_TIMEOUT unset: 4 s) behaves the same */
        tcase_set_timeout(tc, 120);
        tcase_set_timeout(tf, 120);
        tcase_add_checked_fixture(tc, test_state_setup, test_state_teardown);
        tcase_add_test(tc, test_init_open_file);
        tcase_add_test(tc, test_passphrase);
        tcase_add_test(tc, test_protectors);
        tcase_add_test(tc, test_groups);
        tcase_add_test(tc, test_rollover);
        tcase_add_test(tc, test_retire);
        suite_add_tcase(s, tc);

        tcase_add_checked_fixture(tf, test_state_setup, test_state_teardown);
        tcase_add_test(tf, test_modes);
        tcase_add_test(tf, test_symlinks_and_permissions);
        tcase_add_test(tf, test_format_version);
        tcase_add_test(tf, test_corruption);
        tcase_add_test(tf, test_binding);
        tcase_add_test(tf, test_group_file_roundtrip);
        suite_add_tcase(s, tf);

        tcase_add_checked_fixture(tx, test_state_setup, test_state_teardown);
        tcase_set_timeout(tx, 300);
        tcase_add_test(tx, test_concurrent_writers);
        tcase_add_test(tx, test_crash_consistency);
        suite_add_tcase(s, tx);
        return s;
}

int main(void) {
        /* Argon2id at its cheapest: the protectors' logic is under test here, not their cost. */
        setenv("DKM_TEST_PWHASH_FAST", "1", 1);
        if (crypt_init() < 0)
                return EXIT_FAILURE;
        return test_state_run("store", store_suite());
}
