/* SPDX-License-Identifier: MIT */
/* The fleet's directory over libldap: connect across the URI list, key groups with conditional
 * writes, hosts, the store id. */
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#include "fileio.h"
#include "fleet-internal.h"
#include "parse.h"

static __thread char last_error[512];

const char *fleet_last_error(void) {
        return last_error;
}

int fleet_set_error(int r, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(last_error, sizeof(last_error), fmt, ap);
        va_end(ap);
        return r;
}

uint64_t fleet_now_usec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000ULL;
}

bool fleet_ldap_is_down(int rc) {
        return rc == LDAP_SERVER_DOWN || rc == LDAP_CONNECT_ERROR || rc == LDAP_TIMEOUT || rc == LDAP_TIMELIMIT_EXCEEDED ||
               rc == LDAP_UNAVAILABLE || rc == LDAP_BUSY;
}

int fleet_errno_from_ldap(int rc) {
        switch (rc) {
        case LDAP_SUCCESS:
                return 0;
        case LDAP_NO_SUCH_OBJECT:
                return -ENOENT;
        case LDAP_INSUFFICIENT_ACCESS:
                return -EACCES;
        case LDAP_INVALID_CREDENTIALS:
        case LDAP_INAPPROPRIATE_AUTH:
        case LDAP_STRONG_AUTH_REQUIRED:
        case LDAP_AUTH_METHOD_NOT_SUPPORTED:
                return -EPERM;
        case LDAP_ALREADY_EXISTS:
                return -EEXIST;
        case LDAP_NO_SUCH_ATTRIBUTE:
        case LDAP_ASSERTION_FAILED:
                return -ESTALE;
        case LDAP_UNDEFINED_TYPE:
        case LDAP_OBJECT_CLASS_VIOLATION:
        case LDAP_INVALID_SYNTAX:
        case LDAP_CONSTRAINT_VIOLATION:
        case LDAP_NAMING_VIOLATION:
        case LDAP_TYPE_OR_VALUE_EXISTS:
        case LDAP_INAPPROPRIATE_MATCHING:
                return -EPROTO;
        case LDAP_NO_MEMORY:
                return -ENOMEM;
        default:
                return fleet_ldap_is_down(rc) ? -EHOSTDOWN : -EIO;
        }
}

void fleet_uuid_format(const struct berval *raw, char out[static FLEET_UUID_STRING_MAX]) {
        const unsigned char *b = (const unsigned char *) raw->bv_val;
        size_t o = 0;

        if (raw->bv_len != 16) {
                /* entryUUID as an attribute value is already text */
                size_t n = MIN(raw->bv_len, (size_t) FLEET_UUID_STRING_MAX - 1);
                for (size_t i = 0; i < n; i++)
                        out[i] = (char) ((b[i] >= 'A' && b[i] <= 'F') ? b[i] + 32 : b[i]);
                out[n] = 0;
                return;
        }
        for (size_t i = 0; i < 16; i++) {
                if (i == 4 || i == 6 || i == 8 || i == 10)
                        out[o++] = '-';
                out[o++] = "0123456789abcdef"[b[i] >> 4];
                out[o++] = "0123456789abcdef"[b[i] & 15];
        }
        out[o] = 0;
}

char *fleet_name_from_dn(const char *dn) {
        const char *end;
        char *name;

        if (!dn || strncasecmp(dn, "cn=", 3) != 0)
                return NULL;
        end = strchr(dn + 3, ',');
        if (!end)
                return NULL;
        name = strndup(dn + 3, (size_t) (end - dn - 3));
        if (name && !fleet_name_is_valid(name)) {
                free(name);
                return NULL;
        }
        return name;
}

/* ---- connection ---- */

/* Cyrus SASL's sasl_interact_t (sasl/sasl.h, a stable ABI; its -dev package is not needed for one
 * struct). */
typedef struct SaslInteract {
        unsigned long id; /* 0: end of the list */
        const char *challenge;
        const char *prompt;
        const char *defresult;
        const void *result;
        unsigned len;
} SaslInteract;

static int sasl_interact(LDAP *ld, unsigned flags, void *defaults, void *in) {
        /* EXTERNAL asks at most for an authorization id: none, the identity is the transport's. */
        for (SaslInteract *i = in; i && i->id != 0; i++) {
                i->result = "";
                i->len = 0;
        }
        return LDAP_SUCCESS;
}

static int read_password(const FleetConfig *cfg, char **ret, size_t *ret_size) {
        char *data = NULL;
        size_t size;
        int r;

        r = read_file_full(AT_FDCWD, cfg->bind_password_file, 4096, &data, &size);
        if (r < 0)
                return fleet_set_error(r, "%s: cannot read the bind password: %s", cfg->bind_password_file, strerror(-r));
        /* the first line, without its newline */
        size = strcspn(data, "\r\n");
        data[size] = 0;
        *ret = data;
        *ret_size = size;
        return 0;
}

/* libldap 2.5's GnuTLS backend never frees the client certificate and key it loads into a new
 * TLS context (about 14 KB each; tests/suppressions/valgrind.supp), so a context with a client
 * certificate is made once per (CA, certificate, key) and shared by every later connection
 * (libldap counts its references): a dkmd that reconnects every 30 s through a long partition
 * does not grow. Such TLS files replaced on disk take effect when dkmd restarts; a context with a
 * CA only is made for each connection and reads the CA file again. One thread: dkmd's. */
