/* SPDX-License-Identifier: MIT */
/* dkmd on a private system-type dbus-daemon: methods, properties, named errors, bus-based authorization. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <systemd/sd-bus.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"
#include "test-accounts.h"
#include "test-helpers.h"

/* The named errors are part of the interface: spelled out here, not taken from dkmd's headers. */
#define E_NO_SUCH_GROUP "org.dkm.KeyManager1.Error.NoSuchGroup"
#define E_GROUP_EXISTS "org.dkm.KeyManager1.Error.GroupExists"
#define E_ACCESS_DENIED "org.dkm.KeyManager1.Error.AccessDenied"
#define E_INVALID_ARGUMENT "org.dkm.KeyManager1.Error.InvalidArgument"
#define E_APPROVAL_REQUIRED "org.dkm.KeyManager1.Error.ApprovalRequired"

#define SVC "org.dkm.KeyManager1"
#define MGR_PATH "/org/dkm/KeyManager1"
#define MGR_IFACE "org.dkm.KeyManager1"
#define GROUP_IFACE "org.dkm.KeyManager1.Group"
#define BUSCTL "/usr/bin/busctl"

static const char *const key_group_tags[] = { "create", "roll", "errors", "denied", "viaadmin", "busctl", NULL };

/* The bus and the daemon live in the suite runner (an unchecked fixture), across the forked
 * tests; both die with the runner (PR_SET_PDEATHSIG) if it is killed before the teardown. */
static pid_t dbus_pid = -1, dkmd_pid = -1;
static char bus_dir[80], dkmd_log[160]; /* TW.dir is at most 63 characters */

static const char *env_path(const char *name) {
        const char *p = getenv(name);

        ck_assert_msg(p && access(p, F_OK) == 0, "%s must name the built file", name);
        return p;
}

static pid_t spawn(char *const argv[], int keep_fd, const char *log) {
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
                execv(argv[0], argv);
                _exit(127);
        }
        return pid;
}

static void write_bus_config(const char *path, const char *socket) {
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
                "  <include>%s</include>\n"
                "</busconfig>\n",
                socket, env_path("DKM_DBUS_POLICY"));
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

static void bus_up(void) {
        char config[160], socket[160], address[512] = "", fdarg[32];
        int pipefd[2];
        ssize_t n;
        size_t got = 0;

        snprintf(bus_dir, sizeof(bus_dir), "%s/bus", TW.dir);
        ck_assert_int_eq(mkdir(bus_dir, 0755), 0);
        snprintf(config, sizeof(config), "%s/bus.conf", bus_dir);
        snprintf(socket, sizeof(socket), "%s/system_bus_socket", bus_dir);
        snprintf(dkmd_log, sizeof(dkmd_log), "%s/dkmd.log", bus_dir);
        write_bus_config(config, socket);

        ck_assert_int_eq(pipe2(pipefd, O_CLOEXEC), 0);
        snprintf(fdarg, sizeof(fdarg), "--print-address=%d", pipefd[1]);
        dbus_pid = spawn((char *const[]){ (char *) "/usr/bin/dbus-daemon", (char *) "--nofork", (char *) "--nosyslog",
                                          (char *) "--config-file", config, fdarg, NULL },
                         pipefd[1], NULL);
        close(pipefd[1]);
        /* The address line is written once the socket listens: no polling for the bus. */
        while (got + 1 < sizeof(address) && (n = read(pipefd[0], address + got, sizeof(address) - 1 - got)) > 0) {
                got += (size_t) n;
                if (memchr(address, '\n', got))
                        break;
        }
        close(pipefd[0]);
        address[got] = 0;
        ck_assert_msg(strchr(address, '\n'), "dbus-daemon printed no address");
        *strchr(address, '\n') = 0;
        ck_assert_int_eq(setenv("DBUS_SYSTEM_BUS_ADDRESS", address, 1), 0);

        /* The test world's grp is the admin group: its members (member, member2) may mutate. */
        dkmd_pid = spawn((char *const[]){ (char *) env_path("DKM_DKMD"), (char *) "--bus=system",
                                          (char *) "--admin-group", TW.grp, NULL },
                         -1, dkmd_log);
        for (int i = 0; i < 200 && !name_has_owner(); i++) {
                ck_assert_msg(waitpid(dkmd_pid, NULL, WNOHANG) == 0, "dkmd exited at start; see %s", dkmd_log);
                nanosleep(&(struct timespec){ 0, 50 * 1000 * 1000 }, NULL);
        }
        ck_assert_msg(name_has_owner(), "dkmd did not take %s", SVC);
}

static int stop(pid_t *pid) {
        int status = -1;

        if (*pid <= 0)
                return -1;
        (void) kill(*pid, SIGTERM);
        while (waitpid(*pid, &status, 0) < 0 && errno == EINTR)
                ;
        *pid = -1;
        return status;
}

