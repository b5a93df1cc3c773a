/* SPDX-License-Identifier: MIT */
/* The real dkmctl against a real dkmd on a private system-type dbus-daemon: every command, its refusals and exit
 * statuses, --json. */
#include <check.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "json-writer.h"
#include "macro.h"
#include "test-accounts.h"
#include "test-bus.h"

#define PYTHON3 "/usr/bin/python3"

static const char *const key_group_tags[] = { "basic",  "policy", "roll",    "pend",   "status",  "manual",
                                              "refuse", "drop",   "dropbad", "denied", "byother", NULL };

/* Exit statuses of dkmctl (docs/DKMCTL.md), spelled out: they are its interface. */
enum {
        S_USAGE = 2,
        S_NOT_FOUND = 3,
        S_DENIED = 4,
        S_INVALID = 5,
        S_STATE = 6,
        S_APPROVAL = 7,
        S_UNREACHABLE = 12,
        S_PROBLEMS = 13,
};

static char groups_dir[128];

static void bus_up(void) {
        /* dkmd reads drop-ins from the world's directory only, never the host's. */
        snprintf(groups_dir, sizeof(groups_dir), "%s/groups.d", TW.dir);
        ck_assert_int_eq(mkdir(groups_dir, 0755), 0);
        ck_assert_int_eq(setenv("DKM_GROUPS_DIRS", groups_dir, 1), 0);
        test_bus_start();
        test_dkmd_start(NULL);
}

/* "dkmctl ARGS..." as an argv (one at a time: the array is reused by the next call). */
static char *const *ctl_argv(const char *first, ...) {
        static char *argv[32];
        size_t n = 0;
        va_list ap;

        argv[n++] = (char *) test_env_path("DKM_DKMCTL");
        va_start(ap, first);
        for (const char *a = first; a && n + 1 < ELEMENTSOF(argv); a = va_arg(ap, const char *))
                argv[n++] = (char *) a;
        va_end(ap);
        argv[n] = NULL;
        return argv;
}
#define CTL(...) ctl_argv(__VA_ARGS__, (const char *) NULL)

static void assert_one_line(const TestRun *r, const char *words) {
        size_t n = strlen(r->err);

        ck_assert_msg(n > 0 && strncmp(r->err, "dkmctl: ", 8) == 0, "stderr: '%s'", r->err);
        ck_assert_msg(strchr(r->err, '\n') == r->err + n - 1, "not one line: '%s'", r->err);
        if (words)
                ck_assert_msg(strstr(r->err, words), "'%s' lacks '%s'", r->err, words);
}

/* Run dkmctl as c (NULL: root) and check its status. A failure is one line on stderr holding
 * words, and nothing on stdout (reload's problems excepted); a success prints words on stdout
 * and nothing on stderr. With ret, the run is handed over (test_run_free it). */
static void expect(const TestCreds *c, char *const argv[], int status, const char *words, TestRun *ret) {
        TestRun r;

        test_run(&r, NULL, 0, c, argv);
        ck_assert_msg(r.status == status, "dkmctl %s %s %s: status %d, want %d: %s", argv[1] ?: "", argv[2] ?: "",
                      argv[2] ? argv[3] ?: "" : "", r.status, status, r.err);
        if (status != 0) {
                assert_one_line(&r, words);
                if (status != S_PROBLEMS)
                        ck_assert_msg(r.out_size == 0, "stdout of a failure: %s", (char *) r.out);
        } else {
                ck_assert_msg(r.err[0] == 0, "stderr of a success: %s", r.err);
                if (words)
                        ck_assert_msg(strstr((char *) r.out, words), "stdout lacks '%s':\n%s", words, (char *) r.out);
        }
        if (ret)
                *ret = r;
        else
                test_run_free(&r);
}

static void assert_out_has(const TestRun *r, const char *words) {
        ck_assert_msg(strstr((char *) r->out, words), "stdout lacks '%s':\n%s", words, (char *) r->out);
}

static void assert_out_lacks(const TestRun *r, const char *words) {
        ck_assert_msg(!strstr((char *) r->out, words), "stdout has '%s':\n%s", words, (char *) r->out);
}

/* json must be one valid JSON document (python's json module is the judge); then python's code
 * runs with it as d and args as sys.argv[1:]: its asserts say what must hold. */
