/* SPDX-License-Identifier: MIT */
/* The manager object /org/dkm/KeyManager1: create, list and find groups, reload the drop-ins. */
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus-errors.h"
#include "bus-manager.h"
#include "config.h"
#include "macro.h"

#define NAME_RULE "group name must match [a-z0-9][a-z0-9_.-]{0,63}"

int bus_group_path(const char *name, char **ret) {
        /* Group names may hold '.', '-' and '_', which object paths do not allow as is. */
        return sd_bus_path_encode(BUS_GROUP_PATH_PREFIX, name, ret);
}

int bus_request_path(uint64_t id, char **ret) {
        return asprintf(ret, BUS_REQUEST_PATH_PREFIX "/%llu", (unsigned long long) id) < 0 ? -ENOMEM : 0;
}

int bus_append_gid_names(sd_bus_message *reply, const gid_t *gids, size_t n) {
        int r;

        r = sd_bus_message_open_container(reply, 'a', "s");
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                struct group *gr = getgrgid(gids[i]);
                char number[16];

                (void) snprintf(number, sizeof(number), "%u", (unsigned) gids[i]);
                r = sd_bus_message_append(reply, "s", gr ? gr->gr_name : number);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(reply);
}

static int method_create_group(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        BusManager *m = userdata;
        _cleanup_(bus_call_end) BusCall call = {};
        _cleanup_free_ char *path = NULL;
        CryptAlg alg = CRYPT_ALG_XCHACHA20_POLY1305;
        StoreGroupPolicy policy = STORE_GROUP_POLICY_DEFAULT;
        const char *name;
        uint32_t gid;
        int r;

        r = sd_bus_message_read(msg, "su", &name, &gid);
        if (r < 0)
                return r;
        r = bus_call_begin(&call, m, msg, "CreateGroup", error);
        if (r < 0)
                return r;
        /* First, so a refused caller learns nothing, not even whether the name is taken. */
        r = bus_call_require_admin(&call, error);
        if (r < 0)
                return r;
        r = bus_read_policy_options(msg, &alg, &policy, error);
        if (r < 0) {
                bus_call_audit_refusal(&call, error);
                return r;
        }
        if (!store_group_name_is_valid(name))
                return bus_call_refuse(&call, error, -EINVAL, NAME_RULE);
        /* gid 0 would hand every key to root's group; an unknown gid has no members to load for. */
        if (gid == 0 || gid == (uint32_t) -1 || !getgrgid((gid_t) gid))
                return bus_call_refuse(&call, error, -EINVAL, "gid %u is not a usable group", (unsigned) gid);

        r = manager_create_group(m->manager, name, (gid_t) gid, alg, &policy);
        if (r < 0 && r != -MANAGER_ERRNO_LOAD_FAILED)
                return bus_call_refuse(&call, error, r, "creating group %s", name);
        if (r < 0)
                return bus_call_refuse(&call, error, r, "group %s created, but loading it into the kernel", name);
        r = bus_group_path(name, &path);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(msg, "o", path);
}

