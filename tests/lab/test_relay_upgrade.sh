#!/usr/bin/env bash
# Relay first, direct when possible (issue 10, docs/internals/turn.md "Relay
# then direct"), in the NAT lab. Two port-restricted cone sites, between
# which a direct path exists, but an nftables rule on site A's NAT router
# drops all UDP between the two sites' public addresses (the TURN server in
# pub stays reachable). lab_peer (server in A, client in B, coturn as TURN
# server for both) connects: through the relay (qp_portal_path says
# relayed). A stream of numbered 8 KiB messages starts (one every 10 ms,
# each echoed; both sides check numbers and bytes), and:
#   1. the rule is lifted mid-transfer: both sides must end on a direct path
#      (PATHCHANGE to a direct kind, PATHEND direct), every message
#      delivered once, in order, byte for byte, both ways;
#   2. the rule is lifted and the TURN server killed at the same moment: the
#      portal stays up and ends direct, the stream intact;
#   3. control: the rule stays: the stream completes and the path is still
#      relayed at the end (no direct path was invented);
#   4. as 1, but only the client has a TURN server: the client's own
#      allocation carries to the server's address, the very address the
#      direct pair validates (the relay stops carrying, QUIC migrates to the
#      same address, the server follows the new source), where in 1 the
#      server's allocation carried and the client moved to a new address.
# Prints each side's final path; a direct one says how long after the
# portal was made it left the relay (the rule goes about 2.1 s after it).
#
#   test_relay_upgrade.sh LAB_PEER_BINARY
# Exit: 0 all as expected, 1 a mismatch, 77 skipped (needs root + netns).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
peer=${1:?usage: test_relay_upgrade.sh LAB_PEER_BINARY}
lab="$here/natlab.sh"
export NATLAB_PREFIX=${NATLAB_PREFIX:-qpg$$}

# shellcheck source=lab_env.sh
. "$here/lab_env.sh"
lab_skip_unless_ready

TURN_PORT=3490
TURN=U:P@$LAB_TURN_IP:$TURN_PORT
# 1000 messages of 8 KiB, one every 10 ms: about 8 MiB over 10+ s, long
# enough to lift the rule mid-transfer with room for the move.
STREAM=1000:8192:10
STREAM_BYTES=$((1000 * 8192))
B_PUBLIC=198.51.100.2
# Time on the relay before the rule goes (the stream runs meanwhile).
RELAY_SECS=2
failures=0
results=()
turn_pid=""

stop_turn() {
  [ -n "$turn_pid" ] && { kill "$turn_pid" 2>/dev/null; wait "$turn_pid" 2>/dev/null; }
  turn_pid=""
}
cleanup() { stop_turn; bash "$lab" down >/dev/null 2>&1; }
trap cleanup EXIT

start_turn() {
  local rc
  lab_start_turn $TURN_PORT --lt-cred-mech --user U:P; rc=$?
  turn_pid=$LAB_TURN_PID
  return $rc
}

lab_up() {
  stop_turn
  bash "$lab" down >/dev/null 2>&1
  bash "$lab" up port-restricted port-restricted >/dev/null &&
    bash "$lab" stun-up >/dev/null && bash "$lab" redis-up >/dev/null && start_turn
}

# The direct path between the sites: dropped on site A's NAT router (both
# directions; the forward hook sees B's public address on either side).
block() {
  ip netns exec "$NATLAB_PREFIX-ra" nft -f - <<EOF
table inet qpg_block {
  chain forward {
    type filter hook forward priority filter - 10; policy accept;
    ip saddr $B_PUBLIC meta l4proto udp drop
    ip daddr $B_PUBLIC meta l4proto udp drop
  }
}
EOF
}
unblock() { ip netns exec "$NATLAB_PREFIX-ra" nft delete table inet qpg_block 2>/dev/null; }

out_s="" out_c=""
field() { grep "^$1 " "$2" | head -1; }

# wait_for PATTERN FILE SECONDS: bounded wait for a line in a peer's output.
wait_for() {
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    grep -q "$1" "$2" && return 0
    sleep 0.1
  done
  return 1
}

