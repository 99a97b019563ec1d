// Continuations (OCAN: operation chains) and mesh-callable marking.
//
// ctn() returns a recording Proxy: every property read appends
// {type:'get', key}, every call appends {type:'apply', args}. A continuation
// passed as a top-level argument is recorded as a nested-operation marker
// {__isNestedOperation:true, __operationChain:[...]}; `ctn().$result` is just
// the continuation [{type:'get', key:'$result'}], which as an argument becomes
// the marker where a handler receives the result (replaceNestedOperationMarkers).
//
// executeOperationChain runs a received chain on a target. With
// requireMeshDecorator (incoming calls) the first method called must be marked
// with mesh()/meshFn() or listed in the class's static `meshMethods`; its guard
// runs synchronously with the target; nested markers in the arguments are then
// resolved left to right on the same target under the same rules. As in lmz's
// C runtime (DESIGN.md section 9), a chain without any call does not bypass
// the check, and intermediate calls run once.
//
// Failure modes: an invalid chain, too many operations (50) or arguments (100),
// markers nested deeper than 16, a non-callable step, or an unmarked entry
// method all throw (reject) with the original's messages.

export const MESH_CALLABLE = Symbol.for('lumenize.mesh.callable');
export const MESH_GUARD = Symbol.for('lumenize.mesh.guard');

const MAX_DEPTH = 50;
const MAX_ARGS = 100;
const MAX_NESTING = 16;

const chains = new WeakMap(); // continuation proxy -> its operation chain

// ---------------------------------------------------------------------------
// Mesh marking
// ---------------------------------------------------------------------------

/**
 * Marks `fn` as callable from the mesh: the `@mesh(guard?)` decorator of the
 * original, usable without a build step. `guard(instance)` runs synchronously
 * before each remote call; a throw rejects the call with that error. Returns
 * `fn`. `mesh()` with no argument returns a marker `(fn) => fn` (decorator
 * shape). Class methods can instead be listed in `static meshMethods`.
 */
export function mesh(fn, guard) {
  if (fn === undefined) return (f) => markMesh(f, guard);
  return markMesh(fn, guard);
}

/** Marks a standalone function stored in a property (`obj.deep.fn = meshFn(...)`). */
export function meshFn(fn, guard) {
  return markMesh(fn, guard);
}

function markMesh(fn, guard) {
  if (typeof fn !== 'function') throw new TypeError('mesh(): expected a function');
  if (guard !== undefined && typeof guard !== 'function') throw new TypeError('mesh(): the guard must be a function');
  Object.defineProperty(fn, MESH_CALLABLE, { value: true, configurable: true });
  if (guard) Object.defineProperty(fn, MESH_GUARD, { value: guard, configurable: true });
  return fn;
}

/** True when fn carries the mesh marker. */
export function isMeshCallable(fn) {
  return typeof fn === 'function' && fn[MESH_CALLABLE] === true;
}

/** The guard attached by mesh(fn, guard), if any. */
export function getMeshGuard(fn) {
  return typeof fn === 'function' ? fn[MESH_GUARD] : undefined;
}

/**
 * The `static meshMethods` of target's class chain, merged: an array of
 * method names, or an object {name: true | guard}. Returns Map name -> guard|null.
 */
export function staticMeshMethods(target) {
  const out = new Map();
  const ctors = [];
  for (let c = target?.constructor; typeof c === 'function' && c !== Object && c !== Function.prototype;
    c = Object.getPrototypeOf(c)) {
    if (Object.prototype.hasOwnProperty.call(c, 'meshMethods')) ctors.unshift(c.meshMethods);
  }
  for (const list of ctors) addMeshList(out, list);
  return out;
}

export function addMeshList(out, list) {
  if (Array.isArray(list)) {
    for (const name of list) out.set(String(name), null);
  } else if (list && typeof list === 'object') {
    for (const [name, g] of Object.entries(list)) {
      if (g === false) out.delete(name);
      else out.set(name, typeof g === 'function' ? g : null);
    }
  }
}

// ---------------------------------------------------------------------------
// Recording
// ---------------------------------------------------------------------------

const isMarker = (v) => v !== null && typeof v === 'object' && v.__isNestedOperation === true &&
  Array.isArray(v.__operationChain);

function record(chain) {
  // The target is a function so that the proxy can be called.
  const proxy = new Proxy(function continuation() {}, {
    get(_t, key) {
      if (typeof key === 'symbol') return undefined;
      return record([...chain, { type: 'get', key }]);
    },
    apply(_t, _this, args) {
      const recorded = args.map((a) => {
        const nested = chains.get(a);
        return nested ? { __isNestedOperation: true, __operationChain: nested } : a;
      });
      return record([...chain, { type: 'apply', args: recorded }]);
    },
  });
  chains.set(proxy, chain);
  return proxy;
}

/** A fresh recording continuation (`this.ctn()` of the original). */
export function newContinuation() {
  return record([]);
}

/** Alias of newContinuation: `ctn().method(arg)`, `ctn().$result`. */
export const ctn = newContinuation;

/** The operation chain recorded by a continuation, or undefined for anything else. */
export function getOperationChain(continuation) {
  return (typeof continuation === 'function' && chains.get(continuation)) || undefined;
}

/** Wraps a received chain back into a continuation. */
export function continuationFromChain(chain) {
  if (!Array.isArray(chain)) throw new TypeError('continuationFromChain: chain must be an array');
  return record([...chain]);
}

/** True for {__isNestedOperation:true, __operationChain:[...]}. */
export function isNestedOperationMarker(v) {
  return isMarker(v);
}

