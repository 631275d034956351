// docs/chat.md's message features through phoenix.js in Node against the real chat app:
// threads, edits, deletes, reactions and mentions with their authorization, replay after a
// disconnect (and its bound), client_id idempotency (memory and PostgreSQL), and ids that
// keep increasing across a restart of the memory-store app.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { startChat, testDatabase } from "../lib/chat-server.js";
import { client, disconnectAll, join, push, until } from "../lib/channel.js";

after(disconnectAll);

const key = (c) => c.repeat(40); // a valid guest_key (32–128 of [A-Za-z0-9_-])
// These tests send hundreds of events per socket quickly: no inbound rate limit.
const UNLIMITED = { env: { RATE_LIMIT: "0" } };

/** Collects a channel's `event` broadcasts. */
function collect(channel, event) {
  const seen = [];
  channel.on(event, (m) => seen.push(m));
  return seen;
}

async function register(chat, username) {
  const res = await fetch(`${chat.url}/api/register`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username, password: "correct horse battery" }),
  });
  assert.equal(res.status, 201);
  return res.json();
}

test("threads, edits, deletes and reactions, each with its authorization", async () => {
  const chat = await startChat(UNLIMITED);
  try {
    const ann = await join(client(chat.url, { guest_key: key("a") }), "room:feat", { username: "ann" });
    const bob = await join(client(chat.url, { guest_key: key("b") }), "room:feat", { username: "bob" });
    // The same guest key on another socket is the same author; another key is not, and
    // cannot take the name while ann is here (docs/chat.md, "Guest names").
    const ann2 = await join(client(chat.url, { guest_key: key("a") }), "room:feat", { username: "ann" });
    const impostor = await join(client(chat.url, { guest_key: key("e") }), "room:feat", { username: "ANN" });
    assert.deepEqual([impostor.ok, impostor.reply], [false, { reason: "this name is used by another guest" }]);
    const eve = await join(client(chat.url, { guest_key: key("e") }), "room:feat", { username: "eve" });
    const other = await join(client(chat.url, { guest_key: key("a") }), "room:elsewhere", { username: "ann" });
    assert.ok(ann.ok && bob.ok && ann2.ok && eve.ok && other.ok);
    const atAnn = collect(ann.channel, "new_msg");
    const updates = collect(ann.channel, "msg_updated");
    const reactions = collect(ann.channel, "reaction");

    const top = await push(ann.channel, "new_msg", { body: "top" });
    const elsewhere = await push(other.channel, "new_msg", { body: "other room" });
    // Threads: a reply to a top-level message; no replies to replies, nor to unknown ids.
    const reply = await push(bob.channel, "new_msg", { body: "reply 1", parent_id: top.id });
    assert.equal(reply.status, "ok");
    await push(bob.channel, "new_msg", { body: "reply 2", parent_id: top.id });
    assert.equal((await push(bob.channel, "new_msg", { body: "x", parent_id: reply.id })).reason, "replies cannot have replies");
    assert.equal((await push(bob.channel, "new_msg", { body: "x", parent_id: elsewhere.id })).reason, "not found");
    assert.equal((await push(bob.channel, "new_msg", { body: "x", parent_id: "1" })).reason, "parent_id must be an integer");
    await until(() => atAnn.length === 3, "three broadcasts");
    assert.equal(atAnn[1].parent_id, top.id);
    const thread = await push(bob.channel, "thread", { parent_id: top.id });
    assert.equal(thread.parent.reply_count, 2);
    assert.deepEqual(thread.messages.map((m) => m.body), ["reply 1", "reply 2"]);
    const page = await push(bob.channel, "thread", { parent_id: top.id, before_id: thread.messages[1].id, limit: 1 });
    assert.deepEqual(page.messages.map((m) => m.body), ["reply 1"]);
    assert.equal((await push(bob.channel, "thread", { parent_id: reply.id })).reason, "not found");
    assert.match((await push(bob.channel, "thread", { parent_id: top.id, limit: 101 })).reason, /limit/);
    // Recent and history are top-level only.
    const late = await join(client(chat.url), "room:feat", { username: "cy" });
    assert.deepEqual(late.reply.messages.map((m) => m.body), ["top"]);
    assert.equal(late.reply.messages[0].reply_count, 2);
    assert.deepEqual((await push(late.channel, "history", { before_id: reply.id + 100 })).messages.map((m) => m.body), ["top"]);

    // Edits: the author only (any socket with the same guest key), body rules, same room.
    assert.deepEqual(await push(bob.channel, "edit_msg", { id: top.id, body: "bob's" }), { status: "error", reason: "forbidden" });
    assert.equal((await push(eve.channel, "edit_msg", { id: top.id, body: "eve's" })).reason, "forbidden");
    assert.equal((await push(ann.channel, "edit_msg", { id: top.id, body: "  " })).reason, "message can't be blank");
    assert.equal((await push(ann.channel, "edit_msg", { id: elsewhere.id, body: "moved" })).reason, "not found");
    assert.deepEqual(await push(ann2.channel, "edit_msg", { id: top.id, body: " top, edited " }), { status: "ok" });
    await until(() => updates.length === 1, "msg_updated");
    assert.equal(updates[0].id, top.id);
    assert.equal(updates[0].body, "top, edited");
    assert.match(updates[0].edited_at, /Z$/);
    assert.equal(updates[0].reply_count, 2);

    // Reactions: toggled per user, validated, at most 20 emoji per message.
    const r1 = await push(bob.channel, "react", { id: top.id, emoji: "👍" });
    const [annId, bobId] = [ann.reply.me.author, bob.reply.me.author];
    assert.deepEqual(r1, { status: "ok", reactions: { "👍": ["bob"] }, reactors: { "👍": [bobId] }, seq: r1.seq });
    assert.ok(r1.seq > top.id, "a reaction is a change: a new seq");
    await push(ann.channel, "react", { id: top.id, emoji: "👍" });
    await until(() => reactions.length === 2, "two reaction broadcasts");
    assert.deepEqual(reactions[1], {
      id: top.id, reactions: { "👍": ["bob", "ann"] }, reactors: { "👍": [bobId, annId] }, seq: reactions[1].seq,
    });
    assert.ok(reactions[1].seq > reactions[0].seq);
    assert.deepEqual((await push(bob.channel, "react", { id: top.id, emoji: "👍" })).reactions, { "👍": ["ann"] });
    assert.match((await push(bob.channel, "react", { id: top.id, emoji: "lol" })).reason, /emoji must be/);
    assert.equal((await push(bob.channel, "react", { id: elsewhere.id, emoji: "👍" })).reason, "not found");
    for (let i = 1; i < 20; i++) {
      assert.equal((await push(bob.channel, "react", { id: top.id, emoji: String.fromCodePoint(0x1f600 + i) })).status, "ok");
    }
    assert.equal((await push(bob.channel, "react", { id: top.id, emoji: "🎉" })).reason, "at most 20 different emoji per message");

    // Deletes: the author only; a tombstone; then neither edits, reactions nor replies.
    assert.equal((await push(bob.channel, "delete_msg", { id: top.id })).reason, "forbidden");
    assert.equal((await push(eve.channel, "delete_msg", { id: top.id })).reason, "forbidden");
    assert.deepEqual(await push(ann2.channel, "delete_msg", { id: top.id }), { status: "ok" });
    await until(() => updates.length === 2, "tombstone");
    assert.equal(updates[1].deleted, true);
    assert.equal(updates[1].body, "");
    assert.equal((await push(ann.channel, "edit_msg", { id: top.id, body: "back" })).reason, "deleted");
    assert.equal((await push(ann.channel, "delete_msg", { id: top.id })).reason, "deleted");
    assert.equal((await push(bob.channel, "react", { id: top.id, emoji: "👍" })).reason, "deleted");
    assert.equal((await push(bob.channel, "new_msg", { body: "late", parent_id: top.id })).reason, "not found");
  } finally {
    await chat.stop();
  }
});

