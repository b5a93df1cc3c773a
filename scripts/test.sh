#!/bin/sh
# SPDX-License-Identifier: MIT
# The whole test suite: gcc build, clang build, ASan+UBSan build, and a valgrind pass.
# Needs root (tests create throwaway accounts and use kernel keyrings as they really are).
set -eu
cd "$(dirname "$0")/.."

scripts/deps.sh

echo "== gcc: build and test"
scripts/build.sh build
meson test -C build --print-errorlogs

echo "== clang: build and test"
CC=clang scripts/build.sh build-clang
meson test -C build-clang --print-errorlogs

echo "== ASan+UBSan: build and test"
scripts/build.sh build-asan -Db_sanitize=address,undefined -Db_lundef=false
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        meson test -C build-asan --print-errorlogs

echo "== valgrind memcheck"
# CK_FORK=no keeps each suite in one process so valgrind sees every test.
CK_FORK=no meson test -C build --print-errorlogs --suite valgrind-safe \
        --wrapper 'valgrind --quiet --error-exitcode=66 --leak-check=full --errors-for-leak-kinds=definite --track-fds=no' \
        --timeout-multiplier 10

echo "== benchmarks: smoke run (every benchmark path, tiny counts; fails on errors, not on speed)"
DKM_BENCH_BUILD="$PWD/build-bench" scripts/bench.sh --smoke

echo "All tests passed."
