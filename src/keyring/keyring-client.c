/* SPDX-License-Identifier: MIT */
/* Client-side key lookups for libdkm, with the caller's own credentials. The client's only keyutils user. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <keyutils.h>

#include "fileio.h"
#include "keyring-client.h"

static uint64_t n_syscalls = 0;

/* Every key-service call goes through here, so the count covers them all. */
#define KC(call) (__atomic_fetch_add(&n_syscalls, 1, __ATOMIC_RELAXED), (call))

uint64_t keyring_client_syscalls(void) {
        return __atomic_load_n(&n_syscalls, __ATOMIC_RELAXED);
}

const char *keyring_client_runtime_dir(void) {
        /* secure_getenv: a set-id program linking libdkm must not let its caller point it at a
         * directory of forged serials. */
        const char *e = secure_getenv(KEYRING_RUNTIME_DIR_ENV);

        if (e && e[0] == '/')
                return e;
        return KEYRING_RUNTIME_DIR_DEFAULT;
}

/* Is a "type;uid;gid;perm;description" line (NUL-terminated) one of ours, of that type (and, if
 * desc is not NULL, that description)? Owned by uid 0: made by the helper (the caller's own uid
 * can create look-alikes in its own keyrings, root's are ours). Or a break-glass grant's
 * (KEYRING_PERM_GRANT_*): owned by the caller's uid, but with gid 0 and exactly the grant mask,
 * which a process without gid 0 cannot give a key it makes. */
static bool describe_is_ours(const char *buf, const char *type, const char *desc) {
        unsigned long uid, gid, perm;
        const char *fields[5];
        const char *p = buf;
        char *end;
        size_t tlen = strlen(type);

        for (int i = 0; i < 5; i++) {
                fields[i] = p;
                if (i < 4) {
                        p = strchr(p, ';');
                        if (!p)
                                return false;
                        p++;
                }
        }
        if (strncmp(fields[0], type, tlen) != 0 || fields[0][tlen] != ';')
                return false;
        if (desc && strcmp(fields[4], desc) != 0)
                return false;
        errno = 0;
        uid = strtoul(fields[1], &end, 10);
        if (errno != 0 || *end != ';')
                return false;
        if (uid == 0)
                return true;
        gid = strtoul(fields[2], &end, 10);
        if (errno != 0 || *end != ';')
                return false;
        perm = strtoul(fields[3], &end, 16);
        if (errno != 0 || *end != ';')
                return false;
        return uid == (unsigned long) geteuid() && gid == 0 &&
               perm == (strcmp(type, "keyring") == 0 ? KEYRING_PERM_GRANT_RING : KEYRING_PERM_GRANT_KEY);
}

/* Accept serial only if the kernel describes it as a key of ours of type with exactly desc. */
static int check_ours(KeySerial serial, const char *type, const char *desc) {
        char buf[256];
        long n;

        n = KC(keyctl_describe(serial, buf, sizeof(buf)));
        if (n < 0)
                return negative_errno();
        if ((size_t) n > sizeof(buf))
                return -ENOKEY; /* ours are short */
        buf[sizeof(buf) - 1] = 0;
        return describe_is_ours(buf, type, desc) ? 0 : -ENOKEY;
}

/* The runtime directory is trusted only as the helper leaves it: root's, writable by root only. */
static int open_runtime_dir(const char *runtime_dir) {
        _cleanup_close_ int fd = -EBADF;
        struct stat st;

        fd = open(runtime_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return negative_errno();
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (st.st_uid != 0 || (st.st_mode & 022))
                return -ENOENT;
        return TAKE_FD(fd);
}

static int read_serial_file(const char *runtime_dir, const char *group, KeySerial *ret) {
        _cleanup_close_ int dfd = -EBADF, fd = -EBADF;
        char name[KEYRING_FILE_NAME_MAX], text[32];
        struct stat st;
        ssize_t n;
        int r;

        r = keyring_serial_file_name(group, name);
        if (r < 0)
                return r;
        dfd = open_runtime_dir(runtime_dir);
        if (dfd < 0)
                return dfd;
        fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0)
                return negative_errno();
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode) || st.st_uid != 0)
                return -ENOENT;
        n = loop_read(fd, text, sizeof(text));
        if (n < 0)
                return (int) n;
        return keyring_serial_parse(text, (size_t) n, ret);
}

