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
#include <sys/signalfd.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "bus-manager.h"
#include "config.h"
#include "dkmd-audit.h"
#include "dkmd-fleet.h"
#include "group-dropin.h"
#include "manager.h"
#include "macro.h"
#include "parse.h"
#include "store.h"

#define log_error(fmt, ...) fprintf(stderr, "dkmd: " fmt "\n", ##__VA_ARGS__)
#define log_info(fmt, ...) fprintf(stderr, "dkmd: " fmt "\n", ##__VA_ARGS__)

/* Timers fire within this of their time: scheduled steps need no better, and it lets the
 * kernel batch wake-ups. */
#define TIMER_ACCURACY_USEC (10U * 1000U)

/* Everything the daemon owns, freed in one place (systemd's hostnamed Context). */
typedef struct Context {
        sd_event *event;
        sd_event_source *schedule; /* CLOCK_REALTIME: the earliest scheduled step of any group */
        sd_bus *bus;
        Store *store;
        AuditLog *audit;
        Manager manager;
        BusManager bus_manager;
        DkmdFleet *fleet; /* NULL: not in a fleet */
} Context;

static struct {
        const char *state_dir;
        const char *audit_dir; /* NULL: <state dir>/audit */
        bool user_bus;
        const char *admin_group;
        char **groups_dirs; /* groups.d drop-in directories, highest priority first */
        uint64_t check_interval_usec; /* 0: MANAGER_CHECK_INTERVAL_DEFAULT_USEC */
        const char *fleet_config; /* NULL: a host on its own */
} arg;

static void context_done(Context *c) {
        /* The bus first: its objects point into the store. */
        c->bus = sd_bus_flush_close_unref(c->bus);
        c->fleet = dkmd_fleet_free(c->fleet);
        c->schedule = sd_event_source_unref(c->schedule);
        c->event = sd_event_unref(c->event);
        manager_requests_close(&c->manager);
        manager_store_done(&c->manager);
        c->audit = audit_free(c->audit); /* a clean stop closed it already, with a checkpoint */
        c->store = store_free(c->store);
}

static void help(void) {
        printf("Usage: dkmd [OPTIONS]\n"
               "Serve the dkm key store on D-Bus as " BUS_SERVICE_NAME ".\n\n"
               "  --state-dir=DIR        the store (default $DKM_STATE_DIR, else %s)\n"
               "  --bus=system|user      which bus to serve on (default system)\n"
               "  --admin-group=NAME     members of this group may create groups and roll over\n"
               "                         (default: root only)\n"
               "  --audit-dir=DIR        the audit log (default: STATE-DIR/audit)\n"
               "  --fleet=FILE           follow a fleet's directory (fleet.conf; docs/FLEET.md)\n"
               "  --protector-check-interval=TIME\n"
               "                         how often the HSM/TPM protectors are checked, and the\n"
               "                         longest wait between retries while they are away (default 1min)\n"
               "  --help, --version\n"
               "\nKey groups declared in groups.d drop-ins ($DKM_GROUPS_DIRS, else %s)\n"
               "are applied at start, on SIGHUP and on Reload(). Scheduled rollovers run on\n"
               "their own; SIGTERM or SIGINT stops the daemon.\n",
               DKM_DEFAULT_STATE_DIR, DKM_GROUPS_DIRS);
}

