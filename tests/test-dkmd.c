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
#include <grp.h>
#include <stdarg.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"
#include "test-accounts.h"
#include "test-bus.h"
#include "test-helpers.h"

static const char *const key_group_tags[] = { "create", "roll",     "errors",  "denied", "viaadmin", "busctl",
                                              "archive", "signals", "sched",  "restart", "kill9",    "malformed",
                                              "human",   "human2",  "dropin",  "dropbad", "hup",    "polkit", NULL };

static char groups_dir[128];

static void bus_up(void) {
        /* dkmd reads drop-ins from the world's directory only, never the host's. */
        snprintf(groups_dir, sizeof(groups_dir), "%s/groups.d", TW.dir);
        ck_assert_int_eq(mkdir(groups_dir, 0755), 0);
        ck_assert_int_eq(setenv("DKM_GROUPS_DIRS", groups_dir, 1), 0);
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
                /* Refused for root too: the active generation is never retired (roll over first). */
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                ck_assert_int_lt(sd_bus_call_method(bus, SVC, path, GROUP_IFACE, "Retire", &e, NULL, "us", 1, "test"),
                                 0);
                test_assert_bus_error(&e, E_GENERATION_ACTIVE);
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

/* busctl --system VERB SVC ARGS... as root; want (if not NULL) in its output or error. */
static void busctl_run(bool ok, const char *want, const char *verb, va_list ap) {
        char *argv[32] = { (char *) BUSCTL, (char *) "--system", (char *) verb, (char *) SVC };
        size_t n = 4;
        const char *a;
        TestRun r;

        while ((a = va_arg(ap, const char *)) && n + 1 < ELEMENTSOF(argv))
                argv[n++] = (char *) a;
        test_run(&r, NULL, 0, NULL, argv);
        if (ok)
                ck_assert_msg(r.status == 0, "busctl %s %s %s: %s", verb, argv[4], argv[6] ?: "", r.err);
        else
                ck_assert_msg(r.status != 0, "busctl %s %s succeeded", verb, argv[6] ?: "");
        if (want)
                ck_assert_msg(strstr(ok ? (char *) r.out : r.err, want), "busctl %s %s: want '%s' in '%s%s'", verb,
                              argv[6] ?: "", want, ok ? (char *) r.out : "", r.err);
        test_run_free(&r);
}

static void busctl_ok(const char *verb, ...) {
        va_list ap;

        va_start(ap, verb);
        busctl_run(true, NULL, verb, ap);
        va_end(ap);
}

/* ARGS..., NULL, WANT */
static void busctl_expect(const char *verb, ...) {
        const char *want;
        va_list ap, copy;

        va_start(ap, verb);
        va_copy(copy, ap);
        while (va_arg(copy, const char *))
                ;
        want = va_arg(copy, const char *);
        va_end(copy);
        busctl_run(true, want, verb, ap);
        va_end(ap);
}

static void busctl_fails(const char *verb, ...) {
        const char *want;
        va_list ap, copy;

        va_start(ap, verb);
        va_copy(copy, ap);
        while (va_arg(copy, const char *))
                ;
        want = va_arg(copy, const char *);
        va_end(copy);
        busctl_run(false, want, verb, ap);
        va_end(ap);
}

START_TEST(test_busctl) {
        TestCreds other = test_creds_other();
        _cleanup_free_ char *path = NULL;
        char gid[16];
        TestRun r;

        snprintf(gid, sizeof(gid), "%u", (unsigned) TW.gid);
        ck_assert_int_ge(sd_bus_path_encode("/org/dkm/KeyManager1/group", test_key_group("busctl"), &path), 0);

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

        /* Every method as an admin types it. */
        busctl_ok("call", MGR_PATH, MGR_IFACE, "CreateGroup", "sua{sv}", test_key_group("busctl"), gid, "1",
                  "PropagationDelayUSec", "t", "3600000000", NULL);
        busctl_ok("call", MGR_PATH, MGR_IFACE, "GetGroup", "s", test_key_group("busctl"), NULL);
        busctl_ok("call", path, GROUP_IFACE, "Rollover", NULL);
        busctl_expect("get-property", path, GROUP_IFACE, "PendingGeneration", NULL, "u 2");
        busctl_ok("call", path, GROUP_IFACE, "Archive", "u", "2", NULL);
        busctl_ok("call", path, GROUP_IFACE, "SetPolicy", "a{sv}", "2", "HotWindow", "u", "4", "PropagationDelayUSec",
                  "t", "0", NULL);
        busctl_expect("get-property", path, GROUP_IFACE, "HotWindow", NULL, "u 4");
        busctl_ok("call", path, GROUP_IFACE, "Rollover", NULL);
        busctl_expect("get-property", path, GROUP_IFACE, "ActiveGeneration", NULL, "u 3");
        busctl_expect("get-property", path, GROUP_IFACE, "Generations", NULL, "\"archived\"");
        busctl_ok("call", path, GROUP_IFACE, "Load", NULL);
        busctl_expect("call", MGR_PATH, MGR_IFACE, "Reload", NULL, "as 0");
        /* No approval levels in the policy, and retiring needs them: refused for root too. */
        busctl_fails("call", path, GROUP_IFACE, "Retire", "us", "1", "test", NULL, "approval");
        busctl_fails("call", path, GROUP_IFACE, "Archive", "u", "3", NULL, "active generation");
}
END_TEST

static uint64_t now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * 1000000U + (uint64_t) ts.tv_nsec / 1000U;
}

