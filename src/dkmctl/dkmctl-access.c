/* SPDX-License-Identifier: MIT */
/* dkmctl's break-glass verbs: request access to a group's keys, list and show requests (of every kind: access,
 * retire, protector-add, protector-remove, purge), approve, deny, cancel, revoke. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dkmctl-output.h"
#include "dkmctl.h"
#include "json-writer.h"
#include "parse.h"

/* Justifications are at most 512 bytes; a table shows the start, --json and show the whole. */
#define JUSTIFICATION_COLUMNS 40U

int parse_request_id(const char *s, uint64_t *ret) {
        /* 0 and ids dkmd does not have are dkmd's to refuse (NoSuchRequest). */
        if (parse_uint64(s, UINT64_MAX, ret) < 0)
                return fail_local(EXIT_USAGE, "'%s' is not a request id.", s);
        return 0;
}

/* ClosedBy is a person's uid (root included: admins revoke) for a denial, a cancellation or a
 * revocation; dkmd itself closes the others (expiry, end, done, failed) and says 0. */
static bool closed_by_person(const CtlRequest *q) {
        return q->closed_usec > 0 && (strcmp(q->state, "denied") == 0 || strcmp(q->state, "cancelled") == 0 ||
                                      strcmp(q->state, "revoked") == 0);
}

static void json_user(JsonWriter *w, const char *key, uint32_t uid) {
        char name[FORMAT_MAX];

        json_field_string(w, key, lookup_user(uid, name) ? name : NULL);
}

static bool is_protector_kind(const CtlRequest *q) {
        return strncmp(q->kind, "protector-", 10) == 0;
}

/* What the request is about: its key group, else its target (a protector), else "" (purge: the store). */
static const char *request_object(const CtlRequest *q) {
        if (q->group && q->group[0])
                return q->group;
        return q->target ?: "";
}

/* The JSON shape of a request (docs/DKMCTL.md): the D-Bus properties in snake_case, user names
 * beside uids, 0 for "none" as null. full: every property (show), else ListRequests' fields. */
void json_request(JsonWriter *w, const CtlRequest *q, bool full) {
        json_object_begin(w);
        json_field_uint(w, "id", q->id);
        json_field_string(w, "path", q->path);
        json_field_string(w, "kind", q->kind);
        json_field_string(w, "group", q->group);
        json_field_uint(w, "requester", q->requester);
        json_user(w, "requester_name", q->requester);
        json_field_string(w, "state", q->state);
        json_field_string(w, "justification", q->justification ?: "");
        json_field_uint_or_null(w, "expires_usec", q->expires_usec);
        if (full) {
                json_field_string(w, "target", q->target ?: "");
                json_field_uint_or_null(w, "generation", q->generation);
                json_field_uint(w, "duration_usec", q->duration_usec);
                json_field_uint_or_null(w, "created_usec", q->created_usec);
                json_field_uint_or_null(w, "deadline_usec", q->deadline_usec);
                json_field_strv(w, "approval_groups", q->approval_groups);
                json_key(w, "approvals");
                json_array_begin(w);
                for (size_t i = 0; i < q->n_approvals; i++) {
                        json_object_begin(w);
                        json_field_uint(w, "level", q->approvals[i].level);
                        json_field_uint(w, "uid", q->approvals[i].uid);
                        json_user(w, "user", q->approvals[i].uid);
                        json_field_uint(w, "usec", q->approvals[i].usec);
                        json_object_end(w);
                }
                json_array_end(w);
                json_field_uint_or_null(w, "granted_usec", q->granted_usec);
                json_field_uint_or_null(w, "closed_usec", q->closed_usec);
                json_key(w, "closed_by");
                if (closed_by_person(q))
                        json_uint(w, q->closed_by);
                else
                        json_null(w);
                json_field_string(w, "reason", q->reason ?: "");
        }
        json_object_end(w);
}

void json_print_request(const CtlRequest *q) {
        JsonWriter w;

        json_init(&w, stdout);
        json_request(&w, q, true);
        json_finish(&w);
}

static size_t strv_length(char **l) {
        size_t n = 0;

        while (l && l[n])
                n++;
        return n;
}

static const char *level_group(const CtlRequest *q, size_t level) {
        return level < strv_length(q->approval_groups) ? q->approval_groups[level] : "?";
}

