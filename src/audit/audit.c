/* SPDX-License-Identifier: MIT */
/* The audit log writer: key files, finding the chain's head, durable appends, checkpoints, rotation. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit-internal.h"
#include "audit-record.h"
#include "fileio.h"

#define DEFAULT_CHECKPOINT_INTERVAL 1U
#define DEFAULT_MAX_FILE_SIZE       (8U << 20)
#define CHECKPOINT_INTERVAL_MAX     1000000U

struct AuditLog {
        char *path;
        int dir_fd;
        int fd; /* the newest file, O_APPEND */
        unsigned file_no;
        char file_name[AUDIT_FILE_NAME_MAX];
        uint64_t size; /* of the newest file, as far as it is durable and consistent */
        uint64_t seq;  /* the last record's */
        uint8_t head[CRYPT_HASH_BYTES];
        uint64_t since_checkpoint; /* event records after the last checkpoint */
        uint64_t last_interval;    /* the interval the last checkpoint promised */
        int need_next_file;        /* the newest file ends with a rotate checkpoint */
        int damaged;               /* a failed write could not be undone: re-read the end first */
        AuditOptions opts;
        Secret *sk;
        uint8_t pk[CRYPT_SIGN_PUBLIC_KEY_BYTES];
};

static int error_set(AuditError *e, int r, const char *fmt, ...) _printf_(3, 4);
static int error_set(AuditError *e, int r, const char *fmt, ...) {
        va_list ap;

        if (e) {
                va_start(ap, fmt);
                (void) vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
                va_end(ap);
        }
        return r;
}

static uint64_t now_usec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * 1000000U + (uint64_t) ts.tv_nsec / 1000U;
}

AuditLog *audit_free(AuditLog *l) {
        if (!l)
                return NULL;
        safe_close(l->fd);
        safe_close(l->dir_fd); /* drops the flock */
        secret_free(l->sk);
        free(l->path);
        free(l);
        return NULL;
}

uint64_t audit_head(const AuditLog *l, uint8_t ret_hash[CRYPT_HASH_BYTES]) {
        if (ret_hash)
                memcpy(ret_hash, l->head, CRYPT_HASH_BYTES);
        return l->seq;
}

const uint8_t *audit_public_key(const AuditLog *l) {
        return l->pk;
}

/* One write() of whole records, then fsync. On failure the file is cut back to its last consistent
 * length, so a partial record never stays behind; if that fails too, the log is marked damaged and
 * the next append re-reads the file's end first. */
static int write_records(AuditLog *l, const char *buf, size_t len) {
        int r;

        r = loop_write(l->fd, buf, len);
        if (r >= 0 && fsync(l->fd) < 0) {
                r = negative_errno();
                /* After a failed fsync the page cache no longer says what is on disk. */
                l->damaged = 1;
        }
        if (r < 0) {
                if (ftruncate(l->fd, (off_t) l->size) < 0 || fsync(l->fd) < 0)
                        l->damaged = 1;
                return r;
        }
        l->size += len;
        return 0;
}

static int write_checkpoint(AuditLog *l, AuditCheckpointReason reason) {
        char buf[AUDIT_LINE_MAX + 1];
        uint8_t h[CRYPT_HASH_BYTES];
        size_t len;
        int r;

        r = audit_format_checkpoint(l->seq + 1, now_usec(), reason, l->opts.checkpoint_interval, l->head, l->sk, buf,
                                    &len, h);
        if (r < 0)
                return r;
        r = write_records(l, buf, len);
        if (r < 0)
                return r;
        l->seq++;
        memcpy(l->head, h, sizeof(h));
        l->since_checkpoint = 0;
        l->last_interval = l->opts.checkpoint_interval;
        return 0;
}

/* Starts file_no + 1 with a start checkpoint carrying the head. Created whole under a temporary name
 * and renamed, so a file never exists without its first record. */
