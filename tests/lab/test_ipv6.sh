#!/usr/bin/env bash
# IPv6 candidates in the NAT lab (issue 11, docs/internals/traversal.md "IPv6").
# Both sites get IPv6 (natlab.sh ipv6: routed 2001:db8:a::/64 and 2001:db8:b::/64,
# no NAT66, a stateful nftables firewall on each site router that lets in only
# flows the inside started), a coturn STUN server answers on 2001:db8:f0::10, and
# lab_peer runs a server in site A and a client in site B through the public API:
#   (a) IPv4 NATs symmetric (random ports) on both sides, no TURN, IPv6 on both:
#       the peers connect directly over IPv6 (QP_RUNS times, default 5: median
#       time to connect), echo 1 KiB and 10 MiB byte for byte, and both paths say
#       "direct (..., IPv6)"; each side got an IPv6 server-reflexive address from
#       the IPv6 STUN server and still learned its IPv4 NAT as random;
#   (b) port-restricted NATs, IPv6 only in site A: they connect over IPv4 and the
#       path says so;
#   (d) in the lab of (a), a deprecated IPv6 address in site A (preferred lifetime 0)
#       is not published, while one more ordinary address (the control) is: the
#       client's pairs name it and not the deprecated one;
#   (c) the firewall really drops unsolicited IPv6: a datagram from pub to a socket
#       in site A does not arrive (and the router's "unsolicited" counter grows),
#       while the answer to a datagram that socket sent first does.
#
#   test_ipv6.sh LAB_PEER_BINARY
# Exit: 0 all as expected, 1 a mismatch, 77 skipped (needs root + netns + coturn).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
peer=${1:?usage: test_ipv6.sh LAB_PEER_BINARY}
lab="$here/natlab.sh"
export NATLAB_PREFIX=${NATLAB_PREFIX:-qp6$$}

# shellcheck source=lab_env.sh
. "$here/lab_env.sh"
lab_skip_unless_ready
command -v python3 >/dev/null || { echo "SKIP: python3 (the firewall probe) not installed"; exit 77; }

PUNCH_MS=${QP_IPV6_PUNCH_MS:-8000}
RUNS=${QP_RUNS:-5}
STUN=$LAB_STUN
STUN6=[2001:db8:f0::10]:3478
REDIS=$LAB_REDIS
A6=2001:db8:a::2
PUB6=2001:db8:f0::10
failures=0
results=()
tmp=$(mktemp -d)

cleanup() { bash "$lab" down >/dev/null 2>&1; rm -rf "$tmp"; }
trap cleanup EXIT

# lab_up KIND_A KIND_B V6SITES...: a fresh lab with STUN (both families) and redis.
lab_up() {
  local ka=$1 kb=$2; shift 2
  bash "$lab" down >/dev/null 2>&1
  bash "$lab" up "$ka" "$kb" >/dev/null && bash "$lab" ipv6 "$@" >/dev/null &&
    bash "$lab" stun-up >/dev/null && bash "$lab" stun6-up >/dev/null &&
    bash "$lab" redis-up >/dev/null
}

out_s="$tmp/server" out_c="$tmp/client"
# run_pair: one traversal, server in A, client in B, both STUN servers, no TURN,
# no port mapping (no gateway answers in this lab: it would only add 250 ms).
run_pair() {
  local session="v6$RANDOM$RANDOM" spid
  # info: the traversal summary (STUN answers, NAT behavior) goes to the logs.
  export QP_LAB_STUN2=$STUN6 QP_LAB_NO_PORTMAP=1 QUIC_PORTAL_LOG=info
  timeout 90 bash "$lab" exec a "$peer" server "$REDIS" "$session" "$STUN" "$PUNCH_MS" >"$out_s" 2>&1 &
  spid=$!
  timeout 90 bash "$lab" exec b "$peer" client "$REDIS" "$session" "$STUN" "$PUNCH_MS" >"$out_c" 2>&1
  wait $spid
}

