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
#   - a wrong password fails with a message naming 401 and the server;
#   - late: a TURN server that answers slowly (slow_turn.py) allocates after
#     gathering; the relayed candidate is published late and the client
#     (no TURN of its own) connects through it;
#   - killed: coturn killed (SIGKILL) during a 64 MiB stream between two
#     symmetric NATs: both sides end within 15 s (recovery budget 8 s) with
#     QP_ERR_PUNCH saying "path lost (relayed via ... TURN server ...)", and
#     every message received was whole and correct;
#   - dead: a TURN server that does not answer: QP_ERR_PUNCH naming it (and
#     QP_ERR_RELAY at the end of gathering with relay "only").
# Prints connect and 10 MiB echo times (README's relay figures).
#
#   test_relay.sh LAB_PEER_BINARY
#   QP_RELAY_CASES="late ..." test_relay.sh ...   only these cases (basic seq
#                                                 loss easy late killed dead)
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
run_dir=/run/natlab/$NATLAB_PREFIX

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

# start_slow_turn PORT TURN_PORT DELAY_MS: slow_turn.py in pub on PORT in
# front of the coturn on TURN_PORT, waited for (at most 5 s).
start_slow_turn() {
  local i log=$run_dir/slow_turn$1.log
  setsid ip netns exec "$NATLAB_PREFIX-pub" python3 "$here/slow_turn.py" \
    "$TURN_IP:$1" "$TURN_IP:$2" "$3" </dev/null >/dev/null 2>"$log" &
  turn_pids+=($!)
  for ((i = 0; i < 50; i++)); do
    grep -q "slow_turn: ready" "$log" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "slow_turn.py did not start:"; cat "$log"
  return 1
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
run_pair() { run_split "$*" "$*"; }

# run_split "SERVER_ENV" "CLIENT_ENV": like run_pair, each side with its own
# environment (space-separated NAME=VALUE words).
run_split() {
  local session="s$RANDOM$RANDOM"
  out_s=$(mktemp) out_c=$(mktemp)
  # shellcheck disable=SC2086
  env $1 timeout 90 bash "$lab" exec a "$peer" server "$REDIS" "$session" "$STUN" "$PUNCH_MS" >"$out_s" 2>&1 &
  local spid=$!
  # shellcheck disable=SC2086
  env $2 timeout 90 bash "$lab" exec b "$peer" client "$REDIS" "$session" "$STUN" "$PUNCH_MS" >"$out_c" 2>&1
  wait $spid
}

# wanted CASE: run it unless QP_RELAY_CASES (space-separated names) leaves it out.
wanted() { [ -z "${QP_RELAY_CASES:-}" ] || [[ " $QP_RELAY_CASES " == *" $1 "* ]]; }

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
if ! wanted basic; then :
elif lab_up symmetric symmetric; then
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
  wanted seq || continue
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
if ! wanted loss; then :
elif lab_up symmetric symmetric --loss 3; then
  run_pair QP_LAB_TURN=$TURN
  ok=0; both_ok && relayed "$out_c" && ok=1
  verdict "symmetric x symmetric, TURN, 3% loss" $ok
else
  results+=("lab symmetric x symmetric 3% loss could not be built"); failures=$((failures + 1))
fi

# 3. An easy pair stays direct when given a TURN server; "only" relays it.
if ! wanted easy; then :
elif lab_up port-restricted full-cone; then
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

# 4. A TURN server that answers slowly (slow_turn.py holds its STUN answers
# SLOW_TURN_MS; the relayed traffic passes at once): the server's Allocate (two round
# trips) completes after gathering, when its record is already published. The
# client has no TURN server, and between two symmetric NATs only the server's
# relayed candidate joins them: the client must learn it from the record the
# server publishes again (late allocations, docs/internals/turn.md).
SLOW_TURN_PORT=3494
SLOW_TURN_MS=400
if ! wanted late; then :
elif lab_up symmetric symmetric && start_slow_turn $SLOW_TURN_PORT $TURN_PORT $SLOW_TURN_MS; then
  run_split "QP_LAB_TURN=U:P@$TURN_IP:$SLOW_TURN_PORT QUIC_PORTAL_LOG=info" "QP_LAB_RELAY=auto"
  ok=0
  grep -q "allocated after gathering: relayed candidate $TURN_IP:[0-9]* published late" "$out_s" &&
    both_ok && field PATH "$out_s" | grep -q "^PATH 6 relayed via our TURN server $TURN_IP:$SLOW_TURN_PORT" &&
    field PATH "$out_c" | grep -q "^PATH 6 relayed via the peer's TURN allocation $TURN_IP:" && ok=1
  verdict "symmetric x symmetric, late allocation" $ok
else
  results+=("lab symmetric x symmetric (slow TURN) could not be built"); failures=$((failures + 1))
fi

# 5. The relay killed mid-transfer, no direct path (symmetric x symmetric):
# a stream of KILL_STREAM messages (lab_peer QP_LAB_STREAM: numbered, each
# checked byte for byte by the server and again in its echo by the client)
# runs through coturn, which is killed (SIGKILL) once echoes flow. Both sides
# must end within KILL_BOUND_S with a failure that names the lost relayed
# path (the TURN server's address), and every message either side received
# was whole and correct (no "message N: ..." mismatch, no QP_ERR_PROTOCOL).
KILL_STREAM=1000:65536:2 # 64 MiB in 64 KiB messages, at most 16 outstanding
KILL_RECONNECT_MS=8000   # recovery's budget (reconnect_timeout_ms; default 30 s)
KILL_BOUND_S=15          # dead path noticed (2-3 s), recovery's budget, slack
if ! wanted killed; then :
elif lab_up symmetric symmetric; then
  session="k$RANDOM$RANDOM" out_s=$(mktemp) out_c=$(mktemp)
  QP_LAB_TURN=$TURN QP_LAB_STREAM=$KILL_STREAM QP_LAB_RECONNECT_MS=$KILL_RECONNECT_MS \
    timeout 90 bash "$lab" exec a "$peer" server \
    "$REDIS" "$session" "$STUN" "$PUNCH_MS" >"$out_s" 2>&1 &
  spid=$!
  QP_LAB_TURN=$TURN QP_LAB_STREAM=$KILL_STREAM QP_LAB_RECONNECT_MS=$KILL_RECONNECT_MS \
    timeout 90 bash "$lab" exec b "$peer" client \
    "$REDIS" "$session" "$STUN" "$PUNCH_MS" >"$out_c" 2>&1 &
  cpid=$!
  for ((i = 0; i < 300; i++)); do
    grep -q "^STREAMING" "$out_c" && break
    kill -0 $cpid 2>/dev/null || break
    sleep 0.05
  done
  kill -KILL "${turn_pids[0]}"; t_kill=$(date +%s%N)
  wait $cpid; wait $spid; t_end=$(date +%s%N)
  took=$(( (t_end - t_kill) / 1000000 ))
  ok=1
  for f in "$out_s" "$out_c"; do
    field RESULT "$f" | grep -q "^RESULT fail .*after connecting, QP_ERR_[A-Z_]*: path lost (relayed via [^)]*$TURN_IP:" || ok=0
    field RESULT "$f" | grep -q QP_ERR_PROTOCOL && ok=0
    grep -q "^message [0-9]*: " "$f" && ok=0
    field "STREAM " "$f" | grep -q "^STREAM fail [1-9][0-9]* " || ok=0
  done
  cat "$out_s" "$out_c" | grep "^RESULT" | grep -q "$TURN_IP:$TURN_PORT" || ok=0
  [ "$took" -le $((KILL_BOUND_S * 1000)) ] || ok=0
  echo "relay killed: both ended $took ms after the kill; client: $(field "STREAM " "$out_c"); $(field RESULT "$out_c" | cut -c1-160)"
  verdict "symmetric x symmetric, relay killed mid-transfer" $ok
else
  results+=("lab symmetric x symmetric (relay killed) could not be built"); failures=$((failures + 1))
fi

# 6. A dead TURN server (nothing listens on DEAD_TURN_PORT) where only a
# relay joins the pair: both sides fail within the punch timeout and
# gathering, saying the TURN server did not answer; with relay "only" the
# client fails at the end of gathering with QP_ERR_RELAY naming it.
DEAD_TURN_PORT=3499
DEAD_BOUND_MS=$((PUNCH_MS + 3000)) # the punch timeout, gathering (2 s) and slack
if ! wanted dead; then :
elif lab_up symmetric symmetric; then
  run_pair QP_LAB_TURN=U:P@$TURN_IP:$DEAD_TURN_PORT
  ok=1
  for f in "$out_s" "$out_c"; do
    field RESULT "$f" | grep -q "^RESULT fail [0-9]* QP_ERR_PUNCH: .*TURN server $TURN_IP:$DEAD_TURN_PORT did not answer" || ok=0
    [ "$(field RESULT "$f" | awk '{print $3}')" -le $DEAD_BOUND_MS ] 2>/dev/null || ok=0
  done
  verdict "symmetric x symmetric, dead TURN server" $ok
  run_pair QP_LAB_TURN=U:P@$TURN_IP:$DEAD_TURN_PORT QP_LAB_RELAY=only
  ok=0
  field RESULT "$out_c" | grep -q "^RESULT fail [0-9]* QP_ERR_RELAY: .*TURN server $TURN_IP:$DEAD_TURN_PORT had not answered" &&
    [ "$(field RESULT "$out_c" | awk '{print $3}')" -le 3000 ] && ok=1
  verdict "relay only, dead TURN server" $ok
else
  results+=("lab symmetric x symmetric (dead TURN) could not be built"); failures=$((failures + 1))
fi

echo
echo "TURN relay in the NAT lab (server in A, client in B; times from the client)"
printf '%s\n' "${results[@]}"
echo "$failures unexpected outcome(s)"
[ "$failures" -eq 0 ]
