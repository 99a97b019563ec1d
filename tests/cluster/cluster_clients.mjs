// Clients on different nodes of a 3-node cluster (run by cluster_clients.sh):
// alice connects to node 1, bob to node 2; for documents owned by every
// node, alice's update reaches bob through bob's gateway actor, which lives
// on node 2 (the node of his socket): the document's push is forwarded there.
import { LmzClient, ctn } from '../../clients/js/src/index.js';
import { execFileSync } from 'node:child_process';

const { LMZ, DIR, HTTP1, HTTP2, NODE1 } = process.env;
const tok = (sub) => execFileSync(LMZ, ['token', 'mint', '--data', `${DIR}/node1`, '--sub', sub]).toString().trim();
const got = [];
class Editor extends LmzClient {
  static meshMethods = ['handleContentUpdate', 'handleSpellFindings'];
  handleContentUpdate(doc, content) { if (this.who === 'bob') got.push(content); }
  handleSpellFindings() {}
}
const a = new Editor({ baseUrl: `http://${HTTP1}`, accessToken: tok('alice') });
const b = new Editor({ baseUrl: `http://${HTTP2}`, accessToken: tok('bob') });
a.who = 'alice';
b.who = 'bob';
const deadline = Date.now() + 30000;
const wait = async (f, what) => {
  while (!f()) {
    if (Date.now() > deadline) throw new Error(`timeout waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};
let passed = 0, failed = 0;
try {
  await wait(() => a.connectionState === 'connected' && b.connectionState === 'connected', 'connections');
  const owners = new Set();
  for (let i = 1; i <= 12; i++) {
    const doc = `xdoc-${i}`;
    await a.callRaw('DOCUMENT_DO', doc, ctn().subscribe());
    await b.callRaw('DOCUMENT_DO', doc, ctn().subscribe());
    const loc = execFileSync(LMZ, ['locate', '--node', NODE1, '--key-file', `${DIR}/cluster.key`, 'DOCUMENT_DO', doc]).toString();
    owners.add(loc.match(/"node":(\d+)/)[1]);
    await a.callRaw('DOCUMENT_DO', doc, ctn().update(`hello ${doc}`));
    await wait(() => got.includes(`hello ${doc}`), `bob's copy of ${doc}`);
  }
  console.log(`ok - bob (node 2) got alice's (node 1) updates from documents on nodes ${[...owners].sort()}`);
  passed++;
  if (owners.size >= 2) { console.log('ok - the documents spread over several nodes'); passed++; }
  else { console.log('not ok - all documents on one node'); failed++; }
} catch (e) {
  console.log(`not ok - ${e.message}`);
  failed++;
}
a.disconnect();
b.disconnect();
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
