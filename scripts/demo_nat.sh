#!/usr/bin/env bash
# demo_nat.sh BUILD_DIR: the demo across two NATs (`make demo-nat`, root):
# builds the NAT lab (tests/lab/natlab.sh: two sites behind port-restricted
# NAT routers, coturn and Redis in the lab's "internet"), shows each site's
# NAT behavior, then a server in site A and a client in site B meet through
# Redis, punch through both NATs, verify each other and run a ping-pong.
set -euo pipefail
BUILD=${1:-build}
QP="$(cd "$BUILD" && pwd)/tools/quic-portal"
LAB="$(cd "$(dirname "$0")/.." && pwd)/tests/lab/natlab.sh"
KIND_A=${QP_DEMO_NAT_A:-port-restricted}
KIND_B=${QP_DEMO_NAT_B:-port-restricted}
export NATLAB_PREFIX=qpdemo
[ "$(id -u)" -eq 0 ] || { echo "demo-nat: needs root for network namespaces (try: sudo make demo-nat)" >&2; exit 1; }
[ -x "$QP" ] || { echo "demo-nat: $QP not built" >&2; exit 2; }
trap 'bash "$LAB" down >/dev/null 2>&1' EXIT
step() { printf '\n[demo-nat] %s\n' "$*"; }

step "1. building the lab: site A behind a $KIND_A NAT, site B behind a $KIND_B NAT"
bash "$LAB" down >/dev/null 2>&1 || true
bash "$LAB" up "$KIND_A" "$KIND_B" >/dev/null
bash "$LAB" stun-up >/dev/null
bash "$LAB" redis-up >/dev/null
echo "   host A $(bash "$LAB" addr a), host B $(bash "$LAB" addr b); STUN (coturn) 203.0.113.10:3478, Redis 203.0.113.10:6379"

step "2. what each site sees of its NAT (quic-portal stun)"
for s in a b; do
  echo "   site $s:"; bash "$LAB" exec $s "$QP" stun --server 203.0.113.10:3478 | sed 's/^/      /'
done

step "3. server in A and client in B meet through Redis and punch through both NATs"
session="demo$RANDOM"
common=(--rendezvous redis://203.0.113.10:6379/0 --session "$session" --stun 203.0.113.10:3478)
bash "$LAB" exec a "$QP" bench serve "${common[@]}" 2>&1 | sed 's/^/   [A] /' &
bash "$LAB" exec b "$QP" bench connect "${common[@]}" --bench pingpong 2>&1 | sed 's/^/   [B] /'
wait
step "done: two peers behind two NATs verified each other and talked over QUIC"
