/* SPDX-License-Identifier: MIT */
/* The crypto core on libsodium: the only module that calls its AEAD primitives. */
#include <errno.h>
#include <string.h>

#include <sodium.h>

#include "crypto.h"

_Static_assert(sizeof(CryptHashState) >= sizeof(crypto_generichash_state), "hash state too small");
_Static_assert(crypto_aead_xchacha20poly1305_ietf_KEYBYTES == CRYPT_KEY_BYTES, "key size");
_Static_assert(crypto_aead_aes256gcm_KEYBYTES == CRYPT_KEY_BYTES, "key size");
_Static_assert(crypto_aead_xchacha20poly1305_ietf_ABYTES == CRYPT_TAG_BYTES, "tag size");
_Static_assert(crypto_aead_aes256gcm_ABYTES == CRYPT_TAG_BYTES, "tag size");
_Static_assert(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES == 24, "nonce size");
_Static_assert(crypto_pwhash_SALTBYTES == CRYPT_PWHASH_SALT_BYTES, "salt size");
_Static_assert(crypto_sign_SEEDBYTES == CRYPT_SIGN_SEED_BYTES, "seed size");
_Static_assert(crypto_sign_SECRETKEYBYTES == CRYPT_SIGN_SECRET_KEY_BYTES, "signing key size");
_Static_assert(crypto_sign_PUBLICKEYBYTES == CRYPT_SIGN_PUBLIC_KEY_BYTES, "public key size");
_Static_assert(crypto_sign_BYTES == CRYPT_SIGN_BYTES, "signature size");

int crypt_init(void) {
        static int done = 0;

        /* sodium_init() takes a global mutex on every call: once it has succeeded, skip it, so
         * that libdkm's hot paths in many threads never contend on it. */
        if (__atomic_load_n(&done, __ATOMIC_ACQUIRE))
                return 0;
        if (sodium_init() < 0)
                return -EIO;
        __atomic_store_n(&done, 1, __ATOMIC_RELEASE);
        return 0;
}

size_t crypt_alg_nonce_bytes(CryptAlg alg) {
        switch (alg) {
        case CRYPT_ALG_XCHACHA20_POLY1305:
                return crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
        case CRYPT_ALG_AES256_GCM:
                return crypto_aead_aes256gcm_NPUBBYTES;
        }
        return 0;
}

const char *crypt_alg_to_string(CryptAlg alg) {
        switch (alg) {
        case CRYPT_ALG_XCHACHA20_POLY1305:
                return "xchacha20-poly1305";
        case CRYPT_ALG_AES256_GCM:
                return "aes256-gcm";
        }
        return NULL;
}

int crypt_alg_from_string(const char *s, CryptAlg *ret) {
        static const CryptAlg all[] = { CRYPT_ALG_XCHACHA20_POLY1305, CRYPT_ALG_AES256_GCM };

        for (size_t i = 0; i < ELEMENTSOF(all); i++)
                if (s && strcmp(s, crypt_alg_to_string(all[i])) == 0) {
                        *ret = all[i];
                        return 0;
                }
        return -EPROTONOSUPPORT;
}

int crypt_alg_check(CryptAlg alg) {
        int r = crypt_init();
        if (r < 0)
                return r;
        switch (alg) {
        case CRYPT_ALG_XCHACHA20_POLY1305:
                return 0;
        case CRYPT_ALG_AES256_GCM:
                /* libsodium's AES-GCM is hardware-only; refuse rather than fall back. */
                return crypto_aead_aes256gcm_is_available() ? 0 : -EOPNOTSUPP;
        }
        return -EPROTONOSUPPORT;
}

void crypt_random(void *p, size_t size) {
        randombytes_buf(p, size);
}

int crypt_keygen(Secret **ret) {
        Secret *k;
        int r;

        r = secret_new(CRYPT_KEY_BYTES, &k);
        if (r < 0)
                return r;
        randombytes_buf(k->data, k->size);
        *ret = k;
        return 0;
}

static int check_key(const Secret *key) {
        return key && key->size == CRYPT_KEY_BYTES ? 0 : -EINVAL;
}

