// Continuations: recording (behaviour doc 3.1), result substitution (3.4),
// execution with mesh-callable checks (1.5, 3.3, DESIGN.md 9).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  ctn, getOperationChain, continuationFromChain, isNestedOperationMarker, replaceNestedOperationMarkers,
  executeOperationChain, validateOperationChain, mesh, meshFn, isMeshCallable, getMeshGuard,
} from '../src/ocan.js';
import { stringify } from '../src/structured-clone.js';

const chainOf = (c) => getOperationChain(c);

describe('recording', () => {
  test('chaining', () => {
    assert.deepEqual(chainOf(ctn().admin().forceReset()), [
      { type: 'get', key: 'admin' }, { type: 'apply', args: [] },
      { type: 'get', key: 'forceReset' }, { type: 'apply', args: [] },
    ]);
  });

  test('nested continuations become markers', () => {
    assert.deepEqual(chainOf(ctn().add(ctn().add(1, 10), ctn().add(100, 1000))), [
      { type: 'get', key: 'add' },
      { type: 'apply', args: [
        { __isNestedOperation: true, __operationChain: [{ type: 'get', key: 'add' }, { type: 'apply', args: [1, 10] }] },
        { __isNestedOperation: true, __operationChain: [{ type: 'get', key: 'add' }, { type: 'apply', args: [100, 1000] }] },
      ] },
    ]);
  });

  test('$result is a plain get, a marker as an argument', () => {
    assert.deepEqual(chainOf(ctn().$result), [{ type: 'get', key: '$result' }]);
    assert.deepEqual(chainOf(ctn().handleResult('doc-1', ctn().$result, 'src')), [
      { type: 'get', key: 'handleResult' },
      { type: 'apply', args: ['doc-1', { __isNestedOperation: true, __operationChain: [{ type: 'get', key: '$result' }] }, 'src'] },
    ]);
  });

  test('only top-level arguments become markers at record time', () => {
    const [arg] = chainOf(ctn().f([ctn().g()]))[1].args;
    assert.equal(typeof arg[0], 'function');
  });

  test('symbol keys are not recorded; a continuation is reusable', () => {
    const c = ctn();
    assert.equal(c[Symbol.iterator], undefined);
    const base = c.doc;
    const a = base.set(1);
    const b = base.set(2);
    assert.deepEqual(chainOf(a)[2].args, [1]);
    assert.deepEqual(chainOf(b)[2].args, [2]);
    assert.deepEqual(chainOf(base), [{ type: 'get', key: 'doc' }]);
  });

  test('non-continuations have no chain; continuationFromChain wraps one', () => {
    assert.equal(getOperationChain({}), undefined);
    assert.equal(getOperationChain(() => {}), undefined);
    const chain = [{ type: 'get', key: 'x' }];
    assert.deepEqual(chainOf(continuationFromChain(chain).y()), [...chain, { type: 'get', key: 'y' }, { type: 'apply', args: [] }]);
  });

  test('a chain serializes as the observed call frame chain', () => {
    const chain = chainOf(ctn().update(new Map([['k', new Date(0)]]), undefined));
    assert.equal(stringify(chain), '{"json":[{"type":"get","key":"update"},{"type":"apply","args":[{"$type":"map",' +
      '"entries":[["k",{"$type":"date","iso":"1970-01-01T00:00:00.000Z"}]]},{"$type":"undefined"}]}],"meta":{}}');
  });
});

describe('replaceNestedOperationMarkers', () => {
  test('explicit placement', () => {
    const out = replaceNestedOperationMarkers(chainOf(ctn().handleResult('doc-1', ctn().$result, 'src')), 42);
    assert.deepEqual(out[1], { type: 'apply', args: ['doc-1', 42, 'src'] });
  });
  test('last-argument convention', () => {
    const out = replaceNestedOperationMarkers(chainOf(ctn().handleResponse({ userId: '1' })), 'R');
    assert.deepEqual(out[1], { type: 'apply', args: [{ userId: '1' }, 'R'] });
  });
  test('only the last apply is rewritten; the input is not mutated', () => {
    const chain = chainOf(ctn().a(ctn().$result).b(ctn().$result));
    const out = replaceNestedOperationMarkers(chain, 7);
    assert.ok(isNestedOperationMarker(out[1].args[0]));
    assert.deepEqual(out[3].args, [7]);
    assert.ok(isNestedOperationMarker(chain[3].args[0]));
  });
});

class Target {
  constructor() { this.calls = []; this.secret = 's3cret'; }
  add(a, b) { this.calls.push(['add', a, b]); return a + b; }
  echo(...args) { return args; }
  admin() { this.calls.push(['admin']); return { forceReset: () => 'reset' }; }
  hidden() { return 'no'; }
  async later(x) { await null; return x * 2; }
}
mesh(Target.prototype.add);
mesh(Target.prototype.echo);
mesh(Target.prototype.admin);
mesh(Target.prototype.later);

