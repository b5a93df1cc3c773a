/* SPDX-License-Identifier: MIT */
/* Store lifecycle: create and open the state directory safely, the format file, the write lock, errors. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fileio.h"
#include "protector.h"
#include "store-internal.h"

#define FORMAT_MAGIC "dkm-store "
#define FORMAT_FILE_MAX 4096U

/* store_init() and store_open() fail before there is a Store to hold the message. */
static _Thread_local char open_error[STORE_ERROR_MAX];

int store_error(Store *s, int r, const char *rel, const char *fmt, ...) {
        va_list ap;
        int n;

        n = snprintf(s->error, sizeof(s->error), "%s%s%s: ", s->path, rel ? "/" : "", rel ?: "");
        if (n < 0 || (size_t) n >= sizeof(s->error))
                return r;
        va_start(ap, fmt);
        (void) vsnprintf(s->error + n, sizeof(s->error) - (size_t) n, fmt, ap);
        va_end(ap);
        return r;
}

int store_error_parse(Store *s, int r, const char *rel, const KvError *e) {
        if (e->line > 0)
                return store_error(s, r, rel, "line %u: %s", e->line, e->msg);
        return store_error(s, r, rel, "%s", e->msg);
}

void store_error_clear(Store *s) {
        s->error[0] = 0;
}

int store_finish(Store *s, int r) {
        if (r < 0 && s->error[0] == 0)
                (void) store_error(s, r, NULL, "%s", strerror(-r));
        return r;
}

int store_read_state_file(Store *s, const char *rel, size_t max, char **ret, size_t *ret_size) {
        int r = read_file_full(s->dir_fd, rel, max, ret, ret_size);

        if (r >= 0 || r == -ENOENT)
                return r;
        if (r == -ELOOP || r == -EBADFD)
                return store_error(s, -EBADMSG, rel, "not a regular file");
        if (r == -EFBIG)
                return store_error(s, -EBADMSG, rel, "too large");
        return store_error(s, r, rel, "cannot read: %s", strerror(-r));
}

const char *store_last_error(const Store *s) {
        const char *e = s ? s->error : open_error;
        return e[0] ? e : NULL;
}

const char *store_path(const Store *s) {
        return s->path;
}

bool store_is_unlocked(const Store *s) {
        return s && s->root_key;
}

uint64_t store_now_usec(void) {
        struct timespec ts;
        uint64_t t;

        (void) clock_gettime(CLOCK_REALTIME, &ts);
        t = (uint64_t) ts.tv_sec * 1000000U + (uint64_t) ts.tv_nsec / 1000U;
        return t ?: 1; /* 0 means "not yet" in group files */
}

Store *store_free(Store *s) {
        if (!s)
                return NULL;
        safe_close(s->dir_fd);
        safe_close(s->protectors_fd);
        safe_close(s->groups_fd);
        secret_free(s->root_key);
        free(s->path);
        free(s);
        return NULL;
}

static int store_new(const char *dir, Store **ret) {
        _cleanup_store_ Store *s = NULL;
        size_t n;

        if (!dir || !*dir)
                return -EINVAL;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->dir_fd = s->protectors_fd = s->groups_fd = -EBADF;
        s->path = strdup(dir);
        if (!s->path)
                return -ENOMEM;
        /* A trailing slash makes the kernel follow a final symlink even with O_NOFOLLOW. */
        n = strlen(s->path);
        while (n > 1 && s->path[n - 1] == '/')
                s->path[--n] = 0;
        *ret = TAKE_PTR(s);
        return 0;
}

/* The state directory and its subdirectories must be ours alone: anyone else who could write
 * there could swap files under us, anyone who could read could copy wrapped keys offline. */
static int check_dir(Store *s, int fd, const char *rel) {
        struct stat st;

        if (fstat(fd, &st) < 0)
                return store_error(s, negative_errno(), rel, "cannot stat: %s", strerror(errno));
        if (!S_ISDIR(st.st_mode))
                return store_error(s, -ENOTDIR, rel, "not a directory");
        if (st.st_uid != geteuid())
                return store_error(s, -EPERM, rel, "owned by uid %u, not by this process's uid %u; refusing to use it",
                                   (unsigned) st.st_uid, (unsigned) geteuid());
        if (st.st_mode & 0077)
                return store_error(s, -EPERM, rel, "mode %04o lets other users in; it must be 0700 (chmod 0700 it)",
                                   (unsigned) (st.st_mode & 07777));
        return 0;
}

