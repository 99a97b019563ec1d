// tests/e2e/gateway.test.js - black-box tests of lmzd's client gateway over
// real sockets (run by tests/integration/gateway_node.sh against a real
// `lmzd --dev` on ephemeral ports). The cases are the original's gateway
// tests (lumenize-behaviour.md 7.1; sections 1.9, 1.10, 2.2-2.7) plus
// hostile input; see the describe() names. Sockets are raw (`ws`, or bytes
// over net for frames `ws` will not send) or @lmz/client (clients/js).
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, describe, test } from 'node:test';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ctn, ClientDisconnectedError, MessageTooLargeError } from '../../clients/js/src/index.js';
import { postprocess } from '../../clients/js/src/structured-clone.js';
import { EditorClient, LmzClient, connectedClient } from './lib/editor-client.js';
import {
  GW, HTTP, ISS, Sock, chainOf, claimsFor, closeAll, closeCode, connect, devKeys, devToken,
  fetchDevToken, identity, lmz, lmzCall, rawExchange, rawWs, signJwt, spawn, status, statusOf,
  strangerKey, upgradeRequest, waitFor, withTimeout, wsFrame, DATA, BIN, NODE_ADDR,
} from './lib/harness.js';

const clients = new Set();
function track(c) {
  clients.add(c);
  return c;
}
after(() => {
  for (const c of clients) c.disconnect();
  closeAll();
});

const gwPath = (instance) => `/gateway/${GW}/${instance}`;
const MiB = 1024 * 1024;
const tokenProtocols = (t) => ['lmz', `lmz.access-token.${t}`];

// A client of the gateway keeps working: the end of every hostile case.
async function goodClientWorks() {
  const id = identity('good');
  const s = await connect(id.instance, id.token);
  const r = await s.call('ECHO_WORKER', undefined, chainOf('echo', 'still serving'));
  await s.close();
  assert.equal(r.success, true);
  assert.equal(postprocess(r.result), 'still serving');
}

// ---------------------------------------------------------------------------

describe('handshake (1.10 upgrade checks, 2.2)', () => {
  test('a plain GET on the gateway path gets 426', async () => {
    const res = await fetch(`${HTTP}${gwPath('alice.tab1')}`);
    assert.equal(res.status, 426);
    assert.equal(await res.text(), 'Expected WebSocket upgrade');
  });

  test('an upgrade without a token gets 401', async () => {
    const r = await upgradeRequest(gwPath('alice.tab1'), { protocols: ['lmz'] });
    assert.equal(r.status, 401);
    assert.equal(r.body, 'Unauthorized: Missing access token in WebSocket subprotocol');
    const none = await upgradeRequest(gwPath('alice.tab1'));
    assert.equal(none.status, 401);
  });

  const invalid = '{"error":"invalid_token","error_description":"Token is invalid or expired"}';
  const forged = {
    'signed with a key the server does not know': () => signJwt(claimsFor('alice'), strangerKey()),
    'alg confusion: HS256 keyed with the public key': () => {
      const pub = devKeys()[devKeys().primary].public;
      const input = `${Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT' })).toString('base64url')}.` +
        Buffer.from(JSON.stringify(claimsFor('alice'))).toString('base64url');
      return `${input}.${crypto.createHmac('sha256', pub).update(input).digest('base64url')}`;
    },
    'alg none without a signature': () =>
      `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.` +
      `${Buffer.from(JSON.stringify(claimsFor('alice'))).toString('base64url')}.`,
    'expired (exp in the past, good signature)': () =>
      devToken('alice', { exp: Math.floor(Date.now() / 1000) - 120, iat: Math.floor(Date.now() / 1000) - 3720 }),
    'tampered payload (sub changed after signing)': () => {
      const [h, , s] = devToken('mallory').split('.');
      return `${h}.${Buffer.from(JSON.stringify(claimsFor('alice'))).toString('base64url')}.${s}`;
    },
    'not a JWT at all': () => 'not.a.jwt',
    'undecodable payload': () => {
      const [h, , s] = devToken('alice').split('.');
      return `${h}.%%%%.${s}`;
    },
  };
  for (const [name, make] of Object.entries(forged)) {
    test(`a forged token is refused with 401: ${name}`, async () => {
      const r = await upgradeRequest(gwPath('alice.tab1'), { protocols: tokenProtocols(make()) });
      assert.equal(r.status, 401);
      if (!name.startsWith('undecodable')) {
        assert.equal(r.body, invalid);
        assert.match(r.headers['www-authenticate'], /^Bearer realm="Lumenize", error="invalid_token"/);
      }
    });
  }

  test('wrong audience, wrong issuer and no sub get their 401 answers', async () => {
    const cases = [
      [devToken('alice', { aud: 'https://evil.example' }), 'Token audience mismatch'],
      [devToken('alice', { iss: 'https://evil.example' }), 'Token issuer mismatch'],
      [devToken('alice', { sub: undefined }), 'Token missing subject claim'],
    ];
    for (const [tok, why] of cases) {
      const r = await upgradeRequest(gwPath('alice.tab1'), { protocols: tokenProtocols(tok) });
      assert.equal(r.status, 401, why);
      assert.equal(JSON.parse(r.body).error_description, why);
    }
  });

  test('a token of an unapproved account gets 403 access_denied', async () => {
    const tok = devToken('alice', { adminApproved: false });
    const r = await upgradeRequest(gwPath('alice.tab1'), { protocols: tokenProtocols(tok) });
    assert.equal(r.status, 403);
    assert.deepEqual(JSON.parse(r.body), { error: 'access_denied', error_description: 'Account not yet approved' });
  });

  test('sub bob on instance alice.tab1 gets 403 identity mismatch', async () => {
    const r = await upgradeRequest(gwPath('alice.tab1'), { protocols: tokenProtocols(devToken('bob')) });
    assert.equal(r.status, 403);
    assert.equal(r.body, 'Forbidden: identity mismatch');
  });

  test('an instance name without a dot gets 403', async () => {
    const r = await upgradeRequest(gwPath('alice'), { protocols: tokenProtocols(devToken('alice')) });
    assert.equal(r.status, 403);
    assert.equal(r.body, 'Forbidden: invalid instance name format (expected sub.tabId)');
  });

  test('a valid token: 101 with subprotocol lmz, first frame connection_status {subscriptionRequired: true}', async () => {
    const id = identity('hs');
    const s = new Sock(id.instance, id.token);
    await s.opened;
    assert.equal(s.ws.protocol, 'lmz');
    const first = await s.next();
    assert.deepEqual(first.json, { type: 'connection_status', subscriptionRequired: true });
    await s.close();
  });

  test('the dev token from /_lmz/dev-token connects', async () => {
    const t = await fetchDevToken();
    assert.equal(t.dev_only, true);
    assert.equal(t.token_type, 'Bearer');
    assert.match(t.sub, /^dev-[0-9a-f]{12}$/);
    const s = await connect(`${t.sub}.tab1`, t.access_token);
    assert.equal(s.status.subscriptionRequired, true);
    await s.close();
  });
});

