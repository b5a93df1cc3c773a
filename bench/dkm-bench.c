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
                        "                 --dkm=PATH --store=PATH --setup=PATH [--cpu=N] [--smoke]\n"
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
                default: usage();
                }
        if (!opt.uid || !opt.gid || !opt.group || !opt.state_dir || !opt.work_dir || !opt.dkm || !opt.store || !opt.setup ||
            optind != argc)
                usage();
        if (geteuid() != 0)
                die("run as root (scripts/bench.sh does): children take the service account's credentials");
        check(sodium_init() >= 0);

        if (opt.smoke)
                opt = (BenchOptions){ .uid = opt.uid, .gid = opt.gid, .group = opt.group, .state_dir = opt.state_dir,
                                      .work_dir = opt.work_dir, .dkm = opt.dkm, .store = opt.store, .setup = opt.setup,
                                      .smoke = true, .cpu = opt.cpu, .rounds = 3, .batch = 50, .cold = 3, .procs = 2,
                                      .thread_ms = 5, .bulk_sizes = { 1U << 20, 2U << 20 }, .gens = { 1, 3, 70 },
                                      .groups = { 1, 3, 5 } };
        else {
                opt.rounds = 31;
                opt.batch = 2000;
                opt.cold = 101;
                opt.procs = 31;
                opt.thread_ms = 200;
                opt.bulk_sizes[0] = 1U << 20;
                opt.bulk_sizes[1] = 64U << 20;
                opt.gens[0] = 1, opt.gens[1] = 100, opt.gens[2] = 10000;
                opt.groups[0] = 1, opt.groups[1] = 100, opt.groups[2] = 1000;
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
