/* SPDX-License-Identifier: MIT */
/* The key hierarchy below the root key: each group's KEK and each generation key, wrapped in place. */
#include <errno.h>
#include <string.h>

#include "store-internal.h"

/* Labels are part of the on-disk format: changing one orphans every key wrapped under it. */
#define KEK_LABEL "dkm kek v1"
#define GENERATION_LABEL "dkm generation v1"

/* The KEK's AD is label || group id, and the wrapping key is derived per group (salt = id), so a
 * KEK blob copied into another group file fails to unwrap. */
static void kek_ad(const uint8_t id[STORE_GROUP_ID_BYTES], uint8_t ad[sizeof(KEK_LABEL) - 1 + STORE_GROUP_ID_BYTES]) {
        memcpy(ad, KEK_LABEL, sizeof(KEK_LABEL) - 1);
        memcpy(ad + sizeof(KEK_LABEL) - 1, id, STORE_GROUP_ID_BYTES);
}

int store_keys_wrap_kek(const Secret *root, const uint8_t id[STORE_GROUP_ID_BYTES], const Secret *kek,
                        uint8_t ret[CRYPT_WRAPPED_KEY_BYTES]) {
        _cleanup_secret_ Secret *w = NULL;
        uint8_t ad[sizeof(KEK_LABEL) - 1 + STORE_GROUP_ID_BYTES];
        int r;

        r = crypt_derive_subkey(root, KEK_LABEL, id, STORE_GROUP_ID_BYTES, &w);
        if (r < 0)
                return r;
        kek_ad(id, ad);
        return crypt_wrap_key(w, kek, ad, sizeof(ad), ret);
}

int store_keys_unwrap_kek(const Secret *root, const StoreGroup *g, Secret **ret) {
        _cleanup_secret_ Secret *w = NULL;
        uint8_t ad[sizeof(KEK_LABEL) - 1 + STORE_GROUP_ID_BYTES];
        int r;

        r = crypt_derive_subkey(root, KEK_LABEL, g->id, sizeof(g->id), &w);
        if (r < 0)
                return r;
        kek_ad(g->id, ad);
        return crypt_unwrap_key(w, g->wrapped_kek, ad, sizeof(ad), ret);
}

/* The generation's AD is group id || generation number (big-endian u32): a blob moved to another
 * group or another generation number fails to unwrap, so nobody can swap keys between them. */
static void generation_ad(const uint8_t id[STORE_GROUP_ID_BYTES], uint32_t number,
                          uint8_t ad[STORE_GROUP_ID_BYTES + 4]) {
        memcpy(ad, id, STORE_GROUP_ID_BYTES);
        ad[STORE_GROUP_ID_BYTES + 0] = (uint8_t) (number >> 24);
        ad[STORE_GROUP_ID_BYTES + 1] = (uint8_t) (number >> 16);
        ad[STORE_GROUP_ID_BYTES + 2] = (uint8_t) (number >> 8);
        ad[STORE_GROUP_ID_BYTES + 3] = (uint8_t) number;
}

int store_keys_wrap_generation(const Secret *kek, const uint8_t id[STORE_GROUP_ID_BYTES], uint32_t number,
                               const Secret *key, uint8_t ret[CRYPT_WRAPPED_KEY_BYTES]) {
        _cleanup_secret_ Secret *w = NULL;
        uint8_t ad[STORE_GROUP_ID_BYTES + 4];
        int r;

        r = crypt_derive_subkey(kek, GENERATION_LABEL, NULL, 0, &w);
        if (r < 0)
                return r;
        generation_ad(id, number, ad);
        return crypt_wrap_key(w, key, ad, sizeof(ad), ret);
}

int store_keys_unwrap_generation(const Secret *kek, const uint8_t id[STORE_GROUP_ID_BYTES], uint32_t number,
                                 const uint8_t wrapped[CRYPT_WRAPPED_KEY_BYTES], Secret **ret) {
        _cleanup_secret_ Secret *w = NULL;
        uint8_t ad[STORE_GROUP_ID_BYTES + 4];
        int r;

        r = crypt_derive_subkey(kek, GENERATION_LABEL, NULL, 0, &w);
        if (r < 0)
                return r;
        generation_ad(id, number, ad);
        return crypt_unwrap_key(w, wrapped, ad, sizeof(ad), ret);
}
