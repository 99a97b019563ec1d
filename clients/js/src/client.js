// LmzClient (alias LumenizeClient): a mesh node in a browser or Node.js that
// talks to its own gateway actor over one WebSocket, speaking the original
// Lumenize Mesh client protocol (lumenize-behaviour.md 1.9, 1.10, 2.3).
//
// Happy path: the constructor connects at once. When no instanceName is given,
// it is "{sub}.{tabId}" (sub from the token's claims; the token is fetched via
// `refresh` when missing or within 30 s of exp). The socket opens at
// {baseUrl}/gateway/{binding}/{instance} with subprotocols
// ['lmz', 'lmz.access-token.<jwt>']; the state becomes 'connected' only on the
// gateway's connection_status frame, which also flushes the outgoing queue and
// fires onSubscriptionRequired when asked. Outgoing calls are `call` frames
// answered by `call_response`; incoming `incoming_call` frames run their chain
// on this object (entry methods must be marked mesh-callable) and are answered
// with `incoming_call_response`. A 'lmz:ping' heartbeat keeps idle sockets up.
//
// Failure modes:
//   close 4400/4403      -> LoginRequiredError, state 'disconnected', onLoginRequired
//   close 4401           -> drop the token, refresh, reconnect (refresh failure -> login required)
//   close 4409           -> of a superseded (old) socket: ignored; of the current socket:
//                           another connection took this instance name, so 'disconnected'
//                           and onConnectionError, no reconnect (the original reconnected,
//                           and two clients with one name then superseded each other forever)
//   other closes         -> reconnect after min(1 s x 2^n, 30 s)
//   socket drop          -> calls already sent on that socket reject with ConnectionLostError
//                           (deliberate fix: the original left them pending forever)
//   close 1009           -> a message was over the gateway's cap ("Message is too large"):
//                           calls sent on that socket reject with MessageTooLargeError (a
//                           ConnectionLostError: which one was too big is unknown), reconnect
//   call over maxMessageBytes -> that call rejects with MessageTooLargeError without being
//                           sent (default 32 MiB, the gateway's default), the socket stays
//   socket not open      -> calls queue (100 max: 'Message queue full'; 30 s each:
//                           'Call timed out while waiting for connection')
//   refresh 401/403      -> login required; other refresh failures are transient (reconnect)
//   disconnect()         -> every pending and queued call rejects with 'Client disconnected'

import { preprocess, postprocess } from './structured-clone.js';
import {
  newContinuation, getOperationChain, executeOperationChain, replaceNestedOperationMarkers,
  staticMeshMethods, addMeshList,
} from './ocan.js';
import { getOrCreateTabId, randomTabId } from './tab-id.js';

// trace and call ids as lmz nodes send them (W3C trace-id / parent-id form)
const TRACE_ID = /^(?!0{32})[0-9a-f]{32}$/;
const CALL_ID = /^(?!0{16})[0-9a-f]{16}$/;

const DEFAULT_GATEWAY_BINDING = 'LUMENIZE_CLIENT_GATEWAY';
const DEFAULT_REFRESH = '/auth/refresh-token';
const TOKEN_PREFIX = 'lmz.access-token.';
const PING = 'lmz:ping';
const PONG = 'lmz:pong';
const REFRESH_AHEAD_S = 30;
const WS_OPEN = 1;
const WS_CONNECTING = 0;
const DISPOSE = Symbol.dispose ?? Symbol.for('Symbol.dispose');

export const DEFAULTS = Object.freeze({
  maxQueue: 100,
  queueTimeoutMs: 30_000,
  reconnectDelayMs: 1_000,
  maxReconnectDelayMs: 30_000,
  heartbeatIntervalMs: 30_000,
  maxMessageBytes: 32 * 1024 * 1024, // the gateway's default cap (and the original's)
});

const TOO_LARGE = 'Message is too large'; // the gateway's 1009 reason

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/** The user must log in again (passed to onLoginRequired). */
export class LoginRequiredError extends Error {
  constructor(message, code, reason) {
    super(message);
    this.name = 'LoginRequiredError';
    this.code = code;
    this.reason = reason;
  }
}

/** The mesh could not reach a client (decoded from the gateway's errors). */
export class ClientDisconnectedError extends Error {
  constructor(message, clientInstanceName) {
    super(message);
    this.name = 'ClientDisconnectedError';
    if (clientInstanceName !== undefined) this.clientInstanceName = clientInstanceName;
  }
}

