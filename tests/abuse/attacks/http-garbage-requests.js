// Malformed and oversized HTTP requests against the chat app: each gets an error status
// or a closed connection, the server keeps running, and a guest can still join a room
// and post a message meanwhile.
import net from "node:net";

const REQUESTS = 600;
const BATCH = 100;
// Kind 5 (a chunk that never arrives) is answered 408 at the body timeout (1 s here,
// BODY_TIMEOUT_MS); every other kind at once.
const BODY_TIMEOUT_MS = 1000;
const WAIT_MS = 3000;
const ADDRESSES = 30;

const requests = [
  () => `GET /${"a".repeat(20000)} HTTP/1.1\r\nHost: x\r\n\r\n`, // request line over the bound
  () => `GET / HTTP/1.1\r\nHost: x\r\n${"X-Pad: " + "b".repeat(8000) + "\r\n"}`.repeat(1) + "X-Big: " + "c".repeat(80000) + "\r\n\r\n", // head over 64 KiB
  () => "BREW /coffee HTCPCP/1.0\r\n\r\n", // not HTTP/1.x
  () => "\x00\x01\x02\x03\xff\xfe\r\n\r\n", // binary
  () => "POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n", // absurd length
  () => "POST /api/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n", // absurd chunk
  () => "POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 9\r\n\r\n{\"a\":[[[[", // broken JSON
  () => "GET /socket/websocket?vsn=9.9.9 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", // no key
  () => "GET /socket/longpoll?vsn=2.0.0&token=%zz HTTP/1.1\r\nHost: x\r\n\r\n", // bad escape
  () => `GET /socket/websocket?${"a[".repeat(5000)}=1 HTTP/1.1\r\nHost: x\r\n\r\n`, // deep params
];

const outcomes = new Map();

function send(ctx, i) {
  const { hostname, port } = new URL(ctx.url);
  const kind = i % requests.length;
  const t0 = Date.now();
  return new Promise((resolve) => {
    const sock = net.connect({ host: hostname, port: Number(port), localAddress: ctx.addr(i % ADDRESSES) });
    let answer = "closed without an answer";
    const timer = setTimeout(() => {
      answer = `no answer in ${WAIT_MS} ms`;
      sock.destroy();
    }, WAIT_MS);
    sock.on("error", () => {});
    sock.on("close", () => {
      clearTimeout(timer);
      const key = `request kind ${kind}: ${answer}`;
      const seen = outcomes.get(key) ?? { n: 0, maxMs: 0 };
      outcomes.set(key, { n: seen.n + 1, maxMs: Math.max(seen.maxMs, Date.now() - t0) });
      resolve();
    });
    // Whatever the server answers, the connection is ours to drop once it has answered.
    sock.on("data", (d) => {
      answer = d.toString("latin1").split("\r\n")[0];
      sock.end();
    });
    sock.write(requests[kind](), "latin1");
  });
}

export default {
  name: "http-garbage-requests",
  sends: `${REQUESTS} malformed or oversized HTTP requests from ${ADDRESSES} addresses (huge request lines and heads, absurd lengths, broken JSON, bad upgrades)`,
  target: "chat",
  env: { BODY_TIMEOUT_MS: String(BODY_TIMEOUT_MS) },
  bounds: { rssGrowthMiB: 96, threads: 48, legitMs: 15000 },
  async attack(ctx) {
    for (let i = 0; i < REQUESTS; i += BATCH) {
      await Promise.all(Array.from({ length: BATCH }, (_, j) => send(ctx, i + j)));
    }
    for (const [key, { n, maxMs }] of [...outcomes].sort()) ctx.log(`${key} (${n}×, slowest ${maxMs} ms)`);
    const unanswered = [...outcomes.keys()].filter((key) => key.includes("no answer"));
    if (unanswered.length > 0) throw new Error(`requests left without an answer: ${unanswered.join("; ")}`);
  },
  async legit(ctx) {
    const socket = ctx.socket({ guest_key: "abuse-suite-legit-guest-key-0123456789" });
    const { channel, ok, reply } = await ctx.join(socket, "room:abuse", { username: "legit" });
    if (!ok) throw new Error(`join refused: ${JSON.stringify(reply)}`);
    const sent = await ctx.push(channel, "new_msg", { body: "still here" });
    if (sent.status !== "ok") throw new Error(`new_msg answered ${JSON.stringify(sent)}`);
  },
};
