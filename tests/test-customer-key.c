/* SPDX-License-Identifier: MIT */
/* The customer key end to end (issue 8): several protectors, an HSM that is away, refuses the PIN or
 * withdraws its key, and purge (cancelled and carried out), with the real dkmd, dbus-daemon, kernel
 * keyrings, keyring helper, SoftHSM2 token (and swtpm), throwaway accounts. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <systemd/sd-bus.h>
#include <time.h>
#include <unistd.h>

#include <p11-kit/p11-kit.h>
#include <p11-kit/pkcs11.h>

#include "audit.h"
#include "fileio.h"
#include "keyring-request.h"
#include "macro.h"
#include "store-internal.h"
#include "store.h"
#include "test-accounts.h"
#include "test-bus.h"
#include "test-helpers.h"
#include "test-swtpm.h"

/* The named errors are part of the interface: spelled out, not taken from dkmd's headers. */
#define E_WITHDRAWN       "org.dkm.KeyManager1.Error.CustomerKeyWithdrawn"
#define E_PURGE_SCHEDULED "org.dkm.KeyManager1.Error.PurgeScheduled"
#define E_PURGED          "org.dkm.KeyManager1.Error.Purged"
#define E_LAST_PROTECTOR  "org.dkm.KeyManager1.Error.LastProtector"
#define E_SELF_APPROVAL   "org.dkm.KeyManager1.Error.SelfApproval"
#define E_NO_APPROVERS    "org.dkm.KeyManager1.Error.NoApprovers"
#define E_STORE_LOCKED    "org.dkm.KeyManager1.Error.StoreLocked"

#define REQUEST_IFACE "org.dkm.KeyManager1.Request"
#define USEC 1000000ULL
#define PIN "1234"
#define SO_PIN "5678"

static const char *const key_group_tags[] = { "multi", "hsmdown", "withdraw", "cancel", "purge", "tpm", NULL };

static char module[256];

/* ---- time ---- */

static uint64_t now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * USEC + (uint64_t) ts.tv_nsec / 1000U;
}

static void sleep_ms(unsigned ms) {
        nanosleep(&(struct timespec){ ms / 1000, (long) (ms % 1000) * 1000000L }, NULL);
}

/* ---- the test's own directory, store and token ---- */

typedef struct Env {
        char dir[128];     /* TW.dir/<tag> */
        char state[160];   /* the store; exported as DKM_STATE_DIR */
        char audit[192];
        char conf[160];    /* SOFTHSM2_CONF */
        char tokens[160];  /* the token dir */
        char away[160];    /* where the token dir goes while "unplugged" */
        char pin[160];     /* DKM_PKCS11_PIN_FILE */
        char token[40];    /* the token's label */
        char uri[512];
} Env;

static void write_text(const char *path, const char *text, mode_t mode) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

        ck_assert_msg(fd >= 0, "%s: %m", path);
        ck_assert_int_eq(loop_write(fd, text, strlen(text)), 0);
        ck_assert_int_eq(fchmod(fd, mode), 0);
        close(fd);
}

static void run_or_fail(const char *cmd) {
        int status = system(cmd);

        ck_assert_msg(status == 0, "'%s' failed: %d", cmd, status);
}

/* A directory, a store (dkm-store init: the "local" key file) and, with token, a SoftHSM2 token
 * of its own; the environment dkmd and dkm-store inherit points at them. */
static void env_init(Env *e, const char *tag, bool token) {
        char cmd[512];

        snprintf(e->dir, sizeof(e->dir), "%s/%s", TW.dir, tag);
        ck_assert_int_eq(mkdir(e->dir, 0700), 0);
        snprintf(e->state, sizeof(e->state), "%s/state", e->dir);
        snprintf(e->audit, sizeof(e->audit), "%s/audit", e->state);
        ck_assert_int_eq(setenv("DKM_STATE_DIR", e->state, 1), 0);
        ck_assert_int_eq(test_store("init"), 0);
        if (!token)
                return;
        snprintf(e->token, sizeof(e->token), "ck-%s", tag);
        snprintf(e->tokens, sizeof(e->tokens), "%s/tokens", e->dir);
        snprintf(e->away, sizeof(e->away), "%s/tokens.away", e->dir);
        snprintf(e->conf, sizeof(e->conf), "%s/softhsm2.conf", e->dir);
        snprintf(e->pin, sizeof(e->pin), "%s/pin", e->dir);
        ck_assert_int_eq(mkdir(e->tokens, 0700), 0);
        snprintf(cmd, sizeof(cmd), "directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n",
                 e->tokens);
        write_text(e->conf, cmd, 0600);
        write_text(e->pin, PIN "\n", 0600);
        ck_assert_int_eq(setenv("SOFTHSM2_CONF", e->conf, 1), 0);
        ck_assert_int_eq(setenv("DKM_PKCS11_PIN_FILE", e->pin, 1), 0);
        unsetenv("DKM_PKCS11_PIN");
        snprintf(cmd, sizeof(cmd),
                 "softhsm2-util --init-token --free --label %s --pin " PIN " --so-pin " SO_PIN " >/dev/null",
                 e->token);
        run_or_fail(cmd);
        snprintf(e->uri, sizeof(e->uri), "pkcs11:token=%s;object=dkm-root?module-path=%s", e->token, module);
}

/* Unplug: the token dir is emptied (its token moved away), so the module finds no token by that label. */
static void token_unplug(const Env *e) {
        ck_assert_int_eq(rename(e->tokens, e->away), 0);
        ck_assert_int_eq(mkdir(e->tokens, 0700), 0);
}

static void token_plug(const Env *e) {
        ck_assert_int_eq(rmdir(e->tokens), 0);
        ck_assert_int_eq(rename(e->away, e->tokens), 0);
}

/* The token's admin, through the PKCS#11 API in a child (no module state shared with anything). */
enum { TOK_KEYGEN, TOK_DESTROY };

static int token_child(const Env *e, int op, const char *label) {
        CK_FUNCTION_LIST *m = p11_kit_module_load(module, 0);
        CK_SLOT_ID slots[16];
        CK_ULONG n = ELEMENTSOF(slots);
        CK_SESSION_HANDLE h = 0;
        CK_OBJECT_HANDLE o;
        CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
        char padded[33];
        bool found = false;

        memset(padded, ' ', 32);
        padded[32] = 0;
        memcpy(padded, e->token, strlen(e->token));
        if (!m || p11_kit_module_initialize(m) != CKR_OK)
                return 10;
        if (m->C_GetSlotList(CK_TRUE, slots, &n) != CKR_OK)
                return 11;
        for (CK_ULONG i = 0; i < n && !found; i++) {
                CK_TOKEN_INFO ti;

                if (m->C_GetTokenInfo(slots[i], &ti) == CKR_OK && memcmp(ti.label, padded, 32) == 0) {
                        if (m->C_OpenSession(slots[i], CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &h) != CKR_OK)
                                return 12;
                        found = true;
                }
        }
        if (!found || m->C_Login(h, CKU_USER, (CK_UTF8CHAR_PTR) PIN, strlen(PIN)) != CKR_OK)
                return 13;
        if (op == TOK_KEYGEN) {
                CK_BBOOL t = CK_TRUE, f = CK_FALSE;
                CK_ULONG len = 32;
                CK_MECHANISM mech = { CKM_AES_KEY_GEN, NULL, 0 };
                CK_ATTRIBUTE a[] = {
                        { CKA_CLASS, &cls, sizeof(cls) },      { CKA_TOKEN, &t, sizeof(t) },
                        { CKA_PRIVATE, &t, sizeof(t) },        { CKA_SENSITIVE, &t, sizeof(t) },
                        { CKA_EXTRACTABLE, &f, sizeof(f) },    { CKA_ENCRYPT, &t, sizeof(t) },
                        { CKA_DECRYPT, &t, sizeof(t) },        { CKA_WRAP, &f, sizeof(f) },
                        { CKA_VALUE_LEN, &len, sizeof(len) },  { CKA_LABEL, (void *) label, strlen(label) },
                };
                return m->C_GenerateKey(h, &mech, a, ELEMENTSOF(a), &o) == CKR_OK ? 0 : 20;
        }
        {
                CK_ATTRIBUTE q[] = { { CKA_CLASS, &cls, sizeof(cls) }, { CKA_LABEL, (void *) label, strlen(label) } };
                CK_ULONG k = 0;

                if (m->C_FindObjectsInit(h, q, ELEMENTSOF(q)) != CKR_OK || m->C_FindObjects(h, &o, 1, &k) != CKR_OK ||
                    m->C_FindObjectsFinal(h) != CKR_OK || k != 1)
                        return 30;
        }
        return m->C_DestroyObject(h, o) == CKR_OK ? 0 : 31;
}

