/* SPDX-License-Identifier: MIT */
/* What the dkm CLI's files share: options, exit statuses, per-run I/O and the one-line error report. */
#pragma once

#include <dkm.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "dkm-io.h"

/* Exit statuses, one per kind of failure, documented in --help and docs/CLI.md. */
enum {
        EXIT_USAGE = 2,
        EXIT_NO_KEY = 3,       /* -ENOKEY: no such group or generation visible */
        EXIT_ACCESS = 4,       /* -EACCES: not a member of the key group */
        EXIT_RETIRED = 5,      /* -EKEYREVOKED */
        EXIT_EXPIRED = 6,      /* -EKEYEXPIRED */
        EXIT_AUTH = 7,         /* -EBADMSG: corrupted, tampered, wrong associated data */
        EXIT_TRUNCATED = 8,    /* -EPIPE: a stream that ends early */
        EXIT_NOT_DKM = 9,      /* -ENOMSG, -EMEDIUMTYPE: not a (usable) dkm ciphertext */
        EXIT_UNSUPPORTED = 10, /* -EPROTONOSUPPORT, -EOPNOTSUPP */
        EXIT_IO = 11,          /* reading the input or writing the output */
};

/* Inputs up to this size become one-shot ciphertexts unless --stream is given; larger (or
 * endless) input is streamed, in bounded memory. */
#define AUTO_ONESHOT_MAX ((size_t) 1U << 20)
#define AD_FILE_MAX      ((size_t) 16U << 20)

typedef enum Format {
        FORMAT_AUTO,
        FORMAT_ONESHOT,
        FORMAT_STREAM,
} Format;

typedef struct Args {
        const char *group;
        const char *ad;
        const char *ad_file;
        const char *input;
        const char *output;
        Format format;
} Args;
extern Args arg;

/* What the failing call was about, for the one line that explains it. */
typedef struct Context {
        const char *verb;
        bool have_info;
        dkm_info_t info;
        bool streamed_to_stdout; /* part of the plaintext may already be out */
} Context;

/* Everything a verb needs, opened in one place and released in one place. */
typedef struct Io {
        int in;
        Output out;
        Buffer ad;
        Buffer data; /* input read so far (plaintext for encrypt) */
} Io;

#define IO_NULL                                                                                                        \
        {                                                                                                              \
                .in = -EBADF, .out = {.fd = -EBADF, .dirfd = -EBADF }                                                  \
        }

/* Print the one line for libdkm error r and return its exit status. */
int fail(int r, const Context *c);
/* Print "cannot WHAT PATH: reason" and return EXIT_IO. */
int fail_io(const char *what, const char *path, int r);

/* Associated data, input, output (a temporary file for -o), or an exit status (> 0). */
int io_open(Io *io, bool binary_out, mode_t mode);
int io_write(Io *io, const void *p, size_t n);
int io_commit(Io *io);
void io_done(Io *io);

/* The verbs (dkm-verbs.c): an exit status each. */
int verb_encrypt(void);
int verb_decrypt(void);
int verb_rewrap(void);
int verb_info(void);
