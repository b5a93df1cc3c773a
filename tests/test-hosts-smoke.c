/* SPDX-License-Identifier: MIT */
/* The multi-host harness of the fleet tests, proved: two dkmd hosts on one machine (each its own
 * user and mount namespace, store, dbus-daemon and dkmd; tests/test-hosts.c) with the same key
 * group name and id, whose keys stay apart; and the TCP forwarder that partitions a host
 * (tests/test-forwarder.c). */
#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <systemd/sd-bus.h>
#include <time.h>
#include <unistd.h>

#include "fileio.h"
#include "macro.h"
#include "test-accounts.h"
#include "test-bus.h"
#include "test-forwarder.h"
#include "test-helpers.h"
#include "test-hosts.h"

static const char *const key_group_tags[] = { "fleet", NULL };

static uint64_t now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

/* ---- two hosts ------------------------------------------------------------------------------ */

/* dkm VERB [-g GROUP] inside h as c, stdin from in: the status must be want_status (stderr in
 * the message otherwise); stdout in *out (malloc'd). */
static void dkm_in(TestHost *h, const TestCreds *c, const char *verb, const char *group, const void *in, size_t in_size,
                   int want_status, uint8_t **out, size_t *out_size) {
        char *argv[] = { (char *) test_env_path("DKM_CLI"), (char *) verb, group ? (char *) "-g" : NULL,
                         (char *) group, NULL };
        TestRun r;

        test_host_run(h, c, argv, in, in_size, &r);
        ck_assert_msg(r.status == want_status, "host %s: dkm %s: status %d, want %d: %s", h->name, verb, r.status,
                      want_status, r.err);
        *out = r.out;
        *out_size = r.out_size;
}

static uint8_t *encrypt_in(TestHost *h, const TestCreds *c, const char *group, const char *text, size_t *size) {
        uint8_t *ct = NULL;

        dkm_in(h, c, "encrypt", group, text, strlen(text), 0, &ct, size);
        ck_assert_uint_gt(*size, strlen(text));
        return ct;
}

/* Decrypt in h: want_status, and the plaintext want when it is 0. */
static void decrypt_in(TestHost *h, const TestCreds *c, const uint8_t *ct, size_t size, int want_status,
                       const char *want) {
        uint8_t *pt = NULL;
        size_t n = 0;

        dkm_in(h, c, "decrypt", NULL, ct, size, want_status, &pt, &n);
        if (want_status == 0)
                ck_assert_msg(n == strlen(want) && memcmp(pt, want, n) == 0, "host %s decrypted '%.*s', want '%s'",
                              h->name, (int) n, (const char *) pt, want);
        free(pt);
}

/* "Group id: <hex>" of dkm-store group show, run inside h. */
static void group_id_in(TestHost *h, const char *group, char id[static 33]) {
        TestRun r;
        const char *p;

        test_host_run(h, NULL,
                      (char *const[]){ (char *) test_env_path("DKM_STORE"), (char *) "group", (char *) "show",
                                       (char *) group, NULL },
                      NULL, 0, &r);
        ck_assert_int_eq(r.status, 0);
        p = strstr((const char *) r.out, "Group id:");
        ck_assert_ptr_nonnull(p);
        ck_assert_int_eq(sscanf(p, "Group id: %32s", id), 1);
        test_run_free(&r);
}

static char *read_group_file(const TestHost *h, const char *group, size_t *size) {
        char path[256], *data = NULL;
        int fd;

        snprintf(path, sizeof(path), "%s/groups", h->state_dir);
        fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        snprintf(path, sizeof(path), "%s.group", group);
        ck_assert_int_eq(read_file_full(fd, path, 1 << 20, &data, size), 0);
        close(fd);
        return data;
}

