/* SPDX-License-Identifier: MIT */
/* dkmctl: administer dkmd's key groups over its D-Bus API (org.dkm.KeyManager1). */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "dkmctl-output.h"
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
        { "org.dkm.KeyManager1.Error.NoSuchRequest", EXIT_NOT_FOUND },
        { "org.dkm.KeyManager1.Error.RequestExpired", EXIT_STATE },
        { "org.dkm.KeyManager1.Error.SelfApproval", EXIT_NOT_APPROVER },
        { "org.dkm.KeyManager1.Error.DuplicateApprover", EXIT_NOT_APPROVER },
        { "org.dkm.KeyManager1.Error.NotApprover", EXIT_NOT_APPROVER },
        { "org.dkm.KeyManager1.Error.NoApprovers", EXIT_REQUEST },
        { "org.dkm.KeyManager1.Error.JustificationRequired", EXIT_REQUEST },
        { "org.dkm.KeyManager1.Error.DurationTooLong", EXIT_REQUEST },
        { "org.dkm.KeyManager1.Error.AlreadyMember", EXIT_REQUEST },
        { "org.dkm.KeyManager1.Error.TooManyRequests", EXIT_REQUEST },
        { "org.dkm.KeyManager1.Error.AuditFailed", EXIT_AUDIT_FAILED },
        { "org.dkm.KeyManager1.Error.NoSuchProtector", EXIT_NOT_FOUND },
        { "org.dkm.KeyManager1.Error.ProtectorExists", EXIT_STATE },
        { "org.dkm.KeyManager1.Error.LastProtector", EXIT_STATE },
        { "org.dkm.KeyManager1.Error.CustomerKeyWithdrawn", EXIT_NO_PROTECTOR },
        { "org.dkm.KeyManager1.Error.ProtectorUnavailable", EXIT_DEVICE },
        { "org.dkm.KeyManager1.Error.PinRefused", EXIT_DEVICE },
        { "org.dkm.KeyManager1.Error.PcrMismatch", EXIT_DEVICE },
        { "org.dkm.KeyManager1.Error.PurgeScheduled", EXIT_PURGING },
        { "org.dkm.KeyManager1.Error.Purged", EXIT_PURGED },
        { "org.dkm.KeyManager1.Error.NoSuchHost", EXIT_NOT_FOUND },
        { "org.dkm.KeyManager1.Error.NotInFleet", EXIT_FLEET },
        { "org.dkm.KeyManager1.Error.FleetUnavailable", EXIT_FLEET },
        { "org.dkm.KeyManager1.Error.FleetConflict", EXIT_FLEET },
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

int fail_after(int r, const CtlError *e, const char *fmt, ...) {
        _cleanup_free_ char *what = NULL, *why = NULL;
        CtlError after = *e;
        va_list ap;
        int k;

        va_start(ap, fmt);
        k = vasprintf(&what, fmt, ap);
        va_end(ap);
        if (k < 0 || asprintf(&why, "%s: %s", what, e->message ?: strerror(-r)) < 0)
                return fail_oom();
        after.message = why;
        return fail(r, &after);
}

int fail_oom(void) {
        return fail_local(EXIT_FAILURE, "out of memory.");
}

int connect_bus(CtlBus **ret) {
        _cleanup_(ctl_error_done) CtlError e = CTL_ERROR_NULL;
        int r = ctl_bus_open(ret, &e);

        return r < 0 ? fail(r, &e) : 0;
}

int read_filed_request(CtlBus *b, const char *path, CtlRequest *ret) {
        _cleanup_(ctl_error_done) CtlError e = CTL_ERROR_NULL;
        int r = ctl_request_get_at(b, path, ret, &e);

        return r < 0 ? fail_after(r, &e, "request %s filed, but reading it failed", path) : 0;
}

