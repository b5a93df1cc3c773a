/* SPDX-License-Identifier: MIT */
/* The "passphrase" protector: Argon2id(passphrase, salt) wraps the root key; parameters live in the file. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "protector.h"

/* Bounds on what a protector file may ask of unlock, so a damaged or planted file cannot make it
 * run for hours or allocate terabytes. The defaults sit well inside them. */
#define OPSLIMIT_MIN 1U
#define OPSLIMIT_MAX 64U
#define MEMLIMIT_MIN (8U << 10)
#define MEMLIMIT_MAX (UINT64_C(4) << 30)

/* DKM_TEST_PWHASH_FAST=1: the cheapest Argon2id, only so test suites run in seconds. */
#define OPSLIMIT_FAST 1U
#define MEMLIMIT_FAST (64U << 10)

enum { FIELD_SALT, FIELD_OPSLIMIT, FIELD_MEMLIMIT };
static const char *const passphrase_fields[] = { "salt", "opslimit", "memlimit", NULL };

static int passphrase_parse_field(Protector *p, size_t index, const char *value) {
        switch (index) {
        case FIELD_SALT:
                return kv_parse_hex(value, p->u.passphrase.salt, sizeof(p->u.passphrase.salt));
        case FIELD_OPSLIMIT:
                if (kv_parse_u64(value, OPSLIMIT_MAX, &p->u.passphrase.opslimit) < 0 ||
                    p->u.passphrase.opslimit < OPSLIMIT_MIN)
                        return -EBADMSG;
                return 0;
        case FIELD_MEMLIMIT:
                if (kv_parse_u64(value, MEMLIMIT_MAX, &p->u.passphrase.memlimit) < 0 ||
                    p->u.passphrase.memlimit < MEMLIMIT_MIN)
                        return -EBADMSG;
                return 0;
        }
        return -EBADMSG;
}

static void passphrase_format_fields(const Protector *p, KvBuf *b) {
        kvbuf_printf(b, "salt=");
        kvbuf_put_hex(b, p->u.passphrase.salt, sizeof(p->u.passphrase.salt));
        kvbuf_printf(b, "\nopslimit=%llu\nmemlimit=%llu\n", (unsigned long long) p->u.passphrase.opslimit,
                     (unsigned long long) p->u.passphrase.memlimit);
}

static int derive(const Protector *p, const Secret *passphrase, Secret **ret) {
        return crypt_derive_from_passphrase(passphrase, p->u.passphrase.salt, p->u.passphrase.opslimit,
                                            (size_t) p->u.passphrase.memlimit, ret);
}

static int passphrase_seal(Store *s, Protector *p, const Secret *root, const Secret *credential) {
        _cleanup_secret_ Secret *key = NULL;
        const char *fast = secure_getenv("DKM_TEST_PWHASH_FAST");
        int r;

        if (!credential || credential->size == 0)
                return store_error(s, -EINVAL, NULL, "a passphrase protector needs a non-empty passphrase");
        crypt_random(p->u.passphrase.salt, sizeof(p->u.passphrase.salt));
        if (fast && strcmp(fast, "1") == 0) {
                p->u.passphrase.opslimit = OPSLIMIT_FAST;
                p->u.passphrase.memlimit = MEMLIMIT_FAST;
        } else {
                p->u.passphrase.opslimit = CRYPT_PWHASH_OPSLIMIT_DEFAULT;
                p->u.passphrase.memlimit = CRYPT_PWHASH_MEMLIMIT_DEFAULT;
        }
        r = derive(p, credential, &key);
        if (r < 0)
                return store_error(s, r, NULL, "cannot derive a key from the passphrase: %s", strerror(-r));
        return protector_wrap_root(s, p, key, root);
}

static int passphrase_unseal(Store *s, const Protector *p, const Secret *credential, Secret **ret_root) {
        _cleanup_secret_ Secret *key = NULL;
        int r;

        if (!credential)
                return store_error(s, -ENOKEY, NULL, "needs a passphrase");
        r = derive(p, credential, &key);
        if (r < 0)
                return store_error(s, r == -ENOMEM ? -ENOMEM : -ENOKEY, NULL,
                                   "cannot derive a key from the passphrase: %s", strerror(-r));
        r = protector_unwrap_root(s, p, key, ret_root);
        if (r == -ENOKEY)
                return store_error(s, r, NULL, "wrong passphrase");
        return r;
}

const ProtectorOps protector_passphrase_ops = {
        .type = "passphrase",
        .needs_credential = true,
        .fields = passphrase_fields,
        .parse_field = passphrase_parse_field,
        .format_fields = passphrase_format_fields,
        .seal = passphrase_seal,
        .unseal = passphrase_unseal,
};
