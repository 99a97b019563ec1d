#!/usr/bin/env bash
# A real network partition: three lmzd nodes, each in its own network
# namespace behind a bridge (ip netns + veth). Node X (the owner of some
# actors) is cut off from everyone by taking its link down. Checked:
#   - the majority never activates X's actors elsewhere: they answer a
#     retryable ActorUnavailableError (availability never trumps single
#     activation);
#   - the isolated owner stops serving its durable objects once its lease
#     ran out (checked from inside its namespace), i.e. before the majority
#     may consider its lease expired;
#   - after healing, X serves again and every actor has one activation.
# With one copy per actor ("replication": {"factor": 1}): the same
# partition with backups is tests/cluster/repl_partition.sh.
# Needs root (CAP_NET_ADMIN); otherwise it exits 77, which ctest reports as
# skipped (SKIP_RETURN_CODE 77), never as passed.
# Ports need no allocation: each node has its own namespace, hence its own
# port space. The subnet 10.ID.0.0/24 and the names are claimed by creating
# the bridge lmzbrID, which the kernel does atomically: a run takes the
# first ID whose bridge it could create (parallel runs cannot share one).
. "$(dirname "$0")/../lib/it_lib.sh"
if ! ip netns add "lmzp-probe-$$" 2>/dev/null; then
  echo "skipped: network namespaces unavailable (needs root / CAP_NET_ADMIN)"
  exit 77
fi
ip netns del "lmzp-probe-$$"

ID=
for i in $(seq 20 219); do
  if ip link add "lmzbr$i" type bridge 2>/dev/null; then ID=$i; break; fi
done
[ -n "$ID" ] || { bad "a free bridge name lmzbr20..219"; finish; exit 1; }
BR="lmzbr$ID"
NET="10.$ID.0"
KEY=$T/cluster.key
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$KEY"; echo >>"$KEY"; chmod 600 "$KEY"
LIB=$(cd "$BIN/../lib" && pwd)

net_cleanup() {
  for n in 1 2 3; do
    ip netns pids "lmzp$ID-$n" 2>/dev/null | xargs -r kill -9 2>/dev/null
    ip netns del "lmzp$ID-$n" 2>/dev/null
    ip link del "lmzv$ID-$n" 2>/dev/null
  done
  ip link del "$BR" 2>/dev/null
}
trap 'net_cleanup; cleanup' EXIT

ip link set "$BR" up && ip addr add "$NET.254/24" dev "$BR"
for n in 1 2 3; do
  ns="lmzp$ID-$n"
  ip netns add "$ns"
  ip link add "lmzv$ID-$n" type veth peer name eth0 netns "$ns"
  ip link set "lmzv$ID-$n" master "$BR" up
  ip netns exec "$ns" ip addr add "$NET.$n/24" dev eth0
  ip netns exec "$ns" ip link set eth0 up
  ip netns exec "$ns" ip link set lo up
done

voters="{\"id\":1,\"node\":\"$NET.1:7100\",\"raft\":\"$NET.1:7200\"},{\"id\":2,\"node\":\"$NET.2:7100\",\"raft\":\"$NET.2:7200\"},{\"id\":3,\"node\":\"$NET.3:7100\",\"raft\":\"$NET.3:7200\"}"
for n in 1 2 3; do
  mkdir -p "$T/n$n" && chmod 700 "$T/n$n" && install -m 600 "$KEY" "$T/n$n/cluster.key"
  cat >"$T/n$n.jsonc" <<CFG
{ "node": {"id": "node-$n", "data": "$T/n$n", "listen": "$NET.$n:7100", "http": "$NET.$n:8787"},
  "modules": ["$LIB/libcounter.so"],
  "durable_objects": {"bindings": [{"name": "COUNTER_DO", "class_name": "CounterDO"}]},
  "services": [{"binding": "ECHO_WORKER", "entrypoint": "EchoWorker"}],
  "cluster": {"id": $n, "raft": "$NET.$n:7200", "lease_ms": 3000, "voters": [$voters],
              "replication": {"factor": 1}} }
CFG
  ( ip netns exec "lmzp$ID-$n" "$BIN/lmzd" --config "$T/n$n.jsonc" >"$T/n$n.log" 2>&1 & )
