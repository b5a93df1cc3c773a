/* SPDX-License-Identifier: MIT */
/* Throwaway OpenLDAP providers for the fleet tests: N slapd in multi-provider replication on
 * loopback ports, each with its own directory, started and stopped by pid. */
#pragma once

#include <stdbool.h>

#define TEST_SLAPD_MAX 4U
#define TEST_SLAPD_SUFFIX "dc=dkm,dc=test"
#define TEST_SLAPD_BASE "ou=dkm,dc=dkm,dc=test"
#define TEST_SLAPD_ROOT_DN "cn=root,dc=dkm,dc=test"
#define TEST_SLAPD_ID(name) "cn=" name ",ou=identities,dc=dkm,dc=test"
#define TEST_SLAPD_HOSTS_GROUP "cn=dkm-hosts,ou=roles,dc=dkm,dc=test"
#define TEST_SLAPD_ADMINS_GROUP "cn=dkm-admins,ou=roles,dc=dkm,dc=test"
#define TEST_SLAPD_STORE_ID "00112233445566778899aabbccddeeff"
/* Every identity's password (root, replicator, admin, host1..3, outsider). */
#define TEST_SLAPD_PASSWORD "dkm-test-password"

/* Where every instance lives: a directory the test's main makes before running the suites and
 * removes after (also what a failed, _exit()ed test child left behind). Exits 77 without slapd. */
void test_slapd_init(void);
void test_slapd_finish(void);

/* Start n providers (replicating to each other), wait until each answers. Aborts the test on
 * failure, with the end of the slapd log. Stopped and removed at exit; killed with the process
 * (PR_SET_PDEATHSIG). */
void test_slapd_start(unsigned n);
void test_slapd_stop(unsigned i);    /* SIGTERM by pid, waitpid */
void test_slapd_restart(unsigned i); /* the same directory, database and port */
void test_slapd_stop_all(void);
/* Stop every provider and remove this start's directory (a checked fixture's teardown; also at exit). */
void test_slapd_cleanup(void);
const char *test_slapd_uri(unsigned i); /* ldap://127.0.0.1:PORT/ */
/* ldapi://ENCODED-PATH: its socket; a root process whose gid is TEST_SLAPD_EXTERNAL_GID binds
 * there with SASL EXTERNAL as host1 (olcAuthzRegexp); with another gid it is only its peer
 * credentials' DN, in no group. */
const char *test_slapd_ldapi_uri(unsigned i);
/* ldaps://127.0.0.1:PORT/ (StartTLS works on the ldap:// port too). The servers' certificate is
 * for 127.0.0.1, from test_slapd_tls_file("ca.pem"); "client.pem"/"client.key" is a client
 * certificate from that CA whose subject olcAuthzRegexp maps to host1; "other-ca.pem" signed
 * nothing here. */
const char *test_slapd_tls_uri(unsigned i);
const char *test_slapd_tls_file(const char *name);
#define TEST_SLAPD_EXTERNAL_GID 4242
#define TEST_SLAPD_EXTERNAL_GID_STR "4242"
/* A file holding TEST_SLAPD_PASSWORD (for BindPasswordFile=). */
const char *test_slapd_password_file(void);
/* A directory of this test's own for state files. */
const char *test_slapd_dir(void);

/* Add the base entries on provider 0 as the root DN: the suffix, ou=identities (replicator,
 * admin, host1, host2, host3, outsider), ou=roles (dkm-hosts: host1..3; dkm-admins: admin),
 * BASE, ou=groups, ou=hosts, cn=store (TEST_SLAPD_STORE_ID); then wait until every running
 * provider holds them. */
void test_slapd_populate(void);

/* As the directory's administrators (ldapmodify/ldapadd on provider 0): cn=store's dkmStoreId
 * set to hex (the root DN); a host entry with its public key (the admin identity). */
void test_slapd_set_store_id(const char *hex);
void test_slapd_add_host(const char *host, const char *public_key_hex);

/* Whether provider i holds dn (as the root DN), waiting up to timeout_ms. */
bool test_slapd_has_entry(unsigned i, const char *dn, unsigned timeout_ms);
