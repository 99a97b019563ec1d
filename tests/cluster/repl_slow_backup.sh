#!/usr/bin/env bash
# Issue 9, "slow backup": a real 3-node cluster on loopback (deploy/dev-cluster.sh,
# ephemeral ports, the default R = 3, cluster.replication.max_lag_ms =
# MAX_LAG_MS) under the load of tests/cluster/repl_load.c. A follower that
# backs up counters is paused (SIGSTOP; the load driver stops calling
# through it first, via its skip file). Checked:
#   - the owners keep serving: every call on a counter it backs up, through
#     the other nodes, succeeds within max_lag + 2 s while it is paused, and
#     at least 100 such calls are acknowledged;
#   - `lmz locate` drops it from every counter's "backups" (it left the
#     in-sync set) and `lmz status` counts under-replicated actors;
#   - after SIGCONT it catches up: it is listed in the same counters'
#     "backups" again and under_replicated returns to 0;
#   - the history check (tests/cluster/repl_check.c) at the end.
# Skipped (77) unless the cluster replicates (tests/lib/repl_lib.sh).
. "$(dirname "$0")/../lib/repl_lib.sh"
MAX_LAG_MS=1000
export LMZ_REPL_MAX_LAG_MS=$MAX_LAG_MS
dc_setup
dc_start " (max_lag_ms $MAX_LAG_MS)"

# calls on the counters the paused node owns hang until it is marked DOWN:
# many callers that give up on a counter soon keep the others busy
load_start --callers 12 --timeout-ms 4000 --retry-s 2 --seed "${LMZ_REPL_SEED:-3}"
check "the load is acknowledged (300 increments)" wait_oks 300 30
check "every counter is placed" wait_until 20 all_placed
check "nodes 1 and 2 agree on a leader" wait_until 15 agreed_leader 1 2
L=$(cat "$T/leader" 2>/dev/null)
is_num "$L" || { finish; exit 1; }
B=0; most=-1
for n in 1 2 3; do
  [ "$n" = "$L" ] && continue
  k=$(backed_by "$n"); [ "$k" -gt "$most" ] && most=$k && B=$n
done
awk -v n="$B" '{ m = split($4, b, ","); for (i = 1; i <= m; i++) if (b[i] == n) print $2 }' "$T/owners" >"$T/backed"
nb=$(wc -l <"$T/backed")
echo "  leader $L; pausing node $B, a backup of $nb counters"
check "node $B backs up counters before the pause ($nb)" test "$nb" -gt 0
# R = 1 (no backups): watch the counters node B does not own instead
[ "$nb" -gt 0 ] || awk -v n="$B" '$3 != n { print $2 }' "$T/owners" >"$T/backed"

echo "$B" >"$SKIPF"
sleep 0.3 # the driver re-reads its skip file every 100 ms
bpid=$(dc_pid "$B")
t_stop=$(now_us)
kill -STOP "$bpid"
ok "node $B paused (SIGSTOP pid $bpid)"
# acknowledged calls on the counters node B backs up, started after t_stop
backed_oks() {
  awk -v s="$t_stop" -v b="$B" 'FILENAME == ARGV[1] { w[$1] = 1; next }
    $1 == "op" && $7 == "ok" && $5 >= s && $4 != b && ($3 in w) { k++ } END { print k + 0 }' "$T/backed" "$HIST"
}
serving() { [ "$(backed_oks)" -ge 100 ]; }
check "the owners keep serving the counters node $B backs up (100 acknowledged)" \
  wait_until $(( MAX_LAG_MS / 1000 + 10 )) serving
dropped() { owners --exclude "$B" && [ "$(backed_by "$B")" = 0 ]; }
check "lmz locate drops node $B from every counter's backups" wait_until $(( MAX_LAG_MS / 1000 + 5 )) dropped
u=$(under_replicated "$(st "$L")")
check "lmz status counts under-replicated actors while node $B is paused (${u:-absent})" \
  bash -c '[[ "$1" =~ ^[0-9]+$ ]] && [ "$1" -gt 0 ]' _ "$u"
t_cont=$(now_us)
# every call through the other nodes on those counters while B was paused:
# answered, and within max_lag + 2 s
awk -v s="$t_stop" -v e="$t_cont" -v b="$B" 'FILENAME == ARGV[1] { w[$1] = 1; next }
  $1 == "op" && $5 >= s && $6 <= e && $4 != b && ($3 in w) {
    n++; if ($7 != "ok") bad++; lat = ($6 - $5) / 1000; if (lat > max) max = lat }
  END { printf "%d %d %.0f\n", n, bad, max }' "$T/backed" "$HIST" >"$T/lat"
read -r n_calls n_bad max_ms <"$T/lat"
echo "  while paused: $n_calls calls on node $B's counters, $n_bad not acknowledged, slowest ${max_ms} ms"
# the first few that were not acknowledged, as the history has them
awk -v s="$t_stop" -v e="$t_cont" -v b="$B" 'FILENAME == ARGV[1] { w[$1] = 1; next }
  $1 == "op" && $5 >= s && $6 <= e && $4 != b && ($3 in w) && $7 != "ok" && k++ < 5 {
    print "  not acknowledged: " $0 }' "$T/backed" "$HIST"
check "every one of them was acknowledged within max_lag + 2 s" \
  bash -c '[ "$1" -gt 0 ] && [ "$2" = 0 ] && [ "$3" -le "$4" ]' _ "$n_calls" "$n_bad" "$max_ms" $(( MAX_LAG_MS + 2000 ))

kill -CONT "$bpid"
rm -f "$SKIPF"
ok "node $B resumed (SIGCONT)"
rejoined() {
  local u
  owners && [ "$(backed_by "$B")" -ge "$nb" ] && u=$(under_replicated "$(st "$L")") && [ "$u" = 0 ]
}
check "node $B catches up: back in the backups of $nb counters, under_replicated 0" wait_until 30 rejoined
check "the load driver ends cleanly" load_stop
final_check 1,2,3
finish