test("mentions reach registered users who may read the room; attachments need uploads", async () => {
  const chat = await startChat({ env: { REGISTER_BURST: "100" } });
  try {
    const tag = Date.now().toString(36).slice(-6);
    const [ann, bob, cat] = await Promise.all(["ann", "bob", "cat"].map((n) => register(chat, `${n}${tag}`)));
    const sockets = Object.fromEntries([ann, bob, cat].map((u) => [u.user.username, client(chat.url, { token: u.token })]));
    const inbox = {};
    const own = {};
    for (const u of [bob, cat]) {
      const me = await join(sockets[u.user.username], `user:${u.user.id}`);
      assert.ok(me.ok);
      own[u.user.username] = me.channel;
      inbox[u.user.username] = collect(me.channel, "mention");
    }
    const annMe = await join(sockets[ann.user.username], `user:${ann.user.id}`);
    const pub = await join(sockets[ann.user.username], `room:pub${tag}`);
    const body = `hi @bob${tag} and @cat${tag}, @nobody${tag}`;
    const sent = await push(pub.channel, "new_msg", { body });
    await until(() => inbox[`bob${tag}`].length === 1 && inbox[`cat${tag}`].length === 1, "mentions in a public room");
    assert.deepEqual(inbox[`bob${tag}`][0], { room: `pub${tag}`, id: sent.id, username: `ann${tag}`, author: `user:${ann.user.id}`, body });
    assert.deepEqual(pub.reply.messages, []);
    const stored = await push(pub.channel, "history", { before_id: sent.id + 1 });
    assert.deepEqual(stored.messages[0].mentions, [`bob${tag}`, `cat${tag}`, `nobody${tag}`]);

    // A private room with bob only: cat is mentioned but may not read it.
    const room = `priv${tag}`;
    assert.equal((await push(annMe.channel, "create_private", { room })).status, "ok");
    assert.equal((await push(annMe.channel, "invite", { room, username: `bob${tag}` })).status, "ok");
    assert.equal((await push(own[`bob${tag}`], "accept_invite", { room })).status, "ok");
    const priv = await join(sockets[ann.user.username], `room:${room}`);
    assert.ok(priv.ok);
    assert.deepEqual((await join(sockets[cat.user.username], `room:${room}`)).reply, { reason: "unauthorized" });
    await push(priv.channel, "new_msg", { body: `@cat${tag} @bob${tag} secret` });
    await until(() => inbox[`bob${tag}`].length === 2, "bob's private mention");
    // A later public mention of cat arrives after the private one would have.
    await push(pub.channel, "new_msg", { body: `@cat${tag} marker` });
    await until(() => inbox[`cat${tag}`].length === 2, "cat's marker");
    assert.deepEqual(inbox[`cat${tag}`].map((m) => m.room), [`pub${tag}`, `pub${tag}`], "nothing from the private room");

    // Attachments must be the sender's own uploads (uploads.test.js attaches real ones; a
    // room channel without uploads wired is tests/room_attachments.rs): a made-up id is
    // refused, and a guest has no uploads at all.
    assert.equal((await push(pub.channel, "new_msg", { body: "file", attachments: ["x"] })).reason, "unknown attachment");
    const guest = await join(client(chat.url), `room:pub${tag}`, { username: "zed" });
    assert.equal((await push(guest.channel, "new_msg", { body: "", attachments: ["x"] })).reason, "unknown attachment");
    assert.match((await push(guest.channel, "new_msg", { body: "f", attachments: Array(11).fill("x") })).reason, /at most 10/);
  } finally {
    await chat.stop();
  }
});

