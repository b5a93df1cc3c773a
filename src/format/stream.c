/* SPDX-License-Identifier: MIT */
/* The stream kind: a per-stream key, then chunks whose nonces carry their index and a last flag. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ciphertext.h"
#include "format-internal.h"
#include "stream.h"

/* chunk_size + tag is computed in size_t; a header must not make it wrap. */
_Static_assert(CIPHERTEXT_STREAM_CHUNK_MAX <= SIZE_MAX - CRYPT_TAG_BYTES, "chunk size");

void stream_chunk_nonce(CryptAlg alg, uint32_t counter, bool last, uint8_t nonce[CRYPT_NONCE_MAX_BYTES]) {
        size_t n = crypt_alg_nonce_bytes(alg);

        memset(nonce, 0, CRYPT_NONCE_MAX_BYTES);
        if (n < 5)
                return;
        format_put_be32(nonce + n - 5, counter);
        nonce[n - 1] = last ? 1 : 0;
}

/* The per-stream key and the AD digest, from the generation key, the full header and the
 * caller's ad. Hashing the ad once keeps per-chunk cost independent of its size. */
static int stream_keys(const Secret *key, const uint8_t *header, const void *ad, size_t ad_size, Secret **ret_key,
                       uint8_t ret_digest[CRYPT_HASH_BYTES]) {
        CryptHashState st;
        int r;

        r = crypt_derive_subkey(key, STREAM_KEY_LABEL, header + CIPHERTEXT_PREFIX_BYTES, CIPHERTEXT_STREAM_SALT_BYTES,
                                ret_key);
        if (r < 0)
                return r;
        crypt_hash_init(&st);
        crypt_hash_update(&st, header, CIPHERTEXT_STREAM_HEADER_BYTES);
        if (ad_size > 0)
                crypt_hash_update(&st, ad, ad_size);
        crypt_hash_final(&st, ret_digest);
        return 0;
}

int stream_encrypt_new_with_salt(CryptAlg alg, const uint8_t group_id[CIPHERTEXT_GROUP_ID_BYTES], uint32_t generation,
                                 const Secret *key, const void *ad, size_t ad_size,
                                 const uint8_t salt[CIPHERTEXT_STREAM_SALT_BYTES], uint32_t chunk_size,
                                 StreamEncryptor **ret) {
        _cleanup_stream_encryptor_ StreamEncryptor *e = NULL;
        int r;

        if (!group_id || !salt || !ret || chunk_size == 0 || chunk_size > CIPHERTEXT_STREAM_CHUNK_MAX)
                return -EINVAL;
        r = ciphertext_check_args(alg, key, ad, ad_size);
        if (r < 0)
                return r;

        e = calloc(1, sizeof(*e));
        if (!e)
                return -ENOMEM;
        e->alg = alg;
        e->chunk_size = chunk_size;
        ciphertext_write_prefix(e->header, CIPHERTEXT_STREAM, alg, group_id, generation);
        memcpy(e->header + CIPHERTEXT_PREFIX_BYTES, salt, CIPHERTEXT_STREAM_SALT_BYTES);
        format_put_be32(e->header + CIPHERTEXT_PREFIX_BYTES + CIPHERTEXT_STREAM_SALT_BYTES, chunk_size);

        r = stream_keys(key, e->header, ad, ad_size, &e->key, e->ad_digest);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(e);
        return 0;
}

int stream_encrypt_new(CryptAlg alg, const uint8_t group_id[CIPHERTEXT_GROUP_ID_BYTES], uint32_t generation,
                       const Secret *key, const void *ad, size_t ad_size, StreamEncryptor **ret) {
        uint8_t salt[CIPHERTEXT_STREAM_SALT_BYTES];

        /* A fresh 256-bit salt gives every stream its own key, which is what makes the
         * deterministic counter nonces safe. */
        crypt_random(salt, sizeof(salt));
        return stream_encrypt_new_with_salt(alg, group_id, generation, key, ad, ad_size, salt,
                                            CIPHERTEXT_STREAM_CHUNK_BYTES, ret);
}

StreamEncryptor *stream_encrypt_free(StreamEncryptor *e) {
        if (!e)
                return NULL;
        secret_free(e->key);
        free(e);
        return NULL;
}

const uint8_t *stream_encrypt_header(const StreamEncryptor *e, size_t *ret_size) {
        *ret_size = sizeof(e->header);
        return e->header;
}

size_t stream_encrypt_chunk_size(const StreamEncryptor *e) {
        return e->chunk_size;
}

int stream_encrypt_chunk(StreamEncryptor *e, const void *pt, size_t pt_size, bool last, uint8_t *out, size_t out_size,
                         size_t *ret_size) {
        uint8_t nonce[CRYPT_NONCE_MAX_BYTES];
        static const uint8_t empty = 0;
        int r;

        if (!e || !out || (!pt && pt_size > 0) || e->finished)
                return -EINVAL;
        if (last ? pt_size > e->chunk_size : pt_size != e->chunk_size)
                return -EINVAL;
        if (out_size < pt_size + CRYPT_TAG_BYTES)
                return -ENOBUFS;
        /* Index UINT32_MAX may only be the last chunk: after it no index is left for one. */
        if (!last && e->counter >= UINT32_MAX)
                return -EOVERFLOW;

        stream_chunk_nonce(e->alg, (uint32_t) e->counter, last, nonce);
        r = crypt_aead_seal(e->alg, e->key, nonce, e->ad_digest, sizeof(e->ad_digest), pt_size > 0 ? pt : &empty,
                            pt_size, out);
        if (r < 0)
                return r;

        if (last)
                e->finished = true;
        else
                e->counter++;
        *ret_size = pt_size + CRYPT_TAG_BYTES;
        return 0;
}

