/* SPDX-License-Identifier: MIT */
/* libdkm: encrypt and decrypt with the key groups loaded in this host's kernel keyrings. */
#pragma once

/*
 * Keys never pass through this API: libdkm finds the key of a group (or of the generation a
 * ciphertext names) in the kernel keyrings the calling process may read, caches it in locked
 * memory, and does the cryptography in-process. No IPC on the data path.
 *
 * Errors: every function that can fail returns 0 or a negative errno value, listed with each
 * function; dkm_strerror() gives the dkm-specific sentence for each:
 *
 *   -ENOKEY           no such key group or generation is visible to this process
 *   -EACCES           the process is not a member of the key group (lacks its gid)
 *   -EKEYREVOKED      the generation was retired, or access revoked (a break-glass grant)
 *   -EKEYEXPIRED      time-limited access (break-glass, on-demand) to the key has expired
 *   -EBADMSG          authentication failed: corrupted, tampered, wrong associated data
 *   -ENOMSG           the input is not a dkm ciphertext
 *   -EPROTONOSUPPORT  written by a newer dkm (format version, kind or algorithm)
 *   -EOPNOTSUPP       the algorithm needs a CPU feature this machine lacks (AES-NI)
 *   -EMEDIUMTYPE      the wrong kind of ciphertext for the call (stream vs one-shot)
 *   -EPIPE            a stream ended before its last chunk (truncated)
 *   -ENOBUFS          the output buffer is too small; *ret_*_len holds the size needed
 *   -EFBIG            a one-shot plaintext above dkm_message_bytes_max(): use a stream
 *   -EINVAL           misuse: NULL where a buffer is needed, an invalid group name
 *   -ENOMEM, -EIO     out of memory; an I/O error (file descriptor calls: the errno of
 *                     read() or write() is passed through as is)
 *
 * -ENOBUFS is the one exception to "out parameters are written only on success": the needed
 * size is stored so the caller can retry with a larger buffer.
 *
 * Threads: every function may be called from any number of threads at once, except that one
 * dkm_encryptor_t or dkm_decryptor_t must be used by one thread at a time.
 *
 * Process state: the first call that loads a key makes the process non-dumpable
 * (prctl(PR_SET_DUMPABLE, 0)): no core dumps, no ptrace or /proc/PID/mem by other processes
 * of the same uid. Keys are wiped when the library is unloaded or the process exits, or by
 * dkm_cleanup(). See docs/LIBDKM.md.
 */

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define DKM_WARN_UNUSED_RESULT __attribute__((warn_unused_result))
#else
#define DKM_WARN_UNUSED_RESULT
#endif

/* Sizes. Each constant has a function returning it, for bindings that cannot see macros. */

/* Longest key group name ([a-z0-9][a-z0-9_.-]*). */
#define DKM_GROUP_NAME_MAX 64U
size_t dkm_group_name_max(void);

/* A key group's id, as it appears in ciphertexts. */
#define DKM_GROUP_ID_BYTES 16U
size_t dkm_group_id_bytes(void);

/* Largest one-shot ciphertext overhead: header (at most 52 bytes) plus tag (16). A one-shot
 * ciphertext is exactly plaintext length + overhead, and never more than
 * plaintext length + DKM_ABYTES_MAX. */
#define DKM_ABYTES_MAX 68U
size_t dkm_abytes_max(void);

/* Smallest one-shot overhead (AES-256-GCM: 40-byte header plus tag). */
#define DKM_ABYTES_MIN 56U
size_t dkm_abytes_min(void);

/* Largest plaintext of one one-shot message (1 GiB); larger data needs a stream. */
#define DKM_MESSAGE_BYTES_MAX ((size_t) 1U << 30)
size_t dkm_message_bytes_max(void);

/* Bytes to read from the start of a ciphertext to know everything its header says. */
#define DKM_HEADER_BYTES_MAX 64U
size_t dkm_header_bytes_max(void);

/* Streams written by this version: a 64-byte header, then chunks of DKM_STREAM_CHUNK_BYTES
 * plaintext bytes, each followed by a 16-byte tag. */
#define DKM_STREAM_HEADER_BYTES 64U
#define DKM_STREAM_CHUNK_BYTES  65536U
#define DKM_STREAM_ABYTES       16U
size_t dkm_stream_header_bytes(void);
size_t dkm_stream_chunk_bytes(void);
size_t dkm_stream_abytes(void);

/* Buffer size that always holds a one-shot ciphertext of pt_len bytes; 0 if pt_len is above
 * dkm_message_bytes_max(). */
