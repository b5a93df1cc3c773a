/* SPDX-License-Identifier: MIT */
/* libFuzzer: groups.d policy drop-ins (src/dropin/group-dropin.h group_dropin_parse). */
#include <errno.h>

#include "fuzz.h"
#include "group-dropin.h"

/* Valid UTF-8 (no overlongs, surrogates or code points beyond U+10FFFF) without control
 * characters but tab (the lines may hold tabs, and messages quote them): what a message must be
 * to go into a log line and a D-Bus string (Reload() returns the problems; sd-bus refuses a string
 * that is not UTF-8). */
static bool text_is_clean(const char *s) {
        const unsigned char *p = (const unsigned char *) s;

        while (*p) {
                uint32_t cp, min;
                size_t len;

                if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
                        return false;
                if (*p < 0x80) {
                        p++;
                        continue;
                }
                if (*p >= 0xc2 && *p <= 0xdf)
                        len = 2, cp = *p & 0x1fU, min = 0x80;
                else if ((*p & 0xf0) == 0xe0)
                        len = 3, cp = *p & 0x0fU, min = 0x800;
                else if (*p >= 0xf0 && *p <= 0xf4)
                        len = 4, cp = *p & 0x07U, min = 0x10000;
                else
                        return false;
                for (size_t i = 1; i < len; i++) {
                        if ((p[i] & 0xc0) != 0x80)
                                return false;
                        cp = cp << 6 | (p[i] & 0x3fU);
                }
                if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                        return false;
                p += len;
        }
        return true;
}

static void check(const char *path, const char *name, const uint8_t *data, size_t size) {
        _cleanup_group_dropin_ GroupDropin *d = NULL;
        _cleanup_free_ char *error = NULL;
        int r;

        r = group_dropin_parse(path, name, (const char *) data, size, &d, &error);
        if (r < 0) {
                FUZZ_ASSERT(r == -EBADMSG);
                FUZZ_ASSERT(!d && error);
                FUZZ_ASSERT(text_is_clean(error));
                return;
        }
        FUZZ_ASSERT(!error);
        FUZZ_ASSERT(strcmp(d->name, name) == 0 && strcmp(d->path, path) == 0);
        FUZZ_ASSERT(d->unix_group && *d->unix_group);
        FUZZ_ASSERT(crypt_alg_to_string(d->alg));
        FUZZ_ASSERT(store_group_policy_check(&d->policy) == 0);
        FUZZ_ASSERT(d->n_approval_groups <= STORE_APPROVAL_LEVELS_MAX);
        for (size_t i = 0; i < d->n_approval_groups; i++) {
                FUZZ_ASSERT(d->approval_groups[i] && *d->approval_groups[i]);
                for (size_t j = 0; j < i; j++)
                        FUZZ_ASSERT(strcmp(d->approval_groups[i], d->approval_groups[j]) != 0);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        check("/etc/dkm/groups.d/mail-creds.conf", "mail-creds", data, size);
        /* The name comes from the file name, which an admin (or a package) chose: fuzz it too,
         * from the input's first line. */
        {
                const uint8_t *nl = memchr(data, '\n', size);
                size_t n = nl ? (size_t) (nl - data) : size;
                char *name = fuzz_strndup(data, n);

                check("/run/dkm/groups.d/x.conf", name, nl ? nl + 1 : data + size, nl ? size - n - 1 : 0);
                free(name);
        }
        return 0;
}