static void json_check_doc(const void *json, size_t size, const char *code, const char *const *args) {
        char program[4096];
        char *argv[16] = { (char *) PYTHON3, (char *) "-c", program };
        size_t n = 3;
        TestRun py;

        snprintf(program, sizeof(program), "import json,sys\nd=json.load(sys.stdin)\n%s\n", code);
        for (size_t i = 0; args && args[i] && n + 1 < ELEMENTSOF(argv); i++)
                argv[n++] = (char *) args[i];
        argv[n] = NULL;
        test_run(&py, json, size, NULL, argv);
        ck_assert_msg(py.status == 0, "JSON check failed (%d): %s\ndocument: %.*s\ncheck: %s", py.status, py.err,
                      (int) size, (const char *) json, code);
        test_run_free(&py);
}

/* dkmctl's stdout: one document on one line, checked as above; args end with NULL. */
static void json_check(const TestRun *r, const char *code, ...) {
        const char *args[12];
        size_t n = 0;
        va_list ap;

        ck_assert_msg(r->out_size > 0 && memchr(r->out, '\n', r->out_size) == r->out + r->out_size - 1,
                      "not one line of JSON: %s", (char *) r->out);
        va_start(ap, code);
        for (const char *a = va_arg(ap, const char *); a && n + 1 < ELEMENTSOF(args); a = va_arg(ap, const char *))
                args[n++] = a;
        va_end(ap);
        args[n] = NULL;
        json_check_doc(r->out, r->out_size, code, args);
}

static const char *gid_str(void) {
        static char buf[16];

        snprintf(buf, sizeof(buf), "%u", (unsigned) TW.gid);
        return buf;
}

static char *opt(const char *name, const char *value) {
        static char bufs[8][256];
        static unsigned next;
        char *b = bufs[next++ % ELEMENTSOF(bufs)];

        snprintf(b, sizeof(bufs[0]), "--%s=%s", name, value);
        return b;
}

/* ---- without root: usage, the JSON writer, no bus ---- */

START_TEST(test_usage) {
        TestRun r;

        expect(NULL, CTL("--help"), 0, "group create NAME --unix-group=GROUP|GID", &r);
        assert_out_has(&r, "group set-policy NAME");
        assert_out_has(&r, "--json");
        assert_out_has(&r, "--no-legend");
        assert_out_has(&r, "4 access denied");
        assert_out_has(&r, "12 dkmd not reachable");
        test_run_free(&r);
        expect(NULL, CTL("--version"), 0, "dkmctl 0.1.0", NULL);

        expect(NULL, (char *const[]){ (char *) test_env_path("DKM_DKMCTL"), NULL }, S_USAGE, "no command given", NULL);
        expect(NULL, CTL("bogus"), S_USAGE, "unknown command 'bogus'", NULL);
        expect(NULL, CTL("group"), S_USAGE, "needs a subcommand", NULL);
        expect(NULL, CTL("group", "frobnicate", "x"), S_USAGE, "needs a subcommand", NULL);
        expect(NULL, CTL("--bogus", "status"), S_USAGE, "unknown option '--bogus'", NULL);
        expect(NULL, CTL("status", "extra"), S_USAGE, "usage: dkmctl status", NULL);
        expect(NULL, CTL("group", "show"), S_USAGE, "usage: dkmctl group show NAME", NULL);
        expect(NULL, CTL("group", "archive", "x"), S_USAGE, "usage: dkmctl group archive NAME GENERATION", NULL);
        expect(NULL, CTL("group", "create", "x"), S_USAGE, "needs --unix-group", NULL);
        expect(NULL, CTL("group", "create", "x", "--unix-group"), S_USAGE, "needs a value", NULL);
        expect(NULL, CTL("group", "create", "x", "--unix-group=dkmt-no-such-unix-group"), S_USAGE, "no such Unix group",
               NULL);
        expect(NULL, CTL("group", "set-policy", "x"), S_USAGE, "needs at least one of --rollover-period", NULL);
        expect(NULL, CTL("group", "rollover", "x", "--hot-window=2"), S_USAGE, "--hot-window does not apply", NULL);
        expect(NULL, CTL("group", "set-policy", "x", "--algorithm=aes256-gcm"), S_USAGE, "--algorithm does not apply",
               NULL);
        expect(NULL, CTL("group", "set-policy", "x", "--unix-group=0"), S_USAGE, "--unix-group does not apply", NULL);

        /* Bad durations and numbers never reach dkmd. */
        static const char *const bad_durations[] = {
                "abc", "10x", "", "1.5d", "-1", "99999999999999999999", "5d-", NULL
        };
        for (size_t i = 0; bad_durations[i]; i++) {
                expect(NULL, CTL("group", "set-policy", "x", opt("rollover-period", bad_durations[i])), S_USAGE,
                       "not a duration", NULL);
                expect(NULL, CTL("group", "set-policy", "x", opt("propagation-delay", bad_durations[i])), S_USAGE,
                       "not a duration", NULL);
        }
        expect(NULL, CTL("group", "set-policy", "x", "--hot-window=-1"), S_USAGE, "not a number", NULL);
        expect(NULL, CTL("group", "set-policy", "x", "--hot-window=4294967296"), S_USAGE, "not a number", NULL);
        expect(NULL, CTL("group", "set-policy", "x", "--allow-human-members=maybe"), S_USAGE, "yes or no", NULL);
        expect(NULL, CTL("group", "archive", "x", "abc"), S_USAGE, "not a generation number", NULL);
        expect(NULL, CTL("group", "archive", "x", "4294967296"), S_USAGE, "not a generation number", NULL);
        expect(NULL, CTL("group", "retire", "x", "1x"), S_USAGE, "not a generation number", NULL);
        expect(NULL, CTL("group", "archive", "x", "-1"), S_USAGE, "unknown option", NULL);
}
END_TEST

