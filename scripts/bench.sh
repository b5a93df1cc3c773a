#!/bin/sh
# SPDX-License-Identifier: MIT
# Every benchmark of docs/PERFORMANCE.md in one run: a release build of its own, a throwaway
# store, Unix group and service account, key groups loaded into the kernel, a private
# system-type dbus-daemon with dkmd on it; prints one table of ratios against baselines
# measured in the same run. Needs root (accounts, kernel key ownership).
#   scripts/bench.sh           full run (a few minutes)
#   scripts/bench.sh --smoke   seconds: tiny counts, every path still run; fails on errors only
# DKM_BENCH_BUILD=DIR picks the build directory (default build-bench).
set -eu
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
        echo "bench.sh: run as root (it creates throwaway accounts and loads kernel keys): sudo $0" >&2
        exit 1
fi
smoke=
case "${1:-}" in
--smoke) smoke=--smoke ;;
"") ;;
*) echo "usage: $0 [--smoke]" >&2; exit 2 ;;
esac

scripts/deps.sh
top=$PWD
build=${DKM_BENCH_BUILD:-$top/build-bench}
# Release: what a service links against. The tests are not needed here.
scripts/build.sh "$build" --buildtype=release -Dtests=false

work=$(mktemp -d /tmp/dkm-bench.XXXXXX)
chmod 0755 "$work"
tag=dkmb$$
svc=$tag-svc grp=$tag-keys group=$tag
# Part 4's dkmd start-up runs a second dkmd on a second bus with a second store, whose groups
# belong to a second account (its user-private group), so the first account's view is untouched.
svc2=$tag-st
rkconf=/etc/request-key.d/dkm-bench-$$.conf
export DKM_STATE_DIR="$work/state"
export DKM_KEYRING_HELPER="$build/src/helper/dkm-keyring-helper"
# The runtime directory on tmpfs, as /run is on a systemd host: the helper writes (and fsyncs)
# three small files per group load there, which on a disk costs as much as the rest of a load.
rtdir=
if [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ]; then
        rtdir=$(mktemp -d /dev/shm/dkm-bench.XXXXXX)
        chmod 0755 "$rtdir"
        export DKM_RUNTIME_DIR="$rtdir/run"
else
        export DKM_RUNTIME_DIR="$work/run"
fi
export DKM_GROUPS_DIRS="$work/groups.d" # no drop-ins: never the host's
store="$build/src/tools/dkm-store"
setup="$build/bench/dkm-bench-setup"
bus_pid= bus2_pid= dkmd_pid= made= made2=

cleanup() {
        trap - EXIT INT TERM
        [ -n "$dkmd_pid" ] && kill "$dkmd_pid" 2>/dev/null && wait "$dkmd_pid" 2>/dev/null
        [ -n "$bus_pid" ] && kill "$bus_pid" 2>/dev/null && wait "$bus_pid" 2>/dev/null
        [ -n "$bus2_pid" ] && kill "$bus2_pid" 2>/dev/null && wait "$bus2_pid" 2>/dev/null
        rm -f "$rkconf"
        [ -n "$made" ] && { "$setup" "$DKM_STATE_DIR" unload-all >/dev/null 2>&1 || true; }
        [ -n "$made2" ] && { "$setup" "$work/state2" unload-all >/dev/null 2>&1 || true; }
        userdel "$svc" 2>/dev/null || true
        userdel "$svc2" 2>/dev/null || true
        groupdel "$grp" 2>/dev/null || true
        groupdel "$svc2" 2>/dev/null || true
        rm -rf "$work"
        if [ -n "$rtdir" ]; then rm -rf "$rtdir"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

groupadd --system "$grp"
useradd --system --no-create-home --shell /usr/sbin/nologin --user-group "$svc"
usermod -a -G "$grp" "$svc"
useradd --system --no-create-home --shell /usr/sbin/nologin --user-group "$svc2"
gid=$(getent group "$grp" | cut -d: -f3)
uid=$(id -u "$svc")
gid2=$(getent group "$svc2" | cut -d: -f3)
mkdir "$work/groups.d" "$work/bus" "$work/bus2" "$work/work"
chown "$svc" "$work/work"

"$store" init >/dev/null
made=1
"$store" --state-dir="$work/state2" init >/dev/null
made2=1
"$store" group create "$group" --gid="$gid" >/dev/null
"$store" load "$group" >/dev/null

# Private system buses (the host's is left alone) with dkm's own policy: dkmd on the first;
# the second is for part 4's start-up runs of another dkmd.
. "$top/scripts/private-bus.sh"
private_bus "$work/bus"
bus_pid=$private_bus_pid bus_address=$private_bus_address
private_bus "$work/bus2"
bus2_pid=$private_bus_pid bus2_address=$private_bus_address
DBUS_SYSTEM_BUS_ADDRESS=$bus_address
export DBUS_SYSTEM_BUS_ADDRESS
"$build/src/daemon/dkmd" --bus=system --state-dir="$DKM_STATE_DIR" >"$work/dkmd.log" 2>&1 &
dkmd_pid=$!
for _ in $(seq 100); do busctl --system status org.dkm.KeyManager1 >/dev/null 2>&1 && break; sleep 0.05; done
if ! busctl --system status org.dkm.KeyManager1 >/dev/null 2>&1; then
        echo "bench.sh: dkmd did not come up on the private bus:" >&2
        cat "$work/dkmd.log" >&2
        exit 1
fi

out="$build/bench-last.md"
"$build/bench/dkm-bench" $smoke --uid="$uid" --gid="$gid" --group="$group" --state-dir="$DKM_STATE_DIR" \
        --work-dir="$work/work" --dkm="$build/src/dkm/dkm" --store="$store" --setup="$setup" \
        --dkmd="$build/src/daemon/dkmd" --startup-bus="$bus2_address" \
        --startup-state="$work/state2" --startup-gid="$gid2" --request-key-conf="$rkconf" >"$out"
cat "$out"
echo "bench.sh: table saved in $out"
