/* SPDX-License-Identifier: MIT */
/* libFuzzer: the stream decoder (src/format/stream.h), fed its input in pieces of varying size. */
#include <errno.h>

#include "format-internal.h"
#include "fuzz.h"
#include "stream.h"

static Secret *vector_key(void) {
        static Secret *key;
        uint8_t k[CRYPT_KEY_BYTES];

        if (key)
                return key;
        for (size_t i = 0; i < sizeof(k); i++)
                k[i] = (uint8_t) (0x80 + i);
        FUZZ_ASSERT(secret_new_copy(k, sizeof(k), &key) == 0);
        return key;
}

/* The plaintext handed out, as its size and hash: compared, never kept (no big buffers, which
 * cost ASan more than the decryption). */
typedef struct Output {
        size_t size;
        CryptHashState hash;
} Output;

static void output_init(Output *o) {
        o->size = 0;
        crypt_hash_init(&o->hash);
}

static void output_add(Output *o, const uint8_t *p, size_t n) {
        crypt_hash_update(&o->hash, p, n);
        o->size += n;
}

static bool output_equal(Output *a, Output *b) {
        uint8_t ha[CRYPT_HASH_BYTES], hb[CRYPT_HASH_BYTES];

        crypt_hash_final(&a->hash, ha);
        crypt_hash_final(&b->hash, hb);
        return a->size == b->size && memcmp(ha, hb, sizeof(ha)) == 0;
}

/* Decrypt the stream in ct, handing the body to the decryptor in pieces: one byte, a few bytes,
 * or all at once, as the seeded sequence says (max_piece 0: the whole rest each time).
 * Returns 0 or the error; *out gets the plaintext. */
static int decrypt(const Secret *key, const void *ad, size_t ad_size, const uint8_t *ct, size_t size, uint64_t seed,
                   size_t max_piece, Output *out) {
        _cleanup_stream_decryptor_ StreamDecryptor *d = NULL;
        CiphertextHeader h;
        uint8_t *pt = NULL;
        size_t chunk, off;
        int r;

        r = ciphertext_parse_header(ct, size, &h);
        if (r < 0)
                return r;
        r = stream_decrypt_new(key, ad, ad_size, ct, size, &d);
        if (r < 0)
                return r;
        FUZZ_ASSERT(h.kind == CIPHERTEXT_STREAM);
        chunk = stream_decrypt_chunk_size(d);
        FUZZ_ASSERT(chunk == h.chunk_size);
        pt = malloc(chunk);
        FUZZ_ASSERT(pt);
        off = h.size;
        while (off < size) {
                size_t piece = size - off, used = 0, n = 0;

                if (max_piece > 0) {
                        size_t cut = 1 + fuzz_next(&seed) % max_piece;

                        piece = MIN(piece, cut);
                }
                r = stream_decrypt_update(d, ct + off, piece, &used, pt, chunk, &n);
                if (r < 0)
                        goto finish;
                /* Progress every call (input taken or a held-back chunk handed out), never more
                 * than offered, whole chunks only. */
                FUZZ_ASSERT((used > 0 || n > 0) && used <= piece);
                FUZZ_ASSERT(n == 0 || n == chunk);
                output_add(out, pt, n);
                off += used;
        }
        {
                size_t n = 0;

                r = stream_decrypt_final(d, pt, chunk, &n);
                if (r == 0) {
                        FUZZ_ASSERT(n <= chunk);
                        output_add(out, pt, n);
                        /* After final, the decryptor refuses more input. */
                        FUZZ_ASSERT(stream_decrypt_update(d, ct, size, &off, pt, chunk, &n) < 0);
                }
        }
finish:
        free(pt);
        return r;
}

static void check_decrypt(const Secret *key, const void *ad, size_t ad_size, const uint8_t *data, size_t size) {
        Output whole, pieces;
        int r1, r2;

        output_init(&whole);
        output_init(&pieces);
        r1 = decrypt(key, ad, ad_size, data, size, 0, 0, &whole);
        r2 = decrypt(key, ad, ad_size, data, size, fuzz_seed(data, size), 1 + (size & 63), &pieces);
        /* How the input is cut must not change the verdict or the plaintext. */
        FUZZ_ASSERT(r1 == r2);
        FUZZ_ASSERT(output_equal(&whole, &pieces));
        if (r1 < 0)
                FUZZ_ASSERT(r1 == -ENOMSG || r1 == -EPROTONOSUPPORT || r1 == -EAFNOSUPPORT || r1 == -EBADMSG ||
                            r1 == -EMEDIUMTYPE || r1 == -EOPNOTSUPP || r1 == -EPIPE);
}

/* The input as plaintext: encrypt with a small chunk size from the input, decrypt in pieces. */
static void check_round_trip(const Secret *key, const uint8_t *data, size_t size) {
        static const uint8_t group_id[CIPHERTEXT_GROUP_ID_BYTES] = { 0xd0 };
        static const uint8_t salt[CIPHERTEXT_STREAM_SALT_BYTES] = { 0x60 };
        _cleanup_stream_encryptor_ StreamEncryptor *e = NULL;
        uint32_t chunk = size > 0 ? 1 + data[0] % 64 : 1;
        size_t hsize, off = 0, total = 0, n;
        const uint8_t *hdr;
        Output out, want;
        uint8_t *ct;
        bool last = false;

        FUZZ_ASSERT(stream_encrypt_new_with_salt(CRYPT_ALG_XCHACHA20_POLY1305, group_id, 7, key, "ad", 2, salt, chunk,
                                                 &e) == 0);
        hdr = stream_encrypt_header(e, &hsize);
        /* Every chunk grows by one tag; one more (empty) last chunk at most. */
        ct = malloc(hsize + size + (size / chunk + 1) * CRYPT_TAG_BYTES);
        FUZZ_ASSERT(ct);
        memcpy(ct, hdr, hsize);
        total = hsize;
        while (!last) {
                size_t m = MIN((size_t) chunk, size - off);

                last = m < chunk;
                FUZZ_ASSERT(stream_encrypt_chunk(e, data + off, m, last, ct + total, m + CRYPT_TAG_BYTES, &n) == 0);
                FUZZ_ASSERT(n == m + CRYPT_TAG_BYTES);
                total += n;
                off += m;
        }
        output_init(&out);
        output_init(&want);
        output_add(&want, data, size);
        FUZZ_ASSERT(decrypt(key, "ad", 2, ct, total, fuzz_seed(data, size), 1 + chunk * 2, &out) == 0);
        FUZZ_ASSERT(output_equal(&out, &want));
        /* Cut off the last chunk: a truncated stream never decrypts. */
        output_init(&out);
        FUZZ_ASSERT(decrypt(key, "ad", 2, ct, total - n, 0, 0, &out) < 0);
        free(ct);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const Secret *key;

        fuzz_init_crypto();
        key = vector_key();
        check_decrypt(key, "", 0, data, size);
        check_decrypt(key, "ad", 2, data, size);
        if (size <= 4096)
                check_round_trip(key, data, size);
        return 0;
}
