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
export DKM_STATE_DIR="$work/state"
export DKM_KEYRING_HELPER="$build/src/helper/dkm-keyring-helper"
export DKM_RUNTIME_DIR="$work/run"
export DKM_GROUPS_DIRS="$work/groups.d" # no drop-ins: never the host's
store="$build/src/tools/dkm-store"
setup="$build/bench/dkm-bench-setup"
bus_pid= dkmd_pid= made=

cleanup() {
        trap - EXIT INT TERM
        [ -n "$dkmd_pid" ] && kill "$dkmd_pid" 2>/dev/null && wait "$dkmd_pid" 2>/dev/null
        [ -n "$bus_pid" ] && kill "$bus_pid" 2>/dev/null && wait "$bus_pid" 2>/dev/null
        [ -n "$made" ] && { "$setup" "$DKM_STATE_DIR" unload-all >/dev/null 2>&1 || true; }
        userdel "$svc" 2>/dev/null || true
        groupdel "$grp" 2>/dev/null || true
        rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

groupadd --system "$grp"
useradd --system --no-create-home --shell /usr/sbin/nologin --user-group "$svc"
usermod -a -G "$grp" "$svc"
gid=$(getent group "$grp" | cut -d: -f3)
uid=$(id -u "$svc")
mkdir "$work/groups.d" "$work/bus" "$work/work"
chown "$svc" "$work/work"

"$store" init >/dev/null
made=1
"$store" group create "$group" --gid="$gid" >/dev/null
"$store" load "$group" >/dev/null

# A private system bus (the host's is left alone) with dkm's own policy, and dkmd on it.
cat >"$work/bus/bus.conf" <<CONF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=$work/bus/system_bus_socket</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
  </policy>
  <include>$top/policy/dbus/org.dkm.KeyManager1.conf</include>
</busconfig>
CONF
dbus-daemon --nofork --nosyslog --config-file="$work/bus/bus.conf" --print-address=3 3>"$work/bus/address" &
bus_pid=$!
for _ in $(seq 100); do [ -s "$work/bus/address" ] && break; sleep 0.05; done
DBUS_SYSTEM_BUS_ADDRESS=$(head -n1 "$work/bus/address")
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
        --work-dir="$work/work" --dkm="$build/src/dkm/dkm" --store="$store" --setup="$setup" >"$out"
cat "$out"
echo "bench.sh: table saved in $out"
