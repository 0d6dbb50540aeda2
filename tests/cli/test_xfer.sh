#!/usr/bin/env bash
# test_xfer.sh QUIC_PORTAL_BINARY: refusals of the file transfer
# (send/receive) on loopback, each decided before any content moves
# (docs/cli.md, "send FILE... / receive [DIR]"):
#
#   - receive on both sides, send on both sides: both exit 1 at once with
#     a hint naming the other mode;
#   - two files with one name: usage error (2) before connecting;
#   - a .part file left as a symlink: refused (both exit 1), its target
#     untouched; with --force the symlink is replaced, the target still
#     untouched, and the file arrives with mode 0600 -> umask mode;
#   - several files, one of them empty, all byte-exact;
#   - the line the waiting side prints for its peer (direct with --pin, and
#     through a dir: rendezvous with a session name to quote), run as
#     printed, transfers the file;
#   - a full disk on the receiver (a 1 MiB tmpfs in a private mount
#     namespace; root only): the sender exits 1 naming "No space left on
#     device", no .part file is left.
#
# Run by test_cli.sh (ctest "cli"), or alone. Exit 0 pass, 1 fail, 77 skip.
set -u

BIN=${1:-}
NEED="timeout cmp"
NAME=qp-cli-xfer
# shellcheck source=cli_lib.sh
. "$(dirname "$0")/cli_lib.sh"

# pair NAME "SERVER ARGS" "CLIENT ARGS": run serve and connect on a fresh
# port; sets SRC and CRC (exit statuses), logs in $TMP/NAME.{s,c}.err.
pair() {
  local name=$1 P
  P=$(free_udp_port)
  # shellcheck disable=SC2086
  "$BIN" serve --listen "127.0.0.1:$P" $2 >"$TMP/$name.s.out" 2>"$TMP/$name.s.err" &
  local spid=$!
  PIDS+=("$spid")
  wait_for "$TMP/$name.s.err" "waiting for a client"
  # shellcheck disable=SC2086
  timeout 60 "$BIN" connect --to "127.0.0.1:$P" $3 >"$TMP/$name.c.out" 2>"$TMP/$name.c.err"
  CRC=$?
  wait_pid "$spid" 30
  SRC=$?
}

mkdir -p "$TMP/rx1" "$TMP/rx2" "$TMP/d1" "$TMP/d2"
printf 'hello\n' >"$TMP/d1/same"
printf 'other\n' >"$TMP/d2/same"

# ---------------------------------------------------------------------------
start=$SECONDS
pair both_rx "receive $TMP/rx1" "receive $TMP/rx2"
if [ $CRC -eq 1 ] && [ $SRC -eq 1 ] && [ $((SECONDS - start)) -lt 8 ] &&
  grep -q "the peer also runs \`receive" "$TMP/both_rx.s.err" &&
  grep -q "one side must run \`send FILE" "$TMP/both_rx.c.err"; then
  pass "receive on both sides: both exit 1 at once with a hint"
else
  fail "receive on both sides: connect $CRC, serve $SRC (want 1 1)"
  show "$TMP/both_rx.s.err" "$TMP/both_rx.c.err"
fi
pair both_tx "send $TMP/d1/same" "send $TMP/d2/same"
if [ $CRC -eq 1 ] && [ $SRC -eq 1 ] &&
  grep -q "the peer also runs \`send" "$TMP/both_tx.s.err" &&
  grep -q "the peer also runs \`send" "$TMP/both_tx.c.err"; then
  pass "send on both sides: both exit 1 with a hint"
else
  fail "send on both sides: connect $CRC, serve $SRC (want 1 1)"
  show "$TMP/both_tx.s.err" "$TMP/both_tx.c.err"
fi

timeout 10 "$BIN" connect --to 127.0.0.1:9 send "$TMP/d1/same" "$TMP/d2/same" 2>"$TMP/dup.err"
rc=$?
if [ $rc -eq 2 ] && grep -q "two files named same" "$TMP/dup.err"; then
  pass "two files with one name: exit 2 before connecting"
else
  fail "two files with one name: exit $rc (want 2)"
  show "$TMP/dup.err"
fi

# ---------------------------------------------------------------------------
printf 'precious\n' >"$TMP/target"
ln -s "$TMP/target" "$TMP/rx1/.same.part"
pair part "receive $TMP/rx1" "send $TMP/d1/same"
if [ $CRC -eq 1 ] && [ $SRC -eq 1 ] && grep -q "same.part already exists" "$TMP/part.c.err" &&
  [ "$(cat "$TMP/target")" = precious ] && [ ! -e "$TMP/rx1/same" ]; then
  pass "a .part symlink is refused, its target untouched"
else
  fail "a .part symlink: connect $CRC, serve $SRC (want 1 1), target: $(cat "$TMP/target")"
  show "$TMP/part.s.err" "$TMP/part.c.err"
fi
pair partf "receive $TMP/rx1 --force" "send $TMP/d1/same"
mode=$(stat -c %a "$TMP/rx1/same" 2>/dev/null)
want_mode=$(printf '%o' $((0666 & ~$(umask))))
if [ $CRC -eq 0 ] && [ $SRC -eq 0 ] && [ "$(cat "$TMP/target")" = precious ] &&
  cmp -s "$TMP/d1/same" "$TMP/rx1/same" && [ ! -e "$TMP/rx1/.same.part" ] &&
  [ "$mode" = "$want_mode" ]; then
  pass "--force replaces the .part symlink, target untouched, final mode $mode"
