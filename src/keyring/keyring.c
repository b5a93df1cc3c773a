/* SPDX-License-Identifier: MIT */
/* Kernel keyrings for key groups: staging, permissions, placement, retire, unload. The only keyutils user. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <keyutils.h>

#include "fileio.h"
#include "keyring-internal.h"
#include "keyring.h"

/* What a group keyring holds, as found by scanning it. */
typedef enum EntryKind {
        ENTRY_GENERATION,
        ENTRY_POINTER,
        ENTRY_OTHER, /* not ours: unlinked, never invalidated */
} EntryKind;

typedef struct Entry {
        KeyringKeyInfo info;
        EntryKind kind;
        uint8_t group_id[KEYRING_GROUP_ID_BYTES];
        bool keep;
} Entry;

#define IN_SET3(x, a, b, c) ((x) == (a) || (x) == (b) || (x) == (c))

_printf_(4, 5) static int fail(Keyring *k, KeyringFailure failure, int r, const char *fmt, ...) {
        va_list ap;
        size_t n;

        k->failure = failure;
        va_start(ap, fmt);
        (void) vsnprintf(k->error, sizeof(k->error), fmt, ap);
        va_end(ap);
        n = strlen(k->error);
        /* The errno only helps where a system call failed; the other kinds say it all. */
        if (r < 0 && n < sizeof(k->error) &&
            IN_SET3(failure, KEYRING_FAILURE_KERNEL, KEYRING_FAILURE_RUNTIME, KEYRING_FAILURE_USER_LINK))
                (void) snprintf(k->error + n, sizeof(k->error) - n, ": %s", strerror(-r));
        return r < 0 ? r : -EINVAL;
}

const char *keyring_last_error(const Keyring *k) {
        return k->failure == KEYRING_FAILURE_NONE ? NULL : k->error;
}

KeyringFailure keyring_last_failure(const Keyring *k) {
        return k->failure;
}

/* keyutils returns -1 and sets errno; everything below speaks negative errno. */
static int kr_errno(long v) {
        return v < 0 ? negative_errno() : 0;
}

/* Invalidated, revoked or expired: awaiting garbage collection, as good as gone. */
static bool kr_dead(int r) {
        return r == -ENOKEY || r == -EKEYREVOKED || r == -EKEYEXPIRED;
}

static int kr_describe(KeySerial serial, KeyringKeyInfo *ret) {
        char buf[256], *fields[4], *p = buf;
        KeyringKeyInfo info = { .serial = serial };
        unsigned long uid, gid, perm;
        long n;

        n = keyctl_describe(serial, buf, sizeof(buf));
        if (n < 0)
                return negative_errno();
        if ((size_t) n > sizeof(buf))
                return -ENAMETOOLONG; /* not one of ours: our descriptions are short */
        buf[sizeof(buf) - 1] = 0;
        /* "type;uid;gid;perm;description" */
        for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
                fields[i] = p;
                p = strchr(p, ';');
                if (!p)
                        return -EBADMSG;
                *p++ = 0;
        }
        if (strlen(fields[0]) >= sizeof(info.type) || strlen(p) >= sizeof(info.description))
                return -ENAMETOOLONG;
        errno = 0;
        uid = strtoul(fields[1], NULL, 10);
        gid = strtoul(fields[2], NULL, 10);
        perm = strtoul(fields[3], NULL, 16);
        if (errno != 0)
                return -EBADMSG;
        strcpy(info.type, fields[0]);
        strcpy(info.description, p);
        info.uid = (uid_t) uid;
        info.gid = (gid_t) gid;
        info.perm = (uint32_t) perm;
        *ret = info;
        return 0;
}

/* The serials a keyring links (needs read on it). A keyring listing holds no key bytes, so
 * keyctl_read_alloc is fine here. */
static int kr_list(KeySerial ring, KeySerial **ret, size_t *ret_n) {
        void *buf = NULL;
        long n;

        n = keyctl_read_alloc(ring, &buf);
        if (n < 0)
                return negative_errno();
        *ret = buf;
        *ret_n = (size_t) n / sizeof(KeySerial);
        return 0;
}

static int kr_chown_gid(KeySerial serial, gid_t gid) {
        gid_t old;
        int r;

        /* keyctl_chown to a gid needs CAP_SYS_ADMIN unless the caller is in that group;
         * joining it for one call needs only CAP_SETGID. */
        r = keyring_fsgid_enter(gid, &old);
        if (r < 0)
                return r;
        r = kr_errno(keyctl_chown(serial, (uid_t) -1, gid));
        keyring_fsgid_leave(old);
        return r;
}

/* Is every key described desc (of serial's type) in ring dead? Search skips dead keys and
 * reports why; a ring we may not search (the registry) says EACCES, which is not "dead". */
static bool kr_only_dead(KeySerial serial, KeySerial ring, const char *desc) {
        KeyringKeyInfo info;
        int r;

        if (kr_describe(serial, &info) < 0)
                return false;
        r = kr_errno(keyctl_search(ring, info.type, desc, 0));
        return r == -EKEYEXPIRED || r == -EKEYREVOKED;
}

/* Give a freshly staged key its group and mask, then move it into place. The key is never
 * linked anywhere but staging (possessed only by this thread) before its mask is final,
 * and KEYCTL_MOVE_EXCL refuses to displace a key of the same description. */
