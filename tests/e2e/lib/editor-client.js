// The tutorial's EditorClient (getting started, Step 3) on @lmz/client, for
// Node.js tests: records what the mesh pushes so tests can wait for it.
import WebSocket from 'ws';
import { LmzClient } from '../../../clients/js/src/index.js';
import { HTTP, waitFor } from './harness.js';

export { LmzClient, WebSocket };

export class EditorClient extends LmzClient {
  static meshMethods = ['handleContentUpdate', 'handleSpellFindings'];

  #documents = new Map();
  updates = []; // [documentId, content]
  findings = []; // [documentId, findings]
  subscribeResults = []; // [documentId, result]
  subscriptionsRequired = 0;

  openDocument(documentId, callbacks = {}) {
    this.#documents.set(documentId, callbacks);
    this.#subscribe(documentId);
    return {
      saveContent: (content) => this.lmz.call('DOCUMENT_DO', documentId, this.ctn().update(content)),
      close: () => this.#documents.delete(documentId),
    };
  }

  #subscribe(documentId) {
    this.lmz.call('DOCUMENT_DO', documentId, this.ctn().subscribe(),
      this.ctn().handleSubscribeResult(documentId, this.ctn().$result));
  }

  onSubscriptionRequired = () => {
    this.subscriptionsRequired++;
    for (const documentId of this.#documents.keys()) this.#subscribe(documentId);
  };

  handleSubscribeResult(documentId, result) {
    this.subscribeResults.push([documentId, result]);
  }

  handleContentUpdate(documentId, content) {
    this.updates.push([documentId, content]);
  }

  handleSpellFindings(documentId, findings) {
    this.findings.push([documentId, findings]);
  }
}

/** A client of `cls` connected with `token` (waits for 'connected'). */
export async function connectedClient(cls, token, extra = {}) {
  const c = new cls({ baseUrl: HTTP, accessToken: token, WebSocket, heartbeatIntervalMs: 0,
    logger: { warn() {}, error() {} }, ...extra });
  await waitFor(() => c.connectionState === 'connected', { what: 'client connected' });
  return c;
}