typedef struct Verb {
        const char *name;
        const char *sub; /* second word, or NULL */
        unsigned n_args;
        unsigned options;          /* OPT_* it takes */
        unsigned required_options; /* at least one of these must be given */
        int (*run)(char **args);
        const char *usage;
        unsigned needed_options; /* every one of these must be given */
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
          "               [--allow-human-members=yes|no] [--approval-groups=GROUP,...] [--max-grant=DUR]\n"
          "               [--request-timeout=DUR] [--retire-needs-approval=yes|no]" },
        { "group", "rollover", 1, 0, 0, verb_group_rollover, "group rollover NAME" },
        { "group", "archive", 2, 0, 0, verb_group_archive, "group archive NAME GENERATION" },
        { "group", "retire", 2, OPT_JUSTIFICATION, 0, verb_group_retire,
          "group retire NAME GENERATION [--justification=TEXT]" },
        { "group", "load", 1, 0, 0, verb_group_load, "group load NAME" },
        { "reload", NULL, 0, 0, 0, verb_reload, "reload" },
        { "access", "request", 1, OPT_JUSTIFICATION | OPT_DURATION, 0, verb_access_request,
          "access request GROUP --justification=TEXT --duration=DUR", OPT_JUSTIFICATION | OPT_DURATION },
        { "access", "list", 0, 0, 0, verb_access_list, "access list" },
        { "access", "show", 1, 0, 0, verb_access_show, "access show ID" },
        { "access", "approve", 1, 0, 0, verb_access_approve, "access approve ID" },
        { "access", "deny", 1, OPT_REASON, 0, verb_access_deny, "access deny ID --reason=TEXT", OPT_REASON },
        { "access", "cancel", 1, 0, 0, verb_access_cancel, "access cancel ID" },
        { "access", "revoke", 1, 0, 0, verb_access_revoke, "access revoke ID" },
        { "audit", "show", 0, OPT_DIR | OPT_AUDIT_FILTER, 0, verb_audit_show,
          "audit show [--dir=DIR] [--group=NAME] [--event=EVENT] [--since=TIME] [--until=TIME]\n"
          "               [--checkpoints]" },
        { "audit", "verify", 0, OPT_DIR | OPT_PUBLIC_KEY, 0, verb_audit_verify,
          "audit verify [--dir=DIR] [--public-key=FILE]" },
        { "protector", "list", 0, 0, 0, verb_protector_list, "protector list" },
        { "protector", "check", 0, 0, 0, verb_protector_check, "protector check" },
        { "protector", "add", 1, OPT_TYPE | OPT_URI | OPT_PCRS | OPT_JUSTIFICATION, 0, verb_protector_add,
          "protector add NAME --type=file|pkcs11|tpm2 [--uri=URI] [--pcrs=N,...] --justification=TEXT",
          OPT_TYPE | OPT_JUSTIFICATION },
        { "protector", "remove", 1, OPT_JUSTIFICATION, 0, verb_protector_remove,
          "protector remove NAME --justification=TEXT", OPT_JUSTIFICATION },
        { "purge", "request", 0, OPT_JUSTIFICATION, 0, verb_purge_request, "purge request --justification=TEXT",
          OPT_JUSTIFICATION },
        { "purge", "cancel", 1, 0, 0, verb_purge_cancel, "purge cancel ID" },
        { "purge", "status", 0, 0, 0, verb_purge_status, "purge status" },
        { "fleet", "status", 0, 0, 0, verb_fleet_status, "fleet status" },
        { "fleet", "hosts", 0, 0, 0, verb_fleet_hosts, "fleet hosts" },
        { "fleet", "enroll", 1, OPT_JUSTIFICATION, 0, verb_fleet_enroll, "fleet enroll HOST --justification=TEXT",
          OPT_JUSTIFICATION },
        { "fleet", "remove", 1, OPT_JUSTIFICATION, 0, verb_fleet_remove, "fleet remove HOST --justification=TEXT",
          OPT_JUSTIFICATION },
};

