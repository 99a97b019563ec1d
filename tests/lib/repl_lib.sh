# tests/lib/repl_lib.sh - shared by the replication tests (tests/cluster/repl_*.sh,
# issue 9). Source it after nothing else; it sources it_lib.sh (BIN, $T,
# check/ok/bad/finish, wait_until).
#
# The load driver and the checker are build/tests/repl_load and
# build/tests/repl_check (tests/cluster/repl_load.c, repl_check.c). A test
# sets WHERE (how repl_load finds the nodes: --cluster DIR or --addrs
# A1,A2,..), NODES and KEY, then:
#   repl_gate STATUS_JSON   exit 77 (skipped) unless the cluster replicates:
#                           LMZ_REPL_TESTS=1 runs anyway (to see what R = 1
#                           does), =0 always skips; unset: run when `lmz
#                           status` has a "replication" member. Prints it.
#   load_start [ARGS]       the load driver in the background (history $HIST)
#   load_stop               ends it (stop file) and waits for it
#   final_check VIA         final totals + activations through the nodes VIA
#                           ("1,2,3"), then the history check: two checks
#   owners [ARGS]           `locate` of every counter -> $T/owners lines
#                           "owner I NODE BACKUPS" (BACKUPS "-" when none)
# Loopback clusters (deploy/dev-cluster.sh, ephemeral ports): dc_setup,
# dc_start (which runs repl_gate), then port/st/loc/leader_of/dc_alive. Every wait has a deadline.
. "$(dirname "${BASH_SOURCE[0]}")/it_lib.sh"
ROOT=${LMZ_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
TESTBIN=${LMZ_TEST_BIN_DIR:-$BIN/../tests}
LOAD=$TESTBIN/repl_load
CHECK=$TESTBIN/repl_check
HIST=$T/history
STOPF=$T/load.stop
SKIPF=$T/load.skip
COUNTERS=${LMZ_REPL_COUNTERS:-100}
LEASE_MS=3000 # the default lease (cluster.lease_ms), which the tests keep
LOAD_PID=
WHERE=()
NODES=3
KEY=

if [ ! -x "$LOAD" ] || [ ! -x "$CHECK" ]; then
  echo "not ok - $LOAD and $CHECK are built (cmake --build build --target repl_load repl_check)"
  exit 1
fi

now_us() { echo $(( $(date +%s%N) / 1000 )); }

repl_gate() {
  case ${LMZ_REPL_TESTS:-auto} in
  0) echo "skipped: LMZ_REPL_TESTS=0"; exit 77 ;;
  1) echo "  LMZ_REPL_TESTS=1: running whether or not the cluster replicates" ;;
  *) if ! grep -q '"replication"' <<<"$1"; then
       echo "skipped: this lmzd does not replicate (no \"replication\" in lmz status);"
       echo "         LMZ_REPL_TESTS=1 runs the test anyway"
       exit 77
     fi ;;
  esac
  echo "  $(grep -o '"replication":{[^}]*}' <<<"$1" || echo 'no replication in lmz status')"
}

# ---- the load driver -----------------------------------------------------------

load_start() { # load_start [ARGS...]: K callers on COUNTERS counters until load_stop
  rm -f "$STOPF"
  "$LOAD" run "${WHERE[@]}" --key-file "$KEY" --nodes "$NODES" --counters "$COUNTERS" \
    --history "$HIST" --stop-file "$STOPF" --skip-file "$SKIPF" --seconds 600 "$@" \
    2>>"$T/load.err" &
  LOAD_PID=$!
  PIDS+=("$LOAD_PID")
}

load_stop() { # the driver stops within one call timeout of the stop file
  [ -n "$LOAD_PID" ] || return 1
  touch "$STOPF"
  wait "$LOAD_PID"
  local rc=$?
  LOAD_PID=
  sed 's/^/  /' "$T/load.err"
  return $rc
}

# hist_oks [SINCE_US [NODE]]: acknowledged ops that started at or after SINCE_US
# (through NODE)
hist_oks() {
  awk -v s="${1:-0}" -v n="${2:-}" \
    '$1 == "op" && $7 == "ok" && $5 >= s && (n == "" || $4 == n) { k++ } END { print k + 0 }' "$HIST"
}
# wait_oks N SECONDS [SINCE_US]: until N ops were acknowledged (since SINCE_US)
oks_at_least() { [ "$(hist_oks "$2")" -ge "$1" ]; }
wait_oks() { wait_until "$2" oks_at_least "$1" "${3:-0}"; }

