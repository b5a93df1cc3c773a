/* SPDX-License-Identifier: MIT */
/* A private system-type dbus-daemon and dkmd on it, for the tests of dkmd and dkmctl. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fileio.h"
#include "macro.h"
#include "test-accounts.h"
#include "test-bus.h"

/* The bus and the daemon live in the suite runner (an unchecked fixture), across the forked
 * tests; both die with the runner (PR_SET_PDEATHSIG) if it is killed before the teardown. */
static pid_t dbus_pid = -1, dkmd_pid = -1;
static char bus_dir[80], dkmd_log[160]; /* TW.dir is at most 63 characters */

const char *test_env_path(const char *name) {
        const char *p = getenv(name);

        ck_assert_msg(p && access(p, F_OK) == 0, "%s must name the built file", name);
        return p;
}

pid_t test_spawn(char *const argv[], char *const envp[], int keep_fd, const char *log, void (*enter)(void *userdata),
                 void *userdata) {
        pid_t parent = getpid(), pid;

        fflush(NULL);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                (void) prctl(PR_SET_PDEATHSIG, SIGTERM);
                if (getppid() != parent)
                        _exit(126);
                if (log) {
                        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
                        if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0)
                                _exit(126);
                }
                if (keep_fd >= 0 && fcntl(keep_fd, F_SETFD, 0) < 0)
                        _exit(126);
                if (enter) {
                        enter(userdata);
                        /* New credentials clear the parent-death signal: set it again. */
                        (void) prctl(PR_SET_PDEATHSIG, SIGTERM);
                        if (getppid() != parent)
                                _exit(126);
                }
                if (envp)
                        execve(argv[0], argv, envp);
                else
                        execv(argv[0], argv);
                _exit(127);
        }
        return pid;
}

static pid_t spawn(char *const argv[], int keep_fd, const char *log) {
        return test_spawn(argv, NULL, keep_fd, log, NULL, NULL);
}

void test_bus_write_config(const char *path, const char *socket) {
        FILE *f = fopen(path, "we");

        ck_assert_ptr_nonnull(f);
        /* Debian's system.conf default policy, then the project's own policy file, so the test
         * proves the shipped policy is what lets dkmd own its name and others call it. */
        fprintf(f,
                "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n"
                " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
                "<busconfig>\n"
                "  <type>system</type>\n"
                "  <listen>unix:path=%s</listen>\n"
                "  <auth>EXTERNAL</auth>\n"
                "  <policy context=\"default\">\n"
                "    <allow user=\"*\"/>\n"
                "    <deny own=\"*\"/>\n"
                "    <deny send_type=\"method_call\"/>\n"
                "    <allow send_type=\"signal\"/>\n"
                "    <allow send_requested_reply=\"true\" send_type=\"method_return\"/>\n"
                "    <allow send_requested_reply=\"true\" send_type=\"error\"/>\n"
                "    <allow receive_type=\"method_call\"/>\n"
                "    <allow receive_type=\"method_return\"/>\n"
                "    <allow receive_type=\"error\"/>\n"
                "    <allow receive_type=\"signal\"/>\n"
                "    <allow send_destination=\"org.freedesktop.DBus\" send_interface=\"org.freedesktop.DBus\"/>\n"
                "    <allow send_destination=\"org.freedesktop.DBus\"\n"
                "           send_interface=\"org.freedesktop.DBus.Introspectable\"/>\n"
                "  </policy>\n"
                /* For the polkit test: polkitd (started as root) switches to its own user. */
                "  <policy user=\"polkitd\">\n"
                "    <allow own=\"org.freedesktop.PolicyKit1\"/>\n"
                "  </policy>\n"
                "  <policy context=\"default\">\n"
                "    <allow send_destination=\"org.freedesktop.PolicyKit1\"/>\n"
                "  </policy>\n"
                "  <include>%s</include>\n"
                "</busconfig>\n",
                socket, test_env_path("DKM_DBUS_POLICY"));
        ck_assert_int_eq(fclose(f), 0);
}

static bool name_has_owner(void) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int has = 0;

        if (sd_bus_open_system(&bus) < 0 ||
            sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                               "NameHasOwner", NULL, &reply, "s", SVC) < 0 ||
            sd_bus_message_read(reply, "b", &has) < 0)
                return false;
        return has;
}

