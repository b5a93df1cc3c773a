/* SPDX-License-Identifier: MIT */
/* Framing, strict value parsing and building of the store's checksummed key=value text files. Pure. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "kvfile.h"

#define CHECKSUM_PREFIX "checksum="

int kverror_set(KvError *e, unsigned line, const char *fmt, ...) {
        va_list ap;

        if (e) {
                e->line = line;
                va_start(ap, fmt);
                (void) vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
                va_end(ap);
        }
        return -EBADMSG;
}

static unsigned count_lines(const char *data, size_t size) {
        unsigned n = 1;

        for (const char *p = data; (p = memchr(p, '\n', size - (size_t) (p - data))); p++)
                n++;
        return n;
}

int kvfile_verify(const char *data, size_t size, size_t *ret_body_size, KvError *e) {
        uint8_t want[CRYPT_HASH_BYTES], have[CRYPT_HASH_BYTES];
        const char *nul, *last;
        size_t body;
        unsigned line;

        if (size == 0)
                return kverror_set(e, 0, "empty file (truncated)");
        if (size > KVFILE_SIZE_MAX)
                return kverror_set(e, 0, "larger than %u MiB", KVFILE_SIZE_MAX >> 20);
        nul = memchr(data, 0, size);
        if (nul)
                return kverror_set(e, count_lines(data, (size_t) (nul - data)), "NUL byte");
        if (data[size - 1] != '\n')
                return kverror_set(e, 0, "truncated (no final newline)");

        /* The checksum line is the last one; everything before it is the body it covers. */
        body = size - 1;
        while (body > 0 && data[body - 1] != '\n')
                body--;
        last = data + body;
        line = count_lines(data, body);
        if (size - body - 1 < strlen(CHECKSUM_PREFIX) || memcmp(last, CHECKSUM_PREFIX, strlen(CHECKSUM_PREFIX)) != 0)
                return kverror_set(e, 0, "truncated (no checksum line at the end)");

        /* kv_parse_hex wants a C string; the checksum line is short and fixed-size. */
        {
                char hex[2 * CRYPT_HASH_BYTES + 1];
                size_t n = size - body - 1 - strlen(CHECKSUM_PREFIX);

                if (n != 2 * CRYPT_HASH_BYTES)
                        return kverror_set(e, line, "malformed checksum");
                memcpy(hex, last + strlen(CHECKSUM_PREFIX), n);
                hex[n] = 0;
                if (kv_parse_hex(hex, want, sizeof(want)) < 0)
                        return kverror_set(e, line, "malformed checksum");
        }
        crypt_hash(data, body, have);
        if (memcmp(want, have, sizeof(want)) != 0)
                return kverror_set(e, 0, "checksum mismatch (the file is corrupted)");

        *ret_body_size = body;
        return 0;
}

int kvreader_init(KvReader *r, const char *data, size_t size) {
        *r = (KvReader) { .p = data, .end = data + size };
        r->buf = malloc(KVFILE_LINE_MAX + 1);
        return r->buf ? 0 : -ENOMEM;
}

int kvreader_init_verified(KvReader *r, const char *data, size_t size, KvError *e) {
        size_t body;
        int k;

        k = kvfile_verify(data, size, &body, e);
        if (k < 0)
                return k;
        return kvreader_init(r, data, body);
}

void kvreader_done(KvReader *r) {
        free(r->buf);
        r->buf = NULL;
}

int kvreader_next(KvReader *r, KvError *e) {
        const char *nl;
        char *eq;
        size_t n;

        if (r->p >= r->end)
                return 0;
        r->line++;
        nl = memchr(r->p, '\n', (size_t) (r->end - r->p));
        n = nl ? (size_t) (nl - r->p) : (size_t) (r->end - r->p);
        if (n > KVFILE_LINE_MAX)
                return kverror_set(e, r->line, "line longer than %u bytes", KVFILE_LINE_MAX);
        memcpy(r->buf, r->p, n);
        r->buf[n] = 0;
        r->p += n + (nl ? 1 : 0);

        eq = strchr(r->buf, '=');
        if (!eq)
                return kverror_set(e, r->line, "not a key=value line");
        *eq = 0;
        if (eq == r->buf || strspn(r->buf, "abcdefghijklmnopqrstuvwxyz0123456789-") != (size_t) (eq - r->buf))
                return kverror_set(e, r->line, "malformed key");
        r->key = r->buf;
        r->value = eq + 1;
        return 1;
}

int kv_split_fields(char *value, char **fields, size_t max, size_t *ret_n) {
        size_t n = 0;
        char *p = value;

        for (;;) {
                char *sp = strchr(p, ' ');

                if (n >= max)
                        return -EBADMSG;
                if (sp)
                        *sp = 0;
                if (*p == 0)
                        return -EBADMSG; /* leading, trailing or doubled space */
                fields[n++] = p;
                if (!sp)
                        break;
                p = sp + 1;
        }
        *ret_n = n;
        return 0;
}

int kv_parse_u64(const char *s, uint64_t max, uint64_t *ret) {
        uint64_t v = 0;

        if (!s || !*s || (s[0] == '0' && s[1] != 0))
                return -EBADMSG;
        for (const char *p = s; *p; p++) {
                unsigned d;

                if (*p < '0' || *p > '9')
                        return -EBADMSG;
                d = (unsigned) (*p - '0');
                if (v > max / 10 || d > max - v * 10)
                        return -EBADMSG;
                v = v * 10 + d;
        }
        *ret = v;
        return 0;
}

int kv_parse_format(const char *s, unsigned max, const char *what, unsigned line, KvError *e) {
        uint64_t u;

        if (kv_parse_u64(s, UINT32_MAX, &u) < 0 || u == 0)
                return kverror_set(e, line, "malformed format version");
        if (u > max) {
                (void) kverror_set(e, line, "written by a newer dkm (%s format %llu; this dkm reads %u)", what,
                                   (unsigned long long) u, max);
                return -EPROTONOSUPPORT;
        }
        return 0;
}

static int unhex_digit(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        return -1;
}

int kv_parse_hex(const char *s, void *ret, size_t size) {
        uint8_t *out = ret;

        if (strlen(s) != 2 * size)
                return -EBADMSG;
        for (size_t i = 0; i < size; i++) {
                int hi = unhex_digit(s[2 * i]), lo = unhex_digit(s[2 * i + 1]);
                if (hi < 0 || lo < 0)
                        return -EBADMSG;
                out[i] = (uint8_t) (hi << 4 | lo);
        }
        return 0;
}

static int needs_escape(unsigned char c) {
        return c < 0x20 || c == 0x7f || c == '\\';
}

int kv_unescape(const char *s, size_t max, char **ret) {
        _cleanup_free_ char *out = NULL;
        size_t n = 0;

        out = malloc(strlen(s) + 1);
        if (!out)
                return -ENOMEM;
        for (const char *p = s; *p; p++) {
                unsigned char c = (unsigned char) *p;

                if (c == '\\') {
                        int hi, lo;

                        if (p[1] == '\\') {
                                c = '\\';
                                p++;
                        } else if (p[1] == 'x' && (hi = unhex_digit(p[2])) >= 0 && (lo = unhex_digit(p[3])) >= 0) {
                                c = (unsigned char) (hi << 4 | lo);
                                /* A backslash has one spelling: doubled, as kvbuf_put_escaped() writes it. */
                                if (c == 0 || c == '\\' || !needs_escape(c))
                                        return -EBADMSG;
                                p += 3;
                        } else
                                return -EBADMSG;
                } else if (needs_escape(c))
                        return -EBADMSG;
                if (n >= max)
                        return -EBADMSG;
                out[n++] = (char) c;
        }
        out[n] = 0;
        *ret = TAKE_PTR(out);
        return 0;
}

static int kvbuf_reserve(KvBuf *b, size_t extra) {
        size_t want;
        char *p;

        if (b->error < 0)
                return b->error;
        if (extra > SIZE_MAX / 2 - b->size)
                return (b->error = -ENOMEM);
        if (b->size + extra + 1 <= b->allocated)
                return 0;
        want = MAX(b->allocated * 2, b->size + extra + 1);
        want = MAX(want, (size_t) 1024);
        p = realloc(b->data, want);
        if (!p)
                return (b->error = -ENOMEM);
        b->data = p;
        b->allocated = want;
        return 0;
}

void kvbuf_printf(KvBuf *b, const char *fmt, ...) {
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
                b->error = -EINVAL;
                return;
        }
        if (kvbuf_reserve(b, (size_t) n) < 0)
                return;
        va_start(ap, fmt);
        (void) vsnprintf(b->data + b->size, (size_t) n + 1, fmt, ap);
        va_end(ap);
        b->size += (size_t) n;
}

void kvbuf_put_hex(KvBuf *b, const void *p, size_t size) {
        static const char digits[] = "0123456789abcdef";
        const uint8_t *in = p;

        if (kvbuf_reserve(b, 2 * size) < 0)
                return;
        for (size_t i = 0; i < size; i++) {
                b->data[b->size++] = digits[in[i] >> 4];
                b->data[b->size++] = digits[in[i] & 15];
        }
        b->data[b->size] = 0;
}

void kvbuf_put_escaped(KvBuf *b, const char *s) {
        for (const char *p = s; *p; p++) {
                unsigned char c = (unsigned char) *p;

                if (c == '\\')
                        kvbuf_printf(b, "\\\\");
                else if (needs_escape(c))
                        kvbuf_printf(b, "\\x%02x", c);
                else
                        kvbuf_printf(b, "%c", c);
        }
}

int kvbuf_finish(KvBuf *b, char **ret, size_t *ret_size) {
        uint8_t sum[CRYPT_HASH_BYTES];

        if (b->error < 0)
                return b->error;
        crypt_hash(b->data ?: "", b->size, sum);
        kvbuf_printf(b, CHECKSUM_PREFIX);
        kvbuf_put_hex(b, sum, sizeof(sum));
        kvbuf_printf(b, "\n");
        if (b->error < 0)
                return b->error;
        *ret_size = b->size;
        *ret = TAKE_PTR(b->data);
        b->size = b->allocated = 0;
        return 0;
}

void kvbuf_done(KvBuf *b) {
        free(b->data);
        *b = (KvBuf) {};
}
