/* SPDX-License-Identifier: MIT */
/* Shared between fleet-ldap.c and fleet-follow.c: the connection's insides and error helpers. */
#pragma once

#include <ldap.h>

#include "fleet-ldap.h"

struct FleetConn {
        const FleetConfig *config;
        LDAP *ld;        /* NULL when the server went away: the next operation reconnects */
        int uri_index;   /* -1 when not connected */
        char *groups_dn; /* ou=groups,BASE */
        char *hosts_dn;  /* ou=hosts,BASE */
        char *store_dn;  /* cn=store,BASE */
};

int fleet_set_error(int r, const char *fmt, ...) _printf_(2, 3);
/* An LDAP result code as a negative errno (0 for LDAP_SUCCESS). */
int fleet_errno_from_ldap(int rc);
bool fleet_ldap_is_down(int rc);
/* Make sure c->ld is bound; reconnects from the first URI. */
int fleet_conn_ensure(FleetConn *c);
/* Drop the connection after a transport failure. */
void fleet_conn_drop(FleetConn *c);
/* 16 raw bytes or a string form into 8-4-4-4-12. */
void fleet_uuid_format(const struct berval *raw, char out[static FLEET_UUID_STRING_MAX]);
/* "cn=NAME,..." -> NAME if valid, else NULL (malloc'd). */
char *fleet_name_from_dn(const char *dn);
uint64_t fleet_now_usec(void);
/* A FleetGroup from a dkmKeyGroup entry; name NULL: from the DN. -EACCES: the file or revision is
 * not readable by this identity; -EPROTO: malformed. */
int fleet_group_from_entry(LDAP *ld, LDAPMessage *e, const char *name, FleetGroup **ret);
