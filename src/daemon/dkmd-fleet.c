/* SPDX-License-Identifier: MIT */
/* dkmd in a fleet: the ManagerFleet pull/push around each change, the follower on sd-event, setup.
 * Hosts (enrolment, this host's protector) are dkmd-fleet-hosts.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>

#include "dkmd-fleet-internal.h"

int dkmd_fleet_errno(int r) {
        return r == -EHOSTDOWN ? -MANAGER_ERRNO_FLEET_UNAVAILABLE : r;
}

/* Make the local file the directory's copy of g, once its fleet seal is checked (a copy changed
 * in the directory, or one that was sealed for another revision, is refused: -EKEYREJECTED);
 * unchanged files are not rewritten. Returns 1 if the local copy changed, 0 if it was the same;
 * the group file itself in *ret_text if asked. */
static int import(DkmdFleet *f, const FleetGroup *g, char **ret_text, size_t *ret_size) {
        _cleanup_free_ char *local = NULL, *text = NULL;
        size_t local_size = 0, size = 0;
        int r;

        r = store_group_fleet_open(f->manager->store, g->name, g->revision, g->text, g->size, &text, &size);
        if (r < 0) {
                log_fleet("group %s revision %llu from the directory is refused: %s", g->name,
                          (unsigned long long) g->revision, store_last_error(f->manager->store) ?: strerror(-r));
                return r == -EBADMSG ? -EKEYREJECTED : r;
        }
        if (store_group_export(f->manager->store, g->name, &local, &local_size) >= 0 && local_size == size &&
            memcmp(local, text, size) == 0)
                r = 0;
        else {
                r = store_group_import(f->manager->store, g->name, text, size);
                if (r < 0) {
                        log_fleet("group %s from the directory does not fit this store: %s", g->name,
                                  store_last_error(f->manager->store) ?: strerror(-r));
                        return r;
                }
                r = 1;
        }
        if (ret_text) {
                *ret_text = TAKE_PTR(text);
                *ret_size = size;
        }
        return r;
}

/* The directory's copy of name, from a server that is not behind this host: revisions only grow,
 * so a server that shows an older one (a provider restarted and still catching up) would have
 * this host change a stale copy, and the replication between providers would then keep one of two
 * conflicting writes. Such a server gets a moment to catch up; then the change is refused. */
#define STALE_RETRIES 5
#define STALE_WAIT_MSEC 200

static int get_current(DkmdFleet *f, const char *name, uint64_t known, FleetGroup **ret) {
        for (unsigned try = 0;; try++) {
                int r = fleet_group_get(f->conn, name, ret);

                if (r < 0 && r != -ENOENT) {
                        log_fleet("cannot read group %s from the directory: %s", name, fleet_last_error());
                        return dkmd_fleet_errno(r);
                }
                if ((r == -ENOENT ? 0 : (*ret)->revision) >= known)
                        return r;
                *ret = fleet_group_free(*ret);
                if (try == STALE_RETRIES) {
                        log_fleet("%s is behind: group %s at an older revision than %llu; refusing to change it now",
                                  fleet_conn_uri(f->conn) ?: "the directory", name, (unsigned long long) known);
                        return -MANAGER_ERRNO_FLEET_UNAVAILABLE;
                }
                (void) nanosleep(&(struct timespec) { 0, STALE_WAIT_MSEC * 1000000L }, NULL);
        }
}

static bool have_group(DkmdFleet *f, const char *name);

