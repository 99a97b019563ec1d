// tests/integration/install_call.mjs BASE [TOKEN] - the install tests' Node
// client (tests/integration/install.sh, tests/install/root.sh): copied into
// a fresh project that installed the packed @lmz/client, it calls the
// skeleton's durable object and worker and prints {"total":..,"hello":..}.
// Without TOKEN it takes one from BASE/_lmz/dev-token (lmzd --dev).
import { LmzClient, ctn } from '@lmz/client';

const [base, given] = process.argv.slice(2);
const accessToken = given ||
  (await (await fetch(`${base}/_lmz/dev-token`)).json()).access_token;
const client = new LmzClient({ baseUrl: base, accessToken });
try {
  const total = await client.lmz.callRaw('COUNTER_DO', 'node', ctn().increment(7));
  const hello = await client.lmz.callRaw('HELLO_WORKER', null, ctn().hello('Node'));
  console.log(JSON.stringify({ total, hello }));
} finally {
  client[Symbol.dispose]();
}
