// Raw TCP clients for rows that must control every byte: a WebSocket upgrade done by
// hand (so a row can then send half a frame, or nothing), and masked client frames.
import net from "node:net";
import tls from "node:tls";
import crypto from "node:crypto";

/**
 * Opens a TCP (or, with `ca`, TLS) connection to `url` from `localAddress` and upgrades
 * `path` to a WebSocket. Resolves with {socket, status}: status 101 and the open socket,
 * or the refusal's status (0 when the server closed without an answer) and a destroyed
 * socket. Never rejects.
 */
export function upgrade(url, path, { localAddress, ca } = {}) {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const options = { host: hostname, port: Number(port), localAddress };
    const socket = ca
      ? tls.connect({ ...options, ca, servername: undefined, ALPNProtocols: ["http/1.1"] })
      : net.connect(options);
    let head = "";
    let settled = false;
    const finish = (status) => {
      if (settled) return;
      settled = true;
      socket.off("data", onData);
      if (status !== 101) socket.destroy();
      resolve({ socket, status });
    };
    const onData = (d) => {
      head += d.toString("latin1");
      if (!head.includes("\r\n\r\n")) return;
      finish(Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0));
    };
    socket.on("data", onData);
    socket.on("error", () => finish(0));
    socket.on("close", () => finish(0));
    socket.once(ca ? "secureConnect" : "connect", () =>
      socket.write(
        `GET ${path}?vsn=2.0.0 HTTP/1.1\r\nHost: ${hostname}:${port}\r\n` +
          `Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n` +
          `Sec-WebSocket-Key: ${crypto.randomBytes(16).toString("base64")}\r\n\r\n`,
      ),
    );
  });
}

/** A masked client frame (`first`: FIN and opcode byte) with `payload`. */
export function maskedFrame(first, payload) {
  const mask = crypto.randomBytes(4);
  const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]));
  let head;
  if (payload.length < 126) head = Buffer.from([first, 0x80 | payload.length]);
  else if (payload.length < 65536) {
    head = Buffer.alloc(4);
    head[0] = first;
    head[1] = 0x80 | 126;
    head.writeUInt16BE(payload.length, 2);
  } else {
    head = Buffer.alloc(10);
    head[0] = first;
    head[1] = 0x80 | 127;
    head.writeBigUInt64BE(BigInt(payload.length), 2);
  }
  return Buffer.concat([head, mask, masked]);
}

/** A Phoenix V2 message as a masked text frame. */
export function phxFrame(message) {
  return maskedFrame(0x81, Buffer.from(JSON.stringify(message)));
}

/** The header (and mask) of a masked text frame that declares `length` payload bytes. */
export function declaredFrameHead(length) {
  const head = Buffer.alloc(14);
  head[0] = 0x81;
  head[1] = 0x80 | 127;
  head.writeBigUInt64BE(BigInt(length), 2);
  crypto.randomBytes(4).copy(head, 10);
  return head;
}

/** Resolves after `ms`, or at once when `signal` aborts. */
export function pause(ms, signal) {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** Counts values into a Map and renders it as `k: n, k: n`. */
export class Tally extends Map {
  add(key) {
    this.set(key, (this.get(key) ?? 0) + 1);
  }
  toString() {
    return [...this].sort().map(([k, n]) => `${k}: ${n}`).join(", ");
  }
}

/**
 * The legitimate user of the connection rows: connects (from `localAddress`), joins a
 * room and gets its own `new_msg` back as a broadcast (the chat app and the conformance
 * server both broadcast `new_msg` to the room).
 */
export async function chatsOnce(ctx, { localAddress, options = {}, room = "room:legit" } = {}) {
  const socket = ctx.socket({}, { localAddress, ...options });
  try {
    const { channel, ok, reply } = await ctx.join(socket, room, { username: "legit" });
    if (!ok) throw new Error(`join refused: ${JSON.stringify(reply)}`);
    let got = null;
    channel.on("new_msg", (m) => (got = m));
    const pushed = await ctx.push(channel, "new_msg", { body: "still here" });
    if (pushed.status !== "ok") throw new Error(`new_msg answered ${JSON.stringify(pushed)}`);
    await ctx.until(() => got !== null, "the message's broadcast", 30000);
  } finally {
    socket.disconnect();
  }
}
