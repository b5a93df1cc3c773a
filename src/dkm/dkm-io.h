/* SPDX-License-Identifier: MIT */
/* Input and output for the dkm CLI: bounded reads, and output files that appear only when complete. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "macro.h"

/* A growing heap buffer for data read from input. Plaintext lands here too, so it is wiped
 * before it is freed or moved. */
typedef struct Buffer {
        uint8_t *data;
        size_t size, cap;
} Buffer;

void buffer_wipe_free(Buffer *b);

/* Append from fd until EOF or until b holds max bytes; *ret_eof tells which. -EFBIG never:
 * reaching max is reported through *ret_eof = false. */
int buffer_read(Buffer *b, int fd, size_t max, bool *ret_eof) _warn_unused_result_;

/* Where output goes: stdout, or FILE through a temporary file in FILE's directory that is
 * renamed over FILE only by output_commit(), so a failed run never leaves partial output. */
typedef struct Output {
        int fd;
        bool is_stdout;
        int dirfd;
        char *name;    /* FILE's last component */
        char tmp[300]; /* the temporary file's name in dirfd, "" once renamed or removed */
} Output;

/* path NULL or "-": stdout. mode: the new file's mode (before the umask). */
int output_open(Output *o, const char *path, mode_t mode) _warn_unused_result_;
int output_write(Output *o, const void *data, size_t size) _warn_unused_result_;
/* fsync, rename into place, fsync the directory. */
int output_commit(Output *o) _warn_unused_result_;
/* Remove the temporary file (if any); safe to call more than once and from a signal handler
 * (unlinkat only). */
void output_abort(Output *o);
void output_close(Output *o);
