#!/bin/sh
# SPDX-License-Identifier: MIT
# libFuzzer harnesses of tests/fuzz (docs/FUZZING.md), built in build-fuzz with clang, ASan+UBSan.
#   scripts/fuzz.sh [NAME...]            each harness for $DKM_FUZZ_SECONDS (default 60) on a temp
#                                        copy of its corpus, two at a time; any crash, leak or
#                                        timeout fails and names its reproducer
#   scripts/fuzz.sh --regress [NAME...]  each harness once over its corpus and its regressions
#   scripts/fuzz.sh --make-corpus        rewrite tests/fuzz/corpus/ (then review and commit it)
set -eu
cd "$(dirname "$0")/.."

build="build-fuzz"
fuzz_dir=tests/fuzz
seconds="${DKM_FUZZ_SECONDS:-60}"
# UBSan only reports and carries on unless told to stop; a finding must fail the run.
UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
export UBSAN_OPTIONS
# Kept after the run (the temp dir is not): where a failing input is, to reproduce it with
#   build-fuzz/tests/fuzz/fuzz-NAME FILE
artifacts="$PWD/$build/fuzz-artifacts"

# Every tests/fuzz/fuzz-NAME.c that is a harness (not a helper source or the corpus generator).
all_names() {
        grep -l '^int LLVMFuzzerTestOneInput' "$fuzz_dir"/fuzz-*.c | sed 's|.*/fuzz-||; s|\.c$||'
}

# One harness for $seconds; internal (xargs runs two of these at a time). Writes $work/NAME.result.
run_one() {
        name="$1"
        dir="$work/$name"
        exe="$build/$fuzz_dir/fuzz-$name"
        mkdir -p "$dir/corpus" "$dir/tmp" "$artifacts/$name"
        rm -f "$artifacts/$name/"*
        # A copy: what the run finds stays in the temp dir, the committed corpus never grows.
        cp "$fuzz_dir/corpus/$name/"* "$dir/corpus/" 2>/dev/null || true
        status=0
        TMPDIR="$dir/tmp" timeout $((seconds + 300)) "$exe" -max_total_time="$seconds" -timeout=10 \
                -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$artifacts/$name/" \
                "$dir/corpus" "$fuzz_dir/regressions/$name" >"$dir/log" 2>&1 || status=$?
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -n 1)
        rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/log" | tail -n 1)
        cov=$(sed -n 's/.* cov: \([0-9]*\) ft: \([0-9]*\) corp: \([0-9]*\).*/\1 \2 \3/p' "$dir/log" | tail -n 1)
        # shellcheck disable=SC2086 # three numbers, split on purpose
        set -- $cov
        line=$(printf '%-17s runs %9s (%6s/s)  cov %5s  ft %6s  corpus %5s' "$name" "${runs:-?}" "${rate:-?}" \
                "${1:-?}" "${2:-?}" "${3:-?}")
        if [ "$status" -eq 0 ]; then
                echo "$line  ok" >"$work/$name.result"
                return 0
        fi
        # shellcheck disable=SC2012 # libFuzzer's own artifact names: hex, no odd characters
        repro=$(ls -t "$artifacts/$name/"crash-* "$artifacts/$name/"leak-* "$artifacts/$name/"timeout-* \
                "$artifacts/$name/"oom-* "$artifacts/$name/"slow-unit-* 2>/dev/null | head -n 1 || true)
        {
                echo "$line  FAILED (exit $status)"
                grep -E 'ERROR:|SUMMARY:|invariant failed|no reply|unnamed error|cannot be saved|does not load' \
                        "$dir/log" | head -n 5 | sed 's/^/    /'
                if [ -n "$repro" ]; then
                        echo "    reproducer: $repro"
                        echo "    reproduce:  $build/$fuzz_dir/fuzz-$name $repro"
                        echo "    keep it:    cp $repro $fuzz_dir/regressions/$name/"
                else
                        echo "    (no reproducer written; log follows)"
                        tail -n 20 "$dir/log" | sed 's/^/    /'
                fi
        } >"$work/$name.result"
        return 1
}

if [ "${1:-}" = --run-one ]; then
        work="$2"
        run_one "$3"
        exit $?
fi

mode=fuzz
case "${1:-}" in
--regress)
        mode=regress
        shift
        ;;
--make-corpus)
        mode=corpus
        shift
        ;;
esac
names="$*"
[ -n "$names" ] || names=$(all_names)

echo "== building $build (clang, -Dfuzz=true, ASan+UBSan)"
# Not scripts/build.sh, which builds every target: only the harnesses (and what they link) here.
if [ ! -f "$build/build.ninja" ]; then
        CC=clang meson setup "$build" -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
fi
targets="$fuzz_dir/fuzz-corpus-gen"
for name in $(all_names); do
        targets="$targets $fuzz_dir/fuzz-$name"
done
# shellcheck disable=SC2086
if ! out=$(ninja -C "$build" $targets 2>&1); then
        echo "$out"
        exit 1
fi

if [ "$mode" = corpus ]; then
        rm -rf "$fuzz_dir/corpus"
        mkdir -p "$fuzz_dir/corpus"
        "$build/$fuzz_dir/fuzz-corpus-gen" "$fuzz_dir/corpus" docs/examples/groups.d/mail-creds.conf
        du -sh "$fuzz_dir/corpus/"*
        exit 0
fi

if [ "$mode" = regress ]; then
        failed=""
        for name in $names; do
                set -- "$fuzz_dir/corpus/$name/"* "$fuzz_dir/regressions/$name/"*
                inputs=""
                for f in "$@"; do
                        [ -f "$f" ] && [ "${f##*/}" != README ] && inputs="$inputs $f"
                done
                log=$(mktemp)
                # Files, not directories: each runs exactly once and nothing is written anywhere.
                # shellcheck disable=SC2086
                if TMPDIR="${TMPDIR:-/tmp}" "$build/$fuzz_dir/fuzz-$name" -timeout=10 -rss_limit_mb=2048 $inputs \
                        >"$log" 2>&1; then
                        printf '%-17s %4d inputs  ok\n' "$name" "$(grep -c '^Executed ' "$log")"
                else
                        printf '%-17s FAILED\n' "$name"
                        grep -E '^Running:|ERROR:|SUMMARY:|invariant failed|no reply|unnamed error' "$log" | tail -n 6 |
                                sed 's/^/    /'
                        failed="$failed $name"
                fi
                rm -f "$log"
        done
        if [ -n "$failed" ]; then
                echo "Regressions failed:$failed"
                exit 1
        fi
        echo "All fuzz regressions passed."
        exit 0
fi

# tmpfs when there is one: the bus harness rebuilds a store every few hundred inputs, with fsyncs.
base=/tmp
[ -d /dev/shm ] && [ -w /dev/shm ] && base=/dev/shm
work=$(mktemp -d "$base/dkm-fuzz-XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
echo "== fuzzing each harness for ${seconds}s, two at a time"
# shellcheck disable=SC2086
printf '%s\n' $names | xargs -P 2 -I NAME "$0" --run-one "$work" NAME || true
status=0
for name in $names; do
        if [ -f "$work/$name.result" ]; then
                cat "$work/$name.result"
        else
                echo "$name: no result (the harness did not run)"
        fi
        grep -q '  ok$' "$work/$name.result" 2>/dev/null || status=1
done
if [ "$status" -ne 0 ]; then
        echo "Fuzzing found problems (see above); add each reproducer to $fuzz_dir/regressions/NAME/."
        exit 1
fi
echo "All fuzz harnesses ran clean."
