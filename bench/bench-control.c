/* SPDX-License-Identifier: MIT */
/* Part 4: the control plane. Rollover visibility, loading large groups, dkmd start-up with many
 * groups, the request-key upcall for a cold archived generation. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <dkm.h>
#include <keyutils.h>
#include <sodium.h>
#include <systemd/sd-bus.h>

#include "bench.h"

#define SVC "org.dkm.KeyManager1"
#define MANAGER_PATH "/org/dkm/KeyManager1"
#define GROUP_IFACE "org.dkm.KeyManager1.Group"

/* The member's poll period while it waits for a new generation: the resolution of the
 * rollover rows (plus the scheduler's wake-up slack). */
#define POLL_USEC 50

/* Part 3 pinned this process; the control plane is several processes (dkmd, the helper,
 * dbus-daemon, the member): let the scheduler place them. */
static void unpin(void) {
        cpu_set_t set;

        CPU_ZERO(&set);
        for (long i = 0; i < sysconf(_SC_NPROCESSORS_ONLN) && i < CPU_SETSIZE; i++)
                CPU_SET(i, &set);
        (void) sched_setaffinity(0, sizeof(set), &set);
}

static void setup(const char *state_dir, char *const args[]) {
        char *argv[10] = { (char *) opt.setup, (char *) state_dir };

        for (size_t i = 0; args[i]; i++)
                argv[2 + i] = args[i];
        if (run_program(false, NULL, true, argv) != 0)
                die("dkm-bench-setup %s failed", args[0]);
}

/* A group of the bench store for gid, created with dkm-store and loaded. */
static void group_create(const char *name) {
        char gid_arg[32];

        snprintf(gid_arg, sizeof(gid_arg), "--gid=%u", (unsigned) opt.gid);
        if (run_program(false, NULL, true,
                        (char *const[]){ (char *) opt.store, (char *) "--state-dir", (char *) opt.state_dir, (char *) "group",
                                         (char *) "create", (char *) name, gid_arg, NULL }) != 0)
                die("dkm-store group create %s failed", name);
        if (run_program(false, NULL, true,
                        (char *const[]){ (char *) opt.store, (char *) "--state-dir", (char *) opt.state_dir, (char *) "load",
                                         (char *) name, NULL }) != 0)
                die("dkm-store load %s failed", name);
}

static sd_bus *bus_open(void) {
        sd_bus *bus = NULL;
        int r;

        if (!getenv("DBUS_SYSTEM_BUS_ADDRESS"))
                die("DBUS_SYSTEM_BUS_ADDRESS is not set: scripts/bench.sh starts a private bus with dkmd on it");
        r = sd_bus_open_system(&bus);
        if (r < 0)
                die("connecting to %s: %s", getenv("DBUS_SYSTEM_BUS_ADDRESS"), strerror(-r));
        return bus;
}

/* The object path of group name (GetGroup), malloc'd. */
static char *group_path(sd_bus *bus, const char *name) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *path;
        char *ret;
        int r;

        r = sd_bus_call_method(bus, SVC, MANAGER_PATH, SVC, "GetGroup", &error, &reply, "s", name);
        if (r < 0)
                die("GetGroup %s: %s", name, error.message ?: strerror(-r));
        check_r(sd_bus_message_read(reply, "o", &path));
        ret = strdup(path);
        check(ret);
        sd_bus_message_unref(reply);
        return ret;
}

static void group_call(sd_bus *bus, const char *path, const char *method, sd_bus_message **ret, const char *types, ...) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *m = NULL;
        va_list ap;
        int r;

        check_r(sd_bus_message_new_method_call(bus, &m, SVC, path, GROUP_IFACE, method));
        if (types) {
                va_start(ap, types);
                r = sd_bus_message_appendv(m, types, ap);
                va_end(ap);
                check_r(r);
        }
        r = sd_bus_call(bus, m, 30 * 1000000ULL, &error, ret);
        if (r < 0)
                die("%s on %s: %s", method, path, error.message ?: strerror(-r));
        sd_bus_message_unref(m);
        sd_bus_error_free(&error);
}

