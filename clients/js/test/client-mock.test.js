// LmzClient against a scripted WebSocket (behaviour doc 7.1 "Client (mock
// socket)", 1.9, 2.3), with node:test's fake timers for backoff, heartbeat and
// queue timeouts. Every test disconnects its clients.
import { test, describe, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import {
  LmzClient, LumenizeClient, LoginRequiredError, ConnectionLostError, MessageTooLargeError, DEFAULTS, mesh, ctn, getOperationChain, getOrCreateTabId,
  isRetryable, isOverloaded,
} from '../src/index.js';
import { mockWebSocketClass, makeJwt, flush, silentLogger, recordingLogger } from './helpers/mock-socket.js';

const TOKEN = makeJwt({ sub: 'alice' }); // no exp: trusted as-is
const clients = [];

function make(opts = {}, Cls = LmzClient) {
  const WS = opts.WebSocket ?? mockWebSocketClass();
  const states = [];
  const client = new Cls({
    baseUrl: 'https://host',
    instanceName: 'alice.tab1',
    accessToken: TOKEN,
    logger: silentLogger,
    onConnectionStateChange: (s) => states.push(s),
    ...opts,
    WebSocket: WS,
  });
  clients.push(client);
  return { client, WS, states, ws: () => WS.instances.at(-1) };
}

afterEach(() => {
  while (clients.length) clients.pop().disconnect();
});

const timers = (t) => t.mock.timers.enable({ apis: ['setTimeout', 'setInterval'] });

describe('connecting', () => {
  test('URL and subprotocols', () => {
    const { ws } = make();
    assert.equal(ws().url, 'wss://host/gateway/LUMENIZE_CLIENT_GATEWAY/alice.tab1');
    assert.deepEqual(ws().protocols, ['lmz', `lmz.access-token.${TOKEN}`]);
    const h = make({ baseUrl: 'http://127.0.0.1:8080/', gatewayBindingName: 'GW' });
    assert.equal(h.ws().url, 'ws://127.0.0.1:8080/gateway/GW/alice.tab1');
  });

  test('instanceName defaults to {sub}.{tabId} (8 chars) from the token', async () => {
    const { client, ws } = make({ instanceName: undefined });
    assert.match(ws().url, /\/gateway\/LUMENIZE_CLIENT_GATEWAY\/alice\.[0-9a-f]{8}$/);
    assert.equal(client.lmz.instanceName, ws().url.split('/').at(-1));
    assert.equal(client.claims.sub, 'alice');
    assert.ok(Object.isFrozen(client.claims));
  });

  test('without a token the client refreshes first (function refresh)', async () => {
    let calls = 0;
    const fresh = makeJwt({ sub: 'bob' });
    const { ws } = make({ instanceName: undefined, accessToken: undefined, refresh: async () => { calls++; return { access_token: fresh }; } });
    assert.equal(ws(), undefined, 'no socket before the token');
    await flush();
    assert.equal(calls, 1);
    assert.match(ws().url, /\/bob\.[0-9a-f]{8}$/);
    assert.deepEqual(ws().protocols, ['lmz', `lmz.access-token.${fresh}`]);
  });

  test('a URL refresh is POSTed with credentials, relative to baseUrl in Node', async () => {
    const seen = [];
    const fresh = makeJwt({ sub: 'carol' });
    const fetch = async (url, init) => {
      seen.push([url, init]);
      return { ok: true, status: 200, json: async () => ({ access_token: fresh }), text: async () => '' };
    };
    const { ws } = make({ accessToken: undefined, fetch, refresh: '/auth/refresh-token' });
    await flush();
    assert.deepEqual(seen, [['https://host/auth/refresh-token', { method: 'POST', credentials: 'include' }]]);
    assert.deepEqual(ws().protocols, ['lmz', `lmz.access-token.${fresh}`]);
  });

  test('states: connecting (deferred), connected only on connection_status, subscription flag', async () => {
    let subs = 0;
    const { client, ws, states } = make({ onSubscriptionRequired: () => subs++ });
    assert.equal(client.connectionState, 'connecting');
    assert.deepEqual(states, [], 'the first callback waits for a microtask');
    await flush();
    assert.deepEqual(states, ['connecting']);
    ws().open();
    assert.equal(client.connectionState, 'connecting', 'socket open is not connected');
    ws().receive({ type: 'connection_status', subscriptionRequired: false });
    assert.equal(client.connectionState, 'connected');
    assert.equal(subs, 0, 'no subscription callback when not required');
    client.disconnect();
    assert.deepEqual(states, ['connecting', 'connected', 'disconnected']);
    assert.deepEqual(ws().closeCalls, [[1000, 'Client disconnect']]);
  });

  test('onSubscriptionRequired fires when the gateway asks', () => {
    let subs = 0;
    const { ws } = make({ onSubscriptionRequired: () => subs++ });
    ws().accept(true);
    assert.equal(subs, 1);
  });

  test('a close schedules a reconnect with 1 s x 2^n backoff capped at 30 s', (t) => {
    timers(t);
    const { client, WS, ws } = make();
    ws().accept();
    const expected = [1000, 2000, 4000, 8000, 16000, 30000, 30000];
    for (const delay of expected) {
      const before = WS.instances.length;
      ws().serverClose(1006);
      assert.equal(client.connectionState, 'reconnecting');
      t.mock.timers.tick(delay - 1);
      assert.equal(WS.instances.length, before, `no reconnect before ${delay} ms`);
      t.mock.timers.tick(1);
      assert.equal(WS.instances.length, before + 1, `reconnect at ${delay} ms`);
    }
    ws().open(); // an open resets the attempt counter
    ws().serverClose(1006);
    t.mock.timers.tick(1000);
    assert.equal(WS.instances.length, expected.length + 2);
  });

  test('4400 and 4403: login required, disconnected, no retry', (t) => {
    for (const code of [4400, 4403]) {
      timers(t);
      const errors = [];
      const { client, WS, ws } = make({ onLoginRequired: (e) => errors.push(e) });
      ws().accept();
      ws().serverClose(code, 'bad token');
      assert.equal(client.connectionState, 'disconnected');
      assert.equal(errors.length, 1);
      assert.ok(errors[0] instanceof LoginRequiredError);
      assert.equal(errors[0].code, code);
      assert.equal(errors[0].reason, 'bad token');
      t.mock.timers.tick(60000);
      assert.equal(WS.instances.length, 1, 'no reconnect');
      t.mock.timers.reset();
    }
  });

  test('4401: refresh, then reconnect with the new token', async () => {
    const fresh = makeJwt({ sub: 'alice', n: 2 });
    let refreshes = 0;
    const { client, WS, ws } = make({ refresh: () => { refreshes++; return { access_token: fresh }; } });
    ws().accept();
    ws().serverClose(4401, 'Token expired');
    assert.equal(client.connectionState, 'reconnecting');
    await flush();
    assert.equal(refreshes, 1);
    assert.equal(WS.instances.length, 2);
    assert.deepEqual(ws().protocols, ['lmz', `lmz.access-token.${fresh}`]);
    ws().accept(false);
    assert.equal(client.connectionState, 'connected');
  });

  test('4401 with a failing refresh: login required (401, refresh token expired)', async () => {
    const errors = [];
    const { client, ws } = make({ refresh: async () => { throw new Error('nope'); }, onLoginRequired: (e) => errors.push(e) });
    ws().accept();
    ws().serverClose(4401);
    await flush();
    assert.equal(client.connectionState, 'disconnected');
    assert.equal(errors[0].message, 'Token refresh failed');
    assert.equal(errors[0].code, 401);
    assert.equal(errors[0].reason, 'Refresh token expired or invalid');
  });

  test('an idle-expired token is refreshed before reconnecting', async (t) => {
    timers(t);
    const now = Math.floor(Date.now() / 1000);
    const fresh = makeJwt({ sub: 'alice', exp: now + 3600 });
    let refreshes = 0;
    const { WS, ws } = make({
      accessToken: makeJwt({ sub: 'alice', exp: now + 10 }), // within the 30 s refresh window
      refresh: () => { refreshes++; return { access_token: fresh }; },
    });
    await flush();
    assert.equal(refreshes, 1, 'refreshed before the first connect');
    assert.deepEqual(ws().protocols, ['lmz', `lmz.access-token.${fresh}`]);
    ws().accept();
    ws().serverClose(1006);
    t.mock.timers.tick(1000);
    await flush();
    assert.equal(refreshes, 1, 'a fresh token is reused');
    assert.equal(WS.instances.length, 2);
  });

  test('a forced refresh happens once per failing reconnect cycle', async (t) => {
    timers(t);
    let refreshes = 0;
    const { WS, ws } = make({ refresh: () => { refreshes++; return { access_token: makeJwt({ sub: 'alice', r: refreshes }) }; } });
    ws().accept();
    ws().serverClose(1006); // drop: first reconnect keeps the token
    t.mock.timers.tick(1000);
    await flush();
    assert.equal(refreshes, 0);
    assert.equal(WS.instances.length, 2);
    ws().serverClose(1006); // the reconnect itself failed: one forced refresh
    t.mock.timers.tick(2000);
    await flush();
    assert.equal(refreshes, 1);
    assert.equal(WS.instances.length, 3);
    ws().serverClose(1006); // still failing: no second refresh in this cycle
    t.mock.timers.tick(4000);
    await flush();
    assert.equal(refreshes, 1);
    assert.equal(WS.instances.length, 4);
  });

  test('refresh 500 is transient (reconnect); refresh 401 is login required', async (t) => {
    timers(t);
    const statuses = [500, 401];
    const errors = [];
    let calls = 0;
    const fetch = async () => {
      const status = statuses[calls++];
      return { ok: false, status, json: async () => ({}), text: async () => '' };
    };
    const { client, WS } = make({ accessToken: undefined, refresh: '/auth/refresh-token', fetch, onLoginRequired: (e) => errors.push(e) });
    await flush();
    assert.equal(client.connectionState, 'reconnecting', '500: transient');
    assert.equal(errors.length, 0);
    t.mock.timers.tick(1000);
    await flush();
    assert.equal(calls, 2);
    assert.equal(client.connectionState, 'disconnected', '401: login required');
    assert.equal(errors[0].code, 401);
    assert.equal(WS.instances.length, 0);
  });

  test('a stale close (e.g. 4409) from a superseded socket is ignored', (t) => {
    timers(t);
    const { client, WS, ws } = make();
    const old = ws();
    old.accept();
    const staleOnClose = old.onclose;
    old.serverClose(1006);
    t.mock.timers.tick(1000);
    ws().accept(false);
    assert.equal(client.connectionState, 'connected');
    staleOnClose.call(old, { code: 4409, reason: 'Superseded by new connection' });
    assert.equal(client.connectionState, 'connected');
    t.mock.timers.tick(60000);
    assert.equal(WS.instances.length, 2);
  });

  test('4409 on the current socket: superseded by another connection, no reconnect fight', (t) => {
    timers(t);
    const errors = [];
    const { client, WS, ws } = make({ onConnectionError: (e) => errors.push(e) });
    ws().accept();
    ws().serverClose(4409, 'Superseded by new connection');
    assert.equal(client.connectionState, 'disconnected');
    assert.match(errors[0].message, /^Superseded by another connection for alice\.tab1/);
    t.mock.timers.tick(60000);
    assert.equal(WS.instances.length, 1);
  });

  test('heartbeat: lmz:ping on the interval, lmz:pong is harmless', (t) => {
    timers(t);
    const log = recordingLogger();
    const { client, ws } = make({ logger: log });
    ws().accept();
    t.mock.timers.tick(29999);
    assert.equal(ws().sent.filter((s) => s === 'lmz:ping').length, 0);
    t.mock.timers.tick(1);
    t.mock.timers.tick(30000);
    assert.equal(ws().sent.filter((s) => s === 'lmz:ping').length, 2);
    ws().receive('lmz:pong');
    assert.equal(client.connectionState, 'connected');
    assert.deepEqual(log.lines, []);
  });

  test('heartbeatIntervalMs <= 0 disables the heartbeat', (t) => {
    timers(t);
    const { ws } = make({ heartbeatIntervalMs: 0 });
    ws().accept();
    t.mock.timers.tick(120000);
    assert.deepEqual(ws().sent, []);
  });

  test('unknown frames go to onUnknownMessage; invalid JSON is ignored', () => {
    const seen = [];
    class C extends LmzClient { onUnknownMessage(m) { seen.push(m); } }
    const { client, ws } = make({}, C);
    ws().accept();
    ws().receive({ type: 'bench_marker', t: 1 });
    ws().receive('{not json');
    assert.deepEqual(seen, [{ type: 'bench_marker', t: 1 }]);
    assert.equal(client.connectionState, 'connected');
  });

  test('using / Symbol.dispose disconnects; LumenizeClient is the same class', () => {
    assert.equal(LumenizeClient, LmzClient);
    const { client, ws } = make();
    ws().accept();
    client[Symbol.dispose]();
    assert.equal(client.connectionState, 'disconnected');
    assert.deepEqual(ws().closeCalls, [[1000, 'Client disconnect']]);
  });
});

describe('outgoing calls', () => {
  test('the call frame (observed shape) and call_response', async () => {
    const { client, ws } = make();
    ws().accept();
    const p = client.lmz.callRaw('DOCUMENT_DO', 'doc-1', ctn().update(new Map([['k', new Date(0)]]), undefined));
    const [frame] = ws().frames('call');
    assert.equal(JSON.stringify({ ...frame, callId: 'c1' }),
      '{"type":"call","callId":"c1","binding":"DOCUMENT_DO","instance":"doc-1",' +
      '"chain":{"json":[{"type":"get","key":"update"},' +
      '{"type":"apply","args":[{"$type":"map","entries":[["k",{"$type":"date","iso":"1970-01-01T00:00:00.000Z"}]]},{"$type":"undefined"}]}],"meta":{}},' +
      '"callContext":{"callChain":[{"type":"LumenizeClient","bindingName":"LUMENIZE_CLIENT_GATEWAY","instanceName":"alice.tab1"}],' +
      '"state":{"json":{},"meta":{}}}}');
    assert.match(frame.callId, /^[0-9a-f-]{36}$/);
    ws().receive({ type: 'call_response', callId: frame.callId, success: true, result: { json: { $type: 'set', values: [1] }, meta: {} } });
    assert.deepEqual(await p, new Set([1]));
  });

  test('a Worker call has no instance key; errors reject with the decoded error', async () => {
    const { client, ws } = make();
    ws().accept();
    const p = client.callRaw('SPELLCHECK_WORKER', undefined, ctn().check('teh'));
    const [frame] = ws().frames('call');
    assert.ok(!('instance' in frame));
    ws().receive({
      type: 'call_response', callId: frame.callId, success: false,
      error: { json: { $type: 'error', name: 'ClientDisconnectedError', message: 'Client is not connected', clientInstanceName: 'bob.tab1' }, meta: {} },
    });
    await assert.rejects(p, (e) => e.name === 'ClientDisconnectedError' && e.clientInstanceName === 'bob.tab1' &&
      e.constructor.name === 'ClientDisconnectedError');
  });

  test('an overloaded callee rejects with MeshOverloadedError, retryable and overloaded', async () => {
    const { client, ws } = make();
    ws().accept();
    const p = client.callRaw('COUNTER_DO', 'x', ctn().increment(1));
    const [frame] = ws().frames('call');
    // the gateway's SC-JSON of the node's error (core/codec_scjson.c: custom properties flat)
    ws().receive({
      type: 'call_response', callId: frame.callId, success: false,
      error: { json: { $type: 'error', name: 'MeshOverloadedError',
        message: 'actor COUNTER_DO/x is overloaded: too many calls queued (limits.mailbox_max = 8)',
        retryable: true, overloaded: true }, meta: {} },
    });
    const err = await p.catch((e) => e);
    assert.ok(err instanceof Error);
    assert.equal(err.name, 'MeshOverloadedError');
    assert.equal(err.retryable, true);
    assert.equal(err.overloaded, true);
    assert.ok(isRetryable(err) && isOverloaded(err));
    assert.ok(!isRetryable(new Error('plain')) && !isOverloaded(new Error('plain')));
    assert.ok(!isRetryable({ retryable: true }), 'only Errors');
  });

  test('onSent fires with the call id before the frame is sent or queued', () => {
    const ids = [];
    const { client, ws } = make();
    client.call('X', 'x', ctn().f(), undefined, { onSent: (id) => ids.push([id, ws().sent.length]) });
    assert.equal(ids.length, 1);
    assert.equal(ids[0][1], 0);
  });

  test('calls before connect are queued and flushed on connection_status', () => {
    const { client, ws } = make();
    client.call('A', 'a', ctn().one());
    client.call('A', 'a', ctn().two());
    assert.deepEqual(ws().sent, []);
    ws().open();
    ws().receive({ type: 'connection_status', subscriptionRequired: false });
    assert.deepEqual(ws().frames('call').map((f) => f.chain.json[0].key), ['one', 'two']);
  });

  test('the 101st queued call rejects with Message queue full', async () => {
    const { client } = make();
    const first = [];
    for (let i = 0; i < 100; i++) first.push(client.callRaw('A', 'a', ctn().f(i)));
    await assert.rejects(client.callRaw('A', 'a', ctn().f(100)), { message: 'Message queue full' });
    client.disconnect();
    const settled = await Promise.allSettled(first);
    assert.ok(settled.every((s) => s.status === 'rejected' && s.reason.message === 'Client disconnected'));
  });

  test('a queued call times out after 30 s', async (t) => {
    timers(t);
    const { client } = make();
    const p = client.callRaw('A', 'a', ctn().f());
    t.mock.timers.tick(30000);
    await assert.rejects(p, { message: 'Call timed out while waiting for connection' });
  });

  test('in-flight calls reject with ConnectionLostError when the socket drops (deliberate fix)', async (t) => {
    timers(t);
    const { client, ws } = make();
    ws().accept();
    const inflight = client.callRaw('A', 'a', ctn().f());
    ws().serverClose(1006);
    const queued = client.callRaw('A', 'a', ctn().g()); // made while down: queued, not lost
    await assert.rejects(inflight, (e) => e instanceof ConnectionLostError && /may or may not have run/.test(e.message));
    t.mock.timers.tick(1000);
    ws().accept(false);
    const [frame] = ws().frames('call');
    assert.equal(frame.chain.json[0].key, 'g');
    ws().receive({ type: 'call_response', callId: frame.callId, success: true, result: { json: 5, meta: {} } });
    assert.equal(await queued, 5);
  });

  test('close 1009 "Message is too large": in-flight calls reject with MessageTooLargeError, then reconnect', async (t) => {
    timers(t);
    const { client, ws } = make();
    ws().accept();
    const a = client.callRaw('A', 'a', ctn().f('x'.repeat(1000)));
    const b = client.callRaw('A', 'a', ctn().g());
    const first = ws();
    first.serverClose(1009, 'Message is too large');
    for (const p of [a, b]) {
      await assert.rejects(p, (e) => e instanceof MessageTooLargeError && e instanceof ConnectionLostError &&
        e.code === 1009 && e.reason === 'Message is too large' && /^Message is too large: .*1009/.test(e.message));
    }
    t.mock.timers.tick(1000);
    assert.notEqual(ws(), first, 'reconnected');
    ws().accept(false);
    const c = client.callRaw('A', 'a', ctn().h());
    const [frame] = ws().frames('call');
    ws().receive({ type: 'call_response', callId: frame.callId, success: true, result: { json: 1, meta: {} } });
    assert.equal(await c, 1);
  });

  test('a call over maxMessageBytes is rejected without being sent; the socket stays', async () => {
    assert.equal(DEFAULTS.maxMessageBytes, 32 * 1024 * 1024);
    const { client, ws } = make({ maxMessageBytes: 4096 });
    ws().accept();
    const big = client.callRaw('A', 'a', ctn().f('é'.repeat(2000))); // 4000 bytes of UTF-8 + the frame
    await assert.rejects(big, (e) => e instanceof MessageTooLargeError && e.limit === 4096 && e.size > 4096 &&
      e.code === undefined && /^Message is too large: the call is \d+ bytes, over maxMessageBytes \(4096\)/.test(e.message));
    assert.equal(ws().frames('call').length, 0, 'nothing sent');
    assert.equal(ws().closeCalls.length, 0);
    const small = client.callRaw('A', 'a', ctn().f('é'.repeat(1000)));
    const [frame] = ws().frames('call');
    ws().receive({ type: 'call_response', callId: frame.callId, success: true, result: { json: 2, meta: {} } });
    assert.equal(await small, 2);
  });

  test('a queued call over maxMessageBytes is rejected when the queue is flushed', async (t) => {
    timers(t);
    const { client, ws } = make({ maxMessageBytes: 4096 });
    ws().serverClose(1006); // never connected: calls queue
    const queued = client.callRaw('A', 'a', ctn().f('y'.repeat(5000)));
    t.mock.timers.tick(1000);
    ws().accept(false);
    await assert.rejects(queued, (e) => e instanceof MessageTooLargeError && e.limit === 4096);
    assert.equal(ws().frames('call').length, 0);
  });

  test('disconnect() rejects pending calls', async () => {
    const { client, ws } = make();
    ws().accept();
    const p = client.callRaw('A', 'a', ctn().f());
    client.disconnect();
    await assert.rejects(p, { message: 'Client disconnected' });
  });

  test('a 4-arg call substitutes the result at $result', async () => {
    const got = [];
    class C extends LmzClient {
      handleResult(id, result, tag) { got.push([id, result, tag]); }
    }
    const { client, ws } = make({}, C);
    ws().accept();
    client.lmz.call('DOC', 'd', ctn().subscribe(), client.ctn().handleResult('doc-1', client.ctn().$result, 'src'));
    const [frame] = ws().frames('call');
    ws().receive({ type: 'call_response', callId: frame.callId, success: true, result: { json: 'content', meta: {} } });
    await flush();
    assert.deepEqual(got, [['doc-1', 'content', 'src']]);
  });

  test('errors reach the handler as Error; onErrorOnly skips success', async () => {
    const got = [];
    class C extends LmzClient {
      h(result) { got.push(result); }
    }
    const { client, ws } = make({}, C);
    ws().accept();
    client.call('X', 'x', ctn().a(), client.ctn().h(), { onErrorOnly: true });
    client.call('X', 'x', ctn().b(), client.ctn().h(), { onErrorOnly: true });
    client.call('X', 'x', ctn().c(), client.ctn().h());
    const [a, b, c] = ws().frames('call');
    ws().receive({ type: 'call_response', callId: a.callId, success: true, result: { json: 1, meta: {} } });
    ws().receive({ type: 'call_response', callId: b.callId, success: false, error: { json: { $type: 'error', name: 'Error', message: 'boom' }, meta: {} } });
    ws().receive({ type: 'call_response', callId: c.callId, success: false, error: { json: 'plain string', meta: {} } });
    await flush();
    assert.equal(got.length, 2);
    assert.ok(got[0] instanceof Error && got[0].message === 'boom');
    assert.ok(got[1] instanceof Error && got[1].message === 'plain string', 'a non-Error is wrapped');
  });

  test('non-continuations throw synchronously', () => {
    const { client } = make();
    assert.throws(() => client.lmz.call('A', 'a', {}), { message: 'Invalid remoteContinuation: must be created with this.ctn()' });
    assert.throws(() => client.lmz.call('A', 'a', ctn().f(), () => {}), { message: 'Invalid handlerContinuation: must be created with this.ctn()' });
  });

  test('a fire-and-forget failure without handler is logged', async () => {
    const log = recordingLogger();
    const { client, ws } = make({ logger: log });
    ws().accept();
    client.call('A', 'a', ctn().f());
    const [f] = ws().frames('call');
    ws().receive({ type: 'call_response', callId: f.callId, success: false, error: { json: { $type: 'error', name: 'Error', message: 'x' }, meta: {} } });
    await flush();
    assert.equal(log.lines.length, 1);
    assert.match(log.lines[0][1], /fire-and-forget call failed/);
  });

  test('responses for unknown call ids are ignored', () => {
    const { client, ws } = make();
    ws().accept();
    ws().receive({ type: 'call_response', callId: 'nope', success: true, result: { json: 1, meta: {} } });
    assert.equal(client.connectionState, 'connected');
  });

  test('state option; newChain starts a fresh chain', () => {
    const { client, ws } = make();
    ws().accept();
    client.call('A', 'a', ctn().f(), undefined, { state: { token: 'x', when: new Date(0) } });
    const [f] = ws().frames('call');
    assert.deepEqual(f.callContext.state, { json: { token: 'x', when: { $type: 'date', iso: '1970-01-01T00:00:00.000Z' } }, meta: {} });
  });
});

describe('incoming calls', () => {
  // an incoming_call frame as the gateway sends it (the args here are plain JSON)
  const incoming = (callId, continuation, callContext) => ({
    type: 'incoming_call', callId,
    chain: { json: getOperationChain(continuation), meta: {} },
    callContext: {
      callChain: [{ type: 'LumenizeDO', bindingName: 'DOCUMENT_DO', instanceName: 'doc-1' }],
      state: { json: {}, meta: {} },
      ...callContext,
    },
  });

  class Editor extends LmzClient {
    static meshMethods = ['handleContentUpdate'];
    updates = [];
    handleContentUpdate(documentId, content) {
      this.updates.push([documentId, content, this.lmz.callContext.callChain.at(-1).bindingName]);
      return `ok ${documentId}`;
    }
    notMesh() { return 'secret'; }
    fails() { throw new RangeError('handler failed'); }
  }
  mesh(Editor.prototype.fails);

  test('a mesh-callable method runs and is answered', async () => {
    const { client, ws } = make({}, Editor);
    ws().accept();
    ws().receive(incoming('g1', ctn().handleContentUpdate('doc-1', 'hello')));
    await flush();
    assert.deepEqual(client.updates, [['doc-1', 'hello', 'DOCUMENT_DO']]);
    assert.deepEqual(ws().frames('incoming_call_response'), [
      { type: 'incoming_call_response', callId: 'g1', success: true, result: { json: 'ok doc-1', meta: {} } },
    ]);
  });

  test('a thrown handler error answers success:false with the error', async () => {
    const { ws } = make({}, Editor);
    ws().accept();
    ws().receive(incoming('g2', ctn().fails()));
    await flush();
    const [r] = ws().frames('incoming_call_response');
    assert.equal(r.success, false);
    assert.equal(r.error.json.name, 'RangeError');
    assert.equal(r.error.json.message, 'handler failed');
  });

  test('tracing: callContext.traceId/callId are exposed and carried by calls made from the handler', async () => {
    class Relay extends LmzClient {
      static meshMethods = ['relay'];
      seen = null;
      relay() {
        this.seen = this.lmz.callContext;
        this.lmz.call('B', 'b', ctn().f());
        return 1;
      }
    }
    const { client, ws } = make({}, Relay);
    ws().accept();
    const T = '4bf92f3577b34da6a3ce929d0e0e4736';
    ws().receive(incoming('t1', ctn().relay(), { traceId: T, callId: '00f067aa0ba902b7' }));
    await flush();
    assert.equal(client.seen.traceId, T);
    assert.equal(client.seen.callId, '00f067aa0ba902b7');
    assert.equal(ws().frames('call')[0].callContext.traceId, T);
    ws().receive(incoming('t2', ctn().relay(), { traceId: T.toUpperCase(), callId: 'x' }));
    await flush();
    assert.equal(client.seen.traceId, undefined); // malformed: dropped
    assert.equal(client.seen.callId, undefined);
    assert.equal(ws().frames('call')[1].callContext.traceId, undefined);
  });

  test('an unmarked method is refused', async () => {
    const { ws } = make({}, Editor);
    ws().accept();
    ws().receive(incoming('g3', ctn().notMesh()));
    await flush();
    const [r] = ws().frames('incoming_call_response');
    assert.equal(r.error.json.message, "Method 'notMesh' is not mesh-callable. Add the @mesh decorator to allow remote calls.");
  });

  test('default onBeforeCall refuses peer-to-peer client calls, allows self-origin', async () => {
    const { client, ws } = make({}, Editor);
    ws().accept();
    const peer = [{ type: 'LumenizeClient', bindingName: 'LUMENIZE_CLIENT_GATEWAY', instanceName: 'mallory.tab9' }];
    ws().receive(incoming('p1', ctn().handleContentUpdate('d', 'x'), { callChain: peer }));
    const self = [{ type: 'LumenizeClient', bindingName: 'LUMENIZE_CLIENT_GATEWAY', instanceName: 'alice.tab1' },
      { type: 'LumenizeDO', bindingName: 'DOCUMENT_DO', instanceName: 'doc-1' }];
    ws().receive(incoming('p2', ctn().handleContentUpdate('d', 'y'), { callChain: self }));
    await flush();
    const [r1, r2] = ws().frames('incoming_call_response');
    assert.equal(r1.success, false);
    assert.equal(r1.error.json.message, 'Peer-to-peer client calls are disabled by default. Override onBeforeCall() to allow them.');
    assert.equal(r2.success, true);
    assert.equal(client.updates.length, 1);
  });

  test('callContext (state postprocessed, originAuth) is visible; outgoing calls inherit it', async () => {
    class C extends LmzClient {
      relay(x) {
        const c = this.lmz.callContext;
        this.seen = c;
        this.lmz.call('NEXT', 'n', ctn().go(x), undefined, { state: { extra: 1 } });
        this.lmz.call('NEXT', 'n', ctn().fresh(), undefined, { newChain: true });
      }
    }
    mesh(C.prototype.relay);
    const { client, ws } = make({}, C);
    ws().accept();
    ws().receive(incoming('s1', ctn().relay(7), {
      originAuth: { sub: 'alice', claims: { isAdmin: true } },
      state: { json: { when: { $type: 'date', iso: '1970-01-01T00:00:00.000Z' } }, meta: {} },
    }));
    await flush();
    assert.ok(client.seen.state.when instanceof Date);
    assert.deepEqual(client.seen.originAuth, { sub: 'alice', claims: { isAdmin: true } });
    const [inherit, fresh] = ws().frames('call');
    assert.deepEqual(inherit.callContext.callChain, [
      { type: 'LumenizeDO', bindingName: 'DOCUMENT_DO', instanceName: 'doc-1' },
      { type: 'LumenizeClient', bindingName: 'LUMENIZE_CLIENT_GATEWAY', instanceName: 'alice.tab1' },
    ]);
    assert.deepEqual(Object.keys(inherit.callContext.state.json), ['when', 'extra']);
    assert.deepEqual(fresh.callContext.callChain, [{ type: 'LumenizeClient', bindingName: 'LUMENIZE_CLIENT_GATEWAY', instanceName: 'alice.tab1' }]);
    assert.deepEqual(fresh.callContext.state, { json: {}, meta: {} });
    assert.throws(() => client.lmz.callContext, /outside of a mesh call/);
  });

  test('the meshMethods config option exposes methods of a plain LmzClient', async () => {
    const { client, ws } = make({ meshMethods: { ping: true, guarded: () => { throw new Error('guard says no'); } } });
    client.ping = (x) => `pong ${x}`;
    client.guarded = () => 'never';
    client.other = () => 'hidden';
    ws().accept();
    ws().receive(incoming('m1', ctn().ping(1)));
    ws().receive(incoming('m2', ctn().guarded()));
    ws().receive(incoming('m3', ctn().other()));
    await flush();
    const [r1, r2, r3] = ws().frames('incoming_call_response');
    assert.deepEqual(r1.result, { json: 'pong 1', meta: {} });
    assert.equal(r2.error.json.message, 'guard says no');
    assert.match(r3.error.json.message, /'other' is not mesh-callable/);
  });

  test('replies are dropped when the socket is no longer open', async () => {
    class C extends LmzClient { async slow() { await flush(); return 1; } }
    mesh(C.prototype.slow);
    const { ws } = make({}, C);
    const s = ws();
    s.accept();
    s.receive(incoming('d1', ctn().slow()));
    s.readyState = 3;
    await flush();
    await flush();
    assert.deepEqual(s.frames('incoming_call_response'), []);
  });
});

describe('the getting-started EditorClient shape in plain JavaScript', () => {
  class EditorClient extends LmzClient {
    static meshMethods = ['handleContentUpdate', 'handleSpellFindings'];
    #documents = new Map();

    openDocument(documentId, callbacks) {
      this.#documents.set(documentId, callbacks);
      this.#subscribe(documentId);
      return {
        saveContent: (content) => this.lmz.call('DOCUMENT_DO', documentId, this.ctn().update(content)),
        close: () => this.#documents.delete(documentId),
      };
    }

    #subscribe(documentId) {
      this.lmz.call('DOCUMENT_DO', documentId, this.ctn().subscribe(),
        this.ctn().handleSubscribeResult(documentId, this.ctn().$result));
    }

    onSubscriptionRequired = () => {
      for (const documentId of this.#documents.keys()) this.#subscribe(documentId);
    };

    handleSubscribeResult(documentId, result) {
      if (result instanceof Error) return;
      this.#documents.get(documentId)?.onContentUpdate?.(result);
    }

    handleContentUpdate(documentId, content) {
      this.#documents.get(documentId)?.onContentUpdate?.(content);
    }

    handleSpellFindings(documentId, findings) {
      this.#documents.get(documentId)?.onSpellFindings?.(findings);
    }
  }

  test('open, subscribe, receive updates and findings, save, dispose', async () => {
    const { client, ws } = make({}, EditorClient);
    const contents = [];
    const findings = [];
    const doc = client.openDocument('doc-1', { onContentUpdate: (c) => contents.push(c), onSpellFindings: (f) => findings.push(f) });
    ws().accept(true); // flushes the queued subscribe, then onSubscriptionRequired subscribes again
    const subs = ws().frames('call');
    assert.equal(subs.length, 2);
    for (const s of subs) {
      assert.deepEqual(s.chain.json, [{ type: 'get', key: 'subscribe' }, { type: 'apply', args: [] }]);
      ws().receive({ type: 'call_response', callId: s.callId, success: true, result: { json: 'initial', meta: {} } });
    }
    await flush();
    assert.deepEqual(contents, ['initial', 'initial']);
    const push = (callId, chain) => ws().receive({
      type: 'incoming_call', callId, chain: { json: chain, meta: {} },
      callContext: { callChain: [{ type: 'LumenizeDO', bindingName: 'DOCUMENT_DO', instanceName: 'doc-1' }], state: { json: {}, meta: {} } },
    });
    push('u1', [{ type: 'get', key: 'handleContentUpdate' }, { type: 'apply', args: ['doc-1', 'The quick brown fox'] }]);
    push('u2', [{ type: 'get', key: 'handleSpellFindings' }, { type: 'apply', args: ['doc-1', [{ word: 'teh', position: 4, suggestions: ['the'] }]] }]);
    push('u3', [{ type: 'get', key: 'handleSubscribeResult' }, { type: 'apply', args: ['doc-1', 'forged'] }]);
    await flush();
    assert.deepEqual(contents, ['initial', 'initial', 'The quick brown fox']);
    assert.deepEqual(findings, [[{ word: 'teh', position: 4, suggestions: ['the'] }]]);
    const refused = ws().frames('incoming_call_response').find((r) => r.callId === 'u3');
    assert.equal(refused.success, false, 'a handler that is not mesh-callable cannot be called remotely');
    doc.saveContent('The quick brown fox');
    assert.deepEqual(ws().frames('call').at(-1).chain.json, [{ type: 'get', key: 'update' }, { type: 'apply', args: ['The quick brown fox'] }]);
    doc.close();
    client[Symbol.dispose]();
    assert.equal(client.connectionState, 'disconnected');
  });

  test('subclass callbacks fire after construction (fields exist)', async () => {
    const seen = [];
    class C extends LmzClient {
      onConnectionStateChange = (s) => seen.push(s);
    }
    const { ws } = make({ onConnectionStateChange: undefined }, C);
    await flush();
    ws().accept();
    assert.deepEqual(seen, ['connecting', 'connected']);
  });
});

describe('tab id', () => {
  test('a duplicated tab (same sessionStorage copy) gets a new id; Node without storage gets a random one', async () => {
    const storageA = new Map();
    const mk = (m) => ({ getItem: (k) => m.get(k) ?? null, setItem: (k, v) => m.set(k, v) });
    const deps = (m) => ({ sessionStorage: mk(m), BroadcastChannel });
    const id1 = await getOrCreateTabId(deps(storageA));
    assert.match(id1, /^[0-9a-f]{8}$/);
    assert.equal(storageA.get('lmz_tab'), id1);
    const storageB = new Map(storageA); // duplicated tab: cloned sessionStorage
    const id2 = await getOrCreateTabId(deps(storageB));
    assert.notEqual(id2, id1);
    assert.equal(storageB.get('lmz_tab'), id2);
    const storageC = new Map([['lmz_tab', 'deadbeef']]); // a reload: id not in use anywhere
    assert.equal(await getOrCreateTabId(deps(storageC)), 'deadbeef');
  });
});
