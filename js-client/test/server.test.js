// The chat app's room channel through phoenix.js in Node: validation, history, typing,
// persistence across a restart, a database outage and a partition mid-conversation, and
// the flood limits (typing throttle, room-creation budget).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { startChat, testDatabase } from "../lib/chat-server.js";
import { partitionProxy } from "../lib/partition-proxy.js";
import { PATIENCE_MS, client, disconnectAll, join as joinTopic, push, until } from "../lib/channel.js";

after(disconnectAll);

/** Joins `room:<room>` as the guest `username`. */
const join = (socket, room, username) => joinTopic(socket, `room:${room}`, { username });

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
    assert.match(good.reply.me.author, /^guest:[0-9a-f]{32}$/);
    assert.deepEqual(good.reply, {
      messages: [], gap: false, changed: [], refetch: false, seq: 0,
      me: { author: good.reply.me.author, username: "Ada", guest: true },
    });
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
    assert.deepEqual(Object.keys(atB[0]).sort(), [
      "attachments", "author", "body", "client_id", "deleted", "edited_at", "guest", "id", "inserted_at",
      "mentions", "parent_id", "reactions", "reactors", "reply_count", "room", "seq", "username",
    ]);
    assert.match(atB[0].author, /^guest:[0-9a-f]{32}$/);
    assert.equal(atB[0].seq, atB[0].id, "a new message's seq is its id");
    assert.deepEqual(
      { ...atB[0], id: 0, inserted_at: "", author: "", seq: 0 },
      { id: 0, room: "hist", username: "ann", author: "", guest: true, body: "m0", inserted_at: "", parent_id: null,
        reply_count: 0, edited_at: null, deleted: false, reactions: {}, reactors: {}, attachments: [], mentions: [],
        client_id: null, seq: 0 },
    );
    assert.equal(atB[0].body, "m0", "bodies are trimmed");
    assert.equal(atB[0].room, "hist");
    assert.match(atB[0].inserted_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);

    const c = await join(client(chat.url), "hist", "cy");
    assert.equal(c.reply.messages.length, 50);
    assert.deepEqual(c.reply.messages.map((m) => m.id), ids.slice(10));
    const older = await push(c.channel, "history", { before_id: ids[10], limit: 100 });
    assert.deepEqual(older.messages.map((m) => m.body), Array.from({ length: 10 }, (_, i) => `m${i}`));
    const most = await push(c.channel, "history", { before_id: ids[59] + 1, limit: 100 });
    assert.equal(most.messages.length, 60, "up to 100, fewer exist");

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
    disconnectAll();
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

const CONTROL_REFUSED = "message may not contain control characters (line breaks and tabs are fine)";

for (const store of ["memory", "postgres"]) {
  test(`control characters in a body are refused with a reason and nothing is broadcast (${store} store)`, async () => {
    const db = store === "postgres" ? testDatabase(`chat_e2e_nul_${process.pid}`) : null;
    const chat = await startChat(db ? { databaseUrl: db.url } : {});
    try {
      const a = await join(client(chat.url), "ctrl", "ann");
      const b = await join(client(chat.url), "ctrl", "bob");
      const atB = [];
      b.channel.on("new_msg", (m) => atB.push(m.body));
      for (const body of ["a\u0000b", "\u0000", "clear\u001b[2J", "bell\u0007", "del\u007f", "c1\u0085x"]) {
        assert.deepEqual(await push(a.channel, "new_msg", { body }), { status: "error", reason: CONTROL_REFUSED }, JSON.stringify(body));
      }
      const text = "line 1\nline 2\ttabbed\r\nline 3";
      assert.equal((await push(a.channel, "new_msg", { body: text })).status, "ok", "line breaks and tabs are text");
      await until(() => atB.length >= 1, "the valid message at bob");
      assert.deepEqual(atB, [text], "only the valid message was broadcast");
      const fresh = await join(client(chat.url), "ctrl", "cy");
      assert.deepEqual(fresh.reply.messages.map((m) => m.body), [text], "only the valid message was stored");
      assert.ok(!chat.logs.some((l) => /store unavailable/.test(l)), "bad input is not a store failure");
    } finally {
      await chat.stop();
      db?.drop();
    }
  });
}