static void set_hot_window(sd_bus *bus, const char *path, unsigned n) {
        group_call(bus, path, "SetPolicy", NULL, "a{sv}", 1, "HotWindow", "u", (uint32_t) n);
}

/* 1. Rollover: from the Rollover call returning to the admin to the member's next encryption
 * under the new generation, in another process. */

typedef struct Poll {
        uint64_t seen_ns[1024];  /* [generation]: when the member first encrypted under it */
        int ready, stop, failed;
} Poll;

static void poller(Poll *p, const char *group) {
        uint8_t pt[64] = {}, ct[256];
        uint32_t last = 0;

        become_member();
        (void) prctl(PR_SET_PDEATHSIG, SIGKILL); /* after the credential change, which clears it */
        if (getppid() == 1)
                _exit(1);
        while (!__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE)) {
                dkm_info_t info;
                uint64_t t;
                size_t n;

                if (dkm_encrypt(group, "bench", 5, pt, sizeof(pt), ct, sizeof(ct), &n) < 0 ||
                    dkm_ciphertext_info(ct, n, &info) < 0) {
                        __atomic_store_n(&p->failed, 1, __ATOMIC_RELEASE);
                        break;
                }
                t = now_ns();
                if (info.generation != last && info.generation < 1024) {
                        last = info.generation;
                        __atomic_store_n(&p->seen_ns[last], t, __ATOMIC_RELEASE);
                }
                __atomic_store_n(&p->ready, 1, __ATOMIC_RELEASE);
                usleep(POLL_USEC);
        }
        _exit(0);
}

static void bench_rollover(sd_bus *bus) {
        char group[96];
        double call_ms[1024], seen_ms[1024];
        unsigned n = opt.rollovers < 1000 ? opt.rollovers : 1000, early = 0;
        Poll *p = shared_new(sizeof(Poll));
        char *path = NULL;
        uint64_t deadline;
        pid_t pid;
        int status;

        snprintf(group, sizeof(group), "%s-roll", opt.group);
        group_create(group);
        path = group_path(bus, group);

        fflush(NULL);
        pid = fork();
        check(pid >= 0);
        if (pid == 0)
                poller(p, group);
        deadline = now_ns() + 5000000000ULL;
        while (!__atomic_load_n(&p->ready, __ATOMIC_ACQUIRE) && !__atomic_load_n(&p->failed, __ATOMIC_ACQUIRE) &&
               now_ns() < deadline)
                usleep(1000);
        check(__atomic_load_n(&p->ready, __ATOMIC_ACQUIRE));

        for (unsigned i = 0; i < n; i++) {
                sd_bus_message *reply = NULL;
                uint32_t gen;
                uint64_t t0, t1, seen;

                usleep(20000); /* the member settles between rollovers, as between real ones */
                t0 = now_ns();
                group_call(bus, path, "Rollover", &reply, NULL);
                t1 = now_ns();
                check_r(sd_bus_message_read(reply, "u", &gen));
                sd_bus_message_unref(reply);
                check(gen == i + 2 && gen < 1024);
                deadline = t1 + 2000000000ULL;
                while (!(seen = __atomic_load_n(&p->seen_ns[gen], __ATOMIC_ACQUIRE))) {
                        if (__atomic_load_n(&p->failed, __ATOMIC_ACQUIRE))
                                die("the member's dkm_encrypt failed during the rollovers");
                        if (now_ns() > deadline)
                                die("generation %u not seen by the member 2 s after Rollover returned", gen);
                        usleep(POLL_USEC);
                }
                call_ms[i] = (double) (t1 - t0) / 1e6;
                /* Negative: the member encrypted under it before the reply reached the admin
                 * (the kernel is updated before dkmd answers). */
                seen_ms[i] = ((double) seen - (double) t1) / 1e6;
                early += seen < t1;
        }
        __atomic_store_n(&p->stop, 1, __ATOMIC_RELEASE);
        check(waitpid(pid, &status, 0) == pid);
        munmap(p, sizeof(Poll));
        free(path);

        Stat call = stat_of(call_ms, n), seen = stat_of(seen_ms, n);
        result_add("Rollover D-Bus call (store, 2 helper loads, reply)", call, "ms", NULL, 0, NULL, TARGET_NONE);
        result_add("rollover → member's dkm_encrypt uses it (after the call returned)", seen, "ms", NULL, 0, "≤ 5 ms",
                   seen.med <= 5.0 ? TARGET_MET : TARGET_MISSED);
        result_note("Rollover: %u rollovers; the member (another process, libdkm, polling dkm_encrypt every %u µs) "
                    "encrypted under the new generation %.2f ms (median; p90 %.2f ms) after the admin's call returned; "
                    "%u of %u times before the reply arrived (negative values).",
                    n, POLL_USEC, seen.med, seen.p90, early, n);
}