static int create_next_file(AuditLog *l) {
        char buf[AUDIT_LINE_MAX + 1], name[AUDIT_FILE_NAME_MAX];
        uint8_t h[CRYPT_HASH_BYTES];
        _cleanup_close_ int fd = -EBADF;
        size_t len;
        int r;

        if (l->file_no >= AUDIT_FILE_NUMBER_MAX)
                return -E2BIG;
        audit_file_name(l->file_no + 1, name);
        r = audit_format_checkpoint(l->seq + 1, now_usec(), AUDIT_CHECKPOINT_START, l->opts.checkpoint_interval,
                                    l->head, l->sk, buf, &len, h);
        if (r < 0)
                return r;
        r = write_file_atomic(l->dir_fd, name, buf, len, 0600);
        if (r < 0)
                return r;
        fd = openat(l->dir_fd, name, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return negative_errno();

        safe_close(l->fd);
        l->fd = TAKE_FD(fd);
        l->file_no++;
        memcpy(l->file_name, name, sizeof(name));
        l->size = len;
        l->seq++;
        memcpy(l->head, h, sizeof(h));
        l->since_checkpoint = 0;
        l->last_interval = l->opts.checkpoint_interval;
        l->need_next_file = 0;
        return 0;
}

/* The record and, when one is due, its checkpoint go out in one write(): both or (after the undo) neither. */
static int append_event(AuditLog *l, const AuditRecord *rec) {
        char buf[2 * AUDIT_LINE_MAX + 1];
        uint8_t h1[CRYPT_HASH_BYTES], h2[CRYPT_HASH_BYTES];
        size_t len, len2 = 0;
        uint64_t t = now_usec();
        int r, checkpoint;

        r = audit_format_event(l->seq + 1, t, rec, l->head, buf, &len, h1);
        if (r < 0)
                return r;
        checkpoint = l->since_checkpoint + 1 >= l->opts.checkpoint_interval;
        if (checkpoint) {
                r = audit_format_checkpoint(l->seq + 2, t, AUDIT_CHECKPOINT_PERIODIC, l->opts.checkpoint_interval, h1,
                                            l->sk, buf + len, &len2, h2);
                if (r < 0)
                        return r;
        }
        r = write_records(l, buf, len + len2);
        if (r < 0)
                return r;

        if (checkpoint) {
                l->seq += 2;
                memcpy(l->head, h2, sizeof(h2));
                l->since_checkpoint = 0;
                l->last_interval = l->opts.checkpoint_interval;
        } else {
                l->seq++;
                memcpy(l->head, h1, sizeof(h1));
                l->since_checkpoint++;
        }
        return 0;
}

static int append_self_record(AuditLog *l, const char *event, const char *object, const char *detail) {
        char comm[AUDIT_COMM_MAX + 1];

        (void) snprintf(comm, sizeof(comm), "%s", program_invocation_short_name);
        return append_event(l, &(AuditRecord){
                                       .event = event,
                                       .outcome = AUDIT_OUTCOME_OK,
                                       .uid = geteuid(),
                                       .pid = getpid(),
                                       .comm = comm,
                                       .object = object,
                                       .detail = detail,
                               });
}

/* Reads the newest file: cuts off a partial record at its end (*ret_cut bytes), finds the head, and
 * checks that the file is well-formed and chained within itself. Full verification is audit_verify(). */
static int scan_newest(AuditLog *l, uint64_t *ret_cut, AuditError *error) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *data = NULL;
        size_t size, end, pos = 0;
        unsigned line = 0;
        AuditEntry e;
        char why[256];
        int r, have = 0, last_rotate = 0;

        fd = openat(l->dir_fd, l->file_name, O_RDWR | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0)
                return error_set(error, negative_errno(), "%s/%s: cannot open: %m", l->path, l->file_name);
        r = audit_read_fd(fd, AUDIT_FILE_READ_MAX, &data, &size);
        if (r < 0)
                return error_set(error, r, "%s/%s: cannot read: %s", l->path, l->file_name, strerror(-r));

        end = size;
        while (end > 0 && data[end - 1] != '\n')
                end--;
        if (end < size) {
                /* Never acknowledged: a crash mid-write, or a failed write whose undo failed too. */
                if (ftruncate(fd, (off_t) end) < 0 || fsync(fd) < 0)
                        return error_set(error, negative_errno(), "%s/%s: cannot cut off a partial record: %m", l->path,
                                         l->file_name);
        }

        while (pos < end) {
                const char *nl = memchr(data + pos, '\n', end - pos);
                size_t n = (size_t) (nl - (data + pos));

                line++;
                r = audit_parse_line(data + pos, n, &e, NULL, why, sizeof(why));
                if (r < 0)
                        return error_set(error, -EBADMSG, "%s/%s:%u: %s (run audit verify)", l->path, l->file_name,
                                         line, why);
                if (have && (e.seq != l->seq + 1 || memcmp(e.prev, l->head, sizeof(e.prev)) != 0))
                        return error_set(error, -EBADMSG,
                                         "%s/%s:%u (seq %llu): does not continue the chain (run audit verify)", l->path,
                                         l->file_name, line, (unsigned long long) e.seq);
                if (e.seq == UINT64_MAX - 2)
                        return error_set(error, -EOVERFLOW, "%s/%s:%u: seq exhausted", l->path, l->file_name, line);
                l->seq = e.seq;
                memcpy(l->head, e.hash, sizeof(e.hash));
                if (e.is_checkpoint) {
                        l->since_checkpoint = 0;
                        l->last_interval = e.interval;
                } else
                        l->since_checkpoint++;
                last_rotate = e.is_checkpoint && e.reason == AUDIT_CHECKPOINT_ROTATE;
                have = 1;
                pos += n + 1;
        }
        if (!have)
                return error_set(error, -EBADMSG, "%s/%s: empty (its start checkpoint is missing; run audit verify)",
                                 l->path, l->file_name);

        safe_close(l->fd);
        l->fd = TAKE_FD(fd);
        l->size = end;
        l->need_next_file = last_rotate;
        l->damaged = 0;
        *ret_cut = size - end;
        return 0;
}

