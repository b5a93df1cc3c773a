/* SPDX-License-Identifier: MIT */
/* Several dkmd "hosts" on one machine: a user namespace (identity map) and a mount namespace (a
 * tmpfs on /run) per host, held by an anchor process; see test-hosts.h and
 * docs/notes/fleet-userns-spike.md. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <keyutils.h>

#include "macro.h"
#include "test-hosts.h"

extern char **environ;

/* Every host's directory is under one base per process: TW.dir/hosts when the world exists
 * (removed with it), else /tmp/dkmt-<pid>-hosts-XXXXXX (named so that test-accounts.c's sweep of
 * a killed run removes it). */
static char base_dir[96];
static pid_t base_owner;
static bool base_is_ours;

static void msleep(unsigned ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long) (ms % 1000) * 1000000L };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static const char *hosts_base(void) {
        if (base_dir[0] && base_owner == getpid())
                return base_dir;
        if (TW.dir[0]) {
                snprintf(base_dir, sizeof(base_dir), "%s/hosts", TW.dir);
                ck_assert_msg(mkdir(base_dir, 0755) == 0 || errno == EEXIST, "%s: %s", base_dir, strerror(errno));
                base_is_ours = false;
        } else {
                snprintf(base_dir, sizeof(base_dir), "/tmp/dkmt-%ld-hosts-XXXXXX", (long) getpid());
                ck_assert_ptr_nonnull(mkdtemp(base_dir));
                ck_assert_int_eq(chmod(base_dir, 0755), 0);
                base_is_ours = true;
        }
        base_owner = getpid();
        return base_dir;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        (void) st;
        (void) ftw;
        if (flag == FTW_DP)
                (void) rmdir(path);
        else
                (void) unlink(path);
        return 0;
}

static void write_text(const char *path, const char *text) {
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        bool ok = fd >= 0 && write(fd, text, strlen(text)) == (ssize_t) strlen(text);

        ck_assert_msg(ok, "writing %s: %s", path, strerror(errno));
        close(fd);
}

/* What the anchor tells its maker: how far it got, and errno if it failed there. */
typedef struct AnchorReport {
        int step;  /* ANCHOR_*, or the index into anchor_steps[] where it failed */
        int error;
        bool failed;
} AnchorReport;

enum {
        ANCHOR_UNSHARED = 1,
        ANCHOR_READY = 2,
};

static const char *const anchor_steps[] = {
        "parent gone", "unshare(CLONE_NEWUSER | CLONE_NEWNS)", "waiting for the maps", "setresgid/setresuid 0",
        "mount / MS_REC|MS_PRIVATE", "mount a tmpfs on /run", "keyctl_join_session_keyring",
};

static _Noreturn void anchor_fail(int fd, int step) {
        AnchorReport r = { .step = step, .error = errno, .failed = true };

        (void) !write(fd, &r, sizeof(r));
        _exit(120 + step);
}

