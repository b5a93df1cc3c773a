/* SPDX-License-Identifier: MIT */
/* dkmctl's audit verbs: show and verify the audit log, read from its directory with the audit library (no bus). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "config.h"
#include "dkmctl-output.h"
#include "dkmctl.h"
#include "json-writer.h"
#include "parse.h"

#define USEC_PER_SEC UINT64_C(1000000)

/* Exactly n digits at s, as a number. */
static int parse_digits(const char *s, size_t n, int *ret) {
        int v = 0;

        for (size_t i = 0; i < n; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -EINVAL;
                v = v * 10 + (s[i] - '0');
        }
        *ret = v;
        return 0;
}

/* "YYYY-MM-DD" or "YYYY-MM-DD HH:MM:SS", UTC; a date that does not exist (02-30, 24:00:00) is refused. */
static int parse_utc(const char *s, uint64_t *ret) {
        size_t n = strlen(s);
        struct tm tm = {}, check;
        time_t t;

        if (n >= 4 && strcmp(s + n - 4, " UTC") == 0)
                n -= 4; /* as audit show prints it */
        if (n != 10 && n != 19)
                return -EINVAL;
        if (parse_digits(s, 4, &tm.tm_year) < 0 || s[4] != '-' || parse_digits(s + 5, 2, &tm.tm_mon) < 0 ||
            s[7] != '-' || parse_digits(s + 8, 2, &tm.tm_mday) < 0)
                return -EINVAL;
        if (n == 19 &&
            (s[10] != ' ' || parse_digits(s + 11, 2, &tm.tm_hour) < 0 || s[13] != ':' ||
             parse_digits(s + 14, 2, &tm.tm_min) < 0 || s[16] != ':' || parse_digits(s + 17, 2, &tm.tm_sec) < 0))
                return -EINVAL;
        if (tm.tm_year < 1970)
                return -ERANGE;
        tm.tm_year -= 1900;
        tm.tm_mon -= 1;
        check = tm;
        t = timegm(&tm);
        if (t < 0 || tm.tm_year != check.tm_year || tm.tm_mon != check.tm_mon || tm.tm_mday != check.tm_mday ||
            tm.tm_hour != check.tm_hour || tm.tm_min != check.tm_min || tm.tm_sec != check.tm_sec)
                return -EINVAL; /* timegm normalized it: no such day or time */
        *ret = (uint64_t) t * USEC_PER_SEC;
        return 0;
}

int parse_audit_time(const char *s, uint64_t now_usec, uint64_t *ret) {
        uint64_t v;
        int r;

        if (s[0] == '@') {
                r = parse_uint64(s + 1, UINT64_MAX / USEC_PER_SEC, &v);
                if (r < 0)
                        return r;
                *ret = v * USEC_PER_SEC;
                return 0;
        }
        if (s[0] == '-') {
                r = parse_duration_usec(s + 1, &v);
                if (r < 0)
                        return r;
                if (v > now_usec)
                        return -ERANGE;
                *ret = now_usec - v;
                return 0;
        }
        return parse_utc(s, ret);
}

/* --dir, else <state dir>/audit: $DKM_STATE_DIR as dkmd reads it, else the configured default. */
static char *audit_dir(void) {
        const char *state = getenv("DKM_STATE_DIR");
        char *dir;

        if (arg.audit_dir)
                return strdup(arg.audit_dir);
        if (!state || !state[0])
                state = DKM_DEFAULT_STATE_DIR;
        return asprintf(&dir, "%s/audit", state) < 0 ? NULL : dir;
}

/* Why the directory (or a file in it) could not be read, as a status and one line. */
static int fail_read(int r, const char *what) {
        if (r == -EACCES || r == -EPERM)
                return fail_local(EXIT_DENIED, "%s; the audit log is root-only: run as root, or on a copy.", what);
        if (r == -ENOENT || r == -ENOTDIR)
                return fail_local(EXIT_NOT_FOUND, "%s (no audit log there; --dir=DIR names another).", what);
        return fail_local(EXIT_FAILURE, "%s", what);
}

static void hex(const uint8_t *p, size_t size, char *ret) {
        static const char digits[] = "0123456789abcdef";

        for (size_t i = 0; i < size; i++) {
                ret[2 * i] = digits[p[i] >> 4];
                ret[2 * i + 1] = digits[p[i] & 15];
        }
        ret[2 * size] = 0;
}

/* ---- audit show ---- */

/* The library matches a substring; a group's records are its own object and those below it, so
 * "mail" must match group/mail and group/mail/..., not group/mail2 or xgroup/mail. */
static bool object_is_group(const char *object, const char *group) {
        size_t n = strlen(group);

        return strncmp(object, "group/", 6) == 0 && strncmp(object + 6, group, n) == 0 &&
               (object[6 + n] == 0 || object[6 + n] == '/');
}

