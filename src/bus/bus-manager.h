/* SPDX-License-Identifier: MIT */
/* org.dkm.KeyManager1 on the bus: the manager object, one object per key group, their vtables. */
#pragma once

#include <systemd/sd-bus.h>

#include "bus-auth.h"
#include "store.h"

#define BUS_SERVICE_NAME "org.dkm.KeyManager1"
#define BUS_MANAGER_PATH "/org/dkm/KeyManager1"
#define BUS_MANAGER_INTERFACE "org.dkm.KeyManager1"
#define BUS_GROUP_PATH_PREFIX "/org/dkm/KeyManager1/group"
#define BUS_GROUP_INTERFACE "org.dkm.KeyManager1.Group"

/* What the bus objects act on. Owned by the daemon's context, which outlives the bus objects. */
typedef struct BusManager {
        Store *store;        /* unlocked at start if a protector allowed it */
        BusAuth auth;        /* who may mutate */
} BusManager;

/* Register the vtables, node enumerator and ObjectManager on bus. Does not take the name. */
int bus_manager_attach(sd_bus *bus, BusManager *m) __attribute__((warn_unused_result));
