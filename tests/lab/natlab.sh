#!/usr/bin/env bash
# natlab.sh - a NAT test lab made of network namespaces, veth pairs and nftables.
#
# Topology (see tests/lab/README.md for the diagram, the rules and measured behavior):
#   PREFIX-inet   the "internet": a router joining three public segments
#   PREFIX-pub    STUN / Redis host, 203.0.113.10 and 203.0.113.11
#   PREFIX-ra     NAT router of site A (public 192.0.2.2, LAN 10.0.1.0/24)
#   PREFIX-a      host of site A (10.0.1.2, or 192.0.2.2 for kind "none")
#   PREFIX-rb     NAT router of site B (public 198.51.100.2, LAN 10.0.2.0/24)
#   PREFIX-b      host of site B (10.0.2.2, or 198.51.100.2 for kind "none")
#   PREFIX-ca/cb  carrier-grade NAT in front of ra/rb (kind "double" only)
#
# Usage:
#   natlab.sh up KIND_A KIND_B [--loss PCT] [--prefix NAME]
#   natlab.sh up same-nat [KIND] [--loss PCT] [--prefix NAME]
#   natlab.sh down [--prefix NAME]
#   natlab.sh exec [--prefix NAME] SITE CMD...      SITE: a b pub inet ra rb ca cb
#   natlab.sh addr [--prefix NAME] SITE             address of SITE (host address for a/b)
#   natlab.sh public [--prefix NAME] SITE           public (outermost) address of site a/b
#   natlab.sh info [--prefix NAME]                  shell-sourceable NATLAB_* variables
#   natlab.sh loss [--prefix NAME] PCT              change the loss of the internet router
#   natlab.sh stun-up|stun-down [--prefix NAME]     coturn STUN server (RFC 5780) in pub
#   natlab.sh redis-up|redis-down [--prefix NAME]   redis-server on 203.0.113.10:6379 in pub
#   natlab.sh status [--prefix NAME]                namespaces and nftables rules
#   natlab.sh rebind [--prefix NAME] SITE           SITE's NAT forgets its mappings and maps
#                                                   from a new port range (a router reboot)
#   natlab.sh readdr [--prefix NAME] SITE           the site host moves to a new address
#   natlab.sh blackhole [--prefix NAME] SITE on|off|SECONDS
#                                                   the internet drops all of SITE's traffic
#   natlab.sh udp-timeout [--prefix NAME] SITE SECONDS
#                                                   UDP mapping lifetime of SITE's NAT
#   natlab.sh ipv6 [--prefix NAME] SITE...          IPv6 for the internet, pub and sites a/b:
#                                                   routed, no NAT66, a stateful firewall on
#                                                   each site router (see cmd_ipv6)
#   natlab.sh stun6-up [--prefix NAME]              coturn STUN on [2001:db8:f0::10]:3478 and ::11
#   natlab.sh addr6 [--prefix NAME] SITE            IPv6 address of SITE (a b pub)
#   natlab.sh kinds                                 list NAT kinds
#   natlab.sh check                                 run tests/lab/test_natlab.sh
#
# The prefix also comes from $NATLAB_PREFIX (default "qpl"). Everything the lab makes
# lives in namespaces named PREFIX-*; nothing is added to the root namespace.
# Exit code 77 with "SKIP: reason" when the lab cannot run here (not root, no ip netns).
set -euo pipefail

PREFIX="${NATLAB_PREFIX:-qpl}"
LOSS=0
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RUN_BASE="${NATLAB_RUN_DIR:-/run/natlab}"

# Addresses (documentation ranges RFC 5737, CGN range RFC 6598, private RFC 1918).
PUB_NET=203.0.113
STUN1=203.0.113.10
STUN2=203.0.113.11
REDIS_ADDR=203.0.113.10
STUN_PORT=3478
REDIS_PORT=6379
SEQ_BASE=20000   # symmetric-seq: first external port
SEQ_COUNT=256    # symmetric-seq: ports SEQ_BASE .. SEQ_BASE+SEQ_COUNT-1, then wraps
MAP_TIMEOUT=120s # full-cone / restricted-cone mapping lifetime without outgoing traffic

NAT_KINDS="none full-cone restricted-cone port-restricted symmetric symmetric-seq double"
ALL_KINDS="$NAT_KINDS same-nat"
SITES="inet pub ra rb ca cb a b"

die() { echo "natlab: $*" >&2; exit 1; }
skip() { echo "SKIP: $*"; exit 77; }

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'
}

check_prefix() {
  [[ "$PREFIX" =~ ^[A-Za-z0-9_]([A-Za-z0-9_.]{0,19})$ ]] ||
    die "bad prefix '$PREFIX': use 1-20 letters, digits, '_' or '.' (no '-')"
}

