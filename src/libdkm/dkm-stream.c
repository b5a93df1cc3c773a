/* SPDX-License-Identifier: MIT */
/* libdkm streams: incremental encryptor and decryptor objects over the format's stream kind. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dkm-internal.h"
#include "stream.h"

struct dkm_encryptor {
        StreamEncryptor *e;
        Secret *buf; /* the chunk being filled: the caller's plaintext */
        size_t used;
        size_t chunk;
        bool header_written;
        bool finished;
        int error;
};

struct dkm_decryptor {
        uint8_t header[CIPHERTEXT_STREAM_HEADER_BYTES];
        size_t header_used;
        CiphertextHeader h;
        StreamDecryptor *d; /* once the header is complete and the key found */
        uint8_t *ad;        /* kept until the key is looked up */
        size_t ad_len;
        bool finished;
        int error; /* sticky */
};

size_t dkm_encryptor_out_len_max(size_t in_len) {
        const size_t per_chunk = DKM_STREAM_CHUNK_BYTES + DKM_STREAM_ABYTES;
        size_t chunks = in_len / DKM_STREAM_CHUNK_BYTES + 1;

        if (chunks > (SIZE_MAX - DKM_STREAM_HEADER_BYTES) / per_chunk)
                return SIZE_MAX;
        return DKM_STREAM_HEADER_BYTES + chunks * per_chunk;
}

