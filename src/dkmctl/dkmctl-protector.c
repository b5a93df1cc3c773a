/* SPDX-License-Identifier: MIT */
/* dkmctl's store verbs: list, check, add and remove the root key's protectors; request, cancel and follow a purge. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dkmctl-output.h"
#include "dkmctl.h"
#include "json-writer.h"
#include "parse.h"

/* Justifications are at most 512 bytes; a table shows the start, --json and access show the whole. */
#define JUSTIFICATION_COLUMNS 40U

static size_t strv_length(char **l) {
        size_t n = 0;

        while (l && l[n])
                n++;
        return n;
}

/* ---- protector list, protector check ---- */

static void json_protectors(const CtlProtector *list, size_t n) {
        JsonWriter w;

        json_init(&w, stdout);
        json_object_begin(&w);
        json_key(&w, "protectors");
        json_array_begin(&w);
        for (size_t i = 0; i < n; i++) {
                json_object_begin(&w);
                json_field_string(&w, "name", list[i].name);
                json_field_string(&w, "type", list[i].type);
                json_field_string(&w, "health", list[i].health);
                json_field_string(&w, "detail", list[i].detail);
                json_object_end(&w);
        }
        json_array_end(&w);
        json_object_end(&w);
        json_finish(&w);
}

static int protectors_table(const CtlProtector *list, size_t n, size_t n_ok, bool check) {
        static const char *const headers[] = { "NAME", "TYPE", "HEALTH", "DETAIL" };
        _cleanup_table_ Table *t = table_new(ELEMENTSOF(headers), headers);
        int r = t ? 0 : -ENOMEM;

        for (size_t i = 0; r >= 0 && i < n; i++) {
                /* The detail quotes token labels and URIs, which are the customer's text. */
                _cleanup_free_ char *detail = escape_for_terminal(list[i].detail, 0);

                r = detail ? table_add(t, list[i].name) : -ENOMEM;
                if (r >= 0)
                        r = table_add(t, list[i].type);
                if (r >= 0)
                        r = table_add(t, list[i].health);
                if (r >= 0)
                        r = table_add(t, detail[0] ? detail : "-");
        }
        if (r < 0)
                return fail_oom();
        table_print(t, stdout, arg.legend);
        if (arg.legend)
                printf("\n%zu protector%s %s, %zu ok.\n", n, n == 1 ? "" : "s", check ? "checked" : "listed", n_ok);
        return 0;
}

/* ListProtectors reports dkmd's last check; CheckProtectors probes every protector now, and
 * fails (EXIT_NO_PROTECTOR) when none opens the root key. */
static int protectors_show(bool check) {
        _cleanup_ctl_bus_ CtlBus *b = NULL;
        _cleanup_(ctl_error_done) CtlError e = CTL_ERROR_NULL;
        CtlProtector *list = NULL;
        size_t n = 0, n_ok = 0;
        int r;

        r = connect_bus(&b);
        if (r != 0)
                return r;
        r = ctl_protectors_list(b, check, &list, &n, &e);
        if (r < 0)
                return fail(r, &e);
        for (size_t i = 0; i < n; i++)
                if (strcmp(list[i].health, "ok") == 0)
                        n_ok++;
        if (arg.json)
                json_protectors(list, n);
        else
                r = protectors_table(list, n, n_ok, check);
        ctl_protectors_free(list, n);
        if (r != 0)
                return r;
        if (check && n_ok == 0) {
                fflush(stdout); /* the table first, then why it failed */
                return fail_local(EXIT_NO_PROTECTOR,
                                  "no protector opens the root key now (HEALTH and DETAIL say why for each); "
                                  "dkmctl status shows what dkmd does meanwhile.");
        }
        return 0;
}

int verb_protector_list(char **args) {
        return protectors_show(false);
}

int verb_protector_check(char **args) {
        return protectors_show(true);
}

/* ---- requests filed by protector add, protector remove, purge request ---- */

/* "Filed request 12 to WHAT: it needs 2 approvals (secops, then security-leads; dkmctl access show 12)." */
static int print_filed(const CtlRequest *q, const char *what) {
        _cleanup_free_ char *levels = format_levels(q->approval_groups);
        size_t n = strv_length(q->approval_groups);

        if (!levels)
                return fail_oom();
        printf("Filed request %llu to %s: it needs %zu approval%s (%s; dkmctl access show %llu).\n",
               (unsigned long long) q->id, what, n, n == 1 ? "" : "s", levels, (unsigned long long) q->id);
        return 0;
}