static void sleep_ms(unsigned ms) {
        nanosleep(&(struct timespec){ ms / 1000, (long) (ms % 1000) * 1000000L }, NULL);
}

/* CreateGroup with one uint64 option (or none when key is NULL); the path, or NULL with *e set. */
static char *create_group_opt(sd_bus *bus, const char *name, const char *key, uint64_t value, sd_bus_error *e) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *path;
        int r;

        if (key)
                r = sd_bus_call_method(bus, SVC, MGR_PATH, MGR_IFACE, "CreateGroup", e, &reply, "sua{sv}", name,
                                       (uint32_t) TW.gid, 1, key, "t", value);
        else
                r = sd_bus_call_method(bus, SVC, MGR_PATH, MGR_IFACE, "CreateGroup", e, &reply, "sua{sv}", name,
                                       (uint32_t) TW.gid, 0);
        if (r < 0)
                return NULL;
        ck_assert_int_ge(sd_bus_message_read(reply, "o", &path), 0);
        return strdup(path);
}

static char *must_create(sd_bus *bus, const char *name, const char *key, uint64_t value) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        char *path = create_group_opt(bus, name, key, value, &e);

        ck_assert_msg(path, "CreateGroup %s: %s: %s", name, e.name ?: "", e.message ?: "");
        return path;
}

static int set_policy_t(sd_bus *bus, const char *path, const char *key, uint64_t value, sd_bus_error *e) {
        return sd_bus_call_method(bus, SVC, path, GROUP_IFACE, "SetPolicy", e, NULL, "a{sv}", 1, key, "t", value);
}

static int archive(sd_bus *bus, const char *path, uint32_t number, sd_bus_error *e) {
        return sd_bus_call_method(bus, SVC, path, GROUP_IFACE, "Archive", e, NULL, "u", number);
}

static uint64_t get_t(sd_bus *bus, const char *path, const char *property) {
        uint64_t v = 0;

        ck_assert_int_ge(sd_bus_get_property_trivial(bus, SVC, path, GROUP_IFACE, property, NULL, 't', &v), 0);
        return v;
}

typedef struct Gen {
        uint32_t number;
        char state[16];
        uint64_t created, activated, archived, retired;
} Gen;

/* The Generations property; returns how many (at most max). */
static size_t get_generations(sd_bus *bus, const char *path, Gen *gens, size_t max) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        size_t n = 0;
        const char *state;
        Gen g = {};
        int r;

        ck_assert_int_ge(sd_bus_get_property(bus, SVC, path, GROUP_IFACE, "Generations", NULL, &reply, "a(ustttt)"), 0);
        ck_assert_int_ge(sd_bus_message_enter_container(reply, 'a', "(ustttt)"), 0);
        while ((r = sd_bus_message_read(reply, "(ustttt)", &g.number, &state, &g.created, &g.activated, &g.archived,
                                        &g.retired)) > 0) {
                memset(g.state, 0, sizeof(g.state)); /* compared with memcmp */
                snprintf(g.state, sizeof(g.state), "%s", state);
                if (n < max)
                        gens[n] = g;
                n++;
        }
        ck_assert_int_ge(r, 0);
        return n < max ? n : max;
}

static const char *gen_state(sd_bus *bus, const char *path, uint32_t number) {
        static Gen gens[64];
        size_t n = get_generations(bus, path, gens, 64);

        for (size_t i = 0; i < n; i++)
                if (gens[i].number == number)
                        return gens[i].state;
        return "absent";
}

/* Poll a uint32 property until it is want, up to ms; its last value. */
static uint32_t wait_u(sd_bus *bus, const char *path, const char *property, uint32_t want, unsigned ms) {
        uint32_t v = get_u(bus, path, property);

        for (unsigned waited = 0; v != want && waited < ms; waited += 50) {
                sleep_ms(50);
                v = get_u(bus, path, property);
        }
        return v;
}

