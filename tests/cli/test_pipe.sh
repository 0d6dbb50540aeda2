#!/usr/bin/env bash
# test_pipe.sh QUIC_PORTAL_BINARY: the pipe mode of serve/connect on
# loopback, half-close and exit codes (docs/cli.md, "Pipe mode").
#
#   - which side has input: none / server / client / both, for 0 B, 1 B and
#     QP_CLI_PIPE_MIB MiB (default 50): both outputs byte-exact (cmp), both
#     exits 0;
#   - the reader stops early (`connect | head -c 10`): the server, whose
#     bytes were not consumed, exits 1 naming how many; connect exits 1;
#   - a peer killed with SIGKILL: the other side exits 1 (idle timeout).
#
# Run by test_cli.sh (ctest "cli"), or alone. Exit 0 pass, 1 fail, 77 skip.
set -u

BIN=${1:-}
NEED="timeout cmp head"
NAME=qp-cli-pipe
# shellcheck source=cli_lib.sh
. "$(dirname "$0")/cli_lib.sh"

BIG_MIB=${QP_CLI_PIPE_MIB:-50}

# Inputs: none (an empty file), 0 B (the same), 1 B, the big one; the two
# sides get different bytes so that a mix-up shows.
: >"$TMP/none"
printf 's' >"$TMP/s1"
printf 'c' >"$TMP/c1"
head -c $((BIG_MIB * 1048576)) /dev/urandom >"$TMP/sbig"
head -c $((BIG_MIB * 1048576)) /dev/urandom >"$TMP/cbig"

# pipe_case LABEL SERVER_INPUT CLIENT_INPUT
pipe_case() {
  local label=$1 sin=$2 cin=$3 P
  P=$(free_udp_port)
  "$BIN" serve --listen "127.0.0.1:$P" <"$sin" >"$TMP/s.got" 2>"$TMP/s.err" &
  local spid=$!
  PIDS+=("$spid")
  wait_for "$TMP/s.err" "waiting for a client"
  timeout 120 "$BIN" connect --to "127.0.0.1:$P" <"$cin" >"$TMP/c.got" 2>"$TMP/c.err"
  local crc=$?
  wait_pid "$spid" 60
  local src=$?
  if [ $crc -eq 0 ] && [ $src -eq 0 ] && cmp -s "$sin" "$TMP/c.got" &&
    cmp -s "$cin" "$TMP/s.got"; then
    pass "pipe $label: both exit 0, both outputs byte-exact"
  else
    fail "pipe $label: connect $crc, serve $src (want 0 0), sizes s.got $(wc -c <"$TMP/s.got") c.got $(wc -c <"$TMP/c.got")"
    show "$TMP/s.err" "$TMP/c.err"
  fi
}

for size in 0 1 big; do
  case $size in
  0) s="$TMP/none" c="$TMP/none" ;;
  1) s="$TMP/s1" c="$TMP/c1" ;;
  big) s="$TMP/sbig" c="$TMP/cbig" ;;
  esac
  n="$TMP/none"
  [ "$size" = big ] && size="${BIG_MIB} MiB" || size="$size B"
  pipe_case "no input on either side ($size)" "$n" "$n"
  pipe_case "server has input ($size)" "$s" "$n"
  pipe_case "client has input ($size)" "$n" "$c"
  pipe_case "both have input ($size)" "$s" "$c"
done

# ---------------------------------------------------------------------------
# The reader stops: head takes 10 bytes and exits; connect's next write
# fails with EPIPE and it tells the server.
P=$(free_udp_port)
"$BIN" serve --listen "127.0.0.1:$P" <"$TMP/sbig" >/dev/null 2>"$TMP/h.s.err" &
spid=$!
PIDS+=("$spid")
wait_for "$TMP/h.s.err" "waiting for a client"
timeout 60 "$BIN" connect --to "127.0.0.1:$P" </dev/null 2>"$TMP/h.c.err" | head -c 10 >"$TMP/h.got"
crc=${PIPESTATUS[0]}
wait_pid "$spid" 30
src=$?
if [ $crc -eq 1 ] && [ $src -eq 1 ] && [ "$(wc -c <"$TMP/h.got")" -eq 10 ] &&
  grep -q "not consumed" "$TMP/h.s.err" && grep -q "writing stdout" "$TMP/h.c.err"; then
  pass "connect | head -c 10: connect 1 (stdout closed), serve 1 naming the bytes not consumed"
  sed -n 's/^/    serve said: /p' "$TMP/h.s.err" | grep "not consumed"
else
  fail "connect | head -c 10: connect $crc, serve $src (want 1 1)"
  show "$TMP/h.s.err" "$TMP/h.c.err"
fi

# ---------------------------------------------------------------------------
# A peer killed with SIGKILL: the other side ends on the idle timeout, exit 1.
mkfifo "$TMP/hold"
exec 7<>"$TMP/hold" # a stdin that never ends
for victim in client server; do
  P=$(free_udp_port)
  "$BIN" serve --listen "127.0.0.1:$P" --idle-timeout 2 <"$TMP/hold" >/dev/null 2>"$TMP/k.s.err" &
  spid=$!
  PIDS+=("$spid")
  wait_for "$TMP/k.s.err" "waiting for a client"
  "$BIN" connect --to "127.0.0.1:$P" --idle-timeout 2 <"$TMP/hold" >/dev/null 2>"$TMP/k.c.err" &
  cpid=$!
  PIDS+=("$cpid")
  wait_for "$TMP/k.s.err" "client connected"
  wait_for "$TMP/k.c.err" "connected in"
  if [ $victim = client ]; then
    kill -KILL "$cpid"
    wait_pid "$spid" 20
    rc=$?
    other=serve
  else
    kill -KILL "$spid"
    wait_pid "$cpid" 20
    rc=$?
    other=connect
  fi
  if [ $rc -eq 1 ]; then
    pass "$victim killed with SIGKILL: $other exits 1"
  else
    fail "$victim killed with SIGKILL: $other exit $rc (want 1)"
    show "$TMP/k.s.err" "$TMP/k.c.err"
  fi
  wait_pid "$cpid" 5 >/dev/null
  wait_pid "$spid" 5 >/dev/null
done
exec 7>&-

if [ $FAILS -ne 0 ]; then
  echo "test_pipe: $FAILS check(s) FAILED"
  exit 1
fi
echo "test_pipe: all checks passed"
exit 0