field() { grep "^$1" "$2" | head -1; }
both_ok() { field RESULT "$out_s" | grep -q "^RESULT ok" && field RESULT "$out_c" | grep -q "^RESULT ok"; }
# direct_in FAMILY FILE: the path is direct in that family.
direct_in() { field PATH "$2" | grep -q "^PATH [1-5] direct (.*, $1) to "; }
connect_ms() { field RESULT "$out_c" | awk '{print $3}'; }
# v6_srflx_and_v4_nat SITE FILE: an IPv6 mapped address of that site from the
# IPv6 STUN server, and the NAT behavior learned from IPv4 alone (random).
v6_srflx_and_v4_nat() {
  grep -qF "STUN $STUN6: mapped [2001:db8:$1::2]:" "$2" &&
    grep -q "NAT: ports random per destination" "$2"
}

# verdict LABEL OK(0/1): record, and show the logs on a mismatch.
verdict() {
  local label=$1 ok=$2
  results+=("$(printf '%-52s %-4s connect %5s ms  10 MiB echo %5s ms  %s' "$label" \
    "$([ "$ok" = 1 ] && echo ok || echo FAIL)" "$(connect_ms)" \
    "$(field BULK "$out_c" | awk '{print $2}')" "$(field PATH "$out_c" | cut -d' ' -f3-)")")
  if [ "$ok" != 1 ]; then
    failures=$((failures + 1))
    echo "--- $label server:"; cat "$out_s"; echo "--- $label client:"; cat "$out_c"
  fi
}

# drops ROUTER: packets the IPv6 firewall of that site router dropped so far.
drops() { bash "$lab" exec "$1" nft list counter ip6 natlab6 unsolicited | awk '/packets/ {print $2}'; }

median() { sort -n | awk '{v[NR] = $1} END {if (NR) print v[int((NR + 1) / 2)]}'; }

# (a) random symmetric NATs on both sides: no IPv4 path without a relay; IPv6 joins them.
if lab_up symmetric symmetric a b; then
  times=()
  for ((i = 1; i <= RUNS; i++)); do
    run_pair
    ok=0; both_ok && direct_in IPv6 "$out_s" && direct_in IPv6 "$out_c" &&
      v6_srflx_and_v4_nat a "$out_s" && v6_srflx_and_v4_nat b "$out_c" && ok=1
    verdict "(a) symmetric x symmetric, IPv6 both, run $i" $ok
    [ $ok = 1 ] && times+=("$(connect_ms)")
  done
  results+=("(a) median time to connect over IPv6: $(printf '%s\n' "${times[@]}" | median) ms of ${#times[@]} runs")
  results+=("(a) unsolicited IPv6 packets dropped (checks that came before the side's own): site A $(drops ra), site B $(drops rb)")
  # (d) a deprecated address is no candidate, an ordinary one is (the client's
  # summary lists a pair per candidate of the server's record).
  ip -n "$NATLAB_PREFIX-a" -6 addr add 2001:db8:a::98/64 dev eth0 nodad
  ip -n "$NATLAB_PREFIX-a" -6 addr add 2001:db8:a::99/64 dev eth0 preferred_lft 0 nodad
  run_pair
  ok=0; both_ok && direct_in IPv6 "$out_c" && grep -qF -- "-> [2001:db8:a::98]:" "$out_c" &&
    ! grep -qF "2001:db8:a::99" "$out_c" && ok=1
  verdict "(d) deprecated 2001:db8:a::99 in A is not published" $ok
else
  results+=("lab symmetric x symmetric with IPv6 could not be built"); failures=$((failures + 1))
fi

