// §1: endpoint, connect params, vsn negotiation, connect refusal, check_origin, auth
// token, socket id and server-initiated disconnect.
import { before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import { startServer, disconnect } from "../lib/server.js";
import { Raw, refusedStatus, nextRef, ok } from "../lib/raw.js";
import { phxSocket, disconnectAll, waitFor, joined, rawTest as test, jsTest, serverOptions, viaLongPoll, PATIENCE_MS } from "../lib/phx.js";

let server;
before(async () => (server = await startServer(serverOptions)));
after(async () => server.stop());
afterEach(() => disconnectAll());

async function joinedPush(query) {
  const raw = await Raw.open(server.ws, { query });
  const j = await raw.join("room:params", { user: "p" });
  const push = await raw.next((f) => f[3] === "joined");
  raw.close();
  assert.equal(push[0], j);
  return push[4];
}

test("§1.1 a plain GET on the websocket path is HTTP 400", async () => {
  const res = await fetch(`${server.http}/ws/websocket?vsn=2.0.0`);
  assert.equal(res.status, 400);
});

test("§1.1 a path that is no socket route is HTTP 404", async () => {
  const res = await fetch(`${server.http}/nope/websocket`);
  assert.equal(res.status, 404);
});

test("§1.1 every mount serves <mount>/websocket", async () => {
  for (const path of ["/ws", "/ws/open", "/ws/limited"]) {
    const raw = await Raw.open(server.ws, { path });
    await raw.drain();
    raw.close();
  }
});

test("§1.2 query params reach connect (user_id → assigns)", async () => {
  assert.deepEqual(await joinedPush("user_id=42"), { status: "connected", user_id: "42", auth_token: null });
});

test("§1.2 duplicate keys: the last one wins", async () => {
  assert.equal((await joinedPush("user_id=first&user_id=last")).user_id, "last");
});

test("§1.2 percent-encoded and nested params decode like Plug", async () => {
  assert.equal((await joinedPush("nested%5Ba%5D=1&user_id=a%20b")).user_id, "a b");
});

jsTest("§1.2 phoenix.js nested object and array params (key[sub]=v) are accepted", async () => {
  const socket = phxSocket(server.ws, { params: { nested: { a: 1, b: { c: "x y" } }, list: ["p", "q"], user_id: "nest" } });
  socket.connect();
  const ch = socket.channel("room:nested", {});
  let push;
  ch.on("joined", (p) => (push = p));
  await joined(ch);
  await waitFor(() => push, PATIENCE_MS, "joined push");
  assert.equal(push.user_id, "nest");
});

test("§1.2 empty segments and a trailing & are ignored", async () => {
  assert.equal((await joinedPush("&&user_id=amp&&x=")).user_id, "amp");
});

jsTest("§1.2 phoenix.js re-evaluates params on every reconnect", async () => {
  let id = "one";
  const socket = phxSocket(server.ws, { params: () => ({ user_id: id }) });
  socket.connect();
  const ch = socket.channel("room:reparams", {});
  const seen = [];
  ch.on("joined", (p) => seen.push(p.user_id));
  await joined(ch);
  await waitFor(() => seen.length === 1, PATIENCE_MS, "first joined push");
  id = "two";
  await disconnect(server, "user_sockets:one");
  await waitFor(() => seen.includes("two"), PATIENCE_MS, "rejoin with new params");
  assert.deepEqual(seen, ["one", "two"]);
});

test("§1.3 no vsn selects V1 JSON objects", async () => {
  const raw = await Raw.open(server.ws, { vsn: null });
  raw.send({ topic: "phoenix", event: "heartbeat", payload: {}, ref: "1" });
  assert.deepEqual(await raw.next(), { event: "phx_reply", payload: ok(), ref: "1", topic: "phoenix" });
  raw.close();
});

test("§1.3 vsn=1.0.0 selects V1 JSON objects", async () => {
  const raw = await Raw.open(server.ws, { vsn: "1.0.0" });
  raw.send({ topic: "phoenix", event: "heartbeat", payload: {}, ref: "2" });
  assert.deepEqual(await raw.next(), { event: "phx_reply", payload: ok(), ref: "2", topic: "phoenix" });
  raw.close();
});

test("§1.3 vsn=2.0.0 selects V2 JSON arrays", async () => {
  const raw = await Raw.open(server.ws, { vsn: "2.0.0" });
  raw.send([null, "3", "phoenix", "heartbeat", {}]);
  assert.deepEqual(await raw.next(), [null, "3", "phoenix", "phx_reply", ok()]);
  raw.close();
});

for (const vsn of ["2.1.0", "abc", "123.1.1"]) {
  test(`§1.3 vsn=${vsn} is refused with HTTP 403`, async () => {
    assert.equal(await refusedStatus(server.ws, { vsn }), 403);
  });
}

test("§1.4 connect refusal is HTTP 403", async () => {
  assert.equal(await refusedStatus(server.ws, { query: "reject=true" }), 403);
});

test("§1.4 a refusal can map to another status (429)", async () => {
  assert.equal(await refusedStatus(server.ws, { query: "ratelimit=true" }), 429);
});

jsTest("§1.4 phoenix.js errors on refusal and keeps reconnecting until accepted", async () => {
  let reject = "true";
  const socket = phxSocket(server.ws, { params: () => ({ reject }) });
  let errors = 0;
  let opened = false;
  socket.onError(() => {
    errors += 1;
    if (errors === 2) reject = "false";
  });
  socket.onOpen(() => (opened = true));
  socket.connect();
  await waitFor(() => opened, PATIENCE_MS, "open after refusals");
  assert.ok(errors >= 2);
});

test("§1.5 no Origin header passes check_origin", async () => {
  const raw = await Raw.open(server.ws);
  await raw.drain();
  raw.close();
});

for (const [origin, expected] of [
  ["http://example.com", 101],
  ["https://example.com:8080", 101],
  ["http://evil.com", 403],
  ["http://sub.example.com", 403],
  ["null", 403],
]) {
  test(`§1.5 Origin ${origin} on /ws (check_origin ["//example.com"]) → ${expected}`, async () => {
    assert.equal(await refusedStatus(server.ws, { headers: { Origin: origin } }), expected);
  });
}

test("§1.5 a socket with check_origin disabled accepts any origin", async () => {
  assert.equal(await refusedStatus(server.ws, { path: "/ws/open", headers: { Origin: "http://evil.com" } }), 101);
});

jsTest("§1.6 phoenix.js authToken: subprotocol answered and token reaches connect", async () => {
  const socket = phxSocket(server.ws, { authToken: "s3cr3t-token" });
  socket.connect();
  const ch = socket.channel("room:auth", {});
  let push;
  ch.on("joined", (p) => (push = p));
  await joined(ch);
  await waitFor(() => push, PATIENCE_MS, "joined push");
  assert.equal(push.auth_token, "s3cr3t-token");
  if (!viaLongPoll) assert.equal(socket.conn.protocol, "phoenix");
});

test("§1.6 offering only 'phoenix' gets 'phoenix' back", async () => {
  const raw = await Raw.open(server.ws, { protocols: ["phoenix"] });
  assert.equal(raw.ws.protocol, "phoenix");
  raw.close();
});

test("§1.6 a bearer token whose base64 is standard, not URL-safe, decodes", async () => {
  // "a?b>" → standard base64 "YT9iPg" (no '+' or '/', so it is a valid subprotocol token).
  const raw = await Raw.open(server.ws, { protocols: ["phoenix", "base64url.bearer.phx.YT9iPg"] });
  const j = await raw.join("room:tok", {});
  const push = await raw.next((f) => f[3] === "joined");
  assert.equal(push[0], j);
  assert.equal(push[4].auth_token, "a?b>");
  raw.close();
});

test("§1.7 disconnect on the socket id closes with 1001 and no channel frames", async () => {
  const raw = await Raw.open(server.ws, { query: "user_id=d1" });
  await raw.join("room:d1", {});
  await raw.drain();
  await disconnect(server, "user_sockets:d1");
  const { code } = await raw.closed();
  assert.equal(code, 1001);
  assert.deepEqual(
    raw.frames.filter((f) => f[3] === "phx_close" || f[3] === "phx_error"),
    [],
    "channels die silently",
  );
});

test("§1.7 disconnect closes only the sockets with that id", async () => {
  const a = await Raw.open(server.ws, { query: "user_id=d2" });
  const b = await Raw.open(server.ws, { query: "user_id=d3" });
  await a.drain();
  await b.drain();
  await disconnect(server, "user_sockets:d2");
  assert.equal((await a.closed()).code, 1001);
  await b.drain();
  b.close();
});

test("§1.7 disconnect closes a V1 socket with 1001 too", async () => {
  const raw = await Raw.open(server.ws, { vsn: "1.0.0", query: "user_id=d5" });
  raw.send({ topic: "room:d5", event: "phx_join", payload: {}, ref: "1" });
  await raw.next((f) => f.event === "phx_reply");
  await disconnect(server, "user_sockets:d5");
  assert.equal((await raw.closed()).code, 1001);
  assert.deepEqual(raw.frames.filter((f) => f.event === "phx_close" || f.event === "phx_error"), []);
});

jsTest("§1.7 phoenix.js reconnects after disconnect and rejoins with a new join_ref", async () => {
  const socket = phxSocket(server.ws, { params: { user_id: "d4" } });
  socket.connect();
  const ch = socket.channel("room:d4", {});
  await joined(ch);
  const first = ch.joinRef();
  await disconnect(server, "user_sockets:d4");
  await waitFor(() => ch.joinRef() !== first && ch.state === "joined", PATIENCE_MS, "rejoin");
  assert.notEqual(ch.joinRef(), first);
});

test("§8.1 refs are opaque strings echoed back", async () => {
  const raw = await Raw.open(server.ws);
  const ref = nextRef();
  raw.send([null, ref, "phoenix", "heartbeat", {}]);
  assert.deepEqual(await raw.next(), [null, ref, "phoenix", "phx_reply", ok()]);
  raw.close();
});
