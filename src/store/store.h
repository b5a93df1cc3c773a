/* SPDX-License-Identifier: MIT */
/* The embedded key store: a directory of key groups whose generations are wrapped under
 * per-group key-encryption keys, themselves wrapped under a root key that protectors unlock. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "crypto.h"
#include "macro.h"
#include "secret.h"

#define STORE_FORMAT_VERSION 1
#define STORE_GROUP_ID_BYTES 16U
#define STORE_GROUP_NAME_MAX 64U
#define STORE_PROTECTOR_NAME_MAX 64U
#define STORE_APPROVAL_LEVELS_MAX 8U    /* approval levels of a break-glass request */
#define STORE_HOT_WINDOW_MAX 62U        /* the helper's manifest holds 64 generations: active, pending, these */
#define STORE_HOT_WINDOW_DEFAULT 2U

/* Wire values in store files; never renumber. */
typedef enum GenerationState {
        GENERATION_PENDING = 0,  /* loaded everywhere, not yet used to encrypt */
        GENERATION_ACTIVE = 1,   /* encrypts and decrypts; at most one per group */
        GENERATION_ARCHIVED = 2, /* decrypt only */
        GENERATION_RETIRED = 3,  /* key destroyed; metadata kept as a tombstone */
} GenerationState;

const char *generation_state_to_string(GenerationState s);
int generation_state_from_string(const char *s, GenerationState *ret);

typedef struct StoreGeneration {
        uint32_t number; /* 1, 2, 3, ... never reused */
        GenerationState state;
        uint64_t created_usec; /* CLOCK_REALTIME microseconds; 0 = not yet */
        uint64_t activated_usec;
        uint64_t archived_usec;
        uint64_t retired_usec;
        bool has_key; /* false for a retired tombstone */
        uint8_t wrapped_key[CRYPT_WRAPPED_KEY_BYTES];
} StoreGeneration;

/* How a group is run: kept in its file, set by dkmd's SetPolicy and the groups.d drop-ins. */
typedef struct StoreGroupPolicy {
        uint64_t rollover_period_usec;   /* 0 = manual rollover only */
        uint64_t propagation_delay_usec; /* a scheduled generation is loaded this long before it encrypts */
        uint32_t hot_window;             /* archived generations kept in the kernel; older ones on demand */
        bool allow_human_members;        /* load even if a login user is a member (logged each time) */
        /* Break-glass (docs/POLICY.md): the approver Unix group of each level, in order. None: no
         * access requests, and no retire while retire_needs_approval. */
        gid_t approval_levels[STORE_APPROVAL_LEVELS_MAX];
        uint32_t n_approval_levels;
        uint64_t max_grant_usec;       /* the longest grant a request may ask for */
        uint64_t request_timeout_usec; /* a request not fully approved by then expires */
        bool retire_needs_approval;    /* retire goes through the approval flow */
} StoreGroupPolicy;

#define STORE_MAX_GRANT_DEFAULT_USEC (3600ULL * 1000000ULL)          /* 1 h */
#define STORE_REQUEST_TIMEOUT_DEFAULT_USEC (86400ULL * 1000000ULL)   /* 24 h */
#define STORE_GROUP_POLICY_DEFAULT                                                                         \
        ((StoreGroupPolicy) { .hot_window = STORE_HOT_WINDOW_DEFAULT,                                      \
                              .max_grant_usec = STORE_MAX_GRANT_DEFAULT_USEC,                              \
                              .request_timeout_usec = STORE_REQUEST_TIMEOUT_DEFAULT_USEC,                  \
                              .retire_needs_approval = true })

/* -EINVAL if a field is out of range: hot window above STORE_HOT_WINDOW_MAX, more than
 * STORE_APPROVAL_LEVELS_MAX levels, a level gid of -1, the same gid at two levels, a zero
 * max grant or request timeout. */
int store_group_policy_check(const StoreGroupPolicy *p) _warn_unused_result_;

