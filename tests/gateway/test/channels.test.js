// docs/gateway.md, "Channels" and "Actions": join rules, gateway-side broadcasts with
// `self` and a rate limit, refused events, outgoing rules per receiving socket, presence
// from templates, and the actions the conformance contract does not use.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startGateway, fakeBackend, backendToml, Raw } from "../lib/harness.js";

let backend;
let gateway;
let seq = 0;
const ok = (response = {}) => ({ status: "ok", response });

before(async () => {
  backend = await fakeBackend({
    "/phx/connect": (req) => ({
      status: "ok",
      assigns: { user_id: req.params.user ?? null, role: req.params.role ?? "user" },
      socket_id: req.params.user ? `user_socket:${req.params.user}` : null,
    }),
    "/phx/join": (req) => ({ status: "ok", assigns: { nick: req.payload.nick ?? "anon" } }),
    "/phx/event": (req) => {
      switch (req.event) {
        case "rename":
          return { reply: ok(), actions: [{ type: "assign", assigns: { nick: req.payload.nick, gone: null } }] };
        case "whoami":
          return { reply: ok({ channel_assigns: req.channel_assigns }) };
        case "notify_admins":
          return { reply: ok(), actions: [{ type: "broadcast", topic: "admin:all", event: "notice", payload: { from: req.assigns.user_id } }] };
        case "away":
          return { reply: ok(), actions: [{ type: "update", meta: { status: "away" } }] };
        case "kick_me":
          return { reply: ok({ bye: true }), actions: [{ type: "push", event: "kicked", payload: {} }, { type: "stop", reason: "shutdown:kicked" }, { type: "push", event: "never", payload: {} }] };
        case "bad_action":
          return { reply: ok(), actions: [{ type: "teleport" }, { type: "push", event: "x", payload: [1] }, { type: "push", event: "after_bad", payload: {} }] };
        default:
          return { reply: { status: "error", response: { reason: "unknown" } } };
      }
    },
  });
  gateway = await startGateway(`${backendToml(backend)}
[[socket]]
path = "/socket"
check_origin = false
[socket.auth]
method = "hook"

[[socket.channel]]
topic = "user:*"
join = "subtopic == user_id"

[[socket.channel]]
topic = "admin:*"
join = "role == 'admin'"

[[socket.channel]]
topic = "chat:*"
presence = { key = "{user_id}", meta = { role = "{role}", kind = "member" } }
[[socket.channel.event]]
name = "typing"
handle = "broadcast"
self = false
[[socket.channel.event]]
name = "shout"
handle = "broadcast"
rate_limit = { per_second = 1, burst = 2 }
[[socket.channel.event]]
name = "secret"
handle = "refuse"
[[socket.channel.event]]
name = "*"
handle = "forward"
[[socket.channel.outgoing]]
event = "shout"
when = "payload.from == user_id"
drop = true
[[socket.channel.outgoing]]
event = "shout"
when = "role != 'admin'"
remove = ["ip"]
[[socket.channel.outgoing]]
event = "shout"
set = { seen_by = "{user_id}", via = ":{transport}" }
`);
});

after(async () => {
  await gateway?.stop();
  await backend?.close();
});

const open = (user, role = "user") => Raw.open(gateway.ws, { query: `user=${user}&role=${role}` });

test("join by expression: a user's own topic, an admin-only topic", async () => {
  const ann = await open("ann");
  assert.deepEqual((await ann.join("user:ann")).reply[4], ok());
  assert.deepEqual((await ann.join("user:bob")).reply[4], { status: "error", response: { reason: "unauthorized" } });
  assert.deepEqual((await ann.join("admin:all")).reply[4], { status: "error", response: { reason: "unauthorized" } });
  const root = await open("root", "admin");
  assert.deepEqual((await root.join("admin:all")).reply[4], ok());
  ann.close();
  root.close();
});

test("presence: tracked under the templated key with templated metas; presence_state follows the join reply", async () => {
  const t = `chat:p${seq++}`;
  const ann = await open("ann", "admin");
  const { joinRef, reply } = await ann.join(t, { nick: "A" });
  assert.deepEqual(reply[4], ok());
  const state = await ann.next((f) => f[3] === "presence_state");
  assert.equal(state[0], joinRef);
  assert.deepEqual(Object.keys(state[4]), ["ann"]);
  const [meta] = state[4].ann.metas;
  assert.equal(meta.role, "admin");
  assert.equal(meta.kind, "member");
  assert.ok(meta.phx_ref);
  // An `update` action replaces the meta: one diff with phx_ref_prev.
  await ann.reply(ann.push(t, joinRef, "away"));
  const diff = await ann.next((f) => f[3] === "presence_diff" && Object.keys(f[4].joins).length > 0 && f[4].joins.ann?.metas[0].status === "away");
  assert.equal(diff[4].joins.ann.metas[0].phx_ref_prev, meta.phx_ref);
  ann.close();
});

