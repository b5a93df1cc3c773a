/* SPDX-License-Identifier: MIT */
/* Load the groups.d directories: precedence by directory, masking, one problem per refused file. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "config.h"
#include "fileio.h"
#include "group-dropin-internal.h"
#include "group-dropin.h"

/* A "*.conf" seen in one of the dirs; prio is the dir's index, lower wins. */
typedef struct Candidate {
        char *name;
        char *path;
        size_t prio;
} Candidate;

typedef struct Loader {
        Candidate *candidates;
        size_t n_candidates;
        GroupDropin **dropins;
        size_t n_dropins;
        char **problems; /* NULL-terminated once non-NULL */
        size_t n_problems;
} Loader;

static void loader_done(Loader *l) {
        for (size_t i = 0; i < l->n_candidates; i++) {
                free(l->candidates[i].name);
                free(l->candidates[i].path);
        }
        free(l->candidates);
        group_dropin_free_array(l->dropins, l->n_dropins);
        strv_free(l->problems);
}

static inline void closedirp(DIR **d) {
        if (*d)
                (void) closedir(*d);
}

/* r is what dropin_error() returned for msg: -EBADMSG (keep msg as a problem) or -ENOMEM. */
static int take_problem(Loader *l, int r, char *msg) {
        char **p;

        if (r != -EBADMSG)
                return r;
        p = realloc(l->problems, (l->n_problems + 2) * sizeof(char *));
        if (!p) {
                free(msg);
                return -ENOMEM;
        }
        l->problems = p;
        l->problems[l->n_problems++] = msg;
        l->problems[l->n_problems] = NULL;
        return 0;
}

static int add_candidate(Loader *l, const char *dir, const char *file, size_t prio) {
        size_t n = strlen(file), sl = strlen(GROUP_DROPIN_SUFFIX), dl = strlen(dir);
        Candidate c = { .prio = prio }, *a;

        /* Hidden files are editors' temporaries (emacs' ".#x.conf" lock is even a dangling
         * symlink): neither drop-ins nor problems. Other suffixes (.dpkg-old, ~) are ignored. */
        if (file[0] == '.' || n <= sl || strcmp(file + n - sl, GROUP_DROPIN_SUFFIX) != 0)
                return 0;
        c.name = strndup(file, n - sl);
        if (!c.name || asprintf(&c.path, "%s%s%s", dir, dl > 0 && dir[dl - 1] == '/' ? "" : "/", file) < 0) {
                free(c.name);
                return -ENOMEM;
        }
        a = realloc(l->candidates, (l->n_candidates + 1) * sizeof(Candidate));
        if (!a) {
                free(c.name);
                free(c.path);
                return -ENOMEM;
        }
        l->candidates = a;
        l->candidates[l->n_candidates++] = c;
        return 0;
}

static int scan_dir(Loader *l, const char *dir, size_t prio) {
        _cleanup_(closedirp) DIR *d = NULL;
        char *msg;
        int r;

        d = opendir(dir);
        if (!d) {
                if (errno == ENOENT)
                        return 0; /* nothing installed there: fine */
                r = dropin_error(&msg, dir, 0, "cannot open directory: %s", strerror(errno));
                return take_problem(l, r, msg);
        }
        for (;;) {
                struct dirent *de;

                errno = 0;
                de = readdir(d);
                if (!de)
                        break;
                r = add_candidate(l, dir, de->d_name, prio);
                if (r < 0)
                        return r;
        }
        if (errno != 0) {
                r = dropin_error(&msg, dir, 0, "cannot read directory: %s", strerror(errno));
                return take_problem(l, r, msg);
        }
        return 0;
}

/* 1 and the text; 0 if the file masks its name (empty, or /dev/null); -EBADMSG with *ret_error;
 * -ENOMEM. Symlinks are followed: packagers link drop-ins in from elsewhere, and mask with one. */
