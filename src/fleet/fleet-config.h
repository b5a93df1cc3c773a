/* SPDX-License-Identifier: MIT */
/* /etc/dkm/fleet.conf: which directory servers a host follows and how it binds. Parser is pure. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

#define FLEET_CONFIG_PATH "/etc/dkm/fleet.conf"
#define FLEET_CONFIG_SIZE_MAX (64U * 1024U)
#define FLEET_URIS_MAX 16U
#define FLEET_NAME_MAX 64U
#define FLEET_TIMEOUT_DEFAULT_USEC (2ULL * 1000000ULL)
#define FLEET_TIMEOUT_MIN_USEC (1ULL * 1000000ULL)
#define FLEET_TIMEOUT_MAX_USEC (60ULL * 1000000ULL)

typedef struct FleetConfig {
        char **uris;   /* NULL-terminated, 1..FLEET_URIS_MAX; the same order on every host: the
                        * first reachable one is where this host writes (the "primary writer") */
        size_t n_uris;
        char *base;    /* e.g. ou=dkm,dc=example,dc=org */
        char *bind_dn; /* simple bind (with bind_password_file), or NULL with sasl_mech */
        char *bind_password_file;
        char *sasl_mech; /* "EXTERNAL" (ldapi peer credentials or a TLS client certificate) */
        char *host;      /* this host's name: cn=HOST,ou=hosts,BASE */
        char *tls_ca_file; /* set: every ldap:// connection does StartTLS first (never plain), and
                            * the server's certificate must chain to this CA */
        char *tls_cert_file, *tls_key_file; /* this host's client certificate (SASL EXTERNAL over TLS) */
        uint64_t timeout_usec; /* per server: connect and each operation */
} FleetConfig;

typedef struct FleetConfigError {
        unsigned line; /* 0: the file as a whole */
        char message[160];
} FleetConfigError;

/* Parse fleet.conf text: "Key=Value" lines, '#' or ';' comments, blank lines. Keys: Uris= (space-
 * separated ldap://, ldaps://, ldapi:// URIs), Base=, Host=, BindDN= with BindPasswordFile= or
 * SaslMech=EXTERNAL, TLSCAFile= (with it, ldap:// means StartTLS), TLSCertificateFile= with
 * TLSKeyFile= (both or neither, and only with TLSCAFile=), Timeout= (1s..60s, default 2s). Unknown
 * or repeated keys are refused. -EINVAL with e saying where and what; -ENOMEM. */
int fleet_config_parse(const char *text, size_t size, FleetConfig **ret, FleetConfigError *e) _warn_unused_result_;

/* Read and parse a file (no symlink, at most FLEET_CONFIG_SIZE_MAX). */
int fleet_config_load(const char *path, FleetConfig **ret, FleetConfigError *e) _warn_unused_result_;

FleetConfig *fleet_config_free(FleetConfig *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(FleetConfig *, fleet_config_free);

/* Group and host names in the directory: the store's group name rule ([a-z0-9][a-z0-9_.-]*, at
 * most 64), so a name never needs DN escaping. */
bool fleet_name_is_valid(const char *name);
