// Searches as fast as a socket may send them, from many guests on many addresses, in a
// room of 1 200 messages of 600 bytes (0.7 MiB: the memory store reads at most 20 000
// messages or 4 MiB per search): each client address gets its burst of 5 and then one per
// 2 s, the rest is refused with a reason, memory stays flat, and a legitimate guest's
// search is answered meanwhile.
const ADDRESSES = 20;
const SOCKETS_PER_ADDRESS = 2;
const SEARCHES_PER_SOCKET = 40;
const SEED = 1200;

const counts = new Map();
const count = (key) => counts.set(key, (counts.get(key) ?? 0) + 1);

export default {
  name: "room-search-flood",
  sends: `${SEED} messages, then ${ADDRESSES * SOCKETS_PER_ADDRESS * SEARCHES_PER_SOCKET} searches from ${ADDRESSES * SOCKETS_PER_ADDRESS} guests on ${ADDRESSES} addresses`,
  target: "chat",
  bounds: { rssGrowthMiB: 96, threads: 48, legitMs: 15000 },
  timeoutMs: 60000,
  legitDelayMs: 4000,
  async attack(ctx) {
    // The haystack from 60 sockets (each under the per-socket rate), a needle now and then.
    const writers = await Promise.all(
      Array.from({ length: 60 }, async (_, w) => {
        const socket = ctx.socket({ guest_key: `search-flood-writer-${String(w).padStart(30, "0")}` }, { localAddress: ctx.addr(100 + w) });
        const { channel, ok, reply } = await ctx.join(socket, "room:haystack", { username: `writer${w}` });
        if (!ok) throw new Error(`writer join refused: ${JSON.stringify(reply)}`);
        return channel;
      }),
    );
    const filler = "hay ".repeat(150);
    await Promise.all(
      writers.map(async (channel, w) => {
        for (let i = 0; i < SEED / writers.length; i++) {
          const body = (i * writers.length + w) % 100 === 0 ? `a needle ${i} ${filler}` : `${filler}${i}`;
          const sent = await ctx.push(channel, "new_msg", { body });
          if (sent.status !== "ok") count(`seed: ${sent.reason ?? sent.status}`);
          if (ctx.signal.aborted) return;
        }
      }),
    );
    const searchers = await Promise.all(
      Array.from({ length: ADDRESSES * SOCKETS_PER_ADDRESS }, async (_, s) => {
        const socket = ctx.socket({ guest_key: `search-flood-${String(s).padStart(36, "0")}` }, { localAddress: ctx.addr(s % ADDRESSES) });
        const { channel, ok, reply } = await ctx.join(socket, "room:haystack", { username: `seeker${s}` });
        if (!ok) throw new Error(`searcher join refused: ${JSON.stringify(reply)}`);
        return channel;
      }),
    );
    const started = Date.now();
    await Promise.all(
      searchers.map(async (channel) => {
        for (let i = 0; i < SEARCHES_PER_SOCKET && !ctx.signal.aborted; i++) {
          const r = await ctx.push(channel, "search", { query: i % 2 ? "needle" : "nothing here", limit: 50 });
          count(r.status === "ok" ? "search answered" : `search refused: ${r.reason ?? r.status}`);
        }
      }),
    );
    for (const [what, n] of [...counts].sort()) ctx.log(`${what}: ${n}`);
    const answered = counts.get("search answered") ?? 0;
    // Each address: a burst of 5, then one per 2 s while the flood lasts.
    const allowed = ADDRESSES * (5 + Math.ceil((Date.now() - started) / 2000) + 1);
    ctx.log(`searches answered ${answered}, the rate allows ${allowed}`);
    if (answered > allowed) throw new Error(`${answered} searches answered: the per-address rate did not hold`);
  },
  async legit(ctx) {
    const socket = ctx.socket({ guest_key: "abuse-suite-legit-searcher-0123456789abcdef" });
    const { channel, ok, reply } = await ctx.join(socket, "room:haystack", { username: "legit" });
    if (!ok) throw new Error(`join refused: ${JSON.stringify(reply)}`);
    const found = await ctx.push(channel, "search", { query: "needle" });
    if (found.status !== "ok") throw new Error(`search answered ${JSON.stringify(found)}`);
  },
};