/**
 * Puts `value` into a handler chain: in its last operation, if that is an
 * apply, every top-level marker argument is replaced by `value`; with no
 * marker, `value` is appended as the last argument. Returns a new chain.
 */
export function replaceNestedOperationMarkers(chain, value) {
  if (!Array.isArray(chain) || chain.length === 0) return chain;
  const last = chain[chain.length - 1];
  if (!last || last.type !== 'apply' || !Array.isArray(last.args)) return chain;
  let found = false;
  const args = last.args.map((a) => {
    if (!isMarker(a)) return a;
    found = true;
    return value;
  });
  if (!found) args.push(value);
  return [...chain.slice(0, -1), { type: 'apply', args }];
}

// ---------------------------------------------------------------------------
// Execution
// ---------------------------------------------------------------------------

/** Throws unless chain is a valid operation chain within the limits. */
export function validateOperationChain(chain, { maxDepth = MAX_DEPTH, maxArgs = MAX_ARGS } = {}) {
  if (!Array.isArray(chain)) throw new Error('Invalid operation chain: operations must be an array');
  if (chain.length > maxDepth) throw new Error(`Operation chain too deep: ${chain.length} > ${maxDepth}`);
  chain.forEach((op, i) => {
    const ok = op !== null && typeof op === 'object' &&
      ((op.type === 'get' && (typeof op.key === 'string' || typeof op.key === 'number')) ||
        (op.type === 'apply' && Array.isArray(op.args)));
    if (!ok) {
      throw new Error(`Invalid operation chain: operation ${i} must be {type:'get',key} or {type:'apply',args:[]}`);
    }
    if (op.type === 'apply' && op.args.length > maxArgs) {
      throw new Error(`Too many arguments: ${op.args.length} > ${maxArgs}`);
    }
  });
}

const isThenable = (v) => v !== null && (typeof v === 'object' || typeof v === 'function') &&
  typeof v.then === 'function';

function notMeshCallable(path) {
  return new Error(`Method '${path}' is not mesh-callable. Add the @mesh decorator to allow remote calls.`);
}

/**
 * Executes `chain` on `target` and resolves with the result.
 * options: requireMeshDecorator (default true), maxDepth (50), maxArgs (100),
 * meshMethods (Map name -> guard|null of extra entry points; default: the
 * target class's static meshMethods), beforeCall (called synchronously right
 * before each method runs; the client sets its callContext there).
 */
export async function executeOperationChain(chain, target, options = {}) {
  const opts = {
    requireMeshDecorator: options.requireMeshDecorator ?? true,
    maxDepth: options.maxDepth ?? MAX_DEPTH,
    maxArgs: options.maxArgs ?? MAX_ARGS,
    meshMethods: options.meshMethods ?? staticMeshMethods(target),
    beforeCall: options.beforeCall,
  };
  return run(chain, target, opts, 0);
}

async function run(chain, target, opts, nesting) {
  validateOperationChain(chain, opts);
  let current = target;
  let thisArg;
  let checked = !opts.requireMeshDecorator;
  const path = [];
  for (const op of chain) {
    if (op.type === 'get') {
      if (current === null || current === undefined) {
        throw new TypeError(`Cannot read properties of ${current} (reading '${String(op.key)}')`);
      }
      if (!checked) path.push(String(op.key));
      thisArg = current;
      current = current[op.key];
      if (isThenable(current)) current = await current;
      continue;
    }
    if (typeof current !== 'function') {
      if (!checked) throw notMeshCallable(path.join('.'));
      throw new TypeError(`${String(current)} is not a function`);
    }
    if (!checked) {
      checkEntry(current, path, target, opts);
      checked = true;
    }
    const args = await resolveArgs(op.args, target, opts, nesting);
    opts.beforeCall?.();
    current = current.apply(thisArg, args);
    thisArg = undefined;
    if (isThenable(current)) current = await current;
  }
  if (!checked) throw notMeshCallable(path.join('.')); // no call: no property-read bypass
  return current;
}

function checkEntry(fn, path, target, opts) {
  let guard;
  if (isMeshCallable(fn)) {
    guard = getMeshGuard(fn);
  } else if (path.length === 1 && opts.meshMethods.has(path[0])) { // fn is target[path[0]]
    guard = opts.meshMethods.get(path[0]);
  } else {
    throw notMeshCallable(path.join('.'));
  }
  if (guard) guard(target); // synchronous by design; its return value is not awaited
}

function hasMarker(v) {
  if (isMarker(v)) return true;
  if (Array.isArray(v)) return v.some(hasMarker);
  if (v !== null && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    return Object.values(v).some(isMarker);
  }
  return false;
}

async function resolveOne(v, target, opts, nesting) {
  if (isMarker(v)) {
    if (nesting >= MAX_NESTING) throw new Error(`Nested operations too deep: > ${MAX_NESTING}`);
    return run(v.__operationChain, target, opts, nesting + 1);
  }
  if (Array.isArray(v)) return hasMarker(v) ? resolveArgs(v, target, opts, nesting) : v;
  if (v !== null && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype &&
    Object.values(v).some(isMarker)) {
    const copy = {};
    for (const [k, x] of Object.entries(v)) {
      const r = isMarker(x) ? await resolveOne(x, target, opts, nesting) : x;
      if (k === '__proto__') Object.defineProperty(copy, k, { value: r, enumerable: true, writable: true, configurable: true });
      else copy[k] = r;
    }
    return copy;
  }
  return v;
}

async function resolveArgs(args, target, opts, nesting) {
  if (!args.some(hasMarker)) return args; // identity of the arguments kept
  const out = [];
  for (const a of args) out.push(await resolveOne(a, target, opts, nesting)); // left to right
  return out;
}