int keyring_client_find_group(const char *runtime_dir, const char *group, KeySerial *ret_ring) {
        char desc[KEYRING_DESC_MAX];
        KeySerial serial;
        long s;
        int r, r_user, r_file;

        r = keyring_group_desc(group, desc);
        if (r < 0)
                return r;

        s = KC(keyctl_search(KEY_SPEC_USER_KEYRING, "keyring", desc, 0));
        r_user = s < 0 ? negative_errno() : check_ours((KeySerial) s, "keyring", desc);
        if (r_user >= 0) {
                *ret_ring = (KeySerial) s;
                return 0;
        }

        r_file = read_serial_file(runtime_dir, group, &serial);
        if (r_file >= 0) {
                r_file = check_ours(serial, "keyring", desc);
                if (r_file >= 0) {
                        *ret_ring = serial;
                        return 0;
                }
        }

        /* A dead keyring of that name in our own user keyring: the helper links one into a
         * non-member's only for a break-glass grant, so its timeout ran out (or it was revoked),
         * and that is the answer the caller needs, not the gid it lacks. (A member's group
         * keyring is unlinked from its user keyring before it is invalidated.) */
        if (r_user == -EKEYEXPIRED || r_user == -EKEYREVOKED)
                return r_user;
        /* Refused either way: the caller lacks the gid, which is the answer it needs. */
        if (r_user == -EACCES || r_file == -EACCES)
                return -EACCES;
        if (r_file == -ENOMEM || r_user == -ENOMEM)
                return -ENOMEM;
        /* Unloaded (no file), invalidated, revoked or expired: nothing to use. */
        return -ENOKEY;
}

int keyring_client_read_pointer(KeySerial serial, KeyringPointer *ret) {
        uint8_t buf[KEYRING_POINTER_BYTES + 1];
        long n;

        n = KC(keyctl_read(serial, (char *) buf, sizeof(buf)));
        if (n < 0)
                return negative_errno();
        /* keyctl_read reports the full size even when it copied less: a longer payload must
         * not be parsed as a shorter one. */
        return keyring_pointer_unpack(buf, (size_t) n > sizeof(buf) ? sizeof(buf) : (size_t) n, ret);
}

int keyring_client_find_pointer(KeySerial ring, const char *group, KeySerial *ret_serial, KeyringPointer *ret) {
        char desc[KEYRING_DESC_MAX];
        KeyringPointer p;
        long s;
        int r;

        r = keyring_pointer_desc(group, desc);
        if (r < 0)
                return r;
        s = KC(keyctl_search(ring, "user", desc, 0));
        if (s < 0)
                return negative_errno();
        r = check_ours((KeySerial) s, "user", desc);
        if (r < 0)
                return r;
        r = keyring_client_read_pointer((KeySerial) s, &p);
        if (r < 0)
                return r;
        *ret_serial = (KeySerial) s;
        *ret = p;
        return 0;
}

int keyring_client_find_generation(KeySerial ring, const uint8_t id[KEYRING_GROUP_ID_BYTES], uint32_t generation,
                                   KeySerial *ret_key) {
        char desc[KEYRING_DESC_MAX];
        long s;
        int r;

        r = keyring_generation_desc(id, generation, desc);
        if (r < 0)
                return r;
        s = KC(keyctl_search(ring, "user", desc, 0));
        if (s < 0)
                return negative_errno();
        /* Also keeps out the request-key marker, which its requester owns. */
        r = check_ours((KeySerial) s, "user", desc);
        if (r < 0)
                return r;
        *ret_key = (KeySerial) s;
        return 0;
}

static const KeySerial request_default_keyrings[] = { KEY_SPEC_THREAD_KEYRING, KEY_SPEC_PROCESS_KEYRING,
                                                      KEY_SPEC_SESSION_KEYRING, KEY_SPEC_USER_SESSION_KEYRING };

