// Registration floods from 30 addresses: from each, weak passwords and taken names first
// (refused, and they must not spend the budget of accounts), then new accounts until the
// address's budget of accounts (REGISTER_BURST, 5) is spent, then more attempts until the
// attempt budget (REGISTER_ATTEMPT_BURST, 20) refuses them too. Every address still makes
// its 5 accounts, never more; every 429 says when to retry (header and text); a newcomer
// from another address registers meanwhile.

const ADDRESSES = 30;
const ATTEMPTS = 30;
const ACCOUNTS = 5;
const PASSWORD = "correct horse battery staple";

export default {
  name: "register-flood",
  sends: `${ADDRESSES * ATTEMPTS} registrations from ${ADDRESSES} addresses: weak passwords and taken names, then new accounts, then more`,
  target: "chat",
  // Each account made is a hash: 4 × 19 MiB of Argon2 memory at most.
  bounds: { rssGrowthMiB: 160, keptMiB: 150, threads: 40, legitMs: 30000 },
  async attack(ctx) {
    const taken = await ctx.http("POST", "/api/register", {
      body: { username: "taken-name", password: PASSWORD },
      localAddress: ctx.addr(ADDRESSES + 1),
    });
    if (taken.status !== 201) throw new Error(`first registration: ${taken.status} ${taken.body}`);
    const outcomes = new Map();
    const flood = async (a) => {
      let made = 0;
      for (let i = 0; i < ATTEMPTS; i++) {
        // 0–2: weak passwords, 3: a taken name, then new names.
        const body =
          i < 3
            ? { username: `weak-${a}-${i}`, password: ["short", "1234567890", "password123"][i] }
            : i === 3
              ? { username: "Taken-Name", password: PASSWORD }
              : { username: `flood-${a}-${i}`, password: PASSWORD };
        const res = await ctx.http("POST", "/api/register", { body, localAddress: ctx.addr(a) });
        let key = `${res.status}`;
        if (res.status === 201) made++;
        if (res.status === 429) {
          const after = res.headers["retry-after"];
          const error = res.json().error;
          const said = /: try again in (\d+) s$/.exec(error);
          if (!/^\d+$/.test(after ?? "") || said?.[1] !== after) {
            throw new Error(`a 429 that does not say when to retry: Retry-After ${after}, ${JSON.stringify(error)}`);
          }
          key = `429 ${error.replace(/\d+ s$/, "N s")}`;
        }
        outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
        if (res.status === 429 && /sign-ins in progress/.test(res.body)) {
          // The hash queue: come back as told (this attempt is not counted against us).
          i--;
          await new Promise((r) => setTimeout(r, 1000 * Number(res.headers["retry-after"])));
        }
      }
      if (made !== ACCOUNTS) throw new Error(`address ${a} made ${made} accounts (REGISTER_BURST is ${ACCOUNTS})`);
    };
    await Promise.all(Array.from({ length: ADDRESSES }, (_, a) => flood(a)));
    for (const [key, n] of [...outcomes].sort()) ctx.log(`${key}: ${n}`);
  },
  async legit(ctx) {
    const res = await ctx.http("POST", "/api/register", {
      body: { username: "register-legit", password: PASSWORD },
      localAddress: ctx.addr(ADDRESSES + 2),
    });
    if (res.status !== 201) throw new Error(`registration answered ${res.status} ${res.body}`);
  },
};
