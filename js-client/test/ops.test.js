// The chat app as operators see it, through phoenix.js: /metrics counters move by
// exactly what a scripted session does and the output is Prometheus text; the server API
// broadcasts to phoenix.js subscribers and refuses what it must.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { Socket } from "phoenix";
import WebSocket from "ws";
import { startChat } from "../lib/chat-server.js";
import { until } from "../lib/channel.js";

const KEY = "test-api-key-0123456789";
const sockets = [];
after(() => sockets.forEach((s) => s.disconnect()));

function client(url) {
  // No heartbeat within the test: heartbeats count as messages in.
  const socket = new Socket(url.replace(/^http/, "ws") + "/socket", {
    transport: WebSocket,
    heartbeatIntervalMs: 600000,
    timeout: 30000,
  });
  socket.connect();
  sockets.push(socket);
  return socket;
}

// A refused channel is left at once: phoenix.js would otherwise retry the join.
const join = (channel) =>
  new Promise((resolve) =>
    channel
      .join()
      .receive("ok", () => resolve(true))
      .receive("error", () => {
        channel.leave();
        resolve(false);
      }),
  );
const push = (channel, event, payload) =>
  new Promise((resolve, reject) =>
    channel.push(event, payload).receive("ok", resolve).receive("error", reject).receive("timeout", reject),
  );

