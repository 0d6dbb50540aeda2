#!/usr/bin/env bash
# bench/run.sh BUILD_DIR: runs every qp-bench benchmark over QUIC and over
# TCP on loopback, repeats each QUIC/TCP pair, and prints a table of medians
# against the project's targets. Called by `make bench`.
#
# Environment (all optional):
#   QP_BENCH_REPEATS        repeats of each QUIC/TCP pair (default 3)
#   QP_BENCH_TOTAL_MB       MiB sent by the throughput benchmark (default 1024)
#   QP_BENCH_PINGPONG_ITERS pingpong rounds (default 50)
#   QP_BENCH_RTT_ITERS      rtt round trips (default 10000)
#   QP_BENCH_IDLE_SECONDS   idle period of the memory benchmark (default 3)
#   QP_BENCH_CLIENT_TIMEOUT seconds one client run may take (default 300)
#   QP_BENCH_OUT            directory for results.jsonl (client and server
#                           JSON lines) and servers.log (all stderr)
#                           (default BUILD_DIR/bench-results)
#   QP_BENCH_STRICT=1       exit 1 when a target is missed, not only when a
#                           benchmark fails to run
#   QP_BENCH_PIN            unset: let the scheduler place the processes;
#                           "split": server on CPU 0, client on CPU 1 (like two
#                           hosts); "same": both on CPU 0. Loopback TCP rtt is
#                           about 3x faster when both ends share a CPU, so an
#                           unpinned TCP column can flip between two values.
#
# Exit status: 0 all benchmarks ran (and, with QP_BENCH_STRICT=1, met their
# targets); 1 a benchmark failed; 2 bad usage.
set -uo pipefail

if [[ $# -ne 1 || $1 == -h || $1 == --help ]]; then
  echo "usage: bench/run.sh BUILD_DIR   (see bench/README.md)" >&2
  exit 2
fi
BUILD=$1
BIN=$BUILD/qp-bench
if [[ ! -x $BIN ]]; then
  echo "run.sh: $BIN not found; build first (make build)" >&2
  exit 2
fi
if ! command -v python3 >/dev/null; then
  echo "run.sh: python3 is needed to pick ports and summarize results" >&2
  exit 2
fi

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }
REPEATS=${QP_BENCH_REPEATS:-3}
TOTAL_MB=${QP_BENCH_TOTAL_MB:-1024}
PP_ITERS=${QP_BENCH_PINGPONG_ITERS:-50}
RTT_ITERS=${QP_BENCH_RTT_ITERS:-10000}
IDLE_SECONDS=${QP_BENCH_IDLE_SECONDS:-3}
CLIENT_TIMEOUT=${QP_BENCH_CLIENT_TIMEOUT:-300}
for v in REPEATS TOTAL_MB PP_ITERS RTT_ITERS IDLE_SECONDS CLIENT_TIMEOUT; do
  if ! is_uint "${!v}" || { [[ $v != IDLE_SECONDS ]] && ((${!v} == 0)); }; then
    echo "run.sh: $v must be a positive integer, got '${!v}'" >&2
    exit 2
  fi
done

PIN=${QP_BENCH_PIN:-}
SERVER_PIN=()
CLIENT_PIN=()
case $PIN in
  "") ;;
  split)
    if (($(nproc) < 2)); then
      echo "run.sh: QP_BENCH_PIN=split needs 2 CPUs, this machine has $(nproc)" >&2
      exit 2
    fi
    SERVER_PIN=(taskset -c 0)
    CLIENT_PIN=(taskset -c 1)
    ;;
  same)
    SERVER_PIN=(taskset -c 0)
    CLIENT_PIN=(taskset -c 0)
    ;;
  *)
    echo "run.sh: QP_BENCH_PIN must be empty, 'split' or 'same', got '$PIN'" >&2
    exit 2
    ;;
esac

OUT=${QP_BENCH_OUT:-$BUILD/bench-results}
mkdir -p "$OUT" || exit 2
RESULTS=$OUT/results.jsonl
LOG=$OUT/servers.log
: >"$RESULTS"
: >"$LOG"

# The one server running now ("" when none): cleared once reaped, so the
# trap never signals a reused pid.
SERVER_PID=""
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
  if [[ -n $SERVER_PID ]]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
  fi
}
trap cleanup EXIT
trap 'echo "run.sh: interrupted" >&2; exit 130' INT TERM

