/* SPDX-License-Identifier: MIT */
/* Part 5: decryption cost as a group gains generations and as the member sees more groups. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

static void setup(char *const args[]) {
        char *argv[8] = { (char *) opt.setup, (char *) opt.state_dir };

        for (size_t i = 0; args[i]; i++)
                argv[2 + i] = args[i];
        if (run_program(false, NULL, true, argv) != 0)
                die("dkm-bench-setup %s failed", args[0]);
}

static void generations(const char *group, unsigned n) {
        char num[16];

        snprintf(num, sizeof(num), "%u", n);
        /* Hot window 62: the most the helper's manifest holds besides active and pending. */
        setup((char *const[]){ (char *) "generations", (char *) group, num, (char *) "62", NULL });
}

static void row(const char *what, unsigned n, const char *unit_of_n, const Stat *warm, const Stat *cold, const Stat *warm1,
                const Stat *cold1) {
        char name[96];

        snprintf(name, sizeof(name), "%s, %u %s, warm", what, n, unit_of_n);
        result_add(name, *warm, "µs", warm1 ? "the smallest" : NULL, warm1 ? warm->med / warm1->med : 0, warm1 ? "flat" : NULL,
                   TARGET_NONE);
        snprintf(name, sizeof(name), "%s, %u %s, cold", what, n, unit_of_n);
        result_add(name, *cold, "µs", cold1 ? "the smallest" : NULL, cold1 ? cold->med / cold1->med : 0, cold1 ? "flat" : NULL,
                   TARGET_NONE);
}

void bench_growth(void) {
        char gen_group[80], prefix[80], gid[16];
        Stat aw1 = {}, ac1 = {}, hw1 = {}, hc1 = {}, gw1 = {}, gc1 = {};

        result_section("5. growth: dkm_decrypt 64 B as generations and groups grow");

        snprintf(gen_group, sizeof(gen_group), "%s-gen", opt.group);
        snprintf(gid, sizeof(gid), "%u", (unsigned) opt.gid);
        char gid_arg[32];
        snprintf(gid_arg, sizeof(gid_arg), "--gid=%s", gid);
        if (run_program(false, NULL, true,
                        (char *const[]){ (char *) opt.store, (char *) "--state-dir", (char *) opt.state_dir, (char *) "group",
                                         (char *) "create", gen_group, gid_arg, NULL }) != 0)
                die("dkm-store group create %s failed", gen_group);

        for (size_t i = 0; i < 3; i++) {
                unsigned n = opt.gens[i];
                Sample active, archived;
                Stat aw, ac, hw, hc;

                if (n > 1) {
                        /* Generation n-1 encrypts one sample, then n becomes active: n-1 is a hot
                         * archived generation. */
                        generations(gen_group, n - 1);
                        sample_make(gen_group, 64, &archived);
                }
                generations(gen_group, n);
                sample_make(gen_group, 64, &active);
                check(active.generation == n);
                decrypt_cost(&active, &aw, &ac);
                row("active generation", n, "generations", &aw, &ac, i ? &aw1 : NULL, i ? &ac1 : NULL);
                if (i == 0) {
                        aw1 = aw;
                        ac1 = ac;
                } else {
                        check(archived.generation == n - 1);
                        decrypt_cost(&archived, &hw, &hc);
                        row("hot archived generation", n, "generations", &hw, &hc, i > 1 ? &hw1 : NULL,
                            i > 1 ? &hc1 : NULL);
                        if (i == 1) {
                                hw1 = hw;
                                hc1 = hc;
                        }
                }
        }

        snprintf(prefix, sizeof(prefix), "%s-g", opt.group);
        for (size_t i = 0; i < 3; i++) {
                char num[16], first[96];
                Sample s;
                Stat w, c;

                snprintf(num, sizeof(num), "%u", opt.groups[i]);
                setup((char *const[]){ (char *) "groups", prefix, num, gid, NULL });
                snprintf(first, sizeof(first), "%s-0", prefix);
                sample_make(first, 64, &s);
                decrypt_cost(&s, &w, &c);
                /* Plus the two groups of the parts before. */
                row("groups loaded for the member", opt.groups[i] + 2, "groups", &w, &c, i ? &gw1 : NULL, i ? &gc1 : NULL);
                if (i == 0) {
                        gw1 = w;
                        gc1 = c;
                }
        }
}