static void token_op(const Env *e, int op, const char *label) {
        int status;
        pid_t pid;

        fflush(NULL);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0)
                _exit(token_child(e, op, label));
        status = test_wait(pid);
        ck_assert_msg(status == 0, "token operation %d on %s: status %d", op, label, status);
}

/* A store protected by the token (AES key "dkm-root", made by its admin) besides "local". */
static void add_hsm_protector(const Env *e) {
        char uri[600];

        token_op(e, TOK_KEYGEN, "dkm-root");
        snprintf(uri, sizeof(uri), "--uri=%s", e->uri);
        ck_assert_int_eq(test_store("protector", "add-pkcs11", "hsm", uri), 0);
}

static void dkmd_start(void) {
        test_dkmd_start((const char *const[]){ "--protector-check-interval=2s", NULL });
}

/* The whole of dkmd's log so far (malloc'd, NUL-terminated). */
static char *read_all(const char *path, size_t *ret_size) {
        struct stat st;
        char *data;
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

        ck_assert_msg(fd >= 0, "%s: %m", path);
        ck_assert_int_eq(fstat(fd, &st), 0);
        data = malloc((size_t) st.st_size + 1);
        ck_assert_ptr_nonnull(data);
        ck_assert_int_eq(pread(fd, data, (size_t) st.st_size, 0), st.st_size);
        data[st.st_size] = 0;
        close(fd);
        if (ret_size)
                *ret_size = (size_t) st.st_size;
        return data;
}

/* ---- properties and calls ---- */

static uint64_t mgr_t(const char *property) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = test_bus_open();
        uint64_t v = 0;

        ck_assert_int_ge(sd_bus_get_property_trivial(bus, SVC, MGR_PATH, MGR_IFACE, property, NULL, 't', &v), 0);
        return v;
}

static const char *store_state(void) {
        static char s[32];
        _cleanup_free_ char *v = test_manager_property("StoreState");

        snprintf(s, sizeof(s), "%s", v);
        return s;
}

static void assert_store_state(const char *want) {
        _cleanup_free_ char *detail = test_manager_property("StoreStateDetail");

        ck_assert_msg(strcmp(store_state(), want) == 0, "StoreState %s (%s), want %s", store_state(), detail, want);
}

static bool wait_store_state(const char *want, unsigned ms) {
        for (unsigned waited = 0;; waited += 100) {
                if (strcmp(store_state(), want) == 0)
                        return true;
                if (waited >= ms)
                        return false;
                sleep_ms(100);
        }
}

static void must_wait_store_state(const char *want, unsigned ms) {
        if (!wait_store_state(want, ms)) {
                _cleanup_free_ char *detail = test_manager_property("StoreStateDetail");

                ck_abort_msg("StoreState %s (%s) after %u ms, want %s", store_state(), detail, ms, want);
        }
}

static char *req_s(const char *request, const char *property) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = test_bus_open();
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        char *s = NULL;

        ck_assert_msg(sd_bus_get_property_string(bus, SVC, request, REQUEST_IFACE, property, &e, &s) >= 0,
                      "%s of %s: %s", property, request, e.message ?: "");
        return s;
}

static uint64_t req_t(const char *request, const char *property) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = test_bus_open();
        uint64_t v = 0;

        ck_assert_int_ge(sd_bus_get_property_trivial(bus, SVC, request, REQUEST_IFACE, property, NULL, 't', &v), 0);
        return v;
}

static void assert_req_s(const char *request, const char *property, const char *want) {
        _cleanup_free_ char *v = req_s(request, property);

        ck_assert_msg(strcmp(v, want) == 0, "%s of %s is '%s', want '%s'", property, request, v, want);
}

static bool wait_req_state(const char *request, const char *want, unsigned ms) {
        for (unsigned waited = 0;; waited += 100) {
                _cleanup_free_ char *s = req_s(request, "State");

                if (strcmp(s, want) == 0)
                        return true;
                if (waited >= ms)
                        return false;
                sleep_ms(100);
        }
}

static void assert_ok(const TestCall *c, const char *what) {
        ck_assert_msg(c->r >= 0, "%s: %s: %s", what, c->error, c->message);
}

static void assert_error(const TestCall *c, const char *name, const char *what) {
        ck_assert_msg(c->r < 0 && strcmp(c->error, name) == 0, "%s: got %s (%s), want %s", what,
                      c->r >= 0 ? "success" : c->error, c->message, name);
}

/* ListProtectors (or CheckProtectors): the health and detail of name ("absent" if not listed), and
 * how many are listed. */
typedef struct Protectors {
        size_t n;
        char name[8][68], type[8][16], health[8][16], detail[8][256];
} Protectors;

static int protectors_call(const char *method, Protectors *ret, sd_bus_error *e) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = test_bus_open();
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *name, *type, *health, *detail;
        int r;

        memset(ret, 0, sizeof(*ret));
        r = sd_bus_call_method(bus, SVC, MGR_PATH, MGR_IFACE, method, e, &reply, NULL);
        if (r < 0)
                return r;
        ck_assert_int_ge(sd_bus_message_enter_container(reply, 'a', "(ssss)"), 0);
        while ((r = sd_bus_message_read(reply, "(ssss)", &name, &type, &health, &detail)) > 0) {
                ck_assert_uint_lt(ret->n, 8);
                snprintf(ret->name[ret->n], sizeof(ret->name[0]), "%s", name);
                snprintf(ret->type[ret->n], sizeof(ret->type[0]), "%s", type);
                snprintf(ret->health[ret->n], sizeof(ret->health[0]), "%s", health);
                snprintf(ret->detail[ret->n], sizeof(ret->detail[0]), "%s", detail);
                ret->n++;
        }
        ck_assert_int_ge(r, 0);
        return 0;
}

static void list_protectors(Protectors *ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;

        ck_assert_msg(protectors_call("ListProtectors", ret, &e) >= 0, "ListProtectors: %s", e.message ?: "");
}

static void check_protectors(Protectors *ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;

        ck_assert_msg(protectors_call("CheckProtectors", ret, &e) >= 0, "CheckProtectors: %s: %s", e.name ?: "",
                      e.message ?: "");
}

