/* SPDX-License-Identifier: MIT */
/* Memory hygiene: keys in dkmd, the helper and libdkm only in locked, undumpable memory, and in no core dump. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <systemd/sd-bus.h>
#include <time.h>
#include <unistd.h>

#include <keyutils.h>

#include "dkm.h"
#include "fileio.h"
#include "keyring-manifest.h"
#include "macro.h"
#include "store-internal.h"
#include "test-accounts.h"
#include "test-bus.h"
#include "test-helpers.h"

/* What this proves (docs/SECURITY.md, T15), as root against the real processes:
 *
 * - Memory: every readable mapping with resident pages is read through /proc/PID/mem and
 *   searched for every key the process has handled, raw and, where it travels as text, as the
 *   manifest's hex. A key may only sit in a mapping that is mlocked (Locked == Rss, VmFlags
 *   "lo") and left out of core dumps ("dd"); a key the process must not keep may sit nowhere.
 *   dkmd: after creates, rollovers and a break-glass grant (only the unlocked root key and the
 *   audit signing key may stay; no generation key, no KEK, no file protector key), and stopped
 *   in the middle of a rollover, blocked on a gated helper while it holds the manifest. The
 *   helper: having read a whole manifest but not its end (only the text), and having parsed it
 *   while it waits for the runtime directory's lock (only the raw keys). libdkm: a member
 *   process with two generations cached (both in one page of key slots).
 * - Core dumps: kernel.core_pattern is pointed at a file in the world's directory, then at a
 *   pipe to a catcher script there (the kernel ignores RLIMIT_CORE 0 for a pipe, so only
 *   non-dumpability can stop that dump), and the process is killed with SIGSEGV: no core. A
 *   dumpable control process of the same uid dumps core both ways first, so no core means
 *   something. A libdkm process that makes itself dumpable again (as an application may after
 *   its keys are cached) does dump core, and the core must hold no key (MADV_DONTDUMP).
 *   PR_SET_DUMPABLE 0 cannot be undone from outside (fs.suid_dumpable applies only at a
 *   credential change), so for dkmd and the helper MADV_DONTDUMP is checked on the mappings
 *   ("dd"), not in a core. dkmd restarted after the crashes works.
 *
 * core_pattern is global: it is changed only around one kill and restored at once, by an
 * atexit handler of the process that changed it, and by a guardian process (main) that
 * outlives the whole run, also on SIGINT/SIGTERM/SIGHUP/SIGQUIT.
 * What libdkm does after dkm_cleanup() (no key left) is tests/test-libdkm.c's test_memory. */

/* ASan turns mlock() into a no-op (as tests/test-shared.c notes): there only "dd" can be seen. */
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

static const char *const key_group_tags[] = { "d1", "d2", "hlp", "lib", NULL };

#define CORE_PATTERN  "/proc/sys/kernel/core_pattern"
#define SUID_DUMPABLE "/proc/sys/fs/suid_dumpable" /* read for the report, never changed */
#define REQUEST_IFACE "org.dkm.KeyManager1.Request"
#define USEC          1000000ULL
#define NEEDLE_MAX    64U /* a key's hex */
#define CHUNK         ((size_t) 1 << 20)

/* ---------------------------------------------------------------------------------------- */
/* Needles: keys to look for, kept masked (the key is mask ^ masked) so that the test process */
/* and the children it forks hold no copy that the scanner would find.                        */

typedef enum Rule {
        RULE_NEVER,  /* may not be anywhere */
        RULE_LOCKED, /* only in locked, undumpable mappings */
} Rule;

typedef enum Kind {
        KIND_ROOT,
        KIND_KEK,
        KIND_GENERATION,
        KIND_GENERATION_HEX,
        KIND_FILE_PROTECTOR,
        KIND_AUDIT_SEED,
} Kind;

typedef struct Needle {
        Kind kind;
        char tag[8];
        uint32_t generation;
        Rule rule;
        size_t size;
        uint8_t mask[NEEDLE_MAX], masked[NEEDLE_MAX];
        size_t hits, bad;
        char bad_where[200], ok_where[200];
} Needle;

typedef struct Needles {
        Needle n[96];
        size_t count;
} Needles;

static const char *kind_name(Kind k) {
        static const char *const names[] = {
                [KIND_ROOT] = "root key",
                [KIND_KEK] = "KEK",
                [KIND_GENERATION] = "generation key",
                [KIND_GENERATION_HEX] = "generation key (hex)",
                [KIND_FILE_PROTECTOR] = "file protector key",
                [KIND_AUDIT_SEED] = "audit signing seed",
        };
        return names[k];
}

static void needle_name(const Needle *n, char *buf, size_t size) {
        if (n->kind == KIND_GENERATION || n->kind == KIND_GENERATION_HEX)
                snprintf(buf, size, "%s %s %u", n->tag, kind_name(n->kind), (unsigned) n->generation);
        else if (n->kind == KIND_KEK)
                snprintf(buf, size, "%s %s", n->tag, kind_name(n->kind));
        else
                snprintf(buf, size, "%s", kind_name(n->kind));
}

static void hex_into(const uint8_t *p, size_t size, uint8_t *out) {
        static const char digits[] = "0123456789abcdef";

        for (size_t i = 0; i < size; i++) {
                out[2 * i] = (uint8_t) digits[p[i] >> 4];
                out[2 * i + 1] = (uint8_t) digits[p[i] & 15];
        }
}

static void needle_add(Needles *ns, Kind kind, const char *tag, uint32_t generation, const uint8_t *bytes,
                       size_t size) {
        Needle *n;

        ck_assert_uint_lt(ns->count, ELEMENTSOF(ns->n));
        ck_assert_uint_le(size, NEEDLE_MAX);
        n = &ns->n[ns->count++];
        *n = (Needle){ .kind = kind, .generation = generation, .size = size };
        snprintf(n->tag, sizeof(n->tag), "%s", tag ?: "");
        crypt_random(n->mask, size);
        for (size_t i = 0; i < size; i++)
                n->masked[i] = bytes[i] ^ n->mask[i];
}

/* A 32-byte key, and for generation keys also its hex, as the manifest carries it. */
static void needle_add_key(Needles *ns, Kind kind, const char *tag, uint32_t generation, const Secret *key) {
        ck_assert_uint_eq(key->size, 32);
        needle_add(ns, kind, tag, generation, key->data, key->size);
        if (kind == KIND_GENERATION) {
                _cleanup_secret_ Secret *hex = NULL;

                ck_assert_int_eq(secret_new(64, &hex), 0);
                hex_into(key->data, key->size, hex->data);
                needle_add(ns, KIND_GENERATION_HEX, tag, generation, hex->data, hex->size);
        }
}

/* The key back, in a Secret, for a child that must hand it to the helper. */
static Secret *needle_unmask(const Needle *n) {
        Secret *s = NULL;

        ck_assert_int_eq(secret_new(n->size, &s), 0);
        for (size_t i = 0; i < n->size; i++)
                s->data[i] = n->mask[i] ^ n->masked[i];
        return s;
}

static Needle *needle_find(Needles *ns, Kind kind, const char *tag, uint32_t generation) {
        for (size_t i = 0; i < ns->count; i++)
                if (ns->n[i].kind == kind && strcmp(ns->n[i].tag, tag ?: "") == 0 && ns->n[i].generation == generation)
                        return &ns->n[i];
        ck_abort_msg("no needle for %s %s %u", tag ?: "", kind_name(kind), (unsigned) generation);
        abort();
}

static void needles_reset(Needles *ns) {
        for (size_t i = 0; i < ns->count; i++) {
                ns->n[i].hits = ns->n[i].bad = 0;
                ns->n[i].bad_where[0] = ns->n[i].ok_where[0] = 0;
        }
}

static bool needle_at(const Needle *n, const uint8_t *p) {
        for (size_t j = 0; j < n->size; j++)
                if ((uint8_t) (p[j] ^ n->mask[j]) != n->masked[j])
                        return false;
        return true;
}

/* ---------------------------------------------------------------------------------------- */
/* Another process's memory: its mappings from smaps, their bytes from /proc/PID/mem.         */