# Say SKIP (exit 77) when this machine cannot host the lab.
require_lab() {
  [[ "$(id -u)" == 0 ]] || skip "natlab needs root (network namespaces and nftables); running as uid $(id -u)"
  command -v ip >/dev/null 2>&1 || skip "iproute2 'ip' is not installed"
  command -v nft >/dev/null 2>&1 || skip "nftables 'nft' is not installed"
  ip netns list >/dev/null 2>&1 || skip "'ip netns' is unavailable here"
}

ns() { echo "$PREFIX-$1"; }
nsx() { local n; n="$(ns "$1")"; shift; ip netns exec "$n" "$@"; }
ns_exists() { [[ -e "/run/netns/$(ns "$1")" ]]; }

lab_namespaces() {
  local s
  for s in $SITES; do
    if ns_exists "$s"; then ns "$s"; fi
  done
}

run_dir() { echo "$RUN_BASE/$PREFIX"; }

# ---------------------------------------------------------------- building blocks

mk_ns() {
  local n; n="$(ns "$1")"
  ip netns add "$n"
  ip -n "$n" link set lo up
  # No reverse-path filtering anywhere: NAT and asymmetric test traffic must not be dropped.
  ip netns exec "$n" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
  # Keep IPv6 out of the way (router solicitations, DAD) on the lab links.
  ip netns exec "$n" sysctl -qw net.ipv6.conf.default.disable_ipv6=1 >/dev/null 2>&1 || true
}

router_sysctls() {
  nsx "$1" sysctl -qw net.ipv4.ip_forward=1
}

# link NS1 IF1 NS2 IF2: a veth pair created directly inside the two namespaces.
link() {
  ip link add "$2" netns "$(ns "$1")" type veth peer name "$4" netns "$(ns "$3")"
  ip -n "$(ns "$1")" link set "$2" up
  ip -n "$(ns "$3")" link set "$4" up
}

addr_add() { ip -n "$(ns "$1")" addr add "$3" dev "$2"; }
default_via() { ip -n "$(ns "$1")" route add default via "$2"; }

# nftables ruleset of a NAT router. $1 kind, $2 public (wan) address.
nat_ruleset() {
  local kind="$1" wan="$2" nat_stmt learn="" pre="" sets="" i map=""
  case "$kind" in
    port-restricted|double|same-nat)
      nat_stmt='oifname "wan" masquerade' ;;
    symmetric)
      nat_stmt='oifname "wan" masquerade fully-random' ;;
    symmetric-seq)
      for ((i = 0; i < SEQ_COUNT; i++)); do
        map+="${map:+, }$i : $((SEQ_BASE + i))"
      done
      nat_stmt="oifname \"wan\" meta l4proto { tcp, udp } snat ip to $wan : numgen inc mod $SEQ_COUNT map { $map }
    oifname \"wan\" masquerade"
      ;;
    full-cone|restricted-cone)
      nat_stmt='oifname "wan" masquerade'
      sets="  map cone {
    type inet_service : ipv4_addr . inet_service
    flags dynamic,timeout
    timeout $MAP_TIMEOUT
  }"
      learn='    oifname "wan" meta l4proto udp ct direction original update @cone { udp sport : ct original ip saddr . ct original proto-src }
    oifname "wan" meta l4proto udp ct direction reply update @cone { udp sport : ct reply ip saddr . ct reply proto-src }'
      if [[ "$kind" == full-cone ]]; then
        pre='    iifname "wan" meta l4proto udp dnat ip to udp dport map @cone'
      else
        sets+="
  set seen {
    type inet_service . ipv4_addr
    flags dynamic,timeout
    timeout $MAP_TIMEOUT
  }"
        learn+='
    oifname "wan" meta l4proto udp update @seen { udp sport . ip daddr }'
        pre='    iifname "wan" meta l4proto udp udp dport . ip saddr @seen dnat ip to udp dport map @cone'
      fi
      ;;
    *) die "no NAT ruleset for kind '$kind'" ;;
  esac
  cat <<EOF
table ip natlab {
$sets
  chain input {
    type filter hook input priority filter; policy accept;
    # Like a home router: unsolicited TCP/UDP to the public address is dropped silently
    # (no ICMP port unreachable, and no conntrack entry that could clash with a mapping).
    iifname "wan" meta l4proto { tcp, udp } drop
  }
  chain forward {
    type filter hook forward priority filter; policy accept;
    iifname "wan" ct state established,related accept
    iifname "wan" ct status dnat accept
    iifname "wan" drop
  }
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
$pre
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    $nat_stmt
  }
  chain learn {
    type filter hook postrouting priority srcnat + 10; policy accept;
$learn
  }
}
EOF
}

loss_ruleset() {
  cat <<EOF
table inet natlab {
  chain forward {
    type filter hook forward priority filter; policy accept;
$( ((LOSS > 0)) && echo "    numgen random mod 100 < $LOSS counter drop" )
    counter accept
  }
}
EOF
}

