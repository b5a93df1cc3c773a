/* SPDX-License-Identifier: MIT */
/* dkmctl's client of org.dkm.KeyManager1 on the system bus: typed calls, replies read into plain C. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>

#include "dkmctl-bus.h"

#define SVC              "org.dkm.KeyManager1"
#define MGR_PATH         "/org/dkm/KeyManager1"
#define MGR_IFACE        "org.dkm.KeyManager1"
#define GROUP_IFACE      "org.dkm.KeyManager1.Group"
#define REQUEST_IFACE    "org.dkm.KeyManager1.Request"
#define PROPERTIES_IFACE "org.freedesktop.DBus.Properties"

struct CtlBus {
        sd_bus *bus;
};

void ctl_error_done(CtlError *e) {
        free(e->name);
        free(e->message);
        *e = (CtlError){};
}

void ctl_group_done(CtlGroup *g) {
        free(g->name);
        free(g->path);
        free(g->algorithm);
        strv_free(g->approval_groups);
        free(g->generations);
        *g = (CtlGroup){};
}

void ctl_groups_free(CtlGroup *groups, size_t n) {
        for (size_t i = 0; groups && i < n; i++)
                ctl_group_done(&groups[i]);
        free(groups);
}

void ctl_request_done(CtlRequest *r) {
        free(r->path);
        free(r->kind);
        free(r->group);
        free(r->target);
        free(r->justification);
        strv_free(r->approval_groups);
        free(r->approvals);
        free(r->state);
        free(r->reason);
        *r = (CtlRequest){};
}

void ctl_requests_free(CtlRequest *requests, size_t n) {
        for (size_t i = 0; requests && i < n; i++)
                ctl_request_done(&requests[i]);
        free(requests);
}

void ctl_manager_done(CtlManager *m) {
        free(m->version);
        free(m->store_state);
        free(m->store_state_detail);
        strv_free(m->approval_groups);
        free(m->fleet_state);
        free(m->fleet_uri);
        *m = (CtlManager){};
}

void ctl_protectors_free(CtlProtector *protectors, size_t n) {
        for (size_t i = 0; protectors && i < n; i++) {
                free(protectors[i].name);
                free(protectors[i].type);
                free(protectors[i].health);
                free(protectors[i].detail);
        }
        free(protectors);
}

/* Errors that mean dkmd is not there to answer, rather than that it refused. */
static bool name_means_unreachable(const char *name) {
        static const char *const names[] = {
                SD_BUS_ERROR_SERVICE_UNKNOWN, SD_BUS_ERROR_NAME_HAS_NO_OWNER, SD_BUS_ERROR_NO_REPLY,
                SD_BUS_ERROR_TIMEOUT,         SD_BUS_ERROR_DISCONNECTED,      SD_BUS_ERROR_NO_SERVER,
        };

        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (strcmp(name, names[i]) == 0)
                        return true;
        /* Bus activation of dkmd failed. */
        return strncmp(name, "org.freedesktop.DBus.Error.Spawn.", 33) == 0;
}

static bool errno_means_unreachable(int r) {
        return r == -ECONNRESET || r == -ENOTCONN || r == -ETIMEDOUT || r == -ECONNREFUSED || r == -EPIPE ||
               r == -ENOENT;
}

/* Fill *e from a failed call: the error the bus or dkmd answered, else errno r. Returns r. */
static int fail(CtlError *e, int r, const sd_bus_error *be, const char *local) {
        ctl_error_done(e);
        if (r >= 0)
                r = -EIO;
        if (be && sd_bus_error_is_set(be)) {
                e->name = strdup(be->name);
                e->message = strdup(be->message ?: be->name);
                /* sd-bus names its own failures too (a lost connection is Disconnected, or
                 * System.Error.ENOTCONN); a name of dkmd's never means it was not there. */
                e->unreachable = strncmp(be->name, "org.dkm.", 8) != 0 &&
                                 (name_means_unreachable(be->name) || errno_means_unreachable(r));
        } else {
                e->message = strdup(local ?: strerror(-r));
                e->unreachable = errno_means_unreachable(r);
        }
        return r;
}

/* A reply that does not have the shape docs/DBUS-API.md gives: another dkmd version, or a bug. */
static int fail_reply(CtlError *e, int r, const char *what) {
        char msg[256];

        if (r == -ENOMEM)
                return fail(e, r, NULL, NULL);
        snprintf(msg, sizeof(msg), "dkmd's reply to %s is not what dkmctl expects (%s)", what, strerror(-r));
        return fail(e, r, NULL, msg);
}

