/* SPDX-License-Identifier: MIT */
/* libdkm's one-shot API: encrypt, decrypt, rewrap, ciphertext info, sizes and error strings. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ciphertext.h"
#include "config.h"
#include "dkm-internal.h"

/* The public constants are the format's, restated so dkm.h needs no internal header. */
_Static_assert(DKM_GROUP_NAME_MAX == KEYRING_GROUP_NAME_MAX, "group name");
_Static_assert(DKM_GROUP_ID_BYTES == CIPHERTEXT_GROUP_ID_BYTES, "group id");
_Static_assert(DKM_ABYTES_MAX == CIPHERTEXT_PREFIX_BYTES + CRYPT_NONCE_MAX_BYTES + CRYPT_TAG_BYTES, "abytes");
_Static_assert(DKM_ABYTES_MIN == CIPHERTEXT_PREFIX_BYTES + 12U + CRYPT_TAG_BYTES, "abytes min");
_Static_assert(DKM_MESSAGE_BYTES_MAX == CIPHERTEXT_ONESHOT_MAX_BYTES, "message max");
_Static_assert(DKM_HEADER_BYTES_MAX == CIPHERTEXT_HEADER_MAX_BYTES, "header max");
_Static_assert(DKM_STREAM_HEADER_BYTES == CIPHERTEXT_STREAM_HEADER_BYTES, "stream header");
_Static_assert(DKM_STREAM_CHUNK_BYTES == CIPHERTEXT_STREAM_CHUNK_BYTES, "stream chunk");
_Static_assert(DKM_STREAM_ABYTES == CRYPT_TAG_BYTES, "stream tag");
_Static_assert((int) DKM_ALG_XCHACHA20_POLY1305 == (int) CRYPT_ALG_XCHACHA20_POLY1305, "alg");
_Static_assert((int) DKM_ALG_AES256_GCM == (int) CRYPT_ALG_AES256_GCM, "alg");
_Static_assert((int) DKM_KIND_ONESHOT == (int) CIPHERTEXT_ONESHOT, "kind");
_Static_assert((int) DKM_KIND_STREAM == (int) CIPHERTEXT_STREAM, "kind");

size_t dkm_group_name_max(void) {
        return DKM_GROUP_NAME_MAX;
}
size_t dkm_group_id_bytes(void) {
        return DKM_GROUP_ID_BYTES;
}
size_t dkm_abytes_max(void) {
        return DKM_ABYTES_MAX;
}
size_t dkm_abytes_min(void) {
        return DKM_ABYTES_MIN;
}
size_t dkm_message_bytes_max(void) {
        return DKM_MESSAGE_BYTES_MAX;
}
size_t dkm_header_bytes_max(void) {
        return DKM_HEADER_BYTES_MAX;
}
size_t dkm_stream_header_bytes(void) {
        return DKM_STREAM_HEADER_BYTES;
}
size_t dkm_stream_chunk_bytes(void) {
        return DKM_STREAM_CHUNK_BYTES;
}
size_t dkm_stream_abytes(void) {
        return DKM_STREAM_ABYTES;
}

size_t dkm_ciphertext_len_max(size_t pt_len) {
        return pt_len > DKM_MESSAGE_BYTES_MAX ? 0 : pt_len + DKM_ABYTES_MAX;
}

size_t dkm_plaintext_len_max(size_t ct_len) {
        return ct_len > DKM_ABYTES_MIN ? ct_len - DKM_ABYTES_MIN : 0;
}

const char *dkm_version(void) {
        return DKM_VERSION;
}

int libdkm_error(int r) {
        switch (r) {
        case -EAFNOSUPPORT: /* an unknown algorithm: a newer dkm wrote it */
                return -EPROTONOSUPPORT;
        case -ENOENT:
                return -ENOKEY;
        case -EPERM:
                return -EACCES;
        default:
                return r;
        }
}

bool libdkm_overlaps(const void *a, size_t a_len, const void *b, size_t b_len) {
        uintptr_t x = (uintptr_t) a, y = (uintptr_t) b;

        return a_len > 0 && b_len > 0 && x < y + b_len && y < x + a_len;
}

int libdkm_init(void) {
        return crypt_init();
}

