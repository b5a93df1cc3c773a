/* SPDX-License-Identifier: MIT */
/* The request-key upcall handler: loads one archived generation into its group keyring, with a timeout, on demand. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "keyring-helper.h"
#include "keyring-request.h"
#include "keyring.h"
#include "request-key.h"
#include "store.h"

/* How long an on-demand key stays in the kernel unless --timeout says otherwise: long enough
 * for a burst of decryptions of old data, short enough that an old key does not linger. */
#define REQUEST_TIMEOUT_DEFAULT_SEC 300U
#define REQUEST_TIMEOUT_MAX_SEC     (7U * 24U * 3600U)

typedef struct Args {
        const char *state_dir;
        const char *runtime_dir; /* NULL: keyring_runtime_dir() */
        unsigned timeout_sec;
        KeySerial key;
        const char *desc;
        const char *callout;
} Args;

/* What to tell the kernel and the log: reject == 0 means answer with the marker. */
typedef struct Outcome {
        int status;
        int reject; /* positive errno for keyctl_reject, or 0 */
        char message[320];
} Outcome;

_printf_(4, 5) static int outcome(Outcome *o, int status, int reject, const char *fmt, ...) {
        va_list ap;

        o->status = status;
        o->reject = reject;
        va_start(ap, fmt);
        (void) vsnprintf(o->message, sizeof(o->message), fmt, ap);
        va_end(ap);
        return 0;
}

static int usage_error(const char *what) {
        fprintf(stderr, "dkm-keyring-helper: request-key: %s (usage: request-key " HELPER_REQUEST_KEY_ARGS ")\n", what);
        return KEYRING_HELPER_EXIT_USAGE;
}

/* Options first (only the --name=value form), then exactly the three fields the conf line
 * passes: %k %d %c. Strict, since this runs as root on the kernel's say-so. */
static int parse_args(int argc, char **argv, Args *ret) {
        Args a = { .state_dir = DKM_DEFAULT_STATE_DIR, .timeout_sec = REQUEST_TIMEOUT_DEFAULT_SEC };
        uint32_t v;
        int i;

        for (i = 1; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
                const char *o = argv[i];

                if (strcmp(o, "--") == 0) {
                        i++;
                        break;
                }
                if (strncmp(o, "--state-dir=", 12) == 0 && o[12] == '/')
                        a.state_dir = o + 12;
                else if (strncmp(o, "--runtime-dir=", 14) == 0 && o[14] == '/')
                        a.runtime_dir = o + 14;
                else if (strncmp(o, "--timeout=", 10) == 0) {
                        if (keyring_parse_u32(o + 10, strlen(o + 10), &v) < 0 || v < KEYRING_REQUEST_TIMEOUT_MIN_SEC ||
                            v > REQUEST_TIMEOUT_MAX_SEC)
                                return usage_error("--timeout= takes whole seconds, at least 2, at most a week");
                        a.timeout_sec = v;
                } else
                        return usage_error("unknown option, or a directory that is not an absolute path");
        }
        if (argc - i != 3)
                return usage_error("want the key id, its description and the callout information (%k %d %c)");
        if (keyring_parse_u32(argv[i], strlen(argv[i]), &v) < 0 || v == 0 || v > INT32_MAX)
                return usage_error("the key id must be a positive decimal serial");
        a.key = (KeySerial) v;
        a.desc = argv[i + 1];
        a.callout = argv[i + 2];
        *ret = a;
        return 0;
}

static int keyring_status(const Keyring *k) {
        switch (keyring_last_failure(k)) {
        case KEYRING_FAILURE_INVALID:
                return KEYRING_HELPER_EXIT_USAGE;
        case KEYRING_FAILURE_KERNEL:
                return KEYRING_HELPER_EXIT_KERNEL;
        case KEYRING_FAILURE_RUNTIME:
                return KEYRING_HELPER_EXIT_RUNTIME;
        case KEYRING_FAILURE_NOT_LOADED:
                return KEYRING_HELPER_EXIT_NOT_LOADED;
        case KEYRING_FAILURE_NO_GENERATION:
                return KEYRING_HELPER_EXIT_NO_GENERATION;
        default:
                return KEYRING_HELPER_EXIT_INTERNAL;
        }
}

