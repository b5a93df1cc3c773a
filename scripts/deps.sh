#!/bin/sh
# SPDX-License-Identifier: MIT
# Install the Debian 12 packages dkm needs to build and test; installs only what is missing.
set -eu

packages="meson ninja-build pkg-config gcc clang libsodium-dev libkeyutils-dev libcap-dev
libsystemd-dev libp11-kit-dev check keyutils dbus systemd valgrind passwd util-linux libxml2-utils polkitd
libclang-rt-14-dev softhsm2 libtss2-dev swtpm"

missing=""
for p in $packages; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

echo "Installing:$missing"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing
