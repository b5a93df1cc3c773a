/* SPDX-License-Identifier: MIT */
/* dkmd in a fleet (issue 9), one host against two real slapd providers: what it changes is
 * published to the directory before it is loaded, what another host publishes reaches this host's
 * kernel within seconds, and cut off from the directory it keeps serving, refuses changes, and
 * catches up from its cookie when the directory is back. The other host is played by the test
 * itself through src/fleet and a copy of the store. */
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

#include "fileio.h"
#include "crypto.h"
#include "fleet-ldap.h"
#include "macro.h"
#include "store.h"
#include "test-accounts.h"
#include "test-bus.h"
#include "test-slapd.h"

#define E_FLEET_UNAVAILABLE "org.dkm.KeyManager1.Error.FleetUnavailable"
#define USEC 1000000ULL

static const char *const key_group_tags[] = { "fleet", NULL };

static uint64_t now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * USEC + (uint64_t) ts.tv_nsec / 1000U;
}

static void sleep_ms(unsigned ms) {
        nanosleep(&(struct timespec){ ms / 1000, (long) (ms % 1000) * 1000000L }, NULL);
}

static void write_text(const char *path, const char *text) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

        ck_assert_msg(fd >= 0, "%s: %m", path);
        ck_assert_int_eq(loop_write(fd, text, strlen(text)), 0);
        close(fd);
}

/* ---- the directory: its store id made this store's, and "host2" writing through provider 0 ---- */

static void store_id_hex(const char *state, char out[static 33]) {
        _cleanup_store_ Store *s = NULL;
        uint8_t id[STORE_ID_SIZE];

        ck_assert_int_eq(store_open(state, &s), 0);
        store_id(s, id);
        for (size_t i = 0; i < sizeof(id); i++)
                snprintf(out + 2 * i, 3, "%02x", id[i]);
}

static char host2_conf_path[256];
/* The directory's entry at revision 1, genuine and sealed: served again at the end. */
static FleetGroup *first_copy;

/* The other host: a fleet.conf of its own (host2, provider 0 only). */
static FleetConn *host2_connect(void) {
        _cleanup_(fleet_config_freep) FleetConfig *c = NULL;
        static FleetConfig *keep;
        FleetConfigError e = {};
        FleetConn *conn = NULL;

        ck_assert_int_eq(fleet_config_load(host2_conf_path, &c, &e), 0);
        ck_assert_msg(fleet_connect(c, &conn) == 0, "host2: %s", fleet_last_error());
        /* The connection borrows its config for as long as it lives: the test's. */
        fleet_config_free(keep);
        keep = TAKE_PTR(c);
        return conn;
}

/* host2 publishes a group file as dkmd does: sealed for the revision it is written at. */
static void host2_publish(FleetConn *conn, Store *s, const char *group, const char *text, size_t size,
                          uint64_t expected) {
        _cleanup_free_ char *sealed = NULL;
        uint64_t published = 0;
        size_t sealed_size;

        ck_assert_int_eq(store_group_fleet_seal(s, group, expected + 1, text, size, &sealed, &sealed_size), 0);
        ck_assert_msg(fleet_group_put(conn, group, sealed, sealed_size, expected, &published) == 0, "host2 put: %s",
                      fleet_last_error());
}

/* host2 rolls the group over: the directory's copy (its seal checked) into its own store (a copy
 * of this host's, like every host of one fleet), a new active generation, published on that
 * revision. */
static uint64_t host2_rollover(const char *host2_state, const char *group) {
        _cleanup_(fleet_conn_freep) FleetConn *conn = host2_connect();
        _cleanup_(fleet_group_freep) FleetGroup *g = NULL;
        _cleanup_store_ Store *s = NULL;
        _cleanup_free_ char *text = NULL, *current = NULL;
        uint32_t number;
        size_t size, current_size;

        ck_assert_msg(fleet_group_get(conn, group, &g) == 0, "host2 get: %s", fleet_last_error());
        ck_assert_int_eq(store_open(host2_state, &s), 0);
        ck_assert_int_eq(store_unlock(s, NULL), 0);
        ck_assert_msg(store_group_fleet_open(s, group, g->revision, g->text, g->size, &current, &current_size) == 0,
                      "host2: the directory's copy: %s", store_last_error(s) ?: "");
        ck_assert_int_eq(store_group_import(s, group, current, current_size), 0);
        ck_assert_int_eq(store_rollover(s, group, &number), 0);
        ck_assert_int_eq(store_group_export(s, group, &text, &size), 0);
        host2_publish(conn, s, group, text, size, g->revision);
        return number;
}

