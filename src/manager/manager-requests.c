/* SPDX-License-Identifier: MIT */
/* Break-glass requests in dkmd: the rules (src/access) applied to the caller, every step audited
 * before it is made, the request file written before it is reported, and the grant or retire
 * carried out through the keyring helper. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fileio.h"
#include "keyring-helper.h"
#include "loader.h"
#include "manager-internal.h"
#include "parse.h"

#define REQUEST_OBJECT_MAX (STORE_GROUP_NAME_MAX + 40)

/* "group/NAME/request/ID": a group's history (dkmctl audit show --group) includes its requests;
 * "store/request/ID" for the store-wide ones. */
static const char *request_object(const AccessRequest *r, char buf[static REQUEST_OBJECT_MAX]) {
        if (access_kind_is_store_wide(r->kind))
                (void) snprintf(buf, REQUEST_OBJECT_MAX, "store/request/%llu", (unsigned long long) r->id);
        else
                (void) snprintf(buf, REQUEST_OBJECT_MAX, "group/%s/request/%llu", r->group, (unsigned long long) r->id);
        return buf;
}

/* What the request is about, for audit details and logs: "group/NAME", "protector NAME", "host NAME",
 * "store". */
static const char *request_subject(const AccessRequest *r, char buf[static REQUEST_OBJECT_MAX]) {
        if (r->target[0])
                (void) snprintf(buf, REQUEST_OBJECT_MAX, "%s %s",
                                r->kind == ACCESS_KIND_HOST_ENROL || r->kind == ACCESS_KIND_HOST_REMOVE ? "host"
                                                                                                      : "protector",
                                r->target);
        else if (r->group[0])
                (void) snprintf(buf, REQUEST_OBJECT_MAX, "group/%s", r->group);
        else
                (void) snprintf(buf, REQUEST_OBJECT_MAX, "store");
        return buf;
}

/* "last-id": the highest id ever handed out, written (durably) before the request's audit record,
 * so a dkmd killed between the record and the request file does not hand the id out again. */
#define LAST_ID_FILE "last-id"

static int read_last_id(int dir_fd, uint64_t *ret) {
        _cleanup_free_ char *text = NULL;
        size_t size;
        int r;

        r = read_file_full(dir_fd, LAST_ID_FILE, 32, &text, &size);
        if (r == -ENOENT) {
                *ret = 0;
                return 0;
        }
        if (r < 0)
                return r;
        text[strcspn(text, "\n")] = 0;
        return parse_uint64(text, UINT64_MAX - 1, ret) < 0 ? -EBADMSG : 0;
}

static int write_last_id(int dir_fd, uint64_t id) {
        char text[32];
        int n = snprintf(text, sizeof(text), "%llu\n", (unsigned long long) id);

        return write_file_atomic(dir_fd, LAST_ID_FILE, text, (size_t) n, 0600);
}

/* The highest id any "<id>.request" name in the directory carries, whether its file loads or not:
 * a damaged request file is kept for inspection, and its id is never given to another request.
 * Leftover temporary files of an atomic write that a kill interrupted (".#*.tmp") are removed:
 * dkmd is the only writer here (the audit log's lock). */
static int highest_request_id(int dir_fd, uint64_t *ret) {
        _cleanup_close_ int fd = -EBADF;
        DIR *d;
        struct dirent *e;
        uint64_t max = 0;

        fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        d = fdopendir(fd);
        if (!d)
                return -errno;
        TAKE_FD(fd);
        while ((errno = 0, e = readdir(d))) {
                unsigned long long id;
                int end = 0;

                size_t l = strlen(e->d_name);

                if (e->d_name[0] == '.' && e->d_name[1] == '#' && l > 4 && strcmp(e->d_name + l - 4, ".tmp") == 0) {
                        (void) unlinkat(dir_fd, e->d_name, 0);
                        continue;
                }
                if (sscanf(e->d_name, "%llu.request%n", &id, &end) == 1 && e->d_name[end] == 0 && id > max)
                        max = id;
        }
        closedir(d);
        *ret = max;
        return 0;
}

