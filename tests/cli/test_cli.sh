#!/usr/bin/env bash
# test_cli.sh QUIC_PORTAL_BINARY: runs every subcommand of the quic-portal
# tool for real on loopback.
#
#   usage errors (exit 2) and --help of every subcommand; sha256 against
#   sha256sum (nettle), past a missing file; the pipe (test_pipe.sh);
#   transfer refusals (test_xfer.sh); a 200 MiB file verified by hash,
#   directly and through NAT traversal (embedded STUN server + dir: rendezvous); an
#   existing file refused without --force and replaced with it; interrupted
#   transfers (sender killed with SIGKILL and SIGTERM, receiver with SIGINT)
#   leave no file under the final name and no .part file; stun against the
#   embedded stun-server and against coturn (skipped without turnserver),
#   --json parsed with python3; bench pingpong and rtt --json; the demo.
#
# Every command runs under `timeout`; every background process is killed and
# the temporary folder removed on exit. Exit 0 pass, 1 fail, 77 skip.
set -u

BIN=${1:-}
NEED="timeout sha256sum"
NAME=qp-cli-test
# shellcheck source=cli_lib.sh
. "$(dirname "$0")/cli_lib.sh"

BIG_MIB=${QP_CLI_BIG_MIB:-200}

hash_of() { sha256sum "$1" | cut -d' ' -f1; }

# json_check FILE PYTHON_EXPR: the expression over `j` (the last JSON line
# of FILE) must be true.
json_check() {
  [ "$HAVE_PY" = 1 ] || return 0
  python3 - "$1" "$2" <<'EOF'
import json, sys
lines = [l for l in open(sys.argv[1]) if l.strip()]
j = json.loads(lines[-1])
ok = eval(sys.argv[2], {"j": j})
if not ok:
    print("    json: %s is false for %s" % (sys.argv[2], lines[-1].strip()))
sys.exit(0 if ok else 1)
EOF
}

# start_bg NAME ARGS...: run `quic-portal ARGS` in the background with
# stdout/stderr in $TMP/NAME.out/.err; sets SPID to its own pid (no
# `timeout` in between, so signals reach it: wait_pid bounds the wait and
# the EXIT trap kills what is left).
start_bg() {
  local name=$1
  shift
  "$BIN" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
  SPID=$!
  PIDS+=("$SPID")
}

# ---------------------------------------------------------------------------
say "usage errors exit 2 with a precise message"

