/* SPDX-License-Identifier: MIT */
/* dkm-keyring-helper: loads, retires, unloads and reports key groups in kernel keyrings, with minimal privilege. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fileio.h"
#include "keyring-helper.h"
#include "keyring.h"
#include "request-key.h"
#include "secret.h"

static const char *program = "dkm-keyring-helper";

_printf_(2, 3) static int error_exit(int status, const char *fmt, ...) {
        va_list ap;

        fprintf(stderr, "%s: ", program);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        return status;
}

static int keyring_exit(const Keyring *k, int r, const char *what) {
        static const int status[] = {
                [KEYRING_FAILURE_NONE] = KEYRING_HELPER_EXIT_INTERNAL,
                [KEYRING_FAILURE_INVALID] = KEYRING_HELPER_EXIT_USAGE,
                [KEYRING_FAILURE_KERNEL] = KEYRING_HELPER_EXIT_KERNEL,
                [KEYRING_FAILURE_RUNTIME] = KEYRING_HELPER_EXIT_RUNTIME,
                [KEYRING_FAILURE_USER_LINK] = KEYRING_HELPER_EXIT_USER_LINK,
                [KEYRING_FAILURE_NOT_LOADED] = KEYRING_HELPER_EXIT_NOT_LOADED,
                [KEYRING_FAILURE_NO_GENERATION] = KEYRING_HELPER_EXIT_NO_GENERATION,
                [KEYRING_FAILURE_BUSY] = KEYRING_HELPER_EXIT_BUSY,
        };
        KeyringFailure f = keyring_last_failure(k);

        if (f == KEYRING_FAILURE_NONE || (size_t) f >= ELEMENTSOF(status))
                return error_exit(KEYRING_HELPER_EXIT_INTERNAL, "%s failed: %s", what, strerror(-r));
        return error_exit(status[f], "%s", keyring_last_error(k));
}

static int open_keyring(Keyring **ret) {
        int r = keyring_new(NULL, ret);

        if (r == -EPERM)
                return error_exit(
                        KEYRING_HELPER_EXIT_RUNTIME,
                        "runtime directory %s must be a directory owned by root that group and other cannot write",
                        keyring_runtime_dir());
        if (r < 0)
                return error_exit(r == -ENOMEM ? KEYRING_HELPER_EXIT_INTERNAL : KEYRING_HELPER_EXIT_RUNTIME,
                                  "cannot set up (runtime directory %s, staging keyring): %s", keyring_runtime_dir(),
                                  strerror(-r));
        return 0;
}

/* The manifest carries key hex, so it goes from stdin straight into secret memory, is parsed
 * there, and that memory is wiped (sodium_free) whatever happens. */
static int read_manifest(KeyringManifest **ret) {
        _cleanup_secret_ Secret *text = NULL;
        KeyringManifestError error = {};
        ssize_t n;
        int r;

        if (isatty(STDIN_FILENO))
                return error_exit(
                        KEYRING_HELPER_EXIT_INPUT,
                        "the manifest is read from standard input, which must be a pipe or a file, not a terminal");
        r = secret_new(KEYRING_MANIFEST_MAX + 1, &text);
        if (r < 0)
                return error_exit(KEYRING_HELPER_EXIT_INTERNAL, "cannot allocate secret memory: %s", strerror(-r));
        n = loop_read(STDIN_FILENO, text->data, text->size);
        if (n < 0)
                return error_exit(KEYRING_HELPER_EXIT_INPUT, "cannot read the manifest from standard input: %s",
                                  strerror((int) -n));
        if ((size_t) n > KEYRING_MANIFEST_MAX)
                return error_exit(KEYRING_HELPER_EXIT_INPUT, "manifest larger than %u bytes refused",
                                  KEYRING_MANIFEST_MAX);
        r = keyring_manifest_parse((const char *) text->data, (size_t) n, ret, &error);
        if (r == -ENOMEM)
                return error_exit(KEYRING_HELPER_EXIT_INTERNAL, "out of memory");
        if (r < 0) {
                if (error.line > 0)
                        return error_exit(KEYRING_HELPER_EXIT_MANIFEST, "manifest line %u: %s", error.line,
                                          error.message);
                return error_exit(KEYRING_HELPER_EXIT_MANIFEST, "manifest: %s", error.message ?: strerror(-r));
        }
        return 0;
}

