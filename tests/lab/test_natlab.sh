#!/usr/bin/env bash
# Self-test of the NAT lab: for every NAT kind, real UDP traffic shows that the lab's NAT
# maps and filters as claimed; the loss option drops about the share asked for; coturn
# (RFC 5780) runs in the pub namespace and turnutils_natdiscovery agrees; redis-server runs
# in pub and is reachable from both sites; hole punching behaves as the kinds predict.
#
#   tests/lab/test_natlab.sh            (or: tests/lab/natlab.sh check)
#
# Exit 0 all good, 1 a check failed, 77 cannot run here (SKIP: reason).
# Every wait is bounded; every namespace made here is removed on exit, also on failure.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LAB="$HERE/natlab.sh"
PY="${PYTHON:-python3}"
PREFIX="${NATLAB_TEST_PREFIX:-qplt$$}"
export NATLAB_PREFIX="$PREFIX"
TMP=""
FAILS=0
START=$SECONDS

skip() { echo "SKIP: $*"; exit 77; }
[[ "$(id -u)" == 0 ]] || skip "the NAT lab needs root (network namespaces, nftables); running as uid $(id -u)"
command -v ip >/dev/null 2>&1 || skip "iproute2 'ip' is not installed"
command -v nft >/dev/null 2>&1 || skip "nftables 'nft' is not installed"
command -v "$PY" >/dev/null 2>&1 || skip "$PY is not installed"
command -v timeout >/dev/null 2>&1 || skip "coreutils 'timeout' is not installed"
if ! ip netns add "$PREFIX-probe" 2>/dev/null; then
  skip "'ip netns add' does not work here (no CAP_SYS_ADMIN or no /run/netns)"
fi
ip netns del "$PREFIX-probe"

cleanup() {
  local rc=$?
  "$LAB" down --prefix "$PREFIX" >/dev/null 2>&1 || true
  [[ -n "$TMP" ]] && rm -rf "$TMP"
  if ip netns list 2>/dev/null | grep -q "^$PREFIX-"; then
    echo "FAIL: namespaces left behind: $(ip netns list | grep "^$PREFIX-" | tr '\n' ' ')"
    rc=1
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
TMP="$(mktemp -d /tmp/natlab-test.XXXXXX)"

pass() { printf '  ok    %s\n' "$*"; }
fail() { printf '  FAIL  %s\n' "$*"; FAILS=$((FAILS + 1)); }

lab() { timeout 30 "$LAB" "$@"; }
in_ns() { local s="$1"; shift; timeout 30 "$LAB" exec "$s" "$@"; }

# jget JSON KEY: one field of a JSON object (strings/numbers/lists printed plainly).
jget() {
  "$PY" -c 'import json,sys
v=json.loads(sys.argv[1]).get(sys.argv[2])
print(",".join(map(str,v)) if isinstance(v,list) else v)' "$1" "$2"
}

start_observer() {
  # Bounded by its own --lifetime (in_ns would stop it after 30 s).
  timeout 90 "$LAB" exec pub "$PY" "$HERE/udp_observer.py" --addr 203.0.113.10 --addr 203.0.113.11 \
    --ports 5000-5007 --lifetime 60 --ready-file "$TMP/obs.ready" >"$TMP/obs.log" 2>&1 &
  local i
  for ((i = 0; i < 50; i++)); do
    [[ -e "$TMP/obs.ready" ]] && return 0
    sleep 0.1
  done
  fail "udp_observer.py did not start within 5 s: $(cat "$TMP/obs.log")"
  return 1
}

new_lab() {
  rm -f "$TMP/obs.ready"
  lab down >/dev/null
  echo "== lab: $*"
  lab up "$@" >/dev/null
  start_observer
}

# Expected behavior per kind: mapping filtering ports-pattern natdiscovery-mapping natdiscovery-filtering
expect() {
  case "$1" in
    none)            echo "endpoint-independent endpoint-independent preserved Endpoint.Independent.Mapping Endpoint.Independent.Filtering" ;;
    full-cone)       echo "endpoint-independent endpoint-independent preserved Endpoint.Independent.Mapping Endpoint.Independent.Filtering" ;;
    restricted-cone) echo "endpoint-independent address-dependent preserved Endpoint.Independent.Mapping Address.Dependent.Filtering" ;;
    port-restricted|double|same-nat)
                     echo "endpoint-independent address-and-port-dependent preserved Endpoint.Independent.Mapping Address.and.Port.Dependent.Filtering" ;;
    symmetric)       echo "address-and-port-dependent address-and-port-dependent random Address.and.Port.Dependent.Mapping Address.and.Port.Dependent.Filtering" ;;
    symmetric-seq)   echo "address-and-port-dependent address-and-port-dependent sequential+1 Address.and.Port.Dependent.Mapping Address.and.Port.Dependent.Filtering" ;;
  esac
}