int dkm_encrypt(const char *group, const void *ad, size_t ad_len, const void *pt, size_t pt_len, uint8_t *ct,
                size_t ct_cap, size_t *ret_ct_len) {
        CacheRef ref;
        size_t need, n;
        int r;

        if (!group || !ret_ct_len || (!ad && ad_len > 0) || (!pt && pt_len > 0) || (!ct && ct_cap > 0) ||
            libdkm_overlaps(pt, pt_len, ct, ct_cap))
                return -EINVAL;
        if (!keyring_group_name_is_valid(group))
                return -EINVAL;
        if (pt_len > DKM_MESSAGE_BYTES_MAX)
                return -EFBIG;
        r = libdkm_init();
        if (r < 0)
                return r;

        r = cache_acquire_active(group, &ref);
        if (r < 0)
                return libdkm_error(r);
        need = ciphertext_sealed_size(ref.alg, pt_len);
        if (need == 0 || ct_cap < need) {
                cache_release(&ref);
                if (need == 0)
                        return -EPROTONOSUPPORT;
                *ret_ct_len = need;
                return -ENOBUFS;
        }
        r = ciphertext_seal(ref.alg, ref.group_id, ref.generation, ref.key, ad, ad_len, pt, pt_len, ct, ct_cap, &n);
        cache_release(&ref);
        if (r < 0)
                return libdkm_error(r);
        *ret_ct_len = n;
        return 0;
}

/* The header of a one-shot ciphertext and its plaintext length. */
static int oneshot_parse(const void *ct, size_t ct_len, CiphertextHeader *ret, size_t *ret_pt_len) {
        CiphertextHeader h;
        int r;

        r = ciphertext_parse_header(ct, ct_len, &h);
        if (r < 0)
                return libdkm_error(r);
        if (h.kind != CIPHERTEXT_ONESHOT)
                return -EMEDIUMTYPE;
        if (ct_len < h.size + CRYPT_TAG_BYTES)
                return -EBADMSG;
        if (ct_len - h.size - CRYPT_TAG_BYTES > DKM_MESSAGE_BYTES_MAX)
                return -EFBIG;
        *ret = h;
        *ret_pt_len = ct_len - h.size - CRYPT_TAG_BYTES;
        return 0;
}

int dkm_decrypt(const void *ct, size_t ct_len, const void *ad, size_t ad_len, uint8_t *pt, size_t pt_cap,
                size_t *ret_pt_len) {
        CiphertextHeader h;
        CacheRef ref;
        size_t pt_len = 0, n; /* gcc -O3 cannot see that oneshot_parse() sets it */
        int r;

        if ((!ct && ct_len > 0) || (!ad && ad_len > 0) || (!pt && pt_cap > 0) || !ret_pt_len ||
            libdkm_overlaps(ct, ct_len, pt, pt_cap))
                return -EINVAL;
        r = oneshot_parse(ct, ct_len, &h, &pt_len);
        if (r < 0)
                return r;
        if (pt_cap < pt_len) {
                *ret_pt_len = pt_len;
                return -ENOBUFS;
        }
        r = libdkm_init();
        if (r < 0)
                return r;

        r = cache_acquire_generation(h.group_id, h.generation, &ref);
        if (r < 0)
                return libdkm_error(r);
        /* Zeroes pt on failure: no unauthenticated byte reaches the caller. */
        r = ciphertext_open(ref.key, ad, ad_len, ct, ct_len, pt, pt_cap, &n);
        cache_release(&ref);
        if (r < 0)
                return libdkm_error(r);
        *ret_pt_len = n;
        return 0;
}

int dkm_rewrap(const void *ct, size_t ct_len, const void *ad, size_t ad_len, uint8_t *out, size_t out_cap,
               size_t *ret_out_len) {
        CiphertextHeader h;
        CacheRef ref;
        uint8_t *pt = NULL;
        size_t pt_len = 0, n, need;
        int r;

        if ((!ct && ct_len > 0) || (!ad && ad_len > 0) || (!out && out_cap > 0) || !ret_out_len ||
            libdkm_overlaps(ct, ct_len, out, out_cap))
                return -EINVAL;
        r = oneshot_parse(ct, ct_len, &h, &pt_len);
        if (r < 0)
                return r;
        /* A group keeps its algorithm for life, so the size is known before any work. */
        need = ciphertext_sealed_size(h.alg, pt_len);
        if (out_cap < need) {
                *ret_out_len = need;
                return -ENOBUFS;
        }
        r = libdkm_init();
        if (r < 0)
                return r;

        /* Plaintext, not key material: the heap, wiped before it is freed on every path. */
        pt = malloc(pt_len > 0 ? pt_len : 1);
        if (!pt)
                return -ENOMEM;
        r = cache_acquire_generation(h.group_id, h.generation, &ref);
        if (r >= 0) {
                r = ciphertext_open(ref.key, ad, ad_len, ct, ct_len, pt, pt_len, &n);
                cache_release(&ref);
        }
        /* The lock is never held twice: acquiring the second key may need the exclusive one. */
        if (r >= 0)
                r = cache_acquire_active_by_id(h.group_id, &ref);
        if (r >= 0) {
                need = ciphertext_sealed_size(ref.alg, pt_len);
                if (out_cap < need) {
                        *ret_out_len = need;
                        r = -ENOBUFS;
                } else
                        r = ciphertext_seal(ref.alg, ref.group_id, ref.generation, ref.key, ad, ad_len, pt, pt_len, out,
                                            out_cap, &n);
                cache_release(&ref);
        }
        secret_wipe(pt, pt_len);
        free(pt);
        if (r < 0)
                return libdkm_error(r);
        *ret_out_len = n;
        return 0;
}

