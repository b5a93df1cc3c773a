/* SPDX-License-Identifier: MIT */
/* A tiny JSON writer for dkmctl --json: objects, arrays, escaped strings, integers, booleans, null. */
#include <inttypes.h>
#include <stdlib.h>

#include "json-writer.h"

void json_init(JsonWriter *w, FILE *f) {
        *w = (JsonWriter){ .f = f };
}

/* Before any value or key: the comma that separates it from the previous one. */
static void separate(JsonWriter *w, bool is_key) {
        if (w->depth > 0) {
                bool object = w->in_object[w->depth - 1];

                /* A key where a value is due, or a bare value inside an object: misuse. */
                if (object && (is_key == w->after_key))
                        abort();
                if (!w->after_key && !w->first[w->depth - 1])
                        fputc(',', w->f);
                w->first[w->depth - 1] = false;
        }
        w->after_key = false;
}

static void open_level(JsonWriter *w, bool object) {
        separate(w, false);
        if (w->depth >= JSON_DEPTH_MAX)
                abort();
        w->in_object[w->depth] = object;
        w->first[w->depth] = true;
        w->depth++;
        fputc(object ? '{' : '[', w->f);
}

static void close_level(JsonWriter *w, bool object) {
        if (w->depth == 0 || w->in_object[w->depth - 1] != object || w->after_key)
                abort();
        w->depth--;
        fputc(object ? '}' : ']', w->f);
}

void json_object_begin(JsonWriter *w) {
        open_level(w, true);
}

void json_object_end(JsonWriter *w) {
        close_level(w, true);
}

void json_array_begin(JsonWriter *w) {
        open_level(w, false);
}

void json_array_end(JsonWriter *w) {
        close_level(w, false);
}

size_t json_utf8_valid_length(const char *s) {
        const unsigned char *p = (const unsigned char *) s;
        unsigned char lo = 0x80, hi = 0xbf;
        size_t n;

        if (p[0] < 0x80)
                return 1;
        if (p[0] >= 0xc2 && p[0] <= 0xdf)
                n = 2;
        else if (p[0] >= 0xe0 && p[0] <= 0xef) {
                n = 3;
                if (p[0] == 0xe0)
                        lo = 0xa0;
                else if (p[0] == 0xed)
                        hi = 0x9f;
        } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
                n = 4;
                if (p[0] == 0xf0)
                        lo = 0x90;
                else if (p[0] == 0xf4)
                        hi = 0x8f;
        } else
                return 0;
        /* The string's NUL is no continuation byte, so this never reads past it. */
        if (p[1] < lo || p[1] > hi)
                return 0;
        for (size_t i = 2; i < n; i++)
                if (p[i] < 0x80 || p[i] > 0xbf)
                        return 0;
        return n;
}

static void write_escaped(FILE *f, const char *s) {
        const unsigned char *p = (const unsigned char *) s;

        fputc('"', f);
        while (*p) {
                size_t n = json_utf8_valid_length((const char *) p);

                if (n == 0) {
                        fputs("\\ufffd", f);
                        p++;
                        continue;
                }
                if (n > 1) {
                        fwrite(p, 1, n, f);
                        p += n;
                        continue;
                }
                switch (*p) {
                case '"':
                        fputs("\\\"", f);
                        break;
                case '\\':
                        fputs("\\\\", f);
                        break;
                case '\b':
                        fputs("\\b", f);
                        break;
                case '\f':
                        fputs("\\f", f);
                        break;
                case '\n':
                        fputs("\\n", f);
                        break;
                case '\r':
                        fputs("\\r", f);
                        break;
                case '\t':
                        fputs("\\t", f);
                        break;
                default:
                        /* DEL too: JSON allows it raw, but it has no business on a terminal. */
                        if (*p < 0x20 || *p == 0x7f)
                                fprintf(f, "\\u%04x", (unsigned) *p);
                        else
                                fputc(*p, f);
                }
                p++;
        }
        fputc('"', f);
}

void json_key(JsonWriter *w, const char *key) {
        separate(w, true);
        write_escaped(w->f, key);
        fputc(':', w->f);
        w->after_key = true;
}

void json_string(JsonWriter *w, const char *s) {
        if (!s) {
                json_null(w);
                return;
        }
        separate(w, false);
        write_escaped(w->f, s);
}

void json_uint(JsonWriter *w, uint64_t v) {
        separate(w, false);
        fprintf(w->f, "%" PRIu64, v);
}

void json_bool(JsonWriter *w, bool b) {
        separate(w, false);
        fputs(b ? "true" : "false", w->f);
}

void json_null(JsonWriter *w) {
        separate(w, false);
        fputs("null", w->f);
}

void json_field_string(JsonWriter *w, const char *key, const char *s) {
        json_key(w, key);
        json_string(w, s);
}

void json_field_uint(JsonWriter *w, const char *key, uint64_t v) {
        json_key(w, key);
        json_uint(w, v);
}

void json_field_uint_or_null(JsonWriter *w, const char *key, uint64_t v) {
        json_key(w, key);
        if (v == 0)
                json_null(w);
        else
                json_uint(w, v);
}

void json_field_bool(JsonWriter *w, const char *key, bool b) {
        json_key(w, key);
        json_bool(w, b);
}

void json_finish(JsonWriter *w) {
        if (w->depth != 0 || w->after_key)
                abort();
        fputc('\n', w->f);
}

void json_field_strv(JsonWriter *w, const char *key, char *const *strv) {
        json_key(w, key);
        json_array_begin(w);
        for (size_t i = 0; strv && strv[i]; i++)
                json_string(w, strv[i]);
        json_array_end(w);
}
