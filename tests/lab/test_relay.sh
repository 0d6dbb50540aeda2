#!/usr/bin/env bash
# TURN relay fallback in the NAT lab (issue 10, docs/internals/turn.md).
# coturn runs as a TURN server in the lab's pub namespace next to the STUN
# one (203.0.113.10:3490, long-term credentials U:P realm R; and on :3492
# with a REST shared secret), and lab_peer runs a server in site A and a
# client in site B through the public API:
#   - symmetric x symmetric and sequential x random both ways (no direct
#     path: they fail with "relay needed" without TURN) connect through the
#     relay, say so in qp_portal_path, and echo 1 KiB and 10 MiB byte for
#     byte; symmetric x symmetric also with 3% loss and with a REST secret;
#   - an easy pair (port-restricted x full-cone) given the TURN server still
#     connects directly, and the path says so; with relay "only" it goes
#     through the relay;
#   - a wrong password fails with a message naming 401 and the server.
# Prints connect and 10 MiB echo times (README's relay figures).
#
#   test_relay.sh LAB_PEER_BINARY
# Exit: 0 all as expected, 1 a mismatch, 77 skipped (needs root + netns).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
peer=${1:?usage: test_relay.sh LAB_PEER_BINARY}
lab="$here/natlab.sh"
export NATLAB_PREFIX=${NATLAB_PREFIX:-qpr$$}

# shellcheck source=lab_env.sh
. "$here/lab_env.sh"
lab_skip_unless_ready

PUNCH_MS=${QP_RELAY_PUNCH_MS:-6000}
STUN=203.0.113.10:3478
REDIS=redis://203.0.113.10:6379/0
TURN_IP=203.0.113.10
TURN_PORT=3490        # long-term credentials
TURN_SECRET_PORT=3492 # REST shared secret
TURN=U:P@$TURN_IP:$TURN_PORT
SECRET=lab-rest-secret
failures=0
results=()
turn_pids=()

stop_turn() {
  local p
  for p in "${turn_pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  turn_pids=()
}
cleanup() { stop_turn; bash "$lab" down >/dev/null 2>&1; }
trap cleanup EXIT

# start_turn PORT ARGS...: a coturn TURN server in pub (lab_env.sh).
start_turn() {
  local rc
  lab_start_turn "$@"; rc=$?
  turn_pids+=("$LAB_TURN_PID")
  return $rc
}

lab_up() {
  stop_turn
  bash "$lab" down >/dev/null 2>&1
  bash "$lab" up "$@" >/dev/null || return 1
  bash "$lab" stun-up >/dev/null && bash "$lab" redis-up >/dev/null &&
    start_turn $TURN_PORT --lt-cred-mech --user U:P &&
    start_turn $TURN_SECRET_PORT --use-auth-secret --static-auth-secret "$SECRET"
}

out_s="" out_c=""
# run_pair ENV...: one traversal (server in A, client in B) with ENV set.
run_pair() {
  local session="s$RANDOM$RANDOM"
  out_s=$(mktemp) out_c=$(mktemp)
  env "$@" timeout 90 bash "$lab" exec a "$peer" server "$REDIS" "$session" "$STUN" "$PUNCH_MS" >"$out_s" 2>&1 &
  local spid=$!
  env "$@" timeout 90 bash "$lab" exec b "$peer" client "$REDIS" "$session" "$STUN" "$PUNCH_MS" >"$out_c" 2>&1
  wait $spid
}

field() { grep "^$1" "$2" | head -1; }

