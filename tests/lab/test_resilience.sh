#!/usr/bin/env bash
# Resilience in the NAT lab (docs/internals/resilience.md): two peers behind
# port-restricted NATs meet through Redis (qp_create_server in site A,
# qp_create_client in site B, tests/lab/lab_resilience.c) and keep working
# while the lab breaks the path under them:
#   - a transfer (QP_RES_MIB MiB, default 50; the issue's figure is 200) with
#     the client's NAT rebinding half way: completes, SHA-256 equal on both
#     sides, exactly one recovery on each side;
#   - the same with the server's NAT rebinding;
#   - a 5 s blackhole of site B during a ping-pong stream, idle timeout 10 s:
#     resumes, every message exactly once and in order;
#   - the client host's address changes during a ping-pong stream: recovers.
# soak: 10 minutes (QP_SOAK_S) idle behind a 30 s UDP mapping timeout, then a
# round trip; 10 minutes of messages with a rebind every minute. "soakN"
# runs both for N seconds (`make test`: soak20 with QP_SOAK_UDP_TIMEOUT=8). bench: time from a rebind
# to traffic flowing again (the longest echo wait of a ping-pong stream),
# 5 runs, median.
#
#   test_resilience.sh LAB_RESILIENCE_BINARY [quick|soakSECONDS|soak|bench]
# Exit: 0 as expected, 1 a failure, 77 skipped (needs root + netns).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
bin=${1:?usage: test_resilience.sh LAB_RESILIENCE_BINARY [quick|soakSECONDS|soak|bench]}
what=${2:-quick}
lab="$here/natlab.sh"
export NATLAB_PREFIX=${NATLAB_PREFIX:-qpr$$}

# shellcheck source=lab_env.sh
. "$here/lab_env.sh"
lab_skip_unless_ready
# The lab is shared machine state: one lab user at a time.
if [ -z "${QP_LAB_LOCKED:-}" ]; then
  QP_LAB_LOCKED=1 exec flock /tmp/qp-lab.lock "$0" "$@"
fi

MIB=${QP_RES_MIB:-50}
# The transfer's pace: long enough (2.5 s for 50 MiB) for a rebind half way.
RATE=${QP_RES_RATE_MIBPS:-20}
STUN=203.0.113.10:3478
REDIS=redis://203.0.113.10:6379/0
work=$(mktemp -d)
failures=0
summary=()

# QP_RES_KEEP=1 keeps the peers' outputs (the folder is printed).
cleanup() { bash "$lab" down >/dev/null 2>&1; if [ -n "${QP_RES_KEEP:-}" ]; then echo "outputs: $work"; else rm -rf "$work"; fi; }
trap cleanup EXIT

lab_up() {
  bash "$lab" down >/dev/null 2>&1
  bash "$lab" up port-restricted port-restricted >/dev/null &&
    bash "$lab" stun-up >/dev/null && bash "$lab" redis-up >/dev/null
}

# start NAME MODE ARG [ENV...]: both peers in the background; outputs in
# $work/NAME.{server,client}.
start() {
  local name=$1 mode=$2 arg=$3; shift 3
  local session="r$RANDOM$RANDOM"
  env "$@" timeout 900 bash "$lab" exec a "$bin" server "$REDIS" "$session" "$STUN" "$mode" "$arg" \
    >"$work/$name.server" 2>&1 &
  spid=$!
  env "$@" timeout 900 bash "$lab" exec b "$bin" client "$REDIS" "$session" "$STUN" "$mode" "$arg" \
    >"$work/$name.client" 2>&1 &
  cpid=$!
}

