/* SPDX-License-Identifier: MIT */
/* Key-group operations of dkmd, independent of the bus. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "loader.h"
#include "manager-internal.h"

uint64_t manager_now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * 1000000U + (uint64_t) ts.tv_nsec / 1000U;
}

int manager_audit(Manager *m, const char *event, AuditOutcome outcome, const char *object, const char *fmt, ...) {
        char detail[AUDIT_DETAIL_MAX + 1];
        AuditRecord rec = {
                .event = event,
                .outcome = outcome,
                .object = object,
                .detail = detail,
        };
        va_list ap;
        int r;

        if (!m->events.audit)
                return 0;
        va_start(ap, fmt);
        (void) vsnprintf(detail, sizeof(detail), fmt, ap);
        va_end(ap);
        if (m->caller) {
                rec.uid = m->caller->uid;
                rec.pid = m->caller->pid;
                rec.comm = m->caller->comm;
        } else {
                rec.uid = getuid();
                rec.pid = getpid();
                rec.comm = "dkmd";
        }
        r = m->events.audit(m->events.userdata, &rec);
        if (r < 0) {
                manager_log("cannot write the audit record for %s %s (%s): refusing it", event, object, strerror(-r));
                return -MANAGER_ERRNO_AUDIT_FAILED;
        }
        return 0;
}

/* After a change that was audited as done failed after all: say so, best effort (the failure
 * itself is what is being reported). */
void manager_audit_failure(Manager *m, const char *event, const char *object, int error) {
        (void) manager_audit(m, event, AUDIT_OUTCOME_FAILED, object, "%s", strerror(-error));
}

static const StoreGeneration *pending_generation(const StoreGroup *g) {
        for (size_t i = g->n_generations; i > 0; i--)
                if (g->generations[i - 1].state == GENERATION_PENDING)
                        return &g->generations[i - 1];
        return NULL;
}

static uint64_t add_saturated(uint64_t a, uint64_t b) {
        return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

uint64_t manager_next_step_usec(const StoreGroup *g) {
        const StoreGeneration *p = pending_generation(g), *a = store_group_active_generation(g);

        /* The step 0 would mean "none"; a due time of 0 is "at once" and becomes 1. */
        if (p)
                return add_saturated(p->created_usec, g->policy.propagation_delay_usec) ?: 1;
        if (a && g->policy.rollover_period_usec > 0)
                return add_saturated(a->activated_usec, g->policy.rollover_period_usec) ?: 1;
        return 0;
}

/* 0, or -MANAGER_ERRNO_HUMAN_MEMBERS; an allowed person is logged every time, so the override
 * stays visible in the journal for as long as it is in force. */
static int check_members(Manager *m, const char *name, gid_t gid, bool allow) {
        _cleanup_free_ char *who = NULL;
        int r;

        r = loader_find_human_member(gid, &who);
        if (r <= 0)
                return r;
        if (!allow) {
                manager_log("refused group %s: gid %u has the login user %s as a member", name, (unsigned) gid, who);
                return -MANAGER_ERRNO_HUMAN_MEMBERS;
        }
        manager_log("WARNING: group %s: login user %s is a member of gid %u; allowed by its AllowHumanMembers policy",
                    name, who, (unsigned) gid);
        /* The override is only in force while it is audited (DESIGN.md promise 2). */
        return manager_audit(m, "human-member-allowed", AUDIT_OUTCOME_OK, object_of(name, (char[80]) {}),
                             "login user %s is a member of gid %u; allowed by AllowHumanMembers", who, (unsigned) gid);
}

int manager_load(Manager *m, const StoreGroup *g) {
        _cleanup_keyring_manifest_ KeyringManifest *manifest = NULL;
        _cleanup_free_ uid_t *uids = NULL;
        size_t n_uids;
        int r;

        /* Nothing goes into the kernel while the customer's key is withdrawn or a purge waits. */
        r = manager_store_usable(m);
        if (r < 0)
                return r;
        r = check_members(m, g->name, g->gid, g->policy.allow_human_members);
        if (r < 0)
                return r;
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
                manager_log("%s exited with status %d loading group %s", loader_helper_path(), r, g->name);
                return -MANAGER_ERRNO_LOAD_FAILED;
        }
        return 0;
}