# usage_case EXPECTED_TEXT ARGS...
usage_case() {
  local want=$1
  shift
  timeout 10 "$BIN" "$@" >"$TMP/u.out" 2>"$TMP/u.err" </dev/null
  local rc=$?
  # The message and one line pointing at --help, not the whole usage.
  if [ $rc -eq 2 ] && grep -q -- "$want" "$TMP/u.err" && grep -q -- "--help' for the usage" "$TMP/u.err" &&
    [ "$(wc -l <"$TMP/u.err")" -le 2 ] && [ ! -s "$TMP/u.out" ]; then
    pass "quic-portal $* -> 2 ($want)"
  else
    fail "quic-portal $* -> $rc, stderr:"
    show "$TMP/u.err"
  fi
}
usage_case "missing command"
usage_case "unknown command 'frobnicate'" frobnicate
usage_case "give exactly one of --listen" serve
usage_case "expected an integer from 1 to 65535" serve --listen 0
usage_case "expected an integer from 1 to 65535" serve --listen 70000
usage_case "--to is for connect" serve --to 127.0.0.1:1
usage_case "expected HOST:PORT" connect --to localhost
usage_case "give exactly one of --to" connect --to 127.0.0.1:1 --rendezvous mem:x
usage_case "--stun applies only with --rendezvous" connect --to 127.0.0.1:1 --stun 127.0.0.1:3478
usage_case "--pin applies only to a direct connection" serve --rendezvous mem:x --pin abc
usage_case "unknown option '--bogus'" connect --to 127.0.0.1:1 --bogus
usage_case "option --to needs a value" connect --to
usage_case "option --session given twice" serve --rendezvous mem:x --session a --session b
usage_case "invalid value 'warp' for --cc" connect --to 127.0.0.1:1 --cc warp
usage_case "invalid value '-1' for --idle-timeout" connect --to 127.0.0.1:1 --idle-timeout -1
usage_case "invalid value 'loud' for --log-level" stun --log-level loud
usage_case "send needs at least one FILE" connect --to 127.0.0.1:1 send
usage_case "unknown mode 'fetch'" connect --to 127.0.0.1:1 fetch
usage_case "--force applies only to receive" connect --to 127.0.0.1:1 --force
usage_case "--json applies only to send and receive" connect --to 127.0.0.1:1 --json
usage_case "--server given 3 times" stun --server 127.0.0.1:1 --server 127.0.0.1:2 --server 127.0.0.1:3
usage_case "invalid value '0' for the port of --server" stun --server 127.0.0.1:0
usage_case "--listen \[ADDR:\]PORT is required" stun-server
usage_case "missing role" bench --to 127.0.0.1:1
usage_case "invalid value 'flood' for --bench" bench connect --to 127.0.0.1:1 --bench flood
usage_case "--iters applies only to bench connect" bench serve --listen 1 --iters 5
usage_case "missing FILE" sha256
# Checked before anything is printed or bound (stdout and stderr hold only
# the message: usage_case asserts it).
usage_case "invalid value 'redis://:5' for --rendezvous" serve --rendezvous redis://:5
usage_case "invalid value 'redis://h:6379/x' for --rendezvous" connect --rendezvous redis://h:6379/x
usage_case "invalid value 'tcp://h' for --rendezvous" serve --rendezvous tcp://h
usage_case "invalid value 'dir:' for --rendezvous" serve --rendezvous dir:
usage_case "--keep-alive 10 must be below --idle-timeout 10" connect --to 127.0.0.1:1 --keep-alive 10
usage_case "--keep-alive 5 must be below --idle-timeout 3" serve --listen 1 --idle-timeout 3 --keep-alive 5
usage_case "invalid address '1.2.3' in --listen" serve --listen 1.2.3:5
usage_case "invalid address 'localhost' in --listen" serve --listen localhost:5
usage_case "invalid address '999.1.1.1' in --to" connect --to 999.1.1.1:5
usage_case "invalid address '::g' in --to" connect --to '[::g]:5'
usage_case "invalid address '1.2.3.400' in --stun" serve --rendezvous mem:x --stun 1.2.3.400:3478
usage_case "invalid address 'nowhere' in --listen" stun-server --listen nowhere:1
usage_case "invalid address 'foo' in --bind" connect --rendezvous mem:x --bind foo
usage_case "--bind applies only with --rendezvous" connect --to 127.0.0.1:1 --bind 127.0.0.1
usage_case "--wait-timeout applies only with --rendezvous" serve --listen 1 --wait-timeout 1
usage_case "--no-portmap applies only with --rendezvous" serve --listen 1 --no-portmap
usage_case "--no-upnp applies only with --rendezvous" connect --to 127.0.0.1:1 --no-upnp
usage_case "option --no-pcp takes no value" connect --rendezvous mem:x --no-pcp=1

for cmd in "" serve connect stun stun-server bench demo sha256; do
  # shellcheck disable=SC2086
  if timeout 10 "$BIN" $cmd --help >"$TMP/h.out" 2>&1 && grep -q "Usage: quic-portal" "$TMP/h.out"; then
    pass "quic-portal $cmd --help"
  else
    fail "quic-portal $cmd --help"
  fi
done
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null 2>&1; then
  mkdir -p "$TMP/ro"
  chmod 0755 "$TMP/ro" "$TMP"
  timeout 10 setpriv --reuid=65534 --regid=65534 --clear-groups "$BIN" connect \
    --rendezvous "dir:$TMP/ro" </dev/null >"$TMP/d.out" 2>"$TMP/d.err"
  rc=$?
  if [ $rc -eq 1 ] && grep -q "is not writable by this user" "$TMP/d.err"; then
    pass "a dir: store folder this user cannot write: exit 1 at once"
  else
    fail "an unwritable dir: store folder: exit $rc"
    show "$TMP/d.err"
  fi
else
  echo "skip unwritable dir: store folder: needs root and setpriv to be another user"
fi
mkdir -p "$TMP/wait"
timeout 20 "$BIN" connect --rendezvous "dir:$TMP/wait" --wait-timeout 0.5 </dev/null >/dev/null 2>"$TMP/w.err"
rc=$?
if [ $rc -eq 1 ] && grep -q "did not publish its record within the wait timeout of 500 ms" "$TMP/w.err"; then
  pass "--wait-timeout 0.5 without a peer: exit 1 naming the wait"
else
  fail "--wait-timeout: exit $rc"
  show "$TMP/w.err"
