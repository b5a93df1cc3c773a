#!/bin/sh
# SPDX-License-Identifier: MIT
# The main job with the embedded default: a store in a temp dir, a key group bound to a
# throwaway service account's group, loaded into the kernel; the member encrypts and
# decrypts through the kernel keyring, a non-member is refused by the kernel, a rollover.
# Needs root (accounts, kernel key ownership); removes everything it made.
set -eu
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
        echo "demo.sh: run as root (it creates throwaway accounts and loads kernel keys): sudo $0" >&2
        exit 1
fi
scripts/deps.sh
scripts/build.sh build

top=$PWD
work=$(mktemp -d /tmp/dkm-demo.XXXXXX)
chmod 0755 "$work"
svc=dkmdemo-svc other=dkmdemo-other grp=dkmdemo-keys
export DKM_STATE_DIR="$work/state"
export DKM_KEYRING_HELPER="$top/build/src/helper/dkm-keyring-helper"
export DKM_RUNTIME_DIR="$work/run"
store="$top/build/src/tools/dkm-store"
dkm="$top/build/src/dkm/dkm"

cleanup() {
        "$store" unload demo >/dev/null 2>&1 || true
        userdel "$svc" 2>/dev/null || true
        userdel "$other" 2>/dev/null || true
        groupdel "$grp" 2>/dev/null || true
        rm -rf "$work"
}
trap cleanup EXIT INT TERM
cleanup_accounts_first() { userdel "$svc" 2>/dev/null || true; userdel "$other" 2>/dev/null || true; groupdel "$grp" 2>/dev/null || true; }
cleanup_accounts_first

step() { printf '\n$ %s\n' "$*"; "$@"; }
# Run a command as a user with that user's groups, the way a systemd service would.
as() { u=$1; shift; setpriv --reuid="$u" --regid="$u" --init-groups --reset-env env DKM_RUNTIME_DIR="$DKM_RUNTIME_DIR" "$@"; }

echo "== a service account in the key group, and a non-member (no login shells)"
groupadd --system "$grp"
useradd --system --no-create-home --shell /usr/sbin/nologin --user-group "$svc"
usermod -a -G "$grp" "$svc"
useradd --system --no-create-home --shell /usr/sbin/nologin --user-group "$other"
id "$svc"; id "$other"

echo "== the store, a key group bound to $grp, loaded into the kernel"
step "$store" init
step "$store" group create demo --gid="$grp" --rollover-period=30d
step "$store" load demo
grep 'dkm:' /proc/keys | grep -v '\.staging' || true

echo "== the member encrypts and decrypts locally with the key from the kernel"
printf '\n$ echo "imap password: hunter2" | dkm encrypt -g demo > secret.dkm    (as %s)\n' "$svc"
echo "imap password: hunter2" | as "$svc" "$dkm" encrypt -g demo > "$work/secret.dkm"
step as "$svc" "$dkm" info -i "$work/secret.dkm"
step as "$svc" "$dkm" decrypt -i "$work/secret.dkm"

echo "== a non-member is refused by the kernel"
if as "$other" "$dkm" decrypt -i "$work/secret.dkm"; then
        echo "demo.sh: a non-member decrypted: this must never happen" >&2
        exit 1
fi

echo "== rollover: new ciphertexts use generation 2, old ones still decrypt"
step "$store" rollover demo
step "$store" load demo
echo "second secret" | as "$svc" "$dkm" encrypt -g demo > "$work/secret2.dkm"
step as "$svc" "$dkm" info -i "$work/secret2.dkm"
step as "$svc" "$dkm" decrypt -i "$work/secret.dkm"
step "$store" group show demo

printf '\nState directory (only wrapped keys, private to root):\n'
(cd "$DKM_STATE_DIR" && ls -lR)
