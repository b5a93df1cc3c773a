/* SPDX-License-Identifier: MIT */
/* Tests for libdkm: the real kernel keyrings, real accounts, the real dkm-store and helper, seccomp and valgrind. */
#include <check.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <keyutils.h>
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

#include "dkm-internal.h"
#include "dkm.h"
#include "fileio.h"
#include "keyring-manifest.h"
#include "stream.h"
#include "test-accounts.h"
#include "test-helpers.h"

static const char *const key_group_tags[] = {
        "rt",    "deny", "tamper", "roll", "retire", "ondemand", "removed",
        "cache", "ttl",  "mem",    "fd",   "valg",   "unload",   NULL,
};

/* ---------------------------------------------------------------------------------------- */
/* Without keys: sizes, errors, headers, the exported symbols.                               */

START_TEST(test_api_pure) {
        ck_assert_uint_eq(dkm_group_name_max(), DKM_GROUP_NAME_MAX);
        ck_assert_uint_eq(dkm_group_id_bytes(), 16);
        ck_assert_uint_eq(dkm_abytes_max(), 68);
        ck_assert_uint_eq(dkm_abytes_min(), 56);
        ck_assert_uint_eq(dkm_message_bytes_max(), (size_t) 1 << 30);
        ck_assert_uint_eq(dkm_header_bytes_max(), 64);
        ck_assert_uint_eq(dkm_stream_header_bytes(), 64);
        ck_assert_uint_eq(dkm_stream_chunk_bytes(), 65536);
        ck_assert_uint_eq(dkm_stream_abytes(), 16);
        ck_assert_uint_eq(dkm_ciphertext_len_max(10), 78);
        ck_assert_uint_eq(dkm_ciphertext_len_max(((size_t) 1 << 30) + 1), 0);
        ck_assert_uint_eq(dkm_plaintext_len_max(100), 44);
        ck_assert_uint_eq(dkm_plaintext_len_max(10), 0);
        ck_assert_uint_eq(dkm_encryptor_out_len_max(0), 64 + 65552);
        ck_assert_uint_eq(dkm_encryptor_out_len_max(65536), 64 + 2 * 65552);
        ck_assert_str_eq(dkm_version(), "0.1.0");
        ck_assert_str_eq(dkm_algorithm_name(DKM_ALG_XCHACHA20_POLY1305), "xchacha20-poly1305");
        ck_assert_ptr_null(dkm_algorithm_name((dkm_algorithm_t) 9));

        static const struct {
                int error;
                const char *words;
        } sentences[] = {
                { -ENOKEY, "no such key group" },
                { -EACCES, "not a member" },
                { -EKEYREVOKED, "retired" },
                { -EKEYEXPIRED, "expired" },
                { -EBADMSG, "authentication failed" },
                { -ENOMSG, "not a dkm ciphertext" },
                { -EPROTONOSUPPORT, "newer dkm" },
                { -EPIPE, "truncated" },
                { -ENOBUFS, "too small" },
                { -EINVAL, "invalid argument" },
                { -EMEDIUMTYPE, "wrong kind" },
        };
        for (size_t i = 0; i < ELEMENTSOF(sentences); i++) {
                ck_assert_ptr_nonnull(strstr(dkm_strerror(sentences[i].error), sentences[i].words));
                ck_assert_str_eq(dkm_strerror(-sentences[i].error), dkm_strerror(sentences[i].error));
        }
        ck_assert_ptr_nonnull(dkm_strerror(-ENOSPC));
        ck_assert_ptr_nonnull(dkm_strerror(-123456));
}
END_TEST

/* A one-shot ciphertext under a key nobody has: enough for everything that needs no key. */
static size_t foreign_ciphertext(uint8_t *out, size_t cap, CiphertextKind kind, uint8_t id[16]) {
        _cleanup_secret_ Secret *key = NULL;
        size_t n = 0;

        crypt_random(id, 16);
        ck_assert_int_eq(crypt_keygen(&key), 0);
        if (kind == CIPHERTEXT_ONESHOT)
                ck_assert_int_eq(ciphertext_seal(CRYPT_ALG_XCHACHA20_POLY1305, id, 7, key, "ad", 2, "0123456789", 10,
                                                 out, cap, &n),
                                 0);
        else {
                _cleanup_stream_encryptor_ StreamEncryptor *e = NULL;
                const uint8_t *h;
                size_t hn, m;

                ck_assert_int_eq(stream_encrypt_new(CRYPT_ALG_XCHACHA20_POLY1305, id, 7, key, NULL, 0, &e), 0);
                h = stream_encrypt_header(e, &hn);
                memcpy(out, h, hn);
                ck_assert_int_eq(stream_encrypt_chunk(e, "abc", 3, true, out + hn, cap - hn, &m), 0);
                n = hn + m;
        }
        return n;
}

START_TEST(test_header_without_key) {
        uint8_t ct[256], id[16], pt[64];
        dkm_info_t info;
        size_t n, m = 0;

        n = foreign_ciphertext(ct, sizeof(ct), CIPHERTEXT_ONESHOT, id);
        ck_assert_int_eq(dkm_ciphertext_info(ct, n, &info), 0);
        ck_assert_int_eq(info.version, 1);
        ck_assert_int_eq(info.kind, DKM_KIND_ONESHOT);
        ck_assert_int_eq(info.algorithm, DKM_ALG_XCHACHA20_POLY1305);
        ck_assert_mem_eq(info.group_id, id, 16);
        ck_assert_str_eq(info.group, "");
        ck_assert_uint_eq(info.generation, 7);
        ck_assert_uint_eq(info.header_len, 52);
        ck_assert_uint_eq(info.plaintext_len, 10);
        /* Only the header is needed. */
        ck_assert_int_eq(dkm_ciphertext_info(ct, 52, &info), 0);
        ck_assert_int_eq(dkm_ciphertext_info(ct, 40, &info), -EBADMSG);
        ck_assert_int_eq(dkm_ciphertext_info("hello world", 11, &info), -ENOMSG);
        ck_assert_int_eq(dkm_ciphertext_info(ct, 0, &info), -ENOMSG);
        ct[3] = 2;
        ck_assert_int_eq(dkm_ciphertext_info(ct, n, &info), -EPROTONOSUPPORT);
        ck_assert_int_eq(dkm_decrypt(ct, n, "ad", 2, pt, sizeof(pt), &m), -EPROTONOSUPPORT);
        ct[3] = 1;
        ct[5] = 9; /* an algorithm from the future */
        ck_assert_int_eq(dkm_ciphertext_info(ct, n, &info), -EPROTONOSUPPORT);
        ct[5] = 1;

        /* Sizes are checked before any key is looked for. */
        ck_assert_int_eq(dkm_decrypt(ct, n, "ad", 2, pt, 5, &m), -ENOBUFS);
        ck_assert_uint_eq(m, 10);
        ck_assert_int_eq(dkm_decrypt(ct, n, "ad", 2, pt, sizeof(pt), NULL), -EINVAL);
        ck_assert_int_eq(dkm_decrypt(NULL, 5, "ad", 2, pt, sizeof(pt), &m), -EINVAL);
        ck_assert_int_eq(dkm_decrypt(ct, n, ct, 2, ct, n, &m), -EINVAL); /* overlapping */
        ck_assert_int_eq(dkm_decrypt("nope", 4, NULL, 0, pt, sizeof(pt), &m), -ENOMSG);
        ck_assert_int_eq(dkm_encrypt("Bad-Name", NULL, 0, "x", 1, pt, sizeof(pt), &m), -EINVAL);
        ck_assert_int_eq(dkm_encrypt(NULL, NULL, 0, "x", 1, pt, sizeof(pt), &m), -EINVAL);

        n = foreign_ciphertext(ct, sizeof(ct), CIPHERTEXT_STREAM, id);
        ck_assert_int_eq(dkm_ciphertext_info(ct, n, &info), 0);
        ck_assert_int_eq(info.kind, DKM_KIND_STREAM);
        ck_assert_uint_eq(info.chunk_len, 65536);
        ck_assert_uint_eq(info.header_len, 64);
        ck_assert_int_eq(dkm_decrypt(ct, n, NULL, 0, pt, sizeof(pt), &m), -EMEDIUMTYPE);
}
END_TEST

