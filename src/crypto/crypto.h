/* SPDX-License-Identifier: MIT */
/* The crypto core: AEAD, key generation, key wrapping, subkey derivation, signatures. Pure: no I/O, no logging. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "macro.h"
#include "secret.h"

/* Wire values: they appear in ciphertext headers and store files; never renumber. */
typedef enum CryptAlg {
        CRYPT_ALG_XCHACHA20_POLY1305 = 1, /* default: 24-byte random nonces are safe */
        CRYPT_ALG_AES256_GCM = 2,         /* only where the CPU has AES-NI + PCLMUL */
} CryptAlg;

#define CRYPT_KEY_BYTES 32U
#define CRYPT_TAG_BYTES 16U
#define CRYPT_NONCE_MAX_BYTES 24U
#define CRYPT_HASH_BYTES 32U

/* A wrapped key: nonce (24) || XChaCha20-Poly1305(key) (32) || tag (16). */
#define CRYPT_WRAPPED_KEY_BYTES (24U + CRYPT_KEY_BYTES + CRYPT_TAG_BYTES)

/* Argon2id salt size for passphrase-derived keys. */
#define CRYPT_PWHASH_SALT_BYTES 16U

int crypt_init(void) _warn_unused_result_;

/* 0 for an unknown algorithm. */
size_t crypt_alg_nonce_bytes(CryptAlg alg);
const char *crypt_alg_to_string(CryptAlg alg);
int crypt_alg_from_string(const char *s, CryptAlg *ret) _warn_unused_result_;
/* 0 if usable here; -EPROTONOSUPPORT unknown; -EOPNOTSUPP AES-GCM without CPU support. */
int crypt_alg_check(CryptAlg alg) _warn_unused_result_;

void crypt_random(void *p, size_t size);
int crypt_keygen(Secret **ret) _warn_unused_result_;

/* c must hold mlen + CRYPT_TAG_BYTES. nonce has crypt_alg_nonce_bytes(alg) bytes. */
int crypt_aead_seal(CryptAlg alg, const Secret *key, const uint8_t *nonce,
                     const void *ad, size_t ad_size,
                     const void *m, size_t m_size, uint8_t *c) _warn_unused_result_;
/* m must hold c_size - CRYPT_TAG_BYTES. -EBADMSG when authentication fails; m is then zeroed. */
int crypt_aead_open(CryptAlg alg, const Secret *key, const uint8_t *nonce,
                     const void *ad, size_t ad_size,
                     const void *c, size_t c_size, uint8_t *m) _warn_unused_result_;

/* Wrap a 32-byte key under a key-encryption key; ad binds the wrapped key to its place
 * (group id, generation) so a blob moved elsewhere fails to unwrap. */
int crypt_wrap_key(const Secret *kek, const Secret *key, const void *ad, size_t ad_size,
                    uint8_t ret[CRYPT_WRAPPED_KEY_BYTES]) _warn_unused_result_;
int crypt_unwrap_key(const Secret *kek, const uint8_t wrapped[CRYPT_WRAPPED_KEY_BYTES],
                      const void *ad, size_t ad_size, Secret **ret) _warn_unused_result_;

/* A 32-byte subkey bound to a purpose label and optional salt (keyed BLAKE2b-256), so one
 * key never serves two purposes directly. */
int crypt_derive_subkey(const Secret *key, const char *label, const void *salt, size_t salt_size,
                         Secret **ret) _warn_unused_result_;

/* Argon2id: a 32-byte key from a passphrase. */
int crypt_derive_from_passphrase(const Secret *passphrase, const uint8_t salt[CRYPT_PWHASH_SALT_BYTES],
                                  uint64_t opslimit, size_t memlimit, Secret **ret) _warn_unused_result_;
#define CRYPT_PWHASH_OPSLIMIT_DEFAULT 3U           /* libsodium's MODERATE */
#define CRYPT_PWHASH_MEMLIMIT_DEFAULT (256U << 20) /* 256 MiB */

/* Unkeyed BLAKE2b-256, for integrity checksums of non-secret data. */
void crypt_hash(const void *data, size_t size, uint8_t ret[CRYPT_HASH_BYTES]);

/* Incremental form of crypt_hash, for inputs given in pieces. The state is opaque. */
typedef struct CryptHashState {
        _Alignas(64) uint8_t opaque[384];
} CryptHashState;
void crypt_hash_init(CryptHashState *st);
void crypt_hash_update(CryptHashState *st, const void *data, size_t size);
void crypt_hash_final(CryptHashState *st, uint8_t ret[CRYPT_HASH_BYTES]);

/* Ed25519 signatures (RFC 8032), for the audit log's checkpoints. The secret key is the 32-byte
 * seed; the signing form (seed || public key, 64 bytes) only ever exists in a Secret. */
#define CRYPT_SIGN_SEED_BYTES 32U
#define CRYPT_SIGN_SECRET_KEY_BYTES 64U
#define CRYPT_SIGN_PUBLIC_KEY_BYTES 32U
#define CRYPT_SIGN_BYTES 64U

/* A fresh key pair: *ret_secret holds the seed (CRYPT_SIGN_SEED_BYTES), the form to store. */
int crypt_sign_keypair(Secret **ret_secret, uint8_t ret_public[CRYPT_SIGN_PUBLIC_KEY_BYTES]) _warn_unused_result_;
/* The signing key (CRYPT_SIGN_SECRET_KEY_BYTES) and public key of a stored seed; ret_secret may be NULL. */
int crypt_sign_seed_keypair(const Secret *seed, Secret **ret_secret,
                             uint8_t ret_public[CRYPT_SIGN_PUBLIC_KEY_BYTES]) _warn_unused_result_;
/* secret is the signing key from crypt_sign_seed_keypair(). */
int crypt_sign_detached(const Secret *secret, const void *m, size_t m_size,
                         uint8_t ret_sig[CRYPT_SIGN_BYTES]) _warn_unused_result_;
/* 0 if sig is a valid signature of m by public; -EBADMSG otherwise. */
int crypt_sign_verify(const uint8_t public[CRYPT_SIGN_PUBLIC_KEY_BYTES], const void *m, size_t m_size,
                       const uint8_t sig[CRYPT_SIGN_BYTES]) _warn_unused_result_;