static const char *health_of(const Protectors *p, const char *name, const char *type) {
        for (size_t i = 0; i < p->n; i++)
                if (strcmp(p->name[i], name) == 0) {
                        if (type)
                                ck_assert_str_eq(p->type[i], type);
                        return p->health[i];
                }
        return "absent";
}

static const char *detail_of(const Protectors *p, const char *name) {
        for (size_t i = 0; i < p->n; i++)
                if (strcmp(p->name[i], name) == 0)
                        return p->detail[i];
        return "";
}

static void add_protector(const TestCreds *c, TestCall *ret, const char *name, const char *type, const char *uri) {
        if (uri)
                (void) test_call_as(c, ret, MGR_PATH, MGR_IFACE, "AddProtector", "ssa{sv}s", name, type, 1, "Uri", "s",
                                    uri, "CHG-1: protector change");
        else
                (void) test_call_as(c, ret, MGR_PATH, MGR_IFACE, "AddProtector", "ssa{sv}s", name, type, 0,
                                    "CHG-1: protector change");
}

static void remove_protector(const TestCreds *c, TestCall *ret, const char *name) {
        (void) test_call_as(c, ret, MGR_PATH, MGR_IFACE, "RemoveProtector", "ss", name, "CHG-2: protector change");
}

static void act(const TestCreds *c, const char *request, const char *method, TestCall *ret) {
        (void) test_call_as(c, ret, request, REQUEST_IFACE, method, NULL);
}

static void must_act(const TestCreds *c, const char *request, const char *method) {
        TestCall r;

        act(c, request, method, &r);
        ck_assert_msg(r.r >= 0, "%s of %s as uid %u: %s: %s", method, request, c ? (unsigned) c->uid : 0, r.error,
                      r.message);
}

/* Approver1 who is also in dkmd's admin group: may request store-wide changes, and is the one
 * who then must not approve them. */
static TestCreds creds_admin_approver(void) {
        return (TestCreds){ .uid = TW.approver1_uid,
                            .gid = TW.approver1_gid,
                            .groups = { TW.appr1_gid, TW.gid },
                            .n_groups = 2 };
}

/* Levels 1 and 2 approve (the requester, an admin in appr1, is refused with SelfApproval first). */
static void approve_both_levels(const char *request) {
        TestCreds self = creds_admin_approver(), both = test_creds_both(), a2 = test_creds_approver2();
        TestCall c;

        act(&self, request, "Approve", &c);
        assert_error(&c, E_SELF_APPROVAL, "the requester approves");
        must_act(&both, request, "Approve");
        must_act(&a2, request, "Approve");
}

static void create_group_refused(const char *name, const char *error) {
        TestCall c;

        (void) test_call_as(NULL, &c, MGR_PATH, MGR_IFACE, "CreateGroup", "sua{sv}", name, (uint32_t) TW.gid, 0);
        assert_error(&c, error, "CreateGroup");
}

static void group_call(const char *gpath, const char *method, const char *error) {
        TestCall c;

        (void) test_call_as(NULL, &c, gpath, GROUP_IFACE, method, NULL);
        if (error)
                assert_error(&c, error, method);
        else
                assert_ok(&c, method);
}

/* ---- the dkm CLI as the member ---- */

static const char *work(char buf[static 300], const char *group, const char *name) {
        snprintf(buf, 300, "%s/%s-%s", TW.work_dir, group, name);
        return buf;
}

/* The member decrypts path: want is the plaintext, or NULL when it must fail. A decryption
 * refused while the keys were out of the kernel leaves the kernel's negative entry for the
 * refused upcall for KEYRING_REQUEST_REJECT_TIMEOUT_SEC: after the keys come back, the member
 * may be refused that long, so a decryption that must work is tried for a while. */
static void member_decrypts(const char *path, const char *want) {
        TestCreds member = test_creds_member();
        TestRun r;

        for (int tries = 0;; tries++) {
                test_run(&r, NULL, 0, &member,
                         (char *const[]){ (char *) test_env_path("DKM_CLI"), (char *) "decrypt", (char *) "-i",
                                          (char *) path, NULL });
                if (!want || r.status == 0 || tries >= 4 * (int) (KEYRING_REQUEST_REJECT_TIMEOUT_SEC + 2))
                        break;
                test_run_free(&r);
                usleep(250 * 1000);
        }
        if (want) {
                ck_assert_msg(r.status == 0, "decrypt %s: status %d: %s", path, r.status, r.err);
                ck_assert_msg(r.out_size == strlen(want) && memcmp(r.out, want, r.out_size) == 0, "other plaintext");
        } else {
                ck_assert_msg(r.status != 0, "decrypt %s worked, must not", path);
                ck_assert_uint_eq(r.out_size, 0);
        }
        test_run_free(&r);
}

/* ---- dkm-store, dkmctl ---- */

/* Runs argv (root), its status; stdout and stderr together in out. */
static int run_capture(char *const argv[], char *out, size_t size) {
        TestRun r;
        int status;

        test_run(&r, NULL, 0, NULL, argv);
        status = r.status;
        snprintf(out, size, "%s%s", r.out ? (char *) r.out : "", r.err);
        test_run_free(&r);
        return status;
}

static void assert_dkm_store_fails(const char *verb, const char *words) {
        char out[4096];
        int status = run_capture((char *const[]){ (char *) TW.store, (char *) verb, NULL }, out, sizeof(out));

        ck_assert_msg(status != 0 && strstr(out, words), "dkm-store %s: status %d, want a failure saying '%s': %s",
                      verb, status, words, out);
}

/* dkmctl with up to five arguments (NULL-terminated early); its status, the output in out. */
static int dkmctl(char *out, size_t size, const char *a1, const char *a2, const char *a3, const char *a4,
                  const char *a5) {
        return run_capture((char *const[]){ (char *) test_env_path("DKM_DKMCTL"), (char *) a1, (char *) a2, (char *) a3,
                                            (char *) a4, (char *) a5, NULL },
                           out, size);
}

static void dkmctl_out(char *out, size_t size, const char *a1, const char *a2, const char *a3, const char *a4) {
        int status = dkmctl(out, size, a1, a2, a3, a4, NULL);

        ck_assert_msg(status == 0, "dkmctl %s %s %s: status %d: %s", a1, a2 ?: "", a3 ?: "", status, out);
}

/* ---- the audit log ---- */

static bool audit_has(const Env *e, const char *event, const char *object) {
        _cleanup_(audit_reader_freep) AuditReader *r = NULL;
        const AuditFilter f = { .event = event };
        const AuditEntry *a;
        bool found = false;
        int k;

        ck_assert_int_eq(audit_reader_new(e->audit, &f, &r), 0);
        while ((k = audit_reader_next(r, &a)) > 0)
                if (a->outcome == AUDIT_OUTCOME_OK && (!object || strcmp(a->object, object) == 0))
                        found = true;
        ck_assert_msg(k == 0, "reading %s: %s", e->audit, audit_reader_error(r) ?: strerror(-k));
        return found;
}

static void assert_audited(const Env *e, const char *event, const char *object) {
        ck_assert_msg(audit_has(e, event, object), "no audit record event=%s object=%s", event, object ?: "*");
}