/* The object path of group in ListGroups over bus, which must list it once. */
static char *list_groups_find(sd_bus *bus, const char *group) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        const char *name, *path;
        char *found = NULL;
        unsigned n = 0;
        int r;

        ck_assert_msg(sd_bus_call_method(bus, SVC, MGR_PATH, MGR_IFACE, "ListGroups", &e, &reply, NULL) >= 0,
                      "ListGroups: %s", e.message ?: "");
        ck_assert_int_ge(sd_bus_message_enter_container(reply, 'a', "(so)"), 0);
        while ((r = sd_bus_message_read(reply, "(so)", &name, &path)) > 0)
                if (strcmp(name, group) == 0) {
                        n++;
                        free(found);
                        found = strdup(path);
                }
        ck_assert_int_ge(r, 0);
        ck_assert_msg(n == 1, "ListGroups lists %s %u times", group, n);
        return found;
}

static uint32_t active_generation(sd_bus *bus, const char *path) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        uint32_t v = 0;

        ck_assert_msg(sd_bus_get_property_trivial(bus, SVC, path, GROUP_IFACE, "ActiveGeneration", &e, 'u', &v) >= 0,
                      "ActiveGeneration: %s", e.message ?: "");
        return v;
}

/* Live processes in the user namespace of this inode (the host's, freed or not). */
static unsigned processes_in_userns(ino_t ino, dev_t dev) {
        DIR *d = opendir("/proc");
        struct dirent *de;
        unsigned n = 0;

        ck_assert_ptr_nonnull(d);
        while ((de = readdir(d))) {
                char path[300];
                struct stat st;

                if (de->d_name[0] < '1' || de->d_name[0] > '9')
                        continue;
                snprintf(path, sizeof(path), "/proc/%s/ns/user", de->d_name);
                if (stat(path, &st) == 0 && st.st_ino == ino && st.st_dev == dev)
                        n++;
        }
        closedir(d);
        return n;
}

/* Is this key in /proc/keys as the initial namespace sees it (every key, by serial)? */
static bool proc_keys_has(long serial) {
        char line[512], want[16];
        bool found = false;
        FILE *f = fopen("/proc/keys", "re");

        ck_assert_ptr_nonnull(f);
        snprintf(want, sizeof(want), "%08lx ", (unsigned long) serial);
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, want, strlen(want)) == 0)
                        found = true;
        fclose(f);
        return found;
}

static int run_status_in(TestHost *h, char *const argv[]) {
        TestRun r;
        int status;

        test_host_run(h, NULL, argv, NULL, 0, &r);
        status = r.status;
        test_run_free(&r);
        return status;
}

/* /proc/PID/FILE (NUL-separated for environ), once pid runs exe. */
static char *proc_file_once(pid_t pid, const char *exe, const char *file, size_t *size) {
        char path[64], link[256] = "", *data;
        ssize_t n;
        int fd;

        snprintf(path, sizeof(path), "/proc/%d/exe", (int) pid);
        for (int i = 0; i < 200; i++) {
                n = readlink(path, link, sizeof(link) - 1);
                link[n > 0 ? n : 0] = 0;
                if (strcmp(link, exe) == 0)
                        break;
                usleep(10000);
        }
        ck_assert_str_eq(link, exe);
        /* /proc files have no size: read until the end. */
        snprintf(path, sizeof(path), "/proc/%d/%s", (int) pid, file);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        data = malloc(1 << 16);
        ck_assert_ptr_nonnull(data);
        *size = 0;
        while ((n = read(fd, data + *size, (1 << 16) - 1 - *size)) > 0)
                *size += (size_t) n;
        data[*size] = 0;
        close(fd);
        return data;
}

static bool has_entry(const char *data, size_t size, const char *entry) {
        for (size_t off = 0; off < size; off += strlen(data + off) + 1)
                if (strcmp(data + off, entry) == 0)
                        return true;
        return false;
}

static bool pid_gone(pid_t pid) {
        return pid > 0 && kill(pid, 0) < 0 && errno == ESRCH;
}

