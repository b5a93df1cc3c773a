/* SPDX-License-Identifier: MIT */
/* tcp-forwarder TARGET-PORT: a loopback TCP relay that can be cut (every connection reset, the
 * port refusing) and restored; a process of its own, driven by tests/test-forwarder.c.
 *
 * A process, not a thread of the test: a test run under valgrind is slowed down some fifty
 * times, and a relay inside it delayed every byte a partitioned host exchanged and the cut
 * itself. Started with exec, it runs at full speed whatever the test runs under.
 *
 * It prints the port it listens on ("PORT\n"), then reads one-byte commands on stdin and
 * answers each with a line on stdout: 'c' cut, 'r' restore, 'k' reset the live connections but
 * go on accepting, 's' status ("s LIVE ACCEPTED CUT"), 'q' (or end of input) quit. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>


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

typedef struct Forwarder {
        int target_port, port;
        int listen_fd;
        Pair *pairs[PAIRS_MAX];
        unsigned live, accepted;
        bool cut;
} Forwarder;

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

static void pair_free(Forwarder *f, size_t i, bool reset) {
        Pair *p = f->pairs[i];

        for (int k = 0; k < 2; k++) {
                if (reset)
                        reset_fd(p->fd[k]);
                else
                        (void) close(p->fd[k]);
        }
        free(p);
        f->pairs[i] = NULL;
        f->live--;
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

static void accept_all(Forwarder *f) {
        for (;;) {
                int c = accept4(f->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK), t, one = 1;
                size_t i;

                if (c < 0)
                        return;
                f->accepted++;
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
                f->live++;
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

static void cut_all(Forwarder *f) {
        for (size_t i = 0; i < PAIRS_MAX; i++)
                if (f->pairs[i])
                        pair_free(f, i, true);
}

/* One command from stdin, answered on stdout; false: quit. */
static bool command(Forwarder *f) {
        char cmd;

        if (read(STDIN_FILENO, &cmd, 1) != 1 || cmd == 'q')
                return false;
        if (cmd == 'c') {
                cut_all(f);
                /* Stop listening, keeping the port (bound explicitly): connects are refused, and
                 * what waited in the backlog is reset. */
                (void) shutdown(f->listen_fd, SHUT_RDWR);
                f->cut = true;
                printf("c\n");
        } else if (cmd == 'k') {
                cut_all(f); /* the connections only: the port goes on accepting */
                printf("k\n");
        } else if (cmd == 'r') {
                f->cut = false;
                printf(listen(f->listen_fd, 64) < 0 ? "E\n" : "r\n");
        } else if (cmd == 's')
                printf("s %u %u %d\n", f->live, f->accepted, f->cut);
        else
                printf("E\n");
        fflush(stdout);
        return true;
}

static void relay(Forwarder *f) {
        struct pollfd pfd[2 + 2 * PAIRS_MAX];
        size_t index[PAIRS_MAX];

        for (;;) {
                size_t n = 2, k = 0;

                pfd[0] = (struct pollfd){ .fd = STDIN_FILENO, .events = POLLIN };
                pfd[1] = (struct pollfd){ .fd = f->cut ? -1 : f->listen_fd, .events = POLLIN };
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
                        return;
                }
                if (pfd[0].revents) {
                        if (!command(f))
                                return;
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

int main(int argc, char *argv[]) {
        Forwarder f = { .listen_fd = -1 };

        /* The test that started us may die without saying 'q': go with it. */
        (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (argc != 2 || (f.target_port = atoi(argv[1])) <= 0 || f.target_port > 65535) {
                fprintf(stderr, "usage: tcp-forwarder TARGET-PORT\n");
                return 2;
        }
        /* Another process may take the probed port in between: try again. */
        for (int i = 0; i < 20 && f.listen_fd < 0; i++)
                f.listen_fd = bind_listener(&f.port);
        if (f.listen_fd < 0) {
                fprintf(stderr, "tcp-forwarder: no port to listen on: %s\n", strerror(errno));
                return 1;
        }
        printf("%d\n", f.port);
        fflush(stdout);
        relay(&f);
        cut_all(&f);
        close(f.listen_fd);
        return 0;
}