pid_t test_bus_spawn(const char *config, char *const envp[], const char *log, void (*enter)(void *userdata),
                     void *userdata, char *address, size_t size) {
        char fdarg[32];
        int pipefd[2];
        ssize_t n;
        size_t got = 0;
        pid_t pid;

        ck_assert_uint_gt(size, 1);
        ck_assert_int_eq(pipe2(pipefd, O_CLOEXEC), 0);
        snprintf(fdarg, sizeof(fdarg), "--print-address=%d", pipefd[1]);
        pid = test_spawn((char *const[]){ (char *) "/usr/bin/dbus-daemon", (char *) "--nofork", (char *) "--nosyslog",
                                          (char *) "--config-file", (char *) config, fdarg, NULL },
                         envp, pipefd[1], log, enter, userdata);
        close(pipefd[1]);
        /* The address line is written once the socket listens: no polling for the bus. */
        while (got + 1 < size && (n = read(pipefd[0], address + got, size - 1 - got)) > 0) {
                got += (size_t) n;
                if (memchr(address, '\n', got))
                        break;
        }
        close(pipefd[0]);
        address[got] = 0;
        ck_assert_msg(strchr(address, '\n'), "dbus-daemon printed no address");
        *strchr(address, '\n') = 0;
        return pid;
}

void test_bus_start(void) {
        char config[160], socket[160], address[512] = "";

        snprintf(bus_dir, sizeof(bus_dir), "%s/bus", TW.dir);
        ck_assert_int_eq(mkdir(bus_dir, 0755), 0);
        snprintf(config, sizeof(config), "%s/bus.conf", bus_dir);
        snprintf(socket, sizeof(socket), "%s/system_bus_socket", bus_dir);
        snprintf(dkmd_log, sizeof(dkmd_log), "%s/dkmd.log", bus_dir);
        test_bus_write_config(config, socket);

        dbus_pid = test_bus_spawn(config, NULL, NULL, NULL, NULL, address, sizeof(address));
        ck_assert_int_eq(setenv("DBUS_SYSTEM_BUS_ADDRESS", address, 1), 0);
}

void test_dkmd_start(const char *const extra_args[]) {
        char *argv[32] = { (char *) test_env_path("DKM_DKMD"), (char *) "--bus=system", (char *) "--admin-group",
                           TW.grp };
        size_t n = 4;

        for (size_t i = 0; extra_args && extra_args[i]; i++) {
                ck_assert_uint_lt(n + 1, ELEMENTSOF(argv));
                argv[n++] = (char *) extra_args[i];
        }
        ck_assert_int_eq(dkmd_pid, -1);
        /* A dkmd stopped by an earlier test may still be letting go of the name. */
        for (int i = 0; i < 100 && name_has_owner(); i++)
                nanosleep(&(struct timespec){ 0, 50 * 1000 * 1000 }, NULL);
        ck_assert_msg(!name_has_owner(), "another dkmd still owns %s", SVC);
        /* The test world's grp is the admin group: its members (member, member2) may mutate. */
        dkmd_pid = spawn(argv, -1, dkmd_log);
        for (int i = 0; i < 200 && !name_has_owner(); i++) {
                ck_assert_msg(waitpid(dkmd_pid, NULL, WNOHANG) == 0, "dkmd exited at start; see %s", dkmd_log);
                nanosleep(&(struct timespec){ 0, 50 * 1000 * 1000 }, NULL);
        }
        ck_assert_msg(name_has_owner(), "dkmd did not take %s", SVC);
}

/* A test forked by Check is not dkmd's parent when the suite runner started it: it cannot
 * wait, so it watches /proc until the process is gone or a zombie. */
static bool process_dead(pid_t pid) {
        char path[64], buf[256], *p;
        FILE *f;
        size_t n;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
        f = fopen(path, "re");
        if (!f)
                return true;
        n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = 0;
        p = strrchr(buf, ')');
        return !p || p[1] == 0 || p[2] == 'Z' || p[2] == 'X';
}

int test_stop_pid(pid_t *pid, int sig) {
        int status = -1;

        if (*pid <= 0)
                return -1;
        (void) kill(*pid, sig);
        while (waitpid(*pid, &status, 0) < 0) {
                if (errno == EINTR)
                        continue;
                for (int i = 0; i < 200 && !process_dead(*pid); i++)
                        nanosleep(&(struct timespec){ 0, 50 * 1000 * 1000 }, NULL);
                /* Not ours to reap: what it died of is what it was sent, or a clean exit
                 * if it said so in its log. */
                status = sig == SIGKILL ? sig : -1;
                break;
        }
        *pid = -1;
        return status;
}

