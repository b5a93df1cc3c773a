/* SPDX-License-Identifier: MIT */
/* The stream ciphertext kind: inputs of any size in bounded memory; layout in docs/FORMAT.md. Pure. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ciphertext.h"
#include "crypto.h"
#include "macro.h"
#include "secret.h"

/* Encryption. The caller supplies the chunking, which fits a read loop:
 *
 *     stream_encrypt_new(alg, group_id, generation, key, ad, ad_size, &e);
 *     write(stream_encrypt_header(e, &n), n);
 *     do {
 *             n = loop_read(fd, pt, CIPHERTEXT_STREAM_CHUNK_BYTES);   // full unless at EOF
 *             last = n < CIPHERTEXT_STREAM_CHUNK_BYTES;
 *             stream_encrypt_chunk(e, pt, n, last, ct, sizeof(ct), &m);
 *             write(ct, m);
 *     } while (!last);
 *
 * An input that is a multiple of the chunk size then ends with an empty last chunk, which is
 * valid; a caller that reads ahead may instead mark the final full chunk as last. */
typedef struct StreamEncryptor StreamEncryptor;

/* key is the generation key; a per-stream key is derived from it and a random salt, and key
 * is not referenced after this returns. Errors: -EINVAL bad arguments or key size,
 * -EAFNOSUPPORT unknown algorithm, -EOPNOTSUPP AES-GCM without CPU support, -ENOMEM. */
int stream_encrypt_new(CryptAlg alg, const uint8_t group_id[CIPHERTEXT_GROUP_ID_BYTES], uint32_t generation,
                       const Secret *key, const void *ad, size_t ad_size, StreamEncryptor **ret) _warn_unused_result_;
StreamEncryptor *stream_encrypt_free(StreamEncryptor *e);
DEFINE_TRIVIAL_CLEANUP_FUNC(StreamEncryptor *, stream_encrypt_free);
#define _cleanup_stream_encryptor_ _cleanup_(stream_encrypt_freep)

/* The header (CIPHERTEXT_STREAM_HEADER_BYTES), written before the first chunk. */
const uint8_t *stream_encrypt_header(const StreamEncryptor *e, size_t *ret_size);

/* Plaintext bytes per chunk (CIPHERTEXT_STREAM_CHUNK_BYTES). */
size_t stream_encrypt_chunk_size(const StreamEncryptor *e);

/* Encrypt one chunk into out (out_size >= pt_size + CRYPT_TAG_BYTES). Every chunk but the
 * last holds exactly the chunk size; the last (last = true) holds 0..chunk size. Errors:
 * -EINVAL wrong size or a chunk after the last, -ENOBUFS out too small, -EOVERFLOW the
 * 2^32-chunk limit is reached (a non-last chunk would leave no index for the last). */
int stream_encrypt_chunk(StreamEncryptor *e, const void *pt, size_t pt_size, bool last, uint8_t *out, size_t out_size,
                         size_t *ret_size) _warn_unused_result_;

/* Decryption. Feed the body (everything after the header) in pieces of any size; the
 * decryptor buffers at most one ciphertext chunk and holds a full chunk back until it has
 * seen at least one more byte, so it learns which chunk is last without being told:
 *
 *     n = loop_read(fd, buf, sizeof(buf));          // >= CIPHERTEXT_HEADER_MAX_BYTES
 *     ciphertext_parse_header(buf, n, &h);          // pick the key by h.group_id, h.generation
 *     stream_decrypt_new(key, ad, ad_size, buf, n, &d);
 *     p = buf + h.size; n -= h.size;                // bytes read past the header are body
 *     for (;;) {
 *             while (n > 0) {
 *                     stream_decrypt_update(d, p, n, &used, pt, sizeof(pt), &m);
 *                     write(pt, m); p += used; n -= used;
 *             }
 *             if ((n = loop_read(fd, buf, sizeof(buf))) == 0) break;
 *             p = buf;
 *     }
 *     stream_decrypt_final(d, pt, sizeof(pt), &m);  write(pt, m);
 *
 * Every chunk handed out is authenticated, but the stream as a whole is only known to be
 * complete and unmodified when stream_decrypt_final() succeeds: act on the plaintext (rename
 * the output into place, use the secret) only then. After an error every further call returns
 * the same error. */
typedef struct StreamDecryptor StreamDecryptor;

/* Parse the stream header at the start of header (header_size may include body bytes, which
 * are not consumed) and derive the per-stream key from key, the generation key it names.
 * Errors: those of ciphertext_parse_header(); -EMEDIUMTYPE a one-shot ciphertext;
 * -EOPNOTSUPP AES-GCM without CPU support; -EINVAL bad arguments or key size; -ENOMEM. */
int stream_decrypt_new(const Secret *key, const void *ad, size_t ad_size, const void *header, size_t header_size,
                       StreamDecryptor **ret) _warn_unused_result_;
StreamDecryptor *stream_decrypt_free(StreamDecryptor *d);
DEFINE_TRIVIAL_CLEANUP_FUNC(StreamDecryptor *, stream_decrypt_free);
#define _cleanup_stream_decryptor_ _cleanup_(stream_decrypt_freep)

/* Plaintext bytes per chunk, from the header: out_size for the calls below. */
size_t stream_decrypt_chunk_size(const StreamDecryptor *d);

/* Consume body bytes from in until in is used up or one chunk has been decrypted into out;
 * *ret_consumed says how much of in was taken (call again with the rest), *ret_size how much
 * plaintext was written (0 or the chunk size). Errors: -EBADMSG a chunk failed to
 * authenticate (tampering, reordering, duplication, data after the last chunk, wrong key or
 * ad), out is then zeroed; -ENOBUFS out_size below the chunk size; -EINVAL after final. */
int stream_decrypt_update(StreamDecryptor *d, const void *in, size_t in_size, size_t *ret_consumed, uint8_t *out,
                          size_t out_size, size_t *ret_size) _warn_unused_result_;

/* At end of input: decrypt the held-back chunk, which must be the last one. Errors: -EPIPE
 * the input ended on a chunk boundary before the last chunk (truncated stream); -EBADMSG the
 * final bytes do not authenticate as the last chunk (cut mid-chunk, tampering), out is then
 * zeroed; -ENOBUFS, -EINVAL as above. */
int stream_decrypt_final(StreamDecryptor *d, uint8_t *out, size_t out_size, size_t *ret_size) _warn_unused_result_;
