// @lmz/client/structured-clone — the SC-JSON codec ("W4" {json, meta} format
// of the original @lumenize/structured-clone, plus lmz's extensions).
//
// Happy path: preprocess(value) walks the value twice. Pass 1 counts how often
// every object is reached (cycles included); pass 2 emits a JSON-safe tree in
// which every object reached more than once becomes {"$ref": id} everywhere,
// its body written once under meta.aliases[id] (ids in first-encounter order
// of the depth-first emission). postprocess({json, meta}) rebuilds the value;
// aliases are built lazily, a container being registered before its children
// are decoded, so cycles and shared identity come back as they were.
// stringify/parse add JSON.stringify/JSON.parse. The output is byte-for-byte
// that of lmz's C codec (core/codec_scjson.c); both suites read the vectors in
// tests/vectors/scjson.json.
//
// Extensions over the original (its decoder still reads them):
//   -0              {"$type":"number-special","value":"-0"} (boxed: number-object "-0")
//   array hole      {"$type":"hole"} as the element
//   invalid Date    {"$type":"date","iso":"Invalid Date"}
//   BigInt64Array / BigUint64Array   data as decimal strings
//   Float32/64Array NaN, ±Infinity, -0 elements as "NaN", "Infinity", "-Infinity", "-0"
//   typed array not covering its whole buffer, or whose buffer is shared:
//                   "data" plus "byteOffset" and "buffer" (the ArrayBuffer, usually a $ref);
//                   a DataView whose buffer is shared adds "buffer"
//   AggregateError  keeps its message; an Error cause that is undefined is kept
//
// Failure modes: encoding throws TypeError('unable to serialize symbol') for a
// symbol anywhere (except inside an Error's custom property, which is skipped,
// as in the original), TypeError for native Request/Response. Decoding input is
// untrusted: a wrong shape (missing "json", a $ref to a missing alias, an alias
// body that is itself a $ref, a hole outside an array, a map entry that is not
// a pair, a view outside its buffer) throws a TypeError/RangeError; nothing is
// evaluated, and Error classes are only ever taken from globalThis when they
// really are Error subclasses.

const hasOwn = (o, k) => Object.prototype.hasOwnProperty.call(o, k);
const tagOf = (v) => Object.prototype.toString.call(v);

const TYPED_ARRAYS = {
  Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array,
  Int32Array, Uint32Array, Float32Array, Float64Array,
  BigInt64Array, BigUint64Array,
};
const ERROR_BASE_KEYS = new Set(['name', 'message', 'stack', 'cause']);
const UNKNOWN = Symbol('unknown $type');

function defineValue(obj, key, value) {
  // Plain assignment of "__proto__" would set the prototype instead.
  if (key === '__proto__') {
    Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
  } else {
    obj[key] = value;
  }
}

const escapeKey = (k) => (k.charCodeAt(0) === 36 /* $ */ ? '$' + k : k);
const unescapeKey = (k) => (k.startsWith('$$') ? k.slice(1) : k);

function numberSpecial(n) {
  if (Number.isNaN(n)) return 'NaN';
  if (n === Infinity) return 'Infinity';
  if (n === -Infinity) return '-Infinity';
  if (n === 0 && 1 / n < 0) return '-0';
  return null;
}

function isError(v) {
  return v instanceof Error || tagOf(v) === '[object Error]';
}

function isNativeRequestOrResponse(v) {
  if (typeof Request === 'function' && v instanceof Request) return 'Request';
  if (typeof Response === 'function' && v instanceof Response) return 'Response';
  return null;
}

// ---------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------

/** Throws if v (deeply) holds something that cannot be encoded. Used to decide
 *  which custom properties of an Error are kept, before aliases are counted. */
function assertEncodable(v, seen) {
  if (typeof v === 'symbol') throw new TypeError('unable to serialize symbol');
  if (v === null || typeof v !== 'object' || seen.has(v)) return;
  seen.add(v);
  const native = isNativeRequestOrResponse(v);
  if (native) throw new TypeError(`Cannot serialize native ${native} object`);
  if (tagOf(v) === '[object Symbol]') throw new TypeError('unable to serialize symbol');
  if (v instanceof Map) {
    for (const [k, x] of v) { assertEncodable(k, seen); assertEncodable(x, seen); }
  } else if (v instanceof Set) {
    for (const x of v) assertEncodable(x, seen);
  } else if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) if (hasOwn(v, i)) assertEncodable(v[i], seen);
  } else if (isError(v)) {
    if (hasOwn(v, 'cause')) assertEncodable(v.cause, seen);
  } else if (!ArrayBuffer.isView(v) && !isAtomic(v)) {
    for (const k of Object.keys(v)) assertEncodable(v[k], seen);
  }
}

