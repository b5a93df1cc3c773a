/* SPDX-License-Identifier: MIT */
/* The root key's protectors and purge on the manager object: ListProtectors, CheckProtectors,
 * AddProtector, RemoveProtector, Purge, and the StoreState properties. The work and its audit
 * records are the manager's (src/manager/manager-store.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus-errors.h"
#include "bus-manager.h"

static int reply_status(sd_bus_message *msg, const ManagerProtectors *p) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_message_new_method_return(msg, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(ssss)");
        if (r < 0)
                return r;
        for (size_t i = 0; i < p->n_status; i++) {
                const StoreProtectorStatus *st = &p->status[i];

                r = sd_bus_message_append(reply, "(ssss)", st->name, st->type,
                                          store_protector_health_to_string(st->health), st->detail);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

int bus_method_list_protectors(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        BusManager *m = userdata;

        /* Names, types and health are not secret; the last check's, no device round trip. */
        return reply_status(msg, &m->manager->protectors);
}

int bus_method_check_protectors(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        BusManager *m = userdata;
        _cleanup_(bus_call_end) BusCall call = {};
        int r;

        r = bus_call_begin(&call, m, msg, "CheckProtectors", error);
        if (r < 0)
                return r;
        /* A check spends a PIN try on each token: admins only. */
        r = bus_call_require_admin(&call, error);
        if (r < 0)
                return r;
        r = manager_audit(m->manager, "protector-check", AUDIT_OUTCOME_OK, "store", "every protector, now");
        if (r < 0)
                return bus_error_errno(error, r, "checking the protectors");
        r = manager_store_check(m->manager, true);
        if (r < 0)
                return bus_error_errno(error, r, "checking the protectors");
        return reply_status(msg, &m->manager->protectors);
}

/* "/" when the change was made at once, else the request's path. */
static int reply_request_or_root(sd_bus_message *msg, uint64_t id) {
        _cleanup_free_ char *path = NULL;
        int r;

        if (id == 0)
                return sd_bus_reply_method_return(msg, "o", "/");
        r = bus_request_path(id, &path);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(msg, "o", path);
}

/* AddProtector's options into the spec the manager and request files use: "file", "tpm2 7,11",
 * "pkcs11 URI". Unknown keys, wrong types, or an option that does not fit the type are
 * InvalidArgument. */
static int read_add_options(sd_bus_message *msg, const char *type, char **ret_spec, sd_bus_error *error) {
        _cleanup_free_ char *uri = NULL, *pcrs = NULL;
        int r;

        r = sd_bus_message_enter_container(msg, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(msg, 'e', "sv")) > 0) {
                const char *key, *s;

                r = sd_bus_message_read(msg, "s", &key);
                if (r < 0)
                        return r;
                if (strcmp(key, "Uri") == 0 && strcmp(type, "pkcs11") == 0 && !uri) {
                        r = sd_bus_message_read(msg, "v", "s", &s);
                        if (r < 0)
                                return bus_error_errno(error, -EINVAL, "option Uri must be a string");
                        uri = strdup(s);
                        if (!uri)
                                return -ENOMEM;
                } else if (strcmp(key, "Pcrs") == 0 && strcmp(type, "tpm2") == 0 && !pcrs) {
                        const uint32_t *v;
                        size_t size, used = 0;

                        r = sd_bus_message_enter_container(msg, 'v', "au");
                        if (r < 0)
                                return bus_error_errno(error, -EINVAL, "option Pcrs must be an array of uint32");
                        r = sd_bus_message_read_array(msg, 'u', (const void **) &v, &size);
                        if (r < 0)
                                return r;
                        if (size / sizeof(*v) > 24)
                                return bus_error_errno(error, -EINVAL, "option Pcrs: at most 24 PCRs");
                        pcrs = calloc(24 * 3 + 1, 1);
                        if (!pcrs)
                                return -ENOMEM;
                        for (size_t i = 0; i < size / sizeof(*v); i++) {
                                if (v[i] > 23)
                                        return bus_error_errno(error, -EINVAL, "option Pcrs: PCR %u is not 0..23",
                                                               (unsigned) v[i]);
                                used += (size_t) snprintf(pcrs + used, 24 * 3 + 1 - used, "%s%u", i ? "," : "",
                                                          (unsigned) v[i]);
                        }
                        r = sd_bus_message_exit_container(msg);
                        if (r < 0)
                                return r;
                } else
                        return bus_error_errno(error, -EINVAL, "option '%.64s' is unknown for type %s, or given twice",
                                               key, type);
                r = sd_bus_message_exit_container(msg);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(msg);
        if (r < 0)
                return r;

        if (strcmp(type, "pkcs11") == 0 && !uri)
                return bus_error_errno(error, -EINVAL, "type pkcs11 needs the option Uri");
        if (strcmp(type, "pkcs11") == 0)
                r = asprintf(ret_spec, "pkcs11 %s", uri);
        else if (strcmp(type, "tpm2") == 0)
                r = asprintf(ret_spec, "tpm2%s%s", pcrs && pcrs[0] ? " " : "", pcrs ?: "");
        else
                r = asprintf(ret_spec, "file");
        return r < 0 ? -ENOMEM : 0;
}

