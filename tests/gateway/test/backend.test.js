// docs/gateway.md, "When the backend fails" and "notify": the circuit breaker (fail fast,
// then one probe), which hooks are retried, and leave/disconnect notifications batched
// and retried without blocking a socket.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startGateway, fakeBackend, backendToml, Raw, waitFor } from "../lib/harness.js";

const unavailable = { status: "error", response: { reason: "unavailable" } };
const ok = (response = {}) => ({ status: "ok", response });

let backend;
let gateway;
const behaviour = { event: "ok", joinFailures: 0, failNotifyOf: null };
let seq = 0;

before(async () => {
  backend = await fakeBackend({
    "/phx/connect": (req) => ({ status: "ok", assigns: { sock: req.params.sock ?? null } }),
    "/phx/join": () => {
      if (behaviour.joinFailures > 0) {
        behaviour.joinFailures--;
        return { misbehave: { status: 503 } };
      }
      return { status: "ok", assigns: { nick: "n" } };
    },
    "/phx/event": (req) => {
      if (behaviour.event === "500") return { misbehave: { status: 500 } };
      if (behaviour.event === "503") return { misbehave: { status: 503 } };
      return { reply: { status: "ok", response: { n: req.payload.n ?? null } } };
    },
    // Fails the first batch that holds a notification of socket `failNotifyOf`.
    "/phx/notify": (req) => {
      const fail = behaviour.failNotifyOf;
      if (fail !== null && req.notifications.some((n) => n.assigns.sock === fail)) {
        behaviour.failNotifyOf = null;
        return { misbehave: { status: 500 } };
      }
      return {};
    },
  });
  gateway = await startGateway(`
metrics = true
${backendToml(backend)}
[backend.breaker]
failures = 3
cooldown = "1s"
[backend.notify]
flush = "50ms"
retries = 3

[[socket]]
path = "/socket"
check_origin = false
notify_disconnect = true
[socket.auth]
method = "hook"
[[socket.channel]]
topic = "room:*"
notify_leave = true
[[socket.channel.event]]
name = "*"
handle = "forward"
`);
});

after(async () => {
  await gateway?.stop();
  await backend?.close();
});

async function metric(name) {
  const text = await (await fetch(`${gateway.http}/metrics`)).text();
  return text.split("\n").filter((l) => l.startsWith(name));
}

test("the breaker opens after consecutive failures, fails fast, then one probe closes it", async () => {
  const raw = await Raw.open(gateway.ws);
  const t = `room:b${seq++}`;
  const { joinRef } = await raw.join(t);
  behaviour.event = "500";
  const reached = () => backend.calls("/phx/event").length;
  const before = reached();
  for (let i = 0; i < 3; i++) {
    assert.deepEqual((await raw.reply(raw.push(t, joinRef, "e", { n: i })))[4], unavailable);
  }
  assert.equal(reached(), before + 3, "three failures reached the backend");
  // Open: fails at once, without a request.
  assert.deepEqual((await raw.reply(raw.push(t, joinRef, "e", {})))[4], unavailable);
  assert.equal(reached(), before + 3, "the breaker answered without the backend");
  assert.deepEqual(await metric("phx_gateway_breaker_open"), ["phx_gateway_breaker_open 1"]);
  assert.ok((await metric("phx_gateway_hook_duration_seconds_count")).some((l) => /outcome="open"/.test(l)));
  const ready = await fetch(`${gateway.http}/readyz`);
  assert.equal(ready.status, 503);
  assert.equal((await ready.json()).down.backend_breaker, "open: hooks fail fast");
  // The backend recovers: after the cooldown one probe goes through and closes it.
  behaviour.event = "ok";
  await waitFor(async () => {
    const reply = await raw.reply(raw.push(t, joinRef, "e", { n: 7 }));
    return reply[4].status === "ok";
  }, "the probe to succeed");
  assert.deepEqual(await metric("phx_gateway_breaker_open"), ["phx_gateway_breaker_open 0"]);
  assert.equal((await fetch(`${gateway.http}/readyz`)).status, 200);
  assert.deepEqual((await raw.heartbeat())[4], ok());
  raw.close();
});

test("a join is retried after a 503; an event never is", async () => {
  const raw = await Raw.open(gateway.ws);
  const joinsBefore = backend.calls("/phx/join").length;
  behaviour.joinFailures = 1;
  const t = `room:r${seq++}`;
  const { joinRef, reply } = await raw.join(t);
  assert.deepEqual(reply[4], ok());
  const joins = backend.calls("/phx/join").slice(joinsBefore);
  assert.equal(joins.length, 2, "one failure, one retry");
  assert.equal(joins[0].headers["x-request-id"], joins[1].headers["x-request-id"], "a retry keeps its request id");
  const eventsBefore = backend.calls("/phx/event").length;
  behaviour.event = "503";
  assert.deepEqual((await raw.reply(raw.push(t, joinRef, "e", {})))[4], unavailable);
  assert.equal(backend.calls("/phx/event").length, eventsBefore + 1, "not retried");
  behaviour.event = "ok";
  raw.close();
});

test("leave and disconnect notifications arrive batched, retried after a failure", async () => {
  const sock = `s${seq++}`;
  const raw = await Raw.open(gateway.ws, { query: `sock=${sock}` });
  const left = `room:n${seq++}`;
  const kept = `room:n${seq++}`;
  const a = await raw.join(left);
  await raw.join(kept);
  behaviour.failNotifyOf = sock;
  const ref = raw.nextRef();
  raw.send([a.joinRef, ref, left, "phx_leave", {}]);
  await raw.reply(ref);
  raw.close();
  // Delivered: in a request the backend accepted.
  const all = () =>
    backend
      .calls("/phx/notify")
      .filter((r) => r.status === 200)
      .flatMap((r) => r.json.notifications);
  const mine = () => all().filter((n) => n.assigns.sock === sock);
  const found = await waitFor(() => {
    const n = mine();
    const leave = n.find((x) => x.topic === left && x.reason === "left");
    const closed = n.find((x) => x.topic === kept && x.reason === "closed");
    const gone = n.find((x) => x.type === "disconnect");
    return leave && closed && gone && { leave, closed, gone };
  }, "the three notifications");
  assert.deepEqual(found.leave.channel_assigns, { nick: "n" });
  assert.equal(found.leave.type, "leave");
  assert.equal(found.leave.mount, "/socket");
  assert.deepEqual(found.gone.assigns, { sock });
  assert.ok(Number.isInteger(found.leave.at));
  assert.ok(found.gone.at >= found.closed.at, "the disconnect comes after its channels' leaves");
  assert.equal(behaviour.failNotifyOf, null, "the first batch failed");
  const failedThenRetried = backend.calls("/phx/notify").filter((r) =>
    r.json.notifications.some((n) => n.topic === left),
  );
  assert.ok(failedThenRetried.length >= 2, "the batch holding the leave was sent again");
  assert.ok(failedThenRetried.every((r) => r.signed));
});