apply_loss() {
  nsx inet nft delete table inet natlab >/dev/null 2>&1 || true
  loss_ruleset | nsx inet nft -f -
}

# make_router SITE_NS KIND WAN_ADDR/LEN GW LAN_ADDR/LEN
make_router() {
  local r="$1" kind="$2" wan="$3" gw="$4" lan="$5"
  addr_add "$r" wan "$wan"
  default_via "$r" "$gw"
  ip -n "$(ns "$r")" link add lan type bridge
  ip -n "$(ns "$r")" link set lan up
  addr_add "$r" lan "$lan"
  router_sysctls "$r"
  nat_ruleset "$kind" "${wan%/*}" | nsx "$r" nft -f -
}

# attach_host HOST ROUTER PORTNAME ADDR/LEN GW
attach_host() {
  local h="$1" r="$2" port="$3" a="$4" gw="$5"
  link "$h" eth0 "$r" "$port"
  ip -n "$(ns "$r")" link set "$port" master lan
  addr_add "$h" eth0 "$a"
  default_via "$h" "$gw"
}

# build_site X KIND: X is a or b.
build_site() {
  local x="$1" kind="$2" net n pub
  if [[ "$x" == a ]]; then net=192.0.2; n=1; else net=198.51.100; n=2; fi
  pub="$net.2"
  case "$kind" in
    none)
      mk_ns "$x"
      link inet "s$x" "$x" eth0
      addr_add "$x" eth0 "$pub/24"
      default_via "$x" "$net.1"
      ;;
    double)
      mk_ns "c$x"; mk_ns "r$x"; mk_ns "$x"
      link inet "s$x" "c$x" wan
      make_router "c$x" double "$pub/24" "$net.1" "100.64.$n.1/24"
      link "c$x" lan0 "r$x" wan
      ip -n "$(ns "c$x")" link set lan0 master lan
      make_router "r$x" double "100.64.$n.2/24" "100.64.$n.1" "10.0.$n.1/24"
      attach_host "$x" "r$x" lan0 "10.0.$n.2/24" "10.0.$n.1"
      ;;
    *)
      mk_ns "r$x"; mk_ns "$x"
      link inet "s$x" "r$x" wan
      make_router "r$x" "$kind" "$pub/24" "$net.1" "10.0.$n.1/24"
      attach_host "$x" "r$x" lan0 "10.0.$n.2/24" "10.0.$n.1"
      ;;
  esac
}

write_state() {
  local d; d="$(run_dir)"
  mkdir -p "$d"
  {
    echo "NATLAB_PREFIX=$PREFIX"
    echo "NATLAB_KIND_A=$1"
    echo "NATLAB_KIND_B=$2"
    echo "NATLAB_LOSS=$LOSS"
  } >"$d/state"
}

read_state() {
  local f; f="$(run_dir)/state"
  [[ -r "$f" ]] || die "lab '$PREFIX' is not up (no $f); run: natlab.sh up KIND_A KIND_B --prefix $PREFIX"
  # shellcheck disable=SC1090
  source "$f"
}

# ---------------------------------------------------------------- subcommands

valid_kind() { [[ " $NAT_KINDS " == *" $1 "* ]]; }

