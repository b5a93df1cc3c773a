/* SPDX-License-Identifier: MIT */
/* Throwaway accounts, directories and key groups for root integration tests, removed even when a test fails. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <keyutils.h>

#include "fileio.h"
#include "macro.h"
#include "test-accounts.h"
#include "test-helpers.h"

TestWorld TW;
bool test_world_want_person = false;
bool test_world_want_approvers = false;

extern char **environ;

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

        /* Check forks every test; only the process that made the world tears it down. */
        if (getpid() != TW.main_pid || done)
                return;
        done = 1;
        /* Tests install it in their own (forked) process: the path is fixed at setup. */
        if (TW.request_key_conf[0])
                (void) unlink(TW.request_key_conf);
        if (TW.helper)
                for (size_t i = 0; i < TW.n_key_groups; i++)
                        (void) run_quiet(
                                (char *const[]){ (char *) TW.helper, (char *) "unload", TW.key_groups[i], NULL });
        if (TW.made_member)
                (void) run_quiet((char *const[]){ (char *) "/usr/sbin/userdel", TW.member, NULL });
        if (TW.made_member2)
                (void) run_quiet((char *const[]){ (char *) "/usr/sbin/userdel", TW.member2, NULL });
        if (TW.made_other)
                (void) run_quiet((char *const[]){ (char *) "/usr/sbin/userdel", TW.other, NULL });
        if (TW.made_person)
                (void) run_quiet((char *const[]){ (char *) "/usr/sbin/userdel", TW.person, NULL });
        if (TW.made_approver1)
                (void) run_quiet((char *const[]){ (char *) "/usr/sbin/userdel", TW.approver1, NULL });
        if (TW.made_approver2)
                (void) run_quiet((char *const[]){ (char *) "/usr/sbin/userdel", TW.approver2, NULL });
        if (TW.made_both)
                (void) run_quiet((char *const[]){ (char *) "/usr/sbin/userdel", TW.both, NULL });
        if (TW.made_appr1)
                (void) run_quiet((char *const[]){ (char *) "/usr/sbin/groupdel", TW.appr1, NULL });
        if (TW.made_appr2)
                (void) run_quiet((char *const[]){ (char *) "/usr/sbin/groupdel", TW.appr2, NULL });
        if (TW.made_grp)
                (void) run_quiet((char *const[]){ (char *) "/usr/sbin/groupdel", TW.grp, NULL });
        if (TW.dir[0])
                (void) run_quiet((char *const[]){ (char *) "/bin/rm", (char *) "-rf", TW.dir, NULL });
}

static volatile pid_t suite_pid = 0;

