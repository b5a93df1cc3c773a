/* SPDX-License-Identifier: MIT */
/* Key groups and their generations: load, list, and every mutation as lock, re-read, change, commit. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "group-file.h"
#include "store-internal.h"

#define GROUP_FN_MAX (STORE_GROUP_NAME_MAX + sizeof(STORE_GROUP_SUFFIX))
#define GROUP_REL_MAX (GROUP_FN_MAX + sizeof(STORE_GROUPS_DIR))

static void group_paths(const char *name, char fn[static GROUP_FN_MAX], char rel[static GROUP_REL_MAX]) {
        snprintf(fn, GROUP_FN_MAX, "%s" STORE_GROUP_SUFFIX, name);
        snprintf(rel, GROUP_REL_MAX, STORE_GROUPS_DIR "/%s", fn);
}

static int check_name(Store *s, const char *name) {
        if (!store_group_name_is_valid(name))
                return store_error(s, -EINVAL, NULL, "'%s' is not a valid group name", name ?: "(null)");
        return 0;
}

static int check_unlocked(Store *s) {
        if (!s->root_key)
                return store_error(s, -ENOKEY, NULL, "the store is locked; unlock it first");
        return 0;
}

/* No lock needed: a group file is only ever replaced by rename, so readers see old or new, whole. */
static int group_read(Store *s, const char *name, StoreGroup **ret) {
        _cleanup_free_ char *data = NULL;
        char fn[GROUP_FN_MAX], rel[GROUP_REL_MAX];
        KvError e = {};
        size_t size;
        int r;

        group_paths(name, fn, rel);
        r = read_file_full(s->groups_fd, fn, KVFILE_SIZE_MAX, &data, &size);
        if (r == -ENOENT)
                return store_error(s, r, rel, "no such group");
        if (r == -ELOOP)
                return store_error(s, r, rel, "is a symlink; refusing to follow it");
        if (r == -EBADFD)
                return store_error(s, -EBADMSG, rel, "not a regular file");
        if (r == -EFBIG)
                return store_error(s, -EBADMSG, rel, "larger than %u MiB", KVFILE_SIZE_MAX >> 20);
        if (r < 0)
                return store_error(s, r, rel, "cannot read: %s", strerror(-r));
        r = group_file_parse(data, size, name, ret, &e);
        if (r == -EBADMSG || r == -EPROTONOSUPPORT)
                return store_error_parse(s, r, rel, &e);
        return r;
}

static int group_commit(Store *s, const StoreGroup *g) {
        _cleanup_free_ char *data = NULL;
        char fn[GROUP_FN_MAX], rel[GROUP_REL_MAX];
        size_t size;
        int r;

        group_paths(g->name, fn, rel);
        r = group_file_format(g, &data, &size);
        if (r < 0)
                return store_error(s, r, rel, "cannot format: %s", strerror(-r));
        r = write_file_atomic(s->groups_fd, fn, data, size, 0600);
        if (r < 0)
                return store_error(s, r, rel, "cannot write: %s", strerror(-r));
        return 0;
}

/* Take the write lock, then read: whatever another writer committed before is what we change. */
static int group_begin(Store *s, const char *name, int *ret_lock_fd, StoreGroup **ret) {
        _cleanup_close_ int lock_fd = -EBADF;
        int r;

        r = check_name(s, name);
        if (r < 0)
                return r;
        r = store_lock(s, &lock_fd);
        if (r < 0)
                return r;
        r = group_read(s, name, ret);
        if (r < 0)
                return r;
        *ret_lock_fd = TAKE_FD(lock_fd);
        return 0;
}

static int group_unwrap_kek(Store *s, const StoreGroup *g, Secret **ret) {
        char fn[GROUP_FN_MAX], rel[GROUP_REL_MAX];
        int r;

        r = check_unlocked(s);
        if (r < 0)
                return r;
        if (group_kek_destroyed(g))
                return store_error(s, -EKEYREVOKED, NULL, "group '%s' was purged; its keys are destroyed", g->name);
        r = store_keys_unwrap_kek(s->root_key, g, ret);
        if (r == -EBADMSG) {
                group_paths(g->name, fn, rel);
                return store_error(s, r, rel, "the group's key-encryption key fails to authenticate "
                                   "(damaged, or copied from another store or group)");
        }
        return r;
}