typedef struct Mapping {
        unsigned long start, end;
        char perms[8];
        char name[96];
        unsigned long rss_kb, swap_kb, locked_kb;
        bool lo, dd;
} Mapping;

typedef struct ScanStats {
        size_t mappings, mappings_read, bytes, unreadable;
        /* Figures of the mappings that held an allowed key, for the report. */
        unsigned long key_rss_kb, key_locked_kb;
        size_t key_mappings;
} ScanStats;

static bool mapping_keeps_secrets(const Mapping *m) {
        return m->dd && m->rss_kb > 0 && m->swap_kb == 0 && (UNDER_ASAN || (m->lo && m->locked_kb == m->rss_kb));
}

static void mapping_describe(const Mapping *m, char *buf, size_t size) {
        snprintf(buf, size, "%lx-%lx %s %s (Rss %lu kB, Swap %lu kB, Locked %lu kB%s%s)", m->start, m->end, m->perms,
                 m->name[0] ? m->name : "[anon]", m->rss_kb, m->swap_kb, m->locked_kb, m->lo ? ", lo" : "",
                 m->dd ? ", dd" : "");
}

static size_t maps_read(pid_t pid, Mapping **ret) {
        char path[64], line[512];
        Mapping *maps = NULL, *cur = NULL;
        size_t n = 0;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/smaps", (int) pid);
        f = fopen(path, "re");
        ck_assert_msg(f, "%s: %m", path);
        while (fgets(line, sizeof(line), f)) {
                unsigned long a, b, v;
                char perms[8];
                int off = 0;

                if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %n", &a, &b, perms, &off) == 3 && off > 0) {
                        maps = realloc(maps, (n + 1) * sizeof(Mapping));
                        ck_assert_ptr_nonnull(maps);
                        cur = &maps[n++];
                        *cur = (Mapping){ .start = a, .end = b };
                        snprintf(cur->perms, sizeof(cur->perms), "%s", perms);
                        snprintf(cur->name, sizeof(cur->name), "%s", line + off);
                        cur->name[strcspn(cur->name, "\n")] = 0;
                } else if (cur && sscanf(line, "Rss: %lu kB", &v) == 1)
                        cur->rss_kb = v;
                else if (cur && sscanf(line, "Swap: %lu kB", &v) == 1)
                        cur->swap_kb = v;
                else if (cur && sscanf(line, "Locked: %lu kB", &v) == 1)
                        cur->locked_kb = v;
                else if (cur && strncmp(line, "VmFlags:", 8) == 0) {
                        cur->lo = strstr(line, " lo") != NULL;
                        cur->dd = strstr(line, " dd") != NULL;
                }
        }
        fclose(f);
        *ret = maps;
        return n;
}

/* Every needle in buf[0, len) starting before limit; m is where it lies (NULL: a core file,
 * where no key may be). */
static void match(Needles *ns, const bool first[256], const uint8_t *buf, size_t len, size_t limit, const Mapping *m,
                  ScanStats *st, bool *counted) {
        for (size_t i = 0; i < limit; i++) {
                if (!first[buf[i]])
                        continue;
                for (size_t k = 0; k < ns->count; k++) {
                        Needle *n = &ns->n[k];

                        if (i + n->size > len || !needle_at(n, buf + i))
                                continue;
                        n->hits++;
                        if (m && n->rule == RULE_LOCKED && mapping_keeps_secrets(m)) {
                                if (!n->ok_where[0])
                                        mapping_describe(m, n->ok_where, sizeof(n->ok_where));
                                if (st && !*counted) {
                                        st->key_mappings++;
                                        st->key_rss_kb += m->rss_kb;
                                        st->key_locked_kb += m->locked_kb;
                                        *counted = true;
                                }
                        } else {
                                n->bad++;
                                if (!n->bad_where[0]) {
                                        if (m)
                                                mapping_describe(m, n->bad_where, sizeof(n->bad_where));
                                        else
                                                snprintf(n->bad_where, sizeof(n->bad_where), "the core file");
                                }
                        }
                }
        }
}

static void first_bytes(const Needles *ns, bool first[256]) {
        memset(first, 0, 256 * sizeof(bool));
        for (size_t k = 0; k < ns->count; k++)
                first[ns->n[k].mask[0] ^ ns->n[k].masked[0]] = true;
}

/* Reads every readable mapping with pages in memory or swap (one with neither cannot hold a
 * key; reading it would only map zero pages). */
static void scan_pid(pid_t pid, Needles *ns, ScanStats *st) {
        _cleanup_free_ Mapping *maps = NULL;
        _cleanup_free_ uint8_t *buf = malloc(CHUNK + NEEDLE_MAX);
        _cleanup_close_ int fd = -EBADF;
        char path[64];
        bool first[256];
        size_t n;

        ck_assert_ptr_nonnull(buf);
        *st = (ScanStats){};
        needles_reset(ns);
        first_bytes(ns, first);
        n = maps_read(pid, &maps);
        snprintf(path, sizeof(path), "/proc/%d/mem", (int) pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        ck_assert_msg(fd >= 0, "%s: %m", path);
        for (size_t i = 0; i < n; i++) {
                const Mapping *m = &maps[i];
                bool counted = false;

                st->mappings++;
                if (m->perms[0] != 'r' || m->rss_kb + m->swap_kb == 0 || strcmp(m->name, "[vsyscall]") == 0)
                        continue;
                /* Only an address-space reservation (sanitizer shadow) is this large. */
                if (m->end - m->start > ((unsigned long) 1 << 32)) {
                        st->unreadable += m->rss_kb * 1024;
                        continue;
                }
                st->mappings_read++;
                for (unsigned long off = m->start; off < m->end; off += CHUNK) {
                        size_t want = MIN((size_t) (m->end - off), CHUNK + NEEDLE_MAX - 1);
                        ssize_t got = pread(fd, buf, want, (off_t) off);

                        if (got <= 0) {
                                st->unreadable += MIN((size_t) (m->end - off), CHUNK);
                                continue;
                        }
                        st->bytes += MIN((size_t) got, CHUNK);
                        match(ns, first, buf, (size_t) got, MIN((size_t) got, CHUNK), m, st, &counted);
                }
        }
}

/* A core file: no needle may be in it; *ret_marker says whether marker (a string the process
 * is known to hold in dumped memory) is, proving the file is a real dump of that process. */
static size_t scan_file(const char *path, Needles *ns, const char *marker, bool *ret_marker) {
        _cleanup_free_ uint8_t *buf = malloc(CHUNK + 256);
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        size_t total = 0, mlen = strlen(marker);
        bool first[256];

        ck_assert_ptr_nonnull(buf);
        ck_assert_msg(fd >= 0, "%s: %m", path);
        ck_assert_uint_lt(mlen, 256);
        needles_reset(ns);
        first_bytes(ns, first);
        *ret_marker = false;
        for (off_t off = 0;; off += (off_t) CHUNK) {
                ssize_t got = pread(fd, buf, CHUNK + 255, off);

                if (got <= 0)
                        break;
                total += MIN((size_t) got, CHUNK);
                match(ns, first, buf, (size_t) got, MIN((size_t) got, CHUNK), NULL, NULL, &(bool){ false });
                if (memmem(buf, (size_t) got, marker, mlen))
                        *ret_marker = true;
        }
        return total;
}

/* Fails naming every needle found where it must not be; prints what was found where allowed. */
static void needles_check(const Needles *ns, const char *process, const char *when) {
        char msg[4096] = "", name[96];
        size_t len = 0;

        for (size_t i = 0; i < ns->count; i++) {
                const Needle *n = &ns->n[i];

                needle_name(n, name, sizeof(name));
                if (n->bad > 0 && len < sizeof(msg) - 1)
                        len += (size_t) snprintf(msg + len, sizeof(msg) - len,
                                                 "\n  %s: %s found %zu time(s), first in %s", process, name, n->bad,
                                                 n->bad_where);
                else if (n->hits > 0)
                        fprintf(stderr, "memory: %s %s: %s x%zu, only in %s\n", process, when, name, n->hits,
                                n->ok_where);
        }
        ck_assert_msg(len == 0, "key material where it must not be, %s:%s", when, msg);
}

static unsigned long proc_status_kb(pid_t pid, const char *field);

static void print_stats(pid_t pid, const char *process, const char *when, const ScanStats *st, size_t needles) {
        fprintf(stderr,
                "memory: %s %s: %zu mappings, %zu read, %zu KiB scanned (%zu KiB unreadable), %zu needles; "
                "mappings holding keys: %zu, Rss %lu kB, Locked %lu kB; process VmLck %lu kB, VmSwap %lu kB\n",
                process, when, st->mappings, st->mappings_read, st->bytes >> 10, st->unreadable >> 10, needles,
                st->key_mappings, st->key_rss_kb, st->key_locked_kb, proc_status_kb(pid, "VmLck:"),
                proc_status_kb(pid, "VmSwap:"));
}

static unsigned long proc_limit_core(pid_t pid) {
        char path[64], line[256];
        unsigned long soft = ULONG_MAX;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/limits", (int) pid);
        f = fopen(path, "re");
        ck_assert_ptr_nonnull(f);
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, "Max core file size", 18) == 0 && sscanf(line + 18, " %lu", &soft) != 1)
                        soft = ULONG_MAX; /* "unlimited" */
        fclose(f);
        return soft;
}