else
  fail "--force with a .part symlink: connect $CRC, serve $SRC, mode $mode (want $want_mode)"
  show "$TMP/partf.s.err" "$TMP/partf.c.err"
fi

# ---------------------------------------------------------------------------
: >"$TMP/d1/empty"
head -c 3000001 /dev/urandom >"$TMP/d2/odd"
pair many "receive $TMP/rx2" "send $TMP/d1/empty $TMP/d2/odd $TMP/d1/same"
ok=1
for f in d1/empty d2/odd d1/same; do
  cmp -s "$TMP/$f" "$TMP/rx2/$(basename $f)" || ok=0
done
if [ $CRC -eq 0 ] && [ $SRC -eq 0 ] && [ $ok = 1 ]; then
  pass "three files (one empty, one of 3000001 bytes) byte-exact"
else
  fail "three files: connect $CRC, serve $SRC, byte-exact $ok"
  show "$TMP/many.s.err" "$TMP/many.c.err"
fi

# ---------------------------------------------------------------------------
# The waiting side prints the peer's command line; run it as printed (FILE...
# replaced by a file). peer_line ERRFILE: that line, quic-portal as $BIN.
peer_line() {
  wait_for "$1" "on the other side, run:" &&
    grep -A1 "on the other side, run:" "$1" | tail -1 |
    sed -e "s|^  quic-portal |'$BIN' |" -e "s|send FILE\.\.\.|send '$TMP/d2/odd'|"
}
mkdir -p "$TMP/rx3" "$TMP/rx4" "$TMP/rdv"
P=$(free_udp_port)
"$BIN" serve --listen "127.0.0.1:$P" receive "$TMP/rx3" >/dev/null 2>"$TMP/hint.s.err" &
spid=$!
PIDS+=("$spid")
line=$(peer_line "$TMP/hint.s.err")
(cd "$TMP/rx4" && timeout 60 bash -c "$line") >/dev/null 2>"$TMP/hint.c.err"
crc=$?
wait_pid "$spid" 30
src=$?
if [ $crc -eq 0 ] && [ $src -eq 0 ] && cmp -s "$TMP/d2/odd" "$TMP/rx3/odd" &&
  [[ "$line" == *"--to 127.0.0.1:$P --pin "* ]] &&
  grep -q "pinned with --pin and verified" "$TMP/hint.c.err"; then
  pass "serve --listen prints the connect line with --pin; run as printed, it works"
else
  fail "the printed connect line: connect $crc, serve $src: $line"
  show "$TMP/hint.s.err" "$TMP/hint.c.err"
fi
"$BIN" serve --rendezvous "dir:$TMP/rdv" --session "a b" send "$TMP/d1/same" >/dev/null 2>"$TMP/hint2.s.err" &
spid=$!
PIDS+=("$spid")
line=$(peer_line "$TMP/hint2.s.err")
(cd "$TMP/rx4" && timeout 60 bash -c "$line") >/dev/null 2>"$TMP/hint2.c.err"
crc=$?
wait_pid "$spid" 30
src=$?
# serve made up a secret (no --secret, no --no-secret): 32 base32
# characters in dashed groups of four, on the printed line.
if [ $crc -eq 0 ] && [ $src -eq 0 ] && cmp -s "$TMP/d1/same" "$TMP/rx4/same" &&
  [[ "$line" =~ --session\ \'a\ b\'\ --secret\ [a-z2-7]{4}(-[a-z2-7]{4}){7}\ receive$ ]]; then
  pass "a rendezvous serve prints the connect line with store, session and a generated secret; run as printed, it works"
else
  fail "the printed rendezvous connect line: connect $crc, serve $src: $line"
  show "$TMP/hint2.s.err" "$TMP/hint2.c.err"
fi

# ---------------------------------------------------------------------------
if [ "$(id -u)" != 0 ] || ! command -v unshare >/dev/null 2>&1; then
  echo "skip full disk: needs root and unshare (a private tmpfs)"
else
  mkdir -p "$TMP/full"
  P=$(free_udp_port)
  # The tmpfs lives only in the receiver's mount namespace: nothing to undo.
  unshare -m --propagation private sh -c \
    "mount -t tmpfs -o size=1m qp-cli-full '$TMP/full' && exec '$BIN' serve --listen 127.0.0.1:$P receive '$TMP/full'" \
    >"$TMP/full.s.out" 2>"$TMP/full.s.err" &
  spid=$!
  PIDS+=("$spid")
  wait_for "$TMP/full.s.err" "waiting for a client"
  timeout 60 "$BIN" connect --to "127.0.0.1:$P" send "$TMP/d2/odd" >/dev/null 2>"$TMP/full.c.err"
  crc=$?
  wait_pid "$spid" 30
  src=$?
  if [ $crc -eq 1 ] && [ $src -eq 1 ] && grep -q "No space left on device" "$TMP/full.c.err" &&
    grep -q "removed the partial file" "$TMP/full.s.err"; then
    pass "full disk on the receiver: the sender exits 1 saying No space left on device"
  else
    fail "full disk: connect $crc, serve $src (want 1 1)"
    show "$TMP/full.s.err" "$TMP/full.c.err"
  fi
fi

if [ $FAILS -ne 0 ]; then
  echo "test_xfer: $FAILS check(s) FAILED"
  exit 1
fi
echo "test_xfer: all checks passed"
exit 0