# A loopback port free for both UDP and TCP right now.
free_port() {
  python3 - <<'EOF'
import socket
for _ in range(100):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.1", 0))
    port = u.getsockname()[1]
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        t.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        t.close()
        u.close()
    print(port)
    break
else:
    raise SystemExit("no free port")
EOF
}

# Wait (at most 5 s) until pid has bound the UDP port, or listens on the TCP
# port; fail early if pid exits.
wait_bound() {
  local proto=$1 port=$2 pid=$3 hex files i
  hex=$(printf ':%04X' "$port")
  if [[ $proto == tcp ]]; then files="/proc/net/tcp /proc/net/tcp6"; else files="/proc/net/udp /proc/net/udp6"; fi
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || return 1
    # shellcheck disable=SC2086
    if awk -v p="$hex" -v tcp="$([[ $proto == tcp ]] && echo 1)" \
      'FNR > 1 && substr($2, length($2) - 4) == p && (tcp == "" || $4 == "0A") { found = 1 }
       END { exit !found }' $files 2>/dev/null; then
      return 0
    fi
    sleep 0.05
  done
  return 1
}

# Wait at most 10 s for a server to exit after its client closed, then kill it.
reap_server() {
  local pid=$1 i rc
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "run.sh: server $pid still running 10 s after its client closed; killing it" >>"$LOG"
    kill "$pid" 2>/dev/null
  fi
  wait "$pid" 2>/dev/null
  rc=$?
  SERVER_PID=""
  if ((rc != 0)); then
    echo "run.sh: server $pid exited with status $rc" >>"$LOG"
  fi
}

FAILURES=0
# run_one TRANSPORT BENCH REPEAT: one server and one client; appends the
# client's JSON (plus "repeat") to results.jsonl.
run_one() {
  local transport=$1 bench=$2 rep=$3 mode port spid out rc
  local tflag=() cargs=()
  [[ $transport == tcp ]] && tflag=(--tcp)
  case $bench in
    pingpong) mode=pingpong; cargs=(client --bench pingpong --iters "$PP_ITERS" --ping-size 614400 --pong-size 5120) ;;
    throughput) mode=sink; cargs=(client --bench throughput --total-mb "$TOTAL_MB" --msg-size 1048576) ;;
    rtt) mode="echo"; cargs=(client --bench rtt --iters "$RTT_ITERS") ;;
    idle) mode="echo"; cargs=(idle --seconds "$IDLE_SECONDS") ;;
  esac
  port=$(free_port) || { echo "run.sh: no free port" >&2; exit 1; }
  echo "--- $transport $bench repeat $rep port $port" >>"$LOG"
  : >"$OUT/server.json"
  timeout $((CLIENT_TIMEOUT + 60)) "${SERVER_PIN[@]}" "$BIN" server --bind 127.0.0.1 --port "$port" \
    --mode "$mode" --timeout 30 "${tflag[@]}" >"$OUT/server.json" 2>>"$LOG" &
  spid=$!
  SERVER_PID=$spid
  if ! wait_bound "$transport" "$port" "$spid"; then
    echo "run.sh: $transport $mode server did not start on port $port; see $LOG" >&2
    FAILURES=$((FAILURES + 1))
    reap_server "$spid"
    return
  fi
  out=$(timeout "$CLIENT_TIMEOUT" "${CLIENT_PIN[@]}" "$BIN" "${cargs[@]}" --host 127.0.0.1 --port "$port" \
    "${tflag[@]}" 2>>"$LOG")
  rc=$?
  if ((rc == 0)) && [[ $out == "{"*"}" ]]; then
    echo "${out%\}},\"repeat\":$rep}" >>"$RESULTS"
    printf 'run.sh: %-4s %-10s #%d %s\n' "$transport" "$bench" "$rep" "$out" >&2
  else
    ((rc == 124)) && echo "run.sh: client timed out after $CLIENT_TIMEOUT s" >>"$LOG"
    echo "run.sh: $transport $bench repeat $rep FAILED (exit $rc); see $LOG" >&2
    FAILURES=$((FAILURES + 1))
  fi
  reap_server "$spid"
  # The server's own statistics (it is the receiver in throughput).
  out=$(cat "$OUT/server.json")
  if [[ $out == "{"*"}" ]]; then
    echo "${out%\}},\"server_of\":\"$bench\",\"repeat\":$rep}" >>"$RESULTS"
  fi
}

