/* SPDX-License-Identifier: MIT */
/* Parts 1 and 2: the small-secret path (warm, cold, threads) and bulk streams, against raw libsodium on the same key. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <dkm.h>
#include <keyutils.h>
#include <sodium.h>

#include "bench.h"

#define ONESHOT_HEADER 52U /* XChaCha20-Poly1305: prefix 28 + nonce 24 (FORMAT.md) */

void sample_make(const char *group, size_t pt_len, Sample *ret);

typedef struct MakeCtx {
        const char *group;
        size_t pt_len;
        Sample *out;
} MakeCtx;

static void child_make(void *userdata) {
        MakeCtx *c = userdata;
        uint8_t pt[1024];
        dkm_info_t info;

        check(c->pt_len <= sizeof(pt));
        randombytes_buf(pt, c->pt_len);
        check_r(dkm_encrypt(c->group, "bench", 5, pt, c->pt_len, c->out->ct, sizeof(c->out->ct), &c->out->ct_len));
        check_r(dkm_ciphertext_info(c->out->ct, c->out->ct_len, &info));
        memcpy(c->out->group_id, info.group_id, sizeof(info.group_id));
        c->out->generation = info.generation;
}

void sample_make(const char *group, size_t pt_len, Sample *ret) {
        Sample *s = shared_new(sizeof(Sample));

        run_child(true, child_make, &(MakeCtx){ group, pt_len, s });
        *ret = *s;
}

/* The generation key's description, as the kernel knows it (KEYRING.md). */
static void key_description(const Sample *s, char ret[64]) {
        char hex[33];

        sodium_bin2hex(hex, sizeof(hex), s->group_id, sizeof(s->group_id));
        snprintf(ret, 64, "dkm:%s:%u", hex, s->generation);
}

/* The operations timed. */

typedef struct Op {
        const Sample *s;
        uint8_t *key; /* raw baseline: the same generation key, in sodium_malloc memory */
        char desc[64];
        uint8_t nonce[24], enc_nonce[24], ad[ONESHOT_HEADER + 5];
        uint8_t raw_ct[1024 + 16];
        size_t pt_len;
        uint8_t pt[1024], ct[1024 + 128];
} Op;

static void op_dkm_decrypt(void *userdata) {
        Op *o = userdata;
        size_t n;

        if (dkm_decrypt(o->s->ct, o->s->ct_len, "bench", 5, o->pt, sizeof(o->pt), &n) < 0)
                die("dkm_decrypt failed");
}

static void op_dkm_encrypt(void *userdata) {
        Op *o = userdata;
        size_t n;

        if (dkm_encrypt(opt.group, "bench", 5, o->pt, o->pt_len, o->ct, sizeof(o->ct), &n) < 0)
                die("dkm_encrypt failed");
}

static void op_raw_decrypt(void *userdata) {
        Op *o = userdata;
        unsigned long long n;

        if (crypto_aead_xchacha20poly1305_ietf_decrypt(o->pt, &n, NULL, o->raw_ct, o->pt_len + 16, o->ad, sizeof(o->ad),
                                                       o->nonce, o->key) != 0)
                die("raw decrypt failed");
}

static void op_raw_encrypt(void *userdata) {
        Op *o = userdata;
        unsigned long long n;

        /* A fresh random nonce each time, as dkm_encrypt does. */
        randombytes_buf(o->enc_nonce, sizeof(o->enc_nonce));
        crypto_aead_xchacha20poly1305_ietf_encrypt(o->ct, &n, o->pt, o->pt_len, o->ad, sizeof(o->ad), NULL, o->enc_nonce,
                                                   o->key);
}

/* What a program would do with nothing but keyutils and libsodium: find the key, read it into a
 * stack buffer, decrypt, wipe. */
