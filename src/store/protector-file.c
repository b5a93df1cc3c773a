/* SPDX-License-Identifier: MIT */
/* The "file" protector: a random 32-byte key in protectors/NAME.key (0600) wraps the root key. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "protector.h"

static const char *const file_fields[] = { NULL };

static int file_parse_field(Protector *p, size_t index, const char *value) {
        return -EBADMSG;
}

static void file_format_fields(const Protector *p, KvBuf *b) {
}

static int file_seal(Store *s, Protector *p, const Secret *root, const Secret *credential) {
        _cleanup_secret_ Secret *key = NULL;
        char fn[STORE_PROTECTOR_NAME_MAX + 16];
        int r;

        r = crypt_keygen(&key);
        if (r < 0)
                return r;
        snprintf(fn, sizeof(fn), "%s" STORE_KEYFILE_SUFFIX, p->name);
        /* O_EXCL: never overwrite a key file, which may be the only copy of a working protector. */
        r = write_file_exclusive(s->protectors_fd, fn, key->data, key->size, 0600);
        if (r < 0)
                return store_error(s, r, STORE_PROTECTORS_DIR, "cannot create %s: %s", fn, strerror(-r));
        r = protector_wrap_root(s, p, key, root);
        if (r < 0)
                (void) unlink_durable(s->protectors_fd, fn);
        return r;
}

/* Read the key straight into secret memory; read_file_full() would use the plain heap. */
static int read_key_file(Store *s, const char *fn, const char *rel, Secret **ret) {
        _cleanup_secret_ Secret *key = NULL;
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        ssize_t n;
        int r;

        fd = openat(s->protectors_fd, fn, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                r = negative_errno();
                if (r == -ENOENT)
                        return store_error(s, -ENOKEY, rel, "key file missing");
                return store_error(s, -ENOKEY, rel, "cannot open: %s", strerror(-r));
        }
        if (fstat(fd, &st) < 0)
                return store_error(s, negative_errno(), rel, "cannot stat: %s", strerror(errno));
        if (!S_ISREG(st.st_mode) || st.st_size != CRYPT_KEY_BYTES)
                return store_error(s, -ENOKEY, rel, "not a %u-byte regular file", CRYPT_KEY_BYTES);
        if (st.st_uid != geteuid() || (st.st_mode & 0077))
                return store_error(s, -ENOKEY, rel, "owner or mode %04o lets others read it; refusing to trust it",
                                   (unsigned) (st.st_mode & 07777));
        r = secret_new(CRYPT_KEY_BYTES, &key);
        if (r < 0)
                return r;
        n = loop_read(fd, key->data, key->size);
        if (n < 0)
                return store_error(s, (int) n, rel, "cannot read: %s", strerror((int) -n));
        if ((size_t) n != key->size)
                return store_error(s, -ENOKEY, rel, "short read");
        *ret = TAKE_PTR(key);
        return 0;
}

static int file_unseal(Store *s, const Protector *p, const Secret *credential, Secret **ret_root) {
        _cleanup_secret_ Secret *key = NULL;
        char fn[STORE_PROTECTOR_NAME_MAX + 16], rel[sizeof(fn) + 16];
        int r;

        snprintf(fn, sizeof(fn), "%s" STORE_KEYFILE_SUFFIX, p->name);
        snprintf(rel, sizeof(rel), STORE_PROTECTORS_DIR "/%s", fn);
        r = read_key_file(s, fn, rel, &key);
        if (r < 0)
                return r;
        r = protector_unwrap_root(s, p, key, ret_root);
        if (r == -ENOKEY)
                return store_error(s, r, rel, "does not unwrap the root key (replaced or damaged)");
        return r;
}

const ProtectorOps protector_file_ops = {
        .type = "file",
        .needs_credential = false,
        .fields = file_fields,
        .parse_field = file_parse_field,
        .format_fields = file_format_fields,
        .seal = file_seal,
        .unseal = file_unseal,
};