static void assert_audit_verifies(const Env *e) {
        AuditReport rep = {};
        char out[4096], dir[256];
        int r = audit_verify(e->audit, NULL, &rep);

        ck_assert_msg(r == 0, "audit_verify %s: %d: %s", e->audit, r, rep.error);
        snprintf(dir, sizeof(dir), "--dir=%s", e->audit);
        dkmctl_out(out, sizeof(out), "audit", "verify", dir, NULL);
}

static const char *request_object(const char *request, char buf[static 128]) {
        const char *id = strrchr(request, '/');

        ck_assert_ptr_nonnull(id);
        snprintf(buf, 128, "store/request%s", id);
        return buf;
}

/* ========================================================================================= */

/* Two protectors (key file and SoftHSM2), changed at once without approval levels, through
 * requests with them; every change audited. */
START_TEST(test_several_protectors) {
        Env e = {};
        TestCreds self = creds_admin_approver(), other = test_creds_other();
        const char *g = test_key_group("multi");
        _cleanup_free_ char *gpath = NULL, *req = NULL;
        char ct[300], out[8192], obj[128], dir[256];
        Protectors p;
        TestCall c;

        env_init(&e, "multi", true);
        add_hsm_protector(&e);
        dkmd_start();
        assert_store_state("unlocked");
        list_protectors(&p);
        ck_assert_uint_eq(p.n, 2);
        ck_assert_str_eq(health_of(&p, "local", "file"), "ok");
        ck_assert_str_eq(health_of(&p, "hsm", "pkcs11"), "ok");
        dkmctl_out(out, sizeof(out), "protector", "list", NULL, NULL);
        ck_assert_msg(strstr(out, "local") && strstr(out, "hsm") && strstr(out, "pkcs11") && strstr(out, "ok"),
                      "dkmctl protector list: %s", out);
        ck_assert_uint_gt(mgr_t("NextCheckUSec"), 0); /* a device is checked regularly */

        gpath = test_create_group(g);
        test_member_encrypt(g, work(ct, g, "ct"), "two ways in");
        member_decrypts(ct, "two ways in");

        /* No approval levels in the store policy: done at once ("/"). Not for non-admins. */
        add_protector(&other, &c, "local2", "file", NULL);
        assert_error(&c, E_ACCESS_DENIED, "AddProtector by a non-admin");
        add_protector(NULL, &c, "local2", "file", NULL);
        assert_ok(&c, "AddProtector local2");
        ck_assert_str_eq(c.path, "/");
        list_protectors(&p);
        ck_assert_str_eq(health_of(&p, "local2", "file"), "ok");
        remove_protector(NULL, &c, "local");
        assert_ok(&c, "RemoveProtector local");
        ck_assert_str_eq(c.path, "/");
        list_protectors(&p);
        ck_assert_str_eq(health_of(&p, "local", NULL), "absent");
        ck_assert_uint_eq(p.n, 2);
        remove_protector(NULL, &c, "local2");
        assert_ok(&c, "RemoveProtector local2");
        /* A second token key, added through dkmctl (AddProtector with the Uri option). */
        {
                char uri[600], *o;
                int status;

                token_op(&e, TOK_KEYGEN, "dkm-root2");
                snprintf(uri, sizeof(uri), "--uri=%s", e.uri);
                o = strstr(uri, "object=dkm-root");
                ck_assert_ptr_nonnull(o);
                memmove(o + strlen("object=dkm-root2"), o + strlen("object=dkm-root"),
                        strlen(o + strlen("object=dkm-root")) + 1);
                memcpy(o, "object=dkm-root2", strlen("object=dkm-root2"));
                status = dkmctl(out, sizeof(out), "protector", "add", "hsm2", "--type=pkcs11", uri);
                ck_assert_msg(status != 0, "dkmctl protector add without --justification worked: %s", out);
                status = run_capture((char *const[]){ (char *) test_env_path("DKM_DKMCTL"), (char *) "protector",
                                                      (char *) "add", (char *) "hsm2", (char *) "--type=pkcs11", uri,
                                                      (char *) "--justification=CHG-3: second key", NULL },
                                     out, sizeof(out));
                ck_assert_msg(status == 0 && strstr(out, "Added pkcs11 protector hsm2"), "dkmctl protector add: %d: %s",
                              status, out);
                list_protectors(&p);
                ck_assert_str_eq(health_of(&p, "hsm2", "pkcs11"), "ok");
                dkmctl_out(out, sizeof(out), "protector", "check", NULL, NULL);
                ck_assert_msg(strstr(out, "hsm2"), "dkmctl protector check: %s", out);
                dkmctl_out(out, sizeof(out), "protector", "remove", "hsm2", "--justification=CHG-4: not needed");
                ck_assert_msg(strstr(out, "Removed protector hsm2"), "dkmctl protector remove: %s", out);
                list_protectors(&p);
                ck_assert_str_eq(health_of(&p, "hsm2", NULL), "absent");
        }
        /* The token is the only way in left. */
        remove_protector(NULL, &c, "hsm");
        assert_error(&c, E_LAST_PROTECTOR, "removing the last protector");
        list_protectors(&p);
        ck_assert_uint_eq(p.n, 1);
        ck_assert_str_eq(health_of(&p, "hsm", "pkcs11"), "ok");
        assert_store_state("unlocked");

        /* With approval levels: requests, carried out after the last approval. */
        snprintf(out, sizeof(out), "--approval-groups=%s,%s", TW.appr1, TW.appr2);
        ck_assert_int_eq(test_store("policy", "set", out), 0);
        add_protector(&self, &c, "local3", "file", NULL);
        assert_ok(&c, "AddProtector local3 with approvals");
        ck_assert_msg(strncmp(c.path, "/org/dkm/KeyManager1/request/", 29) == 0, "path '%s'", c.path);
        req = strdup(c.path);
        assert_req_s(req, "Kind", "protector-add");
        assert_req_s(req, "Target", "local3");
        assert_req_s(req, "Spec", "file");
        assert_req_s(req, "Group", "");
        assert_req_s(req, "State", "pending");
        list_protectors(&p);
        ck_assert_str_eq(health_of(&p, "local3", NULL), "absent");
        approve_both_levels(req);
        ck_assert_msg(wait_req_state(req, "done", 3000), "protector-add request not done");
        list_protectors(&p);
        ck_assert_str_eq(health_of(&p, "local3", "file"), "ok");
        request_object(req, obj);
        assert_audited(&e, "request", obj);
        assert_audited(&e, "approve", obj);
        assert_audited(&e, "protector-add", "store");

        free(req);
        remove_protector(&self, &c, "hsm");
        assert_ok(&c, "RemoveProtector hsm with approvals");
        ck_assert_msg(strncmp(c.path, "/org/dkm/KeyManager1/request/", 29) == 0, "path '%s'", c.path);
        req = strdup(c.path);
        assert_req_s(req, "Kind", "protector-remove");
        assert_req_s(req, "Target", "hsm");
        list_protectors(&p);
        ck_assert_str_eq(health_of(&p, "hsm", "pkcs11"), "ok");
        approve_both_levels(req);
        ck_assert_msg(wait_req_state(req, "done", 3000), "protector-remove request not done");
        list_protectors(&p);
        ck_assert_str_eq(health_of(&p, "hsm", NULL), "absent");
        ck_assert_uint_eq(p.n, 1);
        request_object(req, obj);
        assert_audited(&e, "request", obj);
        assert_audited(&e, "protector-remove", "store");
        /* The last one, with approvals too: refused at the call. */
        remove_protector(&self, &c, "local3");
        assert_error(&c, E_LAST_PROTECTOR, "removing the last protector with approvals");
        /* Two removals filed while both are there: the second, carried out last, is refused then. */
        add_protector(&self, &c, "local4", "file", NULL);
        assert_ok(&c, "AddProtector local4");
        approve_both_levels(c.path);
        ck_assert_msg(wait_req_state(c.path, "done", 3000), "protector-add local4 not done");
        {
                _cleanup_free_ char *r1 = NULL, *r2 = NULL;

                remove_protector(&self, &c, "local3");
                assert_ok(&c, "RemoveProtector local3");
                r1 = strdup(c.path);
                remove_protector(&self, &c, "local4");
                assert_ok(&c, "RemoveProtector local4");
                r2 = strdup(c.path);
                approve_both_levels(r1);
                ck_assert_msg(wait_req_state(r1, "done", 3000), "first removal not done");
                {
                        TestCreds both = test_creds_both(), a2 = test_creds_approver2();

                        must_act(&both, r2, "Approve");
                        /* The last approval hears why the change was not made. */
                        act(&a2, r2, "Approve", &c);
                        assert_error(&c, E_LAST_PROTECTOR, "carrying out the removal of the last protector");
                }
                ck_assert_msg(wait_req_state(r2, "failed", 3000), "second removal not failed");
                list_protectors(&p);
                ck_assert_uint_eq(p.n, 1);
                ck_assert_str_eq(health_of(&p, "local4", "file"), "ok");
        }

        member_decrypts(ct, "two ways in");
        group_call(gpath, "Rollover", NULL);
        ck_assert_int_eq(test_dkmd_stop(false), 0);
        assert_audit_verifies(&e);
        snprintf(dir, sizeof(dir), "--dir=%s", e.audit);
        dkmctl_out(out, sizeof(out), "--json", "audit", "show", dir);
        ck_assert_msg(strstr(out, "\"event\":\"protector-add\"") && strstr(out, "\"event\":\"protector-remove\""),
                      "dkmctl audit show lacks the protector events: %.2000s", out);
}
END_TEST

