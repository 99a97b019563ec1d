#!/usr/bin/env bash
# tests/integration/client_churn.sh - the directory does not grow with
# short-lived clients (issue 15 item 5). On a real `lmzd --dev` (loopback,
# ephemeral ports) CLIENTS browser-protocol clients (each its own tab id, so
# its own client gateway actor) connect, upgrade and drop their socket; once
# the grace period (5 s) is over their gateway actors' placements are
# released, and the directory's actor count (`lmz status`) is back at its
# starting size. A durable object with state keeps its placement and data.
# Bounded: every wait has a deadline. Prints the counts as "# ..." lines.
set -u
SRC=${LMZ_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/lib/it_lib.sh"

CLIENTS=${CLIENTS:-10000}
bash "$SRC/scripts/install-test-deps.sh" >/dev/null 2>&1 || true
command -v node >/dev/null || { echo "client_churn.sh: node not found"; exit 77; }

cd "$SRC" || exit 1
D=$T/data
if ! start_lmzd "$D" || ! wait_until 20 test -s "$D/http.port"; then
  bad "lmzd --dev started"
  finish
  exit 1
fi
HTTP_PORT=$(cat "$D/http.port")
actors() { "$BIN/lmz" status --node "$NODE" --data "$D" 2>/dev/null |
  grep -o '"actors":[0-9]*' | head -1 | cut -d: -f2; }

check "a stateful actor is placed" test "$(lcall "$D" COUNTER_DO keep increment 7)" = '{"json":7,"meta":{}}'
start=$(actors)
claims() { curl -sS --max-time 10 "http://127.0.0.1:$HTTP_PORT/metrics" |
  sed -nE 's/^lmz_cluster_claims_total(\{[^}]*\})? ([0-9]+)$/\2/p'; }
claims0=$(claims)
check "lmz status reports the directory's actor count" test -n "$start"
echo "# directory actors before the churn: ${start:-?}"

cat >"$T/churn.mjs" <<'EOF'
import net from 'node:net';
const [port, count] = process.argv.slice(2).map(Number);
const res = await fetch(`http://127.0.0.1:${port}/_lmz/dev-token`);
if (res.status !== 200) throw new Error(`dev token: HTTP ${res.status}`);
const tok = await res.json();
const one = (i) => new Promise((resolve) => {
  const sock = net.connect(port, '127.0.0.1');
  let buf = '';
  const timer = setTimeout(() => { sock.destroy(); resolve(false); }, 10000);
  sock.on('error', () => { clearTimeout(timer); resolve(false); });
  sock.on('connect', () => sock.write(
    `GET /gateway/LUMENIZE_CLIENT_GATEWAY/${tok.sub}.churn${i} HTTP/1.1\r\n` +
    `Host: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n` +
    `Sec-WebSocket-Protocol: lmz, lmz.access-token.${tok.access_token}\r\n\r\n`));
  sock.on('data', (d) => {
    buf += d.toString('latin1');
    if (buf.includes('\r\n\r\n')) { /* upgraded: drop the tab */
      clearTimeout(timer);
      sock.destroy();
      resolve(buf.startsWith('HTTP/1.1 101 '));
    }
  });
});
let ok = 0;
for (let i = 0; i < count; i += 100) {
  const wave = [];
  for (let j = i; j < Math.min(count, i + 100); j++) wave.push(one(j));
  ok += (await Promise.all(wave)).filter(Boolean).length;
}
console.log(ok);
EOF
upgraded=$(timeout 120 node "$T/churn.mjs" "$HTTP_PORT" "$CLIENTS")
check "$CLIENTS clients upgraded and left (got ${upgraded:-0})" test "${upgraded:-0}" = "$CLIENTS"
peak=$(actors)
claims1=$(claims)
echo "# directory actors right after the churn: ${peak:-?}; claims ${claims0:-?} -> ${claims1:-?}"
# counted by claims, not by the directory's size now: a slow (sanitized)
# churn outlasts the grace period, and early clients' placements are
# already released when the last one leaves
check "their gateway actors were placed" test "${claims1:-0}" -ge $(( ${claims0:-0} + CLIENTS / 2 ))
wait_until 30 bash -c '[ "$("$1" status --node "$2" --data "$3" 2>/dev/null | grep -o "\"actors\":[0-9]*" | head -1 | cut -d: -f2)" = "$4" ]' \
  _ "$BIN/lmz" "$NODE" "$D" "$start"
after=$(actors)
echo "# directory actors after the grace period: ${after:-?} (start ${start:-?}, $CLIENTS clients)"
check "the directory is back at its starting size" test "${after:-x}" = "${start:-y}"
check "the stateful actor kept its data" test "$(lcall "$D" COUNTER_DO keep increment 1)" = '{"json":8,"meta":{}}'
finish
