/* SPDX-License-Identifier: MIT */
/* src/fleet against two real slapd providers in multi-provider replication (tests/test-slapd.c):
 * fleet.conf parsing, replication, conditional writes, the follower's cookie, failover, ACLs, and
 * SASL EXTERNAL binds over ldapi. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fleet-internal.h"
#include "fleet-ldap.h"
#include "test-helpers.h"
#include "test-slapd.h"

/* libldap's own release of a TLS context reference: exported (OPENLDAP_2.5) but declared only in
 * its private ldap_pvt.h; ldap_get_option(LDAP_OPT_X_TLS_CTX) hands out a reference. */
void ldap_pvt_tls_ctx_free(void *ctx);

static uint64_t now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000ULL;
}

/* ---- fleet.conf ---- */

static int parse(const char *text, FleetConfig **ret, FleetConfigError *e) {
        return fleet_config_parse(text, strlen(text), ret, e);
}

START_TEST(test_config_valid) {
        _cleanup_(fleet_config_freep) FleetConfig *c = NULL;
        FleetConfigError e = {};

        ck_assert_int_eq(parse("# fleet\n; also a comment\n\n"
                               "Uris = ldap://a.example:389/  ldaps://b.example/\tldapi://%2Frun%2Fslapd%2Fldapi\n"
                               "Base=ou=dkm,dc=example,dc=org\r\n"
                               "BindDN=cn=host1,ou=identities,dc=example,dc=org\n"
                               "BindPasswordFile=/etc/dkm/fleet.password\n"
                               "Host=host1.example\nTLSCAFile=/etc/ssl/ca.pem\nTimeout=3s\n",
                               &c, &e),
                         0);
        ck_assert_uint_eq(c->n_uris, 3);
        ck_assert_str_eq(c->uris[0], "ldap://a.example:389/");
        ck_assert_str_eq(c->uris[1], "ldaps://b.example/");
        ck_assert_str_eq(c->uris[2], "ldapi://%2Frun%2Fslapd%2Fldapi");
        ck_assert_ptr_null(c->uris[3]);
        ck_assert_str_eq(c->base, "ou=dkm,dc=example,dc=org");
        ck_assert_str_eq(c->bind_dn, "cn=host1,ou=identities,dc=example,dc=org");
        ck_assert_str_eq(c->bind_password_file, "/etc/dkm/fleet.password");
        ck_assert_ptr_null(c->sasl_mech);
        ck_assert_str_eq(c->host, "host1.example");
        ck_assert_str_eq(c->tls_ca_file, "/etc/ssl/ca.pem");
        ck_assert_uint_eq(c->timeout_usec, 3000000);
        c = fleet_config_free(c);

        ck_assert_int_eq(parse("Uris=ldapi:///\nBase=ou=dkm,dc=x\nSaslMech=external\nHost=h", &c, &e), 0);
        ck_assert_str_eq(c->sasl_mech, "EXTERNAL");
        ck_assert_uint_eq(c->timeout_usec, FLEET_TIMEOUT_DEFAULT_USEC);
        ck_assert_ptr_null(c->bind_dn);
        ck_assert_ptr_null(c->tls_cert_file);
        c = fleet_config_free(c);

        ck_assert_int_eq(parse("Uris=ldaps://a/\nBase=ou=dkm,dc=x\nSaslMech=EXTERNAL\nHost=h\nTLSCAFile=/ca.pem\n"
                               "TLSCertificateFile=/etc/dkm/host.pem\nTLSKeyFile=/etc/dkm/host.key\n",
                               &c, &e),
                         0);
        ck_assert_str_eq(c->tls_cert_file, "/etc/dkm/host.pem");
        ck_assert_str_eq(c->tls_key_file, "/etc/dkm/host.key");
}
END_TEST

