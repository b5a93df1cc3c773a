#!/bin/sh
# SPDX-License-Identifier: MIT
# The whole test suite: gcc build, clang build, ASan+UBSan build, a valgrind pass, the fuzzers.
# Needs root (tests create throwaway accounts and use kernel keyrings as they really are).
set -eu
cd "$(dirname "$0")/.."

scripts/deps.sh

echo "== gcc: build and test"
scripts/build.sh build
meson test -C build --print-errorlogs

# The gcc run takes the long figures of docs/RELIABILITY.md (60 s of load, 200 crash rounds);
# the other builds run the same tests shorter.
short="DKM_LOAD_SECONDS=10 DKM_CRASH_ITERATIONS=40"

echo "== clang: build and test"
CC=clang scripts/build.sh build-clang
env $short meson test -C build-clang --print-errorlogs

echo "== ASan+UBSan: build and test"
scripts/build.sh build-asan -Db_sanitize=address,undefined -Db_lundef=false
# tests/suppressions/: libldap's TLS leaks a client certificate per context (the files say why).
env $short ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        LSAN_OPTIONS=suppressions="$PWD/tests/suppressions/lsan.supp" \
        meson test -C build-asan --print-errorlogs

echo "== valgrind memcheck: the test programs of every unit and integration suite"
# CK_FORK=no keeps each suite in one process so valgrind sees every test; forked children are
# checked too (a definite leak at _exit() makes their status 66). The only suppressions are
# libldap's TLS leaks (tests/suppressions/valgrind.supp, each entry with its reason).
# Suite "unit" is every suite but the load test (a throughput test) and the install test (shell);
# "no-valgrind" is the memory test, which judges mappings valgrind replaces with its own.
# The programs the integration tests start (dkmd, the helper, dkm) are checked by the ASan+UBSan
# run above; test-libdkm runs the dkm CLI and the libdkm example under valgrind itself.
env $short CK_FORK=no meson test -C build --print-errorlogs --suite unit --no-suite no-valgrind \
        --wrapper "valgrind --quiet --error-exitcode=66 --leak-check=full --errors-for-leak-kinds=definite --track-fds=no --suppressions=$PWD/tests/suppressions/valgrind.supp" \
        --timeout-multiplier 1

echo "== fuzz: every harness over its corpus and regressions, then ${DKM_FUZZ_SECONDS:-60} s each"
scripts/fuzz.sh --regress
DKM_FUZZ_SECONDS="${DKM_FUZZ_SECONDS:-60}" scripts/fuzz.sh

echo "== benchmarks: smoke run (every benchmark path, tiny counts; fails on errors, not on speed)"
DKM_BENCH_BUILD="$PWD/build-bench" scripts/bench.sh --smoke

echo "All tests passed."
