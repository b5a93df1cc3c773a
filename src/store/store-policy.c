/* SPDX-License-Identifier: MIT */
/* The store-wide policy: its file (pure parse and format, fuzzed alone) and its load and save. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "group-file.h"
#include "store-internal.h"
#include "store-policy.h"

#define POLICY_FILE_MAX 4096U

int store_policy_check(const StorePolicy *p) {
        if (p->purge_delay_usec < STORE_PURGE_DELAY_MIN_USEC || p->purge_delay_usec > STORE_PURGE_DELAY_MAX_USEC)
                return -EINVAL;
        return group_file_check_approval_levels(p->approval_levels, p->n_approval_levels);
}

enum { KEY_FORMAT, KEY_APPROVAL_GROUPS, KEY_PURGE_DELAY, _KEY_MAX };
static const char *const policy_keys[_KEY_MAX] = {
        [KEY_FORMAT] = "format",
        [KEY_APPROVAL_GROUPS] = "approval-groups",
        [KEY_PURGE_DELAY] = "purge-delay-usec",
};

static int parse_value(StorePolicy *p, unsigned k, const char *v, unsigned line, KvError *e) {
        switch (k) {
        case KEY_FORMAT:
                return kv_parse_format(v, STORE_POLICY_FILE_FORMAT, "store policy", line, e);
        case KEY_APPROVAL_GROUPS:
                return group_file_parse_approval_levels(v, p->approval_levels, &p->n_approval_levels, line, e);
        case KEY_PURGE_DELAY:
                if (kv_parse_u64(v, UINT64_MAX, &p->purge_delay_usec) < 0)
                        return kverror_set(e, line, "malformed purge delay");
                if (p->purge_delay_usec < STORE_PURGE_DELAY_MIN_USEC || p->purge_delay_usec > STORE_PURGE_DELAY_MAX_USEC)
                        return kverror_set(e, line, "purge delay out of range (%llu to %llu usec)",
                                           STORE_PURGE_DELAY_MIN_USEC, STORE_PURGE_DELAY_MAX_USEC);
                return 0;
        }
        return -EINVAL;
}

/* Every key once, in the order the writer uses; a file without them all is damaged, not a default. */
int store_policy_file_parse(const char *data, size_t size, StorePolicy *ret, KvError *e) {
        StorePolicy p = {};
        KvReader rd = {};
        unsigned next = 0;
        int r;

        r = kvreader_init_verified(&rd, data, size, e);
        if (r < 0)
                return r;
        while ((r = kvreader_next(&rd, e)) > 0) {
                if (next >= _KEY_MAX) {
                        r = kverror_set(e, rd.line, "unexpected key '%.64s'", rd.key);
                        break;
                }
                if (strcmp(rd.key, policy_keys[next]) != 0) {
                        r = kverror_set(e, rd.line, "expected '%s', found '%.64s'", policy_keys[next], rd.key);
                        break;
                }
                r = parse_value(&p, next, rd.value, rd.line, e);
                if (r < 0)
                        break;
                next++;
        }
        kvreader_done(&rd);
        if (r < 0)
                return r;
        if (next < _KEY_MAX)
                return kverror_set(e, 0, "'%s' missing", policy_keys[next]);
        *ret = p;
        return 0;
}

int store_policy_file_format(const StorePolicy *p, char **ret, size_t *ret_size) {
        KvBuf b = {};
        int r;

        if (store_policy_check(p) < 0)
                return -EINVAL;
        kvbuf_printf(&b, "format=%d\napproval-groups=", STORE_POLICY_FILE_FORMAT);
        group_file_format_approval_levels(&b, p->approval_levels, p->n_approval_levels);
        kvbuf_printf(&b, "\npurge-delay-usec=%llu\n", (unsigned long long) p->purge_delay_usec);
        r = kvbuf_finish(&b, ret, ret_size);
        kvbuf_done(&b);
        return r;
}

int store_policy_load(Store *s, StorePolicy *ret) {
        _cleanup_free_ char *data = NULL;
        KvError e = {};
        size_t size;
        int r;

        store_error_clear(s);
        r = store_read_state_file(s, STORE_POLICY_FILE, POLICY_FILE_MAX, &data, &size);
        if (r == -ENOENT) {
                *ret = STORE_POLICY_DEFAULT;
                return 0;
        }
        if (r < 0)
                return r;
        r = store_policy_file_parse(data, size, ret, &e);
        if (r == -EBADMSG || r == -EPROTONOSUPPORT)
                return store_error_parse(s, r, STORE_POLICY_FILE, &e);
        return store_finish(s, r);
}

int store_policy_save(Store *s, const StorePolicy *p) {
        _cleanup_free_ char *data = NULL;
        _cleanup_close_ int lock_fd = -EBADF;
        size_t size;
        int r;

        store_error_clear(s);
        if (store_policy_check(p) < 0)
                return store_error(s, -EINVAL, NULL,
                                   "store policy out of range: at most %u approval groups, each once, and a purge "
                                   "delay from 1s to 30d",
                                   STORE_APPROVAL_LEVELS_MAX);
        r = store_policy_file_format(p, &data, &size);
        if (r < 0)
                return store_finish(s, r);
        r = store_lock(s, &lock_fd);
        if (r < 0)
                return store_finish(s, r);
        r = write_file_atomic(s->dir_fd, STORE_POLICY_FILE, data, size, 0600);
        if (r < 0)
                return store_error(s, r, STORE_POLICY_FILE, "cannot write: %s", strerror(-r));
        return 0;
}