dkm_encryptor_t *dkm_encryptor_free(dkm_encryptor_t *e) {
        if (!e)
                return NULL;
        stream_encrypt_free(e->e);
        secret_free(e->buf);
        free(e);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(dkm_encryptor_t *, dkm_encryptor_free);

int libdkm_encryptor_open(const char *group, const uint8_t *group_id, const void *ad, size_t ad_len,
                          dkm_encryptor_t **ret) {
        _cleanup_(dkm_encryptor_freep) dkm_encryptor_t *e = NULL;
        CacheRef ref;
        int r;

        r = libdkm_init();
        if (r < 0)
                return r;
        e = calloc(1, sizeof(*e));
        if (!e)
                return -ENOMEM;
        r = secret_new(CIPHERTEXT_STREAM_CHUNK_BYTES, &e->buf);
        if (r < 0)
                return r;
        r = group ? cache_acquire_active(group, &ref) : cache_acquire_active_by_id(group_id, &ref);
        if (r < 0)
                return libdkm_error(r);
        /* The per-stream key is derived here; the generation key is not kept. */
        r = stream_encrypt_new(ref.alg, ref.group_id, ref.generation, ref.key, ad, ad_len, &e->e);
        cache_release(&ref);
        if (r < 0)
                return libdkm_error(r);
        e->chunk = stream_encrypt_chunk_size(e->e);
        *ret = TAKE_PTR(e);
        return 0;
}

int dkm_encryptor_new(const char *group, const void *ad, size_t ad_len, dkm_encryptor_t **ret) {
        if (!group || !ret || (!ad && ad_len > 0) || !keyring_group_name_is_valid(group))
                return -EINVAL;
        return libdkm_encryptor_open(group, NULL, ad, ad_len, ret);
}

static size_t header_out(dkm_encryptor_t *e, uint8_t *out) {
        const uint8_t *h;
        size_t n;

        if (e->header_written)
                return 0;
        h = stream_encrypt_header(e->e, &n);
        memcpy(out, h, n);
        e->header_written = true;
        return n;
}

static int encrypt_chunk(dkm_encryptor_t *e, const void *pt, size_t n, bool last, uint8_t *out, size_t out_cap,
                         size_t *pos) {
        size_t m;
        int r;

        r = stream_encrypt_chunk(e->e, pt, n, last, out + *pos, out_cap - *pos, &m);
        if (r < 0)
                return (e->error = r);
        *pos += m;
        return 0;
}

int dkm_encryptor_update(dkm_encryptor_t *e, const void *in, size_t in_len, uint8_t *out, size_t out_cap,
                         size_t *ret_out_len) {
        const uint8_t *p = in;
        size_t chunks, need, pos = 0;
        int r;

        if (!e || (!in && in_len > 0) || (!out && out_cap > 0) || !ret_out_len ||
            libdkm_overlaps(in, in_len, out, out_cap))
                return -EINVAL;
        if (e->error)
                return e->error;
        if (e->finished)
                return -EINVAL;
        chunks = in_len / e->chunk + (e->used + in_len % e->chunk) / e->chunk;
        need = (e->header_written ? 0 : CIPHERTEXT_STREAM_HEADER_BYTES) + chunks * (e->chunk + CRYPT_TAG_BYTES);
        if (out_cap < need) {
                *ret_out_len = need;
                return -ENOBUFS;
        }

        pos = header_out(e, out);
        while (in_len > 0) {
                size_t take;

                if (e->used == 0 && in_len >= e->chunk) {
                        /* A whole chunk straight from the caller's buffer: no copy. */
                        r = encrypt_chunk(e, p, e->chunk, false, out, out_cap, &pos);
                        if (r < 0)
                                return r;
                        p += e->chunk;
                        in_len -= e->chunk;
                        continue;
                }
                take = MIN(e->chunk - e->used, in_len);
                memcpy(e->buf->data + e->used, p, take);
                e->used += take;
                p += take;
                in_len -= take;
                if (e->used == e->chunk) {
                        /* Full chunks go out at once; if the input ends here, final() adds an
                         * empty last chunk, which the format allows. */
                        r = encrypt_chunk(e, e->buf->data, e->chunk, false, out, out_cap, &pos);
                        if (r < 0)
                                return r;
                        e->used = 0;
                }
        }
        *ret_out_len = pos;
        return 0;
}

int dkm_encryptor_final(dkm_encryptor_t *e, uint8_t *out, size_t out_cap, size_t *ret_out_len) {
        size_t need, pos;
        int r;

        if (!e || (!out && out_cap > 0) || !ret_out_len)
                return -EINVAL;
        if (e->error)
                return e->error;
        if (e->finished)
                return -EINVAL;
        need = (e->header_written ? 0 : CIPHERTEXT_STREAM_HEADER_BYTES) + e->used + CRYPT_TAG_BYTES;
        if (out_cap < need) {
                *ret_out_len = need;
                return -ENOBUFS;
        }
        pos = header_out(e, out);
        r = encrypt_chunk(e, e->buf->data, e->used, true, out, out_cap, &pos);
        if (r < 0)
                return r;
        secret_wipe(e->buf->data, e->used);
        e->used = 0;
        e->finished = true;
        *ret_out_len = pos;
        return 0;
}

dkm_decryptor_t *dkm_decryptor_free(dkm_decryptor_t *d) {
        if (!d)
                return NULL;
        stream_decrypt_free(d->d);
        free(d->ad);
        free(d);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(dkm_decryptor_t *, dkm_decryptor_free);

int dkm_decryptor_new(const void *ad, size_t ad_len, dkm_decryptor_t **ret) {
        _cleanup_(dkm_decryptor_freep) dkm_decryptor_t *d = NULL;
        int r;

        if (!ret || (!ad && ad_len > 0))
                return -EINVAL;
        r = libdkm_init();
        if (r < 0)
                return r;
        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        /* Associated data is not secret; the key lookup needs the header first. */
        d->ad = malloc(ad_len > 0 ? ad_len : 1);
        if (!d->ad)
                return -ENOMEM;
        if (ad_len > 0)
                memcpy(d->ad, ad, ad_len);
        d->ad_len = ad_len;
        *ret = TAKE_PTR(d);
        return 0;
}

/* What a partial header already says. 0: could still become a stream header. */
static int header_partial_check(const dkm_decryptor_t *d) {
        CiphertextHeader h;
        int r;

        r = ciphertext_parse_header(d->header, d->header_used, &h);
        if (r >= 0)
                /* Complete as a one-shot header before a stream header could be. */
                return h.kind == CIPHERTEXT_ONESHOT ? -EMEDIUMTYPE : 0;
        if (r == -ENOMSG && d->header_used < CIPHERTEXT_MAGIC_BYTES &&
            memcmp(d->header, CIPHERTEXT_MAGIC, d->header_used) == 0)
                return 0;
        if (r == -EBADMSG && d->header_used < CIPHERTEXT_STREAM_HEADER_BYTES)
                return 0; /* truncated so far: flags are checked once the prefix is complete */
        return libdkm_error(r);
}

static int header_complete(dkm_decryptor_t *d) {
        CacheRef ref;
        int r;

        r = ciphertext_parse_header(d->header, d->header_used, &d->h);
        if (r < 0)
                return libdkm_error(r);
        if (d->h.kind != CIPHERTEXT_STREAM)
                return -EMEDIUMTYPE;
        r = cache_acquire_generation(d->h.group_id, d->h.generation, &ref);
        if (r < 0)
                return libdkm_error(r);
        r = stream_decrypt_new(ref.key, d->ad, d->ad_len, d->header, d->header_used, &d->d);
        cache_release(&ref);
        if (r < 0)
                return libdkm_error(r);
        return 0;
}

/* Take header bytes from in; look the key up once all of them are there. */
static int header_feed(dkm_decryptor_t *d, const uint8_t *in, size_t in_len, size_t *ret_consumed) {
        size_t take = MIN(sizeof(d->header) - d->header_used, in_len);
        int r;

        memcpy(d->header + d->header_used, in, take);
        d->header_used += take;
        *ret_consumed = take;
        r = header_partial_check(d);
        if (r < 0)
                return r;
        if (d->header_used < sizeof(d->header))
                return 0;
        return header_complete(d);
}

int dkm_decryptor_update(dkm_decryptor_t *d, const void *in, size_t in_len, size_t *ret_consumed, uint8_t *out,
                         size_t out_cap, size_t *ret_out_len) {
        size_t consumed = 0, used, m;
        int r;

        if (!d || (!in && in_len > 0) || !ret_consumed || (!out && out_cap > 0) || !ret_out_len ||
            libdkm_overlaps(in, in_len, out, out_cap))
                return -EINVAL;
        if (d->error)
                return d->error;
        if (d->finished)
                return -EINVAL;
        if (!d->d) {
                r = header_feed(d, in, in_len, &consumed);
                if (r < 0)
                        return (d->error = r);
                if (!d->d || consumed == in_len) {
                        /* Header bytes are taken even if out is too small for a chunk: the next
                         * call reports that, having consumed nothing. */
                        *ret_consumed = consumed;
                        *ret_out_len = 0;
                        return 0;
                }
        }
        if (out_cap < stream_decrypt_chunk_size(d->d)) {
                if (consumed > 0) {
                        *ret_consumed = consumed;
                        *ret_out_len = 0;
                        return 0;
                }
                *ret_out_len = stream_decrypt_chunk_size(d->d);
                return -ENOBUFS;
        }
        r = stream_decrypt_update(d->d, (const uint8_t *) in + consumed, in_len - consumed, &used, out, out_cap, &m);
        if (r < 0) {
                if (r != -ENOBUFS)
                        d->error = r;
                return libdkm_error(r);
        }
        *ret_consumed = consumed + used;
        *ret_out_len = m;
        return 0;
}

int dkm_decryptor_final(dkm_decryptor_t *d, uint8_t *out, size_t out_cap, size_t *ret_out_len) {
        size_t m;
        int r;

        if (!d || (!out && out_cap > 0) || !ret_out_len)
                return -EINVAL;
        if (d->error)
                return d->error;
        if (d->finished)
                return -EINVAL;
        if (!d->d) {
                /* Input ended inside the header: empty or foreign input is not a dkm
                 * ciphertext, the start of a stream header is a truncated stream. */
                if (d->header_used < CIPHERTEXT_MAGIC_BYTES)
                        r = -ENOMSG;
                else if (d->header_used > 4 && d->header[4] == CIPHERTEXT_ONESHOT)
                        r = -EMEDIUMTYPE;
                else
                        r = -EPIPE;
                return (d->error = r);
        }
        if (out_cap < stream_decrypt_chunk_size(d->d)) {
                *ret_out_len = stream_decrypt_chunk_size(d->d);
                return -ENOBUFS;
        }
        r = stream_decrypt_final(d->d, out, out_cap, &m);
        if (r < 0) {
                if (r != -ENOBUFS)
                        d->error = r;
                return libdkm_error(r);
        }
        d->finished = true;
        *ret_out_len = m;
        return 0;
}

size_t dkm_decryptor_chunk_len(const dkm_decryptor_t *d) {
        return d && d->d ? stream_decrypt_chunk_size(d->d) : 0;
}

int dkm_decryptor_info(const dkm_decryptor_t *d, dkm_info_t *ret) {
        if (!d || !ret)
                return -EINVAL;
        if (!d->d)
                return -EAGAIN;
        libdkm_info_from_header(&d->h, ret);
        return 0;
}
