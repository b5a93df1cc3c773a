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

/* The group database's name for gid; false if it has none. */
bool lookup_unix_group(uint32_t gid, char buf[static FORMAT_MAX]);
/* "mail-svc (990)", or "990" when the group database has no such gid. */
const char *format_unix_group(uint32_t gid, char buf[static FORMAT_MAX]);
