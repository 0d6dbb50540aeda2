#!/usr/bin/env bash
# `make install` delivers a usable library: install the build into a
# temporary prefix, compile examples/echo.c against it with pkg-config
# (shared) and against the static archive, and run an echo with each.
set -euo pipefail
build=${1:?usage: test_install.sh BUILD_DIR}
root=$(cd "$(dirname "$0")/../.." && pwd)
prefix=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
for f in include/quic_portal.h lib/libquicportal.a lib/libquicportal.so lib/pkgconfig/quicportal.pc; do
  [ -e "$prefix/$f" ] || { echo "missing after install: $f"; exit 1; }
done
# A sanitizer build installs instrumented objects: link their runtime too.
san=()
grep -q '^QP_SANITIZE:BOOL=ON' "$build/CMakeCache.txt" && san=(-fsanitize=address,undefined)
cc "${san[@]}" -Wall -Wextra -Werror "$root/examples/echo.c" -o "$prefix/echo_shared" \
  $(pkg-config --cflags --libs quicportal) -Wl,-rpath,"$prefix/lib"
cc "${san[@]}" -Wall -Wextra -Werror "$root/examples/echo.c" -o "$prefix/echo_static" \
  $(pkg-config --cflags quicportal) "$prefix/lib/libquicportal.a" \
  $(pkg-config --libs $(pkg-config --print-requires-private quicportal)) -lnatpmp -lpthread -lm
# The SONAME follows the header's major.minor (the ABI rule in quic_portal.h).
major=$(awk '/#define QP_VERSION_MAJOR/ {print $3}' "$prefix/include/quic_portal.h")
minor=$(awk '/#define QP_VERSION_MINOR/ {print $3}' "$prefix/include/quic_portal.h")
soname=$(objdump -p "$prefix/lib/libquicportal.so" | awk '/SONAME/ {print $2}')
[ "$soname" = "libquicportal.so.$major.$minor" ] ||
  { echo "SONAME $soname, but the header says version $major.$minor"; exit 1; }
# Only qp_ symbols leave the shared library.
leaked=$(nm -D --defined-only "$prefix/lib/libquicportal.so" | awk '{print $3}' | grep -v '^qp_' || true)
[ -z "$leaked" ] || { echo "internal symbols exported: $leaked"; exit 1; }
for kind in shared static; do
  port=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  timeout 20 "$prefix/echo_$kind" server "$port" & srv=$!
  got=""
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    got=$(timeout 10 "$prefix/echo_$kind" client 127.0.0.1 "$port" "hello $kind" 2>/dev/null) && break
    sleep 0.2
  done
  wait $srv
  [ "$got" = "hello $kind" ] || { echo "echo_$kind answered '$got'"; exit 1; }
  echo "echo_$kind: ok"
done
