/* SPDX-License-Identifier: MIT */
/* The fleet end to end (issue 9): two slapd providers in multi-provider replication and three dkmd
 * hosts, each in its own user and mount namespace (tests/test-hosts.c: its own keyrings, /run,
 * bus), following one directory. A rollover on one host reaches the others' kernels; a provider
 * killed and restarted; a host partitioned (its forwarders cut) keeps decrypting and catches up;
 * hosts rolling the same group over at once end up agreeing, nothing lost. */
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
#include "fleet-ldap.h"
#include "macro.h"
#include "store.h"
#include "test-accounts.h"
#include "test-bus.h"
#include "test-forwarder.h"
#include "test-hosts.h"
#include "test-slapd.h"

#define USEC 1000000ULL
#define HOSTS 3

static const char *const key_group_tags[] = { "fleet", "enrol", NULL };

/* For a failure's message: every host's dkmd log. */
static TestHost *all_hosts[HOSTS];

static void dump_logs(void) {
        /* DKM_SLAPD_DEBUG=stats,sync: the providers' logs go to /tmp/dkm-slapd-debug-N.log too. */
        if (getenv("DKM_SLAPD_DEBUG") && getenv("DKM_TEST_SLAPD_ROOT")) {
                char cmd[400];

                snprintf(cmd, sizeof(cmd), "i=0; for f in %s/*/*/slapd.log; do cp $f /tmp/dkm-slapd-debug-$i.log; "
                         "i=$((i+1)); done", getenv("DKM_TEST_SLAPD_ROOT"));
                if (system(cmd) != 0)
                        fprintf(stderr, "cannot copy the slapd logs\n");
        }
        for (size_t i = 0; i < HOSTS; i++) {
                FILE *f = all_hosts[i] ? fopen(all_hosts[i]->dkmd_log, "re") : NULL;
                char line[512];

                if (!f)
                        continue;
                fprintf(stderr, "---- host %s: dkmd log ----\n", all_hosts[i]->name);
                while (fgets(line, sizeof(line), f))
                        fputs(line, stderr);
                fclose(f);
        }
}

static uint64_t now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * USEC + (uint64_t) ts.tv_nsec / 1000U;
}

static void sleep_ms(unsigned ms) {
        nanosleep(&(struct timespec){ ms / 1000, (long) (ms % 1000) * 1000000L }, NULL);
}

static void write_text(const char *path, const char *text) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

        ck_assert_msg(fd >= 0, "%s: %m", path);
        ck_assert_int_eq(loop_write(fd, text, strlen(text)), 0);
        close(fd);
}

static int uri_port(const char *uri) {
        const char *colon = strrchr(uri, ':');

        ck_assert_ptr_nonnull(colon);
        return atoi(colon + 1);
}

/* The fleet's identity: the store id of h's store, as 32 hex digits. */
static void store_id_hex(const TestHost *h, char out[static 2 * STORE_ID_SIZE + 1]) {
        _cleanup_store_ Store *s = NULL;
        uint8_t raw[STORE_ID_SIZE];

        ck_assert_int_eq(store_open(h->state_dir, &s), 0);
        store_id(s, raw);
        for (size_t i = 0; i < sizeof(raw); i++)
                snprintf(out + 2 * i, 3, "%02x", raw[i]);
}

/* h's fleet.conf (the servers' URIs, its identity hostN) and its bus and dkmd --fleet. The check
 * interval is also how often dkmd reads the whole directory as a safety net under its follower,
 * and how often a host waiting for its enrolment looks at its entry. */
