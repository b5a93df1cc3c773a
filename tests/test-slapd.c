/* SPDX-License-Identifier: MIT */
/* Throwaway slapd providers: cn=config made with slapadd -n0 from a generated LDIF (the dkm schema
 * and the ACLs of policy/ldap/dkm-acl.ldif.example), mdb, syncprov, multi-provider syncrepl. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <ldap.h>
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

#include "test-slapd.h"

/* Every path here is short (under a mkdtemp directory in /tmp, checked by slapd's ldapi limit);
 * gcc cannot see that through the fixed buffers. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

#define SLAPD "/usr/sbin/slapd"
#define SLAPADD "/usr/sbin/slapadd"
#define MODULE_PATH "/usr/lib/ldap"
#define SCHEMA_DIR "/etc/ldap/schema"

typedef struct Provider {
        char dir[256];
        int port;
        pid_t pid;
        char uri[64];
        int tls_port;
        char tls_uri[64];
        char ldapi_uri[700];
} Provider;

static char root_dir[128];  /* made by test_slapd_init */
static char own_dir[256];   /* this process's */
static char password_file[300];
static Provider providers[TEST_SLAPD_MAX];
static unsigned n_providers;
static pid_t owner_pid;

static void msleep(unsigned ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long) (ms % 1000) * 1000000L };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        (void) st;
        (void) ftw;
        if (flag == FTW_DP)
                (void) rmdir(path);
        else
                (void) unlink(path);
        return 0;
}

static void rm_rf(const char *path) {
        if (path[0])
                (void) nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* The TLS files, under the root every process of the test shares: a CA, the servers' certificate
 * (for 127.0.0.1) and a client certificate (cn=tls-host1, mapped to host1 by olcAuthzRegexp), all
 * from that CA; and a second CA that signed none of them. Made with openssl, once per program. */
static void make_certificates(void) {
        char cmd[4096];
        int r;

        snprintf(cmd, sizeof(cmd),
                 "set -e; umask 077; mkdir %1$s/tls; cd %1$s/tls\n"
                 "key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out $1 2>/dev/null; }\n"
                 "key ca.key; key other-ca.key; key server.key; key client.key\n"
                 "openssl req -x509 -new -key ca.key -out ca.pem -days 2 -subj '/O=dkm-test/CN=dkm test CA'\n"
                 "openssl req -x509 -new -key other-ca.key -out other-ca.pem -days 2 -subj '/O=dkm-test/CN=another CA'\n"
                 "printf 'subjectAltName=IP:127.0.0.1\\n' > server.ext\n"
                 "openssl req -new -key server.key -subj '/O=dkm-test/CN=127.0.0.1' | "
                 "openssl x509 -req -CA ca.pem -CAkey ca.key -set_serial 2 -days 2 -extfile server.ext -out server.pem "
                 "2>/dev/null\n"
                 "openssl req -new -key client.key -subj '/O=dkm-test/CN=tls-host1' | "
                 "openssl x509 -req -CA ca.pem -CAkey ca.key -set_serial 3 -days 2 -out client.pem 2>/dev/null\n",
                 root_dir);
        r = system(cmd);
        if (r != 0) {
                fprintf(stderr, "cannot make the test's TLS certificates with openssl (scripts/deps.sh installs it)\n");
                exit(EXIT_FAILURE);
        }
}

const char *test_slapd_tls_file(const char *name) {
        static char paths[8][300]; /* a few at once in one expression */
        static unsigned next;
        const char *root = getenv("DKM_TEST_SLAPD_ROOT");
        char *p = paths[next++ % 8];

        ck_assert_ptr_nonnull(root);
        snprintf(p, sizeof(paths[0]), "%s/tls/%s", root, name);
        return p;
}

void test_slapd_init(void) {
        if (access(SLAPD, X_OK) < 0 || access(SLAPADD, X_OK) < 0) {
                fprintf(stderr, "SKIP: %s not installed (scripts/deps.sh installs slapd)\n", SLAPD);
                exit(77);
        }
        snprintf(root_dir, sizeof(root_dir), "/tmp/dkm-slapd-XXXXXX");
        if (!mkdtemp(root_dir)) {
                perror("mkdtemp");
                exit(EXIT_FAILURE);
        }
        setenv("DKM_TEST_SLAPD_ROOT", root_dir, 1);
        make_certificates();
}

void test_slapd_finish(void) {
        rm_rf(root_dir);
}

static void write_text(const char *path, const char *text, mode_t mode) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

        ck_assert_msg(fd >= 0, "%s: %s", path, strerror(errno));
        ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t) strlen(text));
        close(fd);
}

