/* SPDX-License-Identifier: MIT */
/* dkmctl: administer dkmd's key groups over its D-Bus API (org.dkm.KeyManager1). */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "dkmctl.h"
#include "parse.h"

Args arg = {
        .legend = true,
};

/* The class of each named error, so scripts can tell refusals apart by exit status alone. */
static const struct {
        const char *name;
        int status;
} error_statuses[] = {
        { "org.dkm.KeyManager1.Error.NoSuchGroup", EXIT_NOT_FOUND },
        { "org.dkm.KeyManager1.Error.NoSuchGeneration", EXIT_NOT_FOUND },
        { "org.dkm.KeyManager1.Error.AccessDenied", EXIT_DENIED },
        { "org.dkm.KeyManager1.Error.InvalidArgument", EXIT_INVALID },
        { "org.dkm.KeyManager1.Error.GroupExists", EXIT_STATE },
        { "org.dkm.KeyManager1.Error.GenerationActive", EXIT_STATE },
        { "org.dkm.KeyManager1.Error.InvalidState", EXIT_STATE },
        { "org.dkm.KeyManager1.Error.RolloverPending", EXIT_STATE },
        { "org.dkm.KeyManager1.Error.ApprovalRequired", EXIT_APPROVAL },
        { "org.dkm.KeyManager1.Error.HumanMembers", EXIT_HUMANS },
        { "org.dkm.KeyManager1.Error.StoreLocked", EXIT_LOCKED },
        { "org.dkm.KeyManager1.Error.LoadFailed", EXIT_LOAD_FAILED },
        { "org.dkm.KeyManager1.Error.StoreError", EXIT_STORE },
        /* The bus policy refused the call before dkmd saw it. */
        { "org.freedesktop.DBus.Error.AccessDenied", EXIT_DENIED },
        /* The group went away between GetGroup and the call. */
        { "org.freedesktop.DBus.Error.UnknownObject", EXIT_NOT_FOUND },
};

static int exit_status(const CtlError *e) {
        if (e->unreachable)
                return EXIT_UNREACHABLE;
        for (size_t i = 0; e->name && i < ELEMENTSOF(error_statuses); i++)
                if (strcmp(e->name, error_statuses[i].name) == 0)
                        return error_statuses[i].status;
        return EXIT_FAILURE;
}

static void print_prefix(void) {
        fputs("dkmctl: ", stderr);
        if (arg.verb)
                fprintf(stderr, "%s: ", arg.verb);
}

int fail(int r, const CtlError *e) {
        const char *message = e->message ?: strerror(r < 0 ? -r : EIO);

        print_prefix();
        if (e->unreachable)
                fprintf(stderr, "cannot reach dkmd: %s; is dkmd running (systemctl status dkmd)?\n", message);
        else if (e->name && strncmp(e->name, "org.dkm.KeyManager1.Error.", 26) != 0)
                /* Not one of dkmd's answers: its name says more than the message alone. */
                fprintf(stderr, "%s (%s)\n", message, e->name);
        else
                fprintf(stderr, "%s\n", message);
        return exit_status(e);
}

int fail_local(int status, const char *fmt, ...) {
        va_list ap;

        print_prefix();
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        return status;
}

int connect_bus(CtlBus **ret) {
        _cleanup_(ctl_error_done) CtlError e = CTL_ERROR_NULL;
        int r = ctl_bus_open(ret, &e);

        return r < 0 ? fail(r, &e) : 0;
}

typedef struct Verb {
        const char *name;
        const char *sub; /* second word, or NULL */
        unsigned n_args;
        unsigned options;          /* OPT_* it takes */
        unsigned required_options; /* at least one of these must be given */
        int (*run)(char **args);
        const char *usage;
} Verb;

static const Verb verbs[] = {
        { "status", NULL, 0, 0, 0, verb_status, "status" },
        { "group", "list", 0, 0, 0, verb_group_list, "group list" },
        { "group", "show", 1, 0, 0, verb_group_show, "group show NAME" },
        { "group", "create", 1, OPT_UNIX_GROUP | OPT_ALGORITHM | OPT_POLICY, OPT_UNIX_GROUP, verb_group_create,
          "group create NAME --unix-group=GROUP|GID [--algorithm=ALG] [--rollover-period=DUR]\n"
          "               [--propagation-delay=DUR] [--hot-window=N] [--allow-human-members]" },
        { "group", "set-policy", 1, OPT_POLICY, OPT_POLICY, verb_group_set_policy,
          "group set-policy NAME [--rollover-period=DUR] [--propagation-delay=DUR] [--hot-window=N]\n"
          "               [--allow-human-members=yes|no]" },
        { "group", "rollover", 1, 0, 0, verb_group_rollover, "group rollover NAME" },
        { "group", "archive", 2, 0, 0, verb_group_archive, "group archive NAME GENERATION" },
        { "group", "retire", 2, 0, 0, verb_group_retire, "group retire NAME GENERATION" },
        { "group", "load", 1, 0, 0, verb_group_load, "group load NAME" },
        { "reload", NULL, 0, 0, 0, verb_reload, "reload" },
};

