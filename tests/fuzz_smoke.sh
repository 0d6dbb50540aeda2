#!/bin/sh
# Run every libFuzzer target for a short budget (FUZZ_SECONDS, default 10 s
# each) from its seed corpus, as a smoke test: a crash, a leak or a
# sanitizer report fails the run. Longer runs: make fuzz.
#   tests/fuzz_smoke.sh [build-dir]   (default: a build-fuzz dir beside src)
# Exit 77 (skipped) when clang or its libFuzzer runtime is missing.
set -eu
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$SRC/build-fuzz}
SECONDS_EACH=${FUZZ_SECONDS:-10}

if ! command -v clang >/dev/null 2>&1; then
  echo "SKIP: clang is not installed (libFuzzer comes with clang)"
  exit 77
fi
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n){(void)d;(void)n;return 0;}\n' >"$probe/p.c"
if ! clang -fsanitize=fuzzer "$probe/p.c" -o "$probe/p" >/dev/null 2>&1; then
  echo "SKIP: clang cannot link -fsanitize=fuzzer (libFuzzer runtime missing)"
  exit 77
fi

CC=clang cmake -S "$SRC" -B "$BUILD" -DQP_FUZZ=ON -DQP_TESTS=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
status=0
for src in "$SRC"/fuzz/fuzz_*.c; do
  name=$(basename "$src" .c)
  corpus_name=${name#fuzz_}
  if ! cmake --build "$BUILD" --target "$name" -j2 >"$probe/build.log" 2>&1; then
    echo "FAIL $name: does not build"
    tail -20 "$probe/build.log"
    status=1
    continue
  fi
  work="$probe/$name"
  mkdir -p "$work"
  seeds="$SRC/fuzz/corpus/$corpus_name"
  [ -d "$seeds" ] || seeds=""
  # New inputs go to $work (thrown away); the seed corpus is read-only.
  if "$BUILD/fuzz/$name" -max_total_time="$SECONDS_EACH" -rss_limit_mb=1024 \
       -artifact_prefix="$work/" "$work" $seeds >"$work/log" 2>&1; then
    runs=$(grep -o 'Done [0-9]* runs' "$work/log" | tail -1)
    echo "PASS $name (${SECONDS_EACH}s: ${runs:-ran})"
  else
    echo "FAIL $name: see the report below; the input is in $work"
    tail -40 "$work/log"
    status=1
  fi
done
exit $status
