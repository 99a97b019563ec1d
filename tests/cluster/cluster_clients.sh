#!/usr/bin/env bash
# Browser-protocol clients on different nodes of a real 3-node cluster: a
# client's gateway actor lives on the node that holds its socket, and mesh
# calls to it from actors on any node are forwarded there (the editor flow:
# the document's push is one lmz_broadcast, which reaches the clients of
# other nodes in Broadcast frames: checked on /metrics afterwards).
. "$(dirname "$0")/../lib/it_lib.sh"
ROOT=${LMZ_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
bash "$ROOT/scripts/install-test-deps.sh" >/dev/null 2>&1 || true
# every node binds port 0 and reports it: parallel runs cannot clash
export LMZ_CLUSTER_DIR=$T/cluster LMZ_BIN_DIR=$BIN LMZ_PORT_OFFSET=ephemeral
DC="$ROOT/deploy/dev-cluster.sh"
trap '"$DC" stop >/dev/null 2>&1; for n in 1 2 3; do "$DC" kill "$n" >/dev/null 2>&1; done; cleanup' EXIT
"$DC" start >"$T/start.log" 2>&1 || { cat "$T/start.log"; echo "0 passed, 1 failed"; exit 1; }
LMZ="$BIN/lmz" DIR="$LMZ_CLUSTER_DIR" \
  HTTP1="127.0.0.1:$("$DC" http-port 1)" HTTP2="127.0.0.1:$("$DC" http-port 2)" \
  NODE1="127.0.0.1:$("$DC" port 1)" \
  timeout 120 node "$ROOT/tests/cluster/cluster_clients.mjs"
rc=$?
metric() { curl -s "http://127.0.0.1:$("$DC" http-port "$1")/metrics" | awk -v m="$2" 'index($1, m "{") == 1 { print $2 }'; }
got=0
for n in 1 2 3; do got=$(( got + $(metric "$n" lmz_broadcast_targets_in_total) )); done
if [ "$got" -gt 0 ]; then
  echo "ok - the pushes reached clients on other nodes in Broadcast frames ($got targets)"
else
  echo "not ok - no Broadcast frame carried a client"; rc=1
fi
exit $rc
