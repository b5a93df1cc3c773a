/* SPDX-License-Identifier: MIT */
/* dkmd in a fleet: the ManagerFleet pull/push around each change, and the follower on sd-event. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>

#include "dkmd-fleet.h"
#include "fleet-ldap.h"

#define log_fleet(fmt, ...) fprintf(stderr, "dkmd: fleet: " fmt "\n", ##__VA_ARGS__)

/* The directory's revision the local copy of a group was last synced with. */
typedef struct Revision {
        char *name;
        uint64_t revision;
} Revision;

struct DkmdFleet {
        FleetConfig *config;
        FleetConn *conn; /* pulls and pushes; reconnects by itself */
        FleetFollow *follow;
        char *follow_state_path;
        Manager *manager;
        ManagerFleet ops;
        Revision *revisions;
        size_t n_revisions;
        /* The directory's copy of the group being changed (NULL: it has none), to put back when
         * the change cannot be published. One change at a time: dkmd has one thread. */
        char *pulled_name, *pulled_text;
        size_t pulled_size;
        sd_event_source *io, *timer;
        int io_fd;
        bool partitioned; /* the follower's last report: no server answered */
        void (*changed)(void *userdata);
        void *userdata;
};

static uint64_t *revision_slot(DkmdFleet *f, const char *name) {
        Revision *l;

        for (size_t i = 0; i < f->n_revisions; i++)
                if (strcmp(f->revisions[i].name, name) == 0)
                        return &f->revisions[i].revision;
        l = reallocarray(f->revisions, f->n_revisions + 1, sizeof(*l));
        if (!l)
                return NULL;
        f->revisions = l;
        l[f->n_revisions] = (Revision) { .name = strdup(name) };
        if (!l[f->n_revisions].name)
                return NULL;
        return &l[f->n_revisions++].revision;
}

static int fleet_errno(int r) {
        return r == -EHOSTDOWN ? -MANAGER_ERRNO_FLEET_UNAVAILABLE : r;
}

/* Make the local file the directory's text (unchanged files are not rewritten). Returns 1 if the
 * local copy changed, 0 if it was the same. */
static int import(DkmdFleet *f, const char *name, const char *text, size_t size) {
        _cleanup_free_ char *local = NULL;
        size_t local_size = 0;
        int r;

        if (store_group_export(f->manager->store, name, &local, &local_size) >= 0 && local_size == size &&
            memcmp(local, text, size) == 0)
                return 0;
        r = store_group_import(f->manager->store, name, text, size);
        if (r < 0) {
                log_fleet("group %s from the directory does not fit this store: %s", name,
                          store_last_error(f->manager->store) ?: strerror(-r));
                return r;
        }
        return 1;
}

static int on_pull(void *userdata, const char *name) {
        DkmdFleet *f = userdata;
        _cleanup_(fleet_group_freep) FleetGroup *g = NULL;
        uint64_t *rev;
        int r;

        free(f->pulled_name);
        free(f->pulled_text);
        f->pulled_name = f->pulled_text = NULL;
        r = fleet_group_get(f->conn, name, &g);
        if (r == -ENOENT) {
                /* New to the directory: published with expected revision 0. */
                rev = revision_slot(f, name);
                if (!rev)
                        return -ENOMEM;
                *rev = 0;
                f->pulled_name = strdup(name);
                return f->pulled_name ? 0 : -ENOMEM;
        }
        if (r < 0) {
                log_fleet("cannot read group %s from the directory: %s", name, fleet_last_error());
                return fleet_errno(r);
        }
        r = import(f, name, g->text, g->size);
        if (r < 0)
                return r;
        rev = revision_slot(f, name);
        if (!rev)
                return -ENOMEM;
        *rev = g->revision;
        f->pulled_name = strdup(name);
        f->pulled_text = TAKE_PTR(g->text);
        f->pulled_size = g->size;
        return f->pulled_name ? 0 : -ENOMEM;
}

/* The change could not be published: the local file goes back to what the directory holds. */
static void put_back(DkmdFleet *f, const char *name) {
        int r;

        if (!f->pulled_name || strcmp(f->pulled_name, name) != 0)
                return;
        r = f->pulled_text ? store_group_import(f->manager->store, name, f->pulled_text, f->pulled_size)
                           : store_group_discard(f->manager->store, name);
        if (r < 0)
                log_fleet("cannot put group %s back to the directory's copy: %s", name,
                          store_last_error(f->manager->store) ?: strerror(-r));
}

