/* SPDX-License-Identifier: MIT */
/* One object per key group: /org/dkm/KeyManager1/group/<name>, interface org.dkm.KeyManager1.Group. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "bus-errors.h"
#include "bus-manager.h"

/* The group an object path names, or -ENOENT. The store is read on every call: it is the truth,
 * and dkm-store may change it while dkmd runs. */
static int group_from_path(BusManager *m, const char *path, StoreGroup **ret) {
        _cleanup_free_ char *name = NULL;
        int r;

        r = sd_bus_path_decode(path, BUS_GROUP_PATH_PREFIX, &name);
        if (r <= 0 || !store_group_name_is_valid(name))
                return -ENOENT;
        return store_group_load(m->manager->store, name, ret);
}

/* Authorize, then find the group of the message's object. */
static int begin_mutation(BusCall *call, StoreGroup **ret, sd_bus_error *error) {
        const char *path = sd_bus_message_get_path(call->msg);
        int r;

        r = bus_call_require_admin(call, error);
        if (r < 0)
                return r;
        r = group_from_path(call->m, path, ret);
        if (r < 0)
                return bus_call_refuse(call, error, r, "group at %s", path);
        return 0;
}

/* Generation numbers start at 1; 0 and unknown numbers get the same named error. */
static int check_generation(BusCall *call, const StoreGroup *g, uint32_t number, sd_bus_error *error) {
        if (!store_group_find_generation(g, number))
                return bus_call_refuse(call, error, -BUS_ERRNO_NO_SUCH_GENERATION, "generation %u of %s",
                                       (unsigned) number, g->name);
        return 0;
}

static int method_rollover(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        BusManager *m = userdata;
        _cleanup_(bus_call_end) BusCall call = {};
        _cleanup_store_group_ StoreGroup *g = NULL;
        uint32_t number = 0;
        int r;

        r = bus_call_begin(&call, m, msg, "Rollover", error);
        if (r < 0)
                return r;
        r = begin_mutation(&call, &g, error);
        if (r < 0)
                return r;
        r = manager_rollover(m->manager, g->name, &number);
        if (r == -MANAGER_ERRNO_ROLLOVER_PENDING)
                return bus_call_refuse(&call, error, r, "rolling over group %s: generation %u is pending", g->name,
                                       (unsigned) number);
        if (r < 0)
                return bus_call_refuse(&call, error, r, "rolling over group %s", g->name);
        return sd_bus_reply_method_return(msg, "u", number);
}

static int method_archive(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        BusManager *m = userdata;
        _cleanup_(bus_call_end) BusCall call = {};
        _cleanup_store_group_ StoreGroup *g = NULL;
        const StoreGeneration *gen;
        uint32_t number;
        int r;

        r = sd_bus_message_read(msg, "u", &number);
        if (r < 0)
                return r;
        r = bus_call_begin(&call, m, msg, "Archive", error);
        if (r < 0)
                return r;
        r = begin_mutation(&call, &g, error);
        if (r < 0)
                return r;
        r = check_generation(&call, g, number, error);
        if (r < 0)
                return r;
        /* Refusals the store would give, given before anything is audited as done. */
        gen = store_group_find_generation(g, number);
        if (gen->state == GENERATION_ACTIVE)
                r = -EBUSY;
        else if (gen->state == GENERATION_ARCHIVED)
                r = -EALREADY;
        else if (gen->state == GENERATION_RETIRED)
                r = -EKEYREVOKED;
        if (r < 0)
                return bus_call_refuse(&call, error, r, "archiving generation %u of %s", (unsigned) number, g->name);
        r = manager_archive(m->manager, g->name, number);
        if (r < 0)
                return bus_call_refuse(&call, error, r, "archiving generation %u of %s", (unsigned) number, g->name);
        return sd_bus_reply_method_return(msg, NULL);
}

static int method_retire(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        BusManager *m = userdata;
        _cleanup_(bus_call_end) BusCall call = {};
        _cleanup_store_group_ StoreGroup *g = NULL;
        _cleanup_free_ char *path = NULL;
        const char *justification;
        uint64_t id = 0;
        uint32_t number;
        int r;

        r = sd_bus_message_read(msg, "us", &number, &justification);
        if (r < 0)
                return r;
        r = bus_call_begin(&call, m, msg, "Retire", error);
        if (r < 0)
                return r;
        r = begin_mutation(&call, &g, error);
        if (r < 0)
                return r;
        r = check_generation(&call, g, number, error);
        if (r < 0)
                return r;
        /* Crypto-shredding is break-glass grade (DESIGN.md promise 5): a request that every
         * level approves, unless the policy says otherwise. The manager audits its refusals. */
        r = manager_request_retire(m->manager, g->name, number, justification, &id);
        if (r == -ACCESS_ERRNO_NO_APPROVERS)
                r = -BUS_ERRNO_APPROVAL_REQUIRED;
        if (r < 0)
                return bus_error_errno(error, r, "retiring generation %u of %s", (unsigned) number, g->name);
        if (id == 0)
                return sd_bus_reply_method_return(msg, "o", "/");
        r = bus_request_path(id, &path);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(msg, "o", path);
}

