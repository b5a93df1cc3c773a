/* SPDX-License-Identifier: MIT */
/* A private system-type dbus-daemon and dkmd on it, for the tests of dkmd and dkmctl. */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>

/* The named errors are part of the interface: spelled out here, not taken from dkmd's headers. */
#define E_NO_SUCH_GROUP "org.dkm.KeyManager1.Error.NoSuchGroup"
#define E_NO_SUCH_GENERATION "org.dkm.KeyManager1.Error.NoSuchGeneration"
#define E_GROUP_EXISTS "org.dkm.KeyManager1.Error.GroupExists"
#define E_ACCESS_DENIED "org.dkm.KeyManager1.Error.AccessDenied"
#define E_INVALID_ARGUMENT "org.dkm.KeyManager1.Error.InvalidArgument"
#define E_APPROVAL_REQUIRED "org.dkm.KeyManager1.Error.ApprovalRequired"
#define E_GENERATION_ACTIVE "org.dkm.KeyManager1.Error.GenerationActive"
#define E_INVALID_STATE "org.dkm.KeyManager1.Error.InvalidState"
#define E_HUMAN_MEMBERS "org.dkm.KeyManager1.Error.HumanMembers"
#define E_ROLLOVER_PENDING "org.dkm.KeyManager1.Error.RolloverPending"

#define SVC "org.dkm.KeyManager1"
#define MGR_PATH "/org/dkm/KeyManager1"
#define MGR_IFACE "org.dkm.KeyManager1"
#define GROUP_IFACE "org.dkm.KeyManager1.Group"
#define BUSCTL "/usr/bin/busctl"

/* $name, which must name an existing file (a built binary); fails the test otherwise. */
const char *test_env_path(const char *name);

/* Start a system-type dbus-daemon on a socket in TW.dir/bus with Debian's default-deny policy
 * plus the project's policy file ($DKM_DBUS_POLICY), and export DBUS_SYSTEM_BUS_ADDRESS. Call
 * from an unchecked fixture: it lives in the suite runner, and dies with it. */
void test_bus_start(void);
void test_bus_stop(void);

/* Start $DKM_DKMD on that bus with --admin-group=TW.grp, the world's store and the extra
 * arguments (NULL-terminated, may be NULL); wait until it owns its name. Its output goes to a
 * log that test_dkmd_stop() copies into the test log. */
void test_dkmd_start(const char *const extra_args[]);
/* SIGTERM (or SIGKILL when hard), wait; the exit status as waitpid() gave it. From a test that
 * did not start this dkmd (Check forks each test): SIGKILL, 0 for a clean exit, or -1.
 * A dkmd started by a test dies with that test (PR_SET_PDEATHSIG); the next start waits for it. */
int test_dkmd_stop(bool hard);
pid_t test_dkmd_pid(void);
/* The path of dkmd's log. */
const char *test_dkmd_log(void);

sd_bus *test_bus_open(void);

/* The pieces the functions above are made of, for harnesses that run buses and dkmd elsewhere
 * (tests/test-hosts.c runs them inside user namespaces). */

/* Fork and exec argv[0] with envp (NULL: this process's environment). The child dies with the
 * caller (PR_SET_PDEATHSIG SIGTERM), appends stdout and stderr to log if given, keeps keep_fd
 * (or -1) open across exec, and runs enter(userdata) (if given) just before exec: to enter a
 * namespace or take other credentials; it must _exit() on failure. Returns the exec'd
 * program's pid (no shell in between). */
pid_t test_spawn(char *const argv[], char *const envp[], int keep_fd, const char *log, void (*enter)(void *userdata),
                 void *userdata);
/* A system-type bus configuration listening on socket: Debian's default-deny policy plus the
 * project's policy file ($DKM_DBUS_POLICY), as test_bus_start() uses. */
void test_bus_write_config(const char *path, const char *socket);
/* dbus-daemon --nofork with config, spawned as by test_spawn(); waits until it listens and
 * puts its address into address. Returns its pid. */
pid_t test_bus_spawn(const char *config, char *const envp[], const char *log, void (*enter)(void *userdata),
                     void *userdata, char *address, size_t size);
/* Send sig to *pid and wait for it: waitpid() if it is a child, else by watching /proc (a
 * test forked by Check is not the parent of what its runner started). *pid becomes -1. The
 * status as waitpid() gave it; not a child: sig for SIGKILL, else -1. -1 if *pid <= 0. */
int test_stop_pid(pid_t *pid, int sig);
/* test_dkmd_stop() for the dkmd of pid and log. */
int test_dkmd_stop_pid(pid_t *pid, const char *log, bool hard);

/* The outcome of one method call made as another user. */
typedef struct TestCall {
        int r;
        char error[128];   /* the error's name, if it failed */
        char message[512];
        char path[128];    /* the reply's object path, if it is one */
} TestCall;

struct TestCreds;
/* Calls method on path of dkmd in a child that takes c's credentials (NULL: stays root), so the
 * bus reports that uid and those groups; types and arguments as for sd_bus_call_method().
 * Returns ret->r. */
int test_call_as(const struct TestCreds *c, TestCall *ret, const char *path, const char *iface, const char *method,
                 const char *types, ...);
/* The same, with enter(userdata) run in the child before it takes c's credentials (e.g. to
 * enter a host's namespaces and point DBUS_SYSTEM_BUS_ADDRESS at its bus). */
int test_call_as_in(void (*enter)(void *userdata), void *userdata, const struct TestCreds *c, TestCall *ret,
                    const char *path, const char *iface, const char *method, const char *types, va_list ap);
void test_assert_bus_error(const sd_bus_error *e, const char *name);

/* Shared steps of the dkmd tests. The manager's string property (malloc'd); CreateGroup as root
 * for TW.gid with no options (its object path, malloc'd); "dkm encrypt -g group" as the member
 * ($DKM_CLI), the ciphertext written to path. Each fails the test on an error. */
char *test_manager_property(const char *property);
char *test_create_group(const char *name);
void test_member_encrypt(const char *group, const char *path, const char *text);