describe('execution', () => {
  test('nesting: add(add(1,10), add(100,1000)) = 1111, left to right', async () => {
    const t = new Target();
    assert.equal(await executeOperationChain(chainOf(ctn().add(ctn().add(1, 10), ctn().add(100, 1000))), t), 1111);
    assert.deepEqual(t.calls, [['add', 1, 10], ['add', 100, 1000], ['add', 11, 1100]]);
  });

  test('chained call: intermediate methods run once', async () => {
    const t = new Target();
    assert.equal(await executeOperationChain(chainOf(ctn().admin().forceReset()), t), 'reset');
    assert.deepEqual(t.calls, [['admin']]);
  });

  test('async methods are awaited', async () => {
    assert.equal(await executeOperationChain(chainOf(ctn().later(21)), new Target()), 42);
  });

  test('unmarked method is not mesh-callable', async () => {
    await assert.rejects(executeOperationChain(chainOf(ctn().hidden()), new Target()), {
      message: "Method 'hidden' is not mesh-callable. Add the @mesh decorator to allow remote calls.",
    });
  });

  test('a chain without a call does not read properties (no bypass)', async () => {
    await assert.rejects(executeOperationChain(chainOf(ctn().secret), new Target()), /Method 'secret' is not mesh-callable/);
    await assert.rejects(executeOperationChain([], new Target()), /not mesh-callable/);
  });

  test('prototype tricks are rejected', async () => {
    const c = chainOf(ctn().constructor.constructor('return 1'));
    await assert.rejects(executeOperationChain(c, new Target()), /not mesh-callable/);
  });

  test('without requireMeshDecorator, local handlers run', async () => {
    assert.equal(await executeOperationChain(chainOf(ctn().hidden()), new Target(), { requireMeshDecorator: false }), 'no');
  });

  test('guards run with the instance; a throw rejects with that error', async () => {
    class G {
      constructor(ok) { this.ok = ok; }
      update(v) { return `updated ${v}`; }
    }
    mesh(G.prototype.update, (instance) => {
      if (!instance.ok) throw new Error('Must be subscribed to edit');
    });
    assert.equal(await executeOperationChain(chainOf(ctn().update(1)), new G(true)), 'updated 1');
    await assert.rejects(executeOperationChain(chainOf(ctn().update(1)), new G(false)), { message: 'Must be subscribed to edit' });
  });

  test('static meshMethods (array and guard map) mark entry points', async () => {
    class S {
      static meshMethods = ['a'];
      a() { return 'A'; }
      b() { return 'B'; }
    }
    class T2 extends S {
      static meshMethods = { b: (i) => { if (i.block) throw new Error('blocked'); } };
    }
    assert.equal(await executeOperationChain(chainOf(ctn().a()), new S()), 'A');
    await assert.rejects(executeOperationChain(chainOf(ctn().b()), new S()), /not mesh-callable/);
    const t = new T2();
    assert.equal(await executeOperationChain(chainOf(ctn().a()), t), 'A', 'inherited list');
    assert.equal(await executeOperationChain(chainOf(ctn().b()), t), 'B');
    t.block = true;
    await assert.rejects(executeOperationChain(chainOf(ctn().b()), t), { message: 'blocked' });
  });

  test('meshFn marks functions stored in properties', async () => {
    const obj = { deep: { method: meshFn((x) => x + 1) } };
    assert.ok(isMeshCallable(obj.deep.method));
    assert.equal(await executeOperationChain(chainOf(ctn().deep.method(1)), obj), 2);
    assert.equal(getMeshGuard(obj.deep.method), undefined);
    assert.equal(typeof mesh()(() => 1), 'function');
  });

  test('markers are resolved in arrays and as direct object values, with the same checks', async () => {
    const t = new Target();
    // only top-level arguments become markers at record time; deeper ones are written by hand
    const m = (c) => ({ __isNestedOperation: true, __operationChain: chainOf(c) });
    const r = await executeOperationChain(chainOf(ctn().echo([m(ctn().add(1, 2)), [m(ctn().add(3, 4))]], { v: m(ctn().add(5, 6)) })), t);
    assert.deepEqual(r, [[3, [7]], { v: 11 }]);
    await assert.rejects(executeOperationChain(chainOf(ctn().echo(ctn().hidden())), t), /'hidden' is not mesh-callable/);
  });

  test('argument identity is kept when there is no marker', async () => {
    const arg = { x: 1 };
    const [got] = await executeOperationChain(chainOf(ctn().echo(arg)), new Target());
    assert.equal(got, arg);
  });

  test('circular arguments work', async () => {
    const a = { n: 1 };
    a.self = a;
    const [got] = await executeOperationChain(chainOf(ctn().echo(a)), new Target());
    assert.equal(got.self, got);
  });

  test('limits: depth 51, 101 args, nesting, invalid ops', async () => {
    const deep = Array.from({ length: 51 }, () => ({ type: 'get', key: 'x' }));
    await assert.rejects(executeOperationChain(deep, new Target()), { message: 'Operation chain too deep: 51 > 50' });
    const many = [{ type: 'get', key: 'echo' }, { type: 'apply', args: Array(101).fill(0) }];
    await assert.rejects(executeOperationChain(many, new Target()), { message: 'Too many arguments: 101 > 100' });
    let nested = chainOf(ctn().add(1, 1));
    for (let i = 0; i < 20; i++) nested = chainOf(ctn().echo({ __isNestedOperation: true, __operationChain: nested }));
    await assert.rejects(executeOperationChain(nested, new Target()), /Nested operations too deep/);
    assert.throws(() => validateOperationChain('x'), { message: 'Invalid operation chain: operations must be an array' });
    assert.throws(() => validateOperationChain([{ type: 'call' }]), /operation 0 must be/);
  });

  test('calling a non-function after the entry is a TypeError', async () => {
    class R { get() { return { v: 1 }; } }
    mesh(R.prototype.get);
    await assert.rejects(executeOperationChain(chainOf(ctn().get().v()), new R()), TypeError);
    await assert.rejects(executeOperationChain(chainOf(ctn().get().missing.x), new R()), TypeError);
  });
});
