/* SPDX-License-Identifier: MIT */
/* Tests for the audit log: real files in a temporary directory; tampering of every kind; failing writes. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit-record.h"
#include "audit.h"
#include "test-helpers.h"

static char base[] = "/tmp/dkm-test-audit-XXXXXX";
static char dir[sizeof(base) + 16];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        (void) st, (void) flag, (void) ftw;
        return remove(path) < 0 ? -1 : 0;
}

static void setup(void) {
        strcpy(base, "/tmp/dkm-test-audit-XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(base));
        (void) snprintf(dir, sizeof(dir), "%s/audit", base);
}

static void teardown(void) {
        (void) umount2(base, MNT_DETACH); /* only mounted by the full-filesystem test */
        (void) nftw(base, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Rotating buffers, so that rename(path_of(a), path_of(b)) works. */
static char *path_of(const char *name) {
        static char p[4][256];
        static unsigned i;
        char *b = p[i++ % 4];

        (void) snprintf(b, sizeof(p[0]), "%s/%s", dir, name);
        return b;
}

static char *read_all(const char *path, size_t *ret_size) {
        FILE *f = fopen(path, "re");
        char *buf;
        long n;

        ck_assert_msg(f != NULL, "cannot open %s", path);
        ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
        n = ftell(f);
        rewind(f);
        buf = malloc((size_t) n + 1);
        ck_assert_ptr_nonnull(buf);
        ck_assert_uint_eq(fread(buf, 1, (size_t) n, f), (size_t) n);
        buf[n] = 0;
        fclose(f);
        *ret_size = (size_t) n;
        return buf;
}

static void write_all(const char *path, const char *data, size_t size) {
        FILE *f = fopen(path, "we");

        ck_assert_ptr_nonnull(f);
        ck_assert_uint_eq(fwrite(data, 1, size, f), size);
        ck_assert_int_eq(fclose(f), 0);
}

static unsigned count_lines(const char *data, size_t size) {
        unsigned n = 0;
        for (size_t i = 0; i < size; i++)
                n += data[i] == '\n';
        return n;
}

/* Offset and length (with '\n') of line k (1-based). */
static void line_span(const char *data, size_t size, unsigned k, size_t *ret_off, size_t *ret_len) {
        size_t off = 0;

        for (unsigned i = 1; i < k; i++) {
                const char *nl = memchr(data + off, '\n', size - off);
                ck_assert_ptr_nonnull(nl);
                off = (size_t) (nl - data) + 1;
        }
        *ret_off = off;
        *ret_len = (size_t) ((const char *) memchr(data + off, '\n', size - off) - (data + off)) + 1;
}

static void append_n(AuditLog *l, unsigned n, const char *tag) {
        char obj[64], detail[128];

        for (unsigned i = 0; i < n; i++) {
                (void) snprintf(obj, sizeof(obj), "group/%s-%u", tag, i);
                (void) snprintf(detail, sizeof(detail), "record %u of %s: a justification, with spaces", i, tag);
                ck_assert_int_eq(audit_append(l,
                                              &(AuditRecord){
                                                      .event = i % 2 ? "approve" : "request",
                                                      .outcome = AUDIT_OUTCOME_OK,
                                                      .uid = 1000 + i,
                                                      .pid = 4000 + i,
                                                      .comm = "dkmctl",
                                                      .object = obj,
                                                      .detail = detail,
                                              }),
                                 0);
        }
}

/* Three files: 4 events + rotate, 4 events + rotate, 4 events + close. */
static void make_log(void) {
        AuditLog *l;

        ck_assert_int_eq(audit_open(dir, NULL, &l, NULL), 0);
        append_n(l, 4, "a");
        ck_assert_int_eq(audit_rotate(l), 0);
        append_n(l, 4, "b");
        ck_assert_int_eq(audit_rotate(l), 0);
        append_n(l, 4, "c");
        ck_assert_int_eq(audit_close(l), 0);
}

static int verify(AuditReport *rep) {
        return audit_verify(dir, NULL, rep);
}

static void assert_verifies(void) {
        AuditReport rep;
        int r = verify(&rep);
        ck_assert_msg(r == 0, "verify: %d %s", r, rep.error);
}

/* verify fails and names exactly FILE:LINE. */
static void assert_names(const char *file, unsigned line) {
        AuditReport rep;
        char want[128];

        ck_assert_int_eq(verify(&rep), -EBADMSG);
        if (line > 0)
                (void) snprintf(want, sizeof(want), "/%s:%u ", file, line);
        else
                (void) snprintf(want, sizeof(want), "/%s: ", file);
        ck_assert_msg(strstr(rep.error, want), "expected '%s' in '%s'", want, rep.error);
}

START_TEST(test_happy_path) {
        AuditLog *l;
        AuditReport rep;
        AuditReader *rd;
        const AuditEntry *e;
        const char *hostile = "evil\n v=1 seq=1 \\x41 \x7f caf\xc3\xa9";
        uint8_t head[CRYPT_HASH_BYTES];
        uint64_t seq;
        unsigned n = 0;
        struct stat st;

        ck_assert_int_eq(audit_open(dir, NULL, &l, NULL), 0);
        ck_assert_int_eq(stat(dir, &st), 0);
        ck_assert_uint_eq(st.st_mode & 07777, 0700);
        ck_assert_int_eq(stat(path_of("audit.key"), &st), 0);
        ck_assert_uint_eq(st.st_mode & 07777, 0600);
        ck_assert_uint_eq(st.st_size, CRYPT_SIGN_SEED_BYTES);
        ck_assert_int_eq(stat(path_of("audit.pub"), &st), 0);
        ck_assert_uint_eq(st.st_mode & 07777, 0644);
        append_n(l, 5, "x");
        ck_assert_int_eq(audit_append(l, &(AuditRecord){ .event = "refused-call",
                                                         .outcome = AUDIT_OUTCOME_REFUSED,
                                                         .uid = 7,
                                                         .pid = 8,
                                                         .comm = hostile,
                                                         .object = NULL,
                                                         .detail = hostile }),
                         0);
        seq = audit_head(l, head);
        /* start + 6 events each with a checkpoint (the default interval is 1) */
        ck_assert_uint_eq(seq, 13);
        ck_assert_int_eq(audit_close(l), 0);

        ck_assert_int_eq(verify(&rep), 0);
        ck_assert_uint_eq(rep.files, 1);
        ck_assert_uint_eq(rep.records, 14);
        ck_assert_uint_eq(rep.first_seq, 1);
        ck_assert_uint_eq(rep.last_seq, 14);
        ck_assert_uint_eq(rep.last_checkpoint_seq, 14);
        ck_assert_uint_eq(rep.unsealed, 0);
        ck_assert_int_eq(rep.closed, 1);
        ck_assert_str_eq(rep.warning, "");

        /* One line per record, all printable ASCII, whatever the caller passed. */
        {
                size_t size;
                _cleanup_free_ char *data = read_all(path_of("audit-000001.log"), &size);

                ck_assert_uint_eq(count_lines(data, size), 14);
                for (size_t i = 0; i < size; i++)
                        ck_assert(data[i] == '\n' || (data[i] >= 0x21 && data[i] < 0x7f) || data[i] == ' ');
        }

        /* Everything comes back unescaped, in order. */
        ck_assert_int_eq(audit_reader_new(dir, NULL, &rd), 0);
        while (audit_reader_next(rd, &e) > 0) {
                ck_assert(!e->is_checkpoint);
                ck_assert_uint_eq(e->line, 2 * n + 2);
                ck_assert_str_eq(e->file, "audit-000001.log");
                if (n < 5) {
                        ck_assert_str_eq(e->event, n % 2 ? "approve" : "request");
                        ck_assert_uint_eq(e->uid, 1000 + n);
                        ck_assert_str_eq(e->comm, "dkmctl");
                } else {
                        ck_assert_str_eq(e->event, "refused-call");
                        ck_assert_int_eq(e->outcome, AUDIT_OUTCOME_REFUSED);
                        ck_assert_str_eq(e->comm, hostile);
                        ck_assert_str_eq(e->detail, hostile);
                        ck_assert_str_eq(e->object, "");
                }
                n++;
        }
        ck_assert_uint_eq(n, 6);
        audit_reader_free(rd);
}
END_TEST

static unsigned count_matches(const AuditFilter *f) {
        AuditReader *rd;
        const AuditEntry *e;
        unsigned n = 0;
        int r;

        ck_assert_int_eq(audit_reader_new(dir, f, &rd), 0);
        while ((r = audit_reader_next(rd, &e)) > 0)
                n++;
        ck_assert_int_eq(r, 0);
        audit_reader_free(rd);
        return n;
}

START_TEST(test_reader_filters) {
        AuditReader *rd;
        const AuditEntry *e;
        uint64_t t_mid = 0;
        unsigned n = 0;

        make_log();
        ck_assert_uint_eq(count_matches(NULL), 12);
        ck_assert_uint_eq(count_matches(&(AuditFilter){ .event = "approve" }), 6);
        ck_assert_uint_eq(count_matches(&(AuditFilter){ .event = "appro" }), 0); /* exact */
        ck_assert_uint_eq(count_matches(&(AuditFilter){ .object = "group/b-" }), 4);
        ck_assert_uint_eq(count_matches(&(AuditFilter){ .object = "b-1", .event = "approve" }), 1);
        ck_assert_uint_eq(count_matches(&(AuditFilter){ .object = "b-1", .event = "request" }), 0);
        /* 12 events; checkpoints: 3 start, 12 periodic, 2 rotate, 1 close */
        ck_assert_uint_eq(count_matches(&(AuditFilter){ .checkpoints = 1 }), 12 + 18);

        /* time range: records of file 2 onward */
        ck_assert_int_eq(audit_reader_new(dir, NULL, &rd), 0);
        while (audit_reader_next(rd, &e) > 0)
                if (++n == 5)
                        t_mid = e->time;
        audit_reader_free(rd);
        ck_assert_uint_ge(count_matches(&(AuditFilter){ .since = t_mid }), 8);
        ck_assert_uint_le(count_matches(&(AuditFilter){ .until = t_mid }), 4);
        ck_assert_uint_eq(
                count_matches(&(AuditFilter){ .since = t_mid }) + count_matches(&(AuditFilter){ .until = t_mid }), 12);
        ck_assert_uint_eq(count_matches(&(AuditFilter){ .since = 1, .until = 2 }), 0);
}
END_TEST

START_TEST(test_edit_any_byte) {
        make_log();
        assert_verifies();
        for (unsigned f = 1; f <= 3; f++) {
                char name[32];
                size_t size;
                char *data;
                unsigned lines;

                (void) snprintf(name, sizeof(name), "audit-%06u.log", f);
                data = read_all(path_of(name), &size);
                lines = count_lines(data, size);
                for (unsigned k = 1; k <= lines; k++) {
                        size_t off, len;
                        size_t pos[] = { 0, 2, 5, 0, 0, 0 };

                        line_span(data, size, k, &off, &len);
                        pos[3] = len / 2;
                        pos[4] = len - 40; /* inside the hash */
                        pos[5] = len - 2;  /* the hash's last digit */
                        for (size_t i = 0; i < ELEMENTSOF(pos); i++) {
                                char saved = data[off + pos[i]];

                                data[off + pos[i]] = saved == '7' ? '8' : '7';
                                write_all(path_of(name), data, size);
                                assert_names(name, k);
                                data[off + pos[i]] = saved;
                        }
                }
                write_all(path_of(name), data, size);
                free(data);
        }
        assert_verifies();
}
END_TEST

START_TEST(test_delete_record) {
        size_t size, off, len;
        _cleanup_free_ char *data = NULL;
        unsigned lines;

        make_log();
        data = read_all(path_of("audit-000002.log"), &size);
        lines = count_lines(data, size);
        ck_assert_uint_eq(lines, 10); /* start, 4 x (event, checkpoint), rotate */
        for (unsigned k = 1; k <= lines; k++) {
                _cleanup_free_ char *cut = malloc(size);

                line_span(data, size, k, &off, &len);
                memcpy(cut, data, off);
                memcpy(cut + off, data + off + len, size - off - len);
                write_all(path_of("audit-000002.log"), cut, size - len);
                /* The record after the gap is named; a removed last record, by the new last one. */
                assert_names("audit-000002.log", k < lines ? k : k - 1);
        }
        write_all(path_of("audit-000002.log"), data, size);
        assert_verifies();
}
END_TEST

START_TEST(test_reorder_records) {
        size_t size, off1, len1, off2, len2;
        _cleanup_free_ char *data = NULL, *swapped = NULL;

        make_log();
        data = read_all(path_of("audit-000001.log"), &size);
        swapped = malloc(size);
        for (unsigned k = 1; k + 1 <= count_lines(data, size); k++) {
                line_span(data, size, k, &off1, &len1);
                line_span(data, size, k + 1, &off2, &len2);
                memcpy(swapped, data, size);
                memcpy(swapped + off1, data + off2, len2);
                memcpy(swapped + off1 + len2, data + off1, len1);
                write_all(path_of("audit-000001.log"), swapped, size);
                assert_names("audit-000001.log", k);
        }
}
END_TEST

START_TEST(test_truncate) {
        size_t size, off, len;
        _cleanup_free_ char *data = NULL;
        AuditReport rep;
        unsigned lines;

        make_log();
        data = read_all(path_of("audit-000003.log"), &size);
        lines = count_lines(data, size);

        /* Mid-record: a partial line, named. */
        line_span(data, size, lines - 2, &off, &len);
        write_all(path_of("audit-000003.log"), data, off + len / 2);
        assert_names("audit-000003.log", lines - 2);

        /* After an event record, before its checkpoint: intact chain, but reported unsealed. */
        line_span(data, size, lines - 2, &off, &len); /* the last event; then its checkpoint, then close */
        write_all(path_of("audit-000003.log"), data, off + len);
        ck_assert_int_eq(verify(&rep), 0);
        ck_assert_uint_eq(rep.unsealed, 1);
        ck_assert_int_eq(rep.closed, 0);
        ck_assert_str_ne(rep.warning, "");

        /* At a checkpoint: a shorter, valid log. The chain cannot tell; the head (seq, hash) an outside
         * witness kept can, and closed == 0 says the log did not end with a clean stop. */
        line_span(data, size, lines - 1, &off, &len);
        write_all(path_of("audit-000003.log"), data, off + len);
        ck_assert_int_eq(verify(&rep), 0);
        ck_assert_uint_eq(rep.unsealed, 0);
        ck_assert_int_eq(rep.closed, 0);

        /* Truncated to nothing. */
        write_all(path_of("audit-000003.log"), data, 0);
        assert_names("audit-000003.log", 0);
}
END_TEST

START_TEST(test_swap_and_remove_files) {
        make_log();
        /* swap 1 and 2 */
        ck_assert_int_eq(rename(path_of("audit-000001.log"), path_of("tmp")), 0);
        ck_assert_int_eq(rename(path_of("audit-000002.log"), path_of("audit-000001.log")), 0);
        ck_assert_int_eq(rename(path_of("tmp"), path_of("audit-000002.log")), 0);
        assert_names("audit-000001.log", 1);
        ck_assert_int_eq(rename(path_of("audit-000001.log"), path_of("tmp")), 0);
        ck_assert_int_eq(rename(path_of("audit-000002.log"), path_of("audit-000001.log")), 0);
        ck_assert_int_eq(rename(path_of("tmp"), path_of("audit-000002.log")), 0);
        assert_verifies();

        /* swap 2 and 3 */
        ck_assert_int_eq(rename(path_of("audit-000002.log"), path_of("tmp")), 0);
        ck_assert_int_eq(rename(path_of("audit-000003.log"), path_of("audit-000002.log")), 0);
        ck_assert_int_eq(rename(path_of("tmp"), path_of("audit-000003.log")), 0);
        assert_names("audit-000002.log", 1);
        ck_assert_int_eq(rename(path_of("audit-000002.log"), path_of("tmp")), 0);
        ck_assert_int_eq(rename(path_of("audit-000003.log"), path_of("audit-000002.log")), 0);
        ck_assert_int_eq(rename(path_of("tmp"), path_of("audit-000003.log")), 0);
        assert_verifies();

        /* remove the middle file: a gap in the names... */
        ck_assert_int_eq(rename(path_of("audit-000002.log"), path_of("keep")), 0);
        assert_names("audit-000002.log", 0);
        /* ...and renumbered to hide the gap: the chain breaks */
        ck_assert_int_eq(rename(path_of("audit-000003.log"), path_of("audit-000002.log")), 0);
        assert_names("audit-000002.log", 1);
        ck_assert_int_eq(rename(path_of("audit-000002.log"), path_of("audit-000003.log")), 0);
        ck_assert_int_eq(rename(path_of("keep"), path_of("audit-000002.log")), 0);
        assert_verifies();

        /* remove the newest file: the one before ends with a rotate checkpoint */
        ck_assert_int_eq(rename(path_of("audit-000003.log"), path_of("keep")), 0);
        assert_names("audit-000003.log", 0);
        /* remove the first */
        ck_assert_int_eq(rename(path_of("keep"), path_of("audit-000003.log")), 0);
        ck_assert_int_eq(unlink(path_of("audit-000001.log")), 0);
        assert_names("audit-000001.log", 0);
}
END_TEST

/* An attacker without the key rewrites the detail of line k of FILE and re-chains everything after it,
 * signing checkpoints with sk, a key of their own. head: in, the prev for line 1 (NULL: keep the
 * file's own); out, the forged file's last hash. */
static void forge(const char *file, unsigned k, const Secret *sk, uint8_t head[CRYPT_HASH_BYTES], int use_head) {
        size_t size, off = 0, outlen = 0;
        _cleanup_free_ char *data = read_all(path_of(file), &size);
        _cleanup_free_ char *out = malloc(size + 4 * AUDIT_LINE_MAX);
        unsigned line = 0;

        while (off < size) {
                size_t len = (size_t) ((char *) memchr(data + off, '\n', size - off) - (data + off));
                const uint8_t *prev;
                AuditEntry e;
                size_t n;

                line++;
                ck_assert_int_eq(audit_parse_line(data + off, len, &e, NULL, NULL, 0), 0);
                prev = line == 1 && !use_head ? e.prev : head;
                if (line < k) {
                        memcpy(out + outlen, data + off, len + 1);
                        outlen += len + 1;
                        memcpy(head, e.hash, CRYPT_HASH_BYTES);
                } else if (e.is_checkpoint) {
                        ck_assert_int_eq(audit_format_checkpoint(e.seq, e.time, e.reason, e.interval, prev, sk,
                                                                 out + outlen, &n, head),
                                         0);
                        outlen += n;
                } else {
                        ck_assert_int_eq(audit_format_event(e.seq, e.time,
                                                            &(AuditRecord){
                                                                    .event = e.event,
                                                                    .outcome = e.outcome,
                                                                    .uid = e.uid,
                                                                    .pid = e.pid,
                                                                    .comm = e.comm,
                                                                    .object = e.object,
                                                                    .detail = line == k ? "nothing to see" : e.detail,
                                                            },
                                                            prev, out + outlen, &n, head),
                                         0);
                        outlen += n;
                }
                off += len + 1;
        }
        write_all(path_of(file), out, outlen);
}

START_TEST(test_forged_checkpoint) {
        _cleanup_secret_ Secret *seed = NULL, *sk = NULL;
        uint8_t pinned[CRYPT_SIGN_PUBLIC_KEY_BYTES], forged[CRYPT_SIGN_PUBLIC_KEY_BYTES];
        uint8_t head[CRYPT_HASH_BYTES];
        char text[128];
        AuditReport rep;
        size_t size;
        _cleanup_free_ char *orig = NULL;

        make_log();
        ck_assert_int_eq(crypt_sign_keypair(&seed, forged), 0);
        ck_assert_int_eq(crypt_sign_seed_keypair(seed, &sk, forged), 0);
        ck_assert_int_eq(audit_read_public_key(AT_FDCWD, path_of("audit.pub"), pinned), 0);
        orig = read_all(path_of("audit-000003.log"), &size);

        /* Line 4 is an event record, rewritten and re-hashed; line 5, its checkpoint, re-signed by
         * the wrong key, is named. */
        forge("audit-000003.log", 4, sk, head, 0);
        assert_names("audit-000003.log", 5);
        ck_assert_int_eq(verify(&rep), -EBADMSG);
        ck_assert_ptr_nonnull(strstr(rep.error, "checkpoint signature does not verify"));

        /* A checkpoint re-signed without any other change: named too. */
        write_all(path_of("audit-000003.log"), orig, size);
        assert_verifies();
        forge("audit-000003.log", 1, sk, head, 0);
        assert_names("audit-000003.log", 1);

        /* The whole log re-signed and audit.pub replaced: only a pinned copy of the key tells. */
        forge("audit-000001.log", 1, sk, head, 0);
        forge("audit-000002.log", 1, sk, head, 1);
        write_all(path_of("audit-000003.log"), orig, size);
        forge("audit-000003.log", 1, sk, head, 1);
        memcpy(text, "ed25519=", 8);
        audit_hex(forged, sizeof(forged), text + 8);
        strcat(text, "\n");
        write_all(path_of("audit.pub"), text, strlen(text));
        ck_assert_int_eq(audit_verify(dir, NULL, &rep), 0);
        ck_assert_int_eq(audit_verify(dir, pinned, &rep), -EBADMSG);
        ck_assert_ptr_nonnull(strstr(rep.error, "/audit-000001.log:1 (seq 1): checkpoint signature"));
}
END_TEST

START_TEST(test_unsealed_tail_and_interval) {
        AuditLog *l;
        AuditReport rep;
        size_t size, off, len;
        _cleanup_free_ char *data = NULL;

        ck_assert_int_eq(audit_open(dir, &(AuditOptions){ .checkpoint_interval = 3 }, &l, NULL), 0);
        append_n(l, 7, "i");
        audit_free(l); /* a crash: no close checkpoint */
        ck_assert_int_eq(verify(&rep), 0);
        ck_assert_uint_eq(rep.unsealed, 1);
        ck_assert_str_ne(rep.warning, "");

        /* start, 3 events, their checkpoint */
        data = read_all(path_of("audit-000001.log"), &size);
        line_span(data, size, 5, &off, &len); /* start, e, e, e, cp(5) */
        ck_assert_ptr_nonnull(memmem(data + off, len, "checkpoint=periodic", 19));

        /* Reopen with interval 1: the unsealed record is sealed at once, with the new promise. */
        ck_assert_int_eq(audit_open(dir, NULL, &l, NULL), 0);
        ck_assert_int_eq(audit_close(l), 0);
        ck_assert_int_eq(verify(&rep), 0);
        ck_assert_uint_eq(rep.unsealed, 0);
        ck_assert_int_eq(rep.closed, 1);
        ck_assert_uint_eq(rep.records, 1 + 7 + 2 + 1 + 1);
}
END_TEST

START_TEST(test_rotation) {
        AuditLog *l;
        AuditReport rep;
        AuditReader *rd;
        const AuditEntry *e;
        uint64_t expect = 1;
        int r;

        ck_assert_int_eq(audit_open(dir, &(AuditOptions){ .max_file_size = 2000 }, &l, NULL), 0);
        append_n(l, 20, "r");
        ck_assert_int_eq(audit_close(l), 0);
        /* Reopened, it continues in the newest file. */
        ck_assert_int_eq(audit_open(dir, &(AuditOptions){ .max_file_size = 2000 }, &l, NULL), 0);
        append_n(l, 3, "s");
        ck_assert_int_eq(audit_rotate(l), 0);
        ck_assert_int_eq(audit_close(l), 0);

        ck_assert_int_eq(verify(&rep), 0);
        ck_assert_uint_ge(rep.files, 5);
        ck_assert_int_eq(rep.closed, 1);
        ck_assert_int_eq(access(path_of("audit-000002.log"), F_OK), 0);

        /* seq runs on across files; each file begins with a start checkpoint */
        ck_assert_int_eq(audit_reader_new(dir, &(AuditFilter){ .checkpoints = 1 }, &rd), 0);
        while ((r = audit_reader_next(rd, &e)) > 0) {
                ck_assert_uint_eq(e->seq, expect++);
                if (e->line == 1)
                        ck_assert(e->is_checkpoint && e->reason == AUDIT_CHECKPOINT_START);
        }
        ck_assert_int_eq(r, 0);
        ck_assert_uint_eq(expect - 1, rep.last_seq);
        audit_reader_free(rd);
}
END_TEST

static int contains(const char *hay, size_t n, const void *needle, size_t m) {
        return memmem(hay, n, needle, m) != NULL;
}

START_TEST(test_no_key_bytes) {
        AuditLog *l;
        _cleanup_secret_ Secret *seed = NULL, *sk = NULL;
        uint8_t pk[CRYPT_SIGN_PUBLIC_KEY_BYTES];
        char hex_seed[2 * CRYPT_SIGN_SEED_BYTES + 1], hex_sk[2 * CRYPT_SIGN_SECRET_KEY_BYTES + 1];
        const char *names[] = { "audit-000001.log", "audit-000002.log", "audit.pub" };
        size_t size;
        char *raw;

        ck_assert_int_eq(audit_open(dir, NULL, &l, NULL), 0);
        append_n(l, 10, "k");
        ck_assert_int_eq(audit_rotate(l), 0);
        append_n(l, 10, "k2");
        ck_assert_int_eq(audit_close(l), 0);

        raw = read_all(path_of("audit.key"), &size);
        ck_assert_uint_eq(size, CRYPT_SIGN_SEED_BYTES);
        ck_assert_int_eq(secret_new_copy(raw, size, &seed), 0);
        free(raw);
        ck_assert_int_eq(crypt_sign_seed_keypair(seed, &sk, pk), 0);
        audit_hex(seed->data, seed->size, hex_seed);
        audit_hex(sk->data, sk->size, hex_sk);

        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                _cleanup_free_ char *data = read_all(path_of(names[i]), &size);

                ck_assert(!contains(data, size, seed->data, 16));
                ck_assert(!contains(data, size, seed->data + 16, 16));
                ck_assert(!contains(data, size, hex_seed, 32));
                ck_assert(!contains(data, size, hex_seed + 32, 32));
                ck_assert(!contains(data, size, hex_sk, 64));
        }
        /* The public key is published, and is the key's. */
        {
                uint8_t pub[CRYPT_SIGN_PUBLIC_KEY_BYTES];
                ck_assert_int_eq(audit_read_public_key(AT_FDCWD, path_of("audit.pub"), pub), 0);
                ck_assert_mem_eq(pub, pk, sizeof(pk));
        }
}
END_TEST

