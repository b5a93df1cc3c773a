/* SPDX-License-Identifier: MIT */
/* The tamper-evident audit log: hash-chained records, signed checkpoints, rotation, verify, filtered reading. */
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include "crypto.h"
#include "macro.h"

/* Bounds on what one record may carry (bytes, before escaping). Longer values are refused
 * (-EINVAL), never cut: a truncated detail could change its meaning. */
#define AUDIT_EVENT_MAX  32U
#define AUDIT_COMM_MAX   64U
#define AUDIT_OBJECT_MAX 256U
#define AUDIT_DETAIL_MAX 1024U

#define AUDIT_KEY_FILE "audit.key"
#define AUDIT_PUB_FILE "audit.pub"

typedef enum AuditOutcome {
        AUDIT_OUTCOME_OK,
        AUDIT_OUTCOME_REFUSED,
        AUDIT_OUTCOME_FAILED,
        _AUDIT_OUTCOME_MAX,
} AuditOutcome;

const char *audit_outcome_to_string(AuditOutcome o);

/* What the caller records: metadata only. There is deliberately no field for key bytes; never
 * put secrets into detail. Strings are copied escaped (space, '\\', control and non-ASCII bytes
 * become \xHH), so any text fits on the record's line. NULL strings are recorded as empty. */
typedef struct AuditRecord {
        const char *event; /* [a-z0-9-]{1,32}, e.g. "request", "approve", "rollover", "refused-call" */
        AuditOutcome outcome;
        uid_t uid; /* the caller's uid, from the bus credentials */
        pid_t pid;
        const char *comm;   /* the caller's command name */
        const char *object; /* what was acted on, e.g. "group/mail", "request/17" */
        const char *detail; /* free text: a justification, a reason, a duration */
} AuditRecord;

typedef enum AuditCheckpointReason {
        AUDIT_CHECKPOINT_START,    /* first record of every file */
        AUDIT_CHECKPOINT_PERIODIC, /* every `interval` event records */
        AUDIT_CHECKPOINT_ROTATE,   /* last record of every file but the newest */
        AUDIT_CHECKPOINT_CLOSE,    /* audit_close(): a clean stop */
        _AUDIT_CHECKPOINT_MAX,
} AuditCheckpointReason;

const char *audit_checkpoint_reason_to_string(AuditCheckpointReason r);

/* One parsed record, as the reader hands it out. Strings are unescaped. */
typedef struct AuditEntry {
        uint64_t seq;
        uint64_t time; /* CLOCK_REALTIME, microseconds */
        int is_checkpoint;
        /* event records */
        char event[AUDIT_EVENT_MAX + 1];
        AuditOutcome outcome;
        uint32_t uid, pid;
        char comm[AUDIT_COMM_MAX + 1];
        char object[AUDIT_OBJECT_MAX + 1];
        char detail[AUDIT_DETAIL_MAX + 1];
        /* checkpoints */
        AuditCheckpointReason reason;
        uint64_t interval;
        uint8_t sig[CRYPT_SIGN_BYTES];
        /* both */
        uint8_t prev[CRYPT_HASH_BYTES];
        uint8_t hash[CRYPT_HASH_BYTES];
        /* where it came from (reader only) */
        char file[32];
        unsigned line;
} AuditEntry;

/* Messages name the place: "DIR/FILE:LINE (seq N): what", or "DIR/FILE: what" for a whole file. */
typedef struct AuditError {
        char msg[512];
} AuditError;

/* ---- writing (dkmd) ---- */

typedef struct AuditOptions {
        uint64_t checkpoint_interval; /* a signed checkpoint after this many event records; 0: 1 (every append) */
        uint64_t max_file_size;       /* rotate before an append once the file is this big; 0: 8 MiB */
} AuditOptions;

typedef struct AuditLog AuditLog;

/* Opens (creating if missing, 0700) the audit directory dir, locks it against a second writer
 * (-EBUSY), loads or creates the Ed25519 key (audit.key, 0600; audit.pub, 0644), and finds the head
 * of the chain in the newest file. A partial record at the end (a crash or a failed write that
 * could not be undone) is cut off, and an "audit-repair" record says so. -EBADMSG if the newest
 * file is damaged, -ENOKEY if audit.key is missing but log files exist, -EPERM if dir or the key
 * is open to other users; error (may be NULL) says what and where. opts may be NULL. */