/* Option names by OPT_* bit, for "does not apply" and "needs" messages. */
static const char *const option_names[] = {
        "--unix-group",        "--algorithm",  "--rollover-period",
        "--propagation-delay", "--hot-window", "--allow-human-members",
};

static void help(void) {
        printf("dkmctl [OPTIONS] COMMAND ...\n\n"
               "Administer the key groups of dkmd, the dkm key manager, over D-Bus\n"
               "(org.dkm.KeyManager1 on the system bus). Reading is open to everyone the bus lets in;\n"
               "changes need root or dkmd's admin group.\n\nCommands:\n");
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                printf("  %s\n", verbs[i].usage);
        printf("\nOptions:\n"
               "     --json                         one JSON document on standard output\n"
               "     --no-legend                    no table header and footer\n"
               "     --unix-group=GROUP|GID         the Unix group whose members get the keys\n"
               "     --algorithm=ALG                xchacha20-poly1305 (default) or aes256-gcm\n"
               "     --rollover-period=DUR          roll over DUR after each activation; 0: manual only\n"
               "     --propagation-delay=DUR        a new generation is pending (decrypt-only) for DUR\n"
               "     --hot-window=N                 archived generations kept in the kernel\n"
               "     --allow-human-members[=yes|no] allow members who can log in (default: no)\n"
               "  -h --help                          show this help\n"
               "     --version                      show the version\n"
               "\nDUR: 90 (seconds), 90s, 15min, 12h, 30d, 2w, 1d12h. JSON shapes: docs/DKMCTL.md.\n"
               "\nExit status: 0 ok, 1 other failure, 2 usage, 3 no such group or generation,\n"
               "4 access denied, 5 invalid argument, 6 refused in the current state (exists,\n"
               "active, already archived, rollover pending), 7 approval required, 8 human members,\n"
               "9 store locked, 10 kernel load failed (the change was made), 11 store error,\n"
               "12 dkmd not reachable, 13 reload found problems.\n");
}

static int parse_bool(const char *s, bool *ret) {
        static const char *const yes[] = { "yes", "true", "on", "1" }, *const no[] = { "no", "false", "off", "0" };

        for (size_t i = 0; i < ELEMENTSOF(yes); i++)
                if (strcmp(s, yes[i]) == 0 || strcmp(s, no[i]) == 0) {
                        *ret = strcmp(s, yes[i]) == 0;
                        return 0;
                }
        return -EINVAL;
}

static int parse_duration_option(const char *name, const char *value, uint64_t *ret) {
        if (parse_duration_usec(value, ret) < 0)
                return fail_local(EXIT_USAGE, "%s=%s: not a duration (e.g. 90s, 15min, 12h, 30d, 0).", name, value);
        return 0;
}