/* 2. Loading a group with many generations: dkmd's Load (D-Bus) and dkm-store load (a process). */

static void bench_load(sd_bus *bus) {
        char group[96], num[16], hw_arg[32];
        char *path = NULL;
        double first = NAN;

        snprintf(group, sizeof(group), "%s-load", opt.group);
        group_create(group);
        path = group_path(bus, group);
        /* The most the kernel gets: active + 62 archived (STORE_HOT_WINDOW_MAX). */
        set_hot_window(bus, path, 62);
        snprintf(hw_arg, sizeof(hw_arg), "--hot-window=62");

        for (size_t i = 0; i < 3; i++) {
                unsigned gens = opt.load_gens[i];
                double bus_ms[64], cli_ms[64];
                unsigned n = opt.loads < 64 ? opt.loads : 64;
                char name[96];

                snprintf(num, sizeof(num), "%u", gens);
                setup(opt.state_dir, (char *const[]){ (char *) "generations", group, num, (char *) "62", NULL });
                for (unsigned k = 0; k < n; k++) {
                        uint64_t t = now_ns();

                        group_call(bus, path, "Load", NULL, NULL);
                        bus_ms[k] = (double) (now_ns() - t) / 1e6;
                        t = now_ns();
                        if (run_program(false, NULL, true,
                                        (char *const[]){ (char *) opt.store, (char *) "--state-dir", (char *) opt.state_dir,
                                                         (char *) "load", group, hw_arg, NULL }) != 0)
                                die("dkm-store load %s failed", group);
                        cli_ms[k] = (double) (now_ns() - t) / 1e6;
                }
                Stat b = stat_of(bus_ms, n), c = stat_of(cli_ms, n);
                bool big = gens >= 10000;

                snprintf(name, sizeof(name), "dkmd Load, %u generations in the store (%u in the kernel)", gens,
                         gens < 63 ? gens : 63);
                result_add(name, b, "ms", i ? "the smallest" : NULL, i ? b.med / first : 0, big ? "≤ 1 s" : NULL,
                           big ? (b.med <= 1000 ? TARGET_MET : TARGET_MISSED) : TARGET_NONE);
                if (i == 0)
                        first = b.med;
                snprintf(name, sizeof(name), "dkm-store load, %u generations, a process", gens);
                result_add(name, c, "ms", "dkmd Load", c.med / b.med, big ? "≤ 1 s" : NULL,
                           big ? (c.med <= 1000 ? TARGET_MET : TARGET_MISSED) : TARGET_NONE);
        }
        free(path);
        result_note("Loading: the kernel gets the active generation, a pending one and the newest hot-window "
                    "archived ones (here 62, the most); older ones come on demand through the request-key upcall.");
}