/* "FIELD: N kB" of a /proc file. */
static unsigned long file_kb(const char *path, const char *field) {
        char line[256];
        unsigned long v = 0;
        FILE *f;

        f = fopen(path, "re");
        if (!f)
                return 0; /* also called outside a test: no check here */
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, field, strlen(field)) == 0)
                        (void) sscanf(line + strlen(field), " %lu", &v);
        fclose(f);
        return v;
}

static unsigned long proc_status_kb(pid_t pid, const char *field) {
        char path[64];

        snprintf(path, sizeof(path), "/proc/%d/status", (int) pid);
        return file_kb(path, field);
}

/* ---------------------------------------------------------------------------------------- */
/* Core dumps: core_pattern, the directory, the kill.                                         */

static char saved_pattern[256];
static pid_t armed_by;
static char core_dir[128];

static int read_line(const char *path, char *buf, size_t size) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t n;

        if (fd < 0)
                return -errno;
        n = read(fd, buf, size - 1);
        if (n < 0)
                return -errno;
        buf[n] = 0;
        buf[strcspn(buf, "\n")] = 0;
        return 0;
}

/* Also what puts core_pattern back at exit: open, write, close only. */
static int write_value(const char *path, const char *value) {
        int fd = open(path, O_WRONLY | O_CLOEXEC | O_TRUNC), r = 0;

        if (fd < 0)
                return -1;
        if (write(fd, value, strlen(value)) != (ssize_t) strlen(value))
                r = -1;
        close(fd);
        return r;
}

static void pattern_restore(void) {
        if (saved_pattern[0])
                (void) write_value(CORE_PATTERN, saved_pattern);
}

static void pattern_restore_if_armed(void) {
        if (armed_by == getpid()) {
                pattern_restore();
                armed_by = 0;
        }
}

static void cores_clear(void) {
        DIR *d = opendir(core_dir);
        struct dirent *de;

        ck_assert_ptr_nonnull(d);
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        ck_assert_int_eq(unlinkat(dirfd(d), de->d_name, 0), 0);
        closedir(d);
}

/* The core files of pid ("core.PID", "core.PID.part" while the catcher writes): another
 * process crashing meanwhile may dump here too. The path of one in ret. */
static size_t cores_count(pid_t pid, char *ret, size_t size) {
        DIR *d = opendir(core_dir);
        struct dirent *de;
        char want[32];
        size_t n = 0;

        ck_assert_ptr_nonnull(d);
        snprintf(want, sizeof(want), "core.%d", (int) pid);
        while ((de = readdir(d)))
                if (strncmp(de->d_name, want, strlen(want)) == 0 &&
                    (de->d_name[strlen(want)] == 0 || de->d_name[strlen(want)] == '.')) {
                        if (ret)
                                snprintf(ret, size, "%s/%s", core_dir, de->d_name);
                        n++;
                }
        closedir(d);
        return n;
}

/* Where the kernel writes a core: a file (RLIMIT_CORE applies), or the catcher script's stdin
 * (a pipe: RLIMIT_CORE 0 does not stop the dump, so non-dumpability and MADV_DONTDUMP can be
 * seen without it, and without CAP_SYS_RESOURCE to raise a hard limit the process lowered). */
typedef enum CoreTo {
        CORE_TO_FILE,
        CORE_TO_PIPE,
} CoreTo;

static char core_catcher[160];

static void cores_arm(CoreTo to) {
        char pattern[512];

        ck_assert_int_eq(armed_by, 0);
        if (to == CORE_TO_FILE)
                snprintf(pattern, sizeof(pattern), "%s/core.%%p", core_dir);
        else
                snprintf(pattern, sizeof(pattern), "|%s %s %%p", core_catcher, core_dir);
        ck_assert_uint_lt(strlen(pattern), 128); /* the kernel's CORENAME_MAX_SIZE */
        cores_clear();
        armed_by = getpid();
        ck_assert_int_eq(write_value(CORE_PATTERN, pattern), 0);
}

static void cores_disarm(void) {
        pattern_restore_if_armed();
}

/* The catcher renames its file when the whole core is in: wait for that (the kernel does not
 * wait for it, core_pipe_limit being 0), or a little while for nothing to come. */
static size_t cores_wait(pid_t pid, bool want, char *ret, size_t size) {
        size_t n = 0;

        for (int i = 0; i < (want ? 1000 : 30); i++) {
                n = cores_count(pid, ret, size);
                if (want && n == 1 && !strstr(ret, ".part"))
                        break;
                nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);
        }
        return n;
}

static void core_unlimited(void) {
        const struct rlimit inf = { RLIM_INFINITY, RLIM_INFINITY };

        if (setrlimit(RLIMIT_CORE, &inf) < 0)
                _exit(93);
}

/* A dumpable process of these credentials (NULL: root) that crashes dumps core, to a file
 * (RLIMIT_CORE unlimited) and through the pipe (RLIMIT_CORE 0): the settings work, so no core
 * after a kill means the process would not dump. */
static void core_control(const TestCreds *c) {
        if (UNDER_ASAN)
                return; /* see core_case() */
        for (CoreTo to = CORE_TO_FILE; to <= CORE_TO_PIPE; to++) {
                const struct rlimit limit = { to == CORE_TO_FILE ? RLIM_INFINITY : 0,
                                              to == CORE_TO_FILE ? RLIM_INFINITY : 0 };
                char path[512];
                int status;
                pid_t pid;

                cores_arm(to);
                fflush(NULL);
                pid = fork();
                ck_assert_int_ge(pid, 0);
                if (pid == 0) {
                        if (c)
                                test_become(c);
                        /* The uid change made it non-dumpable (suid_dumpable 0); any program may undo that. */
                        (void) prctl(PR_SET_DUMPABLE, 1);
                        if (setrlimit(RLIMIT_CORE, &limit) < 0)
                                _exit(93);
                        raise(SIGSEGV);
                        _exit(94);
                }
                ck_assert_int_eq(waitpid(pid, &status, 0), pid);
                ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV);
                ck_assert_msg(WCOREDUMP(status) && cores_wait(pid, true, path, sizeof(path)) == 1,
                              "the control process (uid %u) wrote no core %s in %s", c ? (unsigned) c->uid : 0U,
                              to == CORE_TO_FILE ? "file" : "through the pipe", core_dir);
                cores_disarm();
                cores_clear();
        }
}

/* Until pid (our child) is a zombie: the dump, if any, is done. SIGKILL during the dump would
 * cut it short, so the caller reaps only after this. */
static void wait_zombie(pid_t pid) {
        char path[64], buf[512], *p;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
        for (int i = 0; i < 1000; i++) {
                ck_assert_int_eq(read_line(path, buf, sizeof(buf)), 0);
                p = strrchr(buf, ')');
                if (p && p[1] == ' ' && p[2] == 'Z')
                        return;
                nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);
        }
        ck_abort_msg("process %d did not die", (int) pid);
}