static void json_entry(JsonWriter *w, const AuditEntry *e) {
        char h[2 * CRYPT_HASH_BYTES + 1];

        json_object_begin(w);
        json_field_uint(w, "seq", e->seq);
        json_field_uint(w, "time_usec", e->time);
        json_field_string(w, "file", e->file);
        json_field_uint(w, "line", e->line);
        json_field_string(w, "type", e->is_checkpoint ? "checkpoint" : "event");
        if (e->is_checkpoint) {
                json_field_string(w, "checkpoint", audit_checkpoint_reason_to_string(e->reason));
                json_field_uint(w, "interval", e->interval);
        } else {
                json_field_string(w, "event", e->event);
                json_field_string(w, "outcome", audit_outcome_to_string(e->outcome));
                json_field_uint(w, "uid", e->uid);
                json_field_uint(w, "pid", e->pid);
                json_field_string(w, "comm", e->comm);
                json_field_string(w, "object", e->object);
                json_field_string(w, "detail", e->detail);
        }
        hex(e->prev, sizeof(e->prev), h);
        json_field_string(w, "prev", h);
        hex(e->hash, sizeof(e->hash), h);
        json_field_string(w, "hash", h);
        json_object_end(w);
}

static int table_add_entry(Table *t, const AuditEntry *e) {
        _cleanup_free_ char *comm = NULL, *object = NULL, *detail = NULL;
        char when[FORMAT_MAX];
        int r;

        if (e->is_checkpoint) {
                comm = strdup("-");
                object = strdup("-");
                r = asprintf(&detail, "%s, interval %llu", audit_checkpoint_reason_to_string(e->reason),
                             (unsigned long long) e->interval);
                if (r < 0)
                        detail = NULL;
        } else {
                comm = escape_for_terminal(e->comm, 0);
                object = escape_for_terminal(e->object, 0);
                detail = escape_for_terminal(e->detail, 0);
        }
        if (!comm || !object || !detail)
                return -ENOMEM;
        r = table_addf(t, "%llu", (unsigned long long) e->seq);
        if (r >= 0)
                r = table_add(t, format_time_utc(e->time, when));
        if (r >= 0)
                r = table_add(t, e->is_checkpoint ? "checkpoint" : e->event);
        if (r >= 0)
                r = table_add(t, e->is_checkpoint ? "-" : audit_outcome_to_string(e->outcome));
        if (r >= 0)
                r = e->is_checkpoint ? table_add(t, "-") : table_addf(t, "%u", (unsigned) e->uid);
        if (r >= 0)
                r = e->is_checkpoint ? table_add(t, "-") : table_addf(t, "%u", (unsigned) e->pid);
        if (r >= 0)
                r = table_add(t, comm);
        if (r >= 0)
                r = table_add(t, object);
        if (r >= 0)
                r = table_add(t, detail);
        return r;
}

int verb_audit_show(char **args) {
        static const char *const headers[] = { "SEQ", "TIME", "EVENT",  "OUTCOME", "UID",
                                               "PID", "COMM", "OBJECT", "DETAIL" };
        _cleanup_(audit_reader_freep) AuditReader *reader = NULL;
        _cleanup_table_ Table *t = NULL;
        _cleanup_free_ char *dir = audit_dir(), *object = NULL, *json = NULL;
        _cleanup_fclose_ FILE *mem = NULL;
        AuditFilter filter = {
                .event = arg.audit_event,
                .since = arg.since_usec,
                /* The library reads 0 as "no bound"; before the epoch nothing was recorded. */
                .until = (arg.given & OPT_UNTIL) ? MAX(arg.until_usec, (uint64_t) 1) : 0,
                .checkpoints = arg.checkpoints,
        };
        const AuditEntry *e;
        size_t n = 0, json_size = 0;
        JsonWriter w;
        int r;

        if (!dir)
                return fail_oom();
        if (arg.audit_group) {
                if (asprintf(&object, "group/%s", arg.audit_group) < 0)
                        return fail_oom();
                filter.object = object;
        }
        r = audit_reader_new(dir, &filter, &reader);
        if (r < 0) {
                char what[512];

                snprintf(what, sizeof(what), "%s: cannot open: %s", dir, strerror(-r));
                return fail_read(r, what);
        }
        /* Everything is read before anything is printed: a failure prints no partial document. */
        if (arg.json) {
                mem = open_memstream(&json, &json_size);
                if (!mem)
                        return fail_oom();
                json_init(&w, mem);
                json_object_begin(&w);
                json_key(&w, "records");
                json_array_begin(&w);
        } else {
                t = table_new(ELEMENTSOF(headers), headers);
                if (!t)
                        return fail_oom();
        }
        while ((r = audit_reader_next(reader, &e)) > 0) {
                if (arg.audit_group && !object_is_group(e->object, arg.audit_group))
                        continue;
                n++;
                if (arg.json)
                        json_entry(&w, e);
                else if (table_add_entry(t, e) < 0)
                        return fail_oom();
        }
        if (r == -EBADMSG)
                return fail_local(EXIT_AUDIT_BAD,
                                  "%s/%s; the log was damaged or tampered with (dkmctl audit verify checks all of it).",
                                  dir, audit_reader_error(reader) ?: "?");
        if (r < 0) {
                char what[512];

                snprintf(what, sizeof(what), "%s: cannot read: %s", dir, strerror(-r));
                return fail_read(r, what);
        }
        if (arg.json) {
                json_array_end(&w);
                json_object_end(&w);
                json_finish(&w);
                if (fflush(mem) != 0 || ferror(mem))
                        return fail_oom();
                fwrite(json, 1, json_size, stdout);
                return 0;
        }
        table_print(t, stdout, arg.legend);
        if (arg.legend)
                printf("\n%zu record%s shown. Not verified here: dkmctl audit verify checks the chain and its "
                       "signatures.\n",
                       n, n == 1 ? "" : "s");
        return 0;
}