static int on_push(void *userdata, const char *name) {
        DkmdFleet *f = userdata;
        _cleanup_(fleet_group_freep) FleetGroup *g = NULL;
        _cleanup_free_ char *text = NULL;
        uint64_t *rev = revision_slot(f, name), published;
        size_t size;
        int r;

        if (!rev)
                return -ENOMEM;
        r = store_group_export(f->manager->store, name, &text, &size);
        if (r < 0)
                return r;
        r = fleet_group_put(f->conn, name, text, size, *rev, &published);
        if (r >= 0) {
                *rev = published;
                log_fleet("group %s: published revision %llu to %s", name, (unsigned long long) published,
                          fleet_conn_uri(f->conn) ?: "?");
                return 0;
        }
        if (r == -ESTALE) {
                /* Another host was first: adopt its version (the follower would bring it too). */
                if (fleet_group_get(f->conn, name, &g) >= 0 && import(f, name, g->text, g->size) >= 0)
                        *rev = g->revision;
                else
                        put_back(f, name);
                log_fleet("group %s: another host changed it first; adopted revision %llu", name,
                          (unsigned long long) *rev);
                return -MANAGER_ERRNO_FLEET_CONFLICT;
        }
        log_fleet("cannot publish group %s: %s; the change is undone", name, fleet_last_error());
        put_back(f, name);
        return fleet_errno(r);
}

/* ---- following ---- */

static bool have_group(DkmdFleet *f, const char *name) {
        _cleanup_store_group_ StoreGroup *g = NULL;

        return store_group_load(f->manager->store, name, &g) >= 0;
}

static int on_group_changed(FleetFollow *follow, const FleetGroup *g, void *userdata) {
        DkmdFleet *f = userdata;
        bool added;
        uint64_t *rev;
        int r;

        if (!fleet_name_is_valid(g->name))
                return 0;
        rev = revision_slot(f, g->name);
        if (!rev)
                return -ENOMEM;
        /* This host's own pushes come back through the follower after they were made, maybe
         * after a newer one: an older revision must not undo a newer local state. */
        if (g->revision <= *rev)
                return 0;
        added = !have_group(f, g->name);
        r = import(f, g->name, g->text, g->size);
        if (r < 0)
                return 0; /* not ours to load; said so, and following goes on */
        *rev = g->revision;
        if (r == 0)
                return 0;
        log_fleet("group %s: revision %llu from the directory", g->name, (unsigned long long) g->revision);
        r = manager_reload(f->manager, g->name, added);
        if (r < 0)
                log_fleet("cannot load group %s: %s", g->name, store_last_error(f->manager->store) ?: strerror(-r));
        return 0;
}

static int on_group_deleted(FleetFollow *follow, const char *name, const char *uuid, void *userdata) {
        /* dkm never deletes a group: one that disappears from the directory stays here, as it is. */
        log_fleet("group %s left the directory (entryUUID %s); keeping the local copy", name ?: "?", uuid);
        return 0;
}

static void on_connection_changed(FleetFollow *follow, const char *uri, int error, void *userdata) {
        DkmdFleet *f = userdata;

        /* Each failed reconnect reports again; the journal needs the change, not every try. */
        if (uri)
                log_fleet("following %s", uri);
        else if (!f->partitioned)
                log_fleet("no directory server answers (%s): partitioned; serving what this host has, "
                          "changes wait", fleet_last_error());
        f->partitioned = !uri;
        if (f->changed)
                f->changed(f->userdata);
}

static int rearm(DkmdFleet *f);

static int on_follow_event(DkmdFleet *f) {
        int r;

        r = fleet_follow_process(f->follow);
        if (r < 0)
                log_fleet("following failed: %s", strerror(-r));
        return rearm(f);
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        return on_follow_event(userdata);
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        return on_follow_event(userdata);
}

/* The follower's fd changes with each connection, and its reconnect time with each failure. */
static int rearm(DkmdFleet *f) {
        sd_event *event = sd_event_source_get_event(f->timer);
        int fd = fleet_follow_fd(f->follow), r;
        uint64_t next = fleet_follow_next_usec(f->follow);

        if (fd != f->io_fd) {
                f->io = sd_event_source_disable_unref(f->io);
                f->io_fd = -1;
                if (fd >= 0) {
                        r = sd_event_add_io(event, &f->io, fd, EPOLLIN, on_io, f);
                        if (r < 0)
                                return r;
                        f->io_fd = fd;
                }
        }
        if (next == UINT64_MAX)
                return sd_event_source_set_enabled(f->timer, SD_EVENT_OFF);
        r = sd_event_source_set_time(f->timer, next);
        if (r < 0)
                return r;
        return sd_event_source_set_enabled(f->timer, SD_EVENT_ONESHOT);
}

static const char *on_state(void *userdata) {
        return dkmd_fleet_state(userdata);
}

static const char *on_uri(void *userdata) {
        return dkmd_fleet_uri(userdata);
}

/* ---- setup ---- */

static void hex(const uint8_t *p, size_t n, char *out) {
        for (size_t i = 0; i < n; i++)
                (void) snprintf(out + 2 * i, 3, "%02x", p[i]);
}

