/* SPDX-License-Identifier: MIT */
/* Fleet host enrolment and removal through dkmd (issue 9, docs/FLEET.md "Host enrolment"): host1 is
 * a dkmd with --fleet holding the root key; host2 is a store joined with the fleet's identity and a
 * key pair of its own, played by the test. The directory's admin adds host2's entry with its
 * public key; EnrollHost (at once, or approved at the store policy's levels) publishes the root key
 * sealed to that key, which host2 installs and unlocks with; RemoveHost deletes it again. No key
 * ever reaches the directory in the clear, and every step is in the audit log. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-bus.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "fileio.h"
#include "fleet-ldap.h"
#include "macro.h"
#include "secret.h"
#include "store.h"
#include "test-accounts.h"
#include "test-bus.h"
#include "test-slapd.h"

#define E_NO_SUCH_HOST "org.dkm.KeyManager1.Error.NoSuchHost"
#define E_NOT_IN_FLEET "org.dkm.KeyManager1.Error.NotInFleet"
#define E_SELF_APPROVAL "org.dkm.KeyManager1.Error.SelfApproval"
#define REQUEST_IFACE "org.dkm.KeyManager1.Request"

static const char *const key_group_tags[] = { "enrol", NULL };

static char host2_conf_path[256];

static void write_text(const char *path, const char *text) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

        ck_assert_msg(fd >= 0, "%s: %m", path);
        ck_assert_int_eq(loop_write(fd, text, strlen(text)), 0);
        close(fd);
}

static void hex(const uint8_t *p, size_t n, char *out) {
        for (size_t i = 0; i < n; i++)
                snprintf(out + 2 * i, 3, "%02x", p[i]);
}

static void sleep_ms(unsigned ms) {
        nanosleep(&(struct timespec){ ms / 1000, (long) (ms % 1000) * 1000000L }, NULL);
}

/* ---- the directory ---- */

/* host2's view of its own entry, through src/fleet as host2 binds. */
static FleetHost *host2_entry(void) {
        _cleanup_(fleet_config_freep) FleetConfig *c = NULL;
        _cleanup_(fleet_conn_freep) FleetConn *conn = NULL;
        FleetConfigError e = {};
        FleetHost *h = NULL;

        ck_assert_int_eq(fleet_config_load(host2_conf_path, &c, &e), 0);
        ck_assert_msg(fleet_connect(c, &conn) == 0, "host2: %s", fleet_last_error());
        ck_assert_msg(fleet_host_get(conn, "host2", &h) == 0, "host2 entry: %s", fleet_last_error());
        conn = fleet_conn_free(conn);
        return h;
}

static FleetGroup *host2_group(const char *name) {
        _cleanup_(fleet_config_freep) FleetConfig *c = NULL;
        _cleanup_(fleet_conn_freep) FleetConn *conn = NULL;
        FleetConfigError e = {};
        FleetGroup *g = NULL;

        ck_assert_int_eq(fleet_config_load(host2_conf_path, &c, &e), 0);
        ck_assert_msg(fleet_connect(c, &conn) == 0, "host2: %s", fleet_last_error());
        ck_assert_msg(fleet_group_get(conn, name, &g) == 0, "group %s: %s", name, fleet_last_error());
        conn = fleet_conn_free(conn);
        return g;
}

/* Every value of the whole directory as its root DN reads it. */
static char *directory_dump(size_t *ret_size) {
        char cmd[1024], path[256];
        char *text = NULL;
        size_t size = 0;
        FILE *f;

        snprintf(path, sizeof(path), "%s/dump.ldif", test_slapd_dir());
        snprintf(cmd, sizeof(cmd), "ldapsearch -LLL -o ldif-wrap=no -x -H '%s' -D '%s' -w '%s' -b '%s' >'%s'",
                 test_slapd_uri(0), TEST_SLAPD_ROOT_DN, TEST_SLAPD_PASSWORD, TEST_SLAPD_SUFFIX, path);
        ck_assert_msg(system(cmd) == 0, "%s", cmd);
        f = fopen(path, "re");
        ck_assert_ptr_nonnull(f);
        text = malloc(4U << 20);
        ck_assert_ptr_nonnull(text);
        size = fread(text, 1, 4U << 20, f);
        fclose(f);
        *ret_size = size;
        return text;
}