static void op_bare_decrypt(void *userdata) {
        Op *o = userdata;
        uint8_t key[32];
        unsigned long long n;
        key_serial_t k;

        k = keyctl_search(KEY_SPEC_USER_KEYRING, "user", o->desc, 0);
        if (k < 0 || keyctl_read(k, (char *) key, sizeof(key)) != sizeof(key))
                die("bare search+read: %m");
        if (crypto_aead_xchacha20poly1305_ietf_decrypt(o->pt, &n, NULL, o->raw_ct, o->pt_len + 16, o->ad, sizeof(o->ad),
                                                       o->nonce, key) != 0)
                die("bare decrypt failed");
        sodium_memzero(key, sizeof(key));
}

static void op_init(Op *o, const Sample *s, size_t pt_len) {
        unsigned long long n;
        key_serial_t k;

        *o = (Op){ .s = s, .pt_len = pt_len };
        key_description(s, o->desc);
        o->key = sodium_malloc(32);
        check(o->key);
        k = keyctl_search(KEY_SPEC_USER_KEYRING, "user", o->desc, 0);
        check(k >= 0);
        check(keyctl_read(k, (char *) o->key, 32) == 32);
        randombytes_buf(o->pt, pt_len);
        randombytes_buf(o->nonce, sizeof(o->nonce));
        memcpy(o->ad, s->ct, ONESHOT_HEADER); /* the AD a one-shot authenticates: header + caller's */
        memcpy(o->ad + ONESHOT_HEADER, "bench", 5);
        crypto_aead_xchacha20poly1305_ietf_encrypt(o->raw_ct, &n, o->pt, pt_len, o->ad, sizeof(o->ad), NULL, o->nonce,
                                                   o->key);
}

static void op_done(Op *o) {
        sodium_free(o->key);
}

static Target at_most(double ratio, double limit) {
        return isnan(ratio) ? TARGET_NONE : ratio <= limit ? TARGET_MET : TARGET_MISSED;
}

/* Throughput: n threads, each on its own CPU, running op in a loop for a while. */

typedef struct ThreadCtx {
        OpFn fn;
        Op op;
        int cpu;
        volatile bool *stop;
        uint64_t ops;
} ThreadCtx;

static void *thread_run(void *userdata) {
        ThreadCtx *t = userdata;

        pin_cpu(t->cpu);
        while (!*t->stop) {
                for (int i = 0; i < 64; i++)
                        t->fn(&t->op);
                t->ops += 64;
        }
        return NULL;
}

static Stat throughput(OpFn fn, const Op *proto, unsigned n_threads) {
        double v[16];
        unsigned rounds = opt.smoke ? 1 : 7;
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);

        for (unsigned r = 0; r < rounds; r++) {
                ThreadCtx t[2] = {};
                pthread_t th[2];
                volatile bool stop = false;
                uint64_t start, ops = 0;

                start = now_ns();
                for (unsigned i = 0; i < n_threads; i++) {
                        t[i] = (ThreadCtx){ .fn = fn, .op = *proto, .cpu = (int) (i % (unsigned) cpus), .stop = &stop };
                        check(pthread_create(&th[i], NULL, thread_run, &t[i]) == 0);
                }
                usleep(opt.thread_ms * 1000U);
                stop = true;
                for (unsigned i = 0; i < n_threads; i++) {
                        check(pthread_join(th[i], NULL) == 0);
                        ops += t[i].ops;
                }
                v[r] = (double) ops / ((double) (now_ns() - start) / 1e9) / 1e6; /* Mop/s */
        }
        return stat_of(v, rounds);
}