static _Noreturn void anchor_main(int to_parent, int from_parent, pid_t parent, const char *name) {
        AnchorReport r = { 0 };
        char c, comm[16];

        (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
                anchor_fail(to_parent, 0);
        if (unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0)
                anchor_fail(to_parent, 1);
        r.step = ANCHOR_UNSHARED;
        if (write(to_parent, &r, sizeof(r)) != sizeof(r) || read(from_parent, &c, 1) != 1)
                anchor_fail(to_parent, 2);
        /* The maps are written: 0 inside is 0 outside, so this changes nothing but makes it so
         * for the saved and filesystem ids too. */
        if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)
                anchor_fail(to_parent, 3);
        /* Mounts made in here stay in here; the host's /run (so /run/dkm) is its own. */
        if (mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) < 0)
                anchor_fail(to_parent, 4);
        if (mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=16m") < 0)
                anchor_fail(to_parent, 5);
        /* The inherited session keyring is the initial namespace's root's (it links _uid.0 there). */
        if (keyctl_join_session_keyring(NULL) < 0)
                anchor_fail(to_parent, 6);
        (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
                anchor_fail(to_parent, 0);
        snprintf(comm, sizeof(comm), "host-%s", name);
        (void) prctl(PR_SET_NAME, comm);
        r.step = ANCHOR_READY;
        if (write(to_parent, &r, sizeof(r)) != sizeof(r))
                _exit(127);
        /* Hold nothing of the test's: no socket (a forwarder's connection), pipe or file stays
         * open because of the anchor. */
        int null = open("/dev/null", O_RDWR);
        if (null < 0 || dup2(null, STDIN_FILENO) < 0 || dup2(null, STDOUT_FILENO) < 0 ||
            dup2(null, STDERR_FILENO) < 0)
                _exit(127);
        (void) close_range(3, ~0U, 0);
        for (;;)
                pause();
}

static bool read_report(int fd, AnchorReport *r) {
        ssize_t n;

        while ((n = read(fd, r, sizeof(*r))) < 0 && errno == EINTR)
                ;
        return n == (ssize_t) sizeof(*r);
}

TestHost *test_host_new(const char *name) {
        int to_parent[2], to_child[2];
        char path[64], config[160];
        AnchorReport r = { 0 };
        TestHost *h;
        struct stat st;
        pid_t parent = getpid(), pid;

        ck_assert_msg(name && name[0] && strlen(name) < sizeof(h->name) && strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789-") == strlen(name),
                      "bad host name");
        h = calloc(1, sizeof(*h));
        ck_assert_ptr_nonnull(h);
        snprintf(h->name, sizeof(h->name), "%s", name);
        h->dbus_pid = h->dkmd_pid = h->anchor = -1;
        h->owner = parent;
        ck_assert_uint_lt(strlen(hosts_base()) + 1 + strlen(name) + 7, sizeof(h->dir));
        snprintf(h->dir, sizeof(h->dir), "%s/%s-XXXXXX", hosts_base(), name);
        ck_assert_ptr_nonnull(mkdtemp(h->dir));
        ck_assert_int_eq(chmod(h->dir, 0755), 0);
        snprintf(h->state_dir, sizeof(h->state_dir), "%s/state", h->dir);
        snprintf(h->groups_dir, sizeof(h->groups_dir), "%s/groups.d", h->dir);
        snprintf(h->runtime_dir, sizeof(h->runtime_dir), "%s/run", h->dir);
        snprintf(h->bus_dir, sizeof(h->bus_dir), "%s/bus", h->dir);
        snprintf(h->bus_socket, sizeof(h->bus_socket), "%s/system_bus_socket", h->bus_dir);
        snprintf(h->bus_address, sizeof(h->bus_address), "unix:path=%s", h->bus_socket);
        snprintf(h->dbus_log, sizeof(h->dbus_log), "%s/dbus.log", h->bus_dir);
        snprintf(h->dkmd_log, sizeof(h->dkmd_log), "%s/dkmd.log", h->bus_dir);
        ck_assert_uint_lt(strlen(h->bus_socket), 108); /* sun_path */
        ck_assert_int_eq(mkdir(h->groups_dir, 0755), 0);
        ck_assert_int_eq(mkdir(h->runtime_dir, 0755), 0);
        ck_assert_int_eq(mkdir(h->bus_dir, 0755), 0);
        snprintf(config, sizeof(config), "%s/bus.conf", h->bus_dir);
        test_bus_write_config(config, h->bus_socket);

        /* Orphans of the host's processes (a helper whose dkmd was killed) come to this process,
         * which reaps them in test_host_free(): a zombie would keep the namespace, and its keys,
         * alive until someone reaps it. */
        (void) prctl(PR_SET_CHILD_SUBREAPER, 1);

        ck_assert_int_eq(pipe2(to_parent, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(to_child, O_CLOEXEC), 0);
        fflush(NULL);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                close(to_parent[0]);
                close(to_child[1]);
                anchor_main(to_parent[1], to_child[0], parent, name);
        }
        h->anchor = pid;
        close(to_parent[1]);
        close(to_child[0]);
        if (!read_report(to_parent[0], &r))
                r = (AnchorReport){ .step = 1, .error = EPIPE, .failed = true };
        else if (!r.failed && r.step == ANCHOR_UNSHARED) {
                /* Written by root of the parent namespace: setgroups stays "allow". */
                snprintf(path, sizeof(path), "/proc/%d/uid_map", (int) pid);
                write_text(path, "0 0 65536\n");
                snprintf(path, sizeof(path), "/proc/%d/gid_map", (int) pid);
                write_text(path, "0 0 65536\n");
                ck_assert_int_eq(write(to_child[1], "", 1), 1);
                if (!read_report(to_parent[0], &r))
                        r = (AnchorReport){ .step = 3, .error = EPIPE, .failed = true };
        }
        close(to_parent[0]);
        close(to_child[1]);
        if (r.failed || r.step != ANCHOR_READY) {
                size_t step = r.failed && r.step >= 0 && (size_t) r.step < ELEMENTSOF(anchor_steps) ? (size_t) r.step : 2;
                (void) kill(pid, SIGKILL);
                (void) waitpid(pid, NULL, 0);
                ck_abort_msg("host %s: anchor failed at %s: %s", name, anchor_steps[step], strerror(r.error));
        }
        snprintf(path, sizeof(path), "/proc/%d/ns/user", (int) pid);
        ck_assert_int_eq(stat(path, &st), 0);
        h->userns_ino = st.st_ino;
        h->userns_dev = st.st_dev;
        return h;
}

/* ---- entering a host ---------------------------------------------------------------------- */

static int open_ns(const TestHost *h, const char *which, bool check_userns) {
        char path[64];
        struct stat st;
        int fd;

        snprintf(path, sizeof(path), "/proc/%d/ns/%s", (int) h->anchor, which);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -1;
        /* The anchor's pid might have been reused: the namespace must be the host's. */
        if (check_userns && (fstat(fd, &st) < 0 || st.st_ino != h->userns_ino || st.st_dev != h->userns_dev)) {
                close(fd);
                return -1;
        }
        return fd;
}

void test_host_enter(const TestHost *h, const TestCreds *c) {
        char cwd[4096];
        bool have_cwd = getcwd(cwd, sizeof(cwd)) != NULL;
        int mnt = open_ns(h, "mnt", false), user = open_ns(h, "user", true);

        /* The mount namespace first: afterwards this process lacks CAP_SYS_ADMIN over the
         * initial user namespace that owns the current one. */
        if (mnt < 0 || user < 0 || setns(mnt, CLONE_NEWNS) < 0)
                _exit(92);
        if (setns(user, CLONE_NEWUSER) < 0)
                _exit(93);
        close(mnt);
        close(user);
        /* setns() moved the root and working directory to the namespace's root. */
        if ((!have_cwd || chdir(cwd) < 0) && chdir("/") < 0)
                _exit(92);
        /* Identity map: the ids stay 0; a fresh session keyring, none of the initial namespace's. */
        if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)
                _exit(94);
        if (keyctl_join_session_keyring(NULL) < 0)
                _exit(91);
        if (c)
                test_become(c);
}

typedef struct Enter {
        const TestHost *h;
        const TestCreds *c;
        char **env; /* installed as environ after entering, if not NULL */
} Enter;

/* The environment a child installed, kept here too (volatile: the store stays) because valgrind
 * does not count environ as a root when it reports leaks at _exit(). */
static char **volatile child_env;

static void enter_hook(void *userdata) {
        const Enter *e = userdata;

        test_host_enter(e->h, e->c);
        if (e->env)
                environ = child_env = e->env;
}

/* ---- environment -------------------------------------------------------------------------- */

static bool env_named(const char *entry, const char *name) {
        size_t n = strlen(name);
        return strncmp(entry, name, n) == 0 && entry[n] == '=';
}

static bool env_overridden(const char *entry, char *const extra_env[]) {
        static const char *const host_vars[] = { "DKM_STATE_DIR", "DKM_RUNTIME_DIR", "DKM_GROUPS_DIRS",
                                                 "DBUS_SYSTEM_BUS_ADDRESS" };

        for (size_t i = 0; i < ELEMENTSOF(host_vars); i++)
                if (env_named(entry, host_vars[i]))
                        return true;
        for (size_t i = 0; extra_env && extra_env[i]; i++) {
                const char *eq = strchr(extra_env[i], '=');
                size_t n = eq ? (size_t) (eq - extra_env[i]) : strlen(extra_env[i]);
                if (strncmp(entry, extra_env[i], n) == 0 && entry[n] == '=')
                        return true;
        }
        return false;
}

_printf_(1, 2) static char *xprintf(const char *fmt, ...) {
        char *s = NULL;
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&s, fmt, ap);
        va_end(ap);
        ck_assert_int_ge(r, 0);
        return s;
}