int stream_decrypt_new(const Secret *key, const void *ad, size_t ad_size, const void *header, size_t header_size,
                       StreamDecryptor **ret) {
        _cleanup_stream_decryptor_ StreamDecryptor *d = NULL;
        CiphertextHeader h;
        int r;

        if ((!header && header_size > 0) || !ret)
                return -EINVAL;
        r = ciphertext_parse_header(header, header_size, &h);
        if (r < 0)
                return r;
        if (h.kind != CIPHERTEXT_STREAM)
                return -EMEDIUMTYPE;
        r = ciphertext_check_args(h.alg, key, ad, ad_size);
        if (r < 0)
                return r;

        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        d->alg = h.alg;
        d->chunk_size = h.chunk_size;
        /* The only buffer, bounded by CIPHERTEXT_STREAM_CHUNK_MAX whatever the input size. */
        d->buf = malloc((size_t) h.chunk_size + CRYPT_TAG_BYTES);
        if (!d->buf)
                return -ENOMEM;

        r = stream_keys(key, header, ad, ad_size, &d->key, d->ad_digest);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(d);
        return 0;
}

StreamDecryptor *stream_decrypt_free(StreamDecryptor *d) {
        if (!d)
                return NULL;
        secret_free(d->key);
        free(d->buf); /* ciphertext only: plaintext goes straight to the caller's buffer */
        free(d);
        return NULL;
}

size_t stream_decrypt_chunk_size(const StreamDecryptor *d) {
        return d->chunk_size;
}

/* Decrypt the buffered chunk as chunk d->counter with the given last flag. */
static int stream_decrypt_buffered(StreamDecryptor *d, bool last, uint8_t *out) {
        uint8_t nonce[CRYPT_NONCE_MAX_BYTES];
        uint8_t dummy = 0;

        if (d->buf_used < CRYPT_TAG_BYTES)
                return -EBADMSG;
        stream_chunk_nonce(d->alg, (uint32_t) d->counter, last, nonce);
        return crypt_aead_open(d->alg, d->key, nonce, d->ad_digest, sizeof(d->ad_digest), d->buf, d->buf_used,
                               d->buf_used > CRYPT_TAG_BYTES ? out : &dummy);
}

static int stream_decrypt_fail(StreamDecryptor *d, int r) {
        d->error = r;
        return r;
}

int stream_decrypt_update(StreamDecryptor *d, const void *in, size_t in_size, size_t *ret_consumed, uint8_t *out,
                          size_t out_size, size_t *ret_size) {
        const size_t cap = (size_t) d->chunk_size + CRYPT_TAG_BYTES;
        size_t used = 0;
        int r;

        if (d->error < 0)
                return d->error;
        if (d->finished || (!in && in_size > 0) || !out)
                return -EINVAL;
        if (out_size < d->chunk_size)
                return -ENOBUFS;

        for (;;) {
                size_t n;

                if (d->buf_used == cap && used < in_size) {
                        /* A full chunk with more input after it cannot be the last one. A valid
                         * stream has no non-last chunk at the final index. */
                        if (d->counter >= UINT32_MAX)
                                return stream_decrypt_fail(d, -EBADMSG);
                        r = stream_decrypt_buffered(d, false, out);
                        if (r < 0)
                                return stream_decrypt_fail(d, r);
                        d->counter++;
                        d->buf_used = 0;
                        *ret_consumed = used;
                        *ret_size = d->chunk_size;
                        return 0;
                }
                if (used == in_size)
                        break;
                n = MIN(cap - d->buf_used, in_size - used);
                memcpy(d->buf + d->buf_used, (const uint8_t *) in + used, n);
                d->buf_used += n;
                used += n;
        }

        *ret_consumed = used;
        *ret_size = 0;
        return 0;
}

int stream_decrypt_final(StreamDecryptor *d, uint8_t *out, size_t out_size, size_t *ret_size) {
        const size_t cap = (size_t) d->chunk_size + CRYPT_TAG_BYTES;
        int r;

        if (d->error < 0)
                return d->error;
        if (d->finished || !out)
                return -EINVAL;
        if (out_size < d->chunk_size)
                return -ENOBUFS;
        if (d->buf_used == 0)
                return stream_decrypt_fail(d, -EPIPE);

        r = stream_decrypt_buffered(d, true, out);
        if (r == -EBADMSG && d->buf_used == cap) {
                /* Tell truncation from tampering: a full chunk that authenticates as a
                 * non-last chunk means the input stopped on a chunk boundary. Its plaintext
                 * is authentic but the stream is not complete, so it is not handed out. */
                if (stream_decrypt_buffered(d, false, out) == 0) {
                        secret_wipe(out, d->chunk_size);
                        r = -EPIPE;
                }
        }
        if (r < 0)
                return stream_decrypt_fail(d, r);

        d->finished = true;
        *ret_size = d->buf_used - CRYPT_TAG_BYTES;
        return 0;
}