typedef struct StoreGroup {
        char *name;
        uint8_t id[STORE_GROUP_ID_BYTES]; /* random, fixed at creation, named in every ciphertext */
        gid_t gid;
        CryptAlg alg;
        StoreGroupPolicy policy;
        uint8_t wrapped_kek[CRYPT_WRAPPED_KEY_BYTES];
        StoreGeneration *generations; /* ascending by number */
        size_t n_generations;
} StoreGroup;

StoreGroup *store_group_free(StoreGroup *g);
DEFINE_TRIVIAL_CLEANUP_FUNC(StoreGroup *, store_group_free);
#define _cleanup_store_group_ _cleanup_(store_group_freep)

/* Lookups on a loaded group; NULL when absent. */
const StoreGeneration *store_group_find_generation(const StoreGroup *g, uint32_t number);
const StoreGeneration *store_group_active_generation(const StoreGroup *g);

/* Group names: [a-z0-9][a-z0-9_.-]{0,63}, as they appear in file names and keyring descriptions. */
bool store_group_name_is_valid(const char *name);

typedef struct Store Store;

/* Create a new store in dir (created 0700 if missing; an existing dir must be 0700 and ours).
 * -EEXIST if dir already holds a store or any group file; protectors left by an interrupted
 * init (no format file, no groups) are replaced. With passphrase NULL the first protector is a
 * 0600 key file ("local"); otherwise an Argon2id passphrase protector ("passphrase").
 * Returns the store unlocked. On failure store_last_error(NULL) says why. */
int store_init(const char *dir, const Secret *passphrase, Store **ret) _warn_unused_result_;

/* Open an existing store, locked (metadata readable, no keys). -ENOENT: not a store;
 * -EPROTONOSUPPORT: written by a newer dkm (format version); -EPERM: dir not 0700 or not ours;
 * -ELOOP: dir is a symlink; -EBADMSG: damaged. On failure store_last_error(NULL) says why. */
int store_open(const char *dir, Store **ret) _warn_unused_result_;
/* Create dir as a store with the given identity (a fleet's, STORE_ID_BYTES bytes) and no
 * protector: it stays locked until a protector is installed (store_protector_install()). -EEXIST
 * if dir is a store already. */
