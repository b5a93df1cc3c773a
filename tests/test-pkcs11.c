/* SPDX-License-Identifier: MIT */
/* Tests for the PKCS#11 protector against a real SoftHSM2 token in a throwaway SOFTHSM2_CONF,
 * and for the pkcs11: URI parser. */
#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <p11-kit/p11-kit.h>
#include <p11-kit/pkcs11.h>

#include "pkcs11-uri.h"
#include "store.h"
#include "test-helpers.h"
#include "test-state.h"

#define TOKEN "dkm-test"
#define PIN "1234"
#define SO_PIN "5678"

static char module[256];

static void setup(void) {
        test_state_setup();
        setenv("DKM_PKCS11_PIN", PIN, 1);
        unsetenv("DKM_PKCS11_PIN_FILE");
}

static const char *uri_for(const char *object) {
        static char u[512];
        snprintf(u, sizeof(u), "pkcs11:token=" TOKEN ";object=%s?module-path=%s", object, module);
        return u;
}

/* Token operations the admin does with softhsm2-util/pkcs11-tool, done here through the PKCS#11
 * API in a child process, so no module state is shared with the store code under test. */
enum { TOK_KEYGEN, TOK_KEYGEN_EXTRACTABLE, TOK_DESTROY, TOK_VALUE_REFUSED };

static int token_child(int op, const char *label) {
        CK_FUNCTION_LIST *m = p11_kit_module_load(module, 0);
        CK_SLOT_ID slots[16];
        CK_ULONG n = ELEMENTSOF(slots), found = 0;
        CK_SESSION_HANDLE h;
        CK_OBJECT_HANDLE o;
        CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
        CK_RV rv;

        if (!m || p11_kit_module_initialize(m) != CKR_OK)
                return 10;
        if (m->C_GetSlotList(CK_TRUE, slots, &n) != CKR_OK)
                return 11;
        for (CK_ULONG i = 0; i < n; i++) {
                CK_TOKEN_INFO ti;
                if (m->C_GetTokenInfo(slots[i], &ti) == CKR_OK && memcmp(ti.label, TOKEN " ", strlen(TOKEN) + 1) == 0) {
                        found = 1;
                        if (m->C_OpenSession(slots[i], CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &h) != CKR_OK)
                                return 12;
                        break;
                }
        }
        if (!found || m->C_Login(h, CKU_USER, (CK_UTF8CHAR_PTR) PIN, strlen(PIN)) != CKR_OK)
                return 13;

        if (op == TOK_KEYGEN || op == TOK_KEYGEN_EXTRACTABLE) {
                CK_BBOOL t = CK_TRUE, f = CK_FALSE, ext = op == TOK_KEYGEN_EXTRACTABLE ? CK_TRUE : CK_FALSE;
                CK_BBOOL sens = op == TOK_KEYGEN_EXTRACTABLE ? CK_FALSE : CK_TRUE;
                CK_ULONG len = 32;
                CK_MECHANISM mech = { CKM_AES_KEY_GEN, NULL, 0 };
                CK_ATTRIBUTE a[] = {
                        { CKA_CLASS, &cls, sizeof(cls) },
                        { CKA_TOKEN, &t, sizeof(t) },
                        { CKA_PRIVATE, &t, sizeof(t) },
                        { CKA_SENSITIVE, &sens, sizeof(sens) },
                        { CKA_EXTRACTABLE, &ext, sizeof(ext) },
                        { CKA_ENCRYPT, &t, sizeof(t) },
                        { CKA_DECRYPT, &t, sizeof(t) },
                        { CKA_WRAP, &f, sizeof(f) },
                        { CKA_VALUE_LEN, &len, sizeof(len) },
                        { CKA_LABEL, (void *) label, strlen(label) },
                };
                rv = m->C_GenerateKey(h, &mech, a, ELEMENTSOF(a), &o);
                return rv == CKR_OK ? 0 : 20;
        }

        {
                CK_ATTRIBUTE q[] = { { CKA_CLASS, &cls, sizeof(cls) }, { CKA_LABEL, (void *) label, strlen(label) } };
                CK_ULONG k = 0;
                if (m->C_FindObjectsInit(h, q, ELEMENTSOF(q)) != CKR_OK ||
                    m->C_FindObjects(h, &o, 1, &k) != CKR_OK || m->C_FindObjectsFinal(h) != CKR_OK || k != 1)
                        return 30;
        }
        if (op == TOK_DESTROY)
                return m->C_DestroyObject(h, o) == CKR_OK ? 0 : 31;
        if (op == TOK_VALUE_REFUSED) {
                uint8_t v[64];
                CK_ATTRIBUTE a = { CKA_VALUE, v, sizeof(v) };
                rv = m->C_GetAttributeValue(h, o, &a, 1);
                return rv == CKR_ATTRIBUTE_SENSITIVE && a.ulValueLen == CK_UNAVAILABLE_INFORMATION ? 0 : 40;
        }
        return 99;
}