static int method_set_policy(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        BusManager *m = userdata;
        _cleanup_(bus_call_end) BusCall call = {};
        _cleanup_store_group_ StoreGroup *g = NULL;
        StoreGroupPolicy policy;
        int r;

        r = bus_call_begin(&call, m, msg, "SetPolicy", error);
        if (r < 0)
                return r;
        r = begin_mutation(&call, &g, error);
        if (r < 0)
                return r;
        policy = g->policy; /* keys not given keep their value */
        r = bus_read_policy_options(msg, NULL, &policy, error);
        if (r < 0) {
                bus_call_audit_refusal(&call, error);
                return r;
        }
        r = manager_set_policy(m->manager, g->name, &policy);
        if (r < 0)
                return bus_call_refuse(&call, error, r, "setting the policy of %s", g->name);
        return sd_bus_reply_method_return(msg, NULL);
}

static int method_load(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        BusManager *m = userdata;
        _cleanup_(bus_call_end) BusCall call = {};
        _cleanup_store_group_ StoreGroup *g = NULL;
        char object[80];
        int r;

        r = bus_call_begin(&call, m, msg, "Load", error);
        if (r < 0)
                return r;
        r = begin_mutation(&call, &g, error);
        if (r < 0)
                return r;
        (void) snprintf(object, sizeof(object), "group/%s", g->name);
        r = manager_audit(m->manager, "load", AUDIT_OUTCOME_OK, object, "requested");
        if (r < 0)
                return bus_call_refuse(&call, error, r, "loading %s into the kernel", g->name);
        r = manager_load(m->manager, g);
        if (r < 0)
                return bus_call_refuse(&call, error, r, "loading %s into the kernel", g->name);
        return sd_bus_reply_method_return(msg, NULL);
}

static uint32_t generation_in_state(const StoreGroup *g, GenerationState state) {
        for (size_t i = g->n_generations; i > 0; i--)
                if (g->generations[i - 1].state == state)
                        return g->generations[i - 1].number;
        return 0;
}

static int append_generations(sd_bus_message *reply, const StoreGroup *g) {
        int r;

        r = sd_bus_message_open_container(reply, 'a', "(ustttt)");
        if (r < 0)
                return r;
        for (size_t i = 0; i < g->n_generations; i++) {
                const StoreGeneration *gen = &g->generations[i];

                r = sd_bus_message_append(reply, "(ustttt)", gen->number, generation_state_to_string(gen->state),
                                          gen->created_usec, gen->activated_usec, gen->archived_usec,
                                          gen->retired_usec);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(reply);
}

static int property_get(sd_bus *bus, const char *path, const char *interface, const char *property,
                        sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        _cleanup_store_group_ StoreGroup *g = NULL;
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
        if (strcmp(property, "ActiveGeneration") == 0)
                return sd_bus_message_append(reply, "u", generation_in_state(g, GENERATION_ACTIVE));
        if (strcmp(property, "PendingGeneration") == 0)
                return sd_bus_message_append(reply, "u", generation_in_state(g, GENERATION_PENDING));
        if (strcmp(property, "NextRolloverUSec") == 0)
                return sd_bus_message_append(reply, "t", manager_next_step_usec(g));
        if (strcmp(property, "RolloverPeriodUSec") == 0)
                return sd_bus_message_append(reply, "t", g->policy.rollover_period_usec);
        if (strcmp(property, "PropagationDelayUSec") == 0)
                return sd_bus_message_append(reply, "t", g->policy.propagation_delay_usec);
        if (strcmp(property, "HotWindow") == 0)
                return sd_bus_message_append(reply, "u", g->policy.hot_window);
        if (strcmp(property, "AllowHumanMembers") == 0)
                return sd_bus_message_append(reply, "b", g->policy.allow_human_members);
        if (strcmp(property, "Generations") == 0)
                return append_generations(reply, g);
        if (strcmp(property, "ApprovalGroups") == 0)
                return bus_append_gid_names(reply, g->policy.approval_levels, g->policy.n_approval_levels);
        if (strcmp(property, "MaxGrantUSec") == 0)
                return sd_bus_message_append(reply, "t", g->policy.max_grant_usec);
        if (strcmp(property, "RequestTimeoutUSec") == 0)
                return sd_bus_message_append(reply, "t", g->policy.request_timeout_usec);
        if (strcmp(property, "RetireNeedsApproval") == 0)
                return sd_bus_message_append(reply, "b", g->policy.retire_needs_approval);
        return -EINVAL; /* only reachable if the vtable names a property not handled here */
}

/* An object exists exactly when the store has the group, so a path for a never-created group
 * is UnknownObject. */
int bus_group_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **found,
                   sd_bus_error *error) {
        _cleanup_store_group_ StoreGroup *g = NULL;

        if (group_from_path(userdata, path, &g) < 0)
                return 0;
        *found = userdata;
        return 1;
}

