// Accounts and authorization through phoenix.js in Node against the real chat app:
// the /api/ account endpoints, private rooms, DMs, user:<id> topics, guests, tokens, and
// logout closing every socket of that user and no other.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Socket } from "phoenix";
import WebSocket from "ws";
import { startChat, testDatabase } from "../lib/chat-server.js";
import { PATIENCE_MS, join, push, until } from "../lib/channel.js";

const PASSWORD = "correct horse battery";
let chat;
const sockets = [];

before(async () => {
  chat = await startChat({ env: { REGISTER_BURST: "100", LOGIN_ADDRESS_BURST: "100" } });
});
after(async () => {
  sockets.forEach((s) => s.disconnect());
  await chat?.stop();
});

async function api(path, body) {
  const res = await fetch(`${chat.url}/api/${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json().catch(() => null) };
}

async function register(username) {
  const { status, body } = await api("register", { username, password: PASSWORD });
  assert.equal(status, 201, JSON.stringify(body));
  return body;
}

/** A connected socket (resolves once open) or the error if the server refuses it. */
function connect(params = {}) {
  const socket = new Socket(chat.url.replace(/^http/, "ws") + "/socket", {
    transport: WebSocket,
    params,
    reconnectAfterMs: () => 60000,
    timeout: PATIENCE_MS,
  });
  sockets.push(socket);
  const closes = [];
  socket.onClose((event) => closes.push(event.code));
  return new Promise((resolve) => {
    socket.onOpen(() => resolve({ socket, closes, ok: true }));
    socket.onError(() => resolve({ socket, closes, ok: false }));
    socket.connect();
  });
}

const UNAUTHORIZED = { reason: "unauthorized" };

test("accounts: confusable names refused, login answers alike, every authorization rule", async () => {
  const tag = Date.now().toString(36);
  const ann = await register(`ann${tag}`);
  const bob = await register(`bob${tag}`);
  const cat = await register(`cat${tag}`);

  const dup = await api("register", { username: `ANN${tag}`, password: PASSWORD });
  assert.equal(dup.status, 422);
  const confusable = await api("register", { username: `\u0430nn${tag}`, password: PASSWORD });
  assert.deepEqual(confusable, { status: 422, body: { error: "this username is taken" } });
  const wrong = await api("login", { username: `ann${tag}`, password: "not the password" });
  const unknown = await api("login", { username: `nobody${tag}`, password: PASSWORD });
  assert.deepEqual(wrong, { status: 401, body: { error: "invalid username or password" } });
  assert.deepEqual(unknown, wrong);

  const a = await connect({ token: ann.token });
  const b = await connect({ token: bob.token });
  const c = await connect({ token: cat.token });
  const g = await connect();
  assert.ok(a.ok && b.ok && c.ok && g.ok);

  const annTopic = `user:${ann.user.id}`;
  const bobTopic = `user:${bob.user.id}`;
  const annMe = await join(a.socket, annTopic);
  const bobMe = await join(b.socket, bobTopic);
  assert.ok(annMe.ok && bobMe.ok);
  assert.deepEqual(annMe.reply.user, { id: ann.user.id, username: `ann${tag}` });
  // Another user's topic, and a guest's attempt at any.
  assert.deepEqual((await join(c.socket, annTopic)).reply, UNAUTHORIZED);
  assert.deepEqual((await join(g.socket, annTopic)).reply, UNAUTHORIZED);

  // A private room: only members join and read it.
  const room = `secret-${tag}`;
  assert.equal((await push(annMe.channel, "create_private", { room })).status, "ok");
  const annRoom = await join(a.socket, `room:${room}`);
  await push(annRoom.channel, "new_msg", { body: "members only" });
  const bobTry = await join(b.socket, `room:${room}`);
  assert.deepEqual(bobTry.reply, UNAUTHORIZED);
  assert.equal(bobTry.reply.messages, undefined, "no history for a non-member");
  assert.deepEqual((await join(g.socket, `room:${room}`, { username: "zed" })).reply, UNAUTHORIZED);

  // Inviting into a room you are not in.
  const catMe = await join(c.socket, `user:${cat.user.id}`);
  const catInvite = await push(catMe.channel, "invite", { room, username: `cat${tag}` });
  assert.deepEqual([catInvite.status, catInvite.reason], ["error", "unauthorized"]);

  // A member invites: bob hears of the pending invitation on his topic, cannot join
  // until he accepts it, then joins and reads the history.
  const invited = [];
  bobMe.channel.on("invited", (p) => invited.push(p));
  assert.equal((await push(annMe.channel, "invite", { room, username: `bob${tag}` })).status, "ok");
  await until(() => invited.length === 1, "the invitation");
  assert.equal(invited[0].by, `ann${tag}`);
  assert.deepEqual((await join(b.socket, `room:${room}`)).reply, UNAUTHORIZED, "pending: not a member yet");
  assert.deepEqual((await push(bobMe.channel, "accept_invite", { room })).status, "ok");
  const bobRoom = await join(b.socket, `room:${room}`);
  assert.deepEqual(bobRoom.reply.messages.map((m) => m.body), ["members only"]);

  // A DM: the two users only.
  const dm = await push(annMe.channel, "open_dm", { username: `bob${tag}` });
  assert.equal(dm.status, "ok");
  assert.deepEqual((await join(c.socket, `room:${dm.room}`)).reply, UNAUTHORIZED);
  assert.deepEqual((await join(g.socket, `room:${dm.room}`, { username: "zed" })).reply, UNAUTHORIZED);
  const activity = [];
  bobMe.channel.on("activity", (p) => activity.push(p));
  const annDm = await join(a.socket, `room:${dm.room}`);
  const sent = await push(annDm.channel, "new_msg", { body: "psst" });
  await until(() => activity.some((x) => x.id === sent.id), "bob's unread activity");
  const list = await push(bobMe.channel, "rooms", {});
  assert.equal(list.rooms[0].room, dm.room, "latest activity first");
  assert.equal(list.rooms[0].unread, 1);

  // Guests: public rooms under a name no account has.
  assert.equal((await join(g.socket, `room:lobby-${tag}`, { username: `guest${tag}` })).ok, true);
  assert.deepEqual((await join(g.socket, `room:lobby-${tag}`, { username: `BOB${tag}` })).reply, {
    reason: "this name belongs to a registered user",
  });
});

test("tampered tokens are refused; logout closes every socket of that user and no other", async () => {
  const tag = Date.now().toString(36);
  const ann = await register(`lo${tag}`);
  const bob = await register(`other${tag}`);
  const tampered = ann.token.slice(0, -3) + (ann.token.endsWith("AAA") ? "BBB" : "AAA");
  assert.equal((await connect({ token: tampered })).ok, false);
  assert.equal((await connect({ token: "garbage" })).ok, false);

  const tab1 = await connect({ token: ann.token });
  const tab2 = await connect({ token: ann.token });
  const other = await connect({ token: bob.token });
  assert.ok(tab1.ok && tab2.ok && other.ok);
  assert.equal((await api("logout", { token: ann.token })).status, 200);
  await until(() => tab1.closes.includes(1001) && tab2.closes.includes(1001), "both of ann's sockets closed with 1001");
  await new Promise((r) => setTimeout(r, 200));
  assert.deepEqual(other.closes, [], "bob's socket stays open");
  assert.equal((await connect({ token: ann.token })).ok, false, "the logged-out token no longer connects");
  assert.equal((await api("session", { token: ann.token })).status, 401);
});

test("a refused sign-in says when to retry, in Retry-After and in the text the page shows", async () => {
  const tag = Date.now().toString(36);
  await register(`retry${tag}`);
  // Five wrong passwords spend the username's budget (5, then one a minute).
  for (let i = 0; i < 5; i++) {
    const wrong = await api("login", { username: `retry${tag}`, password: `wrong guess ${i}` });
    assert.equal(wrong.status, 401);
  }
  const res = await fetch(`${chat.url}/api/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username: `retry${tag}`, password: PASSWORD }),
  });
  assert.equal(res.status, 429);
  const wait = Number(res.headers.get("retry-after"));
  assert.ok(wait >= 1 && wait <= 60, `Retry-After ${res.headers.get("retry-after")}`);
  assert.deepEqual(await res.json(), { error: `too many attempts: try again in ${wait} s`, retry_after: wait });
});

