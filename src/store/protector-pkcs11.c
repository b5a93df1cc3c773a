/* SPDX-License-Identifier: MIT */
/* The "pkcs11" protector: an AES-256 key that never leaves a PKCS#11 token seals the protector key.
 * The only file that talks PKCS#11 (through p11-kit). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <p11-kit/p11-kit.h>
#include <p11-kit/pkcs11.h>

#include "fileio.h"
#include "protector.h"

#define PIN_MAX 256U

enum { FIELD_URI, FIELD_SEALED_KEY };
static const char *const pkcs11_fields[] = { "uri", "token-sealed-key", NULL };

static int pkcs11_parse_field(Protector *p, size_t index, const char *value) {
        const char *why;
        Pkcs11Uri u;

        switch (index) {
        case FIELD_URI:
                if (strlen(value) > PKCS11_URI_MAX || pkcs11_uri_parse(value, &u, &why) < 0 || !u.token[0] ||
                    !u.object[0])
                        return -EBADMSG;
                strcpy(p->u.pkcs11.uri, value);
                return 0;
        case FIELD_SEALED_KEY:
                return kv_parse_hex(value, p->u.pkcs11.sealed_key, sizeof(p->u.pkcs11.sealed_key));
        }
        return -EBADMSG;
}

static void pkcs11_format_fields(const Protector *p, KvBuf *b) {
        kvbuf_printf(b, "uri=%s\ntoken-sealed-key=", p->u.pkcs11.uri);
        kvbuf_put_hex(b, p->u.pkcs11.sealed_key, sizeof(p->u.pkcs11.sealed_key));
        kvbuf_printf(b, "\n");
}

/* The PIN, from the environment of the caller (dkmd's unit), never argv: DKM_PKCS11_PIN_FILE names
 * a file (e.g. a systemd credential) whose first line is the PIN; else DKM_PKCS11_PIN holds it.
 * Every failure is -EACCES: the credential is missing or unusable, which waiting will not fix but
 * the admin can; the key itself may well be there. */