int ctl_bus_open(CtlBus **ret, CtlError *e) {
        CtlBus *b;
        char msg[256];
        int r;

        b = calloc(1, sizeof(*b));
        if (!b)
                return fail(e, -ENOMEM, NULL, NULL);
        /* Honours $DBUS_SYSTEM_BUS_ADDRESS. */
        r = sd_bus_open_system(&b->bus);
        if (r < 0) {
                free(b);
                snprintf(msg, sizeof(msg), "cannot connect to the system bus: %s", strerror(-r));
                fail(e, r, NULL, msg);
                e->unreachable = true;
                return r;
        }
        *ret = b;
        return 0;
}

CtlBus *ctl_bus_free(CtlBus *b) {
        if (!b)
                return NULL;
        sd_bus_flush_close_unref(b->bus);
        free(b);
        return NULL;
}

static int strdup_to(const char *s, char **ret) {
        char *copy = strdup(s);

        if (!copy)
                return -ENOMEM;
        free(*ret);
        *ret = copy;
        return 0;
}

/* A variant holding an "as", into a NULL-terminated list (empty, never NULL). */
static int read_strv_variant(sd_bus_message *m, char ***ret) {
        char **l = NULL;
        int r;

        r = sd_bus_message_enter_container(m, 'v', "as");
        if (r < 0)
                return r;
        r = sd_bus_message_read_strv(m, &l);
        if (r < 0)
                return r;
        if (!l) {
                /* An empty array reads as NULL. */
                l = calloc(1, sizeof(char *));
                if (!l)
                        return -ENOMEM;
        }
        r = sd_bus_message_exit_container(m);
        if (r < 0) {
                strv_free(l);
                return r;
        }
        strv_free(*ret);
        *ret = l;
        return 0;
}

static int read_generations(sd_bus_message *m, CtlGroup *g) {
        CtlGeneration gen;
        const char *state;
        int r;

        r = sd_bus_message_enter_container(m, 'v', "a(ustttt)");
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(m, 'a', "(ustttt)");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_read(m, "(ustttt)", &gen.number, &state, &gen.created_usec, &gen.activated_usec,
                                        &gen.archived_usec, &gen.retired_usec)) > 0) {
                CtlGeneration *grown = reallocarray(g->generations, g->n_generations + 1, sizeof(CtlGeneration));

                if (!grown)
                        return -ENOMEM;
                g->generations = grown;
                snprintf(gen.state, sizeof(gen.state), "%s", state);
                g->generations[g->n_generations++] = gen;
        }
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(m);
}

typedef int (*PropertyReader)(sd_bus_message *m, const char *key, void *userdata);

