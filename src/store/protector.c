/* SPDX-License-Identifier: MIT */
/* The protector framework: protector files, the root key's AD, add/remove/list, and unlocking. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "protector.h"

#define ROOT_LABEL "dkm root v1"
#define PROTECTOR_FILE_MAX 65536U

static const ProtectorOps *const protector_types[] = {
        &protector_file_ops,
        &protector_passphrase_ops,
        &protector_pkcs11_ops,
};

bool store_protector_name_is_valid(const char *name) {
        return store_group_name_is_valid(name);
}

#define ROOT_AD_MAX PROTECTOR_ROOT_AD_MAX

/* label 0 id type 0 name: the NULs keep (type, name) pairs unambiguous. */
int protector_root_ad(const Store *s, const Protector *p, uint8_t ad[static ROOT_AD_MAX], size_t *ret_size) {
        size_t n = 0, l;

        if (sizeof(ROOT_LABEL) + sizeof(s->id) + strlen(p->ops->type) + 1 + strlen(p->name) > ROOT_AD_MAX)
                return -EINVAL;
        memcpy(ad, ROOT_LABEL, sizeof(ROOT_LABEL));
        n += sizeof(ROOT_LABEL);
        memcpy(ad + n, s->id, sizeof(s->id));
        n += sizeof(s->id);
        l = strlen(p->ops->type) + 1;
        memcpy(ad + n, p->ops->type, l);
        n += l;
        l = strlen(p->name);
        memcpy(ad + n, p->name, l);
        n += l;
        *ret_size = n;
        return 0;
}

int protector_wrap_root(Store *s, Protector *p, const Secret *key, const Secret *root) {
        uint8_t ad[ROOT_AD_MAX];
        size_t n;
        int r;

        r = protector_root_ad(s, p, ad, &n);
        if (r < 0)
                return r;
        return crypt_wrap_key(key, root, ad, n, p->wrapped_root);
}

int protector_unwrap_root(Store *s, const Protector *p, const Secret *key, Secret **ret_root) {
        uint8_t ad[ROOT_AD_MAX];
        size_t n;
        int r;

        r = protector_root_ad(s, p, ad, &n);
        if (r < 0)
                return r;
        r = crypt_unwrap_key(key, p->wrapped_root, ad, n, ret_root);
        return r == -EBADMSG ? -ENOKEY : r;
}

/* format=1, name=, type=, the type's fields, wrapped-root-key=, checksum=; in that order. */
int protector_file_parse(const char *data, size_t size, const char *expected_name, Protector *ret, KvError *e) {
        Protector p = {};
        KvReader rd = {};
        size_t body, field = 0;
        unsigned step = 0; /* 0 format, 1 name, 2 type, 3 type fields then wrapped-root-key, 4 done */
        uint64_t u;
        int r;

        r = kvfile_verify(data, size, &body, e);
        if (r < 0)
                return r;
        r = kvreader_init(&rd, data, body);
        if (r < 0)
                return r;
        while ((r = kvreader_next(&rd, e)) > 0) {
                static const char *const fixed[] = { "format", "name", "type" };
                const char *want = step < 3 ? fixed[step] : step > 3 ? NULL : p.ops->fields[field] ?: "wrapped-root-key";

                if (!want) {
                        r = kverror_set(e, rd.line, "unexpected line after wrapped-root-key");
                        break;
                }
                if (strcmp(rd.key, want) != 0) {
                        r = kverror_set(e, rd.line, "expected '%s', found '%.64s'", want, rd.key);
                        break;
                }
                if (step == 0) {
                        if (kv_parse_u64(rd.value, UINT32_MAX, &u) < 0 || u == 0)
                                r = kverror_set(e, rd.line, "malformed format version");
                        else if (u > PROTECTOR_FILE_FORMAT) {
                                (void) kverror_set(e, rd.line, "written by a newer dkm (protector format %llu)",
                                                   (unsigned long long) u);
                                r = -EPROTONOSUPPORT;
                        }
                        step++;
                } else if (step == 1) {
                        if (!store_protector_name_is_valid(rd.value) ||
                            (expected_name && strcmp(rd.value, expected_name) != 0))
                                r = kverror_set(e, rd.line, "name does not match the file name");
                        else
                                strcpy(p.name, rd.value);
                        step++;
                } else if (step == 2) {
                        for (size_t i = 0; i < ELEMENTSOF(protector_types); i++)
                                if (strcmp(rd.value, protector_types[i]->type) == 0)
                                        p.ops = protector_types[i];
                        if (!p.ops)
                                r = kverror_set(e, rd.line, "unknown protector type '%.32s'", rd.value);
                        step++;
                } else if (p.ops->fields[field]) {
                        r = p.ops->parse_field(&p, field, rd.value);
                        if (r == -EBADMSG)
                                r = kverror_set(e, rd.line, "malformed %s", p.ops->fields[field]);
                        field++;
                } else {
                        if (kv_parse_hex(rd.value, p.wrapped_root, sizeof(p.wrapped_root)) < 0)
                                r = kverror_set(e, rd.line, "wrapped-root-key is not %u hex bytes",
                                                CRYPT_WRAPPED_KEY_BYTES);
                        step++;
                }
                if (r < 0)
                        break;
        }
        kvreader_done(&rd);
        if (r < 0)
                return r;
        if (step < 4)
                return kverror_set(e, 0, "incomplete protector file");
        *ret = p;
        return 0;
}

