// The chat app as a cluster, end to end: three chat-app processes sharing one PostgreSQL
// (history) and one Redis (broadcasts, presence, typing, disconnects), phoenix.js clients
// spread over the nodes. Also: a node whose Redis is unreachable still serves, and a
// cluster configuration whose nodes would disagree is refused at start.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import net from "node:net";
import readline from "node:readline";
import { Socket, Presence } from "phoenix";
import WebSocket from "ws";
import { startChat, testDatabase } from "../lib/chat-server.js";

const PATIENCE_MS = 30000;
const NODES = 3;
const SENDERS_PER_NODE = 2;
const MESSAGES_PER_SENDER = 30;
const SECRET = "cluster-test-secret-key-base-0123456789abcdef";
const PASSWORD = "correct horse battery";

let db;
let redis;
let nodes = [];
const sockets = [];

/** A port nobody listens on right now. */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** A `redis-server` of this test's own, on a free port (or `port`), persisting nothing. */
async function startRedis(port) {
  port ??= await freePort();
  const child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  const logs = [];
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`redis-server did not start:\n${logs.join("\n")}`)), PATIENCE_MS);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(
        e.code === "ENOENT"
          ? new Error("redis-server is not installed (this test starts its own on a free port): apt-get install redis-server")
          : e,
      );
    });
    child.on("exit", (code) => reject(new Error(`redis-server exited with ${code}:\n${logs.join("\n")}`)));
    for (const stream of [child.stdout, child.stderr]) {
      readline.createInterface({ input: stream }).on("line", (line) => {
        logs.push(line);
        if (/Ready to accept connections/.test(line)) {
          clearTimeout(timer);
          resolve();
        }
      });
    }
  });
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    stop: async () => {
      child.kill("SIGKILL");
      await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r() : child.on("exit", r)));
    },
  };
}

