#!/usr/bin/env bash
# Durability is a promise: every write a reply acknowledged survives SIGKILL.
# Four writers increment their own counters through lmz call and log each
# acknowledged total; lmzd is killed with SIGKILL mid-stream, restarted on the
# same data, and every counter must hold at least its last acknowledged total
# (and at most one more increment, the one in flight). Then an alarm scheduled
# before a SIGKILL must fire after the restart.
. "$(dirname "$0")/../lib/it_lib.sh"
D=$T/node
start_lmzd "$D" || { bad "lmzd starts"; finish; exit 1; }

writer() { # writer NAME: increments until the node dies; logs acked totals
  local name=$1 out
  while out=$(lcall "$D" --timeout 5000 COUNTER_DO "$name" increment 1 2>/dev/null); do
    sed -E 's/^\{"json":([0-9]+),.*/\1/' <<<"$out" >>"$T/acked.$name"
  done
}
for w in w1 w2 w3 w4; do writer "$w" & done
# let some acknowledged writes accumulate (bounded), then crash the node
wait_until 60 bash -c "[ \$(cat $T/acked.w* 2>/dev/null | wc -l) -ge 120 ]"
kill -9 "$LMZD_PID"
wait "$LMZD_PID" 2>/dev/null
wait # the writers stop once the node is gone
total_acked=$(cat "$T"/acked.w* | wc -l)
check "writers got acknowledgements before the crash ($total_acked)" test "$total_acked" -ge 120

start_lmzd "$D" || { bad "lmzd restarts after SIGKILL"; finish; exit 1; }
ok "lmzd restarts on the crashed data directory"
for w in w1 w2 w3 w4; do
  last=$(tail -n 1 "$T/acked.$w" 2>/dev/null || echo 0)
  got=$(lcall "$D" COUNTER_DO "$w" get | sed -E 's/^\{"json":([0-9]+),.*/\1/')
  check "$w: acknowledged $last, found $got after restart" \
    bash -c '[ "$2" -ge "$1" ] && [ "$2" -le $(( $1 + 1 )) ]' _ "$last" "$got"
done

# an alarm scheduled, acknowledged, then a SIGKILL: it fires after restart
lcall "$D" COUNTER_DO al schedule 1500 7 >/dev/null
kill -9 "$LMZD_PID"; wait "$LMZD_PID" 2>/dev/null
start_lmzd "$D" || { bad "lmzd restarts"; finish; exit 1; }
check "the alarm fires after the restart" \
  wait_until 30 bash -c "[ \"\$(\"$BIN/lmz\" call --node $NODE --data $D COUNTER_DO al get)\" = '{\"json\":7,\"meta\":{}}' ]"
# one-shot: after yet another restart (recovery polls alarms at once) it
# has not run again
kill -TERM "$LMZD_PID"; wait "$LMZD_PID" 2>/dev/null
start_lmzd "$D" || { bad "lmzd restarts"; finish; exit 1; }
lcall "$D" COUNTER_DO other get >/dev/null   # a full round trip after recovery
check "and it ran only once" test "$(lcall "$D" COUNTER_DO al get)" = '{"json":7,"meta":{}}'

finish
