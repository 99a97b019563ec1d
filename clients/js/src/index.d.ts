/// <reference lib="esnext.disposable" />
// Types for @lmz/client (hand-written; the package ships plain ESM JavaScript).

export { LmzIntermediate, preprocess, postprocess, stringify, parse } from './structured-clone.js';

// ---------------------------------------------------------------------------
// Mesh model
// ---------------------------------------------------------------------------

export type ConnectionState = 'connecting' | 'connected' | 'reconnecting' | 'disconnected';

export interface NodeIdentity {
  type: 'LumenizeDO' | 'LumenizeWorker' | 'LumenizeClient';
  bindingName?: string;
  instanceName?: string;
}

export interface OriginAuth {
  sub: string;
  claims?: Record<string, unknown>;
}

/** What `this.lmz.callContext` holds inside a mesh call. */
export interface CallContext {
  /** The callers, origin first, immediate caller last (the callee is not in it). */
  callChain: NodeIdentity[];
  /** Minted by the gateway from the origin client's verified token. */
  originAuth?: OriginAuth;
  /** Mutable state carried along the chain. */
  state: Record<string, unknown>;
  /** lmz addition: the trace this call belongs to (32 hex chars); calls made
   * while handling it carry it on. Absent from a gateway that does not send it. */
  traceId?: string;
  /** lmz addition: this call's id in the mesh (16 hex chars). */
  callId?: string;
}

export interface CallOptions {
  /** Start a fresh chain (this client becomes the origin; state starts from `state`). */
  newChain?: boolean;
  /** Merged over the inherited state (option wins), or the initial state with newChain. */
  state?: Record<string, unknown>;
  /** Called synchronously with the call id before the frame is sent or queued. */
  onSent?(callId: string): void;
  /** With a handler: run it only when the call fails. */
  onErrorOnly?: boolean;
}

// ---------------------------------------------------------------------------
// Continuations
// ---------------------------------------------------------------------------

export type Operation =
  | { type: 'get'; key: string | number }
  | { type: 'apply'; args: unknown[] };
export type OperationChain = Operation[];

export interface NestedOperationMarker {
  __isNestedOperation: true;
  __operationChain: OperationChain;
}

declare const CONTINUATION: unique symbol;
/** What every continuation is (a recording Proxy made by ctn()). */
export interface ContinuationLike {
  readonly [CONTINUATION]: true;
}

/** An untyped continuation: any property, any call. */
export interface AnyContinuation extends ContinuationLike {
  (...args: any[]): AnyContinuation;
  readonly [key: string]: AnyContinuation;
}

type IsAny<T> = 0 extends 1 & T ? true : false;
/** Each parameter also accepts a continuation (a nested call, or `ctn().$result`). */
type CtnArgs<P extends any[]> = { [I in keyof P]: P[I] | ContinuationLike };

/**
 * A continuation typed after T: properties are continuations of the property
 * types, methods take their parameters (or nested continuations, e.g.
 * `ctn().$result`) and return continuations of their results.
 */
export type Continuation<T = any> = IsAny<T> extends true
  ? AnyContinuation
  : ContinuationLike &
    { readonly $result: AnyContinuation } &
    (T extends (...args: infer P) => infer R ? (...args: CtnArgs<P>) => Continuation<Awaited<R>> : unknown) &
    (T extends object ? { readonly [K in keyof T]: Continuation<T[K]> } : unknown);

/** A fresh continuation recorder. */
export function ctn<T = any>(): Continuation<T>;
export function newContinuation<T = any>(): Continuation<T>;
/** The chain a continuation recorded, or undefined for anything else. */
export function getOperationChain(continuation: unknown): OperationChain | undefined;
export function continuationFromChain<T = any>(chain: OperationChain): Continuation<T>;
export function isNestedOperationMarker(value: unknown): value is NestedOperationMarker;
/** Substitutes `value` for the marker arguments of the chain's last apply (or appends it). */
export function replaceNestedOperationMarkers(chain: OperationChain, value: unknown): OperationChain;