size_t dkm_ciphertext_len_max(size_t pt_len);
/* Buffer size that always holds the plaintext of a one-shot ciphertext of ct_len bytes. */
size_t dkm_plaintext_len_max(size_t ct_len);

/* One-shot messages: held in memory whole (credentials, tokens, small records). */

/* Encrypt pt under the active generation of key group `group`, with the group's algorithm
 * and a fresh random nonce. ad (may be NULL if ad_len is 0) is authenticated but not stored:
 * decryption needs the same bytes (use it to bind a ciphertext to its record, e.g. the
 * account id). ct must not overlap pt. On success *ret_ct_len is the ciphertext length.
 * Errors: -EINVAL, -ENOKEY, -EACCES, -EKEYEXPIRED, -EKEYREVOKED, -EOPNOTSUPP, -EFBIG,
 * -ENOBUFS (with *ret_ct_len = the size needed), -ENOMEM. */
int dkm_encrypt(const char *group, const void *ad, size_t ad_len, const void *pt, size_t pt_len, uint8_t *ct,
                size_t ct_cap, size_t *ret_ct_len);

/* Decrypt a one-shot ciphertext with the generation key its header names. pt must not
 * overlap ct. Nothing is written to pt unless authentication succeeds (it is zeroed
 * otherwise). Errors: -ENOMSG, -EPROTONOSUPPORT, -EMEDIUMTYPE (a stream), -EBADMSG, -ENOKEY,
 * -EACCES, -EKEYREVOKED, -EKEYEXPIRED, -EOPNOTSUPP, -ENOBUFS (with *ret_pt_len = the
 * plaintext length), -EINVAL, -ENOMEM. */
DKM_WARN_UNUSED_RESULT int dkm_decrypt(const void *ct, size_t ct_len, const void *ad, size_t ad_len, uint8_t *pt,
                                       size_t pt_cap, size_t *ret_pt_len);

/* Decrypt a one-shot ciphertext and encrypt its plaintext again under the active generation
 * of the same key group (found by the group id in its header), with the same ad: migrating
 * data off an old generation before it is retired. The plaintext passes through a buffer
 * that is wiped before it is freed. out must not overlap ct. Errors: those of dkm_decrypt()
 * (for either key) and -ENOBUFS (with *ret_out_len = the size needed). */
DKM_WARN_UNUSED_RESULT int dkm_rewrap(const void *ct, size_t ct_len, const void *ad, size_t ad_len, uint8_t *out,
                                      size_t out_cap, size_t *ret_out_len);

/* What a ciphertext says about itself, read from its header without any key. */
typedef enum dkm_kind {
        DKM_KIND_ONESHOT = 1,
        DKM_KIND_STREAM = 2,
} dkm_kind_t;

typedef enum dkm_algorithm {
        DKM_ALG_XCHACHA20_POLY1305 = 1,
        DKM_ALG_AES256_GCM = 2,
} dkm_algorithm_t;

typedef struct dkm_info {
        uint8_t version; /* format version (1) */
        dkm_kind_t kind;
        dkm_algorithm_t algorithm;
        uint8_t group_id[DKM_GROUP_ID_BYTES];
        char group[DKM_GROUP_NAME_MAX + 1]; /* the group's name if a group keyring visible to
                                             * this process has that id, else "" */
        uint32_t generation;
        size_t header_len;
        uint32_t chunk_len;     /* stream: plaintext bytes per chunk; else 0 */
        uint64_t plaintext_len; /* one-shot: the plaintext length, if ct_len was
                                 * the whole ciphertext; stream: 0 (unknown) */
} dkm_info_t;

/* Parse the header at the start of ct (ct_len may cover the whole ciphertext or just its
 * first dkm_header_bytes_max() bytes). Nothing here is authenticated until a decryption
 * succeeds. Errors: -ENOMSG, -EPROTONOSUPPORT, -EBADMSG (truncated or invalid header),
 * -EINVAL. */
int dkm_ciphertext_info(const void *ct, size_t ct_len, dkm_info_t *ret);

/* "xchacha20-poly1305", "aes256-gcm"; NULL for an unknown value. */
const char *dkm_algorithm_name(dkm_algorithm_t alg);

/* Streams: input of any size in bounded memory (one chunk). The plaintext of a stream is
 * only known to be complete and untampered when the final call succeeds: write it to a
 * temporary file and rename it into place then, or discard it on error. */

typedef struct dkm_encryptor dkm_encryptor_t;
typedef struct dkm_decryptor dkm_decryptor_t;

