// SC-JSON codec: the shared golden vectors (tests/vectors/scjson.json, also
// read by the C suite) and round trips of every type, cycles, aliases, errors.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { stringify, parse, preprocess, postprocess } from '../src/structured-clone.js';

const VECTORS = fileURLToPath(new URL('../../../tests/vectors/scjson.json', import.meta.url));
const file = JSON.parse(readFileSync(VECTORS, 'utf8'));

describe('golden vectors (shared with the C codec)', () => {
  test('the file has vectors', () => {
    assert.ok(file.vectors.length >= 80, `only ${file.vectors.length} vectors`);
    assert.ok(Array.isArray(file.decode_only));
  });
  for (const v of file.vectors) {
    test(`vector ${v.name}`, () => {
      assert.equal(stringify(parse(v.scjson)), v.scjson);
    });
  }
  for (const v of file.decode_only) {
    test(`decode_only ${v.name}`, () => {
      assert.equal(stringify(parse(v.scjson)), v.expect);
    });
  }
});

const rt = (x) => parse(stringify(x));

describe('exact encodings (behaviour doc 4.2-4.4)', () => {
  const cases = [
    ['undefined', undefined, '{"json":{"$type":"undefined"},"meta":{}}'],
    ['NaN', NaN, '{"json":{"$type":"number-special","value":"NaN"},"meta":{}}'],
    ['-0 (extension)', -0, '{"json":{"$type":"number-special","value":"-0"},"meta":{}}'],
    ['bigint', 10n, '{"json":{"$type":"bigint","value":"10"},"meta":{}}'],
    ['date', new Date('2024-01-15T10:30:00.000Z'), '{"json":{"$type":"date","iso":"2024-01-15T10:30:00.000Z"},"meta":{}}'],
    ['invalid date (extension)', new Date(NaN), '{"json":{"$type":"date","iso":"Invalid Date"},"meta":{}}'],
    ['regexp', /ab+c/gi, '{"json":{"$type":"regexp","source":"ab+c","flags":"gi"},"meta":{}}'],
    ['url', new URL('https://x.com/a?b=1#c'), '{"json":{"$type":"url","href":"https://x.com/a?b=1#c"},"meta":{}}'],
    ['headers', new Headers({ 'X-A': '1', 'Content-Type': 'text/plain' }),
      '{"json":{"$type":"headers","entries":[["content-type","text/plain"],["x-a","1"]]},"meta":{}}'],
    ['arraybuffer', new Uint8Array([9, 8]).buffer, '{"json":{"$type":"arraybuffer","subtype":"ArrayBuffer","data":[9,8]},"meta":{}}'],
    ['float32array', new Float32Array([1.5]), '{"json":{"$type":"arraybuffer","subtype":"Float32Array","data":[1.5]},"meta":{}}'],
    ['dataview', new DataView(new Uint8Array([1, 2, 3, 4]).buffer, 1, 2),
      '{"json":{"$type":"arraybuffer","subtype":"DataView","data":[1,2,3,4],"byteOffset":1,"byteLength":2},"meta":{}}'],
    ['function', function foo() {}, '{"json":{"$type":"function","name":"foo"},"meta":{}}'],
    ['hole (extension)', [1, , 3], '{"json":[1,{"$type":"hole"},3],"meta":{}}'], // eslint-disable-line no-sparse-arrays
    ['$-keys escaped', { $ref: 1, $type: 'x', $$y: 2 }, '{"json":{"$$ref":1,"$$type":"x","$$$y":2},"meta":{}}'],
    ['map', new Map([['k', 1]]), '{"json":{"$type":"map","entries":[["k",1]]},"meta":{}}'],
    ['set', new Set([1, 'a']), '{"json":{"$type":"set","values":[1,"a"]},"meta":{}}'],
    ['boxed', [Object(true), Object(42), Object('s'), Object(5n)],
      '{"json":[{"$type":"boolean-object","value":true},{"$type":"number-object","value":42},' +
      '{"$type":"string-object","value":"s"},{"$type":"bigint-object","value":"5"}],"meta":{}}'],
  ];
  for (const [name, value, expected] of cases) {
    test(name, () => assert.equal(stringify(value), expected));
  }

  test('shared object is hoisted, every occurrence a $ref', () => {
    const s = { n: 1 };
    assert.equal(stringify({ a: s, b: s }), '{"json":{"a":{"$ref":0},"b":{"$ref":0}},"meta":{"aliases":{"0":{"n":1}}}}');
  });

  test('self cycle', () => {
    const c = { name: 'c' };
    c.self = c;
    assert.equal(stringify(c), '{"json":{"$ref":0},"meta":{"aliases":{"0":{"name":"c","self":{"$ref":0}}}}}');
  });

  test('error with cause and custom props (doc 4.4 example)', () => {
    const e = new TypeError('bad', { cause: new Error('root') });
    e.code = 'E1';
    e.$weird = 1;
    e.stack = 'S';
    e.cause.stack = 'S2';
    assert.equal(stringify(e), '{"json":{"$type":"error","name":"TypeError","message":"bad","stack":"S",' +
      '"cause":{"$type":"error","name":"Error","message":"root","stack":"S2"},"code":"E1","$$weird":1},"meta":{}}');
  });

  test('views sharing a buffer keep sharing it (extension)', () => {
    const buf = new Uint8Array([1, 2, 3, 4]).buffer;
    const text = stringify([new Uint8Array(buf, 0, 2), new Uint16Array(buf, 2, 1)]);
    assert.equal(text, '{"json":[{"$type":"arraybuffer","subtype":"Uint8Array","data":[1,2],"byteOffset":0,"buffer":{"$ref":0}},' +
      '{"$type":"arraybuffer","subtype":"Uint16Array","data":[1027],"byteOffset":2,"buffer":{"$ref":0}}],' +
      '"meta":{"aliases":{"0":{"$type":"arraybuffer","subtype":"ArrayBuffer","data":[1,2,3,4]}}}}');
    const [a, b] = parse(text);
    assert.equal(a.buffer, b.buffer);
    a[0] = 255;
    assert.equal(new Uint8Array(b.buffer)[0], 255);
  });

  test('BigInt64Array as decimal strings (extension)', () => {
    assert.equal(stringify(new BigInt64Array([-1n, 2n ** 63n - 1n])),
      '{"json":{"$type":"arraybuffer","subtype":"BigInt64Array","data":["-1","9223372036854775807"]},"meta":{}}');
  });
});