/* Returns 1 to run, 0 to exit successfully, < 0 on a usage error (already reported). */
static int parse_argv(int argc, char *argv[]) {
        enum { ARG_STATE_DIR = 0x100, ARG_BUS, ARG_ADMIN_GROUP, ARG_AUDIT_DIR, ARG_CHECK_INTERVAL, ARG_FLEET, ARG_VERSION };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "state-dir", required_argument, NULL, ARG_STATE_DIR },
                { "bus", required_argument, NULL, ARG_BUS },
                { "admin-group", required_argument, NULL, ARG_ADMIN_GROUP },
                { "audit-dir", required_argument, NULL, ARG_AUDIT_DIR },
                { "protector-check-interval", required_argument, NULL, ARG_CHECK_INTERVAL },
                { "fleet", required_argument, NULL, ARG_FLEET },
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
                case ARG_AUDIT_DIR:
                        arg.audit_dir = optarg;
                        break;
                case ARG_FLEET:
                        arg.fleet_config = optarg;
                        break;
                case ARG_CHECK_INTERVAL:
                        if (parse_duration_usec(optarg, &arg.check_interval_usec) < 0 ||
                            arg.check_interval_usec < 1000000U) {
                                log_error("--protector-check-interval= takes a time of 1s or more, not '%s'.", optarg);
                                return -EINVAL;
                        }
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
        /* Unlocked in context_start(), by manager_store_start(): its protectors are checked
         * there, once the requests (a scheduled purge) are known. */
        c->manager.store = c->store;
        c->manager.protectors.check_interval_usec = arg.check_interval_usec;
        return 0;
}

/* Fail closed from the start: a dkmd that cannot audit does not serve. */
static int context_open_audit(Context *c) {
        _cleanup_free_ char *dir = NULL;
        AuditError error = {};
        int r;

        if (!arg.audit_dir && asprintf(&dir, "%s/audit", arg.state_dir) < 0)
                return -ENOMEM;
        r = audit_open(arg.audit_dir ?: dir, NULL, &c->audit, &error);
        if (r < 0)
                log_error("cannot open the audit log %s: %s", arg.audit_dir ?: dir, error.msg[0] ? error.msg : strerror(-r));
        return r;
}

/* Break-glass requests live next to the store; they survive restarts. */
static int context_open_requests(Context *c) {
        _cleanup_free_ char *dir = NULL;

        if (asprintf(&dir, "%s/requests", arg.state_dir) < 0)
                return -ENOMEM;
        return manager_requests_open(&c->manager, dir);
}

static int on_audit(void *userdata, const AuditRecord *rec) {
        Context *c = userdata;

        return dkmd_audit_record(c->audit, rec);
}

