/* SPDX-License-Identifier: MIT */
/* Audit records as text lines: escaping, formatting with hash and signature, strict parsing. Pure. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "audit-record.h"

static const char *const outcome_names[_AUDIT_OUTCOME_MAX] = {
        [AUDIT_OUTCOME_OK] = "ok",
        [AUDIT_OUTCOME_REFUSED] = "refused",
        [AUDIT_OUTCOME_FAILED] = "failed",
};

static const char *const reason_names[_AUDIT_CHECKPOINT_MAX] = {
        [AUDIT_CHECKPOINT_START] = "start",
        [AUDIT_CHECKPOINT_PERIODIC] = "periodic",
        [AUDIT_CHECKPOINT_ROTATE] = "rotate",
        [AUDIT_CHECKPOINT_CLOSE] = "close",
};

const char *audit_outcome_to_string(AuditOutcome o) {
        return (unsigned) o < _AUDIT_OUTCOME_MAX ? outcome_names[o] : NULL;
}

const char *audit_checkpoint_reason_to_string(AuditCheckpointReason r) {
        return (unsigned) r < _AUDIT_CHECKPOINT_MAX ? reason_names[r] : NULL;
}

static int lookup(const char *const *names, size_t n, const char *s, size_t len) {
        for (size_t i = 0; i < n; i++)
                if (strlen(names[i]) == len && memcmp(names[i], s, len) == 0)
                        return (int) i;
        return -EBADMSG;
}

static int event_name_valid(const char *s, size_t len) {
        if (len == 0 || len > AUDIT_EVENT_MAX)
                return 0;
        for (size_t i = 0; i < len; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
                        return 0;
        return 1;
}

int audit_record_check(const AuditRecord *rec) {
        if (!rec || !rec->event || !event_name_valid(rec->event, strlen(rec->event)))
                return -EINVAL;
        if (!audit_outcome_to_string(rec->outcome))
                return -EINVAL;
        if ((rec->comm && strlen(rec->comm) > AUDIT_COMM_MAX) ||
            (rec->object && strlen(rec->object) > AUDIT_OBJECT_MAX) ||
            (rec->detail && strlen(rec->detail) > AUDIT_DETAIL_MAX))
                return -EINVAL;
        return 0;
}

/* A bounded appender into the caller's line buffer. */
typedef struct Line {
        char *buf;
        size_t len;
        int overflow;
} Line;

static void line_printf(Line *l, const char *fmt, ...) _printf_(2, 3);
static void line_printf(Line *l, const char *fmt, ...) {
        va_list ap;
        int n;

        if (l->overflow)
                return;
        va_start(ap, fmt);
        n = vsnprintf(l->buf + l->len, AUDIT_LINE_MAX + 1 - l->len, fmt, ap);
        va_end(ap);
        if (n < 0 || (size_t) n >= AUDIT_LINE_MAX + 1 - l->len) {
                l->overflow = 1;
                return;
        }
        l->len += (size_t) n;
}

void audit_hex(const uint8_t *p, size_t size, char *ret) {
        static const char digits[] = "0123456789abcdef";

        for (size_t i = 0; i < size; i++) {
                ret[2 * i] = digits[p[i] >> 4];
                ret[2 * i + 1] = digits[p[i] & 15];
        }
        ret[2 * size] = 0;
}

static void line_put_hex(Line *l, const uint8_t *p, size_t size) {
        char hex[2 * CRYPT_SIGN_BYTES + 1];

        audit_hex(p, size, hex);
        line_printf(l, "%s", hex);
}

/* Space separates fields, so it is escaped along with '\', control and non-ASCII bytes: a record
 * is always one line of printable ASCII, whatever a caller passes (a hostile comm, say). */
static int needs_escape(unsigned char c) {
        return c <= 0x20 || c >= 0x7f || c == '\\';
}

static void line_put_escaped(Line *l, const char *s) {
        for (const char *p = s ?: ""; *p; p++) {
                unsigned char c = (unsigned char) *p;

                if (c == '\\')
                        line_printf(l, "\\\\");
                else if (needs_escape(c))
                        line_printf(l, "\\x%02x", c);
                else
                        line_printf(l, "%c", c);
        }
}

static void line_hash(const Line *l, uint8_t ret[CRYPT_HASH_BYTES]) {
        crypt_hash(l->buf, l->len, ret);
}