static int pin_get(Store *s, Secret **ret) {
        _cleanup_secret_ Secret *pin = NULL;
        const char *fn = secure_getenv("DKM_PKCS11_PIN_FILE"), *v = secure_getenv("DKM_PKCS11_PIN");
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        ssize_t n;
        int r;

        if (fn && fn[0]) {
                fd = open(fn, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
                if (fd < 0)
                        return store_error(s, -EACCES, NULL, "cannot open the PIN file %s (DKM_PKCS11_PIN_FILE): %s",
                                           fn, strerror(errno));
                if (fstat(fd, &st) < 0)
                        return store_error(s, -EACCES, NULL, "cannot stat the PIN file %s: %s", fn, strerror(errno));
                if (!S_ISREG(st.st_mode))
                        return store_error(s, -EACCES, NULL, "the PIN file %s is not a regular file", fn);
                /* Like a key file: a PIN others can read is not the token owner's secret any more. */
                if (st.st_uid != geteuid() || (st.st_mode & 0077))
                        return store_error(s, -EACCES, NULL,
                                           "the PIN file %s: owner or mode %04o lets others read it; refusing to use it",
                                           fn, (unsigned) (st.st_mode & 07777));
                r = secret_new(PIN_MAX + 1, &pin);
                if (r < 0)
                        return r;
                n = loop_read(fd, pin->data, pin->size);
                if (n < 0)
                        return store_error(s, -EACCES, NULL, "cannot read the PIN file %s: %s", fn, strerror((int) -n));
                if ((size_t) n > PIN_MAX)
                        return store_error(s, -EACCES, NULL, "the PIN file %s is longer than %u bytes", fn, PIN_MAX);
                pin->size = (size_t) n;
                if (memchr(pin->data, '\n', pin->size))
                        pin->size = (size_t) ((uint8_t *) memchr(pin->data, '\n', pin->size) - pin->data);
        } else if (v && v[0]) {
                if (strlen(v) > PIN_MAX)
                        return store_error(s, -EACCES, NULL, "DKM_PKCS11_PIN is longer than %u bytes", PIN_MAX);
                r = secret_new_copy(v, strlen(v), &pin);
                if (r < 0)
                        return r;
        } else
                return store_error(s, -EACCES, NULL, "needs the token's PIN: set DKM_PKCS11_PIN_FILE or DKM_PKCS11_PIN");
        if (pin->size == 0)
                return store_error(s, -EACCES, NULL, "the PKCS#11 PIN is empty");
        *ret = TAKE_PTR(pin);
        return 0;
}

/* One logged-in session on the token the URI names, and the key object. */
typedef struct Token {
        CK_FUNCTION_LIST **modules; /* p11-kit's registered modules (no module-path) */
        CK_FUNCTION_LIST *module;   /* loaded from module-path, or the one holding the token */
        bool own_module;
        CK_SESSION_HANDLE session;
        bool open, logged_in;
        CK_OBJECT_HANDLE key;
} Token;

static void token_close(Token *t) {
        if (t->logged_in)
                (void) t->module->C_Logout(t->session);
        if (t->open)
                (void) t->module->C_CloseSession(t->session);
        /* Finalize every time: the next unlock sees a token inserted, replaced or withdrawn since. */
        if (t->own_module) {
                (void) p11_kit_module_finalize(t->module);
                p11_kit_module_release(t->module);
        }
        if (t->modules)
                p11_kit_modules_finalize_and_release(t->modules);
        *t = (Token) {};
}

static void label_copy(char dst[static 33], const CK_UTF8CHAR src[32]) {
        size_t n = 32;

        memcpy(dst, src, 32);
        while (n > 0 && dst[n - 1] == ' ')
                n--;
        dst[n] = 0;
}

/* The slot of the token labelled label in module m: 1 found, 0 not there. */
static int find_token(CK_FUNCTION_LIST *m, const char *label, CK_SLOT_ID *ret) {
        _cleanup_free_ CK_SLOT_ID *slots = NULL;
        CK_ULONG n = 0;
        int found = 0;

        if (m->C_GetSlotList(CK_TRUE, NULL, &n) != CKR_OK || n == 0)
                return 0;
        slots = calloc(n, sizeof(*slots));
        if (!slots)
                return -ENOMEM;
        if (m->C_GetSlotList(CK_TRUE, slots, &n) != CKR_OK)
                return 0;
        for (CK_ULONG i = 0; i < n; i++) {
                CK_TOKEN_INFO ti;
                char l[33];

                if (m->C_GetTokenInfo(slots[i], &ti) != CKR_OK)
                        continue;
                label_copy(l, ti.label);
                if (strcmp(l, label) != 0)
                        continue;
                if (found)
                        return -ENOTUNIQ;
                *ret = slots[i];
                found = 1;
        }
        return found;
}

static const char *rv_name(CK_RV rv) {
        switch (rv) {
        case CKR_PIN_INCORRECT: return "wrong PIN";
        case CKR_PIN_LOCKED: return "the PIN is locked (too many wrong PINs); the token's SO must unlock it";
        case CKR_PIN_EXPIRED: return "the PIN has expired";
        case CKR_PIN_LEN_RANGE: return "the PIN has a length the token refuses";
        case CKR_DEVICE_REMOVED: case CKR_TOKEN_NOT_PRESENT: return "token not present";
        case CKR_DEVICE_ERROR: case CKR_DEVICE_MEMORY: return "device error";
        case CKR_MECHANISM_INVALID: return "the token does not support AES-GCM";
        case CKR_KEY_FUNCTION_NOT_PERMITTED: return "the key may not encrypt/decrypt (CKA_ENCRYPT/CKA_DECRYPT)";
        case CKR_KEY_TYPE_INCONSISTENT: return "the key is not an AES key";
        case CKR_ENCRYPTED_DATA_INVALID: case CKR_ENCRYPTED_DATA_LEN_RANGE:
                return "the token's key does not open this protector (the key was replaced)";
        default: return "PKCS#11 error";
        }
}

/* How a failed call is classified (store.h, StoreProtectorHealth): the device gone is -EHOSTDOWN
 * (try later), a PIN the token refuses is -EACCES (retrying burns tries), anything else is what
 * the caller says (dflt): -ENOKEY where it means the key does not open the protector. */
static int rv_errno(CK_RV rv, int dflt) {
        switch (rv) {
        case CKR_DEVICE_REMOVED: case CKR_TOKEN_NOT_PRESENT: case CKR_TOKEN_NOT_RECOGNIZED:
        case CKR_DEVICE_ERROR: case CKR_DEVICE_MEMORY: case CKR_SESSION_CLOSED: case CKR_SESSION_HANDLE_INVALID:
        case CKR_CRYPTOKI_NOT_INITIALIZED: case CKR_SLOT_ID_INVALID:
                return -EHOSTDOWN;
        case CKR_PIN_INCORRECT: case CKR_PIN_LOCKED: case CKR_PIN_EXPIRED: case CKR_PIN_LEN_RANGE:
        case CKR_PIN_INVALID: case CKR_USER_NOT_LOGGED_IN:
                return -EACCES;
        default:
                return dflt;
        }
}

static int token_open(Store *s, const Protector *p, Token *t) {
        _cleanup_secret_ Secret *pin = NULL;
        const char *why = NULL;
        CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
        CK_KEY_TYPE kt = CKK_AES;
        CK_ATTRIBUTE tmpl[4];
        CK_ULONG nt = 0, nfound = 0;
        CK_OBJECT_HANDLE objs[2];
        CK_SLOT_ID slot = 0;
        Pkcs11Uri u;
        CK_RV rv;
        int r = 0;

        if (pkcs11_uri_parse(p->u.pkcs11.uri, &u, &why) < 0)
                return store_error(s, -EINVAL, NULL, "bad PKCS#11 URI: %s", why);
        /* The PIN first: without it there is nothing to try, and no module is loaded for nothing. */
        r = pin_get(s, &pin);
        if (r < 0)
                return r;

        if (u.module_path[0]) {
                t->module = p11_kit_module_load(u.module_path, 0);
                if (!t->module)
                        return store_error(s, -EHOSTDOWN, NULL, "cannot load PKCS#11 module %s: %s", u.module_path,
                                           p11_kit_message() ?: "failed");
                t->own_module = true;
                rv = p11_kit_module_initialize(t->module);
                if (rv != CKR_OK) {
                        p11_kit_module_release(t->module);
                        t->own_module = false;
                        t->module = NULL;
                        return store_error(s, -EHOSTDOWN, NULL, "cannot initialize PKCS#11 module %s: %s (0x%lx)",
                                           u.module_path, rv_name(rv), (unsigned long) rv);
                }
                r = find_token(t->module, u.token, &slot);
        } else {
                t->modules = p11_kit_modules_load_and_initialize(0);
                if (!t->modules)
                        return store_error(s, -EHOSTDOWN, NULL, "cannot load the p11-kit modules: %s",
                                           p11_kit_message() ?: "failed");
                for (CK_FUNCTION_LIST **m = t->modules; *m && r == 0; m++) {
                        _cleanup_free_ char *name = p11_kit_module_get_name(*m);

                        if (u.module_name[0] && (!name || strcmp(name, u.module_name) != 0))
                                continue;
                        r = find_token(*m, u.token, &slot);
                        if (r > 0)
                                t->module = *m;
                }
        }
        /* Ambiguity is a configuration problem, not a withdrawn key: -ENOTUNIQ counts as unavailable. */
        if (r == -ENOTUNIQ)
                return store_error(s, -ENOTUNIQ, NULL, "more than one token is labelled '%s'", u.token);
        if (r < 0)
                return r;
        if (r == 0)
                return store_error(s, -EHOSTDOWN, NULL, "no token labelled '%s' (HSM unreachable, or not this one)",
                                   u.token);

        rv = t->module->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &t->session);
        if (rv != CKR_OK)
                return store_error(s, rv_errno(rv, -EHOSTDOWN), NULL, "token '%s': cannot open a session: %s (0x%lx)", u.token,
                                   rv_name(rv), (unsigned long) rv);
        t->open = true;
        /* One login attempt per unlock, never a retry: a wrong PIN counts towards the token's lockout. */
        rv = t->module->C_Login(t->session, CKU_USER, pin->data, pin->size);
        if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN)
                return store_error(s, rv_errno(rv, -EACCES), NULL, "token '%s': login refused: %s (0x%lx)", u.token, rv_name(rv),
                                   (unsigned long) rv);
        t->logged_in = rv == CKR_OK;

        tmpl[nt++] = (CK_ATTRIBUTE) { CKA_CLASS, &cls, sizeof(cls) };
        tmpl[nt++] = (CK_ATTRIBUTE) { CKA_KEY_TYPE, &kt, sizeof(kt) };
        tmpl[nt++] = (CK_ATTRIBUTE) { CKA_LABEL, u.object, strlen(u.object) };
        if (u.id_size)
                tmpl[nt++] = (CK_ATTRIBUTE) { CKA_ID, u.id, u.id_size };
        rv = t->module->C_FindObjectsInit(t->session, tmpl, nt);
        if (rv == CKR_OK) {
                rv = t->module->C_FindObjects(t->session, objs, ELEMENTSOF(objs), &nfound);
                (void) t->module->C_FindObjectsFinal(t->session);
        }
        if (rv != CKR_OK)
                return store_error(s, rv_errno(rv, -EHOSTDOWN), NULL, "token '%s': cannot search for key '%s': %s (0x%lx)", u.token,
                                   u.object, rv_name(rv), (unsigned long) rv);
        if (nfound == 0)
                return store_error(s, -ENOKEY, NULL, "token '%s' has no AES key '%s' (never created, or deleted: withdrawn)", u.token,
                                   u.object);
        if (nfound > 1)
                return store_error(s, -ENOTUNIQ, NULL, "token '%s' has more than one AES key '%s'; add id= to the URI",
                                   u.token, u.object);
        t->key = objs[0];
        return 0;
}