/* Closed requests are history, and the audit log has all of it: dkmd lists only the newest
 * ACCESS_CLOSED_KEPT_MAX of them, and deletes the file of one closed longer than
 * ACCESS_CLOSED_RETENTION_USEC ago. Without this, anyone could grow dkmd's memory, its replies
 * and the state directory without bound by requesting and cancelling. */
static void prune_closed(Manager *m, uint64_t now) {
        size_t closed = 0, w = 0;

        for (size_t i = 0; i < m->requests.n; i++)
                if (!access_state_is_open(m->requests.items[i].state))
                        closed++;
        for (size_t i = 0; i < m->requests.n; i++) {
                AccessRequest *r = &m->requests.items[i];
                bool open = access_state_is_open(r->state), expired, drop;
                char name[32];

                expired = !open && r->closed_usec + ACCESS_CLOSED_RETENTION_USEC <= now;
                /* ascending by id, so the oldest closed ones go first */
                drop = !open && (expired || closed > ACCESS_CLOSED_KEPT_MAX);
                if (expired) {
                        (void) snprintf(name, sizeof(name), "%llu.request", (unsigned long long) r->id);
                        (void) unlink_durable(m->requests.dir_fd, name);
                }
                if (drop) {
                        closed--;
                        continue;
                }
                m->requests.items[w++] = *r;
        }
        m->requests.n = w;
}

int manager_requests_open(Manager *m, const char *dir) {
        _cleanup_strv_free_ char **problems = NULL;
        uint64_t last = 0;
        int fd, r;

        fd = open_dir_nofollow(AT_FDCWD, dir, 0700, true);
        if (fd < 0) {
                manager_log("cannot open the request directory %s: %s", dir, strerror(-fd));
                return fd;
        }
        r = access_request_load_all(fd, &m->requests.items, &m->requests.n, &problems);
        if (r < 0) {
                manager_log("cannot read the requests in %s: %s", dir, strerror(-r));
                (void) close(fd);
                return r;
        }
        for (char **p = problems; p && *p; p++)
                manager_log("ignoring a damaged request file in %s: %s", dir, *p);
        r = highest_request_id(fd, &m->requests.next_id);
        if (r >= 0)
                r = read_last_id(fd, &last);
        if (r < 0) {
                manager_log("cannot read the request ids in %s: %s", dir, strerror(-r));
                (void) close(fd);
                return r;
        }
        m->requests.next_id = MAX(m->requests.next_id, last) + 1;
        m->requests.dir_fd = fd;
        m->requests.open = true;
        prune_closed(m, manager_now_usec());
        return 0;
}

void manager_requests_close(Manager *m) {
        if (m->requests.open)
                (void) close(m->requests.dir_fd);
        m->requests.open = false;
        free(m->requests.items);
        m->requests.items = NULL;
        m->requests.n = 0;
}

AccessRequest *manager_request_find(Manager *m, uint64_t id) {
        for (size_t i = 0; i < m->requests.n; i++)
                if (m->requests.items[i].id == id)
                        return &m->requests.items[i];
        return NULL;
}

static AccessCaller caller_of(const Manager *m) {
        if (!m->caller)
                return (AccessCaller) { .uid = getuid() };
        return (AccessCaller) { .uid = m->caller->uid, .gids = m->caller->gids, .n_gids = m->caller->n_gids };
}

/* The words an auditor reads for a refusal: the D-Bus error's last part where there is one. */
static const char *refusal_name(int error) {
        switch (-error) {
        case ACCESS_ERRNO_JUSTIFICATION_REQUIRED:
                return "JustificationRequired";
        case ACCESS_ERRNO_DURATION_TOO_LONG:
                return "DurationTooLong";
        case ACCESS_ERRNO_NO_APPROVERS:
                return "NoApprovers";
        case ACCESS_ERRNO_SELF_APPROVAL:
                return "SelfApproval";
        case ACCESS_ERRNO_DUPLICATE_APPROVER:
                return "DuplicateApprover";
        case ACCESS_ERRNO_NOT_APPROVER:
                return "NotApprover";
        case ACCESS_ERRNO_REQUEST_EXPIRED:
                return "RequestExpired";
        case ACCESS_ERRNO_REQUEST_CLOSED:
                return "InvalidState";
        case ACCESS_ERRNO_NO_SUCH_REQUEST:
                return "NoSuchRequest";
        case ACCESS_ERRNO_TOO_MANY_REQUESTS:
                return "TooManyRequests";
        case ACCESS_ERRNO_ALREADY_MEMBER:
                return "AlreadyMember";
        case EACCES:
        case EPERM:
                return "AccessDenied";
        case ENOENT:
                return "NoSuchGroup";
        case EINVAL:
                return "InvalidArgument";
        case EBUSY:
                return "GenerationActive";
        case EKEYREVOKED:
                return "InvalidState";
        default:
                return strerror(-error);
        }
}

