/* SPDX-License-Identifier: MIT */
/* Tests for the TPM2 protector against real swtpm instances on loopback ports (this kernel has no
 * TPM), each test with a TPM of its own, started and stopped here. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_tctildr.h>

#include "protector.h"
#include "store.h"
#include "test-helpers.h"
#include "test-state.h"
#include "test-swtpm.h"

static void setup(void) {
        test_state_setup();
        test_swtpm_start(TS.base, "tpm");
}

static void teardown(void) {
        test_swtpm_stop();
        test_state_teardown();
}

/* Objects and sessions left loaded: with no resource manager they stay until the TPM restarts. */
static unsigned loaded_handles(void) {
        static const TPM2_HANDLE ranges[] = { TPM2_TRANSIENT_FIRST, TPM2_HMAC_SESSION_FIRST, TPM2_POLICY_SESSION_FIRST };
        unsigned n = 0;
        TestTpm t;

        test_tpm_open(&t);
        for (size_t i = 0; i < ELEMENTSOF(ranges); i++) {
                TPMS_CAPABILITY_DATA *cap = NULL;
                TPMI_YES_NO more;

                ck_assert_int_eq(Esys_GetCapability(t.esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_HANDLES,
                                                    ranges[i], TPM2_MAX_CAP_HANDLES, &more, &cap),
                                 TSS2_RC_SUCCESS);
                for (uint32_t j = 0; j < cap->data.handles.count; j++)
                        if ((cap->data.handles.handle[j] & 0xff000000) == (ranges[i] & 0xff000000))
                                n++;
                Esys_Free(cap);
        }
        test_tpm_close(&t);
        return n;
}

/* A store with a file protector "local", a group, and a tpm2 protector "tpm" on the PCRs given;
 * returns the group's generation 1 key for comparison. */
static Secret *make_store(const uint32_t *pcrs, size_t n_pcrs) {
        Store *s = NULL;
        StoreGroup *g = NULL;
        Secret *k = NULL;
        int r;

        ck_assert_int_eq(store_init(TS.sdir, NULL, &s), 0);
        ck_assert_int_eq(store_group_create(s, "mail", 1000, CRYPT_ALG_XCHACHA20_POLY1305, NULL, &g), 0);
        ck_assert_int_eq(store_generation_unwrap(s, g, 1, &k), 0);
        r = store_protector_add_tpm2(s, "tpm", pcrs, n_pcrs);
        ck_assert_msg(r == 0, "add-tpm2: %d %s", r, store_last_error(s));
        ck_assert(test_store_has_protector(s, "tpm", "tpm2"));
        store_group_free(g);
        store_free(s);
        return k;
}

/* store_protector_check()'s verdict on protector name of a locked store, and why. */
static StoreProtectorHealth check_health(const char *name, char *detail, size_t size) {
        _cleanup_store_ Store *s = NULL;
        StoreProtectorStatus *l = NULL;
        StoreProtectorHealth h = _STORE_PROTECTOR_HEALTH_MAX;
        size_t n = 0;

        ck_assert_int_eq(store_open(TS.sdir, &s), 0);
        ck_assert_int_eq(store_protector_check(s, NULL, &l, &n), 0);
        for (size_t i = 0; i < n; i++)
                if (strcmp(l[i].name, name) == 0) {
                        h = l[i].health;
                        snprintf(detail, size, "%s", l[i].detail);
                }
        free(l);
        return h;
}

START_TEST(test_unlock_through_tpm_alone) {
        _cleanup_secret_ Secret *k1 = make_store(NULL, 0), *k2 = NULL;
        _cleanup_store_ Store *s = NULL;
        _cleanup_store_group_ StoreGroup *g = NULL;
        char why[1024];
        int r;

        ck_assert_uint_eq(loaded_handles(), 0);
        test_state_remove_key_file();
        r = test_state_open_unlock(&s, why, sizeof(why));
        ck_assert_msg(r == 0, "unlock: %d %s", r, why);
        ck_assert_uint_eq(loaded_handles(), 0);
        ck_assert_int_eq(store_group_load(s, "mail", &g), 0);
        ck_assert_int_eq(store_generation_unwrap(s, g, 1, &k2), 0);
        ck_assert_int_eq(secret_equal(k1, k2), 1);
        ck_assert_int_eq(check_health("tpm", why, sizeof(why)), STORE_PROTECTOR_OK);
        ck_assert_uint_eq(loaded_handles(), 0);
}
END_TEST

