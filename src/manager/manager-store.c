/* SPDX-License-Identifier: MIT */
/* The root key's protectors as dkmd lives with them (docs/CUSTOMER-KEY.md): checked at start and
 * then regularly, retried with backoff while a device is away, keys taken out of the kernel when
 * every protector is withdrawn or a purge is scheduled, and the protector and purge requests
 * carried out. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyring-helper.h"
#include "loader.h"
#include "manager-internal.h"
#include "pkcs11-uri.h"

static const char *const state_names[_MANAGER_STORE_STATE_MAX] = {
        [MANAGER_STORE_UNLOCKED] = "unlocked",
        [MANAGER_STORE_DEGRADED] = "degraded",
        [MANAGER_STORE_LOCKED] = "locked",
        [MANAGER_STORE_WAITING] = "waiting",
        [MANAGER_STORE_WITHDRAWN] = "withdrawn",
        [MANAGER_STORE_PURGE_SCHEDULED] = "purge-scheduled",
        [MANAGER_STORE_PURGED] = "purged",
};

const char *manager_store_state_to_string(ManagerStoreState s) {
        return (unsigned) s < _MANAGER_STORE_STATE_MAX ? state_names[s] : NULL;
}

int manager_store_usable(const Manager *m) {
        switch (m->protectors.state) {
        case MANAGER_STORE_WITHDRAWN:
                return -MANAGER_ERRNO_WITHDRAWN;
        case MANAGER_STORE_PURGE_SCHEDULED:
                return -MANAGER_ERRNO_PURGE_SCHEDULED;
        case MANAGER_STORE_PURGED:
                return -MANAGER_ERRNO_PURGED;
        default:
                return 0;
        }
}

static void set_state(Manager *m, ManagerStoreState s, const char *detail) {
        ManagerProtectors *p = &m->protectors;
        ManagerStoreState old = p->state;

        if (old == s && strcmp(p->detail, detail) == 0)
                return;
        p->state = s;
        (void) snprintf(p->detail, sizeof(p->detail), "%s", detail);
        if (old != s)
                manager_log("store: %s%s%s", state_names[s], detail[0] ? ": " : "", detail);
        EMIT(m, store_state_changed, (int) old);
}

/* Every group's keys out of the kernel and every live grant ended: what a withdrawn customer key
 * or a scheduled purge means. Best effort per group, logged; nothing here may stop it. */
static void unload_everything(Manager *m, const char *why) {
        _cleanup_strv_free_ char **names = NULL;

        if (store_group_list(m->store, &names) < 0) {
                manager_log("cannot list the groups to unload: %s", store_last_error(m->store) ?: "?");
                return;
        }
        for (char **n = names; *n; n++) {
                int k = loader_run_helper(NULL, (char *[]) { (char *) "unload", *n, NULL });

                if (k != 0 && k != KEYRING_HELPER_EXIT_NOT_LOADED)
                        manager_log("%s unload %s failed (%d)", loader_helper_path(), *n, k);
        }
        manager_requests_revoke_all(m, why);
}

static bool is_device(const StoreProtectorStatus *st) {
        return strcmp(st->type, "pkcs11") == 0 || strcmp(st->type, "tpm2") == 0;
}

/* "NAME: why; NAME: why" for every protector that is not OK. */
static void describe(const ManagerProtectors *p, char *buf, size_t size) {
        size_t used = 0;

        buf[0] = 0;
        for (size_t i = 0; i < p->n_status && used < size; i++) {
                const StoreProtectorStatus *st = &p->status[i];

                if (st->health == STORE_PROTECTOR_OK)
                        continue;
                used += (size_t) snprintf(buf + used, size - used, "%s%s: %s", used ? "; " : "", st->name,
                                          st->detail[0] ? st->detail : store_protector_health_to_string(st->health));
        }
}

static ManagerStoreState judge(const ManagerProtectors *p, bool held) {
        size_t ok = 0, gone = 0, untested = 0;

        for (size_t i = 0; i < p->n_status; i++)
                switch (p->status[i].health) {
                case STORE_PROTECTOR_OK:
                        ok++;
                        break;
                case STORE_PROTECTOR_WITHDRAWN:
                case STORE_PROTECTOR_INVALID:
                        gone++;
                        break;
                case STORE_PROTECTOR_UNTESTED:
                        untested++;
                        break;
                default: /* unavailable, PIN refused, PCR mismatch: may pass, so not withdrawn */
                        break;
                }
        if (ok > 0)
                return MANAGER_STORE_UNLOCKED;
        /* Withdrawn only when no way in is left at all: a passphrase protector in escrow or a
         * token that is merely away may still open the store. */
        if (p->n_status > 0 && gone == p->n_status)
                return MANAGER_STORE_WITHDRAWN;
        if (held)
                return MANAGER_STORE_DEGRADED;
        return gone + untested == p->n_status ? MANAGER_STORE_LOCKED : MANAGER_STORE_WAITING;
}

