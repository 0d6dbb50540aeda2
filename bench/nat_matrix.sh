#!/usr/bin/env bash
# bench/nat_matrix.sh BUILD_DIR: the NAT lab matrix of README.md (issue 11).
# For each row, a fresh lab (tests/lab/natlab.sh: server in site A, client
# in site B, coturn as STUN and Redis in the lab's internet), QP_NAT_RUNS
# traversals (default 5) with build/tests/lab_peer (1 KiB and 10 MiB echo
# after connecting), and one line: the path kind each side reported
# (qp_portal_path; the most frequent one over the runs), how many runs
# connected, and the median time to connect (the later of the two
# qp_create_* times, both peers started at once).
#
# Rows: every pair of the NAT kinds (server kind <= client kind), then
# random symmetric x random symmetric with miniupnpd on A's router (UPnP
# only, then NAT-PMP only), with a TURN server (coturn, relay allowed), and
# with IPv6 on both sites (routed, stateful firewall, no NAT66; the row is
# skipped when natlab.sh has no "ipv6" command).
# Needs root (exit 77 otherwise). Holds the lab lock for its whole run:
#   sudo flock -o /tmp/qp-lab.lock bench/nat_matrix.sh build
# Environment: QP_NAT_RUNS (5), QP_NAT_ROWS (a regex: only matching rows),
# QP_NAT_PUNCH_MS (3000: the pairs that fail give up this fast).
set -uo pipefail
build=${1:?usage: bench/nat_matrix.sh BUILD_DIR}
here=$(cd "$(dirname "$0")/.." && pwd)
lab="$here/tests/lab/natlab.sh"
peer="$build/tests/lab_peer"
runs=${QP_NAT_RUNS:-5}
punch_ms=${QP_NAT_PUNCH_MS:-3000}
rows_re=${QP_NAT_ROWS:-.}
export NATLAB_PREFIX=qpx$$
# shellcheck source=../tests/lab/lab_env.sh
. "$here/tests/lab/lab_env.sh"
lab_skip_unless_ready
[ -x "$peer" ] || { echo "nat_matrix: $peer missing; build first" >&2; exit 2; }
# shellcheck source=../tests/lab/portmap_lab.sh
. "$here/tests/lab/portmap_lab.sh" # miniupnpd on the router (RUN, EXT_IP)
TURN_PORT=3479
STUN6="[2001:db8:f0::10]:3478"
turn_pid=""

cleanup() {
  stop_miniupnpd
  [ -n "$turn_pid" ] && kill "$turn_pid" 2>/dev/null
  bash "$lab" down >/dev/null 2>&1
}
trap cleanup EXIT

# lab_up KIND_A KIND_B: a fresh lab with STUN and Redis.
lab_up() {
  cleanup
  turn_pid=""
  bash "$lab" up "$1" "$2" >/dev/null && bash "$lab" stun-up >/dev/null &&
    bash "$lab" redis-up >/dev/null && mkdir -p "$RUN"
}

# kind_name KIND DESC: qp_path_kind as text; a mapping names its protocol.
kind_name() {
  case $1 in
  1) echo host ;; 2) echo srflx ;; 3) echo prflx ;; 4) echo predicted ;;
  5) echo birthday ;; 6) echo relayed ;;
  7) sed -n 's/^direct (port mapping, \([A-Za-z-]*\).*/mapped (\1)/p' <<<"$2" ;;
  *) echo "?" ;;
  esac
}

# one: a traversal in the current lab, environment from the caller; prints
# "<ms> <server kind>|<client kind>" or "fail <first words of the error>".
one() {
  local s="m$RANDOM$RANDOM" fs fc
  fs=$(mktemp) fc=$(mktemp)
  timeout 60 bash "$lab" exec a "$peer" server "$LAB_REDIS" "$s" "$LAB_STUN" "$punch_ms" >"$fs" 2>&1 &
  local spid=$!
  timeout 60 bash "$lab" exec b "$peer" client "$LAB_REDIS" "$s" "$LAB_STUN" "$punch_ms" >"$fc" 2>&1
  wait $spid
  local ts tc ks kc
  ts=$(awk '/^RESULT ok/{print $3}' "$fs") tc=$(awk '/^RESULT ok/{print $3}' "$fc")
  if [[ -n $ts && -n $tc ]]; then
    ks=$(kind_name "$(awk '/^PATH/{print $2; exit}' "$fs")" "$(sed -n 's/^PATH [0-9]* //p' "$fs")")
    kc=$(kind_name "$(awk '/^PATH/{print $2; exit}' "$fc")" "$(sed -n 's/^PATH [0-9]* //p' "$fc")")
    echo "$((ts > tc ? ts : tc)) $ks|$kc"
  else
    echo "fail $(grep -h -o 'QP_ERR_[A-Z_]*' "$fc" "$fs" | head -1)"
  fi
  rm -f "$fs" "$fc"
}