export interface ExecuteOptions {
  /** Default true: the first method called must be mesh-callable. */
  requireMeshDecorator?: boolean;
  /** Default 50 operations. */
  maxDepth?: number;
  /** Default 100 arguments per call. */
  maxArgs?: number;
  /** Extra entry points (default: the target class's static meshMethods). */
  meshMethods?: Map<string, MeshGuard | null>;
  /** Called synchronously right before each method runs. */
  beforeCall?(): void;
}
export function executeOperationChain(chain: OperationChain, target: object, options?: ExecuteOptions): Promise<unknown>;
export function validateOperationChain(chain: unknown, options?: { maxDepth?: number; maxArgs?: number }): asserts chain is OperationChain;

// ---------------------------------------------------------------------------
// Mesh-callable marking (the @mesh decorator without a build step)
// ---------------------------------------------------------------------------

/** Runs synchronously before a remote call with the target instance; throw to reject. */
export type MeshGuard<T = any> = (instance: T) => void;
/** `static meshMethods = ['a', 'b']` or `{ a: true, b: guard }`. */
export type MeshMethodList = readonly string[] | Readonly<Record<string, boolean | MeshGuard>>;

export const MESH_CALLABLE: unique symbol;
export const MESH_GUARD: unique symbol;
/** Marks `fn` as callable from the mesh (optionally guarded) and returns it. */
export function mesh<F extends (...args: any[]) => any>(fn: F, guard?: MeshGuard): F;
/** Decorator shape: `mesh()(fn)`. */
export function mesh(): <F extends (...args: any[]) => any>(fn: F) => F;
export function meshFn<F extends (...args: any[]) => any>(fn: F, guard?: MeshGuard): F;
export function isMeshCallable(fn: unknown): boolean;
export function getMeshGuard(fn: unknown): MeshGuard | undefined;

// ---------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------

/** The part of a WebSocket the client uses (browser WebSocket, `ws`, or a mock). */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: any) => any) | null;
  onclose: ((ev: any) => any) | null;
  onerror: ((ev: any) => any) | null;
  onmessage: ((ev: any) => any) | null;
}
export type WebSocketConstructorLike = new (url: string, protocols?: string | string[]) => WebSocketLike;

export interface FetchResponseLike {
  readonly ok: boolean;
  readonly status: number;
  json(): Promise<any>;
  text(): Promise<string>;
}

export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

export interface BroadcastChannelLike {
  postMessage(message: unknown): void;
  close(): void;
  onmessage: ((ev: { data: unknown }) => any) | null;
}

export interface LmzClientConfig {
  /** http(s) or ws(s) base; default: the page's origin. Required in Node.js. */
  baseUrl?: string;
  /** Default `{claims.sub}.{tabId}`. */
  instanceName?: string;
  /** Default 'LUMENIZE_CLIENT_GATEWAY'. */
  gatewayBindingName?: string;
  /** Initial JWT. */
  accessToken?: string;
  /** A URL POSTed with credentials (expects JSON {access_token}) or a function; default '/auth/refresh-token'. */
  refresh?: string | (() => Promise<{ access_token: string }> | { access_token: string });
  onConnectionStateChange?(state: ConnectionState): void;
  onLoginRequired?(error: LoginRequiredError): void;
  onSubscriptionRequired?(): void;
  onConnectionError?(error: Error): void;
  /** Default 30000; <= 0 disables the 'lmz:ping' heartbeat. */
  heartbeatIntervalMs?: number;
  /** Extra mesh-callable method names (or name -> guard), besides static meshMethods and mesh(). */
  meshMethods?: MeshMethodList;
  /** Where warnings go (default console). */
  logger?: { warn?(...args: unknown[]): void; error?(...args: unknown[]): void };
  /** Injection for tests and other runtimes. Node.js default: the `ws` package. */
  WebSocket?: WebSocketConstructorLike;
  fetch?: (url: string, init?: any) => Promise<FetchResponseLike>;
  sessionStorage?: StorageLike;
  BroadcastChannel?: new (name: string) => BroadcastChannelLike;
  /** Tuning (defaults: 100 calls, 30000 ms, 1000 ms, 30000 ms). */
  maxQueue?: number;
  queueTimeoutMs?: number;
  reconnectDelayMs?: number;
  maxReconnectDelayMs?: number;
  /**
   * A call frame (UTF-8 bytes) over this is not sent: the call rejects with
   * MessageTooLargeError. Default 32 MiB, the gateway's default
   * (`gateway.max_message_bytes`); set it to the gateway's value.
   */
  maxMessageBytes?: number;
}