START_TEST(test_two_hosts) {
        const char *g = test_key_group("fleet");
        TestCreds member = test_creds_member(), other = test_creds_other();
        TestHost *a = test_host_new("a"), *b = test_host_new("b");
        char gid_arg[64], id_a[33], id_b[33];
        uint8_t *ct_a1, *ct_b2, *ct_a2;
        size_t n_a1, n_b2, n_a2, size_b_before, size_b_after, size_a_before, size_a_after;
        char *file_b_before, *file_b_after, *file_a_before, *file_a_after, *path_a, *path_b;
        long serial_b2, ring_a, gen_a1, gen_a2;
        TestCall call;
        uint32_t number = 0;

        /* Each host is its own namespace, and none is the test's. */
        ck_assert(a->userns_ino != b->userns_ino);
        ck_assert_uint_eq(test_host_count_processes(a, true), 1); /* the anchor */

        /* Each host's /run is its own. */
        ck_assert_int_eq(run_status_in(a, (char *const[]){ (char *) "/usr/bin/touch", (char *) "/run/dkmt-host-probe", NULL }), 0);
        ck_assert_int_eq(run_status_in(a, (char *const[]){ (char *) "/usr/bin/test", (char *) "-e", (char *) "/run/dkmt-host-probe", NULL }), 0);
        ck_assert_int_eq(run_status_in(b, (char *const[]){ (char *) "/usr/bin/test", (char *) "-e", (char *) "/run/dkmt-host-probe", NULL }), 1);
        ck_assert_int_eq(access("/run/dkmt-host-probe", F_OK), -1);

        /* A's store, made inside A; B starts as a copy of it (the same store, group name and
         * id), then rolls over offline: B has a generation 2 that A lacks. */
        snprintf(gid_arg, sizeof(gid_arg), "--gid=%s", TW.grp);
        ck_assert_int_eq(test_host_store(a, "init"), 0);
        ck_assert_int_eq(test_host_store(a, "group", "create", g, gid_arg), 0);
        {
                TestRun r;
                test_run(&r, NULL, 0, NULL,
                         (char *const[]){ (char *) "/bin/cp", (char *) "-a", a->state_dir, b->state_dir, NULL });
                ck_assert_msg(r.status == 0, "cp: %s", r.err);
                test_run_free(&r);
        }
        ck_assert_int_eq(test_host_store(b, "rollover", g), 0);
        group_id_in(a, g, id_a);
        group_id_in(b, g, id_b);
        ck_assert_str_eq(id_a, id_b);

        test_host_start_bus(a);
        test_host_start_bus(b);
        test_host_start_dkmd(a, NULL);
        test_host_start_dkmd(b, NULL);

        /* Each dkmd loaded its own host's keyrings, none the initial namespace's. */
        ck_assert_int_eq(test_host_helper_status_value(a, g, "active "), 1);
        ck_assert_int_eq(test_host_helper_status_value(b, g, "active "), 2);
        ck_assert_int_eq(test_helper_status_value(g, "active "), -1);
        ring_a = test_host_helper_status_value(a, g, "keyring ");
        gen_a1 = test_host_helper_status_value(a, g, "generation 1 ");
        ck_assert_int_gt(ring_a, 0);
        ck_assert_int_gt(gen_a1, 0);
        ck_assert_int_ne(gen_a1, test_host_helper_status_value(b, g, "generation 1 "));
        serial_b2 = test_host_helper_status_value(b, g, "generation 2 ");
        ck_assert_int_gt(serial_b2, 0);
        ck_assert_int_eq(test_host_helper_status_value(a, g, "generation 2 "), -1);

        /* ListGroups over each host's bus, from this process (root in the initial namespace). */
        {
                _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus_a = test_host_bus_open(a);
                _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus_b = test_host_bus_open(b);
                path_a = list_groups_find(bus_a, g);
                path_b = list_groups_find(bus_b, g);
                ck_assert_uint_eq(active_generation(bus_a, path_a), 1);
                ck_assert_uint_eq(active_generation(bus_b, path_b), 2);
        }
        /* And from inside each host, as the member and as a non-admin. */
        ck_assert_int_ge(test_host_call_as(b, &member, &call, MGR_PATH, MGR_IFACE, "ListGroups", NULL), 0);
        ck_assert_int_lt(test_host_call_as(b, &other, &call, path_b, GROUP_IFACE, "Rollover", NULL), 0);
        ck_assert_str_eq(call.error, E_ACCESS_DENIED);

        /* The member encrypts in A (generation 1) and decrypts there; B, a copy of A's store,
         * holds the same generation 1. */
        ct_a1 = encrypt_in(a, &member, g, "secret-from-A", &n_a1);
        decrypt_in(a, &member, ct_a1, n_a1, 0, "secret-from-A");
        decrypt_in(b, &member, ct_a1, n_a1, 0, "secret-from-A");
        decrypt_in(a, &other, ct_a1, n_a1, 4, NULL);
        /* B's generation 2: decrypts in B; A does not have it (no such generation). */
        ct_b2 = encrypt_in(b, &member, g, "secret-from-B", &n_b2);
        decrypt_in(b, &member, ct_b2, n_b2, 0, "secret-from-B");
        decrypt_in(a, &member, ct_b2, n_b2, 3, NULL);
        /* Outside any host: nothing is loaded in the initial namespace. */
        {
                TestRun r;
                test_run(&r, ct_b2, n_b2, &member, (char *const[]){ (char *) test_env_path("DKM_CLI"), (char *) "decrypt", NULL });
                ck_assert_msg(r.status == 3, "initial namespace: status %d: %s", r.status, r.err);
                test_run_free(&r);
        }

        /* Rollover over A's bus: A gets a generation 2 of its own; B stays as it was. */
        file_a_before = read_group_file(a, g, &size_a_before);
        file_b_before = read_group_file(b, g, &size_b_before);
        {
                _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus_a = test_host_bus_open(a);
                _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus_b = test_host_bus_open(b);
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;

                ck_assert_msg(sd_bus_call_method(bus_a, SVC, path_a, GROUP_IFACE, "Rollover", &e, &reply, NULL) >= 0,
                              "Rollover: %s", e.message ?: "");
                ck_assert_int_ge(sd_bus_message_read(reply, "u", &number), 0);
                ck_assert_uint_eq(number, 2);
                ck_assert_uint_eq(active_generation(bus_a, path_a), 2);
                ck_assert_uint_eq(active_generation(bus_b, path_b), 2);
        }
        file_a_after = read_group_file(a, g, &size_a_after);
        file_b_after = read_group_file(b, g, &size_b_after);
        ck_assert(size_a_before != size_a_after || memcmp(file_a_before, file_a_after, size_a_after) != 0);
        ck_assert(size_b_before == size_b_after && memcmp(file_b_before, file_b_after, size_b_after) == 0);
        ck_assert_int_eq(test_host_helper_status_value(a, g, "active "), 2);
        gen_a2 = test_host_helper_status_value(a, g, "generation 2 ");
        ck_assert_int_gt(gen_a2, 0);
        ck_assert_int_ne(gen_a2, serial_b2);
        ck_assert_int_eq(test_host_helper_status_value(b, g, "generation 2 "), serial_b2);
        ck_assert_int_eq(test_helper_status_value(g, "active "), -1);

        /* Generation 2 is a different key on each host: A's ciphertext fails in B and B's in A
         * (authentication failed), each still decrypts at home. */
        ct_a2 = encrypt_in(a, &member, g, "secret-from-A2", &n_a2);
        decrypt_in(a, &member, ct_a2, n_a2, 0, "secret-from-A2");
        decrypt_in(b, &member, ct_a2, n_a2, 7, NULL);
        decrypt_in(a, &member, ct_b2, n_b2, 7, NULL);
        decrypt_in(b, &member, ct_b2, n_b2, 0, "secret-from-B");
        decrypt_in(a, &member, ct_a1, n_a1, 0, "secret-from-A");

        /* A process spawned into A as the member: its credentials, namespace and environment. */
        {
                char want[300], *data;
                size_t size;
                pid_t sleeper = test_host_spawn(a, &member, (char *const[]){ (char *) "/bin/sleep", (char *) "100", NULL },
                                                (char *const[]){ (char *) "DKMT_EXTRA=yes", NULL });

                data = proc_file_once(sleeper, "/usr/bin/sleep", "environ", &size);
                snprintf(want, sizeof(want), "DKM_STATE_DIR=%s", a->state_dir);
                ck_assert(has_entry(data, size, want));
                snprintf(want, sizeof(want), "DKM_RUNTIME_DIR=%s", a->runtime_dir);
                ck_assert(has_entry(data, size, want));
                snprintf(want, sizeof(want), "DKM_GROUPS_DIRS=%s", a->groups_dir);
                ck_assert(has_entry(data, size, want));
                snprintf(want, sizeof(want), "DBUS_SYSTEM_BUS_ADDRESS=%s", a->bus_address);
                ck_assert(has_entry(data, size, want));
                snprintf(want, sizeof(want), "DKM_KEYRING_HELPER=%s", test_env_path("DKM_KEYRING_HELPER"));
                ck_assert(has_entry(data, size, want));
                ck_assert(has_entry(data, size, "DKMT_EXTRA=yes"));
                free(data);
                data = proc_file_once(sleeper, "/usr/bin/sleep", "status", &size);
                snprintf(want, sizeof(want), "\nUid:\t%u\t%u\t%u\t%u\n", (unsigned) member.uid, (unsigned) member.uid,
                         (unsigned) member.uid, (unsigned) member.uid);
                ck_assert_msg(strstr(data, want), "%s", data);
                free(data);
                ck_assert_uint_eq(test_host_count_processes(a, false), 3); /* dbus-daemon, dkmd, sleep */
        }

        /* Freeing a host leaves nothing: no process in its namespace, its keys gone; B is not
         * touched. */
        {
                pid_t anchor = a->anchor, dkmd = a->dkmd_pid, dbus = a->dbus_pid;
                ino_t ino = a->userns_ino;
                dev_t dev = a->userns_dev;
                char dir[sizeof(a->dir)];
                struct stat st;

                snprintf(dir, sizeof(dir), "%s", a->dir);
                ck_assert(proc_keys_has(ring_a) && proc_keys_has(gen_a1) && proc_keys_has(gen_a2));
                test_host_free(a);
                ck_assert(pid_gone(anchor) && pid_gone(dkmd) && pid_gone(dbus));
                ck_assert_uint_eq(processes_in_userns(ino, dev), 0);
                ck_assert_msg(test_proc_keys_gone((int32_t) ring_a), "A's group keyring is still there");
                ck_assert(test_proc_keys_gone((int32_t) gen_a1) && test_proc_keys_gone((int32_t) gen_a2));
                ck_assert_int_eq(stat(dir, &st), -1);
        }
        ck_assert_int_eq(test_host_helper_status_value(b, g, "generation 2 "), serial_b2);
        decrypt_in(b, &member, ct_b2, n_b2, 0, "secret-from-B");
        {
                pid_t anchor = b->anchor, dkmd = b->dkmd_pid, dbus = b->dbus_pid;
                ino_t ino = b->userns_ino;
                dev_t dev = b->userns_dev;

                ck_assert(proc_keys_has(serial_b2));
                test_host_free(b);
                ck_assert(pid_gone(anchor) && pid_gone(dkmd) && pid_gone(dbus));
                ck_assert_uint_eq(processes_in_userns(ino, dev), 0);
                ck_assert_msg(test_proc_keys_gone((int32_t) serial_b2), "B's generation 2 is still there");
        }
        free(ct_a1);
        free(ct_b2);
        free(ct_a2);
        free(file_a_before);
        free(file_a_after);
        free(file_b_before);
        free(file_b_after);
        free(path_a);
        free(path_b);
}
END_TEST