int audit_format_event(uint64_t seq, uint64_t time, const AuditRecord *rec, const uint8_t prev[CRYPT_HASH_BYTES],
                       char *buf, size_t *ret_len, uint8_t ret_hash[CRYPT_HASH_BYTES]) {
        Line l = { .buf = buf };
        uint8_t h[CRYPT_HASH_BYTES];

        if (audit_record_check(rec) < 0 || seq == 0)
                return -EINVAL;
        line_printf(&l, "v=%u seq=%llu time=%llu event=%s outcome=%s uid=%u pid=%u comm=", AUDIT_FORMAT_VERSION,
                    (unsigned long long) seq, (unsigned long long) time, rec->event,
                    audit_outcome_to_string(rec->outcome), (unsigned) rec->uid, (unsigned) rec->pid);
        line_put_escaped(&l, rec->comm);
        line_printf(&l, " object=");
        line_put_escaped(&l, rec->object);
        line_printf(&l, " detail=");
        line_put_escaped(&l, rec->detail);
        line_printf(&l, " prev=");
        line_put_hex(&l, prev, CRYPT_HASH_BYTES);
        if (l.overflow)
                return -EINVAL;
        line_hash(&l, h);
        line_printf(&l, " hash=");
        line_put_hex(&l, h, sizeof(h));
        line_printf(&l, "\n");
        if (l.overflow)
                return -EINVAL;
        memcpy(ret_hash, h, sizeof(h));
        *ret_len = l.len;
        return 0;
}

static int sign_line(const Line *l, const Secret *sk, uint8_t ret[CRYPT_SIGN_BYTES]) {
        static const char ctx[] = AUDIT_SIGN_CONTEXT;
        char m[sizeof(ctx) - 1 + AUDIT_LINE_MAX];

        if (l->len > AUDIT_LINE_MAX)
                return -EINVAL;
        memcpy(m, ctx, sizeof(ctx) - 1);
        memcpy(m + sizeof(ctx) - 1, l->buf, l->len);
        return crypt_sign_detached(sk, m, sizeof(ctx) - 1 + l->len, ret);
}

int audit_format_checkpoint(uint64_t seq, uint64_t time, AuditCheckpointReason reason, uint64_t interval,
                            const uint8_t prev[CRYPT_HASH_BYTES], const Secret *sk, char *buf, size_t *ret_len,
                            uint8_t ret_hash[CRYPT_HASH_BYTES]) {
        Line l = { .buf = buf };
        uint8_t sig[CRYPT_SIGN_BYTES], h[CRYPT_HASH_BYTES];
        int r;

        if (!audit_checkpoint_reason_to_string(reason) || seq == 0 || interval == 0)
                return -EINVAL;
        line_printf(&l, "v=%u seq=%llu time=%llu checkpoint=%s interval=%llu prev=", AUDIT_FORMAT_VERSION,
                    (unsigned long long) seq, (unsigned long long) time, audit_checkpoint_reason_to_string(reason),
                    (unsigned long long) interval);
        line_put_hex(&l, prev, CRYPT_HASH_BYTES);
        if (l.overflow)
                return -EINVAL;
        r = sign_line(&l, sk, sig);
        if (r < 0)
                return r;
        line_printf(&l, " sig=");
        line_put_hex(&l, sig, sizeof(sig));
        line_hash(&l, h);
        line_printf(&l, " hash=");
        line_put_hex(&l, h, sizeof(h));
        line_printf(&l, "\n");
        if (l.overflow)
                return -EINVAL;
        memcpy(ret_hash, h, sizeof(h));
        *ret_len = l.len;
        return 0;
}

int audit_checkpoint_verify(const char *line, size_t signed_len, const uint8_t sig[CRYPT_SIGN_BYTES],
                            const uint8_t public_key[CRYPT_SIGN_PUBLIC_KEY_BYTES]) {
        static const char ctx[] = AUDIT_SIGN_CONTEXT;
        char m[sizeof(ctx) - 1 + AUDIT_LINE_MAX];

        if (signed_len > AUDIT_LINE_MAX)
                return -EBADMSG;
        memcpy(m, ctx, sizeof(ctx) - 1);
        memcpy(m + sizeof(ctx) - 1, line, signed_len);
        return crypt_sign_verify(public_key, m, sizeof(ctx) - 1 + signed_len, sig);
}

