/* SPDX-License-Identifier: MIT */
/* Break-glass grants: copies of a group's keys that one uid alone may read, ended by a kernel timeout. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <keyutils.h>

#include "fileio.h"
#include "keyring-internal.h"
#include "keyring.h"

/* Design (docs/KEYRING.md, "Grants"). The owner byte of a key is the only one that names a
 * single uid without a Unix group, so grant keys are owned by the grantee; gid 0 (the helper's
 * own group) keeps the helper able to revoke them although it is not their owner any more.
 * Everything is built in the grant keyring while that keyring sits in the private staging
 * keyring, with its final owner, mask and timeout, before it is linked where the grantee can
 * reach it. */

#define GRANTS_FILE_MAX (64U * 1024U)

_printf_(4, 5) static int gfail(Keyring *k, KeyringFailure failure, int r, const char *fmt, ...) {
        char message[256];
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(message, sizeof(message), fmt, ap);
        va_end(ap);
        return keyring_fail(k, failure, r, message);
}

static int kr_errno(long v) {
        return v < 0 ? negative_errno() : 0;
}

static bool kr_dead(int r) {
        return r == -ENOKEY || r == -EKEYREVOKED || r == -EKEYEXPIRED;
}

const char *keyring_grant_state_to_string(KeyringGrantState s) {
        switch (s) {
        case KEYRING_GRANT_LIVE:
                return "live";
        case KEYRING_GRANT_EXPIRED:
                return "expired";
        case KEYRING_GRANT_REVOKED:
                return "revoked";
        case KEYRING_GRANT_GONE:
                return "gone";
        }
        return NULL;
}

static int cmp_grant(const void *a, const void *b) {
        const KeyringGrant *x = a, *y = b;

        if (x->uid != y->uid)
                return x->uid < y->uid ? -1 : 1;
        return x->ring < y->ring ? -1 : x->ring > y->ring;
}

/* <group>.grants: "<uid> <serial> <expires>\n" lines. The helper writes it, root alone reads
 * it; a line that does not parse is dropped (it can only name a keyring we could not check). */
static int grants_read(Keyring *k, const char *group, KeyringGrant **ret, size_t *ret_n) {
        _cleanup_free_ char *text = NULL;
        _cleanup_free_ KeyringGrant *g = NULL;
        char name[KEYRING_FILE_NAME_MAX];
        size_t size, n = 0, cap = 0;
        int r;

        r = keyring_grants_file_name(group, name);
        if (r < 0)
                return gfail(k, KEYRING_FAILURE_INVALID, r, "invalid group name");
        r = read_file_full(k->runtime_fd, name, GRANTS_FILE_MAX, &text, &size);
        if (r == -ENOENT) {
                *ret = NULL;
                *ret_n = 0;
                return 0;
        }
        if (r < 0)
                return gfail(k, KEYRING_FAILURE_RUNTIME, r, "cannot read %s/%s", k->runtime_dir, name);
        for (char *line = text, *end; line < text + size; line = end + 1) {
                unsigned long uid;
                long serial;
                long long expires;
                int used = 0;

                end = memchr(line, '\n', (size_t) (text + size - line));
                if (!end)
                        break;
                *end = 0;
                if (sscanf(line, "%lu %ld %lld%n", &uid, &serial, &expires, &used) != 3 || line[used] != 0 ||
                    uid == 0 || uid >= (uid_t) -1 || serial <= 0 || serial > INT32_MAX)
                        continue;
                if (n == cap) {
                        KeyringGrant *ng = realloc(g, (cap = cap * 2 + 8) * sizeof(*g));
                        if (!ng)
                                return -ENOMEM;
                        g = ng;
                }
                g[n++] = (KeyringGrant){ .uid = (uid_t) uid, .ring = (KeySerial) serial, .expires = expires };
        }
        *ret = TAKE_PTR(g);
        *ret_n = n;
        return 0;
}

