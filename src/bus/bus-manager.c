/* SPDX-License-Identifier: MIT */
/* The vtables of org.dkm.KeyManager1: manager methods, group objects, their properties and methods. */
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus-errors.h"
#include "bus-manager.h"
#include "loader.h"
#include "macro.h"

/* Only the daemon and bus layers log; one line per mutation or refusal, never key material. */
#define bus_log(fmt, ...) fprintf(stderr, "dkmd: " fmt "\n", ##__VA_ARGS__)

static int group_path(const char *name, char **ret) {
        /* Group names may hold '.', '-' and '_', which object paths do not allow as is. */
        return sd_bus_path_encode(BUS_GROUP_PATH_PREFIX, name, ret);
}

/* The group an object path names, or -ENOENT. */
static int group_from_path(BusManager *m, const char *path, StoreGroup **ret) {
        _cleanup_free_ char *name = NULL;
        int r;

        r = sd_bus_path_decode(path, BUS_GROUP_PATH_PREFIX, &name);
        if (r <= 0 || !store_group_name_is_valid(name))
                return -ENOENT;
        return store_group_load(m->store, name, ret);
}

/* After any change of generations: put the group into the kernel as the store now has it. */
static int load_group(BusManager *m, const StoreGroup *g) {
        _cleanup_keyring_manifest_ KeyringManifest *manifest = NULL;
        _cleanup_free_ uid_t *uids = NULL;
        size_t n_uids;
        int r;

        r = loader_member_uids(g->gid, &uids, &n_uids);
        if (r < 0)
                return r;
        r = loader_build_manifest(m->store, g, g->policy.hot_window, uids, n_uids, &manifest);
        if (r < 0)
                return r;
        r = loader_run_helper(manifest, (char *[]) { (char *) "load", NULL });
        if (r < 0)
                return r;
        if (r > 0) {
                bus_log("%s exited with status %d loading group %s", loader_helper_path(), r, g->name);
                return -BUS_ERRNO_LOAD_FAILED;
        }
        return 0;
}

static int check_admin(BusManager *m, sd_bus_message *msg, const char *what, sd_bus_error *error) {
        uid_t uid = (uid_t) -1;
        int r;

        r = bus_auth_check_admin(&m->auth, msg, &uid);
        if (r < 0) {
                bus_log("refused %s to uid %d (%s)", what, uid == (uid_t) -1 ? -1 : (int) uid,
                        sd_bus_message_get_sender(msg) ?: "?");
                return bus_error_errno(error, r, "%s", what);
        }
        return 0;
}

/* Options of CreateGroup: a{sv}. Unknown keys and wrong types are refused, not ignored, so a
 * typo never silently creates a group with defaults. */
static int parse_create_options(sd_bus_message *msg, CryptAlg *alg, uint64_t *period, sd_bus_error *error) {
        int r;

        r = sd_bus_message_enter_container(msg, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(msg, 'e', "sv")) > 0) {
                const char *key;

                r = sd_bus_message_read(msg, "s", &key);
                if (r < 0)
                        return r;
                if (strcmp(key, "Algorithm") == 0) {
                        const char *s;

                        r = sd_bus_message_read(msg, "v", "s", &s);
                        if (r < 0)
                                return bus_error_errno(error, -EINVAL, "option Algorithm must be a string");
                        r = crypt_alg_from_string(s, alg);
                        if (r < 0)
                                return bus_error_errno(error, -EINVAL, "unknown algorithm '%s'", s);
                } else if (strcmp(key, "RolloverPeriodUSec") == 0) {
                        r = sd_bus_message_read(msg, "v", "t", period);
                        if (r < 0)
                                return bus_error_errno(error, -EINVAL, "option RolloverPeriodUSec must be a uint64 (t)");
                } else
                        return bus_error_errno(error, -EINVAL, "unknown option '%s'", key);
                r = sd_bus_message_exit_container(msg);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(msg);
}

