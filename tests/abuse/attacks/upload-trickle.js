// One signed-in user trickles as many uploads as the server lets them: each declares
// 1 MB and sends a byte a second, and every one that ends is opened again at once. Before
// bounds per user, 16 of these held every receiving slot of the node for 2 minutes at a
// time and everyone else got 503. Now the user holds at most 2 slots (the rest: 429 at
// once), each cut off within one rate window (408, too slow; 3 s here), and another user's upload
// goes through meanwhile.
import { setMaxListeners } from "node:events";
import net from "node:net";

const AT_ONCE = 24;
const ATTACK_MS = 6000;
const PASSWORD = "correct horse battery staple";

const outcomes = new Map();
let opened = 0;

async function register(ctx, username, address) {
  const res = await ctx.http("POST", "/api/register", {
    body: { username, password: PASSWORD },
    localAddress: address,
  });
  if (res.status !== 201) throw new Error(`register ${username}: ${res.status} ${res.body}`);
  return res.json().token;
}

/** One trickling upload: resolves with the status line's code, or how it ended. */
function trickle(ctx, token, i) {
  const { hostname, port } = new URL(ctx.url);
  const t0 = Date.now();
  return new Promise((resolve) => {
    const sock = net.connect({ host: hostname, port: Number(port), localAddress: ctx.addr(1) });
    let answer = "closed without an answer";
    const drip = setInterval(() => sock.write("a"), 1000);
    const done = () => {
      clearInterval(drip);
      ctx.signal.removeEventListener("abort", stop);
      const key = `${answer} (${Date.now() - t0 < 1000 ? "within 1 s" : "after 1 s or more"})`;
      outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
      resolve();
    };
    const stop = () => sock.destroy();
    ctx.signal.addEventListener("abort", stop);
    sock.on("error", () => {});
    sock.on("close", done);
    sock.on("data", (d) => {
      answer = d.toString("latin1").split("\r\n")[0];
      sock.destroy();
    });
    sock.write(
      `POST /api/uploads?name=trickle${i}.txt HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\n` +
        "Content-Length: 1000000\r\n\r\na",
    );
  });
}

let ready;
const attackReady = new Promise((r) => (ready = r));

export default {
  name: "upload-trickle",
  sends: `one user keeps ${AT_ONCE} uploads open for ${ATTACK_MS / 1000} s, each declaring 1 MB and sending a byte a second, reopened as soon as one ends`,
  target: "chat",
  // No per-user upload rate in the way (the bound under test is the one on uploads in
  // progress), and a 3 s rate window so trickles are cut off within the row's time.
  env: { REGISTER_BURST: "100", UPLOAD_BURST: "100000", UPLOAD_RATE_WINDOW_MS: "3000" },
  bounds: { rssGrowthMiB: 96, threads: 48, legitMs: 15000 },
  legitDelayMs: 0,
  async attack(ctx) {
    setMaxListeners(AT_ONCE + 10, ctx.signal);
    const token = await register(ctx, "trickler", ctx.addr(1));
    const until = Date.now() + ATTACK_MS;
    const lane = async (i) => {
      while (Date.now() < until && !ctx.signal.aborted) {
        opened += 1;
        if (opened >= AT_ONCE) ready();
        await trickle(ctx, token, i);
      }
    };
    await Promise.all(Array.from({ length: AT_ONCE }, (_, i) => lane(i)));
    ctx.log(`${opened} uploads opened by one user`);
    for (const [key, n] of [...outcomes].sort()) ctx.log(`${key}: ${n}×`);
    // Refused at once past the per-user slots; the admitted ones cut off as too slow.
    const admitted = [...outcomes].filter(([k]) => !k.includes("429")).reduce((n, [, v]) => n + v, 0);
    if ([...outcomes].some(([k]) => k.includes("503"))) throw new Error("the node ran out of slots: 503");
    if (admitted > (ATTACK_MS / 3000 + 2) * 2) throw new Error(`${admitted} trickles were admitted`);
  },
  async legit(ctx) {
    await attackReady;
    const token = await register(ctx, "legit", ctx.addr(2));
    const res = await ctx.http("POST", "/api/uploads?name=notes.txt", {
      headers: { authorization: `Bearer ${token}` },
      body: Buffer.from("a legitimate upload\n".repeat(3000)),
      localAddress: ctx.addr(2),
    });
    if (res.status !== 201) throw new Error(`upload answered ${res.status} ${res.body}`);
  },
};
