/* SPDX-License-Identifier: MIT */
/* Tests for the crypto core: known answers, tamper rejection, wrapping, derivation. */
#include <check.h>
#include <errno.h>
#include <stdio.h>

#include "crypto.h"
#include "test-helpers.h"

/* draft-irtf-cfrg-xchacha-03, appendix A.3.1 */
static const char *xc_key = "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f";
static const char *xc_nonce = "404142434445464748494a4b4c4d4e4f5051525354555657";
static const char *xc_ad = "50515253c0c1c2c3c4c5c6c7";
static const char *xc_pt = "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
static const char *xc_ct =
        "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb"
        "731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452"
        "2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9"
        "21f9664c97637da9768812f615c68b13b52e"
        "c0875924c1c7987947deafd8780acf49";

/* McGrew & Viega GCM spec, test case 16 (AES-256, 60-byte plaintext, 20-byte AAD) */
static const char *gcm_key = "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308";
static const char *gcm_nonce = "cafebabefacedbaddecaf888";
static const char *gcm_ad = "feedfacedeadbeeffeedfacedeadbeefabaddad2";
static const char *gcm_pt =
        "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
        "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39";
static const char *gcm_ct =
        "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
        "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
        "76fc6ece0f4e1768cddf8853bb2d551b";

static Secret *key_from_hex(const char *hex) {
        size_t n;
        uint8_t *b = test_unhex(hex, &n);
        Secret *s;

        ck_assert_int_eq(secret_new_copy(b, n, &s), 0);
        free(b);
        return s;
}

static void check_kat(CryptAlg alg, const char *key_hex, const char *nonce_hex, const char *ad_hex,
                      const uint8_t *pt, size_t pt_size, const char *ct_hex) {
        _cleanup_secret_ Secret *key = key_from_hex(key_hex);
        size_t nn, an, cn;
        _cleanup_free_ uint8_t *nonce = test_unhex(nonce_hex, &nn);
        _cleanup_free_ uint8_t *ad = test_unhex(ad_hex, &an);
        _cleanup_free_ uint8_t *want = test_unhex(ct_hex, &cn);
        _cleanup_free_ uint8_t *c = malloc(pt_size + CRYPT_TAG_BYTES);
        _cleanup_free_ uint8_t *m = malloc(pt_size + 1);

        ck_assert_uint_eq(nn, crypt_alg_nonce_bytes(alg));
        ck_assert_uint_eq(cn, pt_size + CRYPT_TAG_BYTES);
        ck_assert_int_eq(crypt_aead_seal(alg, key, nonce, ad, an, pt, pt_size, c), 0);
        ck_assert_mem_eq(c, want, cn);
        ck_assert_int_eq(crypt_aead_open(alg, key, nonce, ad, an, want, cn, m), 0);
        ck_assert_mem_eq(m, pt, pt_size);
}

START_TEST(test_xchacha_kat) {
        check_kat(CRYPT_ALG_XCHACHA20_POLY1305, xc_key, xc_nonce, xc_ad,
                  (const uint8_t *) xc_pt, strlen(xc_pt), xc_ct);
}
END_TEST

START_TEST(test_aesgcm_kat) {
        size_t pn;
        _cleanup_free_ uint8_t *pt = test_unhex(gcm_pt, &pn);

        if (crypt_alg_check(CRYPT_ALG_AES256_GCM) == -EOPNOTSUPP) {
                /* The refusal is the behaviour under test on CPUs without AES-NI. */
                uint8_t c[64 + 16], n[12] = { 0 };
                _cleanup_secret_ Secret *key = key_from_hex(gcm_key);
                ck_assert_int_eq(crypt_aead_seal(CRYPT_ALG_AES256_GCM, key, n, NULL, 0, pt, pn, c), -EOPNOTSUPP);
                return;
        }
        check_kat(CRYPT_ALG_AES256_GCM, gcm_key, gcm_nonce, gcm_ad, pt, pn, gcm_ct);
}
END_TEST

