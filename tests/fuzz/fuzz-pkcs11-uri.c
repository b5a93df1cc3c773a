/* SPDX-License-Identifier: MIT */
/* libFuzzer: RFC 7512 pkcs11: URIs (src/store/pkcs11-uri.h pkcs11_uri_parse, pure). */
#include <errno.h>

#include "fuzz.h"
#include "pkcs11-uri.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *s = NULL;
        const char *why = NULL;
        Pkcs11Uri u;
        int r;

        if (size > PKCS11_URI_MAX + 64)
                return 0;
        s = fuzz_strndup(data, size);
        r = pkcs11_uri_parse(s, &u, &why);
        if (r < 0) {
                FUZZ_ASSERT(r == -EINVAL && why && why[0]);
                return 0;
        }
        FUZZ_ASSERT(strncmp(s, "pkcs11:", 7) == 0);
        FUZZ_ASSERT(memchr(u.token, 0, sizeof(u.token)) && memchr(u.object, 0, sizeof(u.object)));
        FUZZ_ASSERT(memchr(u.module_name, 0, sizeof(u.module_name)));
        FUZZ_ASSERT(memchr(u.module_path, 0, sizeof(u.module_path)));
        FUZZ_ASSERT(!u.module_path[0] || u.module_path[0] == '/');
        FUZZ_ASSERT(u.id_size <= sizeof(u.id));
        /* A decoded value is never longer than its encoding. */
        FUZZ_ASSERT(strlen(u.token) + strlen(u.object) + strlen(u.module_name) + strlen(u.module_path) + u.id_size <= size);
        return 0;
}
