#!/usr/bin/env bash
# bench/path_bench.sh BUILD_DIR: qp-bench over QUIC and TCP between two
# network namespaces joined by a 1500-byte-MTU path (tests/lab/pathlab.sh):
# directly, and through the delay/rate/loss forwarder (tests/lab/delayfw.c).
# Called by `make bench-path`; needs root (exit 77 with the reason if not).
#
# Scenarios (QP_PATH_SCENARIOS, space separated, default all four):
#   direct       veth, no added delay, the kernel's offloads on
#   rtt20        20 ms RTT, 1000 Mbit/s bottleneck each way, 25 ms drop-tail queue
#   rtt20-loss1  the same with 1% random loss EACH WAY (about 2% per round trip)
#   rtt20-loss2  the same with 2% random loss each way
# Benches per scenario: bulk (1 MiB messages), pingpong 600 KiB / 5 KiB, rtt
# (1 byte); each QUIC/TCP pair repeated QP_PATH_REPEATS times, interleaved.
#
# Environment (all optional):
#   QP_PATH_REPEATS      repeats (default 3); the table shows medians
#   QP_PATH_SCENARIOS    see above
#   QP_PATH_QUIC_OPTS    extra qp-bench options for both QUIC ends, e.g. "--cc cubic"
#   QP_PATH_BULK_MB      MiB per bulk run: direct 512, rtt20 128, lossy 64
#                        (one value overrides all)
#   QP_PATH_TIMEOUT      seconds one client run may take (default 60); a bulk
#                        run that times out shows as "<X" (the rate it stayed under)
#   QP_PATH_OUT          results folder (default BUILD_DIR/bench-path)
#   QP_PATH_SEED         loss seed of the forwarder (default 1)
#   QP_PATH_TCP_CC       TCP congestion control of both hosts (default: the
#                        kernel's default, printed; bbr on the development VM)
#   QP_PATH_NICE         nice value of both benchmark ends, QUIC and TCP alike
#                        (default -10: other work on a shared machine then
#                        disturbs the figures less; the forwarder runs at
#                        real-time priority, see tests/lab/pathlab.sh)
#   QP_PATH_KEEP=1       leave the lab up at the end, and reuse a lab that is
#                        already up (saves waiting for /tmp/qp-lab.lock, which
#                        long lab tests may hold for minutes)
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LAB="$HERE/../tests/lab/pathlab.sh"
if [[ $# -ne 1 || $1 == -h || $1 == --help ]]; then
  echo "usage: bench/path_bench.sh BUILD_DIR   (see bench/README.md)" >&2
  exit 2
fi
BUILD=$(cd "$1" && pwd) || exit 2
BIN=$BUILD/qp-bench
[[ -x $BIN ]] || { echo "path_bench: $BIN not found; build first" >&2; exit 2; }
if [[ $(id -u) != 0 ]]; then
  echo "SKIP: bench-path needs root (network namespaces and AF_PACKET); running as uid $(id -u)"
  exit 77
fi
command -v python3 >/dev/null || { echo "SKIP: python3 is needed for the summary"; exit 77; }

# The forwarder: built here (no library needed) when missing or stale.
export DELAYFW=$BUILD/delayfw
if [[ ! -x $DELAYFW || $HERE/../tests/lab/delayfw.c -nt $DELAYFW ]]; then
  cc -O2 -g -std=gnu11 -Wall -Wextra -Werror -o "$DELAYFW" "$HERE/../tests/lab/delayfw.c" ||
    { echo "path_bench: cannot build delayfw" >&2; exit 1; }
fi

REPEATS=${QP_PATH_REPEATS:-3}
SCENARIOS=${QP_PATH_SCENARIOS:-direct rtt20 rtt20-loss1 rtt20-loss2}
read -r -a QOPTS <<<"${QP_PATH_QUIC_OPTS:-}"
TIMEOUT=${QP_PATH_TIMEOUT:-60}
SEED=${QP_PATH_SEED:-1}
OUT=${QP_PATH_OUT:-$BUILD/bench-path}
mkdir -p "$OUT" || exit 2
RESULTS=$OUT/results.jsonl
LOG=$OUT/servers.log
: >"$RESULTS"
: >"$LOG"
export PATHLAB_PREFIX=${PATHLAB_PREFIX:-qpp}

SERVER_PID=""
KEEP=${QP_PATH_KEEP:-0}
NICE=${QP_PATH_NICE:--10}
cleanup() {
  [[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null
  [[ $KEEP == 1 ]] && return
  "$LAB" down >/dev/null 2>&1 # removes only our namespaces: no lock needed
}
trap cleanup EXIT
trap 'echo "path_bench: interrupted" >&2; exit 130' INT TERM

if [[ $KEEP == 1 ]] && "$LAB" exec a true 2>/dev/null && "$LAB" exec b true 2>/dev/null; then
  echo "path_bench: reusing the lab that is up ($PATHLAB_PREFIX-*)" >&2
else
  flock /tmp/qp-lab.lock "$LAB" up >&2 || { rc=$?; ((rc == 77)) && exit 77; exit 1; }
fi

TCP_CC=${QP_PATH_TCP_CC:-}
if [[ -n $TCP_CC ]]; then
  for h in a b; do
    "$LAB" exec $h sysctl -q -w net.ipv4.tcp_congestion_control="$TCP_CC" ||
      { echo "path_bench: cannot set TCP congestion control $TCP_CC" >&2; exit 2; }
  done
fi
TCP_CC=$("$LAB" exec a sysctl -n net.ipv4.tcp_congestion_control)

# shape SCENARIO: start the forwarder for it; prints the link name to use.
shape() {
  case $1 in
    direct) echo direct; return 0 ;;
    rtt20) "$LAB" shape --rtt-ms 20 --rate-mbit 1000 --seed "$SEED" >&2 ;;
    rtt20-loss1) "$LAB" shape --rtt-ms 20 --rate-mbit 1000 --loss 1 --seed "$SEED" >&2 ;;
    rtt20-loss2) "$LAB" shape --rtt-ms 20 --rate-mbit 1000 --loss 2 --seed "$SEED" >&2 ;;
    *) echo "path_bench: unknown scenario $1" >&2; return 1 ;;
  esac
  echo fw
}

