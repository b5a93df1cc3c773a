/* SPDX-License-Identifier: MIT */
/* dkm-bench: every benchmark of docs/PERFORMANCE.md in one run, printed as one table of ratios. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <dkm.h>
#include <sodium.h>

#include "bench.h"

/* Run by scripts/bench.sh as root, which made the world: a store, a key group loaded into the
 * kernel for a Unix group, a service account in that group, a private system bus with dkmd on
 * it. Data-path benchmarks run in children that take the service account's credentials; the
 * peers that need root (systemd-creds with a host key) run as root. */

static void machine(void) {
        char line[256], model[256] = "unknown";
        struct utsname u;
        FILE *f = fopen("/proc/cpuinfo", "re");

        while (f && fgets(line, sizeof(line), f))
                if (strncmp(line, "model name", 10) == 0) {
                        snprintf(model, sizeof(model), "%s", strchr(line, ':') + 2);
                        model[strcspn(model, "\n")] = 0;
                        break;
                }
        if (f)
                fclose(f);
        check(uname(&u) == 0);
        printf("Machine: %s, %ld CPU(s) online; kernel %s %s; libsodium %s; libdkm %s; %s%s\n", model,
               sysconf(_SC_NPROCESSORS_ONLN), u.release, u.machine, sodium_version_string(), dkm_version(),
#ifdef __clang__
               "clang ",
#else
               "gcc ",
#endif
               __VERSION__);
        printf("Run: %s; single-threaded work pinned to CPU %d; times are medians of repeated runs "
               "(p10 .. p90 their spread).\n\n",
               opt.smoke ? "smoke (tiny counts, checks every path works; numbers mean nothing)" : "full", opt.cpu);
}

static void usage(void) {
        fprintf(stderr, "usage: dkm-bench --uid=UID --gid=GID --group=NAME --state-dir=DIR --work-dir=DIR\n"
                        "                 --dkm=PATH --store=PATH --setup=PATH --dkmd=PATH --startup-bus=ADDRESS\n"
                        "                 --startup-state=DIR --startup-gid=GID --request-key-conf=PATH [--cpu=N] [--smoke]\n"
                        "Run by scripts/bench.sh, which sets up everything it needs.\n");
        exit(2);
}

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "uid", required_argument, NULL, 'u' },     { "gid", required_argument, NULL, 'g' },
                { "group", required_argument, NULL, 'G' },   { "state-dir", required_argument, NULL, 's' },
                { "work-dir", required_argument, NULL, 'w' }, { "dkm", required_argument, NULL, 'd' },
                { "store", required_argument, NULL, 'S' },   { "setup", required_argument, NULL, 'x' },
                { "cpu", required_argument, NULL, 'c' },     { "smoke", no_argument, NULL, 'k' },
                { "dkmd", required_argument, NULL, 'D' },    { "startup-bus", required_argument, NULL, 'B' },
                { "startup-state", required_argument, NULL, 'T' }, { "startup-gid", required_argument, NULL, 'i' },
                { "request-key-conf", required_argument, NULL, 'R' },
                {},
        };
        int c;

        opt.cpu = (int) sysconf(_SC_NPROCESSORS_ONLN) - 1;
        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 'u': opt.uid = (uid_t) strtoul(optarg, NULL, 10); break;
                case 'g': opt.gid = (gid_t) strtoul(optarg, NULL, 10); break;
                case 'G': opt.group = optarg; break;
                case 's': opt.state_dir = optarg; break;
                case 'w': opt.work_dir = optarg; break;
                case 'd': opt.dkm = optarg; break;
                case 'S': opt.store = optarg; break;
                case 'x': opt.setup = optarg; break;
                case 'c': opt.cpu = atoi(optarg); break;
                case 'k': opt.smoke = true; break;
                case 'D': opt.dkmd = optarg; break;
                case 'B': opt.startup_bus = optarg; break;
                case 'T': opt.startup_state = optarg; break;
                case 'i': opt.startup_gid = (gid_t) strtoul(optarg, NULL, 10); break;
                case 'R': opt.request_key_conf = optarg; break;
                default: usage();
                }
        if (!opt.uid || !opt.gid || !opt.group || !opt.state_dir || !opt.work_dir || !opt.dkm || !opt.store || !opt.setup ||
            !opt.dkmd || !opt.startup_bus || !opt.startup_state || !opt.startup_gid || !opt.request_key_conf ||
            optind != argc)
                usage();
        if (geteuid() != 0)
                die("run as root (scripts/bench.sh does): children take the service account's credentials");
        check(sodium_init() >= 0);

        if (opt.smoke) {
                opt.rounds = 3;
                opt.batch = 50;
                opt.cold = 3;
                opt.procs = 2;
                opt.thread_ms = 5;
                opt.bulk_sizes[0] = 1U << 20;
                opt.bulk_sizes[1] = 2U << 20;
                opt.gens[0] = 1, opt.gens[1] = 3, opt.gens[2] = 70;
                opt.groups[0] = 1, opt.groups[1] = 3, opt.groups[2] = 5;
                opt.rollovers = 3;
                opt.load_gens[0] = 10, opt.load_gens[1] = 100, opt.load_gens[2] = 200;
                opt.loads = 2;
                opt.startup_groups = 5;
                opt.startups = 1;
                opt.upcalls = 2;
        } else {
                opt.rounds = 31;
                opt.batch = 2000;
                opt.cold = 101;
                opt.procs = 31;
                opt.thread_ms = 200;
                opt.bulk_sizes[0] = 1U << 20;
                opt.bulk_sizes[1] = 64U << 20;
                opt.gens[0] = 1, opt.gens[1] = 100, opt.gens[2] = 10000;
                opt.groups[0] = 1, opt.groups[1] = 100, opt.groups[2] = 1000;
                opt.rollovers = 31;
                opt.load_gens[0] = 10, opt.load_gens[1] = 1000, opt.load_gens[2] = 10000;
                opt.loads = 11;
                opt.startup_groups = 1000;
                opt.startups = 5;
                opt.upcalls = 21;
        }

        results_init();
        machine();
        bench_small();
        bench_bulk();
        bench_peers();
        bench_control_plane();
        bench_growth();
        results_print();
        return 0;
}