done
c() { local n=$1; shift; "$BIN/lmz" call --node "$NET.$n:7100" --key-file "$KEY" --timeout 8000 "$@"; }
cin() { local n=$1; shift; ip netns exec "lmzp$ID-$n" "$BIN/lmz" call --node "$NET.$n:7100" --key-file "$KEY" --timeout 8000 "$@"; }
for n in 1 2 3; do
  wait_until 30 "$BIN/lmz" call --node "$NET.$n:7100" --key-file "$KEY" --timeout 2000 ECHO_WORKER - whereami >/dev/null \
    || { bad "node $n starts"; tail "$T/n$n.log"; finish; exit 1; }
done
ok "3 nodes in 3 network namespaces"

# find an actor owned by node 3 (the one we will isolate), with a write
X=3
for i in $(seq 1 60); do
  out=$(c 1 COUNTER_DO "p$i" activation)
  if grep -q '"node":"node-3"' <<<"$out"; then A="p$i"; ACT=$out; break; fi
done
check "an actor owned by node $X (${A:-none})" test -n "${A:-}"
[ -n "${A:-}" ] || { finish; exit 1; }
check "$A takes a write" test "$(c 1 COUNTER_DO "$A" increment 5)" = '{"json":5,"meta":{}}'

# partition node X from everybody
ip link set "lmzv$ID-$X" down
t0=$(date +%s%N)
# majority: X's actor is never activated elsewhere; it answers unavailable
sawdown=0; other_act=0; answers=0; garbled=0
deadline=$(( $(date +%s) + 15 ))
while [ "$(date +%s)" -lt "$deadline" ]; do
  out=$(c 1 COUNTER_DO "$A" activation 2>&1)
  grep -q '"node":"node-[12]"' <<<"$out" && other_act=1
  # each answer is node 3's activation (not yet cut off) or unavailable
  if grep -q '"node":"node-3"' <<<"$out" || grep -q ActorUnavailableError <<<"$out"; then
    answers=$((answers + 1))
  else
    garbled=$((garbled + 1)); echo "  unexpected answer: $out"
  fi
  grep -q '"state":"down"' <<<"$("$BIN/lmz" status --node "$NET.1:7100" --key-file "$KEY")" && { sawdown=1; break; }
  sleep 0.2
done
ms_down=$(( ($(date +%s%N) - t0) / 1000000 ))
check "the majority marks node $X DOWN only after its lease surely expired (${ms_down} ms >= 3300)" \
  bash -c '[ "$1" = 1 ] && [ "$2" -ge 3300 ]' _ "$sawdown" "$ms_down"
out=$(c 2 COUNTER_DO "$A" get 2>&1)
check "majority: $A answers ActorUnavailableError naming node $X" \
  bash -c 'grep -q ActorUnavailableError <<<"$1" && grep -q "\"owner\":'$X'" <<<"$1"' _ "$out"
check "majority never activated $A elsewhere ($answers answers, $garbled timeouts or others)" \
  bash -c '[ "$1" = 0 ] && [ "$2" -gt 0 ]' _ "$other_act" "$answers"
# the isolated owner has stopped serving by now (its lease ran out first)
out=$(cin "$X" COUNTER_DO "$A" get 2>&1); rc=$?
check "isolated node $X refuses to serve $A without a lease" \
  bash -c '[ "$1" != 0 ] && grep -q "unavailable" <<<"$2"' _ "$rc" "$out"

# heal
ip link set "lmzv$ID-$X" up
check "after healing node $X serves $A again with its state" \
  wait_until 20 bash -c "[ \"\$(\"$BIN/lmz\" call --node $NET.2:7100 --key-file $KEY COUNTER_DO $A get 2>/dev/null)\" = '{\"json\":5,\"meta\":{}}' ]"
a1=$(c 1 COUNTER_DO "$A" activation); a2=$(c 2 COUNTER_DO "$A" activation); a3=$(c 3 COUNTER_DO "$A" activation)
check "one activation of $A after healing" bash -c '[ "$1" = "$2" ] && [ "$2" = "$3" ] && grep -q "node-3" <<<"$1"' _ "$a1" "$a2" "$a3"
finish
