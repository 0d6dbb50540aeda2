#!/usr/bin/env bash
# The birthday technique in the NAT lab: site A behind a symmetric NAT with
# random ports (masquerade fully-random), site B behind a port-restricted
# cone. Runs TRIALS traversals (default 20) on one lab, the symmetric side
# being the server in odd trials and the client in even ones, and requires
# at least MIN_OK of them (default 19) to connect and echo 1 KiB and 10 MiB.
# Prints one line per trial (outcome, time to connect, probes sent by the
# easy side, extra sockets opened by the hard side) and the totals.
#
#   test_hard_nat.sh LAB_PEER_BINARY
# Environment: QP_HARD_TRIALS, QP_HARD_MIN_OK, QP_HARD_PUNCH_MS (6000).
# Exit: 0 enough trials connected, 1 too few, 77 skipped (needs root + netns).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
peer=${1:?usage: test_hard_nat.sh LAB_PEER_BINARY}
lab="$here/natlab.sh"
export NATLAB_PREFIX=${NATLAB_PREFIX:-qph$$}

# shellcheck source=lab_env.sh
. "$here/lab_env.sh"
lab_skip_unless_ready

TRIALS=${QP_HARD_TRIALS:-20}
MIN_OK=${QP_HARD_MIN_OK:-19}
PUNCH_MS=${QP_HARD_PUNCH_MS:-6000}
STUN=203.0.113.10:3478
REDIS=redis://203.0.113.10:6379/0

cleanup() { bash "$lab" down >/dev/null 2>&1; }
trap cleanup EXIT

bash "$lab" down >/dev/null 2>&1
if ! bash "$lab" up symmetric port-restricted >/dev/null ||
   ! bash "$lab" stun-up >/dev/null || ! bash "$lab" redis-up >/dev/null; then
  echo "FAIL: the lab (symmetric / port-restricted) could not be built"; exit 1
fi

# The number before TEXT in the traversal summary of a peer's log, or 0.
count_before() { grep -o "[0-9]* $2" "$1" | head -1 | awk '{print $1}' | grep . || echo 0; }

ok=0 total_probes=0 total_sockets=0 times=()
printf '%-5s %-22s %-4s %8s %7s %8s\n' trial "hard side" got "ms" probes sockets
for ((t = 1; t <= TRIALS; t++)); do
  # Odd trials: the symmetric side (A) serves; even trials: it connects.
  if ((t % 2)); then srv=a cli=b hard="server (A, symmetric)"; else srv=b cli=a hard="client (A, symmetric)"; fi
  session="h$t-$RANDOM$RANDOM"
  out_s=$(mktemp) out_c=$(mktemp)
  QUIC_PORTAL_LOG=info timeout 60 bash "$lab" exec $srv "$peer" server "$REDIS" "$session" "$STUN" "$PUNCH_MS" >"$out_s" 2>&1 &
  spid=$!
  QUIC_PORTAL_LOG=info timeout 60 bash "$lab" exec $cli "$peer" client "$REDIS" "$session" "$STUN" "$PUNCH_MS" >"$out_c" 2>&1
  wait $spid
  got=fail
  grep -q '^RESULT ok' "$out_s" && grep -q '^RESULT ok' "$out_c" && got=ok
  ms=$(grep '^RESULT' "$out_c" | head -1 | awk '{print $3}')
  if [ "$srv" = a ]; then hard_log=$out_s easy_log=$out_c; else hard_log=$out_c easy_log=$out_s; fi
  probes=$(count_before "$easy_log" "probes to random ports")
  sockets=$(count_before "$hard_log" "extra sockets opened")
  printf '%-5s %-22s %-4s %8s %7s %8s\n' "$t" "$hard" "$got" "${ms:-?}" "$probes" "$sockets"
  if [ "$got" = ok ]; then
    ok=$((ok + 1)) times+=("${ms:-0}")
    total_probes=$((total_probes + probes)) total_sockets=$((total_sockets + sockets))
  else
    echo "--- trial $t server:"; grep -v '^$' "$out_s" | tail -15
    echo "--- trial $t client:"; grep -v '^$' "$out_c" | tail -15
  fi
  rm -f "$out_s" "$out_c"
done

echo
if ((ok > 0)); then
  sorted=$(printf '%s\n' "${times[@]}" | sort -n)
  median=$(sed -n "$(((ok + 1) / 2))p" <<<"$sorted")
  max=$(tail -1 <<<"$sorted")
  echo "symmetric (random) vs port-restricted: $ok/$TRIALS connected;" \
       "time to connect median $median ms, max $max ms;" \
       "probes per success $((total_probes / ok)) on average;" \
       "extra sockets per success $((total_sockets / ok))"
else
  echo "symmetric (random) vs port-restricted: 0/$TRIALS connected"
fi
if ((ok < MIN_OK)); then
  echo "FAIL: fewer than $MIN_OK of $TRIALS trials connected"; exit 1
fi
exit 0
