/* SPDX-License-Identifier: MIT */
/* Writes the seed corpora of tests/fuzz/corpus/ once (scripts/fuzz.sh --make-corpus): real files
 * made by the real code (a store, its group and protector files, requests, audit lines, manifests,
 * ciphertexts), plus hand-made inputs for the bus harness. Not a fuzzer. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "access-request.h"
#include "audit.h"
#include "ciphertext.h"
#include "format-internal.h"
#include "keyring-manifest.h"
#include "keyring-names.h"
#include "kvfile.h"
#include "loader.h"
#include "store.h"
#include "stream.h"

static const char *out_dir;

#define CHECK(expr)                                                                                                    \
        do {                                                                                                           \
                if (!(expr)) {                                                                                         \
                        fprintf(stderr, "fuzz-corpus-gen: %s:%d: %s failed\n", __FILE__, __LINE__, #expr);             \
                        exit(EXIT_FAILURE);                                                                            \
                }                                                                                                      \
        } while (0)

static void put(const char *corpus, const char *name, const void *data, size_t size) {
        char path[1024];
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", out_dir, corpus);
        (void) mkdir(path, 0755);
        snprintf(path, sizeof(path), "%s/%s/%s", out_dir, corpus, name);
        f = fopen(path, "we");
        CHECK(f);
        CHECK(fwrite(data, 1, size, f) == size || size == 0);
        CHECK(fclose(f) == 0);
}

static char *slurp(const char *path, size_t *ret_size) {
        char *buf = malloc(1 << 20);
        size_t n;
        FILE *f = fopen(path, "re");

        CHECK(buf && f);
        n = fread(buf, 1, (1 << 20) - 1, f);
        fclose(f);
        buf[n] = 0;
        *ret_size = n;
        return buf;
}

/* A store file as it is (for kvfile), and its body without the checksum line (the file harnesses
 * append a correct one themselves). */
static void put_kvfile(const char *corpus, const char *name, const char *path) {
        size_t n, body;
        char *data = slurp(path, &n), full[256];

        CHECK(n > 0);
        for (body = n - 1; body > 0 && data[body - 1] != '\n'; body--)
                ;
        put(corpus, name, data, body);
        snprintf(full, sizeof(full), "%s-%s", corpus, name);
        put("kvfile", full, data, n);
        free(data);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        (void) (flag == FTW_DP ? rmdir(path) : unlink(path));
        return 0;
}

static Secret *vector_key(void) {
        uint8_t k[CRYPT_KEY_BYTES];
        Secret *key;

        for (size_t i = 0; i < sizeof(k); i++)
                k[i] = (uint8_t) (0x80 + i);
        CHECK(secret_new_copy(k, sizeof(k), &key) == 0);
        return key;
}

