/* SPDX-License-Identifier: MIT */
/* Durable file I/O helpers. */
#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"

int loop_write(int fd, const void *data, size_t size) {
        const uint8_t *p = data;

        while (size > 0) {
                ssize_t n = write(fd, p, size);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (n == 0)
                        return -EIO;
                p += n;
                size -= (size_t) n;
        }
        return 0;
}

ssize_t loop_read(int fd, void *data, size_t size) {
        uint8_t *p = data;
        size_t done = 0;

        while (done < size) {
                ssize_t n = read(fd, p + done, size - done);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (n == 0)
                        break;
                done += (size_t) n;
        }
        return (ssize_t) done;
}

int fsync_dir(int dirfd) {
        if (fsync(dirfd) < 0)
                return negative_errno();
        return 0;
}

static int write_and_sync(int fd, const void *data, size_t size) {
        int r = loop_write(fd, data, size);
        if (r < 0)
                return r;
        if (fsync(fd) < 0)
                return negative_errno();
        return 0;
}

int write_file_atomic_owned(int dirfd, const char *name, const void *data, size_t size, mode_t mode, gid_t gid) {
        char tmp[256];
        _cleanup_close_ int fd = -EBADF;
        int r;

        if (snprintf(tmp, sizeof(tmp), ".#%s.%ld.tmp", name, (long) getpid()) >= (int) sizeof(tmp))
                return -ENAMETOOLONG;

        (void) unlinkat(dirfd, tmp, 0); /* a leftover from a crashed writer with a recycled pid */
        /* Private until owner and mode are final, so no other group ever sees the content. */
        fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return negative_errno();
        if (gid != (gid_t) -1 && fchown(fd, (uid_t) -1, gid) < 0) {
                r = negative_errno();
                goto fail;
        }
        if (fchmod(fd, mode) < 0) {
                r = negative_errno();
                goto fail;
        }
        r = write_and_sync(fd, data, size);
        if (r < 0)
                goto fail;
        if (renameat(dirfd, tmp, dirfd, name) < 0) {
                r = negative_errno();
                goto fail;
        }
        return fsync_dir(dirfd);
fail:
        (void) unlinkat(dirfd, tmp, 0);
        return r;
}

int write_file_atomic(int dirfd, const char *name, const void *data, size_t size, mode_t mode) {
        return write_file_atomic_owned(dirfd, name, data, size, mode, (gid_t) -1);
}

int write_file_atomic_in(const char *dir_path, const char *name, const void *data, size_t size, mode_t mode) {
        _cleanup_close_ int dfd = open(dir_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

        if (dfd < 0)
                return negative_errno();
        return write_file_atomic(dfd, name, data, size, mode);
}

int read_file_full_in(const char *dir_path, const char *name, size_t max, char **ret, size_t *ret_size) {
        _cleanup_close_ int dfd = open(dir_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

        if (dfd < 0)
                return negative_errno();
        return read_file_full(dfd, name, max, ret, ret_size);
}

int write_file_exclusive(int dirfd, const char *name, const void *data, size_t size, mode_t mode) {
        _cleanup_close_ int fd = -EBADF;
        int r;

        fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd < 0)
                return negative_errno();
        if (fchmod(fd, mode) < 0) {
                r = negative_errno();
                goto fail;
        }
        r = write_and_sync(fd, data, size);
        if (r < 0)
                goto fail;
        return fsync_dir(dirfd);
fail:
        (void) unlinkat(dirfd, name, 0);
        return r;
}

int read_file_full(int dirfd, const char *name, size_t max, char **ret, size_t *ret_size) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *buf = NULL;
        struct stat st;
        ssize_t n;

        fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0)
                return negative_errno();
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        if ((uint64_t) st.st_size > max)
                return -EFBIG;

        buf = malloc((size_t) st.st_size + 1);
        if (!buf)
                return -ENOMEM;
        n = loop_read(fd, buf, (size_t) st.st_size);
        if (n < 0)
                return (int) n;
        buf[n] = 0;
        *ret = TAKE_PTR(buf);
        if (ret_size)
                *ret_size = (size_t) n;
        return 0;
}

int open_dir_nofollow(int dirfd, const char *path, mode_t create_mode, int create) {
        int fd;

        if (create && mkdirat(dirfd, path, create_mode) < 0 && errno != EEXIST)
                return negative_errno();
        fd = openat(dirfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return errno == ENOTDIR ? -ENOTDIR : negative_errno();
        return fd;
}

int unlink_durable(int dirfd, const char *name) {
        if (unlinkat(dirfd, name, 0) < 0) {
                if (errno == ENOENT)
                        return 0;
                return negative_errno();
        }
        return fsync_dir(dirfd);
}
