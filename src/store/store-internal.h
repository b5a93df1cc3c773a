/* SPDX-License-Identifier: MIT */
/* What the store's modules share: the Store object, error reporting, the write lock, key hierarchy. */
#pragma once

#include "kvfile.h"
#include "store.h"

#define STORE_ID_BYTES STORE_ID_SIZE
#define STORE_ERROR_MAX 1024U

#define STORE_FORMAT_FILE "format"
#define STORE_LOCK_FILE "lock"
#define STORE_PROTECTORS_DIR "protectors"
#define STORE_GROUPS_DIR "groups"
#define STORE_GROUP_SUFFIX ".group"
#define STORE_PROTECTOR_SUFFIX ".protector"
#define STORE_KEYFILE_SUFFIX ".key"
#define STORE_POLICY_FILE "store.policy"
#define STORE_PURGED_FILE "purged"

struct Store {
        char *path;
        int dir_fd, protectors_fd, groups_fd; /* every file is reached openat() relative to these */
        uint8_t id[STORE_ID_BYTES];           /* random, from the format file; bound into protector ADs */
        Secret *root_key;                     /* NULL while locked */
        char error[STORE_ERROR_MAX];
};

/* Set s->error to "STOREPATH[/rel]: message" and return r (negative). */
int store_error(Store *s, int r, const char *rel, const char *fmt, ...) _printf_(4, 5);
/* The same for a file parse failure: "STOREPATH/rel: line N: message". */
int store_error_parse(Store *s, int r, const char *rel, const KvError *e);
void store_error_clear(Store *s);
/* At the end of a public call: a failure without a message gets a generic one. */
int store_finish(Store *s, int r);

/* A small file of the state dir (format, store.policy, purged): -ENOENT as is, with nothing said
 * (each caller gives the absence its own meaning); a symlink, another non-regular file or one over
 * max bytes is damage (-EBADMSG); store_error() says why for those and every other failure. */
int store_read_state_file(Store *s, const char *rel, size_t max, char **ret, size_t *ret_size) _warn_unused_result_;

/* The store-wide write lock (flock on STOREPATH/lock), opened per call so that a forked child
 * never shares its holder's open file description. Also removes temp files a killed writer left:
 * only lock holders write, so every temp file seen under the lock is stale. Close to release. */
int store_lock(Store *s, int *ret_fd) _warn_unused_result_;

/* Names (without suffix) of the files NAME+suffix in dir_fd whose NAME is a valid store name;
 * sorted, NULL-terminated. */
int store_list_dir(int dir_fd, const char *suffix, char ***ret) _warn_unused_result_;

/* Non-zero CLOCK_REALTIME microseconds. */
uint64_t store_now_usec(void);

/* Key hierarchy (store-keys.c): root -> KEK per group -> generation keys, each wrapped with an
 * AD naming its place. */
int store_keys_wrap_kek(const Secret *root, const uint8_t id[STORE_GROUP_ID_BYTES], const Secret *kek,
                        uint8_t ret[CRYPT_WRAPPED_KEY_BYTES]) _warn_unused_result_;
int store_keys_unwrap_kek(const Secret *root, const StoreGroup *g, Secret **ret) _warn_unused_result_;
int store_keys_wrap_generation(const Secret *kek, const uint8_t id[STORE_GROUP_ID_BYTES], uint32_t number,
                               const Secret *key, uint8_t ret[CRYPT_WRAPPED_KEY_BYTES]) _warn_unused_result_;
int store_keys_unwrap_generation(const Secret *kek, const uint8_t id[STORE_GROUP_ID_BYTES], uint32_t number,
                                 const uint8_t wrapped[CRYPT_WRAPPED_KEY_BYTES], Secret **ret) _warn_unused_result_;

/* Purge (store-purge.c): -ENOKEY, "the store was purged at DATE", and the root key forgotten, if
 * the purged marker exists (or cannot be read: a purge is never undone by a damaged marker). */
int store_refuse_if_purged(Store *s) _warn_unused_result_;
/* Crypto-shred one group file under the lock: every generation retired, the KEK destroyed; a
 * group file that cannot be parsed is removed whole (it may hold keys no tombstone could keep). */
int store_group_destroy_keys_locked(Store *s, const char *name) _warn_unused_result_;