static int kr_place(Keyring *k, KeySerial serial, gid_t gid, uint32_t perm, KeySerial to, const char *desc) {
        int r;

        r = kr_chown_gid(serial, gid);
        if (r < 0)
                return fail(k, KEYRING_FAILURE_KERNEL, r, "cannot set the group of key %s", desc);
        r = kr_errno(keyctl_setperm(serial, perm));
        if (r < 0)
                return fail(k, KEYRING_FAILURE_KERNEL, r, "cannot set the permissions of key %s", desc);
        r = kr_errno(keyctl_move(serial, k->staging, to, KEYCTL_MOVE_EXCL));
        if (r == -EEXIST && kr_only_dead(serial, to, desc))
                /* An expired (e.g. loaded on demand) or invalidated key of that description
                 * stays linked until the garbage collector runs, gc_delay (300 s) after it
                 * expired; displacing it is what the collector would do. No live key can
                 * appear meanwhile: only the owner links here, and helpers hold the flock. */
                r = kr_errno(keyctl_move(serial, k->staging, to, 0));
        if (r < 0)
                return fail(k, KEYRING_FAILURE_KERNEL, r, "cannot move key %s into place", desc);
        return 0;
}

/* Repair group and mask of a key already in place (a gid change, or someone's setperm). */
static int kr_fix(Keyring *k, const KeyringKeyInfo *info, gid_t gid, uint32_t perm) {
        int r;

        if (info->gid != gid) {
                r = kr_chown_gid(info->serial, gid);
                if (r < 0)
                        return fail(k, KEYRING_FAILURE_KERNEL, r, "cannot set the group of key %s", info->description);
        }
        if (info->perm != perm) {
                r = kr_errno(keyctl_setperm(info->serial, perm));
                if (r < 0)
                        return fail(k, KEYRING_FAILURE_KERNEL, r, "cannot set the permissions of key %s",
                                    info->description);
        }
        return 0;
}

int keyring_new(const char *runtime_dir, Keyring **ret) {
        _cleanup_keyring_ Keyring *k = NULL;
        long s;
        int r;

        k = calloc(1, sizeof(*k));
        if (!k)
                return -ENOMEM;
        k->runtime_fd = -EBADF;
        k->runtime_dir = strdup(runtime_dir ?: keyring_runtime_dir());
        if (!k->runtime_dir)
                return -ENOMEM;
        r = keyring_runtime_open(k->runtime_dir, &k->runtime_fd);
        if (r < 0)
                return r;
        /* One helper at a time: two concurrent loads of a new group would race to create
         * its keyring, and the uid bookkeeping assumes a single writer. */
        if (flock(k->runtime_fd, LOCK_EX) < 0)
                return negative_errno();
        /* The thread keyring is created on first use, is never inherited, and dies with the
         * thread: a crash mid-install leaves nothing half-configured behind. */
        s = add_key("keyring", KEYRING_STAGING_DESC, NULL, 0, KEY_SPEC_THREAD_KEYRING);
        if (s < 0)
                return negative_errno();
        k->staging = (KeySerial) s;
        *ret = TAKE_PTR(k);
        return 0;
}

Keyring *keyring_free(Keyring *k) {
        if (!k)
                return NULL;
        if (k->staging > 0)
                (void) keyctl_invalidate(k->staging);
        safe_close(k->runtime_fd);
        free(k->runtime_dir);
        free(k);
        return NULL;
}

/* Find "dkm:.registry" in root's user keyring, creating it if asked. -ENOENT if absent. */
static int registry_get(Keyring *k, bool create) {
        _cleanup_free_ KeySerial *list = NULL;
        KeyringKeyInfo info;
        size_t n;
        long user, s;
        int r;

        if (k->registry > 0)
                return 0;
        if (getuid() != 0)
                return fail(k, KEYRING_FAILURE_INVALID, -EPERM,
                            "the key registry lives in root's user keyring; run as uid 0");
        user = keyctl_get_keyring_ID(KEY_SPEC_USER_KEYRING, 1);
        if (user < 0)
                return fail(k, KEYRING_FAILURE_KERNEL, negative_errno(), "cannot find %s", "root's user keyring");
        r = kr_list((KeySerial) user, &list, &n);
        if (r < 0)
                return fail(k, KEYRING_FAILURE_KERNEL, r, "cannot list %s", "root's user keyring");
        for (size_t i = 0; i < n; i++) {
                if (kr_describe(list[i], &info) < 0)
                        continue;
                if (strcmp(info.type, "keyring") != 0 || info.uid != 0 ||
                    strcmp(info.description, KEYRING_REGISTRY_DESC) != 0)
                        continue;
                if (info.perm != KEYRING_PERM_REGISTRY) {
                        r = kr_errno(keyctl_setperm(info.serial, KEYRING_PERM_REGISTRY));
                        if (r < 0)
                                return fail(k, KEYRING_FAILURE_KERNEL, r, "cannot set the permissions of %s",
                                            KEYRING_REGISTRY_DESC);
                }
                k->registry = info.serial;
                return 0;
        }
        if (!create)
                return -ENOENT;

        s = add_key("keyring", KEYRING_REGISTRY_DESC, NULL, 0, k->staging);
        if (s < 0)
                return fail(k, KEYRING_FAILURE_KERNEL, negative_errno(), "cannot create %s", KEYRING_REGISTRY_DESC);
        r = kr_errno(keyctl_setperm((KeySerial) s, KEYRING_PERM_REGISTRY));
        if (r < 0)
                return fail(k, KEYRING_FAILURE_KERNEL, r, "cannot set the permissions of %s", KEYRING_REGISTRY_DESC);
        r = kr_errno(keyctl_move((KeySerial) s, k->staging, (KeySerial) user, KEYCTL_MOVE_EXCL));
        if (r < 0)
                return fail(k, KEYRING_FAILURE_KERNEL, r, "cannot move %s into root's user keyring",
                            KEYRING_REGISTRY_DESC);
        k->registry = (KeySerial) s;
        return 0;
}