static int grants_write(Keyring *k, const char *group, KeyringGrant *g, size_t n) {
        _cleanup_free_ char *text = NULL;
        char name[KEYRING_FILE_NAME_MAX];
        size_t size = 0;
        int r;

        r = keyring_grants_file_name(group, name);
        if (r < 0)
                return gfail(k, KEYRING_FAILURE_INVALID, r, "invalid group name");
        if (n == 0)
                r = unlink_durable(k->runtime_fd, name);
        else {
                text = malloc(n * 48 + 1);
                if (!text)
                        return -ENOMEM;
                qsort(g, n, sizeof(*g), cmp_grant);
                for (size_t i = 0; i < n; i++)
                        size += (size_t) sprintf(text + size, "%u %d %lld\n", (unsigned) g[i].uid, (int) g[i].ring,
                                                 (long long) g[i].expires);
                r = keyring_runtime_write(k->runtime_fd, name, text, size, 0600, (gid_t) -1);
        }
        if (r < 0)
                return gfail(k, KEYRING_FAILURE_RUNTIME, r, "cannot write %s/%s", k->runtime_dir, name);
        return 0;
}

/* Is serial still the grant keyring of group for uid, and alive? Checked by its description, so
 * a serial the kernel handed out again to some other key is never touched. */
static KeyringGrantState grant_state(KeySerial serial, uid_t uid, const char *ring_desc) {
        KeyringKeyInfo info;
        int r;

        r = keyring_kr_describe(serial, &info);
        if (r == -EKEYEXPIRED)
                return KEYRING_GRANT_EXPIRED;
        if (r == -EKEYREVOKED)
                return KEYRING_GRANT_REVOKED;
        if (r < 0 || strcmp(info.type, "keyring") != 0 || info.uid != uid || info.gid != 0 ||
            strcmp(info.description, ring_desc) != 0)
                return KEYRING_GRANT_GONE;
        return KEYRING_GRANT_LIVE;
}

/* Revoke the keys of a live grant keyring (those of one generation, or all and then the
 * keyring). keyctl_revoke needs write or setattr: the group byte gives gid 0 setattr. */
static int grant_revoke(Keyring *k, const KeyringGrant *g, const char *ring_desc, uint32_t generation) {
        _cleanup_free_ KeySerial *list = NULL;
        size_t n;
        int r;

        if (grant_state(g->ring, g->uid, ring_desc) != KEYRING_GRANT_LIVE)
                return 0;
        r = keyring_kr_list(g->ring, &list, &n);
        if (r < 0 && !kr_dead(r))
                return gfail(k, KEYRING_FAILURE_KERNEL, r, "cannot list the grant keyring %d of uid %u", (int) g->ring,
                             (unsigned) g->uid);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                KeyringKeyInfo info;
                uint8_t id[KEYRING_GROUP_ID_BYTES];
                uint32_t gen = 0;
                int q;

                if (keyring_kr_describe(list[i], &info) < 0 || strcmp(info.type, "user") != 0 || info.uid != g->uid ||
                    info.gid != 0)
                        continue;
                if (generation > 0 &&
                    (keyring_generation_desc_parse(info.description, id, &gen) < 0 || gen != generation))
                        continue;
                q = kr_errno(keyctl_revoke(list[i]));
                if (q < 0 && !kr_dead(q))
                        return gfail(k, KEYRING_FAILURE_KERNEL, q, "cannot revoke key %s of the grant of uid %u",
                                     info.description, (unsigned) g->uid);
        }
        if (generation == 0) {
                r = kr_errno(keyctl_revoke(g->ring));
                if (r < 0 && !kr_dead(r))
                        return gfail(k, KEYRING_FAILURE_KERNEL, r, "cannot revoke the grant keyring %d of uid %u",
                                     (int) g->ring, (unsigned) g->uid);
        }
        return 0;
}

