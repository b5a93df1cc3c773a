/* SPDX-License-Identifier: MIT */
/* The dkm CLI's verbs: encrypt, decrypt, rewrap and info, one function each, over libdkm. */
#include <dkm.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dkm-cli.h"
#include "fileio.h"
#include "secret.h"

/* Read the first bytes of a ciphertext and what its header says (if it says anything). */
static int read_head(Io *io, Context *c) {
        bool eof;
        int r;

        r = buffer_read(&io->data, io->in, DKM_HEADER_BYTES_MAX, &eof);
        if (r < 0)
                return fail_io("read", arg.input ?: "standard input", r);
        c->have_info = dkm_ciphertext_info(io->data.data, io->data.size, &c->info) >= 0;
        return 0;
}

static bool head_is_stream(const Io *io) {
        return io->data.size > 4 && memcmp(io->data.data, "DKM", 3) == 0 && io->data.data[4] == DKM_KIND_STREAM;
}

static int read_rest(Io *io, size_t max) {
        bool eof;
        int r;

        r = buffer_read(&io->data, io->in, max + 1, &eof);
        if (r < 0)
                return fail_io("read", arg.input ?: "standard input", r);
        if (!eof) {
                fprintf(stderr, "dkm: the input is larger than %zu bytes; use --stream.\n", max);
                return EXIT_USAGE;
        }
        return 0;
}

/* Once the header says how large a chunk is: room for one (at most 16 MiB, whatever the header
 * claims), and for rewrap room for a chunk of the new stream and its header. */
static int stream_buffers(const dkm_decryptor_t *d, dkm_encryptor_t *e, Buffer *pt, uint8_t **ct, size_t *ct_cap) {
        size_t chunk = dkm_decryptor_chunk_len(d);

        if (pt->cap >= chunk)
                return 0;
        buffer_wipe_free(pt);
        pt->data = malloc(chunk);
        if (!pt->data)
                return -ENOMEM;
        pt->cap = chunk;
        if (e) {
                free(*ct);
                *ct_cap = dkm_encryptor_out_len_max(chunk);
                *ct = malloc(*ct_cap);
                if (!*ct)
                        return -ENOMEM;
        }
        return 0;
}

/* Plaintext chunk by chunk; into an encryptor (rewrap) when e is set, else to the output. */
static int stream_decrypt(Io *io, Context *c, dkm_encryptor_t *e) {
        _cleanup_free_ uint8_t *in = NULL, *ct = NULL;
        dkm_decryptor_t *d = NULL;
        Buffer pt = {};
        const uint8_t *p = io->data.data;
        size_t n = io->data.size, used, m, k, ct_cap = 0;
        int r, status = 0;

        r = dkm_decryptor_new(io->ad.data, io->ad.size, &d);
        in = malloc(DKM_STREAM_CHUNK_BYTES + DKM_STREAM_ABYTES);
        if (r < 0 || !in) {
                dkm_decryptor_free(d);
                return fail(r < 0 ? r : -ENOMEM, c);
        }
        c->streamed_to_stdout = io->out.is_stdout;
        for (;;) {
                while (n > 0) {
                        r = stream_buffers(d, e, &pt, &ct, &ct_cap);
                        if (r < 0)
                                goto out;
                        r = dkm_decryptor_update(d, p, n, &used, pt.data, pt.cap, &m);
                        if (r < 0)
                                goto out;
                        p += used;
                        n -= used;
                        if (m == 0)
                                continue;
                        if (e) {
                                r = dkm_encryptor_update(e, pt.data, m, ct, ct_cap, &k);
                                if (r < 0)
                                        goto out;
                                status = io_write(io, ct, k);
                        } else
                                status = io_write(io, pt.data, m);
                        if (status != 0)
                                goto out;
                }
                ssize_t got = read(io->in, in, DKM_STREAM_CHUNK_BYTES + DKM_STREAM_ABYTES);
                if (got < 0 && errno == EINTR)
                        continue;
                if (got < 0) {
                        status = fail_io("read", arg.input ?: "standard input", negative_errno());
                        goto out;
                }
                if (got == 0)
                        break;
                p = in;
                n = (size_t) got;
        }
        r = stream_buffers(d, e, &pt, &ct, &ct_cap);
        if (r >= 0)
                r = dkm_decryptor_final(d, pt.data, pt.cap, &m);
        if (r >= 0 && e) {
                r = dkm_encryptor_update(e, pt.data, m, ct, ct_cap, &k);
                if (r >= 0 && (status = io_write(io, ct, k)) == 0)
                        r = dkm_encryptor_final(e, ct, ct_cap, &k);
                if (r >= 0 && status == 0)
                        status = io_write(io, ct, k);
        } else if (r >= 0)
                status = io_write(io, pt.data, m);
out:
        buffer_wipe_free(&pt);
        dkm_decryptor_free(d);
        if (status != 0)
                return status;
        return r < 0 ? fail(r, c) : 0;
}

