#!/usr/bin/env bash
# test_lab_recovery.sh: the CLI through a NAT rebinding, in the NAT lab
# (ctest "cli_lab_recovery"; root and namespaces, else skip 77).
# Port-restricted x port-restricted, a redis rendezvous and the lab's STUN
# server; the client pipes 100 lines at 10 per second; at line 20 the
# client's NAT rebinds. Both sides must exit 0, every line must arrive once
# and in order, and both must print "path changed after recovery 1".
set -u

B=${1:?usage: test_lab_recovery.sh PATH/TO/quic-portal}
B="$(cd "$(dirname "$B")" && pwd)/$(basename "$B")"
here="$(cd "$(dirname "$0")/../lab" && pwd)"
lab="$here/natlab.sh"
export NATLAB_PREFIX=${NATLAB_PREFIX:-qpc$$}
# shellcheck source=../lab/lab_env.sh
. "$here/lab_env.sh"
lab_skip_unless_ready
# The lab is shared machine state: one lab user at a time (the lock is the
# flock process's own: nothing started here keeps it).
if [ -z "${QP_LAB_LOCKED:-}" ]; then
  QP_LAB_LOCKED=1 exec flock -o /tmp/qp-lab.lock "$0" "$@"
fi

W=$(mktemp -d /tmp/qp-cli-lab.XXXXXX)
trap 'bash "$lab" down >/dev/null 2>&1; rm -rf "$W"' EXIT
bash "$lab" down >/dev/null 2>&1
if ! { bash "$lab" up port-restricted port-restricted >/dev/null &&
  bash "$lab" stun-up >/dev/null && bash "$lab" redis-up >/dev/null; }; then
  echo "FAIL the lab could not be built"
  exit 1
fi
RDV=redis://203.0.113.10:6379/0
STUN=203.0.113.10:3478
S=s$RANDOM$RANDOM
timeout 60 bash "$lab" exec a "$B" serve --rendezvous "$RDV" --session "$S" --stun "$STUN" \
  --secret "lab recovery secret" </dev/null >"$W/s.out" 2>"$W/s.err" &
sp=$!
seq -f 'line %g' 1 100 >"$W/want"
(while read -r l; do echo "$l"; sleep 0.1; done <"$W/want") |
  timeout 60 bash "$lab" exec b "$B" connect --rendezvous "$RDV" --session "$S" --stun "$STUN" \
    --secret "lab recovery secret" >"$W/c.out" 2>"$W/c.err" &
cp=$!
for _ in $(seq 1 300); do
  grep -q '^line 20$' "$W/s.out" 2>/dev/null && break
  sleep 0.1
done
bash "$lab" rebind b >"$W/rebind.log" 2>&1
wait $cp
crc=$?
wait $sp
src=$?
if [ $crc -eq 0 ] && [ $src -eq 0 ] && cmp -s "$W/want" "$W/s.out" &&
  grep -q "path changed after recovery 1: direct" "$W/s.err" &&
  grep -q "path changed after recovery 1: direct" "$W/c.err"; then
  echo "ok   rebind of the client's NAT mid-pipe: 100 lines once and in order, both sides print the recovery"
  exit 0
fi
echo "FAIL recovery through the CLI: connect $crc, serve $src"
for f in s.err c.err rebind.log; do sed "s|^|    $f: |" "$W/$f"; done
exit 1
