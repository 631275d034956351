// Creating a private room and joining the same name at the same moment, over and over:
// whichever comes first, the joiner must never end up in the creator's private room
// (docs/chat.md, "Rooms"). On PostgreSQL, where the race used to put the joiner in most
// of the rooms. The Rust test (crates/chat-app/tests/room_claim_race.rs) races thousands
// of times on both stores; this row races over the wire, from two sockets.
// Fewer than her 200 rooms (her own bound), with room for the legitimate one.
const RACES = 150;

const PASSWORD = "correct horse battery";
const tag = Date.now().toString(36).slice(-5);
let alice;

async function register(ctx, username) {
  const res = await ctx.http("POST", "/api/register", { body: { username, password: PASSWORD } });
  if (res.status !== 201) throw new Error(`register ${username}: ${res.status} ${res.body}`);
  return res.json();
}

export default {
  name: "room-claim-race",
  sends: `${RACES} races of create_private (one user) against a join of the same name (another user)`,
  target: "chat-postgres",
  env: { REGISTER_BURST: "20", ROOM_CREATION_BURST: "10000", RATE_LIMIT: "0" },
  bounds: { rssGrowthMiB: 100, threads: 40, legitMs: 15000 },
  timeoutMs: 30000,
  async attack(ctx) {
    alice = register(ctx, `alice${tag}`);
    const [creator, joiner] = await Promise.all([alice, register(ctx, `bob${tag}`)]);
    const aliceSocket = ctx.socket({ token: creator.token });
    const me = await ctx.join(aliceSocket, `user:${creator.user.id}`);
    if (!me.ok) throw new Error(`user channel refused: ${JSON.stringify(me.reply)}`);
    const bobSocket = ctx.socket({ token: joiner.token });
    const bobMe = await ctx.join(bobSocket, `user:${joiner.user.id}`);
    let won = 0;
    const breaches = [];
    for (let i = 0; i < RACES; i++) {
      const room = `race${tag}-${i}`;
      const [created, joined] = await Promise.all([
        ctx.push(me.channel, "create_private", { room }),
        ctx.join(bobSocket, `room:${room}`, {}),
      ]);
      if (created.status === "ok") {
        won += 1;
        if (joined.ok) breaches.push(room);
      }
      if (joined.ok) joined.channel.leave();
    }
    // And nothing of alice's in bob's own list.
    const listed = (await ctx.push(bobMe.channel, "rooms", {})).rooms.filter((r) => r.kind === "private");
    ctx.log(`alice's create_private won ${won} of ${RACES} races; bob got into ${breaches.length} of her private rooms; ${listed.length} private rooms in bob's list`);
    if (breaches.length > 0 || listed.length > 0) {
      throw new Error(`bob got into alice's private rooms: ${[...breaches, ...listed.map((r) => r.room)].slice(0, 5).join(", ")}`);
    }
    if (won === 0 || won === RACES) ctx.log("one side won every race: the two did not really race this time");
  },
  // alice, meanwhile: a private room of her own, and a message in it.
  async legit(ctx) {
    const creator = await alice;
    const socket = ctx.socket({ token: creator.token });
    const me = await ctx.join(socket, `user:${creator.user.id}`);
    const room = `quiet${tag}`;
    const created = await ctx.push(me.channel, "create_private", { room });
    if (created.status !== "ok") throw new Error(`create_private: ${JSON.stringify(created)}`);
    const joined = await ctx.join(socket, `room:${room}`, {});
    if (!joined.ok) throw new Error(`join: ${JSON.stringify(joined.reply)}`);
    const sent = await ctx.push(joined.channel, "new_msg", { body: "only for me" });
    if (sent.status !== "ok") throw new Error(`new_msg: ${JSON.stringify(sent)}`);
  },
};