char **test_host_env(const TestHost *h, char *const extra_env[]) {
        size_t n = 0, k = 0;
        char **env;

        while (environ[n])
                n++;
        for (size_t i = 0; extra_env && extra_env[i]; i++)
                n++;
        env = calloc(n + 5, sizeof(char *));
        ck_assert_ptr_nonnull(env);
        for (size_t i = 0; environ[i]; i++)
                if (!env_overridden(environ[i], extra_env))
                        env[k++] = xprintf("%s", environ[i]);
        env[k++] = xprintf("DKM_STATE_DIR=%s", h->state_dir);
        env[k++] = xprintf("DKM_RUNTIME_DIR=%s", h->runtime_dir);
        env[k++] = xprintf("DKM_GROUPS_DIRS=%s", h->groups_dir);
        env[k++] = xprintf("DBUS_SYSTEM_BUS_ADDRESS=%s", h->bus_address);
        for (size_t i = 0; extra_env && extra_env[i]; i++)
                if (strchr(extra_env[i], '='))
                        env[k++] = xprintf("%s", extra_env[i]);
        env[k] = NULL;
        return env;
}

void test_host_env_free(char **env) {
        for (size_t i = 0; env && env[i]; i++)
                free(env[i]);
        free(env);
}

/* ---- processes ---------------------------------------------------------------------------- */

static void track(TestHost *h, pid_t pid) {
        for (size_t i = 0; i < h->n_spawned; i++)
                if (h->spawned[i] <= 0) {
                        h->spawned[i] = pid;
                        return;
                }
        ck_assert_uint_lt(h->n_spawned, TEST_HOST_MAX_SPAWNED);
        h->spawned[h->n_spawned++] = pid;
}

pid_t test_host_spawn(TestHost *h, const TestCreds *c, char *const argv[], char *const extra_env[]) {
        char **env = test_host_env(h, extra_env);
        Enter e = { .h = h, .c = c };
        pid_t pid = test_spawn(argv, env, -1, NULL, enter_hook, &e);

        test_host_env_free(env);
        track(h, pid);
        return pid;
}

/* test_run() itself, called in a child inside the host: its capture, credentials and exec as
 * they are; the result comes back through shared memory and a memfd. */
typedef struct SharedRun {
        int status;
        size_t out_size;
        char err[sizeof(((TestRun *) NULL)->err)];
} SharedRun;

void test_host_run(TestHost *h, const TestCreds *c, char *const argv[], const void *in, size_t in_size, TestRun *r) {
        SharedRun *shared = test_shared_new(sizeof(SharedRun));
        int out = memfd_create("dkmt-host-out", MFD_CLOEXEC), status;
        char **env = test_host_env(h, NULL);
        pid_t pid;

        ck_assert_int_ge(out, 0);
        fflush(NULL);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                TestRun local;

                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                test_host_enter(h, NULL);
                environ = child_env = env;
                test_run(&local, in, in_size, c, argv);
                shared->status = local.status;
                shared->out_size = local.out_size;
                memcpy(shared->err, local.err, sizeof(shared->err));
                if (local.out_size > 0 && pwrite(out, local.out, local.out_size, 0) != (ssize_t) local.out_size)
                        _exit(97);
                test_run_free(&local);
                _exit(0);
        }
        test_host_env_free(env);
        status = test_wait(pid);
        ck_assert_msg(status == 0, "running %s in host %s: status %d", argv[0], h->name, status);
        r->status = shared->status;
        r->out_size = shared->out_size;
        memcpy(r->err, shared->err, sizeof(r->err));
        r->out = malloc(r->out_size + 1);
        ck_assert_ptr_nonnull(r->out);
        ck_assert_int_eq(pread(out, r->out, r->out_size, 0), (ssize_t) r->out_size);
        r->out[r->out_size] = 0;
        close(out);
        ck_assert_int_eq(munmap(shared, sizeof(SharedRun)), 0);
}

int test_host_store_v(TestHost *h, const char *const args[]) {
        char *argv[16] = { (char *) test_env_path("DKM_STORE") };
        size_t n = 0;
        TestRun r;

        while (args[n] && n + 2 < ELEMENTSOF(argv)) {
                argv[n + 1] = (char *) args[n];
                n++;
        }
        argv[n + 1] = NULL;
        test_host_run(h, NULL, argv, NULL, 0, &r);
        if (r.status != 0)
                fprintf(stderr, "host %s: dkm-store %s %s: status %d: %s", h->name, args[0], args[0] && args[1] ? args[1] : "",
                        r.status, r.err);
        test_run_free(&r);
        return r.status;
}