/* A GetAll reply (a{sv}): each property to read(), which skips the ones it does not know. */
static int read_properties(sd_bus_message *reply, PropertyReader read, void *userdata) {
        int r;

        r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        while (r >= 0 && (r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                const char *key;

                r = sd_bus_message_read(reply, "s", &key);
                if (r >= 0)
                        r = read(reply, key, userdata);
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(reply);
        return r;
}

/* The manager's GetAll being read: StoreUnlocked is a bool, so whether it came is kept aside. */
typedef struct ManagerReading {
        CtlManager m;
        bool has_unlocked;
} ManagerReading;

/* Unknown properties are skipped; those an older dkmd lacks stay absent (NULL, 0). */
static int read_manager_property(sd_bus_message *msg, const char *key, void *userdata) {
        ManagerReading *mr = userdata;
        CtlManager *m = &mr->m;
        const char *s;
        int b, r;

        if (strcmp(key, "Version") == 0 || strcmp(key, "StoreState") == 0 || strcmp(key, "StoreStateDetail") == 0) {
                r = sd_bus_message_read(msg, "v", "s", &s);
                if (r < 0)
                        return r;
                if (strcmp(key, "Version") == 0)
                        return strdup_to(s, &m->version);
                return strdup_to(s, strcmp(key, "StoreState") == 0 ? &m->store_state : &m->store_state_detail);
        }
        if (strcmp(key, "StoreUnlocked") == 0) {
                r = sd_bus_message_read(msg, "v", "b", &b);
                m->unlocked = b;
                mr->has_unlocked = r >= 0;
                return r;
        }
        if (strcmp(key, "NextCheckUSec") == 0)
                return sd_bus_message_read(msg, "v", "t", &m->next_check_usec);
        if (strcmp(key, "PurgeAtUSec") == 0)
                return sd_bus_message_read(msg, "v", "t", &m->purge_at_usec);
        if (strcmp(key, "PurgeDelayUSec") == 0) {
                r = sd_bus_message_read(msg, "v", "t", &m->purge_delay_usec);
                m->has_purge_delay = r >= 0;
                return r;
        }
        if (strcmp(key, "StoreApprovalGroups") == 0)
                return read_strv_variant(msg, &m->approval_groups);
        if (strcmp(key, "FleetState") == 0 || strcmp(key, "FleetUri") == 0) {
                r = sd_bus_message_read(msg, "v", "s", &s);
                if (r < 0)
                        return r;
                return strdup_to(s, key[5] == 'S' ? &m->fleet_state : &m->fleet_uri);
        }
        return sd_bus_message_skip(msg, "v"); /* a property added later */
}

int ctl_manager_get(CtlBus *b, CtlManager *ret, CtlError *e) {
        _cleanup_(sd_bus_error_free) sd_bus_error be = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        ManagerReading mr = {};
        int r;

        r = sd_bus_call_method(b->bus, SVC, MGR_PATH, PROPERTIES_IFACE, "GetAll", &be, &reply, "s", MGR_IFACE);
        if (r < 0)
                return fail(e, r, &be, NULL);
        r = read_properties(reply, read_manager_property, &mr);
        if (r >= 0 && (!mr.m.version || !mr.has_unlocked))
                r = -EBADMSG;
        if (r < 0) {
                ctl_manager_done(&mr.m);
                return fail_reply(e, r, "GetAll(" MGR_IFACE ")");
        }
        *ret = mr.m;
        return 0;
}

static int read_group_property(sd_bus_message *m, const char *key, void *userdata) {
        CtlGroup *g = userdata;
        const char *s;
        int b, r;

        if (strcmp(key, "Name") == 0 || strcmp(key, "Algorithm") == 0) {
                r = sd_bus_message_read(m, "v", "s", &s);
                return r < 0 ? r : strdup_to(s, key[0] == 'N' ? &g->name : &g->algorithm);
        }
        if (strcmp(key, "Gid") == 0)
                return sd_bus_message_read(m, "v", "u", &g->gid);
        if (strcmp(key, "ActiveGeneration") == 0)
                return sd_bus_message_read(m, "v", "u", &g->active);
        if (strcmp(key, "PendingGeneration") == 0)
                return sd_bus_message_read(m, "v", "u", &g->pending);
        if (strcmp(key, "NextRolloverUSec") == 0)
                return sd_bus_message_read(m, "v", "t", &g->next_usec);
        if (strcmp(key, "RolloverPeriodUSec") == 0)
                return sd_bus_message_read(m, "v", "t", &g->rollover_period_usec);
        if (strcmp(key, "PropagationDelayUSec") == 0)
                return sd_bus_message_read(m, "v", "t", &g->propagation_delay_usec);
        if (strcmp(key, "HotWindow") == 0)
                return sd_bus_message_read(m, "v", "u", &g->hot_window);
        if (strcmp(key, "AllowHumanMembers") == 0) {
                r = sd_bus_message_read(m, "v", "b", &b);
                g->allow_human_members = b;
                return r;
        }
        if (strcmp(key, "ApprovalGroups") == 0)
                return read_strv_variant(m, &g->approval_groups);
        if (strcmp(key, "MaxGrantUSec") == 0)
                return sd_bus_message_read(m, "v", "t", &g->max_grant_usec);
        if (strcmp(key, "RequestTimeoutUSec") == 0)
                return sd_bus_message_read(m, "v", "t", &g->request_timeout_usec);
        if (strcmp(key, "RetireNeedsApproval") == 0) {
                r = sd_bus_message_read(m, "v", "b", &b);
                g->retire_needs_approval = b;
                return r;
        }
        if (strcmp(key, "Generations") == 0)
                return read_generations(m, g);
        return sd_bus_message_skip(m, "v"); /* a property added later */
}

/* GetAll of the group interface at path: one round trip for every property. */
static int group_get_at(CtlBus *b, const char *path, CtlGroup *ret, CtlError *e) {
        _cleanup_(sd_bus_error_free) sd_bus_error be = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        CtlGroup g = {};
        int r;

        r = sd_bus_call_method(b->bus, SVC, path, PROPERTIES_IFACE, "GetAll", &be, &reply, "s", GROUP_IFACE);
        if (r < 0)
                return fail(e, r, &be, NULL);
        r = read_properties(reply, read_group_property, &g);
        if (r >= 0 && (!g.name || !g.algorithm))
                r = -EBADMSG;
        if (r >= 0)
                r = strdup_to(path, &g.path);
        if (r < 0) {
                ctl_group_done(&g);
                return fail_reply(e, r, "GetAll(" GROUP_IFACE ")");
        }
        *ret = g;
        return 0;
}

int ctl_groups_get_all(CtlBus *b, CtlGroup **ret, size_t *ret_n, CtlError *e) {
        _cleanup_(sd_bus_error_free) sd_bus_error be = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        CtlGroup *groups = NULL;
        const char *name, *path;
        size_t n = 0;
        int r;

        r = sd_bus_call_method(b->bus, SVC, MGR_PATH, MGR_IFACE, "ListGroups", &be, &reply, NULL);
        if (r < 0)
                return fail(e, r, &be, NULL);
        r = sd_bus_message_enter_container(reply, 'a', "(so)");
        while (r >= 0 && (r = sd_bus_message_read(reply, "(so)", &name, &path)) > 0) {
                CtlGroup *grown = reallocarray(groups, n + 1, sizeof(CtlGroup));

                if (!grown) {
                        r = -ENOMEM;
                        break;
                }
                groups = grown;
                r = group_get_at(b, path, &groups[n], e);
                if (r < 0) {
                        ctl_groups_free(groups, n);
                        return r;
                }
                n++;
        }
        if (r < 0) {
                ctl_groups_free(groups, n);
                return fail_reply(e, r, "ListGroups");
        }
        *ret = groups;
        *ret_n = n;
        return 0;
}

static int group_path(CtlBus *b, const char *name, char **ret, CtlError *e) {
        _cleanup_(sd_bus_error_free) sd_bus_error be = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *path;
        int r;

        r = sd_bus_call_method(b->bus, SVC, MGR_PATH, MGR_IFACE, "GetGroup", &be, &reply, "s", name);
        if (r < 0)
                return fail(e, r, &be, NULL);
        r = sd_bus_message_read(reply, "o", &path);
        if (r < 0)
                return fail_reply(e, r, "GetGroup");
        *ret = strdup(path);
        return *ret ? 0 : fail(e, -ENOMEM, NULL, NULL);
}

int ctl_group_get(CtlBus *b, const char *name, CtlGroup *ret, CtlError *e) {
        _cleanup_free_ char *path = NULL;
        int r;

        r = group_path(b, name, &path, e);
        if (r < 0)
                return r;
        return group_get_at(b, path, ret, e);
}

/* A method of the group called name, found with GetGroup (object paths are dkmd's to build). */
static int group_call(CtlBus *b, const char *name, const char *method, sd_bus_message **ret_reply, CtlError *e,
                      const char *types, ...) {
        _cleanup_(sd_bus_error_free) sd_bus_error be = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *path = NULL;
        va_list ap;
        int r;

        r = group_path(b, name, &path, e);
        if (r < 0)
                return r;
        va_start(ap, types);
        r = sd_bus_call_methodv(b->bus, SVC, path, GROUP_IFACE, method, &be, ret_reply, types, ap);
        va_end(ap);
        return r < 0 ? fail(e, r, &be, NULL) : 0;
}

static int append_policy(sd_bus_message *m, const CtlPolicy *p) {
        int r;

        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r >= 0 && p->algorithm)
                r = sd_bus_message_append(m, "{sv}", "Algorithm", "s", p->algorithm);
        if (r >= 0 && p->has_rollover_period)
                r = sd_bus_message_append(m, "{sv}", "RolloverPeriodUSec", "t", p->rollover_period_usec);
        if (r >= 0 && p->has_propagation_delay)
                r = sd_bus_message_append(m, "{sv}", "PropagationDelayUSec", "t", p->propagation_delay_usec);
        if (r >= 0 && p->has_hot_window)
                r = sd_bus_message_append(m, "{sv}", "HotWindow", "u", p->hot_window);
        if (r >= 0 && p->has_allow_human_members)
                r = sd_bus_message_append(m, "{sv}", "AllowHumanMembers", "b", (int) p->allow_human_members);
        if (r >= 0 && p->has_approval_groups) {
                r = sd_bus_message_open_container(m, 'e', "sv");
                if (r >= 0)
                        r = sd_bus_message_append(m, "s", "ApprovalGroups");
                if (r >= 0)
                        r = sd_bus_message_open_container(m, 'v', "as");
                if (r >= 0)
                        r = sd_bus_message_append_strv(m, p->approval_groups);
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
        }
        if (r >= 0 && p->has_max_grant)
                r = sd_bus_message_append(m, "{sv}", "MaxGrantUSec", "t", p->max_grant_usec);
        if (r >= 0 && p->has_request_timeout)
                r = sd_bus_message_append(m, "{sv}", "RequestTimeoutUSec", "t", p->request_timeout_usec);
        if (r >= 0 && p->has_retire_needs_approval)
                r = sd_bus_message_append(m, "{sv}", "RetireNeedsApproval", "b", (int) p->retire_needs_approval);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        return r;
}

/* Call a method whose last argument is the a{sv} of p, with the leading arguments given. */
static int call_with_policy(CtlBus *b, const char *path, const char *iface, const char *method, const char *name,
                            const uint32_t *gid, const CtlPolicy *p, CtlError *e) {
        _cleanup_(sd_bus_error_free) sd_bus_error be = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        r = sd_bus_message_new_method_call(b->bus, &m, SVC, path, iface, method);
        if (r >= 0 && name)
                r = sd_bus_message_append(m, "s", name);
        if (r >= 0 && gid)
                r = sd_bus_message_append(m, "u", *gid);
        if (r >= 0)
                r = append_policy(m, p);
        if (r < 0)
                return fail(e, r, NULL, NULL);
        r = sd_bus_call(b->bus, m, 0, &be, NULL);
        return r < 0 ? fail(e, r, &be, NULL) : 0;
}

int ctl_group_create(CtlBus *b, const char *name, uint32_t gid, const CtlPolicy *p, CtlError *e) {
        return call_with_policy(b, MGR_PATH, MGR_IFACE, "CreateGroup", name, &gid, p, e);
}

int ctl_group_set_policy(CtlBus *b, const char *name, const CtlPolicy *p, CtlError *e) {
        _cleanup_free_ char *path = NULL;
        CtlPolicy without_algorithm = *p;
        int r;

        r = group_path(b, name, &path, e);
        if (r < 0)
                return r;
        without_algorithm.algorithm = NULL; /* fixed at creation; dkmd refuses the key */
        return call_with_policy(b, path, GROUP_IFACE, "SetPolicy", NULL, NULL, &without_algorithm, e);
}

int ctl_group_rollover(CtlBus *b, const char *name, uint32_t *ret_generation, CtlError *e) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = group_call(b, name, "Rollover", &reply, e, NULL);
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "u", ret_generation);
        return r < 0 ? fail_reply(e, r, "Rollover") : 0;
}