// ---------------------------------------------------------------------------

describe('supersession (4409)', () => {
  test('a second socket for an instance closes the first with 4409 and gets subscriptionRequired false; mesh calls go to the new one', async () => {
    const id = identity('sup');
    const a = await connect(id.instance, id.token);
    assert.equal(a.status.subscriptionRequired, true);
    const b = await connect(id.instance, id.token);
    assert.equal(b.status.subscriptionRequired, false);
    assert.deepEqual(await withTimeout(a.closed, 5000, 'old socket close'),
      { code: 4409, reason: 'Superseded by new connection' });

    // A mesh call to the instance (from the operator CLI) reaches b.
    const call = lmzCall([GW, id.instance, 'ping', '"pong?"']);
    const inc = await b.frame('incoming_call');
    assert.deepEqual(postprocess(inc.chain), chainOf('ping', 'pong?'));
    b.send({ type: 'incoming_call_response', callId: inc.callId, success: true, result: { json: 'from b', meta: {} } });
    const out = await call;
    assert.equal(out.code, 0, out.stderr);
    assert.equal(postprocess(JSON.parse(out.stdout)), 'from b');
    await b.close();
  });

  test('a call relayed to the superseded socket fails at once; its late answer on the new socket is ignored', async () => {
    const id = identity('supr');
    const a = await connect(id.instance, id.token);
    const call = lmzCall([GW, id.instance, 'slow']);
    const inc = await a.frame('incoming_call');
    const b = await connect(id.instance, id.token);
    const out = await call;
    assert.equal(out.code, 3, out.stderr);
    const e = JSON.parse(out.stdout).json;
    assert.equal(e.name, 'ClientDisconnectedError');
    assert.equal(e.message, 'Client disconnected');
    assert.equal(e.clientInstanceName, id.instance);
    b.send({ type: 'incoming_call_response', callId: inc.callId, success: true, result: { json: 'late', meta: {} } });
    const ok = await b.call('ECHO_WORKER', undefined, chainOf('echo', 'fine'));
    assert.equal(ok.success, true);
    assert.equal(b.inbox.length, 0);
    await b.close();
  });

  test('@lmz/client: the superseded client stops (no reconnect war)', async () => {
    const id = identity('supc');
    const errors = [];
    const c1 = track(await connectedClient(LmzClient, id.token, { instanceName: id.instance,
      onConnectionError: (e) => errors.push(e.message) }));
    const c2 = track(await connectedClient(LmzClient, id.token, { instanceName: id.instance }));
    await waitFor(() => c1.connectionState === 'disconnected', { what: 'c1 disconnected' });
    assert.match(errors.join('\n'), /Superseded by another connection/);
    assert.equal(await c2.callRaw('ECHO_WORKER', undefined, ctn().echo(7)), 7);
    c2.disconnect();
  });
});

// ---------------------------------------------------------------------------