int protector_file_format(const Protector *p, char **ret, size_t *ret_size) {
        KvBuf b = {};
        int r;

        kvbuf_printf(&b, "format=%d\nname=%s\ntype=%s\n", PROTECTOR_FILE_FORMAT, p->name, p->ops->type);
        p->ops->format_fields(p, &b);
        kvbuf_printf(&b, "wrapped-root-key=");
        kvbuf_put_hex(&b, p->wrapped_root, sizeof(p->wrapped_root));
        kvbuf_printf(&b, "\n");
        r = kvbuf_finish(&b, ret, ret_size);
        kvbuf_done(&b);
        return r;
}

static void file_names(const char *name, char fn_protector[static STORE_PROTECTOR_NAME_MAX + 16],
                       char fn_key[static STORE_PROTECTOR_NAME_MAX + 16]) {
        snprintf(fn_protector, STORE_PROTECTOR_NAME_MAX + 16, "%s" STORE_PROTECTOR_SUFFIX, name);
        snprintf(fn_key, STORE_PROTECTOR_NAME_MAX + 16, "%s" STORE_KEYFILE_SUFFIX, name);
}

static int protector_load(Store *s, const char *name, Protector *ret) {
        _cleanup_free_ char *data = NULL;
        char fn[STORE_PROTECTOR_NAME_MAX + 16], fk[STORE_PROTECTOR_NAME_MAX + 16], rel[sizeof(fn) + 16];
        KvError e = {};
        size_t size;
        int r;

        file_names(name, fn, fk);
        snprintf(rel, sizeof(rel), STORE_PROTECTORS_DIR "/%s", fn);
        r = read_file_full(s->protectors_fd, fn, PROTECTOR_FILE_MAX, &data, &size);
        if (r == -ENOENT)
                return store_error(s, r, rel, "no such protector");
        if (r == -ELOOP || r == -EBADFD)
                return store_error(s, r, rel, "not a regular file; refusing to read it");
        if (r == -EFBIG)
                return store_error(s, -EBADMSG, rel, "too large");
        if (r < 0)
                return store_error(s, r, rel, "cannot read: %s", strerror(-r));
        r = protector_file_parse(data, size, name, ret, &e);
        if (r == -EBADMSG || r == -EPROTONOSUPPORT)
                return store_error_parse(s, r, rel, &e);
        return r;
}

