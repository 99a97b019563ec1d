#!/usr/bin/env bash
# Issue 9, "repeated faults": a seeded randomized run on a real 3-node
# cluster on loopback (deploy/dev-cluster.sh, ephemeral ports, the default
# R = 3). Under the load of tests/cluster/repl_load.c (6 callers, 100
# counters, through all nodes), for about LMZ_REPL_FAULT_S seconds (60):
# SIGKILL a random node (the leader too), keep it down 1-4 s, restart it,
# keep every node up 2-5 s, again. At most one node is down at a time (the
# guarantee is about any one node). Then all nodes are up and the
# Jepsen-style history check (tests/cluster/repl_check.c) proves every
# acknowledged increment is reflected exactly once, in real-time order, with
# one activation per counter through every node.
# The seed is printed; LMZ_REPL_SEED=N replays the same fault schedule (the
# cluster's own timing still varies). The pauses between faults are the
# schedule itself (seeded), not waits for a condition: those poll with
# deadlines. Skipped (77) unless the cluster replicates (tests/lib/repl_lib.sh).
. "$(dirname "$0")/../lib/repl_lib.sh"
SEED=${LMZ_REPL_SEED:-$(( $(date +%s) % 100000 ))}
DURATION=${LMZ_REPL_FAULT_S:-60}
echo "  seed $SEED (LMZ_REPL_SEED=$SEED replays this fault schedule), ${DURATION} s of faults"
RANDOM=$SEED
dc_setup
dc_start

load_start --callers 6 --seed "$SEED"
check "the load is acknowledged (200 increments)" wait_oks 200 30
# pause MIN MAX: a seeded pause of MIN..MAX seconds in 100 ms steps
pause() { local d=$(( $1 * 10 + RANDOM % (($2 - $1) * 10 + 1) )); sleep "$((d / 10)).$((d % 10))"; }
t_end=$(( $(date +%s) + DURATION ))
kills=0; restarts_ok=0
while [ "$(date +%s)" -lt "$t_end" ]; do
  v=$(( RANDOM % 3 + 1 ))
  "$DC" kill "$v" >/dev/null
  kills=$((kills + 1))
  echo "  $(date +%T): SIGKILL node $v"
  pause 1 4
  if "$DC" restart "$v" >"$T/restart.log" 2>&1; then
    restarts_ok=$((restarts_ok + 1))
  else
    echo "  node $v did not come back:"; sed 's/^/    /' "$T/restart.log"
    tail -5 "$LMZ_CLUSTER_DIR/node$v.log" | sed 's/^/    log: /'
  fi
  echo "  $(date +%T): node $v restarted"
  pause 2 5
done
check "every one of the $kills killed nodes restarted and answered ($restarts_ok)" test "$restarts_ok" = "$kills"
for n in 1 2 3; do dc_alive "$n" || "$DC" restart "$n" >/dev/null 2>&1; done
t_calm=$(now_us)
check "acknowledged increments go on once all nodes are up (200)" wait_oks 200 30 "$t_calm"
check "the load driver ends cleanly" load_stop
final_check 1,2,3
echo "  seed $SEED"
finish