/* A ciphertext names its group by id, so the request does too; the store is scanned for it.
 * A group file that does not load is skipped: it cannot be the one (or cannot serve anyway). */
static int find_group(Store *s, const uint8_t id[KEYRING_GROUP_ID_BYTES], StoreGroup **ret) {
        _cleanup_strv_free_ char **names = NULL;
        int r;

        r = store_group_list(s, &names);
        if (r < 0)
                return r;
        for (char **n = names; *n; n++) {
                _cleanup_store_group_ StoreGroup *g = NULL;

                if (store_group_load(s, *n, &g) < 0)
                        continue;
                if (memcmp(g->id, id, KEYRING_GROUP_ID_BYTES) == 0) {
                        *ret = TAKE_PTR(g);
                        return 0;
                }
        }
        return -ENOENT;
}

static const char *store_error(const Store *s, int r) {
        return store_last_error(s) ?: strerror(-r);
}

/* Decide, and do the loading. Never writes key material anywhere but the kernel. */
static int serve(const Args *a, Outcome *o) {
        _cleanup_store_group_ StoreGroup *g = NULL;
        _cleanup_secret_ Secret *key = NULL;
        _cleanup_keyring_ Keyring *k = NULL;
        _cleanup_store_ Store *s = NULL;
        uint8_t id[KEYRING_GROUP_ID_BYTES];
        const StoreGeneration *gen;
        uint32_t number;
        int r;

        if (strcmp(a->callout, KEYRING_REQUEST_CALLOUT) != 0)
                return outcome(o, KEYRING_HELPER_EXIT_UNKNOWN, EINVAL,
                               "callout information is not \"" KEYRING_REQUEST_CALLOUT "\"");
        if (keyring_generation_desc_parse(a->desc, id, &number) < 0)
                return outcome(o, KEYRING_HELPER_EXIT_UNKNOWN, EINVAL,
                               "not a generation key description (dkm:<32 lowercase hex>:<generation>)");
        if (crypt_init() < 0)
                return outcome(o, KEYRING_HELPER_EXIT_INTERNAL, ENOKEY, "libsodium failed to initialize");

        /* Opened locked: the root key is only unwrapped if the key has to be loaded. */
        r = store_open(a->state_dir, &s);
        if (r < 0)
                return outcome(o, KEYRING_HELPER_EXIT_STORE, ENOKEY, "%s", store_error(NULL, r));
        r = find_group(s, id, &g);
        if (r == -ENOENT)
                return outcome(o, KEYRING_HELPER_EXIT_UNKNOWN, ENOKEY, "no group with that id in %s", a->state_dir);
        if (r < 0)
                return outcome(o, KEYRING_HELPER_EXIT_STORE, ENOKEY, "%s", store_error(s, r));
        gen = store_group_find_generation(g, number);
        if (!gen)
                return outcome(o, KEYRING_HELPER_EXIT_UNKNOWN, ENOKEY, "group %s has no generation %u", g->name,
                               (unsigned) number);
        if (gen->state == GENERATION_RETIRED)
                return outcome(o, KEYRING_HELPER_EXIT_RETIRED, EKEYREVOKED, "generation %u of group %s is retired",
                               (unsigned) number, g->name);

        /* Held until we return: a concurrent load or another upcall for the same key waits,
         * so the key is added at most once. */
        r = keyring_new(a->runtime_dir, &k);
        if (r < 0)
                return outcome(o, KEYRING_HELPER_EXIT_RUNTIME, ENOKEY, "cannot set up (runtime directory %s): %s",
                               a->runtime_dir ?: keyring_runtime_dir(), strerror(-r));
        /* Active and pending generations are loaded already, hot archived ones too: nothing to
         * do but answer. Only the key's absence from a loaded group keyring warrants a load. */
        r = keyring_generation_find(k, g->name, g->id, g->gid, number, NULL);
        if (r >= 0)
                return outcome(o, 0, 0, "already loaded");
        if (r != -ENOKEY)
                return outcome(o, keyring_status(k), ENOKEY, "%s", keyring_last_error(k) ?: strerror(-r));

        r = store_unlock(s, NULL);
        if (r == -ENOKEY)
                return outcome(o, KEYRING_HELPER_EXIT_STORE, ENOKEY,
                               "no file protector unlocks %s (a store with passphrase protectors only cannot serve "
                               "request-key)",
                               a->state_dir);
        if (r < 0)
                return outcome(o, KEYRING_HELPER_EXIT_STORE, ENOKEY, "%s", store_error(s, r));
        r = store_generation_unwrap(s, g, number, &key);
        if (r < 0)
                return outcome(o, KEYRING_HELPER_EXIT_STORE, ENOKEY, "%s", store_error(s, r));
        /* The root key is not needed any more: wipe it before touching the kernel. */
        s = store_free(s);

        r = keyring_generation_load_timed(k, g->name, g->id, g->gid, number, key, a->timeout_sec, NULL);
        if (r < 0)
                return outcome(o, keyring_status(k), ENOKEY, "%s", keyring_last_error(k) ?: strerror(-r));
        return outcome(o, 0, 0, "loaded");
}

