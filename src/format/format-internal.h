/* SPDX-License-Identifier: MIT */
/* Internals of the format module shared by its files and its tests; not an API for callers. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ciphertext.h"
#include "crypto.h"
#include "secret.h"
#include "stream.h"

/* Label for the per-stream key derivation (docs/FORMAT.md); part of the wire format. */
#define STREAM_KEY_LABEL "dkm stream v1"

static inline void format_put_be16(uint8_t *p, uint16_t v) {
        p[0] = (uint8_t) (v >> 8);
        p[1] = (uint8_t) v;
}

static inline void format_put_be32(uint8_t *p, uint32_t v) {
        p[0] = (uint8_t) (v >> 24);
        p[1] = (uint8_t) (v >> 16);
        p[2] = (uint8_t) (v >> 8);
        p[3] = (uint8_t) v;
}

static inline uint16_t format_get_be16(const uint8_t *p) {
        return (uint16_t) ((unsigned) p[0] << 8 | p[1]);
}

static inline uint32_t format_get_be32(const uint8_t *p) {
        return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}

/* Write the CIPHERTEXT_PREFIX_BYTES common to both kinds. */
void ciphertext_write_prefix(uint8_t *out, CiphertextKind kind, CryptAlg alg,
                             const uint8_t group_id[CIPHERTEXT_GROUP_ID_BYTES], uint32_t generation);

/* -EINVAL on a missing or wrong-size key or ad == NULL with ad_size > 0; -EAFNOSUPPORT on an
 * unknown algorithm; -EOPNOTSUPP where the CPU cannot run it. Shared by every entry point. */
int ciphertext_check_args(CryptAlg alg, const Secret *key, const void *ad, size_t ad_size);

/* ciphertext_seal() with a caller-chosen nonce, so known-answer vectors are reproducible.
 * Reusing a nonce under one key destroys confidentiality and integrity: tests only. */
int ciphertext_seal_with_nonce(CryptAlg alg, const uint8_t group_id[CIPHERTEXT_GROUP_ID_BYTES], uint32_t generation,
                               const Secret *key, const uint8_t *nonce, const void *ad, size_t ad_size, const void *pt,
                               size_t pt_size, uint8_t *out, size_t out_size, size_t *ret_size) _warn_unused_result_;

/* stream_encrypt_new() with a caller-chosen salt and chunk size (1..CIPHERTEXT_STREAM_CHUNK_MAX),
 * for reproducible vectors and small-chunk tests. Reusing a salt reuses every chunk nonce
 * under one key: tests only. */
int stream_encrypt_new_with_salt(CryptAlg alg, const uint8_t group_id[CIPHERTEXT_GROUP_ID_BYTES], uint32_t generation,
                                 const Secret *key, const void *ad, size_t ad_size,
                                 const uint8_t salt[CIPHERTEXT_STREAM_SALT_BYTES], uint32_t chunk_size,
                                 StreamEncryptor **ret) _warn_unused_result_;

/* The nonce of chunk counter: zeros || counter (u32 BE) || last flag, nonce-size bytes in all. */
void stream_chunk_nonce(CryptAlg alg, uint32_t counter, bool last, uint8_t nonce[CRYPT_NONCE_MAX_BYTES]);

struct StreamEncryptor {
        CryptAlg alg;
        Secret *key; /* per-stream key */
        uint8_t ad_digest[CRYPT_HASH_BYTES];
        uint8_t header[CIPHERTEXT_STREAM_HEADER_BYTES];
        uint32_t chunk_size;
        uint64_t counter; /* index of the next chunk; never above UINT32_MAX */
        bool finished;
};

struct StreamDecryptor {
        CryptAlg alg;
        Secret *key; /* per-stream key */
        uint8_t ad_digest[CRYPT_HASH_BYTES];
        uint32_t chunk_size;
        uint64_t counter; /* index of the next chunk; never above UINT32_MAX */
        uint8_t *buf;     /* one ciphertext chunk: chunk_size + CRYPT_TAG_BYTES */
        size_t buf_used;
        int error; /* sticky: once a check fails, the stream stays rejected */
        bool finished;
};
