/* SPDX-License-Identifier: MIT */
/* libFuzzer: /etc/dkm/fleet.conf (src/fleet/fleet-config.h fleet_config_parse, pure). What it
 * accepts must be what dkmd can act on: every rule of the parser's comment holds for the result. */
#include <errno.h>
#include <strings.h>

#include "fleet-config.h"
#include "fuzz.h"

static bool absolute_or_null(const char *path) {
        return !path || path[0] == '/';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(fleet_config_freep) FleetConfig *c = NULL;
        FleetConfigError e = {};
        int r;

        r = fleet_config_parse((const char *) data, size, &c, &e);
        if (r < 0) {
                FUZZ_ASSERT(r == -EINVAL || r == -ENOMEM);
                if (r == -EINVAL)
                        FUZZ_ASSERT(memchr(e.message, 0, sizeof(e.message)) && e.message[0]);
                FUZZ_ASSERT(!c);
                return 0;
        }
        FUZZ_ASSERT(c->n_uris >= 1 && c->n_uris <= FLEET_URIS_MAX && !c->uris[c->n_uris]);
        /* schemes are case-insensitive (RFC 3986); fleet-ldap.c decides StartTLS the same way */
        for (size_t i = 0; i < c->n_uris; i++)
                FUZZ_ASSERT(strncasecmp(c->uris[i], "ldap://", 7) == 0 || strncasecmp(c->uris[i], "ldaps://", 8) == 0 ||
                            strncasecmp(c->uris[i], "ldapi://", 8) == 0);
        FUZZ_ASSERT(c->base && strchr(c->base, '='));
        FUZZ_ASSERT(c->host && fleet_name_is_valid(c->host));
        /* exactly one way to bind, each complete */
        FUZZ_ASSERT(!c->bind_dn != !c->sasl_mech);
        FUZZ_ASSERT(!c->bind_dn || c->bind_password_file);
        FUZZ_ASSERT(!c->sasl_mech || strcmp(c->sasl_mech, "EXTERNAL") == 0);
        /* a client certificate comes with its key, and only where the server is verified */
        FUZZ_ASSERT(!c->tls_cert_file == !c->tls_key_file);
        FUZZ_ASSERT(!c->tls_cert_file || c->tls_ca_file);
        FUZZ_ASSERT(absolute_or_null(c->bind_password_file) && absolute_or_null(c->tls_ca_file) &&
                    absolute_or_null(c->tls_cert_file) && absolute_or_null(c->tls_key_file));
        FUZZ_ASSERT(c->timeout_usec >= FLEET_TIMEOUT_MIN_USEC && c->timeout_usec <= FLEET_TIMEOUT_MAX_USEC);
        return 0;
}
