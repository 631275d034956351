// §3: heartbeat, join, messages, leave, duplicate join, close vs error, close codes.
import { before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import { startServer, disconnect, serverBroadcast } from "../lib/server.js";
import { Raw, nextRef, ok, unmatched } from "../lib/raw.js";
import { phxSocket, disconnectAll, joined, pushed, waitFor, rawTest as test, jsTest, serverOptions, PATIENCE_MS } from "../lib/phx.js";

const SHORT_TIMEOUT_MS = 1000;
let server;
// The idle-timeout tests need a second instance with a 1 s timeout: short enough to test
// quickly, long enough that a loaded machine never stalls a heartbeating client past it.
// If it cannot be had (PHX_URL without PHX_URL_SHORT_TIMEOUT) only those tests fail,
// with the reason.
let shortServer;
let shortServerError;
before(async () => {
  server = await startServer(serverOptions);
  shortServer = await startServer({ timeoutMs: SHORT_TIMEOUT_MS }).catch((e) => {
    shortServerError = e;
    return null;
  });
});
after(async () => {
  await server.stop();
  await shortServer?.stop();
});
function short() {
  if (!shortServer) throw shortServerError;
  return shortServer;
}
afterEach(() => disconnectAll());

const open = (opts) => Raw.open(server.ws, opts);

test("§3.1 heartbeat reply has join_ref null even when the client sends one", async () => {
  const raw = await open();
  raw.send(["42", "h1", "phoenix", "heartbeat", {}]);
  assert.deepEqual(await raw.next(), [null, "h1", "phoenix", "phx_reply", ok()]);
  raw.close();
});

test("§3.1 any other event on topic phoenix is an unmatched topic", async () => {
  const raw = await open();
  raw.send([null, "h2", "phoenix", "other", {}]);
  assert.deepEqual(await raw.next(), [null, "h2", "phoenix", "phx_reply", unmatched]);
  raw.close();
});

test("§3.1 a silent socket is closed at the idle timeout with a non-1000 code (1002)", async () => {
  const raw = await Raw.open(short().ws);
  const { code } = await raw.closed();
  assert.equal(code, 1002);
});

test("§3.1 heartbeats keep a socket alive past the idle timeout", async () => {
  const raw = await Raw.open(short().ws);
  const started = Date.now();
  while (Date.now() - started < 3 * SHORT_TIMEOUT_MS) {
    const ref = nextRef();
    raw.send([null, ref, "phoenix", "heartbeat", {}]);
    await raw.next((f) => f[1] === ref);
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(raw.closeInfo, null);
  raw.close();
});

test("§3.1 only inbound data counts: a silent socket receiving broadcasts still times out", async () => {
  const srv = short();
  const raw = await Raw.open(srv.ws);
  raw.send(["j", "j", "room:idle-bcast", "phx_join", {}]);
  await raw.next((f) => f[1] === "j");
  const started = Date.now();
  // Keep the server writing to the socket (a broadcast every ~20 ms) until it closes it.
  while (!raw.closeInfo && Date.now() - started < PATIENCE_MS) {
    await serverBroadcast(srv, "room:idle-bcast", "tick", {});
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.ok(raw.frames.some((f) => f[3] === "tick"), "the broadcasts did reach the socket");
  assert.equal((await raw.closed()).code, 1002);
});

test("§3.2 joining an unrouted topic replies unmatched topic with join_ref null", async () => {
  const raw = await open();
  raw.send(["3", "3", "nowhere:1", "phx_join", {}]);
  assert.deepEqual(await raw.next(), [null, "3", "nowhere:1", "phx_reply", unmatched]);
  raw.close();
});

test("§3.2 join ok: reply first, then the joined push, and the user_entered broadcast", async () => {
  const raw = await open({ query: "user_id=u7" });
  raw.send(["3", "3", "room:j", "phx_join", { user: "ann" }]);
  assert.deepEqual(await raw.next(), ["3", "3", "room:j", "phx_reply", ok()]);
  const rest = await raw.drain();
  assert.deepEqual(rest.find((f) => f[3] === "joined"), [
    "3",
    null,
    "room:j",
    "joined",
    { status: "connected", user_id: "u7", auth_token: null },
  ]);
  assert.deepEqual(rest.find((f) => f[3] === "user_entered"), [null, null, "room:j", "user_entered", { user: "ann" }]);
  raw.close();
});

test("§3.2 a join reply can carry a response", async () => {
  const raw = await open();
  raw.send(["3", "3", "custom:1", "phx_join", { action: "ok" }]);
  assert.deepEqual(await raw.next(), ["3", "3", "custom:1", "phx_reply", ok({ action: "ok" })]);
  raw.close();
});

test("§3.2 a refused join replies error with the app's response and records nothing", async () => {
  const raw = await open();
  raw.send(["3", "3", "custom:2", "phx_join", { action: "ignore" }]);
  assert.deepEqual(await raw.next(), ["3", "3", "custom:2", "phx_reply", { response: { action: "ignore" }, status: "error" }]);
  raw.send(["3", "4", "custom:2", "close", {}]);
  assert.deepEqual(await raw.next(), [null, "4", "custom:2", "phx_reply", unmatched]);
  raw.close();
});

test("§3.2 a crashing join replies {reason: join crashed}", async () => {
  const raw = await open();
  raw.send(["3", "3", "custom:3", "phx_join", { action: "error" }]);
  assert.deepEqual(await raw.next(), ["3", "3", "custom:3", "phx_reply", { response: { reason: "join crashed" }, status: "error" }]);
  raw.close();
});

test("§3.2 max_channels: the join over the limit is refused with its join_ref", async () => {
  const raw = await open({ path: "/ws/limited" });
  await raw.join("room:l1");
  raw.send(["9", "9", "room:l2", "phx_join", {}]);
  const reply = await raw.next((f) => f[1] === "9");
  assert.deepEqual(reply, ["9", "9", "room:l2", "phx_reply", { response: { reason: "too many channels joined" }, status: "error" }]);
  raw.close();
});

test("§3.2 the default limit is 100 channels per socket", async () => {
  const raw = await open();
  for (let i = 0; i < 100; i++) await raw.join(`custom:n${i}`, { action: "ok" });
  raw.send(["x", "x", "custom:n100", "phx_join", { action: "ok" }]);
  const reply = await raw.next((f) => f[1] === "x");
  assert.equal(reply[4].response.reason, "too many channels joined");
  raw.close();
});

test("§3.2 max_channels counts live channels: after a leave the next join succeeds", async () => {
  const raw = await open({ path: "/ws/limited" });
  const j = await raw.join("room:lim-a");
  raw.send([j, nextRef(), "room:lim-a", "phx_leave", {}]);
  await raw.next((f) => f[3] === "phx_close");
  await raw.join("room:lim-b");
  raw.close();
});

test("§3.5 a duplicate join on a full socket succeeds: the limit check sees one channel fewer", async () => {
  const raw = await open({ path: "/ws/limited" });
  const old = await raw.join("room:lim-dup");
  await raw.drain();
  raw.send(["nd", "nd", "room:lim-dup", "phx_join", {}]);
  assert.deepEqual(await raw.next(), ["nd", "nd", "room:lim-dup", "phx_reply", ok()]);
  assert.deepEqual(await raw.next(), [old, old, "room:lim-dup", "phx_close", {}]);
  raw.close();
});

test("§3.3 a reply carries the channel's join_ref and the message's ref", async () => {
  const raw = await open();
  const j = await raw.join("room:e");
  const ref = nextRef();
  raw.send([j, ref, "room:e", "echo", { x: [1, 2] }]);
  assert.deepEqual(await raw.next((f) => f[1] === ref), [j, ref, "room:e", "phx_reply", ok({ x: [1, 2] })]);
  raw.close();
});

test("§3.3 an error reply has status error", async () => {
  const raw = await open();
  const j = await raw.join("room:e2");
  const reply = await raw.push(j, "room:e2", "error_reply", { why: "no" });
  assert.deepEqual(reply[4], { response: { why: "no" }, status: "error" });
  raw.close();
});

test("§3.3 noreply sends nothing back", async () => {
  const raw = await open();
  const j = await raw.join("room:e3");
  await raw.drain();
  raw.send([j, nextRef(), "room:e3", "noreply", {}]);
  assert.deepEqual(await raw.drain(), []);
  raw.close();
});

test("§3.3 a message with a stale join_ref is dropped silently", async () => {
  const raw = await open();
  const j = await raw.join("room:s");
  await raw.drain();
  raw.send(["stale-" + j, nextRef(), "room:s", "echo", {}]);
  assert.deepEqual(await raw.drain(), []);
  raw.close();
});

test("§3.3 a message with a null join_ref reaches the joined channel", async () => {
  const raw = await open();
  const j = await raw.join("room:n");
  const ref = nextRef();
  raw.send([null, ref, "room:n", "echo", { n: 1 }]);
  assert.deepEqual(await raw.next((f) => f[1] === ref), [j, ref, "room:n", "phx_reply", ok({ n: 1 })]);
  raw.close();
});

test("§3.3 a message to a topic that is not joined gets unmatched topic, join_ref null", async () => {
  const raw = await open();
  raw.send(["3", "u1", "room:never", "echo", {}]);
  assert.deepEqual(await raw.next(), [null, "u1", "room:never", "phx_reply", unmatched]);
  raw.close();
});

test("§3.3 pushes made while handling a message precede its reply", async () => {
  const raw = await open();
  const j = await raw.join("room:p");
  await raw.drain();
  const ref = nextRef();
  raw.send([j, ref, "room:p", "push", { event: "hello", payload: { a: 1 } }]);
  const [first, second] = [await raw.next(), await raw.next()];
  assert.deepEqual(first, [j, null, "room:p", "hello", { a: 1 }]);
  assert.deepEqual(second, [j, ref, "room:p", "phx_reply", ok()]);
  raw.close();
});

test("§3.3 an intercepted broadcast reaches the sender through its channel, after the reply", async () => {
  // new_msg is intercepted: the sender's own copy is re-pushed by its channel once the
  // handler has returned (Phoenix: the broadcast is a message in the channel's mailbox).
  const raw = await open();
  const j = await raw.join("room:icpt");
  await raw.drain();
  const ref = nextRef();
  raw.send([j, ref, "room:icpt", "new_msg", { body: "me" }]);
  assert.deepEqual(await raw.next(), [j, ref, "room:icpt", "phx_reply", ok()]);
  assert.deepEqual(await raw.next(), [j, null, "room:icpt", "new_msg", { body: "me", transport: ":websocket" }]);
  raw.close();
});

test("§3.8 one channel's join reply, pushes and replies keep their order", async () => {
  const raw = await open();
  // Everything is sent at once, before the join reply is seen.
  raw.send(["oj", "oj", "room:order2", "phx_join", {}]);
  raw.send(["oj", "o1", "room:order2", "push", { event: "first", payload: {} }]);
  raw.send(["oj", "o2", "room:order2", "echo", { n: 2 }]);
  raw.send(["oj", "o3", "room:order2", "push", { event: "second", payload: {} }]);
  raw.send(["oj", "o4", "room:order2", "phx_leave", {}]);
  const frames = [];
  while (!frames.some((f) => f[3] === "phx_close")) frames.push(await raw.next());
  const seen = frames.filter((f) => f[3] !== "user_entered" && f[3] !== "joined").map((f) => [f[1], f[3]]);
  assert.deepEqual(seen, [
    ["oj", "phx_reply"],
    [null, "first"],
    ["o1", "phx_reply"],
    ["o2", "phx_reply"],
    [null, "second"],
    ["o3", "phx_reply"],
    ["o4", "phx_reply"],
    ["oj", "phx_close"],
  ]);
  const joinedAt = frames.findIndex((f) => f[3] === "joined");
  assert.ok(joinedAt > 0, "the joined push comes after the join reply");
  raw.close();
});

test("§3.4 leave: ok reply with the channel join_ref, then phx_close [J, J]", async () => {
  const raw = await open();
  const j = await raw.join("room:leave");
  await raw.drain();
  const ref = nextRef();
  raw.send([j, ref, "room:leave", "phx_leave", {}]);
  assert.deepEqual(await raw.next(), [j, ref, "room:leave", "phx_reply", ok()]);
  assert.deepEqual(await raw.next(), [j, j, "room:leave", "phx_close", {}]);
  // terminate's push may follow phx_close (Phoenix writes it; clients ignore it).
  const rest = await raw.drain();
  assert.ok(rest.every((f) => f[3] === "you_left"), JSON.stringify(rest));
  raw.send([j, nextRef(), "room:leave", "echo", {}]);
  assert.deepEqual((await raw.next())[4], unmatched);
  raw.close();
});

test("§3.4 leaving a topic that is not joined replies ok, echoing the join_ref, without phx_close", async () => {
  const raw = await open();
  raw.send(["77", "78", "room:notjoined", "phx_leave", {}]);
  assert.deepEqual(await raw.next(), ["77", "78", "room:notjoined", "phx_reply", ok()]);
  assert.deepEqual(await raw.drain(), []);
  raw.close();
});

test("§3.4 a leave with a stale join_ref gets no reply and the channel stays", async () => {
  const raw = await open();
  const j = await raw.join("room:stale-leave");
  await raw.drain();
  raw.send(["old", nextRef(), "room:stale-leave", "phx_leave", {}]);
  assert.deepEqual(await raw.drain(), []);
  const reply = await raw.push(j, "room:stale-leave", "echo", { still: true });
  assert.deepEqual(reply[4], ok({ still: true }));
  raw.close();
});

test("§3.4 after a leave the topic can be joined again; the old join_ref is then stale", async () => {
  const raw = await open();
  const first = await raw.join("room:rejoin");
  raw.send([first, nextRef(), "room:rejoin", "phx_leave", {}]);
  await raw.next((f) => f[3] === "phx_close");
  const second = await raw.join("room:rejoin");
  await raw.drain();
  raw.send([first, nextRef(), "room:rejoin", "echo", {}]);
  assert.deepEqual(await raw.drain(), [], "a message with the first join_ref is dropped");
  const reply = await raw.push(second, "room:rejoin", "echo", { n: 2 });
  assert.deepEqual(reply, [second, reply[1], "room:rejoin", "phx_reply", ok({ n: 2 })]);
  raw.close();
});

test("§3.5 duplicate join: new reply, then the old phx_close, then the new channel's pushes", async () => {
  const raw = await open();
  const old = await raw.join("room:dup");
  await raw.drain();
  raw.send(["n1", "n1", "room:dup", "phx_join", {}]);
  assert.deepEqual(await raw.next(), ["n1", "n1", "room:dup", "phx_reply", ok()]);
  assert.deepEqual(await raw.next(), [old, old, "room:dup", "phx_close", {}]);
  const rest = await raw.drain();
  assert.deepEqual(rest.find((f) => f[3] === "joined")?.[0], "n1");
  assert.ok(!rest.some((f) => f[3] === "you_left"), "the replaced channel's terminate does not run");
  raw.close();
});

test("§3.5 duplicate join with the same join_ref still replaces the channel", async () => {
  const raw = await open();
  raw.send(["d", "d", "room:dup2", "phx_join", {}]);
  await raw.next((f) => f[3] === "phx_reply");
  await raw.drain();
  raw.send(["d", "d", "room:dup2", "phx_join", {}]);
  assert.deepEqual(await raw.next(), ["d", "d", "room:dup2", "phx_reply", ok()]);
  assert.deepEqual(await raw.next(), ["d", "d", "room:dup2", "phx_close", {}]);
  raw.close();
});

test("§3.6 a normal stop sends phx_close and forgets the topic", async () => {
  const raw = await open();
  const j = await raw.join("room:stop");
  await raw.drain();
  raw.send([j, nextRef(), "room:stop", "stop", {}]);
  assert.deepEqual(await raw.next((f) => f[3] === "phx_close"), [j, j, "room:stop", "phx_close", {}]);
  raw.send([j, "after", "room:stop", "echo", {}]);
  assert.deepEqual(await raw.next((f) => f[1] === "after"), [null, "after", "room:stop", "phx_reply", unmatched]);
  raw.close();
});

test("§3.6 a crash sends phx_error {reason: channel_crash} and spares the socket's other channels", async () => {
  const raw = await open();
  const a = await raw.join("room:crash");
  const b = await raw.join("room:survivor");
  await raw.drain();
  raw.send([a, nextRef(), "room:crash", "boom", {}]);
  assert.deepEqual(await raw.next((f) => f[3] === "phx_error"), [a, a, "room:crash", "phx_error", { reason: "channel_crash" }]);
  assert.deepEqual((await raw.push(b, "room:survivor", "echo", { ok: 1 }))[4], ok({ ok: 1 }));
  raw.close();
});

test("§3.6 after a crash the topic is forgotten; a rejoin gets a new join_ref used exactly (§8.5)", async () => {
  const raw = await open();
  const first = await raw.join("room:crash2");
  await raw.drain();
  raw.send([first, nextRef(), "room:crash2", "boom", {}]);
  await raw.next((f) => f[3] === "phx_error");
  const ref = nextRef();
  raw.send([first, ref, "room:crash2", "echo", {}]);
  assert.deepEqual(await raw.next((f) => f[1] === ref), [null, ref, "room:crash2", "phx_reply", unmatched]);
  const second = await raw.join("room:crash2");
  assert.deepEqual((await raw.next((f) => f[3] === "joined"))[0], second);
  await raw.drain();
  raw.send([first, nextRef(), "room:crash2", "echo", {}]);
  assert.deepEqual(await raw.drain(), [], "the crashed instance's join_ref is stale now");
  const reply = await raw.push(null, "room:crash2", "echo", {});
  assert.equal(reply[0], second, "a reply carries the live channel's join_ref, whatever the message had");
  raw.close();
});

test("§3.6 a channel's own stop event closes it (custom:*)", async () => {
  const raw = await open();
  const j = await raw.join("custom:closing", { action: "ok" });
  raw.send([j, nextRef(), "custom:closing", "close", {}]);
  assert.deepEqual(await raw.next((f) => f[3] === "phx_close"), [j, j, "custom:closing", "phx_close", {}]);
  raw.close();
});

jsTest("§3.6 phoenix.js: after a stop the channel is closed and does not rejoin", async () => {
  const socket = phxSocket(server.ws, { params: { user_id: "js-stop" } });
  socket.connect();
  const ch = socket.channel("room:js-stop", {});
  const other = socket.channel("room:js-stop-other", {});
  await joined(ch);
  await joined(other);
  let closed = false;
  let errored = false;
  ch.onClose(() => (closed = true));
  ch.onError(() => (errored = true));
  ch.push("stop", {});
  await waitFor(() => closed, PATIENCE_MS, "onClose");
  assert.equal(ch.state, "closed");
  assert.equal(errored, false, "a normal stop is phx_close, not phx_error");
  assert.ok(!socket.channels.includes(ch), "a closed channel is removed from the socket");
  // A reconnect rejoins every channel the socket still has: the other one, not this one.
  const otherRef = other.joinRef();
  await disconnect(server, "user_sockets:js-stop");
  await waitFor(() => other.state === "joined" && other.joinRef() !== otherRef, PATIENCE_MS, "the other channel rejoins");
  assert.equal(ch.state, "closed");
  assert.equal(errored, false);
});
jsTest("§3.6 phoenix.js: after a crash the channel errors and rejoins with a new join_ref", async () => {
  const socket = phxSocket(server.ws);
  socket.connect();
  const ch = socket.channel("room:js-crash", {});
  await joined(ch);
  const first = ch.joinRef();
  let error;
  ch.onError((e) => (error = e));
  ch.push("boom", {});
  await waitFor(() => error, PATIENCE_MS, "onError");
  assert.deepEqual(error, { reason: "channel_crash" });
  await waitFor(() => ch.state === "joined" && ch.joinRef() !== first, PATIENCE_MS, "rejoin");
});

test("§3.7 a client close is echoed with the same code", async () => {
  const raw = await open();
  await raw.drain();
  raw.close(4001);
  assert.equal((await raw.closed()).code, 4001);
});

test("§3.8 frames of one socket keep their order under load", async () => {
  const raw = await open();
  const j = await raw.join("room:order");
  await raw.drain();
  const refs = [];
  for (let i = 0; i < 200; i++) {
    const ref = nextRef();
    refs.push(ref);
    raw.send([j, ref, "room:order", "echo", { i }]);
  }
  for (let i = 0; i < 200; i++) {
    const frame = await raw.next();
    assert.equal(frame[1], refs[i]);
    assert.equal(frame[4].response.i, i);
  }
  raw.close();
});
