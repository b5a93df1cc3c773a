/* SPDX-License-Identifier: MIT */
/* Where dkm keys live in the kernel: descriptions, permission masks, the pointer payload, /run files. Pure. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "crypto.h"
#include "macro.h"

/* Shared by the helper that installs keys and the client library that finds them, so both
 * agree on every name without either including the other (and without keyutils here). */

#define KEYRING_GROUP_NAME_MAX 64U
#define KEYRING_GROUP_ID_BYTES 16U
#define KEYRING_GROUP_ID_HEX   (2U * KEYRING_GROUP_ID_BYTES)
/* Longest description: "dkm:" + 64-char group name + ":active", plus NUL, with room. */
#define KEYRING_DESC_MAX 96U

/* Group keyring: type "keyring", "dkm:<group>". Generation key: type "user",
 * "dkm:<group-id-hex>:<generation>". Active pointer: type "user", "dkm:<group>:active".
 * The registry that anchors group keyrings in root's user keyring is "dkm:.registry"; a
 * group name never starts with '.', so it cannot collide with a group keyring. */
#define KEYRING_DESC_PREFIX   "dkm:"
#define KEYRING_REGISTRY_DESC "dkm:.registry"
/* The helper's private staging keyring, in its own thread keyring. */
#define KEYRING_STAGING_DESC   "dkm:.staging"
#define KEYRING_POINTER_SUFFIX ":active"

/* On-demand generations: a client that finds no "dkm:<group-id-hex>:<n>" calls
 * request_key("user", desc, KEYRING_REQUEST_CALLOUT, 0). The request-key handler loads the
 * real key into the group keyring (with a timeout) and answers with a key whose payload is
 * KEYRING_REQUEST_MARKER (never KEYRING_KEY_BYTES long, never secret): the client then
 * searches for the real key again through the group keyring. */
#define KEYRING_REQUEST_CALLOUT "dkm"
#define KEYRING_REQUEST_MARKER  "dkm-loaded"

/* 0xPPUUGGOO: possessor, owner (uid 0), group (the key group's gid), other.
 * Generation and pointer keys: possessor view; owner view|write|search|link|setattr, no read;
 * group view|read|search; other nothing. The possessor byte stays view-only because
 * possession plus search grants read regardless of every other bit. */
#define KEYRING_PERM_KEY 0x013d0b00U
/* Group keyring: as above, but the owner (the helper) may also read (list) it. */
#define KEYRING_PERM_GROUP 0x013f0b00U
/* Registry: owner view|read|write|link|setattr and no search anywhere, so a root process
 * whose session reaches root's user keyring does not come to possess the group keyrings
 * (possession only propagates through searchable keyrings). */
#define KEYRING_PERM_REGISTRY 0x01370000U

#define KEYRING_KEY_BYTES CRYPT_KEY_BYTES

/* Break-glass grants (docs/KEYRING.md, "Grants"): a keyring "dkm:<group>" holding copies of
 * the group's pointer and generation keys, linked into one person's user keyring only. Every
 * key and the keyring are owned by that person's uid (the owner byte is the only one that can
 * name one uid without a Unix group) and by gid 0 (the helper's group, through which it keeps
 * the right to revoke them), and all carry the grant's kernel timeout.
 * Keys: possessor view; owner (the grantee) view|read|search, no write, link or setattr (it
 * cannot extend the timeout, change the mask, or link the key anywhere); group (gid 0)
 * view|setattr (revoke; no search, so not even a gid-0 process comes to possess them); other
 * nothing. Keyring: the same, but gid 0 may also read (list) it. A process can only make a key
 * with gid 0 if it runs with gid 0, so the client trusts a key owned by its own uid only with
 * gid 0 and exactly these masks. */
#define KEYRING_PERM_GRANT_KEY  0x010b2100U
#define KEYRING_PERM_GRANT_RING 0x010b2300U
/* The grant keyring while the helper links it into the grantee's user keyring: gid 0 may link. */
#define KEYRING_PERM_GRANT_RING_PLACING 0x010b3300U
/* Longest grant the helper makes: a break-glass grant is meant to be short. */
#define KEYRING_GRANT_SECONDS_MAX (31U * 24U * 3600U)


/* Active pointer payload (big-endian, fixed size):
 *   0 version (1) | 1 algorithm (CryptAlg) | 2..3 reserved (0) | 4..19 group id |
 *   20..23 active generation | 24..27 pending generation (0 = none) */
#define KEYRING_POINTER_VERSION 1U
#define KEYRING_POINTER_BYTES   28U