# check_kind SITE KIND PUBLIC: real traffic from the site host to the observer.
check_kind() {
  local site="$1" kind="$2" public="$3" out em ef ep
  read -r em ef ep _ _ <<<"$(expect "$kind")"
  if out="$(in_ns "$site" "$PY" "$HERE/natprobe.py" classify --expect-mapping "$em" \
    --expect-filtering "$ef" --expect-ports "$ep" --expect-public "$public")"; then
    pass "$site $kind: public=$(jget "$out" public) mapping=$(jget "$out" mapping) ports=$(jget "$out" ports_pattern) [$(jget "$out" ports) from local $(jget "$out" local_port)] filtering=$(jget "$out" filtering)"
  else
    fail "$site $kind: $(jget "$out" problems) -- $out"
  fi
}

# natdiscovery SITE KIND: coturn's RFC 5780 client from the site host (runs in background,
# result checked by natdiscovery_check).
natdiscovery_start() {
  in_ns "$1" turnutils_natdiscovery -m -f 203.0.113.10 >"$TMP/nd.$1" 2>&1 &
  echo $! >"$TMP/nd.$1.pid"
}
natdiscovery_check() {
  local site="$1" kind="$2" em ef got
  read -r _ _ _ em ef <<<"$(expect "$kind")"
  wait "$(cat "$TMP/nd.$site.pid")" || true
  got="$(grep -o 'NAT with [A-Za-z ]*!' "$TMP/nd.$site" | tr '\n' ' ' || true)"
  if grep -q "${em//./ }" "$TMP/nd.$site" && grep -q "${ef//./ }" "$TMP/nd.$site"; then
    pass "$site $kind: natdiscovery says: $got"
  else
    fail "$site $kind: natdiscovery expected '${em//./ }' and '${ef//./ }', got: ${got:-$(tail -n 5 "$TMP/nd.$site")}"
  fi
}

# punch WANT A_PREDICT B_PREDICT: a and b learn their mappings at the observer (a at port
# 5000, b at 5001), swap them through files, then send to each other from that socket.
punch() {
  local want="$1" pa="$2" pb="$3" oa ob ra rb
  rm -f "$TMP"/punch.*
  in_ns a "$PY" "$HERE/natprobe.py" punch --dest 203.0.113.10:5000 --me "$TMP/punch.a" \
    --peer "$TMP/punch.b" --predict "$pa" --duration 2 >"$TMP/punch.out.a" 2>&1 &
  local pid=$!
  in_ns b "$PY" "$HERE/natprobe.py" punch --dest 203.0.113.10:5001 --me "$TMP/punch.b" \
    --peer "$TMP/punch.a" --predict "$pb" --duration 2 >"$TMP/punch.out.b" 2>&1 || true
  wait "$pid" || true
  oa="$(cat "$TMP/punch.out.a")"; ob="$(cat "$TMP/punch.out.b")"
  ra="$(jget "$oa" ok 2>/dev/null || echo error)"; rb="$(jget "$ob" ok 2>/dev/null || echo error)"
  local desc
  desc="a->$(jget "$oa" target 2>/dev/null) b->$(jget "$ob" target 2>/dev/null) (predict a:+$pa b:+$pb)"
  if [[ "$want" == ok && "$ra" == True && "$rb" == True ]]; then
    pass "punch a<->b succeeds: $desc"
  elif [[ "$want" == blocked && "$ra" == False && "$rb" == False ]]; then
    pass "punch a<->b blocked as expected: $desc"
  else
    fail "punch a<->b: wanted $want, got a=$ra b=$rb: $oa / $ob"
  fi
}

