/* SPDX-License-Identifier: MIT */
/* Authorization of mutating calls from bus credentials: euid from sd-bus, groups from dbus-daemon. */
#include <errno.h>
#include <string.h>

#include "bus-auth.h"
#include "macro.h"

/* sd-bus 252 answers -ENODATA for SD_BUS_CREDS_SUPPLEMENTARY_GIDS on a dbus-daemon bus, so the
 * groups come from the daemon itself, which read them from the socket (SO_PEERGROUPS) when the
 * caller connected: no race with a caller that changes its groups or exits. */
static int sender_has_gid(sd_bus_message *m, gid_t gid, bool *ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        const char *sender = sd_bus_message_get_sender(m);
        bool found = false, seen = false;
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
                if (strcmp(key, "UnixGroupIDs") == 0) {
                        const uint32_t *gids;
                        size_t size;

                        r = sd_bus_message_enter_container(reply, 'v', "au");
                        if (r < 0)
                                return r;
                        r = sd_bus_message_read_array(reply, 'u', (const void **) &gids, &size);
                        if (r < 0)
                                return r;
                        for (size_t i = 0; i < size / sizeof(uint32_t); i++)
                                if (gids[i] == gid)
                                        found = true;
                        seen = true;
                        r = sd_bus_message_exit_container(reply);
                } else
                        r = sd_bus_message_skip(reply, "v");
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(reply);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        /* A bus that does not report groups cannot vouch for membership: refuse. */
        if (!seen)
                return -EACCES;
        *ret = found;
        return 0;
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

int bus_auth_check_admin(const BusAuth *a, sd_bus_message *m, uid_t *ret_uid) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        uint64_t augmented;
        uid_t euid;
        bool member = false;
        int r;

        /* No SD_BUS_CREDS_AUGMENT: a value read from /proc/<pid> could belong to a process that
         * reused the caller's pid; only what dbus-daemon recorded at connect time counts. */
        r = sd_bus_query_sender_creds(m, SD_BUS_CREDS_EUID, &creds);
        if (r < 0)
                return -EACCES; /* who is unknown: refused, and never mapped to another error */
        augmented = sd_bus_creds_get_augmented_mask(creds);
        if (augmented & SD_BUS_CREDS_EUID)
                return -EACCES;
        r = sd_bus_creds_get_euid(creds, &euid);
        if (r < 0)
                return -EACCES;
        if (ret_uid)
                *ret_uid = euid;
        if (euid == 0)
                return 0;
        if (a->has_admin_gid && sender_has_gid(m, a->admin_gid, &member) >= 0 && member)
                return 0;
        return polkit_allows(m) ? 0 : -EACCES;
}