/* Take the steps that are due, then sleep until the next one. */
static int on_schedule(sd_event_source *s, uint64_t usec, void *userdata) {
        Context *c = userdata;
        uint64_t next = 0;
        unsigned failed = 0;
        int r;

        r = manager_run_due(&c->manager, &next, &failed);
        if (r < 0) {
                log_error("cannot read the store for the schedule: %s", strerror(-r));
                next = usec + MANAGER_RETRY_USEC;
        }
        if (next == 0)
                return sd_event_source_set_enabled(s, SD_EVENT_OFF);
        r = sd_event_source_set_time(s, next);
        if (r < 0)
                return r;
        return sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

/* After any change: look at the schedule again as soon as the current call is answered. */
static void context_reschedule(Context *c) {
        if (!c->schedule)
                return;
        if (sd_event_source_set_time(c->schedule, 1) < 0 ||
            sd_event_source_set_enabled(c->schedule, SD_EVENT_ONESHOT) < 0)
                log_error("cannot re-arm the rollover schedule");
}

static void on_group_added(void *userdata, const StoreGroup *g) {
        Context *c = userdata;

        if (c->bus)
                bus_emit_group_added(c->bus, g);
        context_reschedule(c);
}

static void on_generation_changed(void *userdata, const StoreGroup *g, uint32_t number, GenerationState state) {
        Context *c = userdata;

        if (c->bus)
                bus_emit_generation_changed(c->bus, g, number, state);
        context_reschedule(c);
}

static void on_policy_changed(void *userdata, const StoreGroup *g) {
        Context *c = userdata;

        if (c->bus)
                bus_emit_policy_changed(c->bus, g);
        context_reschedule(c);
}

static void on_request_changed(void *userdata, const AccessRequest *r, bool added) {
        Context *c = userdata;

        if (c->bus)
                bus_emit_request_changed(c->bus, r, added);
        context_reschedule(c);
}

static int context_reload(void *userdata, char ***ret_problems);

/* Keys can be served again (a token came back, a purge was cancelled): as at start. */
static void load_everything(Context *c) {
        _cleanup_strv_free_ char **problems = NULL;
        unsigned failed = 0;
        int r;

        r = context_reload(c, &problems);
        if (r < 0)
                log_error("applying the drop-ins failed: %s", strerror(-r));
        r = manager_load_all(&c->manager, &failed);
        if (r < 0)
                log_error("cannot list the groups to load: %s", strerror(-r));
        else if (failed > 0)
                log_error("%u group(s) could not be loaded into the kernel; see above", failed);
}

static void on_store_state_changed(void *userdata, int old_state) {
        Context *c = userdata;
        ManagerStoreState now = c->manager.protectors.state;

        if (c->bus)
                bus_emit_store_state_changed(c->bus);
        if (now == MANAGER_STORE_UNLOCKED && old_state != MANAGER_STORE_UNLOCKED && old_state != MANAGER_STORE_DEGRADED &&
            c->schedule) /* not at start: context_start() loads */
                load_everything(c);
        context_reschedule(c);
}

static int context_reload(void *userdata, char ***ret_problems) {
        Context *c = userdata;

        return manager_apply_dropins(&c->manager, arg.groups_dirs, ret_problems);
}

static int on_sighup(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        _cleanup_strv_free_ char **problems = NULL;
        int r;

        log_info("SIGHUP: reloading the groups.d drop-ins");
        r = context_reload(userdata, &problems);
        if (r < 0)
                log_error("reloading the drop-ins failed: %s", strerror(-r));
        /* manager_apply_dropins() logged each problem already. */
        return 0;
}

/* Make the kernel match the store (after a crash or reboot, or a change by dkm-store while
 * dkmd was down), then start the schedule. */
static int context_start(Context *c) {
        int r;

        c->manager.events = (ManagerEvents) {
                .group_added = on_group_added,
                .generation_changed = on_generation_changed,
                .policy_changed = on_policy_changed,
                .request_changed = on_request_changed,
                .store_state_changed = on_store_state_changed,
                .audit = on_audit,
                .userdata = c,
        };
        r = manager_audit(&c->manager, "daemon-start", AUDIT_OUTCOME_OK, BUS_MANAGER_PATH, "dkmd %s, store %s",
                          DKM_VERSION, arg.state_dir);
        if (r < 0)
                return r;
        c->bus_manager.manager = &c->manager;
        c->bus_manager.reload = context_reload;
        c->bus_manager.reload_userdata = c;
        /* An HSM that is away does not stop dkmd: what is in the kernel keeps serving, and the
         * schedule retries the protectors with backoff. */
        r = manager_store_start(&c->manager);
        if (r < 0)
                log_error("cannot check the store's protectors: %s", strerror(-r));
        if (store_is_unlocked(c->store) && manager_store_usable(&c->manager) == 0) {
                log_info("store %s unlocked", arg.state_dir);
                load_everything(c);
        } else
                log_info("store %s is %s%s%s: serving what the kernel holds", arg.state_dir,
                         manager_store_state_to_string(c->manager.protectors.state),
                         c->manager.protectors.detail[0] ? ": " : "", c->manager.protectors.detail);
        r = sd_event_add_time(c->event, &c->schedule, CLOCK_REALTIME, 1, TIMER_ACCURACY_USEC, on_schedule, c);
        if (r < 0)
                return r;
        return sd_event_source_set_enabled(c->schedule, SD_EVENT_ONESHOT);
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
        c->bus_manager.auth.has_admin_gid = true;
        c->bus_manager.auth.admin_gid = gr->gr_gid;
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
        sigaddset(&mask, SIGHUP);
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
        r = sd_event_add_signal(c->event, NULL, SIGHUP, on_sighup, c);
        if (r < 0)
                return r;

        r = arg.user_bus ? sd_bus_open_user(&c->bus) : sd_bus_open_system(&c->bus);
        if (r < 0) {
                log_error("cannot connect to the %s bus: %s", arg.user_bus ? "user" : "system", strerror(-r));
                return r;
        }
        /* Finish authenticating now: loading every group comes next and can take longer than
         * dbus-daemon's auth_timeout, which drops connections still unauthenticated. */
        r = sd_bus_call_method(c->bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                               "GetId", NULL, NULL, NULL);
        if (r < 0) {
                log_error("cannot talk to the %s bus: %s", arg.user_bus ? "user" : "system", strerror(-r));
                return r;
        }
        r = bus_manager_attach(c->bus, &c->bus_manager);
        if (r < 0) {
                log_error("cannot register the bus objects: %s", strerror(-r));
                return r;
        }
        return sd_bus_attach_event(c->bus, c->event, SD_EVENT_PRIORITY_NORMAL);
}

/* Last: the name is dkmd's readiness (Type=dbus), so a service ordered after dkmd finds its
 * keys already in the kernel. */
/* In a fleet: the directory's store id checked and this host's protector installed before the
 * store is unlocked; following starts once the local groups are loaded. */
static int context_open_fleet(Context *c) {
        int r;

        if (!arg.fleet_config)
                return 0;
        r = dkmd_fleet_new(arg.fleet_config, &c->manager, arg.state_dir, &c->fleet);
        if (r < 0)
                log_error("cannot join the fleet of %s: %s", arg.fleet_config, strerror(-r));
        return r;
}

static void on_fleet_changed(void *userdata) {
        Context *c = userdata;

        if (c->bus)
                bus_emit_fleet_changed(c->bus);
        context_reschedule(c);
}

static int context_start_fleet(Context *c) {
        int r;

        if (!c->fleet)
                return 0;
        r = dkmd_fleet_start(c->fleet, c->event, on_fleet_changed, c);
        if (r < 0)
                log_error("cannot follow the fleet's directory: %s", strerror(-r));
        return r;
}

static int context_take_name(Context *c) {
        int r;

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
        _cleanup_strv_free_ char **groups_dirs = NULL;
        struct rlimit no_core = { 0, 0 };
        int r;

        r = parse_argv(argc, argv);
        if (r <= 0)
                return r < 0 ? 2 : 0;

        /* dkmd unwraps generation keys to hand them to the helper: no core dumps, no ptrace by
         * same-uid processes. */
        (void) setrlimit(RLIMIT_CORE, &no_core);
        (void) prctl(PR_SET_DUMPABLE, 0);
        /* A directory server that resets its connection must not kill dkmd when libldap writes
         * to it (systemd's IgnoreSIGPIPE=yes does the same for the unit; this is for any start). */
        (void) signal(SIGPIPE, SIG_IGN);

        r = group_dropin_dirs(&groups_dirs);
        if (r < 0)
                return EXIT_FAILURE;
        arg.groups_dirs = groups_dirs;
        r = context_resolve_admin_group(&c);
        if (r < 0)
                return EXIT_FAILURE;
        r = context_open_store(&c);
        if (r < 0)
                return EXIT_FAILURE;
        r = context_open_audit(&c);
        if (r < 0)
                return EXIT_FAILURE;
        r = context_open_fleet(&c);
        if (r < 0)
                return EXIT_FAILURE;
        r = context_open_requests(&c);
        if (r < 0)
                return EXIT_FAILURE;
        r = context_connect(&c);
        if (r < 0)
                return EXIT_FAILURE;
        r = context_start(&c);
        if (r < 0) {
                log_error("cannot start: %s", strerror(-r));
                return EXIT_FAILURE;
        }
        r = context_start_fleet(&c);
        if (r < 0)
                return EXIT_FAILURE;
        r = context_take_name(&c);
        if (r < 0)
                return EXIT_FAILURE;

        log_info("serving %s on the %s bus", BUS_SERVICE_NAME, arg.user_bus ? "user" : "system");
        r = sd_event_loop(c.event);
        if (r < 0) {
                log_error("event loop failed: %s", strerror(-r));
                return EXIT_FAILURE;
        }
        if (manager_audit(&c.manager, "daemon-stop", AUDIT_OUTCOME_OK, BUS_MANAGER_PATH, "clean stop") < 0)
                log_error("cannot write the stop record to the audit log");
        r = audit_close(TAKE_PTR(c.audit));
        if (r < 0)
                log_error("cannot close the audit log with a checkpoint: %s", strerror(-r));
        log_info("stopped");
        return EXIT_SUCCESS;
}