START_TEST(test_config_invalid) {
        static const struct {
                const char *text;
                unsigned line;
                const char *message;
        } cases[] = {
                { "Uris=ldap://a/\nBase=ou=x\nHost=h\nSaslMech=EXTERNAL\nColour=blue\n", 5, "unknown key" },
                { "Uris=ldap://a/\nUris=ldap://b/\nBase=ou=x\nHost=h\nSaslMech=EXTERNAL\n", 2, "twice" },
                { "Base=ou=x\nHost=h\nSaslMech=EXTERNAL\n", 0, "Uris= is missing" },
                { "Uris=ldap://a/\nHost=h\nSaslMech=EXTERNAL\n", 0, "Base= is missing" },
                { "Uris=ldap://a/\nBase=ou=x\nSaslMech=EXTERNAL\n", 0, "Host= is missing" },
                { "Uris=ldaps://a/\nBase=ou=x\nHost=h\nSaslMech=EXTERNAL\nTLSCAFile=/ca\nTLSCertificateFile=/c\n", 0,
                  "go together" },
                { "Uris=ldaps://a/\nBase=ou=x\nHost=h\nSaslMech=EXTERNAL\nTLSCertificateFile=/c\nTLSKeyFile=/k\n", 0,
                  "needs TLSCAFile=" },
                { "Uris=ldaps://a/\nBase=ou=x\nHost=h\nSaslMech=EXTERNAL\nTLSKeyFile=k\n", 5, "absolute path" },
                { "Uris=http://a/\nBase=ou=x\nHost=h\nSaslMech=EXTERNAL\n", 1, "not an ldap" },
                { "Uris=ldap://a/ ldap://A/\nBase=ou=x\nHost=h\nSaslMech=EXTERNAL\n", 1, "listed twice" },
                { "Uris=ldap://a/\nBase=ou=x\nHost=h\nBindDN=cn=h,ou=x\n", 0, "needs BindPasswordFile" },
                { "Uris=ldap://a/\nBase=ou=x\nHost=h\nBindPasswordFile=/p\n", 0, "without BindDN" },
                { "Uris=ldap://a/\nBase=ou=x\nHost=h\nBindDN=cn=h\nBindPasswordFile=/p\nSaslMech=EXTERNAL\n", 0, "exclude" },
                { "Uris=ldap://a/\nBase=ou=x\nHost=h\n", 0, "neither" },
                { "Uris=ldap://a/\nBase=ou=x\nHost=Host_1\nSaslMech=EXTERNAL\n", 3, "not a valid host name" },
                { "Uris=ldap://a/\nBase=ou=x\nHost=h,ou=evil\nSaslMech=EXTERNAL\n", 3, "not a valid host name" },
                { "Uris=ldap://a/\nBase=ou=x\nHost=h\nSaslMech=GSSAPI\n", 4, "only EXTERNAL" },
                { "Uris=ldap://a/\nBase=ou=x\nHost=h\nSaslMech=EXTERNAL\nTimeout=5min\n", 5, "duration" },
                { "Uris=ldap://a/\nBase=ou=x\nHost=h\nSaslMech=EXTERNAL\nTimeout=0\n", 5, "duration" },
                { "Uris=ldap://a/\nBase=ou=x\nHost=h\nBindDN=cn=h\nBindPasswordFile=p\n", 5, "absolute" },
                { "Uris=ldap://a/\nBase=x\nHost=h\nSaslMech=EXTERNAL\n", 2, "not a DN" },
                { "Uris=ldap://a/\nBase=\nHost=h\nSaslMech=EXTERNAL\n", 2, "empty value" },
                { "Uris=ldap://a/\nBase\n", 2, "not a Key=Value" },
                { "Uris=ldap://a/\nBase=ou=x\nHost=h\nSaslMech=EXTERNAL\nTimeout=500ms\n", 5, "duration" },
                { "Uris=ldap://a/\nBase=ou=x\x01\n", 2, "control character" },
                { "Uris=\n", 1, "empty value" },
                { "Uris=a b c d e f g h i j k l m n o p q\n", 1, "not an ldap" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                FleetConfig *c = NULL;
                FleetConfigError e = {};

                ck_assert_msg(parse(cases[i].text, &c, &e) == -EINVAL, "case %zu accepted", i);
                ck_assert_ptr_null(c);
                ck_assert_msg(e.line == cases[i].line, "case %zu: line %u, want %u (%s)", i, e.line, cases[i].line,
                              e.message);
                ck_assert_msg(strstr(e.message, cases[i].message), "case %zu: \"%s\" lacks \"%s\"", i, e.message,
                              cases[i].message);
        }

        /* NUL bytes, too many URIs, and a file */
        {
                FleetConfig *c = NULL;
                FleetConfigError e = {};
                char many[2048] = "Uris=";

                ck_assert_int_eq(fleet_config_parse("Uris=ldap://a/\0\n", 16, &c, &e), -EINVAL);
                ck_assert_ptr_nonnull(strstr(e.message, "NUL"));
                for (unsigned i = 0; i <= FLEET_URIS_MAX; i++)
                        snprintf(many + strlen(many), sizeof(many) - strlen(many), "ldap://h%u/ ", i);
                strcat(many, "\nBase=ou=x\nHost=h\nSaslMech=EXTERNAL\n");
                ck_assert_int_eq(parse(many, &c, &e), -EINVAL);
                ck_assert_ptr_nonnull(strstr(e.message, "more than"));
                ck_assert_int_eq(fleet_config_load("/nonexistent/fleet.conf", &c, &e), -ENOENT);
                ck_assert_ptr_nonnull(strstr(e.message, "cannot read"));
        }
        ck_assert(fleet_name_is_valid("web-1.example"));
        ck_assert(!fleet_name_is_valid("Web"));
        ck_assert(!fleet_name_is_valid("-web"));
        ck_assert(!fleet_name_is_valid("a,b"));
        ck_assert(!fleet_name_is_valid(""));
}
END_TEST

/* ---- against slapd ---- */

/* A config for identity (e.g. "host1") with the given providers, in that order (-1 ends; -2 a
 * closed port). */
static FleetConfig *config_for(const char *identity, const int *order) {
        char text[2048], uris[600] = "";
        FleetConfig *c = NULL;
        FleetConfigError e = {};

        for (size_t i = 0; order[i] != -1; i++)
                snprintf(uris + strlen(uris), sizeof(uris) - strlen(uris), "%s ",
                         order[i] == -2 ? "ldap://127.0.0.1:1/" : test_slapd_uri((unsigned) order[i]));
        snprintf(text, sizeof(text),
                 "Uris=%s\nBase=%s\nBindDN=cn=%s,ou=identities,%s\nBindPasswordFile=%s\nHost=%s\nTimeout=1s\n", uris,
                 TEST_SLAPD_BASE, identity, TEST_SLAPD_SUFFIX, test_slapd_password_file(),
                 strncmp(identity, "host", 4) == 0 ? identity : "admin-host");
        ck_assert_msg(parse(text, &c, &e) == 0, "config: %u: %s", e.line, e.message);
        return c;
}

#define ORDER(...) ((const int[]) { __VA_ARGS__, -1 })

static FleetConn *connect_as(const FleetConfig *c) {
        FleetConn *conn = NULL;
        int r = fleet_connect(c, &conn);

        ck_assert_msg(r == 0, "fleet_connect: %s: %s", strerror(-r), fleet_last_error());
        return conn;
}

static void setup_two(void) {
        test_slapd_start(2);
        test_slapd_populate();
}

static void teardown_two(void) {
        test_slapd_cleanup();
}

/* What a follower saw. */
typedef struct Seen {
        unsigned changed, deleted, connected, lost;
        char last_changed[FLEET_NAME_MAX + 1];
        char last_deleted[FLEET_NAME_MAX + 1];
        uint64_t last_revision;
        char changed_names[32][FLEET_NAME_MAX + 1];
        bool fail_next;
} Seen;

static int on_changed(FleetFollow *f, const FleetGroup *g, void *userdata) {
        Seen *s = userdata;

        ck_assert_ptr_nonnull(g->text);
        ck_assert_uint_eq(strlen(g->text), g->size);
        ck_assert_uint_eq(strlen(g->uuid), 36);
        if (s->fail_next) {
                s->fail_next = false;
                return -EIO;
        }
        if (s->changed < 32)
                snprintf(s->changed_names[s->changed], sizeof(s->changed_names[0]), "%s", g->name);
        s->changed++;
        snprintf(s->last_changed, sizeof(s->last_changed), "%s", g->name);
        s->last_revision = g->revision;
        return 0;
}

static int on_deleted(FleetFollow *f, const char *name, const char *uuid, void *userdata) {
        Seen *s = userdata;

        s->deleted++;
        snprintf(s->last_deleted, sizeof(s->last_deleted), "%s", name ? name : "(unknown)");
        return 0;
}

static void on_connection(FleetFollow *f, const char *uri, int error, void *userdata) {
        Seen *s = userdata;

        if (uri)
                s->connected++;
        else
                s->lost++;
}

static const FleetFollowCallbacks callbacks = {
        .group_changed = on_changed,
        .group_deleted = on_deleted,
        .connection_changed = on_connection,
};

/* Drive f until cond holds or timeout_ms passes; returns the elapsed microseconds. */
#define FOLLOW_UNTIL(f, cond, timeout_ms)                                                          \
        ({                                                                                         \
                uint64_t _start = now_usec();                                                      \
                while (!(cond)) {                                                                  \
                        ck_assert_msg(now_usec() - _start < (uint64_t) (timeout_ms) * 1000ULL,     \
                                      "timed out waiting for: %s (%s)", #cond, fleet_last_error()); \
                        ck_assert_int_eq(fleet_follow_wait(f, 50000), 0);                          \
                }                                                                                  \
                now_usec() - _start;                                                               \
        })

static char *state_path(const char *name) {
        char *p = NULL;

        ck_assert_int_ge(asprintf(&p, "%s/%s", test_slapd_dir(), name), 0);
        return p;
}

START_TEST(test_replication) {
        _cleanup_(fleet_config_freep) FleetConfig *c1 = config_for("host1", ORDER(0)), *c2 = config_for("host2", ORDER(1));
        _cleanup_(fleet_conn_freep) FleetConn *w = connect_as(c1), *r = connect_as(c2);
        _cleanup_(fleet_follow_freep) FleetFollow *f = NULL;
        _cleanup_(fleet_group_freep) FleetGroup *g = NULL;
        _cleanup_free_ char *path = state_path("follow-replication");
        _cleanup_strv_free_ char **names = NULL;
        const char *text = "group file v1\nwrapped=blob\n";
        uint64_t rev = 0, t0, worst = 0;
        Seen seen = {};

        ck_assert_str_eq(fleet_conn_uri(w), test_slapd_uri(0));
        ck_assert_int_eq(fleet_conn_uri_index(r), 0);
        ck_assert_str_eq(fleet_conn_uri(r), test_slapd_uri(1));

        ck_assert_int_eq(fleet_follow_new(c2, path, &callbacks, &seen, &f), 0);
        FOLLOW_UNTIL(f, fleet_follow_refreshed(f), 5000);
        ck_assert_uint_eq(seen.changed, 0);

        /* written on provider 1, read back from provider 2, seen by a follower of provider 2 */
        t0 = now_usec();
        ck_assert_int_eq(fleet_group_put(w, "mail", text, strlen(text), 0, &rev), 0);
        ck_assert_uint_eq(rev, 1);
        FOLLOW_UNTIL(f, seen.changed == 1, 5000);
        worst = now_usec() - t0;
        printf("propagation provider 1 -> follower on provider 2 (create): %.2f ms\n", worst / 1000.0);
        ck_assert_str_eq(seen.last_changed, "mail");
        ck_assert_int_eq(fleet_group_get(r, "mail", &g), 0);
        ck_assert_str_eq(g->name, "mail");
        ck_assert_str_eq(g->text, text);
        ck_assert_uint_eq(g->revision, 1);
        ck_assert_uint_eq(strlen(g->uuid), 36);

        for (unsigned i = 0; i < 10; i++) {
                char v[64];
                uint64_t dt;

                snprintf(v, sizeof(v), "group file v%u\n", i + 2);
                t0 = now_usec();
                ck_assert_int_eq(fleet_group_put(w, "mail", v, strlen(v), rev, &rev), 0);
                FOLLOW_UNTIL(f, seen.last_revision == rev, 5000);
                dt = now_usec() - t0;
                worst = MAX(worst, dt);
        }
        printf("propagation provider 1 -> follower on provider 2 (10 rollovers): worst %.2f ms\n", worst / 1000.0);
        ck_assert_uint_eq(rev, 11);
        ck_assert_uint_eq(seen.changed, 11);
        ck_assert_uint_eq(fleet_follow_stats(f)->present, 0);

        ck_assert_int_eq(fleet_group_put(w, "db", "x\n", 2, 0, NULL), 0);
        ck_assert_int_eq(fleet_group_list(w, &names), 0);
        ck_assert_str_eq(names[0], "db");
        ck_assert_str_eq(names[1], "mail");
        ck_assert_ptr_null(names[2]);

        /* a conditional delete; the follower learns the name from its map */
        ck_assert_int_eq(fleet_group_delete(w, "db", 2), -ESTALE);
        ck_assert_int_eq(fleet_group_delete(w, "db", 1), 0);
        ck_assert_int_eq(fleet_group_delete(w, "db", 1), -ENOENT);
        FOLLOW_UNTIL(f, seen.deleted == 1, 5000);
        ck_assert_str_eq(seen.last_deleted, "db");
        ck_assert_int_eq(fleet_group_get(w, "db", &g), -ENOENT);

        /* bad arguments never reach the directory */
        ck_assert_int_eq(fleet_group_put(w, "Bad,name", "x", 1, 0, NULL), -EINVAL);
        ck_assert_int_eq(fleet_group_put(w, "ok", "x", 0, 0, NULL), -EINVAL);
        ck_assert_int_eq(fleet_group_get(w, "cn=x", &g), -EINVAL);
}
END_TEST

START_TEST(test_conditional_write) {
        _cleanup_(fleet_config_freep) FleetConfig *c1 = config_for("host1", ORDER(0, 1)), *c2 = config_for("host2", ORDER(0, 1));
        _cleanup_(fleet_conn_freep) FleetConn *a = connect_as(c1), *b = connect_as(c2);
        _cleanup_(fleet_group_freep) FleetGroup *g = NULL;
        uint64_t ra = 0, rb = 0;
        int r1, r2;

        /* two creators: exactly one wins */
        r1 = fleet_group_put(a, "web", "from a\n", 7, 0, &ra);
        r2 = fleet_group_put(b, "web", "from b\n", 7, 0, &rb);
        ck_assert_int_eq(r1, 0);
        ck_assert_int_eq(r2, -ESTALE);
        ck_assert_ptr_nonnull(strstr(fleet_last_error(), "another writer"));
        ck_assert_ptr_null(strstr(fleet_last_error(), "from b"));

        /* two writers of revision 1: exactly one wins */
        r1 = fleet_group_put(b, "web", "rollover by b\n", 14, 1, &rb);
        r2 = fleet_group_put(a, "web", "rollover by a\n", 14, 1, &ra);
        ck_assert_int_eq(r1, 0);
        ck_assert_int_eq(rb, 2);
        ck_assert_int_eq(r2, -ESTALE);
        ck_assert_ptr_nonnull(strstr(fleet_last_error(), "revision 1 is gone"));

        /* the loser re-reads, adopts, redoes its change on top and wins */
        ck_assert_int_eq(fleet_group_get(a, "web", &g), 0);
        ck_assert_uint_eq(g->revision, 2);
        ck_assert_str_eq(g->text, "rollover by b\n");
        ck_assert_int_eq(fleet_group_put(a, "web", "rollover by a\n", 14, g->revision, &ra), 0);
        ck_assert_uint_eq(ra, 3);
        g = fleet_group_free(g);
        ck_assert_int_eq(fleet_group_get(b, "web", &g), 0);
        ck_assert_uint_eq(g->revision, 3);
        ck_assert_str_eq(g->text, "rollover by a\n");

        /* a modify of a group that is gone is a lost race too */
        ck_assert_int_eq(fleet_group_put(a, "nothere", "x\n", 2, 5, NULL), -ESTALE);

        /* many racers in turn on one revision: one winner */
        {
                FleetConn *conns[2] = { a, b };
                unsigned wins = 0, stale = 0;

                for (unsigned i = 0; i < 6; i++) {
                        int r = fleet_group_put(conns[i % 2], "web", "race\n", 5, 3, NULL);
                        if (r == 0)
                                wins++;
                        else if (r == -ESTALE)
                                stale++;
                }
                ck_assert_uint_eq(wins, 1);
                ck_assert_uint_eq(stale, 5);
        }

        /* the store id and the hosts */
        {
                char id[FLEET_STORE_ID_HEX + 1];

                ck_assert_int_eq(fleet_store_id_get(a, id), 0);
                ck_assert_str_eq(id, TEST_SLAPD_STORE_ID);
        }
}
END_TEST

START_TEST(test_follow_cookie) {
        _cleanup_(fleet_config_freep) FleetConfig *cw = config_for("host1", ORDER(0)), *cf = config_for("host2", ORDER(0, 1));
        _cleanup_(fleet_conn_freep) FleetConn *w = connect_as(cw);
        _cleanup_free_ char *path = state_path("follow-cookie");
        FleetFollow *f = NULL;
        uint64_t rev[5] = {};
        Seen seen = {};
        struct stat st;

        for (unsigned i = 0; i < 5; i++) {
                char name[16];
                snprintf(name, sizeof(name), "g%u", i);
                ck_assert_int_eq(fleet_group_put(w, name, "v1\n", 3, 0, &rev[i]), 0);
        }
        ck_assert(test_slapd_has_entry(1, "cn=g4,ou=groups," TEST_SLAPD_BASE, 5000));

        /* the first follow: a full refresh, then the state file */
        ck_assert_int_eq(fleet_follow_new(cf, path, &callbacks, &seen, &f), 0);
        FOLLOW_UNTIL(f, fleet_follow_refreshed(f) && seen.changed == 5, 5000);
        ck_assert_uint_eq(fleet_follow_stats(f)->refreshes, 1);
        ck_assert_int_eq(stat(path, &st), 0);
        ck_assert_uint_eq(st.st_mode & 07777, 0600);
        f = fleet_follow_free(f);

        /* three changes while nobody follows: two rollovers and a new group */
        ck_assert_int_eq(fleet_group_put(w, "g1", "v2\n", 3, rev[1], &rev[1]), 0);
        ck_assert_int_eq(fleet_group_put(w, "g3", "v2\n", 3, rev[3], &rev[3]), 0);
        ck_assert_int_eq(fleet_group_put(w, "g5", "v1\n", 3, 0, NULL), 0);

        /* resumed from the cookie: exactly those three, no "present" messages (a delta, not a
         * full refresh) */
        memset(&seen, 0, sizeof(seen));
        ck_assert_int_eq(fleet_follow_new(cf, path, &callbacks, &seen, &f), 0);
        FOLLOW_UNTIL(f, fleet_follow_refreshed(f), 5000);
        for (unsigned i = 0; i < 10; i++) /* give anything extra a chance to arrive */
                ck_assert_int_eq(fleet_follow_wait(f, 20000), 0);
        ck_assert_uint_eq(seen.changed, 3);
        ck_assert_str_eq(seen.changed_names[0], "g1");
        ck_assert_str_eq(seen.changed_names[1], "g3");
        ck_assert_str_eq(seen.changed_names[2], "g5");
        ck_assert_uint_eq(seen.deleted, 0);
        ck_assert_uint_eq(fleet_follow_stats(f)->present, 0);
        f = fleet_follow_free(f);

        /* a delete while nobody follows arrives by entryUUID: the saved map names it */
        ck_assert_int_eq(fleet_group_delete(w, "g2", rev[2]), 0);
        memset(&seen, 0, sizeof(seen));
        ck_assert_int_eq(fleet_follow_new(cf, path, &callbacks, &seen, &f), 0);
        FOLLOW_UNTIL(f, fleet_follow_refreshed(f) && seen.deleted == 1, 5000);
        ck_assert_str_eq(seen.last_deleted, "g2");
        ck_assert_uint_eq(seen.changed, 0);

        /* a change the caller cannot apply comes again after the reconnect */
        seen.fail_next = true;
        ck_assert_int_eq(fleet_group_put(w, "g0", "v2\n", 3, rev[0], &rev[0]), 0);
        FOLLOW_UNTIL(f, seen.changed == 1, 10000);
        ck_assert_str_eq(seen.last_changed, "g0");
        ck_assert_uint_eq(seen.last_revision, rev[0]);
        ck_assert_uint_ge(seen.lost, 1);
        f = fleet_follow_free(f);

        /* a damaged state file is refused, not half-used */
        {
                int fd = open(path, O_WRONLY | O_TRUNC);
                ck_assert_int_ge(fd, 0);
                ck_assert_int_eq(write(fd, "garbage\n", 8), 8);
                close(fd);
                ck_assert_int_eq(fleet_follow_new(cf, path, &callbacks, &seen, &f), -EBADMSG);
        }
}
END_TEST

START_TEST(test_failover) {
        _cleanup_(fleet_config_freep) FleetConfig *cf = config_for("host2", ORDER(0, 1)), *cw = config_for("host1", ORDER(0, 1)),
                                                  *cdead = config_for("host1", ORDER(-2, 0, 1));
        _cleanup_(fleet_follow_freep) FleetFollow *f = NULL;
        _cleanup_(fleet_group_freep) FleetGroup *g = NULL;
        _cleanup_free_ char *path = state_path("follow-failover");
        FleetConn *w = NULL;
        uint64_t rev = 0, t0, dt;
        Seen seen = {};

        /* a dead first server costs little */
        t0 = now_usec();
        w = connect_as(cdead);
        printf("fleet_connect past a closed port: %.2f ms\n", (now_usec() - t0) / 1000.0);
        ck_assert_int_eq(fleet_conn_uri_index(w), 1);
        w = fleet_conn_free(w);

        w = connect_as(cw);
        ck_assert_int_eq(fleet_follow_new(cf, path, &callbacks, &seen, &f), 0);
        FOLLOW_UNTIL(f, fleet_follow_refreshed(f), 5000);
        ck_assert_str_eq(fleet_follow_uri(f), test_slapd_uri(0));
        ck_assert_int_eq(fleet_group_put(w, "app", "v1\n", 3, 0, &rev), 0);
        FOLLOW_UNTIL(f, seen.changed == 1, 5000);

        /* provider 1 dies: the follower moves to provider 2 and keeps receiving */
        t0 = now_usec();
        test_slapd_stop(0);
        dt = FOLLOW_UNTIL(f, fleet_follow_refreshed(f) && fleet_follow_uri(f) &&
                                     strcmp(fleet_follow_uri(f), test_slapd_uri(1)) == 0, 10000);
        printf("follower failover provider 1 -> provider 2: %.2f ms after SIGTERM\n", (now_usec() - t0) / 1000.0);
        (void) dt;
        ck_assert_uint_ge(seen.lost, 1);
        ck_assert_uint_eq(fleet_follow_stats(f)->connects, 2);

        /* the writer's server is gone: the next operation reconnects down the list */
        t0 = now_usec();
        ck_assert_int_eq(fleet_group_put(w, "app", "v2\n", 3, rev, &rev), -EHOSTDOWN);
        ck_assert_ptr_null(fleet_conn_uri(w));
        ck_assert_int_eq(fleet_group_get(w, "app", &g), 0);
        ck_assert_uint_eq(g->revision, 1);
        ck_assert_int_eq(fleet_group_put(w, "app", "v2\n", 3, rev, &rev), 0);
        ck_assert_str_eq(fleet_conn_uri(w), test_slapd_uri(1));
        printf("writer reconnect to provider 2 and rewrite: %.2f ms\n", (now_usec() - t0) / 1000.0);
        FOLLOW_UNTIL(f, seen.last_revision == 2, 5000);

        /* provider 1 comes back and catches up with what was written on 2 meanwhile */
        ck_assert_int_eq(fleet_group_put(w, "late", "v1\n", 3, 0, NULL), 0);
        t0 = now_usec();
        test_slapd_restart(0);
        ck_assert(test_slapd_has_entry(0, "cn=late,ou=groups," TEST_SLAPD_BASE, 10000));
        printf("restarted provider 1 caught up in %.2f ms (start included)\n", (now_usec() - t0) / 1000.0);
        {
                _cleanup_(fleet_config_freep) FleetConfig *c0 = config_for("host3", ORDER(0));
                _cleanup_(fleet_conn_freep) FleetConn *r0 = connect_as(c0);

                g = fleet_group_free(g);
                ck_assert_int_eq(fleet_group_get(r0, "app", &g), 0);
                ck_assert_uint_eq(g->revision, 2);
                ck_assert_str_eq(g->text, "v2\n");
        }

        /* every server down: -EHOSTDOWN, and the follower backs off */
        test_slapd_stop_all();
        ck_assert_int_eq(fleet_group_get(w, "app", &g), -EHOSTDOWN);
        ck_assert_ptr_nonnull(strstr(fleet_last_error(), "no directory server answered"));
        for (unsigned i = 0; i < 5; i++)
                ck_assert_int_eq(fleet_follow_wait(f, 100000), 0);
        ck_assert(!fleet_follow_connected(f));
        ck_assert_uint_ne(fleet_follow_next_usec(f), UINT64_MAX);
        ck_assert_int_eq(fleet_follow_fd(f), -1);
        fleet_conn_free(w);
}
END_TEST

START_TEST(test_acl) {
        _cleanup_(fleet_config_freep) FleetConfig *ch = config_for("host1", ORDER(0)), *co = config_for("outsider", ORDER(0)),
                                                  *ca = config_for("admin", ORDER(0)), *ch3 = config_for("host3", ORDER(1));
        _cleanup_(fleet_conn_freep) FleetConn *host = connect_as(ch), *outsider = connect_as(co), *admin = connect_as(ca),
                                              *host3 = connect_as(ch3);
        _cleanup_(fleet_group_freep) FleetGroup *g = NULL;
        _cleanup_(fleet_host_freep) FleetHost *h = NULL;
        _cleanup_strv_free_ char **names = NULL;
        const char *pk = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        char id[FLEET_STORE_ID_HEX + 1];
        int r;

        /* hosts write groups (rollover); nobody else does */
        ck_assert_int_eq(fleet_group_put(host, "secret", "wrapped\n", 8, 0, NULL), 0);
        r = fleet_group_put(outsider, "other", "x\n", 2, 0, NULL);
        ck_assert_msg(r == -EACCES, "outsider create: %s (%s)", strerror(-r), fleet_last_error());
        ck_assert_int_eq(fleet_group_put(admin, "other", "x\n", 2, 0, NULL), -EACCES);
        ck_assert_int_eq(fleet_group_put(admin, "secret", "x\n", 2, 1, NULL), -EACCES);
        ck_assert_int_eq(fleet_group_delete(admin, "secret", 1), -EACCES);

        /* group files: hosts read them; the admin sees the entry but not the file; the outsider
         * sees nothing */
        ck_assert(test_slapd_has_entry(1, "cn=secret,ou=groups," TEST_SLAPD_BASE, 5000));
        ck_assert_int_eq(fleet_group_get(host3, "secret", &g), 0);
        ck_assert_str_eq(g->text, "wrapped\n");
        g = fleet_group_free(g);
        ck_assert_int_eq(fleet_group_get(admin, "secret", &g), -EACCES);
        ck_assert_ptr_nonnull(strstr(fleet_last_error(), "no readable dkmGroupFile"));
        r = fleet_group_get(outsider, "secret", &g);
        ck_assert_msg(r == -ENOENT || r == -EACCES, "outsider read: %d", r);
        ck_assert_int_eq(fleet_group_list(outsider, &names), -ENOENT);

        /* hosts: the admin creates the entry (approval), a host adds the sealed protector */
        ck_assert_int_eq(fleet_host_put(host, "host9", pk, NULL, 0), -EACCES);
        ck_assert_int_eq(fleet_host_put(admin, "host9", pk, NULL, 0), 0);
        ck_assert_int_eq(fleet_host_put(admin, "host9", NULL, "sealed\n", 7), -EACCES);
        ck_assert_int_eq(fleet_host_put(host, "host9", NULL, "sealed\n", 7), 0);
        ck_assert_int_eq(fleet_host_get(host, "host9", &h), 0);
        ck_assert_str_eq(h->public_key, pk);
        ck_assert_str_eq(h->protector, "sealed\n");
        h = fleet_host_free(h);
        ck_assert_int_eq(fleet_host_get(admin, "host9", &h), 0);
        ck_assert_ptr_null(h->protector); /* absent for the admin */
        h = fleet_host_free(h);
        r = fleet_host_get(outsider, "host9", &h);
        ck_assert(r == -ENOENT || r == -EACCES);
        ck_assert_int_eq(fleet_host_delete(host, "host9"), -EACCES);
        ck_assert_int_eq(fleet_host_delete(admin, "host9"), 0);
        ck_assert_int_eq(fleet_host_get(admin, "host9", &h), -ENOENT);

        /* the store entry: hosts read it, the admin writes it */
        ck_assert_int_eq(fleet_store_id_get(host, id), 0);
        ck_assert_str_eq(id, TEST_SLAPD_STORE_ID);
        ck_assert_int_eq(fleet_store_id_put(admin, TEST_SLAPD_STORE_ID), 0);
        ck_assert_int_eq(fleet_store_id_put(admin, "ffffffffffffffffffffffffffffffff"), -EEXIST);
        ck_assert_int_eq(fleet_store_id_put(admin, "nothex"), -EINVAL);

        /* a wrong password is refused at the bind */
        {
                _cleanup_(fleet_config_freep) FleetConfig *c = config_for("host1", ORDER(0, 1));
                FleetConn *x = NULL;
                char *bad = NULL;

                ck_assert_int_ge(asprintf(&bad, "%s/bad-password", test_slapd_dir()), 0);
                FILE *fp = fopen(bad, "we");
                fputs("wrong\n", fp);
                fclose(fp);
                free(c->bind_password_file);
                c->bind_password_file = bad;
                ck_assert_int_eq(fleet_connect(c, &x), -EPERM);
                ck_assert_ptr_nonnull(strstr(fleet_last_error(), "Invalid credentials"));
                ck_assert_ptr_null(strstr(fleet_last_error(), "wrong"));
        }
}
END_TEST

/* In a child with the given gid (root's uid; the gid is what slapd's olcAuthzRegexp maps): bind
 * over ldapi with SASL EXTERNAL; as host1, create and read a group and read the store id; as
 * anything else, read nothing and write nothing. Exit status 0, or the step that failed. */
static int external_child(gid_t gid, bool is_host) {
        _cleanup_(fleet_config_freep) FleetConfig *c = NULL;
        _cleanup_(fleet_conn_freep) FleetConn *conn = NULL;
        _cleanup_(fleet_group_freep) FleetGroup *g = NULL;
        FleetConfigError e = {};
        char text[1024], id[FLEET_STORE_ID_HEX + 1];
        int r;

        if (setgroups(0, NULL) < 0 || setgid(gid) < 0)
                return 10;
        snprintf(text, sizeof(text), "Uris=%s\nBase=%s\nSaslMech=EXTERNAL\nHost=host1\nTimeout=1s\n",
                 test_slapd_ldapi_uri(0), TEST_SLAPD_BASE);
        if (fleet_config_parse(text, strlen(text), &c, &e) < 0)
                return 11;
        r = fleet_connect(c, &conn);
        if (r < 0) {
                fprintf(stderr, "EXTERNAL bind with gid %u: %s\n", (unsigned) gid, fleet_last_error());
                return 12;
        }
        if (is_host) {
                if (fleet_group_put(conn, "external", "wrapped by sasl\n", 16, 0, NULL) < 0)
                        return 13;
                if (fleet_group_get(conn, "external", &g) < 0 || strcmp(g->text, "wrapped by sasl\n") != 0)
                        return 14;
                if (fleet_store_id_get(conn, id) < 0 || strcmp(id, TEST_SLAPD_STORE_ID) != 0)
                        return 15;
                return 0;
        }
        r = fleet_group_get(conn, "external", &g);
        if (r != -ENOENT && r != -EACCES)
                return 16;
        if (fleet_group_put(conn, "external-2", "x\n", 2, 0, NULL) != -EACCES)
                return 17;
        return 0;
}

/* Production binds (docs/FLEET.md): SASL EXTERNAL over ldapi, the identity from the peer's
 * credentials through olcAuthzRegexp. Mapped to host1, it reads and writes groups as a host;
 * unmapped, the same ACLs give it nothing. */
START_TEST(test_sasl_external) {
        const struct { gid_t gid; bool is_host; } cases[] = { { TEST_SLAPD_EXTERNAL_GID, true },
                                                               { TEST_SLAPD_EXTERNAL_GID + 1, false } };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                int status;
                pid_t pid = fork();

                ck_assert_int_ge(pid, 0);
                if (pid == 0)
                        _exit(external_child(cases[i].gid, cases[i].is_host));
                ck_assert_int_eq(waitpid(pid, &status, 0), pid);
                ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "gid %u: step %d failed",
                              (unsigned) cases[i].gid, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        }
}
END_TEST

/* A host's fleet.conf over TLS: uri, the CA file, and either host1's password or its client
 * certificate with SASL EXTERNAL. */
static FleetConfig *tls_config(const char *uri, const char *ca, bool client_certificate) {
        FleetConfig *c = NULL;
        FleetConfigError e = {};
        char text[2048];

        snprintf(text, sizeof(text), "Uris=%s\nBase=%s\nHost=host1\nTimeout=1s\nTLSCAFile=%s\n", uri, TEST_SLAPD_BASE,
                 test_slapd_tls_file(ca));
        if (client_certificate)
                snprintf(text + strlen(text), sizeof(text) - strlen(text),
                         "SaslMech=EXTERNAL\nTLSCertificateFile=%s\nTLSKeyFile=%s\n", test_slapd_tls_file("client.pem"),
                         test_slapd_tls_file("client.key"));
        else
                snprintf(text + strlen(text), sizeof(text) - strlen(text), "BindDN=%s\nBindPasswordFile=%s\n",
                         TEST_SLAPD_ID("host1"), test_slapd_password_file());
        ck_assert_msg(parse(text, &c, &e) == 0, "config: %u: %s", e.line, e.message);
        return c;
}

/* TLS as production runs it: StartTLS on ldap:// whenever a CA is configured, ldaps://, and SASL
 * EXTERNAL with a client certificate. A server whose certificate does not chain to the
 * configured CA is refused, on ldap:// too (no fall back to a clear-text bind). */
START_TEST(test_tls) {
        const struct {
                const char *what;
                bool ldaps, client_certificate;
        } ok[] = {
                { "StartTLS, simple bind", false, false },
                { "ldaps, simple bind", true, false },
                { "ldaps, client certificate", true, true },
                { "StartTLS, client certificate", false, true },
        };

        for (size_t i = 0; i < ELEMENTSOF(ok); i++) {
                const char *uri = ok[i].ldaps ? test_slapd_tls_uri(0) : test_slapd_uri(0);
                _cleanup_(fleet_config_freep) FleetConfig *c = tls_config(uri, "ca.pem", ok[i].client_certificate);
                _cleanup_(fleet_conn_freep) FleetConn *conn = NULL;
                _cleanup_(fleet_group_freep) FleetGroup *g = NULL;
                char name[32], text[64];
                int r;

                r = fleet_connect(c, &conn);
                ck_assert_msg(r == 0, "%s: %s", ok[i].what, fleet_last_error());
                /* a host's rights: the client certificate is host1 through olcAuthzRegexp */
                snprintf(name, sizeof(name), "tls-%zu", i);
                snprintf(text, sizeof(text), "written over %s\n", ok[i].what);
                r = fleet_group_put(conn, name, text, strlen(text), 0, NULL);
                ck_assert_msg(r == 0, "%s: put: %s", ok[i].what, fleet_last_error());
                ck_assert_int_eq(fleet_group_get(conn, name, &g), 0);
                ck_assert_str_eq(g->text, text);
        }

        /* One TLS context for every connection with the same client certificate (libldap leaks
         * the certificate of each context it makes); a CA-only connection makes its own. */
        for (int client_certificate = 0; client_certificate < 2; client_certificate++) {
                _cleanup_(fleet_config_freep) FleetConfig *c1 = tls_config(test_slapd_tls_uri(0), "ca.pem", client_certificate),
                                                          *c2 = tls_config(test_slapd_tls_uri(0), "ca.pem", client_certificate);
                _cleanup_(fleet_conn_freep) FleetConn *a = connect_as(c1), *b = connect_as(c2);
                void *ctx_a = NULL, *ctx_b = NULL;

                ck_assert_int_eq(ldap_get_option(a->ld, LDAP_OPT_X_TLS_CTX, &ctx_a), LDAP_OPT_SUCCESS);
                ck_assert_int_eq(ldap_get_option(b->ld, LDAP_OPT_X_TLS_CTX, &ctx_b), LDAP_OPT_SUCCESS);
                ck_assert_ptr_nonnull(ctx_a);
                ck_assert_msg((ctx_a == ctx_b) == client_certificate, "client certificate %d: contexts %p and %p",
                              client_certificate, ctx_a, ctx_b);
                ldap_pvt_tls_ctx_free(ctx_a); /* the references ldap_get_option() gave */
                ldap_pvt_tls_ctx_free(ctx_b);
        }

        for (int ldaps = 0; ldaps < 2; ldaps++) {
                _cleanup_(fleet_config_freep) FleetConfig *c =
                        tls_config(ldaps ? test_slapd_tls_uri(0) : test_slapd_uri(0), "other-ca.pem", false);
                FleetConn *conn = NULL;
                int r = fleet_connect(c, &conn);

                ck_assert_msg(r < 0 && !conn, "%s with a server the CA did not sign: %d", ldaps ? "ldaps" : "StartTLS", r);
                ck_assert_msg(strstr(fleet_last_error(), "TLS handshake failed"), "%s", fleet_last_error());
        }
}
END_TEST

static Suite *fleet_suite(void) {
        Suite *s = suite_create("fleet-ldap");
        TCase *tc = tcase_create("config");

        tcase_add_test(tc, test_config_valid);
        tcase_add_test(tc, test_config_invalid);
        suite_add_tcase(s, tc);

        tc = tcase_create("directory");
        tcase_add_checked_fixture(tc, setup_two, teardown_two);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_replication);
        tcase_add_test(tc, test_conditional_write);
        tcase_add_test(tc, test_follow_cookie);
        tcase_add_test(tc, test_failover);
        tcase_add_test(tc, test_acl);
        tcase_add_test(tc, test_sasl_external);
        tcase_add_test(tc, test_tls);
        suite_add_tcase(s, tc);
        return s;
}

int main(int argc, char **argv) {
        int r;

        /* DKM_FLEET_CONFIG_ONLY: only the parser (the valgrind pass, no slapd needed) */
        if (getenv("DKM_FLEET_CONFIG_ONLY"))
                setenv("CK_RUN_CASE", "config", 1);
        else
                test_slapd_init();
        setvbuf(stdout, NULL, _IOLBF, 0);
        r = test_run_suite(fleet_suite());
        if (!getenv("DKM_FLEET_CONFIG_ONLY"))
                test_slapd_finish();
        return r;
}