int keyring_client_request_generation(const uint8_t id[KEYRING_GROUP_ID_BYTES], uint32_t generation) {
        char desc[KEYRING_DESC_MAX];
        long s;
        int r;

        r = keyring_generation_desc(id, generation, desc);
        if (r < 0)
                return r;
        /* The answer is a marker in our default keyring, never the key: the real key lands in
         * the group keyring, where the caller searches next. */
        s = KC(request_key("user", desc, KEYRING_REQUEST_CALLOUT, 0));
        if (s < 0)
                return negative_errno();
        /* The marker has said what it had to. Left in our default keyring it would answer the
         * next request_key() for up to 5 s without an upcall, though a load may have invalidated
         * the real key meanwhile (outside the hot window): ENOKEY for a generation the store
         * has. Unlinked rather than invalidated, which searches would meet as EKEYREVOKED until
         * the garbage collector runs. The default keyring is the first of these that exists. */
        for (size_t i = 0; i < ELEMENTSOF(request_default_keyrings); i++)
                if (KC(keyctl_unlink((KeySerial) s, request_default_keyrings[i])) >= 0)
                        break;
        return 0;
}

int keyring_client_check_key(KeySerial serial) {
        long n;

        n = KC(keyctl_read(serial, NULL, 0));
        if (n < 0)
                return negative_errno();
        return n == KEYRING_KEY_BYTES ? 0 : -EBADMSG;
}

int keyring_client_read_key_into(KeySerial serial, uint8_t ret[KEYRING_KEY_BYTES]) {
        long n;

        /* One call: keyctl_read() copies at most the buffer and returns the payload's size. */
        n = KC(keyctl_read(serial, (char *) ret, KEYRING_KEY_BYTES));
        if (n < 0)
                return negative_errno();
        if (n != KEYRING_KEY_BYTES) {
                secret_wipe(ret, KEYRING_KEY_BYTES);
                return -EBADMSG;
        }
        return 0;
}

static int strv_add_unique(char ***l, size_t *n, const char *s, size_t len) {
        char **nl;

        for (size_t i = 0; i < *n; i++)
                if (strlen((*l)[i]) == len && strncmp((*l)[i], s, len) == 0)
                        return 0;
        nl = realloc(*l, (*n + 2) * sizeof(char *));
        if (!nl)
                return -ENOMEM;
        *l = nl;
        nl[*n] = strndup(s, len);
        if (!nl[*n])
                return -ENOMEM;
        nl[++*n] = NULL;
        return 0;
}

/* "dkm:<name>" keyrings linked straight into our user keyring. A listing holds no key bytes. */
static int list_user_keyring(char ***l, size_t *n) {
        _cleanup_free_ KeySerial *list = NULL;
        long size, got;
        int r;

        size = KC(keyctl_read(KEY_SPEC_USER_KEYRING, NULL, 0));
        if (size <= 0)
                return 0; /* no user keyring to speak of: nothing linked */
        list = malloc((size_t) size + 16 * sizeof(KeySerial));
        if (!list)
                return -ENOMEM;
        got = KC(keyctl_read(KEY_SPEC_USER_KEYRING, (char *) list, (size_t) size + 16 * sizeof(KeySerial)));
        if (got < 0)
                return 0;
        got = MIN(got, size + 16 * (long) sizeof(KeySerial));
        for (long i = 0; i < got / (long) sizeof(KeySerial); i++) {
                char buf[256], *name;
                long d = KC(keyctl_describe(list[i], buf, sizeof(buf)));

                if (d < 0 || (size_t) d > sizeof(buf))
                        continue;
                buf[sizeof(buf) - 1] = 0;
                if (!describe_is_ours(buf, "keyring", NULL))
                        continue;
                name = strrchr(buf, ';');
                if (!name || strncmp(name + 1, KEYRING_DESC_PREFIX, strlen(KEYRING_DESC_PREFIX)) != 0)
                        continue;
                name += 1 + strlen(KEYRING_DESC_PREFIX);
                if (!keyring_group_name_is_valid(name))
                        continue;
                r = strv_add_unique(l, n, name, strlen(name));
                if (r < 0)
                        return r;
        }
        return 0;
}