static int token_op(int op, const char *label) {
        int status;
        pid_t pid = fork();

        ck_assert_int_ge(pid, 0);
        if (pid == 0)
                _exit(token_child(op, label));
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFEXITED(status));
        return WEXITSTATUS(status);
}

/* A store with a file protector "local", a group, and a pkcs11 protector "hsm" on key label;
 * returns the group's generation 1 key for comparison. */
static Secret *make_store(const char *label) {
        Store *s = NULL;
        StoreGroup *g = NULL;
        Secret *k = NULL;
        int r;

        ck_assert_int_eq(token_op(TOK_KEYGEN, label), 0);
        ck_assert_int_eq(store_init(TS.sdir, NULL, &s), 0);
        ck_assert_int_eq(store_group_create(s, "mail", 1000, CRYPT_ALG_XCHACHA20_POLY1305, NULL, &g), 0);
        ck_assert_int_eq(store_generation_unwrap(s, g, 1, &k), 0);
        r = store_protector_add_pkcs11(s, "hsm", uri_for(label));
        ck_assert_msg(r == 0, "add-pkcs11: %d %s", r, store_last_error(s));
        ck_assert(test_store_has_protector(s, "hsm", "pkcs11"));
        store_group_free(g);
        store_free(s);
        return k;
}

START_TEST(test_unlock_through_token_alone) {
        _cleanup_secret_ Secret *k1 = make_store("root-a"), *k2 = NULL;
        _cleanup_store_ Store *s = NULL;
        _cleanup_store_group_ StoreGroup *g = NULL;
        char why[1024];
        int r;

        test_state_remove_key_file();
        r = test_state_open_unlock(&s, why, sizeof(why));
        ck_assert_msg(r == 0, "unlock: %d %s", r, why);
        ck_assert_int_eq(store_group_load(s, "mail", &g), 0);
        ck_assert_int_eq(store_generation_unwrap(s, g, 1, &k2), 0);
        ck_assert_int_eq(secret_equal(k1, k2), 1);
}
END_TEST

START_TEST(test_pin_file) {
        _cleanup_store_ Store *s = NULL;
        char why[1024], pf[256];
        FILE *f;

        secret_free(make_store("root-pinfile"));
        test_state_remove_key_file();
        snprintf(pf, sizeof(pf), "%s/pin", TS.base);
        f = fopen(pf, "we");
        ck_assert_ptr_nonnull(f);
        fputs(PIN "\n", f);
        fclose(f);
        unsetenv("DKM_PKCS11_PIN");
        setenv("DKM_PKCS11_PIN_FILE", pf, 1);
        /* Readable by others: refused, as a key file would be. */
        ck_assert_int_eq(chmod(pf, 0644), 0);
        ck_assert_int_eq(test_state_open_unlock(&s, why, sizeof(why)), -ENOKEY);
        ck_assert_msg(strstr(why, "lets others read it"), "%s", why);
        store_free(s);
        ck_assert_int_eq(chmod(pf, 0600), 0);
        ck_assert_msg(test_state_open_unlock(&s, why, sizeof(why)) == 0, "%s", why);
}
END_TEST

