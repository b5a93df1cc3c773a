/* SPDX-License-Identifier: MIT */
/* libFuzzer: the load manifest dkm-keyring-helper reads on stdin (src/keyring/keyring-manifest.h). */
#include <errno.h>

#include "fuzz.h"
#include "keyring-manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_keyring_manifest_ KeyringManifest *m = NULL;
        _cleanup_secret_ Secret *text = NULL;
        KeyringManifestError error = {};
        int r;

        fuzz_init_crypto();
        if (size > KEYRING_MANIFEST_MAX + 1)
                return 0;
        r = keyring_manifest_parse((const char *) data, size, &m, &error);
        if (r < 0) {
                FUZZ_ASSERT(r == -EBADMSG || r == -E2BIG);
                FUZZ_ASSERT(!m && error.message);
                return 0;
        }
        /* The helper acts on what parses: it must also pass the writer's own rules... */
        FUZZ_ASSERT(keyring_manifest_validate(m, NULL) == 0);
        FUZZ_ASSERT(keyring_manifest_find_generation(m, m->active));
        FUZZ_ASSERT(keyring_manifest_find_generation(m, m->active)->state == KEYRING_GEN_ACTIVE);
        for (size_t i = 0; i < m->n_members; i++)
                FUZZ_ASSERT(keyring_manifest_has_member(m, m->members[i]));
        /* ...and be the one canonical spelling: formatting gives back the input. */
        r = keyring_manifest_format(m, &text);
        FUZZ_ASSERT(r == 0);
        FUZZ_ASSERT(text->size == size && memcmp(text->data, data, size) == 0);
        return 0;
}