#define SHARED_TLS_MAX 8U

typedef struct SharedTls {
        char *ca, *cert, *key;
        void *ctx; /* libldap's, one reference of ours; NULL: a free slot */
} SharedTls;

static SharedTls shared_tls[SHARED_TLS_MAX];

static SharedTls *shared_tls_find(const FleetConfig *cfg) {
        for (size_t i = 0; i < SHARED_TLS_MAX && shared_tls[i].ctx; i++)
                if (strcmp(shared_tls[i].ca, cfg->tls_ca_file) == 0 &&
                    strcmp(shared_tls[i].cert, cfg->tls_cert_file) == 0 && strcmp(shared_tls[i].key, cfg->tls_key_file) == 0)
                        return &shared_tls[i];
        return NULL;
}

/* The context ld just made, kept for the next connections of the same files (when a slot is
 * free; otherwise each connection makes its own, as without sharing). */
static void shared_tls_keep(const FleetConfig *cfg, LDAP *ld) {
        SharedTls *t = NULL;

        for (size_t i = 0; i < SHARED_TLS_MAX && !t; i++)
                if (!shared_tls[i].ctx)
                        t = &shared_tls[i];
        if (!t)
                return;
        t->ca = strdup(cfg->tls_ca_file);
        t->cert = strdup(cfg->tls_cert_file);
        t->key = strdup(cfg->tls_key_file);
        if (!t->ca || !t->cert || !t->key ||
            ldap_get_option(ld, LDAP_OPT_X_TLS_CTX, &t->ctx) != LDAP_OPT_SUCCESS || !t->ctx) {
                free(t->ca);
                free(t->cert);
                free(t->key);
                *t = (SharedTls) {};
        }
}

static int set_options(LDAP *ld, const FleetConfig *cfg) {
        struct timeval tv = { .tv_sec = (time_t) (cfg->timeout_usec / 1000000ULL),
                              .tv_usec = (suseconds_t) (cfg->timeout_usec % 1000000ULL) };
        int v3 = LDAP_VERSION3, idle = 10, probes = 3, interval = 5;
        unsigned user_timeout = 30000; /* ms: a write no peer acknowledges fails the connection */

        if (ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v3) != LDAP_OPT_SUCCESS ||
            ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF) != LDAP_OPT_SUCCESS ||
            ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &tv) != LDAP_OPT_SUCCESS ||
            ldap_set_option(ld, LDAP_OPT_TIMEOUT, &tv) != LDAP_OPT_SUCCESS)
                return -EINVAL;
        /* A server that vanishes without a FIN (a partition) is noticed by TCP keepalive: ~25 s. */
        (void) ldap_set_option(ld, LDAP_OPT_X_KEEPALIVE_IDLE, &idle);
        (void) ldap_set_option(ld, LDAP_OPT_X_KEEPALIVE_PROBES, &probes);
        (void) ldap_set_option(ld, LDAP_OPT_X_KEEPALIVE_INTERVAL, &interval);
        (void) ldap_set_option(ld, LDAP_OPT_TCP_USER_TIMEOUT, &user_timeout);
        if (cfg->tls_ca_file) {
                int demand = LDAP_OPT_X_TLS_DEMAND, zero = 0;

                SharedTls *shared = cfg->tls_cert_file ? shared_tls_find(cfg) : NULL;

                /* on the connection too: libldap checks the server's name by it */
                if (ldap_set_option(ld, LDAP_OPT_X_TLS_CACERTFILE, cfg->tls_ca_file) != LDAP_OPT_SUCCESS ||
                    ldap_set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &demand) != LDAP_OPT_SUCCESS)
                        return -EINVAL;
                if (shared)
                        return ldap_set_option(ld, LDAP_OPT_X_TLS_CTX, shared->ctx) == LDAP_OPT_SUCCESS ? 0 : -EINVAL;
                if (cfg->tls_cert_file &&
                    (ldap_set_option(ld, LDAP_OPT_X_TLS_CERTFILE, cfg->tls_cert_file) != LDAP_OPT_SUCCESS ||
                     ldap_set_option(ld, LDAP_OPT_X_TLS_KEYFILE, cfg->tls_key_file) != LDAP_OPT_SUCCESS))
                        return -EINVAL;
                /* a context of this connection's own, made from the options above */
                if (ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &zero) != LDAP_OPT_SUCCESS)
                        return -EINVAL;
                if (cfg->tls_cert_file)
                        shared_tls_keep(cfg, ld);
        }
        return 0;
}

/* What to add to a failure's message: libldap's diagnostic when it has one, and for a TLS
 * connection that could not be made, the two usual causes (libldap reports a refused certificate
 * as "Can't contact LDAP server", the same as a server that is down). */
static void failure_detail(LDAP *ld, const FleetConfig *cfg, const char *uri, int rc, char *buf, size_t size) {
        char *diagnostic = NULL;
        bool tls = strncasecmp(uri, "ldaps://", 8) == 0 || (cfg->tls_ca_file && strncasecmp(uri, "ldap://", 7) == 0);

        buf[0] = 0;
        (void) ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diagnostic);
        if (diagnostic && *diagnostic && !strstr(diagnostic, "unknown error"))
                (void) snprintf(buf, size, ": %s", diagnostic);
        ldap_memfree(diagnostic);
        if (tls && fleet_ldap_is_down(rc))
                (void) snprintf(buf + strlen(buf), size - strlen(buf),
                                " (or the TLS handshake failed: the server's certificate must be for this name and "
                                "from %s)", cfg->tls_ca_file ?: "the system's CAs");
}

