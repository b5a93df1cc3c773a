/* SPDX-License-Identifier: MIT */
/* libFuzzer: what clients read back from the kernel and /run (src/keyring/keyring-names.h): the
 * active pointer payload, the runtime serial file, group names and the descriptions made from them. */
#include <errno.h>

#include "fuzz.h"
#include "keyring-names.h"

static void check_pointer(const uint8_t *data, size_t size) {
        uint8_t packed[KEYRING_POINTER_BYTES];
        KeyringPointer p;
        int r;

        r = keyring_pointer_unpack(data, size, &p);
        if (r < 0) {
                FUZZ_ASSERT(r == -EBADMSG || r == -EPROTONOSUPPORT);
                return;
        }
        FUZZ_ASSERT(size == KEYRING_POINTER_BYTES && p.active != 0 && p.pending != p.active);
        FUZZ_ASSERT(crypt_alg_to_string(p.alg));
        keyring_pointer_pack(&p, packed);
        FUZZ_ASSERT(memcmp(packed, data, size) == 0);
}

static void check_serial(const uint8_t *data, size_t size) {
        char buf[16];
        int32_t serial;

        if (keyring_serial_parse((const char *) data, size, &serial) < 0)
                return;
        FUZZ_ASSERT(serial > 0);
        snprintf(buf, sizeof(buf), "%d\n", (int) serial);
        FUZZ_ASSERT(strlen(buf) == size && memcmp(buf, data, size) == 0);
}

static void check_u32(const uint8_t *data, size_t size) {
        char buf[16];
        uint32_t v;

        if (keyring_parse_u32((const char *) data, size, &v) < 0)
                return;
        snprintf(buf, sizeof(buf), "%u", (unsigned) v);
        FUZZ_ASSERT(strlen(buf) == size && memcmp(buf, data, size) == 0);
}

static void check_name(const uint8_t *data, size_t size) {
        char *name = fuzz_strndup(data, size), desc[KEYRING_DESC_MAX], file[KEYRING_FILE_NAME_MAX];
        bool valid = keyring_group_name_is_valid(name);

        /* Every name that passes fits every description and file name without truncation. */
        FUZZ_ASSERT((keyring_group_desc(name, desc) == 0) == valid);
        FUZZ_ASSERT((keyring_pointer_desc(name, desc) == 0) == valid);
        FUZZ_ASSERT((keyring_serial_file_name(name, file) == 0) == valid);
        FUZZ_ASSERT((keyring_grants_file_name(name, file) == 0) == valid);
        if (valid) {
                FUZZ_ASSERT(strlen(name) <= KEYRING_GROUP_NAME_MAX && name[0] != '.');
                FUZZ_ASSERT(strlen(name) + strlen(KEYRING_GRANTS_FILE_SUFFIX) < KEYRING_FILE_NAME_MAX);
                FUZZ_ASSERT(!strchr(name, '/') && !strchr(name, ':'));
                FUZZ_ASSERT(keyring_pointer_desc(name, desc) == 0 &&
                            strlen(desc) ==
                                    strlen(KEYRING_DESC_PREFIX) + strlen(name) + strlen(KEYRING_POINTER_SUFFIX));
        }
        free(name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        check_pointer(data, size);
        check_serial(data, size);
        check_u32(data, size);
        check_name(data, size);
        return 0;
}