/* Refusals are audited too; the refusal stands whether or not its record could be written. */
static int refuse(Manager *m, const char *event, const char *object, int error, const char *what) {
        (void) manager_audit(m, event, AUDIT_OUTCOME_REFUSED, object, "%s: %s", what, refusal_name(error));
        return error;
}

/* Write r to its file; the in-memory copy is only replaced once the file is durable. */
static int save(Manager *m, AccessRequest *slot, const AccessRequest *r) {
        int k;

        k = access_request_save(m->requests.dir_fd, r);
        if (k < 0) {
                manager_log("cannot write request %llu: %s", (unsigned long long) r->id, strerror(-k));
                return k;
        }
        *slot = *r;
        return 0;
}

static int open_requests(const Manager *m, uid_t requester, size_t *ret_total) {
        size_t total = 0, mine = 0;

        for (size_t i = 0; i < m->requests.n; i++)
                if (access_state_is_open(m->requests.items[i].state)) {
                        total++;
                        if (m->requests.items[i].requester == requester)
                                mine++;
                }
        *ret_total = total;
        return (int) mine;
}

/* Add r (id assigned here) as a new request: audited, then durable, then announced. */
static int add_request(Manager *m, AccessRequest *r, uint64_t *ret_id) {
        AccessRequest *items;
        char object[REQUEST_OBJECT_MAX], subject[REQUEST_OBJECT_MAX];
        uint64_t id = m->requests.next_id;
        int k;

        r->id = id;
        /* The id is spent from here on, whatever happens next. */
        k = write_last_id(m->requests.dir_fd, id);
        if (k < 0)
                return k;
        m->requests.next_id++;
        k = manager_audit(m, "request", AUDIT_OUTCOME_OK, request_object(r, object),
                          "%s %s%s%s generation %u duration-usec %llu levels %zu: %s", access_kind_to_string(r->kind),
                          request_subject(r, subject), r->spec[0] ? " as " : "", r->spec, (unsigned) r->generation,
                          (unsigned long long) r->duration_usec, r->n_levels, r->justification);
        if (k < 0)
                return k;
        items = reallocarray(m->requests.items, m->requests.n + 1, sizeof(*items));
        if (!items)
                return -ENOMEM;
        m->requests.items = items;
        k = save(m, &items[m->requests.n], r);
        if (k < 0) {
                manager_audit_failure(m, "request", object, k);
                return k;
        }
        m->requests.n++;
        manager_log("request %llu: %s of %s by uid %u", (unsigned long long) id, access_kind_to_string(r->kind),
                    subject, (unsigned) r->requester);
        EMIT(m, request_changed, &items[m->requests.n - 1], true);
        *ret_id = id;
        return 0;
}

/* Checks common to both kinds: the caller has a slot left. */
static int check_limits(Manager *m, uid_t requester, const char *object) {
        size_t total;

        if (!m->requests.open)
                return refuse(m, "request", object, -ENOTCONN, "requests are unavailable");
        if ((size_t) open_requests(m, requester, &total) >= ACCESS_OPEN_PER_UID_MAX || total >= ACCESS_OPEN_MAX)
                return refuse(m, "request", object, -ACCESS_ERRNO_TOO_MANY_REQUESTS, "too many open requests");
        return 0;
}