static void base64(const uint8_t *p, size_t n, char *out) {
        static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        size_t o = 0;

        for (size_t i = 0; i + 2 < n; i += 3) {
                uint32_t v = (uint32_t) p[i] << 16 | (uint32_t) p[i + 1] << 8 | p[i + 2];

                out[o++] = t[v >> 18];
                out[o++] = t[(v >> 12) & 63];
                out[o++] = t[(v >> 6) & 63];
                out[o++] = t[v & 63];
        }
        out[o] = 0; /* the whole 3-byte groups: enough to find it */
}

/* Neither the bytes, their hex nor their base64 appear anywhere in the directory. */
static void assert_not_in(const char *dump, size_t size, const void *key, size_t n, const char *what) {
        char h[2 * 64 + 1], b[4 * 64 / 3 + 4];

        ck_assert_uint_le(n, 64);
        hex(key, n, h);
        base64(key, n, b);
        ck_assert_msg(!memmem(dump, size, key, n), "%s in the directory (raw)", what);
        ck_assert_msg(!memmem(dump, size, h, strlen(h)), "%s in the directory (hex)", what);
        ck_assert_msg(!memmem(dump, size, b, strlen(b)), "%s in the directory (base64)", what);
}

static size_t read_raw(const char *path, uint8_t *buf, size_t max) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t n;

        ck_assert_msg(fd >= 0, "%s: %m", path);
        n = read(fd, buf, max);
        close(fd);
        ck_assert_int_gt(n, 0);
        return (size_t) n;
}

/* ---- dkmd ---- */

static void call_host(const TestCreds *c, TestCall *ret, const char *method, const char *host) {
        (void) test_call_as(c, ret, MGR_PATH, MGR_IFACE, method, "ss", host, "CHG-9: fleet host");
}

static void assert_call_error(const TestCall *c, const char *name, const char *what) {
        ck_assert_msg(c->r < 0 && strcmp(c->error, name) == 0, "%s: %s (%s), want %s", what, c->error, c->message,
                      name);
}

static void assert_call_ok(const TestCall *c, const char *what) {
        ck_assert_msg(c->r >= 0, "%s: %s: %s", what, c->error, c->message);
}

static void must_approve(const TestCreds *c, const char *request) {
        TestCall r;

        (void) test_call_as(c, &r, request, REQUEST_IFACE, "Approve", NULL);
        ck_assert_msg(r.r >= 0, "Approve %s as uid %u: %s: %s", request, (unsigned) c->uid, r.error, r.message);
}

static void approve_both_levels(const char *request) {
        TestCreds both = test_creds_both(), a2 = test_creds_approver2();

        must_approve(&both, request);
        must_approve(&a2, request);
}

static bool wait_fleet_connected(unsigned ms) {
        for (unsigned waited = 0;; waited += 100) {
                _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = test_bus_open();
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                _cleanup_free_ char *s = NULL;

                if (sd_bus_get_property_string(bus, SVC, MGR_PATH, MGR_IFACE, "FleetState", &e, &s) >= 0 &&
                    strcmp(s, "connected") == 0)
                        return true;
                if (waited >= ms)
                        return false;
                sleep_ms(100);
        }
}

/* ListHosts as anyone: host's state, or NULL if not listed. */
static char *listed_state(const char *host, char public_key[static 65]) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = test_bus_open();
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        const char *name, *key, *state;
        char *found = NULL;
        int r;

        ck_assert_msg(sd_bus_call_method(bus, SVC, MGR_PATH, MGR_IFACE, "ListHosts", &e, &reply, NULL) >= 0,
                      "ListHosts: %s: %s", e.name ?: "", e.message ?: "");
        ck_assert_int_ge(sd_bus_message_enter_container(reply, 'a', "(sss)"), 0);
        while ((r = sd_bus_message_read(reply, "(sss)", &name, &key, &state)) > 0)
                if (strcmp(name, host) == 0) {
                        snprintf(public_key, 65, "%s", key);
                        found = strdup(state);
                }
        ck_assert_int_ge(r, 0);
        return found;
}

static bool audit_has(const char *dir, const char *event, const char *detail_part) {
        _cleanup_(audit_reader_freep) AuditReader *r = NULL;
        const AuditFilter f = { .event = event };
        const AuditEntry *a;
        bool found = false;
        int k;

        ck_assert_int_eq(audit_reader_new(dir, &f, &r), 0);
        while ((k = audit_reader_next(r, &a)) > 0)
                if (a->outcome == AUDIT_OUTCOME_OK && strstr(a->detail, detail_part))
                        found = true;
        ck_assert_msg(k == 0, "reading %s: %s", dir, audit_reader_error(r) ?: strerror(-k));
        return found;
}

