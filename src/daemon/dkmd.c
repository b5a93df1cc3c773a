/* SPDX-License-Identifier: MIT */
/* dkmd: owns the key store and serves org.dkm.KeyManager1 on the bus, driven by one sd-event loop. */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "bus-manager.h"
#include "config.h"
#include "loader.h"
#include "macro.h"
#include "store.h"

#define log_error(fmt, ...) fprintf(stderr, "dkmd: " fmt "\n", ##__VA_ARGS__)
#define log_info(fmt, ...) fprintf(stderr, "dkmd: " fmt "\n", ##__VA_ARGS__)

/* Everything the daemon owns, freed in one place (systemd's hostnamed Context). */
typedef struct Context {
        sd_event *event;
        sd_bus *bus;
        Store *store;
        BusManager manager;
} Context;

static struct {
        const char *state_dir;
        bool user_bus;
        const char *admin_group;
} arg;

static void context_done(Context *c) {
        /* The bus first: its objects point into the store. */
        c->bus = sd_bus_flush_close_unref(c->bus);
        c->event = sd_event_unref(c->event);
        c->store = store_free(c->store);
}

static void help(void) {
        printf("Usage: dkmd [OPTIONS]\n"
               "Serve the dkm key store on D-Bus as " BUS_SERVICE_NAME ".\n\n"
               "  --state-dir=DIR        the store (default $DKM_STATE_DIR, else %s)\n"
               "  --bus=system|user      which bus to serve on (default system)\n"
               "  --admin-group=NAME     members of this group may create groups and roll over\n"
               "                         (default: root only)\n"
               "  --help, --version\n",
               DKM_DEFAULT_STATE_DIR);
}

/* Returns 1 to run, 0 to exit successfully, < 0 on a usage error (already reported). */
static int parse_argv(int argc, char *argv[]) {
        enum { ARG_STATE_DIR = 0x100, ARG_BUS, ARG_ADMIN_GROUP, ARG_VERSION };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "state-dir", required_argument, NULL, ARG_STATE_DIR },
                { "bus", required_argument, NULL, ARG_BUS },
                { "admin-group", required_argument, NULL, ARG_ADMIN_GROUP },
                {},
        };
        int c;

        arg.state_dir = getenv("DKM_STATE_DIR");
        if (!arg.state_dir || !*arg.state_dir)
                arg.state_dir = DKM_DEFAULT_STATE_DIR;
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("dkmd %s\n", DKM_VERSION);
                        return 0;
                case ARG_STATE_DIR:
                        arg.state_dir = optarg;
                        break;
                case ARG_BUS:
                        if (strcmp(optarg, "system") == 0)
                                arg.user_bus = false;
                        else if (strcmp(optarg, "user") == 0)
                                arg.user_bus = true;
                        else {
                                log_error("--bus= takes 'system' or 'user', not '%s'.", optarg);
                                return -EINVAL;
                        }
                        break;
                case ARG_ADMIN_GROUP:
                        arg.admin_group = optarg;
                        break;
                default:
                        return -EINVAL;
                }
        if (optind < argc) {
                log_error("unexpected argument '%s'; see --help.", argv[optind]);
                return -EINVAL;
        }
        return 1;
}

static int context_open_store(Context *c) {
        int r;

        r = store_open(arg.state_dir, &c->store);
        if (r < 0) {
                log_error("cannot open the store: %s", store_last_error(NULL) ?: strerror(-r));
                return r;
        }
        /* Only file protectors can be used unattended. A store that needs a passphrase still
         * serves its metadata; mutations answer StoreLocked until unlocking exists on the bus. */
        r = store_unlock(c->store, NULL);
        if (r < 0)
                log_info("store %s stays locked (%s): read-only until unlocked", arg.state_dir, strerror(-r));
        else
                log_info("store %s unlocked", arg.state_dir);
        c->manager.store = c->store;
        return 0;
}

static int context_resolve_admin_group(Context *c) {
        struct group *gr;

        if (!arg.admin_group)
                return 0;
        /* Resolved once: a group renamed later does not silently change who is admin. */
        errno = 0;
        gr = getgrnam(arg.admin_group);
        if (!gr) {
                log_error("--admin-group=%s: no such group", arg.admin_group);
                return errno > 0 ? -errno : -ENOENT;
        }
        c->manager.auth.has_admin_gid = true;
        c->manager.auth.admin_gid = gr->gr_gid;
        return 0;
}

static int context_connect(Context *c) {
        sigset_t mask;
        int r;

        /* sd-event takes signals through a signalfd, which needs them blocked. The loader
         * unblocks them again in the helper it starts. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return -errno;

        r = sd_event_default(&c->event);
        if (r < 0)
                return r;
        /* A NULL handler makes the loop exit: SIGTERM (systemd) and SIGINT (a terminal) alike. */
        r = sd_event_add_signal(c->event, NULL, SIGTERM, NULL, NULL);
        if (r < 0)
                return r;
        r = sd_event_add_signal(c->event, NULL, SIGINT, NULL, NULL);
        if (r < 0)
                return r;

        r = arg.user_bus ? sd_bus_open_user(&c->bus) : sd_bus_open_system(&c->bus);
        if (r < 0) {
                log_error("cannot connect to the %s bus: %s", arg.user_bus ? "user" : "system", strerror(-r));
                return r;
        }
        r = bus_manager_attach(c->bus, &c->manager);
        if (r < 0) {
                log_error("cannot register the bus objects: %s", strerror(-r));
                return r;
        }
        r = sd_bus_attach_event(c->bus, c->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return r;
        /* Last: clients that see the name can call every method. */
        r = sd_bus_request_name(c->bus, BUS_SERVICE_NAME, 0);
        if (r < 0) {
                log_error("cannot own %s: %s (the bus policy must allow it; is another dkmd running?)",
                          BUS_SERVICE_NAME, strerror(-r));
                return r;
        }
        return 0;
}

int main(int argc, char *argv[]) {
        _cleanup_(context_done) Context c = {};
        struct rlimit no_core = { 0, 0 };
        int r;

        r = parse_argv(argc, argv);
        if (r <= 0)
                return r < 0 ? 2 : 0;

        /* dkmd unwraps generation keys to hand them to the helper: no core dumps, no ptrace by
         * same-uid processes. */
        (void) setrlimit(RLIMIT_CORE, &no_core);
        (void) prctl(PR_SET_DUMPABLE, 0);

        r = context_resolve_admin_group(&c);
        if (r < 0)
                return EXIT_FAILURE;
        r = context_open_store(&c);
        if (r < 0)
                return EXIT_FAILURE;
        r = context_connect(&c);
        if (r < 0)
                return EXIT_FAILURE;

        log_info("serving %s on the %s bus", BUS_SERVICE_NAME, arg.user_bus ? "user" : "system");
        r = sd_event_loop(c.event);
        if (r < 0) {
                log_error("event loop failed: %s", strerror(-r));
                return EXIT_FAILURE;
        }
        log_info("stopped");
        return EXIT_SUCCESS;
}
