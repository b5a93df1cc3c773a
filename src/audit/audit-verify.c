/* SPDX-License-Identifier: MIT */
/* Reading the audit log: file listing, the public key file, audit_verify(), and the filtered reader. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit-internal.h"
#include "audit-record.h"
#include "fileio.h"

#define PUB_PREFIX "ed25519="

void audit_file_name(unsigned n, char ret[AUDIT_FILE_NAME_MAX]) {
        (void) snprintf(ret, AUDIT_FILE_NAME_MAX, "audit-%06u.log", n);
}

unsigned audit_file_number(const char *name) {
        uint64_t n;

        if (strlen(name) != strlen("audit-000000.log") || strncmp(name, "audit-", 6) != 0 ||
            strcmp(name + 12, ".log") != 0)
                return 0;
        for (size_t i = 6; i < 12; i++)
                if (name[i] < '0' || name[i] > '9')
                        return 0;
        /* Six digits with leading zeros: audit_parse_u64 refuses those, so count by hand. */
        n = 0;
        for (size_t i = 6; i < 12; i++)
                n = n * 10 + (uint64_t) (name[i] - '0');
        return (unsigned) n;
}

static int cmp_unsigned(const void *a, const void *b) {
        unsigned x = *(const unsigned *) a, y = *(const unsigned *) b;
        return x < y ? -1 : x > y;
}