typedef enum CoreCase {
        CORE_FILE,          /* to a file: RLIMIT_CORE and dumpability both stop it */
        CORE_PIPE,          /* to the pipe: only non-dumpability stops it */
        CORE_PIPE_DUMPABLE, /* to the pipe, the process dumpable again: a core, without keys */
} CoreCase;

static const char *core_case_name(CoreCase c) {
        return c == CORE_FILE ? "core_pattern a file" : c == CORE_PIPE ? "core_pattern a pipe" : "made dumpable again";
}

/* Kills pid (a live process holding keys) with SIGSEGV in case cc, reaps it with reap (which
 * returns its wait status), and checks the outcome; marker is a string its core must hold. */
static void core_case(pid_t pid, CoreCase cc, int (*reap)(pid_t pid), const char *process, Needles *ns,
                      const char *marker) {
        char path[512];
        size_t n, bytes;
        bool marker_found;
        int status;

        if (UNDER_ASAN) {
                /* ASan catches SIGSEGV itself and turns core dumps off: the other builds prove this. */
                ck_assert_int_eq(kill(pid, SIGKILL), 0);
                (void) reap(pid);
                fprintf(stderr, "memory: %s: SIGSEGV, %s: skipped under ASan\n", process, core_case_name(cc));
                return;
        }
        cores_arm(cc == CORE_FILE ? CORE_TO_FILE : CORE_TO_PIPE);
        ck_assert_int_eq(kill(pid, SIGSEGV), 0);
        wait_zombie(pid);
        n = cores_wait(pid, cc == CORE_PIPE_DUMPABLE, path, sizeof(path));
        cores_disarm();
        status = reap(pid);
        ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV, "%s: status %d", process, status);
        if (cc != CORE_PIPE_DUMPABLE) {
                ck_assert_msg(!WCOREDUMP(status) && n == 0, "%s dumped core (%s)", process, core_case_name(cc));
                fprintf(stderr, "memory: %s: SIGSEGV, %s: no core\n", process, core_case_name(cc));
                return;
        }
        ck_assert_msg(WCOREDUMP(status) && n == 1, "%s: no core although dumpable", process);
        bytes = scan_file(path, ns, marker, &marker_found);
        cores_clear();
        ck_assert_msg(marker_found, "%s: the core (%zu bytes) lacks the marker %s", process, bytes, marker);
        needles_check(ns, process, "core file");
        fprintf(stderr, "memory: %s: SIGSEGV, %s: core of %zu KiB (marker found), none of %zu keys in it\n", process,
                core_case_name(cc), bytes >> 10, ns->count);
}

/* ---------------------------------------------------------------------------------------- */
/* The scanner alone (also as non-root).                                                     */

START_TEST(test_scanner) {
        _cleanup_free_ uint8_t *buf = calloc(1, 3 * 4096);
        Needles *ns = calloc(1, sizeof(Needles));
        Mapping locked = { .lo = true, .dd = true, .rss_kb = 4, .locked_kb = 4 };
        Mapping plain = { .rss_kb = 4 }, half = { .lo = true, .dd = true, .rss_kb = 8, .locked_kb = 4 };
        uint8_t key[32];
        bool first[256];

        crypt_random(key, sizeof(key));
        needle_add(ns, KIND_GENERATION, "t", 1, key, sizeof(key));
        ns->n[0].rule = RULE_LOCKED;
        memcpy(buf + 100, key, sizeof(key));
        memcpy(buf + 4096 - 10, key, sizeof(key)); /* across a chunk boundary */
        secret_wipe(key, sizeof(key));
        first_bytes(ns, first);
        match(ns, first, buf, 4096 + 64, 4096, &locked, NULL, &(bool){ false });
        ck_assert_uint_eq(ns->n[0].hits, 2);
        ck_assert_uint_eq(ns->n[0].bad, 0);
        needles_reset(ns);
        match(ns, first, buf, 4096 + 64, 4096, &plain, NULL, &(bool){ false });
        ck_assert_uint_eq(ns->n[0].bad, 2);
        needles_reset(ns);
        match(ns, first, buf, 4096 + 64, 4096, &half, NULL, &(bool){ false });
        ck_assert_uint_eq(ns->n[0].bad, UNDER_ASAN ? 0 : 2); /* partly unlocked */
        needles_reset(ns);
        ns->n[0].rule = RULE_NEVER;
        match(ns, first, buf, 4096 + 64, 4096, &locked, NULL, &(bool){ false });
        ck_assert_uint_eq(ns->n[0].bad, 2);
        needles_reset(ns);
        match(ns, first, buf, 4096 + 64, 4096, NULL, NULL, &(bool){ false });
        ck_assert_uint_eq(ns->n[0].bad, 2);
        free(ns);
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/* dkmd.                                                                                     */

static char gate_script[160], gate_fifo[160];

static void bus_up(void) {
        char groups_dir[160];

        snprintf(core_dir, sizeof(core_dir), "%s/cores", TW.dir);
        ck_assert_int_eq(mkdir(core_dir, 0755), 0);
        ck_assert_int_eq(chmod(core_dir, 01777), 0); /* member processes dump here too */
        {
                FILE *f;

                /* Run by the kernel as root: DIR PID. The rename says the core is complete. */
                snprintf(core_catcher, sizeof(core_catcher), "%s/core-catcher", TW.dir);
                f = fopen(core_catcher, "we");
                ck_assert_ptr_nonnull(f);
                fputs("#!/bin/sh\ncat > \"$1/core.$2.part\" && mv \"$1/core.$2.part\" \"$1/core.$2\"\n", f);
                ck_assert_int_eq(fclose(f), 0);
                ck_assert_int_eq(chmod(core_catcher, 0755), 0);
        }
        /* dkmd reads drop-ins from the world's directory only, never the host's. */
        snprintf(groups_dir, sizeof(groups_dir), "%s/groups.d", TW.dir);
        ck_assert_int_eq(mkdir(groups_dir, 0755), 0);
        ck_assert_int_eq(setenv("DKM_GROUPS_DIRS", groups_dir, 1), 0);
        test_bus_start();
}

/* dkmd runs the helper through this script: while the fifo exists, the next helper waits for a
 * line on it, with dkmd blocked in loader_run_helper() holding the manifest. */
static void gate_install(void) {
        FILE *f;

        snprintf(gate_script, sizeof(gate_script), "%s/gated-helper", TW.dir);
        snprintf(gate_fifo, sizeof(gate_fifo), "%s/gate", TW.dir);
        f = fopen(gate_script, "we");
        ck_assert_ptr_nonnull(f);
        fprintf(f, "#!/bin/sh\nif [ -p '%s' ]; then read -r line < '%s'; fi\nexec '%s' \"$@\"\n", gate_fifo, gate_fifo,
                TW.helper);
        ck_assert_int_eq(fclose(f), 0);
        ck_assert_int_eq(chmod(gate_script, 0755), 0);
}

static void dkmd_start(void) {
        /* Inherited by dkmd; its own setrlimit must be what brings it to 0. */
        core_unlimited();
        gate_install();
        ck_assert_int_eq(setenv("DKM_KEYRING_HELPER", gate_script, 1), 0);
        test_dkmd_start(NULL);
        ck_assert_int_eq(setenv("DKM_KEYRING_HELPER", TW.helper, 1), 0);
}

static int dkmd_reap(pid_t pid) {
        ck_assert_int_eq(pid, test_dkmd_pid());
        return test_dkmd_stop(true); /* already a zombie: SIGKILL does nothing, waitpid reaps */
}

static char *group_path(sd_bus *bus, const char *name) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *path;

        if (sd_bus_call_method(bus, SVC, MGR_PATH, MGR_IFACE, "GetGroup", NULL, &reply, "s", name) < 0)
                return NULL;
        ck_assert_int_ge(sd_bus_message_read(reply, "o", &path), 0);
        return strdup(path);
}

