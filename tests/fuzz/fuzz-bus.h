/* SPDX-License-Identifier: MIT */
/* fuzz-bus: building one method call of dkmd's API from fuzz input (fuzz-bus-args.c). */
#pragma once

#include <sys/types.h>
#include <systemd/sd-bus.h>

#include "fuzz.h"

/* Existing Unix groups without login users (fuzz-bus.c finds them): gids and names that CreateGroup
 * and ApprovalGroups accept, so calls get past the first checks. */
#define FUZZ_BUS_GOOD_GIDS_MAX 4U
extern gid_t fuzz_bus_good_gids[FUZZ_BUS_GOOD_GIDS_MAX];
extern char *fuzz_bus_good_group_names[FUZZ_BUS_GOOD_GIDS_MAX];
extern size_t fuzz_bus_n_good_gids;

/* The groups fuzz-bus.c creates in every fresh state. */
#define FUZZ_BUS_GROUP_NAME        "mail-creds"
#define FUZZ_BUS_SECOND_GROUP_NAME "db.backup_2"

typedef enum FuzzBusTarget {
        TARGET_MANAGER,
        TARGET_GROUP,
        TARGET_REQUEST,
        TARGET_ANY,
} FuzzBusTarget;

typedef struct FuzzBusMethod {
        const char *interface;
        const char *member;
        const char *signature; /* what it takes: "" none */
        FuzzBusTarget target;
} FuzzBusMethod;

/* Every method of org.dkm.KeyManager1's three interfaces, and the standard ones. */
const FuzzBusMethod *fuzz_bus_pick_method(FuzzInput *in);
/* An object path: mostly of the kind the method wants (a seeded group, a request id), or any. */
char *fuzz_bus_pick_path(FuzzInput *in, FuzzBusTarget want);
/* The method's own signature with fuzzed values (strings UTF-8, now and then 64 KiB long). */
int fuzz_bus_append_args(sd_bus_message *m, const FuzzBusMethod *method, FuzzInput *in);
/* 0 to 4 arguments of random types: a signature the method does not take. */
int fuzz_bus_append_wrong(sd_bus_message *m, FuzzInput *in);
