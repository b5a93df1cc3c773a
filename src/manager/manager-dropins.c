/* SPDX-License-Identifier: MIT */
/* Applying the groups.d drop-ins: create the groups they declare, keep their policy as written. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "group-dropin.h"
#include "manager.h"
#include "parse.h"

/* Append "PATH: what" to the problem list, and log it: an admin reads the journal, a caller of
 * Reload() reads the reply. */
static int problem(char ***list, size_t *n, const char *path, const char *fmt, ...) _printf_(4, 5);
static int problem(char ***list, size_t *n, const char *path, const char *fmt, ...) {
        char what[512], **l;
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(what, sizeof(what), fmt, ap);
        va_end(ap);
        fprintf(stderr, "dkmd: %s: %s\n", path, what);
        l = realloc(*list, (*n + 2) * sizeof(char *));
        if (!l)
                return -ENOMEM;
        *list = l;
        if (asprintf(&l[*n], "%s: %s", path, what) < 0)
                return -ENOMEM;
        l[++*n] = NULL;
        return 0;
}

static bool policy_equal(const StoreGroupPolicy *a, const StoreGroupPolicy *b) {
        return a->rollover_period_usec == b->rollover_period_usec &&
               a->propagation_delay_usec == b->propagation_delay_usec && a->hot_window == b->hot_window &&
               a->allow_human_members == b->allow_human_members && a->n_approval_levels == b->n_approval_levels &&
               memcmp(a->approval_levels, b->approval_levels, a->n_approval_levels * sizeof(gid_t)) == 0 &&
               a->max_grant_usec == b->max_grant_usec && a->request_timeout_usec == b->request_timeout_usec &&
               a->retire_needs_approval == b->retire_needs_approval;
}

/* The drop-in's policy with ApprovalGroups= resolved in the group database. */
static int resolve_policy(const GroupDropin *d, StoreGroupPolicy *ret, char ***problems, size_t *n, bool *ret_ok) {
        StoreGroupPolicy p = d->policy;

        *ret_ok = false;
        p.n_approval_levels = 0;
        for (size_t i = 0; i < d->n_approval_groups; i++) {
                gid_t gid;

                if (parse_gid(d->approval_groups[i], &gid) < 0)
                        return problem(problems, n, d->path, "ApprovalGroups=: no such group '%s'",
                                       d->approval_groups[i]);
                p.approval_levels[p.n_approval_levels++] = gid;
        }
        if (store_group_policy_check(&p) < 0)
                return problem(problems, n, d->path, "ApprovalGroups=: a group appears at two levels");
        *ret = p;
        *ret_ok = true;
        return 0;
}

static const char *reason(Manager *m, int r) {
        if (r == -MANAGER_ERRNO_HUMAN_MEMBERS)
                return "a member of the Unix group can log in (set AllowHumanMembers=yes to allow it)";
        return store_last_error(m->store) ?: strerror(-r);
}

static int apply_one(Manager *m, const GroupDropin *d, char ***problems, size_t *n) {
        _cleanup_store_group_ StoreGroup *g = NULL;
        StoreGroupPolicy policy;
        bool ok;
        gid_t gid;
        int r;

        r = resolve_policy(d, &policy, problems, n, &ok);
        if (r < 0 || !ok)
                return r;
        r = parse_gid(d->unix_group, &gid);
        if (r < 0 || gid == 0)
                return problem(problems, n, d->path, "UnixGroup=%s: %s", d->unix_group,
                               r < 0 ? "no such group" : "gid 0 would give the keys to root's group");
        r = store_group_load(m->store, d->name, &g);
        if (r == -ENOENT) {
                r = crypt_alg_check(d->alg);
                if (r < 0)
                        return problem(problems, n, d->path, "Algorithm=%s: not supported on this CPU",
                                       crypt_alg_to_string(d->alg));
                r = manager_create_group(m, d->name, gid, d->alg, &policy);
                if (r < 0)
                        return problem(problems, n, d->path, "creating group %s: %s", d->name, reason(m, r));
                return 0;
        }
        if (r < 0)
                return problem(problems, n, d->path, "group %s: %s", d->name, reason(m, r));
        /* What a group is for and how it encrypts are fixed at creation; a drop-in that
         * disagrees is reported, never obeyed halfway. */
        if (g->gid != gid)
                return problem(problems, n, d->path, "UnixGroup= is gid %u, but group %s was created for gid %u",
                               (unsigned) gid, d->name, (unsigned) g->gid);
        if (g->alg != d->alg)
                return problem(problems, n, d->path, "Algorithm=%s, but group %s was created with %s",
                               crypt_alg_to_string(d->alg), d->name, crypt_alg_to_string(g->alg));
        if (policy_equal(&g->policy, &policy))
                return 0;
        r = manager_set_policy(m, d->name, &policy);
        if (r < 0)
                return problem(problems, n, d->path, "setting the policy of %s: %s", d->name, reason(m, r));
        return 0;
}

int manager_apply_dropins(Manager *m, char *const *dirs, char ***ret_problems) {
        _cleanup_strv_free_ char **problems = NULL;
        GroupDropin **dropins = NULL;
        size_t n_dropins = 0, n = 0;
        int r;

        r = group_dropin_load_dirs((const char *const *) dirs, &dropins, &n_dropins, &problems);
        if (r < 0)
                return r;
        for (char **p = problems; p && *p; p++, n++)
                fprintf(stderr, "dkmd: %s (skipped)\n", *p);
        for (size_t i = 0; i < n_dropins && r >= 0; i++)
                r = apply_one(m, dropins[i], &problems, &n);
        group_dropin_free_array(dropins, n_dropins);
        if (r < 0)
                return r;
        *ret_problems = TAKE_PTR(problems);
        return 0;
}