static int verb_load(int argc, char **argv) {
        _cleanup_keyring_manifest_ KeyringManifest *m = NULL;
        _cleanup_keyring_ Keyring *k = NULL;
        KeySerial ring;
        int r;

        r = read_manifest(&m);
        if (r != 0)
                return r;
        r = open_keyring(&k);
        if (r != 0)
                return r;
        r = keyring_group_load(k, m, &ring);
        if (r < 0)
                return keyring_exit(k, r, "load");
        printf("keyring %d\n", (int) ring);
        return 0;
}

static int verb_unload(int argc, char **argv) {
        _cleanup_keyring_ Keyring *k = NULL;
        int r;

        r = open_keyring(&k);
        if (r != 0)
                return r;
        r = keyring_group_unload(k, argv[1]);
        if (r < 0)
                return keyring_exit(k, r, "unload");
        return 0;
}

static int verb_retire(int argc, char **argv) {
        _cleanup_keyring_ Keyring *k = NULL;
        uint32_t generation;
        int r;

        if (keyring_parse_u32(argv[2], strlen(argv[2]), &generation) < 0 || generation == 0)
                return error_exit(KEYRING_HELPER_EXIT_USAGE, "generation must be a positive decimal number");
        r = open_keyring(&k);
        if (r != 0)
                return r;
        r = keyring_generation_retire(k, argv[1], generation);
        if (r < 0)
                return keyring_exit(k, r, "retire");
        return 0;
}

static void print_key(const char *label, const KeyringKeyInfo *i) {
        printf("%s %d perm %08x uid %u gid %u\n", label, (int) i->serial, (unsigned) i->perm, (unsigned) i->uid,
               (unsigned) i->gid);
}

static int verb_status(int argc, char **argv) {
        _cleanup_keyring_status_ KeyringStatus *s = NULL;
        _cleanup_keyring_ Keyring *k = NULL;
        int r;

        r = open_keyring(&k);
        if (r != 0)
                return r;
        r = keyring_group_status(k, argv[1], &s);
        if (r < 0)
                return keyring_exit(k, r, "status");

        printf("group %s\n", argv[1]);
        print_key("keyring", &s->ring);
        if (s->has_pointer)
                print_key("pointer", &s->pointer);
        if (s->pointer_valid) {
                char hex[KEYRING_GROUP_ID_HEX + 1];

                keyring_group_id_to_hex(s->pointer_value.group_id, hex);
                printf("id %s\nalgorithm %s\nactive %u\npending %u\n", hex, crypt_alg_to_string(s->pointer_value.alg),
                       (unsigned) s->pointer_value.active, (unsigned) s->pointer_value.pending);
        } else
                printf("pointer-state %s\n", s->has_pointer ? "unreadable" : "missing");
        for (size_t i = 0; i < s->n_generations; i++) {
                char label[32];

                snprintf(label, sizeof(label), "generation %u", (unsigned) s->generations[i].generation);
                print_key(label, &s->generations[i]);
        }
        if (s->n_other > 0)
                printf("other-keys %zu\n", s->n_other);
        for (size_t i = 0; i < s->n_members; i++)
                printf("member %u %s\n", (unsigned) s->members[i].uid, s->members[i].linked ? "linked" : "unlinked");
        if (s->serial_file > 0)
                printf("serial-file %d\n", (int) s->serial_file);
        else
                printf("serial-file missing\n");
        for (size_t i = 0; i < s->n_grants; i++) {
                const KeyringGrant *g = &s->grants[i];
                int64_t left = g->expires - (int64_t) time(NULL);

                printf("grant %u keyring %d %s expires-in %lld keys %zu\n", (unsigned) g->uid, (int) g->ring,
                       keyring_grant_state_to_string(g->state),
                       g->state == KEYRING_GRANT_LIVE ? (long long) (left > 0 ? left : 0) : 0LL, g->n_keys);
        }
        return 0;
}