/* The group keyring in the registry. -ENOENT if the group is not loaded (not an error yet). */
static int group_ring_find(Keyring *k, const char *group, KeyringKeyInfo *ret) {
        _cleanup_free_ KeySerial *list = NULL;
        char desc[KEYRING_DESC_MAX];
        KeyringKeyInfo info;
        size_t n;
        int r;

        r = keyring_group_desc(group, desc);
        if (r < 0)
                return fail(k, KEYRING_FAILURE_INVALID, r, "invalid group name");
        r = registry_get(k, false);
        if (r < 0)
                return r;
        r = kr_list(k->registry, &list, &n);
        if (r < 0)
                return fail(k, KEYRING_FAILURE_KERNEL, r, "cannot list %s", KEYRING_REGISTRY_DESC);
        for (size_t i = 0; i < n; i++) {
                if (kr_describe(list[i], &info) < 0)
                        continue; /* invalidated, awaiting garbage collection */
                if (strcmp(info.type, "keyring") == 0 && info.uid == 0 && strcmp(info.description, desc) == 0) {
                        *ret = info;
                        return 0;
                }
        }
        return -ENOENT;
}

static int ring_scan(Keyring *k, KeySerial ring, const char *group, Entry **ret, size_t *ret_n) {
        _cleanup_free_ KeySerial *list = NULL;
        _cleanup_free_ Entry *entries = NULL;
        char pointer_desc[KEYRING_DESC_MAX];
        size_t n, m = 0;
        int r;

        r = keyring_pointer_desc(group, pointer_desc);
        if (r < 0)
                return fail(k, KEYRING_FAILURE_INVALID, r, "invalid group name");
        r = kr_list(ring, &list, &n);
        if (r < 0)
                return fail(k, KEYRING_FAILURE_KERNEL, r, "cannot list the keyring of group %s", group);
        entries = calloc(n + 1, sizeof(Entry));
        if (!entries)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                Entry *e = &entries[m];

                r = kr_describe(list[i], &e->info);
                if (kr_dead(r))
                        continue;
                if (r < 0) {
                        /* Something we may not even view: not ours, so it only gets unlinked. */
                        *e = (Entry){ .info.serial = list[i], .kind = ENTRY_OTHER };
                        m++;
                        continue;
                }
                if (strcmp(e->info.type, "user") == 0 && e->info.uid == 0 &&
                    keyring_generation_desc_parse(e->info.description, e->group_id, &e->info.generation) >= 0)
                        e->kind = ENTRY_GENERATION;
                else if (strcmp(e->info.type, "user") == 0 && e->info.uid == 0 &&
                         strcmp(e->info.description, pointer_desc) == 0)
                        e->kind = ENTRY_POINTER;
                else
                        e->kind = ENTRY_OTHER;
                m++;
        }
        *ret = TAKE_PTR(entries);
        *ret_n = m;
        return 0;
}

/* The owner has no read bit on the pointer, but possession plus search grants read
 * (keyctl_read's possession rule): link the group keyring into the private staging keyring
 * for the duration of one read. */
static int pointer_read(Keyring *k, KeySerial ring, KeySerial pointer, KeyringPointer *ret) {
        uint8_t buf[KEYRING_POINTER_BYTES + 1];
        long n;
        int r;

        r = kr_errno(keyctl_link(ring, k->staging));
        if (r < 0)
                return r;
        n = keyctl_read(pointer, (char *) buf, sizeof(buf));
        r = n < 0 ? negative_errno() : 0;
        (void) keyctl_unlink(ring, k->staging);
        if (r < 0)
                return r;
        if ((size_t) n > sizeof(buf))
                return -EBADMSG;
        return keyring_pointer_unpack(buf, (size_t) n, ret);
}

typedef enum UserOp {
        USER_LINK,
        USER_UNLINK,
        USER_IS_LINKED, /* 0 linked, -ENOENT not */
} UserOp;

_noreturn_ static void user_op_child(uid_t uid, KeySerial ring, UserOp op) {
        long r = 0;

        /* KEY_SPEC_USER_KEYRING resolves by the real uid; euid 0 stays, so the kernel still
         * treats us as the group keyring's owner and the user keyring counts as possessed. */
        if (setreuid(uid, (uid_t) -1) < 0 || getuid() != uid)
                _exit(EPERM);
        switch (op) {
        case USER_LINK:
                r = keyctl_link(ring, KEY_SPEC_USER_KEYRING);
                break;
        case USER_UNLINK:
                r = keyctl_unlink(ring, KEY_SPEC_USER_KEYRING);
                if (r < 0 && (errno == ENOENT || errno == ENOKEY))
                        r = 0; /* not linked, or the group keyring is already dead */
                break;
        case USER_IS_LINKED: {
                KeySerial list[1024];
                long n = keyctl_read(KEY_SPEC_USER_KEYRING, (char *) list, sizeof(list));
                if (n < 0)
                        _exit(errno & 0xff);
                for (size_t i = 0; i < MIN((size_t) n, sizeof(list)) / sizeof(KeySerial); i++)
                        if (list[i] == ring)
                                _exit(0);
                _exit(ENOENT);
        }
        }
        _exit(r < 0 ? (errno & 0xff) : 0);
}

/* Fork one single-threaded child per uid: setreuid() in a threaded process would only
 * change the calling thread, and the parent must keep its own credentials. */
