/* SPDX-License-Identifier: MIT */
/* Authorization of mutating calls from bus credentials: euid from sd-bus, groups from dbus-daemon. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus-auth.h"
#include "macro.h"

/* sd-bus 252 answers -ENODATA for SD_BUS_CREDS_SUPPLEMENTARY_GIDS on a dbus-daemon bus, so the
 * groups (and pid) come from the daemon itself, which read them from the socket (SO_PEERGROUPS,
 * SO_PEERCRED) when the caller connected: no race with a caller that changes its groups or exits. */
static int read_connection_credentials(sd_bus_message *m, BusCaller *c) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        const char *sender = sd_bus_message_get_sender(m);
        int r;

        if (!sender)
                return -EACCES;
        r = sd_bus_call_method(sd_bus_message_get_bus(m), "org.freedesktop.DBus", "/org/freedesktop/DBus",
                               "org.freedesktop.DBus", "GetConnectionCredentials", &error, &reply, "s", sender);
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                const char *key;

                r = sd_bus_message_read(reply, "s", &key);
                if (r < 0)
                        return r;
                if (strcmp(key, "UnixGroupIDs") == 0 && !c->has_gids) {
                        const uint32_t *gids;
                        size_t size;

                        r = sd_bus_message_enter_container(reply, 'v', "au");
                        if (r < 0)
                                return r;
                        r = sd_bus_message_read_array(reply, 'u', (const void **) &gids, &size);
                        if (r < 0)
                                return r;
                        c->n_gids = size / sizeof(uint32_t);
                        c->gids = calloc(c->n_gids ?: 1, sizeof(gid_t));
                        if (!c->gids)
                                return -ENOMEM;
                        for (size_t i = 0; i < c->n_gids; i++)
                                c->gids[i] = (gid_t) gids[i];
                        c->has_gids = true;
                        r = sd_bus_message_exit_container(reply);
                } else if (strcmp(key, "ProcessID") == 0) {
                        uint32_t pid;

                        r = sd_bus_message_read(reply, "v", "u", &pid);
                        if (r >= 0)
                                c->pid = (pid_t) pid;
                } else
                        r = sd_bus_message_skip(reply, "v");
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(reply);
                if (r < 0)
                        return r;
        }
        return r;
}

/* Informative only (a process may rename itself): what the audit record shows as the command. */
static void read_comm(pid_t pid, char comm[static 16]) {
        char path[64];
        FILE *f;

        comm[0] = 0;
        if (pid <= 0)
                return;
        (void) snprintf(path, sizeof(path), "/proc/%d/comm", (int) pid);
        f = fopen(path, "re");
        if (!f)
                return;
        if (fgets(comm, 16, f))
                comm[strcspn(comm, "\n")] = 0;
        else
                comm[0] = 0;
        fclose(f);
}

int bus_caller_get(sd_bus_message *m, BusCaller *ret) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        BusCaller c = {};
        int r;

        /* No SD_BUS_CREDS_AUGMENT: a value read from /proc/<pid> could belong to a process that
         * reused the caller's pid; only what dbus-daemon recorded at connect time counts. */
        r = sd_bus_query_sender_creds(m, SD_BUS_CREDS_EUID, &creds);
        if (r < 0)
                return -EACCES; /* who is unknown: refused, and never mapped to another error */
        if (sd_bus_creds_get_augmented_mask(creds) & SD_BUS_CREDS_EUID)
                return -EACCES;
        if (sd_bus_creds_get_euid(creds, &c.uid) < 0)
                return -EACCES;
        /* Without groups the caller is still known; membership checks then fail closed. */
        r = read_connection_credentials(m, &c);
        if (r == -ENOMEM) {
                bus_caller_done(&c);
                return r;
        }
        read_comm(c.pid, c.comm);
        *ret = c;
        return 0;
}

void bus_caller_done(BusCaller *c) {
        free(c->gids);
        c->gids = NULL;
        c->n_gids = 0;
        c->has_gids = false;
}

bool bus_caller_in_group(const BusCaller *c, gid_t gid) {
        for (size_t i = 0; c->has_gids && i < c->n_gids; i++)
                if (c->gids[i] == gid)
                        return true;
        return false;
}

/* polkit over D-Bus (no libpolkit): CheckAuthorization(subject, action, details, flags,
 * cancellation) with the caller's unique bus name as subject, so polkitd itself looks up who it
 * is. An absent polkit, or any failure, is "not authorized". */
static bool polkit_allows(sd_bus_message *m) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus *bus = sd_bus_message_get_bus(m);
        const char *sender = sd_bus_message_get_sender(m);
        uint32_t flags = sd_bus_message_get_allow_interactive_authorization(m) ? 1 : 0;
        int authorized = 0, challenge = 0, r;

        if (!sender)
                return false;
        /* Only ask when polkitd runs: no activation, no 25 s timeout on hosts without it. */
        r = sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                               "NameHasOwner", NULL, &reply, "s", BUS_AUTH_POLKIT_SERVICE);
        if (r < 0 || sd_bus_message_read(reply, "b", &authorized) < 0 || !authorized)
                return false;
        reply = sd_bus_message_unref(reply);
        authorized = 0;
        r = sd_bus_call_method(bus, BUS_AUTH_POLKIT_SERVICE, "/org/freedesktop/PolicyKit1/Authority",
                               "org.freedesktop.PolicyKit1.Authority", "CheckAuthorization", &error, &reply,
                               "(sa{sv})sa{ss}us", "system-bus-name", 1, "name", "s", sender, BUS_AUTH_POLKIT_ACTION,
                               0, flags, "");
        if (r < 0)
                return false;
        r = sd_bus_message_enter_container(reply, 'r', "bba{ss}");
        if (r < 0 || sd_bus_message_read(reply, "bb", &authorized, &challenge) < 0)
                return false;
        return authorized;
}

int bus_auth_check_admin(const BusAuth *a, sd_bus_message *m, const BusCaller *caller) {
        if (caller->uid == 0)
                return 0;
        if (a->has_admin_gid && bus_caller_in_group(caller, a->admin_gid))
                return 0;
        return polkit_allows(m) ? 0 : -EACCES;
}
