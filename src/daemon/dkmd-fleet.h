/* SPDX-License-Identifier: MIT */
/* dkmd in a fleet (docs/FLEET.md): the directory is the truth for key groups. Every change is
 * pulled, made locally and published conditionally before it is loaded (ManagerFleet); a
 * refreshAndPersist follower brings other hosts' changes into the local store and the kernel. */
#pragma once

#include <stdbool.h>
#include <systemd/sd-event.h>

#include "manager.h"

typedef struct DkmdFleet DkmdFleet;

/* Reads fleet.conf, connects (a directory that does not answer is not fatal: partitioned),
 * checks the directory's store id against the local store's (publishes it when the directory has
 * none and this host holds the root key), and installs this host's protector from its host entry
 * when there is one. Call before the store is unlocked. -EINVAL bad config; -EEXIST the directory
 * belongs to another store. */
int dkmd_fleet_new(const char *config_path, Manager *m, const char *state_dir, DkmdFleet **ret)
        _warn_unused_result_;
/* Starts following the directory on the event loop; sets m->fleet. changed is called when the
 * connection state changes (for the bus). */
int dkmd_fleet_start(DkmdFleet *f, sd_event *event, void (*changed)(void *userdata), void *userdata)
        _warn_unused_result_;
DkmdFleet *dkmd_fleet_free(DkmdFleet *f);

/* "connected", "partitioned" (no directory server answers); the URI being followed, or "". */
const char *dkmd_fleet_state(const DkmdFleet *f);
const char *dkmd_fleet_uri(const DkmdFleet *f);