int audit_list_files(int dir_fd, unsigned **ret, size_t *ret_n) {
        _cleanup_free_ unsigned *list = NULL;
        size_t n = 0, allocated = 0;
        struct dirent *de;
        DIR *d;
        int fd;

        fd = fcntl(dir_fd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return negative_errno();
        d = fdopendir(fd);
        if (!d) {
                safe_close(fd);
                return negative_errno();
        }
        rewinddir(d);
        while ((errno = 0, de = readdir(d))) {
                unsigned k = audit_file_number(de->d_name);

                if (k == 0)
                        continue;
                if (n == allocated) {
                        unsigned *p;

                        allocated = MAX(allocated * 2, (size_t) 16);
                        p = reallocarray(list, allocated, sizeof(*list));
                        if (!p) {
                                closedir(d);
                                return -ENOMEM;
                        }
                        list = p;
                }
                list[n++] = k;
        }
        if (errno != 0) {
                int r = negative_errno();
                closedir(d);
                return r;
        }
        closedir(d);
        if (n > 0)
                qsort(list, n, sizeof(*list), cmp_unsigned);
        *ret = TAKE_PTR(list);
        *ret_n = n;
        return 0;
}

int audit_read_fd(int fd, size_t max, char **ret, size_t *ret_size) {
        _cleanup_free_ char *buf = NULL;
        struct stat st;
        ssize_t n;

        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        if ((uint64_t) st.st_size > max)
                return -EFBIG;
        buf = malloc((size_t) st.st_size + 1);
        if (!buf)
                return -ENOMEM;
        n = loop_read(fd, buf, (size_t) st.st_size);
        if (n < 0)
                return (int) n;
        buf[n] = 0;
        *ret = TAKE_PTR(buf);
        *ret_size = (size_t) n;
        return 0;
}

int audit_read_public_key(int dirfd, const char *path, uint8_t ret[CRYPT_SIGN_PUBLIC_KEY_BYTES]) {
        _cleanup_free_ char *text = NULL;
        size_t size;
        int r;

        r = read_file_full(dirfd, path, 4096, &text, &size);
        if (r < 0)
                return r;
        if (size != strlen(PUB_PREFIX) + 2 * CRYPT_SIGN_PUBLIC_KEY_BYTES + 1 ||
            memcmp(text, PUB_PREFIX, strlen(PUB_PREFIX)) != 0 || text[size - 1] != '\n')
                return -EBADMSG;
        return audit_parse_hex(text + strlen(PUB_PREFIX), 2 * CRYPT_SIGN_PUBLIC_KEY_BYTES, ret,
                               CRYPT_SIGN_PUBLIC_KEY_BYTES);
}

/* ---- verify ---- */

typedef struct Verifier {
        const char *dir;
        const uint8_t *pk;
        AuditReport *report;
        uint64_t expect_seq;
        uint8_t head[CRYPT_HASH_BYTES];
        uint64_t since_checkpoint, last_interval;
        char prev_file[AUDIT_FILE_NAME_MAX];
        int last_was_rotate, last_was_close;
} Verifier;

static int fail(Verifier *v, const char *file, unsigned line, uint64_t seq, const char *fmt, ...) _printf_(5, 6);
static int fail(Verifier *v, const char *file, unsigned line, uint64_t seq, const char *fmt, ...) {
        char what[384];
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(what, sizeof(what), fmt, ap);
        va_end(ap);
        if (line > 0 && seq > 0)
                (void) snprintf(v->report->error, sizeof(v->report->error), "%s/%s:%u (seq %llu): %s", v->dir, file,
                                line, (unsigned long long) seq, what);
        else if (line > 0)
                (void) snprintf(v->report->error, sizeof(v->report->error), "%s/%s:%u: %s", v->dir, file, line, what);
        else
                (void) snprintf(v->report->error, sizeof(v->report->error), "%s/%s: %s", v->dir, file, what);
        return -EBADMSG;
}

static int verify_line(Verifier *v, const char *file, unsigned line, const char *text, size_t len, int is_last_file,
                       int is_last_line) {
        AuditEntry e;
        size_t signed_len;
        char why[256];
        int r;

        r = audit_parse_line(text, len, &e, &signed_len, why, sizeof(why));
        if (r < 0)
                return fail(v, file, line, v->expect_seq, "%s", why);
        if (e.seq > v->expect_seq)
                return fail(v, file, line, e.seq, "seq %llu expected (records before this one were removed)",
                            (unsigned long long) v->expect_seq);
        if (e.seq < v->expect_seq)
                return fail(v, file, line, e.seq, "seq %llu expected (records were reordered or duplicated)",
                            (unsigned long long) v->expect_seq);
        if (memcmp(e.prev, v->head, sizeof(e.prev)) != 0) {
                if (e.seq == 1)
                        return fail(v, file, line, e.seq, "prev of the first record is not zero");
                if (line == 1)
                        return fail(v, file, line, e.seq,
                                    "prev does not match the last hash of %s (files swapped, replaced or removed)",
                                    v->prev_file);
                return fail(v, file, line, e.seq,
                            "prev does not match the hash of seq %llu (a record before this one was edited, "
                            "removed or reordered)",
                            (unsigned long long) (e.seq - 1));
        }

        if (line == 1 && !(e.is_checkpoint && e.reason == AUDIT_CHECKPOINT_START))
                return fail(v, file, line, e.seq,
                            "the file does not begin with a start checkpoint (its beginning was removed, or "
                            "files were swapped)");
        if (e.is_checkpoint) {
                if (e.reason == AUDIT_CHECKPOINT_START && line != 1)
                        return fail(v, file, line, e.seq, "a start checkpoint inside a file (files were joined)");
                if (e.reason == AUDIT_CHECKPOINT_ROTATE && !is_last_line)
                        return fail(v, file, line, e.seq, "records after a rotate checkpoint (files were joined)");
                if (audit_checkpoint_verify(text, signed_len, e.sig, v->pk) < 0)
                        return fail(v, file, line, e.seq,
                                    "checkpoint signature does not verify with the public key (forged, or signed "
                                    "by another key)");
                v->since_checkpoint = 0;
                v->last_interval = e.interval;
                v->report->last_checkpoint_seq = e.seq;
        } else {
                if (v->since_checkpoint + 1 > v->last_interval)
                        return fail(v, file, line, e.seq,
                                    "more than %llu records after the checkpoint at seq %llu, which promised the "
                                    "next one sooner (a checkpoint was removed)",
                                    (unsigned long long) v->last_interval,
                                    (unsigned long long) v->report->last_checkpoint_seq);
                v->since_checkpoint++;
        }
        if (is_last_line && !is_last_file && !(e.is_checkpoint && e.reason == AUDIT_CHECKPOINT_ROTATE))
                return fail(v, file, line, e.seq,
                            "the file does not end with a rotate checkpoint (records at its end were removed)");

        memcpy(v->head, e.hash, sizeof(v->head));
        v->expect_seq = e.seq + 1;
        v->last_was_rotate = e.is_checkpoint && e.reason == AUDIT_CHECKPOINT_ROTATE;
        v->last_was_close = e.is_checkpoint && e.reason == AUDIT_CHECKPOINT_CLOSE;
        if (v->report->records == 0)
                v->report->first_seq = e.seq;
        v->report->records++;
        v->report->last_seq = e.seq;
        memcpy(v->report->last_hash, e.hash, sizeof(e.hash));
        return 0;
}

static int verify_file(Verifier *v, int dir_fd, const char *file, int is_last_file) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *data = NULL;
        size_t size, pos = 0;
        unsigned line = 0;
        int r;

        fd = openat(dir_fd, file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0) {
                r = negative_errno();
                (void) fail(v, file, 0, 0, "cannot open: %s", strerror(-r));
                return r;
        }
        r = audit_read_fd(fd, AUDIT_FILE_READ_MAX, &data, &size);
        if (r < 0) {
                (void) fail(v, file, 0, 0, "cannot read: %s", strerror(-r));
                return r;
        }
        if (size == 0)
                return fail(v, file, 0, 0, "empty (a log file always begins with a start checkpoint)");

        while (pos < size) {
                const char *nl = memchr(data + pos, '\n', size - pos);
                size_t n;

                line++;
                if (!nl)
                        return fail(v, file, line, v->expect_seq,
                                    "partial record at the end (a crash during an append, or truncation; dkmd "
                                    "cuts it off when it next opens the log)");
                n = (size_t) (nl - (data + pos));
                r = verify_line(v, file, line, data + pos, n, is_last_file, pos + n + 1 == size);
                if (r < 0)
                        return r;
                pos += n + 1;
        }
        memcpy(v->prev_file, file, AUDIT_FILE_NAME_MAX);
        v->report->files++;
        return 0;
}