/* "--NAME=DECIMAL" into a u32 (no sign, no leading zero); false if arg is not that option. */
static bool option_u32(const char *arg, const char *name, uint32_t *ret, bool *ret_bad) {
        size_t n = strlen(name);

        if (strncmp(arg, name, n) != 0 || arg[n] != '=')
                return false;
        *ret_bad = keyring_parse_u32(arg + n + 1, strlen(arg + n + 1), ret) < 0;
        return true;
}

/* The uid/seconds options of grant and revoke-grant; the remaining arguments are left in
 * *ret_rest. */
static int grant_options(int argc, char **argv, bool want_seconds, uid_t *ret_uid, unsigned *ret_seconds,
                         int *ret_rest) {
        uint32_t uid = 0, seconds = 0;
        bool have_uid = false, have_seconds = false, bad = false;
        int i;

        for (i = 1; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
                if (option_u32(argv[i], "--uid", &uid, &bad) && !bad && !have_uid)
                        have_uid = true;
                else if (want_seconds && option_u32(argv[i], "--seconds", &seconds, &bad) && !bad && !have_seconds)
                        have_seconds = true;
                else
                        return error_exit(KEYRING_HELPER_EXIT_USAGE, "%s: bad or repeated option %s", argv[0], argv[i]);
        }
        if (!have_uid || (want_seconds && !have_seconds))
                return error_exit(KEYRING_HELPER_EXIT_USAGE, "%s needs --uid=UID%s", argv[0],
                                  want_seconds ? " and --seconds=N" : "");
        if (uid == 0 || uid == UINT32_MAX)
                return error_exit(KEYRING_HELPER_EXIT_USAGE, "%s: uid %u cannot be granted access", argv[0],
                                  (unsigned) uid);
        if (want_seconds && (seconds == 0 || seconds > KEYRING_GRANT_SECONDS_MAX))
                return error_exit(KEYRING_HELPER_EXIT_USAGE, "%s: --seconds must be 1 to %u", argv[0],
                                  KEYRING_GRANT_SECONDS_MAX);
        *ret_uid = (uid_t) uid;
        *ret_seconds = seconds;
        *ret_rest = i;
        return 0;
}

/* A grant is for a person outside the key group: one whose account exists and whose groups do
 * not include the key group's gid (members read the group keyring itself). */
static int grantee_check(uid_t uid, gid_t gid) {
        struct passwd *pw;
        gid_t groups[256];
        int n = (int) ELEMENTSOF(groups);

        errno = 0;
        pw = getpwuid(uid);
        if (!pw)
                return error_exit(KEYRING_HELPER_EXIT_USAGE, "grant: uid %u has no account (%s)", (unsigned) uid,
                                  errno != 0 ? strerror(errno) : "no passwd entry");
        if (getgrouplist(pw->pw_name, pw->pw_gid, groups, &n) < 0)
                return error_exit(KEYRING_HELPER_EXIT_USAGE, "grant: uid %u is in too many groups to check",
                                  (unsigned) uid);
        for (int i = 0; i < n; i++)
                if (groups[i] == gid)
                        return error_exit(KEYRING_HELPER_EXIT_USAGE,
                                          "grant: uid %u is a member of gid %u, the key group's: members need no grant",
                                          (unsigned) uid, (unsigned) gid);
        return 0;
}

static int verb_grant(int argc, char **argv) {
        _cleanup_keyring_manifest_ KeyringManifest *m = NULL;
        _cleanup_keyring_ Keyring *k = NULL;
        unsigned seconds;
        KeySerial ring;
        uid_t uid;
        int r, rest;

        r = grant_options(argc, argv, true, &uid, &seconds, &rest);
        if (r != 0)
                return r;
        if (rest != argc)
                return error_exit(KEYRING_HELPER_EXIT_USAGE, "usage: %s grant --uid=UID --seconds=N < MANIFEST",
                                  program);
        r = read_manifest(&m);
        if (r != 0)
                return r;
        r = grantee_check(uid, m->gid);
        if (r != 0)
                return r;
        r = open_keyring(&k);
        if (r != 0)
                return r;
        r = keyring_grant_create(k, m, uid, seconds, &ring);
        if (r < 0)
                return keyring_exit(k, r, "grant");
        printf("keyring %d\nexpires-in %u\n", (int) ring, seconds);
        return 0;
}

