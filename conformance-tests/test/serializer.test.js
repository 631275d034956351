// §2: message shapes of V1 and V2, V2 binary frames, malformed input.
import { before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import { startServer } from "../lib/server.js";
import { Raw, nextRef, ok } from "../lib/raw.js";
import { phxSocket, disconnectAll, joined, waitFor, rawTest as test, jsTest, serverOptions, PATIENCE_MS } from "../lib/phx.js";

let server;
before(async () => (server = await startServer(serverOptions)));
after(async () => server.stop());
afterEach(() => disconnectAll());

async function v1() {
  return Raw.open(server.ws, { vsn: "1.0.0" });
}

/** Binary client push (§2.4 kind 0, client layout). */
function clientPush(joinRef, ref, topic, event, payload) {
  const strings = [joinRef, ref, topic, event].map((s) => Buffer.from(s, "utf8"));
  return Buffer.concat([Buffer.from([0, ...strings.map((s) => s.length)]), ...strings, Buffer.from(payload)]);
}

test("§2.2 V1 join reply is an object without join_ref", async () => {
  const raw = await v1();
  raw.send({ topic: "room:v1", event: "phx_join", payload: {}, ref: "1" });
  const reply = await raw.next((f) => f.event === "phx_reply");
  assert.deepEqual(reply, { event: "phx_reply", payload: ok(), ref: "1", topic: "room:v1" });
  assert.ok(!("join_ref" in reply));
  raw.close();
});

test("§2.2 V1 pushes and broadcasts carry ref null and no join_ref", async () => {
  const raw = await v1();
  raw.send({ topic: "room:v1b", event: "phx_join", payload: { user: "v" }, ref: "1" });
  const push = await raw.next((f) => f.event === "joined");
  assert.deepEqual(Object.keys(push).sort(), ["event", "payload", "ref", "topic"]);
  assert.equal(push.ref, null);
  const broadcast = await raw.next((f) => f.event === "user_entered");
  assert.deepEqual(broadcast, { event: "user_entered", payload: { user: "v" }, ref: null, topic: "room:v1b" });
  raw.close();
});

test("§2.2 V1 join_ref sent by the client is accepted but never echoed", async () => {
  const raw = await v1();
  raw.send({ topic: "room:v1c", event: "phx_join", payload: {}, ref: "7", join_ref: "7" });
  await raw.next((f) => f.event === "phx_reply");
  raw.send({ topic: "room:v1c", event: "echo", payload: { a: 1 }, ref: "8", join_ref: "7" });
  const reply = await raw.next((f) => f.ref === "8");
  assert.deepEqual(reply, { event: "phx_reply", payload: ok({ a: 1 }), ref: "8", topic: "room:v1c" });
  raw.close();
});

test("§2.2 V1 phx_error and phx_close carry the stored join_ref (null for a V1 join) as ref", async () => {
  const raw = await v1();
  raw.send({ topic: "room:v1err", event: "phx_join", payload: {}, ref: "1" });
  await raw.next((f) => f.event === "phx_reply");
  raw.send({ topic: "room:v1err", event: "boom", payload: {}, ref: "2" });
  assert.deepEqual(await raw.next((f) => f.event === "phx_error"), {
    event: "phx_error",
    payload: { reason: "channel_crash" },
    ref: null,
    topic: "room:v1err",
  });
  raw.send({ topic: "room:v1close", event: "phx_join", payload: {}, ref: "3" });
  await raw.next((f) => f.event === "phx_reply" && f.ref === "3");
  raw.send({ topic: "room:v1close", event: "phx_leave", payload: {}, ref: "4" });
  assert.deepEqual(await raw.next((f) => f.ref === "4"), { event: "phx_reply", payload: ok(), ref: "4", topic: "room:v1close" });
  assert.deepEqual(await raw.next((f) => f.event === "phx_close"), { event: "phx_close", payload: {}, ref: null, topic: "room:v1close" });
  raw.close();
});

test("§2.2 V1 server broadcast and unmatched-topic reply shapes", async () => {
  const raw = await v1();
  raw.send({ topic: "nowhere:v1", event: "phx_join", payload: {}, ref: "5" });
  assert.deepEqual(await raw.next(), {
    event: "phx_reply",
    payload: { response: { reason: "unmatched topic" }, status: "error" },
    ref: "5",
    topic: "nowhere:v1",
  });
  raw.send({ topic: "phoenix", event: "heartbeat", payload: {}, ref: null });
  assert.deepEqual(await raw.next(), { event: "phx_reply", payload: ok(), ref: null, topic: "phoenix" });
  raw.close();
});

test("§2.2 a binary frame on a V1 socket closes it with 1011", async () => {
  const raw = await v1();
  raw.sendBinary(clientPush("1", "2", "room:x", "bin", [1]));
  assert.equal((await raw.closed()).code, 1011);
});

test("§2.2 a V1 object without a required key closes with 1011", async () => {
  const raw = await v1();
  raw.send({ topic: "room:x", event: "phx_join", ref: "1" });
  assert.equal((await raw.closed()).code, 1011);
});

test("§2.3 V2 reply is [join_ref, ref, topic, phx_reply, {response, status}]", async () => {
  const raw = await Raw.open(server.ws);
  raw.send(["5", "5", "room:v2", "phx_join", {}]);
  assert.deepEqual(await raw.next(), ["5", "5", "room:v2", "phx_reply", ok()]);
  raw.close();
});

test("§2.3 join_ref and ref strings are echoed exactly (any characters)", async () => {
  const raw = await Raw.open(server.ws);
  const j = "jöin-ref/ü \"q\" 🚀";
  raw.send([j, j, "room:exact", "phx_join", {}]);
  assert.deepEqual(await raw.next(), [j, j, "room:exact", "phx_reply", ok()]);
  assert.deepEqual((await raw.next((f) => f[3] === "joined"))[0], j);
  const ref = "réf\u0000x";
  raw.send([j, ref, "room:exact", "echo", { s: "ü" }]);
  assert.deepEqual(await raw.next((f) => f[1] === ref), [j, ref, "room:exact", "phx_reply", ok({ s: "ü" })]);
  raw.close();
});

test("§2.3 a phx_error and a phx_close are [J, J, topic, event, payload]", async () => {
  const raw = await Raw.open(server.ws);
  raw.send(["e1", "e1", "room:shape-err", "phx_join", {}]);
  raw.send(["c1", "c1", "room:shape-close", "phx_join", {}]);
  raw.send(["e1", "e2", "room:shape-err", "boom", {}]);
  raw.send(["c1", "c2", "room:shape-close", "stop", {}]);
  assert.deepEqual(await raw.next((f) => f[3] === "phx_error"), ["e1", "e1", "room:shape-err", "phx_error", { reason: "channel_crash" }]);
  assert.deepEqual(await raw.next((f) => f[3] === "phx_close"), ["c1", "c1", "room:shape-close", "phx_close", {}]);
  raw.close();
});

test("§2.3 V2 elements beyond the fifth are ignored", async () => {
  const raw = await Raw.open(server.ws);
  raw.send([null, "9", "phoenix", "heartbeat", {}, "extra", 42]);
  assert.deepEqual(await raw.next(), [null, "9", "phoenix", "phx_reply", ok()]);
  raw.close();
});

test("§2.3 a numeric ref is echoed as a number", async () => {
  const raw = await Raw.open(server.ws);
  raw.send([null, 77, "phoenix", "heartbeat", {}]);
  assert.deepEqual(await raw.next(), [null, 77, "phoenix", "phx_reply", ok()]);
  raw.close();
});

/** The raw text of every text frame `raw` receives from now on. */
function texts(raw) {
  const seen = [];
  raw.ws.on("message", (data, isBinary) => {
    if (!isBinary) seen.push(data.toString("utf8"));
  });
  return seen;
}

test("§2.3 object and array refs are echoed exactly, and an object join_ref routes to its channel", async () => {
  const raw = await Raw.open(server.ws);
  const seen = texts(raw);
  const j = '{"tab":1,"n":[2,"x"]}';
  raw.send(`[${j},["r",{}],"room:objref","phx_join",{}]`);
  await raw.next((f) => f[3] === "phx_reply");
  assert.equal(seen[0], `[${j},["r",{}],"room:objref","phx_reply",{"response":{},"status":"ok"}]`);
  // The join_ref equals the stored one, so the push reaches the channel and is echoed.
  raw.send(`[${j},[1,[2]],"room:objref","echo",{"a":1}]`);
  await raw.next((f) => f[3] === "phx_reply" && Array.isArray(f[1]));
  assert.ok(seen.includes(`[${j},[1,[2]],"room:objref","phx_reply",{"response":{"a":1},"status":"ok"}]`), JSON.stringify(seen));
  raw.close();
});

test("§2.2 V1 object and array refs are echoed exactly", async () => {
  const raw = await v1();
  const seen = texts(raw);
  raw.send('{"topic":"room:objref1","event":"phx_join","payload":{},"ref":{"a":[1]},"join_ref":[{"j":1}]}');
  await raw.next((f) => f.event === "phx_reply");
  assert.equal(seen[0], '{"event":"phx_reply","payload":{"response":{},"status":"ok"},"ref":{"a":[1]},"topic":"room:objref1"}');
  raw.send('{"topic":"phoenix","event":"heartbeat","payload":{},"ref":[]}');
  await raw.next((f) => f.topic === "phoenix");
  assert.ok(seen.includes('{"event":"phx_reply","payload":{"response":{},"status":"ok"},"ref":[],"topic":"phoenix"}'), JSON.stringify(seen));
  raw.close();
});

test("§2.4 binary push in: server push kind 0 (no ref) then binary reply kind 1", async () => {
  const raw = await Raw.open(server.ws);
  const j = await raw.join("room:bin", {});
  await raw.drain();
  raw.sendBinary(clientPush(j, "b1", "room:bin", "binary_event", [9, 8, 7]));
  const push = await raw.next((f) => f.binary && f.binary[0] === 0);
  const expectedPush = Buffer.concat([
    Buffer.from([0, j.length, 8, 12]),
    Buffer.from(j + "room:binbinary_event"),
    Buffer.from([0, 1]),
  ]);
  assert.deepEqual(push.binary, expectedPush);
  const reply = await raw.next((f) => f.binary && f.binary[0] === 1);
  const expectedReply = Buffer.concat([
    Buffer.from([1, j.length, 2, 8, 2]),
    Buffer.from(j + "b1room:binok"),
    Buffer.from([9, 8, 7, 3, 4]),
  ]);
  assert.deepEqual(reply.binary, expectedReply);
  raw.close();
});

test("§2.4 a binary event can trigger a JSON broadcast", async () => {
  const raw = await Raw.open(server.ws);
  const j = await raw.join("room:bin2", {});
  raw.sendBinary(clientPush(j, "b2", "room:bin2", "bin", [1, 2, 3]));
  const ack = await raw.next((f) => Array.isArray(f) && f[3] === "bin_ack");
  assert.deepEqual(ack, [null, null, "room:bin2", "bin_ack", {}]);
  raw.close();
});

test("§2.4 phoenix.js sends an ArrayBuffer and receives ArrayBuffers", async () => {
  const socket = phxSocket(server.ws);
  socket.connect();
  const ch = socket.channel("room:bin3", {});
  let pushed;
  ch.on("binary_event", (p) => (pushed = p));
  await joined(ch);
  const reply = await new Promise((resolve) =>
    ch.push("binary_event", new Uint8Array([5, 6]).buffer).receive("ok", resolve),
  );
  assert.ok(reply instanceof ArrayBuffer);
  assert.deepEqual([...new Uint8Array(reply)], [5, 6, 3, 4]);
  await waitFor(() => pushed, PATIENCE_MS, "binary push");
  assert.deepEqual([...new Uint8Array(pushed)], [0, 1]);
});

test("§2.4 binary client push with empty refs decodes them as null", async () => {
  const raw = await Raw.open(server.ws);
  raw.sendBinary(clientPush("", "", "room:none", "x", [1]));
  // Not joined: unmatched topic, with the null ref echoed.
  const reply = await raw.next();
  assert.deepEqual(reply, [null, null, "room:none", "phx_reply", { response: { reason: "unmatched topic" }, status: "error" }]);
  raw.close();
});

for (const [name, send, code] of [
  ["invalid JSON", (r) => r.send("[\"1\",\"1\",\"room:x\""), 1011],
  ["a V2 array of four elements", (r) => r.send(["1", "1", "room:x", "phx_join"]), 1011],
  ["JSON that is not an array", (r) => r.send({ topic: "room:x" }), 1011],
  ["a binary frame of unknown kind", (r) => r.sendBinary([7, 0, 0, 0, 0]), 1011],
  ["a truncated binary frame", (r) => r.sendBinary([0, 5, 5, 5]), 1011],
  ["a text frame of invalid UTF-8", (r) => r.sendRawText([0x5b, 0xff, 0xfe, 0x5d]), 1007],
]) {
  test(`§2.6 ${name} closes the socket with ${code}`, async () => {
    const raw = await Raw.open(server.ws);
    await raw.join("room:bad", {});
    send(raw);
    assert.equal((await raw.closed()).code, code);
    // The server survives it: a new connection is served.
    const next = await Raw.open(server.ws);
    const ref = nextRef();
    next.send([null, ref, "phoenix", "heartbeat", {}]);
    assert.deepEqual(await next.next(), [null, ref, "phoenix", "phx_reply", ok()]);
    next.close();
  });
}

test("§2.6 after malformed input the server keeps serving new connections", async () => {
  const bad = await Raw.open(server.ws);
  bad.send("}{");
  await bad.closed();
  const good = await Raw.open(server.ws);
  const ref = nextRef();
  good.send([null, ref, "phoenix", "heartbeat", {}]);
  assert.deepEqual(await good.next(), [null, ref, "phoenix", "phx_reply", ok()]);
  good.close();
});

test("§2.6 a non-string event on a joined topic crashes only that channel or the socket, never the server", async () => {
  const raw = await Raw.open(server.ws);
  await raw.join("room:odd", {});
  raw.send(["x", "1", "room:odd", 5, {}]);
  // Phoenix crashes the channel (no matching handle_in); phx-rs refuses the frame (1011).
  const outcome = await new Promise((resolve) => {
    raw.next((f) => f[3] === "phx_error").then(() => resolve("phx_error"), () => {});
    raw.closed().then((c) => resolve(c.code));
  });
  assert.ok(outcome === "phx_error" || outcome === 1011, `got ${outcome}`);
  const next = await Raw.open(server.ws);
  await next.drain();
  next.close();
});