/* The subcommands of each two-word command, for "needs a subcommand". */
static const struct {
        const char *name, *subs;
} commands[] = {
        { "group", "list, show, create, set-policy, rollover, archive, retire or load" },
        { "access", "request, list, show, approve, deny, cancel or revoke" },
        { "audit", "show or verify" },
        { "protector", "list, check, add or remove" },
        { "purge", "request, cancel or status" },
        { "fleet", "status, hosts, enroll or remove" },
};

/* Option names by OPT_* bit, for "does not apply" and "needs" messages. */
static const char *const option_names[] = {
        "--unix-group",
        "--algorithm",
        "--rollover-period",
        "--propagation-delay",
        "--hot-window",
        "--allow-human-members",
        "--approval-groups",
        "--max-grant",
        "--request-timeout",
        "--retire-needs-approval",
        "--justification",
        "--duration",
        "--reason",
        "--dir",
        "--group",
        "--event",
        "--since",
        "--until",
        "--checkpoints",
        "--public-key",
        "--type",
        "--uri",
        "--pcrs",
};

static void help(void) {
        printf("dkmctl [OPTIONS] COMMAND ...\n\n"
               "Administer the key groups of dkmd, the dkm key manager, over D-Bus\n"
               "(org.dkm.KeyManager1 on the system bus). Reading is open to everyone the bus lets in;\n"
               "changes need root or dkmd's admin group. Anyone may request break-glass access; the\n"
               "approver groups of the key group's policy approve it. 'audit' reads the audit log's\n"
               "directory itself (root-only: run as root, or on a copy). Protector changes and purges\n"
               "are approved by the store policy's approval groups ('access approve ID'), and so are\n"
               "fleet host enrolments and removals.\n\nCommands:\n");
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
               "     --approval-groups=GROUP,...    break-glass approver groups, one per level, in order;\n"
               "                                    empty: none (break-glass off)\n"
               "     --max-grant=DUR                the longest access a request may ask for\n"
               "     --request-timeout=DUR          a request not fully approved by then expires\n"
               "     --retire-needs-approval=yes|no retiring a generation files a request (default: yes)\n"
               "     --justification=TEXT           why (recorded in the request and the audit log)\n"
               "     --duration=DUR                 how long the access lasts once granted\n"
               "     --reason=TEXT                  why the request is denied (may be empty)\n"
               "     --dir=DIR                      the audit directory (default: $DKM_STATE_DIR/audit,\n"
               "                                    else " DKM_DEFAULT_STATE_DIR "/audit)\n"
               "     --group=NAME                   records of key group NAME (object group/NAME...)\n"
               "     --event=EVENT                  records of this event (request, approve, grant, rollover, ...)\n"
               "     --since=TIME, --until=TIME     records from TIME on, before TIME\n"
               "     --checkpoints                  also the signed checkpoint records\n"
               "     --public-key=FILE              verify with this copy of audit.pub (recommended)\n"
               "     --type=file|pkcs11|tpm2        the kind of protector to add (no passphrase over the bus)\n"
               "     --uri=URI                      pkcs11: the RFC 7512 URI of the token's AES key\n"
               "     --pcrs=N,...                   tpm2: seal to these PCRs (0-23), e.g. 7,11\n"
               "  -h --help                          show this help\n"
               "     --version                      show the version\n"
               "\nDUR: 90 (seconds), 90s, 15min, 12h, 30d, 2w, 1d12h. TIME (UTC): @UNIXSECONDS,\n"
               "YYYY-MM-DD, 'YYYY-MM-DD HH:MM:SS', or -DUR (that long ago). JSON shapes: docs/DKMCTL.md.\n"
               "\nExit status: 0 ok, 1 other failure, 2 usage, 3 no such group, generation, request or\n"
               "audit log, 4 access denied (or the audit log is root-only), 5 invalid argument,\n"
               "6 refused in the current state (exists, active, already archived, rollover pending,\n"
               "request no longer pending or expired), 7 approval required, 8 human members,\n"
               "9 store locked, 10 kernel load failed (the change was made), 11 store error,\n"
               "12 dkmd not reachable, 13 reload found problems, 14 not an approver (own request,\n"
               "approved a level already, not in the level's group), 15 request refused (no\n"
               "approvers, no justification, duration too long, already a member, too many requests),\n"
               "16 dkmd could not write the audit record (nothing changed), 17 the audit log is\n"
               "damaged or was tampered with, 18 no protector opens the root key (the customer key\n"
               "is withdrawn, or 'protector check' found none ok), 19 a protector's device is\n"
               "unavailable or refused (PIN, PCRs), 20 a purge is scheduled, 21 the store was purged,\n"
               "22 the fleet: dkmd is not in one, its directory is unreachable, or another host\n"
               "changed the group first. No such protector or host is 3; a protector name taken, or\n"
               "the last protector, is 6.\n");
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