static void child_small(void *userdata) {
        static const size_t sizes[] = { 64, 1024 };

        (void) userdata;
        for (size_t i = 0; i < 2; i++) {
                size_t size = sizes[i];
                Sample s;
                Op o;
                Stat cold[3], warm[4];
                char name[96];

                sample_make(opt.group, size, &s);
                op_init(&o, &s, size);

                /* Cold first, while this process has never used libdkm: every child starts empty. */
                measure_cold((OpFn[]){ op_bare_decrypt, op_dkm_decrypt, op_dkm_encrypt }, (void *[]){ &o, &o, &o }, 3,
                             opt.cold, cold);
                pin_cpu(opt.cpu);
                measure_warm((OpFn[]){ op_raw_decrypt, op_dkm_decrypt, op_raw_encrypt, op_dkm_encrypt },
                             (void *[]){ &o, &o, &o, &o }, 4, opt.rounds, opt.batch, warm);

                snprintf(name, sizeof(name), "raw AEAD decrypt %zu B", size);
                result_add(name, warm[0], "µs", NULL, 0, NULL, TARGET_NONE);
                snprintf(name, sizeof(name), "dkm_decrypt %zu B, warm", size);
                result_add(name, warm[1], "µs", "raw AEAD decrypt", warm[1].med / warm[0].med, "≤ 1.5×",
                           at_most(warm[1].med / warm[0].med, 1.5));
                snprintf(name, sizeof(name), "raw AEAD encrypt %zu B (random nonce)", size);
                result_add(name, warm[2], "µs", NULL, 0, NULL, TARGET_NONE);
                snprintf(name, sizeof(name), "dkm_encrypt %zu B, warm", size);
                result_add(name, warm[3], "µs", "raw AEAD encrypt", warm[3].med / warm[2].med, NULL, TARGET_NONE);
                snprintf(name, sizeof(name), "bare search+read+decrypt %zu B, fresh process", size);
                result_add(name, cold[0], "µs", NULL, 0, NULL, TARGET_NONE);
                snprintf(name, sizeof(name), "dkm_decrypt %zu B, cold (first use in a process)", size);
                result_add(name, cold[1], "µs", "bare search+read+decrypt", cold[1].med / cold[0].med, "≤ 3×",
                           at_most(cold[1].med / cold[0].med, 3));
                snprintf(name, sizeof(name), "dkm_encrypt %zu B, cold (first use in a process)", size);
                result_add(name, cold[2], "µs", "bare search+read+decrypt", cold[2].med / cold[0].med, "≤ 3×",
                           at_most(cold[2].med / cold[0].med, 3));

                if (size == 64) {
                        Stat raw1 = throughput(op_raw_decrypt, &o, 1), raw2 = throughput(op_raw_decrypt, &o, 2);
                        Stat dkm1 = throughput(op_dkm_decrypt, &o, 1), dkm2 = throughput(op_dkm_decrypt, &o, 2);

                        result_add("raw AEAD decrypt 64 B, 1 thread", raw1, "Mop/s", NULL, 0, NULL, TARGET_NONE);
                        result_add("raw AEAD decrypt 64 B, 2 threads", raw2, "Mop/s", "1 thread", raw2.med / raw1.med,
                                   NULL, TARGET_NONE);
                        result_add("dkm_decrypt 64 B, 1 thread", dkm1, "Mop/s", "raw, 1 thread", dkm1.med / raw1.med,
                                   NULL, TARGET_NONE);
                        result_add("dkm_decrypt 64 B, 2 threads", dkm2, "Mop/s", "raw, 2 threads", dkm2.med / raw2.med,
                                   NULL, TARGET_NONE);
                }
                op_done(&o);
                dkm_cleanup();
        }
}

void bench_small(void) {
        result_section("1. small secrets (XChaCha20-Poly1305, one-shot)");
        run_child(true, child_small, NULL);
}

/* Part 2: streams of 1 MiB and 64 MiB. Encryption reads a 64 KiB buffer over and over, so the
 * input costs no memory; decryption reads a file (the page cache holds it, not our RSS) with
 * read(), as the raw baseline does. */

#define CHUNK 65536U
#define RAW_CHUNK (CHUNK + 16U)

typedef struct Bulk {
        size_t size;
        uint8_t *in, *out;
        size_t out_cap;
        uint8_t key[32];
        char dkm_path[256], raw_path[256];
        int out_fd; /* -1: discard */
} Bulk;

static void write_all(int fd, const void *p, size_t n) {
        if (fd >= 0)
                check(write(fd, p, n) == (ssize_t) n);
}

static void op_dkm_stream_encrypt(void *userdata) {
        Bulk *b = userdata;
        dkm_encryptor_t *e;
        size_t n;

        check_r(dkm_encryptor_new(opt.group, "bench", 5, &e));
        for (size_t done = 0; done < b->size; done += CHUNK) {
                check_r(dkm_encryptor_update(e, b->in, CHUNK, b->out, b->out_cap, &n));
                write_all(b->out_fd, b->out, n);
        }
        check_r(dkm_encryptor_final(e, b->out, b->out_cap, &n));
        write_all(b->out_fd, b->out, n);
        dkm_encryptor_free(e);
}

