# Sourced by the lab's tests and benchmarks: skip (exit 77, the ctest skip
# code) with a clear reason unless this machine can build the lab.
lab_skip_unless_ready() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "SKIP: the NAT lab needs root (network namespaces and nftables)"; exit 77
  fi
  if ! ip netns list >/dev/null 2>&1 || ! command -v nft >/dev/null; then
    echo "SKIP: ip netns or nft unavailable"; exit 77
  fi
  local tool
  for tool in turnserver redis-server; do
    command -v $tool >/dev/null || { echo "SKIP: $tool not installed"; exit 77; }
  done
}

# The lab's servers in pub (natlab.sh stun-up, redis-up; lab_start_turn).
LAB_STUN=203.0.113.10:3478
LAB_REDIS=redis://203.0.113.10:6379/0
LAB_TURN_IP=203.0.113.10

# lab_start_turn PORT ARGS...: coturn as a TURN server in the lab's pub
# namespace on 203.0.113.10:PORT (relayed ports 40000-49999, UDP only, log
# in /run/natlab/$NATLAB_PREFIX/turnPORT.log), with ARGS (credentials),
# waited for (at most 5 s). Its pid goes to LAB_TURN_PID (also on failure:
# the caller stops it).
lab_start_turn() {
  local port=$1 i dir=/run/natlab/$NATLAB_PREFIX; shift
  setsid ip netns exec "$NATLAB_PREFIX-pub" turnserver -n --realm R \
    --listening-ip $LAB_TURN_IP --listening-port "$port" --relay-ip $LAB_TURN_IP \
    --min-port 40000 --max-port 49999 --no-tls --no-dtls --no-cli --no-tcp-relay \
    --simple-log --log-file "$dir/turn$port.log" --no-stdout-log "$@" \
    </dev/null >"$dir/turn$port.out" 2>&1 &
  LAB_TURN_PID=$!
  for ((i = 0; i < 50; i++)); do
    ip netns exec "$NATLAB_PREFIX-pub" ss -Hlun "src $LAB_TURN_IP:$port" | grep -q . && return 0
    sleep 0.1
  done
  echo "turnserver did not listen on $LAB_TURN_IP:$port"; cat "$dir/turn$port.out"
  return 1
}
