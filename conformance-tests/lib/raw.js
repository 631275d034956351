// A raw WebSocket client that speaks frames directly (V1 objects, V2 arrays, binary),
// with a queue of received frames to wait on. Never sleeps to wait for something:
// "nothing else arrived" is proven by a heartbeat whose reply comes first (a socket's
// frames are processed in order).
import WebSocket from "ws";

/** See PATIENCE_MS in phx.js: an upper bound only a broken server reaches. */
const PATIENCE_MS = 20000;

let seq = 1000;
export const nextRef = () => String(seq++);

export class Raw {
  constructor(ws) {
    this.ws = ws;
    this.frames = [];
    this.waiters = [];
    this.closeInfo = null;
    ws.on("message", (data, isBinary) => {
      const frame = isBinary ? { binary: Buffer.from(data) } : JSON.parse(data.toString("utf8"));
      this.frames.push(frame);
      this.wake();
    });
    ws.on("close", (code, reason) => {
      this.closeInfo = { code, reason: reason.toString() };
      this.wake();
    });
    ws.on("error", () => {});
  }

  /** Opens `<base><path>/websocket?<query>`; rejects with {status} if the upgrade is refused. */
  static open(base, { path = "/ws", vsn = "2.0.0", query = "", headers = {}, protocols } = {}) {
    const q = [query, vsn === null ? "" : `vsn=${vsn}`].filter(Boolean).join("&");
    const url = `${base}${path}/websocket${q ? "?" + q : ""}`;
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, protocols, { headers, perMessageDeflate: false });
      const raw = new Raw(ws);
      raw.v1 = !(vsn && vsn.startsWith("2."));
      ws.once("open", () => resolve(raw));
      ws.once("unexpected-response", (_req, res) => {
        reject(Object.assign(new Error(`upgrade refused with ${res.statusCode}`), { status: res.statusCode }));
        ws.terminate();
      });
      ws.once("error", (e) => reject(e));
    });
  }

  wake() {
    for (const w of this.waiters.splice(0)) w();
  }

  send(frame) {
    this.ws.send(typeof frame === "string" ? frame : JSON.stringify(frame));
  }

  sendBinary(bytes) {
    this.ws.send(Buffer.from(bytes), { binary: true });
  }

  sendRawText(buffer) {
    this.ws.send(Buffer.from(buffer), { binary: false });
  }

  /** Waits for (and removes) the first received frame matching `pred`. */
  async next(pred = () => true, timeout = PATIENCE_MS) {
    const deadline = Date.now() + timeout;
    for (;;) {
      const i = this.frames.findIndex(pred);
      if (i >= 0) return this.frames.splice(i, 1)[0];
      if (this.closeInfo) throw new Error(`socket closed (${this.closeInfo.code}) while waiting for a frame`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no matching frame within ${timeout} ms; got ${JSON.stringify(this.frames)}`);
      await new Promise((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  /** Waits for the close and returns {code, reason}. */
  async closed(timeout = PATIENCE_MS) {
    const deadline = Date.now() + timeout;
    while (!this.closeInfo) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error("socket did not close in time");
      await new Promise((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
    return this.closeInfo;
  }

  /**
   * Sends a heartbeat and returns every frame that arrived before its reply (removed from
   * the queue). Frames the server produced for earlier messages are written before it.
   */
  async drain() {
    const ref = nextRef();
    this.send(this.v1 ? { topic: "phoenix", event: "heartbeat", payload: {}, ref } : [null, ref, "phoenix", "heartbeat", {}]);
    const isReply = (f) => (Array.isArray(f) ? f[1] === ref && f[2] === "phoenix" : f.ref === ref && f.topic === "phoenix");
    await this.next(isReply);
    return this.frames.splice(0);
  }

  /** Joins `topic` with a fresh join_ref (V2); returns the join_ref after the ok reply. */
  async join(topic, payload = {}) {
    const ref = nextRef();
    this.send([ref, ref, topic, "phx_join", payload]);
    const reply = await this.next((f) => f[1] === ref && f[3] === "phx_reply");
    if (reply[4].status !== "ok") throw new Error(`join ${topic} failed: ${JSON.stringify(reply)}`);
    return ref;
  }

  /** Sends a V2 push and waits for its reply frame. */
  async push(joinRef, topic, event, payload = {}) {
    const ref = nextRef();
    this.send([joinRef, ref, topic, event, payload]);
    return this.next((f) => Array.isArray(f) && f[1] === ref && f[3] === "phx_reply");
  }

  close(code = 1000) {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(code);
  }
}

/** Resolves with the HTTP status when a WebSocket upgrade is refused. */
export async function refusedStatus(base, opts) {
  try {
    const raw = await Raw.open(base, opts);
    raw.close();
    return 101;
  } catch (e) {
    if (e.status) return e.status;
    throw e;
  }
}

export const ok = (response = {}) => ({ response, status: "ok" });
export const unmatched = { response: { reason: "unmatched topic" }, status: "error" };