int manager_request_access(Manager *m, const char *group, const char *justification, uint64_t duration_usec,
                           uint64_t *ret_id) {
        _cleanup_store_group_ StoreGroup *g = NULL;
        AccessCaller c = caller_of(m);
        AccessRequest r;
        char object[80];
        int k;

        object_of(group, object);
        k = store_group_load(m->store, group, &g);
        if (k < 0)
                return refuse(m, "request", object, k, "access");
        /* Members read the keys already, and root can read anything: a grant would only
         * displace a member's link (the helper refuses it too). */
        if (c.uid == 0 || access_caller_in_group(&c, g->gid))
                return refuse(m, "request", object, -ACCESS_ERRNO_ALREADY_MEMBER, "access");
        k = check_limits(m, c.uid, object);
        if (k < 0)
                return k;
        k = access_request_init(&r, ACCESS_KIND_ACCESS, group, 0, c.uid, justification, duration_usec, &g->policy,
                                manager_now_usec());
        if (k < 0)
                return refuse(m, "request", object, k, "access");
        return add_request(m, &r, ret_id);
}

int manager_request_retire(Manager *m, const char *group, uint32_t generation, const char *justification,
                           uint64_t *ret_id) {
        _cleanup_store_group_ StoreGroup *g = NULL;
        const StoreGeneration *gen;
        AccessCaller c = caller_of(m);
        AccessRequest r;
        char object[80];
        int k;

        object_of(group, object);
        k = store_group_load(m->store, group, &g);
        if (k < 0)
                return refuse(m, "request", object, k, "retire");
        gen = store_group_find_generation(g, generation);
        if (gen && gen->state == GENERATION_ACTIVE)
                return refuse(m, "request", object, -EBUSY, "retire of the active generation");
        if (gen && gen->state == GENERATION_RETIRED)
                return refuse(m, "request", object, -EKEYREVOKED, "retire");
        if (!g->policy.retire_needs_approval) {
                *ret_id = 0;
                return manager_retire(m, group, generation);
        }
        k = check_limits(m, c.uid, object);
        if (k < 0)
                return k;
        k = access_request_init(&r, ACCESS_KIND_RETIRE, group, generation, c.uid, justification, 0, &g->policy,
                                manager_now_usec());
        if (k < 0)
                return refuse(m, "request", object, k, "retire");
        return add_request(m, &r, ret_id);
}

int manager_request_store(Manager *m, AccessKind kind, const char *target, const char *spec,
                          const char *justification, const StorePolicy *policy, uint64_t *ret_id) {
        AccessCaller c = caller_of(m);
        AccessRequest r;
        int k;

        k = check_limits(m, c.uid, "store");
        if (k < 0)
                return k;
        k = access_request_init_store(&r, kind, target, spec, c.uid, justification, policy, manager_now_usec());
        if (k < 0)
                return refuse(m, "request", "store", k, access_kind_to_string(kind));
        return add_request(m, &r, ret_id);
}

/* The grant: copies of the group's generations that only the requester's uid reads, with a
 * kernel timeout of the time left (rounded up to whole seconds: the kernel's unit). */
static int run_grant(Manager *m, const AccessRequest *r) {
        _cleanup_keyring_manifest_ KeyringManifest *manifest = NULL;
        _cleanup_store_group_ StoreGroup *g = NULL;
        char uid[32], seconds[32];
        uint64_t now = manager_now_usec();
        int k;

        if (r->expires_usec <= now)
                return -ETIME;
        k = manager_store_usable(m);
        if (k < 0)
                return k;
        k = store_group_load(m->store, r->group, &g);
        if (k < 0)
                return k;
        /* Every generation that still has a key, up to what a manifest holds: a grant is for
         * reading old content too, and the upcall serves members only. */
        k = loader_build_manifest(m->store, g, STORE_HOT_WINDOW_MAX, NULL, 0, &manifest);
        if (k < 0)
                return k;
        (void) snprintf(uid, sizeof(uid), "--uid=%u", (unsigned) r->requester);
        (void) snprintf(seconds, sizeof(seconds), "--seconds=%llu",
                        (unsigned long long) ((r->expires_usec - now + 999999U) / 1000000U));
        k = loader_run_helper(manifest, (char *[]) { (char *) "grant", uid, seconds, NULL });
        if (k < 0)
                return k;
        if (k > 0) {
                manager_log("%s grant for uid %u to group %s exited with status %d", loader_helper_path(),
                            (unsigned) r->requester, r->group, k);
                return -MANAGER_ERRNO_LOAD_FAILED;
        }
        return 0;
}

