#!/usr/bin/env bash
# A real 3-node cluster on loopback (deploy/dev-cluster.sh), checked as a user
# would: single activation through every entry point, a few hundred new
# actors claimed concurrently through all nodes with every increment counted
# once, leader failover, owner loss (retryable ActorUnavailableError, workers
# unaffected) and return with every acknowledged write.
# Every node binds port 0 and reports it (LMZ_PORT_OFFSET=ephemeral), so
# parallel runs cannot clash; every comparison first checks that each side
# is a well-formed answer (three failed calls print three equal empty lines).
. "$(dirname "$0")/../lib/it_lib.sh"
ROOT=${LMZ_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
# One copy per actor (no backups): an owner's loss makes its actors
# unavailable until it returns; with backups see tests/cluster/repl_*.sh.
export LMZ_CLUSTER_DIR=$T/cluster LMZ_BIN_DIR=$BIN LMZ_PORT_OFFSET=ephemeral LMZ_REPLICATION_FACTOR=1
DC="$ROOT/deploy/dev-cluster.sh"
KEY=$LMZ_CLUSTER_DIR/cluster.key
port() { "$DC" port "$1"; }
c() { local n=$1; shift; "$BIN/lmz" call --node "127.0.0.1:$(port "$n")" --key-file "$KEY" --timeout $((10000 * ${LMZ_TEST_TIME_SCALE:-1})) "$@"; }
st() { "$BIN/lmz" status --node "127.0.0.1:$(port "$1")" --key-file "$KEY"; }
stop_cluster() { "$DC" stop >/dev/null 2>&1; for n in 1 2 3 4; do "$DC" kill "$n" >/dev/null 2>&1; done; }
trap 'stop_cluster; cleanup' EXIT
export -f port
export DC KEY BIN

# is_act OUT: an activation answer {"json":{"node":"node-N","activationId":..}}
is_act() { grep -Eq '^\{"json":\{"node":"node-[0-9]+","activationId":"[^"]+","activatedAt":[0-9]+\},"meta":\{\}\}$' <<<"$1"; }
# same_act A B C: three well-formed activation answers, all equal
same_act() { is_act "$1" && is_act "$2" && is_act "$3" && [ "$1" = "$2" ] && [ "$2" = "$3" ]; }
# same_act_of INSTANCE: asked through nodes 1, 2 and 3, one activation
same_act_of() {
  local x y z
  x=$(c 1 COUNTER_DO "$1" activation); y=$(c 2 COUNTER_DO "$1" activation); z=$(c 3 COUNTER_DO "$1" activation)
  same_act "$x" "$y" "$z"
}
is_num() { [[ "$1" =~ ^-?[0-9]+$ ]]; }
# actors_of STATUS_JSON ID: the "actors" count of node ID in a status answer
actors_of() { grep -o "{\"id\":$2,[^}]*" <<<"$1" | grep -o '"actors":[0-9]*' | cut -d: -f2; }

"$DC" start >"$T/start.log" 2>&1 || { cat "$T/start.log"; bad "cluster starts"; finish; exit 1; }
ok "3-node cluster starts"

check "COUNTER_DO x: one activation seen from all three nodes" same_act_of x
check "workers run where the call lands" test "$(c 2 ECHO_WORKER - whereami)" = '{"json":"node-2","meta":{}}'

# concurrency: 3 callers (one per node) each increment 150 new actors once
# (40 in sanitizer builds: each lmz start costs ~10x there, and 40 actors
# still land on every node and race three callers on each claim)
N=150
[ "${LMZ_TEST_TIME_SCALE:-1}" -gt 1 ] && N=40
for n in 1 2 3; do
  ( for i in $(seq 1 $N); do c "$n" COUNTER_DO "k$i" increment 1 >/dev/null || echo "fail k$i via $n"; done ) >"$T/inc.$n" 2>&1 &
done
wait
check "no increment failed" bash -c '! grep -q fail "$1"/inc.*' _ "$T"
bad_total=0; bad_act=0
for i in $(seq 1 $N); do
  [ "$(c $(( i % 3 + 1 )) COUNTER_DO "k$i" get)" = '{"json":3,"meta":{}}' ] || bad_total=$((bad_total + 1))
done
for i in $(seq 1 20); do same_act_of "k$i" || bad_act=$((bad_act + 1)); done
check "$N actors claimed concurrently: every increment counted exactly once" test "$bad_total" = 0
check "... and each has exactly one activation (sampled 20)" test "$bad_act" = 0
s1=$(st 1); rc=$?
spread="$(actors_of "$s1" 1) $(actors_of "$s1" 2) $(actors_of "$s1" 3)"
check "actors are spread over the nodes ($spread)" \
  bash -c '[ "$1" = 0 ] || exit 1; set -- $2; [ $# = 3 ] || exit 1; for a; do [ "$a" -gt 0 ] || exit 1; done' _ "$rc" "$spread"

# leader failover
leader=$(st 1 | sed -nE 's/.*"leader":([1-3]),.*/\1/p')
check "lmz status names a leader ($leader)" is_num "$leader"
[ -n "$leader" ] || { finish; exit 1; }
"$DC" kill "$leader" >/dev/null
other=$(( leader % 3 + 1 ))
t0=$(date +%s%N)
# How fast is bench failover's business (a timed test is noise on a shared
# box); here a new leader must appear at all, within a hang guard.
new_leader() { s=$("$BIN/lmz" status --node "127.0.0.1:$(port "$other")" --key-file "$KEY") &&
  grep -Eq '"leader":[1-3],' <<<"$s" && ! grep -q "\"leader\":$leader," <<<"$s"; }
wait_until 10 new_leader; elected=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check "a new leader after killing leader $leader (took ${ms} ms)" test "$elected" = 0
out=$(c "$other" COUNTER_DO after-failover increment 1 2>&1); echo "  ($out)"
check "calls keep working after the failover" test "$out" = '{"json":1,"meta":{}}'
"$DC" restart "$leader" >/dev/null 2>&1

# owner loss: SIGKILL the owner of k1, its actors answer ActorUnavailableError
locate_k1() { "$BIN/lmz" locate --node "127.0.0.1:$(port "$other")" --key-file "$KEY" COUNTER_DO k1; }
wait_until 10 bash -c "\"$BIN/lmz\" locate --node 127.0.0.1:\$(port $other) --key-file $KEY COUNTER_DO k1 | grep -q '\"placed\":true'"
owner=$(locate_k1 | sed -nE 's/.*"placed":true,"node":([0-9]+),.*/\1/p')
check "lmz locate names k1's owner ($owner)" is_num "$owner"
[ -n "$owner" ] || { finish; exit 1; }
before=$(c "$owner" COUNTER_DO k1 increment 10 | sed -nE 's/^\{"json":([0-9]+),"meta":\{\}\}$/\1/p')
check "k1 takes an increment on its owner ($before)" bash -c '[ "$1" -ge 13 ]' _ "$before"
"$DC" kill "$owner" >/dev/null
via=$(( owner % 3 + 1 ))
out=$(c "$via" COUNTER_DO k1 get); rc=$?
check "owner $owner down: k1 answers a retryable ActorUnavailableError naming it" \
  bash -c '[ "$1" = 3 ] && grep -q ActorUnavailableError <<<"$2" && grep -q "\"owner\":$3" <<<"$2" && grep -q "\"retryable\":true" <<<"$2"' _ "$rc" "$out" "$owner"
check "workers keep answering while the owner is down" test "$(c "$via" ECHO_WORKER - echo 7)" = '{"json":7,"meta":{}}'
"$DC" restart "$owner" >/dev/null 2>&1
check "the owner returns: k1 serves again with every acknowledged write ($before)" \
  wait_until 15 bash -c "[ \"\$(\"$BIN/lmz\" call --node 127.0.0.1:\$(port $via) --key-file $KEY COUNTER_DO k1 get)\" = '{\"json\":$before,\"meta\":{}}' ]"
check "k1 still has one activation after the return" same_act_of k1

# membership: a 4th node joins at run time and receives new actors
"$DC" join 4 >"$T/join.log" 2>&1
check "node 4 joins (lmz node add) and answers" grep -q '"ok":true' "$T/join.log"
on4=0
for i in $(seq 1 40); do
  c 4 COUNTER_DO "n$i" activation | grep -q '"node":"node-4"' && on4=$((on4 + 1))
done
check "new actors are placed on the new node too ($on4 of 40)" test "$on4" -gt 0
check "lmz status lists node 4 as up" bash -c 'grep -q "\"id\":4,\"state\":\"up\"" <<<"$1"' _ "$(st 4)"

# drain: every actor leaves node D with its state; totals unchanged
D=3
gets() { for i in $(seq 1 30); do c "$1" COUNTER_DO "k$i" get; done; }
well_formed_gets() { [ "$(grep -cE '^\{"json":[0-9]+,"meta":\{\}\}$' <<<"$1")" = 30 ]; }
before=$(gets 1)
check "30 totals read before the drain" well_formed_gets "$before"
n_before=$(actors_of "$(st 1)" "$D")
check "node $D owns actors before the drain ($n_before)" bash -c '[ "$1" -gt 0 ]' _ "$n_before"
out=$("$BIN/lmz" node drain --node "127.0.0.1:$(port 1)" --key-file "$KEY" "$D"); rc=$?
echo "  drain: $out (node $D had $n_before actors)"
check "lmz node drain $D moves every actor ($out)" bash -c '[ "$1" = 0 ] && grep -q "\"failed\":0" <<<"$2" && grep -q "\"moved\":$3" <<<"$2"' _ "$rc" "$out" "$n_before"
check "node $D is draining and owns nothing" bash -c 'grep -q "\"id\":'$D',\"state\":\"draining\"[^}]*\"actors\":0" <<<"$1"' _ "$(st 1)"
after=$(gets 2)
check "30 totals read after the drain" well_formed_gets "$after"
check "totals unchanged after the drain" test "$before" = "$after"
check "still one activation per actor after the drain" same_act_of k2
finish
