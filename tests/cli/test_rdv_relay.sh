#!/usr/bin/env bash
# test_rdv_relay.sh: the CLI's sealed rendezvous, message size limit and
# TURN relay, for real on 127.0.0.1 (ctest "cli_rdv_relay").
#   - serve through a dir: store without --secret makes up a secret, prints
#     the connect command with it (also with --quiet); run as printed, the
#     pipe works; the store shows neither the session name nor addresses
#   - different secrets: both sides fail within --wait-timeout, each saying
#     the peer must give the same --secret
#   - --max-message-size: a longer message ends the receiver with
#     QP_ERR_PROTOCOL naming both numbers, the sender with the peer's reason
#   - usage errors of the new options exit 2
#   - with coturn (Debian package coturn; skipped without it):
#     turn-check works, names 401 for a wrong password, exits 2 for a bad
#     spec; serve/connect with --relay only connect through the relay and
#     say so ("path: relayed via our TURN server ..."), --relay auto stays
#     direct; the same with coturn's REST shared secret (turn-check
#     --shared-secret, --turn-secret)
# Exit 0 pass, 1 fail, 77 skip.
set -u

BIN=${1:-}
NEED="timeout cmp grep"
NAME=qp-cli-rdv
# shellcheck source=cli_lib.sh
. "$(dirname "$0")/cli_lib.sh"

CODE_RE='[a-z2-7]{4}(-[a-z2-7]{4}){7}'
head -c 3000 /dev/urandom >"$TMP/in.bin"

# ---------------------------------------------------------------------------
say "usage errors of the new options exit 2"
usage_case() { # usage_case EXPECTED ARGS...
  local want=$1
  shift
  "$BIN" "$@" </dev/null >/dev/null 2>"$TMP/u.err"
  local rc=$?
  if [ $rc -eq 2 ] && grep -qF -- "$want" "$TMP/u.err"; then
    pass "$* -> 2: $want"
  else
    fail "$* -> $rc, expected 2 with '$want'"
    show "$TMP/u.err"
  fi
}
usage_case "--secret must be 8 to 256 bytes" serve --rendezvous mem:x --secret short
usage_case "--secret and --no-secret contradict" serve --rendezvous mem:x --secret 12345678 --no-secret
usage_case "--secret applies only with --rendezvous" connect --to 127.0.0.1:1 --secret 12345678
usage_case "invalid value 'sometimes' for --relay" connect --rendezvous mem:x --relay sometimes
usage_case "--relay only needs a relay" connect --rendezvous mem:x --relay only
usage_case "invalid value for --turn: expected USER:PASS@HOST[:PORT]" serve --rendezvous mem:x --turn u@h
usage_case "invalid value for --turn-secret" serve --rendezvous mem:x --turn-secret @h
usage_case "invalid value '0' for --max-message-size" serve --listen 1 --max-message-size 0
usage_case "invalid value '-1' for --reconnect-timeout" connect --rendezvous mem:x --reconnect-timeout -1
usage_case "missing USER:PASS@HOST[:PORT]" turn-check

# ---------------------------------------------------------------------------
say "serve without --secret makes one up and prints the connect command with it"
mkdir -p "$TMP/rdv1"
"$BIN" serve --rendezvous "dir:$TMP/rdv1" --session "secret session" --bind 127.0.0.1 --quiet \
  <"$TMP/in.bin" >"$TMP/s1.out" 2>"$TMP/s1.err" &