#define STORE_ID_SIZE 16U
int store_join(const char *dir, const uint8_t id[static STORE_ID_SIZE], Store **ret) _warn_unused_result_;
/* The store's identity (random at init; bound into every protector's AD). */
void store_id(const Store *s, uint8_t ret[static STORE_ID_SIZE]);
Store *store_free(Store *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(Store *, store_free);
#define _cleanup_store_ _cleanup_(store_freep)

const char *store_path(const Store *s);

/* After a failed call: "PATH: what is wrong", or NULL. Valid until the next call.
 * s == NULL: the message of this thread's last failed store_init()/store_open(), which have
 * no Store to keep it in. */
const char *store_last_error(const Store *s);

/* Unlock the root key with any one protector: every file and pkcs11 protector is tried (a pkcs11
 * one only with a PIN in DKM_PKCS11_PIN_FILE or DKM_PKCS11_PIN), then every passphrase protector
 * if passphrase is given. -ENOKEY if none unlocks it; store_last_error() names each and why. */
int store_unlock(Store *s, const Secret *passphrase) _warn_unused_result_;
bool store_is_unlocked(const Store *s);

typedef struct StoreProtectorInfo {
        char name[STORE_PROTECTOR_NAME_MAX + 1];
        char type[16]; /* "file", "passphrase" */
} StoreProtectorInfo;

/* Protector names follow the group name rule. */
bool store_protector_name_is_valid(const char *name);

/* Protectors: adding needs an unlocked store (-ENOKEY otherwise; -EEXIST name taken); removing
 * is refused (-EBUSY) unless another readable protector remains. List: sorted by name; a
 * protector file that cannot be parsed is listed with type "invalid". */
int store_protector_add_file(Store *s, const char *name) _warn_unused_result_;
int store_protector_add_passphrase(Store *s, const char *name, const Secret *passphrase) _warn_unused_result_;
/* A PKCS#11 protector (docs/CUSTOMER-KEY.md): uri = "pkcs11:token=LABEL;object=LABEL[?module-path=...]",
 * an existing non-extractable AES-256 key on the token. The PIN comes from the environment
 * (DKM_PKCS11_PIN_FILE, else DKM_PKCS11_PIN), here and at unlock. -EINVAL bad URI or key,
 * -ENOKEY no PIN, token, key or wrong PIN. */
int store_protector_add_pkcs11(Store *s, const char *name, const char *uri) _warn_unused_result_;
/* A TPM2 protector (docs/CUSTOMER-KEY.md): the protector key sealed to the TPM named by
 * DKM_TPM2_TCTI (default "device:/dev/tpmrm0"), under a primary key made from the standard
 * storage template each time; with n_pcrs > 0 also to the current values of those sha256 PCRs.
 * -EINVAL bad PCR list, -EHOSTDOWN no TPM. */
int store_protector_add_tpm2(Store *s, const char *name, const uint32_t *pcrs, size_t n_pcrs) _warn_unused_result_;
/* Fleet hosts (docs/FLEET.md): each host has an X25519 key pair, its private key in
 * protectors/host.x25519 (0600, never leaves the host). store_host_key() gives this host's public
 * key, making the pair first when create is true (-ENOENT otherwise). An "x25519" protector is the
 * protector key sealed (crypto_box_seal) to one host's public key: add_x25519 writes one for
 * public_key here (needs unlock); seal_for_host makes the same protector file text without
 * writing it (what a host that holds the root key publishes for another); install writes such a
 * text received for this host after checking that it parses, is of type x25519 and is sealed to
 * this host's public key (-EINVAL otherwise); it replaces a protector of that name (re-enrolment). */
#define STORE_X25519_KEY_BYTES 32U
int store_host_key(Store *s, bool create, uint8_t ret_public[static STORE_X25519_KEY_BYTES]) _warn_unused_result_;
int store_protector_add_x25519(Store *s, const char *name, const uint8_t public_key[static STORE_X25519_KEY_BYTES])
        _warn_unused_result_;
int store_protector_seal_for_host(Store *s, const char *name, const uint8_t public_key[static STORE_X25519_KEY_BYTES],
                                  char **ret_text, size_t *ret_size) _warn_unused_result_;
int store_protector_install(Store *s, const char *name, const char *text, size_t size) _warn_unused_result_;
int store_protector_remove(Store *s, const char *name) _warn_unused_result_;
int store_protector_list(Store *s, StoreProtectorInfo **ret, size_t *ret_n) _warn_unused_result_;

/* Why a protector can or cannot open the root key now. The unseal ops say it with their error:
 * -ENOKEY withdrawn, -EHOSTDOWN unavailable, -EACCES refused, -EKEYREJECTED PCR mismatch; any
 * other error counts as unavailable (it may pass). */
typedef enum StoreProtectorHealth {
        STORE_PROTECTOR_OK,           /* opens the root key (the one held, if the store is unlocked) */
        STORE_PROTECTOR_UNAVAILABLE,  /* its device cannot be reached (no token, no module, no TPM): try later */
        STORE_PROTECTOR_REFUSED,      /* the device refused the credential (wrong or locked PIN): retrying burns tries */
        STORE_PROTECTOR_PCR_MISMATCH, /* TPM2: the PCRs no longer match the protector's policy */
        STORE_PROTECTOR_WITHDRAWN,    /* the key is gone or no longer opens it (deleted HSM key, key file missing) */
        STORE_PROTECTOR_UNTESTED,     /* needs a passphrase; not tried */
        STORE_PROTECTOR_INVALID,      /* the protector file is damaged */
        _STORE_PROTECTOR_HEALTH_MAX,
} StoreProtectorHealth;

/* "ok", "unavailable", "pin-refused", "pcr-mismatch", "withdrawn", "untested", "invalid". */
const char *store_protector_health_to_string(StoreProtectorHealth h);

typedef struct StoreProtectorStatus {
        char name[STORE_PROTECTOR_NAME_MAX + 1];
        char type[16];
        StoreProtectorHealth health;
        char detail[256]; /* why, for anything but OK ("" then); never key material */
} StoreProtectorStatus;

/* Try every protector that needs no passphrase, now: one device round trip (and one PIN try) each,
 * key files first. Those named in skip (NULL-terminated, may be NULL) are not tried and come back
 * REFUSED ("not tried again after the PIN was refused"): the caller's way never to loop on a
 * wrong PIN. A locked store is unlocked by the first that opens it; on an unlocked one each
 * result is compared with the root key held (a different one is WITHDRAWN). Sorted by name.
 * Fails only on a store that cannot be listed, or -ENOMEM. */
int store_protector_check(Store *s, char *const *skip, StoreProtectorStatus **ret, size_t *ret_n)
        _warn_unused_result_;

/* Forget the root key held (the customer withdrew theirs): the store is locked again. */
void store_forget_root_key(Store *s);

/* Store-wide policy (STATE/store.policy, checksummed like a group file; absent: the default):
 * who approves store-wide changes (adding and removing protectors, purge) and how long a purge
 * waits after its last approval. Written by dkm-store (root on the host) only: no bus call can
 * weaken it. */
#define STORE_PURGE_DELAY_DEFAULT_USEC (7ULL * 86400ULL * 1000000ULL) /* 7 days, like AWS KMS's minimum */
#define STORE_PURGE_DELAY_MAX_USEC (30ULL * 86400ULL * 1000000ULL)    /* 30 days */
#define STORE_PURGE_DELAY_MIN_USEC 1000000ULL                         /* 1 s: tests and demos */
typedef struct StorePolicy {
        gid_t approval_levels[STORE_APPROVAL_LEVELS_MAX]; /* in order; none: protector changes need no
                                                           * approval, purge is refused */
        uint32_t n_approval_levels;
        uint64_t purge_delay_usec;
} StorePolicy;
#define STORE_POLICY_DEFAULT ((StorePolicy) { .purge_delay_usec = STORE_PURGE_DELAY_DEFAULT_USEC })

/* -EINVAL: more than STORE_APPROVAL_LEVELS_MAX levels, gid -1 or twice, delay out of range. */
int store_policy_check(const StorePolicy *p) _warn_unused_result_;
/* The default when store.policy does not exist; -EBADMSG damaged (store_last_error says how). */
int store_policy_load(Store *s, StorePolicy *ret) _warn_unused_result_;
int store_policy_save(Store *s, const StorePolicy *p) _warn_unused_result_;

/* Crypto-shred the store: a "purged" marker first, then every protector (and key file) removed,
 * every group's KEK and generation keys destroyed (groups stay as tombstones, every generation
 * retired), the root key forgotten. Works locked or unlocked; idempotent, so an interrupted purge
 * is finished by running it again. Afterwards store_unlock() and every protector add fail with
 * -ENOKEY ("purged at ..."). */
int store_purge(Store *s) _warn_unused_result_;
/* While a purge waits for its time dkmd suspends the store: STATE/suspended holds why, and
 * store_unlock() refuses (-ENOKEY, "suspended: WHY") for everyone but the Store that already holds
 * the root key, so neither the request-key upcall nor dkm-store brings a key back meanwhile.
 * Resume removes the marker. store_suspended(): > 0 with *ret_reason (may be NULL) if suspended. */
int store_suspend(Store *s, const char *reason) _warn_unused_result_;
int store_resume(Store *s) _warn_unused_result_;
int store_suspended(Store *s, char **ret_reason) _warn_unused_result_;
/* > 0 if the store was purged (*ret_usec: when, may be NULL), 0 if not, < 0 on a read error. */
int store_purged(Store *s, uint64_t *ret_usec) _warn_unused_result_;

/* Every mutation below takes the store's write lock, re-reads the group file under it (so
 * another writer's change is never lost), and commits with temp+fsync+rename+fsync dir.
 * Those that need the root key return -ENOKEY on a locked store. Bad names: -EINVAL. */

/* Creates the group with generation 1 active (policy NULL: STORE_GROUP_POLICY_DEFAULT). -EEXIST if
 * the name is taken. Needs unlock. */
int store_group_create(Store *s, const char *name, gid_t gid, CryptAlg alg, const StoreGroupPolicy *policy,
                       StoreGroup **ret) _warn_unused_result_;
/* -ENOENT unknown group; -EBADMSG corrupted file (store_last_error says which and how). */
int store_group_load(Store *s, const char *name, StoreGroup **ret) _warn_unused_result_;
int store_group_list(Store *s, char ***ret_names) _warn_unused_result_; /* sorted, NULL-terminated */
int store_group_set_policy(Store *s, const char *name, const StoreGroupPolicy *policy) _warn_unused_result_;

/* A fleet's group files (docs/FLEET.md). import: replace the group's file with text (the
 * directory's copy), if it parses as that group's file (-EBADMSG otherwise; the local file is left
 * as it was); no root key needed. export: the canonical text of the local file. */
int store_group_import(Store *s, const char *name, const char *text, size_t size) _warn_unused_result_;
/* A group file as a fleet publishes it (docs/FLEET.md, "Integrity"; store-fleet.c): seal appends
 * a last line "fleet-seal=HEX", a tag under a key derived from the root key over the group's name,
 * the directory revision it is published at and the text; open checks and removes it, giving the
 * group file (-EBADMSG: no seal, or one that does not match this fleet, name and revision). Both
 * need the store unlocked (-ENOKEY). */
int store_group_fleet_seal(Store *s, const char *name, uint64_t revision, const char *text, size_t size,
                           char **ret_text, size_t *ret_size) _warn_unused_result_;
int store_group_fleet_open(Store *s, const char *name, uint64_t revision, const char *sealed, size_t size,
                           char **ret_text, size_t *ret_size) _warn_unused_result_;
int store_group_export(Store *s, const char *name, char **ret_text, size_t *ret_size) _warn_unused_result_;
/* Remove the local file of a group the directory does not have (a create that could not be
 * published). Its keys go with it: only for a group that was never published nor loaded. */
int store_group_discard(Store *s, const char *name) _warn_unused_result_;

/* Add the next generation as pending; durable before return. Needs unlock. */
int store_generation_add(Store *s, const char *group, uint32_t *ret_number) _warn_unused_result_;
/* Pending -> active; the previous active becomes archived. -EINVAL if not pending. */
int store_generation_activate(Store *s, const char *group, uint32_t number) _warn_unused_result_;
/* add + activate, two commits, so the new key is durable before it is used. */
int store_rollover(Store *s, const char *group, uint32_t *ret_number) _warn_unused_result_;
/* Pending -> archived. The active generation is refused (-EBUSY: roll over instead);
 * -EALREADY already archived; -EKEYREVOKED retired. */
int store_generation_archive(Store *s, const char *group, uint32_t number) _warn_unused_result_;
/* Destroys the wrapped key (crypto-shredding); keeps a tombstone. Active refused (-EBUSY);
 * -EALREADY already retired. No copy of the wrapped key stays in the state directory. */
int store_generation_retire(Store *s, const char *group, uint32_t number) _warn_unused_result_;

/* The plaintext generation key, in secret memory. Needs unlock. -ENOENT unknown number;
 * -EKEYREVOKED retired; -EBADMSG the wrapped key fails to authenticate. */
int store_generation_unwrap(Store *s, const StoreGroup *g, uint32_t number, Secret **ret) _warn_unused_result_;