describe('round trips', () => {
  test('primitives', () => {
    for (const v of [null, undefined, true, false, 123, -1.5, 'hello', '', 0, 2n ** 70n, -5n]) {
      assert.deepEqual(rt(v), v);
    }
    assert.ok(Number.isNaN(rt(NaN)));
    assert.equal(rt(Infinity), Infinity);
    assert.equal(rt(-Infinity), -Infinity);
    assert.ok(Object.is(rt(-0), -0), '-0 keeps its sign');
  });

  test('special numbers in containers', () => {
    const r = rt({ a: [NaN, Infinity], m: new Map([[NaN, -Infinity]]), s: new Set([NaN]) });
    assert.ok(Number.isNaN(r.a[0]));
    assert.equal(r.a[1], Infinity);
    assert.equal(r.m.get(NaN), -Infinity);
    assert.ok(r.s.has(NaN));
    assert.ok(!stringify({ a: NaN }).includes('null'));
  });

  test('arrays, holes and nested objects', () => {
    const a = [1, , 3]; // eslint-disable-line no-sparse-arrays
    const r = rt(a);
    assert.equal(r.length, 3);
    assert.ok(!(1 in r), 'the hole stays a hole');
    assert.deepEqual(rt({ x: { y: [1, { z: 'deep' }] } }), { x: { y: [1, { z: 'deep' }] } });
  });

  test('own enumerable keys only; class instances become plain objects', () => {
    class P { constructor() { this.own = 1; } get inherited() { return 2; } }
    const r = rt(new P());
    assert.deepEqual(Object.keys(r), ['own']);
    assert.equal(Object.getPrototypeOf(r), Object.prototype);
  });

  test('Date, RegExp, URL, Headers', () => {
    const d = new Date(1700000000123);
    assert.equal(rt(d).getTime(), d.getTime());
    assert.ok(Number.isNaN(rt(new Date(NaN)).getTime()));
    const re = rt(/x\/y+/gimsuy);
    assert.equal(re.source, 'x\\/y+');
    assert.equal(re.flags, 'gimsuy');
    const u = rt(new URL('https://u:p@example.com:8080/p/a?q=1&r=2#h'));
    assert.ok(u instanceof URL);
    assert.equal(u.href, 'https://u:p@example.com:8080/p/a?q=1&r=2#h');
    const h = rt(new Headers([['A', '1'], ['b', '2']]));
    assert.ok(h instanceof Headers);
    assert.equal(h.get('a'), '1');
    assert.equal(h.get('b'), '2');
  });

  test('Map (object keys, order) and Set', () => {
    const k = { id: 1 };
    const m = new Map([['b', 1], [k, 'obj'], [3, [1]]]);
    const r = rt({ m, k });
    assert.deepEqual([...r.m.keys()].map((x) => typeof x), ['string', 'object', 'number']);
    assert.equal(r.m.get(r.k), 'obj', 'a key serialized with its map keeps identity');
    const r2 = rt(m);
    assert.equal(r2.get(k), undefined, 'separately serialized: identity lost');
    assert.deepEqual(rt(new Set([1, 'a', null])), new Set([1, 'a', null]));
  });

  test('typed arrays, ArrayBuffer, DataView', () => {
    for (const C of [Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array,
      Uint32Array, Float32Array, Float64Array]) {
      const v = new C([0, 1, 2, 100]);
      const r = rt(v);
      assert.ok(r instanceof C, C.name);
      assert.deepEqual(Array.from(r), Array.from(v));
    }
    const f = rt(new Float64Array([NaN, -0, Infinity, 1e-300]));
    assert.ok(Number.isNaN(f[0]));
    assert.ok(Object.is(f[1], -0));
    assert.equal(f[2], Infinity);
    const b = rt(new BigUint64Array([2n ** 64n - 1n]));
    assert.equal(b[0], 2n ** 64n - 1n);
    assert.deepEqual(Array.from(new Uint8Array(rt(new Uint8Array([5, 6]).buffer))), [5, 6]);
    const dv = rt(new DataView(new Uint8Array([1, 2, 3, 4]).buffer, 1, 2));
    assert.equal(dv.byteOffset, 1);
    assert.equal(dv.byteLength, 2);
    assert.equal(dv.getUint8(0), 2);
    const sub = rt(new Int16Array(new Int16Array([1, 2, 3, 4]).buffer, 2, 2));
    assert.equal(sub.byteOffset, 2, 'offset kept (extension)');
    assert.deepEqual(Array.from(sub), [2, 3]);
    assert.equal(sub.buffer.byteLength, 8);
  });

  test('boxed primitives keep valueOf', () => {
    const [b, n, s, g] = rt([Object(false), Object(-0), Object('x'), Object(7n)]);
    assert.equal(typeof b, 'object');
    assert.equal(b.valueOf(), false);
    assert.ok(Object.is(n.valueOf(), -0));
    assert.equal(s.valueOf(), 'x');
    assert.equal(g.valueOf(), 7n);
  });

  test('functions become {name}', () => {
    assert.deepEqual(rt({ f() {} }), { f: { name: 'f' } });
    assert.deepEqual(rt(() => {}), { name: 'anonymous' });
  });

  test('symbols throw anywhere', () => {
    for (const v of [Symbol('s'), { a: Symbol('s') }, [Symbol('s')], new Map([[Symbol('k'), 1]]), new Set([Symbol('v')])]) {
      assert.throws(() => stringify(v), { name: 'TypeError', message: 'unable to serialize symbol' });
    }
  });
});

