/* SPDX-License-Identifier: MIT */
/* Ciphertext header parsing and the one-shot kind: header || AEAD(generation key, nonce, header || ad). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ciphertext.h"
#include "format-internal.h"

_Static_assert(sizeof(CIPHERTEXT_MAGIC) - 1 == CIPHERTEXT_MAGIC_BYTES, "magic size");
_Static_assert(CIPHERTEXT_PREFIX_BYTES == CIPHERTEXT_MAGIC_BYTES + 1 + 1 + 1 + 2 + CIPHERTEXT_GROUP_ID_BYTES + 4,
               "prefix layout");

void ciphertext_write_prefix(uint8_t *out, CiphertextKind kind, CryptAlg alg,
                             const uint8_t group_id[CIPHERTEXT_GROUP_ID_BYTES], uint32_t generation) {
        memcpy(out, CIPHERTEXT_MAGIC, CIPHERTEXT_MAGIC_BYTES);
        out[3] = CIPHERTEXT_VERSION;
        out[4] = (uint8_t) kind;
        out[5] = (uint8_t) alg;
        format_put_be16(out + 6, 0);
        memcpy(out + 8, group_id, CIPHERTEXT_GROUP_ID_BYTES);
        format_put_be32(out + 24, generation);
}

int ciphertext_check_args(CryptAlg alg, const Secret *key, const void *ad, size_t ad_size) {
        int r;

        if (!key || key->size != CRYPT_KEY_BYTES || (!ad && ad_size > 0))
                return -EINVAL;
        if (crypt_alg_nonce_bytes(alg) == 0)
                return -EAFNOSUPPORT;
        r = crypt_alg_check(alg);
        if (r == -EPROTONOSUPPORT) /* crypto's code for "unknown"; ours is distinct from "unknown version" */
                return -EAFNOSUPPORT;
        return r;
}

int ciphertext_parse_header(const void *buf, size_t size, CiphertextHeader *ret) {
        const uint8_t *p = buf;
        CiphertextHeader h = {};
        size_t need;

        if (!p && size > 0)
                return -EINVAL;
        /* Checked in this order because a later version may lay out everything after the
         * version byte differently: nothing past it means anything until it is known. */
        if (size < CIPHERTEXT_MAGIC_BYTES || memcmp(p, CIPHERTEXT_MAGIC, CIPHERTEXT_MAGIC_BYTES) != 0)
                return -ENOMSG;
        if (size < CIPHERTEXT_MAGIC_BYTES + 1)
                return -EBADMSG;
        if (p[3] != CIPHERTEXT_VERSION)
                return -EPROTONOSUPPORT;
        if (size < CIPHERTEXT_PREFIX_BYTES)
                return -EBADMSG;
        if (p[4] != CIPHERTEXT_ONESHOT && p[4] != CIPHERTEXT_STREAM)
                return -EPROTONOSUPPORT;
        if (crypt_alg_nonce_bytes((CryptAlg) p[5]) == 0)
                return -EAFNOSUPPORT;
        /* Reserved: a reader that ignored a flag it does not know could misread the rest. */
        if (format_get_be16(p + 6) != 0)
                return -EBADMSG;

        h.version = p[3];
        h.kind = (CiphertextKind) p[4];
        h.alg = (CryptAlg) p[5];
        memcpy(h.group_id, p + 8, sizeof(h.group_id));
        h.generation = format_get_be32(p + 24);

        if (h.kind == CIPHERTEXT_ONESHOT) {
                h.nonce_size = crypt_alg_nonce_bytes(h.alg);
                need = CIPHERTEXT_PREFIX_BYTES + h.nonce_size;
                if (size < need)
                        return -EBADMSG;
                memcpy(h.nonce, p + CIPHERTEXT_PREFIX_BYTES, h.nonce_size);
        } else {
                need = CIPHERTEXT_STREAM_HEADER_BYTES;
                if (size < need)
                        return -EBADMSG;
                memcpy(h.salt, p + CIPHERTEXT_PREFIX_BYTES, sizeof(h.salt));
                h.chunk_size = format_get_be32(p + CIPHERTEXT_PREFIX_BYTES + CIPHERTEXT_STREAM_SALT_BYTES);
                /* The bound caps the decryptor's buffer: a hostile header must not make it
                 * allocate gigabytes. */
                if (h.chunk_size == 0 || h.chunk_size > CIPHERTEXT_STREAM_CHUNK_MAX)
                        return -EBADMSG;
        }
        h.size = need;

        *ret = h;
        return 0;
}

size_t ciphertext_header_size(CryptAlg alg) {
        size_t n = crypt_alg_nonce_bytes(alg);

        return n == 0 ? 0 : CIPHERTEXT_PREFIX_BYTES + n;
}

size_t ciphertext_sealed_size(CryptAlg alg, size_t pt_size) {
        size_t h = ciphertext_header_size(alg);

        if (h == 0 || pt_size > CIPHERTEXT_ONESHOT_MAX_BYTES)
                return 0;
        return h + pt_size + CRYPT_TAG_BYTES;
}

