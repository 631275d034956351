// One user invites a victim to every private room it can make. Invitations are pending
// until accepted and count against nothing of the victim's (docs/chat.md, "Invitations"):
// the inviter is stopped at 50 pending invitations, and the victim can still create a
// room, open a DM and accept the invitation they want.
const ROOMS = 199; // the inviter's own bound is 200 rooms

const PASSWORD = "correct horse battery";
const tag = Date.now().toString(36).slice(-5);
let registered;
let flooded;

async function register(ctx, username) {
  const res = await ctx.http("POST", "/api/register", { body: { username, password: PASSWORD } });
  if (res.status !== 201) throw new Error(`register ${username}: ${res.status} ${res.body}`);
  return res.json();
}

/** The signed-in user's `user:<id>` channel on a socket of its own. */
async function own(ctx, account) {
  const socket = ctx.socket({ token: account.token });
  const me = await ctx.join(socket, `user:${account.user.id}`);
  if (!me.ok) throw new Error(`user:${account.user.id} refused: ${JSON.stringify(me.reply)}`);
  return me.channel;
}

async function expectOk(ctx, channel, event, payload) {
  const reply = await ctx.push(channel, event, payload);
  if (reply.status !== "ok") throw new Error(`${event} ${JSON.stringify(payload)}: ${JSON.stringify(reply)}`);
  return reply;
}

export default {
  name: "invite-flood",
  sends: `one user creates ${ROOMS} private rooms and invites the same victim to each, as fast as the server answers`,
  target: "chat",
  // One source address for everything: the room-creation and registration budgets are
  // not what this row is about, nor the per-socket rate limit.
  env: { REGISTER_BURST: "20", ROOM_CREATION_BURST: "1000", RATE_LIMIT: "0" },
  bounds: { rssGrowthMiB: 100, threads: 40, legitMs: 15000 },
  timeoutMs: 30000,
  async attack(ctx) {
    registered = Promise.all(["mallory", "victim", "friend"].map((n) => register(ctx, `${n}${tag}`)));
    const [mallory] = await registered;
    let resolveFlooded;
    flooded = new Promise((r) => (resolveFlooded = r));
    try {
      const channel = await own(ctx, mallory);
      const answers = {};
      for (let i = 0; i < ROOMS; i++) {
        const room = `spam${tag}-${i}`;
        await expectOk(ctx, channel, "create_private", { room });
        const reply = await ctx.push(channel, "invite", { room, username: `victim${tag}` });
        const answer = reply.status === "ok" ? "pending" : reply.reason;
        answers[answer] = (answers[answer] ?? 0) + 1;
      }
      for (const [answer, n] of Object.entries(answers)) ctx.log(`invite → ${answer}: ${n}`);
      if ((answers.pending ?? 0) > 50) throw new Error(`${answers.pending} invitations pending from one user (bound 50)`);
    } finally {
      resolveFlooded();
    }
  },
  // The victim, once the flood is sent: a room of their own, a DM, a friend's invitation.
  async legit(ctx) {
    const [, victim, friend] = await registered;
    await flooded;
    const started = Date.now();
    const [mine, theirs] = await Promise.all([own(ctx, victim), own(ctx, friend)]);
    const pending = (await expectOk(ctx, mine, "rooms", {})).invitations?.length ?? 0;
    await expectOk(ctx, mine, "create_private", { room: `mine${tag}` });
    await expectOk(ctx, mine, "open_dm", { username: `friend${tag}` });
    await expectOk(ctx, theirs, "create_private", { room: `friends${tag}` });
    await expectOk(ctx, theirs, "invite", { room: `friends${tag}`, username: `victim${tag}` });
    await expectOk(ctx, mine, "accept_invite", { room: `friends${tag}` });
    ctx.log(`the victim held ${pending} pending invitations, then created a room, opened a DM and accepted a friend's invitation in ${Date.now() - started} ms`);
  },
};
