// bench/peers/workerd/counter.js - the workerd peer of lmz's COUNTER_DO
// (bench scenarios hot-actor and peers). A SQLite-backed Durable Object
// using the synchronous KV API (ctx.storage.kv.get/put); the same
// operations as lmz's counter: a durable increment and an echo.
//   WebSocket /<name>   (hibernation API: ctx.acceptWebSocket)
//     "i"  -> the new count (the put is confirmed before the reply leaves:
//             workerd's output gate holds outgoing messages until storage
//             has written)
//     else -> the message itself (echo, no storage)
//   HTTP GET /<name>/inc -> the new count; /<name>/echo -> "echo"
import { DurableObject } from "cloudflare:workers";

export class Counter extends DurableObject {
  inc() {
    const v = (this.ctx.storage.kv.get("n") ?? 0) + 1;
    this.ctx.storage.kv.put("n", v);
    return v;
  }
  async fetch(req) {
    if (req.headers.get("Upgrade") === "websocket") {
      const pair = new WebSocketPair();
      this.ctx.acceptWebSocket(pair[1]);
      return new Response(null, { status: 101, webSocket: pair[0] });
    }
    if (new URL(req.url).pathname.endsWith("/inc"))
      return new Response(String(this.inc()));
    return new Response("echo");
  }
  webSocketMessage(ws, msg) {
    ws.send(msg === "i" ? String(this.inc()) : msg);
  }
}

export default {
  fetch(req, env) {
    const name = new URL(req.url).pathname.split("/")[1] || "default";
    return env.COUNTER.get(env.COUNTER.idFromName(name)).fetch(req);
  },
};
