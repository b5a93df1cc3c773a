/* SPDX-License-Identifier: MIT */
/* dkmd in a fleet: the hosts. Enrolling another host (the root key sealed to its public key, into
 * its directory entry), removing one, listing them; and this host's own protector, installed
 * from its entry at start or when the enrolment arrives while dkmd waits. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dkmd-fleet-internal.h"

/* ---- hosts: enrolment by an enrolled host, and the list ---- */

static int host_errno(int r) {
        if (r == -ENOENT)
                return -MANAGER_ERRNO_NO_SUCH_HOST;
        return dkmd_fleet_errno(r);
}

int dkmd_fleet_host_get(void *userdata, const char *host, char ret_public_key[static 65], bool *ret_enrolled) {
        DkmdFleet *f = userdata;
        _cleanup_(fleet_host_freep) FleetHost *h = NULL;
        int r;

        r = fleet_host_get(f->conn, host, &h);
        if (r == -EACCES || r == -EPROTO) {
                /* An entry without a (valid) public key is no approval of a host. */
                log_fleet("host %s: %s", host, fleet_last_error());
                return -MANAGER_ERRNO_NO_SUCH_HOST;
        }
        if (r < 0) {
                if (r != -ENOENT)
                        log_fleet("cannot read host %s from the directory: %s", host, fleet_last_error());
                return host_errno(r);
        }
        memcpy(ret_public_key, h->public_key, FLEET_PUBLIC_KEY_HEX + 1);
        *ret_enrolled = h->protector != NULL;
        return 0;
}

static int unhex(const char *s, uint8_t *out, size_t n) {
        for (size_t i = 0; i < n; i++) {
                unsigned v;

                if (sscanf(s + 2 * i, "%2x", &v) != 1)
                        return -EINVAL;
                out[i] = (uint8_t) v;
        }
        return s[2 * n] == 0 ? 0 : -EINVAL;
}

int dkmd_fleet_enrol(void *userdata, const char *host, const char *public_key_hex) {
        DkmdFleet *f = userdata;
        _cleanup_free_ char *text = NULL;
        uint8_t pk[STORE_X25519_KEY_BYTES];
        char name[STORE_PROTECTOR_NAME_MAX + 1];
        size_t size = 0;
        int r;

        if (strlen(public_key_hex) != 2 * STORE_X25519_KEY_BYTES || unhex(public_key_hex, pk, sizeof(pk)) < 0)
                return -EINVAL;
        if ((size_t) snprintf(name, sizeof(name), "fleet-%s", host) >= sizeof(name))
                return -EINVAL;
        /* The protector file holds the protector key sealed to the host's public key: nothing
         * anyone but that host can open. */
        r = store_protector_seal_for_host(f->manager->store, name, pk, &text, &size);
        if (r < 0) {
                log_fleet("cannot seal the root key for host %s: %s", host,
                          store_last_error(f->manager->store) ?: strerror(-r));
                return r;
        }
        r = fleet_host_put(f->conn, host, NULL, text, size);
        if (r < 0) {
                log_fleet("cannot publish host %s's protector: %s", host, fleet_last_error());
                return host_errno(r);
        }
        log_fleet("host %s enrolled: its protector is in the directory (%s)", host, fleet_conn_uri(f->conn) ?: "?");
        return 0;
}

int dkmd_fleet_remove_host(void *userdata, const char *host) {
        DkmdFleet *f = userdata;
        int r;

        r = fleet_host_clear_protector(f->conn, host);
        if (r < 0) {
                log_fleet("cannot remove host %s's protector from the directory: %s", host, fleet_last_error());
                return host_errno(r);
        }
        log_fleet("host %s removed: its protector is gone from the directory", host);
        return 0;
}

int dkmd_fleet_list_hosts(void *userdata, ManagerFleetHost **ret, size_t *ret_n) {
        DkmdFleet *f = userdata;
        FleetHost **l = NULL;
        ManagerFleetHost *out;
        size_t n = 0;
        int r;

        r = fleet_host_list(f->conn, &l, &n);
        if (r < 0) {
                log_fleet("cannot list the hosts of the directory: %s", fleet_last_error());
                return dkmd_fleet_errno(r);
        }
        out = calloc(n ?: 1, sizeof(*out));
        if (!out) {
                fleet_host_list_free(l, n);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                (void) snprintf(out[i].name, sizeof(out[i].name), "%s", l[i]->name);
                (void) snprintf(out[i].public_key, sizeof(out[i].public_key), "%s", l[i]->public_key);
                out[i].enrolled = l[i]->protector != NULL;
        }
        fleet_host_list_free(l, n);
        *ret = out;
        *ret_n = n;
        return 0;
}

/* This host's way in, sealed for it by an enrolled host: installed as protector "fleet-HOST". */
int dkmd_fleet_install_host_protector(DkmdFleet *f) {
        _cleanup_(fleet_host_freep) FleetHost *h = NULL;
        char name[STORE_PROTECTOR_NAME_MAX + 1];
        int r;

        r = fleet_host_get(f->conn, f->config->host, &h);
        if (r == -ENOENT || (r >= 0 && !h->protector))
                return 0; /* not enrolled (yet) */
        if (r < 0)
                return r;
        /* The same file again (the timer while waiting): nothing new to install. */
        if (f->installed && f->installed_size == h->protector_size &&
            memcmp(f->installed, h->protector, h->protector_size) == 0)
                return 0;
        (void) snprintf(name, sizeof(name), "fleet-%s", f->config->host);
        r = store_protector_install(f->manager->store, name, h->protector, h->protector_size);
        if (r < 0) {
                log_fleet("cannot install this host's protector %s: %s", name,
                          store_last_error(f->manager->store) ?: strerror(-r));
                return r;
        }
        free(f->installed);
        f->installed_size = h->protector_size;
        f->installed = TAKE_PTR(h->protector);
        log_fleet("installed this host's protector %s from the directory", name);
        return 1;
}

/* A host that is not enrolled yet starts locked (a joined store has no protector of its own):
 * while it is, its entry is looked at again on every follower (re)connect and on a timer, and an
 * enrolment that arrived is installed and the store checked, which unlocks it and loads the
 * groups (manager_store_check -> store_state_changed). */
bool dkmd_fleet_waiting_for_enrolment(const DkmdFleet *f) {
        return !store_is_unlocked(f->manager->store) && (f->manager->protectors.state == MANAGER_STORE_LOCKED ||
                                                         f->manager->protectors.state == MANAGER_STORE_WAITING);
}

void dkmd_fleet_try_enrolment(DkmdFleet *f) {
        int r;

        if (!dkmd_fleet_waiting_for_enrolment(f))
                return;
        r = dkmd_fleet_install_host_protector(f);
        if (r <= 0)
                return; /* not enrolled yet, the directory away, or said so */
        r = manager_store_check(f->manager, false);
        if (r < 0)
                log_fleet("cannot check the protectors after the enrolment: %s", strerror(-r));
        /* Locked, this host could not check the fleet's seals, so it took no group yet: now. */
        if (store_is_unlocked(f->manager->store))
                dkmd_fleet_catch_up(f);
}

int dkmd_fleet_on_enrol_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        DkmdFleet *f = userdata;
        uint64_t interval = f->manager->protectors.check_interval_usec ?: MANAGER_CHECK_INTERVAL_DEFAULT_USEC;

        dkmd_fleet_try_enrolment(f);
        if (!dkmd_fleet_waiting_for_enrolment(f))
                return sd_event_source_set_enabled(s, SD_EVENT_OFF);
        if (sd_event_source_set_time(s, usec + interval) < 0)
                return 0;
        return sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}