const until = async (check, what, patience = PATIENCE_MS) => {
  const deadline = Date.now() + patience;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

function clusterEnv(i) {
  return {
    REDIS_URL: redis.url,
    NODE_NAME: `chat-${i + 1}`,
    SECRET_KEY_BASE: SECRET,
    // Quick heartbeats; the down period is not exercised here.
    CLUSTER_HEARTBEAT_MS: "300",
    CLUSTER_DOWN_MS: "3000",
    REGISTER_BURST: "100",
    LOGIN_ADDRESS_BURST: "100",
  };
}

before(async () => {
  db = testDatabase("phx_chat_cluster_test");
  redis = await startRedis();
  // The first node migrates the database; the others start together.
  nodes.push(await startChat({ databaseUrl: db.url, env: clusterEnv(0) }));
  nodes.push(...(await Promise.all([1, 2].map((i) => startChat({ databaseUrl: db.url, env: clusterEnv(i) })))));
  // Every node is linked to Redis and knows the two others.
  for (const node of nodes) {
    await until(
      () => node.logs.some((l) => /cluster link to Redis up/.test(l)) && node.logs.filter((l) => /cluster node (joined|heard from)/.test(l)).length >= NODES - 1,
      "every node to link to Redis and hear the others",
    );
  }
});

after(async () => {
  sockets.forEach((s) => s.disconnect());
  await Promise.all(nodes.map((n) => n.stop()));
  await redis?.stop();
  db?.drop();
});

/** A phoenix.js socket to `node`, resolved once open. */
function connect(node, params = {}) {
  const socket = new Socket(node.url.replace(/^http/, "ws") + "/socket", {
    transport: WebSocket,
    params,
    reconnectAfterMs: () => 60000,
    timeout: PATIENCE_MS,
  });
  sockets.push(socket);
  const closes = [];
  socket.onClose((event) => closes.push(event.code));
  return new Promise((resolve) => {
    socket.onOpen(() => resolve({ socket, closes, ok: true }));
    socket.onError(() => resolve({ socket, closes, ok: false }));
    socket.connect();
  });
}

/** A user in `room` on `node`: what it receives, its presence list, its join reply. */
async function member(node, room, username) {
  const { socket } = await connect(node);
  const channel = socket.channel(`room:${room}`, { username });
  const user = { username, node, channel, messages: [], typing: [], presence: new Presence(channel) };
  channel.on("new_msg", (m) => user.messages.push(m));
  channel.on("typing", (t) => user.typing.push(t.username));
  user.history = await new Promise((resolve, reject) =>
    channel.join().receive("ok", (reply) => resolve(reply.messages)).receive("error", reject).receive("timeout", reject),
  );
  return user;
}

const push = (channel, event, payload) =>
  new Promise((resolve, reject) =>
    channel
      .push(event, payload)
      .receive("ok", resolve)
      .receive("error", (r) => reject(new Error(`${event} refused: ${JSON.stringify(r)}`)))
      .receive("timeout", () => reject(new Error(`${event} timed out`))),
  );

const psql = (sql) =>
  execFileSync("psql", [db.url, "-v", "ON_ERROR_STOP=1", "-AtF", "\t", "-c", sql], { encoding: "utf8" })
    .split("\n")
    .filter(Boolean)
    .map((line) => line.split("\t"));

/** The whole presence list, keys and metas (phx_ref, username), in a stable order. */
const fullList = (user) =>
  JSON.stringify(
    user.presence
      .list((key, { metas }) => [key, metas.map((m) => [m.phx_ref, m.username]).sort()])
      .sort(([x], [y]) => (x < y ? -1 : 1)),
  );

const names = (user) =>
  user.presence
    .list((_key, { metas }) => metas.map((m) => m.username))
    .flat()
    .sort();

test("messages sent concurrently on every node are stored, and reach everyone once, in order", async (t) => {
  const room = "cluster";
  const users = [];
  for (let i = 0; i < NODES * SENDERS_PER_NODE; i++) users.push(await member(nodes[i % NODES], room, `u${i}`));

  // Presence: one list, identical on every client, whichever node it is on.
  const everyone = users.map((u) => u.username).sort();
  await until(() => users.every((u) => JSON.stringify(names(u)) === JSON.stringify(everyone)), "every presence list to show all six users");
  // The room directory's online count is the cluster's, on every node.
  for (const node of nodes) {
    const { rooms } = await (await fetch(`${node.url}/api/rooms`)).json();
    assert.deepEqual(rooms.find((r) => r.room === room)?.online, users.length, `online count from ${node.url}`);
  }

  // Every user sends its numbered messages at once; all pushes are in flight together.
  const sent = performance.now();
  const acks = await Promise.all(
    users.flatMap((u) =>
      Array.from({ length: MESSAGES_PER_SENDER }, (_, n) => push(u.channel, "new_msg", { body: `${u.username}#${n}` }).then((r) => ({ id: r.id, username: u.username, body: `${u.username}#${n}` }))),
    ),
  );
  const total = users.length * MESSAGES_PER_SENDER;
  assert.equal(acks.length, total);
  assert.equal(new Set(acks.map((a) => a.id)).size, total, "one id per acknowledged message");

  // Every acknowledged message is in PostgreSQL, as sent.
  const rows = new Map(psql(`SELECT id, username, body FROM messages WHERE room = '${room}'`).map(([id, username, body]) => [Number(id), { username, body }]));
  for (const ack of acks) assert.deepEqual(rows.get(ack.id), { username: ack.username, body: ack.body }, `message ${ack.id} stored`);
  assert.equal(rows.size, total, "nothing stored beyond what was acknowledged");

  // Every user (sender included) receives every message exactly once, each sender's in
  // the order sent.
  await until(() => users.every((u) => u.messages.length >= total), "every user to receive every message");
  // A figure for the report, not an assertion.
  t.diagnostic(`${total} messages from ${users.length} senders on ${NODES} nodes stored and delivered to all in ${Math.round(performance.now() - sent)} ms`);
  await new Promise((r) => setTimeout(r, 300)); // a duplicate would arrive by now
  const ackedIds = acks.map((a) => a.id).sort((a, b) => a - b);
  for (const u of users) {
    const ids = u.messages.map((m) => m.id);
    assert.deepEqual([...ids].sort((a, b) => a - b), ackedIds, `${u.username} on ${u.node.url}: each message exactly once`);
    for (const sender of users) {
      const numbers = u.messages.filter((m) => m.username === sender.username).map((m) => Number(m.body.split("#")[1]));
      assert.deepEqual(numbers, Array.from({ length: MESSAGES_PER_SENDER }, (_, n) => n), `${u.username} gets ${sender.username}'s messages in order`);
    }
    for (const m of u.messages) assert.deepEqual(rows.get(m.id), { username: m.username, body: m.body }, "what is shown is what is stored");
  }

  // Presence is still one list everywhere: same keys, same metas (phx_refs), not just
  // the same names.
  for (const u of users) assert.deepEqual(names(u), everyone, `${u.username}'s presence list`);
  for (const u of users) assert.equal(fullList(u), fullList(users[0]), `${u.username}'s list is ${users[0].username}'s`);

  // History on join: the same from every node, and the latest of the database.
  const late = await Promise.all(nodes.map((node, i) => member(node, room, `late${i}`)));
  const latest = psql(`SELECT id FROM messages WHERE room = '${room}' ORDER BY id DESC LIMIT 50`).map(([id]) => Number(id)).reverse();
  for (const l of late) {
    assert.deepEqual(l.history, late[0].history, `history on join from ${l.node.url}`);
    assert.deepEqual(l.history.map((m) => m.id), latest);
  }
});

test("typing on node 1 is seen on node 3, and a leave on one node leaves every list", async () => {
  const room = "cluster-typing";
  const ann = await member(nodes[0], room, "ann");
  const bob = await member(nodes[2], room, "bob");
  const cat = await member(nodes[1], room, "cat");
  const all = [ann, bob, cat];
  await until(() => all.every((u) => names(u).join() === "ann,bob,cat"), "all three in every presence list");

  ann.channel.push("typing", {});
  await until(() => bob.typing.includes("ann") && cat.typing.includes("ann"), "ann's typing on nodes 3 and 2");
  assert.deepEqual(ann.typing, [], "typing is not echoed to its sender");

  await new Promise((resolve) => cat.channel.leave().receive("ok", resolve));
  await until(() => [ann, bob].every((u) => names(u).join() === "ann,bob"), "cat's leave on every node");
});

test("a session from one node is honoured by the others, and logout closes its sockets on every node", async () => {
  const tag = Date.now().toString(36);
  const res = await fetch(`${nodes[0].url}/api/register`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username: `dee${tag}`, password: PASSWORD }),
  });
  assert.equal(res.status, 201);
  const { token } = await res.json();
  const onTwo = await connect(nodes[1], { token });
  const onThree = await connect(nodes[2], { token });
  assert.ok(onTwo.ok && onThree.ok, "nodes 2 and 3 accept node 1's session token");
  const bystander = await connect(nodes[2]);

  const logout = await fetch(`${nodes[0].url}/api/logout`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ token }),
  });
  assert.equal(logout.status, 200);
  await until(() => onTwo.closes.includes(1001) && onThree.closes.includes(1001), "the user's sockets on nodes 2 and 3 to close with 1001");
  await new Promise((r) => setTimeout(r, 200));
  assert.deepEqual(bystander.closes, [], "another socket stays open");
});