describe('client -> mesh (2.4)', () => {
  test('whoami: callChain[0] is the client, originAuth holds the verified claims, state reaches the DO', async () => {
    const id = identity('who');
    const c = track(await connectedClient(LmzClient, id.token, { instanceName: id.instance }));
    const ctx = await c.callRaw('COUNTER_DO', 'who-1', ctn().whoami(), { state: { traceId: 't-1', n: 2 } });
    assert.deepEqual(ctx.callChain[0], { type: 'LumenizeClient', bindingName: GW, instanceName: id.instance });
    assert.equal(ctx.callChain.length, 1);
    assert.equal(ctx.originAuth.sub, id.sub);
    assert.equal(ctx.originAuth.claims.sub, id.sub);
    assert.equal(ctx.originAuth.claims.iss, ISS);
    assert.equal(ctx.originAuth.claims.emailVerified, true);
    assert.equal(ctx.originAuth.claims.adminApproved, true);
    assert.deepEqual(ctx.state, { traceId: 't-1', n: 2 });
    c.disconnect();
  });

  test('a frame claiming another origin is rewritten to the socket\'s identity (trust DMZ)', async () => {
    const id = identity('dmz');
    const s = await connect(id.instance, id.token);
    const r = await s.call('COUNTER_DO', 'who-2', chainOf('whoami'), {
      callChain: [{ type: 'LumenizeClient', bindingName: GW, instanceName: 'admin.tab1' }] });
    assert.equal(r.success, true);
    const ctx = postprocess(r.result);
    assert.deepEqual(ctx.callChain[0], { type: 'LumenizeClient', bindingName: GW, instanceName: id.instance });
    assert.equal(ctx.originAuth.sub, id.sub);
    await s.close();
  });

  test('a worker call without an instance; a durable increment', async () => {
    const id = identity('wk');
    const c = track(await connectedClient(LmzClient, id.token, { instanceName: id.instance }));
    assert.equal(await c.callRaw('ECHO_WORKER', undefined, ctn().echo({ a: [1, 2n] })).then((v) => v.a[1]), 2n);
    assert.equal(await c.callRaw('ECHO_WORKER', undefined, ctn().whereami()), 'node-1');
    const inst = `cnt-${crypto.randomBytes(3).toString('hex')}`;
    assert.equal(await c.callRaw('COUNTER_DO', inst, ctn().increment(5)), 5);
    assert.equal(await c.callRaw('COUNTER_DO', inst, ctn().increment(2)), 7);
    c.disconnect();
  });

  test('a remote throw: success false with the structured error (class, code, cause)', async () => {
    const id = identity('thr');
    const s = await connect(id.instance, id.token);
    const r = await s.call('COUNTER_DO', 'thr-1', chainOf('fail', 'boom'));
    assert.equal(r.success, false);
    assert.equal(r.error.json.$type, 'error');
    assert.equal(r.error.json.name, 'CounterError');
    assert.equal(r.error.json.message, 'boom');
    assert.equal(r.error.json.code, 'E_COUNTER');
    assert.equal(r.error.json.cause.$type, 'error');
    assert.equal(r.error.json.cause.message, 'root cause');
    await s.close();

    class CounterError extends Error {}
    globalThis.CounterError = CounterError; // decoded with its class when it is a global
    try {
      const c = track(await connectedClient(LmzClient, id.token, { instanceName: id.instance }));
      const err = await c.callRaw('COUNTER_DO', 'thr-1', ctn().fail('boom')).then(() => null, (e) => e);
      assert.ok(err instanceof CounterError, `got ${err}`);
      assert.equal(err.name, 'CounterError');
      assert.equal(err.message, 'boom');
      assert.equal(err.code, 'E_COUNTER');
      assert.ok(err.cause instanceof Error);
      assert.equal(err.cause.message, 'root cause');
      c.disconnect();
    } finally {
      delete globalThis.CounterError;
    }
  });

  test('a guard and a local-only method refuse; an unknown binding fails the call, not the socket', async () => {
    const id = identity('acl');
    const c = track(await connectedClient(LmzClient, id.token, { instanceName: id.instance }));
    await assert.rejects(c.callRaw('COUNTER_DO', 'acl-1', ctn().guarded()), /Guard: valid token required/);
    assert.equal(await c.callRaw('COUNTER_DO', 'acl-1', ctn().guarded(), { state: { token: 'letmein' } }), 'ok');
    await assert.rejects(c.callRaw('COUNTER_DO', 'acl-1', ctn().secret()), /not mesh-callable/);
    await assert.rejects(c.callRaw('NO_SUCH_DO', 'x', ctn().anything()), Error);
    assert.equal(await c.callRaw('ECHO_WORKER', undefined, ctn().echo('alive')), 'alive');
    c.disconnect();
  });

  test('unknown types, invalid JSON, binary frames and unknown incoming_call_response ids are ignored; the socket stays usable', async () => {
    const id = identity('junk');
    const s = await connect(id.instance, id.token);
    const before = (await status()).gateway.client_calls;
    s.send({ type: 'no_such_type', x: 1 });
    s.send('{not json');
    s.send('[1,2,3]');
    s.ws.send(Buffer.from([1, 2, 3]), { binary: true });
    s.send({ type: 'incoming_call_response', callId: 'never-sent', success: true, result: { json: 1, meta: {} } });
    s.send({ type: 'call', binding: 'ECHO_WORKER', chain: { json: chainOf('echo', 1), meta: {} } }); // no callId
    const r = await s.call('ECHO_WORKER', undefined, chainOf('echo', 'after junk'));
    assert.equal(r.success, true);
    assert.equal(postprocess(r.result), 'after junk');
    assert.equal(s.inbox.length, 0, `unexpected frames: ${JSON.stringify(s.inbox)}`);
    assert.equal((await status()).gateway.client_calls - before, 1);
    await s.close();
  });

  test('lmz:ping is answered lmz:pong', async () => {
    const id = identity('ping');
    const s = await connect(id.instance, id.token);
    s.send('lmz:ping');
    assert.equal((await s.next()).text, 'lmz:pong');
    await s.close();
  });
});