static char *replace_all(const char *s, const char *from, const char *to) {
        size_t cap = strlen(s) * 2 + 64, n = 0;
        char *out = malloc(cap);

        ck_assert_ptr_nonnull(out);
        while (*s) {
                if (strncmp(s, from, strlen(from)) == 0) {
                        ck_assert(n + strlen(to) + 1 < cap);
                        memcpy(out + n, to, strlen(to));
                        n += strlen(to);
                        s += strlen(from);
                } else {
                        ck_assert(n + 2 < cap);
                        out[n++] = *s++;
                }
        }
        out[n] = 0;
        return out;
}

/* The olcAccess and olcLimits lines of the shipped example, for this test's suffix. */
static void append_acl(FILE *f) {
        const char *path = getenv("DKM_LDAP_ACL");
        char line[2048];
        FILE *in;
        unsigned n = 0;

        ck_assert_msg(path, "DKM_LDAP_ACL is not set");
        in = fopen(path, "re");
        ck_assert_msg(in, "%s: %s", path, strerror(errno));
        while (fgets(line, sizeof(line), in)) {
                if (strncmp(line, "olcAccess:", 10) != 0 && strncmp(line, "olcLimits:", 10) != 0)
                        continue;
                char *l = replace_all(line, "dc=example,dc=org", TEST_SLAPD_SUFFIX);
                fputs(l, f);
                free(l);
                n++;
        }
        fclose(in);
        ck_assert_msg(n >= 5, "%s: no olcAccess lines", path);
}