static int user_op(uid_t uid, KeySerial ring, UserOp op) {
        pid_t pid;
        int status;

        pid = fork();
        if (pid < 0)
                return negative_errno();
        if (pid == 0)
                user_op_child(uid, ring, op);
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return negative_errno();
        if (!WIFEXITED(status))
                return -EIO;
        return WEXITSTATUS(status) == 0 ? 0 : -WEXITSTATUS(status);
}

static int group_ring_create(Keyring *k, const KeyringManifest *m, KeyringKeyInfo *ret) {
        char desc[KEYRING_DESC_MAX];
        long s;
        int r;

        r = keyring_group_desc(m->group, desc);
        if (r < 0)
                return fail(k, KEYRING_FAILURE_INVALID, r, "invalid group name");
        s = add_key("keyring", desc, NULL, 0, k->staging);
        if (s < 0)
                return fail(k, KEYRING_FAILURE_KERNEL, negative_errno(), "cannot create keyring %s", desc);
        r = kr_place(k, (KeySerial) s, m->gid, KEYRING_PERM_GROUP, k->registry, desc);
        if (r < 0)
                return r;
        r = kr_describe((KeySerial) s, ret);
        if (r < 0)
                return fail(k, KEYRING_FAILURE_KERNEL, r, "cannot describe keyring %s", desc);
        return 0;
}

static Entry *entry_find(Entry *e, size_t n, EntryKind kind, const uint8_t *id, uint32_t generation) {
        for (size_t i = 0; i < n; i++)
                if (e[i].kind == kind && !e[i].keep &&
                    (kind != ENTRY_GENERATION ||
                     (e[i].info.generation == generation && memcmp(e[i].group_id, id, KEYRING_GROUP_ID_BYTES) == 0)))
                        return &e[i];
        return NULL;
}

static int load_generation(Keyring *k, const KeyringManifest *m, KeySerial ring, Entry *entries, size_t n,
                           const KeyringManifestGeneration *g) {
        char desc[KEYRING_DESC_MAX];
        Entry *e;
        long s;
        int r;

        r = keyring_generation_desc(m->group_id, g->number, desc);
        if (r < 0)
                return fail(k, KEYRING_FAILURE_INVALID, r, "invalid generation %u", (unsigned) g->number);
        e = entry_find(entries, n, ENTRY_GENERATION, m->group_id, g->number);
        if (e) {
                e->keep = true;
                r = kr_fix(k, &e->info, m->gid, KEYRING_PERM_KEY);
                if (r < 0)
                        return r;
                /* Rewriting the same bytes is harmless, and a key that somehow differs from the
                 * store's is corrected; readers see old or new payload, never a mix. */
                r = kr_errno(keyctl_update(e->info.serial, g->key->data, g->key->size));
                /* A key loaded on demand carries a timeout; listed in the manifest, it stays.
                 * (Updating a user key already resets its expiry here; we do not rely on it.) */
                if (r >= 0)
                        r = kr_errno(keyctl_set_timeout(e->info.serial, 0));
                if (r >= 0)
                        return 0;
                if (!kr_dead(r))
                        return fail(k, KEYRING_FAILURE_KERNEL, r, "cannot update key %s", desc);
                /* Loaded on demand, it expired since the scan: add it afresh (kr_place displaces it). */
        }
        s = add_key("user", desc, g->key->data, g->key->size, k->staging);
        if (s < 0)
                return fail(k, KEYRING_FAILURE_KERNEL, negative_errno(), "cannot add key %s", desc);
        return kr_place(k, (KeySerial) s, m->gid, KEYRING_PERM_KEY, ring, desc);
}

static int load_pointer(Keyring *k, const KeyringManifest *m, KeySerial ring, Entry *entries, size_t n) {
        KeyringPointer p = { .alg = m->alg, .active = m->active, .pending = m->pending };
        uint8_t payload[KEYRING_POINTER_BYTES];
        char desc[KEYRING_DESC_MAX];
        Entry *e;
        long s;
        int r;

        r = keyring_pointer_desc(m->group, desc);
        if (r < 0)
                return fail(k, KEYRING_FAILURE_INVALID, r, "invalid group name");
        memcpy(p.group_id, m->group_id, KEYRING_GROUP_ID_BYTES);
        keyring_pointer_pack(&p, payload);

        e = entry_find(entries, n, ENTRY_POINTER, NULL, 0);
        if (e) {
                e->keep = true;
                r = kr_fix(k, &e->info, m->gid, KEYRING_PERM_KEY);
                if (r < 0)
                        return r;
                /* keyctl_update swaps the payload under RCU: a reader gets the old struct or
                 * the new one, which is what makes the switch of generations atomic. */
                r = kr_errno(keyctl_update(e->info.serial, payload, sizeof(payload)));
                if (r < 0)
                        return fail(k, KEYRING_FAILURE_KERNEL, r, "cannot update key %s", desc);
                return 0;
        }
        s = add_key("user", desc, payload, sizeof(payload), k->staging);
        if (s < 0)
                return fail(k, KEYRING_FAILURE_KERNEL, negative_errno(), "cannot add key %s", desc);
        return kr_place(k, (KeySerial) s, m->gid, KEYRING_PERM_KEY, ring, desc);
}

/* Invalidate our keys that were not kept; unlink what is not ours. */
static int ring_prune(Keyring *k, KeySerial ring, const Entry *entries, size_t n) {
        for (size_t i = 0; i < n; i++) {
                const Entry *e = &entries[i];
                int r;

                if (e->keep)
                        continue;
                if (e->kind == ENTRY_OTHER)
                        r = kr_errno(keyctl_unlink(e->info.serial, ring));
                else
                        r = kr_errno(keyctl_invalidate(e->info.serial));
                if (r < 0 && !kr_dead(r) && r != -ENOENT)
                        return fail(k, KEYRING_FAILURE_KERNEL, r, "cannot remove key %s",
                                    e->info.description[0] ? e->info.description : "(foreign)");
        }
        return 0;
}

