#!/bin/bash
# SPDX-License-Identifier: MIT
# meson install into a temp DESTDIR, then check what a Debian package would ship: every file at
# its path with a sane mode, a unit systemd accepts and scores <= 2.0, D-Bus and polkit files
# their parsers accept, sysusers/tmpfiles entries the real tools apply.
#
# Usage: test-install.sh BUILD_DIR SOURCE_DIR. The install dirs come from meson (tests/meson.build
# passes the same values the build used, in DKM_* variables); the file names below them are
# fixed here, so a wrong install_dir fails the test.
set -eu

build=${1:?usage: test-install.sh BUILD_DIR SOURCE_DIR}
src=${2:?usage: test-install.sh BUILD_DIR SOURCE_DIR}
meson=${DKM_MESON:-meson}
for v in DKM_PREFIX DKM_BINDIR DKM_SBINDIR DKM_LIBDIR DKM_LIBEXECDIR DKM_INCLUDEDIR DKM_DATADIR \
        DKM_UNITDIR DKM_SYSUSERSDIR DKM_TMPFILESDIR; do
        [ -n "${!v:-}" ] || { echo "test-install.sh: $v is not set (run it through meson test)" >&2; exit 2; }
done
# meson's dir options are relative to the prefix unless absolute.
abs() { case $1 in /*) echo "$1" ;; *) echo "$DKM_PREFIX/$1" ;; esac; }
bindir=$(abs "$DKM_BINDIR")
sbindir=$(abs "$DKM_SBINDIR")
libdir=$(abs "$DKM_LIBDIR")
libexecdir=$(abs "$DKM_LIBEXECDIR")
includedir=$(abs "$DKM_INCLUDEDIR")
datadir=$(abs "$DKM_DATADIR")
docdir=$datadir/doc/dkm

tmp=$(mktemp -d /tmp/dkm-test-install.XXXXXX)
bus_pid=
cleanup() {
        [ -z "$bus_pid" ] || { kill "$bus_pid" 2>/dev/null; wait "$bus_pid" 2>/dev/null || true; }
        rm -rf "$tmp"
}
trap cleanup EXIT
root=$tmp/root

failures=0
fail() {
        echo "FAIL: $*"
        failures=$((failures + 1))
}
ok() { echo "ok: $*"; }

echo "== meson install --destdir=$root"
if ! "$meson" install -C "$build" --destdir "$root" --no-rebuild --quiet >"$tmp/install.log" 2>&1; then
        cat "$tmp/install.log"
        echo "FAIL: meson install"
        exit 1
fi

# expect TYPE MODE PATH: TYPE f (regular file), l (symlink), d (directory); MODE octal or -.
expect() {
        local type=$1 mode=$2 path=$3 f=$root$3 have
        case $type in
        f) [ -f "$f" ] && [ ! -L "$f" ] || { fail "$path: missing (or not a regular file)"; return; } ;;
        l) [ -L "$f" ] && [ -e "$f" ] || { fail "$path: missing (or not a working symlink)"; return; } ;;
        d) [ -d "$f" ] && [ ! -L "$f" ] || { fail "$path: missing (or not a directory)"; return; } ;;
        esac
        if [ "$mode" != - ]; then
                have=$(stat -c %a "$f")
                [ "$have" = "$mode" ] || { fail "$path: mode $have, want $mode"; return; }
        fi
        ok "$path"
}

echo "== files"
expect f 755 "$libexecdir/dkm/dkmd"
expect f 755 "$libexecdir/dkm/dkm-keyring-helper"
expect f 755 "$sbindir/dkm-store"
expect f 755 "$bindir/dkm"
expect f 755 "$bindir/dkmctl"
expect f 755 "$libdir/libdkm.so.0.1.0"
expect l - "$libdir/libdkm.so.0"
expect l - "$libdir/libdkm.so"
expect f 644 "$includedir/dkm.h"
expect f 644 "$libdir/pkgconfig/dkm.pc"
expect f 644 "$DKM_UNITDIR/dkmd.service"
expect f 644 "$datadir/dbus-1/system.d/org.dkm.KeyManager1.conf"
expect f 644 "$datadir/dbus-1/system-services/org.dkm.KeyManager1.service"
expect f 644 "$datadir/polkit-1/actions/org.dkm.KeyManager1.policy"
expect f 644 "$DKM_SYSUSERSDIR/dkm.conf"
expect f 644 "$DKM_TMPFILESDIR/dkm.conf"
if [ -n "${DKM_REQUEST_KEY_DIR:-}" ]; then
        expect f 644 "$DKM_REQUEST_KEY_DIR/dkm.conf"
else
        echo "note: -Drequest_key_dir= is empty: no request-key.d drop-in to check"
fi
expect f 644 "$datadir/dkm/ldap/dkm.ldif"
expect f 644 "$datadir/dkm/ldap/dkm-acl.ldif.example"
cmp -s "$root$datadir/dkm/ldap/dkm.ldif" "$src/policy/ldap/dkm.ldif" ||
        fail "the installed LDAP schema differs from policy/ldap/dkm.ldif"
expect d 755 "$DKM_PREFIX/lib/dkm/groups.d"
[ -z "$(ls -A "$root$DKM_PREFIX/lib/dkm/groups.d" 2>/dev/null)" ] ||
        fail "$DKM_PREFIX/lib/dkm/groups.d: not empty (packages' drop-ins do not ship with dkm)"
for d in README.md ARCHITECTURE.md CLI.md DBUS-API.md FORMAT.md KEYRING.md LIBDKM.md PACKAGING.md POLICY.md STORE.md DKMCTL.md PERFORMANCE.md AUDIT.md FLEET.md \
        examples/dkm-example.c examples/dkm-example-mail.service examples/dkm-example-mail.conf examples/dkmd-customer-key.conf examples/dkmd-fleet.conf examples/fleet.conf \
        examples/groups.d/mail-creds.conf; do
        expect f 644 "$docdir/$d"
done
cmp -s "$root$docdir/examples/groups.d/mail-creds.conf" "$src/docs/examples/groups.d/mail-creds.conf" ||
        fail "the installed groups.d example differs from docs/examples/groups.d/mail-creds.conf"

echo "== nothing setuid, nothing writable by group or other, nothing outside the known places"
bad=$(find "$root" \( -type f -o -type d \) -perm /7022 -printf '%m %P\n')
[ -z "$bad" ] && ok "modes" || fail "unsafe modes (setuid/setgid/sticky or group/other writable): $bad"
allowed="$DKM_PREFIX/ $DKM_UNITDIR/ $DKM_SYSUSERSDIR/ $DKM_TMPFILESDIR/ ${DKM_REQUEST_KEY_DIR:+$DKM_REQUEST_KEY_DIR/}"
stray=$(cd "$root" && find . \( -type f -o -type l \) -printf '/%P\n' | while read -r p; do
        inside=no
        for a in $allowed; do case $p in "$a"*) inside=yes ;; esac; done
        [ $inside = yes ] || echo "$p"
done)
[ -z "$stray" ] && ok "install roots" || fail "installed outside the prefix and the systemd/request-key dirs: $stray"

echo "== dkmd.service"
unit=$root$DKM_UNITDIR/dkmd.service
exec_start=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$unit")
[ "$exec_start" = "$libexecdir/dkm/dkmd" ] && [ -x "$root$exec_start" ] && ok "ExecStart=$exec_start is the installed dkmd" ||
        fail "ExecStart=$exec_start is not the installed dkmd ($libexecdir/dkm/dkmd)"
grep -qx 'ExecStart=.* --admin-group=dkm-admin' "$unit" && ok "--admin-group=dkm-admin" ||
        fail "ExecStart does not pass --admin-group=dkm-admin"
grep -qx 'Type=dbus' "$unit" && grep -qx 'BusName=org.dkm.KeyManager1' "$unit" && ok "Type=dbus BusName=org.dkm.KeyManager1" ||
        fail "not Type=dbus with BusName=org.dkm.KeyManager1"
grep -q '^PrivateUsers=' "$unit" && fail "PrivateUsers= is set (groups would not map)"
for doc in $(sed -n 's/^Documentation=//p' "$unit"); do
        case $doc in
        file://*) [ -f "$root${doc#file://}" ] && ok "Documentation=$doc" || fail "Documentation=$doc is not installed" ;;
        esac
done
# The tmpfiles.d entries and the unit must create the same directories the same way.
grep -Eq '^d /var/lib/dkm +0700 root root' "$root$DKM_TMPFILESDIR/dkm.conf" && grep -qx 'StateDirectoryMode=0700' "$unit" ||
        fail "state directory: tmpfiles.d and StateDirectoryMode= disagree (want 0700 both)"
grep -Eq '^d /run/dkm +0755 root root' "$root$DKM_TMPFILESDIR/dkm.conf" && grep -qx 'RuntimeDirectoryMode=0755' "$unit" ||
        fail "runtime directory: tmpfiles.d and RuntimeDirectoryMode= disagree (want 0755 both)"

# verify loads the unit against the host's units (dbus.socket, sysinit.target) and checks that
# the programs it runs exist. It prints problems but exits 0 on most of them, so any output
# fails. The installed ExecStart is not on this host: check a copy pointing into DESTDIR (the
# path itself is checked above).
mkdir -p "$tmp/verify"
sed "s|^ExecStart=/|ExecStart=$root/|" "$unit" >"$tmp/verify/dkmd.service"
if out=$(systemd-analyze verify --man=no "$tmp/verify/dkmd.service" 2>&1) && [ -z "$out" ]; then
        ok "systemd-analyze verify"
else
        fail "systemd-analyze verify: $out"
fi

out=$(systemd-analyze security --offline=true "$unit" 2>&1) || true
exposure=$(printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for dkmd.service: \([0-9.]*\).*/\1/p')
if [ -z "$exposure" ]; then
        fail "systemd-analyze security gave no exposure level: $out"
elif awk -v e="$exposure" 'BEGIN { exit !(e <= 2.0) }' &&
        systemd-analyze security --offline=true --threshold=20 "$unit" >/dev/null 2>&1; then
        ok "systemd-analyze security --offline=true: exposure $exposure (<= 2.0)"
else
        printf '%s\n' "$out" | grep '✗' || true
        fail "systemd-analyze security --offline=true: exposure $exposure > 2.0"
fi

echo "== D-Bus"
if ! command -v xmllint >/dev/null; then
        fail "xmllint not found (package libxml2-utils; scripts/deps.sh installs it)"
else
        for x in "$datadir/dbus-1/system.d/org.dkm.KeyManager1.conf" "$datadir/polkit-1/actions/org.dkm.KeyManager1.policy"; do
                xmllint --noout --nonet "$root$x" 2>"$tmp/xmllint.log" && ok "well-formed: $x" ||
                        fail "xmllint $x: $(cat "$tmp/xmllint.log")"
        done
fi
act=$root$datadir/dbus-1/system-services/org.dkm.KeyManager1.service
[ "$(sed -n 's/^Name=//p' "$act")" = org.dkm.KeyManager1 ] && [ "$(sed -n 's/^User=//p' "$act")" = root ] &&
        [ "$(sed -n 's/^SystemdService=//p' "$act")" = dkmd.service ] &&
        ok "activation: org.dkm.KeyManager1 -> dkmd.service as root" ||
        fail "activation file: want Name=org.dkm.KeyManager1, User=root, SystemdService=dkmd.service"

# dbus-daemon's own parser: a system-type bus including the installed policy (a parse error
# there stops the bus) and reading the installed activation file.
cat >"$tmp/bus.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=$tmp/bus.sock</listen>
  <auth>EXTERNAL</auth>
  <servicedir>$root$datadir/dbus-1/system-services</servicedir>
  <policy context="default">
    <allow user="*"/>
    <allow send_destination="org.freedesktop.DBus"/>
    <allow receive_sender="org.freedesktop.DBus"/>
  </policy>
  <include>$root$datadir/dbus-1/system.d/org.dkm.KeyManager1.conf</include>
</busconfig>
EOF
dbus-daemon --config-file="$tmp/bus.conf" --nofork --print-address=1 >"$tmp/bus.addr" 2>"$tmp/bus.log" &
bus_pid=$!
for _ in $(seq 100); do
        [ -s "$tmp/bus.addr" ] && break
        kill -0 "$bus_pid" 2>/dev/null || break
        sleep 0.05
done
if [ ! -s "$tmp/bus.addr" ]; then
        fail "dbus-daemon refused the installed policy: $(cat "$tmp/bus.log")"
else
        names=$(busctl --address="unix:path=$tmp/bus.sock" call org.freedesktop.DBus /org/freedesktop/DBus \
                org.freedesktop.DBus ListActivatableNames 2>&1) || true
        case $names in
        *'"org.dkm.KeyManager1"'*) ok "dbus-daemon accepts the policy and activates org.dkm.KeyManager1" ;;
        *) fail "dbus-daemon does not list org.dkm.KeyManager1 as activatable: $names" ;;
        esac