static int unhex_digit(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        return -1;
}

int audit_parse_hex(const char *s, size_t len, uint8_t *ret, size_t size) {
        if (len != 2 * size)
                return -EBADMSG;
        for (size_t i = 0; i < size; i++) {
                int hi = unhex_digit(s[2 * i]), lo = unhex_digit(s[2 * i + 1]);
                if (hi < 0 || lo < 0)
                        return -EBADMSG;
                ret[i] = (uint8_t) (hi << 4 | lo);
        }
        return 0;
}

int audit_parse_u64(const char *s, size_t len, uint64_t max, uint64_t *ret) {
        uint64_t v = 0;

        if (len == 0 || (s[0] == '0' && len > 1))
                return -EBADMSG;
        for (size_t i = 0; i < len; i++) {
                unsigned d;

                if (s[i] < '0' || s[i] > '9')
                        return -EBADMSG;
                d = (unsigned) (s[i] - '0');
                if (v > max / 10 || d > max - v * 10)
                        return -EBADMSG;
                v = v * 10 + d;
        }
        *ret = v;
        return 0;
}

/* Canonical escapes only (\\ and \xHH for a byte that needs it), so each text has one spelling. */
static int unescape(const char *s, size_t len, char *ret, size_t max) {
        size_t n = 0;

        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char) s[i];

                if (c == '\\') {
                        int hi, lo;

                        if (i + 1 < len && s[i + 1] == '\\') {
                                c = '\\';
                                i++;
                        } else if (i + 3 < len && s[i + 1] == 'x' && (hi = unhex_digit(s[i + 2])) >= 0 &&
                                   (lo = unhex_digit(s[i + 3])) >= 0) {
                                c = (unsigned char) (hi << 4 | lo);
                                if (c == 0 || c == '\\' || !needs_escape(c))
                                        return -EBADMSG;
                                i += 3;
                        } else
                                return -EBADMSG;
                } else if (needs_escape(c))
                        return -EBADMSG;
                if (n >= max)
                        return -EBADMSG;
                ret[n++] = (char) c;
        }
        ret[n] = 0;
        return 0;
}

typedef struct Fields {
        const char *p, *end;
        const char *value;
        size_t value_len;
        const char *field_start; /* where the last field (with its leading space) began */
} Fields;

/* The next space-separated field must be "key=VALUE". */
static int next_field(Fields *f, const char *key) {
        size_t klen = strlen(key);
        const char *sp;

        f->field_start = f->p;
        if (f->p > f->end)
                return -EBADMSG;
        sp = memchr(f->p, ' ', (size_t) (f->end - f->p));
        if (!sp)
                sp = f->end;
        if ((size_t) (sp - f->p) < klen + 1 || memcmp(f->p, key, klen) != 0 || f->p[klen] != '=')
                return -EBADMSG;
        f->value = f->p + klen + 1;
        f->value_len = (size_t) (sp - f->value);
        f->p = sp + 1; /* past the end if this was the last field */
        return 0;
}

static int why_set(char *why, size_t size, const char *fmt, ...) _printf_(3, 4);
static int why_set(char *why, size_t size, const char *fmt, ...) {
        va_list ap;

        if (why && size > 0) {
                va_start(ap, fmt);
                (void) vsnprintf(why, size, fmt, ap);
                va_end(ap);
        }
        return -EBADMSG;
}

#define FIELD(f, key)                                                                                                  \
        do {                                                                                                           \
                if (next_field(f, key) < 0)                                                                            \
                        return why_set(why, why_size, "malformed record: expected field '%s='", key);                  \
        } while (0)

int audit_parse_line(const char *line, size_t len, AuditEntry *ret, size_t *ret_signed_len, char *why,
                     size_t why_size) {
        Fields f = { .p = line, .end = line + len };
        AuditEntry e = {};
        uint64_t v, u;
        size_t hashed_len, signed_len = 0;
        uint8_t h[CRYPT_HASH_BYTES];
        int k;

        if (len > AUDIT_LINE_MAX)
                return why_set(why, why_size, "record longer than %u bytes", AUDIT_LINE_MAX);
        if (memchr(line, 0, len))
                return why_set(why, why_size, "NUL byte in the record");

        FIELD(&f, "v");
        if (audit_parse_u64(f.value, f.value_len, UINT32_MAX, &v) < 0)
                return why_set(why, why_size, "malformed version");
        if (v != AUDIT_FORMAT_VERSION)
                return why_set(why, why_size, "record format %llu; this dkm reads format %u", (unsigned long long) v,
                               AUDIT_FORMAT_VERSION);
        FIELD(&f, "seq");
        if (audit_parse_u64(f.value, f.value_len, UINT64_MAX, &e.seq) < 0 || e.seq == 0)
                return why_set(why, why_size, "malformed seq");
        FIELD(&f, "time");
        if (audit_parse_u64(f.value, f.value_len, UINT64_MAX, &e.time) < 0)
                return why_set(why, why_size, "malformed time");

        if (next_field(&f, "event") == 0) {
                if (!event_name_valid(f.value, f.value_len))
                        return why_set(why, why_size, "malformed event name");
                memcpy(e.event, f.value, f.value_len);
                FIELD(&f, "outcome");
                k = lookup(outcome_names, _AUDIT_OUTCOME_MAX, f.value, f.value_len);
                if (k < 0)
                        return why_set(why, why_size, "unknown outcome");
                e.outcome = (AuditOutcome) k;
                FIELD(&f, "uid");
                if (audit_parse_u64(f.value, f.value_len, UINT32_MAX, &u) < 0)
                        return why_set(why, why_size, "malformed uid");
                e.uid = (uint32_t) u;
                FIELD(&f, "pid");
                if (audit_parse_u64(f.value, f.value_len, UINT32_MAX, &u) < 0)
                        return why_set(why, why_size, "malformed pid");
                e.pid = (uint32_t) u;
                FIELD(&f, "comm");
                if (unescape(f.value, f.value_len, e.comm, AUDIT_COMM_MAX) < 0)
                        return why_set(why, why_size, "malformed comm");
                FIELD(&f, "object");
                if (unescape(f.value, f.value_len, e.object, AUDIT_OBJECT_MAX) < 0)
                        return why_set(why, why_size, "malformed object");
                FIELD(&f, "detail");
                if (unescape(f.value, f.value_len, e.detail, AUDIT_DETAIL_MAX) < 0)
                        return why_set(why, why_size, "malformed detail");
                FIELD(&f, "prev");
                if (audit_parse_hex(f.value, f.value_len, e.prev, sizeof(e.prev)) < 0)
                        return why_set(why, why_size, "malformed prev");
        } else {
                f.p = f.field_start;
                FIELD(&f, "checkpoint");
                k = lookup(reason_names, _AUDIT_CHECKPOINT_MAX, f.value, f.value_len);
                if (k < 0)
                        return why_set(why, why_size, "unknown checkpoint reason");
                e.is_checkpoint = 1;
                e.reason = (AuditCheckpointReason) k;
                FIELD(&f, "interval");
                if (audit_parse_u64(f.value, f.value_len, UINT32_MAX, &e.interval) < 0 || e.interval == 0)
                        return why_set(why, why_size, "malformed interval");
                FIELD(&f, "prev");
                if (audit_parse_hex(f.value, f.value_len, e.prev, sizeof(e.prev)) < 0)
                        return why_set(why, why_size, "malformed prev");
                signed_len = (size_t) (f.value + f.value_len - line);
                FIELD(&f, "sig");
                if (audit_parse_hex(f.value, f.value_len, e.sig, sizeof(e.sig)) < 0)
                        return why_set(why, why_size, "malformed sig");
        }
        hashed_len = (size_t) (f.value + f.value_len - line);
        FIELD(&f, "hash");
        if (audit_parse_hex(f.value, f.value_len, e.hash, sizeof(e.hash)) < 0)
                return why_set(why, why_size, "malformed hash");
        if (f.p <= f.end)
                return why_set(why, why_size, "unexpected text after the hash");

        crypt_hash(line, hashed_len, h);
        if (memcmp(h, e.hash, sizeof(h)) != 0)
                return why_set(why, why_size, "hash does not match the record (the record was edited)");

        *ret = e;
        if (ret_signed_len)
                *ret_signed_len = signed_len;
        return 0;
}