/* The directory's store id must be this store's: a host never mixes two fleets' groups. */
static int check_store_id(DkmdFleet *f) {
        char ours[FLEET_STORE_ID_HEX + 1], theirs[FLEET_STORE_ID_HEX + 1];
        uint8_t id[STORE_ID_SIZE];
        int r;

        store_id(f->manager->store, id);
        hex(id, sizeof(id), ours);
        r = fleet_store_id_get(f->conn, theirs);
        if (r == -ENOENT) {
                r = fleet_store_id_put(f->conn, ours);
                if (r >= 0)
                        log_fleet("the directory had no store; published this store's id %s", ours);
                return r == -EACCES ? 0 : r; /* only admins write it: a host just goes on */
        }
        if (r < 0)
                return r;
        if (strcmp(ours, theirs) != 0) {
                log_fleet("the directory holds store %s, this host store %s: refusing to mix them", theirs, ours);
                return -EEXIST;
        }
        return 0;
}

/* This host's way in, sealed for it by an enrolled host: installed as protector "fleet-HOST". */
static int install_host_protector(DkmdFleet *f) {
        _cleanup_(fleet_host_freep) FleetHost *h = NULL;
        char name[STORE_PROTECTOR_NAME_MAX + 1];
        int r;

        r = fleet_host_get(f->conn, f->config->host, &h);
        if (r == -ENOENT || (r >= 0 && !h->protector))
                return 0; /* not enrolled (yet) */
        if (r < 0)
                return r;
        (void) snprintf(name, sizeof(name), "fleet-%s", f->config->host);
        r = store_protector_install(f->manager->store, name, h->protector, h->protector_size);
        if (r < 0)
                log_fleet("cannot install this host's protector %s: %s", name,
                          store_last_error(f->manager->store) ?: strerror(-r));
        return r;
}

int dkmd_fleet_new(const char *config_path, Manager *m, const char *state_dir, DkmdFleet **ret) {
        DkmdFleet *f;
        FleetConfigError e = {};
        int r;

        f = calloc(1, sizeof(*f));
        if (!f)
                return -ENOMEM;
        f->manager = m;
        f->io_fd = -1;
        f->ops = (ManagerFleet) {
                .pull = on_pull,
                .push = on_push,
                .state = on_state,
                .uri = on_uri,
                .userdata = f,
        };
        r = fleet_config_load(config_path, &f->config, &e);
        if (r < 0) {
                log_fleet("%s:%u: %s", config_path, e.line, e.message[0] ? e.message : strerror(-r));
                dkmd_fleet_free(f);
                return r;
        }
        if (asprintf(&f->follow_state_path, "%s/fleet-follow.state", state_dir) < 0) {
                dkmd_fleet_free(f);
                return -ENOMEM;
        }
        r = fleet_connect(f->config, &f->conn);
        if (r == -EHOSTDOWN)
                log_fleet("no directory server answers at start (%s): partitioned", fleet_last_error());
        else if (r < 0) {
                log_fleet("cannot use the directory: %s", fleet_last_error());
                dkmd_fleet_free(f);
                return r;
        } else {
                r = check_store_id(f);
                if (r >= 0)
                        r = install_host_protector(f);
                if (r < 0 && r != -EHOSTDOWN) {
                        dkmd_fleet_free(f);
                        return r;
                }
        }
        *ret = f;
        return 0;
}

int dkmd_fleet_start(DkmdFleet *f, sd_event *event, void (*changed)(void *userdata), void *userdata) {
        static const FleetFollowCallbacks callbacks = {
                .group_changed = on_group_changed,
                .group_deleted = on_group_deleted,
                .connection_changed = on_connection_changed,
        };
        int r;

        f->changed = changed;
        f->userdata = userdata;
        /* The connection made at start may be gone; the next operation reconnects by itself. */
        if (!f->conn) {
                r = fleet_connect(f->config, &f->conn);
                if (r < 0 && r != -EHOSTDOWN)
                        return r;
        }
        r = fleet_follow_new(f->config, f->follow_state_path, &callbacks, f, &f->follow);
        if (r < 0)
                return r;
        r = sd_event_add_time(event, &f->timer, CLOCK_MONOTONIC, 1, 0, on_timer, f);
        if (r < 0)
                return r;
        f->manager->fleet = &f->ops;
        return on_follow_event(f);
}

DkmdFleet *dkmd_fleet_free(DkmdFleet *f) {
        if (!f)
                return NULL;
        if (f->manager && f->manager->fleet == &f->ops)
                f->manager->fleet = NULL;
        sd_event_source_disable_unref(f->io);
        sd_event_source_disable_unref(f->timer);
        fleet_follow_free(f->follow);
        fleet_conn_free(f->conn);
        fleet_config_free(f->config);
        for (size_t i = 0; i < f->n_revisions; i++)
                free(f->revisions[i].name);
        free(f->revisions);
        free(f->pulled_name);
        free(f->pulled_text);
        free(f->follow_state_path);
        free(f);
        return NULL;
}

const char *dkmd_fleet_state(const DkmdFleet *f) {
        return f->follow && fleet_follow_connected(f->follow) ? "connected" : "partitioned";
}

const char *dkmd_fleet_uri(const DkmdFleet *f) {
        return (f->follow ? fleet_follow_uri(f->follow) : NULL) ?: "";
}
