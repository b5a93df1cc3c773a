#!/bin/sh
# SPDX-License-Identifier: MIT
# The main job with the embedded default: a store in a temp dir, a key group, two rollovers.
set -eu
cd "$(dirname "$0")/.."

scripts/deps.sh
scripts/build.sh build

bin=build/src/tools
work=$(mktemp -d /tmp/dkm-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
export DKM_STATE_DIR="$work/state"

step() { printf '\n$ %s\n' "$*"; "$@"; }

step $bin/dkm-store init
step $bin/dkm-store group create demo --gid="$(id -g)" --rollover-period=30d
step $bin/dkm-store rollover demo
step $bin/dkm-store rollover demo
step $bin/dkm-store group list
step $bin/dkm-store group show demo
step $bin/dkm-store check
printf '\nState directory (only wrapped keys, private to %s):\n' "$(id -un)"
(cd "$DKM_STATE_DIR" && ls -lR)
