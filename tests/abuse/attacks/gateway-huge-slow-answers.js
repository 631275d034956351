// A backend whose answers are huge (6.4 MiB streamed in 64 KiB chunks) or trickle in a
// byte at a time: the gateway reads at most max_answer_bytes (1 MiB) of an answer and
// gives up at the hook's timeout (2 s), answering {"reason":"unavailable"}; its memory
// stays bounded by concurrency × max_answer_bytes, and a legitimate user is served.
const SOCKETS = 120;
const EVENTS = 4;
const ADDRESSES = 30;

const outcomes = {};

export default {
  name: "gateway-huge-slow-answers",
  sends: `${SOCKETS} sockets × ${EVENTS} events whose answers are 6.4 MiB (half) or trickle 1 byte per 100 ms (half); event concurrency 64, timeout 2 s, max_answer_bytes 1 MiB`,
  target: "gateway",
  gateway: {
    config: ({ backend, secret }) => `
[backend]
url = "${backend}"
secret = "${secret}"
max_answer_bytes = "1MiB"
[backend.breaker]
failures = 100000
[backend.event]
concurrency = 64
timeout = "2s"
[[socket]]
path = "/socket"
check_origin = false
[socket.auth]
method = "none"
[[socket.channel]]
topic = "room:*"
[[socket.channel.event]]
name = "*"
handle = "forward"
`,
    backend: {
      "/phx/join": () => ({ status: "ok" }),
      "/phx/event": (req) => {
        if (req.topic === "room:legit") return { reply: { status: "ok", response: {} } };
        return req.payload.n % 2 === 0
          ? { misbehave: { body: "x".repeat(64 * 1024), chunks: 100, chunkDelayMs: 5 } }
          : { misbehave: { body: " ", chunks: 40, chunkDelayMs: 100 } };
      },
    },
  },
  bounds: { rssGrowthMiB: 200, keptMiB: 100, threads: 40, legitMs: 20000 },
  timeoutMs: 90000,
  async attack(ctx) {
    await Promise.all(
      Array.from({ length: SOCKETS }, async (_, i) => {
        const socket = ctx.socket({}, { localAddress: ctx.addr(i % ADDRESSES) });
        const { channel, ok } = await ctx.join(socket, `room:huge${i % 5}`);
        if (!ok) return;
        for (let n = 0; n < EVENTS; n++) {
          const r = await ctx.push(channel, "big", { n: n + i }, 60000);
          const key = r.status === "ok" ? "ok" : `${r.status} ${r.reason ?? ""}`.trim();
          outcomes[key] = (outcomes[key] ?? 0) + 1;
        }
        socket.disconnect();
      }),
    );
    ctx.log(`event replies: ${JSON.stringify(outcomes)}`);
    if (outcomes.ok) throw new Error("a huge or endless answer was accepted");
  },
  async legit(ctx) {
    const socket = ctx.socket({}, { localAddress: ctx.addr(ADDRESSES + 1) });
    const { channel, ok } = await ctx.join(socket, "room:legit");
    if (!ok) throw new Error("the legitimate join was refused");
    const reply = await ctx.push(channel, "hello", {}, 30000);
    if (reply.status !== "ok") throw new Error(`legit: ${JSON.stringify(reply)}`);
  },
};
