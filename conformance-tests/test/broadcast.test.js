// §5: broadcast, broadcast_from, intercepts, server broadcasts, per-serializer encoding.
import { before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import { startServer, serverBroadcast } from "../lib/server.js";
import { Raw, nextRef, ok } from "../lib/raw.js";
import { phxSocket, disconnectAll, joined, waitFor, rawTest as test, jsTest, serverOptions, viaLongPoll, PATIENCE_MS } from "../lib/phx.js";

let server;
before(async () => (server = await startServer(serverOptions)));
after(async () => server.stop());
afterEach(() => disconnectAll());

async function member(topic) {
  const raw = await Raw.open(server.ws);
  const j = await raw.join(topic, {});
  await raw.drain();
  return { raw, j };
}

test("§5 a broadcast reaches every subscriber, the sender included", async () => {
  const a = await member("room:b1");
  const b = await member("room:b2-unrelated");
  const c = await member("room:b1");
  await a.raw.push(a.j, "room:b1", "new_msg", { body: "hi" });
  for (const m of [a, c]) {
    const got = await m.raw.next((f) => f[3] === "new_msg");
    assert.equal(got[4].body, "hi");
  }
  assert.deepEqual((await b.raw.drain()).filter((f) => f[3] === "new_msg"), [], "other topics get nothing");
  for (const m of [a, b, c]) m.raw.close();
});

test("§5 an intercepted event arrives as a push with each receiver's own join_ref", async () => {
  const a = await member("room:i1");
  const b = await member("room:i1");
  await a.raw.push(a.j, "room:i1", "new_msg", { body: "x" });
  assert.deepEqual(await a.raw.next((f) => f[3] === "new_msg"), [a.j, null, "room:i1", "new_msg", { body: "x", transport: ":websocket" }]);
  assert.deepEqual(await b.raw.next((f) => f[3] === "new_msg"), [b.j, null, "room:i1", "new_msg", { body: "x", transport: ":websocket" }]);
  a.raw.close();
  b.raw.close();
});

test("§5 broadcast_from reaches everyone but the sender", async () => {
  const a = await member("room:f1");
  const b = await member("room:f1");
  const reply = await a.raw.push(a.j, "room:f1", "broadcast_from", { n: 5 });
  assert.deepEqual(reply[4], ok());
  assert.deepEqual(await b.raw.next((f) => f[3] === "broadcast_from"), [null, null, "room:f1", "broadcast_from", { n: 5 }]);
  assert.deepEqual((await a.raw.drain()).filter((f) => f[3] === "broadcast_from"), []);
  a.raw.close();
  b.raw.close();
});

test("§5 a fastlane broadcast has join_ref and ref null", async () => {
  const a = await member("room:fl");
  const b = await Raw.open(server.ws);
  b.send(["j", "j", "room:fl", "phx_join", { user: "zed" }]);
  assert.deepEqual(await a.raw.next((f) => f[3] === "user_entered"), [null, null, "room:fl", "user_entered", { user: "zed" }]);
  a.raw.close();
  b.close();
});

test("§5 V1 and V2 subscribers each get the broadcast in their own encoding", async () => {
  const v2 = await member("room:mixed");
  const v1 = await Raw.open(server.ws, { vsn: "1.0.0" });
  v1.send({ topic: "room:mixed", event: "phx_join", payload: {}, ref: "1" });
  await v1.next((f) => f.event === "phx_reply");
  await v1.drain();
  await serverBroadcast(server, "room:mixed", "news", { n: 1 });
  assert.deepEqual(await v2.raw.next((f) => f[3] === "news"), [null, null, "room:mixed", "news", { n: 1 }]);
  assert.deepEqual(await v1.next((f) => f.event === "news"), { event: "news", payload: { n: 1 }, ref: null, topic: "room:mixed" });
  v2.raw.close();
  v1.close();
});

test("§5 a server broadcast reaches every subscriber of the topic", async () => {
  const members = [];
  for (let i = 0; i < 5; i++) members.push(await member("room:srv"));
  await serverBroadcast(server, "room:srv", "tick", { t: 1 });
  for (const m of members) {
    assert.deepEqual(await m.raw.next((f) => f[3] === "tick"), [null, null, "room:srv", "tick", { t: 1 }]);
    m.raw.close();
  }
});

test("§5 a channel that left receives no more broadcasts", async () => {
  const a = await member("room:gone");
  a.raw.send([a.j, nextRef(), "room:gone", "phx_leave", {}]);
  await a.raw.next((f) => f[3] === "phx_close");
  await serverBroadcast(server, "room:gone", "late", {});
  assert.deepEqual((await a.raw.drain()).filter((f) => f[3] === "late"), []);
  a.raw.close();
});

jsTest("§5 phoenix.js receives broadcasts on ch.on and replies on receive", async () => {
  const s1 = phxSocket(server.ws);
  const s2 = phxSocket(server.ws);
  s1.connect();
  s2.connect();
  const c1 = s1.channel("room:js-b", {});
  const c2 = s2.channel("room:js-b", {});
  const got = [];
  c2.on("new_msg", (p) => got.push(p));
  await joined(c1);
  await joined(c2);
  c1.push("new_msg", { body: "from c1" });
  await waitFor(() => got.length === 1, PATIENCE_MS, "broadcast at c2");
  assert.deepEqual(got[0], { body: "from c1", transport: viaLongPoll ? ":longpoll" : ":websocket" });
});