/* d1 has one approval level (appr1), so the person can be granted access. */
static char *group_ensure(sd_bus *bus, const char *tag) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        const char *name = test_key_group(tag), *path;
        char *p = group_path(bus, name);

        if (p)
                return p;
        ck_assert_int_ge(sd_bus_message_new_method_call(bus, &m, SVC, MGR_PATH, MGR_IFACE, "CreateGroup"), 0);
        ck_assert_int_ge(sd_bus_message_append(m, "su", name, (uint32_t) TW.gid), 0);
        ck_assert_int_ge(sd_bus_message_open_container(m, 'a', "{sv}"), 0);
        if (strcmp(tag, "d1") == 0) {
                ck_assert_int_ge(sd_bus_message_append(m, "{sv}", "ApprovalGroups", "as", 1, TW.appr1), 0);
                ck_assert_int_ge(sd_bus_message_append(m, "{sv}", "MaxGrantUSec", "t", (uint64_t) 60 * USEC), 0);
        }
        ck_assert_int_ge(sd_bus_message_close_container(m), 0);
        ck_assert_msg(sd_bus_call(bus, m, 0, &e, &reply) >= 0, "CreateGroup %s: %s", name, e.message ?: "");
        ck_assert_int_ge(sd_bus_message_read(reply, "o", &path), 0);
        return strdup(path);
}

static uint32_t rollover(sd_bus *bus, const char *path) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        uint32_t n = 0;

        ck_assert_msg(sd_bus_call_method(bus, SVC, path, GROUP_IFACE, "Rollover", &e, &reply, NULL) >= 0,
                      "Rollover: %s", e.message ?: "");
        ck_assert_int_ge(sd_bus_message_read(reply, "u", &n), 0);
        return n;
}

/* One call as c, in a child that takes c's credentials; the reply's object path if any. */
static int call_as(const TestCreds *c, char *ret_path, size_t size, const char *path, const char *iface,
                   const char *method, const char *types, ...) {
        char *shared = test_shared_new(256 + sizeof(int));
        int r;
        pid_t pid;

        fflush(NULL);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                sd_bus_message *reply = NULL;
                sd_bus *bus = NULL;
                const char *o;
                va_list ap;

                test_become(c);
                if (sd_bus_open_system(&bus) < 0)
                        _exit(80);
                va_start(ap, types);
                r = sd_bus_call_methodv(bus, SVC, path, iface, method, NULL, &reply, types, ap);
                va_end(ap);
                memcpy(shared + 256, &r, sizeof(r));
                if (r >= 0 && strcmp(sd_bus_message_get_signature(reply, true) ?: "", "o") == 0 &&
                    sd_bus_message_read(reply, "o", &o) > 0)
                        snprintf(shared, 256, "%s", o);
                _exit(0);
        }
        ck_assert_int_eq(test_wait(pid), 0);
        memcpy(&r, shared + 256, sizeof(r));
        if (ret_path)
                snprintf(ret_path, size, "%s", shared);
        return r;
}

/* In a root child, so that the test process never holds a key: the store's root key, each
 * group's KEK and generation keys, the file protector's key, the audit log's signing seed. */
static void collect_store(void *userdata) {
        Needles *ns = userdata;
        _cleanup_store_ Store *s = NULL;
        const char *const tags[] = { "d1", "d2" };
        char path[512];

        ns->count = 0;
        ck_assert_int_eq(store_open(TW.state_dir, &s), 0);
        ck_assert_int_eq(store_unlock(s, NULL), 0);
        needle_add_key(ns, KIND_ROOT, NULL, 0, s->root_key);
        for (size_t t = 0; t < ELEMENTSOF(tags); t++) {
                _cleanup_store_group_ StoreGroup *g = NULL;
                _cleanup_secret_ Secret *kek = NULL;

                ck_assert_int_eq(store_group_load(s, test_key_group(tags[t]), &g), 0);
                ck_assert_int_eq(store_keys_unwrap_kek(s->root_key, g, &kek), 0);
                needle_add_key(ns, KIND_KEK, tags[t], 0, kek);
                for (size_t i = 0; i < g->n_generations; i++) {
                        _cleanup_secret_ Secret *key = NULL;

                        if (!g->generations[i].has_key)
                                continue;
                        ck_assert_int_eq(store_generation_unwrap(s, g, g->generations[i].number, &key), 0);
                        needle_add_key(ns, KIND_GENERATION, tags[t], g->generations[i].number, key);
                }
        }
        for (int f = 0; f < 2; f++) {
                _cleanup_secret_ Secret *key = NULL;
                _cleanup_close_ int fd = -EBADF;

                snprintf(path, sizeof(path), "%s/%s", TW.state_dir,
                         f == 0 ? "protectors/local.key" : "audit/audit.key");
                fd = open(path, O_RDONLY | O_CLOEXEC);
                ck_assert_msg(fd >= 0, "%s: %m", path);
                ck_assert_int_eq(secret_new(32, &key), 0);
                ck_assert_int_eq(loop_read(fd, key->data, key->size), 32);
                needle_add_key(ns, f == 0 ? KIND_FILE_PROTECTOR : KIND_AUDIT_SEED, NULL, 0, key);
        }
}

/* What may stay in dkmd: the unlocked root key and the audit signing key, which it holds for
 * good, locked; generation keys of groups in in_flight (whose manifest it is handing to the
 * helper right now), locked; nothing else. */
static void dkmd_rules(Needles *ns, const char *in_flight) {
        for (size_t i = 0; i < ns->count; i++) {
                Needle *n = &ns->n[i];

                n->rule = n->kind == KIND_ROOT || n->kind == KIND_AUDIT_SEED ? RULE_LOCKED : RULE_NEVER;
                if (in_flight && strcmp(n->tag, in_flight) == 0 &&
                    (n->kind == KIND_GENERATION || n->kind == KIND_GENERATION_HEX))
                        n->rule = RULE_LOCKED;
        }
}

typedef struct KernelCheck {
        Needles needles;
        int32_t serial[16];
        uint32_t generation[16];
        size_t n;
        int equal;
} KernelCheck;

/* As a member, the generation keys straight from the kernel: they are the store's. */
static void member_reads_kernel(void *userdata) {
        KernelCheck *kc = userdata;
        uint8_t key[32];

        for (size_t i = 0; i < kc->n; i++) {
                const Needle *n = needle_find(&kc->needles, KIND_GENERATION, "d1", kc->generation[i]);

                ck_assert_ptr_nonnull(n);
                ck_assert_int_eq(keyctl_read(kc->serial[i], (char *) key, sizeof(key)), 32);
                if (needle_at(n, key))
                        kc->equal++;
                secret_wipe(key, sizeof(key));
        }
}

typedef struct Rolling {
        uint32_t number;
        int r;
} Rolling;