/* A host's processes die with the process that made it, even one that fails before freeing it
 * (PR_SET_PDEATHSIG: the anchor, dbus-daemon and dkmd alike), and its namespace with them. */
typedef struct MakerOut {
        pid_t anchor, dbus, dkmd;
        ino_t ino;
        dev_t dev;
} MakerOut;

START_TEST(test_host_dies_with_maker) {
        MakerOut *o = test_shared_new(sizeof(MakerOut));
        pid_t maker, pids[3];

        /* What the maker leaves behind comes to this process, which can then see it end. */
        ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
        fflush(NULL);
        maker = fork();
        ck_assert_int_ge(maker, 0);
        if (maker == 0) {
                TestHost *h = test_host_new("m");

                ck_assert_int_eq(test_host_store(h, "init"), 0);
                test_host_start_bus(h);
                test_host_start_dkmd(h, NULL);
                *o = (MakerOut){ h->anchor, h->dbus_pid, h->dkmd_pid, h->userns_ino, h->userns_dev };
                _exit(0); /* as a failed test does: no test_host_free() */
        }
        test_wait_ok(maker);
        pids[0] = o->anchor;
        pids[1] = o->dbus;
        pids[2] = o->dkmd;
        for (size_t i = 0; i < ELEMENTSOF(pids); i++) {
                pid_t r = 0;

                ck_assert_int_gt(pids[i], 0);
                for (int k = 0; k < 500 && (r = waitpid(pids[i], NULL, WNOHANG)) == 0; k++)
                        usleep(10000);
                ck_assert_msg(r == pids[i], "process %d of the host outlived its maker", (int) pids[i]);
        }
        ck_assert_uint_eq(processes_in_userns(o->ino, o->dev), 0);
}
END_TEST