function isAtomic(v) {
  if (v instanceof Date || v instanceof RegExp) return true;
  if (typeof URL === 'function' && v instanceof URL) return true;
  if (typeof Headers === 'function' && v instanceof Headers) return true;
  const t = tagOf(v);
  return t === '[object ArrayBuffer]' || t === '[object SharedArrayBuffer]' ||
    t === '[object Boolean]' || t === '[object Number]' || t === '[object String]' ||
    t === '[object BigInt]';
}

class Encoder {
  constructor() {
    this.counts = new Map();  // object -> times reached
    this.props = new Map();   // plain object / Error -> [[key, value]...] read once
    this.ids = new Map();     // aliased object -> id
    this.aliases = {};
    this.nextId = 0;
  }

  /** Own enumerable props of a plain object (getters evaluated once). */
  objectProps(o) {
    let p = this.props.get(o);
    if (!p) {
      p = Object.keys(o).map((k) => [k, o[k]]);
      this.props.set(o, p);
    }
    return p;
  }

  /** Custom props of an Error: all own names but the four base ones; a prop
   *  whose getter throws or whose value cannot be encoded is skipped. */
  errorProps(e) {
    let p = this.props.get(e);
    if (!p) {
      p = [];
      for (const k of Object.getOwnPropertyNames(e)) {
        if (ERROR_BASE_KEYS.has(k)) continue;
        try {
          const v = e[k];
          assertEncodable(v, new Set());
          p.push([k, v]);
        } catch { /* skipped, as the original does */ }
      }
      this.props.set(e, p);
    }
    return p;
  }

  /** Pass 1: count references to every object (explicit stack: no recursion). */
  count(root) {
    const stack = [root];
    while (stack.length > 0) {
      const v = stack.pop();
      if (v === null || typeof v !== 'object') continue;
      const n = this.counts.get(v);
      this.counts.set(v, (n ?? 0) + 1);
      if (n !== undefined) continue;
      this.pushChildren(v, stack);
    }
  }

