/* SPDX-License-Identifier: MIT */
/* One method call: its caller from the bus credentials, handed to the manager for auditing, and
 * the audited refusal. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "bus-errors.h"
#include "bus-manager.h"

#define bus_log(fmt, ...) fprintf(stderr, "dkmd: " fmt "\n", ##__VA_ARGS__)

int bus_call_begin(BusCall *call, BusManager *m, sd_bus_message *msg, const char *method, sd_bus_error *error) {
        int r;

        *call = (BusCall) { .m = m, .msg = msg, .method = method };
        r = bus_caller_get(msg, &call->caller);
        if (r < 0) {
                /* Audited as uid -1: someone the bus could not name tried. */
                call->caller = (BusCaller) { .uid = (uid_t) -1 };
        } else
                call->known = true;
        call->manager_caller = (ManagerCaller) {
                .uid = call->caller.uid,
                .pid = call->caller.pid,
                .comm = call->caller.comm,
                .gids = call->caller.gids,
                .n_gids = call->caller.n_gids,
        };
        m->manager->caller = &call->manager_caller;
        if (!call->known)
                return bus_call_refuse(call, error, r == -ENOMEM ? r : -EACCES, "%s: the bus cannot say who called",
                                       method);
        return 0;
}

void bus_call_end(BusCall *call) {
        if (call->m && call->m->manager->caller == &call->manager_caller)
                call->m->manager->caller = NULL;
        bus_caller_done(&call->caller);
}

bool bus_call_is_admin(BusCall *call) {
        return call->known && bus_auth_check_admin(&call->m->auth, call->msg, &call->caller) >= 0;
}

int bus_call_require_admin(BusCall *call, sd_bus_error *error) {
        if (bus_call_is_admin(call))
                return 0;
        return bus_call_refuse(call, error, -EACCES, "%s", call->method);
}

void bus_call_audit_refusal(BusCall *call, const sd_bus_error *error) {
        bus_log("refused %s to uid %d (%s): %s", call->method,
                call->caller.uid == (uid_t) -1 ? -1 : (int) call->caller.uid,
                sd_bus_message_get_sender(call->msg) ?: "?", error->name ?: "?");
        /* The refusal stands whether or not it could be recorded; when the audit log is what
         * failed, trying again would only fail again. */
        if (!sd_bus_error_has_name(error, BUS_ERROR_AUDIT_FAILED))
                (void) manager_audit(call->m->manager, "refused-call", AUDIT_OUTCOME_REFUSED,
                                     sd_bus_message_get_path(call->msg), "%s: %s: %s", call->method,
                                     error->name ?: "?", error->message ?: "");
}

int bus_call_refuse(BusCall *call, sd_bus_error *error, int r, const char *fmt, ...) {
        char what[256];
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(what, sizeof(what), fmt, ap);
        va_end(ap);
        r = bus_error_errno(error, r, "%s", what);
        bus_call_audit_refusal(call, error);
        return r;
}
