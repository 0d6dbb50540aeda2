#!/usr/bin/env bash
# Relay figures for README (issue 10): in one NAT lab (port-restricted x
# full-cone, so a direct path exists), coturn as TURN server in the lab's
# pub namespace; ROUNDS traversals alternate relay "only" on the client
# (QUIC through the client's allocation: one pass through coturn, as
# between two symmetric NATs) and relay "never" (direct), each with
# lab_peer's 1 KiB and 10 MiB echo. Then ROUNDS symmetric x symmetric traversals (relay "auto": the
# relay is the only path). Prints time to connect and the 10 MiB echo time
# (20 MiB moved) of every run, with the datagrams coturn's sockets dropped
# (UdpRcvbufErrors in pub) and the CPU time coturn used, and the medians.
#
#   sudo bench/relay_bench.sh BUILD_DIR [ROUNDS]
#   RELAY_BENCH_TURN_SCHED=default|fifo (default: default): "fifo" runs
#     coturn with SCHED_FIFO priority 10 (chrt -f 10), as on a relay host
#     where it never waits for a CPU; "default" shares the CPUs on equal
#     terms (docs/internals/turn.md, "Running coturn for speed").
# Needs root, ip netns, nft, turnserver and redis-server (exit 77 otherwise).
set -uo pipefail

build=${1:?usage: relay_bench.sh BUILD_DIR [ROUNDS]}
rounds=${2:-5}
here=$(cd "$(dirname "$0")" && pwd)
lab="$here/../tests/lab/natlab.sh"
peer="$build/tests/lab_peer"
export NATLAB_PREFIX=${NATLAB_PREFIX:-qpb$$}
# shellcheck source=../tests/lab/lab_env.sh
. "$here/../tests/lab/lab_env.sh"
lab_skip_unless_ready

STUN=203.0.113.10:3478
REDIS=redis://203.0.113.10:6379/0
TURN_IP=203.0.113.10
TURN_PORT=3490
run_dir=/run/natlab/$NATLAB_PREFIX
turn_pid=""
case ${RELAY_BENCH_TURN_SCHED:-default} in
fifo) turn_sched=(chrt -f 10) ;;
default) turn_sched=() ;;
*) echo "RELAY_BENCH_TURN_SCHED must be fifo or default"; exit 2 ;;
esac

stop_turn() { [ -n "$turn_pid" ] && kill "$turn_pid" 2>/dev/null && wait "$turn_pid" 2>/dev/null; turn_pid=""; }
cleanup() { stop_turn; bash "$lab" down >/dev/null 2>&1; }
trap cleanup EXIT

lab_up() {
  local i
  stop_turn
  bash "$lab" down >/dev/null 2>&1
  bash "$lab" up "$@" >/dev/null && bash "$lab" stun-up >/dev/null &&
    bash "$lab" redis-up >/dev/null || return 1
  setsid ip netns exec "$NATLAB_PREFIX-pub" "${turn_sched[@]}" turnserver -n --lt-cred-mech --user U:P \
    --realm R --listening-ip $TURN_IP --listening-port $TURN_PORT --relay-ip $TURN_IP \
    --min-port 40000 --max-port 49999 --no-tls --no-dtls --no-cli --no-tcp-relay \
    --simple-log --log-file "$run_dir/turn.log" --no-stdout-log </dev/null >/dev/null 2>&1 &
  turn_pid=$!
  for ((i = 0; i < 50; i++)); do
    ip netns exec "$NATLAB_PREFIX-pub" ss -Hlun "src $TURN_IP:$TURN_PORT" | grep -q . && return 0
    sleep 0.1
  done
  return 1
}

# Datagrams dropped at full receive buffers in pub (coturn's sockets).
pub_drops() { ip netns exec "$NATLAB_PREFIX-pub" awk '/^Udp:/ && n++ {print $6}' /proc/net/snmp; }
# coturn's CPU time so far (clock ticks, user + system).
turn_ticks() { awk '{print $14 + $15}' "/proc/$turn_pid/stat"; }

# one SERVER_RELAY CLIENT_RELAY: prints "<connect ms> <10 MiB echo ms> path-kind
# <qp_path_kind> coturn_drops N coturn_cpu_ms N <client's stats>" or "fail".
one() {
  local s="b$RANDOM$RANDOM" out d0 c0
  out=$(mktemp) d0=$(pub_drops) c0=$(turn_ticks)
  QP_LAB_TURN=U:P@$TURN_IP:$TURN_PORT QP_LAB_RELAY=$1 timeout 90 bash "$lab" exec a \
    "$peer" server "$REDIS" "$s" "$STUN" 6000 >/dev/null 2>&1 &
  local spid=$!
  QP_LAB_TURN=U:P@$TURN_IP:$TURN_PORT QP_LAB_RELAY=$2 timeout 90 bash "$lab" exec b \
    "$peer" client "$REDIS" "$s" "$STUN" 6000 >"$out" 2>&1
  wait $spid
  if grep -q "^RESULT ok" "$out"; then
    echo "$(awk '/^RESULT/{print $3}' "$out") $(awk '/^BULK/{print $2}' "$out") path-kind" \
      "$(awk '/^PATH/{print $2}' "$out") coturn_drops $(($(pub_drops) - d0))" \
      "coturn_cpu_ms $((($(turn_ticks) - c0) * 1000 / $(getconf CLK_TCK)))" \
      "$(grep '^STATS' "$out" | cut -d' ' -f2-)"
  else
    echo fail; cat "$out" >&2
  fi
  rm -f "$out"
}

median() { sort -n | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]; else print "-"}'; }

declare -A conn bulk
report() { # LABEL
  printf '%-36s connect median %5s ms   10 MiB echo median %5s ms\n' "$1" \
    "$(tr ' ' '\n' <<<"${conn[$1]}" | grep . | median)" \
    "$(tr ' ' '\n' <<<"${bulk[$1]}" | grep . | median)"
}
record() { # LABEL RESULT
  local r=$2
  echo "$1: $r"
  [ "$r" = fail ] && return
  conn[$1]+=" $(awk '{print $1}' <<<"$r")"
  bulk[$1]+=" $(awk '{print $2}' <<<"$r")"
}

lab_up port-restricted full-cone || { echo "lab could not be built"; exit 1; }
for ((i = 0; i < rounds; i++)); do
  record "direct (relay never)" "$(one never never)"
  record "through coturn (client relay only)" "$(one auto only)"
done
lab_up symmetric symmetric || { echo "lab could not be built"; exit 1; }
for ((i = 0; i < rounds; i++)); do
  record "symmetric x symmetric (relay auto)" "$(one auto auto)"
done
echo
report "direct (relay never)"
report "through coturn (client relay only)"
report "symmetric x symmetric (relay auto)"
med() { tr ' ' '\n' <<<"${bulk[$1]}" | grep . | median; }
d=$(med "direct (relay never)") r=$(med "through coturn (client relay only)")
[ "$d" != - ] && [ "$r" != - ] &&
  echo "bulk through coturn / direct: $(awk -v d="$d" -v r="$r" 'BEGIN {printf "%.0f%%", 100 * d / r}')" \
    "(echo time direct / relayed; coturn scheduling: ${RELAY_BENCH_TURN_SCHED:-default})"
