#!/usr/bin/env bash
# lmz_broadcast on a real 3-node cluster (deploy/dev-cluster.sh, ephemeral
# ports): a counter (the broadcaster, COUNTER_DO.broadcast in the counter
# example) increments N counters spread over the three nodes with one
# lmz_broadcast, its on_result handler recording every target's outcome.
# Checked:
#   - every counter is incremented exactly once per broadcast;
#   - every target's outcome reaches the handler once, all ok;
#   - once the targets are placed, the broadcasting node sends exactly one
#     Broadcast frame per other owner node (/metrics
#     lmz_broadcast_frames_out_total), and the owners receive exactly their
#     targets (lmz_broadcast_targets_in_total), none refused.
# The MOVED path (a receiver that no longer owns a target) is checked on
# fake time in tests/unit/actor/test_broadcast.c.
. "$(dirname "$0")/../lib/it_lib.sh"
ROOT=${LMZ_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
export LMZ_CLUSTER_DIR=$T/cluster LMZ_BIN_DIR=$BIN LMZ_PORT_OFFSET=ephemeral
DC="$ROOT/deploy/dev-cluster.sh"
trap '"$DC" stop >/dev/null 2>&1; for n in 1 2 3; do "$DC" kill "$n" >/dev/null 2>&1; done; cleanup' EXIT
"$DC" start >"$T/start.log" 2>&1 || { cat "$T/start.log"; echo "0 passed, 1 failed"; exit 1; }
KEY=$LMZ_CLUSTER_DIR/cluster.key
N=60
TAG=bt$$
BC=$TAG-bc

c() { # c NODE BINDING INSTANCE METHOD [ARGS...]
  local n=$1; shift
  "$BIN/lmz" call --node "127.0.0.1:$("$DC" port "$n")" --key-file "$KEY" --timeout 10000 "$@"
}
json() { sed -nE 's/^\{"json":(.*),"meta":.*$/\1/p'; } # the SC-JSON value
owner() { # the node owning COUNTER_DO/$1
  "$BIN/lmz" locate --node "127.0.0.1:$("$DC" port 1)" --key-file "$KEY" COUNTER_DO "$1" |
    sed -nE 's/.*"node":([0-9]+).*/\1/p'
}
metric() { # metric NODE NAME
  curl -s "http://127.0.0.1:$("$DC" http-port "$1")/metrics" |
    awk -v m="$2" 'index($1, m "{") == 1 { print $2 }'
}

targets="["
for i in $(seq 1 $N); do targets+="\"$TAG-$i\""; [ "$i" -lt $N ] && targets+=","; done
targets+="]"

oks() { c 1 COUNTER_DO "$BC" broadcastResults | grep -o '"ok":true' | wc -l; }
oks_at() { [ "$(oks)" -ge "$1" ]; }

# 1. the first broadcast places the targets (claims through the leader)
out=$(c 1 COUNTER_DO "$BC" broadcast "$targets" 1 true | json)
check "broadcast() answered with the target count ($out)" [ "$out" = "$N" ]
check "first broadcast: $N outcomes, all ok" wait_until 30 oks_at $N

# where everything lives now
S=$(owner "$BC")
declare -A per_node=()
for i in $(seq 1 $N); do
  o=$(owner "$TAG-$i")
  per_node[$o]=$(( ${per_node[$o]:-0} + 1 ))
done
remote_owners=0
for n in 1 2 3; do
  [ "$n" != "$S" ] && [ "${per_node[$n]:-0}" -gt 0 ] && remote_owners=$((remote_owners + 1))
done
echo "# broadcaster on node $S; targets per node: 1=${per_node[1]:-0} 2=${per_node[2]:-0} 3=${per_node[3]:-0}"
check "targets spread over the 3 nodes" [ "${per_node[1]:-0}" -gt 0 -a "${per_node[2]:-0}" -gt 0 -a "${per_node[3]:-0}" -gt 0 ]

declare -A in0=() fin0=()
out0=$(metric "$S" lmz_broadcast_frames_out_total)
for n in 1 2 3; do
  in0[$n]=$(metric "$n" lmz_broadcast_targets_in_total)
  fin0[$n]=$(metric "$n" lmz_broadcast_frames_in_total)
done
ref0=$(( $(metric 1 lmz_broadcast_refused_total) + $(metric 2 lmz_broadcast_refused_total) + $(metric 3 lmz_broadcast_refused_total) ))

# 2. the second broadcast: every target placed
c 1 COUNTER_DO "$BC" broadcast "$targets" 10 true >/dev/null
check "second broadcast: $((2 * N)) outcomes, all ok" wait_until 30 oks_at $((2 * N))
check "no outcome failed" [ "$(c 1 COUNTER_DO "$BC" broadcastResults | grep -c '"ok":false')" = 0 ]

frames=$(( $(metric "$S" lmz_broadcast_frames_out_total) - out0 ))
check "one Broadcast frame per other owner node ($frames sent, $remote_owners owners)" [ "$frames" = "$remote_owners" ]
for n in 1 2 3; do
  [ "$n" = "$S" ] && continue
  got=$(( $(metric "$n" lmz_broadcast_targets_in_total) - in0[$n] ))
  fr=$(( $(metric "$n" lmz_broadcast_frames_in_total) - fin0[$n] ))
  check "node $n received its ${per_node[$n]:-0} targets in $fr frame(s) (got $got)" \
    [ "$got" = "${per_node[$n]:-0}" -a "$fr" = 1 ]
done
ref=$(( $(metric 1 lmz_broadcast_refused_total) + $(metric 2 lmz_broadcast_refused_total) + $(metric 3 lmz_broadcast_refused_total) - ref0 ))
check "no target refused (MOVED) on a settled directory" [ "$ref" = 0 ]

# 3. exactly once: 1 + 10 on every counter
wrong=0
for i in $(seq 1 $N); do
  t=$(c 1 COUNTER_DO "$TAG-$i" get | json)
  [ "$t" = 11 ] || { wrong=$((wrong + 1)); echo "# $TAG-$i total $t"; }
done
check "every counter incremented exactly once per broadcast" [ "$wrong" = 0 ]
finish
