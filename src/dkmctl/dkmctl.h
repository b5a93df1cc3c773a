/* SPDX-License-Identifier: MIT */
/* What dkmctl's files share: options, exit statuses and the one-line error report. */
#pragma once

#include <stdbool.h>

#include "dkmctl-bus.h"
#include "json-writer.h"

/* Exit statuses, one per class of failure, documented in --help and docs/DKMCTL.md. */
enum {
        EXIT_USAGE = 2,         /* dkmctl refused the command line; nothing was sent */
        EXIT_NOT_FOUND = 3,     /* NoSuchGroup, NoSuchGeneration, NoSuchRequest, NoSuchProtector; no audit log */
        EXIT_DENIED = 4,        /* AccessDenied: not root, not in dkmd's admin group; the audit log is root-only */
        EXIT_INVALID = 5,       /* InvalidArgument: dkmd refused a name, gid or policy value */
        EXIT_STATE = 6,         /* GroupExists, GenerationActive, InvalidState, RolloverPending, RequestExpired,
                                   ProtectorExists, LastProtector */
        EXIT_APPROVAL = 7,      /* ApprovalRequired */
        EXIT_HUMANS = 8,        /* HumanMembers */
        EXIT_LOCKED = 9,        /* StoreLocked */
        EXIT_LOAD_FAILED = 10,  /* LoadFailed: the change was made, the kernel is not updated */
        EXIT_STORE = 11,        /* StoreError */
        EXIT_UNREACHABLE = 12,  /* no system bus, or dkmd is not running */
        EXIT_PROBLEMS = 13,     /* reload: some drop-ins could not be applied */
        EXIT_NOT_APPROVER = 14, /* SelfApproval, DuplicateApprover, NotApprover */
        EXIT_REQUEST = 15,      /* a request refused: NoApprovers, JustificationRequired, DurationTooLong, ... */
        EXIT_AUDIT_FAILED = 16, /* AuditFailed: dkmd could not record it, so it refused (nothing changed) */
        EXIT_AUDIT_BAD = 17,    /* audit verify (or show): the log is damaged or was tampered with */
        EXIT_NO_PROTECTOR = 18, /* CustomerKeyWithdrawn; protector check: no protector opens the root key */
        EXIT_DEVICE = 19,       /* ProtectorUnavailable, PinRefused, PcrMismatch: a protector's device failed */
        EXIT_PURGING = 20,      /* PurgeScheduled: refused while a purge waits for its time (cancellable) */
        EXIT_PURGED = 21,       /* Purged: the store was crypto-shredded */
        EXIT_FLEET = 22,        /* NotInFleet, FleetUnavailable, FleetConflict: the fleet's directory said no or is away */
};

/* Options given on the command line; a verb names the ones it takes. */
enum {
        OPT_UNIX_GROUP = 1U << 0,
        OPT_ALGORITHM = 1U << 1,
        OPT_ROLLOVER_PERIOD = 1U << 2,
        OPT_PROPAGATION_DELAY = 1U << 3,
        OPT_HOT_WINDOW = 1U << 4,
        OPT_ALLOW_HUMAN_MEMBERS = 1U << 5,
        OPT_APPROVAL_GROUPS = 1U << 6,
        OPT_MAX_GRANT = 1U << 7,
        OPT_REQUEST_TIMEOUT = 1U << 8,
        OPT_RETIRE_NEEDS_APPROVAL = 1U << 9,
        OPT_JUSTIFICATION = 1U << 10,
        OPT_DURATION = 1U << 11,
        OPT_REASON = 1U << 12,
        OPT_DIR = 1U << 13,
        OPT_GROUP = 1U << 14,
        OPT_EVENT = 1U << 15,
        OPT_SINCE = 1U << 16,
        OPT_UNTIL = 1U << 17,
        OPT_CHECKPOINTS = 1U << 18,
        OPT_PUBLIC_KEY = 1U << 19,
        OPT_TYPE = 1U << 20,
        OPT_URI = 1U << 21,
        OPT_PCRS = 1U << 22,
        OPT_POLICY = OPT_ROLLOVER_PERIOD | OPT_PROPAGATION_DELAY | OPT_HOT_WINDOW | OPT_ALLOW_HUMAN_MEMBERS |
                     OPT_APPROVAL_GROUPS | OPT_MAX_GRANT | OPT_REQUEST_TIMEOUT | OPT_RETIRE_NEEDS_APPROVAL,
        OPT_AUDIT_FILTER = OPT_GROUP | OPT_EVENT | OPT_SINCE | OPT_UNTIL | OPT_CHECKPOINTS,
};

