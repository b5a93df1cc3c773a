#!/bin/sh
# SPDX-License-Identifier: MIT
# Configure (once) and build one build directory: scripts/build.sh [DIR [meson setup options...]]
set -eu
cd "$(dirname "$0")/.."
dir="${1:-build}"
[ $# -gt 0 ] && shift
if [ ! -f "$dir/build.ninja" ]; then
        meson setup "$dir" "$@" >/dev/null
fi
ninja -C "$dir" >/dev/null
