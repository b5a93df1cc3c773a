/* SPDX-License-Identifier: MIT */
/* Client-side key lookups for libdkm: group keyrings, pointers, generation keys, epoch files. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "keyring-names.h"
#include "macro.h"
#include "secret.h"

/* Runs with the caller's own credentials: no privilege, no capability. What a caller may see
 * is exactly what the kernel's key permissions grant its uid and groups (docs/KEYRING.md).
 * Errors are negative errno values with one meaning each, shared by every lookup:
 *   -EACCES       the kernel (or the 0640 runtime file) refused: the caller lacks the gid
 *   -ENOKEY       nothing of that name is visible (not loaded, unloaded, invalidated)
 *   -EKEYREVOKED  the key was revoked
 *   -EKEYEXPIRED  the key's timeout ran out (on-demand and break-glass keys have one)
 *   -EBADMSG      a key of ours with a payload of the wrong size or format
 *   -EINVAL       an invalid group name or generation 0 */

typedef int32_t KeySerial;

/* $DKM_RUNTIME_DIR if it is an absolute path and the process is not set-id (secure_getenv),
 * else /run/dkm. */
const char *keyring_client_runtime_dir(void);

/* The keyring dkm:<group>: first the caller's user keyring (searched recursively, so it works
 * under systemd's KeyringMode=private), then the serial in <runtime_dir>/<group>.keyring for
 * services without a user keyring link (DynamicUser). Only a keyring owned by root with
 * exactly that description is accepted: a look-alike the caller's own uid made is ignored.
 * A break-glass grant's keyring (docs/KEYRING.md, "Grants") is the exception: owned by the
 * caller's uid, but with gid 0 and exactly KEYRING_PERM_GRANT_RING, as are its keys. When the
 * caller's user keyring holds a dead one, its error wins: -EKEYEXPIRED (the grant's timeout ran
 * out) or -EKEYREVOKED (the grant was revoked). */
int keyring_client_find_group(const char *runtime_dir, const char *group, KeySerial *ret_ring) _warn_unused_result_;

/* The pointer key dkm:<group>:active in ring, read and unpacked. */
int keyring_client_find_pointer(KeySerial ring, const char *group, KeySerial *ret_serial,
                                KeyringPointer *ret) _warn_unused_result_;
/* Read a pointer key again by serial (one system call). */
int keyring_client_read_pointer(KeySerial serial, KeyringPointer *ret) _warn_unused_result_;

/* The generation key dkm:<id-hex>:<generation>, searched for in ring (recursively). Only a
 * root-owned "user" key (or a grant's, as above) is accepted. */
int keyring_client_find_generation(KeySerial ring, const uint8_t id[KEYRING_GROUP_ID_BYTES], uint32_t generation,
                                   KeySerial *ret_key) _warn_unused_result_;

/* Ask the request-key upcall to load an archived generation into its group keyring
 * (request_key("user", "dkm:<id-hex>:<n>", KEYRING_REQUEST_CALLOUT, 0)). 0 when it answered
 * with the marker: search again. The upcall's refusals: -EKEYREVOKED the generation is
 * retired, -ENOKEY unknown (or no upcall installed), -EACCES refused for this caller. */
int keyring_client_request_generation(const uint8_t id[KEYRING_GROUP_ID_BYTES],
                                      uint32_t generation) _warn_unused_result_;

/* Read a generation key straight into the caller's secret memory (libdkm's locked key slots),
 * in one keyctl_read() (never keyctl_read_alloc, which would copy it through the heap); ret is
 * wiped and -EBADMSG returned unless it then holds exactly KEYRING_KEY_BYTES. */
int keyring_client_read_key_into(KeySerial serial, uint8_t ret[KEYRING_KEY_BYTES]) _warn_unused_result_;

/* Is the key still there and readable by us (one system call, no payload copied)? The same
 * errors as reading it. */
int keyring_client_check_key(KeySerial serial) _warn_unused_result_;

/* Names of the groups a caller might see: "dkm:<name>" keyrings linked into its user keyring,
 * and <runtime_dir>/<name>.keyring files. Candidates only: whether the caller may use one is
 * for keyring_client_find_group() to say. A NULL-terminated malloc'd list, possibly empty. */
int keyring_client_list_groups(const char *runtime_dir, char ***ret) _warn_unused_result_;

/* When the runtime directory last changed (a group loaded or unloaded publishes or removes
 * a file there): lets a caller skip a rescan that would find nothing new. Zero if unknown. */
void keyring_client_runtime_stamp(const char *runtime_dir, struct timespec *ret);

/* A read-only mapping of <runtime_dir>/<group>.epoch (KEYRING_EPOCH_FILE_SUFFIX). */
typedef struct KeyringEpoch {
        const uint64_t *value; /* NULL when not mapped */
        dev_t dev;
        ino_t ino;
} KeyringEpoch;

/* Map the group's epoch file (root-owned, regular, KEYRING_EPOCH_BYTES). -ENOENT if absent,
 * -EACCES if not readable by us. */
int keyring_client_epoch_map(const char *runtime_dir, const char *group, KeyringEpoch *ret) _warn_unused_result_;
void keyring_client_epoch_unmap(KeyringEpoch *e);
/* Does the mapping still show the file now at that path (it is replaced, never truncated, when
 * the helper recreates it)? One stat(). */
bool keyring_client_epoch_is_current(const char *runtime_dir, const char *group, const KeyringEpoch *e);

static inline uint64_t keyring_client_epoch_read(const KeyringEpoch *e) {
        return e->value ? __atomic_load_n(e->value, __ATOMIC_ACQUIRE) : 0;
}

/* How many key-service system calls (keyctl, request_key) this process has made through this
 * module: for tests that prove the cache's warm path makes none. */
uint64_t keyring_client_syscalls(void);
