// tests/e2e/lib/harness.js - helpers for black-box tests against a running
// `lmzd --dev` (started by tests/integration/gateway_node.sh or
// editor_e2e.sh through tests/lib/it_lib.sh).
//
// Environment (set by the wrappers):
//   LMZ_HTTP      http://127.0.0.1:PORT of lmzd's HTTP/WebSocket port
//   LMZ_DATA      lmzd's data directory (dev keys: jwt-keys.json)
//   LMZ_NODE      127.0.0.1:PORT of the node port (for `lmz call`)
//   LMZ_BIN_DIR   where lmz / lmzd are
//
// Everything that waits has a deadline (withTimeout, waitFor); nothing
// sleeps a fixed time. Sockets opened through these helpers are tracked
// and closed by closeAll() (tests call it in `after`).
import { execFile, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import WebSocket from 'ws';

export const HTTP = need('LMZ_HTTP');
export const DATA = need('LMZ_DATA');
export const NODE_ADDR = need('LMZ_NODE');
export const BIN = need('LMZ_BIN_DIR');
export const WS_BASE = HTTP.replace(/^http:/, 'ws:');
export const { hostname: HOST, port: PORT } = new URL(HTTP);
export const ISS = 'https://lumenize.local';
export const GW = 'LUMENIZE_CLIENT_GATEWAY';

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run this through tests/integration/*.sh`);
  return v;
}

// ---------------------------------------------------------------------------
// waiting
// ---------------------------------------------------------------------------

/** Rejects with `what` when `promise` has not settled within `ms`. */
export function withTimeout(promise, ms, what) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

/** Polls `fn` (sync or async) every `every` ms until it returns a truthy value. */
export async function waitFor(fn, { timeout = 5000, every = 20, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

// ---------------------------------------------------------------------------
// tokens
// ---------------------------------------------------------------------------

const b64u = (buf) => Buffer.from(buf).toString('base64url');
const PKCS8_ED25519 = Buffer.from('302e020100300506032b657004220420', 'hex');

/** The dev keys lmzd --dev created: {kid: {seed, public, privateKey}}. */
export function devKeys() {
  const file = JSON.parse(fs.readFileSync(path.join(DATA, 'jwt-keys.json'), 'utf8'));
  const out = {};
  for (const k of file.keys) {
    const seed = Buffer.from(k.seed, 'base64url');
    out[k.kid] = {
      seed,
      public: Buffer.from(k.public, 'base64url'),
      privateKey: crypto.createPrivateKey({ key: Buffer.concat([PKCS8_ED25519, seed]), format: 'der', type: 'pkcs8' }),
    };
  }
  out.primary = file.primary;
  return out;
}

/** A key no server knows. */
export function strangerKey() {
  return crypto.generateKeyPairSync('ed25519').privateKey;
}

/** Claims the gateway accepts for `sub` (override or delete with `extra`). */
export function claimsFor(sub, extra = {}) {
  const now = Math.floor(Date.now() / 1000);
  const c = { iss: ISS, aud: ISS, sub, iat: now, exp: now + 3600, jti: crypto.randomUUID(),
    emailVerified: true, adminApproved: true, ...extra };
  for (const [k, v] of Object.entries(c)) if (v === undefined) delete c[k];
  return c;
}

/** An EdDSA JWT over `payload` signed with `privateKey`. */
export function signJwt(payload, privateKey, header = { alg: 'EdDSA', typ: 'JWT', kid: 'BLUE' }) {
  const input = `${b64u(JSON.stringify(header))}.${b64u(JSON.stringify(payload))}`;
  return `${input}.${b64u(crypto.sign(null, Buffer.from(input), privateKey))}`;
}

/** A token signed with the dev key (`kid`, default the primary). */
export function devToken(sub, extra = {}, kid) {
  const keys = devKeys();
  const k = kid ?? keys.primary;
  return signJwt(claimsFor(sub, extra), keys[k].privateKey, { alg: 'EdDSA', typ: 'JWT', kid: k });
}

/** GET /_lmz/dev-token: {access_token, sub, ...}. */
export async function fetchDevToken() {
  const res = await fetch(`${HTTP}/_lmz/dev-token`);
  if (res.status !== 200) throw new Error(`dev token: HTTP ${res.status}`);
  return res.json();
}

let tabSeq = 0;
/** A fresh identity: {sub, instance, token}. */
export function identity(prefix = 'u') {
  const sub = `${prefix}-${crypto.randomBytes(4).toString('hex')}`;
  return { sub, instance: `${sub}.t${++tabSeq}`, token: devToken(sub) };
}

// ---------------------------------------------------------------------------
// processes
// ---------------------------------------------------------------------------

/** Runs `lmz ARGS...`; resolves {code, stdout, stderr} (never rejects on exit codes). */
export function lmz(args, { timeout = 20000 } = {}) {
  return new Promise((resolve, reject) => {
    execFile(path.join(BIN, 'lmz'), args, { timeout, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') return reject(err);
      resolve({ code: err ? err.code : 0, stdout, stderr });
    });
  });
}

/** `lmz call` against the node: ARGS after the options (BINDING INSTANCE METHOD [ARG...]). */
export function lmzCall(args, opts) {
  return lmz(['call', '--node', NODE_ADDR, '--data', DATA, ...args], opts);
}

export { spawn };

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

/** GET /_lmz/status as JSON. */
export async function status() {
  const res = await fetch(`${HTTP}/_lmz/status`);
  return res.json();
}

/**
 * An HTTP request with WebSocket upgrade headers to `pathname`; resolves
 * {status, headers, body} for a refusal, or {status: 101, headers, socket}.
 */
export function upgradeRequest(pathname, { protocols, headers = {}, upgrade = true } = {}) {
  return withTimeout(new Promise((resolve, reject) => {
    const h = { ...headers };
    if (upgrade) {
      Object.assign(h, {
        Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Key': crypto.randomBytes(16).toString('base64'),
      });
    }
    if (protocols) h['Sec-WebSocket-Protocol'] = protocols.join(', ');
    const req = http.request({ host: HOST, port: PORT, path: pathname, method: 'GET', headers: h, agent: false });
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('upgrade', (res, socket) => {
      resolve({ status: res.statusCode, headers: res.headers, socket });
    });
    req.on('error', reject);
    req.end();
  }), 5000, `upgrade ${pathname}`);
}

/**
 * Writes `bytes` on a fresh TCP connection and resolves everything the
 * server sends until it closes the connection (or `until(text)` is true),
 * as a latin1 string.
 */
export function rawExchange(bytes, { until, timeout = 5000 } = {}) {
  return withTimeout(new Promise((resolve, reject) => {
    const sock = net.connect({ host: HOST, port: Number(PORT) });
    const chunks = [];
    const done = () => { sock.destroy(); resolve(Buffer.concat(chunks).toString('latin1')); };
    sock.on('connect', () => {
      for (const b of Array.isArray(bytes) ? bytes : [bytes]) sock.write(b);
    });
    sock.on('data', (d) => {
      chunks.push(d);
      if (until?.(Buffer.concat(chunks).toString('latin1'))) done();
    });
    sock.on('end', done);
    sock.on('close', done);
    sock.on('error', (e) => (e.code === 'ECONNRESET' ? done() : reject(e)));
  }), timeout, 'raw exchange');
}

/** The status code of the first HTTP response in `text`, or 0. */
export function statusOf(text) {
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
  return m ? Number(m[1]) : 0;
}

// ---------------------------------------------------------------------------
// WebSockets (the `ws` package)
// ---------------------------------------------------------------------------

const open = new Set();

/**
 * A client socket with a message inbox: `next(pred, ms)` resolves the next
 * (text) message matching pred; `closed` resolves {code, reason}.
 */
export class Sock {
  constructor(instance, token, { protocols } = {}) {
    this.instance = instance;
    this.inbox = [];
    this.waiters = [];
    this.ws = new WebSocket(`${WS_BASE}/gateway/${GW}/${instance}`,
      protocols ?? ['lmz', `lmz.access-token.${token}`]);
    open.add(this);
    this.opened = withTimeout(new Promise((resolve, reject) => {
      this.ws.once('open', resolve);
      this.ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
      this.ws.once('error', reject);
    }), 5000, `open ${instance}`);
    this.opened.catch(() => {});
    this.closed = new Promise((resolve) => {
      this.ws.once('close', (code, reason) => { open.delete(this); resolve({ code, reason: reason.toString() }); });
    });
    this.ws.on('error', () => {});
    this.ws.on('message', (data, isBinary) => {
      const text = isBinary ? null : data.toString();
      const msg = { text, json: parseOrNull(text) };
      const i = this.waiters.findIndex((w) => w.pred(msg));
      if (i >= 0) this.waiters.splice(i, 1)[0].resolve(msg);
      else this.inbox.push(msg);
    });
  }

  /** The next message matching pred (default: any); searches the inbox first. */
  next(pred = () => true, ms = 5000, what = 'a message') {
    const i = this.inbox.findIndex(pred);
    if (i >= 0) return Promise.resolve(this.inbox.splice(i, 1)[0]);
    return withTimeout(new Promise((resolve) => this.waiters.push({ pred, resolve })), ms,
      `${what} on ${this.instance}`);
  }

  /** The next JSON frame of `type`. */
  async frame(type, ms = 5000) {
    return (await this.next((m) => m.json?.type === type, ms, `a ${type} frame`)).json;
  }

  send(x) {
    this.ws.send(typeof x === 'string' ? x : JSON.stringify(x));
  }

  /** Sends a call frame and resolves its call_response. */
  async call(binding, instance, chain, { state = {}, callChain, callId = crypto.randomUUID() } = {}) {
    this.send({ type: 'call', callId, binding, instance,
      chain: { json: chain, meta: {} },
      callContext: { callChain: callChain ?? [{ type: 'LumenizeClient', bindingName: GW, instanceName: this.instance }],
        state: { json: state, meta: {} } } });
    return (await this.next((m) => m.json?.type === 'call_response' && m.json.callId === callId, 5000,
      `call_response ${callId}`)).json;
  }

  close(code = 1000, reason = 'test done') {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) {
      this.ws.close(code, reason);
    }
    return withTimeout(this.closed, 5000, `close of ${this.instance}`);
  }
}

function parseOrNull(text) {
  if (text === null) return null;
  try { return JSON.parse(text); } catch { return null; }
}

/** A plain chain [get method, apply args]. */
export const chainOf = (method, ...args) => [{ type: 'get', key: method }, { type: 'apply', args }];

/** Opens a socket and waits for its connection_status frame. */
export async function connect(instance, token) {
  const s = new Sock(instance, token);
  await s.opened;
  s.status = await s.frame('connection_status');
  return s;
}

/** Terminates every socket still open (for `after`). */
export function closeAll() {
  for (const s of open) s.ws.terminate();
  open.clear();
}

// ---------------------------------------------------------------------------
// A raw WebSocket over net (for frames `ws` refuses to send)
// ---------------------------------------------------------------------------

/** A masked client frame. opcode 1 text, 2 binary, 8 close, 9 ping. */
export function wsFrame(opcode, payload, { fin = true, mask = true, rsv = 0 } = {}) {
  const data = Buffer.isBuffer(payload) ? payload : Buffer.from(payload ?? '');
  const len = data.length;
  const head = [((fin ? 0x80 : 0) | (rsv << 4) | opcode)];
  const m = mask ? 0x80 : 0;
  if (len < 126) head.push(m | len);
  else if (len < 65536) head.push(m | 126, len >> 8, len & 255);
  else {
    head.push(m | 127);
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(BigInt(len));
    head.push(...b);
  }
  if (!mask) return Buffer.concat([Buffer.from(head), data]);
  const key = crypto.randomBytes(4);
  const masked = Buffer.from(data);
  for (let i = 0; i < masked.length; i++) masked[i] ^= key[i & 3];
  return Buffer.concat([Buffer.from(head), key, masked]);
}

/** The upgrade request of a client (raw bytes). */
export function upgradeBytes(instance, token) {
  return Buffer.from(
    `GET /gateway/${GW}/${instance} HTTP/1.1\r\nHost: ${HOST}:${PORT}\r\n` +
    'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n' +
    `Sec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\n` +
    `Sec-WebSocket-Protocol: lmz, lmz.access-token.${token}\r\n\r\n`, 'latin1');
}

/**
 * Parses unmasked server frames from `buf` (after the HTTP head):
 * [{opcode, payload: Buffer}], ignoring a trailing partial frame.
 */
export function parseServerFrames(buf) {
  const out = [];
  let i = 0;
  while (i + 2 <= buf.length) {
    const op = buf[i] & 0x0f;
    let len = buf[i + 1] & 0x7f;
    let p = i + 2;
    if (len === 126) { if (p + 2 > buf.length) break; len = buf.readUInt16BE(p); p += 2; }
    else if (len === 127) { if (p + 8 > buf.length) break; len = Number(buf.readBigUInt64BE(p)); p += 8; }
    if (p + len > buf.length) break;
    out.push({ opcode: op, payload: buf.subarray(p, p + len) });
    i = p + len;
  }
  return out;
}

/**
 * Upgrades over a raw TCP socket, sends `frames` (Buffers) right after the
 * request (in the same write when `together`), and resolves {status, frames}
 * with the server frames received until the server closes the TCP
 * connection or `until(frames)` holds.
 */
export function rawWs(instance, token, frames, { together = false, until, timeout = 5000 } = {}) {
  return withTimeout(new Promise((resolve, reject) => {
    const sock = net.connect({ host: HOST, port: Number(PORT) });
    let buf = Buffer.alloc(0);
    let headEnd = -1;
    let status = 0;
    const result = () => ({ status, frames: headEnd < 0 ? [] : parseServerFrames(buf.subarray(headEnd)) });
    const done = () => { sock.destroy(); resolve(result()); };
    sock.on('connect', () => {
      const up = upgradeBytes(instance, token);
      if (together) sock.write(Buffer.concat([up, ...frames]));
      else sock.write(up);
    });
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (headEnd < 0) {
        const e = buf.indexOf('\r\n\r\n');
        if (e < 0) return;
        headEnd = e + 4;
        status = statusOf(buf.subarray(0, headEnd).toString('latin1'));
        if (!together && status === 101) for (const f of frames) sock.write(f);
      }
      if (until?.(result().frames)) done();
    });
    sock.on('end', done);
    sock.on('close', done);
    sock.on('error', (e) => (e.code === 'ECONNRESET' || e.code === 'EPIPE' ? done() : reject(e)));
  }), timeout, `raw ws ${instance}`);
}

/** The close code of a Close frame's payload (or null). */
export function closeCode(frame) {
  return frame && frame.opcode === 8 && frame.payload.length >= 2 ? frame.payload.readUInt16BE(0) : null;
}