# (c) the firewall drops what the inside did not start. A socket in A on port 5000
# reports any datagram within 1.5 s (none may come: pub sends one from port 7000),
# then sends to pub port 6000, whose answer must come back through the firewall.
cat >"$tmp/probe.py" <<'EOF'
import socket, sys
mode, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
# The responder binds its address: pub has two, and an answer from the other
# one would be a new flow to the firewall (dropped, rightly).
s.bind((sys.argv[3] if mode == "responder" else "::", port))
def recv(timeout):
    s.settimeout(timeout)
    try:
        data, src = s.recvfrom(2048)
        return src
    except socket.timeout:
        return None
if mode == "inside":                 # inside PORT PUB: listen, then ask pub
    print("READY", flush=True)
    src = recv(1.5)
    if src: print("UNSOLICITED", src[0], src[1], flush=True)
    s.sendto(b"hello", (sys.argv[3], 6000))
    src = recv(3.0)
    print("REPLY" if src else "NOREPLY", *(src[:2] if src else ()), flush=True)
elif mode == "responder":            # responder PORT ADDR: answer the first datagram
    print("READY", flush=True)
    src = recv(6.0)
    if src: s.sendto(b"reply", src[:2])
else:                                # send PORT DEST DPORT: one unsolicited datagram
    s.sendto(b"probe", (sys.argv[3], int(sys.argv[4])))
EOF
wait_ready() { # wait_ready FILE: at most 5 s for its READY line
  local i
  for ((i = 0; i < 100; i++)); do grep -q READY "$1" 2>/dev/null && return 0; sleep 0.05; done
  return 1
}
if bash "$lab" info >/dev/null 2>&1 && [ "$(bash "$lab" addr6 a 2>/dev/null)" = "$A6" ]; then
  before=$(drops ra)
  bash "$lab" exec pub python3 "$tmp/probe.py" responder 6000 "$PUB6" >"$tmp/resp" 2>&1 &
  rpid=$!
  bash "$lab" exec a python3 "$tmp/probe.py" inside 5000 "$PUB6" >"$tmp/inside" 2>&1 &
  ipid=$!
  ok=0
  if wait_ready "$tmp/resp" && wait_ready "$tmp/inside"; then
    bash "$lab" exec pub python3 "$tmp/probe.py" send 7000 "$A6" 5000
    wait $ipid; wait $rpid
    after=$(drops ra)
    ! grep -q UNSOLICITED "$tmp/inside" && grep -q "^REPLY $PUB6 6000" "$tmp/inside" &&
      [ "$after" -gt "$before" ] && ok=1
  else
    kill $ipid $rpid 2>/dev/null; wait $ipid $rpid 2>/dev/null
  fi
  results+=("$(printf '%-52s %-4s %s; answer to its own datagram: %s; firewall counter %s -> %s' \
    "(c) unsolicited IPv6 from pub to site A is dropped" "$([ $ok = 1 ] && echo ok || echo FAIL)" \
    "$(grep -q UNSOLICITED "$tmp/inside" && echo "ARRIVED" || echo "did not arrive")" \
    "$(grep -q '^REPLY' "$tmp/inside" && echo arrived || echo missing)" "${before:-?}" "${after:-?}")")
  if [ $ok != 1 ]; then
    failures=$((failures + 1)); echo "--- (c) inside:"; cat "$tmp/inside"; echo "--- (c) pub:"; cat "$tmp/resp"
  fi
else
  results+=("(c) no lab with IPv6 in site A to probe"); failures=$((failures + 1))
fi

# (b) one side without IPv6: an IPv4 NAT pair that hole punching crosses.
if lab_up port-restricted port-restricted a; then
  run_pair
  ok=0; both_ok && direct_in IPv4 "$out_s" && direct_in IPv4 "$out_c" && ok=1
  verdict "(b) port-restricted x port-restricted, IPv6 in A only" $ok
else
  results+=("lab port-restricted x port-restricted could not be built"); failures=$((failures + 1))
fi

echo
echo "IPv6 in the NAT lab (server in A, client in B; times from the client)"
printf '%s\n' "${results[@]}"
echo "$failures unexpected outcome(s)"
[ "$failures" -eq 0 ]