static int connect_one(const FleetConfig *cfg, const char *uri, LDAP **ret) {
        LDAP *ld = NULL;
        int rc, r;

        rc = ldap_initialize(&ld, uri);
        if (rc != LDAP_SUCCESS)
                return fleet_set_error(-EINVAL, "%s: %s", uri, ldap_err2string(rc));
        r = set_options(ld, cfg);
        if (r < 0) {
                (void) ldap_unbind_ext(ld, NULL, NULL);
                return fleet_set_error(r, "%s: cannot set the connection options", uri);
        }

        /* With a CA configured, ldap:// is StartTLS, and a server that cannot do it is an error:
         * never a silent fall back to a clear-text bind. (ldaps:// is TLS from the first byte;
         * ldapi:// is a local socket.) */
        if (cfg->tls_ca_file && strncasecmp(uri, "ldap://", 7) == 0) {
                rc = ldap_start_tls_s(ld, NULL, NULL);
                if (rc != LDAP_SUCCESS) {
                        char detail[256];

                        failure_detail(ld, cfg, uri, rc, detail, sizeof(detail));
                        r = fleet_set_error(fleet_ldap_is_down(rc) ? -EHOSTDOWN : -EPROTO, "%s: StartTLS: %s%s", uri,
                                            ldap_err2string(rc), detail);
                        (void) ldap_unbind_ext(ld, NULL, NULL);
                        return r;
                }
        }

        if (cfg->sasl_mech)
                rc = ldap_sasl_interactive_bind_s(ld, NULL, cfg->sasl_mech, NULL, NULL, LDAP_SASL_QUIET, sasl_interact,
                                                  NULL);
        else {
                char *pw = NULL;
                size_t pw_size = 0;
                struct berval cred;

                r = read_password(cfg, &pw, &pw_size);
                if (r < 0) {
                        (void) ldap_unbind_ext(ld, NULL, NULL);
                        return r;
                }
                cred = (struct berval) { .bv_len = pw_size, .bv_val = pw };
                rc = ldap_sasl_bind_s(ld, cfg->bind_dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL);
                explicit_bzero(pw, pw_size);
                free(pw);
        }
        if (rc != LDAP_SUCCESS) {
                char detail[256];

                failure_detail(ld, cfg, uri, rc, detail, sizeof(detail));
                r = fleet_errno_from_ldap(rc);
                r = fleet_set_error(r == -EHOSTDOWN ? r : -EPERM, "%s: bind as %s: %s%s", uri,
                                    cfg->bind_dn ? cfg->bind_dn : cfg->sasl_mech, ldap_err2string(rc), detail);
                (void) ldap_unbind_ext(ld, NULL, NULL);
                return r;
        }
        *ret = ld;
        return 0;
}

static char *dn_join(const char *rdn, const char *base) {
        char *s = NULL;

        if (asprintf(&s, "%s,%s", rdn, base) < 0)
                return NULL;
        return s;
}

void fleet_conn_drop(FleetConn *c) {
        if (c->ld)
                (void) ldap_unbind_ext(c->ld, NULL, NULL);
        c->ld = NULL;
        c->uri_index = -1;
}

static void append_error(char *buf, size_t size, const char *s) {
        size_t n = strlen(buf), m = strlen(s);

        if (n > 0 && n + 2 < size) {
                memcpy(buf + n, "; ", 2);
                n += 2;
        }
        m = MIN(m, size - 1 - n);
        memcpy(buf + n, s, m);
        buf[n + m] = 0;
}

int fleet_conn_ensure(FleetConn *c) {
        int r = -EHOSTDOWN, worst = -EHOSTDOWN;
        char errors[sizeof(last_error)] = "";

        if (c->ld)
                return 0;
        for (size_t i = 0; i < c->config->n_uris; i++) {
                LDAP *ld = NULL;

                r = connect_one(c->config, c->config->uris[i], &ld);
                if (r == 0) {
                        c->ld = ld;
                        c->uri_index = (int) i;
                        return 0;
                }
                /* a refused bind or a bad password file outranks "down" in the answer */
                if (r != -EHOSTDOWN)
                        worst = r;
                append_error(errors, sizeof(errors), last_error);
        }
        return fleet_set_error(worst, "no directory server answered: %s", errors);
}

int fleet_conn_prefer_primary(FleetConn *c) {
        LDAP *ld = NULL;

        if (!c->ld || c->uri_index <= 0)
                return 0;
        /* The first server is back: move there, so every host writes to the same provider again. */
        if (connect_one(c->config, c->config->uris[0], &ld) < 0)
                return 0;
        fleet_conn_drop(c);
        c->ld = ld;
        c->uri_index = 0;
        return 1;
}

int fleet_connect(const FleetConfig *config, FleetConn **ret) {
        _cleanup_(fleet_conn_freep) FleetConn *c = NULL;
        int r;

        if (!config || !ret || config->n_uris == 0 || !config->base)
                return -EINVAL;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->config = config;
        c->uri_index = -1;
        c->groups_dn = dn_join("ou=groups", config->base);
        c->hosts_dn = dn_join("ou=hosts", config->base);
        c->store_dn = dn_join("cn=store", config->base);
        if (!c->groups_dn || !c->hosts_dn || !c->store_dn)
                return -ENOMEM;
        r = fleet_conn_ensure(c);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(c);
        return 0;
}