START_TEST(test_pcr_mismatch) {
        static const uint32_t pcr16[] = { 16 };
        _cleanup_secret_ Secret *k1 = make_store(pcr16, 1), *k2 = NULL;
        _cleanup_store_group_ StoreGroup *g = NULL;
        Store *s = NULL;
        char why[1024];

        ck_assert_uint_eq(loaded_handles(), 0);
        test_state_remove_key_file();
        ck_assert_msg(test_state_open_unlock(&s, why, sizeof(why)) == 0, "%s", why);
        ck_assert_int_eq(store_group_load(s, "mail", &g), 0);
        ck_assert_int_eq(store_generation_unwrap(s, g, 1, &k2), 0);
        ck_assert_int_eq(secret_equal(k1, k2), 1);
        store_free(s);
        ck_assert_uint_eq(loaded_handles(), 0);

        /* Another PCR does not matter; PCR 16 (the debug PCR) does. */
        test_tpm_pcr_extend(ESYS_TR_PCR23);
        ck_assert_msg(test_state_open_unlock(&s, why, sizeof(why)) == 0, "%s", why);
        store_free(s);
        test_tpm_pcr_extend(ESYS_TR_PCR16);
        ck_assert_int_eq(test_state_open_unlock(&s, why, sizeof(why)), -ENOKEY);
        ck_assert_msg(strstr(why, "tpm: the TPM's PCRs 16 no longer match the protector's policy (PCR mismatch)"), "%s",
                      why);
        store_free(s);
        ck_assert_int_eq(check_health("tpm", why, sizeof(why)), STORE_PROTECTOR_PCR_MISMATCH);
        ck_assert_msg(strstr(why, "the TPM's PCRs 16 no longer match the protector's policy (PCR mismatch)"), "%s", why);
        /* The failed policy session is flushed too. */
        ck_assert_uint_eq(loaded_handles(), 0);
}
END_TEST

/* The sealed object was made under another TPM's storage seed: withdrawn, not unreachable. */
START_TEST(test_other_tpm) {
        _cleanup_store_ Store *s = NULL;
        char why[1024];

        secret_free(make_store(NULL, 0));
        test_state_remove_key_file();
        test_swtpm_stop();
        test_swtpm_start(TS.base, "other-tpm");
        ck_assert_int_eq(test_state_open_unlock(&s, why, sizeof(why)), -ENOKEY);
        ck_assert_msg(strstr(why, "tpm: the TPM cannot load the sealed key (made by another TPM, or the TPM was cleared: withdrawn)"),
                      "%s", why);
        ck_assert_int_eq(check_health("tpm", why, sizeof(why)), STORE_PROTECTOR_WITHDRAWN);
        ck_assert_msg(strstr(why, "made by another TPM, or the TPM was cleared"), "%s", why);
        ck_assert_uint_eq(loaded_handles(), 0);
}
END_TEST

START_TEST(test_unreachable) {
        Store *s = NULL;
        struct timespec a, b;
        char why[1024];

        secret_free(make_store(NULL, 0));
        test_state_remove_key_file();
        test_swtpm_stop();
        ck_assert_int_eq(clock_gettime(CLOCK_MONOTONIC, &a), 0);
        ck_assert_int_eq(test_state_open_unlock(&s, why, sizeof(why)), -ENOKEY);
        ck_assert_int_eq(clock_gettime(CLOCK_MONOTONIC, &b), 0);
        ck_assert_msg(strstr(why, "tpm: the TPM is unreachable (TCTI 'swtpm:host=127.0.0.1,port="), "%s", why);
        /* Refused at once: no waiting for a TPM that is not there. */
        ck_assert_int_lt(b.tv_sec - a.tv_sec, 3);
        store_free(s);
        ck_assert_int_eq(check_health("tpm", why, sizeof(why)), STORE_PROTECTOR_UNAVAILABLE);
        ck_assert_msg(strstr(why, "the TPM is unreachable"), "%s", why);

        /* A TCTI that names no device: also unreachable. */
        setenv("DKM_TPM2_TCTI", "device:/nonexistent/tpmrm0", 1);
        ck_assert_int_eq(test_state_open_unlock(&s, why, sizeof(why)), -ENOKEY);
        ck_assert_msg(strstr(why, "tpm: the TPM is unreachable (TCTI 'device:/nonexistent/tpmrm0'"), "%s", why);
        store_free(s);
}
END_TEST

