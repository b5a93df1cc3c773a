/* SPDX-License-Identifier: MIT */
/* Runtime files and credential switches used by keyring.c; no keyutils here. */
#pragma once

#include <stddef.h>
#include <sys/types.h>

#include "keyring.h"

struct Keyring {
        char *runtime_dir;
        int runtime_fd;
        KeySerial staging; /* private: only this thread possesses it */
        KeySerial registry;
        KeyringFailure failure;
        char error[320];
};

/* Open dir (create it 0755 if missing); refuse anything but a root-owned directory that
 * group and other cannot write, since readers trust the serials published in it. */
int keyring_runtime_open(const char *path, int *ret_fd) _warn_unused_result_;

/* Atomically replace dirfd/name: temp file, owner root, group gid ((gid_t) -1: root),
 * mode, fsync, rename, fsync the directory. The group is set before the rename, so the
 * name never points at a file with the wrong group. */
int keyring_runtime_write(int dirfd, const char *name, const void *data, size_t size, mode_t mode,
                          gid_t gid) _warn_unused_result_;

/* "<uid>\n" lines, strictly ascending. -ENOENT when the file does not exist. */
int keyring_runtime_read_uids(int dirfd, const char *name, uid_t **ret, size_t *ret_n) _warn_unused_result_;
int keyring_runtime_write_uids(int dirfd, const char *name, const uid_t *uids, size_t n) _warn_unused_result_;
int keyring_runtime_read_serial(int dirfd, const char *name, KeySerial *ret) _warn_unused_result_;

/* Bump the epoch file dirfd/name (KEYRING_EPOCH_BYTES, root:gid, 0640) in place with one
 * pwrite, so readers that mmap it see the change. A missing or odd file (wrong size, owner,
 * group or mode) is replaced by a new one starting from the wall clock in nanoseconds, so
 * its value differs from any earlier file's. */
int keyring_runtime_bump_epoch(int dirfd, const char *name, gid_t gid) _warn_unused_result_;

/* Become a member of gid for filesystem and key checks (setfsgid; needs CAP_SETGID unless
 * gid is already ours), so keyctl_chown and fchown to gid need neither CAP_SYS_ADMIN nor
 * CAP_CHOWN. -EPERM if the switch did not take. */
int keyring_fsgid_enter(gid_t gid, gid_t *ret_old) _warn_unused_result_;
void keyring_fsgid_leave(gid_t old);

/* keyring.c's kernel helpers, for keyring-grant.c (both are the keyutils side). keyring_fail
 * records a failure like every call here does (the errno text is appended for the kernel,
 * runtime and user-link kinds) and returns r (or -EINVAL). */
int keyring_fail(Keyring *k, KeyringFailure failure, int r, const char *message);
int keyring_kr_describe(KeySerial serial, KeyringKeyInfo *ret) _warn_unused_result_;
/* The serials a keyring links (malloc'd). */
int keyring_kr_list(KeySerial ring, KeySerial **ret, size_t *ret_n) _warn_unused_result_;
/* Link ring into uid's user keyring, from a forked child with that real uid. */
int keyring_user_link(uid_t uid, KeySerial ring) _warn_unused_result_;

/* keyring-grant.c, for keyring.c: revoke every grant's copy of generation (retire), or every
 * grant of the group and its runtime file (unload). 0 when there was nothing to do. */
int keyring_grants_retire_generation(Keyring *k, const char *group, uint32_t generation) _warn_unused_result_;
int keyring_grants_remove_all(Keyring *k, const char *group) _warn_unused_result_;
