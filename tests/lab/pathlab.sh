#!/usr/bin/env bash
# pathlab.sh - two hosts joined by a 1500-byte-MTU path, directly and through
# a delay/rate/loss forwarder (tests/lab/delayfw.c), for the path benchmarks.
#
# Topology (namespaces PREFIX-a, PREFIX-fw, PREFIX-b; default prefix "qpp"):
#   direct:    PREFIX-a d0 10.78.0.1/24  <-veth->  PREFIX-b d0 10.78.0.2/24
#   forwarded: PREFIX-a f0 10.78.1.1/24  <-veth-> fa [PREFIX-fw: delayfw] fb
#                                        <-veth-> f0 10.78.1.2/24 PREFIX-b
# The direct link keeps the kernel's offloads (TSO/GSO/GRO), as two real
# hosts would. On the forwarded link the hosts' veths do not hand
# super-frames to the forwarder (TSO/GSO off, checksum offload kept, so UDP
# GSO still works: the kernel segments in software) and the forwarder's ends
# do no GRO.
#
# Usage:
#   pathlab.sh up [--prefix P]                 build the namespaces (no shaping)
#   pathlab.sh shape [--prefix P] [--rtt-ms R] [--rate-mbit M] [--loss PCT] [--seed S]
#                                              (re)start the forwarder: R/2 ms each
#                                              way, M Mbit/s, PCT% loss EACH WAY
#   pathlab.sh exec [--prefix P] a|b|fw CMD... run CMD in a namespace
#   pathlab.sh addr a|b direct|fw              address of a host on a link
#   pathlab.sh down [--prefix P]               remove everything (forwarder too)
#
# Wrap up/down (and everything between) in `flock /tmp/qp-lab.lock`.
# Environment: DELAYFW=path of the delayfw binary (default: built next to
# this script's build, see bench/path_bench.sh). Exit 77 with "SKIP: reason"
# when the lab cannot run here.
set -euo pipefail

PREFIX="${PATHLAB_PREFIX:-qpp}"
RUN_BASE="${PATHLAB_RUN_DIR:-/run/pathlab}"
MTU=1500

die() { echo "pathlab: $*" >&2; exit 1; }
skip() { echo "SKIP: $*"; exit 77; }

require_lab() {
  [[ "$(id -u)" == 0 ]] || skip "pathlab needs root (network namespaces, AF_PACKET); running as uid $(id -u)"
  command -v ip >/dev/null 2>&1 || skip "iproute2 'ip' is not installed"
  command -v ethtool >/dev/null 2>&1 || skip "ethtool is not installed (apt-get install ethtool)"
  ip netns list >/dev/null 2>&1 || skip "'ip netns' is unavailable here"
}

ns() { echo "$PREFIX-$1"; }
nsx() { local n; n="$(ns "$1")"; shift; ip netns exec "$n" "$@"; }
run_dir() { echo "$RUN_BASE/$PREFIX"; }

addr_of() {
  local host=$1 link=$2 net
  case $link in direct) net=10.78.0 ;; fw) net=10.78.1 ;; *) die "link must be direct or fw" ;; esac
  case $host in a) echo "$net.1" ;; b) echo "$net.2" ;; *) die "host must be a or b" ;; esac
}

# Offloads that would hand the forwarder frames larger than the MTU.
no_superframes() {
  local n=$1 dev=$2
  nsx "$n" ethtool -K "$dev" tso off gso off gro off tx-udp-segmentation off >/dev/null 2>&1 ||
    nsx "$n" ethtool -K "$dev" tso off gso off gro off >/dev/null
}

cmd_up() {
  require_lab
  cmd_down >/dev/null 2>&1 || true
  local s
  for s in a b fw; do
    ip netns add "$(ns $s)"
    nsx $s ip link set lo up
  done
  ip link add d0 netns "$(ns a)" mtu $MTU type veth peer name d0 netns "$(ns b)" mtu $MTU
  ip link add f0 netns "$(ns a)" mtu $MTU type veth peer name fa netns "$(ns fw)" mtu $MTU
  ip link add f0 netns "$(ns b)" mtu $MTU type veth peer name fb netns "$(ns fw)" mtu $MTU
  for s in a b; do
    nsx $s ip addr add "$(addr_of $s direct)/24" dev d0
    nsx $s ip addr add "$(addr_of $s fw)/24" dev f0
    nsx $s ip link set d0 up
    nsx $s ip link set f0 up
    no_superframes $s f0
  done
  for s in fa fb; do
    nsx fw ip link set "$s" up
    no_superframes fw "$s"
  done
  mkdir -p "$(run_dir)"
  echo "pathlab: up ($(ns a), $(ns fw), $(ns b)); run 'pathlab.sh shape' to start the forwarder"
}

stop_forwarder() {
  local pidf pid i
  pidf="$(run_dir)/delayfw.pid"
  [[ -f $pidf ]] || return 0
  pid=$(cat "$pidf")
  if kill "$pid" 2>/dev/null; then
    for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  fi
  rm -f "$pidf"
}

cmd_shape() {
  local rtt=0 rate=0 loss=0 seed=1 bin log i
  while [[ $# -gt 0 ]]; do
    case $1 in
      --rtt-ms) rtt=$2; shift 2 ;;
      --rate-mbit) rate=$2; shift 2 ;;
      --loss) loss=$2; shift 2 ;;
      --seed) seed=$2; shift 2 ;;
      *) die "shape: unknown option $1" ;;
    esac
  done
  bin="${DELAYFW:-}"
  [[ -x $bin ]] || die "DELAYFW must name the delayfw binary (got '$bin')"
  [[ -e /run/netns/$(ns fw) ]] || die "lab is not up: run 'pathlab.sh up' first"
  stop_forwarder
  log="$(run_dir)/delayfw.log"
  # Real-time priority: the forwarder is the link, and a link does not slow
  # down when the machine is busy (it needs about a third of a CPU at
  # 1 Gbit/s; it sleeps whenever no frame is due).
  setsid ip netns exec "$(ns fw)" chrt -f 10 "$bin" --if0 fa --if1 fb --delay-ms "$(awk -v r="$rtt" 'BEGIN { print r / 2 }')" \
    --rate-mbit "$rate" --loss "$loss" --seed "$seed" >>"$log" 2>&1 </dev/null &
  echo $! >"$(run_dir)/delayfw.pid"
  for ((i = 0; i < 100; i++)); do
    if tail -n 1 "$log" | grep -q "delayfw: ready"; then return 0; fi
    kill -0 "$(cat "$(run_dir)/delayfw.pid")" 2>/dev/null || die "delayfw exited; see $log"
    sleep 0.05
  done
  die "delayfw did not report ready within 5 s; see $log"
}

cmd_down() {
  local s
  stop_forwarder 2>/dev/null || true
  for s in a b fw; do
    [[ -e /run/netns/$(ns $s) ]] && ip netns del "$(ns $s)"
  done
  return 0
}

main() {
  [[ $# -ge 1 ]] || { sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'; exit 2; }
  local cmd=$1
  shift
  if [[ ${1:-} == --prefix ]]; then PREFIX=$2; shift 2; fi
  [[ "$PREFIX" =~ ^[A-Za-z0-9_]{1,20}$ ]] || die "bad prefix '$PREFIX'"
  case $cmd in
    up) cmd_up ;;
    shape) cmd_shape "$@" ;;
    exec) [[ $# -ge 2 ]] || die "exec SITE CMD..."; local s=$1; shift; nsx "$s" "$@" ;;
    addr) addr_of "$@" ;;
    down) cmd_down ;;
    *) die "unknown command '$cmd'" ;;
  esac
}

main "$@"