static StoreGeneration *find_generation(Store *s, StoreGroup *g, uint32_t number) {
        StoreGeneration *gen = (StoreGeneration *) store_group_find_generation(g, number);

        if (!gen)
                (void) store_error(s, -ENOENT, NULL, "group '%s' has no generation %u", g->name, number);
        return gen;
}

/* A new pending generation, its key wrapped under the KEK and bound to (group id, number). */
static int group_add_generation(Store *s, StoreGroup *g, const Secret *kek, uint32_t *ret_number) {
        _cleanup_secret_ Secret *key = NULL;
        uint8_t wrapped[CRYPT_WRAPPED_KEY_BYTES];
        StoreGeneration *gen;
        uint32_t number = 1;
        int r;

        if (g->n_generations > 0) {
                number = g->generations[g->n_generations - 1].number;
                if (number == UINT32_MAX)
                        return store_error(s, -EOVERFLOW, NULL, "group '%s' has used every generation number", g->name);
                number++;
        }
        r = crypt_keygen(&key);
        if (r < 0)
                return r;
        r = store_keys_wrap_generation(kek, g->id, number, key, wrapped);
        if (r < 0)
                return r;
        r = group_file_append_generation(g, &gen);
        if (r < 0)
                return r;
        gen->number = number;
        gen->state = GENERATION_PENDING;
        gen->created_usec = store_now_usec();
        gen->has_key = true;
        memcpy(gen->wrapped_key, wrapped, sizeof(wrapped));
        if (ret_number)
                *ret_number = number;
        return 0;
}

/* One in-memory change, so one commit: the old active is archived in the same rename that
 * activates the new one, and no crash can leave two active generations or none. */
static int group_activate(Store *s, StoreGroup *g, uint32_t number) {
        StoreGeneration *gen = find_generation(s, g, number), *prev;
        uint64_t now = store_now_usec();

        if (!gen)
                return -ENOENT;
        if (gen->state != GENERATION_PENDING)
                return store_error(s, -EINVAL, NULL, "generation %u of '%s' is %s, not pending", number, g->name,
                                   generation_state_to_string(gen->state));
        prev = (StoreGeneration *) store_group_active_generation(g);
        if (prev) {
                prev->state = GENERATION_ARCHIVED;
                prev->archived_usec = now;
        }
        gen->state = GENERATION_ACTIVE;
        gen->activated_usec = now;
        return 0;
}

int store_group_load(Store *s, const char *name, StoreGroup **ret) {
        int r;

        store_error_clear(s);
        r = check_name(s, name);
        if (r >= 0)
                r = group_read(s, name, ret);
        return store_finish(s, r);
}

int store_group_list(Store *s, char ***ret_names) {
        int r;

        store_error_clear(s);
        r = store_list_dir(s->groups_fd, STORE_GROUP_SUFFIX, ret_names);
        if (r < 0)
                (void) store_error(s, r, STORE_GROUPS_DIR, "cannot list: %s", strerror(-r));
        return store_finish(s, r);
}