static int on_pull(void *userdata, const char *name) {
        DkmdFleet *f = userdata;
        _cleanup_(fleet_group_freep) FleetGroup *g = NULL;
        uint64_t *rev = dkmd_fleet_revision_slot(f, name);
        int r;

        if (!rev)
                return -ENOMEM;
        free(f->pulled_name);
        free(f->pulled_text);
        f->pulled_name = f->pulled_text = NULL;
        /* A change is written where it was read: on the first server of the list whenever it
         * answers, the same for every host. */
        if (fleet_conn_prefer_primary(f->conn) > 0)
                log_fleet("writing to %s again", fleet_conn_uri(f->conn));
        r = get_current(f, name, *rev, &g);
        if (r == -ENOENT) {
                /* New to the directory: published with expected revision 0. */
                f->pulled_name = strdup(name);
                return f->pulled_name ? 0 : -ENOMEM;
        }
        if (r < 0)
                return r;
        r = import(f, g, &f->pulled_text, &f->pulled_size);
        if (r == -EKEYREJECTED && have_group(f, name)) {
                /* The directory's copy was changed there: this host's own copy is the group, and
                 * this change, published over that revision, repairs the entry. */
                r = store_group_export(f->manager->store, name, &f->pulled_text, &f->pulled_size);
                if (r >= 0)
                        log_fleet("group %s: this change replaces the directory's refused copy with this host's", name);
        }
        if (r < 0)
                return r;
        (void) dkmd_fleet_revision_set(f, rev, g->revision);
        f->pulled_name = strdup(name);
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
        _cleanup_free_ char *text = NULL, *sealed = NULL;
        uint64_t *rev = dkmd_fleet_revision_slot(f, name), published;
        size_t size, sealed_size;
        int r;

        if (!rev)
                return -ENOMEM;
        r = store_group_export(f->manager->store, name, &text, &size);
        if (r < 0)
                return r;
        /* sealed for the revision it is written at: the conditional write makes it *rev + 1 */
        r = store_group_fleet_seal(f->manager->store, name, *rev + 1, text, size, &sealed, &sealed_size);
        if (r < 0) {
                log_fleet("cannot seal group %s for the directory: %s; the change is undone", name,
                          store_last_error(f->manager->store) ?: strerror(-r));
                put_back(f, name);
                return r;
        }
        r = fleet_group_put(f->conn, name, sealed, sealed_size, *rev, &published);
        if (r >= 0) {
                (void) dkmd_fleet_revision_set(f, rev, published);
                log_fleet("group %s: published revision %llu to %s", name, (unsigned long long) published,
                          fleet_conn_uri(f->conn) ?: "?");
                return 0;
        }
        if (r == -ESTALE) {
                /* Another host was first: adopt its version (the follower would bring it too). */
                if (fleet_group_get(f->conn, name, &g) >= 0 && import(f, g, NULL, NULL) >= 0)
                        (void) dkmd_fleet_revision_set(f, rev, g->revision);
                else
                        put_back(f, name);
                log_fleet("group %s: another host changed it first; adopted revision %llu", name,
                          (unsigned long long) *rev);
                return -MANAGER_ERRNO_FLEET_CONFLICT;
        }
        log_fleet("cannot publish group %s: %s; the change is undone", name, fleet_last_error());
        put_back(f, name);
        return dkmd_fleet_errno(r);
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

        /* A locked host cannot check the fleet's seal: it takes every group once it is unlocked
         * (dkmd_fleet_try_enrolment(), the periodic read). */
        if (!fleet_name_is_valid(g->name) || !store_is_unlocked(f->manager->store))
                return 0;
        rev = dkmd_fleet_revision_slot(f, g->name);
        if (!rev)
                return -ENOMEM;
        /* This host's own pushes come back through the follower after they were made, maybe
         * after a newer one: an older revision must not undo a newer local state. */
        if (g->revision <= *rev)
                return 0;
        added = !have_group(f, g->name);
        r = import(f, g, NULL, NULL);
        if (r < 0)
                return 0; /* refused or not ours to load; said so, and following goes on */
        (void) dkmd_fleet_revision_set(f, rev, g->revision);
        if (r == 0)
                return 0;
        log_fleet("group %s: revision %llu from the directory", g->name, (unsigned long long) g->revision);
        r = manager_reload(f->manager, g->name, added);
        if (r < 0)
                log_fleet("cannot load group %s: %s", g->name, store_last_error(f->manager->store) ?: strerror(-r));
        return 0;
}

void dkmd_fleet_catch_up(DkmdFleet *f) {
        _cleanup_strv_free_ char **names = NULL;
        int r;

        r = fleet_group_list(f->conn, &names);
        if (r < 0) {
                log_fleet("cannot list the directory's groups to catch up: %s", fleet_last_error());
                return;
        }
        for (char **n = names; *n; n++) {
                _cleanup_(fleet_group_freep) FleetGroup *g = NULL;

                r = fleet_group_get(f->conn, *n, &g);
                if (r < 0)
                        log_fleet("cannot read group %s to catch up: %s", *n, fleet_last_error());
                else
                        (void) on_group_changed(NULL, g, f); /* takes only what is newer */
        }
}

static int on_catch_up_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        DkmdFleet *f = userdata;
        uint64_t interval = f->manager->protectors.check_interval_usec ?: MANAGER_CHECK_INTERVAL_DEFAULT_USEC;

        if (fleet_follow_connected(f->follow))
                dkmd_fleet_catch_up(f);
        if (sd_event_source_set_time(s, usec + interval) < 0)
                return 0;
        return sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

