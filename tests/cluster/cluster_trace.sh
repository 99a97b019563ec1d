#!/usr/bin/env bash
# Call tracing across nodes (issue 13 item 6; README "Tracing a call"): one
# `lmz call` sent to a node that does not own the callee is forwarded to
# the owner, where the callee throws; the trace id the CLI minted (shown
# with --show-trace) appears in a log line of the entry node (the router's
# "forwarded call ... answered an error") and of the owner (the turn's
# "call ... threw"): one trace id, two processes. Then a trace id the
# operator chose (--trace-id) is found the same way, and a malformed one is
# refused by the CLI before anything is sent. Debug lines are enabled for
# lmz.actor and lmz.cluster.router only (LMZ_DEBUG). Ports: ephemeral.
. "$(dirname "$0")/../lib/it_lib.sh"
ROOT=${LMZ_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
export LMZ_CLUSTER_DIR=$T/cluster LMZ_BIN_DIR=$BIN LMZ_PORT_OFFSET=ephemeral LMZ_REPLICATION_FACTOR=1
export LMZ_DEBUG=lmz.actor,lmz.cluster.router
DC="$ROOT/deploy/dev-cluster.sh"
KEY=$LMZ_CLUSTER_DIR/cluster.key
stop_cluster() { "$DC" stop >/dev/null 2>&1; for n in 1 2 3; do "$DC" kill "$n" >/dev/null 2>&1; done; }
trap 'stop_cluster; cleanup' EXIT

c() { # c NODE ARGS...: lmz call through NODE
  local n=$1; shift
  "$BIN/lmz" call --node "127.0.0.1:$("$DC" port "$n")" --key-file "$KEY" --timeout 10000 "$@"
}
owner() { # owner INSTANCE [BINDING]: the node owning it
  "$BIN/lmz" locate --node "127.0.0.1:$("$DC" port 1)" --key-file "$KEY" "${2:-COUNTER_DO}" "$1" |
    sed -nE 's/.*"placed":true,"node":([0-9]+).*/\1/p'
}
log() { echo "$LMZ_CLUSTER_DIR/node$1.log"; }
is_trace() { [[ "$1" =~ ^[0-9a-f]{32}$ ]]; }

"$DC" start >"$T/start.log" 2>&1 || { cat "$T/start.log"; bad "cluster starts"; finish; exit 1; }
ok "3-node cluster starts"

# place the callee, then find a node that does not own it
wait_until 20 bash -c "'$BIN/lmz' call --node 127.0.0.1:$("$DC" port 1) --key-file '$KEY' --timeout 5000 COUNTER_DO tr1 increment >/dev/null"
o=$(owner tr1)
check "COUNTER_DO/tr1 is placed on a node ($o)" bash -c '[[ "$1" =~ ^[1-3]$ ]]' _ "$o"
[ -n "$o" ] || { finish; exit 1; }
entry=$(( o % 3 + 1 ))

# 1. a minted trace: the CLI prints it; the callee throws on the owner
out=$(c "$entry" --show-trace COUNTER_DO tr1 fail '"traced boom"' 2>"$T/err1"); rc=$?
tid=$(sed -nE 's/^trace=([0-9a-f]+)$/\1/p' "$T/err1")
check "lmz call through non-owner $entry: the callee threw (exit $rc)" test "$rc" = 3
check "the error comes back ($out)" grep -q 'traced boom' <<<"$out"
check "--show-trace printed a 32-hex trace id ($tid)" is_trace "$tid"
in_logs() { # in_logs TRACE: both lines present
  grep -q "forwarded call to COUNTER_DO/tr1: node $o answered an error: traced boom trace=$1 " "$(log "$entry")" &&
    grep -q "call to COUNTER_DO/tr1 threw: traced boom trace=$1 " "$(log "$o")"
}
if [ -n "$tid" ] && wait_until 10 in_logs "$tid"; then
  ok "trace $tid is in the log of entry node $entry and of owner node $o"
else
  bad "trace $tid in the logs of nodes $entry and $o"
  grep -h "trace=" "$(log "$entry")" "$(log "$o")" | tail -5
fi
cid_e=$(grep -h "trace=$tid " "$(log "$entry")" | sed -nE 's/.* call=([0-9a-f]{16}).*/\1/p' | head -1)
cid_o=$(grep -h "trace=$tid " "$(log "$o")" | sed -nE 's/.* call=([0-9a-f]{16}).*/\1/p' | head -1)
check "the same call id on both nodes ($cid_e / $cid_o)" \
  bash -c '[ -n "$1" ] && [ "$1" = "$2" ]' _ "$cid_e" "$cid_o"
n3=$(( entry % 3 + 1 )); [ "$n3" = "$o" ] && n3=$(( n3 % 3 + 1 ))
check "the third node ($n3) never saw it" bash -c '! grep -q "trace=$1" "$2"' _ "$tid" "$(log "$n3")"

# 2. the operator's own trace id is kept end to end
mine=0af7651916cd43dd8448eb211c80319c
c "$entry" --trace-id "$mine" COUNTER_DO tr1 fail '"second"' >/dev/null 2>&1
check "--trace-id $mine: found on both nodes" wait_until 10 bash -c \
  "grep -q 'answered an error: second trace=$mine ' '$(log "$entry")' && grep -q 'threw: second trace=$mine ' '$(log "$o")'"

# 3. a malformed trace id is refused by the CLI, nothing sent
c "$entry" --trace-id 0AF7651916CD43DD8448EB211C80319C COUNTER_DO tr1 fail '"third"' >/dev/null 2>"$T/err3"; rc=$?
check "an upper-case --trace-id is refused (exit $rc)" test "$rc" = 2
check "and says why" grep -q 'trace-id must be 32 lowercase hex' "$T/err3"
# 4. HTTP through a non-owner: a valid W3C traceparent's trace id reaches
# the owner's turn (CounterHttpDO answers it as X-Trace-Id); a malformed
# one is replaced by a fresh id
TOKEN=$("$BIN/lmz" token mint --data "$LMZ_CLUSTER_DIR/node1" --sub alice)
hurl() { echo "http://127.0.0.1:$("$DC" http-port "$1")/api/http-counter-do/$2"; }
hget() { curl -sS --max-time 15 -D - -o /dev/null -H "Authorization: Bearer $TOKEN" "$@" | tr -d '\r'; }
hget "$(hurl 1 trh)" >/dev/null
oh=$(owner trh HTTP_COUNTER_DO); eh=$(( ${oh:-1} % 3 + 1 ))
check "HTTP_COUNTER_DO/trh is placed ($oh)" bash -c '[[ "$1" =~ ^[1-3]$ ]]' _ "$oh"
tp=4bf92f3577b34da6a3ce929d0e0e4736
h=$(hget -H "traceparent: 00-$tp-00f067aa0ba902b7-01" "$(hurl "$eh" trh)")
check "through non-owner $eh: the owner's turn ran under the traceparent's trace" \
  grep -q "^X-Trace-Id: $tp$" <<<"$h"
check "and the response's traceparent names it" \
  grep -qE "^traceparent: 00-$tp-[0-9a-f]{16}-01$" <<<"$h"
h=$(hget -H "traceparent: 00-${tp^^}-00f067aa0ba902b7-01" "$(hurl "$eh" trh)")
got=$(sed -nE 's/^X-Trace-Id: ([0-9a-f]{32})$/\1/p' <<<"$h")
check "a malformed traceparent is replaced by a fresh trace id ($got)" \
  bash -c 'is() { [[ "$1" =~ ^[0-9a-f]{32}$ ]]; }; is "$1" && [ "$1" != "$2" ]' _ "$got" "$tp"
check "which the response's traceparent carries" grep -qE "^traceparent: 00-$got-" <<<"$h"
finish
