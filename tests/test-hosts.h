/* SPDX-License-Identifier: MIT */
/* Several dkmd "hosts" on one machine, for the fleet tests (issue 9): each host is a user
 * namespace with the identity mapping "0 0 65536" (its own user keyrings: _uid.N and
 * dkm:.registry) and a mount namespace with a tmpfs on /run (its own /run/dkm), held alive by
 * an anchor process; its dbus-daemon, dkmd and member processes run inside. See
 * docs/notes/fleet-userns-spike.md.
 *
 * Not available inside a host (the spike's c3 and c4): break-glass grants (keyctl_chown to
 * another uid needs CAP_SYS_ADMIN in the initial user namespace) and the request-key upcall
 * (it runs in the initial namespaces): give a host's dkmd a hot window covering every
 * generation a test decrypts there. Keys are separated by lookup, not by permission: a process
 * of one host can read another host's key by serial. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>

#include "test-accounts.h"
#include "test-bus.h"

#define TEST_HOST_MAX_SPAWNED 32

/* Read-only for tests; made by test_host_new(), removed by test_host_free(). */
typedef struct TestHost {
        char name[16];
        pid_t owner;            /* the process that made the host (the anchor's parent) */
        pid_t anchor;           /* holds the namespaces alive; killed last */
        ino_t userns_ino;       /* /proc/ANCHOR/ns/user */
        dev_t userns_dev;
        char dir[96];           /* <base>/<name>-XXXXXX, 0755; base = TW.dir/hosts (or /tmp/dkmt-<pid>-hosts-XXXXXX) */
        char state_dir[128];    /* <dir>/state: DKM_STATE_DIR; not made (dkm-store init makes it) */
        char groups_dir[128];   /* <dir>/groups.d: DKM_GROUPS_DIRS, empty */
        char runtime_dir[128];  /* <dir>/run: DKM_RUNTIME_DIR (the host's /run/dkm is private as well) */
        char bus_dir[128];      /* <dir>/bus: bus.conf, system_bus_socket, dbus.log, dkmd.log */
        char bus_socket[160];
        char bus_address[192];  /* unix:path=<bus_socket>: DBUS_SYSTEM_BUS_ADDRESS */
        char dbus_log[160], dkmd_log[160];
        pid_t dbus_pid, dkmd_pid; /* -1 when not running */
        pid_t spawned[TEST_HOST_MAX_SPAWNED]; /* test_host_spawn()'s, killed by test_host_free() */
        size_t n_spawned;
} TestHost;

/* Make a host (name: [a-z0-9-], at most 15 characters): the anchor (forked; PR_SET_PDEATHSIG
 * SIGKILL: dies with its maker), unshare(CLONE_NEWUSER | CLONE_NEWNS), the maps written by this
 * process (root), then inside: uid/gid 0, a fresh session keyring, / made MS_REC|MS_PRIVATE and
 * a tmpfs on /run. Aborts the test on failure. Makes the caller a child subreaper
 * (PR_SET_CHILD_SUBREAPER), so orphans of the host's processes (a helper whose dkmd was killed)
 * come to it and test_host_free() can reap them: an unreaped zombie keeps the namespace, and so
 * its keys, alive. Free a host in the process that made it (the anchor is its child). */
TestHost *test_host_new(const char *name);
/* Kill everything of the host: dkmd (SIGTERM, its log into the test log), dbus-daemon, the
 * spawned processes, then whatever else still runs in its user namespace (SIGKILL), the anchor
 * last; wait until no process is left in the namespace (its keys then go with it, in about
 * 300 ms: see test_proc_keys_gone()); remove the host's directory. NULL is fine. */
void test_host_free(TestHost *h);

/* The host's environment: this process's, with DKM_STATE_DIR, DKM_RUNTIME_DIR, DKM_GROUPS_DIRS
 * and DBUS_SYSTEM_BUS_ADDRESS set to the host's (DKM_KEYRING_HELPER etc. are inherited), then
 * extra_env ("NAME=VALUE", NULL-terminated, may be NULL) on top. A NULL-terminated array; free
 * with test_host_env_free(). */
char **test_host_env(const TestHost *h, char *const extra_env[]);
void test_host_env_free(char **env);

/* In a forked child (it _exit()s on failure): enter h's mount namespace, then its user
 * namespace, uid/gid 0 there, a fresh session keyring; then c's credentials (test_become(),
 * NULL: stays root). */
void test_host_enter(const TestHost *h, const TestCreds *c);

/* Run argv[0] (a path) inside the host as c (NULL: root) with the host's environment plus
 * extra_env; dies with this process; not waited for: test_wait(), or test_host_free() kills it.
 * Returns the program's pid. */
pid_t test_host_spawn(TestHost *h, const TestCreds *c, char *const argv[], char *const extra_env[]);
/* As test_run(), inside the host with its environment. */
void test_host_run(TestHost *h, const TestCreds *c, char *const argv[], const void *in, size_t in_size, TestRun *r);
/* test_host_run() of dkm-store ARGS... as root; its exit status (stderr echoed on failure). */
int test_host_store_v(TestHost *h, const char *const args[]);
#define test_host_store(h, ...) test_host_store_v(h, (const char *const[]){ __VA_ARGS__, NULL })
/* The helper's "status GROUP" value for prefix in the host (as test_helper_status_value()). */
long test_host_helper_status_value(TestHost *h, const char *group, const char *prefix);

/* A system-type dbus-daemon inside the host with the project's policy (as test_bus_start()),
 * listening on bus_socket; waits until it listens. */
void test_host_start_bus(TestHost *h);
/* $DKM_DKMD inside the host, on its bus, with --admin-group=TW.grp (when the world has one) and
 * extra_args (NULL-terminated, may be NULL); waits until it owns its name. Output to dkmd_log. */
void test_host_start_dkmd(TestHost *h, const char *const extra_args[]);
/* As test_dkmd_stop(): SIGTERM (SIGKILL if hard), wait, the log into the test log; the status. */
int test_host_stop_dkmd(TestHost *h, bool hard);
const char *test_host_dkmd_log(const TestHost *h);
/* A connection from this process (root, initial namespaces) to the host's bus; aborts the test
 * on failure. The bus sees uid 0 (the identity mapping). */
sd_bus *test_host_bus_open(const TestHost *h);
/* test_call_as() on the host's bus, from a child inside the host. */
int test_host_call_as(TestHost *h, const TestCreds *c, TestCall *ret, const char *path, const char *iface,
                      const char *method, const char *types, ...);

/* How many processes (other than the anchor) run in the host's user namespace. */
unsigned test_host_count_processes(const TestHost *h, bool with_anchor);
