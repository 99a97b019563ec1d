#!/usr/bin/env bash
# Issue 9, "partition": five lmzd nodes (all voters, the default R = 3), each
# in its own network namespace behind one bridge (ip netns + veth, as
# tests/cluster/cluster_partition.sh), under the load of
# tests/cluster/repl_load.c (8 callers, 100 counters, through all five nodes,
# from the host side of the bridge, so clients reach both sides). A
# follower X that owns counters and Y, the node that backs up most of them,
# are cut off from the other three (blackhole routes both ways inside the
# namespaces; X and Y still reach each other and the clients). Checked:
#   - the minority stops acknowledging once the lease lapses: no call
#     through X or Y that started later than lease + 0.5 s after the cut is
#     acknowledged (and such calls were made);
#   - the majority promotes: every counter answers a `get` through the three
#     majority nodes within lease + 3 s of the cut;
#   - after healing X and Y serve again, and the history check
#     (tests/cluster/repl_check.c) proves nothing acknowledged was lost or
#     counted twice, with one activation per counter through all five nodes.
# Needs root (CAP_NET_ADMIN), else exits 77 (skipped); also skipped (77)
# unless the cluster replicates (tests/lib/repl_lib.sh).
. "$(dirname "$0")/../lib/repl_lib.sh"
if ! ip netns add "lmzr-probe-$$" 2>/dev/null; then
  echo "skipped: network namespaces unavailable (needs root / CAP_NET_ADMIN)"
  exit 77
fi
ip netns del "lmzr-probe-$$"

ID=
for i in $(seq 20 219); do
  if ip link add "lmzbr$i" type bridge 2>/dev/null; then ID=$i; break; fi
done
[ -n "$ID" ] || { bad "a free bridge name lmzbr20..219"; finish; exit 1; }
BR="lmzbr$ID"
NET="10.$ID.0"
NODES=5
KEY=$T/cluster.key
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$KEY"; echo >>"$KEY"; chmod 600 "$KEY"
LIB=$(cd "$BIN/../lib" && pwd)
ns() { echo "lmzr$ID-$1"; }

net_cleanup() {
  [ -n "$LOAD_PID" ] && kill -9 "$LOAD_PID" 2>/dev/null
  for n in $(seq 1 $NODES); do
    ip netns pids "$(ns "$n")" 2>/dev/null | xargs -r kill -9 2>/dev/null
    ip netns del "$(ns "$n")" 2>/dev/null
    ip link del "lmzr$ID-v$n" 2>/dev/null
  done
  ip link del "$BR" 2>/dev/null
}
trap 'net_cleanup; cleanup' EXIT

ip link set "$BR" up && ip addr add "$NET.254/24" dev "$BR"
voters=""
for n in $(seq 1 $NODES); do
  ip netns add "$(ns "$n")"
  ip link add "lmzr$ID-v$n" type veth peer name eth0 netns "$(ns "$n")"
  ip link set "lmzr$ID-v$n" master "$BR" up
  ip netns exec "$(ns "$n")" ip addr add "$NET.$n/24" dev eth0
  ip netns exec "$(ns "$n")" ip link set eth0 up
  ip netns exec "$(ns "$n")" ip link set lo up
  voters+="${voters:+,}{\"id\":$n,\"node\":\"$NET.$n:7100\",\"raft\":\"$NET.$n:7200\"}"
done
addrs=""
for n in $(seq 1 $NODES); do
  mkdir -p "$T/n$n" && chmod 700 "$T/n$n" && install -m 600 "$KEY" "$T/n$n/cluster.key"
  cat >"$T/n$n.jsonc" <<CFG
{ "node": {"id": "node-$n", "data": "$T/n$n", "listen": "$NET.$n:7100", "http": "$NET.$n:8787"},
  "modules": ["$LIB/libcounter.so"],
  "durable_objects": {"bindings": [{"name": "COUNTER_DO", "class_name": "CounterDO"}]},
  "services": [{"binding": "ECHO_WORKER", "entrypoint": "EchoWorker"}],
  "storage": {"sync": true},
  "cluster": {"id": $n, "raft": "$NET.$n:7200", "lease_ms": $LEASE_MS, "voters": [$voters]} }
CFG
  ( ip netns exec "$(ns "$n")" "$BIN/lmzd" --config "$T/n$n.jsonc" >"$T/n$n.log" 2>&1 & )
  addrs+="${addrs:+,}$NET.$n:7100"
done
WHERE=(--addrs "$addrs")
for n in $(seq 1 $NODES); do
  wait_until 30 "$BIN/lmz" call --node "$NET.$n:7100" --key-file "$KEY" --timeout 2000 ECHO_WORKER - whereami >/dev/null \
    || { bad "node $n starts"; tail "$T/n$n.log"; finish; exit 1; }
