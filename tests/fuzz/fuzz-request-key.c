/* SPDX-License-Identifier: MIT */
/* libFuzzer: the description the kernel hands the request-key upcall (src/helper/request-key.c's
 * pure part: keyring_generation_desc_parse() in src/keyring/keyring-names.c). The handler runs as
 * root on any description a user asks for, so it must accept exactly the canonical ones. */
#include <errno.h>

#include "fuzz.h"
#include "keyring-names.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *desc = fuzz_strndup(data, size), again[KEYRING_DESC_MAX];
        uint8_t id[KEYRING_GROUP_ID_BYTES];
        uint32_t generation = 0;
        int r;

        r = keyring_generation_desc_parse(desc, id, &generation);
        if (r < 0)
                FUZZ_ASSERT(r == -EINVAL);
        else {
                FUZZ_ASSERT(generation > 0);
                /* One spelling per key: formatting what parsed gives the same description. */
                FUZZ_ASSERT(keyring_generation_desc(id, generation, again) == 0);
                FUZZ_ASSERT(strcmp(again, desc) == 0);
        }
        free(desc);
        return 0;
}