/* text with its "gid=" line set to gid and its checksum line made anew: what anyone who can write
 * the directory entry can make (the checksum is not keyed). */
static char *with_gid(const char *text, size_t size, gid_t gid) {
        _cleanup_free_ char *body = NULL;
        const char *line = strstr(text, "\ngid="), *end, *checksum = strstr(text, "\nchecksum=");
        uint8_t h[CRYPT_HASH_BYTES];
        char hex[2 * CRYPT_HASH_BYTES + 1], *out = NULL;

        ck_assert(line && checksum && checksum < text + size);
        end = strchr(line + 1, '\n');
        ck_assert_int_ge(asprintf(&body, "%.*s\ngid=%u%.*s\n", (int) (line - text), text, (unsigned) gid,
                                  (int) (checksum - end), end),
                         0);
        crypt_hash(body, strlen(body), h);
        for (size_t i = 0; i < sizeof(h); i++)
                snprintf(hex + 2 * i, 3, "%02x", h[i]);
        ck_assert_int_ge(asprintf(&out, "%schecksum=%s\n", body, hex), 0);
        return out;
}

/* This host's own copy of the group file. */
static void local_group_text(const char *state, const char *group, char **ret, size_t *ret_size) {
        _cleanup_store_ Store *s = NULL;

        ck_assert_int_eq(store_open(state, &s), 0);
        ck_assert_int_eq(store_group_export(s, group, ret, ret_size), 0);
}

/* The gid in this host's own copy of the group. */
static gid_t local_gid(const char *state, const char *group) {
        _cleanup_store_ Store *s = NULL;
        _cleanup_store_group_ StoreGroup *g = NULL;

        ck_assert_int_eq(store_open(state, &s), 0);
        ck_assert_int_eq(store_group_load(s, group, &g), 0);
        return g->gid;
}

/* Whether dkmd's log says it refused revision rev of group, waiting up to 5 s. */
static bool dkmd_refused(const char *group, uint64_t rev) {
        char want[256];

        snprintf(want, sizeof(want), "group %s revision %llu from the directory is refused", group,
                 (unsigned long long) rev);
        for (int i = 0; i < 250; i++) {
                _cleanup_free_ char *log = NULL;
                size_t size;

                if (read_file_full(AT_FDCWD, test_dkmd_log(), 16 << 20, &log, &size) >= 0 && strstr(log, want))
                        return true;
                sleep_ms(20);
        }
        return false;
}

static uint64_t directory_revision(const char *group) {
        _cleanup_(fleet_conn_freep) FleetConn *conn = host2_connect();
        _cleanup_(fleet_group_freep) FleetGroup *g = NULL;

        return fleet_group_get(conn, group, &g) == 0 ? g->revision : 0;
}

/* ---- dkmd's side, over its bus ---- */

static bool wait_fleet_state(const char *want, unsigned ms) {
        for (unsigned waited = 0;; waited += 100) {
                _cleanup_free_ char *s = test_manager_property("FleetState");

                if (strcmp(s, want) == 0)
                        return true;
                if (waited >= ms)
                        return false;
                sleep_ms(100);
        }
}

static uint32_t active_generation(const char *gpath) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = test_bus_open();
        uint32_t v = 0;

        ck_assert_int_ge(sd_bus_get_property_trivial(bus, SVC, gpath, GROUP_IFACE, "ActiveGeneration", NULL, 'u', &v),
                         0);
        return v;
}

/* How long until dkmd's group has generation want active (µs); fails after ms. */
static uint64_t wait_active(const char *gpath, uint32_t want, unsigned ms) {
        uint64_t t0 = now_usec();

        while (active_generation(gpath) != want) {
                ck_assert_msg(now_usec() - t0 < (uint64_t) ms * 1000U, "generation %u not active after %u ms (is %u)",
                              want, ms, active_generation(gpath));
                sleep_ms(20);
        }
        return now_usec() - t0;
}