/* Every single-bit flip anywhere in nonce, AD, ciphertext or tag must be rejected. */
static void check_bitflips(CryptAlg alg) {
        _cleanup_secret_ Secret *key = NULL;
        uint8_t nonce[CRYPT_NONCE_MAX_BYTES], ad[20], m[48], c[48 + CRYPT_TAG_BYTES], out[48];
        size_t nn = crypt_alg_nonce_bytes(alg);

        if (crypt_alg_check(alg) < 0)
                return;
        ck_assert_int_eq(crypt_keygen(&key), 0);
        crypt_random(nonce, sizeof(nonce));
        crypt_random(ad, sizeof(ad));
        crypt_random(m, sizeof(m));
        ck_assert_int_eq(crypt_aead_seal(alg, key, nonce, ad, sizeof(ad), m, sizeof(m), c), 0);
        ck_assert_int_eq(crypt_aead_open(alg, key, nonce, ad, sizeof(ad), c, sizeof(c), out), 0);
        ck_assert_mem_eq(out, m, sizeof(m));

        for (size_t bit = 0; bit < nn * 8; bit++) {
                nonce[bit / 8] ^= (uint8_t) (1u << (bit % 8));
                ck_assert_int_eq(crypt_aead_open(alg, key, nonce, ad, sizeof(ad), c, sizeof(c), out), -EBADMSG);
                nonce[bit / 8] ^= (uint8_t) (1u << (bit % 8));
        }
        for (size_t bit = 0; bit < sizeof(ad) * 8; bit++) {
                ad[bit / 8] ^= (uint8_t) (1u << (bit % 8));
                ck_assert_int_eq(crypt_aead_open(alg, key, nonce, ad, sizeof(ad), c, sizeof(c), out), -EBADMSG);
                ad[bit / 8] ^= (uint8_t) (1u << (bit % 8));
        }
        for (size_t bit = 0; bit < sizeof(c) * 8; bit++) {
                c[bit / 8] ^= (uint8_t) (1u << (bit % 8));
                memset(out, 0xAA, sizeof(out));
                ck_assert_int_eq(crypt_aead_open(alg, key, nonce, ad, sizeof(ad), c, sizeof(c), out), -EBADMSG);
                /* no unauthenticated plaintext is left behind */
                for (size_t i = 0; i < sizeof(out); i++)
                        ck_assert_uint_eq(out[i], 0);
                c[bit / 8] ^= (uint8_t) (1u << (bit % 8));
        }
        ck_assert_int_eq(crypt_aead_open(alg, key, nonce, ad, sizeof(ad), c, sizeof(c) - 1, out), -EBADMSG);
        ck_assert_int_eq(crypt_aead_open(alg, key, nonce, ad, sizeof(ad), c, CRYPT_TAG_BYTES - 1, out), -EBADMSG);
}

START_TEST(test_bitflips_xchacha) {
        check_bitflips(CRYPT_ALG_XCHACHA20_POLY1305);
}
END_TEST

START_TEST(test_bitflips_aesgcm) {
        check_bitflips(CRYPT_ALG_AES256_GCM);
}
END_TEST

START_TEST(test_wrong_key) {
        _cleanup_secret_ Secret *k1 = NULL, *k2 = NULL;
        uint8_t nonce[24] = { 1 }, c[10 + 16], m[10];

        ck_assert_int_eq(crypt_keygen(&k1), 0);
        ck_assert_int_eq(crypt_keygen(&k2), 0);
        ck_assert(!secret_equal(k1, k2));
        ck_assert_int_eq(crypt_aead_seal(CRYPT_ALG_XCHACHA20_POLY1305, k1, nonce, NULL, 0, "0123456789", 10, c), 0);
        ck_assert_int_eq(crypt_aead_open(CRYPT_ALG_XCHACHA20_POLY1305, k2, nonce, NULL, 0, c, sizeof(c), m), -EBADMSG);
}
END_TEST

START_TEST(test_bad_arguments) {
        _cleanup_secret_ Secret *short_key = NULL;
        uint8_t nonce[24] = { 0 }, c[16 + 1], m[1] = { 0 };
        CryptAlg alg;

        ck_assert_int_eq(secret_new(16, &short_key), 0);
        ck_assert_int_eq(crypt_aead_seal(CRYPT_ALG_XCHACHA20_POLY1305, short_key, nonce, NULL, 0, m, 1, c), -EINVAL);
        ck_assert_int_eq(crypt_aead_seal((CryptAlg) 77, NULL, nonce, NULL, 0, m, 1, c), -EINVAL);
        ck_assert_int_eq(crypt_alg_check((CryptAlg) 77), -EPROTONOSUPPORT);
        ck_assert_uint_eq(crypt_alg_nonce_bytes((CryptAlg) 77), 0);
        ck_assert_int_eq(crypt_alg_from_string("rot13", &alg), -EPROTONOSUPPORT);
        ck_assert_int_eq(crypt_alg_from_string("aes256-gcm", &alg), 0);
        ck_assert_int_eq(alg, CRYPT_ALG_AES256_GCM);
        ck_assert_int_eq(crypt_alg_from_string("xchacha20-poly1305", &alg), 0);
        ck_assert_int_eq(alg, CRYPT_ALG_XCHACHA20_POLY1305);
        ck_assert_int_eq(secret_new(0, &short_key), -EINVAL);
}
END_TEST