static int record_cut(AuditLog *l, uint64_t cut) {
        char detail[128];

        if (cut == 0)
                return 0;
        /* A write torn between an event record and its checkpoint leaves the record unsealed: seal
         * it first, or the repair record would be one event too many after the checkpoint before. */
        if (l->since_checkpoint > 0) {
                int r = write_checkpoint(l, AUDIT_CHECKPOINT_PERIODIC);
                if (r < 0)
                        return r;
        }
        (void) snprintf(detail, sizeof(detail), "removed a partial record of %llu bytes at the end of the file",
                        (unsigned long long) cut);
        return append_self_record(l, "audit-repair", l->file_name, detail);
}

/* Before writing: repair after a failed undo, and finish an interrupted rotation. */
static int make_ready(AuditLog *l) {
        int r;

        if (l->damaged) {
                uint64_t cut;

                r = scan_newest(l, &cut, NULL);
                if (r < 0)
                        return r;
                r = record_cut(l, cut);
                if (r < 0)
                        return r;
        }
        if (l->need_next_file)
                return create_next_file(l);
        return 0;
}

int audit_append(AuditLog *l, const AuditRecord *rec) {
        int r;

        if (!l || audit_record_check(rec) < 0)
                return -EINVAL;
        r = make_ready(l);
        if (r < 0)
                return r;
        if (l->size >= l->opts.max_file_size) {
                r = audit_rotate(l);
                if (r < 0)
                        return r;
        }
        return append_event(l, rec);
}

int audit_rotate(AuditLog *l) {
        int r;

        if (!l)
                return -EINVAL;
        r = make_ready(l); /* an interrupted rotation is finished here, which is all we were asked */
        if (r < 0)
                return r;
        r = write_checkpoint(l, AUDIT_CHECKPOINT_ROTATE);
        if (r < 0)
                return r;
        l->need_next_file = 1;
        return create_next_file(l);
}