START_TEST(test_bad_records_and_locking) {
        AuditLog *l, *l2;
        AuditError err = {};
        char big[AUDIT_DETAIL_MAX + 2];
        uint64_t seq;

        ck_assert_int_eq(audit_open(dir, NULL, &l, NULL), 0);
        seq = audit_head(l, NULL);
        memset(big, 'a', sizeof(big) - 1);
        big[sizeof(big) - 1] = 0;
        ck_assert_int_eq(audit_append(l, &(AuditRecord){ .event = "Bad" }), -EINVAL);
        ck_assert_int_eq(audit_append(l, &(AuditRecord){ .event = "" }), -EINVAL);
        ck_assert_int_eq(audit_append(l, &(AuditRecord){ .event = NULL }), -EINVAL);
        ck_assert_int_eq(audit_append(l, &(AuditRecord){ .event = "x y" }), -EINVAL);
        ck_assert_int_eq(audit_append(l, &(AuditRecord){ .event = "ok", .outcome = 9 }), -EINVAL);
        ck_assert_int_eq(audit_append(l, &(AuditRecord){ .event = "ok", .detail = big }), -EINVAL);
        big[AUDIT_DETAIL_MAX] = 0;
        ck_assert_int_eq(audit_append(l, &(AuditRecord){ .event = "ok", .detail = big }), 0);
        ck_assert_uint_eq(audit_head(l, NULL), seq + 2);

        /* One writer at a time. */
        ck_assert_int_eq(audit_open(dir, NULL, &l2, &err), -EBUSY);
        ck_assert_ptr_nonnull(strstr(err.msg, "another process"));
        ck_assert_int_eq(audit_close(l), 0);
        assert_verifies();

        /* The key gone while the log exists: refused, never silently replaced. */
        ck_assert_int_eq(rename(path_of("audit.key"), path_of("key.saved")), 0);
        ck_assert_int_eq(audit_open(dir, NULL, &l2, &err), -ENOKEY);
        ck_assert_ptr_nonnull(strstr(err.msg, "audit.key"));
        ck_assert_int_eq(rename(path_of("key.saved"), path_of("audit.key")), 0);

        /* A key readable by others is refused. */
        ck_assert_int_eq(chmod(path_of("audit.key"), 0640), 0);
        ck_assert_int_eq(audit_open(dir, NULL, &l2, &err), -EPERM);
        ck_assert_int_eq(chmod(path_of("audit.key"), 0600), 0);

        /* A replaced audit.pub is put back, and the log says so. */
        write_all(path_of("audit.pub"), "ed25519=00\n", 11);
        ck_assert_int_eq(audit_open(dir, NULL, &l2, &err), 0);
        ck_assert_int_eq(audit_close(l2), 0);
        assert_verifies();
        ck_assert_uint_eq(count_matches(&(AuditFilter){ .event = "audit-repair", .object = "audit.pub" }), 1);
}
END_TEST