test("a node whose Redis is unreachable at start still serves its own sockets", async () => {
  const deadPort = await freePort();
  const lonely = await startChat({
    databaseUrl: db.url,
    env: { ...clusterEnv(3), REDIS_URL: `redis://:hunter2@127.0.0.1:${deadPort}` },
  });
  try {
    await until(() => lonely.logs.some((l) => /cannot reach Redis/.test(l)), "the log to say Redis is unreachable");
    assert.ok(lonely.logs.some((l) => /cluster on/.test(l)), "the start-up log says the cluster is on");
    assert.ok(!lonely.logs.some((l) => l.includes("hunter2")), "the Redis password is never logged");
    const ready = await fetch(`${lonely.url}/readyz`);
    assert.equal(ready.status, 503, "not ready while the cluster link is down");
    assert.ok((await ready.json()).down.cluster, "/readyz names the cluster link");
    const ann = await member(lonely, "cluster-alone", "ann");
    const { id } = await push(ann.channel, "new_msg", { body: "still here" });
    await until(() => ann.messages.some((m) => m.id === id), "the node's own broadcast");
  } finally {
    await lonely.stop();
  }
});

test("a cluster node without DATABASE_URL or SECRET_KEY_BASE is refused with the reason", async () => {
  await assert.rejects(
    startChat({ env: { REDIS_URL: redis.url, SECRET_KEY_BASE: SECRET } }),
    (e) => /exited with 1/.test(e.message) && /REDIS_URL.*is set but DATABASE_URL is not/.test(e.message),
  );
  await assert.rejects(
    startChat({ databaseUrl: db.url, env: { REDIS_URL: redis.url, SECRET_KEY_BASE: "" } }),
    (e) => /exited with 1/.test(e.message) && /SECRET_KEY_BASE/.test(e.message),
  );
  // An empty REDIS_URL is a single node, exactly as without it.
  const single = await startChat({ env: { REDIS_URL: "" } });
  try {
    assert.ok(single.logs.some((l) => /cluster off/.test(l)));
  } finally {
    await single.stop();
  }
});