long test_host_helper_status_value(TestHost *h, const char *group, const char *prefix) {
        TestRun r;
        const char *p;
        long v = -1;

        test_host_run(h, NULL,
                      (char *const[]){ (char *) test_env_path("DKM_KEYRING_HELPER"), (char *) "status", (char *) group,
                                       NULL },
                      NULL, 0, &r);
        for (p = (const char *) r.out; r.status == 0 && p && *p;) {
                if (strncmp(p, prefix, strlen(prefix)) == 0) {
                        v = strtol(p + strlen(prefix), NULL, 10);
                        break;
                }
                p = strchr(p, '\n');
                if (p)
                        p++;
        }
        test_run_free(&r);
        return v;
}

/* ---- bus and dkmd ------------------------------------------------------------------------- */

void test_host_start_bus(TestHost *h) {
        char config[160], address[512];
        char **env = test_host_env(h, NULL);
        Enter e = { .h = h };

        ck_assert_int_eq(h->dbus_pid, -1);
        snprintf(config, sizeof(config), "%s/bus.conf", h->bus_dir);
        h->dbus_pid = test_bus_spawn(config, env, h->dbus_log, enter_hook, &e, address, sizeof(address));
        test_host_env_free(env);
        ck_assert_msg(strncmp(address, h->bus_address, strlen(h->bus_address)) == 0, "host %s: bus at %s, not %s",
                      h->name, address, h->bus_address);
}

static sd_bus *bus_connect(const TestHost *h) {
        sd_bus *bus = NULL;

        if (sd_bus_new(&bus) < 0)
                return NULL;
        if (sd_bus_set_address(bus, h->bus_address) < 0 || sd_bus_set_bus_client(bus, true) < 0 ||
            sd_bus_start(bus) < 0) {
                sd_bus_unref(bus);
                return NULL;
        }
        return bus;
}

sd_bus *test_host_bus_open(const TestHost *h) {
        sd_bus *bus = bus_connect(h);

        ck_assert_msg(bus, "host %s: cannot connect to %s", h->name, h->bus_address);
        return bus;
}

static bool name_has_owner(const TestHost *h) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = bus_connect(h);
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int has = 0;

        if (!bus ||
            sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                               "NameHasOwner", NULL, &reply, "s", SVC) < 0 ||
            sd_bus_message_read(reply, "b", &has) < 0)
                return false;
        return has;
}

void test_host_start_dkmd(TestHost *h, const char *const extra_args[]) {
        char *argv[32] = { (char *) test_env_path("DKM_DKMD"), (char *) "--bus=system" };
        size_t n = 2;
        char **env;
        Enter e = { .h = h };

        ck_assert_int_eq(h->dkmd_pid, -1);
        ck_assert_msg(h->dbus_pid > 0, "host %s: no bus (test_host_start_bus)", h->name);
        if (TW.grp[0]) {
                argv[n++] = (char *) "--admin-group";
                argv[n++] = TW.grp;
        }
        for (size_t i = 0; extra_args && extra_args[i]; i++) {
                ck_assert_uint_lt(n + 1, ELEMENTSOF(argv));
                argv[n++] = (char *) extra_args[i];
        }
        argv[n] = NULL;
        /* A dkmd stopped a moment ago may still be letting go of the name. */
        for (int i = 0; i < 100 && name_has_owner(h); i++)
                msleep(50);
        ck_assert_msg(!name_has_owner(h), "host %s: another dkmd still owns %s", h->name, SVC);
        env = test_host_env(h, NULL);
        h->dkmd_pid = test_spawn(argv, env, -1, h->dkmd_log, enter_hook, &e);
        test_host_env_free(env);
        for (int i = 0; i < 200 && !name_has_owner(h); i++) {
                ck_assert_msg(waitpid(h->dkmd_pid, NULL, WNOHANG) == 0, "host %s: dkmd exited at start; see %s",
                              h->name, h->dkmd_log);
                msleep(50);
        }
        ck_assert_msg(name_has_owner(h), "host %s: dkmd did not take %s; see %s", h->name, SVC, h->dkmd_log);
}