/* Re-read the group (the store is the truth, and another writer may have changed it) and load it. */
static int reload_group(Manager *m, const char *name, StoreGroup **ret) {
        _cleanup_store_group_ StoreGroup *g = NULL;
        int r;

        r = store_group_load(m->store, name, &g);
        if (r < 0)
                return r;
        r = manager_load(m, g);
        if (ret)
                *ret = TAKE_PTR(g);
        return r;
}

int manager_reload(Manager *m, const char *name, bool added) {
        _cleanup_store_group_ StoreGroup *g = NULL;
        int r;

        r = reload_group(m, name, &g);
        if (g) {
                if (added)
                        EMIT(m, group_added, g);
                else
                        EMIT(m, policy_changed, g);
        }
        return r;
}

/* The fleet's two steps around every change of a group (ManagerFleet); nothing for a lone host. */
static int fleet_pull(Manager *m, const char *name) {
        return m->fleet ? m->fleet->pull(m->fleet->userdata, name) : 0;
}

static int fleet_push(Manager *m, const char *name) {
        int r;

        if (!m->fleet)
                return 0;
        r = m->fleet->push(m->fleet->userdata, name);
        /* Lost, or unknown whether published: the local file is the directory's copy again, and
         * the kernel gets that one (the change was not loaded yet, so nothing used it). */
        if (r < 0)
                (void) reload_group(m, name, NULL);
        return r;
}

/* After the store changed a group: publish (in a fleet), then audit a failure or load. */
static int commit_change(Manager *m, const char *name, const char *event, const char *object) {
        int r;

        r = fleet_push(m, name);
        if (r < 0)
                manager_audit_failure(m, event, object, r);
        return r;
}

int manager_load_all(Manager *m, unsigned *ret_failed) {
        _cleanup_strv_free_ char **names = NULL;
        unsigned failed = 0;
        int r;

        r = store_group_list(m->store, &names);
        if (r < 0)
                return r;
        for (char **n = names; n && *n; n++) {
                r = reload_group(m, *n, NULL);
                if (r < 0) {
                        manager_log("cannot load group %s: %s", *n,
                                    store_last_error(m->store) ?: strerror(-r));
                        failed++;
                }
        }
        *ret_failed = failed;
        return 0;
}

/* The whole policy as the detail of an audit record: what an auditor needs to see changed. */
static void format_policy(const StoreGroupPolicy *p, char *buf, size_t size) {
        char levels[STORE_APPROVAL_LEVELS_MAX * 11 + 1] = "";
        size_t l = 0;

        for (size_t i = 0; i < p->n_approval_levels && l < sizeof(levels); i++)
                l += (size_t) snprintf(levels + l, sizeof(levels) - l, "%s%u", i > 0 ? "," : "",
                                       (unsigned) p->approval_levels[i]);
        (void) snprintf(buf, size,
                        "rollover-period-usec=%llu propagation-delay-usec=%llu hot-window=%u allow-human-members=%d "
                        "approval-gids=%s max-grant-usec=%llu request-timeout-usec=%llu retire-needs-approval=%d",
                        (unsigned long long) p->rollover_period_usec, (unsigned long long) p->propagation_delay_usec,
                        (unsigned) p->hot_window, p->allow_human_members, levels[0] ? levels : "none",
                        (unsigned long long) p->max_grant_usec, (unsigned long long) p->request_timeout_usec,
                        p->retire_needs_approval);
}

