/* SPDX-License-Identifier: MIT */
/* dkmctl's verbs: one function each, a human table or one JSON document on stdout. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dkmctl-output.h"
#include "dkmctl.h"
#include "json-writer.h"
#include "parse.h"

typedef struct GroupList {
        CtlGroup *groups;
        size_t n;
} GroupList;

static void group_list_done(GroupList *l) {
        ctl_groups_free(l->groups, l->n);
        *l = (GroupList){};
}

/* The JSON shape of a group (docs/DKMCTL.md): the D-Bus properties in snake_case, 0 for
 * "none" as null, times in CLOCK_REALTIME µs. */
static void json_group(JsonWriter *w, const CtlGroup *g, bool generations) {
        char unix_group[FORMAT_MAX];

        json_object_begin(w);
        json_field_string(w, "name", g->name);
        json_field_string(w, "path", g->path);
        json_field_uint(w, "gid", g->gid);
        json_field_string(w, "unix_group", lookup_unix_group(g->gid, unix_group) ? unix_group : NULL);
        json_field_string(w, "algorithm", g->algorithm);
        json_field_uint_or_null(w, "active_generation", g->active);
        json_field_uint_or_null(w, "pending_generation", g->pending);
        json_field_uint_or_null(w, "next_rollover_usec", g->next_usec);
        json_field_uint(w, "rollover_period_usec", g->rollover_period_usec);
        json_field_uint(w, "propagation_delay_usec", g->propagation_delay_usec);
        json_field_uint(w, "hot_window", g->hot_window);
        json_field_bool(w, "allow_human_members", g->allow_human_members);
        json_field_strv(w, "approval_groups", g->approval_groups);
        json_field_uint(w, "max_grant_usec", g->max_grant_usec);
        json_field_uint(w, "request_timeout_usec", g->request_timeout_usec);
        json_field_bool(w, "retire_needs_approval", g->retire_needs_approval);
        if (generations) {
                json_key(w, "generations");
                json_array_begin(w);
                for (size_t i = 0; i < g->n_generations; i++) {
                        const CtlGeneration *gen = &g->generations[i];

                        json_object_begin(w);
                        json_field_uint(w, "number", gen->number);
                        json_field_string(w, "state", gen->state);
                        json_field_uint_or_null(w, "created_usec", gen->created_usec);
                        json_field_uint_or_null(w, "activated_usec", gen->activated_usec);
                        json_field_uint_or_null(w, "archived_usec", gen->archived_usec);
                        json_field_uint_or_null(w, "retired_usec", gen->retired_usec);
                        json_object_end(w);
                }
                json_array_end(w);
        }
        json_object_end(w);
}

static void json_print_group(const CtlGroup *g) {
        JsonWriter w;

        json_init(&w, stdout);
        json_group(&w, g, true);
        json_finish(&w);
}

static const char *yes_no_humans(bool allowed) {
        return allowed ? "allowed" : "refused";
}

char *format_levels(char **groups) {
        size_t size = 64;
        char *buf;

        for (size_t i = 0; groups && groups[i]; i++)
                size += strlen(groups[i]) + 8;
        buf = malloc(size);
        if (!buf)
                return NULL;
        if (!groups || !groups[0]) {
                snprintf(buf, size, "none (break-glass is off)");
                return buf;
        }
        buf[0] = 0;
        for (size_t i = 0; groups[i]; i++)
                snprintf(buf + strlen(buf), size - strlen(buf), "%s%s", i == 0 ? "" : ", then ", groups[i]);
        return buf;
}

static const char *format_period(uint64_t usec, char buf[static FORMAT_MAX]) {
        if (usec == 0)
                return "manual";
        format_duration_usec(usec, buf, FORMAT_MAX);
        return buf;
}

/* ---- status, group list ---- */

