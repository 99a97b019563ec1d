// A small in-process gateway on a real `ws` WebSocketServer (ephemeral port)
// that speaks the client side of the original gateway protocol (behaviour doc
// 1.10, 2.2-2.7): token in the 'lmz.access-token.<jwt>' subprotocol, instance
// "{sub}.{tab}", connection_status, call -> call_response (served by plain JS
// handlers per binding), incoming_call <- incoming_call_response, 'lmz:ping'
// -> 'lmz:pong', 4409 supersession, 4401 for an expired token on a frame, and
// a POST /auth/refresh-token endpoint. It checks no signatures: it is a test
// double for the client, not a gateway.
import http from 'node:http';
import { WebSocketServer } from 'ws';
import { preprocess, postprocess } from '../../src/structured-clone.js';
import { parseJwtClaims } from '../../src/client.js';

const TOKEN_PREFIX = 'lmz.access-token.';

export async function startFakeGateway(opts = {}) {
  const gw = {
    handlers: opts.handlers ?? {},          // binding -> { method(...args, {callContext}) }
    refreshToken: opts.refreshToken ?? null, // () => token, for POST /auth/refresh-token
    rejectUpgrades: 0,                       // answer the next N upgrades with 401
    sockets: new Map(),                      // instance -> current ws
    connects: [],                            // {instance, protocols, subscriptionRequired}
    frames: [],                              // every JSON frame received: {instance, frame}
    pings: 0,
    refreshCalls: 0,
    expired: new Set(),                      // instances whose token counts as expired
    pending: new Map(),                      // incoming callId -> resolve
    everConnected: new Set(),
  };

  const server = http.createServer((req, res) => {
    if (req.method === 'POST' && req.url === '/auth/refresh-token' && gw.refreshToken) {
      gw.refreshCalls++;
      const token = gw.refreshToken();
      res.writeHead(token ? 200 : 401, { 'content-type': 'application/json' });
      res.end(JSON.stringify(token ? { access_token: token } : { error: 'invalid_token' }));
      return;
    }
    res.writeHead(404).end();
  });
  const wss = new WebSocketServer({ noServer: true, handleProtocols: (p) => (p.has('lmz') ? 'lmz' : false) });

  server.on('upgrade', (req, socket, head) => {
    const deny = (status, text) => {
      socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    };
    const m = /^\/gateway\/([^/]+)\/([^/?]+)$/.exec(req.url);
    if (!m) return deny(404, 'Not Found');
    const protocols = String(req.headers['sec-websocket-protocol'] ?? '').split(',').map((s) => s.trim());
    const token = protocols.find((p) => p.startsWith(TOKEN_PREFIX))?.slice(TOKEN_PREFIX.length);
    if (gw.rejectUpgrades > 0) {
      gw.rejectUpgrades--;
      return deny(401, 'Unauthorized');
    }
    const claims = token ? parseJwtClaims(token) : null;
    if (!claims?.sub) return deny(401, 'Unauthorized');
    const [, binding, instance] = m;
    if (instance.split('.')[0] !== claims.sub) return deny(403, 'Forbidden');
    wss.handleUpgrade(req, socket, head, (ws) => accept(ws, { binding, instance, claims, protocols }));
  });

  function accept(ws, info) {
    const old = gw.sockets.get(info.instance);
    const subscriptionRequired = !old && !gw.everConnected.has(info.instance);
    if (old) old.close(4409, 'Superseded by new connection');
    gw.sockets.set(info.instance, ws);
    gw.everConnected.add(info.instance);
    gw.connects.push({ instance: info.instance, protocols: info.protocols, subscriptionRequired });
    ws.on('close', () => {
      if (gw.sockets.get(info.instance) === ws) gw.sockets.delete(info.instance);
    });
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      const text = data.toString();
      if (text === 'lmz:ping') {
        gw.pings++;
        ws.send('lmz:pong');
        return;
      }
      if (gw.expired.has(info.instance)) {
        ws.close(4401, 'Token expired');
        return;
      }
      let frame;
      try { frame = JSON.parse(text); } catch { return; }
      gw.frames.push({ instance: info.instance, frame });
      if (frame.type === 'call') handleCall(ws, info, frame);
      else if (frame.type === 'incoming_call_response') gw.pending.get(frame.callId)?.(frame);
    });
    ws.send(JSON.stringify({ type: 'connection_status', subscriptionRequired }));
  }

  async function handleCall(ws, info, frame) {
    let response;
    try {
      const chain = postprocess(frame.chain);
      const [get, apply] = chain;
      const fn = gw.handlers[frame.binding]?.[get?.key];
      if (typeof fn !== 'function' || apply?.type !== 'apply') throw new Error(`no handler ${frame.binding}.${get?.key}`);
      const callContext = {
        callChain: [{ type: 'LumenizeClient', bindingName: info.binding, instanceName: info.instance },
          ...(frame.callContext?.callChain ?? []).slice(1)],
        originAuth: { sub: info.claims.sub, claims: info.claims },
        state: frame.callContext?.state ? postprocess(frame.callContext.state) : {},
      };
      const result = await fn(...apply.args, { callContext, instance: frame.instance });
      response = { type: 'call_response', callId: frame.callId, success: true, result: preprocess(result) };
    } catch (err) {
      response = { type: 'call_response', callId: frame.callId, success: false, error: preprocess(err) };
    }
    if (ws.readyState === 1) ws.send(JSON.stringify(response));
  }

  /** Sends an incoming_call to the client `instance`; resolves with its response frame. */
  gw.callClient = (instance, chain, callContext = {}) => {
    const ws = gw.sockets.get(instance);
    if (!ws) return Promise.reject(new Error(`client ${instance} is not connected`));
    const callId = `in-${Math.random().toString(16).slice(2)}`;
    return new Promise((resolve) => {
      gw.pending.set(callId, (frame) => {
        gw.pending.delete(callId);
        resolve(frame);
      });
      ws.send(JSON.stringify({
        type: 'incoming_call', callId, chain: preprocess(chain),
        callContext: {
          callChain: callContext.callChain ?? [{ type: 'LumenizeDO', bindingName: 'DOCUMENT_DO', instanceName: 'doc-1' }],
          originAuth: callContext.originAuth,
          state: preprocess(callContext.state ?? {}),
        },
      }));
    });
  };

  gw.closeClient = (instance, code, reason) => gw.sockets.get(instance)?.close(code, reason);

  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  gw.port = server.address().port;
  gw.baseUrl = `http://127.0.0.1:${gw.port}`;
  gw.close = async () => {
    for (const ws of wss.clients) ws.terminate();
    await new Promise((resolve) => wss.close(resolve));
    server.closeAllConnections?.();
    await new Promise((resolve) => server.close(resolve));
  };
  return gw;
}

/** Polls `cond` until it is truthy or `ms` pass (then throws with `what`). */
export async function waitFor(cond, what, ms = 3000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