int manager_create_group(Manager *m, const char *name, gid_t gid, CryptAlg alg, const StoreGroupPolicy *policy) {
        _cleanup_store_group_ StoreGroup *g = NULL;
        char object[80], detail[512];
        int r;

        /* Checked before the store is touched: a refused group leaves nothing behind. */
        r = manager_store_usable(m);
        if (r < 0)
                return r;
        r = check_members(m, name, gid, policy->allow_human_members);
        if (r < 0)
                return r;
        r = fleet_pull(m, name);
        if (r < 0)
                return r;
        format_policy(policy, detail, sizeof(detail));
        r = manager_audit(m, "group-create", AUDIT_OUTCOME_OK, object_of(name, object), "gid %u, %s, %s", (unsigned) gid,
                          crypt_alg_to_string(alg), detail);
        if (r < 0)
                return r;
        r = store_group_create(m->store, name, gid, alg, policy, &g);
        if (r < 0) {
                manager_audit_failure(m, "group-create", object, r);
                return r;
        }
        r = commit_change(m, name, "group-create", object);
        if (r < 0)
                return r;
        manager_log("created group %s (gid %u, %s)", name, (unsigned) gid, crypt_alg_to_string(alg));
        EMIT(m, group_added, g);
        return manager_load(m, g);
}

/* Whether generation number of group name is (or was) active now: not pending any more. */
static bool promoted(Manager *m, const char *name, uint32_t number) {
        _cleanup_store_group_ StoreGroup *g = NULL;
        const StoreGeneration *gen;

        if (store_group_load(m->store, name, &g) < 0)
                return false;
        gen = store_group_find_generation(g, number);
        return gen && gen->state != GENERATION_PENDING;
}

/* Pending -> active; the store archives the previous active one. */
static int promote(Manager *m, const char *name, uint32_t number) {
        _cleanup_store_group_ StoreGroup *g = NULL;
        char object[80];
        const StoreGeneration *a;
        uint32_t previous;
        int r;

        r = fleet_pull(m, name);
        if (r < 0)
                return r;
        r = store_group_load(m->store, name, &g);
        if (r < 0)
                return r;
        /* Another host of the fleet promoted it already: its copy is here now. */
        if (!store_group_find_generation(g, number) ||
            store_group_find_generation(g, number)->state != GENERATION_PENDING)
                return reload_group(m, name, NULL);
        a = store_group_active_generation(g);
        previous = a ? a->number : 0;
        r = manager_audit(m, "activate", AUDIT_OUTCOME_OK, object_of(name, object), "generation %u active, %u archived",
                          (unsigned) number, (unsigned) previous);
        if (r < 0)
                return r;
        r = store_generation_activate(m->store, name, number);
        if (r < 0) {
                manager_audit_failure(m, "activate", object, r);
                return r;
        }
        r = fleet_push(m, name);
        /* Every host of a fleet promotes a due generation: another one was first, and did what
         * this one set out to do. */
        if (r == -MANAGER_ERRNO_FLEET_CONFLICT && promoted(m, name, number)) {
                manager_log("group %s: another host of the fleet activated generation %u first", name, (unsigned) number);
                r = 0;
        }
        if (r < 0) {
                manager_audit_failure(m, "activate", object, r);
                return r;
        }
        manager_log("group %s: generation %u active%s", name, (unsigned) number, previous ? ", previous archived" : "");
        g = store_group_free(g);
        r = reload_group(m, name, &g);
        if (!g)
                return r;
        EMIT(m, generation_changed, g, number, GENERATION_ACTIVE);
        if (previous)
                EMIT(m, generation_changed, g, previous, GENERATION_ARCHIVED);
        return r;
}

