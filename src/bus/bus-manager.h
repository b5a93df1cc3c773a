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
void bus_emit_generation_changed(sd_bus *bus, const StoreGroup *g, uint32_t number, GenerationState state);
void bus_emit_policy_changed(sd_bus *bus, const StoreGroup *g);

/* Shared by the manager and group vtables (bus-group.c, bus-manager.c). */
int bus_group_path(const char *name, char **ret);
int bus_check_admin(BusManager *m, sd_bus_message *msg, const char *what, sd_bus_error *error);
/* Reads an a{sv} of policy options into *policy (and *alg when alg is not NULL, which only
 * CreateGroup allows). Keys not given keep their value. Unknown keys, wrong types and values
 * out of range are InvalidArgument. */
int bus_read_policy_options(sd_bus_message *msg, CryptAlg *alg, StoreGroupPolicy *policy, sd_bus_error *error);

extern const sd_bus_vtable bus_group_vtable[];
int bus_group_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **found,
                   sd_bus_error *error);
int bus_group_enumerate(sd_bus *bus, const char *prefix, void *userdata, char ***ret, sd_bus_error *error);
