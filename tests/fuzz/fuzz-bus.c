/* SPDX-License-Identifier: MIT */
/* libFuzzer: dkmd's D-Bus argument handling, in process: every method of org.dkm.KeyManager1 (and
 * the standard Properties, Introspectable and ObjectManager ones) on a real Manager and BusManager
 * over a socketpair, with arguments built from the input. Every call must be answered with a
 * method return or a named error; a crash, a hang or any other error name is a finding. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <p11-kit/p11-kit.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <systemd/sd-bus.h>
#include <time.h>
#include <unistd.h>

#include "access-request.h"
#include "audit-record.h"
#include "bus-manager.h"
#include "fuzz-bus.h"
#include "fuzz.h"
#include "loader.h"
#include "manager.h"
#include "store.h"

/* The whole world is rebuilt this often: mutations (rollovers, requests) grow the store, and a
 * fresh state keeps a reproducer close to what it needs to reproduce. */
#define RESET_EVERY 128U
/* One call gets this long to be answered; everything is in process, so a miss is a hang. */
#define REPLY_TIMEOUT_MS 5000

/* Seeded in every fresh state: requests in several states, so paths and ids name real objects:
 * four of groups, three store-wide (issue 8). */
#define REQUESTS_SEEDED 7U

typedef struct World {
        char *dir; /* temp root: state/, groups.d/, run/ */
        char *state_dir;
        char *dropin_dir;
        unsigned generation; /* state-N: a new directory per reset */
        Store *store;
        Manager manager;
        BusManager bus_manager;
        sd_bus *server, *client;
        /* The audit hook keeps a chain as the log would: seq and the previous record's hash. */
        uint64_t audit_seq;
        uint8_t audit_prev[CRYPT_HASH_BYTES];
        bool store_levels; /* store.policy names approval levels now */
        unsigned inputs;
} World;

static World world;

/* Existing Unix groups without login users: the key group's gid and approver groups. */
gid_t fuzz_bus_good_gids[FUZZ_BUS_GOOD_GIDS_MAX];
char *fuzz_bus_good_group_names[FUZZ_BUS_GOOD_GIDS_MAX];
size_t fuzz_bus_n_good_gids;

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        (void) (flag == FTW_DP ? rmdir(path) : unlink(path));
        return 0;
}