static int run_revoke_grant(const AccessRequest *r) {
        char uid[32];
        int k;

        (void) snprintf(uid, sizeof(uid), "--uid=%u", (unsigned) r->requester);
        k = loader_run_helper(NULL, (char *[]) { (char *) "revoke-grant", uid, (char *) r->group, NULL });
        /* No live grant: the kernel timeout ended it already. */
        if (k == KEYRING_HELPER_EXIT_NOT_LOADED)
                return 0;
        if (k != 0) {
                manager_log("%s revoke-grant for uid %u in group %s failed (%d); the kernel timeout still ends it",
                            loader_helper_path(), (unsigned) r->requester, r->group, k);
                return k < 0 ? k : -MANAGER_ERRNO_LOAD_FAILED;
        }
        return 0;
}

/* Close slot in state s (audited as event), durable before it is announced. */
static int close_request(Manager *m, AccessRequest *slot, AccessState s, const char *event, uid_t by,
                         const char *reason) {
        AccessRequest r = *slot;
        char object[REQUEST_OBJECT_MAX];
        int k;

        k = manager_audit(m, event, AUDIT_OUTCOME_OK, request_object(slot, object), "%s %s%s%s",
                          access_kind_to_string(slot->kind), request_subject(slot, (char[REQUEST_OBJECT_MAX]) {}),
                          reason && *reason ? ": " : "", reason ?: "");
        if (k < 0)
                return k;
        access_close(&r, s, by, reason, manager_now_usec());
        k = save(m, slot, &r);
        if (k < 0) {
                manager_audit_failure(m, event, object, k);
                return k;
        }
        manager_log("request %llu: %s", (unsigned long long) slot->id, access_state_to_string(s));
        EMIT(m, request_changed, slot, false);
        return 0;
}

/* The last approval of a purge: it waits for the store policy's delay, and meanwhile no key is
 * served. */
static int schedule_purge(Manager *m, AccessRequest *slot) {
        AccessRequest r = *slot;
        char object[REQUEST_OBJECT_MAX];
        StorePolicy policy;
        int k;

        request_object(slot, object);
        k = store_policy_load(m->store, &policy);
        if (k < 0)
                return k;
        access_schedule(&r, manager_now_usec(), policy.purge_delay_usec);
        k = manager_audit(m, "purge-scheduled", AUDIT_OUTCOME_OK, object, "every key is destroyed at %llu",
                          (unsigned long long) r.expires_usec);
        if (k < 0)
                return k;
        k = save(m, slot, &r);
        if (k < 0) {
                manager_audit_failure(m, "purge-scheduled", object, k);
                return k;
        }
        (void) manager_purge_schedule(m, slot);
        EMIT(m, request_changed, slot, false);
        return 0;
}

/* A retire or protector change, carried out; its outcome closes the request. */
static int carry_out_change(Manager *m, AccessRequest *slot) {
        int k;

        if (slot->kind == ACCESS_KIND_RETIRE)
                k = manager_retire(m, slot->group, slot->generation);
        else if (slot->kind == ACCESS_KIND_PROTECTOR_ADD)
                k = manager_protector_add_now(m, slot->target, slot->spec);
        else if (slot->kind == ACCESS_KIND_HOST_ENROL)
                k = manager_host_enrol_now(m, slot->target);
        else if (slot->kind == ACCESS_KIND_HOST_REMOVE)
                k = manager_host_remove_now(m, slot->target);
        else
                k = manager_protector_remove_now(m, slot->target);
        if (k < 0) {
                (void) close_request(m, slot, ACCESS_STATE_FAILED, "request-failed", 0, strerror(-k));
                return k;
        }
        return close_request(m, slot, ACCESS_STATE_DONE, "request-done", 0, NULL);
}

/* All levels approved: grant, schedule or carry out. A failure ends the request "failed", with
 * the reason. */