/* 3. dkmd start-up: from exec to its bus name on a bus of its own, with a store of n groups,
 * each loaded into the kernel (one dkm-keyring-helper run per group) before it takes the name. */

typedef struct NameWait {
        bool owned;
} NameWait;

static int on_name_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        NameWait *w = userdata;
        const char *name, *old_owner, *new_owner;

        (void) error;
        if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) >= 0 && strcmp(name, SVC) == 0 &&
            new_owner[0])
                w->owned = true;
        return 0;
}

static double dkmd_start_ms(const char *log) {
        sd_bus *bus = NULL;
        NameWait w = {};
        uint64_t t0, t1 = 0, deadline;
        pid_t pid;
        int status;

        check_r(sd_bus_new(&bus));
        check_r(sd_bus_set_address(bus, opt.startup_bus));
        check_r(sd_bus_set_bus_client(bus, 1));
        check_r(sd_bus_start(bus));
        check_r(sd_bus_match_signal(bus, NULL, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                    "NameOwnerChanged", on_name_owner_changed, &w));
        /* A round trip: the match is in place before dkmd starts. */
        check_r(sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "GetId",
                                   NULL, NULL, NULL));

        fflush(NULL);
        t0 = now_ns();
        pid = fork();
        check(pid >= 0);
        if (pid == 0) {
                int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
                char state[512];

                if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
                        _exit(127);
                (void) prctl(PR_SET_PDEATHSIG, SIGTERM);
                setenv("DBUS_SYSTEM_BUS_ADDRESS", opt.startup_bus, 1);
                snprintf(state, sizeof(state), "--state-dir=%s", opt.startup_state);
                execl(opt.dkmd, opt.dkmd, "--bus=system", state, (char *) NULL);
                _exit(127);
        }
        deadline = t0 + 600000000000ULL;
        while (!w.owned) {
                int r = sd_bus_process(bus, NULL);

                check_r(r);
                if (w.owned) {
                        t1 = now_ns();
                        break;
                }
                if (r > 0)
                        continue;
                if (waitpid(pid, &status, WNOHANG) == pid)
                        die("dkmd exited before taking its name (status %d); see %s", status, log);
                if (now_ns() > deadline)
                        die("dkmd did not take its name in 600 s; see %s", log);
                check_r(sd_bus_wait(bus, 100000));
        }
        check(kill(pid, SIGTERM) == 0);
        check(waitpid(pid, &status, 0) == pid);
        sd_bus_flush_close_unref(bus);
        return (double) (t1 - t0) / 1e6;
}

static void bench_startup(void) {
        char log[512], gid[16], prefix[64], num[16];
        unsigned sizes[2] = { 1, opt.startup_groups }, runs = opt.startups < 64 ? opt.startups : 64;
        double first = NAN;

        snprintf(log, sizeof(log), "%s/dkmd-startup.log", opt.startup_state);
        snprintf(gid, sizeof(gid), "%u", (unsigned) opt.startup_gid);
        snprintf(prefix, sizeof(prefix), "%s-st", opt.group);
        for (size_t i = 0; i < 2; i++) {
                double v[64];
                char name[96];
                uint64_t t = now_ns();

                snprintf(num, sizeof(num), "%u", sizes[i]);
                /* The store API straight, without loading: dkmd's start loads them. */
                setup(opt.startup_state, (char *const[]){ (char *) "create-groups", prefix, num, gid, NULL });
                fprintf(stderr, "dkm-bench: %u groups created in %.0f ms\n", sizes[i], (double) (now_ns() - t) / 1e6);
                for (unsigned k = 0; k < runs; k++)
                        v[k] = dkmd_start_ms(log);
                Stat s = stat_of(v, runs);

                snprintf(name, sizeof(name), "dkmd start-up (exec → bus name), %u group%s", sizes[i], sizes[i] == 1 ? "" : "s");
                result_add(name, s, "ms", i ? "1 group" : NULL, i ? s.med / first : 0, NULL, TARGET_NONE);
                if (i == 0)
                        first = s.med;
                else
                        result_note("dkmd start-up with %u groups: %.0f ms, %.2f ms per group over the 1-group start "
                                    "(each group: read and unwrap from the store, one dkm-keyring-helper run).",
                                    sizes[i], s.med, (s.med - first) / (sizes[i] - 1));
        }
        /* Out of the kernel again: the second account's keyrings are not needed after this. */
        setup(opt.startup_state, (char *const[]){ (char *) "unload-all", NULL });
}