static int group_create_locked(Store *s, const char *name, gid_t gid, CryptAlg alg, const StoreGroupPolicy *policy,
                               StoreGroup **ret) {
        _cleanup_store_group_ StoreGroup *g = NULL;
        _cleanup_secret_ Secret *kek = NULL;
        char fn[GROUP_FN_MAX], rel[GROUP_REL_MAX];
        struct stat st;
        int r;

        group_paths(name, fn, rel);
        if (fstatat(s->groups_fd, fn, &st, AT_SYMLINK_NOFOLLOW) == 0)
                return store_error(s, -EEXIST, rel, "group '%s' already exists", name);
        g = calloc(1, sizeof(*g));
        if (!g)
                return -ENOMEM;
        g->name = strdup(name);
        if (!g->name)
                return -ENOMEM;
        crypt_random(g->id, sizeof(g->id));
        g->gid = gid;
        g->alg = alg;
        g->policy = *policy;
        r = crypt_keygen(&kek);
        if (r < 0)
                return r;
        r = store_keys_wrap_kek(s->root_key, g->id, kek, g->wrapped_kek);
        if (r < 0)
                return r;
        r = group_add_generation(s, g, kek, NULL);
        if (r >= 0)
                r = group_activate(s, g, 1);
        if (r >= 0)
                r = group_commit(s, g);
        if (r < 0)
                return r;
        if (ret)
                *ret = TAKE_PTR(g);
        return 0;
}

int store_group_create(Store *s, const char *name, gid_t gid, CryptAlg alg, const StoreGroupPolicy *policy,
                       StoreGroup **ret) {
        _cleanup_close_ int lock_fd = -EBADF;
        int r;

        store_error_clear(s);
        r = check_name(s, name);
        if (r < 0)
                return r;
        if (gid == (gid_t) -1)
                return store_error(s, -EINVAL, NULL, "gid %u is not a group", (unsigned) gid);
        if (!crypt_alg_to_string(alg))
                return store_error(s, -EPROTONOSUPPORT, NULL, "unknown algorithm %d", (int) alg);
        if (policy && store_group_policy_check(policy) < 0)
                return store_error(s, -EINVAL, NULL, "policy out of range");
        r = check_unlocked(s);
        if (r >= 0)
                r = store_lock(s, &lock_fd);
        if (r >= 0)
                r = store_refuse_if_purged(s);
        if (r >= 0)
                r = group_create_locked(s, name, gid, alg, policy ?: &STORE_GROUP_POLICY_DEFAULT, ret);
        return store_finish(s, r);
}

int store_group_set_policy(Store *s, const char *name, const StoreGroupPolicy *policy) {
        _cleanup_store_group_ StoreGroup *g = NULL;
        _cleanup_close_ int lock_fd = -EBADF;
        int r;

        store_error_clear(s);
        if (store_group_policy_check(policy) < 0)
                return store_error(s, -EINVAL, NULL, "policy out of range");
        r = group_begin(s, name, &lock_fd, &g);
        if (r >= 0) {
                g->policy = *policy;
                r = group_commit(s, g);
        }
        return store_finish(s, r);
}

/* Adds the next generation as pending and commits it: durable before anyone may use it. */
static int group_add_pending(Store *s, StoreGroup *g, uint32_t *ret_number) {
        _cleanup_secret_ Secret *kek = NULL;
        int r;

        r = store_refuse_if_purged(s);
        if (r >= 0)
                r = group_unwrap_kek(s, g, &kek);
        if (r >= 0)
                r = group_add_generation(s, g, kek, ret_number);
        if (r >= 0)
                r = group_commit(s, g);
        return r;
}

int store_generation_add(Store *s, const char *group, uint32_t *ret_number) {
        _cleanup_store_group_ StoreGroup *g = NULL;
        _cleanup_close_ int lock_fd = -EBADF;
        uint32_t n;
        int r;

        store_error_clear(s);
        r = check_unlocked(s);
        if (r >= 0)
                r = group_begin(s, group, &lock_fd, &g);
        if (r >= 0)
                r = group_add_pending(s, g, &n);
        if (r >= 0 && ret_number)
                *ret_number = n;
        return store_finish(s, r);
}

int store_generation_activate(Store *s, const char *group, uint32_t number) {
        _cleanup_store_group_ StoreGroup *g = NULL;
        _cleanup_close_ int lock_fd = -EBADF;
        int r;

        store_error_clear(s);
        r = group_begin(s, group, &lock_fd, &g);
        if (r >= 0)
                r = group_activate(s, g, number);
        if (r >= 0)
                r = group_commit(s, g);
        return store_finish(s, r);
}

