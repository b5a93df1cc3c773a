/* SPDX-License-Identifier: MIT */
/* Protectors: the ways to recover the root key. One ops table per type; PKCS#11 or TPM2 join here. */
#pragma once

#include <stdbool.h>

#include "kvfile.h"
#include "pkcs11-uri.h"
#include "store-internal.h"

#define PROTECTOR_FILE_FORMAT 1

#define PROTECTOR_PKCS11_IV_BYTES 12U
#define PROTECTOR_PKCS11_SEALED_BYTES (PROTECTOR_PKCS11_IV_BYTES + CRYPT_KEY_BYTES + CRYPT_TAG_BYTES)
/* crypto_box_seal of the 32-byte protector key: ephemeral public key (32) + MAC (16) + key. */
#define PROTECTOR_X25519_SEALED_BYTES (32U + 16U + CRYPT_KEY_BYTES)

/* sha256 PCRs 0-23. A sealed-data object of 32 bytes marshals to ~80 (public) and ~160 (private)
 * bytes with sha256; the bound leaves room for larger name algorithms and keeps a planted file
 * from making the Protector (a stack object) large. */
#define PROTECTOR_TPM2_PCRS 24U
#define PROTECTOR_TPM2_BLOB_MAX 1024U

typedef struct Protector Protector;

typedef struct ProtectorOps {
        const char *type; /* as written in the file and shown by store_protector_list() */
        /* Needs a credential (passphrase, PIN): tried by store_unlock() only when one is given,
         * after every protector that needs none. */
        bool needs_credential;
        /* Talks to a device (a PKCS#11 token): tried after the protectors that need neither a
         * credential nor a device, so a working key file never waits for a slow or absent HSM
         * nor spends one of its PIN tries. */
        bool uses_device;
        /* Type-specific lines of the protector file, in this order, between "type=" and
         * "wrapped-root-key=". NULL-terminated. */
        const char *const *fields;
        int (*parse_field)(Protector *p, size_t index, const char *value); /* -EBADMSG on a bad value */
        void (*format_fields)(const Protector *p, KvBuf *b);
        /* Make the protector's key material (side files under protectors/ included) and fill
         * p->wrapped_root with the root key sealed under it. Called under the store lock. */
        int (*seal)(Store *s, Protector *p, const Secret *root, const Secret *credential);
        /* Recover the root key. -ENOKEY when this protector cannot (missing key file, wrong
         * passphrase); s->error then says why. */
        int (*unseal)(Store *s, const Protector *p, const Secret *credential, Secret **ret_root);
} ProtectorOps;

struct Protector {
        char name[STORE_PROTECTOR_NAME_MAX + 1];
        const ProtectorOps *ops;
        union {
                struct {
                        uint8_t salt[CRYPT_PWHASH_SALT_BYTES];
                        uint64_t opslimit, memlimit;
                } passphrase;
                struct {
                        char uri[PKCS11_URI_MAX + 1];
                        /* A random protector key, AES-256-GCM-encrypted by the token's key:
                         * IV (12) || ciphertext (32) || tag (16). */
                        uint8_t sealed_key[PROTECTOR_PKCS11_SEALED_BYTES];
                } pkcs11;
                struct {
                        uint32_t pcr_mask; /* bit i: sha256 PCR i is in the policy; 0: no policy */
                        /* The sealed-data object as TPM2B_PUBLIC and TPM2B_PRIVATE, marshalled. */
                        uint16_t pub_size, priv_size;
                        uint8_t pub[PROTECTOR_TPM2_BLOB_MAX];
                        uint8_t priv[PROTECTOR_TPM2_BLOB_MAX];
                } tpm2;
                struct {
                        uint8_t public_key[STORE_X25519_KEY_BYTES]; /* the host it is sealed to */
                        uint8_t sealed_key[PROTECTOR_X25519_SEALED_BYTES];
                } x25519;
        } u;
        uint8_t wrapped_root[CRYPT_WRAPPED_KEY_BYTES];
};

extern const ProtectorOps protector_file_ops;
extern const ProtectorOps protector_passphrase_ops;
extern const ProtectorOps protector_pkcs11_ops;
extern const ProtectorOps protector_x25519_ops;
extern const ProtectorOps protector_tpm2_ops;

#define PROTECTOR_ROOT_AD_MAX (sizeof("dkm root v1") + STORE_ID_BYTES + 32 + STORE_PROTECTOR_NAME_MAX)
/* The root key's AD for protector p: "dkm root v1" 0 || store id || type 0 || name. Devices that
 * seal with their own AEAD bind it too. */
int protector_root_ad(const Store *s, const Protector *p, uint8_t ad[static PROTECTOR_ROOT_AD_MAX],
                      size_t *ret_size) _warn_unused_result_;

/* Wrap/unwrap the root key under a protector key with AD "dkm root v1" 0 || store id || type 0 ||
 * name, so a protector file only opens the store and the name it was made for. Unwrap failure is
 * -ENOKEY: for a protector it means "this key is not the right one". */
int protector_wrap_root(Store *s, Protector *p, const Secret *key, const Secret *root) _warn_unused_result_;
int protector_unwrap_root(Store *s, const Protector *p, const Secret *key, Secret **ret_root) _warn_unused_result_;

/* Pure parse/format of a protector file (checksummed key=value text like group files). */
int protector_file_parse(const char *data, size_t size, const char *expected_name, Protector *ret, KvError *e)
        _warn_unused_result_;
int protector_file_format(const Protector *p, char **ret, size_t *ret_size) _warn_unused_result_;

/* Create protector name of the given type, sealing s->root_key; the caller holds the lock.
 * tmpl, if not NULL, gives the type's settings (its u member), e.g. a PKCS#11 URI. */
int protector_add_locked(Store *s, const ProtectorOps *ops, const char *name, const Secret *credential,
                         const Protector *tmpl) _warn_unused_result_;