static void start_fleet_host(TestHost *h, const char *uris, unsigned n, const char *check_interval) {
        char conf[256], text[1024], arg[300], interval[64];

        snprintf(conf, sizeof(conf), "%s/fleet.conf", h->dir);
        snprintf(text, sizeof(text),
                 "Uris=%s\nBase=%s\nBindDN=cn=host%u,ou=identities,dc=dkm,dc=test\nBindPasswordFile=%s\n"
                 "Host=host%u\nTimeout=1s\n",
                 uris, TEST_SLAPD_BASE, n, test_slapd_password_file(), n);
        write_text(conf, text);
        snprintf(arg, sizeof(arg), "--fleet=%s", conf);
        snprintf(interval, sizeof(interval), "--protector-check-interval=%s", check_interval);
        test_host_start_bus(h);
        test_host_start_dkmd(h, (const char *const[]){ arg, interval, NULL });
}

/* ---- over a host's bus ---- */

static char *mgr_s(TestHost *h, const char *property) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = test_host_bus_open(h);
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        char *s = NULL;

        if (sd_bus_get_property_string(bus, SVC, MGR_PATH, MGR_IFACE, property, &e, &s) < 0)
                dump_logs();
        ck_assert_msg(s, "%s: %s: %s", h->name, property, e.message ?: "");
        return s;
}

static bool wait_fleet_state(TestHost *h, const char *want, unsigned ms) {
        for (unsigned waited = 0;; waited += 100) {
                _cleanup_free_ char *s = mgr_s(h, "FleetState");

                if (strcmp(s, want) == 0)
                        return true;
                if (waited >= ms) {
                        fprintf(stderr, "host %s: FleetState %s, not %s after %u ms\n", h->name, s, want, ms);
                        dump_logs();
                        return false;
                }
                sleep_ms(100);
        }
}

/* The group's active generation on h; 0 while h does not have the group. */
static uint32_t active_on(TestHost *h, const char *gpath) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = test_host_bus_open(h);
        uint32_t v = 0;

        if (sd_bus_get_property_trivial(bus, SVC, gpath, GROUP_IFACE, "ActiveGeneration", NULL, 'u', &v) < 0)
                return 0;
        return v;
}

static uint64_t wait_active(TestHost *h, const char *gpath, uint32_t want, unsigned ms) {
        uint64_t t0 = now_usec();

        while (active_on(h, gpath) != want) {
                if (now_usec() - t0 >= (uint64_t) ms * 1000U)
                        dump_logs();
                ck_assert_msg(now_usec() - t0 < (uint64_t) ms * 1000U, "host %s: generation %u not active after %u ms (%u)",
                              h->name, want, ms, active_on(h, gpath));
                sleep_ms(10);
        }
        return now_usec() - t0;
}

static char *create_group(TestHost *h, const char *name) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = test_host_bus_open(h);
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        const char *path;

        /* Every generation stays in each host's kernel: the request-key upcall does not work
         * inside a test host (docs/notes/fleet-userns-spike.md, c4). */
        ck_assert_msg(sd_bus_call_method(bus, SVC, MGR_PATH, MGR_IFACE, "CreateGroup", &e, &reply, "sua{sv}", name,
                                         (uint32_t) TW.gid, 1, "HotWindow", "u", (uint32_t) STORE_HOT_WINDOW_MAX) >= 0,
                      "CreateGroup %s: %s: %s", name, e.name ?: "", e.message ?: "");
        ck_assert_int_ge(sd_bus_message_read(reply, "o", &path), 0);
        return strdup(path);
}

/* Rollover on h; the named error, or NULL when it worked. */
static char *rollover_on(TestHost *h, const char *gpath) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = test_host_bus_open(h);
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;

        if (sd_bus_call_method(bus, SVC, gpath, GROUP_IFACE, "Rollover", &e, NULL, NULL) >= 0)
                return NULL;
        return strdup(e.name ?: "?");
}

typedef struct Reply {
        bool done;
        char error[128]; /* the error's name; "" when it worked */
} Reply;

static int on_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Reply *r = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(m);

        snprintf(r->error, sizeof(r->error), "%s", e ? e->name : "");
        r->done = true;
        return 0;
}

/* A rollover racing another host's: it works, or loses cleanly. */
static bool rollover_outcome_ok(const char *error) {
        return !error[0] || strcmp(error, "org.dkm.KeyManager1.Error.FleetConflict") == 0 ||
               strcmp(error, "org.dkm.KeyManager1.Error.RolloverPending") == 0;
}