static void make_config(unsigned i, unsigned n) {
        Provider *p = &providers[i];
        const char *schema = getenv("DKM_LDAP_SCHEMA");
        char path[512], cmd[1200];
        FILE *f;
        int r;

        ck_assert_msg(schema, "DKM_LDAP_SCHEMA is not set");
        snprintf(path, sizeof(path), "%s/config.ldif", p->dir);
        f = fopen(path, "we");
        ck_assert_ptr_nonnull(f);
        fprintf(f,
                "dn: cn=config\nobjectClass: olcGlobal\ncn: config\nolcServerID: %u\nolcPidFile: %s/slapd.pid\n"
                /* SASL EXTERNAL over ldapi: root with this one gid is host1 (a host's identity
                 * mapped from its peer credentials, as in production); root with gid 0 stays the
                 * config database's manager. */
                "olcAuthzRegexp: {0}\"gidNumber=" TEST_SLAPD_EXTERNAL_GID_STR
                "\\+uidNumber=0,cn=peercred,cn=external,cn=auth\" \"" TEST_SLAPD_ID("host1") "\"\n"
                /* SASL EXTERNAL over TLS: the client certificate's subject, mapped the same way */
                "olcAuthzRegexp: {1}\"cn=tls-host1,o=dkm-test\" \"" TEST_SLAPD_ID("host1") "\"\n"
                "olcTLSCACertificateFile: %s\nolcTLSCertificateFile: %s\nolcTLSCertificateKeyFile: %s\n"
                "olcTLSVerifyClient: try\n\n"
                "dn: cn=module{0},cn=config\nobjectClass: olcModuleList\ncn: module{0}\nolcModulePath: %s\n"
                "olcModuleLoad: back_mdb\nolcModuleLoad: syncprov\n\n"
                "dn: cn=schema,cn=config\nobjectClass: olcSchemaConfig\ncn: schema\n\n"
                "include: file://%s/core.ldif\n\ninclude: file://%s/cosine.ldif\n\ninclude: file://%s\n\n"
                "dn: olcDatabase={-1}frontend,cn=config\nobjectClass: olcDatabaseConfig\nobjectClass: olcFrontendConfig\n"
                "olcDatabase: {-1}frontend\n\n"
                "dn: olcDatabase={0}config,cn=config\nobjectClass: olcDatabaseConfig\nolcDatabase: {0}config\n"
                "olcAccess: {0}to * by dn.exact=gidNumber=0+uidNumber=0,cn=peercred,cn=external,cn=auth manage by * none\n\n"
                "dn: olcDatabase={1}mdb,cn=config\nobjectClass: olcDatabaseConfig\nobjectClass: olcMdbConfig\n"
                "olcDatabase: {1}mdb\nolcDbDirectory: %s/db\nolcSuffix: %s\nolcRootDN: %s\nolcRootPW: %s\n"
                "olcDbMaxSize: 67108864\nolcDbIndex: objectClass eq\nolcDbIndex: entryCSN,entryUUID eq\n",
                i + 1, p->dir, test_slapd_tls_file("ca.pem"), test_slapd_tls_file("server.pem"),
                test_slapd_tls_file("server.key"), MODULE_PATH, SCHEMA_DIR, SCHEMA_DIR, schema, p->dir, TEST_SLAPD_SUFFIX,
                TEST_SLAPD_ROOT_DN, TEST_SLAPD_PASSWORD);
        for (unsigned j = 0; j < n; j++) {
                if (j == i)
                        continue;
                fprintf(f,
                        "olcSyncrepl: {%u}rid=%03u provider=%s bindmethod=simple binddn=\"%s\" credentials=%s "
                        "searchbase=\"%s\" type=refreshAndPersist retry=\"1 +\" timeout=1 network-timeout=1\n",
                        j, j + 1, providers[j].uri, TEST_SLAPD_ID("replicator"), TEST_SLAPD_PASSWORD, TEST_SLAPD_SUFFIX);
        }
        if (n > 1)
                fprintf(f, "olcMultiProvider: TRUE\n");
        append_acl(f);
        fprintf(f, "\ndn: olcOverlay={0}syncprov,olcDatabase={1}mdb,cn=config\nobjectClass: olcOverlayConfig\n"
                   "objectClass: olcSyncProvConfig\nolcOverlay: {0}syncprov\nolcSpCheckpoint: 100 10\n"
                   "olcSpSessionlog: 1000\n");
        ck_assert_int_eq(fclose(f), 0);

        snprintf(cmd, sizeof(cmd), "%s -n0 -F %s/slapd.d -l %s/config.ldif >%s/slapadd.log 2>&1", SLAPADD, p->dir, p->dir,
                 p->dir);
        r = system(cmd);
        if (r != 0) {
                snprintf(cmd, sizeof(cmd), "cat %s/slapadd.log >&2", p->dir);
                if (system(cmd) != 0)
                        fprintf(stderr, "(no slapadd log)\n");
        }
        ck_assert_msg(r == 0, "slapadd -n0 failed for provider %u", i);
}

static int free_port(int *keep_fd) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof(a);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(bind(fd, (struct sockaddr *) &a, sizeof(a)), 0);
        ck_assert_int_eq(getsockname(fd, (struct sockaddr *) &a, &len), 0);
        *keep_fd = fd;
        return ntohs(a.sin_port);
}

void test_slapd_cleanup(void) {
        if (getpid() != owner_pid)
                return;
        test_slapd_stop_all();
        rm_rf(own_dir);
        own_dir[0] = 0;
        n_providers = 0;
}

static void cleanup_at_exit(void) {
        test_slapd_cleanup();
}

static bool answers(unsigned i) {
        struct berval cred = { .bv_len = strlen(TEST_SLAPD_PASSWORD), .bv_val = (char *) TEST_SLAPD_PASSWORD };
        struct timeval tv = { 1, 0 };
        int v3 = LDAP_VERSION3, rc;
        LDAP *ld = NULL;

        if (ldap_initialize(&ld, providers[i].uri) != LDAP_SUCCESS)
                return false;
        (void) ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v3);
        (void) ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &tv);
        rc = ldap_sasl_bind_s(ld, TEST_SLAPD_ROOT_DN, LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL);
        ldap_unbind_ext(ld, NULL, NULL);
        return rc == LDAP_SUCCESS;
}