static int method_create_group(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        BusManager *m = userdata;
        _cleanup_store_group_ StoreGroup *g = NULL;
        _cleanup_free_ char *path = NULL;
        CryptAlg alg = CRYPT_ALG_XCHACHA20_POLY1305;
        uint64_t period = 0;
        const char *name;
        uint32_t gid;
        int r;

        r = sd_bus_message_read(msg, "su", &name, &gid);
        if (r < 0)
                return r;
        r = check_admin(m, msg, "CreateGroup", error);
        if (r < 0)
                return r;
        r = parse_create_options(msg, &alg, &period, error);
        if (r < 0)
                return r;
        if (!store_group_name_is_valid(name))
                return bus_error_errno(error, -EINVAL, "group name must match [a-z0-9][a-z0-9_.-]{0,63}");
        /* gid 0 would hand every key to root's group; an unknown gid has no members to load for. */
        if (gid == 0 || gid == (uint32_t) -1 || !getgrgid((gid_t) gid))
                return bus_error_errno(error, -EINVAL, "gid %u is not a usable group", (unsigned) gid);
        r = crypt_alg_check(alg);
        if (r < 0)
                return bus_error_errno(error, r, "algorithm %s", crypt_alg_to_string(alg));

        r = store_group_create(m->store, name, (gid_t) gid, alg, &(StoreGroupPolicy) { .rollover_period_usec = period, .hot_window = STORE_HOT_WINDOW_DEFAULT }, &g);
        if (r < 0)
                return bus_error_errno(error, r, "creating group %s", name);
        bus_log("created group %s (gid %u, %s)", name, (unsigned) gid, crypt_alg_to_string(alg));
        r = load_group(m, g);
        if (r < 0)
                return bus_error_errno(error, r, "group %s created, but loading it into the kernel", name);
        r = group_path(name, &path);
        if (r < 0)
                return r;
        (void) sd_bus_emit_object_added(sd_bus_message_get_bus(msg), path);
        return sd_bus_reply_method_return(msg, "o", path);
}

