/* SPDX-License-Identifier: MIT */
/* Following ou=groups with RFC 4533 refreshAndPersist: a cookie and an entryUUID -> name map kept in
 * a state file, reconnect with backoff across the URI list.
 *
 * libldap's own ldap_sync_* helpers are not used: ldap_sync_poll() hands the first message of a
 * chain to the handlers once per message of the chain (it passes `res`, not `msg`) and frees the
 * rest after a refreshDone, so a burst (a resync of several changes) loses messages; and
 * ldap_sync_init() blocks until the refresh ends, with no timeout. Here every message is taken
 * one at a time (LDAP_MSG_ONE, zero timeout) and decoded with lber, which is all those helpers do. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <poll.h>
#include <string.h>

#include "fileio.h"
#include "fleet-internal.h"

#define BACKOFF_MIN_USEC (1ULL * 1000000ULL)
#define BACKOFF_MAX_USEC (30ULL * 1000000ULL)
#define STATE_SIZE_MAX (4U * 1024U * 1024U)
#define COOKIE_MAX 4096U

typedef struct FollowEntry {
        char uuid[FLEET_UUID_STRING_MAX];
        char *name;
        bool present; /* seen in the current refresh */
} FollowEntry;

struct FleetFollow {
        const FleetConfig *config;
        char *state_dir, *state_name;
        FleetFollowCallbacks cb;
        void *userdata;

        FleetConn *conn;
        int msgid; /* the sync search; -1 none */
        bool refreshed;
        uint64_t connected_usec;
        uint64_t next_usec; /* reconnect attempt (CLOCK_MONOTONIC); UINT64_MAX while connected */
        uint64_t backoff_usec;

        char *cookie;       /* printable, as slapd makes it; NULL: none yet */
        char *saved_cookie; /* the one in the state file */
        FollowEntry *entries;
        size_t n_entries;
        bool dirty;

        FleetFollowStats stats;
};

/* ---- the map ---- */

static FollowEntry *map_find(FleetFollow *f, const char *uuid) {
        for (size_t i = 0; i < f->n_entries; i++)
                if (strcmp(f->entries[i].uuid, uuid) == 0)
                        return &f->entries[i];
        return NULL;
}

static int map_set(FleetFollow *f, const char *uuid, const char *name) {
        FollowEntry *e = map_find(f, uuid), *n;
        char *copy = strdup(name);

        if (!copy)
                return -ENOMEM;
        if (!e) {
                n = realloc(f->entries, (f->n_entries + 1) * sizeof(*n));
                if (!n) {
                        free(copy);
                        return -ENOMEM;
                }
                f->entries = n;
                e = &f->entries[f->n_entries++];
                *e = (FollowEntry) {};
                (void) snprintf(e->uuid, sizeof(e->uuid), "%s", uuid);
        }
        free(e->name);
        e->name = copy;
        e->present = true;
        return 0;
}

static void map_remove(FleetFollow *f, FollowEntry *e) {
        free(e->name);
        *e = f->entries[--f->n_entries];
}

/* ---- the state file ---- */

static bool printable(const char *s, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (s[i] <= 0x20 || s[i] >= 0x7f)
                        return false;
        return true;
}

/* slapd's cookie is "rid=R,sid=S,csn=...": S is the server id of the provider that made it. Sent
 * back to another provider after a failover, that provider would take this follower for provider S
 * and skip every change that came from S ("skipping original sid"). The sid is dropped; the rest
 * (the CSN of each provider) means the same on every provider. */
static void strip_server_ids(char *cookie) {
        char *sid = strstr(cookie, "sid="), *end;

        if (!sid || (sid != cookie && sid[-1] != ','))
                return;
        end = strchr(sid, ',');
        if (!end)
                return;
        memmove(sid, end + 1, strlen(end + 1) + 1);
}