START_TEST(test_unreachable_bus) {
        const char *saved = getenv("DBUS_SYSTEM_BUS_ADDRESS");
        char *old = saved ? strdup(saved) : NULL;

        ck_assert_int_eq(setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/dkmt-bus", 1), 0);
        expect(NULL, CTL("status"), S_UNREACHABLE, "cannot reach dkmd", NULL);
        expect(NULL, CTL("--json", "group", "list"), S_UNREACHABLE, "is dkmd running", NULL);
        if (old)
                setenv("DBUS_SYSTEM_BUS_ADDRESS", old, 1);
        else
                unsetenv("DBUS_SYSTEM_BUS_ADDRESS");
        free(old);
}
END_TEST

START_TEST(test_json_writer) {
        /* Every escape JSON knows, and bytes that are not UTF-8: the output must still parse. */
        static const char expected[] =
                "{\"quote\\\"back\\\\slash\":\"a\\\"b\\\\c\\n\\t\\r\\b\\f\\u0001\\u001f\\u007f/\","
                "\"utf8\":\"gr\xc3\xbc\xc3\x9f \xe2\x82\xac \xf0\x9f\x94\x91\","
                "\"bad\":\"\\ufffd\\ufffd(\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\ufffdx\","
                "\"none\":null,\"max\":18446744073709551615,\"zero\":null,\"one\":1,\"t\":true,\"f\":false,"
                "\"list\":[1,[],{},\"\",null,{\"k\":[true]}]}\n";
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);
        JsonWriter w;

        ck_assert_ptr_nonnull(f);
        json_init(&w, f);
        json_object_begin(&w);
        json_field_string(&w, "quote\"back\\slash", "a\"b\\c\n\t\r\b\f\x01\x1f\x7f/");
        json_field_string(&w, "utf8", "gr\xc3\xbc\xc3\x9f \xe2\x82\xac \xf0\x9f\x94\x91");
        /* A stray byte, a lead without its continuation, a surrogate, an overlong '/', and a
         * code point above U+10FFFF. */
        json_field_string(&w, "bad", "\xff\xc3(\xed\xa0\x80\xc0\xaf\xf4\x90\x80\x80x");
        json_field_string(&w, "none", NULL);
        json_field_uint(&w, "max", UINT64_MAX);
        json_field_uint_or_null(&w, "zero", 0);
        json_field_uint_or_null(&w, "one", 1);
        json_field_bool(&w, "t", true);
        json_field_bool(&w, "f", false);
        json_key(&w, "list");
        json_array_begin(&w);
        json_uint(&w, 1);
        json_array_begin(&w);
        json_array_end(&w);
        json_object_begin(&w);
        json_object_end(&w);
        json_string(&w, "");
        json_null(&w);
        json_object_begin(&w);
        json_key(&w, "k");
        json_array_begin(&w);
        json_bool(&w, true);
        json_array_end(&w);
        json_object_end(&w);
        json_array_end(&w);
        json_object_end(&w);
        json_finish(&w);
        ck_assert_int_eq(fclose(f), 0);
        ck_assert_str_eq(buf, expected);
        json_check_doc(buf, size,
                       "assert d['quote\"back\\\\slash'] == 'a\"b\\\\c\\n\\t\\r\\b\\f\\x01\\x1f\\x7f/'\n"
                       "assert d['utf8'] == 'gr\\u00fc\\u00df \\u20ac \\U0001f511'\n"
                       "assert d['bad'] == '\\ufffd\\ufffd(' + '\\ufffd' * 9 + 'x'\n"
                       "assert d['max'] == 2**64 - 1 and d['zero'] is None and d['none'] is None\n"
                       "assert d['list'] == [1, [], {}, '', None, {'k': [True]}]",
                       NULL);
        free(buf);
}
END_TEST