static int parse_time_option(const char *name, const char *value, uint64_t *ret) {
        if (parse_audit_time(value, now_realtime_usec(), ret) < 0)
                return fail_local(EXIT_USAGE,
                                  "%s=%s: not a time (@UNIXSECONDS, YYYY-MM-DD, 'YYYY-MM-DD HH:MM:SS' in UTC, or "
                                  "-DUR for that long ago).",
                                  name, value);
        return 0;
}

/* "ops,security" as a list of Unix group names; "" is the empty list. Each must be known here,
 * so a typo never reaches dkmd. */
static int parse_approval_groups(const char *value, char ***ret) {
        _cleanup_strv_free_ char **l = NULL;
        _cleanup_free_ char *copy = strdup(value);
        size_t n = 0;
        char *state = NULL;

        if (!copy)
                return fail_local(EXIT_FAILURE, "out of memory.");
        l = calloc(strlen(value) / 2 + 2, sizeof(char *));
        if (!l)
                return fail_local(EXIT_FAILURE, "out of memory.");
        if (value[0] != 0 && (value[0] == ',' || value[strlen(value) - 1] == ',' || strstr(value, ",,")))
                return fail_local(EXIT_USAGE, "--approval-groups=%s: an empty group name.", value);
        for (char *w = strtok_r(copy, ",", &state); w; w = strtok_r(NULL, ",", &state)) {
                char name[FORMAT_MAX];
                gid_t gid;

                /* dkmd takes names only: a gid is sent as its name, and one without a name is no group. */
                if (parse_gid(w, &gid) < 0 || !lookup_unix_group((uint32_t) gid, name))
                        return fail_local(EXIT_USAGE, "--approval-groups=%s: no such Unix group '%s'.", value, w);
                l[n] = strdup(name);
                if (!l[n++])
                        return fail_local(EXIT_FAILURE, "out of memory.");
        }
        *ret = TAKE_PTR(l);
        return 0;
}

