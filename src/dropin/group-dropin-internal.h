/* SPDX-License-Identifier: MIT */
/* What the drop-in parser shares with the directory loader: one message format, one name rule. */
#pragma once

#include "macro.h"

/* Sets *ret_error (if ret_error is not NULL) to "PATH:LINE: what" (line 0: "PATH: what"); bytes
 * of path that are control characters or not UTF-8 are written as \xHH, so a file name cannot
 * forge a log line. Returns -EBADMSG, or -ENOMEM. */
int dropin_error(char **ret_error, const char *path, unsigned line, const char *fmt, ...) _printf_(4, 5);

/* 0 if name is a valid key group name, else dropin_error() about path. */
int dropin_check_name(const char *path, const char *name, char **ret_error);