echo "run.sh: $REPEATS repeats; throughput $TOTAL_MB MiB, pingpong $PP_ITERS x 614400/5120," \
  "rtt $RTT_ITERS, idle $IDLE_SECONDS s, CPU pinning: ${PIN:-none}; results in $RESULTS" >&2
for ((rep = 1; rep <= REPEATS; rep++)); do
  for bench in pingpong throughput rtt idle; do
    run_one quic "$bench" "$rep"
    run_one tcp "$bench" "$rep"
  done
done

python3 - "$RESULTS" "$REPEATS" "$TOTAL_MB" "${PIN:-none}" <<'EOF'
import json, statistics, sys

path, repeats, total_mb, pin = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
runs = [json.loads(line) for line in open(path) if line.strip()]

def values(transport, bench, key):
    return [r[key] for r in runs
            if r.get("transport") == transport and r.get("bench") == bench and key in r]

def med(transport, bench, key):
    v = values(transport, bench, key)
    return statistics.median(v) if v else None

def fmt(x, digits):
    return "n/a" if x is None else f"{x:.{digits}f}"

rows = []  # metric, quic, tcp, digits, target text, check(quic, tcp) -> bool or None
def row(metric, bench, key, digits, target="-", check=None, scale=1.0):
    q, t = med("quic", bench, key), med("tcp", bench, key)
    q = None if q is None else q * scale
    t = None if t is None else t * scale
    rows.append((metric, q, t, digits, target, check))

row("throughput Gbit/s", "throughput", "gbit_per_s", 3, ">= 2 Gbit/s", lambda q, t: q >= 2.0)
row("pingpong p50 ms", "pingpong", "p50_ms", 3, "<= 6x TCP", lambda q, t: q <= 6 * t)
row("pingpong avg ms", "pingpong", "avg_ms", 3)
row("pingpong p90 ms", "pingpong", "p90_ms", 3)
row("pingpong max ms", "pingpong", "max_ms", 3)
row("rtt p50 us", "rtt", "p50_us", 1, "<= 2.5x TCP", lambda q, t: q <= 2.5 * t)
row("rtt p90 us", "rtt", "p90_us", 1)
row("rtt p99 us", "rtt", "p99_us", 1)
row("idle RSS delta KiB", "idle", "rss_delta_kb", 0, "< 8 MiB", lambda q, t: q < 8192)
row("connect ms", "rtt", "connect_ms", 3)

# Lost packets: the worst side of any QUIC run, client or server
# (packets_lost of qp_portal_get_stats); TCP: retransmitted segments, shown
# for reference.
def worst(transport):
    v = [r["lost_packets"] for r in runs
         if r.get("transport") == transport and "lost_packets" in r]
    return max(v) if v else None
rows.append(("lost packets (max of runs)", worst("quic"), worst("tcp"), 0, "0 (QUIC)",
             lambda q, t: q == 0))

misses = 0
print()
print(f"qp-bench on loopback: medians of {repeats} runs; throughput {total_mb} MiB; "
      f"pingpong 614400/5120 B; CPU pinning: {pin}")
hdr = f"{'metric':<28}{'QUIC':>12}{'TCP':>12}{'QUIC/TCP':>10}  {'target':<14}result"
print(hdr)
print("-" * len(hdr))
for metric, q, t, digits, target, check in rows:
    comparable = not metric.startswith("lost")  # TCP retransmits differ
    ratio = f"{q / t:.2f}x" if comparable and q is not None and t not in (None, 0) else "-"
    if check is None:
        result = ""
    elif q is None or (t is None and "TCP" in target):
        result, misses = "MISS (no data)", misses + 1
    elif check(q, t):
        result = "PASS"
    else:
        result, misses = "MISS", misses + 1
    line = f"{metric:<28}{fmt(q, digits):>12}{fmt(t, digits):>12}{ratio:>10}  {target:<14}{result}"
    print(line.rstrip())
print()
print(f"{misses} target(s) missed" if misses else "all targets met")
sys.exit(3 if misses else 0)
EOF
summary_rc=$?
if ((summary_rc != 0 && summary_rc != 3)); then
  echo "run.sh: could not summarize $RESULTS" >&2
  exit 1
fi
if ((FAILURES > 0)); then
  echo "run.sh: $FAILURES benchmark run(s) failed; see $LOG" >&2
  exit 1
fi
if [[ ${QP_BENCH_STRICT:-0} == 1 ]] && ((summary_rc == 3)); then
  exit 1
fi
exit 0