static int carry_out(Manager *m, AccessRequest *slot) {
        AccessRequest r = *slot;
        char object[REQUEST_OBJECT_MAX];
        int k;

        request_object(slot, object);
        if (slot->kind == ACCESS_KIND_PURGE)
                return schedule_purge(m, slot);
        if (slot->kind != ACCESS_KIND_ACCESS)
                return carry_out_change(m, slot);

        access_grant(&r, manager_now_usec());
        k = manager_audit(m, "grant", AUDIT_OUTCOME_OK, object, "group/%s uid %u until %llu", r.group,
                          (unsigned) r.requester, (unsigned long long) r.expires_usec);
        if (k < 0)
                return k;
        /* Durable first: a dkmd killed right after granting finds the grant at start and ends it
         * on time; a grant the file does not know of would end by the kernel timeout alone. */
        k = save(m, slot, &r);
        if (k < 0) {
                manager_audit_failure(m, "grant", object, k);
                return k;
        }
        k = run_grant(m, slot);
        if (k < 0) {
                manager_audit_failure(m, "grant", object, k);
                (void) close_request(m, slot, ACCESS_STATE_FAILED, "request-failed", 0, "the grant could not be made");
                return k;
        }
        manager_log("request %llu: granted uid %u access to group %s for %llu s", (unsigned long long) slot->id,
                    (unsigned) slot->requester, slot->group, (unsigned long long) (slot->duration_usec / 1000000U));
        EMIT(m, request_changed, slot, false);
        return 0;
}

/* Looks the request up for an action; unknown ids are refused and audited. */
static int find_for(Manager *m, uint64_t id, const char *event, AccessRequest **ret) {
        char object[REQUEST_OBJECT_MAX];

        *ret = manager_request_find(m, id);
        if (*ret)
                return 0;
        (void) snprintf(object, sizeof(object), "request/%llu", (unsigned long long) id);
        return refuse(m, event, object, -ACCESS_ERRNO_NO_SUCH_REQUEST, event);
}

int manager_request_approve(Manager *m, uint64_t id) {
        AccessCaller c = caller_of(m);
        AccessRequest *slot, r;
        char object[REQUEST_OBJECT_MAX];
        int k, level, last;

        k = find_for(m, id, "approve", &slot);
        if (k < 0)
                return k;
        request_object(slot, object);
        level = access_check_approve(slot, &c, manager_now_usec());
        if (level < 0)
                return refuse(m, "approve", object, level, "approve");
        k = manager_audit(m, "approve", AUDIT_OUTCOME_OK, object, "level %d of %zu (gid %u)", level + 1,
                          slot->n_levels, (unsigned) slot->levels[level]);
        if (k < 0)
                return k;
        r = *slot;
        last = access_approve(&r, &c, manager_now_usec());
        k = save(m, slot, &r);
        if (k < 0) {
                manager_audit_failure(m, "approve", object, k);
                return k;
        }
        EMIT(m, request_changed, slot, false);
        return last ? carry_out(m, slot) : 0;
}

int manager_request_deny(Manager *m, uint64_t id, const char *reason) {
        AccessCaller c = caller_of(m);
        AccessRequest *slot;
        char object[REQUEST_OBJECT_MAX];
        int k;

        k = find_for(m, id, "deny", &slot);
        if (k < 0)
                return k;
        k = access_check_deny(slot, &c, reason, manager_now_usec());
        if (k < 0)
                return refuse(m, "deny", request_object(slot, object), k, "deny");
        return close_request(m, slot, ACCESS_STATE_DENIED, "deny", c.uid, reason);
}

int manager_request_cancel(Manager *m, uint64_t id, bool admin) {
        AccessCaller c = caller_of(m);
        AccessRequest *slot;
        char object[REQUEST_OBJECT_MAX];
        bool scheduled;
        int k;

        k = find_for(m, id, "cancel", &slot);
        if (k < 0)
                return k;
        k = access_check_cancel(slot, &c, manager_now_usec());
        scheduled = slot->state == ACCESS_STATE_SCHEDULED;
        /* Stopping a purge is always allowed to dkmd's admins; starting one never is alone. */
        if (k == -EACCES && admin && scheduled)
                k = 0;
        if (k < 0)
                return refuse(m, "cancel", request_object(slot, object), k, "cancel");
        k = close_request(m, slot, ACCESS_STATE_CANCELLED, scheduled ? "purge-cancel" : "cancel", c.uid, NULL);
        if (k < 0 || !scheduled)
                return k;
        (void) manager_purge_cancelled(m);
        return 0;
}