int ctl_group_archive(CtlBus *b, const char *name, uint32_t generation, CtlError *e) {
        return group_call(b, name, "Archive", NULL, e, "u", generation);
}

static int read_path_reply(sd_bus_message *reply, const char *method, char **ret, CtlError *e) {
        const char *path;
        int r;

        r = sd_bus_message_read(reply, "o", &path);
        if (r < 0)
                return fail_reply(e, r, method);
        *ret = strdup(path);
        return *ret ? 0 : fail(e, -ENOMEM, NULL, NULL);
}

int ctl_group_retire(CtlBus *b, const char *name, uint32_t generation, const char *justification,
                     char **ret_request_path, CtlError *e) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = group_call(b, name, "Retire", &reply, e, "us", generation, justification ?: "");
        if (r < 0)
                return r;
        return read_path_reply(reply, "Retire", ret_request_path, e);
}

int ctl_group_load(CtlBus *b, const char *name, CtlError *e) {
        return group_call(b, name, "Load", NULL, e, NULL);
}

int ctl_reload(CtlBus *b, char ***ret_problems, CtlError *e) {
        _cleanup_(sd_bus_error_free) sd_bus_error be = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        char **problems = NULL;
        int r;

        r = sd_bus_call_method(b->bus, SVC, MGR_PATH, MGR_IFACE, "Reload", &be, &reply, NULL);
        if (r < 0)
                return fail(e, r, &be, NULL);
        r = sd_bus_message_read_strv(reply, &problems);
        if (r < 0)
                return fail_reply(e, r, "Reload");
        if (!problems) {
                /* An empty array reads as NULL; callers get an empty list. */
                problems = calloc(1, sizeof(char *));
                if (!problems)
                        return fail(e, -ENOMEM, NULL, NULL);
        }
        *ret_problems = problems;
        return 0;
}