static void gen_ciphertexts(void) {
        static const uint8_t gid[CIPHERTEXT_GROUP_ID_BYTES] = { 0xd0, 0xd1, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7,
                                                                0xd8, 0xd9, 0xda, 0xdb, 0xdc, 0xdd, 0xde, 0xdf };
        uint8_t nonce[CRYPT_NONCE_MAX_BYTES], salt[CIPHERTEXT_STREAM_SALT_BYTES], pt[100], ct[4096];
        static const struct {
                const char *name;
                CryptAlg alg;
                size_t pt;
                bool ad;
                uint32_t chunk;
        } cases[] = {
                { "xchacha-empty", CRYPT_ALG_XCHACHA20_POLY1305, 0, false, 16 },
                { "xchacha-1byte", CRYPT_ALG_XCHACHA20_POLY1305, 1, false, 16 },
                { "xchacha-100-ad", CRYPT_ALG_XCHACHA20_POLY1305, 100, true, 16 },
                { "aesgcm-empty", CRYPT_ALG_AES256_GCM, 0, false, 7 },
                { "aesgcm-100-ad", CRYPT_ALG_AES256_GCM, 100, true, 32 },
        };
        Secret *key = vector_key();

        for (size_t i = 0; i < sizeof(nonce); i++)
                nonce[i] = (uint8_t) (0x40 + i);
        for (size_t i = 0; i < sizeof(salt); i++)
                salt[i] = (uint8_t) (0x60 + i);
        for (size_t i = 0; i < sizeof(pt); i++)
                pt[i] = (uint8_t) i;
        for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
                StreamEncryptor *e = NULL;
                const uint8_t *h;
                size_t n = 0, m, off = 0;
                bool last = false;

                if (cases[c].alg == CRYPT_ALG_AES256_GCM && crypt_alg_check(CRYPT_ALG_AES256_GCM) < 0)
                        continue;
                CHECK(ciphertext_seal_with_nonce(cases[c].alg, gid, 2, key, nonce, "ad", cases[c].ad ? 2 : 0, pt,
                                                 cases[c].pt, ct, sizeof(ct), &n) == 0);
                put("ciphertext", cases[c].name, ct, n);

                /* The same plaintext as a stream of small chunks, so every chunk path is in reach. */
                CHECK(stream_encrypt_new_with_salt(cases[c].alg, gid, 5, key, "ad", cases[c].ad ? 2 : 0, salt,
                                                   cases[c].chunk, &e) == 0);
                h = stream_encrypt_header(e, &n);
                memcpy(ct, h, n);
                while (!last) {
                        size_t k = cases[c].pt - off < cases[c].chunk ? cases[c].pt - off : cases[c].chunk;

                        last = k < cases[c].chunk;
                        CHECK(stream_encrypt_chunk(e, pt + off, k, last, ct + n, sizeof(ct) - n, &m) == 0);
                        n += m;
                        off += k;
                }
                stream_encrypt_free(e);
                put("stream", cases[c].name, ct, n);
        }
        secret_free(key);
}

static void gen_store(const char *tmp) {
        char dir[512], path[1024];
        StoreGroupPolicy policy = STORE_GROUP_POLICY_DEFAULT;
        KeyringManifest *m = NULL;
        StoreGroup *g = NULL;
        Secret *pass = NULL, *text = NULL;
        Store *s = NULL;
        uint32_t n;
        uid_t uids[] = { 998, 999 };

        snprintf(dir, sizeof(dir), "%s/state", tmp);
        CHECK(setenv("DKM_TEST_PWHASH_FAST", "1", 1) == 0);
        CHECK(store_init(dir, NULL, &s) == 0);
        CHECK(secret_new_copy("correct horse", 13, &pass) == 0);
        CHECK(store_protector_add_passphrase(s, "backup", pass) == 0);
        secret_free(pass);

        policy.approval_levels[0] = 2001;
        policy.approval_levels[1] = 2002;
        policy.n_approval_levels = 2;
        policy.rollover_period_usec = 30ULL * 86400 * 1000000;
        CHECK(store_group_create(s, "mail-creds", 1, CRYPT_ALG_XCHACHA20_POLY1305, &policy, &g) == 0);
        g = store_group_free(g);
        CHECK(store_rollover(s, "mail-creds", &n) == 0);
        CHECK(store_rollover(s, "mail-creds", &n) == 0);
        CHECK(store_generation_retire(s, "mail-creds", 1) == 0);
        CHECK(store_generation_add(s, "mail-creds", &n) == 0);
        CHECK(store_group_create(s, "db.backup_2", 2, CRYPT_ALG_XCHACHA20_POLY1305, NULL, &g) == 0);
        g = store_group_free(g);

        snprintf(path, sizeof(path), "%s/groups/mail-creds.group", dir);
        put_kvfile("group-file", "mail-creds", path);
        snprintf(path, sizeof(path), "%s/groups/db.backup_2.group", dir);
        put_kvfile("group-file", "db.backup_2", path);
        snprintf(path, sizeof(path), "%s/protectors/local.protector", dir);
        put_kvfile("protector", "local", path);
        snprintf(path, sizeof(path), "%s/protectors/backup.protector", dir);
        put_kvfile("protector", "backup", path);

        /* What the loader hands the helper for this group. */
        CHECK(store_group_load(s, "mail-creds", &g) == 0);
        CHECK(loader_build_manifest(s, g, 2, uids, 2, &m) == 0);
        CHECK(keyring_manifest_format(m, &text) == 0);
        put("keyring-manifest", "mail-creds", text->data, text->size);
        secret_free(text);
        keyring_manifest_free(m);
        {
                KeyringPointer p = { .alg = g->alg, .active = 3, .pending = 4 };
                uint8_t packed[KEYRING_POINTER_BYTES];
                char desc[KEYRING_DESC_MAX];

                memcpy(p.group_id, g->id, sizeof(p.group_id));
                keyring_pointer_pack(&p, packed);
                put("keyring-names", "pointer", packed, sizeof(packed));
                p.pending = 0;
                keyring_pointer_pack(&p, packed);
                put("keyring-names", "pointer-no-pending", packed, sizeof(packed));
                put("keyring-names", "serial", "123456789\n", 10);
                put("keyring-names", "name", "mail-creds", 10);
                CHECK(keyring_generation_desc(g->id, 3, desc) == 0);
                put("request-key", "generation-3", desc, strlen(desc));
                CHECK(keyring_generation_desc(g->id, 4294967295U, desc) == 0);
                put("request-key", "generation-max", desc, strlen(desc));
        }
        g = store_group_free(g);
        store_free(s);
}

