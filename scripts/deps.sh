#!/usr/bin/env bash
# Install the Debian packages quic-portal needs, only those missing.
# Runs apt-get as root (directly, or through sudo when available).
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config
  libngtcp2-dev libngtcp2-crypto-gnutls-dev libgnutls28-dev libhiredis-dev
  libcmocka-dev python3-dev python3-pytest
  redis-server coturn nftables iproute2 tshark
  clang libclang-rt-14-dev valgrind
)

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