static void must_rollover(TestHost *h, const char *gpath) {
        _cleanup_free_ char *e = rollover_on(h, gpath);

        if (e)
                dump_logs();
        ck_assert_msg(!e, "rollover on %s: %s", h->name, e);
}

/* ---- the member, inside a host ---- */

static uint8_t *encrypt_in(TestHost *h, const char *group, const char *text, size_t *size) {
        TestCreds member = test_creds_member();
        char *argv[] = { (char *) test_env_path("DKM_CLI"), (char *) "encrypt", (char *) "-g", (char *) group, NULL };
        TestRun r;

        test_host_run(h, &member, argv, text, strlen(text), &r);
        ck_assert_msg(r.status == 0, "host %s: encrypt: %s", h->name, r.err);
        *size = r.out_size;
        return r.out; /* the caller frees it; nothing else of r is allocated */
}

static void decrypt_in(TestHost *h, const uint8_t *ct, size_t size, const char *want) {
        TestCreds member = test_creds_member();
        char *argv[] = { (char *) test_env_path("DKM_CLI"), (char *) "decrypt", NULL };
        TestRun r;

        test_host_run(h, &member, argv, ct, size, &r);
        ck_assert_msg(r.status == 0, "host %s: decrypt of '%s': status %d: %s", h->name, want, r.status, r.err);
        ck_assert_msg(r.out_size == strlen(want) && memcmp(r.out, want, r.out_size) == 0, "host %s: other plaintext",
                      h->name);
        test_run_free(&r);
}

typedef struct Ciphertext {
        uint8_t *data;
        size_t size;
        char text[32];
} Ciphertext;

/* File scope, not the test's stack: the children test_host_run() forks _exit() under valgrind,
 * whose leak check there does not see the test's frame as a root (the same as test-hosts.c's
 * copy of environ). */
static Ciphertext ciphertexts[64];
static char *group_path;

/* The end of a case: every host stopped and removed, the ciphertexts freed, the providers gone. */
static void finish(void) {
        for (size_t i = 0; i < HOSTS; i++) {
                test_host_free(all_hosts[i]);
                all_hosts[i] = NULL;
        }
        for (size_t i = 0; i < ELEMENTSOF(ciphertexts); i++) {
                free(ciphertexts[i].data);
                ciphertexts[i].data = NULL;
        }
        free(group_path);
        group_path = NULL;
        test_slapd_cleanup();
}

/* Every ciphertext made so far decrypts on every host: nothing was lost anywhere. */
static void all_decrypt(TestHost *hosts[], const Ciphertext *c, size_t n) {
        for (size_t h = 0; h < HOSTS; h++)
                for (size_t i = 0; i < n; i++)
                        decrypt_in(hosts[h], c[i].data, c[i].size, c[i].text);
}

static void group_file_of(const TestHost *h, const char *group, char **ret, size_t *size) {
        char path[256];
        int fd;

        snprintf(path, sizeof(path), "%s/groups", h->state_dir);
        fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        snprintf(path, sizeof(path), "%s.group", group);
        ck_assert_int_eq(read_file_full(fd, path, 1 << 20, ret, size), 0);
        close(fd);
}

/* Every host's local copy is the directory's, byte for byte, on provider 0 (the first of every
 * host's list): waits until replication and following settle. */