static void dkmctl_ok(char *out, size_t size, const char *const argv[]) {
        char *args[16] = { (char *) test_env_path("DKM_DKMCTL") };
        TestRun r;
        size_t n = 1;

        for (; argv[n - 1] && n < 15; n++)
                args[n] = (char *) argv[n - 1];
        args[n] = NULL;
        test_run(&r, NULL, 0, NULL, args);
        ck_assert_msg(r.status == 0, "dkmctl %s %s: status %d: %s", argv[0], argv[1] ?: "", r.status, r.err);
        snprintf(out, size, "%.*s", (int) r.out_size, r.out);
        test_run_free(&r);
}

/* host2 installs what the directory holds for it, unlocks with it, and unwraps generation 1 of
 * group exactly as host1 does. */
static void host2_unlocks_like_host1(const char *host1_state, const char *host2_state, const char *group,
                                     const FleetHost *h) {
        _cleanup_store_ Store *s1 = NULL, *s2 = NULL;
        _cleanup_store_group_ StoreGroup *g1 = NULL, *g2 = NULL;
        _cleanup_(fleet_group_freep) FleetGroup *fg = host2_group(group);
        _cleanup_secret_ Secret *k1 = NULL, *k2 = NULL;

        ck_assert_int_eq(store_open(host2_state, &s2), 0);
        ck_assert_msg(store_protector_install(s2, "fleet-host2", h->protector, h->protector_size) == 0, "install: %s",
                      store_last_error(s2) ?: "");
        ck_assert_msg(store_unlock(s2, NULL) == 0, "host2 unlock: %s", store_last_error(s2) ?: "");
        /* the seal host1 made checks out here: the same root key */
        {
                _cleanup_free_ char *text = NULL;
                size_t size;

                ck_assert_msg(store_group_fleet_open(s2, group, fg->revision, fg->text, fg->size, &text, &size) == 0,
                              "host2 opens host1's seal: %s", store_last_error(s2) ?: "");
                ck_assert_int_eq(store_group_import(s2, group, text, size), 0);
        }
        ck_assert_int_eq(store_group_load(s2, group, &g2), 0);
        ck_assert_int_eq(store_generation_unwrap(s2, g2, 1, &k2), 0);

        ck_assert_int_eq(store_open(host1_state, &s1), 0);
        ck_assert_int_eq(store_unlock(s1, NULL), 0);
        ck_assert_int_eq(store_group_load(s1, group, &g1), 0);
        ck_assert_int_eq(store_generation_unwrap(s1, g1, 1, &k1), 0);
        ck_assert_msg(secret_equal(k1, k2), "host2 unwraps another generation key");
}

/* ---- the test ---- */

