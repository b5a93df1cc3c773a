/* SPDX-License-Identifier: MIT */
/* Fleet hosts enrolled and removed through dkmd (docs/FLEET.md, "Host enrolment"): an admin's call,
 * at once or as a store-wide request approved at the store policy's levels, carried out through
 * the ManagerFleet hooks (src/daemon/dkmd-fleet.c). What crosses the network is the directory
 * entry's public key and the protector file sealed to it; never a key. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "manager-internal.h"

/* "fleet-" + the host name must be a protector name. */
#define HOST_NAME_MAX_LEN (STORE_PROTECTOR_NAME_MAX - 6U)

/* The first 16 hex digits of the host's public key: what the audit record names it by. */
static const char *fingerprint(const char *public_key_hex, char buf[static 17]) {
        (void) snprintf(buf, 17, "%.16s", public_key_hex);
        return buf;
}

static bool host_name_ok(const char *host) {
        return host && store_group_name_is_valid(host) && strlen(host) <= HOST_NAME_MAX_LEN;
}

static int refuse_host(Manager *m, const char *what, const char *host, int error) {
        (void) manager_audit(m, "request", AUDIT_OUTCOME_REFUSED, "store", "%s %s: %s", what,
                             host_name_ok(host) ? host : "(invalid name)", strerror(-error));
        return error;
}

static int fleet_ready(const Manager *m, bool need_remove) {
        if (!m->fleet || !m->fleet->host_get || !m->fleet->enrol || (need_remove && !m->fleet->remove_host))
                return -MANAGER_ERRNO_NOT_IN_FLEET;
        return 0;
}

int manager_host_enrol_now(Manager *m, const char *host) {
        char pk[65], fp[17];
        bool enrolled;
        int k;

        k = fleet_ready(m, false);
        if (k < 0)
                return k;
        if (!host_name_ok(host))
                return -EINVAL;
        k = manager_store_usable(m);
        if (k < 0)
                return k;
        /* Sealing needs the root key. */
        if (!store_is_unlocked(m->store))
                return -ENOKEY;
        /* Read again when an approved request is carried out: the entry may have changed since. */
        k = m->fleet->host_get(m->fleet->userdata, host, pk, &enrolled);
        if (k < 0)
                return k;
        k = manager_audit(m, "host-enrol", AUDIT_OUTCOME_OK, "store", "host %s public key %s%s", host,
                          fingerprint(pk, fp), enrolled ? " (sealed again)" : "");
        if (k < 0)
                return k;
        k = m->fleet->enrol(m->fleet->userdata, host, pk);
        if (k < 0) {
                manager_audit_failure(m, "host-enrol", "store", k);
                return k;
        }
        manager_log("host %s enrolled (public key %s)", host, fp);
        return 0;
}

int manager_host_remove_now(Manager *m, const char *host) {
        char pk[65], fp[17];
        bool enrolled;
        int k;

        k = fleet_ready(m, true);
        if (k < 0)
                return k;
        if (!host_name_ok(host))
                return -EINVAL;
        k = m->fleet->host_get(m->fleet->userdata, host, pk, &enrolled);
        if (k < 0)
                return k;
        k = manager_audit(m, "host-remove", AUDIT_OUTCOME_OK, "store", "host %s public key %s%s", host,
                          fingerprint(pk, fp), enrolled ? "" : " (had no protector)");
        if (k < 0)
                return k;
        k = m->fleet->remove_host(m->fleet->userdata, host);
        if (k < 0) {
                manager_audit_failure(m, "host-remove", "store", k);
                return k;
        }
        manager_log("host %s removed (public key %s): it cannot unlock at its next start", host, fp);
        return 0;
}

/* The checks made when the call comes (and again when a request is carried out). */
static int host_call(Manager *m, AccessKind kind, const char *host, const char *justification, uint64_t *ret_id) {
        const char *what = access_kind_to_string(kind);
        StorePolicy policy;
        char pk[65];
        bool enrolled;
        int k;

        k = fleet_ready(m, kind == ACCESS_KIND_HOST_REMOVE);
        if (k < 0)
                return refuse_host(m, what, host, k);
        if (!host_name_ok(host))
                return refuse_host(m, what, host, -EINVAL);
        if (kind == ACCESS_KIND_HOST_ENROL) {
                k = manager_store_usable(m);
                if (k < 0)
                        return refuse_host(m, what, host, k);
                if (!store_is_unlocked(m->store))
                        return refuse_host(m, what, host, -ENOKEY);
        }
        k = m->fleet->host_get(m->fleet->userdata, host, pk, &enrolled);
        if (k < 0)
                return refuse_host(m, what, host, k);
        k = store_policy_load(m->store, &policy);
        if (k < 0)
                return k;
        if (policy.n_approval_levels == 0) {
                *ret_id = 0;
                return kind == ACCESS_KIND_HOST_ENROL ? manager_host_enrol_now(m, host) : manager_host_remove_now(m, host);
        }
        return manager_request_store(m, kind, host, NULL, justification, &policy, ret_id);
}

int manager_host_enrol(Manager *m, const char *host, const char *justification, uint64_t *ret_id) {
        return host_call(m, ACCESS_KIND_HOST_ENROL, host, justification, ret_id);
}

int manager_host_remove(Manager *m, const char *host, const char *justification, uint64_t *ret_id) {
        return host_call(m, ACCESS_KIND_HOST_REMOVE, host, justification, ret_id);
}

int manager_hosts_list(Manager *m, ManagerFleetHost **ret, size_t *ret_n) {
        if (!m->fleet || !m->fleet->list_hosts)
                return -MANAGER_ERRNO_NOT_IN_FLEET;
        return m->fleet->list_hosts(m->fleet->userdata, ret, ret_n);
}