/* 1 to run a verb, 0 to exit successfully (--help, --version), or an exit status (> 1). */
static int parse_argv(int argc, char *argv[]) {
        enum {
                ARG_VERSION = 0x100,
                ARG_JSON,
                ARG_NO_LEGEND,
                ARG_UNIX_GROUP,
                ARG_ALGORITHM,
                ARG_PERIOD,
                ARG_DELAY,
                ARG_HOT_WINDOW,
                ARG_HUMANS,
        };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "json", no_argument, NULL, ARG_JSON },
                { "no-legend", no_argument, NULL, ARG_NO_LEGEND },
                { "unix-group", required_argument, NULL, ARG_UNIX_GROUP },
                { "algorithm", required_argument, NULL, ARG_ALGORITHM },
                { "rollover-period", required_argument, NULL, ARG_PERIOD },
                { "propagation-delay", required_argument, NULL, ARG_DELAY },
                { "hot-window", required_argument, NULL, ARG_HOT_WINDOW },
                { "allow-human-members", optional_argument, NULL, ARG_HUMANS },
                {},
        };
        CtlPolicy *p = &arg.policy;
        gid_t gid;
        int c, r;

        opterr = 0; /* our own one-line messages */
        while ((c = getopt_long(argc, argv, ":h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("dkmctl %s\n", DKM_VERSION);
                        return 0;
                case ARG_JSON:
                        arg.json = true;
                        break;
                case ARG_NO_LEGEND:
                        arg.legend = false;
                        break;
                case ARG_UNIX_GROUP:
                        /* Resolved here, so a typo never reaches dkmd as some other gid. */
                        if (parse_gid(optarg, &gid) < 0)
                                return fail_local(EXIT_USAGE, "--unix-group=%s: no such Unix group.", optarg);
                        arg.gid = (uint32_t) gid;
                        arg.given |= OPT_UNIX_GROUP;
                        break;
                case ARG_ALGORITHM:
                        p->algorithm = optarg; /* dkmd knows the algorithms and the CPU */
                        arg.given |= OPT_ALGORITHM;
                        break;
                case ARG_PERIOD:
                        r = parse_duration_option("--rollover-period", optarg, &p->rollover_period_usec);
                        if (r != 0)
                                return r;
                        p->has_rollover_period = true;
                        arg.given |= OPT_ROLLOVER_PERIOD;
                        break;
                case ARG_DELAY:
                        r = parse_duration_option("--propagation-delay", optarg, &p->propagation_delay_usec);
                        if (r != 0)
                                return r;
                        p->has_propagation_delay = true;
                        arg.given |= OPT_PROPAGATION_DELAY;
                        break;
                case ARG_HOT_WINDOW:
                        if (parse_uint32(optarg, &p->hot_window) < 0)
                                return fail_local(EXIT_USAGE, "--hot-window=%s: not a number of generations.", optarg);
                        p->has_hot_window = true;
                        arg.given |= OPT_HOT_WINDOW;
                        break;
                case ARG_HUMANS:
                        p->allow_human_members = true;
                        if (optarg && parse_bool(optarg, &p->allow_human_members) < 0)
                                return fail_local(EXIT_USAGE, "--allow-human-members=%s: say yes or no.", optarg);
                        p->has_allow_human_members = true;
                        arg.given |= OPT_ALLOW_HUMAN_MEMBERS;
                        break;
                case ':':
                        return fail_local(EXIT_USAGE, "option '%s' needs a value; see dkmctl --help.",
                                          argv[optind - 1]);
                default:
                        return fail_local(EXIT_USAGE, "unknown option '%s'; see dkmctl --help.", argv[optind - 1]);
                }
        return 1;
}

static const Verb *find_verb(char **words, size_t n_words, size_t *ret_consumed) {
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++) {
                if (strcmp(words[0], verbs[i].name) != 0)
                        continue;
                if (!verbs[i].sub) {
                        *ret_consumed = 1;
                        return &verbs[i];
                }
                if (n_words > 1 && strcmp(words[1], verbs[i].sub) == 0) {
                        *ret_consumed = 2;
                        return &verbs[i];
                }
        }
        return NULL;
}

/* Every option the command line gave must be one the verb takes, and a required one given. */
static int check_options(const Verb *v) {
        unsigned extra = arg.given & ~v->options;
        char needs[160] = "";

        for (size_t i = 0; i < ELEMENTSOF(option_names); i++)
                if (extra & (1U << i))
                        return fail_local(EXIT_USAGE, "%s does not apply here; see dkmctl --help.", option_names[i]);
        if (v->required_options == 0 || (arg.given & v->required_options))
                return 0;
        for (size_t i = 0; i < ELEMENTSOF(option_names); i++)
                if (v->required_options & (1U << i))
                        snprintf(needs + strlen(needs), sizeof(needs) - strlen(needs), "%s%s", needs[0] ? ", " : "",
                                 option_names[i]);
        if (v->required_options == OPT_UNIX_GROUP)
                return fail_local(EXIT_USAGE, "needs --unix-group=GROUP|GID (whose members may use the keys).");
        return fail_local(EXIT_USAGE, "needs at least one of %s.", needs);
}

int main(int argc, char *argv[]) {
        static char verb_words[64];
        const Verb *v;
        size_t consumed, n_args;
        int r;

        r = parse_argv(argc, argv);
        if (r != 1)
                return r;
        if (optind >= argc)
                return fail_local(EXIT_USAGE, "no command given; see dkmctl --help.");
        v = find_verb(argv + optind, (size_t) (argc - optind), &consumed);
        if (!v) {
                if (strcmp(argv[optind], "group") == 0)
                        return fail_local(EXIT_USAGE, "'group' needs a subcommand: list, show, create, set-policy, "
                                                      "rollover, archive, retire or load.");
                return fail_local(EXIT_USAGE, "unknown command '%s'; see dkmctl --help.", argv[optind]);
        }
        snprintf(verb_words, sizeof(verb_words), "%s%s%s", v->name, v->sub ? " " : "", v->sub ?: "");
        arg.verb = verb_words;
        n_args = (size_t) (argc - optind) - consumed;
        if (n_args != v->n_args)
                return fail_local(EXIT_USAGE, "usage: dkmctl %.*s", (int) strcspn(v->usage, "\n"), v->usage);
        r = check_options(v);
        if (r != 0)
                return r;
        r = v->run(argv + optind + consumed);
        /* A full disk or a closed pipe must not pass for success. */
        if (fflush(stdout) != 0 || ferror(stdout)) {
                fprintf(stderr, "dkmctl: %s: cannot write standard output: %m\n", arg.verb);
                return r != 0 ? r : EXIT_FAILURE;
        }
        return r;
}