/* Output buffer size that always suffices for dkm_encryptor_update() with in_len bytes, or
 * for dkm_encryptor_final() (in_len 0): header, chunks and tags. */
size_t dkm_encryptor_out_len_max(size_t in_len);

/* Start a stream under the active generation of `group`. The key is used here and not
 * kept: a rollover during the stream does not change it. Errors: as dkm_encrypt(). */
int dkm_encryptor_new(const char *group, const void *ad, size_t ad_len, dkm_encryptor_t **ret);
/* Feed plaintext; writes the header (first call) and every chunk completed so far to out.
 * Errors: -ENOBUFS (with *ret_out_len = the size needed; nothing consumed), -EINVAL (after
 * final, or a previous error), -EOVERFLOW (2^32 chunks). */
int dkm_encryptor_update(dkm_encryptor_t *e, const void *in, size_t in_len, uint8_t *out, size_t out_cap,
                         size_t *ret_out_len);
/* Write the last chunk (and the header if nothing was written yet). */
int dkm_encryptor_final(dkm_encryptor_t *e, uint8_t *out, size_t out_cap, size_t *ret_out_len);
/* Wipes and frees; accepts NULL; returns NULL. */
dkm_encryptor_t *dkm_encryptor_free(dkm_encryptor_t *e);

/* Start decrypting a stream; the key is looked up when the header has arrived. */
int dkm_decryptor_new(const void *ad, size_t ad_len, dkm_decryptor_t **ret);
/* Feed ciphertext (header first, then body). Consumes input until all of it is used or one
 * chunk of plaintext has been written to out, whichever comes first: call again with the
 * rest (in + *ret_consumed). out_cap must be at least dkm_decryptor_chunk_len() (65536 for
 * streams written by this version; at most 16 MiB); before the header is complete, any.
 * Errors: those of dkm_ciphertext_info() and dkm_decrypt() for the header and key,
 * -EMEDIUMTYPE (a one-shot ciphertext), -EBADMSG (a chunk failed to authenticate),
 * -ENOBUFS (with *ret_out_len = the chunk length), -EINVAL. After an error other than
 * -ENOBUFS every further call returns the same error. */
DKM_WARN_UNUSED_RESULT int dkm_decryptor_update(dkm_decryptor_t *d, const void *in, size_t in_len, size_t *ret_consumed,
                                                uint8_t *out, size_t out_cap, size_t *ret_out_len);
/* At the end of input: decrypt the last chunk. Success means the whole stream is authentic
 * and complete. Errors: -EPIPE (truncated on a chunk boundary or in the header), -EBADMSG,
 * -ENOBUFS, -EINVAL. */
DKM_WARN_UNUSED_RESULT int dkm_decryptor_final(dkm_decryptor_t *d, uint8_t *out, size_t out_cap, size_t *ret_out_len);
/* Plaintext bytes per chunk of this stream; 0 before its header has been seen. */
size_t dkm_decryptor_chunk_len(const dkm_decryptor_t *d);
/* The stream's header, once seen; -EAGAIN before. */
int dkm_decryptor_info(const dkm_decryptor_t *d, dkm_info_t *ret);
dkm_decryptor_t *dkm_decryptor_free(dkm_decryptor_t *d);

/* File descriptors: read in_fd to its end, write to out_fd (neither is closed). */

/* Always a stream. Errors: as dkm_encryptor_new(), and -errno of read()/write(). */
int dkm_encrypt_fd(const char *group, int in_fd, int out_fd, const void *ad, size_t ad_len);
/* Either kind, told by the header. A one-shot ciphertext is read whole (at most
 * dkm_message_bytes_max() + dkm_abytes_max() bytes) and nothing is written unless it
 * authenticates. A stream's plaintext is written chunk by chunk as each authenticates: on
 * an error, what was written must be discarded (truncated stream, tampering). */
DKM_WARN_UNUSED_RESULT int dkm_decrypt_fd(int in_fd, int out_fd, const void *ad, size_t ad_len);
/* dkm_rewrap() for either kind: a stream becomes a new stream under the active generation. */
DKM_WARN_UNUSED_RESULT int dkm_rewrap_fd(int in_fd, int out_fd, const void *ad, size_t ad_len);

/* The dkm-specific meaning of an error returned by this library (error is negative; a
 * positive value is treated the same). Never NULL; a static string. */
const char *dkm_strerror(int error);

/* Wipe and free every cached key now (they are reloaded from the kernel when next needed).
 * Runs by itself when the library is unloaded or the process exits. */
void dkm_cleanup(void);

/* "0.1.0" */
const char *dkm_version(void);

#ifdef __cplusplus
}
#endif