START_TEST(test_wrap_binds_ad) {
        _cleanup_secret_ Secret *kek = NULL, *kek2 = NULL, *key = NULL, *out = NULL;
        uint8_t w[CRYPT_WRAPPED_KEY_BYTES];

        ck_assert_int_eq(crypt_keygen(&kek), 0);
        ck_assert_int_eq(crypt_keygen(&kek2), 0);
        ck_assert_int_eq(crypt_keygen(&key), 0);
        ck_assert_int_eq(crypt_wrap_key(kek, key, "group=a gen=1", 13, w), 0);
        /* the wrapped blob does not contain the key in the clear */
        ck_assert_ptr_null(memmem(w, sizeof(w), key->data, key->size));
        ck_assert_int_eq(crypt_unwrap_key(kek, w, "group=a gen=1", 13, &out), 0);
        ck_assert(secret_equal(out, key));
        out = secret_free(out);
        ck_assert_int_eq(crypt_unwrap_key(kek, w, "group=a gen=2", 13, &out), -EBADMSG);
        ck_assert_int_eq(crypt_unwrap_key(kek2, w, "group=a gen=1", 13, &out), -EBADMSG);
        ck_assert_ptr_null(out);
        for (size_t i = 0; i < sizeof(w); i++) {
                w[i] ^= 0x01;
                ck_assert_int_eq(crypt_unwrap_key(kek, w, "group=a gen=1", 13, &out), -EBADMSG);
                w[i] ^= 0x01;
        }
}
END_TEST

START_TEST(test_derive_subkey) {
        _cleanup_secret_ Secret *k = NULL, *a = NULL, *a2 = NULL, *b = NULL, *c = NULL;

        ck_assert_int_eq(crypt_keygen(&k), 0);
        ck_assert_int_eq(crypt_derive_subkey(k, "purpose-a", NULL, 0, &a), 0);
        ck_assert_int_eq(crypt_derive_subkey(k, "purpose-a", NULL, 0, &a2), 0);
        ck_assert_int_eq(crypt_derive_subkey(k, "purpose-b", NULL, 0, &b), 0);
        ck_assert_int_eq(crypt_derive_subkey(k, "purpose-a", "salt", 4, &c), 0);
        ck_assert(secret_equal(a, a2));
        ck_assert(!secret_equal(a, b));
        ck_assert(!secret_equal(a, c));
        ck_assert(!secret_equal(a, k));
}
END_TEST

START_TEST(test_derive_subkey_kat) {
        /* Fixed so that a change to the derivation (which would orphan every wrapped key) fails here. */
        _cleanup_secret_ Secret *k = key_from_hex(xc_key), *sub = NULL;
        size_t n;
        _cleanup_free_ uint8_t *want = test_unhex(
                "637832b617e2fbec0f03ab72bc28f0585a2b63fd415bce41b7897933087522e8", &n);

        ck_assert_int_eq(crypt_derive_subkey(k, "dkm test label", "salt", 4, &sub), 0);
        ck_assert_mem_eq(sub->data, want, n);
}
END_TEST

START_TEST(test_passphrase) {
        _cleanup_secret_ Secret *p = NULL, *k1 = NULL, *k2 = NULL, *k3 = NULL;
        uint8_t salt[CRYPT_PWHASH_SALT_BYTES] = { 1, 2, 3 };

        ck_assert_int_eq(secret_new_copy("correct horse", 13, &p), 0);
        ck_assert_int_eq(crypt_derive_from_passphrase(p, salt, 1, 8192 * 8, &k1), 0);
        ck_assert_int_eq(crypt_derive_from_passphrase(p, salt, 1, 8192 * 8, &k2), 0);
        ck_assert(secret_equal(k1, k2));
        salt[0] = 9;
        ck_assert_int_eq(crypt_derive_from_passphrase(p, salt, 1, 8192 * 8, &k3), 0);
        ck_assert(!secret_equal(k1, k3));
        ck_assert_int_eq(crypt_derive_from_passphrase(p, salt, 0, 8192 * 8, &k3), -EINVAL);
}
END_TEST