/* ---- break-glass requests ---- */

int ctl_request_access(CtlBus *b, const char *group, const char *justification, uint64_t duration_usec, char **ret_path,
                       CtlError *e) {
        _cleanup_(sd_bus_error_free) sd_bus_error be = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_call_method(b->bus, SVC, MGR_PATH, MGR_IFACE, "RequestAccess", &be, &reply, "sst", group,
                               justification, duration_usec);
        if (r < 0)
                return fail(e, r, &be, NULL);
        return read_path_reply(reply, "RequestAccess", ret_path, e);
}

int ctl_requests_list(CtlBus *b, CtlRequest **ret, size_t *ret_n, CtlError *e) {
        _cleanup_(sd_bus_error_free) sd_bus_error be = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        CtlRequest *list = NULL;
        size_t n = 0;
        int r;

        r = sd_bus_call_method(b->bus, SVC, MGR_PATH, MGR_IFACE, "ListRequests", &be, &reply, NULL);
        if (r < 0)
                return fail(e, r, &be, NULL);
        r = sd_bus_message_enter_container(reply, 'a', "(otssusst)");
        for (;;) {
                const char *path, *kind, *group, *state, *justification;
                CtlRequest *grown, q = {};

                if (r < 0)
                        break;
                r = sd_bus_message_read(reply, "(otssusst)", &path, &q.id, &kind, &group, &q.requester, &state,
                                        &justification, &q.expires_usec);
                if (r <= 0)
                        break;
                grown = reallocarray(list, n + 1, sizeof(CtlRequest));
                if (!grown) {
                        r = -ENOMEM;
                        break;
                }
                list = grown;
                list[n++] = q;
                if (strdup_to(path, &list[n - 1].path) < 0 || strdup_to(kind, &list[n - 1].kind) < 0 ||
                    strdup_to(group, &list[n - 1].group) < 0 || strdup_to(state, &list[n - 1].state) < 0 ||
                    strdup_to(justification, &list[n - 1].justification) < 0)
                        r = -ENOMEM;
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(reply);
        if (r < 0) {
                ctl_requests_free(list, n);
                return fail_reply(e, r, "ListRequests");
        }
        *ret = list;
        *ret_n = n;
        return 0;
}

static int read_approvals(sd_bus_message *m, CtlRequest *q) {
        CtlApproval a;
        int r;

        r = sd_bus_message_enter_container(m, 'v', "a(uut)");
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(m, 'a', "(uut)");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_read(m, "(uut)", &a.level, &a.uid, &a.usec)) > 0) {
                CtlApproval *grown = reallocarray(q->approvals, q->n_approvals + 1, sizeof(CtlApproval));

                if (!grown)
                        return -ENOMEM;
                q->approvals = grown;
                q->approvals[q->n_approvals++] = a;
        }
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(m);
}

