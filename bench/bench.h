/* SPDX-License-Identifier: MIT */
/* dkm-bench's shared pieces: options, timing and statistics, processes as the member, the result table. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* What scripts/bench.sh set up, and how hard to work. */
typedef struct BenchOptions {
        uid_t uid;          /* the service account: member of gid */
        gid_t gid;          /* the key groups' Unix group */
        const char *group;  /* the key group of parts 1-3, loaded */
        const char *state_dir;
        const char *work_dir; /* a directory the member may write */
        const char *dkm;      /* the dkm CLI */
        const char *store;    /* dkm-store */
        const char *setup;    /* dkm-bench-setup */
        /* Part 4: a second dkmd's start-up, on a bus and store of its own, for a second account. */
        const char *dkmd;
        const char *startup_bus;   /* address of a second private system-type bus */
        const char *startup_state; /* a second store (initialized, no groups) */
        gid_t startup_gid;         /* the Unix group of its key groups: another service account's */
        const char *request_key_conf; /* /etc/request-key.d/dkm-bench-PID.conf: written, then removed */
        bool smoke;           /* seconds: tiny counts, every path still run */
        int cpu;              /* pin single-threaded work here (-1: do not) */
        /* Scaled by --smoke. */
        unsigned rounds;      /* repeated measurements of a warm operation */
        unsigned batch;       /* operations per warm measurement */
        unsigned cold;        /* fresh processes per cold measurement */
        unsigned procs;       /* process-per-op samples (CLI, systemd-creds) */
        unsigned thread_ms;   /* duration of one throughput measurement */
        size_t bulk_sizes[2];
        unsigned gens[3];
        unsigned groups[3];
        unsigned rollovers;        /* part 4: rollovers timed */
        unsigned load_gens[3];     /* part 4: generations in the store of the loaded group */
        unsigned loads;            /* part 4: loads timed per size */
        unsigned startup_groups;   /* part 4: groups in the store at dkmd's start */
        unsigned startups;         /* part 4: dkmd starts timed per size */
        unsigned upcalls;          /* part 4: request-key upcalls timed */
} BenchOptions;

extern BenchOptions opt;

/* Median and spread of repeated measurements. */
typedef struct Stat {
        double med, p10, p90;
        unsigned n;
} Stat;

Stat stat_of(double *samples, unsigned n); /* sorts samples */
uint64_t now_ns(void);
void pin_cpu(int cpu);

/* Fail the whole run: benchmarks fail on errors, never on speed. */
_Noreturn void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#define check(expr)                                                                           \
        do {                                                                                  \
                if (!(expr))                                                                  \
                        die("%s:%d: %s", __FILE__, __LINE__, #expr);                         \
        } while (0)
#define check_r(expr)                                                                         \
        do {                                                                                  \
                int _r = (expr);                                                              \
                if (_r < 0)                                                                   \
                        die("%s:%d: %s: %s", __FILE__, __LINE__, #expr, strerror(-_r));       \
        } while (0)

/* Memory shared with forked children (zeroed). */
void *shared_new(size_t size);

/* Take the member's credentials for good (its groups, with gid among them) and a fresh session
 * keyring, as a systemd service with KeyringMode=private has. */
void become_member(void);
/* Fork; the child (as the member if member) runs fn and exits 0; die if it fails. */
void run_child(bool member, void (*fn)(void *userdata), void *userdata);
/* Run argv (as the member if member) with stdin from in_path (NULL: /dev/null), stdout to
 * /dev/null, stderr too unless show; its exit status (or 128 + signal). */
int run_program(bool member, const char *in_path, bool show, char *const argv[]);

/* Timed one op per call: fns[i](ctx[i]). Rounds interleave the functions, so that noise on
 * this shared machine lands on all of them alike; each sample is the mean of one batch. */
typedef void (*OpFn)(void *ctx);
void measure_warm(const OpFn *fns, void *const *ctx, size_t n, unsigned rounds, unsigned batch, Stat *ret);
/* The first use in a fresh process: fork per sample, the child times fns[i](ctx[i]) once. */
void measure_cold(const OpFn *fns, void *const *ctx, size_t n, unsigned samples, Stat *ret);

/* The result table, in shared memory so that children can add rows. */
typedef enum Target {
        TARGET_NONE,
        TARGET_MET,
        TARGET_MISSED,
} Target;

void result_section(const char *title);
/* value in unit; against a baseline row if vs is given: ratio = value / baseline (for times)
 * or baseline / value (for rates); target says what it should be. */
void result_add(const char *name, Stat s, const char *unit, const char *vs, double ratio, const char *target,
                Target met);
void result_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A measured value by name (for ratios across parts); NAN if absent. */
double result_value(const char *name);
void results_print(void);
void results_init(void);

/* Parts. */
void bench_small(void);
void bench_bulk(void);
void bench_peers(void);
void bench_control_plane(void);
void bench_growth(void);

/* Shared by the parts: a 64-byte (or 1 KiB) one-shot ciphertext made by the member in a child,
 * so that the caller's own cache stays cold. */
typedef struct Sample {
        uint8_t ct[1024 + 128];
        size_t ct_len;
        uint8_t group_id[16];
        uint32_t generation;
} Sample;
void sample_make(const char *group, size_t pt_len, Sample *ret);
/* Cold decrypt of s in a fresh process, and warm decrypt, as the member. */
void decrypt_cost(const Sample *s, Stat *ret_warm, Stat *ret_cold);