spid=$!
PIDS+=("$spid")
wait_for "$TMP/s1.err" "on the other side, run:"
line=$(grep -A1 "on the other side, run:" "$TMP/s1.err" | tail -1 | sed -e "s|^  quic-portal |'$BIN' |")
# The server's record is in the store now: it must not show the session.
wait_nonempty "$(find "$TMP/rdv1" -type f | head -1)" 5
nrec=$(find "$TMP/rdv1" -type f | wc -l)
leak=$(grep -rlF -e "secret session" -e "127.0.0.1" "$TMP/rdv1" 2>/dev/null; find "$TMP/rdv1" -name '*secret*')
timeout 30 bash -c "$line --bind 127.0.0.1" <"$TMP/in.bin" >"$TMP/c1.out" 2>"$TMP/c1.err"
crc=$?
wait_pid "$spid" 30
src=$?
if [ $crc -eq 0 ] && [ $src -eq 0 ] && cmp -s "$TMP/in.bin" "$TMP/c1.out" &&
  cmp -s "$TMP/in.bin" "$TMP/s1.out" && [[ "$line" =~ --secret\ $CODE_RE$ ]] &&
  [ -z "$leak" ] && [ "$nrec" -gt 0 ]; then
  pass "generated secret printed (even with --quiet), connect as printed works, store shows no session or address"
else
  fail "generated secret: connect $crc, serve $src, line: $line, leaks: $leak"
  show "$TMP/s1.err" "$TMP/c1.err"
fi

# ---------------------------------------------------------------------------
say "different secrets: both sides fail, each naming the secret"
mkdir -p "$TMP/rdv2"
"$BIN" serve --rendezvous "dir:$TMP/rdv2" --bind 127.0.0.1 --wait-timeout 2 \
  --secret "the right secret" </dev/null >/dev/null 2>"$TMP/s2.err" &
spid=$!
PIDS+=("$spid")
timeout 30 "$BIN" connect --rendezvous "dir:$TMP/rdv2" --bind 127.0.0.1 --wait-timeout 2 \
  --secret "another secret" </dev/null >/dev/null 2>"$TMP/c2.err"
crc=$?
wait_pid "$spid" 30
src=$?
want="the peer must give the same --secret"
if [ $crc -eq 1 ] && [ $src -eq 1 ] && grep -qF "$want" "$TMP/s2.err" &&
  grep -qF "$want" "$TMP/c2.err" && grep -q QP_ERR_TIMEOUT "$TMP/c2.err"; then
  pass "wrong secret: exit 1 on both sides with '$want'"
else
  fail "wrong secret: connect $crc, serve $src"
  show "$TMP/s2.err" "$TMP/c2.err"
fi

# ---------------------------------------------------------------------------
say "--max-message-size: a longer message closes the connection"
P=$(free_udp_port)
"$BIN" serve --listen "127.0.0.1:$P" --max-message-size 1000 </dev/null \
  >"$TMP/s3.out" 2>"$TMP/s3.err" &
spid=$!
PIDS+=("$spid")
wait_for "$TMP/s3.err" "waiting for a client"
# The message goes out only once listen returned: a connection that fails
# before that counts as a refused client, and listen would wait on.
{
  wait_for "$TMP/s3.err" "a client connected" 20
  cat "$TMP/in.bin"
} | timeout 30 "$BIN" connect --to "127.0.0.1:$P" --quiet >/dev/null 2>"$TMP/c3.err"
crc=$?
wait_pid "$spid" 30
src=$?
if [ $crc -eq 1 ] && [ $src -eq 1 ] &&
  grep -q "QP_ERR_PROTOCOL.*message of 3000 bytes, more than this side's max_message_size of 1000 bytes" "$TMP/s3.err" &&
  grep -q "max_message_size" "$TMP/c3.err" && [ ! -s "$TMP/s3.out" ]; then
  pass "3000-byte message over --max-message-size 1000: receiver QP_ERR_PROTOCOL naming both numbers, nothing written; sender told why"
else
  fail "max-message-size: connect $crc, serve $src"
  show "$TMP/s3.err" "$TMP/c3.err"
fi

# ---------------------------------------------------------------------------
if ! command -v turnserver >/dev/null 2>&1; then
  echo "skip TURN: turnserver is not installed (Debian package coturn)"