static int read_request_property(sd_bus_message *m, const char *key, void *userdata) {
        CtlRequest *q = userdata;
        static const struct {
                const char *key;
                size_t offset;
        } strings[] = {
                { "Kind", offsetof(CtlRequest, kind) },
                { "Group", offsetof(CtlRequest, group) },
                { "Target", offsetof(CtlRequest, target) },
                { "Justification", offsetof(CtlRequest, justification) },
                { "State", offsetof(CtlRequest, state) },
                { "Reason", offsetof(CtlRequest, reason) },
        }, times[] = {
                { "Id", offsetof(CtlRequest, id) },
                { "DurationUSec", offsetof(CtlRequest, duration_usec) },
                { "CreatedUSec", offsetof(CtlRequest, created_usec) },
                { "DeadlineUSec", offsetof(CtlRequest, deadline_usec) },
                { "GrantedUSec", offsetof(CtlRequest, granted_usec) },
                { "ExpiresUSec", offsetof(CtlRequest, expires_usec) },
                { "ClosedUSec", offsetof(CtlRequest, closed_usec) },
        }, uints[] = {
                { "Generation", offsetof(CtlRequest, generation) },
                { "Requester", offsetof(CtlRequest, requester) },
                { "ClosedBy", offsetof(CtlRequest, closed_by) },
        };
        const char *s;
        int r;

        for (size_t i = 0; i < ELEMENTSOF(strings); i++)
                if (strcmp(key, strings[i].key) == 0) {
                        r = sd_bus_message_read(m, "v", "s", &s);
                        return r < 0 ? r : strdup_to(s, (char **) ((uint8_t *) q + strings[i].offset));
                }
        for (size_t i = 0; i < ELEMENTSOF(times); i++)
                if (strcmp(key, times[i].key) == 0)
                        return sd_bus_message_read(m, "v", "t", (uint64_t *) ((uint8_t *) q + times[i].offset));
        for (size_t i = 0; i < ELEMENTSOF(uints); i++)
                if (strcmp(key, uints[i].key) == 0)
                        return sd_bus_message_read(m, "v", "u", (uint32_t *) ((uint8_t *) q + uints[i].offset));
        if (strcmp(key, "ApprovalGroups") == 0)
                return read_strv_variant(m, &q->approval_groups);
        if (strcmp(key, "Approvals") == 0)
                return read_approvals(m, q);
        return sd_bus_message_skip(m, "v"); /* a property added later */
}

