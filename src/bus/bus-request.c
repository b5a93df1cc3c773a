/* SPDX-License-Identifier: MIT */
/* Break-glass requests on the bus: RequestAccess/ListRequests/GetRequest on the manager, and one
 * object per request, /org/dkm/KeyManager1/request/<id>, interface org.dkm.KeyManager1.Request.
 * The rules and their audit records are the manager's (src/manager/manager-requests.c). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bus-errors.h"
#include "bus-manager.h"
#include "parse.h"

/* The request an object path names, or NULL. */
static AccessRequest *request_from_path(BusManager *m, const char *path) {
        _cleanup_free_ char *id = NULL;
        uint64_t n;

        /* One path per request: "0005" is not request 5. */
        if (sd_bus_path_decode(path, BUS_REQUEST_PATH_PREFIX, &id) <= 0 || id[0] == '0' ||
            parse_uint64(id, UINT64_MAX, &n) < 0)
                return NULL;
        return manager_request_find(m->manager, n);
}

static int reply_request_path(sd_bus_message *msg, uint64_t id) {
        _cleanup_free_ char *path = NULL;
        int r;

        r = bus_request_path(id, &path);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(msg, "o", path);
}

int bus_method_request_access(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        BusManager *m = userdata;
        _cleanup_(bus_call_end) BusCall call = {};
        const char *group, *justification;
        uint64_t duration, id;
        int r;

        r = sd_bus_message_read(msg, "sst", &group, &justification, &duration);
        if (r < 0)
                return r;
        r = bus_call_begin(&call, m, msg, "RequestAccess", error);
        if (r < 0)
                return r;
        if (!store_group_name_is_valid(group))
                return bus_call_refuse(&call, error, -ENOENT, "group '%.64s'", group);
        /* Anyone may ask; the manager checks the rest and audits its refusals. */
        r = manager_request_access(m->manager, group, justification, duration, &id);
        if (r < 0)
                return bus_error_errno(error, r, "requesting access to %s", group);
        return reply_request_path(msg, id);
}

