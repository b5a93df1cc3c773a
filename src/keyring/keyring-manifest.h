/* SPDX-License-Identifier: MIT */
/* The load manifest: what one key group should look like in the kernel. Pure parser and writer. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "crypto.h"
#include "keyring-names.h"
#include "macro.h"
#include "secret.h"

/* The helper reads this on stdin (never argv or env: it carries keys). Format, one item per
 * line, fields separated by one space, every line ending in '\n', in this order:
 *
 *   dkm-keyring-manifest 1
 *   group NAME
 *   id GROUP-ID              32 lowercase hex digits
 *   gid GID
 *   algorithm ALG            xchacha20-poly1305 | aes256-gcm
 *   member UID               0..KEYRING_MANIFEST_MEMBERS_MAX lines, strictly ascending, not 0
 *   active N
 *   pending N                0 = none
 *   generation N STATE KEY   1..KEYRING_MANIFEST_GENERATIONS_MAX lines, strictly ascending;
 *                            STATE active|pending|archived; KEY 64 lowercase hex digits
 *   end
 *
 * Nothing may follow "end"; its absence means the input was truncated. */
#define KEYRING_MANIFEST_MAGIC           "dkm-keyring-manifest 1"
#define KEYRING_MANIFEST_MAX             (64U * 1024U)
#define KEYRING_MANIFEST_LINE_MAX        256U
#define KEYRING_MANIFEST_MEMBERS_MAX     1024U
#define KEYRING_MANIFEST_GENERATIONS_MAX 64U

/* Only generations that have a key; a retired generation is simply not listed. */
typedef enum KeyringGenState {
        KEYRING_GEN_PENDING,
        KEYRING_GEN_ACTIVE,
        KEYRING_GEN_ARCHIVED,
} KeyringGenState;

const char *keyring_gen_state_to_string(KeyringGenState s);
int keyring_gen_state_from_string(const char *s, size_t size, KeyringGenState *ret) _warn_unused_result_;

typedef struct KeyringManifestGeneration {
        uint32_t number;
        KeyringGenState state;
        Secret *key; /* KEYRING_KEY_BYTES */
} KeyringManifestGeneration;

typedef struct KeyringManifest {
        char group[KEYRING_GROUP_NAME_MAX + 1];
        uint8_t group_id[KEYRING_GROUP_ID_BYTES];
        gid_t gid;
        CryptAlg alg;
        uint32_t active;
        uint32_t pending; /* 0 = none */
        uid_t *members;   /* strictly ascending */
        size_t n_members;
        KeyringManifestGeneration *generations; /* strictly ascending by number */
        size_t n_generations;
} KeyringManifest;

/* Where parsing stopped: line is 1-based (0 = not tied to a line); message never quotes
 * input, so it can be printed even when the input held keys. */
typedef struct KeyringManifestError {
        unsigned line;
        const char *message;
} KeyringManifestError;

/* An empty manifest (no members, no generations, active 0) to fill in. -EINVAL bad name/gid. */
int keyring_manifest_new(const char *group, const uint8_t group_id[KEYRING_GROUP_ID_BYTES], gid_t gid, CryptAlg alg,
                         KeyringManifest **ret) _warn_unused_result_;
KeyringManifest *keyring_manifest_free(KeyringManifest *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(KeyringManifest *, keyring_manifest_free);
#define _cleanup_keyring_manifest_ _cleanup_(keyring_manifest_freep)

/* Append in ascending order (-EINVAL otherwise, -E2BIG beyond the limits). The key is copied. */
int keyring_manifest_add_member(KeyringManifest *m, uid_t uid) _warn_unused_result_;
int keyring_manifest_add_generation(KeyringManifest *m, uint32_t number, KeyringGenState state,
                                    const Secret *key) _warn_unused_result_;

/* The rules the parser enforces beyond syntax: one active generation named by "active",
 * "pending" naming a pending generation exactly when there is one, valid ids. */
int keyring_manifest_validate(const KeyringManifest *m, KeyringManifestError *error) _warn_unused_result_;

/* Strict parse of size bytes (not NUL-terminated). Keys are decoded straight into Secret
 * buffers. -EBADMSG malformed (error filled), -E2BIG over KEYRING_MANIFEST_MAX, -ENOMEM. */
int keyring_manifest_parse(const char *text, size_t size, KeyringManifest **ret,
                           KeyringManifestError *error) _warn_unused_result_;

/* The canonical text of a valid manifest, in a Secret because it holds key hex. */
int keyring_manifest_format(const KeyringManifest *m, Secret **ret) _warn_unused_result_;

const KeyringManifestGeneration *keyring_manifest_find_generation(const KeyringManifest *m, uint32_t number);
bool keyring_manifest_has_member(const KeyringManifest *m, uid_t uid);