/* Only usable protectors count: with the token's key deleted, the key file is the last way in,
 * at the call and again when an approved removal is carried out. */
START_TEST(test_last_usable_protector) {
        Env e = {};
        TestCreds self = creds_admin_approver(), both = test_creds_both(), a2 = test_creds_approver2();
        _cleanup_free_ char *req = NULL, *detail = NULL;
        char policy[256];
        Protectors p;
        TestCall c;

        env_init(&e, "lastusable", true);
        add_hsm_protector(&e);
        snprintf(policy, sizeof(policy), "--approval-groups=%s,%s", TW.appr1, TW.appr2);
        ck_assert_int_eq(test_store("policy", "set", policy), 0);
        dkmd_start();
        assert_store_state("unlocked");

        /* Filed while the token still works. */
        remove_protector(&self, &c, "local");
        assert_ok(&c, "RemoveProtector local");
        req = strdup(c.path);
        must_act(&both, req, "Approve");

        token_op(&e, TOK_DESTROY, "dkm-root");
        check_protectors(&p);
        ck_assert_str_eq(health_of(&p, "local", "file"), "ok");
        ck_assert_str_eq(health_of(&p, "hsm", "pkcs11"), "withdrawn");
        assert_store_state("unlocked");
        detail = test_manager_property("StoreStateDetail");
        ck_assert_msg(strcmp(detail, "") == 0, "StoreStateDetail '%s' while unlocked", detail);

        act(&a2, req, "Approve", &c);
        assert_error(&c, E_LAST_PROTECTOR, "carrying out the removal of the last usable protector");
        ck_assert_msg(wait_req_state(req, "failed", 3000), "removal not failed");
        remove_protector(&self, &c, "local");
        assert_error(&c, E_LAST_PROTECTOR, "removing the last usable protector");
        list_protectors(&p);
        ck_assert_str_eq(health_of(&p, "local", "file"), "ok");
        assert_store_state("unlocked");
        ck_assert_int_eq(test_dkmd_stop(false), 0);
        ck_assert_int_eq(test_store("check"), 0);
}
END_TEST

/* The token away at start, a refused PIN, the token pulled mid-run. */
START_TEST(test_hsm_unavailable) {
        Env e = {};
        const char *g = test_key_group("hsmdown");
        _cleanup_free_ char *gpath = NULL, *detail = NULL;
        char ct[300], want[128];
        uint64_t next;
        Protectors p;
        TestCall c;

        env_init(&e, "hsmdown", true);
        add_hsm_protector(&e);
        ck_assert_int_eq(test_store("protector", "remove", "local"), 0);

        /* A first run loads the group's keys into the kernel. */
        dkmd_start();
        assert_store_state("unlocked");
        gpath = test_create_group(g);
        test_member_encrypt(g, work(ct, g, "ct"), "served from the kernel");
        member_decrypts(ct, "served from the kernel");
        ck_assert_int_eq(test_dkmd_stop(false), 0);

        /* The token away at start: dkmd serves what the kernel holds and retries. */
        token_unplug(&e);
        dkmd_start();
        assert_store_state("waiting");
        detail = test_manager_property("StoreStateDetail");
        snprintf(want, sizeof(want), "no token labelled '%s'", e.token);
        ck_assert_msg(strstr(detail, "hsm") && strstr(detail, want), "StoreStateDetail '%s'", detail);
        next = mgr_t("NextCheckUSec");
        ck_assert_uint_gt(next, now_usec() - USEC);
        ck_assert_uint_le(next, now_usec() + 3 * USEC);
        list_protectors(&p);
        ck_assert_str_eq(health_of(&p, "hsm", "pkcs11"), "unavailable");
        member_decrypts(ct, "served from the kernel");
        group_call(gpath, "Rollover", E_STORE_LOCKED);

        token_plug(&e);
        must_wait_store_state("unlocked", 6000);
        group_call(gpath, "Rollover", NULL);
        member_decrypts(ct, "served from the kernel");
        ck_assert_int_eq(test_dkmd_stop(false), 0);

        /* A wrong PIN: one try, then only CheckProtectors() tries again. */
        write_text(e.pin, "9999\n", 0600);
        dkmd_start();
        assert_store_state("waiting");
        list_protectors(&p);
        ck_assert_str_eq(health_of(&p, "hsm", "pkcs11"), "pin-refused");
        ck_assert_msg(strstr(detail_of(&p, "hsm"), "login refused"), "detail '%s'", detail_of(&p, "hsm"));
        write_text(e.pin, PIN "\n", 0600);
        sleep_ms(5000); /* over two check intervals */
        assert_store_state("waiting");
        list_protectors(&p);
        ck_assert_str_eq(health_of(&p, "hsm", "pkcs11"), "pin-refused");
        (void) test_call_as(&(TestCreds){ .uid = TW.other_uid, .gid = TW.other_gid }, &c, MGR_PATH, MGR_IFACE,
                            "CheckProtectors", NULL);
        assert_error(&c, E_ACCESS_DENIED, "CheckProtectors by a non-admin");
        check_protectors(&p);
        ck_assert_str_eq(health_of(&p, "hsm", "pkcs11"), "ok");
        assert_store_state("unlocked");
        member_decrypts(ct, "served from the kernel");

        /* Pulled mid-run: degraded, still serving from the root key held. */
        token_unplug(&e);
        must_wait_store_state("degraded", 6000);
        list_protectors(&p);
        ck_assert_str_eq(health_of(&p, "hsm", "pkcs11"), "unavailable");
        member_decrypts(ct, "served from the kernel");
        group_call(gpath, "Rollover", NULL);
        token_plug(&e);
        must_wait_store_state("unlocked", 6000);
        ck_assert_int_eq(test_dkmd_stop(false), 0);
        assert_audited(&e, "protector-check", "store");
        assert_audited(&e, "store-unlock", "store");
        assert_audit_verifies(&e);
}
END_TEST