test("a rejoin replays exactly the missed messages, replies included; past 200 a gap", async () => {
  const chat = await startChat(UNLIMITED);
  try {
    const socket = client(chat.url, { guest_key: key("r") });
    let lastId = 0;
    const ann = socket.channel("room:replay", () => ({ username: "ann", ...(lastId ? { after_id: lastId } : {}) }));
    const joins = [];
    const live = [];
    ann.on("new_msg", (m) => {
      live.push(m.body);
      lastId = Math.max(lastId, m.id);
    });
    ann.joinPush.receive("ok", (reply) => {
      joins.push(reply);
      for (const m of reply.messages) lastId = Math.max(lastId, m.id);
    });
    ann.join();
    await until(() => joins.length === 1, "first join");
    const bob = await join(client(chat.url), "room:replay", { username: "bob" });
    const send = (body, extra = {}) => push(bob.channel, "new_msg", { body, ...extra });
    await send("seen");
    await until(() => live.length === 1, "the live message");

    const offline = () => new Promise((resolve) => socket.disconnect(resolve));
    await offline();
    const m1 = await send("m1");
    await send("m2");
    await send("r1", { parent_id: m1.id });
    await send("m3");
    socket.connect();
    await until(() => joins.length === 2, "the rejoin");
    assert.deepEqual(joins[1].gap, false);
    assert.deepEqual(joins[1].messages.map((m) => m.body), ["m1", "m2", "r1", "m3"]);
    assert.deepEqual(live, ["seen"], "nothing missed arrived live");
    await send("after");
    await until(() => live.length === 2, "live again");

    await offline();
    for (let i = 0; i < 201; i++) assert.equal((await send(`b${i}`)).status, "ok");
    await send("reply in the gap", { parent_id: m1.id });
    socket.connect();
    await until(() => joins.length === 3, "the second rejoin");
    assert.equal(joins[2].gap, true);
    assert.equal(joins[2].messages.length, 50);
    assert.equal(joins[2].messages.at(-1).body, "b200", "the latest top-level messages");
    assert.ok(joins[2].messages.every((m) => m.parent_id === null));
  } finally {
    await chat.stop();
  }
});