int verb_encrypt(void) {
        _cleanup_(io_done) Io io = IO_NULL;
        Context c = { .verb = "encrypt" };
        size_t m;
        bool eof = false;
        int r;

        if (!arg.group) {
                fprintf(stderr, "dkm: encrypt needs --group=GROUP (the key group to encrypt for).\n");
                return EXIT_USAGE;
        }
        r = io_open(&io, true, 0666);
        if (r != 0)
                return r;

        if (arg.format != FORMAT_STREAM) {
                r = buffer_read(&io.data, io.in,
                                arg.format == FORMAT_ONESHOT ? DKM_MESSAGE_BYTES_MAX + 1 : AUTO_ONESHOT_MAX + 1, &eof);
                if (r < 0)
                        return fail_io("read", arg.input ?: "standard input", r);
                if (!eof && arg.format == FORMAT_ONESHOT) {
                        fprintf(stderr,
                                "dkm: the input is larger than a one-shot message may be (1 GiB); use --stream.\n");
                        return EXIT_USAGE;
                }
        }
        if (eof) {
                _cleanup_free_ uint8_t *ct = NULL;
                size_t cap = dkm_ciphertext_len_max(io.data.size);

                ct = malloc(cap);
                if (!ct)
                        return fail(-ENOMEM, &c);
                r = dkm_encrypt(arg.group, io.ad.data, io.ad.size, io.data.data, io.data.size, ct, cap, &m);
                if (r < 0)
                        return fail(r, &c);
                r = io_write(&io, ct, m);
                return r != 0 ? r : io_commit(&io);
        }

        /* A stream: what was read ahead goes first, then the rest of the input. */
        {
                _cleanup_free_ uint8_t *ct = NULL;
                dkm_encryptor_t *e = NULL;
                size_t cap = dkm_encryptor_out_len_max(MAX(io.data.size, DKM_STREAM_CHUNK_BYTES));
                int status = 0;

                r = dkm_encryptor_new(arg.group, io.ad.data, io.ad.size, &e);
                if (r < 0)
                        return fail(r, &c);
                ct = malloc(cap);
                if (!ct) {
                        dkm_encryptor_free(e);
                        return fail(-ENOMEM, &c);
                }
                for (;;) {
                        r = dkm_encryptor_update(e, io.data.data, io.data.size, ct, cap, &m);
                        if (r < 0 || (status = io_write(&io, ct, m)) != 0)
                                break;
                        if (eof)
                                break;
                        io.data.size = 0; /* wiped when freed, overwritten before */
                        r = buffer_read(&io.data, io.in, DKM_STREAM_CHUNK_BYTES, &eof);
                        if (r < 0) {
                                status = fail_io("read", arg.input ?: "standard input", r);
                                break;
                        }
                }
                if (r >= 0 && status == 0) {
                        r = dkm_encryptor_final(e, ct, cap, &m);
                        if (r >= 0)
                                status = io_write(&io, ct, m);
                }
                dkm_encryptor_free(e);
                if (status != 0)
                        return status;
                if (r < 0)
                        return fail(r, &c);
                return io_commit(&io);
        }
}

int verb_decrypt(void) {
        _cleanup_(io_done) Io io = IO_NULL;
        Context c = { .verb = "decrypt" };
        int r;

        /* Plaintext: only the caller may read the file it asked for. */
        r = io_open(&io, false, 0600);
        if (r != 0)
                return r;
        r = read_head(&io, &c);
        if (r != 0)
                return r;

        if (!head_is_stream(&io)) {
                _cleanup_free_ uint8_t *pt = NULL;
                size_t m, cap;

                /* One-shot: read whole, authenticated whole, written whole, or nothing at all. */
                r = read_rest(&io, DKM_MESSAGE_BYTES_MAX + DKM_ABYTES_MAX);
                if (r != 0)
                        return r;
                cap = dkm_plaintext_len_max(io.data.size);
                pt = malloc(cap > 0 ? cap : 1);
                if (!pt)
                        return fail(-ENOMEM, &c);
                r = dkm_decrypt(io.data.data, io.data.size, io.ad.data, io.ad.size, pt, cap, &m);
                if (r >= 0)
                        r = io_write(&io, pt, m);
                secret_wipe(pt, cap);
                if (r < 0)
                        return fail(r, &c);
                if (r > 0)
                        return r;
                return io_commit(&io);
        }

        r = stream_decrypt(&io, &c, NULL);
        if (r != 0)
                return r;
        return io_commit(&io);
}

