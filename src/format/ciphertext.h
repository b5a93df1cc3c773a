/* SPDX-License-Identifier: MIT */
/* The dkm ciphertext header and the one-shot kind; byte layout in docs/FORMAT.md. Pure: no I/O, no logging. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "crypto.h"
#include "macro.h"
#include "secret.h"

/* Every constant below is part of the wire format (docs/FORMAT.md); never change one in place. */
#define CIPHERTEXT_MAGIC          "DKM"
#define CIPHERTEXT_MAGIC_BYTES    3U
#define CIPHERTEXT_VERSION        1U
#define CIPHERTEXT_GROUP_ID_BYTES 16U
/* magic, version, kind, algorithm, flags, group id, generation: common to both kinds. */
#define CIPHERTEXT_PREFIX_BYTES        28U
#define CIPHERTEXT_STREAM_SALT_BYTES   32U
#define CIPHERTEXT_STREAM_HEADER_BYTES (CIPHERTEXT_PREFIX_BYTES + CIPHERTEXT_STREAM_SALT_BYTES + 4U)
/* The longest header of any kind and algorithm: reading this many bytes (or to EOF) is
 * always enough for ciphertext_parse_header(). */
#define CIPHERTEXT_HEADER_MAX_BYTES CIPHERTEXT_STREAM_HEADER_BYTES

/* Plaintext bytes per stream chunk written by v1; readers accept 1..CIPHERTEXT_STREAM_CHUNK_MAX. */
#define CIPHERTEXT_STREAM_CHUNK_BYTES 65536U
#define CIPHERTEXT_STREAM_CHUNK_MAX   (16U << 20)

/* Largest one-shot plaintext; bigger inputs use the stream kind. Keeps every one-shot far
 * below libsodium's per-message AES-GCM limit, which it enforces by aborting. */
#define CIPHERTEXT_ONESHOT_MAX_BYTES ((size_t) 1U << 30)

/* Wire values; never renumber. */
typedef enum CiphertextKind {
        CIPHERTEXT_ONESHOT = 1,
        CIPHERTEXT_STREAM = 2,
} CiphertextKind;

typedef struct CiphertextHeader {
        uint8_t version;
        CiphertextKind kind;
        CryptAlg alg;
        uint8_t group_id[CIPHERTEXT_GROUP_ID_BYTES];
        uint32_t generation;
        /* One-shot only: the AEAD nonce (nonce_size bytes used). */
        uint8_t nonce[CRYPT_NONCE_MAX_BYTES];
        size_t nonce_size;
        /* Stream only: the per-stream key salt and the plaintext bytes per chunk. */
        uint8_t salt[CIPHERTEXT_STREAM_SALT_BYTES];
        uint32_t chunk_size;
        /* Header bytes; the body starts here. */
        size_t size;
} CiphertextHeader;

/* Parse the header at the start of buf (which may continue with the body). Errors, each
 * distinct so a caller can tell the user what is wrong:
 *   -ENOMSG           not a dkm ciphertext (bad magic, or shorter than the magic)
 *   -EPROTONOSUPPORT  unknown version or kind (written by a newer dkm)
 *   -EAFNOSUPPORT     unknown algorithm (written by a newer dkm)
 *   -EBADMSG          reserved flags set, truncated header, or invalid stream chunk size
 * Algorithm availability on this CPU is not checked here (crypt_alg_check() does). */
int ciphertext_parse_header(const void *buf, size_t size, CiphertextHeader *ret) _warn_unused_result_;

/* Header bytes for a one-shot ciphertext under alg; 0 for an unknown algorithm. */
size_t ciphertext_header_size(CryptAlg alg);

/* Total one-shot ciphertext size for pt_size plaintext bytes; 0 for an unknown algorithm
 * or pt_size > CIPHERTEXT_ONESHOT_MAX_BYTES. */
size_t ciphertext_sealed_size(CryptAlg alg, size_t pt_size);

/* Encrypt pt under key (a generation key) into out (out_size >= ciphertext_sealed_size()),
 * with a fresh random nonce. ad (may be NULL when ad_size is 0) is bound to the ciphertext
 * but not stored in it; the same ad must be given to ciphertext_open(). out must not
 * overlap pt. Errors: -EINVAL bad arguments or key size, -EAFNOSUPPORT unknown algorithm,
 * -EOPNOTSUPP AES-GCM without CPU support, -EFBIG plaintext too large, -ENOBUFS out too small. */
int ciphertext_seal(CryptAlg alg, const uint8_t group_id[CIPHERTEXT_GROUP_ID_BYTES], uint32_t generation,
                    const Secret *key, const void *ad, size_t ad_size, const void *pt, size_t pt_size, uint8_t *out,
                    size_t out_size, size_t *ret_size) _warn_unused_result_;

/* Decrypt a whole one-shot ciphertext (header included). Parse the header first to pick the
 * key named by its group id and generation; this call parses it again, so the header used is
 * always the one authenticated. out needs in_size - header - CRYPT_TAG_BYTES bytes (in_size
 * is always enough) and must not overlap in. Errors: those of ciphertext_parse_header();
 * -EMEDIUMTYPE the input is a stream (use StreamDecryptor); -EBADMSG truncated or failed
 * authentication (wrong key, group, generation or ad; tampering), out is then zeroed;
 * -EOPNOTSUPP AES-GCM without CPU support; -EFBIG too large; -ENOBUFS out too small;
 * -EINVAL bad arguments. */
int ciphertext_open(const Secret *key, const void *ad, size_t ad_size, const void *in, size_t in_size, uint8_t *out,
                    size_t out_size, size_t *ret_size) _warn_unused_result_;
