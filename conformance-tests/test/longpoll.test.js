// §7: the long-poll transport — phoenix.js with `transport: LongPoll` running the channel,
// broadcast and presence behaviours, raw HTTP for the status bodies, and the WebSocket →
// long-poll fallback through a proxy that blocks WebSockets.
import { test, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { startServer, disconnect, serverBroadcast } from "../lib/server.js";
import { phxSocket, disconnectAll, joined, pushed, waitFor, Presence, LongPoll, MemoryStorage, PATIENCE_MS } from "../lib/phx.js";

let server;
// A short long-poll window (sessions end 1.5 windows after the last GET) to test expiry
// and the empty poll quickly; 1 s, so that a loaded machine never stalls a client that
// polls back to back long enough to lose its session.
const SHORT_WINDOW_MS = 1000;
let short;
before(async () => {
  server = await startServer();
  short = await startServer({ timeoutMs: 1000, longpollWindowMs: SHORT_WINDOW_MS });
});
after(async () => {
  await server.stop();
  await short.stop();
});
afterEach(() => disconnectAll());

const lp = (opts = {}, mount) => phxSocket(server.ws, { transport: LongPoll, ...opts }, mount);

// ---- phoenix.js over long poll ----

test("§7 phoenix.js over long poll: join, echo, error reply", async () => {
  const socket = lp();
  socket.connect();
  const ch = socket.channel("room:lp1", {});
  assert.deepEqual(await joined(ch), {});
  assert.deepEqual(await pushed(ch, "echo", { a: 1 }), { status: "ok", response: { a: 1 } });
  assert.deepEqual(await pushed(ch, "error_reply", { e: 2 }), { status: "error", response: { e: 2 } });
  assert.equal(socket.transport, LongPoll);
});

test("§7 phoenix.js over long poll: join errors and crashes as over WebSocket", async () => {
  const socket = lp();
  socket.connect();
  const refused = socket.channel("custom:lp", { action: "ignore" });
  const error = await new Promise((resolve) => refused.join().receive("error", resolve));
  refused.leave();
  assert.deepEqual(error, { action: "ignore" });
  const crashing = socket.channel("custom:lp2", { action: "error" });
  const crash = await new Promise((resolve) => crashing.join().receive("error", resolve));
  crashing.leave();
  assert.deepEqual(crash, { reason: "join crashed" });
});

test("§7 phoenix.js over long poll: pushes before the join are delivered after it", async () => {
  const socket = lp();
  const ch = socket.channel("room:lp-buf", {});
  ch.join();
  const early = pushed(ch, "echo", { early: 1 });
  socket.connect();
  assert.deepEqual(await early, { status: "ok", response: { early: 1 } });
});

test("§7 phoenix.js over long poll: a crash errors the channel and it rejoins", async () => {
  const socket = lp();
  socket.connect();
  const ch = socket.channel("room:lp-crash", {});
  await joined(ch);
  const first = ch.joinRef();
  let error;
  ch.onError((e) => (error = e));
  ch.push("boom", {});
  await waitFor(() => error, PATIENCE_MS, "onError");
  assert.deepEqual(error, { reason: "channel_crash" });
  await waitFor(() => ch.state === "joined" && ch.joinRef() !== first, PATIENCE_MS, "rejoin");
});

test("§7 phoenix.js over long poll: stop closes the channel for good", async () => {
  const socket = lp();
  socket.connect();
  const ch = socket.channel("room:lp-stop", {});
  await joined(ch);
  let closed = false;
  ch.onClose(() => (closed = true));
  ch.push("stop", {});
  await waitFor(() => closed, PATIENCE_MS, "onClose");
  assert.equal(ch.state, "closed");
});

test("§7.4 a burst of 150 pushes is split into POSTs of at most 100 and all are answered", async () => {
  const socket = lp();
  socket.connect();
  const ch = socket.channel("room:lp-burst", {});
  await joined(ch);
  const replies = await Promise.all(Array.from({ length: 150 }, (_, i) => pushed(ch, "echo", { i })));
  assert.deepEqual(replies.map((r) => r.response.i), Array.from({ length: 150 }, (_, i) => i));
});

test("§5/§7 a long-poll client and a WebSocket client chat in the same room", async () => {
  const ws = phxSocket(server.ws);
  const poll = lp();
  ws.connect();
  poll.connect();
  const a = ws.channel("room:mixed-lp", {});
  const b = poll.channel("room:mixed-lp", {});
  const atA = [];
  const atB = [];
  a.on("new_msg", (m) => atA.push(m));
  b.on("new_msg", (m) => atB.push(m));
  await joined(a);
  await joined(b);
  a.push("new_msg", { body: "from ws" });
  b.push("new_msg", { body: "from lp" });
  await waitFor(() => atA.length === 2 && atB.length === 2, PATIENCE_MS, "both messages at both");
  assert.deepEqual(atB.find((m) => m.body === "from ws"), { body: "from ws", transport: ":longpoll" });
  assert.deepEqual(atA.find((m) => m.body === "from lp"), { body: "from lp", transport: ":websocket" });
});

test("§5/§7 server broadcasts reach long-poll subscribers", async () => {
  const socket = lp();
  socket.connect();
  const ch = socket.channel("room:lp-srv", {});
  const got = [];
  ch.on("tick", (p) => got.push(p));
  await joined(ch);
  await serverBroadcast(server, "room:lp-srv", "tick", { n: 1 });
  await waitFor(() => got.length === 1, PATIENCE_MS, "tick");
  assert.deepEqual(got[0], { n: 1 });
});

test("§1.6/§7 the auth token travels in X-Phoenix-AuthToken and reaches connect", async () => {
  const socket = lp({ authToken: "lp-token" });
  socket.connect();
  const ch = socket.channel("room:lp-auth", {});
  let push;
  ch.on("joined", (p) => (push = p));
  await joined(ch);
  await waitFor(() => push, PATIENCE_MS, "joined push");
  assert.equal(push.auth_token, "lp-token");
});

test("§1.7/§7 disconnect ends the session; phoenix.js reconnects and rejoins", async () => {
  const socket = lp({ params: { user_id: "lp-d" } });
  socket.connect();
  const ch = socket.channel("room:lp-d", {});
  await joined(ch);
  const first = ch.joinRef();
  await disconnect(server, "user_sockets:lp-d");
  await waitFor(() => ch.state === "joined" && ch.joinRef() !== first, PATIENCE_MS, "rejoin over long poll");
});

test("§1.4/§7 a refused long-poll connect errors and phoenix.js retries", async () => {
  let reject = "true";
  const socket = lp({ params: () => ({ reject }) });
  let errors = 0;
  let opened = false;
  socket.onError(() => {
    errors += 1;
    reject = "false";
  });
  socket.onOpen(() => (opened = true));
  socket.connect();
  await waitFor(() => opened, PATIENCE_MS, "open after refusal");
  assert.ok(errors >= 1);
});

test("§6/§7 presence converges across long-poll and WebSocket clients", async () => {
  const topic = "presence:lp";
  const make = (user, opts) => {
    const socket = opts ? lp(opts) : phxSocket(server.ws);
    socket.connect();
    const channel = socket.channel(topic, { user, meta: { user } });
    return { socket, channel, presence: new Presence(channel) };
  };
  const clients = [make("w1"), make("l1", {}), make("l2", {})];
  await Promise.all(clients.map((c) => joined(c.channel)));
  const keys = (c) => c.presence.list((k) => k).sort().join(",");
  await waitFor(() => clients.every((c) => keys(c) === "l1,l2,w1"), PATIENCE_MS, "three users everywhere");
  assert.equal((await pushed(clients[1].channel, "update", { status: "away" })).status, "ok");
  await waitFor(
    () => clients.every((c) => c.presence.list((k, { metas }) => metas[0].status).includes("away")),
    10000,
    "update everywhere",
  );
  clients[2].channel.push("boom", {});
  await waitFor(() => clients[2].channel.state === "joined", PATIENCE_MS, "crashed channel rejoined");
  clients[2].channel.leave();
  await waitFor(() => clients.slice(0, 2).every((c) => keys(c) === "l1,w1"), PATIENCE_MS, "leave everywhere");
});

// ---- raw HTTP (§7.2–§7.6) ----

async function get(base, query = "", headers = {}) {
  const res = await fetch(`${base.http}/ws/longpoll?vsn=2.0.0&${query}`, { headers });
  assert.equal(res.status, 200);
  return { body: await res.json(), headers: res.headers };
}

async function post(base, token, body, contentType = "application/x-ndjson", headers = {}) {
  const url = token === null ? `${base.http}/ws/longpoll?vsn=2.0.0` : `${base.http}/ws/longpoll?vsn=2.0.0&token=${encodeURIComponent(token)}`;
  const res = await fetch(url, { method: "POST", body, headers: { "content-type": contentType, ...headers } });
  assert.equal(res.status, 200);
  return res.json();
}

async function session(base = server) {
  const { body } = await get(base);
  assert.equal(body.status, 410);
  return body.token;
}

/** Polls until `n` messages arrived; returns them parsed. */
async function poll(base, token, n) {
  const got = [];
  const deadline = Date.now() + 15000;
  while (got.length < n && Date.now() < deadline) {
    const { body } = await get(base, `token=${encodeURIComponent(token)}`);
    assert.ok([200, 204].includes(body.status), JSON.stringify(body));
    for (const m of body.messages) got.push(JSON.parse(m));
  }
  return got;
}

test("§7.2 the first GET opens a session: {status: 410, token, messages: []}, JSON, no-store", async () => {
  const { body, headers } = await get(server);
  assert.equal(body.status, 410);
  assert.equal(typeof body.token, "string");
  assert.deepEqual(body.messages, []);
  assert.equal(headers.get("content-type"), "application/json; charset=utf-8");
  assert.equal(headers.get("cache-control"), "no-store");
});

test("§7.3/§7.4 POSTed ndjson is answered 200 and its replies come as JSON strings on the next GET", async () => {
  const token = await session();
  const lines = ['["3","3","room:raw","phx_join",{}]', '["3","4","room:raw","echo",{"x":1}]'].join("\n");
  assert.deepEqual(await post(server, token, lines), { status: 200 });
  const { body } = await get(server, `token=${encodeURIComponent(token)}`);
  assert.equal(body.status, 200);
  assert.equal(body.token, token);
  assert.ok(body.messages.every((m) => typeof m === "string"));
  const frames = body.messages.map((m) => JSON.parse(m));
  assert.deepEqual(frames[0], ["3", "3", "room:raw", "phx_reply", { response: {}, status: "ok" }]);
  assert.ok(frames.some((f) => f[1] === "4" && f[4].response.x === 1) || (await poll(server, token, 1)).some((f) => f[1] === "4"));
});

test("§7.3 an empty poll is answered 204 after the window", async () => {
  const token = await session(short);
  const started = Date.now();
  const { body } = await get(short, `token=${encodeURIComponent(token)}`);
  assert.deepEqual(body, { status: 204, token, messages: [] });
  assert.ok(Date.now() - started >= SHORT_WINDOW_MS * 0.75, "held for about the window");
});

/** Polls until an empty (204) poll; returns every message parsed. */
async function pollAll(base, token) {
  const got = [];
  for (;;) {
    const { body } = await get(base, `token=${encodeURIComponent(token)}`);
    if (body.status === 204) return got;
    assert.equal(body.status, 200, JSON.stringify(body));
    for (const m of body.messages) got.push(JSON.parse(m));
  }
}

test("§7.4 only the first 100 lines of a POST are used", async () => {
  const token = await session(short);
  const lines = ['["3","3","room:cap","phx_join",{}]'];
  for (let i = 0; i < 149; i++) lines.push(`["3","e${i}","room:cap","echo",{}]`);
  assert.deepEqual(await post(short, token, lines.join("\n")), { status: 200 });
  const echoes = (await pollAll(short, token)).filter((f) => f[3] === "phx_reply" && String(f[1]).startsWith("e"));
  assert.equal(echoes.length, 99, "the join plus 99 echoes are the first 100 lines");
  assert.equal(echoes.at(-1)[1], "e98");
});

test("§7.4 a base64 line is a binary client push", async () => {
  const token = await session();
  await post(server, token, '["3","3","room:b64","phx_join",{}]');
  const strings = ["3", "9", "room:b64", "bin"].map((s) => Buffer.from(s));
  const frame = Buffer.concat([Buffer.from([0, ...strings.map((s) => s.length)]), ...strings, Buffer.from([1, 2])]);
  assert.deepEqual(await post(server, token, frame.toString("base64")), { status: 200 });
  const got = await poll(server, token, 3);
  assert.ok(got.some((f) => f[3] === "bin_ack"), JSON.stringify(got));
});

test("§7.4 without the ndjson content type the whole body is one message", async () => {
  const token = await session();
  assert.deepEqual(await post(server, token, '["3","3","room:one","phx_join",{}]', "application/json"), { status: 200 });
  const got = await poll(server, token, 1);
  assert.deepEqual(got[0], ["3", "3", "room:one", "phx_reply", { response: {}, status: "ok" }]);
});

test("§7.2 the x-phoenix-longpoll-token header wins over the query", async () => {
  const token = await session();
  const res = await post(server, "not-a-token", '["3","3","room:hdr","phx_join",{}]', "application/x-ndjson", {
    "x-phoenix-longpoll-token": token,
  });
  assert.deepEqual(res, { status: 200 });
});

test("§7.2 a tampered token never reaches the session: POST 410, GET opens a new one", async () => {
  const token = await session();
  const tampered = token.slice(0, -2) + (token.at(-2) === "A" ? "B" : "A") + token.at(-1);
  assert.deepEqual(await post(server, tampered, '[null,"1","phoenix","heartbeat",{}]'), { status: 410 });
  const { body } = await get(server, `token=${encodeURIComponent(tampered)}`);
  assert.equal(body.status, 410);
  assert.notEqual(body.token, token);
});

test("§7.5 a session without polls ends: later POSTs get 410", async () => {
  const token = await session(short);
  let status;
  await waitFor(
    async () => {
      status = (await post(short, token, '[null,"1","phoenix","heartbeat",{}]')).status;
      return status === 410;
    },
    // A server the suite started has a 1 s window (expiry within ~3 s); a server given by
    // PHX_URL_SHORT_TIMEOUT may keep Phoenix's 10 s window (expiry 15-30 s after the GET).
    process.env.PHX_URL ? 35000 : PATIENCE_MS,
    "session expiry",
  );
  assert.equal(status, 410);
});

test("§7.2 refused connect and unsupported vsn answer {status: 403}", async () => {
  assert.deepEqual((await get(server, "reject=true")).body, { status: 403 });
  const res = await fetch(`${server.http}/ws/longpoll?vsn=9.0.0`);
  assert.deepEqual(await res.json(), { status: 403 });
});

test("§1.5/§7 check_origin applies to long poll: {status: 403}", async () => {
  assert.deepEqual((await get(server, "", { origin: "http://evil.com" })).body, { status: 403 });
  assert.equal((await get(server, "", { origin: "http://example.com" })).body.status, 410);
});

test("§7.6 OPTIONS answers the CORS preflight; other methods are 400", async () => {
  const res = await fetch(`${server.http}/ws/longpoll`, {
    method: "OPTIONS",
    headers: { "access-control-request-headers": "x-phoenix-authtoken" },
  });
  assert.equal(res.status, 200);
  assert.equal(await res.text(), "");
  assert.equal(res.headers.get("access-control-allow-headers"), "x-phoenix-authtoken");
  assert.equal(res.headers.get("access-control-allow-methods"), "get, post, options");
  assert.equal(res.headers.get("access-control-max-age"), "3600");
  assert.equal((await fetch(`${server.http}/ws/longpoll`, { method: "PUT" })).status, 400);
});

// ---- §7.8 fallback ----

/** An HTTP proxy in front of the server that refuses every WebSocket upgrade. */
function blockingProxy(target) {
  const url = new URL(target.http);
  const proxy = http.createServer((req, res) => {
    const upstream = http.request(
      { host: url.hostname, port: url.port, method: req.method, path: req.url, headers: req.headers },
      (up) => {
        res.writeHead(up.statusCode, up.headers);
        up.pipe(res);
      },
    );
    upstream.on("error", () => res.destroy());
    req.pipe(upstream);
  });
  proxy.on("upgrade", (_req, socket) => {
    socket.end("HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n");
  });
  return new Promise((resolve) =>
    proxy.listen(0, "127.0.0.1", () => resolve({ proxy, ws: `ws://127.0.0.1:${proxy.address().port}` })),
  );
}

test("§7.8 with longPollFallbackMs and WebSockets blocked, phoenix.js falls back and chats with a WebSocket client", async () => {
  const { proxy, ws: proxied } = await blockingProxy(server);
  try {
    const storage = new MemoryStorage();
    const fallback = phxSocket(proxied, { longPollFallbackMs: 500, sessionStorage: storage });
    const direct = phxSocket(server.ws);
    fallback.connect();
    direct.connect();
    const a = fallback.channel("room:fallback", {});
    const b = direct.channel("room:fallback", {});
    const atA = [];
    const atB = [];
    a.on("new_msg", (m) => atA.push(m));
    b.on("new_msg", (m) => atB.push(m));
    await joined(a);
    await joined(b);
    assert.equal(fallback.transport, LongPoll, "fell back to long poll");
    a.push("new_msg", { body: "hello from long poll" });
    b.push("new_msg", { body: "hello from websocket" });
    await waitFor(() => atA.length === 2 && atB.length === 2, PATIENCE_MS, "messages both ways");
    assert.equal(atB.find((m) => m.body === "hello from long poll").transport, ":websocket");
    assert.equal(atA.find((m) => m.body === "hello from websocket").transport, ":longpoll");
    assert.equal(storage.getItem("phx:fallback:LongPoll"), "true");
  } finally {
    disconnectAll();
    proxy.closeAllConnections();
    proxy.close();
  }
});