int audit_verify(const char *dir, const uint8_t *public_key, AuditReport *report) {
        _cleanup_close_ int dir_fd = -EBADF;
        _cleanup_free_ unsigned *files = NULL;
        uint8_t pk[CRYPT_SIGN_PUBLIC_KEY_BYTES];
        char name[AUDIT_FILE_NAME_MAX];
        size_t n = 0;
        Verifier v = { .dir = dir, .report = report, .expect_seq = 1 };
        int r;

        if (!dir || !report)
                return -EINVAL;
        *report = (AuditReport){};
        dir_fd = open_dir_nofollow(AT_FDCWD, dir, 0, 0);
        if (dir_fd < 0) {
                (void) snprintf(report->error, sizeof(report->error), "%s: cannot open: %s", dir, strerror(-dir_fd));
                return dir_fd;
        }
        if (public_key)
                memcpy(pk, public_key, sizeof(pk));
        else {
                r = audit_read_public_key(dir_fd, AUDIT_PUB_FILE, pk);
                if (r < 0) {
                        (void) snprintf(report->error, sizeof(report->error), "%s/%s: %s", dir, AUDIT_PUB_FILE,
                                        r == -EBADMSG ? "malformed public key file" : strerror(-r));
                        return r;
                }
        }
        v.pk = pk;

        r = audit_list_files(dir_fd, &files, &n);
        if (r < 0) {
                (void) snprintf(report->error, sizeof(report->error), "%s: cannot list: %s", dir, strerror(-r));
                return r;
        }
        if (n == 0) {
                (void) snprintf(report->error, sizeof(report->error), "%s: no audit-NNNNNN.log files", dir);
                return -ENOENT;
        }
        for (size_t i = 0; i < n; i++) {
                audit_file_name(files[i], name);
                if (i == 0 && files[0] != 1) {
                        audit_file_name(1, name);
                        return fail(&v, name, 0, 0, "missing (the log must start with it)");
                }
                if (i > 0 && files[i] != files[i - 1] + 1) {
                        audit_file_name(files[i - 1] + 1, name);
                        return fail(&v, name, 0, 0, "missing (the files jump from %06u to %06u)", files[i - 1],
                                    files[i]);
                }
                r = verify_file(&v, dir_fd, name, i == n - 1);
                if (r < 0)
                        return r;
        }
        if (v.last_was_rotate) {
                audit_file_name(files[n - 1] + 1, name);
                return fail(&v, name, 0, 0, "missing (the file before it ends with a rotate checkpoint)");
        }

        report->unsealed = v.since_checkpoint;
        report->closed = v.last_was_close;
        if (v.since_checkpoint > 0)
                (void) snprintf(report->warning, sizeof(report->warning),
                                "the last %llu record(s) (seq %llu-%llu) follow the last signed checkpoint: "
                                "their chain is intact, but without a signature they could have been rewritten",
                                (unsigned long long) v.since_checkpoint,
                                (unsigned long long) (report->last_seq - v.since_checkpoint + 1),
                                (unsigned long long) report->last_seq);
        return 0;
}

