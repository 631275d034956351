// docs/gateway.md, "When the backend fails": each way a backend can fail, the exact
// answer the client gets, and the socket still heartbeating (also while a hook hangs).
import { test, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import { startGateway, fakeBackend, backendToml, Raw, upgradeStatus, waitFor, SECRET } from "../lib/harness.js";

const unavailable = { status: "error", response: { reason: "unavailable" } };
const ok = (response = {}) => ({ status: "ok", response });

let backend;
let gateway;
// How the backend answers now: one of the modes below.
let mode = "ok";
let topicSeq = 0;
const topic = () => `room:f${topicSeq++}`;

/** Answers every hook according to `mode`. */
function answer(good) {
  switch (mode) {
    case "ok":
      return good;
    case "slow":
      return { misbehave: { delayMs: 3000, body: JSON.stringify(good) } };
    case "500":
      return { misbehave: { status: 500, body: '{"error":"boom"}' } };
    case "invalid":
      return { misbehave: { body: "this is not json" } };
    case "wrong-shape":
      // Every hook's answer is an object, but these fields have the wrong types.
      return { misbehave: { body: '{"status": 7, "reply": "yes", "actions": {}}' } };
    case "huge":
      return { misbehave: { body: JSON.stringify({ ...good, padding: "x".repeat(64 * 1024) }) } };
    default:
      throw new Error(`unknown mode ${mode}`);
  }
}

const hooks = {
  "/phx/connect": () => answer({ status: "ok", assigns: { user: "u" } }),
  "/phx/join": () => answer({ status: "ok", response: { joined: true } }),
  "/phx/event": (req) => answer({ reply: { status: "ok", response: { echo: req.payload } } }),
};

before(async () => {
  backend = await fakeBackend(hooks, {});
  gateway = await startGateway(`
${backendToml(backend, 'max_answer_bytes = "4KiB"')}
[backend.breaker]
failures = 1000
[backend.connect]
timeout = "1s"
[backend.join]
timeout = "1s"
[backend.event]
timeout = "1s"

[[socket]]
path = "/socket"
check_origin = false
[socket.auth]
method = "none"
[[socket.channel]]
topic = "room:*"
[[socket.channel.event]]
name = "*"
handle = "forward"

[[socket]]
path = "/hooked"
check_origin = false
[socket.auth]
method = "hook"
[[socket.channel]]
topic = "room:*"
join = "all"
`);
});

after(async () => {
  await gateway?.stop();
  await backend?.close();
});

afterEach(() => {
  mode = "ok";
  backend.secret = SECRET;
});

/** A socket with one channel joined while the backend answers. */
async function joinedSocket() {
  const raw = await Raw.open(gateway.ws);
  const t = topic();
  const { joinRef, reply } = await raw.join(t);
  assert.deepEqual(reply[4], ok({ joined: true }));
  return { raw, t, joinRef };
}

/**
 * With the backend in `failing` mode: a join gets {"reason":"unavailable"}, an event on a
 * joined channel gets the same and the channel stays joined, heartbeats are answered,
 * and a connect hook refuses the upgrade with 503. Then the backend recovers and the
 * same socket works again.
 */
async function checkMode(failing) {
  const { raw, t, joinRef } = await joinedSocket();
  mode = failing;
  const joinTry = await raw.join(topic());
  assert.deepEqual(joinTry.reply[4], unavailable, `${failing}: join`);
  const ref = raw.push(t, joinRef, "ping", { n: 1 });
  assert.deepEqual((await raw.reply(ref))[4], unavailable, `${failing}: event`);
  assert.deepEqual((await raw.heartbeat())[4], ok(), `${failing}: heartbeat after the failure`);
  assert.equal(await upgradeStatus(gateway.ws, { mount: "/hooked" }), 503, `${failing}: connect`);
  mode = "ok";
  const again = raw.push(t, joinRef, "ping", { n: 2 });
  assert.deepEqual((await raw.reply(again))[4], ok({ echo: { n: 2 } }), `${failing}: the channel survived`);
  assert.equal(await upgradeStatus(gateway.ws, { mount: "/hooked" }), 101);
  raw.close();
}

test("a 500 answer: join and event get {reason: unavailable}, connect 503, the socket lives", () => checkMode("500"));

test("an answer that is not JSON: {reason: unavailable}", () => checkMode("invalid"));

test("JSON of the wrong shape: {reason: unavailable}", () => checkMode("wrong-shape"));

test("an answer over max_answer_bytes: {reason: unavailable}", () => checkMode("huge"));

test("a slow backend: {reason: unavailable} at the hook's timeout", () => checkMode("slow"));

test("a slow event hook never delays heartbeats: they are answered while it waits", async () => {
  const { raw, t, joinRef } = await joinedSocket();
  mode = "slow";
  const started = Date.now();
  const ref = raw.push(t, joinRef, "ping", {});
  // Sent after the event: answered first, long before the hook's 1 s timeout.
  const beat = await raw.heartbeat();
  assert.deepEqual(beat[4], ok());
  assert.ok(!raw.frames.some((f) => f[1] === ref), "the heartbeat reply came before the event's");
  assert.deepEqual((await raw.reply(ref))[4], unavailable);
  assert.ok(Date.now() - started >= 900, "the event waited for the hook's timeout");
  raw.close();
});

test("a wrong signature: the backend refuses (401), the client gets {reason: unavailable}, the log says why", async () => {
  const { raw, t, joinRef } = await joinedSocket();
  backend.secret = "another secret entirely, not the gateway's one";
  const before = gateway.logs.length;
  const ref = raw.push(t, joinRef, "ping", {});
  assert.deepEqual((await raw.reply(ref))[4], unavailable);
  assert.deepEqual((await raw.heartbeat())[4], ok());
  const line = await waitFor(
    () => gateway.logs.slice(before).find((l) => l.includes("status 401")),
    "the gateway's log line about the 401",
  );
  assert.match(line, /check backend\.secret/);
  assert.match(line, /request_id="?gw-[0-9a-f]{16}/);
  raw.close();
});

test("every hook request is signed and carries a request id", async () => {
  const { raw, t, joinRef } = await joinedSocket();
  await raw.reply(raw.push(t, joinRef, "ping", {}));
  raw.close();
  const hookCalls = backend.requests.filter((r) => r.path.startsWith("/phx/"));
  assert.ok(hookCalls.length >= 2);
  for (const r of hookCalls.slice(-2)) {
    assert.ok(r.signed, `${r.path} verified`);
    assert.match(r.headers["x-request-id"], /^gw-[0-9a-f]{16}$/);
    assert.equal(r.headers["content-type"], "application/json");
  }
});

test("the event request carries the socket, the channel assigns and the payload", async () => {
  const { raw, t, joinRef } = await joinedSocket();
  await raw.reply(raw.push(t, joinRef, "ping", { n: 9 }));
  const request = backend.calls("/phx/event").at(-1).json;
  assert.deepEqual(request, {
    mount: "/socket",
    transport: "websocket",
    socket_id: null,
    assigns: {},
    topic: t,
    channel_assigns: {},
    event: "ping",
    payload: { n: 9 },
  });
  raw.close();
});

// Last: it stops the backend for good.
test("a backend that is down: {reason: unavailable}, connect 503, heartbeats go on", async () => {
  const { raw, t, joinRef } = await joinedSocket();
  await backend.close();
  const joinTry = await raw.join(topic());
  assert.deepEqual(joinTry.reply[4], unavailable);
  const ref = raw.push(t, joinRef, "ping", {});
  assert.deepEqual((await raw.reply(ref))[4], unavailable);
  assert.deepEqual((await raw.heartbeat())[4], ok());
  assert.equal(await upgradeStatus(gateway.ws, { mount: "/hooked" }), 503);
  assert.ok(
    gateway.logs.some((l) => /hook failed/.test(l) && /hook="?event/.test(l) && /request_id/.test(l)),
    "the failure is logged with its hook and request id",
  );
  raw.close();
});