/** The HTTP status a WebSocket upgrade to `url` is answered with (101 when it opens). */
function upgradeStatus(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.on("open", () => {
      ws.close();
      resolve(101);
    });
    ws.on("unexpected-response", (_req, res) => {
      res.resume();
      resolve(res.statusCode);
    });
    ws.on("error", (e) => (e.message.startsWith("Unexpected server response") ? null : reject(e)));
  });
}

test("a database outage does not sign anyone out: the session check and a reconnect answer 503, not 401/403", async () => {
  const db = testDatabase(`chat_session_outage_${process.pid}`);
  const pg = await startChat({ databaseUrl: db.url, env: { REGISTER_BURST: "100", STORE_TIMEOUT_MS: "1000" } });
  try {
    const post = async (path, body) => {
      const res = await fetch(`${pg.url}/api/${path}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      return res.status;
    };
    const res = await fetch(`${pg.url}/api/register`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ username: "outage", password: PASSWORD }),
    });
    assert.equal(res.status, 201);
    const { token } = await res.json();
    const socketUrl = (t) => `${pg.url.replace(/^http/, "ws")}/socket/websocket?vsn=2.0.0&token=${encodeURIComponent(t)}`;
    assert.equal(await upgradeStatus(socketUrl(token)), 101);

    db.cut();
    assert.equal(await post("session", { token }), 503, "the page keeps a session on 503 and asks again");
    assert.equal(await upgradeStatus(socketUrl(token)), 503, "a reconnect is refused for now, not forbidden");
    assert.equal(await post("logout", { token }), 503);
    // A token that is not authentic needs no database to be refused.
    assert.equal(await upgradeStatus(socketUrl(token.slice(0, -3) + "AAA")), 403);
    assert.equal(await post("session", { token: "garbage" }), 401);

    db.restore();
    const deadline = Date.now() + PATIENCE_MS;
    let status;
    while ((status = await post("session", { token })) !== 200 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(status, 200, "the same session is good again once the database is back");
  } finally {
    await pg.stop();
    db.drop();
  }
});