START_TEST(test_dkmd) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_free_ char *p1 = NULL, *p2 = NULL;
        KernelCheck *kc = test_shared_new(sizeof(KernelCheck));
        Rolling *rolling = test_shared_new(sizeof(Rolling));
        TestCreds person = test_creds_person(), a1 = test_creds_approver1(), member = test_creds_member();
        char req[256], prefix[64];
        Needles *ns = &kc->needles;
        ScanStats st;
        pid_t dkmd, roller;
        int wfd = -1;

        dkmd_start();
        dkmd = test_dkmd_pid();
        bus = test_bus_open();
        p1 = group_ensure(bus, "d1");
        p2 = group_ensure(bus, "d2");
        for (int i = 0; i < 3; i++)
                (void) rollover(bus, p1);
        for (int i = 0; i < 2; i++)
                (void) rollover(bus, p2);

        /* Break-glass: dkmd unwraps d1's keys once more, for the grant's manifest. */
        ck_assert_int_ge(call_as(&person, req, sizeof(req), MGR_PATH, MGR_IFACE, "RequestAccess", "sst",
                                 test_key_group("d1"), "memory test", (uint64_t) 30 * USEC),
                         0);
        ck_assert_int_ge(call_as(&a1, NULL, 0, req, REQUEST_IFACE, "Approve", NULL), 0);
        snprintf(prefix, sizeof(prefix), "grant %u keyring ", (unsigned) TW.person_uid);
        ck_assert_int_gt(test_helper_status_value(test_key_group("d1"), prefix), 0);

        test_wait_ok(test_fork_as(NULL, collect_store, ns));
        ck_assert_uint_ge(ns->count, 1 + 2 * 1 + (4 + 3) * 2 + 2);

        /* The needles are the keys the kernel serves to members. */
        for (uint32_t g = 1; g <= 4; g++) {
                snprintf(prefix, sizeof(prefix), "generation %u ", (unsigned) g);
                long serial = test_helper_status_value(test_key_group("d1"), prefix);
                if (serial > 0) {
                        kc->serial[kc->n] = (int32_t) serial;
                        kc->generation[kc->n++] = g;
                }
        }
        ck_assert_uint_ge(kc->n, 3); /* active and the hot window of 2 */
        test_wait_ok(test_fork_as(&member, member_reads_kernel, kc));
        ck_assert_uint_eq((size_t) kc->equal, kc->n);

        /* At rest, after creates, rollovers and a grant. */
        dkmd_rules(ns, NULL);
        scan_pid(dkmd, ns, &st);
        print_stats(dkmd, "dkmd", "at rest", &st, ns->count);
        needles_check(ns, "dkmd", "at rest");
        ck_assert_msg(needle_find(ns, KIND_ROOT, NULL, 0)->hits >= 1, "the scanner did not find the root key");
        ck_assert_msg(needle_find(ns, KIND_AUDIT_SEED, NULL, 0)->hits >= 1, "the scanner did not find the audit key");

        /* In flight: a rollover of d2 stopped while dkmd hands the manifest to the helper. */
        ck_assert_int_eq(mkfifo(gate_fifo, 0600), 0);
        fflush(NULL);
        roller = fork();
        ck_assert_int_ge(roller, 0);
        if (roller == 0) {
                sd_bus *b = NULL;
                sd_bus_message *reply = NULL;

                rolling->r = sd_bus_open_system(&b);
                if (rolling->r >= 0)
                        rolling->r = sd_bus_call_method(b, SVC, p2, GROUP_IFACE, "Rollover", NULL, &reply, NULL);
                if (rolling->r >= 0)
                        (void) sd_bus_message_read(reply, "u", &rolling->number);
                _exit(0);
        }
        /* A writer can open the fifo once the gated helper has it open for reading. */
        for (int i = 0; i < 1000 && wfd < 0; i++) {
                wfd = open(gate_fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
                if (wfd < 0)
                        nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);
        }
        /* No later helper may wait (nobody would open the fifo for it); this one goes on at our
         * line, or at EOF if this test dies first. */
        ck_assert_int_eq(unlink(gate_fifo), 0);
        ck_assert_msg(wfd >= 0, "dkmd never ran the helper");
        test_wait_ok(test_fork_as(NULL, collect_store, ns)); /* now with d2's new generation */
        dkmd_rules(ns, "d2");
        scan_pid(dkmd, ns, &st);
        ck_assert_int_eq(write(wfd, "\n", 1), 1);
        close(wfd);
        print_stats(dkmd, "dkmd", "during a rollover's helper run", &st, ns->count);
        needles_check(ns, "dkmd", "during a rollover's helper run");
        /* The scanner caught the moment: the manifest's newest key, raw and as hex. */
        {
                uint32_t newest = 0;

                for (size_t i = 0; i < ns->count; i++)
                        if (ns->n[i].kind == KIND_GENERATION && strcmp(ns->n[i].tag, "d2") == 0)
                                newest = MAX(newest, ns->n[i].generation);
                ck_assert_uint_eq(newest, 4);
                ck_assert_uint_ge(needle_find(ns, KIND_GENERATION, "d2", newest)->hits, 1);
                ck_assert_uint_ge(needle_find(ns, KIND_GENERATION_HEX, "d2", newest)->hits, 1);
        }
        test_wait_ok(roller);
        ck_assert_msg(rolling->r >= 0, "Rollover: %s", strerror(-rolling->r));
        ck_assert_uint_eq(rolling->number, 4);

        /* And at rest again: the rollover left nothing behind. */
        dkmd_rules(ns, NULL);
        scan_pid(dkmd, ns, &st);
        print_stats(dkmd, "dkmd", "after the rollover", &st, ns->count);
        needles_check(ns, "dkmd", "after the rollover");
}
END_TEST

START_TEST(test_dkmd_core) {
        static const CoreCase cases[] = { CORE_FILE, CORE_PIPE };
        _cleanup_free_ char *p1 = NULL;
        uint32_t n;

        core_control(NULL);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;

                dkmd_start(); /* with RLIMIT_CORE unlimited */
                bus = test_bus_open();
                free(p1);
                p1 = group_ensure(bus, "d1"); /* dkmd has unwrapped keys: it loaded the groups at start */
                sd_bus_flush_close_unref(TAKE_PTR(bus));
                ck_assert_msg(proc_limit_core(test_dkmd_pid()) == 0, "dkmd did not set RLIMIT_CORE to 0");
                core_case(test_dkmd_pid(), cases[i], dkmd_reap, "dkmd", NULL, NULL);
        }

        /* Restarted after the crashes, dkmd works. */
        {
                _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;

                dkmd_start();
                bus = test_bus_open();
                n = rollover(bus, p1);
                ck_assert_int_eq(test_helper_status_value(test_key_group("d1"), "active "), (long) n);
        }
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/* The helper, holding a manifest it has read: before its end, and parsed.                   */

/* In a root child: three keys for the never-loaded group "hlp", their manifest written to fd. */
typedef struct Feed {
        Needles needles;
        int fd;
} Feed;

static void feed_manifest(void *userdata) {
        Feed *f = userdata;
        _cleanup_keyring_manifest_ KeyringManifest *m = NULL;
        _cleanup_secret_ Secret *text = NULL;
        uint8_t id[KEYRING_GROUP_ID_BYTES];

        f->needles.count = 0;
        crypt_random(id, sizeof(id));
        ck_assert_int_eq(keyring_manifest_new(test_key_group("hlp"), id, TW.gid, CRYPT_ALG_XCHACHA20_POLY1305, &m), 0);
        ck_assert_int_eq(keyring_manifest_add_member(m, TW.member_uid), 0);
        for (uint32_t g = 1; g <= 3; g++) {
                _cleanup_secret_ Secret *key = NULL;

                ck_assert_int_eq(crypt_keygen(&key), 0);
                needle_add_key(&f->needles, KIND_GENERATION, "hlp", g, key);
                ck_assert_int_eq(
                        keyring_manifest_add_generation(m, g, g == 3 ? KEYRING_GEN_ACTIVE : KEYRING_GEN_ARCHIVED, key),
                        0);
        }
        m->active = 3;
        ck_assert_int_eq(keyring_manifest_format(m, &text), 0);
        ck_assert_int_eq(loop_write(f->fd, text->data, text->size), 0);
}

/* Two moments: before the end of its input the helper has parsed nothing, and the manifest's
 * text (the keys' hex) is all it holds, in its Secret; after it, the text is parsed into one
 * Secret per key and wiped, and the helper waits for the runtime directory's lock, which the
 * test holds, before it touches the kernel. */
typedef enum HelperMoment {
        HELPER_READING,
        HELPER_PARSED,
} HelperMoment;

static const char *helper_moment_name(HelperMoment h) {
        return h == HELPER_READING ? "blocked reading its manifest" : "manifest parsed, waiting for the lock";
}

static void helper_rules(Needles *ns, HelperMoment h) {
        for (size_t i = 0; i < ns->count; i++)
                ns->n[i].rule =
                        (ns->n[i].kind == KIND_GENERATION_HEX) == (h == HELPER_READING) ? RULE_LOCKED : RULE_NEVER;
}

