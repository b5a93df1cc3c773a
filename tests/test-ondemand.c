/* SPDX-License-Identifier: MIT */
/* Tests for on-demand archived generations: the real request-key upcall, helper, store and kernel, with real uids. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <keyutils.h>

#include "fileio.h"
#include "keyring-helper.h"
#include "keyring-names.h"
#include "store.h"
#include "test-helpers.h"

/* The store group: generation 1 retired, 2..4 archived, 5 active; loaded with hot window 0,
 * so only 5 is in the kernel and 2..4 come on demand. The passphrase-only store's group:
 * 1..2 archived, 3 active. */
#define GEN_RETIRED   1U
#define GEN_ACTIVE    5U
#define PW_GEN_ACTIVE 3U
/* Long enough that a sanitizer build gets from one step to the next before it runs out
 * (a timeout of T ends within (T-1, T] s), short enough to wait for. */
#define TIMEOUT_SEC 4U
#define PASSPHRASE  "dkm test passphrase"

static struct {
        pid_t main_pid;
        const char *helper, *dkm_store;
        char parent[64];
        char state[96], state_pw[96], runtime[96], sanitizer_logs[96];
        char conf[96];
        char grp[32], member[32], other[32];
        char group[48], group_pw[48];
        char id_hex[KEYRING_GROUP_ID_HEX + 1], pw_id_hex[KEYRING_GROUP_ID_HEX + 1];
        char unknown_id_hex[KEYRING_GROUP_ID_HEX + 1];
        gid_t grp_gid;
        uid_t member_uid, other_uid;
        gid_t member_gid, other_gid;
        bool grp_made, member_made, other_made, conf_made;
} W;

extern char **environ;

/* ---------------------------------------------------------------------------------------- */
/* The world: accounts, two stores, the groups loaded, our own request-key.d drop-in.         */