int ctl_request_get_at(CtlBus *b, const char *path, CtlRequest *ret, CtlError *e) {
        _cleanup_(sd_bus_error_free) sd_bus_error be = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        CtlRequest q = {};
        int r;

        r = sd_bus_call_method(b->bus, SVC, path, PROPERTIES_IFACE, "GetAll", &be, &reply, "s", REQUEST_IFACE);
        if (r < 0)
                return fail(e, r, &be, NULL);
        r = read_properties(reply, read_request_property, &q);
        if (r >= 0 && (q.id == 0 || !q.kind || !q.group || !q.state))
                r = -EBADMSG;
        if (r >= 0)
                r = strdup_to(path, &q.path);
        if (r < 0) {
                ctl_request_done(&q);
                return fail_reply(e, r, "GetAll(" REQUEST_IFACE ")");
        }
        *ret = q;
        return 0;
}

static int request_path(CtlBus *b, uint64_t id, char **ret, CtlError *e) {
        _cleanup_(sd_bus_error_free) sd_bus_error be = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_call_method(b->bus, SVC, MGR_PATH, MGR_IFACE, "GetRequest", &be, &reply, "t", id);
        if (r < 0)
                return fail(e, r, &be, NULL);
        return read_path_reply(reply, "GetRequest", ret, e);
}

int ctl_request_get(CtlBus *b, uint64_t id, CtlRequest *ret, CtlError *e) {
        _cleanup_free_ char *path = NULL;
        int r;

        r = request_path(b, id, &path, e);
        if (r < 0)
                return r;
        return ctl_request_get_at(b, path, ret, e);
}

/* A method of request id, found with GetRequest (object paths are dkmd's to build). */
static int request_call(CtlBus *b, uint64_t id, const char *method, CtlError *e, const char *types, ...) {
        _cleanup_(sd_bus_error_free) sd_bus_error be = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *path = NULL;
        va_list ap;
        int r;

        r = request_path(b, id, &path, e);
        if (r < 0)
                return r;
        va_start(ap, types);
        r = sd_bus_call_methodv(b->bus, SVC, path, REQUEST_IFACE, method, &be, NULL, types, ap);
        va_end(ap);
        return r < 0 ? fail(e, r, &be, NULL) : 0;
}

int ctl_request_approve(CtlBus *b, uint64_t id, CtlError *e) {
        return request_call(b, id, "Approve", e, NULL);
}

int ctl_request_deny(CtlBus *b, uint64_t id, const char *reason, CtlError *e) {
        return request_call(b, id, "Deny", e, "s", reason ?: "");
}

int ctl_request_cancel(CtlBus *b, uint64_t id, CtlError *e) {
        return request_call(b, id, "Cancel", e, NULL);
}

int ctl_request_revoke(CtlBus *b, uint64_t id, CtlError *e) {
        return request_call(b, id, "Revoke", e, NULL);
}

/* ---- protectors and purge ---- */