describe('cycles and aliases', () => {
  test('self array, A->B->C->A, diamond', () => {
    const arr = [1];
    arr.push(arr);
    const ra = rt(arr);
    assert.equal(ra[1], ra);

    const a = { n: 'a' }; const b = { n: 'b' }; const c = { n: 'c' };
    a.next = b; b.next = c; c.next = a;
    const r = rt(a);
    assert.equal(r.next.next.next, r);

    const d = { n: 'd' };
    const top = { l: { d }, r: { d } };
    const rd = rt(top);
    assert.equal(rd.l.d, rd.r.d);
  });

  test('through Map keys/values and Sets', () => {
    const m = new Map();
    m.set(m, m);
    const rm = rt(m);
    assert.equal(rm.get(rm), rm);
    const s = new Set();
    s.add(s);
    const rs = rt(s);
    assert.ok(rs.has(rs));
  });

  test('shared object under many paths is one object after decode', () => {
    const shared = { id: 999 };
    const r = rt({ a: { ref: shared }, b: { ref: shared }, c: shared, list: [shared, shared] });
    r.a.ref.id = 1;
    assert.equal(r.c.id, 1);
    assert.equal(r.list[0], r.list[1]);
    assert.equal(r.b.ref, r.c);
  });

  test('aliased atomics keep identity', () => {
    const d = new Date(0); const re = /x/; const u = new URL('https://a.b/'); const h = new Headers(); const bx = Object('s');
    const r = rt([d, d, re, re, u, u, h, h, bx, bx]);
    for (let i = 0; i < 10; i += 2) assert.equal(r[i], r[i + 1]);
  });

  test('100-node cyclic chain', () => {
    const nodes = Array.from({ length: 100 }, (_, i) => ({ i }));
    nodes.forEach((n, i) => { n.next = nodes[(i + 1) % 100]; });
    let r = rt(nodes[0]);
    const start = r;
    for (let i = 0; i < 100; i++) { assert.equal(r.i, i); r = r.next; }
    assert.equal(r, start);
  });

  test('alias ids follow first encounter of a depth-first emission', () => {
    const inner = { v: 1 };
    const x = { inner }; const y = { inner };
    assert.equal(stringify({ a: x, b: y, c: x, d: y }),
      '{"json":{"a":{"$ref":0},"b":{"$ref":2},"c":{"$ref":0},"d":{"$ref":2}},' +
      '"meta":{"aliases":{"0":{"inner":{"$ref":1}},"1":{"v":1},"2":{"inner":{"$ref":1}}}}}');
  });

  test('getters are evaluated once', () => {
    let n = 0;
    const o = { get g() { n++; return { fresh: n }; } };
    assert.deepEqual(rt(o), { g: { fresh: 1 } });
    assert.equal(n, 1);
  });
});

