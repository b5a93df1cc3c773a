/* SPDX-License-Identifier: MIT */
/* libdkm on file descriptors: encrypt, decrypt and rewrap whole inputs of either kind in bounded memory. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dkm-internal.h"
#include "fileio.h"

/* Plaintext passing through here is the caller's data, not key material: it sits in heap
 * buffers that are wiped before they are freed (secret memory is for keys; a 1 GiB message
 * would not fit under RLIMIT_MEMLOCK anyway). */

#define READ_BYTES (DKM_STREAM_CHUNK_BYTES + DKM_STREAM_ABYTES)

static void wipe_free(uint8_t *p, size_t n) {
        if (p) {
                secret_wipe(p, n);
                free(p);
        }
}

DEFINE_TRIVIAL_CLEANUP_FUNC(dkm_encryptor_t *, dkm_encryptor_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(dkm_decryptor_t *, dkm_decryptor_free);

static int read_head(int fd, uint8_t head[DKM_HEADER_BYTES_MAX], size_t *ret_n) {
        ssize_t n = loop_read(fd, head, DKM_HEADER_BYTES_MAX);

        if (n < 0)
                return (int) n;
        *ret_n = (size_t) n;
        return 0;
}

static bool head_is_oneshot(const uint8_t *head, size_t n) {
        return n > 4 && memcmp(head, CIPHERTEXT_MAGIC, CIPHERTEXT_MAGIC_BYTES) == 0 && head[4] == CIPHERTEXT_ONESHOT;
}

/* A one-shot ciphertext is read whole: its tag is at the end. */
static int read_oneshot(int fd, const uint8_t *head, size_t head_len, uint8_t **ret, size_t *ret_len) {
        const size_t limit = DKM_MESSAGE_BYTES_MAX + DKM_ABYTES_MAX;
        size_t cap = 64 * 1024, len = head_len;
        uint8_t *buf = malloc(cap), *nb;
        ssize_t n;

        if (!buf)
                return -ENOMEM;
        memcpy(buf, head, head_len);
        for (;;) {
                if (len == cap) {
                        if (cap > limit) {
                                free(buf);
                                return -EFBIG;
                        }
                        cap *= 2;
                        nb = realloc(buf, cap);
                        if (!nb) {
                                free(buf);
                                return -ENOMEM;
                        }
                        buf = nb;
                }
                n = loop_read(fd, buf + len, cap - len);
                if (n < 0) {
                        free(buf);
                        return (int) n;
                }
                if (n == 0)
                        break;
                len += (size_t) n;
        }
        *ret = buf;
        *ret_len = len;
        return 0;
}

int dkm_encrypt_fd(const char *group, int in_fd, int out_fd, const void *ad, size_t ad_len) {
        _cleanup_(dkm_encryptor_freep) dkm_encryptor_t *e = NULL;
        const size_t ct_cap = dkm_encryptor_out_len_max(DKM_STREAM_CHUNK_BYTES);
        uint8_t *pt = NULL;
        _cleanup_free_ uint8_t *ct = NULL;
        size_t m;
        int r;

        if (in_fd < 0 || out_fd < 0)
                return -EINVAL;
        r = dkm_encryptor_new(group, ad, ad_len, &e);
        if (r < 0)
                return r;
        pt = malloc(DKM_STREAM_CHUNK_BYTES);
        ct = malloc(ct_cap);
        if (!pt || !ct) {
                free(pt);
                return -ENOMEM;
        }
        for (;;) {
                ssize_t n = loop_read(in_fd, pt, DKM_STREAM_CHUNK_BYTES);

                if (n < 0) {
                        r = (int) n;
                        break;
                }
                r = dkm_encryptor_update(e, pt, (size_t) n, ct, ct_cap, &m);
                if (r >= 0)
                        r = loop_write(out_fd, ct, m);
                if (r < 0 || (size_t) n < DKM_STREAM_CHUNK_BYTES)
                        break;
        }
        if (r >= 0)
                r = dkm_encryptor_final(e, ct, ct_cap, &m);
        if (r >= 0)
                r = loop_write(out_fd, ct, m);
        wipe_free(pt, DKM_STREAM_CHUNK_BYTES);
        return r;
}

/* Where a stream's plaintext goes, chunk by chunk (last: the final one, possibly empty). */
typedef int (*Sink)(void *userdata, dkm_decryptor_t *d, const uint8_t *pt, size_t n, bool last);

static int stream_pump(int in_fd, const uint8_t *head, size_t head_len, dkm_decryptor_t *d, Sink sink, void *userdata) {
        _cleanup_free_ uint8_t *in = NULL;
        uint8_t *pt = NULL;
        const uint8_t *p = head;
        size_t n = head_len, pt_cap = 0, used, m;
        int r = 0;

        in = malloc(READ_BYTES);
        if (!in)
                return -ENOMEM;
        for (;;) {
                while (n > 0) {
                        if (!pt && dkm_decryptor_chunk_len(d) > 0) {
                                /* Sized by the header: at most 16 MiB, whatever it claims. */
                                pt_cap = dkm_decryptor_chunk_len(d);
                                pt = malloc(pt_cap);
                                if (!pt) {
                                        r = -ENOMEM;
                                        goto finish;
                                }
                        }
                        r = dkm_decryptor_update(d, p, n, &used, pt, pt_cap, &m);
                        if (r >= 0 && m > 0)
                                r = sink(userdata, d, pt, m, false);
                        if (r < 0)
                                goto finish;
                        p += used;
                        n -= used;
                }
                ssize_t got = read(in_fd, in, READ_BYTES);
                if (got < 0) {
                        if (errno == EINTR)
                                continue;
                        r = negative_errno();
                        goto finish;
                }
                if (got == 0)
                        break;
                p = in;
                n = (size_t) got;
        }
        if (!pt && dkm_decryptor_chunk_len(d) > 0) {
                /* A stream that ends right after its header: final() says so, given room. */
                pt_cap = dkm_decryptor_chunk_len(d);
                pt = malloc(pt_cap);
                if (!pt) {
                        r = -ENOMEM;
                        goto finish;
                }
        }
        r = dkm_decryptor_final(d, pt, pt_cap, &m);
        if (r >= 0)
                r = sink(userdata, d, pt, m, true);
finish:
        wipe_free(pt, pt_cap);
        return r;
}

static int sink_write(void *userdata, dkm_decryptor_t *d, const uint8_t *pt, size_t n, bool last) {
        return n > 0 ? loop_write(*(const int *) userdata, pt, n) : 0;
}

int dkm_decrypt_fd(int in_fd, int out_fd, const void *ad, size_t ad_len) {
        _cleanup_(dkm_decryptor_freep) dkm_decryptor_t *d = NULL;
        uint8_t head[DKM_HEADER_BYTES_MAX];
        size_t n = 0;
        int r;

        if (in_fd < 0 || out_fd < 0 || (!ad && ad_len > 0))
                return -EINVAL;
        r = read_head(in_fd, head, &n);
        if (r < 0)
                return r;

        if (head_is_oneshot(head, n)) {
                _cleanup_free_ uint8_t *ct = NULL;
                uint8_t *pt;
                size_t ct_len, pt_cap, pt_len;

                r = read_oneshot(in_fd, head, n, &ct, &ct_len);
                if (r < 0)
                        return r;
                pt_cap = dkm_plaintext_len_max(ct_len);
                pt = malloc(pt_cap > 0 ? pt_cap : 1);
                if (!pt)
                        return -ENOMEM;
                /* Authenticated as a whole before a single byte is written. */
                r = dkm_decrypt(ct, ct_len, ad, ad_len, pt, pt_cap, &pt_len);
                if (r >= 0)
                        r = loop_write(out_fd, pt, pt_len);
                wipe_free(pt, pt_cap);
                return r;
        }

        r = dkm_decryptor_new(ad, ad_len, &d);
        if (r < 0)
                return r;
        return stream_pump(in_fd, head, n, d, sink_write, &out_fd);
}

typedef struct Rewrap {
        int out_fd;
        const void *ad;
        size_t ad_len;
        dkm_encryptor_t *e;
        uint8_t *ct;
        size_t ct_cap;
} Rewrap;

static int sink_rewrap(void *userdata, dkm_decryptor_t *d, const uint8_t *pt, size_t n, bool last) {
        Rewrap *rw = userdata;
        dkm_info_t info;
        size_t m;
        int r;

        if (!rw->e) {
                /* The stream's own group, by the id in its header. */
                r = dkm_decryptor_info(d, &info);
                if (r < 0)
                        return r;
                r = libdkm_encryptor_open(NULL, info.group_id, rw->ad, rw->ad_len, &rw->e);
                if (r < 0)
                        return r;
        }
        if (n > 0) {
                if (dkm_encryptor_out_len_max(n) > rw->ct_cap) {
                        uint8_t *nb = realloc(rw->ct, dkm_encryptor_out_len_max(n));
                        if (!nb)
                                return -ENOMEM;
                        rw->ct = nb;
                        rw->ct_cap = dkm_encryptor_out_len_max(n);
                }
                r = dkm_encryptor_update(rw->e, pt, n, rw->ct, rw->ct_cap, &m);
                if (r >= 0)
                        r = loop_write(rw->out_fd, rw->ct, m);
                if (r < 0)
                        return r;
        }
        if (!last)
                return 0;
        if (rw->ct_cap < dkm_encryptor_out_len_max(0)) {
                uint8_t *nb = realloc(rw->ct, dkm_encryptor_out_len_max(0));
                if (!nb)
                        return -ENOMEM;
                rw->ct = nb;
                rw->ct_cap = dkm_encryptor_out_len_max(0);
        }
        r = dkm_encryptor_final(rw->e, rw->ct, rw->ct_cap, &m);
        if (r >= 0)
                r = loop_write(rw->out_fd, rw->ct, m);
        return r;
}

int dkm_rewrap_fd(int in_fd, int out_fd, const void *ad, size_t ad_len) {
        _cleanup_(dkm_decryptor_freep) dkm_decryptor_t *d = NULL;
        uint8_t head[DKM_HEADER_BYTES_MAX];
        Rewrap rw = { .out_fd = out_fd, .ad = ad, .ad_len = ad_len };
        size_t n = 0;
        int r;

        if (in_fd < 0 || out_fd < 0 || (!ad && ad_len > 0))
                return -EINVAL;
        r = read_head(in_fd, head, &n);
        if (r < 0)
                return r;

        if (head_is_oneshot(head, n)) {
                _cleanup_free_ uint8_t *ct = NULL, *out = NULL;
                size_t ct_len, out_len;

                r = read_oneshot(in_fd, head, n, &ct, &ct_len);
                if (r < 0)
                        return r;
                /* Same group, same algorithm: the new ciphertext is the old one's size. */
                out = malloc(ct_len);
                if (!out)
                        return -ENOMEM;
                r = dkm_rewrap(ct, ct_len, ad, ad_len, out, ct_len, &out_len);
                if (r >= 0)
                        r = loop_write(out_fd, out, out_len);
                return r;
        }

        r = dkm_decryptor_new(ad, ad_len, &d);
        if (r < 0)
                return r;
        r = stream_pump(in_fd, head, n, d, sink_rewrap, &rw);
        dkm_encryptor_free(rw.e);
        free(rw.ct);
        return r;
}
