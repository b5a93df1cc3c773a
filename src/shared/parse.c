/* SPDX-License-Identifier: MIT */
/* Parsing of small user-supplied values. */
#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <string.h>

#include "parse.h"

int parse_uint64(const char *s, uint64_t max, uint64_t *ret) {
        uint64_t v = 0;

        if (!s || !*s)
                return -EINVAL;
        for (const char *p = s; *p; p++) {
                if (!isdigit((unsigned char) *p))
                        return -EINVAL;
                if (v > (max - (uint64_t) (*p - '0')) / 10)
                        return -ERANGE;
                v = v * 10 + (uint64_t) (*p - '0');
        }
        *ret = v;
        return 0;
}

int parse_uint32(const char *s, uint32_t *ret) {
        uint64_t v;
        int r = parse_uint64(s, UINT32_MAX, &v);
        if (r < 0)
                return r;
        *ret = (uint32_t) v;
        return 0;
}

#define USEC_PER_SEC UINT64_C(1000000)

static const struct {
        const char *suffix;
        uint64_t usec;
} duration_units[] = {
        /* Longest suffixes first so "min" is not read as "m" + junk. */
        { "min", 60 * USEC_PER_SEC },
        { "w", 7 * 24 * 3600 * USEC_PER_SEC },
        { "d", 24 * 3600 * USEC_PER_SEC },
        { "h", 3600 * USEC_PER_SEC },
        { "s", USEC_PER_SEC },
};

int parse_duration_usec(const char *s, uint64_t *ret) {
        uint64_t total = 0;
        const char *p = s;

        if (!s || !*s)
                return -EINVAL;
        while (*p) {
                uint64_t n = 0, unit = USEC_PER_SEC;
                const char *start = p;
                size_t i;

                while (isdigit((unsigned char) *p)) {
                        if (n > (UINT64_MAX / 10) - 9)
                                return -ERANGE;
                        n = n * 10 + (uint64_t) (*p - '0');
                        p++;
                }
                if (p == start)
                        return -EINVAL;
                for (i = 0; i < ELEMENTSOF(duration_units); i++) {
                        size_t l = strlen(duration_units[i].suffix);
                        if (strncmp(p, duration_units[i].suffix, l) == 0) {
                                unit = duration_units[i].usec;
                                p += l;
                                break;
                        }
                }
                if (i == ELEMENTSOF(duration_units) && *p)
                        return -EINVAL; /* unknown unit */
                if (n > UINT64_MAX / unit || total > UINT64_MAX - n * unit)
                        return -ERANGE;
                total += n * unit;
        }
        *ret = total;
        return 0;
}

void format_duration_usec(uint64_t usec, char *buf, size_t size) {
        static const struct {
                const char *suffix;
                uint64_t usec;
        } units[] = {
                { "d", 24 * 3600 * USEC_PER_SEC },
                { "h", 3600 * USEC_PER_SEC },
                { "min", 60 * USEC_PER_SEC },
                { "s", USEC_PER_SEC },
        };
        size_t used = 0;

        if (size == 0)
                return;
        buf[0] = 0;
        if (usec == 0) {
                snprintf(buf, size, "0");
                return;
        }
        for (size_t i = 0; i < ELEMENTSOF(units) && usec >= USEC_PER_SEC; i++) {
                uint64_t n = usec / units[i].usec;
                if (n == 0)
                        continue;
                usec -= n * units[i].usec;
                used += (size_t) snprintf(buf + used, used < size ? size - used : 0, "%llu%s",
                                          (unsigned long long) n, units[i].suffix);
                if (used >= size)
                        return;
        }
        if (usec > 0)
                snprintf(buf + used, used < size ? size - used : 0, "%lluus", (unsigned long long) usec);
}

int parse_gid(const char *s, gid_t *ret) {
        struct group grp, *result = NULL;
        char buf[16384];
        uint64_t v;
        int r;

        if (parse_uint64(s, UINT32_MAX - 1, &v) == 0) {
                *ret = (gid_t) v;
                return 0;
        }
        r = getgrnam_r(s, &grp, buf, sizeof(buf), &result);
        if (r != 0)
                return -r;
        if (!result)
                return -ENOENT;
        *ret = result->gr_gid;
        return 0;
}
