// A cluster of three conformance-server processes joined through a private redis-server
// (lib/cluster.js), driven by phoenix.js clients spread over the nodes: broadcasts and
// server broadcasts cross nodes in order and exactly once, a disconnect reaches a socket
// on another node, presence lists agree everywhere, and the cluster heals when a node is
// killed or stalled and when Redis itself restarts.
//
// Timings are bounds, never paces: the node-down and Redis-restart tests print what they
// measured; they assert only a generous upper bound.
import { test, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import { disconnect, serverBroadcast } from "../lib/server.js";
import { startCluster, DOWN_MS } from "../lib/cluster.js";
import { Raw } from "../lib/raw.js";
import { phxSocket, disconnectAll, joined, pushed, waitFor, Presence, PATIENCE_MS } from "../lib/phx.js";

let cluster;
let nodes;
before(async () => {
  cluster = await startCluster({ nodes: 3 });
  nodes = cluster.nodes;
});
after(async () => cluster?.stop());
afterEach(() => disconnectAll());

/** How long the cluster may take to notice a node is gone: the down period plus slack. */
const DOWN_BOUND_MS = DOWN_MS + 10000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A phoenix.js client on `node`, joined to `topic`, recording every event it receives. */
async function roomClient(node, topic, params = {}) {
  const socket = phxSocket(node.ws, { params });
  socket.connect();
  const channel = socket.channel(topic, {});
  const events = [];
  const onMessage = channel.onMessage;
  channel.onMessage = (event, payload, ref) => {
    events.push({ event, payload });
    return onMessage.call(channel, event, payload, ref);
  };
  await joined(channel);
  return { socket, channel, node, events, got: (event) => events.filter((e) => e.event === event).map((e) => e.payload) };
}

/** Two room clients on each node, in node order. */
async function roomClients(topic) {
  const clients = [];
  for (const node of nodes) for (let i = 0; i < 2; i++) clients.push(await roomClient(node, topic));
  return clients;
}

function presenceClient(node, topic, user) {
  const socket = phxSocket(node.ws);
  socket.connect();
  const channel = socket.channel(topic, () => ({ user, meta: { node: node.name } }));
  const presence = new Presence(channel);
  return { socket, channel, presence, node, user };
}

/** Two presence clients on each of `on` (default every node): users `<node>-a`, `<node>-b`. */
async function presenceClients(topic, on = nodes) {
  const clients = [];
  for (const node of on) for (const tab of ["a", "b"]) clients.push(presenceClient(node, topic, `${node.name}-${tab}`));
  await Promise.all(clients.map((c) => joined(c.channel)));
  return clients;
}

/** A client's presence list, keys sorted, with every meta (phx_ref included). */
const view = (c) => JSON.stringify(c.presence.list((key, { metas }) => [key, metas.map((m) => JSON.stringify(m)).sort()]).sort((a, b) => (a[0] < b[0] ? -1 : 1)));
const keys = (c) => c.presence.list((key) => key).sort();

/** Waits until every client lists exactly `expected` keys (one meta each), then checks the lists are identical. */
async function converged(clients, expected, what, timeout = PATIENCE_MS) {
  const want = JSON.stringify([...expected].sort());
  await waitFor(
    () => clients.every((c) => JSON.stringify(keys(c)) === want && c.presence.list((_, { metas }) => metas.length).every((n) => n === 1)),
    timeout,
    `${what}: every client lists ${want}; got ${JSON.stringify(clients.map(keys))}`,
  );
  const first = view(clients[0]);
  for (const c of clients) assert.equal(view(c), first, `${what}: ${c.node.name}'s client lists the same metas and phx_refs`);
}

/** Sends `count` numbered new_msg broadcasts from `sender` then an "end" marker. */
function publish(sender, from, count) {
  for (let n = 0; n < count; n++) sender.channel.push("new_msg", { from, n });
  sender.channel.push("new_msg", { from, n: "end" });
}

/** What `client` received from `from`, in arrival order. */
const receivedFrom = (client, from) => client.got("new_msg").filter((p) => p.from === from).map((p) => p.n);

test("a broadcast reaches clients on all three nodes; each publisher's 50 arrive in order, exactly once", async () => {
  const clients = await roomClients("room:cluster-order");
  const COUNT = 50;
  const expected = [...Array(COUNT).keys(), "end"];
  // Two publishers at once, on node1 and node3: order holds per publisher.
  publish(clients[0], "p1", COUNT);
  publish(clients[5], "p3", COUNT);
  for (const from of ["p1", "p3"]) {
    await waitFor(() => clients.every((c) => receivedFrom(c, from).includes("end")), PATIENCE_MS, `every client got ${from}'s end marker`);
    for (const c of clients) assert.deepEqual(receivedFrom(c, from), expected, `${c.node.name}'s client got ${from}'s broadcasts in order, once each`);
  }
  for (const c of clients) assert.equal(c.got("new_msg")[0].transport, ":websocket", "the intercept ran on the receiving node");
});

test("broadcast_from reaches every client on every node but the sender", async () => {
  const clients = await roomClients("room:cluster-from");
  const [sender, ...others] = clients;
  assert.deepEqual(await pushed(sender.channel, "broadcast_from", { k: 1 }), { status: "ok", response: {} });
  // The sender's next broadcast comes after broadcast_from everywhere (one publisher's
  // messages keep their order), so once every client has it, broadcast_from has arrived
  // wherever it was going to.
  sender.channel.push("new_msg", { from: "sender", n: "end" });
  await waitFor(() => clients.every((c) => receivedFrom(c, "sender").includes("end")), PATIENCE_MS, "every client got the end marker");
  for (const c of others) assert.deepEqual(c.got("broadcast_from"), [{ k: 1 }], `${c.node.name}'s client got broadcast_from once`);
  assert.deepEqual(sender.got("broadcast_from"), [], "the sender did not get its own broadcast_from");
});

test("POST /test/broadcast on node1 reaches clients on node3 (and node2), once", async () => {
  const far = await roomClient(nodes[2], "room:cluster-server");
  const mid = await roomClient(nodes[1], "room:cluster-server");
  await serverBroadcast(nodes[0], "room:cluster-server", "tick", { t: 1 });
  await serverBroadcast(nodes[0], "room:cluster-server", "tick", { t: 2 });
  for (const c of [far, mid]) {
    await waitFor(() => c.got("tick").length === 2, PATIENCE_MS, `ticks at ${c.node.name}`);
    assert.deepEqual(c.got("tick"), [{ t: 1 }, { t: 2 }]);
  }
});

test("POST /test/disconnect on node2 closes a socket held by node1 with 1001, and only that one", async () => {
  const target = await Raw.open(nodes[0].ws, { query: "user_id=cluster-d1" });
  const bystander = await Raw.open(nodes[0].ws, { query: "user_id=cluster-d2" });
  await target.join("room:cluster-disconnect", {});
  await target.drain();
  await disconnect(nodes[1], "user_sockets:cluster-d1");
  assert.equal((await target.closed()).code, 1001);
  await bystander.drain();
  assert.equal(bystander.closeInfo, null, "another socket id on node1 stays open");
  bystander.close();
});

test("presence lists are identical on every client of every node", async () => {
  const clients = await presenceClients("presence:cluster");
  await converged(clients, clients.map((c) => c.user), "six users on three nodes");
  // A leave on node2 and an update on node3 reach everyone too.
  clients[2].channel.leave();
  assert.equal((await pushed(clients[4].channel, "update", { node: "node3", status: "away" })).status, "ok");
  const rest = clients.filter((_, i) => i !== 2);
  await waitFor(() => rest.every((c) => view(c).includes("away")), PATIENCE_MS, "the update everywhere");
  await converged(rest, rest.map((c) => c.user), "after a leave and an update");
});

test("SIGSTOP a node past the down period: its users leave the others' lists; SIGCONT: they come back", async () => {
  const clients = await presenceClients("presence:cluster-pause");
  const all = clients.map((c) => c.user);
  await converged(clients, all, "before the pause");
  const paused = nodes[2];
  const awake = clients.filter((c) => c.node !== paused);
  paused.pause();
  const stoppedAt = Date.now();
  try {
    await converged(awake, awake.map((c) => c.user), "the paused node's users gone", DOWN_BOUND_MS);
    const detected = Date.now() - stoppedAt;
    console.log(`paused node declared down after ${detected} ms (down period ${DOWN_MS} ms)`);
    assert.ok(detected <= DOWN_BOUND_MS);
  } finally {
    paused.resume();
  }
  const resumedAt = Date.now();
  // Every client, the paused node's included, lists everyone again.
  await converged(clients, all, "after SIGCONT");
  console.log(`after SIGCONT every list was whole again in ${Date.now() - resumedAt} ms`);
});

test("Redis killed and restarted on the same port: local broadcasts work meanwhile; then broadcasts cross again and presence converges", async () => {
  const room = await roomClients("room:cluster-outage");
  const members = await presenceClients("presence:cluster-outage");
  await converged(members, members.map((c) => c.user), "before the outage");

  await cluster.redis.kill();
  const killedAt = Date.now();
  // During the outage a broadcast on node1 still reaches node1's other client.
  const [a, b] = room;
  assert.equal((await pushed(a.channel, "new_msg", { from: "outage", n: 0 })).status, "ok");
  await waitFor(() => receivedFrom(b, "outage").includes(0), PATIENCE_MS, "a local broadcast during the outage");
  // Presence changes while the nodes cannot hear each other: a join on node2, a leave on node3.
  const late = presenceClient(nodes[1], "presence:cluster-outage", "late");
  await joined(late.channel);
  members[5].channel.leave();
  const expectedMembers = [...members.slice(0, 5), late];
  // Stay down past the down period, so the nodes also lose sight of each other.
  await sleep(Math.max(0, DOWN_MS + 500 - (Date.now() - killedAt)));

  await cluster.redis.start();
  const restartedAt = Date.now();
  // Broadcasts cross nodes again once each node's link is back (it reconnects with backoff):
  // probe from node1 until node3's client hears one.
  // Both are measured at once, each from the restart.
  const far = room[5];
  let probe = 0;
  const crossed = waitFor(
    async () => {
      if (receivedFrom(far, "probe").length > 0) return true;
      a.channel.push("new_msg", { from: "probe", n: probe++ });
      await sleep(100);
      return false;
    },
    PATIENCE_MS,
    "a broadcast from node1 at node3 after the restart",
  ).then(() => Date.now() - restartedAt);
  const convergedIn = converged(expectedMembers, expectedMembers.map((c) => c.user), "presence after the restart").then(() => Date.now() - restartedAt);
  const [crossing, convergence] = await Promise.all([crossed, convergedIn]);
  console.log(`after the Redis restart: broadcasts crossed nodes in ${crossing} ms, presence converged in ${convergence} ms`);

  // Once every link is back, one publisher's broadcasts reach every node in order, once.
  await waitFor(async () => {
    const marker = `ready-${probe++}`;
    room[2].channel.push("new_msg", { from: "ready", n: marker });
    await sleep(200);
    return room.every((c) => receivedFrom(c, "ready").includes(marker));
  }, PATIENCE_MS, "every node's link back");
  publish(room[2], "after", 20);
  await waitFor(() => room.every((c) => receivedFrom(c, "after").includes("end")), PATIENCE_MS, "the broadcasts after the restart");
  for (const c of room) assert.deepEqual(receivedFrom(c, "after"), [...Array(20).keys(), "end"], `${c.node.name}'s client after the restart`);
});

test("SIGKILL a node: its users leave every remaining client's list within the down period", async () => {
  const clients = await presenceClients("presence:cluster-kill");
  await converged(clients, clients.map((c) => c.user), "before the kill");
  const victim = nodes[2];
  await victim.kill();
  const killedAt = Date.now();
  // The victim's clients would reconnect to a dead port forever.
  for (const c of clients.filter((c) => c.node === victim)) c.socket.disconnect();
  const survivors = clients.filter((c) => c.node !== victim);
  await converged(survivors, survivors.map((c) => c.user), "the killed node's users gone", DOWN_BOUND_MS);
  const detected = Date.now() - killedAt;
  console.log(`killed node's users left after ${detected} ms (down period ${DOWN_MS} ms)`);
  assert.ok(detected <= DOWN_BOUND_MS);
});
