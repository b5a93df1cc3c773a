/* SPDX-License-Identifier: MIT */
/* The a{sv} policy options of CreateGroup and SetPolicy. */
#include <errno.h>
#include <grp.h>
#include <string.h>

#include "bus-errors.h"
#include "bus-manager.h"

/* A period this short would roll over continuously; 0 stays "manual only". */
#define MIN_ROLLOVER_PERIOD_USEC 1000000ULL
/* Kernel timeouts count whole seconds; a request must live long enough to be approved. */
#define MIN_BREAK_GLASS_USEC 1000000ULL

/* ApprovalGroups: Unix group names, in level order, resolved to gids now (a group renamed or
 * removed later does not silently change who approves). */
static int read_approval_groups(sd_bus_message *msg, StoreGroupPolicy *p, sd_bus_error *error) {
        StoreGroupPolicy q = *p;
        const char *name;
        int r;

        r = sd_bus_message_enter_container(msg, 'v', "as");
        if (r < 0)
                return bus_error_errno(error, -EINVAL, "option ApprovalGroups must be an array of strings (as)");
        r = sd_bus_message_enter_container(msg, 'a', "s");
        if (r < 0)
                return r;
        q.n_approval_levels = 0;
        while ((r = sd_bus_message_read(msg, "s", &name)) > 0) {
                struct group *gr;

                if (q.n_approval_levels >= STORE_APPROVAL_LEVELS_MAX)
                        return bus_error_errno(error, -EINVAL, "ApprovalGroups: at most %u levels",
                                               STORE_APPROVAL_LEVELS_MAX);
                gr = *name ? getgrnam(name) : NULL;
                if (!gr)
                        return bus_error_errno(error, -EINVAL, "ApprovalGroups: no Unix group '%.64s'", name);
                q.approval_levels[q.n_approval_levels++] = gr->gr_gid;
        }
        if (r < 0)
                return r;
        if (store_group_policy_check(&q) < 0)
                return bus_error_errno(error, -EINVAL, "ApprovalGroups: a group may approve one level only");
        r = sd_bus_message_exit_container(msg);
        if (r < 0)
                return r;
        *p = q;
        return sd_bus_message_exit_container(msg);
}

static int read_break_glass_usec(sd_bus_message *msg, const char *key, uint64_t *ret, sd_bus_error *error) {
        uint64_t t;

        if (sd_bus_message_read(msg, "v", "t", &t) < 0)
                return bus_error_errno(error, -EINVAL, "option %s must be a uint64 (t)", key);
        if (t < MIN_BREAK_GLASS_USEC)
                return bus_error_errno(error, -EINVAL, "%s must be at least 1 s", key);
        *ret = t;
        return 0;
}

static int read_option(sd_bus_message *msg, const char *key, CryptAlg *alg, StoreGroupPolicy *p,
                       sd_bus_error *error) {
        const char *s;
        uint32_t u;
        int b, r;

        if (alg && strcmp(key, "Algorithm") == 0) {
                if (sd_bus_message_read(msg, "v", "s", &s) < 0)
                        return bus_error_errno(error, -EINVAL, "option Algorithm must be a string (s)");
                if (crypt_alg_from_string(s, alg) < 0)
                        return bus_error_errno(error, -EINVAL, "unknown algorithm '%.64s'", s);
                r = crypt_alg_check(*alg);
                if (r < 0)
                        return bus_error_errno(error, r, "algorithm %s on this CPU", s);
                return 0;
        }
        if (strcmp(key, "RolloverPeriodUSec") == 0) {
                if (sd_bus_message_read(msg, "v", "t", &p->rollover_period_usec) < 0)
                        return bus_error_errno(error, -EINVAL, "option RolloverPeriodUSec must be a uint64 (t)");
                if (p->rollover_period_usec > 0 && p->rollover_period_usec < MIN_ROLLOVER_PERIOD_USEC)
                        return bus_error_errno(error, -EINVAL, "RolloverPeriodUSec must be 0 (manual) or at least 1 s");
                return 0;
        }
        if (strcmp(key, "PropagationDelayUSec") == 0) {
                if (sd_bus_message_read(msg, "v", "t", &p->propagation_delay_usec) < 0)
                        return bus_error_errno(error, -EINVAL, "option PropagationDelayUSec must be a uint64 (t)");
                return 0;
        }
        if (strcmp(key, "HotWindow") == 0) {
                if (sd_bus_message_read(msg, "v", "u", &u) < 0)
                        return bus_error_errno(error, -EINVAL, "option HotWindow must be a uint32 (u)");
                if (u > STORE_HOT_WINDOW_MAX)
                        return bus_error_errno(error, -EINVAL, "HotWindow %u is above %u", (unsigned) u,
                                               STORE_HOT_WINDOW_MAX);
                p->hot_window = u;
                return 0;
        }
        if (strcmp(key, "AllowHumanMembers") == 0) {
                if (sd_bus_message_read(msg, "v", "b", &b) < 0)
                        return bus_error_errno(error, -EINVAL, "option AllowHumanMembers must be a boolean (b)");
                p->allow_human_members = b;
                return 0;
        }
        if (strcmp(key, "ApprovalGroups") == 0)
                return read_approval_groups(msg, p, error);
        if (strcmp(key, "MaxGrantUSec") == 0)
                return read_break_glass_usec(msg, key, &p->max_grant_usec, error);
        if (strcmp(key, "RequestTimeoutUSec") == 0)
                return read_break_glass_usec(msg, key, &p->request_timeout_usec, error);
        if (strcmp(key, "RetireNeedsApproval") == 0) {
                if (sd_bus_message_read(msg, "v", "b", &b) < 0)
                        return bus_error_errno(error, -EINVAL, "option RetireNeedsApproval must be a boolean (b)");
                p->retire_needs_approval = b;
                return 0;
        }
        /* Refused, not ignored: a typo must never silently leave a default in force. */
        return bus_error_errno(error, -EINVAL, "unknown option '%.64s'", key);
}

int bus_read_policy_options(sd_bus_message *msg, CryptAlg *alg, StoreGroupPolicy *policy, sd_bus_error *error) {
        int r;

        r = sd_bus_message_enter_container(msg, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(msg, 'e', "sv")) > 0) {
                const char *key;

                r = sd_bus_message_read(msg, "s", &key);
                if (r < 0)
                        return r;
                r = read_option(msg, key, alg, policy, error);
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(msg);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(msg);
}
