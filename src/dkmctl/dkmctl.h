/* SPDX-License-Identifier: MIT */
/* What dkmctl's files share: options, exit statuses and the one-line error report. */
#pragma once

#include <stdbool.h>

#include "dkmctl-bus.h"

/* Exit statuses, one per class of failure, documented in --help and docs/DKMCTL.md. */
enum {
        EXIT_USAGE = 2,        /* dkmctl refused the command line; nothing was sent */
        EXIT_NOT_FOUND = 3,    /* NoSuchGroup, NoSuchGeneration */
        EXIT_DENIED = 4,       /* AccessDenied: not root, not in dkmd's admin group */
        EXIT_INVALID = 5,      /* InvalidArgument: dkmd refused a name, gid or policy value */
        EXIT_STATE = 6,        /* GroupExists, GenerationActive, InvalidState, RolloverPending */
        EXIT_APPROVAL = 7,     /* ApprovalRequired */
        EXIT_HUMANS = 8,       /* HumanMembers */
        EXIT_LOCKED = 9,       /* StoreLocked */
        EXIT_LOAD_FAILED = 10, /* LoadFailed: the change was made, the kernel is not updated */
        EXIT_STORE = 11,       /* StoreError */
        EXIT_UNREACHABLE = 12, /* no system bus, or dkmd is not running */
        EXIT_PROBLEMS = 13,    /* reload: some drop-ins could not be applied */
};

/* Options given on the command line; a verb names the ones it takes. */
enum {
        OPT_UNIX_GROUP = 1U << 0,
        OPT_ALGORITHM = 1U << 1,
        OPT_ROLLOVER_PERIOD = 1U << 2,
        OPT_PROPAGATION_DELAY = 1U << 3,
        OPT_HOT_WINDOW = 1U << 4,
        OPT_ALLOW_HUMAN_MEMBERS = 1U << 5,
        OPT_POLICY = OPT_ROLLOVER_PERIOD | OPT_PROPAGATION_DELAY | OPT_HOT_WINDOW | OPT_ALLOW_HUMAN_MEMBERS,
};

typedef struct Args {
        bool json;
        bool legend;
        unsigned given; /* OPT_* */
        uint32_t gid;   /* --unix-group */
        CtlPolicy policy;
        const char *verb; /* "group rollover", once known: the start of every error line */
} Args;
extern Args arg;

/* Print "dkmctl: VERB: why" for a failed call and return its exit status. */
int fail(int r, const CtlError *e);
/* Print "dkmctl: VERB: " and the formatted reason for a failure found by dkmctl itself. */
int fail_local(int status, const char *fmt, ...) _printf_(2, 3);
/* Connect to the system bus, or report why not: 0, or an exit status. */
int connect_bus(CtlBus **ret);

/* The verbs (dkmctl-verbs.c), each an exit status. args: the words after the verb. */
int verb_status(char **args);
int verb_group_list(char **args);
int verb_group_show(char **args);
int verb_group_create(char **args);
int verb_group_set_policy(char **args);
int verb_group_rollover(char **args);
int verb_group_archive(char **args);
int verb_group_retire(char **args);
int verb_group_load(char **args);
int verb_reload(char **args);
