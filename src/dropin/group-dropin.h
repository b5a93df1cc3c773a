/* SPDX-License-Identifier: MIT */
/* Key-group policy drop-ins (groups.d): parse one file (pure) and load the directories (I/O). */
#pragma once

#include <stddef.h>

#include "crypto.h"
#include "macro.h"
#include "store.h"

/* Bigger is not a policy file; the bound also caps what a hostile file can cost. */
#define GROUP_DROPIN_SIZE_MAX (64U << 10)
#define GROUP_DROPIN_SUFFIX   ".conf"

typedef struct GroupDropin {
        char *name;              /* key group name: the file name without ".conf" */
        char *path;              /* the file it came from */
        char *unix_group;        /* UnixGroup= as written (a name or a numeric gid); dkmd resolves it */
        CryptAlg alg;            /* CRYPT_ALG_XCHACHA20_POLY1305 where the file is silent */
        StoreGroupPolicy policy; /* STORE_GROUP_POLICY_DEFAULT where the file is silent; approval
                                  * levels are filled in by dkmd from approval_groups */
        char *approval_groups[STORE_APPROVAL_LEVELS_MAX]; /* ApprovalGroups= as written, in order */
        size_t n_approval_groups;
} GroupDropin;

GroupDropin *group_dropin_free(GroupDropin *d);
DEFINE_TRIVIAL_CLEANUP_FUNC(GroupDropin *, group_dropin_free);
#define _cleanup_group_dropin_ _cleanup_(group_dropin_freep)

/* Frees each element and the array; accepts NULL. */
void group_dropin_free_array(GroupDropin **d, size_t n);

/* Parse one file's text (size bytes; need not be NUL-terminated). Pure: no I/O, no logging, so
 * fuzzable. path is used in messages and copied into ->path; name is the key group name.
 * 0 and *ret; -EBADMSG and *ret_error = malloc'd "PATH:LINE: what is wrong" (": LINE" left out
 * for whole-file problems); -ENOMEM. Nothing of a refused file is returned. */
int group_dropin_parse(const char *path, const char *name, const char *text, size_t size, GroupDropin **ret,
                       char **ret_error) _warn_unused_result_;

/* Every "*.conf" in dirs (NULL-terminated, highest priority first). For one file name the first
 * dir that has it wins, even when that file is then refused (an admin's broken override never
 * silently falls back to the vendor's file). A winning file that is empty or resolves to
 * /dev/null masks the name. Hidden files and other names are ignored. A missing dir is fine.
 * Problems (unreadable dir, file that is not regular after following symlinks, malformed file)
 * go to *ret_problems, one "PATH[:LINE]: what" each (NULL-terminated; NULL when none), and that
 * file is skipped. *ret: the groups sorted by name (NULL when none). 0 (problems or not), or
 * -ENOMEM. */
int group_dropin_load_dirs(const char *const *dirs, GroupDropin ***ret, size_t *ret_n,
                           char ***ret_problems) _warn_unused_result_;

/* The dirs dkmd reads, highest priority first: $DKM_GROUPS_DIRS (colon-separated; empty
 * components skipped; set but empty = no dirs) if set, else the built-in
 * SYSCONFDIR/dkm/groups.d, /run/dkm/groups.d, PREFIX/lib/dkm/groups.d. NULL-terminated. */
int group_dropin_dirs(char ***ret) _warn_unused_result_;