# wait_line FILE TEXT SECONDS: bounded wait until FILE has a line with TEXT.
wait_line() {
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

finish() { wait "$spid"; wait "$cpid"; }

result() { grep '^RESULT' "$1" | head -1; }
recoveries() { result "$1" | sed -n 's/.*recoveries=\([0-9]*\).*/\1/p'; }

# verdict NAME OK(0/1) TEXT
verdict() {
  local name=$1 ok=$2 text=$3
  if [ "$ok" -eq 0 ]; then
    summary+=("$(printf '%-44s ok    %s' "$name" "$text")")
  else
    summary+=("$(printf '%-44s FAIL  %s' "$name" "$text")")
    failures=$((failures + 1))
    echo "--- $name server:"; tail -40 "$work/$name.server"
    echo "--- $name client:"; tail -40 "$work/$name.client"
  fi
}

# both_ok NAME [WANT_RECOVERIES]: both RESULT ok (and each side recovered
# exactly WANT times, when given).
both_ok() {
  local name=$1 want=${2:-} rs rc
  rs=$(result "$work/$name.server") rc=$(result "$work/$name.client")
  [[ $rs == "RESULT ok"* && $rc == "RESULT ok"* ]] || return 1
  [ -z "$want" ] && return 0
  [ "$(recoveries "$work/$name.server")" = "$want" ] && [ "$(recoveries "$work/$name.client")" = "$want" ]
}

# QP_RES_ONLY=TEXT runs only the scenarios whose name contains TEXT.
skipped() { [[ -n "${QP_RES_ONLY:-}" && $1 != *"$QP_RES_ONLY"* ]]; }

transfer_with_rebind() { # NAME SITE
  local name=$1 site=$2
  skipped "$name" && return
  lab_up || { verdict "$name" 1 "lab could not be built"; return; }
  start "$name" transfer "$MIB" LAB_RATE_MIBPS="$RATE"
  if wait_line "$work/$name.server" '^HALF' 120; then
    bash "$lab" rebind "$site" >"$work/$name.rebind" 2>&1
  fi
  finish
  local ok=1 sha_s sha_c
  sha_s=$(result "$work/$name.server" | sed -n 's/.*sha256=\([0-9a-f]*\).*/\1/p')
  sha_c=$(result "$work/$name.client" | sed -n 's/.*sha256=\([0-9a-f]*\).*/\1/p')
  both_ok "$name" 1 && [ -n "$sha_s" ] && [ "$sha_s" = "$sha_c" ] && ok=0
  verdict "$name" $ok "$MIB MiB, sha256 ${sha_s:0:16}.. = ${sha_c:0:16}.., recoveries server $(recoveries "$work/$name.server") client $(recoveries "$work/$name.client")"
}

pingpong_with() { # NAME SECONDS AT_S ACTION... : run ACTION at AT_S seconds
  local name=$1 secs=$2 at=$3; shift 3
  skipped "$name" && return
  lab_up || { verdict "$name" 1 "lab could not be built"; return; }
  start "$name" pingpong "$secs" LAB_IDLE_S=10
  if wait_line "$work/$name.client" '^READY' 60; then
    sleep "$at"
    "$@" >"$work/$name.action" 2>&1
  fi
  finish
  local ok=1
  both_ok "$name" && ok=0
  verdict "$name" $ok "$(result "$work/$name.client" | cut -d' ' -f3-)"
}

gap_ms() { result "$1" | sed -n 's/.*max_gap_ms=\([0-9]*\).*/\1/p'; }

# rebind_every SECONDS INTERVAL: rebind B, then A, ... every INTERVAL s
# while the stream runs; the count goes to $work/rebinds.
rebind_every() {
  local end=$((SECONDS + $1)) n=0
  while [ $((SECONDS + $2)) -lt $((end - 5)) ]; do
    sleep "$2"
    n=$((n + 1))
    if [ $((n % 2)) -eq 1 ]; then bash "$lab" rebind b; else bash "$lab" rebind a; fi
    echo "$n" >"$work/rebinds"
  done
}

soak() { # SECONDS
  local secs=$1
  lab_up || { verdict "soak idle" 1 "lab could not be built"; return; }
  local udp_timeout=${QP_SOAK_UDP_TIMEOUT:-30}
  bash "$lab" udp-timeout a "$udp_timeout" && bash "$lab" udp-timeout b "$udp_timeout"
  start "soak-idle-$secs" idle "$secs"
  finish
  local ok=1
  both_ok "soak-idle-$secs" && ok=0
  verdict "soak-idle-$secs" $ok "defaults behind a $udp_timeout s UDP timeout: $(result "$work/soak-idle-$secs.client" | cut -d' ' -f3-)"
  # A rebind every minute (every 8 s in the short versions): no message is
  # lost, and each side recovered at least once and at most once per rebind
  # (a rebind whose NAT happens to give the same port again changes no path).
  local every=$((secs / 10 < 8 ? 8 : secs / 10))
  every=$((every > 60 ? 60 : every))
  echo 0 >"$work/rebinds"
  pingpong_with "soak-rebind-$secs" "$secs" 0 rebind_every "$secs" "$every"
  local n r_s r_c
  n=$(cat "$work/rebinds") r_s=$(recoveries "$work/soak-rebind-$secs.server")
  r_c=$(recoveries "$work/soak-rebind-$secs.client")
  [ "$n" -gt 0 ] && [ "${r_s:-0}" -ge 1 ] && [ "$r_s" -le "$n" ] && [ "${r_c:-0}" -ge 1 ] && [ "$r_c" -le "$n" ]
  verdict "soak-rebind-$secs: recoveries <= rebinds" $? "$n rebinds (every $every s), recoveries server $r_s client $r_c"
}

case "$what" in
  quick)
    transfer_with_rebind "transfer, client NAT rebinds half way" b
    transfer_with_rebind "transfer, server NAT rebinds half way" a
    pingpong_with "ping-pong, 5 s blackhole of site B" 15 4 bash "$lab" blackhole b 5
    pingpong_with "ping-pong, client address changes" 12 4 bash "$lab" readdr b
    ;;
  soak[0-9]*) soak "${what#soak}" ;; # soak20 in make test (8 s UDP timeout)
  soak) soak "${QP_SOAK_S:-600}" ;;
  bench)
    gaps=()
    for i in 1 2 3 4 5; do
      pingpong_with "bench-$i: rebind of the client NAT" 10 3 bash "$lab" rebind b
      gaps+=("$(gap_ms "$work/bench-$i: rebind of the client NAT.client")")
    done
    median=$(printf '%s\n' "${gaps[@]}" | sort -n | sed -n 3p)
    echo "rebind to traffic flowing again (ms, 5 runs): ${gaps[*]}; median $median"
    ;;
  *) echo "unknown mode $what"; exit 2 ;;
esac

echo
echo "resilience ($what): port-restricted x port-restricted"
printf '%s\n' "${summary[@]}"
echo "$failures failure(s)"
[ "$failures" -eq 0 ]