static void rm_rf(const char *path) {
        (void) nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void cleanup_at_exit(void) {
        if (world.dir)
                rm_rf(world.dir);
}

/* ---- no PKCS#11 module is ever loaded ----
 *
 * AddProtector's Uri comes from the input, and with it a module-path= (any file to dlopen()) or a
 * module-name= (any module p11-kit has registered: SoftHSM, OpenSC... whose code and state are
 * not dkmd's argument handling). A fuzzer must never run either. Rewriting URIs before dispatch
 * would leave the same hole for any path the rewrite misses, and a missing PIN (the store asks
 * for it before it loads a module) is the code under test's behaviour, not a guarantee. So the
 * harness defines p11-kit's two loading entry points itself: the store is a static library, and
 * the linker resolves its calls to these definitions before libp11-kit's. They load nothing and
 * fail as p11-kit does when a module cannot be loaded, so dkmd's refusal paths (the module
 * branch and the registered-modules branch, ProtectorUnavailable) still run, with a PIN set so
 * that they are reached at all. world_init() checks once that the store really calls them. */
static unsigned p11_loads_refused;

CK_FUNCTION_LIST *p11_kit_module_load(const char *module_path, int flags) {
        p11_loads_refused++;
        return NULL;
}

CK_FUNCTION_LIST **p11_kit_modules_load_and_initialize(int flags) {
        p11_loads_refused++;
        return NULL;
}

static void find_good_gids(void) {
        for (gid_t gid = 1; gid < 65534 && fuzz_bus_n_good_gids < FUZZ_BUS_GOOD_GIDS_MAX; gid++) {
                _cleanup_free_ char *who = NULL;
                struct group *gr = getgrgid(gid);

                if (!gr || loader_find_human_member(gid, &who) != 0)
                        continue;
                fuzz_bus_good_group_names[fuzz_bus_n_good_gids] = strdup(gr->gr_name);
                FUZZ_ASSERT(fuzz_bus_good_group_names[fuzz_bus_n_good_gids]);
                fuzz_bus_good_gids[fuzz_bus_n_good_gids++] = gid;
        }
        /* The key group and two approval levels at least. */
        FUZZ_ASSERT(fuzz_bus_n_good_gids >= 3);
}

/* ---- the Manager's hooks, as dkmd's Context has them ---- */

/* Instead of dkmd's audit log (an fsync per record): each record is formatted as the log would
 * write it and parsed back, so a record the log would refuse (and dkmd then refuse the change
 * for) is a finding, not a silent AuditFailed. */
static int on_audit(void *userdata, const AuditRecord *rec) {
        static char line[AUDIT_LINE_MAX + 1];
        uint8_t hash[CRYPT_HASH_BYTES];
        AuditEntry e;
        char why[128];
        size_t n;

        if (audit_format_event(++world.audit_seq, 1, rec, world.audit_prev, line, &n, hash) < 0) {
                fprintf(stderr, "dkmd made an audit record the log refuses: event=%s object=%s detail=%s\n", rec->event,
                        rec->object ?: "", rec->detail ?: "");
                abort();
        }
        FUZZ_ASSERT(n > 0 && line[n - 1] == '\n');
        FUZZ_ASSERT(audit_parse_line(line, n - 1, &e, NULL, why, sizeof(why)) == 0);
        FUZZ_ASSERT(strcmp(e.event, rec->event) == 0 && strcmp(e.object, rec->object ?: "") == 0 &&
                    strcmp(e.detail, rec->detail ?: "") == 0);
        memcpy(world.audit_prev, hash, sizeof(hash));
        return 0;
}

static void on_group_added(void *userdata, const StoreGroup *g) {
        bus_emit_group_added(world.server, g);
}

static void on_generation_changed(void *userdata, const StoreGroup *g, uint32_t number, GenerationState state) {
        bus_emit_generation_changed(world.server, g, number, state);
}

static void on_policy_changed(void *userdata, const StoreGroup *g) {
        bus_emit_policy_changed(world.server, g);
}

static void on_request_changed(void *userdata, const AccessRequest *r, bool added) {
        bus_emit_request_changed(world.server, r, added);
}

static void on_store_state_changed(void *userdata, int old_state) {
        if (world.server) /* not while world_up() starts the store, before the buses exist */
                bus_emit_store_state_changed(world.server);
}

static int on_reload(void *userdata, char ***ret_problems) {
        char *dirs[] = { world.dropin_dir, NULL };

        return manager_apply_dropins(&world.manager, dirs, ret_problems);
}

/* ---- building and tearing down the world ---- */

static void write_file(const char *dir, const char *name, const char *text) {
        _cleanup_free_ char *path = NULL;
        FILE *f;

        FUZZ_ASSERT(asprintf(&path, "%s/%s", dir, name) >= 0);
        f = fopen(path, "we");
        FUZZ_ASSERT(f);
        fputs(text, f);
        FUZZ_ASSERT(fclose(f) == 0);
}

/* Requests of other users (root cannot ask for access: it reads every key already), so that
 * Approve, Deny, Cancel and Revoke meet each state: pending, granted, a pending retire, and a
 * retire root asked for (which root may cancel). */
static void seed_requests(const char *dir) {
        StoreGroupPolicy policy = STORE_GROUP_POLICY_DEFAULT;
        uint64_t now = (uint64_t) time(NULL) * 1000000U;
        int fd;

        policy.approval_levels[0] = fuzz_bus_good_gids[1];
        policy.approval_levels[1] = fuzz_bus_good_gids[2];
        policy.n_approval_levels = 2;
        FUZZ_ASSERT(mkdir(dir, 0700) == 0);
        fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        FUZZ_ASSERT(fd >= 0);
        for (unsigned i = 1; i <= REQUESTS_SEEDED; i++) {
                AccessRequest r;
                bool retire = i >= 3;

                FUZZ_ASSERT(access_request_init(&r, retire ? ACCESS_KIND_RETIRE : ACCESS_KIND_ACCESS,
                                                FUZZ_BUS_GROUP_NAME, retire ? 1 : 0, i == 4 ? 0 : 1000 + i,
                                                "INC-4711: fuzzing", retire ? 0 : 600U * 1000000U, &policy, now) == 0);
                r.id = i;
                if (i == 2) {
                        AccessCaller a = { .uid = 2001, .gids = &fuzz_bus_good_gids[1], .n_gids = 1 };
                        AccessCaller b = { .uid = 2002, .gids = &fuzz_bus_good_gids[2], .n_gids = 1 };

                        FUZZ_ASSERT(access_approve(&r, &a, now) == 0);
                        FUZZ_ASSERT(access_approve(&r, &b, now) == 1);
                        access_grant(&r, now);
                }
                FUZZ_ASSERT(access_request_save(fd, &r) == 0);
        }
        /* Store-wide (issue 8), approved at the store policy's levels: a protector-add root asked
         * for (which root may cancel), a protector-remove, and a purge cancelled in its window.
         * No scheduled purge: it would suspend the store and unload everything at start, and
         * every later input would meet PurgeScheduled (tests/test-customer-key.c covers that path). */
        for (unsigned i = REQUESTS_SEEDED - 2; i <= REQUESTS_SEEDED; i++) {
                StorePolicy sp = STORE_POLICY_DEFAULT;
                AccessCaller a = { .uid = 2001, .gids = &fuzz_bus_good_gids[1], .n_gids = 1 };
                AccessCaller b = { .uid = 2002, .gids = &fuzz_bus_good_gids[2], .n_gids = 1 };
                AccessRequest r;
                AccessKind kind = i == REQUESTS_SEEDED - 2 ? ACCESS_KIND_PROTECTOR_ADD
                                  : i == REQUESTS_SEEDED - 1 ? ACCESS_KIND_PROTECTOR_REMOVE
                                                             : ACCESS_KIND_PURGE;

                sp.approval_levels[0] = fuzz_bus_good_gids[1];
                sp.approval_levels[1] = fuzz_bus_good_gids[2];
                sp.n_approval_levels = 2;
                FUZZ_ASSERT(access_request_init_store(
                                    &r, kind,
                                    kind == ACCESS_KIND_PURGE ? "" : kind == ACCESS_KIND_PROTECTOR_ADD ? "hsm-1" : "local",
                                    kind == ACCESS_KIND_PROTECTOR_ADD ? "pkcs11 pkcs11:token=customer;object=dkm-root" : NULL,
                                    kind == ACCESS_KIND_PROTECTOR_ADD ? 0 : 1000 + i, "CHG-42: customer key", &sp,
                                    now) == 0);
                r.id = i;
                if (kind == ACCESS_KIND_PURGE) {
                        FUZZ_ASSERT(access_approve(&r, &a, now) == 0);
                        FUZZ_ASSERT(access_approve(&r, &b, now) == 1);
                        access_schedule(&r, now, sp.purge_delay_usec);
                        access_close(&r, ACCESS_STATE_CANCELLED, 2001, NULL, now);
                }
                FUZZ_ASSERT(access_request_save(fd, &r) == 0);
        }
        close(fd);
}

static void connect_buses(void) {
        sd_id128_t id;
        int fds[2];

        FUZZ_ASSERT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds) == 0);
        FUZZ_ASSERT(sd_id128_randomize(&id) >= 0);
        FUZZ_ASSERT(sd_bus_new(&world.server) >= 0);
        FUZZ_ASSERT(sd_bus_set_fd(world.server, fds[0], fds[0]) >= 0);
        FUZZ_ASSERT(sd_bus_set_server(world.server, 1, id) >= 0);
        FUZZ_ASSERT(sd_bus_set_anonymous(world.server, 1) >= 0);
        FUZZ_ASSERT(bus_manager_attach(world.server, &world.bus_manager) >= 0);
        FUZZ_ASSERT(sd_bus_start(world.server) >= 0);

        FUZZ_ASSERT(sd_bus_new(&world.client) >= 0);
        FUZZ_ASSERT(sd_bus_set_fd(world.client, fds[1], fds[1]) >= 0);
        FUZZ_ASSERT(sd_bus_set_anonymous(world.client, 1) >= 0);
        FUZZ_ASSERT(sd_bus_start(world.client) >= 0);
}