/* AES-256-GCM in the token, AAD = the root key's AD, so a sealed key only opens this store's
 * protector of this name. */
static int gcm_params(Store *s, const Protector *p, uint8_t *iv, uint8_t ad[static PROTECTOR_ROOT_AD_MAX],
                      CK_GCM_PARAMS *ret) {
        size_t n;
        int r;

        r = protector_root_ad(s, p, ad, &n);
        if (r < 0)
                return r;
        *ret = (CK_GCM_PARAMS) {
                .pIv = iv,
                .ulIvLen = PROTECTOR_PKCS11_IV_BYTES,
                .ulIvBits = PROTECTOR_PKCS11_IV_BYTES * 8,
                .pAAD = ad,
                .ulAADLen = n,
                .ulTagBits = CRYPT_TAG_BYTES * 8,
        };
        return 0;
}

static int token_decrypt(Store *s, const Protector *p, Token *t, Secret **ret_key) {
        _cleanup_secret_ Secret *buf = NULL;
        uint8_t ad[PROTECTOR_ROOT_AD_MAX], iv[PROTECTOR_PKCS11_IV_BYTES];
        const uint8_t *sealed = p->u.pkcs11.sealed_key;
        CK_GCM_PARAMS gcm;
        CK_MECHANISM mech = { CKM_AES_GCM, &gcm, sizeof(gcm) };
        CK_ULONG n;
        CK_RV rv;
        int r;

        memcpy(iv, sealed, sizeof(iv));
        r = gcm_params(s, p, iv, ad, &gcm);
        if (r < 0)
                return r;
        r = secret_new(PROTECTOR_PKCS11_SEALED_BYTES, &buf);
        if (r < 0)
                return r;
        n = buf->size;
        rv = t->module->C_DecryptInit(t->session, &mech, t->key);
        if (rv == CKR_OK)
                rv = t->module->C_Decrypt(t->session, (CK_BYTE_PTR) sealed + sizeof(iv),
                                          PROTECTOR_PKCS11_SEALED_BYTES - sizeof(iv), buf->data, &n);
        if (rv != CKR_OK)
                return store_error(s, rv_errno(rv, -ENOKEY), NULL, "the token's key does not open this protector: %s (0x%lx)",
                                   rv == CKR_FUNCTION_FAILED ? "authentication failed (the key was replaced?)" : rv_name(rv),
                                   (unsigned long) rv);
        if (n != CRYPT_KEY_BYTES)
                return store_error(s, -ENOKEY, NULL, "the token returned %lu bytes, not %u", (unsigned long) n,
                                   CRYPT_KEY_BYTES);
        buf->size = CRYPT_KEY_BYTES;
        *ret_key = TAKE_PTR(buf);
        return 0;
}