static void bus_down(void) {
        char line[512];
        int status = stop(&dkmd_pid);
        FILE *f;

        (void) stop(&dbus_pid);
        /* dkmd's log goes into the test log, for whoever reads a failure. */
        f = fopen(dkmd_log, "re");
        if (f) {
                while (fgets(line, sizeof(line), f))
                        fprintf(stderr, "  | %s", line);
                fclose(f);
        }
        fprintf(stderr, "dkmd exit status %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

static sd_bus *bus_open(void) {
        sd_bus *bus = NULL;

        ck_assert_int_ge(sd_bus_open_system(&bus), 0);
        return bus;
}

/* CreateGroup(name, gid, {}) -> object path (malloc'd), or NULL with *e set. */
static char *create_group(sd_bus *bus, const char *name, uint32_t gid, sd_bus_error *e) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *path;

        if (sd_bus_call_method(bus, SVC, MGR_PATH, MGR_IFACE, "CreateGroup", e, &reply, "sua{sv}", name, gid, 0) < 0)
                return NULL;
        ck_assert_int_ge(sd_bus_message_read(reply, "o", &path), 0);
        return strdup(path);
}

static void assert_error(const sd_bus_error *e, const char *name) {
        ck_assert_msg(sd_bus_error_has_name(e, name), "got %s (%s), want %s", e->name ?: "success", e->message ?: "",
                      name);
}

static uint32_t get_u(sd_bus *bus, const char *path, const char *property) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        uint32_t v = 0;

        ck_assert_msg(sd_bus_get_property_trivial(bus, SVC, path, GROUP_IFACE, property, &e, 'u', &v) >= 0, "%s: %s",
                      property, e.message ?: "");
        return v;
}

static int rollover(sd_bus *bus, const char *path, sd_bus_error *e, uint32_t *ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r = sd_bus_call_method(bus, SVC, path, GROUP_IFACE, "Rollover", e, &reply, NULL);

        if (r >= 0)
                ck_assert_int_ge(sd_bus_message_read(reply, "u", ret), 0);
        return r;
}

static size_t count_groups(sd_bus *bus, const char *want, const char *want_path) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *name, *path;
        size_t n = 0, found = 0;
        int r;

        ck_assert_int_ge(sd_bus_call_method(bus, SVC, MGR_PATH, MGR_IFACE, "ListGroups", NULL, &reply, NULL), 0);
        ck_assert_int_ge(sd_bus_message_enter_container(reply, 'a', "(so)"), 0);
        while ((r = sd_bus_message_read(reply, "(so)", &name, &path)) > 0) {
                n++;
                if (want && strcmp(name, want) == 0) {
                        found++;
                        if (want_path)
                                ck_assert_str_eq(path, want_path);
                }
        }
        ck_assert_int_ge(r, 0);
        if (want)
                ck_assert_msg(found == 1, "ListGroups lists %s %zu times", want, found);
        return n;
}

START_TEST(test_create_list_properties) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = bus_open();
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *path = NULL, *alg = NULL, *name = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *g = test_key_group("create"), *got;
        uint64_t period = 1;

        path = create_group(bus, g, TW.gid, &e);
        ck_assert_msg(path, "CreateGroup: %s: %s", e.name ?: "", e.message ?: "");
        count_groups(bus, g, path);
        ck_assert_int_ge(sd_bus_call_method(bus, SVC, MGR_PATH, MGR_IFACE, "GetGroup", NULL, &reply, "s", g), 0);
        ck_assert_int_ge(sd_bus_message_read(reply, "o", &got), 0);
        ck_assert_str_eq(got, path);

        ck_assert_int_ge(sd_bus_get_property_string(bus, SVC, path, GROUP_IFACE, "Name", NULL, &name), 0);
        ck_assert_str_eq(name, g);
        ck_assert_uint_eq(get_u(bus, path, "Gid"), TW.gid);
        ck_assert_uint_eq(get_u(bus, path, "ActiveGeneration"), 1);
        ck_assert_int_ge(sd_bus_get_property_string(bus, SVC, path, GROUP_IFACE, "Algorithm", NULL, &alg), 0);
        ck_assert_str_eq(alg, "xchacha20-poly1305");
        ck_assert_int_ge(sd_bus_get_property_trivial(bus, SVC, path, GROUP_IFACE, "RolloverPeriodUSec", NULL, 't',
                                                     &period), 0);
        ck_assert_uint_eq(period, 0);
        /* Created groups are put into the kernel at once, for the members of the gid. */
        ck_assert_int_eq(test_helper_status_value(g, "active "), 1);
}
END_TEST