/* ---- audit verify ---- */

static void json_report(const char *dir, int r, const AuditReport *rep) {
        char h[2 * CRYPT_HASH_BYTES + 1];
        JsonWriter w;

        hex(rep->last_hash, sizeof(rep->last_hash), h);
        json_init(&w, stdout);
        json_object_begin(&w);
        json_field_string(&w, "directory", dir);
        json_field_bool(&w, "intact", r == 0);
        json_field_string(&w, "public_key", arg.public_key ? "pinned" : "directory");
        json_field_string(&w, "public_key_file", arg.public_key);
        json_field_uint(&w, "files", rep->files);
        json_field_uint(&w, "records", rep->records);
        json_field_uint_or_null(&w, "first_seq", rep->first_seq);
        json_field_uint_or_null(&w, "last_seq", rep->last_seq);
        json_field_string(&w, "last_hash", rep->records > 0 ? h : NULL);
        json_field_uint_or_null(&w, "last_checkpoint_seq", rep->last_checkpoint_seq);
        json_field_uint(&w, "unsealed", rep->unsealed);
        json_field_bool(&w, "closed", rep->closed);
        json_field_string(&w, "error", rep->error[0] ? rep->error : NULL);
        json_field_string(&w, "warning", rep->warning[0] ? rep->warning : NULL);
        json_object_end(&w);
        json_finish(&w);
}

static void print_report(const char *dir, const AuditReport *rep) {
        char h[2 * CRYPT_HASH_BYTES + 1];

        hex(rep->last_hash, sizeof(rep->last_hash), h);
        printf("Audit log %s is intact.\n", dir);
        if (arg.public_key)
                printf("Public key:       pinned, from %s\n", arg.public_key);
        else
                printf("Public key:       the directory's own audit.pub (not pinned: whoever rewrote the log could "
                       "have replaced it; pass a copy kept elsewhere with --public-key=FILE)\n");
        printf("Files:            %u (audit-000001.log to audit-%06u.log)\n", rep->files, rep->files);
        printf("Records:          %llu (seq %llu to %llu)\n", (unsigned long long) rep->records,
               (unsigned long long) rep->first_seq, (unsigned long long) rep->last_seq);
        printf("Last checkpoint:  seq %llu, %llu record%s after it not signed\n",
               (unsigned long long) rep->last_checkpoint_seq, (unsigned long long) rep->unsealed,
               rep->unsealed == 1 ? "" : "s");
        printf("Head:             seq %llu, hash %s\n", (unsigned long long) rep->last_seq, h);
        if (rep->closed)
                printf("Closed:           yes: the log ends with a clean stop\n");
        else
                printf("Closed:           no: dkmd is running, or stopped without closing the log (a crash, or "
                       "records cut off the end); compare the head with the one noted last time\n");
        if (rep->warning[0])
                printf("Warning:          %s\n", rep->warning);
}

int verb_audit_verify(char **args) {
        _cleanup_free_ char *dir = audit_dir();
        uint8_t pinned[CRYPT_SIGN_PUBLIC_KEY_BYTES];
        AuditReport rep;
        int r;

        if (!dir)
                return fail_oom();
        if (arg.public_key) {
                r = audit_read_public_key(AT_FDCWD, arg.public_key, pinned);
                if (r == -EBADMSG)
                        return fail_local(EXIT_USAGE, "--public-key=%s: not a public key file (ed25519=<64 hex>).",
                                          arg.public_key);
                if (r < 0)
                        return fail_local(EXIT_USAGE, "--public-key=%s: cannot read: %s", arg.public_key, strerror(-r));
        }
        r = audit_verify(dir, arg.public_key ? pinned : NULL, &rep);
        if (r == -EBADMSG) {
                if (arg.json)
                        json_report(dir, r, &rep);
                return fail_local(EXIT_AUDIT_BAD, "%s; the log was damaged or tampered with.", rep.error);
        }
        if (r < 0) {
                if (r == -ENOMEM)
                        return fail_oom();
                if (r == -ENOENT && !arg.public_key && strstr(rep.error, "/" AUDIT_PUB_FILE ":"))
                        return fail_local(EXIT_NOT_FOUND, "%s; pass a copy kept elsewhere with --public-key=FILE.",
                                          rep.error);
                return fail_read(r, rep.error[0] ? rep.error : strerror(-r));
        }
        if (arg.json)
                json_report(dir, r, &rep);
        else
                print_report(dir, &rep);
        return 0;
}