/* ---- the forwarder -------------------------------------------------------------------------- */

typedef struct Echo {
        int listen_fd, port, stop[2];
        pthread_t thread;
} Echo;

/* An echo server in a thread: poll() over up to 16 connections. */
static void *echo_thread(void *userdata) {
        Echo *e = userdata;
        struct pollfd pfd[18];
        int conns[16];
        size_t n_conns = 0;

        for (;;) {
                size_t n = 0;
                pfd[n++] = (struct pollfd){ .fd = e->stop[0], .events = POLLIN };
                pfd[n++] = (struct pollfd){ .fd = e->listen_fd, .events = POLLIN };
                for (size_t i = 0; i < n_conns; i++)
                        pfd[n++] = (struct pollfd){ .fd = conns[i], .events = POLLIN };
                if (poll(pfd, n, -1) < 0)
                        continue;
                if (pfd[0].revents)
                        break;
                for (size_t i = 0; i < n_conns; i++) {
                        char buf[65536];
                        ssize_t r;

                        if (!pfd[2 + i].revents)
                                continue;
                        r = recv(conns[i], buf, sizeof(buf), MSG_DONTWAIT);
                        if (r > 0) {
                                ssize_t off = 0;
                                /* Blocking writes: the client reads as it writes. */
                                while (off < r) {
                                        ssize_t w = send(conns[i], buf + off, (size_t) (r - off), MSG_NOSIGNAL);
                                        if (w <= 0)
                                                break;
                                        off += w;
                                }
                        } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                                close(conns[i]);
                                conns[i] = -1;
                        }
                }
                for (size_t i = 0; i < n_conns;)
                        if (conns[i] < 0)
                                conns[i] = conns[--n_conns];
                        else
                                i++;
                if (pfd[1].revents & POLLIN) {
                        int c = accept4(e->listen_fd, NULL, NULL, SOCK_CLOEXEC);
                        if (c >= 0 && n_conns < ELEMENTSOF(conns))
                                conns[n_conns++] = c;
                        else if (c >= 0)
                                close(c);
                }
        }
        for (size_t i = 0; i < n_conns; i++)
                close(conns[i]);
        return NULL;
}