static int uids_merge(const uid_t *a, size_t na, const uid_t *b, size_t nb, uid_t **ret, size_t *ret_n) {
        uid_t *u = calloc(na + nb + 1, sizeof(uid_t));
        size_t i = 0, j = 0, n = 0;

        if (!u)
                return -ENOMEM;
        while (i < na || j < nb) {
                if (j >= nb || (i < na && a[i] < b[j]))
                        u[n++] = a[i++];
                else if (i >= na || b[j] < a[i])
                        u[n++] = b[j++];
                else {
                        u[n++] = a[i++];
                        j++;
                }
        }
        *ret = u;
        *ret_n = n;
        return 0;
}

static bool uids_contain(const uid_t *u, size_t n, uid_t uid) {
        for (size_t i = 0; i < n; i++)
                if (u[i] == uid)
                        return true;
        return false;
}

static int place_for_members(Keyring *k, const KeyringManifest *m, KeySerial ring) {
        _cleanup_free_ uid_t *old = NULL, *all = NULL;
        char uids_name[KEYRING_FILE_NAME_MAX];
        size_t n_old = 0, n_all;
        int r;

        r = keyring_uids_file_name(m->group, uids_name);
        if (r < 0)
                return fail(k, KEYRING_FAILURE_INVALID, r, "invalid group name");
        r = keyring_runtime_read_uids(k->runtime_fd, uids_name, &old, &n_old);
        if (r < 0 && r != -ENOENT)
                return fail(k, KEYRING_FAILURE_RUNTIME, r, "cannot read %s/%s", k->runtime_dir, uids_name);

        /* Record the union before linking anyone, so that after a crash a later load still
         * knows every uid that might be linked and can unlink those no longer wanted. */
        r = uids_merge(old, n_old, m->members, m->n_members, &all, &n_all);
        if (r < 0)
                return r;
        r = keyring_runtime_write_uids(k->runtime_fd, uids_name, all, n_all);
        if (r < 0)
                return fail(k, KEYRING_FAILURE_RUNTIME, r, "cannot write %s/%s", k->runtime_dir, uids_name);

        for (size_t i = 0; i < m->n_members; i++) {
                r = user_op(m->members[i], ring, USER_LINK);
                if (r < 0)
                        return fail(k, KEYRING_FAILURE_USER_LINK, r,
                                    "cannot link keyring of group %s into the user keyring of uid %u", m->group,
                                    (unsigned) m->members[i]);
        }
        for (size_t i = 0; i < n_old; i++) {
                if (uids_contain(m->members, m->n_members, old[i]))
                        continue;
                r = user_op(old[i], ring, USER_UNLINK);
                if (r < 0)
                        return fail(k, KEYRING_FAILURE_USER_LINK, r,
                                    "cannot unlink keyring of group %s from the user keyring of uid %u", m->group,
                                    (unsigned) old[i]);
        }
        r = keyring_runtime_write_uids(k->runtime_fd, uids_name, m->members, m->n_members);
        if (r < 0)
                return fail(k, KEYRING_FAILURE_RUNTIME, r, "cannot write %s/%s", k->runtime_dir, uids_name);
        return 0;
}

static int publish_serial(Keyring *k, const char *group, KeySerial ring, gid_t gid) {
        char name[KEYRING_FILE_NAME_MAX], text[16];
        int r, n;

        r = keyring_serial_file_name(group, name);
        if (r < 0)
                return fail(k, KEYRING_FAILURE_INVALID, r, "invalid group name");
        n = snprintf(text, sizeof(text), "%d\n", (int) ring);
        /* 0640 root:<gid>: services with a DynamicUser have no user keyring we could link into,
         * but they do carry the gid, so they find the keyring through this file. */
        r = keyring_runtime_write(k->runtime_fd, name, text, (size_t) n, 0640, gid);
        if (r < 0)
                return fail(k, KEYRING_FAILURE_RUNTIME, r, "cannot write %s/%s", k->runtime_dir, name);
        return 0;
}

/* Tell libdkm's key caches to validate again (docs/LIBDKM.md): after the kernel changed. */
static int publish_epoch(Keyring *k, const char *group, gid_t gid) {
        char name[KEYRING_FILE_NAME_MAX];
        int r;

        r = keyring_epoch_file_name(group, name);
        if (r < 0)
                return fail(k, KEYRING_FAILURE_INVALID, r, "invalid group name");
        r = keyring_runtime_bump_epoch(k->runtime_fd, name, gid);
        if (r < 0)
                return fail(k, KEYRING_FAILURE_RUNTIME, r, "cannot write %s/%s", k->runtime_dir, name);
        return 0;
}