static int key_is_sealed_in_token(Token *t) {
        CK_BBOOL sensitive = CK_FALSE, extractable = CK_TRUE;
        CK_ATTRIBUTE a[] = {
                { CKA_SENSITIVE, &sensitive, sizeof(sensitive) },
                { CKA_EXTRACTABLE, &extractable, sizeof(extractable) },
        };

        if (t->module->C_GetAttributeValue(t->session, t->key, a, ELEMENTSOF(a)) != CKR_OK)
                return 0;
        return sensitive == CK_TRUE && extractable == CK_FALSE;
}

static int pkcs11_seal(Store *s, Protector *p, const Secret *root, const Secret *credential) {
        _cleanup_secret_ Secret *key = NULL, *check = NULL;
        uint8_t ad[PROTECTOR_ROOT_AD_MAX], *sealed = p->u.pkcs11.sealed_key;
        Token t = {};
        CK_GCM_PARAMS gcm;
        CK_MECHANISM mech = { CKM_AES_GCM, &gcm, sizeof(gcm) };
        CK_ULONG n = PROTECTOR_PKCS11_SEALED_BYTES - PROTECTOR_PKCS11_IV_BYTES;
        CK_RV rv;
        int r;

        r = token_open(s, p, &t);
        if (r < 0)
                goto finish;
        /* A customer key that can be read out of the token is not one: refuse it. */
        if (!key_is_sealed_in_token(&t)) {
                r = store_error(s, -EINVAL, NULL,
                                "the token's key must be CKA_SENSITIVE=true and CKA_EXTRACTABLE=false (it could leave the token)");
                goto finish;
        }
        r = crypt_keygen(&key);
        if (r < 0)
                goto finish;
        /* A random 96-bit IV per protector: each token key seals a handful of protector keys. */
        crypt_random(sealed, PROTECTOR_PKCS11_IV_BYTES);
        r = gcm_params(s, p, sealed, ad, &gcm);
        if (r < 0)
                goto finish;
        rv = t.module->C_EncryptInit(t.session, &mech, t.key);
        if (rv == CKR_OK)
                rv = t.module->C_Encrypt(t.session, key->data, key->size, sealed + PROTECTOR_PKCS11_IV_BYTES, &n);
        if (rv != CKR_OK || n != CRYPT_KEY_BYTES + CRYPT_TAG_BYTES) {
                r = store_error(s, rv_errno(rv, -ENOKEY), NULL, "the token cannot seal with its key: %s (0x%lx)", rv_name(rv),
                                (unsigned long) rv);
                goto finish;
        }
        /* Read it back before trusting it with the root key. */
        r = token_decrypt(s, p, &t, &check);
        if (r >= 0 && secret_equal(check, key) != 1)
                r = store_error(s, -EIO, NULL, "the token's AES-GCM does not give back what it sealed");
        if (r >= 0)
                r = protector_wrap_root(s, p, key, root);
finish:
        token_close(&t);
        /* Adding keeps one answer for "this token cannot take the protector now" (store.h). */
        if (r == -EHOSTDOWN || r == -EACCES || r == -ENOTUNIQ)
                r = -ENOKEY;
        return r;
}