static void echo_start(Echo *e) {
        struct sockaddr_in a = { .sin_family = AF_INET };
        socklen_t len = sizeof(a);

        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        e->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(e->listen_fd, 0);
        ck_assert_int_eq(bind(e->listen_fd, (struct sockaddr *) &a, sizeof(a)), 0);
        ck_assert_int_eq(listen(e->listen_fd, 16), 0);
        ck_assert_int_eq(getsockname(e->listen_fd, (struct sockaddr *) &a, &len), 0);
        e->port = ntohs(a.sin_port);
        ck_assert_int_eq(pipe2(e->stop, O_CLOEXEC), 0);
        ck_assert_int_eq(pthread_create(&e->thread, NULL, echo_thread, e), 0);
}

static void echo_stop(Echo *e) {
        ck_assert_int_eq(write(e->stop[1], "", 1), 1);
        ck_assert_int_eq(pthread_join(e->thread, NULL), 0);
        close(e->listen_fd);
        close(e->stop[0]);
        close(e->stop[1]);
}

/* connect() to 127.0.0.1:port; the socket, or -errno. */
static int connect_port(int port) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t) port) };
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), r;

        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ck_assert_int_ge(fd, 0);
        r = connect(fd, (struct sockaddr *) &a, sizeof(a));
        if (r < 0) {
                r = -errno;
                close(fd);
                return r;
        }
        return fd;
}