/* ---- reader ---- */

struct AuditReader {
        int dir_fd;
        unsigned *files;
        size_t n_files, next_file;
        char *data;
        size_t size, pos;
        unsigned line;
        char file[AUDIT_FILE_NAME_MAX];
        char *object, *event;
        uint64_t since, until;
        int checkpoints;
        AuditEntry entry;
        char error[512];
};

AuditReader *audit_reader_free(AuditReader *r) {
        if (!r)
                return NULL;
        safe_close(r->dir_fd);
        free(r->files);
        free(r->data);
        free(r->object);
        free(r->event);
        free(r);
        return NULL;
}

const char *audit_reader_error(const AuditReader *r) {
        return r->error[0] ? r->error : NULL;
}

int audit_reader_new(const char *dir, const AuditFilter *filter, AuditReader **ret) {
        _cleanup_(audit_reader_freep) AuditReader *r = NULL;
        int k;

        if (!dir || !ret)
                return -EINVAL;
        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->dir_fd = open_dir_nofollow(AT_FDCWD, dir, 0, 0);
        if (r->dir_fd < 0)
                return r->dir_fd;
        if (filter) {
                if ((filter->object && !(r->object = strdup(filter->object))) ||
                    (filter->event && !(r->event = strdup(filter->event))))
                        return -ENOMEM;
                r->since = filter->since;
                r->until = filter->until;
                r->checkpoints = filter->checkpoints;
        }
        k = audit_list_files(r->dir_fd, &r->files, &r->n_files);
        if (k < 0)
                return k;
        *ret = TAKE_PTR(r);
        return 0;
}

static int matches(const AuditReader *r, const AuditEntry *e) {
        if (r->since > 0 && e->time < r->since)
                return 0;
        if (r->until > 0 && e->time >= r->until)
                return 0;
        if (e->is_checkpoint)
                return r->checkpoints && !r->object && !r->event;
        if (r->event && strcmp(r->event, e->event) != 0)
                return 0;
        if (r->object && !strstr(e->object, r->object))
                return 0;
        return 1;
}

int audit_reader_next(AuditReader *r, const AuditEntry **ret) {
        char why[256];
        int k;

        for (;;) {
                const char *nl;
                size_t n;

                if (!r->data) {
                        _cleanup_close_ int fd = -EBADF;

                        if (r->next_file >= r->n_files)
                                return 0;
                        audit_file_name(r->files[r->next_file++], r->file);
                        fd = openat(r->dir_fd, r->file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
                        if (fd < 0)
                                return negative_errno();
                        k = audit_read_fd(fd, AUDIT_FILE_READ_MAX, &r->data, &r->size);
                        if (k < 0)
                                return k;
                        r->pos = 0;
                        r->line = 0;
                }
                if (r->pos >= r->size) {
                        free(r->data);
                        r->data = NULL;
                        continue;
                }
                r->line++;
                nl = memchr(r->data + r->pos, '\n', r->size - r->pos);
                if (!nl) {
                        (void) snprintf(r->error, sizeof(r->error), "%s:%u: partial record at the end", r->file,
                                        r->line);
                        return -EBADMSG;
                }
                n = (size_t) (nl - (r->data + r->pos));
                k = audit_parse_line(r->data + r->pos, n, &r->entry, NULL, why, sizeof(why));
                if (k < 0) {
                        (void) snprintf(r->error, sizeof(r->error), "%s:%u: %s", r->file, r->line, why);
                        return k;
                }
                r->pos += n + 1;
                memcpy(r->entry.file, r->file, sizeof(r->file));
                r->entry.line = r->line;
                if (matches(r, &r->entry)) {
                        *ret = &r->entry;
                        return 1;
                }
        }
}
