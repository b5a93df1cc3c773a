/* SPDX-License-Identifier: MIT */
/* Parse one groups.d drop-in: a systemd-style ini file with a single [KeyGroup] section. Pure. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "group-dropin-internal.h"
#include "group-dropin.h"
#include "parse.h"
#include "utf8.h"

#define WHITESPACE          " \t"
#define SECTION             "KeyGroup"
#define UNIX_GROUP_NAME_MAX 256U /* LOGIN_NAME_MAX on Linux */

GroupDropin *group_dropin_free(GroupDropin *d) {
        if (!d)
                return NULL;
        free(d->name);
        free(d->path);
        free(d->unix_group);
        for (size_t i = 0; i < d->n_approval_groups; i++)
                free(d->approval_groups[i]);
        free(d);
        return NULL;
}

void group_dropin_free_array(GroupDropin **d, size_t n) {
        for (size_t i = 0; d && i < n; i++)
                group_dropin_free(d[i]);
        free(d);
}

static bool is_control(unsigned char c) {
        return c < 0x20 || c == 0x7f;
}

/* A copy of s that is safe in one log line or a D-Bus string: control characters and bytes that
 * are not UTF-8 become \xHH. */
static char *escape_for_message(const char *s) {
        size_t n = strlen(s), k = 0;
        char *out = malloc(4 * n + 1);

        if (!out)
                return NULL;
        for (size_t i = 0; i < n;) {
                const unsigned char *p = (const unsigned char *) s + i;
                size_t l = utf8_decode(p, n - i, NULL);

                if (l == 0 || is_control(*p)) {
                        k += (size_t) sprintf(out + k, "\\x%02x", *p);
                        i++;
                } else {
                        memcpy(out + k, p, l);
                        k += l;
                        i += l;
                }
        }
        out[k] = 0;
        return out;
}