describe('errors', () => {
  test('stack kept; missing stack stays missing', () => {
    const e = new Error('m');
    assert.equal(rt(e).stack, e.stack);
    const n = new Error('m');
    delete n.stack;
    const r = rt(n);
    assert.equal(r.stack, undefined);
    assert.ok(!stringify(n).includes('stack'));
  });

  test('built-in subclasses keep instanceof', () => {
    for (const C of [TypeError, RangeError, ReferenceError, SyntaxError, URIError, EvalError]) {
      const r = rt(new C('x'));
      assert.ok(r instanceof C, C.name);
      assert.equal(r.name, C.name);
      assert.equal(r.message, 'x');
    }
  });

  test('cause chains, object causes, circular causes', () => {
    const r = rt(new Error('a', { cause: new Error('b', { cause: new Error('c') }) }));
    assert.equal(r.cause.cause.message, 'c');
    assert.deepEqual(rt(new Error('x', { cause: { code: 7 } })).cause, { code: 7 });
    assert.equal(rt(new Error('x', { cause: 'str' })).cause, 'str');
    const e1 = new Error('one'); const e2 = new Error('two', { cause: e1 });
    e1.cause = e2;
    const rc = rt(e1);
    assert.equal(rc.cause.cause, rc);
  });

  test('custom name and properties; unknown class falls back to Error', () => {
    const e = new Error('Invalid email');
    e.name = 'ValidationError';
    e.field = 'email';
    e.statusCode = 400;
    e.nested = { a: [1] };
    e.fn = function handler() {};
    e.nan = NaN;
    const r = rt(e);
    assert.ok(r instanceof Error);
    assert.equal(r.name, 'ValidationError');
    assert.equal(r.field, 'email');
    assert.equal(r.statusCode, 400);
    assert.deepEqual(r.nested, { a: [1] });
    assert.deepEqual(r.fn, { name: 'handler' });
    assert.ok(Number.isNaN(r.nan));
  });

  test('a class registered on globalThis keeps instanceof', () => {
    class AdminAccessError extends Error { constructor(m) { super(m); this.name = 'AdminAccessError'; } }
    globalThis.AdminAccessError = AdminAccessError;
    try {
      const r = rt(new AdminAccessError('no'));
      assert.ok(r instanceof AdminAccessError);
    } finally {
      delete globalThis.AdminAccessError;
    }
  });

  test('a non-Error global named by the wire is never constructed', () => {
    const r = parse('{"json":{"$type":"error","name":"Function","message":"return 1"},"meta":{}}');
    assert.equal(Object.getPrototypeOf(r), Error.prototype);
    assert.equal(r.name, 'Function');
  });

  test('AggregateError keeps class, errors and message (extension)', () => {
    const r = rt(new AggregateError([new Error('a'), new TypeError('b')], 'multi'));
    assert.ok(r instanceof AggregateError);
    assert.equal(r.message, 'multi');
    assert.equal(r.errors.length, 2);
    assert.ok(r.errors[1] instanceof TypeError);
  });

  test('errors inside containers', () => {
    const r = rt({ list: [new Error('x')], m: new Map([['e', new TypeError('y')]]), s: new Set([new RangeError('z')]) });
    assert.ok(r.list[0] instanceof Error);
    assert.ok(r.m.get('e') instanceof TypeError);
    assert.ok([...r.s][0] instanceof RangeError);
  });

  test('a custom property that cannot be encoded is skipped', () => {
    const e = new Error('m');
    e.sym = Symbol('s');
    e.ok = 1;
    const r = rt(e);
    assert.equal(r.ok, 1);
    assert.ok(!('sym' in r));
  });
});

