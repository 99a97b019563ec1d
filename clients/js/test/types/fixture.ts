// Type-checked (not run) by test/types.test.js: the declarations in src/*.d.ts
// must describe the getting-started client shape and reject misuse.
import {
  LmzClient, LumenizeClient, mesh, ctn, getOperationChain, LoginRequiredError, ConnectionLostError, MessageTooLargeError,
  type Continuation, type ConnectionState, type CallContext, type OperationChain,
} from '@lmz/client';
import { stringify, parse, preprocess, postprocess, type LmzIntermediate } from '@lmz/client/structured-clone';

interface DocumentDO {
  update(content: string): void;
  subscribe(): string;
}

export class EditorClient extends LmzClient {
  static meshMethods = ['handleContentUpdate'];
  readonly #documents = new Map<string, (content: string) => void>();

  openDocument(documentId: string, onContent: (content: string) => void) {
    this.#documents.set(documentId, onContent);
    this.lmz.call('DOCUMENT_DO', documentId, this.ctn<DocumentDO>().subscribe(),
      this.ctn().handleSubscribeResult(documentId, this.ctn().$result));
    return {
      saveContent: (content: string) => this.lmz.call('DOCUMENT_DO', documentId, this.ctn<DocumentDO>().update(content)),
    };
  }

  onSubscriptionRequired = () => {};

  handleSubscribeResult(documentId: string, result: string | Error) {
    if (result instanceof Error) return;
    this.#documents.get(documentId)?.(result);
  }

  handleContentUpdate(documentId: string, content: string) {
    const ctx: CallContext = this.lmz.callContext;
    void ctx.callChain[0]?.instanceName;
    this.#documents.get(documentId)?.(content);
  }

  override onBeforeCall(): void {
    super.onBeforeCall();
  }
}
mesh(EditorClient.prototype.handleContentUpdate, (instance: EditorClient) => void instance);

const client = new EditorClient({
  baseUrl: 'https://localhost',
  refresh: async () => ({ access_token: 'x' }),
  onConnectionStateChange: (s: ConnectionState) => void s,
  onLoginRequired: (e: LoginRequiredError) => void e.code,
});
const doc = client.openDocument('doc-1', (c) => void c);
doc.saveContent('The quick brown fox');
client[Symbol.dispose]();

const alias: typeof LmzClient = LumenizeClient;
void alias;

async function awaitable(): Promise<number> {
  const n = await client.callRaw<number>('COUNTER', 'c1', ctn().increment(1));
  const chain: OperationChain | undefined = getOperationChain(ctn().a().b);
  void chain;
  const typed: Continuation<DocumentDO> = ctn<DocumentDO>();
  typed.update('text');
  // @ts-expect-error wrong argument type for a typed continuation
  typed.update(42);
  // @ts-expect-error not a method of DocumentDO
  typed.remove();
  try { await client.callRaw('A', 'a', ctn().x()); } catch (e) { if (e instanceof ConnectionLostError) void e.callId; }
  try { await client.callRaw('A', 'a', ctn().x()); } catch (e) { if (e instanceof MessageTooLargeError) void [e.size, e.limit, e.code, e.reason]; }
  return n;
}
void awaitable;

const inter: LmzIntermediate = preprocess(new Map([[1, 2]]));
const back = postprocess<Map<number, number>>(inter);
const text: string = stringify(back);
const again = parse<Map<number, number>>(text);
void again.get(1);

// @ts-expect-error call() needs a continuation, not a string
client.call('A', 'a', 'not a continuation');
