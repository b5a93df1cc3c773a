/* SPDX-License-Identifier: MIT */
/* libFuzzer: protector files (src/store/protector.h protector_file_parse, pure). The corpus holds
 * bodies; the harness appends the checksum line (fuzz.h). */
#include <errno.h>

#include "fuzz.h"
#include "protector.h"

static void check(const char *file, size_t size, const char *expected_name) {
        _cleanup_free_ char *text = NULL;
        Protector p;
        KvError e = {};
        size_t n = 0;
        int r;

        r = protector_file_parse(file, size, expected_name, &p, &e);
        if (r < 0) {
                FUZZ_ASSERT(r == -EBADMSG || r == -EPROTONOSUPPORT);
                FUZZ_ASSERT(memchr(e.msg, 0, sizeof(e.msg)) && e.msg[0]);
                return;
        }
        FUZZ_ASSERT(store_protector_name_is_valid(p.name));
        FUZZ_ASSERT(!expected_name || strcmp(p.name, expected_name) == 0);
        FUZZ_ASSERT(p.ops == &protector_file_ops || p.ops == &protector_passphrase_ops ||
                    p.ops == &protector_pkcs11_ops || p.ops == &protector_tpm2_ops ||
                    p.ops == &protector_x25519_ops);
        /* Canonical: formatting gives back the very file. */
        r = protector_file_format(&p, &text, &n);
        FUZZ_ASSERT(r == 0);
        FUZZ_ASSERT(n == size && memcmp(text, file, size) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *file;
        size_t n;

        fuzz_init_crypto();
        if (size > KVFILE_SIZE_MAX)
                return 0;
        check((const char *) data, size, NULL);
        file = fuzz_kvfile_seal(data, size, &n);
        check(file, n, NULL);
        check(file, n, "local");
        free(file);
        return 0;
}