fi
check "--qlog is in serve --help" bash -c "'$BIN' serve --help | grep -q -- '--qlog DIR'"
check "--no-portmap is in connect and bench --help" bash -c "'$BIN' connect --help | grep -q -- '--no-portmap' && '$BIN' bench --help | grep -q -- '--no-upnp, --no-natpmp, --no-pcp'"
timeout 10 "$BIN" serve --rendezvous "dir:$TMP/no-such-folder" </dev/null >"$TMP/d.out" 2>"$TMP/d.err"
rc=$?
if [ $rc -eq 1 ] && grep -q "no-such-folder does not exist" "$TMP/d.err" && [ "$(wc -l <"$TMP/d.err")" -eq 1 ]; then
  pass "a missing dir: store folder: exit 1 at once, one line"
else
  fail "a missing dir: store folder: exit $rc"
  show "$TMP/d.err"
fi
check "quic-portal --version" bash -c "'$BIN' --version | grep -q '^quic-portal [0-9]'"

# ---------------------------------------------------------------------------
say "sha256 matches sha256sum (FIPS 180-2 'abc' and the empty string)"
printf abc >"$TMP/abc"
: >"$TMP/empty"
check "sha256 abc" bash -c "'$BIN' sha256 '$TMP/abc' | grep -q '^ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad '"
check "sha256 empty" bash -c "'$BIN' sha256 '$TMP/empty' | grep -q '^e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 '"

"$BIN" sha256 "$TMP/abc" "$TMP/missing" "$TMP/empty" >"$TMP/sha.out" 2>"$TMP/sha.err"
rc=$?
sha256sum "$TMP/abc" "$TMP/missing" "$TMP/empty" >"$TMP/sum.out" 2>/dev/null
if [ $rc -eq 1 ] && cmp -s "$TMP/sha.out" "$TMP/sum.out" && grep -q missing "$TMP/sha.err"; then
  pass "sha256 goes on past a missing file and exits 1, as sha256sum"
else
  fail "sha256 with a missing file: exit $rc"
  show "$TMP/sha.out" "$TMP/sum.out" "$TMP/sha.err"
fi

say "making a ${BIG_MIB} MiB file"
head -c $((BIG_MIB * 1024 * 1024)) /dev/urandom >"$TMP/big.bin"
BIG_HASH=$(hash_of "$TMP/big.bin")
check "sha256 of ${BIG_MIB} MiB equals sha256sum" \
  bash -c "[ \"\$('$BIN' sha256 '$TMP/big.bin' | cut -d' ' -f1)\" = '$BIG_HASH' ]"

# ---------------------------------------------------------------------------
# sub_test SCRIPT: run tests/cli/SCRIPT on the binary as one check.
sub_test() {
  bash "$(dirname "$0")/$1" "$BIN"
  local rc=$?
  if [ $rc -eq 0 ]; then
    pass "$1"
  elif [ $rc -eq 77 ]; then
    echo "skip $1"
  else
    fail "$1 exit $rc"
  fi
}

say "pipe (direct mode): half-close and exit codes (test_pipe.sh)"
# 50 MiB as the issue asks; the sanitizer build's smaller BIG_MIB caps it.
export QP_CLI_PIPE_MIB=$((BIG_MIB < 50 ? BIG_MIB : 50))
sub_test test_pipe.sh

say "file transfer refusals, before any content moves (test_xfer.sh)"
sub_test test_xfer.sh

# ---------------------------------------------------------------------------
# transfer NAME SERVER_ARGS -- CLIENT_ARGS: receive into $TMP/NAME.rx with
# the given connection options; checks exit codes, hash, JSON summaries.
transfer() {
  local name=$1
  shift
  local sargs=() cargs=()
  while [ "$1" != "--" ]; do sargs+=("$1"); shift; done
  shift
  cargs=("$@")
  mkdir -p "$TMP/$name.rx"
  start_bg "$name.s" serve "${sargs[@]}" receive "$TMP/$name.rx" --json
  local spid=$SPID
  if [[ " ${sargs[*]} " == *" --listen "* ]]; then
    wait_for "$TMP/$name.s.err" "waiting for a client"
  fi
  timeout 180 "$BIN" connect "${cargs[@]}" send "$TMP/big.bin" --json \
    >"$TMP/$name.c.out" 2>"$TMP/$name.c.err"
  local crc=$?
  wait_pid "$spid" 60
  local src=$?
  if [ $crc -eq 0 ] && [ $src -eq 0 ] && [ -f "$TMP/$name.rx/big.bin" ] &&
    [ "$(hash_of "$TMP/$name.rx/big.bin")" = "$BIG_HASH" ] &&
    json_check "$TMP/$name.s.out" "j['event']=='received' and j['name']=='big.bin' and j['bytes']==$((BIG_MIB * 1048576)) and j['sha256']=='$BIG_HASH' and j['verified'] is True" &&
    json_check "$TMP/$name.c.out" "j['event']=='sent' and j['sha256']=='$BIG_HASH'"; then
    pass "$name: ${BIG_MIB} MiB received, SHA-256 equal, JSON summaries parsed"
  else
    fail "$name: connect exit $crc, serve exit $src"
    show "$TMP/$name.s.err" "$TMP/$name.c.err" "$TMP/$name.s.out"
  fi
}

