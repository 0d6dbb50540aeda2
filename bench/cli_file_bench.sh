#!/usr/bin/env bash
# cli_file_bench.sh [BUILD_DIR]: the quic-portal tool's file transfer
# (`send`/`receive`: SHA-256 while streaming, .part file, fsync, verify,
# rename) against its pipe mode (`serve < FILE` into `connect > OUT`) for the
# same bytes, between two processes on loopback. Target (issue 15): the
# file transfer at least 80% of the pipe's rate.
#
#   QP_CLI_BENCH_MIB      size of the file (default 1024)
#   QP_CLI_BENCH_REPEATS  runs of each, interleaved (default 3); medians
#   QP_CLI_BENCH_DIR      where the file and the copies go (default: a new
#                         folder in /tmp; both modes write to the same one)
#
# Each run is the wall time of the connecting side, from its start (the
# server already waiting) to its exit 0 (for the file: after the receiver
# verified and renamed; for the pipe: after the reader's acknowledgment),
# and the copy is compared with cmp. Prints one line per run, then a JSON
# summary line. Exit 0 done (a missed target is shown, not fatal), 1 a run
# failed, 2 bad usage.
set -u

BUILD=${1:-build}
BIN="$BUILD/tools/quic-portal"
if [ ! -x "$BIN" ]; then
  echo "usage: $0 [BUILD_DIR]  ($BIN is not executable)" >&2
  exit 2
fi
MIB=${QP_CLI_BENCH_MIB:-1024}
REPEATS=${QP_CLI_BENCH_REPEATS:-3}
if [ -n "${QP_CLI_BENCH_DIR:-}" ]; then
  DIR=$(mktemp -d "$QP_CLI_BENCH_DIR/qp-cli-bench.XXXXXX")
else
  DIR=$(mktemp -d /tmp/qp-cli-bench.XXXXXX)
fi
SPID=""
cleanup() {
  [ -n "$SPID" ] && kill -KILL "$SPID" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_udp_port() {
  python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_for FILE PATTERN: until the server says it listens (at most 10 s).
wait_for() {
  local i
  for i in $(seq 200); do
    grep -q -- "$2" "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

# run_one MODE: one run; prints the seconds, or returns 1.
run_one() {
  local mode=$1 P t0 t1 crc src
  P=$(free_udp_port)
  rm -rf "$DIR/rx" "$DIR/pipe.out"
  mkdir "$DIR/rx"
  if [ "$mode" = file ]; then
    "$BIN" serve --listen "127.0.0.1:$P" receive "$DIR/rx" >/dev/null 2>"$DIR/s.err" &
  else
    "$BIN" serve --listen "127.0.0.1:$P" <"$DIR/data.bin" >/dev/null 2>"$DIR/s.err" &
  fi
  SPID=$!
  wait_for "$DIR/s.err" "waiting for a client" || return 1
  t0=$(date +%s.%N)
  if [ "$mode" = file ]; then
    timeout 600 "$BIN" connect --to "127.0.0.1:$P" --quiet send "$DIR/data.bin" 2>"$DIR/c.err"
  else
    timeout 600 "$BIN" connect --to "127.0.0.1:$P" --quiet </dev/null >"$DIR/pipe.out" 2>"$DIR/c.err"
  fi
  crc=$?
  t1=$(date +%s.%N)
  wait "$SPID"
  src=$?
  SPID=""
  local copy="$DIR/rx/data.bin"
  [ "$mode" = pipe ] && copy="$DIR/pipe.out"
  if [ $crc -ne 0 ] || [ $src -ne 0 ] || ! cmp -s "$DIR/data.bin" "$copy"; then
    echo "$mode run failed: connect $crc, serve $src" >&2
    sed 's/^/    /' "$DIR/s.err" "$DIR/c.err" >&2
    return 1
  fi
  awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f\n", b - a}'
}

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "making a ${MIB} MiB file in $DIR"
head -c $((MIB * 1048576)) /dev/urandom >"$DIR/data.bin"
: >"$DIR/file.s" && : >"$DIR/pipe.s"
for r in $(seq "$REPEATS"); do
  for mode in pipe file; do
    secs=$(run_one "$mode") || exit 1
    echo "$secs" >>"$DIR/$mode.s"
    printf 'run %d %-4s %7.3f s %8.1f MiB/s\n' "$r" "$mode" "$secs" \
      "$(awk -v m="$MIB" -v s="$secs" 'BEGIN {print m / s}')"
  done
done
pipe=$(median <"$DIR/pipe.s")
file=$(median <"$DIR/file.s")
pipe_rate=$(awk -v m="$MIB" -v s="$pipe" 'BEGIN {print m / s}')
file_rate=$(awk -v m="$MIB" -v s="$file" 'BEGIN {print m / s}')
ratio=$(awk -v f="$file_rate" -v p="$pipe_rate" 'BEGIN {print 100 * f / p}')
printf 'median: pipe %.1f MiB/s, file %.1f MiB/s: file = %.0f%% of pipe (target >= 80%%)\n' \
  "$pipe_rate" "$file_rate" "$ratio"
printf '{"bench":"cli_file","mib":%d,"repeats":%d,"pipe_mib_per_s":%.1f,"file_mib_per_s":%.1f,"file_pct_of_pipe":%.1f}\n' \
  "$MIB" "$REPEATS" "$pipe_rate" "$file_rate" "$ratio"
