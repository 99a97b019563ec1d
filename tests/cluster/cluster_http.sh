#!/usr/bin/env bash
# HTTP to a durable object (HTTP_COUNTER_DO: examples/counter's CounterHttpDO)
# through any node of a 3-node cluster: the entry
# node forwards `/api/{binding}/{instance}` to the actor's owner (placement
# epoch, as calls are), so the same URL through each node reaches one
# activation and returns the same body; a write through one node is read
# through another; a request over the gateway's body limit is refused by
# the entry node itself (413) and never reaches the actor.
# Every request needs a bearer token (issue 11 item 6): the entry node
# verifies it before forwarding anything; without one a non-owner answers
# 401 itself (nothing forwarded, nothing claimed), and with one the owner's
# turn sees the token's subject (origin auth carried in the forwarded Call).
# Every node binds port 0 and reports it (LMZ_PORT_OFFSET=ephemeral); every
# comparison first checks that each side is a well-formed answer.
. "$(dirname "$0")/../lib/it_lib.sh"
ROOT=${LMZ_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
command -v curl >/dev/null || { echo "skip: no curl"; exit 77; }
export LMZ_CLUSTER_DIR=$T/cluster LMZ_BIN_DIR=$BIN LMZ_PORT_OFFSET=ephemeral LMZ_REPLICATION_FACTOR=1
DC="$ROOT/deploy/dev-cluster.sh"
KEY=$LMZ_CLUSTER_DIR/cluster.key
stop_cluster() { "$DC" stop >/dev/null 2>&1; for n in 1 2 3; do "$DC" kill "$n" >/dev/null 2>&1; done; }
trap 'stop_cluster; cleanup' EXIT

url() { echo "http://127.0.0.1:$("$DC" http-port "$1")/api/http-counter-do/$2"; }
AUTH=()  # set once the cluster made its keys
get() { curl -sS --max-time 15 "${AUTH[@]}" -H "X-Echo: via-$1" "$(url "$1" "$2")"; }
post() { curl -sS --max-time 15 "${AUTH[@]}" -X POST --data-binary "$3" "$(url "$1" "$2")"; }
metric() { # metric NODE NAME
  curl -sS --max-time 10 "http://127.0.0.1:$("$DC" http-port "$1")/metrics" |
    sed -nE "s/^$2\{[^}]*\} ([0-9]+)$/\1/p"; }
# is_body TOTAL OUT: the counter's HTTP answer with that total
is_body() { grep -Eq "^total=$1 node=node-[1-3] activation=[^ ]+$" <<<"$2"; }

"$DC" start >"$T/start.log" 2>&1 || { cat "$T/start.log"; bad "cluster starts"; finish; exit 1; }
ok "3-node cluster starts"
TOKEN=$("$BIN/lmz" token mint --data "$LMZ_CLUSTER_DIR/node1" --sub alice)
check "a token from the cluster's dev keys" test "${#TOKEN}" -gt 100
AUTH=(-H "Authorization: Bearer $TOKEN")
wait_until 15 bash -c "curl -sf --max-time 5 -H 'Authorization: Bearer $TOKEN' '$(url 1 warm)' >/dev/null"

# one actor, asked through nodes 1, 2, 3: one activation, one body
a=$(get 1 h1); b=$(get 2 h1); c=$(get 3 h1)
echo "  node 1: $a"; echo "  node 2: $b"; echo "  node 3: $c"
check "GET /api/http-counter-do/h1 through node 1 answers the counter" is_body 0 "$a"
check "the same URL through nodes 2 and 3: the same body (one activation)" \
  bash -c '[ -n "$1" ] && [ "$1" = "$2" ] && [ "$2" = "$3" ]' _ "$a" "$b" "$c"
owner=$(sed -nE 's/.* node=node-([1-3]) .*/\1/p' <<<"$a")
check "the activation lives on one node ($owner)" bash -c '[[ "$1" =~ ^[1-3]$ ]]' _ "$owner"
[ -n "$owner" ] || { finish; exit 1; }
o1=$(( owner % 3 + 1 )); o2=$(( o1 % 3 + 1 ))   # the two non-owners

# headers and status travel both ways through a non-owner
hdr=$(curl -sS --max-time 15 -D - -o /dev/null "${AUTH[@]}" -H "X-Echo: hello" "$(url "$o1" h1)" | tr -d '\r')
check "through non-owner $o1: 200 and the handler's header comes back" \
  bash -c 'grep -q "^HTTP/1.1 200" <<<"$1" && grep -qi "^X-Echo: hello$" <<<"$1"' _ "$hdr"
check "the owner's turn sees the token's subject (origin auth forwarded)" \
  grep -qi '^X-Origin-Sub: alice$' <<<"$hdr"

# without a token a non-owner refuses by itself: nothing forwarded, and a
# name nobody asked for with a token is never placed
fw0=$(metric "$o1" lmz_cluster_forwarded_total)
c401=0
for path in h1 never-1 never-2 never-3; do
  c=$(curl -sS --max-time 15 -o /dev/null -w '%{http_code}' "$(url "$o1" "$path")")
  [ "$c" = 401 ] && c401=$((c401 + 1))
done
c=$(curl -sS --max-time 15 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer ${TOKEN%?????}AAAAA" \
  "$(url "$o1" never-4)")
[ "$c" = 401 ] && c401=$((c401 + 1))
check "through non-owner $o1 without a valid token: 401 x5 ($c401)" test "$c401" = 5
fw1=$(metric "$o1" lmz_cluster_forwarded_total)
check "nothing was forwarded for them ($fw0 -> $fw1)" \
  bash -c '[ -n "$1" ] && [ "$1" = "$2" ]' _ "$fw0" "$fw1"
loc=$("$BIN/lmz" locate --node "127.0.0.1:$("$DC" port "$o1")" --key-file "$KEY" HTTP_COUNTER_DO never-1 2>&1)
check "a refused name is not placed ($loc)" grep -q '"placed":false' <<<"$loc"

# a write through one non-owner, read through the other and the owner
w=$(post "$o1" h1 5)
check "POST 5 through node $o1 (not the owner) increments" is_body 5 "$w"
r2=$(get "$o2" h1); r3=$(get "$owner" h1)
check "read through node $o2: total 5" is_body 5 "$r2"
check "read through the owner $owner: total 5, the same activation" \
  bash -c '[ -n "$1" ] && [ "$1" = "$2" ] && [ "$1" = "$3" ]' _ "$w" "$r2" "$r3"
mesh=$("$BIN/lmz" call --node "127.0.0.1:$("$DC" port "$o2")" --key-file "$KEY" HTTP_COUNTER_DO h1 get)
check "a mesh call sees the HTTP write ($mesh)" test "$mesh" = '{"json":5,"meta":{}}'

# many actors through every node: each reached once, bodies agree
bad_n=0
for i in $(seq 1 12); do
  x=$(get 1 "m$i"); y=$(get 2 "m$i"); z=$(get 3 "m$i")
  is_body 0 "$x" && [ "$x" = "$y" ] && [ "$y" = "$z" ] || bad_n=$((bad_n + 1))
done
check "12 more actors: the same body through all three nodes" test "$bad_n" = 0

# over the limit (gateway.max_message_bytes, 32 MiB by default): refused by
# the entry node (413) before any forwarding; the actor is untouched
big=$(( 33 * 1024 * 1024 ))
code=$(head -c "$big" /dev/zero | curl -sS --max-time 60 -o /dev/null -w '%{http_code}' \
         "${AUTH[@]}" -X POST --data-binary @- "$(url "$o1" h1)" 2>/dev/null)
check "a ${big}-byte POST through non-owner $o1 is refused there: 413 ($code)" test "$code" = 413
after=$(get "$owner" h1)
check "the refused request never reached the actor (total still 5)" is_body 5 "$after"
finish