/* Wait up to timeout_ms for fd to be readable; then recv() into buf. */
static ssize_t recv_within(int fd, void *buf, size_t size, int timeout_ms) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        ssize_t n;

        if (poll(&p, 1, timeout_ms) != 1)
                return -ETIMEDOUT;
        n = recv(fd, buf, size, MSG_DONTWAIT);
        return n < 0 ? -errno : n;
}

static void ping(int fd, const char *text) {
        char buf[64];
        size_t got = 0;

        ck_assert_int_eq(send(fd, text, strlen(text), MSG_NOSIGNAL), (ssize_t) strlen(text));
        while (got < strlen(text)) {
                ssize_t n = recv_within(fd, buf + got, sizeof(buf) - got, 2000);
                ck_assert_msg(n > 0, "echo through the forwarder: %zd", n);
                got += (size_t) n;
        }
        ck_assert(memcmp(buf, text, got) == 0);
}

static void wait_live(const TestForwarder *f, unsigned want) {
        for (int i = 0; i < 200 && test_forwarder_live(f) != want; i++)
                usleep(5000);
        ck_assert_uint_eq(test_forwarder_live(f), want);
}

/* 1 MiB through the relay and back, the client reading as it writes (the relay's buffers fill
 * and drain: POLLOUT is exercised). */
static void bulk(int fd) {
        size_t total = 1 << 20, sent = 0, got = 0;
        uint8_t *out = malloc(total), *in = malloc(total);

        ck_assert(out && in);
        for (size_t i = 0; i < total; i++)
                out[i] = (uint8_t) (i * 7 + i / 251);
        while (got < total) {
                struct pollfd p = { .fd = fd, .events = POLLIN | (sent < total ? POLLOUT : 0) };
                ck_assert_int_eq(poll(&p, 1, 5000), 1);
                if ((p.revents & POLLOUT) && sent < total) {
                        ssize_t n = send(fd, out + sent, total - sent > 65536 ? 65536 : total - sent,
                                         MSG_NOSIGNAL | MSG_DONTWAIT);
                        if (n > 0)
                                sent += (size_t) n;
                }
                if (p.revents & POLLIN) {
                        ssize_t n = recv(fd, in + got, total - got, MSG_DONTWAIT);
                        ck_assert_msg(n > 0, "bulk: recv %zd", n);
                        got += (size_t) n;
                }
        }
        ck_assert(memcmp(in, out, total) == 0);
        free(out);
        free(in);
}