static int pkcs11_unseal(Store *s, const Protector *p, const Secret *credential, Secret **ret_root) {
        _cleanup_secret_ Secret *key = NULL;
        Token t = {};
        int r;

        r = token_open(s, p, &t);
        if (r >= 0)
                r = token_decrypt(s, p, &t, &key);
        token_close(&t);
        if (r < 0)
                return r;
        r = protector_unwrap_root(s, p, key, ret_root);
        if (r == -ENOKEY)
                return store_error(s, r, NULL, "the token's key does not unwrap the root key (protector file damaged)");
        return r;
}

/* unseal's errors: -EHOSTDOWN module or token unreachable, -EACCES PIN missing, unusable or
 * refused, -ENOKEY the key object is gone or does not open the protector (withdrawn), -ENOTUNIQ
 * two tokens or keys match the URI.
 * needs_credential false: the PIN is not the passphrase store_unlock() is given but comes from
 * the environment, so it is tried without a passphrase (after the key files), and says "needs the
 * token's PIN" without one. */
const ProtectorOps protector_pkcs11_ops = {
        .type = "pkcs11",
        .needs_credential = false,
        .uses_device = true,
        .fields = pkcs11_fields,
        .parse_field = pkcs11_parse_field,
        .format_fields = pkcs11_format_fields,
        .seal = pkcs11_seal,
        .unseal = pkcs11_unseal,
};