cmd_up() {
  local ka="" kb="" args=()
  while (($#)); do
    case "$1" in
      --loss) [[ $# -ge 2 ]] || die "--loss needs a value"; LOSS="$2"; shift 2 ;;
      --loss=*) LOSS="${1#*=}"; shift ;;
      --prefix) [[ $# -ge 2 ]] || die "--prefix needs a value"; PREFIX="$2"; shift 2 ;;
      --prefix=*) PREFIX="${1#*=}"; shift ;;
      -*) die "unknown option '$1'" ;;
      *) args+=("$1"); shift ;;
    esac
  done
  check_prefix
  if ! [[ "$LOSS" =~ ^[0-9]+$ ]] || ((LOSS > 100)); then
    die "--loss must be an integer percentage 0..100, not '$LOSS'"
  fi
  ka="${args[0]:-}"; kb="${args[1]:-}"
  [[ -n "$ka" ]] || die "usage: natlab.sh up KIND_A KIND_B [--loss PCT] [--prefix NAME] (kinds: $ALL_KINDS)"
  if [[ "$ka" == same-nat ]]; then
    kb="${kb:-port-restricted}"
    if [[ "$kb" == none || "$kb" == double ]] || ! valid_kind "$kb"; then
      die "same-nat takes the kind of the shared router: one of full-cone restricted-cone port-restricted symmetric symmetric-seq, not '$kb'"
    fi
  else
    [[ -n "$kb" ]] || die "usage: natlab.sh up KIND_A KIND_B (kinds: $ALL_KINDS)"
    valid_kind "$ka" || die "unknown kind '$ka' (kinds: $ALL_KINDS)"
    valid_kind "$kb" || die "unknown kind '$kb' (kinds: $ALL_KINDS; same-nat only as the first kind)"
  fi
  ((${#args[@]} <= 2)) || die "too many arguments: ${args[*]}"
  require_lab
  if [[ -n "$(lab_namespaces)" ]]; then
    die "lab '$PREFIX' already exists ($(lab_namespaces | tr '\n' ' ')); run: natlab.sh down --prefix $PREFIX"
  fi

  # Any failure below tears the half-built lab down again.
  trap 'echo "natlab: setup of lab $PREFIX failed; removing it" >&2; cmd_down >/dev/null 2>&1 || true' EXIT

  mk_ns inet; router_sysctls inet
  mk_ns pub
  link inet pub pub eth0
  addr_add inet pub "$PUB_NET.1/24"
  addr_add pub eth0 "$STUN1/24"
  addr_add pub eth0 "$STUN2/24"
  default_via pub "$PUB_NET.1"
  if [[ "$ka" == same-nat ]]; then
    mk_ns ra; mk_ns a; mk_ns b
    link inet sa ra wan
    addr_add inet sa 192.0.2.1/24
    make_router ra "$kb" 192.0.2.2/24 192.0.2.1 10.0.1.1/24
    attach_host a ra lan0 10.0.1.2/24 10.0.1.1
    attach_host b ra lan1 10.0.1.3/24 10.0.1.1
  else
    build_site a "$ka"
    addr_add inet sa 192.0.2.1/24
    build_site b "$kb"
    addr_add inet sb 198.51.100.1/24
  fi
  apply_loss
  write_state "$ka" "$kb"
  trap - EXIT
  echo "natlab: lab '$PREFIX' up: A=$ka B=$kb loss=${LOSS}% (namespaces: $(lab_namespaces | tr '\n' ' '))"
}

kill_ns_pids() {
  local n="$1" pids i
  pids="$(ip netns pids "$n" 2>/dev/null || true)"
  [[ -n "$pids" ]] || return 0
  # shellcheck disable=SC2086
  kill -TERM $pids 2>/dev/null || true
  for ((i = 0; i < 20; i++)); do
    pids="$(ip netns pids "$n" 2>/dev/null || true)"
    [[ -n "$pids" ]] || return 0
    sleep 0.1
  done
  # shellcheck disable=SC2086
  kill -KILL $pids 2>/dev/null || true
  sleep 0.1
}

cmd_down() {
  local n
  check_prefix
  [[ "$(id -u)" == 0 ]] || skip "natlab needs root; running as uid $(id -u)"
  for n in $(lab_namespaces); do
    kill_ns_pids "$n"
    ip netns del "$n" 2>/dev/null || true
  done
  rm -rf "$(run_dir)"
  [[ -z "$(lab_namespaces)" ]] || die "could not remove: $(lab_namespaces | tr '\n' ' ')"
}

site_ns_check() {
  local s="$1"
  [[ " $SITES " == *" $s "* ]] || die "unknown site '$s' (sites: $SITES)"
  ns_exists "$s" || die "site '$s' does not exist in lab '$PREFIX' (up: $(lab_namespaces | tr '\n' ' '))"
}

cmd_exec() {
  [[ $# -ge 2 ]] || die "usage: natlab.sh exec SITE CMD..."
  local s="$1"; shift
  site_ns_check "$s"
  exec ip netns exec "$(ns "$s")" "$@"
}

first_addr() {
  local s="$1" dev="$2"
  ip -n "$(ns "$s")" -4 -o addr show dev "$dev" | awk '{print $4}' | cut -d/ -f1 | head -n1
}

cmd_addr() {
  [[ $# -eq 1 ]] || die "usage: natlab.sh addr SITE"
  site_ns_check "$1"
  case "$1" in
    a|b) first_addr "$1" eth0 ;;
    pub) echo "$STUN1" ;;
    inet) echo "$PUB_NET.1" ;;
    *) first_addr "$1" wan ;;
  esac
}

public_addr() {
  case "$1" in
    a) echo 192.0.2.2 ;;
    b) if [[ "${NATLAB_KIND_A:-}" == same-nat ]]; then echo 192.0.2.2; else echo 198.51.100.2; fi ;;
    *) die "public: site must be a or b" ;;
  esac
}

cmd_info() {
  read_state
  echo "NATLAB_PREFIX=$PREFIX"
  echo "NATLAB_KIND_A=$NATLAB_KIND_A"
  echo "NATLAB_KIND_B=$NATLAB_KIND_B"
  echo "NATLAB_LOSS=$NATLAB_LOSS"
  echo "NATLAB_NS_A=$(ns a)"
  echo "NATLAB_NS_B=$(ns b)"
  echo "NATLAB_NS_PUB=$(ns pub)"
  echo "NATLAB_A_ADDR=$(cmd_addr a)"
  echo "NATLAB_B_ADDR=$(cmd_addr b)"
  echo "NATLAB_A_PUBLIC=$(public_addr a)"
  echo "NATLAB_B_PUBLIC=$(public_addr b)"
  echo "NATLAB_STUN1=$STUN1"
  echo "NATLAB_STUN2=$STUN2"
  echo "NATLAB_STUN_PORT=$STUN_PORT"
  echo "NATLAB_REDIS=$REDIS_ADDR"
  echo "NATLAB_REDIS_PORT=$REDIS_PORT"
}

