#!/usr/bin/env bash
# The traversal matrix: for every pair of NAT kinds, build the lab, start a
# server peer in site A and a client peer in site B (qp_create_server /
# qp_create_client through Redis in the lab's "internet", coturn as STUN),
# and check the outcome: a connected, pinned portal that echoes 1 KiB and
# 10 MiB intact, or, for the pairs no hole punching can traverse (both NATs
# map per destination and at least one at random), a QP_ERR_PUNCH within
# the punch timeout that says a relay is needed. Symmetric against
# port-restricted goes through the birthday technique, symmetric-seq
# through port prediction (docs/internals/hard-nat.md). Prints a matrix of
# outcome and time to connect.
#
#   test_traversal_matrix.sh LAB_PEER_BINARY
# Exit: 0 all as expected, 1 a mismatch, 77 skipped (needs root + netns).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
peer=${1:?usage: test_traversal_matrix.sh LAB_PEER_BINARY}
lab="$here/natlab.sh"
export NATLAB_PREFIX=${NATLAB_PREFIX:-qpm$$}

# shellcheck source=lab_env.sh
. "$here/lab_env.sh"
lab_skip_unless_ready

KINDS=(none full-cone restricted-cone port-restricted symmetric symmetric-seq)
PUNCH_MS=${QP_MATRIX_PUNCH_MS:-6000}
STUN=203.0.113.10:3478
REDIS=redis://203.0.113.10:6379/0
results=()
failures=0

cleanup() { bash "$lab" down >/dev/null 2>&1; }
trap cleanup EXIT

expect_failure() { # both map per destination, one at random: relay needed
  local a=$1 b=$2
  [[ $a == symmetric* && $b == symmetric* && ( $a == symmetric || $b == symmetric ) ]]
}

# run_pair LABEL EXPECT(ok|fail) -- runs one traversal in the current lab.
run_pair() {
  local label=$1 expect=$2 session="s$RANDOM$RANDOM"
  local out_s out_c
  out_s=$(mktemp) out_c=$(mktemp)
  timeout 60 bash "$lab" exec a "$peer" server "$REDIS" "$session" "$STUN" "$PUNCH_MS" >"$out_s" 2>&1 &
  local spid=$!
  timeout 60 bash "$lab" exec b "$peer" client "$REDIS" "$session" "$STUN" "$PUNCH_MS" >"$out_c" 2>&1
  wait $spid
  local rs rc
  rs=$(grep '^RESULT' "$out_s" | head -1) rc=$(grep '^RESULT' "$out_c" | head -1)
  local got=fail ms
  [[ $rs == "RESULT ok"* && $rc == "RESULT ok"* ]] && got=ok
  ms=$(awk '{print $3}' <<<"$rc")
  local verdict=as-expected
  if [[ $got != "$expect" ]]; then
    verdict=UNEXPECTED; failures=$((failures + 1))
  elif [[ $expect == fail ]]; then
    # A refused pair must fail with the punch error, within the timeout + 2 s,
    # saying that both NATs map per destination and a relay is needed.
    if ! grep -q "QP_ERR_PUNCH.*both NATs map each destination.*relay" <<<"$rc" ||
       ! grep -q "QP_ERR_PUNCH" <<<"$rs" || [ "${ms:-99999}" -gt $((PUNCH_MS + 2000)) ]; then
      verdict=UNCLEAR-ERROR; failures=$((failures + 1))
    fi
  fi
  results+=("$(printf '%-34s %-5s %7s ms  %s' "$label" "$got" "${ms:-?}" "$verdict")")
  if [[ $verdict != as-expected ]]; then
    echo "--- $label server:"; cat "$out_s"; echo "--- $label client:"; cat "$out_c"
  fi
  rm -f "$out_s" "$out_c"
}

lab_up() {
  bash "$lab" down >/dev/null 2>&1
  bash "$lab" up "$@" >/dev/null || return 1
  bash "$lab" stun-up >/dev/null && bash "$lab" redis-up >/dev/null
}

for a in "${KINDS[@]}"; do
  for b in "${KINDS[@]}"; do
    expect=ok; expect_failure "$a" "$b" && expect=fail
    if ! lab_up "$a" "$b"; then
      results+=("$(printf '%-34s lab could not be built' "$a -> $b")"); failures=$((failures + 1)); continue
    fi
    run_pair "$a -> $b" "$expect"
  done
done
lab_up same-nat && run_pair "same-nat (both behind one NAT)" ok
lab_up double port-restricted && run_pair "double NAT -> port-restricted" ok
lab_up port-restricted full-cone --loss 5 && run_pair "port-restricted -> full-cone, 5% loss" ok

echo
echo "traversal matrix (server in A -> client in B; time = client's create_client)"
printf '%s\n' "${results[@]}"
echo "$failures unexpected outcome(s)"
[ "$failures" -eq 0 ]
