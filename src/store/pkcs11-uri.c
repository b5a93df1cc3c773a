/* SPDX-License-Identifier: MIT */
/* RFC 7512 "pkcs11:" URIs: the attributes the PKCS#11 protector uses, percent-decoded. Pure. */
#include <errno.h>
#include <string.h>

#include "pkcs11-uri.h"

#define SCHEME "pkcs11:"

static int unhex(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* Decode [v, v+n) into ret (at most max bytes); returns the decoded size or -EINVAL. */
static int pct_decode(const char *v, size_t n, uint8_t *ret, size_t max, const char **why) {
        size_t out = 0;

        if (n == 0) {
                *why = "empty attribute value";
                return -EINVAL;
        }
        for (size_t i = 0; i < n; i++) {
                int c = (unsigned char) v[i];

                if (c == '%') {
                        int hi, lo;

                        if (i + 2 >= n) {
                                *why = "truncated percent escape";
                                return -EINVAL;
                        }
                        hi = unhex(v[i + 1]);
                        lo = unhex(v[i + 2]);
                        if (hi < 0 || lo < 0) {
                                *why = "bad percent escape";
                                return -EINVAL;
                        }
                        c = hi << 4 | lo;
                        i += 2;
                } else if (c <= 0x20 || c >= 0x7f || strchr("\"<>\\^`{}#", c)) {
                        /* RFC 3986 characters that must be escaped, control bytes and non-ASCII. */
                        *why = "character that must be percent-encoded";
                        return -EINVAL;
                }
                if (out >= max) {
                        *why = "attribute value too long";
                        return -EINVAL;
                }
                ret[out++] = (uint8_t) c;
        }
        return (int) out;
}

static int set_string(char *dst, size_t cap, const char *v, size_t n, const char **why) {
        int r;

        if (dst[0]) {
                *why = "repeated attribute";
                return -EINVAL;
        }
        r = pct_decode(v, n, (uint8_t *) dst, cap - 1, why);
        if (r < 0)
                return r;
        if (memchr(dst, 0, (size_t) r)) {
                memset(dst, 0, cap);
                *why = "NUL byte in an attribute value";
                return -EINVAL;
        }
        dst[r] = 0;
        return 0;
}

static int path_attribute(Pkcs11Uri *u, const char *a, size_t n, const char **why) {
        const char *eq = memchr(a, '=', n);
        size_t kl;
        const char *v;
        size_t vl;
        int r;

        if (!eq) {
                *why = "path attribute without '='";
                return -EINVAL;
        }
        kl = (size_t) (eq - a);
        v = eq + 1;
        vl = n - kl - 1;
#define IS(k) (kl == strlen(k) && memcmp(a, k, kl) == 0)
        if (IS("token"))
                return set_string(u->token, sizeof(u->token), v, vl, why);
        if (IS("object"))
                return set_string(u->object, sizeof(u->object), v, vl, why);
        if (IS("id")) {
                if (u->id_size) {
                        *why = "repeated attribute";
                        return -EINVAL;
                }
                r = pct_decode(v, vl, u->id, sizeof(u->id), why);
                if (r < 0)
                        return r;
                u->id_size = (size_t) r;
                return 0;
        }
        if (IS("type")) {
                if (vl != strlen("secret-key") || memcmp(v, "secret-key", vl) != 0) {
                        *why = "type must be secret-key (an AES key)";
                        return -EINVAL;
                }
                return 0;
        }
        if (kl >= 5 && memcmp(a, "slot-", 5) == 0)
                *why = "slot attributes are refused; name the token by its label (token=...)";
        else
                *why = "unknown path attribute";
        return -EINVAL;
}

static int query_attribute(Pkcs11Uri *u, const char *a, size_t n, const char **why) {
        const char *eq = memchr(a, '=', n);
        size_t kl;

        if (!eq) {
                *why = "query attribute without '='";
                return -EINVAL;
        }
        kl = (size_t) (eq - a);
        if (IS("module-name"))
                return set_string(u->module_name, sizeof(u->module_name), eq + 1, n - kl - 1, why);
        if (IS("module-path")) {
                int r = set_string(u->module_path, sizeof(u->module_path), eq + 1, n - kl - 1, why);
                /* A relative path would be looked up where the loader pleases. */
                if (r >= 0 && u->module_path[0] != '/') {
                        *why = "module-path must be an absolute path";
                        return -EINVAL;
                }
                return r;
        }
        if (IS("pin-value") || IS("pin-source")) {
                *why = "a PIN never goes into the URI; use DKM_PKCS11_PIN or DKM_PKCS11_PIN_FILE";
                return -EINVAL;
        }
        return 0;
#undef IS
}

int pkcs11_uri_parse(const char *s, Pkcs11Uri *ret, const char **ret_why) {
        Pkcs11Uri u = {};
        const char *why = NULL, *p, *q, *end;
        size_t len;
        int r = 0;

        len = strnlen(s, PKCS11_URI_MAX + 1);
        if (len > PKCS11_URI_MAX) {
                *ret_why = "URI too long";
                return -EINVAL;
        }
        if (strncmp(s, SCHEME, strlen(SCHEME)) != 0) {
                *ret_why = "not a pkcs11: URI";
                return -EINVAL;
        }
        p = s + strlen(SCHEME);
        end = s + len;
        q = strchr(p, '?');
        /* Path part: attributes separated by ';'. */
        for (const char *e = q ?: end; p < e && r >= 0;) {
                const char *sep = memchr(p, ';', (size_t) (e - p));
                size_t n = (size_t) ((sep ?: e) - p);

                if (n == 0) {
                        why = "empty path attribute";
                        r = -EINVAL;
                        break;
                }
                r = path_attribute(&u, p, n, &why);
                p = sep ? sep + 1 : e;
                if (sep && p == e) {
                        why = "trailing ';'";
                        r = -EINVAL;
                }
        }
        /* Query part: attributes separated by '&'. */
        if (q && r >= 0) {
                p = q + 1;
                if (p == end) {
                        why = "empty query";
                        r = -EINVAL;
                }
                while (p < end && r >= 0) {
                        const char *sep = memchr(p, '&', (size_t) (end - p));
                        size_t n = (size_t) ((sep ?: end) - p);

                        if (n == 0) {
                                why = "empty query attribute";
                                r = -EINVAL;
                                break;
                        }
                        r = query_attribute(&u, p, n, &why);
                        p = sep ? sep + 1 : end;
                        if (sep && p == end) {
                                why = "trailing '&'";
                                r = -EINVAL;
                        }
                }
        }
        if (r < 0) {
                *ret_why = why;
                return r;
        }
        *ret = u;
        return 0;
}