static int state_load(FleetFollow *f) {
        _cleanup_free_ char *data = NULL;
        size_t size;
        unsigned line = 0;
        int r;

        r = read_file_full_in(f->state_dir, f->state_name, STATE_SIZE_MAX, &data, &size);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return fleet_set_error(r, "%s/%s: cannot read: %s", f->state_dir, f->state_name, strerror(-r));
        for (char *p = data, *nl; p && *p; p = nl) {
                nl = strchr(p, '\n');
                if (nl)
                        *nl++ = 0;
                line++;
                if (p[0] == '#' || p[0] == 0)
                        continue;
                if (strncmp(p, "cookie=", 7) == 0 && !f->cookie && strlen(p + 7) <= COOKIE_MAX &&
                    printable(p + 7, strlen(p + 7)) && p[7]) {
                        f->cookie = strdup(p + 7);
                        if (!f->cookie)
                                return -ENOMEM;
                        strip_server_ids(f->cookie);
                } else if (strncmp(p, "group=", 6) == 0 && strlen(p + 6) > 37 && p[6 + 36] == ' ' &&
                           fleet_name_is_valid(p + 6 + 37)) {
                        p[6 + 36] = 0;
                        if (strspn(p + 6, "0123456789abcdef-") != 36)
                                goto bad;
                        r = map_set(f, p + 6, p + 6 + 37);
                        if (r < 0)
                                return r;
                } else
                        goto bad;
        }
        return 0;
bad:
        return fleet_set_error(-EBADMSG, "%s/%s:%u: not a fleet follower state line (remove the file for a full resync)",
                               f->state_dir, f->state_name, line);
}

static int state_save(FleetFollow *f) {
        _cleanup_free_ char *buf = NULL;
        size_t size = 0;
        FILE *m;
        int r;

        m = open_memstream(&buf, &size);
        if (!m)
                return -ENOMEM;
        fputs("# dkm fleet follower: the sync cookie and entryUUID -> group name; rewritten by dkm\n", m);
        if (f->cookie)
                fprintf(m, "cookie=%s\n", f->cookie);
        for (size_t i = 0; i < f->n_entries; i++)
                fprintf(m, "group=%s %s\n", f->entries[i].uuid, f->entries[i].name);
        if (fclose(m) != 0)
                return -ENOMEM;

        r = write_file_atomic_in(f->state_dir, f->state_name, buf, size, 0600);
        if (r < 0)
                return fleet_set_error(r, "%s/%s: cannot write: %s", f->state_dir, f->state_name, strerror(-r));
        f->dirty = false;
        if (f->cookie && (!f->saved_cookie || strcmp(f->cookie, f->saved_cookie) != 0)) {
                char *c = strdup(f->cookie);

                if (!c)
                        return -ENOMEM;
                free(f->saved_cookie);
                f->saved_cookie = c;
        }
        return 0;
}

static void set_cookie(FleetFollow *f, const struct berval *bv) {
        char *c;

        if (!bv->bv_val || bv->bv_len == 0 || bv->bv_len > COOKIE_MAX || !printable(bv->bv_val, bv->bv_len))
                return; /* slapd's cookies are printable; anything else is not kept */
        if (f->cookie && strlen(f->cookie) == bv->bv_len && memcmp(f->cookie, bv->bv_val, bv->bv_len) == 0)
                return;
        c = strndup(bv->bv_val, bv->bv_len);
        if (!c)
                return;
        strip_server_ids(c);
        if (f->cookie && strcmp(f->cookie, c) == 0) {
                free(c);
                return;
        }
        free(f->cookie);
        f->cookie = c;
        f->dirty = true;
}

/* ---- life cycle ---- */