START_TEST(test_no_pin) {
        _cleanup_store_ Store *s = NULL;
        char why[1024];

        secret_free(make_store("root-nopin"));
        test_state_remove_key_file();
        unsetenv("DKM_PKCS11_PIN");
        ck_assert_int_eq(test_state_open_unlock(&s, why, sizeof(why)), -ENOKEY);
        ck_assert_msg(strstr(why, "hsm: needs the token's PIN"), "%s", why);
        ck_assert_msg(strstr(why, "local: protectors/local.key: key file missing"), "%s", why);
}
END_TEST

START_TEST(test_wrong_pin) {
        Store *s = NULL;
        char why[1024];

        secret_free(make_store("root-wrongpin"));
        test_state_remove_key_file();
        setenv("DKM_PKCS11_PIN", "9999", 1);
        /* Several tries, each one login: refused every time, never locked out by a retry loop
         * (SoftHSM2 has no PIN counter; a real token would count exactly one per unlock). */
        for (int i = 0; i < 3; i++) {
                ck_assert_int_eq(test_state_open_unlock(&s, why, sizeof(why)), -ENOKEY);
                ck_assert_msg(strstr(why, "hsm: token '" TOKEN "': login refused: wrong PIN"), "%s", why);
                store_free(s);
        }
        setenv("DKM_PKCS11_PIN", PIN, 1);
        ck_assert_msg(test_state_open_unlock(&s, why, sizeof(why)) == 0, "%s", why);
        store_free(s);
}
END_TEST

START_TEST(test_token_key_deleted) {
        Store *s = NULL;
        char why[1024];

        secret_free(make_store("root-deleted"));
        /* With the file protector still there the store opens; the token is one way among several. */
        ck_assert_int_eq(token_op(TOK_DESTROY, "root-deleted"), 0);
        ck_assert_msg(test_state_open_unlock(&s, why, sizeof(why)) == 0, "%s", why);
        store_free(s);
        test_state_remove_key_file();
        ck_assert_int_eq(test_state_open_unlock(&s, why, sizeof(why)), -ENOKEY);
        ck_assert_msg(strstr(why, "hsm: token '" TOKEN "' has no AES key 'root-deleted' (never created, or deleted: withdrawn)"), "%s",
                      why);
        store_free(s);
}
END_TEST

START_TEST(test_key_replaced) {
        _cleanup_store_ Store *s = NULL;
        char why[1024];

        secret_free(make_store("root-replaced"));
        ck_assert_int_eq(token_op(TOK_DESTROY, "root-replaced"), 0);
        ck_assert_int_eq(token_op(TOK_KEYGEN, "root-replaced"), 0);
        test_state_remove_key_file();
        ck_assert_int_eq(test_state_open_unlock(&s, why, sizeof(why)), -ENOKEY);
        ck_assert_msg(strstr(why, "hsm: the token's key does not open this protector"), "%s", why);
}
END_TEST

START_TEST(test_key_not_extractable) {
        secret_free(make_store("root-sealed"));
        ck_assert_int_eq(token_op(TOK_VALUE_REFUSED, "root-sealed"), 0);
}
END_TEST

START_TEST(test_add_refusals) {
        _cleanup_store_ Store *s = NULL;
        char u[512];

        ck_assert_int_eq(token_op(TOK_KEYGEN_EXTRACTABLE, "root-extractable"), 0);
        ck_assert_int_eq(store_init(TS.sdir, NULL, &s), 0);
        ck_assert_int_eq(store_protector_add_pkcs11(s, "hsm", uri_for("root-extractable")), -EINVAL);
        ck_assert_msg(strstr(store_last_error(s), "CKA_EXTRACTABLE=false"), "%s", store_last_error(s));
        ck_assert_int_eq(store_protector_add_pkcs11(s, "hsm", uri_for("no-such-key")), -ENOKEY);
        ck_assert_msg(strstr(store_last_error(s), "has no AES key 'no-such-key'"), "%s", store_last_error(s));
        snprintf(u, sizeof(u), "pkcs11:token=elsewhere;object=k?module-path=%s", module);
        ck_assert_int_eq(store_protector_add_pkcs11(s, "hsm", u), -ENOKEY);
        ck_assert_msg(strstr(store_last_error(s), "no token labelled 'elsewhere'"), "%s", store_last_error(s));
        ck_assert_int_eq(store_protector_add_pkcs11(s, "hsm", "pkcs11:slot-id=0;object=k"), -EINVAL);
        ck_assert_msg(strstr(store_last_error(s), "slot attributes are refused"), "%s", store_last_error(s));
        ck_assert_int_eq(store_protector_add_pkcs11(s, "hsm", "pkcs11:object=k"), -EINVAL);
        setenv("DKM_PKCS11_PIN", "9999", 1);
        ck_assert_int_eq(token_op(TOK_KEYGEN, "root-x"), 0);
        ck_assert_int_eq(store_protector_add_pkcs11(s, "hsm", uri_for("root-x")), -ENOKEY);
        ck_assert_msg(strstr(store_last_error(s), "wrong PIN"), "%s", store_last_error(s));
        ck_assert(!test_store_has_protector(s, "hsm", "pkcs11"));
}
END_TEST

/* A protector file copied under another name is refused (its name line no longer matches); the
 * root AD, which the token's AES-GCM also binds, would refuse one with the name line edited. */
START_TEST(test_renamed_protector_file) {
        _cleanup_store_ Store *s = NULL;
        char a[256], b[256], why[1024];
        FILE *f;
        char buf[4096];
        size_t n;

        secret_free(make_store("root-renamed"));
        snprintf(a, sizeof(a), "%s/protectors/hsm.protector", TS.sdir);
        snprintf(b, sizeof(b), "%s/protectors/hsm2.protector", TS.sdir);
        f = fopen(a, "re");
        ck_assert_ptr_nonnull(f);
        n = fread(buf, 1, sizeof(buf), f);
        fclose(f);
        f = fopen(b, "we");
        ck_assert_ptr_nonnull(f);
        ck_assert_uint_eq(fwrite(buf, 1, n, f), n);
        fclose(f);
        ck_assert_int_eq(unlink(a), 0);
        test_state_remove_key_file();
        ck_assert_int_eq(test_state_open_unlock(&s, why, sizeof(why)), -ENOKEY);
        ck_assert_msg(strstr(why, "hsm2:"), "%s", why);
}
END_TEST

/* store_protector_check() of "hsm" in the current environment, on a fresh Store (locked, or
 * unlocked first through the key file if unlocked); its status copied to ret. */
static void check_hsm(bool unlocked, char *const *skip, StoreProtectorStatus *ret) {
        _cleanup_store_ Store *s = NULL;
        StoreProtectorStatus *l = NULL;
        size_t n = 0;
        bool found = false;

        ck_assert_int_eq(store_open(TS.sdir, &s), 0);
        if (unlocked) {
                /* The key file alone: no PIN is spent before the check's own try. */
                char *pin = getenv("DKM_PKCS11_PIN") ? strdup(getenv("DKM_PKCS11_PIN")) : NULL;
                unsetenv("DKM_PKCS11_PIN");
                ck_assert_int_eq(store_unlock(s, NULL), 0);
                if (pin)
                        setenv("DKM_PKCS11_PIN", pin, 1);
                free(pin);
        }
        ck_assert_int_eq(store_protector_check(s, skip, &l, &n), 0);
        for (size_t i = 0; i < n; i++)
                if (strcmp(l[i].name, "hsm") == 0) {
                        *ret = l[i];
                        found = true;
                }
        free(l);
        ck_assert(found);
        ck_assert_str_eq(ret->type, "pkcs11");
}

#define ck_assert_health(st, h, text)                                                                                          ck_assert_msg((st).health == (h) && strstr((st).detail, (text)), "%s: %s", store_protector_health_to_string((st).health),                       (st).detail)

START_TEST(test_check_health) {
        char *const skip[] = { (char *) "hsm", NULL };
        char conf[160], tokens[160], saved_conf[256];
        StoreProtectorStatus st;
        Store *s = NULL;
        FILE *f;

        secret_free(make_store("root-health"));
        check_hsm(true, NULL, &st);
        ck_assert_health(st, STORE_PROTECTOR_OK, "");

        /* Through the token alone, a locked store is opened by the check. */
        test_state_remove_key_file();
        ck_assert_int_eq(store_open(TS.sdir, &s), 0);
        {
                StoreProtectorStatus *l = NULL;
                size_t n;
                ck_assert_int_eq(store_protector_check(s, NULL, &l, &n), 0);
                free(l);
        }
        ck_assert(store_is_unlocked(s));
        s = store_free(s);

        /* No PIN, a wrong PIN: refused (retrying burns tries). */
        unsetenv("DKM_PKCS11_PIN");
        check_hsm(false, NULL, &st);
        ck_assert_health(st, STORE_PROTECTOR_REFUSED, "needs the token's PIN");
        setenv("DKM_PKCS11_PIN", "9999", 1);
        check_hsm(false, NULL, &st);
        ck_assert_health(st, STORE_PROTECTOR_REFUSED, "login refused: wrong PIN");
        /* Skipped: not tried, so the wrong PIN is not offered again. */
        check_hsm(false, skip, &st);
        ck_assert_health(st, STORE_PROTECTOR_REFUSED, "not tried again");
        ck_assert(!strstr(st.detail, "login"));
        /* A PIN file others can read is refused as well. */
        setenv("DKM_PKCS11_PIN_FILE", "/etc/passwd", 1);
        check_hsm(false, NULL, &st);
        ck_assert_health(st, STORE_PROTECTOR_REFUSED, "lets others read it");
        unsetenv("DKM_PKCS11_PIN_FILE");
        setenv("DKM_PKCS11_PIN", PIN, 1);
        check_hsm(false, NULL, &st);
        ck_assert_health(st, STORE_PROTECTOR_OK, "");

        /* The token gone (an empty token directory): unavailable, try later. */
        snprintf(saved_conf, sizeof(saved_conf), "%s", getenv("SOFTHSM2_CONF"));
        snprintf(tokens, sizeof(tokens), "%s/no-tokens", TS.base);
        snprintf(conf, sizeof(conf), "%s/empty.conf", TS.base);
        ck_assert_int_eq(mkdir(tokens, 0700), 0);
        f = fopen(conf, "we");
        ck_assert_ptr_nonnull(f);
        fprintf(f, "directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n", tokens);
        fclose(f);
        setenv("SOFTHSM2_CONF", conf, 1);
        check_hsm(false, NULL, &st);
        setenv("SOFTHSM2_CONF", saved_conf, 1);
        ck_assert_health(st, STORE_PROTECTOR_UNAVAILABLE, "no token labelled '" TOKEN "'");

        /* The customer deletes the key: withdrawn. */
        ck_assert_int_eq(token_op(TOK_DESTROY, "root-health"), 0);
        check_hsm(false, NULL, &st);
        ck_assert_health(st, STORE_PROTECTOR_WITHDRAWN, "has no AES key 'root-health'");
        /* Another key under the same label does not open the protector: withdrawn too. */
        ck_assert_int_eq(token_op(TOK_KEYGEN, "root-health"), 0);
        check_hsm(false, NULL, &st);
        ck_assert_health(st, STORE_PROTECTOR_WITHDRAWN, "does not open this protector");
}
END_TEST

