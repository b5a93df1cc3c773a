/* SPDX-License-Identifier: MIT */
/* Tests for the ciphertext format: known-answer vectors, tamper, truncation and reorder rejection. */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ciphertext.h"
#include "crypto.h"
#include "format-internal.h"
#include "stream.h"
#include "test-helpers.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

/* Check's ck_assert_*() records a checkpoint with the runner on every pass (a write), which
 * dominates hot loops under valgrind; these report only failures. */
#define CHECK(expr)                                                                                                    \
        do {                                                                                                           \
                if (!(expr))                                                                                           \
                        ck_abort_msg("%s:%d: '%s' failed", __FILE__, __LINE__, #expr);                                 \
        } while (0)
#define CHECK_EQ(a, b)                                                                                                 \
        do {                                                                                                           \
                long long _a = (long long) (a), _b = (long long) (b);                                                  \
                if (_a != _b)                                                                                          \
                        ck_abort_msg("%s:%d: %s == %lld, expected %lld", __FILE__, __LINE__, #a, _a, _b);              \
        } while (0)

#define CHUNK    CIPHERTEXT_STREAM_CHUNK_BYTES
#define CT_CHUNK (CHUNK + CRYPT_TAG_BYTES)

static const CryptAlg all_algs[] = { CRYPT_ALG_XCHACHA20_POLY1305, CRYPT_ALG_AES256_GCM };

static const uint8_t test_group[CIPHERTEXT_GROUP_ID_BYTES] = {
        0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
};

/* AES-GCM is hardware-only; where it is refused the refusal itself is what is tested. */
static bool alg_usable(CryptAlg alg) {
        int r = crypt_alg_check(alg);

        ck_assert(r == 0 || (alg == CRYPT_ALG_AES256_GCM && r == -EOPNOTSUPP));
        return r == 0;
}

static Secret *new_key(void) {
        Secret *k = NULL;

        ck_assert_int_eq(crypt_keygen(&k), 0);
        return k;
}

/* No Check assertions here: the vector generator runs outside a test. */
static uint8_t *pattern(size_t n) {
        uint8_t *b = malloc(n + 1);

        if (!b)
                abort();
        for (size_t i = 0; i < n; i++)
                b[i] = (uint8_t) (i % 251);
        return b;
}

static bool all_bytes(const uint8_t *p, size_t n, uint8_t v) {
        for (size_t i = 0; i < n; i++)
                if (p[i] != v)
                        return false;
        return true;
}

/* After a rejection an output buffer prefilled with 0xAA holds only 0xAA (untouched) or 0
 * (wiped): no unauthenticated plaintext. */
static bool no_plaintext(const uint8_t *p, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (p[i] != 0 && p[i] != 0xAA)
                        return false;
        return true;
}

/* ---- one-shot helpers ---- */

static uint8_t *seal_oneshot(CryptAlg alg, const Secret *key, uint32_t generation, const void *ad, size_t ad_size,
                             const void *pt, size_t pt_size, size_t *ret_size) {
        size_t cap = ciphertext_sealed_size(alg, pt_size), n = 0;
        uint8_t *out = malloc(cap);

        ck_assert_uint_gt(cap, 0);
        ck_assert_ptr_nonnull(out);
        ck_assert_int_eq(ciphertext_seal(alg, test_group, generation, key, ad, ad_size, pt, pt_size, out, cap, &n), 0);
        ck_assert_uint_eq(n, cap);
        *ret_size = n;
        return out;
}

/* Open ct; on failure check that no plaintext was left in the output buffer. */
static int open_oneshot(const Secret *key, const void *ad, size_t ad_size, const uint8_t *ct, size_t ct_size) {
        _cleanup_free_ uint8_t *out = malloc(ct_size + 1);
        size_t n = 12345;
        int r;

        CHECK(out);
        memset(out, 0xAA, ct_size + 1);
        r = ciphertext_open(key, ad, ad_size, ct, ct_size, out, ct_size, &n);
        if (r < 0) {
                CHECK_EQ(n, 12345); /* ret_* untouched on failure */
                CHECK(no_plaintext(out, ct_size + 1));
        }
        return r;
}

/* ---- stream helpers ---- */

typedef enum EncryptMode {
        MODE_READ_LOOP,  /* last = short read: a multiple of the chunk size ends with an empty chunk */
        MODE_READ_AHEAD, /* the final full chunk is the last one */
} EncryptMode;

/* Encrypt pt as a stream with the given chunk size; salt NULL = random (public entry point
 * when the chunk size is the default). Returns the whole ciphertext. */
static uint8_t *seal_stream(CryptAlg alg, const Secret *key, uint32_t generation, const void *ad, size_t ad_size,
                            const uint8_t *pt, size_t pt_size, uint32_t chunk, const uint8_t *salt, EncryptMode mode,
                            size_t *ret_size) {
        _cleanup_stream_encryptor_ StreamEncryptor *e = NULL;
        size_t cap = CIPHERTEXT_STREAM_HEADER_BYTES + (pt_size / chunk + 2) * (chunk + CRYPT_TAG_BYTES);
        uint8_t *out = malloc(cap), rnd[CIPHERTEXT_STREAM_SALT_BYTES];
        const uint8_t *h;
        size_t hn, off = 0, pos = 0;
        bool last;

        ck_assert_ptr_nonnull(out);
        if (!salt && chunk == CHUNK)
                ck_assert_int_eq(stream_encrypt_new(alg, test_group, generation, key, ad, ad_size, &e), 0);
        else {
                if (!salt) {
                        crypt_random(rnd, sizeof(rnd));
                        salt = rnd;
                }
                ck_assert_int_eq(
                        stream_encrypt_new_with_salt(alg, test_group, generation, key, ad, ad_size, salt, chunk, &e),
                        0);
        }
        ck_assert_uint_eq(stream_encrypt_chunk_size(e), chunk);
        h = stream_encrypt_header(e, &hn);
        ck_assert_uint_eq(hn, CIPHERTEXT_STREAM_HEADER_BYTES);
        memcpy(out, h, hn);
        off = hn;
        do {
                size_t n = MIN((size_t) chunk, pt_size - pos), m = 0;

                last = mode == MODE_READ_LOOP ? n < chunk : pos + n == pt_size;
                CHECK_EQ(stream_encrypt_chunk(e, pt + pos, n, last, out + off, cap - off, &m), 0);
                CHECK_EQ(m, n + CRYPT_TAG_BYTES);
                pos += n;
                off += m;
        } while (!last);
        ck_assert_uint_eq(pos, pt_size);
        *ret_size = off;
        return out;
}

/* Decrypt a whole stream, feeding the body in pieces of `piece` bytes (0: all at once).
 * Returns the first error; no plaintext is returned unless the whole stream verified. */
static int open_stream(const Secret *key, const void *ad, size_t ad_size, const uint8_t *ct, size_t ct_size,
                       size_t piece, uint8_t **ret_pt, size_t *ret_pt_size) {
        _cleanup_stream_decryptor_ StreamDecryptor *d = NULL;
        _cleanup_free_ uint8_t *pt = NULL, *chunk = NULL;
        CiphertextHeader h;
        size_t pos, pt_size = 0, cs, n;
        int r;

        r = ciphertext_parse_header(ct, ct_size, &h);
        if (r < 0)
                return r;
        r = stream_decrypt_new(key, ad, ad_size, ct, ct_size, &d);
        if (r < 0)
                return r;
        cs = stream_decrypt_chunk_size(d);
        CHECK_EQ(cs, h.chunk_size);
        pt = malloc(ct_size + 1);
        chunk = malloc(cs);
        CHECK(pt && chunk);
        /* Refilled only after a chunk is handed out: the decryptor writes nothing else there,
         * so on failure anything but 0xAA or 0 would be leaked plaintext. */
        memset(chunk, 0xAA, cs);

        pos = h.size;
        while (pos < ct_size) {
                size_t avail = piece == 0 ? ct_size - pos : MIN(piece, ct_size - pos);

                while (avail > 0) {
                        size_t used = 0;

                        n = 0;
                        r = stream_decrypt_update(d, ct + pos, avail, &used, chunk, cs, &n);
                        if (r < 0) {
                                CHECK(no_plaintext(chunk, cs));
                                return r;
                        }
                        /* bounded: at most one ciphertext chunk buffered, one plaintext chunk out */
                        CHECK(used <= cs + CRYPT_TAG_BYTES);
                        CHECK(n == 0 || n == cs);
                        CHECK(used > 0 || n > 0);
                        if (n > 0) {
                                memcpy(pt + pt_size, chunk, n);
                                memset(chunk, 0xAA, cs);
                        }
                        pt_size += n;
                        pos += used;
                        avail -= used;
                }
        }
        n = 0;
        r = stream_decrypt_final(d, chunk, cs, &n);
        if (r < 0) {
                CHECK(no_plaintext(chunk, cs));
                return r;
        }
        CHECK(n <= cs);
        memcpy(pt + pt_size, chunk, n);
        pt_size += n;
        /* after the end, nothing more is accepted */
        CHECK_EQ(stream_decrypt_final(d, chunk, cs, &n), -EINVAL);

        if (ret_pt)
                *ret_pt = TAKE_PTR(pt);
        if (ret_pt_size)
                *ret_pt_size = pt_size;
        return 0;
}

/* ---- known-answer vectors ---- */

/* The checked-in files are the contract: every one must be present and must keep decrypting. */
static const char *const vector_files[] = {
        "oneshot-xchacha-empty.txt",     "oneshot-xchacha-1byte.txt",
        "oneshot-xchacha-100-ad.txt",    "oneshot-aesgcm-empty.txt",
        "oneshot-aesgcm-100-ad.txt",     "stream-xchacha-empty.txt",
        "stream-xchacha-one-chunk.txt",  "stream-xchacha-2.5-chunks-ad.txt",
        "stream-xchacha-chunk16-ad.txt", "stream-xchacha-chunk16-empty-last.txt",
        "stream-aesgcm-empty.txt",       "stream-aesgcm-2.5-chunks-ad.txt",
};

#define VECTOR_FIELDS_MAX 16

typedef struct Vector {
        char *names[VECTOR_FIELDS_MAX];
        char *values[VECTOR_FIELDS_MAX];
        size_t lens[VECTOR_FIELDS_MAX], caps[VECTOR_FIELDS_MAX];
        size_t n;
} Vector;

static void vector_done(Vector *v) {
        for (size_t i = 0; i < v->n; i++) {
                free(v->names[i]);
                free(v->values[i]);
        }
        v->n = 0;
}

static char *strip(char *s) {
        char *e;

        while (*s == ' ' || *s == '\t')
                s++;
        e = s + strlen(s);
        while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
                *--e = 0;
        return s;
}

/* "name = value" lines; '#' comments; a line starting with whitespace continues the value. */
static void vector_load(const char *name, Vector *v) {
        const char *dir = getenv("DKM_TEST_VECTORS");
        _cleanup_free_ char *path = NULL, *line = NULL;
        size_t cap = 0;
        FILE *f;

        ck_assert_msg(dir, "DKM_TEST_VECTORS not set");
        ck_assert_int_ge(asprintf(&path, "%s/%s", dir, name), 0);
        f = fopen(path, "re");
        ck_assert_msg(f, "cannot open vector %s", path);
        *v = (Vector){};
        while (getline(&line, &cap, f) >= 0) {
                char *s, *eq;

                if (line[0] == ' ' || line[0] == '\t') {
                        char *add = strip(line);
                        size_t i, an = strlen(add);

                        if (v->n == 0)
                                ck_abort_msg("%s: continuation without a field", name);
                        i = v->n - 1;
                        /* grow geometrically: the stream vectors have thousands of lines */
                        if (v->lens[i] + an + 1 > v->caps[i]) {
                                v->caps[i] = MAX(2 * v->caps[i], v->lens[i] + an + 1);
                                v->values[i] = realloc(v->values[i], v->caps[i]);
                                CHECK(v->values[i]);
                        }
                        memcpy(v->values[i] + v->lens[i], add, an + 1);
                        v->lens[i] += an;
                        continue;
                }
                s = strip(line);
                if (*s == 0 || *s == '#')
                        continue;
                eq = strchr(s, '=');
                ck_assert_msg(eq, "%s: bad line '%s'", name, s);
                *eq = 0;
                ck_assert_uint_lt(v->n, VECTOR_FIELDS_MAX);
                v->names[v->n] = strdup(strip(s));
                v->values[v->n] = strdup(strip(eq + 1));
                v->lens[v->n] = strlen(v->values[v->n]);
                v->caps[v->n] = v->lens[v->n] + 1;
                v->n++;
        }
        fclose(f);
}

static const char *vector_get(const Vector *v, const char *field) {
        for (size_t i = 0; i < v->n; i++)
                if (strcmp(v->names[i], field) == 0)
                        return v->values[i];
        return NULL;
}

static const char *vector_need(const Vector *v, const char *field) {
        const char *s = vector_get(v, field);

        ck_assert_msg(s, "vector lacks field '%s'", field);
        return s;
}

static int hexval(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* test_unhex() calls sscanf per byte, too slow under valgrind for the big vectors. */
static uint8_t *vector_hex(const Vector *v, const char *field, size_t *ret_size) {
        const char *s = vector_need(v, field);
        size_t n = strlen(s);
        uint8_t *b;

        ck_assert_msg(n % 2 == 0, "field '%s': odd hex length", field);
        b = malloc(n / 2 + 1);
        ck_assert_ptr_nonnull(b);
        for (size_t i = 0; i < n / 2; i++) {
                int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);

                if (hi < 0 || lo < 0)
                        ck_abort_msg("field '%s': bad hex", field);
                b[i] = (uint8_t) (hi << 4 | lo);
        }
        *ret_size = n / 2;
        return b;
}

static unsigned long vector_num(const Vector *v, const char *field) {
        const char *s = vector_need(v, field);
        char *end;
        unsigned long n = strtoul(s, &end, 10);

        ck_assert_msg(*s && *end == 0, "field '%s' is not a number", field);
        return n;
}

static uint8_t *vector_plaintext(const Vector *v, size_t *ret_size) {
        if (vector_get(v, "plaintext_mod251")) {
                *ret_size = vector_num(v, "plaintext_mod251");
                return pattern(*ret_size);
        }
        return vector_hex(v, "plaintext", ret_size);
}

static void check_vector(const char *file) {
        _cleanup_(vector_done) Vector v = {};
        _cleanup_secret_ Secret *key = NULL;
        _cleanup_free_ uint8_t *k = NULL, *gid = NULL, *ad = NULL, *pt = NULL, *ct = NULL, *got = NULL,
                               *resealed = NULL;
        size_t kn, gn, an, pn, cn, got_n = 0, rn = 0;
        CiphertextHeader h;
        CryptAlg alg;
        uint32_t generation;
        bool stream;

        vector_load(file, &v);
        ck_assert_int_eq(crypt_alg_from_string(vector_need(&v, "alg"), &alg), 0);
        stream = strcmp(vector_need(&v, "kind"), "stream") == 0;
        ck_assert(stream || strcmp(vector_need(&v, "kind"), "oneshot") == 0);
        k = vector_hex(&v, "key", &kn);
        ck_assert_int_eq(secret_new_copy(k, kn, &key), 0);
        gid = vector_hex(&v, "group_id", &gn);
        ck_assert_uint_eq(gn, CIPHERTEXT_GROUP_ID_BYTES);
        generation = (uint32_t) vector_num(&v, "generation");
        ad = vector_hex(&v, "ad", &an);
        pt = vector_plaintext(&v, &pn);
        ct = vector_hex(&v, "ciphertext", &cn);

        /* The header says what the file says. */
        ck_assert_int_eq(ciphertext_parse_header(ct, cn, &h), 0);
        ck_assert_uint_eq(h.version, 1);
        ck_assert_int_eq(h.kind, stream ? CIPHERTEXT_STREAM : CIPHERTEXT_ONESHOT);
        ck_assert_int_eq(h.alg, alg);
        ck_assert_mem_eq(h.group_id, gid, gn);
        ck_assert_uint_eq(h.generation, generation);

        if (!alg_usable(alg)) {
                _cleanup_stream_decryptor_ StreamDecryptor *d = NULL;
                uint8_t out[1];

                if (stream)
                        ck_assert_int_eq(stream_decrypt_new(key, ad, an, ct, cn, &d), -EOPNOTSUPP);
                else
                        ck_assert_int_eq(ciphertext_open(key, ad, an, ct, cn, out, sizeof(out), &got_n), -EOPNOTSUPP);
                return;
        }

        if (!stream) {
                _cleanup_free_ uint8_t *nonce = vector_hex(&v, "nonce", &rn);

                ck_assert_uint_eq(rn, h.nonce_size);
                ck_assert_mem_eq(h.nonce, nonce, rn);
                got = malloc(cn);
                ck_assert_int_eq(ciphertext_open(key, ad, an, ct, cn, got, cn, &got_n), 0);
                ck_assert_uint_eq(got_n, pn);
                ck_assert_mem_eq(got, pt, pn);

                resealed = malloc(cn);
                ck_assert_int_eq(
                        ciphertext_seal_with_nonce(alg, gid, generation, key, nonce, ad, an, pt, pn, resealed, cn, &rn),
                        0);
                ck_assert_uint_eq(rn, cn);
                ck_assert_mem_eq(resealed, ct, cn);
        } else {
                _cleanup_free_ uint8_t *salt = vector_hex(&v, "salt", &rn);
                _cleanup_stream_encryptor_ StreamEncryptor *e = NULL;
                char *chunks = strdup(vector_need(&v, "chunks")), *save = NULL;
                size_t pos = 0, off, sizes[16], sizes_n;
                const uint8_t *hb;

                ck_assert_uint_eq(rn, CIPHERTEXT_STREAM_SALT_BYTES);
                ck_assert_mem_eq(h.salt, salt, rn);
                ck_assert_uint_eq(h.chunk_size, vector_num(&v, "chunk_size"));

                /* Decrypt at once and in odd-sized pieces. */
                ck_assert_int_eq(open_stream(key, ad, an, ct, cn, 0, &got, &got_n), 0);
                ck_assert_uint_eq(got_n, pn);
                ck_assert_mem_eq(got, pt, pn);
                free(TAKE_PTR(got));
                ck_assert_int_eq(open_stream(key, ad, an, ct, cn, 4093, &got, &got_n), 0);
                ck_assert_uint_eq(got_n, pn);
                ck_assert_mem_eq(got, pt, pn);

                /* Re-seal chunk by chunk as the file lists them. */
                ck_assert_int_eq(
                        stream_encrypt_new_with_salt(alg, gid, generation, key, ad, an, salt, h.chunk_size, &e), 0);
                resealed = malloc(cn);
                hb = stream_encrypt_header(e, &off);
                memcpy(resealed, hb, off);
                sizes_n = 0;
                for (char *tok = strtok_r(chunks, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
                        ck_assert_uint_lt(sizes_n, ELEMENTSOF(sizes));
                        sizes[sizes_n++] = strtoul(tok, NULL, 10);
                }
                ck_assert_uint_gt(sizes_n, 0);
                for (size_t i = 0; i < sizes_n; i++) {
                        size_t m = 0;

                        ck_assert_uint_le(pos + sizes[i], pn);
                        ck_assert_int_eq(stream_encrypt_chunk(e, pt + pos, sizes[i], i == sizes_n - 1, resealed + off,
                                                              cn - off, &m),
                                         0);
                        pos += sizes[i];
                        off += m;
                }
                free(chunks);
                ck_assert_uint_eq(pos, pn);
                ck_assert_uint_eq(off, cn);
                ck_assert_mem_eq(resealed, ct, cn);
        }
}

START_TEST(test_vectors) {
        for (size_t i = 0; i < ELEMENTSOF(vector_files); i++)
                check_vector(vector_files[i]);
}
END_TEST

/* ---- one-shot ---- */

START_TEST(test_oneshot_roundtrip) {
        static const size_t sizes[] = { 0, 1, 15, 16, 17, 100, 4096, 100000 };
        _cleanup_secret_ Secret *key = new_key();
        _cleanup_free_ uint8_t *pt = pattern(100000);

        for (size_t a = 0; a < ELEMENTSOF(all_algs); a++) {
                CryptAlg alg = all_algs[a];

                if (!alg_usable(alg))
                        continue;
                for (size_t i = 0; i < ELEMENTSOF(sizes); i++) {
                        size_t n, n2, got_n = 0;
                        _cleanup_free_ uint8_t *c1 = seal_oneshot(alg, key, 3, "ad", 2, pt, sizes[i], &n);
                        _cleanup_free_ uint8_t *c2 = seal_oneshot(alg, key, 3, "ad", 2, pt, sizes[i], &n2);
                        _cleanup_free_ uint8_t *out = malloc(n);
                        CiphertextHeader h;

                        ck_assert_uint_eq(n, ciphertext_header_size(alg) + sizes[i] + CRYPT_TAG_BYTES);
                        /* fresh random nonce every time */
                        ck_assert_int_eq(ciphertext_parse_header(c1, n, &h), 0);
                        ck_assert_mem_ne(c1 + CIPHERTEXT_PREFIX_BYTES, c2 + CIPHERTEXT_PREFIX_BYTES, h.nonce_size);
                        ck_assert_uint_eq(h.size, ciphertext_header_size(alg));
                        ck_assert_int_eq(h.kind, CIPHERTEXT_ONESHOT);
                        ck_assert_uint_eq(h.generation, 3);
                        ck_assert_mem_eq(h.group_id, test_group, sizeof(test_group));

                        ck_assert_int_eq(ciphertext_open(key, "ad", 2, c1, n, out, n, &got_n), 0);
                        ck_assert_uint_eq(got_n, sizes[i]);
                        ck_assert_mem_eq(out, pt, sizes[i]);
                        /* exactly-sized output buffer is enough, one byte less is not */
                        ck_assert_int_eq(ciphertext_open(key, "ad", 2, c1, n, out, sizes[i], &got_n), 0);
                        if (sizes[i] > 0)
                                ck_assert_int_eq(ciphertext_open(key, "ad", 2, c1, n, out, sizes[i] - 1, &got_n),
                                                 -ENOBUFS);
                }
        }
}
END_TEST

/* Every single-bit flip anywhere (magic, version, kind, alg, flags, group id, generation,
 * nonce, ciphertext, tag) must be rejected, and leave no plaintext behind. */
static void check_oneshot_bitflips(CryptAlg alg) {
        _cleanup_secret_ Secret *key = new_key();
        _cleanup_free_ uint8_t *pt = pattern(33), *c = NULL;
        size_t n;

        if (!alg_usable(alg))
                return;
        c = seal_oneshot(alg, key, 0x01020304, "x", 1, pt, 33, &n);
        ck_assert_int_eq(open_oneshot(key, "x", 1, c, n), 0);
        for (size_t bit = 0; bit < n * 8; bit++) {
                int r;

                c[bit / 8] ^= (uint8_t) (1u << (bit % 8));
                r = open_oneshot(key, "x", 1, c, n);
                if (r >= 0)
                        ck_abort_msg("bit %zu flipped was accepted", bit);
                /* past the fixed prefix every flip is an authentication failure */
                if (bit / 8 >= CIPHERTEXT_PREFIX_BYTES)
                        CHECK_EQ(r, -EBADMSG);
                c[bit / 8] ^= (uint8_t) (1u << (bit % 8));
        }
        ck_assert_int_eq(open_oneshot(key, "x", 1, c, n), 0);
}

START_TEST(test_oneshot_bitflips_xchacha) {
        check_oneshot_bitflips(CRYPT_ALG_XCHACHA20_POLY1305);
}
END_TEST

START_TEST(test_oneshot_bitflips_aesgcm) {
        check_oneshot_bitflips(CRYPT_ALG_AES256_GCM);
}
END_TEST

START_TEST(test_oneshot_binding) {
        for (size_t a = 0; a < ELEMENTSOF(all_algs); a++) {
                CryptAlg alg = all_algs[a];
                _cleanup_secret_ Secret *key = new_key(), *other = new_key();
                _cleanup_free_ uint8_t *pt = pattern(40), *c = NULL, *c2 = NULL;
                size_t n, n2;

                if (!alg_usable(alg))
                        continue;
                c = seal_oneshot(alg, key, 9, "context", 7, pt, 40, &n);
                ck_assert_int_eq(open_oneshot(key, "context", 7, c, n), 0);
                ck_assert_int_eq(open_oneshot(other, "context", 7, c, n), -EBADMSG);
                /* caller ad: different, missing, extended */
                ck_assert_int_eq(open_oneshot(key, "Context", 7, c, n), -EBADMSG);
                ck_assert_int_eq(open_oneshot(key, NULL, 0, c, n), -EBADMSG);
                ck_assert_int_eq(open_oneshot(key, "context!", 8, c, n), -EBADMSG);
                ck_assert_int_eq(open_oneshot(key, "context", 6, c, n), -EBADMSG);
                /* another group id or generation written into the header */
                c[8] ^= 0x80;
                ck_assert_int_eq(open_oneshot(key, "context", 7, c, n), -EBADMSG);
                c[8] ^= 0x80;
                c[27] = 10;
                ck_assert_int_eq(open_oneshot(key, "context", 7, c, n), -EBADMSG);
                c[27] = 9;
                ck_assert_int_eq(open_oneshot(key, "context", 7, c, n), 0);
                /* without ad, the ad is still bound as empty */
                c2 = seal_oneshot(alg, key, 9, NULL, 0, pt, 40, &n2);
                ck_assert_int_eq(open_oneshot(key, NULL, 0, c2, n2), 0);
                ck_assert_int_eq(open_oneshot(key, "", 0, c2, n2), 0);
                ck_assert_int_eq(open_oneshot(key, "\0", 1, c2, n2), -EBADMSG);
                /* wrong key size is a caller error */
                {
                        _cleanup_secret_ Secret *short_key = NULL;
                        ck_assert_int_eq(secret_new(16, &short_key), 0);
                        ck_assert_int_eq(open_oneshot(short_key, NULL, 0, c2, n2), -EINVAL);
                        ck_assert_int_eq(open_oneshot(NULL, NULL, 0, c2, n2), -EINVAL);
                }
        }
}
END_TEST

START_TEST(test_oneshot_truncated) {
        for (size_t a = 0; a < ELEMENTSOF(all_algs); a++) {
                CryptAlg alg = all_algs[a];
                _cleanup_secret_ Secret *key = new_key();
                _cleanup_free_ uint8_t *pt = pattern(50), *c = NULL, *longer = NULL;
                size_t n;

                if (!alg_usable(alg))
                        continue;
                c = seal_oneshot(alg, key, 1, NULL, 0, pt, 50, &n);
                for (size_t len = 0; len < n; len++) {
                        int r = open_oneshot(key, NULL, 0, c, len);

                        if (len < CIPHERTEXT_MAGIC_BYTES)
                                CHECK_EQ(r, -ENOMSG);
                        else
                                CHECK_EQ(r, -EBADMSG);
                }
                /* a truncated copy in its own allocation: no read past the end (ASan) */
                for (size_t len = 0; len < n; len++) {
                        _cleanup_free_ uint8_t *t = malloc(len ? len : 1);
                        memcpy(t, c, len);
                        CHECK(open_oneshot(key, NULL, 0, t, len) < 0);
                }
                /* appended bytes */
                longer = malloc(n + 1);
                memcpy(longer, c, n);
                longer[n] = 0;
                ck_assert_int_eq(open_oneshot(key, NULL, 0, longer, n + 1), -EBADMSG);
        }
}
END_TEST

/* ---- header errors ---- */

static int parse_modified(const uint8_t *c, size_t n, size_t off, uint8_t v) {
        _cleanup_free_ uint8_t *t = malloc(n);
        CiphertextHeader h = { .generation = 4242 };
        int r;

        memcpy(t, c, n);
        t[off] = v;
        r = ciphertext_parse_header(t, n, &h);
        if (r < 0)
                CHECK_EQ(h.generation, 4242); /* untouched on failure */
        return r;
}

START_TEST(test_header_errors) {
        _cleanup_secret_ Secret *key = new_key();
        _cleanup_free_ uint8_t *pt = pattern(10), *c = NULL, *s = NULL;
        _cleanup_stream_decryptor_ StreamDecryptor *d = NULL;
        size_t n, sn, got;
        uint8_t out[64];
        CiphertextHeader h;

        c = seal_oneshot(CRYPT_ALG_XCHACHA20_POLY1305, key, 1, NULL, 0, pt, 10, &n);
        s = seal_stream(CRYPT_ALG_XCHACHA20_POLY1305, key, 1, NULL, 0, pt, 10, CHUNK, NULL, MODE_READ_LOOP, &sn);

        /* each cause has its own code, so the CLI can say what is wrong */
        ck_assert_int_eq(parse_modified(c, n, 0, 'X'), -ENOMSG);
        ck_assert_int_eq(parse_modified(c, n, 2, 'm'), -ENOMSG);
        ck_assert_int_eq(parse_modified(c, n, 3, 0), -EPROTONOSUPPORT);
        ck_assert_int_eq(parse_modified(c, n, 3, 2), -EPROTONOSUPPORT);
        ck_assert_int_eq(parse_modified(c, n, 3, 255), -EPROTONOSUPPORT);
        ck_assert_int_eq(parse_modified(c, n, 4, 0), -EPROTONOSUPPORT);
        ck_assert_int_eq(parse_modified(c, n, 4, 3), -EPROTONOSUPPORT);
        ck_assert_int_eq(parse_modified(c, n, 5, 0), -EAFNOSUPPORT);
        ck_assert_int_eq(parse_modified(c, n, 5, 3), -EAFNOSUPPORT);
        ck_assert_int_eq(parse_modified(c, n, 5, 255), -EAFNOSUPPORT);
        ck_assert_int_eq(parse_modified(c, n, 6, 0x80), -EBADMSG);
        ck_assert_int_eq(parse_modified(c, n, 7, 0x01), -EBADMSG);
        ck_assert_int_ne(-ENOMSG, -EPROTONOSUPPORT);
        ck_assert_int_ne(-ENOMSG, -EAFNOSUPPORT);
        ck_assert_int_ne(-ENOMSG, -EBADMSG);
        ck_assert_int_ne(-EPROTONOSUPPORT, -EAFNOSUPPORT);
        ck_assert_int_ne(-EPROTONOSUPPORT, -EBADMSG);
        ck_assert_int_ne(-EAFNOSUPPORT, -EBADMSG);
        /* a newer version is reported as such even if its header is shorter than ours */
        ck_assert_int_eq(parse_modified(c, 4, 3, 2), -EPROTONOSUPPORT);
        ck_assert_int_eq(ciphertext_parse_header(c, 0, &h), -ENOMSG);
        ck_assert_int_eq(ciphertext_parse_header(NULL, 0, &h), -ENOMSG);
        ck_assert_int_eq(ciphertext_parse_header(c, 3, &h), -EBADMSG);
        ck_assert_int_eq(ciphertext_parse_header(c, CIPHERTEXT_PREFIX_BYTES + 23, &h), -EBADMSG);
        ck_assert_int_eq(ciphertext_parse_header(c, CIPHERTEXT_PREFIX_BYTES + 24, &h), 0);
        ck_assert_uint_eq(h.size, 52);

        /* the same codes through the decrypt entry points */
        c[3] = 2;
        ck_assert_int_eq(ciphertext_open(key, NULL, 0, c, n, out, sizeof(out), &got), -EPROTONOSUPPORT);
        c[3] = 1;
        c[5] = 9;
        ck_assert_int_eq(ciphertext_open(key, NULL, 0, c, n, out, sizeof(out), &got), -EAFNOSUPPORT);
        c[5] = 1;
        s[7] = 1;
        ck_assert_int_eq(stream_decrypt_new(key, NULL, 0, s, sn, &d), -EBADMSG);
        s[7] = 0;
        s[0] = 'd';
        ck_assert_int_eq(stream_decrypt_new(key, NULL, 0, s, sn, &d), -ENOMSG);
        s[0] = 'D';

        /* kinds are not interchangeable */
        ck_assert_int_eq(ciphertext_open(key, NULL, 0, s, sn, out, sizeof(out), &got), -EMEDIUMTYPE);
        ck_assert_int_eq(stream_decrypt_new(key, NULL, 0, c, n, &d), -EMEDIUMTYPE);
        ck_assert_ptr_null(d);

        /* stream chunk size: 0 and above 16 MiB are refused (bounded memory), 1..16 MiB parse */
        ck_assert_int_eq(ciphertext_parse_header(s, sn, &h), 0);
        ck_assert_uint_eq(h.size, CIPHERTEXT_STREAM_HEADER_BYTES);
        ck_assert_uint_eq(h.chunk_size, CHUNK);
        format_put_be32(s + 60, 0);
        ck_assert_int_eq(ciphertext_parse_header(s, sn, &h), -EBADMSG);
        format_put_be32(s + 60, CIPHERTEXT_STREAM_CHUNK_MAX + 1);
        ck_assert_int_eq(ciphertext_parse_header(s, sn, &h), -EBADMSG);
        format_put_be32(s + 60, UINT32_MAX);
        ck_assert_int_eq(ciphertext_parse_header(s, sn, &h), -EBADMSG);
        format_put_be32(s + 60, CIPHERTEXT_STREAM_CHUNK_MAX);
        ck_assert_int_eq(ciphertext_parse_header(s, sn, &h), 0);
        format_put_be32(s + 60, 1);
        ck_assert_int_eq(ciphertext_parse_header(s, sn, &h), 0);
        ck_assert_int_eq(ciphertext_parse_header(s, CIPHERTEXT_STREAM_HEADER_BYTES - 1, &h), -EBADMSG);
}
END_TEST

START_TEST(test_seal_arguments) {
        _cleanup_secret_ Secret *key = new_key(), *short_key = NULL;
        _cleanup_stream_encryptor_ StreamEncryptor *e = NULL;
        uint8_t out[256], pt[8] = { 0 };
        size_t n = 777;

        ck_assert_int_eq(secret_new(31, &short_key), 0);
        ck_assert_int_eq(ciphertext_seal(CRYPT_ALG_XCHACHA20_POLY1305, test_group, 1, short_key, NULL, 0, pt, 8, out,
                                         sizeof(out), &n),
                         -EINVAL);
        ck_assert_int_eq(ciphertext_seal(CRYPT_ALG_XCHACHA20_POLY1305, test_group, 1, NULL, NULL, 0, pt, 8, out,
                                         sizeof(out), &n),
                         -EINVAL);
        ck_assert_int_eq(
                ciphertext_seal(CRYPT_ALG_XCHACHA20_POLY1305, test_group, 1, key, NULL, 3, pt, 8, out, sizeof(out), &n),
                -EINVAL);
        ck_assert_int_eq(ciphertext_seal((CryptAlg) 77, test_group, 1, key, NULL, 0, pt, 8, out, sizeof(out), &n),
                         -EAFNOSUPPORT);
        ck_assert_int_eq(
                ciphertext_seal(CRYPT_ALG_XCHACHA20_POLY1305, test_group, 1, key, NULL, 0, pt, 8, out, 52 + 8 + 15, &n),
                -ENOBUFS);
        /* size checks come before the plaintext is touched */
        ck_assert_int_eq(ciphertext_seal(CRYPT_ALG_XCHACHA20_POLY1305, test_group, 1, key, NULL, 0, pt,
                                         CIPHERTEXT_ONESHOT_MAX_BYTES + 1, out, sizeof(out), &n),
                         -EFBIG);
        ck_assert_uint_eq(n, 777);
        ck_assert_uint_eq(ciphertext_sealed_size((CryptAlg) 0, 1), 0);
        ck_assert_uint_eq(ciphertext_sealed_size(CRYPT_ALG_XCHACHA20_POLY1305, CIPHERTEXT_ONESHOT_MAX_BYTES + 1), 0);
        ck_assert_uint_eq(ciphertext_sealed_size(CRYPT_ALG_XCHACHA20_POLY1305, 0), 52 + 16);
        ck_assert_uint_eq(ciphertext_sealed_size(CRYPT_ALG_AES256_GCM, 0), 40 + 16);
        ck_assert_uint_eq(ciphertext_header_size((CryptAlg) 3), 0);

        ck_assert_int_eq(stream_encrypt_new((CryptAlg) 77, test_group, 1, key, NULL, 0, &e), -EAFNOSUPPORT);
        ck_assert_int_eq(stream_encrypt_new(CRYPT_ALG_XCHACHA20_POLY1305, test_group, 1, short_key, NULL, 0, &e),
                         -EINVAL);
        ck_assert_ptr_null(e);

        if (crypt_alg_check(CRYPT_ALG_AES256_GCM) == -EOPNOTSUPP) {
                ck_assert_int_eq(
                        ciphertext_seal(CRYPT_ALG_AES256_GCM, test_group, 1, key, NULL, 0, pt, 8, out, sizeof(out), &n),
                        -EOPNOTSUPP);
                ck_assert_int_eq(stream_encrypt_new(CRYPT_ALG_AES256_GCM, test_group, 1, key, NULL, 0, &e),
                                 -EOPNOTSUPP);
        }
}
END_TEST

/* ---- stream ---- */

START_TEST(test_chunk_nonce) {
        uint8_t nonce[CRYPT_NONCE_MAX_BYTES];
        size_t n;
        _cleanup_free_ uint8_t *want_x = test_unhex("00000000000000000000000000000000000000"
                                                    "01020304"
                                                    "01",
                                                    &n);
        _cleanup_free_ uint8_t *want_a = test_unhex("00000000000000"
                                                    "fffffffe"
                                                    "00",
                                                    &n);

        stream_chunk_nonce(CRYPT_ALG_XCHACHA20_POLY1305, 0x01020304, true, nonce);
        ck_assert_mem_eq(nonce, want_x, 24);
        stream_chunk_nonce(CRYPT_ALG_AES256_GCM, 0xfffffffe, false, nonce);
        ck_assert_mem_eq(nonce, want_a, 12);
}
END_TEST

static void check_stream_roundtrip(CryptAlg alg) {
        const size_t sizes[] = { 0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 5 };
        const size_t pieces[] = { 0, 1000, CT_CHUNK, CT_CHUNK + 1, 3 * CT_CHUNK - 7 };
        _cleanup_secret_ Secret *key = new_key();
        _cleanup_free_ uint8_t *pt = pattern(3 * CHUNK + 5);

        if (!alg_usable(alg))
                return;
        for (size_t i = 0; i < ELEMENTSOF(sizes); i++)
                for (int mode = MODE_READ_LOOP; mode <= MODE_READ_AHEAD; mode++) {
                        size_t n, chunks, got_n;
                        _cleanup_free_ uint8_t *c =
                                seal_stream(alg, key, 5, "ad", 2, pt, sizes[i], CHUNK, NULL, (EncryptMode) mode, &n);

                        chunks = sizes[i] / CHUNK + 1;
                        if (mode == MODE_READ_AHEAD && sizes[i] > 0 && sizes[i] % CHUNK == 0)
                                chunks--;
                        ck_assert_uint_eq(n, CIPHERTEXT_STREAM_HEADER_BYTES + sizes[i] + chunks * CRYPT_TAG_BYTES);
                        for (size_t p = 0; p < ELEMENTSOF(pieces); p++) {
                                _cleanup_free_ uint8_t *got = NULL;

                                ck_assert_int_eq(open_stream(key, "ad", 2, c, n, pieces[p], &got, &got_n), 0);
                                ck_assert_uint_eq(got_n, sizes[i]);
                                ck_assert_mem_eq(got, pt, sizes[i]);
                        }
                        /* byte by byte for the smaller ones */
                        if (sizes[i] <= CHUNK + 1) {
                                _cleanup_free_ uint8_t *got = NULL;

                                ck_assert_int_eq(open_stream(key, "ad", 2, c, n, 1, &got, &got_n), 0);
                                ck_assert_mem_eq(got, pt, sizes[i]);
                        }
                        ck_assert_int_eq(open_stream(key, "ae", 2, c, n, 0, NULL, NULL), -EBADMSG);
                }
}

START_TEST(test_stream_roundtrip_xchacha) {
        check_stream_roundtrip(CRYPT_ALG_XCHACHA20_POLY1305);
}
END_TEST

START_TEST(test_stream_roundtrip_aesgcm) {
        check_stream_roundtrip(CRYPT_ALG_AES256_GCM);
}
END_TEST

/* Build a stream from chunk i of c in the order given by idx (-1 ends), optionally with a tail. */
static uint8_t *rearrange(const uint8_t *c, size_t n, const int *idx, const uint8_t *tail, size_t tail_size,
                          size_t *ret_size) {
        uint8_t *t = malloc(n * 2 + tail_size);
        size_t off = CIPHERTEXT_STREAM_HEADER_BYTES;

        memcpy(t, c, off);
        for (; *idx >= 0; idx++) {
                size_t start = CIPHERTEXT_STREAM_HEADER_BYTES + (size_t) *idx * CT_CHUNK;
                size_t len = MIN((size_t) CT_CHUNK, n - start);

                memcpy(t + off, c + start, len);
                off += len;
        }
        if (tail_size > 0)
                memcpy(t + off, tail, tail_size);
        *ret_size = off + tail_size;
        return t;
}

static int open_rearranged(const Secret *key, const uint8_t *c, size_t n, const int *idx, const uint8_t *tail,
                           size_t tail_size) {
        size_t tn;
        _cleanup_free_ uint8_t *t = rearrange(c, n, idx, tail, tail_size, &tn);
        int r = open_stream(key, NULL, 0, t, tn, 0, NULL, NULL), r2;

        /* the answer does not depend on how the input is split */
        r2 = open_stream(key, NULL, 0, t, tn, 777, NULL, NULL);
        CHECK_EQ(r, r2);
        return r;
}

static void check_stream_attacks(CryptAlg alg, EncryptMode mode, size_t size) {
        _cleanup_secret_ Secret *key = new_key();
        _cleanup_free_ uint8_t *pt = pattern(size), *c = NULL, *other = NULL;
        size_t n, on;
        int nchunks;

        if (!alg_usable(alg))
                return;
        c = seal_stream(alg, key, 1, NULL, 0, pt, size, CHUNK, NULL, mode, &n);
        /* every case below is built from four chunks */
        nchunks = (int) ((n - CIPHERTEXT_STREAM_HEADER_BYTES + CT_CHUNK - 1) / CT_CHUNK);
        ck_assert_int_eq(nchunks, 4);

#define IDX(...) ((const int[]){ __VA_ARGS__, -1 })
        /* sanity: the untouched order decrypts */
        ck_assert_int_eq(open_rearranged(key, c, n, IDX(0, 1, 2, 3), NULL, 0), 0);

        /* truncation on a chunk boundary: the last chunk is missing */
        ck_assert_int_eq(open_rearranged(key, c, n, IDX(0, 1), NULL, 0), -EPIPE);
        ck_assert_int_eq(open_rearranged(key, c, n, IDX(0), NULL, 0), -EPIPE);
        ck_assert_int_eq(open_rearranged(key, c, n, ((const int[]){ -1 }), NULL, 0), -EPIPE);
        /* cut mid-chunk: indistinguishable from a damaged last chunk */
        ck_assert_int_eq(open_stream(key, NULL, 0, c, n - 1, 0, NULL, NULL), -EBADMSG);
        ck_assert_int_eq(open_stream(key, NULL, 0, c, CIPHERTEXT_STREAM_HEADER_BYTES + CT_CHUNK + 100, 0, NULL, NULL),
                         -EBADMSG);
        ck_assert_int_eq(open_stream(key, NULL, 0, c, CIPHERTEXT_STREAM_HEADER_BYTES + 15, 0, NULL, NULL), -EBADMSG);
        ck_assert_int_eq(open_stream(key, NULL, 0, c, CIPHERTEXT_STREAM_HEADER_BYTES + 1, 0, NULL, NULL), -EBADMSG);
        /* reordered and duplicated chunks */
        ck_assert_int_eq(open_rearranged(key, c, n, IDX(1, 0, 2, 3), NULL, 0), -EBADMSG);
        ck_assert_int_eq(open_rearranged(key, c, n, IDX(0, 0, 1, 2, 3), NULL, 0), -EBADMSG);
        ck_assert_int_eq(open_rearranged(key, c, n, IDX(0, 1, 1, 2, 3), NULL, 0), -EBADMSG);
        ck_assert_int_eq(open_rearranged(key, c, n, IDX(0, 2, 3), NULL, 0), -EBADMSG);
        /* appended data: a byte, a tag's worth, a whole extra chunk, the last chunk again */
        ck_assert_int_eq(open_rearranged(key, c, n, IDX(0, 1, 2, 3), (const uint8_t *) "x", 1), -EBADMSG);
        ck_assert_int_eq(open_rearranged(key, c, n, IDX(0, 1, 2, 3), pt, 16), -EBADMSG);
        ck_assert_int_eq(open_rearranged(key, c, n, IDX(0, 1, 2, 3, 0), NULL, 0), -EBADMSG);
        ck_assert_int_eq(open_rearranged(key, c, n, IDX(0, 1, 2, 3, 3), NULL, 0), -EBADMSG);
        /* a second stream concatenated, or spliced in, under the same key */
        other = seal_stream(alg, key, 1, NULL, 0, pt, size, CHUNK, NULL, mode, &on);
        {
                _cleanup_free_ uint8_t *cat = malloc(n + on);

                memcpy(cat, c, n);
                memcpy(cat + n, other, on);
                ck_assert_int_eq(open_stream(key, NULL, 0, cat, n + on, 0, NULL, NULL), -EBADMSG);
                memcpy(cat, c, n);
                memcpy(cat + CIPHERTEXT_STREAM_HEADER_BYTES + CT_CHUNK,
                       other + CIPHERTEXT_STREAM_HEADER_BYTES + CT_CHUNK, CT_CHUNK);
                ck_assert_int_eq(open_stream(key, NULL, 0, cat, n, 0, NULL, NULL), -EBADMSG);
        }
#undef IDX
}

START_TEST(test_stream_attacks) {
        for (size_t a = 0; a < ELEMENTSOF(all_algs); a++) {
                /* last chunk partial; last chunk full (read-ahead); full chunks then an empty one */
                check_stream_attacks(all_algs[a], MODE_READ_LOOP, 3 * CHUNK + 5);
                check_stream_attacks(all_algs[a], MODE_READ_AHEAD, 4 * CHUNK);
                check_stream_attacks(all_algs[a], MODE_READ_LOOP, 3 * CHUNK);
        }
}
END_TEST

/* Small chunks make exhaustive checks cheap: every truncation length, every bit. */
START_TEST(test_stream_exhaustive_small) {
        for (size_t a = 0; a < ELEMENTSOF(all_algs); a++) {
                CryptAlg alg = all_algs[a];
                _cleanup_secret_ Secret *key = new_key();
                _cleanup_free_ uint8_t *pt = pattern(53), *c = NULL;
                size_t n;

                if (!alg_usable(alg))
                        continue;
                c = seal_stream(alg, key, 77, "ad", 2, pt, 53, 16, NULL, MODE_READ_LOOP, &n);
                ck_assert_uint_eq(n, CIPHERTEXT_STREAM_HEADER_BYTES + 53 + 4 * CRYPT_TAG_BYTES);
                ck_assert_int_eq(open_stream(key, "ad", 2, c, n, 1, NULL, NULL), 0);

                for (size_t len = 0; len < n; len++) {
                        _cleanup_free_ uint8_t *t = malloc(len ? len : 1);
                        int r;

                        memcpy(t, c, len);
                        r = open_stream(key, "ad", 2, t, len, 0, NULL, NULL);
                        if (r >= 0)
                                ck_abort_msg("truncation to %zu accepted", len);
                        if (len >= CIPHERTEXT_STREAM_HEADER_BYTES) {
                                /* exactly on a chunk boundary before the last chunk: truncated */
                                size_t body = len - CIPHERTEXT_STREAM_HEADER_BYTES;
                                CHECK_EQ(r, body % 32 == 0 ? -EPIPE : -EBADMSG);
                        }
                }
                for (size_t bit = 0; bit < n * 8; bit++) {
                        int r;

                        c[bit / 8] ^= (uint8_t) (1u << (bit % 8));
                        r = open_stream(key, "ad", 2, c, n, 5, NULL, NULL);
                        if (r >= 0)
                                ck_abort_msg("bit %zu flipped was accepted", bit);
                        /* past kind/alg/flags every flip fails authentication (the salt picks
                         * another key, the chunk size another split) or is a bad chunk size */
                        if (bit / 8 >= 8)
                                CHECK_EQ(r, -EBADMSG);
                        c[bit / 8] ^= (uint8_t) (1u << (bit % 8));
                }
                ck_assert_int_eq(open_stream(key, "ad", 2, c, n, 0, NULL, NULL), 0);
        }
}
END_TEST

START_TEST(test_stream_header_binding) {
        for (size_t a = 0; a < ELEMENTSOF(all_algs); a++) {
                CryptAlg alg = all_algs[a];
                _cleanup_secret_ Secret *key = new_key(), *other = new_key();
                _cleanup_free_ uint8_t *pt = pattern(100), *c = NULL;
                size_t n;

                if (!alg_usable(alg))
                        continue;
                c = seal_stream(alg, key, 12, "svc", 3, pt, 100, CHUNK, NULL, MODE_READ_LOOP, &n);
                ck_assert_int_eq(open_stream(key, "svc", 3, c, n, 0, NULL, NULL), 0);
                ck_assert_int_eq(open_stream(other, "svc", 3, c, n, 0, NULL, NULL), -EBADMSG);
                ck_assert_int_eq(open_stream(key, NULL, 0, c, n, 0, NULL, NULL), -EBADMSG);
                ck_assert_int_eq(open_stream(key, "svd", 3, c, n, 0, NULL, NULL), -EBADMSG);
                /* every header bit, including group id and generation */
                for (size_t bit = 0; bit < CIPHERTEXT_STREAM_HEADER_BYTES * 8; bit++) {
                        int r;

                        c[bit / 8] ^= (uint8_t) (1u << (bit % 8));
                        r = open_stream(key, "svc", 3, c, n, 0, NULL, NULL);
                        if (r >= 0)
                                ck_abort_msg("header bit %zu flipped was accepted", bit);
                        c[bit / 8] ^= (uint8_t) (1u << (bit % 8));
                }
                /* the chunk size is authenticated too: 65535 reads a wrong split */
                format_put_be32(c + 60, CHUNK - 1);
                ck_assert_int_eq(open_stream(key, "svc", 3, c, n, 0, NULL, NULL), -EBADMSG);
        }
}
END_TEST

START_TEST(test_stream_misuse) {
        _cleanup_secret_ Secret *key = new_key();
        _cleanup_stream_encryptor_ StreamEncryptor *e = NULL;
        _cleanup_stream_decryptor_ StreamDecryptor *d = NULL;
        _cleanup_free_ uint8_t *pt = pattern(CHUNK + 1), *out = malloc(CT_CHUNK + 1), *c = NULL;
        size_t n = 999, cn, used;

        ck_assert_int_eq(stream_encrypt_new(CRYPT_ALG_XCHACHA20_POLY1305, test_group, 1, key, NULL, 0, &e), 0);
        /* non-last chunks are exactly chunk-sized; nothing is larger */
        ck_assert_int_eq(stream_encrypt_chunk(e, pt, CHUNK - 1, false, out, CT_CHUNK, &n), -EINVAL);
        ck_assert_int_eq(stream_encrypt_chunk(e, pt, CHUNK + 1, false, out, CT_CHUNK + 1, &n), -EINVAL);
        ck_assert_int_eq(stream_encrypt_chunk(e, pt, CHUNK + 1, true, out, CT_CHUNK + 1, &n), -EINVAL);
        ck_assert_int_eq(stream_encrypt_chunk(e, pt, CHUNK, false, out, CT_CHUNK - 1, &n), -ENOBUFS);
        ck_assert_uint_eq(n, 999);
        ck_assert_int_eq(stream_encrypt_chunk(e, pt, 5, true, out, CT_CHUNK, &n), 0);
        ck_assert_uint_eq(n, 5 + CRYPT_TAG_BYTES);
        /* nothing after the last chunk */
        ck_assert_int_eq(stream_encrypt_chunk(e, pt, 0, true, out, CT_CHUNK, &n), -EINVAL);
        ck_assert_int_eq(stream_encrypt_chunk(e, pt, CHUNK, false, out, CT_CHUNK, &n), -EINVAL);

        c = seal_stream(CRYPT_ALG_XCHACHA20_POLY1305, key, 1, NULL, 0, pt, CHUNK + 1, CHUNK, NULL, MODE_READ_LOOP, &cn);
        ck_assert_int_eq(stream_decrypt_new(key, NULL, 0, c, cn, &d), 0);
        ck_assert_int_eq(stream_decrypt_update(d, c + 64, cn - 64, &used, out, CHUNK - 1, &n), -ENOBUFS);
        ck_assert_int_eq(stream_decrypt_final(d, out, CHUNK - 1, &n), -ENOBUFS);
        /* a too-small buffer is the caller's error, not the stream's: it can continue. A full
         * chunk is decrypted as soon as a byte after it is seen; the rest is held back. */
        ck_assert_int_eq(stream_decrypt_update(d, c + 64, CT_CHUNK, &used, out, CHUNK, &n), 0);
        ck_assert_uint_eq(used, CT_CHUNK);
        ck_assert_uint_eq(n, 0);
        ck_assert_int_eq(stream_decrypt_update(d, c + 64 + CT_CHUNK, cn - 64 - CT_CHUNK, &used, out, CHUNK, &n), 0);
        ck_assert_uint_eq(used, 0);
        ck_assert_uint_eq(n, CHUNK);
        ck_assert_mem_eq(out, pt, CHUNK);
        ck_assert_int_eq(stream_decrypt_update(d, c + 64 + CT_CHUNK, cn - 64 - CT_CHUNK, &used, out, CHUNK, &n), 0);
        ck_assert_uint_eq(used, 1 + CRYPT_TAG_BYTES);
        ck_assert_uint_eq(n, 0);
        ck_assert_int_eq(stream_decrypt_final(d, out, CHUNK, &n), 0);
        ck_assert_uint_eq(n, 1);
        ck_assert_uint_eq(out[0], pt[CHUNK]);
        ck_assert_int_eq(stream_decrypt_update(d, c, 1, &used, out, CHUNK, &n), -EINVAL);
        d = stream_decrypt_free(d);

        /* errors are sticky: once rejected, the stream stays rejected */
        c[64 + 3] ^= 1;
        ck_assert_int_eq(stream_decrypt_new(key, NULL, 0, c, cn, &d), 0);
        ck_assert_int_eq(stream_decrypt_update(d, c + 64, cn - 64, &used, out, CHUNK, &n), -EBADMSG);
        ck_assert(all_bytes(out, CHUNK, 0));
        c[64 + 3] ^= 1;
        ck_assert_int_eq(stream_decrypt_update(d, c + 64, cn - 64, &used, out, CHUNK, &n), -EBADMSG);
        ck_assert_int_eq(stream_decrypt_final(d, out, CHUNK, &n), -EBADMSG);
        d = stream_decrypt_free(d);

        /* truncation found by final is sticky too, and hands out no plaintext */
        ck_assert_int_eq(stream_decrypt_new(key, NULL, 0, c, cn, &d), 0);
        ck_assert_int_eq(stream_decrypt_update(d, c + 64, CT_CHUNK, &used, out, CHUNK, &n), 0);
        memset(out, 0xAA, CHUNK);
        ck_assert_int_eq(stream_decrypt_final(d, out, CHUNK, &n), -EPIPE);
        ck_assert(all_bytes(out, CHUNK, 0));
        ck_assert_int_eq(stream_decrypt_final(d, out, CHUNK, &n), -EPIPE);
        /* the rest arriving late does not revive it: final is final */
        ck_assert_int_eq(stream_decrypt_update(d, c + 64 + CT_CHUNK, cn - 64 - CT_CHUNK, &used, out, CHUNK, &n),
                         -EPIPE);

        ck_assert_ptr_null(stream_encrypt_free(NULL));
        ck_assert_ptr_null(stream_decrypt_free(NULL));
}
END_TEST

START_TEST(test_stream_counter_limit) {
        _cleanup_secret_ Secret *key = new_key();
        _cleanup_stream_encryptor_ StreamEncryptor *e = NULL;
        _cleanup_stream_decryptor_ StreamDecryptor *d = NULL;
        uint8_t salt[CIPHERTEXT_STREAM_SALT_BYTES] = { 7 }, pt[4] = { 1, 2, 3, 4 }, c[64 + 3 * 20], out[4];
        size_t n, off, used;
        const uint8_t *h;

        ck_assert_int_eq(
                stream_encrypt_new_with_salt(CRYPT_ALG_XCHACHA20_POLY1305, test_group, 1, key, NULL, 0, salt, 4, &e),
                0);
        h = stream_encrypt_header(e, &off);
        memcpy(c, h, off);
        /* Skipping 2^32 - 2 chunks by hand; the format needs no more than the state says. */
        e->counter = UINT32_MAX - 1;
        ck_assert_int_eq(stream_encrypt_chunk(e, pt, 4, false, c + off, sizeof(c) - off, &n), 0);
        off += n;
        /* index UINT32_MAX must be the last chunk */
        ck_assert_int_eq(stream_encrypt_chunk(e, pt, 4, false, c + off, sizeof(c) - off, &n), -EOVERFLOW);
        ck_assert_int_eq(stream_encrypt_chunk(e, pt, 2, true, c + off, sizeof(c) - off, &n), 0);
        off += n;
        ck_assert_int_eq(stream_encrypt_chunk(e, pt, 0, true, c + off, sizeof(c) - off, &n), -EINVAL);

        ck_assert_int_eq(stream_decrypt_new(key, NULL, 0, c, off, &d), 0);
        d->counter = UINT32_MAX - 1;
        ck_assert_int_eq(stream_decrypt_update(d, c + 64, off - 64, &used, out, sizeof(out), &n), 0);
        ck_assert_uint_eq(used, 20);
        ck_assert_uint_eq(n, 4);
        ck_assert_mem_eq(out, pt, 4);
        ck_assert_int_eq(stream_decrypt_update(d, c + 64 + 20, off - 64 - 20, &used, out, sizeof(out), &n), 0);
        ck_assert_uint_eq(used, 18);
        ck_assert_uint_eq(n, 0);
        ck_assert_int_eq(stream_decrypt_final(d, out, sizeof(out), &n), 0);
        ck_assert_uint_eq(n, 2);
        ck_assert_mem_eq(out, pt, 2);
        d = stream_decrypt_free(d);

        /* a full chunk with more data after it at the final index cannot be valid */
        ck_assert_int_eq(stream_decrypt_new(key, NULL, 0, c, off, &d), 0);
        d->counter = UINT32_MAX;
        ck_assert_int_eq(stream_decrypt_update(d, c + 64, off - 64, &used, out, sizeof(out), &n), -EBADMSG);
}
END_TEST

/* The decryptor's state is one ciphertext chunk however long the stream; checked on the heap
 * itself where the allocator reports it (not under ASan, which replaces it). */
START_TEST(test_stream_memory_bounded) {
        const size_t total = 64 * CHUNK + 3;
        _cleanup_secret_ Secret *key = new_key();
        _cleanup_stream_encryptor_ StreamEncryptor *e = NULL;
        _cleanup_stream_decryptor_ StreamDecryptor *d = NULL;
        _cleanup_free_ uint8_t *pt = malloc(CHUNK), *ct = malloc(CT_CHUNK), *out = malloc(CHUNK);
        const uint8_t *h;
        size_t hn, pos = 0, got = 0, n, used, base, peak = 0;
        uint64_t sum_in = 0, sum_out = 0;

        ck_assert_int_eq(stream_encrypt_new(CRYPT_ALG_XCHACHA20_POLY1305, test_group, 1, key, NULL, 0, &e), 0);
        h = stream_encrypt_header(e, &hn);
        base = mallinfo2().uordblks;
        ck_assert_int_eq(stream_decrypt_new(key, NULL, 0, h, hn, &d), 0);
        ck_assert_uint_eq(d->chunk_size, CHUNK);

        /* Encrypt and decrypt in lockstep through fixed buffers: 4 MiB in, nothing grows. */
        while (pos <= total) {
                size_t m = MIN((size_t) CHUNK, total - pos), cn;
                bool last = m < CHUNK;

                for (size_t i = 0; i < m; i++)
                        pt[i] = (uint8_t) ((pos + i) * 31);
                for (size_t i = 0; i < m; i++)
                        sum_in += pt[i];
                CHECK_EQ(stream_encrypt_chunk(e, pt, m, last, ct, CT_CHUNK, &cn), 0);
                for (size_t off = 0; off < cn; off += used) {
                        CHECK_EQ(stream_decrypt_update(d, ct + off, cn - off, &used, out, CHUNK, &n), 0);
                        for (size_t i = 0; i < n; i++)
                                sum_out += out[i];
                        got += n;
                }
                CHECK(d->buf_used <= CT_CHUNK);
                peak = MAX(peak, mallinfo2().uordblks);
                pos += m;
                if (last)
                        break;
        }
        ck_assert_int_eq(stream_decrypt_final(d, out, CHUNK, &n), 0);
        for (size_t i = 0; i < n; i++)
                sum_out += out[i];
        got += n;
        ck_assert_uint_eq(got, total);
        ck_assert_uint_eq(sum_in, sum_out);
        if (!UNDER_ASAN)
                ck_assert_uint_lt(peak - base, 2 * CT_CHUNK);
}
END_TEST

/* A cheap in-suite fuzz of every parser entry point: random bytes and mutated valid input
 * must never crash, and never decrypt. */
START_TEST(test_fuzz_lite) {
        _cleanup_secret_ Secret *key = new_key();
        _cleanup_free_ uint8_t *pt = pattern(100), *c1 = NULL, *c2 = NULL, *buf = malloc(400), *out = malloc(400);
        size_t n1, n2;

        c1 = seal_oneshot(CRYPT_ALG_XCHACHA20_POLY1305, key, 1, NULL, 0, pt, 100, &n1);
        c2 = seal_stream(CRYPT_ALG_XCHACHA20_POLY1305, key, 1, NULL, 0, pt, 100, 32, NULL, MODE_READ_LOOP, &n2);
        for (unsigned iter = 0; iter < 20000; iter++) {
                uint8_t r8[4];
                size_t len, got;
                CiphertextHeader h;
                int r;

                crypt_random(r8, sizeof(r8));
                switch (iter % 3) {
                case 0: /* random bytes behind a valid magic and version */
                        len = r8[0] + r8[1] % 100;
                        crypt_random(buf, len);
                        if (len >= 4)
                                memcpy(buf, "DKM\x01", 4);
                        break;
                case 1: /* mutated one-shot */
                        len = MIN(n1, (size_t) r8[0] + 20);
                        memcpy(buf, c1, n1);
                        buf[r8[1] % n1] ^= (uint8_t) (r8[2] | 1);
                        break;
                default: /* mutated stream */
                        len = r8[3] % 2 ? n2 : MIN(n2, (size_t) r8[0] + 64);
                        memcpy(buf, c2, n2);
                        buf[((size_t) r8[1] << 8 | r8[2]) % n2] ^= (uint8_t) (r8[3] | 1);
                        break;
                }
                r = ciphertext_parse_header(buf, len, &h);
                if (r == 0) {
                        CHECK(h.size <= len);
                        CHECK(h.kind == CIPHERTEXT_ONESHOT || h.kind == CIPHERTEXT_STREAM);
                }
                CHECK(ciphertext_open(key, NULL, 0, buf, len, out, 400, &got) < 0);
                if (r == 0 && h.kind == CIPHERTEXT_STREAM && h.chunk_size <= 4096)
                        CHECK(open_stream(key, NULL, 0, buf, len, r8[2] % 50, NULL, NULL) < 0);
        }
}
END_TEST

/* ---- vector generator ---- */

typedef struct VectorSpec {
        const char *file, *comment;
        CiphertextKind kind;
        CryptAlg alg;
        uint32_t generation;
        const char *ad; /* ASCII; "" = none */
        const char *pt; /* ASCII, or NULL for pt_mod251 pattern bytes */
        size_t pt_mod251;
        uint32_t chunk_size;
        bool empty_last; /* stream: a full final chunk, then an empty last chunk */
} VectorSpec;

static const VectorSpec vector_specs[] = {
        { "oneshot-xchacha-empty.txt", "one-shot, XChaCha20-Poly1305, empty plaintext, no ad", CIPHERTEXT_ONESHOT,
          CRYPT_ALG_XCHACHA20_POLY1305, 1, "", "" },
        { "oneshot-xchacha-1byte.txt", "one-shot, XChaCha20-Poly1305, 1-byte plaintext, no ad", CIPHERTEXT_ONESHOT,
          CRYPT_ALG_XCHACHA20_POLY1305, 2, "", "*" },
        { "oneshot-xchacha-100-ad.txt", "one-shot, XChaCha20-Poly1305, 100-byte plaintext, with ad", CIPHERTEXT_ONESHOT,
          CRYPT_ALG_XCHACHA20_POLY1305, 0x01020304, "service=mail account=42", NULL, 100 },
        { "oneshot-aesgcm-empty.txt", "one-shot, AES-256-GCM, empty plaintext, no ad", CIPHERTEXT_ONESHOT,
          CRYPT_ALG_AES256_GCM, 1, "", "" },
        { "oneshot-aesgcm-100-ad.txt", "one-shot, AES-256-GCM, 100-byte plaintext, with ad", CIPHERTEXT_ONESHOT,
          CRYPT_ALG_AES256_GCM, 4000000000U, "service=mail account=42", NULL, 100 },
        { "stream-xchacha-empty.txt", "stream, XChaCha20-Poly1305, empty input: one empty last chunk",
          CIPHERTEXT_STREAM, CRYPT_ALG_XCHACHA20_POLY1305, 1, "", "", 0, CHUNK },
        { "stream-xchacha-one-chunk.txt", "stream, XChaCha20-Poly1305, exactly one chunk (a full last chunk)",
          CIPHERTEXT_STREAM, CRYPT_ALG_XCHACHA20_POLY1305, 3, "", NULL, CHUNK, CHUNK },
        { "stream-xchacha-2.5-chunks-ad.txt", "stream, XChaCha20-Poly1305, 2.5 chunks, with ad", CIPHERTEXT_STREAM,
          CRYPT_ALG_XCHACHA20_POLY1305, 0x01020304, "backup=2024-01-01", NULL, 5 * CHUNK / 2, CHUNK },
        { "stream-xchacha-chunk16-ad.txt", "stream, XChaCha20-Poly1305, non-default 16-byte chunks, 40 bytes, with ad",
          CIPHERTEXT_STREAM, CRYPT_ALG_XCHACHA20_POLY1305, 5, "ad", NULL, 40, 16 },
        { "stream-xchacha-chunk16-empty-last.txt",
          "stream, XChaCha20-Poly1305, 16-byte chunks, 32 bytes as two full chunks and an empty last chunk",
          CIPHERTEXT_STREAM, CRYPT_ALG_XCHACHA20_POLY1305, 6, "", NULL, 32, 16, true },
        { "stream-aesgcm-empty.txt", "stream, AES-256-GCM, empty input: one empty last chunk", CIPHERTEXT_STREAM,
          CRYPT_ALG_AES256_GCM, 1, "", "", 0, CHUNK },
        { "stream-aesgcm-2.5-chunks-ad.txt", "stream, AES-256-GCM, 2.5 chunks, with ad", CIPHERTEXT_STREAM,
          CRYPT_ALG_AES256_GCM, 4000000000U, "backup=2024-01-01", NULL, 5 * CHUNK / 2, CHUNK },
};

static void write_hex(FILE *f, const char *name, const uint8_t *p, size_t n) {
        if (n <= 32) {
                fprintf(f, "%s =%s", name, n > 0 ? " " : "");
                for (size_t i = 0; i < n; i++)
                        fprintf(f, "%02x", p[i]);
                fputc('\n', f);
                return;
        }
        fprintf(f, "%s =\n", name);
        for (size_t i = 0; i < n; i++)
                fprintf(f, "%s%02x%s", i % 32 == 0 ? "    " : "", p[i], i % 32 == 31 || i == n - 1 ? "\n" : "");
}

static int write_vectors(const char *dir) {
        uint8_t key_bytes[32], gid[16], nonce[24], salt[32];
        _cleanup_secret_ Secret *key = NULL;

        for (size_t i = 0; i < 32; i++) {
                key_bytes[i] = (uint8_t) (0x80 + i);
                salt[i] = (uint8_t) (0x60 + i);
        }
        for (size_t i = 0; i < 16; i++)
                gid[i] = (uint8_t) (0xd0 + i);
        for (size_t i = 0; i < 24; i++)
                nonce[i] = (uint8_t) (0x40 + i);
        if (secret_new_copy(key_bytes, sizeof(key_bytes), &key) < 0)
                return EXIT_FAILURE;

        for (size_t v = 0; v < ELEMENTSOF(vector_specs); v++) {
                const VectorSpec *s = &vector_specs[v];
                size_t pn = s->pt ? strlen(s->pt) : s->pt_mod251, cap = 64 + 2 * pn + 64 * 16, off = 0;
                _cleanup_free_ uint8_t *pt = s->pt ? (uint8_t *) strdup(s->pt) : pattern(pn), *ct = malloc(cap);
                _cleanup_free_ char *path = NULL;
                FILE *f;

                if (!ct || asprintf(&path, "%s/%s", dir, s->file) < 0)
                        return EXIT_FAILURE;
                f = fopen(path, "we");
                if (!f)
                        return EXIT_FAILURE;
                fprintf(f,
                        "# SPDX-License-Identifier: MIT\n"
                        "# dkm ciphertext v1 known-answer vector: %s.\n"
                        "# Format: README.md here. This file is the contract: never edit or regenerate it.\n",
                        s->comment);
                fprintf(f, "kind = %s\n", s->kind == CIPHERTEXT_STREAM ? "stream" : "oneshot");
                fprintf(f, "alg = %s\n", crypt_alg_to_string(s->alg));
                write_hex(f, "key", key_bytes, sizeof(key_bytes));
                write_hex(f, "group_id", gid, sizeof(gid));
                fprintf(f, "generation = %" PRIu32 "\n", s->generation);
                if (s->kind == CIPHERTEXT_ONESHOT) {
                        write_hex(f, "nonce", nonce, crypt_alg_nonce_bytes(s->alg));
                        if (ciphertext_seal_with_nonce(s->alg, gid, s->generation, key, nonce, s->ad, strlen(s->ad), pt,
                                                       pn, ct, cap, &off) < 0)
                                return EXIT_FAILURE;
                } else {
                        _cleanup_stream_encryptor_ StreamEncryptor *e = NULL;
                        size_t pos = 0, m;
                        const uint8_t *h;
                        bool last;

                        write_hex(f, "salt", salt, sizeof(salt));
                        fprintf(f, "chunk_size = %" PRIu32 "\nchunks =", s->chunk_size);
                        if (stream_encrypt_new_with_salt(s->alg, gid, s->generation, key, s->ad, strlen(s->ad), salt,
                                                         s->chunk_size, &e) < 0)
                                return EXIT_FAILURE;
                        h = stream_encrypt_header(e, &off);
                        memcpy(ct, h, off);
                        do {
                                size_t n = MIN((size_t) s->chunk_size, pn - pos);

                                last = s->empty_last ? n < s->chunk_size : pos + n == pn;
                                if (stream_encrypt_chunk(e, pt + pos, n, last, ct + off, cap - off, &m) < 0)
                                        return EXIT_FAILURE;
                                fprintf(f, " %zu", n);
                                pos += n;
                                off += m;
                        } while (!last);
                        fputc('\n', f);
                }
                write_hex(f, "ad", (const uint8_t *) s->ad, strlen(s->ad));
                if (s->pt || pn <= 256)
                        write_hex(f, "plaintext", pt, pn);
                else
                        fprintf(f, "# plaintext byte i is i mod 251\nplaintext_mod251 = %zu\n", pn);
                write_hex(f, "ciphertext", ct, off);
                if (fclose(f) != 0)
                        return EXIT_FAILURE;
        }
        return EXIT_SUCCESS;
}

static Suite *format_suite(void) {
        Suite *s = suite_create("format");
        TCase *tc;

        tc = tcase_create("vectors");
        tcase_add_test(tc, test_vectors);
        suite_add_tcase(s, tc);

        tc = tcase_create("oneshot");
        tcase_add_test(tc, test_oneshot_roundtrip);
        tcase_add_test(tc, test_oneshot_bitflips_xchacha);
        tcase_add_test(tc, test_oneshot_bitflips_aesgcm);
        tcase_add_test(tc, test_oneshot_binding);
        tcase_add_test(tc, test_oneshot_truncated);
        tcase_add_test(tc, test_header_errors);
        tcase_add_test(tc, test_seal_arguments);
        suite_add_tcase(s, tc);

        tc = tcase_create("stream");
        tcase_add_test(tc, test_chunk_nonce);
        tcase_add_test(tc, test_stream_roundtrip_xchacha);
        tcase_add_test(tc, test_stream_roundtrip_aesgcm);
        tcase_add_test(tc, test_stream_attacks);
        tcase_add_test(tc, test_stream_exhaustive_small);
        tcase_add_test(tc, test_stream_header_binding);
        tcase_add_test(tc, test_stream_misuse);
        tcase_add_test(tc, test_stream_counter_limit);
        tcase_add_test(tc, test_stream_memory_bounded);
        suite_add_tcase(s, tc);

        tc = tcase_create("fuzz");
        tcase_add_test(tc, test_fuzz_lite);
        suite_add_tcase(s, tc);
        return s;
}

/* `test-format --write-vectors DIR` produced tests/vectors/ once; the files, not this table,
 * are what the tests hold every future version to. */
int main(int argc, char *argv[]) {
        if (crypt_init() < 0)
                return EXIT_FAILURE;
        if (argc == 3 && strcmp(argv[1], "--write-vectors") == 0)
                return write_vectors(argv[2]);
        return test_run_suite(format_suite());
}