final_check() { # final_check VIA: totals, activations, then the history check
  "$LOAD" final "${WHERE[@]}" --key-file "$KEY" --nodes "$NODES" --counters "$COUNTERS" \
    --history "$HIST" --via "$1" --deadline-s 30 2>"$T/final.err"
  local frc=$?
  sed 's/^/  /' "$T/final.err" | tail -12
  check "every counter answers a final total and its activation through nodes $1" test "$frc" = 0
  "$CHECK" "$HIST" >"$T/check.out" 2>&1
  local crc=$?
  sed 's/^/  /' "$T/check.out"
  check "history: every acknowledged increment reflected exactly once, one activation per counter" \
    test "$crc" = 0
  # a lost, doubled or reordered acknowledged write is never a timing
  # flake: make check's retry does not excuse it (LMZ_FINDINGS,
  # tests/san_run.sh). Missing answers (no final total, no activation: the
  # cluster did not answer in time) are liveness, which a retry may judge.
  local safety
  safety=$(grep 'VIOLATION' "$T/check.out" |
    grep -v -E 'no final total|no acknowledged op|no activation answer' || true)
  [ -n "$safety" ] && [ -n "${LMZ_FINDINGS:-}" ] &&
    echo "history violations in $0: $(head -3 <<<"$safety" | tr '\n' ' ')" >>"$LMZ_FINDINGS"
  local keep=${TMPDIR:-/tmp}/lmz-repl-failed.$$
  if [ "$crc" != 0 ] && mkdir -p "$keep" && cp "$HIST" "$keep/history"; then
    cp "$LMZ_CLUSTER_DIR"/node*.log "$keep/" 2>/dev/null
    echo "  (history and node logs kept in $keep)"
  fi
}

owners() { # owners [--exclude N]: "owner I NODE BACKUPS" lines in $T/owners
  "$LOAD" owners "${WHERE[@]}" --key-file "$KEY" --nodes "$NODES" --counters "$COUNTERS" \
    "$@" >"$T/owners" 2>>"$T/owners.err"
}
# every counter placed (owners answered, no owner 0)
all_placed() { owners "$@" && [ "$(wc -l <"$T/owners")" = "$COUNTERS" ] && ! awk '$3 == 0 { f = 1 } END { exit !f }' "$T/owners"; }
owned_by() { awk -v n="$1" '$3 == n { k++ } END { print k + 0 }' "$T/owners"; }
# counters whose backups list node N (in $T/owners)
backed_by() { awk -v n="$1" '{ m = split($4, b, ","); for (i = 1; i <= m; i++) if (b[i] == n) { k++; break } } END { print k + 0 }' "$T/owners"; }
# counters that list no backup at all
no_backups() { awk '$4 == "-" || $4 == "" { k++ } END { print k + 0 }' "$T/owners"; }
# every counter lists a backup (a counter claimed while a node was not yet a
# candidate starts with a shorter list and is refilled)
all_backed() { owners "$@" && [ "$(no_backups)" = 0 ]; }

# ---- loopback clusters (deploy/dev-cluster.sh) -------------------------------------

dc_setup() { # the environment dev-cluster.sh reads; the teardown trap
  export LMZ_CLUSTER_DIR=$T/cluster LMZ_BIN_DIR=$BIN LMZ_PORT_OFFSET=ephemeral
  export LMZ_LIB_DIR=${LMZ_LIB_DIR:-$(cd "$BIN/../lib" && pwd)}
  DC="$ROOT/deploy/dev-cluster.sh"
  KEY=$LMZ_CLUSTER_DIR/cluster.key
  WHERE=(--cluster "$LMZ_CLUSTER_DIR")
  NODES=3
  export DC KEY BIN
  trap 'dc_teardown; cleanup' EXIT
}

dc_pid() { cat "$LMZ_CLUSTER_DIR/node$1.pid" 2>/dev/null; }
dc_teardown() { # a stopped process ignores SIGTERM: resume every node first
  local n p
  [ -n "$LOAD_PID" ] && touch "$STOPF" && kill -9 "$LOAD_PID" 2>/dev/null
  for n in 1 2 3; do p=$(dc_pid "$n") && [ -n "$p" ] && kill -CONT "$p" 2>/dev/null; done
  "$DC" stop >/dev/null 2>&1
  for n in 1 2 3; do "$DC" kill "$n" >/dev/null 2>&1; done
}
# dc_start [NOTE]: the cluster starts (a check), then repl_gate on its status
dc_start() {
  "$DC" start >"$T/start.log" 2>&1 || { cat "$T/start.log"; bad "3-node cluster starts"; finish; exit 1; }
  ok "3-node cluster starts${1:-}"
  repl_gate "$(st 1)"
}
port() { "$DC" port "$1"; }
st() { "$BIN/lmz" status --node "127.0.0.1:$(port "$1")" --key-file "$KEY"; }
loc() { "$BIN/lmz" locate --node "127.0.0.1:$(port "$1")" --key-file "$KEY" COUNTER_DO "$2"; }
dc_alive() { local p; p=$(dc_pid "$1") && [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }
leader_of() { sed -nE 's/.*"leader":([0-9]+),.*/\1/p' <<<"$1"; }
under_replicated() { sed -nE 's/.*"replication":\{[^}]*"under_replicated":([0-9]+).*/\1/p' <<<"$1"; }
is_num() { [[ "$1" =~ ^[0-9]+$ ]]; }

# the leader as nodes A and B both see it, into $T/leader
agreed_leader() {
  local a b
  a=$(leader_of "$(st "$1")"); b=$(leader_of "$(st "$2")")
  is_num "$a" && [ "$a" != 0 ] && [ "$a" = "$b" ] && echo "$a" >"$T/leader"
}

# the non-leader node that owns the most counters (after owners)
busiest_follower() {
  local L=$1 n best=0 most=-1 k
  for n in $(seq 1 "$NODES"); do
    [ "$n" = "$L" ] && continue
    k=$(owned_by "$n")
    [ "$k" -gt "$most" ] && most=$k && best=$n
  done
  echo "$best"
}
