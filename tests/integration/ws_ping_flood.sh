#!/usr/bin/env bash
# tests/integration/ws_ping_flood.sh - a logged-in client that floods a real
# `lmzd --dev` (loopback, ephemeral ports) with WebSocket pings and never
# reads (issue 15 item 2: 3M pings once grew lmzd to 405 MB). The pongs count
# against the connection's reply cap (max_replies, 256 KiB), so lmzd's RSS must stay
# within RSS_SLACK_KB of its RSS before the flood, the connection must be
# closed by lmzd (1008 "outbound queue full" if the Close frame gets through
# before the TCP close), and lmzd must go on serving.
# Bounded: at most FLOOD_PINGS pings of 125 bytes, each wait has a deadline.
# Prints the measured RSS (idle, peak, after) as "# ..." lines.
set -u
SRC=${LMZ_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/lib/it_lib.sh"

FLOOD_PINGS=${FLOOD_PINGS:-1000000} # 131 MB on the wire
RSS_SLACK_KB=${RSS_SLACK_KB:-10240} # the 4 MiB cap, buffer slack, allocator
bash "$SRC/scripts/install-test-deps.sh" || { echo "ws_ping_flood.sh: installing test dependencies failed"; exit 1; }
command -v node >/dev/null || { echo "ws_ping_flood.sh: node not found"; exit 1; }

cd "$SRC" || exit 1
D=$T/data
# Under ASan freed memory waits in a quarantine (256 MB by default) that RSS
# counts; without one the allocator reuses it and RSS measures what is live.
[ -n "${ASAN_OPTIONS:-}" ] && export ASAN_OPTIONS="$ASAN_OPTIONS:quarantine_size_mb=0"
if ! start_lmzd "$D" || ! wait_until 20 test -s "$D/http.port"; then
  bad "lmzd --dev started"
  finish
  exit 1
fi
HTTP_PORT=$(cat "$D/http.port")

# The client: dev token, upgrade, then pings (masked, 125-byte payload) as
# fast as the socket takes them, reading nothing. It samples lmzd's VmRSS
# every 20 ms. Once the pings are out (or the socket fails) it reads what is
# left, looks for a Close frame, and waits for the server's EOF / reset.
# Prints one JSON line.
cat >"$T/flood.mjs" <<'EOF'
import fs from 'node:fs';
import net from 'node:net';
const [port, pid, count] = process.argv.slice(2).map(Number);
const rss = () => {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : -1;
};
const res = await fetch(`http://127.0.0.1:${port}/_lmz/dev-token`);
if (res.status !== 200) throw new Error(`dev token: HTTP ${res.status}`);
const tok = await res.json();
const sock = net.connect(port, '127.0.0.1');
sock.setNoDelay(true);
let buf = Buffer.alloc(0), ended = null;
const gone = new Promise((resolve) => {
  sock.on('end', () => resolve((ended ??= 'eof')));
  sock.on('error', (e) => resolve((ended ??= e.code || 'error')));
  sock.on('close', () => resolve((ended ??= 'close')));
});
await new Promise((resolve) => sock.once('connect', resolve));
sock.write(`GET /gateway/LUMENIZE_CLIENT_GATEWAY/${tok.sub}.flood HTTP/1.1\r\n` +
  `Host: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
  `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n` +
  `Sec-WebSocket-Protocol: lmz, lmz.access-token.${tok.access_token}\r\n\r\n`);
const onData = (d) => { buf = Buffer.concat([buf, d]); };
sock.on('data', onData);
const t0 = Date.now();
while (buf.indexOf('\r\n\r\n') < 0 && ended === null && Date.now() - t0 < 10000)
  await new Promise((r) => setTimeout(r, 10));
const head = buf.toString('latin1', 0, buf.indexOf('\r\n\r\n'));
if (!head.startsWith('HTTP/1.1 101 ')) throw new Error(`upgrade: ${head || ended}`);
buf = buf.subarray(buf.indexOf('\r\n\r\n') + 4);
sock.pause(); // from here on the client reads nothing
const idle = rss();
let peak = idle;
const sampler = setInterval(() => { peak = Math.max(peak, rss()); }, 20);
const ping = Buffer.alloc(131);
ping[0] = 0x89; ping[1] = 0x80 | 125; // FIN ping, masked, 125 bytes
ping.fill(0x5a, 2, 6); ping.fill(0x2b, 6);
const per = 500, batch = Buffer.concat(Array(per).fill(ping));
let sent = 0;
while (sent < count && ended === null) {
  sent += per;
  if (!sock.write(batch))
    await Promise.race([new Promise((r) => sock.once('drain', r)), gone]);
}
clearInterval(sampler);
peak = Math.max(peak, rss());
// read the rest: frames after the 101 up to a Close, then EOF or reset
sock.resume();
const deadline = new Promise((r) => setTimeout(() => r('timeout'), 20000));
const how = await Promise.race([gone, deadline]);
let code = 0, pongs = 0;
for (let i = 0; i + 2 <= buf.length;) {
  let n = buf[i + 1] & 0x7f, h = 2;
  if (n === 126) { n = buf.readUInt16BE(i + 2); h = 4; }
  else if (n === 127) { n = Number(buf.readBigUInt64BE(i + 2)); h = 10; }
  if (i + h + n > buf.length) break;
  const op = buf[i] & 0x0f;
  if (op === 0xa) pongs++;
  if (op === 0x8 && n >= 2) { code = buf.readUInt16BE(i + h); break; }
  i += h + n;
}
await new Promise((r) => setTimeout(r, 200)); // lmzd frees the connection
console.log(JSON.stringify({ idle, peak, after: rss(), sent, closed: how !== 'timeout',
  how, code, pongs, ms: Date.now() - t0 }));
sock.destroy();
process.exit(0);
EOF

OUT=$(timeout -k 5 120 node "$T/flood.mjs" "$HTTP_PORT" "$LMZD_PID" "$FLOOD_PINGS" 2>&1)
echo "# client: $OUT"
js() { node -e "const o=JSON.parse(process.argv[1]); console.log(o.$2)" "$1" 2>/dev/null; }
IDLE=$(js "$OUT" idle)
PEAK=$(js "$OUT" peak)
if [ -z "$IDLE" ] || [ -z "$PEAK" ] || [ "$IDLE" -le 0 ] || [ "$PEAK" -le 0 ]; then
  bad "the flood client ran and measured lmzd's RSS"
else
  echo "# lmzd RSS: idle ${IDLE} kB, peak ${PEAK} kB during $(js "$OUT" sent) pings," \
       "$(js "$OUT" after) kB after; $(js "$OUT" pongs) pongs read, close code $(js "$OUT" code)"
  check "lmzd's RSS stays within ${RSS_SLACK_KB} kB of idle under the ping flood (+$((PEAK - IDLE)) kB)" \
    test $((PEAK - IDLE)) -le "$RSS_SLACK_KB"
  check "the flooding connection is closed by lmzd ($(js "$OUT" how))" test "$(js "$OUT" closed)" = true
  CODE=$(js "$OUT" code)
  check "a Close frame that got through says 1008 (got ${CODE:-none})" \
    test "${CODE:-0}" = 0 -o "${CODE:-0}" = 1008
  check "lmzd counted the overload close" \
    wait_until 10 grep -q "peer does not read; closing with 1008" "$D.log"
fi
serves() { lcall "$D" ECHO_WORKER - echo 1 >/dev/null; }
check "lmzd still serves calls after the flood" serves
if kill -0 "$LMZD_PID" 2>/dev/null; then
  kill -TERM "$LMZD_PID"
  if wait_until 20 sh -c "! kill -0 $LMZD_PID"; then
    wait "$LMZD_PID"
    check "lmzd stops cleanly on SIGTERM (exit 0)" test $? -eq 0
  else
    bad "lmzd stops within 20 s of SIGTERM"
  fi
else
  bad "lmzd still running after the flood"
fi
if grep -qE 'AddressSanitizer|runtime error:|LeakSanitizer' "$D.log"; then
  bad "sanitizer reports in the lmzd log"
fi
[ "$FAIL" -eq 0 ] || { echo "--- lmzd log (last 20 lines) ---"; tail -20 "$D.log"; }
finish