/* One key of the grant, added straight into the grant keyring while that is still only in
 * staging (so possessed, with the default possessor-all mask). The timeout first, then the owner
 * (chown to another uid needs CAP_SYS_ADMIN; gid 0 so the helper keeps setattr), then the final
 * mask, which takes away everything but view from the possessor. */
static int grant_key_add(Keyring *k, KeySerial ring, const char *desc, const void *data, size_t size, uid_t uid,
                         unsigned seconds) {
        KeySerial s;
        long v;
        int r;

        v = add_key("user", desc, data, size, ring);
        if (v < 0)
                return gfail(k, KEYRING_FAILURE_KERNEL, negative_errno(), "cannot add key %s", desc);
        s = (KeySerial) v;
        r = kr_errno(keyctl_set_timeout(s, seconds));
        if (r < 0)
                return gfail(k, KEYRING_FAILURE_KERNEL, r, "cannot set the timeout of key %s", desc);
        r = kr_errno(keyctl_chown(s, uid, 0));
        if (r < 0)
                return gfail(k, KEYRING_FAILURE_KERNEL, r, "cannot give key %s to uid %u", desc, (unsigned) uid);
        r = kr_errno(keyctl_setperm(s, KEYRING_PERM_GRANT_KEY));
        if (r < 0)
                return gfail(k, KEYRING_FAILURE_KERNEL, r, "cannot set the permissions of key %s", desc);
        return 0;
}

static bool uid_listed(const uid_t *u, size_t n, uid_t uid) {
        for (size_t i = 0; i < n; i++)
                if (u[i] == uid)
                        return true;
        return false;
}

static int grant_build(Keyring *k, const KeyringManifest *m, uid_t uid, unsigned seconds, KeySerial ring) {
        KeyringPointer p = { .alg = m->alg, .active = m->active, .pending = m->pending };
        uint8_t payload[KEYRING_POINTER_BYTES];
        char desc[KEYRING_DESC_MAX];
        int r;

        for (size_t i = 0; i < m->n_generations; i++) {
                const KeyringManifestGeneration *g = &m->generations[i];

                r = keyring_generation_desc(m->group_id, g->number, desc);
                if (r < 0)
                        return gfail(k, KEYRING_FAILURE_INVALID, r, "invalid generation %u", (unsigned) g->number);
                r = grant_key_add(k, ring, desc, g->key->data, g->key->size, uid, seconds);
                if (r < 0)
                        return r;
        }
        /* The pointer last, as in a load: it names only keys that exist. */
        memcpy(p.group_id, m->group_id, KEYRING_GROUP_ID_BYTES);
        keyring_pointer_pack(&p, payload);
        r = keyring_pointer_desc(m->group, desc);
        if (r < 0)
                return gfail(k, KEYRING_FAILURE_INVALID, r, "invalid group name");
        return grant_key_add(k, ring, desc, payload, sizeof(payload), uid, seconds);
}

