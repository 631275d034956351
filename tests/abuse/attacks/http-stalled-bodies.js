// Request bodies that never arrive, against the chat app: connections that announce a
// body (sign-in, registration, a long-poll POST) and send only its first bytes. Each
// holds a connection slot (bounded per address and in all) until the body timeout
// (1 s here, BODY_TIMEOUT_MS; 15 s by default), then gets 408 and is closed; the
// server's memory stays flat and a user at another address chats meanwhile.
import net from "node:net";
import { Tally, chatsOnce } from "../lib/raw.js";

const BODY_TIMEOUT_MS = 1000;
const CONNECTIONS = 400;
const ADDRESSES = 20;
const WAIT_MS = BODY_TIMEOUT_MS * 5;

/** Opens a connection, sends `head` and a few bytes of its body; resolves with [status, ms until closed], or [status, null] if still open after WAIT_MS. */
function stalled(ctx, localAddress, head) {
  const { hostname, port } = new URL(ctx.url);
  return new Promise((resolve) => {
    const started = Date.now();
    let answer = "";
    const socket = net.connect({ host: hostname, port: Number(port), localAddress });
    const status = () => /^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? "none";
    const timer = setTimeout(() => {
      socket.destroy();
      resolve([status(), null]);
    }, WAIT_MS);
    socket.on("error", () => {});
    socket.on("data", (d) => (answer += d.toString("latin1")));
    socket.once("close", () => {
      clearTimeout(timer);
      resolve([status(), Date.now() - started]);
    });
    socket.once("connect", () => socket.write(head + '{"username":'));
  });
}

export default {
  name: "http-stalled-bodies",
  sends: `${CONNECTIONS} connections from ${ADDRESSES} addresses that announce a 4 KB body (sign-in, registration, long-poll POST) and send 12 bytes of it`,
  target: "chat",
  env: { BODY_TIMEOUT_MS: String(BODY_TIMEOUT_MS) },
  bounds: { rssGrowthMiB: 60, threads: 40, legitMs: 15000 },
  timeoutMs: 40000,
  async attack(ctx) {
    const { host } = new URL(ctx.url);
    const post = (path, type) => `POST ${path} HTTP/1.1\r\nHost: ${host}\r\nContent-Type: ${type}\r\nContent-Length: 4096\r\n\r\n`;
    // A long-poll session's token, so the POST reaches the body read.
    const session = await fetch(`${ctx.url}/socket/longpoll?vsn=2.0.0`).then((r) => r.json());
    const heads = [
      ["sign-in", post("/api/login", "application/json")],
      ["registration", post("/api/register", "application/json")],
      ["long-poll POST", post(`/socket/longpoll?vsn=2.0.0&token=${encodeURIComponent(session.token)}`, "application/json")],
    ];
    const runs = Array.from({ length: CONNECTIONS }, (_, i) => {
      const [kind, head] = heads[i % heads.length];
      return stalled(ctx, ctx.addr(i % ADDRESSES), head).then(([status, ms]) => [kind, status, ms]);
    });
    const results = await Promise.all(runs);
    const outcomes = new Tally();
    let slowest = 0;
    for (const [kind, status, ms] of results) {
      outcomes.add(`${kind} ${status}${ms === null ? " still open" : ""}`);
      if (ms !== null) slowest = Math.max(slowest, ms);
    }
    ctx.log(`outcomes: ${outcomes}`);
    ctx.log(`slowest close: ${slowest} ms (body timeout ${BODY_TIMEOUT_MS} ms)`);
    const open = results.filter(([, , ms]) => ms === null).length;
    if (open > 0) throw new Error(`${open} connections still open after ${WAIT_MS} ms`);
    const not408 = results.filter(([, status]) => status !== "408").length;
    if (not408 > 0) throw new Error(`${not408} stalled bodies were not answered 408`);
  },
  legit: (ctx) => chatsOnce(ctx, { localAddress: ctx.addr(240) }),
};
