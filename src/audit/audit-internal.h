/* SPDX-License-Identifier: MIT */
/* Shared between the audit writer, verifier and reader: file names, listing, bounded reads. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "audit.h"

#define AUDIT_FILE_NAME_MAX   32U
#define AUDIT_FILE_NUMBER_MAX 999999U
/* Reading bound for one log file; dkmd rotates long before (AuditOptions.max_file_size). */
#define AUDIT_FILE_READ_MAX (256U << 20)

/* "audit-NNNNNN.log" for n in 1..AUDIT_FILE_NUMBER_MAX. */
void audit_file_name(unsigned n, char ret[AUDIT_FILE_NAME_MAX]);
/* n if name is exactly an audit file name, else 0. */
unsigned audit_file_number(const char *name);
/* The numbers of the audit files in dir_fd, ascending. */
int audit_list_files(int dir_fd, unsigned **ret, size_t *ret_n) _warn_unused_result_;
/* Reads a whole regular file from fd's current offset, at most max bytes (-EFBIG beyond). */
int audit_read_fd(int fd, size_t max, char **ret, size_t *ret_size) _warn_unused_result_;
