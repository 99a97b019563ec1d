# tests/lib/it_lib.sh - shared helpers for shell integration tests.
# Source it; it sets BIN, a scratch dir $T removed at exit, and counters.
# Every wait polls with a deadline (no fixed sleeps); every process started
# with start_lmzd is killed at exit.
set -u
BIN=${LMZ_BIN_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build/bin}
T=$(mktemp -d "${TMPDIR:-/tmp}/lmz-it.XXXXXX")
PASS=0
FAIL=0
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do
    { kill -9 "$p" && wait "$p"; } 2>/dev/null
  done
  rm -rf "$T"
}
trap cleanup EXIT

ok() { PASS=$((PASS + 1)); echo "ok - $*"; }
bad() { FAIL=$((FAIL + 1)); echo "not ok - $*"; }
check() { # check DESCRIPTION COMMAND...
  local d=$1; shift
  if "$@"; then ok "$d"; else bad "$d"; fi
}
finish() {
  echo "$PASS passed, $FAIL failed"
  [ "$FAIL" -eq 0 ]
}

# wait_until TIMEOUT_S COMMAND...: polls COMMAND every 20 ms until it succeeds.
# TIMEOUT_S is a hang guard: sanitizer builds scale it (LMZ_TEST_TIME_SCALE).
wait_until() {
  local deadline=$(( $(date +%s%N) / 1000000 + $1 * 1000 * ${LMZ_TEST_TIME_SCALE:-1} )); shift
  while ! "$@" 2>/dev/null; do
    [ $(( $(date +%s%N) / 1000000 )) -ge "$deadline" ] && return 1
    sleep 0.02
  done
}

# start_lmzd DATA_DIR [ARGS...]: starts lmzd --dev on ephemeral node and HTTP
# ports (lmzd reports them in DATA_DIR/node.port and DATA_DIR/http.port),
# waits until it answers, sets LMZD_PID and NODE (ip:port).
start_lmzd() {
  local data=$1; shift
  rm -f "$data/node.port" "$data/http.port" # stale ones from an earlier run
  "$BIN/lmzd" --dev --data "$data" --listen 127.0.0.1:0 --http 127.0.0.1:0 "$@" \
    >>"$data.log" 2>&1 &
  LMZD_PID=$!
  PIDS+=("$LMZD_PID")
  wait_until 20 test -s "$data/node.port" || { echo "lmzd did not start:"; tail -20 "$data.log"; return 1; }
  NODE="127.0.0.1:$(cat "$data/node.port")"
  wait_until 20 "$BIN/lmz" call --node "$NODE" --data "$data" ECHO_WORKER - echo 1 >/dev/null
}

# lcall DATA_DIR BINDING INSTANCE METHOD [ARGS...]: lmz call against NODE.
lcall() {
  local data=$1; shift
  "$BIN/lmz" call --node "$NODE" --data "$data" "$@"
}
