/* SPDX-License-Identifier: MIT */
/* Shared by the libFuzzer harnesses: one-time init, checked invariants, input slicing, checksum fix-up. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* An invariant of the code under test does not hold: say which, and crash so that libFuzzer
 * keeps the input as a reproducer. Never used for a refused input, which is the expected case. */
#define FUZZ_ASSERT(expr)                                                                                              \
        do {                                                                                                           \
                if (!(expr)) {                                                                                         \
                        fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #expr);                   \
                        abort();                                                                                       \
                }                                                                                                      \
        } while (0)

/* libsodium once per process; every harness needs it (hashing, AEAD, secret memory). */
static inline void fuzz_init_crypto(void) {
        static bool done;

        if (done)
                return;
        if (crypt_init() < 0) {
                fprintf(stderr, "fuzz: libsodium failed to initialize\n");
                abort();
        }
        done = true;
}

/* A NUL-terminated copy of the input, for parsers that take C strings. */
static inline char *fuzz_strndup(const uint8_t *data, size_t size) {
        char *s = malloc(size + 1);

        FUZZ_ASSERT(s);
        memcpy(s, data, size);
        s[size] = 0;
        return s;
}

/* Consumes the input from the front: the bus harness builds a whole call from one input. */
typedef struct FuzzInput {
        const uint8_t *p;
        size_t left;
} FuzzInput;

static inline uint8_t fuzz_u8(FuzzInput *in) {
        if (in->left == 0)
                return 0;
        in->left--;
        return *in->p++;
}

static inline uint32_t fuzz_u32(FuzzInput *in) {
        uint32_t v = 0;

        for (int i = 0; i < 4; i++)
                v = v << 8 | fuzz_u8(in);
        return v;
}

static inline uint64_t fuzz_u64(FuzzInput *in) {
        return (uint64_t) fuzz_u32(in) << 32 | fuzz_u32(in);
}

/* Up to max bytes as a NUL-terminated string (stops at a NUL byte, which it consumes). The
 * bytes are whatever the input holds: invalid UTF-8 included. */
static inline char *fuzz_string(FuzzInput *in, size_t max) {
        size_t n = 0;
        char *s;

        while (n < max && n < in->left && in->p[n] != 0)
                n++;
        s = fuzz_strndup(in->p, n);
        in->p += n;
        in->left -= n;
        if (in->left > 0 && n < max)
                (void) fuzz_u8(in); /* the terminating NUL */
        return s;
}

/* A deterministic pseudo-random sequence seeded from the input itself, for choices (piece
 * sizes) that must not shift the bytes a parser sees, so the seeds stay valid files. */
static inline uint64_t fuzz_seed(const uint8_t *data, size_t size) {
        uint64_t h = 0xcbf29ce484222325ULL ^ size;

        for (size_t i = 0; i < size; i++)
                h = (h ^ data[i]) * 0x100000001b3ULL;
        return h ? h : 1;
}

static inline uint64_t fuzz_next(uint64_t *state) {
        uint64_t x = *state;

        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        return *state = x;
}

/* The store's files (kvfile framing) end in "checksum=<BLAKE2b-256 of the body>": random
 * mutations would almost never get past it. The corpora of the file harnesses therefore hold
 * bodies, and this appends the right checksum line (after a newline, if the body lacks one).
 * The framing itself is fuzzed raw by fuzz-kvfile. Returns a malloc'd file. */
static inline char *fuzz_kvfile_seal(const uint8_t *body, size_t size, size_t *ret_size) {
        static const char digits[] = "0123456789abcdef";
        uint8_t sum[CRYPT_HASH_BYTES];
        bool nl = size > 0 && body[size - 1] != '\n';
        size_t n = size + nl;
        char *out = malloc(n + strlen("checksum=") + 2 * CRYPT_HASH_BYTES + 1);

        FUZZ_ASSERT(out);
        memcpy(out, body, size);
        if (nl)
                out[size] = '\n';
        crypt_hash(out, n, sum);
        memcpy(out + n, "checksum=", strlen("checksum="));
        n += strlen("checksum=");
        for (size_t i = 0; i < sizeof(sum); i++) {
                out[n++] = digits[sum[i] >> 4];
                out[n++] = digits[sum[i] & 15];
        }
        out[n++] = '\n';
        *ret_size = n;
        return out;
}