static void raw_nonce(uint8_t nonce[24], uint64_t i) {
        memset(nonce, 0, 24);
        memcpy(nonce, &i, sizeof(i));
}

static void op_raw_stream_encrypt(void *userdata) {
        Bulk *b = userdata;
        uint8_t nonce[24];
        unsigned long long n;
        uint64_t i = 0;

        for (size_t done = 0; done < b->size; done += CHUNK, i++) {
                raw_nonce(nonce, i);
                crypto_aead_xchacha20poly1305_ietf_encrypt(b->out, &n, b->in, CHUNK, NULL, 0, NULL, nonce, b->key);
                write_all(b->out_fd, b->out, n);
        }
}

static void op_dkm_stream_decrypt(void *userdata) {
        Bulk *b = userdata;
        dkm_decryptor_t *d;
        size_t used, n;
        ssize_t got;
        int fd;

        fd = open(b->dkm_path, O_RDONLY | O_CLOEXEC);
        check(fd >= 0);
        check_r(dkm_decryptor_new("bench", 5, &d));
        while ((got = read(fd, b->in, RAW_CHUNK)) > 0)
                for (size_t p = 0; p < (size_t) got; p += used)
                        check_r(dkm_decryptor_update(d, b->in + p, (size_t) got - p, &used, b->out, b->out_cap, &n));
        check(got == 0);
        check_r(dkm_decryptor_final(d, b->out, b->out_cap, &n));
        dkm_decryptor_free(d);
        close(fd);
}

static void op_raw_stream_decrypt(void *userdata) {
        Bulk *b = userdata;
        uint8_t nonce[24];
        unsigned long long n;
        uint64_t i = 0;
        ssize_t got;
        int fd;

        fd = open(b->raw_path, O_RDONLY | O_CLOEXEC);
        check(fd >= 0);
        while ((got = read(fd, b->in, RAW_CHUNK)) > 0) {
                raw_nonce(nonce, i++);
                if (crypto_aead_xchacha20poly1305_ietf_decrypt(b->out, &n, NULL, b->in, (size_t) got, NULL, 0, nonce,
                                                               b->key) != 0)
                        die("raw stream decrypt failed");
        }
        check(got == 0);
        close(fd);
}

static long status_kib(const char *field) {
        char line[256];
        long v = -1;
        FILE *f = fopen("/proc/self/status", "re");

        check(f);
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, field, strlen(field)) == 0)
                        v = strtol(line + strlen(field), NULL, 10);
        fclose(f);
        return v;
}

typedef struct RssCtx {
        Bulk *b;
        double *ret_kib;
} RssCtx;

/* In a fresh child: how far the resident set grew while streaming the whole size through. */
static void child_rss(void *userdata) {
        RssCtx *c = userdata;
        long base = status_kib("VmRSS:");

        op_dkm_stream_encrypt(c->b);
        op_dkm_stream_decrypt(c->b);
        *c->ret_kib = (double) (status_kib("VmHWM:") - base);
}

