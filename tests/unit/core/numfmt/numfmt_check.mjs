// tests/unit/core/numfmt/numfmt_check.mjs - differential test of lmz's number
// formatting (core/json.c) against Node.js.
//
//   node numfmt_check.mjs NUMFMT_GEN SEED COUNT
//
// Runs numfmt_gen, and for every line compares lmz's text with String(x) and
// lmz's JSON text with JSON.stringify(x), x being the double with the printed
// bits. Fails on the first few mismatches (prints them), on a line count other
// than COUNT (no output is a failure, not a pass), or when the generator fails.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

const [gen, seed, countArg] = process.argv.slice(2);
const count = Number(countArg);
if (!gen || !seed || !(count > 0)) {
  console.error('usage: node numfmt_check.mjs NUMFMT_GEN SEED COUNT');
  process.exit(2);
}

const child = spawn(gen, [seed, String(count)], { stdio: ['ignore', 'pipe', 'inherit'] });
const view = new DataView(new ArrayBuffer(8));
let lines = 0, bad = 0;
const kinds = { nan: 0, inf: 0, zero: 0, subnormal: 0, exp: 0, plain: 0 };

for await (const line of createInterface({ input: child.stdout })) {
  lines++;
  const [hex, text, json, extra] = line.split(' ');
  if (extra !== undefined || json === undefined || hex.length !== 16) {
    console.error(`line ${lines}: malformed: ${line}`);
    process.exit(1);
  }
  view.setBigUint64(0, BigInt('0x' + hex));
  const x = view.getFloat64(0);
  const want = String(x), wantJson = JSON.stringify(x);
  if (text !== want || json !== wantJson) {
    if (++bad <= 20)
      console.error(`mismatch for bits ${hex}: lmz ${text} / ${json}, node ${want} / ${wantJson}`);
  }
  if (Number.isNaN(x)) kinds.nan++;
  else if (!Number.isFinite(x)) kinds.inf++;
  else if (x === 0) kinds.zero++;
  else if (Math.abs(x) < 2.2250738585072014e-308) kinds.subnormal++;
  else if (want.includes('e')) kinds.exp++;
  else kinds.plain++;
}
const code = await new Promise((resolve) => {
  if (child.exitCode !== null) resolve(child.exitCode);
  else child.on('exit', (c) => resolve(c));
});

console.log(`${lines} doubles, ${bad} mismatches; ${JSON.stringify(kinds)}`);
if (code !== 0) {
  console.error(`numfmt_gen exited with ${code}`);
  process.exit(1);
}
if (lines !== count) {
  console.error(`expected ${count} lines, got ${lines}`);
  process.exit(1);
}
process.exit(bad === 0 ? 0 : 1);