// ---------------------------------------------------------------------------

describe('token expiry (4401)', () => {
  test('a token minted with `lmz token mint --ttl 1` closes the socket with 4401 on a frame after exp', async () => {
    const sub = `exp-${crypto.randomBytes(3).toString('hex')}`;
    const m = await lmz(['token', 'mint', '--data', DATA, '--sub', sub, '--ttl', '1']);
    assert.equal(m.code, 0, m.stderr);
    const token = m.stdout.trim();
    const s = await connect(`${sub}.tab1`, token);
    assert.equal(s.status.subscriptionRequired, true);
    // Frames keep flowing until the token is past exp: then 4401. (The
    // lmz:ping heartbeat is answered before any check, like the original's
    // auto-responder that does not wake the gateway, so send another frame.)
    s.send('lmz:ping');
    assert.equal((await s.next()).text, 'lmz:pong');
    const closed = await waitFor(async () => {
      if (s.ws.readyState === 1) s.send({ type: 'probe' });
      return Promise.race([s.closed, new Promise((r) => setTimeout(() => r(null), 100))]);
    }, { timeout: 6000, every: 0, what: '4401' });
    assert.deepEqual(closed, { code: 4401, reason: 'Token expired' });
  });

  test('a mesh call to a client whose token expired fails and closes the socket with 4401', async () => {
    const sub = `exq-${crypto.randomBytes(3).toString('hex')}`;
    const token = devToken(sub, { exp: Math.floor(Date.now() / 1000) + 1 });
    const s = await connect(`${sub}.tab1`, token);
    // While the token is valid, relayed calls are answered; once it is past
    // exp the gateway refuses to relay and closes the socket.
    s.ws.on('message', (data) => {
      const m = JSON.parse(data.toString());
      if (m.type === 'incoming_call') {
        s.send({ type: 'incoming_call_response', callId: m.callId, success: true, result: { json: 'ok', meta: {} } });
      }
    });
    const out = await waitFor(async () => {
      const r = await lmzCall([GW, `${sub}.tab1`, 'ping']);
      return r.code === 0 ? null : r;
    }, { timeout: 8000, every: 50, what: 'a refused relay' });
    assert.equal(out.code, 3);
    const err = postprocess(JSON.parse(out.stdout));
    assert.equal(err.name, 'ClientDisconnectedError');
    assert.equal(err.message, 'Client token expired');
    assert.equal(err.clientInstanceName, `${sub}.tab1`);
    assert.deepEqual(await withTimeout(s.closed, 5000, 'close'), { code: 4401, reason: 'Token expired' });
  });
});

// ---------------------------------------------------------------------------