/* {"protector": NAME, "type": TYPE, "state": STATE} and, for a request, its id, path and levels. */
static void json_protector_change(const char *name, const char *type, const char *state, const CtlRequest *q) {
        JsonWriter w;

        json_init(&w, stdout);
        json_object_begin(&w);
        json_field_string(&w, "protector", name);
        if (type)
                json_field_string(&w, "type", type);
        json_field_string(&w, "state", state);
        if (q) {
                json_field_uint(&w, "request", q->id);
                json_field_string(&w, "path", q->path);
                json_field_strv(&w, "approval_groups", q->approval_groups);
        }
        json_object_end(&w);
        json_finish(&w);
}

/* After AddProtector or RemoveProtector: "/" means done at once (no approval levels in the store
 * policy), else a request that the store policy's levels approve. */
static int report_protector_change(CtlBus *b, const char *path, const char *name, const char *type) {
        _cleanup_(ctl_request_done) CtlRequest q = {};
        _cleanup_free_ char *what = NULL;
        int r;

        if (strcmp(path, "/") == 0) {
                if (arg.json)
                        json_protector_change(name, type, type ? "added" : "removed", NULL);
                else if (type)
                        printf("Added %s protector %s.\n", type, name);
                else
                        printf("Removed protector %s.\n", name);
                return 0;
        }
        r = read_filed_request(b, path, &q);
        if (r != 0)
                return r;
        if (arg.json) {
                json_protector_change(name, type, "requested", &q);
                return 0;
        }
        r = type ? asprintf(&what, "add %s protector %s", type, name) : asprintf(&what, "remove protector %s", name);
        if (r < 0)
                return fail_oom();
        r = print_filed(&q, what);
        if (r != 0)
                return r;
        printf("Object path: %s\n", q.path);
        return 0;
}

/* ---- protector add, protector remove ---- */

int verb_protector_add(char **args) {
        _cleanup_ctl_bus_ CtlBus *b = NULL;
        _cleanup_(ctl_error_done) CtlError e = CTL_ERROR_NULL;
        _cleanup_free_ char *path = NULL;
        const char *type = arg.protector_type;
        CtlProtectorSpec spec = {
                .type = type,
                .uri = arg.uri,
                .pcrs = (arg.given & OPT_PCRS) ? arg.pcrs : NULL,
                .n_pcrs = arg.n_pcrs,
        };
        int r;

        /* Each option belongs to one type: checked here, so nothing is sent that dkmd would ignore. */
        if (strcmp(type, "pkcs11") == 0 && !arg.uri)
                return fail_local(EXIT_USAGE, "--type=pkcs11 needs --uri=pkcs11:token=LABEL;object=LABEL "
                                              "(the token's AES key).");
        if (arg.uri && strcmp(type, "pkcs11") != 0)
                return fail_local(EXIT_USAGE, "--uri applies to --type=pkcs11 only.");
        if ((arg.given & OPT_PCRS) && strcmp(type, "tpm2") != 0)
                return fail_local(EXIT_USAGE, "--pcrs applies to --type=tpm2 only.");
        r = connect_bus(&b);
        if (r != 0)
                return r;
        r = ctl_protector_add(b, args[0], &spec, arg.justification, &path, &e);
        if (r < 0)
                return fail(r, &e);
        return report_protector_change(b, path, args[0], type);
}

int verb_protector_remove(char **args) {
        _cleanup_ctl_bus_ CtlBus *b = NULL;
        _cleanup_(ctl_error_done) CtlError e = CTL_ERROR_NULL;
        _cleanup_free_ char *path = NULL;
        int r;

        r = connect_bus(&b);
        if (r != 0)
                return r;
        r = ctl_protector_remove(b, args[0], arg.justification, &path, &e);
        if (r < 0)
                return fail(r, &e);
        return report_protector_change(b, path, args[0], NULL);
}

/* ---- purge request ---- */

