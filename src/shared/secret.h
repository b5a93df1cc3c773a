/* SPDX-License-Identifier: MIT */
/* The one type that holds key material in memory: guarded, locked, undumpable, wiped on free. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/* data lives in sodium_malloc() memory (guard pages, canary, mlock, MADV_DONTDUMP);
 * the struct itself holds no secret and lives on the normal heap. */
typedef struct Secret {
        size_t size;
        uint8_t *data;
} Secret;

int secret_new(size_t size, Secret **ret) _warn_unused_result_;
int secret_new_copy(const void *p, size_t size, Secret **ret) _warn_unused_result_;
Secret *secret_free(Secret *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(Secret *, secret_free);
#define _cleanup_secret_ _cleanup_(secret_freep)

/* Constant-time comparison; false on size mismatch. */
int secret_equal(const Secret *a, const Secret *b);

/* Wipe a stack or heap temporary that briefly held secret-derived bytes. */
void secret_wipe(void *p, size_t size);