int test_host_stop_dkmd(TestHost *h, bool hard) {
        fprintf(stderr, "host %s: dkmd's log:\n", h->name);
        return test_dkmd_stop_pid(&h->dkmd_pid, h->dkmd_log, hard);
}

const char *test_host_dkmd_log(const TestHost *h) {
        return h->dkmd_log;
}

int test_host_call_as(TestHost *h, const TestCreds *c, TestCall *ret, const char *path, const char *iface,
                      const char *method, const char *types, ...) {
        char **env = test_host_env(h, NULL);
        Enter e = { .h = h, .env = env };
        va_list ap;
        int r;

        va_start(ap, types);
        r = test_call_as_in(enter_hook, &e, c, ret, path, iface, method, types, ap);
        va_end(ap);
        test_host_env_free(env);
        return r;
}

/* ---- teardown ----------------------------------------------------------------------------- */

static bool in_host(const TestHost *h, pid_t pid) {
        char path[64];
        struct stat st;

        snprintf(path, sizeof(path), "/proc/%d/ns/user", (int) pid);
        return stat(path, &st) == 0 && st.st_ino == h->userns_ino && st.st_dev == h->userns_dev;
}

/* The live processes of the host's user namespace (zombies have no namespace links). */
static size_t host_pids(const TestHost *h, bool with_anchor, pid_t *pids, size_t max) {
        DIR *d = opendir("/proc");
        struct dirent *de;
        size_t n = 0;

        ck_assert_ptr_nonnull(d);
        while ((de = readdir(d))) {
                char *end;
                long pid = strtol(de->d_name, &end, 10);

                if (pid <= 0 || *end || (!with_anchor && pid == h->anchor) || !in_host(h, (pid_t) pid))
                        continue;
                if (n < max)
                        pids[n] = (pid_t) pid;
                n++;
        }
        closedir(d);
        return n;
}

unsigned test_host_count_processes(const TestHost *h, bool with_anchor) {
        return (unsigned) host_pids(h, with_anchor, NULL, 0);
}

/* Reap pid if it is this process's child and has exited; true if it is gone or not ours. */
static bool reap(pid_t pid) {
        pid_t r;

        while ((r = waitpid(pid, NULL, WNOHANG)) < 0 && errno == EINTR)
                ;
        return r != 0;
}

void test_host_free(TestHost *h) {
        pid_t pids[256];
        size_t n;
        int i;

        if (!h)
                return;
        if (h->dkmd_pid > 0)
                (void) test_host_stop_dkmd(h, false);
        if (h->dbus_pid > 0)
                (void) test_stop_pid(&h->dbus_pid, SIGTERM);
        /* What the test spawned and did not wait for; only if still in the host (a pid it
         * waited for may belong to someone else by now). */
        for (size_t k = 0; k < h->n_spawned; k++)
                if (h->spawned[k] > 0) {
                        if (in_host(h, h->spawned[k]))
                                (void) kill(h->spawned[k], SIGKILL);
                }
        /* Then anything else that runs in the namespace (e.g. a helper whose dkmd was killed),
         * until nothing but the anchor is left; orphans came to this process (a subreaper). */
        for (i = 0; i < 500; i++) {
                bool all_reaped = true;

                n = host_pids(h, false, pids, ELEMENTSOF(pids));
                for (size_t k = 0; k < n && k < ELEMENTSOF(pids); k++)
                        (void) kill(pids[k], SIGKILL);
                for (size_t k = 0; k < h->n_spawned; k++)
                        if (h->spawned[k] > 0 && !reap(h->spawned[k]) && in_host(h, h->spawned[k]))
                                all_reaped = false;
                for (size_t k = 0; k < n && k < ELEMENTSOF(pids); k++)
                        (void) reap(pids[k]);
                if (n == 0 && all_reaped)
                        break;
                msleep(10);
        }
        ck_assert_msg(i < 500, "host %s: %zu processes left in its namespace", h->name, n);
        for (size_t k = 0; k < h->n_spawned; k++)
                h->spawned[k] = -1;
        /* The anchor last: with it the namespaces, and the keys in their keyrings, go. */
        if (h->anchor > 0)
                (void) test_stop_pid(&h->anchor, SIGKILL);
        if (h->dir[0])
                (void) nftw(h->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        if (base_is_ours && base_owner == getpid())
                (void) rmdir(base_dir); /* only once empty */
        free(h);
}