static void world_up(void) {
        _cleanup_store_ Store *init = NULL;
        _cleanup_free_ char *requests = NULL;
        StoreGroupPolicy policy = STORE_GROUP_POLICY_DEFAULT;

        FUZZ_ASSERT(asprintf(&world.state_dir, "%s/state-%u", world.dir, world.generation++) >= 0);
        /* As an admin sets it up (dkm-store init: a file protector), then as dkmd opens it. */
        if (store_init(world.state_dir, NULL, &init) < 0) {
                fprintf(stderr, "fuzz-bus: store_init %s: %s\n", world.state_dir, store_last_error(NULL) ?: "?");
                abort();
        }
        init = store_free(init);
        FUZZ_ASSERT(store_open(world.state_dir, &world.store) == 0);
        FUZZ_ASSERT(store_unlock(world.store, NULL) == 0);

        world.manager = (Manager) {
                .store = world.store,
                .events = {
                        .group_added = on_group_added,
                        .generation_changed = on_generation_changed,
                        .policy_changed = on_policy_changed,
                        .request_changed = on_request_changed,
                        .store_state_changed = on_store_state_changed,
                        .audit = on_audit,
                },
        };
        world.bus_manager = (BusManager){
                .manager = &world.manager,
                .reload = on_reload,
        };
        world.audit_seq = 0;
        memset(world.audit_prev, 0, sizeof(world.audit_prev));

        /* Two groups, one with approval levels and a pending generation, one plain. */
        policy.approval_levels[0] = fuzz_bus_good_gids[1];
        policy.approval_levels[1] = fuzz_bus_good_gids[2];
        policy.n_approval_levels = 2;
        policy.propagation_delay_usec = 3600U * 1000000ULL;
        FUZZ_ASSERT(manager_create_group(&world.manager, FUZZ_BUS_GROUP_NAME, fuzz_bus_good_gids[0],
                                         CRYPT_ALG_XCHACHA20_POLY1305, &policy) == 0);
        {
                uint32_t number;

                FUZZ_ASSERT(manager_rollover(&world.manager, FUZZ_BUS_GROUP_NAME, &number) == 0 && number == 2);
        }
        policy = STORE_GROUP_POLICY_DEFAULT;
        FUZZ_ASSERT(manager_create_group(&world.manager, FUZZ_BUS_SECOND_GROUP_NAME, fuzz_bus_good_gids[0],
                                         CRYPT_ALG_XCHACHA20_POLY1305, &policy) == 0);

        FUZZ_ASSERT(asprintf(&requests, "%s/requests", world.state_dir) >= 0);
        seed_requests(requests);
        FUZZ_ASSERT(manager_requests_open(&world.manager, requests) == 0);
        FUZZ_ASSERT(world.manager.requests.n == REQUESTS_SEEDED);
        /* As dkmd starts: the protectors checked (the file protector opens the store), so
         * ListProtectors has something to list and RemoveProtector knows what is usable. No
         * store.policy: protector changes happen at once, a purge has no approvers (NoApprovers),
         * until an input asks for levels (set_store_levels()). */
        world.store_levels = false;
        FUZZ_ASSERT(manager_store_start(&world.manager) == 0);
        FUZZ_ASSERT(world.manager.protectors.state == MANAGER_STORE_UNLOCKED);

        connect_buses();
}