static void rollover(const char *gpath, const char *error) {
        TestCall c;

        (void) test_call_as(NULL, &c, gpath, GROUP_IFACE, "Rollover", NULL);
        if (error)
                ck_assert_msg(c.r < 0 && strcmp(c.error, error) == 0, "Rollover: %s (%s), want %s", c.error,
                              c.message, error);
        else
                ck_assert_msg(c.r >= 0, "Rollover: %s: %s", c.error, c.message);
}

/* ---- the member, with the dkm CLI ---- */

static void member_decrypts(const char *path, const char *want) {
        TestCreds member = test_creds_member();
        TestRun r;

        test_run(&r, NULL, 0, &member,
                 (char *const[]){ (char *) test_env_path("DKM_CLI"), (char *) "decrypt", (char *) "-i", (char *) path,
                                  NULL });
        ck_assert_msg(r.status == 0, "decrypt %s: status %d: %s", path, r.status, r.err);
        ck_assert_msg(r.out_size == strlen(want) && memcmp(r.out, want, r.out_size) == 0, "other plaintext");
        test_run_free(&r);
}

/* host2's identity (or anyone else who can write the entry) changes the group in the directory:
 * (1) the gid edited, the checksum made anew, the genuine seal line kept; (2) a genuine sealed
 * copy of an earlier revision written again as the next one; (3) the gid edited and no seal at
 * all. This host refuses each (its own copy keeps its gid, its kernel its generation). A host
 * holding the root key repairs the first two by publishing the genuine copy sealed anew; the
 * third is repaired by this host's next change. */
static void directory_tampering_refused(const char *state, const char *host2_state, const char *group,
                                        const char *gpath) {
        _cleanup_(fleet_conn_freep) FleetConn *conn = host2_connect();
        _cleanup_(fleet_group_freep) FleetGroup *first = NULL;
        _cleanup_store_ Store *s = NULL;
        _cleanup_free_ char *genuine = NULL;
        size_t genuine_size;
        gid_t gid = local_gid(state, group);
        uint32_t active = active_generation(gpath);

        ck_assert_int_eq(store_open(host2_state, &s), 0);
        ck_assert_int_eq(store_unlock(s, NULL), 0);
        ck_assert_int_eq(fleet_group_get(conn, group, &first), 0);
        ck_assert_int_eq(store_group_fleet_open(s, group, first->revision, first->text, first->size, &genuine,
                                                &genuine_size),
                         0);
        for (int variant = 1; variant <= 3; variant++) {
                _cleanup_(fleet_group_freep) FleetGroup *g = NULL;
                _cleanup_free_ char *forged = NULL;
                uint64_t published = 0;

                if (variant == 1) {
                        const char *seal = strstr(first->text, "\nfleet-seal=");
                        _cleanup_free_ char *edited = NULL;

                        ck_assert_ptr_nonnull(seal);
                        edited = with_gid(genuine, genuine_size, gid + 1);
                        ck_assert_int_ge(asprintf(&forged, "%s%s", edited, seal + 1), 0);
                } else if (variant == 2)
                        forged = strndup(first->text, first->size);
                else
                        forged = with_gid(genuine, genuine_size, gid + 1);
                ck_assert_ptr_nonnull(forged);
                ck_assert_int_eq(fleet_group_get(conn, group, &g), 0);
                ck_assert_msg(fleet_group_put(conn, group, forged, strlen(forged), g->revision, &published) == 0,
                              "forged put: %s", fleet_last_error());
                ck_assert_msg(dkmd_refused(group, published), "variant %d not refused (dkmd's log: %s)", variant,
                              test_dkmd_log());
                ck_assert_uint_eq(local_gid(state, group), gid);
                ck_assert_uint_eq(active_generation(gpath), active);
                if (variant < 3)
                        host2_publish(conn, s, group, genuine, genuine_size, published);
        }
        /* The last forgery is repaired by this host's next change: published over it from this
         * host's own copy, sealed; the directory's copy opens again. */
        rollover(gpath, NULL);
        ck_assert_uint_eq(active_generation(gpath), active + 1);
        ck_assert_uint_eq(local_gid(state, group), gid);
        {
                _cleanup_(fleet_group_freep) FleetGroup *g = NULL;
                _cleanup_free_ char *text = NULL;
                size_t size;

                for (int i = 0; i < 50; i++) {
                        g = fleet_group_free(g);
                        ck_assert_int_eq(fleet_group_get(conn, group, &g), 0);
                        if (store_group_fleet_open(s, group, g->revision, g->text, g->size, &text, &size) == 0)
                                break;
                        sleep_ms(100);
                }
                ck_assert_msg(text, "the directory's copy is still not sealed by the fleet");
        }
}