int keyring_group_load(Keyring *k, const KeyringManifest *m, KeySerial *ret_ring) {
        _cleanup_free_ Entry *entries = NULL;
        KeyringKeyInfo ring;
        KeyringManifestError error;
        size_t n;
        int r;

        k->failure = KEYRING_FAILURE_NONE;
        r = keyring_manifest_validate(m, &error);
        if (r < 0)
                return fail(k, KEYRING_FAILURE_INVALID, r, "invalid manifest: %s", error.message);

        r = registry_get(k, true);
        if (r < 0)
                return r;
        r = group_ring_find(k, m->group, &ring);
        if (r == -ENOENT)
                r = group_ring_create(k, m, &ring);
        else if (r >= 0)
                r = kr_fix(k, &ring, m->gid, KEYRING_PERM_GROUP);
        if (r < 0)
                return r;

        r = ring_scan(k, ring.serial, m->group, &entries, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < m->n_generations; i++) {
                r = load_generation(k, m, ring.serial, entries, n, &m->generations[i]);
                if (r < 0)
                        return r;
        }
        /* Only now that every key it can name exists. */
        r = load_pointer(k, m, ring.serial, entries, n);
        if (r < 0)
                return r;
        r = ring_prune(k, ring.serial, entries, n);
        if (r < 0)
                return r;

        r = place_for_members(k, m, ring.serial);
        if (r < 0)
                return r;
        r = publish_serial(k, m->group, ring.serial, m->gid);
        if (r < 0)
                return r;
        r = publish_epoch(k, m->group, m->gid);
        if (r < 0)
                return r;
        if (ret_ring)
                *ret_ring = ring.serial;
        return 0;
}

int keyring_group_unload(Keyring *k, const char *group) {
        _cleanup_free_ Entry *entries = NULL;
        _cleanup_free_ uid_t *uids = NULL;
        char uids_name[KEYRING_FILE_NAME_MAX], serial_name[KEYRING_FILE_NAME_MAX], epoch_name[KEYRING_FILE_NAME_MAX];
        KeyringKeyInfo ring = {};
        size_t n_uids = 0, n;
        bool found = false;
        int r;

        k->failure = KEYRING_FAILURE_NONE;
        if (keyring_uids_file_name(group, uids_name) < 0 || keyring_serial_file_name(group, serial_name) < 0)
                return fail(k, KEYRING_FAILURE_INVALID, -EINVAL, "invalid group name");

        r = group_ring_find(k, group, &ring);
        if (r < 0 && r != -ENOENT)
                return r;
        found = r >= 0;

        r = keyring_runtime_read_uids(k->runtime_fd, uids_name, &uids, &n_uids);
        if (r < 0 && r != -ENOENT)
                return fail(k, KEYRING_FAILURE_RUNTIME, r, "cannot read %s/%s", k->runtime_dir, uids_name);
        found = found || r >= 0 || faccessat(k->runtime_fd, serial_name, F_OK, AT_SYMLINK_NOFOLLOW) >= 0;
        if (!found)
                return fail(k, KEYRING_FAILURE_NOT_LOADED, -ENOENT, "group %s is not loaded", group);

        if (ring.serial > 0) {
                for (size_t i = 0; i < n_uids; i++) {
                        r = user_op(uids[i], ring.serial, USER_UNLINK);
                        if (r < 0)
                                return fail(k, KEYRING_FAILURE_USER_LINK, r,
                                            "cannot unlink keyring of group %s from the user keyring of uid %u", group,
                                            (unsigned) uids[i]);
                }
                r = ring_scan(k, ring.serial, group, &entries, &n);
                if (r < 0)
                        return r;
                r = ring_prune(k, ring.serial, entries, n);
                if (r < 0)
                        return r;
                r = kr_errno(keyctl_invalidate(ring.serial));
                if (r < 0 && !kr_dead(r))
                        return fail(k, KEYRING_FAILURE_KERNEL, r, "cannot invalidate keyring %s", ring.description);
        }

        /* Mapped epochs must see the change before the file goes; it exists unless the group
         * never finished loading, and creating one just to delete it would need CAP_SETGID. */
        if (ring.serial > 0 && keyring_epoch_file_name(group, epoch_name) >= 0 &&
            faccessat(k->runtime_fd, epoch_name, F_OK, AT_SYMLINK_NOFOLLOW) >= 0 &&
            keyring_runtime_bump_epoch(k->runtime_fd, epoch_name, ring.gid) < 0) {
                /* Not fatal: the keys are gone already, and clients validate every second. */
        }

        /* Grants of the group end with it. */
        r = keyring_grants_remove_all(k, group);
        if (r < 0)
                return r;

        /* The serial file first: a reader must not find a serial for a group being removed. */
        r = unlink_durable(k->runtime_fd, serial_name);
        if (r >= 0)
                r = unlink_durable(k->runtime_fd, uids_name);
        if (r >= 0 && keyring_epoch_file_name(group, epoch_name) >= 0)
                r = unlink_durable(k->runtime_fd, epoch_name);
        if (r < 0)
                return fail(k, KEYRING_FAILURE_RUNTIME, r, "cannot remove the runtime files of group %s", group);
        return 0;
}

