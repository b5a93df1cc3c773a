/* SPDX-License-Identifier: MIT */
/* The store's "suspended" marker: while a purge waits for its time, nobody unlocks the store. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "store-internal.h"

#define SUSPENDED_FILE "suspended"
#define SUSPENDED_REASON_MAX 512U

int store_suspend(Store *s, const char *reason) {
        _cleanup_close_ int lock_fd = -EBADF;
        size_t n = strnlen(reason ?: "", SUSPENDED_REASON_MAX);
        int r;

        store_error_clear(s);
        r = store_lock(s, &lock_fd);
        if (r < 0)
                return store_finish(s, r);
        /* One line of text; a newline in the reason would only make it harder to read. */
        r = write_file_atomic(s->dir_fd, SUSPENDED_FILE, reason ?: "", n, 0600);
        if (r < 0)
                return store_error(s, r, SUSPENDED_FILE, "cannot write: %s", strerror(-r));
        return 0;
}

int store_resume(Store *s) {
        _cleanup_close_ int lock_fd = -EBADF;
        int r;

        store_error_clear(s);
        r = store_lock(s, &lock_fd);
        if (r < 0)
                return store_finish(s, r);
        r = unlink_durable(s->dir_fd, SUSPENDED_FILE);
        if (r < 0 && r != -ENOENT)
                return store_error(s, r, SUSPENDED_FILE, "cannot remove: %s", strerror(-r));
        return 0;
}

int store_suspended(Store *s, char **ret_reason) {
        _cleanup_free_ char *text = NULL;
        size_t size;
        int r;

        r = read_file_full(s->dir_fd, SUSPENDED_FILE, SUSPENDED_REASON_MAX, &text, &size);
        if (r == -ENOENT)
                return 0;
        /* Not what store_suspend() writes, but a marker all the same: fail closed. */
        if (r == -EFBIG) {
                text = strdup("(reason too long)");
                if (!text)
                        return -ENOMEM;
        } else if (r < 0)
                return store_error(s, r, SUSPENDED_FILE, "cannot read: %s", strerror(-r));
        text[strcspn(text, "\n")] = 0;
        if (ret_reason)
                *ret_reason = TAKE_PTR(text);
        return 1;
}