static void schedule_next_check(Manager *m) {
        ManagerProtectors *p = &m->protectors;
        uint64_t interval = p->check_interval_usec ?: MANAGER_CHECK_INTERVAL_DEFAULT_USEC, now = manager_now_usec();
        bool devices = false;

        for (size_t i = 0; i < p->n_status; i++)
                devices = devices || is_device(&p->status[i]);
        switch (p->state) {
        case MANAGER_STORE_UNLOCKED:
                p->backoff_usec = 0;
                /* A key file cannot go away unnoticed by the admin; a customer's HSM key can. */
                p->next_check_usec = devices ? now + interval : 0;
                break;
        case MANAGER_STORE_DEGRADED:
        case MANAGER_STORE_WAITING:
                p->backoff_usec = p->backoff_usec ? MIN(p->backoff_usec * 2, interval)
                                                  : MIN((uint64_t) MANAGER_BACKOFF_MIN_USEC, interval);
                p->next_check_usec = now + p->backoff_usec;
                break;
        case MANAGER_STORE_WITHDRAWN: /* the customer may give the key back */
                p->next_check_usec = now + interval;
                break;
        default:
                p->next_check_usec = 0;
        }
}

/* The names whose PIN the token refused: skipped by the automatic checks, so a wrong PIN costs
 * one try, not one per retry until the token locks. */
static int remember_refused(ManagerProtectors *p) {
        size_t n = 0;
        char **l = calloc(p->n_status + 1, sizeof(char *));

        if (!l)
                return -ENOMEM;
        for (size_t i = 0; i < p->n_status; i++)
                if (p->status[i].health == STORE_PROTECTOR_REFUSED) {
                        l[n] = strdup(p->status[i].name);
                        if (!l[n++]) {
                                strv_free(l);
                                return -ENOMEM;
                        }
                }
        strv_free(p->refused);
        p->refused = l;
        return 0;
}

static const char *first_ok(const ManagerProtectors *p) {
        for (size_t i = 0; i < p->n_status; i++)
                if (p->status[i].health == STORE_PROTECTOR_OK)
                        return p->status[i].name;
        return "?";
}

/* The effects of moving from old to new; the audit records say what happened to the keys.
 * audit_unlock false: the unlock is part of something audited already (dkmd's start, a purge's
 * cancel). */
static void transition(Manager *m, ManagerStoreState old, ManagerStoreState new, const char *detail,
                       bool audit_unlock) {
        if (new == MANAGER_STORE_UNLOCKED && old != MANAGER_STORE_UNLOCKED && old != MANAGER_STORE_DEGRADED &&
            audit_unlock)
                (void) manager_audit(m, old == MANAGER_STORE_WITHDRAWN ? "store-restored" : "store-unlock",
                                     AUDIT_OUTCOME_OK, "store", "unlocked by protector %s", first_ok(&m->protectors));
        if (new == MANAGER_STORE_WITHDRAWN && old != MANAGER_STORE_WITHDRAWN) {
                /* Not held back by the log: serving keys the customer withdrew is the worse failure. */
                (void) manager_audit(m, "store-withdrawn", AUDIT_OUTCOME_OK, "store",
                                     "no protector opens the root key: %s", detail);
                store_forget_root_key(m->store);
                unload_everything(m, "the customer key was withdrawn");
        }
        if (new == MANAGER_STORE_DEGRADED && old != MANAGER_STORE_DEGRADED)
                manager_log("WARNING: no protector opens the root key now; serving with the key held (%s)", detail);
        set_state(m, new, detail);
}

static int check(Manager *m, bool retry_refused, bool audit_unlock) {
        ManagerProtectors *p = &m->protectors;
        StoreProtectorStatus *status = NULL;
        ManagerStoreState new;
        char detail[sizeof(p->detail)];
        size_t n = 0;
        int k;

        if (p->state == MANAGER_STORE_PURGED || p->state == MANAGER_STORE_PURGE_SCHEDULED)
                return 0;
        k = store_protector_check(m->store, retry_refused ? NULL : p->refused, &status, &n);
        if (k < 0) {
                manager_log("cannot check the protectors: %s", store_last_error(m->store) ?: strerror(-k));
                p->next_check_usec = manager_now_usec() + MANAGER_RETRY_USEC;
                return k;
        }
        free(p->status);
        p->status = status;
        p->n_status = n;
        k = remember_refused(p);
        if (k < 0)
                return k;
        new = judge(p, store_is_unlocked(m->store));
        /* StoreStateDetail says why the store is not unlocked: "" when it is (ListProtectors
         * still names a protector that is away). */
        if (new == MANAGER_STORE_UNLOCKED)
                detail[0] = 0;
        else
                describe(p, detail, sizeof(detail));
        transition(m, p->state, new, detail, audit_unlock);
        schedule_next_check(m);
        return 0;
}