int keyring_grant_create(Keyring *k, const KeyringManifest *m, uid_t uid, unsigned seconds, KeySerial *ret_ring) {
        _cleanup_free_ uid_t *linked = NULL;
        _cleanup_free_ KeyringGrant *grants = NULL;
        char desc[KEYRING_DESC_MAX], uids_name[KEYRING_FILE_NAME_MAX];
        KeyringManifestError error;
        KeyringGrant *ng;
        size_t n_linked = 0, n_grants = 0, n_keep = 0;
        KeySerial ring;
        int64_t expires;
        long v;
        int r;

        k->failure = KEYRING_FAILURE_NONE;
        r = keyring_manifest_validate(m, &error);
        if (r < 0)
                return gfail(k, KEYRING_FAILURE_INVALID, r, "invalid manifest: %s", error.message);
        if (uid == 0 || uid == (uid_t) -1)
                return gfail(k, KEYRING_FAILURE_INVALID, -EINVAL,
                             "uid %u cannot be granted access: root's user keyring is on every root process's path",
                             (unsigned) uid);
        if (seconds == 0 || seconds > KEYRING_GRANT_SECONDS_MAX)
                return gfail(k, KEYRING_FAILURE_INVALID, -EINVAL, "a grant lasts 1 to %u seconds",
                             KEYRING_GRANT_SECONDS_MAX);
        if (getegid() != 0)
                return gfail(k, KEYRING_FAILURE_INVALID, -EPERM,
                             "grants need gid 0: the helper revokes grant keys through their group");
        /* A member reads the group keyring; a grant's keyring of the same name would displace
         * its link in the member's user keyring. */
        r = keyring_uids_file_name(m->group, uids_name);
        if (r < 0)
                return gfail(k, KEYRING_FAILURE_INVALID, r, "invalid group name");
        r = keyring_runtime_read_uids(k->runtime_fd, uids_name, &linked, &n_linked);
        if (r < 0 && r != -ENOENT)
                return gfail(k, KEYRING_FAILURE_RUNTIME, r, "cannot read %s/%s", k->runtime_dir, uids_name);
        if (keyring_manifest_has_member(m, uid) || uid_listed(linked, n_linked, uid))
                return gfail(k, KEYRING_FAILURE_INVALID, -EEXIST,
                             "uid %u is a member of group %s: members need no grant", (unsigned) uid, m->group);
        r = keyring_group_desc(m->group, desc);
        if (r < 0)
                return gfail(k, KEYRING_FAILURE_INVALID, r, "invalid group name");

        /* In staging, with its default mask (possessor all), so that keys can be added into it
         * and changed while nothing but this thread can reach it. */
        expires = (int64_t) time(NULL) + seconds;
        v = add_key("keyring", desc, NULL, 0, k->staging);
        if (v < 0)
                return gfail(k, KEYRING_FAILURE_KERNEL, negative_errno(), "cannot create keyring %s", desc);
        ring = (KeySerial) v;
        r = grant_build(k, m, uid, seconds, ring);
        if (r < 0)
                return r; /* dies with the staging keyring */
        r = kr_errno(keyctl_set_timeout(ring, seconds));
        if (r < 0)
                return gfail(k, KEYRING_FAILURE_KERNEL, r, "cannot set the timeout of keyring %s", desc);
        r = kr_errno(keyctl_chown(ring, uid, 0));
        if (r < 0)
                return gfail(k, KEYRING_FAILURE_KERNEL, r, "cannot give keyring %s to uid %u", desc, (unsigned) uid);
        r = kr_errno(keyctl_setperm(ring, KEYRING_PERM_GRANT_RING_PLACING));
        if (r < 0)
                return gfail(k, KEYRING_FAILURE_KERNEL, r, "cannot set the permissions of keyring %s", desc);

        /* Recorded before it is linked, so that whatever happens next revoke can find it. */
        r = grants_read(k, m->group, &grants, &n_grants);
        if (r < 0)
                return r;
        ng = realloc(grants, (n_grants + 1) * sizeof(*grants));
        if (!ng)
                return -ENOMEM;
        grants = ng;
        for (size_t i = 0; i < n_grants; i++) {
                grants[i].state = grant_state(grants[i].ring, grants[i].uid, desc);
                if (grants[i].state != KEYRING_GRANT_GONE)
                        grants[n_keep++] = grants[i];
        }
        grants[n_keep++] = (KeyringGrant){ .uid = uid, .ring = ring, .expires = expires, .state = KEYRING_GRANT_LIVE };
        r = grants_write(k, m->group, grants, n_keep);
        if (r < 0)
                return r;

        /* Linking displaces an earlier grant keyring of the same name in that user keyring. */
        r = keyring_user_link(uid, ring);
        if (r < 0)
                return gfail(k, KEYRING_FAILURE_USER_LINK, r, "cannot link keyring %s into the user keyring of uid %u",
                             desc, (unsigned) uid);
        r = kr_errno(keyctl_setperm(ring, KEYRING_PERM_GRANT_RING));
        if (r >= 0)
                r = kr_errno(keyctl_unlink(ring, k->staging));
        if (r < 0) {
                KeyringGrant self = { .uid = uid, .ring = ring };
                int q = r;

                (void) grant_revoke(k, &self, desc, 0);
                return gfail(k, KEYRING_FAILURE_KERNEL, q, "cannot finish keyring %s (revoked)", desc);
        }

        /* The grant it replaced, if any: displaced already, now revoked too. */
        for (size_t i = 0; i < n_keep; i++)
                if (grants[i].uid == uid && grants[i].ring != ring) {
                        r = grant_revoke(k, &grants[i], desc, 0);
                        if (r < 0)
                                return r;
                }
        if (ret_ring)
                *ret_ring = ring;
        return 0;
}