START_TEST(test_add_refusals) {
        _cleanup_store_ Store *s = NULL;
        uint32_t many[25];

        ck_assert_int_eq(store_init(TS.sdir, NULL, &s), 0);
        ck_assert_int_eq(store_protector_add_tpm2(s, "tpm", (const uint32_t[]) { 24 }, 1), -EINVAL);
        ck_assert_msg(strstr(store_last_error(s), "PCR 24 does not exist"), "%s", store_last_error(s));
        ck_assert_int_eq(store_protector_add_tpm2(s, "tpm", (const uint32_t[]) { 7, 11, 7 }, 3), -EINVAL);
        ck_assert_msg(strstr(store_last_error(s), "PCR 7 is listed twice"), "%s", store_last_error(s));
        for (size_t i = 0; i < ELEMENTSOF(many); i++)
                many[i] = (uint32_t) i % 24;
        ck_assert_int_eq(store_protector_add_tpm2(s, "tpm", many, ELEMENTSOF(many)), -EINVAL);
        ck_assert_int_eq(store_protector_add_tpm2(s, "tpm", NULL, 1), -EINVAL);
        ck_assert(!test_store_has_protector(s, "tpm", "tpm2"));

        /* No TPM: -EHOSTDOWN, no protector file. */
        test_swtpm_stop();
        ck_assert_int_eq(store_protector_add_tpm2(s, "tpm", NULL, 0), -EHOSTDOWN);
        ck_assert_msg(strstr(store_last_error(s), "the TPM is unreachable"), "%s", store_last_error(s));
        ck_assert(!test_store_has_protector(s, "tpm", "tpm2"));
        test_swtpm_start(TS.base, "tpm2");
        /* Every sha256 PCR at once is a valid (if brittle) policy. */
        for (size_t i = 0; i < 24; i++)
                many[i] = (uint32_t) (23 - i);
        ck_assert_msg(store_protector_add_tpm2(s, "tpm", many, 24) == 0, "%s", store_last_error(s));
        ck_assert_uint_eq(loaded_handles(), 0);
}
END_TEST

/* The owner of the TPM unseals the protector key with tpm2-tss alone (the TCG SRK template, the
 * blobs from the file): P and the root key it unwraps are nowhere in the state dir, and the
 * file holds exactly the documented fields. */