say "file transfer, direct mode"
P=$(free_udp_port)
transfer direct --listen "127.0.0.1:$P" --quiet -- --to "127.0.0.1:$P" --quiet

say "an existing file is refused without --force, replaced with it"
P=$(free_udp_port)
mkdir -p "$TMP/ex.rx"
printf 'keep me\n' >"$TMP/ex.rx/abc"
start_bg ex1.s serve --listen "127.0.0.1:$P" receive "$TMP/ex.rx"
wait_for "$TMP/ex1.s.err" "waiting for a client"
timeout 30 "$BIN" connect --to "127.0.0.1:$P" send "$TMP/abc" 2>"$TMP/ex1.c.err"
crc=$?
wait_pid "$SPID" 30
src=$?
if [ $crc -eq 1 ] && [ $src -eq 1 ] && grep -q "already exists" "$TMP/ex1.c.err" &&
  [ "$(cat "$TMP/ex.rx/abc")" = "keep me" ] && [ ! -e "$TMP/ex.rx/.abc.part" ]; then
  pass "existing file kept, both sides exit 1 with the reason"
else
  fail "existing file (connect $crc, serve $src)"
  show "$TMP/ex1.s.err" "$TMP/ex1.c.err"
fi
P=$(free_udp_port)
start_bg ex2.s serve --listen "127.0.0.1:$P" receive "$TMP/ex.rx" --force
wait_for "$TMP/ex2.s.err" "waiting for a client"
timeout 30 "$BIN" connect --to "127.0.0.1:$P" send "$TMP/abc" 2>"$TMP/ex2.c.err"
crc=$?
wait_pid "$SPID" 30
src=$?
if [ $crc -eq 0 ] && [ $src -eq 0 ] && [ "$(cat "$TMP/ex.rx/abc")" = "abc" ]; then
  pass "--force replaces the file"
else
  fail "--force (connect $crc, serve $src)"
  show "$TMP/ex2.s.err" "$TMP/ex2.c.err"
fi

# ---------------------------------------------------------------------------
say "interrupted transfers leave no file under the final name"
# interrupted NAME WHO SIGNAL WANT_SENDER WANT_RECEIVER
interrupted() {
  local name=$1 who=$2 sig=$3 want_c=$4 want_s=$5
  local rx="$TMP/$name.rx"
  mkdir -p "$rx"
  P=$(free_udp_port)
  start_bg "$name.s" serve --listen "127.0.0.1:$P" --idle-timeout 2 receive "$rx"
  local spid=$SPID
  wait_for "$TMP/$name.s.err" "waiting for a client"
  start_bg "$name.c" connect --to "127.0.0.1:$P" --idle-timeout 2 send "$TMP/big.bin"
  local cpid=$SPID
  if ! wait_nonempty "$rx/.big.bin.part" 30; then
    fail "$name: the transfer never started"
    show "$TMP/$name.s.err" "$TMP/$name.c.err"
    return
  fi
  if [ "$who" = sender ]; then kill -"$sig" "$cpid"; else kill -"$sig" "$spid"; fi
  wait_pid "$cpid" 30
  local crc=$?
  wait_pid "$spid" 30
  local src=$?
  if [ $crc -eq "$want_c" ] && [ $src -eq "$want_s" ] &&
    [ ! -e "$rx/big.bin" ] && [ ! -e "$rx/.big.bin.part" ]; then
    pass "$name: $who killed with SIG$sig: sender $crc, receiver $src, no file left"
  else
    fail "$name: sender exit $crc (want $want_c), receiver exit $src (want $want_s); left: $(ls -A "$rx")"
    show "$TMP/$name.s.err" "$TMP/$name.c.err"
  fi
}
interrupted int_kill sender KILL 137 1
interrupted int_term sender TERM 143 1
interrupted int_rint receiver INT 1 130