cmd_loss() {
  if [[ $# -ne 1 ]] || ! [[ "$1" =~ ^[0-9]+$ ]] || (($1 > 100)); then
    die "usage: natlab.sh loss PCT (0..100)"
  fi
  read_state
  LOSS="$1"
  apply_loss
  sed -i "s/^NATLAB_LOSS=.*/NATLAB_LOSS=$LOSS/" "$(run_dir)/state"
}

# ---------------------------------------------------------------- faults (path changes)

# The router that maps a site's traffic to its public address (the outer one of a
# double NAT); none for kind "none".
site_router() {
  local x="$1" kind
  read_state
  if [[ "$x" == a ]]; then kind="$NATLAB_KIND_A"; else kind="$NATLAB_KIND_B"; fi
  case "$kind" in
    none) die "site $x has no NAT (kind none)" ;;
    same-nat) echo ra ;;
    double) echo "c$x" ;;
    symmetric-seq) die "rebind is not supported for symmetric-seq (its port map is fixed)" ;;
    *) echo "r$x" ;;
  esac
}

# Each rebind moves the NAT to the next block of REBIND_PORTS external ports, so the next
# mapping of every inside socket gets a port it never had.
REBIND_BASE=30000
REBIND_PORTS=1000

cmd_rebind() {
  [[ $# -eq 1 && "$1" =~ ^[ab]$ ]] || die "usage: natlab.sh rebind a|b"
  local r n_var n lo hi random=""
  read_state # here, not only in site_router's subshell: the counter is read below
  r="$(site_router "$1")"
  n_var="NATLAB_REBIND_$1"
  n=$(( ${!n_var:-0} + 1 ))
  lo=$((REBIND_BASE + (n % 30) * REBIND_PORTS)); hi=$((lo + REBIND_PORTS - 1))
  nsx "$r" nft list chain ip natlab postrouting | grep -q fully-random && random=" fully-random"
  nsx "$r" nft flush chain ip natlab postrouting
  nsx "$r" nft add rule ip natlab postrouting oifname wan meta l4proto udp masquerade to ":$lo-$hi"$random
  nsx "$r" nft add rule ip natlab postrouting oifname wan masquerade$random
  nsx "$r" nft flush map ip natlab cone >/dev/null 2>&1 || true
  nsx "$r" nft flush set ip natlab seen >/dev/null 2>&1 || true
  nsx "$r" conntrack -F >/dev/null 2>&1 || die "conntrack -F failed in $(ns "$r") (is the conntrack package installed?)"
  grep -q "^$n_var=" "$(run_dir)/state" && sed -i "s/^$n_var=.*/$n_var=$n/" "$(run_dir)/state" ||
    echo "$n_var=$n" >>"$(run_dir)/state"
  echo "rebind: $(ns "$r") maps UDP from ports $lo-$hi now, conntrack flushed"
}

# The site host's next address: 10.0.N.2 -> .3 -> .4 ... (public .2 -> .3 for kind none).
cmd_readdr() {
  [[ $# -eq 1 && "$1" =~ ^[ab]$ ]] || die "usage: natlab.sh readdr a|b"
  local x="$1" old new gw
  old="$(first_addr "$x" eth0)"
  [[ -n "$old" ]] || die "site $x has no address"
  new="${old%.*}.$(( ${old##*.} + 1 ))"
  gw="$(ip -n "$(ns "$x")" route show default | awk '{print $3; exit}')"
  # Deleting the only address drops the default route with it: add both back.
  ip -n "$(ns "$x")" addr del "$old/24" dev eth0
  ip -n "$(ns "$x")" addr add "$new/24" dev eth0
  ip -n "$(ns "$x")" route replace default via "$gw"
  echo "readdr: site $x moved from $old to $new"
}

blackhole_on() {
  local pub; pub="$(public_addr "$1")"
  nsx inet nft add table inet natlab_bh_"$1"
  nsx inet nft add chain inet natlab_bh_"$1" forward "{ type filter hook forward priority filter - 10; policy accept; }"
  nsx inet nft add rule inet natlab_bh_"$1" forward ip saddr "$pub" drop
  nsx inet nft add rule inet natlab_bh_"$1" forward ip daddr "$pub" drop
}
blackhole_off() { nsx inet nft delete table inet natlab_bh_"$1" >/dev/null 2>&1 || true; }

cmd_blackhole() {
  [[ $# -eq 2 && "$1" =~ ^[ab]$ ]] || die "usage: natlab.sh blackhole a|b on|off|SECONDS"
  read_state
  case "$2" in
    on) blackhole_off "$1"; blackhole_on "$1" ;;
    off) blackhole_off "$1" ;;
    *)
      [[ "$2" =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "blackhole: '$2' is not on, off or a number of seconds"
      blackhole_off "$1"; blackhole_on "$1"; sleep "$2"; blackhole_off "$1" ;;
  esac
}

# Conntrack's UDP timeouts are per namespace: they are the NAT's mapping lifetime.
cmd_udp_timeout() {
  [[ $# -eq 2 && "$1" =~ ^[ab]$ && "$2" =~ ^[0-9]+$ ]] || die "usage: natlab.sh udp-timeout a|b SECONDS"
  local r; r="$(site_router "$1")"
  nsx "$r" sysctl -qw net.netfilter.nf_conntrack_udp_timeout="$2" net.netfilter.nf_conntrack_udp_timeout_stream="$2"
}

# wait_udp SITE ADDR PORT: bounded wait until a UDP socket is bound there.
wait_listen() {
  local s="$1" proto="$2" addr="$3" port="$4" i
  for ((i = 0; i < 50; i++)); do
    if nsx "$s" ss -Hn "-l${proto}" "src $addr:$port" 2>/dev/null | grep -q .; then return 0; fi
    sleep 0.1
  done
  return 1
}

stop_pidfile() {
  local f="$1" pid i
  [[ -r "$f" ]] || return 0
  pid="$(cat "$f")"
  rm -f "$f"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 30; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}

cmd_stun_up() {
  read_state
  command -v turnserver >/dev/null 2>&1 || die "turnserver (coturn) is not installed"
  local d; d="$(run_dir)"
  [[ -r "$d/turnserver.pid" ]] && die "STUN server already running (pid $(cat "$d/turnserver.pid"))"
  # -n: no config file. coturn answers RFC 5780 (OTHER-ADDRESS, CHANGE-REQUEST) by itself
  # when it has two listening addresses; the alternate port is listening-port + 1.
  setsid ip netns exec "$(ns pub)" turnserver -n --stun-only --no-auth \
    --listening-ip "$STUN1" --listening-ip "$STUN2" --listening-port "$STUN_PORT" \
    --no-cli --no-tls --no-dtls --no-tcp --simple-log --log-file "$d/turnserver.log" \
    --no-stdout-log </dev/null >"$d/turnserver.out" 2>&1 &
  echo $! >"$d/turnserver.pid"
  if ! wait_listen pub u "$STUN2" $((STUN_PORT + 1)); then
    cat "$d/turnserver.out" >&2 || true
    stop_pidfile "$d/turnserver.pid"
    die "turnserver did not start listening on $STUN2:$((STUN_PORT + 1)) within 5 s (log: $d/turnserver.log)"
  fi
  echo "natlab: STUN (coturn, RFC 5780) on $STUN1:$STUN_PORT,$((STUN_PORT + 1)) and $STUN2:$STUN_PORT,$((STUN_PORT + 1))"
}

cmd_redis_up() {
  read_state
  command -v redis-server >/dev/null 2>&1 || die "redis-server is not installed"
  local d; d="$(run_dir)"
  [[ -r "$d/redis.pid" ]] && die "redis already running (pid $(cat "$d/redis.pid"))"
  setsid ip netns exec "$(ns pub)" redis-server --bind "$REDIS_ADDR" --port "$REDIS_PORT" \
    --protected-mode no --save '' --appendonly no --daemonize no --dir "$d" \
    --logfile "$d/redis.log" </dev/null >/dev/null 2>&1 &
  echo $! >"$d/redis.pid"
  if ! wait_listen pub t "$REDIS_ADDR" "$REDIS_PORT"; then
    stop_pidfile "$d/redis.pid"
    die "redis-server did not listen on $REDIS_ADDR:$REDIS_PORT within 5 s (log: $d/redis.log)"
  fi
  echo "natlab: redis on $REDIS_ADDR:$REDIS_PORT"
}

# ---------------------------------------------------------------- IPv6 (issue 11)
#
# `natlab.sh ipv6 SITE...` after `up`: the internet, pub and each named site (a, b) get
# IPv6 addresses from the documentation prefix 2001:db8::/32 (RFC 3849), routed, no NAT66:
#   pub segment  2001:db8:f0::/64  inet ::1, pub ::10 and ::11 (STUN, stun6-up)
#   site X wan   2001:db8:fN::/64  inet ::1, router rX ::2     (N: 1 for a, 2 for b)
#   site X lan   2001:db8:X::/64   router rX ::1, host X ::2
# Each site router gets a stateful firewall (table ip6 natlab6), as home routers treat
# IPv6: inbound from the wan only for flows the inside started (ct state
# established,related), the rest dropped and counted (counter "unsolicited"). The IPv4
# NAT of the site is untouched. Sites of kind none, double or same-nat are refused.
# Addresses are added with nodad (usable at once) and router advertisements are ignored.
V6_NET=2001:db8
STUN6_1=$V6_NET:f0::10
STUN6_2=$V6_NET:f0::11

# v6_on SITE IF...: the lab keeps IPv6 off; on for these interfaces, without duplicate
# address detection (the link-local address would be tentative, and neighbor discovery
# silent, for about a second).
v6_on() {
  local s=$1 i; shift
  for i in "$@"; do
    nsx "$s" sysctl -qw "net.ipv6.conf.$i.accept_dad=0" "net.ipv6.conf.$i.accept_ra=0"
    nsx "$s" sysctl -qw "net.ipv6.conf.$i.disable_ipv6=0"
  done
}
v6_addr() { ip -n "$(ns "$1")" -6 addr add "$3" dev "$2" nodad; }
v6_forwarding() { nsx "$1" sysctl -qw net.ipv6.conf.all.forwarding=1; }

v6_firewall() {
  cat <<EOF
table ip6 natlab6 {
  counter unsolicited { }
  chain input {
    type filter hook input priority filter; policy accept;
    iifname "wan" meta l4proto { tcp, udp } drop
  }
  chain forward {
    type filter hook forward priority filter; policy accept;
    iifname "wan" ct state established,related accept
    iifname "wan" counter name "unsolicited" drop
  }
}
EOF
}

v6_site() {
  local x=$1 n kind
  if [[ $x == a ]]; then n=1; kind=$NATLAB_KIND_A; else n=2; kind=$NATLAB_KIND_B; fi
  case "$kind" in
    none|double|same-nat) die "ipv6: site $x is of kind $kind; only sites with one router of their own" ;;
  esac
  v6_on inet "s$x"
  v6_addr inet "s$x" "$V6_NET:f$n::1/64"
  v6_on "r$x" wan lan
  v6_forwarding "r$x"
  v6_addr "r$x" wan "$V6_NET:f$n::2/64"
  v6_addr "r$x" lan "$V6_NET:$x::1/64"
  ip -n "$(ns "r$x")" -6 route add default via "$V6_NET:f$n::1"
  v6_firewall | nsx "r$x" nft -f -
  v6_on "$x" eth0
  v6_addr "$x" eth0 "$V6_NET:$x::2/64"
  ip -n "$(ns "$x")" -6 route add default via "$V6_NET:$x::1"
  ip -n "$(ns inet)" -6 route add "$V6_NET:$x::/64" via "$V6_NET:f$n::2"
  grep -q "^NATLAB_IPV6_$x=" "$(run_dir)/state" || echo "NATLAB_IPV6_$x=1" >>"$(run_dir)/state"
}

cmd_ipv6() {
  [[ $# -ge 1 ]] || die "usage: natlab.sh ipv6 a|b..."
  local x
  for x in "$@"; do [[ $x =~ ^[ab]$ ]] || die "ipv6: site must be a or b, not '$x'"; done
  read_state
  if [[ -z "${NATLAB_IPV6:-}" ]]; then
    v6_on inet pub
    v6_forwarding inet
    v6_addr inet pub "$V6_NET:f0::1/64"
    v6_on pub eth0
    v6_addr pub eth0 "$STUN6_1/64"
    v6_addr pub eth0 "$STUN6_2/64"
    ip -n "$(ns pub)" -6 route add default via "$V6_NET:f0::1"
    echo "NATLAB_IPV6=1" >>"$(run_dir)/state"
  fi
  for x in "$@"; do v6_site "$x"; done
  echo "natlab: IPv6 on pub ($STUN6_1) and site(s) $*: routed, stateful firewall on the router(s)"
}

cmd_addr6() {
  [[ $# -eq 1 ]] || die "usage: natlab.sh addr6 a|b|pub"
  case "$1" in
    a|b) local v="NATLAB_IPV6_$1"; [[ -n "${!v:-}" ]] || die "site $1 has no IPv6 (natlab.sh ipv6 $1)"
         echo "$V6_NET:$1::2" ;;
    pub) [[ -n "${NATLAB_IPV6:-}" ]] || die "no IPv6 in lab '$PREFIX' (natlab.sh ipv6 SITE...)"; echo "$STUN6_1" ;;
    *) die "addr6: site must be a, b or pub" ;;
  esac
}

cmd_stun6_up() {
  read_state
  [[ -n "${NATLAB_IPV6:-}" ]] || die "no IPv6 in lab '$PREFIX' (natlab.sh ipv6 SITE... first)"
  command -v turnserver >/dev/null 2>&1 || die "turnserver (coturn) is not installed"
  local d; d="$(run_dir)"
  [[ -r "$d/turnserver6.pid" ]] && die "IPv6 STUN server already running (pid $(cat "$d/turnserver6.pid"))"
  setsid ip netns exec "$(ns pub)" turnserver -n --stun-only --no-auth \
    --listening-ip "$STUN6_1" --listening-ip "$STUN6_2" --listening-port "$STUN_PORT" \
    --no-cli --no-tls --no-dtls --no-tcp --simple-log --log-file "$d/turnserver6.log" \
    --pidfile "$d/turnserver6.coturn.pid" --no-stdout-log </dev/null >"$d/turnserver6.out" 2>&1 &
  echo $! >"$d/turnserver6.pid"
  if ! wait_listen pub u "[$STUN6_2]" $((STUN_PORT + 1)); then
    cat "$d/turnserver6.out" >&2 || true
    stop_pidfile "$d/turnserver6.pid"
    die "turnserver did not start listening on [$STUN6_2]:$((STUN_PORT + 1)) within 5 s (log: $d/turnserver6.log)"
  fi
  echo "natlab: STUN (coturn, RFC 5780) on [$STUN6_1]:$STUN_PORT,$((STUN_PORT + 1)) and [$STUN6_2]:$STUN_PORT,$((STUN_PORT + 1))"
}

cmd_status() {
  local n
  check_prefix
  if [[ -r "$(run_dir)/state" ]]; then cat "$(run_dir)/state"; fi
  for n in $(lab_namespaces); do
    echo "== $n"
    ip -n "$n" -4 -br addr show | grep -v '^lo' || true
    { ip netns exec "$n" nft list ruleset 2>/dev/null || true; } | sed -e '/^\s*$/d' -e 's/^/   /' | head -n 60
  done
}

cmd_kinds() {
  cat <<EOF
none             host directly on the internet (public address, no NAT)
full-cone        endpoint-independent mapping and filtering (nft map + DNAT)
restricted-cone  endpoint-independent mapping, address-dependent filtering (nft map + set + DNAT)
port-restricted  endpoint-independent mapping, address-and-port-dependent filtering (masquerade)
symmetric        random port per destination (masquerade fully-random)
symmetric-seq    sequential port per destination, +1 per new mapping (snat numgen inc via map)
double           port-restricted home router behind a port-restricted carrier-grade NAT
same-nat         (first kind only) hosts a and b behind one router: up same-nat [KIND]
EOF
}

main() {
  local cmd="${1:-}"
  [[ -n "$cmd" ]] || { usage; exit 2; }
  shift
  # Global --prefix before the subcommand's positional arguments.
  while [[ "${1:-}" == --prefix || "${1:-}" == --prefix=* ]]; do
    if [[ "$1" == --prefix ]]; then [[ $# -ge 2 ]] || die "--prefix needs a value"; PREFIX="$2"; shift 2
    else PREFIX="${1#*=}"; shift; fi
  done
  case "$cmd" in
    up) cmd_up "$@" ;;
    down)
      while (($#)); do
        case "$1" in
          --prefix) [[ $# -ge 2 ]] || die "--prefix needs a value"; PREFIX="$2"; shift 2 ;;
          --prefix=*) PREFIX="${1#*=}"; shift ;;
          *) die "down: unexpected argument '$1'" ;;
        esac
      done
      require_lab; cmd_down ;;
    exec) check_prefix; require_lab; cmd_exec "$@" ;;
    addr) check_prefix; require_lab; read_state; cmd_addr "$@" ;;
    public) check_prefix; read_state; [[ $# -eq 1 ]] || die "usage: natlab.sh public a|b"; public_addr "$1" ;;
    info) check_prefix; cmd_info ;;
    loss) check_prefix; require_lab; cmd_loss "$@" ;;
    stun-up) check_prefix; require_lab; cmd_stun_up ;;
    stun-down) check_prefix; stop_pidfile "$(run_dir)/turnserver.pid"; stop_pidfile "$(run_dir)/turnserver6.pid" ;;
    ipv6) check_prefix; require_lab; cmd_ipv6 "$@" ;;
    addr6) check_prefix; read_state; cmd_addr6 "$@" ;;
    stun6-up) check_prefix; require_lab; cmd_stun6_up ;;
    redis-up) check_prefix; require_lab; cmd_redis_up ;;
    redis-down) check_prefix; stop_pidfile "$(run_dir)/redis.pid" ;;
    status) check_prefix; cmd_status ;;
    rebind) check_prefix; require_lab; cmd_rebind "$@" ;;
    readdr) check_prefix; require_lab; read_state; cmd_readdr "$@" ;;
    blackhole) check_prefix; require_lab; cmd_blackhole "$@" ;;
    udp-timeout) check_prefix; require_lab; cmd_udp_timeout "$@" ;;
    kinds) cmd_kinds ;;
    check) exec "$HERE/test_natlab.sh" "$@" ;;
    -h|--help|help) usage ;;
    *) die "unknown command '$cmd' (try: natlab.sh help)" ;;
  esac
}

main "$@"