int crypt_aead_seal(CryptAlg alg, const Secret *key, const uint8_t *nonce,
                     const void *ad, size_t ad_size,
                     const void *m, size_t m_size, uint8_t *c) {
        int r;

        r = check_key(key);
        if (r < 0)
                return r;
        r = crypt_alg_check(alg);
        if (r < 0)
                return r;

        switch (alg) {
        case CRYPT_ALG_XCHACHA20_POLY1305:
                crypto_aead_xchacha20poly1305_ietf_encrypt(c, NULL, m, m_size, ad, ad_size, NULL, nonce, key->data);
                return 0;
        case CRYPT_ALG_AES256_GCM:
                crypto_aead_aes256gcm_encrypt(c, NULL, m, m_size, ad, ad_size, NULL, nonce, key->data);
                return 0;
        }
        return -EPROTONOSUPPORT;
}

int crypt_aead_open(CryptAlg alg, const Secret *key, const uint8_t *nonce,
                     const void *ad, size_t ad_size,
                     const void *c, size_t c_size, uint8_t *m) {
        int r;

        r = check_key(key);
        if (r < 0)
                return r;
        if (c_size < CRYPT_TAG_BYTES)
                return -EBADMSG;
        r = crypt_alg_check(alg);
        if (r < 0)
                return r;

        switch (alg) {
        case CRYPT_ALG_XCHACHA20_POLY1305:
                r = crypto_aead_xchacha20poly1305_ietf_decrypt(m, NULL, NULL, c, c_size, ad, ad_size, nonce, key->data);
                break;
        case CRYPT_ALG_AES256_GCM:
                r = crypto_aead_aes256gcm_decrypt(m, NULL, NULL, c, c_size, ad, ad_size, nonce, key->data);
                break;
        default:
                return -EPROTONOSUPPORT;
        }
        if (r != 0) {
                /* Callers must never see unauthenticated plaintext. */
                sodium_memzero(m, c_size - CRYPT_TAG_BYTES);
                return -EBADMSG;
        }
        return 0;
}

int crypt_wrap_key(const Secret *kek, const Secret *key, const void *ad, size_t ad_size,
                    uint8_t ret[CRYPT_WRAPPED_KEY_BYTES]) {
        int r;

        r = check_key(key);
        if (r < 0)
                return r;
        randombytes_buf(ret, 24);
        return crypt_aead_seal(CRYPT_ALG_XCHACHA20_POLY1305, kek, ret, ad, ad_size, key->data, key->size, ret + 24);
}

int crypt_unwrap_key(const Secret *kek, const uint8_t wrapped[CRYPT_WRAPPED_KEY_BYTES],
                      const void *ad, size_t ad_size, Secret **ret) {
        _cleanup_secret_ Secret *key = NULL;
        int r;

        r = secret_new(CRYPT_KEY_BYTES, &key);
        if (r < 0)
                return r;
        r = crypt_aead_open(CRYPT_ALG_XCHACHA20_POLY1305, kek, wrapped, ad, ad_size,
                             wrapped + 24, CRYPT_KEY_BYTES + CRYPT_TAG_BYTES, key->data);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(key);
        return 0;
}

int crypt_derive_subkey(const Secret *key, const char *label, const void *salt, size_t salt_size,
                         Secret **ret) {
        crypto_generichash_state st;
        _cleanup_secret_ Secret *sub = NULL;
        static const uint8_t sep = 0;
        int r;

        r = check_key(key);
        if (r < 0)
                return r;
        if (!label)
                return -EINVAL;
        r = secret_new(CRYPT_KEY_BYTES, &sub);
        if (r < 0)
                return r;

        /* label || 0x00 || salt: the separator keeps (label, salt) pairs unambiguous. */
        crypto_generichash_init(&st, key->data, key->size, CRYPT_KEY_BYTES);
        crypto_generichash_update(&st, (const uint8_t *) label, strlen(label));
        crypto_generichash_update(&st, &sep, 1);
        if (salt_size > 0)
                crypto_generichash_update(&st, salt, salt_size);
        crypto_generichash_final(&st, sub->data, sub->size);
        sodium_memzero(&st, sizeof(st));

        *ret = TAKE_PTR(sub);
        return 0;
}

