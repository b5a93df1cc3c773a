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
#define BUS_ERROR_NO_SUCH_GENERATION "org.dkm.KeyManager1.Error.NoSuchGeneration"
#define BUS_ERROR_GENERATION_ACTIVE "org.dkm.KeyManager1.Error.GenerationActive"
#define BUS_ERROR_INVALID_STATE "org.dkm.KeyManager1.Error.InvalidState"
#define BUS_ERROR_HUMAN_MEMBERS "org.dkm.KeyManager1.Error.HumanMembers"
#define BUS_ERROR_ROLLOVER_PENDING "org.dkm.KeyManager1.Error.RolloverPending"
#define BUS_ERROR_NO_APPROVERS "org.dkm.KeyManager1.Error.NoApprovers"
#define BUS_ERROR_JUSTIFICATION_REQUIRED "org.dkm.KeyManager1.Error.JustificationRequired"
#define BUS_ERROR_DURATION_TOO_LONG "org.dkm.KeyManager1.Error.DurationTooLong"
#define BUS_ERROR_ALREADY_MEMBER "org.dkm.KeyManager1.Error.AlreadyMember"
#define BUS_ERROR_TOO_MANY_REQUESTS "org.dkm.KeyManager1.Error.TooManyRequests"
#define BUS_ERROR_NO_SUCH_REQUEST "org.dkm.KeyManager1.Error.NoSuchRequest"
#define BUS_ERROR_SELF_APPROVAL "org.dkm.KeyManager1.Error.SelfApproval"
#define BUS_ERROR_DUPLICATE_APPROVER "org.dkm.KeyManager1.Error.DuplicateApprover"
#define BUS_ERROR_NOT_APPROVER "org.dkm.KeyManager1.Error.NotApprover"
#define BUS_ERROR_REQUEST_EXPIRED "org.dkm.KeyManager1.Error.RequestExpired"
#define BUS_ERROR_AUDIT_FAILED "org.dkm.KeyManager1.Error.AuditFailed"
#define BUS_ERROR_CUSTOMER_KEY_WITHDRAWN "org.dkm.KeyManager1.Error.CustomerKeyWithdrawn"
#define BUS_ERROR_PURGE_SCHEDULED "org.dkm.KeyManager1.Error.PurgeScheduled"
#define BUS_ERROR_PURGED "org.dkm.KeyManager1.Error.Purged"
#define BUS_ERROR_LAST_PROTECTOR "org.dkm.KeyManager1.Error.LastProtector"
#define BUS_ERROR_NO_SUCH_PROTECTOR "org.dkm.KeyManager1.Error.NoSuchProtector"
#define BUS_ERROR_PROTECTOR_EXISTS "org.dkm.KeyManager1.Error.ProtectorExists"
#define BUS_ERROR_PROTECTOR_UNAVAILABLE "org.dkm.KeyManager1.Error.ProtectorUnavailable"
#define BUS_ERROR_PIN_REFUSED "org.dkm.KeyManager1.Error.PinRefused"
#define BUS_ERROR_PCR_MISMATCH "org.dkm.KeyManager1.Error.PcrMismatch"
#define BUS_ERROR_FLEET_CONFLICT "org.dkm.KeyManager1.Error.FleetConflict"
#define BUS_ERROR_FLEET_UNAVAILABLE "org.dkm.KeyManager1.Error.FleetUnavailable"
#define BUS_ERROR_NOT_IN_FLEET "org.dkm.KeyManager1.Error.NotInFleet"
#define BUS_ERROR_NO_SUCH_HOST "org.dkm.KeyManager1.Error.NoSuchHost"

/* Internal codes for refusals that have no natural errno (more in manager.h). Chosen from codes
 * the store, loader and sd-bus never return for other reasons, so the mapping stays unambiguous. */
#define BUS_ERRNO_APPROVAL_REQUIRED EKEYREJECTED /* retire needs approvals the policy cannot give */
#define BUS_ERRNO_NO_SUCH_GENERATION ENXIO        /* the store says ENOENT for groups and generations */

/* Set *e to the named error for r (< 0) with a message "what: reason", and return r, so a method
 * handler can "return bus_error_errno(e, r, ...)". Never leaves a generic failure. */
int bus_error_errno(sd_bus_error *e, int r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
