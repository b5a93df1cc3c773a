/* SPDX-License-Identifier: MIT */
/* Purge: crypto-shred the whole store, the "purged" marker first, so that nothing unlocks it once
 * begun and an interrupted purge is finished by running it again. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fileio.h"
#include "store-internal.h"

#define PURGED_FORMAT 1
#define PURGED_FILE_MAX 4096U

/* "format=1\npurged-usec=N\nchecksum=...\n" */
static int purged_parse(const char *data, size_t size, uint64_t *ret_usec, KvError *e) {
        static const char *const keys[] = { "format", "purged-usec" };
        KvReader rd = {};
        uint64_t u, usec = 0;
        size_t i = 0;
        int r;

        r = kvreader_init_verified(&rd, data, size, e);
        if (r < 0)
                return r;
        while ((r = kvreader_next(&rd, e)) > 0) {
                if (i >= ELEMENTSOF(keys) || strcmp(rd.key, keys[i]) != 0) {
                        r = kverror_set(e, rd.line, "expected '%s'", i < ELEMENTSOF(keys) ? keys[i] : "checksum");
                        break;
                }
                if (i == 0 && (kv_parse_u64(rd.value, UINT32_MAX, &u) < 0 || u != PURGED_FORMAT))
                        r = kverror_set(e, rd.line, "unknown purge marker format");
                else if (i == 1 && (kv_parse_u64(rd.value, UINT64_MAX, &usec) < 0 || usec == 0))
                        r = kverror_set(e, rd.line, "malformed purged-usec");
                if (r < 0)
                        break;
                i++;
        }
        kvreader_done(&rd);
        if (r < 0)
                return r;
        if (i < ELEMENTSOF(keys))
                return kverror_set(e, 0, "incomplete purge marker");
        *ret_usec = usec;
        return 0;
}

static int purged_read(Store *s, uint64_t *ret_usec) {
        _cleanup_free_ char *data = NULL;
        KvError e = {};
        size_t size;
        int r;

        r = store_read_state_file(s, STORE_PURGED_FILE, PURGED_FILE_MAX, &data, &size);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        r = purged_parse(data, size, ret_usec, &e);
        if (r < 0)
                return store_error_parse(s, r, STORE_PURGED_FILE, &e);
        return 1;
}

int store_purged(Store *s, uint64_t *ret_usec) {
        uint64_t usec = 0;
        int r;

        store_error_clear(s);
        r = purged_read(s, &usec);
        if (r > 0 && ret_usec)
                *ret_usec = usec;
        return store_finish(s, r);
}

static void format_utc(uint64_t usec, char *buf, size_t size) {
        time_t t = (time_t) (usec / 1000000U);
        struct tm tm;

        if (!gmtime_r(&t, &tm) || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                snprintf(buf, size, "%llu usec", (unsigned long long) usec);
}

int store_refuse_if_purged(Store *s) {
        uint64_t usec = 0;
        char when[64];
        int r;

        r = purged_read(s, &usec);
        if (r == 0)
                return 0;
        store_forget_root_key(s);
        /* A marker that cannot be read still says a purge began: fail closed. */
        if (r < 0)
                return store_error(s, -ENOKEY, STORE_PURGED_FILE,
                                   "the store was purged (its marker is unreadable: %s); nothing can unlock it",
                                   strerror(-r));
        format_utc(usec, when, sizeof(when));
        return store_error(s, -ENOKEY, NULL, "the store was purged at %s; its keys are destroyed", when);
}

/* Kept from the first run: the time a purge began is when the keys stopped being usable. */
static int purge_mark(Store *s) {
        _cleanup_free_ char *data = NULL;
        uint64_t usec;
        KvBuf b = {};
        size_t size;
        int r;

        r = purged_read(s, &usec);
        if (r > 0)
                return 0;
        store_error_clear(s); /* a damaged marker is replaced */
        kvbuf_printf(&b, "format=%d\npurged-usec=%llu\n", PURGED_FORMAT, (unsigned long long) store_now_usec());
        r = kvbuf_finish(&b, &data, &size);
        kvbuf_done(&b);
        if (r < 0)
                return r;
        r = write_file_atomic(s->dir_fd, STORE_PURGED_FILE, data, size, 0600);
        if (r < 0)
                return store_error(s, r, STORE_PURGED_FILE, "cannot write: %s", strerror(-r));
        return 0;
}

/* Every file under protectors/, whatever its type's side files are called: each one is a way to
 * the root key, or part of one. */
static int purge_protectors(Store *s) {
        _cleanup_close_ int fd = -EBADF;
        struct dirent *de;
        DIR *d;
        int r = 0;

        fd = openat(s->protectors_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return store_error(s, negative_errno(), STORE_PROTECTORS_DIR, "cannot open: %s", strerror(errno));
        d = fdopendir(fd);
        if (!d)
                return store_error(s, negative_errno(), STORE_PROTECTORS_DIR, "cannot open: %s", strerror(errno));
        TAKE_FD(fd);
        while ((de = readdir(d))) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                if (unlinkat(dirfd(d), de->d_name, 0) < 0 && errno != ENOENT && r == 0)
                        r = store_error(s, negative_errno(), STORE_PROTECTORS_DIR, "cannot remove %s: %s",
                                        de->d_name, strerror(errno));
        }
        closedir(d);
        if (r < 0)
                return r;
        r = fsync_dir(s->protectors_fd);
        if (r < 0)
                return store_error(s, r, STORE_PROTECTORS_DIR, "cannot sync: %s", strerror(-r));
        return 0;
}

static int purge_groups(Store *s) {
        _cleanup_strv_free_ char **names = NULL;
        char first[STORE_ERROR_MAX] = "";
        int r, ret = 0;

        r = store_list_dir(s->groups_fd, STORE_GROUP_SUFFIX, &names);
        if (r < 0)
                return store_error(s, r, STORE_GROUPS_DIR, "cannot list: %s", strerror(-r));
        /* One group that fails does not spare the others; running the purge again retries it. */
        for (char **n = names; *n; n++) {
                r = store_group_destroy_keys_locked(s, *n);
                if (r < 0 && ret == 0) {
                        ret = r;
                        memcpy(first, s->error, sizeof(first));
                }
        }
        if (ret < 0)
                memcpy(s->error, first, sizeof(s->error));
        return ret;
}

static int purge_locked(Store *s) {
        int r;

        /* First and durable: from here on nothing unlocks the store, even if we die midway. */
        r = purge_mark(s);
        if (r < 0)
                return r;
        r = purge_protectors(s);
        if (r < 0)
                return r;
        return purge_groups(s);
}

int store_purge(Store *s) {
        _cleanup_close_ int lock_fd = -EBADF;
        int r;

        store_error_clear(s);
        r = store_lock(s, &lock_fd);
        if (r >= 0)
                r = purge_locked(s);
        /* Asked to purge, the root key goes in any case. */
        store_forget_root_key(s);
        return store_finish(s, r);
}
