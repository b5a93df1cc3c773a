/* SPDX-License-Identifier: MIT */
/* Fleet hosts on the manager object: EnrollHost, RemoveHost, ListHosts (docs/FLEET.md, "Host
 * enrolment"). The work and its audit records are the manager's (src/manager/manager-fleet.c). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bus-errors.h"
#include "bus-manager.h"

/* "/" when the change was made at once, else the request's path. */
static int reply_request_or_root(sd_bus_message *msg, uint64_t id) {
        _cleanup_free_ char *path = NULL;
        int r;

        if (id == 0)
                return sd_bus_reply_method_return(msg, "o", "/");
        r = bus_request_path(id, &path);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(msg, "o", path);
}

static int host_method(sd_bus_message *msg, BusManager *m, bool enrol, sd_bus_error *error) {
        _cleanup_(bus_call_end) BusCall call = {};
        const char *host, *justification;
        uint64_t id = 0;
        int r;

        r = sd_bus_message_read(msg, "ss", &host, &justification);
        if (r < 0)
                return r;
        r = bus_call_begin(&call, m, msg, enrol ? "EnrollHost" : "RemoveHost", error);
        if (r < 0)
                return r;
        r = bus_call_require_admin(&call, error);
        if (r < 0)
                return r;
        if (!store_group_name_is_valid(host) || strlen(host) > STORE_PROTECTOR_NAME_MAX - 6)
                return bus_call_refuse(&call, error, -EINVAL, "host name must match [a-z0-9][a-z0-9_.-]{0,57}");
        r = enrol ? manager_host_enrol(m->manager, host, justification, &id)
                  : manager_host_remove(m->manager, host, justification, &id);
        if (r < 0)
                return bus_error_errno(error, r, "%s host %s", enrol ? "enrolling" : "removing", host);
        return reply_request_or_root(msg, id);
}

int bus_method_enroll_host(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        return host_method(msg, userdata, true, error);
}

int bus_method_remove_host(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        return host_method(msg, userdata, false, error);
}

int bus_method_list_hosts(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        BusManager *m = userdata;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ ManagerFleetHost *l = NULL;
        size_t n = 0;
        int r;

        /* Names and public keys are not secret; protector files never leave dkmd. */
        r = manager_hosts_list(m->manager, &l, &n);
        if (r < 0)
                return bus_error_errno(error, r, "listing the fleet's hosts");
        r = sd_bus_message_new_method_return(msg, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(sss)");
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                r = sd_bus_message_append(reply, "(sss)", l[i].name, l[i].public_key,
                                          l[i].enrolled ? "enrolled" : "not enrolled");
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}
