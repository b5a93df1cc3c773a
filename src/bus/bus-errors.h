/* SPDX-License-Identifier: MIT */
/* The named D-Bus errors of org.dkm.KeyManager1 and the one place negative errno codes become them. */
#pragma once

#include <systemd/sd-bus.h>

#define BUS_ERROR_NO_SUCH_GROUP "org.dkm.KeyManager1.Error.NoSuchGroup"
#define BUS_ERROR_GROUP_EXISTS "org.dkm.KeyManager1.Error.GroupExists"
#define BUS_ERROR_ACCESS_DENIED "org.dkm.KeyManager1.Error.AccessDenied"
#define BUS_ERROR_INVALID_ARGUMENT "org.dkm.KeyManager1.Error.InvalidArgument"
#define BUS_ERROR_APPROVAL_REQUIRED "org.dkm.KeyManager1.Error.ApprovalRequired"
#define BUS_ERROR_STORE_LOCKED "org.dkm.KeyManager1.Error.StoreLocked"
#define BUS_ERROR_LOAD_FAILED "org.dkm.KeyManager1.Error.LoadFailed"
#define BUS_ERROR_STORE_ERROR "org.dkm.KeyManager1.Error.StoreError"

/* Internal codes for refusals that have no natural errno. Chosen from codes the store, loader
 * and sd-bus never return for other reasons, so the mapping below stays unambiguous. */
#define BUS_ERRNO_APPROVAL_REQUIRED EKEYREJECTED /* needs the approval workflow (issue 5) */
#define BUS_ERRNO_LOAD_FAILED EREMOTEIO           /* dkm-keyring-helper exited non-zero */

/* Set *e to the named error for r (< 0) with a message "what: reason", and return r, so a method
 * handler can "return bus_error_errno(e, r, ...)". Never leaves a generic failure. */
int bus_error_errno(sd_bus_error *e, int r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
