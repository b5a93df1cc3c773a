#!/bin/sh
# SPDX-License-Identifier: MIT
# The main job with the embedded default: a private system-type dbus-daemon, dkmd on it with
# a store in a temp dir, a key group created over D-Bus for a throwaway service account's
# group; the member encrypts and decrypts through the kernel keyring, a non-member is refused
# by the kernel, a rollover over D-Bus, old ciphertext still decrypts; then break-glass: a
# person asks for the keys, two approvers at two levels approve, the person decrypts, and the
# kernel ends the access by itself; the audit log of it all verifies.
# Needs root (accounts, kernel key ownership). Ctrl-C (or the end, when not on a terminal)
# stops everything it started and removes everything it made.
set -eu
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
        echo "demo.sh: run as root (it creates throwaway accounts and loads kernel keys): sudo $0" >&2
        exit 1
fi
scripts/deps.sh
scripts/build.sh build

top=$PWD
build=$top/build
work=$(mktemp -d /tmp/dkm-demo.XXXXXX)
chmod 0755 "$work"
svc=dkmdemo-svc other=dkmdemo-other grp=dkmdemo-keys
# Break-glass: a requester (a person outside the key group) and one approver per level.
req=dkmdemo-alice oncall=dkmdemo-bob officer=dkmdemo-carol l1=dkmdemo-oncall l2=dkmdemo-secofficers
people="$req $oncall $officer"
export DKM_STATE_DIR="$work/state"
export DKM_KEYRING_HELPER="$build/src/helper/dkm-keyring-helper"
export DKM_RUNTIME_DIR="$work/run"
export DKM_GROUPS_DIRS="$work/groups.d" # the demo's drop-ins only, never the host's
store="$build/src/tools/dkm-store"
dkm="$build/src/dkm/dkm"
dkmctl="$build/src/dkmctl/dkmctl"
bus_pid= dkmd_pid=