/* ---- with root: a private bus, dkmd, throwaway accounts ---- */

START_TEST(test_create_list_show) {
        const char *g = test_key_group("basic");
        TestRun r;

        expect(NULL, CTL("group", "create", g, opt("unix-group", TW.grp), "--rollover-period=30d", "--hot-window=3"), 0,
               "Created key group", &r);
        assert_out_has(&r, g);
        assert_out_has(&r, TW.grp);
        assert_out_has(&r, "generation 1 is active");
        test_run_free(&r);
        /* Created groups are in the kernel at once. */
        ck_assert_int_eq(test_helper_status_value(g, "active "), 1);

        expect(NULL, CTL("group", "list"), 0, g, &r);
        assert_out_has(&r, "NAME ");
        assert_out_has(&r, "ROLLOVER");
        assert_out_has(&r, "listed.");
        assert_out_has(&r, "30d");
        test_run_free(&r);
        expect(NULL, CTL("--no-legend", "group", "list"), 0, g, &r);
        assert_out_lacks(&r, "NAME ");
        assert_out_lacks(&r, "listed.");
        test_run_free(&r);
        expect(NULL, CTL("--json", "group", "list"), 0, NULL, &r);
        json_check(&r,
                   "g = [x for x in d['groups'] if x['name'] == sys.argv[1]]\n"
                   "assert len(g) == 1 and 'generations' not in g[0]\n"
                   "assert g[0]['gid'] == int(sys.argv[2]) and g[0]['unix_group'] == sys.argv[3]\n"
                   "assert g[0]['rollover_period_usec'] == 30 * 86400 * 10**6 and g[0]['hot_window'] == 3",
                   g, gid_str(), TW.grp, (const char *) NULL);
        test_run_free(&r);

        expect(NULL, CTL("group", "show", g), 0, "Rollover period:     30d", &r);
        assert_out_has(&r, "Hot window:          3 archived generations");
        assert_out_has(&r, "Pending generation:  none");
        assert_out_has(&r, "Human members:       refused");
        assert_out_has(&r, "Object path:         /org/dkm/KeyManager1/group/");
        assert_out_has(&r, "GENERATION  STATE");
        assert_out_has(&r, "1 generation.");
        test_run_free(&r);
        expect(NULL, CTL("--json", "group", "show", g), 0, NULL, &r);
        json_check(&r,
                   "assert d['name'] == sys.argv[1] and d['gid'] == int(sys.argv[2])\n"
                   "assert d['unix_group'] == sys.argv[3] and d['algorithm'] == 'xchacha20-poly1305'\n"
                   "assert d['active_generation'] == 1 and d['pending_generation'] is None\n"
                   "assert d['propagation_delay_usec'] == 0 and d['allow_human_members'] is False\n"
                   "assert d['path'].startswith('/org/dkm/KeyManager1/group/')\n"
                   "[gen] = d['generations']\n"
                   "assert gen['number'] == 1 and gen['state'] == 'active' and gen['retired_usec'] is None\n"
                   "assert gen['archived_usec'] is None and gen['activated_usec'] >= gen['created_usec'] > 0\n"
                   "assert d['next_rollover_usec'] == gen['activated_usec'] + d['rollover_period_usec']",
                   g, gid_str(), TW.grp, (const char *) NULL);
        test_run_free(&r);
}
END_TEST

