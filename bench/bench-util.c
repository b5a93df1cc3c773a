/* SPDX-License-Identifier: MIT */
/* dkm-bench's plumbing: statistics, pinning, children as the member, programs, the result table. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <math.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <keyutils.h>

#include "bench.h"

BenchOptions opt;

uint64_t now_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000U + (uint64_t) ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;

        return x < y ? -1 : x > y;
}

Stat stat_of(double *v, unsigned n) {
        Stat s = { .n = n };

        if (n == 0)
                return (Stat){ NAN, NAN, NAN, 0 };
        qsort(v, n, sizeof(*v), cmp_double);
        s.med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
        s.p10 = v[(n - 1) / 10];
        s.p90 = v[(n - 1) - (n - 1) / 10];
        return s;
}

void pin_cpu(int cpu) {
        cpu_set_t set;

        if (cpu < 0)
                return;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        (void) sched_setaffinity(0, sizeof(set), &set);
}

_Noreturn void die(const char *fmt, ...) {
        va_list ap;

        fprintf(stderr, "dkm-bench: ");
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        exit(1);
}

void *shared_new(size_t size) {
        void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

        check(p != MAP_FAILED);
        return p;
}

void become_member(void) {
        struct passwd *pw = getpwuid(opt.uid);
        gid_t groups[2];

        if (geteuid() == opt.uid)
                return; /* a child of a member process: already is */
        check(pw);
        groups[0] = pw->pw_gid;
        groups[1] = opt.gid;
        check(setgroups(2, groups) == 0);
        check(setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) == 0);
        check(setresuid(opt.uid, opt.uid, opt.uid) == 0);
        /* A session keyring of its own: it possesses nothing root's session had. */
        check(keyctl_join_session_keyring(NULL) >= 0);
}