/** A call was sent but its socket closed before the response arrived: it may or may not have run. */
export class ConnectionLostError extends Error {
  constructor(callId) {
    super('Connection lost before the call response arrived; the call may or may not have run');
    this.name = 'ConnectionLostError';
    this.callId = callId;
  }
}

/**
 * A message over a cap: a call frame over maxMessageBytes (not sent; `size` and
 * `limit` say by how much), or the gateway closed the socket with 1009 (`code`
 * 1009, `reason`): then every call sent on that socket rejects with it, since
 * which of them was too large is unknown, and each may or may not have run.
 */
export class MessageTooLargeError extends ConnectionLostError {
  constructor(callId, { size, limit, code, reason } = {}) {
    super(callId);
    this.name = 'MessageTooLargeError';
    this.message = code === undefined
      ? `${TOO_LARGE}: the call is ${size} bytes, over maxMessageBytes (${limit}); it was not sent`
      : `${TOO_LARGE}: the gateway closed the connection (${code}${reason ? ` ${reason}` : ''}) ` +
        'before the call response arrived; a message sent on it was over its cap; the call may or may not have run';
    if (size !== undefined) this.size = size;
    if (limit !== undefined) this.limit = limit;
    if (code !== undefined) this.code = code;
    if (reason !== undefined) this.reason = reason;
  }
}

/**
 * True for an error worth retrying later: the mesh sets `retryable: true` on
 * MeshOverloadedError (the callee's mailbox or its node's pending calls are at
 * their bound) and ActorUnavailableError, as Cloudflare flags its errors.
 */
export function isRetryable(err) {
  return err instanceof Error && err.retryable === true;
}

/** True for MeshOverloadedError (`overloaded: true`): back off, then retry. */
export function isOverloaded(err) {
  return err instanceof Error && err.overloaded === true;
}