int keyring_generation_retire(Keyring *k, const char *group, uint32_t generation) {
        _cleanup_free_ Entry *entries = NULL;
        KeyringPointer p;
        KeyringKeyInfo ring;
        Entry *pointer = NULL;
        bool pointer_ok = false, found = false;
        size_t n;
        int r;

        k->failure = KEYRING_FAILURE_NONE;
        if (generation == 0)
                return fail(k, KEYRING_FAILURE_INVALID, -EINVAL, "invalid generation 0");
        r = group_ring_find(k, group, &ring);
        if (r == -ENOENT)
                return fail(k, KEYRING_FAILURE_NOT_LOADED, r, "group %s is not loaded", group);
        if (r < 0)
                return r;
        r = ring_scan(k, ring.serial, group, &entries, &n);
        if (r < 0)
                return r;

        pointer = entry_find(entries, n, ENTRY_POINTER, NULL, 0);
        if (pointer)
                pointer_ok = pointer_read(k, ring.serial, pointer->info.serial, &p) >= 0;

        for (size_t i = 0; i < n; i++)
                if (entries[i].kind == ENTRY_GENERATION && entries[i].info.generation == generation &&
                    (!pointer_ok || memcmp(entries[i].group_id, p.group_id, KEYRING_GROUP_ID_BYTES) == 0))
                        found = true;
        if (pointer_ok && p.active == generation && found)
                return fail(k, KEYRING_FAILURE_BUSY, -EBUSY,
                            "generation %u is the active generation of group %s; roll over first",
                            (unsigned) generation, group);
        /* A retired key is gone for everyone, grantees included, even when it is not in the
         * group keyring (an archived generation a grant copied). */
        if (!(pointer_ok && p.active == generation)) {
                r = keyring_grants_retire_generation(k, group, generation);
                if (r < 0)
                        return r;
        }
        if (!found)
                return fail(k, KEYRING_FAILURE_NO_GENERATION, -ENOKEY, "group %s has no generation %u loaded", group,
                            (unsigned) generation);

        if (pointer_ok && p.pending == generation) {
                uint8_t payload[KEYRING_POINTER_BYTES];

                /* Clear it from the pointer before the key goes, so no reader is sent to it. */
                p.pending = 0;
                keyring_pointer_pack(&p, payload);
                r = kr_errno(keyctl_update(pointer->info.serial, payload, sizeof(payload)));
                if (r < 0)
                        return fail(k, KEYRING_FAILURE_KERNEL, r, "cannot update key %s", pointer->info.description);
        }

        for (size_t i = 0; i < n; i++) {
                if (entries[i].kind != ENTRY_GENERATION || entries[i].info.generation != generation ||
                    (pointer_ok && memcmp(entries[i].group_id, p.group_id, KEYRING_GROUP_ID_BYTES) != 0))
                        continue;
                r = kr_errno(keyctl_invalidate(entries[i].info.serial));
                if (r < 0 && !kr_dead(r))
                        return fail(k, KEYRING_FAILURE_KERNEL, r, "cannot invalidate key %s",
                                    entries[i].info.description);
        }
        /* The file exists once the group was loaded, so this is an in-place write that needs
         * no capability (retire keeps none); clients validate every second regardless. */
        return publish_epoch(k, group, ring.gid);
}

KeyringStatus *keyring_status_free(KeyringStatus *s) {
        if (!s)
                return NULL;
        free(s->generations);
        free(s->members);
        free(s->grants);
        free(s);
        return NULL;
}

static int cmp_generation(const void *a, const void *b) {
        const KeyringKeyInfo *x = a, *y = b;
        return x->generation < y->generation ? -1 : x->generation > y->generation;
}

int keyring_group_status(Keyring *k, const char *group, KeyringStatus **ret) {
        _cleanup_keyring_status_ KeyringStatus *s = NULL;
        _cleanup_free_ Entry *entries = NULL;
        _cleanup_free_ uid_t *uids = NULL;
        char uids_name[KEYRING_FILE_NAME_MAX], serial_name[KEYRING_FILE_NAME_MAX];
        size_t n, n_uids = 0;
        int r;

        k->failure = KEYRING_FAILURE_NONE;
        if (keyring_uids_file_name(group, uids_name) < 0 || keyring_serial_file_name(group, serial_name) < 0)
                return fail(k, KEYRING_FAILURE_INVALID, -EINVAL, "invalid group name");
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        r = group_ring_find(k, group, &s->ring);
        if (r == -ENOENT)
                return fail(k, KEYRING_FAILURE_NOT_LOADED, r, "group %s is not loaded", group);
        if (r < 0)
                return r;
        r = ring_scan(k, s->ring.serial, group, &entries, &n);
        if (r < 0)
                return r;

        s->generations = calloc(n + 1, sizeof(KeyringKeyInfo));
        if (!s->generations)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                if (entries[i].kind == ENTRY_GENERATION)
                        s->generations[s->n_generations++] = entries[i].info;
                else if (entries[i].kind == ENTRY_POINTER && !s->has_pointer) {
                        s->has_pointer = true;
                        s->pointer = entries[i].info;
                } else
                        s->n_other++;
        }
        qsort(s->generations, s->n_generations, sizeof(KeyringKeyInfo), cmp_generation);
        if (s->has_pointer)
                s->pointer_valid = pointer_read(k, s->ring.serial, s->pointer.serial, &s->pointer_value) >= 0;

        r = keyring_runtime_read_uids(k->runtime_fd, uids_name, &uids, &n_uids);
        if (r < 0 && r != -ENOENT)
                return fail(k, KEYRING_FAILURE_RUNTIME, r, "cannot read %s/%s", k->runtime_dir, uids_name);
        s->members = calloc(n_uids + 1, sizeof(KeyringMemberLink));
        if (!s->members)
                return -ENOMEM;
        for (size_t i = 0; i < n_uids; i++) {
                r = user_op(uids[i], s->ring.serial, USER_IS_LINKED);
                if (r < 0 && r != -ENOENT)
                        return fail(k, KEYRING_FAILURE_USER_LINK, r, "cannot inspect the user keyring of uid %u",
                                    (unsigned) uids[i]);
                s->members[s->n_members++] = (KeyringMemberLink){ .uid = uids[i], .linked = r >= 0 };
        }
        if (keyring_runtime_read_serial(k->runtime_fd, serial_name, &s->serial_file) < 0)
                s->serial_file = 0;
        r = keyring_grant_list(k, group, &s->grants, &s->n_grants);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}