START_TEST(test_set_policy) {
        const char *g = test_key_group("policy");
        TestRun r;

        expect(NULL, CTL("--json", "group", "create", g, opt("unix-group", gid_str())), 0, NULL, &r);
        json_check(&r, "assert d['rollover_period_usec'] == 0 and d['next_rollover_usec'] is None",
                   (const char *) NULL);
        test_run_free(&r);

        expect(NULL,
               CTL("group", "set-policy", g, "--rollover-period=1d", "--propagation-delay=10min", "--hot-window=4",
                   "--allow-human-members=no"),
               0, "rollover period 1d, propagation delay 10min, hot window 4, human members refused", NULL);
        /* Keys not given keep their value. */
        expect(NULL, CTL("--json", "group", "set-policy", g, "--hot-window=1"), 0, NULL, &r);
        json_check(&r,
                   "assert d['name'] == sys.argv[1] and d['hot_window'] == 1\n"
                   "assert d['rollover_period_usec'] == 86400 * 10**6\n"
                   "assert d['propagation_delay_usec'] == 600 * 10**6 and d['allow_human_members'] is False\n"
                   "assert d['next_rollover_usec'] == d['generations'][0]['activated_usec'] + 86400 * 10**6",
                   g, (const char *) NULL);
        test_run_free(&r);
        expect(NULL, CTL("--json", "group", "set-policy", g, "--allow-human-members"), 0, NULL, &r);
        json_check(&r, "assert d['allow_human_members'] is True and d['hot_window'] == 1", (const char *) NULL);
        test_run_free(&r);
        expect(NULL, CTL("group", "set-policy", g, "--allow-human-members=no", "--rollover-period=0"), 0,
               "rollover period manual", NULL);
        expect(NULL, CTL("group", "show", g), 0, "Next rollover:       manual", NULL);
        expect(NULL, CTL("group", "set-policy", g, "--rollover-period=1w", "--propagation-delay=90"), 0,
               "rollover period 7d, propagation delay 1min30s", NULL);
}
END_TEST

START_TEST(test_rollover_archive_retire_load) {
        const char *g = test_key_group("roll");
        TestRun r;

        expect(NULL, CTL("group", "create", g, opt("unix-group", TW.grp)), 0, "generation 1 is active", NULL);
        expect(NULL, CTL("group", "rollover", g), 0, "generation 2 is active", NULL);
        expect(NULL, CTL("--json", "group", "rollover", g), 0, NULL, &r);
        json_check(&r,
                   "assert d['group'] == sys.argv[1] and d['generation'] == 3 and d['state'] == 'active'\n"
                   "assert d['active_generation'] == 3 and d['active_from_usec'] > 0",
                   g, (const char *) NULL);
        test_run_free(&r);
        ck_assert_int_eq(test_helper_status_value(g, "active "), 3);

        expect(NULL, CTL("group", "archive", g, "3"), S_STATE, "active generation", NULL);
        expect(NULL, CTL("group", "archive", g, "1"), S_STATE, "already in that state", NULL);
        expect(NULL, CTL("group", "archive", g, "0"), S_NOT_FOUND, "no such generation", NULL);
        expect(NULL, CTL("group", "archive", g, "4294967295"), S_NOT_FOUND, "no such generation", NULL);
        expect(NULL, CTL("group", "archive", g, "4"), S_NOT_FOUND, "no such generation", NULL);
        expect(NULL, CTL("group", "retire", g, "0"), S_NOT_FOUND, "no such generation", NULL);
        expect(NULL, CTL("group", "retire", g, "4294967295"), S_NOT_FOUND, "no such generation", NULL);
        /* Refused for root too, until the approval workflow exists. */
        expect(NULL, CTL("group", "retire", g, "1"), S_APPROVAL, "approval", NULL);
        expect(NULL, CTL("--json", "group", "retire", g, "1"), S_APPROVAL, "approval", NULL);

        expect(NULL, CTL("group", "load", g), 0, "Loaded", NULL);
        expect(NULL, CTL("--json", "group", "load", g), 0, NULL, &r);
        json_check(&r, "assert d == {'group': sys.argv[1], 'loaded': True}", g, (const char *) NULL);
        test_run_free(&r);
        ck_assert_int_eq(test_helper_status_value(g, "active "), 3);

        expect(NULL, CTL("group", "show", g), 0, "3 generations.", &r);
        assert_out_has(&r, "archived");
        test_run_free(&r);
}
END_TEST