/* Async-signal-safe: fork, execve, waitpid, open, dup2, _exit only. */
static int run_quiet(char *const argv[]) {
        pid_t pid = fork();
        int status;

        if (pid < 0)
                return -1;
        if (pid == 0) {
                int null = open("/dev/null", O_RDWR);
                if (null >= 0) {
                        dup2(null, STDIN_FILENO);
                        dup2(null, STDOUT_FILENO);
                        dup2(null, STDERR_FILENO);
                }
                execve(argv[0], argv, environ);
                _exit(127);
        }
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void world_cleanup(void) {
        static volatile sig_atomic_t done = 0;

        if (getpid() != W.main_pid || done)
                return;
        done = 1;
        /* The drop-in first, so no upcall runs our helper against a store being removed. */
        if (W.conf_made)
                (void) unlink(W.conf);
        if (W.helper) {
                (void) run_quiet((char *const[]){ (char *) W.helper, (char *) "unload", W.group, NULL });
                (void) run_quiet((char *const[]){ (char *) W.helper, (char *) "unload", W.group_pw, NULL });
        }
        if (W.member_made)
                (void) run_quiet((char *const[]){ (char *) "/usr/sbin/userdel", W.member, NULL });
        if (W.other_made)
                (void) run_quiet((char *const[]){ (char *) "/usr/sbin/userdel", W.other, NULL });
        if (W.grp_made)
                (void) run_quiet((char *const[]){ (char *) "/usr/sbin/groupdel", W.grp, NULL });
        if (W.parent[0])
                (void) run_quiet((char *const[]){ (char *) "/bin/rm", (char *) "-rf", W.parent, NULL });
}

static volatile pid_t suite_pid = 0;

/* Check's SIGINT/SIGTERM handler SIGKILLs its process group: the suite runs in a child with
 * its own group; the parent owns the world and cleans up. */
static void world_signal(int sig) {
        if (getpid() != W.main_pid) {
                signal(sig, SIG_DFL);
                raise(sig);
                return;
        }
        if (suite_pid > 0) {
                kill(suite_pid, sig);
                while (waitpid(suite_pid, NULL, 0) < 0 && errno == EINTR)
                        ;
        }
        world_cleanup();
        signal(sig, SIG_DFL);
        raise(sig);
}

static bool pid_dead(long pid) {
        return pid > 0 && kill((pid_t) pid, 0) < 0 && errno == ESRCH;
}

static bool name_of_dead_run(const char *name) {
        long pid;

        return sscanf(name, "dkmt-%ld-", &pid) == 1 && pid_dead(pid);
}

/* Left by a run killed outright (SIGKILL skips every cleanup): drop-ins first, then keyrings,
 * accounts and directories. */
static void sweep_stale(void) {
        key_serial_t list[256], registry = 0;
        char desc[256], names[64][40], path[320];
        struct passwd *pw;
        struct group *gr;
        struct dirent *de;
        size_t n_names = 0;
        long n, pid;
        DIR *d;

        d = opendir("/etc/request-key.d");
        if (d) {
                while ((de = readdir(d)))
                        if (sscanf(de->d_name, "dkm-test-%ld.conf", &pid) == 1 && pid_dead(pid)) {
                                snprintf(path, sizeof(path), "/etc/request-key.d/%s", de->d_name);
                                (void) unlink(path);
                        }
                closedir(d);
        }

        n = keyctl_read(KEY_SPEC_USER_KEYRING, (char *) list, sizeof(list));
        for (long i = 0; i < n / (long) sizeof(key_serial_t); i++)
                if (keyctl_describe(list[i], desc, sizeof(desc)) > 0 &&
                    strcmp(desc, "keyring;0;0;01370000;" KEYRING_REGISTRY_DESC) == 0)
                        registry = list[i];
        n = registry > 0 ? keyctl_read(registry, (char *) list, sizeof(list)) : 0;
        for (long i = 0; i < n / (long) sizeof(key_serial_t); i++) {
                char *name;

                if (keyctl_describe(list[i], desc, sizeof(desc)) <= 0 || !(name = strstr(desc, ";dkm:")))
                        continue;
                name += strlen(";dkm:");
                if (name_of_dead_run(name))
                        (void) run_quiet((char *const[]){ (char *) W.helper, (char *) "unload", name, NULL });
        }

        setpwent();
        while ((pw = getpwent()) && n_names < ELEMENTSOF(names))
                if (name_of_dead_run(pw->pw_name))
                        snprintf(names[n_names++], sizeof(names[0]), "%s", pw->pw_name);
        endpwent();
        for (size_t i = 0; i < n_names; i++)
                (void) run_quiet((char *const[]){ (char *) "/usr/sbin/userdel", names[i], NULL });
        n_names = 0;
        setgrent();
        while ((gr = getgrent()) && n_names < ELEMENTSOF(names))
                if (name_of_dead_run(gr->gr_name))
                        snprintf(names[n_names++], sizeof(names[0]), "%s", gr->gr_name);
        endgrent();
        for (size_t i = 0; i < n_names; i++)
                (void) run_quiet((char *const[]){ (char *) "/usr/sbin/groupdel", names[i], NULL });

        d = opendir("/tmp");
        if (d) {
                while ((de = readdir(d)))
                        if (name_of_dead_run(de->d_name)) {
                                snprintf(path, sizeof(path), "/tmp/%s", de->d_name);
                                (void) run_quiet((char *const[]){ (char *) "/bin/rm", (char *) "-rf", path, NULL });
                        }
                closedir(d);
        }
}

/* dkm-store with the passphrase (if any) on a fresh descriptor; stdout/stderr to ours. */
static int dkm_store(const char *state, int passphrase, ...) {
        char *argv[16] = { (char *) W.dkm_store }, state_arg[128], fd_arg[32];
        size_t n = 1;
        int fd = -1, status;
        va_list ap;
        pid_t pid;

        snprintf(state_arg, sizeof(state_arg), "--state-dir=%s", state);
        argv[n++] = state_arg;
        if (passphrase) {
                fd = memfd_create("dkmt-pass", 0);
                if (fd < 0 || loop_write(fd, PASSPHRASE "\n", strlen(PASSPHRASE) + 1) < 0 ||
                    lseek(fd, 0, SEEK_SET) != 0)
                        return -1;
                snprintf(fd_arg, sizeof(fd_arg), "--passphrase-fd=%d", fd);
                argv[n++] = fd_arg;
        }
        va_start(ap, passphrase);
        for (char *a; (a = va_arg(ap, char *)) && n < ELEMENTSOF(argv) - 1;)
                argv[n++] = a;
        va_end(ap);
        argv[n] = NULL;

        fflush(NULL);
        pid = fork();
        if (pid < 0)
                return -1;
        if (pid == 0) {
                int null = open("/dev/null", O_WRONLY);
                if (null >= 0)
                        dup2(null, STDOUT_FILENO); /* the tool's chatter; errors stay on stderr */
                execve(W.dkm_store, argv, environ);
                _exit(127);
        }
        if (fd >= 0)
                close(fd);
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int load_group(unsigned hot_window) {
        char arg[32];

        snprintf(arg, sizeof(arg), "--hot-window=%u", hot_window);
        return dkm_store(W.state, 0, "load", W.group, arg, NULL);
}

static int group_id_hex(const char *state, const char *group, char ret[KEYRING_GROUP_ID_HEX + 1]) {
        _cleanup_store_group_ StoreGroup *g = NULL;
        _cleanup_store_ Store *s = NULL;

        if (store_open(state, &s) < 0 || store_group_load(s, group, &g) < 0)
                return -1;
        keyring_group_id_to_hex(g->id, ret);
        return 0;
}

/* One line per description pattern; each names only ids this run made up, so the lines
 * never match another run's or the system's requests (and beat the installed "dkm:*"). */
static int write_conf(void) {
        char line[1024], upper[KEYRING_GROUP_ID_HEX + 1];
        _cleanup_free_ char *text = NULL;
        size_t size = 0;
        FILE *f;
        int fd;

        for (size_t i = 0; i <= KEYRING_GROUP_ID_HEX; i++)
                upper[i] = (W.id_hex[i] >= 'a' && W.id_hex[i] <= 'f') ? (char) (W.id_hex[i] - 'a' + 'A') : W.id_hex[i];
        f = open_memstream(&text, &size);
        if (!f)
                return -1;
/* Through env(1) only to send a sanitizer build's reports to files (request-key gives the
 * handler /dev/null as stderr); the variables mean nothing to other builds. */
#define LINE(pattern, state)                                                                                           \
        fprintf(f,                                                                                                     \
                "create user %s * /usr/bin/env ASAN_OPTIONS=log_path=%s/asan:detect_leaks=1 "                          \
                "UBSAN_OPTIONS=log_path=%s/ubsan:print_stacktrace=1:halt_on_error=1 "                                  \
                "%s request-key --state-dir=%s --runtime-dir=%s --timeout=%u %%k %%d %%c\n",                           \
                pattern, W.sanitizer_logs, W.sanitizer_logs, W.helper, state, W.runtime, TIMEOUT_SEC)
        snprintf(line, sizeof(line), "dkm:%s:*", W.id_hex);
        LINE(line, W.state);
        snprintf(line, sizeof(line), "dkm:%s:*", upper); /* forged: upper-case hex */
        LINE(line, W.state);
        snprintf(line, sizeof(line), "dkm:%.24s*", W.id_hex); /* forged: short or bad id */
        LINE(line, W.state);
        snprintf(line, sizeof(line), "dkm:%s:*", W.unknown_id_hex);
        LINE(line, W.state);
        snprintf(line, sizeof(line), "dkm:%s:*", W.pw_id_hex);
        LINE(line, W.state_pw);
        snprintf(line, sizeof(line), "dkmt-%ld-forged*", (long) W.main_pid); /* forged: no "dkm:" */
        LINE(line, W.state);
#undef LINE
        if (fclose(f) != 0)
                return -1;
        fd = open(W.conf, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0)
                return -1;
        W.conf_made = true;
        if (loop_write(fd, text, size) < 0) {
                close(fd);
                return -1;
        }
        return close(fd);
}

static int world_setup(void) {
        static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
        const char *nologin = "/usr/sbin/nologin";
        long pid = (long) getpid();
        uint8_t unknown[KEYRING_GROUP_ID_BYTES];
        char gid_arg[48];
        struct passwd *pw;
        struct group *gr;

        W.main_pid = getpid();
        W.helper = getenv("DKM_KEYRING_HELPER");
        W.dkm_store = getenv("DKM_STORE");
        if (!W.helper || access(W.helper, X_OK) < 0 || W.helper[0] != '/' || !W.dkm_store ||
            access(W.dkm_store, X_OK) < 0) {
                fprintf(stderr, "DKM_KEYRING_HELPER and DKM_STORE must name the built binaries (absolute)\n");
                return -1;
        }
        if (access("/sbin/request-key", X_OK) < 0) {
                fprintf(stderr, "/sbin/request-key (keyutils) is needed\n");
                return -1;
        }
        atexit(world_cleanup);
        for (size_t i = 0; i < ELEMENTSOF(sigs); i++)
                signal(sigs[i], world_signal);

        snprintf(W.parent, sizeof(W.parent), "/tmp/dkmt-%ld-XXXXXX", pid);
        if (!mkdtemp(W.parent) || chmod(W.parent, 0755) < 0)
                return -1;
        snprintf(W.state, sizeof(W.state), "%s/state", W.parent);
        snprintf(W.state_pw, sizeof(W.state_pw), "%s/state-pw", W.parent);
        snprintf(W.runtime, sizeof(W.runtime), "%s/run", W.parent);
        snprintf(W.sanitizer_logs, sizeof(W.sanitizer_logs), "%s/san", W.parent);
        if (mkdir(W.sanitizer_logs, 0700) < 0)
                return -1;
        snprintf(W.conf, sizeof(W.conf), "/etc/request-key.d/dkm-test-%ld.conf", pid);
        snprintf(W.group, sizeof(W.group), "dkmt-%ld-od", pid);
        snprintf(W.group_pw, sizeof(W.group_pw), "dkmt-%ld-odpw", pid);
        setenv(KEYRING_RUNTIME_DIR_ENV, W.runtime, 1);
        setenv("DKM_KEYRING_HELPER", W.helper, 1);
        setenv("DKM_TEST_PWHASH_FAST", "1", 1);
        /* With the runtime dir set, so sweeping never touches the real /run/dkm. */
        sweep_stale();
        if (mkdir("/etc/request-key.d", 0755) < 0 && errno != EEXIST)
                return -1;

        snprintf(W.grp, sizeof(W.grp), "dkmt-%ld-grp", pid);
        snprintf(W.member, sizeof(W.member), "dkmt-%ld-member", pid);
        snprintf(W.other, sizeof(W.other), "dkmt-%ld-other", pid);
        if (run_quiet((char *const[]){ (char *) "/usr/sbin/groupadd", (char *) "--system", W.grp, NULL }) != 0)
                return fprintf(stderr, "groupadd %s failed\n", W.grp), -1;
        W.grp_made = true;
        if (run_quiet((char *const[]){ (char *) "/usr/sbin/useradd", (char *) "--system", (char *) "--no-create-home",
                                       (char *) "--shell", (char *) nologin, (char *) "-G", W.grp, W.member, NULL }) !=
            0)
                return fprintf(stderr, "useradd %s failed\n", W.member), -1;
        W.member_made = true;
        if (run_quiet((char *const[]){ (char *) "/usr/sbin/useradd", (char *) "--system", (char *) "--no-create-home",
                                       (char *) "--shell", (char *) nologin, W.other, NULL }) != 0)
                return fprintf(stderr, "useradd %s failed\n", W.other), -1;
        W.other_made = true;
        gr = getgrnam(W.grp);
        if (!gr)
                return -1;
        W.grp_gid = gr->gr_gid;
        pw = getpwnam(W.member);
        if (!pw)
                return -1;
        W.member_uid = pw->pw_uid;
        W.member_gid = pw->pw_gid;
        pw = getpwnam(W.other);
        if (!pw)
                return -1;
        W.other_uid = pw->pw_uid;
        W.other_gid = pw->pw_gid;

        /* Five generations, the first retired, hot window 0. */
        snprintf(gid_arg, sizeof(gid_arg), "--gid=%s", W.grp);
        if (dkm_store(W.state, 0, "init", NULL) != 0 ||
            dkm_store(W.state, 0, "group", "create", W.group, gid_arg, NULL) != 0)
                return fprintf(stderr, "cannot create the test store and group\n"), -1;
        for (unsigned i = 2; i <= GEN_ACTIVE; i++)
                if (dkm_store(W.state, 0, "rollover", W.group, NULL) != 0)
                        return -1;
        if (dkm_store(W.state, 0, "retire", W.group, "1", NULL) != 0 || load_group(0) != 0)
                return fprintf(stderr, "cannot prepare the test group\n"), -1;

        /* A store that only a passphrase opens. */
        if (dkm_store(W.state_pw, 1, "init", NULL) != 0 ||
            dkm_store(W.state_pw, 1, "group", "create", W.group_pw, gid_arg, NULL) != 0)
                return fprintf(stderr, "cannot prepare the passphrase store\n"), -1;
        for (unsigned i = 2; i <= PW_GEN_ACTIVE; i++)
                if (dkm_store(W.state_pw, 1, "rollover", W.group_pw, NULL) != 0)
                        return -1;
        if (dkm_store(W.state_pw, 1, "load", W.group_pw, "--hot-window=0", NULL) != 0)
                return fprintf(stderr, "cannot load the passphrase store's group\n"), -1;

        if (crypt_init() < 0 || group_id_hex(W.state, W.group, W.id_hex) < 0 ||
            group_id_hex(W.state_pw, W.group_pw, W.pw_id_hex) < 0)
                return -1;
        crypt_random(unknown, sizeof(unknown));
        keyring_group_id_to_hex(unknown, W.unknown_id_hex);
        if (write_conf() < 0)
                return fprintf(stderr, "cannot write %s: %m\n", W.conf), -1;
        return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Probes: children with other credentials, results in shared memory.                         */

typedef struct Probe {
        long ret;
        int err;
        double ms;
} Probe;

typedef struct Shared {
        Probe p[32];
        uint8_t data[4][64];
        char desc[4][256];
} Shared;

typedef struct Creds {
        uid_t uid;
        gid_t gid;
        gid_t groups[1];
        int n_groups;
} Creds;

static Creds creds_member(void) {
        return (Creds){ .uid = W.member_uid, .gid = W.member_gid, .groups = { W.grp_gid }, .n_groups = 1 };
}
static Creds creds_other(void) {
        return (Creds){ .uid = W.other_uid, .gid = W.other_gid };
}

static double now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec * 1e3 + (double) ts.tv_nsec / 1e6;
}

#define PROBE(sh, i, expr)                                                                                             \
        do {                                                                                                           \
                double _t0 = now_ms();                                                                                 \
                long _r;                                                                                               \
                errno = 0;                                                                                             \
                _r = (long) (expr);                                                                                    \
                (sh)->p[i] = (Probe){ .ret = _r, .err = _r < 0 ? errno : 0, .ms = now_ms() - _t0 };                    \
        } while (0)

#define ASSERT_PROBE_OK(sh, i) ck_assert_msg((sh)->p[i].ret >= 0, "probe %d failed: %s", i, strerror((sh)->p[i].err))
#define ASSERT_PROBE_ERR(sh, i, e)                                                                                     \
        ck_assert_msg((sh)->p[i].ret < 0 && (sh)->p[i].err == (e), "probe %d: ret %ld errno %s, want %s", i,           \
                      (sh)->p[i].ret, strerror((sh)->p[i].err), strerror(e))

static Shared *shared_new(void) {
        Shared *sh = mmap(NULL, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        ck_assert_ptr_ne(sh, MAP_FAILED);
        memset(sh, 0, sizeof(*sh));
        return sh;
}

typedef void (*ProbeFn)(Shared *sh, const void *arg);

static pid_t fork_as(const Creds *c, ProbeFn fn, const void *arg, Shared *sh) {
        pid_t pid = fork();

        ck_assert_int_ge(pid, 0);
        if (pid > 0)
                return pid;
        if (setgroups((size_t) c->n_groups, c->groups) < 0 || setresgid(c->gid, c->gid, c->gid) < 0 ||
            setresuid(c->uid, c->uid, c->uid) < 0 || getuid() != c->uid)
                _exit(90);
        /* A fresh session keyring, as under systemd's KeyringMode=private: request_key()'s own
         * search cannot see the user keyring, so every request goes up to the handler. */
        if (keyctl_join_session_keyring(NULL) < 0)
                _exit(91);
        fn(sh, arg);
        _exit(0);
}

static void wait_ok(pid_t pid) {
        int status;

        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "probe child failed: status 0x%x", status);
}

static void run_as(const Creds *c, ProbeFn fn, const void *arg, Shared *sh) {
        wait_ok(fork_as(c, fn, arg, sh));
}

static void desc_of(uint32_t generation, char d[KEYRING_DESC_MAX]) {
        snprintf(d, KEYRING_DESC_MAX, "dkm:%s:%u", W.id_hex, (unsigned) generation);
}

/* What a client does (the contract with libdkm): ask, then find the real key through the
 * user keyring, which links the group keyring for members. */
static void probe_request(Shared *sh, const void *arg) {
        const char *desc = arg;
        long marker, key;

        PROBE(sh, 0, marker = request_key("user", desc, KEYRING_REQUEST_CALLOUT, 0));
        PROBE(sh, 1, keyctl_read(marker, (char *) sh->data[0], sizeof(sh->data[0])));
        PROBE(sh, 2, keyctl_describe(marker, sh->desc[0], sizeof(sh->desc[0])));
        PROBE(sh, 3, key = keyctl_search(KEY_SPEC_USER_KEYRING, "user", desc, 0));
        PROBE(sh, 4, keyctl_read(key, (char *) sh->data[1], sizeof(sh->data[1])));
}

static void probe_read_serial(Shared *sh, const void *arg) {
        key_serial_t serial = *(const key_serial_t *) arg;

        PROBE(sh, 0, keyctl_read(serial, (char *) sh->data[0], sizeof(sh->data[0])));
        PROBE(sh, 1, keyctl_describe(serial, sh->desc[0], sizeof(sh->desc[0])));
}

/* request_key() as the given user; returns the errno (0 = a key came back). */
static int request_as(const Creds *c, const char *desc, Shared *sh) {
        run_as(c, probe_request, desc, sh);
        return sh->p[0].ret >= 0 ? 0 : sh->p[0].err;
}

/* ---------------------------------------------------------------------------------------- */
/* The kernel's and the helper's view, from root.                                             */

typedef struct Run {
        int status;
        char out[8192];
        char err[4096];
} Run;

static void slurp(int fd, char *buf, size_t size) {
        ssize_t n;

        ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
        n = loop_read(fd, buf, size - 1);
        ck_assert_int_ge(n, 0);
        buf[n] = 0;
}

static void helper_runv(Run *res, char *const argv[]) {
        int fout = memfd_create("dkmt-out", MFD_CLOEXEC), ferr = memfd_create("dkmt-err", MFD_CLOEXEC), status;
        pid_t pid;

        ck_assert_int_ge(fout, 0);
        ck_assert_int_ge(ferr, 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                int null = open("/dev/null", O_RDONLY);
                dup2(null, STDIN_FILENO);
                dup2(fout, STDOUT_FILENO);
                dup2(ferr, STDERR_FILENO);
                execv(W.helper, argv);
                _exit(127);
        }
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        res->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        slurp(fout, res->out, sizeof(res->out));
        slurp(ferr, res->err, sizeof(res->err));
        close(fout);
        close(ferr);
}

#define HELPER(res, ...) helper_runv(res, (char *const[]){ (char *) "dkm-keyring-helper", __VA_ARGS__, NULL })

/* Serial of generation n in the group keyring per "helper status", 0 if not there. */
static key_serial_t loaded_serial(uint32_t generation) {
        char prefix[32];
        const char *p;
        Run r;

        HELPER(&r, (char *) "status", W.group);
        ck_assert_msg(r.status == 0, "status: %s", r.err);
        snprintf(prefix, sizeof(prefix), "generation %u ", (unsigned) generation);
        for (p = r.out; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
                if (strncmp(p, prefix, strlen(prefix)) == 0)
                        return (key_serial_t) strtol(p + strlen(prefix), NULL, 10);
        return 0;
}

/* The /proc/keys fields of serial: "<timeout> <perm> <uid> <gid> <type>"; false if absent. */
static bool proc_keys(key_serial_t serial, char *timeout, size_t tsize, unsigned *perm, unsigned *uid, unsigned *gid) {
        char line[512], want[16], t[16];
        bool found = false;
        FILE *f = fopen("/proc/keys", "re");

        ck_assert_ptr_nonnull(f);
        snprintf(want, sizeof(want), "%08x ", (unsigned) serial);
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, want, strlen(want)) == 0) {
                        /* serial flags usage timeout perm uid gid type description: ... */
                        ck_assert_int_eq(sscanf(line, "%*x %*s %*d %15s %x %u %u", t, perm, uid, gid), 4);
                        snprintf(timeout, tsize, "%s", t);
                        found = true;
                }
        fclose(f);
        return found;
}

static bool timeout_is_seconds(const char *t) {
        size_t n = strlen(t);

        return n >= 2 && t[n - 1] == 's' && strspn(t, "0123456789") == n - 1;
}

/* The key the store unwraps for a generation (the truth the kernel copy must equal). */
static Secret *store_key(uint32_t generation) {
        _cleanup_store_group_ StoreGroup *g = NULL;
        _cleanup_store_ Store *s = NULL;
        Secret *key = NULL;

        ck_assert_int_eq(crypt_init(), 0);
        ck_assert_int_eq(store_open(W.state, &s), 0);
        ck_assert_int_eq(store_unlock(s, NULL), 0);
        ck_assert_int_eq(store_group_load(s, W.group, &g), 0);
        ck_assert_int_eq(store_generation_unwrap(s, g, generation, &key), 0);
        return key;
}

/* Nothing printed may hold a key of the group, raw or hex. */
static void assert_no_key_material(const char *text) {
        for (uint32_t n = 2; n <= GEN_ACTIVE; n++) {
                _cleanup_secret_ Secret *k = store_key(n);
                char hex[2 * KEYRING_KEY_BYTES + 1];

                for (size_t i = 0; i < KEYRING_KEY_BYTES; i++)
                        sprintf(hex + 2 * i, "%02x", k->data[i]);
                ck_assert_ptr_null(strstr(text, hex));
                ck_assert_ptr_null(memmem(text, strlen(text), k->data, 8));
        }
}

/* Wait (up to the timeout + 5 s) until a member reading serial gets EKEYEXPIRED, or the
 * garbage collector has taken it (ENOKEY). */
static int wait_expired(key_serial_t serial, Shared *sh) {
        double deadline = now_ms() + TIMEOUT_SEC * 1000.0 + 5000.0;
        Creds c = creds_member();

        while (now_ms() < deadline) {
                run_as(&c, probe_read_serial, &serial, sh);
                if (sh->p[0].ret < 0 && (sh->p[0].err == EKEYEXPIRED || sh->p[0].err == ENOKEY))
                        return sh->p[0].err;
                usleep(100 * 1000);
        }
        return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Tests.                                                                                    */

static void check_member_got(Shared *sh, uint32_t generation) {
        _cleanup_secret_ Secret *want = store_key(generation);
        char d[KEYRING_DESC_MAX], marker_desc[300];

        desc_of(generation, d);
        ASSERT_PROBE_OK(sh, 0);
        /* The requested key: the requester's own, holding only the marker. */
        ck_assert_int_eq(sh->p[1].ret, (long) strlen(KEYRING_REQUEST_MARKER));
        ck_assert_mem_eq(sh->data[0], KEYRING_REQUEST_MARKER, strlen(KEYRING_REQUEST_MARKER));
        snprintf(marker_desc, sizeof(marker_desc), "user;%u;%u;3f010000;%s", (unsigned) W.member_uid,
                 (unsigned) W.member_gid, d);
        ck_assert_str_eq(sh->desc[0], marker_desc);
        /* The real key, found again through the group keyring: the store's bytes. */
        ASSERT_PROBE_OK(sh, 3);
        ck_assert_int_eq(sh->p[4].ret, KEYRING_KEY_BYTES);
        ck_assert_mem_eq(sh->data[1], want->data, KEYRING_KEY_BYTES);
}

START_TEST(test_member_on_demand) {
        Shared *sh = shared_new();
        Creds c = creds_member();
        char d[KEYRING_DESC_MAX], t[16];
        unsigned perm, uid, gid;
        key_serial_t first, again;
        double cold;

        desc_of(2, d);
        ck_assert_int_eq(loaded_serial(2), 0);
        run_as(&c, probe_request, d, sh);
        check_member_got(sh, 2);
        cold = sh->p[0].ms;

        first = (key_serial_t) sh->p[3].ret;
        ck_assert_int_eq(loaded_serial(2), first);
        ck_assert(proc_keys(first, t, sizeof(t), &perm, &uid, &gid));
        ck_assert_uint_eq(perm, KEYRING_PERM_KEY);
        ck_assert_uint_eq(uid, 0);
        ck_assert_uint_eq(gid, W.grp_gid);
        ck_assert_msg(timeout_is_seconds(t), "no expiry on the on-demand key: %s", t);
        ck_assert_int_le(atoi(t), TIMEOUT_SEC);

        /* Asked again while it is there: answered, not loaded a second time. */
        run_as(&c, probe_request, d, sh);
        check_member_got(sh, 2);
        ck_assert_int_eq(sh->p[3].ret, first);
        ck_assert_int_eq(loaded_serial(2), first);
        fprintf(stderr, "ondemand: first request (load) %.2f ms, second (already loaded) %.2f ms\n", cold, sh->p[0].ms);

        /* After the timeout the kernel refuses it: dropped out after use. */
        ck_assert_int_ne(wait_expired(first, sh), 0);
        if (proc_keys(first, t, sizeof(t), &perm, &uid, &gid))
                ck_assert_str_eq(t, "expd");

        /* And a new request loads it again, displacing the expired one still linked. */
        run_as(&c, probe_request, d, sh);
        check_member_got(sh, 2);
        again = (key_serial_t) sh->p[3].ret;
        ck_assert_int_ne(again, first);
        ck_assert_int_eq(loaded_serial(2), again);
        munmap(sh, sizeof(*sh));
}
END_TEST

START_TEST(test_retired) {
        Shared *sh = shared_new();
        Creds c = creds_member();
        char d[KEYRING_DESC_MAX];

        desc_of(GEN_RETIRED, d);
        ck_assert_int_eq(request_as(&c, d, sh), EKEYREVOKED);
        ck_assert_int_eq(loaded_serial(GEN_RETIRED), 0);
        munmap(sh, sizeof(*sh));
}
END_TEST

START_TEST(test_unknown) {
        Shared *sh = shared_new();
        Creds c = creds_member();
        uint8_t nobody[KEYRING_GROUP_ID_BYTES];
        char d[KEYRING_DESC_MAX], hex[KEYRING_GROUP_ID_HEX + 1];

        /* No such generation (yet) in our group. */
        desc_of(99, d);
        ck_assert_int_eq(request_as(&c, d, sh), ENOKEY);
        /* An id the handler is asked about that no group in the store has. */
        snprintf(d, sizeof(d), "dkm:%s:2", W.unknown_id_hex);
        ck_assert_int_eq(request_as(&c, d, sh), ENOKEY);
        /* An id no request-key line matches: the kernel's own negative answer, same errno. */
        crypt_random(nobody, sizeof(nobody));
        keyring_group_id_to_hex(nobody, hex);
        snprintf(d, sizeof(d), "dkm:%s:2", hex);
        ck_assert_int_eq(request_as(&c, d, sh), ENOKEY);
        munmap(sh, sizeof(*sh));
}
END_TEST

static void probe_other(Shared *sh, const void *arg) {
        const char *desc = arg;
        long marker;

        PROBE(sh, 0, marker = request_key("user", desc, KEYRING_REQUEST_CALLOUT, 0));
        PROBE(sh, 1, keyctl_read(marker, (char *) sh->data[0], sizeof(sh->data[0])));
        PROBE(sh, 2, keyctl_search(KEY_SPEC_USER_KEYRING, "user", desc, 0));
}

START_TEST(test_nonmember) {
        Shared *sh = shared_new();
        Creds other = creds_other(), member = creds_member();
        char d[KEYRING_DESC_MAX], t[16];
        unsigned perm, uid, gid;
        key_serial_t serial;

        /* A non-member's request loads the key (the handler cannot tell members from others
         * by a uid alone)... */
        desc_of(3, d);
        run_as(&other, probe_other, d, sh);
        ASSERT_PROBE_OK(sh, 0);
        ck_assert_int_eq(sh->p[1].ret, (long) strlen(KEYRING_REQUEST_MARKER));
        ck_assert_mem_eq(sh->data[0], KEYRING_REQUEST_MARKER, strlen(KEYRING_REQUEST_MARKER));
        ASSERT_PROBE_ERR(sh, 2, ENOKEY); /* its user keyring does not lead to the group keyring */
        serial = loaded_serial(3);
        ck_assert_int_gt(serial, 0);
        ck_assert(proc_keys(serial, t, sizeof(t), &perm, &uid, &gid));
        ck_assert_uint_eq(perm, KEYRING_PERM_KEY);
        ck_assert_uint_eq(gid, W.grp_gid);

        /* ...which it still cannot read, even knowing the serial. */
        run_as(&other, probe_read_serial, &serial, sh);
        ASSERT_PROBE_ERR(sh, 0, EACCES);
        ASSERT_PROBE_ERR(sh, 1, EACCES);
        /* The member can. */
        run_as(&member, probe_read_serial, &serial, sh);
        ck_assert_int_eq(sh->p[0].ret, KEYRING_KEY_BYTES);
        munmap(sh, sizeof(*sh));
}
END_TEST

static void probe_callout(Shared *sh, const void *arg) {
        PROBE(sh, 0, request_key("user", (const char *) arg, "not-dkm", 0));
}

START_TEST(test_forged) {
        Shared *sh = shared_new();
        Creds c = creds_member();
        char forged[12][128], upper[KEYRING_GROUP_ID_HEX + 1], d[KEYRING_DESC_MAX];
        size_t n = 0;
        Run r;

        for (size_t i = 0; i <= KEYRING_GROUP_ID_HEX; i++)
                upper[i] = (W.id_hex[i] >= 'a' && W.id_hex[i] <= 'f') ? (char) (W.id_hex[i] - 'a' + 'A') : W.id_hex[i];
        snprintf(forged[n++], sizeof(forged[0]), "dkm:%s:07", W.id_hex);
        snprintf(forged[n++], sizeof(forged[0]), "dkm:%s:0", W.id_hex);
        snprintf(forged[n++], sizeof(forged[0]), "dkm:%s:x", W.id_hex);
        snprintf(forged[n++], sizeof(forged[0]), "dkm:%s:", W.id_hex);
        snprintf(forged[n++], sizeof(forged[0]), "dkm:%s:2:3", W.id_hex);
        snprintf(forged[n++], sizeof(forged[0]), "dkm:%s:-2", W.id_hex);
        snprintf(forged[n++], sizeof(forged[0]), "dkm:%s:99999999999", W.id_hex);
        snprintf(forged[n++], sizeof(forged[0]), "dkm:%s:2", upper);
        snprintf(forged[n++], sizeof(forged[0]), "dkm:%.24s:2", W.id_hex);
        snprintf(forged[n++], sizeof(forged[0]), "dkm:%.24szzzzzzzz:2", W.id_hex);
        snprintf(forged[n++], sizeof(forged[0]), "dkmt-%ld-forged:%s:2", (long) W.main_pid, W.id_hex);

        /* EINVAL is the handler's own answer: it ran and refused (a crash would leave the
         * kernel's ENOKEY). */
        for (size_t i = 0; i < n; i++)
                ck_assert_msg(request_as(&c, forged[i], sh) == EINVAL, "%s: %s", forged[i],
                              strerror(sh->p[0].err ?: 0));
        desc_of(4, d);
        run_as(&c, probe_callout, d, sh);
        ASSERT_PROBE_ERR(sh, 0, EINVAL);
        ck_assert_int_eq(loaded_serial(4), 0);

        /* Run by hand, outside an upcall: refused before touching the store or the kernel. */
        HELPER(&r, (char *) "request-key");
        ck_assert_int_eq(r.status, KEYRING_HELPER_EXIT_USAGE);
        HELPER(&r, (char *) "request-key", (char *) "12x", d, (char *) "dkm");
        ck_assert_int_eq(r.status, KEYRING_HELPER_EXIT_USAGE);
        HELPER(&r, (char *) "request-key", (char *) "--timeout=1", (char *) "12", d, (char *) "dkm");
        ck_assert_int_eq(r.status, KEYRING_HELPER_EXIT_USAGE);
        HELPER(&r, (char *) "request-key", (char *) "--state-dir=relative", (char *) "12", d, (char *) "dkm");
        ck_assert_int_eq(r.status, KEYRING_HELPER_EXIT_USAGE);
        HELPER(&r, (char *) "request-key", (char *) "12", d, (char *) "dkm", (char *) "extra");
        ck_assert_int_eq(r.status, KEYRING_HELPER_EXIT_USAGE);
        ck_assert_ptr_eq(strchr(r.err, '\n'), r.err + strlen(r.err) - 1); /* one line */
        {
                /* A real key, but not one under construction for the helper: no authority. */
                key_serial_t mine = add_key("user", d, "x", 1, KEY_SPEC_PROCESS_KEYRING);
                char serial[16];

                ck_assert_int_gt(mine, 0);
                snprintf(serial, sizeof(serial), "%d", (int) mine);
                HELPER(&r, (char *) "request-key", serial, d, (char *) "dkm");
                ck_assert_int_eq(r.status, KEYRING_HELPER_EXIT_PRIVILEGE);
                ck_assert_ptr_nonnull(strstr(r.err, "not under construction"));
                ck_assert_ptr_eq(strchr(r.err, '\n'), r.err + strlen(r.err) - 1);
                assert_no_key_material(r.err);
                (void) keyctl_invalidate(mine);
        }
        ck_assert_int_eq(loaded_serial(4), 0);

        /* And the handler still serves a good request. */
        ck_assert_int_eq(request_as(&c, d, sh), 0);
        check_member_got(sh, 4);
        munmap(sh, sizeof(*sh));
}
END_TEST

START_TEST(test_hot_untouched) {
        Shared *sh = shared_new();
        Creds c = creds_member();
        key_serial_t before = loaded_serial(GEN_ACTIVE);
        char d[KEYRING_DESC_MAX], t[16];
        unsigned perm, uid, gid;

        ck_assert_int_gt(before, 0);
        desc_of(GEN_ACTIVE, d);
        run_as(&c, probe_request, d, sh);
        check_member_got(sh, GEN_ACTIVE);
        ck_assert_int_eq(sh->p[3].ret, before);
        ck_assert_int_eq(loaded_serial(GEN_ACTIVE), before);
        ck_assert(proc_keys(before, t, sizeof(t), &perm, &uid, &gid));
        ck_assert_str_eq(t, "perm"); /* the active key never gains a timeout */
        munmap(sh, sizeof(*sh));
}
END_TEST

START_TEST(test_reload) {
        Shared *sh = shared_new();
        Creds c = creds_member();
        char d[KEYRING_DESC_MAX], t[16];
        unsigned perm, uid, gid;
        key_serial_t s3, s4;

        /* A load whose manifest leaves it out invalidates an on-demand key: it is simply
         * requested again later. */
        desc_of(3, d);
        ck_assert_int_eq(request_as(&c, d, sh), 0);
        s3 = loaded_serial(3);
        ck_assert_int_gt(s3, 0);
        ck_assert_int_eq(load_group(0), 0);
        ck_assert_int_eq(loaded_serial(3), 0);
        run_as(&c, probe_read_serial, &s3, sh);
        ck_assert_int_lt(sh->p[0].ret, 0);

        /* A load whose manifest lists it keeps it and clears its timeout. */
        desc_of(4, d);
        ck_assert_int_eq(request_as(&c, d, sh), 0);
        s4 = loaded_serial(4);
        ck_assert(proc_keys(s4, t, sizeof(t), &perm, &uid, &gid));
        ck_assert(timeout_is_seconds(t));
        ck_assert_int_eq(load_group(1), 0); /* hot: generation 4 */
        ck_assert_int_eq(loaded_serial(4), s4);
        ck_assert(proc_keys(s4, t, sizeof(t), &perm, &uid, &gid));
        ck_assert_str_eq(t, "perm");

        /* An expired on-demand key, still linked until the garbage collector runs, does not
         * make a load that wants that generation fail. */
        desc_of(3, d);
        ck_assert_int_eq(request_as(&c, d, sh), 0);
        s3 = loaded_serial(3);
        ck_assert_int_ne(wait_expired(s3, sh), 0);
        ck_assert_int_eq(load_group(2), 0); /* hot: generations 3 and 4 */
        ck_assert_int_ne(loaded_serial(3), s3);
        run_as(&c, probe_request, d, sh);
        check_member_got(sh, 3);
        ck_assert(proc_keys((key_serial_t) sh->p[3].ret, t, sizeof(t), &perm, &uid, &gid));
        ck_assert_str_eq(t, "perm");

        ck_assert_int_eq(load_group(0), 0);
        munmap(sh, sizeof(*sh));
}
END_TEST

START_TEST(test_concurrent) {
        Shared *a = shared_new(), *b = shared_new();
        Creds member = creds_member(), other = creds_other();
        char d[KEYRING_DESC_MAX];
        pid_t pa, pb;
        Run r;

        /* Two requesters with different credentials each trigger an upcall; the handlers
         * serialize on the runtime directory's lock, so the key is added once. */
        desc_of(2, d);
        ck_assert_int_eq(load_group(0), 0);
        pa = fork_as(&member, probe_request, d, a);
        pb = fork_as(&other, probe_other, d, b);
        wait_ok(pa);
        wait_ok(pb);
        check_member_got(a, 2);
        ASSERT_PROBE_OK(b, 0);
        HELPER(&r, (char *) "status", W.group);
        ck_assert_int_eq(r.status, 0);
        ck_assert_ptr_nonnull(strstr(r.out, "generation 2 "));
        ck_assert_ptr_null(strstr(strstr(r.out, "generation 2 ") + 1, "generation 2 "));
        munmap(a, sizeof(*a));
        munmap(b, sizeof(*b));
}
END_TEST

START_TEST(test_passphrase_store) {
        Shared *sh = shared_new();
        Creds c = creds_member();
        char d[KEYRING_DESC_MAX];

        /* The handler only tries file protectors: an archived generation cannot be unwrapped. */
        snprintf(d, sizeof(d), "dkm:%s:1", W.pw_id_hex);
        ck_assert_int_eq(request_as(&c, d, sh), ENOKEY);
        /* A generation that is loaded needs no unwrapping, so it is still answered. */
        snprintf(d, sizeof(d), "dkm:%s:%u", W.pw_id_hex, PW_GEN_ACTIVE);
        ck_assert_int_eq(request_as(&c, d, sh), 0);
        ck_assert_int_eq(sh->p[4].ret, KEYRING_KEY_BYTES);
        munmap(sh, sizeof(*sh));
}
END_TEST

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return x < y ? -1 : x > y;
}

#define LATENCY_RUNS 15

START_TEST(test_latency) {
        double load[LATENCY_RUNS], present[LATENCY_RUNS], reject[LATENCY_RUNS];
        char d2[KEYRING_DESC_MAX], d5[KEYRING_DESC_MAX], d1[KEYRING_DESC_MAX];
        double t0;

        desc_of(2, d2);
        desc_of(GEN_ACTIVE, d5);
        desc_of(GEN_RETIRED, d1);
        for (int i = 0; i < LATENCY_RUNS; i++) {
                key_serial_t s = loaded_serial(2);

                /* Gone again before each load (the owner may invalidate): every round trip
                 * opens the store, unwraps and places the key. */
                if (s > 0)
                        ck_assert_int_eq(keyctl_invalidate(s), 0);
                ck_assert_int_gt(keyctl_join_session_keyring(NULL), 0);
                t0 = now_ms();
                ck_assert_int_gt(request_key("user", d2, KEYRING_REQUEST_CALLOUT, 0), 0);
                load[i] = now_ms() - t0;
                ck_assert_int_gt(keyctl_join_session_keyring(NULL), 0);
                t0 = now_ms();
                ck_assert_int_gt(request_key("user", d5, KEYRING_REQUEST_CALLOUT, 0), 0);
                present[i] = now_ms() - t0;
                ck_assert_int_gt(keyctl_join_session_keyring(NULL), 0);
                t0 = now_ms();
                ck_assert_int_lt(request_key("user", d1, KEYRING_REQUEST_CALLOUT, 0), 0);
                ck_assert_int_eq(errno, EKEYREVOKED);
                reject[i] = now_ms() - t0;
        }
        qsort(load, LATENCY_RUNS, sizeof(double), cmp_double);
        qsort(present, LATENCY_RUNS, sizeof(double), cmp_double);
        qsort(reject, LATENCY_RUNS, sizeof(double), cmp_double);
        fprintf(stderr,
                "ondemand: request-key upcall latency over %d runs, median (min): load %.2f ms (%.2f), "
                "already loaded %.2f ms (%.2f), retired %.2f ms (%.2f)\n",
                LATENCY_RUNS, load[LATENCY_RUNS / 2], load[0], present[LATENCY_RUNS / 2], present[0],
                reject[LATENCY_RUNS / 2], reject[0]);
}
END_TEST

/* Last: what a sanitizer build's helper reported while serving upcalls (nothing, we hope). */
START_TEST(test_no_sanitizer_reports) {
        _cleanup_free_ char *found = NULL;
        struct dirent *de;
        DIR *d = opendir(W.sanitizer_logs);

        ck_assert_ptr_nonnull(d);
        while ((de = readdir(d)))
                if (de->d_name[0] != '.' && !found) {
                        char path[400], buf[2048] = "";
                        int fd;

                        snprintf(path, sizeof(path), "%s/%s", W.sanitizer_logs, de->d_name);
                        fd = open(path, O_RDONLY | O_CLOEXEC);
                        if (fd >= 0) {
                                (void) !read(fd, buf, sizeof(buf) - 1);
                                close(fd);
                        }
                        found = strdup(buf);
                        fprintf(stderr, "%s:\n%s\n", path, buf);
                }
        closedir(d);
        ck_assert_msg(!found, "the helper's sanitizer reported an error during an upcall (see above)");
}
END_TEST

/* The drop-in meson generates: one line, our helper at its installed path. Pure. */
START_TEST(test_conf_generated) {
        const char *path = getenv("DKM_REQUEST_KEY_CONF");
        char line[1024], f[9][256];
        int lines = 0;
        FILE *fp;

        ck_assert_ptr_nonnull(path);
        fp = fopen(path, "re");
        ck_assert_ptr_nonnull(fp);
        while (fgets(line, sizeof(line), fp)) {
                if (line[0] == '#' || line[0] == '\n')
                        continue;
                lines++;
                ck_assert_int_eq(sscanf(line, "%255s %255s %255s %255s %255s %255s %255s %255s %255s", f[0], f[1], f[2],
                                        f[3], f[4], f[5], f[6], f[7], f[8]),
                                 9);
                ck_assert_str_eq(f[0], "create");
                ck_assert_str_eq(f[1], "user");
                ck_assert_str_eq(f[2], "dkm:*");
                ck_assert_str_eq(f[3], "*");
                ck_assert_int_eq(f[4][0], '/');
                ck_assert_ptr_nonnull(strstr(f[4], "/dkm/dkm-keyring-helper"));
                ck_assert_str_eq(f[5], "request-key");
                ck_assert_str_eq(f[6], "%k");
                ck_assert_str_eq(f[7], "%d");
                ck_assert_str_eq(f[8], "%c");
        }
        fclose(fp);
        ck_assert_int_eq(lines, 1);
}
END_TEST

static Suite *ondemand_suite(bool integration) {
        Suite *s = suite_create("ondemand");
        TCase *tc = tcase_create("pure");

        tcase_add_test(tc, test_conf_generated);
        suite_add_tcase(s, tc);
        if (integration) {
                /* In this order: each test leaves the group loaded with hot window 0. */
                tc = tcase_create("kernel");
                tcase_add_test(tc, test_member_on_demand);
                tcase_add_test(tc, test_retired);
                tcase_add_test(tc, test_unknown);
                tcase_add_test(tc, test_nonmember);
                tcase_add_test(tc, test_forged);
                tcase_add_test(tc, test_hot_untouched);
                tcase_add_test(tc, test_reload);
                tcase_add_test(tc, test_concurrent);
                tcase_add_test(tc, test_passphrase_store);
                tcase_add_test(tc, test_latency);
                tcase_add_test(tc, test_no_sanitizer_reports);
                suite_add_tcase(s, tc);
        }
        return s;
}

static int run_suite_in_child(void) {
        int status;
        pid_t pid;

        fflush(NULL);
        pid = fork();
        if (pid < 0)
                return EXIT_FAILURE;
        if (pid == 0) {
                (void) setpgid(0, 0);
                (void) prctl(PR_SET_PDEATHSIG, SIGTERM);
                if (getppid() != W.main_pid)
                        _exit(EXIT_FAILURE);
                status = test_run_suite(ondemand_suite(true));
                fflush(NULL);
                _exit(status);
        }
        suite_pid = pid;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return EXIT_FAILURE;
        suite_pid = 0;
        return WIFEXITED(status) ? WEXITSTATUS(status) : EXIT_FAILURE;
}

int main(void) {
        bool root = geteuid() == 0;
        int r;

        W.main_pid = getpid();
        if (!root)
                r = test_run_suite(ondemand_suite(false));
        else if (world_setup() < 0)
                r = EXIT_FAILURE;
        else
                r = run_suite_in_child();
        world_cleanup();
        if (!root && r == EXIT_SUCCESS) {
                /* Real uids, root-owned keys and /etc/request-key.d need root; CI runs as root. */
                fprintf(stderr, "not root: on-demand kernel tests skipped\n");
                return 77;
        }
        return r;
}
