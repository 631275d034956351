// The chat app's room channel through phoenix.js in Node: validation, history, typing,
// persistence across a restart, and a database outage mid-conversation.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { Socket } from "phoenix";
import WebSocket from "ws";
import { startChat, testDatabase } from "../lib/chat-server.js";

const sockets = [];
after(() => sockets.forEach((s) => s.disconnect()));

// Upper bound on waits for events (replies, broadcasts): only a broken server reaches it,
// and a loaded 2-core machine can stall for seconds. phoenix.js' own push timeout (10 s by
// default) is raised to match, so a slow reply is not mistaken for a missing one.
const PATIENCE_MS = 30000;

function client(url) {
  const socket = new Socket(url.replace(/^http/, "ws") + "/socket", {
    transport: WebSocket,
    reconnectAfterMs: () => 50,
    timeout: PATIENCE_MS,
  });
  socket.connect();
  sockets.push(socket);
  return socket;
}

function join(socket, room, username) {
  const channel = socket.channel(`room:${room}`, { username });
  return new Promise((resolve) =>
    channel
      .join()
      .receive("ok", (reply) => resolve({ channel, reply, ok: true }))
      .receive("error", (reply) => {
        channel.leave();
        resolve({ channel, reply, ok: false });
      }),
  );
}

function push(channel, event, payload) {
  return new Promise((resolve) =>
    channel
      .push(event, payload)
      .receive("ok", (r) => resolve({ status: "ok", ...r }))
      .receive("error", (r) => resolve({ status: "error", ...r }))
      .receive("timeout", () => resolve({ status: "timeout" })),
  );
}

const until = async (check, what, timeout = PATIENCE_MS) => {
  const deadline = Date.now() + timeout;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

test("joins are validated with readable reasons", async () => {
  const chat = await startChat();
  try {
    const s = client(chat.url);
    assert.deepEqual((await join(s, "lobby", "   ")).reply, { reason: "username can't be blank" });
    assert.match((await join(s, "lobby", "x".repeat(33))).reply.reason, /at most 32/);
    assert.match((await join(s, "lobby", "<b>")).reply.reason, /letters, digits/);
    assert.match((await join(s, "a b", "ok")).reply.reason, /room name/);
    assert.match((await join(s, "r".repeat(65), "ok")).reply.reason, /at most 64/);
    const good = await join(s, "lobby", "  Ada  ");
    assert.equal(good.ok, true);
    assert.deepEqual(good.reply, { messages: [] });
  } finally {
    await chat.stop();
  }
});

test("messages are validated, stored, broadcast with ids; history pages back; typing reaches others", async () => {
  const chat = await startChat();
  try {
    const a = await join(client(chat.url), "hist", "ann");
    const b = await join(client(chat.url), "hist", "bob");
    const atB = [];
    b.channel.on("new_msg", (m) => atB.push(m));
    const typing = [];
    b.channel.on("typing", (t) => typing.push(t));
    a.channel.on("typing", (t) => typing.push({ self: t }));

    assert.deepEqual(await push(a.channel, "new_msg", { body: "   " }), { status: "error", reason: "message can't be blank" });
    assert.match((await push(a.channel, "new_msg", { body: "é".repeat(4001) })).reason, /at most 4000/);
    assert.equal((await push(a.channel, "new_msg", {})).reason, "body is required");

    const ids = [];
    for (let i = 0; i < 60; i++) {
      const r = await push(a.channel, "new_msg", { body: ` m${i} ` });
      assert.equal(r.status, "ok");
      ids.push(r.id);
    }
    await until(() => atB.length === 60, "60 broadcasts at bob");
    assert.deepEqual(Object.keys(atB[0]).sort(), ["body", "id", "inserted_at", "room", "username"]);
    assert.equal(atB[0].body, "m0", "bodies are trimmed");
    assert.equal(atB[0].room, "hist");
    assert.match(atB[0].inserted_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);

    const c = await join(client(chat.url), "hist", "cy");
    assert.equal(c.reply.messages.length, 50);
    assert.deepEqual(c.reply.messages.map((m) => m.id), ids.slice(10));
    const older = await push(c.channel, "history", { before_id: ids[10], limit: 100 });
    assert.deepEqual(older.messages.map((m) => m.body), Array.from({ length: 10 }, (_, i) => `m${i}`));
    const capped = await push(c.channel, "history", { before_id: ids[59] + 1, limit: 1000 });
    assert.equal(capped.messages.length, 60, "limit is capped at 100, fewer exist");

    a.channel.push("typing", {});
    await until(() => typing.some((t) => t.username === "ann"), "typing at bob");
    assert.ok(!typing.some((t) => t.self), "typing is not echoed to the sender");
  } finally {
    await chat.stop();
  }
});

test("with DATABASE_URL, history survives a restart", async () => {
  const db = testDatabase(`chat_e2e_restart_${process.pid}`);
  try {
    let chat = await startChat({ databaseUrl: db.url });
    const a = await join(client(chat.url), "keep", "ann");
    for (const body of ["first", "second"]) assert.equal((await push(a.channel, "new_msg", { body })).status, "ok");
    await chat.stop();
    chat = await startChat({ databaseUrl: db.url });
    try {
      const b = await join(client(chat.url), "keep", "bob");
      assert.deepEqual(b.reply.messages.map((m) => [m.username, m.body]), [["ann", "first"], ["ann", "second"]]);
    } finally {
      await chat.stop();
    }
  } finally {
    sockets.forEach((s) => s.disconnect());
    db.drop();
  }
});

test("a database outage: senders get unavailable, nothing phantom is broadcast, and it recovers without restart", async () => {
  const db = testDatabase(`chat_e2e_outage_${process.pid}`);
  const chat = await startChat({ databaseUrl: db.url });
  try {
    const a = await join(client(chat.url), "outage", "ann");
    const b = await join(client(chat.url), "outage", "bob");
    const atB = [];
    b.channel.on("new_msg", (m) => atB.push(m.body));
    const typingAtB = [];
    b.channel.on("typing", (t) => typingAtB.push(t.username));

    assert.equal((await push(a.channel, "new_msg", { body: "before" })).status, "ok");
    await until(() => atB.includes("before"), "before at bob");

    db.cut();
    const during = await push(a.channel, "new_msg", { body: "during" });
    assert.deepEqual(during, { status: "error", reason: "unavailable" });
    // A typing event sent after the failed message reaches bob after anything the
    // failed message could have broadcast: if "during" had been broadcast, it is here.
    a.channel.push("typing", {});
    await until(() => typingAtB.includes("ann"), "typing sentinel at bob");
    assert.ok(!atB.includes("during"), "no phantom message");

    db.restore();
    let after;
    const deadline = Date.now() + PATIENCE_MS;
    while (Date.now() < deadline) {
      after = await push(a.channel, "new_msg", { body: "after" });
      if (after.status === "ok") break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(after.status, "ok", "messages flow again without a restart");
    await until(() => atB.includes("after"), "after at bob");
    const fresh = await join(client(chat.url), "outage", "cy");
    assert.deepEqual(fresh.reply.messages.map((m) => m.body), ["before", "after"]);
  } finally {
    await chat.stop();
    db.restore();
    db.drop();
  }
});
