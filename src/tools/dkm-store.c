/* SPDX-License-Identifier: MIT */
/* dkm-store: offline administration of the key store, for setup, tests and recovery. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "crypto.h"
#include "fileio.h"
#include "kvfile.h"
#include "loader.h"
#include "parse.h"
#include "passphrase.h"
#include "store.h"

/* Exit statuses, documented in dkm-store --help and docs/ADMIN.md. */
enum {
        EXIT_USAGE = 2,
        EXIT_NOT_FOUND = 3,
        EXIT_LOCKED = 4,
        EXIT_CORRUPT = 5,
        EXIT_REFUSED = 6,
        EXIT_UNSUPPORTED = 7,
};

static struct {
        const char *state_dir;
        int passphrase_fd;
        int use_passphrase;
        const char *gid;
        const char *algorithm;
        const char *rollover_period;
        const char *approval_groups; /* policy set; "" = none */
        const char *purge_delay;
        bool yes_destroy_everything;
        const char *type;
        const char *uri;
        uint32_t pcrs[32]; /* more than the 24 a TPM has, so the store names the mistake */
        size_t n_pcrs;
        char pcrs_text[128];
        unsigned hot_window; /* with hot_window_set; else the group's policy */
        bool hot_window_set;
} arg = {
        .passphrase_fd = -1,
};

typedef struct Verb {
        const char *name;
        const char *sub; /* second word, or NULL */
        unsigned min_args, max_args;
        int needs_unlock;
        int (*run)(Store *s, char **args);
        const char *usage;
} Verb;

static int fail(Store *s, int r, const char *what) {
        const char *detail = store_last_error(s);
        int status;

        switch (r) {
        case -ENOENT:
                status = EXIT_NOT_FOUND;
                break;
        case -ENOKEY:
        case -EKEYREJECTED:
                status = EXIT_LOCKED;
                break;
        case -EBADMSG:
                status = EXIT_CORRUPT;
                break;
        case -EBUSY:
        case -EALREADY:
        case -EEXIST:
        case -EKEYREVOKED:
        case -EPERM:
                status = EXIT_REFUSED;
                break;
        case -EPROTONOSUPPORT:
        case -EOPNOTSUPP:
                status = EXIT_UNSUPPORTED;
                break;
        default:
                status = EXIT_FAILURE;
        }
        if (detail)
                fprintf(stderr, "dkm-store: %s: %s\n", what, detail);
        else
                fprintf(stderr, "dkm-store: %s: %s\n", what, strerror(-r));
        return status;
}