static void world_down(void) {
        world.client = sd_bus_flush_close_unref(world.client);
        world.server = sd_bus_flush_close_unref(world.server);
        manager_requests_close(&world.manager);
        manager_store_done(&world.manager);
        world.store = store_free(world.store);
        rm_rf(world.state_dir);
        free(world.state_dir);
        world.state_dir = NULL;
}

static void world_init(void) {
        const char *tmp = getenv("TMPDIR");
        _cleanup_free_ char *run = NULL, *tcti = NULL;
        char drop[256];

        fuzz_init_crypto();
        find_good_gids();
        FUZZ_ASSERT(asprintf(&world.dir, "%s/dkm-fuzz-bus-XXXXXX", tmp && *tmp ? tmp : "/tmp") >= 0);
        FUZZ_ASSERT(mkdtemp(world.dir));
        atexit(cleanup_at_exit);

        /* The loader runs dkm-keyring-helper for every load, grant, revoke and retire. The real
         * helper would put keys into the kernel (root's user keyring, member keyrings): state
         * outside this process that would outlive it and slow every call down. This harness
         * is about argument handling, so the helper is /bin/true, which reads nothing and
         * succeeds; the real helper is covered by tests/test-keyring.c, test-dkmd.c and
         * test-access.c. DKM_RUNTIME_DIR points into the temp dir all the same. */
        FUZZ_ASSERT(setenv("DKM_KEYRING_HELPER", "/bin/true", 1) == 0);
        FUZZ_ASSERT(asprintf(&run, "%s/run", world.dir) >= 0);
        FUZZ_ASSERT(mkdir(run, 0700) == 0);
        FUZZ_ASSERT(setenv("DKM_RUNTIME_DIR", run, 1) == 0);

        /* AddProtector's devices. PKCS#11: a PIN, so that the store goes on to its module
         * loading, which the stubs above refuse (no file named in the environment either). TPM2:
         * a TCTI that fails at once and locally, a device node that does not exist, so a tpm2
         * add is ProtectorUnavailable in microseconds and never talks to a real TPM (nor waits on
         * a socket); TSS2_LOG keeps tpm2-tss from logging each failure. */
        FUZZ_ASSERT(setenv("DKM_PKCS11_PIN", "1234", 1) == 0);
        FUZZ_ASSERT(unsetenv("DKM_PKCS11_PIN_FILE") == 0);
        FUZZ_ASSERT(asprintf(&tcti, "device:%s/no-tpm/tpmrm0", world.dir) >= 0);
        FUZZ_ASSERT(setenv("DKM_TPM2_TCTI", tcti, 1) == 0);
        FUZZ_ASSERT(setenv("TSS2_LOG", "all+none", 1) == 0);

        /* groups.d for Reload(): one drop-in for a new group, one for an existing group, and
         * one that is refused. */
        FUZZ_ASSERT(asprintf(&world.dropin_dir, "%s/groups.d", world.dir) >= 0);
        FUZZ_ASSERT(mkdir(world.dropin_dir, 0755) == 0);
        snprintf(drop, sizeof(drop), "[KeyGroup]\nUnixGroup=%u\nRolloverPeriod=30d\nHotWindow=3\n",
                 (unsigned) fuzz_bus_good_gids[0]);
        write_file(world.dropin_dir, "from-dropin.conf", drop);
        snprintf(drop, sizeof(drop), "[KeyGroup]\nUnixGroup=%s\nApprovalGroups=%s %s\nMaxGrant=2h\n",
                 fuzz_bus_good_group_names[0], fuzz_bus_good_group_names[1], fuzz_bus_good_group_names[2]);
        write_file(world.dropin_dir, FUZZ_BUS_GROUP_NAME ".conf", drop);
        write_file(world.dropin_dir, "broken.conf", "[KeyGroup]\nUnixGroup=\xc3\xa9t\xc3\xa9 :\n");

        world_up();

        /* The stubs are what the store calls: with a module-path, and with p11-kit's registered
         * modules. Were they bypassed (the store linked another way), a fuzzed URI could load any
         * library: stop here instead. */
        FUZZ_ASSERT(store_protector_add_pkcs11(world.store, "selftest",
                                               "pkcs11:token=t;object=o?module-path=/nonexistent/x.so") == -ENOKEY);
        FUZZ_ASSERT(p11_loads_refused == 1);
        FUZZ_ASSERT(store_protector_add_pkcs11(world.store, "selftest", "pkcs11:token=t;object=o") == -ENOKEY);
        FUZZ_ASSERT(p11_loads_refused == 2);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        world_init();
        return 0;
}