/* 4. The request-key upcall: the first decryption, in a fresh process, of a ciphertext of an
 * archived generation outside the hot window (not in the kernel), against one in it. */

typedef struct Upcall {
        double ms;
        key_serial_t serial;
        int failed;
} Upcall;

typedef struct UpcallCtx {
        const Sample *s;
        Upcall *out;
} UpcallCtx;

static void key_desc(const Sample *s, char ret[80]) {
        char hex[33];

        sodium_bin2hex(hex, sizeof(hex), s->group_id, sizeof(s->group_id));
        snprintf(ret, 80, "dkm:%s:%u", hex, s->generation);
}

/* Forked from root per sample: the member's credentials and a fresh session keyring (no
 * request-key marker of an earlier sample), libdkm never used: then one dkm_decrypt. */
static void child_first_decrypt(void *userdata) {
        UpcallCtx *c = userdata;
        uint8_t pt[1024];
        char desc[80];
        uint64_t t;
        size_t n;

        t = now_ns();
        if (dkm_decrypt(c->s->ct, c->s->ct_len, "bench", 5, pt, sizeof(pt), &n) < 0) {
                c->out->failed = 1;
                return;
        }
        c->out->ms = (double) (now_ns() - t) / 1e6;
        key_desc(c->s, desc);
        c->out->serial = keyctl_search(KEY_SPEC_USER_KEYRING, "user", desc, 0);
}

static Upcall first_decrypt(const Sample *s) {
        Upcall *u = shared_new(sizeof(Upcall)), ret;

        run_child(true, child_first_decrypt, &(UpcallCtx){ s, u });
        if (u->failed)
                die("dkm_decrypt of generation %u failed (is the request-key.d line in place?)", s->generation);
        ret = *u;
        munmap(u, sizeof(Upcall));
        return ret;
}

/* Group <group>-rk: generation 1 out of the kernel, 4 in the hot window; our request-key.d line. */
static Sample upcall_cold, upcall_hot;

static void upcall_setup(void) {
        char group[96], hex[33], line[1024];
        const char *helper = getenv("DKM_KEYRING_HELPER"), *runtime = getenv("DKM_RUNTIME_DIR");
        FILE *f;

        if (!helper || !runtime)
                die("DKM_KEYRING_HELPER and DKM_RUNTIME_DIR must be set (scripts/bench.sh does)");
        if (access("/sbin/request-key", X_OK) < 0)
                die("/sbin/request-key (keyutils) is needed for the upcall benchmark");
        snprintf(group, sizeof(group), "%s-rk", opt.group);
        group_create(group);
        sample_make(group, 64, &upcall_cold); /* generation 1 */
        setup(opt.state_dir, (char *const[]){ (char *) "generations", group, (char *) "4", (char *) "2", NULL });
        sample_make(group, 64, &upcall_hot); /* generation 4 */
        /* 5 active; 3 and 4 archived in the hot window (2); 1 and 2 out of the kernel. */
        setup(opt.state_dir, (char *const[]){ (char *) "generations", group, (char *) "5", (char *) "2", NULL });
        check(upcall_cold.generation == 1 && upcall_hot.generation == 4);

        /* One line for this group's id only: never answers another run's or the system's keys. */
        sodium_bin2hex(hex, sizeof(hex), upcall_cold.group_id, sizeof(upcall_cold.group_id));
        snprintf(line, sizeof(line),
                 "create user dkm:%s:* * %s request-key --state-dir=%s --runtime-dir=%s --timeout=60 %%k %%d %%c\n", hex,
                 helper, opt.state_dir, runtime);
        check(mkdir("/etc/request-key.d", 0755) == 0 || errno == EEXIST);
        f = fopen(opt.request_key_conf, "wxe");
        if (!f)
                die("%s: %m", opt.request_key_conf);
        check(fputs(line, f) >= 0);
        check(fclose(f) == 0);
}