/* A write that fails half way (RLIMIT_FSIZE: a short write, then EFBIG) is cut off again. */
START_TEST(test_failed_write_undone) {
        AuditLog *l;
        struct rlimit old, lim;
        struct stat st, st2;

        ck_assert_int_eq(audit_open(dir, NULL, &l, NULL), 0);
        append_n(l, 3, "f");
        ck_assert_int_eq(stat(path_of("audit-000001.log"), &st), 0);

        ck_assert(signal(SIGXFSZ, SIG_IGN) != SIG_ERR);
        ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
        lim = old;
        lim.rlim_cur = (rlim_t) st.st_size + 50;
        ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
        ck_assert_int_eq(audit_append(l, &(AuditRecord){ .event = "rollover", .object = "group/x" }), -EFBIG);
        ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);

        ck_assert_int_eq(stat(path_of("audit-000001.log"), &st2), 0);
        ck_assert_uint_eq(st2.st_size, st.st_size);
        assert_verifies();
        append_n(l, 2, "g");
        ck_assert_int_eq(audit_close(l), 0);
        assert_verifies();
        ck_assert_uint_eq(count_matches(&(AuditFilter){ .event = "rollover" }), 0);
}
END_TEST

/* A crash mid-write leaves a partial line: verify names it; the next open cuts it off and records that. */
START_TEST(test_partial_record_repaired) {
        AuditLog *l;
        int fd;

        ck_assert_int_eq(audit_open(dir, NULL, &l, NULL), 0);
        append_n(l, 2, "p");
        audit_free(l);
        fd = open(path_of("audit-000001.log"), O_WRONLY | O_APPEND | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, "v=1 seq=6 time=1 event=grant outc", 33), 33);
        close(fd);
        assert_names("audit-000001.log", 6);

        ck_assert_int_eq(audit_open(dir, NULL, &l, NULL), 0);
        ck_assert_int_eq(audit_close(l), 0);
        assert_verifies();
        ck_assert_uint_eq(count_matches(&(AuditFilter){ .event = "audit-repair" }), 1);
        ck_assert_uint_eq(count_matches(&(AuditFilter){ .event = "grant" }), 0);
}
END_TEST