fi
kill "$bus_pid" 2>/dev/null
wait "$bus_pid" 2>/dev/null || true
bus_pid=

echo "== polkit"
pol=$root$datadir/polkit-1/actions/org.dkm.KeyManager1.policy
if command -v xmllint >/dev/null; then
        xp() { xmllint --nonet --xpath "string($1)" "$pol" 2>/dev/null; }
        a='/policyconfig/action[@id="org.dkm.keymanager1.manage"]'
        [ "$(xp "count(/policyconfig/action)")" = 1 ] && [ "$(xp "$a/defaults/allow_any")" = no ] &&
                [ "$(xp "$a/defaults/allow_inactive")" = no ] &&
                [ "$(xp "$a/defaults/allow_active")" = auth_admin_keep ] &&
                ok "one action org.dkm.keymanager1.manage: no, no, auth_admin_keep" ||
                fail "polkit: want one action org.dkm.keymanager1.manage with defaults no/no/auth_admin_keep"
        # polkit's DTD is there only where polkit is installed; validate when it is.
        dtd=/usr/share/polkit-1/policyconfig-1.dtd
        if [ -f $dtd ]; then
                xmllint --noout --nonet --dtdvalid $dtd "$pol" 2>"$tmp/dtd.log" && ok "valid against $dtd" ||
                        fail "polkit policy not valid against $dtd: $(grep -v 'external entity\|network entity\|policyconfig-1.dtd">\|^ *^' "$tmp/dtd.log")"
        fi