/* A purged store's tombstone group file ("kek=-", every generation retired) and store policies. */
static void gen_purged(const char *tmp) {
        StorePolicy policy = STORE_POLICY_DEFAULT;
        char dir[512], path[1024];
        Store *s = NULL;
        uint32_t n;

        snprintf(dir, sizeof(dir), "%s/purged", tmp);
        CHECK(store_init(dir, NULL, &s) == 0);
        CHECK(store_policy_save(s, &policy) == 0);
        snprintf(path, sizeof(path), "%s/store.policy", dir);
        put_kvfile("store-policy", "default", path);
        policy.approval_levels[0] = 2001;
        policy.approval_levels[1] = 2002;
        policy.n_approval_levels = 2;
        policy.purge_delay_usec = 12ULL * 3600 * 1000000;
        CHECK(store_policy_save(s, &policy) == 0);
        put_kvfile("store-policy", "two-levels", path);

        CHECK(store_group_create(s, "purged", 3, CRYPT_ALG_XCHACHA20_POLY1305, NULL, NULL) == 0);
        CHECK(store_rollover(s, "purged", &n) == 0);
        CHECK(store_generation_add(s, "purged", &n) == 0);
        CHECK(store_purge(s) == 0);
        snprintf(path, sizeof(path), "%s/groups/purged.group", dir);
        put_kvfile("group-file", "purged", path);
        store_free(s);
}

/* The body of a file (without its checksum line), as the file harnesses' corpora hold it. */
static size_t body_size(const char *text, size_t n) {
        size_t body;

        for (body = n - 1; body > 0 && text[body - 1] != '\n'; body--)
                ;
        return body;
}

/* One request file into the access-request corpus (its body) and, when kv_name is not NULL,
 * whole into kvfile's. */
static void put_request(const char *name, const char *kv_name, const char *text, size_t n) {
        put("access-request", name, text, body_size(text, n));
        if (kv_name)
                put("kvfile", kv_name, text, n);
}

/* A format-1 file, as dkm wrote before the store-wide kinds (access-request.h): r's format-2 text
 * without its target= and spec= lines, "format=1", and a checksum recomputed by kvbuf_finish().
 * It must load again, as the same request, or the compatibility path would not be covered. */
static void put_format1(const AccessRequest *r, const char *name) {
        _cleanup_free_ char *text = NULL, *old = NULL;
        AccessRequest back;
        char error[256] = "";
        KvBuf b = {};
        size_t n, m;
        const char *p, *end;

        CHECK(r->target[0] == 0 && r->spec[0] == 0); /* format 1 has no place for them */
        CHECK(access_request_format(r, &text, &n) == 0);
        end = text + body_size(text, n);
        for (p = text; p < end;) {
                const char *nl = memchr(p, '\n', (size_t) (end - p));
                size_t len = (size_t) (nl - p) + 1;

                CHECK(nl);
                if (strncmp(p, "format=", 7) == 0)
                        kvbuf_printf(&b, "format=1\n");
                else if (strncmp(p, "target=", 7) != 0 && strncmp(p, "spec=", 5) != 0)
                        kvbuf_printf(&b, "%.*s", (int) len, p);
                p += len;
        }
        CHECK(kvbuf_finish(&b, &old, &m) == 0);
        kvbuf_done(&b);
        CHECK(access_request_parse(old, m, r->id, &back, error, sizeof(error)) == 0);
        CHECK(back.id == r->id && back.kind == r->kind && back.state == r->state &&
              strcmp(back.justification, r->justification) == 0 && back.n_approvals == r->n_approvals);
        put_request(name, "access-request-format1", old, m);
}

/* Store-wide requests (issue 8), at the store policy's levels: a protector-add of a PKCS#11
 * token, a protector-remove half approved, a purge scheduled, and one cancelled in its window. */
static void gen_store_requests(void) {
        StorePolicy policy = STORE_POLICY_DEFAULT;
        AccessCaller a = { .uid = 2001 }, b = { .uid = 2002 };
        static const struct {
                const char *name;
                AccessKind kind;
                const char *target, *spec;
                unsigned approvals;
                bool cancel;
        } cases[] = {
                { "6-protector-add.request", ACCESS_KIND_PROTECTOR_ADD, "hsm-1",
                  "pkcs11 pkcs11:token=customer%20key;object=dkm-root;id=%01%02?module-name=softhsm2", 0, false },
                { "7-protector-remove.request", ACCESS_KIND_PROTECTOR_REMOVE, "local", NULL, 1, false },
                { "8-purge-scheduled.request", ACCESS_KIND_PURGE, "", NULL, 2, false },
                { "9-purge-cancelled.request", ACCESS_KIND_PURGE, "", NULL, 2, true },
                { "10-host-enrol.request", ACCESS_KIND_HOST_ENROL, "web-2", NULL, 0, false },
                { "11-host-remove.request", ACCESS_KIND_HOST_REMOVE, "web-3", NULL, 1, false },
        };

        policy.approval_levels[0] = 2001;
        policy.approval_levels[1] = 2002;
        policy.n_approval_levels = 2;
        policy.purge_delay_usec = 12ULL * 3600 * 1000000;
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                _cleanup_free_ char *text = NULL;
                AccessRequest r;
                size_t n;

                CHECK(access_request_init_store(&r, cases[i].kind, cases[i].target, cases[i].spec, 1000,
                                                "CHG-42: customer key \\ rotation", &policy,
                                                1700000000000000ULL) == 0);
                r.id = 6 + i;
                if (cases[i].approvals >= 1)
                        CHECK(access_approve(&r, &a, 1700000100000000ULL) == 0);
                if (cases[i].approvals >= 2) {
                        CHECK(access_approve(&r, &b, 1700000200000000ULL) == 1);
                        access_schedule(&r, 1700000200000000ULL, policy.purge_delay_usec);
                }
                if (cases[i].cancel)
                        access_close(&r, ACCESS_STATE_CANCELLED, 2002, NULL, 1700000300000000ULL);
                CHECK(access_request_format(&r, &text, &n) == 0);
                put_request(cases[i].name, i == 0 ? "access-request-protector-add" : NULL, text, n);
        }
}

static void gen_requests(const char *tmp) {
        StoreGroupPolicy policy = STORE_GROUP_POLICY_DEFAULT;
        AccessCaller a = { .uid = 2001 }, b = { .uid = 2002 };
        char *text;
        size_t n;

        policy.approval_levels[0] = 2001;
        policy.approval_levels[1] = 2002;
        policy.n_approval_levels = 2;
        for (unsigned i = 1; i <= 5; i++) {
                AccessRequest r;
                char name[32];
                bool retire = i == 5;

                CHECK(access_request_init(&r, retire ? ACCESS_KIND_RETIRE : ACCESS_KIND_ACCESS, "mail-creds",
                                          retire ? 2 : 0, 1000,
                                          "INC-4711: \\ d\xc3\xa9"
                                          "bogage",
                                          retire ? 0 : 900000000, &policy, 1700000000000000ULL) == 0);
                r.id = i;
                if (i >= 2)
                        CHECK(access_approve(&r, &a, 1700000100000000ULL) == 0);
                if (i >= 3) {
                        CHECK(access_approve(&r, &b, 1700000200000000ULL) == 1);
                        if (!retire)
                                access_grant(&r, 1700000200000000ULL);
                }
                if (i == 4)
                        access_close(&r, ACCESS_STATE_REVOKED, 2002, "done\twith it", 1700000300000000ULL);
                if (i == 5)
                        access_close(&r, ACCESS_STATE_DONE, 0, NULL, 1700000300000000ULL);
                CHECK(access_request_format(&r, &text, &n) == 0);
                snprintf(name, sizeof(name), "%u.request", i);
                put_request(name, i == 3 ? "access-request-3" : NULL, text, n);
                free(text);
                /* The granted one again as dkm wrote it before format 2. */
                if (i == 3)
                        put_format1(&r, "3-format1.request");
        }
        gen_store_requests();
}