int bus_group_enumerate(sd_bus *bus, const char *prefix, void *userdata, char ***ret, sd_bus_error *error) {
        BusManager *m = userdata;
        _cleanup_strv_free_ char **names = NULL;
        _cleanup_strv_free_ char **paths = NULL;
        size_t n = 0;
        int r;

        r = store_group_list(m->manager->store, &names);
        if (r < 0)
                return bus_error_errno(error, r, "listing groups");
        while (names && names[n])
                n++;
        paths = calloc(n + 1, sizeof(char *));
        if (!paths)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                r = bus_group_path(names[i], &paths[i]);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(paths);
        return 0;
}

void bus_emit_generation_changed(sd_bus *bus, const StoreGroup *g, uint32_t number, GenerationState state) {
        _cleanup_free_ char *path = NULL;

        if (bus_group_path(g->name, &path) < 0)
                return;
        (void) sd_bus_emit_signal(bus, path, BUS_GROUP_INTERFACE, "GenerationChanged", "us", number,
                                  generation_state_to_string(state));
        (void) sd_bus_emit_properties_changed(bus, path, BUS_GROUP_INTERFACE, "ActiveGeneration", "PendingGeneration",
                                              "NextRolloverUSec", "Generations", NULL);
}

void bus_emit_policy_changed(sd_bus *bus, const StoreGroup *g) {
        _cleanup_free_ char *path = NULL;

        if (bus_group_path(g->name, &path) < 0)
                return;
        (void) sd_bus_emit_properties_changed(bus, path, BUS_GROUP_INTERFACE, "RolloverPeriodUSec",
                                              "PropagationDelayUSec", "HotWindow", "AllowHumanMembers",
                                              "NextRolloverUSec", "ApprovalGroups", "MaxGrantUSec",
                                              "RequestTimeoutUSec", "RetireNeedsApproval", NULL);
}

#define PROPERTY(name, sig, flags) SD_BUS_PROPERTY(name, sig, property_get, 0, flags)

const sd_bus_vtable bus_group_vtable[] = {
        SD_BUS_VTABLE_START(0),
        PROPERTY("Name", "s", SD_BUS_VTABLE_PROPERTY_CONST),
        PROPERTY("Gid", "u", SD_BUS_VTABLE_PROPERTY_CONST),
        PROPERTY("Algorithm", "s", SD_BUS_VTABLE_PROPERTY_CONST),
        PROPERTY("ActiveGeneration", "u", SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        PROPERTY("PendingGeneration", "u", SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        PROPERTY("NextRolloverUSec", "t", SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        PROPERTY("RolloverPeriodUSec", "t", SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        PROPERTY("PropagationDelayUSec", "t", SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        PROPERTY("HotWindow", "u", SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        PROPERTY("AllowHumanMembers", "b", SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        PROPERTY("ApprovalGroups", "as", SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        PROPERTY("MaxGrantUSec", "t", SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        PROPERTY("RequestTimeoutUSec", "t", SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        PROPERTY("RetireNeedsApproval", "b", SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        /* Can grow long: clients are told it changed and fetch it if they care. */
        PROPERTY("Generations", "a(ustttt)", SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION),
        SD_BUS_METHOD_WITH_NAMES("Rollover", NULL, , "u", SD_BUS_PARAM(generation), method_rollover,
                                 SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("Archive", "u", SD_BUS_PARAM(generation), NULL, , method_archive,
                                 SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("Retire", "us", SD_BUS_PARAM(generation) SD_BUS_PARAM(justification), "o",
                                 SD_BUS_PARAM(request), method_retire, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("SetPolicy", "a{sv}", SD_BUS_PARAM(policy), NULL, , method_set_policy,
                                 SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Load", NULL, NULL, method_load, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_NAMES("GenerationChanged", "us", SD_BUS_PARAM(generation) SD_BUS_PARAM(state), 0),
        SD_BUS_VTABLE_END,
};
