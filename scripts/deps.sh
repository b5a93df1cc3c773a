#!/bin/sh
# SPDX-License-Identifier: MIT
# Install the Debian 12 packages dkm needs to build and test; installs only what is missing.
set -eu

packages="meson ninja-build pkg-config gcc clang libsodium-dev libkeyutils-dev libcap-dev
libsystemd-dev libp11-kit-dev check keyutils dbus systemd valgrind passwd util-linux libxml2-utils polkitd
libclang-rt-14-dev softhsm2 libtss2-dev swtpm libldap-dev ldap-utils slapd openssl"

missing=""
for p in $packages; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

echo "Installing:$missing"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

# slapd is only a tool for the fleet tests (tests/test-slapd.c runs throwaway instances): the
# package must neither configure a directory (no_configuration) nor start a system slapd. Debian's
# maintainer scripts ask /usr/sbin/policy-rc.d before starting a service; 101 = "not allowed".
# A policy-rc.d that is already there is left alone; ours is removed afterwards, even on failure.
policy_rc=""
case "$missing" in
*slapd*)
        echo 'slapd slapd/no_configuration boolean true' | $sudo debconf-set-selections
        if [ ! -e /usr/sbin/policy-rc.d ]; then
                policy_rc=/usr/sbin/policy-rc.d
                printf '#!/bin/sh\n# dkm scripts/deps.sh: no service starts while packages install\nexit 101\n' |
                        $sudo tee "$policy_rc" >/dev/null
                $sudo chmod 755 "$policy_rc"
                trap '$sudo rm -f "$policy_rc"' EXIT INT TERM
        fi
        ;;
esac

$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing
