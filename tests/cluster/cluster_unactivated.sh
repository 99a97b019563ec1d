#!/usr/bin/env bash
# Issue 15 item 3, the remainder: a new actor placed on a node that went
# silent a moment later is moved, not stranded until that node returns.
# A real 3-node cluster on loopback (deploy/dev-cluster.sh, ephemeral ports,
# replication factor 1: the dev-cluster default). A node that is not the
# Raft leader is paused (SIGSTOP: its TCP connections stay up) and at once
# 30 new actors are claimed through the leader: while its renewals are still
# current (less than L/2 since the last one) the paused node is a placement
# candidate, so about a third of the claims land there and their first
# calls hang. Those placements were never activated (their owner ran no
# turn of them: cluster/activation.h), so once the leader sees the node's
# renewals stop it re-places them on live nodes (epoch + 1) without
# waiting for the node's lease to expire. Checks: every actor claimed on
# the paused node leaves it and answers a call through the other follower
# within SUCCESS_S of the pause, while the node is still paused (at R = 1
# nothing else moves a durable object: before the fix the calls kept
# failing until the node returned, even once it was marked DOWN -
# verified), starting from an empty state (the hung first calls never ran
# anywhere); after the node resumes and rejoins, they still hold exactly
# the one increment (no stale copy on the returning node, nothing applied
# twice).
. "$(dirname "$0")/../lib/it_lib.sh"
# A long lease widens the window in which the paused node still counts as
# current (placement: L/2 = 6 s after its last renewal, and its links are
# declared dead 5 s after its last frame) and keeps its DOWN mark
# (L + margin = 13.2 s) after the bound the calls must meet. The node is
# paused just after a renewal, so the claims (slow CLI processes on a
# loaded machine) have those 5 s (tests/lib/pause_lib.sh puts
# cluster.lease_ms in the configs).
LEASE_MS=12000
SUCCESS_S=20 # the node stays paused at least this long
export LMZ_REPLICATION_FACTOR=1 # one copy: nothing to fail over to
. "$(dirname "$0")/../lib/pause_lib.sh"
N=24
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
pause_cluster_start
addr_l=127.0.0.1:$(port "$L"); addr_q=127.0.0.1:$(port "$Q"); addr_p=127.0.0.1:$(port "$P")
echo "  leader $L, pausing node $P, calling through node $Q"
check "node $P serves calls before the pause" \
  wait_until 20 bash -c "\"$BIN/lmz\" call --node $addr_p --key-file $KEY --timeout 2000 COUNTER_DO before get | grep -qx '{\"json\":0,\"meta\":{}}'"

fresh_renewal() { # node P renewed within the last 600 ms (as the leader saw)
  local a
  a=$(node_field "$("$BIN/lmz" status --node "$addr_l" --key-file "$KEY")" "$P" lease_age_ms)
  is_num "$a" && [ "$a" -lt 600 ]
}
check "the leader hears a fresh renewal of node $P" wait_until 30 fresh_renewal
ppid=$(pid_of "$P")
kill -STOP "$ppid"
t_pause=$(now_ms)
ok "node $P paused (SIGSTOP pid $ppid)"

# N claims through the leader at once (12 callers; the node port admits 16
# unauthenticated connections per source address). Each first call
# increments; those placed on the paused node hang until --timeout (short:
# the claim is made within milliseconds, the rest of the wait is the hang).
W=12
for w in $(seq 0 $(( W - 1 ))); do
  ( for i in $(seq $(( w + 1 )) $W $N); do
      "$BIN/lmz" call --node "$addr_l" --key-file "$KEY" --timeout 500 \
        COUNTER_DO "unact-$i" increment 1 >"$T/first.$i" 2>&1
    done ) &
done
wait
on_p=()
for i in $(seq 1 $N); do
  "$BIN/lmz" locate --node "$addr_l" --key-file "$KEY" COUNTER_DO "unact-$i" >"$T/loc.$i" 2>&1
  grep -q "\"placed\":true,\"node\":$P," "$T/loc.$i" && on_p+=("$i")
