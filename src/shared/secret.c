/* SPDX-License-Identifier: MIT */
/* Secret buffers on sodium_malloc. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "secret.h"

int secret_new(size_t size, Secret **ret) {
        Secret *s;

        if (size == 0)
                return -EINVAL;
        /* sodium_init() is idempotent and thread-safe; secret memory needs it first. */
        if (sodium_init() < 0)
                return -EIO;

        s = malloc(sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->data = sodium_malloc(size);
        if (!s->data) {
                free(s);
                return -ENOMEM;
        }
        s->size = size;
        *ret = s;
        return 0;
}

int secret_new_copy(const void *p, size_t size, Secret **ret) {
        Secret *s;
        int r;

        r = secret_new(size, &s);
        if (r < 0)
                return r;
        memcpy(s->data, p, size);
        *ret = s;
        return 0;
}

Secret *secret_free(Secret *s) {
        if (!s)
                return NULL;
        sodium_free(s->data); /* zeroes before unmapping */
        free(s);
        return NULL;
}

int secret_equal(const Secret *a, const Secret *b) {
        if (!a || !b || a->size != b->size)
                return 0;
        return sodium_memcmp(a->data, b->data, a->size) == 0;
}

void secret_wipe(void *p, size_t size) {
        sodium_memzero(p, size);
}
