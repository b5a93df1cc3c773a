/* SPDX-License-Identifier: MIT */
/* The "x25519" protector: the protector key sealed (crypto_box_seal) to one host's X25519 public
 * key. How an enrolled fleet host opens the fleet's root key (docs/FLEET.md): the protector file is
 * made by a host that holds the root key, travels through the directory, and only the host with
 * the matching private key (protectors/host.x25519, 0600, never leaves the host) opens it. */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "protector.h"

#define HOST_KEY_FILE "host.x25519"

enum { FIELD_PUBLIC_KEY, FIELD_SEALED_KEY };
static const char *const x25519_fields[] = { "host-public-key", "sealed-key", NULL };

_Static_assert(STORE_X25519_KEY_BYTES == crypto_box_PUBLICKEYBYTES, "public key");
_Static_assert(STORE_X25519_KEY_BYTES == crypto_box_SECRETKEYBYTES, "secret key");
_Static_assert(PROTECTOR_X25519_SEALED_BYTES == crypto_box_SEALBYTES + CRYPT_KEY_BYTES, "sealed key");

static int x25519_parse_field(Protector *p, size_t index, const char *value) {
        switch (index) {
        case FIELD_PUBLIC_KEY:
                return kv_parse_hex(value, p->u.x25519.public_key, sizeof(p->u.x25519.public_key));
        case FIELD_SEALED_KEY:
                return kv_parse_hex(value, p->u.x25519.sealed_key, sizeof(p->u.x25519.sealed_key));
        }
        return -EBADMSG;
}

static void x25519_format_fields(const Protector *p, KvBuf *b) {
        kvbuf_printf(b, "host-public-key=");
        kvbuf_put_hex(b, p->u.x25519.public_key, sizeof(p->u.x25519.public_key));
        kvbuf_printf(b, "\nsealed-key=");
        kvbuf_put_hex(b, p->u.x25519.sealed_key, sizeof(p->u.x25519.sealed_key));
        kvbuf_printf(b, "\n");
}

/* Sealing needs only the public key (p->u.x25519.public_key, from the template): the host that
 * enrols another never sees its private key. */
static int x25519_seal(Store *s, Protector *p, const Secret *root, const Secret *credential) {
        _cleanup_secret_ Secret *key = NULL;
        int r;

        r = crypt_keygen(&key);
        if (r < 0)
                return r;
        if (crypto_box_seal(p->u.x25519.sealed_key, key->data, key->size, p->u.x25519.public_key) != 0)
                return store_error(s, -EINVAL, NULL, "%s: not a usable X25519 public key", p->name);
        return protector_wrap_root(s, p, key, root);
}