/* The lock every helper takes before it changes anything (keyring_new()). */
static int runtime_lock(void) {
        int fd;

        ck_assert(mkdir(TW.runtime_dir, 0755) == 0 || errno == EEXIST);
        fd = open(TW.runtime_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(flock(fd, LOCK_EX), 0);
        return fd;
}

static bool state_sleeping(pid_t pid) {
        char path[64], buf[512], *p;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
        ck_assert_int_eq(read_line(path, buf, sizeof(buf)), 0);
        p = strrchr(buf, ')');
        return p && p[1] == ' ' && p[2] == 'S';
}

/* Is pid waiting for a flock (a "->" line of /proc/locks)? */
static bool waits_for_flock(pid_t pid) {
        char line[256];
        bool found = false;
        FILE *f = fopen("/proc/locks", "re");
        int who;

        ck_assert_ptr_nonnull(f);
        while (fgets(line, sizeof(line), f))
                if (strstr(line, " -> FLOCK ") && sscanf(strstr(line, "WRITE") ?: "", "WRITE %d", &who) == 1 &&
                    who == pid)
                        found = true;
        fclose(f);
        return found;
}

/* Starts "dkm-keyring-helper load" on a pipe, feeds it a whole manifest, and waits for moment
 * h. HELPER_READING: the write end stays open (returned), the helper has read every byte and
 * sleeps waiting for more. HELPER_PARSED: the write end is closed; the caller holds the lock. */
static pid_t helper_blocked(Feed *f, HelperMoment h, int *ret_wfd) {
        int pipefd[2], null, avail = 1;
        bool there = false;
        pid_t pid;

        ck_assert_int_eq(pipe2(pipefd, O_CLOEXEC), 0);
        fflush(NULL);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                null = open("/dev/null", O_WRONLY | O_CLOEXEC);
                if (null < 0 || dup2(pipefd[0], STDIN_FILENO) < 0 || dup2(null, STDOUT_FILENO) < 0)
                        _exit(126);
                core_unlimited(); /* the helper's own setrlimit must bring it to 0 */
                execv(TW.helper, (char *const[]){ (char *) TW.helper, (char *) "load", NULL });
                _exit(127);
        }
        close(pipefd[0]);
        f->fd = pipefd[1];
        test_wait_ok(test_fork_as(NULL, feed_manifest, f));
        if (h == HELPER_PARSED) {
                close(pipefd[1]);
                pipefd[1] = -EBADF;
        }
        for (int i = 0; i < 1000 && !there; i++) {
                if (h == HELPER_READING) {
                        ck_assert_int_eq(ioctl(pipefd[1], FIONREAD, &avail), 0);
                        there = avail == 0 && state_sleeping(pid);
                } else
                        there = waits_for_flock(pid);
                if (!there)
                        nanosleep(&(struct timespec){ 0, 5 * 1000 * 1000 }, NULL);
        }
        ck_assert_msg(there, "the helper did not get to the moment: %s", helper_moment_name(h));
        *ret_wfd = pipefd[1];
        return pid;
}

static int child_reap(pid_t pid) {
        int status;

        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        return status;
}

START_TEST(test_helper) {
        static const CoreCase cases[] = { CORE_FILE, CORE_PIPE };
        Feed *f = test_shared_new(sizeof(Feed));
        int wfd, lock = runtime_lock();
        ScanStats st;
        pid_t pid;

        for (HelperMoment h = HELPER_READING; h <= HELPER_PARSED; h++) {
                pid = helper_blocked(f, h, &wfd);
                helper_rules(&f->needles, h);
                scan_pid(pid, &f->needles, &st);
                print_stats(pid, "helper", helper_moment_name(h), &st, f->needles.count);
                needles_check(&f->needles, "helper", helper_moment_name(h));
                /* The scanner found what the helper holds at that moment. */
                for (uint32_t g = 1; g <= 3; g++)
                        ck_assert_uint_ge(needle_find(&f->needles,
                                                      h == HELPER_READING ? KIND_GENERATION_HEX : KIND_GENERATION,
                                                      "hlp", g)
                                                  ->hits,
                                          1);
                ck_assert_uint_eq(proc_limit_core(pid), 0);
                ck_assert_int_eq(kill(pid, SIGKILL), 0);
                (void) child_reap(pid);
                safe_close(wfd);
        }

        core_control(NULL);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                pid = helper_blocked(f, HELPER_PARSED, &wfd); /* holding every key */
                core_case(pid, cases[i], child_reap, "helper", NULL, NULL);
        }
        close(lock);
        /* Killed before it took the lock, it loaded nothing. */
        ck_assert_int_eq(test_helper_status_value(test_key_group("hlp"), "keyring "), -1);
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/* libdkm: a member process with two keys cached.                                            */

typedef struct LibShared {
        Needles needles;
        uint8_t id[KEYRING_GROUP_ID_BYTES];
        uint8_t ct1[256];
        size_t ct1_size;
        volatile int step, go;
        int dumpable_before, dumpable_after;
        bool redumpable; /* after caching, the member makes itself dumpable again */
        bool fork_child; /* after caching, the member forks a child that sleeps */
        pid_t forked, test_pid;
        uint32_t gen_second;
        int r;
        char canary[64];
} LibShared;

/* In a root child: load "lib" with generations 1..n from the needles (made the first time). */
static void lib_load(LibShared *sh, uint32_t n) {
        _cleanup_keyring_manifest_ KeyringManifest *m = NULL;
        _cleanup_secret_ Secret *text = NULL;
        TestRun r;

        if (sh->needles.count == 0) {
                crypt_random(sh->id, sizeof(sh->id));
                for (uint32_t g = 1; g <= 2; g++) {
                        _cleanup_secret_ Secret *key = NULL;

                        ck_assert_int_eq(crypt_keygen(&key), 0);
                        needle_add(&sh->needles, KIND_GENERATION, "lib", g, key->data, key->size);
                }
        }
        ck_assert_int_eq(keyring_manifest_new(test_key_group("lib"), sh->id, TW.gid, CRYPT_ALG_XCHACHA20_POLY1305, &m),
                         0);
        ck_assert_int_eq(keyring_manifest_add_member(m, TW.member_uid), 0);
        for (uint32_t g = 1; g <= n; g++) {
                _cleanup_secret_ Secret *key = needle_unmask(needle_find(&sh->needles, KIND_GENERATION, "lib", g));

                ck_assert_int_eq(
                        keyring_manifest_add_generation(m, g, g == n ? KEYRING_GEN_ACTIVE : KEYRING_GEN_ARCHIVED, key),
                        0);
        }
        m->active = n;
        ck_assert_int_eq(keyring_manifest_format(m, &text), 0);
        test_run(&r, text->data, text->size, NULL, (char *const[]){ (char *) TW.helper, (char *) "load", NULL });
        ck_assert_msg(r.status == 0, "helper load: %s", r.err);
        test_run_free(&r);
}

static void lib_load1(void *userdata) {
        lib_load(userdata, 1);
}

static void lib_load2(void *userdata) {
        lib_load(userdata, 2);
}

static char *volatile canary; /* in the heap, so in any core of the process */

static void wait_go(LibShared *sh) {
        for (int i = 0; i < 2000 && !sh->go; i++)
                nanosleep(&(struct timespec){ 0, 5 * 1000 * 1000 }, NULL);
}

/* The member: first run (go == 0 at start) encrypts under generation 1, waits for the parent
 * to roll over, then encrypts under 2 and decrypts the generation-1 ciphertext; later runs do
 * the last two only. Both keys are then cached; it sleeps until killed. */
static void lib_member(void *userdata) {
        LibShared *sh = userdata;
        const char *g = test_key_group("lib");
        uint8_t ct[256], pt[64];
        size_t n;
        dkm_info_t info;

        /* Never outlive the test (its credentials changed: set again after test_become()). */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != sh->test_pid)
                _exit(95);
        ck_assert_int_eq(prctl(PR_SET_DUMPABLE, 1), 0); /* the uid change cleared it */
        sh->dumpable_before = prctl(PR_GET_DUMPABLE);
        core_unlimited();
        canary = strdup(sh->canary);
        ck_assert_ptr_nonnull(canary);
        if (sh->ct1_size == 0) {
                ck_assert_int_eq(dkm_encrypt(g, NULL, 0, "one", 3, sh->ct1, sizeof(sh->ct1), &sh->ct1_size), 0);
                sh->step = 1;
                wait_go(sh);
        }
        sh->r = dkm_encrypt(g, NULL, 0, "two", 3, ct, sizeof(ct), &n);
        ck_assert_int_eq(sh->r, 0);
        ck_assert_int_eq(dkm_ciphertext_info(ct, n, &info), 0);
        sh->gen_second = info.generation;
        ck_assert_int_eq(dkm_decrypt(sh->ct1, sh->ct1_size, NULL, 0, pt, sizeof(pt), &n), 0);
        ck_assert(n == 3 && memcmp(pt, "one", 3) == 0);
        sh->dumpable_after = prctl(PR_GET_DUMPABLE);
        if (sh->redumpable)
                ck_assert_int_eq(prctl(PR_SET_DUMPABLE, 1), 0);
        if (sh->fork_child) {
                pid_t child = fork();

                ck_assert_int_ge(child, 0);
                if (child == 0) {
                        /* Outlives its parent on purpose; not the test (EPERM: alive, not ours). */
                        (void) prctl(PR_SET_PDEATHSIG, 0);
                        while (kill(sh->test_pid, 0) == 0 || errno == EPERM)
                                nanosleep(&(struct timespec){ 0, 100 * 1000 * 1000 }, NULL);
                        _exit(0);
                }
                sh->forked = child;
        }
        sh->step = 2;
        for (;;)
                pause();
}