int manager_request_revoke(Manager *m, uint64_t id, bool admin) {
        AccessCaller c = caller_of(m);
        AccessRequest *slot;
        char object[REQUEST_OBJECT_MAX];
        int k;

        k = find_for(m, id, "revoke", &slot);
        if (k < 0)
                return k;
        k = access_check_revoke(slot, &c);
        /* Admins may end any grant; they may not grant one. */
        if (k == -EACCES && admin && slot->state == ACCESS_STATE_GRANTED)
                k = 0;
        if (k < 0)
                return refuse(m, "revoke", request_object(slot, object), k, "revoke");
        /* The kernel first: ending access is never held back by the audit log. If the record
         * cannot be written the caller hears AuditFailed and the request stays "granted" (with
         * its keys gone) until its end, when dkmd records grant-end. */
        k = run_revoke_grant(slot);
        if (k < 0)
                return k;
        return close_request(m, slot, ACCESS_STATE_REVOKED, "revoke", c.uid, NULL);
}

/* The kernel counts a key's timeout in whole seconds of its own clock, so a grant given
 * ceil(time left) seconds ends within 1 s either side of ExpiresUSec. dkmd ends its record this
 * long after ExpiresUSec, so the kernel has always ended the keys first: a natural end is never
 * revoked early and seen as "access revoked". */
#define GRANT_END_SLACK_USEC (1100U * 1000U)

/* A scheduled purge whose time came. Audited first; if the destruction fails it is tried again
 * (the store's purge finishes an interrupted one). */
static int run_purge(Manager *m, AccessRequest *slot) {
        char object[REQUEST_OBJECT_MAX];
        int k;

        k = manager_audit(m, "purge", AUDIT_OUTCOME_OK, request_object(slot, object),
                          "destroying every protector, group key and generation key");
        if (k < 0)
                return k;
        k = manager_purge_now(m);
        if (k < 0) {
                manager_audit_failure(m, "purge", object, k);
                return k;
        }
        return close_request(m, slot, ACCESS_STATE_DONE, "request-done", 0, NULL);
}

void manager_requests_revoke_all(Manager *m, const char *why) {
        for (size_t i = 0; i < m->requests.n; i++) {
                AccessRequest *slot = &m->requests.items[i];

                if (slot->kind != ACCESS_KIND_ACCESS || slot->state != ACCESS_STATE_GRANTED)
                        continue;
                if (run_revoke_grant(slot) < 0)
                        continue; /* its kernel timeout still ends it */
                (void) close_request(m, slot, ACCESS_STATE_REVOKED, "revoke", 0, why);
        }
}

int manager_requests_run_due(Manager *m, uint64_t *ret_next) {
        const ManagerCaller *saved = m->caller;
        uint64_t now = manager_now_usec(), next = 0;
        int failed = 0;

        m->caller = NULL; /* dkmd itself ends what ran out */
        for (size_t i = 0; i < m->requests.n; i++) {
                AccessRequest *slot = &m->requests.items[i];
                uint64_t due = access_request_next_usec(slot);
                int k = 0;

                if (due == 0)
                        continue;
                if (slot->state == ACCESS_STATE_GRANTED)
                        due += GRANT_END_SLACK_USEC;
                if (due <= now) {
                        if (slot->state == ACCESS_STATE_PENDING)
                                k = close_request(m, slot, ACCESS_STATE_EXPIRED, "expire", 0, NULL);
                        else if (slot->state == ACCESS_STATE_SCHEDULED)
                                k = run_purge(m, slot);
                        else {
                                /* The kernel ended it already; this cleans up and says so. */
                                (void) run_revoke_grant(slot);
                                k = close_request(m, slot, ACCESS_STATE_ENDED, "grant-end", 0, NULL);
                        }
                        if (k < 0) {
                                failed = k;
                                due = now + MANAGER_RETRY_USEC;
                        } else
                                continue;
                }
                if (next == 0 || due < next)
                        next = due;
        }
        prune_closed(m, now);
        m->caller = saved;
        *ret_next = next;
        return failed;
}
