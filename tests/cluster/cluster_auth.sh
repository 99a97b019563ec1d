#!/usr/bin/env bash
# The auth service in a 3-node cluster: LUMENIZE_AUTH/default is one actor,
# placed on one node; its routes answer through every node (forwarded to the
# owner like any durable object's HTTP). A link requested through node 1 is
# followed through node 2, the cookie refreshes through node 3, a replay of
# the rotated cookie through node 1 finds the family state (one actor, one
# storage) and is refused, and the access token opens a gateway WebSocket on
# every node (all nodes sign and verify with the same keys). Every node
# binds port 0 and reports it; every comparison first checks that there is
# an answer.
. "$(dirname "$0")/../lib/it_lib.sh"
ROOT=${LMZ_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
command -v curl >/dev/null && command -v python3 >/dev/null || { echo "skip: no curl/python3"; exit 77; }
export LMZ_CLUSTER_DIR=$T/cluster LMZ_BIN_DIR=$BIN LMZ_PORT_OFFSET=ephemeral LMZ_REPLICATION_FACTOR=1
HASH_KEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
export LMZ_AUTH_JSON="{\"test_mode\": true, \"auto_approve\": true, \"refresh_reuse_grace_s\": 0, \"hash_key\": \"$HASH_KEY\"}"
DC="$ROOT/deploy/dev-cluster.sh"
stop_cluster() { "$DC" stop >/dev/null 2>&1; for n in 1 2 3; do "$DC" kill "$n" >/dev/null 2>&1; done; }
trap 'stop_cluster; cleanup' EXIT

h() { echo "http://127.0.0.1:$("$DC" http-port "$1")"; }
"$DC" start >"$T/start.log" 2>&1 || { cat "$T/start.log"; bad "cluster starts"; finish; exit 1; }
ok "3-node cluster starts with the auth block"
wait_until 20 bash -c "curl -s --max-time 5 -o /dev/null -w '%{http_code}' -X POST '$(h 1)/auth/logout' | grep -q 200"

# ws NODE TOKEN SUB: the status code of a gateway WebSocket upgrade
ws() {
  python3 - "$("$DC" http-port "$1")" "/gateway/LUMENIZE_CLIENT_GATEWAY/$3.tab$1" "$2" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
           "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           "Sec-WebSocket-Protocol: lmz, lmz.access-token.%s\r\n\r\n" % (sys.argv[2], sys.argv[3])).encode())
print(s.recv(4096).split(b" ")[1].decode())
PY
}
cookie() { grep -i '^Set-Cookie:' "$T/h" | sed -E 's/^[^=]*=([^;]*);.*/\1/'; }

body=$(curl -s --max-time 15 -X POST -d '{"email":"ann@example.com"}' "$(h 1)/auth/email-magic-link?_test=true")
path=$(sed -nE 's/.*"magic_link":"http:\/\/[^/]*([^"]*)".*/\1/p' <<<"$body")
check "a link requested through node 1" test -n "$path"
code=$(curl -s --max-time 15 -D "$T/h" -o /dev/null -w '%{http_code}' "$(h 2)$path")
C1=$(cookie)
check "followed through node 2: 302 and a cookie" test "$code" = 302 -a -n "$C1"
curl -s --max-time 15 -D "$T/h" -o "$T/b" -X POST -H "Cookie: refresh-token=$C1" "$(h 3)/auth/refresh-token"
C2=$(cookie)
A=$(sed -nE 's/.*"access_token":"([^"]*)".*/\1/p' "$T/b")
SUB=$(sed -nE 's/.*"sub":"([^"]*)".*/\1/p' "$T/b")
check "refreshed through node 3: a token and a rotated cookie" test -n "$A" -a -n "$C2" -a "$C2" != "$C1"
code=$(curl -s --max-time 15 -o "$T/b" -w '%{http_code}' -X POST -H "Cookie: refresh-token=$C1" "$(h 1)/auth/refresh-token")
check "the rotated cookie replayed through node 1: 401 token_revoked" \
  bash -c "[ '$code' = 401 ] && grep -q token_revoked '$T/b'"
code=$(curl -s --max-time 15 -o /dev/null -w '%{http_code}' -X POST -H "Cookie: refresh-token=$C2" "$(h 2)/auth/refresh-token")
check "... and the family is revoked for every node (node 2)" test "$code" = 401
owners=$(for n in 1 2 3; do "$BIN/lmz" locate --node "127.0.0.1:$("$DC" port "$n")" --data "$LMZ_CLUSTER_DIR/node$n" LUMENIZE_AUTH default 2>/dev/null | head -1; done | sort -u)
check "one placement of LUMENIZE_AUTH/default, seen alike by all nodes ($owners)" \
  bash -c '[ -n "$1" ] && [ "$(wc -l <<<"$1")" -eq 1 ]' _ "$owners"
for n in 1 2 3; do
  check "the access token opens a WebSocket on node $n" test "$(ws "$n" "$A" "$SUB")" = 101
done
finish
