/* SPDX-License-Identifier: MIT */
/* org.dkm.KeyManager1 on the bus: the manager object, one object per key group, their vtables
 * and signals. Arguments are checked and callers authorized here; the work is src/manager's. */
#pragma once

#include <systemd/sd-bus.h>

#include "bus-auth.h"
#include "manager.h"

#define BUS_SERVICE_NAME "org.dkm.KeyManager1"
#define BUS_MANAGER_PATH "/org/dkm/KeyManager1"
#define BUS_MANAGER_INTERFACE "org.dkm.KeyManager1"
#define BUS_GROUP_PATH_PREFIX "/org/dkm/KeyManager1/group"
#define BUS_GROUP_INTERFACE "org.dkm.KeyManager1.Group"
#define BUS_REQUEST_PATH_PREFIX "/org/dkm/KeyManager1/request"
#define BUS_REQUEST_INTERFACE "org.dkm.KeyManager1.Request"

/* Re-reads the groups.d drop-ins and applies them; problems as "PATH:LINE: what" strings. */
typedef int (*BusReloadFunc)(void *userdata, char ***ret_problems);

/* What the bus objects act on. Owned by the daemon's context, which outlives the bus objects. */
typedef struct BusManager {
        Manager *manager;
        BusAuth auth; /* who may mutate */
        BusReloadFunc reload;
        void *reload_userdata;
} BusManager;

/* Register the vtables, node enumerator and ObjectManager on bus. Does not take the name. */
int bus_manager_attach(sd_bus *bus, BusManager *m) __attribute__((warn_unused_result));

/* Signals for the manager's events; dkmd forwards its ManagerEvents here. */
void bus_emit_group_added(sd_bus *bus, const StoreGroup *g);
void bus_emit_fleet_changed(sd_bus *bus);
void bus_emit_generation_changed(sd_bus *bus, const StoreGroup *g, uint32_t number, GenerationState state);
void bus_emit_policy_changed(sd_bus *bus, const StoreGroup *g);

/* One method call (bus-call.c): who made it, as the bus says, handed to the manager for the
 * audit records of what the call changes. Declare with _cleanup_(bus_call_end). */
typedef struct BusCall {
        BusManager *m;
        sd_bus_message *msg;
        const char *method;
        BusCaller caller;
        ManagerCaller manager_caller;
        bool known; /* the bus said who the caller is */
} BusCall;

/* Finds the caller and makes it the manager's current caller. An unknown caller is refused
 * (AccessDenied) and audited. */
int bus_call_begin(BusCall *call, BusManager *m, sd_bus_message *msg, const char *method, sd_bus_error *error)
        __attribute__((warn_unused_result));
void bus_call_end(BusCall *call);
/* AccessDenied (audited) unless the caller is an admin (bus_auth_check_admin()). */
int bus_call_require_admin(BusCall *call, sd_bus_error *error) __attribute__((warn_unused_result));
bool bus_call_is_admin(BusCall *call);
/* Sets the named error for r, writes a "refused-call" audit record naming the method and the
 * error, returns r. For refusals the manager has not audited itself. */
int bus_call_refuse(BusCall *call, sd_bus_error *error, int r, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
/* The same for an error already set (e.g. by bus_read_policy_options()). */
void bus_call_audit_refusal(BusCall *call, const sd_bus_error *error);

/* Shared by the vtables (bus-group.c, bus-manager.c, bus-request.c). */
int bus_group_path(const char *name, char **ret);
int bus_request_path(uint64_t id, char **ret);
/* gids as an "as" of group names (a gid without a name as its number). */
int bus_append_gid_names(sd_bus_message *reply, const gid_t *gids, size_t n);
/* Reads an a{sv} of policy options into *policy (and *alg when alg is not NULL, which only
 * CreateGroup allows). Keys not given keep their value. Unknown keys, wrong types and values
 * out of range are InvalidArgument. */
int bus_read_policy_options(sd_bus_message *msg, CryptAlg *alg, StoreGroupPolicy *policy, sd_bus_error *error);

void bus_emit_request_changed(sd_bus *bus, const AccessRequest *r, bool added);

extern const sd_bus_vtable bus_request_vtable[];
int bus_request_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **found,
                     sd_bus_error *error);
int bus_request_enumerate(sd_bus *bus, const char *prefix, void *userdata, char ***ret, sd_bus_error *error);
/* Manager methods RequestAccess, ListRequests, GetRequest. */
int bus_method_request_access(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int bus_method_list_requests(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int bus_method_get_request(sd_bus_message *msg, void *userdata, sd_bus_error *error);

extern const sd_bus_vtable bus_group_vtable[];
int bus_group_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **found,
                   sd_bus_error *error);
int bus_group_enumerate(sd_bus *bus, const char *prefix, void *userdata, char ***ret, sd_bus_error *error);

/* Manager methods and properties of the root key's protectors and purge (bus-protector.c). */
int bus_method_list_protectors(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int bus_method_check_protectors(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int bus_method_add_protector(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int bus_method_remove_protector(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int bus_method_purge(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int bus_store_property_get(sd_bus *bus, const char *path, const char *interface, const char *property,
                           sd_bus_message *reply, void *userdata, sd_bus_error *error);
void bus_emit_store_state_changed(sd_bus *bus);

/* Manager methods of the fleet's hosts (bus-fleet.c). */
int bus_method_enroll_host(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int bus_method_remove_host(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int bus_method_list_hosts(sd_bus_message *msg, void *userdata, sd_bus_error *error);