int ctl_protectors_list(CtlBus *b, bool check, CtlProtector **ret, size_t *ret_n, CtlError *e) {
        _cleanup_(sd_bus_error_free) sd_bus_error be = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *method = check ? "CheckProtectors" : "ListProtectors";
        const char *name, *type, *health, *detail;
        CtlProtector *list = NULL;
        size_t n = 0;
        int r;

        r = sd_bus_call_method(b->bus, SVC, MGR_PATH, MGR_IFACE, method, &be, &reply, NULL);
        if (r < 0)
                return fail(e, r, &be, NULL);
        r = sd_bus_message_enter_container(reply, 'a', "(ssss)");
        while (r >= 0 && (r = sd_bus_message_read(reply, "(ssss)", &name, &type, &health, &detail)) > 0) {
                CtlProtector *grown = reallocarray(list, n + 1, sizeof(CtlProtector));

                if (!grown) {
                        r = -ENOMEM;
                        break;
                }
                list = grown;
                list[n++] = (CtlProtector){};
                if (strdup_to(name, &list[n - 1].name) < 0 || strdup_to(type, &list[n - 1].type) < 0 ||
                    strdup_to(health, &list[n - 1].health) < 0 || strdup_to(detail, &list[n - 1].detail) < 0)
                        r = -ENOMEM;
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(reply);
        if (r < 0) {
                ctl_protectors_free(list, n);
                return fail_reply(e, r, method);
        }
        *ret = list;
        *ret_n = n;
        return 0;
}

/* AddProtector's a{sv}: "Uri" s (pkcs11), "Pcrs" au (tpm2); only what was given. */
static int append_protector_options(sd_bus_message *m, const CtlProtectorSpec *spec) {
        int r;

        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r >= 0 && spec->uri)
                r = sd_bus_message_append(m, "{sv}", "Uri", "s", spec->uri);
        if (r >= 0 && spec->pcrs) {
                r = sd_bus_message_open_container(m, 'e', "sv");
                if (r >= 0)
                        r = sd_bus_message_append(m, "s", "Pcrs");
                if (r >= 0)
                        r = sd_bus_message_open_container(m, 'v', "au");
                if (r >= 0)
                        r = sd_bus_message_append_array(m, 'u', spec->pcrs, spec->n_pcrs * sizeof(uint32_t));
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        return r;
}

int ctl_protector_add(CtlBus *b, const char *name, const CtlProtectorSpec *spec, const char *justification,
                      char **ret_request_path, CtlError *e) {
        _cleanup_(sd_bus_error_free) sd_bus_error be = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        int r;

        r = sd_bus_message_new_method_call(b->bus, &m, SVC, MGR_PATH, MGR_IFACE, "AddProtector");
        if (r >= 0)
                r = sd_bus_message_append(m, "ss", name, spec->type);
        if (r >= 0)
                r = append_protector_options(m, spec);
        if (r >= 0)
                r = sd_bus_message_append(m, "s", justification ?: "");
        if (r < 0)
                return fail(e, r, NULL, NULL);
        r = sd_bus_call(b->bus, m, 0, &be, &reply);
        if (r < 0)
                return fail(e, r, &be, NULL);
        return read_path_reply(reply, "AddProtector", ret_request_path, e);
}

int ctl_protector_remove(CtlBus *b, const char *name, const char *justification, char **ret_request_path, CtlError *e) {
        _cleanup_(sd_bus_error_free) sd_bus_error be = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_call_method(b->bus, SVC, MGR_PATH, MGR_IFACE, "RemoveProtector", &be, &reply, "ss", name,
                               justification ?: "");
        if (r < 0)
                return fail(e, r, &be, NULL);
        return read_path_reply(reply, "RemoveProtector", ret_request_path, e);
}

int ctl_purge(CtlBus *b, const char *justification, char **ret_request_path, CtlError *e) {
        _cleanup_(sd_bus_error_free) sd_bus_error be = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_call_method(b->bus, SVC, MGR_PATH, MGR_IFACE, "Purge", &be, &reply, "s", justification ?: "");
        if (r < 0)
                return fail(e, r, &be, NULL);
        return read_path_reply(reply, "Purge", ret_request_path, e);
}

void ctl_hosts_free(CtlHost *hosts, size_t n) {
        for (size_t i = 0; hosts && i < n; i++) {
                free(hosts[i].name);
                free(hosts[i].public_key);
                free(hosts[i].state);
        }
        free(hosts);
}

int ctl_hosts_list(CtlBus *b, CtlHost **ret, size_t *ret_n, CtlError *e) {
        _cleanup_(sd_bus_error_free) sd_bus_error be = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *name, *key, *state;
        CtlHost *list = NULL;
        size_t n = 0;
        int r;

        r = sd_bus_call_method(b->bus, SVC, MGR_PATH, MGR_IFACE, "ListHosts", &be, &reply, NULL);
        if (r < 0)
                return fail(e, r, &be, NULL);
        r = sd_bus_message_enter_container(reply, 'a', "(sss)");
        while (r >= 0 && (r = sd_bus_message_read(reply, "(sss)", &name, &key, &state)) > 0) {
                CtlHost *grown = reallocarray(list, n + 1, sizeof(CtlHost));

                if (!grown) {
                        r = -ENOMEM;
                        break;
                }
                list = grown;
                list[n++] = (CtlHost){};
                if (strdup_to(name, &list[n - 1].name) < 0 || strdup_to(key, &list[n - 1].public_key) < 0 ||
                    strdup_to(state, &list[n - 1].state) < 0)
                        r = -ENOMEM;
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(reply);
        if (r < 0) {
                ctl_hosts_free(list, n);
                return fail_reply(e, r, "ListHosts");
        }
        *ret = list;
        *ret_n = n;
        return 0;
}

int ctl_host_change(CtlBus *b, bool enrol, const char *host, const char *justification, char **ret_request_path,
                    CtlError *e) {
        _cleanup_(sd_bus_error_free) sd_bus_error be = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *method = enrol ? "EnrollHost" : "RemoveHost";
        int r;

        r = sd_bus_call_method(b->bus, SVC, MGR_PATH, MGR_IFACE, method, &be, &reply, "ss", host, justification ?: "");
        if (r < 0)
                return fail(e, r, &be, NULL);
        return read_path_reply(reply, method, ret_request_path, e);
}