describe('mesh -> client (2.5): the editor flow', () => {
  test('two EditorClients: an update from one reaches the other; the editor gets spell findings for "teh"', async () => {
    const doc = `doc-${crypto.randomBytes(3).toString('hex')}`;
    const a = track(await connectedClient(EditorClient, identity('ed').token));
    const b = track(await connectedClient(EditorClient, identity('ed').token));
    assert.equal(a.subscriptionsRequired, 1);
    const ha = a.openDocument(doc);
    b.openDocument(doc);
    await waitFor(() => a.subscribeResults.length && b.subscribeResults.length, { what: 'subscribed' });
    assert.deepEqual(a.subscribeResults, [[doc, '']]);

    ha.saveContent('the quick teh fox');
    await waitFor(() => b.updates.length, { what: 'b gets the update' });
    assert.deepEqual(b.updates, [[doc, 'the quick teh fox']]);
    await waitFor(() => a.findings.length, { what: 'a gets findings' });
    assert.deepEqual(a.findings, [[doc, [{ word: 'teh', position: 10, suggestions: ['the'] }]]]);
    await waitFor(() => a.updates.length, { what: 'a gets its own broadcast' });
    assert.equal(b.findings.length, 0, 'findings go only to the editor');

    // A third client subscribing later gets the stored content.
    const c = track(await connectedClient(EditorClient, identity('ed').token));
    c.openDocument(doc);
    await waitFor(() => c.subscribeResults.length, { what: 'c subscribed' });
    assert.deepEqual(c.subscribeResults, [[doc, 'the quick teh fox']]);
    for (const x of [a, b, c]) x.disconnect();
  });

  test('an update from a client that did not subscribe is refused by the guard', async () => {
    const a = track(await connectedClient(EditorClient, identity('ed').token));
    await assert.rejects(a.callRaw('DOCUMENT_DO', 'doc-guard', ctn().update('x')), /Must be subscribed to edit/);
    a.disconnect();
  });

  test('a stale subscriber (its tab closed) does not stop the others getting updates', async () => {
    const doc = `doc-${crypto.randomBytes(3).toString('hex')}`;
    const [a, b, gone] = await Promise.all([0, 1, 2].map(async () =>
      track(await connectedClient(EditorClient, identity('ed').token))));
    const ha = a.openDocument(doc);
    b.openDocument(doc);
    gone.openDocument(doc);
    await waitFor(() => a.subscribeResults.length && b.subscribeResults.length && gone.subscribeResults.length,
      { what: 'subscribed' });
    gone.disconnect();
    ha.saveContent('after one left');
    await waitFor(() => b.updates.length, { what: 'b gets the update' });
    assert.deepEqual(b.updates, [[doc, 'after one left']]);
    a.disconnect();
    b.disconnect();
  });

  test('calling a client that never connected: ClientDisconnectedError with clientInstanceName', async () => {
    // From a client through its gateway (the mesh call lands on the gateway actor of ghost.tab1) ...
    const a = track(await connectedClient(LmzClient, identity('cd').token));
    const err = await a.callRaw(GW, 'ghost.tab1', ctn().handleContentUpdate('d', 'x')).then(() => null, (e) => e);
    assert.ok(err instanceof ClientDisconnectedError, `got ${err}`);
    assert.equal(err.message, 'Client is not connected');
    assert.equal(err.clientInstanceName, 'ghost.tab1');
    a.disconnect();
    // ... and from the operator CLI (a node-side caller).
    const out = await lmzCall([GW, 'ghost.tab2', 'handleContentUpdate', '"d"', '"x"']);
    assert.equal(out.code, 3, out.stderr);
    const e2 = JSON.parse(out.stdout);
    assert.equal(e2.json.$type, 'error');
    assert.equal(e2.json.name, 'ClientDisconnectedError');
    assert.equal(e2.json.message, 'Client is not connected');
    assert.equal(e2.json.clientInstanceName, 'ghost.tab2');
  });

  test('a client refuses a call whose origin is another client (peer-to-peer off by default)', async () => {
    const a = track(await connectedClient(LmzClient, identity('p2p').token));
    const b = track(await connectedClient(EditorClient, identity('p2p').token));
    await assert.rejects(a.callRaw(GW, b.lmz.instanceName, ctn().handleContentUpdate('d', 'x')),
      /Peer-to-peer client calls are disabled/);
    assert.equal(b.updates.length, 0);
    a.disconnect();
    b.disconnect();
  });

  test('the relayed call carries the caller\'s chain and a new callId; an error answer reaches the caller', async () => {
    const id = identity('rel');
    const s = await connect(id.instance, id.token);
    const call = lmzCall(['--state', '{"k":"v"}', GW, id.instance, 'doThing', '1', '"two"']);
    const inc = await s.frame('incoming_call');
    assert.match(inc.callId, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.deepEqual(postprocess(inc.chain), chainOf('doThing', 1, 'two'));
    assert.deepEqual(postprocess(inc.callContext.state), { k: 'v' });
    assert.ok(Array.isArray(inc.callContext.callChain));
    s.send({ type: 'incoming_call_response', callId: inc.callId, success: false,
      error: { json: { $type: 'error', name: 'TypeError', message: 'nope' }, meta: {} } });
    const out = await call;
    assert.equal(out.code, 3, out.stderr);
    const e = JSON.parse(out.stdout).json;
    assert.equal(e.name, 'TypeError');
    assert.equal(e.message, 'nope');
    await s.close();
  });
});

// ---------------------------------------------------------------------------

describe('grace period (1.10 close and alarm)', () => {
  test('close then reconnect within grace: subscriptionRequired false and the held call is delivered', async () => {
    const id = identity('gr');
    const s1 = await connect(id.instance, id.token);
    await s1.close(1000, 'bye');
    const before = (await status()).gateway.incoming_calls;
    const call = lmzCall([GW, id.instance, 'handleHeld', '"h1"']);
    await waitFor(async () => (await status()).gateway.incoming_calls > before, { what: 'call held' });
    const s2 = await connect(id.instance, id.token);
    assert.equal(s2.status.subscriptionRequired, false);
    const inc = await s2.frame('incoming_call');
    assert.deepEqual(postprocess(inc.chain), chainOf('handleHeld', 'h1'));
    s2.send({ type: 'incoming_call_response', callId: inc.callId, success: true, result: { json: 'held ok', meta: {} } });
    const out = await call;
    assert.equal(out.code, 0, out.stderr);
    assert.equal(postprocess(JSON.parse(out.stdout)), 'held ok');
    await s2.close();
  });

  test('@lmz/client reconnecting within grace does not re-subscribe (onSubscriptionRequired not fired)', async () => {
    const id = identity('grc');
    const c1 = track(await connectedClient(EditorClient, id.token, { instanceName: id.instance }));
    assert.equal(c1.subscriptionsRequired, 1);
    c1.disconnect();
    const c2 = track(await connectedClient(EditorClient, id.token, { instanceName: id.instance }));
    assert.equal(c2.subscriptionsRequired, 0);
    c2.disconnect();
  });

  test('no reconnect within grace: held calls fail with ClientDisconnectedError; a later connect needs a subscription', async () => {
    const id = identity('grx');
    const s1 = await connect(id.instance, id.token);
    await s1.close(1000, 'bye');
    const out = await lmzCall([GW, id.instance, 'handleHeld', '"lost"'], { timeout: 15000 });
    assert.equal(out.code, 3, out.stderr);
    const e = JSON.parse(out.stdout).json;
    assert.equal(e.name, 'ClientDisconnectedError');
    assert.equal(e.message, 'Client did not reconnect within grace period');
    assert.equal(e.clientInstanceName, id.instance);
    const s2 = await connect(id.instance, id.token);
    assert.equal(s2.status.subscriptionRequired, true);
    await s2.close();
  });

  test('a superseded socket (4409) leaves no grace period behind', async () => {
    const id = identity('grs');
    const a = await connect(id.instance, id.token);
    const b = await connect(id.instance, id.token);
    assert.equal((await a.closed).code, 4409);
    assert.equal(b.status.subscriptionRequired, false);
    await b.close(1000, 'bye'); // grace for b starts now
    const c = await connect(id.instance, id.token);
    assert.equal(c.status.subscriptionRequired, false);
    await c.close();
  });
});

// ---------------------------------------------------------------------------

describe('hostile input: each gets its documented rejection and the server keeps serving', () => {
  const host = () => `Host: ${new URL(HTTP).host}\r\n`;
  const cases = [
    ['a malformed request line', () => 'GARBAGE\r\n\r\n', 400],
    ['a header line without a colon', () => `GET / HTTP/1.1\r\n${host()}no colon here\r\n\r\n`, 400],
    ['HTTP/1.1 without Host', () => 'GET / HTTP/1.1\r\n\r\n', 400],
    ['oversized headers (> 16 KiB)', () => `GET / HTTP/1.1\r\n${host()}X-Big: ${'a'.repeat(17 * 1024)}\r\n\r\n`, 431],
    ['too many headers (> 100)', () => `GET / HTTP/1.1\r\n${host()}${Array.from({ length: 120 }, (_, i) => `X-H${i}: v\r\n`).join('')}\r\n`, 431],
    ['an over-long URL (> 8 KiB)', () => `GET /${'u'.repeat(9 * 1024)} HTTP/1.1\r\n${host()}\r\n`, 414],
    ['a body over the cap (Content-Length 33 MiB)', () => `POST /api/counter-do/x HTTP/1.1\r\n${host()}Content-Length: ${33 * MiB}\r\n\r\n`, 413],
    ['HTTP/2.0 in the request line', () => `GET / HTTP/2.0\r\n${host()}\r\n`, 505],
    ['a WebSocket frame before any upgrade', () => wsFrame(1, 'lmz:ping'), 400],
    ['an upgrade with a bad Sec-WebSocket-Key', () => `GET ${gwPath('a.b')} HTTP/1.1\r\n${host()}Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short\r\n\r\n`, 400],
    ['an upgrade with WebSocket version 8', () => `GET ${gwPath('a.b')} HTTP/1.1\r\n${host()}Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\n\r\n`, 426],
    ['binary junk', () => crypto.randomBytes(512), 400],
  ];
  for (const [name, bytes, expected] of cases) {
    test(`${name} -> ${expected}`, async () => {
      const text = await rawExchange(bytes());
      assert.equal(statusOf(text), expected, text.slice(0, 200));
      await goodClientWorks();
    });
  }

  test('static paths escaping the folder -> 400; missing file -> 404', async () => {
    for (const p of ['/../../etc/passwd', '/%2e%2e/%2e%2e/etc/passwd', '/lmz-client/../../README.md',
      '/lmz-client/%2e%2e%2fclient.js', '/.git/config']) {
      const text = await rawExchange(`GET ${p} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      assert.equal(statusOf(text), 400, p);
    }
    assert.equal((await fetch(`${HTTP}/no-such-file.js`)).status, 404);
    await goodClientWorks();
  });

  test('a text frame that is not UTF-8 -> close 1007', async () => {
    const id = identity('utf');
    const r = await rawWs(id.instance, id.token, [wsFrame(1, Buffer.from([0x7b, 0xc3, 0x28, 0xff, 0x7d]))],
      { until: (fr) => fr.some((f) => f.opcode === 8) });
    assert.equal(closeCode(r.frames.find((f) => f.opcode === 8)), 1007);
    await goodClientWorks();
  });

  test('an unmasked client frame -> close 1002; reserved bits -> 1002', async () => {
    for (const f of [wsFrame(1, 'lmz:ping', { mask: false }), wsFrame(1, 'lmz:ping', { rsv: 2 })]) {
      const id = identity('pro');
      const r = await rawWs(id.instance, id.token, [f], { until: (fr) => fr.some((x) => x.opcode === 8) });
      assert.equal(closeCode(r.frames.find((x) => x.opcode === 8)), 1002);
    }
    await goodClientWorks();
  });

  test('frames sent together with the upgrade request are processed after the accept', async () => {
    const id = identity('early');
    const r = await rawWs(id.instance, id.token, [wsFrame(1, 'lmz:ping')], {
      together: true, until: (fr) => fr.some((f) => f.payload.toString() === 'lmz:pong'),
    });
    assert.equal(r.status, 101);
    const texts = r.frames.filter((f) => f.opcode === 1).map((f) => f.payload.toString());
    assert.deepEqual(texts, ['{"type":"connection_status","subscriptionRequired":true}', 'lmz:pong']);
    await goodClientWorks();
  });

  test('a refused upgrade with frames after it: the frames are not processed', async () => {
    const text = await rawExchange([
      Buffer.concat([Buffer.from(`GET ${gwPath('alice.tab1')} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n` +
        `Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\n` +
        'Sec-WebSocket-Protocol: lmz\r\n\r\n'), wsFrame(1, 'lmz:ping')]),
    ]);
    assert.equal(statusOf(text), 401);
    assert.ok(!text.includes('lmz:pong'));
    await goodClientWorks();
  });

  test('a malformed call frame fails that call only', async () => {
    const id = identity('mal');
    const s = await connect(id.instance, id.token);
    for (const bad of [
      { type: 'call', callId: 'm1', chain: { json: chainOf('echo', 1), meta: {} } }, // no binding
      { type: 'call', callId: 'm2', binding: 'ECHO_WORKER', chain: 'not sc' },
      { type: 'call', callId: 'm3', binding: 'ECHO_WORKER', chain: { json: chainOf('echo', 1), meta: {} },
        callContext: { callChain: [], state: { json: [1], meta: {} } } }, // state not an object
      { type: 'call', callId: 'm4', binding: 'COUNTER_DO', instance: '', chain: { json: chainOf('get'), meta: {} } },
    ]) {
      s.send(bad);
      const r = await s.frame('call_response');
      assert.equal(r.callId, bad.callId);
      assert.equal(r.success, false, JSON.stringify(bad));
      assert.equal(r.error.json.$type, 'error');
    }
    const ok = await s.call('ECHO_WORKER', undefined, chainOf('echo', 'fine'));
    assert.equal(ok.success, true);
    await s.close();
  });

  test('a frame nested deeper than the parser allows, and an over-long callId, are ignored; the socket stays usable', async () => {
    const id = identity('deep');
    const s = await connect(id.instance, id.token);
    s.send('['.repeat(100000));
    s.send(`{"type":"call","callId":"${'x'.repeat(200)}","binding":"ECHO_WORKER","chain":{"json":[],"meta":{}}}`);
    // 400 levels are within the limits: echoed back intact.
    s.send('{"type":"call","callId":"deep-ok","binding":"ECHO_WORKER","chain":{"json":[{"type":"get","key":"echo"},' +
      `{"type":"apply","args":[${'['.repeat(400)}${']'.repeat(400)}]}],"meta":{}}}`);
    const r = await s.frame('call_response');
    assert.equal(r.callId, 'deep-ok');
    assert.equal(r.success, true);
    assert.equal(JSON.stringify(r.result.json), `${'['.repeat(400)}${']'.repeat(400)}`);
    const ok = await s.call('ECHO_WORKER', undefined, chainOf('echo', 'fine'));
    assert.equal(ok.success, true);
    assert.equal(s.inbox.length, 0);
    await s.close();
  });

  test('a client answering with a malformed result fails that mesh call with an Error, nothing else', async () => {
    const id = identity('badres');
    const s = await connect(id.instance, id.token);
    for (const [result, why] of [['not sc', /SC-JSON must be an object/], [{ json: { $ref: 9 }, meta: { aliases: [] } }, /aliases/]]) {
      const call = lmzCall([GW, id.instance, 'x']);
      const inc = await s.frame('incoming_call');
      s.send({ type: 'incoming_call_response', callId: inc.callId, success: true, result });
      const out = await call;
      assert.equal(out.code, 3, out.stderr);
      const e = JSON.parse(out.stdout).json;
      assert.equal(e.name, 'Error');
      assert.match(e.message, why);
    }
    const ok = await s.call('ECHO_WORKER', undefined, chainOf('echo', 'fine'));
    assert.equal(ok.success, true);
    await s.close();
  });

  test('the node still reports healthy status after all of the above', async () => {
    const st = await status();
    assert.equal(st.node, 'node-1');
    assert.ok(st.gateway.rejected > 0);
    await goodClientWorks();
  });
});

// ---------------------------------------------------------------------------

describe('what --dev serves', () => {
  test('the editor page, its assets and the client module at /lmz-client/', async () => {
    const page = await fetch(`${HTTP}/`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type'), /^text\/html/);
    const html = await page.text();
    assert.match(html, /dev mode: login links only go to lmzd's log and outbox, and dev tokens are handed out; never enable --dev in production/);
    for (const [p, type] of [['/app.js', /^text\/javascript/], ['/style.css', /^text\/css/],
      ['/lmz-client/index.js', /^text\/javascript/], ['/lmz-client/client.js', /^text\/javascript/],
      ['/lmz-client/structured-clone.js', /^text\/javascript/]]) {
      const r = await fetch(`${HTTP}${p}`);
      assert.equal(r.status, 200, p);
      assert.match(r.headers.get('content-type'), type, p);
    }
    assert.match(await (await fetch(`${HTTP}/app.js`)).text(), /from '\/lmz-client\/index\.js'/);
    // The mount is the prefix followed by '/': anything else is the page's folder.
    for (const p of ['/lmz-client', '/lmz-clientx/index.js', '/index.js']) {
      assert.equal((await fetch(`${HTTP}${p}`)).status, 404, p);
    }
    const head = await fetch(`${HTTP}/lmz-client/index.js`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(await head.text(), '');
  });
});

// ---------------------------------------------------------------------------

describe('large messages (issue 13 item 4): the cap is 32 MiB, as the original\'s', () => {
  const tooLarge = (fr) => fr.find((f) => f.opcode === 8);
  const closeReason = (f) => f.payload.subarray(2).toString('utf8');

  test('2 MiB and 31 MiB calls go through and come back whole', async () => {
    const id = identity('big-ok');
    const c = track(await connectedClient(LmzClient, id.token, { instanceName: id.instance }));
    for (const n of [2 * MiB, 31 * MiB]) {
      const text = crypto.randomBytes(n / 2).toString('hex');
      const back = await c.callRaw('ECHO_WORKER', undefined, ctn().echo(text));
      assert.equal(back.length, n);
      assert.ok(back === text, `echo of ${n} bytes came back changed`);
    }
    c.disconnect();
  });

  test('a 33 MiB message -> close 1009 "Message is too large"', async () => {
    const id = identity('big');
    const r = await rawWs(id.instance, id.token, [wsFrame(1, Buffer.alloc(33 * MiB, 0x78))],
      { until: (fr) => fr.some((f) => f.opcode === 8), timeout: 60000 });
    assert.equal(r.status, 101);
    const f = tooLarge(r.frames);
    assert.ok(f, 'a Close frame came back');
    assert.equal(closeCode(f), 1009);
    assert.equal(closeReason(f), 'Message is too large');
    await goodClientWorks();
  });

  test('fragments adding up to over 32 MiB -> close 1009 "Message is too large"', async () => {
    const id = identity('frag');
    const part = Buffer.alloc(17 * MiB, 0x79);
    const r = await rawWs(id.instance, id.token, [wsFrame(1, part, { fin: false }), wsFrame(0, part, { fin: true })],
      { until: (fr) => fr.some((f) => f.opcode === 8), timeout: 60000 });
    const f = tooLarge(r.frames);
    assert.ok(f, 'a Close frame came back');
    assert.equal(closeCode(f), 1009);
    assert.equal(closeReason(f), 'Message is too large');
    await goodClientWorks();
  });

  test('clients/js: a 33 MiB call is refused before sending; past a larger client cap the gateway 1009 rejects it clearly', async () => {
    const big = 'z'.repeat(33 * MiB);
    const id = identity('jsbig');
    const c = track(await connectedClient(LmzClient, id.token, { instanceName: id.instance }));
    await assert.rejects(c.callRaw('ECHO_WORKER', undefined, ctn().echo(big)),
      (e) => e instanceof MessageTooLargeError && e.limit === 32 * MiB && /^Message is too large/.test(e.message));
    assert.equal(c.connectionState, 'connected', 'the socket stays');
    assert.equal(await c.callRaw('ECHO_WORKER', undefined, ctn().echo('after')), 'after');
    c.disconnect();
    // a client configured above the gateway's cap: the gateway closes with
    // 1009 and the call rejects at once instead of waiting forever
    const id2 = identity('jsbig2');
    const c2 = track(await connectedClient(LmzClient, id2.token, { instanceName: id2.instance,
      maxMessageBytes: 64 * MiB }));
    await withTimeout(assert.rejects(c2.callRaw('ECHO_WORKER', undefined, ctn().echo(big)),
      (e) => e instanceof MessageTooLargeError && e.code === 1009 && e.reason === 'Message is too large'),
    30000, 'the 1009 rejection');
    c2.disconnect();
    await goodClientWorks();
  });

  test('lmzd refuses gateway.max_message_bytes above 64 MiB with FILE:LINE:COL', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmz-maxmsg-'));
    try {
      const cfg = path.join(dir, 'lmzd.json');
      fs.writeFileSync(cfg, `{\n  "node": {"data": "${dir}/data", "listen": "127.0.0.1:0", "http": "127.0.0.1:0"},\n` +
        '  "gateway": {\n    "max_message_bytes": 67108865\n  }\n}\n');
      const r = await new Promise((resolve) => {
        execFile(path.join(BIN, 'lmzd'), ['--config', cfg], { timeout: 20000, encoding: 'utf8' },
          (err, stdout, stderr) => resolve({ code: err ? err.code : 0, stderr }));
      });
      assert.notEqual(r.code, 0, 'lmzd must not start');
      assert.match(r.stderr, new RegExp(`${cfg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:4:26: ` +
        'gateway\\.max_message_bytes must be an integer 1024\\.\\.67108864'));
      assert.equal(fs.existsSync(path.join(dir, 'data')), false, 'refused before touching its data folder');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

// Keep the references used only in some runs from being flagged as unused.
void spawn; void BIN; void NODE_ADDR;