int dropin_error(char **ret_error, const char *path, unsigned line, const char *fmt, ...) {
        _cleanup_free_ char *p = NULL, *what = NULL;
        char *msg;
        va_list ap;
        int r;

        if (!ret_error)
                return -EBADMSG;
        p = escape_for_message(path);
        if (!p)
                return -ENOMEM;
        va_start(ap, fmt);
        r = vasprintf(&msg, fmt, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        /* The message quotes the file, cut to a length ("%.64s") that may split a character:
         * escaped too, it stays UTF-8, which Reload() needs to return it over D-Bus. */
        what = escape_for_message(msg);
        free(msg);
        if (!what)
                return -ENOMEM;
        r = line > 0 ? asprintf(&msg, "%s:%u: %s", p, line, what) : asprintf(&msg, "%s: %s", p, what);
        if (r < 0)
                return -ENOMEM;
        *ret_error = msg;
        return -EBADMSG;
}

int dropin_check_name(const char *path, const char *name, char **ret_error) {
        _cleanup_free_ char *e = NULL;

        if (store_group_name_is_valid(name))
                return 0;
        e = escape_for_message(name);
        if (!e)
                return -ENOMEM;
        return dropin_error(ret_error, path, 0,
                            "'%s' is not a valid key group name (the file name before " GROUP_DROPIN_SUFFIX
                            " must be [a-z0-9][a-z0-9_.-]*, at most %u characters)",
                            e, STORE_GROUP_NAME_MAX);
}

/* Value parsers: 0, or -EINVAL with reason filled in, or -ENOMEM. */
typedef int (*ValueParser)(const char *v, GroupDropin *d, char *reason, size_t size);

/* A group name or numeric gid, syntax only: the group database is dkmd's to consult, when it
 * applies the file. */
static int check_group_word(const char *v, char *reason, size_t size) {
        uint64_t gid;

        if (v[strspn(v, "0123456789")] == 0) {
                /* (gid_t) -1 means "no change" to chown(2), so it can never be a group's gid. */
                if (parse_uint64(v, UINT32_MAX - 1, &gid) < 0) {
                        snprintf(reason, size, "gid out of range (0..%u)", UINT32_MAX - 1);
                        return -EINVAL;
                }
        } else if (strlen(v) > UNIX_GROUP_NAME_MAX || v[0] == '-' || strpbrk(v, WHITESPACE ":,/")) {
                /* ':' and ',' separate fields of /etc/group; '-' would read as an option. */
                snprintf(reason, size, "'%.64s' is not a group name or a numeric gid", v);
                return -EINVAL;
        }
        return 0;
}

static int parse_unix_group(const char *v, GroupDropin *d, char *reason, size_t size) {
        int r = check_group_word(v, reason, size);

        if (r < 0)
                return r;
        d->unix_group = strdup(v);
        return d->unix_group ? 0 : -ENOMEM;
}

/* "ops security": the approver group of each level, in order; empty: no levels. */
static int parse_approval_groups(const char *v, GroupDropin *d, char *reason, size_t size) {
        _cleanup_free_ char *copy = strdup(v);
        char *word, *save = NULL;
        int r;

        if (!copy)
                return -ENOMEM;
        for (size_t i = 0; i < d->n_approval_groups; i++)
                free(d->approval_groups[i]);
        d->n_approval_groups = 0;
        for (word = strtok_r(copy, WHITESPACE, &save); word; word = strtok_r(NULL, WHITESPACE, &save)) {
                r = check_group_word(word, reason, size);
                if (r < 0)
                        return r;
                if (d->n_approval_groups >= STORE_APPROVAL_LEVELS_MAX) {
                        snprintf(reason, size, "at most %u approval levels", STORE_APPROVAL_LEVELS_MAX);
                        return -EINVAL;
                }
                for (size_t i = 0; i < d->n_approval_groups; i++)
                        if (strcmp(d->approval_groups[i], word) == 0) {
                                snprintf(reason, size, "'%.64s' appears at two levels: a group approves one level",
                                         word);
                                return -EINVAL;
                        }
                d->approval_groups[d->n_approval_groups] = strdup(word);
                if (!d->approval_groups[d->n_approval_groups])
                        return -ENOMEM;
                d->n_approval_groups++;
        }
        return 0;
}

static int parse_algorithm(const char *v, GroupDropin *d, char *reason, size_t size) {
        if (crypt_alg_from_string(v, &d->alg) < 0) {
                snprintf(reason, size, "unknown algorithm (%s or %s)",
                         crypt_alg_to_string(CRYPT_ALG_XCHACHA20_POLY1305), crypt_alg_to_string(CRYPT_ALG_AES256_GCM));
                return -EINVAL;
        }
        return 0;
}

static int parse_duration(const char *v, uint64_t *ret, char *reason, size_t size) {
        int r = parse_duration_usec(v, ret);

        if (r == -ERANGE)
                snprintf(reason, size, "duration too long");
        else if (r < 0)
                snprintf(reason, size, "not a duration (e.g. 0, 90s, 15min, 12h, 30d, 2w, 1d12h)");
        return r < 0 ? -EINVAL : 0;
}

static int parse_rollover_period(const char *v, GroupDropin *d, char *reason, size_t size) {
        return parse_duration(v, &d->policy.rollover_period_usec, reason, size);
}

static int parse_propagation_delay(const char *v, GroupDropin *d, char *reason, size_t size) {
        return parse_duration(v, &d->policy.propagation_delay_usec, reason, size);
}

static int parse_hot_window(const char *v, GroupDropin *d, char *reason, size_t size) {
        uint32_t n;

        if (parse_uint32(v, &n) < 0 || n > STORE_HOT_WINDOW_MAX) {
                snprintf(reason, size, "not a number from 0 to %u", STORE_HOT_WINDOW_MAX);
                return -EINVAL;
        }
        d->policy.hot_window = n;
        return 0;
}

static int parse_boolean(const char *v, bool *ret, char *reason, size_t size) {
        static const char *const yes[] = { "yes", "true", "on", "1" }, *const no[] = { "no", "false", "off", "0" };

        for (size_t i = 0; i < ELEMENTSOF(yes); i++)
                if (strcasecmp(v, yes[i]) == 0 || strcasecmp(v, no[i]) == 0) {
                        *ret = strcasecmp(v, yes[i]) == 0;
                        return 0;
                }
        snprintf(reason, size, "not a boolean (yes/no, true/false, on/off, 1/0)");
        return -EINVAL;
}

static int parse_allow_human_members(const char *v, GroupDropin *d, char *reason, size_t size) {
        return parse_boolean(v, &d->policy.allow_human_members, reason, size);
}

static int parse_retire_needs_approval(const char *v, GroupDropin *d, char *reason, size_t size) {
        return parse_boolean(v, &d->policy.retire_needs_approval, reason, size);
}

/* Break-glass times: a kernel timeout counts whole seconds, and 0 would disable the limit. */
static int parse_break_glass_duration(const char *v, uint64_t *ret, char *reason, size_t size) {
        int r = parse_duration(v, ret, reason, size);

        if (r >= 0 && *ret < 1000000U) {
                snprintf(reason, size, "must be at least 1s");
                return -EINVAL;
        }
        return r;
}

static int parse_max_grant(const char *v, GroupDropin *d, char *reason, size_t size) {
        return parse_break_glass_duration(v, &d->policy.max_grant_usec, reason, size);
}

static int parse_request_timeout(const char *v, GroupDropin *d, char *reason, size_t size) {
        return parse_break_glass_duration(v, &d->policy.request_timeout_usec, reason, size);
}

typedef enum DropinKey {
        KEY_UNIX_GROUP,
        KEY_ALGORITHM,
        KEY_ROLLOVER_PERIOD,
        KEY_PROPAGATION_DELAY,
        KEY_HOT_WINDOW,
        KEY_ALLOW_HUMAN_MEMBERS,
        KEY_APPROVAL_GROUPS,
        KEY_MAX_GRANT,
        KEY_REQUEST_TIMEOUT,
        KEY_RETIRE_NEEDS_APPROVAL,
        _KEY_MAX,
} DropinKey;

static const struct {
        const char *name;
        ValueParser parse;
} keys[_KEY_MAX] = {
        [KEY_UNIX_GROUP] = { "UnixGroup", parse_unix_group },
        [KEY_ALGORITHM] = { "Algorithm", parse_algorithm },
        [KEY_ROLLOVER_PERIOD] = { "RolloverPeriod", parse_rollover_period },
        [KEY_PROPAGATION_DELAY] = { "PropagationDelay", parse_propagation_delay },
        [KEY_HOT_WINDOW] = { "HotWindow", parse_hot_window },
        [KEY_ALLOW_HUMAN_MEMBERS] = { "AllowHumanMembers", parse_allow_human_members },
        [KEY_APPROVAL_GROUPS] = { "ApprovalGroups", parse_approval_groups },
        [KEY_MAX_GRANT] = { "MaxGrant", parse_max_grant },
        [KEY_REQUEST_TIMEOUT] = { "RequestTimeout", parse_request_timeout },
        [KEY_RETIRE_NEEDS_APPROVAL] = { "RetireNeedsApproval", parse_retire_needs_approval },
};

typedef struct Parser {
        const char *path;
        unsigned line;
        unsigned section_line;       /* where [KeyGroup] was; 0: not yet */
        unsigned key_line[_KEY_MAX]; /* where each key was set; 0: not yet */
        GroupDropin *d;
        char **error;
} Parser;

/* Every byte is checked before the line is read at all, so no later message quotes junk. */
static int check_line_bytes(Parser *p, const char *s, size_t n) {
        const unsigned char *u = (const unsigned char *) s;

        for (size_t i = 0; i < n;) {
                size_t l;

                if (u[i] == 0)
                        return dropin_error(p->error, p->path, p->line, "NUL byte");
                if (u[i] == '\r')
                        return dropin_error(p->error, p->path, p->line,
                                            "carriage return (save the file with Unix line endings)");
                if (is_control(u[i]) && u[i] != '\t')
                        return dropin_error(p->error, p->path, p->line, "control character 0x%02x", u[i]);
                l = utf8_decode(u + i, n - i, NULL);
                if (l == 0)
                        return dropin_error(p->error, p->path, p->line, "invalid UTF-8");
                i += l;
        }
        return 0;
}

static char *strip(char *s) {
        size_t n;

        s += strspn(s, WHITESPACE);
        n = strlen(s);
        while (n > 0 && strchr(WHITESPACE, s[n - 1]))
                s[--n] = 0;
        return s;
}

static int parse_section(Parser *p, char *s) {
        size_t n = strlen(s);

        if (n < 2 || s[n - 1] != ']')
                return dropin_error(p->error, p->path, p->line,
                                    "malformed section header (expected [" SECTION "] alone on the line)");
        s[n - 1] = 0;
        if (strcmp(s + 1, SECTION) != 0)
                return dropin_error(p->error, p->path, p->line,
                                    "unknown section [%s] (the only section is [" SECTION "])", s + 1);
        if (p->section_line > 0)
                return dropin_error(p->error, p->path, p->line, "second [" SECTION "] section (first on line %u)",
                                    p->section_line);
        p->section_line = p->line;
        return 0;
}

static int parse_assignment(Parser *p, char *s) {
        char *eq = strchr(s, '='), *key, *value, reason[128];
        size_t k;
        int r;

        if (!eq)
                return dropin_error(p->error, p->path, p->line, "not a Key=Value line");
        *eq = 0;
        key = strip(s);
        value = strip(eq + 1);
        if (p->section_line == 0)
                return dropin_error(p->error, p->path, p->line, "%s= outside a section (put [" SECTION "] first)", key);
        for (k = 0; k < _KEY_MAX; k++)
                if (strcmp(key, keys[k].name) == 0)
                        break;
        if (k == _KEY_MAX)
                return dropin_error(p->error, p->path, p->line, "unknown key '%s'", key);
        if (p->key_line[k] > 0)
                return dropin_error(p->error, p->path, p->line, "duplicate %s= (first on line %u)", key,
                                    p->key_line[k]);
        if (*value == 0)
                return dropin_error(p->error, p->path, p->line, "%s= has no value", key);
        r = keys[k].parse(value, p->d, reason, sizeof(reason));
        if (r == -EINVAL)
                /* systemd-style files have no trailing comments; say so, it is the likely mistake. */
                return dropin_error(p->error, p->path, p->line, "%s=%s: %s%s", key, value, reason,
                                    strpbrk(value, "#;") ? " (comments go on lines of their own)" : "");
        if (r < 0)
                return r;
        p->key_line[k] = p->line;
        return 0;
}

static int parse_line(Parser *p, const char *line, size_t n) {
        _cleanup_free_ char *copy = NULL;
        char *s;
        int r;

        r = check_line_bytes(p, line, n);
        if (r < 0)
                return r;
        copy = strndup(line, n);
        if (!copy)
                return -ENOMEM;
        s = strip(copy);
        if (*s == 0 || *s == '#' || *s == ';')
                return 0;
        if (*s == '[')
                return parse_section(p, s);
        return parse_assignment(p, s);
}

int group_dropin_parse(const char *path, const char *name, const char *text, size_t size, GroupDropin **ret,
                       char **ret_error) {
        _cleanup_group_dropin_ GroupDropin *d = NULL;
        Parser p = { .path = path, .error = ret_error };
        int r;

        r = dropin_check_name(path, name, ret_error);
        if (r < 0)
                return r;
        if (size > GROUP_DROPIN_SIZE_MAX)
                return dropin_error(ret_error, path, 0, "larger than %u KiB", GROUP_DROPIN_SIZE_MAX >> 10);

        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        *d = (GroupDropin) { .alg = CRYPT_ALG_XCHACHA20_POLY1305, .policy = STORE_GROUP_POLICY_DEFAULT };
        d->name = strdup(name);
        d->path = strdup(path);
        if (!d->name || !d->path)
                return -ENOMEM;
        p.d = d;

        /* A UTF-8 byte order mark is skipped, as systemd does: some editors write one. Offsets,
         * not pointers, below: text may be NULL when size is 0. */
        for (size_t off = size >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0 ? 3 : 0; off < size;) {
                const char *nl = memchr(text + off, '\n', size - off);
                size_t n = nl ? (size_t) (nl - (text + off)) : size - off;

                p.line++;
                r = parse_line(&p, text + off, n);
                if (r < 0)
                        return r;
                off += n + 1;
        }

        if (p.section_line == 0)
                return dropin_error(ret_error, path, 0, "no [" SECTION "] section");
        if (p.key_line[KEY_UNIX_GROUP] == 0)
                return dropin_error(ret_error, path, 0, "missing UnixGroup= (required)");
        /* The value parsers keep every field in range; this keeps them honest. */
        if (store_group_policy_check(&d->policy) < 0)
                return dropin_error(ret_error, path, 0, "policy out of range");

        *ret = TAKE_PTR(d);
        return 0;
}
