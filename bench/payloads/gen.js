#!/usr/bin/env node
// bench/payloads/gen.js - generates the codec benchmark payloads (SC-JSON).
//
//   node bench/payloads/gen.js [LMZ_BIN]
//
// Builds each value in JavaScript with a fixed-seed PRNG, encodes it with the
// small SC-JSON preprocess below ({json, meta}, $type tags, $ref aliases for
// objects referenced more than once, "$" key escaping), and writes
// bench/payloads/<name>.json. With LMZ_BIN (path to build/bin/lmz) each file
// is then piped through `lmz codec roundtrip`, so the committed text is
// exactly what lmz's encoder produces (the benchmark checks that).
// The files are checked in; re-run only to change the payload set.
'use strict';
const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');

// ---- deterministic PRNG (mulberry32) ----------------------------------------
let seed = 0x1e2f3a4b;
function rand() {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (a) => a[Math.floor(rand() * a.length)];
const int = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1));
const WORDS = ('the mesh actor calls continuation durable object worker client ' +
  'gateway state storage alarm chain cluster node placement epoch raft leader ' +
  'value codec binary text map set date error graph cycle alias reference ' +
  'editor paragraph heading list quote code block mark bold italic link ' +
  'comment author review draft publish version history merge patch').split(' ');
const words = (n) => Array.from({ length: n }, () => pick(WORDS)).join(' ');
const sentence = () => { const s = words(int(6, 16)); return s[0].toUpperCase() + s.slice(1) + '.'; };
const BASE_MS = Date.UTC(2025, 2, 14, 9, 30, 0);
const date = () => new Date(BASE_MS + int(0, 86400 * 90) * 1000 + int(0, 999));

// ---- minimal SC-JSON preprocess (the types used here) ------------------------
function isObj(v) { return v !== null && typeof v === 'object'; }
function preprocess(root) {
  const count = new Map();
  (function walk(v) {
    if (!isObj(v)) return;
    const n = (count.get(v) || 0) + 1;
    count.set(v, n);
    if (n > 1) return;
    if (v instanceof Map) for (const [k, x] of v) { walk(k); walk(x); }
    else if (v instanceof Set) for (const x of v) walk(x);
    else if (v instanceof Date) return;
    else for (const k of Object.keys(v)) walk(v[k]);
  })(root);
  const ids = new Map();
  const aliases = {};
  function enc(v) {
    if (v === undefined) return { $type: 'undefined' };
    if (typeof v === 'number' && !Number.isFinite(v))
      return { $type: 'number-special', value: String(v) };
    if (!isObj(v)) return v;
    if (count.get(v) > 1) {
      if (!ids.has(v)) {
        const id = ids.size;
        ids.set(v, id);
        aliases[id] = body(v);
      }
      return { $ref: ids.get(v) };
    }
    return body(v);
  }
  function body(v) {
    if (v instanceof Date) return { $type: 'date', iso: v.toISOString() };
    if (v instanceof Map) return { $type: 'map', entries: [...v].map(([k, x]) => [enc(k), enc(x)]) };
    if (v instanceof Set) return { $type: 'set', values: [...v].map(enc) };
    if (Array.isArray(v)) return v.map(enc);
    const o = {};
    for (const k of Object.keys(v)) o[k.startsWith('$') ? '$' + k : k] = enc(v[k]);
    return o;
  }
  const json = enc(root);
  return { json, meta: ids.size ? { aliases } : {} };
}

// ---- the payloads ---------------------------------------------------------------
function callEnvelope() {
  return {
    chain: [{ type: 'get', key: 'increment' }, { type: 'apply', args: [5] }],
    callContext: {
      callChain: [
        { type: 'LumenizeClient', bindingName: 'LUMENIZE_CLIENT_GATEWAY', instanceName: 'alice.tab1' },
        { type: 'LumenizeDO', bindingName: 'COUNTER_DO', instanceName: 'counter-42' },
      ],
      originAuth: { sub: 'alice', claims: { role: 'editor', exp: 1767225600 } },
      state: { requestId: '7f3c2a9e-1b4d-4c8e-9a2f-5e6d7c8b9a01', startedAt: new Date(BASE_MS),
               attempt: 1, traceSampled: true },
    },
  };
}

function callResponse() {
  const when = new Date(BASE_MS + 61000);
  return {
    callId: 'c0a8012e-6b1f-4d2a-8e3c-9f4b5a6d7e80',
    success: true,
    result: {
      count: 47,
      lastBy: { type: 'LumenizeClient', instanceName: 'alice.tab1' },
      history: new Map([['alice.tab1', when], ['bob.tab3', new Date(BASE_MS + 5000)]]),
      pending: undefined,
      limits: { max: Infinity, min: 0 },
      updatedAt: when,
    },
  };
}