static void assert_agree(TestHost *hosts[], const char *group) {
        _cleanup_(fleet_config_freep) FleetConfig *c = NULL;
        FleetConfigError e = {};
        char conf[512];
        bool same = false;

        snprintf(conf, sizeof(conf), "Uris=%s\nBase=%s\nBindDN=%s\nBindPasswordFile=%s\nHost=host1\n",
                 test_slapd_uri(0), TEST_SLAPD_BASE, TEST_SLAPD_ID("host1"), test_slapd_password_file());
        ck_assert_int_eq(fleet_config_parse(conf, strlen(conf), &c, &e), 0);
        for (int tries = 0; !same && tries < 100; tries++) {
                _cleanup_(fleet_conn_freep) FleetConn *conn = NULL;
                _cleanup_(fleet_group_freep) FleetGroup *g = NULL;

                if (tries > 0)
                        sleep_ms(50);
                if (fleet_connect(c, &conn) < 0 || fleet_group_get(conn, group, &g) < 0)
                        continue;
                same = true;
                for (size_t i = 0; same && i < HOSTS; i++) {
                        _cleanup_free_ char *text = NULL;
                        size_t size = 0;

                        group_file_of(hosts[i], group, &text, &size);
                        /* the directory's copy is the group file and its fleet seal line */
                        same = size < g->size && memcmp(text, g->text, size) == 0 &&
                               strncmp(g->text + size, "fleet-seal=", 11) == 0;
                }
        }
        if (!same)
                dump_logs();
        ck_assert_msg(same, "the hosts' copies of %s and provider 0's differ", group);
}