START_TEST(test_enrol_and_remove) {
        const char *group = test_key_group("enrol");
        char dir[128], state[160], host2[160], conf[256], text[1024], id[33], pk2[65], listed_pk[65], cmd[600],
                path[256], fp[17], out[8192];
        _cleanup_free_ char *dump = NULL, *st = NULL;
        _cleanup_store_ Store *joined = NULL, *s1 = NULL;
        _cleanup_store_group_ StoreGroup *g1 = NULL;
        _cleanup_secret_ Secret *gen = NULL;
        uint8_t raw_id[STORE_ID_SIZE], pub[STORE_X25519_KEY_BYTES], keybuf[256];
        TestCreds other = test_creds_other(); /* not in dkmd's admin group (TW.grp) */
        FleetHost *h;
        size_t dump_size, n;
        TestCall c;

        test_slapd_start(1);
        test_slapd_populate();

        snprintf(dir, sizeof(dir), "%s/fleet", TW.dir);
        ck_assert_int_eq(mkdir(dir, 0700), 0);
        snprintf(state, sizeof(state), "%s/state", dir);
        ck_assert_int_eq(setenv("DKM_STATE_DIR", state, 1), 0);
        ck_assert_int_eq(test_store("init"), 0);
        ck_assert_int_eq(store_open(state, &s1), 0);
        store_id(s1, raw_id);
        s1 = store_free(s1);
        hex(raw_id, sizeof(raw_id), id);
        test_slapd_set_store_id(id);

        /* host2 (dkm-store fleet join STORE-ID): the fleet's identity, no protector, a key pair. */
        snprintf(host2, sizeof(host2), "%s/host2", dir);
        ck_assert_int_eq(store_join(host2, raw_id, &joined), 0);
        ck_assert_int_eq(store_host_key(joined, true, pub), 0);
        joined = store_free(joined);
        hex(pub, sizeof(pub), pk2);
        snprintf(fp, sizeof(fp), "%.16s", pk2);

        snprintf(conf, sizeof(conf), "%s/fleet.conf", dir);
        snprintf(text, sizeof(text), "Uris=%s\nBase=%s\nBindDN=%s\nBindPasswordFile=%s\nHost=host1\nTimeout=1s\n",
                 test_slapd_uri(0), TEST_SLAPD_BASE, TEST_SLAPD_ID("host1"), test_slapd_password_file());
        write_text(conf, text);
        snprintf(host2_conf_path, sizeof(host2_conf_path), "%s/fleet-host2.conf", dir);
        snprintf(text, sizeof(text), "Uris=%s\nBase=%s\nBindDN=%s\nBindPasswordFile=%s\nHost=host2\nTimeout=1s\n",
                 test_slapd_uri(0), TEST_SLAPD_BASE, TEST_SLAPD_ID("host2"), test_slapd_password_file());
        write_text(host2_conf_path, text);

        snprintf(cmd, sizeof(cmd), "--fleet=%s", conf);
        test_dkmd_start((const char *const[]){ cmd, NULL });
        ck_assert_msg(wait_fleet_connected(5000), "not connected: %s", test_dkmd_log());
        free(test_create_group(group));

        /* Before the admin's entry: no such host, for anyone who asks. */
        call_host(NULL, &c, "EnrollHost", "host2");
        assert_call_error(&c, E_NO_SUCH_HOST, "EnrollHost before the entry");
        test_slapd_add_host("host2", pk2);
        st = listed_state("host2", listed_pk);
        ck_assert_ptr_nonnull(st);
        ck_assert_str_eq(st, "not enrolled");
        ck_assert_str_eq(listed_pk, pk2);
        free(TAKE_PTR(st));

        /* Refusals: not an admin; a host the directory does not know; a bad name. */
        call_host(&other, &c, "EnrollHost", "host2");
        assert_call_error(&c, E_ACCESS_DENIED, "EnrollHost as a non-admin");
        call_host(NULL, &c, "EnrollHost", "host9");
        assert_call_error(&c, E_NO_SUCH_HOST, "EnrollHost of an unknown host");
        call_host(NULL, &c, "EnrollHost", "Bad Name");
        assert_call_error(&c, E_INVALID_ARGUMENT, "EnrollHost of a bad name");
        call_host(&other, &c, "RemoveHost", "host2");
        assert_call_error(&c, E_ACCESS_DENIED, "RemoveHost as a non-admin");
        h = host2_entry();
        ck_assert_ptr_null(h->protector);
        fleet_host_free(h);

        /* No approval levels: enrolled at once. host2 installs its protector and unlocks. */
        call_host(NULL, &c, "EnrollHost", "host2");
        assert_call_ok(&c, "EnrollHost");
        ck_assert_str_eq(c.path, "/");
        h = host2_entry();
        ck_assert_ptr_nonnull(h->protector);
        ck_assert_str_eq(h->public_key, pk2);
        host2_unlocks_like_host1(state, host2, group, h);
        fleet_host_free(h);
        st = listed_state("host2", listed_pk);
        ck_assert_str_eq(st, "enrolled");
        free(TAKE_PTR(st));

        /* No key in the clear anywhere in the directory: host1's file protector key, host2's
         * private key, the generation key. */
        dump = directory_dump(&dump_size);
        ck_assert_msg(memmem(dump, dump_size, "dkmProtectorFile", 16), "the dump has no protector file");
        snprintf(path, sizeof(path), "%s/protectors/local.key", state);
        n = read_raw(path, keybuf, sizeof(keybuf));
        assert_not_in(dump, dump_size, keybuf, n, "host1's protector key");
        snprintf(path, sizeof(path), "%s/protectors/host.x25519", host2);
        n = read_raw(path, keybuf, sizeof(keybuf));
        assert_not_in(dump, dump_size, keybuf, MIN(n, (size_t) 32), "host2's private key");
        ck_assert_int_eq(store_open(state, &s1), 0);
        ck_assert_int_eq(store_unlock(s1, NULL), 0);
        ck_assert_int_eq(store_group_load(s1, group, &g1), 0);
        ck_assert_int_eq(store_generation_unwrap(s1, g1, 1, &gen), 0);
        assert_not_in(dump, dump_size, gen->data, gen->size, "the generation key");
        free(TAKE_PTR(dump));

        /* The dkmctl verbs. */
        dkmctl_ok(out, sizeof(out), (const char *const[]){ "fleet", "hosts", "--json", NULL });
        ck_assert_msg(strstr(out, "\"name\":\"host2\"") || strstr(out, "\"name\": \"host2\""), "%s", out);
        ck_assert_msg(strstr(out, "enrolled"), "%s", out);
        dkmctl_ok(out, sizeof(out), (const char *const[]){ "fleet", "status", NULL });
        ck_assert_msg(strstr(out, "connected"), "%s", out);
        dkmctl_ok(out, sizeof(out), (const char *const[]){ "status", NULL });
        ck_assert_msg(strstr(out, "Fleet:    connected"), "%s", out);

        /* Removed at once: the protector file is gone. */
        call_host(NULL, &c, "RemoveHost", "host2");
        assert_call_ok(&c, "RemoveHost");
        ck_assert_str_eq(c.path, "/");
        h = host2_entry();
        ck_assert_ptr_null(h->protector);
        fleet_host_free(h);

        /* With approval levels: requests, carried out by the last approval. */
        snprintf(text, sizeof(text), "--approval-groups=%s,%s", TW.appr1, TW.appr2);
        ck_assert_int_eq(test_store("policy", "set", text), 0);
        call_host(NULL, &c, "EnrollHost", "host2");
        assert_call_ok(&c, "EnrollHost with approvals");
        ck_assert_msg(strncmp(c.path, "/org/dkm/KeyManager1/request/", 29) == 0, "path '%s'", c.path);
        h = host2_entry();
        ck_assert_ptr_null(h->protector);
        fleet_host_free(h);
        snprintf(path, sizeof(path), "%s", c.path);
        {
                TestCreds a2 = test_creds_approver2();
                TestCall wrong;

                /* Level 2 cannot go first. */
                (void) test_call_as(&a2, &wrong, path, REQUEST_IFACE, "Approve", NULL);
                ck_assert_int_lt(wrong.r, 0);
        }
        must_approve((TestCreds[]){ test_creds_both() }, path);
        h = host2_entry();
        ck_assert_ptr_null(h->protector);
        fleet_host_free(h);
        must_approve((TestCreds[]){ test_creds_approver2() }, path);
        h = host2_entry();
        ck_assert_ptr_nonnull(h->protector);
        host2_unlocks_like_host1(state, host2, group, h);
        fleet_host_free(h);

        call_host(NULL, &c, "RemoveHost", "host2");
        assert_call_ok(&c, "RemoveHost with approvals");
        ck_assert_msg(strncmp(c.path, "/org/dkm/KeyManager1/request/", 29) == 0, "path '%s'", c.path);
        h = host2_entry();
        ck_assert_ptr_nonnull(h->protector);
        fleet_host_free(h);
        approve_both_levels(c.path);
        h = host2_entry();
        ck_assert_ptr_null(h->protector);
        fleet_host_free(h);
        st = listed_state("host2", listed_pk);
        ck_assert_str_eq(st, "not enrolled");
        free(TAKE_PTR(st));

        /* Audited, and the log verifies. */
        snprintf(path, sizeof(path), "%s/audit", state);
        snprintf(text, sizeof(text), "host host2 public key %s", fp);
        ck_assert_msg(audit_has(path, "host-enrol", text), "no host-enrol record with '%s'", text);
        ck_assert_msg(audit_has(path, "host-remove", text), "no host-remove record with '%s'", text);
        ck_assert_msg(audit_has(path, "request", "host-enrol host host2"), "no host-enrol request record");
        ck_assert_int_eq(test_dkmd_stop(false), 0);
        {
                AuditReport rep = {};
                int r = audit_verify(path, NULL, &rep);

                ck_assert_msg(r == 0, "audit_verify %s: %d: %s", path, r, rep.error);
        }

        /* A dkmd on its own: not in a fleet. */
        test_dkmd_start(NULL);
        call_host(NULL, &c, "EnrollHost", "host2");
        assert_call_error(&c, E_NOT_IN_FLEET, "EnrollHost without --fleet");
        ck_assert_int_eq(test_dkmd_stop(false), 0);
        test_slapd_cleanup();
}
END_TEST

static Suite *make_suite(bool integration) {
        Suite *s = suite_create("fleet-enrol");
        TCase *tc = tcase_create("enrol");

        if (integration) {
                tcase_set_timeout(tc, 120);
                tcase_add_unchecked_fixture(tc, test_bus_start, test_bus_stop);
                tcase_add_test(tc, test_enrol_and_remove);
                suite_add_tcase(s, tc);
        }
        return s;
}

int main(void) {
        int r;

        test_world_want_approvers = true;
        test_slapd_init();
        r = test_world_main(make_suite, key_group_tags);
        test_slapd_finish();
        return r;
}