int manager_store_check(Manager *m, bool retry_refused) {
        return check(m, retry_refused, true);
}

static const AccessRequest *scheduled_purge(const Manager *m) {
        for (size_t i = 0; i < m->requests.n; i++)
                if (m->requests.items[i].kind == ACCESS_KIND_PURGE &&
                    m->requests.items[i].state == ACCESS_STATE_SCHEDULED)
                        return &m->requests.items[i];
        return NULL;
}

int manager_store_start(Manager *m) {
        const AccessRequest *purge = scheduled_purge(m);
        uint64_t when = 0;
        char detail[128];
        int k;

        k = store_purged(m->store, &when);
        if (k < 0)
                return k;
        if (k > 0) {
                (void) snprintf(detail, sizeof(detail), "purged at %llu (µs since the epoch)", (unsigned long long) when);
                set_state(m, MANAGER_STORE_PURGED, detail);
                return 0;
        }
        if (purge) {
                /* dkmd may have died between scheduling and unloading: do it (again). */
                k = manager_purge_schedule(m, purge);
                return k == -MANAGER_ERRNO_AUDIT_FAILED ? 0 : k;
        }
        /* A marker left by a cancel that died before removing it. */
        k = store_suspended(m->store, NULL);
        if (k > 0)
                k = store_resume(m->store);
        if (k < 0)
                manager_log("cannot resume the store: %s", store_last_error(m->store) ?: strerror(-k));
        return check(m, false, false);
}

void manager_store_done(Manager *m) {
        free(m->protectors.status);
        m->protectors.status = NULL;
        m->protectors.n_status = 0;
        strv_free(m->protectors.refused);
        m->protectors.refused = NULL;
}

/* ---- protector changes ---- */

#define PCRS_MAX 24U

/* "7,11" -> {7, 11}; the store checks the range and duplicates again when it seals. */
static int parse_pcrs(const char *s, uint32_t pcrs[static PCRS_MAX], size_t *ret_n) {
        size_t n = 0;

        while (s && *s) {
                char *end;
                unsigned long v;

                if (n == PCRS_MAX || *s < '0' || *s > '9')
                        return -EINVAL;
                errno = 0;
                v = strtoul(s, &end, 10);
                if (errno != 0 || v >= PCRS_MAX || (*end != ',' && *end != 0))
                        return -EINVAL;
                pcrs[n++] = (uint32_t) v;
                s = *end ? end + 1 : end;
        }
        *ret_n = n;
        return 0;
}

/* spec: "file", "pkcs11 URI", "tpm2" or "tpm2 PCRS". *ret_arg points into spec. */
static int parse_spec(const char *spec, const char **ret_type, const char **ret_arg) {
        uint32_t pcrs[PCRS_MAX];
        const char *why;
        Pkcs11Uri u;
        size_t n;

        if (strcmp(spec, "file") == 0 || strcmp(spec, "tpm2") == 0) {
                *ret_type = spec[0] == 'f' ? "file" : "tpm2";
                *ret_arg = "";
                return 0;
        }
        if (strncmp(spec, "tpm2 ", 5) == 0 && parse_pcrs(spec + 5, pcrs, &n) >= 0 && n > 0) {
                *ret_type = "tpm2";
                *ret_arg = spec + 5;
                return 0;
        }
        if (strncmp(spec, "pkcs11 ", 7) == 0 && pkcs11_uri_parse(spec + 7, &u, &why) >= 0 && u.token[0] &&
            u.object[0]) {
                *ret_type = "pkcs11";
                *ret_arg = spec + 7;
                return 0;
        }
        return -EINVAL;
}