START_TEST(test_archive_pending_generations) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = test_bus_open();
        _cleanup_free_ char *path = must_create(bus, test_key_group("archive"), NULL, 0);
        const char *g = test_key_group("archive");
        Gen gens[8];
        uint32_t number;

        for (uint32_t want = 2; want <= 3; want++) {
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                ck_assert_msg(rollover(bus, path, &e, &number) >= 0, "%s", e.message ?: "");
                ck_assert_uint_eq(number, want);
        }
        ck_assert_uint_eq(get_generations(bus, path, gens, 8), 3);
        ck_assert_str_eq(gens[0].state, "archived");
        ck_assert_str_eq(gens[1].state, "archived");
        ck_assert_str_eq(gens[2].state, "active");
        ck_assert_uint_ge(gens[1].archived, gens[1].activated);
        ck_assert_uint_eq(get_u(bus, path, "PendingGeneration"), 0);
        ck_assert_uint_eq(get_t(bus, path, "NextRolloverUSec"), 0); /* manual group */

        {
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                ck_assert_int_lt(archive(bus, path, 3, &e), 0);
                test_assert_bus_error(&e, E_GENERATION_ACTIVE);
        }
        {
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                ck_assert_int_lt(archive(bus, path, 1, &e), 0);
                test_assert_bus_error(&e, E_INVALID_STATE);
        }

        /* With a propagation delay a rollover leaves the new generation pending: loaded into
         * the kernel (decrypt-only) while the previous one still encrypts. */
        {
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                ck_assert_msg(set_policy_t(bus, path, "PropagationDelayUSec", 3600ULL * 1000000U, &e) >= 0, "%s",
                              e.message ?: "");
        }
        ck_assert_uint_eq(get_t(bus, path, "PropagationDelayUSec"), 3600ULL * 1000000U);
        {
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                ck_assert_msg(rollover(bus, path, &e, &number) >= 0, "%s", e.message ?: "");
                ck_assert_uint_eq(number, 4);
        }
        ck_assert_uint_eq(get_u(bus, path, "PendingGeneration"), 4);
        ck_assert_uint_eq(get_u(bus, path, "ActiveGeneration"), 3);
        ck_assert_int_eq(test_helper_status_value(g, "active "), 3);
        ck_assert_int_gt(test_helper_status_value(g, "generation 4 "), 0);
        ck_assert_uint_gt(get_t(bus, path, "NextRolloverUSec"), now_usec() + 3500ULL * 1000000U);
        {
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                ck_assert_int_lt(rollover(bus, path, &e, &number), 0);
                test_assert_bus_error(&e, E_ROLLOVER_PENDING);
        }
        /* A pending generation can be withdrawn by archiving it: it never encrypts. */
        {
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                ck_assert_msg(archive(bus, path, 4, &e) >= 0, "%s", e.message ?: "");
        }
        ck_assert_str_eq(gen_state(bus, path, 4), "archived");
        ck_assert_uint_eq(get_u(bus, path, "PendingGeneration"), 0);
        ck_assert_uint_eq(get_u(bus, path, "ActiveGeneration"), 3);
        ck_assert_int_eq(test_helper_status_value(g, "active "), 3);
}
END_TEST

typedef struct SignalLog {
        uint32_t numbers[16];
        char states[16][16];
        size_t n;
} SignalLog;

static int on_generation_changed(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        SignalLog *log = userdata;
        const char *state;
        uint32_t number;

        if (sd_bus_message_read(m, "us", &number, &state) >= 0 && log->n < 16) {
                log->numbers[log->n] = number;
                snprintf(log->states[log->n], sizeof(log->states[0]), "%s", state);
                log->n++;
        }
        return 0;
}

START_TEST(test_signals) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = test_bus_open();
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *watcher = test_bus_open();
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *slot = NULL;
        _cleanup_free_ char *path = must_create(bus, test_key_group("signals"), NULL, 0);
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        SignalLog log = {};
        uint32_t number;

        ck_assert_int_ge(sd_bus_match_signal(watcher, &slot, SVC, path, GROUP_IFACE, "GenerationChanged",
                                             on_generation_changed, &log), 0);
        /* The match is in force once the bus daemon has it: a round trip makes sure. */
        ck_assert_int_ge(sd_bus_call_method(watcher, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                            "org.freedesktop.DBus", "GetId", NULL, NULL, NULL), 0);
        ck_assert_msg(rollover(bus, path, &e, &number) >= 0, "%s", e.message ?: "");
        for (int i = 0; i < 100 && log.n < 3; i++) {
                while (sd_bus_process(watcher, NULL) > 0)
                        ;
                if (log.n < 3)
                        (void) sd_bus_wait(watcher, 50 * 1000);
        }
        /* pending, then active, then the previous one archived: in that order. */
        ck_assert_uint_eq(log.n, 3);
        ck_assert_uint_eq(log.numbers[0], 2);
        ck_assert_str_eq(log.states[0], "pending");
        ck_assert_uint_eq(log.numbers[1], 2);
        ck_assert_str_eq(log.states[1], "active");
        ck_assert_uint_eq(log.numbers[2], 1);
        ck_assert_str_eq(log.states[2], "archived");
}
END_TEST

