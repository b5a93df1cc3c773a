/* SPDX-License-Identifier: MIT */
/* libdkm's key cache: keys in locked memory, validated against the kernel on an epoch change or after a second. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include "dkm-internal.h"

/* Design (docs/LIBDKM.md): a group entry per key group the process used, holding the group
 * keyring and pointer serials, the pointer's contents (algorithm, active generation) and a
 * read-only mapping of the group's epoch file; under it one entry per generation key, whose
 * bytes live in a key slot (dkm-keyslots.c: locked pages shared by many keys) taken when the key
 * is first loaded. The warm path takes the
 * lock shared, compares the mapped epoch with the one last validated against and checks the
 * coarse clock (vDSO): no system call. Anything stale is validated again under the exclusive
 * lock with a few keyctl calls. */

/* request-key upcalls per call: a load racing each of them is the only reason to ask again. */
#define CACHE_REQUESTS_MAX 3U

typedef struct CacheKey {
        uint32_t generation;
        KeySerial serial;
        Secret key; /* a view of its slot: data points into locked key-slot memory */
        uint64_t checked_msec; /* when the kernel last confirmed it */
        uint64_t epoch;        /* the group epoch it was confirmed under */
} CacheKey;

typedef struct CacheGroup {
        char name[KEYRING_GROUP_NAME_MAX + 1];
        KeySerial ring, pointer;
        KeyringPointer ptr; /* group id, algorithm, active and pending generation */
        KeyringEpoch epoch;
        uint64_t epoch_seen;
        uint64_t checked_msec;
        CacheKey keys[CACHE_KEYS_PER_GROUP_MAX];
        size_t n_keys;
} CacheGroup;

/* Writers first: with reader preference, threads decrypting in a loop could starve the one
 * that has to notice a rollover. */
static pthread_rwlock_t cache_lock = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

static struct {
        CacheGroup **groups; /* every entry has been validated at least once */
        size_t n_groups;
        bool scanned; /* looked for groups by id at scanned_msec */
        uint64_t scanned_msec;
        struct timespec scanned_stamp; /* the runtime directory's mtime then */
        bool scan_denied; /* that scan met a group the process may not read */
        int scan_dead;    /* or a break-glass grant that expired or was revoked (-EKEY*) */
        CacheStats stats;
} cache;

static uint64_t now_msec(void) {
        struct timespec ts;

        /* The coarse clock is read from the vDSO without a system call; its few milliseconds of
         * granularity are nothing next to the validation interval. */
        if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) < 0)
                return 0;
        return (uint64_t) ts.tv_sec * 1000U + (uint64_t) ts.tv_nsec / 1000000U;
}

static bool group_fresh(const CacheGroup *g, uint64_t now) {
        return now - g->checked_msec < CACHE_TTL_MSEC && keyring_client_epoch_read(&g->epoch) == g->epoch_seen;
}

static bool key_fresh(const CacheGroup *g, const CacheKey *k, uint64_t now) {
        return now - k->checked_msec < CACHE_TTL_MSEC && k->epoch == g->epoch_seen;
}

static void key_drop(CacheGroup *g, size_t i) {
        keyslot_free(g->keys[i].key.data); /* wipes */
        g->keys[i] = g->keys[--g->n_keys];
        g->keys[g->n_keys] = (CacheKey){};
}

static void group_drop_keys(CacheGroup *g) {
        while (g->n_keys > 0)
                key_drop(g, g->n_keys - 1);
}