# ---------------------------------------------------------------------------
say "stun against the embedded stun-server"
start_bg stunsrv stun-server --listen 127.0.0.1:0 --alt 127.0.0.2:0
STUN_PID=$SPID
if wait_for "$TMP/stunsrv.out" "^listening on 127.0.0.1:[0-9]"; then
  STUN_PORT=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$TMP/stunsrv.out")
  STUN="127.0.0.1:$STUN_PORT"
  check "stun-server prints the alternate address it bound" \
    grep -q "^alternate address 127.0.0.2:[1-9][0-9]*$" "$TMP/stunsrv.out"
  timeout 20 "$BIN" stun --server "$STUN" >"$TMP/stun.txt" 2>&1
  check "stun (human): exit 0, public address shown" \
    bash -c "[ $? -eq 0 ] && grep -q '^public address: *127.0.0.1:' '$TMP/stun.txt'"
  timeout 20 "$BIN" stun --server "$STUN" --json >"$TMP/stun.json" 2>"$TMP/stun.err"
  rc=$?
  if [ $rc -eq 0 ] && json_check "$TMP/stun.json" "j['server']=='$STUN' and j['mapped'].startswith('127.0.0.1:') and j['rfc5780'] is True and j['type']=='open' and j['mapping']=='endpoint-independent'"; then
    pass "stun --json against the embedded server: RFC 5780, open"
  else
    fail "stun --json (exit $rc)"
    show "$TMP/stun.json" "$TMP/stun.err"
  fi
else
  fail "stun-server did not print its port"
  show "$TMP/stunsrv.err"
  STUN=""
fi
start_bg stunbare stun-server --listen 0
if wait_for "$TMP/stunbare.out" "^listening on 0.0.0.0:[1-9]"; then
  pass "stun-server --listen PORT (a bare port) listens on 0.0.0.0"
else
  fail "stun-server --listen 0"
  show "$TMP/stunbare.out" "$TMP/stunbare.err"
fi
kill -TERM "$SPID" 2>/dev/null
wait_pid "$SPID" 10 >/dev/null
DEAD=$(free_udp_port)
timeout 20 "$BIN" stun --server "127.0.0.1:$DEAD" --timeout 1 --json >"$TMP/dead.json" 2>&1
rc=$?
if [ $rc -eq 1 ] && json_check "$TMP/dead.json" "j['type']=='UDP blocked'"; then
  pass "stun against a silent port: exit 1, type UDP blocked"
else
  fail "stun against a silent port (exit $rc)"
  show "$TMP/dead.json"
fi

say "stun against coturn"
if command -v turnserver >/dev/null 2>&1; then
  TP=$(free_udp_port)
  turnserver -n --stun-only --no-auth --listening-ip 127.0.0.1 --listening-ip 127.0.0.2 \
    --listening-port "$TP" --alt-listening-port $((TP + 1)) --no-cli --no-tcp --no-tls --no-dtls \
    --pidfile "$TMP/turn.pid" --log-file stdout --simple-log >"$TMP/turn.log" 2>&1 &
  TURN_PID=$!
  PIDS+=("$TURN_PID")
  ok=0
  for _ in $(seq 40); do # turnserver starts in well under a second
    if timeout 10 "$BIN" stun --server "127.0.0.1:$TP" --timeout 1 --json >"$TMP/coturn.json" 2>"$TMP/coturn.err"; then
      ok=1
      break
    fi
    sleep 0.25
  done
  if [ $ok = 1 ] && json_check "$TMP/coturn.json" "j['mapped'].startswith('127.0.0.1:') and j['rfc5780'] is True and j['type']=='open'"; then
    pass "stun --json against coturn: RFC 5780, open"
  else
    fail "stun against coturn"
    show "$TMP/coturn.json" "$TMP/coturn.err" "$TMP/turn.log"
  fi
  kill -TERM "$TURN_PID" 2>/dev/null
  wait_pid "$TURN_PID" 10 >/dev/null
else
  echo "skip stun against coturn: turnserver is not installed (Debian package coturn)"
fi