static int groups_table(const GroupList *l, bool policy) {
        static const char *const status_headers[] = { "NAME", "UNIX GROUP", "ACTIVE", "PENDING", "NEXT", "LEFT" };
        static const char *const policy_headers[] = { "NAME",     "UNIX GROUP", "ALGORITHM",  "ACTIVE",
                                                      "ROLLOVER", "DELAY",      "HOT WINDOW", "HUMANS" };
        _cleanup_table_ Table *t = policy ? table_new(ELEMENTSOF(policy_headers), policy_headers)
                                          : table_new(ELEMENTSOF(status_headers), status_headers);
        uint64_t now = now_realtime_usec();
        bool any_pending = false;
        int r = t ? 0 : -ENOMEM;

        for (size_t i = 0; r >= 0 && i < l->n; i++) {
                const CtlGroup *g = &l->groups[i];
                char a[FORMAT_MAX], b[FORMAT_MAX], c[FORMAT_MAX];

                r = table_add(t, g->name);
                if (r >= 0)
                        r = table_add(t, format_unix_group(g->gid, a));
                if (r >= 0 && policy) {
                        format_duration_usec(g->propagation_delay_usec, c, sizeof(c));
                        r = table_add(t, g->algorithm);
                        if (r >= 0)
                                r = table_addf(t, "%u", (unsigned) g->active);
                        if (r >= 0)
                                r = table_add(t, format_period(g->rollover_period_usec, b));
                        if (r >= 0)
                                r = table_add(t, c);
                        if (r >= 0)
                                r = table_addf(t, "%u", (unsigned) g->hot_window);
                        if (r >= 0)
                                r = table_add(t, yes_no_humans(g->allow_human_members));
                        continue;
                }
                any_pending = any_pending || g->pending > 0;
                if (r >= 0)
                        r = g->active ? table_addf(t, "%u", (unsigned) g->active) : table_add(t, "-");
                if (r >= 0)
                        r = g->pending ? table_addf(t, "%u", (unsigned) g->pending) : table_add(t, "-");
                if (r >= 0)
                        r = table_add(t, format_time_local(g->next_usec, b));
                if (r >= 0)
                        r = table_add(t, g->next_usec ? format_time_left(g->next_usec, now, c) : "manual");
        }
        if (r < 0)
                return fail_oom();
        table_print(t, stdout, arg.legend);
        if (arg.legend) {
                printf("\n%zu key group%s listed.", l->n, l->n == 1 ? "" : "s");
                if (any_pending)
                        printf(" A PENDING generation becomes active at NEXT.");
                printf("\n");
        }
        return 0;
}

/* What each StoreState means for the keys, after the state's name on the "Store:" line. */
static const char *store_state_meaning(const char *state) {
        static const struct {
                const char *state, *meaning;
        } meanings[] = {
                { "degraded", "dkmd holds the root key, but no protector opens it now (a device went away): "
                              "serving as usual; a restart now would wait for the device" },
                { "locked", "no protector unlocked the root key when dkmd started; every change is refused" },
                { "waiting", "no protector opens the root key now: a device is unavailable or refused the PIN; "
                             "the keys already in the kernel keep working, what needs the root key is refused" },
                { "withdrawn", "no protector opens the root key any more (the customer key was withdrawn): every "
                               "group's keys were removed from the kernel, loads are refused" },
                { "purge-scheduled", "a purge is approved and waits for its time: every group's keys were removed "
                                     "from the kernel, loads are refused; cancelling it restores them" },
                { "purged", "the store was crypto-shredded: nothing in it can be decrypted any more" },
        };

        for (size_t i = 0; i < ELEMENTSOF(meanings); i++)
                if (strcmp(state, meanings[i].state) == 0)
                        return meanings[i].meaning;
        return NULL;
}

/* The store's lines of status: its state, why when it is not unlocked, and the next check and
 * the purge when there are. A dkmd without StoreState says only StoreUnlocked. */
static int print_store_state(const CtlManager *m) {
        char when[FORMAT_MAX], left[FORMAT_MAX];
        uint64_t now = now_realtime_usec();
        const char *state, *meaning;

        state = m->store_state ?: (m->unlocked ? "unlocked" : "locked");
        meaning = strcmp(state, "unlocked") == 0 ? NULL : store_state_meaning(state);
        if (meaning)
                printf("Store:    %s (%s)\n", state, meaning);
        else
                printf("Store:    %s\n", state);
        if (strcmp(state, "unlocked") != 0 && m->store_state_detail && m->store_state_detail[0]) {
                _cleanup_free_ char *detail = escape_for_terminal(m->store_state_detail, 0);

                if (!detail)
                        return fail_oom();
                printf("Detail:   %s\n", detail);
        }
        if (m->next_check_usec)
                printf("Check:    next at %s (%s); dkmctl protector check tries now\n",
                       format_time_local(m->next_check_usec, when), format_time_left(m->next_check_usec, now, left));
        if (m->purge_at_usec)
                printf("Purge:    at %s (%s), unless cancelled first (dkmctl purge status)\n",
                       format_time_local(m->purge_at_usec, when), format_time_left(m->purge_at_usec, now, left));
        /* Only in a fleet: a lone host's dkmd says "" (an older one has no FleetState). */
        if (m->fleet_state && m->fleet_state[0])
                printf("Fleet:    %s%s%s\n", m->fleet_state, m->fleet_uri && m->fleet_uri[0] ? " to " : "",
                       m->fleet_uri ?: "");
        return 0;
}

