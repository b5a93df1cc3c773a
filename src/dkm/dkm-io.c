/* SPDX-License-Identifier: MIT */
/* Input and output for the dkm CLI: bounded reads, and output files that appear only when complete. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "dkm-io.h"
#include "fileio.h"
#include "secret.h"

void buffer_wipe_free(Buffer *b) {
        if (b->data) {
                secret_wipe(b->data, b->cap);
                free(b->data);
        }
        *b = (Buffer){};
}

static int buffer_grow(Buffer *b, size_t want) {
        size_t cap = b->cap ? b->cap : 64 * 1024;
        uint8_t *n;

        while (cap < want)
                cap = cap > SIZE_MAX / 2 ? want : cap * 2;
        if (cap == b->cap)
                return 0;
        /* Not realloc: the old block may hold plaintext and must be wiped, not just freed. */
        n = malloc(cap);
        if (!n)
                return -ENOMEM;
        if (b->size > 0)
                memcpy(n, b->data, b->size);
        if (b->data) {
                secret_wipe(b->data, b->cap);
                free(b->data);
        }
        b->data = n;
        b->cap = cap;
        return 0;
}

int buffer_read(Buffer *b, int fd, size_t max, bool *ret_eof) {
        for (;;) {
                size_t room;
                ssize_t n;
                int r;

                if (b->size >= max) {
                        *ret_eof = false;
                        return 0;
                }
                if (b->size == b->cap) {
                        r = buffer_grow(b, MIN(b->cap + 1, max));
                        if (r < 0)
                                return r;
                }
                room = MIN(b->cap, max) - b->size;
                n = read(fd, b->data + b->size, room);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (n == 0) {
                        *ret_eof = true;
                        return 0;
                }
                b->size += (size_t) n;
        }
}

int output_open(Output *o, const char *path, mode_t mode) {
        _cleanup_free_ char *dir = NULL;
        const char *slash;
        uint64_t rnd;

        *o = (Output){ .fd = -EBADF, .dirfd = -EBADF };
        if (!path || strcmp(path, "-") == 0) {
                o->fd = STDOUT_FILENO;
                o->is_stdout = true;
                return 0;
        }
        slash = strrchr(path, '/');
        dir = slash ? strndup(path, slash == path ? 1 : (size_t) (slash - path)) : strdup(".");
        o->name = strdup(slash ? slash + 1 : path);
        if (!dir || !o->name)
                return -ENOMEM;
        if (o->name[0] == 0)
                return -EISDIR;
        o->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (o->dirfd < 0)
                return negative_errno();
        /* In FILE's own directory so the rename is atomic; a random name so concurrent runs
         * (and a file a local user planted) do not collide: O_EXCL refuses to follow one. */
        if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t) sizeof(rnd))
                return -EIO;
        if (snprintf(o->tmp, sizeof(o->tmp), ".#%.200s.%016llx", o->name, (unsigned long long) rnd) >=
            (int) sizeof(o->tmp))
                return -ENAMETOOLONG;
        o->fd = openat(o->dirfd, o->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
        if (o->fd < 0) {
                o->tmp[0] = 0;
                return negative_errno();
        }
        return 0;
}

int output_write(Output *o, const void *data, size_t size) {
        return size > 0 ? loop_write(o->fd, data, size) : 0;
}

int output_commit(Output *o) {
        if (o->is_stdout)
                return 0;
        if (fsync(o->fd) < 0)
                return negative_errno();
        if (renameat(o->dirfd, o->tmp, o->dirfd, o->name) < 0)
                return negative_errno();
        o->tmp[0] = 0;
        return fsync_dir(o->dirfd);
}

void output_abort(Output *o) {
        if (o->dirfd >= 0 && o->tmp[0]) {
                (void) unlinkat(o->dirfd, o->tmp, 0);
                o->tmp[0] = 0;
        }
}

void output_close(Output *o) {
        output_abort(o);
        if (!o->is_stdout)
                safe_close(o->fd);
        safe_close(o->dirfd);
        free(o->name);
        *o = (Output){ .fd = -EBADF, .dirfd = -EBADF };
}