describe('hostile input', () => {
  const bad = [
    ['not an object', '1'],
    ['missing json', '{"meta":{}}'],
    ['dangling $ref', '{"json":{"$ref":3},"meta":{}}'],
    ['alias body is a $ref', '{"json":{"$ref":0},"meta":{"aliases":{"0":{"$ref":0}}}}'],
    ['hole outside an array', '{"json":{"$type":"hole"},"meta":{}}'],
    ['map entry not a pair', '{"json":{"$type":"map","entries":[[1]]},"meta":{}}'],
    ['bigint not decimal', '{"json":{"$type":"bigint","value":"0x10"},"meta":{}}'],
    ['view outside its buffer', '{"json":{"$type":"arraybuffer","subtype":"Uint8Array","data":[1],"byteOffset":9,' +
      '"buffer":{"$type":"arraybuffer","subtype":"ArrayBuffer","data":[1]}},"meta":{}}'],
    ['buffer that is not an ArrayBuffer', '{"json":{"$type":"arraybuffer","subtype":"Uint8Array","data":[1],"buffer":{}},"meta":{}}'],
    ['unknown number-special', '{"json":{"$type":"number-special","value":"1"},"meta":{}}'],
  ];
  for (const [name, text] of bad) {
    test(name, () => assert.throws(() => parse(text), (e) => e instanceof TypeError || e instanceof RangeError));
  }

  test('__proto__ keys stay data, no prototype pollution', () => {
    const r = parse('{"json":{"__proto__":{"polluted":true},"a":1},"meta":{}}');
    assert.equal(Object.getPrototypeOf(r), Object.prototype);
    assert.equal(r.polluted, undefined);
    assert.deepEqual(Object.keys(r), ['__proto__', 'a']);
    assert.equal(stringify(r), '{"json":{"__proto__":{"polluted":true},"a":1},"meta":{}}');
    assert.equal({}.polluted, undefined);
  });

  test('preprocess/postprocess are the JSON-free halves', () => {
    const inter = preprocess(new Map([[1, 2]]));
    assert.deepEqual(inter, { json: { $type: 'map', entries: [[1, 2]] }, meta: {} });
    assert.deepEqual(postprocess(inter), new Map([[1, 2]]));
  });
});