# run ACTION [SERVER_TURN]: connect through the relay with the direct path blocked, start
# the stream, then ACTION (lift, lift+kill or keep) once both stream.
# SERVER_TURN (default $TURN) is the server's TURN server ("" for none).
run() {
  local action=$1 server_turn=${2-$TURN} session="s$RANDOM$RANDOM" spid cpid
  out_s=$(mktemp) out_c=$(mktemp)
  block || return 1
  env QUIC_PORTAL_LOG=info QP_LAB_TURN=$server_turn QP_LAB_STREAM=$STREAM timeout 120 bash "$lab" exec a \
    "$peer" server "$LAB_REDIS" "$session" "$LAB_STUN" 6000 >"$out_s" 2>&1 &
  spid=$!
  env QUIC_PORTAL_LOG=info QP_LAB_TURN=$TURN QP_LAB_STREAM=$STREAM timeout 120 bash "$lab" exec b \
    "$peer" client "$LAB_REDIS" "$session" "$LAB_STUN" 6000 >"$out_c" 2>&1 &
  cpid=$!
  if wait_for '^STREAMING' "$out_c" 30 && wait_for '^STREAMING' "$out_s" 5; then
    sleep $RELAY_SECS # deliberately: the stream runs on the relay meanwhile
    case $action in
      lift) unblock ;;
      lift-kill) unblock; stop_turn ;;
      keep) ;;
    esac
  fi
  wait $cpid; echo "EXIT $?" >>"$out_c"
  wait $spid; echo "EXIT $?" >>"$out_s"
  unblock
}

relayed_first() { field PATH "$1" | grep -q "^PATH 6 relayed"; }
direct_end() { field PATHEND "$1" | grep -q "^PATHEND [1-5] direct"; }
relayed_end() { field PATHEND "$1" | grep -q "^PATHEND 6 relayed"; }
changed_direct() { grep -q "^PATHCHANGE [1-5] direct" "$1"; }
stream_ok() { field STREAM "$1" | grep -q "^STREAM ok 1000 $STREAM_BYTES$"; }
both() { "$1" "$out_s" && "$1" "$out_c"; }

verdict() {
  local label=$1 ok=$2
  results+=("$(printf '%-34s %-4s server: %s | client: %s' "$label" \
    "$([ "$ok" = 1 ] && echo ok || echo FAIL)" \
    "$(field PATHEND "$out_s" | cut -c1-90)" "$(field PATHEND "$out_c" | cut -c1-90)")")
  if [ "$ok" != 1 ]; then
    failures=$((failures + 1))
    echo "--- $label server:"; cat "$out_s"; echo "--- $label client:"; cat "$out_c"
  fi
  rm -f "$out_s" "$out_c"
}

# Exit 0 too: a sanitizer's report after the RESULT line makes it nonzero.
exit_ok() { field EXIT "$1" | grep -q "^EXIT 0$"; }
results_ok() { both stream_ok && both exit_ok && field RESULT "$out_s" | grep -q "^RESULT ok" &&
  field RESULT "$out_c" | grep -q "^RESULT ok"; }

# 1. The rule goes mid-transfer: relayed, then direct, nothing lost.
if lab_up; then
  run lift
  # ... and the allocation released (Deallocate) UPGRADE_RELEASE_MS after
  # the move, while the stream still runs: the side that owned it says so.
  ok=0; results_ok && both relayed_first && both changed_direct && both direct_end &&
    grep -q "TURN allocation on $LAB_TURN_IP:$TURN_PORT released" "$out_s" "$out_c" && ok=1
  verdict "blocked, lifted mid-transfer" $ok

  # 2. The rule goes and the relay dies with it: stays up, ends direct.
  run lift-kill
  ok=0; results_ok && both relayed_first && both direct_end && ok=1
  verdict "blocked, lifted, TURN killed" $ok
  start_turn || failures=$((failures + 1))

  # 3. Control: the rule stays: still relayed at the end, stream intact.
  run keep
  ok=0; results_ok && both relayed_first && both relayed_end && ok=1
  verdict "blocked throughout (control)" $ok

  # 4. Only the client's allocation: it carried to the validated address.
  run lift ""
  ok=0; results_ok && both relayed_first && both changed_direct && both direct_end &&
    grep -q "TURN allocation on $LAB_TURN_IP:$TURN_PORT released" "$out_c" && ok=1
  verdict "client's relay only, lifted" $ok
else
  results+=("lab port-restricted x port-restricted could not be built")
  failures=$((failures + 1))
fi

echo
echo "Relay then direct in the NAT lab (server in A, client in B; stream $STREAM)"
printf '%s\n' "${results[@]}"
echo "$failures unexpected outcome(s)"
[ "$failures" -eq 0 ]