int audit_close(AuditLog *l) {
        int r;

        if (!l)
                return 0;
        r = make_ready(l);
        if (r >= 0)
                r = write_checkpoint(l, AUDIT_CHECKPOINT_CLOSE);
        audit_free(l);
        return r;
}

/* ---- keys ---- */

static int write_public_key(AuditLog *l) {
        char text[sizeof("ed25519=\n") + 2 * CRYPT_SIGN_PUBLIC_KEY_BYTES];

        memcpy(text, "ed25519=", 8);
        audit_hex(l->pk, sizeof(l->pk), text + 8);
        text[8 + 2 * sizeof(l->pk)] = '\n';
        /* Public by design: verifiers need it. */
        return write_file_atomic(l->dir_fd, AUDIT_PUB_FILE, text, 8 + 2 * sizeof(l->pk) + 1, 0644);
}

/* Read the seed straight into secret memory, as the store's file protector does. */
static int read_key(AuditLog *l, int fd, AuditError *error) {
        _cleanup_secret_ Secret *seed = NULL;
        struct stat st;
        ssize_t n;
        int r;

        if (fstat(fd, &st) < 0)
                return error_set(error, negative_errno(), "%s/%s: cannot stat: %m", l->path, AUDIT_KEY_FILE);
        if (!S_ISREG(st.st_mode) || st.st_size != CRYPT_SIGN_SEED_BYTES)
                return error_set(error, -EBADMSG, "%s/%s: not a %u-byte regular file", l->path, AUDIT_KEY_FILE,
                                 CRYPT_SIGN_SEED_BYTES);
        if (st.st_uid != geteuid() || (st.st_mode & 0077))
                return error_set(error, -EPERM, "%s/%s: owner or mode %04o lets others read it; refusing to use it",
                                 l->path, AUDIT_KEY_FILE, (unsigned) (st.st_mode & 07777));
        r = secret_new(CRYPT_SIGN_SEED_BYTES, &seed);
        if (r < 0)
                return r;
        n = loop_read(fd, seed->data, seed->size);
        if (n < 0 || (size_t) n != seed->size)
                return error_set(error, n < 0 ? (int) n : -EIO, "%s/%s: cannot read", l->path, AUDIT_KEY_FILE);
        return crypt_sign_seed_keypair(seed, &l->sk, l->pk);
}

static int load_or_create_key(AuditLog *l, int have_files, int *ret_pub_rewritten, AuditError *error) {
        _cleanup_close_ int fd = -EBADF;
        uint8_t pub[CRYPT_SIGN_PUBLIC_KEY_BYTES];
        int r;

        fd = openat(l->dir_fd, AUDIT_KEY_FILE, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0 && errno != ENOENT)
                return error_set(error, negative_errno(), "%s/%s: cannot open: %m", l->path, AUDIT_KEY_FILE);
        if (fd < 0) {
                _cleanup_secret_ Secret *seed = NULL;

                if (have_files)
                        return error_set(error, -ENOKEY,
                                         "%s/%s: missing, but the log exists; a new key could not continue its "
                                         "signed chain (restore the key, or move the log files aside)",
                                         l->path, AUDIT_KEY_FILE);
                r = crypt_sign_keypair(&seed, l->pk);
                if (r < 0)
                        return r;
                r = write_file_exclusive(l->dir_fd, AUDIT_KEY_FILE, seed->data, seed->size, 0600);
                if (r < 0)
                        return error_set(error, r, "%s/%s: cannot write: %s", l->path, AUDIT_KEY_FILE, strerror(-r));
                r = crypt_sign_seed_keypair(seed, &l->sk, l->pk);
                if (r < 0)
                        return r;
        } else {
                r = read_key(l, fd, error);
                if (r < 0)
                        return r;
        }

        r = audit_read_public_key(l->dir_fd, AUDIT_PUB_FILE, pub);
        if (r >= 0 && memcmp(pub, l->pk, sizeof(pub)) == 0)
                return 0;
        /* Missing or not ours: publish the right one, and say so in the log when one was there. */
        *ret_pub_rewritten = r != -ENOENT;
        r = write_public_key(l);
        if (r < 0)
                return error_set(error, r, "%s/%s: cannot write: %s", l->path, AUDIT_PUB_FILE, strerror(-r));
        return 0;
}