done
echo "  claimed within $(( $(now_ms) - t_pause )) ms of the pause; on paused node $P: ${on_p[*]:-none}"
if [ "${#on_p[@]}" -eq 0 ]; then
  # the claims came after the leader already excluded node P (its last
  # renewal was nearly L/2 old at the pause): nothing to show this round
  echo "  no claim landed on node $P (placement excluded it already)"
  bad "at least one new actor was placed on paused node $P"
  finish; exit 1
fi
ok "${#on_p[@]} new actor(s) were placed on paused node $P"
for i in "${on_p[@]}"; do
  grep -q '^{"json":1,' "$T/first.$i" && bad "unact-$i's first call did not hang: $(cat "$T/first.$i")"
done

# The leader re-places them once node P's renewals are not current (L/2
# after its last one, plus its watch period): poll the directory.
moved() { local l; l=$(lmz_locate "$1") && grep -q '"placed":true' <<<"$l" && ! grep -q "\"node\":$P," <<<"$l"; }
lmz_locate() { "$BIN/lmz" locate --node "$addr_l" --key-file "$KEY" COUNTER_DO "unact-$1" 2>&1; }
where="moved off"
wait_until "$SUCCESS_S" moved "${on_p[0]}" || where="still on"
t_moved=$(now_ms)
s=$(st "$L")
echo "  unact-${on_p[0]} $where node $P $(( t_moved - t_pause )) ms after the pause (node $P then: $(grep -o "{\"id\":$P,[^}]*" <<<"$s"))"

# Every one of them answers through node Q within SUCCESS_S of the pause:
# its first increment never ran, so it counts 1 now.
answered() { # answered I: a call through Q increments unact-I from 0 to 1
  "$BIN/lmz" call --node "$addr_q" --key-file "$KEY" --timeout 1000 \
    COUNTER_DO "unact-$1" increment 1 >"$T/next.$1" 2>&1
  grep -qx '{"json":1,"meta":{}}' "$T/next.$1" && echo "$(now_ms)" >"$T/ok.$1"
}
deadline=$(( t_pause + SUCCESS_S * 1000 * ${LMZ_TEST_TIME_SCALE:-1} ))
for i in "${on_p[@]}"; do
  while [ ! -s "$T/ok.$i" ] && [ "$(now_ms)" -lt "$deadline" ]; do
    answered "$i" || sleep 0.05
  done
  if [ -s "$T/ok.$i" ]; then
    ok "unact-$i answers through node $Q $(( $(cat "$T/ok.$i") - t_pause )) ms after the pause, from an empty state"
  else
    bad "unact-$i answers through node $Q within ${SUCCESS_S} s of the pause (last: $(cat "$T/next.$i" 2>/dev/null))"
  fi
done
i=${on_p[0]}
lmz_locate "$i" >"$T/loc2"
echo "  unact-$i now: $(cat "$T/loc2")"
check "unact-$i left paused node $P" moved "$i"

kill -CONT "$ppid"
ok "node $P resumed (SIGCONT) $(( $(now_ms) - t_pause )) ms after the pause"
check "lmz status lists node $P as up" \
  wait_until 30 bash -c "\"$BIN/lmz\" status --node $addr_l --key-file $KEY | grep -q '\"id\":$P,\"state\":\"up\"'"
check "node $P serves calls again" \
  wait_until 30 bash -c "\"$BIN/lmz\" call --node $addr_p --key-file $KEY --timeout 2000 COUNTER_DO after get | grep -qx '{\"json\":0,\"meta\":{}}'"
for i in "${on_p[@]}"; do
  check "unact-$i holds exactly one increment, read through node $P" \
    wait_until 20 bash -c "\"$BIN/lmz\" call --node $addr_p --key-file $KEY --timeout 2000 COUNTER_DO unact-$i get | grep -qx '{\"json\":1,\"meta\":{}}'"
done
finish
