/* SPDX-License-Identifier: MIT */
/* Line-based "key=value" store files ending in a checksum line: framing, building, strict value parsing. Pure. */
#pragma once

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/* Bounds that keep a hostile or corrupted file from costing more than a bounded amount of memory. */
#define KVFILE_SIZE_MAX (16U << 20)
#define KVFILE_LINE_MAX 65536U

/* Where and why a file was refused; the store prefixes the path. line 0 = the whole file. */
typedef struct KvError {
        unsigned line;
        char msg[192];
} KvError;

/* Record a parse failure in e (may be NULL); returns -EBADMSG. */
int kverror_set(KvError *e, unsigned line, const char *fmt, ...) _printf_(3, 4);

/* Checks framing: size bounds, no NUL byte, newline-terminated, and a last line
 * "checksum=<BLAKE2b-256 hex of every byte before that line>". On success *ret_body_size is the
 * number of bytes before the checksum line. -EBADMSG otherwise. */
int kvfile_verify(const char *data, size_t size, size_t *ret_body_size, KvError *e) _warn_unused_result_;

/* Iterates over the lines of a verified body; each line is copied, NUL-terminated and split
 * at its first '=' into key and value. */
typedef struct KvReader {
        const char *p, *end;
        unsigned line;
        char *buf;
        char *key, *value;
} KvReader;

int kvreader_init(KvReader *r, const char *data, size_t size) _warn_unused_result_;
/* kvfile_verify(), then a reader over the body it covers: corruption is never read as content. */
int kvreader_init_verified(KvReader *r, const char *data, size_t size, KvError *e) _warn_unused_result_;
void kvreader_done(KvReader *r);
/* 1 and r->key/r->value set; 0 at the end; -EBADMSG for an over-long or malformed line. */
int kvreader_next(KvReader *r, KvError *e) _warn_unused_result_;

/* Splits value in place at single spaces into at most max fields; -EBADMSG on empty fields or too many. */
int kv_split_fields(char *value, char **fields, size_t max, size_t *ret_n);

/* Canonical values only (so format(parse(x)) == x): decimal without sign or leading zeros,
 * lowercase hex of an exact length. -EBADMSG otherwise. */
int kv_parse_u64(const char *s, uint64_t max, uint64_t *ret) _warn_unused_result_;
/* A "format=" value of a file whose newest format is max: 1 to max; a larger one is
 * -EPROTONOSUPPORT ("written by a newer dkm (WHAT format N; this dkm reads MAX)"), anything else
 * -EBADMSG. */
int kv_parse_format(const char *s, unsigned max, const char *what, unsigned line, KvError *e) _warn_unused_result_;
int kv_parse_hex(const char *s, void *ret, size_t size) _warn_unused_result_;
/* Reverses kvbuf_put_escaped(); refuses needless escapes, raw control characters and \x00. */
int kv_unescape(const char *s, size_t max, char **ret) _warn_unused_result_;

/* A growing output buffer; the first allocation failure sticks and is reported by kvbuf_finish(). */
typedef struct KvBuf {
        char *data;
        size_t size, allocated;
        int error;
} KvBuf;

void kvbuf_printf(KvBuf *b, const char *fmt, ...) _printf_(2, 3);
void kvbuf_put_hex(KvBuf *b, const void *p, size_t size);
/* Backslash and control characters become \\ and \xHH, so any string fits on one line. */
void kvbuf_put_escaped(KvBuf *b, const char *s);
/* Appends the checksum line and hands out the text. */
int kvbuf_finish(KvBuf *b, char **ret, size_t *ret_size) _warn_unused_result_;
void kvbuf_done(KvBuf *b);