int verb_status(char **args) {
        _cleanup_ctl_bus_ CtlBus *b = NULL;
        _cleanup_(ctl_error_done) CtlError e = CTL_ERROR_NULL;
        _cleanup_(group_list_done) GroupList l = {};
        _cleanup_(ctl_manager_done) CtlManager m = {};
        int r;

        r = connect_bus(&b);
        if (r != 0)
                return r;
        r = ctl_manager_get(b, &m, &e);
        if (r < 0)
                return fail(r, &e);
        r = ctl_groups_get_all(b, &l.groups, &l.n, &e);
        if (r < 0)
                return fail(r, &e);
        if (arg.json) {
                JsonWriter w;

                json_init(&w, stdout);
                json_object_begin(&w);
                json_field_string(&w, "version", m.version);
                json_field_bool(&w, "store_unlocked", m.unlocked);
                /* null: a dkmd that does not have the property */
                json_field_string(&w, "store_state", m.store_state);
                json_field_string(&w, "store_state_detail", m.store_state_detail);
                json_field_uint_or_null(&w, "next_check_usec", m.next_check_usec);
                json_field_uint_or_null(&w, "purge_at_usec", m.purge_at_usec);
                /* null: not in a fleet (or a dkmd without the property) */
                json_field_string(&w, "fleet_state", m.fleet_state && m.fleet_state[0] ? m.fleet_state : NULL);
                json_key(&w, "groups");
                json_array_begin(&w);
                for (size_t i = 0; i < l.n; i++)
                        json_group(&w, &l.groups[i], false);
                json_array_end(&w);
                json_object_end(&w);
                json_finish(&w);
                return 0;
        }
        printf("Version:  dkmd %s\n", m.version);
        r = print_store_state(&m);
        if (r != 0)
                return r;
        printf("\n");
        return groups_table(&l, false);
}

int verb_group_list(char **args) {
        _cleanup_ctl_bus_ CtlBus *b = NULL;
        _cleanup_(ctl_error_done) CtlError e = CTL_ERROR_NULL;
        _cleanup_(group_list_done) GroupList l = {};
        int r;

        r = connect_bus(&b);
        if (r != 0)
                return r;
        r = ctl_groups_get_all(b, &l.groups, &l.n, &e);
        if (r < 0)
                return fail(r, &e);
        if (arg.json) {
                JsonWriter w;

                json_init(&w, stdout);
                json_object_begin(&w);
                json_key(&w, "groups");
                json_array_begin(&w);
                for (size_t i = 0; i < l.n; i++)
                        json_group(&w, &l.groups[i], false);
                json_array_end(&w);
                json_object_end(&w);
                json_finish(&w);
                return 0;
        }
        return groups_table(&l, true);
}

/* ---- group show ---- */

static int generations_table(const CtlGroup *g) {
        static const char *const headers[] = { "GENERATION", "STATE", "CREATED", "ACTIVATED", "ARCHIVED", "RETIRED" };
        _cleanup_table_ Table *t = table_new(ELEMENTSOF(headers), headers);
        int r = t ? 0 : -ENOMEM;

        for (size_t i = 0; r >= 0 && i < g->n_generations; i++) {
                const CtlGeneration *gen = &g->generations[i];
                char buf[FORMAT_MAX];

                r = table_addf(t, "%u", (unsigned) gen->number);
                if (r >= 0)
                        r = table_add(t, gen->state);
                if (r >= 0)
                        r = table_add(t, format_time_local(gen->created_usec, buf));
                if (r >= 0)
                        r = table_add(t, format_time_local(gen->activated_usec, buf));
                if (r >= 0)
                        r = table_add(t, format_time_local(gen->archived_usec, buf));
                if (r >= 0)
                        r = table_add(t, format_time_local(gen->retired_usec, buf));
        }
        if (r < 0)
                return fail_oom();
        table_print(t, stdout, arg.legend);
        if (arg.legend)
                printf("\n%zu generation%s.\n", g->n_generations, g->n_generations == 1 ? "" : "s");
        return 0;
}

