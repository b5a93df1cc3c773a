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
#include "test-bus.h"
#include "test-helpers.h"

static const char *const key_group_tags[] = { "create", "roll", "errors", "denied", "viaadmin", "busctl", NULL };

static void bus_up(void) {
        test_bus_start();
        test_dkmd_start(NULL);
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
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = test_bus_open();
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
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = test_bus_open();
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
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = test_bus_open();
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
                test_assert_bus_error(&e, E_GROUP_EXISTS);
        }
        {
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                ck_assert_int_lt(sd_bus_call_method(bus, SVC, MGR_PATH, MGR_IFACE, "GetGroup", &e, NULL, "s",
                                                    "dkmt-no-such-group"), 0);
                test_assert_bus_error(&e, E_NO_SUCH_GROUP);
        }
        static const char *const bad_names[] = { "", "Upper", "a/b", "..", "-lead", NULL };
        for (size_t i = 0; bad_names[i]; i++) {
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                ck_assert_ptr_null(create_group(bus, bad_names[i], TW.gid, &e));
                test_assert_bus_error(&e, E_INVALID_ARGUMENT);
        }
        {
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                ck_assert_ptr_null(create_group(bus, "dkmt-gid-zero", 0, &e));
                test_assert_bus_error(&e, E_INVALID_ARGUMENT);
        }
        {
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                ck_assert_int_lt(sd_bus_call_method(bus, SVC, MGR_PATH, MGR_IFACE, "CreateGroup", &e, NULL, "sua{sv}",
                                                    "dkmt-bad-option", (uint32_t) TW.gid, 1, "Colour", "s", "red"),
                                 0);
                test_assert_bus_error(&e, E_INVALID_ARGUMENT);
        }
        {
                /* Refused for root too: retiring needs approvals that cannot be given yet. */
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                ck_assert_int_lt(sd_bus_call_method(bus, SVC, path, GROUP_IFACE, "Retire", &e, NULL, "u", 1), 0);
                test_assert_bus_error(&e, E_APPROVAL_REQUIRED);
                ck_assert_uint_eq(get_u(bus, path, "ActiveGeneration"), 1);
        }
        /* No refusal left anything behind. */
        ck_assert_uint_eq(count_groups(bus, NULL, NULL), before);
}
END_TEST

static char shared_path[256];

static void as_other(void *userdata) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = test_bus_open();
        const char *path = userdata;
        uint32_t number;

        /* Reading is for everyone the bus policy lets in. */
        count_groups(bus, test_key_group("create"), NULL);
        ck_assert_uint_eq(get_u(bus, path, "ActiveGeneration"), 1);
        {
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                ck_assert_ptr_null(create_group(bus, test_key_group("denied"), TW.other_gid, &e));
                test_assert_bus_error(&e, E_ACCESS_DENIED);
        }
        {
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                ck_assert_int_lt(rollover(bus, path, &e, &number), 0);
                test_assert_bus_error(&e, E_ACCESS_DENIED);
        }
}

START_TEST(test_non_admin_refused) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = test_bus_open();
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
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = test_bus_open();
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

        test_run(&r, NULL, 0, NULL, (char *const[]){ (char *) test_env_path("DKM_DKMD"), (char *) "--help", NULL });
        ck_assert_int_eq(r.status, 0);
        ck_assert_ptr_nonnull(strstr((char *) r.out, "--admin-group"));
        test_run_free(&r);
        test_run(&r, NULL, 0, NULL, (char *const[]){ (char *) test_env_path("DKM_DKMD"), (char *) "--bus=session", NULL });
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
                tcase_add_unchecked_fixture(tc, bus_up, test_bus_stop);
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