static int start_rollover(Manager *m, const char *name, uint32_t *ret_number) {
        _cleanup_store_group_ StoreGroup *g = NULL, *now = NULL;
        const StoreGeneration *p;
        char object[80];
        uint32_t number;
        int r;

        /* In a fleet, the directory's copy: another host may have rolled over already. */
        r = fleet_pull(m, name);
        if (r < 0)
                return r;
        r = store_group_load(m->store, name, &g);
        if (r < 0)
                return r;
        p = pending_generation(g);
        if (p) {
                *ret_number = p->number;
                return -MANAGER_ERRNO_ROLLOVER_PENDING;
        }
        r = manager_store_usable(m);
        if (r < 0)
                return r;
        r = manager_audit(m, "rollover", AUDIT_OUTCOME_OK, object_of(g->name, object), "%s",
                          m->caller ? "requested" : "scheduled");
        if (r < 0)
                return r;
        /* Durable and in the kernel (decrypt-only) before anything encrypts with it. */
        r = store_generation_add(m->store, g->name, &number);
        if (r < 0) {
                manager_audit_failure(m, "rollover", object, r);
                return r;
        }
        r = commit_change(m, g->name, "rollover", object);
        if (r < 0)
                return r;
        *ret_number = number;
        manager_log("group %s: generation %u pending", g->name, (unsigned) number);
        r = reload_group(m, g->name, &now);
        if (now)
                EMIT(m, generation_changed, now, number, GENERATION_PENDING);
        if (r < 0)
                return r;
        if (g->policy.propagation_delay_usec == 0)
                return promote(m, g->name, number);
        return 0;
}

int manager_rollover(Manager *m, const char *name, uint32_t *ret_number) {
        return start_rollover(m, name, ret_number);
}

int manager_archive(Manager *m, const char *name, uint32_t number) {
        _cleanup_store_group_ StoreGroup *g = NULL;
        char object[80];
        int r;

        r = fleet_pull(m, name);
        if (r < 0)
                return r;
        r = manager_audit(m, "archive", AUDIT_OUTCOME_OK, object_of(name, object), "generation %u", (unsigned) number);
        if (r < 0)
                return r;
        r = store_generation_archive(m->store, name, number);
        if (r < 0) {
                manager_audit_failure(m, "archive", object, r);
                return r;
        }
        r = commit_change(m, name, "archive", object);
        if (r < 0)
                return r;
        manager_log("group %s: generation %u archived", name, (unsigned) number);
        r = reload_group(m, name, &g);
        if (g)
                EMIT(m, generation_changed, g, number, GENERATION_ARCHIVED);
        return r;
}

int manager_retire(Manager *m, const char *name, uint32_t number) {
        _cleanup_store_group_ StoreGroup *g = NULL;
        char object[80], generation[16];
        int r;

        r = fleet_pull(m, name);
        if (r < 0)
                return r;
        r = manager_audit(m, "retire", AUDIT_OUTCOME_OK, object_of(name, object), "generation %u", (unsigned) number);
        if (r < 0)
                return r;
        r = store_generation_retire(m->store, name, number);
        if (r < 0) {
                manager_audit_failure(m, "retire", object, r);
                return r;
        }
        r = commit_change(m, name, "retire", object);
        if (r < 0)
                return r;
        manager_log("group %s: generation %u retired: its key is destroyed", name, (unsigned) number);
        /* The store is the truth: the key is gone there. Now from the kernel, at once (the
         * helper revokes every copy), not at the next load. */
        (void) snprintf(generation, sizeof(generation), "%u", (unsigned) number);
        r = loader_run_helper(NULL, (char *[]) { (char *) "retire", (char *) name, generation, NULL });
        if (r != 0)
                manager_log("%s retire %s %u failed (%d); the next load removes it", loader_helper_path(), name,
                            (unsigned) number, r);
        r = reload_group(m, name, &g);
        if (g)
                EMIT(m, generation_changed, g, number, GENERATION_RETIRED);
        return r;
}

