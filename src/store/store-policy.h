/* SPDX-License-Identifier: MIT */
/* STATE/store.policy: the store-wide policy as strict checksummed text. Parse and format are pure. */
#pragma once

#include <stddef.h>

#include "kvfile.h"
#include "store.h"

#define STORE_POLICY_FILE_FORMAT 1

/* Parse a whole store.policy. -EBADMSG with e describing the first problem (a value out of
 * store_policy_check()'s range included); -EPROTONOSUPPORT for a newer format version. */
int store_policy_file_parse(const char *data, size_t size, StorePolicy *ret, KvError *e) _warn_unused_result_;

/* The canonical text of p, checksum line included; -EINVAL if p fails store_policy_check(). */
int store_policy_file_format(const StorePolicy *p, char **ret, size_t *ret_size) _warn_unused_result_;
