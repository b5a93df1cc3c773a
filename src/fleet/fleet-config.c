/* SPDX-License-Identifier: MIT */
/* fleet.conf parser (pure) and loader. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>

#include "fileio.h"
#include "fleet-config.h"
#include "parse.h"

static int config_error(FleetConfigError *e, unsigned line, const char *fmt, ...) _printf_(3, 4);
static int config_error(FleetConfigError *e, unsigned line, const char *fmt, ...) {
        va_list ap;

        if (e) {
                e->line = line;
                va_start(ap, fmt);
                (void) vsnprintf(e->message, sizeof(e->message), fmt, ap);
                va_end(ap);
        }
        return -EINVAL;
}

bool fleet_name_is_valid(const char *name) {
        size_t n;

        if (!name)
                return false;
        n = strlen(name);
        if (n == 0 || n > FLEET_NAME_MAX)
                return false;
        if (!strchr("abcdefghijklmnopqrstuvwxyz0123456789", name[0]))
                return false;
        return strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_.-") == n;
}

FleetConfig *fleet_config_free(FleetConfig *c) {
        if (!c)
                return NULL;
        strv_free(c->uris);
        free(c->base);
        free(c->bind_dn);
        free(c->bind_password_file);
        free(c->sasl_mech);
        free(c->host);
        free(c->tls_ca_file);
        free(c->tls_cert_file);
        free(c->tls_key_file);
        free(c);
        return NULL;
}

static bool has_control_chars(const char *s) {
        for (; *s; s++)
                if (((unsigned char) *s < 0x20 && *s != '\t') || *s == 0x7f)
                        return true;
        return false;
}

static bool uri_scheme_ok(const char *u) {
        return (strncasecmp(u, "ldap://", 7) == 0 || strncasecmp(u, "ldaps://", 8) == 0 ||
                strncasecmp(u, "ldapi://", 8) == 0);
}

static int parse_uris(FleetConfig *c, char *v, unsigned line, FleetConfigError *e) {
        char *save = NULL;

        for (char *w = strtok_r(v, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
                char **n;

                if (!uri_scheme_ok(w))
                        return config_error(e, line, "Uris=: \"%.64s\" is not an ldap://, ldaps:// or ldapi:// URI", w);
                if (strlen(w) > 512)
                        return config_error(e, line, "Uris=: \"%.64s...\" is too long", w);
                for (size_t i = 0; i < c->n_uris; i++)
                        if (strcasecmp(c->uris[i], w) == 0)
                                return config_error(e, line, "Uris=: %.64s is listed twice", w);
                if (c->n_uris >= FLEET_URIS_MAX)
                        return config_error(e, line, "Uris=: more than %u URIs", FLEET_URIS_MAX);
                n = realloc(c->uris, (c->n_uris + 2) * sizeof(char *));
                if (!n)
                        return -ENOMEM;
                c->uris = n;
                c->uris[c->n_uris] = strdup(w);
                if (!c->uris[c->n_uris])
                        return -ENOMEM;
                c->uris[++c->n_uris] = NULL;
        }
        if (c->n_uris == 0)
                return config_error(e, line, "Uris=: no URI");
        return 0;
}

static int set_string(char **field, const char *key, const char *v, unsigned line, FleetConfigError *e) {
        if (*field)
                return config_error(e, line, "%s= is set twice", key);
        *field = strdup(v);
        return *field ? 0 : -ENOMEM;
}

/* The keys whose value is a file's absolute path: where each goes; NULL for any other key. */
static char **path_field(FleetConfig *c, const char *key) {
        if (strcmp(key, "BindPasswordFile") == 0)
                return &c->bind_password_file;
        if (strcmp(key, "TLSCAFile") == 0)
                return &c->tls_ca_file;
        if (strcmp(key, "TLSCertificateFile") == 0)
                return &c->tls_cert_file;
        if (strcmp(key, "TLSKeyFile") == 0)
                return &c->tls_key_file;
        return NULL;
}