  pushChildren(v, stack) {
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) if (hasOwn(v, i)) stack.push(v[i]);
    } else if (v instanceof Map) {
      for (const [k, x] of v) stack.push(k, x);
    } else if (v instanceof Set) {
      for (const x of v) stack.push(x);
    } else if (isError(v)) {
      if (hasOwn(v, 'cause')) stack.push(v.cause);
      for (const [, x] of this.errorProps(v)) stack.push(x);
    } else if (ArrayBuffer.isView(v)) {
      stack.push(v.buffer);
    } else if (!isAtomic(v) && !isNativeRequestOrResponse(v)) {
      for (const [, x] of this.objectProps(v)) stack.push(x);
    }
  }

  /** Pass 2: the JSON-safe form of v. */
  encode(v) {
    switch (typeof v) {
      case 'undefined': return { $type: 'undefined' };
      case 'boolean':
      case 'string': return v;
      case 'number': {
        const s = numberSpecial(v);
        return s ? { $type: 'number-special', value: s } : v;
      }
      case 'bigint': return { $type: 'bigint', value: v.toString() };
      case 'symbol': throw new TypeError('unable to serialize symbol');
      case 'function': return { $type: 'function', name: v.name || 'anonymous' };
      default: break;
    }
    if (v === null) return null;
    if ((this.counts.get(v) ?? 0) > 1) {
      let id = this.ids.get(v);
      if (id === undefined) {
        id = this.nextId++;
        this.ids.set(v, id);
        this.aliases[id] = null; // reserve the slot before walking the body (cycles)
        this.aliases[id] = this.body(v);
      }
      return { $ref: id };
    }
    return this.body(v);
  }

  body(v) {
    if (Array.isArray(v)) {
      const out = new Array(v.length);
      for (let i = 0; i < v.length; i++) {
        out[i] = hasOwn(v, i) ? this.encode(v[i]) : { $type: 'hole' };
      }
      return out;
    }
    if (v instanceof Date) {
      const t = v.getTime();
      return { $type: 'date', iso: Number.isNaN(t) ? 'Invalid Date' : v.toISOString() };
    }
    if (v instanceof RegExp) return { $type: 'regexp', source: v.source, flags: v.flags };
    if (v instanceof Map) {
      const entries = [];
      for (const [k, x] of v) {
        const ek = this.encode(k);
        entries.push([ek, this.encode(x)]);
      }
      return { $type: 'map', entries };
    }
    if (v instanceof Set) {
      const values = [];
      for (const x of v) values.push(this.encode(x));
      return { $type: 'set', values };
    }
    if (isError(v)) return this.error(v);
    if (typeof URL === 'function' && v instanceof URL) return { $type: 'url', href: v.href };
    if (typeof Headers === 'function' && v instanceof Headers) {
      const entries = [];
      for (const [k, x] of v) entries.push([k, x]);
      return { $type: 'headers', entries };
    }
    if (ArrayBuffer.isView(v)) return this.view(v);
    const tag = tagOf(v);
    if (tag === '[object ArrayBuffer]' || tag === '[object SharedArrayBuffer]') {
      return { $type: 'arraybuffer', subtype: 'ArrayBuffer', data: Array.from(new Uint8Array(v)) };
    }
    const boxed = this.boxed(v, tag);
    if (boxed) return boxed;
    const native = isNativeRequestOrResponse(v);
    if (native) throw new TypeError(`Cannot serialize native ${native} object`);
    const out = {};
    for (const [k, x] of this.objectProps(v)) defineValue(out, escapeKey(k), this.encode(x));
    return out;
  }

  boxed(v, tag) {
    switch (tag) {
      case '[object Boolean]': return { $type: 'boolean-object', value: Boolean.prototype.valueOf.call(v) };
      case '[object Number]': {
        const n = Number.prototype.valueOf.call(v);
        return { $type: 'number-object', value: numberSpecial(n) ?? n };
      }
      case '[object String]': return { $type: 'string-object', value: String.prototype.valueOf.call(v) };
      case '[object BigInt]': return { $type: 'bigint-object', value: BigInt.prototype.valueOf.call(v).toString() };
      case '[object Symbol]': throw new TypeError('unable to serialize symbol');
      default: return null;
    }
  }

  error(e) {
    const out = { $type: 'error', name: String(e.name || 'Error'), message: String(e.message ?? '') };
    if (typeof e.stack === 'string') out.stack = e.stack;
    if (hasOwn(e, 'cause')) out.cause = this.encode(e.cause);
    for (const [k, x] of this.errorProps(e)) defineValue(out, escapeKey(k), this.encode(x));
    return out;
  }

  view(v) {
    const buf = v.buffer;
    const shared = (this.counts.get(buf) ?? 0) > 1;
    if (v instanceof DataView) {
      const out = {
        $type: 'arraybuffer', subtype: 'DataView', data: Array.from(new Uint8Array(buf)),
        byteOffset: v.byteOffset, byteLength: v.byteLength,
      };
      if (shared) out.buffer = this.encode(buf);
      return out;
    }
    const subtype = v[Symbol.toStringTag];
    let data;
    if (v instanceof BigInt64Array || v instanceof BigUint64Array) {
      data = Array.from(v, (x) => x.toString());
    } else if (v instanceof Float32Array || v instanceof Float64Array) {
      data = Array.from(v, (x) => numberSpecial(x) ?? x);
    } else {
      data = Array.from(v);
    }
    const out = { $type: 'arraybuffer', subtype, data };
    const partial = v.byteOffset !== 0 || v.byteLength !== buf.byteLength;
    if (shared || partial) {
      out.byteOffset = v.byteOffset;
      out.buffer = this.encode(buf);
    }
    return out;
  }
}

/**
 * Encodes any structured-clone value into the JSON-safe `{json, meta}` form.
 * Throws TypeError for symbols and native Request/Response.
 */
export function preprocess(value) {
  const enc = new Encoder();
  enc.count(value);
  const json = enc.encode(value);
  const meta = {};
  if (enc.nextId > 0) meta.aliases = enc.aliases;
  return { json, meta };
}