/* The store's codes, as the bus names them. */
static int protector_error(int k) {
        switch (-k) {
        case EKEYREJECTED:
                return -MANAGER_ERRNO_PCR_MISMATCH;
        case ENOKEY: /* adding: the device or its key could not be used (the store says which) */
                return -MANAGER_ERRNO_PROTECTOR_UNAVAILABLE;
        case EEXIST:
                return -MANAGER_ERRNO_PROTECTOR_EXISTS;
        case ENOENT:
                return -MANAGER_ERRNO_NO_SUCH_PROTECTOR;
        case EBUSY:
                return -MANAGER_ERRNO_LAST_PROTECTOR;
        case EACCES:
                return -MANAGER_ERRNO_PIN_REFUSED;
        default:
                return k;
        }
}

int manager_protector_add_now(Manager *m, const char *name, const char *spec) {
        uint32_t pcrs[PCRS_MAX];
        const char *type, *arg;
        size_t n = 0;
        int k;

        if (parse_spec(spec, &type, &arg) < 0)
                return -EINVAL;
        k = manager_store_usable(m);
        if (k < 0)
                return k;
        /* Sealing needs the root key: StoreLocked, not the device's error. */
        if (!store_is_unlocked(m->store))
                return -ENOKEY;
        k = manager_audit(m, "protector-add", AUDIT_OUTCOME_OK, "store", "protector %s: %s", name, spec);
        if (k < 0)
                return k;
        if (strcmp(type, "file") == 0)
                k = store_protector_add_file(m->store, name);
        else if (strcmp(type, "pkcs11") == 0)
                k = store_protector_add_pkcs11(m->store, name, arg);
        else {
                k = parse_pcrs(arg, pcrs, &n);
                if (k >= 0)
                        k = store_protector_add_tpm2(m->store, name, pcrs, n);
        }
        if (k < 0) {
                manager_log("cannot add protector %s: %s", name, store_last_error(m->store) ?: strerror(-k));
                manager_audit_failure(m, "protector-add", "store", k);
                return protector_error(k);
        }
        manager_log("protector %s added (%s)", name, spec);
        /* Refresh what ListProtectors shows (one more token round trip). */
        (void) manager_store_check(m, false);
        return 0;
}

static int protector_census(Manager *m, const char *name, bool *ret_exists, size_t *ret_others);

int manager_protector_remove_now(Manager *m, const char *name) {
        size_t others;
        bool exists;
        int k;

        /* Again when an approved request is carried out: the others may have failed since. */
        k = protector_census(m, name, &exists, &others);
        if (k < 0)
                return k;
        if (!exists)
                return -MANAGER_ERRNO_NO_SUCH_PROTECTOR;
        if (others == 0)
                return -MANAGER_ERRNO_LAST_PROTECTOR;
        k = manager_audit(m, "protector-remove", AUDIT_OUTCOME_OK, "store", "protector %s", name);
        if (k < 0)
                return k;
        k = store_protector_remove(m->store, name);
        if (k < 0) {
                manager_log("cannot remove protector %s: %s", name, store_last_error(m->store) ?: strerror(-k));
                manager_audit_failure(m, "protector-remove", "store", k);
                return protector_error(k);
        }
        manager_log("protector %s removed", name);
        (void) manager_store_check(m, false);
        return 0;
}

/* Whether the last check found p usable: it opened the root key, or it is a passphrase protector
 * (never tried by dkmd; a passphrase in escrow is a way in). Withdrawn, unavailable, refused or
 * mismatched devices, and protectors the last check did not see, are not counted. */
static bool protector_usable(const ManagerProtectors *p, const char *name) {
        for (size_t i = 0; i < p->n_status; i++)
                if (strcmp(p->status[i].name, name) == 0)
                        return p->status[i].health == STORE_PROTECTOR_OK ||
                               p->status[i].health == STORE_PROTECTOR_UNTESTED;
        return false;
}

/* What the store has now: does name exist, and how many other usable protectors could open it. */
static int protector_census(Manager *m, const char *name, bool *ret_exists, size_t *ret_others) {
        _cleanup_free_ StoreProtectorInfo *l = NULL;
        size_t n = 0, others = 0;
        bool exists = false;
        int k;

        k = store_protector_list(m->store, &l, &n);
        if (k < 0)
                return k;
        for (size_t i = 0; i < n; i++) {
                if (strcmp(l[i].name, name) == 0)
                        exists = true;
                else if (strcmp(l[i].type, "invalid") != 0 && protector_usable(&m->protectors, l[i].name))
                        others++;
        }
        *ret_exists = exists;
        *ret_others = others;
        return 0;
}

/* Refusals of the store-wide calls, audited like the other requests'. */
static int refuse_store(Manager *m, const char *what, int error) {
        (void) manager_audit(m, "request", AUDIT_OUTCOME_REFUSED, "store", "%s: %s", what, strerror(-error));
        return error;
}