static int read_dropin(const char *path, char **ret_text, size_t *ret_size, char **ret_error) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *buf = NULL;
        struct stat st;
        ssize_t n;

        /* Look before opening: opening a FIFO blocks, opening a device can have side effects. */
        if (stat(path, &st) < 0)
                return dropin_error(ret_error, path, 0, "cannot read: %s", strerror(errno));
        if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3))
                return 0;
        if (!S_ISREG(st.st_mode))
                return dropin_error(ret_error, path, 0, "not a regular file");

        /* O_NONBLOCK and a second look: should the file be swapped for a FIFO meanwhile, dkmd
         * must not hang on it. */
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return dropin_error(ret_error, path, 0, "cannot open: %s", strerror(errno));
        if (fstat(fd, &st) < 0)
                return dropin_error(ret_error, path, 0, "cannot read: %s", strerror(errno));
        if (!S_ISREG(st.st_mode))
                return dropin_error(ret_error, path, 0, "not a regular file");

        /* One byte beyond the limit, so the parser can tell "too large" from "exactly full". */
        buf = malloc(GROUP_DROPIN_SIZE_MAX + 1);
        if (!buf)
                return -ENOMEM;
        n = loop_read(fd, buf, GROUP_DROPIN_SIZE_MAX + 1);
        if (n < 0)
                return dropin_error(ret_error, path, 0, "cannot read: %s", strerror((int) -n));
        if (n == 0)
                return 0;
        *ret_text = TAKE_PTR(buf);
        *ret_size = (size_t) n;
        return 1;
}

static int load_winner(Loader *l, const Candidate *c) {
        _cleanup_free_ char *text = NULL;
        GroupDropin *d, **a;
        char *msg;
        size_t size = 0;
        int r;

        /* The name first, so even a masking file with a bad name is reported. */
        r = dropin_check_name(c->path, c->name, &msg);
        if (r < 0)
                return take_problem(l, r, msg);
        r = read_dropin(c->path, &text, &size, &msg);
        if (r < 0)
                return take_problem(l, r, msg);
        if (r == 0)
                return 0; /* masked */
        r = group_dropin_parse(c->path, c->name, text, size, &d, &msg);
        if (r < 0)
                return take_problem(l, r, msg);

        a = realloc(l->dropins, (l->n_dropins + 1) * sizeof(GroupDropin *));
        if (!a) {
                group_dropin_free(d);
                return -ENOMEM;
        }
        l->dropins = a;
        l->dropins[l->n_dropins++] = d;
        return 0;
}

static int candidate_cmp(const void *a, const void *b) {
        const Candidate *x = a, *y = b;
        int r = strcmp(x->name, y->name);

        if (r != 0)
                return r;
        return x->prio < y->prio ? -1 : x->prio > y->prio;
}

int group_dropin_load_dirs(const char *const *dirs, GroupDropin ***ret, size_t *ret_n, char ***ret_problems) {
        Loader l = {};
        int r = 0;

        for (size_t i = 0; dirs && dirs[i] && r >= 0; i++)
                r = scan_dir(&l, dirs[i], i);

        /* By name, then by priority: the first of each run of one name is the file that counts,
         * and the result comes out sorted by name. */
        if (l.n_candidates > 0)
                qsort(l.candidates, l.n_candidates, sizeof(Candidate), candidate_cmp);
        for (size_t i = 0; i < l.n_candidates && r >= 0; i++)
                if (i == 0 || strcmp(l.candidates[i].name, l.candidates[i - 1].name) != 0)
                        r = load_winner(&l, &l.candidates[i]);
        if (r < 0) {
                loader_done(&l);
                return r;
        }

        *ret = TAKE_PTR(l.dropins);
        *ret_n = l.n_dropins;
        *ret_problems = TAKE_PTR(l.problems);
        l.n_dropins = 0;
        loader_done(&l);
        return 0;
}

int group_dropin_dirs(char ***ret) {
        /* secure_getenv: the variable is for tests, and must never steer a privileged process
         * started by someone else. */
        const char *list = secure_getenv("DKM_GROUPS_DIRS") ?: DKM_GROUPS_DIRS;
        _cleanup_strv_free_ char **dirs = NULL;
        size_t n = 0;

        dirs = calloc(strlen(list) / 2 + 2, sizeof(char *)); /* at most that many non-empty parts */
        if (!dirs)
                return -ENOMEM;
        for (const char *p = list; *p;) {
                size_t len = strcspn(p, ":");

                if (len > 0) {
                        dirs[n] = strndup(p, len);
                        if (!dirs[n++])
                                return -ENOMEM;
                }
                p += len + (p[len] == ':');
        }
        *ret = TAKE_PTR(dirs);
        return 0;
}