static void format_time(uint64_t usec, char *buf, size_t size) {
        time_t t = (time_t) (usec / 1000000);
        struct tm tm;

        if (usec == 0 || !gmtime_r(&t, &tm)) {
                snprintf(buf, size, "-");
                return;
        }
        strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int get_passphrase(int confirm, Secret **ret) {
        if (arg.passphrase_fd >= 0)
                return passphrase_read_fd(arg.passphrase_fd, ret);
        return passphrase_read_tty("Passphrase: ", confirm, ret);
}

static int verb_init(Store *unused, char **args) {
        _cleanup_secret_ Secret *pass = NULL;
        _cleanup_store_ Store *s = NULL;
        int r;

        if (arg.use_passphrase || arg.passphrase_fd >= 0) {
                r = get_passphrase(1, &pass);
                if (r < 0)
                        return fail(NULL, r, "reading passphrase");
        }
        r = store_init(arg.state_dir, pass, &s);
        if (r < 0)
                return fail(s, r, arg.state_dir);
        printf("Initialized key store in %s (protector: %s).\n", arg.state_dir, pass ? "passphrase" : "local key file");
        return 0;
}

static void print_hex(const uint8_t *p, size_t n) {
        for (size_t i = 0; i < n; i++)
                printf("%02x", p[i]);
        printf("\n");
}

/* A new host of a fleet: a store with the fleet's identity and no protector, and this host's key
 * pair; the public key printed is what an enrolled host seals the root key to. */
static int verb_fleet_join(Store *unused, char **args) {
        _cleanup_store_ Store *s = NULL;
        uint8_t id[STORE_ID_SIZE], pk[STORE_X25519_KEY_BYTES];
        int r;

        if (strlen(args[0]) != 2 * STORE_ID_SIZE || kv_parse_hex(args[0], id, sizeof(id)) < 0) {
                fprintf(stderr, "dkm-store: '%s' is not a store id (%u hex bytes; 'dkm-store fleet store-id' on an "
                        "enrolled host prints it).\n", args[0], STORE_ID_SIZE);
                return EXIT_USAGE;
        }
        r = store_join(arg.state_dir, id, &s);
        if (r < 0)
                return fail(s, r, arg.state_dir);
        r = store_host_key(s, true, pk);
        if (r < 0)
                return fail(s, r, "making this host's key pair");
        fprintf(stderr, "Joined fleet store %s in %s; enrol this host with its public key:\n", args[0], arg.state_dir);
        print_hex(pk, sizeof(pk));
        return 0;
}

static int verb_fleet_store_id(Store *s, char **args) {
        uint8_t id[STORE_ID_SIZE];

        store_id(s, id);
        print_hex(id, sizeof(id));
        return 0;
}

static int verb_fleet_host_key(Store *s, char **args) {
        uint8_t pk[STORE_X25519_KEY_BYTES];
        int r;

        r = store_host_key(s, true, pk);
        if (r < 0)
                return fail(s, r, "this host's key pair");
        print_hex(pk, sizeof(pk));
        return 0;
}

/* Offline enrolment: the protector file for another host, on stdout (no key material in it). */
static int verb_fleet_seal_for_host(Store *s, char **args) {
        _cleanup_free_ char *text = NULL;
        uint8_t pk[STORE_X25519_KEY_BYTES];
        size_t size;
        int r;

        if (strlen(args[1]) != 2 * STORE_X25519_KEY_BYTES || kv_parse_hex(args[1], pk, sizeof(pk)) < 0) {
                fprintf(stderr, "dkm-store: '%s' is not a host public key (%u hex bytes).\n", args[1],
                        STORE_X25519_KEY_BYTES);
                return EXIT_USAGE;
        }
        r = store_protector_seal_for_host(s, args[0], pk, &text, &size);
        if (r < 0)
                return fail(s, r, "sealing the root key for the host");
        return loop_write(STDOUT_FILENO, text, size) < 0 ? EXIT_FAILURE : 0;
}

static int verb_fleet_install(Store *s, char **args) {
        _cleanup_free_ char *text = NULL;
        size_t size;
        int r;

        r = read_file_full(AT_FDCWD, args[1], 65536, &text, &size);
        if (r < 0) {
                fprintf(stderr, "dkm-store: cannot read %s: %s\n", args[1], strerror(-r));
                return EXIT_FAILURE;
        }
        r = store_protector_install(s, args[0], text, size);
        if (r < 0)
                return fail(s, r, "installing the protector");
        printf("Installed protector %s.\n", args[0]);
        return 0;
}

static int verb_group_create(Store *s, char **args) {
        CryptAlg alg = CRYPT_ALG_XCHACHA20_POLY1305;
        uint64_t period = 0;
        StoreGroupPolicy policy = STORE_GROUP_POLICY_DEFAULT;
        gid_t gid;
        _cleanup_store_group_ StoreGroup *g = NULL;
        int r;

        if (!arg.gid) {
                fprintf(stderr, "dkm-store: group create needs --gid=GROUP (the Unix group whose members may use the keys).\n");
                return EXIT_USAGE;
        }
        r = parse_gid(arg.gid, &gid);
        if (r < 0) {
                fprintf(stderr, "dkm-store: --gid=%s: no such group.\n", arg.gid);
                return EXIT_USAGE;
        }
        if (arg.algorithm && crypt_alg_from_string(arg.algorithm, &alg) < 0) {
                fprintf(stderr, "dkm-store: --algorithm=%s: unknown; use xchacha20-poly1305 or aes256-gcm.\n", arg.algorithm);
                return EXIT_USAGE;
        }
        r = crypt_alg_check(alg);
        if (r == -EOPNOTSUPP) {
                fprintf(stderr, "dkm-store: %s needs AES-NI, which this CPU lacks; use xchacha20-poly1305.\n",
                        crypt_alg_to_string(alg));
                return EXIT_UNSUPPORTED;
        }
        if (arg.rollover_period && parse_duration_usec(arg.rollover_period, &period) < 0) {
                fprintf(stderr, "dkm-store: --rollover-period=%s: not a duration (e.g. 30d, 12h, 0 for manual).\n",
                        arg.rollover_period);
                return EXIT_USAGE;
        }
        if (!store_group_name_is_valid(args[0])) {
                fprintf(stderr, "dkm-store: '%s' is not a valid group name ([a-z0-9][a-z0-9_.-]*, at most %u).\n",
                        args[0], STORE_GROUP_NAME_MAX);
                return EXIT_USAGE;
        }
        policy.rollover_period_usec = period;
        r = store_group_create(s, args[0], gid, alg, &policy, &g);
        if (r < 0)
                return fail(s, r, args[0]);
        printf("Created key group %s (gid %u, %s), generation 1 active.\n", g->name, (unsigned) g->gid,
               crypt_alg_to_string(g->alg));
        return 0;
}

static int verb_group_list(Store *s, char **args) {
        _cleanup_strv_free_ char **names = NULL;
        int r;

        r = store_group_list(s, &names);
        if (r < 0)
                return fail(s, r, "listing groups");
        printf("%-24s %8s %-20s %8s %10s %s\n", "GROUP", "GID", "ALGORITHM", "ACTIVE", "ROLLOVER", "GENERATIONS");
        for (char **n = names; *n; n++) {
                _cleanup_store_group_ StoreGroup *g = NULL;
                const StoreGeneration *a;
                char period[64];

                r = store_group_load(s, *n, &g);
                if (r < 0) {
                        /* one bad file must not hide the others */
                        fail(s, r, *n);
                        continue;
                }
                a = store_group_active_generation(g);
                format_duration_usec(g->policy.rollover_period_usec, period, sizeof(period));
                printf("%-24s %8u %-20s %8u %10s %zu\n", g->name, (unsigned) g->gid, crypt_alg_to_string(g->alg),
                       a ? a->number : 0, g->policy.rollover_period_usec ? period : "manual", g->n_generations);
        }
        return 0;
}

static int verb_group_show(Store *s, char **args) {
        _cleanup_store_group_ StoreGroup *g = NULL;
        char period[64];
        int r;

        r = store_group_load(s, args[0], &g);
        if (r < 0)
                return fail(s, r, args[0]);
        format_duration_usec(g->policy.rollover_period_usec, period, sizeof(period));
        printf("Group:     %s\nGid:       %u\nAlgorithm: %s\nRollover:  %s\nGroup id:  ", g->name, (unsigned) g->gid,
               crypt_alg_to_string(g->alg), g->policy.rollover_period_usec ? period : "manual");
        for (size_t i = 0; i < sizeof(g->id); i++)
                printf("%02x", g->id[i]);
        printf("\n\n%10s %-9s %-21s %-21s %-21s %-21s\n", "GENERATION", "STATE", "CREATED", "ACTIVATED", "ARCHIVED",
               "RETIRED");
        for (size_t i = 0; i < g->n_generations; i++) {
                const StoreGeneration *gen = &g->generations[i];
                char c[32], a[32], ar[32], re[32];

                format_time(gen->created_usec, c, sizeof(c));
                format_time(gen->activated_usec, a, sizeof(a));
                format_time(gen->archived_usec, ar, sizeof(ar));
                format_time(gen->retired_usec, re, sizeof(re));
                printf("%10u %-9s %-21s %-21s %-21s %-21s\n", gen->number, generation_state_to_string(gen->state), c,
                       a, ar, re);
        }
        return 0;
}

static int verb_rollover(Store *s, char **args) {
        uint32_t n;
        int r;

        r = store_rollover(s, args[0], &n);
        if (r < 0)
                return fail(s, r, args[0]);
        printf("Rolled over %s: generation %u is active.\n", args[0], n);
        return 0;
}

static int parse_generation_arg(const char *s, uint32_t *ret) {
        if (parse_uint32(s, ret) < 0 || *ret == 0) {
                fprintf(stderr, "dkm-store: '%s' is not a generation number.\n", s);
                return -EINVAL;
        }
        return 0;
}

static int verb_archive(Store *s, char **args) {
        uint32_t n;
        int r;

        if (parse_generation_arg(args[1], &n) < 0)
                return EXIT_USAGE;
        r = store_generation_archive(s, args[0], n);
        if (r == -EBUSY) {
                fprintf(stderr, "dkm-store: generation %u of %s is active; roll over instead.\n", n, args[0]);
                return EXIT_REFUSED;
        }
        if (r < 0)
                return fail(s, r, args[0]);
        printf("Archived generation %u of %s.\n", n, args[0]);
        return 0;
}

static int verb_retire(Store *s, char **args) {
        uint32_t n;
        int r;

        if (parse_generation_arg(args[1], &n) < 0)
                return EXIT_USAGE;
        r = store_generation_retire(s, args[0], n);
        if (r == -EBUSY) {
                fprintf(stderr, "dkm-store: generation %u of %s is active; roll over before retiring it.\n", n,
                        args[0]);
                return EXIT_REFUSED;
        }
        if (r < 0)
                return fail(s, r, args[0]);
        printf("Retired generation %u of %s: its key is destroyed; data encrypted with it is unreadable.\n", n,
               args[0]);
        return 0;
}

static int verb_protector_list(Store *s, char **args) {
        _cleanup_free_ StoreProtectorInfo *p = NULL;
        size_t n;
        int r;

        r = store_protector_list(s, &p, &n);
        if (r < 0)
                return fail(s, r, "listing protectors");
        printf("%-24s %s\n", "PROTECTOR", "TYPE");
        for (size_t i = 0; i < n; i++)
                printf("%-24s %s\n", p[i].name, p[i].type);
        return 0;
}

static int verb_protector_add(Store *s, char **args) {
        _cleanup_secret_ Secret *pass = NULL;
        const char *type = arg.type ?: "file";
        int r;

        if (strcmp(type, "file") == 0)
                r = store_protector_add_file(s, args[0]);
        else if (strcmp(type, "passphrase") == 0) {
                /* The unlock may have consumed --passphrase-fd; a new passphrase comes from the tty. */
                r = passphrase_read_tty("New passphrase: ", 1, &pass);
                if (r < 0)
                        return fail(NULL, r, "reading the new passphrase");
                r = store_protector_add_passphrase(s, args[0], pass);
        } else if (strcmp(type, "pkcs11") == 0) {
                fprintf(stderr, "dkm-store: a PKCS#11 protector is added with 'protector add-pkcs11 NAME --uri=URI'.\n");
                return EXIT_USAGE;
        } else if (strcmp(type, "tpm2") == 0) {
                fprintf(stderr, "dkm-store: a TPM2 protector is added with 'protector add-tpm2 NAME [--pcrs=LIST]'.\n");
                return EXIT_USAGE;
        } else {
                fprintf(stderr, "dkm-store: --type=%s: unknown protector type; use file or passphrase.\n", type);
                return EXIT_USAGE;
        }
        if (r < 0)
                return fail(s, r, args[0]);
        printf("Added %s protector %s.\n", type, args[0]);
        return 0;
}

/* The token's key is made by its admin (softhsm2-util, pkcs11-tool, the HSM's own tools), never
 * here: dkm-store only uses it, so it cannot create a key with weaker attributes by mistake. */
static int verb_protector_add_pkcs11(Store *s, char **args) {
        int r;

        if (!arg.uri) {
                fprintf(stderr, "dkm-store: protector add-pkcs11 needs --uri=pkcs11:token=LABEL;object=LABEL[?module-path=PATH].\n");
                return EXIT_USAGE;
        }
        r = store_protector_add_pkcs11(s, args[0], arg.uri);
        if (r == -EINVAL) {
                fprintf(stderr, "dkm-store: %s: %s\n", args[0], store_last_error(s) ?: "invalid");
                return EXIT_USAGE;
        }
        if (r < 0)
                return fail(s, r, args[0]);
        printf("Added pkcs11 protector %s (%s).\n", args[0], arg.uri);
        return 0;
}

/* The TPM needs no setup here: the primary key is made from the standard template each time, and
 * only the TPM's owner (who could clear it) can take the protector away. */
static int verb_protector_add_tpm2(Store *s, char **args) {
        int r;

        r = store_protector_add_tpm2(s, args[0], arg.pcrs, arg.n_pcrs);
        if (r == -EINVAL) {
                fprintf(stderr, "dkm-store: %s: %s\n", args[0], store_last_error(s) ?: "invalid");
                return EXIT_USAGE;
        }
        if (r < 0)
                return fail(s, r, args[0]);
        printf("Added tpm2 protector %s%s%s.\n", args[0], arg.n_pcrs ? ", sealed to the current values of PCRs " : "",
               arg.n_pcrs ? arg.pcrs_text : "");
        return 0;
}

static int verb_protector_remove(Store *s, char **args) {
        int r = store_protector_remove(s, args[0]);
        if (r == -EBUSY) {
                fprintf(stderr, "dkm-store: %s is the last protector; add another before removing it.\n", args[0]);
                return EXIT_REFUSED;
        }
        if (r < 0)
                return fail(s, r, args[0]);
        printf("Removed protector %s.\n", args[0]);
        return 0;
}

/* Every protector that needs no passphrase, tried now; "protector list" only reads the files. */
static int verb_protector_check(Store *s, char **args) {
        _cleanup_free_ StoreProtectorStatus *l = NULL;
        size_t n, ok = 0;
        int r;

        r = store_protector_check(s, NULL, &l, &n);
        if (r < 0)
                return fail(s, r, "checking protectors");
        printf("%-24s %-10s %-12s %s\n", "PROTECTOR", "TYPE", "HEALTH", "DETAIL");
        for (size_t i = 0; i < n; i++) {
                printf("%-24s %-10s %-12s %s\n", l[i].name, l[i].type,
                       store_protector_health_to_string(l[i].health), l[i].detail);
                ok += l[i].health == STORE_PROTECTOR_OK;
        }
        if (ok > 0)
                return 0;
        fprintf(stderr, "dkm-store: no protector opens the store now%s.\n",
                store_purged(s, NULL) > 0 ? " (it was purged)" : "");
        return EXIT_LOCKED;
}

static void format_groups(const StorePolicy *p, char *buf, size_t size) {
        size_t used = 0;

        buf[0] = 0;
        for (size_t i = 0; i < p->n_approval_levels && used < size; i++) {
                struct group grp, *g = NULL;
                char gbuf[4096];

                if (getgrgid_r(p->approval_levels[i], &grp, gbuf, sizeof(gbuf), &g) == 0 && g)
                        used += (size_t) snprintf(buf + used, size - used, "%s%s (gid %u)", i ? ", " : "", g->gr_name,
                                                  (unsigned) p->approval_levels[i]);
                else
                        used += (size_t) snprintf(buf + used, size - used, "%sgid %u (no such group)", i ? ", " : "",
                                                  (unsigned) p->approval_levels[i]);
        }
}

static void print_policy(const StorePolicy *p) {
        char groups[1024], delay[64];

        format_groups(p, groups, sizeof(groups));
        format_duration_usec(p->purge_delay_usec, delay, sizeof(delay));
        printf("Approval groups: %s\nPurge delay:     %s\n",
               p->n_approval_levels ? groups : "none (protector changes need no approval; purge is refused)", delay);
}

static int verb_policy_show(Store *s, char **args) {
        StorePolicy p;
        int r;

        r = store_policy_load(s, &p);
        if (r < 0)
                return fail(s, r, "reading the store policy");
        print_policy(&p);
        return 0;
}

/* "NAME,NAME" (or gids) in approval order; "" for none. */
static int parse_approval_groups(const char *text, StorePolicy *p) {
        char buf[1024], *w, *save = NULL;

        if (strlen(text) >= sizeof(buf)) {
                fprintf(stderr, "dkm-store: --approval-groups: too long.\n");
                return -EINVAL;
        }
        snprintf(buf, sizeof(buf), "%s", text);
        p->n_approval_levels = 0;
        for (w = strtok_r(buf, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
                gid_t gid;

                if (p->n_approval_levels >= STORE_APPROVAL_LEVELS_MAX) {
                        fprintf(stderr, "dkm-store: --approval-groups: at most %u groups.\n", STORE_APPROVAL_LEVELS_MAX);
                        return -EINVAL;
                }
                if (parse_gid(w, &gid) < 0) {
                        fprintf(stderr, "dkm-store: --approval-groups: no such group '%s'.\n", w);
                        return -EINVAL;
                }
                for (size_t i = 0; i < p->n_approval_levels; i++)
                        if (p->approval_levels[i] == gid) {
                                fprintf(stderr, "dkm-store: --approval-groups: '%s' is named twice; each group "
                                                "approves at one level.\n", w);
                                return -EINVAL;
                        }
                p->approval_levels[p->n_approval_levels++] = gid;
        }
        return 0;
}

static int verb_policy_set(Store *s, char **args) {
        StorePolicy p;
        uint64_t delay;
        int r;

        if (!arg.approval_groups && !arg.purge_delay) {
                fprintf(stderr, "dkm-store: policy set needs --approval-groups=NAME,... and/or --purge-delay=DURATION.\n");
                return EXIT_USAGE;
        }
        r = store_policy_load(s, &p);
        if (r < 0)
                return fail(s, r, "reading the store policy");
        if (arg.approval_groups && parse_approval_groups(arg.approval_groups, &p) < 0)
                return EXIT_USAGE;
        if (arg.purge_delay) {
                if (parse_duration_usec(arg.purge_delay, &delay) < 0 || delay < STORE_PURGE_DELAY_MIN_USEC ||
                    delay > STORE_PURGE_DELAY_MAX_USEC) {
                        fprintf(stderr, "dkm-store: --purge-delay=%s: a duration from 1s to 30d (e.g. 7d, 12h).\n",
                                arg.purge_delay);
                        return EXIT_USAGE;
                }
                p.purge_delay_usec = delay;
        }
        r = store_policy_save(s, &p);
        if (r == -EINVAL) {
                fprintf(stderr, "dkm-store: %s\n", store_last_error(s) ?: "store policy out of range");
                return EXIT_USAGE;
        }
        if (r < 0)
                return fail(s, r, "writing the store policy");
        print_policy(&p);
        return 0;
}

/* For when dkmd is gone: dkmd's purge waits its delay and asks its approvers; this one does not. */
static int verb_purge(Store *s, char **args) {
        uint64_t since = 0;
        char when[32];
        int r;

        if (!arg.yes_destroy_everything) {
                fprintf(stderr, "dkm-store: purge destroys every key of %s for good, and with them all the data "
                                "encrypted under this store; add --yes-destroy-everything to do it.\n",
                        arg.state_dir);
                return EXIT_USAGE;
        }
        r = store_purged(s, &since);
        if (r < 0)
                since = 0; /* a damaged marker: the purge writes a new one */
        r = store_purge(s);
        if (r < 0)
                return fail(s, r, "purging the store");
        format_time(since, when, sizeof(when));
        if (since)
                printf("Finished the purge of %s begun at %s: every key is destroyed.\n", arg.state_dir, when);
        else
                printf("Purged %s: every key is destroyed; data encrypted with them is unreadable.\n", arg.state_dir);
        return 0;
}

/* Load and unwrap everything: proves the store is readable end to end, prints nothing secret. */
static int verb_check(Store *s, char **args) {
        _cleanup_strv_free_ char **names = NULL;
        int r, status = 0;

        r = store_group_list(s, &names);
        if (r < 0)
                return fail(s, r, "listing groups");
        for (char **n = names; *n; n++) {
                _cleanup_store_group_ StoreGroup *g = NULL;
                size_t live = 0;

                r = store_group_load(s, *n, &g);
                if (r < 0) {
                        status = fail(s, r, *n);
                        continue;
                }
                for (size_t i = 0; i < g->n_generations; i++) {
                        _cleanup_secret_ Secret *k = NULL;
                        if (!g->generations[i].has_key)
                                continue;
                        r = store_generation_unwrap(s, g, g->generations[i].number, &k);
                        if (r < 0) {
                                char what[128];
                                snprintf(what, sizeof(what), "%s generation %u", *n, g->generations[i].number);
                                status = fail(s, r, what);
                                continue;
                        }
                        live++;
                }
                printf("%s: ok, %zu generation(s), %zu with keys\n", *n, g->n_generations, live);
        }
        return status;
}

/* Put the group into the kernel keyrings as the store has it now, for the members of its gid. */
/* Key groups are for service accounts: the same rule as dkmd's, for the offline path. */
static int refuse_human_members(const StoreGroup *g) {
        _cleanup_free_ char *who = NULL;
        int r;

        r = loader_find_human_member(g->gid, &who);
        if (r < 0)
                return fail(NULL, r, "reading the members of the group's gid");
        if (r == 0)
                return 0;
        if (g->policy.allow_human_members) {
                fprintf(stderr, "dkm-store: WARNING: %s: login user %s is a member of gid %u; allowed by the group's policy\n",
                        g->name, who, (unsigned) g->gid);
                return 0;
        }
        fprintf(stderr, "dkm-store: %s: refused: login user %s is a member of gid %u; key groups are for service "
                        "accounts (allow it with dkmctl group set-policy %s --allow-human-members=yes)\n",
                g->name, who, (unsigned) g->gid, g->name);
        return EXIT_REFUSED;
}

static int verb_load(Store *s, char **args) {
        _cleanup_store_group_ StoreGroup *g = NULL;
        _cleanup_keyring_manifest_ KeyringManifest *m = NULL;
        _cleanup_free_ uid_t *uids = NULL;
        size_t n_uids;
        int r;

        r = store_group_load(s, args[0], &g);
        if (r < 0)
                return fail(s, r, args[0]);
        r = refuse_human_members(g);
        if (r != 0)
                return r;
        r = loader_member_uids(g->gid, &uids, &n_uids);
        if (r < 0)
                return fail(NULL, r, "reading the members of the group's gid");
        r = loader_build_manifest(s, g, arg.hot_window_set ? arg.hot_window : g->policy.hot_window, uids, n_uids, &m);
        if (r < 0)
                return fail(s, r, args[0]);
        r = loader_run_helper(m, (char *[]) { (char *) "load", NULL });
        if (r < 0) {
                fprintf(stderr, "dkm-store: cannot run %s: %s\n", loader_helper_path(), strerror(-r));
                return EXIT_FAILURE;
        }
        if (r > 0)
                return EXIT_FAILURE; /* the helper said why on stderr */
        printf("Loaded %s into the kernel: %zu generation(s), %zu member uid(s).\n", g->name, m->n_generations,
               m->n_members);
        return 0;
}

static int verb_unload(Store *s, char **args) {
        int r = loader_run_helper(NULL, (char *[]) { (char *) "unload", args[0], NULL });
        if (r < 0) {
                fprintf(stderr, "dkm-store: cannot run %s: %s\n", loader_helper_path(), strerror(-r));
                return EXIT_FAILURE;
        }
        return r == 0 ? 0 : EXIT_FAILURE;
}

static const Verb verbs[] = {
        { "init", NULL, 0, 0, 0, verb_init, "init [--passphrase | --passphrase-fd=FD]" },
        { "group", "create", 1, 1, 1, verb_group_create,
          "group create NAME --gid=GROUP [--algorithm=ALG] [--rollover-period=DURATION]" },
        { "group", "list", 0, 0, 0, verb_group_list, "group list" },
        { "group", "show", 1, 1, 0, verb_group_show, "group show NAME" },
        { "rollover", NULL, 1, 1, 1, verb_rollover, "rollover GROUP" },
        { "archive", NULL, 2, 2, 0, verb_archive, "archive GROUP GENERATION" },
        { "retire", NULL, 2, 2, 0, verb_retire, "retire GROUP GENERATION" },
        { "protector", "list", 0, 0, 0, verb_protector_list, "protector list" },
        { "protector", "add", 1, 1, 1, verb_protector_add, "protector add NAME [--type=file|passphrase]" },
        { "protector", "add-pkcs11", 1, 1, 1, verb_protector_add_pkcs11, "protector add-pkcs11 NAME --uri=URI" },
        { "protector", "add-tpm2", 1, 1, 1, verb_protector_add_tpm2, "protector add-tpm2 NAME [--pcrs=LIST]" },
        { "protector", "remove", 1, 1, 0, verb_protector_remove, "protector remove NAME" },
        { "protector", "check", 0, 0, 0, verb_protector_check, "protector check" },
        { "check", NULL, 0, 0, 1, verb_check, "check" },
        { "load", NULL, 1, 1, 1, verb_load, "load GROUP [--hot-window=N]" },
        { "unload", NULL, 1, 1, 0, verb_unload, "unload GROUP" },
        { "policy", "show", 0, 0, 0, verb_policy_show, "policy show" },
        { "policy", "set", 0, 0, 0, verb_policy_set,
          "policy set [--approval-groups=GROUP,...|''] [--purge-delay=DURATION]" },
        { "purge", NULL, 0, 0, 0, verb_purge, "purge --yes-destroy-everything" },
        { "fleet", "join", 1, 1, 0, verb_fleet_join, "fleet join STORE-ID          # a new host: prints its public key" },
        { "fleet", "store-id", 0, 0, 0, verb_fleet_store_id, "fleet store-id" },
        { "fleet", "host-key", 0, 0, 0, verb_fleet_host_key, "fleet host-key               # this host's public key" },
        { "fleet", "seal-for-host", 2, 2, 1, verb_fleet_seal_for_host, "fleet seal-for-host NAME PUBLIC-KEY > FILE" },
        { "fleet", "install", 2, 2, 0, verb_fleet_install, "fleet install NAME FILE" },
};

static void help(void) {
        printf("dkm-store [OPTIONS] COMMAND ...\n\n"
               "Offline administration of a dkm key store (setup, tests, recovery).\n"
               "Run it only while dkmd is stopped, or for read-only commands.\n\nCommands:\n");
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                printf("  %s\n", verbs[i].usage);
        printf("\nOptions:\n"
               "  --state-dir=DIR        key store directory (default $DKM_STATE_DIR or %s)\n"
               "  --passphrase           use a passphrase (asked on the terminal)\n"
               "  --passphrase-fd=FD     read the passphrase from file descriptor FD\n"
               "  --uri=URI              the pkcs11: URI of a token's AES key (protector add-pkcs11);\n"
               "                         its PIN comes from $DKM_PKCS11_PIN_FILE or $DKM_PKCS11_PIN\n"
               "  --pcrs=LIST            sha256 PCRs to seal to, e.g. 7,11 (protector add-tpm2; default\n"
               "                         none); the TPM is $DKM_TPM2_TCTI, else device:/dev/tpmrm0\n"
               "  --hot-window=N         archived generations preloaded by 'load' (default: the\n"
               "                         group's policy, %u for a new group)\n"
               "  --approval-groups=LIST groups approving protector changes and purge, in order\n"
               "                         (policy set; '' for none)\n"
               "  --purge-delay=DURATION how long dkmd waits after a purge's last approval, 1s..30d\n"
               "                         (policy set; default 7d)\n"
               "  --yes-destroy-everything  confirm 'purge': every key destroyed, for good\n"
               "  -h --help              show this help\n"
               "  --version              show the version\n"
               "\nExit status: 0 ok, 1 failure, 2 usage, 3 not found, 4 cannot unlock,\n"
               "5 corrupted store file, 6 refused by a rule, 7 unsupported.\n",
               DKM_DEFAULT_STATE_DIR, STORE_HOT_WINDOW_DEFAULT);
}

/* Numbers only; their range and repeats are the store's to judge (it says which PCR is wrong). */
static int parse_pcrs(const char *s) {
        char buf[sizeof(arg.pcrs_text)], *p, *save = NULL;

        arg.n_pcrs = 0;
        if (strlen(s) >= sizeof(buf))
                return -EINVAL;
        snprintf(arg.pcrs_text, sizeof(arg.pcrs_text), "%s", s);
        snprintf(buf, sizeof(buf), "%s", s);
        if (!buf[0])
                return 0;
        if (buf[0] == ',' || buf[strlen(buf) - 1] == ',' || strstr(buf, ",,"))
                return -EINVAL;
        for (p = strtok_r(buf, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
                if (arg.n_pcrs >= ELEMENTSOF(arg.pcrs) || parse_uint32(p, &arg.pcrs[arg.n_pcrs]) < 0)
                        return -EINVAL;
                arg.n_pcrs++;
        }
        return 0;
}

static int parse_argv(int argc, char *argv[]) {
        enum { ARG_STATE_DIR = 0x100, ARG_PASSPHRASE, ARG_PASSPHRASE_FD, ARG_GID, ARG_ALGORITHM, ARG_PERIOD, ARG_TYPE, ARG_VERSION, ARG_HOT_WINDOW, ARG_URI, ARG_PCRS };
        enum { ARG_APPROVAL_GROUPS = 0x200, ARG_PURGE_DELAY, ARG_YES_DESTROY };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "state-dir", required_argument, NULL, ARG_STATE_DIR },
                { "passphrase", no_argument, NULL, ARG_PASSPHRASE },
                { "passphrase-fd", required_argument, NULL, ARG_PASSPHRASE_FD },
                { "gid", required_argument, NULL, ARG_GID },
                { "algorithm", required_argument, NULL, ARG_ALGORITHM },
                { "rollover-period", required_argument, NULL, ARG_PERIOD },
                { "type", required_argument, NULL, ARG_TYPE },
                { "approval-groups", required_argument, NULL, ARG_APPROVAL_GROUPS },
                { "purge-delay", required_argument, NULL, ARG_PURGE_DELAY },
                { "yes-destroy-everything", no_argument, NULL, ARG_YES_DESTROY },
                { "hot-window", required_argument, NULL, ARG_HOT_WINDOW },
                { "uri", required_argument, NULL, ARG_URI },
                { "pcrs", required_argument, NULL, ARG_PCRS },
                {}
        };
        uint32_t fd;
        int c;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("dkm-store %s\n", DKM_VERSION);
                        return 0;
                case ARG_STATE_DIR:
                        arg.state_dir = optarg;
                        break;
                case ARG_PASSPHRASE:
                        arg.use_passphrase = 1;
                        break;
                case ARG_PASSPHRASE_FD:
                        if (parse_uint32(optarg, &fd) < 0 || fd > INT32_MAX) {
                                fprintf(stderr, "dkm-store: --passphrase-fd=%s: not a file descriptor.\n", optarg);
                                return -EINVAL;
                        }
                        arg.passphrase_fd = (int) fd;
                        break;
                case ARG_GID:
                        arg.gid = optarg;
                        break;
                case ARG_ALGORITHM:
                        arg.algorithm = optarg;
                        break;
                case ARG_PERIOD:
                        arg.rollover_period = optarg;
                        break;
                case ARG_APPROVAL_GROUPS:
                        arg.approval_groups = optarg;
                        break;
                case ARG_PURGE_DELAY:
                        arg.purge_delay = optarg;
                        break;
                case ARG_YES_DESTROY:
                        arg.yes_destroy_everything = true;
                        break;
                case ARG_TYPE:
                        arg.type = optarg;
                        break;
                case ARG_URI:
                        arg.uri = optarg;
                        break;
                case ARG_PCRS:
                        if (parse_pcrs(optarg) < 0) {
                                fprintf(stderr, "dkm-store: --pcrs=%s: a comma-separated list of PCR numbers, e.g. 7,11.\n",
                                        optarg);
                                return -EINVAL;
                        }
                        break;
                case ARG_HOT_WINDOW:
                        if (parse_uint32(optarg, &fd) < 0 || fd > STORE_HOT_WINDOW_MAX) {
                                fprintf(stderr, "dkm-store: --hot-window=%s: a number of archived generations, 0..%u.\n",
                                        optarg, STORE_HOT_WINDOW_MAX);
                                return -EINVAL;
                        }
                        arg.hot_window = fd;
                        arg.hot_window_set = true;
                        break;
                default:
                        return -EINVAL;
                }
        if (!arg.state_dir)
                arg.state_dir = getenv("DKM_STATE_DIR") ?: DKM_DEFAULT_STATE_DIR;
        return 1;
}

