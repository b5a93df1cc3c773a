/* SPDX-License-Identifier: MIT */
/* The group file: one key group, its wrapped KEK and every generation, as strict checksummed text. Pure. */
#pragma once

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

/* Append a zeroed generation slot to g; the pointer is valid until the next append. */
int group_file_append_generation(StoreGroup *g, StoreGeneration **ret) _warn_unused_result_;