static void launch(unsigned i) {
        Provider *p = &providers[i];
        char conf[300], urls[900], log[300], ldapi[300], enc[600];
        const char *debug = getenv("DKM_SLAPD_DEBUG") ?: "0";
        size_t o = 0;
        pid_t pid;

        snprintf(ldapi, sizeof(ldapi), "%s/ldapi", p->dir);
        for (const char *s = ldapi; *s && o + 4 < sizeof(enc); s++) {
                if (*s == '/')
                        o += (size_t) snprintf(enc + o, sizeof(enc) - o, "%%2F");
                else
                        enc[o++] = *s;
        }
        enc[o] = 0;
        snprintf(conf, sizeof(conf), "%s/slapd.d", p->dir);
        snprintf(p->ldapi_uri, sizeof(p->ldapi_uri), "ldapi://%s", enc);
        snprintf(urls, sizeof(urls), "%s %s %s", p->uri, p->tls_uri, p->ldapi_uri);
        snprintf(log, sizeof(log), "%s/slapd.log", p->dir);

        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (fd >= 0) {
                        (void) dup2(fd, STDOUT_FILENO);
                        (void) dup2(fd, STDERR_FILENO);
                }
                /* -d keeps slapd in the foreground, so this pid is slapd's */
                execl(SLAPD, SLAPD, "-F", conf, "-h", urls, "-d", debug, (char *) NULL);
                _exit(127);
        }
        p->pid = pid;

        for (unsigned t = 0; t < 500; t++) {
                int status;

                if (answers(i))
                        return;
                if (waitpid(pid, &status, WNOHANG) == pid) {
                        char cmd[400];

                        p->pid = 0;
                        snprintf(cmd, sizeof(cmd), "tail -20 %s >&2", log);
                        if (system(cmd) != 0)
                                fprintf(stderr, "(no slapd log)\n");
                        ck_abort_msg("slapd %u exited at start (status %d)", i, status);
                }
                msleep(20);
        }
        ck_abort_msg("slapd %u does not answer on %s", i, p->uri);
}

void test_slapd_start(unsigned n) {
        const char *root = getenv("DKM_TEST_SLAPD_ROOT");
        int keep[TEST_SLAPD_MAX], keep_tls[TEST_SLAPD_MAX];

        ck_assert_msg(root, "test_slapd_init() was not called");
        ck_assert(n >= 1 && n <= TEST_SLAPD_MAX);
        ck_assert_uint_eq(n_providers, 0);
        static unsigned counter;

        if (owner_pid != getpid())
                atexit(cleanup_at_exit);
        owner_pid = getpid();
        snprintf(own_dir, sizeof(own_dir), "%s/p%d-%u", root, (int) getpid(), counter++);
        ck_assert_int_eq(mkdir(own_dir, 0700), 0);
        snprintf(password_file, sizeof(password_file), "%s/password", own_dir);
        write_text(password_file, TEST_SLAPD_PASSWORD "\n", 0600);

        for (unsigned i = 0; i < n; i++) {
                Provider *p = &providers[i];
                char db[300];

                snprintf(p->dir, sizeof(p->dir), "%s/%u", own_dir, i);
                snprintf(db, sizeof(db), "%s/db", p->dir);
                ck_assert_int_eq(mkdir(p->dir, 0700), 0);
                ck_assert_int_eq(mkdir(db, 0700), 0);
                snprintf(db, sizeof(db), "%s/slapd.d", p->dir);
                ck_assert_int_eq(mkdir(db, 0700), 0);
                p->port = free_port(&keep[i]);
                snprintf(p->uri, sizeof(p->uri), "ldap://127.0.0.1:%d/", p->port);
                p->tls_port = free_port(&keep_tls[i]);
                snprintf(p->tls_uri, sizeof(p->tls_uri), "ldaps://127.0.0.1:%d/", p->tls_port);
        }
        for (unsigned i = 0; i < n; i++) {
                close(keep[i]);
                close(keep_tls[i]);
        }
        n_providers = n;
        for (unsigned i = 0; i < n; i++)
                make_config(i, n);
        for (unsigned i = 0; i < n; i++)
                launch(i);
}

