/* SPDX-License-Identifier: MIT */
/* A loopback TCP forwarder that can be cut (every connection reset, the port refusing) and
 * restored, in a thread: see test-forwarder.h. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test-forwarder.h"

#define PAIRS_MAX 64
#define BUF_SIZE 65536

typedef struct Direction {
        char buf[BUF_SIZE];
        size_t len, off; /* pending bytes: buf[off, len) */
        bool eof;        /* the reading side sent FIN */
        bool shut;       /* FIN passed on to the writing side */
} Direction;

typedef struct Pair {
        int fd[2];       /* 0: the client, 1: the target */
        Direction dir[2]; /* dir[i]: read from fd[i], written to fd[1 - i] */
} Pair;

struct TestForwarder {
        int target_port, port;
        int listen_fd;
        int ctl[2], ack[2]; /* commands to the thread, its answers */
        pthread_t thread;
        Pair *pairs[PAIRS_MAX];
        unsigned live, accepted; /* read by other threads: __atomic */
        bool cut; /* __atomic too */
};

static void set_nonblock(int fd) {
        int flags = fcntl(fd, F_GETFL);
        if (flags >= 0)
                (void) fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

/* A TCP reset on the connection itself (connect() with AF_UNSPEC disconnects the socket,
 * which sends RST from any synchronized state): it works even while another process holds a
 * copy of the descriptor, where close() with SO_LINGER 0 would only drop our reference. */
static void reset_fd(int fd) {
        struct sockaddr sa = { .sa_family = AF_UNSPEC };

        if (fd < 0)
                return;
        (void) connect(fd, &sa, sizeof(sa));
        (void) close(fd);
}

static void pair_free(TestForwarder *f, size_t i, bool reset) {
        Pair *p = f->pairs[i];

        for (int k = 0; k < 2; k++) {
                if (reset)
                        reset_fd(p->fd[k]);
                else
                        (void) close(p->fd[k]);
        }
        free(p);
        f->pairs[i] = NULL;
        __atomic_sub_fetch(&f->live, 1, __ATOMIC_SEQ_CST);
}

static int connect_target(int port) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t) port) };
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (fd < 0)
                return -1;
        /* Loopback: refused or accepted at once, no need for a non-blocking connect. */
        if (connect(fd, (struct sockaddr *) &a, sizeof(a)) < 0) {
                close(fd);
                return -1;
        }
        (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        return fd;
}

static void accept_all(TestForwarder *f) {
        for (;;) {
                int c = accept4(f->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK), t, one = 1;
                size_t i;

                if (c < 0)
                        return;
                __atomic_add_fetch(&f->accepted, 1, __ATOMIC_SEQ_CST);
                for (i = 0; i < PAIRS_MAX && f->pairs[i]; i++)
                        ;
                t = i < PAIRS_MAX ? connect_target(f->target_port) : -1;
                if (t < 0) {
                        reset_fd(c);
                        continue;
                }
                set_nonblock(t);
                (void) setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                f->pairs[i] = calloc(1, sizeof(Pair));
                if (!f->pairs[i]) {
                        reset_fd(c);
                        reset_fd(t);
                        continue;
                }
                f->pairs[i]->fd[0] = c;
                f->pairs[i]->fd[1] = t;
                __atomic_add_fetch(&f->live, 1, __ATOMIC_SEQ_CST);
        }
}

/* Move what can be moved for one pair; false when it is finished (closed or failed). */
static bool pair_step(Pair *p, const short revents[2], bool *failed) {
        for (int i = 0; i < 2; i++) {
                Direction *d = &p->dir[i];
                int from = p->fd[i], to = p->fd[1 - i];

                if ((revents[i] & POLLERR)) {
                        *failed = true;
                        return false;
                }
                if (!d->eof && d->len == 0 && (revents[i] & (POLLIN | POLLHUP))) {
                        ssize_t n = recv(from, d->buf, sizeof(d->buf), 0);

                        if (n > 0) {
                                d->len = (size_t) n;
                                d->off = 0;
                        } else if (n == 0)
                                d->eof = true;
                        else if (errno != EAGAIN && errno != EINTR) {
                                *failed = true;
                                return false;
                        }
                }
                while (d->off < d->len) {
                        ssize_t n = send(to, d->buf + d->off, d->len - d->off, MSG_NOSIGNAL);

                        if (n < 0) {
                                if (errno == EAGAIN || errno == EINTR)
                                        break;
                                *failed = true;
                                return false;
                        }
                        d->off += (size_t) n;
                }
                if (d->off == d->len)
                        d->off = d->len = 0;
                if (d->eof && d->len == 0 && !d->shut) {
                        (void) shutdown(to, SHUT_WR);
                        d->shut = true;
                }
        }
        return !(p->dir[0].shut && p->dir[1].shut);
}

static void cut_all(TestForwarder *f) {
        for (size_t i = 0; i < PAIRS_MAX; i++)
                if (f->pairs[i])
                        pair_free(f, i, true);
}