int helper_verb_request_key(int argc, char **argv) {
        uint8_t id[KEYRING_GROUP_ID_BYTES];
        KeyringRequest req;
        Outcome o = {};
        uint32_t number;
        Args a;
        int r;

        r = parse_args(argc, argv, &a);
        if (r != 0)
                return r;

        r = keyring_request_begin(a.key, a.desc, &req);
        if (r == -EPERM) {
                fprintf(stderr,
                        "dkm-keyring-helper: request-key: key %d is not under construction for this process "
                        "(only /sbin/request-key runs this)\n",
                        (int) a.key);
                return KEYRING_HELPER_EXIT_PRIVILEGE;
        }
        if (r < 0) {
                fprintf(stderr, "dkm-keyring-helper: request-key: key %d is not a user key with that description\n",
                        (int) a.key);
                return KEYRING_HELPER_EXIT_USAGE;
        }

        (void) serve(&a, &o);

        /* Whatever happened, the requester gets an answer now rather than the kernel's default
         * (ENOKEY, cached for 60 s) once we exit. The marker goes no later than the real key,
         * so it never outlives what it announces. */
        if (o.reject != 0)
                r = keyring_request_reject(&req, KEYRING_REQUEST_REJECT_TIMEOUT_SEC, o.reject);
        else
                r = keyring_request_instantiate_marker(&req, MIN(KEYRING_REQUEST_MARKER_TIMEOUT_SEC, a.timeout_sec));
        if (r < 0 && o.status == 0)
                (void) outcome(&o, KEYRING_HELPER_EXIT_KERNEL, 0, "cannot instantiate the requested key: %s",
                               strerror(-r));
        else if (r < 0)
                fprintf(stderr, "dkm-keyring-helper: request-key: cannot reject key %d: %s\n", (int) a.key,
                        strerror(-r));
        /* /sbin/request-key points our stderr at /dev/null; this is for runs by hand (and
         * request-key -d). A description that did not parse is not repeated. */
        if (o.status != 0)
                fprintf(stderr, "dkm-keyring-helper: request-key %s for uid %u: %s\n",
                        keyring_generation_desc_parse(a.desc, id, &number) >= 0 ? a.desc : "(malformed description)",
                        (unsigned) req.uid, o.message);
        return o.status;
}