static void world_signal(int sig) {
        if (getpid() != TW.main_pid) {
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

/* What a run killed outright (SIGKILL skips every cleanup) left: key groups, directories,
 * request-key drop-ins, accounts. */
static void sweep_stale(void) {
        key_serial_t list[256], registry = 0;
        long n = keyctl_read(KEY_SPEC_USER_KEYRING, (char *) list, sizeof(list));
        char desc[256], names[64][40], path[300];
        struct passwd *pw;
        struct group *gr;
        struct dirent *de;
        size_t k = 0;
        DIR *d;

        for (long i = 0; i < n / (long) sizeof(key_serial_t) && i < 256; i++)
                if (keyctl_describe(list[i], desc, sizeof(desc)) > 0 &&
                    strcmp(desc, "keyring;0;0;01370000;dkm:.registry") == 0)
                        registry = list[i];
        n = registry > 0 ? keyctl_read(registry, (char *) list, sizeof(list)) : 0;
        for (long i = 0; i < n / (long) sizeof(key_serial_t) && i < 256; i++) {
                char *name;

                if (keyctl_describe(list[i], desc, sizeof(desc)) <= 0 || !(name = strstr(desc, ";dkm:")))
                        continue;
                name += strlen(";dkm:");
                if (name_of_dead_run(name))
                        (void) run_quiet((char *const[]){ (char *) TW.helper, (char *) "unload", name, NULL });
        }
        if ((d = opendir("/tmp"))) {
                while ((de = readdir(d)))
                        if (name_of_dead_run(de->d_name)) {
                                snprintf(path, sizeof(path), "/tmp/%s", de->d_name);
                                (void) run_quiet((char *const[]){ (char *) "/bin/rm", (char *) "-rf", path, NULL });
                        }
                closedir(d);
        }
        if ((d = opendir("/etc/request-key.d"))) {
                long pid;
                while ((de = readdir(d)))
                        if (sscanf(de->d_name, "dkm-test-%ld.conf", &pid) == 1 && pid_dead(pid)) {
                                snprintf(path, sizeof(path), "/etc/request-key.d/%s", de->d_name);
                                (void) unlink(path);
                        }
                closedir(d);
        }
        setpwent();
        while ((pw = getpwent()) && k < ELEMENTSOF(names))
                if (name_of_dead_run(pw->pw_name))
                        snprintf(names[k++], sizeof(names[0]), "%s", pw->pw_name);
        endpwent();
        for (size_t i = 0; i < k; i++)
                (void) run_quiet((char *const[]){ (char *) "/usr/sbin/userdel", names[i], NULL });
        k = 0;
        setgrent();
        while ((gr = getgrent()) && k < ELEMENTSOF(names))
                if (name_of_dead_run(gr->gr_name))
                        snprintf(names[k++], sizeof(names[0]), "%s", gr->gr_name);
        endgrent();
        for (size_t i = 0; i < k; i++)
                (void) run_quiet((char *const[]){ (char *) "/usr/sbin/groupdel", names[i], NULL });
}

/* A system account with a nologin shell, in the supplementary groups (a comma list, or NULL). */
static int add_user_in(char *name, const char *groups, uid_t *ret_uid, gid_t *ret_gid) {
        char *argv[] = { (char *) "/usr/sbin/useradd",
                         (char *) "--system",
                         (char *) "--no-create-home",
                         (char *) "--shell",
                         (char *) "/usr/sbin/nologin",
                         name,
                         NULL,
                         NULL,
                         NULL };
        struct passwd *pw;

        if (groups) {
                argv[5] = (char *) "-G";
                argv[6] = (char *) groups;
                argv[7] = name;
        }
        if (run_quiet(argv) != 0)
                return fprintf(stderr, "useradd %s failed\n", name), -1;
        pw = getpwnam(name);
        if (!pw)
                return -1;
        *ret_uid = pw->pw_uid;
        *ret_gid = pw->pw_gid;
        return 0;
}

static int add_user(char *name, bool in_grp, uid_t *ret_uid, gid_t *ret_gid) {
        return add_user_in(name, in_grp ? TW.grp : NULL, ret_uid, ret_gid);
}

static int add_group(char *name, bool *made, gid_t *ret_gid) {
        struct group *gr;

        if (run_quiet((char *const[]){ (char *) "/usr/sbin/groupadd", (char *) "--system", name, NULL }) != 0)
                return fprintf(stderr, "groupadd %s failed\n", name), -1;
        *made = true;
        gr = getgrnam(name);
        if (!gr)
                return -1;
        *ret_gid = gr->gr_gid;
        return 0;
}

static int add_approvers(long pid) {
        char both_groups[96];

        snprintf(TW.appr1, sizeof(TW.appr1), "dkmt-%ld-appr1", pid);
        snprintf(TW.appr2, sizeof(TW.appr2), "dkmt-%ld-appr2", pid);
        snprintf(TW.approver1, sizeof(TW.approver1), "dkmt-%ld-approver1", pid);
        snprintf(TW.approver2, sizeof(TW.approver2), "dkmt-%ld-approver2", pid);
        snprintf(TW.both, sizeof(TW.both), "dkmt-%ld-both", pid);
        snprintf(both_groups, sizeof(both_groups), "%s,%s", TW.appr1, TW.appr2);
        if (add_group(TW.appr1, &TW.made_appr1, &TW.appr1_gid) < 0 ||
            add_group(TW.appr2, &TW.made_appr2, &TW.appr2_gid) < 0)
                return -1;
        if (add_user_in(TW.approver1, TW.appr1, &TW.approver1_uid, &TW.approver1_gid) < 0)
                return -1;
        TW.made_approver1 = true;
        if (add_user_in(TW.approver2, TW.appr2, &TW.approver2_uid, &TW.approver2_gid) < 0)
                return -1;
        TW.made_approver2 = true;
        if (add_user_in(TW.both, both_groups, &TW.both_uid, &TW.both_gid) < 0)
                return -1;
        TW.made_both = true;
        return 0;
}

static int world_setup(const char *const *tags) {
        static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
        long pid = (long) getpid();
        struct group *gr;

        TW.main_pid = getpid();
        TW.helper = getenv("DKM_KEYRING_HELPER");
        TW.store = getenv("DKM_STORE");
        if (!TW.helper || access(TW.helper, X_OK) < 0 || !TW.store || access(TW.store, X_OK) < 0) {
                fprintf(stderr, "DKM_KEYRING_HELPER and DKM_STORE must name the built programs\n");
                return -1;
        }
        for (size_t i = 0; tags && tags[i]; i++) {
                if (TW.n_key_groups == TEST_KEY_GROUPS_MAX)
                        return -1;
                snprintf(TW.key_groups[TW.n_key_groups++], sizeof(TW.key_groups[0]), "dkmt-%ld-%s", pid, tags[i]);
        }
        atexit(world_cleanup);
        for (size_t i = 0; i < ELEMENTSOF(sigs); i++)
                signal(sigs[i], world_signal);

        snprintf(TW.dir, sizeof(TW.dir), "/tmp/dkmt-%ld-XXXXXX", pid);
        if (!mkdtemp(TW.dir) || chmod(TW.dir, 0755) < 0)
                return -1;
        snprintf(TW.runtime_dir, sizeof(TW.runtime_dir), "%s/run", TW.dir);
        snprintf(TW.state_dir, sizeof(TW.state_dir), "%s/state", TW.dir);
        snprintf(TW.work_dir, sizeof(TW.work_dir), "%s/work", TW.dir);
        if (mkdir(TW.work_dir, 0755) < 0 || chmod(TW.work_dir, 01777) < 0)
                return -1;
        snprintf(TW.request_key_conf, sizeof(TW.request_key_conf), "/etc/request-key.d/dkm-test-%ld.conf", pid);
        setenv("DKM_RUNTIME_DIR", TW.runtime_dir, 1);
        setenv("DKM_STATE_DIR", TW.state_dir, 1);
        /* With the runtime dir set, so sweeping never touches the real /run/dkm. */
        sweep_stale();

        snprintf(TW.grp, sizeof(TW.grp), "dkmt-%ld-grp", pid);
        snprintf(TW.member, sizeof(TW.member), "dkmt-%ld-member", pid);
        snprintf(TW.member2, sizeof(TW.member2), "dkmt-%ld-member2", pid);
        snprintf(TW.other, sizeof(TW.other), "dkmt-%ld-other", pid);
        if (run_quiet((char *const[]){ (char *) "/usr/sbin/groupadd", (char *) "--system", TW.grp, NULL }) != 0)
                return fprintf(stderr, "groupadd %s failed\n", TW.grp), -1;
        TW.made_grp = true;
        gr = getgrnam(TW.grp);
        if (!gr)
                return -1;
        TW.gid = gr->gr_gid;
        if (add_user(TW.member, true, &TW.member_uid, &TW.member_gid) < 0)
                return -1;
        TW.made_member = true;
        if (add_user(TW.member2, true, &TW.member2_uid, &TW.member2_gid) < 0)
                return -1;
        TW.made_member2 = true;
        if (add_user(TW.other, false, &TW.other_uid, &TW.other_gid) < 0)
                return -1;
        TW.made_other = true;
        if (test_world_want_person) {
                snprintf(TW.person, sizeof(TW.person), "dkmt-%ld-person", pid);
                if (add_user(TW.person, false, &TW.person_uid, &TW.person_gid) < 0)
                        return -1;
                TW.made_person = true;
        }
        if (test_world_want_approvers && add_approvers(pid) < 0)
                return -1;

        if (run_quiet((char *const[]){ (char *) TW.store, (char *) "init", NULL }) != 0)
                return fprintf(stderr, "dkm-store init %s failed\n", TW.state_dir), -1;
        return 0;
}

static int run_suite_in_child(Suite *(*make_suite)(bool integration)) {
        int status;
        pid_t pid;

        fflush(NULL);
        pid = fork();
        if (pid < 0)
                return EXIT_FAILURE;
        if (pid == 0) {
                (void) setpgid(0, 0);
                (void) prctl(PR_SET_PDEATHSIG, SIGTERM);
                if (getppid() != TW.main_pid)
                        _exit(EXIT_FAILURE);
                status = test_run_suite(make_suite(true));
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

int test_world_main(Suite *(*make_suite)(bool integration), const char *const *key_group_tags) {
        bool root = geteuid() == 0;
        int r;

        TW.main_pid = getpid();
        if (!root)
                r = test_run_suite(make_suite(false));
        else if (world_setup(key_group_tags) < 0)
                r = EXIT_FAILURE;
        else
                r = run_suite_in_child(make_suite);
        world_cleanup();
        if (!root && r == EXIT_SUCCESS) {
                /* Real uids and root-owned keys cannot be had without root; CI runs as root. */
                fprintf(stderr, "not root: kernel integration tests skipped\n");
                return 77;
        }
        return r;
}

const char *test_key_group(const char *tag) {
        char want[64];

        snprintf(want, sizeof(want), "dkmt-%ld-%s", (long) TW.main_pid, tag);
        for (size_t i = 0; i < TW.n_key_groups; i++)
                if (strcmp(TW.key_groups[i], want) == 0)
                        return TW.key_groups[i];
        ck_abort_msg("key group tag %s not registered (cleanup would miss it)", tag);
        return NULL;
}

TestCreds test_creds_member(void) {
        return (TestCreds){ .uid = TW.member_uid, .gid = TW.member_gid, .groups = { TW.gid }, .n_groups = 1 };
}
TestCreds test_creds_member_without_gid(void) {
        return (TestCreds){ .uid = TW.member_uid, .gid = TW.member_gid };
}
TestCreds test_creds_member2(void) {
        return (TestCreds){ .uid = TW.member2_uid, .gid = TW.member2_gid, .groups = { TW.gid }, .n_groups = 1 };
}
TestCreds test_creds_other(void) {
        return (TestCreds){ .uid = TW.other_uid, .gid = TW.other_gid };
}

TestCreds test_creds_person(void) {
        return (TestCreds){ .uid = TW.person_uid, .gid = TW.person_gid };
}

TestCreds test_creds_approver1(void) {
        return (TestCreds){
                .uid = TW.approver1_uid, .gid = TW.approver1_gid, .groups = { TW.appr1_gid }, .n_groups = 1
        };
}
TestCreds test_creds_approver2(void) {
        return (TestCreds){
                .uid = TW.approver2_uid, .gid = TW.approver2_gid, .groups = { TW.appr2_gid }, .n_groups = 1
        };
}
TestCreds test_creds_both(void) {
        return (TestCreds){
                .uid = TW.both_uid, .gid = TW.both_gid, .groups = { TW.appr1_gid, TW.appr2_gid }, .n_groups = 2
        };
}

void test_become(const TestCreds *c) {
        if (setgroups((size_t) c->n_groups, c->groups) < 0 || setresgid(c->gid, c->gid, c->gid) < 0 ||
            setresuid(c->uid, c->uid, c->uid) < 0 || getuid() != c->uid || getgid() != c->gid)
                _exit(90);
        if (keyctl_join_session_keyring(NULL) < 0)
                _exit(91);
}

pid_t test_fork_as(const TestCreds *c, void (*fn)(void *userdata), void *userdata) {
        pid_t pid;

        fflush(NULL);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid > 0)
                return pid;
        if (c)
                test_become(c);
        fn(userdata);
        fflush(NULL);
        _exit(0);
}

int test_wait(pid_t pid) {
        int status;

        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void test_wait_ok(pid_t pid) {
        int status = test_wait(pid);

        ck_assert_msg(status == 0, "child %d failed: status %d", (int) pid, status);
}

void *test_shared_new(size_t size) {
        void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

        ck_assert_ptr_ne(p, MAP_FAILED);
        memset(p, 0, size);
        return p;
}

static int memfd_with(const void *data, size_t size) {
        int fd = memfd_create("dkmt", MFD_CLOEXEC);

        ck_assert_int_ge(fd, 0);
        if (size > 0)
                ck_assert_int_eq(loop_write(fd, data, size), 0);
        ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
        return fd;
}

void test_run(TestRun *r, const void *in, size_t in_size, const TestCreds *c, char *const argv[]) {
        int fin = memfd_with(in, in_size), fout = memfd_with(NULL, 0), ferr = memfd_with(NULL, 0);
        struct stat st;
        ssize_t n;
        pid_t pid;

        fflush(NULL);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                if (dup2(fin, STDIN_FILENO) < 0 || dup2(fout, STDOUT_FILENO) < 0 || dup2(ferr, STDERR_FILENO) < 0)
                        _exit(126);
                if (c)
                        test_become(c);
                execve(argv[0], argv, environ);
                _exit(127);
        }
        r->status = test_wait(pid);
        ck_assert_int_eq(fstat(fout, &st), 0);
        r->out_size = (size_t) st.st_size;
        r->out = malloc(r->out_size + 1);
        ck_assert_ptr_nonnull(r->out);
        ck_assert_int_eq(pread(fout, r->out, r->out_size, 0), (ssize_t) r->out_size);
        r->out[r->out_size] = 0;
        n = pread(ferr, r->err, sizeof(r->err) - 1, 0);
        r->err[n > 0 ? n : 0] = 0;
        close(fin);
        close(fout);
        close(ferr);
}

void test_run_free(TestRun *r) {
        free(r->out);
        r->out = NULL;
}

int test_store_v(const char *const args[]) {
        char *argv[16] = { (char *) TW.store };
        size_t n = 0;
        TestRun r;
        int status;

        while (args[n] && n + 2 < ELEMENTSOF(argv)) {
                argv[n + 1] = (char *) args[n];
                n++;
        }
        argv[n + 1] = NULL;
        test_run(&r, NULL, 0, NULL, argv);
        status = r.status;
        if (status != 0)
                fprintf(stderr, "dkm-store %s %s: status %d: %s", args[0], args[1] ?: "", status, r.err);
        test_run_free(&r);
        return status;
}

long test_helper_status_value(const char *group, const char *prefix) {
        TestRun r;
        const char *p;
        long v = -1;

        test_run(&r, NULL, 0, NULL, (char *const[]){ (char *) TW.helper, (char *) "status", (char *) group, NULL });
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

static bool proc_keys_has(int32_t serial) {
        char line[512], want[16];
        bool found = false;
        FILE *f = fopen("/proc/keys", "re");

        ck_assert_ptr_nonnull(f);
        snprintf(want, sizeof(want), "%08x ", (unsigned) serial);
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, want, strlen(want)) == 0)
                        found = true;
        fclose(f);
        return found;
}

bool test_proc_keys_gone(int32_t serial) {
        /* The kernel frees unreferenced keys from a work queue, a user namespace's keyrings only
         * once the namespace itself is freed (also deferred): under load that took over 5 s once
         * (hosts-smoke in CI). 20 s: a key that is really kept stays for good. */
        for (int i = 0; i < 800; i++) {
                if (!proc_keys_has(serial))
                        return true;
                usleep(25 * 1000);
        }
        return false;
}

bool test_request_key_install(void) {
        char line[1024], idhex[40] = "";
        TestRun r;
        FILE *f;

        /* The helper's own help lists its commands. */
        test_run(&r, NULL, 0, NULL, (char *const[]){ (char *) TW.helper, (char *) "--help", NULL });
        bool have = r.status == 0 && strstr((const char *) r.out, "request-key");
        test_run_free(&r);
        if (!have)
                return false;

        /* One line per key group of this run, naming its id: never matches another run's or
         * the system's requests. The same file name as tests/test-ondemand.c, so either run
         * sweeps what a killed other left. */
        ck_assert(mkdir("/etc/request-key.d", 0755) >= 0 || errno == EEXIST);
        f = fopen(TW.request_key_conf, "we");
        ck_assert_ptr_nonnull(f);
        for (size_t i = 0; i < TW.n_key_groups; i++) {
                const char *p;

                test_run(&r, NULL, 0, NULL,
                         (char *const[]){ (char *) TW.store, (char *) "group", (char *) "show", TW.key_groups[i],
                                          NULL });
                p = r.status == 0 ? strstr((const char *) r.out, "Group id:") : NULL;
                if (p && sscanf(p, "Group id: %32s", idhex) == 1) {
                        snprintf(line, sizeof(line),
                                 "create user dkm:%s:* * %s request-key --state-dir=%s --runtime-dir=%s --timeout=60 "
                                 "%%k %%d %%c\n",
                                 idhex, TW.helper, TW.state_dir, TW.runtime_dir);
                        fputs(line, f);
                }
                test_run_free(&r);
        }
        ck_assert_int_eq(fclose(f), 0);
        return true;
}

void test_request_key_remove(void) {
        (void) unlink(TW.request_key_conf);
}