START_TEST(test_scheduled_rollover) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = test_bus_open();
        _cleanup_free_ char *path = must_create(bus, test_key_group("sched"), "RolloverPeriodUSec", 2000000);
        const char *g = test_key_group("sched");
        uint64_t next = get_t(bus, path, "NextRolloverUSec");
        Gen gens[8];

        ck_assert_uint_gt(next, now_usec());
        ck_assert_uint_le(next, now_usec() + 2000000);
        ck_assert_uint_eq(wait_u(bus, path, "ActiveGeneration", 2, 5000), 2);
        ck_assert_int_eq(wait_u(bus, path, "ActiveGeneration", 2, 0), 2);
        ck_assert_int_eq(test_helper_status_value(g, "active "), 2);

        /* With a delay, the scheduled generation is pending for that long before it encrypts. */
        {
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                ck_assert_msg(set_policy_t(bus, path, "PropagationDelayUSec", 1000000, &e) >= 0, "%s", e.message ?: "");
        }
        ck_assert_uint_eq(wait_u(bus, path, "PendingGeneration", 3, 5000), 3);
        ck_assert_uint_eq(get_u(bus, path, "ActiveGeneration"), 2);
        ck_assert_uint_eq(wait_u(bus, path, "ActiveGeneration", 3, 5000), 3);
        ck_assert_uint_eq(get_generations(bus, path, gens, 8), 3);
        ck_assert_uint_ge(gens[2].activated - gens[2].created, 1000000);
        ck_assert_uint_lt(gens[2].activated - gens[2].created, 1500000);
        /* Back to manual: the schedule stops. */
        {
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                ck_assert_int_ge(set_policy_t(bus, path, "RolloverPeriodUSec", 0, &e), 0);
        }
        ck_assert_uint_eq(get_t(bus, path, "NextRolloverUSec"), 0);
        sleep_ms(2500);
        ck_assert_uint_eq(get_u(bus, path, "ActiveGeneration"), 3);
}
END_TEST

/* Due times are the store's: a daemon that was down for several periods rolls over once. */
START_TEST(test_schedule_survives_restart) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = test_bus_open();
        _cleanup_free_ char *path = must_create(bus, test_key_group("restart"), "RolloverPeriodUSec", 3000000);
        uint64_t stopped;
        size_t n, made = 0;
        Gen gens[16];

        sd_bus_flush_close_unref(TAKE_PTR(bus));
        ck_assert_int_eq(test_dkmd_stop(false), 0);
        stopped = now_usec();
        sleep_ms(7500); /* 2.5 periods */
        test_dkmd_start(NULL);
        sleep_ms(700);
        bus = test_bus_open();
        n = get_generations(bus, path, gens, 16);
        for (size_t i = 0; i < n; i++)
                if (gens[i].created >= stopped)
                        made++;
        ck_assert_uint_eq(made, 1);
        ck_assert_uint_eq(get_u(bus, path, "ActiveGeneration"), 2);
        ck_assert_uint_gt(get_t(bus, path, "NextRolloverUSec"), now_usec() + 1500000);
}
END_TEST

/* dkmd SIGKILLed while rolling over: the store is intact and the kernel follows it on restart. */
START_TEST(test_kill9_consistency) {
        const char *g = test_key_group("kill9");
        _cleanup_free_ char *path = NULL;

        /* The dkmd of the previous test died with it: start one owned by this test. */
        (void) test_dkmd_stop(false);
        test_dkmd_start(NULL);
        {
                _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = test_bus_open();
                path = must_create(bus, g, NULL, 0);
        }
        for (int round = 0; round < 5; round++) {
                _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
                pid_t client;
                uint32_t active;
                char line[32];

                client = fork();
                ck_assert_int_ge(client, 0);
                if (client == 0) {
                        sd_bus *b = NULL;
                        uint32_t number;

                        if (sd_bus_open_system(&b) < 0)
                                _exit(1);
                        for (;;)
                                if (rollover(b, path, NULL, &number) < 0)
                                        _exit(0);
                }
                sleep_ms(150 + 97 * (unsigned) round);
                ck_assert_int_eq(test_dkmd_stop(true) & 0x7f, SIGKILL);
                test_wait(client);
                ck_assert_int_eq(test_store("check"), 0);
                test_dkmd_start(NULL);
                bus = test_bus_open();
                /* Killed between adding and activating: the restart finishes the rollover. */
                ck_assert_uint_eq(wait_u(bus, path, "PendingGeneration", 0, 3000), 0);
                active = get_u(bus, path, "ActiveGeneration");
                ck_assert_uint_ge(active, 1);
                snprintf(line, sizeof(line), "generation %u ", (unsigned) active);
                ck_assert_int_eq(test_helper_status_value(g, "active "), (long) active);
                ck_assert_int_gt(test_helper_status_value(g, line), 0);
        }
}
END_TEST