// Registered on globalThis (if free) so these decode with their class (structured-clone).
for (const C of [LoginRequiredError, ClientDisconnectedError, ConnectionLostError, MessageTooLargeError]) {
  if (!(C.name in globalThis)) Object.defineProperty(globalThis, C.name, { value: C, configurable: true, writable: true });
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

const isNode = () => typeof globalThis.process?.versions?.node === 'string' && typeof globalThis.window === 'undefined';

/** The decoded (unverified) payload of a JWT, or null. */
export function parseJwtClaims(token) {
  if (typeof token !== 'string') return null;
  const part = token.split('.')[1];
  if (!part) return null;
  try {
    let b64 = part.replace(/-/g, '+').replace(/_/g, '/');
    b64 += '='.repeat((4 - (b64.length % 4)) % 4);
    const bin = atob(b64);
    const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
    const payload = JSON.parse(new TextDecoder().decode(bytes));
    return payload !== null && typeof payload === 'object' && !Array.isArray(payload) ? payload : null;
  } catch {
    return null;
  }
}

async function loadWebSocket() {
  if (isNode()) {
    try {
      const name = 'ws'; // computed: browser bundlers must not try to resolve it
      const m = await import(name);
      const C = m.WebSocket ?? m.default;
      if (typeof C === 'function') return C;
    } catch { /* fall through to a global WebSocket */ }
  }
  if (typeof globalThis.WebSocket === 'function') return globalThis.WebSocket;
  throw new Error('WebSocket is not available: install the "ws" package (Node.js) or pass options.WebSocket');
}

const uuid = () => globalThis.crypto.randomUUID();
const noop = () => {};

/** UTF-8 length of `text`, exact when it could exceed `limit` (encoding is skipped when it cannot). */
function utf8Length(text, limit) {
  if (text.length * 3 <= limit) return text.length; // a UTF-16 unit is at most 3 UTF-8 bytes
  return new TextEncoder().encode(text).length;
}

function toError(x) {
  return x instanceof Error ? x : new Error(String(x));
}

function safePreprocess(err) {
  try {
    return preprocess(err);
  } catch {
    return preprocess(new Error(String(err?.message ?? err)));
  }
}

// ---------------------------------------------------------------------------
// LmzClient
// ---------------------------------------------------------------------------

export class LmzClient {
  #config;
  #log;
  #timing;
  #WebSocketClass;
  #instanceName = null;
  #accessToken = null;
  #claims = null;
  #refreshInFlight = null;
  #refreshConfigured;
  #ws = null;
  #state = 'disconnected';
  #gen = 0; // bumped by every connect attempt and by disconnect(): stale async steps check it
  #pending = new Map(); // callId -> {resolve, reject, ws (null while queued), timer, frame, parentChain}
  #queue = [];
  #reconnectAttempts = 0;
  #reauthAttempted = false;
  #reconnectTimer;
  #heartbeatTimer;
  #currentCallContext = null;
  #meshMethods = null;
  #lmzApi = null;
  #deferred = null; // callbacks fired while the constructor runs, replayed on a microtask
  #wakeListeners = null;

  /**
   * @param {object} config see index.d.ts (LmzClientConfig)
   */
  constructor(config = {}) {
    this.#config = { ...config, gatewayBindingName: config.gatewayBindingName ?? DEFAULT_GATEWAY_BINDING };
    this.#log = config.logger ?? console;
    this.#timing = {
      maxQueue: config.maxQueue ?? DEFAULTS.maxQueue,
      queueTimeoutMs: config.queueTimeoutMs ?? DEFAULTS.queueTimeoutMs,
      reconnectDelayMs: config.reconnectDelayMs ?? DEFAULTS.reconnectDelayMs,
      maxReconnectDelayMs: config.maxReconnectDelayMs ?? DEFAULTS.maxReconnectDelayMs,
      heartbeatIntervalMs: config.heartbeatIntervalMs ?? DEFAULTS.heartbeatIntervalMs,
      maxMessageBytes: config.maxMessageBytes ?? DEFAULTS.maxMessageBytes,
    };
    // The forced re-auth after failed reconnects drops the token; only worth it
    // when something can mint a new one (a browser has the default endpoint).
    this.#refreshConfigured = config.refresh !== undefined || typeof globalThis.location !== 'undefined';
    if (config.instanceName) this.#instanceName = config.instanceName;
    this.#WebSocketClass = config.WebSocket ??
      (!isNode() && typeof globalThis.WebSocket === 'function' ? globalThis.WebSocket : null);
    if (config.accessToken) this.#setToken(config.accessToken);

    // Connect eagerly; callbacks fired meanwhile wait for a microtask so that a
    // subclass has finished constructing (its fields exist) when they run.
    const deferred = (this.#deferred = []);
    this.connect();
    this.#deferred = null;
    if (deferred.length > 0) {
      queueMicrotask(() => {
        for (const [name, args] of deferred) {
          // a state a later transition has already replaced is not announced
          if (name === 'onConnectionStateChange' && this.#state !== args[0]) continue;
          this.#fire(name, ...args);
        }
      });
    }
  }

  // -- public surface -------------------------------------------------------

  /** 'connecting' | 'connected' | 'reconnecting' | 'disconnected' */
  get connectionState() {
    return this.#state;
  }

  /** Frozen decoded (unverified) JWT payload, or null until a token is known. */
  get claims() {
    return this.#claims;
  }

  /** The mesh API: type, bindingName, instanceName, callContext, call, callRaw. */
  get lmz() {
    this.#lmzApi ??= this.#createLmzApi();
    return this.#lmzApi;
  }

  /** A fresh continuation (`ctn().method(args)`, `ctn().$result`). */
  ctn() {
    return newContinuation();
  }

  /** Same as `lmz.call`. */
  call(binding, instance, remoteContinuation, handlerContinuation, options) {
    return this.lmz.call(binding, instance, remoteContinuation, handlerContinuation, options);
  }

  /** Same as `lmz.callRaw`. */
  callRaw(binding, instance, chainOrContinuation, options) {
    return this.lmz.callRaw(binding, instance, chainOrContinuation, options);
  }

  /** (Re)connects; a no-op while connecting or connected. */
  connect() {
    if (this.#state === 'connected' || this.#state === 'connecting') return;
    this.#clearReconnectTimer();
    this.#setupWakeUpSensing();
    this.#connectInternal();
  }

  /** Closes with 1000 'Client disconnect'; rejects every pending and queued call. */
  disconnect() {
    this.#gen++;
    this.#clearReconnectTimer();
    this.#stopHeartbeat();
    this.#removeWakeUpSensing();
    const ws = this.#ws;
    this.#ws = null;
    if (ws) {
      this.#detach(ws);
      if (ws.readyState === WS_OPEN || ws.readyState === WS_CONNECTING) {
        try { ws.close(1000, 'Client disconnect'); } catch { /* already closing */ }
      }
    }
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    this.#queue = [];
    for (const p of pending) {
      clearTimeout(p.timer);
      p.reject(new Error('Client disconnected'));
    }
    this.#setState('disconnected');
  }

  [DISPOSE]() {
    this.disconnect();
  }

  /** Forgets the access token and claims without disconnecting. */
  clearAccessToken() {
    this.#accessToken = null;
    this.#claims = null;
  }

  /**
   * Runs before every incoming call, with `this.lmz.callContext` set; throw to
   * reject the call. Default: reject calls whose origin is another client.
   */
  onBeforeCall() {
    const origin = this.#currentCallContext?.callChain?.[0];
    if (origin?.type === 'LumenizeClient' && origin.instanceName !== this.#instanceName) {
      throw new Error('Peer-to-peer client calls are disabled by default. Override onBeforeCall() to allow them.');
    }
  }

  /** Frames with an unknown type land here. Default: a warning. */
  onUnknownMessage(message) {
    this.#log.warn?.('lmz client: unknown gateway message type', message?.type);
  }

  /** fetch with `Authorization: Bearer <token>`, refreshing when due and retrying once on 401. */
  async authedFetch(url, init = {}) {
    const fetchFn = this.#config.fetch ?? globalThis.fetch;
    const withAuth = () => ({ ...init, headers: { ...(init.headers ?? {}), Authorization: `Bearer ${this.#accessToken}` } });
    await this.#ensureFreshToken();
    let res = await fetchFn(url, withAuth());
    if (res.status === 401) {
      this.#accessToken = null;
      await this.#ensureFreshToken();
      res = await fetchFn(url, withAuth());
    }
    return res;
  }

  // -- lmz API ---------------------------------------------------------------

  #createLmzApi() {
    const self = this;
    return Object.freeze({
      type: 'LumenizeClient',
      bindingName: self.#config.gatewayBindingName,
      get instanceName() {
        if (!self.#instanceName) {
          throw new Error('instanceName is only available after connected state. ' +
            'When instanceName is auto-generated, it is constructed during the first connection.');
        }
        return self.#instanceName;
      },
      get callContext() {
        if (!self.#currentCallContext) {
          throw new Error('Cannot access callContext outside of a mesh call. ' +
            'callContext is only available during @mesh handler execution.');
        }
        return self.#currentCallContext;
      },
      call: (binding, instance, remote, handler, options) => self.#call(binding, instance, remote, handler, options),
      callRaw: (binding, instance, chainOrContinuation, options) => {
        const chain = getOperationChain(chainOrContinuation) ??
          (Array.isArray(chainOrContinuation) ? chainOrContinuation : null);
        if (!chain) return Promise.reject(new Error('Invalid continuation: must be created with ctn() or be an operation chain'));
        return self.#send(binding, instance, chain, options, self.#snapshotContext());
      },
    });
  }

  #snapshotContext() {
    const c = this.#currentCallContext;
    return c ? { callChain: [...c.callChain], originAuth: c.originAuth, state: { ...c.state }, traceId: c.traceId } : null;
  }

  #call(binding, instance, remote, handler, options) {
    const remoteChain = getOperationChain(remote);
    if (!remoteChain) throw new Error('Invalid remoteContinuation: must be created with this.ctn()');
    let handlerChain;
    if (handler !== undefined && handler !== null) {
      handlerChain = getOperationChain(handler);
      if (!handlerChain) throw new Error('Invalid handlerContinuation: must be created with this.ctn()');
    }
    const captured = this.#snapshotContext();
    this.#send(binding, instance, remoteChain, options, captured).then(
      (result) => {
        if (handlerChain && !options?.onErrorOnly) this.#runHandler(handlerChain, result, captured);
      },
      (err) => {
        if (handlerChain) this.#runHandler(handlerChain, toError(err), captured);
        else this.#log.warn?.('lmz client: fire-and-forget call failed with no handler:', toError(err).message);
      },
    );
  }

  #runHandler(chain, value, context) {
    const filled = replaceNestedOperationMarkers(chain, value);
    this.#execute(filled, context, false).catch((err) => {
      this.#log.error?.('lmz client: call handler threw:', toError(err).message);
    });
  }

  /** Runs a chain on this object with `context` as lmz.callContext while its methods run. */
  async #execute(chain, context, requireMesh) {
    const enter = () => { this.#currentCallContext = context; };
    enter();
    try {
      return await executeOperationChain(chain, this, {
        requireMeshDecorator: requireMesh,
        meshMethods: this.#meshMethodMap(),
        beforeCall: enter,
      });
    } finally {
      if (this.#currentCallContext === context) this.#currentCallContext = null;
    }
  }

  #meshMethodMap() {
    if (!this.#meshMethods) {
      this.#meshMethods = staticMeshMethods(this);
      addMeshList(this.#meshMethods, this.#config.meshMethods);
    }
    return this.#meshMethods;
  }

  // -- outgoing calls ----------------------------------------------------------

  #send(binding, instance, chain, options, parent) {
    return new Promise((resolve, reject) => {
      const state = !parent || options?.newChain
        ? (options?.state ?? {})
        : (options?.state ? { ...parent.state, ...options.state } : parent.state);
      const callId = uuid();
      const entry = {
        callId, resolve, reject, ws: null, timer: undefined,
        parentChain: !parent || options?.newChain ? [] : parent.callChain,
        frame: {
          type: 'call', callId, binding, instance,
          chain: preprocess(chain), // snapshot now: later mutations of the args do not leak in
          callContext: { callChain: null, state: preprocess(state) },
        },
      };
      // a call made while handling an incoming one continues its trace (the
      // gateway validates it; lmz addition, README "Tracing a call")
      if (parent?.traceId) entry.frame.callContext.traceId = parent.traceId;
      options?.onSent?.(callId);
      const ws = this.#ws;
      if (ws && ws.readyState === WS_OPEN) {
        this.#pending.set(callId, entry);
        this.#transmit(entry, ws);
        return;
      }
      if (this.#queue.length >= this.#timing.maxQueue) {
        reject(new Error('Message queue full'));
        return;
      }
      this.#pending.set(callId, entry);
      this.#queue.push(entry);
      entry.timer = setTimeout(() => {
        const i = this.#queue.indexOf(entry);
        if (i < 0) return;
        this.#queue.splice(i, 1);
        this.#pending.delete(callId);
        reject(new Error('Call timed out while waiting for connection'));
      }, this.#timing.queueTimeoutMs);
    });
  }

  #selfIdentity() {
    const self = { type: 'LumenizeClient', bindingName: this.#config.gatewayBindingName };
    if (this.#instanceName) self.instanceName = this.#instanceName;
    return self;
  }

  #transmit(entry, ws) {
    entry.frame.callContext.callChain = [...entry.parentChain, this.#selfIdentity()];
    entry.ws = ws;
    try {
      const text = JSON.stringify(entry.frame);
      const size = utf8Length(text, this.#timing.maxMessageBytes);
      if (size > this.#timing.maxMessageBytes) {
        // the gateway would close the socket (1009) and fail every call on it
        this.#pending.delete(entry.callId);
        entry.reject(new MessageTooLargeError(entry.callId, { size, limit: this.#timing.maxMessageBytes }));
        return;
      }
      ws.send(text);
    } catch (err) {
      this.#pending.delete(entry.callId);
      entry.reject(toError(err));
    }
  }

  #flushQueue() {
    const ws = this.#ws;
    if (!ws || ws.readyState !== WS_OPEN) return;
    const queue = this.#queue;
    this.#queue = [];
    for (const entry of queue) {
      clearTimeout(entry.timer);
      this.#transmit(entry, ws);
    }
  }

  #rejectInFlight(ws, code, reason) {
    for (const [callId, entry] of this.#pending) {
      if (entry.ws !== ws) continue;
      this.#pending.delete(callId);
      entry.reject(code === 1009 ? new MessageTooLargeError(callId, { code, reason })
        : new ConnectionLostError(callId));
    }
  }

  #handleCallResponse(msg) {
    const entry = this.#pending.get(msg.callId);
    if (!entry || entry.ws === null) return; // unknown, settled, or still queued
    this.#pending.delete(msg.callId);
    try {
      if (msg.success) {
        entry.resolve(msg.result === undefined ? undefined : postprocess(msg.result));
      } else {
        entry.reject(toError(msg.error === undefined ? new Error('Call failed') : postprocess(msg.error)));
      }
    } catch (err) {
      entry.reject(toError(err)); // a malformed payload
    }
  }

  // -- incoming calls ----------------------------------------------------------

  async #handleIncomingCall(ws, msg) {
    const callId = msg.callId;
    let response;
    try {
      const chain = postprocess(msg.chain);
      const cc = msg.callContext ?? {};
      const context = {
        callChain: Array.isArray(cc.callChain) ? cc.callChain : [],
        originAuth: cc.originAuth,
        state: cc.state === undefined ? {} : postprocess(cc.state),
        // lmz additions (README "Tracing a call"): kept only when well-formed
        traceId: typeof cc.traceId === 'string' && TRACE_ID.test(cc.traceId) ? cc.traceId : undefined,
        callId: typeof cc.callId === 'string' && CALL_ID.test(cc.callId) ? cc.callId : undefined,
      };
      let result;
      this.#currentCallContext = context;
      try {
        this.onBeforeCall();
        result = await this.#execute(chain, context, true);
      } finally {
        if (this.#currentCallContext === context) this.#currentCallContext = null;
      }
      response = { type: 'incoming_call_response', callId, success: true, result: preprocess(result) };
    } catch (err) {
      response = { type: 'incoming_call_response', callId, success: false, error: safePreprocess(err) };
    }
    if (ws.readyState === WS_OPEN) ws.send(JSON.stringify(response)); // else dropped, as the original
  }

  // -- connection --------------------------------------------------------------

  #connectInternal() {
    const gen = ++this.#gen;
    this.#setState(this.#state === 'reconnecting' ? 'reconnecting' : 'connecting');
    let pending;
    try {
      pending = this.#prepare();
    } catch (err) {
      this.#connectFailed(err);
      return;
    }
    if (!pending) {
      this.#openSocket();
      return;
    }
    pending.then(
      () => { if (gen === this.#gen) this.#openSocket(); },
      (err) => { if (gen === this.#gen) this.#connectFailed(err); },
    );
  }

  /** What must happen before the socket opens; null when nothing needs awaiting. */
  #prepare() {
    const tasks = [];
    if (!this.#WebSocketClass) tasks.push(loadWebSocket().then((C) => { this.#WebSocketClass = C; }));
    const token = this.#needsTokenRefresh() ? this.#ensureFreshToken() : null;
    if (!this.#instanceName) {
      const deps = this.#tabIdDeps();
      const tab = deps ? getOrCreateTabId(deps) : randomTabId();
      if (token || deps) {
        tasks.push(Promise.all([tab, token]).then(([t]) => this.#setInstanceName(t)));
      } else {
        this.#setInstanceName(tab);
      }
    } else if (token) {
      tasks.push(token);
    }
    return tasks.length > 0 ? Promise.all(tasks) : null;
  }

  #setInstanceName(tabId) {
    const sub = this.#claims?.sub;
    if (typeof sub !== 'string' || sub === '') {
      throw new Error('Cannot derive instanceName: the access token has no sub claim');
    }
    this.#instanceName = `${sub}.${tabId}`;
  }

  #tabIdDeps() {
    const sessionStorage = this.#config.sessionStorage ?? globalThis.sessionStorage;
    const BroadcastChannelCtor = this.#config.BroadcastChannel ?? globalThis.BroadcastChannel;
    return sessionStorage && BroadcastChannelCtor ? { sessionStorage, BroadcastChannel: BroadcastChannelCtor } : null;
  }

  #connectFailed(err) {
    if (err instanceof LoginRequiredError) {
      this.#setState('disconnected');
      this.#fire('onLoginRequired', err);
      return;
    }
    this.#fire('onConnectionError', toError(err));
    this.#scheduleReconnect();
  }

  #buildUrl() {
    let base = this.#config.baseUrl;
    if (!base && typeof globalThis.location !== 'undefined' && globalThis.location.host) {
      base = `${globalThis.location.protocol === 'https:' ? 'wss:' : 'ws:'}//${globalThis.location.host}`;
    }
    if (!base) throw new Error('LmzClient requires baseUrl outside a browser page');
    base = base.replace(/^https:\/\//, 'wss://').replace(/^http:\/\//, 'ws://').replace(/\/+$/, '');
    return `${base}/gateway/${this.#config.gatewayBindingName}/${this.#instanceName}`;
  }

  #openSocket() {
    let ws;
    try {
      const url = this.#buildUrl();
      const protocols = ['lmz'];
      if (this.#accessToken) protocols.push(TOKEN_PREFIX + this.#accessToken);
      ws = new this.#WebSocketClass(url, protocols);
    } catch (err) {
      this.#connectFailed(err);
      return;
    }
    this.#ws = ws;
    ws.onopen = () => {
      if (this.#ws === ws) this.#handleOpen();
    };
    ws.onclose = (ev) => this.#handleClose(ws, ev?.code, ev?.reason ?? '');
    ws.onerror = () => {
      if (this.#ws === ws) this.#fire('onConnectionError', new Error('WebSocket error'));
    };
    ws.onmessage = (ev) => this.#handleMessage(ws, ev?.data);
  }

  #detach(ws) {
    ws.onopen = null;
    ws.onmessage = null;
    ws.onclose = null;
    ws.onerror = noop; // `ws` emits 'error' when a connecting socket is closed: keep a listener
  }

  #handleOpen() {
    this.#reconnectAttempts = 0;
    this.#reauthAttempted = false;
    this.#startHeartbeat();
  }

  #handleClose(ws, code, reason) {
    this.#detach(ws);
    this.#rejectInFlight(ws, code, reason); // deliberate fix: their responses can no longer arrive
    if (this.#ws !== ws) return; // a superseded socket (e.g. 4409): ignored
    this.#ws = null;
    this.#stopHeartbeat();
    if (code === 4400 || code === 4403) {
      this.#setState('disconnected');
      this.#fire('onLoginRequired', new LoginRequiredError(`Authentication failed: ${reason}`, code, reason));
      return;
    }
    if (code === 4401) {
      this.#accessToken = null;
      this.#handleTokenExpired();
      return;
    }
    if (code === 4409) {
      // Our current socket was superseded: another connection now holds this
      // instance name. Reconnecting would supersede it in turn, forever.
      this.#setState('disconnected');
      this.#fire('onConnectionError', new Error(`Superseded by another connection for ${this.#instanceName}: ${reason}`));
      return;
    }
    this.#scheduleReconnect();
  }

  #handleTokenExpired() {
    const gen = this.#gen;
    this.#setState('reconnecting');
    this.#ensureFreshToken().then(
      () => { if (gen === this.#gen) this.#connectInternal(); },
      () => {
        if (gen !== this.#gen) return;
        this.#setState('disconnected');
        this.#fire('onLoginRequired', new LoginRequiredError('Token refresh failed', 401, 'Refresh token expired or invalid'));
      },
    );
  }

  #scheduleReconnect() {
    // A failed WebSocket upgrade hides its HTTP status, so after a reconnect
    // has itself failed, force one token refresh per disconnect cycle.
    if (!this.#reauthAttempted && this.#accessToken && this.#reconnectAttempts >= 1 && this.#refreshConfigured) {
      this.#reauthAttempted = true;
      this.#accessToken = null;
    }
    const t = this.#timing;
    const delay = Math.min(t.reconnectDelayMs * 2 ** this.#reconnectAttempts, t.maxReconnectDelayMs);
    this.#reconnectAttempts++;
    this.#setState('reconnecting');
    this.#clearReconnectTimer();
    const gen = this.#gen;
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      if (gen === this.#gen) this.#connectInternal();
    }, delay);
  }

  #clearReconnectTimer() {
    if (this.#reconnectTimer !== undefined) {
      clearTimeout(this.#reconnectTimer);
      this.#reconnectTimer = undefined;
    }
  }

  #startHeartbeat() {
    this.#stopHeartbeat();
    const interval = this.#timing.heartbeatIntervalMs;
    if (!(interval > 0)) return;
    this.#heartbeatTimer = setInterval(() => {
      try { this.#ws?.send(PING); } catch { /* mid-close: the next open re-arms */ }
    }, interval);
  }

  #stopHeartbeat() {
    if (this.#heartbeatTimer !== undefined) {
      clearInterval(this.#heartbeatTimer);
      this.#heartbeatTimer = undefined;
    }
  }

  #reconnectNow() {
    this.#reconnectAttempts = 0;
    this.#clearReconnectTimer();
    this.#connectInternal();
  }

  #setupWakeUpSensing() {
    const doc = globalThis.document;
    const win = globalThis.window;
    if (this.#wakeListeners || !doc?.addEventListener || !win?.addEventListener) return;
    const onVisible = () => {
      if (doc.visibilityState === 'visible' && this.#state === 'reconnecting') this.#reconnectNow();
    };
    const onFocus = () => {
      if (this.#state === 'reconnecting') this.#reconnectNow();
    };
    const onOnline = () => {
      if (this.#state === 'reconnecting' || this.#state === 'disconnected') this.#reconnectNow();
    };
    doc.addEventListener('visibilitychange', onVisible);
    win.addEventListener('focus', onFocus);
    win.addEventListener('online', onOnline);
    this.#wakeListeners = () => {
      doc.removeEventListener('visibilitychange', onVisible);
      win.removeEventListener('focus', onFocus);
      win.removeEventListener('online', onOnline);
    };
  }

  #removeWakeUpSensing() {
    this.#wakeListeners?.();
    this.#wakeListeners = null;
  }

  // -- messages ------------------------------------------------------------------

  #handleMessage(ws, data) {
    if (typeof data !== 'string' || data === PONG) return; // binary frames and heartbeat replies
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      this.#log.warn?.('lmz client: gateway frame is not JSON');
      return;
    }
    switch (msg?.type) {
      case 'connection_status':
        if (this.#ws !== ws) return;
        this.#setState('connected');
        this.#flushQueue();
        if (msg.subscriptionRequired) this.#fire('onSubscriptionRequired');
        return;
      case 'call_response':
        this.#handleCallResponse(msg);
        return;
      case 'incoming_call':
        this.#handleIncomingCall(ws, msg);
        return;
      default:
        this.onUnknownMessage(msg);
    }
  }

  // -- tokens ----------------------------------------------------------------------

  #setToken(token) {
    this.#accessToken = token;
    const claims = parseJwtClaims(token);
    this.#claims = claims ? Object.freeze(claims) : null;
  }

  #needsTokenRefresh() {
    if (!this.#accessToken) return true;
    const exp = this.#claims?.exp;
    if (typeof exp !== 'number') return false; // no readable exp: trusted as-is
    return exp - REFRESH_AHEAD_S <= Math.floor(Date.now() / 1000);
  }

  #ensureFreshToken() {
    if (!this.#needsTokenRefresh()) return Promise.resolve();
    this.#refreshInFlight ??= this.#refreshToken().finally(() => { this.#refreshInFlight = null; });
    return this.#refreshInFlight;
  }

  async #refreshToken() {
    const refresh = this.#config.refresh ?? DEFAULT_REFRESH;
    let token;
    if (typeof refresh === 'function') {
      token = (await refresh())?.access_token;
    } else if (typeof refresh === 'string') {
      const fetchFn = this.#config.fetch ?? globalThis.fetch;
      const res = await fetchFn(this.#refreshUrl(refresh), { method: 'POST', credentials: 'include' });
      if (!res.ok) {
        await res.text?.().catch(noop);
        if (res.status === 401 || res.status === 403) {
          throw new LoginRequiredError(`Token refresh failed: ${res.status}`, res.status, 'Refresh token expired or invalid');
        }
        throw new Error(`Token refresh failed: ${res.status}`);
      }
      token = (await res.json())?.access_token;
    } else {
      throw new Error('No refresh method configured');
    }
    if (typeof token !== 'string' || token === '') throw new Error('Refresh returned no token');
    this.#setToken(token);
  }

  #refreshUrl(refresh) {
    // A page resolves a relative URL against itself; elsewhere use baseUrl's origin.
    if (typeof globalThis.location !== 'undefined' || /^[a-z][a-z0-9+.-]*:/i.test(refresh) || !this.#config.baseUrl) {
      return refresh;
    }
    const httpBase = this.#config.baseUrl.replace(/^wss:\/\//, 'https://').replace(/^ws:\/\//, 'http://');
    return new URL(refresh, httpBase).href;
  }

  // -- state and callbacks ---------------------------------------------------------

  #setState(state) {
    if (this.#state === state) return;
    this.#state = state;
    this.#fire('onConnectionStateChange', state);
  }

  /** Calls the subclass member `name` (method or field) and the config callback. */
  #fire(name, ...args) {
    if (this.#deferred) {
      this.#deferred.push([name, args]);
      return;
    }
    const own = this[name];
    const cfg = this.#config[name];
    for (const fn of own === cfg ? [own] : [own, cfg]) {
      if (typeof fn !== 'function') continue;
      try {
        fn.apply(this, args);
      } catch (err) {
        this.#log.error?.(`lmz client: ${name} threw:`, toError(err).message);
      }
    }
  }
}

export { LmzClient as LumenizeClient };
