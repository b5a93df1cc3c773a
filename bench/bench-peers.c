/* SPDX-License-Identifier: MIT */
/* Part 3: the same 64-byte secret through systemd-creds, a D-Bus round trip to dkmd and the dkm CLI. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <systemd/sd-bus.h>

#include "bench.h"

#define SVC "org.dkm.KeyManager1"
#define MANAGER_PATH "/org/dkm/KeyManager1"

static void write_file(const char *path, const void *p, size_t n) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

        check(fd >= 0);
        check(write(fd, p, n) == (ssize_t) n);
        check(close(fd) == 0);
}

/* Each sample a process, the way a shell script or a unit's ExecStartPre would use it. */
static Stat time_program(bool member, const char *in_path, char *const argv[]) {
        double v[256];
        unsigned n = opt.procs < 256 ? opt.procs : 256;

        for (unsigned i = 0; i < n; i++) {
                uint64_t t = now_ns();
                int status = run_program(member, in_path, false, argv);

                v[i] = (double) (now_ns() - t) / 1000.0;
                if (status != 0) {
                        (void) run_program(member, in_path, true, argv); /* show why */
                        die("%s exited with status %d", argv[0], status);
                }
        }
        return stat_of(v, n);
}

static Stat bench_systemd_creds(void) {
        char secret[256], in[256], ct[256];
        uint8_t pt[64];

        /* A host key of our own, not the machine's /var/lib/systemd/credential.secret. */
        snprintf(secret, sizeof(secret), "%s/credential.secret", opt.work_dir);
        snprintf(in, sizeof(in), "%s/creds.in", opt.work_dir);
        snprintf(ct, sizeof(ct), "%s/creds.cred", opt.work_dir);
        check(setenv("SYSTEMD_CREDENTIAL_SECRET", secret, 1) == 0);
        memset(pt, 'x', sizeof(pt));
        write_file(in, pt, sizeof(pt));
        if (run_program(false, NULL, true,
                        (char *const[]){ (char *) "/usr/bin/systemd-creds", (char *) "encrypt", (char *) "--with-key=host",
                                         (char *) "--name=bench", in, ct, NULL }) != 0)
                die("systemd-creds encrypt failed");
        return time_program(false, NULL,
                            (char *const[]){ (char *) "/usr/bin/systemd-creds", (char *) "decrypt", (char *) "--name=bench",
                                             ct, (char *) "-", NULL });
}

typedef struct BusCtx {
        sd_bus *bus;
        const char *method;
} BusCtx;

static void op_bus_call(void *userdata) {
        BusCtx *c = userdata;
        sd_bus_message *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        if (strcmp(c->method, "GetGroup") == 0)
                r = sd_bus_call_method(c->bus, SVC, MANAGER_PATH, SVC, "GetGroup", &error, &reply, "s", opt.group);
        else
                r = sd_bus_call_method(c->bus, SVC, MANAGER_PATH, SVC, c->method, &error, &reply, NULL);
        if (r < 0)
                die("D-Bus %s: %s", c->method, error.message ?: strerror(-r));
        sd_bus_message_unref(reply);
        sd_bus_error_free(&error);
}

static void bench_dbus(Stat ret[2]) {
        sd_bus *bus = NULL;
        int r;

        if (!getenv("DBUS_SYSTEM_BUS_ADDRESS"))
                die("DBUS_SYSTEM_BUS_ADDRESS is not set: scripts/bench.sh starts a private bus with dkmd on it");
        r = sd_bus_open_system(&bus);
        if (r < 0)
                die("connecting to %s: %s", getenv("DBUS_SYSTEM_BUS_ADDRESS"), strerror(-r));
        pin_cpu(opt.cpu);
        measure_warm((OpFn[]){ op_bus_call, op_bus_call }, (void *[]){ &(BusCtx){ bus, "GetGroup" }, &(BusCtx){ bus, "ListGroups" } },
                     2, opt.rounds, opt.batch / 20 + 1, ret);
        sd_bus_flush_close_unref(bus);
}

void bench_peers(void) {
        char ct_path[256];
        double lib_warm = result_value("dkm_decrypt 64 B, warm");
        double lib_cold = result_value("dkm_decrypt 64 B, cold (first use in a process)");
        Stat creds, bus[2], cli;
        Sample s;

        result_section("3. peers: the same 64-byte secret another way");

        creds = bench_systemd_creds();
        bench_dbus(bus);

        sample_make(opt.group, 64, &s);
        snprintf(ct_path, sizeof(ct_path), "%s/cli.dkm", opt.work_dir);
        write_file(ct_path, s.ct, s.ct_len);
        /* The sample was made with ad "bench": the CLI passes it with --ad. */
        cli = time_program(true, NULL,
                           (char *const[]){ (char *) opt.dkm, (char *) "decrypt", (char *) "--ad=bench", (char *) "-i",
                                            ct_path, NULL });

        result_add("systemd-creds decrypt (host key), a process", creds, "µs", "dkm_decrypt warm", creds.med / lib_warm,
                   "thousands ×", TARGET_NONE);
        result_add("D-Bus round trip to dkmd: GetGroup", bus[0], "µs", "dkm_decrypt warm", bus[0].med / lib_warm,
                   "tens ×", TARGET_NONE);
        result_add("D-Bus round trip to dkmd: ListGroups", bus[1], "µs", "dkm_decrypt warm", bus[1].med / lib_warm,
                   "tens ×", TARGET_NONE);
        result_add("dkm decrypt (CLI), a process", cli, "µs", "dkm_decrypt warm", cli.med / lib_warm, NULL, TARGET_NONE);
        result_note("dkm library (warm dkm_decrypt of 64 B) is %.0f× faster than systemd-creds decrypt, %.0f× faster "
                    "than a D-Bus round trip to dkmd, %.0f× faster than the dkm CLI.",
                    creds.med / lib_warm, bus[0].med / lib_warm, cli.med / lib_warm);
        if (!isnan(lib_cold))
                result_note("Even cold (first use in a fresh process, %.1f µs) it is %.0f× faster than systemd-creds "
                            "and costs %.2f D-Bus round trips.",
                            lib_cold, creds.med / lib_cold, lib_cold / bus[0].med);
}