/* A directory we create must survive a crash like the files in it: its entry lives in the parent. */
static void fsync_parent(int parent_fd, const char *path) {
        _cleanup_free_ char *p = NULL;
        _cleanup_close_ int fd = -EBADF;
        char *slash;

        if (parent_fd != AT_FDCWD) {
                (void) fsync_dir(parent_fd);
                return;
        }
        p = strdup(path);
        if (!p)
                return;
        slash = strrchr(p, '/');
        if (!slash)
                strcpy(p, ".");
        else
                slash[slash == p ? 1 : 0] = 0;
        fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd >= 0)
                (void) fsync_dir(fd);
}

static int open_dir_checked(Store *s, int parent_fd, const char *name, const char *rel, bool create, int *ret_fd) {
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        int r;

        if (create) {
                if (mkdirat(parent_fd, name, 0700) >= 0)
                        fsync_parent(parent_fd, name);
                else if (errno != EEXIST)
                        return store_error(s, negative_errno(), rel, "cannot create directory: %s", strerror(errno));
        }
        if (fstatat(parent_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                r = negative_errno();
                if (r == -ENOENT)
                        return store_error(s, r, rel, "does not exist");
                return store_error(s, r, rel, "cannot stat: %s", strerror(-r));
        }
        if (S_ISLNK(st.st_mode))
                return store_error(s, -ELOOP, rel, "is a symlink; refusing to follow it (give the real path)");
        fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
                r = negative_errno();
                return store_error(s, r == -ELOOP ? -ELOOP : r, rel, "cannot open directory: %s", strerror(-r));
        }
        r = check_dir(s, fd, rel);
        if (r < 0)
                return r;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

static int open_state_dir(Store *s, bool create) {
        return open_dir_checked(s, AT_FDCWD, s->path, NULL, create, &s->dir_fd);
}

static int open_subdirs(Store *s, bool create) {
        int r;

        r = open_dir_checked(s, s->dir_fd, STORE_PROTECTORS_DIR, STORE_PROTECTORS_DIR, create, &s->protectors_fd);
        if (r == -ENOENT)
                return store_error(s, -EBADMSG, STORE_PROTECTORS_DIR, "missing; the store is damaged");
        if (r < 0)
                return r;
        r = open_dir_checked(s, s->dir_fd, STORE_GROUPS_DIR, STORE_GROUPS_DIR, create, &s->groups_fd);
        if (r == -ENOENT)
                return store_error(s, -EBADMSG, STORE_GROUPS_DIR, "missing; the store is damaged");
        return r;
}

/* "dkm-store N\nstore-id=HEX\nchecksum=HEX\n". The version line comes first and is checked before
 * anything else, so a later format may change everything after it and still get a clear refusal. */
static int read_format(Store *s) {
        _cleanup_free_ char *data = NULL;
        uint64_t version;
        KvReader rd = {};
        KvError e = {};
        size_t size, body;
        char *nl;
        int r;

        r = store_read_state_file(s, STORE_FORMAT_FILE, FORMAT_FILE_MAX, &data, &size);
        if (r == -ENOENT)
                return store_error(s, r, NULL, "not a dkm key store (no format file)");
        if (r < 0)
                return r;

        nl = memchr(data, '\n', size);
        if (!nl || strncmp(data, FORMAT_MAGIC, strlen(FORMAT_MAGIC)) != 0)
                return store_error(s, -EBADMSG, STORE_FORMAT_FILE, "line 1: not \"%s<version>\"", FORMAT_MAGIC);
        *nl = 0;
        if (kv_parse_u64(data + strlen(FORMAT_MAGIC), UINT32_MAX, &version) < 0 || version == 0)
                return store_error(s, -EBADMSG, STORE_FORMAT_FILE, "line 1: malformed version");
        if (version > STORE_FORMAT_VERSION)
                return store_error(s, -EPROTONOSUPPORT, STORE_FORMAT_FILE,
                                   "store format %llu was written by a newer dkm; this one reads format %d. "
                                   "Upgrade dkm to use this store.",
                                   (unsigned long long) version, STORE_FORMAT_VERSION);
        *nl = '\n';

        r = kvfile_verify(data, size, &body, &e);
        if (r < 0)
                return store_error_parse(s, r, STORE_FORMAT_FILE, &e);
        r = kvreader_init(&rd, nl + 1, body - (size_t) (nl + 1 - data));
        if (r < 0)
                return r;
        rd.line = 1;
        r = kvreader_next(&rd, &e);
        if (r == 0)
                r = kverror_set(&e, 0, "store-id missing");
        else if (r > 0) {
                if (strcmp(rd.key, "store-id") != 0 || kv_parse_hex(rd.value, s->id, sizeof(s->id)) < 0)
                        r = kverror_set(&e, rd.line, "expected store-id=<%u hex bytes>", STORE_ID_BYTES);
                else {
                        r = kvreader_next(&rd, &e);
                        if (r > 0)
                                r = kverror_set(&e, rd.line, "unexpected line");
                }
        }
        kvreader_done(&rd);
        if (r < 0)
                return store_error_parse(s, r, STORE_FORMAT_FILE, &e);
        return 0;
}

static int write_format(Store *s) {
        _cleanup_free_ char *data = NULL;
        KvBuf b = {};
        size_t size;
        int r;

        kvbuf_printf(&b, FORMAT_MAGIC "%d\nstore-id=", STORE_FORMAT_VERSION);
        kvbuf_put_hex(&b, s->id, sizeof(s->id));
        kvbuf_printf(&b, "\n");
        r = kvbuf_finish(&b, &data, &size);
        kvbuf_done(&b);
        if (r < 0)
                return r;
        r = write_file_atomic(s->dir_fd, STORE_FORMAT_FILE, data, size, 0600);
        if (r < 0)
                return store_error(s, r, STORE_FORMAT_FILE, "cannot write: %s", strerror(-r));
        return 0;
}

static int strcmp_ptr(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

int store_list_dir(int dir_fd, const char *suffix, char ***ret) {
        _cleanup_strv_free_ char **l = NULL;
        _cleanup_close_ int fd = -EBADF;
        size_t n = 0, allocated = 0;
        struct dirent *de;
        DIR *d;

        /* A fresh open file description: a dup()ed one would share (and move) the offset. */
        fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        d = fdopendir(fd);
        if (!d)
                return negative_errno();
        TAKE_FD(fd);

        l = calloc(1, sizeof(char *));
        if (!l) {
                closedir(d);
                return -ENOMEM;
        }
        allocated = 1;
        while ((de = readdir(d))) {
                size_t len = strlen(de->d_name), sl = strlen(suffix);
                char *name;

                if (len <= sl || strcmp(de->d_name + len - sl, suffix) != 0)
                        continue;
                name = strndup(de->d_name, len - sl);
                if (!name)
                        break;
                if (!store_group_name_is_valid(name)) {
                        free(name); /* temp files (".#...") and strays are not ours to list */
                        continue;
                }
                if (n + 2 > allocated) {
                        char **nl = realloc(l, 2 * allocated * sizeof(char *));
                        if (!nl) {
                                free(name);
                                break;
                        }
                        l = nl;
                        allocated *= 2;
                }
                l[n++] = name;
                l[n] = NULL;
        }
        closedir(d);
        if (de)
                return -ENOMEM;
        qsort(l, n, sizeof(char *), strcmp_ptr);
        *ret = TAKE_PTR(l);
        return 0;
}

static void remove_temp_files(int dir_fd) {
        _cleanup_close_ int fd = -EBADF;
        struct dirent *de;
        DIR *d;

        fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return;
        d = fdopendir(fd);
        if (!d)
                return;
        TAKE_FD(fd);
        while ((de = readdir(d))) {
                size_t len = strlen(de->d_name);
                /* write_file_atomic()'s ".#NAME.PID.tmp" */
                if (len > 6 && strncmp(de->d_name, ".#", 2) == 0 && strcmp(de->d_name + len - 4, ".tmp") == 0)
                        (void) unlinkat(dir_fd, de->d_name, 0);
        }
        closedir(d);
}

int store_lock(Store *s, int *ret_fd) {
        _cleanup_close_ int fd = -EBADF;

        fd = openat(s->dir_fd, STORE_LOCK_FILE, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
        if (fd < 0)
                return store_error(s, negative_errno(), STORE_LOCK_FILE, "cannot open: %s", strerror(errno));
        while (flock(fd, LOCK_EX) < 0)
                if (errno != EINTR)
                        return store_error(s, negative_errno(), STORE_LOCK_FILE, "cannot lock: %s", strerror(errno));

        /* A killed writer's temp file may hold wrapped keys retired since; none may outlive the
         * next commit, whose directory fsync also makes these unlinks durable. */
        remove_temp_files(s->dir_fd);
        if (s->groups_fd >= 0)
                remove_temp_files(s->groups_fd);
        if (s->protectors_fd >= 0)
                remove_temp_files(s->protectors_fd);
        *ret_fd = TAKE_FD(fd);
        return 0;
}

/* What init and join share: the directory is not a store yet, and holds no group file. */
static int check_new_store(Store *s) {
        _cleanup_strv_free_ char **groups = NULL;
        struct stat st;
        int r;

        if (fstatat(s->dir_fd, STORE_FORMAT_FILE, &st, AT_SYMLINK_NOFOLLOW) == 0)
                return store_error(s, -EEXIST, NULL, "already a dkm key store");
        r = open_subdirs(s, true);
        if (r < 0)
                return r;
        r = store_list_dir(s->groups_fd, STORE_GROUP_SUFFIX, &groups);
        if (r < 0)
                return store_error(s, r, STORE_GROUPS_DIR, "cannot list: %s", strerror(-r));
        if (groups[0])
                return store_error(s, -EEXIST, STORE_GROUPS_DIR, "holds group files but the store has no format "
                                   "file; refusing to initialize over them");
        return 0;
}

static int init_locked(Store *s, const void *userdata) {
        const Secret *passphrase = userdata;
        _cleanup_strv_free_ char **protectors = NULL;
        int r;

        r = check_new_store(s);
        if (r < 0)
                return r;
        /* Without a format file and groups, protectors can only be an interrupted init's: they
         * guard a root key that wraps nothing. */
        r = store_list_dir(s->protectors_fd, STORE_PROTECTOR_SUFFIX, &protectors);
        if (r < 0)
                return store_error(s, r, STORE_PROTECTORS_DIR, "cannot list: %s", strerror(-r));
        for (char **p = protectors; *p; p++) {
                char fn[STORE_PROTECTOR_NAME_MAX + 16];
                snprintf(fn, sizeof(fn), "%s" STORE_PROTECTOR_SUFFIX, *p);
                (void) unlinkat(s->protectors_fd, fn, 0);
                snprintf(fn, sizeof(fn), "%s" STORE_KEYFILE_SUFFIX, *p);
                (void) unlinkat(s->protectors_fd, fn, 0);
        }

        crypt_random(s->id, sizeof(s->id));
        r = crypt_keygen(&s->root_key);
        if (r < 0)
                return r;
        r = protector_add_locked(s, passphrase ? &protector_passphrase_ops : &protector_file_ops,
                                 passphrase ? "passphrase" : "local", passphrase, NULL);
        if (r < 0)
                return r;
        /* Last: the format file is what makes the directory a store. */
        return write_format(s);
}

/* A store that joins a fleet: its identity is the fleet's, and its root key comes later, sealed
 * to this host by an enrolled one (an x25519 protector); until then it holds no protector. */
static int join_locked(Store *s, const void *userdata) {
        int r;

        r = check_new_store(s);
        if (r < 0)
                return r;
        memcpy(s->id, userdata, STORE_ID_BYTES);
        return write_format(s);
}

/* Make dir (0700) a new store under the write lock; fill writes its first files. */
static int create_store(const char *dir, int (*fill)(Store *s, const void *userdata), const void *userdata,
                        Store **ret) {
        _cleanup_store_ Store *s = NULL;
        _cleanup_close_ int lock_fd = -EBADF;
        int r;

        open_error[0] = 0;
        r = crypt_init();
        if (r < 0)
                return r;
        r = store_new(dir, &s);
        if (r < 0)
                return r;
        r = open_state_dir(s, true);
        if (r >= 0)
                r = store_lock(s, &lock_fd);
        if (r >= 0)
                r = fill(s, userdata);
        if (r < 0) {
                (void) store_finish(s, r);
                memcpy(open_error, s->error, sizeof(open_error));
                return r;
        }
        *ret = TAKE_PTR(s);
        return 0;
}

int store_init(const char *dir, const Secret *passphrase, Store **ret) {
        return create_store(dir, init_locked, passphrase, ret);
}

int store_join(const char *dir, const uint8_t id[static STORE_ID_BYTES], Store **ret) {
        return create_store(dir, join_locked, id, ret);
}

void store_id(const Store *s, uint8_t ret[static STORE_ID_BYTES]) {
        memcpy(ret, s->id, STORE_ID_BYTES);
}

int store_open(const char *dir, Store **ret) {
        _cleanup_store_ Store *s = NULL;
        int r;

        open_error[0] = 0;
        r = crypt_init();
        if (r < 0)
                return r;
        r = store_new(dir, &s);
        if (r < 0)
                return r;
        r = open_state_dir(s, false);
        if (r >= 0)
                r = read_format(s);
        if (r >= 0)
                r = open_subdirs(s, false);
        if (r < 0) {
                (void) store_finish(s, r);
                memcpy(open_error, s->error, sizeof(open_error));
                return r;
        }
        *ret = TAKE_PTR(s);
        return 0;
}
