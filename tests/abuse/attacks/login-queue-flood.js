// 120 addresses keep the password-hash queue full with logins of unknown users (each a
// full Argon2 hash, like a wrong password), 6 in flight per address, within the default
// login rates. Waiting is bounded per address and in all (refused at once with 429 and
// Retry-After), and permits go to the addresses in turn, so a legitimate login waits for
// about one hash per waiting address, not for every queued attempt.
import { setMaxListeners } from "node:events";

const ADDRESSES = 120;
const IN_FLIGHT = 6;
const PASSWORD = "correct horse battery staple";
const MAX_SECONDS = 40;

let registered;

/** A counter or gauge of /metrics (undefined if absent: then nothing is asserted on it). */
async function metric(ctx, name) {
  const res = await ctx.http("GET", "/metrics", { localAddress: ctx.addr(ADDRESSES + 2) });
  const match = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "m").exec(res.body);
  return match ? Number(match[1]) : undefined;
}
let legitDone = false;
// Aborted once the legitimate login is served: the attack's requests still waiting are
// dropped (abandoned by their clients, as login-abandoned does).
let stop;
// chat_password_hashes_total when the legitimate login was sent.
let hashesBefore;

export default {
  name: "login-queue-flood",
  sends: `logins of unknown users from ${ADDRESSES} addresses, ${IN_FLIGHT} in flight each, until the legitimate login is served (at most ${MAX_SECONDS} s)`,
  target: "chat",
  // legitMs: one round of 120 hashes on 4 permits is ~3 s on an idle 2-core machine; a
  // shared one is many times slower (the hash count above is the machine-free check).
  bounds: { rssGrowthMiB: 160, keptMiB: 150, threads: 40, legitMs: 40000 },
  legitDelayMs: 2000,
  async attack(ctx) {
    legitDone = false;
    stop = new AbortController();
    const signal = AbortSignal.any([ctx.signal, stop.signal]);
    setMaxListeners(0, signal);
    registered = ctx.http("POST", "/api/register", {
      body: { username: "queue-legit", password: PASSWORD },
      localAddress: ctx.addr(ADDRESSES + 1),
    });
    const reg = await registered;
    if (reg.status !== 201) throw new Error(`registering the legitimate user: ${reg.status} ${reg.body}`);
    const statuses = new Map();
    const retryAfter = new Map();
    const end = Date.now() + MAX_SECONDS * 1000;
    const worker = async (a, w) => {
      for (let i = 0; !legitDone && Date.now() < end && !ctx.signal.aborted; i++) {
        let res;
        try {
          res = await ctx.http("POST", "/api/login", {
            body: { username: `flood-${a}-${w}-${i}`, password: PASSWORD },
            localAddress: ctx.addr(a),
            signal,
          });
        } catch (e) {
          if (signal.aborted) return;
          throw e;
        }
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        if (res.status === 429) {
          const after = res.headers["retry-after"];
          if (!/^\d+$/.test(after ?? "")) throw new Error(`a 429 without Retry-After: ${res.body}`);
          const why = res.json().error.replace(/: try again in \d+ s$/, "");
          retryAfter.set(why, Math.max(retryAfter.get(why) ?? 0, Number(after)));
          // Back in a second: enough to keep this address's 4 places filled, without a
          // flood of refused requests that would test the server's HTTP handling (the
          // connection limits' rows) rather than the queue.
          await new Promise((r) => setTimeout(r, 1000));
        } else if (res.status !== 401) {
          throw new Error(`an attacker's login answered ${res.status} ${res.body}`);
        }
      }
    };
    const workers = [];
    for (let a = 0; a < ADDRESSES; a++) for (let w = 0; w < IN_FLIGHT; w++) workers.push(worker(a, w));
    await Promise.all(workers);
    for (const [status, n] of [...statuses].sort()) ctx.log(`answered ${status}: ${n}`);
    // Served in turn: about one hash per waiting address went before the legitimate one,
    // not every queued attempt. Counted in hashes, which a busy machine does not change
    // (read once the attack's last hashes ended: at most 4 ran on after the legitimate
    // login, plus those while its answer travelled).
    for (let i = 0; i < 100 && (await metric(ctx, "chat_password_hashes_running")) > 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    const after = await metric(ctx, "chat_password_hashes_total");
    if (hashesBefore !== undefined && after !== undefined) {
      const first = after - hashesBefore - 1;
      ctx.log(`hashes of others from the legitimate login's start to the attack's end: ${first} (${ADDRESSES} addresses)`);
      if (first > 2 * ADDRESSES + 20) throw new Error(`${first} hashes went before the legitimate login`);
    }
    for (const [why, most] of retryAfter) ctx.log(`429 "${why}": Retry-After up to ${most} s`);
  },
  async legit(ctx) {
    try {
      const reg = await registered;
      if (reg?.status !== 201) throw new Error("the legitimate user could not register");
      hashesBefore = await metric(ctx, "chat_password_hashes_total");
      const res = await ctx.http("POST", "/api/login", {
        body: { username: "queue-legit", password: PASSWORD },
        localAddress: ctx.addr(ADDRESSES),
      });
      if (res.status !== 200) throw new Error(`login answered ${res.status} ${res.body}`);
    } finally {
      legitDone = true;
      stop?.abort();
    }
  },
};
