/* SPDX-License-Identifier: MIT */
/* The newest directory revision of each group this host took or published, kept in
 * STATE/fleet-revisions across restarts. A copy's fleet seal binds its revision (FLEET.md,
 * "Integrity"), so a host that remembers what it has seen refuses an older genuine copy served
 * again by the directory (a retired generation brought back, a weaker policy), after a restart
 * too. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dkmd-fleet-internal.h"
#include "fileio.h"

#define REVISIONS_FILE "fleet-revisions"
#define REVISIONS_SIZE_MAX (1U << 20)

uint64_t *dkmd_fleet_revision_slot(DkmdFleet *f, const char *name) {
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

void dkmd_fleet_revisions_load(DkmdFleet *f) {
        _cleanup_free_ char *data = NULL;
        size_t size;
        unsigned line = 0;
        int r;

        r = read_file_full_in(f->state_dir, REVISIONS_FILE, REVISIONS_SIZE_MAX, &data, &size);
        if (r == -ENOENT)
                return;
        if (r < 0) {
                log_fleet("%s/%s: cannot read: %s; older copies of groups are refused only from now on", f->state_dir,
                          REVISIONS_FILE, strerror(-r));
                return;
        }
        for (char *p = data, *nl; p && *p; p = nl) {
                char name[FLEET_NAME_MAX + 1];
                uint64_t revision, *slot;
                int n = 0;

                nl = strchr(p, '\n');
                if (nl)
                        *nl++ = 0;
                line++;
                if (p[0] == '#')
                        continue;
                /* "NAME REVISION" as save() writes it: one space, decimal digits only (sscanf alone
                 * would take a sign) */
                if (sscanf(p, "%64s %" SCNu64 "%n", name, &revision, &n) != 2 || p[n] != 0 ||
                    !fleet_name_is_valid(name) || p[strlen(name)] != ' ' ||
                    strspn(p + strlen(name) + 1, "0123456789") != strlen(p + strlen(name) + 1)) {
                        log_fleet("%s/%s:%u: not a \"group revision\" line; ignored", f->state_dir, REVISIONS_FILE, line);
                        continue;
                }
                slot = dkmd_fleet_revision_slot(f, name);
                if (slot && revision > *slot)
                        *slot = revision;
        }
}

static int save(DkmdFleet *f) {
        _cleanup_free_ char *buf = NULL;
        size_t size = 0;
        FILE *m = open_memstream(&buf, &size);

        if (!m)
                return -ENOMEM;
        fputs("# dkm fleet: the newest directory revision of each group this host took or published\n", m);
        for (size_t i = 0; i < f->n_revisions; i++)
                if (f->revisions[i].revision > 0)
                        fprintf(m, "%s %" PRIu64 "\n", f->revisions[i].name, f->revisions[i].revision);
        if (fclose(m) != 0)
                return -ENOMEM;
        return write_file_atomic_in(f->state_dir, REVISIONS_FILE, buf, size, 0600);
}

int dkmd_fleet_revision_set(DkmdFleet *f, uint64_t *slot, uint64_t revision) {
        int r;

        if (*slot == revision)
                return 0;
        *slot = revision;
        r = save(f);
        if (r < 0)
                log_fleet("%s/%s: cannot write: %s", f->state_dir, REVISIONS_FILE, strerror(-r));
        return r;
}