// The faults of docs/cluster.md, last: they stop and kill nodes and Redis.

test("a stopped node's users leave the other lists and return when it resumes; a killed node's leave", async () => {
  const room = "cluster-faults";
  const a = await member(nodes[0], room, "a");
  const b = await member(nodes[1], room, "b");
  const c = await member(nodes[2], room, "c");
  await until(() => [a, b, c].every((u) => names(u).join() === "a,b,c"), "a, b and c in every list");

  nodes[2].child.kill("SIGSTOP");
  try {
    await until(() => [a, b].every((u) => names(u).join() === "a,b"), "c to leave once node 3 is silent past CLUSTER_DOWN_MS");
  } finally {
    nodes[2].child.kill("SIGCONT");
  }
  await until(() => [a, b, c].every((u) => names(u).join() === "a,b,c"), "c back on every list, and node 3 still listing a and b");
  const { id } = await push(c.channel, "new_msg", { body: "resumed" });
  await until(() => [a, b].every((u) => u.messages.some((m) => m.id === id)), "node 3's message after it resumed");

  nodes[2].child.kill("SIGKILL");
  await until(() => [a, b].every((u) => names(u).join() === "a,b"), "c to leave once node 3 is killed");
});

test("a guest name in use in a room on one node is refused on another once presence has replicated", async () => {
  const room = "cluster-names";
  await member(nodes[0], room, "zed");
  const observer = await member(nodes[1], room, "obs");
  await until(() => names(observer).includes("zed"), "zed in node 2's presence");
  const { socket } = await connect(nodes[1]);
  const refused = await new Promise((resolve) =>
    socket
      .channel(`room:${room}`, { username: "Zed" })
      .join()
      .receive("ok", () => resolve(null))
      .receive("error", resolve),
  );
  assert.deepEqual(refused, { reason: "this name is used by another guest" });
});

test("with Redis gone each node serves its own; when it is back, presence and broadcasts span the nodes again", async () => {
  const room = "cluster-redis";
  const a = await member(nodes[0], room, "a");
  const b = await member(nodes[1], room, "b");
  await until(() => [a, b].every((u) => names(u).join() === "a,b"), "a and b in both lists");

  for (const node of nodes.slice(0, 2)) assert.equal((await fetch(`${node.url}/readyz`)).status, 200, "ready while linked");
  await redis.stop();
  for (const node of nodes.slice(0, 2)) await until(() => node.logs.some((l) => /cluster link to Redis lost/.test(l)), "the link loss in the log");
  const { id: alone } = await push(a.channel, "new_msg", { body: "while Redis is away" });
  await until(() => a.messages.some((m) => m.id === alone), "node 1's own broadcast while Redis is away");
  await until(() => names(a).join() === "a" && names(b).join() === "b", "each node to declare the other down");

  redis = await startRedis(redis.port);
  await until(() => [a, b].every((u) => names(u).join() === "a,b"), "both lists whole again once Redis is back");
  const { id } = await push(b.channel, "new_msg", { body: "Redis is back" });
  await until(() => a.messages.some((m) => m.id === id), "node 2's message on node 1 once Redis is back");
  assert.ok(!b.messages.some((m) => m.id === alone), "what was sent while Redis was away is not replayed live");
  assert.deepEqual(psql(`SELECT body FROM messages WHERE id = ${alone}`), [["while Redis is away"]], "but it is stored");
});