static int method_list_groups(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        BusManager *m = userdata;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_strv_free_ char **names = NULL;
        int r;

        r = store_group_list(m->store, &names);
        if (r < 0)
                return bus_error_errno(error, r, "listing groups");
        r = sd_bus_message_new_method_return(msg, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(so)");
        if (r < 0)
                return r;
        for (char **n = names; n && *n; n++) {
                _cleanup_free_ char *path = NULL;

                r = group_path(*n, &path);
                if (r < 0)
                        return r;
                r = sd_bus_message_append(reply, "(so)", *n, path);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_get_group(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        BusManager *m = userdata;
        _cleanup_store_group_ StoreGroup *g = NULL;
        _cleanup_free_ char *path = NULL;
        const char *name;
        int r;

        r = sd_bus_message_read(msg, "s", &name);
        if (r < 0)
                return r;
        if (!store_group_name_is_valid(name))
                return bus_error_errno(error, -EINVAL, "group name must match [a-z0-9][a-z0-9_.-]{0,63}");
        r = store_group_load(m->store, name, &g);
        if (r < 0)
                return bus_error_errno(error, r, "group %s", name);
        r = group_path(name, &path);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(msg, "o", path);
}

static int method_rollover(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        BusManager *m = userdata;
        _cleanup_store_group_ StoreGroup *g = NULL;
        const char *path = sd_bus_message_get_path(msg);
        uint32_t number;
        int r;

        r = check_admin(m, msg, "Rollover", error);
        if (r < 0)
                return r;
        r = group_from_path(m, path, &g);
        if (r < 0)
                return bus_error_errno(error, r, "group at %s", path);
        r = store_rollover(m->store, g->name, &number);
        if (r < 0)
                return bus_error_errno(error, r, "rolling over group %s", g->name);
        bus_log("rolled over group %s to generation %u", g->name, (unsigned) number);
        g = store_group_free(g);
        r = group_from_path(m, path, &g);
        if (r < 0)
                return bus_error_errno(error, r, "re-reading group at %s", path);
        /* The new generation is durable and active in the store; the kernel follows. */
        r = load_group(m, g);
        if (r < 0)
                return bus_error_errno(error, r, "generation %u of %s is active, but loading it into the kernel",
                                       (unsigned) number, g->name);
        (void) sd_bus_emit_properties_changed(sd_bus_message_get_bus(msg), path, BUS_GROUP_INTERFACE,
                                              "ActiveGeneration", NULL);
        return sd_bus_reply_method_return(msg, "u", number);
}

static int method_retire(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        uint32_t number;
        int r;

        r = sd_bus_message_read(msg, "u", &number);
        if (r < 0)
                return r;
        /* Crypto-shredding is break-glass grade (DESIGN.md promise 5): refused for everyone,
         * root included, until the approval workflow exists. */
        return bus_error_errno(error, -BUS_ERRNO_APPROVAL_REQUIRED, "retiring generation %u", (unsigned) number);
}

static int property_get(sd_bus *bus, const char *path, const char *interface, const char *property,
                        sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        _cleanup_store_group_ StoreGroup *g = NULL;
        const StoreGeneration *active;
        int r;

        r = group_from_path(userdata, path, &g);
        if (r < 0)
                return bus_error_errno(error, r, "group at %s", path);
        if (strcmp(property, "Name") == 0)
                return sd_bus_message_append(reply, "s", g->name);
        if (strcmp(property, "Gid") == 0)
                return sd_bus_message_append(reply, "u", (uint32_t) g->gid);
        if (strcmp(property, "Algorithm") == 0)
                return sd_bus_message_append(reply, "s", crypt_alg_to_string(g->alg));
        if (strcmp(property, "ActiveGeneration") == 0) {
                active = store_group_active_generation(g);
                return sd_bus_message_append(reply, "u", active ? active->number : 0U);
        }
        if (strcmp(property, "RolloverPeriodUSec") == 0)
                return sd_bus_message_append(reply, "t", g->policy.rollover_period_usec);
        return -EINVAL; /* only reachable if the vtable names a property not handled here */
}

/* Resolves an object path under the group prefix: an object exists exactly when the store has
 * the group, so a path for a deleted or never-created group is UnknownObject. */
static int group_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **found,
                      sd_bus_error *error) {
        _cleanup_store_group_ StoreGroup *g = NULL;

        if (group_from_path(userdata, path, &g) < 0)
                return 0;
        *found = userdata;
        return 1;
}

static int group_enumerate(sd_bus *bus, const char *prefix, void *userdata, char ***ret, sd_bus_error *error) {
        BusManager *m = userdata;
        _cleanup_strv_free_ char **names = NULL;
        _cleanup_strv_free_ char **paths = NULL;
        size_t n = 0;
        int r;

        r = store_group_list(m->store, &names);
        if (r < 0)
                return bus_error_errno(error, r, "listing groups");
        while (names && names[n])
                n++;
        paths = calloc(n + 1, sizeof(char *));
        if (!paths)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                r = group_path(names[i], &paths[i]);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(paths);
        return 0;
}

static const sd_bus_vtable manager_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_NAMES("CreateGroup", "sua{sv}", SD_BUS_PARAM(name) SD_BUS_PARAM(gid) SD_BUS_PARAM(options),
                                 "o", SD_BUS_PARAM(group), method_create_group, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("ListGroups", NULL, , "a(so)", SD_BUS_PARAM(groups), method_list_groups,
                                 SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("GetGroup", "s", SD_BUS_PARAM(name), "o", SD_BUS_PARAM(group), method_get_group,
                                 SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

static const sd_bus_vtable group_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Name", "s", property_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Gid", "u", property_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Algorithm", "s", property_get, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("ActiveGeneration", "u", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("RolloverPeriodUSec", "t", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_NAMES("Rollover", NULL, , "u", SD_BUS_PARAM(generation), method_rollover,
                                 SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("Retire", "u", SD_BUS_PARAM(generation), NULL, , method_retire,
                                 SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

int bus_manager_attach(sd_bus *bus, BusManager *m) {
        int r;

        r = sd_bus_add_object_vtable(bus, NULL, BUS_MANAGER_PATH, BUS_MANAGER_INTERFACE, manager_vtable, m);
        if (r < 0)
                return r;
        r = sd_bus_add_fallback_vtable(bus, NULL, BUS_GROUP_PATH_PREFIX, BUS_GROUP_INTERFACE, group_vtable,
                                       group_find, m);
        if (r < 0)
                return r;
        r = sd_bus_add_node_enumerator(bus, NULL, BUS_GROUP_PATH_PREFIX, group_enumerate, m);
        if (r < 0)
                return r;
        return sd_bus_add_object_manager(bus, NULL, BUS_MANAGER_PATH);
}