START_TEST(test_rollover_loads_kernel) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = bus_open();
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        const char *g = test_key_group("roll"), *path;
        uint64_t period = 0;
        uint32_t number = 0;
        long serial1;

        ck_assert_msg(sd_bus_call_method(bus, SVC, MGR_PATH, MGR_IFACE, "CreateGroup", &e, &reply, "sua{sv}", g,
                                         (uint32_t) TW.gid, 1, "RolloverPeriodUSec", "t",
                                         (uint64_t) 86400000000ULL) >= 0,
                      "%s", e.message ?: "");
        ck_assert_int_ge(sd_bus_message_read(reply, "o", &path), 0);
        ck_assert_int_ge(sd_bus_get_property_trivial(bus, SVC, path, GROUP_IFACE, "RolloverPeriodUSec", NULL, 't',
                                                     &period), 0);
        ck_assert_uint_eq(period, 86400000000ULL);
        serial1 = test_helper_status_value(g, "generation 1 ");
        ck_assert_int_gt(serial1, 0);

        ck_assert_msg(rollover(bus, path, &e, &number) >= 0, "Rollover: %s", e.message ?: "");
        ck_assert_uint_eq(number, 2);
        ck_assert_uint_eq(get_u(bus, path, "ActiveGeneration"), 2);
        ck_assert_int_eq(test_helper_status_value(g, "active "), 2);
        ck_assert_int_gt(test_helper_status_value(g, "generation 2 "), 0);
        /* The previous generation stays loaded (archived, hot window): old ciphertext decrypts. */
        ck_assert_int_eq(test_helper_status_value(g, "generation 1 "), serial1);

        ck_assert_int_ge(rollover(bus, path, &e, &number), 0);
        ck_assert_uint_eq(number, 3);
        ck_assert_int_eq(test_helper_status_value(g, "active "), 3);
}
END_TEST

START_TEST(test_named_errors) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = bus_open();
        const char *g = test_key_group("errors");
        _cleanup_free_ char *path = NULL;
        size_t before;

        {
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                path = create_group(bus, g, TW.gid, &e);
                ck_assert_msg(path, "%s", e.message ?: "");
        }
        before = count_groups(bus, NULL, NULL);
        {
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                ck_assert_ptr_null(create_group(bus, g, TW.gid, &e));
                assert_error(&e, E_GROUP_EXISTS);
        }
        {
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                ck_assert_int_lt(sd_bus_call_method(bus, SVC, MGR_PATH, MGR_IFACE, "GetGroup", &e, NULL, "s",
                                                    "dkmt-no-such-group"), 0);
                assert_error(&e, E_NO_SUCH_GROUP);
        }
        static const char *const bad_names[] = { "", "Upper", "a/b", "..", "-lead", NULL };
        for (size_t i = 0; bad_names[i]; i++) {
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                ck_assert_ptr_null(create_group(bus, bad_names[i], TW.gid, &e));
                assert_error(&e, E_INVALID_ARGUMENT);
        }
        {
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                ck_assert_ptr_null(create_group(bus, "dkmt-gid-zero", 0, &e));
                assert_error(&e, E_INVALID_ARGUMENT);
        }
        {
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                ck_assert_int_lt(sd_bus_call_method(bus, SVC, MGR_PATH, MGR_IFACE, "CreateGroup", &e, NULL, "sua{sv}",
                                                    "dkmt-bad-option", (uint32_t) TW.gid, 1, "Colour", "s", "red"),
                                 0);
                assert_error(&e, E_INVALID_ARGUMENT);
        }
        {
                /* Refused for root too: retiring needs approvals that cannot be given yet. */
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                ck_assert_int_lt(sd_bus_call_method(bus, SVC, path, GROUP_IFACE, "Retire", &e, NULL, "u", 1), 0);
                assert_error(&e, E_APPROVAL_REQUIRED);
                ck_assert_uint_eq(get_u(bus, path, "ActiveGeneration"), 1);
        }
        /* No refusal left anything behind. */
        ck_assert_uint_eq(count_groups(bus, NULL, NULL), before);
}
END_TEST

static char shared_path[256];

static void as_other(void *userdata) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = bus_open();
        const char *path = userdata;
        uint32_t number;

        /* Reading is for everyone the bus policy lets in. */
        count_groups(bus, test_key_group("create"), NULL);
        ck_assert_uint_eq(get_u(bus, path, "ActiveGeneration"), 1);
        {
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                ck_assert_ptr_null(create_group(bus, test_key_group("denied"), TW.other_gid, &e));
                assert_error(&e, E_ACCESS_DENIED);
        }
        {
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                ck_assert_int_lt(rollover(bus, path, &e, &number), 0);
                assert_error(&e, E_ACCESS_DENIED);
        }
}