int manager_protector_add(Manager *m, const char *name, const char *spec, const char *justification,
                          uint64_t *ret_id) {
        StorePolicy policy;
        const char *type, *arg;
        size_t others;
        bool exists;
        int k;

        if (!store_protector_name_is_valid(name) || parse_spec(spec, &type, &arg) < 0)
                return refuse_store(m, "protector-add", -EINVAL);
        k = manager_store_usable(m);
        if (k < 0)
                return refuse_store(m, "protector-add", k);
        k = protector_census(m, name, &exists, &others);
        if (k < 0)
                return k;
        if (exists)
                return refuse_store(m, "protector-add", -MANAGER_ERRNO_PROTECTOR_EXISTS);
        k = store_policy_load(m->store, &policy);
        if (k < 0)
                return k;
        if (policy.n_approval_levels == 0) {
                *ret_id = 0;
                return manager_protector_add_now(m, name, spec);
        }
        return manager_request_store(m, ACCESS_KIND_PROTECTOR_ADD, name, spec, justification, &policy, ret_id);
}

int manager_protector_remove(Manager *m, const char *name, const char *justification, uint64_t *ret_id) {
        StorePolicy policy;
        size_t others;
        bool exists;
        int k;

        if (!store_protector_name_is_valid(name))
                return refuse_store(m, "protector-remove", -EINVAL);
        k = protector_census(m, name, &exists, &others);
        if (k < 0)
                return k;
        if (!exists)
                return refuse_store(m, "protector-remove", -MANAGER_ERRNO_NO_SUCH_PROTECTOR);
        if (others == 0)
                return refuse_store(m, "protector-remove", -MANAGER_ERRNO_LAST_PROTECTOR);
        k = store_policy_load(m->store, &policy);
        if (k < 0)
                return k;
        if (policy.n_approval_levels == 0) {
                *ret_id = 0;
                return manager_protector_remove_now(m, name);
        }
        return manager_request_store(m, ACCESS_KIND_PROTECTOR_REMOVE, name, NULL, justification, &policy, ret_id);
}

int manager_purge_request(Manager *m, const char *justification, uint64_t *ret_id) {
        StorePolicy policy;
        int k;

        if (m->protectors.state == MANAGER_STORE_PURGED)
                return refuse_store(m, "purge", -MANAGER_ERRNO_PURGED);
        for (size_t i = 0; i < m->requests.n; i++)
                if (m->requests.items[i].kind == ACCESS_KIND_PURGE && access_state_is_open(m->requests.items[i].state))
                        return refuse_store(m, "purge", -EALREADY);
        k = store_policy_load(m->store, &policy);
        if (k < 0)
                return k;
        return manager_request_store(m, ACCESS_KIND_PURGE, "", NULL, justification, &policy, ret_id);
}

/* ---- purge ---- */

int manager_purge_schedule(Manager *m, const AccessRequest *r) {
        char reason[128];
        int k;

        (void) snprintf(reason, sizeof(reason), "purge request %llu runs at %llu (µs since the epoch)",
                        (unsigned long long) r->id, (unsigned long long) r->expires_usec);
        /* The marker first: from here on no upcall or dkm-store unlocks the store. */
        k = store_suspend(m->store, reason);
        if (k < 0)
                manager_log("cannot suspend the store: %s", store_last_error(m->store) ?: strerror(-k));
        unload_everything(m, "a purge is scheduled");
        set_state(m, MANAGER_STORE_PURGE_SCHEDULED, reason);
        m->protectors.next_check_usec = 0;
        return k;
}

int manager_purge_cancelled(Manager *m) {
        int k;

        k = store_resume(m->store);
        if (k < 0) {
                manager_log("cannot resume the store: %s", store_last_error(m->store) ?: strerror(-k));
                return k;
        }
        /* Let the check decide where we are now: unlocked again (the root key is still held)
         * brings every group back through store_state_changed. A PIN refused before is not
         * tried again here: the admin's CheckProtectors does that. */
        m->protectors.state = MANAGER_STORE_WAITING;
        return check(m, false, false);
}

int manager_purge_now(Manager *m) {
        int k;

        k = store_purge(m->store);
        if (k < 0) {
                manager_log("purge failed: %s", store_last_error(m->store) ?: strerror(-k));
                return k;
        }
        /* The purged marker says it all now. */
        if (store_resume(m->store) < 0)
                manager_log("cannot remove the suspended marker: %s", store_last_error(m->store) ?: "?");
        unload_everything(m, "the store was purged");
        set_state(m, MANAGER_STORE_PURGED, "purged: every key is destroyed");
        return 0;
}