static void wait_ok(pid_t pid, const char *what) {
        int status;

        check(waitpid(pid, &status, 0) == pid);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                die("%s failed (%s %d)", what, WIFEXITED(status) ? "exit status" : "signal",
                    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
}

void run_child(bool member, void (*fn)(void *userdata), void *userdata) {
        pid_t pid;

        fflush(NULL);
        pid = fork();
        check(pid >= 0);
        if (pid == 0) {
                if (member)
                        become_member();
                fn(userdata);
                fflush(NULL);
                _exit(0);
        }
        wait_ok(pid, "a benchmark child");
}

int run_program(bool member, const char *in_path, bool show, char *const argv[]) {
        int status;
        pid_t pid;

        fflush(NULL);
        pid = fork();
        check(pid >= 0);
        if (pid == 0) {
                int in = open(in_path ?: "/dev/null", O_RDONLY | O_CLOEXEC);
                int null = open("/dev/null", O_WRONLY | O_CLOEXEC);

                if (in < 0 || null < 0 || dup2(in, 0) < 0 || dup2(null, 1) < 0 || (!show && dup2(null, 2) < 0))
                        _exit(127);
                if (member)
                        become_member();
                execv(argv[0], argv);
                _exit(127);
        }
        check(waitpid(pid, &status, 0) == pid);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void measure_warm(const OpFn *fns, void *const *ctx, size_t n, unsigned rounds, unsigned batch, Stat *ret) {
        double *v = calloc(n * rounds, sizeof(double));

        check(v);
        for (size_t i = 0; i < n; i++)
                for (unsigned b = 0; b < batch / 10 + 1; b++) /* warm up: caches, branch predictors */
                        fns[i](ctx[i]);
        for (unsigned r = 0; r < rounds; r++)
                for (size_t i = 0; i < n; i++) {
                        uint64_t t = now_ns();

                        for (unsigned b = 0; b < batch; b++)
                                fns[i](ctx[i]);
                        v[i * rounds + r] = (double) (now_ns() - t) / batch / 1000.0;
                }
        for (size_t i = 0; i < n; i++)
                ret[i] = stat_of(v + i * rounds, rounds);
        free(v);
}

void measure_cold(const OpFn *fns, void *const *ctx, size_t n, unsigned samples, Stat *ret) {
        double *v = shared_new(n * samples * sizeof(double));

        for (unsigned s = 0; s < samples; s++)
                for (size_t i = 0; i < n; i++) {
                        pid_t pid;

                        fflush(NULL);
                        pid = fork();
                        check(pid >= 0);
                        if (pid == 0) {
                                uint64_t t = now_ns();

                                fns[i](ctx[i]);
                                v[i * samples + s] = (double) (now_ns() - t) / 1000.0;
                                _exit(0);
                        }
                        wait_ok(pid, "a cold-path child");
                }
        for (size_t i = 0; i < n; i++)
                ret[i] = stat_of(v + i * samples, samples);
        munmap(v, n * samples * sizeof(double));
}

/* The table. */

#define ROWS_MAX 128

typedef struct Row {
        bool section;
        char name[96];
        Stat s;
        char unit[16];
        char vs[64];
        double ratio;
        char target[48];
        Target met;
} Row;

static struct {
        unsigned n;
        Row rows[ROWS_MAX];
        unsigned n_notes;
        char notes[32][400];
} *table;

void results_init(void) {
        table = shared_new(sizeof(*table));
}

static Row *row_new(void) {
        check(table->n < ROWS_MAX);
        return &table->rows[table->n++];
}

void result_section(const char *title) {
        Row *r = row_new();

        r->section = true;
        snprintf(r->name, sizeof(r->name), "%s", title);
        fprintf(stderr, "dkm-bench: %s\n", title);
}

void result_add(const char *name, Stat s, const char *unit, const char *vs, double ratio, const char *target,
                Target met) {
        Row *r = row_new();

        snprintf(r->name, sizeof(r->name), "%s", name);
        r->s = s;
        snprintf(r->unit, sizeof(r->unit), "%s", unit);
        snprintf(r->vs, sizeof(r->vs), "%s", vs ?: "");
        r->ratio = vs ? ratio : NAN;
        snprintf(r->target, sizeof(r->target), "%s", target ?: "");
        r->met = met;
}

void result_note(const char *fmt, ...) {
        va_list ap;

        check(table->n_notes < 32);
        va_start(ap, fmt);
        vsnprintf(table->notes[table->n_notes++], sizeof(table->notes[0]), fmt, ap);
        va_end(ap);
}

double result_value(const char *name) {
        for (unsigned i = 0; i < table->n; i++)
                if (!table->rows[i].section && strcmp(table->rows[i].name, name) == 0)
                        return table->rows[i].s.med;
        return NAN;
}

static void fmt_num(char *buf, size_t size, double v) {
        if (isnan(v))
                snprintf(buf, size, "-");
        else if (v >= 100000)
                snprintf(buf, size, "%.0f", v);
        else if (v >= 100)
                snprintf(buf, size, "%.0f", v);
        else if (v >= 10)
                snprintf(buf, size, "%.1f", v);
        else
                snprintf(buf, size, "%.2f", v);
}

void results_print(void) {
        unsigned met = 0, missed = 0;

        printf("| benchmark | median | p10 .. p90 | unit | compared with | ratio | target |\n");
        printf("| --- | ---: | ---: | --- | --- | ---: | --- |\n");
        for (unsigned i = 0; i < table->n; i++) {
                const Row *r = &table->rows[i];
                char med[32], p10[32], p90[32], ratio[32];

                if (r->section) {
                        printf("| **%s** | | | | | | |\n", r->name);
                        continue;
                }
                fmt_num(med, sizeof(med), r->s.med);
                fmt_num(p10, sizeof(p10), r->s.p10);
                fmt_num(p90, sizeof(p90), r->s.p90);
                if (isnan(r->ratio))
                        snprintf(ratio, sizeof(ratio), "-");
                else
                        snprintf(ratio, sizeof(ratio), r->ratio >= 100 ? "%.0f×" : "%.2f×", r->ratio);
                printf("| %s | %s | %s .. %s | %s | %s | %s | %s%s |\n", r->name, med, p10, p90, r->unit,
                       r->vs[0] ? r->vs : "-", ratio, r->target,
                       r->met == TARGET_MET ? " **met**" : r->met == TARGET_MISSED ? " **MISSED**" : "");
                met += r->met == TARGET_MET;
                missed += r->met == TARGET_MISSED;
        }
        printf("\n");
        for (unsigned i = 0; i < table->n_notes; i++)
                printf("- %s\n", table->notes[i]);
        printf("\nTargets: %u met, %u missed%s.\n", met, missed,
               opt.smoke ? " (smoke run: counts too small for the numbers to mean anything)" : "");
}
