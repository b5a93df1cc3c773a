/* SPDX-License-Identifier: MIT */
/* Passphrase input for the admin tools. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "fileio.h"
#include "passphrase.h"

#define PASSPHRASE_MAX 1024

/* Reads byte by byte so nothing past the newline is consumed and no stdio buffer holds a copy. */
static int read_line_secret(int fd, Secret **ret) {
        _cleanup_secret_ Secret *buf = NULL, *out = NULL;
        size_t n = 0;
        int r;

        r = secret_new(PASSPHRASE_MAX, &buf);
        if (r < 0)
                return r;
        for (;;) {
                char c;
                ssize_t k = read(fd, &c, 1);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (k == 0 || c == '\n')
                        break;
                if (n == PASSPHRASE_MAX)
                        return -E2BIG;
                buf->data[n++] = (uint8_t) c;
                c = 0;
        }
        if (n > 0 && buf->data[n - 1] == '\r')
                n--;
        if (n == 0)
                return -ENODATA;
        r = secret_new_copy(buf->data, n, &out);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(out);
        return 0;
}

int passphrase_read_fd(int fd, Secret **ret) {
        return read_line_secret(fd, ret);
}

static int prompt_once(int tty, const char *prompt, Secret **ret) {
        struct termios old, quiet;
        int r;

        if (tcgetattr(tty, &old) < 0)
                return negative_errno();
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t) ECHO;
        quiet.c_lflag |= ECHONL;
        (void) loop_write(tty, prompt, strlen(prompt));
        if (tcsetattr(tty, TCSAFLUSH, &quiet) < 0)
                return negative_errno();
        r = read_line_secret(tty, ret);
        (void) tcsetattr(tty, TCSAFLUSH, &old);
        return r;
}

int passphrase_read_tty(const char *prompt, int confirm, Secret **ret) {
        _cleanup_close_ int tty = -EBADF;
        _cleanup_secret_ Secret *a = NULL, *b = NULL;
        int r;

        tty = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (tty < 0)
                return -ENXIO;
        r = prompt_once(tty, prompt, &a);
        if (r < 0)
                return r;
        if (confirm) {
                r = prompt_once(tty, "Repeat passphrase: ", &b);
                if (r < 0)
                        return r;
                if (!secret_equal(a, b))
                        return -EKEYREJECTED;
        }
        *ret = TAKE_PTR(a);
        return 0;
}
