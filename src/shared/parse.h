/* SPDX-License-Identifier: MIT */
/* Parsing of small user-supplied values: numbers, durations, groups. Pure except group lookup. */
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include "macro.h"

/* Whole-string unsigned decimal; -EINVAL on junk, -ERANGE beyond max. */
int parse_uint64(const char *s, uint64_t max, uint64_t *ret) _warn_unused_result_;
int parse_uint32(const char *s, uint32_t *ret) _warn_unused_result_;

/* "90", "90s", "15min", "12h", "30d", "2w", "1d12h" into microseconds (bare number = seconds). */
int parse_duration_usec(const char *s, uint64_t *ret) _warn_unused_result_;

/* Format microseconds as the largest exact unit combination, e.g. "1d12h", "0". */
void format_duration_usec(uint64_t usec, char *buf, size_t size);

/* Numeric gid or a group name from the group database. -ENOENT if there is no such group. */
int parse_gid(const char *s, gid_t *ret) _warn_unused_result_;
