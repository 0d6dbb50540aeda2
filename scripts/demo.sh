#!/usr/bin/env bash
# demo.sh BUILD_DIR [DEMO OPTIONS]: run the quic-portal demo from a build (`make demo` calls
# this after building): an embedded STUN server, a rendezvous folder in
# /tmp, and a server and a client process that traverse, verify each other,
# exchange messages and run a short ping-pong benchmark, step by step.
set -euo pipefail

BUILD=${1:-build}
shift || true # the rest goes to the demo, e.g. --log-level debug
BIN="$BUILD/tools/quic-portal"
if [ ! -x "$BIN" ]; then
  echo "demo.sh: $BIN not found: build first (make build, or cmake --build $BUILD)" >&2
  exit 2
fi
exec "$BIN" demo "$@"
