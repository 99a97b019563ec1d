// The hand-written declarations: test/types/fixture.ts (the getting-started
// client shape, plus @ts-expect-error misuse) must type-check with tsc, and
// every runtime export must be declared.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import * as api from '../src/index.js';
import * as sc from '../src/structured-clone.js';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));

test('tsc accepts the declarations and the fixture', () => {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  try {
    execFileSync(process.execPath, [tsc, '-p', here('./types/tsconfig.json')], { encoding: 'utf8', timeout: 120_000 });
  } catch (err) {
    assert.fail(`tsc failed:\n${err.stdout ?? ''}${err.stderr ?? ''}`);
  }
});

function declared(dts) {
  const names = new Set();
  for (const m of dts.matchAll(/export (?:declare )?(?:function|class|const|type|interface) (\w+)/g)) names.add(m[1]);
  for (const m of dts.matchAll(/export (?:type )?\{([^}]*)\}/g)) {
    for (const part of m[1].split(',')) {
      const name = part.trim().split(/\s+as\s+/).pop().replace(/^type\s+/, '').trim();
      if (name) names.add(name);
    }
  }
  return names;
}

test('every runtime export is declared', () => {
  const index = declared(readFileSync(here('../src/index.d.ts'), 'utf8'));
  for (const name of Object.keys(api)) assert.ok(index.has(name), `index.d.ts lacks ${name}`);
  const scDecl = declared(readFileSync(here('../src/structured-clone.d.ts'), 'utf8'));
  for (const name of Object.keys(sc)) assert.ok(scDecl.has(name), `structured-clone.d.ts lacks ${name}`);
});

test('package exports resolve to the sources', async () => {
  const pkg = JSON.parse(readFileSync(here('../package.json'), 'utf8'));
  assert.equal(pkg.name, '@lmz/client');
  assert.equal(pkg.type, 'module');
  assert.deepEqual(Object.keys(pkg.dependencies), ['ws']);
  const self = await import('@lmz/client');
  const selfSc = await import('@lmz/client/structured-clone');
  assert.equal(self.LmzClient, api.LmzClient);
  assert.equal(selfSc.stringify, sc.stringify);
});