int audit_open(const char *dir, const AuditOptions *opts, AuditLog **ret, AuditError *error) {
        _cleanup_audit_ AuditLog *l = NULL;
        _cleanup_free_ unsigned *files = NULL;
        size_t n_files = 0;
        uint64_t cut = 0;
        int r, pub_rewritten = 0;
        struct stat st;

        if (!dir || !ret)
                return -EINVAL;
        l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        l->fd = l->dir_fd = -EBADF;
        l->opts.checkpoint_interval =
                opts && opts->checkpoint_interval ? opts->checkpoint_interval : DEFAULT_CHECKPOINT_INTERVAL;
        l->opts.max_file_size = opts && opts->max_file_size ? opts->max_file_size : DEFAULT_MAX_FILE_SIZE;
        if (l->opts.checkpoint_interval > CHECKPOINT_INTERVAL_MAX)
                return error_set(error, -EINVAL, "checkpoint interval above %u", CHECKPOINT_INTERVAL_MAX);
        l->path = strdup(dir);
        if (!l->path)
                return -ENOMEM;

        l->dir_fd = open_dir_nofollow(AT_FDCWD, dir, 0700, 1);
        if (l->dir_fd < 0)
                return error_set(error, l->dir_fd, "%s: cannot open the audit directory: %s", dir,
                                 strerror(-l->dir_fd));
        if (fstat(l->dir_fd, &st) < 0)
                return error_set(error, negative_errno(), "%s: cannot stat: %m", dir);
        if (st.st_uid != geteuid() || (st.st_mode & 0022))
                return error_set(error, -EPERM,
                                 "%s: owner uid %u or mode %04o lets others change the log; it must "
                                 "be owned by uid %u and 0700",
                                 dir, (unsigned) st.st_uid, (unsigned) (st.st_mode & 07777), (unsigned) geteuid());
        if (flock(l->dir_fd, LOCK_EX | LOCK_NB) < 0)
                return error_set(error, errno == EWOULDBLOCK ? -EBUSY : negative_errno(),
                                 "%s: another process writes this audit log", dir);

        r = audit_list_files(l->dir_fd, &files, &n_files);
        if (r < 0)
                return error_set(error, r, "%s: cannot list: %s", dir, strerror(-r));
        r = load_or_create_key(l, n_files > 0, &pub_rewritten, error);
        if (r < 0)
                return r;

        if (n_files == 0) {
                r = create_next_file(l); /* audit-000001.log, seq 1, prev zero */
                if (r < 0)
                        return error_set(error, r, "%s: cannot create the first log file: %s", dir, strerror(-r));
        } else {
                l->file_no = files[n_files - 1];
                audit_file_name(l->file_no, l->file_name);
                r = scan_newest(l, &cut, error);
                if (r < 0)
                        return r;
        }

        /* Repairs are recorded, so that nothing changes in the directory without a trace. */
        r = record_cut(l, cut);
        if (r >= 0 && pub_rewritten)
                r = append_self_record(l, "audit-repair", AUDIT_PUB_FILE, "did not match audit.key; rewritten");
        if (r >= 0)
                r = make_ready(l);
        /* Seal what an earlier run left unsealed, and keep the last checkpoint's promise when the interval changed. */
        if (r >= 0 && (l->since_checkpoint > 0 || l->last_interval != l->opts.checkpoint_interval))
                r = write_checkpoint(l, AUDIT_CHECKPOINT_PERIODIC);
        if (r < 0)
                return error_set(error, r, "%s/%s: cannot write: %s", dir, l->file_name, strerror(-r));

        *ret = TAKE_PTR(l);
        return 0;
}
