/* SPDX-License-Identifier: MIT */
/* The test's end of tests/tcp-forwarder.c: starts the relay process and drives it over two pipes
 * (see test-forwarder.h). */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test-forwarder.h"

struct TestForwarder {
        pid_t pid;
        int port;
        int to, from; /* its stdin, its stdout */
};

/* One line from the relay (its answers are short), without the newline. */
static void read_line(const TestForwarder *f, char *buf, size_t size) {
        size_t n = 0;

        for (;;) {
                ssize_t k = read(f->from, buf + n, 1);

                if (k < 0 && errno == EINTR)
                        continue;
                ck_assert_msg(k == 1, "tcp-forwarder: no answer (%s)", k < 0 ? strerror(errno) : "it exited");
                if (buf[n] == '\n')
                        break;
                ck_assert_msg(++n < size, "tcp-forwarder: answer too long");
        }
        buf[n] = 0;
}

static void ask(const TestForwarder *f, char cmd, char *answer, size_t size) {
        ck_assert_int_eq(write(f->to, &cmd, 1), 1);
        read_line(f, answer, size);
}

TestForwarder *test_forwarder_start(int target_port) {
        const char *path = getenv("DKM_TCP_FORWARDER");
        TestForwarder *f = calloc(1, sizeof(*f));
        int in[2], out[2];
        char port[16], line[32];

        ck_assert_ptr_nonnull(f);
        ck_assert_msg(path, "DKM_TCP_FORWARDER is not set (meson sets it)");
        ck_assert(target_port > 0 && target_port < 65536);
        ck_assert_int_eq(pipe2(in, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(out, O_CLOEXEC), 0);
        snprintf(port, sizeof(port), "%d", target_port);
        f->pid = fork();
        ck_assert_int_ge(f->pid, 0);
        if (f->pid == 0) {
                if (dup2(in[0], STDIN_FILENO) < 0 || dup2(out[1], STDOUT_FILENO) < 0)
                        _exit(127);
                execl(path, "tcp-forwarder", port, (char *) NULL);
                _exit(127);
        }
        close(in[0]);
        close(out[1]);
        f->to = in[1];
        f->from = out[0];
        read_line(f, line, sizeof(line));
        f->port = atoi(line);
        ck_assert_msg(f->port > 0, "tcp-forwarder: no port: '%s'", line);
        return f;
}

int test_forwarder_port(const TestForwarder *f) {
        return f->port;
}

void test_forwarder_cut(TestForwarder *f) {
        char answer[8];

        ask(f, 'c', answer, sizeof(answer));
        ck_assert_str_eq(answer, "c");
}

void test_forwarder_reset_connections(TestForwarder *f) {
        char answer[8];

        ask(f, 'k', answer, sizeof(answer));
        ck_assert_str_eq(answer, "k");
}

void test_forwarder_restore(TestForwarder *f) {
        char answer[8];

        ask(f, 'r', answer, sizeof(answer));
        ck_assert_msg(strcmp(answer, "r") == 0, "forwarder: cannot listen on port %d again", f->port);
}

static void status(const TestForwarder *f, unsigned *live, unsigned *accepted, int *cut) {
        char answer[64];

        ask(f, 's', answer, sizeof(answer));
        ck_assert_msg(sscanf(answer, "s %u %u %d", live, accepted, cut) == 3, "tcp-forwarder: status '%s'", answer);
}

bool test_forwarder_is_cut(const TestForwarder *f) {
        unsigned live, accepted;
        int cut;

        status(f, &live, &accepted, &cut);
        return cut;
}

unsigned test_forwarder_live(const TestForwarder *f) {
        unsigned live, accepted;
        int cut;

        status(f, &live, &accepted, &cut);
        return live;
}

unsigned test_forwarder_accepted(const TestForwarder *f) {
        unsigned live, accepted;
        int cut;

        status(f, &live, &accepted, &cut);
        return accepted;
}

void test_forwarder_stop(TestForwarder *f) {
        int status;

        if (!f)
                return;
        /* 'q', or the end of its input: it resets what is left and exits. */
        close(f->to);
        while (waitpid(f->pid, &status, 0) < 0 && errno == EINTR)
                ;
        close(f->from);
        free(f);
}
