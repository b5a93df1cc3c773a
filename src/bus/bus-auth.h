/* SPDX-License-Identifier: MIT */
/* Who may mutate: the caller's identity as the bus reports it, never as the arguments claim. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>

typedef struct BusAuth {
        bool has_admin_gid; /* false: only root may mutate */
        gid_t admin_gid;
} BusAuth;

#define BUS_AUTH_POLKIT_SERVICE "org.freedesktop.PolicyKit1"
#define BUS_AUTH_POLKIT_ACTION "org.dkm.keymanager1.manage"

/* 0 if the sender of m may call a mutating method: euid 0, or the admin gid among its primary
 * and supplementary groups, or else polkit (when it runs on the bus) authorizes the action
 * org.dkm.keymanager1.manage for it. -EACCES otherwise, also when the bus could not say who
 * the sender is or which groups it has. ret_uid gets the sender's euid when known. */
int bus_auth_check_admin(const BusAuth *a, sd_bus_message *m, uid_t *ret_uid) __attribute__((warn_unused_result));