test("history names the field that is wrong; limits outside 1..100 are refused, not clamped", async () => {
  const chat = await startChat();
  try {
    const a = await join(client(chat.url), "pages", "ann");
    for (let i = 0; i < 3; i++) assert.equal((await push(a.channel, "new_msg", { body: `m${i}` })).status, "ok");
    const limitRefused = { status: "error", reason: "limit must be an integer from 1 to 100" };
    for (const limit of [-1, 0, 1.5, "10", 2 ** 40, 101, 1000, true, [10]]) {
      assert.deepEqual(await push(a.channel, "history", { limit }), limitRefused, JSON.stringify(limit));
    }
    const beforeRefused = { status: "error", reason: "before_id must be an integer" };
    for (const before_id of ["10", 1.5, 2 ** 64, false, {}]) {
      assert.deepEqual(await push(a.channel, "history", { before_id, limit: 10 }), beforeRefused, JSON.stringify(before_id));
    }
    const page = (r) => [r.status, r.messages?.map((m) => m.body)];
    assert.deepEqual(page(await push(a.channel, "history", {})), ["ok", ["m0", "m1", "m2"]]);
    assert.deepEqual(page(await push(a.channel, "history", { limit: null, before_id: null })), ["ok", ["m0", "m1", "m2"]]);
    assert.deepEqual(page(await push(a.channel, "history", { limit: 1 })), ["ok", ["m2"]]);
    assert.deepEqual(page(await push(a.channel, "history", { limit: 100 })), ["ok", ["m0", "m1", "m2"]]);
  } finally {
    await chat.stop();
  }
});

test("typing is throttled per user per room: 200 pushes from two tabs of one user reach others a handful of times", async () => {
  // The per-socket rate limit (its own test below) would refuse most of this burst first.
  const chat = await startChat({ env: { RATE_LIMIT: "0" } });
  try {
    // Two tabs of one guest: one guest_key (another key would be another guest, who
    // could not take the name: docs/chat.md, "Guest names").
    const ann = { guest_key: "a".repeat(40) };
    const tab1 = await join(client(chat.url, ann), "typing", "ann");
    const tab2 = await join(client(chat.url, ann), "typing", "ann");
    const bob = await join(client(chat.url), "typing", "bob");
    const typingAtBob = [];
    const messagesAtBob = [];
    bob.channel.on("typing", (t) => typingAtBob.push(t.username));
    bob.channel.on("new_msg", (m) => messagesAtBob.push(m.body));
    const typingAtAnn = [];
    tab1.channel.on("typing", (t) => typingAtAnn.push(t.username));

    const started = Date.now();
    for (let i = 0; i < 100; i++) {
      tab1.channel.push("typing", {});
      tab2.channel.push("typing", {});
    }
    // Each tab's broadcasts reach bob in the order its pushes were handled, so once both
    // sentinels are there every typing before them has been handled (or dropped).
    assert.equal((await push(tab1.channel, "new_msg", { body: "done-1" })).status, "ok");
    assert.equal((await push(tab2.channel, "new_msg", { body: "done-2" })).status, "ok");
    await until(() => messagesAtBob.includes("done-1") && messagesAtBob.includes("done-2"), "sentinels at bob");
    const seconds = (Date.now() - started) / 1000;

    assert.ok(typingAtBob.length >= 1, "typing still reaches others");
    assert.ok(typingAtBob.every((u) => u === "ann"));
    // One per second per user per room, both tabs together: 1 + elapsed seconds at most.
    assert.ok(typingAtBob.length <= 2 + Math.ceil(seconds), `${typingAtBob.length} typing events in ${seconds} s`);

    // Another user's budget is their own.
    bob.channel.push("typing", {});
    await until(() => typingAtAnn.includes("bob"), "bob's typing at ann");
  } finally {
    await chat.stop();
  }
});

