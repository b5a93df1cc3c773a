/* SPDX-License-Identifier: MIT */
/* The group file: one key group, its wrapped KEK and every generation, as strict checksummed text. Pure. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "kvfile.h"
#include "store.h"

#define GROUP_FILE_FORMAT 1

/* Parse a whole group file. expected_name (NULL: no check) is the name the file is stored under.
 * -EBADMSG with e describing the first problem; -EPROTONOSUPPORT for a newer format version. */
int group_file_parse(const char *data, size_t size, const char *expected_name, StoreGroup **ret, KvError *e)
        _warn_unused_result_;

/* The canonical text of g, checksum line included; group_file_parse() accepts it back unchanged. */
int group_file_format(const StoreGroup *g, char **ret, size_t *ret_size) _warn_unused_result_;

/* A purged group's KEK is destroyed: zero bytes in memory, "kek=-" in the file (only where every
 * generation is retired). */
bool group_kek_destroyed(const StoreGroup *g);

/* The approval levels' value: "GID GID ..." in level order, each gid once, at most
 * STORE_APPROVAL_LEVELS_MAX; empty for none. Shared by group files and store.policy. */
int group_file_parse_approval_levels(const char *v, gid_t levels[static STORE_APPROVAL_LEVELS_MAX], uint32_t *ret_n,
                                     unsigned line, KvError *e) _warn_unused_result_;
void group_file_format_approval_levels(KvBuf *b, const gid_t *levels, uint32_t n);
/* The same rules for levels in memory: at most STORE_APPROVAL_LEVELS_MAX, no (gid_t) -1, each gid
 * once. 0 or -EINVAL. */
int group_file_check_approval_levels(const gid_t *levels, size_t n);

/* Append a zeroed generation slot to g; the pointer is valid until the next append. */
int group_file_append_generation(StoreGroup *g, StoreGeneration **ret) _warn_unused_result_;