done
ok "$NODES nodes in $NODES network namespaces"
st() { "$BIN/lmz" status --node "$NET.$1:7100" --key-file "$KEY"; }
s=$(st 1)
repl_gate "$s"

load_start --callers 8 --timeout-ms 4000 --retry-s 2 --seed "${LMZ_REPL_SEED:-4}"
check "the load is acknowledged (300 increments)" wait_oks 300 30
check "every counter is placed" wait_until 20 all_placed
L=$(sed -nE 's/.*"leader":([0-9]+),.*/\1/p' <<<"$(st 1)")
check "lmz status names a leader ($L)" is_num "$L"
is_num "$L" || { finish; exit 1; }
X=0; most=-1
for n in $(seq 1 $NODES); do
  [ "$n" = "$L" ] && continue
  k=$(owned_by "$n"); [ "$k" -gt "$most" ] && most=$k && X=$n
done
# Y: the node other than the leader that backs up most of X's counters
Y=$(awk -v x="$X" -v l="$L" '$3 == x { m = split($4, b, ","); for (i = 1; i <= m; i++) if (b[i] != l) c[b[i]]++ }
  END { for (n in c) if (c[n] > best) { best = c[n]; y = n } print y + 0 }' "$T/owners")
check "node $X's counters have a backup besides the leader ($Y)" test "$Y" != 0
[ "$Y" != 0 ] || Y=$(for n in $(seq 1 $NODES); do [ "$n" != "$L" ] && [ "$n" != "$X" ] && echo "$n" && break; done)
MAJ=(); maddrs=""
for n in $(seq 1 $NODES); do
  [ "$n" = "$X" ] || [ "$n" = "$Y" ] || { MAJ+=("$n"); maddrs+="${maddrs:+,}$NET.$n:7100"; }
done
echo "  leader $L; cutting off node $X (owner of $(owned_by "$X") counters) and node $Y from nodes ${MAJ[*]}"

# partition {X, Y} | majority: blackhole routes both ways
routes() { # routes add|del
  local m j
  for m in "$X" "$Y"; do
    for j in "${MAJ[@]}"; do
      ip netns exec "$(ns "$m")" ip route "$1" blackhole "$NET.$j/32"
      ip netns exec "$(ns "$j")" ip route "$1" blackhole "$NET.$m/32"
    done
  done
}
t_cut=$(now_us)
routes add
ok "partitioned: {$X, $Y} | {${MAJ[*]}}"
bound_s=$(( (LEASE_MS + 3000) * ${LMZ_TEST_TIME_SCALE:-1} / 1000 ))
"$LOAD" probe --addrs "$maddrs" --key-file "$KEY" --nodes 3 --counters "$COUNTERS" \
  --since-us "$t_cut" --deadline-s "$bound_s" >"$T/probe" 2>"$T/probe.err"
prc=$?
sed 's/^/  /' "$T/probe.err" | tail -6
check "the majority serves every counter within lease + 3 s of the cut ($bound_s s)" test "$prc" = 0
# the minority after its lease lapsed (+ 0.5 s): calls made, none acknowledged
lapsed=$(( t_cut + (LEASE_MS + 500) * 1000 ))
minority_ops() { awk -v s="$lapsed" -v x="$X" -v y="$Y" -v k="${1:-}" \
  '$1 == "op" && $5 >= s && ($4 == x || $4 == y) && (k == "" || $7 == k) { n++ } END { print n + 0 }' "$HIST"; }
tried() { [ "$(minority_ops)" -ge 20 ]; }
check "calls went through nodes $X and $Y after their lease lapsed" wait_until 20 tried
echo "  after the lease lapsed, per node (ok/other): $(awk -v s="$lapsed" '$1 == "op" && $5 >= s { if ($7 == "ok") o[$4]++; else f[$4]++; seen[$4] = 1 }
  END { for (n in seen) printf "%s:%d/%d ", n, o[n], f[n] }' "$HIST")"
check "none of them was acknowledged ($(minority_ops ok) of $(minority_ops))" test "$(minority_ops ok)" = 0

t_heal=$(now_us)
routes del
ok "healed"
healed() { [ "$(hist_oks "$t_heal" "$X")" -ge 20 ] && [ "$(hist_oks "$t_heal" "$Y")" -ge 20 ]; }
check "nodes $X and $Y acknowledge calls again after healing" wait_until 30 healed
check "the load driver ends cleanly" load_stop
final_check 1,2,3,4,5
finish