static int print_group(const CtlGroup *g) {
        char buf[FORMAT_MAX], when[FORMAT_MAX], left[FORMAT_MAX];
        _cleanup_free_ char *levels = NULL;
        uint64_t now = now_realtime_usec();

        if (arg.json) {
                json_print_group(g);
                return 0;
        }
        printf("Name:                %s\n", g->name);
        printf("Unix group:          %s\n", format_unix_group(g->gid, buf));
        printf("Algorithm:           %s\n", g->algorithm);
        printf("Active generation:   %u\n", (unsigned) g->active);
        if (g->pending)
                printf("Pending generation:  %u, active from %s (%s)\n", (unsigned) g->pending,
                       format_time_local(g->next_usec, when), format_time_left(g->next_usec, now, left));
        else
                printf("Pending generation:  none\n");
        if (g->rollover_period_usec == 0)
                printf("Next rollover:       manual\n");
        else if (g->pending)
                printf("Next rollover:       %s after generation %u becomes active\n",
                       format_period(g->rollover_period_usec, buf), (unsigned) g->pending);
        else
                printf("Next rollover:       %s (%s)\n", format_time_local(g->next_usec, when),
                       format_time_left(g->next_usec, now, left));
        printf("Rollover period:     %s\n", format_period(g->rollover_period_usec, buf));
        format_duration_usec(g->propagation_delay_usec, buf, sizeof(buf));
        printf("Propagation delay:   %s\n", buf);
        printf("Hot window:          %u archived generation%s\n", (unsigned) g->hot_window,
               g->hot_window == 1 ? "" : "s");
        printf("Human members:       %s\n", yes_no_humans(g->allow_human_members));
        levels = format_levels(g->approval_groups);
        if (!levels)
                return fail_oom();
        printf("Approval groups:     %s\n", levels);
        format_duration_usec(g->max_grant_usec, buf, sizeof(buf));
        printf("Max grant:           %s\n", buf);
        format_duration_usec(g->request_timeout_usec, buf, sizeof(buf));
        printf("Request timeout:     %s\n", buf);
        printf("Retire:              %s\n",
               g->retire_needs_approval ? "needs the approval of every level" : "at once, without approval");
        printf("Object path:         %s\n\n", g->path);
        return generations_table(g);
}

int verb_group_show(char **args) {
        _cleanup_ctl_bus_ CtlBus *b = NULL;
        _cleanup_(ctl_error_done) CtlError e = CTL_ERROR_NULL;
        _cleanup_(ctl_group_done) CtlGroup g = {};
        int r;

        r = connect_bus(&b);
        if (r != 0)
                return r;
        r = ctl_group_get(b, args[0], &g, &e);
        if (r < 0)
                return fail(r, &e);
        return print_group(&g);
}

/* ---- mutations ---- */

/* After a change succeeded: the group as it is now, or a line saying the change stands. */
static int read_back(CtlBus *b, const char *name, CtlGroup *ret) {
        _cleanup_(ctl_error_done) CtlError e = CTL_ERROR_NULL;
        int r = ctl_group_get(b, name, ret, &e);

        return r < 0 ? fail_after(r, &e, "done, but reading %s back failed", name) : 0;
}

int verb_group_create(char **args) {
        _cleanup_ctl_bus_ CtlBus *b = NULL;
        _cleanup_(ctl_error_done) CtlError e = CTL_ERROR_NULL;
        _cleanup_(ctl_group_done) CtlGroup g = {};
        char buf[FORMAT_MAX];
        int r;

        r = connect_bus(&b);
        if (r != 0)
                return r;
        r = ctl_group_create(b, args[0], arg.gid, &arg.policy, &e);
        if (r < 0)
                return fail(r, &e);
        r = read_back(b, args[0], &g);
        if (r != 0)
                return r;
        if (arg.json) {
                json_print_group(&g);
                return 0;
        }
        printf("Created key group %s for Unix group %s: %s, generation %u is active.\n", g.name,
               format_unix_group(g.gid, buf), g.algorithm, (unsigned) g.active);
        return 0;
}