int bus_method_add_protector(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        BusManager *m = userdata;
        _cleanup_(bus_call_end) BusCall call = {};
        _cleanup_free_ char *spec = NULL;
        const char *name, *type, *justification;
        uint64_t id = 0;
        int r;

        r = sd_bus_message_read(msg, "ss", &name, &type);
        if (r < 0)
                return r;
        r = bus_call_begin(&call, m, msg, "AddProtector", error);
        if (r < 0)
                return r;
        r = bus_call_require_admin(&call, error);
        if (r < 0)
                return r;
        if (strcmp(type, "file") != 0 && strcmp(type, "pkcs11") != 0 && strcmp(type, "tpm2") != 0)
                return bus_call_refuse(&call, error, -EINVAL, "protector type '%.32s' (file, pkcs11 or tpm2)", type);
        r = read_add_options(msg, type, &spec, error);
        if (r < 0) {
                if (sd_bus_error_is_set(error))
                        bus_call_audit_refusal(&call, error);
                return r;
        }
        r = sd_bus_message_read(msg, "s", &justification);
        if (r < 0)
                return r;
        if (!store_protector_name_is_valid(name))
                return bus_call_refuse(&call, error, -EINVAL, "protector name must match [a-z0-9][a-z0-9_.-]{0,63}");
        r = manager_protector_add(m->manager, name, spec, justification, &id);
        if (r < 0)
                return bus_error_errno(error, r, "adding protector %s: %s", name,
                                       store_last_error(m->manager->store) ?: "refused");
        return reply_request_or_root(msg, id);
}

int bus_method_remove_protector(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        BusManager *m = userdata;
        _cleanup_(bus_call_end) BusCall call = {};
        const char *name, *justification;
        uint64_t id = 0;
        int r;

        r = sd_bus_message_read(msg, "ss", &name, &justification);
        if (r < 0)
                return r;
        r = bus_call_begin(&call, m, msg, "RemoveProtector", error);
        if (r < 0)
                return r;
        r = bus_call_require_admin(&call, error);
        if (r < 0)
                return r;
        if (!store_protector_name_is_valid(name))
                return bus_call_refuse(&call, error, -MANAGER_ERRNO_NO_SUCH_PROTECTOR, "protector '%.64s'", name);
        r = manager_protector_remove(m->manager, name, justification, &id);
        if (r < 0)
                return bus_error_errno(error, r, "removing protector %s", name);
        return reply_request_or_root(msg, id);
}

int bus_method_purge(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        BusManager *m = userdata;
        _cleanup_(bus_call_end) BusCall call = {};
        const char *justification;
        uint64_t id = 0;
        int r;

        r = sd_bus_message_read(msg, "s", &justification);
        if (r < 0)
                return r;
        r = bus_call_begin(&call, m, msg, "Purge", error);
        if (r < 0)
                return r;
        r = bus_call_require_admin(&call, error);
        if (r < 0)
                return r;
        r = manager_purge_request(m->manager, justification, &id);
        if (r == -ACCESS_ERRNO_NO_APPROVERS)
                return sd_bus_error_setf(error, BUS_ERROR_NO_APPROVERS,
                                         "purge: the store policy names no approval level (dkm-store policy set "
                                         "--approval-groups=...): a purge always needs approvals");
        if (r == -EALREADY)
                return sd_bus_error_setf(error, BUS_ERROR_INVALID_STATE, "purge: one is already requested or scheduled");
        if (r < 0)
                return bus_error_errno(error, r, "purge");
        return reply_request_or_root(msg, id);
}

static uint64_t purge_at(const Manager *m) {
        for (size_t i = 0; i < m->requests.n; i++)
                if (m->requests.items[i].kind == ACCESS_KIND_PURGE &&
                    m->requests.items[i].state == ACCESS_STATE_SCHEDULED)
                        return m->requests.items[i].expires_usec;
        return 0;
}

int bus_store_property_get(sd_bus *bus, const char *path, const char *interface, const char *property,
                           sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        BusManager *m = userdata;
        const ManagerProtectors *p = &m->manager->protectors;
        StorePolicy policy = STORE_POLICY_DEFAULT;

        if (strcmp(property, "StoreState") == 0)
                return sd_bus_message_append(reply, "s", manager_store_state_to_string(p->state));
        if (strcmp(property, "StoreStateDetail") == 0)
                return sd_bus_message_append(reply, "s", p->detail);
        if (strcmp(property, "NextCheckUSec") == 0)
                return sd_bus_message_append(reply, "t", p->next_check_usec);
        if (strcmp(property, "PurgeAtUSec") == 0)
                return sd_bus_message_append(reply, "t", purge_at(m->manager));
        /* A damaged store.policy shows as the default here; the calls that use it refuse. */
        if (store_policy_load(m->manager->store, &policy) < 0)
                policy = STORE_POLICY_DEFAULT;
        if (strcmp(property, "StoreApprovalGroups") == 0)
                return bus_append_gid_names(reply, policy.approval_levels, policy.n_approval_levels);
        if (strcmp(property, "PurgeDelayUSec") == 0)
                return sd_bus_message_append(reply, "t", policy.purge_delay_usec);
        return -EINVAL;
}

void bus_emit_store_state_changed(sd_bus *bus) {
        (void) sd_bus_emit_properties_changed(bus, BUS_MANAGER_PATH, BUS_MANAGER_INTERFACE, "StoreState",
                                              "StoreStateDetail", "StoreUnlocked", "NextCheckUSec", "PurgeAtUSec",
                                              NULL);
}
