// A scripted stand-in for WebSocket: the test opens it, feeds it frames and
// closes it "from the server"; everything the client sends is recorded.
export function mockWebSocketClass() {
  const instances = [];
  class MockWebSocket {
    static CONNECTING = 0;
    static OPEN = 1;
    static CLOSING = 2;
    static CLOSED = 3;
    static instances = instances;

    constructor(url, protocols) {
      this.url = url;
      this.protocols = protocols;
      this.readyState = 0;
      this.sent = [];
      this.closeCalls = [];
      this.onopen = null;
      this.onclose = null;
      this.onerror = null;
      this.onmessage = null;
      instances.push(this);
    }

    send(data) {
      if (this.readyState !== 1) throw new Error('InvalidStateError: socket not open');
      this.sent.push(data);
    }

    close(code, reason) {
      this.closeCalls.push([code, reason]);
      this.readyState = 3;
    }

    // -- driven by the test ---------------------------------------------------
    open() {
      this.readyState = 1;
      this.onopen?.({ type: 'open' });
    }

    /** open + connection_status */
    accept(subscriptionRequired = true) {
      this.open();
      this.receive({ type: 'connection_status', subscriptionRequired });
    }

    receive(frame) {
      this.onmessage?.({ data: typeof frame === 'string' ? frame : JSON.stringify(frame) });
    }

    serverClose(code = 1006, reason = '') {
      this.readyState = 3;
      this.onclose?.({ code, reason });
    }

    /** JSON frames sent (heartbeats excluded). */
    frames(type) {
      return this.sent.filter((s) => s !== 'lmz:ping').map((s) => JSON.parse(s))
        .filter((f) => type === undefined || f.type === type);
    }
  }
  return MockWebSocket;
}

/** An unsigned JWT-shaped token with the given payload. */
export function makeJwt(payload) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${b64({ alg: 'EdDSA', typ: 'JWT' })}.${b64(payload)}.c2ln`;
}

/** Lets pending promise callbacks and I/O callbacks run. */
export function flush() {
  return new Promise((resolve) => setImmediate(resolve));
}

export const silentLogger = { warn() {}, error() {} };

/** A logger that records what it is given. */
export function recordingLogger() {
  const lines = [];
  return { lines, warn: (...a) => lines.push(['warn', ...a]), error: (...a) => lines.push(['error', ...a]) };
}
