/* SPDX-License-Identifier: MIT */
/* libdkm's key slots: 32-byte keys in locked, undumpable, guarded pages, many keys per mapping. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dkm-internal.h"

/* Why not one Secret (sodium_malloc) per key: each costs an mmap, three mprotects, a madvise and
 * an mlock (four new mappings split off), about 30 µs here, and sodium_free as much again; that
 * was the largest part of a process's first dkm call and of every key a rollover brings.
 * A page of slots is mapped once, between two PROT_NONE guard pages, locked and excluded from
 * core dumps, and serves KEYSLOTS_PER_PAGE keys: a later key costs no system call. Freed slots
 * are wiped at once; pages are wiped and unmapped by keyslots_clear() (dkm_cleanup, exit). The
 * slots of one page have no guard between them: only this library writes them, always exactly
 * KEYRING_KEY_BYTES, through keyring_client_read_key_into(). */

#define KEYSLOTS_PER_PAGE 128U

typedef struct KeyPage {
        uint8_t *map;  /* guard | data | guard */
        uint8_t *data; /* KEYSLOTS_PER_PAGE * KEYRING_KEY_BYTES, at most one page */
        uint64_t used[KEYSLOTS_PER_PAGE / 64];
        struct KeyPage *next;
} KeyPage;

static KeyPage *pages;
static size_t page_size;

static int page_new(KeyPage **ret) {
        KeyPage *p;

        if (page_size == 0)
                page_size = (size_t) sysconf(_SC_PAGESIZE);
        _Static_assert(KEYSLOTS_PER_PAGE * KEYRING_KEY_BYTES <= 4096, "slots fit the smallest page");
        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->map = mmap(NULL, 3 * page_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p->map == MAP_FAILED) {
                free(p);
                return -ENOMEM;
        }
        p->data = p->map + page_size;
        if (mprotect(p->data, page_size, PROT_READ | PROT_WRITE) < 0 || madvise(p->data, page_size, MADV_DONTDUMP) < 0) {
                (void) munmap(p->map, 3 * page_size);
                free(p);
                return -ENOMEM;
        }
        /* As sodium_malloc does: a process over RLIMIT_MEMLOCK still works, unlocked. */
        (void) mlock(p->data, page_size);
        p->next = pages;
        pages = p;
        *ret = p;
        return 0;
}

int keyslot_new(uint8_t **ret) {
        KeyPage *p;
        int r;

        for (p = pages; p; p = p->next)
                for (size_t w = 0; w < ELEMENTSOF(p->used); w++)
                        if (~p->used[w])
                                goto found;
        r = page_new(&p);
        if (r < 0)
                return r;
found:
        for (size_t i = 0; i < KEYSLOTS_PER_PAGE; i++)
                if (!(p->used[i / 64] & (UINT64_C(1) << (i % 64)))) {
                        p->used[i / 64] |= UINT64_C(1) << (i % 64);
                        *ret = p->data + i * KEYRING_KEY_BYTES;
                        return 0;
                }
        return -ENOMEM; /* not reached: the page had a free slot */
}

void keyslot_free(uint8_t *slot) {
        if (!slot)
                return;
        for (KeyPage *p = pages; p; p = p->next)
                if (slot >= p->data && slot < p->data + KEYSLOTS_PER_PAGE * KEYRING_KEY_BYTES) {
                        size_t i = (size_t) (slot - p->data) / KEYRING_KEY_BYTES;

                        secret_wipe(slot, KEYRING_KEY_BYTES);
                        p->used[i / 64] &= ~(UINT64_C(1) << (i % 64));
                        return;
                }
}

void keyslots_relock(void) {
        /* Memory locks are not inherited by a fork child: its copies of the pages would be
         * swappable. MADV_DONTDUMP is inherited. */
        for (KeyPage *p = pages; p; p = p->next)
                (void) mlock(p->data, page_size);
}

void keyslots_clear(void) {
        while (pages) {
                KeyPage *p = pages;

                pages = p->next;
                secret_wipe(p->data, page_size);
                (void) munlock(p->data, page_size);
                (void) munmap(p->map, 3 * page_size);
                free(p);
        }
}