/* Applications see dkm_* and nothing of what libdkm links in. */
START_TEST(test_exported_symbols) {
        const char *path = getenv("DKM_LIBDKM");
        static const char *const hidden[] = {
                "crypt_aead_open", "secret_new",   "cache_acquire_active", "keyring_client_find_group",
                "ciphertext_open", "libdkm_error", "stream_decrypt_new",   "keyring_pointer_unpack",
        };
        void *h;

        ck_assert_ptr_nonnull(path);
        h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        ck_assert_msg(h, "dlopen %s: %s", path, dlerror());
        ck_assert_ptr_nonnull(dlvsym(h, "dkm_encrypt", "DKM_0.1"));
        ck_assert_ptr_nonnull(dlsym(h, "dkm_decrypt_fd"));
        ck_assert_ptr_nonnull(dlsym(h, "dkm_strerror"));
        for (size_t i = 0; i < ELEMENTSOF(hidden); i++)
                ck_assert_msg(!dlsym(h, hidden[i]), "%s is exported", hidden[i]);
        dlclose(h);
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/* Key groups through the real dkm-store and helper.                                         */

static void group_load(const char *g, const char *hot_window) {
        ck_assert_int_eq(test_store("load", g, hot_window), 0);
}

static const char *group_new(const char *tag) {
        const char *g = test_key_group(tag);
        char gid[32];

        snprintf(gid, sizeof(gid), "--gid=%u", (unsigned) TW.gid);
        ck_assert_int_eq(test_store("group", "create", g, gid), 0);
        group_load(g, "--hot-window=10");
        return g;
}

static void rollover(const char *g) {
        ck_assert_int_eq(test_store("rollover", g), 0);
        group_load(g, "--hot-window=10");
}

typedef struct Blob {
        size_t size;
        uint8_t data[4096];
} Blob;

static void encrypt_to(Blob *b, const char *g, const char *ad, const char *pt) {
        int r = dkm_encrypt(g, ad, ad ? strlen(ad) : 0, pt, strlen(pt), b->data, sizeof(b->data), &b->size);
        ck_assert_msg(r == 0, "encrypt: %s", dkm_strerror(r));
}

static int decrypt_eq(const Blob *b, const char *ad, const char *want) {
        uint8_t pt[4096];
        size_t n;
        int r = dkm_decrypt(b->data, b->size, ad, ad ? strlen(ad) : 0, pt, sizeof(pt), &n);

        if (r == 0)
                ck_assert(n == strlen(want) && memcmp(pt, want, n) == 0);
        return r;
}

static uint32_t generation_of(const Blob *b) {
        dkm_info_t info;

        ck_assert_int_eq(dkm_ciphertext_info(b->data, b->size, &info), 0);
        return info.generation;
}

static void stream_roundtrip(const char *g, size_t size) {
        _cleanup_free_ uint8_t *pt = malloc(size + 1), *ct = malloc(size + 4096), *back = malloc(size + 65536);
        uint8_t out[65536];
        dkm_encryptor_t *e = NULL;
        dkm_decryptor_t *d = NULL;
        size_t n = 0, m, used, got = 0, step = 1;
        dkm_info_t info;

        for (size_t i = 0; i < size; i++)
                pt[i] = (uint8_t) (i * 7 + 3);
        ck_assert_int_eq(dkm_encryptor_new(g, "stream-ad", 9, &e), 0);
        for (size_t off = 0; off < size; off += step, step = step * 3 + 1) {
                size_t take = MIN(step, size - off), cap = dkm_encryptor_out_len_max(take);
                ck_assert_int_eq(dkm_encryptor_update(e, pt + off, take, ct + n, cap, &m), 0);
                n += m;
        }
        ck_assert_int_eq(dkm_encryptor_final(e, ct + n, dkm_encryptor_out_len_max(0), &m), 0);
        n += m;
        ck_assert_int_eq(dkm_encryptor_update(e, "x", 1, out, sizeof(out), &m), -EINVAL);
        dkm_encryptor_free(e);

        ck_assert_int_eq(dkm_decryptor_new("stream-ad", 9, &d), 0);
        ck_assert_int_eq(dkm_decryptor_info(d, &info), -EAGAIN);
        /* Pieces of odd sizes, so header, chunk and tag boundaries fall anywhere. */
        for (size_t off = 0; off < n;) {
                size_t take = MIN((off % 5000) + 1, n - off);
                ck_assert_int_eq(dkm_decryptor_update(d, ct + off, take, &used, out, sizeof(out), &m), 0);
                memcpy(back + got, out, m);
                got += m;
                off += used;
        }
        ck_assert_int_eq(dkm_decryptor_final(d, out, sizeof(out), &m), 0);
        memcpy(back + got, out, m);
        got += m;
        ck_assert_uint_eq(got, size);
        ck_assert(memcmp(back, pt, size) == 0);
        ck_assert_int_eq(dkm_decryptor_info(d, &info), 0);
        ck_assert_str_eq(info.group, g);
        ck_assert_uint_eq(dkm_decryptor_chunk_len(d), 65536);
        dkm_decryptor_free(d);
}

static void child_roundtrip(void *userdata) {
        const char *g = userdata;
        Blob a, b;
        uint8_t small[8], pt[64];
        size_t n;
        dkm_info_t info;

        encrypt_to(&a, g, "account:1", "s3cret");
        ck_assert_uint_eq(a.size, 6 + 68);
        ck_assert_int_eq(dkm_ciphertext_info(a.data, a.size, &info), 0);
        ck_assert_str_eq(info.group, g);
        ck_assert_uint_eq(info.generation, 1);
        ck_assert_uint_eq(info.plaintext_len, 6);
        ck_assert_int_eq(decrypt_eq(&a, "account:1", "s3cret"), 0);
        /* Wrong or missing associated data: refused, and no plaintext byte comes out. */
        memset(pt, 0xaa, sizeof(pt));
        ck_assert_int_eq(dkm_decrypt(a.data, a.size, "account:2", 9, pt, sizeof(pt), &n), -EBADMSG);
        for (size_t i = 0; i < 6; i++)
                ck_assert_uint_eq(pt[i], 0);
        ck_assert_int_eq(decrypt_eq(&a, NULL, "s3cret"), -EBADMSG);

        /* Buffer too small: the size needed comes back, then the call works. */
        ck_assert_int_eq(dkm_encrypt(g, NULL, 0, "s3cret", 6, small, sizeof(small), &n), -ENOBUFS);
        ck_assert_uint_eq(n, 6 + 68);
        ck_assert_int_eq(dkm_decrypt(a.data, a.size, "account:1", 9, small, 3, &n), -ENOBUFS);
        ck_assert_uint_eq(n, 6);

        encrypt_to(&b, g, NULL, "");
        ck_assert_int_eq(decrypt_eq(&b, NULL, ""), 0);

        /* Rewrap: new bytes, same meaning. */
        ck_assert_int_eq(dkm_rewrap(a.data, a.size, "account:1", 9, b.data, sizeof(b.data), &b.size), 0);
        ck_assert_uint_eq(b.size, a.size);
        ck_assert(memcmp(a.data, b.data, a.size) != 0);
        ck_assert_int_eq(decrypt_eq(&b, "account:1", "s3cret"), 0);
        ck_assert_int_eq(dkm_rewrap(a.data, a.size, "account:9", 9, b.data, sizeof(b.data), &b.size), -EBADMSG);

        stream_roundtrip(g, 0);
        stream_roundtrip(g, 65536);
        stream_roundtrip(g, 300000);

        /* Holding keys made the process undumpable. */
        ck_assert_int_eq(prctl(PR_GET_DUMPABLE), 0);
}

START_TEST(test_member_roundtrip) {
        const char *g = group_new("rt");
        TestCreds member = test_creds_member();

        test_wait_ok(test_fork_as(&member, child_roundtrip, (void *) g));
}
END_TEST

typedef struct DenyShared {
        Blob ct;
        Blob stream;
        int r[12];
        char strerr[160];
        dkm_info_t info;
} DenyShared;

static void child_make_ciphertexts(void *userdata) {
        DenyShared *sh = userdata;
        const char *g = test_key_group("deny");
        dkm_encryptor_t *e = NULL;
        size_t n, m;

        encrypt_to(&sh->ct, g, "ad", "for members only");
        ck_assert_int_eq(dkm_encryptor_new(g, NULL, 0, &e), 0);
        ck_assert_int_eq(dkm_encryptor_update(e, "abc", 3, sh->stream.data, sizeof(sh->stream.data), &n), 0);
        ck_assert_int_eq(dkm_encryptor_final(e, sh->stream.data + n, sizeof(sh->stream.data) - n, &m), 0);
        sh->stream.size = n + m;
        dkm_encryptor_free(e);
}

static void child_denied(void *userdata) {
        DenyShared *sh = userdata;
        const char *g = test_key_group("deny");
        uint8_t buf[4096];
        size_t n, used;
        dkm_decryptor_t *d = NULL;

        sh->r[0] = dkm_encrypt(g, NULL, 0, "x", 1, buf, sizeof(buf), &n);
        snprintf(sh->strerr, sizeof(sh->strerr), "%s", dkm_strerror(sh->r[0]));
        sh->r[1] = dkm_decrypt(sh->ct.data, sh->ct.size, "ad", 2, buf, sizeof(buf), &n);
        sh->r[2] = dkm_ciphertext_info(sh->ct.data, sh->ct.size, &sh->info);
        ck_assert_int_eq(dkm_decryptor_new(NULL, 0, &d), 0);
        sh->r[3] = dkm_decryptor_update(d, sh->stream.data, sh->stream.size, &used, buf, sizeof(buf), &n);
        dkm_decryptor_free(d);
        sh->r[4] = dkm_encryptor_new(g, NULL, 0, (dkm_encryptor_t *[]){ NULL });
        sh->r[5] = prctl(PR_GET_DUMPABLE); /* no key was ever loaded */
}

static void child_unknown(void *userdata) {
        DenyShared *sh = userdata;
        uint8_t buf[256], id[16];
        size_t n;
        char name[80];

        snprintf(name, sizeof(name), "dkmt-%ld-nosuch", (long) TW.main_pid);
        sh->r[0] = dkm_encrypt(name, NULL, 0, "x", 1, buf, sizeof(buf), &n);
        n = foreign_ciphertext(buf, sizeof(buf), CIPHERTEXT_ONESHOT, id);
        sh->r[1] = dkm_decrypt(buf, n, "ad", 2, buf + 128, 100, &n);
        sh->r[2] = dkm_encrypt("Upper", NULL, 0, "x", 1, buf, sizeof(buf), &n);
}

START_TEST(test_nonmember) {
        group_new("deny");
        DenyShared *sh = test_shared_new(sizeof(DenyShared));
        TestCreds member = test_creds_member(), other = test_creds_other(), nogid = test_creds_member_without_gid(),
                  root_nogid = { .uid = 0, .gid = 0 };
        const TestCreds *denied[] = { &other, &nogid, &root_nogid };

        test_wait_ok(test_fork_as(&member, child_make_ciphertexts, sh));
        ck_assert_uint_gt(sh->ct.size, 0);

        for (size_t i = 0; i < ELEMENTSOF(denied); i++) {
                memset(sh->r, 0x7f, sizeof(sh->r));
                test_wait_ok(test_fork_as(denied[i], child_denied, sh));
                ck_assert_msg(sh->r[0] == -EACCES, "creds %zu: encrypt %d", i, sh->r[0]);
                ck_assert_ptr_nonnull(strstr(sh->strerr, "not a member"));
                ck_assert_msg(sh->r[1] == -EACCES, "creds %zu: decrypt %d", i, sh->r[1]);
                /* What the header says needs no key: only the name stays hidden. */
                ck_assert_int_eq(sh->r[2], 0);
                ck_assert_uint_eq(sh->info.generation, 1);
                ck_assert_str_eq(sh->info.group, "");
                ck_assert_int_eq(sh->r[3], -EACCES);
                ck_assert_int_eq(sh->r[4], -EACCES);
                ck_assert_int_eq(sh->r[5], i == 2 ? 1 : 0); /* setresuid() already cleared it */
        }

        test_wait_ok(test_fork_as(&member, child_unknown, sh));
        ck_assert_int_eq(sh->r[0], -ENOKEY);
        ck_assert_int_eq(sh->r[1], -ENOKEY);
        ck_assert_int_eq(sh->r[2], -EINVAL);
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/* Tampering, truncation, the wrong kind.                                                    */

static void child_tamper(void *userdata) {
        const char *g = userdata;
        Blob a, s;
        uint8_t pt[4096], buf[4096];
        char plain[101];
        size_t n, m, used;
        dkm_encryptor_t *e = NULL;
        dkm_decryptor_t *d = NULL;
        int r;

        memset(plain, 'p', 100);
        plain[100] = 0;
        encrypt_to(&a, g, "rec-1", plain);
        ck_assert_uint_eq(a.size, 168);
        for (size_t i = 0; i < a.size; i++)
                for (int bit = 0; bit < 8; bit++) {
                        memcpy(buf, a.data, a.size);
                        buf[i] ^= (uint8_t) (1U << bit);
                        memset(pt, 0, sizeof(pt));
                        r = dkm_decrypt(buf, a.size, "rec-1", 5, pt, sizeof(pt), &n);
                        if (i >= 8 && i < 24)
                                /* the group id: another group, which nobody here has */
                                ck_assert_msg(r == -ENOKEY, "byte %zu bit %d: %d", i, bit, r);
                        else if (i >= 24 && i < 28)
                                ck_assert_msg(r == -ENOKEY, "byte %zu bit %d: %d", i, bit, r);
                        else if (i >= 28)
                                ck_assert_msg(r == -EBADMSG, "byte %zu bit %d: %d", i, bit, r);
                        else
                                ck_assert_msg(r == -ENOMSG || r == -EPROTONOSUPPORT || r == -EBADMSG ||
                                                      r == -EMEDIUMTYPE,
                                              "byte %zu bit %d: %d", i, bit, r);
                        for (size_t j = 0; j < 100; j++)
                                ck_assert_uint_eq(pt[j], 0);
                }
        for (size_t len = 0; len < a.size; len++) {
                r = dkm_decrypt(a.data, len, "rec-1", 5, pt, sizeof(pt), &n);
                ck_assert_msg(r == (len < 3 ? -ENOMSG : -EBADMSG), "length %zu: %d", len, r);
        }
        memcpy(buf, a.data, a.size);
        buf[a.size] = 0;
        ck_assert_int_eq(dkm_decrypt(buf, a.size + 1, "rec-1", 5, pt, sizeof(pt), &n), -EBADMSG);

        /* A three-chunk stream. */
        _cleanup_free_ uint8_t *big = calloc(1, 3 * 65536 + 1000), *ct = malloc(4 * 65552 + 64);
        _cleanup_free_ uint8_t *out = malloc(65536);
        ck_assert_int_eq(dkm_encryptor_new(g, NULL, 0, &e), 0);
        ck_assert_int_eq(dkm_encryptor_update(e, big, 2 * 65536 + 1000, ct, 4 * 65552 + 64, &n), 0);
        ck_assert_int_eq(dkm_encryptor_final(e, ct + n, 4 * 65552 + 64 - n, &m), 0);
        dkm_encryptor_free(e);
        s.size = n + m;
        ck_assert_uint_eq(s.size, 64 + 2 * 65552 + 1016);

        struct {
                size_t len;
                int want;
        } cuts[] = {
                { 0, -ENOMSG },           { 2, -ENOMSG },
                { 30, -EPIPE },           { 64, -EPIPE },
                { 64 + 65552, -EPIPE },   { 64 + 2 * 65552, -EPIPE },
                { 64 + 100, -EBADMSG },   { 64 + 65552 + 17, -EBADMSG },
                { s.size - 1, -EBADMSG },
        };
        for (size_t i = 0; i < ELEMENTSOF(cuts); i++) {
                size_t off = 0;

                ck_assert_int_eq(dkm_decryptor_new(NULL, 0, &d), 0);
                r = 0;
                while (off < cuts[i].len && r == 0) {
                        r = dkm_decryptor_update(d, ct + off, cuts[i].len - off, &used, out, 65536, &m);
                        off += used;
                }
                if (r == 0)
                        r = dkm_decryptor_final(d, out, 65536, &m);
                ck_assert_msg(r == cuts[i].want, "cut at %zu: %d, want %d", cuts[i].len, r, cuts[i].want);
                dkm_decryptor_free(d);
        }
        /* A flipped bit in the middle chunk, and the wrong associated data. */
        ct[64 + 65552 + 100] ^= 1;
        ck_assert_int_eq(dkm_decryptor_new(NULL, 0, &d), 0);
        for (size_t off = 0;
             (r = dkm_decryptor_update(d, ct + off, s.size - off, &used, out, 65536, &m)) == 0 && off < s.size;)
                off += used;
        ck_assert_int_eq(r, -EBADMSG);
        ck_assert_int_eq(dkm_decryptor_final(d, out, 65536, &m), -EBADMSG); /* sticky */
        dkm_decryptor_free(d);
        ct[64 + 65552 + 100] ^= 1;
        ck_assert_int_eq(dkm_decryptor_new("x", 1, &d), 0);
        for (size_t off = 0; off < 64 + 65552; off += used)
                ck_assert_int_eq(dkm_decryptor_update(d, ct + off, 64 + 65552 - off, &used, out, 65536, &m), 0);
        /* The chunk is held back until a byte after it shows it is not the last. */
        ck_assert_int_eq(dkm_decryptor_update(d, ct + 64 + 65552, 1, &used, out, 65536, &m), -EBADMSG);
        dkm_decryptor_free(d);
        /* Output too small for a chunk: the size needed, nothing lost. */
        ck_assert_int_eq(dkm_decryptor_new(NULL, 0, &d), 0);
        ck_assert_int_eq(dkm_decryptor_update(d, ct, 1000, &used, out, 100, &m), 0);
        ck_assert_uint_eq(used, 64);
        ck_assert_int_eq(dkm_decryptor_update(d, ct + 64, 1000, &used, out, 100, &m), -ENOBUFS);
        ck_assert_uint_eq(m, 65536);
        dkm_decryptor_free(d);

        /* The wrong kind either way. */
        ck_assert_int_eq(dkm_decrypt(ct, s.size, NULL, 0, pt, sizeof(pt), &n), -EMEDIUMTYPE);
        ck_assert_int_eq(dkm_decryptor_new(NULL, 0, &d), 0);
        ck_assert_int_eq(dkm_decryptor_update(d, a.data, a.size, &used, out, 65536, &m), -EMEDIUMTYPE);
        dkm_decryptor_free(d);
}

START_TEST(test_tamper) {
        const char *g = group_new("tamper");
        TestCreds member = test_creds_member();

        test_wait_ok(test_fork_as(&member, child_tamper, (void *) g));
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/* Rollover while four processes (two threads each) encrypt and decrypt in a loop.           */

#define ROLL_CHILDREN  4
#define ROLL_THREADS   2
#define ROLL_ROLLOVERS 5

typedef struct RollShared {
        Blob old; /* made under generation 1, before any rollover */
        volatile int stop;
        volatile uint32_t final_generation;
        struct {
                volatile unsigned long ops, failures, old_ok;
                volatile int last_error;
                volatile uint32_t first_after_final, max_generation;
        } w[ROLL_CHILDREN * ROLL_THREADS];
} RollShared;

typedef struct RollWorker {
        RollShared *sh;
        unsigned index;
        const char *group;
} RollWorker;

static void *roll_thread(void *userdata) {
        RollWorker *rw = userdata;
        RollShared *sh = rw->sh;
        __typeof__(sh->w[0]) *me = &sh->w[rw->index];
        char pt[64], ad[32];
        Blob b;

        snprintf(ad, sizeof(ad), "worker-%u", rw->index);
        while (!sh->stop) {
                uint32_t final = __atomic_load_n(&sh->final_generation, __ATOMIC_ACQUIRE);
                uint32_t gen;
                int r;

                snprintf(pt, sizeof(pt), "worker %u operation %lu", rw->index, me->ops);
                r = dkm_encrypt(rw->group, ad, strlen(ad), pt, strlen(pt), b.data, sizeof(b.data), &b.size);
                if (r == 0)
                        r = decrypt_eq(&b, ad, pt);
                if (r != 0) {
                        me->failures++;
                        me->last_error = r;
                        continue;
                }
                gen = generation_of(&b);
                if (gen > me->max_generation)
                        me->max_generation = gen;
                /* A rollover is seen by the first encryption after it. */
                if (final && !me->first_after_final)
                        me->first_after_final = gen;
                if (me->ops % 16 == 0) {
                        r = decrypt_eq(&sh->old, "old", "made before the rollovers");
                        if (r != 0) {
                                me->failures++;
                                me->last_error = r;
                        } else
                                me->old_ok++;
                }
                me->ops++;
        }
        return NULL;
}

static unsigned roll_child_index;

static void child_roll_indexed(void *userdata) {
        RollShared *sh = userdata;
        pthread_t t[ROLL_THREADS];
        RollWorker w[ROLL_THREADS];

        for (unsigned i = 0; i < ROLL_THREADS; i++) {
                w[i] = (RollWorker){ .sh = sh,
                                     .index = roll_child_index * ROLL_THREADS + i,
                                     .group = test_key_group("roll") };
                ck_assert_int_eq(pthread_create(&t[i], NULL, roll_thread, &w[i]), 0);
        }
        for (unsigned i = 0; i < ROLL_THREADS; i++)
                ck_assert_int_eq(pthread_join(t[i], NULL), 0);
}

static void child_roll_old(void *userdata) {
        RollShared *sh = userdata;

        encrypt_to(&sh->old, test_key_group("roll"), "old", "made before the rollovers");
}

static bool wait_for(bool (*cond)(RollShared *), RollShared *sh, int seconds) {
        for (int i = 0; i < seconds * 100; i++) {
                if (cond(sh))
                        return true;
                usleep(10 * 1000);
        }
        return false;
}

static bool all_running(RollShared *sh) {
        for (size_t i = 0; i < ELEMENTSOF(sh->w); i++)
                if (sh->w[i].ops < 10)
                        return false;
        return true;
}

static bool all_saw_final(RollShared *sh) {
        for (size_t i = 0; i < ELEMENTSOF(sh->w); i++)
                if (!sh->w[i].first_after_final)
                        return false;
        return true;
}

START_TEST(test_rollover_concurrent) {
        const char *g = group_new("roll");
        RollShared *sh = test_shared_new(sizeof(RollShared));
        TestCreds member = test_creds_member();
        pid_t pids[ROLL_CHILDREN];
        struct timespec t0, t1;
        unsigned long ops = 0;

        test_wait_ok(test_fork_as(&member, child_roll_old, sh));
        ck_assert_uint_eq(generation_of(&sh->old), 1);
        for (unsigned i = 0; i < ROLL_CHILDREN; i++) {
                roll_child_index = i;
                pids[i] = test_fork_as(&member, child_roll_indexed, sh);
        }
        ck_assert_msg(wait_for(all_running, sh, 30), "workers did not get going");

        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (unsigned i = 0; i < ROLL_ROLLOVERS; i++) {
                rollover(g);
                usleep(30 * 1000);
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        __atomic_store_n(&sh->final_generation, 1 + ROLL_ROLLOVERS, __ATOMIC_RELEASE);
        ck_assert_msg(wait_for(all_saw_final, sh, 30), "workers did not encrypt after the last rollover");
        usleep(50 * 1000);
        sh->stop = 1;
        for (unsigned i = 0; i < ROLL_CHILDREN; i++)
                test_wait_ok(pids[i]);

        for (size_t i = 0; i < ELEMENTSOF(sh->w); i++) {
                ck_assert_msg(sh->w[i].failures == 0, "worker %zu: %lu failures, last %s", i, sh->w[i].failures,
                              dkm_strerror(sh->w[i].last_error));
                /* Loaded (epoch bumped) before final_generation was published: no stale key. */
                ck_assert_uint_eq(sh->w[i].first_after_final, 1 + ROLL_ROLLOVERS);
                ck_assert_uint_eq(sh->w[i].max_generation, 1 + ROLL_ROLLOVERS);
                ck_assert_uint_gt(sh->w[i].old_ok, 0);
                ops += sh->w[i].ops;
        }
        fprintf(stderr, "rollover: %u rollovers+loads in %.0f ms, %lu encrypt+decrypt operations, 0 failures\n",
                ROLL_ROLLOVERS, (double) (t1.tv_sec - t0.tv_sec) * 1e3 + (double) (t1.tv_nsec - t0.tv_nsec) / 1e6, ops);
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/* A parent and one long-lived member process taking turns.                                  */

typedef struct StepShared {
        volatile int step; /* the parent's */
        volatile int done; /* the child's */
        Blob ct1, ct2;
        int r[8];
        uint32_t gen[4];
        CacheStats stats[4];
} StepShared;

static void child_wait_step(StepShared *sh, int step) {
        while (__atomic_load_n(&sh->step, __ATOMIC_ACQUIRE) < step)
                usleep(2000);
}

static void child_done(StepShared *sh, int step) {
        __atomic_store_n(&sh->done, step, __ATOMIC_RELEASE);
}

/* Let the child take step `step`, and wait until it has (at most 60 s). */
static void parent_step(StepShared *sh, int step) {
        __atomic_store_n(&sh->step, step, __ATOMIC_RELEASE);
        for (int i = 0; i < 6000 && __atomic_load_n(&sh->done, __ATOMIC_ACQUIRE) < step + 1; i++)
                usleep(10 * 1000);
        ck_assert_int_ge(sh->done, step + 1);
}

static void child_retire(void *userdata) {
        StepShared *sh = userdata;
        const char *g = test_key_group("retire");

        encrypt_to(&sh->ct1, g, "r", "under generation one");
        sh->r[0] = decrypt_eq(&sh->ct1, "r", "under generation one");
        child_done(sh, 1);

        child_wait_step(sh, 1); /* rolled over: 1 is archived, still loaded */
        sh->r[1] = decrypt_eq(&sh->ct1, "r", "under generation one");
        encrypt_to(&sh->ct2, g, "r", "under generation two");
        sh->gen[1] = generation_of(&sh->ct2);
        child_done(sh, 2);

        child_wait_step(sh, 2); /* 1 retired and loaded: gone from the kernel */
        sh->r[2] = decrypt_eq(&sh->ct1, "r", "under generation one");
        sh->r[3] = decrypt_eq(&sh->ct2, "r", "under generation two");
        child_done(sh, 3);
}

static void child_decrypt_ct1(void *userdata) {
        StepShared *sh = userdata;

        sh->r[4] = decrypt_eq(&sh->ct1, "r", "under generation one");
}

START_TEST(test_retire) {
        const char *g = group_new("retire");
        StepShared *sh = test_shared_new(sizeof(StepShared));
        TestCreds member = test_creds_member();
        long serial1;
        pid_t pid;

        /* The on-demand loader is what knows "retired" (the store says so); without it a
         * generation missing from the kernel is just not there. */
        ck_assert_msg(test_request_key_install(), "the helper has no request-key handler");
        pid = test_fork_as(&member, child_retire, sh);
        parent_step(sh, 0);
        ck_assert_int_eq(sh->r[0], 0);

        rollover(g);
        parent_step(sh, 1);
        ck_assert_int_eq(sh->r[1], 0);
        ck_assert_uint_eq(sh->gen[1], 2);

        serial1 = test_helper_status_value(g, "generation 1 ");
        ck_assert_int_gt(serial1, 0);
        ck_assert_int_eq(test_store("retire", g, "1"), 0);
        group_load(g, "--hot-window=10");
        parent_step(sh, 2);
        test_wait_ok(pid);
        /* The process had generation 1 cached: it notices, and never serves it again. */
        ck_assert_msg(sh->r[2] == -EKEYREVOKED, "decrypt under the retired generation: %s", dkm_strerror(sh->r[2]));
        ck_assert_int_eq(sh->r[3], 0);
        ck_assert(test_proc_keys_gone((int32_t) serial1));
        ck_assert_int_eq(test_helper_status_value(g, "generation 1 "), -1);

        /* A new process is told the same, and the upcall did not bring the key back. */
        test_wait_ok(test_fork_as(&member, child_decrypt_ct1, sh));
        ck_assert_int_eq(sh->r[4], -EKEYREVOKED);
        ck_assert_int_eq(test_helper_status_value(g, "generation 1 "), -1);
        test_request_key_remove();
}
END_TEST

static void child_ondemand(void *userdata) {
        StepShared *sh = userdata;
        CacheStats st;
        uint64_t calls;

        sh->r[0] = decrypt_eq(&sh->ct1, "od", "archived long ago");
        cache_get_stats(&st);
        sh->stats[0] = st;
        calls = keyring_client_syscalls();
        sh->r[1] = decrypt_eq(&sh->ct1, "od", "archived long ago");
        sh->r[2] = (int) (keyring_client_syscalls() - calls);
}

static void child_make_ct1(void *userdata) {
        StepShared *sh = userdata;

        encrypt_to(&sh->ct1, test_key_group("ondemand"), "od", "archived long ago");
}

START_TEST(test_ondemand) {
        const char *g = group_new("ondemand");
        StepShared *sh = test_shared_new(sizeof(StepShared));
        TestCreds member = test_creds_member();

        test_wait_ok(test_fork_as(&member, child_make_ct1, sh));
        /* Two rollovers with no archived generation kept hot: 1 leaves the kernel. */
        for (int i = 0; i < 2; i++) {
                ck_assert_int_eq(test_store("rollover", g), 0);
                group_load(g, "--hot-window=0");
        }
        ck_assert_int_eq(test_helper_status_value(g, "generation 1 "), -1);
        ck_assert(test_request_key_install());

        test_wait_ok(test_fork_as(&member, child_ondemand, sh));
        ck_assert_msg(sh->r[0] == 0, "decrypt of an archived generation: %s", dkm_strerror(sh->r[0]));
        ck_assert_uint_eq(sh->stats[0].key_loads, 1);
        ck_assert_int_eq(sh->r[1], 0);
        ck_assert_int_eq(sh->r[2], 0); /* cached now: no keyctl */
        ck_assert_int_gt(test_helper_status_value(g, "generation 1 "), 0);
        test_request_key_remove();
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/* Removed from the group: a new process of that uid has no way in.                         */

static void child_removed_before(void *userdata) {
        StepShared *sh = userdata;

        encrypt_to(&sh->ct1, test_key_group("removed"), NULL, "member2 wrote this");
}

static void child_removed_after(void *userdata) {
        StepShared *sh = userdata;
        uint8_t buf[256];
        size_t n;

        sh->r[0] = dkm_encrypt(test_key_group("removed"), NULL, 0, "x", 1, buf, sizeof(buf), &n);
        sh->r[1] = decrypt_eq(&sh->ct1, NULL, "member2 wrote this");
}

static void gpasswd(const char *op, const char *user) {
        TestRun r;

        test_run(&r, NULL, 0, NULL,
                 (char *const[]){ (char *) "/usr/bin/gpasswd", (char *) op, (char *) user, TW.grp, NULL });
        ck_assert_msg(r.status == 0, "gpasswd %s %s: %s", op, user, r.err);
        test_run_free(&r);
}

START_TEST(test_member_removed) {
        const char *g = group_new("removed");
        StepShared *sh = test_shared_new(sizeof(StepShared));
        TestCreds c = test_creds_member2();
        gid_t groups[32];
        int n = ELEMENTSOF(groups);

        test_wait_ok(test_fork_as(&c, child_removed_before, sh));
        ck_assert_uint_gt(sh->ct1.size, 0);

        gpasswd("-d", TW.member2);
        group_load(g, "--hot-window=10"); /* unlinks the keyring from member2's user keyring */
        /* A new login of member2 gets the groups the database gives it now. */
        ck_assert_int_ge(getgrouplist(TW.member2, TW.member2_gid, groups, &n), 0);
        c.n_groups = 0;
        for (int i = 0; i < n && c.n_groups < (int) ELEMENTSOF(c.groups); i++) {
                ck_assert_uint_ne(groups[i], TW.gid);
                c.groups[c.n_groups++] = groups[i];
        }
        test_wait_ok(test_fork_as(&c, child_removed_after, sh));
        gpasswd("-a", TW.member2);
        ck_assert_int_eq(sh->r[0], -EACCES);
        ck_assert_int_eq(sh->r[1], -EACCES);
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/* The cache: one Secret per key, no system call when warm, a rollover seen at once.         */

typedef struct CacheShared {
        CacheStats cold, warm;
        uint64_t warm_keyctl;
        double cold_us, warm_us, baseline_us;
        int fork_ok;
        int forbidden_syscall; /* the number of the one made, if any */
        unsigned long seccomp_encrypt_ok, seccomp_decrypt_ok;
} CacheShared;

static double now_us(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec * 1e6 + (double) ts.tv_nsec / 1e3;
}

static volatile int *forbidden_syscall_seen;
static bool nrs_include_prctl_done;

static void on_sigsys(int sig, siginfo_t *si, void *unused) {
        *forbidden_syscall_seen = si->si_syscall;
        _exit(99);
}

/* Trap any of these system calls (the handler records which and exits 99): what a warm call
 * must never make. */
static void seccomp_forbid(const long *nrs, size_t n) {
        struct sock_filter f[64];
        size_t k = 0;

#if defined(__x86_64__)
        const uint32_t arch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
        const uint32_t arch = AUDIT_ARCH_AARCH64;
#else
#error "add this architecture's AUDIT_ARCH"
#endif
        ck_assert_uint_le(2 * n + 5, ELEMENTSOF(f));
        f[k++] = (struct sock_filter) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
        f[k++] = (struct sock_filter) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, arch, 1, 0);
        f[k++] = (struct sock_filter) BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
        f[k++] = (struct sock_filter) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
        for (size_t i = 0; i < n; i++) {
                f[k++] = (struct sock_filter) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t) nrs[i], 0, 1);
                f[k++] = (struct sock_filter) BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP);
        }
        f[k++] = (struct sock_filter) BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
        struct sock_fprog prog = { .len = (unsigned short) k, .filter = f };
        struct sigaction sa = { .sa_sigaction = on_sigsys, .sa_flags = SA_SIGINFO };
        ck_assert_int_eq(sigaction(SIGSYS, &sa, NULL), 0);
        /* Once: prctl is on the first list. */
        if (!nrs_include_prctl_done) {
                ck_assert_int_eq(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
                nrs_include_prctl_done = true;
        }
        ck_assert_int_eq(syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog), 0);
}

static void child_cache(void *userdata) {
        CacheShared *sh = userdata;
        const char *g = test_key_group("cache");
        _cleanup_secret_ Secret *k = NULL;
        uint8_t ct[256], pt[256] = {}, id[16] = {};
        size_t n, m;
        double t;
        Blob a;
        pid_t pid;

        t = now_us();
        encrypt_to(&a, g, "c", "cached");
        sh->cold_us = now_us() - t;
        ck_assert_int_eq(decrypt_eq(&a, "c", "cached"), 0);
        cache_get_stats(&sh->cold);

        uint64_t calls = keyring_client_syscalls();
        for (int i = 0; i < 1000; i++) {
                encrypt_to(&a, g, "c", "cached");
                ck_assert_int_eq(decrypt_eq(&a, "c", "cached"), 0);
        }
        sh->warm_keyctl = keyring_client_syscalls() - calls;
        cache_get_stats(&sh->warm);

        /* Warm decryption of 64 bytes against the same AEAD without the cache. */
        ck_assert_int_eq(dkm_encrypt(g, NULL, 0, pt, 64, ct, sizeof(ct), &n), 0);
        t = now_us();
        for (int i = 0; i < 20000; i++)
                ck_assert_int_eq(dkm_decrypt(ct, n, NULL, 0, pt, sizeof(pt), &m), 0);
        sh->warm_us = (now_us() - t) / 20000;
        ck_assert_int_eq(crypt_keygen(&k), 0);
        ck_assert_int_eq(ciphertext_seal(CRYPT_ALG_XCHACHA20_POLY1305, id, 1, k, NULL, 0, pt, 64, ct, sizeof(ct), &n),
                         0);
        t = now_us();
        for (int i = 0; i < 20000; i++)
                ck_assert_int_eq(ciphertext_open(k, NULL, 0, ct, n, pt, sizeof(pt), &m), 0);
        sh->baseline_us = (now_us() - t) / 20000;
        k = secret_free(k); /* now: freeing secret memory is a system call */

        /* A child forked from a process with a warm cache uses it (the lock is reset). */
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0)
                _exit(decrypt_eq(&a, "c", "cached") == 0 ? 0 : 1);
        sh->fork_ok = test_wait(pid) == 0;

        /* Fresh timestamps, then no more key lookups, file reads, clock system calls, locked
         * allocations or privilege changes: anything of the kind kills the process. */
        dkm_cleanup();
        encrypt_to(&a, g, "c", "cached");
        ck_assert_int_eq(decrypt_eq(&a, "c", "cached"), 0);
        /* valgrind has no seccomp (ENOSYS), and a filter would trap its own system calls. */
        if (RUNNING_ON_VALGRIND)
                return;
        forbidden_syscall_seen = &sh->forbidden_syscall;
        static const long forbidden[] = {
                SYS_keyctl,     SYS_add_key, SYS_request_key,   SYS_openat,       SYS_read,   SYS_pread64,
                SYS_newfstatat, SYS_statx,   SYS_fstat,         SYS_mlock,        SYS_mlock2, SYS_munlock,
                SYS_mprotect,   SYS_prctl,   SYS_clock_gettime, SYS_gettimeofday,
#ifdef SYS_open
                SYS_open,
#endif
        };
        seccomp_forbid(forbidden, ELEMENTSOF(forbidden));
        for (int i = 0; i < 1000; i++) {
                int r = dkm_encrypt(g, "c", 1, "cached", 6, a.data, sizeof(a.data), &a.size);
                if (r == 0 && decrypt_eq(&a, "c", "cached") == 0)
                        sh->seccomp_encrypt_ok++;
        }
        /* Decryption needs no randomness either. */
        seccomp_forbid((const long[]){ SYS_getrandom }, 1);
        for (int i = 0; i < 1000; i++)
                if (decrypt_eq(&a, "c", "cached") == 0)
                        sh->seccomp_decrypt_ok++;
}

static void child_rollover_next_call(void *userdata) {
        StepShared *sh = userdata;
        const char *g = test_key_group("cache");

        encrypt_to(&sh->ct1, g, NULL, "one");
        sh->gen[0] = generation_of(&sh->ct1);
        cache_get_stats(&sh->stats[0]);
        child_done(sh, 1);
        child_wait_step(sh, 1);
        /* One call, no waiting: the loaded pointer's epoch bump is seen by the next call. */
        encrypt_to(&sh->ct2, g, NULL, "two");
        sh->gen[1] = generation_of(&sh->ct2);
        cache_get_stats(&sh->stats[1]);
        sh->r[0] = decrypt_eq(&sh->ct1, NULL, "one");
        child_done(sh, 2);
}

START_TEST(test_cache) {
        const char *g = group_new("cache");
        CacheShared *sh = test_shared_new(sizeof(CacheShared));
        StepShared *st = test_shared_new(sizeof(StepShared));
        TestCreds member = test_creds_member();
        pid_t pid;
        int status;

        pid = test_fork_as(&member, child_cache, sh);
        status = test_wait(pid);
        ck_assert_msg(status == 0, "cache child: status %d; system call %d made on the warm path", status,
                      sh->forbidden_syscall);
        ck_assert_uint_eq(sh->cold.key_loads, 1);
        ck_assert_uint_eq(sh->cold.keys, 1);
        ck_assert_uint_eq(sh->warm_keyctl, 0);
        ck_assert_uint_eq(sh->warm.key_loads, 1); /* the same Secret, 2000 calls later */
        ck_assert_uint_eq(sh->warm.validations, sh->cold.validations);
        ck_assert(sh->fork_ok);
        if (!RUNNING_ON_VALGRIND) {
                ck_assert_uint_eq(sh->seccomp_encrypt_ok, 1000);
                ck_assert_uint_eq(sh->seccomp_decrypt_ok, 1000);
        }
        fprintf(stderr,
                "cache: cold encrypt (lookup + key load) %.1f us; warm decrypt 64 B %.2f us; "
                "same AEAD without libdkm %.2f us\n",
                sh->cold_us, sh->warm_us, sh->baseline_us);
        /* About one AEAD: generous, for sanitizer builds on a noisy machine. */
        ck_assert_msg(sh->warm_us < 10 * sh->baseline_us + 5.0, "warm decrypt %.2f us vs AEAD %.2f us", sh->warm_us,
                      sh->baseline_us);

        pid = test_fork_as(&member, child_rollover_next_call, st);
        parent_step(st, 0);
        rollover(g);
        parent_step(st, 1);
        test_wait_ok(pid);
        ck_assert_uint_eq(st->gen[0], 1);
        ck_assert_uint_eq(st->gen[1], 2);
        ck_assert_uint_eq(st->stats[1].key_loads, st->stats[0].key_loads + 1);
        ck_assert_uint_gt(st->stats[1].validations, st->stats[0].validations);
        ck_assert_int_eq(st->r[0], 0);
}
END_TEST

/* Unloaded and loaded again: the cached keys' serials die with the old keyring; the process
 * notices both changes at its next call and finds the new keyring. */
static void child_unload(void *userdata) {
        StepShared *sh = userdata;
        const char *g = test_key_group("unload");
        uint8_t buf[256];
        size_t n;

        encrypt_to(&sh->ct1, g, NULL, "before");
        child_done(sh, 1);
        child_wait_step(sh, 1); /* unloaded */
        sh->r[0] = dkm_encrypt(g, NULL, 0, "x", 1, buf, sizeof(buf), &n);
        sh->r[1] = decrypt_eq(&sh->ct1, NULL, "before");
        child_done(sh, 2);
        child_wait_step(sh, 2); /* loaded again */
        sh->r[2] = decrypt_eq(&sh->ct1, NULL, "before");
        encrypt_to(&sh->ct2, g, NULL, "after");
        sh->gen[0] = generation_of(&sh->ct2);
        child_done(sh, 3);
}

START_TEST(test_unload_reload) {
        const char *g = group_new("unload");
        StepShared *sh = test_shared_new(sizeof(StepShared));
        TestCreds member = test_creds_member();
        TestRun r;
        pid_t pid;

        pid = test_fork_as(&member, child_unload, sh);
        parent_step(sh, 0);
        test_run(&r, NULL, 0, NULL, (char *const[]){ (char *) TW.helper, (char *) "unload", (char *) g, NULL });
        ck_assert_int_eq(r.status, 0);
        test_run_free(&r);
        parent_step(sh, 1);
        group_load(g, "--hot-window=10");
        parent_step(sh, 2);
        test_wait_ok(pid);
        ck_assert_int_eq(sh->r[0], -ENOKEY);
        ck_assert_int_eq(sh->r[1], -ENOKEY);
        ck_assert_int_eq(sh->r[2], 0);
        ck_assert_uint_eq(sh->gen[0], 1);
}
END_TEST

/* Kernel timeouts (on-demand and break-glass keys) are noticed within the validation interval,
 * with no epoch bump to help. */
static void child_ttl(void *userdata) {
        StepShared *sh = userdata;
        const char *g = test_key_group("ttl");
        uint8_t buf[256];
        size_t n;

        encrypt_to(&sh->ct1, g, NULL, "short-lived");
        child_done(sh, 1);
        child_wait_step(sh, 1);
        sh->r[0] = decrypt_eq(&sh->ct1, NULL, "short-lived"); /* cached, within the interval */
        usleep((CACHE_TTL_MSEC + 1200) * 1000);
        sh->r[1] = decrypt_eq(&sh->ct1, NULL, "short-lived");
        sh->r[2] = dkm_encrypt(g, NULL, 0, "x", 1, buf, sizeof(buf), &n);
        child_done(sh, 2);
}

START_TEST(test_kernel_timeout) {
        const char *g = group_new("ttl");
        StepShared *sh = test_shared_new(sizeof(StepShared));
        TestCreds member = test_creds_member();
        long serial = test_helper_status_value(g, "generation 1 ");
        pid_t pid;

        ck_assert_int_gt(serial, 0);
        pid = test_fork_as(&member, child_ttl, sh);
        parent_step(sh, 0);
        /* As the key's owner: what the helper does for keys loaded on demand. */
        ck_assert_int_eq(keyctl_set_timeout((key_serial_t) serial, 1), 0);
        parent_step(sh, 1);
        test_wait_ok(pid);
        ck_assert_int_eq(sh->r[0], 0);
        ck_assert_msg(sh->r[1] == -EKEYEXPIRED, "decrypt after expiry: %s", dkm_strerror(sh->r[1]));
        ck_assert_int_eq(sh->r[2], -EKEYEXPIRED);
        ck_assert_ptr_nonnull(strstr(dkm_strerror(sh->r[1]), "expired"));
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/* Key bytes in memory: only in live Secret pages, nowhere after dkm_cleanup().              */

typedef struct MemShared {
        uint8_t mask[KEYRING_KEY_BYTES], masked[KEYRING_KEY_BYTES]; /* the key is mask ^ masked */
        int dumpable_before, dumpable_after;
        size_t hits_outside, hits_inside, hits_after_cleanup, regions, bytes;
        size_t keys_after_cleanup;
} MemShared;

typedef struct Range {
        uintptr_t start, end;
} Range;

typedef struct Ranges {
        Range r[64];
        size_t n;
} Ranges;

static void collect_secret(const void *p, size_t size, void *userdata) {
        Ranges *rs = userdata;

        if (rs->n < ELEMENTSOF(rs->r))
                rs->r[rs->n++] = (Range){ (uintptr_t) p, (uintptr_t) p + size };
}

static void scan_buffer(MemShared *sh, const uint8_t *buf, size_t size, uintptr_t at, const Ranges *secrets,
                        size_t *outside, size_t *inside) {
        for (size_t i = 0; i + KEYRING_KEY_BYTES <= size; i++) {
                size_t j = 0;
                bool in = false;

                while (j < KEYRING_KEY_BYTES && (uint8_t) (buf[i + j] ^ sh->mask[j]) == sh->masked[j])
                        j++;
                if (j < KEYRING_KEY_BYTES)
                        continue;
                for (size_t k = 0; secrets && k < secrets->n; k++)
                        if (at + i >= secrets->r[k].start && at + i + j <= secrets->r[k].end)
                                in = true;
                (*(in ? inside : outside))++;
        }
}

/* Look for the key in every resident page of every readable and writable mapping, through
 * /proc/self/mem (no fault on odd pages). Pages never touched cannot hold it, and skipping
 * them (mincore) keeps huge reservations such as ASan's shadow cheap. The key itself never
 * exists outside the cache: the needle is kept masked and compared byte by byte. */
static void scan_memory(MemShared *sh, int mem_fd, const Ranges *secrets, size_t *ret_outside, size_t *ret_inside) {
        const size_t page = (size_t) sysconf(_SC_PAGESIZE), window = (size_t) 64 << 20;
        uint8_t *buf = malloc(window + KEYRING_KEY_BYTES), *vec = malloc(window / page);
        char line[512];
        FILE *maps = fopen("/proc/self/maps", "re");

        ck_assert_ptr_nonnull(buf);
        ck_assert_ptr_nonnull(vec);
        ck_assert_ptr_nonnull(maps);
        *ret_outside = *ret_inside = 0;
        while (fgets(line, sizeof(line), maps)) {
                unsigned long start, end;
                char perms[8];

                if (sscanf(line, "%lx-%lx %7s", &start, &end, perms) != 3 || perms[0] != 'r' || perms[1] != 'w')
                        continue;
                sh->regions++;
                for (uintptr_t w = start; w < end; w += window) {
                        size_t len = MIN((size_t) (end - w), window), pages = len / page;

                        if (mincore((void *) w, len, vec) < 0)
                                continue;
                        for (size_t p = 0; p < pages;) {
                                size_t q = p;
                                ssize_t got;

                                while (q < pages && (vec[q] & 1))
                                        q++;
                                if (q == p) {
                                        p++;
                                        continue;
                                }
                                /* The run [p, q); at the window's end a key's length more, so a
                                 * key across two windows is still seen. */
                                got = pread(mem_fd, buf,
                                            (q - p) * page + (q == pages && w + len < end ? KEYRING_KEY_BYTES - 1 : 0),
                                            (off_t) (w + p * page));
                                if (got > 0) {
                                        sh->bytes += (size_t) got;
                                        scan_buffer(sh, buf, (size_t) got, w + p * page, secrets, ret_outside,
                                                    ret_inside);
                                        /* buf is in a mapping of its own, which may come later
                                         * in the scan (it does under valgrind, whose heap grows
                                         * upwards): the key copied into it must not be found there. */
                                        explicit_bzero(buf, (size_t) got);
                                }
                                p = q;
                        }
                }
        }
        fclose(maps);
        free(vec);
        free(buf);
}

static void child_memory(void *userdata) {
        MemShared *sh = userdata;
        const char *g = test_key_group("mem");
        Ranges secrets = {};
        CacheStats st;
        int mem_fd;
        Blob a;

        /* Open our own memory while we may (a non-dumpable process's /proc files are root's). */
        ck_assert_int_eq(prctl(PR_SET_DUMPABLE, 1), 0);
        sh->dumpable_before = prctl(PR_GET_DUMPABLE);
        mem_fd = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(mem_fd, 0);

        encrypt_to(&a, g, "m", "memory");
        ck_assert_int_eq(decrypt_eq(&a, "m", "memory"), 0);
        ck_assert_int_eq(dkm_rewrap(a.data, a.size, "m", 1, a.data + 2048, 2048, &a.size), 0);
        stream_roundtrip(g, 100000);
        sh->dumpable_after = prctl(PR_GET_DUMPABLE);

        cache_foreach_secret(collect_secret, &secrets);
        ck_assert_uint_eq(secrets.n, 1);
        scan_memory(sh, mem_fd, &secrets, &sh->hits_outside, &sh->hits_inside);

        dkm_cleanup();
        cache_get_stats(&st);
        sh->keys_after_cleanup = st.keys;
        size_t inside;
        scan_memory(sh, mem_fd, NULL, &sh->hits_after_cleanup, &inside);
        close(mem_fd);
}

START_TEST(test_memory) {
        MemShared *sh = test_shared_new(sizeof(MemShared));
        TestCreds member = test_creds_member();
        const char *g = test_key_group("mem");
        uint8_t id[KEYRING_GROUP_ID_BYTES];
        TestRun r;

        /* Loaded straight through the helper with a key we know, which is then wiped here:
         * the member child forked below inherits nothing of it but the masked copy. */
        {
                _cleanup_keyring_manifest_ KeyringManifest *m = NULL;
                _cleanup_secret_ Secret *key = NULL, *text = NULL;

                crypt_random(id, sizeof(id));
                crypt_random(sh->mask, sizeof(sh->mask));
                ck_assert_int_eq(crypt_keygen(&key), 0);
                for (size_t i = 0; i < KEYRING_KEY_BYTES; i++)
                        sh->masked[i] = key->data[i] ^ sh->mask[i];
                ck_assert_int_eq(keyring_manifest_new(g, id, TW.gid, CRYPT_ALG_XCHACHA20_POLY1305, &m), 0);
                ck_assert_int_eq(keyring_manifest_add_member(m, TW.member_uid), 0);
                m->active = 1;
                ck_assert_int_eq(keyring_manifest_add_generation(m, 1, KEYRING_GEN_ACTIVE, key), 0);
                ck_assert_int_eq(keyring_manifest_format(m, &text), 0);
                test_run(&r, text->data, text->size, NULL,
                         (char *const[]){ (char *) TW.helper, (char *) "load", NULL });
                ck_assert_msg(r.status == 0, "helper load: %s", r.err);
                test_run_free(&r);
        }

        test_wait_ok(test_fork_as(&member, child_memory, sh));
        ck_assert_int_eq(sh->dumpable_before, 1);
        ck_assert_int_eq(sh->dumpable_after, 0);
        ck_assert_uint_gt(sh->regions, 3);
        /* The scanner works: it finds the key where it lives. */
        ck_assert_uint_eq(sh->hits_inside, 1);
        ck_assert_msg(sh->hits_outside == 0, "key bytes found %zu time(s) outside secret memory", sh->hits_outside);
        ck_assert_uint_eq(sh->keys_after_cleanup, 0);
        ck_assert_msg(sh->hits_after_cleanup == 0, "key bytes found %zu time(s) after dkm_cleanup()",
                      sh->hits_after_cleanup);
        fprintf(stderr, "memory: scanned %zu rw regions, %zu MiB, key only inside its Secret\n", sh->regions,
                sh->bytes >> 20);
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/* File descriptors.                                                                         */

static int memfd_of(const void *data, size_t size) {
        int fd = memfd_create("dkmt", MFD_CLOEXEC);

        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(loop_write(fd, data, size), 0);
        ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
        return fd;
}

static uint8_t *memfd_contents(int fd, size_t *ret_size) {
        off_t size = lseek(fd, 0, SEEK_END);
        uint8_t *p = malloc((size_t) size + 1);

        ck_assert_ptr_nonnull(p);
        ck_assert_int_eq(pread(fd, p, (size_t) size, 0), size);
        *ret_size = (size_t) size;
        return p;
}

/* Run op(in → a new memfd) and return the output's contents. */
static int fd_op(int (*op)(int, int, const void *, size_t), const void *in, size_t in_size, const char *ad,
                 uint8_t **ret, size_t *ret_size) {
        int fin = memfd_of(in, in_size), fout = memfd_of(NULL, 0);
        int r = op(fin, fout, ad, ad ? strlen(ad) : 0);

        *ret = memfd_contents(fout, ret_size);
        close(fin);
        close(fout);
        return r;
}

static int encrypt_fd_fd(int in, int out, const void *ad, size_t ad_len) {
        return dkm_encrypt_fd(test_key_group("fd"), in, out, ad, ad_len);
}

static void child_fd(void *userdata) {
        const size_t size = 300000;
        _cleanup_free_ uint8_t *pt = malloc(size), *ct = NULL, *back = NULL, *rw = NULL, *cut = NULL;
        size_t ct_size, back_size, rw_size, cut_size;
        dkm_info_t info;
        Blob one;

        for (size_t i = 0; i < size; i++)
                pt[i] = (uint8_t) (i ^ (i >> 8));
        ck_assert_int_eq(fd_op(encrypt_fd_fd, pt, size, "fd-ad", &ct, &ct_size), 0);
        ck_assert_int_eq(dkm_ciphertext_info(ct, ct_size, &info), 0);
        ck_assert_int_eq(info.kind, DKM_KIND_STREAM);
        ck_assert_int_eq(fd_op(dkm_decrypt_fd, ct, ct_size, "fd-ad", &back, &back_size), 0);
        ck_assert_uint_eq(back_size, size);
        ck_assert(memcmp(back, pt, size) == 0);
        free(back), back = NULL;
        ck_assert_int_eq(fd_op(dkm_decrypt_fd, ct, ct_size, "other-ad", &back, &back_size), -EBADMSG);
        free(back), back = NULL;

        ck_assert_int_eq(fd_op(dkm_rewrap_fd, ct, ct_size, "fd-ad", &rw, &rw_size), 0);
        ck_assert_uint_eq(rw_size, ct_size);
        ck_assert(memcmp(rw, ct, 64) != 0); /* a new salt */
        ck_assert_int_eq(fd_op(dkm_decrypt_fd, rw, rw_size, "fd-ad", &back, &back_size), 0);
        ck_assert(back_size == size && memcmp(back, pt, size) == 0);
        free(back), back = NULL;

        /* Cut after two whole chunks: truncated. */
        ck_assert_int_eq(fd_op(dkm_decrypt_fd, ct, 64 + 2 * 65552, "fd-ad", &cut, &cut_size), -EPIPE);
        free(cut), cut = NULL;
        ck_assert_int_eq(fd_op(dkm_decrypt_fd, ct, 64, "fd-ad", &cut, &cut_size), -EPIPE);
        free(cut), cut = NULL;
        ck_assert_int_eq(fd_op(dkm_rewrap_fd, ct, 64, "fd-ad", &cut, &cut_size), -EPIPE);
        free(cut), cut = NULL;
        ck_assert_int_eq(fd_op(dkm_decrypt_fd, ct, 0, NULL, &cut, &cut_size), -ENOMSG);
        ck_assert_uint_eq(cut_size, 0);

        /* One-shot through the same calls: nothing written unless it authenticates. */
        encrypt_to(&one, test_key_group("fd"), "fd-ad", "one-shot via fd");
        ck_assert_int_eq(fd_op(dkm_decrypt_fd, one.data, one.size, "fd-ad", &back, &back_size), 0);
        ck_assert(back_size == 15 && memcmp(back, "one-shot via fd", 15) == 0);
        free(back), back = NULL;
        ck_assert_int_eq(fd_op(dkm_decrypt_fd, one.data, one.size - 1, "fd-ad", &back, &back_size), -EBADMSG);
        ck_assert_uint_eq(back_size, 0);
        free(back), back = NULL;
        ck_assert_int_eq(fd_op(dkm_rewrap_fd, one.data, one.size, "fd-ad", &back, &back_size), 0);
        ck_assert_uint_eq(back_size, one.size);
        memcpy(one.data, back, back_size);
        free(back), back = NULL;
        ck_assert_int_eq(decrypt_eq(&one, "fd-ad", "one-shot via fd"), 0);
}

START_TEST(test_fd) {
        TestCreds member = test_creds_member();

        group_new("fd");
        test_wait_ok(test_fork_as(&member, child_fd, NULL));
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/* Valgrind memcheck over the docs example and the CLI, as a member.                         */

START_TEST(test_valgrind) {
        const char *g = group_new("valg"), *example = getenv("DKM_EXAMPLE"), *cli = getenv("DKM_CLI");
        /* Where valgrind cannot run (tests/meson.build says why), the same programs run bare. */
        bool valgrind = !getenv("DKM_NO_VALGRIND");
        TestCreds member = test_creds_member();
        const size_t size = 200000;
        _cleanup_free_ uint8_t *pt = malloc(size);
        _cleanup_free_ char *ct = NULL;
        size_t ct_size;
        TestRun r;

#define VG(...)                                                                                                        \
        (valgrind ? (char *const[]){ (char *) "/usr/bin/valgrind", (char *) "--quiet", (char *) "--error-exitcode=66", \
                                     (char *) "--leak-check=full", (char *) "--show-leak-kinds=definite,indirect",     \
                                     (char *) "--errors-for-leak-kinds=definite,indirect", __VA_ARGS__, NULL }         \
                  : (char *const[]){ __VA_ARGS__, NULL })

        ck_assert_ptr_nonnull(example);
        ck_assert_ptr_nonnull(cli);
        ck_assert(!valgrind || access("/usr/bin/valgrind", X_OK) == 0);
        test_run(&r, NULL, 0, &member, VG((char *) example, (char *) g));
        ck_assert_msg(r.status == 0, "example: status %d: %s", r.status, r.err);
        ck_assert_ptr_nonnull(strstr((const char *) r.out, "round trip ok"));
        test_run_free(&r);

        for (size_t i = 0; i < size; i++)
                pt[i] = (uint8_t) (i * 13);
        test_run(&r, pt, size, &member,
                 VG((char *) cli, (char *) "encrypt", (char *) "--stream", (char *) "-g", (char *) g));
        ck_assert_msg(r.status == 0, "dkm encrypt: status %d: %s", r.status, r.err);
        ct = (char *) r.out;
        ct_size = r.out_size;
        r.out = NULL;
        test_run(&r, ct, ct_size, &member, VG((char *) cli, (char *) "decrypt"));
        ck_assert_msg(r.status == 0, "dkm decrypt: status %d: %s", r.status, r.err);
        ck_assert(r.out_size == size && memcmp(r.out, pt, size) == 0);
        test_run_free(&r);
        /* And the failure paths. */
        ct[100] ^= 1;
        test_run(&r, ct, ct_size, &member, VG((char *) cli, (char *) "decrypt"));
        ck_assert_msg(r.status == 7, "dkm decrypt of a damaged stream: status %d: %s", r.status, r.err);
        test_run_free(&r);
#undef VG
}
END_TEST

static Suite *libdkm_suite(bool integration) {
        Suite *s = suite_create("libdkm");
        TCase *tc = tcase_create("pure");

        tcase_add_test(tc, test_api_pure);
        tcase_add_test(tc, test_header_without_key);
        tcase_add_test(tc, test_exported_symbols);
        suite_add_tcase(s, tc);

        if (integration) {
                tc = tcase_create("kernel");
                tcase_set_timeout(tc, 300);
                tcase_add_test(tc, test_member_roundtrip);
                tcase_add_test(tc, test_nonmember);
                tcase_add_test(tc, test_tamper);
                tcase_add_test(tc, test_rollover_concurrent);
                tcase_add_test(tc, test_retire);
                tcase_add_test(tc, test_ondemand);
                tcase_add_test(tc, test_member_removed);
                tcase_add_test(tc, test_cache);
                tcase_add_test(tc, test_unload_reload);
                tcase_add_test(tc, test_kernel_timeout);
                tcase_add_test(tc, test_memory);
                tcase_add_test(tc, test_fd);
                tcase_add_test(tc, test_valgrind);
                suite_add_tcase(s, tc);
        }
        return s;
}

int main(void) {
        return test_world_main(libdkm_suite, key_group_tags);
}
