#!/usr/bin/env bash
# The replication tests' history checker (tests/cluster/repl_check.c) on
# hand-made histories: it accepts a linearizable counter history and
# rejects each kind of violation it exists for, naming it. Then end to end
# with the load driver (tests/cluster/repl_load.c) on one lmzd --dev node:
# a run, a SIGKILL and a restart on the same data pass; a restart on a
# deleted data directory (one copy, lost) fails with lost increments.
# Proves the checks of tests/cluster/repl_*.sh can fail, on every run (those
# skip until the cluster replicates).
. "$(dirname "$0")/../lib/repl_lib.sh"

good() { cat <<'H'
# caller counter node start_us end_us outcome
op 0 1 1 100 200 ok 1
op 1 1 2 150 250 ok 2
op 0 1 3 300 400 unknown timeout
op 0 1 1 500 600 ok 4
op 1 2 1 100 200 fail ActorUnavailableError
op 1 2 1 300 350 ok 1
final 1 1 4
final 2 3 1
act 1 1 node-1 a1
act 1 2 node-1 a1
act 1 3 node-1 a1
act 2 1 node-2 b1
act 2 2 node-2 b1
H
}
# verdict NAME PATTERN HISTORY: the checker rejects HISTORY, saying PATTERN
verdict() {
  local out rc
  out=$("$CHECK" /dev/stdin <<<"$3"); rc=$?
  echo "$out" | sed 's/^/  /'
  check "$1" bash -c '[ "$1" = 1 ] && grep -q -- "$2" <<<"$3"' _ "$rc" "$2" "$out"
}

out=$("$CHECK" /dev/stdin <<<"$(good)"); rc=$?
echo "  $out"
check "a linearizable history passes" bash -c '[ "$1" = 0 ] && grep -q "4 acknowledged.*1 failed.*1 unknown.*0 violations" <<<"$2"' _ "$rc" "$out"
verdict "a value acknowledged twice fails" "value 2 acknowledged twice" "$(good | sed 's/ok 4$/ok 2/')"
verdict "a final total below an acknowledged value fails (lost writes)" \
  "final total 3 < acknowledged 4" "$(good | sed 's/^final 1 1 4$/final 1 1 3/')"
verdict "a final total above acknowledged + maybe fails" \
  "final total 5 > 3 acknowledged + 1 maybe" "$(good | sed 's/^final 1 1 4$/final 1 1 5/')"
# the order check: value 4 acknowledged at 600 us, then a later op gets 3
# (an increment on a copy that missed 4) although 3 was never seen twice
verdict "an acknowledged increment lost in real-time order fails" \
  "value 3 (node 2, started 700) came after value 4" "$(good; echo 'op 1 1 2 700 800 ok 3')"
verdict "two live activations fail" "two live activations" \
  "$(good | sed 's/^act 1 3 node-1 a1$/act 1 3 node-3 x9/')"
verdict "a counter with no final total fails" "no final total" "$(good | grep -v '^final 2')"
verdict "a counter with no activation answer fails" "counter 2: no activation answer" "$(good | grep -v '^act 2')"
verdict "an empty history fails (nothing checked is not a pass)" "nothing was checked" ""
verdict "a malformed line fails" "line 1 is malformed" "$(echo 'op 1 x'; good)"
verdict "a value below 1 fails" "below 1" "$(good | sed 's/^op 1 2 1 300 350 ok 1$/op 1 2 1 300 350 ok 0/' | sed 's/^final 2 3 1$/final 2 3 0/')"

# ---- end to end on one node ---------------------------------------------------
D=$T/dev
KEY=$D/cluster.key
start_lmzd "$D" || { bad "lmzd --dev starts"; finish; exit 1; }
ok "lmzd --dev starts ($NODE)"
drive() { # drive HISTORY: 4 callers on 20 counters for 1 s, then the finals
  "$LOAD" run --addrs "$NODE" --nodes 1 --key-file "$KEY" --counters 20 --callers 4 \
    --seconds 1 --history "$1" 2>/dev/null
}
finals() { "$LOAD" final --addrs "$NODE" --nodes 1 --key-file "$KEY" --counters 20 --history "$1" 2>/dev/null; }
restart() { # restart [wipe]: SIGKILL lmzd, start it again (on an empty data dir)
  kill -9 "$LMZD_PID"; wait "$LMZD_PID" 2>/dev/null
  [ "${1:-}" = wipe ] && rm -rf "$D" && mkdir -p "$D" && chmod 700 "$D" && install -m 600 "$T/key" "$D/cluster.key"
  start_lmzd "$D"
}
cp "$KEY" "$T/key"
drive "$T/h1" && restart && drive "$T/h1" && finals "$T/h1"
out=$("$CHECK" "$T/h1"); rc=$?
echo "  $out" | tail -1
check "a run, a SIGKILL and a restart on the same data: every increment kept" \
  bash -c '[ "$1" = 0 ] && grep -q "0 violations" <<<"$2" && ! grep -q " 0 acknowledged" <<<"$2"' _ "$rc" "$out"
drive "$T/h2" && restart wipe && drive "$T/h2" && finals "$T/h2"
out=$("$CHECK" "$T/h2"); rc=$?
echo "$out" | tail -2 | sed 's/^/  /'
check "a restart on a deleted data directory fails the check (lost increments)" \
  bash -c '[ "$1" = 1 ] && grep -q "acknowledged twice\|was lost\|< acknowledged" <<<"$2"' _ "$rc" "$out"
finish