void libdkm_info_from_header(const CiphertextHeader *h, dkm_info_t *ret) {
        *ret = (dkm_info_t){
                .version = h->version,
                .kind = (dkm_kind_t) h->kind,
                .algorithm = (dkm_algorithm_t) h->alg,
                .generation = h->generation,
                .header_len = h->size,
                .chunk_len = h->kind == CIPHERTEXT_STREAM ? h->chunk_size : 0,
        };
        memcpy(ret->group_id, h->group_id, sizeof(ret->group_id));
        /* Best effort, no key needed: the pointers of the group keyrings visible to us. */
        if (libdkm_init() >= 0 && cache_group_name(h->group_id, ret->group) < 0)
                ret->group[0] = 0;
}

int dkm_ciphertext_info(const void *ct, size_t ct_len, dkm_info_t *ret) {
        CiphertextHeader h;
        dkm_info_t info;
        int r;

        if ((!ct && ct_len > 0) || !ret)
                return -EINVAL;
        r = ciphertext_parse_header(ct, ct_len, &h);
        if (r < 0)
                return libdkm_error(r);
        libdkm_info_from_header(&h, &info);
        if (h.kind == CIPHERTEXT_ONESHOT && ct_len >= h.size + CRYPT_TAG_BYTES)
                info.plaintext_len = ct_len - h.size - CRYPT_TAG_BYTES;
        *ret = info;
        return 0;
}

const char *dkm_algorithm_name(dkm_algorithm_t alg) {
        return crypt_alg_to_string((CryptAlg) alg);
}

const char *dkm_strerror(int error) {
        switch (error < 0 ? -error : error) {
        case 0:
                return "success";
        case ENOKEY:
                return "no such key group or generation is visible to this process (not loaded here, or unknown)";
        case EACCES:
                return "not a member of the key group: the process lacks the group's gid";
        case EKEYREVOKED:
                return "access revoked, or the key generation was retired (data under a retired generation cannot "
                       "be decrypted)";
        case EKEYEXPIRED:
                return "access expired: time-limited access to the key group (a break-glass grant) has ended";
        case EBADMSG:
                return "authentication failed: the ciphertext is corrupted or was tampered with, or the associated "
                       "data differs";
        case ENOMSG:
                return "not a dkm ciphertext";
        case EPROTONOSUPPORT:
                return "the ciphertext was written by a newer dkm (unknown format version, kind or algorithm)";
        case EOPNOTSUPP:
                return "the ciphertext's algorithm needs a CPU feature this machine lacks (AES-NI)";
        case EMEDIUMTYPE:
                return "the wrong kind of ciphertext for this call (a stream where a one-shot message was expected, or "
                       "the reverse)";
        case EPIPE:
                return "the stream is truncated: it ended before its last chunk";
        case ENOBUFS:
                return "the output buffer is too small (the size needed was returned)";
        case EFBIG:
                return "too large for a one-shot message (more than 1 GiB): use a stream";
        case EOVERFLOW:
                return "the stream reached its limit of 2^32 chunks";
        case EINVAL:
                return "invalid argument (misuse of the API, or an invalid group name)";
        case ENOMEM:
                return "out of memory";
        case EAGAIN:
                return "not available yet (the stream header has not been seen)";
        case EIO:
                return "input/output error";
        default: {
                /* Errors of read() and write() from the fd calls: the system's words for them. */
                const char *s = strerrordesc_np(error < 0 ? -error : error);
                return s ?: "unexpected error";
        }
        }
}

void dkm_cleanup(void) {
        cache_clear();
}
