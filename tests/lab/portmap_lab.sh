# Sourced by tests/lab/test_portmap.sh and bench/nat_matrix.sh: miniupnpd
# (Debian's miniupnpd-nftables) on site A's NAT router of natlab.sh, with
# its own configuration and nftables table (docs/internals/portmap.md, "The
# lab"). Needs NATLAB_PREFIX; sets NS_R, NS_I, RUN, EXT_IP.
NS_R=$NATLAB_PREFIX-ra NS_I=$NATLAB_PREFIX-inet
RUN=${NATLAB_RUN_DIR:-/run/natlab}/$NATLAB_PREFIX
# miniupnpd refuses to map on a "reserved" external address, and the lab's
# public ranges are the RFC 5737 documentation ones, so the router gets one
# more address that miniupnpd takes as public. Traffic to it never leaves
# the lab's namespaces (inet routes it to the router).
EXT_IP=11.0.1.2
PM_UPNP=${PM_UPNP:-yes}     # enable_upnp
PM_NATPMP=${PM_NATPMP:-yes} # enable_natpmp (NAT-PMP and PCP)

# The tables miniupnpd fills (what Debian's nft_init.sh sets up for the
# system daemon), with policy accept: the lab's own table decides the rest.
pm_tables() {
  cat <<'EOF'
table inet pmlab {
  chain forward { type filter hook forward priority filter; policy accept; jump miniupnpd; }
  chain miniupnpd { }
  chain prerouting { type nat hook prerouting priority dstnat; policy accept; jump prerouting_miniupnpd; }
  chain postrouting { type nat hook postrouting priority srcnat; policy accept; jump postrouting_miniupnpd; }
  chain prerouting_miniupnpd { }
  chain postrouting_miniupnpd { }
}
EOF
}

# Its own configuration: never /etc/miniupnpd, never the system daemon.
pm_conf() {
  cat <<EOF
ext_ifname=wan
ext_ip=$EXT_IP
listening_ip=lan
enable_upnp=$PM_UPNP
enable_natpmp=$PM_NATPMP
secure_mode=yes
min_lifetime=2
max_lifetime=86400
upnp_table_name=pmlab
upnp_nat_table_name=pmlab
upnp_forward_chain=miniupnpd
upnp_nat_chain=prerouting_miniupnpd
upnp_nat_postrouting_chain=postrouting_miniupnpd
lease_file=$RUN/miniupnpd.leases
uuid=3d3cec3a-8cf0-11e0-98ee-001a6bd2d07d
allow 1024-65535 10.0.1.0/24 1024-65535
deny 0-65535 0.0.0.0/0 0-65535
EOF
}

start_miniupnpd() {
  pm_conf >"$RUN/miniupnpd.conf"
  setsid ip netns exec "$NS_R" miniupnpd -f "$RUN/miniupnpd.conf" -d -P "$RUN/miniupnpd.pid" \
    </dev/null >"$RUN/miniupnpd.log" 2>&1 &
  echo $! >"$RUN/miniupnpd.spid"
  local i
  for ((i = 0; i < 50; i++)); do
    # NAT-PMP and PCP listen on 5351, UPnP's SSDP on 1900.
    ip netns exec "$NS_R" ss -Hlun "sport = :$([ "$PM_NATPMP" = yes ] && echo 5351 || echo 1900)" |
      grep -q . && return 0
    sleep 0.1
  done
  cat "$RUN/miniupnpd.log"
  return 1
}

stop_miniupnpd() {
  local f pid i
  f="$RUN/miniupnpd.spid"
  [ -r "$f" ] || return 0
  pid=$(cat "$f"); rm -f "$f"
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 30; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null
}

# pm_router_up: the extra public address, miniupnpd's table, miniupnpd
# itself, in the router of the lab built just before.
pm_router_up() {
  mkdir -p "$RUN"
  ip -n "$NS_R" addr add "$EXT_IP/32" dev wan &&
    ip -n "$NS_I" route add "$EXT_IP/32" via 192.0.2.2 &&
    pm_tables | ip netns exec "$NS_R" nft -f - && start_miniupnpd
}
