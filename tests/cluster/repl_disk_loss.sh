#!/usr/bin/env bash
# Issue 9, "disk loss": a real 3-node cluster on loopback (deploy/dev-cluster.sh,
# ephemeral ports, the default R = 3) under the load of
# tests/cluster/repl_load.c (8 callers, 100 counters, through all nodes).
# The follower that owns the most counters is SIGKILLed, its whole data
# directory (RocksDB, Raft log and snapshot, keys) deleted, and it is started
# again at once on the empty directory (dev-cluster.sh restart: the same
# id, config and cluster key). It must rejoin and never serve a stale (here:
# empty) copy: the history check (tests/cluster/repl_check.c) proves that no
# acknowledged increment was lost or counted twice, and `lmz status` must
# report 0 under-replicated actors again (the node refilled).
# Skipped (77) unless the cluster replicates (tests/lib/repl_lib.sh).
. "$(dirname "$0")/../lib/repl_lib.sh"
dc_setup
dc_start

load_start --callers 8 --seed "${LMZ_REPL_SEED:-2}"
check "the load is acknowledged (300 increments)" wait_oks 300 30
check "every counter is placed" wait_until 20 all_placed
check "nodes 1 and 2 agree on a leader" wait_until 15 agreed_leader 1 2
L=$(cat "$T/leader" 2>/dev/null)
is_num "$L" || { finish; exit 1; }
V=$(busiest_follower "$L")
echo "  leader $L; node $V owns $(owned_by "$V") of $COUNTERS counters and backs up $(backed_by "$V")"
wait_until 20 all_backed
check "lmz locate lists backups for every counter ($(no_backups) without)" test "$(no_backups)" = 0

t_kill=$(now_us)
"$DC" kill "$V" >/dev/null
rm -rf "${LMZ_CLUSTER_DIR:?}/node$V"
check "node $V's data directory is gone" test ! -e "$LMZ_CLUSTER_DIR/node$V"
"$DC" restart "$V" >"$T/restart.log" 2>&1
rrc=$?
sed 's/^/  /' "$T/restart.log" | tail -4
check "node $V restarts on an empty data directory and answers" test "$rrc" = 0
[ "$rrc" = 0 ] || tail -15 "$LMZ_CLUSTER_DIR/node$V.log" | sed 's/^/  node log: /'
# it bootstraps its Raft state afresh from the config: it must join the
# existing group (same leader), not lead one of its own
same_leader() { local a b; a=$(leader_of "$(st "$V")") && b=$(leader_of "$(st "$L")") && is_num "$a" && [ "$a" != 0 ] && [ "$a" = "$b" ]; }
check "node $V follows the cluster's leader again" wait_until 15 same_leader
check "acknowledged increments go on after the disk loss (300)" wait_oks 300 20 "$t_kill"
refilled() { local s u; s=$(st "$L") && u=$(under_replicated "$s") && is_num "$u" && [ "$u" = 0 ]; }
check "lmz status reaches 0 under-replicated actors" \
  wait_until 30 refilled
u=$(under_replicated "$(st "$L")")
echo "  under_replicated now: ${u:-absent}"
check "the load driver ends cleanly" load_stop
final_check 1,2,3
finish