/* RFC 8032 section 7.1, TEST 1 (empty message). */
static const char *ed_seed = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
static const char *ed_public = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
static const char *ed_sig =
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46b"
        "d25bf5f0595bbe24655141438e7a100b";

START_TEST(test_sign_kat) {
        _cleanup_secret_ Secret *seed = key_from_hex(ed_seed), *sk = NULL;
        uint8_t pk[CRYPT_SIGN_PUBLIC_KEY_BYTES], sig[CRYPT_SIGN_BYTES];
        size_t n;
        _cleanup_free_ uint8_t *want_pk = test_unhex(ed_public, &n);
        _cleanup_free_ uint8_t *want_sig = test_unhex(ed_sig, &n);

        ck_assert_int_eq(crypt_sign_seed_keypair(seed, &sk, pk), 0);
        ck_assert_uint_eq(sk->size, CRYPT_SIGN_SECRET_KEY_BYTES);
        ck_assert_mem_eq(pk, want_pk, sizeof(pk));
        ck_assert_int_eq(crypt_sign_detached(sk, "", 0, sig), 0);
        ck_assert_mem_eq(sig, want_sig, sizeof(sig));
        ck_assert_int_eq(crypt_sign_verify(pk, "", 0, sig), 0);
}
END_TEST

START_TEST(test_sign_rejects) {
        _cleanup_secret_ Secret *seed = NULL, *seed2 = NULL, *sk = NULL, *sk2 = NULL;
        uint8_t pk[CRYPT_SIGN_PUBLIC_KEY_BYTES], pk2[CRYPT_SIGN_PUBLIC_KEY_BYTES], pk3[CRYPT_SIGN_PUBLIC_KEY_BYTES];
        uint8_t sig[CRYPT_SIGN_BYTES];
        char m[] = "seq=7 checkpoint";

        ck_assert_int_eq(crypt_sign_keypair(&seed, pk), 0);
        ck_assert_uint_eq(seed->size, CRYPT_SIGN_SEED_BYTES);
        ck_assert_int_eq(crypt_sign_seed_keypair(seed, &sk, pk3), 0);
        ck_assert_mem_eq(pk, pk3, sizeof(pk)); /* the stored seed gives back the same pair */
        ck_assert_int_eq(crypt_sign_keypair(&seed2, pk2), 0);
        ck_assert_int_eq(crypt_sign_seed_keypair(seed2, &sk2, pk2), 0);

        ck_assert_int_eq(crypt_sign_detached(sk, m, strlen(m), sig), 0);
        ck_assert_int_eq(crypt_sign_verify(pk, m, strlen(m), sig), 0);
        ck_assert_int_eq(crypt_sign_verify(pk2, m, strlen(m), sig), -EBADMSG);
        for (size_t i = 0; i < strlen(m); i++) {
                m[i] ^= 1;
                ck_assert_int_eq(crypt_sign_verify(pk, m, strlen(m), sig), -EBADMSG);
                m[i] ^= 1;
        }
        for (size_t i = 0; i < sizeof(sig); i++) {
                sig[i] ^= 0x80;
                ck_assert_int_eq(crypt_sign_verify(pk, m, strlen(m), sig), -EBADMSG);
                sig[i] ^= 0x80;
        }
        /* A seed is not a signing key: the sizes keep them apart. */
        ck_assert_int_eq(crypt_sign_detached(seed, m, strlen(m), sig), -EINVAL);
        ck_assert_int_eq(crypt_sign_seed_keypair(sk, NULL, pk3), -EINVAL);
}
END_TEST

static Suite *crypto_suite(void) {
        Suite *s = suite_create("crypto");
        TCase *tc = tcase_create("core");

        tcase_add_test(tc, test_xchacha_kat);
        tcase_add_test(tc, test_aesgcm_kat);
        tcase_add_test(tc, test_bitflips_xchacha);
        tcase_add_test(tc, test_bitflips_aesgcm);
        tcase_add_test(tc, test_wrong_key);
        tcase_add_test(tc, test_bad_arguments);
        tcase_add_test(tc, test_wrap_binds_ad);
        tcase_add_test(tc, test_derive_subkey);
        tcase_add_test(tc, test_derive_subkey_kat);
        tcase_add_test(tc, test_passphrase);
        tcase_add_test(tc, test_sign_kat);
        tcase_add_test(tc, test_sign_rejects);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        if (crypt_init() < 0)
                return EXIT_FAILURE;
        return test_run_suite(crypto_suite());
}
