#!/usr/bin/env bash
# A session captured with tshark on loopback decrypts with the key log the
# library writes (SSLKEYLOGFILE, GnuTLS), and --qlog leaves one qlog trace
# per side. Needs tshark and capture rights (root); exits 77 otherwise.
#   test_capture.sh QUIC_PORTAL_BINARY
set -uo pipefail
qp=${1:?usage: test_capture.sh QUIC_PORTAL_BINARY}
command -v tshark >/dev/null || { echo "SKIP: tshark not installed"; exit 77; }
[ "$(id -u)" -eq 0 ] || { echo "SKIP: capturing on lo needs root"; exit 77; }
work=$(mktemp -d)
cleanup() { kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir "$work/qlog"

timeout 60 tshark -i lo -f "udp port $port" -w "$work/cap.pcapng" 2>"$work/tshark.err" &
tspid=$!
for _ in $(seq 100); do grep -q "Capturing on" "$work/tshark.err" && break; sleep 0.1; done
grep -q "Capturing on" "$work/tshark.err" || { echo "tshark did not start:"; cat "$work/tshark.err"; exit 1; }

export SSLKEYLOGFILE="$work/keys.txt"
# The pipe half-closes: the server's empty stdin ends only its direction.
timeout 30 "$qp" serve --listen "127.0.0.1:$port" --qlog "$work/qlog" \
  </dev/null >"$work/got.txt" &
srv=$!
sleep 0.3
printf 'secret message for the capture\n' |
  timeout 30 "$qp" connect --to "127.0.0.1:$port" --qlog "$work/qlog" >/dev/null
wait $srv
sleep 0.5
kill -INT $tspid; wait $tspid 2>/dev/null

fail=0
grep -q "secret message" "$work/got.txt" || { echo "FAIL: the message did not arrive"; fail=1; }
grep -q CLIENT_HANDSHAKE_TRAFFIC_SECRET "$work/keys.txt" || { echo "FAIL: no key log"; fail=1; }
# Without the keys the payload is opaque; with them tshark sees the stream.
plain=$(tshark -r "$work/cap.pcapng" -d "udp.port==$port,quic" -Y quic.stream_data 2>/dev/null | wc -l)
decrypted=$(tshark -r "$work/cap.pcapng" -o "tls.keylog_file:$work/keys.txt" -d "udp.port==$port,quic" \
  -Y quic.stream_data -T fields -e quic.stream_data 2>/dev/null | tr -d ':\n')
want=$(printf 'secret message for the capture' | od -An -tx1 | tr -d ' \n')
[ "$plain" -eq 0 ] || { echo "FAIL: stream data readable without keys"; fail=1; }
[[ $decrypted == *"$want"* ]] || { echo "FAIL: decrypted capture lacks the message (got ${decrypted:0:80}...)"; fail=1; }
nq=$(ls "$work/qlog" | wc -l)
[ "$nq" -eq 2 ] || { echo "FAIL: expected 2 qlog files, found $nq"; fail=1; }
for f in "$work"/qlog/*; do
  grep -q '"qlog_version"' "$f" || { echo "FAIL: $f is not qlog"; fail=1; }
done
[ $fail -eq 0 ] && echo "capture: decrypted with the key log; $nq qlog traces"
exit $fail