static int mount_tmpfs(const char *where, const char *opts) {
        if (geteuid() != 0)
                return -EPERM;
        return mount("tmpfs", where, "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0 ? -errno : 0;
}

START_TEST(test_full_filesystem) {
        char filler[256], chunk[4096];
        AuditLog *l;
        AuditReport rep;
        int fd, r = 0;
        unsigned ok = 0;

        if (mount_tmpfs(base, "size=64k,mode=0700") < 0) {
                fprintf(stderr, "test_full_filesystem: skipped (needs root and mount)\n");
                return;
        }
        ck_assert_int_eq(audit_open(dir, NULL, &l, NULL), 0);
        /* Fill all but a little with a file we can delete later. */
        (void) snprintf(filler, sizeof(filler), "%s/filler", base);
        fd = open(filler, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        ck_assert_int_ge(fd, 0);
        memset(chunk, 'x', sizeof(chunk));
        for (unsigned i = 0; i < 12; i++)
                ck_assert_int_eq(write(fd, chunk, sizeof(chunk)), (ssize_t) sizeof(chunk));
        close(fd);
        chunk[sizeof(chunk) - 1] = 0;

        for (unsigned i = 0; i < 200; i++) {
                r = audit_append(l, &(AuditRecord){ .event = "grant", .object = "group/full", .detail = chunk + 3100 });
                if (r < 0)
                        break;
                ok++;
        }
        ck_assert_int_eq(r, -ENOSPC);
        ck_assert_uint_gt(ok, 0);
        ck_assert_int_eq(audit_verify(dir, NULL, &rep), 0);
        ck_assert_uint_eq(rep.unsealed, 0);
        ck_assert_uint_eq(count_matches(&(AuditFilter){ .event = "grant" }), ok);
        /* Still full: still refused, still consistent. */
        ck_assert_int_eq(audit_append(l, &(AuditRecord){ .event = "grant" }), -ENOSPC);
        assert_verifies();

        /* Room again: appends work and the chain goes on. */
        ck_assert_int_eq(unlink(filler), 0);
        ck_assert_int_eq(audit_append(l, &(AuditRecord){ .event = "revoke", .object = "group/full" }), 0);
        ck_assert_int_eq(audit_close(l), 0);
        ck_assert_int_eq(audit_verify(dir, NULL, &rep), 0);
        ck_assert_int_eq(rep.closed, 1);
        ck_assert_uint_eq(count_matches(&(AuditFilter){ .event = "grant" }), ok);
}
END_TEST

START_TEST(test_read_only_filesystem) {
        AuditLog *l;
        AuditError err = {};

        if (mount_tmpfs(base, "size=1m,mode=0700") < 0) {
                fprintf(stderr, "test_read_only_filesystem: skipped (needs root and mount)\n");
                return;
        }
        ck_assert_int_eq(audit_open(dir, NULL, &l, NULL), 0);
        append_n(l, 3, "ro");
        ck_assert_int_eq(audit_close(l), 0);
        ck_assert_int_eq(mount("tmpfs", base, "tmpfs", MS_REMOUNT | MS_RDONLY, NULL), 0);

        ck_assert_int_eq(audit_open(dir, NULL, &l, &err), -EROFS);
        ck_assert_ptr_nonnull(strstr(err.msg, "audit-000001.log"));
        assert_verifies();
        ck_assert_uint_eq(count_matches(NULL), 3);
}
END_TEST

static Suite *audit_suite(void) {
        Suite *s = suite_create("audit");
        TCase *tc = tcase_create("log");

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_happy_path);
        tcase_add_test(tc, test_reader_filters);
        tcase_add_test(tc, test_edit_any_byte);
        tcase_add_test(tc, test_delete_record);
        tcase_add_test(tc, test_reorder_records);
        tcase_add_test(tc, test_truncate);
        tcase_add_test(tc, test_swap_and_remove_files);
        tcase_add_test(tc, test_forged_checkpoint);
        tcase_add_test(tc, test_unsealed_tail_and_interval);
        tcase_add_test(tc, test_rotation);
        tcase_add_test(tc, test_no_key_bytes);
        tcase_add_test(tc, test_bad_records_and_locking);
        tcase_add_test(tc, test_failed_write_undone);
        tcase_add_test(tc, test_partial_record_repaired);
        tcase_add_test(tc, test_full_filesystem);
        tcase_add_test(tc, test_read_only_filesystem);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        if (crypt_init() < 0)
                return EXIT_FAILURE;
        return test_run_suite(audit_suite());
}