static pid_t lib_member_ready(LibShared *sh) {
        TestCreds member = test_creds_member();
        pid_t pid;

        sh->step = sh->go = 0;
        sh->test_pid = getpid();
        pid = test_fork_as(&member, lib_member, sh);
        for (int i = 0; i < 2000 && sh->step == 0; i++)
                nanosleep(&(struct timespec){ 0, 5 * 1000 * 1000 }, NULL);
        if (sh->step == 1) { /* the first run: roll over under it */
                test_wait_ok(test_fork_as(NULL, lib_load2, sh));
                sh->go = 1;
        }
        for (int i = 0; i < 2000 && sh->step != 2; i++)
                nanosleep(&(struct timespec){ 0, 5 * 1000 * 1000 }, NULL);
        ck_assert_msg(sh->step == 2, "the member process did not get its keys");
        ck_assert_int_eq(sh->dumpable_before, 1);
        ck_assert_int_eq(sh->dumpable_after, 0);
        ck_assert_uint_eq(sh->gen_second, 2);
        return pid;
}

START_TEST(test_libdkm) {
        static const CoreCase cases[] = { CORE_FILE, CORE_PIPE, CORE_PIPE_DUMPABLE };
        LibShared *sh = test_shared_new(sizeof(LibShared));
        TestCreds member = test_creds_member();
        char where[2][200];
        ScanStats st;
        pid_t pid;

        snprintf(sh->canary, sizeof(sh->canary), "dkmt-canary-%d-%ld", (int) getpid(), (long) time(NULL));
        test_wait_ok(test_fork_as(NULL, lib_load1, sh));
        pid = lib_member_ready(sh);
        for (size_t i = 0; i < sh->needles.count; i++)
                sh->needles.n[i].rule = RULE_LOCKED;
        scan_pid(pid, &sh->needles, &st);
        print_stats(pid, "libdkm member", "with 2 keys cached", &st, sh->needles.count);
        needles_check(&sh->needles, "libdkm member", "with 2 keys cached");
        /* Each key once, both in the same page of key slots. */
        for (uint32_t g = 1; g <= 2; g++) {
                const Needle *n = needle_find(&sh->needles, KIND_GENERATION, "lib", g);

                ck_assert_msg(n->hits == 1, "generation %u found %zu times", (unsigned) g, n->hits);
                snprintf(where[g - 1], sizeof(where[0]), "%s", n->ok_where);
        }
        ck_assert_str_eq(where[0], where[1]);
        ck_assert_uint_eq(st.key_mappings, 1);
        ck_assert_uint_eq(st.key_rss_kb, (unsigned long) sysconf(_SC_PAGESIZE) / 1024);
        ck_assert_int_eq(kill(pid, SIGKILL), 0);
        (void) child_reap(pid);

        core_control(&member);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                sh->redumpable = cases[i] == CORE_PIPE_DUMPABLE;
                pid = lib_member_ready(sh);
                core_case(pid, cases[i], child_reap, "libdkm member", &sh->needles, sh->canary);
        }
        /* libdkm sets no RLIMIT_CORE (the member's is unlimited here): non-dumpability alone
         * stopped both dumps, and MADV_DONTDUMP alone kept the keys out of the third. */

        /* A child the member forks keeps the cache (tests/test-libdkm.c test_cache), with the
         * non-dumpability and MADV_DONTDUMP; fork(2) does not pass on mlock, so libdkm's atfork
         * child handler locks the slot pages again (keyslots_relock()): the child's copy, once
         * the parent is gone, must still be locked. */
        ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0); /* the orphan comes to us */
        sh->redumpable = false;
        sh->fork_child = true;
        pid = lib_member_ready(sh);
        ck_assert_int_gt(sh->forked, 0);
        ck_assert_int_eq(kill(pid, SIGKILL), 0);
        (void) child_reap(pid);
        scan_pid(sh->forked, &sh->needles, &st);
        print_stats(sh->forked, "libdkm member's forked child", "after its parent died", &st, sh->needles.count);
        for (size_t i = 0; i < sh->needles.count; i++) {
                const Needle *n = &sh->needles.n[i];
                char name[96];

                needle_name(n, name, sizeof(name));
                fprintf(stderr, "memory: libdkm member's forked child: %s x%zu, %s %s\n", name, n->hits,
                        n->bad > 0 ? "NOT LOCKED, in" : "in", n->bad > 0 ? n->bad_where : n->ok_where);
        }
        needles_check(&sh->needles, "libdkm member's forked child", "after its parent died");
        core_case(sh->forked, CORE_PIPE, child_reap, "libdkm member's forked child", NULL, NULL);
}
END_TEST

static Suite *make_suite(bool integration) {
        Suite *s = suite_create("memory");
        TCase *tc = tcase_create("scanner");

        tcase_add_test(tc, test_scanner);
        suite_add_tcase(s, tc);
        if (integration) {
                tc = tcase_create("processes");
                tcase_set_timeout(tc, 120);
                tcase_add_unchecked_fixture(tc, bus_up, test_bus_stop);
                tcase_add_test(tc, test_dkmd);
                tcase_add_test(tc, test_dkmd_core);
                tcase_add_test(tc, test_helper);
                tcase_add_test(tc, test_libdkm);
                suite_add_tcase(s, tc);
        }
        return s;
}

/* ---------------------------------------------------------------------------------------- */
/* The guardian: outlives the world and puts core_pattern back, whatever happened.          */

static volatile pid_t world_pid;

static void guardian_forward(int sig) {
        if (world_pid > 0)
                (void) kill(world_pid, sig);
}

int main(void) {
        static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
        struct sigaction sa = { .sa_handler = guardian_forward };
        char suid[16];
        int status;

        test_world_want_person = true;
        test_world_want_approvers = true;
        if (geteuid() != 0)
                return test_world_main(make_suite, key_group_tags);

        if (read_line(CORE_PATTERN, saved_pattern, sizeof(saved_pattern)) < 0 || !saved_pattern[0] ||
            read_line(SUID_DUMPABLE, suid, sizeof(suid)) < 0) {
                fprintf(stderr, "cannot read %s and %s\n", CORE_PATTERN, SUID_DUMPABLE);
                return EXIT_FAILURE;
        }
        fprintf(stderr, "memory: kernel.core_pattern=%s (restored at exit), fs.suid_dumpable=%s, SwapTotal %lu kB\n",
                saved_pattern, suid, file_kb("/proc/meminfo", "SwapTotal:"));
        fflush(NULL);
        world_pid = fork();
        if (world_pid < 0)
                return EXIT_FAILURE;
        if (world_pid == 0) {
                /* A test process that fails while the settings are changed puts them back. */
                atexit(pattern_restore_if_armed);
                exit(test_world_main(make_suite, key_group_tags));
        }
        for (size_t i = 0; i < ELEMENTSOF(sigs); i++)
                (void) sigaction(sigs[i], &sa, NULL);
        while (waitpid(world_pid, &status, 0) < 0)
                if (errno != EINTR) {
                        status = EXIT_FAILURE << 8;
                        break;
                }
        pattern_restore();
        if (WIFSIGNALED(status)) {
                signal(WTERMSIG(status), SIG_DFL);
                raise(WTERMSIG(status));
        }
        return WIFEXITED(status) ? WEXITSTATUS(status) : EXIT_FAILURE;
}