/** `JSON.stringify(preprocess(value))`. */
export function stringify(value) {
  return JSON.stringify(preprocess(value));
}

// ---------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------

const ISO_NO_OFFSET = /^[+-]?\d{4,6}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?$/;

function decodeDate(iso) {
  if (typeof iso !== 'string') throw new TypeError('date: "iso" must be a string');
  // A date-time without an offset is UTC here (as in lmz's C codec), not local time.
  return new Date(ISO_NO_OFFSET.test(iso) ? iso + 'Z' : iso);
}

function specialNumber(s) {
  switch (s) {
    case 'NaN': return NaN;
    case 'Infinity': return Infinity;
    case '-Infinity': return -Infinity;
    case '-0': return -0;
    default: throw new TypeError(`number-special: unknown value ${JSON.stringify(s)}`);
  }
}

function decodeBigInt(s) {
  if (typeof s !== 'string' || !/^-?\d+$/.test(s)) throw new TypeError('bigint: "value" must be a decimal string');
  return BigInt(s);
}

function errorConstructor(name) {
  const C = typeof name === 'string' && hasOwn(globalThis, name) ? globalThis[name] : undefined;
  if (typeof C === 'function' && (C === Error || C.prototype instanceof Error)) return C;
  return Error;
}

const isObj = (j) => j !== null && typeof j === 'object';
const isRef = (j) => isObj(j) && !Array.isArray(j) && hasOwn(j, '$ref') && Object.keys(j).length === 1;
const tagName = (j) => (isObj(j) && !Array.isArray(j) && typeof j.$type === 'string' && hasOwn(j, '$type') ? j.$type : null);

class Decoder {
  constructor(aliases) {
    this.aliases = isObj(aliases) ? aliases : {};
    this.built = new Map(); // alias id -> value (registered before children are decoded)
  }

  ref(r) {
    if (typeof r !== 'number' && typeof r !== 'string') throw new TypeError('$ref must be a number or a string');
    const key = String(r);
    if (this.built.has(key)) return this.built.get(key);
    if (!hasOwn(this.aliases, key)) throw new TypeError(`$ref ${key} names no alias`);
    const body = this.aliases[key];
    if (isRef(body)) throw new TypeError(`alias ${key} is itself a $ref`);
    return this.decode(body, (v) => this.built.set(key, v));
  }

  /** Decodes j; `register(v)` (aliases only) is called as soon as v exists,
   *  before a container's children are decoded, so cycles resolve to it. */
  decode(j, register) {
    if (!isObj(j)) {
      if (register) register(j);
      return j;
    }
    if (Array.isArray(j)) return this.array(j, register);
    if (isRef(j)) return this.ref(j.$ref);
    switch (tagName(j)) {
      case null: return this.object(j, register);
      case 'map': return this.map(j, register);
      case 'set': return this.set(j, register);
      case 'error': return this.error(j, register);
      default: break;
    }
    const v = this.atomic(j, j.$type);
    if (v === UNKNOWN) return this.object(j, register); // unknown $type: keeps its $type key
    if (register) register(v);
    return v;
  }

  array(j, register) {
    const out = [];
    if (register) register(out);
    for (let i = 0; i < j.length; i++) {
      const el = j[i];
      if (tagName(el) === 'hole') continue;
      out[i] = this.decode(el);
    }
    out.length = j.length;
    return out;
  }

  object(j, register) {
    const out = {};
    if (register) register(out);
    for (const k of Object.keys(j)) {
      defineValue(out, unescapeKey(k), this.decode(j[k]));
    }
    return out;
  }

  /** Tagged values without children that could refer back to them. */
  atomic(j, t) {
    switch (t) {
      case 'undefined': return undefined;
      case 'number-special': return specialNumber(j.value);
      case 'bigint': return decodeBigInt(j.value);
      case 'date': return decodeDate(j.iso);
      case 'regexp': return new RegExp(String(j.source), String(j.flags ?? ''));
      case 'url': return new URL(String(j.href));
      case 'headers': return this.headers(j);
      case 'arraybuffer': return this.arraybuffer(j);
      case 'boolean-object': return new Boolean(j.value);
      case 'number-object': return new Number(typeof j.value === 'string' ? specialNumber(j.value) : j.value);
      case 'string-object': return new String(j.value);
      case 'bigint-object': return Object(decodeBigInt(j.value));
      case 'function': return { name: typeof j.name === 'string' ? j.name : 'anonymous' };
      case 'hole': throw new TypeError('hole outside an array');
      default: return UNKNOWN;
    }
  }