/* What a request waits for, or what it came to, in a few words. */
void format_request_outcome(const CtlRequest *q, char *buf, size_t size) {
        char when[FORMAT_MAX], left[FORMAT_MAX];
        size_t levels = strv_length(q->approval_groups);
        uint64_t now = now_realtime_usec();

        if (strcmp(q->state, "pending") == 0)
                snprintf(buf, size, "pending: level %zu of %zu (%s) may approve until %s (%s)", q->n_approvals + 1,
                         levels, level_group(q, q->n_approvals), format_time_local(q->deadline_usec, when),
                         format_time_left(q->deadline_usec, now, left));
        else if (strcmp(q->state, "granted") == 0)
                snprintf(buf, size, "granted until %s (%s)", format_time_local(q->expires_usec, when),
                         format_time_left(q->expires_usec, now, left));
        else if (strcmp(q->state, "scheduled") == 0)
                snprintf(buf, size,
                         "scheduled: the store is purged at %s (%s) unless it is cancelled (dkmctl purge cancel %llu)",
                         format_time_local(q->expires_usec, when), format_time_left(q->expires_usec, now, left),
                         (unsigned long long) q->id);
        else if (strcmp(q->state, "done") == 0 && strcmp(q->kind, "retire") == 0)
                snprintf(buf, size, "done: generation %u of %s is retired", (unsigned) q->generation, q->group);
        else if (strcmp(q->state, "done") == 0 && strcmp(q->kind, "protector-add") == 0)
                snprintf(buf, size, "done: protector %s is added", q->target ?: "");
        else if (strcmp(q->state, "done") == 0 && strcmp(q->kind, "protector-remove") == 0)
                snprintf(buf, size, "done: protector %s is removed", q->target ?: "");
        else if (strcmp(q->state, "done") == 0 && strcmp(q->kind, "purge") == 0)
                snprintf(buf, size, "done: the store is purged; nothing in it can be decrypted any more");
        else
                snprintf(buf, size, "%s", q->state);
}

/* ---- access request ---- */

int verb_access_request(char **args) {
        _cleanup_ctl_bus_ CtlBus *b = NULL;
        _cleanup_(ctl_error_done) CtlError e = CTL_ERROR_NULL;
        _cleanup_(ctl_request_done) CtlRequest q = {};
        _cleanup_free_ char *path = NULL;
        char duration[FORMAT_MAX], outcome[256];
        int r;

        r = connect_bus(&b);
        if (r != 0)
                return r;
        r = ctl_request_access(b, args[0], arg.justification, arg.duration_usec, &path, &e);
        if (r < 0)
                return fail(r, &e);
        r = ctl_request_get_at(b, path, &q, &e);
        if (r < 0) {
                /* The request stands: say which one, so it can be followed up. */
                fprintf(stderr, "dkmctl: %s: filed %s, but reading it back failed: %s\n", arg.verb, path,
                        e.message ?: strerror(-r));
                return EXIT_FAILURE;
        }
        if (arg.json) {
                json_print_request(&q);
                return 0;
        }
        format_duration_usec(q.duration_usec, duration, sizeof(duration));
        format_request_outcome(&q, outcome, sizeof(outcome));
        printf("Request %llu: access to %s for %s, %s.\n", (unsigned long long) q.id, q.group, duration, outcome);
        printf("Object path: %s\n", q.path);
        return 0;
}

/* ---- access list ---- */

int verb_access_list(char **args) {
        static const char *const headers[] = {
                "ID", "KIND", "GROUP", "REQUESTER", "STATE", "EXPIRES", "JUSTIFICATION"
        };
        _cleanup_ctl_bus_ CtlBus *b = NULL;
        _cleanup_(ctl_error_done) CtlError e = CTL_ERROR_NULL;
        _cleanup_table_ Table *t = NULL;
        CtlRequest *list = NULL;
        size_t n = 0;
        int r;

        r = connect_bus(&b);
        if (r != 0)
                return r;
        r = ctl_requests_list(b, &list, &n, &e);
        if (r < 0)
                return fail(r, &e);
        if (arg.json) {
                JsonWriter w;

                json_init(&w, stdout);
                json_object_begin(&w);
                json_key(&w, "requests");
                json_array_begin(&w);
                for (size_t i = 0; i < n; i++)
                        json_request(&w, &list[i], false);
                json_array_end(&w);
                json_object_end(&w);
                json_finish(&w);
                ctl_requests_free(list, n);
                return 0;
        }
        t = table_new(ELEMENTSOF(headers), headers);
        r = t ? 0 : -ENOMEM;
        for (size_t i = 0; r >= 0 && i < n; i++) {
                const CtlRequest *q = &list[i];
                char buf[FORMAT_MAX];
                _cleanup_free_ char *why = escape_for_terminal(q->justification, JUSTIFICATION_COLUMNS);

                r = why ? table_addf(t, "%llu", (unsigned long long) q->id) : -ENOMEM;
                if (r >= 0)
                        r = table_add(t, q->kind);
                if (r >= 0)
                        r = table_add(t, q->group[0] ? q->group : "-"); /* a store-wide kind */
                if (r >= 0)
                        r = table_add(t, format_user(q->requester, buf));
                if (r >= 0)
                        r = table_add(t, q->state);
                if (r >= 0)
                        r = table_add(t, format_time_local(q->expires_usec, buf));
                if (r >= 0)
                        r = table_add(t, why);
        }
        ctl_requests_free(list, n);
        if (r < 0)
                return fail_oom();
        table_print(t, stdout, arg.legend);
        if (arg.legend)
                printf("\n%zu request%s listed.\n", n, n == 1 ? "" : "s");
        return 0;
}

