/* SPDX-License-Identifier: MIT */
/* A throwaway state directory per test, for the suites that drive the store library and dkm-store on disk. */
#pragma once

#include <check.h>
#include <stdbool.h>
#include <stddef.h>

#include "store.h"

typedef struct TestState {
        char top[64];   /* /tmp/dkm-test-<name>.XXXXXX: one per run, removed by test_state_end() even when a
                         * test failed (Check skips the checked teardown then) */
        char base[96];  /* <top>/t.XXXXXX: one per test */
        char sdir[128]; /* <base>/state: the state directory under test */
} TestState;

extern TestState TS;

/* main(): make TS.top (-errno on failure); remove it once the suite has run. test_state_run()
 * does both around test_run_suite(s): an exit status. */
int test_state_begin(const char *name);
void test_state_end(void);
int test_state_run(const char *name, Suite *s);

/* The checked fixture: a fresh TS.base and the TS.sdir name in it (not made: store_init makes it). */
void test_state_setup(void);
void test_state_teardown(void);

/* TS.sdir/rel, in one of four rotating static buffers. */
const char *test_state_path(const char *rel);

/* Runs $DKM_STORE --state-dir=TS.sdir ARGS... (stdin /dev/null); its stderr, and with
 * with_stdout its stdout too (else /dev/null), NUL-terminated in out. Its exit status. */
int test_state_run_store(char *out, size_t size, bool with_stdout, const char *const *args);

/* A store initialized in TS.sdir (file protector "local") with a group name of gid 1000. */
Store *test_state_init_with_group(const char *name);

/* Opens the store in TS.sdir and unlocks it with the current environment; store_last_error()'s
 * copy in why. Returns store_unlock()'s result; *ret is set either way. */
int test_state_open_unlock(Store **ret, char *why, size_t size);

/* Removes the "local" protector's key file, leaving the other protectors as the only way in. */
void test_state_remove_key_file(void);

/* Does any regular file under TS.sdir hold these bytes? With _or_hex: or their lowercase hex, the
 * form files hold keys in. */
bool test_state_contains(const void *p, size_t n);
bool test_state_contains_or_hex(const void *p, size_t n);

/* Has the store a protector of this name and type? */
bool test_store_has_protector(Store *s, const char *name, const char *type);

/* A whole file (up to 1 MiB), malloc'd and NUL-terminated; its size in *ret_size if given. */
char *test_read_all(const char *path, size_t *ret_size);
/* A new or truncated 0600 file holding exactly data. */
void test_write_all(const char *path, const void *data, size_t size);
/* body + a valid checksum line: what gets refused is then the content, not the framing. */
void test_write_with_checksum(const char *path, const char *body);

/* A Secret copy of a NUL-terminated string (a passphrase). */
Secret *test_secret(const char *s);