START_TEST(test_fleet) {
        const char *group = test_key_group("fleet");
        TestHost *hosts[HOSTS] = {};
        TestForwarder *fwd[2];
        char id[2 * STORE_ID_SIZE + 1], uris[256];
        char *gpath;
        Ciphertext *ct = ciphertexts;
        size_t n_ct = 0;
        uint32_t active;
        uint64_t took;

        test_slapd_start(2);
        test_slapd_populate();
        /* C reaches both providers through forwarders only: cutting them is C's partition. */
        fwd[0] = test_forwarder_start(uri_port(test_slapd_uri(0)));
        fwd[1] = test_forwarder_start(uri_port(test_slapd_uri(1)));

        for (size_t i = 0; i < HOSTS; i++)
                all_hosts[i] = hosts[i] = test_host_new((const char *[]){ "a", "b", "c" }[i]);
        /* One fleet, one root key: A's store; B and C start as copies of it (enrolment, which
         * gives a host the root key sealed to its own key pair, is tests/test-fleet-enrol.c). */
        ck_assert_int_eq(test_host_store(hosts[0], "init"), 0);
        for (size_t i = 1; i < HOSTS; i++) {
                TestRun r;

                test_run(&r, NULL, 0, NULL,
                         (char *const[]){ (char *) "/bin/cp", (char *) "-a", hosts[0]->state_dir, hosts[i]->state_dir,
                                          NULL });
                ck_assert_msg(r.status == 0, "cp: %s", r.err);
                test_run_free(&r);
        }
        store_id_hex(hosts[0], id);
        test_slapd_set_store_id(id);

        for (size_t i = 0; i < HOSTS; i++) {
                if (i < 2)
                        snprintf(uris, sizeof(uris), "%s %s", test_slapd_uri(0), test_slapd_uri(1));
                else
                        snprintf(uris, sizeof(uris), "ldap://127.0.0.1:%d/ ldap://127.0.0.1:%d/",
                                 test_forwarder_port(fwd[0]), test_forwarder_port(fwd[1]));
                /* A minute: longer than any wait here, so every change below reaches a running
                 * host through its follower, not through the periodic read. */
                start_fleet_host(hosts[i], uris, (unsigned) i + 1, "60s");
                ck_assert_msg(wait_fleet_state(hosts[i], "connected", 5000), "host %s not connected", hosts[i]->name);
        }

        /* A group made on A reaches B and C; A's ciphertext decrypts everywhere. */
        gpath = group_path = create_group(hosts[0], group);
        took = MAX(wait_active(hosts[1], gpath, 1, 5000), wait_active(hosts[2], gpath, 1, 5000));
        fprintf(stderr, "fleet: a new group on A loaded on B and C within %.1f ms\n", (double) took / 1000.0);
        ct[n_ct].data = encrypt_in(hosts[0], group, "from A, gen 1", &ct[n_ct].size);
        snprintf(ct[n_ct++].text, sizeof(ct[0].text), "from A, gen 1");
        all_decrypt(hosts, ct, n_ct);

        /* A rolls over: B and C have the new generation active within 5 s; each host's new
         * ciphertext decrypts on the others. */
        must_rollover(hosts[0], gpath);
        took = MAX(wait_active(hosts[1], gpath, 2, 5000), wait_active(hosts[2], gpath, 2, 5000));
        fprintf(stderr, "fleet: A's rollover active on B and C within %.1f ms\n", (double) took / 1000.0);
        for (size_t i = 0; i < HOSTS; i++) {
                snprintf(ct[n_ct].text, sizeof(ct[0].text), "from %s, gen 2", hosts[i]->name);
                ct[n_ct].data = encrypt_in(hosts[i], group, ct[n_ct].text, &ct[n_ct].size);
                n_ct++;
        }
        all_decrypt(hosts, ct, n_ct);

        /* Provider 0 killed: A and B (and C through its forwarder) go on with provider 1. */
        test_slapd_stop(0);
        sleep_ms(500);
        {
                _cleanup_free_ char *e = NULL;

                for (int tries = 0; tries < 50; tries++) {
                        free(e);
                        e = rollover_on(hosts[1], gpath);
                        if (!e)
                                break;
                        sleep_ms(200); /* B's writer finds provider 1 on its next try */
                }
                ck_assert_msg(!e, "rollover on B with provider 0 down: %s", e);
        }
        for (size_t i = 0; i < HOSTS; i++)
                wait_active(hosts[i], gpath, 3, 10000);
        ct[n_ct].data = encrypt_in(hosts[2], group, "from c, gen 3", &ct[n_ct].size);
        snprintf(ct[n_ct++].text, sizeof(ct[0].text), "from c, gen 3");
        all_decrypt(hosts, ct, n_ct);
        /* Provider 0 back: it catches up with what was written on provider 1 meanwhile. */
        test_slapd_restart(0);
        assert_agree(hosts, group);

        /* C's connections reset while the providers stay up (a restart, a middlebox dropping its
         * state): C reconnects at once (its follower's connection lived for more than a second,
         * so no backoff), and A's next rollover reaches C through the new connection (dkmd's
         * periodic read is a minute away). */
        sleep_ms(1100);
        {
                unsigned accepted = test_forwarder_accepted(fwd[0]) + test_forwarder_accepted(fwd[1]);

                test_forwarder_reset_connections(fwd[0]);
                test_forwarder_reset_connections(fwd[1]);
                for (int tries = 0; tries < 500; tries++) {
                        if (test_forwarder_accepted(fwd[0]) + test_forwarder_accepted(fwd[1]) > accepted)
                                break;
                        sleep_ms(10);
                }
                ck_assert_msg(test_forwarder_accepted(fwd[0]) + test_forwarder_accepted(fwd[1]) > accepted,
                              "C did not reconnect");
                ck_assert_msg(wait_fleet_state(hosts[2], "connected", 5000), "C not connected again");
                sleep_ms(200); /* its refresh done */
                must_rollover(hosts[0], gpath);
                took = wait_active(hosts[2], gpath, 4, 5000);
                fprintf(stderr, "fleet: after C's reconnect, A's rollover active on C within %.1f ms\n",
                        (double) took / 1000.0);
                ct[n_ct].data = encrypt_in(hosts[0], group, "from a, gen 4", &ct[n_ct].size);
                snprintf(ct[n_ct++].text, sizeof(ct[0].text), "from a, gen 4");
                all_decrypt(hosts, ct, n_ct);
        }

        /* C cut off from both providers: it keeps decrypting, does not follow, refuses changes. */
        test_forwarder_cut(fwd[0]);
        test_forwarder_cut(fwd[1]);
        ck_assert_msg(wait_fleet_state(hosts[2], "partitioned", 10000), "C not partitioned");
        must_rollover(hosts[0], gpath);
        wait_active(hosts[1], gpath, 5, 5000);
        ck_assert_uint_eq(active_on(hosts[2], gpath), 4);
        {
                _cleanup_free_ char *e = rollover_on(hosts[2], gpath);
                ck_assert_msg(e && strcmp(e, "org.dkm.KeyManager1.Error.FleetUnavailable") == 0, "C's rollover: %s",
                              e ?: "worked");
        }
        for (size_t i = 0; i < n_ct; i++)
                decrypt_in(hosts[2], ct[i].data, ct[i].size, ct[i].text);
        /* Reconnected: C catches up from its cookie. */
        test_forwarder_restore(fwd[0]);
        test_forwarder_restore(fwd[1]);
        ck_assert_msg(wait_fleet_state(hosts[2], "connected", 40000), "C not reconnected");
        took = wait_active(hosts[2], gpath, 5, 10000);
        fprintf(stderr, "fleet: C caught up %.1f ms after reconnecting\n", (double) took / 1000.0);
        ct[n_ct].data = encrypt_in(hosts[0], group, "from a, gen 5", &ct[n_ct].size);
        snprintf(ct[n_ct++].text, sizeof(ct[0].text), "from a, gen 5");
        all_decrypt(hosts, ct, n_ct);

        /* A and B roll the same group over at once, five times: each call works or loses cleanly
         * (FleetConflict, or RolloverPending when it saw the other's pending generation); all
         * three hosts end on the directory's copy; every ciphertext decrypts everywhere. */
        for (int round = 0; round < 5; round++) {
                _cleanup_(sd_bus_flush_close_unrefp) sd_bus *ba = test_host_bus_open(hosts[0]),
                                                          *bb = test_host_bus_open(hosts[1]);
                Reply ra = {}, rb = {};
                uint64_t t0 = now_usec();

                ck_assert_int_ge(sd_bus_call_method_async(ba, NULL, SVC, gpath, GROUP_IFACE, "Rollover", on_reply, &ra,
                                                          NULL),
                                 0);
                ck_assert_int_ge(sd_bus_call_method_async(bb, NULL, SVC, gpath, GROUP_IFACE, "Rollover", on_reply, &rb,
                                                          NULL),
                                 0);
                while (!ra.done || !rb.done) {
                        ck_assert_msg(now_usec() - t0 < 30 * USEC, "no reply to the concurrent rollovers");
                        while (sd_bus_process(ba, NULL) > 0)
                                ;
                        while (sd_bus_process(bb, NULL) > 0)
                                ;
                        if (!ra.done || !rb.done)
                                (void) sd_bus_wait(!ra.done ? ba : bb, 20 * 1000);
                }
                ck_assert_msg(rollover_outcome_ok(ra.error) && rollover_outcome_ok(rb.error), "round %d: A %s, B %s",
                              round, ra.error[0] ? ra.error : "ok", rb.error[0] ? rb.error : "ok");
                fprintf(stderr, "fleet: concurrent rollover %d: A %s, B %s\n", round, ra.error[0] ? ra.error : "ok",
                        rb.error[0] ? rb.error : "ok");
        }
        /* The last activation may still be on its way when both calls have returned: first every
         * host's copy equal to the directory's, then the same generation active everywhere. */
        assert_agree(hosts, group);
        active = active_on(hosts[0], gpath);
        for (size_t i = 0; i < HOSTS; i++)
                wait_active(hosts[i], gpath, active, 10000);
        for (size_t i = 0; i < HOSTS; i++) {
                snprintf(ct[n_ct].text, sizeof(ct[0].text), "from %s, gen %u", hosts[i]->name, active);
                ct[n_ct].data = encrypt_in(hosts[i], group, ct[n_ct].text, &ct[n_ct].size);
                n_ct++;
        }
        all_decrypt(hosts, ct, n_ct);

        test_forwarder_stop(fwd[0]);
        test_forwarder_stop(fwd[1]);
        finish();
}
END_TEST