static const Verb *find_verb(int argc, char *argv[], int *ret_consumed) {
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++) {
                if (strcmp(argv[0], verbs[i].name) != 0)
                        continue;
                if (!verbs[i].sub) {
                        *ret_consumed = 1;
                        return &verbs[i];
                }
                if (argc > 1 && strcmp(argv[1], verbs[i].sub) == 0) {
                        *ret_consumed = 2;
                        return &verbs[i];
                }
        }
        return NULL;
}

static int unlock(Store *s) {
        _cleanup_secret_ Secret *pass = NULL;
        int r;

        /* Purged: nothing a passphrase could open, and store_unlock() says when it happened. */
        if (store_purged(s, NULL) != 0)
                return store_unlock(s, NULL);
        r = store_unlock(s, NULL);
        if (r != -ENOKEY)
                return r;
        /* No key file unlocked it: a passphrase protector is the remaining way in. */
        r = get_passphrase(0, &pass);
        if (r == -ENXIO)
                return -ENOKEY;
        if (r < 0)
                return r;
        return store_unlock(s, pass);
}

int main(int argc, char *argv[]) {
        _cleanup_store_ Store *s = NULL;
        const Verb *v;
        int r, consumed;
        unsigned nargs;

        /* This process holds the root key: keep it out of core dumps and ptrace by other uids. */
        (void) prctl(PR_SET_DUMPABLE, 0);
        (void) setrlimit(RLIMIT_CORE, &(struct rlimit) { 0, 0 });

        r = parse_argv(argc, argv);
        if (r <= 0)
                return r < 0 ? EXIT_USAGE : 0;
        if (optind >= argc) {
                fprintf(stderr, "dkm-store: no command given; see dkm-store --help.\n");
                return EXIT_USAGE;
        }
        v = find_verb(argc - optind, argv + optind, &consumed);
        if (!v) {
                fprintf(stderr, "dkm-store: unknown command '%s'; see dkm-store --help.\n", argv[optind]);
                return EXIT_USAGE;
        }
        nargs = (unsigned) (argc - optind - consumed);
        if (nargs < v->min_args || nargs > v->max_args) {
                fprintf(stderr, "dkm-store: usage: dkm-store %s\n", v->usage);
                return EXIT_USAGE;
        }
        if (crypt_init() < 0) {
                fprintf(stderr, "dkm-store: libsodium failed to initialize.\n");
                return EXIT_FAILURE;
        }
        if (v->run == verb_init || v->run == verb_fleet_join)
                return v->run(NULL, argv + optind + consumed);

        r = store_open(arg.state_dir, &s);
        if (r == -ENOENT) {
                fprintf(stderr, "dkm-store: %s is not a dkm key store; create one with 'dkm-store init'.\n",
                        arg.state_dir);
                return EXIT_NOT_FOUND;
        }
        if (r < 0)
                return fail(s, r, arg.state_dir);
        if (v->needs_unlock) {
                r = unlock(s);
                if (r == -ENOKEY) {
                        /* The store's message names each protector and why it failed (key file
                         * missing, wrong passphrase, no PIN, token or key absent, wrong PIN). */
                        fprintf(stderr, "dkm-store: %s\n",
                                store_last_error(s) ?: "no protector unlocked the root key");
                        return EXIT_LOCKED;
                }
                if (r < 0)
                        return fail(s, r, "unlocking the store");
        }
        return v->run(s, argv + optind + consumed);
}