int crypt_derive_from_passphrase(const Secret *passphrase, const uint8_t salt[CRYPT_PWHASH_SALT_BYTES],
                                  uint64_t opslimit, size_t memlimit, Secret **ret) {
        _cleanup_secret_ Secret *k = NULL;
        int r;

        if (!passphrase || opslimit < crypto_pwhash_OPSLIMIT_MIN || memlimit < crypto_pwhash_MEMLIMIT_MIN ||
            opslimit > crypto_pwhash_OPSLIMIT_MAX || memlimit > crypto_pwhash_MEMLIMIT_MAX)
                return -EINVAL;
        r = secret_new(CRYPT_KEY_BYTES, &k);
        if (r < 0)
                return r;
        if (crypto_pwhash(k->data, k->size, (const char *) passphrase->data, passphrase->size, salt,
                          opslimit, memlimit, crypto_pwhash_ALG_ARGON2ID13) != 0)
                return -ENOMEM; /* the only documented failure: memlimit could not be allocated */
        *ret = TAKE_PTR(k);
        return 0;
}

void crypt_hash(const void *data, size_t size, uint8_t ret[CRYPT_HASH_BYTES]) {
        crypto_generichash(ret, CRYPT_HASH_BYTES, data, size, NULL, 0);
}

void crypt_hash_init(CryptHashState *st) {
        crypto_generichash_init((crypto_generichash_state *) st->opaque, NULL, 0, CRYPT_HASH_BYTES);
}

void crypt_hash_update(CryptHashState *st, const void *data, size_t size) {
        crypto_generichash_update((crypto_generichash_state *) st->opaque, data, size);
}

void crypt_hash_final(CryptHashState *st, uint8_t ret[CRYPT_HASH_BYTES]) {
        crypto_generichash_final((crypto_generichash_state *) st->opaque, ret, CRYPT_HASH_BYTES);
}

int crypt_sign_keypair(Secret **ret_secret, uint8_t ret_public[CRYPT_SIGN_PUBLIC_KEY_BYTES]) {
        _cleanup_secret_ Secret *seed = NULL;
        int r;

        r = crypt_init();
        if (r < 0)
                return r;
        r = secret_new(CRYPT_SIGN_SEED_BYTES, &seed);
        if (r < 0)
                return r;
        randombytes_buf(seed->data, seed->size);
        r = crypt_sign_seed_keypair(seed, NULL, ret_public);
        if (r < 0)
                return r;
        *ret_secret = TAKE_PTR(seed);
        return 0;
}

int crypt_sign_seed_keypair(const Secret *seed, Secret **ret_secret,
                             uint8_t ret_public[CRYPT_SIGN_PUBLIC_KEY_BYTES]) {
        _cleanup_secret_ Secret *sk = NULL;
        uint8_t pk[CRYPT_SIGN_PUBLIC_KEY_BYTES];
        int r;

        if (!seed || seed->size != CRYPT_SIGN_SEED_BYTES)
                return -EINVAL;
        r = crypt_init();
        if (r < 0)
                return r;
        r = secret_new(CRYPT_SIGN_SECRET_KEY_BYTES, &sk);
        if (r < 0)
                return r;
        if (crypto_sign_seed_keypair(pk, sk->data, seed->data) != 0)
                return -EIO;
        memcpy(ret_public, pk, sizeof(pk));
        if (ret_secret)
                *ret_secret = TAKE_PTR(sk);
        return 0;
}

int crypt_sign_detached(const Secret *secret, const void *m, size_t m_size, uint8_t ret_sig[CRYPT_SIGN_BYTES]) {
        if (!secret || secret->size != CRYPT_SIGN_SECRET_KEY_BYTES || (!m && m_size > 0))
                return -EINVAL;
        if (crypto_sign_detached(ret_sig, NULL, m, m_size, secret->data) != 0)
                return -EIO;
        return 0;
}

int crypt_sign_verify(const uint8_t public[CRYPT_SIGN_PUBLIC_KEY_BYTES], const void *m, size_t m_size,
                       const uint8_t sig[CRYPT_SIGN_BYTES]) {
        if (!public || !sig || (!m && m_size > 0))
                return -EINVAL;
        if (crypt_init() < 0)
                return -EIO;
        return crypto_sign_verify_detached(sig, m, m_size, public) == 0 ? 0 : -EBADMSG;
}
