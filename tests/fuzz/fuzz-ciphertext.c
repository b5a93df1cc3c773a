/* SPDX-License-Identifier: MIT */
/* libFuzzer: the ciphertext header parser and the one-shot decoder (src/format/ciphertext.h). */
#include <errno.h>

#include "ciphertext.h"
#include "format-internal.h"
#include "fuzz.h"

/* The key, group id and ad of tests/vectors/ (README.md there), so the seeds decrypt. */
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

static void check_open(const Secret *key, const uint8_t *data, size_t size, const char *ad, size_t ad_size) {
        uint8_t *out = malloc(size + 1);
        size_t n = 0;
        int r;

        FUZZ_ASSERT(out);
        r = ciphertext_open(key, ad, ad_size, data, size, out, size, &n);
        if (r == 0) {
                CiphertextHeader h;

                /* What opened is exactly the body minus the tag, under the header it parsed. */
                FUZZ_ASSERT(ciphertext_parse_header(data, size, &h) == 0);
                FUZZ_ASSERT(h.kind == CIPHERTEXT_ONESHOT);
                FUZZ_ASSERT(n == size - h.size - CRYPT_TAG_BYTES);
        } else
                FUZZ_ASSERT(r == -ENOMSG || r == -EPROTONOSUPPORT || r == -EAFNOSUPPORT || r == -EBADMSG ||
                            r == -EMEDIUMTYPE || r == -EOPNOTSUPP);
        free(out);
}

/* The input as plaintext: seal, parse, open again, byte for byte. */
static void check_round_trip(const Secret *key, const uint8_t *data, size_t size) {
        static const uint8_t group_id[CIPHERTEXT_GROUP_ID_BYTES] = { 0xd0, 0xd1, 0xd2 };
        CryptAlg alg = size > 0 && (data[0] & 1) && crypt_alg_check(CRYPT_ALG_AES256_GCM) == 0
                               ? CRYPT_ALG_AES256_GCM
                               : CRYPT_ALG_XCHACHA20_POLY1305;
        size_t total = ciphertext_sealed_size(alg, size), n = 0, m = 0;
        uint8_t *ct, *pt;
        CiphertextHeader h;

        FUZZ_ASSERT(total == ciphertext_header_size(alg) + size + CRYPT_TAG_BYTES);
        ct = malloc(total);
        pt = malloc(size + 1);
        FUZZ_ASSERT(ct && pt);
        FUZZ_ASSERT(ciphertext_seal(alg, group_id, (uint32_t) size, key, data, size, data, size, ct, total, &n) == 0);
        FUZZ_ASSERT(n == total);
        FUZZ_ASSERT(ciphertext_parse_header(ct, n, &h) == 0);
        FUZZ_ASSERT(h.kind == CIPHERTEXT_ONESHOT && h.alg == alg && h.generation == (uint32_t) size);
        FUZZ_ASSERT(ciphertext_open(key, data, size, ct, n, pt, size, &m) == 0);
        FUZZ_ASSERT(m == size && memcmp(pt, data, size) == 0);
        /* One flipped tag bit and it must not open. */
        if (n > 0) {
                ct[n - 1] ^= 1;
                FUZZ_ASSERT(ciphertext_open(key, data, size, ct, n, pt, size, &m) == -EBADMSG);
        }
        free(ct);
        free(pt);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const Secret *key;
        CiphertextHeader h;
        int r;

        fuzz_init_crypto();
        key = vector_key();

        r = ciphertext_parse_header(data, size, &h);
        if (r == 0) {
                FUZZ_ASSERT(h.size <= size && h.size <= CIPHERTEXT_HEADER_MAX_BYTES);
                FUZZ_ASSERT(h.version == CIPHERTEXT_VERSION);
                FUZZ_ASSERT(h.kind == CIPHERTEXT_ONESHOT || h.kind == CIPHERTEXT_STREAM);
                FUZZ_ASSERT(crypt_alg_to_string(h.alg) != NULL);
                if (h.kind == CIPHERTEXT_STREAM)
                        FUZZ_ASSERT(h.chunk_size >= 1 && h.chunk_size <= CIPHERTEXT_STREAM_CHUNK_MAX);
        }
        check_open(key, data, size, "", 0);
        check_open(key, data, size, "ad", 2);
        if (size <= 4096)
                check_round_trip(key, data, size);
        return 0;
}
