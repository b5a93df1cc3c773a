/* SPDX-License-Identifier: MIT */
/* Installs key groups into kernel keyrings, places them for their members, retires and unloads them. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "keyring-manifest.h"
#include "keyring-names.h"
#include "macro.h"

/* The only module that talks to the kernel key service (keyutils.h stays inside keyring.c).
 * Callers run as root (real and effective uid 0): keys are owned by uid 0 and anchored in
 * root's user keyring. Loading needs CAP_SETGID (keys get the group's gid through a brief
 * setfsgid(), so CAP_SYS_ADMIN is not needed) and CAP_SETUID (a forked child takes the
 * member's real uid to reach its user keyring); unload and status need CAP_SETUID; retire
 * needs nothing beyond being uid 0. */

typedef int32_t KeySerial;

/* Why the last call failed, so a tool can exit with a status per kind. */
typedef enum KeyringFailure {
        KEYRING_FAILURE_NONE,
        KEYRING_FAILURE_INVALID,       /* bad argument (group name, generation, manifest) */
        KEYRING_FAILURE_KERNEL,        /* a keyctl call failed */
        KEYRING_FAILURE_RUNTIME,       /* the runtime directory or a file in it */
        KEYRING_FAILURE_USER_LINK,     /* linking into or unlinking from a member's user keyring */
        KEYRING_FAILURE_NOT_LOADED,    /* the group has no keyring here */
        KEYRING_FAILURE_NO_GENERATION, /* the generation is not in the group keyring */
        KEYRING_FAILURE_BUSY,          /* refused: that generation is the active one */
} KeyringFailure;

typedef struct Keyring Keyring;

/* Opens (creating 0755 if missing) the runtime directory, which must be a root-owned
 * directory nobody else can write, takes an exclusive flock on it (held until
 * keyring_free, so helpers run one at a time), and makes a private staging keyring in the
 * calling thread's keyring. runtime_dir NULL: keyring_runtime_dir(). */
int keyring_new(const char *runtime_dir, Keyring **ret) _warn_unused_result_;
/* Invalidates the staging keyring, so a key left there by a failed call dies with it. */
Keyring *keyring_free(Keyring *k);
DEFINE_TRIVIAL_CLEANUP_FUNC(Keyring *, keyring_free);
#define _cleanup_keyring_ _cleanup_(keyring_freep)

/* After a failed call: one line naming what failed and why (never key material). */
const char *keyring_last_error(const Keyring *k);
KeyringFailure keyring_last_failure(const Keyring *k);

/* Make the kernel match the manifest, idempotently (safe to re-run after a crash):
 * create the group keyring if missing, add missing generation keys, update the pointer key
 * (after the keys it names exist), invalidate generations no longer listed, link the group
 * keyring into each member's user keyring and unlink it from uids no longer listed, then
 * publish <runtime>/<group>.keyring. */
int keyring_group_load(Keyring *k, const KeyringManifest *m, KeySerial *ret_ring) _warn_unused_result_;

/* Unlink from the members, invalidate every key and the group keyring, remove the runtime
 * files. KEYRING_FAILURE_NOT_LOADED (-ENOENT) if there was nothing to remove. */
int keyring_group_unload(Keyring *k, const char *group) _warn_unused_result_;

/* Invalidate one generation key: gone from every keyring at once, reads fail immediately.
 * The active generation is refused (-EBUSY); a retired pending generation is cleared from
 * the pointer first. */
int keyring_generation_retire(Keyring *k, const char *group, uint32_t generation) _warn_unused_result_;

/* On demand (the request-key handler), for a group already loaded here whose keyring belongs
 * to group_id and has gid (KEYRING_FAILURE_NOT_LOADED, -ENOENT, otherwise):
 * keyring_generation_find: 0 if a live key of that generation is in the group keyring,
 * KEYRING_FAILURE_NO_GENERATION (-ENOKEY) if not.
 * keyring_generation_load_timed: add it, staged and moved like load does, with a kernel timeout
 * of timeout_sec seconds, so it drops out of the kernel after use (a later load invalidates
 * it unless its manifest lists it, which clears the timeout). Returns 1 if it added the key,
 * 0 if a live one was already there (left untouched: a hot key never gains a timeout).
 * Needs CAP_SETGID, like load. */
