#!/usr/bin/env bash
# Install the Debian packages quic-portal needs, only those missing:
#   scripts/deps.sh        what the build needs
#   scripts/deps.sh test   that and what the test suite needs
# Runs apt-get as root (directly, or through sudo when available).
set -euo pipefail

# What `make` needs to build the library, the CLI and the Python extension.
BUILD_PACKAGES=(
  build-essential cmake pkg-config
  libngtcp2-dev libngtcp2-crypto-gnutls-dev libgnutls28-dev nettle-dev libhiredis-dev
  python3-dev libminiupnpc-dev libnatpmp-dev
)
# What `make test` needs besides: the test framework, the real servers the
# tests talk to (Redis, coturn, miniupnpd), the NAT lab's tools, the
# sanitizer and ThreadSanitizer runtimes, the capture test's tshark, and the
# Python package's tests (pytest, venv + pip for the install test).
# ethtool, ping and iperf3: the path lab (make bench-path).
TEST_PACKAGES=(
  libcmocka-dev python3-pytest python3-venv python3-pip python3-setuptools python3-wheel
  redis-server coturn nftables iproute2 conntrack tshark ethtool iputils-ping iperf3
  miniupnpd-nftables
  clang libclang-rt-14-dev valgrind
)

PACKAGES=("${BUILD_PACKAGES[@]}")
if [ "${1:-build}" = test ]; then
  PACKAGES+=("${TEST_PACKAGES[@]}")
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo)
else
  echo "deps: missing packages (${missing[*]}) and not root; run 'make deps' as root" >&2
  exit 1
fi
# Packages such as coturn and redis-server start system daemons on install;
# the tests start their own copies, so keep the system ones from starting.
export DEBIAN_FRONTEND=noninteractive
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null
  "${SUDO[@]}" chmod +x "$policy"
  made_policy=1
fi
trap '[ $made_policy -eq 1 ] && "${SUDO[@]}" rm -f "$policy"' EXIT
"${SUDO[@]}" apt-get update -q
"${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