stun_checks() {
  local ka="$1" kb="$2"
  if ! command -v turnserver >/dev/null 2>&1 || ! command -v turnutils_natdiscovery >/dev/null 2>&1; then
    echo "  (coturn not installed: natdiscovery checks skipped)"
    return 0
  fi
  if lab stun-up >/dev/null; then
    pass "coturn STUN server (RFC 5780) listening in pub on 203.0.113.10/.11 ports 3478/3479"
  else
    fail "coturn did not start in pub"
    return 0
  fi
  natdiscovery_start a
  natdiscovery_start b
  natdiscovery_check a "$ka"
  natdiscovery_check b "$kb"
  lab stun-down
}

echo "natlab self-test (prefix $PREFIX)"

# -------- lab 1: full-cone / restricted-cone, redis
new_lab full-cone restricted-cone
check_kind a full-cone 192.0.2.2
check_kind b restricted-cone 198.51.100.2
punch ok 0 0
if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; then
  lab redis-up >/dev/null
  if [[ "$(in_ns a redis-cli -h 203.0.113.10 set natlab-key hello-from-a)" == OK &&
    "$(in_ns b redis-cli -h 203.0.113.10 get natlab-key)" == hello-from-a ]]; then
    pass "redis-server in pub at 203.0.113.10:6379: a SET, b GET through their NATs"
  else
    fail "redis in pub not usable from the sites"
  fi
  lab redis-down
else
  echo "  (redis not installed: redis check skipped)"
fi
stun_checks full-cone restricted-cone

# -------- lab 2: port-restricted / symmetric
new_lab port-restricted symmetric
check_kind a port-restricted 192.0.2.2
check_kind b symmetric 198.51.100.2
punch blocked 0 0
stun_checks port-restricted symmetric


# -------- lab 3: symmetric-seq / double
new_lab symmetric-seq double
check_kind a symmetric-seq 192.0.2.2
check_kind b double 198.51.100.2
# a's NAT gives the next port (+1) to its next new destination, b's mapping is stable:
# b aims at a's observed port + 1 and the punch goes through.
punch ok 0 1
stun_checks symmetric-seq double

# -------- lab 4: same-nat (port-restricted router shared by a and b)
new_lab same-nat port-restricted
check_kind a same-nat 192.0.2.2
check_kind b same-nat 192.0.2.2
in_ns b "$PY" "$HERE/udp_observer.py" --addr 10.0.1.3 --ports 6000 --lifetime 20 \
  --ready-file "$TMP/lan.ready" >/dev/null 2>&1 &
for ((i = 0; i < 50; i++)); do [[ -e "$TMP/lan.ready" ]] && break; sleep 0.1; done
out="$(in_ns a "$PY" "$HERE/natprobe.py" mapping --dest 10.0.1.3:6000)"
if [[ "$(jget "$out" mapped)" == *"'ip': '10.0.1.2'"* ]]; then
  pass "same-nat: a reaches b on the LAN directly (b sees 10.0.1.2, no NAT)"
else
  fail "same-nat: a -> b on the LAN: $out"
fi
# No hairpinning: a -> the shared public address does not come back in to b.
punch blocked 0 0