fi

echo "== sysusers.d and tmpfiles.d, applied by the real tools to an empty root"
sys=$tmp/sysroot
mkdir -p "$sys/etc"
if systemd-sysusers --root="$sys" "$root$DKM_SYSUSERSDIR/dkm.conf" >"$tmp/sysusers.log" 2>&1 &&
        grep -q '^dkm-admin:x:[0-9]*:$' "$sys/etc/group"; then
        ok "systemd-sysusers creates the dkm-admin group"
else
        fail "systemd-sysusers: $(cat "$tmp/sysusers.log")"
fi
if systemd-tmpfiles --root="$sys" --create "$root$DKM_TMPFILESDIR/dkm.conf" >"$tmp/tmpfiles.log" 2>&1 &&
        [ "$(stat -c '%a %u %g' "$sys/var/lib/dkm")" = "700 0 0" ] &&
        [ "$(stat -c '%a %u %g' "$sys/run/dkm")" = "755 0 0" ]; then
        ok "systemd-tmpfiles creates /var/lib/dkm 0700 and /run/dkm 0755, root-owned"
else
        fail "systemd-tmpfiles: $(cat "$tmp/tmpfiles.log")"
fi

echo "== request-key.d"
if [ -n "${DKM_REQUEST_KEY_DIR:-}" ]; then
        helper=$(awk '$1 == "create" { print $5 }' "$root$DKM_REQUEST_KEY_DIR/dkm.conf")
        [ "$helper" = "$libexecdir/dkm/dkm-keyring-helper" ] && [ -x "$root$helper" ] &&
                ok "request-key.d runs the installed helper" ||
                fail "request-key.d drop-in runs \"$helper\", not the installed $libexecdir/dkm/dkm-keyring-helper"
fi

if [ $failures -ne 0 ]; then
        echo "$failures check(s) failed"
        exit 1
fi
echo "all install checks passed"