/* ---- the test ---- */

START_TEST(test_follow_and_partition) {
        const char *group = test_key_group("fleet");
        char dir[128], state[160], host2[160], conf[256], text[1024], id[33], ct[4][300], cmd[600];
        _cleanup_free_ char *gpath = NULL, *uri = NULL;
        uint64_t took, rev;

        test_slapd_start(2);
        test_slapd_populate();

        snprintf(dir, sizeof(dir), "%s/fleet", TW.dir);
        ck_assert_int_eq(mkdir(dir, 0700), 0);
        snprintf(state, sizeof(state), "%s/state", dir);
        ck_assert_int_eq(setenv("DKM_STATE_DIR", state, 1), 0);
        ck_assert_int_eq(test_store("init"), 0);
        store_id_hex(state, id);
        test_slapd_set_store_id(id);
        /* host2 holds the same store (one fleet, one root key): a copy, made before any group. */
        snprintf(host2, sizeof(host2), "%s/host2", dir);
        snprintf(cmd, sizeof(cmd), "cp -a '%s' '%s'", state, host2);
        ck_assert_int_eq(system(cmd), 0);

        /* This host follows provider 1 only: stopping it is this host's partition. */
        snprintf(conf, sizeof(conf), "%s/fleet.conf", dir);
        snprintf(text, sizeof(text), "Uris=%s\nBase=%s\nBindDN=%s\nBindPasswordFile=%s\nHost=host1\nTimeout=1s\n",
                 test_slapd_uri(1), TEST_SLAPD_BASE, TEST_SLAPD_ID("host1"), test_slapd_password_file());
        write_text(conf, text);
        snprintf(host2_conf_path, sizeof(host2_conf_path), "%s/fleet-host2.conf", dir);
        snprintf(text, sizeof(text), "Uris=%s\nBase=%s\nBindDN=%s\nBindPasswordFile=%s\nHost=host2\nTimeout=1s\n",
                 test_slapd_uri(0), TEST_SLAPD_BASE, TEST_SLAPD_ID("host2"), test_slapd_password_file());
        write_text(host2_conf_path, text);

        snprintf(cmd, sizeof(cmd), "--fleet=%s", conf);
        test_dkmd_start((const char *const[]){ cmd, NULL });
        ck_assert_msg(wait_fleet_state("connected", 5000), "not connected: %s", test_dkmd_log());
        uri = test_manager_property("FleetUri");
        ck_assert_str_eq(uri, test_slapd_uri(1));

        /* A group made here is in the directory (revision 1) before it is in the kernel. */
        gpath = test_create_group(group);
        for (int i = 0; i < 50 && directory_revision(group) != 1; i++)
                sleep_ms(100);
        ck_assert_uint_eq(directory_revision(group), 1);
        {
                _cleanup_(fleet_conn_freep) FleetConn *conn = host2_connect();

                ck_assert_int_eq(fleet_group_get(conn, group, &first_copy), 0);
        }
        for (int i = 0; i < 4; i++)
                snprintf(ct[i], sizeof(ct[i]), "%s/%s-%d", TW.work_dir, group, i);
        test_member_encrypt(group, ct[1], "one");
        member_decrypts(ct[1], "one");

        /* host2 rolls over: this host's kernel has generation 2 active within seconds. */
        rev = directory_revision(group);
        ck_assert_uint_eq(host2_rollover(host2, group), 2);
        took = wait_active(gpath, 2, 5000);
        fprintf(stderr, "fleet: host2's rollover active on this host after %.1f ms\n", (double) took / 1000.0);
        ck_assert_uint_gt(directory_revision(group), rev);
        test_member_encrypt(group, ct[2], "two");
        member_decrypts(ct[1], "one");
        member_decrypts(ct[2], "two");

        /* Partition: no server of this host's list answers. It keeps serving, refuses changes, and
         * host2 goes on through provider 0. */
        test_slapd_stop(1);
        ck_assert_msg(wait_fleet_state("partitioned", 5000), "still connected after its server stopped");
        rollover(gpath, E_FLEET_UNAVAILABLE);
        ck_assert_uint_eq(active_generation(gpath), 2);
        member_decrypts(ct[2], "two");
        ck_assert_uint_eq(host2_rollover(host2, group), 3);
        member_decrypts(ct[1], "one");

        /* Back: provider 1 catches up from provider 0, this host from its cookie. */
        test_slapd_restart(1);
        ck_assert_msg(wait_fleet_state("connected", 20000), "not reconnected");
        took = wait_active(gpath, 3, 20000);
        fprintf(stderr, "fleet: caught up with generation 3 %.1f ms after reconnecting\n", (double) took / 1000.0);
        test_member_encrypt(group, ct[3], "three");
        member_decrypts(ct[3], "three");
        member_decrypts(ct[1], "one");

        /* A change made here again: published on the directory's latest revision. */
        rev = directory_revision(group);
        rollover(gpath, NULL);
        ck_assert_uint_eq(active_generation(gpath), 4);
        for (int i = 0; i < 50 && directory_revision(group) <= rev; i++)
                sleep_ms(100);
        ck_assert_uint_gt(directory_revision(group), rev);

        /* The directory cannot change a group's gid or policy behind the fleet's back. */
        directory_tampering_refused(state, host2, group, gpath);
        ck_assert_uint_eq(host2_rollover(host2, group), 6);
        wait_active(gpath, 6, 5000);
        test_member_encrypt(group, ct[0], "six");
        member_decrypts(ct[0], "six");

        /* An older genuine copy served again: the entry deleted and added back with revision 1
         * and the copy sealed for it (a directory administrator, or a host identity, can). This
         * host refuses it, also after a restart: it keeps the revisions it has seen. */
        {
                _cleanup_(fleet_conn_freep) FleetConn *conn = host2_connect();
                _cleanup_free_ char *before = NULL, *after = NULL;
                size_t before_size, after_size;
                uint64_t published = 0;

                ck_assert_int_eq(test_dkmd_stop(false), 0);
                ck_assert_int_eq(fleet_group_delete(conn, group, directory_revision(group)), 0);
                ck_assert_int_eq(fleet_group_put(conn, group, first_copy->text, first_copy->size, 0, &published), 0);
                ck_assert_uint_eq(published, 1);
                local_group_text(state, group, &before, &before_size);
                /* damaged lines in the revisions file are skipped, the others still hold */
                snprintf(cmd, sizeof(cmd), "printf 'not a line\n%s -5\n%s +9\n' >> '%s/fleet-revisions'", group, group,
                         state);
                ck_assert_int_eq(system(cmd), 0);
                snprintf(cmd, sizeof(cmd), "--fleet=%s", conf);
                test_dkmd_start((const char *const[]){ cmd, NULL });
                ck_assert_msg(wait_fleet_state("connected", 5000), "not connected after the restart");
                sleep_ms(500); /* the read after connecting, and the follower's refresh */
                ck_assert_uint_eq(active_generation(gpath), 6);
                local_group_text(state, group, &after, &after_size);
                ck_assert_msg(after_size == before_size && memcmp(before, after, after_size) == 0,
                              "this host took an older copy of the group");
                member_decrypts(ct[0], "six");
        }

        ck_assert_int_eq(test_dkmd_stop(false), 0);
        first_copy = fleet_group_free(first_copy);
        test_slapd_cleanup();
}
END_TEST

static Suite *make_suite(bool integration) {
        Suite *s = suite_create("fleet-dkmd");
        TCase *tc = tcase_create("fleet");

        if (integration) {
                tcase_set_timeout(tc, 120);
                tcase_add_unchecked_fixture(tc, test_bus_start, test_bus_stop);
                tcase_add_test(tc, test_follow_and_partition);
                suite_add_tcase(s, tc);
        }
        return s;
}

int main(void) {
        int r;

        test_slapd_init();
        r = test_world_main(make_suite, key_group_tags);
        test_slapd_finish();
        return r;
}