static void *forwarder_thread(void *userdata) {
        TestForwarder *f = userdata;
        struct pollfd pfd[2 + 2 * PAIRS_MAX];
        size_t index[PAIRS_MAX];

        for (;;) {
                size_t n = 2, k = 0;
                char cmd;

                pfd[0] = (struct pollfd){ .fd = f->ctl[0], .events = POLLIN };
                pfd[1] = (struct pollfd){ .fd = __atomic_load_n(&f->cut, __ATOMIC_SEQ_CST) ? -1 : f->listen_fd, .events = POLLIN };
                for (size_t i = 0; i < PAIRS_MAX; i++) {
                        Pair *p = f->pairs[i];

                        if (!p)
                                continue;
                        index[k++] = i;
                        for (int s = 0; s < 2; s++) {
                                short ev = 0;
                                if (!p->dir[s].eof && p->dir[s].len == 0)
                                        ev |= POLLIN;
                                if (p->dir[1 - s].len > p->dir[1 - s].off)
                                        ev |= POLLOUT;
                                pfd[n++] = (struct pollfd){ .fd = p->fd[s], .events = ev };
                        }
                }
                if (poll(pfd, n, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                if (pfd[0].revents) {
                        if (read(f->ctl[0], &cmd, 1) != 1)
                                break;
                        if (cmd == 'c') {
                                cut_all(f);
                                /* Stop listening, keeping the port (bound explicitly): connects
                                 * are refused, and what waited in the backlog is reset. */
                                (void) shutdown(f->listen_fd, SHUT_RDWR);
                                __atomic_store_n(&f->cut, true, __ATOMIC_SEQ_CST);
                        } else if (cmd == 'r') {
                                if (listen(f->listen_fd, 64) < 0)
                                        cmd = 'E';
                                __atomic_store_n(&f->cut, false, __ATOMIC_SEQ_CST);
                        } else if (cmd == 'q') {
                                cut_all(f);
                                (void) !write(f->ack[1], &cmd, 1);
                                return NULL;
                        }
                        (void) !write(f->ack[1], &cmd, 1);
                        continue; /* the pairs may have changed: poll afresh */
                }
                for (size_t j = 0; j < k; j++) {
                        short rev[2] = { pfd[2 + 2 * j].revents, pfd[3 + 2 * j].revents };
                        bool failed = false;

                        if (!rev[0] && !rev[1])
                                continue;
                        if (!pair_step(f->pairs[index[j]], rev, &failed))
                                pair_free(f, index[j], failed);
                }
                if (pfd[1].revents & POLLIN)
                        accept_all(f);
        }
        return NULL;
}

static int bind_listener(int *ret_port) {
        struct sockaddr_in a = { .sin_family = AF_INET };
        socklen_t len = sizeof(a);
        int probe, fd, one = 1;

        /* A free port from the kernel, then bound by number: a port bound as 0 is let go when
         * the socket stops listening, one bound by number stays ours across cut and restore. */
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        probe = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe < 0 || bind(probe, (struct sockaddr *) &a, sizeof(a)) < 0 ||
            getsockname(probe, (struct sockaddr *) &a, &len) < 0) {
                if (probe >= 0)
                        close(probe);
                return -1;
        }
        close(probe);
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -1;
        (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, (struct sockaddr *) &a, sizeof(a)) < 0 || listen(fd, 64) < 0) {
                close(fd);
                return -1;
        }
        *ret_port = ntohs(a.sin_port);
        return fd;
}

TestForwarder *test_forwarder_start(int target_port) {
        TestForwarder *f = calloc(1, sizeof(*f));

        ck_assert_ptr_nonnull(f);
        ck_assert(target_port > 0 && target_port < 65536);
        f->target_port = target_port;
        f->listen_fd = -1;
        /* Another process may take the probed port in between: try again. */
        for (int i = 0; i < 20 && f->listen_fd < 0; i++)
                f->listen_fd = bind_listener(&f->port);
        ck_assert_msg(f->listen_fd >= 0, "forwarder: no port to listen on: %s", strerror(errno));
        ck_assert_int_eq(pipe2(f->ctl, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(f->ack, O_CLOEXEC), 0);
        ck_assert_int_eq(pthread_create(&f->thread, NULL, forwarder_thread, f), 0);
        return f;
}

int test_forwarder_port(const TestForwarder *f) {
        return f->port;
}

static char command(TestForwarder *f, char cmd) {
        char ack = 0;

        ck_assert_int_eq(write(f->ctl[1], &cmd, 1), 1);
        ck_assert_int_eq(read(f->ack[0], &ack, 1), 1);
        return ack;
}

void test_forwarder_cut(TestForwarder *f) {
        ck_assert_int_eq(command(f, 'c'), 'c');
}

void test_forwarder_restore(TestForwarder *f) {
        ck_assert_msg(command(f, 'r') == 'r', "forwarder: cannot listen on port %d again", f->port);
}

bool test_forwarder_is_cut(const TestForwarder *f) {
        return __atomic_load_n(&f->cut, __ATOMIC_SEQ_CST);
}

unsigned test_forwarder_live(const TestForwarder *f) {
        return __atomic_load_n(&f->live, __ATOMIC_SEQ_CST);
}

unsigned test_forwarder_accepted(const TestForwarder *f) {
        return __atomic_load_n(&f->accepted, __ATOMIC_SEQ_CST);
}

void test_forwarder_stop(TestForwarder *f) {
        if (!f)
                return;
        (void) command(f, 'q');
        (void) pthread_join(f->thread, NULL);
        close(f->listen_fd);
        close(f->ctl[0]);
        close(f->ctl[1]);
        close(f->ack[0]);
        close(f->ack[1]);
        free(f);
}