START_TEST(test_non_admin_refused) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = bus_open();
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *path = NULL;
        TestCreds other = test_creds_other();

        path = create_group(bus, test_key_group("denied"), TW.gid, &e);
        ck_assert_msg(path, "%s", e.message ?: "");
        /* "denied" exists now, so the child's CreateGroup of it would be GroupExists if the
         * authorization check came after the lookup: it must come first. */
        snprintf(shared_path, sizeof(shared_path), "%s", path);
        test_wait_ok(test_fork_as(&other, as_other, shared_path));
        ck_assert_uint_eq(get_u(bus, path, "ActiveGeneration"), 1);
}
END_TEST

static void as_member(void *userdata) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = bus_open();
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *path = NULL;
        uint32_t number = 0;

        path = create_group(bus, test_key_group("viaadmin"), TW.gid, &e);
        ck_assert_msg(path, "CreateGroup as admin-group member: %s: %s", e.name ?: "", e.message ?: "");
        ck_assert_msg(rollover(bus, path, &e, &number) >= 0, "Rollover: %s", e.message ?: "");
        ck_assert_uint_eq(number, 2);
}

START_TEST(test_admin_group_member_allowed) {
        /* member has grp only as a supplementary group: dkmd must learn it from dbus-daemon. */
        TestCreds member = test_creds_member();

        test_wait_ok(test_fork_as(&member, as_member, NULL));
        ck_assert_int_eq(test_helper_status_value(test_key_group("viaadmin"), "active "), 2);
}
END_TEST

START_TEST(test_busctl) {
        TestCreds other = test_creds_other();
        TestRun r;

        /* Argument names are part of the introspection data, so busctl users see them. */
        test_run(&r, NULL, 0, NULL,
                 (char *const[]){ (char *) BUSCTL, (char *) "--system", (char *) "introspect", (char *) "--xml-interface",
                                  (char *) SVC, (char *) MGR_PATH, NULL });
        ck_assert_msg(r.status == 0, "busctl introspect: %s", r.err);
        ck_assert_ptr_nonnull(strstr((char *) r.out, "name=\"gid\""));
        ck_assert_ptr_nonnull(strstr((char *) r.out, "name=\"options\""));
        ck_assert_ptr_nonnull(strstr((char *) r.out, "name=\"groups\""));
        test_run_free(&r);

        test_run(&r, NULL, 0, &other,
                 (char *const[]){ (char *) BUSCTL, (char *) "--system", (char *) "call", (char *) SVC, (char *) MGR_PATH,
                                  (char *) MGR_IFACE, (char *) "ListGroups", NULL });
        ck_assert_msg(r.status == 0, "busctl ListGroups as a non-admin: %s", r.err);
        ck_assert_ptr_nonnull(strstr((char *) r.out, "a(so)"));
        test_run_free(&r);

        test_run(&r, NULL, 0, &other,
                 (char *const[]){ (char *) BUSCTL, (char *) "--system", (char *) "call", (char *) SVC, (char *) MGR_PATH,
                                  (char *) MGR_IFACE, (char *) "CreateGroup", (char *) "sua{sv}",
                                  (char *) test_key_group("busctl"), (char *) "1", (char *) "0", NULL });
        ck_assert_int_ne(r.status, 0);
        ck_assert_msg(strstr(r.err, "admin group"), "busctl said: %s", r.err);
        test_run_free(&r);
}
END_TEST

/* Without root: only what needs no bus, no accounts and no kernel keys. */
START_TEST(test_usage) {
        TestRun r;

        test_run(&r, NULL, 0, NULL, (char *const[]){ (char *) env_path("DKM_DKMD"), (char *) "--help", NULL });
        ck_assert_int_eq(r.status, 0);
        ck_assert_ptr_nonnull(strstr((char *) r.out, "--admin-group"));
        test_run_free(&r);
        test_run(&r, NULL, 0, NULL, (char *const[]){ (char *) env_path("DKM_DKMD"), (char *) "--bus=session", NULL });
        ck_assert_int_eq(r.status, 2);
        test_run_free(&r);
}
END_TEST

static Suite *make_suite(bool integration) {
        Suite *s = suite_create("dkmd");
        TCase *tc = tcase_create("usage");

        tcase_add_test(tc, test_usage);
        suite_add_tcase(s, tc);
        if (integration) {
                tc = tcase_create("bus");
                tcase_add_unchecked_fixture(tc, bus_up, bus_down);
                tcase_add_test(tc, test_create_list_properties);
                tcase_add_test(tc, test_rollover_loads_kernel);
                tcase_add_test(tc, test_named_errors);
                tcase_add_test(tc, test_non_admin_refused);
                tcase_add_test(tc, test_admin_group_member_allowed);
                tcase_add_test(tc, test_busctl);
                suite_add_tcase(s, tc);
        }
        return s;
}

int main(void) {
        return test_world_main(make_suite, key_group_tags);
}