int bus_method_list_requests(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        BusManager *m = userdata;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_message_new_method_return(msg, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(otssusst)");
        if (r < 0)
                return r;
        for (size_t i = 0; i < m->manager->requests.n; i++) {
                const AccessRequest *q = &m->manager->requests.items[i];
                _cleanup_free_ char *path = NULL;

                r = bus_request_path(q->id, &path);
                if (r < 0)
                        return r;
                r = sd_bus_message_append(reply, "(otssusst)", path, q->id, access_kind_to_string(q->kind), q->group,
                                          (uint32_t) q->requester, access_state_to_string(q->state),
                                          q->justification, q->expires_usec);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

int bus_method_get_request(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        BusManager *m = userdata;
        uint64_t id;
        int r;

        r = sd_bus_message_read(msg, "t", &id);
        if (r < 0)
                return r;
        if (!manager_request_find(m->manager, id))
                return bus_error_errno(error, -ACCESS_ERRNO_NO_SUCH_REQUEST, "request %llu", (unsigned long long) id);
        return reply_request_path(msg, id);
}

typedef int (*RequestAction)(BusCall *call, AccessRequest *q, sd_bus_message *msg);

static int action_approve(BusCall *call, AccessRequest *q, sd_bus_message *msg) {
        return manager_request_approve(call->m->manager, q->id);
}

static int action_deny(BusCall *call, AccessRequest *q, sd_bus_message *msg) {
        const char *reason;
        int r;

        r = sd_bus_message_read(msg, "s", &reason);
        if (r < 0)
                return r;
        return manager_request_deny(call->m->manager, q->id, reason);
}

static int action_cancel(BusCall *call, AccessRequest *q, sd_bus_message *msg) {
        return manager_request_cancel(call->m->manager, q->id, bus_call_is_admin(call));
}

static int action_revoke(BusCall *call, AccessRequest *q, sd_bus_message *msg) {
        return manager_request_revoke(call->m->manager, q->id, bus_call_is_admin(call));
}

/* Every request method: find the caller and the request, act; the manager audits both the
 * action and its refusal. */
static int run_action(sd_bus_message *msg, void *userdata, sd_bus_error *error, const char *method,
                      RequestAction action) {
        BusManager *m = userdata;
        _cleanup_(bus_call_end) BusCall call = {};
        AccessRequest *q;
        int r;

        r = bus_call_begin(&call, m, msg, method, error);
        if (r < 0)
                return r;
        q = request_from_path(m, sd_bus_message_get_path(msg));
        if (!q)
                return bus_call_refuse(&call, error, -ACCESS_ERRNO_NO_SUCH_REQUEST, "%s", method);
        r = action(&call, q, msg);
        /* Not the admin check: say who may. */
        if (r == -EACCES)
                return sd_bus_error_setf(error, BUS_ERROR_ACCESS_DENIED,
                                         "%s of request %llu: only the requester may cancel a pending request; "
                                         "the requester, its approvers or an admin may revoke a grant or cancel "
                                         "a scheduled purge",
                                         method, (unsigned long long) q->id);
        if (r < 0)
                return bus_error_errno(error, r, "%s of request %llu", method, (unsigned long long) q->id);
        return sd_bus_reply_method_return(msg, NULL);
}

static int method_approve(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        return run_action(msg, userdata, error, "Approve", action_approve);
}

static int method_deny(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        return run_action(msg, userdata, error, "Deny", action_deny);
}

static int method_cancel(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        return run_action(msg, userdata, error, "Cancel", action_cancel);
}

static int method_revoke(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        return run_action(msg, userdata, error, "Revoke", action_revoke);
}

static int append_approvals(sd_bus_message *reply, const AccessRequest *q) {
        int r;

        r = sd_bus_message_open_container(reply, 'a', "(uut)");
        if (r < 0)
                return r;
        for (size_t i = 0; i < q->n_approvals; i++) {
                r = sd_bus_message_append(reply, "(uut)", (uint32_t) i, (uint32_t) q->approvals[i].uid,
                                          q->approvals[i].usec);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(reply);
}

static int property_get(sd_bus *bus, const char *path, const char *interface, const char *property,
                        sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const AccessRequest *q = request_from_path(userdata, path);

        if (!q)
                return bus_error_errno(error, -ACCESS_ERRNO_NO_SUCH_REQUEST, "request at %s", path);
        if (strcmp(property, "Id") == 0)
                return sd_bus_message_append(reply, "t", q->id);
        if (strcmp(property, "Kind") == 0)
                return sd_bus_message_append(reply, "s", access_kind_to_string(q->kind));
        if (strcmp(property, "Group") == 0)
                return sd_bus_message_append(reply, "s", q->group);
        if (strcmp(property, "Target") == 0)
                return sd_bus_message_append(reply, "s", q->target);
        if (strcmp(property, "Spec") == 0)
                return sd_bus_message_append(reply, "s", q->spec);
        if (strcmp(property, "Generation") == 0)
                return sd_bus_message_append(reply, "u", q->generation);
        if (strcmp(property, "Requester") == 0)
                return sd_bus_message_append(reply, "u", (uint32_t) q->requester);
        if (strcmp(property, "Justification") == 0)
                return sd_bus_message_append(reply, "s", q->justification);
        if (strcmp(property, "DurationUSec") == 0)
                return sd_bus_message_append(reply, "t", q->duration_usec);
        if (strcmp(property, "CreatedUSec") == 0)
                return sd_bus_message_append(reply, "t", q->created_usec);
        if (strcmp(property, "DeadlineUSec") == 0)
                return sd_bus_message_append(reply, "t", q->deadline_usec);
        if (strcmp(property, "ApprovalGroups") == 0)
                return bus_append_gid_names(reply, q->levels, q->n_levels);
        if (strcmp(property, "Approvals") == 0)
                return append_approvals(reply, q);
        if (strcmp(property, "State") == 0)
                return sd_bus_message_append(reply, "s", access_state_to_string(q->state));
        if (strcmp(property, "GrantedUSec") == 0)
                return sd_bus_message_append(reply, "t", q->granted_usec);
        if (strcmp(property, "ExpiresUSec") == 0)
                return sd_bus_message_append(reply, "t", q->expires_usec);
        if (strcmp(property, "ClosedUSec") == 0)
                return sd_bus_message_append(reply, "t", q->closed_usec);
        if (strcmp(property, "ClosedBy") == 0)
                return sd_bus_message_append(reply, "u", (uint32_t) q->closed_by);
        if (strcmp(property, "Reason") == 0)
                return sd_bus_message_append(reply, "s", q->reason);
        return -EINVAL; /* only reachable if the vtable names a property not handled here */
}

int bus_request_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **found,
                     sd_bus_error *error) {
        if (!request_from_path(userdata, path))
                return 0;
        *found = userdata;
        return 1;
}

int bus_request_enumerate(sd_bus *bus, const char *prefix, void *userdata, char ***ret, sd_bus_error *error) {
        BusManager *m = userdata;
        size_t n = m->manager->requests.n;
        _cleanup_strv_free_ char **paths = calloc(n + 1, sizeof(char *));
        int r;

        if (!paths)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                r = bus_request_path(m->manager->requests.items[i].id, &paths[i]);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(paths);
        return 0;
}

void bus_emit_request_changed(sd_bus *bus, const AccessRequest *q, bool added) {
        _cleanup_free_ char *path = NULL;

        if (bus_request_path(q->id, &path) < 0)
                return;
        if (added) {
                (void) sd_bus_emit_object_added(bus, path);
                return;
        }
        (void) sd_bus_emit_signal(bus, path, BUS_REQUEST_INTERFACE, "StateChanged", "s",
                                  access_state_to_string(q->state));
        (void) sd_bus_emit_properties_changed(bus, path, BUS_REQUEST_INTERFACE, "State", "Approvals", "GrantedUSec",
                                              "ExpiresUSec", "ClosedUSec", "ClosedBy", "Reason", NULL);
}

#define PROPERTY(name, sig, flags) SD_BUS_PROPERTY(name, sig, property_get, 0, flags)
#define CONST SD_BUS_VTABLE_PROPERTY_CONST
#define CHANGES SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE

const sd_bus_vtable bus_request_vtable[] = {
        SD_BUS_VTABLE_START(0),
        PROPERTY("Id", "t", CONST),
        PROPERTY("Kind", "s", CONST),
        PROPERTY("Group", "s", CONST),
        PROPERTY("Target", "s", CONST),
        PROPERTY("Spec", "s", CONST),
        PROPERTY("Generation", "u", CONST),
        PROPERTY("Requester", "u", CONST),
        PROPERTY("Justification", "s", CONST),
        PROPERTY("DurationUSec", "t", CONST),
        PROPERTY("CreatedUSec", "t", CONST),
        PROPERTY("DeadlineUSec", "t", CONST),
        PROPERTY("ApprovalGroups", "as", CONST),
        PROPERTY("Approvals", "a(uut)", CHANGES),
        PROPERTY("State", "s", CHANGES),
        PROPERTY("GrantedUSec", "t", CHANGES),
        PROPERTY("ExpiresUSec", "t", CHANGES),
        PROPERTY("ClosedUSec", "t", CHANGES),
        PROPERTY("ClosedBy", "u", CHANGES),
        PROPERTY("Reason", "s", CHANGES),
        SD_BUS_METHOD("Approve", NULL, NULL, method_approve, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("Deny", "s", SD_BUS_PARAM(reason), NULL, , method_deny, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Cancel", NULL, NULL, method_cancel, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Revoke", NULL, NULL, method_revoke, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_NAMES("StateChanged", "s", SD_BUS_PARAM(state), 0),
        SD_BUS_VTABLE_END,
};
