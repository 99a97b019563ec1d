// tests/lib/node_flood.mjs - holds a flood of unauthenticated connections
// against a node port, for tests/integration/node_flood.sh.
//
//   node node_flood.mjs HOST PORT SRC COUNT RATE MAX_TOTAL STOP_FILE STATS_FILE
//
// Keeps COUNT connections open from source address SRC: half idle (never
// send a byte), half slow (send a well-formed secure hello, then nothing: the
// node answers and waits for a proof of the key that never comes). Every one
// the node closes is reopened, at up to RATE new connections a second (the
// bound that keeps a shared test machine usable), until MAX_TOTAL
// connections were opened, STOP_FILE exists, or 120 s passed (a hard bound,
// should the script die). STATS_FILE gets {"opened","notices","closed","held"} as JSON on
// exit, and "held" lines while running once COUNT were connected.
// "notices" counts overload notices received (00 00 00 02 03 02).
import fs from 'node:fs';
import net from 'node:net';

const [host, portS, src, countS, rateS, maxS, stopFile, statsFile] = process.argv.slice(2);
const port = Number(portS), count = Number(countS), maxTotal = Number(maxS);
const perTick = Math.max(1, Math.round(Number(rateS) / 100)); // every 10 ms
const reopen = []; // indices waiting for a new connection
const NOTICE = Buffer.from([0, 0, 0, 2, 3, 2]);
// A secure hello: len 59 | type 1 | version 1 | role 1 (initiator) | epk 32 | nonce 24
const HELLO = Buffer.alloc(63, 0x5a);
HELLO.writeUInt32BE(59, 0);
HELLO[4] = 1; HELLO[5] = 1; HELLO[6] = 1;
const stats = { opened: 0, notices: 0, closed: 0, held: 0, errors: 0 };
let stopping = false, everHeld = false;
const t0 = Date.now();

function writeStats() { fs.writeFileSync(statsFile, JSON.stringify(stats) + '\n'); }

function open(i) {
  if (stopping || stats.opened >= maxTotal) return;
  stats.opened++;
  const slow = i % 2 === 1;
  const s = net.connect({ host, port, localAddress: src });
  let seen = Buffer.alloc(0), up = false;
  s.on('connect', () => {
    up = true;
    stats.held++;
    if (!everHeld && stats.held >= count) { everHeld = true; writeStats(); }
    if (slow) s.write(HELLO);
  });
  s.on('data', (d) => {
    if (seen.length < 256) seen = Buffer.concat([seen, d]);
  });
  s.on('error', () => { stats.errors++; });
  s.on('close', () => {
    if (up) stats.held--;
    stats.closed++;
    if (seen.includes(NOTICE)) stats.notices++;
    reopen.push(i); // a refused connect (node restarting) just comes round
  });
}

for (let i = 0; i < count; i++) open(i);
setInterval(() => {
  for (let k = 0; k < perTick && reopen.length; k++) open(reopen.shift());
}, 10);
const iv = setInterval(() => {
  if (fs.existsSync(stopFile) || Date.now() - t0 > 120000) {
    stopping = true;
    clearInterval(iv);
    writeStats();
    process.exit(0);
  }
}, 50);
