/* SPDX-License-Identifier: MIT */
/* dkmctl's human output: aligned tables with a header line (systemctl's look), times and gids. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dkmctl-output.h"
#include "json-writer.h"

struct Table {
        size_t n_columns;
        char **cells; /* row-major; the first row is the header */
        size_t n_cells;
};

Table *table_free(Table *t) {
        if (!t)
                return NULL;
        for (size_t i = 0; i < t->n_cells; i++)
                free(t->cells[i]);
        free(t->cells);
        free(t);
        return NULL;
}

static int add_owned(Table *t, char *cell) {
        char **grown = reallocarray(t->cells, t->n_cells + 1, sizeof(char *));

        if (!grown) {
                free(cell);
                return -ENOMEM;
        }
        t->cells = grown;
        t->cells[t->n_cells++] = cell;
        return 0;
}

int table_add(Table *t, const char *cell) {
        char *copy = strdup(cell);

        return copy ? add_owned(t, copy) : -ENOMEM;
}

int table_addf(Table *t, const char *fmt, ...) {
        char *cell = NULL;
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&cell, fmt, ap);
        va_end(ap);
        return r < 0 ? -ENOMEM : add_owned(t, cell);
}

Table *table_new(size_t n_columns, const char *const *headers) {
        Table *t;

        if (n_columns == 0 || n_columns > TABLE_COLUMNS_MAX)
                abort();
        t = calloc(1, sizeof(Table));
        if (!t)
                return NULL;
        t->n_columns = n_columns;
        for (size_t i = 0; i < n_columns; i++)
                if (table_add(t, headers[i]) < 0)
                        return table_free(t);
        return t;
}

/* Columns on a terminal: UTF-8 continuation bytes take none (a group name may be UTF-8). */
static size_t text_width(const char *s) {
        size_t n = 0;

        for (; *s; s++)
                if (((unsigned char) *s & 0xc0) != 0x80)
                        n++;
        return n;
}

void table_print(const Table *t, FILE *f, bool header) {
        size_t widths[TABLE_COLUMNS_MAX] = {};

        for (size_t i = 0; i < t->n_cells; i++)
                widths[i % t->n_columns] = MAX(widths[i % t->n_columns], text_width(t->cells[i]));
        for (size_t i = header ? 0 : t->n_columns; i < t->n_cells; i++) {
                size_t column = i % t->n_columns;
                bool last = column + 1 == t->n_columns || i + 1 == t->n_cells;

                fputs(t->cells[i], f);
                if (last) {
                        fputc('\n', f);
                        continue;
                }
                fprintf(f, "%*s", (int) (widths[column] - text_width(t->cells[i]) + 2), "");
        }
}

uint64_t now_realtime_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * 1000000U + (uint64_t) ts.tv_nsec / 1000U;
}

const char *format_time_local(uint64_t usec, char buf[static FORMAT_MAX]) {
        time_t t = (time_t) (usec / 1000000U);
        struct tm tm;

        if (usec == 0 || !localtime_r(&t, &tm) || strftime(buf, FORMAT_MAX, "%Y-%m-%d %H:%M:%S %Z", &tm) == 0)
                snprintf(buf, FORMAT_MAX, "-");
        return buf;
}

const char *format_time_utc(uint64_t usec, char buf[static FORMAT_MAX]) {
        time_t t = (time_t) (usec / 1000000U);
        struct tm tm;

        if (usec == 0 || !gmtime_r(&t, &tm) || strftime(buf, FORMAT_MAX, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
                snprintf(buf, FORMAT_MAX, "-");
        return buf;
}

const char *format_time_left(uint64_t usec, uint64_t now, char buf[static FORMAT_MAX]) {
        static const struct {
                const char *suffix;
                uint64_t sec;
        } units[] = { { "d", 86400 }, { "h", 3600 }, { "min", 60 }, { "s", 1 } };
        bool future = usec >= now;
        uint64_t left = (future ? usec - now : now - usec) / 1000000U;
        size_t used = 0, shown = 0;

        if (left == 0) {
                snprintf(buf, FORMAT_MAX, "now");
                return buf;
        }
        if (future)
                used += (size_t) snprintf(buf, FORMAT_MAX, "in ");
        for (size_t i = 0; i < ELEMENTSOF(units) && shown < 2; i++) {
                uint64_t n = left / units[i].sec;

                if (n == 0) {
                        if (shown > 0)
                                break; /* "1d 0h 5min" would say less than "1d" */
                        continue;
                }
                left -= n * units[i].sec;
                used += (size_t) snprintf(buf + used, FORMAT_MAX - used, "%s%llu%s", shown ? " " : "",
                                          (unsigned long long) n, units[i].suffix);
                shown++;
        }
        if (!future)
                snprintf(buf + used, FORMAT_MAX - used, " ago");
        return buf;
}

bool lookup_user(uint32_t uid, char buf[static FORMAT_MAX]) {
        struct passwd pw, *result = NULL;
        char mem[16384];

        if (getpwuid_r((uid_t) uid, &pw, mem, sizeof(mem), &result) != 0 || !result)
                return false;
        snprintf(buf, FORMAT_MAX, "%s", result->pw_name);
        return true;
}

const char *format_user(uint32_t uid, char buf[static FORMAT_MAX]) {
        if (!lookup_user(uid, buf))
                snprintf(buf, FORMAT_MAX, "%u", (unsigned) uid);
        return buf;
}

char *escape_for_terminal(const char *s, size_t max_chars) {
        const unsigned char *p = (const unsigned char *) s;
        size_t chars = 0, used = 0;
        /* Each byte becomes at most 4 ("\xHH"); plus "…" and the NUL. */
        char *buf = malloc(4 * strlen(s) + 4);

        if (!buf)
                return NULL;
        while (*p) {
                size_t n = json_utf8_valid_length((const char *) p);
                bool c1 = n == 2 && p[0] == 0xc2 && p[1] < 0xa0; /* U+0080..U+009F: CSI and friends */

                if (max_chars > 0 && chars == max_chars) {
                        used += (size_t) sprintf(buf + used, "…");
                        break;
                }
                if (n == 0 || c1 || *p < 0x20 || *p == 0x7f || *p == '\\') {
                        size_t k = MAX(n, (size_t) 1);

                        for (size_t i = 0; i < k; i++)
                                used += (size_t) sprintf(buf + used, "\\x%02x", p[i]);
                        p += k;
                } else {
                        memcpy(buf + used, p, n);
                        used += n;
                        p += n;
                }
                chars++;
        }
        buf[used] = 0;
        return buf;
}

bool lookup_unix_group(uint32_t gid, char buf[static FORMAT_MAX]) {
        struct group grp, *result = NULL;
        char mem[16384];

        if (getgrgid_r((gid_t) gid, &grp, mem, sizeof(mem), &result) != 0 || !result)
                return false;
        snprintf(buf, FORMAT_MAX, "%s", result->gr_name);
        return true;
}

const char *format_unix_group(uint32_t gid, char buf[static FORMAT_MAX]) {
        char name[FORMAT_MAX];

        if (lookup_unix_group(gid, name))
                snprintf(buf, FORMAT_MAX, "%.48s (%u)", name, (unsigned) gid); /* names: 32 at most */
        else
                snprintf(buf, FORMAT_MAX, "%u", (unsigned) gid);
        return buf;
}