/* The customer deletes the token's key: withdrawn, every key out of the kernel, loads refused. */
START_TEST(test_withdrawal) {
        Env e = {};
        const char *g = test_key_group("withdraw");
        _cleanup_free_ char *gpath = NULL;
        char ct[300];
        Protectors p;

        env_init(&e, "withdraw", true);
        add_hsm_protector(&e);
        ck_assert_int_eq(test_store("protector", "remove", "local"), 0);
        dkmd_start();
        assert_store_state("unlocked");
        gpath = test_create_group(g);
        test_member_encrypt(g, work(ct, g, "ct"), "until withdrawn");
        member_decrypts(ct, "until withdrawn");

        {
                char cmd[512];

                snprintf(cmd, sizeof(cmd), "cp -a '%s' '%s'", e.tokens, e.away); /* the customer's backup */
                run_or_fail(cmd);
        }
        token_op(&e, TOK_DESTROY, "dkm-root");
        must_wait_store_state("withdrawn", 6000);
        list_protectors(&p);
        ck_assert_str_eq(health_of(&p, "hsm", "pkcs11"), "withdrawn");
        member_decrypts(ct, NULL);
        group_call(gpath, "Rollover", E_WITHDRAWN);
        group_call(gpath, "Load", E_WITHDRAWN);
        create_group_refused("ck-another", E_WITHDRAWN);
        ck_assert_uint_gt(mgr_t("NextCheckUSec"), 0); /* the customer may give it back */

        /* The customer restores the key from their backup: dkmd notices and serves again. */
        {
                char cmd[512];

                snprintf(cmd, sizeof(cmd), "rm -rf '%s' && cp -a '%s' '%s'", e.tokens, e.away, e.tokens);
                run_or_fail(cmd);
        }
        must_wait_store_state("unlocked", 6000);
        member_decrypts(ct, "until withdrawn");
        group_call(gpath, "Rollover", NULL);
        ck_assert_int_eq(test_dkmd_stop(false), 0);
        assert_audited(&e, "store-withdrawn", "store");
        assert_audited(&e, "store-restored", "store");
        assert_audit_verifies(&e);
}
END_TEST

static char *purge_request(const Env *e) {
        TestCreds self = creds_admin_approver(), other = test_creds_other();
        TestCall c;

        (void) test_call_as(&other, &c, MGR_PATH, MGR_IFACE, "Purge", "s", "not mine to ask");
        assert_error(&c, E_ACCESS_DENIED, "Purge by a non-admin");
        (void) test_call_as(&self, &c, MGR_PATH, MGR_IFACE, "Purge", "s", "CUST-9: contract ended");
        assert_ok(&c, "Purge");
        ck_assert_msg(strncmp(c.path, "/org/dkm/KeyManager1/request/", 29) == 0, "path '%s'", c.path);
        assert_req_s(c.path, "Kind", "purge");
        assert_req_s(c.path, "State", "pending");
        return strdup(c.path);
}

/* Purge approved, then cancelled during its waiting period: service comes back. */
START_TEST(test_purge_cancel) {
        Env e = {};
        TestCreds other = test_creds_other(), a2 = test_creds_approver2();
        const char *g = test_key_group("cancel");
        _cleanup_free_ char *gpath = NULL, *req = NULL;
        char ct[300], policy[256], obj[128], out[8192];
        uint64_t at;
        TestCall c;

        env_init(&e, "cancel", false);
        dkmd_start();
        gpath = test_create_group(g);
        test_member_encrypt(g, work(ct, g, "ct"), "old data");
        /* No approval levels: no purge. */
        (void) test_call_as(NULL, &c, MGR_PATH, MGR_IFACE, "Purge", "s", "CUST-8: no levels");
        assert_error(&c, E_NO_APPROVERS, "Purge without approval levels");

        snprintf(policy, sizeof(policy), "--approval-groups=%s,%s", TW.appr1, TW.appr2);
        ck_assert_int_eq(test_store("policy", "set", policy, "--purge-delay=30s"), 0);
        ck_assert_uint_eq(mgr_t("PurgeDelayUSec"), 30 * USEC);
        req = purge_request(&e);
        member_decrypts(ct, "old data");
        approve_both_levels(req);
        assert_req_s(req, "State", "scheduled");
        assert_store_state("purge-scheduled");
        at = mgr_t("PurgeAtUSec");
        ck_assert_uint_gt(at, now_usec() + 20 * USEC);
        ck_assert_uint_le(at, now_usec() + 31 * USEC);
        ck_assert_uint_eq(req_t(req, "ExpiresUSec"), at);

        member_decrypts(ct, NULL);
        group_call(gpath, "Load", E_PURGE_SCHEDULED);
        group_call(gpath, "Rollover", E_PURGE_SCHEDULED);
        /* Nothing outside dkmd unlocks the store meanwhile (the upcall runs the same unlock). */
        assert_dkm_store_fails("check", "suspended");

        /* A restart keeps it scheduled: nothing is loaded at start. */
        ck_assert_int_eq(test_dkmd_stop(false), 0);
        dkmd_start();
        assert_store_state("purge-scheduled");
        ck_assert_uint_eq(mgr_t("PurgeAtUSec"), at);
        member_decrypts(ct, NULL);
        dkmctl_out(out, sizeof(out), "purge", "status", NULL, NULL);
        ck_assert_msg(strstr(out, "purge-scheduled") && strstr(out, "scheduled"), "dkmctl purge status: %s", out);

        act(&other, req, "Cancel", &c);
        assert_error(&c, E_ACCESS_DENIED, "Cancel by a non-member non-approver");
        assert_store_state("purge-scheduled");
        must_act(&a2, req, "Cancel");
        assert_req_s(req, "State", "cancelled");
        assert_store_state("unlocked");
        ck_assert_uint_eq(mgr_t("PurgeAtUSec"), 0);
        member_decrypts(ct, "old data");
        group_call(gpath, "Rollover", NULL);

        /* Again through dkmctl, requested and cancelled by an admin (root). */
        {
                TestCreds both = test_creds_both();
                char path[128];
                unsigned long id = 0;
                const char *f;

                dkmctl_out(out, sizeof(out), "purge", "request", "--justification=CUST-9: second thoughts", NULL);
                f = strstr(out, "Filed request ");
                ck_assert_msg(f && sscanf(f, "Filed request %lu", &id) == 1, "dkmctl purge request: %s", out);
                snprintf(path, sizeof(path), "/org/dkm/KeyManager1/request/%lu", id);
                must_act(&both, path, "Approve");
                must_act(&a2, path, "Approve");
                assert_store_state("purge-scheduled");
                member_decrypts(ct, NULL);
                snprintf(policy, sizeof(policy), "%lu", id);
                {
                        /* An admin who neither requested nor approves it (the admin group's member). */
                        TestCreds member = test_creds_member();
                        TestRun r;

                        test_run(&r, NULL, 0, &member,
                                 (char *const[]){ (char *) test_env_path("DKM_DKMCTL"), (char *) "purge",
                                                  (char *) "cancel", policy, NULL });
                        ck_assert_msg(r.status == 0 && strstr((char *) r.out, "Cancelled purge request"),
                                      "dkmctl purge cancel as an admin: %d: %s%s", r.status, (char *) r.out, r.err);
                        test_run_free(&r);
                }
                assert_req_s(path, "State", "cancelled");
                assert_store_state("unlocked");
                member_decrypts(ct, "old data");
        }
        ck_assert_int_eq(test_store("check"), 0);
        ck_assert_int_eq(test_dkmd_stop(false), 0);
        request_object(req, obj);
        assert_audited(&e, "purge-scheduled", obj);
        assert_audited(&e, "purge-cancel", obj);
        assert_audit_verifies(&e);
}
END_TEST