test("a gateway broadcast: self = false skips the sender; the rate limit refuses past the burst", async () => {
  const t = `chat:b${seq++}`;
  const ann = await open("ann");
  const bob = await open("bob");
  const a = await ann.join(t);
  await bob.join(t);
  const typing = ann.push(t, a.joinRef, "typing", { who: "ann" });
  assert.deepEqual((await ann.reply(typing))[4], ok());
  assert.deepEqual((await bob.next((f) => f[3] === "typing"))[4], { who: "ann" });
  // Nothing for ann: her heartbeat reply comes and no typing frame is queued before it.
  await ann.heartbeat();
  assert.ok(!ann.frames.some((f) => f[3] === "typing"));
  // shout: burst 2, then refused.
  const replies = [];
  for (let i = 0; i < 3; i++) replies.push((await ann.reply(ann.push(t, a.joinRef, "shout", { n: i, from: "ann", ip: "1.2.3.4" })))[4]);
  assert.deepEqual(replies.slice(0, 2), [ok(), ok()]);
  assert.deepEqual(replies[2], { status: "error", response: { reason: "rate limited" } });
  ann.close();
  bob.close();
});

test("outgoing rules: dropped for its author, fields removed for non-admins, fields set per receiver", async () => {
  const t = `chat:o${seq++}`;
  const ann = await open("ann");
  const bob = await open("bob");
  const root = await open("root", "admin");
  const a = await ann.join(t);
  await bob.join(t);
  await root.join(t);
  await ann.reply(ann.push(t, a.joinRef, "shout", { from: "ann", ip: "1.2.3.4", body: "hi" }));
  assert.deepEqual((await bob.next((f) => f[3] === "shout"))[4], { from: "ann", body: "hi", seen_by: "bob", via: ":websocket" });
  assert.deepEqual((await root.next((f) => f[3] === "shout"))[4], { from: "ann", ip: "1.2.3.4", body: "hi", seen_by: "root", via: ":websocket" });
  // A rewritten broadcast is a push through the receiver's channel: it carries its join_ref.
  await ann.heartbeat();
  assert.ok(!ann.frames.some((f) => f[3] === "shout"), "the author's own copy was dropped");
  ann.close();
  bob.close();
  root.close();
});

test("refused events, and events no rule names when there is no '*'", async () => {
  const t = `chat:r${seq++}`;
  const ann = await open("ann");
  const a = await ann.join(t);
  assert.deepEqual((await ann.reply(ann.push(t, a.joinRef, "secret")))[4], { status: "error", response: { reason: "refused" } });
  const u = await ann.join("user:ann");
  assert.deepEqual((await ann.reply(ann.push("user:ann", u.joinRef, "anything")))[4], { status: "error", response: { reason: "refused" } });
  ann.close();
});

test("actions: assign changes the channel assigns the next event carries; broadcast to another topic", async () => {
  const t = `chat:a${seq++}`;
  const root = await open("root", "admin");
  await root.join("admin:all");
  const ann = await open("ann");
  const a = await ann.join(t, { nick: "A" });
  assert.deepEqual((await ann.reply(ann.push(t, a.joinRef, "whoami")))[4], ok({ channel_assigns: { nick: "A" } }));
  await ann.reply(ann.push(t, a.joinRef, "rename", { nick: "Z" }));
  assert.deepEqual((await ann.reply(ann.push(t, a.joinRef, "whoami")))[4], ok({ channel_assigns: { nick: "Z" } }));
  await ann.reply(ann.push(t, a.joinRef, "notify_admins"));
  assert.deepEqual((await root.next((f) => f[3] === "notice"))[4], { from: "ann" });
  ann.close();
  root.close();
});

test("a stop action: earlier actions run, the reply precedes phx_close, later actions do not run", async () => {
  const t = `chat:s${seq++}`;
  const ann = await open("ann");
  const a = await ann.join(t);
  const ref = ann.push(t, a.joinRef, "kick_me");
  const kicked = await ann.next((f) => f[3] === "kicked");
  const reply = await ann.reply(ref);
  const close = await ann.next((f) => f[3] === "phx_close");
  assert.deepEqual(reply[4], ok({ bye: true }));
  assert.deepEqual([kicked[2], close[0]], [t, a.joinRef]);
  await ann.heartbeat();
  assert.ok(!ann.frames.some((f) => f[3] === "never"));
  ann.close();
});

test("an action that cannot be carried out is skipped and logged; the rest still run", async () => {
  const t = `chat:x${seq++}`;
  const ann = await open("ann");
  const a = await ann.join(t);
  const ref = ann.push(t, a.joinRef, "bad_action");
  await ann.next((f) => f[3] === "after_bad");
  assert.deepEqual((await ann.reply(ref))[4], ok());
  assert.ok(gateway.logs.some((l) => l.includes("unknown action type \"teleport\"")));
  assert.ok(gateway.logs.some((l) => l.includes("payload must be a JSON object")));
  ann.close();
});