int audit_open(const char *dir, const AuditOptions *opts, AuditLog **ret, AuditError *error) _warn_unused_result_;

/* Appends one record (and a signed checkpoint when one is due) with a single write() and fsyncs
 * before returning 0. On failure (-EROFS, -ENOSPC, -EIO, -EFBIG, ...) whatever was written is cut
 * off again, so the log stays verifiable; if even that fails, the next append first re-reads the
 * file's end and repairs it. The caller must refuse the operation it was recording. -EINVAL for a
 * malformed record. */
int audit_append(AuditLog *l, const AuditRecord *rec) _warn_unused_result_;

/* Seals the current file with a rotate checkpoint and starts the next audit-NNNNNN.log, whose
 * first record (a start checkpoint) carries the sealed file's last hash. */
int audit_rotate(AuditLog *l) _warn_unused_result_;

/* The head of the chain: the last record's seq and hash (for the journal, as an outside witness). */
uint64_t audit_head(const AuditLog *l, uint8_t ret_hash[CRYPT_HASH_BYTES]);
const uint8_t *audit_public_key(const AuditLog *l);

/* Writes a close checkpoint and frees l. Returns the checkpoint's result; l is freed anyway. */
int audit_close(AuditLog *l);
/* Frees without writing anything (error paths). */
AuditLog *audit_free(AuditLog *l);
DEFINE_TRIVIAL_CLEANUP_FUNC(AuditLog *, audit_free);
#define _cleanup_audit_ _cleanup_(audit_freep)

/* ---- verifying (dkmctl audit verify, auditors) ---- */

typedef struct AuditReport {
        unsigned files;
        uint64_t records;             /* records checked before the first problem (or all) */
        uint64_t first_seq, last_seq; /* the chain checked */
        uint8_t last_hash[CRYPT_HASH_BYTES];
        uint64_t last_checkpoint_seq; /* the last signed record */
        uint64_t unsealed;            /* event records after it: not covered by a signature */
        int closed;                   /* the log ends with a close checkpoint (a clean stop) */
        char error[512];              /* the first problem: "DIR/FILE:LINE (seq N): what"; empty if none */
        char warning[512];            /* not an error: e.g. unsealed records at the end */
} AuditReport;

/* Reads a published public key file ("ed25519=<64 hex>\n"). -EBADMSG if malformed. */
int audit_read_public_key(int dirfd, const char *path, uint8_t ret[CRYPT_SIGN_PUBLIC_KEY_BYTES]) _warn_unused_result_;

/* Checks every audit-NNNNNN.log in dir, oldest first: syntax, each record's hash, seq contiguous
 * from 1, each prev equal to the hash before it (across files), file numbers without gaps, each
 * file starting with a start checkpoint and every file but the newest ending with a rotate one,
 * no more event records between checkpoints than the checkpoint promised, and every checkpoint's
 * signature under public_key (NULL: dir/audit.pub, which proves less: pin a copy taken earlier).
 * 0: intact (report->warning may still say something); -EBADMSG: report->error names the first
 * bad record; other negative errno: the directory or a file could not be read. */
int audit_verify(const char *dir, const uint8_t *public_key, AuditReport *report) _warn_unused_result_;

/* ---- reading (dkmctl audit show) ---- */

typedef struct AuditFilter {
        const char *object;    /* substring of the object (e.g. "group/mail"); NULL: any */
        const char *event;     /* exact event name; NULL: any */
        uint64_t since, until; /* since <= time < until, microseconds; 0: unbounded */
        int checkpoints;       /* also hand out checkpoint records (the object/event filters skip them) */
} AuditFilter;

typedef struct AuditReader AuditReader;

/* Reads records in order across all files. This does not verify: run audit_verify() for that.
 * filter may be NULL. */
int audit_reader_new(const char *dir, const AuditFilter *filter, AuditReader **ret) _warn_unused_result_;
/* 1 and *ret (valid until the next call) for the next matching record; 0 at the end; -EBADMSG for
 * a malformed record (audit_reader_error() names it) or another negative errno. */
int audit_reader_next(AuditReader *r, const AuditEntry **ret) _warn_unused_result_;
const char *audit_reader_error(const AuditReader *r);
AuditReader *audit_reader_free(AuditReader *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(AuditReader *, audit_reader_free);