int keyring_generation_find(Keyring *k, const char *group, const uint8_t group_id[KEYRING_GROUP_ID_BYTES], gid_t gid,
                            uint32_t generation, KeySerial *ret_key) _warn_unused_result_;
int keyring_generation_load_timed(Keyring *k, const char *group, const uint8_t group_id[KEYRING_GROUP_ID_BYTES],
                                  gid_t gid, uint32_t generation, const Secret *key, unsigned timeout_sec,
                                  KeySerial *ret_key) _warn_unused_result_;

typedef struct KeyringKeyInfo {
        KeySerial serial;
        char type[16];
        uid_t uid;
        gid_t gid;
        uint32_t perm;
        char description[KEYRING_DESC_MAX];
        uint32_t generation; /* for generation keys, else 0 */
} KeyringKeyInfo;

typedef struct KeyringMemberLink {
        uid_t uid;
        bool linked; /* the uid's user keyring links the group keyring right now */
} KeyringMemberLink;

/* Serials, owners and permissions; never key bytes. */
typedef struct KeyringStatus {
        KeyringKeyInfo ring;
        bool has_pointer;
        KeyringKeyInfo pointer;
        bool pointer_valid;
        KeyringPointer pointer_value;
        KeyringKeyInfo *generations; /* ascending by number */
        size_t n_generations;
        size_t n_other; /* anything else linked into the group keyring */
        KeyringMemberLink *members;
        size_t n_members;
        KeySerial serial_file; /* content of <group>.keyring; 0 if missing or unreadable */
        struct KeyringGrant *grants; /* from <group>.grants, ascending by uid */
        size_t n_grants;
} KeyringStatus;

int keyring_group_status(Keyring *k, const char *group, KeyringStatus **ret) _warn_unused_result_;
KeyringStatus *keyring_status_free(KeyringStatus *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(KeyringStatus *, keyring_status_free);
#define _cleanup_keyring_status_ _cleanup_(keyring_status_freep)

/* Break-glass grants (docs/KEYRING.md, "Grants"). keyring_grant_create makes, for uid alone, a
 * keyring "dkm:<group>" holding copies of the manifest's pointer and generation keys, owned by
 * uid and gid 0 with KEYRING_PERM_GRANT_*, every one with a kernel timeout of seconds (so access
 * ends even if nothing else runs), built in the staging keyring and then linked into uid's user
 * keyring, where libdkm finds it as it finds a group keyring. A grant of the same group to the
 * same uid is replaced (the new keyring displaces the old one, which is then revoked). Refused
 * (KEYRING_FAILURE_INVALID): uid 0, a uid listed as a member in the manifest or linked to the
 * group keyring, seconds 0 or above KEYRING_GRANT_SECONDS_MAX. Needs CAP_SYS_ADMIN (keyctl_chown
 * to another uid), CAP_SETUID (the link), and gid 0.
 * keyring_grant_revoke: revoke (keyctl_revoke) every key and keyring of uid's grants of group at
 * once: reads then fail with EKEYREVOKED. KEYRING_FAILURE_NOT_LOADED (-ENOENT) if there is no
 * live grant. Needs gid 0 only. */
typedef enum KeyringGrantState {
        KEYRING_GRANT_LIVE,
        KEYRING_GRANT_EXPIRED,
        KEYRING_GRANT_REVOKED,
        KEYRING_GRANT_GONE, /* collected, or not a grant keyring any more */
} KeyringGrantState;

typedef struct KeyringGrant {
        uid_t uid;
        KeySerial ring;
        int64_t expires; /* wall-clock seconds (CLOCK_REALTIME) */
        KeyringGrantState state;
        size_t n_keys; /* live only */
} KeyringGrant;

const char *keyring_grant_state_to_string(KeyringGrantState s);

int keyring_grant_create(Keyring *k, const KeyringManifest *m, uid_t uid, unsigned seconds,
                         KeySerial *ret_ring) _warn_unused_result_;
int keyring_grant_revoke(Keyring *k, const char *group, uid_t uid) _warn_unused_result_;
/* Grants recorded for group, live or not (malloc'd array). Needs no capability. */
int keyring_grant_list(Keyring *k, const char *group, KeyringGrant **ret, size_t *ret_n) _warn_unused_result_;
