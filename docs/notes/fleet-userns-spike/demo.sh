#!/bin/bash
# Spike for issue 9 (fleet tests): three dkmd "hosts" on one kernel, each in its own user
# namespace with an identity mapping, loading the SAME key group into its OWN keyrings.
# Demonstrates (a) per-namespace user keyrings, (b) load + member decrypt per namespace and no
# crossing, and measures (c): request-key upcall, runtime dir, capabilities (grant), D-Bus +
# dkmd inside a namespace, kuid/kgid, teardown. Cleans up everything it made.
# Run as root: bash /tmp/spike-userns/demo.sh
set -u
S=/tmp/spike-userns
B=/tmp/build-spike
HELPER=$B/src/helper/dkm-keyring-helper
STORE=$B/src/tools/dkm-store
DKM=$B/src/dkm/dkm
DKMD=$B/src/daemon/dkmd
NSRUN=$S/nsrun
P=dkmspk$$ # accounts, key group, request-key drop-in carry our pid
G=$P-g
W=$(mktemp -d $S/run.XXXXXX) && chmod 755 "$W"
RKCONF=/etc/request-key.d/$P.conf
export DKM_STATE_DIR=$W/state DKM_KEYRING_HELPER=$HELPER DKM_GROUPS_DIRS=$W/groups.d
declare -A HOSTPID
PIDS=()