# ---------------------------------------------------------------------------
say "file transfer through NAT traversal (dir: rendezvous, embedded STUN)"
if [ -n "$STUN" ]; then
  mkdir -p "$TMP/rdv"
  transfer traversed --rendezvous "dir:$TMP/rdv" --session t1 --stun "$STUN" --quiet \
    --secret "two sides, one secret" -- \
    --rendezvous "dir:$TMP/rdv" --session t1 --stun "$STUN" --quiet --secret "two sides, one secret"
  start_bg tbench.s bench serve --rendezvous "dir:$TMP/rdv" --session t2 --stun "$STUN" --quiet \
    --no-secret
  timeout 60 "$BIN" bench connect --rendezvous "dir:$TMP/rdv" --session t2 --stun "$STUN" \
    --quiet --iters 10 --json >"$TMP/tbench.json" 2>"$TMP/tbench.err"
  crc=$?
  wait_pid "$SPID" 30
  src=$?
  if [ $crc -eq 0 ] && [ $src -eq 0 ] && json_check "$TMP/tbench.json" "j['bench']=='pingpong' and j['path']=='traversed' and j['iterations']==10"; then
    pass "bench pingpong through traversal"
  else
    fail "bench through traversal (connect $crc, serve $src)"
    show "$TMP/tbench.err" "$TMP/tbench.s.err"
  fi
fi
kill -TERM "$STUN_PID" 2>/dev/null
wait_pid "$STUN_PID" 10
check "stun-server exits 0 on SIGTERM" test $? -eq 0

# ---------------------------------------------------------------------------
say "bench (direct), qp-bench's JSON keys"
PP_KEYS="bench iterations avg_ms p50_ms p75_ms p90_ms p99_ms min_ms max_ms transport connect_ms lost_packets cwnd srtt_us pto_count packets_sent packets_received handshake_us rss_kb rss_peak_kb"
RTT_KEYS="bench iterations p50_us p90_us p99_us avg_us min_us max_us transport connect_ms lost_packets cwnd srtt_us"
# bench_case KIND KEYS ARGS...
bench_case() {
  local kind=$1 keys=$2
  shift 2
  P=$(free_udp_port)
  start_bg "b_$kind.s" bench serve --listen "127.0.0.1:$P" --json
  local spid=$SPID
  wait_for "$TMP/b_$kind.s.err" "waiting for a client"
  timeout 60 "$BIN" bench connect --to "127.0.0.1:$P" --quiet --json "$@" \
    >"$TMP/b_$kind.json" 2>"$TMP/b_$kind.err"
  local crc=$?
  wait_pid "$spid" 30
  local src=$?
  local expr="all(k in j for k in '$keys'.split()) and j['bench']=='$kind'"
  if [ $crc -eq 0 ] && [ $src -eq 0 ] && json_check "$TMP/b_$kind.json" "$expr" &&
    json_check "$TMP/b_$kind.s.out" "j['role']=='server' and j['messages']>0"; then
    pass "bench $kind --json: every qp-bench key present"
  else
    fail "bench $kind (connect $crc, serve $src)"
    show "$TMP/b_$kind.err" "$TMP/b_$kind.s.err" "$TMP/b_$kind.json"
  fi
}
bench_case pingpong "$PP_KEYS" --iters 10
bench_case rtt "$RTT_KEYS" --bench rtt --iters 200

# ---------------------------------------------------------------------------
say "demo"
timeout 120 "$BIN" demo >"$TMP/demo.out" 2>&1
rc=$?
DEMO_DIR=$(sed -n 's/^\[demo\] 3\. rendezvous: the folder \([^ ]*\) .*/\1/p' "$TMP/demo.out")
if [ $rc -eq 0 ] && grep -q "^\[client\]   p50" "$TMP/demo.out" &&
  grep -q "^\[server\] the client says its fingerprint" "$TMP/demo.out" &&
  [ -n "$DEMO_DIR" ] && [ ! -e "$DEMO_DIR" ] &&
  grep -q "^\[client\]    a path works after" "$TMP/demo.out" &&
  ! grep -Eqi "ufrag|nominat|candidate|[0-9] pairs" "$TMP/demo.out" &&
  [ "$(grep -Eo '^\[(server|client)\]' "$TMP/demo.out" | uniq | tr -d '\n')" = "[server][client]" ]; then
  pass "demo: exit 0, fingerprints, figures, plain words, each side's lines together, rendezvous folder removed"
else
  fail "demo (exit $rc)"
  show "$TMP/demo.out"
fi

echo
if [ $FAILS -ne 0 ]; then
  echo "test_cli: $FAILS check(s) FAILED"
  exit 1
fi
echo "test_cli: all checks passed"
exit 0
