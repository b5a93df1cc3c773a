/* SPDX-License-Identifier: MIT */
/* Kernel key names, the pointer payload and runtime file names. Pure: no I/O. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyring-names.h"

bool keyring_group_name_is_valid(const char *name) {
        size_t n;

        if (!name)
                return false;
        n = strlen(name);
        if (n == 0 || n > KEYRING_GROUP_NAME_MAX)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = name[i];
                bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');

                if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-')))
                        return false;
        }
        return true;
}

void keyring_group_id_to_hex(const uint8_t id[KEYRING_GROUP_ID_BYTES], char ret[KEYRING_GROUP_ID_HEX + 1]) {
        static const char digits[] = "0123456789abcdef";

        for (size_t i = 0; i < KEYRING_GROUP_ID_BYTES; i++) {
                ret[2 * i] = digits[id[i] >> 4];
                ret[2 * i + 1] = digits[id[i] & 15];
        }
        ret[KEYRING_GROUP_ID_HEX] = 0;
}

static int unhex_lower(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        return -1;
}

int keyring_group_id_from_hex(const char *s, size_t size, uint8_t ret[KEYRING_GROUP_ID_BYTES]) {
        uint8_t id[KEYRING_GROUP_ID_BYTES];

        if (size != KEYRING_GROUP_ID_HEX)
                return -EINVAL;
        for (size_t i = 0; i < KEYRING_GROUP_ID_BYTES; i++) {
                int hi = unhex_lower(s[2 * i]), lo = unhex_lower(s[2 * i + 1]);
                if (hi < 0 || lo < 0)
                        return -EINVAL;
                id[i] = (uint8_t) (hi << 4 | lo);
        }
        memcpy(ret, id, sizeof(id));
        return 0;
}

int keyring_parse_u32(const char *s, size_t size, uint32_t *ret) {
        uint64_t v = 0;

        /* Leading zeros are refused so every number has exactly one spelling: a description
         * and a manifest line can then be compared as strings. */
        if (size == 0 || size > 10 || (size > 1 && s[0] == '0'))
                return -EINVAL;
        for (size_t i = 0; i < size; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -EINVAL;
                v = v * 10 + (uint64_t) (s[i] - '0');
        }
        if (v > UINT32_MAX)
                return -ERANGE;
        *ret = (uint32_t) v;
        return 0;
}

int keyring_group_desc(const char *group, char ret[KEYRING_DESC_MAX]) {
        if (!keyring_group_name_is_valid(group))
                return -EINVAL;
        snprintf(ret, KEYRING_DESC_MAX, KEYRING_DESC_PREFIX "%s", group);
        return 0;
}

int keyring_pointer_desc(const char *group, char ret[KEYRING_DESC_MAX]) {
        if (!keyring_group_name_is_valid(group))
                return -EINVAL;
        snprintf(ret, KEYRING_DESC_MAX, KEYRING_DESC_PREFIX "%s" KEYRING_POINTER_SUFFIX, group);
        return 0;
}

int keyring_generation_desc(const uint8_t id[KEYRING_GROUP_ID_BYTES], uint32_t generation, char ret[KEYRING_DESC_MAX]) {
        char hex[KEYRING_GROUP_ID_HEX + 1];

        if (generation == 0)
                return -EINVAL;
        keyring_group_id_to_hex(id, hex);
        snprintf(ret, KEYRING_DESC_MAX, KEYRING_DESC_PREFIX "%s:%u", hex, (unsigned) generation);
        return 0;
}

int keyring_generation_desc_parse(const char *desc, uint8_t ret_id[KEYRING_GROUP_ID_BYTES], uint32_t *ret_generation) {
        const size_t plen = strlen(KEYRING_DESC_PREFIX);
        uint8_t id[KEYRING_GROUP_ID_BYTES];
        uint32_t g;
        size_t n;

        if (!desc)
                return -EINVAL;
        n = strlen(desc);
        if (n < plen + KEYRING_GROUP_ID_HEX + 2 || strncmp(desc, KEYRING_DESC_PREFIX, plen) != 0 ||
            desc[plen + KEYRING_GROUP_ID_HEX] != ':')
                return -EINVAL;
        if (keyring_group_id_from_hex(desc + plen, KEYRING_GROUP_ID_HEX, id) < 0)
                return -EINVAL;
        if (keyring_parse_u32(desc + plen + KEYRING_GROUP_ID_HEX + 1, n - plen - KEYRING_GROUP_ID_HEX - 1, &g) < 0 ||
            g == 0)
                return -EINVAL;
        memcpy(ret_id, id, sizeof(id));
        *ret_generation = g;
        return 0;
}

