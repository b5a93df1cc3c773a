/* SPDX-License-Identifier: MIT */
/* dkmctl's human output: aligned tables with a header line (systemctl's look), times and gids. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "macro.h"

/* Cells are added left to right, top to bottom, after the header cells. */
typedef struct Table Table;

#define TABLE_COLUMNS_MAX 16

/* NULL when out of memory; more than TABLE_COLUMNS_MAX columns is a programmer error (abort). */
Table *table_new(size_t n_columns, const char *const *headers);
Table *table_free(Table *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(Table *, table_free);
#define _cleanup_table_ _cleanup_(table_freep)

int table_add(Table *t, const char *cell) _warn_unused_result_;
int table_addf(Table *t, const char *fmt, ...) _printf_(2, 3) _warn_unused_result_;
/* Columns two spaces apart, no trailing blanks; the header line only when header is true. */
void table_print(const Table *t, FILE *f, bool header);

#define FORMAT_MAX 64

/* Local time, ISO date order: "2025-07-01 12:00:00 CEST"; "-" for 0. */
const char *format_time_local(uint64_t usec, char buf[static FORMAT_MAX]);
/* From now: "in 29d 23h", "in 59min 59s", "now", "3min 2s ago" (the two largest units). */
const char *format_time_left(uint64_t usec, uint64_t now, char buf[static FORMAT_MAX]);
uint64_t now_realtime_usec(void);

/* UTC, for the audit log (its --since and --until read the same form): "2025-07-01 10:00:00 UTC". */
const char *format_time_utc(uint64_t usec, char buf[static FORMAT_MAX]);

/* The user database's name for uid; false if it has none. */
bool lookup_user(uint32_t uid, char buf[static FORMAT_MAX]);
/* "alice", or "1001" when the user database has no such uid. */
const char *format_user(uint32_t uid, char buf[static FORMAT_MAX]);

/* A copy of s that is safe on a terminal: control characters (C0, DEL, C1), bytes that are not
 * UTF-8 and '\' as \xHH; at most max_chars characters, then "…" (0: no limit). NULL if out of
 * memory. */
char *escape_for_terminal(const char *s, size_t max_chars);

/* The group database's name for gid; false if it has none. */
bool lookup_unix_group(uint32_t gid, char buf[static FORMAT_MAX]);
/* "mail-svc (990)", or "990" when the group database has no such gid. */
const char *format_unix_group(uint32_t gid, char buf[static FORMAT_MAX]);