static int parse_line(FleetConfig *c, char *key, char *v, unsigned line, bool *seen_uris, bool *seen_timeout,
                      FleetConfigError *e) {
        char **field;
        int r;

        if (strcmp(key, "Uris") == 0) {
                if (*seen_uris)
                        return config_error(e, line, "Uris= is set twice");
                *seen_uris = true;
                return parse_uris(c, v, line, e);
        }
        if (strcmp(key, "Timeout") == 0) {
                uint64_t t;

                if (*seen_timeout)
                        return config_error(e, line, "Timeout= is set twice");
                *seen_timeout = true;
                if (parse_duration_usec(v, &t) < 0 || t < FLEET_TIMEOUT_MIN_USEC || t > FLEET_TIMEOUT_MAX_USEC)
                        return config_error(e, line, "Timeout=: \"%.32s\" is not a duration between 1s and 60s", v);
                c->timeout_usec = t;
                return 0;
        }
        if (strcmp(key, "Base") == 0) {
                if (!strchr(v, '='))
                        return config_error(e, line, "Base=: \"%.64s\" is not a DN", v);
                return set_string(&c->base, key, v, line, e);
        }
        if (strcmp(key, "BindDN") == 0) {
                if (!strchr(v, '='))
                        return config_error(e, line, "BindDN=: \"%.64s\" is not a DN", v);
                return set_string(&c->bind_dn, key, v, line, e);
        }
        field = path_field(c, key);
        if (field) {
                if (v[0] != '/')
                        return config_error(e, line, "%s=: \"%.64s\" is not an absolute path", key, v);
                return set_string(field, key, v, line, e);
        }
        if (strcmp(key, "SaslMech") == 0) {
                if (strcasecmp(v, "EXTERNAL") != 0)
                        return config_error(e, line, "SaslMech=: only EXTERNAL is supported, not \"%.32s\"", v);
                r = set_string(&c->sasl_mech, key, "EXTERNAL", line, e);
                return r;
        }
        if (strcmp(key, "Host") == 0) {
                if (!fleet_name_is_valid(v))
                        return config_error(e, line,
                                            "Host=: \"%.64s\" is not a valid host name (a-z, 0-9, '_', '.', '-'; at most 64)", v);
                return set_string(&c->host, key, v, line, e);
        }
        return config_error(e, line, "unknown key \"%.32s\"", key);
}

static char *strip(char *s) {
        char *end;

        s += strspn(s, " \t");
        end = s + strlen(s);
        while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
                *--end = 0;
        return s;
}

int fleet_config_parse(const char *text, size_t size, FleetConfig **ret, FleetConfigError *e) {
        _cleanup_(fleet_config_freep) FleetConfig *c = NULL;
        _cleanup_free_ char *buf = NULL;
        bool seen_uris = false, seen_timeout = false;
        unsigned line = 0;
        char *p;
        int r;

        if (!text || !ret)
                return -EINVAL;
        if (size > FLEET_CONFIG_SIZE_MAX)
                return config_error(e, 0, "larger than %u bytes", FLEET_CONFIG_SIZE_MAX);
        if (memchr(text, 0, size))
                return config_error(e, 0, "contains a NUL byte");
        buf = strndup(text, size);
        c = calloc(1, sizeof(*c));
        if (!buf || !c)
                return -ENOMEM;
        c->timeout_usec = FLEET_TIMEOUT_DEFAULT_USEC;

        p = buf;
        while (p) {
                char *l = p, *nl = strchr(p, '\n'), *eq, *key, *v;

                if (nl)
                        *nl = 0;
                p = nl ? nl + 1 : NULL;
                line++;
                l = strip(l);
                if (l[0] == 0 || l[0] == '#' || l[0] == ';')
                        continue;
                if (has_control_chars(l))
                        return config_error(e, line, "contains a control character");
                eq = strchr(l, '=');
                if (!eq)
                        return config_error(e, line, "not a Key=Value line");
                *eq = 0;
                key = strip(l);
                v = strip(eq + 1);
                if (v[0] == 0)
                        return config_error(e, line, "%.32s= has an empty value", key);
                r = parse_line(c, key, v, line, &seen_uris, &seen_timeout, e);
                if (r < 0)
                        return r;
        }

        if (!seen_uris)
                return config_error(e, 0, "Uris= is missing");
        if (!c->base)
                return config_error(e, 0, "Base= is missing");
        if (!c->host)
                return config_error(e, 0, "Host= is missing");
        if (c->bind_dn && c->sasl_mech)
                return config_error(e, 0, "BindDN= and SaslMech= exclude each other");
        if (!c->bind_dn && c->bind_password_file)
                return config_error(e, 0, "BindPasswordFile= without BindDN=");
        if (!c->bind_dn && !c->sasl_mech)
                return config_error(e, 0, "neither BindDN= (with BindPasswordFile=) nor SaslMech=EXTERNAL is set");
        if (c->bind_dn && !c->bind_password_file)
                return config_error(e, 0, "BindDN= needs BindPasswordFile=");
        if (!c->tls_cert_file != !c->tls_key_file)
                return config_error(e, 0, "TLSCertificateFile= and TLSKeyFile= go together");
        if (c->tls_cert_file && !c->tls_ca_file)
                return config_error(e, 0, "a client certificate needs TLSCAFile= (the server is verified)");

        *ret = TAKE_PTR(c);
        return 0;
}

int fleet_config_load(const char *path, FleetConfig **ret, FleetConfigError *e) {
        _cleanup_free_ char *data = NULL;
        size_t size;
        int r;

        r = read_file_full(AT_FDCWD, path, FLEET_CONFIG_SIZE_MAX, &data, &size);
        if (r < 0) {
                if (r == -EFBIG)
                        return config_error(e, 0, "larger than %u bytes", FLEET_CONFIG_SIZE_MAX);
                if (e) {
                        e->line = 0;
                        (void) snprintf(e->message, sizeof(e->message), "cannot read: %s", strerror(-r));
                }
                return r;
        }
        return fleet_config_parse(data, size, ret, e);
}