int verb_purge_request(char **args) {
        _cleanup_ctl_bus_ CtlBus *b = NULL;
        _cleanup_(ctl_error_done) CtlError e = CTL_ERROR_NULL;
        _cleanup_(ctl_manager_done) CtlManager m = {};
        _cleanup_(ctl_request_done) CtlRequest q = {};
        _cleanup_free_ char *path = NULL;
        char delay[FORMAT_MAX];
        int r;

        r = connect_bus(&b);
        if (r != 0)
                return r;
        /* The waiting period, read first: a failure here leaves nothing filed. */
        r = ctl_manager_get(b, &m, &e);
        if (r < 0)
                return fail(r, &e);
        r = ctl_purge(b, arg.justification, &path, &e);
        if (r < 0)
                return fail(r, &e);
        r = read_filed_request(b, path, &q);
        if (r != 0)
                return r;
        if (arg.json) {
                JsonWriter w;

                json_init(&w, stdout);
                json_object_begin(&w);
                json_field_string(&w, "state", "requested");
                json_field_uint(&w, "request", q.id);
                json_field_string(&w, "path", q.path);
                json_field_strv(&w, "approval_groups", q.approval_groups);
                json_key(&w, "purge_delay_usec");
                if (m.has_purge_delay)
                        json_uint(&w, m.purge_delay_usec);
                else
                        json_null(&w);
                json_object_end(&w);
                json_finish(&w);
                return 0;
        }
        r = print_filed(&q, "purge the store");
        if (r != 0)
                return r;
        format_duration_usec(m.purge_delay_usec, delay, sizeof(delay));
        if (!m.has_purge_delay)
                printf("When the last level approves, dkmd removes every group's keys from the kernel and purges "
                       "the store after the store policy's purge delay, unless the request is cancelled first "
                       "(dkmctl purge cancel %llu).\n",
                       (unsigned long long) q.id);
        else if (m.purge_delay_usec == 0)
                printf("When the last level approves, dkmd purges the store at once (the store policy's purge delay "
                       "is 0): every wrapped key is destroyed.\n");
        else
                printf("When the last level approves, dkmd removes every group's keys from the kernel and purges "
                       "the store %s later (the store policy's purge delay), unless the request is cancelled "
                       "first (dkmctl purge cancel %llu).\n",
                       delay, (unsigned long long) q.id);
        printf("Object path: %s\n", q.path);
        return 0;
}

/* ---- purge cancel ---- */

int verb_purge_cancel(char **args) {
        _cleanup_ctl_bus_ CtlBus *b = NULL;
        _cleanup_(ctl_error_done) CtlError e = CTL_ERROR_NULL;
        _cleanup_(ctl_request_done) CtlRequest q = {};
        _cleanup_(ctl_manager_done) CtlManager m = {};
        char outcome[256];
        bool was_scheduled;
        uint64_t id;
        int r;

        r = parse_request_id(args[0], &id);
        if (r != 0)
                return r;
        r = connect_bus(&b);
        if (r != 0)
                return r;
        /* Only a purge: "purge cancel" of another request's id is a typo, not a cancellation. */
        r = ctl_request_get(b, id, &q, &e);
        if (r < 0)
                return fail(r, &e);
        if (strcmp(q.kind, "purge") != 0)
                return fail_local(EXIT_NOT_FOUND, "request %llu is not a purge but %s %s (dkmctl access show %llu).",
                                  (unsigned long long) id, strcmp(q.kind, "access") == 0 ? "an" : "a", q.kind,
                                  (unsigned long long) id);
        was_scheduled = strcmp(q.state, "scheduled") == 0;
        ctl_request_done(&q);
        r = ctl_request_cancel(b, id, &e);
        if (r < 0)
                return fail(r, &e);
        r = ctl_request_get(b, id, &q, &e);
        if (r >= 0)
                r = ctl_manager_get(b, &m, &e);
        if (r < 0) {
                fprintf(stderr, "dkmctl: %s: cancelled, but reading request %llu and the store back failed: %s\n",
                        arg.verb, (unsigned long long) id, e.message ?: strerror(-r));
                return EXIT_FAILURE;
        }
        if (arg.json) {
                json_print_request(&q);
                return 0;
        }
        format_request_outcome(&q, outcome, sizeof(outcome));
        printf("Cancelled purge request %llu: %s.", (unsigned long long) id, outcome);
        if (was_scheduled)
                printf(" dkmd loads every group into the kernel again; the store is %s.",
                       m.store_state ?: (m.unlocked ? "unlocked" : "locked"));
        printf("\n");
        return 0;
}

/* ---- purge status ---- */

static bool is_open_purge(const CtlRequest *q) {
        return strcmp(q->kind, "purge") == 0 &&
               (strcmp(q->state, "pending") == 0 || strcmp(q->state, "scheduled") == 0);
}

