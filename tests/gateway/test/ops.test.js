// docs/gateway.md, "Operating": what phx-server offers, configured from the file:
// metrics with the gateway's own series, /readyz following the backend's health URL,
// the server API, drain on SIGTERM, and two gateways as one cluster through Redis.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { startGateway, fakeBackend, backendToml, privateRedis, Raw, waitFor, API_KEY } from "../lib/harness.js";

const ok = (response = {}) => ({ status: "ok", response });
const cleanups = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

const SOCKET = `
[[socket]]
path = "/socket"
check_origin = false
[socket.auth]
method = "none"
[[socket.channel]]
topic = "room:*"
join = "all"
presence = { key = "{transport}" }
[[socket.channel.event]]
name = "*"
handle = "forward"
`;

test("metrics, readiness following the backend's health URL, and the server API", async () => {
  let healthy = true;
  const backend = await fakeBackend({
    "/healthz": () => (healthy ? { status: "ok" } : { misbehave: { status: 500 } }),
    "/phx/event": () => ({ reply: ok() }),
  });
  const gateway = await startGateway(
    `metrics = true
[server.api]
key = "${API_KEY}"
${backendToml(backend, 'health = "/healthz"')}
${SOCKET}`,
  );
  cleanups.push(() => backend.close(), () => gateway.stop());

  assert.equal((await fetch(`${gateway.http}/healthz`)).status, 200);
  assert.equal((await fetch(`${gateway.http}/readyz`)).status, 200);
  assert.ok(backend.calls("/healthz").every((r) => r.signed), "the health check is signed too");
  healthy = false;
  const down = await fetch(`${gateway.http}/readyz`);
  assert.equal(down.status, 503);
  assert.deepEqual((await down.json()).down, { backend: "status 500" });
  healthy = true;
  assert.equal((await fetch(`${gateway.http}/readyz`)).status, 200);

  const raw = await Raw.open(gateway.ws);
  const { joinRef } = await raw.join("room:ops");
  await raw.reply(raw.push("room:ops", joinRef, "e"));
  // The server API: broadcast reaches the socket; presence lists it; a wrong key is refused.
  const api = (path, body, key = API_KEY) =>
    fetch(`${gateway.http}${path}`, {
      method: body ? "POST" : "GET",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: body && JSON.stringify(body),
    });
  assert.equal((await api("/api/broadcast", { topic: "room:ops", event: "news", payload: { n: 1 } })).status, 200);
  assert.deepEqual((await raw.next((f) => f[3] === "news"))[4], { n: 1 });
  const presence = await (await api("/api/presence?topic=room:ops")).json();
  assert.deepEqual(Object.keys(presence), ["websocket"]);
  assert.equal((await api("/api/broadcast", { topic: "room:ops", event: "x", payload: {} }, "wrong")).status, 403);

  const text = await (await fetch(`${gateway.http}/metrics`)).text();
  for (const series of [
    'phx_gateway_hook_duration_seconds_bucket{hook="event",outcome="ok"',
    'phx_gateway_hook_queue{hook="event"}',
    'phx_gateway_hook_in_flight{hook="join"}',
    "phx_gateway_breaker_open 0",
    "phx_gateway_notifications_dropped_total 0",
    "phx_sockets_open",
  ]) {
    assert.ok(text.includes(series), `${series} in /metrics`);
  }
  raw.close();
});

test("SIGTERM drains: readiness turns false, sockets close with 1012, the process exits", async () => {
  const backend = await fakeBackend({});
  const gateway = await startGateway(`[server.drain]\nbatch_interval = "300ms"\n${backendToml(backend)}\n${SOCKET}`);
  cleanups.push(() => backend.close(), () => gateway.stop());
  const raw = await Raw.open(gateway.ws);
  await raw.join("room:drain");
  const exited = new Promise((r) => gateway.child.once("exit", (code) => r(code)));
  gateway.child.kill("SIGTERM");
  await waitFor(async () => {
    const res = await fetch(`${gateway.http}/readyz`).catch(() => null);
    return res === null || res.status === 503;
  }, "readiness to turn false");
  await waitFor(() => raw.closed, "the socket to be closed");
  assert.equal(raw.closed.code, 1012);
  assert.equal(await exited, 0);
});

test("[cluster]: two gateways on one Redis share broadcasts and presence", async () => {
  const redis = (await privateRedis()).url;
  const backend = await fakeBackend({});
  const cluster = `[server.api]\nkey = "${API_KEY}"\n[cluster]\nredis_url = "${redis}"\nheartbeat = "300ms"\n${backendToml(backend)}\n${SOCKET}`;
  const one = await startGateway(`node_name = "gw1"\n${cluster}`);
  const two = await startGateway(`node_name = "gw2"\n${cluster}`);
  cleanups.push(() => backend.close(), () => one.stop(), () => two.stop());
  const a = await Raw.open(one.ws);
  const b = await Raw.open(two.ws, { mount: "/socket" });
  await a.join("room:c");
  await b.join("room:c");
  // A broadcast sent to node one reaches a socket on node two.
  const res = await fetch(`${one.http}/api/broadcast`, {
    method: "POST",
    headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
    body: JSON.stringify({ topic: "room:c", event: "hello", payload: { from: "one" } }),
  });
  assert.equal(res.status, 200);
  assert.deepEqual((await b.next((f) => f[3] === "hello"))[4], { from: "one" });
  assert.deepEqual((await a.next((f) => f[3] === "hello"))[4], { from: "one" });
  // Presence replicated: node two lists node one's member (both keyed "websocket": two metas).
  await waitFor(async () => {
    const list = await (await fetch(`${two.http}/api/presence?topic=room:c`, { headers: { authorization: `Bearer ${API_KEY}` } })).json();
    return list.websocket?.metas.length === 2;
  }, "both members in node two's presence list");
  assert.equal((await fetch(`${one.http}/readyz`)).status, 200);
  a.close();
  b.close();
});

test("http2 = true: the backend link speaks HTTP/2 without negotiation (h2c), signed as ever", async () => {
  const { default: http2 } = await import("node:http2");
  const { verify, SECRET } = await import("../lib/harness.js");
  const seen = [];
  const server = http2.createServer();
  server.on("request", (req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      seen.push({ path: req.url, version: req.httpVersion, signed: verify(SECRET, req.headers["x-phx-gateway-signature"], body) });
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(req.url === "/phx/join" ? { status: "ok", response: { h2: true } } : {}));
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  cleanups.push(() => new Promise((r) => server.close(r)));
  const backend = { url: `http://127.0.0.1:${server.address().port}` };
  const gateway = await startGateway(`${backendToml(backend, "http2 = true")}
[[socket]]
path = "/socket"
check_origin = false
[socket.auth]
method = "none"
[[socket.channel]]
topic = "room:*"
`);
  cleanups.push(() => gateway.stop());
  const raw = await Raw.open(gateway.ws);
  const joins = await Promise.all([raw.join("room:h1"), raw.join("room:h2")]);
  for (const { reply } of joins) assert.deepEqual(reply[4], ok({ h2: true }));
  assert.deepEqual(
    seen.map((s) => [s.path, s.version, s.signed]),
    [
      ["/phx/join", "2.0", true],
      ["/phx/join", "2.0", true],
    ],
  );
  raw.close();
});