START_TEST(test_malformed_arguments) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = test_bus_open();
        _cleanup_free_ char *path = must_create(bus, test_key_group("malformed"), NULL, 0);
        _cleanup_free_ char *huge = malloc(64 * 1024 + 1);
        size_t groups = count_groups(bus, NULL, NULL);
        static const char *const bad_names[] = { "a/b", "..", "../etc", "a b", "x\\n", "-x", NULL };
        Gen before[8], after[8];
        size_t n_before = get_generations(bus, path, before, 8);

        memset(huge, 'a', 64 * 1024);
        huge[64 * 1024] = 0;
        {
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                ck_assert_ptr_null(create_group_opt(bus, huge, NULL, 0, &e));
                test_assert_bus_error(&e, E_INVALID_ARGUMENT);
        }
        for (size_t i = 0; bad_names[i]; i++) {
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                ck_assert_ptr_null(create_group_opt(bus, bad_names[i], NULL, 0, &e));
                test_assert_bus_error(&e, E_INVALID_ARGUMENT);
                sd_bus_error_free(&e);
                ck_assert_int_lt(sd_bus_call_method(bus, SVC, MGR_PATH, MGR_IFACE, "GetGroup", &e, NULL, "s",
                                                    bad_names[i]), 0);
                test_assert_bus_error(&e, E_INVALID_ARGUMENT);
        }
        {
                /* Wrong argument types are refused by sd-bus before dkmd's code runs. */
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                ck_assert_int_lt(sd_bus_call_method(bus, SVC, MGR_PATH, MGR_IFACE, "CreateGroup", &e, NULL, "ss",
                                                    "x", "y"), 0);
                test_assert_bus_error(&e, SD_BUS_ERROR_INVALID_ARGS);
        }
        static const uint32_t bad_generations[] = { 0, 2, 99, UINT32_MAX };
        for (size_t i = 0; i < ELEMENTSOF(bad_generations); i++) {
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                ck_assert_int_lt(archive(bus, path, bad_generations[i], &e), 0);
                test_assert_bus_error(&e, E_NO_SUCH_GENERATION);
                sd_bus_error_free(&e);
                ck_assert_int_lt(sd_bus_call_method(bus, SVC, path, GROUP_IFACE, "Retire", &e, NULL, "us",
                                                    bad_generations[i], "test"), 0);
                test_assert_bus_error(&e, E_NO_SUCH_GENERATION);
        }
        {
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                ck_assert_int_lt(sd_bus_call_method(bus, SVC, path, GROUP_IFACE, "SetPolicy", &e, NULL, "a{sv}", 1,
                                                    "HotWindow", "u", (uint32_t) 63), 0);
                test_assert_bus_error(&e, E_INVALID_ARGUMENT);
                sd_bus_error_free(&e);
                ck_assert_int_lt(set_policy_t(bus, path, "RolloverPeriodUSec", 5, &e), 0);
                test_assert_bus_error(&e, E_INVALID_ARGUMENT);
                sd_bus_error_free(&e);
                ck_assert_int_lt(sd_bus_call_method(bus, SVC, path, GROUP_IFACE, "SetPolicy", &e, NULL, "a{sv}", 1,
                                                    "HotWindow", "s", "2"), 0);
                test_assert_bus_error(&e, E_INVALID_ARGUMENT);
                sd_bus_error_free(&e);
                ck_assert_int_lt(set_policy_t(bus, path, "Algorithm", 1, &e), 0);
                test_assert_bus_error(&e, E_INVALID_ARGUMENT);
        }
        {
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                ck_assert_int_lt(sd_bus_call_method(bus, SVC, "/org/dkm/KeyManager1/group/nope", GROUP_IFACE,
                                                    "Rollover", &e, NULL, NULL), 0);
                test_assert_bus_error(&e, SD_BUS_ERROR_UNKNOWN_OBJECT);
        }
        /* Nothing changed. */
        ck_assert_uint_eq(count_groups(bus, NULL, NULL), groups);
        ck_assert_uint_eq(get_generations(bus, path, after, 8), n_before);
        ck_assert_mem_eq(after, before, n_before * sizeof(Gen));
        ck_assert_uint_eq(get_t(bus, path, "RolloverPeriodUSec"), 0);
        ck_assert_uint_eq(get_u(bus, path, "HotWindow"), 2);
}
END_TEST