/* The AEAD associated data: header || caller ad. libsodium takes one contiguous buffer, so
 * this copies; ad is not secret, so plain malloc is right. */
static int oneshot_ad(const uint8_t *header, size_t header_size, const void *ad, size_t ad_size, uint8_t **ret,
                      size_t *ret_size) {
        uint8_t *b;

        if (ad_size > SIZE_MAX - header_size)
                return -EFBIG;
        b = malloc(header_size + ad_size);
        if (!b)
                return -ENOMEM;
        memcpy(b, header, header_size);
        if (ad_size > 0)
                memcpy(b + header_size, ad, ad_size);
        *ret = b;
        *ret_size = header_size + ad_size;
        return 0;
}

int ciphertext_seal_with_nonce(CryptAlg alg, const uint8_t group_id[CIPHERTEXT_GROUP_ID_BYTES], uint32_t generation,
                               const Secret *key, const uint8_t *nonce, const void *ad, size_t ad_size, const void *pt,
                               size_t pt_size, uint8_t *out, size_t out_size, size_t *ret_size) {
        _cleanup_free_ uint8_t *full_ad = NULL;
        static const uint8_t empty = 0;
        size_t hsize, total, full_ad_size;
        int r;

        if (!group_id || !nonce || !out || (!pt && pt_size > 0))
                return -EINVAL;
        r = ciphertext_check_args(alg, key, ad, ad_size);
        if (r < 0)
                return r;
        total = ciphertext_sealed_size(alg, pt_size);
        if (total == 0)
                return -EFBIG;
        if (out_size < total)
                return -ENOBUFS;

        hsize = ciphertext_header_size(alg);
        ciphertext_write_prefix(out, CIPHERTEXT_ONESHOT, alg, group_id, generation);
        memcpy(out + CIPHERTEXT_PREFIX_BYTES, nonce, hsize - CIPHERTEXT_PREFIX_BYTES);

        r = oneshot_ad(out, hsize, ad, ad_size, &full_ad, &full_ad_size);
        if (r < 0)
                return r;
        r = crypt_aead_seal(alg, key, out + CIPHERTEXT_PREFIX_BYTES, full_ad, full_ad_size, pt_size > 0 ? pt : &empty,
                            pt_size, out + hsize);
        if (r < 0)
                return r;

        *ret_size = total;
        return 0;
}

int ciphertext_seal(CryptAlg alg, const uint8_t group_id[CIPHERTEXT_GROUP_ID_BYTES], uint32_t generation,
                    const Secret *key, const void *ad, size_t ad_size, const void *pt, size_t pt_size, uint8_t *out,
                    size_t out_size, size_t *ret_size) {
        uint8_t nonce[CRYPT_NONCE_MAX_BYTES];

        /* Random nonces: 192 bits for XChaCha20 are collision-free in practice; for AES-GCM's
         * 96 bits the per-key budget is in docs/FORMAT.md (generations roll over well before). */
        crypt_random(nonce, sizeof(nonce));
        return ciphertext_seal_with_nonce(alg, group_id, generation, key, nonce, ad, ad_size, pt, pt_size, out,
                                          out_size, ret_size);
}

int ciphertext_open(const Secret *key, const void *ad, size_t ad_size, const void *in, size_t in_size, uint8_t *out,
                    size_t out_size, size_t *ret_size) {
        _cleanup_free_ uint8_t *full_ad = NULL;
        CiphertextHeader h;
        size_t full_ad_size, ct_size, pt_size;
        uint8_t dummy = 0;
        int r;

        if ((!in && in_size > 0) || (!out && out_size > 0))
                return -EINVAL;
        r = ciphertext_parse_header(in, in_size, &h);
        if (r < 0)
                return r;
        if (h.kind != CIPHERTEXT_ONESHOT)
                return -EMEDIUMTYPE;
        r = ciphertext_check_args(h.alg, key, ad, ad_size);
        if (r < 0)
                return r;

        ct_size = in_size - h.size;
        if (ct_size < CRYPT_TAG_BYTES)
                return -EBADMSG;
        pt_size = ct_size - CRYPT_TAG_BYTES;
        if (pt_size > CIPHERTEXT_ONESHOT_MAX_BYTES)
                return -EFBIG;
        if (out_size < pt_size)
                return -ENOBUFS;

        r = oneshot_ad(in, h.size, ad, ad_size, &full_ad, &full_ad_size);
        if (r < 0)
                return r;
        /* crypt_aead_open() zeroes out on failure, so no unauthenticated plaintext escapes. */
        r = crypt_aead_open(h.alg, key, h.nonce, full_ad, full_ad_size, (const uint8_t *) in + h.size, ct_size,
                            pt_size > 0 ? out : &dummy);
        if (r < 0)
                return r;

        *ret_size = pt_size;
        return 0;
}
