/* SPDX-License-Identifier: MIT */
/* libdkm internals shared by its files and its tests: the key cache and error mapping. Not API. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ciphertext.h"
#include "crypto.h"
#include "dkm.h"
#include "keyring-client.h"
#include "secret.h"

/* Cache entries are validated against the kernel again when older than this (CLOCK_MONOTONIC_
 * COARSE), whatever the epoch says: kernel timeouts (on-demand and break-glass keys) and
 * changes by anything that does not bump the epoch are noticed within it. */
#define CACHE_TTL_MSEC 1000U
/* Keys kept per group; beyond it the least recently validated archived key is dropped. */
#define CACHE_KEYS_PER_GROUP_MAX 32U

/* A key borrowed from the cache. cache_acquire_*() return with the cache lock held (shared on
 * the warm path), so the key cannot be freed while in use; cache_release() drops it. Never
 * call dkm_* or cache_* while holding one. */
typedef struct CacheRef {
        const Secret *key;
        CryptAlg alg;
        uint8_t group_id[KEYRING_GROUP_ID_BYTES];
        uint32_t generation;
        bool locked;
} CacheRef;

/* The active generation of the group called name. */
int cache_acquire_active(const char *name, CacheRef *ret) _warn_unused_result_;
/* The active generation of the group with this id (rewrap: the ciphertext's own group). */
int cache_acquire_active_by_id(const uint8_t id[KEYRING_GROUP_ID_BYTES], CacheRef *ret) _warn_unused_result_;
/* Generation `generation` of the group with this id (decryption), loaded on demand through the
 * request-key upcall if it is archived and not in the kernel. */
int cache_acquire_generation(const uint8_t id[KEYRING_GROUP_ID_BYTES], uint32_t generation,
                             CacheRef *ret) _warn_unused_result_;
void cache_release(CacheRef *ref);

/* The name of the visible group with this id; -ENOKEY or -EACCES as a decryption would say. */
int cache_group_name(const uint8_t id[KEYRING_GROUP_ID_BYTES],
                     char ret[KEYRING_GROUP_NAME_MAX + 1]) _warn_unused_result_;

void cache_clear(void);

/* For tests. */
typedef struct CacheStats {
        uint64_t key_loads;   /* keys read from the kernel into a slot */
        uint64_t validations; /* kernel round trips to validate a group or key */
        uint64_t scans;       /* searches for groups by id */
        size_t keys;          /* keys cached now */
} CacheStats;
void cache_get_stats(CacheStats *ret);
/* Call fn for each cached key's bytes (under the lock). */
void cache_foreach_secret(void (*fn)(const void *p, size_t size, void *userdata), void *userdata);

/* Key slots (dkm-keyslots.c): KEYRING_KEY_BYTES each, in locked, undumpable pages between guard
 * pages, many per mapping. Called under the cache's exclusive lock. Freeing wipes the slot;
 * keyslots_clear() wipes and unmaps every page (no slot may be in use). */
int keyslot_new(uint8_t **ret) _warn_unused_result_;
void keyslot_free(uint8_t *slot);
void keyslots_clear(void);
/* In a fork child: lock the pages again (mlock is not inherited). */
void keyslots_relock(void);

/* Map internal errors to the documented public ones. */
int libdkm_error(int r);
/* libsodium, once (a cheap check after the first call). */
int libdkm_init(void) _warn_unused_result_;
/* Do the two byte ranges share a byte? */
bool libdkm_overlaps(const void *a, size_t a_len, const void *b, size_t b_len);
/* A stream encryptor under the active generation of the group called group, or (group NULL)
 * of the group with group_id. */
int libdkm_encryptor_open(const char *group, const uint8_t *group_id, const void *ad, size_t ad_len,
                          dkm_encryptor_t **ret) _warn_unused_result_;
/* Fill info from a parsed header, with the group's name if a visible group has its id. */
void libdkm_info_from_header(const CiphertextHeader *h, dkm_info_t *ret);