static void gen_audit(const char *tmp) {
        static const AuditRecord recs[] = {
                { .event = "group-create",
                  .uid = 0,
                  .pid = 1234,
                  .comm = "dkmctl",
                  .object = "group/mail-creds",
                  .detail = "gid 1, xchacha20-poly1305, rollover-period-usec=0" },
                { .event = "request",
                  .uid = 1000,
                  .pid = 99,
                  .comm = "dkmctl",
                  .object = "group/mail-creds/request/1",
                  .detail = "access group/mail-creds: INC-4711 \\ d\xc3\xa9"
                            "bogage\n" },
                { .event = "refused-call",
                  .outcome = AUDIT_OUTCOME_REFUSED,
                  .uid = 4294967295U,
                  .object = "/",
                  .detail = "Rollover: org.dkm.KeyManager1.Error.AccessDenied" },
        };
        AuditOptions opts = { .checkpoint_interval = 2 };
        AuditError error = {};
        AuditLog *log = NULL;
        char dir[512], path[1024], *data, *line;
        size_t n;
        unsigned k = 0;

        snprintf(dir, sizeof(dir), "%s/audit", tmp);
        CHECK(audit_open(dir, &opts, &log, &error) == 0);
        for (size_t i = 0; i < sizeof(recs) / sizeof(recs[0]); i++)
                CHECK(audit_append(log, &recs[i]) == 0);
        CHECK(audit_close(log) == 0);
        snprintf(path, sizeof(path), "%s/audit-000001.log", dir);
        data = slurp(path, &n);
        for (line = strtok(data, "\n"); line; line = strtok(NULL, "\n")) {
                char name[32];

                snprintf(name, sizeof(name), "line-%u", ++k);
                put("audit-record", name, line, strlen(line));
        }
        free(data);
}

/* Bus inputs: method, path choice, signature choice, then the arguments (tests/fuzz/fuzz-bus.c
 * reads them in this order). One per method, with arguments that get past the first checks. */
