/* SPDX-License-Identifier: MIT */
/* The runtime directory (/run/dkm): published keyring serials and the uids each group is linked to. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fileio.h"
#include "keyring-internal.h"

#define UIDS_FILE_MAX (KEYRING_MANIFEST_MEMBERS_MAX * 12U)

int keyring_fsgid_enter(gid_t gid, gid_t *ret_old) {
        /* setfsgid() reports the previous value, never an error: ask again to see if it took. */
        gid_t old = (gid_t) setfsgid((gid_t) -1);

        (void) setfsgid(gid);
        if ((gid_t) setfsgid((gid_t) -1) != gid) {
                (void) setfsgid(old);
                return -EPERM;
        }
        *ret_old = old;
        return 0;
}

void keyring_fsgid_leave(gid_t old) {
        (void) setfsgid(old);
}

int keyring_runtime_open(const char *path, int *ret_fd) {
        _cleanup_close_ int fd = -EBADF;
        struct stat st;

        if (!path || path[0] != '/')
                return -EINVAL;
        if (mkdir(path, 0755) < 0) {
                if (errno != EEXIST)
                        return negative_errno();
        } else
                (void) chmod(path, 0755); /* the umask may have narrowed it; members must traverse it */

        fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return errno == ELOOP ? -ENOTDIR : negative_errno();
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (st.st_uid != 0 || (st.st_mode & 022))
                return -EPERM;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

int keyring_runtime_write(int dirfd, const char *name, const void *data, size_t size, mode_t mode, gid_t gid) {
        gid_t old;
        int r;

        if (gid == (gid_t) -1)
                return write_file_atomic(dirfd, name, data, size, mode);
        /* fchown to a group needs membership (or CAP_CHOWN): take the gid as fsgid meanwhile. */
        r = keyring_fsgid_enter(gid, &old);
        if (r < 0)
                return r;
        r = write_file_atomic_owned(dirfd, name, data, size, mode, gid);
        keyring_fsgid_leave(old);
        return r;
}

int keyring_runtime_read_uids(int dirfd, const char *name, uid_t **ret, size_t *ret_n) {
        _cleanup_free_ char *text = NULL;
        _cleanup_free_ uid_t *uids = NULL;
        size_t size, n = 0;
        const char *p, *end;
        int r;

        r = read_file_full(dirfd, name, UIDS_FILE_MAX, &text, &size);
        if (r < 0)
                return r;
        uids = calloc(size / 2 + 1, sizeof(uid_t));
        if (!uids)
                return -ENOMEM;
        for (p = text, end = text + size; p < end;) {
                const char *nl = memchr(p, '\n', (size_t) (end - p));
                uint32_t v;

                if (!nl || keyring_parse_u32(p, (size_t) (nl - p), &v) < 0 || v == UINT32_MAX)
                        return -EBADMSG;
                if (n > 0 && uids[n - 1] >= v)
                        return -EBADMSG;
                uids[n++] = (uid_t) v;
                p = nl + 1;
        }
        *ret = TAKE_PTR(uids);
        *ret_n = n;
        return 0;
}

int keyring_runtime_write_uids(int dirfd, const char *name, const uid_t *uids, size_t n) {
        _cleanup_free_ char *text = NULL;
        size_t pos = 0;

        text = malloc(n * 12 + 1);
        if (!text)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                pos += (size_t) snprintf(text + pos, 12, "%u\n", (unsigned) uids[i]);
        /* Which accounts hold a group's keys is nobody else's business. */
        return keyring_runtime_write(dirfd, name, text, pos, 0600, (gid_t) -1);
}

int keyring_runtime_bump_epoch(int dirfd, const char *name, gid_t gid) {
        _cleanup_close_ int fd = -EBADF;
        struct timespec ts;
        struct stat st;
        uint64_t v;

        fd = openat(dirfd, name, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd >= 0 && fstat(fd, &st) >= 0 && S_ISREG(st.st_mode) && st.st_size == KEYRING_EPOCH_BYTES &&
            st.st_uid == 0 && pread(fd, &v, sizeof(v), 0) == (ssize_t) sizeof(v)) {
                v++;
                /* In place, never by rename: clients keep the file mapped and must see this
                 * very inode change. A reader racing the write may see a mix of old and new
                 * bytes, which differs from the old value unless no byte was written yet:
                 * either way it validates again, now or on its next call. */
                if (pwrite(fd, &v, sizeof(v), 0) != (ssize_t) sizeof(v))
                        return errno > 0 ? -errno : -EIO;
                if (st.st_gid == gid && (st.st_mode & 07777) == 0640)
                        return 0;
                /* The wrong group or mode: its readers have seen the bump; a new file follows. */
        }

        (void) clock_gettime(CLOCK_REALTIME, &ts);
        v = (uint64_t) ts.tv_sec * UINT64_C(1000000000) + (uint64_t) ts.tv_nsec;
        return keyring_runtime_write(dirfd, name, &v, sizeof(v), 0640, gid);
}

int keyring_runtime_read_serial(int dirfd, const char *name, KeySerial *ret) {
        _cleanup_free_ char *text = NULL;
        size_t size;
        int r;

        r = read_file_full(dirfd, name, 32, &text, &size);
        if (r < 0)
                return r;
        return keyring_serial_parse(text, size, ret);
}