# verdict LABEL OK(0/1) -- record and show the logs on a mismatch.
verdict() {
  local label=$1 ok=$2 rc bulk path
  rc=$(field RESULT "$out_c") bulk=$(field BULK "$out_c") path=$(field PATH "$out_c")
  results+=("$(printf '%-44s %-4s connect %5s ms  10 MiB echo %5s ms  %s' "$label" \
    "$([ "$ok" = 1 ] && echo ok || echo FAIL)" "$(awk '{print $3}' <<<"$rc")" \
    "$(awk '{print $2}' <<<"$bulk")" "${path#PATH }")")
  if [ "$ok" != 1 ]; then
    failures=$((failures + 1))
    echo "--- $label server:"; cat "$out_s"; echo "--- $label client:"; cat "$out_c"
  fi
  rm -f "$out_s" "$out_c"
}

both_ok() { field RESULT "$out_s" | grep -q "^RESULT ok" && field RESULT "$out_c" | grep -q "^RESULT ok"; }
relayed() { field PATH "$1" | grep -q "^PATH 6 relayed via"; }
direct() { field PATH "$1" | grep -q "^PATH [1-5] direct"; }

# 1. symmetric x symmetric: only a relay joins them.
if lab_up symmetric symmetric; then
  run_pair QP_LAB_TURN=$TURN
  ok=0; both_ok && relayed "$out_s" && relayed "$out_c" && ok=1
  verdict "symmetric x symmetric, TURN" $ok

  run_pair QP_LAB_TURN_SECRET=$SECRET@$TURN_IP:$TURN_SECRET_PORT
  ok=0; both_ok && relayed "$out_s" && relayed "$out_c" && ok=1
  verdict "symmetric x symmetric, TURN REST secret" $ok

  # A wrong password: the error names the 401 and the server.
  run_pair QP_LAB_TURN=U:wrong@$TURN_IP:$TURN_PORT
  ok=0
  for f in "$out_s" "$out_c"; do
    field RESULT "$f" | grep -q "^RESULT fail .*401.*$TURN_IP:$TURN_PORT\|^RESULT fail .*$TURN_IP:$TURN_PORT.*401" || ok=2
  done
  [ $ok = 0 ] && ok=1 || ok=0
  verdict "symmetric x symmetric, wrong TURN password" $ok
  # relay "only" with a wrong password: QP_ERR_RELAY at once, naming both.
  run_pair QP_LAB_TURN=U:wrong@$TURN_IP:$TURN_PORT QP_LAB_RELAY=only
  ok=0
  field RESULT "$out_c" | grep -q "^RESULT fail .*QP_ERR_RELAY.*$TURN_IP:$TURN_PORT answered 401" && ok=1
  verdict "relay only, wrong TURN password" $ok
else
  results+=("lab symmetric x symmetric could not be built"); failures=$((failures + 1))
fi

# 1b. sequential x random, both ways: no direct path either.
for pair in "symmetric-seq symmetric" "symmetric symmetric-seq"; do
  # shellcheck disable=SC2086
  if lab_up $pair; then
    run_pair QP_LAB_TURN=$TURN
    ok=0; both_ok && relayed "$out_s" && relayed "$out_c" && ok=1
    verdict "${pair/ / x }, TURN" $ok
  else
    results+=("lab $pair could not be built"); failures=$((failures + 1))
  fi
done

# 2. symmetric x symmetric with 3% loss on the internet router.
if lab_up symmetric symmetric --loss 3; then
  run_pair QP_LAB_TURN=$TURN
  ok=0; both_ok && relayed "$out_c" && ok=1
  verdict "symmetric x symmetric, TURN, 3% loss" $ok
else
  results+=("lab symmetric x symmetric 3% loss could not be built"); failures=$((failures + 1))
fi

# 3. An easy pair stays direct when given a TURN server; "only" relays it.
if lab_up port-restricted full-cone; then
  run_pair QP_LAB_TURN=$TURN
  ok=0; both_ok && direct "$out_s" && direct "$out_c" && ok=1
  verdict "port-restricted x full-cone, TURN given" $ok
  run_pair QP_LAB_TURN=$TURN QP_LAB_RELAY=never
  ok=0; both_ok && direct "$out_c" && ok=1
  verdict "port-restricted x full-cone, relay never" $ok
  run_pair QP_LAB_TURN=$TURN QP_LAB_RELAY=only
  ok=0; both_ok && relayed "$out_s" && relayed "$out_c" && ok=1
  verdict "port-restricted x full-cone, relay only" $ok
else
  results+=("lab port-restricted x full-cone could not be built"); failures=$((failures + 1))
fi

echo
echo "TURN relay in the NAT lab (server in A, client in B; times from the client)"
printf '%s\n' "${results[@]}"
echo "$failures unexpected outcome(s)"
[ "$failures" -eq 0 ]
