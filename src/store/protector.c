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
        &protector_tpm2_ops,
        &protector_x25519_ops,
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
        size_t field = 0;
        unsigned step = 0; /* 0 format, 1 name, 2 type, 3 type fields then wrapped-root-key, 4 done */
        uint64_t u;
        int r;

        r = kvreader_init_verified(&rd, data, size, e);
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
                r = store_refuse_if_purged(s);
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

int store_protector_add_tpm2(Store *s, const char *name, const uint32_t *pcrs, size_t n_pcrs) {
        Protector tmpl = {};

        store_error_clear(s);
        if (n_pcrs > 0 && !pcrs)
                return store_error(s, -EINVAL, NULL, "no PCR list");
        if (n_pcrs > PROTECTOR_TPM2_PCRS)
                return store_error(s, -EINVAL, NULL, "%zu PCRs listed; the sha256 bank has %u", n_pcrs,
                                   PROTECTOR_TPM2_PCRS);
        for (size_t i = 0; i < n_pcrs; i++) {
                if (pcrs[i] >= PROTECTOR_TPM2_PCRS)
                        return store_error(s, -EINVAL, NULL, "PCR %u does not exist (PCRs are 0-%u)", (unsigned) pcrs[i],
                                           PROTECTOR_TPM2_PCRS - 1);
                if (tmpl.u.tpm2.pcr_mask & (UINT32_C(1) << pcrs[i]))
                        return store_error(s, -EINVAL, NULL, "PCR %u is listed twice", (unsigned) pcrs[i]);
                tmpl.u.tpm2.pcr_mask |= UINT32_C(1) << pcrs[i];
        }
        return protector_add(s, &protector_tpm2_ops, name, NULL, &tmpl);
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

/* The last error without the store path it starts with: a reason per protector, in a list. */
static const char *error_in_store(const Store *s) {
        size_t pl = strlen(s->path);
        const char *msg = s->error;

        if (strncmp(msg, s->path, pl) == 0 && msg[pl] == '/')
                msg += pl + 1;
        else if (strncmp(msg, s->path, pl) == 0 && msg[pl] == ':' && msg[pl + 1] == ' ')
                msg += pl + 2;
        return msg[0] ? msg : "failed";
}

/* Collect "name: why" for the final -ENOKEY message, without the store path each reason repeats. */
static void note_failure(Store *s, char *why, size_t size, const char *name) {
        size_t used = strlen(why);

        snprintf(why + used, size - used, "%s%s: %s", used ? "; " : "", name, error_in_store(s));
        store_error_clear(s);
}

/* The order protectors are tried in, cheapest first: key files cost nothing, devices a round
 * trip (and a PIN try), passphrases an Argon2id run. */
enum { PASS_FILE, PASS_DEVICE, PASS_CREDENTIAL, _PASS_MAX };

static unsigned protector_pass(const Protector *p) {
        return p->ops->needs_credential ? PASS_CREDENTIAL : p->ops->uses_device ? PASS_DEVICE : PASS_FILE;
}

/* The unseal ops' errors, as store.h defines them. */
static StoreProtectorHealth health_from_error(int r) {
        switch (r) {
        case -ENOKEY:
                return STORE_PROTECTOR_WITHDRAWN;
        case -EACCES:
                return STORE_PROTECTOR_REFUSED;
        case -EKEYREJECTED:
                return STORE_PROTECTOR_PCR_MISMATCH;
        default:
                /* -EHOSTDOWN, and anything unforeseen (-ENOMEM, -EIO): it may pass. */
                return STORE_PROTECTOR_UNAVAILABLE;
        }
}

/* Try one protector now, for store_unlock() and store_protector_check() alike. OK: on a locked
 * store *ret_root is the root key it opened; on an unlocked one it opened the root key held (one
 * that opens another key is withdrawn: it no longer opens this store). Otherwise s->error says why. */
static StoreProtectorHealth protector_try(Store *s, const Protector *p, const Secret *credential, Secret **ret_root) {
        _cleanup_secret_ Secret *root = NULL;
        int r;

        /* Any failure, even -ENOMEM from a greedy Argon2 setting, is this protector's: the next one
         * may still work. */
        r = p->ops->unseal(s, p, credential, &root);
        if (r < 0)
                return health_from_error(r);
        if (s->root_key && secret_equal(root, s->root_key) != 1) {
                (void) store_error(s, -ENOKEY, NULL, "opens another root key than the one this store holds");
                return STORE_PROTECTOR_WITHDRAWN;
        }
        if (ret_root)
                *ret_root = TAKE_PTR(root);
        return STORE_PROTECTOR_OK;
}

/* While a purge waits (store_suspend()), only dkmd, which holds the root key already, has it:
 * no upcall or dkm-store brings a key back into the kernel meanwhile. */
static int refuse_if_suspended(Store *s) {
        _cleanup_free_ char *why = NULL;
        int r;

        r = store_suspended(s, &why);
        if (r < 0)
                return store_finish(s, r);
        if (r > 0)
                return store_error(s, -ENOKEY, NULL, "suspended: %s (dkmctl purge cancel resumes it)", why);
        return 0;
}

int store_unlock(Store *s, const Secret *passphrase) {
        _cleanup_strv_free_ char **names = NULL;
        char why[STORE_ERROR_MAX / 2] = "";
        int r;

        store_error_clear(s);
        /* Even a Store that holds the root key lets go of it: a purge destroyed what it opens. */
        r = store_refuse_if_purged(s);
        if (r < 0)
                return r;
        if (s->root_key)
                return 0;
        r = refuse_if_suspended(s);
        if (r < 0)
                return r;
        r = store_list_dir(s->protectors_fd, STORE_PROTECTOR_SUFFIX, &names);
        if (r < 0)
                return store_finish(s, store_error(s, r, STORE_PROTECTORS_DIR, "cannot list: %s", strerror(-r)));

        for (unsigned pass = 0; pass < _PASS_MAX; pass++) {
                if (pass == PASS_CREDENTIAL && !passphrase)
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
                        if (pass != protector_pass(&p))
                                continue;
                        if (protector_try(s, &p, passphrase, &root) != STORE_PROTECTOR_OK) {
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

static const char *const health_names[_STORE_PROTECTOR_HEALTH_MAX] = {
        [STORE_PROTECTOR_OK] = "ok",
        [STORE_PROTECTOR_UNAVAILABLE] = "unavailable",
        [STORE_PROTECTOR_REFUSED] = "pin-refused",
        [STORE_PROTECTOR_PCR_MISMATCH] = "pcr-mismatch",
        [STORE_PROTECTOR_WITHDRAWN] = "withdrawn",
        [STORE_PROTECTOR_UNTESTED] = "untested",
        [STORE_PROTECTOR_INVALID] = "invalid",
};

const char *store_protector_health_to_string(StoreProtectorHealth h) {
        if ((unsigned) h >= ELEMENTSOF(health_names))
                return NULL;
        return health_names[h];
}

static bool strv_contains(char *const *l, const char *s) {
        for (; l && *l; l++)
                if (strcmp(*l, s) == 0)
                        return true;
        return false;
}

static void status_set(StoreProtectorStatus *st, StoreProtectorHealth h, const char *detail) {
        st->health = h;
        snprintf(st->detail, sizeof(st->detail), "%s", h == STORE_PROTECTOR_OK ? "" : detail);
}

/* The check's first look at a protector: load it (into p) and say whether it is to be tried at all.
 * True when settled without trying (invalid, untested, skipped). */
static bool check_classify(Store *s, const char *name, char *const *skip, Protector *p, StoreProtectorStatus *st) {
        snprintf(st->name, sizeof(st->name), "%s", name);
        if (protector_load(s, name, p) < 0) {
                snprintf(st->type, sizeof(st->type), "invalid");
                status_set(st, STORE_PROTECTOR_INVALID, error_in_store(s));
                return true;
        }
        snprintf(st->type, sizeof(st->type), "%s", p->ops->type);
        if (p->ops->needs_credential) {
                status_set(st, STORE_PROTECTOR_UNTESTED, "needs a passphrase");
                return true;
        }
        /* The caller saw this PIN refused: another try could lock the token. */
        if (strv_contains(skip, name)) {
                status_set(st, STORE_PROTECTOR_REFUSED, "not tried again: the token refused the PIN before");
                return true;
        }
        return false;
}

/* Try p now; a locked store keeps the first root key that opens, if it may be unlocked. */
static void check_try(Store *s, const Protector *p, bool may_unlock, StoreProtectorStatus *st) {
        _cleanup_secret_ Secret *root = NULL;
        StoreProtectorHealth h;

        h = protector_try(s, p, NULL, s->root_key ? NULL : &root);
        status_set(st, h, error_in_store(s));
        if (h == STORE_PROTECTOR_OK && !s->root_key && may_unlock)
                s->root_key = TAKE_PTR(root);
}

int store_protector_check(Store *s, char *const *skip, StoreProtectorStatus **ret, size_t *ret_n) {
        _cleanup_strv_free_ char **names = NULL;
        _cleanup_free_ StoreProtectorStatus *l = NULL;
        _cleanup_free_ Protector *p = NULL;
        _cleanup_free_ bool *settled = NULL;
        char purged[sizeof(l->detail)] = "";
        bool may_unlock;
        size_t n = 0;
        int r;

        store_error_clear(s);
        /* Left by a purge cut short: what it would open is destroyed, and must not be opened. */
        if (store_refuse_if_purged(s) < 0)
                snprintf(purged, sizeof(purged), "%s", error_in_store(s));
        /* Suspended (or unknown whether): checked, but not unlocked, as store_unlock() would not. */
        may_unlock = store_suspended(s, NULL) == 0;
        store_error_clear(s);
        r = store_list_dir(s->protectors_fd, STORE_PROTECTOR_SUFFIX, &names);
        if (r < 0)
                return store_finish(s, store_error(s, r, STORE_PROTECTORS_DIR, "cannot list: %s", strerror(-r)));
        while (names[n])
                n++;
        l = calloc(MAX(n, (size_t) 1), sizeof(*l));
        p = calloc(MAX(n, (size_t) 1), sizeof(*p));
        settled = calloc(MAX(n, (size_t) 1), sizeof(*settled));
        if (!l || !p || !settled)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                settled[i] = check_classify(s, names[i], skip, &p[i], &l[i]);
                if (!settled[i] && purged[0]) {
                        status_set(&l[i], STORE_PROTECTOR_WITHDRAWN, purged);
                        settled[i] = true;
                }
                store_error_clear(s);
        }
        /* Key files before devices, as store_unlock() tries them: a locked store is opened by the
         * cheapest way in, and each device gets exactly one round trip. */
        for (unsigned pass = PASS_FILE; pass <= PASS_DEVICE; pass++)
                for (size_t i = 0; i < n; i++) {
                        if (settled[i] || protector_pass(&p[i]) != pass)
                                continue;
                        check_try(s, &p[i], may_unlock, &l[i]);
                        store_error_clear(s);
                }
        *ret = TAKE_PTR(l);
        *ret_n = n;
        return 0;
}

void store_forget_root_key(Store *s) {
        if (s)
                s->root_key = secret_free(s->root_key);
}
