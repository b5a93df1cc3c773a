/* SPDX-License-Identifier: MIT */
/* Throwaway accounts, directories and key groups for root integration tests, removed even when a test fails. */
#pragma once

#include <check.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The world of one test binary, made by test_world_main() as root before the suite runs and torn
 * down by the process that made it: at exit, on SIGINT/SIGTERM/SIGHUP/SIGQUIT, and (names carry
 * the pid) by the next run if this one was SIGKILLed. Same naming as tests/test-keyring.c
 * ("dkmt-<pid>-..."), so either binary sweeps what the other left. */

#define TEST_KEY_GROUPS_MAX 32

typedef struct TestCreds {
        uid_t uid;
        gid_t gid;
        gid_t groups[4];
        int n_groups;
} TestCreds;

typedef struct TestWorld {
        pid_t main_pid;
        const char *helper;   /* $DKM_KEYRING_HELPER */
        const char *store;    /* $DKM_STORE: dkm-store */
        char dir[64];         /* /tmp/dkmt-<pid>-XXXXXX, 0755 */
        char runtime_dir[96]; /* <dir>/run, exported as DKM_RUNTIME_DIR */
        char state_dir[96];   /* <dir>/state, exported as DKM_STATE_DIR; an initialized store */
        char work_dir[96];    /* <dir>/work, 01777: files the test users read and write */
        char grp[40];         /* the Unix group of the key groups */
        gid_t gid;
        char member[40], member2[40], other[40];
        uid_t member_uid, member2_uid, other_uid;
        gid_t member_gid, member2_gid, other_gid;
        bool made_grp, made_member, made_member2, made_other;
        char key_groups[TEST_KEY_GROUPS_MAX][64];
        size_t n_key_groups;
        char request_key_conf[160]; /* /etc/request-key.d/dkm-test-<pid>.conf, if installed */
        /* "-person", in no key group's gid: made only if test_world_want_person was set. */
        char person[40];
        uid_t person_uid;
        gid_t person_gid;
        bool made_person;
        /* Break-glass approvers, made only if test_world_want_approvers was set: Unix groups
         * "-appr1" and "-appr2" (the approval levels), accounts "-approver1" (in appr1),
         * "-approver2" (in appr2) and "-both" (in appr1 and appr2: one person, two levels). */
        char appr1[40], appr2[40];
        gid_t appr1_gid, appr2_gid;
        char approver1[40], approver2[40], both[40];
        uid_t approver1_uid, approver2_uid, both_uid;
        gid_t approver1_gid, approver2_gid, both_gid;
        bool made_appr1, made_appr2, made_approver1, made_approver2, made_both;
} TestWorld;

extern TestWorld TW;

/* Set before test_world_main() to also make the "-person" account (a human outside the key
 * group, e.g. a break-glass grantee). */
extern bool test_world_want_person;
TestCreds test_creds_person(void);

/* Set before test_world_main() to also make the approver groups and accounts (see TestWorld). */
extern bool test_world_want_approvers;
TestCreds test_creds_approver1(void);
TestCreds test_creds_approver2(void);
TestCreds test_creds_both(void);

/* main() of an integration test binary. As root: make the world (accounts "dkmt-<pid>-grp",
 * "-member", "-member2" (both in grp) and "-other", the directories, a store, one key group
 * name "dkmt-<pid>-<tag>" per tag), run make_suite(true) in a child with a process group of
 * its own (Check SIGKILLs its group on SIGINT/SIGTERM), clean up, return its status. Not root:
 * run make_suite(false) and return 77 (skip) if it passed. */
int test_world_main(Suite *(*make_suite)(bool integration), const char *const *key_group_tags);

/* The key group name of a tag given to test_world_main(); fails the test for any other tag. */
const char *test_key_group(const char *tag);

TestCreds test_creds_member(void);
TestCreds test_creds_member_without_gid(void);
TestCreds test_creds_member2(void);
TestCreds test_creds_other(void);

/* In a forked child: take these credentials for good (groups, gid, uid) and a fresh session
 * keyring, so the child possesses nothing the test gave it. _exit(90) if that fails. */
void test_become(const TestCreds *c);

/* Fork; the child takes c's credentials (NULL: stays root) and runs fn, then _exit(0). A
 * failed check inside fn exits the child non-zero, which test_wait_ok() reports. */
pid_t test_fork_as(const TestCreds *c, void (*fn)(void *userdata), void *userdata);
/* The child's exit status, or 128 + signal. */
int test_wait(pid_t pid);
void test_wait_ok(pid_t pid);

/* Memory shared with forked children (MAP_SHARED, zeroed). */
void *test_shared_new(size_t size);

/* Run a program with stdin from in, capturing stdout and stderr, as c (NULL: root), with the
 * world's environment. */
typedef struct TestRun {
        int status;
        uint8_t *out;
        size_t out_size;
        char err[4096];
} TestRun;
void test_run(TestRun *r, const void *in, size_t in_size, const TestCreds *c, char *const argv[]);
void test_run_free(TestRun *r);

/* dkm-store ARGS... as root against the world's store; its exit status. stderr is echoed on
 * failure, for the test log. */
int test_store_v(const char *const args[]);
#define test_store(...) test_store_v((const char *const[]){ __VA_ARGS__, NULL })

/* The helper's "status GROUP" output line value for prefix (e.g. "generation 2 "), -1 if absent. */
long test_helper_status_value(const char *group, const char *prefix);

/* Is the key with this serial gone from /proc/keys? Waits (up to 20 s) for the garbage collector. */
bool test_proc_keys_gone(int32_t serial);

/* (Re)write TW.request_key_conf with one line per key group of this run created so far in the
 * store, so that request_key("user", "dkm:<its id>:*", "dkm") runs the helper's request-key
 * handler against the world's store and runtime directory. false if the helper has none.
 * Removed by test_request_key_remove() and by the world's cleanup. */
bool test_request_key_install(void);
void test_request_key_remove(void);
