// docs/chat.md's rooms, identity and rejoin contract through phoenix.js against the real
// chat app, on both stores where the store matters: author ids and the guest mark on
// what the page receives, a guest name held by one guest, edits/deletes/reactions made
// while a page was away reaching it on rejoin (after_seq), look-alike room names, and
// invitations that wait for consent.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { startChat, testDatabase } from "../lib/chat-server.js";
import { client, disconnectAll, join, push, until } from "../lib/channel.js";

after(disconnectAll);

const key = (c) => c.repeat(40);
const UNLIMITED = { RATE_LIMIT: "0", REGISTER_BURST: "100" };

async function register(chat, username) {
  const res = await fetch(`${chat.url}/api/register`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username, password: "correct horse battery" }),
  });
  assert.equal(res.status, 201);
  return res.json();
}

/** A page-like client of `room`: keeps the highest id and seq it saw and sends them back
 * on every rejoin (phoenix.js evaluates params given as a function each time). */
function pageLike(socket, room, username) {
  const state = { lastId: 0, seq: 0, joins: [], shown: new Map() };
  const show = (m) => {
    state.shown.set(m.id, m);
    state.lastId = Math.max(state.lastId, m.id);
    state.seq = Math.max(state.seq, m.seq);
  };
  const channel = socket.channel(`room:${room}`, () => ({
    username,
    ...(state.lastId ? { after_id: state.lastId, after_seq: state.seq } : {}),
  }));
  channel.on("new_msg", show);
  channel.on("msg_updated", show);
  channel.on("reaction", ({ id, reactions, reactors, seq }) => {
    const m = state.shown.get(id);
    if (m) state.shown.set(id, { ...m, reactions, reactors, seq });
    state.seq = Math.max(state.seq, seq);
  });
  channel.joinPush.receive("ok", (reply) => {
    state.joins.push(reply);
    for (const m of [...reply.messages, ...reply.changed]) show(m);
    state.seq = Math.max(state.seq, reply.seq);
  });
  channel.join();
  return { channel, state };
}

async function changesWhileAway(databaseUrl) {
  const chat = await startChat({ databaseUrl, env: UNLIMITED });
  try {
    const socket = client(chat.url, { guest_key: key("p") });
    const page = pageLike(socket, "news", "pat");
    await until(() => page.state.joins.length === 1, "first join");
    assert.equal(page.state.joins[0].me.guest, true);
    const writer = await join(client(chat.url, { guest_key: key("w") }), "room:news", { username: "wes" });
    const ids = [];
    for (const body of ["one", "two", "three", "four"]) ids.push((await push(writer.channel, "new_msg", { body })).id);
    await until(() => ids.every((id) => page.state.shown.has(id)), "the messages, live");
    const shown = page.state.shown.get(ids[0]);
    assert.equal(shown.author, writer.reply.me.author, "the author id, as the writer's join reply told it");
    assert.equal(shown.guest, true);

    // Away: an edit, a delete, a reaction, a thread reply, a new message.
    await new Promise((resolve) => socket.disconnect(resolve));
    assert.equal((await push(writer.channel, "edit_msg", { id: ids[0], body: "one, edited" })).status, "ok");
    assert.equal((await push(writer.channel, "delete_msg", { id: ids[1] })).status, "ok");
    assert.equal((await push(writer.channel, "react", { id: ids[2], emoji: "🎉" })).status, "ok");
    assert.equal((await push(writer.channel, "new_msg", { body: "a reply", parent_id: ids[3] })).status, "ok");
    await push(writer.channel, "new_msg", { body: "five" });
    socket.connect();
    await until(() => page.state.joins.length === 2, "the rejoin");
    const back = page.state.joins[1];
    assert.deepEqual(back.messages.map((m) => m.body), ["a reply", "five"]);
    assert.deepEqual(back.changed.map((m) => m.id), ids, "every change made while away, in change order");
    assert.equal(back.refetch, false);
    assert.equal(page.state.shown.get(ids[0]).body, "one, edited");
    assert.equal(page.state.shown.get(ids[1]).deleted, true);
    assert.deepEqual(page.state.shown.get(ids[2]).reactors, { "🎉": [writer.reply.me.author] });
    assert.equal(page.state.shown.get(ids[3]).reply_count, 1);

    // Up to date: the next rejoin brings no change twice.
    await new Promise((resolve) => socket.disconnect(resolve));
    socket.connect();
    await until(() => page.state.joins.length === 3, "another rejoin");
    assert.deepEqual([page.state.joins[2].changed, page.state.joins[2].messages], [[], []]);
  } finally {
    await chat.stop();
  }
}