async function clientIdsAreStoredOnce(chat) {
  const a = await join(client(chat.url, { guest_key: key("c") }), "room:idem", { username: "ann" });
  const b = await join(client(chat.url, { guest_key: key("d") }), "room:idem", { username: "bob" });
  const atB = collect(b.channel, "new_msg");
  const first = await push(a.channel, "new_msg", { body: "once", client_id: "c-1" });
  assert.deepEqual(Object.keys(first), ["status", "id"]);
  // A retry, and two more at once (one group-commit batch with PostgreSQL).
  const retries = await Promise.all([
    push(a.channel, "new_msg", { body: "once", client_id: "c-1" }),
    push(a.channel, "new_msg", { body: "once", client_id: "c-1" }),
    push(a.channel, "new_msg", { body: "once", client_id: "c-1" }),
  ]);
  for (const r of retries) assert.deepEqual(r, { status: "ok", id: first.id, duplicate: true });
  // Another author's same key is another message; a bad key is refused.
  const bobs = await push(b.channel, "new_msg", { body: "mine", client_id: "c-1" });
  assert.ok(bobs.id > first.id && !bobs.duplicate);
  assert.match((await push(a.channel, "new_msg", { body: "x", client_id: "a b" })).reason, /client_id/);
  await until(() => atB.length === 2, "two broadcasts");
  assert.deepEqual(atB.map((m) => [m.body, m.client_id]), [["once", "c-1"], ["mine", "c-1"]]);
  const fresh = await join(client(chat.url), "room:idem", { username: "cy" });
  assert.deepEqual(fresh.reply.messages.map((m) => m.body), ["once", "mine"]);
  // Nothing else arrived meanwhile.
  assert.equal(atB.length, 2);
}

test("a retried client_id is stored and broadcast once (memory store)", async () => {
  const chat = await startChat();
  try {
    await clientIdsAreStoredOnce(chat);
  } finally {
    await chat.stop();
  }
});

test("a retried client_id is stored and broadcast once (PostgreSQL)", async () => {
  const db = testDatabase(`features_${process.pid}`);
  const chat = await startChat({ databaseUrl: db.url });
  try {
    await clientIdsAreStoredOnce(chat);
  } finally {
    await chat.stop();
    db.drop();
  }
});

test("memory-store ids keep increasing across a restart", async () => {
  const send = async () => {
    const chat = await startChat();
    try {
      const a = await join(client(chat.url), "room:restart", { username: "ann" });
      const r = await push(a.channel, "new_msg", { body: "hi" });
      assert.equal(r.status, "ok");
      return r.id;
    } finally {
      await chat.stop();
    }
  };
  const before = await send();
  const afterRestart = await send();
  assert.ok(afterRestart > before, `${afterRestart} > ${before}`);
  assert.ok(Number.isSafeInteger(afterRestart));
});