int protector_add_locked(Store *s, const ProtectorOps *ops, const char *name, const Secret *credential,
                         const Protector *tmpl) {
        _cleanup_free_ char *data = NULL;
        char fn[STORE_PROTECTOR_NAME_MAX + 16], fk[STORE_PROTECTOR_NAME_MAX + 16];
        Protector p = { .ops = ops };
        struct stat st;
        size_t size;
        int r;

        if (!store_protector_name_is_valid(name))
                return store_error(s, -EINVAL, NULL, "'%s' is not a valid protector name", name);
        if (!s->root_key)
                return store_error(s, -ENOKEY, NULL, "the store is locked; unlock it before adding a protector");
        file_names(name, fn, fk);
        if (fstatat(s->protectors_fd, fn, &st, AT_SYMLINK_NOFOLLOW) == 0)
                return store_error(s, -EEXIST, STORE_PROTECTORS_DIR, "protector '%s' already exists", name);
        /* A key file without its protector file is a crashed add's: unusable, safe to replace. */
        (void) unlinkat(s->protectors_fd, fk, 0);

        if (tmpl)
                p.u = tmpl->u;
        strcpy(p.name, name);
        r = ops->seal(s, &p, s->root_key, credential);
        if (r < 0)
                return r;
        r = protector_file_format(&p, &data, &size);
        if (r >= 0)
                r = write_file_atomic(s->protectors_fd, fn, data, size, 0600);
        if (r < 0) {
                (void) unlink_durable(s->protectors_fd, fk);
                return store_error(s, r, STORE_PROTECTORS_DIR, "cannot write %s: %s", fn, strerror(-r));
        }
        return 0;
}

static int protector_add(Store *s, const ProtectorOps *ops, const char *name, const Secret *credential,
                         const Protector *tmpl) {
        _cleanup_close_ int lock_fd = -EBADF;
        int r;

        store_error_clear(s);
        if (!s->root_key)
                return store_error(s, -ENOKEY, NULL, "the store is locked; unlock it before adding a protector");
        r = store_lock(s, &lock_fd);
        if (r >= 0)
                r = protector_add_locked(s, ops, name, credential, tmpl);
        return store_finish(s, r);
}

int store_protector_add_file(Store *s, const char *name) {
        return protector_add(s, &protector_file_ops, name, NULL, NULL);
}

int store_protector_add_passphrase(Store *s, const char *name, const Secret *passphrase) {
        if (!passphrase || passphrase->size == 0) {
                store_error_clear(s);
                return store_error(s, -EINVAL, NULL, "an empty passphrase protects nothing");
        }
        return protector_add(s, &protector_passphrase_ops, name, passphrase, NULL);
}

int store_protector_add_pkcs11(Store *s, const char *name, const char *uri) {
        Protector tmpl = {};
        const char *why = NULL;
        Pkcs11Uri u;

        store_error_clear(s);
        if (!uri || pkcs11_uri_parse(uri, &u, &why) < 0)
                return store_error(s, -EINVAL, NULL, "bad PKCS#11 URI: %s", why ?: "missing");
        if (!u.token[0] || !u.object[0])
                return store_error(s, -EINVAL, NULL, "the PKCS#11 URI must name the token and the key object by label (token=...;object=...)");
        snprintf(tmpl.u.pkcs11.uri, sizeof(tmpl.u.pkcs11.uri), "%s", uri);
        return protector_add(s, &protector_pkcs11_ops, name, NULL, &tmpl);
}