/* ---- access show ---- */

static int approvals_table(const CtlRequest *q) {
        static const char *const headers[] = { "LEVEL", "APPROVER GROUP", "APPROVED BY", "AT" };
        _cleanup_table_ Table *t = table_new(ELEMENTSOF(headers), headers);
        size_t levels = strv_length(q->approval_groups);
        int r = t ? 0 : -ENOMEM;

        for (size_t level = 0; r >= 0 && level < levels; level++) {
                const CtlApproval *a = NULL;
                char who[FORMAT_MAX], when[FORMAT_MAX];

                for (size_t i = 0; i < q->n_approvals; i++)
                        if (q->approvals[i].level == level)
                                a = &q->approvals[i];
                r = table_addf(t, "%zu", level + 1);
                if (r >= 0)
                        r = table_add(t, q->approval_groups[level]);
                if (r >= 0 && a)
                        r = table_addf(t, "%s (%u)", format_user(a->uid, who), (unsigned) a->uid);
                else if (r >= 0)
                        r = table_add(t, "-");
                if (r >= 0)
                        r = table_add(t, a ? format_time_local(a->usec, when) : "-");
        }
        if (r < 0)
                return fail_oom();
        table_print(t, stdout, arg.legend);
        if (arg.legend)
                printf("\n%zu of %zu level%s approved.\n", q->n_approvals, levels, levels == 1 ? "" : "s");
        return 0;
}

static int print_request(const CtlRequest *q) {
        char buf[FORMAT_MAX], when[FORMAT_MAX], left[FORMAT_MAX];
        _cleanup_free_ char *why = escape_for_terminal(q->justification ?: "", 0);
        _cleanup_free_ char *reason = escape_for_terminal(q->reason ?: "", 0);
        uint64_t now = now_realtime_usec();

        if (!why || !reason)
                return fail_oom();
        printf("Id:              %llu\n", (unsigned long long) q->id);
        printf("Kind:            %s\n", q->kind);
        if (q->group[0])
                printf("Group:           %s\n", q->group);
        if (q->target && q->target[0])
                printf("%s%s\n", is_protector_kind(q) ? "Protector:       " : "Target:          ", q->target);
        else if (!q->group[0])
                printf("Scope:           the whole store\n");
        if (strcmp(q->kind, "retire") == 0)
                printf("Generation:      %u\n", (unsigned) q->generation);
        printf("Requester:       %s (%u)\n", format_user(q->requester, buf), (unsigned) q->requester);
        printf("Justification:   %s\n", why);
        if (strcmp(q->kind, "access") == 0) {
                format_duration_usec(q->duration_usec, buf, sizeof(buf));
                printf("Duration:        %s\n", buf);
        }
        printf("State:           %s\n", q->state);
        printf("Created:         %s\n", format_time_local(q->created_usec, when));
        if (strcmp(q->state, "pending") == 0)
                printf("Deadline:        %s (%s)\n", format_time_local(q->deadline_usec, when),
                       format_time_left(q->deadline_usec, now, left));
        else
                printf("Deadline:        %s\n", format_time_local(q->deadline_usec, when));
        if (q->granted_usec)
                printf("%s%s\n", strcmp(q->kind, "access") == 0 ? "Granted:         " : "Approved:        ",
                       format_time_local(q->granted_usec, when));
        if (q->expires_usec && strcmp(q->kind, "purge") == 0) {
                /* A purge's ExpiresUSec is when it destroys the keys: its approval plus the purge delay. */
                if (strcmp(q->state, "scheduled") == 0)
                        printf("Purges at:       %s (%s)\n", format_time_local(q->expires_usec, when),
                               format_time_left(q->expires_usec, now, left));
                else
                        printf("%s%s\n", strcmp(q->state, "done") == 0 ? "Purged at:       " : "Purge was due:   ",
                               format_time_local(q->expires_usec, when));
        } else if (q->expires_usec && strcmp(q->state, "granted") == 0)
                printf("Expires:         %s (%s)\n", format_time_local(q->expires_usec, when),
                       format_time_left(q->expires_usec, now, left));
        else if (q->expires_usec)
                printf("Expires:         %s\n", format_time_local(q->expires_usec, when));
        if (q->closed_usec) {
                printf("Closed:          %s\n", format_time_local(q->closed_usec, when));
                if (closed_by_person(q))
                        printf("Closed by:       %s (%u)\n", format_user(q->closed_by, buf), (unsigned) q->closed_by);
                else
                        printf("Closed by:       dkmd\n");
        }
        if (reason[0])
                printf("Reason:          %s\n", reason);
        printf("Object path:     %s\n\n", q->path);
        return approvals_table(q);
}

