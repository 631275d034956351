// One address tries to lock everyone out of login: as many requests as 48 keep-alive
// connections carry for 5 s (the report gives the rate), a third with 4 KB names, a third with random names, and — once its own budget is spent —
// a third guessing the password of a user who has not tried to sign in yet. A name that
// no account can have costs nothing and is not remembered; a username's budget is spent
// only by attempts its address was allowed; so that user signs in meanwhile, and the
// server keeps no table of the attacker's names.
import http from "node:http";

const SECONDS = 5;
const IN_FLIGHT = 48;
const PASSWORD = "correct horse battery staple";
const VICTIM = "lockout-victim";

let registered;

function post(agent, url, body) {
  return new Promise((resolve, reject) => {
    const payload = JSON.stringify(body);
    const req = http.request(
      new URL("/api/login", url),
      { method: "POST", agent, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(payload) } },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c) => (text += c));
        res.on("end", () => resolve({ statusCode: res.statusCode, headers: res.headers, body: text }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
}

export default {
  name: "login-lockout-one-address",
  sends: `logins from one address over ${IN_FLIGHT} connections for ${SECONDS} s: 4 KB names, random names, and (once its budget is spent) guesses of another user's password`,
  target: "chat",
  // The 20 attempts the address is allowed are hashed: 4 × 19 MiB of Argon2 memory.
  bounds: { rssGrowthMiB: 128, keptMiB: 100, threads: 40, legitMs: 10000 },
  legitDelayMs: 3000,
  async attack(ctx) {
    registered = ctx.http("POST", "/api/register", {
      body: { username: VICTIM, password: PASSWORD },
      localAddress: ctx.addr(1),
    });
    const reg = await registered;
    if (reg.status !== 201) throw new Error(`registering the victim: ${reg.status} ${reg.body}`);
    // Keep-alive connections from the one address, so that the rate is the server's, not
    // the cost of opening connections.
    const agent = new http.Agent({ keepAlive: true, maxSockets: IN_FLIGHT, localAddress: ctx.addr(0) });
    // As long as a name can be in a 4 KiB body (the API's bound).
    const long = "x".repeat(4000);
    const statuses = new Map();
    const retryAfter = new Set();
    let sent = 0;
    // The victim's name is tried only once the address's own budget is spent: the
    // attempts it was allowed may spend the victim's budget (that is the per-username
    // limit doing its job), the refused ones must not.
    let spent = false;
    const end = Date.now() + SECONDS * 1000;
    const worker = async (w) => {
      for (let i = 0; Date.now() < end && !ctx.signal.aborted; i++) {
        const kind = (i + w) % 3 === 2 && !spent ? 1 : (i + w) % 3;
        const username = kind === 0 ? `${long}${i}`.slice(0, 4000) : kind === 1 ? `r${w}x${i}x${Math.random().toString(36).slice(2, 10)}` : VICTIM;
        const res = await post(agent, ctx.url, { username, password: `guess number ${i}` });
        sent++;
        const key = `${["4 KB name", "random name", "victim's name"][kind]}: ${res.statusCode}`;
        statuses.set(key, (statuses.get(key) ?? 0) + 1);
        // (A 429 "too many sign-ins in progress" is the hash queue, not the budget.)
        if (res.statusCode === 429 && kind === 1 && res.body.startsWith('{"error":"too many attempts')) spent = true;
        if (res.statusCode === 429) {
          if (!/^\d+$/.test(res.headers["retry-after"] ?? "")) throw new Error("a 429 without Retry-After");
          retryAfter.add(res.headers["retry-after"]);
        }
      }
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, (_, w) => worker(w)));
    agent.destroy();
    ctx.log(`${sent} requests in ${SECONDS} s (${Math.round(sent / SECONDS)}/s)`);
    for (const [key, n] of [...statuses].sort()) ctx.log(`${key} ×${n}`);
    ctx.log(`Retry-After values seen: ${[...retryAfter].sort((a, b) => a - b).join(", ") || "none"}`);
  },
  async legit(ctx) {
    const reg = await registered;
    if (reg?.status !== 201) throw new Error("the victim could not register");
    const res = await ctx.http("POST", "/api/login", {
      body: { username: VICTIM, password: PASSWORD },
      localAddress: ctx.addr(2),
    });
    if (res.status !== 200) throw new Error(`the victim's login answered ${res.status} ${res.body}`);
  },
};
