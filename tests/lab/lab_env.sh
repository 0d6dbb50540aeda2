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