int verb_rewrap(void) {
        _cleanup_(io_done) Io io = IO_NULL;
        Context c = { .verb = "rewrap" };
        dkm_encryptor_t *e = NULL;
        int r;

        r = io_open(&io, true, 0666);
        if (r != 0)
                return r;
        r = read_head(&io, &c);
        if (r != 0)
                return r;

        if (!head_is_stream(&io)) {
                _cleanup_free_ uint8_t *out = NULL;
                size_t m;

                r = read_rest(&io, DKM_MESSAGE_BYTES_MAX + DKM_ABYTES_MAX);
                if (r != 0)
                        return r;
                out = malloc(io.data.size > 0 ? io.data.size : 1);
                if (!out)
                        return fail(-ENOMEM, &c);
                r = dkm_rewrap(io.data.data, io.data.size, io.ad.data, io.ad.size, out, io.data.size, &m);
                if (r < 0)
                        return fail(r, &c);
                r = io_write(&io, out, m);
                return r != 0 ? r : io_commit(&io);
        }

        /* A stream becomes a new stream under the active generation of its own group. */
        if (!c.have_info)
                return fail(-EPIPE, &c);
        if (!c.info.group[0])
                return fail(-EACCES, &c);
        r = dkm_encryptor_new(c.info.group, io.ad.data, io.ad.size, &e);
        if (r < 0)
                return fail(r, &c);
        r = stream_decrypt(&io, &c, e);
        dkm_encryptor_free(e);
        if (r != 0)
                return r;
        return io_commit(&io);
}

int verb_info(void) {
        _cleanup_(io_done) Io io = IO_NULL;
        Context c = { .verb = "info" };
        uint64_t total;
        char hex[2 * DKM_GROUP_ID_BYTES + 1];
        ssize_t n;
        uint8_t skip[65536];
        int r;

        r = io_open(&io, false, 0600);
        if (r != 0)
                return r;
        r = buffer_read(&io.data, io.in, DKM_HEADER_BYTES_MAX, &(bool){ 0 });
        if (r < 0)
                return fail_io("read", arg.input ?: "standard input", r);
        r = dkm_ciphertext_info(io.data.data, io.data.size, &c.info);
        if (r < 0)
                return fail(r, &c);
        /* The length only: the rest is counted, never kept. */
        total = io.data.size;
        while ((n = loop_read(io.in, skip, sizeof(skip))) > 0)
                total += (uint64_t) n;
        if (n < 0)
                return fail_io("read", arg.input ?: "standard input", (int) n);

        for (size_t i = 0; i < DKM_GROUP_ID_BYTES; i++)
                snprintf(hex + 2 * i, 3, "%02x", c.info.group_id[i]);
        printf("kind:        %s\n", c.info.kind == DKM_KIND_ONESHOT ? "one-shot" : "stream");
        printf("version:     %u\n", c.info.version);
        printf("algorithm:   %s\n", dkm_algorithm_name(c.info.algorithm));
        printf("group-id:    %s\n", hex);
        printf("group:       %s\n", c.info.group[0] ? c.info.group : "- (no visible key group has this id)");
        printf("generation:  %u\n", c.info.generation);
        printf("size:        %llu\n", (unsigned long long) total);
        if (c.info.kind == DKM_KIND_ONESHOT) {
                uint64_t over = c.info.header_len + DKM_STREAM_ABYTES;
                printf("plaintext:   %llu\n", (unsigned long long) (total >= over ? total - over : 0));
        } else {
                uint64_t body = total >= c.info.header_len ? total - c.info.header_len : 0,
                         per = (uint64_t) c.info.chunk_len + DKM_STREAM_ABYTES,
                         chunks = body / per + (body % per ? 1 : 0);
                printf("chunk-size:  %u\n", c.info.chunk_len);
                printf("plaintext:   %llu (unverified)\n",
                       (unsigned long long) (body >= chunks * DKM_STREAM_ABYTES ? body - chunks * DKM_STREAM_ABYTES
                                                                                : 0));
        }
        return 0;
}
