# cli_lib.sh: what the shell tests of the quic-portal tool share. Source it
# with BIN set (the binary, checked here), NEED (tools required besides
# bash) and NAME (prefix of the temporary folder). It sets TMP, PIDS=(),
# FAILS=0 and HAVE_PY (1 when python3 is there), and removes TMP and kills
# the processes in PIDS on exit.

if [ -z "$BIN" ] || [ ! -x "$BIN" ]; then
  echo "usage: $0 PATH/TO/quic-portal (not executable: '${BIN}')" >&2
  exit 77
fi
BIN="$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")" # usable after cd
for tool in $NEED; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "SKIP: $tool is not installed" >&2
    exit 77
  fi
done
HAVE_PY=0
command -v python3 >/dev/null 2>&1 && HAVE_PY=1
TMP=$(mktemp -d "/tmp/$NAME.XXXXXX")
PIDS=()
FAILS=0

cleanup() {
  for pid in "${PIDS[@]}"; do
    kill -KILL "$pid" 2>/dev/null
  done
  wait 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '== %s\n' "$*"; }
pass() { printf 'ok   %s\n' "$*"; }
fail() {
  printf 'FAIL %s\n' "$*"
  FAILS=$((FAILS + 1))
}
# check DESCRIPTION COMMAND...: pass when the command succeeds.
check() {
  local what=$1
  shift
  if "$@"; then pass "$what"; else fail "$what"; fi
}
show() { # show FILE...: print files after a failure, for the log
  for f in "$@"; do
    [ -f "$f" ] && sed "s|^|    $(basename "$f"): |" "$f"
  done
}

free_udp_port() {
  if [ "$HAVE_PY" = 1 ]; then
    python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
  else
    echo $((20000 + RANDOM % 30000))
  fi
}

# wait_for FILE PATTERN [SECONDS]: until FILE has a line matching PATTERN.
wait_for() {
  local deadline=$((SECONDS + ${3:-10}))
  while [ $SECONDS -lt $deadline ]; do
    grep -q -- "$2" "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

# wait_nonempty FILE [SECONDS]
wait_nonempty() {
  local deadline=$((SECONDS + ${2:-10}))
  while [ $SECONDS -lt $deadline ]; do
    [ -s "$1" ] && return 0
    sleep 0.02
  done
  return 1
}

# wait_pid PID SECONDS: the exit status of PID, or 124 after killing it.
wait_pid() {
  local pid=$1 deadline=$((SECONDS + $2))
  while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
    sleep 0.05
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 124
  fi
  wait "$pid" 2>/dev/null # no "Killed" line for a victim of the test
}

