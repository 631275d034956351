// Many sockets each forwarding events as fast as the gateway takes them, to a backend
// that needs 50 ms per answer: the event hook's concurrency cap and bounded queue hold
// (calls past the queue fail at once with {"reason":"unavailable"}), memory stays flat,
// and a legitimate user's event still gets through.
const SOCKETS = 300;
const EVENTS = 20;
const ADDRESSES = 50;

const outcomes = {};

export default {
  name: "gateway-hook-flood",
  sends: `${SOCKETS} sockets from ${ADDRESSES} addresses, each forwarding ${EVENTS} events back to back to a backend answering in 50 ms (event concurrency 64, queue 128)`,
  target: "gateway",
  gateway: {
    config: ({ backend, secret }) => `
[backend]
url = "${backend}"
secret = "${secret}"
[backend.event]
concurrency = 64
queue = 128
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
      "/phx/event": (req) => ({ misbehave: { delayMs: 50, body: JSON.stringify({ reply: { status: "ok", response: { n: req.payload.n } } }) } }),
    },
  },
  bounds: { rssGrowthMiB: 150, threads: 40, legitMs: 20000 },
  timeoutMs: 90000,
  async attack(ctx) {
    await Promise.all(
      Array.from({ length: SOCKETS }, async (_, i) => {
        const socket = ctx.socket({}, { localAddress: ctx.addr(i % ADDRESSES) });
        const { channel, ok, reply } = await ctx.join(socket, `room:flood${i % 10}`);
        if (!ok) {
          // The runner's own event loop (300 clients and the backend) can be slower than
          // the join hook's timeout: such joins get {"reason":"unavailable"}.
          const key = `join refused ${reply?.reason ?? ""}`.trim();
          outcomes[key] = (outcomes[key] ?? 0) + 1;
          return;
        }
        const replies = await Promise.all(Array.from({ length: EVENTS }, (_, n) => ctx.push(channel, "flood", { n }, 60000)));
        for (const r of replies) {
          const key = r.status === "ok" ? "ok" : `${r.status} ${r.reason ?? ""}`.trim();
          outcomes[key] = (outcomes[key] ?? 0) + 1;
        }
        socket.disconnect();
      }),
    );
    ctx.log(`event replies: ${JSON.stringify(outcomes)}`);
    if (!outcomes.ok) throw new Error("no event got through at all");
  },
  async legit(ctx) {
    const socket = ctx.socket({}, { localAddress: ctx.addr(ADDRESSES + 1) });
    const { channel, ok } = await ctx.join(socket, "room:legit");
    if (!ok) throw new Error("the legitimate join was refused");
    // A real client retries an "unavailable" reply (the queue was full for a moment).
    for (let attempt = 1; ; attempt++) {
      const reply = await ctx.push(channel, "hello", { n: -1 }, 30000);
      if (reply.status === "ok") {
        ctx.log(`legitimate event answered ok on attempt ${attempt}`);
        return;
      }
      if (reply.status !== "error" || reply.reason !== "unavailable") throw new Error(`legit: ${JSON.stringify(reply)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  },
};
