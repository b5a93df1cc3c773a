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

/* The sender of a message as the bus knows it: recorded by dbus-daemon when it connected. */
typedef struct BusCaller {
        uid_t uid;         /* effective uid, from sd-bus (never augmented from /proc) */
        pid_t pid;         /* from dbus-daemon; 0 if it did not say */
        char comm[16];     /* /proc/<pid>/comm at the time of the call: informative only, for the audit */
        gid_t *gids;       /* primary and supplementary, from dbus-daemon (SO_PEERGROUPS) */
        size_t n_gids;
        bool has_gids;     /* false: the bus did not report groups; no membership is vouched for */
} BusCaller;

/* -EACCES if the bus cannot say who sent m. */
int bus_caller_get(sd_bus_message *m, BusCaller *ret) __attribute__((warn_unused_result));
void bus_caller_done(BusCaller *c);
bool bus_caller_in_group(const BusCaller *c, gid_t gid);

/* 0 if caller (the sender of m) may call a mutating method: euid 0, or the admin gid among its
 * groups, or else polkit (when it runs on the bus) authorizes the action
 * org.dkm.keymanager1.manage for it. -EACCES otherwise. */
int bus_auth_check_admin(const BusAuth *a, sd_bus_message *m, const BusCaller *caller)
        __attribute__((warn_unused_result));