/* ---- the key scan ---- */

#define KEYS_MAX 16

typedef struct Keys {
        size_t n;
        uint8_t key[KEYS_MAX][32];
        char what[KEYS_MAX][48];
} Keys;

static void keys_add(Keys *k, const Secret *s, const char *what) {
        ck_assert_uint_lt(k->n, KEYS_MAX);
        ck_assert_uint_eq(s->size, 32);
        memcpy(k->key[k->n], s->data, 32);
        snprintf(k->what[k->n], sizeof(k->what[0]), "%s", what);
        k->n++;
}

/* The root key, the group's KEK and every generation key with a key, read in-process (the store is
 * opened by its key file, as dkmd does). */
static void collect_keys(const Env *e, const char *group, Keys *k) {
        _cleanup_store_ Store *s = NULL;
        _cleanup_store_group_ StoreGroup *g = NULL;
        _cleanup_secret_ Secret *kek = NULL;

        ck_assert_int_eq(store_open(e->state, &s), 0);
        ck_assert_msg(store_unlock(s, NULL) == 0, "%s", store_last_error(s));
        keys_add(k, s->root_key, "root key");
        ck_assert_int_eq(store_group_load(s, group, &g), 0);
        ck_assert_int_eq(store_keys_unwrap_kek(s->root_key, g, &kek), 0);
        keys_add(k, kek, "KEK");
        for (size_t i = 0; i < g->n_generations; i++) {
                _cleanup_secret_ Secret *gk = NULL;
                char what[48];

                if (!g->generations[i].has_key)
                        continue;
                ck_assert_int_eq(store_generation_unwrap(s, g, g->generations[i].number, &gk), 0);
                snprintf(what, sizeof(what), "generation %u", (unsigned) g->generations[i].number);
                keys_add(k, gk, what);
        }
}

static void assert_no_keys(const Keys *k, const void *data, size_t size, const char *where) {
        for (size_t i = 0; i < k->n; i++) {
                char hex[65], HEX[65];

                for (size_t j = 0; j < 32; j++) {
                        sprintf(hex + 2 * j, "%02x", k->key[i][j]);
                        sprintf(HEX + 2 * j, "%02X", k->key[i][j]);
                }
                ck_assert_msg(!memmem(data, size, k->key[i], 16), "the %s, raw, in %s", k->what[i], where);
                ck_assert_msg(!memmem(data, size, hex, 32), "the %s, in hex, in %s", k->what[i], where);
                ck_assert_msg(!memmem(data, size, HEX, 32), "the %s, in HEX, in %s", k->what[i], where);
        }
}

static const Keys *scan_keys;
static size_t scan_files;

static int scan_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        if (flag == FTW_F && S_ISREG(st->st_mode)) {
                _cleanup_free_ char *data = NULL;
                size_t size;

                data = read_all(path, &size);
                assert_no_keys(scan_keys, data, size, path);
                scan_files++;
        }
        return 0;
}

/* Every file under the state dir (the audit log is in it) and dkmd's log; how many files. */
static size_t assert_no_keys_on_disk(const Env *e, const Keys *k) {
        _cleanup_free_ char *log = NULL;
        size_t size;

        scan_keys = k;
        scan_files = 0;
        ck_assert_int_eq(nftw(e->state, scan_one, 16, FTW_PHYS), 0);
        log = read_all(test_dkmd_log(), &size);
        assert_no_keys(k, log, size, "dkmd's log");
        return scan_files;
}

static void copy_file(const char *from, const char *to) {
        _cleanup_free_ char *data = NULL;
        size_t size;
        int fd;

        data = read_all(from, &size);
        fd = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(loop_write(fd, data, size), 0);
        close(fd);
}

static size_t dir_entries(const char *path) {
        DIR *d = opendir(path);
        struct dirent *de;
        size_t n = 0;

        ck_assert_msg(d, "%s: %m", path);
        while ((de = readdir(d)))
                if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
                        n++;
        closedir(d);
        return n;
}

/* Purge carried out: nothing decrypts, even after a restart and with the key file put back; no
 * key byte anywhere on disk, before or after. */
START_TEST(test_purge_done) {
        Env e = {};
        const char *g = test_key_group("purge");
        _cleanup_free_ char *gpath = NULL, *req = NULL;
        char ct[300], ct2[300], policy[256], obj[128], p[300], saved[2][300];
        Keys *k = calloc(1, sizeof(Keys));
        TestCall c;

        ck_assert_ptr_nonnull(k);
        env_init(&e, "purge", false);
        snprintf(policy, sizeof(policy), "--approval-groups=%s,%s", TW.appr1, TW.appr2);
        ck_assert_int_eq(test_store("policy", "set", policy, "--purge-delay=2s"), 0);
        dkmd_start();
        gpath = test_create_group(g);
        test_member_encrypt(g, work(ct, g, "ct"), "doomed data");
        group_call(gpath, "Rollover", NULL);
        test_member_encrypt(g, work(ct2, g, "ct2"), "doomed data, generation 2");
        member_decrypts(ct, "doomed data");
        collect_keys(&e, g, k);
        ck_assert_uint_eq(k->n, 4); /* root, KEK, generations 1 and 2 */
        ck_assert_uint_ge(assert_no_keys_on_disk(&e, k), 5);

        /* The key file and its protector, kept aside: a backup someone might restore. */
        snprintf(saved[0], sizeof(saved[0]), "%s/local.key.saved", e.dir);
        snprintf(saved[1], sizeof(saved[1]), "%s/local.protector.saved", e.dir);
        snprintf(p, sizeof(p), "%s/protectors/local.key", e.state);
        copy_file(p, saved[0]);
        snprintf(p, sizeof(p), "%s/protectors/local.protector", e.state);
        copy_file(p, saved[1]);

        req = purge_request(&e);
        approve_both_levels(req);
        ck_assert_msg(wait_req_state(req, "done", 6000), "purge request not done");
        must_wait_store_state("purged", 2000);
        ck_assert_uint_eq(mgr_t("PurgeAtUSec"), 0);
        snprintf(p, sizeof(p), "%s/protectors", e.state);
        ck_assert_uint_eq(dir_entries(p), 0);
        member_decrypts(ct, NULL);
        member_decrypts(ct2, NULL);
        group_call(gpath, "Load", E_PURGED);
        group_call(gpath, "Rollover", E_PURGED);
        create_group_refused("ck-after-purge", E_PURGED);
        (void) test_call_as(NULL, &c, MGR_PATH, MGR_IFACE, "Purge", "s", "CUST-10: again");
        assert_error(&c, E_PURGED, "Purge after the purge");

        ck_assert_int_eq(test_dkmd_stop(false), 0);
        dkmd_start();
        assert_store_state("purged");
        member_decrypts(ct, NULL);
        group_call(gpath, "Load", E_PURGED);
        ck_assert_int_eq(test_dkmd_stop(false), 0);
        assert_dkm_store_fails("check", "purged");

        /* The backup of the key file opens nothing: the group's keys are destroyed. */
        snprintf(p, sizeof(p), "%s/protectors/local.key", e.state);
        copy_file(saved[0], p);
        snprintf(p, sizeof(p), "%s/protectors/local.protector", e.state);
        copy_file(saved[1], p);
        assert_dkm_store_fails("check", "purged");
        {
                _cleanup_store_ Store *s = NULL;
                _cleanup_store_group_ StoreGroup *gr = NULL;

                ck_assert_int_eq(store_open(e.state, &s), 0);
                ck_assert_int_eq(store_unlock(s, NULL), -ENOKEY);
                ck_assert_int_eq(store_group_load(s, g, &gr), 0);
                for (size_t i = 0; i < gr->n_generations; i++)
                        ck_assert_msg(!gr->generations[i].has_key, "generation %u kept its wrapped key",
                                      (unsigned) gr->generations[i].number);
        }
        snprintf(p, sizeof(p), "%s/protectors/local.key", e.state);
        ck_assert_int_eq(unlink(p), 0);
        snprintf(p, sizeof(p), "%s/protectors/local.protector", e.state);
        ck_assert_int_eq(unlink(p), 0);

        ck_assert_uint_ge(assert_no_keys_on_disk(&e, k), 5);
        request_object(req, obj);
        assert_audited(&e, "purge-scheduled", obj);
        assert_audited(&e, "purge", obj);
        assert_audit_verifies(&e);
        secret_wipe(k, sizeof(*k));
        free(k);
}
END_TEST