int fleet_follow_new(const FleetConfig *config, const char *state_path, const FleetFollowCallbacks *cb,
                     void *userdata, FleetFollow **ret) {
        _cleanup_(fleet_follow_freep) FleetFollow *f = NULL;
        _cleanup_free_ char *d = NULL, *b = NULL;
        int r;

        if (!config || !state_path || !cb || !cb->group_changed || !cb->group_deleted || !ret || config->n_uris == 0)
                return -EINVAL;
        f = calloc(1, sizeof(*f));
        d = strdup(state_path);
        b = strdup(state_path);
        if (!f || !d || !b)
                return -ENOMEM;
        f->config = config;
        f->cb = *cb;
        f->userdata = userdata;
        f->msgid = -1;
        f->next_usec = 0; /* connect at the first fleet_follow_process() */
        f->backoff_usec = BACKOFF_MIN_USEC;
        f->state_dir = strdup(dirname(d));
        f->state_name = strdup(basename(b));
        if (!f->state_dir || !f->state_name)
                return -ENOMEM;
        f->conn = calloc(1, sizeof(*f->conn));
        if (!f->conn)
                return -ENOMEM;
        f->conn->config = config;
        f->conn->uri_index = -1;
        if (asprintf(&f->conn->groups_dn, "ou=groups,%s", config->base) < 0) {
                f->conn->groups_dn = NULL;
                return -ENOMEM;
        }
        r = state_load(f);
        if (r < 0)
                return r;
        if (f->cookie) {
                f->saved_cookie = strdup(f->cookie);
                if (!f->saved_cookie)
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(f);
        return 0;
}

FleetFollow *fleet_follow_free(FleetFollow *f) {
        if (!f)
                return NULL;
        fleet_conn_free(f->conn);
        for (size_t i = 0; i < f->n_entries; i++)
                free(f->entries[i].name);
        free(f->entries);
        free(f->cookie);
        free(f->saved_cookie);
        free(f->state_dir);
        free(f->state_name);
        free(f);
        return NULL;
}

static int start_search(FleetFollow *f) {
        char *attrs[] = { (char *) "dkmGroupFile", (char *) "dkmRevision", NULL };
        struct berval cookie = { .bv_len = f->cookie ? strlen(f->cookie) : 0, .bv_val = f->cookie };
        LDAPControl ctrl = { .ldctl_oid = (char *) LDAP_CONTROL_SYNC, .ldctl_iscritical = 1 };
        LDAPControl *ctrls[] = { &ctrl, NULL };
        BerElement *ber;
        int rc;

        ber = ber_alloc_t(LBER_USE_DER);
        if (!ber)
                return -ENOMEM;
        /* syncRequestValue ::= SEQUENCE { mode ENUMERATED, cookie OCTET STRING OPTIONAL,
         * reloadHint BOOLEAN DEFAULT FALSE } */
        if ((f->cookie ? ber_printf(ber, "{eO}", (ber_int_t) LDAP_SYNC_REFRESH_AND_PERSIST, &cookie)
                       : ber_printf(ber, "{e}", (ber_int_t) LDAP_SYNC_REFRESH_AND_PERSIST)) < 0 ||
            ber_flatten2(ber, &ctrl.ldctl_value, 0) < 0) {
                ber_free(ber, 1);
                return -ENOMEM;
        }
        for (size_t i = 0; i < f->n_entries; i++)
                f->entries[i].present = false;
        f->refreshed = false;
        rc = ldap_search_ext(f->conn->ld, f->conn->groups_dn, LDAP_SCOPE_ONELEVEL, "(objectClass=dkmKeyGroup)", attrs,
                             0, ctrls, NULL, NULL, 0, &f->msgid);
        ber_free(ber, 1);
        if (rc != LDAP_SUCCESS) {
                f->msgid = -1;
                return fleet_set_error(fleet_errno_from_ldap(rc) ?: -EIO, "%s: sync search on %s: %s",
                                       fleet_conn_uri(f->conn), f->conn->groups_dn, ldap_err2string(rc));
        }
        return 0;
}

static void schedule_retry(FleetFollow *f, bool at_once) {
        uint64_t now = fleet_now_usec();

        if (at_once) {
                f->next_usec = now;
                f->backoff_usec = BACKOFF_MIN_USEC;
        } else {
                f->next_usec = now + f->backoff_usec;
                f->backoff_usec = MIN(f->backoff_usec * 2, BACKOFF_MAX_USEC);
        }
}

static void lost(FleetFollow *f, int error) {
        bool lived = f->conn->ld && fleet_now_usec() - f->connected_usec >= BACKOFF_MIN_USEC;

        if (f->msgid >= 0 && f->conn->ld)
                (void) ldap_abandon_ext(f->conn->ld, f->msgid, NULL, NULL);
        f->msgid = -1;
        f->refreshed = false;
        fleet_conn_drop(f->conn);
        /* A connection that worked for a while is retried at once (the next server of the list);
         * one that failed at once backs off, so a flapping server is not hammered. */
        schedule_retry(f, lived);
        if (f->cb.connection_changed)
                f->cb.connection_changed(f, NULL, error, f->userdata);
}

static int try_connect(FleetFollow *f) {
        int r;

        r = fleet_conn_ensure(f->conn);
        if (r >= 0)
                r = start_search(f);
        if (r < 0) {
                fleet_conn_drop(f->conn);
                schedule_retry(f, false);
                if (f->cb.connection_changed)
                        f->cb.connection_changed(f, NULL, r, f->userdata);
                return r;
        }
        f->connected_usec = fleet_now_usec();
        f->next_usec = UINT64_MAX;
        f->stats.connects++;
        if (f->cb.connection_changed)
                f->cb.connection_changed(f, fleet_conn_uri(f->conn), 0, f->userdata);
        return 0;
}

/* ---- messages ---- */

static int apply_delete(FleetFollow *f, const char *uuid, const char *dn) {
        FollowEntry *e = map_find(f, uuid);
        _cleanup_free_ char *name = NULL;
        int r;

        if (e)
                name = TAKE_PTR(e->name);
        else
                name = fleet_name_from_dn(dn);
        if (e)
                map_remove(f, e);
        r = f->cb.group_deleted(f, name, uuid, f->userdata);
        if (r < 0)
                return fleet_set_error(r, "group %s: the delete was not applied", name ? name : uuid);
        f->stats.deleted++;
        f->dirty = true;
        return 0;
}

static int apply_change(FleetFollow *f, LDAPMessage *msg, const char *uuid) {
        _cleanup_(fleet_group_freep) FleetGroup *g = NULL;
        FollowEntry *e;
        int r;

        r = fleet_group_from_entry(f->conn->ld, msg, NULL, &g);
        if (r < 0) {
                /* unreadable (ACLs) or not dkm's: counted, never applied */
                f->stats.unreadable++;
                return 0;
        }
        (void) snprintf(g->uuid, sizeof(g->uuid), "%s", uuid);
        e = map_find(f, uuid);
        if (e && strcmp(e->name, g->name) != 0) {
                /* renamed under the same entryUUID: the old name is gone */
                r = f->cb.group_deleted(f, e->name, uuid, f->userdata);
                if (r < 0)
                        return fleet_set_error(r, "group %s: the delete was not applied", e->name);
                f->stats.deleted++;
        }
        r = f->cb.group_changed(f, g, f->userdata);
        if (r < 0)
                return fleet_set_error(r, "group %s: revision %" PRIu64 " was not applied", g->name, g->revision);
        r = map_set(f, uuid, g->name);
        if (r < 0)
                return r;
        f->stats.changed++;
        f->dirty = true;
        return 0;
}

static int handle_entry(FleetFollow *f, LDAPMessage *msg) {
        LDAPControl **ctrls = NULL, *state_ctrl = NULL;
        struct berval uuid_bv = {}, cookie = {};
        char uuid[FLEET_UUID_STRING_MAX];
        ber_int_t state = -1;
        BerElement *ber = NULL;
        ber_len_t len;
        char *dn = NULL;
        FollowEntry *e;
        int r = 0;

        if (ldap_get_entry_controls(f->conn->ld, msg, &ctrls) != LDAP_SUCCESS || !ctrls)
                return 0; /* not a sync entry: ignored */
        for (size_t i = 0; ctrls[i]; i++)
                if (strcmp(ctrls[i]->ldctl_oid, LDAP_CONTROL_SYNC_STATE) == 0)
                        state_ctrl = ctrls[i];
        if (!state_ctrl)
                goto finish;
        ber = ber_init(&state_ctrl->ldctl_value);
        if (!ber || ber_scanf(ber, "{em", &state, &uuid_bv) == LBER_ERROR || uuid_bv.bv_len != 16) {
                r = fleet_set_error(-EPROTO, "%s: a malformed sync state control", fleet_conn_uri(f->conn));
                goto finish;
        }
        if (ber_peek_tag(ber, &len) == LDAP_TAG_SYNC_COOKIE && ber_scanf(ber, "m", &cookie) != LBER_ERROR)
                set_cookie(f, &cookie);
        fleet_uuid_format(&uuid_bv, uuid);
        dn = ldap_get_dn(f->conn->ld, msg);

        switch (state) {
        case LDAP_SYNC_PRESENT:
                f->stats.present++;
                e = map_find(f, uuid);
                if (e)
                        e->present = true;
                break;
        case LDAP_SYNC_ADD:
        case LDAP_SYNC_MODIFY:
                r = apply_change(f, msg, uuid);
                break;
        case LDAP_SYNC_DELETE:
                r = apply_delete(f, uuid, dn);
                break;
        default:
                break;
        }
finish:
        ldap_memfree(dn);
        if (ber)
                ber_free(ber, 1);
        ldap_controls_free(ctrls);
        return r;
}

/* The end of a present phase: what was not reported present is gone. */
static int apply_presents(FleetFollow *f) {
        for (size_t i = 0; i < f->n_entries;) {
                if (f->entries[i].present) {
                        i++;
                        continue;
                }
                char uuid[FLEET_UUID_STRING_MAX];
                int r;

                memcpy(uuid, f->entries[i].uuid, sizeof(uuid));
                r = apply_delete(f, uuid, NULL); /* removes entries[i]; the last one moves here */
                if (r < 0)
                        return r;
        }
        return 0;
}

static int handle_info(FleetFollow *f, LDAPMessage *msg) {
        char *oid = NULL;
        struct berval *data = NULL, cookie = {};
        BerElement *ber = NULL;
        ber_tag_t tag;
        ber_len_t len;
        int r = 0;

        if (ldap_parse_intermediate(f->conn->ld, msg, &oid, &data, NULL, 0) != LDAP_SUCCESS)
                return fleet_set_error(-EPROTO, "%s: a malformed intermediate response", fleet_conn_uri(f->conn));
        if (!oid || strcmp(oid, LDAP_SYNC_INFO) != 0 || !data)
                goto finish;
        ber = ber_init(data);
        if (!ber) {
                r = -ENOMEM;
                goto finish;
        }
        tag = ber_peek_tag(ber, &len);
        switch (tag) {
        case LDAP_TAG_SYNC_NEW_COOKIE:
                if (ber_scanf(ber, "m", &cookie) != LBER_ERROR)
                        set_cookie(f, &cookie);
                break;
        case LDAP_TAG_SYNC_REFRESH_DELETE:
        case LDAP_TAG_SYNC_REFRESH_PRESENT: {
                ber_int_t done = 1;

                if (ber_scanf(ber, "{") == LBER_ERROR)
                        goto malformed;
                if (ber_peek_tag(ber, &len) == LDAP_TAG_SYNC_COOKIE) {
                        if (ber_scanf(ber, "m", &cookie) == LBER_ERROR)
                                goto malformed;
                        set_cookie(f, &cookie);
                }
                if (ber_peek_tag(ber, &len) == LDAP_TAG_REFRESHDONE && ber_scanf(ber, "b", &done) == LBER_ERROR)
                        goto malformed;
                if (tag == LDAP_TAG_SYNC_REFRESH_PRESENT) {
                        r = apply_presents(f);
                        if (r < 0)
                                goto finish;
                }
                if (done && !f->refreshed) {
                        f->refreshed = true;
                        f->stats.refreshes++;
                        f->dirty = true;
                        if (f->cb.refresh_done)
                                f->cb.refresh_done(f, f->userdata);
                }
                break;
        }
        case LDAP_TAG_SYNC_ID_SET: {
                ber_int_t deletes = 0;
                BerVarray uuids = NULL;

                if (ber_scanf(ber, "{") == LBER_ERROR)
                        goto malformed;
                if (ber_peek_tag(ber, &len) == LDAP_TAG_SYNC_COOKIE) {
                        if (ber_scanf(ber, "m", &cookie) == LBER_ERROR)
                                goto malformed;
                        set_cookie(f, &cookie);
                }
                if (ber_peek_tag(ber, &len) == LDAP_TAG_REFRESHDELETES && ber_scanf(ber, "b", &deletes) == LBER_ERROR)
                        goto malformed;
                if (ber_scanf(ber, "[W]}", &uuids) == LBER_ERROR)
                        goto malformed;
                for (size_t i = 0; uuids && uuids[i].bv_val && r >= 0; i++) {
                        char uuid[FLEET_UUID_STRING_MAX];
                        FollowEntry *e;

                        fleet_uuid_format(&uuids[i], uuid);
                        if (deletes)
                                r = map_find(f, uuid) ? apply_delete(f, uuid, NULL) : 0;
                        else {
                                f->stats.present++;
                                e = map_find(f, uuid);
                                if (e)
                                        e->present = true;
                        }
                }
                ber_bvarray_free(uuids);
                break;
        }
        default:
                break;
        }
        goto finish;
malformed:
        r = fleet_set_error(-EPROTO, "%s: a malformed sync info message", fleet_conn_uri(f->conn));
finish:
        if (ber)
                ber_free(ber, 1);
        ldap_memfree(oid);
        ber_bvfree(data);
        return r;
}

static int handle_result(FleetFollow *f, LDAPMessage *msg) {
        char *text = NULL;
        int err = LDAP_OTHER, r;

        (void) ldap_parse_result(f->conn->ld, msg, &err, NULL, &text, NULL, NULL, 0);
        f->msgid = -1;
        if (err == LDAP_SYNC_REFRESH_REQUIRED) {
                /* the cookie is too old for the server: start over without it (a present phase
                 * then tells what was deleted meanwhile) */
                free(f->cookie);
                f->cookie = NULL;
                ldap_memfree(text);
                return start_search(f);
        }
        r = fleet_set_error(fleet_errno_from_ldap(err) ?: -EIO, "%s: the sync search on %s ended: %s%s%s",
                            fleet_conn_uri(f->conn), f->conn->groups_dn, ldap_err2string(err), text && *text ? ": " : "",
                            text ? text : "");
        ldap_memfree(text);
        return r;
}

static int drain(FleetFollow *f) {
        for (;;) {
                struct timeval zero = { 0, 0 };
                LDAPMessage *msg = NULL;
                int rc, r = 0;

                rc = ldap_result(f->conn->ld, f->msgid, LDAP_MSG_ONE, &zero, &msg);
                if (rc == 0)
                        return 0;
                if (rc < 0) {
                        int err = LDAP_SERVER_DOWN;

                        (void) ldap_get_option(f->conn->ld, LDAP_OPT_RESULT_CODE, &err);
                        return fleet_set_error(-EHOSTDOWN, "%s: connection lost: %s", fleet_conn_uri(f->conn),
                                               ldap_err2string(err));
                }
                switch (rc) {
                case LDAP_RES_SEARCH_ENTRY:
                        r = handle_entry(f, msg);
                        break;
                case LDAP_RES_INTERMEDIATE:
                        r = handle_info(f, msg);
                        break;
                case LDAP_RES_SEARCH_RESULT:
                        r = handle_result(f, msg);
                        break;
                default:
                        break;
                }
                ldap_msgfree(msg);
                if (r < 0)
                        return r;
        }
}

int fleet_follow_process(FleetFollow *f) {
        int r;

        if (!f)
                return -EINVAL;
        for (unsigned attempt = 0; attempt < 2; attempt++) {
                if (!f->conn->ld) {
                        if (fleet_now_usec() < f->next_usec)
                                return 0;
                        if (try_connect(f) < 0)
                                return 0;
                }
                r = drain(f);
                if (r >= 0)
                        break;
                if (r == -EHOSTDOWN && f->refreshed && f->dirty)
                        /* the server went away: what was applied so far is kept */
                        (void) state_save(f);
                else {
                        /* a change the caller could not apply (or a protocol error): resume from
                         * the saved cookie, so the reconnect brings the change again */
                        free(f->cookie);
                        f->cookie = f->saved_cookie ? strdup(f->saved_cookie) : NULL;
                        f->dirty = false;
                }
                lost(f, r);
        }
        if (f->dirty && f->refreshed) {
                r = state_save(f);
                if (r < 0)
                        return r;
        }
        return 0;
}

int fleet_follow_fd(const FleetFollow *f) {
        int fd = -1;

        if (!f || !f->conn->ld || ldap_get_option(f->conn->ld, LDAP_OPT_DESC, &fd) != LDAP_OPT_SUCCESS)
                return -1;
        return fd;
}

uint64_t fleet_follow_next_usec(const FleetFollow *f) {
        return f && !f->conn->ld ? f->next_usec : UINT64_MAX;
}

int fleet_follow_wait(FleetFollow *f, uint64_t timeout_usec) {
        uint64_t now = fleet_now_usec(), until = now + timeout_usec, next = fleet_follow_next_usec(f);
        struct pollfd p = { .fd = fleet_follow_fd(f), .events = POLLIN };
        int ms;

        if (next < until)
                until = next;
        ms = until > now ? (int) ((until - now + 999) / 1000) : 0;
        if (poll(p.fd >= 0 ? &p : NULL, p.fd >= 0 ? 1 : 0, ms) < 0 && errno != EINTR)
                return negative_errno();
        return fleet_follow_process(f);
}

bool fleet_follow_connected(const FleetFollow *f) {
        return f && f->conn->ld;
}

bool fleet_follow_refreshed(const FleetFollow *f) {
        return f && f->conn->ld && f->refreshed;
}

const char *fleet_follow_uri(const FleetFollow *f) {
        return f ? fleet_conn_uri(f->conn) : NULL;
}

const FleetFollowStats *fleet_follow_stats(const FleetFollow *f) {
        return &f->stats;
}