/** Parses the Prometheus text format strictly: every line is a comment or a sample. */
function parsePrometheus(text) {
  const samples = new Map();
  const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (\S+)( \d+)?$/;
  for (const line of text.split("\n")) {
    if (line === "" || /^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+$/.test(line)) continue;
    assert.ok(!line.startsWith("#") || /^# /.test(line), `bad comment: ${line}`);
    if (line.startsWith("#")) continue;
    const m = sample.exec(line);
    assert.ok(m, `not a Prometheus sample line: ${JSON.stringify(line)}`);
    const value = Number(m[3] === "+Inf" ? Infinity : m[3] === "-Inf" ? -Infinity : m[3]);
    assert.ok(m[3] === "NaN" || !Number.isNaN(value), `bad value: ${line}`);
    samples.set(m[1] + (m[2] ?? ""), value);
  }
  return samples;
}

async function scrape(url) {
  const res = await fetch(url + "/metrics");
  assert.equal(res.status, 200);
  return parsePrometheus(await res.text());
}

const api = (url, path, body, key = KEY) =>
  fetch(url + path, {
    method: "POST",
    headers: { "content-type": "application/json", ...(key ? { authorization: `Bearer ${key}` } : {}) },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });

test("metrics move by exactly what a session does; the output is Prometheus text", async () => {
  const chat = await startChat({ env: { API_KEY: KEY } });
  try {
    const before = await scrape(chat.url);
    const a = client(chat.url);
    const b = client(chat.url);
    const ca = a.channel("room:metrics", { username: "ann" });
    const cb = b.channel("room:metrics", { username: "bob" });
    assert.equal(await join(ca), true);
    assert.equal(await join(cb), true);
    // Another topic (a second join of one topic on one socket replaces the first), on
    // socket a: its leave is read before the pushes below, so it is counted.
    assert.equal(await join(a.channel("room:metrics-refused", { username: "<bad>" })), false);
    for (const body of ["one", "two", "three"]) await push(ca, "new_msg", { body });
    const after = await scrape(chat.url);
    const delta = (name) => (after.get(name) ?? 0) - (before.get(name) ?? 0);
    assert.equal(delta('phx_sockets_opened_total{transport="websocket"}'), 2);
    assert.equal(after.get('phx_sockets_open{transport="websocket"}'), 2);
    assert.equal(delta('phx_joins_total{route="room:*"}'), 3);
    assert.equal(delta('phx_join_errors_total{route="room:*"}'), 1);
    // 3 joins + 1 leave of the refused channel + 3 pushes; heartbeats are off.
    assert.equal(delta('phx_messages_in_total{transport="websocket"}'), 7);
    assert.equal(after.get('phx_channels_joined{route="room:*"}'), 2);
    assert.equal(delta('chat_store_duration_seconds_count{op="insert"}'), 3);
    assert.equal(delta('chat_store_duration_seconds_bucket{op="insert",le="+Inf"}'), 3, "a histogram");
    assert.equal(delta('chat_store_errors_total{op="insert"}'), 0);
  } finally {
    await chat.stop();
  }
});

test("the server API broadcasts to phoenix.js subscribers and refuses bad requests", async () => {
  const chat = await startChat({ env: { API_KEY: KEY } });
  try {
    const s = client(chat.url);
    const channel = s.channel("room:api", { username: "ann" });
    const got = [];
    channel.on("announcement", (payload) => got.push(payload));
    assert.equal(await join(channel), true);

    assert.equal((await api(chat.url, "/api/broadcast", { topic: "room:api", event: "announcement", payload: { n: 0 } }, null)).status, 401);
    assert.equal((await api(chat.url, "/api/broadcast", { topic: "room:api", event: "announcement", payload: { n: 0 } }, "wrong")).status, 403);
    const bad = await api(chat.url, "/api/broadcast", "{not json");
    assert.equal(bad.status, 400);
    assert.ok((await bad.json()).error);
    assert.equal((await api(chat.url, "/api/broadcast", { topic: "room:api", event: "announcement", payload: { n: 0 }, extra: 1 })).status, 400);

    const ok = await api(chat.url, "/api/broadcast", { topic: "room:api", event: "announcement", payload: { n: 1 } });
    assert.equal(ok.status, 200);
    const deadline = Date.now() + 30000;
    while (got.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(got, [{ n: 1 }], "only the accepted broadcast arrives");

    const presence = await fetch(chat.url + "/api/presence?topic=room:api", { headers: { authorization: `Bearer ${KEY}` } });
    assert.equal(presence.status, 200);
    // A guest is keyed by a per-connection guest id; the name is in its meta.
    const list = await presence.json();
    assert.equal(Object.keys(list).length, 1);
    assert.deepEqual(
      Object.values(list).map((entry) => entry.metas.map((m) => m.username)),
      [["ann"]],
    );
  } finally {
    await chat.stop();
  }
});

test("without API_KEY the server API is off and says so", async () => {
  const chat = await startChat();
  try {
    const res = await api(chat.url, "/api/broadcast", { topic: "room:x", event: "e", payload: {} });
    assert.notEqual(res.status, 200);
    assert.ok(chat.logs.some((l) => l.includes("server API off")), chat.logs.join("\n"));
  } finally {
    await chat.stop();
  }
});

test("SIGTERM drains: every socket closes with 1012 in batches, readiness goes first, exit 0", async () => {
  const chat = await startChat({ env: { DRAIN_BATCH: "1", DRAIN_INTERVAL_MS: "500", DRAIN_BUDGET_MS: "10000" } });
  try {
    const closes = [];
    for (let i = 0; i < 3; i++) {
      const s = client(chat.url);
      s.onClose((event) => closes.push(event.code));
      // No reconnect after the drain: the server is going away.
      s.reconnectTimer.scheduleTimeout = () => {};
      assert.equal(await join(s.channel(`room:drain${i}`, { username: "ann" })), true);
    }
    const exited = new Promise((resolve) => chat.child.on("exit", (code) => resolve(code)));
    chat.child.kill("SIGTERM");
    // Readiness turns false (503, or refused: the listener is closed) while every socket
    // is still open: the first batch waits one interval.
    const deadline = Date.now() + 30000;
    let ready;
    while ((ready = await fetch(chat.url + "/readyz").then((r) => r.status, () => "refused")) === 200) {
      assert.ok(Date.now() < deadline, "readyz stayed 200 after SIGTERM");
      await new Promise((r) => setTimeout(r, 5));
    }
    assert.equal(closes.length, 0, `sockets closed before readiness went false (readyz: ${ready})`);
    assert.equal(await exited, 0);
    // The last close event can reach this process after the child's exit event.
    await until(() => closes.length === 3, "three closes");
    assert.deepEqual(closes, [1012, 1012, 1012]);
    const stopped = chat.logs.find((l) => l.includes("chat-app stopped"));
    assert.ok(stopped && /store_calls=\d+/.test(stopped), chat.logs.join("\n"));
    assert.ok(chat.logs.some((l) => /endpoint stopped.*closed=3.*batches=3/.test(l)), chat.logs.join("\n"));
  } finally {
    await chat.stop();
  }
});

test("the server API's disconnect closes every socket of that user with 1001, and no other", async () => {
  const chat = await startChat({ env: { API_KEY: KEY } });
  try {
    const account = async (username) => {
      const res = await fetch(chat.url + "/api/register", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ username, password: "correct horse battery" }),
      });
      assert.equal(res.status, 201);
      return res.json();
    };
    const ann = await account("annapi");
    const bob = await account("bobapi");
    // Raw sockets, so the close code is seen as sent (phoenix.js would reconnect).
    const open = (token) =>
      new Promise((resolve, reject) => {
        const ws = new WebSocket(chat.url.replace(/^http/, "ws") + `/socket/websocket?vsn=2.0.0&token=${token}`);
        ws.on("open", () => resolve(ws));
        ws.on("error", reject);
      });
    const closed = (ws) => new Promise((resolve) => ws.on("close", (code) => resolve(code)));
    const [tab1, tab2, other] = await Promise.all([open(ann.token), open(ann.token), open(bob.token)]);
    const codes = Promise.all([closed(tab1), closed(tab2)]);
    let otherClosed = false;
    other.on("close", () => (otherClosed = true));

    const res = await api(chat.url, "/api/disconnect", { socket_id: `user_socket:${ann.user.id}` });
    assert.equal(res.status, 200);
    assert.deepEqual(await codes, [1001, 1001]);
    // The other user's socket still answers a heartbeat.
    const reply = new Promise((resolve) => other.on("message", (data) => resolve(JSON.parse(data))));
    other.send(JSON.stringify([null, "1", "phoenix", "heartbeat", {}]));
    assert.deepEqual((await reply).slice(0, 4), [null, "1", "phoenix", "phx_reply"]);
    assert.equal(otherClosed, false);
    other.close();
  } finally {
    await chat.stop();
  }
});