FleetConn *fleet_conn_free(FleetConn *c) {
        if (!c)
                return NULL;
        fleet_conn_drop(c);
        free(c->groups_dn);
        free(c->hosts_dn);
        free(c->store_dn);
        free(c);
        return NULL;
}

const char *fleet_conn_uri(const FleetConn *c) {
        return c && c->ld && c->uri_index >= 0 ? c->config->uris[c->uri_index] : NULL;
}

int fleet_conn_uri_index(const FleetConn *c) {
        return c && c->ld ? c->uri_index : -1;
}

/* ---- operations ---- */

static const char *conn_uri_name(const FleetConn *c) {
        return c->uri_index >= 0 ? c->config->uris[c->uri_index] : "(no server)";
}

/* Turn an LDAP result into an errno, dropping the connection when the server went away. */
static int op_result(FleetConn *c, int rc, const char *what, const char *dn) {
        int r = fleet_errno_from_ldap(rc);

        if (r == 0)
                return 0;
        (void) fleet_set_error(r, "%s: %s %s: %s", conn_uri_name(c), what, dn, ldap_err2string(rc));
        if (r == -EHOSTDOWN)
                fleet_conn_drop(c);
        return r;
}

static char *entry_dn(const char *name, const char *parent) {
        char *s = NULL;

        if (asprintf(&s, "cn=%s,%s", name, parent) < 0)
                return NULL;
        return s;
}

/* One search; *ret_msg owns the result. A search is safe to repeat: if the server the connection
 * had went away, once more down the list. what names the operation in errors ("read", "list"). */
static int search(FleetConn *c, const char *base, int scope, const char *filter, char **attrs, int size_limit,
                  const char *what, LDAPMessage **ret_msg) {
        LDAPMessage *msg = NULL;
        int rc, r;

        for (unsigned attempt = 0;; attempt++) {
                bool had = c->ld;

                r = fleet_conn_ensure(c);
                if (r < 0)
                        return r;
                rc = ldap_search_ext_s(c->ld, base, scope, filter, attrs, 0, NULL, NULL, NULL, size_limit, &msg);
                if (rc == LDAP_SUCCESS)
                        break;
                ldap_msgfree(msg);
                msg = NULL;
                r = op_result(c, rc, what, base);
                if (r != -EHOSTDOWN || !had || attempt > 0)
                        return r;
        }
        *ret_msg = msg;
        return 0;
}

/* Read one entry by DN (scope base). *ret_msg owns the result; 0 with *ret_entry NULL if the
 * filter did not match. */
static int read_entry(FleetConn *c, const char *dn, const char *filter, char **attrs, LDAPMessage **ret_msg,
                      LDAPMessage **ret_entry) {
        int r;

        r = search(c, dn, LDAP_SCOPE_BASE, filter, attrs, 2, "read", ret_msg);
        if (r < 0)
                return r;
        *ret_entry = ldap_first_entry(c->ld, *ret_msg);
        return 0;
}

/* The single value of attr, copied and NUL-terminated; -ENOENT if absent. */
static int get_value(LDAP *ld, LDAPMessage *e, const char *attr, size_t max, char **ret, size_t *ret_size) {
        struct berval **v = ldap_get_values_len(ld, e, attr);
        char *s;

        if (!v || !v[0]) {
                ldap_value_free_len(v);
                return -ENOENT;
        }
        if (v[1] || v[0]->bv_len > max) {
                ldap_value_free_len(v);
                return -EPROTO;
        }
        s = malloc(v[0]->bv_len + 1);
        if (!s) {
                ldap_value_free_len(v);
                return -ENOMEM;
        }
        memcpy(s, v[0]->bv_val, v[0]->bv_len);
        s[v[0]->bv_len] = 0;
        if (ret_size)
                *ret_size = v[0]->bv_len;
        *ret = s;
        ldap_value_free_len(v);
        return 0;
}

FleetGroup *fleet_group_free(FleetGroup *g) {
        if (!g)
                return NULL;
        free(g->name);
        if (g->text)
                explicit_bzero(g->text, g->size);
        free(g->text);
        free(g);
        return NULL;
}

static int parse_revision(const char *s, uint64_t *ret) {
        return parse_uint64(s, UINT64_MAX - 1, ret) < 0 || *ret == 0 ? -EPROTO : 0;
}

int fleet_group_from_entry(LDAP *ld, LDAPMessage *e, const char *name, FleetGroup **ret) {
        _cleanup_(fleet_group_freep) FleetGroup *g = NULL;
        _cleanup_free_ char *rev = NULL, *dn = NULL;
        struct berval **uuid;
        int r;

        g = calloc(1, sizeof(*g));
        if (!g)
                return -ENOMEM;
        dn = ldap_get_dn(ld, e);
        g->name = name ? strdup(name) : fleet_name_from_dn(dn);
        if (!g->name)
                return fleet_set_error(name ? -ENOMEM : -EPROTO, "%s: not a group name", dn ? dn : "(no DN)");
        r = get_value(ld, e, "dkmRevision", 32, &rev, NULL);
        if (r < 0 || parse_revision(rev, &g->revision) < 0)
                return fleet_set_error(r == -ENOENT ? -EACCES : -EPROTO, "%s: %s dkmRevision", dn,
                                       r == -ENOENT ? "no readable" : "bad");
        r = get_value(ld, e, "dkmGroupFile", FLEET_FILE_MAX, &g->text, &g->size);
        if (r < 0)
                return fleet_set_error(r == -ENOENT ? -EACCES : r, "%s: %s dkmGroupFile", dn,
                                       r == -ENOENT ? "no readable" : "bad");
        uuid = ldap_get_values_len(ld, e, "entryUUID");
        if (uuid && uuid[0])
                fleet_uuid_format(uuid[0], g->uuid);
        ldap_value_free_len(uuid);
        *ret = TAKE_PTR(g);
        return 0;
}