typedef struct KeyringPointer {
        CryptAlg alg;
        uint8_t group_id[KEYRING_GROUP_ID_BYTES];
        uint32_t active;
        uint32_t pending; /* 0 = none */
} KeyringPointer;

/* Runtime files: <dir>/<group>.keyring holds the group keyring's serial ("123\n", mode 0640,
 * root:<gid>) for services without a fixed uid; <dir>/<group>.uids the uids it is linked to. */
#define KEYRING_RUNTIME_DIR_DEFAULT "/run/dkm"
#define KEYRING_RUNTIME_DIR_ENV     "DKM_RUNTIME_DIR"
#define KEYRING_SERIAL_FILE_SUFFIX  ".keyring"
#define KEYRING_UIDS_FILE_SUFFIX    ".uids"
#define KEYRING_FILE_NAME_MAX       (KEYRING_GROUP_NAME_MAX + 16U)

/* <dir>/<group>.epoch: a u64 in host byte order (mode 0640, root:<gid>) that the helper bumps
 * in place after every load, retire and unload of the group. libdkm maps it read-only and
 * compares it with the value it last validated against, so its key cache notices a change
 * without making a system call (docs/LIBDKM.md). */
#define KEYRING_EPOCH_FILE_SUFFIX ".epoch"
#define KEYRING_EPOCH_BYTES       8U

/* <dir>/<group>.grants (0600 root:root): one "<uid> <keyring serial> <expiry, wall-clock
 * seconds>\n" line per grant keyring the helper made, ascending by uid then serial, so that
 * revoke-grant, retire, unload and status find them (they live in the grantees' user keyrings,
 * which nothing else lists). */
#define KEYRING_GRANTS_FILE_SUFFIX ".grants"

/* [a-z0-9][a-z0-9_.-]{0,63}: the store's rule, repeated here so the keyring layer does not
 * depend on the store. */
bool keyring_group_name_is_valid(const char *name);

void keyring_group_id_to_hex(const uint8_t id[KEYRING_GROUP_ID_BYTES], char ret[KEYRING_GROUP_ID_HEX + 1]);
/* Exactly 32 lowercase hex digits (size bytes at s, no NUL needed). */
int keyring_group_id_from_hex(const char *s, size_t size, uint8_t ret[KEYRING_GROUP_ID_BYTES]) _warn_unused_result_;

/* Strict decimal u32 of size bytes: digits only, no sign, no leading zero (but "0"). */
int keyring_parse_u32(const char *s, size_t size, uint32_t *ret) _warn_unused_result_;

/* -EINVAL for an invalid group name. */
int keyring_group_desc(const char *group, char ret[KEYRING_DESC_MAX]) _warn_unused_result_;
int keyring_pointer_desc(const char *group, char ret[KEYRING_DESC_MAX]) _warn_unused_result_;
/* -EINVAL for generation 0. */
int keyring_generation_desc(const uint8_t id[KEYRING_GROUP_ID_BYTES], uint32_t generation,
                            char ret[KEYRING_DESC_MAX]) _warn_unused_result_;
/* -EINVAL unless desc is exactly a generation key description. */
int keyring_generation_desc_parse(const char *desc, uint8_t ret_id[KEYRING_GROUP_ID_BYTES],
                                  uint32_t *ret_generation) _warn_unused_result_;

void keyring_pointer_pack(const KeyringPointer *p, uint8_t ret[KEYRING_POINTER_BYTES]);
/* -EPROTONOSUPPORT other version; -EBADMSG wrong size, reserved bits, generations or algorithm. */
int keyring_pointer_unpack(const void *data, size_t size, KeyringPointer *ret) _warn_unused_result_;

/* $DKM_RUNTIME_DIR if set to an absolute path, else /run/dkm. */
const char *keyring_runtime_dir(void);
int keyring_serial_file_name(const char *group, char ret[KEYRING_FILE_NAME_MAX]) _warn_unused_result_;
int keyring_uids_file_name(const char *group, char ret[KEYRING_FILE_NAME_MAX]) _warn_unused_result_;
int keyring_epoch_file_name(const char *group, char ret[KEYRING_FILE_NAME_MAX]) _warn_unused_result_;
int keyring_grants_file_name(const char *group, char ret[KEYRING_FILE_NAME_MAX]) _warn_unused_result_;
/* The serial file's content: a positive decimal serial and one newline. */
int keyring_serial_parse(const char *s, size_t size, int32_t *ret) _warn_unused_result_;
