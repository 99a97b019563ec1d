#!/usr/bin/env bash
# Issue 9 item 7, "lmz node drain moves owner AND backup roles": a real 3-node
# cluster on loopback (deploy/dev-cluster.sh, ephemeral ports, the default
# R = 3) under the load of tests/cluster/repl_load.c. A follower that owns
# and backs up counters is drained (the load driver stops calling through it
# first, via its skip file). Checked:
#   - `lmz node drain` answers with the moves, and only once the node backs
#     up nothing: right after its answer `lmz locate` shows the node neither
#     owning nor listed in any counter's backups (actor/drain.c waits for
#     the owners to fill replacements and PAIR_OUT it, cluster/repl.h);
#   - the load keeps being acknowledged after the drain;
#   - the history check (tests/cluster/repl_check.c) at the end, through the
#     two other nodes.
# Skipped (77) unless the cluster replicates (tests/lib/repl_lib.sh).
#
# Three causes of lost acknowledged increments were found and fixed here:
# a call forwarded to the old owner between the export and the move ran
# there (now refused MOVED while the actor is moving: router.c); an older
# record resent on the old owner's stream after the import overwrote it
# (now refused by the target: repl.h lmz_repl_imported); and the drain
# unmarked the actor at the leader's verdict, before this node's own
# replica applied the move, so a call in that window ran here on the
# dropped state (now it waits for the replica: drain.h step 5, pinned by
# tests/unit/actor/test_drain_settle.c). It failed about one run in three
# before the last fix, 0 of 15 after it.
. "$(dirname "$0")/../lib/repl_lib.sh"
dc_setup
dc_start

load_start --callers 8 --timeout-ms 4000 --retry-s 2 --seed "${LMZ_REPL_SEED:-5}"
check "the load is acknowledged (300 increments)" wait_oks 300 30
check "every counter is placed" wait_until 20 all_placed
check "nodes 1 and 2 agree on a leader" wait_until 15 agreed_leader 1 2
L=$(cat "$T/leader" 2>/dev/null)
is_num "$L" || { finish; exit 1; }
check "every counter lists a backup" wait_until 20 all_backed
B=0; most=-1
for n in 1 2 3; do
  [ "$n" = "$L" ] && continue
  k=$(backed_by "$n"); [ "$k" -gt "$most" ] && most=$k && B=$n
done
nb=$(backed_by "$B"); no=$(owned_by "$B")
echo "  leader $L; draining node $B: owner of $no counters, a backup of $nb"
check "node $B backs up counters before the drain ($nb)" test "$nb" -gt 0
VIA=$(for n in 1 2 3; do [ "$n" != "$B" ] && printf '%s,' "$n"; done); VIA=${VIA%,}

echo "$B" >"$SKIPF"
sleep 0.3 # the driver re-reads its skip file every 100 ms
out=$("$BIN/lmz" node drain --node "127.0.0.1:$(port "$L")" --key-file "$KEY" "$B" 2>&1)
echo "  lmz node drain $B: $out"
check "lmz node drain $B answers with its moves" grep -q '"moved"' <<<"$out" ||
  { echo "  node $B alive: $(dc_alive "$B" && echo yes || echo no)"; tail -15 "$LMZ_CLUSTER_DIR/node$B.log" | sed 's/^/  /'; }
owners --exclude "$B"
ob=$(owned_by "$B"); bb=$(backed_by "$B")
check "right after the answer node $B owns nothing ($ob) and backs up nothing ($bb)" \
  bash -c '[ "$1" = 0 ] && [ "$2" = 0 ]' _ "$ob" "$bb"
t_after=$(now_us)
check "every counter still lists a backup" wait_until 20 all_backed --exclude "$B"
check "the load keeps being acknowledged after the drain (200 more)" wait_oks 200 30 "$t_after"
check "the load driver ends cleanly" load_stop
final_check "$VIA"
finish
