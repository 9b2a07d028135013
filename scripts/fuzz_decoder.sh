#!/usr/bin/env bash
# Fuzz the native payload decoder (tfedge/runtime/cc) with libFuzzer, AddressSanitizer
# and UndefinedBehaviorSanitizer, from a seed corpus of real payloads.
#
# Usage: scripts/fuzz_decoder.sh [RUNS]     (default 1000000 executions)
#        scripts/fuzz_decoder.sh --smoke    (CI: a few seconds; skips without clang)
# Exits non-zero on any crash, sanitizer report, leak, timeout or allocation over
# 64 MiB (the harness bounds decoded sizes at 1 MiB). Findings land in build/fuzz/.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CC_DIR="$ROOT/tfedge/runtime/cc"
WORK="$ROOT/build/fuzz"
PY="${PYTHON:-$ROOT/.venv/bin/python}"

smoke=0
runs=1000000
if [ "${1:-}" = "--smoke" ]; then
    smoke=1
elif [ -n "${1:-}" ]; then
    runs="$1"
fi

CLANG="$(command -v clang++ || command -v clang++-14 || true)"
if [ -z "$CLANG" ]; then
    if [ "$smoke" = 1 ]; then
        echo "fuzz_decoder: clang++ not found; smoke run skipped" >&2
        exit 0
    fi
    echo "fuzz_decoder: clang++ not found (Debian: apt-get install clang)" >&2
    exit 2
fi

mkdir -p "$WORK/corpus" "$WORK/seeds" "$WORK/findings"
echo "fuzz_decoder: building with $("$CLANG" --version | head -1)" >&2
"$CLANG" -std=c++17 -g -O1 -fno-omit-frame-pointer \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    "$CC_DIR/decoder.cc" "$CC_DIR/fuzz_decode.cc" -o "$WORK/fuzz_decode"

# Seeds: codec payloads (smoke), plus a packed Keras model's payloads (full run). The
# smoke run's are made again when the seed script is newer than them.
if [ "$smoke" = 1 ]; then
    if [ -z "$(ls -A "$WORK/seeds")" ] || [ "$ROOT/scripts/fuzz_seeds.py" -nt "$WORK/seeds.stamp" ]; then
        rm -rf "$WORK/seeds" && mkdir -p "$WORK/seeds"
        "$PY" "$ROOT/scripts/fuzz_seeds.py" --nomodel "$WORK/seeds"
        touch "$WORK/seeds.stamp"
    fi
else
    rm -rf "$WORK/seeds" && mkdir -p "$WORK/seeds"
    "$PY" "$ROOT/scripts/fuzz_seeds.py" "$WORK/seeds"
    touch "$WORK/seeds.stamp"
fi

# -max_len covers the largest seed (a packed model's payloads reach ~470 KB); at 16 KB
# libFuzzer cut 190 of the 1,322 seeds short.
args=(-rss_limit_mb=1024 -malloc_limit_mb=64 -timeout=10 -max_len=524288
      -print_final_stats=1 -artifact_prefix="$WORK/findings/")
if [ "$smoke" = 1 ]; then
    args+=(-max_total_time=10)
else
    args+=(-runs="$runs")
fi
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:allocator_may_return_null=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
cd "$WORK"
set +e
"$WORK/fuzz_decode" "${args[@]}" "$WORK/corpus" "$WORK/seeds" 2>&1 | tee "$WORK/last_run.log" |
    grep -E "^(#[0-9]+ +(INITED|DONE|pulse))|ERROR|SUMMARY|Done|stat::" >&2
status=${PIPESTATUS[0]}
set -e
if [ "$status" != 0 ]; then
    echo "fuzz_decoder: FAILED (exit $status); see $WORK/last_run.log and $WORK/findings/" >&2
    exit 1
fi
echo "fuzz_decoder: ok, $(grep -Eo 'Done [0-9]+ runs' "$WORK/last_run.log" | tail -1)" >&2
