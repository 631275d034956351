// Many small uploads as fast as they go: eight users on eight addresses, two at a time
// each, for 5 s. The per-user rate (429 past the burst) and the per-user quota (413 past
// it) hold, nothing piles up in memory, and another user's upload goes through.

import { setMaxListeners } from "node:events";

const USERS = 8;
const LANES_PER_USER = 2;
const ATTACK_MS = 5000;
const BURST = 30;
const QUOTA = 256 * 1024;
const FILE = Buffer.from("x".repeat(16 * 1024));
const PASSWORD = "correct horse battery staple";

async function register(ctx, username, address) {
  const res = await ctx.http("POST", "/api/register", { body: { username, password: PASSWORD }, localAddress: address });
  if (res.status !== 201) throw new Error(`register ${username}: ${res.status} ${res.body}`);
  return res.json().token;
}

export default {
  name: "upload-flood",
  sends: `${USERS} users on ${USERS} addresses upload 16 KiB files, ${LANES_PER_USER} at a time each, as fast as answered for ${ATTACK_MS / 1000} s (burst ${BURST}, quota ${QUOTA / 1024} KiB per user)`,
  target: "chat",
  // The burst under the quota's 16 files would hide the quota: 30 files of 16 KiB pass it.
  env: { REGISTER_BURST: "100", UPLOAD_BURST: String(BURST), UPLOAD_QUOTA_BYTES: String(QUOTA) },
  // Threads: file writes go to the blocking pool, one per upload in progress (at most 32).
  bounds: { rssGrowthMiB: 128, threads: 96, legitMs: 10000 },
  async attack(ctx) {
    setMaxListeners(64, ctx.signal); // one per request in flight
    const until = Date.now() + ATTACK_MS;
    const counts = new Map();
    // One after another: registrations hash passwords (19 MiB each), not what is measured.
    const users = [];
    for (let u = 0; u < USERS; u++) {
      users.push({ address: ctx.addr(20 + u), token: await register(ctx, `flood${u}`, ctx.addr(20 + u)) });
    }
    const perUser = users.map(() => ({ stored: 0, bytes: 0 }));
    await Promise.all(
      users.flatMap(({ address, token }, u) =>
        Array.from({ length: LANES_PER_USER }, async () => {
          while (Date.now() < until && !ctx.signal.aborted) {
            const res = await ctx.http("POST", "/api/uploads?name=f.txt", {
              headers: { authorization: `Bearer ${token}` },
              body: FILE,
              localAddress: address,
            });
            counts.set(res.status, (counts.get(res.status) ?? 0) + 1);
            if (res.status === 201) {
              perUser[u].stored += 1;
              perUser[u].bytes += FILE.length;
            }
          }
        }),
      ),
    );
    ctx.log(`answers: ${[...counts].map(([s, n]) => `${s}: ${n}×`).join(", ")}`);
    ctx.log(`stored per user: ${perUser.map((p) => p.stored).join(", ")} files`);
    const over = perUser.filter((p) => p.bytes > QUOTA);
    if (over.length > 0) throw new Error(`a user stored past the quota: ${JSON.stringify(over)}`);
    if (!counts.has(413) || !counts.has(429)) throw new Error("neither the quota nor the rate was reached");
    const unexpected = [...counts.keys()].filter((s) => ![201, 413, 429].includes(s));
    if (unexpected.length > 0) throw new Error(`unexpected answers: ${unexpected}`);
  },
  async legit(ctx) {
    const address = ctx.addr(2);
    const token = await register(ctx, "legit", address);
    const res = await ctx.http("POST", "/api/uploads?name=notes.txt", {
      headers: { authorization: `Bearer ${token}` },
      body: Buffer.from("a legitimate upload\n"),
      localAddress: address,
    });
    if (res.status !== 201) throw new Error(`upload answered ${res.status} ${res.body}`);
  },
};