static int verb_revoke_grant(int argc, char **argv) {
        _cleanup_keyring_ Keyring *k = NULL;
        unsigned seconds;
        uid_t uid;
        int r, rest;

        r = grant_options(argc, argv, false, &uid, &seconds, &rest);
        if (r != 0)
                return r;
        if (rest != argc - 1)
                return error_exit(KEYRING_HELPER_EXIT_USAGE, "usage: %s revoke-grant --uid=UID GROUP", program);
        if (!keyring_group_name_is_valid(argv[rest]))
                return error_exit(KEYRING_HELPER_EXIT_USAGE, "invalid group name (want [a-z0-9][a-z0-9_.-]{0,63})");
        r = open_keyring(&k);
        if (r != 0)
                return r;
        r = keyring_grant_revoke(k, argv[rest], uid);
        if (r < 0)
                return keyring_exit(k, r, "revoke-grant");
        return 0;
}

typedef struct Verb {
        const char *name;
        int n_args; /* after the verb; -1: the verb parses its own (options) */
        const char *args;
        /* Everything else is dropped from the effective, permitted and bounding sets. */
        cap_value_t caps[2];
        size_t n_caps;
        int (*run)(int argc, char **argv);
} Verb;

/* Why each capability: CAP_SETGID lets a brief setfsgid() make us a member of the key group,
 * so keyctl_chown and fchown to that gid need neither CAP_SYS_ADMIN nor CAP_CHOWN;
 * CAP_SETUID lets a forked child take a member's real uid (setreuid) and so reach its user
 * keyring. Retire needs none: the owner (uid 0) may search and so invalidate. request-key
 * adds one key to a group keyring already linked for its members, so it needs CAP_SETGID only
 * (the store it reads is root's own: no CAP_DAC_OVERRIDE). grant gives keys to another uid
 * (keyctl_chown of the owner is CAP_SYS_ADMIN's alone; no key permission can allow it) and
 * links them into that uid's user keyring (CAP_SETUID); revoke-grant needs none: grant keys
 * keep gid 0, whose setattr bit lets the helper revoke them. */
static const Verb verbs[] = {
        { "load", 0, "< MANIFEST", { CAP_SETUID, CAP_SETGID }, 2, verb_load },
        { "unload", 1, "GROUP", { CAP_SETUID }, 1, verb_unload },
        { "retire", 2, "GROUP GENERATION", { 0 }, 0, verb_retire },
        { "status", 1, "GROUP", { CAP_SETUID }, 1, verb_status },
        { "request-key", -1, HELPER_REQUEST_KEY_ARGS, { CAP_SETGID }, 1, helper_verb_request_key },
        { "grant", -1, "--uid=UID --seconds=N < MANIFEST", { CAP_SYS_ADMIN, CAP_SETUID }, 2, verb_grant },
        { "revoke-grant", -1, "--uid=UID GROUP", { 0 }, 0, verb_revoke_grant },
};

static bool verb_needs(const Verb *v, cap_value_t c) {
        for (size_t i = 0; i < v->n_caps; i++)
                if (v->caps[i] == c)
                        return true;
        return false;
}

