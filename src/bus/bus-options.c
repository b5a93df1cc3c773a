/* SPDX-License-Identifier: MIT */
/* The a{sv} policy options of CreateGroup and SetPolicy. */
#include <errno.h>
#include <string.h>

#include "bus-errors.h"
#include "bus-manager.h"

/* A period this short would roll over continuously; 0 stays "manual only". */
#define MIN_ROLLOVER_PERIOD_USEC 1000000ULL

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
