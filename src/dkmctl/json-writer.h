/* SPDX-License-Identifier: MIT */
/* A tiny JSON writer for dkmctl --json: objects, arrays, escaped strings, integers, booleans, null. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define JSON_DEPTH_MAX 16

/* Writes one compact document to f; commas and colons are placed by the writer. Nesting deeper
 * than JSON_DEPTH_MAX, or a value where a key is due, is a programmer error and aborts. Write
 * errors are left in f (ferror) for the caller to check once at the end. */
typedef struct JsonWriter {
        FILE *f;
        unsigned depth;
        bool in_object[JSON_DEPTH_MAX]; /* per level: object (keys due) or array */
        bool first[JSON_DEPTH_MAX];     /* per level: nothing written yet */
        bool after_key;
} JsonWriter;

void json_init(JsonWriter *w, FILE *f);
void json_object_begin(JsonWriter *w);
void json_object_end(JsonWriter *w);
void json_array_begin(JsonWriter *w);
void json_array_end(JsonWriter *w);
void json_key(JsonWriter *w, const char *key);

/* A string as JSON: quotes, backslashes and control characters escaped; bytes that are not
 * valid UTF-8 become U+FFFD, so the output is always valid JSON. NULL writes null. */
void json_string(JsonWriter *w, const char *s);
void json_uint(JsonWriter *w, uint64_t v);
void json_bool(JsonWriter *w, bool b);
void json_null(JsonWriter *w);

/* Object members in one call. json_field_uint_or_null writes null for 0 (the API's "none"). */
void json_field_string(JsonWriter *w, const char *key, const char *s);
void json_field_uint(JsonWriter *w, const char *key, uint64_t v);
void json_field_uint_or_null(JsonWriter *w, const char *key, uint64_t v);
void json_field_bool(JsonWriter *w, const char *key, bool b);
/* key: [strings...] (NULL: an empty array). */
void json_field_strv(JsonWriter *w, const char *key, char *const *strv);

/* End the document with a newline. The document must be complete. */
void json_finish(JsonWriter *w);

/* The length of the valid UTF-8 sequence at s (1 to 4; 1 for the NUL), or 0 if the byte at s
 * starts none: no overlong forms, no surrogates, nothing above U+10FFFF (RFC 3629). Never reads
 * past the string's NUL. */
size_t json_utf8_valid_length(const char *s);