int store_rollover(Store *s, const char *group, uint32_t *ret_number) {
        _cleanup_store_group_ StoreGroup *g = NULL;
        _cleanup_close_ int lock_fd = -EBADF;
        uint32_t n;
        int r;

        store_error_clear(s);
        r = check_unlocked(s);
        if (r >= 0)
                r = group_begin(s, group, &lock_fd, &g);
        /* Two commits under one lock hold: the key is durable (pending) before anything encrypts with
         * it, and no other writer can activate something else in between. */
        if (r >= 0)
                r = group_add_pending(s, g, &n);
        if (r >= 0)
                r = group_activate(s, g, n);
        if (r >= 0)
                r = group_commit(s, g);
        if (r >= 0 && ret_number)
                *ret_number = n;
        return store_finish(s, r);
}

int store_generation_archive(Store *s, const char *group, uint32_t number) {
        _cleanup_store_group_ StoreGroup *g = NULL;
        _cleanup_close_ int lock_fd = -EBADF;
        StoreGeneration *gen;
        int r;

        store_error_clear(s);
        r = group_begin(s, group, &lock_fd, &g);
        if (r < 0)
                return store_finish(s, r);
        gen = find_generation(s, g, number);
        if (!gen)
                r = -ENOENT;
        else if (gen->state == GENERATION_ACTIVE)
                r = store_error(s, -EBUSY, NULL, "generation %u of '%s' is active; roll over instead", number, group);
        else if (gen->state == GENERATION_ARCHIVED)
                r = store_error(s, -EALREADY, NULL, "generation %u of '%s' is already archived", number, group);
        else if (gen->state == GENERATION_RETIRED)
                r = store_error(s, -EKEYREVOKED, NULL, "generation %u of '%s' is retired", number, group);
        else {
                gen->state = GENERATION_ARCHIVED;
                gen->archived_usec = store_now_usec();
                r = group_commit(s, g);
        }
        return store_finish(s, r);
}

/* Crypto-shredding of one generation: the wrapped key leaves the group; the commit that follows
 * replaces the file that held it. */
static void generation_destroy_key(StoreGeneration *gen, uint64_t now) {
        gen->state = GENERATION_RETIRED;
        if (gen->retired_usec == 0)
                gen->retired_usec = now;
        gen->has_key = false;
        memset(gen->wrapped_key, 0, sizeof(gen->wrapped_key));
}

int store_generation_retire(Store *s, const char *group, uint32_t number) {
        _cleanup_store_group_ StoreGroup *g = NULL;
        _cleanup_close_ int lock_fd = -EBADF;
        StoreGeneration *gen;
        int r;

        store_error_clear(s);
        /* store_lock() has removed stale temp files, so after this commit's rename the old file
         * content, the last copy of the wrapped key in the state directory, is gone. */
        r = group_begin(s, group, &lock_fd, &g);
        if (r < 0)
                return store_finish(s, r);
        gen = find_generation(s, g, number);
        if (!gen)
                r = -ENOENT;
        else if (gen->state == GENERATION_ACTIVE)
                r = store_error(s, -EBUSY, NULL, "generation %u of '%s' is active; roll over before retiring it",
                                number, group);
        else if (gen->state == GENERATION_RETIRED)
                r = store_error(s, -EALREADY, NULL, "generation %u of '%s' is already retired", number, group);
        else {
                generation_destroy_key(gen, store_now_usec());
                r = group_commit(s, g);
        }
        return store_finish(s, r);
}