int verb_access_show(char **args) {
        _cleanup_ctl_bus_ CtlBus *b = NULL;
        _cleanup_(ctl_error_done) CtlError e = CTL_ERROR_NULL;
        _cleanup_(ctl_request_done) CtlRequest q = {};
        uint64_t id;
        int r;

        r = parse_request_id(args[0], &id);
        if (r != 0)
                return r;
        r = connect_bus(&b);
        if (r != 0)
                return r;
        r = ctl_request_get(b, id, &q, &e);
        if (r < 0)
                return fail(r, &e);
        if (arg.json) {
                json_print_request(&q);
                return 0;
        }
        return print_request(&q);
}

/* ---- approve, deny, cancel, revoke ---- */

typedef enum RequestAction {
        ACTION_APPROVE,
        ACTION_DENY,
        ACTION_CANCEL,
        ACTION_REVOKE,
} RequestAction;

/* After the call succeeded: the request as it is now (or a line saying the step stands). */
static int request_step(char **args, RequestAction action) {
        static const char *const done[] = {
                [ACTION_APPROVE] = "Approved",
                [ACTION_DENY] = "Denied",
                [ACTION_CANCEL] = "Cancelled",
                [ACTION_REVOKE] = "Revoked",
        };
        _cleanup_ctl_bus_ CtlBus *b = NULL;
        _cleanup_(ctl_error_done) CtlError e = CTL_ERROR_NULL;
        _cleanup_(ctl_request_done) CtlRequest q = {};
        char outcome[256], requester[FORMAT_MAX];
        uint64_t id;
        int r;

        r = parse_request_id(args[0], &id);
        if (r != 0)
                return r;
        r = connect_bus(&b);
        if (r != 0)
                return r;
        switch (action) {
        case ACTION_APPROVE:
                r = ctl_request_approve(b, id, &e);
                break;
        case ACTION_DENY:
                r = ctl_request_deny(b, id, arg.reason, &e);
                break;
        case ACTION_CANCEL:
                r = ctl_request_cancel(b, id, &e);
                break;
        case ACTION_REVOKE:
                r = ctl_request_revoke(b, id, &e);
                break;
        }
        if (r < 0)
                return fail(r, &e);
        r = ctl_request_get(b, id, &q, &e);
        if (r < 0) {
                fprintf(stderr, "dkmctl: %s: done, but reading request %llu back failed: %s\n", arg.verb,
                        (unsigned long long) id, e.message ?: strerror(-r));
                return EXIT_FAILURE;
        }
        /* The last approval grants or retires before dkmd replies; if that could not be carried
         * out, the request says so (failed, with a reason) and this must not pass for success. */
        if (action == ACTION_APPROVE && strcmp(q.state, "failed") == 0) {
                _cleanup_free_ char *reason = escape_for_terminal(q.reason ?: "", 0);

                return fail_local(EXIT_FAILURE, "request %llu was approved, but dkmd could not carry it out: %s",
                                  (unsigned long long) id, reason ?: "");
        }
        if (arg.json) {
                json_print_request(&q);
                return 0;
        }
        format_request_outcome(&q, outcome, sizeof(outcome));
        printf("%s request %llu (%s%s%s, asked by %s): %s.\n", done[action], (unsigned long long) id, q.kind,
               request_object(&q)[0] ? " " : "", request_object(&q), format_user(q.requester, requester), outcome);
        return 0;
}

int verb_access_approve(char **args) {
        return request_step(args, ACTION_APPROVE);
}

int verb_access_deny(char **args) {
        return request_step(args, ACTION_DENY);
}

int verb_access_cancel(char **args) {
        return request_step(args, ACTION_CANCEL);
}

int verb_access_revoke(char **args) {
        return request_step(args, ACTION_REVOKE);
}
