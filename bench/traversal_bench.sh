#!/usr/bin/env bash
# bench/traversal_bench.sh BUILD_DIR: time from both sides starting to a
# connected portal, in the NAT lab (tests/lab, needs root), for pairs of NAT
# kinds, repeated; prints the median and max per pair. Both peers start at
# the same moment; the figure is the later of the two qp_create_* times.
# Environment: QP_NAT_BENCH_REPEATS (default 5).
set -uo pipefail
build=${1:?usage: bench/traversal_bench.sh BUILD_DIR}
here=$(cd "$(dirname "$0")/.." && pwd)
lab="$here/tests/lab/natlab.sh"
peer="$build/tests/lab_peer"
repeats=${QP_NAT_BENCH_REPEATS:-5}
export NATLAB_PREFIX=qpb$$
# shellcheck source=../tests/lab/lab_env.sh
. "$here/tests/lab/lab_env.sh"
lab_skip_unless_ready
[ -x "$peer" ] || { echo "traversal_bench: $peer missing; build first" >&2; exit 2; }
trap 'bash "$lab" down >/dev/null 2>&1' EXIT

PAIRS=("none none" "full-cone port-restricted" "port-restricted port-restricted"
       "port-restricted full-cone" "symmetric full-cone" "full-cone symmetric"
       "double port-restricted")
printf '%-34s %8s %8s %6s\n' "pair (server -> client)" "p50 ms" "max ms" "ok"
for pair in "${PAIRS[@]}"; do
  # shellcheck disable=SC2086
  bash "$lab" down >/dev/null 2>&1; bash "$lab" up $pair >/dev/null || continue
  bash "$lab" stun-up >/dev/null; bash "$lab" redis-up >/dev/null
  times=() ok=0
  for ((i = 0; i < repeats; i++)); do
    s="b$RANDOM$i" fs=$(mktemp) fc=$(mktemp)
    timeout 30 bash "$lab" exec a "$peer" server redis://203.0.113.10:6379/0 "$s" 203.0.113.10:3478 5000 >"$fs" &
    timeout 30 bash "$lab" exec b "$peer" client redis://203.0.113.10:6379/0 "$s" 203.0.113.10:3478 5000 >"$fc"
    wait
    ts=$(awk '/^RESULT ok/{print $3}' "$fs") tc=$(awk '/^RESULT ok/{print $3}' "$fc")
    if [[ -n $ts && -n $tc ]]; then
      ok=$((ok + 1)); times+=($((ts > tc ? ts : tc)))
    fi
    rm -f "$fs" "$fc"
  done
  read -r p50 max < <(printf '%s\n' "${times[@]:-0}" | sort -n |
    awk '{v[NR-1]=$1} END {print v[int(NR*0.5)], v[NR-1]}')
  printf '%-34s %8s %8s %3d/%d\n' "${pair/ / -> }" "$p50" "$max" "$ok" "$repeats"
done