int test_dkmd_stop_pid(pid_t *pid, const char *log, bool hard) {
        char line[512];
        int status = test_stop_pid(pid, hard ? SIGKILL : SIGTERM);
        bool said_stopped = false;
        FILE *f;

        /* dkmd's log goes into the test log, for whoever reads a failure; then starts afresh. */
        f = fopen(log, "re");
        if (f) {
                while (fgets(line, sizeof(line), f)) {
                        fprintf(stderr, "  | %s", line);
                        said_stopped = strcmp(line, "dkmd: stopped\n") == 0;
                }
                fclose(f);
        }
        if (status == -1 && said_stopped)
                status = 0;
        fprintf(stderr, "dkmd %s %d\n", WIFSIGNALED(status) ? "killed by signal" : "exit status",
                WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
        if (truncate(log, 0) < 0 && errno != ENOENT)
                fprintf(stderr, "truncating %s: %m\n", log);
        return status;
}

int test_dkmd_stop(bool hard) {
        return test_dkmd_stop_pid(&dkmd_pid, dkmd_log, hard);
}

pid_t test_dkmd_pid(void) {
        return dkmd_pid;
}

const char *test_dkmd_log(void) {
        return dkmd_log;
}

void test_bus_stop(void) {
        (void) test_dkmd_stop(false);
        (void) test_stop_pid(&dbus_pid, SIGTERM);
}

sd_bus *test_bus_open(void) {
        sd_bus *bus = NULL;

        ck_assert_int_ge(sd_bus_open_system(&bus), 0);
        return bus;
}

void test_assert_bus_error(const sd_bus_error *e, const char *name) {
        ck_assert_msg(sd_bus_error_has_name(e, name), "got %s (%s), want %s", e->name ?: "success", e->message ?: "",
                      name);
}

int test_call_as_in(void (*enter)(void *userdata), void *userdata, const TestCreds *c, TestCall *ret,
                    const char *path, const char *iface, const char *method, const char *types, va_list ap) {
        static TestCall *shared = NULL;
        pid_t pid, parent = getpid();

        if (!shared)
                shared = test_shared_new(sizeof(TestCall));
        memset(shared, 0, sizeof(*shared));
        fflush(NULL);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                sd_bus_error e = SD_BUS_ERROR_NULL;
                sd_bus_message *reply = NULL;
                sd_bus *bus = NULL;

                if (enter)
                        enter(userdata);
                if (c)
                        test_become(c);
                /* Dies with the caller, so a failed check leaves no call behind. Set after the
                 * credentials changed (a uid change clears the parent-death signal). */
                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (getppid() != parent)
                        _exit(95);
                if (sd_bus_open_system(&bus) < 0)
                        _exit(80);
                shared->r = sd_bus_call_methodv(bus, SVC, path, iface, method, &e, &reply, types, ap);
                if (shared->r < 0) {
                        snprintf(shared->error, sizeof(shared->error), "%s", e.name ?: "");
                        snprintf(shared->message, sizeof(shared->message), "%s", e.message ?: "");
                } else if (strcmp(sd_bus_message_get_signature(reply, true) ?: "", "o") == 0) {
                        const char *o;

                        if (sd_bus_message_read(reply, "o", &o) > 0)
                                snprintf(shared->path, sizeof(shared->path), "%s", o);
                }
                /* Freed, so valgrind finds no leak in the child either. */
                sd_bus_message_unref(reply);
                sd_bus_error_free(&e);
                sd_bus_flush_close_unref(bus);
                _exit(0);
        }
        ck_assert_int_eq(test_wait(pid), 0);
        *ret = *shared;
        return ret->r;
}

int test_call_as(const TestCreds *c, TestCall *ret, const char *path, const char *iface, const char *method,
                 const char *types, ...) {
        va_list ap;
        int r;

        va_start(ap, types);
        r = test_call_as_in(NULL, NULL, c, ret, path, iface, method, types, ap);
        va_end(ap);
        return r;
}

char *test_manager_property(const char *property) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = test_bus_open();
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        char *s = NULL;

        ck_assert_msg(sd_bus_get_property_string(bus, SVC, MGR_PATH, MGR_IFACE, property, &e, &s) >= 0, "%s: %s",
                      property, e.message ?: "");
        return s;
}

char *test_create_group(const char *name) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = test_bus_open();
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        const char *path;
        char *copy;

        ck_assert_msg(sd_bus_call_method(bus, SVC, MGR_PATH, MGR_IFACE, "CreateGroup", &e, &reply, "sua{sv}", name,
                                         (uint32_t) TW.gid, 0) >= 0,
                      "CreateGroup %s: %s: %s", name, e.name ?: "", e.message ?: "");
        ck_assert_int_ge(sd_bus_message_read(reply, "o", &path), 0);
        copy = strdup(path);
        ck_assert_ptr_nonnull(copy);
        return copy;
}

void test_member_encrypt(const char *group, const char *path, const char *text) {
        TestCreds member = test_creds_member();
        TestRun r;
        int fd;

        test_run(&r, text, strlen(text), &member,
                 (char *const[]){ (char *) test_env_path("DKM_CLI"), (char *) "encrypt", (char *) "-g", (char *) group,
                                  NULL });
        ck_assert_msg(r.status == 0, "encrypt: %s", r.err);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(loop_write(fd, r.out, r.out_size), 0);
        close(fd);
        test_run_free(&r);
}