/* ---- one call ---- */

/* Whether store.policy names approval levels, as the input says for the store-wide methods:
 * without, AddProtector and RemoveProtector act at once and Purge is NoApprovers; with, all three
 * make a request (which the harness, in no group, cannot approve). From the input rather than the
 * world, so that a reproducer replays in a fresh world as it ran. */
static void set_store_levels(bool on) {
        StorePolicy policy = STORE_POLICY_DEFAULT;

        if (world.store_levels == on)
                return;
        if (on) {
                policy.approval_levels[0] = fuzz_bus_good_gids[1];
                policy.approval_levels[1] = fuzz_bus_good_gids[2];
                policy.n_approval_levels = 2;
        }
        FUZZ_ASSERT(store_policy_save(world.store, &policy) == 0);
        world.store_levels = on;
}

static bool is_store_wide(const FuzzBusMethod *method) {
        return strcmp(method->interface, BUS_MANAGER_INTERFACE) == 0 &&
               (strcmp(method->member, "AddProtector") == 0 || strcmp(method->member, "RemoveProtector") == 0 ||
                strcmp(method->member, "Purge") == 0);
}

typedef struct Reply {
        bool done;
        sd_bus_message *msg;
} Reply;

static int on_reply(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Reply *r = userdata;

        r->done = true;
        r->msg = sd_bus_message_ref(m);
        return 0;
}

/* Both ends in turn until the reply is in. dkmd never blocks on its caller, so when neither end
 * has anything to do and the socket stays quiet, the call will never be answered. */