START_TEST(test_rollover_pending) {
        const char *g = test_key_group("pend");
        TestRun r;
        char when[64];
        unsigned long long next;
        const char *p;
        time_t t;

        expect(NULL, CTL("group", "create", g, opt("unix-group", gid_str()), "--propagation-delay=1h"), 0, NULL, NULL);
        expect(NULL, CTL("group", "rollover", g), 0, "generation 2 is pending until ", &r);
        assert_out_has(&r, "(in 59min");
        assert_out_has(&r, "generation 1 encrypts until then");
        test_run_free(&r);
        /* Loaded into the kernel (decrypt-only) while generation 1 still encrypts. */
        ck_assert_int_eq(test_helper_status_value(g, "active "), 1);
        ck_assert_int_gt(test_helper_status_value(g, "generation 2 "), 0);

        expect(NULL, CTL("group", "rollover", g), S_STATE, "already pending", NULL);
        expect(NULL, CTL("--json", "group", "rollover", g), S_STATE, "already pending", NULL);

        expect(NULL, CTL("--json", "group", "show", g), 0, NULL, &r);
        json_check(&r,
                   "import time\n"
                   "assert d['active_generation'] == 1 and d['pending_generation'] == 2\n"
                   "assert d['next_rollover_usec'] > time.time() * 10**6 + 3500 * 10**6\n"
                   "assert d['next_rollover_usec'] == d['generations'][1]['created_usec'] + 3600 * 10**6\n"
                   "assert [x['state'] for x in d['generations']] == ['active', 'pending']",
                   (const char *) NULL);
        /* The human output shows that time in local time, ISO date order. */
        p = strstr((char *) r.out, "\"next_rollover_usec\":");
        ck_assert_ptr_nonnull(p);
        next = strtoull(p + strlen("\"next_rollover_usec\":"), NULL, 10);
        test_run_free(&r);
        t = (time_t) (next / 1000000U);
        ck_assert_uint_gt(strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S %Z", localtime(&t)), 0);

        expect(NULL, CTL("group", "show", g), 0, "Pending generation:  2, active from ", &r);
        assert_out_has(&r, when);
        assert_out_has(&r, "Propagation delay:   1h");
        test_run_free(&r);
        expect(NULL, CTL("status"), 0, when, &r);
        assert_out_has(&r, "A PENDING generation becomes active at NEXT.");
        test_run_free(&r);

        /* A pending generation withdrawn: it never encrypts. */
        expect(NULL, CTL("--json", "group", "archive", g, "2"), 0, NULL, &r);
        json_check(&r, "assert d == {'group': sys.argv[1], 'generation': 2, 'state': 'archived'}", g,
                   (const char *) NULL);
        test_run_free(&r);
        expect(NULL, CTL("--json", "group", "show", g), 0, NULL, &r);
        json_check(&r,
                   "assert d['pending_generation'] is None and d['active_generation'] == 1\n"
                   "assert [x['state'] for x in d['generations']] == ['active', 'archived']",
                   (const char *) NULL);
        test_run_free(&r);
        /* The rollover after it makes generation 3 pending, as the delay says. */
        expect(NULL, CTL("--json", "group", "rollover", g), 0, NULL, &r);
        json_check(&r,
                   "import time\n"
                   "assert d['generation'] == 3 and d['state'] == 'pending' and d['active_generation'] == 1\n"
                   "assert d['active_from_usec'] > time.time() * 10**6 + 3500 * 10**6",
                   (const char *) NULL);
        test_run_free(&r);
}
END_TEST

START_TEST(test_status) {
        const char *g = test_key_group("status");
        TestRun r;

        expect(NULL, CTL("group", "create", g, opt("unix-group", TW.grp), "--rollover-period=30d"), 0, NULL, NULL);
        expect(NULL, CTL("group", "create", test_key_group("manual"), opt("unix-group", TW.grp)), 0, NULL, NULL);
        expect(NULL, CTL("status"), 0, "Version:  dkmd 0.1.0", &r);
        assert_out_has(&r, "Store:    unlocked");
        assert_out_has(&r, "NAME ");
        assert_out_has(&r, "NEXT");
        assert_out_has(&r, "listed.");
        assert_out_has(&r, g);
        /* Created a moment ago with a 30-day period: the next rollover is 29 days 23 hours and
         * some minutes away; a manual group says so. */
        assert_out_has(&r, "in 29d 23h");
        assert_out_has(&r, "manual");
        test_run_free(&r);
        expect(NULL, CTL("--no-legend", "status"), 0, g, &r);
        assert_out_lacks(&r, "NAME ");
        assert_out_lacks(&r, "listed.");
        test_run_free(&r);
        expect(NULL, CTL("--json", "status"), 0, NULL, &r);
        json_check(&r,
                   "import time\n"
                   "assert d['version'] == '0.1.0' and d['store_unlocked'] is True\n"
                   "[g] = [x for x in d['groups'] if x['name'] == sys.argv[1]]\n"
                   "assert g['active_generation'] == 1 and g['pending_generation'] is None\n"
                   "left = g['next_rollover_usec'] - time.time() * 10**6\n"
                   "assert 29 * 86400 * 10**6 < left <= 30 * 86400 * 10**6\n"
                   "assert g['gid'] == int(sys.argv[2]) and 'generations' not in g\n"
                   "assert [x['name'] for x in d['groups']] == sorted(x['name'] for x in d['groups'])",
                   g, gid_str(), (const char *) NULL);
        test_run_free(&r);
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

START_TEST(test_reload) {
        char text[256], bad_file[256];
        TestRun r;

        snprintf(text, sizeof(text), "[KeyGroup]\nUnixGroup=%s\nRolloverPeriod=1d\nHotWindow=3\n", TW.grp);
        write_dropin("drop", text);
        /* A value with a quote, a backslash and a tab: the JSON must still parse. */
        write_dropin("dropbad", "[KeyGroup]\nUnixGroup=root\nHotWindow=\"lo\\\ts\"\n");
        snprintf(bad_file, sizeof(bad_file), "%s/%s.conf:3", groups_dir, test_key_group("dropbad"));

        expect(NULL, CTL("reload"), S_PROBLEMS, "1 problem", &r);
        assert_out_has(&r, bad_file);
        ck_assert_msg(strchr((char *) r.out, '\n') == (char *) r.out + r.out_size - 1, "one problem, one line: %s",
                      (char *) r.out);
        test_run_free(&r);
        expect(NULL, CTL("--json", "reload"), S_PROBLEMS, "1 problem", &r);
        json_check(&r,
                   "[p] = d['problems']\n"
                   "assert p.startswith(sys.argv[1]) and 'HotWindow=\"lo' in p and 'x09s\"' in p, p",
                   bad_file, (const char *) NULL);
        test_run_free(&r);

        /* The good drop-in was applied: the group exists with its policy, and is loaded. */
        expect(NULL, CTL("--json", "group", "show", test_key_group("drop")), 0, NULL, &r);
        json_check(&r,
                   "assert d['gid'] == int(sys.argv[1]) and d['hot_window'] == 3\n"
                   "assert d['rollover_period_usec'] == 86400 * 10**6 and d['active_generation'] == 1",
                   gid_str(), (const char *) NULL);
        test_run_free(&r);
        ck_assert_int_eq(test_helper_status_value(test_key_group("drop"), "active "), 1);
        expect(NULL, CTL("group", "show", test_key_group("dropbad")), S_NOT_FOUND, "no such group", NULL);

        /* Fixed: no problem left. */
        bad_file[strlen(bad_file) - 2] = 0;
        ck_assert_int_eq(unlink(bad_file), 0);
        expect(NULL, CTL("reload"), 0, "every one applied", NULL);
        expect(NULL, CTL("--json", "reload"), 0, NULL, &r);
        json_check(&r, "assert d == {'problems': []}", (const char *) NULL);
        test_run_free(&r);
}
END_TEST

START_TEST(test_refusals) {
        const char *g = test_key_group("refuse");

        expect(NULL, CTL("group", "create", g, opt("unix-group", TW.grp)), 0, NULL, NULL);

        expect(NULL, CTL("group", "show", "dkmt-no-such-group"), S_NOT_FOUND, "no such group", NULL);
        expect(NULL, CTL("--json", "group", "show", "dkmt-no-such-group"), S_NOT_FOUND, "no such group", NULL);
        expect(NULL, CTL("group", "rollover", "dkmt-no-such-group"), S_NOT_FOUND, "no such group", NULL);
        expect(NULL, CTL("group", "archive", "dkmt-no-such-group", "1"), S_NOT_FOUND, "no such group", NULL);
        expect(NULL, CTL("group", "retire", "dkmt-no-such-group", "1"), S_NOT_FOUND, "no such group", NULL);
        expect(NULL, CTL("group", "load", "dkmt-no-such-group"), S_NOT_FOUND, "no such group", NULL);
        expect(NULL, CTL("group", "set-policy", "dkmt-no-such-group", "--hot-window=1"), S_NOT_FOUND, "no such group",
               NULL);

        expect(NULL, CTL("group", "show", "Bad/Name"), S_INVALID, "group name must match", NULL);
        expect(NULL, CTL("group", "create", "Bad/Name", opt("unix-group", TW.grp)), S_INVALID, "group name must match",
               NULL);
        expect(NULL, CTL("group", "create", g, opt("unix-group", TW.grp)), S_STATE, "exists", NULL);
        expect(NULL, CTL("group", "create", "dkmt-gid-zero", "--unix-group=0"), S_INVALID, "gid 0", NULL);
        expect(NULL, CTL("group", "create", "dkmt-rot13", opt("unix-group", TW.grp), "--algorithm=rot13"), S_INVALID,
               "unknown algorithm", NULL);
        expect(NULL, CTL("group", "set-policy", g, "--hot-window=63"), S_INVALID, "HotWindow", NULL);
        /* Refused as a whole: the valid key given with it is not applied either. */
        expect(NULL, CTL("group", "set-policy", g, "--rollover-period=12h", "--hot-window=4294967295"), S_INVALID,
               "HotWindow", NULL);
        expect(NULL, CTL("group", "show", g), 0, "Rollover period:     manual", NULL);
        expect(NULL, CTL("group", "show", "dkmt-gid-zero"), S_NOT_FOUND, "no such group", NULL);
        expect(NULL, CTL("group", "show", "dkmt-rot13"), S_NOT_FOUND, "no such group", NULL);
}
END_TEST

START_TEST(test_non_admin_refused) {
        const char *g = test_key_group("denied");
        TestCreds other = test_creds_other(), member = test_creds_member();
        TestRun r;

        expect(NULL, CTL("group", "create", g, opt("unix-group", TW.grp)), 0, NULL, NULL);
        /* Reading is for everyone the bus policy lets in. */
        expect(&other, CTL("status"), 0, g, NULL);
        expect(&other, CTL("group", "list"), 0, g, NULL);
        expect(&other, CTL("group", "show", g), 0, "Active generation:   1", NULL);
        expect(&other, CTL("--json", "group", "show", g), 0, NULL, &r);
        json_check(&r, "assert d['name'] == sys.argv[1]", g, (const char *) NULL);
        test_run_free(&r);

        /* Changing is for root and the admin group: refused before anything else is looked at. */
        expect(&other, CTL("group", "create", test_key_group("byother"), opt("unix-group", TW.grp)), S_DENIED,
               "admin group", NULL);
        expect(&other, CTL("group", "create", g, opt("unix-group", TW.grp)), S_DENIED, "admin group", NULL);
        expect(&other, CTL("group", "rollover", g), S_DENIED, "admin group", NULL);
        expect(&other, CTL("--json", "group", "rollover", g), S_DENIED, "admin group", NULL);
        expect(&other, CTL("group", "archive", g, "1"), S_DENIED, "admin group", NULL);
        expect(&other, CTL("group", "retire", g, "1"), S_DENIED, "admin group", NULL);
        expect(&other, CTL("group", "set-policy", g, "--hot-window=0"), S_DENIED, "admin group", NULL);
        expect(&other, CTL("group", "load", g), S_DENIED, "admin group", NULL);
        expect(&other, CTL("reload"), S_DENIED, "admin group", NULL);

        /* Nothing changed. */
        expect(NULL, CTL("group", "show", test_key_group("byother")), S_NOT_FOUND, "no such group", NULL);
        expect(NULL, CTL("--json", "group", "show", g), 0, NULL, &r);
        json_check(&r, "assert d['active_generation'] == 1 and len(d['generations']) == 1 and d['hot_window'] == 2",
                   (const char *) NULL);
        test_run_free(&r);

        /* A member of the admin group (supplementary only) may change things. */
        expect(&member, CTL("group", "rollover", g), 0, "generation 2 is active", NULL);
        ck_assert_int_eq(test_helper_status_value(g, "active "), 2);
}
END_TEST

/* Last: it stops dkmd. */
START_TEST(test_dkmd_not_running) {
        (void) test_dkmd_stop(false);
        expect(NULL, CTL("status"), S_UNREACHABLE, "cannot reach dkmd", NULL);
        expect(NULL, CTL("--json", "group", "rollover", test_key_group("roll")), S_UNREACHABLE, "is dkmd running",
               NULL);
}
END_TEST

static Suite *make_suite(bool integration) {
        Suite *s = suite_create("dkmctl");
        TCase *tc = tcase_create("usage");

        tcase_add_test(tc, test_usage);
        tcase_add_test(tc, test_unreachable_bus);
        tcase_add_test(tc, test_json_writer);
        suite_add_tcase(s, tc);
        if (integration) {
                tc = tcase_create("bus");
                tcase_add_unchecked_fixture(tc, bus_up, test_bus_stop);
                tcase_add_test(tc, test_create_list_show);
                tcase_add_test(tc, test_set_policy);
                tcase_add_test(tc, test_rollover_archive_retire_load);
                tcase_add_test(tc, test_rollover_pending);
                tcase_add_test(tc, test_status);
                tcase_add_test(tc, test_reload);
                tcase_add_test(tc, test_refusals);
                tcase_add_test(tc, test_non_admin_refused);
                tcase_add_test(tc, test_dkmd_not_running);
                suite_add_tcase(s, tc);
        }
        return s;
}

int main(void) {
        return test_world_main(make_suite, key_group_tags);
}
