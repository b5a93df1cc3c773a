/* SPDX-License-Identifier: MIT */
/* dkm-bench-setup: as root, grows a store fast for the benchmarks (many generations, many groups) and loads it. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fileio.h"
#include "group-file.h"
#include "loader.h"
#include "store-internal.h"

/* Not a tool for administrators: the benchmark's own setup, run by dkm-bench as root against
 * its throwaway store. It uses the store's internals for one thing the public API would make
 * slow: store_rollover() commits every generation (two atomic rewrites of a file that grows
 * with each one), so 10,000 rollovers write O(n^2) bytes and fsync 20,000 times. Here the
 * generations are wrapped under the group's KEK exactly as store_generation_add() does and the
 * file is committed once, under the store's write lock. */

static int load_group(Store *s, const StoreGroup *g, unsigned hot_window) {
        _cleanup_keyring_manifest_ KeyringManifest *m = NULL;
        _cleanup_free_ uid_t *uids = NULL;
        size_t n_uids;
        int r;

        r = loader_member_uids(g->gid, &uids, &n_uids);
        if (r < 0)
                return r;
        r = loader_build_manifest(s, g, hot_window, uids, n_uids, &m);
        if (r < 0)
                return r;
        r = loader_run_helper(m, (char *[]) { (char *) "load", NULL });
        if (r < 0)
                return r;
        return r == 0 ? 0 : -EIO;
}

/* Add generations to name until it has n, each the active one in turn (the previous ones archived). */
static int grow_generations(Store *s, const char *name, uint32_t n) {
        _cleanup_store_group_ StoreGroup *g = NULL;
        _cleanup_secret_ Secret *kek = NULL;
        _cleanup_close_ int lock_fd = -EBADF;
        _cleanup_free_ char *text = NULL;
        char fn[STORE_GROUP_NAME_MAX + sizeof(STORE_GROUP_SUFFIX)];
        uint64_t now = store_now_usec();
        size_t size;
        int r;

        r = store_lock(s, &lock_fd);
        if (r < 0)
                return r;
        r = store_group_load(s, name, &g);
        if (r < 0)
                return r;
        r = store_keys_unwrap_kek(s->root_key, g, &kek);
        if (r < 0)
                return r;
        while (g->n_generations < n) {
                _cleanup_secret_ Secret *key = NULL;
                StoreGeneration *gen;
                uint32_t number = g->generations[g->n_generations - 1].number + 1;

                for (size_t i = 0; i < g->n_generations; i++)
                        if (g->generations[i].state == GENERATION_ACTIVE) {
                                g->generations[i].state = GENERATION_ARCHIVED;
                                g->generations[i].archived_usec = now;
                        }
                r = crypt_keygen(&key);
                if (r < 0)
                        return r;
                r = group_file_append_generation(g, &gen);
                if (r < 0)
                        return r;
                gen->number = number;
                gen->state = GENERATION_ACTIVE;
                gen->created_usec = gen->activated_usec = now;
                gen->has_key = true;
                r = store_keys_wrap_generation(kek, g->id, number, key, gen->wrapped_key);
                if (r < 0)
                        return r;
        }
        r = group_file_format(g, &text, &size);
        if (r < 0)
                return r;
        snprintf(fn, sizeof(fn), "%s" STORE_GROUP_SUFFIX, name);
        return write_file_atomic(s->groups_fd, fn, text, size, 0600);
}

/* Groups PREFIX-0 .. PREFIX-(n-1) for gid, each created if missing and, if load, loaded. */
static int make_groups(Store *s, const char *prefix, unsigned n, gid_t gid, bool load) {
        for (unsigned i = 0; i < n; i++) {
                _cleanup_store_group_ StoreGroup *g = NULL;
                char name[STORE_GROUP_NAME_MAX + 1];
                int r;

                snprintf(name, sizeof(name), "%s-%u", prefix, i);
                r = store_group_load(s, name, &g);
                if (r == -ENOENT)
                        r = store_group_create(s, name, gid, CRYPT_ALG_XCHACHA20_POLY1305, NULL, &g);
                if (r < 0)
                        return r;
                if (!load)
                        continue;
                r = load_group(s, g, 0);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Every group of the store out of the kernel (the end of a run). */
static int unload_all(Store *s) {
        _cleanup_strv_free_ char **names = NULL;
        int r, ret = 0;

        r = store_group_list(s, &names);
        if (r < 0)
                return r;
        for (char **n = names; *n; n++) {
                r = loader_run_helper(NULL, (char *[]) { (char *) "unload", *n, NULL });
                if (r != 0 && ret == 0)
                        ret = r < 0 ? r : -EIO;
        }
        return ret;
}

static int usage(void) {
        fprintf(stderr, "usage: dkm-bench-setup STATE-DIR generations GROUP N HOT-WINDOW\n"
                        "       dkm-bench-setup STATE-DIR groups PREFIX N GID\n"
                        "       dkm-bench-setup STATE-DIR create-groups PREFIX N GID   (not loaded)\n"
                        "       dkm-bench-setup STATE-DIR unload-all\n");
        return 2;
}

int main(int argc, char *argv[]) {
        _cleanup_store_ Store *s = NULL;
        int r;

        if (argc < 3)
                return usage();
        r = store_open(argv[1], &s);
        if (r >= 0)
                r = store_unlock(s, NULL);
        if (r < 0) {
                fprintf(stderr, "dkm-bench-setup: %s: %s\n", argv[1], store_last_error(s) ?: strerror(-r));
                return 1;
        }
        if (strcmp(argv[2], "generations") == 0 && argc == 6) {
                _cleanup_store_group_ StoreGroup *g = NULL;

                r = grow_generations(s, argv[3], (uint32_t) strtoul(argv[4], NULL, 10));
                if (r >= 0)
                        r = store_group_load(s, argv[3], &g);
                if (r >= 0)
                        r = load_group(s, g, (unsigned) strtoul(argv[5], NULL, 10));
        } else if ((strcmp(argv[2], "groups") == 0 || strcmp(argv[2], "create-groups") == 0) && argc == 6)
                r = make_groups(s, argv[3], (unsigned) strtoul(argv[4], NULL, 10),
                                (gid_t) strtoul(argv[5], NULL, 10), strcmp(argv[2], "groups") == 0);
        else if (strcmp(argv[2], "unload-all") == 0 && argc == 3)
                r = unload_all(s);
        else
                return usage();
        if (r < 0) {
                fprintf(stderr, "dkm-bench-setup: %s: %s\n", argv[2], store_last_error(s) ?: strerror(-r));
                return 1;
        }
        return 0;
}