void test_slapd_stop(unsigned i) {
        ck_assert(i < n_providers);
        if (providers[i].pid > 0) {
                (void) kill(providers[i].pid, SIGTERM);
                (void) waitpid(providers[i].pid, NULL, 0);
                providers[i].pid = 0;
        }
}

void test_slapd_restart(unsigned i) {
        ck_assert(i < n_providers);
        test_slapd_stop(i);
        launch(i);
}

void test_slapd_stop_all(void) {
        for (unsigned i = 0; i < n_providers; i++)
                if (providers[i].pid > 0) {
                        (void) kill(providers[i].pid, SIGTERM);
                        (void) waitpid(providers[i].pid, NULL, 0);
                        providers[i].pid = 0;
                }
}

const char *test_slapd_uri(unsigned i) {
        ck_assert(i < n_providers);
        return providers[i].uri;
}

const char *test_slapd_password_file(void) {
        return password_file;
}

const char *test_slapd_dir(void) {
        return own_dir;
}

static LDAP *root_bind(unsigned i) {
        struct berval cred = { .bv_len = strlen(TEST_SLAPD_PASSWORD), .bv_val = (char *) TEST_SLAPD_PASSWORD };
        int v3 = LDAP_VERSION3, rc;
        LDAP *ld = NULL;

        ck_assert_int_eq(ldap_initialize(&ld, providers[i].uri), LDAP_SUCCESS);
        (void) ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v3);
        rc = ldap_sasl_bind_s(ld, TEST_SLAPD_ROOT_DN, LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL);
        ck_assert_msg(rc == LDAP_SUCCESS, "bind to %s: %s", providers[i].uri, ldap_err2string(rc));
        return ld;
}

/* attrs: "type=value" strings, NULL-terminated. */
static void add(LDAP *ld, const char *dn, const char *const *attrs) {
        LDAPMod mods[16], *pmods[17];
        char *vals[16][8];
        size_t n = 0;
        int rc;

        for (size_t a = 0; attrs[a]; a++) {
                const char *eq = strchr(attrs[a], '=');
                size_t k = 0, m;
                char *type = strndup(attrs[a], (size_t) (eq - attrs[a]));

                for (m = 0; m < n; m++)
                        if (strcmp(mods[m].mod_type, type) == 0)
                                break;
                if (m == n) {
                        mods[n] = (LDAPMod) { .mod_op = LDAP_MOD_ADD, .mod_type = type, .mod_values = vals[n] };
                        vals[n][0] = NULL;
                        n++;
                } else
                        free(type);
                while (vals[m][k])
                        k++;
                vals[m][k] = strdup(eq + 1);
                vals[m][k + 1] = NULL;
        }
        for (size_t m = 0; m < n; m++)
                pmods[m] = &mods[m];
        pmods[n] = NULL;
        rc = ldap_add_ext_s(ld, dn, pmods, NULL, NULL);
        ck_assert_msg(rc == LDAP_SUCCESS, "add %s: %s", dn, ldap_err2string(rc));
        for (size_t m = 0; m < n; m++) {
                for (size_t k = 0; vals[m][k]; k++)
                        free(vals[m][k]);
                free(mods[m].mod_type);
        }
}

#define ATTRS(...) ((const char *const[]) { __VA_ARGS__, NULL })
#define IDENTITY(name)                                                                                         \
        add(ld, TEST_SLAPD_ID(name), ATTRS("objectClass=applicationProcess", "objectClass=simpleSecurityObject", \
                                           "cn=" name, "userPassword=" TEST_SLAPD_PASSWORD))