static void gen_bus(void) {
        static const struct {
                const char *name;
                const char *bytes;
                size_t size;
        } cases[] = {
#define B(name, s) { name, s, sizeof(s) - 1 }
                B("create-group", "\x00\x00\x00\x04\x00newgroup\x00\x00\x02\x03\x01\x00\x00"),
                B("list-groups", "\x01\x00\x00"),
                B("get-group", "\x02\x00\x00\x00"),
                B("reload", "\x03\x00\x00"),
                B("request-access", "\x04\x00\x00\x00\x00INC-1\x00\x78"),
                B("list-requests", "\x05\x00\x00"),
                B("get-request", "\x06\x00\x00\x01"),
                B("rollover", "\x07\x00\x02\x00"),
                B("archive", "\x08\x00\x00\x00\x02"),
                B("retire", "\x09\x00\x00\x00\x02\x00old key\x00"),
                B("set-policy", "\x0a\x00\x02\x00\x02\x08\x00\x05\x02\x00\x01"),
                B("load", "\x0b\x00\x00\x00"),
                B("approve", "\x0c\x00\x01\x00"),
                B("deny", "\x0d\x00\x01\x00\x00no\x00"),
                B("cancel", "\x0e\x00\x04\x00"),
                B("revoke", "\x0f\x00\x02\x00"),
                B("get", "\x10\x00\x00\x00\x00"),
                B("get-all-group", "\x11\x01\x00\x00\x01"),
                B("set", "\x12\x00\x00\x00\x00\x00\x00x\x00"),
                B("introspect", "\x13\x00\x00"),
                B("managed-objects", "\x14\x00\x00"),
                /* Issue 8's (fuzz-bus-args.c: after the method and path bytes, a byte whose low
                 * bit says whether store.policy names approval levels, then the usual ones). */
                B("list-protectors", "\x15\x00\x00"),
                B("check-protectors", "\x16\x00\x00"),
                /* name "backup-key", type file, no option: added at once */
                B("add-protector-file", "\x17\x00\x00\x00\x04\x00" "backup-key\x00\x00\xc0\x00" "CHG-1\x00"),
                /* type pkcs11, Uri pkcs11:token=customer;object=dkm-root: the stubbed p11-kit
                 * loads nothing, ProtectorUnavailable */
                B("add-protector-pkcs11", "\x17\x00\x00\x00\x02\x01\x00\x00\x00\x03\x00" "CHG-2\x00"),
                /* the same with ?module-path=/usr/lib/softhsm/libsofthsm2.so */
                B("add-protector-pkcs11-module-path", "\x17\x00\x00\x00\x02\x01\x00\x00\x00\x0f\x00" "CHG-2\x00"),
                /* store levels on: a protector-add request */
                B("add-protector-pkcs11-request", "\x17\x00\x01\x00\x02\x01\x00\x00\x00\x03\x00" "CHG-2\x00"),
                /* name "tpm", type tpm2, Pcrs [7, 11]: no TPM, ProtectorUnavailable */
                B("add-protector-tpm2", "\x17\x00\x00\x00\x03\x02\x00\x00\x00\x02\x07\x0b\x00" "CHG-3\x00"),
                /* "local", in a fresh world the only one: LastProtector */
                B("remove-protector", "\x18\x00\x00\x00\x00\x00" "CHG-4\x00"),
                B("purge", "\x19\x00\x00\x00\x00" "CHG-5\x00"),                /* NoApprovers */
                B("purge-request", "\x19\x00\x01\x00\x00" "CHG-6\x00"),        /* a purge request */
                B("get-store-state", "\x10\x00\x00\x00\x21"),                /* manager StoreState */
                B("get-all-manager", "\x11\x00\x00\x00"),                     /* every store property */
                B("get-target", "\x10\x02\x05\x00\x02\x27"),                /* request 5's Target */
                B("get-all-request-store", "\x11\x02\x06\x00\x02"),          /* request 6, protector-remove */
                B("cancel-protector-add", "\x0e\x00\x05\x00"),                /* root's request 5 */
#undef B
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
                put("bus", cases[i].name, cases[i].bytes, cases[i].size);
}

static void gen_dropins(const char *example) {
        static const char *const variants[] = {
                "[KeyGroup]\nUnixGroup=1\n",
                "\xef\xbb\xbf# BOM first\n[KeyGroup]\nUnixGroup=svc\nAlgorithm=aes256-gcm\nRolloverPeriod=1d12h\n"
                "PropagationDelay=90s\nHotWindow=62\nAllowHumanMembers=yes\nApprovalGroups=ops 2001\tsec\n"
                "MaxGrant=2w\nRequestTimeout=15min\nRetireNeedsApproval=off\n",
                "mail-creds\n[KeyGroup]\n  UnixGroup = mail-svc  \n; comment\n",
        };
        size_t n;
        char *data = slurp(example, &n), name[32];

        put("dropin", "mail-creds.conf", data, n);
        free(data);
        for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
                snprintf(name, sizeof(name), "variant-%zu.conf", i + 1);
                put("dropin", name, variants[i], strlen(variants[i]));
        }
}

int main(int argc, char *argv[]) {
        char tmp[] = "/tmp/dkm-fuzz-corpus-XXXXXX";

        if (argc != 3) {
                fprintf(stderr, "usage: fuzz-corpus-gen OUTDIR EXAMPLE-DROPIN\n");
                return EXIT_FAILURE;
        }
        out_dir = argv[1];
        (void) mkdir(out_dir, 0755);
        CHECK(crypt_init() == 0);
        CHECK(mkdtemp(tmp));
        gen_ciphertexts();
        gen_store(tmp);
        gen_purged(tmp);
        gen_requests(tmp);
        gen_audit(tmp);
        gen_bus();
        gen_dropins(argv[2]);
        (void) nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        return EXIT_SUCCESS;
}
