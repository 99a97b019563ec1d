// LmzClient over real sockets: the `ws` package as the client's WebSocket (the
// Node default, loaded by the client itself) against a fake gateway on an
// ephemeral port (test/helpers/fake-gateway.js). Short injected delays, every
// wait bounded by waitFor's deadline.
import { test, describe, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { LmzClient, ConnectionLostError, mesh, ctn } from '../src/index.js';
import { startFakeGateway, waitFor } from './helpers/fake-gateway.js';
import { makeJwt, silentLogger } from './helpers/mock-socket.js';

let gw;
const clients = [];

before(async () => {
  gw = await startFakeGateway({
    handlers: {
      ECHO_DO: {
        echo: (value) => value,
        whoami: (ctx) => ctx.callContext,
        boom: () => { throw new TypeError('remote failure'); },
        slow: () => new Promise((resolve) => setTimeout(() => resolve('late'), 200)),
      },
      SPELLCHECK_WORKER: { check: (text, { instance }) => ({ text, instance: instance ?? null }) },
    },
  });
});

after(async () => {
  await gw.close();
});

afterEach(() => {
  while (clients.length) clients.pop().disconnect();
  gw.expired.clear();
  gw.rejectUpgrades = 0;
  gw.refreshToken = null;
});

function connect(opts = {}, Cls = LmzClient) {
  const events = { states: [], subs: 0, errors: [], login: [] };
  const client = new Cls({
    baseUrl: gw.baseUrl,
    accessToken: makeJwt({ sub: 'alice' }),
    logger: silentLogger,
    reconnectDelayMs: 10,
    onConnectionStateChange: (s) => events.states.push(s),
    onSubscriptionRequired: () => events.subs++,
    onConnectionError: (e) => events.errors.push(e),
    onLoginRequired: (e) => events.login.push(e),
    ...opts,
  });
  clients.push(client);
  return { client, events };
}

const connected = (client) => waitFor(() => client.connectionState === 'connected', 'connected');

describe('real WebSocket (ws) against a fake gateway', () => {
  test('connects with the subprotocol token; connection_status; structured values round trip', async () => {
    const { client, events } = connect({ instanceName: 'alice.t1' });
    await connected(client);
    assert.equal(events.subs, 1);
    const c = gw.connects.at(-1);
    assert.equal(c.instance, 'alice.t1');
    assert.deepEqual(c.protocols, ['lmz', `lmz.access-token.${makeJwt({ sub: 'alice' })}`]);
    const value = { m: new Map([[{ k: 1 }, new Date(5)]]), big: 2n ** 80n, n: -0, hole: [1, , 3] }; // eslint-disable-line no-sparse-arrays
    value.self = value;
    const back = await client.callRaw('ECHO_DO', 'echo-1', ctn().echo(value));
    assert.equal(back.self, back);
    assert.equal(back.big, 2n ** 80n);
    assert.ok(Object.is(back.n, -0));
    assert.ok(!(1 in back.hole));
    assert.equal([...back.m.values()][0].getTime(), 5);
  });

  test('the gateway stamps the origin; state travels; a Worker call has no instance', async () => {
    const { client } = connect({ instanceName: 'alice.t2' });
    await connected(client);
    const ctx = await client.callRaw('ECHO_DO', 'e', ctn().whoami(), { state: { trace: 'x' } });
    assert.deepEqual(ctx.callChain, [{ type: 'LumenizeClient', bindingName: 'LUMENIZE_CLIENT_GATEWAY', instanceName: 'alice.t2' }]);
    assert.equal(ctx.originAuth.sub, 'alice');
    assert.deepEqual(ctx.state, { trace: 'x' });
    assert.deepEqual(await client.callRaw('SPELLCHECK_WORKER', undefined, ctn().check('teh')), { text: 'teh', instance: null });
  });

  test('remote errors reject with their class; handlers get results and errors', async () => {
    const got = [];
    class C extends LmzClient {
      onResult(tag, r) { got.push([tag, r]); }
    }
    const { client } = connect({ instanceName: 'alice.t3' }, C);
    await connected(client);
    await assert.rejects(client.callRaw('ECHO_DO', 'e', ctn().boom()), (e) => e instanceof TypeError && e.message === 'remote failure');
    client.call('ECHO_DO', 'e', ctn().echo('ok'), client.ctn().onResult('a', client.ctn().$result));
    client.call('ECHO_DO', 'e', ctn().boom(), client.ctn().onResult('b', client.ctn().$result));
    await waitFor(() => got.length === 2, 'two handler runs');
    got.sort();
    assert.deepEqual(got[0], ['a', 'ok']);
    assert.ok(got[1][1] instanceof TypeError);
  });

  test('incoming_call runs a mesh method and answers; errors and refusals answer success:false', async () => {
    class C extends LmzClient {
      static meshMethods = ['handleContentUpdate'];
      handleContentUpdate(doc, content) { return `${doc}:${content}:${this.lmz.callContext.state.n}`; }
      notExposed() { return 'secret'; }
    }
    mesh(C.prototype.fail = function fail() { throw new Error('client handler failed'); });
    const { client } = connect({ instanceName: 'alice.t4' }, C);
    await connected(client);
    const ok = await gw.callClient('alice.t4', [{ type: 'get', key: 'handleContentUpdate' }, { type: 'apply', args: ['doc-1', 'hi'] }], { state: { n: 7 } });
    assert.equal(ok.success, true);
    assert.equal(postprocessResult(ok), 'doc-1:hi:7');
    const bad = await gw.callClient('alice.t4', [{ type: 'get', key: 'fail' }, { type: 'apply', args: [] }]);
    assert.equal(bad.success, false);
    assert.equal(bad.error.json.message, 'client handler failed');
    const refused = await gw.callClient('alice.t4', [{ type: 'get', key: 'notExposed' }, { type: 'apply', args: [] }]);
    assert.match(refused.error.json.message, /not mesh-callable/);
  });

  test('supersession: the old connection gets 4409 and stays down; the new one is not asked to resubscribe', async () => {
    const a = connect({ instanceName: 'alice.same' });
    await connected(a.client);
    const b = connect({ instanceName: 'alice.same' });
    await connected(b.client);
    await waitFor(() => a.client.connectionState === 'disconnected', 'old client disconnected');
    assert.match(a.events.errors.at(-1).message, /Superseded/);
    assert.equal(b.events.subs, 0, 'subscriptionRequired:false for the superseding socket');
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(a.client.connectionState, 'disconnected', 'no reconnect fight');
    assert.equal(await b.client.callRaw('ECHO_DO', 'e', ctn().echo(1)), 1);
  });

  test('4401 on a frame: refresh, reconnect, the lost call rejects, later calls work', async () => {
    let n = 0;
    const { client, events } = connect({
      instanceName: 'alice.t5',
      refresh: async () => ({ access_token: makeJwt({ sub: 'alice', n: ++n }) }),
    });
    await connected(client);
    gw.expired.add('alice.t5');
    const lost = client.callRaw('ECHO_DO', 'e', ctn().echo('dropped'));
    await assert.rejects(lost, ConnectionLostError);
    gw.expired.delete('alice.t5');
    await connected(client);
    assert.equal(n, 1);
    assert.deepEqual(gw.connects.at(-1).protocols, ['lmz', `lmz.access-token.${makeJwt({ sub: 'alice', n: 1 })}`]);
    assert.equal(await client.callRaw('ECHO_DO', 'e', ctn().echo('after')), 'after');
    assert.ok(events.states.includes('reconnecting'));
  });

  test('first connect with a refresh URL (POST /auth/refresh-token) and an auto instance name', async () => {
    gw.refreshToken = () => makeJwt({ sub: 'dora' });
    const before = gw.refreshCalls;
    const { client } = connect({ accessToken: undefined, refresh: '/auth/refresh-token' });
    await connected(client);
    assert.equal(gw.refreshCalls, before + 1);
    assert.match(client.lmz.instanceName, /^dora\.[0-9a-f]{8}$/);
    assert.equal(gw.connects.at(-1).instance, client.lmz.instanceName);
  });

  test('refresh endpoint answering 401: login required, no socket', async () => {
    gw.refreshToken = () => null;
    const { client, events } = connect({ accessToken: undefined, refresh: '/auth/refresh-token' });
    await waitFor(() => events.login.length === 1, 'login required');
    assert.equal(client.connectionState, 'disconnected');
    assert.equal(events.login[0].code, 401);
  });

  test('server-side drop: in-flight call rejected, queued call flushed after the reconnect', async () => {
    const { client } = connect({ instanceName: 'alice.t6' });
    await connected(client);
    const inflight = client.callRaw('ECHO_DO', 'e', ctn().slow());
    await waitFor(() => gw.frames.some((f) => f.instance === 'alice.t6' && f.frame.chain?.json?.[0]?.key === 'slow'), 'slow call at the gateway');
    gw.closeClient('alice.t6', 1011, 'going away');
    await assert.rejects(inflight, ConnectionLostError);
    const queued = client.callRaw('ECHO_DO', 'e', ctn().echo('queued'));
    assert.equal(await queued, 'queued');
    assert.equal(client.connectionState, 'connected');
  });

  test('rejected upgrades are retried with backoff; the forced refresh happens once', async () => {
    let n = 0;
    gw.rejectUpgrades = 3;
    const { client } = connect({
      instanceName: 'alice.t7',
      refresh: () => ({ access_token: makeJwt({ sub: 'alice', r: ++n }) }),
    });
    await connected(client);
    assert.equal(n, 1, 'one forced refresh per failing cycle');
    assert.equal(gw.rejectUpgrades, 0);
  });

  test('heartbeat pings reach the gateway and pongs come back harmlessly', async () => {
    const before = gw.pings;
    const { client } = connect({ instanceName: 'alice.t8', heartbeatIntervalMs: 20 });
    await connected(client);
    await waitFor(() => gw.pings >= before + 2, 'two pings');
    assert.equal(client.connectionState, 'connected');
    assert.equal(await client.callRaw('ECHO_DO', 'e', ctn().echo('still fine')), 'still fine');
  });

  test('disconnect: the gateway sees 1000; pending calls reject', async () => {
    const { client } = connect({ instanceName: 'alice.t9' });
    await connected(client);
    const p = client.callRaw('ECHO_DO', 'e', ctn().slow());
    client.disconnect();
    await assert.rejects(p, { message: 'Client disconnected' });
    await waitFor(() => !gw.sockets.has('alice.t9'), 'socket closed at the gateway');
  });
});

function postprocessResult(frame) {
  return frame.result.json; // plain JSON results only in these tests
}