/* This host's private key, straight into secret memory; -ENOENT if it has none yet. */
static int read_host_key(Store *s, Secret **ret) {
        _cleanup_secret_ Secret *key = NULL;
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        ssize_t n;
        int r;

        fd = openat(s->protectors_fd, HOST_KEY_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return negative_errno();
        if (fstat(fd, &st) < 0)
                return negative_errno();
        /* Like a key file: anything else is not ours to trust. */
        if (!S_ISREG(st.st_mode) || st.st_size != STORE_X25519_KEY_BYTES || st.st_uid != geteuid() ||
            (st.st_mode & 0077))
                return store_error(s, -EPERM, STORE_PROTECTORS_DIR "/" HOST_KEY_FILE,
                                   "not a %u-byte 0600 file of ours; refusing to use it", STORE_X25519_KEY_BYTES);
        r = secret_new(STORE_X25519_KEY_BYTES, &key);
        if (r < 0)
                return r;
        n = loop_read(fd, key->data, key->size);
        if (n != (ssize_t) key->size)
                return store_error(s, n < 0 ? (int) n : -EIO, STORE_PROTECTORS_DIR "/" HOST_KEY_FILE, "short read");
        *ret = TAKE_PTR(key);
        return 0;
}

int store_host_key(Store *s, bool create, uint8_t ret_public[static STORE_X25519_KEY_BYTES]) {
        _cleanup_secret_ Secret *key = NULL;
        int r;

        store_error_clear(s);
        r = read_host_key(s, &key);
        if (r == -ENOENT && create) {
                r = secret_new(STORE_X25519_KEY_BYTES, &key);
                if (r < 0)
                        return r;
                crypt_random(key->data, key->size);
                /* O_EXCL: two first starts racing keep one key; the loser reads the winner's. */
                r = write_file_exclusive(s->protectors_fd, HOST_KEY_FILE, key->data, key->size, 0600);
                if (r == -EEXIST)
                        return store_host_key(s, false, ret_public);
                if (r < 0)
                        return store_error(s, r, STORE_PROTECTORS_DIR "/" HOST_KEY_FILE, "cannot create: %s",
                                           strerror(-r));
        } else if (r == -ENOENT)
                return store_error(s, -ENOENT, STORE_PROTECTORS_DIR "/" HOST_KEY_FILE, "this host has no key pair yet");
        else if (r < 0)
                return store_finish(s, r);
        if (crypto_scalarmult_base(ret_public, key->data) != 0)
                return store_error(s, -EINVAL, STORE_PROTECTORS_DIR "/" HOST_KEY_FILE, "not a usable X25519 key");
        return 0;
}

static int x25519_unseal(Store *s, const Protector *p, const Secret *credential, Secret **ret_root) {
        _cleanup_secret_ Secret *sk = NULL, *key = NULL;
        uint8_t pk[STORE_X25519_KEY_BYTES];
        int r;

        r = read_host_key(s, &sk);
        if (r == -ENOENT)
                return store_error(s, -ENOKEY, NULL, "%s: this host has no key pair (protectors/" HOST_KEY_FILE ")",
                                   p->name);
        if (r < 0)
                return r == -EPERM ? -ENOKEY : r;
        if (crypto_scalarmult_base(pk, sk->data) != 0 ||
            sodium_memcmp(pk, p->u.x25519.public_key, sizeof(pk)) != 0)
                return store_error(s, -ENOKEY, NULL, "%s: sealed to another host's key", p->name);
        r = secret_new(CRYPT_KEY_BYTES, &key);
        if (r < 0)
                return r;
        if (crypto_box_seal_open(key->data, p->u.x25519.sealed_key, sizeof(p->u.x25519.sealed_key), pk, sk->data) != 0)
                return store_error(s, -ENOKEY, NULL, "%s: the sealed key does not open (damaged or replaced)", p->name);
        r = protector_unwrap_root(s, p, key, ret_root);
        if (r == -ENOKEY)
                return store_error(s, r, NULL, "%s: does not unwrap the root key (made for another store?)", p->name);
        return r;
}

const ProtectorOps protector_x25519_ops = {
        .type = "x25519",
        .needs_credential = false,
        .fields = x25519_fields,
        .parse_field = x25519_parse_field,
        .format_fields = x25519_format_fields,
        .seal = x25519_seal,
        .unseal = x25519_unseal,
};

int store_protector_add_x25519(Store *s, const char *name, const uint8_t public_key[static STORE_X25519_KEY_BYTES]) {
        _cleanup_close_ int lock_fd = -EBADF;
        Protector tmpl = {};
        int r;

        store_error_clear(s);
        if (!s->root_key)
                return store_error(s, -ENOKEY, NULL, "the store is locked; unlock it before adding a protector");
        memcpy(tmpl.u.x25519.public_key, public_key, STORE_X25519_KEY_BYTES);
        r = store_lock(s, &lock_fd);
        if (r >= 0)
                r = protector_add_locked(s, &protector_x25519_ops, name, NULL, &tmpl);
        return store_finish(s, r);
}

int store_protector_seal_for_host(Store *s, const char *name, const uint8_t public_key[static STORE_X25519_KEY_BYTES],
                                  char **ret_text, size_t *ret_size) {
        Protector p = { .ops = &protector_x25519_ops };
        int r;

        store_error_clear(s);
        if (!store_protector_name_is_valid(name))
                return store_error(s, -EINVAL, NULL, "'%s' is not a valid protector name", name);
        if (!s->root_key)
                return store_error(s, -ENOKEY, NULL, "the store is locked; only a host that holds the root key seals it");
        strcpy(p.name, name);
        memcpy(p.u.x25519.public_key, public_key, STORE_X25519_KEY_BYTES);
        r = x25519_seal(s, &p, s->root_key, NULL);
        if (r < 0)
                return store_finish(s, r);
        return protector_file_format(&p, ret_text, ret_size);
}

int store_protector_install(Store *s, const char *name, const char *text, size_t size) {
        _cleanup_close_ int lock_fd = -EBADF;
        uint8_t ours[STORE_X25519_KEY_BYTES];
        char fn[STORE_PROTECTOR_NAME_MAX + 16];
        KvError e = {};
        Protector p;
        int r;

        store_error_clear(s);
        if (!store_protector_name_is_valid(name))
                return store_error(s, -EINVAL, NULL, "'%s' is not a valid protector name", name);
        if (protector_file_parse(text, size, name, &p, &e) < 0)
                return store_error(s, -EINVAL, NULL, "protector %s from the directory: %s", name, e.msg);
        if (p.ops != &protector_x25519_ops)
                return store_error(s, -EINVAL, NULL, "protector %s from the directory is of type %s, not x25519", name,
                                   p.ops->type);
        r = store_host_key(s, false, ours);
        if (r < 0)
                return r;
        /* Only what this host can open: anything else would be a way in for someone else's key. */
        if (sodium_memcmp(ours, p.u.x25519.public_key, sizeof(ours)) != 0)
                return store_error(s, -EINVAL, NULL, "protector %s is sealed to another host's key", name);
        r = store_lock(s, &lock_fd);
        if (r < 0)
                return store_finish(s, r);
        (void) snprintf(fn, sizeof(fn), "%s" STORE_PROTECTOR_SUFFIX, name);
        r = write_file_atomic(s->protectors_fd, fn, text, size, 0600);
        if (r < 0)
                return store_error(s, r, STORE_PROTECTORS_DIR, "cannot write %s: %s", fn, strerror(-r));
        return 0;
}