  headers(j) {
    if (!Array.isArray(j.entries)) throw new TypeError('headers: "entries" must be an array');
    const pairs = j.entries.map((e) => {
      if (!Array.isArray(e) || e.length !== 2) throw new TypeError('headers entry must be a [name, value] pair');
      return [String(e[0]), String(e[1])];
    });
    if (typeof Headers === 'function') return new Headers(pairs);
    return new Map(pairs.map(([k, x]) => [k.toLowerCase(), x]));
  }

  arraybuffer(j) {
    const data = j.data;
    if (!Array.isArray(data)) throw new TypeError('arraybuffer: "data" must be an array');
    if (j.subtype === 'ArrayBuffer') return new Uint8Array(data).buffer;
    if (j.subtype === 'DataView') {
      const buf = hasOwn(j, 'buffer') ? this.bufferOf(j.buffer) : new Uint8Array(data).buffer;
      return new DataView(buf, j.byteOffset ?? 0, j.byteLength);
    }
    const C = hasOwn(TYPED_ARRAYS, j.subtype) ? TYPED_ARRAYS[j.subtype] : Uint8Array;
    if (hasOwn(j, 'buffer')) return new C(this.bufferOf(j.buffer), j.byteOffset ?? 0, data.length);
    return new C(data);
  }

  bufferOf(jb) {
    const b = this.decode(jb);
    if (tagOf(b) !== '[object ArrayBuffer]') throw new TypeError('arraybuffer: "buffer" must be an ArrayBuffer');
    return b;
  }

  map(j, register) {
    if (!Array.isArray(j.entries)) throw new TypeError('map: "entries" must be an array');
    const m = new Map();
    if (register) register(m);
    for (const e of j.entries) {
      if (!Array.isArray(e) || e.length !== 2) throw new TypeError('map entry must be a [key, value] array');
      const k = this.decode(e[0]);
      m.set(k, this.decode(e[1]));
    }
    return m;
  }

  set(j, register) {
    if (!Array.isArray(j.values)) throw new TypeError('set: "values" must be an array');
    const s = new Set();
    if (register) register(s);
    for (const x of j.values) s.add(this.decode(x));
    return s;
  }

  error(j, register) {
    const name = typeof j.name === 'string' ? j.name : 'Error';
    const message = typeof j.message === 'string' ? j.message : '';
    const C = errorConstructor(name);
    let e;
    if (C === globalThis.AggregateError) {
      e = new C([], message);
      delete e.errors; // re-added below, in wire order
    } else {
      try { e = new C(message); } catch { e = new Error(message); }
    }
    if (e.name !== name) setOwn(e, 'name', name);
    if (e.message !== message) setOwn(e, 'message', message);
    if (hasOwn(j, 'stack')) setOwn(e, 'stack', j.stack);
    else delete e.stack;
    if (register) register(e);
    if (hasOwn(j, 'cause')) setOwn(e, 'cause', this.decode(j.cause));
    for (const k of Object.keys(j)) {
      if (k === '$type' || ERROR_BASE_KEYS.has(k)) continue;
      const key = unescapeKey(k);
      const v = this.decode(j[k]);
      if (key === 'errors' && e instanceof AggregateError) setOwn(e, key, v);
      else defineValue(e, key, v);
    }
    return e;
  }
}

function setOwn(o, k, value) {
  Object.defineProperty(o, k, { value, writable: true, configurable: true, enumerable: false });
}

/**
 * Rebuilds a value from its `{json, meta}` form. Throws TypeError/RangeError
 * on a malformed payload.
 */
export function postprocess(obj) {
  if (!isObj(obj) || !hasOwn(obj, 'json')) throw new TypeError('structured clone: expected {json, meta}');
  const meta = obj.meta;
  return new Decoder(isObj(meta) ? meta.aliases : undefined).decode(obj.json);
}

/** `postprocess(JSON.parse(text))`. */
export function parse(text) {
  return postprocess(JSON.parse(text));
}