/* Each (re)connect's refresh is done: catch up for sure, and see whether this host was enrolled. */
static void on_refresh_done(FleetFollow *follow, void *userdata) {
        dkmd_fleet_catch_up(userdata);
        dkmd_fleet_try_enrolment(userdata);
}

static int on_group_deleted(FleetFollow *follow, const char *name, const char *uuid, void *userdata) {
        /* dkm never deletes a group: one that disappears from the directory stays here, as it is. */
        log_fleet("group %s left the directory (entryUUID %s); keeping the local copy", name ?: "?", uuid);
        return 0;
}

static void on_connection_changed(FleetFollow *follow, const char *uri, int error, void *userdata) {
        DkmdFleet *f = userdata;

        /* Each failed reconnect reports again; the journal needs the change, not every try. */
        if (uri) {
                log_fleet("following %s", uri);
                dkmd_fleet_catch_up(f);
        }
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

/* Each connection of the follower needs its own watch, and its reconnect time changes with each
 * failure. A connection, not a descriptor number: a reconnect often gets the number the lost
 * connection had, and the kernel dropped that socket's epoll registration when it was closed, so
 * the old watch would never fire again (the follower then sat deaf until dkmd's periodic read). */
static int rearm(DkmdFleet *f) {
        sd_event *event = sd_event_source_get_event(f->timer);
        int fd = fleet_follow_fd(f->follow), r;
        uint64_t next = fleet_follow_next_usec(f->follow), connects = fleet_follow_stats(f->follow)->connects;

        if (fd != f->io_fd || connects != f->io_connects) {
                f->io = sd_event_source_disable_unref(f->io);
                f->io_fd = -1;
                if (fd >= 0) {
                        r = sd_event_add_io(event, &f->io, fd, EPOLLIN, on_io, f);
                        if (r < 0)
                                return r;
                        f->io_fd = fd;
                        f->io_connects = connects;
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
                .host_get = dkmd_fleet_host_get,
                .enrol = dkmd_fleet_enrol,
                .remove_host = dkmd_fleet_remove_host,
                .list_hosts = dkmd_fleet_list_hosts,
                .userdata = f,
        };
        r = fleet_config_load(config_path, &f->config, &e);
        if (r < 0) {
                log_fleet("%s:%u: %s", config_path, e.line, e.message[0] ? e.message : strerror(-r));
                dkmd_fleet_free(f);
                return r;
        }
        f->state_dir = strdup(state_dir);
        if (!f->state_dir || asprintf(&f->follow_state_path, "%s/fleet-follow.state", state_dir) < 0) {
                f->follow_state_path = NULL;
                dkmd_fleet_free(f);
                return -ENOMEM;
        }
        dkmd_fleet_revisions_load(f);
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
                        r = dkmd_fleet_install_host_protector(f);
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
                .refresh_done = on_refresh_done,
        };
        uint64_t interval = f->manager->protectors.check_interval_usec ?: MANAGER_CHECK_INTERVAL_DEFAULT_USEC, now;
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
        r = sd_event_now(event, CLOCK_MONOTONIC, &now);
        if (r < 0)
                return r;
        /* The safety net under the follower: every check interval, read what the directory holds. */
        r = sd_event_add_time(event, &f->catch_up_timer, CLOCK_MONOTONIC, now + interval, 0, on_catch_up_timer, f);
        if (r < 0)
                return r;
        /* Waiting for this host's enrolment: look again every check interval. */
        r = sd_event_add_time(event, &f->enrol_timer, CLOCK_MONOTONIC, now + interval, 0, dkmd_fleet_on_enrol_timer, f);
        if (r < 0)
                return r;
        if (!dkmd_fleet_waiting_for_enrolment(f))
                (void) sd_event_source_set_enabled(f->enrol_timer, SD_EVENT_OFF);
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
        sd_event_source_disable_unref(f->enrol_timer);
        sd_event_source_disable_unref(f->catch_up_timer);
        free(f->installed);
        fleet_follow_free(f->follow);
        fleet_conn_free(f->conn);
        fleet_config_free(f->config);
        for (size_t i = 0; i < f->n_revisions; i++)
                free(f->revisions[i].name);
        free(f->revisions);
        free(f->pulled_name);
        free(f->pulled_text);
        free(f->follow_state_path);
        free(f->state_dir);
        free(f);
        return NULL;
}

const char *dkmd_fleet_state(const DkmdFleet *f) {
        return f->follow && fleet_follow_connected(f->follow) ? "connected" : "partitioned";
}

const char *dkmd_fleet_uri(const DkmdFleet *f) {
        return (f->follow ? fleet_follow_uri(f->follow) : NULL) ?: "";
}