static void run_ok(char *const argv[]) {
        TestRun r;

        test_run(&r, NULL, 0, NULL, argv);
        ck_assert_msg(r.status == 0, "%s: %s", argv[0], r.err);
        test_run_free(&r);
}

static bool log_contains(const char *needle) {
        char buf[65536];
        FILE *f = fopen(test_dkmd_log(), "re");
        size_t n;

        if (!f)
                return false;
        n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = 0;
        return strstr(buf, needle) != NULL;
}

static void set_allow_humans(sd_bus *bus, const char *path, int allow, sd_bus_error *e, int want) {
        int r = sd_bus_call_method(bus, SVC, path, GROUP_IFACE, "SetPolicy", e, NULL, "a{sv}", 1, "AllowHumanMembers",
                                   "b", allow);

        ck_assert_msg(want == 0 ? r >= 0 : r < 0, "SetPolicy AllowHumanMembers=%d: %s", allow, e->message ?: "");
}

/* A Unix group with a person in it (a login shell, a uid in the login range) is refused at
 * creation and at every load, unless the group's policy allows it (and then it is logged). */
START_TEST(test_human_members_refused) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = test_bus_open();
        const char *g = test_key_group("human"), *g2 = test_key_group("human2");
        _cleanup_free_ char *path = NULL;
        char person[40], pgroup[40];
        struct group *gr;
        gid_t gid;

        snprintf(person, sizeof(person), "dkmt-%ld-person", (long) TW.main_pid);
        snprintf(pgroup, sizeof(pgroup), "dkmt-%ld-pgrp", (long) TW.main_pid);
        run_ok((char *const[]){ (char *) "/usr/sbin/groupadd", (char *) "--system", pgroup, NULL });
        gr = getgrnam(pgroup);
        ck_assert_ptr_nonnull(gr);
        gid = gr->gr_gid;
        /* Created while the group has no person in it; then a person joins. */
        {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
                const char *p;

                ck_assert_int_ge(sd_bus_call_method(bus, SVC, MGR_PATH, MGR_IFACE, "CreateGroup", NULL, &reply,
                                                    "sua{sv}", g, (uint32_t) gid, 0), 0);
                ck_assert_int_ge(sd_bus_message_read(reply, "o", &p), 0);
                path = strdup(p);
        }
        run_ok((char *const[]){ (char *) "/usr/sbin/useradd", (char *) "--no-create-home", (char *) "--shell",
                                (char *) "/bin/bash", (char *) "-G", pgroup, person, NULL });
        {
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                ck_assert_int_lt(sd_bus_call_method(bus, SVC, MGR_PATH, MGR_IFACE, "CreateGroup", &e, NULL, "sua{sv}",
                                                    g2, (uint32_t) gid, 0), 0);
                test_assert_bus_error(&e, E_HUMAN_MEMBERS);
                ck_assert_ptr_nonnull(strstr(e.message, "AllowHumanMembers"));
                sd_bus_error_free(&e);
                ck_assert_int_lt(sd_bus_call_method(bus, SVC, MGR_PATH, MGR_IFACE, "GetGroup", &e, NULL, "s", g2), 0);
                test_assert_bus_error(&e, E_NO_SUCH_GROUP);
        }
        {
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                ck_assert_int_lt(sd_bus_call_method(bus, SVC, path, GROUP_IFACE, "Load", &e, NULL, NULL), 0);
                test_assert_bus_error(&e, E_HUMAN_MEMBERS);
        }
        /* The offline tool keeps the same rule. */
        ck_assert_int_eq(test_store("load", g), 6);
        /* The explicit override works, and is logged with the person's name at each load. */
        {
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                set_allow_humans(bus, path, 1, &e, 0);
        }
        ck_assert_int_ge(sd_bus_call_method(bus, SVC, path, GROUP_IFACE, "Load", NULL, NULL, NULL), 0);
        ck_assert(log_contains(person));
        ck_assert(log_contains("AllowHumanMembers"));
        ck_assert_int_eq(test_store("load", g), 0);
        {
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                set_allow_humans(bus, path, 0, &e, -1);
                test_assert_bus_error(&e, E_HUMAN_MEMBERS);
        }
        run_ok((char *const[]){ (char *) "/usr/sbin/userdel", person, NULL });
        run_ok((char *const[]){ (char *) "/usr/sbin/groupdel", pgroup, NULL });
}
END_TEST

static void write_dropin(const char *tag, const char *text) {
        char file[256];
        FILE *f;

        snprintf(file, sizeof(file), "%s/%s.conf", groups_dir, test_key_group(tag));
        f = fopen(file, "we");
        ck_assert_ptr_nonnull(f);
        fputs(text, f);
        ck_assert_int_eq(fclose(f), 0);
}