static int purge_requests_table(const CtlRequest *list, size_t n) {
        static const char *const headers[] = { "ID", "STATE", "REQUESTER", "PURGES AT", "JUSTIFICATION" };
        _cleanup_table_ Table *t = table_new(ELEMENTSOF(headers), headers);
        size_t shown = 0;
        int r = t ? 0 : -ENOMEM;

        for (size_t i = 0; r >= 0 && i < n; i++) {
                const CtlRequest *q = &list[i];
                char buf[FORMAT_MAX];
                _cleanup_free_ char *why = NULL;

                if (!is_open_purge(q))
                        continue;
                why = escape_for_terminal(q->justification, JUSTIFICATION_COLUMNS);
                r = why ? table_addf(t, "%llu", (unsigned long long) q->id) : -ENOMEM;
                if (r >= 0)
                        r = table_add(t, q->state);
                if (r >= 0)
                        r = table_add(t, format_user(q->requester, buf));
                if (r >= 0)
                        r = table_add(t, format_time_local(q->expires_usec, buf));
                if (r >= 0)
                        r = table_add(t, why);
                shown++;
        }
        if (r < 0)
                return fail_oom();
        table_print(t, stdout, arg.legend);
        if (arg.legend)
                printf("\n%zu open purge request%s.%s\n", shown, shown == 1 ? "" : "s",
                       shown ? " dkmctl access approve ID approves one, dkmctl purge cancel ID cancels one." : "");
        return 0;
}

static int print_purge_status(const CtlManager *m, const CtlRequest *list, size_t n) {
        char buf[FORMAT_MAX], left[FORMAT_MAX];
        const char *state = m->store_state ?: (m->unlocked ? "unlocked" : "locked");
        _cleanup_free_ char *levels = NULL;

        printf("Store:            %s\n", state);
        if (strcmp(state, "unlocked") != 0 && m->store_state_detail && m->store_state_detail[0]) {
                _cleanup_free_ char *detail = escape_for_terminal(m->store_state_detail, 0);

                if (!detail)
                        return fail_oom();
                printf("Detail:           %s\n", detail);
        }
        if (m->purge_at_usec)
                printf("Purge at:         %s (%s)\n", format_time_local(m->purge_at_usec, buf),
                       format_time_left(m->purge_at_usec, now_realtime_usec(), left));
        else
                printf("Purge at:         none scheduled\n");
        if (m->has_purge_delay) {
                format_duration_usec(m->purge_delay_usec, buf, sizeof(buf));
                printf("Purge delay:      %s after the last approval\n", buf);
        }
        if (!m->approval_groups || !m->approval_groups[0])
                printf("Approval groups:  none (dkmd refuses a purge: the store policy names no level)\n");
        else {
                levels = format_levels(m->approval_groups);
                if (!levels)
                        return fail_oom();
                printf("Approval groups:  %s\n", levels);
        }
        printf("\n");
        return purge_requests_table(list, n);
}

int verb_purge_status(char **args) {
        _cleanup_ctl_bus_ CtlBus *b = NULL;
        _cleanup_(ctl_error_done) CtlError e = CTL_ERROR_NULL;
        _cleanup_(ctl_manager_done) CtlManager m = {};
        CtlRequest *list = NULL;
        size_t n = 0;
        int r;

        r = connect_bus(&b);
        if (r != 0)
                return r;
        r = ctl_manager_get(b, &m, &e);
        if (r < 0)
                return fail(r, &e);
        r = ctl_requests_list(b, &list, &n, &e);
        if (r < 0)
                return fail(r, &e);
        if (arg.json) {
                JsonWriter w;

                json_init(&w, stdout);
                json_object_begin(&w);
                json_field_string(&w, "store_state", m.store_state);
                json_field_string(&w, "store_state_detail", m.store_state_detail);
                json_field_uint_or_null(&w, "purge_at_usec", m.purge_at_usec);
                json_key(&w, "purge_delay_usec");
                if (m.has_purge_delay)
                        json_uint(&w, m.purge_delay_usec);
                else
                        json_null(&w);
                json_field_strv(&w, "approval_groups", m.approval_groups);
                json_key(&w, "requests");
                json_array_begin(&w);
                for (size_t i = 0; i < n; i++)
                        if (is_open_purge(&list[i]))
                                json_request(&w, &list[i], false);
                json_array_end(&w);
                json_object_end(&w);
                json_finish(&w);
                r = 0;
        } else
                r = print_purge_status(&m, list, n);
        ctl_requests_free(list, n);
        return r;
}
