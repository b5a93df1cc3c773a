/* SPDX-License-Identifier: MIT */
/* A group file as a fleet publishes it: sealed with a tag under the root key (docs/FLEET.md,
 * "Integrity"). The wrapped keys in a group file are authenticated already (AEAD bound to the
 * group and generation), but its gid and policy are plain text that only the file's permissions
 * protect on one host. In the directory, anyone who can write the entry (a host identity, the
 * directory's own administrators, the network without TLS) could otherwise change which Unix
 * group reads a key group on every host, or weaken its approvals. */
#include <errno.h>
#include <sodium.h>
#include <string.h>

#include "kvfile.h"
#include "store-internal.h"

/* Part of the directory's format: changing it makes every published group unreadable. */
#define SEAL_KEY_LABEL "dkm fleet seal key v1"
#define SEAL_LABEL "dkm fleet group v1"
#define SEAL_PREFIX "fleet-seal="
#define SEAL_LINE_SIZE (sizeof(SEAL_PREFIX) - 1 + 2 * CRYPT_KEY_BYTES + 1)

/* tag = keyed BLAKE2b-256 over (label, name, 0, revision as 8 big-endian bytes, text), keyed
 * with a subkey of the root key: the name and the revision are bound, so a file cannot be moved
 * to another group nor presented again at a later revision. */
static int seal_tag(Store *s, const char *name, uint64_t revision, const char *text, size_t size,
                    uint8_t tag[CRYPT_KEY_BYTES]) {
        _cleanup_secret_ Secret *key = NULL, *t = NULL;
        _cleanup_free_ uint8_t *msg = NULL;
        size_t name_size = strlen(name), n = name_size + 1 + 8 + size;
        int r;

        if (!s->root_key)
                return store_error(s, -ENOKEY, NULL, "the store is locked; only a host that holds the root key "
                                                     "seals or checks a fleet's group");
        msg = malloc(n);
        if (!msg)
                return -ENOMEM;
        memcpy(msg, name, name_size + 1);
        for (int i = 0; i < 8; i++)
                msg[name_size + 1 + (size_t) i] = (uint8_t) (revision >> (56 - 8 * i));
        memcpy(msg + name_size + 1 + 8, text, size);
        r = crypt_derive_subkey(s->root_key, SEAL_KEY_LABEL, NULL, 0, &key);
        if (r >= 0)
                r = crypt_derive_subkey(key, SEAL_LABEL, msg, n, &t);
        if (r < 0)
                return r;
        memcpy(tag, t->data, CRYPT_KEY_BYTES);
        return 0;
}

int store_group_fleet_seal(Store *s, const char *name, uint64_t revision, const char *text, size_t size,
                           char **ret_text, size_t *ret_size) {
        uint8_t tag[CRYPT_KEY_BYTES];
        char *out;
        int r;

        store_error_clear(s);
        if (!name || !text || !ret_text || !ret_size || revision == 0)
                return -EINVAL;
        r = seal_tag(s, name, revision, text, size, tag);
        if (r < 0)
                return store_finish(s, r);
        out = malloc(size + SEAL_LINE_SIZE + 1);
        if (!out)
                return -ENOMEM;
        memcpy(out, text, size);
        memcpy(out + size, SEAL_PREFIX, sizeof(SEAL_PREFIX) - 1);
        for (size_t i = 0; i < sizeof(tag); i++)
                (void) snprintf(out + size + sizeof(SEAL_PREFIX) - 1 + 2 * i, 3, "%02x", tag[i]);
        out[size + SEAL_LINE_SIZE - 1] = '\n';
        out[size + SEAL_LINE_SIZE] = 0;
        *ret_text = out;
        *ret_size = size + SEAL_LINE_SIZE;
        return 0;
}

int store_group_fleet_open(Store *s, const char *name, uint64_t revision, const char *sealed, size_t size,
                           char **ret_text, size_t *ret_size) {
        uint8_t want[CRYPT_KEY_BYTES], got[CRYPT_KEY_BYTES];
        char hex[2 * CRYPT_KEY_BYTES + 1];
        const char *line;
        size_t text_size;
        char *out;
        int r;

        store_error_clear(s);
        if (!name || !sealed || !ret_text || !ret_size)
                return -EINVAL;
        /* the last line, whole: "fleet-seal=" and 64 lowercase hex digits */
        line = size >= SEAL_LINE_SIZE ? sealed + size - SEAL_LINE_SIZE : NULL;
        if (!line || (line > sealed && line[-1] != '\n') || memcmp(line, SEAL_PREFIX, sizeof(SEAL_PREFIX) - 1) != 0 ||
            line[SEAL_LINE_SIZE - 1] != '\n')
                return store_finish(s, store_error(s, -EBADMSG, NULL, "group %s: not sealed by a host of this fleet", name));
        memcpy(hex, line + sizeof(SEAL_PREFIX) - 1, sizeof(hex) - 1);
        hex[sizeof(hex) - 1] = 0;
        if (kv_parse_hex(hex, got, sizeof(got)) < 0)
                return store_finish(s, store_error(s, -EBADMSG, NULL, "group %s: a malformed fleet seal", name));
        text_size = size - SEAL_LINE_SIZE;
        r = seal_tag(s, name, revision, sealed, text_size, want);
        if (r < 0)
                return store_finish(s, r);
        if (sodium_memcmp(want, got, sizeof(want)) != 0)
                return store_finish(s, store_error(s, -EBADMSG, NULL,
                                                   "group %s revision %llu: the fleet seal does not match (changed in "
                                                   "the directory, or sealed for another revision or fleet)",
                                                   name, (unsigned long long) revision));
        out = malloc(text_size + 1);
        if (!out)
                return -ENOMEM;
        memcpy(out, sealed, text_size);
        out[text_size] = 0;
        *ret_text = out;
        *ret_size = text_size;
        return 0;
}