test("room creation is capped per client address: a burst of 10, then a readable refusal; existing rooms stay joinable", async () => {
  // Defaults: burst 10, one more every 6 s. The per-socket join rate limit (tested
  // below) would refuse this burst of joins first.
  const chat = await startChat({ env: { RATE_LIMIT: "0" } });
  try {
    const s = client(chat.url);
    const started = Date.now();
    const results = [];
    for (let i = 0; i < 30; i++) results.push(await join(s, `new-${i}`, "ann"));
    const elapsed = Date.now() - started;

    assert.ok(results.slice(0, 10).every((r) => r.ok), "the first 10 new rooms are created");
    const created = results.filter((r) => r.ok).length;
    assert.ok(created <= 10 + 1 + Math.floor(elapsed / 6000), `${created} rooms created in ${elapsed} ms`);
    const refused = results.filter((r) => !r.ok);
    assert.ok(refused.length >= 30 - created && refused.length > 0);
    for (const r of refused) assert.deepEqual(r.reply, { reason: "too many new rooms, try again later" });

    // Joining existing rooms is never limited, from the same address either.
    const other = client(chat.url);
    for (let i = 0; i < 10; i++) assert.equal((await join(other, `new-${i}`, "bob")).ok, true, `new-${i}`);
    // A refused room was not created: it is still refused, while the budget is spent.
    const again = await join(other, "new-29", "bob");
    if (!again.ok) assert.deepEqual(again.reply, { reason: "too many new rooms, try again later" });
  } finally {
    await chat.stop();
  }
});

test("the per-socket rate limit refuses a flood with a reason, then closes the socket, and phoenix.js reconnects", async () => {
  const chat = await startChat(); // defaults: 50 messages/s, burst 100, close past 50 refused in 1 s
  try {
    const s = client(chat.url);
    const ann = await join(s, "flood", "ann");
    let closed = 0;
    s.onClose(() => closed++);
    const replies = await Promise.all(
      Array.from({ length: 140 }, (_, i) => push(ann.channel, "new_msg", { body: `m${i}` })),
    );
    const ok = replies.filter((r) => r.status === "ok").length;
    const limited = replies.filter((r) => r.status === "error" && r.reason === "rate limited").length;
    // The burst of 100 less the join, plus whatever refilled meanwhile.
    assert.ok(ok >= 99 && ok < 140, `${ok} accepted`);
    assert.equal(ok + limited, 140, "every other push is refused with its reason");
    assert.equal(closed, 0, "refusals alone do not close the socket");

    // A client that ignores the refusals is closed (1008); phoenix.js reconnects and rejoins.
    for (let i = 0; i < 400; i++) ann.channel.push("typing", {});
    await until(() => closed > 0, "the flooding socket closed");
    await until(() => ann.channel.state === "joined" && s.isConnected(), "rejoined after the close");
  } finally {
    await chat.stop();
  }
});

test("a database partition: a new_msg in flight answers unavailable within the store timeout, and storing resumes after", async () => {
  const db = testDatabase(`chat_e2e_partition_${process.pid}`);
  const proxy = await partitionProxy();
  const timeoutMs = 1500;
  const chat = await startChat({ databaseUrl: proxy.url(db.url), env: { STORE_TIMEOUT_MS: String(timeoutMs) } });
  try {
    const a = await join(client(chat.url), "partition", "ann");
    const b = await join(client(chat.url), "partition", "bob");
    const atB = [];
    b.channel.on("new_msg", (m) => atB.push(m.body));
    assert.equal((await push(a.channel, "new_msg", { body: "before" })).status, "ok");

    proxy.partitionWhenSent("during-partition");
    const started = Date.now();
    const during = await push(a.channel, "new_msg", { body: "during-partition" }, 30000);
    const took = Date.now() - started;
    assert.ok(proxy.partitioned, "the partition hit the INSERT in flight");
    assert.deepEqual(during, { status: "error", reason: "unavailable" });
    assert.ok(took < timeoutMs + 5000, `answered after ${took} ms`);

    proxy.heal();
    let after;
    for (let i = 0; i < 100; i++) {
      after = await push(a.channel, "new_msg", { body: "after" });
      if (after.status === "ok") break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(after.status, "ok", "messages are stored again once the partition heals");
    await until(() => atB.includes("after"), "after at bob");
    // Unacknowledged, so never broadcast (it may still have committed once delivered).
    assert.ok(!atB.includes("during-partition"), "no broadcast for a message that was not acknowledged");
    const fresh = await join(client(chat.url), "partition", "cy");
    const bodies = fresh.reply.messages.map((m) => m.body);
    assert.equal(bodies.filter((x) => x === "before").length, 1, bodies.join());
    assert.ok(bodies.includes("after"), bodies.join());
    assert.ok(bodies.filter((x) => x === "during-partition").length <= 1, bodies.join());
  } finally {
    await chat.stop();
    proxy.close();
    db.drop();
  }
});
