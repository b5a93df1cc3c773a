/* SPDX-License-Identifier: MIT */
/* dkmctl's fleet verbs (docs/FLEET.md): the directory connection, the hosts of the directory, and
 * enrolling or removing a host (approved at the store policy's levels, like protector changes). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dkmctl-output.h"
#include "dkmctl.h"
#include "json-writer.h"

/* ---- fleet status ---- */

int verb_fleet_status(char **args) {
        _cleanup_ctl_bus_ CtlBus *b = NULL;
        _cleanup_(ctl_error_done) CtlError e = CTL_ERROR_NULL;
        _cleanup_(ctl_manager_done) CtlManager m = {};
        bool in_fleet;
        int r;

        r = connect_bus(&b);
        if (r != 0)
                return r;
        r = ctl_manager_get(b, &m, &e);
        if (r < 0)
                return fail(r, &e);
        in_fleet = m.fleet_state && m.fleet_state[0];
        if (arg.json) {
                JsonWriter w;

                json_init(&w, stdout);
                json_object_begin(&w);
                json_key(&w, "fleet_state");
                if (in_fleet)
                        json_string(&w, m.fleet_state);
                else
                        json_null(&w);
                json_key(&w, "fleet_uri");
                if (in_fleet && m.fleet_uri && m.fleet_uri[0])
                        json_string(&w, m.fleet_uri);
                else
                        json_null(&w);
                json_object_end(&w);
                json_finish(&w);
                return 0;
        }
        if (!m.fleet_state) {
                printf("Fleet:    unknown (this dkmd has no FleetState property)\n");
                return 0;
        }
        if (!in_fleet) {
                printf("Fleet:    none (dkmd runs on its own, without --fleet)\n");
                return 0;
        }
        printf("Fleet:    %s\n", m.fleet_state);
        printf("Server:   %s\n", m.fleet_uri && m.fleet_uri[0] ? m.fleet_uri : "none answers");
        if (strcmp(m.fleet_state, "partitioned") == 0)
                printf("          the keys in the kernel keep working; group changes wait for the directory\n");
        return 0;
}

/* ---- fleet hosts ---- */

int verb_fleet_hosts(char **args) {
        static const char *const headers[] = { "HOST", "STATE", "PUBLIC KEY" };
        _cleanup_ctl_bus_ CtlBus *b = NULL;
        _cleanup_(ctl_error_done) CtlError e = CTL_ERROR_NULL;
        CtlHost *list = NULL;
        size_t n = 0, enrolled = 0;
        int r;

        r = connect_bus(&b);
        if (r != 0)
                return r;
        r = ctl_hosts_list(b, &list, &n, &e);
        if (r < 0)
                return fail(r, &e);
        for (size_t i = 0; i < n; i++)
                if (strcmp(list[i].state, "enrolled") == 0)
                        enrolled++;
        if (arg.json) {
                JsonWriter w;

                json_init(&w, stdout);
                json_object_begin(&w);
                json_key(&w, "hosts");
                json_array_begin(&w);
                for (size_t i = 0; i < n; i++) {
                        json_object_begin(&w);
                        json_field_string(&w, "name", list[i].name);
                        json_field_string(&w, "public_key", list[i].public_key);
                        json_field_string(&w, "state", list[i].state);
                        json_object_end(&w);
                }
                json_array_end(&w);
                json_object_end(&w);
                json_finish(&w);
        } else {
                _cleanup_table_ Table *t = table_new(ELEMENTSOF(headers), headers);

                r = t ? 0 : -ENOMEM;
                for (size_t i = 0; r >= 0 && i < n; i++) {
                        r = table_add(t, list[i].name);
                        if (r >= 0)
                                r = table_add(t, list[i].state);
                        if (r >= 0)
                                r = table_add(t, list[i].public_key[0] ? list[i].public_key : "-");
                }
                if (r < 0) {
                        ctl_hosts_free(list, n);
                        return fail_oom();
                }
                table_print(t, stdout, arg.legend);
                if (arg.legend)
                        printf("\n%zu host%s in the directory, %zu enrolled.\n", n, n == 1 ? "" : "s", enrolled);
        }
        ctl_hosts_free(list, n);
        return 0;
}

/* ---- fleet enroll, fleet remove ---- */

static int host_change(char **args, bool enrol) {
        _cleanup_ctl_bus_ CtlBus *b = NULL;
        _cleanup_(ctl_error_done) CtlError e = CTL_ERROR_NULL;
        _cleanup_(ctl_request_done) CtlRequest q = {};
        _cleanup_free_ char *path = NULL, *levels = NULL;
        const char *host = args[0];
        size_t n = 0;
        int r;

        r = connect_bus(&b);
        if (r != 0)
                return r;
        r = ctl_host_change(b, enrol, host, arg.justification, &path, &e);
        if (r < 0)
                return fail(r, &e);
        if (strcmp(path, "/") == 0) {
                if (arg.json) {
                        JsonWriter w;

                        json_init(&w, stdout);
                        json_object_begin(&w);
                        json_field_string(&w, "host", host);
                        json_field_string(&w, "state", enrol ? "enrolled" : "removed");
                        json_object_end(&w);
                        json_finish(&w);
                } else if (enrol)
                        printf("Enrolled host %s: its protector is in the directory; its dkmd installs it and "
                               "unlocks (at start, or within its protector check interval).\n",
                               host);
                else
                        printf("Removed host %s: its protector is gone from the directory. A copy it already "
                               "installed still opens its store, and a running dkmd there keeps the root key: "
                               "decommission its store too (docs/FLEET.md).\n",
                               host);
                return 0;
        }
        r = read_filed_request(b, path, &q);
        if (r != 0)
                return r;
        if (arg.json) {
                JsonWriter w;

                json_init(&w, stdout);
                json_object_begin(&w);
                json_field_string(&w, "host", host);
                json_field_string(&w, "state", "requested");
                json_field_uint(&w, "request", q.id);
                json_field_string(&w, "path", q.path);
                json_field_strv(&w, "approval_groups", q.approval_groups);
                json_object_end(&w);
                json_finish(&w);
                return 0;
        }
        levels = format_levels(q.approval_groups);
        if (!levels)
                return fail_oom();
        while (q.approval_groups && q.approval_groups[n])
                n++;
        printf("Filed request %llu to %s host %s: it needs %zu approval%s (%s; dkmctl access show %llu).\n",
               (unsigned long long) q.id, enrol ? "enrol" : "remove", host, n, n == 1 ? "" : "s", levels,
               (unsigned long long) q.id);
        printf("Object path: %s\n", q.path);
        return 0;
}

int verb_fleet_enroll(char **args) {
        return host_change(args, true);
}

int verb_fleet_remove(char **args) {
        return host_change(args, false);
}