int keyring_grant_revoke(Keyring *k, const char *group, uid_t uid) {
        _cleanup_free_ KeyringGrant *grants = NULL;
        char desc[KEYRING_DESC_MAX];
        size_t n;
        bool live = false;
        int r;

        k->failure = KEYRING_FAILURE_NONE;
        r = keyring_group_desc(group, desc);
        if (r < 0)
                return gfail(k, KEYRING_FAILURE_INVALID, r, "invalid group name");
        r = grants_read(k, group, &grants, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                if (grants[i].uid != uid || grant_state(grants[i].ring, uid, desc) != KEYRING_GRANT_LIVE)
                        continue;
                live = true;
                r = grant_revoke(k, &grants[i], desc, 0);
                if (r < 0)
                        return r;
        }
        if (!live)
                return gfail(k, KEYRING_FAILURE_NOT_LOADED, -ENOENT, "uid %u has no live grant of group %s",
                             (unsigned) uid, group);
        return 0;
}

int keyring_grant_list(Keyring *k, const char *group, KeyringGrant **ret, size_t *ret_n) {
        _cleanup_free_ KeyringGrant *grants = NULL;
        char desc[KEYRING_DESC_MAX];
        size_t n;
        int r;

        r = keyring_group_desc(group, desc);
        if (r < 0)
                return gfail(k, KEYRING_FAILURE_INVALID, r, "invalid group name");
        r = grants_read(k, group, &grants, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ KeySerial *list = NULL;

                grants[i].state = grant_state(grants[i].ring, grants[i].uid, desc);
                if (grants[i].state == KEYRING_GRANT_LIVE &&
                    keyring_kr_list(grants[i].ring, &list, &grants[i].n_keys) < 0)
                        grants[i].n_keys = 0;
        }
        *ret = TAKE_PTR(grants);
        *ret_n = n;
        return 0;
}

int keyring_grants_retire_generation(Keyring *k, const char *group, uint32_t generation) {
        _cleanup_free_ KeyringGrant *grants = NULL;
        char desc[KEYRING_DESC_MAX];
        size_t n;
        int r;

        r = keyring_group_desc(group, desc);
        if (r < 0)
                return gfail(k, KEYRING_FAILURE_INVALID, r, "invalid group name");
        r = grants_read(k, group, &grants, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                r = grant_revoke(k, &grants[i], desc, generation);
                if (r < 0)
                        return r;
        }
        return 0;
}

int keyring_grants_remove_all(Keyring *k, const char *group) {
        _cleanup_free_ KeyringGrant *grants = NULL;
        char desc[KEYRING_DESC_MAX];
        size_t n;
        int r;

        r = keyring_group_desc(group, desc);
        if (r < 0)
                return gfail(k, KEYRING_FAILURE_INVALID, r, "invalid group name");
        r = grants_read(k, group, &grants, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                r = grant_revoke(k, &grants[i], desc, 0);
                if (r < 0)
                        return r;
        }
        return grants_write(k, group, NULL, 0);
}