int fleet_group_get(FleetConn *c, const char *name, FleetGroup **ret) {
        char *attrs[] = { (char *) "dkmGroupFile", (char *) "dkmRevision", (char *) "entryUUID", NULL };
        _cleanup_free_ char *dn = NULL;
        LDAPMessage *msg = NULL, *e = NULL;
        int r;

        if (!c || !ret || !fleet_name_is_valid(name))
                return fleet_set_error(-EINVAL, "not a valid group name");
        dn = entry_dn(name, c->groups_dn);
        if (!dn)
                return -ENOMEM;
        r = read_entry(c, dn, "(objectClass=dkmKeyGroup)", attrs, &msg, &e);
        if (r < 0)
                return r;
        if (!e)
                r = fleet_set_error(-ENOENT, "%s: not a dkmKeyGroup entry", dn);
        else
                r = fleet_group_from_entry(c->ld, e, name, ret);
        ldap_msgfree(msg);
        return r;
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

int fleet_group_list(FleetConn *c, char ***ret_names) {
        char *attrs[] = { (char *) LDAP_NO_ATTRS, NULL };
        _cleanup_strv_free_ char **names = NULL;
        LDAPMessage *msg = NULL;
        size_t n = 0;
        int r;

        if (!c || !ret_names)
                return -EINVAL;
        r = search(c, c->groups_dn, LDAP_SCOPE_ONELEVEL, "(objectClass=dkmKeyGroup)", attrs, 0, "list", &msg);
        if (r < 0)
                return r;
        names = calloc((size_t) ldap_count_entries(c->ld, msg) + 1, sizeof(char *));
        if (!names) {
                ldap_msgfree(msg);
                return -ENOMEM;
        }
        for (LDAPMessage *e = ldap_first_entry(c->ld, msg); e; e = ldap_next_entry(c->ld, e)) {
                char *dn = ldap_get_dn(c->ld, e);
                char *name = fleet_name_from_dn(dn);

                ldap_memfree(dn);
                if (name) /* an entry that is not a valid group name is not dkm's: skipped */
                        names[n++] = name;
        }
        ldap_msgfree(msg);
        qsort(names, n, sizeof(char *), cmp_str);
        *ret_names = TAKE_PTR(names);
        return 0;
}

int fleet_group_put(FleetConn *c, const char *name, const void *text, size_t size, uint64_t expected_revision,
                    uint64_t *ret_revision) {
        _cleanup_free_ char *dn = NULL;
        char old_rev[24], new_rev[24];
        struct berval file = { .bv_len = size, .bv_val = (char *) text };
        struct berval old_bv, new_bv, cn_bv;
        int rc, r;

        if (!c || !fleet_name_is_valid(name))
                return fleet_set_error(-EINVAL, "not a valid group name");
        if (!text || size == 0 || size > FLEET_FILE_MAX || expected_revision >= UINT64_MAX - 1)
                return fleet_set_error(-EINVAL, "group %s: bad file size or revision", name);
        dn = entry_dn(name, c->groups_dn);
        if (!dn)
                return -ENOMEM;
        r = fleet_conn_ensure(c);
        if (r < 0)
                return r;
        (void) snprintf(old_rev, sizeof(old_rev), "%" PRIu64, expected_revision);
        (void) snprintf(new_rev, sizeof(new_rev), "%" PRIu64, expected_revision + 1);
        old_bv = (struct berval) { .bv_len = strlen(old_rev), .bv_val = old_rev };
        new_bv = (struct berval) { .bv_len = strlen(new_rev), .bv_val = new_rev };

        if (expected_revision == 0) {
                struct berval oc_bv = { .bv_len = strlen("dkmKeyGroup"), .bv_val = (char *) "dkmKeyGroup" };
                struct berval *oc_v[] = { &oc_bv, NULL }, *cn_v[] = { &cn_bv, NULL }, *file_v[] = { &file, NULL },
                              *rev_v[] = { &new_bv, NULL };
                LDAPMod oc = { .mod_op = LDAP_MOD_ADD | LDAP_MOD_BVALUES, .mod_type = (char *) "objectClass",
                               .mod_vals.modv_bvals = oc_v },
                        cn = { .mod_op = LDAP_MOD_ADD | LDAP_MOD_BVALUES, .mod_type = (char *) "cn",
                               .mod_vals.modv_bvals = cn_v },
                        gf = { .mod_op = LDAP_MOD_ADD | LDAP_MOD_BVALUES, .mod_type = (char *) "dkmGroupFile",
                               .mod_vals.modv_bvals = file_v },
                        rv = { .mod_op = LDAP_MOD_ADD | LDAP_MOD_BVALUES, .mod_type = (char *) "dkmRevision",
                               .mod_vals.modv_bvals = rev_v };
                LDAPMod *mods[] = { &oc, &cn, &gf, &rv, NULL };

                cn_bv = (struct berval) { .bv_len = strlen(name), .bv_val = (char *) name };
                rc = ldap_add_ext_s(c->ld, dn, mods, NULL, NULL);
                if (rc == LDAP_ALREADY_EXISTS)
                        return fleet_set_error(-ESTALE, "%s: create %s: the group exists already (another writer)",
                                               conn_uri_name(c), dn);
                r = op_result(c, rc, "create", dn);
        } else {
                struct berval *old_v[] = { &old_bv, NULL }, *new_v[] = { &new_bv, NULL }, *file_v[] = { &file, NULL };
                LDAPMod del = { .mod_op = LDAP_MOD_DELETE | LDAP_MOD_BVALUES, .mod_type = (char *) "dkmRevision",
                                .mod_vals.modv_bvals = old_v },
                        add = { .mod_op = LDAP_MOD_ADD | LDAP_MOD_BVALUES, .mod_type = (char *) "dkmRevision",
                                .mod_vals.modv_bvals = new_v },
                        gf = { .mod_op = LDAP_MOD_REPLACE | LDAP_MOD_BVALUES, .mod_type = (char *) "dkmGroupFile",
                               .mod_vals.modv_bvals = file_v };
                LDAPMod *mods[] = { &del, &add, &gf, NULL };

                rc = ldap_modify_ext_s(c->ld, dn, mods, NULL, NULL);
                if (rc == LDAP_NO_SUCH_ATTRIBUTE || rc == LDAP_NO_SUCH_OBJECT)
                        return fleet_set_error(-ESTALE, "%s: modify %s: revision %s is gone (another writer)",
                                               conn_uri_name(c), dn, old_rev);
                r = op_result(c, rc, "modify", dn);
        }
        if (r < 0)
                return r;
        if (ret_revision)
                *ret_revision = expected_revision + 1;
        return 0;
}

int fleet_group_delete(FleetConn *c, const char *name, uint64_t expected_revision) {
        _cleanup_free_ char *dn = NULL;
        LDAPControl *ctrl = NULL, *ctrls[2] = { NULL, NULL };
        char filter[48];
        int rc, r;

        if (!c || !fleet_name_is_valid(name) || expected_revision == 0)
                return fleet_set_error(-EINVAL, "not a valid group name or revision");
        dn = entry_dn(name, c->groups_dn);
        if (!dn)
                return -ENOMEM;
        r = fleet_conn_ensure(c);
        if (r < 0)
                return r;
        (void) snprintf(filter, sizeof(filter), "(dkmRevision=%" PRIu64 ")", expected_revision);
        rc = ldap_create_assertion_control(c->ld, filter, 1, &ctrl);
        if (rc != LDAP_SUCCESS)
                return op_result(c, rc, "delete (assertion)", dn);
        ctrls[0] = ctrl;
        rc = ldap_delete_ext_s(c->ld, dn, ctrls, NULL);
        ldap_control_free(ctrl);
        if (rc == LDAP_ASSERTION_FAILED)
                return fleet_set_error(-ESTALE, "%s: delete %s: revision %" PRIu64 " is gone (another writer)",
                                       conn_uri_name(c), dn, expected_revision);
        return op_result(c, rc, "delete", dn);
}

/* ---- hosts ---- */

static bool hex_ok(const char *s, size_t n) {
        return s && strlen(s) == n && strspn(s, "0123456789abcdef") == n;
}

FleetHost *fleet_host_free(FleetHost *h) {
        if (!h)
                return NULL;
        free(h->name);
        free(h->protector);
        free(h);
        return NULL;
}

int fleet_host_put(FleetConn *c, const char *host, const char *public_key_hex, const void *protector,
                   size_t protector_size) {
        _cleanup_free_ char *dn = NULL;
        struct berval oc_bv = { .bv_len = strlen("dkmHost"), .bv_val = (char *) "dkmHost" }, cn_bv, pk_bv, pf_bv;
        struct berval *oc_v[] = { &oc_bv, NULL }, *cn_v[] = { &cn_bv, NULL }, *pk_v[] = { &pk_bv, NULL },
                      *pf_v[] = { &pf_bv, NULL };
        LDAPMod oc = { .mod_op = LDAP_MOD_ADD | LDAP_MOD_BVALUES, .mod_type = (char *) "objectClass",
                       .mod_vals.modv_bvals = oc_v },
                cn = { .mod_op = LDAP_MOD_ADD | LDAP_MOD_BVALUES, .mod_type = (char *) "cn", .mod_vals.modv_bvals = cn_v },
                pk = { .mod_op = LDAP_MOD_ADD | LDAP_MOD_BVALUES, .mod_type = (char *) "dkmHostPublicKey",
                       .mod_vals.modv_bvals = pk_v },
                pf = { .mod_op = LDAP_MOD_ADD | LDAP_MOD_BVALUES, .mod_type = (char *) "dkmProtectorFile",
                       .mod_vals.modv_bvals = pf_v };
        LDAPMod *mods[5] = {};
        size_t n = 0;
        int rc, r;

        if (!c || !fleet_name_is_valid(host))
                return fleet_set_error(-EINVAL, "not a valid host name");
        if ((public_key_hex && !hex_ok(public_key_hex, FLEET_PUBLIC_KEY_HEX)) ||
            (protector && (protector_size == 0 || protector_size > FLEET_FILE_MAX)) || (!public_key_hex && !protector))
                return fleet_set_error(-EINVAL, "host %s: bad public key or protector file", host);
        dn = entry_dn(host, c->hosts_dn);
        if (!dn)
                return -ENOMEM;
        r = fleet_conn_ensure(c);
        if (r < 0)
                return r;
        cn_bv = (struct berval) { .bv_len = strlen(host), .bv_val = (char *) host };
        pk_bv = (struct berval) { .bv_len = public_key_hex ? strlen(public_key_hex) : 0, .bv_val = (char *) public_key_hex };
        pf_bv = (struct berval) { .bv_len = protector_size, .bv_val = (char *) protector };

        rc = LDAP_ALREADY_EXISTS;
        if (public_key_hex) {
                mods[n++] = &oc;
                mods[n++] = &cn;
                mods[n++] = &pk;
                if (protector)
                        mods[n++] = &pf;
                rc = ldap_add_ext_s(c->ld, dn, mods, NULL, NULL);
        }
        if (rc == LDAP_ALREADY_EXISTS) {
                n = 0;
                pk.mod_op = pf.mod_op = LDAP_MOD_REPLACE | LDAP_MOD_BVALUES;
                if (public_key_hex)
                        mods[n++] = &pk;
                if (protector)
                        mods[n++] = &pf;
                mods[n] = NULL;
                rc = ldap_modify_ext_s(c->ld, dn, mods, NULL, NULL);
                return op_result(c, rc, "modify", dn);
        }
        return op_result(c, rc, "add", dn);
}

/* A FleetHost from a dkmHost entry. -EACCES: no readable public key; -EPROTO: malformed. */
static int host_from_entry(LDAP *ld, LDAPMessage *e, const char *host, const char *dn, FleetHost **ret) {
        _cleanup_(fleet_host_freep) FleetHost *h = NULL;
        _cleanup_free_ char *pk = NULL;
        int r;

        h = calloc(1, sizeof(*h));
        if (!h)
                return -ENOMEM;
        h->name = strdup(host);
        if (!h->name)
                return -ENOMEM;
        r = get_value(ld, e, "dkmHostPublicKey", FLEET_PUBLIC_KEY_HEX, &pk, NULL);
        if (r == 0 && hex_ok(pk, FLEET_PUBLIC_KEY_HEX))
                memcpy(h->public_key, pk, FLEET_PUBLIC_KEY_HEX + 1);
        else
                r = fleet_set_error(r == -ENOENT ? -EACCES : -EPROTO, "%s: %s dkmHostPublicKey", dn,
                                    r == -ENOENT ? "no readable" : "bad");
        if (r == 0) {
                r = get_value(ld, e, "dkmProtectorFile", FLEET_FILE_MAX, &h->protector, &h->protector_size);
                if (r == -ENOENT)
                        r = 0;
                else if (r < 0)
                        r = fleet_set_error(r, "%s: bad dkmProtectorFile", dn);
        }
        if (r < 0)
                return r;
        *ret = TAKE_PTR(h);
        return 0;
}

int fleet_host_get(FleetConn *c, const char *host, FleetHost **ret) {
        char *attrs[] = { (char *) "dkmHostPublicKey", (char *) "dkmProtectorFile", NULL };
        _cleanup_free_ char *dn = NULL;
        LDAPMessage *msg = NULL, *e = NULL;
        int r;

        if (!c || !ret || !fleet_name_is_valid(host))
                return fleet_set_error(-EINVAL, "not a valid host name");
        dn = entry_dn(host, c->hosts_dn);
        if (!dn)
                return -ENOMEM;
        r = read_entry(c, dn, "(objectClass=dkmHost)", attrs, &msg, &e);
        if (r < 0)
                return r;
        if (!e) {
                ldap_msgfree(msg);
                return fleet_set_error(-ENOENT, "%s: not a dkmHost entry", dn);
        }
        r = host_from_entry(c->ld, e, host, dn, ret);
        ldap_msgfree(msg);
        return r;
}

static int cmp_host(const void *a, const void *b) {
        return strcmp((*(FleetHost *const *) a)->name, (*(FleetHost *const *) b)->name);
}

int fleet_host_list(FleetConn *c, FleetHost ***ret, size_t *ret_n) {
        char *attrs[] = { (char *) "dkmHostPublicKey", (char *) "dkmProtectorFile", NULL };
        FleetHost **l = NULL;
        LDAPMessage *msg = NULL;
        size_t n = 0;
        int r;

        if (!c || !ret || !ret_n)
                return -EINVAL;
        r = search(c, c->hosts_dn, LDAP_SCOPE_ONELEVEL, "(objectClass=dkmHost)", attrs, 0, "list", &msg);
        if (r < 0)
                return r;
        l = calloc((size_t) ldap_count_entries(c->ld, msg) + 1, sizeof(FleetHost *));
        if (!l) {
                ldap_msgfree(msg);
                return -ENOMEM;
        }
        for (LDAPMessage *e = ldap_first_entry(c->ld, msg); e; e = ldap_next_entry(c->ld, e)) {
                char *dn = ldap_get_dn(c->ld, e);
                _cleanup_free_ char *name = fleet_name_from_dn(dn);
                int k;

                /* Not a valid host name: not dkm's, skipped. An entry without a readable or valid
                 * public key is listed with none. */
                if (name) {
                        k = host_from_entry(c->ld, e, name, dn, &l[n]);
                        if (k == -EACCES || k == -EPROTO) {
                                l[n] = calloc(1, sizeof(FleetHost));
                                if (l[n]) {
                                        l[n]->name = strdup(name);
                                        k = l[n]->name ? 0 : -ENOMEM;
                                } else
                                        k = -ENOMEM;
                        }
                        if (k < 0 && r == 0)
                                r = k;
                        if (l[n])
                                n++;
                }
                ldap_memfree(dn);
        }
        ldap_msgfree(msg);
        if (r < 0) {
                fleet_host_list_free(l, n);
                return r;
        }
        qsort(l, n, sizeof(FleetHost *), cmp_host);
        *ret = l;
        *ret_n = n;
        return 0;
}

void fleet_host_list_free(FleetHost **l, size_t n) {
        for (size_t i = 0; l && i < n; i++)
                fleet_host_free(l[i]);
        free(l);
}

int fleet_host_clear_protector(FleetConn *c, const char *host) {
        _cleanup_free_ char *dn = NULL;
        LDAPMod pf = { .mod_op = LDAP_MOD_DELETE | LDAP_MOD_BVALUES, .mod_type = (char *) "dkmProtectorFile" };
        LDAPMod *mods[] = { &pf, NULL };
        int rc, r;

        if (!c || !fleet_name_is_valid(host))
                return fleet_set_error(-EINVAL, "not a valid host name");
        dn = entry_dn(host, c->hosts_dn);
        if (!dn)
                return -ENOMEM;
        r = fleet_conn_ensure(c);
        if (r < 0)
                return r;
        rc = ldap_modify_ext_s(c->ld, dn, mods, NULL, NULL);
        /* Nothing to delete: it is as asked. */
        if (rc == LDAP_NO_SUCH_ATTRIBUTE)
                return 0;
        return op_result(c, rc, "modify", dn);
}

int fleet_host_delete(FleetConn *c, const char *host) {
        _cleanup_free_ char *dn = NULL;
        int r;

        if (!c || !fleet_name_is_valid(host))
                return fleet_set_error(-EINVAL, "not a valid host name");
        dn = entry_dn(host, c->hosts_dn);
        if (!dn)
                return -ENOMEM;
        r = fleet_conn_ensure(c);
        if (r < 0)
                return r;
        return op_result(c, ldap_delete_ext_s(c->ld, dn, NULL, NULL), "delete", dn);
}

/* ---- the store entry ---- */

int fleet_store_id_get(FleetConn *c, char ret_hex[static FLEET_STORE_ID_HEX + 1]) {
        char *attrs[] = { (char *) "dkmStoreId", NULL };
        _cleanup_free_ char *id = NULL;
        LDAPMessage *msg = NULL, *e = NULL;
        int r;

        if (!c)
                return -EINVAL;
        r = read_entry(c, c->store_dn, "(objectClass=dkmStore)", attrs, &msg, &e);
        if (r < 0)
                return r;
        if (!e)
                r = fleet_set_error(-ENOENT, "%s: not a dkmStore entry", c->store_dn);
        else {
                r = get_value(c->ld, e, "dkmStoreId", FLEET_STORE_ID_HEX, &id, NULL);
                if (r < 0 || !hex_ok(id, FLEET_STORE_ID_HEX))
                        r = fleet_set_error(r == -ENOENT ? -EACCES : -EPROTO, "%s: %s dkmStoreId", c->store_dn,
                                            r == -ENOENT ? "no readable" : "bad");
                else
                        memcpy(ret_hex, id, FLEET_STORE_ID_HEX + 1);
        }
        ldap_msgfree(msg);
        return r;
}

int fleet_store_id_put(FleetConn *c, const char *hex) {
        struct berval oc_bv = { .bv_len = strlen("dkmStore"), .bv_val = (char *) "dkmStore" },
                      cn_bv = { .bv_len = strlen("store"), .bv_val = (char *) "store" }, id_bv;
        struct berval *oc_v[] = { &oc_bv, NULL }, *cn_v[] = { &cn_bv, NULL }, *id_v[] = { &id_bv, NULL };
        LDAPMod oc = { .mod_op = LDAP_MOD_ADD | LDAP_MOD_BVALUES, .mod_type = (char *) "objectClass",
                       .mod_vals.modv_bvals = oc_v },
                cn = { .mod_op = LDAP_MOD_ADD | LDAP_MOD_BVALUES, .mod_type = (char *) "cn", .mod_vals.modv_bvals = cn_v },
                id = { .mod_op = LDAP_MOD_ADD | LDAP_MOD_BVALUES, .mod_type = (char *) "dkmStoreId",
                       .mod_vals.modv_bvals = id_v };
        LDAPMod *mods[] = { &oc, &cn, &id, NULL };
        char have[FLEET_STORE_ID_HEX + 1];
        int rc, r;

        if (!c || !hex_ok(hex, FLEET_STORE_ID_HEX))
                return fleet_set_error(-EINVAL, "not a store id (32 lowercase hex characters)");
        r = fleet_conn_ensure(c);
        if (r < 0)
                return r;
        id_bv = (struct berval) { .bv_len = strlen(hex), .bv_val = (char *) hex };
        rc = ldap_add_ext_s(c->ld, c->store_dn, mods, NULL, NULL);
        if (rc != LDAP_ALREADY_EXISTS)
                return op_result(c, rc, "add", c->store_dn);
        r = fleet_store_id_get(c, have);
        if (r < 0)
                return r;
        if (strcmp(have, hex) != 0)
                return fleet_set_error(-EEXIST, "%s: holds another store's id", c->store_dn);
        return 0;
}