START_TEST(test_file_holds_no_key) {
        static const char *const lines[] = { "format=", "name=", "type=", "pcrs=", "tpm2-public=", "tpm2-private=",
                                             "wrapped-root-key=", "checksum=" };
        _cleanup_store_ Store *s = NULL;
        _cleanup_secret_ Secret *key = NULL, *root = NULL;
        _cleanup_free_ char *data = NULL;
        char path[256], *line, *save = NULL;
        TPM2B_SENSITIVE_DATA *out = NULL;
        ESYS_TR primary, obj;
        TPM2B_PUBLIC pub = {}, srk = {
                .publicArea = {
                        .type = TPM2_ALG_ECC,
                        .nameAlg = TPM2_ALG_SHA256,
                        .objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                                            TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
                                            TPMA_OBJECT_NODA | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT,
                        .parameters.eccDetail = {
                                .symmetric = { .algorithm = TPM2_ALG_AES, .keyBits.aes = 128, .mode.aes = TPM2_ALG_CFB },
                                .scheme.scheme = TPM2_ALG_NULL,
                                .curveID = TPM2_ECC_NIST_P256,
                                .kdf.scheme = TPM2_ALG_NULL,
                        },
                },
        };
        TPM2B_PRIVATE priv = {};
        TPM2B_SENSITIVE_CREATE empty = {};
        TPM2B_DATA outside = {};
        TPML_PCR_SELECTION creation = {};
        KvError e = {};
        Protector p;
        size_t i = 0, off;
        TestTpm t;
        FILE *f;
        long size;

        secret_free(make_store(NULL, 0));
        snprintf(path, sizeof(path), "%s/protectors/tpm.protector", TS.sdir);
        f = fopen(path, "re");
        ck_assert_ptr_nonnull(f);
        ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
        size = ftell(f);
        rewind(f);
        data = calloc(1, (size_t) size + 1);
        ck_assert_ptr_nonnull(data);
        ck_assert_uint_eq(fread(data, 1, (size_t) size, f), (size_t) size);
        fclose(f);
        ck_assert_int_eq(protector_file_parse(data, (size_t) size, "tpm", &p, &e), 0);
        ck_assert_ptr_eq(p.ops, &protector_tpm2_ops);
        ck_assert_uint_eq(p.u.tpm2.pcr_mask, 0);
        for (line = strtok_r(data, "\n", &save); line; line = strtok_r(NULL, "\n", &save), i++) {
                ck_assert_uint_lt(i, ELEMENTSOF(lines));
                ck_assert_msg(strncmp(line, lines[i], strlen(lines[i])) == 0, "line %zu: %s", i + 1, line);
        }
        ck_assert_uint_eq(i, ELEMENTSOF(lines));

        off = 0;
        ck_assert_int_eq(Tss2_MU_TPM2B_PUBLIC_Unmarshal(p.u.tpm2.pub, p.u.tpm2.pub_size, &off, &pub), TSS2_RC_SUCCESS);
        /* Sealed data of ours, bound to this TPM and this parent. */
        ck_assert(!(pub.publicArea.objectAttributes & TPMA_OBJECT_SENSITIVEDATAORIGIN));
        ck_assert(pub.publicArea.objectAttributes & TPMA_OBJECT_FIXEDTPM);
        ck_assert(pub.publicArea.objectAttributes & TPMA_OBJECT_FIXEDPARENT);
        off = 0;
        ck_assert_int_eq(Tss2_MU_TPM2B_PRIVATE_Unmarshal(p.u.tpm2.priv, p.u.tpm2.priv_size, &off, &priv),
                         TSS2_RC_SUCCESS);
        test_tpm_open(&t);
        ck_assert_int_eq(Esys_CreatePrimary(t.esys, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                                            &empty, &srk, &outside, &creation, &primary, NULL, NULL, NULL, NULL),
                         TSS2_RC_SUCCESS);
        ck_assert_int_eq(Esys_Load(t.esys, primary, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &priv, &pub, &obj),
                         TSS2_RC_SUCCESS);
        ck_assert_int_eq(Esys_Unseal(t.esys, obj, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &out), TSS2_RC_SUCCESS);
        ck_assert_int_eq(Esys_FlushContext(t.esys, obj), TSS2_RC_SUCCESS);
        ck_assert_int_eq(Esys_FlushContext(t.esys, primary), TSS2_RC_SUCCESS);
        test_tpm_close(&t);
        ck_assert_uint_eq(out->size, CRYPT_KEY_BYTES);
        ck_assert_int_eq(secret_new_copy(out->buffer, out->size, &key), 0);
        secret_wipe(out, sizeof(*out));
        Esys_Free(out);

        /* P opens the root key the file protector opens. */
        ck_assert_int_eq(store_open(TS.sdir, &s), 0);
        ck_assert_int_eq(store_unlock(s, NULL), 0);
        ck_assert_int_eq(protector_unwrap_root(s, &p, key, &root), 0);
        ck_assert_int_eq(secret_equal(root, s->root_key), 1);
        ck_assert(!test_state_contains_or_hex(key->data, key->size));
        ck_assert(!test_state_contains_or_hex(root->data, root->size));
}
END_TEST