static char **reload(sd_bus *bus) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        char **problems = NULL;

        ck_assert_msg(sd_bus_call_method(bus, SVC, MGR_PATH, MGR_IFACE, "Reload", &e, &reply, NULL) >= 0, "%s",
                      e.message ?: "");
        ck_assert_int_ge(sd_bus_message_read_strv(reply, &problems), 0);
        return problems;
}

START_TEST(test_dropins_reload) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = test_bus_open();
        _cleanup_strv_free_ char **problems = NULL;
        _cleanup_free_ char *path = NULL;
        char text[256];

        snprintf(text, sizeof(text), "[KeyGroup]\nUnixGroup=%s\nRolloverPeriod=1d\nHotWindow=3\n", TW.grp);
        write_dropin("dropin", text);
        write_dropin("dropbad", "[KeyGroup]\nUnixGroup=root\nHotWindow=lots\n");
        problems = reload(bus);
        ck_assert_ptr_nonnull(problems);
        ck_assert_ptr_nonnull(strstr(problems[0], test_key_group("dropbad")));
        ck_assert_ptr_nonnull(strstr(problems[0], ":3"));
        ck_assert_ptr_null(problems[1]);
        {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
                const char *p;

                ck_assert_int_ge(sd_bus_call_method(bus, SVC, MGR_PATH, MGR_IFACE, "GetGroup", NULL, &reply, "s",
                                                    test_key_group("dropin")), 0);
                ck_assert_int_ge(sd_bus_message_read(reply, "o", &p), 0);
                path = strdup(p);
        }
        ck_assert_uint_eq(get_t(bus, path, "RolloverPeriodUSec"), 86400ULL * 1000000U);
        ck_assert_uint_eq(get_u(bus, path, "HotWindow"), 3);
        ck_assert_uint_eq(get_u(bus, path, "Gid"), TW.gid);
        ck_assert_int_eq(test_helper_status_value(test_key_group("dropin"), "active "), 1);
        {
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                ck_assert_int_lt(sd_bus_call_method(bus, SVC, MGR_PATH, MGR_IFACE, "GetGroup", &e, NULL, "s",
                                                    test_key_group("dropbad")), 0);
                test_assert_bus_error(&e, E_NO_SUCH_GROUP);
        }
        /* An edited drop-in changes the policy on the next reload; SIGHUP reloads too. */
        snprintf(text, sizeof(text), "[KeyGroup]\nUnixGroup=%s\nRolloverPeriod=2d\nHotWindow=3\n", TW.grp);
        write_dropin("dropin", text);
        snprintf(text, sizeof(text), "[KeyGroup]\nUnixGroup=%u\n", (unsigned) TW.gid);
        write_dropin("hup", text);
        ck_assert_int_eq(kill(test_dkmd_pid(), SIGHUP), 0);
        for (int i = 0; i < 100 && get_t(bus, path, "RolloverPeriodUSec") != 2ULL * 86400 * 1000000U; i++)
                sleep_ms(50);
        ck_assert_uint_eq(get_t(bus, path, "RolloverPeriodUSec"), 2ULL * 86400 * 1000000U);
        ck_assert_int_ge(sd_bus_call_method(bus, SVC, MGR_PATH, MGR_IFACE, "GetGroup", NULL, NULL, "s",
                                            test_key_group("hup")), 0);
        ck_assert(log_contains("HotWindow"));
}
END_TEST

static void as_other_mutations(void *userdata) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = test_bus_open();
        const char *path = userdata;
        struct {
                const char *method, *sig;
        } calls[] = { { "Archive", "u" }, { "Retire", "us" }, { "SetPolicy", "a{sv}" }, { "Load", NULL } };

        for (size_t i = 0; i < ELEMENTSOF(calls); i++) {
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                int r;

                if (!calls[i].sig)
                        r = sd_bus_call_method(bus, SVC, path, GROUP_IFACE, calls[i].method, &e, NULL, NULL);
                else if (strcmp(calls[i].sig, "u") == 0)
                        r = sd_bus_call_method(bus, SVC, path, GROUP_IFACE, calls[i].method, &e, NULL, "u", 1);
                else if (strcmp(calls[i].sig, "us") == 0)
                        r = sd_bus_call_method(bus, SVC, path, GROUP_IFACE, calls[i].method, &e, NULL, "us", 1, "x");
                else
                        r = sd_bus_call_method(bus, SVC, path, GROUP_IFACE, calls[i].method, &e, NULL, "a{sv}", 1,
                                               "HotWindow", "u", 0);
                ck_assert_msg(r < 0, "%s allowed to a non-admin", calls[i].method);
                test_assert_bus_error(&e, E_ACCESS_DENIED);
        }
        {
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                ck_assert_int_lt(sd_bus_call_method(bus, SVC, MGR_PATH, MGR_IFACE, "Reload", &e, NULL, NULL), 0);
                test_assert_bus_error(&e, E_ACCESS_DENIED);
        }
}

