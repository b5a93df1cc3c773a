/* SPDX-License-Identifier: MIT */
/* Maps negative errno codes from the store, loader and authorization to named D-Bus errors. */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "bus-errors.h"
#include "utf8.h"
#include "access-request.h"
#include "manager.h"

/* One table, so a client can rely on the name: the same errno always gives the same error,
 * whichever method failed. Anything unlisted is a store failure, never a generic D-Bus error. */
static const char *error_name(int r) {
        switch (-r) {
        case ENOENT:
                return BUS_ERROR_NO_SUCH_GROUP;
        case EEXIST:
                return BUS_ERROR_GROUP_EXISTS;
        case EACCES:
        case EPERM:
                return BUS_ERROR_ACCESS_DENIED;
        case EINVAL:
        case ERANGE:
        case E2BIG:
        case EOPNOTSUPP:
                return BUS_ERROR_INVALID_ARGUMENT;
        case BUS_ERRNO_APPROVAL_REQUIRED:
                return BUS_ERROR_APPROVAL_REQUIRED;
        case BUS_ERRNO_NO_SUCH_GENERATION:
                return BUS_ERROR_NO_SUCH_GENERATION;
        case EBUSY:
                return BUS_ERROR_GENERATION_ACTIVE;
        case EALREADY:
        case EKEYREVOKED:
                return BUS_ERROR_INVALID_STATE;
        case MANAGER_ERRNO_HUMAN_MEMBERS:
                return BUS_ERROR_HUMAN_MEMBERS;
        case MANAGER_ERRNO_ROLLOVER_PENDING:
                return BUS_ERROR_ROLLOVER_PENDING;
        case ENOKEY:
                return BUS_ERROR_STORE_LOCKED;
        case ACCESS_ERRNO_NO_APPROVERS:
                return BUS_ERROR_NO_APPROVERS;
        case ACCESS_ERRNO_JUSTIFICATION_REQUIRED:
                return BUS_ERROR_JUSTIFICATION_REQUIRED;
        case ACCESS_ERRNO_DURATION_TOO_LONG:
                return BUS_ERROR_DURATION_TOO_LONG;
        case ACCESS_ERRNO_ALREADY_MEMBER:
                return BUS_ERROR_ALREADY_MEMBER;
        case ACCESS_ERRNO_TOO_MANY_REQUESTS:
                return BUS_ERROR_TOO_MANY_REQUESTS;
        case ACCESS_ERRNO_NO_SUCH_REQUEST:
                return BUS_ERROR_NO_SUCH_REQUEST;
        case ACCESS_ERRNO_SELF_APPROVAL:
                return BUS_ERROR_SELF_APPROVAL;
        case ACCESS_ERRNO_DUPLICATE_APPROVER:
                return BUS_ERROR_DUPLICATE_APPROVER;
        case ACCESS_ERRNO_NOT_APPROVER:
                return BUS_ERROR_NOT_APPROVER;
        case ACCESS_ERRNO_REQUEST_EXPIRED:
                return BUS_ERROR_REQUEST_EXPIRED;
        case MANAGER_ERRNO_AUDIT_FAILED:
                return BUS_ERROR_AUDIT_FAILED;
        case MANAGER_ERRNO_LOAD_FAILED:
        case ENOEXEC:
        case ECHILD:
                return BUS_ERROR_LOAD_FAILED;
        case MANAGER_ERRNO_WITHDRAWN:
                return BUS_ERROR_CUSTOMER_KEY_WITHDRAWN;
        case MANAGER_ERRNO_PURGE_SCHEDULED:
                return BUS_ERROR_PURGE_SCHEDULED;
        case MANAGER_ERRNO_PURGED:
                return BUS_ERROR_PURGED;
        case MANAGER_ERRNO_LAST_PROTECTOR:
                return BUS_ERROR_LAST_PROTECTOR;
        case MANAGER_ERRNO_NO_SUCH_PROTECTOR:
                return BUS_ERROR_NO_SUCH_PROTECTOR;
        case MANAGER_ERRNO_PROTECTOR_EXISTS:
                return BUS_ERROR_PROTECTOR_EXISTS;
        case MANAGER_ERRNO_PROTECTOR_UNAVAILABLE:
                return BUS_ERROR_PROTECTOR_UNAVAILABLE;
        case MANAGER_ERRNO_PIN_REFUSED:
                return BUS_ERROR_PIN_REFUSED;
        case MANAGER_ERRNO_PCR_MISMATCH:
                return BUS_ERROR_PCR_MISMATCH;
        case MANAGER_ERRNO_FLEET_CONFLICT:
                return BUS_ERROR_FLEET_CONFLICT;
        case MANAGER_ERRNO_FLEET_UNAVAILABLE:
                return BUS_ERROR_FLEET_UNAVAILABLE;
        case MANAGER_ERRNO_NOT_IN_FLEET:
                return BUS_ERROR_NOT_IN_FLEET;
        case MANAGER_ERRNO_NO_SUCH_HOST:
                return BUS_ERROR_NO_SUCH_HOST;
        default:
                return BUS_ERROR_STORE_ERROR;
        }
}