/* The loaded keyring of group, and what it holds, for an on-demand load. Its pointer must name
 * group_id: a group deleted and created again under the same name has a new id, and the old
 * incarnation's keyring is not the place for the new one's keys. Its gid must be the store's,
 * or members could find a key they cannot read (or the reverse) until the next load. */
static int ondemand_ring(Keyring *k, const char *group, const uint8_t group_id[KEYRING_GROUP_ID_BYTES], gid_t gid,
                         KeyringKeyInfo *ret_ring, Entry **ret_entries, size_t *ret_n) {
        _cleanup_free_ Entry *entries = NULL;
        KeyringKeyInfo ring;
        KeyringPointer p;
        Entry *pointer;
        size_t n;
        int r;

        r = group_ring_find(k, group, &ring);
        if (r == -ENOENT)
                return fail(k, KEYRING_FAILURE_NOT_LOADED, r, "group %s is not loaded", group);
        if (r < 0)
                return r;
        r = ring_scan(k, ring.serial, group, &entries, &n);
        if (r < 0)
                return r;
        pointer = entry_find(entries, n, ENTRY_POINTER, NULL, 0);
        if (!pointer || pointer_read(k, ring.serial, pointer->info.serial, &p) < 0)
                return fail(k, KEYRING_FAILURE_NOT_LOADED, -ENOENT,
                            "the keyring of group %s has no readable pointer; load the group again", group);
        if (memcmp(p.group_id, group_id, KEYRING_GROUP_ID_BYTES) != 0)
                return fail(k, KEYRING_FAILURE_NOT_LOADED, -ENOENT,
                            "the keyring of group %s belongs to another group id; load the group again", group);
        if (ring.gid != gid)
                return fail(k, KEYRING_FAILURE_NOT_LOADED, -ENOENT,
                            "the keyring of group %s has gid %u, the store says %u; load the group again", group,
                            (unsigned) ring.gid, (unsigned) gid);
        *ret_ring = ring;
        *ret_entries = TAKE_PTR(entries);
        *ret_n = n;
        return 0;
}

int keyring_generation_find(Keyring *k, const char *group, const uint8_t group_id[KEYRING_GROUP_ID_BYTES], gid_t gid,
                            uint32_t generation, KeySerial *ret_key) {
        _cleanup_free_ Entry *entries = NULL;
        KeyringKeyInfo ring;
        Entry *e;
        size_t n;
        int r;

        k->failure = KEYRING_FAILURE_NONE;
        if (generation == 0)
                return fail(k, KEYRING_FAILURE_INVALID, -EINVAL, "invalid generation 0");
        r = ondemand_ring(k, group, group_id, gid, &ring, &entries, &n);
        if (r < 0)
                return r;
        e = entry_find(entries, n, ENTRY_GENERATION, group_id, generation);
        if (!e)
                return fail(k, KEYRING_FAILURE_NO_GENERATION, -ENOKEY, "group %s has no generation %u loaded", group,
                            (unsigned) generation);
        if (ret_key)
                *ret_key = e->info.serial;
        return 0;
}

int keyring_generation_load_timed(Keyring *k, const char *group, const uint8_t group_id[KEYRING_GROUP_ID_BYTES],
                                  gid_t gid, uint32_t generation, const Secret *key, unsigned timeout_sec,
                                  KeySerial *ret_key) {
        _cleanup_free_ Entry *entries = NULL;
        char desc[KEYRING_DESC_MAX];
        KeyringKeyInfo ring;
        Entry *e;
        size_t n;
        long s;
        int r;

        k->failure = KEYRING_FAILURE_NONE;
        if (keyring_generation_desc(group_id, generation, desc) < 0)
                return fail(k, KEYRING_FAILURE_INVALID, -EINVAL, "invalid generation 0");
        if (!key || key->size != KEYRING_KEY_BYTES || timeout_sec == 0)
                return fail(k, KEYRING_FAILURE_INVALID, -EINVAL, "invalid key or timeout");
        r = ondemand_ring(k, group, group_id, gid, &ring, &entries, &n);
        if (r < 0)
                return r;

        /* Hot, or loaded on demand by an earlier request: left exactly as it is. A hot key
         * must not gain a timeout, and an on-demand one keeps its own. */
        e = entry_find(entries, n, ENTRY_GENERATION, group_id, generation);
        if (e) {
                if (ret_key)
                        *ret_key = e->info.serial;
                return 0;
        }

        s = add_key("user", desc, key->data, key->size, k->staging);
        if (s < 0)
                return fail(k, KEYRING_FAILURE_KERNEL, negative_errno(), "cannot add key %s", desc);
        /* While it is still in staging (possessed, so possessor setattr applies): the key is
         * never in place without its timeout. */
        r = kr_errno(keyctl_set_timeout((KeySerial) s, timeout_sec));
        if (r < 0)
                return fail(k, KEYRING_FAILURE_KERNEL, r, "cannot set the timeout of key %s", desc);
        r = kr_place(k, (KeySerial) s, gid, KEYRING_PERM_KEY, ring.serial, desc);
        if (r < 0)
                return r;
        if (ret_key)
                *ret_key = (KeySerial) s;
        return 1;
}

int keyring_fail(Keyring *k, KeyringFailure failure, int r, const char *message) {
        return fail(k, failure, r, "%s", message);
}

int keyring_kr_describe(KeySerial serial, KeyringKeyInfo *ret) {
        return kr_describe(serial, ret);
}

int keyring_kr_list(KeySerial ring, KeySerial **ret, size_t *ret_n) {
        return kr_list(ring, ret, ret_n);
}

int keyring_user_link(uid_t uid, KeySerial ring) {
        return user_op(uid, ring, USER_LINK);
}