START_TEST(test_non_admin_every_mutation) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = test_bus_open();
        _cleanup_free_ char *path = NULL;
        TestCreds other = test_creds_other();
        Gen before[4], after[4];
        size_t n;

        {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
                const char *p;

                ck_assert_int_ge(sd_bus_call_method(bus, SVC, MGR_PATH, MGR_IFACE, "GetGroup", NULL, &reply, "s",
                                                    test_key_group("denied")), 0);
                ck_assert_int_ge(sd_bus_message_read(reply, "o", &p), 0);
                path = strdup(p);
        }
        n = get_generations(bus, path, before, 4);
        snprintf(shared_path, sizeof(shared_path), "%s", path);
        test_wait_ok(test_fork_as(&other, as_other_mutations, shared_path));
        ck_assert_uint_eq(get_generations(bus, path, after, 4), n);
        ck_assert_mem_eq(after, before, n * sizeof(Gen));
        ck_assert_uint_eq(get_u(bus, path, "HotWindow"), 2);
}
END_TEST

static bool polkit_on_bus(void) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = test_bus_open();
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int has = 0;

        return sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                  "NameHasOwner", NULL, &reply, "s", "org.freedesktop.PolicyKit1") >= 0 &&
               sd_bus_message_read(reply, "b", &has) >= 0 && has;
}

static void as_other_with_polkit(void *userdata) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = test_bus_open();
        _cleanup_free_ char *path = NULL;
        uint32_t number = 0;

        path = must_create(bus, test_key_group("polkit"), NULL, 0);
        {
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                ck_assert_msg(rollover(bus, path, &e, &number) >= 0, "Rollover: %s", e.message ?: "");
        }
        ck_assert_uint_eq(number, 2);
}

/* A caller outside the admin group is let in by polkit when polkitd runs and its rules say so:
 * the real polkitd on the test's bus, with the shipped action and a rule for one test user. */
START_TEST(test_polkit_authorizes) {
        char rules[160], action[160], text[512];
        const char *shipped = test_env_path("DKM_POLKIT_POLICY");
        TestCreds other = test_creds_other();
        bool installed_action = false;
        pid_t polkitd;
        FILE *f;

        snprintf(action, sizeof(action), "/usr/share/polkit-1/actions/org.dkm.KeyManager1.policy");
        if (access(action, F_OK) < 0) {
                run_ok((char *const[]){ (char *) "/bin/cp", (char *) shipped, action, NULL });
                installed_action = true;
        }
        snprintf(rules, sizeof(rules), "/etc/polkit-1/rules.d/49-dkmt-%ld.rules", (long) TW.main_pid);
        snprintf(text, sizeof(text),
                 "polkit.addRule(function(action, subject) {\n"
                 "  if (action.id == \"org.dkm.keymanager1.manage\" && subject.user == \"%s\")\n"
                 "    return polkit.Result.YES;\n"
                 "});\n",
                 TW.other);
        f = fopen(rules, "we");
        ck_assert_ptr_nonnull(f);
        fputs(text, f);
        ck_assert_int_eq(fclose(f), 0);

        polkitd = fork();
        ck_assert_int_ge(polkitd, 0);
        if (polkitd == 0) {
                (void) prctl(PR_SET_PDEATHSIG, SIGTERM);
                execl("/usr/lib/polkit-1/polkitd", "polkitd", "--no-debug", (char *) NULL);
                _exit(127);
        }
        for (int i = 0; i < 100 && !polkit_on_bus(); i++)
                sleep_ms(50);
        ck_assert_msg(polkit_on_bus(), "polkitd did not come up on the test bus");

        test_wait_ok(test_fork_as(&other, as_other_with_polkit, NULL));

        kill(polkitd, SIGTERM);
        test_wait(polkitd);
        unlink(rules);
        if (installed_action)
                unlink(action);
        ck_assert_int_eq(test_helper_status_value(test_key_group("polkit"), "active "), 2);
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
                tcase_add_test(tc, test_archive_pending_generations);
                tcase_add_test(tc, test_signals);
                tcase_add_test(tc, test_scheduled_rollover);
                tcase_add_test(tc, test_malformed_arguments);
                tcase_add_test(tc, test_human_members_refused);
                tcase_add_test(tc, test_dropins_reload);
                tcase_add_test(tc, test_non_admin_every_mutation);
                tcase_add_test(tc, test_polkit_authorizes);
                /* Last: they stop and restart dkmd. */
                tcase_add_test(tc, test_schedule_survives_restart);
                tcase_add_test(tc, test_kill9_consistency);
                suite_add_tcase(s, tc);
        }
        return s;
}

int main(void) {
        return test_world_main(make_suite, key_group_tags);
}