static const char *reason(int r) {
        switch (-r) {
        case ENOENT:
                return "no such group";
        case EEXIST:
                return "a group of that name exists";
        case EACCES:
        case EPERM:
                return "only root and members of the admin group may do this";
        case BUS_ERRNO_APPROVAL_REQUIRED:
                return "needs approvals, and the group's policy names no approval level";
        case ACCESS_ERRNO_NO_APPROVERS:
                return "the group's policy names no approval level: break-glass access is off for it";
        case ACCESS_ERRNO_JUSTIFICATION_REQUIRED:
                return "a justification is required";
        case ACCESS_ERRNO_DURATION_TOO_LONG:
                return "the duration must be at least 1 s and at most the group's MaxGrantUSec";
        case ACCESS_ERRNO_ALREADY_MEMBER:
                return "the requester is root or in the group's Unix group, and needs no grant";
        case ACCESS_ERRNO_TOO_MANY_REQUESTS:
                return "too many open requests (8 per requester, 256 in all)";
        case ACCESS_ERRNO_NO_SUCH_REQUEST:
                return "no such request";
        case ACCESS_ERRNO_SELF_APPROVAL:
                return "the requester cannot approve or deny their own request";
        case ACCESS_ERRNO_DUPLICATE_APPROVER:
                return "one person approves at most one level of a request";
        case ACCESS_ERRNO_NOT_APPROVER:
                return "the caller is not in the approver group of this level";
        case ACCESS_ERRNO_REQUEST_EXPIRED:
                return "the request was not approved before its deadline";
        case MANAGER_ERRNO_AUDIT_FAILED:
                return "the audit record could not be written durably, so nothing was done";
        case BUS_ERRNO_NO_SUCH_GENERATION:
                return "the group has no such generation";
        case EBUSY:
                return "it is the active generation; roll over first";
        case EALREADY: /* also ACCESS_ERRNO_REQUEST_CLOSED */
                return "already in that state (a request: closed)";
        case EKEYREVOKED:
                return "the generation is retired";
        case MANAGER_ERRNO_HUMAN_MEMBERS:
                return "a member of the Unix group can log in (a shell in /etc/shells or a uid in the login range); "
                       "key groups are for service accounts, unless the policy sets AllowHumanMembers";
        case MANAGER_ERRNO_ROLLOVER_PENDING:
                return "a generation is already pending; it becomes active after the propagation delay";
        case ENOKEY:
                return "the store is locked: no protector unlocked the root key at start";
        case MANAGER_ERRNO_LOAD_FAILED:
                return "dkm-keyring-helper refused to load the group (see dkmd's log)";
        case ENOEXEC:
                return "dkm-keyring-helper could not be run";
        case MANAGER_ERRNO_WITHDRAWN:
                return "no protector opens the root key any more (the customer key was withdrawn): no key is "
                       "served until it comes back";
        case MANAGER_ERRNO_PURGE_SCHEDULED:
                return "a purge is scheduled: no key is served unless it is cancelled";
        case MANAGER_ERRNO_PURGED:
                return "the store was purged: every key is destroyed";
        case MANAGER_ERRNO_LAST_PROTECTOR:
                return "it is the last protector that can open the store; add another first";
        case MANAGER_ERRNO_NO_SUCH_PROTECTOR:
                return "no such protector";
        case MANAGER_ERRNO_PROTECTOR_EXISTS:
                return "a protector of that name exists";
        case MANAGER_ERRNO_PROTECTOR_UNAVAILABLE:
                return "the protector's device or key cannot be used now (see dkmd's log)";
        case MANAGER_ERRNO_PIN_REFUSED:
                return "the token refused dkmd's PIN (DKM_PKCS11_PIN_FILE in its unit)";
        case MANAGER_ERRNO_PCR_MISMATCH:
                return "the TPM's PCRs no longer match the protector's policy";
        case MANAGER_ERRNO_FLEET_CONFLICT:
                return "another host of the fleet changed the group first; this host adopted its version (look, "
                       "then try again if still needed)";
        case MANAGER_ERRNO_FLEET_UNAVAILABLE:
                return "no directory server of the fleet answers: the fleet's groups cannot change now (the keys "
                       "in the kernel keep working)";
        case MANAGER_ERRNO_NOT_IN_FLEET:
                return "this dkmd is not in a fleet (started without --fleet=)";
        case MANAGER_ERRNO_NO_SUCH_HOST:
                return "the fleet's directory has no entry cn=HOST,ou=hosts with a public key for it (the "
                       "directory's administrators add it: docs/FLEET.md, \"Host enrolment\")";
        default:
                return strerror(-r);
        }
}

/* The message quotes arguments cut to a byte count ("%.64s", and the buffers here): the cut may
 * split a UTF-8 character, and sd-bus cannot send an error whose message is not UTF-8, so the
 * caller would get no answer at all. Each byte that is not part of a valid character becomes '?'. */
static void make_utf8(char *s) {
        unsigned char *p = (unsigned char *) s;
        size_t n = strlen(s);

        while (n > 0) {
                size_t l = utf8_decode(p, n, NULL);

                if (l == 0) {
                        *p = '?';
                        l = 1;
                }
                p += l;
                n -= l;
        }
}

int bus_error_errno(sd_bus_error *e, int r, const char *fmt, ...) {
        char what[256];
        va_list ap;

        if (r >= 0)
                r = -EIO; /* a caller bug; still refuse rather than report success */
        va_start(ap, fmt);
        vsnprintf(what, sizeof(what), fmt, ap);
        va_end(ap);
        make_utf8(what);
        /* An invalid argument's message already says what is wrong with it. */
        if (r == -EINVAL)
                (void) sd_bus_error_setf(e, error_name(r), "%s", what);
        else
                (void) sd_bus_error_setf(e, error_name(r), "%s: %s", what, reason(r));
        return r;
}