static void upcall_measure(const char *store_desc, bool with_hot) {
        unsigned n = opt.upcalls < 64 ? opt.upcalls : 64;
        double cold[64], loaded[64], hot[64];
        char name[96];

        for (unsigned i = 0; i < n; i++) {
                Upcall c, l, h;

                c = first_decrypt(&upcall_cold); /* not in the kernel: the upcall loads it */
                check(c.serial > 0);
                l = first_decrypt(&upcall_cold); /* loaded on demand by the sample before */
                check(l.serial == c.serial);
                h = first_decrypt(&upcall_hot); /* in the hot window */
                /* Out again (root owns the key), so that the next sample upcalls too. */
                check(keyctl_invalidate(c.serial) == 0);
                cold[i] = c.ms;
                loaded[i] = l.ms;
                hot[i] = h.ms;
        }

        Stat sh = stat_of(hot, n), sc = stat_of(cold, n), sl = stat_of(loaded, n);
        if (with_hot)
                result_add("first dkm_decrypt in a process, hot archived generation (in the kernel)", sh, "ms", NULL, 0,
                           NULL, TARGET_NONE);
        snprintf(name, sizeof(name), "first dkm_decrypt, cold archived generation (upcall), %s", store_desc);
        result_add(name, sc, "ms", "hot archived", sc.med / sh.med, NULL, TARGET_NONE);
        if (with_hot) {
                result_add("first dkm_decrypt in a process, cold generation after its upcall", sl, "ms", "hot archived",
                           sl.med / sh.med, NULL, TARGET_NONE);
                result_note("Upcall: a cold archived generation costs %.2f ms more than a hot one on its first use "
                            "(the kernel runs /sbin/request-key, which runs dkm-keyring-helper request-key: open the "
                            "store, find the group by id, unlock, unwrap, add the key with a 60 s timeout); then it is as "
                            "fast as a hot one until the timeout.",
                            sc.med - sh.med);
        }
}

void bench_control_plane(void) {
        char desc[64];
        sd_bus *bus;

        result_section("4. control plane: rollover, loading, dkmd start-up, the request-key upcall");
        unpin();
        bus = bus_open();
        bench_rollover(bus);
        upcall_setup();
        upcall_measure("a store of 3 small groups", true);
        bench_load(bus);
        sd_bus_flush_close_unref(bus);
        /* The handler finds the group by id by parsing every group file of the store. */
        snprintf(desc, sizeof(desc), "+ a group of %u generations", opt.load_gens[2]);
        upcall_measure(desc, false);
        unlink(opt.request_key_conf);
        bench_startup();
        /* Part 5 counts the groups the member sees (a cold decryption scans them all): ours go. */
        for (size_t i = 0; i < 3; i++) {
                static const char *const suffix[] = { "roll", "load", "rk" };
                char name[96];

                snprintf(name, sizeof(name), "%s-%s", opt.group, suffix[i]);
                if (run_program(false, NULL, true,
                                (char *const[]){ (char *) opt.store, (char *) "--state-dir", (char *) opt.state_dir,
                                                 (char *) "unload", name, NULL }) != 0)
                        die("dkm-store unload %s failed", name);
        }
        pin_cpu(opt.cpu); /* as part 3 left it: part 5's rows stay comparable with earlier runs */
}
