/* SPDX-License-Identifier: MIT */
/* Shared by manager.c and manager-requests.c. */
#pragma once

#include <stdio.h>

#include "manager.h"

/* Only the daemon's layers log; one line per change or refusal, never key material. */
#define manager_log(fmt, ...) fprintf(stderr, "dkmd: " fmt "\n", ##__VA_ARGS__)

#define EMIT(m, event, ...)                                                    \
        do {                                                                   \
                if ((m)->events.event)                                         \
                        (m)->events.event((m)->events.userdata, __VA_ARGS__); \
        } while (0)

/* CLOCK_REALTIME µs. */
uint64_t manager_now_usec(void);

/* The audit object of a group: "group/NAME" into buf (STORE_GROUP_NAME_MAX + 7 bytes or more). */
static inline const char *object_of(const char *group, char buf[static 80]) {
        (void) snprintf(buf, 80, "group/%s", group);
        return buf;
}

void manager_audit_failure(Manager *m, const char *event, const char *object, int error);

/* A store-wide request (protector-add/remove, purge) of m->caller, approved at policy's levels. */
int manager_request_store(Manager *m, AccessKind kind, const char *target, const char *spec,
                          const char *justification, const StorePolicy *policy, uint64_t *ret_id);
/* End every live grant now (the kernel first), closed "revoked" with why. */
void manager_requests_revoke_all(Manager *m, const char *why);
