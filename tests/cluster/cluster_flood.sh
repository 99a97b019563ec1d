#!/usr/bin/env bash
# A real 3-node cluster (deploy/dev-cluster.sh) with every node port flooded
# by 300 unauthenticated connections from 127.0.0.1 (the members' and the
# CLI's own address; half idle, half stalled after a valid secure hello),
# reopened as the nodes drop them at up to 500 new connections a second per
# node, bounded to 120 s. Calls through every node succeed, and a node that
# is killed and restarted rejoins (its lease is current again, "up" in
# `lmz status`, and calls through it succeed) within 30 s. Issue 15 item 1
# measured the old transport keeping such a node DOWN for the whole flood.
. "$(dirname "$0")/../lib/it_lib.sh"
ROOT=${LMZ_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
command -v node >/dev/null || { echo "cluster_flood.sh: node not found"; exit 1; }
# Every node binds port 0 and reports it (no clash under ctest -j); a
# restarted node gets a new port, so port() asks each time.
export LMZ_CLUSTER_DIR=$T/cluster LMZ_BIN_DIR=$BIN LMZ_PORT_OFFSET=ephemeral
DC="$ROOT/deploy/dev-cluster.sh"
KEY=$LMZ_CLUSTER_DIR/cluster.key
port() { "$DC" port "$1"; }
c() { local n=$1; shift; "$BIN/lmz" call --node "127.0.0.1:$(port "$n")" --key-file "$KEY" --timeout 10000 "$@"; }
st() { "$BIN/lmz" status --node "127.0.0.1:$(port "$1")" --key-file "$KEY"; }
stop_all() { touch "$T/stop"; "$DC" stop >/dev/null 2>&1; for n in 1 2 3; do "$DC" kill "$n" >/dev/null 2>&1; done; }
trap 'stop_all; cleanup' EXIT
ms() { echo $(( $(date +%s%N) / 1000000 )); }

"$DC" start >"$T/start.log" 2>&1 || { cat "$T/start.log"; bad "cluster starts"; finish; exit 1; }
ok "3-node cluster starts"
for n in 1 2 3; do
  node "$ROOT/tests/lib/node_flood.mjs" 127.0.0.1 "$(port "$n")" 127.0.0.1 "${LMZ_FLOOD_COUNT:-300}" 500 120000 \
    "$T/stop" "$T/flood.$n" &
  PIDS+=($!)
done
check "the floods hold 300 connections on each node" \
  wait_until 30 bash -c 'test -s "$1/flood.1" && test -s "$1/flood.2" && test -s "$1/flood.3"' _ "$T"

fails=0
for i in $(seq 1 5); do for n in 1 2 3; do
  c "$n" COUNTER_DO "fl$i" increment 1 >/dev/null 2>"$T/err" || { fails=$((fails + 1)); cat "$T/err"; }
done; done
check "15 calls through all three flooded nodes succeed" test "$fails" = 0

state_of_2() { "$BIN/lmz" status --node "127.0.0.1:$(port 1)" --key-file "$KEY" 2>/dev/null | grep -q "\"id\":2,\"state\":\"$1\""; }
up() { state_of_2 up && c 2 COUNTER_DO fl1 get >/dev/null 2>&1; }
"$DC" kill 2 >/dev/null 2>&1
check "the killed node is marked down" wait_until 30 state_of_2 down
t0=$(ms)
"$DC" restart 2 >/dev/null 2>&1
if wait_until 30 up; then
  ok "the restarted node rejoins under the flood"
  echo "# node 2 up and serving $(( $(ms) - t0 )) ms after its restart (process start included)"
else
  bad "the restarted node rejoins under the flood (still out after 30 s)"
fi
# From node 2's own log: ready (listening) -> registered UP with the leader.
log_ms() { date -d "$(sed -n "$1" "$LMZ_CLUSTER_DIR/node2.log" | tail -1 | cut -d' ' -f1)" +%s%3N; }
ready=$(log_ms '/ready: node port/p') reg=$(log_ms '/registered as UP/p')
echo "# node 2: registered UP $(( reg - ready )) ms after it was ready"
check "node 2 registered UP within 10 s of being ready" test $(( reg - ready )) -ge 0 -a $(( reg - ready )) -lt 10000
check "every increment is there after the rejoin" \
  bash -c 'for i in 1 2 3 4 5; do [ "$("$0" call --node "$1" --key-file "$2" --timeout 10000 COUNTER_DO fl$i get)" = "{\"json\":3,\"meta\":{}}" ] || exit 1; done' \
  "$BIN/lmz" "127.0.0.1:$(port 2)" "$KEY"
touch "$T/stop"
wait_until 20 bash -c 'grep -q opened "$1/flood.1" && grep -q opened "$1/flood.2" && grep -q opened "$1/flood.3"' _ "$T"
for n in 1 2 3; do echo "# flood on node $n: $(cat "$T/flood.$n")"; done
finish