# -------- lab 5: none / none with loss
new_lab none none --loss 30
out="$(in_ns a "$PY" "$HERE/natprobe.py" loss --dest 203.0.113.10:5000 --n 500)"
up="$(jget "$out" up)"; down="$(jget "$out" down)"
# 30% of 500: mean 350, sd ~10; accept 280..420.
if [[ "$up" =~ ^[0-9]+$ && "$down" =~ ^[0-9]+$ ]] && ((up >= 280 && up <= 420 && down >= 280 && down <= 420)); then
  pass "loss 30%: delivered up $up/500, down $down/500 (inet router drops both directions)"
else
  fail "loss 30%: delivered up=$up down=$down of 500 (wanted 280..420 each)"
fi
lab loss 0
out="$(in_ns a "$PY" "$HERE/natprobe.py" loss --dest 203.0.113.10:5000 --n 500)"
up="$(jget "$out" up)"; down="$(jget "$out" down)"
if [[ "$up" == 500 && "$down" == 500 ]]; then
  pass "loss 0% (natlab.sh loss 0): delivered up $up/500, down $down/500"
else
  fail "loss 0%: delivered up=$up down=$down of 500"
fi
check_kind a none 192.0.2.2
check_kind b none 198.51.100.2
punch ok 0 0
stun_checks none none

# -------- lab 6: the faults the resilience tests use (rebind, blackhole, readdr, udp-timeout)
new_lab port-restricted none
mapped_port() {
  local out
  out="$(in_ns a "$PY" "$HERE/natprobe.py" mapping --dest 203.0.113.10:5000 --local-port 4444)"
  "$PY" -c 'import json,sys; m=json.loads(sys.argv[1])["mapped"][0]; print(m["port"])' "$out"
}
before="$(mapped_port)"
lab rebind a >/dev/null
after="$(mapped_port)"
if [[ "$before" == 4444 && "$after" =~ ^[0-9]+$ && "$after" -ge 30000 && "$after" -lt 62000 ]]; then
  pass "rebind: the same inside socket maps to $after after a rebind (was $before)"
else
  fail "rebind: mapped port before=$before after=$after (wanted 4444, then one in 30000..61999)"
fi
lab blackhole a on
out="$(in_ns a "$PY" "$HERE/natprobe.py" loss --dest 203.0.113.10:5000 --n 50)"
lab blackhole a off
up="$(jget "$out" up)"; down="$(jget "$out" down)"
out="$(in_ns a "$PY" "$HERE/natprobe.py" loss --dest 203.0.113.10:5000 --n 50)"
# None: not even the count request crossed, which is what a black hole does.
if [[ "$up" =~ ^(0|None)$ && "$down" =~ ^(0|None)$ && "$(jget "$out" up)" == 50 ]]; then
  pass "blackhole: nothing crosses while on (0/50 each way), everything after off (50/50)"
else
  fail "blackhole: on up=$up down=$down (wanted 0), off up=$(jget "$out" up) (wanted 50)"
fi
lab readdr a >/dev/null
addr="$(lab addr a)"
out="$(in_ns a "$PY" "$HERE/natprobe.py" mapping --dest 203.0.113.10:5000)"
if [[ "$addr" == 10.0.1.3 && "$(jget "$out" mapped)" == *"'ip': '192.0.2.2'"* ]]; then
  pass "readdr: site a moved to $addr and still reaches the internet through its NAT"
else
  fail "readdr: address $addr (wanted 10.0.1.3), mapping $out"
fi
lab udp-timeout a 7
t="$(in_ns ra sysctl -n net.netfilter.nf_conntrack_udp_timeout)"
if [[ "$t" == 7 ]]; then pass "udp-timeout: site a's NAT forgets idle UDP mappings after 7 s"
else fail "udp-timeout: nf_conntrack_udp_timeout in ra is '$t' (wanted 7)"; fi

lab down
if ip netns list | grep -q "^$PREFIX-"; then
  fail "down left namespaces: $(ip netns list | grep "^$PREFIX-" | tr '\n' ' ')"
else
  pass "natlab.sh down removed every $PREFIX-* namespace"
fi

echo "natlab self-test: $FAILS failure(s), $((SECONDS - START)) s"
((FAILS == 0))