static int protector_remove_locked(Store *s, const char *name) {
        _cleanup_strv_free_ char **names = NULL;
        char fn[STORE_PROTECTOR_NAME_MAX + 16], fk[STORE_PROTECTOR_NAME_MAX + 16];
        size_t others = 0;
        struct stat st;
        int r;

        file_names(name, fn, fk);
        if (fstatat(s->protectors_fd, fn, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return store_error(s, errno == ENOENT ? -ENOENT : negative_errno(), STORE_PROTECTORS_DIR,
                                   "no protector '%s'", name);
        r = store_list_dir(s->protectors_fd, STORE_PROTECTOR_SUFFIX, &names);
        if (r < 0)
                return r;
        /* Only a protector that parses counts: removing the last readable one would brick the store. */
        for (char **n = names; *n; n++) {
                Protector p;
                if (strcmp(*n, name) != 0 && protector_load(s, *n, &p) >= 0)
                        others++;
        }
        store_error_clear(s);
        if (others == 0)
                return store_error(s, -EBUSY, STORE_PROTECTORS_DIR,
                                   "'%s' is the last usable protector; add another before removing it", name);

        r = unlink_durable(s->protectors_fd, fn);
        if (r < 0)
                return store_error(s, r, STORE_PROTECTORS_DIR, "cannot remove %s: %s", fn, strerror(-r));
        r = unlink_durable(s->protectors_fd, fk);
        if (r < 0)
                return store_error(s, r, STORE_PROTECTORS_DIR, "cannot remove %s: %s", fk, strerror(-r));
        return 0;
}

int store_protector_remove(Store *s, const char *name) {
        _cleanup_close_ int lock_fd = -EBADF;
        int r;

        store_error_clear(s);
        if (!store_protector_name_is_valid(name))
                return store_error(s, -EINVAL, NULL, "'%s' is not a valid protector name", name);
        r = store_lock(s, &lock_fd);
        if (r >= 0)
                r = protector_remove_locked(s, name);
        return store_finish(s, r);
}

int store_protector_list(Store *s, StoreProtectorInfo **ret, size_t *ret_n) {
        _cleanup_strv_free_ char **names = NULL;
        _cleanup_free_ StoreProtectorInfo *l = NULL;
        size_t n = 0;
        int r;

        store_error_clear(s);
        r = store_list_dir(s->protectors_fd, STORE_PROTECTOR_SUFFIX, &names);
        if (r < 0)
                return store_finish(s, store_error(s, r, STORE_PROTECTORS_DIR, "cannot list: %s", strerror(-r)));
        while (names[n])
                n++;
        l = calloc(MAX(n, (size_t) 1), sizeof(*l));
        if (!l)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                Protector p;

                snprintf(l[i].name, sizeof(l[i].name), "%s", names[i]);
                snprintf(l[i].type, sizeof(l[i].type), "%s",
                         protector_load(s, names[i], &p) >= 0 ? p.ops->type : "invalid");
        }
        store_error_clear(s);
        *ret = TAKE_PTR(l);
        *ret_n = n;
        return 0;
}

/* Collect "name: why" for the final -ENOKEY message, without the store path each reason repeats. */
static void note_failure(Store *s, char *why, size_t size, const char *name) {
        size_t used = strlen(why), pl = strlen(s->path);
        const char *msg = s->error;

        if (strncmp(msg, s->path, pl) == 0 && msg[pl] == '/')
                msg += pl + 1;
        else if (strncmp(msg, s->path, pl) == 0 && msg[pl] == ':' && msg[pl + 1] == ' ')
                msg += pl + 2;
        snprintf(why + used, size - used, "%s%s: %s", used ? "; " : "", name, msg[0] ? msg : "failed");
        store_error_clear(s);
}

int store_unlock(Store *s, const Secret *passphrase) {
        _cleanup_strv_free_ char **names = NULL;
        char why[STORE_ERROR_MAX / 2] = "";
        int r;

        store_error_clear(s);
        if (s->root_key)
                return 0;
        r = store_list_dir(s->protectors_fd, STORE_PROTECTOR_SUFFIX, &names);
        if (r < 0)
                return store_finish(s, store_error(s, r, STORE_PROTECTORS_DIR, "cannot list: %s", strerror(-r)));

        /* Cheapest first: key files cost nothing to try, devices a round trip (and a PIN try),
         * passphrases an Argon2id run. */
        for (int pass = 0; pass < 3; pass++) {
                if (pass == 2 && !passphrase)
                        break;
                for (char **n = names; *n; n++) {
                        Secret *root = NULL;
                        Protector p;

                        r = protector_load(s, *n, &p);
                        if (r < 0) {
                                if (pass == 0)
                                        note_failure(s, why, sizeof(why), *n);
                                store_error_clear(s);
                                continue;
                        }
                        if (pass != (p.ops->needs_credential ? 2 : p.ops->uses_device ? 1 : 0))
                                continue;
                        /* Any failure, even -ENOMEM from a greedy Argon2 setting, is this protector's:
                         * the next one may still work. */
                        r = p.ops->unseal(s, &p, passphrase, &root);
                        if (r < 0) {
                                note_failure(s, why, sizeof(why), *n);
                                continue;
                        }
                        s->root_key = root;
                        return 0;
                }
        }
        if (!passphrase && !why[0])
                return store_error(s, -ENOKEY, NULL, "no protector unlocks the store without a passphrase");
        return store_error(s, -ENOKEY, NULL, "no protector unlocked the root key (%s)", why[0] ? why : "none present");
}