export interface LmzApiClient {
  readonly type: 'LumenizeClient';
  readonly bindingName: string;
  /** @throws until the name is known (after the first connect when auto-generated). */
  readonly instanceName: string;
  /** @throws outside a mesh call. */
  readonly callContext: CallContext;
  /**
   * Fire-and-forget call; with a handler continuation, the result (or the
   * Error) is substituted for `ctn().$result` (or appended) and the handler
   * runs locally. @throws for arguments that are not continuations.
   */
  call<T = any>(
    binding: string,
    instance: string | undefined,
    remoteContinuation: Continuation<T> | ContinuationLike,
    handlerContinuation?: ContinuationLike,
    options?: CallOptions,
  ): void;
  /** Awaitable call: resolves with the result, rejects with the remote error. */
  callRaw<R = any>(
    binding: string,
    instance: string | undefined,
    chainOrContinuation: ContinuationLike | OperationChain,
    options?: CallOptions,
  ): Promise<R>;
}

export declare const DEFAULTS: Readonly<{
  maxQueue: number;
  queueTimeoutMs: number;
  reconnectDelayMs: number;
  maxReconnectDelayMs: number;
  heartbeatIntervalMs: number;
  maxMessageBytes: number;
}>;

export class LmzClient {
  constructor(config?: LmzClientConfig);
  /** Method names (or name -> guard) the mesh may call on instances of this class. */
  static meshMethods?: MeshMethodList;
  readonly connectionState: ConnectionState;
  /** Decoded (unverified) JWT payload, or null. */
  readonly claims: Readonly<Record<string, any>> | null;
  readonly lmz: LmzApiClient;
  ctn(): Continuation<this>;
  ctn<T>(): Continuation<T>;
  call<T = any>(
    binding: string,
    instance: string | undefined,
    remoteContinuation: Continuation<T> | ContinuationLike,
    handlerContinuation?: ContinuationLike,
    options?: CallOptions,
  ): void;
  callRaw<R = any>(
    binding: string,
    instance: string | undefined,
    chainOrContinuation: ContinuationLike | OperationChain,
    options?: CallOptions,
  ): Promise<R>;
  connect(): void;
  disconnect(): void;
  [Symbol.dispose](): void;
  clearAccessToken(): void;
  /** Override to authorize incoming calls (throw to reject). Default: no peer-to-peer client calls. */
  onBeforeCall(): void;
  onUnknownMessage(message: unknown): void;
  authedFetch(url: string, init?: any): Promise<FetchResponseLike>;
  /** Optional subclass hooks, called besides the config callbacks of the same name. */
  onConnectionStateChange?(state: ConnectionState): void;
  onLoginRequired?(error: LoginRequiredError): void;
  onSubscriptionRequired?(): void;
  onConnectionError?(error: Error): void;
}
export { LmzClient as LumenizeClient };

export class LoginRequiredError extends Error {
  constructor(message: string, code: number, reason: string);
  readonly code: number;
  readonly reason: string;
}
export class ClientDisconnectedError extends Error {
  constructor(message: string, clientInstanceName?: string);
  readonly clientInstanceName?: string;
}
/** A call whose socket closed before its response arrived (it may or may not have run). */
export class ConnectionLostError extends Error {
  constructor(callId: string);
  readonly callId: string;
}
/**
 * "Message is too large": the call frame was over maxMessageBytes (not sent;
 * `size`, `limit`), or the gateway closed the socket with 1009 while the call
 * was in flight (`code`, `reason`; it may or may not have run).
 */
export class MessageTooLargeError extends ConnectionLostError {
  constructor(callId: string, details?: { size?: number; limit?: number; code?: number; reason?: string });
  readonly size?: number;
  readonly limit?: number;
  readonly code?: number;
  readonly reason?: string;
}

export function parseJwtClaims(token: string): Record<string, any> | null;
/** True when `err` carries `retryable: true` (MeshOverloadedError, ActorUnavailableError). */
export function isRetryable(err: unknown): boolean;
/** True for MeshOverloadedError (`overloaded: true`): back off, then retry. */
export function isOverloaded(err: unknown): boolean;
export function getOrCreateTabId(deps: {
  sessionStorage: StorageLike;
  BroadcastChannel: new (name: string) => BroadcastChannelLike;
}): Promise<string>;