/* The enrolment of docs/FLEET.md with the new host's dkmd already running: D joins the fleet
 * (dkm-store fleet join), the directory's administrator adds its entry, its dkmd comes up locked
 * and waits; a dkmd admin on A enrols it (EnrollHost); D installs its protector from the
 * directory by itself, unlocks, loads A's group and decrypts A's ciphertext, and its rollover
 * reaches A. */
START_TEST(test_enrolment_picked_up) {
        const char *group = test_key_group("enrol");
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        TestHost *a, *d;
        char id[2 * STORE_ID_SIZE + 1], public_key[65];
        Ciphertext *ct = ciphertexts;
        TestRun r;
        uint64_t t0;

        test_slapd_start(1);
        test_slapd_populate();
        a = all_hosts[0] = test_host_new("a");
        d = all_hosts[1] = test_host_new("d");
        ck_assert_int_eq(test_host_store(a, "init"), 0);
        store_id_hex(a, id);
        test_slapd_set_store_id(id);

        /* D: the fleet's identity and a key pair of its own; its public key on stdout. */
        test_host_run(d, NULL, (char *const[]){ (char *) test_env_path("DKM_STORE"), (char *) "fleet", (char *) "join", id, NULL },
                      NULL, 0, &r);
        ck_assert_msg(r.status == 0 && r.out_size == 65 && r.out[64] == '\n', "fleet join: status %d: %s", r.status,
                      r.err);
        memcpy(public_key, r.out, 64);
        public_key[64] = 0;
        test_run_free(&r);
        test_slapd_add_host("host2", public_key);

        start_fleet_host(a, test_slapd_uri(0), 1, "60s");
        start_fleet_host(d, test_slapd_uri(0), 2, "1s");
        ck_assert_msg(wait_fleet_state(a, "connected", 5000) && wait_fleet_state(d, "connected", 5000),
                      "hosts not connected");
        {
                _cleanup_free_ char *state = mgr_s(d, "StoreState");
                ck_assert_msg(strcmp(state, "locked") == 0, "D before its enrolment: %s", state);
        }
        group_path = create_group(a, group);
        ct[0].data = encrypt_in(a, group, "from a, before D", &ct[0].size);
        snprintf(ct[0].text, sizeof(ct[0].text), "from a, before D");

        bus = test_host_bus_open(a);
        ck_assert_msg(sd_bus_call_method(bus, SVC, MGR_PATH, MGR_IFACE, "EnrollHost", &e, NULL, "ss", "host2",
                                         "CHG-1: new host d") >= 0,
                      "EnrollHost: %s: %s", e.name ?: "", e.message ?: "");
        t0 = now_usec();
        for (;;) {
                _cleanup_free_ char *state = mgr_s(d, "StoreState");

                if (strcmp(state, "unlocked") == 0)
                        break;
                if (now_usec() - t0 > 10 * USEC)
                        dump_logs();
                ck_assert_msg(now_usec() - t0 <= 10 * USEC, "D still %s 10 s after its enrolment", state);
                sleep_ms(20);
        }
        fprintf(stderr, "fleet: a running dkmd unlocked %.1f ms after its enrolment\n",
                (double) (now_usec() - t0) / 1000.0);
        wait_active(d, group_path, 1, 5000);
        decrypt_in(d, ct[0].data, ct[0].size, ct[0].text);
        must_rollover(d, group_path);
        wait_active(a, group_path, 2, 5000);
        ct[1].data = encrypt_in(d, group, "from d, gen 2", &ct[1].size);
        decrypt_in(a, ct[1].data, ct[1].size, "from d, gen 2");

        finish();
}
END_TEST

static Suite *make_suite(bool integration) {
        Suite *s = suite_create("fleet-hosts");
        TCase *tc = tcase_create("fleet"), *te = tcase_create("enrolment");

        if (integration) {
                tcase_set_timeout(tc, 240);
                tcase_add_test(tc, test_fleet);
                suite_add_tcase(s, tc);
                tcase_set_timeout(te, 120);
                tcase_add_test(te, test_enrolment_picked_up);
                suite_add_tcase(s, te);
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
