/* SPDX-License-Identifier: MIT */
/* Durable file I/O: atomic replace (temp, fsync, rename, fsync dir), bounded no-follow reads. */
#pragma once

#include <stddef.h>
#include <sys/types.h>

#include "macro.h"

/* Replace dirfd/name atomically with data; the file gets mode, the directory is fsynced. */
int write_file_atomic(int dirfd, const char *name, const void *data, size_t size, mode_t mode) _warn_unused_result_;
/* write_file_atomic() into the directory at dir_path (opened, refusing nothing more than open()
 * does, for callers that keep a path rather than a descriptor). */
int write_file_atomic_in(const char *dir_path, const char *name, const void *data, size_t size,
                         mode_t mode) _warn_unused_result_;
/* The same, also giving the file group gid ((gid_t) -1: unchanged) before it gets mode. */
int write_file_atomic_owned(int dirfd, const char *name, const void *data, size_t size, mode_t mode,
                            gid_t gid) _warn_unused_result_;

/* Create dirfd/name with O_EXCL, write, fsync, fsync dir. -EEXIST if present. */
int write_file_exclusive(int dirfd, const char *name, const void *data, size_t size, mode_t mode) _warn_unused_result_;

/* Read a whole regular file (never a symlink), at most max bytes (-EFBIG beyond).
 * The buffer is NUL-terminated for convenience; *ret_size excludes the NUL. */
int read_file_full(int dirfd, const char *name, size_t max, char **ret, size_t *ret_size) _warn_unused_result_;
/* read_file_full() from the directory at dir_path. */
int read_file_full_in(const char *dir_path, const char *name, size_t max, char **ret,
                      size_t *ret_size) _warn_unused_result_;

/* Open (creating with mode if missing) a directory, refusing symlinks; returns an O_DIRECTORY fd. */
int open_dir_nofollow(int dirfd, const char *path, mode_t create_mode, int create) _warn_unused_result_;

int fsync_dir(int dirfd);

/* Remove dirfd/name and fsync the directory; absent is fine. */
int unlink_durable(int dirfd, const char *name);

/* Write all of size bytes, retrying on EINTR and short writes. */
int loop_write(int fd, const void *data, size_t size);

/* Read up to size bytes, retrying until EOF; returns bytes read. */
ssize_t loop_read(int fd, void *data, size_t size);