static void put_be32(uint8_t *p, uint32_t v) {
        p[0] = (uint8_t) (v >> 24);
        p[1] = (uint8_t) (v >> 16);
        p[2] = (uint8_t) (v >> 8);
        p[3] = (uint8_t) v;
}

static uint32_t get_be32(const uint8_t *p) {
        return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}

void keyring_pointer_pack(const KeyringPointer *p, uint8_t ret[KEYRING_POINTER_BYTES]) {
        ret[0] = KEYRING_POINTER_VERSION;
        ret[1] = (uint8_t) p->alg;
        ret[2] = ret[3] = 0;
        memcpy(ret + 4, p->group_id, KEYRING_GROUP_ID_BYTES);
        put_be32(ret + 20, p->active);
        put_be32(ret + 24, p->pending);
}

int keyring_pointer_unpack(const void *data, size_t size, KeyringPointer *ret) {
        const uint8_t *b = data;
        KeyringPointer p = {};

        /* Version first: a newer helper may make the payload longer. */
        if (size < 1)
                return -EBADMSG;
        if (b[0] != KEYRING_POINTER_VERSION)
                return -EPROTONOSUPPORT;
        if (size != KEYRING_POINTER_BYTES || b[2] != 0 || b[3] != 0)
                return -EBADMSG;
        p.alg = (CryptAlg) b[1];
        if (!crypt_alg_to_string(p.alg))
                return -EBADMSG;
        memcpy(p.group_id, b + 4, KEYRING_GROUP_ID_BYTES);
        p.active = get_be32(b + 20);
        p.pending = get_be32(b + 24);
        if (p.active == 0 || p.pending == p.active)
                return -EBADMSG;
        *ret = p;
        return 0;
}

const char *keyring_runtime_dir(void) {
        const char *e = getenv(KEYRING_RUNTIME_DIR_ENV);

        /* A relative path would depend on the caller's cwd; ignore it rather than guess. */
        if (e && e[0] == '/')
                return e;
        return KEYRING_RUNTIME_DIR_DEFAULT;
}

static int file_name(const char *group, const char *suffix, char ret[KEYRING_FILE_NAME_MAX]) {
        if (!keyring_group_name_is_valid(group))
                return -EINVAL;
        snprintf(ret, KEYRING_FILE_NAME_MAX, "%s%s", group, suffix);
        return 0;
}

int keyring_serial_file_name(const char *group, char ret[KEYRING_FILE_NAME_MAX]) {
        return file_name(group, KEYRING_SERIAL_FILE_SUFFIX, ret);
}

int keyring_uids_file_name(const char *group, char ret[KEYRING_FILE_NAME_MAX]) {
        return file_name(group, KEYRING_UIDS_FILE_SUFFIX, ret);
}

int keyring_epoch_file_name(const char *group, char ret[KEYRING_FILE_NAME_MAX]) {
        return file_name(group, KEYRING_EPOCH_FILE_SUFFIX, ret);
}

int keyring_grants_file_name(const char *group, char ret[KEYRING_FILE_NAME_MAX]) {
        return file_name(group, KEYRING_GRANTS_FILE_SUFFIX, ret);
}

int keyring_serial_parse(const char *s, size_t size, int32_t *ret) {
        uint32_t v;
        int r;

        if (size < 2 || s[size - 1] != '\n')
                return -EBADMSG;
        r = keyring_parse_u32(s, size - 1, &v);
        if (r < 0 || v == 0 || v > INT32_MAX)
                return -EBADMSG;
        *ret = (int32_t) v;
        return 0;
}