/* ---- TPM2 (swtpm on a loopback port, tests/test-swtpm.c, as tests/test-tpm2.c runs it) ---- */

static bool have_swtpm;

/* A store whose only protector is sealed to the TPM and PCR 16 (added over D-Bus): PCR 16 extended
 * makes it degraded while dkmd holds the root key, and waiting after a restart. */
START_TEST(test_tpm2_pcr) {
        Env e = {};
        const char *g = test_key_group("tpm");
        _cleanup_free_ char *gpath = NULL, *detail = NULL;
        char ct[300];
        Protectors p;
        TestCall c;

        if (!have_swtpm) {
                fprintf(stderr, "swtpm is not installed: the TPM2 part is skipped\n");
                return;
        }
        env_init(&e, "tpm", false);
        test_swtpm_start(e.dir, "tpm");
        dkmd_start();
        (void) test_call_as(NULL, &c, MGR_PATH, MGR_IFACE, "AddProtector", "ssa{sv}s", "tpm", "tpm2", 1, "Pcrs", "au",
                            1, (uint32_t) 16, "CHG-5: seal to the TPM");
        assert_ok(&c, "AddProtector tpm2");
        ck_assert_str_eq(c.path, "/");
        remove_protector(NULL, &c, "local");
        assert_ok(&c, "RemoveProtector local");
        list_protectors(&p);
        ck_assert_uint_eq(p.n, 1);
        ck_assert_str_eq(health_of(&p, "tpm", "tpm2"), "ok");
        ck_assert_int_eq(test_dkmd_stop(false), 0);

        /* Unlocked through the TPM alone. */
        dkmd_start();
        assert_store_state("unlocked");
        gpath = test_create_group(g);
        test_member_encrypt(g, work(ct, g, "ct"), "sealed to PCR 16");
        member_decrypts(ct, "sealed to PCR 16");

        test_tpm_pcr_extend(ESYS_TR_PCR16);
        check_protectors(&p);
        ck_assert_str_eq(health_of(&p, "tpm", "tpm2"), "pcr-mismatch");
        assert_store_state("degraded");
        member_decrypts(ct, "sealed to PCR 16");
        group_call(gpath, "Rollover", NULL);
        ck_assert_int_eq(test_dkmd_stop(false), 0);

        dkmd_start();
        assert_store_state("waiting");
        detail = test_manager_property("StoreStateDetail");
        ck_assert_msg(strstr(detail, "tpm") && strstr(detail, "PCR mismatch"), "StoreStateDetail '%s'", detail);
        list_protectors(&p);
        ck_assert_str_eq(health_of(&p, "tpm", "tpm2"), "pcr-mismatch");
        member_decrypts(ct, "sealed to PCR 16");
        ck_assert_int_eq(test_dkmd_stop(false), 0);
        test_swtpm_stop();
        assert_audit_verifies(&e);
}
END_TEST

/* Without root: dkmd's new option is documented and checked. */
START_TEST(test_usage) {
        TestRun r;

        test_run(&r, NULL, 0, NULL, (char *const[]){ (char *) test_env_path("DKM_DKMD"), (char *) "--help", NULL });
        ck_assert_int_eq(r.status, 0);
        ck_assert_ptr_nonnull(strstr((char *) r.out, "--protector-check-interval"));
        test_run_free(&r);
        test_run(&r, NULL, 0, NULL,
                 (char *const[]){ (char *) test_env_path("DKM_DKMD"), (char *) "--protector-check-interval=0.5s",
                                  NULL });
        ck_assert_int_eq(r.status, 2);
        test_run_free(&r);
}
END_TEST

static Suite *make_suite(bool integration) {
        Suite *s = suite_create("customer-key");
        TCase *tc = tcase_create("usage");

        tcase_add_test(tc, test_usage);
        suite_add_tcase(s, tc);
        if (integration && module[0]) {
                tc = tcase_create("customer-key");
                tcase_set_timeout(tc, 120);
                tcase_add_unchecked_fixture(tc, test_bus_start, test_bus_stop);
                tcase_add_test(tc, test_several_protectors);
                tcase_add_test(tc, test_last_usable_protector);
                tcase_add_test(tc, test_hsm_unavailable);
                tcase_add_test(tc, test_withdrawal);
                tcase_add_test(tc, test_purge_cancel);
                tcase_add_test(tc, test_purge_done);
                tcase_add_test(tc, test_tpm2_pcr);
                suite_add_tcase(s, tc);
        }
        return s;
}

int main(void) {
        static const char *const modules[] = {
                "/usr/lib/softhsm/libsofthsm2.so",
                "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
                "/usr/lib64/pkcs11/libsofthsm2.so",
        };
        const char *m = getenv("DKM_TEST_SOFTHSM_MODULE");

        if (crypt_init() < 0)
                return EXIT_FAILURE;
        for (size_t i = 0; !m && i < ELEMENTSOF(modules); i++)
                if (access(modules[i], R_OK) == 0)
                        m = modules[i];
        if (m && system("command -v softhsm2-util >/dev/null") == 0)
                snprintf(module, sizeof(module), "%s", m);
        else if (geteuid() == 0) {
                fprintf(stderr, "SoftHSM2 (softhsm2-util, libsofthsm2.so) is not installed; scripts/deps.sh installs it.\n");
                return 77;
        }
        have_swtpm = test_swtpm_installed();
        test_world_want_approvers = true;
        return test_world_main(make_suite, key_group_tags);
}
