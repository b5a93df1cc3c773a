/* SPDX-License-Identifier: MIT */
/* From the store to the kernel: which generations of a group belong in the kernel, for which
 * member uids, and handing that to dkm-keyring-helper over a pipe. */
#pragma once

#include <stddef.h>
#include <sys/types.h>

#include "keyring-manifest.h"
#include "store.h"

/* Archived generations kept hot (preloaded) besides the active and pending ones are each
 * group's policy (StoreGroupPolicy.hot_window); older ones are loaded on demand through the
 * request-key upcall. The store's limit must fit the helper's manifest. */
_Static_assert(STORE_HOT_WINDOW_MAX + 2U <= KEYRING_MANIFEST_GENERATIONS_MAX, "hot window must fit a manifest");

/* The uids of the group's members in the user database (supplementary members and users
 * whose primary group it is), ascending, without root. *ret is malloc'd (NULL when none). */
int loader_member_uids(gid_t gid, uid_t **ret, size_t *ret_n) _warn_unused_result_;

/* 1 and the name of the first member of gid that is a person (a shell listed in /etc/shells,
 * or a uid in login.defs' UID_MIN..UID_MAX), 0 if there is none. Same members as above. */
int loader_find_human_member(gid_t gid, char **ret_name) _warn_unused_result_;

/* The manifest for g: active, pending and the newest hot_window archived generations,
 * unwrapped from the (unlocked) store. */
int loader_build_manifest(Store *s, const StoreGroup *g, unsigned hot_window, const uid_t *members,
                          size_t n_members, KeyringManifest **ret) _warn_unused_result_;

/* Path of the helper: $DKM_KEYRING_HELPER, else the installed one. */
const char *loader_helper_path(void);

/* Run "dkm-keyring-helper ARGS..." with the manifest (if any) on its stdin through a pipe.
 * Returns the helper's exit status (>= 0), or a negative errno if it could not be run.
 * stdout of the helper is passed through to ours. */
int loader_run_helper(const KeyringManifest *m, char *const args[]) _warn_unused_result_;