static int list_runtime_dir(const char *runtime_dir, char ***l, size_t *n) {
        const size_t slen = strlen(KEYRING_SERIAL_FILE_SUFFIX);
        struct dirent *de;
        DIR *d;
        int fd, r = 0;

        fd = open_runtime_dir(runtime_dir);
        if (fd < 0)
                return 0; /* no runtime directory: nothing published */
        d = fdopendir(fd);
        if (!d) {
                safe_close(fd);
                return -ENOMEM;
        }
        while ((de = readdir(d))) {
                size_t len = strlen(de->d_name);
                char name[KEYRING_GROUP_NAME_MAX + 1];

                if (len <= slen || len - slen > KEYRING_GROUP_NAME_MAX ||
                    strcmp(de->d_name + len - slen, KEYRING_SERIAL_FILE_SUFFIX) != 0)
                        continue;
                memcpy(name, de->d_name, len - slen);
                name[len - slen] = 0;
                if (!keyring_group_name_is_valid(name))
                        continue;
                r = strv_add_unique(l, n, name, len - slen);
                if (r < 0)
                        break;
        }
        closedir(d);
        return r;
}

int keyring_client_list_groups(const char *runtime_dir, char ***ret) {
        _cleanup_strv_free_ char **l = NULL;
        size_t n = 0;
        int r;

        l = calloc(1, sizeof(char *));
        if (!l)
                return -ENOMEM;
        r = list_user_keyring(&l, &n);
        if (r < 0)
                return r;
        r = list_runtime_dir(runtime_dir, &l, &n);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(l);
        return 0;
}

void keyring_client_runtime_stamp(const char *runtime_dir, struct timespec *ret) {
        struct stat st;

        *ret = (struct timespec){};
        if (stat(runtime_dir, &st) >= 0)
                *ret = st.st_mtim;
}

static int epoch_stat_path(const char *runtime_dir, const char *group, int *ret_dfd, char name[KEYRING_FILE_NAME_MAX]) {
        int r = keyring_epoch_file_name(group, name);

        if (r < 0)
                return r;
        *ret_dfd = open_runtime_dir(runtime_dir);
        return *ret_dfd < 0 ? *ret_dfd : 0;
}

int keyring_client_epoch_map(const char *runtime_dir, const char *group, KeyringEpoch *ret) {
        _cleanup_close_ int dfd = -EBADF, fd = -EBADF;
        char name[KEYRING_FILE_NAME_MAX];
        struct stat st;
        void *p;
        int r;

        r = epoch_stat_path(runtime_dir, group, &dfd, name);
        if (r < 0)
                return r;
        fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0)
                return negative_errno();
        if (fstat(fd, &st) < 0)
                return negative_errno();
        /* The helper never truncates it (a shorter file would make the mapping fault). */
        if (!S_ISREG(st.st_mode) || st.st_uid != 0 || st.st_size != KEYRING_EPOCH_BYTES)
                return -EBADMSG;
        p = mmap(NULL, KEYRING_EPOCH_BYTES, PROT_READ, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
                return negative_errno();
        *ret = (KeyringEpoch){ .value = p, .dev = st.st_dev, .ino = st.st_ino };
        return 0;
}

void keyring_client_epoch_unmap(KeyringEpoch *e) {
        if (e->value)
                (void) munmap((void *) e->value, KEYRING_EPOCH_BYTES);
        *e = (KeyringEpoch){};
}

bool keyring_client_epoch_is_current(const char *runtime_dir, const char *group, const KeyringEpoch *e) {
        _cleanup_close_ int dfd = -EBADF;
        char name[KEYRING_FILE_NAME_MAX];
        struct stat st;

        if (!e->value || epoch_stat_path(runtime_dir, group, &dfd, name) < 0)
                return false;
        if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return false;
        return st.st_dev == e->dev && st.st_ino == e->ino;
}