/* TPM2 PCR indices are 0..23 (the PC client platform's 24 registers per bank). */
#define PCRS_MAX 24

typedef struct Args {
        bool json;
        bool legend;
        unsigned given; /* OPT_* */
        uint32_t gid;   /* --unix-group */
        CtlPolicy policy;
        const char *justification; /* access request, group retire */
        uint64_t duration_usec;    /* access request */
        const char *reason;        /* access deny */
        const char *audit_dir;     /* audit: --dir, else <state dir>/audit */
        const char *audit_group;   /* audit show: records whose object is group/NAME or below it */
        const char *audit_event;
        uint64_t since_usec, until_usec; /* audit show: since <= time < until; 0: unbounded */
        bool checkpoints;
        const char *public_key;     /* audit verify: a pinned copy of audit.pub */
        const char *protector_type; /* protector add: file, pkcs11, tpm2 */
        const char *uri;            /* protector add --type=pkcs11 */
        uint32_t pcrs[PCRS_MAX];    /* protector add --type=tpm2, in the order given */
        size_t n_pcrs;
        const char *verb; /* "group rollover", once known: the start of every error line */
} Args;
extern Args arg;

/* Print "dkmctl: VERB: why" for a failed call and return its exit status. */
int fail(int r, const CtlError *e);
/* Print "dkmctl: VERB: " and the formatted reason for a failure found by dkmctl itself. */
int fail_local(int status, const char *fmt, ...) _printf_(2, 3);
/* fail() for a call made after the change itself went through: "WHAT: why", WHAT (formatted)
 * saying what stands. */
int fail_after(int r, const CtlError *e, const char *fmt, ...) _printf_(3, 4);
int fail_oom(void);
/* Connect to the system bus, or report why not: 0, or an exit status. */
int connect_bus(CtlBus **ret);
/* The request a method filed at path, or a failure line that names it (the request stands): 0, or
 * an exit status. */
int read_filed_request(CtlBus *b, const char *path, CtlRequest *ret);

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

/* dkmctl-access.c: break-glass requests. */
int verb_access_request(char **args);
int verb_access_list(char **args);
int verb_access_show(char **args);
int verb_access_approve(char **args);
int verb_access_deny(char **args);
int verb_access_cancel(char **args);
int verb_access_revoke(char **args);

/* "ops, then security", or "none (break-glass is off)" (dkmctl-verbs.c). NULL if out of memory. */
char *format_levels(char **groups);

/* dkmctl-access.c: a request in JSON (full: every field, else ListRequests' fields), a request's
 * JSON document, and what it waits for or came to. */
void json_request(JsonWriter *w, const CtlRequest *q, bool full);
void json_print_request(const CtlRequest *q);
/* A request id from the command line, or a usage error (its exit status). */
int parse_request_id(const char *s, uint64_t *ret);
void format_request_outcome(const CtlRequest *q, char *buf, size_t size);

/* dkmctl-protector.c: the store's protectors and purge. */
int verb_protector_list(char **args);
int verb_protector_check(char **args);
int verb_protector_add(char **args);
int verb_protector_remove(char **args);
int verb_purge_request(char **args);
int verb_purge_cancel(char **args);
int verb_purge_status(char **args);

/* dkmctl-fleet.c: the fleet's directory and its hosts. */
int verb_fleet_status(char **args);
int verb_fleet_hosts(char **args);
int verb_fleet_enroll(char **args);
int verb_fleet_remove(char **args);

/* dkmctl-audit.c: the audit log, read from its directory (no bus). */
int verb_audit_show(char **args);
int verb_audit_verify(char **args);
/* "@SECONDS", "YYYY-MM-DD", "YYYY-MM-DD HH:MM:SS" (UTC) or "-SPAN" (before now) in CLOCK_REALTIME µs. */
int parse_audit_time(const char *s, uint64_t now_usec, uint64_t *ret) _warn_unused_result_;