printf '| %-54s | %-16s | %-16s | %5s | %12s |\n' "NAT A (server) x NAT B (client)" \
  "path, server" "path, client" "ok" "connect p50"
printf '|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..56})" "$(printf -- '-%.0s' {1..18})" \
  "$(printf -- '-%.0s' {1..18})" "-------" "--------------"

# row LABEL: runs `one` QP_NAT_RUNS times in the current lab and prints the row.
row() {
  local label=$1 times=() kinds=() ok=0 fail_code="" r i
  for ((i = 0; i < runs; i++)); do
    r=$(one)
    if [[ $r == fail* ]]; then
      fail_code=${r#fail }
    else
      ok=$((ok + 1)); times+=("${r%% *}"); kinds+=("${r#* }")
    fi
  done
  local p50="-" ks="-" kc="-" mode
  if ((ok > 0)); then
    p50="$(printf '%s\n' "${times[@]}" | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}') ms"
    mode=$(printf '%s\n' "${kinds[@]}" | sort | uniq -c | sort -rn | head -1 | sed 's/^ *[0-9]* //')
    ks=${mode%%|*} kc=${mode#*|}
  else
    ks="no path (${fail_code:-?})"
  fi
  printf '| %-54s | %-16s | %-16s | %2d/%-2d | %12s |\n' "$label" "$ks" "$kc" "$ok" "$runs" "$p50"
}

# want LABEL: the row is selected by QP_NAT_ROWS.
want() { [[ $1 =~ $rows_re ]]; }

KINDS=(full-cone restricted-cone port-restricted symmetric-seq symmetric)
names=([0]=full-cone [1]=restricted-cone [2]=port-restricted [3]="symmetric (sequential)" [4]="symmetric (random)")
export QP_LAB_NO_PORTMAP=1 # no gateway answers in these rows: it would only add 250 ms
for ((i = 0; i < ${#KINDS[@]}; i++)); do
  for ((j = i; j < ${#KINDS[@]}; j++)); do
    label="${names[i]} x ${names[j]}"
    want "$label" || continue
    if lab_up "${KINDS[i]}" "${KINDS[j]}"; then row "$label"; else echo "| $label | lab failed |"; fi
  done
done
unset QP_LAB_NO_PORTMAP

# Random symmetric on both sides, miniupnpd on A's router with one protocol.
for proto in upnp natpmp; do
  label="symmetric (random) x symmetric (random), $([ $proto = upnp ] && echo UPnP || echo NAT-PMP) on A"
  want "$label" || continue
  if [ $proto = upnp ]; then PM_UPNP=yes PM_NATPMP=no; else PM_UPNP=no PM_NATPMP=yes; fi
  if lab_up symmetric symmetric && pm_router_up; then
    QP_LAB_PORTMAP=$proto row "$label"
  else
    echo "| $label | lab or miniupnpd failed |"
  fi
  stop_miniupnpd
done

label="symmetric (random) x symmetric (random), TURN"
if want "$label"; then
  if lab_up symmetric symmetric && lab_start_turn "$TURN_PORT" --lt-cred-mech --user U:P; then
    turn_pid=$LAB_TURN_PID
    QP_LAB_NO_PORTMAP=1 QP_LAB_TURN=U:P@$LAB_TURN_IP:$TURN_PORT row "$label"
  else
    echo "| $label | lab or coturn failed |"
  fi
fi

label="symmetric (random) x symmetric (random), IPv6 on both"
if want "$label"; then
  if ! grep -q "ipv6)" "$lab"; then
    echo "| $label | skipped: natlab.sh has no ipv6 command |"
  elif lab_up symmetric symmetric && bash "$lab" ipv6 a b >/dev/null && bash "$lab" stun6-up >/dev/null; then
    QP_LAB_NO_PORTMAP=1 QP_LAB_STUN2=$STUN6 row "$label"
  else
    echo "| $label | lab (IPv6) failed |"
  fi
fi