static int harden(const Verb *v) {
        cap_t caps = NULL;
        int r = 0;

        if (getuid() != 0 || geteuid() != 0)
                return error_exit(KEYRING_HELPER_EXIT_PRIVILEGE, "must run as root (keys are owned by uid 0)");
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return error_exit(KEYRING_HELPER_EXIT_PRIVILEGE, "cannot set no_new_privs: %m");

        caps = cap_get_proc();
        if (!caps)
                return error_exit(KEYRING_HELPER_EXIT_PRIVILEGE, "cannot read capabilities: %m");
        for (size_t i = 0; i < v->n_caps; i++) {
                cap_flag_value_t have = CAP_CLEAR;

                if (cap_get_flag(caps, v->caps[i], CAP_PERMITTED, &have) < 0 || have != CAP_SET) {
                        r = error_exit(KEYRING_HELPER_EXIT_PRIVILEGE, "%s needs capability %s", v->name,
                                       v->caps[i] == CAP_SETUID      ? "CAP_SETUID"
                                       : v->caps[i] == CAP_SYS_ADMIN ? "CAP_SYS_ADMIN"
                                                                     : "CAP_SETGID");
                        goto out;
                }
        }

        /* The bounding set first: dropping from it needs CAP_SETPCAP, which goes next. */
        for (cap_value_t c = 0; c < (cap_value_t) cap_max_bits(); c++) {
                if (verb_needs(v, c) || cap_get_bound(c) <= 0)
                        continue;
                if (cap_drop_bound(c) < 0) {
                        r = error_exit(KEYRING_HELPER_EXIT_PRIVILEGE,
                                       "cannot drop capability %d from the bounding set: %m", (int) c);
                        goto out;
                }
        }
        if (cap_clear(caps) < 0 ||
            (v->n_caps > 0 && (cap_set_flag(caps, CAP_EFFECTIVE, (int) v->n_caps, v->caps, CAP_SET) < 0 ||
                               cap_set_flag(caps, CAP_PERMITTED, (int) v->n_caps, v->caps, CAP_SET) < 0)) ||
            cap_set_proc(caps) < 0) {
                r = error_exit(KEYRING_HELPER_EXIT_PRIVILEGE, "cannot drop capabilities: %m");
                goto out;
        }
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0) {
                r = error_exit(KEYRING_HELPER_EXIT_PRIVILEGE, "cannot clear ambient capabilities: %m");
                goto out;
        }
out:
        cap_free(caps);
        return r;
}

static int usage(FILE *f, int status) {
        fprintf(f, "Usage:\n");
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                fprintf(f, "  %s %s %s\n", program, verbs[i].name, verbs[i].args);
        fprintf(f, "Runtime directory: $" KEYRING_RUNTIME_DIR_ENV " or " KEYRING_RUNTIME_DIR_DEFAULT ".\n");
        return status;
}

int main(int argc, char **argv) {
        const struct rlimit no_core = { 0, 0 };
        const Verb *v = NULL;
        int r;

        /* Before anything else: this process is about to hold keys. */
        if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0 || setrlimit(RLIMIT_CORE, &no_core) < 0)
                return error_exit(KEYRING_HELPER_EXIT_PRIVILEGE, "cannot disable core dumps: %m");
        umask(0077);
        /* A process started by the kernel (or carelessly) may lack descriptors 0-2; without
         * this, the first file we open would become stdout or stderr. */
        for (int fd = STDIN_FILENO; fd <= STDERR_FILENO; fd++)
                if (fcntl(fd, F_GETFD) < 0 && (errno != EBADF || open("/dev/null", O_RDWR) != fd))
                        return KEYRING_HELPER_EXIT_INTERNAL;

        if (argc < 2)
                return usage(stderr, KEYRING_HELPER_EXIT_USAGE);
        if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0)
                return usage(stdout, KEYRING_HELPER_EXIT_OK);
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (strcmp(argv[1], verbs[i].name) == 0)
                        v = &verbs[i];
        if (!v)
                return error_exit(KEYRING_HELPER_EXIT_USAGE, "unknown command \"%s\" (try --help)", argv[1]);
        if (v->n_args >= 0 && argc - 2 != v->n_args)
                return error_exit(KEYRING_HELPER_EXIT_USAGE, "usage: %s %s %s", program, v->name, v->args);
        if (v->n_args >= 1 && !keyring_group_name_is_valid(argv[2]))
                return error_exit(KEYRING_HELPER_EXIT_USAGE, "invalid group name (want [a-z0-9][a-z0-9_.-]{0,63})");

        r = harden(v);
        if (r != 0)
                return r;
        r = v->run(argc - 1, argv + 1);
        if (fflush(stdout) != 0 && r == 0)
                return error_exit(KEYRING_HELPER_EXIT_INTERNAL, "cannot write output: %m");
        return r;
}