cleanup() {
        trap - EXIT INT TERM
        set +e
        [ -n "$dkmd_pid" ] && kill "$dkmd_pid" 2>/dev/null
        [ -n "$bus_pid" ] && kill "$bus_pid" 2>/dev/null
        wait 2>/dev/null
        "$store" unload demo >/dev/null 2>&1 || true
        remove_accounts
        rm -rf "$work"
        echo "demo.sh: stopped dkmd and the bus, removed the accounts, the keys and $work"
}
remove_accounts() {
        for u in "$svc" "$other" $people; do userdel "$u" 2>/dev/null || true; done
        for g in "$grp" "$l1" "$l2"; do groupdel "$g" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM
remove_accounts

step() { printf '\n$ %s\n' "$*"; "$@"; }
# Run a command as a user with that user's groups, the way a systemd service would.
as() {
        u=$1; shift
        setpriv --reuid="$u" --regid="$u" --init-groups --reset-env \
                env DKM_RUNTIME_DIR="$DKM_RUNTIME_DIR" DBUS_SYSTEM_BUS_ADDRESS="${DBUS_SYSTEM_BUS_ADDRESS:-}" "$@"
}

echo "== a service account in the key group, and a non-member (no login shells)"
groupadd --system "$grp"
useradd --system --no-create-home --shell /usr/sbin/nologin --user-group "$svc"
usermod -a -G "$grp" "$svc"
useradd --system --no-create-home --shell /usr/sbin/nologin --user-group "$other"
id "$svc"; id "$other"
echo "== for break-glass: a requester, and an approver in each of two approver groups"
groupadd --system "$l1"; groupadd --system "$l2"
for u in $people; do useradd --system --no-create-home --shell /usr/sbin/nologin --user-group "$u"; done
usermod -a -G "$l1" "$oncall"; usermod -a -G "$l2" "$officer"
id "$req"; id "$oncall"; id "$officer"

echo "== a private system bus (the host's is left alone) with dkm's D-Bus policy"
mkdir "$work/bus" "$work/groups.d"
. "$top/scripts/private-bus.sh"
private_bus "$work/bus"
bus_pid=$private_bus_pid
DBUS_SYSTEM_BUS_ADDRESS=$private_bus_address
export DBUS_SYSTEM_BUS_ADDRESS
echo "DBUS_SYSTEM_BUS_ADDRESS=$DBUS_SYSTEM_BUS_ADDRESS"

echo "== the store (root key behind a 0600 key file), and dkmd serving it on that bus"
step "$store" init
"$build/src/daemon/dkmd" --bus=system --state-dir="$DKM_STATE_DIR" 2>&1 | sed -u 's/^/    [dkmd] /' &
for _ in $(seq 100); do busctl --system status org.dkm.KeyManager1 >/dev/null 2>&1 && break; sleep 0.05; done
dkmd_pid=$(busctl --system status org.dkm.KeyManager1 | sed -n 's/^PID=//p')
step "$dkmctl" status

echo "== a key group bound to $grp, created over D-Bus (dkmctl), loaded into the kernel by dkmd"
step "$dkmctl" group create demo --unix-group="$grp" --rollover-period=30d \
        --approval-groups="$l1,$l2" --max-grant=1h
sleep 0.2 # let dkmd's log lines land before the next output
step busctl --system get-property org.dkm.KeyManager1 /org/dkm/KeyManager1/group/demo \
        org.dkm.KeyManager1.Group ActiveGeneration NextRolloverUSec
grep 'dkm:' /proc/keys | grep -v '\.staging' || true

echo "== the member service encrypts and decrypts locally with the key from the kernel (no daemon on the data path)"
printf '\n$ echo "imap password: hunter2" | dkm encrypt -g demo > secret.dkm    (as %s)\n' "$svc"
echo "imap password: hunter2" | as "$svc" "$dkm" encrypt -g demo >"$work/secret.dkm"
step as "$svc" "$dkm" info -i "$work/secret.dkm"
step as "$svc" "$dkm" decrypt -i "$work/secret.dkm"

echo "== a non-member is refused by the kernel"
if as "$other" "$dkm" decrypt -i "$work/secret.dkm"; then
        echo "demo.sh: a non-member decrypted: this must never happen" >&2
        exit 1
fi

echo "== rollover over D-Bus: new ciphertexts use generation 2, old ones still decrypt"
step "$dkmctl" group rollover demo
sleep 0.2
echo "second secret" | as "$svc" "$dkm" encrypt -g demo >"$work/secret2.dkm"
step as "$svc" "$dkm" info -i "$work/secret2.dkm"
step as "$svc" "$dkm" decrypt -i "$work/secret.dkm"
step "$dkmctl" group show demo

echo "== break-glass: $req asks for the keys; $oncall (level 1) and $officer (level 2) approve"
printf '\n$ dkmctl access request demo --justification=... --duration=5s    (as %s)\n' "$req"
as "$req" "$dkmctl" access request demo --justification="INC-4711: a customer's IMAP sync fails; read one stored credential" \
        --duration=5s
id=$("$dkmctl" --json access list | python3 -c 'import json,sys; print(json.load(sys.stdin)["requests"][-1]["id"])')
printf '\n$ dkmctl access approve %s    (as %s: the requester may not approve)\n' "$id" "$req"
if as "$req" "$dkmctl" access approve "$id"; then
        echo "demo.sh: the requester approved their own request: this must never happen" >&2
        exit 1
fi
printf '\n$ dkmctl access approve %s    (as %s, level 1)\n' "$id" "$oncall"
as "$oncall" "$dkmctl" access approve "$id"
printf '\n$ dkmctl access approve %s    (as %s, level 2)\n' "$id" "$officer"
as "$officer" "$dkmctl" access approve "$id"
step "$dkmctl" access show "$id"
printf '\n$ dkm decrypt -i secret.dkm    (as %s, during the grant)\n' "$req"
as "$req" "$dkm" decrypt -i "$work/secret.dkm"
echo "== 6 s later the kernel has ended the grant by itself (dkmd plays no part in that)"
sleep 6
printf '\n$ dkm decrypt -i secret.dkm    (as %s, after the grant)\n' "$req"
if as "$req" "$dkm" decrypt -i "$work/secret.dkm"; then
        echo "demo.sh: the grant outlived its timeout: this must never happen" >&2
        exit 1
fi
step "$dkmctl" access list

echo "== every step is in the hash-chained, signed audit log"
step "$dkmctl" audit show --since=-5min
step "$dkmctl" audit verify --public-key="$DKM_STATE_DIR/audit/audit.pub"

printf '\nState directory (only wrapped keys, requests and the audit log, private to root):\n'
(cd "$DKM_STATE_DIR" && ls -lR)

if [ -t 0 ]; then
        printf '\ndkmd is serving. In another shell, as root:\n'
        printf '  export DBUS_SYSTEM_BUS_ADDRESS=%s\n' "$DBUS_SYSTEM_BUS_ADDRESS"
        printf '  %s status; busctl --system tree org.dkm.KeyManager1\n' "$dkmctl"
        printf 'Ctrl-C stops dkmd and the bus and removes everything the demo made.\n'
        while :; do sleep 3600; done
fi