function editorDocument() {
  const authors = Array.from({ length: 3 }, (_, i) => ({
    id: `u${100 + i}`, name: pick(['Ada', 'Grace', 'Edsger', 'Barbara', 'Ken']) + ' ' +
      pick(['Lovelace', 'Hopper', 'Dijkstra', 'Liskov', 'Thompson']), email: `user${i}@example.org`,
  }));
  const blocks = [];
  for (let i = 0; i < 34; i++) {
    const type = i % 9 === 0 ? 'heading' : pick(['paragraph', 'paragraph', 'paragraph', 'list', 'quote', 'code']);
    const text = type === 'heading' ? words(int(2, 5)) : Array.from({ length: int(1, 3) }, sentence).join(' ');
    const b = { id: `b${i.toString(16).padStart(4, '0')}`, type, text };
    if (type === 'heading') b.attrs = { level: int(1, 3) };
    if (type === 'list') b.items = Array.from({ length: int(2, 4) }, () => words(int(3, 7)));
    if (type === 'code') b.attrs = { language: pick(['c', 'js', 'sh']), lineNumbers: rand() < 0.5 };
    if (rand() < 0.5) {
      b.marks = Array.from({ length: int(1, 2) }, () => {
        const start = int(0, Math.max(0, text.length - 10));
        return { type: pick(['bold', 'italic', 'link']), start, end: start + int(3, 9) };
      });
    }
    blocks.push(b);
  }
  return {
    id: 'doc-2f9c', title: 'Design notes: ' + words(4), $version: 17,
    createdAt: date(), updatedAt: date(),
    authors, tags: ['design', 'mesh', 'draft'],
    settings: { pageWidth: 816, margins: [72, 72, 72, 72], spellcheck: true, zoom: 1.25, theme: null },
    blocks,
    comments: Array.from({ length: 4 }, (_, i) => ({
      id: `cm${i}`, author: authors[i % 3].id, blockId: blocks[int(0, blocks.length - 1)].id,
      text: sentence(), at: date(), resolved: rand() < 0.3,
    })),
    stats: { words: 0, characters: 0, readingMinutes: 0 },
  };
}

function mapHeavy() {
  const users = Array.from({ length: 12 }, (_, i) => ({
    id: i + 1, handle: `${pick(WORDS)}_${i}`, joined: date(), roles: new Set(['reader', ...(i % 3 ? [] : ['admin'])]),
  }));
  const byHandle = new Map(users.map((u) => [u.handle, u]));
  const sessions = new Map(users.map((u) => [u, new Set(Array.from({ length: int(1, 4) }, date))]));
  const counters = new Map(Array.from({ length: 40 }, (_, i) => [`counter:${pick(WORDS)}:${i}`, int(0, 100000)]));
  const pairs = new Map(Array.from({ length: 10 }, () => [{ from: pick(users).id, to: pick(users).id }, date()]));
  const calendar = new Map(Array.from({ length: 15 }, (_, i) => [date(), { slot: i, owners: new Set([pick(users), pick(users)]) }]));
  return { users, byHandle, sessions, counters, pairs, calendar, tags: new Set(WORDS.slice(0, 30)) };
}

function cyclicGraph() {
  const N = 200;
  const nodes = Array.from({ length: N }, (_, i) => ({ id: i, label: `n${i}`, weight: Math.round(rand() * 1000) / 10 }));
  nodes.forEach((n, i) => {
    n.next = nodes[(i + 1) % N]; // one big ring
    n.parent = i ? nodes[Math.floor((i - 1) / 2)] : null; // a binary tree over it
    n.edges = Array.from({ length: int(0, 3) }, () => nodes[int(0, N - 1)]);
  });
  return { name: 'ring+tree+random', root: nodes[0], nodes };
}

const PAYLOADS = {
  call_envelope: callEnvelope,
  call_response: callResponse,
  document_10k: editorDocument,
  map_heavy: mapHeavy,
  cyclic_graph: cyclicGraph,
};

const dir = __dirname;
const lmz = process.argv[2];
for (const [name, make] of Object.entries(PAYLOADS)) {
  let text = JSON.stringify(preprocess(make()));
  if (lmz) text = execFileSync(lmz, ['codec', 'roundtrip'], { input: text }).toString().trimEnd();
  fs.writeFileSync(path.join(dir, name + '.json'), text + '\n');
  console.error(`${name}.json: ${text.length} bytes`);
}
