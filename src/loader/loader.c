/* SPDX-License-Identifier: MIT */
/* From the store to the kernel. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include "config.h"
#include "fileio.h"
#include "loader.h"

static int uid_cmp(const void *a, const void *b) {
        uid_t x = *(const uid_t *) a, y = *(const uid_t *) b;
        return x < y ? -1 : x > y;
}

static int uids_add(uid_t **list, size_t *n, uid_t uid) {
        uid_t *l;

        if (uid == 0)
                return 0; /* root never gets the group keyring in its user keyring */
        for (size_t i = 0; i < *n; i++)
                if ((*list)[i] == uid)
                        return 0;
        l = realloc(*list, (*n + 1) * sizeof(uid_t));
        if (!l)
                return -ENOMEM;
        l[(*n)++] = uid;
        *list = l;
        return 0;
}

int loader_member_uids(gid_t gid, uid_t **ret, size_t *ret_n) {
        _cleanup_free_ uid_t *list = NULL;
        size_t n = 0;
        struct group *gr;
        struct passwd *pw;
        int r;

        errno = 0;
        gr = getgrgid(gid);
        if (gr)
                for (char **m = gr->gr_mem; m && *m; m++) {
                        pw = getpwnam(*m);
                        if (!pw)
                                continue; /* a dangling member name has no uid to place keys for */
                        r = uids_add(&list, &n, pw->pw_uid);
                        if (r < 0)
                                return r;
                }
        setpwent();
        while ((pw = getpwent()))
                if (pw->pw_gid == gid) {
                        r = uids_add(&list, &n, pw->pw_uid);
                        if (r < 0) {
                                endpwent();
                                return r;
                        }
                }
        endpwent();
        if (n > 1)
                qsort(list, n, sizeof(uid_t), uid_cmp);
        *ret = TAKE_PTR(list);
        *ret_n = n;
        return 0;
}

static int manifest_add(Store *s, const StoreGroup *g, KeyringManifest *m, const StoreGeneration *gen,
                        KeyringGenState state) {
        _cleanup_secret_ Secret *key = NULL;
        int r;

        r = store_generation_unwrap(s, g, gen->number, &key);
        if (r < 0)
                return r;
        return keyring_manifest_add_generation(m, gen->number, state, key);
}

int loader_build_manifest(Store *s, const StoreGroup *g, unsigned hot_window, const uid_t *members,
                          size_t n_members, KeyringManifest **ret) {
        _cleanup_keyring_manifest_ KeyringManifest *m = NULL;
        size_t first_hot = 0, archived = 0;
        int r;

        if (hot_window > STORE_HOT_WINDOW_MAX)
                return -E2BIG;
        r = keyring_manifest_new(g->name, g->id, g->gid, g->alg, &m);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n_members; i++) {
                r = keyring_manifest_add_member(m, members[i]);
                if (r < 0)
                        return r;
        }

        /* Generations are ascending: find where the newest hot_window archived ones start. */
        for (size_t i = g->n_generations; i > 0; i--)
                if (g->generations[i - 1].state == GENERATION_ARCHIVED) {
                        if (archived == hot_window)
                                break;
                        archived++;
                        first_hot = i - 1;
                }
        if (archived == 0)
                first_hot = g->n_generations;

        for (size_t i = 0; i < g->n_generations; i++) {
                const StoreGeneration *gen = &g->generations[i];

                switch (gen->state) {
                case GENERATION_ACTIVE:
                        r = manifest_add(s, g, m, gen, KEYRING_GEN_ACTIVE);
                        m->active = gen->number;
                        break;
                case GENERATION_PENDING:
                        /* Only the newest pending one is announced; older pending ones (a
                         * rollover interrupted between its commits) are loaded as archived:
                         * nothing was encrypted with them, but nothing is lost either. */
                        r = manifest_add(s, g, m, gen, KEYRING_GEN_PENDING);
                        if (r == 0 && m->pending != 0)
                                m->generations[m->n_generations - 2].state = KEYRING_GEN_ARCHIVED;
                        m->pending = gen->number;
                        break;
                case GENERATION_ARCHIVED:
                        r = i >= first_hot ? manifest_add(s, g, m, gen, KEYRING_GEN_ARCHIVED) : 0;
                        break;
                default:
                        r = 0; /* retired: never in the kernel */
                }
                if (r < 0)
                        return r;
        }
        r = keyring_manifest_validate(m, NULL);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(m);
        return 0;
}

const char *loader_helper_path(void) {
        const char *p = getenv("DKM_KEYRING_HELPER");
        return p && *p ? p : DKM_LIBEXECDIR "/dkm/dkm-keyring-helper";
}

int loader_run_helper(const KeyringManifest *m, char *const args[]) {
        _cleanup_secret_ Secret *text = NULL;
        int pipefd[2], status, r;
        pid_t pid;
        size_t n = 0;

        char *argv[8] = { (char *) "dkm-keyring-helper" };

        while (args[n])
                n++;
        if (n + 2 > ELEMENTSOF(argv))
                return -E2BIG;
        memcpy(argv + 1, args, (n + 1) * sizeof(char *));

        if (m) {
                r = keyring_manifest_format(m, &text);
                if (r < 0)
                        return r;
        }
        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return negative_errno();
        pid = fork();
        if (pid < 0) {
                r = negative_errno();
                safe_close(pipefd[0]);
                safe_close(pipefd[1]);
                return r;
        }
        if (pid == 0) {
                sigset_t none;
                int devnull;

                /* A daemon caller (dkmd) blocks SIGTERM/SIGINT for its signalfd; the helper must
                 * not inherit that, or it could not be stopped. */
                sigemptyset(&none);
                (void) sigprocmask(SIG_SETMASK, &none, NULL);
                if (dup2(pipefd[0], STDIN_FILENO) < 0)
                        _exit(127);
                /* Its report ("keyring N") is for a person at a shell; our callers say what
                 * happened in their own words, and dkmd's stdout is its journal. Errors stay on
                 * stderr. */
                devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
                if (devnull < 0 || dup2(devnull, STDOUT_FILENO) < 0)
                        _exit(127);
                execv(loader_helper_path(), argv);
                _exit(127);
        }
        safe_close(pipefd[0]);
        /* The manifest fits in the pipe buffer only up to 64 KiB; write it all, then EOF. */
        {
                struct sigaction old, ign = { .sa_handler = SIG_IGN };
                (void) sigaction(SIGPIPE, &ign, &old);
                r = text ? loop_write(pipefd[1], text->data, text->size) : 0;
                (void) sigaction(SIGPIPE, &old, NULL);
        }
        safe_close(pipefd[1]);
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return negative_errno();
        if (r < 0 && r != -EPIPE)
                return r;
        if (WIFEXITED(status))
                return WEXITSTATUS(status) == 127 ? -ENOEXEC : WEXITSTATUS(status);
        return -ECHILD;
}