int store_group_destroy_keys_locked(Store *s, const char *name) {
        _cleanup_store_group_ StoreGroup *g = NULL;
        char fn[GROUP_FN_MAX], rel[GROUP_REL_MAX];
        uint64_t now = store_now_usec();
        int r;

        group_paths(name, fn, rel);
        r = group_read(s, name, &g);
        if (r == -ENOENT)
                return 0;
        if (r == -EBADMSG || r == -EPROTONOSUPPORT || r == -ELOOP) {
                /* No tombstone can be written for what cannot be parsed; its keys go with it. */
                store_error_clear(s);
                r = unlink_durable(s->groups_fd, fn);
                if (r < 0)
                        return store_error(s, r, rel, "cannot remove: %s", strerror(-r));
                return 0;
        }
        if (r < 0)
                return r;
        for (size_t i = 0; i < g->n_generations; i++)
                generation_destroy_key(&g->generations[i], now);
        memset(g->wrapped_kek, 0, sizeof(g->wrapped_kek));
        return group_commit(s, g);
}

int store_generation_unwrap(Store *s, const StoreGroup *g, uint32_t number, Secret **ret) {
        _cleanup_secret_ Secret *kek = NULL;
        const StoreGeneration *gen;
        char fn[GROUP_FN_MAX], rel[GROUP_REL_MAX];
        int r;

        store_error_clear(s);
        gen = store_group_find_generation(g, number);
        if (!gen)
                return store_error(s, -ENOENT, NULL, "group '%s' has no generation %u", g->name, number);
        if (gen->state == GENERATION_RETIRED || !gen->has_key)
                return store_error(s, -EKEYREVOKED, NULL, "generation %u of '%s' is retired; its key is destroyed",
                                   number, g->name);
        r = group_unwrap_kek(s, g, &kek);
        if (r < 0)
                return store_finish(s, r);
        r = store_keys_unwrap_generation(kek, g->id, number, gen->wrapped_key, ret);
        if (r == -EBADMSG) {
                group_paths(g->name, fn, rel);
                return store_error(s, r, rel, "generation %u fails to authenticate (damaged, or moved from "
                                   "another group or generation)", number);
        }
        return store_finish(s, r);
}

/* ---- a fleet's group files (docs/FLEET.md): the directory's copy in, ours out ---- */

int store_group_import(Store *s, const char *name, const char *text, size_t size) {
        _cleanup_store_group_ StoreGroup *g = NULL;
        _cleanup_close_ int lock_fd = -EBADF;
        char fn[GROUP_FN_MAX], rel[GROUP_REL_MAX];
        KvError e = {};
        int r;

        store_error_clear(s);
        r = check_name(s, name);
        if (r < 0)
                return store_finish(s, r);
        group_paths(name, fn, rel);
        /* Only what this store would have written itself: it must parse, under its own name. */
        r = group_file_parse(text, size, name, &g, &e);
        if (r < 0)
                return store_finish(s, r == -ENOMEM ? r : store_error_parse(s, -EBADMSG, rel, &e));
        r = store_lock(s, &lock_fd);
        if (r < 0)
                return store_finish(s, r);
        r = write_file_atomic(s->groups_fd, fn, text, size, 0600);
        if (r < 0)
                return store_finish(s, store_error(s, r, rel, "cannot write: %s", strerror(-r)));
        return 0;
}

int store_group_export(Store *s, const char *name, char **ret_text, size_t *ret_size) {
        _cleanup_store_group_ StoreGroup *g = NULL;
        int r;

        store_error_clear(s);
        r = check_name(s, name);
        if (r >= 0)
                r = group_read(s, name, &g);
        if (r >= 0)
                r = group_file_format(g, ret_text, ret_size);
        return store_finish(s, r);
}

int store_group_discard(Store *s, const char *name) {
        _cleanup_close_ int lock_fd = -EBADF;
        char fn[GROUP_FN_MAX], rel[GROUP_REL_MAX];
        int r;

        store_error_clear(s);
        r = check_name(s, name);
        if (r >= 0)
                r = store_lock(s, &lock_fd);
        if (r < 0)
                return store_finish(s, r);
        group_paths(name, fn, rel);
        r = unlink_durable(s->groups_fd, fn);
        if (r < 0 && r != -ENOENT)
                return store_finish(s, store_error(s, r, rel, "cannot remove: %s", strerror(-r)));
        return 0;
}