test("changes made while a page was away reach it on rejoin (memory store)", async () => {
  await changesWhileAway();
});

test("changes made while a page was away reach it on rejoin (PostgreSQL)", async () => {
  const db = testDatabase(`chat_rooms_js_${process.pid}`);
  try {
    await changesWhileAway(db.url);
  } finally {
    db.drop();
  }
});

test("a guest name is one guest's in a room; look-alike room names are refused", async () => {
  const chat = await startChat({ env: UNLIMITED });
  try {
    const zed = await join(client(chat.url, { guest_key: key("z") }), "room:lobby", { username: "zed" });
    assert.ok(zed.ok);
    const other = await join(client(chat.url, { guest_key: key("o") }), "room:lobby", { username: "Zed" });
    assert.deepEqual(other.reply, { reason: "this name is used by another guest" });
    // The same guest from another tab: theirs.
    assert.ok((await join(client(chat.url, { guest_key: key("z") }), "room:lobby", { username: "zed" })).ok);

    const similar = await join(client(chat.url, { guest_key: key("o") }), "room:LOBBY", { username: "otto" });
    assert.deepEqual(similar.reply, { reason: "a room with a similar name exists", room: "lobby" });
    const mixed = await join(client(chat.url, { guest_key: key("o") }), "room:l\u043ebby-two", { username: "otto" });
    assert.match(mixed.reply.reason, /mixes scripts/);
  } finally {
    await chat.stop();
  }
});

test("an invitation waits for consent: accepted, declined, then the cooldown says until when", async () => {
  const chat = await startChat({ env: UNLIMITED });
  try {
    const tag = Date.now().toString(36).slice(-6);
    const [ann, bob] = await Promise.all(["ann", "bob"].map((n) => register(chat, `${n}${tag}`)));
    const annMe = await join(client(chat.url, { token: ann.token }), `user:${ann.user.id}`);
    const bobSocket = client(chat.url, { token: bob.token });
    const bobMe = await join(bobSocket, `user:${bob.user.id}`);
    const notes = [];
    for (const event of ["invited", "invitation_answered"]) bobMe.channel.on(event, (p) => notes.push([event, p]));
    for (const room of [`a${tag}`, `b${tag}`]) assert.equal((await push(annMe.channel, "create_private", { room })).status, "ok");

    const invited = await push(annMe.channel, "invite", { room: `a${tag}`, username: `bob${tag}` });
    assert.deepEqual(invited, { status: "ok", room: `a${tag}`, username: `bob${tag}`, pending: true });
    await until(() => notes.length === 1, "the invitation");
    assert.equal(notes[0][1].by_author, `user:${ann.user.id}`);
    assert.deepEqual((await join(bobSocket, `room:a${tag}`)).reply, { reason: "unauthorized" });
    assert.deepEqual((await push(bobMe.channel, "rooms", {})).invitations.map((i) => i.room), [`a${tag}`]);
    assert.equal((await push(bobMe.channel, "accept_invite", { room: `a${tag}` })).status, "ok");
    assert.ok((await join(bobSocket, `room:a${tag}`)).ok);

    await push(annMe.channel, "invite", { room: `b${tag}`, username: `bob${tag}` });
    assert.equal((await push(bobMe.channel, "decline_invite", { room: `b${tag}` })).status, "ok");
    await until(() => notes.length === 4, "both answers and the second invitation");
    assert.deepEqual(notes.filter(([e]) => e === "invitation_answered").map(([, p]) => p.accepted), [true, false]);
    const again = await push(annMe.channel, "invite", { room: `b${tag}`, username: `bob${tag}` });
    assert.equal(again.status, "error");
    assert.ok(Date.parse(again.retry_at) > Date.now() + 3600 * 1000, "a day's cooldown by default");
    assert.match(again.reason, /declined or left recently/);
  } finally {
    await chat.stop();
  }
});