START_TEST(test_cli) {
        char err[2048], uri[600];

        ck_assert_int_eq(token_op(TOK_KEYGEN, "root-cli"), 0);
        ck_assert_int_eq(test_state_run_store(err, sizeof(err), false, (const char *const[]) { "init", NULL }), 0);
        /* No --uri, a slot URI, a second positional argument: usage errors. */
        ck_assert_int_eq(test_state_run_store(err, sizeof(err), false, (const char *const[]) { "protector", "add-pkcs11", "hsm", NULL }), 2);
        ck_assert_msg(strstr(err, "needs --uri="), "%s", err);
        ck_assert_int_eq(test_state_run_store(err, sizeof(err), false,
                                       (const char *const[]) { "protector", "add-pkcs11", "hsm", "--uri=pkcs11:token=" TOKEN ";slot-id=0", NULL }),
                         2);
        ck_assert_msg(strstr(err, "slot attributes are refused"), "%s", err);
        ck_assert_int_eq(test_state_run_store(err, sizeof(err), false, (const char *const[]) { "protector", "add-pkcs11", NULL }), 2);
        snprintf(uri, sizeof(uri), "--uri=%s", uri_for("root-cli"));
        ck_assert_int_eq(test_state_run_store(err, sizeof(err), false, (const char *const[]) { "protector", "add-pkcs11", "hsm", uri, NULL }), 0);
        test_state_remove_key_file();
        ck_assert_int_eq(test_state_run_store(err, sizeof(err), false, (const char *const[]) { "check", NULL }), 0);
        setenv("DKM_PKCS11_PIN", "9999", 1);
        ck_assert_int_eq(test_state_run_store(err, sizeof(err), false, (const char *const[]) { "check", NULL }), 4);
        ck_assert_msg(strstr(err, "hsm: token '" TOKEN "': login refused: wrong PIN"), "%s", err);
}
END_TEST

START_TEST(test_uri_parse) {
        static const struct {
                const char *uri;
                int ok;
        } cases[] = {
                { "pkcs11:token=dkm;object=root", 1 },
                { "pkcs11:token=My%20HSM;object=root%3b1;type=secret-key", 1 },
                { "pkcs11:object=root;token=dkm?module-name=softhsm2", 1 },
                { "pkcs11:token=dkm;object=root?module-path=/usr/lib/softhsm/libsofthsm2.so&vendor-x=1", 1 },
                { "pkcs11:token=dkm;id=%01%02%ff", 1 },
                { "pkcs11:", 1 },
                { "PKCS11:token=dkm", 0 },
                { "pkcs11:token=dkm;slot-id=1", 0 },
                { "pkcs11:token=dkm;serial=1234", 0 },
                { "pkcs11:token=dkm;type=private", 0 },
                { "pkcs11:token=dkm;token=other", 0 },
                { "pkcs11:token=", 0 },
                { "pkcs11:token", 0 },
                { "pkcs11:token=a;;object=b", 0 },
                { "pkcs11:token=a;", 0 },
                { "pkcs11:token=a%2", 0 },
                { "pkcs11:token=a%zz", 0 },
                { "pkcs11:token=a%00b", 0 },
                { "pkcs11:token=a b", 0 },
                { "pkcs11:token=a?pin-value=1234", 0 },
                { "pkcs11:token=a?pin-source=file:/x", 0 },
                { "pkcs11:token=a?", 0 },
                { "pkcs11:token=a?module-name=x&", 0 },
                { "pkcs11:token=a?module-name=x&module-name=y", 0 },
                { "pkcs11:token=a?module-path=libsofthsm2.so", 0 },
        };
        const char *why;
        Pkcs11Uri u;
        char big[PKCS11_URI_MAX + 16];

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                int r = pkcs11_uri_parse(cases[i].uri, &u, &why);
                ck_assert_msg(cases[i].ok ? r == 0 : r == -EINVAL, "%s: %d", cases[i].uri, r);
        }
        ck_assert_int_eq(pkcs11_uri_parse("pkcs11:token=My%20HSM;object=root%3b1?module-name=soft%68sm2", &u, &why), 0);
        ck_assert_str_eq(u.token, "My HSM");
        ck_assert_str_eq(u.object, "root;1");
        ck_assert_str_eq(u.module_name, "softhsm2");
        ck_assert_str_eq(u.module_path, "");
        ck_assert_uint_eq(u.id_size, 0);
        ck_assert_int_eq(pkcs11_uri_parse("pkcs11:id=%01%02%FF?module-path=/a/b.so", &u, &why), 0);
        ck_assert_uint_eq(u.id_size, 3);
        ck_assert_uint_eq(u.id[2], 0xff);
        ck_assert_str_eq(u.module_path, "/a/b.so");
        ck_assert_int_eq(pkcs11_uri_parse("pkcs11:token=x;slot-id=2", &u, &why), -EINVAL);
        ck_assert_str_eq(why, "slot attributes are refused; name the token by its label (token=...)");
        memset(big, 'a', sizeof(big));
        memcpy(big, "pkcs11:token=", 13);
        big[sizeof(big) - 1] = 0;
        ck_assert_int_eq(pkcs11_uri_parse(big, &u, &why), -EINVAL);
        big[13 + PKCS11_URI_LABEL_MAX + 1] = 0;
        ck_assert_int_eq(pkcs11_uri_parse(big, &u, &why), -EINVAL);
        ck_assert_str_eq(why, "attribute value too long");
        big[13 + PKCS11_URI_LABEL_MAX] = 0;
        ck_assert_int_eq(pkcs11_uri_parse(big, &u, &why), 0);
}
END_TEST

static Suite *pkcs11_suite(void) {
        Suite *s = suite_create("pkcs11");
        TCase *t = tcase_create("uri");
        tcase_add_test(t, test_uri_parse);
        suite_add_tcase(s, t);
        t = tcase_create("softhsm2");
        tcase_add_checked_fixture(t, setup, test_state_teardown);
        tcase_add_test(t, test_unlock_through_token_alone);
        tcase_add_test(t, test_pin_file);
        tcase_add_test(t, test_no_pin);
        tcase_add_test(t, test_wrong_pin);
        tcase_add_test(t, test_token_key_deleted);
        tcase_add_test(t, test_key_replaced);
        tcase_add_test(t, test_key_not_extractable);
        tcase_add_test(t, test_add_refusals);
        tcase_add_test(t, test_renamed_protector_file);
        tcase_add_test(t, test_cli);
        tcase_add_test(t, test_check_health);
        suite_add_tcase(s, t);
        return s;
}

/* A throwaway token: SOFTHSM2_CONF names a config whose token dir lives under top. */
static int token_init(void) {
        static const char *const modules[] = {
                "/usr/lib/softhsm/libsofthsm2.so",
                "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
                "/usr/lib64/pkcs11/libsofthsm2.so",
        };
        char conf[128], tokens[128], cmd[512];
        const char *m = getenv("DKM_TEST_SOFTHSM_MODULE");
        FILE *f;

        for (size_t i = 0; !m && i < ELEMENTSOF(modules); i++)
                if (access(modules[i], R_OK) == 0)
                        m = modules[i];
        if (!m || system("command -v softhsm2-util >/dev/null") != 0)
                return -ENOENT;
        snprintf(module, sizeof(module), "%s", m);
        snprintf(tokens, sizeof(tokens), "%s/tokens", TS.top);
        snprintf(conf, sizeof(conf), "%s/softhsm2.conf", TS.top);
        if (mkdir(tokens, 0700) < 0)
                return -errno;
        f = fopen(conf, "we");
        if (!f)
                return -errno;
        fprintf(f, "directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n", tokens);
        fclose(f);
        setenv("SOFTHSM2_CONF", conf, 1);
        snprintf(cmd, sizeof(cmd),
                 "softhsm2-util --init-token --free --label " TOKEN " --pin " PIN " --so-pin " SO_PIN " >/dev/null");
        return system(cmd) == 0 ? 0 : -EIO;
}

int main(void) {
        int r;

        if (crypt_init() < 0)
                return EXIT_FAILURE;
        if (test_state_begin("pkcs11") < 0)
                return EXIT_FAILURE;
        r = token_init();
        if (r == -ENOENT) {
                fprintf(stderr, "SoftHSM2 (softhsm2-util, libsofthsm2.so) is not installed; scripts/deps.sh installs it.\n");
                test_state_end();
                return 77;
        }
        if (r < 0) {
                fprintf(stderr, "cannot create the SoftHSM2 token: %s\n", strerror(-r));
                test_state_end();
                return EXIT_FAILURE;
        }
        r = test_run_suite(pkcs11_suite());
        test_state_end();
        return r;
}