say() { printf '\n=== %s\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; printf '  -> exit %s\n' $?; }
# in HOST [as USER] -- CMD...: run CMD in HOST's user namespace (init: the initial one), fresh session keyring
on() {
        local h=$1 as=; shift
        if [ "$1" = as ]; then as=$2; shift 2; fi
        [ "$1" = -- ] && shift
        local t=0
        [ "$h" = init ] || t=${HOSTPID[$h]}
        $NSRUN enter --target=$t ${as:+--as=$as} -- "$@"
}
# host-env HOST: environment of a dkm process of that host
henv() { echo "DKM_RUNTIME_DIR=$W/$1/run"; }

cleanup() {
        say cleanup
        rm -f "$RKCONF"
        for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
        for h in "${!HOSTPID[@]}"; do kill "${HOSTPID[$h]}" 2>/dev/null; done
        wait 2>/dev/null
        for u in $P-member $P-member2 $P-other; do userdel "$u" 2>/dev/null; done
        groupdel $P-grp 2>/dev/null
        rm -rf "$W"
        for i in $(seq 50); do grep -q "$P" /proc/keys || break; sleep 0.1; done
        echo "left: processes in our namespaces: $(for p in /proc/[0-9]*; do case $(readlink $p/ns/user 2>/dev/null) in "user:[4026531837]"|"") ;; *) grep -l "$P\|$W" $p/cmdline 2>/dev/null;; esac; done | wc -l), keys named $P: $(grep -c "$P" /proc/keys)"
        echo "removed accounts $P-*, $RKCONF, $W; namespaces died with their processes"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

[ -x $NSRUN ] || gcc -O2 -Wall -o $NSRUN $S/nsrun.c -lkeyutils || exit 1

say setup: throwaway accounts, a store with one key group
groupadd --system $P-grp
useradd --system --no-create-home -s /usr/sbin/nologin -G $P-grp $P-member
useradd --system --no-create-home -s /usr/sbin/nologin -G $P-grp $P-member2
useradd --system --no-create-home -s /usr/sbin/nologin $P-other
GID=$(getent group $P-grp | cut -d: -f3)
M1=$(id -u $P-member) M2=$(id -u $P-member2) OTHER=$(id -u $P-other)
echo "grp $P-grp gid $GID; member uid $M1, member2 uid $M2 (both in grp); other uid $OTHER"
$STORE init && $STORE group create $G --gid=$P-grp || exit 1
ID=$($STORE group show $G | awk '/^Group id:/ {print $3}')
echo "group $G id $ID"
mkdir -p $W/work && chmod 1777 $W/work

say "start three host namespaces A B C (anchors: sleep; nsrun new = unshare(CLONE_NEWUSER) + uid_map/gid_map '0 0 65536' written by the root parent)"
for h in A B C; do
        mkdir -p $W/$h
        $NSRUN new --pidfile=$W/$h/pid -- sleep infinity &
        PIDS+=($!)
done
sleep 0.3
for h in A B C; do HOSTPID[$h]=$(cat $W/$h/pid); done
for h in A B C; do
        echo "host $h: pid ${HOSTPID[$h]} $(readlink /proc/${HOSTPID[$h]}/ns/user) uid_map: $(cat /proc/${HOSTPID[$h]}/uid_map | xargs) setgroups: $(cat /proc/${HOSTPID[$h]}/setgroups)"
done
echo "initial: $(readlink /proc/self/ns/user)"

say "(a) root's and the member's user keyrings, per namespace"
for h in init A B C; do
        ru=$(on $h -- keyctl show @u | sed -n 2p | awk '{print $1, $NF}')
        rr=$(on $h -- keyctl show @u | grep -c 'dkm:.registry')
        mu=$(on $h as $P-member -- keyctl show @u | sed -n 2p | awk '{print $1, $NF}')
        printf '%-5s root @u = %-22s (dkm:.registry entries: %s)   member @u = %s\n' $h "$ru" "$rr" "$mu"
done

say "(b1) host A: dkm-store load (the real loader -> helper load) inside namespace A"
run on A -- env $(henv A) $STORE load $G
echo "root's user keyring in A:"; on A -- keyctl show @u
echo "helper status in A:"; on A -- env $(henv A) $HELPER status $G

say "(b2) host B: helper load of the SAME group name and id, generation 1 with a DIFFERENT random key, same member uids"
KEYB=$(head -c32 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf 'dkm-keyring-manifest 1\ngroup %s\nid %s\ngid %s\nalgorithm xchacha20-poly1305\nmember %s\nmember %s\nactive 1\npending 0\ngeneration 1 active %s\nend\n' \
        $G $ID $GID $(printf '%s\n' $M1 $M2 | sort -n) $KEYB > $W/manifest-B
chmod 600 $W/manifest-B
run on B -- env $(henv B) $HELPER load < $W/manifest-B
echo "root's user keyring in B:"; on B -- keyctl show @u
echo "initial namespace: root's registry still has no $G:"; keyctl show @u | grep -c "$G" ; true

say "(b3) member encrypts in A, decrypts in A; crossing fails"
echo "secret-from-A" | on A as $P-member -- env $(henv A) $DKM encrypt -g $G -o $W/work/ct-A1; echo "encrypt in A exit $?"
echo "secret-from-B" | on B as $P-member -- env $(henv B) $DKM encrypt -g $G -o $W/work/ct-B1; echo "encrypt in B exit $?"
for h in A B C init; do
        for ct in ct-A1 ct-B1; do
                out=$(on $h as $P-member -- env $(henv $h) $DKM decrypt -i $W/work/$ct 2>&1); rc=$?
                printf 'member in %-4s decrypt %s -> exit %s: %s\n' $h $ct $rc "$out"
        done
done
out=$(on A as $P-other -- env $(henv A) $DKM decrypt -i $W/work/ct-A1 2>&1); echo "other (non-member) in A decrypt ct-A1 -> exit $?: $out"

say "(c1) isolation is by lookup path, not by access control: serials and the runtime dir cross namespaces"
SER_A=$(on A -- env $(henv A) $HELPER status $G | awk '/^generation 1 / {print $3}')
echo "A's generation-1 key serial: $SER_A; /proc/keys seen from the initial namespace:"
grep -i "$(printf %08x $SER_A)" /proc/keys
out=$(on B as $P-member -- keyctl pipe $SER_A | od -An -tx1 | head -1); echo "member in B, keyctl pipe <A's serial>: $out"
out=$(on B as $P-member -- env DKM_RUNTIME_DIR=$W/A/run $DKM decrypt -i $W/work/ct-A1 2>&1); echo "member in B with A's DKM_RUNTIME_DIR decrypts ct-A1 -> exit $?: $out"
out=$(on init as $P-member -- env DKM_RUNTIME_DIR=$W/A/run $DKM decrypt -i $W/work/ct-A1 2>&1); echo "member in the initial ns with A's DKM_RUNTIME_DIR -> exit $?: $out"

say "(c2) kuid/kgid: identity mapping, so owners and gids read the same everywhere"
echo "A's group keyring from inside A and from the initial namespace (/proc/keys):"
RING_A=$(on A -- env $(henv A) $HELPER status $G | awk '/^keyring / {print $2}')
on A -- grep -i "^$(printf %08x $RING_A)" /proc/keys
grep -i "^$(printf %08x $RING_A)" /proc/keys
ls -ln $W/A/run

say "(c3) capabilities: grant (keyctl_chown to another uid needs CAP_SYS_ADMIN in the INITIAL user namespace)"
sed -e "s/^member .*//" -e '/^$/d' $W/manifest-B > $W/manifest-grant; chmod 600 $W/manifest-grant
run on A -- env $(henv A) $HELPER grant --uid=$OTHER --seconds=30 < $W/manifest-grant
echo "raw: a key in A root's session, chown to uid $OTHER:"
on A -- sh -c "k=\$(keyctl add user spk-probe x @s) && keyctl chown \$k $OTHER; echo \"  keyctl chown in A exit \$?\"; grep CapEff /proc/self/status"
echo "the same in the initial namespace (a throwaway key in a throwaway session):"
$NSRUN enter --target=0 -- sh -c "k=\$(keyctl add user spk-probe x @s) && keyctl chown \$k $OTHER; echo \"  keyctl chown in init exit \$?\""

say "(c4) request-key upcall: archived generation outside A's hot window"
$STORE rollover $G >/dev/null && $STORE rollover $G >/dev/null
run on A -- env $(henv A) $STORE load $G --hot-window=0
on A -- env $(henv A) $HELPER status $G | grep -E '^(active|pending|generation)'
mkdir -p $W/rk-route $W/init-run
echo "${HOSTPID[A]} $W/A/run" > $W/rk-route/$M1
echo "create user dkm:$ID:* * $S/rk-wrapper.sh $W %u %k %d %c" > $RKCONF
echo plain > $W/rk-mode
out=$(on A as $P-member -- env $(henv A) $DKM decrypt -i $W/work/ct-A1 2>&1); echo "plain handler: member in A decrypts ct-A1 (generation 1) -> exit $?: $out"
sleep 0.2
echo route > $W/rk-mode
out=$(on A as $P-member -- env $(henv A) $DKM decrypt -i $W/work/ct-A1 2>&1); echo "routed handler: member in A decrypts ct-A1 -> exit $?: $out"
T0=$(date +%s%N); on A as $P-member -- env $(henv A) $DKM decrypt -i $W/work/ct-A1 >/dev/null 2>&1; T1=$(date +%s%N)
echo "  (again, already loaded: $(( (T1 - T0) / 1000000 )) ms for the whole dkm process)"
echo "upcall log:"; sed 's/^/  /' $W/rk.log
echo "A now holds generation 1 on demand (with a timeout):"
on A -- env $(henv A) $HELPER status $G | grep -E '^generation'
grep -i "^$(printf %08x $(on A -- env $(henv A) $HELPER status $G | awk '/^generation 1 / {print $3}'))" /proc/keys
rm -f $RKCONF

say "(c5) D-Bus: a private system dbus-daemon and dkmd inside namespace A"
mkdir -p $W/A/bus $W/groups.d
cat > $W/A/bus/bus.conf <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=$W/A/bus/system_bus_socket</listen>
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
  <include>/work/main/policy/dbus/org.dkm.KeyManager1.conf</include>
</busconfig>
EOF
$NSRUN enter --target=${HOSTPID[A]} -- dbus-daemon --nofork --nosyslog --config-file=$W/A/bus/bus.conf --print-address=1 > $W/A/bus/address &
PIDS+=($!)
for i in $(seq 50); do [ -s $W/A/bus/address ] && break; sleep 0.1; done
export DBUS_SYSTEM_BUS_ADDRESS=$(head -1 $W/A/bus/address)
echo "bus A: $DBUS_SYSTEM_BUS_ADDRESS"
$NSRUN enter --target=${HOSTPID[A]} -- env $(henv A) $DKMD --bus=system --admin-group=$P-grp > $W/A/dkmd.log 2>&1 &
PIDS+=($!)
for i in $(seq 100); do busctl --system status org.dkm.KeyManager1 >/dev/null 2>&1 && break; sleep 0.1; done
echo "dkmd log:"; sed 's/^/  /' $W/A/dkmd.log
echo "member in A calls ListGroups and Rollover (admin group = $P-grp):"
on A as $P-member -- busctl --system call org.dkm.KeyManager1 /org/dkm/KeyManager1 org.dkm.KeyManager1 ListGroups
GP=$(on A as $P-member -- busctl --system call org.dkm.KeyManager1 /org/dkm/KeyManager1 org.dkm.KeyManager1 GetGroup s $G | awk '{print $2}' | tr -d '"')
on A as $P-member -- busctl --system call org.dkm.KeyManager1 $GP org.dkm.KeyManager1.Group Rollover
echo "other (not admin) in A calls Rollover:"
on A as $P-other -- busctl --system call org.dkm.KeyManager1 $GP org.dkm.KeyManager1.Group Rollover
echo "credentials dbus-daemon reports for dkmd's connection (made in A):"
busctl --system call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus GetConnectionCredentials s org.dkm.KeyManager1
echo "a member in the INITIAL namespace calling A's bus socket (Rollover as admin-group member):"
on init as $P-member2 -- env DBUS_SYSTEM_BUS_ADDRESS=$DBUS_SYSTEM_BUS_ADDRESS busctl --system call org.dkm.KeyManager1 $GP org.dkm.KeyManager1.Group Rollover
echo "dkmd in A rolled over and loaded into A's keyrings; member in A decrypts, encrypts with the new generation:"
on A -- env $(henv A) $HELPER status $G | grep -E '^(keyring|active|pending|generation)'
echo "again" | on A as $P-member -- env $(henv A) $DKM encrypt -g $G | on A as $P-member -- env $(henv A) $DKM info | grep generation
echo "B is untouched (still generation 1 only):"
on B -- env $(henv B) $HELPER status $G | grep -E '^(active|generation)'
echo "audit/dkmd log tail:"; tail -5 $W/A/dkmd.log | sed 's/^/  /'

say "(c6b) retire and unload inside a namespace (no capability / CAP_SETUID only)"
run on A -- env $(henv A) $HELPER retire $G 3
run on A -- env $(henv A) $HELPER unload $G
ls $W/A/run

say "(c7) variant: a host with its own mount namespace and a tmpfs on /run, so the default /run/dkm works without DKM_RUNTIME_DIR"
$NSRUN new --mount --pidfile=$W/D.pid -- sh -c 'mount -t tmpfs -o mode=0755 tmpfs /run && exec sleep infinity' &
PIDS+=($!); sleep 0.3; HOSTPID[D]=$(cat $W/D.pid)
run on D -- $HELPER load < $W/manifest-B
on D -- ls -ln /run/dkm
echo "initial namespace /run/dkm has no file of $G: $(ls /run/dkm 2>&1 | grep -c $G)"
out=$(on D as $P-member -- $DKM decrypt -i $W/work/ct-B1 2>&1); echo "member in D (no DKM_RUNTIME_DIR) decrypts ct-B1 -> exit $?: $out"

say "(c8) cost of a namespace"
T0=$(date +%s%N); for i in $(seq 20); do $NSRUN new -- true; done; T1=$(date +%s%N)
echo "nsrun new -- true: $(( (T1 - T0) / 20000 )) us each (fork + unshare + maps + exec)"
T0=$(date +%s%N); for i in $(seq 20); do on A -- true; done; T1=$(date +%s%N)
echo "nsrun enter (setns + fresh session) -- true: $(( (T1 - T0) / 20000 )) us each"

say "(c6) teardown: killing a host's processes frees its user namespace and its keyrings"
RING_B=$(on B -- env $(henv B) $HELPER status $G | awk '/^keyring / {print $2}')
echo "B's group keyring $RING_B in /proc/keys before: $(grep -ci "^$(printf %08x $RING_B)" /proc/keys)"
kill ${HOSTPID[B]}; unset 'HOSTPID[B]'
for i in $(seq 50); do grep -qi "^$(printf %08x $RING_B)" /proc/keys || break; sleep 0.1; done
echo "after killing B's only process ($(( i * 100 )) ms): $(grep -ci "^$(printf %08x $RING_B)" /proc/keys)"
exit 0