static CacheGroup *group_free(CacheGroup *g) {
        if (!g)
                return NULL;
        group_drop_keys(g);
        keyring_client_epoch_unmap(&g->epoch);
        free(g);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(CacheGroup *, group_free);

static void group_remove(CacheGroup *g) {
        for (size_t i = 0; i < cache.n_groups; i++)
                if (cache.groups[i] == g) {
                        cache.groups[i] = cache.groups[--cache.n_groups];
                        break;
                }
        group_free(g);
}

static CacheGroup *group_find(const char *name, const uint8_t *id) {
        for (size_t i = 0; i < cache.n_groups; i++) {
                CacheGroup *g = cache.groups[i];

                if (name ? strcmp(g->name, name) == 0 : id && memcmp(g->ptr.group_id, id, KEYRING_GROUP_ID_BYTES) == 0)
                        return g;
        }
        return NULL;
}

static CacheKey *key_find(CacheGroup *g, uint32_t generation) {
        for (size_t i = 0; i < g->n_keys; i++)
                if (g->keys[i].generation == generation)
                        return &g->keys[i];
        return NULL;
}

/* Ask the kernel again: the pointer by serial (one keyctl), or the whole lookup if it is gone. */
static int group_validate(CacheGroup *g, uint64_t now) {
        const char *dir = keyring_client_runtime_dir();
        KeyringPointer p;
        KeySerial ring, pointer;
        uint64_t e;
        int r;

        cache.stats.validations++;
        /* The epoch is read before the kernel is asked, so a change made while we look shows
         * up as a mismatch on the next call instead of being lost. */
        if (g->epoch.value && !keyring_client_epoch_is_current(dir, g->name, &g->epoch))
                keyring_client_epoch_unmap(&g->epoch);
        if (!g->epoch.value && keyring_client_epoch_map(dir, g->name, &g->epoch) < 0) {
                /* No epoch file (an older helper) or not ours to read: the interval alone. */
        }
        e = keyring_client_epoch_read(&g->epoch);

        r = g->pointer > 0 ? keyring_client_read_pointer(g->pointer, &p) : -ENOKEY;
        if (r < 0) {
                r = keyring_client_find_group(dir, g->name, &ring);
                if (r >= 0)
                        r = keyring_client_find_pointer(ring, g->name, &pointer, &p);
                if (r < 0)
                        return r;
                g->ring = ring;
                g->pointer = pointer;
        }
        if (memcmp(p.group_id, g->ptr.group_id, KEYRING_GROUP_ID_BYTES) != 0)
                /* Deleted and created again under the same name: a new group, new keys. */
                group_drop_keys(g);
        g->ptr = p;
        g->epoch_seen = e;
        g->checked_msec = now;
        return 0;
}

static int group_add(const char *name, uint64_t now, CacheGroup **ret) {
        _cleanup_(group_freep) CacheGroup *g = NULL;
        CacheGroup **l;
        int r;

        g = calloc(1, sizeof(*g));
        if (!g)
                return -ENOMEM;
        snprintf(g->name, sizeof(g->name), "%s", name);
        r = group_validate(g, now);
        if (r < 0)
                return r;
        l = realloc(cache.groups, (cache.n_groups + 1) * sizeof(*l));
        if (!l)
                return -ENOMEM;
        cache.groups = l;
        cache.groups[cache.n_groups++] = g;
        *ret = TAKE_PTR(g);
        return 0;
}

/* A ciphertext names its group by id only: learn the ids of every group visible to us. At most
 * once per interval unless the runtime directory changed (a group was loaded or unloaded), so
 * a stream of foreign ciphertexts does not rescan each time. */
static int scan_for_id(const uint8_t id[KEYRING_GROUP_ID_BYTES], uint64_t now, CacheGroup **ret) {
        _cleanup_strv_free_ char **names = NULL;
        const char *dir = keyring_client_runtime_dir();
        struct timespec stamp;
        CacheGroup *g;
        bool denied = false;
        int r, dead = 0;

        keyring_client_runtime_stamp(dir, &stamp);
        if (!cache.scanned || now - cache.scanned_msec >= CACHE_TTL_MSEC ||
            stamp.tv_sec != cache.scanned_stamp.tv_sec || stamp.tv_nsec != cache.scanned_stamp.tv_nsec) {
                cache.stats.scans++;
                r = keyring_client_list_groups(dir, &names);
                if (r < 0)
                        return r;
                for (char **n = names; *n; n++) {
                        if (group_find(*n, NULL))
                                continue;
                        r = group_add(*n, now, &g);
                        if (r == -ENOMEM)
                                return r;
                        if (r == -EACCES)
                                denied = true;
                        if (r == -EKEYEXPIRED || r == -EKEYREVOKED)
                                dead = r;
                }
                cache.scanned = true;
                cache.scanned_msec = now;
                cache.scanned_stamp = stamp;
                cache.scan_denied = denied;
                cache.scan_dead = dead;
        }
        g = group_find(NULL, id);
        if (!g) {
                /* A grant of ours that ended is the likeliest story for a non-member (the
                 * keyring's dead, so its group id cannot be checked); then a group we may not
                 * read: the answers that tell the caller what to do. */
                if (cache.scan_dead < 0)
                        return cache.scan_dead;
                return cache.scan_denied ? -EACCES : -ENOKEY;
        }
        *ret = g;
        return 0;
}

static void make_undumpable(void) {
        /* Each time a key is loaded, in case the application turned it back on: keys in a core
         * dump or readable through ptrace by the same uid would undo the kernel's scoping. */
        (void) prctl(PR_SET_DUMPABLE, 0);
}

static int key_load(CacheGroup *g, uint32_t generation, uint64_t now, CacheKey **ret) {
        uint8_t *slot;
        KeySerial serial;
        CacheKey *k;
        int r;

        r = keyring_client_find_generation(g->ring, g->ptr.group_id, generation, &serial);
        if (r < 0)
                return r;
        make_undumpable();
        r = keyslot_new(&slot);
        if (r < 0)
                return r;
        r = keyring_client_read_key_into(serial, slot);
        if (r < 0) {
                keyslot_free(slot);
                return r;
        }
        if (g->n_keys == CACHE_KEYS_PER_GROUP_MAX) {
                size_t victim = SIZE_MAX;

                for (size_t i = 0; i < g->n_keys; i++)
                        if (g->keys[i].generation != g->ptr.active &&
                            (victim == SIZE_MAX || g->keys[i].checked_msec < g->keys[victim].checked_msec))
                                victim = i;
                key_drop(g, victim);
        }
        k = &g->keys[g->n_keys++];
        *k = (CacheKey){ .generation = generation,
                         .serial = serial,
                         .key = { .size = KEYRING_KEY_BYTES, .data = slot },
                         .checked_msec = now,
                         .epoch = g->epoch_seen };
        cache.stats.key_loads++;
        *ret = k;
        return 0;
}

static bool key_gone(int r) {
        return r == -ENOKEY || r == -EKEYREVOKED || r == -EKEYEXPIRED;
}

typedef struct Want {
        const char *name;    /* by name, or */
        const uint8_t *id;   /* by group id */
        uint32_t generation; /* 0: the active one */
} Want;

typedef struct Request {
        uint8_t id[KEYRING_GROUP_ID_BYTES];
        uint32_t generation;
        int hint; /* what the kernel said about a key we had, if it outranks "not found" */
} Request;

static void ref_fill(CacheRef *ret, const CacheGroup *g, const CacheKey *k) {
        *ret = (CacheRef){ .key = &k->key, .alg = g->ptr.alg, .generation = k->generation, .locked = true };
        memcpy(ret->group_id, g->ptr.group_id, KEYRING_GROUP_ID_BYTES);
}

static bool acquire_fast(const Want *w, uint64_t now, CacheRef *ret) {
        CacheGroup *g;
        CacheKey *k;

        (void) pthread_rwlock_rdlock(&cache_lock);
        g = group_find(w->name, w->id);
        if (g && group_fresh(g, now)) {
                k = key_find(g, w->generation ?: g->ptr.active);
                if (k && key_fresh(g, k, now)) {
                        ref_fill(ret, g, k);
                        return true; /* the lock stays held */
                }
        }
        (void) pthread_rwlock_unlock(&cache_lock);
        return false;
}

/* Under the exclusive lock. 0: *ret filled. 1: the key is not in the kernel but the request-key
 * upcall may load it (*req says which). < 0: the answer. */
static int acquire_slow(const Want *w, uint64_t now, bool may_request, CacheRef *ret, Request *req) {
        CacheGroup *g;
        CacheKey *k;
        uint32_t generation;
        int r;

        g = group_find(w->name, w->id);
        if (g && !group_fresh(g, now)) {
                r = group_validate(g, now);
                if (r < 0) {
                        group_remove(g);
                        g = NULL;
                        /* Validation already looked it up by name from scratch; by id, the
                         * group may live on under another name. */
                        if (w->name || r != -ENOKEY)
                                return r;
                }
        }
        if (!g) {
                r = w->name ? group_add(w->name, now, &g) : scan_for_id(w->id, now, &g);
                if (r < 0)
                        return r;
        }

        generation = w->generation ?: g->ptr.active;
        k = key_find(g, generation);
        if (k && !key_fresh(g, k, now)) {
                cache.stats.validations++;
                r = keyring_client_check_key(k->serial);
                if (r >= 0) {
                        k->checked_msec = now;
                        k->epoch = g->epoch_seen;
                } else {
                        /* Read by serial, an invalidated key says ENOKEY; these two are the
                         * kernel's word about this very key. */
                        if (r == -EKEYREVOKED || r == -EKEYEXPIRED)
                                req->hint = r;
                        key_drop(g, (size_t) (k - g->keys));
                        k = NULL;
                        if (!key_gone(r))
                                return r;
                }
        }
        if (!k) {
                r = key_load(g, generation, now, &k);
                if (r < 0 && !key_gone(r))
                        return r;
                if (r == -EKEYEXPIRED && req->hint == 0)
                        req->hint = r;
                if (r < 0) {
                        /* Only generations the group has had: a forged header must not make
                         * every call an upcall. */
                        if (may_request && generation <= MAX(g->ptr.active, g->ptr.pending)) {
                                memcpy(req->id, g->ptr.group_id, KEYRING_GROUP_ID_BYTES);
                                req->generation = generation;
                                return 1;
                        }
                        /* A search meets an invalidated key as EKEYREVOKED until the garbage
                         * collector unlinks it: that alone does not mean retired. */
                        return req->hint ?: (r == -EKEYEXPIRED ? r : -ENOKEY);
                }
        }
        ref_fill(ret, g, k);
        return 0;
}

static void atfork_prepare(void) {
        (void) pthread_rwlock_wrlock(&cache_lock);
}

static void atfork_parent(void) {
        (void) pthread_rwlock_unlock(&cache_lock);
}

static void atfork_child(void) {
        /* The lock is owned by a thread id that does not exist here: start from a fresh one.
         * The child is a copy of the parent and the cached keys are still its keys. */
        static const pthread_rwlock_t fresh = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;

        memcpy(&cache_lock, &fresh, sizeof(fresh));
        keyslots_relock();
}

static void cache_init_once(void) {
        (void) pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

static int acquire(const Want *w, CacheRef *ret) {
        uint64_t now = now_msec();
        unsigned requested = 0;
        Request req = {};
        int r;

        if (acquire_fast(w, now, ret))
                return 0;
        (void) pthread_once(&cache_once, cache_init_once);
        for (;;) {
                (void) pthread_rwlock_wrlock(&cache_lock);
                /* A load may invalidate a key loaded on demand between the upcall and our
                 * search (it is outside the hot window): ask again, a bounded number of times. */
                r = acquire_slow(w, now, requested < CACHE_REQUESTS_MAX, ret, &req);
                if (r == 0)
                        return 0; /* the lock stays held */
                (void) pthread_rwlock_unlock(&cache_lock);
                if (r < 0)
                        return r;

                /* The upcall takes milliseconds (it may unlock the store): never under the lock. */
                requested++;
                r = keyring_client_request_generation(req.id, req.generation);
                if (r == -ENOKEY)
                        return req.hint ?: -ENOKEY; /* unknown to the store too, or no upcall here */
                if (r < 0)
                        return r; /* -EKEYREVOKED: retired; -EACCES: refused */
                now = now_msec();
        }
}

int cache_acquire_active(const char *name, CacheRef *ret) {
        if (!keyring_group_name_is_valid(name))
                return -EINVAL;
        return acquire(&(Want){ .name = name }, ret);
}

int cache_acquire_active_by_id(const uint8_t id[KEYRING_GROUP_ID_BYTES], CacheRef *ret) {
        return acquire(&(Want){ .id = id }, ret);
}

int cache_acquire_generation(const uint8_t id[KEYRING_GROUP_ID_BYTES], uint32_t generation, CacheRef *ret) {
        if (generation == 0)
                return -ENOKEY; /* no generation 0 ever existed */
        return acquire(&(Want){ .id = id, .generation = generation }, ret);
}

void cache_release(CacheRef *ref) {
        if (ref->locked)
                (void) pthread_rwlock_unlock(&cache_lock);
        *ref = (CacheRef){};
}

int cache_group_name(const uint8_t id[KEYRING_GROUP_ID_BYTES], char ret[KEYRING_GROUP_NAME_MAX + 1]) {
        uint64_t now = now_msec();
        CacheGroup *g;
        int r;

        (void) pthread_rwlock_rdlock(&cache_lock);
        g = group_find(NULL, id);
        if (g && group_fresh(g, now)) {
                memcpy(ret, g->name, sizeof(g->name));
                (void) pthread_rwlock_unlock(&cache_lock);
                return 0;
        }
        (void) pthread_rwlock_unlock(&cache_lock);

        (void) pthread_once(&cache_once, cache_init_once);
        (void) pthread_rwlock_wrlock(&cache_lock);
        g = group_find(NULL, id);
        if (g && !group_fresh(g, now) && group_validate(g, now) < 0) {
                group_remove(g);
                g = NULL;
        }
        r = g ? 0 : scan_for_id(id, now, &g);
        if (r >= 0)
                memcpy(ret, g->name, sizeof(g->name));
        (void) pthread_rwlock_unlock(&cache_lock);
        return r;
}

void cache_clear(void) {
        (void) pthread_rwlock_wrlock(&cache_lock);
        for (size_t i = 0; i < cache.n_groups; i++)
                group_free(cache.groups[i]);
        free(cache.groups);
        cache.groups = NULL;
        cache.n_groups = 0;
        cache.scanned = false;
        keyslots_clear();
        (void) pthread_rwlock_unlock(&cache_lock);
}

/* At exit and at dlclose (an atexit handler would be left pointing into an unloaded library). */
__attribute__((destructor)) static void cache_destructor(void) {
        cache_clear();
}

void cache_get_stats(CacheStats *ret) {
        (void) pthread_rwlock_rdlock(&cache_lock);
        *ret = cache.stats;
        ret->keys = 0;
        for (size_t i = 0; i < cache.n_groups; i++)
                ret->keys += cache.groups[i]->n_keys;
        (void) pthread_rwlock_unlock(&cache_lock);
}

void cache_foreach_secret(void (*fn)(const void *p, size_t size, void *userdata), void *userdata) {
        (void) pthread_rwlock_rdlock(&cache_lock);
        for (size_t i = 0; i < cache.n_groups; i++)
                for (size_t j = 0; j < cache.groups[i]->n_keys; j++)
                        fn(cache.groups[i]->keys[j].key.data, cache.groups[i]->keys[j].key.size, userdata);
        (void) pthread_rwlock_unlock(&cache_lock);
}
