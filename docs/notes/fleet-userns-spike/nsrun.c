/* SPDX-License-Identifier: MIT */
/* Spike: run a command as root of a new user namespace with an identity uid/gid mapping, or
 * enter such a namespace (optionally as another account), each time with a fresh anonymous
 * session keyring.
 *
 *   nsrun new [--map=COUNT] [--mount] [--pidfile=F] -- CMD...
 *        fork; child: unshare(CLONE_NEWUSER [|CLONE_NEWNS]), waits; parent (root in the initial
 *        namespace) writes /proc/CHILD/uid_map and gid_map "0 0 COUNT" (setgroups stays
 *        "allow": the writer is privileged); child: setresuid/setresgid 0 inside, new session
 *        keyring, exec CMD (as root of the namespace: full capabilities there).  The parent
 *        waits for the child and returns its status.
 *   nsrun enter --target=PID [--as=USER] -- CMD...
 *        setns into PID's user (and mount) namespace, uid 0 there, fresh session keyring;
 *        with --as: initgroups, setresgid, setresuid to USER (like tests' test_become()).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <keyutils.h>

static void die(const char *what) {
        fprintf(stderr, "nsrun: %s: %m\n", what);
        _exit(125);
}

static void write_file(const char *path, const char *text) {
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t) strlen(text))
                die(path);
        close(fd);
}

static void fresh_session(void) {
        /* The inherited session keyring belongs to the initial namespace's root (it links
         * _uid.0 there): detach from it so request_key() and possession see only this ns. */
        if (keyctl_join_session_keyring(NULL) < 0)
                die("keyctl_join_session_keyring");
}

static void become(const char *user) {
        struct passwd *pw = getpwnam(user);
        if (!pw)
                die("getpwnam");
        if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) < 0 ||
            setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) < 0)
                die("become");
        fresh_session(); /* a session keyring of its own, owned by the user (as test_become) */
}

int main(int argc, char **argv) {
        const char *pidfile = NULL, *as = NULL;
        unsigned long count = 65536;
        pid_t target = 0;
        int flags = CLONE_NEWUSER, i;
        const char *mode = argc > 1 ? argv[1] : "";

        if (argc < 2)
                return fprintf(stderr, "usage: nsrun new|enter ... -- CMD...\n"), 2;
        for (i = 2; i < argc && strcmp(argv[i], "--") != 0; i++) {
                if (strncmp(argv[i], "--map=", 6) == 0)
                        count = strtoul(argv[i] + 6, NULL, 10);
                else if (strcmp(argv[i], "--mount") == 0)
                        flags |= CLONE_NEWNS;
                else if (strncmp(argv[i], "--pidfile=", 10) == 0)
                        pidfile = argv[i] + 10;
                else if (strncmp(argv[i], "--target=", 9) == 0)
                        target = (pid_t) atoi(argv[i] + 9);
                else if (strncmp(argv[i], "--as=", 5) == 0)
                        as = argv[i] + 5;
                else
                        return fprintf(stderr, "nsrun: unknown option %s\n", argv[i]), 2;
        }
        if (i >= argc - 1)
                return fprintf(stderr, "nsrun: missing -- CMD\n"), 2;
        argv += i + 1;

        if (strcmp(mode, "enter") == 0) {
                char path[64];
                int fd;

                /* The mount namespace first (only if the host has its own), while we still
                 * hold CAP_SYS_ADMIN over its owner; then the user namespace. */
                struct stat a, b;
                if (target == 0) /* --target=0: stay in our namespaces */
                        goto creds;
                snprintf(path, sizeof(path), "/proc/%d/ns/mnt", (int) target);
                if (stat(path, &a) == 0 && stat("/proc/self/ns/mnt", &b) == 0 && a.st_ino != b.st_ino) {
                        fd = open(path, O_RDONLY | O_CLOEXEC);
                        if (fd < 0 || setns(fd, CLONE_NEWNS) < 0)
                                die("setns mnt");
                        close(fd);
                }
                snprintf(path, sizeof(path), "/proc/%d/ns/user", (int) target);
                fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd < 0 || setns(fd, CLONE_NEWUSER) < 0)
                        die("setns user");
                close(fd);
                /* After setns into a user namespace the ids are unchanged kuids: 0 maps to 0. */
                if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)
                        die("setres[ug]id 0");
        creds:
                if (as)
                        become(as);
                else
                        fresh_session();
                execvp(argv[0], argv);
                die("exec");
        }

        int to_parent[2], to_child[2];
        pid_t pid;
        char c = 0, buf[64], path[64];
        int status;

        if (pipe2(to_parent, O_CLOEXEC) < 0 || pipe2(to_child, O_CLOEXEC) < 0)
                die("pipe");
        pid = fork();
        if (pid < 0)
                die("fork");
        if (pid == 0) {
                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (unshare(flags) < 0)
                        die("unshare");
                if (write(to_parent[1], &c, 1) != 1 || read(to_child[0], &c, 1) != 1)
                        die("sync");
                if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)
                        die("setres[ug]id 0 in the namespace");
                if (flags & CLONE_NEWNS) /* mounts made here stay here */
                        if (mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                                die("make / private");
                fresh_session();
                execvp(argv[0], argv);
                die("exec");
        }
        if (read(to_parent[0], &c, 1) != 1)
                die("child did not unshare");
        snprintf(buf, sizeof(buf), "0 0 %lu\n", count);
        snprintf(path, sizeof(path), "/proc/%d/uid_map", (int) pid);
        write_file(path, buf);
        snprintf(path, sizeof(path), "/proc/%d/gid_map", (int) pid);
        write_file(path, buf);
        if (pidfile) {
                FILE *f = fopen(pidfile, "we");
                if (!f)
                        die(pidfile);
                fprintf(f, "%d\n", (int) pid);
                fclose(f);
        }
        if (write(to_child[1], &c, 1) != 1)
                die("release child");
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        die("waitpid");
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