# Median ping RTT (ms) of 20 pings across the link: the check that the
# forwarder adds what it should.
ping_ms() {
  "$LAB" exec a ping -n -q -c 20 -i 0.05 "$("$LAB" addr b "$1")" 2>/dev/null |
    awk -F'[/ =]+' '/^rtt|^round-trip/ { print $7 }'
}

wait_bound() { # proto port: at most 5 s
  local hex i files
  hex=$(printf ':%04X' "$2")
  if [[ $1 == tcp ]]; then files=/proc/net/tcp; else files=/proc/net/udp; fi
  for ((i = 0; i < 100; i++)); do
    kill -0 "$SERVER_PID" 2>/dev/null || return 1
    "$LAB" exec b awk -v p="$hex" 'FNR > 1 && substr($2, length($2) - 4) == p { f = 1 } END { exit !f }' $files && return 0
    sleep 0.05
  done
  return 1
}

PORT=20000
# run_one SCENARIO LINK TRANSPORT BENCH REPEAT
run_one() {
  local sc=$1 link=$2 tr=$3 bench=$4 rep=$5 mode out rc mb tflag=() qo=() cargs=()
  local delayed=1
  [[ $sc == direct ]] && delayed=0
  [[ $tr == tcp ]] && tflag=(--tcp)
  [[ $tr == quic ]] && qo=("${QOPTS[@]}")
  case $sc in direct) mb=512 ;; rtt20) mb=128 ;; *) mb=64 ;; esac
  mb=${QP_PATH_BULK_MB:-$mb}
  case $bench in
    bulk) mode=sink; cargs=(--bench throughput --total-mb "$mb" --msg-size 1048576) ;;
    pingpong) mode=pingpong; cargs=(--bench pingpong --iters $((delayed ? 30 : 50)) --ping-size 614400 --pong-size 5120) ;;
    rtt) mode="echo"; cargs=(--bench rtt --iters $((delayed ? 50 : 2000))) ;;
  esac
  PORT=$((PORT + 1))
  echo "--- $sc $tr $bench #$rep port $PORT" >>"$LOG"
  "$LAB" exec b nice -n "$NICE" timeout $((TIMEOUT + 30)) "$BIN" server --bind "$("$LAB" addr b "$link")" --port $PORT \
    --mode "$mode" --timeout 30 "${tflag[@]}" "${qo[@]}" >/dev/null 2>>"$LOG" &
  SERVER_PID=$!
  if ! wait_bound "$tr" $PORT; then
    echo "path_bench: $sc $tr server did not start; see $LOG" >&2
  else
    out=$("$LAB" exec a nice -n "$NICE" timeout "$TIMEOUT" "$BIN" client --host "$("$LAB" addr b "$link")" --port $PORT \
      "${cargs[@]}" "${tflag[@]}" "${qo[@]}" 2>>"$LOG")
    rc=$?
    if ((rc == 0)) && [[ $out == "{"*"}" ]]; then
      echo "${out%\}},\"scenario\":\"$sc\",\"repeat\":$rep}" >>"$RESULTS"
      printf 'path_bench: %-12s %-4s %-8s #%d %s\n' "$sc" "$tr" "$bench" "$rep" "${out:0:150}" >&2
    else
      # A timed-out bulk run moved less than mb MiB in TIMEOUT seconds.
      echo "{\"bench\":\"${cargs[1]}\",\"transport\":\"$tr\",\"scenario\":\"$sc\",\"repeat\":$rep,\"failed\":true,\"rc\":$rc,\"upper_gbit\":$(awk -v m="$mb" -v t="$TIMEOUT" 'BEGIN { print m * 8388608 / t / 1e9 }')}" >>"$RESULTS"
      echo "path_bench: $sc $tr $bench #$rep FAILED (exit $rc${rc/#124/, timeout})" >&2
    fi
  fi
  kill "$SERVER_PID" 2>/dev/null
  wait "$SERVER_PID" 2>/dev/null
  SERVER_PID=""
}

echo "path_bench: scenarios: $SCENARIOS; $REPEATS repeats; QUIC options: ${QOPTS[*]:-(defaults)}; TCP congestion control: $TCP_CC; results in $RESULTS" >&2
for sc in $SCENARIOS; do
  link=$(shape "$sc") || exit 2
  rtt=$(ping_ms "$link")
  echo "{\"scenario\":\"$sc\",\"ping_ms\":${rtt:-null}}" >>"$RESULTS"
  echo "path_bench: $sc: ping RTT ${rtt:-?} ms" >&2
  for ((rep = 1; rep <= REPEATS; rep++)); do
    for bench in bulk pingpong rtt; do
      run_one "$sc" "$link" quic "$bench" "$rep"
      run_one "$sc" "$link" tcp "$bench" "$rep"
    done
  done
done
grep -h "^delayfw: [a-z]* -> " "/run/pathlab/$PATHLAB_PREFIX/delayfw.log" 2>/dev/null | tail -n 2 >&2 # the last scenario

python3 "$HERE/path_summary.py" "$RESULTS" "${QOPTS[*]:-defaults}; TCP: $TCP_CC"