/* "7,11" as PCR indices, in the order given: each 0..23, none twice. */
static int parse_pcrs(const char *value) {
        _cleanup_free_ char *copy = strdup(value);
        char *state = NULL;

        if (!copy)
                return fail_local(EXIT_FAILURE, "out of memory.");
        if (value[0] == 0 || value[0] == ',' || value[strlen(value) - 1] == ',' || strstr(value, ",,"))
                return fail_local(EXIT_USAGE, "--pcrs=%s: an empty PCR index; give a list such as 7,11.", value);
        arg.n_pcrs = 0;
        for (char *w = strtok_r(copy, ",", &state); w; w = strtok_r(NULL, ",", &state)) {
                uint32_t pcr;

                if (parse_uint32(w, &pcr) < 0 || pcr >= PCRS_MAX)
                        return fail_local(EXIT_USAGE, "--pcrs=%s: '%s' is not a PCR index (0 to %d).", value, w,
                                          PCRS_MAX - 1);
                for (size_t i = 0; i < arg.n_pcrs; i++)
                        if (arg.pcrs[i] == pcr)
                                return fail_local(EXIT_USAGE, "--pcrs=%s: PCR %u is given twice.", value,
                                                  (unsigned) pcr);
                arg.pcrs[arg.n_pcrs++] = pcr; /* at most PCRS_MAX: none twice */
        }
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
                ARG_APPROVAL_GROUPS,
                ARG_MAX_GRANT,
                ARG_REQUEST_TIMEOUT,
                ARG_RETIRE_NEEDS_APPROVAL,
                ARG_JUSTIFICATION,
                ARG_DURATION,
                ARG_REASON,
                ARG_DIR,
                ARG_GROUP,
                ARG_EVENT,
                ARG_SINCE,
                ARG_UNTIL,
                ARG_CHECKPOINTS,
                ARG_PUBLIC_KEY,
                ARG_TYPE,
                ARG_URI,
                ARG_PCRS,
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
                { "approval-groups", required_argument, NULL, ARG_APPROVAL_GROUPS },
                { "max-grant", required_argument, NULL, ARG_MAX_GRANT },
                { "request-timeout", required_argument, NULL, ARG_REQUEST_TIMEOUT },
                { "retire-needs-approval", required_argument, NULL, ARG_RETIRE_NEEDS_APPROVAL },
                { "justification", required_argument, NULL, ARG_JUSTIFICATION },
                { "duration", required_argument, NULL, ARG_DURATION },
                { "reason", required_argument, NULL, ARG_REASON },
                { "dir", required_argument, NULL, ARG_DIR },
                { "group", required_argument, NULL, ARG_GROUP },
                { "event", required_argument, NULL, ARG_EVENT },
                { "since", required_argument, NULL, ARG_SINCE },
                { "until", required_argument, NULL, ARG_UNTIL },
                { "checkpoints", no_argument, NULL, ARG_CHECKPOINTS },
                { "public-key", required_argument, NULL, ARG_PUBLIC_KEY },
                { "type", required_argument, NULL, ARG_TYPE },
                { "uri", required_argument, NULL, ARG_URI },
                { "pcrs", required_argument, NULL, ARG_PCRS },
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
                case ARG_APPROVAL_GROUPS:
                        strv_free(p->approval_groups);
                        p->approval_groups = NULL;
                        r = parse_approval_groups(optarg, &p->approval_groups);
                        if (r != 0)
                                return r;
                        p->has_approval_groups = true;
                        arg.given |= OPT_APPROVAL_GROUPS;
                        break;
                case ARG_MAX_GRANT:
                        r = parse_duration_option("--max-grant", optarg, &p->max_grant_usec);
                        if (r != 0)
                                return r;
                        p->has_max_grant = true;
                        arg.given |= OPT_MAX_GRANT;
                        break;
                case ARG_REQUEST_TIMEOUT:
                        r = parse_duration_option("--request-timeout", optarg, &p->request_timeout_usec);
                        if (r != 0)
                                return r;
                        p->has_request_timeout = true;
                        arg.given |= OPT_REQUEST_TIMEOUT;
                        break;
                case ARG_RETIRE_NEEDS_APPROVAL:
                        if (parse_bool(optarg, &p->retire_needs_approval) < 0)
                                return fail_local(EXIT_USAGE, "--retire-needs-approval=%s: say yes or no.", optarg);
                        p->has_retire_needs_approval = true;
                        arg.given |= OPT_RETIRE_NEEDS_APPROVAL;
                        break;
                case ARG_JUSTIFICATION:
                        arg.justification = optarg; /* dkmd judges it (JustificationRequired) */
                        arg.given |= OPT_JUSTIFICATION;
                        break;
                case ARG_DURATION:
                        r = parse_duration_option("--duration", optarg, &arg.duration_usec);
                        if (r != 0)
                                return r;
                        arg.given |= OPT_DURATION;
                        break;
                case ARG_REASON:
                        arg.reason = optarg;
                        arg.given |= OPT_REASON;
                        break;
                case ARG_DIR:
                        if (optarg[0] == 0)
                                return fail_local(EXIT_USAGE, "--dir= needs a directory.");
                        arg.audit_dir = optarg;
                        arg.given |= OPT_DIR;
                        break;
                case ARG_GROUP:
                        /* Group names never hold a '/': anything else could match other objects. */
                        if (optarg[0] == 0 || strchr(optarg, '/'))
                                return fail_local(EXIT_USAGE, "--group=%s: not a key group name.", optarg);
                        arg.audit_group = optarg;
                        arg.given |= OPT_GROUP;
                        break;
                case ARG_EVENT:
                        if (optarg[0] == 0)
                                return fail_local(EXIT_USAGE, "--event= needs an event name.");
                        arg.audit_event = optarg;
                        arg.given |= OPT_EVENT;
                        break;
                case ARG_SINCE:
                        r = parse_time_option("--since", optarg, &arg.since_usec);
                        if (r != 0)
                                return r;
                        arg.given |= OPT_SINCE;
                        break;
                case ARG_UNTIL:
                        r = parse_time_option("--until", optarg, &arg.until_usec);
                        if (r != 0)
                                return r;
                        arg.given |= OPT_UNTIL;
                        break;
                case ARG_CHECKPOINTS:
                        arg.checkpoints = true;
                        arg.given |= OPT_CHECKPOINTS;
                        break;
                case ARG_PUBLIC_KEY:
                        if (optarg[0] == 0)
                                return fail_local(EXIT_USAGE, "--public-key= needs a file.");
                        arg.public_key = optarg;
                        arg.given |= OPT_PUBLIC_KEY;
                        break;
                case ARG_TYPE:
                        /* A passphrase never travels over the bus: dkm-store adds those, offline. */
                        if (strcmp(optarg, "file") != 0 && strcmp(optarg, "pkcs11") != 0 && strcmp(optarg, "tpm2") != 0)
                                return fail_local(EXIT_USAGE,
                                                  "--type=%s: not a protector type dkmd adds: file, pkcs11 or tpm2 "
                                                  "(a passphrase protector is added offline with dkm-store).",
                                                  optarg);
                        arg.protector_type = optarg;
                        arg.given |= OPT_TYPE;
                        break;
                case ARG_URI:
                        if (optarg[0] == 0)
                                return fail_local(EXIT_USAGE, "--uri= needs a pkcs11: URI.");
                        arg.uri = optarg; /* dkmd parses it (InvalidArgument) */
                        arg.given |= OPT_URI;
                        break;
                case ARG_PCRS:
                        r = parse_pcrs(optarg);
                        if (r != 0)
                                return r;
                        arg.given |= OPT_PCRS;
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
        char needs[512] = "";

        for (size_t i = 0; i < ELEMENTSOF(option_names); i++)
                if (extra & (1U << i))
                        return fail_local(EXIT_USAGE, "%s does not apply here; see dkmctl --help.", option_names[i]);
        for (size_t i = 0; i < ELEMENTSOF(option_names); i++)
                if ((v->needed_options & (1U << i)) && !(arg.given & (1U << i)))
                        snprintf(needs + strlen(needs), sizeof(needs) - strlen(needs), "%s%s", needs[0] ? " and " : "",
                                 option_names[i]);
        if (needs[0])
                return fail_local(EXIT_USAGE, "needs %s; usage: dkmctl %.*s", needs, (int) strcspn(v->usage, "\n"),
                                  v->usage);
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
                for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                        if (strcmp(argv[optind], commands[i].name) == 0)
                                return fail_local(EXIT_USAGE, "'%s' needs a subcommand: %s.", commands[i].name,
                                                  commands[i].subs);
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