START_TEST(test_forwarder) {
        Echo e;
        TestForwarder *f;
        int c1, c2, c3, port;
        char buf[16];
        uint64_t t0;
        ssize_t n;

        echo_start(&e);
        f = test_forwarder_start(e.port);
        port = test_forwarder_port(f);
        ck_assert_int_ne(port, e.port);

        c1 = connect_port(port);
        c2 = connect_port(port);
        ck_assert_int_ge(c1, 0);
        ck_assert_int_ge(c2, 0);
        ping(c1, "ping-1");
        ping(c2, "ping-2");
        bulk(c1);
        wait_live(f, 2);

        /* Cut: both live connections end at once (reset), and the port refuses. */
        t0 = now_ms();
        test_forwarder_cut(f);
        ck_assert(test_forwarder_is_cut(f));
        n = recv_within(c1, buf, sizeof(buf), 1000);
        ck_assert_msg(n == 0 || n == -ECONNRESET, "c1 after the cut: %zd", n);
        n = recv_within(c2, buf, sizeof(buf), 1000);
        ck_assert_msg(n == 0 || n == -ECONNRESET, "c2 after the cut: %zd", n);
        ck_assert_uint_eq(test_forwarder_live(f), 0);
        c3 = connect_port(port);
        ck_assert_msg(c3 == -ECONNREFUSED, "connect while cut: %d", c3);
        ck_assert_uint_lt(now_ms() - t0, 1000);
        close(c1);
        close(c2);

        /* Restored: the same port relays again. */
        test_forwarder_restore(f);
        ck_assert(!test_forwarder_is_cut(f));
        c3 = connect_port(port);
        ck_assert_int_ge(c3, 0);
        ping(c3, "ping-3");
        wait_live(f, 1);
        /* Connections reset, the port still open: c3 is reset, a new connection relays. */
        test_forwarder_reset_connections(f);
        n = recv_within(c3, buf, sizeof(buf), 1000);
        ck_assert_msg(n == 0 || n == -ECONNRESET, "c3 after the reset: %zd", n);
        close(c3);
        ck_assert(!test_forwarder_is_cut(f));
        c3 = connect_port(port);
        ck_assert_int_ge(c3, 0);
        ping(c3, "ping-4");
        /* A client's FIN passes through: the echo server closes, the client sees EOF. */
        ck_assert_int_eq(shutdown(c3, SHUT_WR), 0);
        ck_assert_int_eq(recv_within(c3, buf, sizeof(buf), 2000), 0);
        close(c3);
        wait_live(f, 0);
        ck_assert_uint_eq(test_forwarder_accepted(f), 4);

        /* A target that is down: the client is reset at once. */
        test_forwarder_stop(f);
        echo_stop(&e);
        f = test_forwarder_start(e.port); /* nobody listens there now */
        c1 = connect_port(test_forwarder_port(f));
        ck_assert_int_ge(c1, 0);
        n = recv_within(c1, buf, sizeof(buf), 1000);
        ck_assert_msg(n == 0 || n == -ECONNRESET, "target down: %zd", n);
        close(c1);
        test_forwarder_stop(f);
}
END_TEST

/* A host reaches a loopback server through the forwarder (hosts share the network namespace),
 * and loses it when the forwarder is cut: the path of "partition host C from slapd". */
START_TEST(test_host_through_forwarder) {
        TestHost *h = test_host_new("c");
        TestForwarder *f;
        char script[256];
        TestRun r;
        uint64_t t0;
        Echo e;

        echo_start(&e);
        f = test_forwarder_start(e.port);
        snprintf(script, sizeof(script),
                 "exec 3<>/dev/tcp/127.0.0.1/%d || exit 3; echo hello-from-c >&3; read -t 2 line <&3; echo \"$line\"",
                 test_forwarder_port(f));
        char *const argv[] = { (char *) "/bin/bash", (char *) "-c", script, NULL };

        test_host_run(h, NULL, argv, NULL, 0, &r);
        ck_assert_msg(r.status == 0, "status %d: %s", r.status, r.err);
        ck_assert_str_eq((const char *) r.out, "hello-from-c\n");
        test_run_free(&r);

        test_forwarder_cut(f);
        t0 = now_ms();
        test_host_run(h, NULL, argv, NULL, 0, &r);
        ck_assert_msg(r.status == 3, "while cut: status %d: %s", r.status, r.err);
        ck_assert_uint_lt(now_ms() - t0, 1000);
        test_run_free(&r);

        test_forwarder_restore(f);
        test_host_run(h, NULL, argv, NULL, 0, &r);
        ck_assert_int_eq(r.status, 0);
        ck_assert_str_eq((const char *) r.out, "hello-from-c\n");
        test_run_free(&r);

        test_forwarder_stop(f);
        echo_stop(&e);
        test_host_free(h);
}
END_TEST

static Suite *make_suite(bool integration) {
        Suite *s = suite_create("hosts-smoke");
        TCase *tc = tcase_create("forwarder");

        tcase_add_test(tc, test_forwarder);
        tcase_set_timeout(tc, 30);
        suite_add_tcase(s, tc);
        if (integration) {
                tc = tcase_create("hosts");
                tcase_add_test(tc, test_two_hosts);
                tcase_add_test(tc, test_host_dies_with_maker);
                tcase_add_test(tc, test_host_through_forwarder);
                tcase_set_timeout(tc, 60);
                suite_add_tcase(s, tc);
        }
        return s;
}

int main(void) {
        return test_world_main(make_suite, key_group_tags);
}