static void child_bulk(void *userdata) {
        (void) userdata;
        pin_cpu(opt.cpu);
        for (size_t i = 0; i < 2; i++) {
                Bulk b = { .size = opt.bulk_sizes[i], .out_fd = -1 };
                Sample s;
                Op o;
                Stat st[4];
                char name[96];
                double mib = (double) b.size / (1 << 20), *rss = shared_new(sizeof(double));
                unsigned rounds = opt.smoke ? 1 : b.size > (8U << 20) ? 5 : 15;

                /* The raw baseline uses the group's own key. */
                sample_make(opt.group, 64, &s);
                op_init(&o, &s, 64);
                memcpy(b.key, o.key, 32);
                op_done(&o);

                b.out_cap = dkm_encryptor_out_len_max(CHUNK) + RAW_CHUNK;
                b.in = malloc(RAW_CHUNK);
                b.out = malloc(b.out_cap);
                check(b.in && b.out);
                randombytes_buf(b.in, RAW_CHUNK);

                /* The ciphertexts to decrypt, in files. */
                snprintf(b.dkm_path, sizeof(b.dkm_path), "%s/bulk-%zu.dkm", opt.work_dir, b.size);
                snprintf(b.raw_path, sizeof(b.raw_path), "%s/bulk-%zu.raw", opt.work_dir, b.size);
                b.out_fd = open(b.dkm_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
                check(b.out_fd >= 0);
                op_dkm_stream_encrypt(&b);
                close(b.out_fd);
                b.out_fd = open(b.raw_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
                check(b.out_fd >= 0);
                op_raw_stream_encrypt(&b);
                close(b.out_fd);
                b.out_fd = -1;

                measure_warm((OpFn[]){ op_raw_stream_encrypt, op_dkm_stream_encrypt, op_raw_stream_decrypt,
                                       op_dkm_stream_decrypt },
                             (void *[]){ &b, &b, &b, &b }, 4, rounds, 1, st);
                /* µs per run -> MiB/s, and the spread turned around with it. */
                for (size_t k = 0; k < 4; k++)
                        st[k] = (Stat){ mib / (st[k].med / 1e6), mib / (st[k].p90 / 1e6), mib / (st[k].p10 / 1e6),
                                        st[k].n };
                snprintf(name, sizeof(name), "raw AEAD, 64 KiB chunks, encrypt %g MiB", mib);
                result_add(name, st[0], "MiB/s", NULL, 0, NULL, TARGET_NONE);
                snprintf(name, sizeof(name), "dkm stream encrypt %g MiB", mib);
                result_add(name, st[1], "MiB/s", "raw AEAD encrypt", st[1].med / st[0].med, "≥ 0.90×",
                           st[1].med / st[0].med >= 0.9 ? TARGET_MET : TARGET_MISSED);
                snprintf(name, sizeof(name), "raw AEAD, 64 KiB chunks, decrypt %g MiB (read(2))", mib);
                result_add(name, st[2], "MiB/s", NULL, 0, NULL, TARGET_NONE);
                snprintf(name, sizeof(name), "dkm stream decrypt %g MiB (read(2))", mib);
                result_add(name, st[3], "MiB/s", "raw AEAD decrypt", st[3].med / st[2].med, "≥ 0.90×",
                           st[3].med / st[2].med >= 0.9 ? TARGET_MET : TARGET_MISSED);

                run_child(false, child_rss, &(RssCtx){ &b, rss });
                snprintf(name, sizeof(name), "peak RSS growth, stream %g MiB in and out", mib);
                result_add(name, (Stat){ *rss, *rss, *rss, 1 }, "KiB", NULL, 0, "bounded", TARGET_NONE);

                unlink(b.dkm_path);
                unlink(b.raw_path);
                free(b.in);
                free(b.out);
        }
}

void bench_bulk(void) {
        result_section("2. bulk streams (64 KiB chunks)");
        run_child(true, child_bulk, NULL);
}

/* For the growth part: warm and cold decryption of one ciphertext, as the member. */

typedef struct CostCtx {
        const Sample *s;
        Stat *warm, *cold;
} CostCtx;

static void child_cost(void *userdata) {
        CostCtx *c = userdata;
        Op o = { .s = c->s };

        measure_cold((OpFn[]){ op_dkm_decrypt }, (void *[]){ &o }, 1, opt.cold, c->cold);
        pin_cpu(opt.cpu);
        measure_warm((OpFn[]){ op_dkm_decrypt }, (void *[]){ &o }, 1, opt.rounds, opt.batch, c->warm);
}

void decrypt_cost(const Sample *s, Stat *ret_warm, Stat *ret_cold) {
        Stat *st = shared_new(2 * sizeof(Stat));

        run_child(true, child_cost, &(CostCtx){ s, &st[0], &st[1] });
        *ret_warm = st[0];
        *ret_cold = st[1];
}
