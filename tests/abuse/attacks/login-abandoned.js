// Logins abandoned by their clients: 800 logins from 40 addresses (each address's whole
// burst of 20), every one dropped by the client after 2 s, answered or not. A password
// hash must keep its permit until it ends, however its request ended, so at most
// PASSWORD_HASHES (4) hashes run at once: Argon2 memory (19 MiB each) and blocking threads
// stay bounded, and a user who signs in meanwhile is served.

const ADDRESSES = 40;
const PER_ADDRESS = 20;
const ABANDON_MS = 2000;
const PERMITS = 4;
const PASSWORD = "correct horse battery staple";

let registered;

/** The metrics line `name value` of /metrics, as a number (undefined if absent). */
async function gauge(ctx, name) {
  const res = await ctx.http("GET", "/metrics");
  const match = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "m").exec(res.body);
  return match ? Number(match[1]) : undefined;
}

export default {
  name: "login-abandoned",
  sends: `${ADDRESSES * PER_ADDRESS} logins of unknown users from ${ADDRESSES} addresses at once, each abandoned by its client after ${ABANDON_MS / 1000} s`,
  target: "chat",
  // 4 hashes × 19 MiB, 800 connections, and slack; threads: the runtime's (about 8 at
  // rest) plus 4 hashing, with slack.
  bounds: { rssGrowthMiB: 160, keptMiB: 150, threads: 24, legitMs: 20000 },
  async attack(ctx) {
    registered = ctx.http("POST", "/api/register", {
      body: { username: "abandon-legit", password: PASSWORD },
      localAddress: ctx.addr(200),
    });
    const reg = await registered;
    if (reg.status !== 201) throw new Error(`registering the legitimate user: ${reg.status} ${reg.body}`);
    const outcomes = new Map();
    const count = (key) => outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
    const requests = [];
    for (let i = 0; i < ADDRESSES * PER_ADDRESS; i++) {
      requests.push(
        ctx
          .http("POST", "/api/login", {
            body: { username: `nobody-${i}`, password: PASSWORD },
            localAddress: ctx.addr(i % ADDRESSES),
            timeoutMs: ABANDON_MS,
          })
          .then(
            (res) => count(`answered ${res.status}`),
            (e) => count(/no answer/.test(e.message) ? "abandoned after 2 s" : `error ${e.code ?? e.message}`),
          ),
      );
    }
    await Promise.all(requests);
    for (const [key, n] of [...outcomes].sort()) ctx.log(`${key}: ${n}`);
    // The hashes that were running when their clients left end within a few hashes' time.
    // (A server without the gauges is judged by the bounds alone.)
    const deadline = Date.now() + 30000;
    let running;
    while ((running = await gauge(ctx, "chat_password_hashes_running")) > 0) {
      if (Date.now() > deadline) throw new Error("hashes still running 30 s after the clients left");
      await new Promise((r) => setTimeout(r, 100));
    }
    const peak = await gauge(ctx, "chat_password_hashes_peak");
    ctx.log(`most hashes at once (chat_password_hashes_peak): ${peak ?? "no such gauge"}`);
    if (peak > PERMITS) throw new Error(`${peak} hashes ran at once (PASSWORD_HASHES is ${PERMITS})`);
  },
  async legit(ctx) {
    const reg = await registered;
    if (reg?.status !== 201) throw new Error("the legitimate user could not register");
    const res = await ctx.http("POST", "/api/login", {
      body: { username: "abandon-legit", password: PASSWORD },
      localAddress: ctx.addr(201),
    });
    if (res.status !== 200) throw new Error(`login answered ${res.status} ${res.body}`);
  },
};