int verb_group_set_policy(char **args) {
        _cleanup_ctl_bus_ CtlBus *b = NULL;
        _cleanup_(ctl_error_done) CtlError e = CTL_ERROR_NULL;
        _cleanup_(ctl_group_done) CtlGroup g = {};
        char period[FORMAT_MAX], delay[FORMAT_MAX], grant[FORMAT_MAX], timeout[FORMAT_MAX];
        _cleanup_free_ char *levels = NULL;
        int r;

        r = connect_bus(&b);
        if (r != 0)
                return r;
        r = ctl_group_set_policy(b, args[0], &arg.policy, &e);
        if (r < 0)
                return fail(r, &e);
        r = read_back(b, args[0], &g);
        if (r != 0)
                return r;
        if (arg.json) {
                json_print_group(&g);
                return 0;
        }
        format_duration_usec(g.propagation_delay_usec, delay, sizeof(delay));
        format_duration_usec(g.max_grant_usec, grant, sizeof(grant));
        format_duration_usec(g.request_timeout_usec, timeout, sizeof(timeout));
        levels = format_levels(g.approval_groups);
        if (!levels)
                return fail_oom();
        printf("Policy of %s: rollover period %s, propagation delay %s, hot window %u, human members %s; "
               "approval groups %s, max grant %s, request timeout %s, retire %s.\n",
               g.name, format_period(g.rollover_period_usec, period), delay, (unsigned) g.hot_window,
               yes_no_humans(g.allow_human_members), levels, grant, timeout,
               g.retire_needs_approval ? "needs approval" : "without approval");
        return 0;
}

int verb_group_rollover(char **args) {
        _cleanup_ctl_bus_ CtlBus *b = NULL;
        _cleanup_(ctl_error_done) CtlError e = CTL_ERROR_NULL;
        _cleanup_(ctl_group_done) CtlGroup g = {};
        char when[FORMAT_MAX], left[FORMAT_MAX];
        const char *state = "active";
        uint64_t active_from = 0;
        uint32_t number;
        int r;

        r = connect_bus(&b);
        if (r != 0)
                return r;
        r = ctl_group_rollover(b, args[0], &number, &e);
        if (r < 0)
                return fail(r, &e);
        r = read_back(b, args[0], &g);
        if (r != 0)
                return r;
        /* With a short delay the new generation may be active already by now: ask the list. */
        for (size_t i = 0; i < g.n_generations; i++)
                if (g.generations[i].number == number) {
                        state = g.generations[i].state;
                        active_from = g.generations[i].activated_usec;
                }
        if (strcmp(state, "pending") == 0)
                active_from = g.next_usec;
        if (arg.json) {
                JsonWriter w;

                json_init(&w, stdout);
                json_object_begin(&w);
                json_field_string(&w, "group", g.name);
                json_field_uint(&w, "generation", number);
                json_field_string(&w, "state", state);
                json_field_uint_or_null(&w, "active_from_usec", active_from);
                json_field_uint_or_null(&w, "active_generation", g.active);
                json_object_end(&w);
                json_finish(&w);
                return 0;
        }
        if (strcmp(state, "pending") == 0)
                printf("Rolled over %s: generation %u is pending until %s (%s); generation %u encrypts until then.\n",
                       g.name, (unsigned) number, format_time_local(active_from, when),
                       format_time_left(active_from, now_realtime_usec(), left), (unsigned) g.active);
        else
                printf("Rolled over %s: generation %u is %s.\n", g.name, (unsigned) number, state);
        return 0;
}

static int parse_generation(const char *s, uint32_t *ret) {
        /* 0 and numbers the group lacks are dkmd's to refuse (NoSuchGeneration). */
        if (parse_uint32(s, ret) < 0)
                return fail_local(EXIT_USAGE, "'%s' is not a generation number.", s);
        return 0;
}

static void json_generation_done(const char *name, uint32_t number, const char *state) {
        JsonWriter w;

        json_init(&w, stdout);
        json_object_begin(&w);
        json_field_string(&w, "group", name);
        json_field_uint(&w, "generation", number);
        json_field_string(&w, "state", state);
        json_object_end(&w);
        json_finish(&w);
}