void test_slapd_populate(void) {
        LDAP *ld = root_bind(0);

        add(ld, TEST_SLAPD_SUFFIX, ATTRS("objectClass=dcObject", "objectClass=organization", "dc=dkm", "o=dkm test"));
        add(ld, "ou=identities," TEST_SLAPD_SUFFIX, ATTRS("objectClass=organizationalUnit", "ou=identities"));
        IDENTITY("replicator");
        IDENTITY("admin");
        IDENTITY("host1");
        IDENTITY("host2");
        IDENTITY("host3");
        IDENTITY("outsider");
        add(ld, "ou=roles," TEST_SLAPD_SUFFIX, ATTRS("objectClass=organizationalUnit", "ou=roles"));
        add(ld, TEST_SLAPD_HOSTS_GROUP,
            ATTRS("objectClass=groupOfNames", "cn=dkm-hosts", "member=" TEST_SLAPD_ID("host1"),
                  "member=" TEST_SLAPD_ID("host2"), "member=" TEST_SLAPD_ID("host3")));
        add(ld, TEST_SLAPD_ADMINS_GROUP, ATTRS("objectClass=groupOfNames", "cn=dkm-admins", "member=" TEST_SLAPD_ID("admin")));
        add(ld, TEST_SLAPD_BASE, ATTRS("objectClass=organizationalUnit", "ou=dkm"));
        add(ld, "ou=groups," TEST_SLAPD_BASE, ATTRS("objectClass=organizationalUnit", "ou=groups"));
        add(ld, "ou=hosts," TEST_SLAPD_BASE, ATTRS("objectClass=organizationalUnit", "ou=hosts"));
        add(ld, "cn=store," TEST_SLAPD_BASE, ATTRS("objectClass=dkmStore", "cn=store", "dkmStoreId=" TEST_SLAPD_STORE_ID));
        ldap_unbind_ext(ld, NULL, NULL);

        for (unsigned i = 0; i < n_providers; i++)
                if (providers[i].pid > 0)
                        ck_assert_msg(test_slapd_has_entry(i, "cn=store," TEST_SLAPD_BASE, 20000),
                                      "provider %u did not receive the base entries", i);
}

const char *test_slapd_tls_uri(unsigned i) {
        ck_assert_uint_lt(i, n_providers);
        return providers[i].tls_uri;
}

const char *test_slapd_ldapi_uri(unsigned i) {
        ck_assert_uint_lt(i, n_providers);
        return providers[i].ldapi_uri;
}

/* What the directory's administrators do (docs/FLEET.md), with the same tools they use. */
void test_slapd_set_store_id(const char *hex) {
        char cmd[1024];

        snprintf(cmd, sizeof(cmd),
                 "printf 'dn: cn=store,%s\\nchangetype: modify\\nreplace: dkmStoreId\\ndkmStoreId: %s\\n' | "
                 "ldapmodify -x -H '%s' -D '%s' -w '%s' >/dev/null",
                 TEST_SLAPD_BASE, hex, test_slapd_uri(0), TEST_SLAPD_ROOT_DN, TEST_SLAPD_PASSWORD);
        ck_assert_msg(system(cmd) == 0, "%s", cmd);
}

void test_slapd_add_host(const char *host, const char *public_key_hex) {
        char cmd[1024];

        snprintf(cmd, sizeof(cmd),
                 "printf 'dn: cn=%s,ou=hosts,%s\\nobjectClass: dkmHost\\ncn: %s\\ndkmHostPublicKey: %s\\n' | "
                 "ldapadd -x -H '%s' -D '%s' -w '%s' >/dev/null",
                 host, TEST_SLAPD_BASE, host, public_key_hex, test_slapd_uri(0), TEST_SLAPD_ID("admin"),
                 TEST_SLAPD_PASSWORD);
        ck_assert_msg(system(cmd) == 0, "%s", cmd);
}

bool test_slapd_has_entry(unsigned i, const char *dn, unsigned timeout_ms) {
        char *attrs[] = { (char *) LDAP_NO_ATTRS, NULL };
        LDAP *ld = root_bind(i);
        bool found = false;

        for (unsigned t = 0; t <= timeout_ms; t += 10) {
                LDAPMessage *msg = NULL;
                int rc = ldap_search_ext_s(ld, dn, LDAP_SCOPE_BASE, "(objectClass=*)", attrs, 0, NULL, NULL, NULL, 1, &msg);

                ldap_msgfree(msg);
                if (rc == LDAP_SUCCESS) {
                        found = true;
                        break;
                }
                msleep(10);
        }
        ldap_unbind_ext(ld, NULL, NULL);
        return found;
}
