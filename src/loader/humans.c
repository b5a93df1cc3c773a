/* SPDX-License-Identifier: MIT */
/* Is a person in this Unix group? Key groups are for service accounts only (DESIGN.md): a member
 * who can log in would hold the keys as a human. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loader.h"

#define LOGIN_DEFS "/etc/login.defs"

/* The login range of uids as useradd(8) sees it: UID_MIN..UID_MAX in login.defs, else Debian's
 * defaults. Read each time: an admin who changes it expects dkmd to follow. */
static void login_uid_range(uid_t *ret_min, uid_t *ret_max) {
        _cleanup_fclose_ FILE *f = fopen(LOGIN_DEFS, "re");
        char line[256];

        *ret_min = 1000;
        *ret_max = 60000;
        while (f && fgets(line, sizeof(line), f)) {
                unsigned long v;
                char key[16];

                if (sscanf(line, " %15s %lu", key, &v) != 2 || v > (uid_t) -2)
                        continue;
                if (strcmp(key, "UID_MIN") == 0)
                        *ret_min = (uid_t) v;
                else if (strcmp(key, "UID_MAX") == 0)
                        *ret_max = (uid_t) v;
        }
}

/* A login shell is one listed in /etc/shells, which is what chsh(1) and many daemons mean by
 * it; an empty shell field means /bin/sh (passwd(5)). nologin, false and sync are not listed. */
static bool has_login_shell(const struct passwd *pw) {
        const char *shell = pw->pw_shell && *pw->pw_shell ? pw->pw_shell : "/bin/sh";
        bool found = false;
        char *s;

        setusershell();
        while (!found && (s = getusershell()))
                found = strcmp(s, shell) == 0;
        endusershell();
        return found;
}

static int check_member(const struct passwd *pw, uid_t min, uid_t max, char **ret_name) {
        /* root is never given a group's keys (see loader_member_uids), so it is not a member here. */
        if (pw->pw_uid == 0)
                return 0;
        if (!has_login_shell(pw) && !(pw->pw_uid >= min && pw->pw_uid <= max))
                return 0;
        *ret_name = strdup(pw->pw_name);
        return *ret_name ? 1 : -ENOMEM;
}

int loader_find_human_member(gid_t gid, char **ret_name) {
        struct group *gr;
        struct passwd *pw;
        uid_t min, max;
        int r = 0;

        login_uid_range(&min, &max);
        gr = getgrgid(gid);
        for (char **m = gr ? gr->gr_mem : NULL; m && *m && r == 0; m++) {
                pw = getpwnam(*m);
                if (pw)
                        r = check_member(pw, min, max, ret_name);
        }
        if (r != 0)
                return r;
        setpwent();
        while (r == 0 && (pw = getpwent()))
                if (pw->pw_gid == gid)
                        r = check_member(pw, min, max, ret_name);
        endpwent();
        return r;
}