START_TEST(test_cli) {
        char err[4096];

        ck_assert_int_eq(test_state_run_store(err, sizeof(err), false, (const char *const[]) { "init", NULL }), 0);
        /* Not a list of numbers, a PCR out of range, one twice, no name: usage errors. */
        ck_assert_int_eq(test_state_run_store(err, sizeof(err), false, (const char *const[]) { "protector", "add-tpm2", "tpm", "--pcrs=7,x", NULL }), 2);
        ck_assert_msg(strstr(err, "--pcrs=7,x: a comma-separated list of PCR numbers"), "%s", err);
        ck_assert_int_eq(test_state_run_store(err, sizeof(err), false, (const char *const[]) { "protector", "add-tpm2", "tpm", "--pcrs=7,,11", NULL }), 2);
        ck_assert_int_eq(test_state_run_store(err, sizeof(err), false, (const char *const[]) { "protector", "add-tpm2", "tpm", "--pcrs=24", NULL }), 2);
        ck_assert_msg(strstr(err, "tpm: ") && strstr(err, "PCR 24 does not exist"), "%s", err);
        ck_assert_int_eq(test_state_run_store(err, sizeof(err), false, (const char *const[]) { "protector", "add-tpm2", "tpm", "--pcrs=7,7", NULL }), 2);
        ck_assert_msg(strstr(err, "PCR 7 is listed twice"), "%s", err);
        ck_assert_int_eq(test_state_run_store(err, sizeof(err), false, (const char *const[]) { "protector", "add-tpm2", NULL }), 2);
        ck_assert_int_eq(test_state_run_store(err, sizeof(err), false, (const char *const[]) { "protector", "add", "tpm", "--type=tpm2", NULL }), 2);
        ck_assert_msg(strstr(err, "protector add-tpm2 NAME"), "%s", err);
        ck_assert_uint_eq(loaded_handles(), 0);
        /* Without a TPM: a failure (1), not a usage error, and no protector. */
        test_swtpm_stop();
        ck_assert_int_eq(test_state_run_store(err, sizeof(err), false, (const char *const[]) { "protector", "add-tpm2", "tpm", NULL }), 1);
        ck_assert_msg(strstr(err, "tpm: ") && strstr(err, "the TPM is unreachable"), "%s", err);
        test_swtpm_start(TS.base, "tpm-b");

        ck_assert_int_eq(test_state_run_store(err, sizeof(err), false, (const char *const[]) { "protector", "add-tpm2", "tpm", "--pcrs=16,7", NULL }), 0);
        ck_assert_uint_eq(loaded_handles(), 0);
        test_state_remove_key_file();
        ck_assert_msg(test_state_run_store(err, sizeof(err), false, (const char *const[]) { "check", NULL }) == 0, "%s", err);
        test_tpm_pcr_extend(ESYS_TR_PCR16);
        ck_assert_int_eq(test_state_run_store(err, sizeof(err), false, (const char *const[]) { "check", NULL }), 4);
        ck_assert_msg(strstr(err, "tpm: the TPM's PCRs 7,16 no longer match the protector's policy (PCR mismatch)"), "%s", err);
        test_swtpm_stop();
        ck_assert_int_eq(test_state_run_store(err, sizeof(err), false, (const char *const[]) { "check", NULL }), 4);
        ck_assert_msg(strstr(err, "tpm: the TPM is unreachable"), "%s", err);
}
END_TEST

static Suite *tpm2_suite(void) {
        Suite *s = suite_create("tpm2");
        TCase *t = tcase_create("swtpm");

        tcase_add_checked_fixture(t, setup, teardown);
        tcase_add_test(t, test_unlock_through_tpm_alone);
        tcase_add_test(t, test_pcr_mismatch);
        tcase_add_test(t, test_other_tpm);
        tcase_add_test(t, test_unreachable);
        tcase_add_test(t, test_add_refusals);
        tcase_add_test(t, test_file_holds_no_key);
        tcase_add_test(t, test_cli);
        suite_add_tcase(s, t);
        return s;
}

int main(void) {
        if (crypt_init() < 0)
                return EXIT_FAILURE;
        if (!test_swtpm_installed()) {
                fprintf(stderr, "swtpm is not installed; scripts/deps.sh installs it.\n");
                return 77;
        }
        return test_state_run("tpm2", tpm2_suite());
}