int verb_group_archive(char **args) {
        _cleanup_ctl_bus_ CtlBus *b = NULL;
        _cleanup_(ctl_error_done) CtlError e = CTL_ERROR_NULL;
        uint32_t number;
        int r;

        r = parse_generation(args[1], &number);
        if (r != 0)
                return r;
        r = connect_bus(&b);
        if (r != 0)
                return r;
        r = ctl_group_archive(b, args[0], number, &e);
        if (r < 0)
                return fail(r, &e);
        if (arg.json)
                json_generation_done(args[0], number, "archived");
        else
                printf("Archived generation %u of %s.\n", (unsigned) number, args[0]);
        return 0;
}

/* Retire files a request (the policy wants approvals) or retires at once (the path is "/"). */
int verb_group_retire(char **args) {
        _cleanup_ctl_bus_ CtlBus *b = NULL;
        _cleanup_(ctl_error_done) CtlError e = CTL_ERROR_NULL;
        _cleanup_(ctl_request_done) CtlRequest q = {};
        _cleanup_free_ char *path = NULL;
        _cleanup_free_ char *levels = NULL;
        uint32_t number;
        int r;

        r = parse_generation(args[1], &number);
        if (r != 0)
                return r;
        r = connect_bus(&b);
        if (r != 0)
                return r;
        r = ctl_group_retire(b, args[0], number, arg.justification, &path, &e);
        if (r < 0)
                return fail(r, &e);
        if (strcmp(path, "/") == 0) {
                if (arg.json)
                        json_generation_done(args[0], number, "retired");
                else
                        printf("Retired generation %u of %s: its key is destroyed; data encrypted with it is "
                               "unreadable.\n",
                               (unsigned) number, args[0]);
                return 0;
        }
        r = read_filed_request(b, path, &q);
        if (r != 0)
                return r;
        if (arg.json) {
                JsonWriter w;

                json_init(&w, stdout);
                json_object_begin(&w);
                json_field_string(&w, "group", args[0]);
                json_field_uint(&w, "generation", number);
                json_field_string(&w, "state", "requested");
                json_field_uint(&w, "request", q.id);
                json_field_string(&w, "path", q.path);
                json_object_end(&w);
                json_finish(&w);
                return 0;
        }
        levels = format_levels(q.approval_groups);
        if (!levels)
                return fail_oom();
        printf("Filed request %llu to retire generation %u of %s: it needs the approval of %s (dkmctl access show "
               "%llu).\n",
               (unsigned long long) q.id, (unsigned) number, args[0], levels, (unsigned long long) q.id);
        printf("Object path: %s\n", q.path);
        return 0;
}

int verb_group_load(char **args) {
        _cleanup_ctl_bus_ CtlBus *b = NULL;
        _cleanup_(ctl_error_done) CtlError e = CTL_ERROR_NULL;
        int r;

        r = connect_bus(&b);
        if (r != 0)
                return r;
        r = ctl_group_load(b, args[0], &e);
        if (r < 0)
                return fail(r, &e);
        if (arg.json) {
                JsonWriter w;

                json_init(&w, stdout);
                json_object_begin(&w);
                json_field_string(&w, "group", args[0]);
                json_field_bool(&w, "loaded", true);
                json_object_end(&w);
                json_finish(&w);
        } else
                printf("Loaded %s into the kernel keyrings.\n", args[0]);
        return 0;
}

int verb_reload(char **args) {
        _cleanup_ctl_bus_ CtlBus *b = NULL;
        _cleanup_(ctl_error_done) CtlError e = CTL_ERROR_NULL;
        _cleanup_strv_free_ char **problems = NULL;
        size_t n = 0;
        int r;

        r = connect_bus(&b);
        if (r != 0)
                return r;
        r = ctl_reload(b, &problems, &e);
        if (r < 0)
                return fail(r, &e);
        while (problems[n])
                n++;
        if (arg.json) {
                JsonWriter w;

                json_init(&w, stdout);
                json_object_begin(&w);
                json_key(&w, "problems");
                json_array_begin(&w);
                for (size_t i = 0; i < n; i++)
                        json_string(&w, problems[i]);
                json_array_end(&w);
                json_object_end(&w);
                json_finish(&w);
        } else if (n == 0)
                printf("Reloaded the groups.d drop-ins: every one applied.\n");
        else
                for (size_t i = 0; i < n; i++)
                        printf("%s\n", problems[i]);
        if (n == 0)
                return 0;
        return fail_local(EXIT_PROBLEMS, "%zu problem%s with the groups.d drop-ins; the others were applied.", n,
                          n == 1 ? "" : "s");
}
