#!/bin/sh
# Spike: the request-key handler line points here:
#   create user dkm:<id>:* * /tmp/spike-userns/rk-wrapper.sh WORKDIR %u %k %d %c
# /sbin/request-key runs it as root in the INITIAL namespaces (usermode helper).
#   WORKDIR/rk-mode = "plain": run the helper here, as the installed line would.
#   WORKDIR/rk-mode = "route": WORKDIR/rk-route/<requester uid> holds "PID RUNTIME-DIR" of the
#                     host namespace whose member asked: enter its user namespace (keeping
#                     this session keyring, which holds the authority over %k) and run the
#                     helper there.
W=$1 uid=$2; shift 2
helper=/tmp/build-spike/src/helper/dkm-keyring-helper
mode=$(cat "$W/rk-mode" 2>/dev/null || echo plain)
log=$W/rk.log
echo "upcall mode=$mode uid=$uid key=$1 desc=$2 callout=$3 userns=$(readlink /proc/self/ns/user) session=$(keyctl rdescribe @s 2>&1)" >>"$log"
if [ "$mode" = route ] && [ -r "$W/rk-route/$uid" ]; then
        read -r pid rundir <"$W/rk-route/$uid"
        # nsenter: setns(user) then uid/gid 0 there; the session keyring (with the
        # .request_key_auth for %k) is inherited across setns.
        nsenter --user --target "$pid" -- "$helper" request-key --state-dir="$W/state" \
                --runtime-dir="$rundir" --timeout=30 "$@" 2>>"$log"
        rc=$?
        echo "  helper (in userns of $pid, runtime $rundir) exit $rc" >>"$log"
else
        "$helper" request-key --state-dir="$W/state" --runtime-dir="$W/init-run" --timeout=30 "$@" 2>>"$log"
        rc=$?
        echo "  helper (initial userns, runtime $W/init-run) exit $rc" >>"$log"
fi
exit $rc