else
  say "TURN: turn-check and --relay only through coturn on 127.0.0.1"
  # start_coturn NAME ARGS...: a coturn on 127.0.0.1 with its own relay
  # ports (20 from $first); sets TP (its port) and TURN_PID.
  start_coturn() {
    local name=$1
    shift
    TP=$(free_udp_port)
    first=$((30000 + RANDOM % 300 * 20))
    turnserver -n --listening-ip 127.0.0.1 --relay-ip 127.0.0.1 --listening-port "$TP" \
      --min-port "$first" --max-port $((first + 19)) --no-tls --no-dtls --no-cli --no-tcp \
      --no-tcp-relay --userdb "$TMP/$name.db" --pidfile "$TMP/$name.pid" --log-file stdout \
      --simple-log --allow-loopback-peers --realm r "$@" >"$TMP/$name.log" 2>&1 &
    TURN_PID=$!
    PIDS+=("$TURN_PID")
  }
  # until_checked ARGS...: turn-check ARGS until it passes (coturn starts in
  # well under 1 s; at most 10 s); its output in $TMP/tc.out and tc.err.
  until_checked() {
    local deadline=$((SECONDS + 10))
    until "$BIN" turn-check --timeout 0.5 "$@" >"$TMP/tc.out" 2>"$TMP/tc.err"; do
      [ $SECONDS -lt $deadline ] || return 1
      sleep 0.1
    done
  }
  start_coturn turn --lt-cred-mech --user u:p
  until_checked "u:p@127.0.0.1:$TP"
  if grep -Eq "^relayed address: 127\.0\.0\.1:[0-9]+$" "$TMP/tc.out" &&
    grep -q "TURN server 127.0.0.1:$TP works" "$TMP/tc.out"; then
    rport=$(sed -n 's/^relayed address: 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$TMP/tc.out")
    if [ "$rport" -ge "$first" ] && [ "$rport" -le $((first + 19)) ]; then
      pass "turn-check: exit 0, relayed address $rport in coturn's relay range"
    else
      fail "turn-check: relayed port $rport outside $first-$((first + 19))"
    fi
  else
    fail "turn-check against coturn"
    show "$TMP/tc.out" "$TMP/tc.err" "$TMP/turn.log"
  fi
  "$BIN" turn-check "u:Zq9notthepw@127.0.0.1:$TP" >/dev/null 2>"$TMP/tc2.err"
  rc=$?
  if [ $rc -eq 1 ] && grep -q "QP_ERR_RELAY.*answered 401 to user 'u'" "$TMP/tc2.err" &&
    ! grep -q Zq9notthepw "$TMP/tc2.err"; then
    pass "turn-check with a wrong password: exit 1 naming 401, password not printed"
  else
    fail "turn-check wrong password: exit $rc"
    show "$TMP/tc2.err"
  fi
  usage_case "is not USER:PASS@HOST[:PORT]" turn-check "u@127.0.0.1:$TP"

  mkdir -p "$TMP/rdv4"
  "$BIN" serve --rendezvous "dir:$TMP/rdv4" --bind 127.0.0.1 --secret "relay test secret" \
    --turn "u:p@127.0.0.1:$TP" --relay only --reconnect-timeout 5 \
    <"$TMP/in.bin" >"$TMP/s4.out" 2>"$TMP/s4.err" &
  spid=$!
  PIDS+=("$spid")
  timeout 30 "$BIN" connect --rendezvous "dir:$TMP/rdv4" --bind 127.0.0.1 --secret "relay test secret" \
    --turn "u:p@127.0.0.1:$TP" --relay only <"$TMP/in.bin" >"$TMP/c4.out" 2>"$TMP/c4.err"
  crc=$?
  wait_pid "$spid" 30
  src=$?
  if [ $crc -eq 0 ] && [ $src -eq 0 ] && cmp -s "$TMP/in.bin" "$TMP/c4.out" &&
    cmp -s "$TMP/in.bin" "$TMP/s4.out" &&
    grep -q "path: relayed via our TURN server 127.0.0.1:$TP" "$TMP/s4.err" &&
    grep -q "path: relayed via our TURN server 127.0.0.1:$TP" "$TMP/c4.err"; then
    pass "--relay only: both sides print a relayed path through coturn; the pipe carries 3000 bytes each way"
  else
    fail "--relay only: connect $crc, serve $src"
    show "$TMP/s4.err" "$TMP/c4.err"
  fi
  # The same pair with the default policy stays direct.
  mkdir -p "$TMP/rdv5"
  "$BIN" serve --rendezvous "dir:$TMP/rdv5" --bind 127.0.0.1 --no-secret \
    --turn "u:p@127.0.0.1:$TP" <"$TMP/in.bin" >/dev/null 2>"$TMP/s5.err" &
  spid=$!
  PIDS+=("$spid")
  timeout 30 "$BIN" connect --rendezvous "dir:$TMP/rdv5" --bind 127.0.0.1 \
    --turn "u:p@127.0.0.1:$TP" <"$TMP/in.bin" >"$TMP/c5.out" 2>"$TMP/c5.err"
  crc=$?
  wait_pid "$spid" 30
  src=$?
  if [ $crc -eq 0 ] && [ $src -eq 0 ] && cmp -s "$TMP/in.bin" "$TMP/c5.out" &&
    grep -q "path: direct (host, IPv4) to 127.0.0.1:" "$TMP/c5.err"; then
    pass "--relay auto with a TURN server: a direct path on loopback, and it says so"
  else
    fail "--relay auto: connect $crc, serve $src"
    show "$TMP/s5.err" "$TMP/c5.err"
  fi
  kill -TERM "$TURN_PID" 2>/dev/null
  wait_pid "$TURN_PID" 10 >/dev/null

  say "TURN with coturn's REST shared secret (use-auth-secret)"
  start_coturn turnrest --use-auth-secret --static-auth-secret "rest shared secret"
  if until_checked --shared-secret "rest shared secret@127.0.0.1:$TP" &&
    grep -q "TURN server 127.0.0.1:$TP works" "$TMP/tc.out"; then
    pass "turn-check --shared-secret: REST credentials accepted"
  else
    fail "turn-check --shared-secret"
    show "$TMP/tc.out" "$TMP/tc.err" "$TMP/turnrest.log"
  fi
  "$BIN" turn-check --shared-secret "not the secret@127.0.0.1:$TP" >/dev/null 2>"$TMP/tc3.err"
  rc=$?
  if [ $rc -eq 1 ] && grep -q "answered 401" "$TMP/tc3.err"; then
    pass "turn-check --shared-secret with another secret: exit 1 naming 401"
  else
    fail "turn-check with a wrong shared secret: exit $rc"
    show "$TMP/tc3.err"
  fi
  mkdir -p "$TMP/rdv6"
  "$BIN" serve --rendezvous "dir:$TMP/rdv6" --bind 127.0.0.1 --no-secret \
    --turn-secret "rest shared secret@127.0.0.1:$TP" --relay only \
    <"$TMP/in.bin" >"$TMP/s6.out" 2>"$TMP/s6.err" &
  spid=$!
  PIDS+=("$spid")
  timeout 30 "$BIN" connect --rendezvous "dir:$TMP/rdv6" --bind 127.0.0.1 \
    --turn-secret "rest shared secret@127.0.0.1:$TP" --relay only \
    <"$TMP/in.bin" >"$TMP/c6.out" 2>"$TMP/c6.err"
  crc=$?
  wait_pid "$spid" 30
  src=$?
  if [ $crc -eq 0 ] && [ $src -eq 0 ] && cmp -s "$TMP/in.bin" "$TMP/c6.out" &&
    cmp -s "$TMP/in.bin" "$TMP/s6.out" &&
    grep -q "path: relayed via our TURN server 127.0.0.1:$TP" "$TMP/c6.err"; then
    pass "--turn-secret with --relay only: relayed through coturn's REST credentials"
  else
    fail "--turn-secret --relay only: connect $crc, serve $src"
    show "$TMP/s6.err" "$TMP/c6.err"
  fi
  kill -TERM "$TURN_PID" 2>/dev/null
  wait_pid "$TURN_PID" 10 >/dev/null
fi

if [ "$FAILS" -gt 0 ]; then
  echo "test_rdv_relay: $FAILS check(s) FAILED"
  exit 1
fi
echo "test_rdv_relay: all checks passed"
exit 0