static void pump(Reply *reply, const char *what) {
        while (!reply->done) {
                int a = sd_bus_process(world.server, NULL), b;

                FUZZ_ASSERT(a >= 0);
                b = sd_bus_process(world.client, NULL);
                FUZZ_ASSERT(b >= 0);
                if (a == 0 && b == 0 && !reply->done) {
                        struct pollfd p[2] = {
                                { .fd = sd_bus_get_fd(world.server),
                                  .events = (short) sd_bus_get_events(world.server) },
                                { .fd = sd_bus_get_fd(world.client),
                                  .events = (short) sd_bus_get_events(world.client) },
                        };
                        int r = poll(p, 2, REPLY_TIMEOUT_MS);

                        if (r == 0) {
                                fprintf(stderr, "fuzz-bus: %s: no reply within %d ms\n", what, REPLY_TIMEOUT_MS);
                                abort();
                        }
                        FUZZ_ASSERT(r > 0 || errno == EINTR);
                }
        }
}

/* The names a caller may see: dkm's own, or the standard ones sd-bus answers with. */
static void check_reply(sd_bus_message *reply, const char *what) {
        const sd_bus_error *e;

        FUZZ_ASSERT(reply);
        if (getenv("DKM_FUZZ_VERBOSE")) /* to see what the corpus reaches */
                fprintf(stderr, "fuzz-bus: %s: %s %s\n", what,
                        sd_bus_message_is_method_error(reply, NULL) ? sd_bus_message_get_error(reply)->name : "return",
                        sd_bus_message_is_method_error(reply, NULL) ? sd_bus_message_get_error(reply)->message : "");
        if (!sd_bus_message_is_method_error(reply, NULL)) {
                uint8_t type = 0;

                FUZZ_ASSERT(sd_bus_message_get_type(reply, &type) >= 0 && type == SD_BUS_MESSAGE_METHOD_RETURN);
                return;
        }
        e = sd_bus_message_get_error(reply);
        FUZZ_ASSERT(e && e->name);
        if (strncmp(e->name, "org.dkm.KeyManager1.Error.", strlen("org.dkm.KeyManager1.Error.")) == 0 ||
            strncmp(e->name, "org.freedesktop.DBus.Error.", strlen("org.freedesktop.DBus.Error.")) == 0) {
                /* Not the ones the client makes up when the server is gone or silent. */
                FUZZ_ASSERT(strcmp(e->name, SD_BUS_ERROR_NO_REPLY) != 0 &&
                            strcmp(e->name, SD_BUS_ERROR_DISCONNECTED) != 0);
                return;
        }
        fprintf(stderr, "fuzz-bus: %s: unnamed error %s: %s\n", what, e->name, e->message ?: "");
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        _cleanup_free_ char *path = NULL;
        FuzzInput in = { .p = data, .left = size };
        const FuzzBusMethod *method;
        Reply reply = {};
        char what[128];
        int r;

        if (world.inputs++ > 0 && world.inputs % RESET_EVERY == 0) {
                world_down();
                world_up();
        }

        method = fuzz_bus_pick_method(&in);
        path = fuzz_bus_pick_path(&in, method->target);
        FUZZ_ASSERT(path);
        if (is_store_wide(method))
                set_store_levels(fuzz_u8(&in) & 1);
        snprintf(what, sizeof(what), "%s.%s on %.60s", method->interface, method->member, path);

        r = sd_bus_message_new_method_call(world.client, &m, NULL, path, method->interface, method->member);
        if (r == -EINVAL)
                return 0; /* a path too long for a message header: sd-bus will not send it */
        FUZZ_ASSERT(r >= 0);
        /* Mostly the method's own signature; now and then something else. */
        r = (fuzz_u8(&in) & 0xf) == 0xf ? fuzz_bus_append_wrong(m, &in) : fuzz_bus_append_args(m, method, &in);
        if (r < 0)
                return 0; /* sd-bus refused to build it (too big, say): nothing reaches dkmd */
        r = sd_bus_call_async(world.client, NULL, m, on_reply, &reply, 0);
        if (r == -ENOBUFS || r == -EMSGSIZE)
                return 0;
        FUZZ_ASSERT(r >= 0);
        pump(&reply, what);
        check_reply(reply.msg, what);
        sd_bus_message_unref(reply.msg);
        return 0;
}
