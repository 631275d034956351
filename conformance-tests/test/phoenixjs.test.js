// §8: what phoenix.js does that the server must handle, driven through phoenix.js itself.
import { before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import { startServer, disconnect } from "../lib/server.js";
import { phxSocket, disconnectAll, joined, pushed, waitFor, rawTest as test, jsTest, serverOptions, PATIENCE_MS } from "../lib/phx.js";

let server;
before(async () => (server = await startServer(serverOptions)));
after(async () => server.stop());
afterEach(() => disconnectAll());

jsTest("§8.1 phoenix.js joins with its own ref counter and gets replies", async () => {
  const socket = phxSocket(server.ws);
  socket.connect();
  const ch = socket.channel("room:refs", {});
  assert.deepEqual(await joined(ch), {});
  assert.match(ch.joinRef(), /^\d+$/);
  assert.deepEqual(await pushed(ch, "echo", { a: 1 }), { status: "ok", response: { a: 1 } });
});

jsTest("§8.2 pushes made before the join completes are buffered and delivered after it", async () => {
  const socket = phxSocket(server.ws);
  const ch = socket.channel("room:buffered", {});
  ch.join();
  const early = pushed(ch, "echo", { early: true });
  socket.connect();
  assert.deepEqual(await early, { status: "ok", response: { early: true } });
});

jsTest("§8.2 several buffered pushes are sent in order once joined", async () => {
  const socket = phxSocket(server.ws);
  const ch = socket.channel("room:buffered-order", {});
  ch.join();
  const order = [];
  const all = [];
  for (let i = 0; i < 5; i++) {
    all.push(pushed(ch, "echo", { i }).then((r) => order.push(r.response.i)));
  }
  socket.connect();
  await Promise.all(all);
  assert.deepEqual(order, [0, 1, 2, 3, 4]);
});

jsTest("§8.3 a rejoin after reconnect carries a fresh join_ref and the server's frames follow it", async () => {
  const socket = phxSocket(server.ws, { params: { user_id: "r84" } });
  socket.connect();
  const ch = socket.channel("room:r84", {});
  const joinedRefs = [];
  ch.on("joined", () => joinedRefs.push(ch.joinRef()));
  await joined(ch);
  await waitFor(() => joinedRefs.length === 1, PATIENCE_MS, "first joined push");
  await disconnect(server, "user_sockets:r84");
  await waitFor(() => joinedRefs.length === 2, PATIENCE_MS, "joined push after the rejoin");
  assert.notEqual(joinedRefs[1], joinedRefs[0]);
  assert.equal(ch.joinRef(), joinedRefs[1]);
  assert.deepEqual(await pushed(ch, "echo", { r: 1 }), { status: "ok", response: { r: 1 } });
});

jsTest("§8.3 after the server closes the socket phoenix.js reconnects and every channel rejoins", async () => {
  const socket = phxSocket(server.ws, { params: { user_id: "r83" } });
  socket.connect();
  const a = socket.channel("room:r1", {});
  const b = socket.channel("room:r2", {});
  await joined(a);
  await joined(b);
  const refs = [a.joinRef(), b.joinRef()];
  await disconnect(server, "user_sockets:r83");
  await waitFor(
    () => a.state === "joined" && b.state === "joined" && a.joinRef() !== refs[0] && b.joinRef() !== refs[1],
    5000,
    "both rejoined",
  );
  assert.deepEqual(await pushed(a, "echo", { again: 1 }), { status: "ok", response: { again: 1 } });
});

jsTest("§8.4 leave() then a new Channel on the same topic joins again", async () => {
  const socket = phxSocket(server.ws);
  socket.connect();
  const first = socket.channel("room:again", {});
  await joined(first);
  first.leave();
  const second = socket.channel("room:again", {});
  await joined(second);
  assert.deepEqual(await pushed(second, "echo", { n: 2 }), { status: "ok", response: { n: 2 } });
});

jsTest("§8.4 a second Channel for a joined topic replaces the first (client leave + server duplicate join)", async () => {
  const socket = phxSocket(server.ws);
  socket.connect();
  const first = socket.channel("room:twice", {});
  await joined(first);
  const second = socket.channel("room:twice", {});
  await joined(second);
  assert.deepEqual(await pushed(second, "echo", {}), { status: "ok", response: {} });
});

jsTest("§8.5 frames carrying an old join_ref do not reach a rejoined channel object", async () => {
  const socket = phxSocket(server.ws);
  socket.connect();
  const ch = socket.channel("room:filter", {});
  const joins = [];
  ch.on("joined", () => joins.push(ch.joinRef()));
  await joined(ch);
  await waitFor(() => joins.length === 1, PATIENCE_MS, "first joined push");
  ch.push("boom", {});
  await waitFor(() => joins.length === 2, PATIENCE_MS, "joined push after rejoin");
  assert.notEqual(joins[0], joins[1], "each joined push matched the channel's join_ref at that time");
});

jsTest("§8.6 statuses select receive callbacks", async () => {
  const socket = phxSocket(server.ws);
  socket.connect();
  const ch = socket.channel("room:status", {});
  await joined(ch);
  assert.deepEqual(await pushed(ch, "error_reply", { e: 1 }), { status: "error", response: { e: 1 } });
});

jsTest("§8.6 a push without a reply times out on the client", async () => {
  const socket = phxSocket(server.ws);
  socket.connect();
  const ch = socket.channel("room:silence", {});
  await joined(ch);
  const result = await new Promise((resolve) =>
    ch.push("noreply", {}, 200).receive("ok", () => resolve("ok")).receive("timeout", () => resolve("timeout")),
  );
  assert.equal(result, "timeout");
});

jsTest("§8.7 a channel crash reaches onError with the server's payload", async () => {
  const socket = phxSocket(server.ws);
  socket.connect();
  const ch = socket.channel("room:onerror", {});
  await joined(ch);
  const errors = [];
  ch.onError((e) => errors.push(e));
  ch.push("boom", {});
  await waitFor(() => errors.length > 0, PATIENCE_MS, "onError");
  assert.deepEqual(errors[0], { reason: "channel_crash" });
});

jsTest("§8.8 socket.ping gets the heartbeat reply back", async () => {
  const socket = phxSocket(server.ws);
  socket.connect();
  await waitFor(() => socket.isConnected(), PATIENCE_MS, "connected");
  const rtt = await new Promise((resolve) => socket.ping(resolve));
  assert.ok(typeof rtt === "number" && rtt >= 0);
});