static int method_list_groups(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        BusManager *m = userdata;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_strv_free_ char **names = NULL;
        int r;

        r = store_group_list(m->manager->store, &names);
        if (r < 0)
                return bus_error_errno(error, r, "listing groups");
        r = sd_bus_message_new_method_return(msg, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(so)");
        if (r < 0)
                return r;
        for (char **n = names; n && *n; n++) {
                _cleanup_free_ char *path = NULL;

                r = bus_group_path(*n, &path);
                if (r < 0)
                        return r;
                r = sd_bus_message_append(reply, "(so)", *n, path);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_get_group(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        BusManager *m = userdata;
        _cleanup_store_group_ StoreGroup *g = NULL;
        _cleanup_free_ char *path = NULL;
        const char *name;
        int r;

        r = sd_bus_message_read(msg, "s", &name);
        if (r < 0)
                return r;
        if (!store_group_name_is_valid(name))
                return bus_error_errno(error, -EINVAL, NAME_RULE);
        r = store_group_load(m->manager->store, name, &g);
        if (r < 0)
                return bus_error_errno(error, r, "group %s", name);
        r = bus_group_path(name, &path);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(msg, "o", path);
}

static int method_reload(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        BusManager *m = userdata;
        _cleanup_(bus_call_end) BusCall call = {};
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_strv_free_ char **problems = NULL;
        int r;

        r = bus_call_begin(&call, m, msg, "Reload", error);
        if (r < 0)
                return r;
        r = bus_call_require_admin(&call, error);
        if (r < 0)
                return r;
        r = manager_audit(m->manager, "reload", AUDIT_OUTCOME_OK, BUS_MANAGER_PATH, "groups.d drop-ins");
        if (r < 0)
                return bus_error_errno(error, r, "reloading the groups.d drop-ins");
        r = m->reload(m->reload_userdata, &problems);
        if (r < 0)
                return bus_call_refuse(&call, error, r, "reloading the groups.d drop-ins");
        r = sd_bus_message_new_method_return(msg, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_append_strv(reply, problems);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int property_get(sd_bus *bus, const char *path, const char *interface, const char *property,
                        sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        BusManager *m = userdata;

        if (strcmp(property, "Version") == 0)
                return sd_bus_message_append(reply, "s", DKM_VERSION);
        if (strcmp(property, "StoreUnlocked") == 0)
                return sd_bus_message_append(reply, "b", store_is_unlocked(m->manager->store));
        /* "": a host on its own. */
        if (strcmp(property, "FleetState") == 0)
                return sd_bus_message_append(reply, "s",
                                             m->manager->fleet ? m->manager->fleet->state(m->manager->fleet->userdata) : "");
        if (strcmp(property, "FleetUri") == 0)
                return sd_bus_message_append(reply, "s",
                                             m->manager->fleet ? m->manager->fleet->uri(m->manager->fleet->userdata) : "");
        return -EINVAL;
}

void bus_emit_fleet_changed(sd_bus *bus) {
        (void) sd_bus_emit_properties_changed(bus, BUS_MANAGER_PATH, BUS_MANAGER_INTERFACE, "FleetState", "FleetUri",
                                              NULL);
}

void bus_emit_group_added(sd_bus *bus, const StoreGroup *g) {
        _cleanup_free_ char *path = NULL;

        if (bus_group_path(g->name, &path) >= 0)
                (void) sd_bus_emit_object_added(bus, path);
}

static const sd_bus_vtable manager_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Version", "s", property_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("StoreUnlocked", "b", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("StoreState", "s", bus_store_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("FleetState", "s", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("FleetUri", "s", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("StoreStateDetail", "s", bus_store_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("NextCheckUSec", "t", bus_store_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("PurgeAtUSec", "t", bus_store_property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        /* Written by dkm-store only (root on the host), so not announced: read it when needed. */
        SD_BUS_PROPERTY("StoreApprovalGroups", "as", bus_store_property_get, 0, 0),
        SD_BUS_PROPERTY("PurgeDelayUSec", "t", bus_store_property_get, 0, 0),
        SD_BUS_METHOD_WITH_NAMES("CreateGroup", "sua{sv}", SD_BUS_PARAM(name) SD_BUS_PARAM(gid) SD_BUS_PARAM(options),
                                 "o", SD_BUS_PARAM(group), method_create_group, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("ListGroups", NULL, , "a(so)", SD_BUS_PARAM(groups), method_list_groups,
                                 SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("GetGroup", "s", SD_BUS_PARAM(name), "o", SD_BUS_PARAM(group), method_get_group,
                                 SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("Reload", NULL, , "as", SD_BUS_PARAM(problems), method_reload,
                                 SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("RequestAccess", "sst",
                                 SD_BUS_PARAM(group) SD_BUS_PARAM(justification) SD_BUS_PARAM(duration_usec), "o",
                                 SD_BUS_PARAM(request), bus_method_request_access, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("ListRequests", NULL, , "a(otssusst)", SD_BUS_PARAM(requests),
                                 bus_method_list_requests, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("GetRequest", "t", SD_BUS_PARAM(id), "o", SD_BUS_PARAM(request),
                                 bus_method_get_request, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("ListProtectors", NULL, , "a(ssss)", SD_BUS_PARAM(protectors),
                                 bus_method_list_protectors, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("CheckProtectors", NULL, , "a(ssss)", SD_BUS_PARAM(protectors),
                                 bus_method_check_protectors, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("AddProtector", "ssa{sv}s",
                                 SD_BUS_PARAM(name) SD_BUS_PARAM(type) SD_BUS_PARAM(options)
                                         SD_BUS_PARAM(justification),
                                 "o", SD_BUS_PARAM(request), bus_method_add_protector, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("RemoveProtector", "ss", SD_BUS_PARAM(name) SD_BUS_PARAM(justification), "o",
                                 SD_BUS_PARAM(request), bus_method_remove_protector, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("Purge", "s", SD_BUS_PARAM(justification), "o", SD_BUS_PARAM(request),
                                 bus_method_purge, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("EnrollHost", "ss", SD_BUS_PARAM(host) SD_BUS_PARAM(justification), "o",
                                 SD_BUS_PARAM(request), bus_method_enroll_host, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("RemoveHost", "ss", SD_BUS_PARAM(host) SD_BUS_PARAM(justification), "o",
                                 SD_BUS_PARAM(request), bus_method_remove_host, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("ListHosts", NULL, , "a(sss)", SD_BUS_PARAM(hosts), bus_method_list_hosts,
                                 SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

int bus_manager_attach(sd_bus *bus, BusManager *m) {
        int r;

        r = sd_bus_add_object_vtable(bus, NULL, BUS_MANAGER_PATH, BUS_MANAGER_INTERFACE, manager_vtable, m);
        if (r < 0)
                return r;
        r = sd_bus_add_fallback_vtable(bus, NULL, BUS_GROUP_PATH_PREFIX, BUS_GROUP_INTERFACE, bus_group_vtable,
                                       bus_group_find, m);
        if (r < 0)
                return r;
        r = sd_bus_add_node_enumerator(bus, NULL, BUS_GROUP_PATH_PREFIX, bus_group_enumerate, m);
        if (r < 0)
                return r;
        r = sd_bus_add_fallback_vtable(bus, NULL, BUS_REQUEST_PATH_PREFIX, BUS_REQUEST_INTERFACE, bus_request_vtable,
                                       bus_request_find, m);
        if (r < 0)
                return r;
        r = sd_bus_add_node_enumerator(bus, NULL, BUS_REQUEST_PATH_PREFIX, bus_request_enumerate, m);
        if (r < 0)
                return r;
        return sd_bus_add_object_manager(bus, NULL, BUS_MANAGER_PATH);
}