int manager_set_policy(Manager *m, const char *name, const StoreGroupPolicy *policy) {
        _cleanup_store_group_ StoreGroup *g = NULL;
        char object[80], detail[512];
        int r;

        r = fleet_pull(m, name);
        if (r < 0)
                return r;
        r = store_group_load(m->store, name, &g);
        if (r < 0)
                return r;
        /* Disallowing persons is checked before it is stored; allowing them needs no check. */
        if (!policy->allow_human_members) {
                r = check_members(m, name, g->gid, false);
                if (r < 0)
                        return r;
        }
        format_policy(policy, detail, sizeof(detail));
        r = manager_audit(m, "policy-change", AUDIT_OUTCOME_OK, object_of(name, object), "%s", detail);
        if (r < 0)
                return r;
        r = store_group_set_policy(m->store, name, policy);
        if (r < 0) {
                manager_audit_failure(m, "policy-change", object, r);
                return r;
        }
        r = commit_change(m, name, "policy-change", object);
        if (r < 0)
                return r;
        manager_log("group %s: policy set (%s)", name, detail);
        g = store_group_free(g);
        /* The hot window decides what is in the kernel: load again. */
        r = reload_group(m, name, &g);
        if (g)
                EMIT(m, policy_changed, g);
        return r;
}

/* The one step of g due at now, if any. In a fleet every host runs the schedule: the first to
 * publish wins and the others adopt its generation, which is not a failure. */
static int run_group_step(Manager *m, const StoreGroup *g, uint64_t now) {
        const StoreGeneration *p = pending_generation(g);
        uint64_t due = manager_next_step_usec(g);
        uint32_t number;
        int r;

        if (due == 0 || due > now)
                return 0;
        if (p)
                r = promote(m, g->name, p->number);
        else {
                manager_log("group %s: scheduled rollover", g->name);
                r = start_rollover(m, g->name, &number);
        }
        if (r == -MANAGER_ERRNO_FLEET_CONFLICT || (r == -MANAGER_ERRNO_ROLLOVER_PENDING && m->fleet)) {
                manager_log("group %s: another host of the fleet took the step first; adopted its version", g->name);
                return 0;
        }
        return r;
}

/* The groups' steps need the root key and a store that may serve keys. */
static bool groups_runnable(const Manager *m) {
        return store_is_unlocked(m->store) && manager_store_usable(m) == 0;
}

int manager_run_due(Manager *m, uint64_t *ret_next, unsigned *ret_failed) {
        _cleanup_strv_free_ char **names = NULL;
        uint64_t now = manager_now_usec(), next = 0, due_requests = 0;
        unsigned failed = 0;
        int r;

        /* The protectors first: a withdrawn key stops the steps below. */
        if (m->protectors.next_check_usec > 0 && m->protectors.next_check_usec <= now &&
            manager_store_check(m, false) < 0)
                failed++;
        if (groups_runnable(m)) {
                r = store_group_list(m->store, &names);
                if (r < 0)
                        return r;
        }
        for (char **n = names; n && *n; n++) {
                _cleanup_store_group_ StoreGroup *g = NULL;
                uint64_t due;

                /* One step per group and call is enough: a step taken now puts the next one in
                 * the future (a promotion with no delay is part of the rollover step). */
                r = store_group_load(m->store, *n, &g);
                if (r >= 0)
                        r = run_group_step(m, g, now);
                if (r < 0) {
                        manager_log("group %s: scheduled step failed: %s", *n,
                                    store_last_error(m->store) ?: strerror(-r));
                        failed++;
                }
                g = store_group_free(g);
                if (store_group_load(m->store, *n, &g) < 0)
                        continue;
                due = manager_next_step_usec(g);
                /* Still due: the step failed; try again later rather than at once, forever. */
                if (due > 0 && due <= now)
                        due = now + MANAGER_RETRY_USEC;
                if (due > 0 && (next == 0 || due < next))
                        next = due;
        }
        /* Requests: expire the unapproved, end the grants that ran out. */
        if (manager_requests_run_due(m, &due_requests) < 0)
                failed++;
        if (due_requests > 0 && (next == 0 || due_requests < next))
                next = due_requests;
        if (m->protectors.next_check_usec > 0 && (next == 0 || m->protectors.next_check_usec < next))
                next = m->protectors.next_check_usec;
        *ret_next = next;
        *ret_failed = failed;
        return 0;
}
