// examples/hello through the unmodified phoenix.js (npm, with the `ws` package as its
// WebSocket in Node): what the README promises a new user, checked end to end.
import { test, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";
import { Socket, Presence } from "phoenix";
import WebSocket from "ws";

const exampleDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const repoRoot = path.resolve(exampleDir, "../..");
const targetDir = process.env.CARGO_TARGET_DIR ?? path.join(repoRoot, "target");

// An upper bound only a broken server reaches: a loaded 2-core machine running a debug
// build can stall for seconds, and every wait ends as soon as its event happens.
const PATIENCE_MS = 20000;

let server;
const sockets = new Set();

before(async () => {
  // The workspace's binaries, not one package's: `-p <one>` unifies features differently
  // and recompiles phx-server (~25 s) after the test command's `cargo build --workspace`.
  execFileSync("cargo", ["build", "--quiet", "--workspace", "--bins"], { cwd: repoRoot, stdio: "inherit" });
  const child = spawn(path.join(targetDir, "debug/hello"), [], {
    env: { ...process.env, ADDR: "127.0.0.1:0" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  process.on("exit", () => child.kill("SIGKILL"));
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("hello printed no 'listening' line in 120 s")), 120000);
    child.on("exit", (code) => reject(new Error(`hello exited with ${code} before listening`)));
    readline.createInterface({ input: child.stdout }).on("line", (line) => {
      const match = /listening on http:\/\/localhost:(\d+)\//.exec(line);
      if (!match) return;
      clearTimeout(timer);
      resolve(Number(match[1]));
    });
  });
  server = { child, http: `http://127.0.0.1:${port}`, ws: `ws://127.0.0.1:${port}` };
});

after(async () => {
  server?.child.kill("SIGKILL");
});

afterEach(() => {
  for (const socket of sockets) socket.disconnect();
  sockets.clear();
});

/** A phoenix.js socket as the page makes it, with `ws` as its transport in Node. */
function connect(name) {
  const socket = new Socket(`${server.ws}/socket`, {
    transport: WebSocket,
    params: { name },
    timeout: 30000,
    reconnectAfterMs: () => 50,
  });
  sockets.add(socket);
  socket.connect();
  return socket;
}

function joined(channel) {
  return new Promise((resolve, reject) => {
    channel
      .join()
      .receive("ok", resolve)
      .receive("error", (e) => reject(new Error(`join refused: ${JSON.stringify(e)}`)))
      .receive("timeout", () => reject(new Error("join timed out")));
  });
}

function nextEvent(channel, event) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} on ${channel.topic}`)), PATIENCE_MS);
    const ref = channel.on(event, (payload) => {
      channel.off(event, ref);
      clearTimeout(timer);
      resolve(payload);
    });
  });
}

async function waitFor(check, what) {
  const deadline = Date.now() + PATIENCE_MS;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const names = (presence) => presence.list((name) => name).sort();

// Generous per-test bound, so a broken server fails a test instead of hanging the run.
const bounded = { timeout: 4 * PATIENCE_MS };

test("the page, its module and phoenix.js from npm are served", bounded, async () => {
  const page = await fetch(`${server.http}/`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get("content-type"), /^text\/html/);
  assert.match(await page.text(), /<script type="module" src="\/hello.js"><\/script>/);

  const script = await fetch(`${server.http}/hello.js`);
  assert.equal(script.status, 200);
  assert.match(script.headers.get("content-type"), /^text\/javascript/);
  assert.match(await script.text(), /from "\/phoenix.mjs"/);

  const phoenix = await fetch(`${server.http}/phoenix.mjs`);
  assert.equal(phoenix.status, 200);
  assert.match(phoenix.headers.get("content-type"), /^text\/javascript/);
  const installed = readFileSync(path.join(exampleDir, "node_modules/phoenix/priv/static/phoenix.mjs"));
  assert.ok(Buffer.from(await phoenix.arrayBuffer()).equals(installed), "phoenix.mjs is npm's file, byte for byte");

  assert.equal((await fetch(`${server.http}/nothing-here`)).status, 404);
});

test("two users join the room, see each other, and a message is replied to and broadcast to both", bounded, async () => {
  const alice = connect("alice").channel("room:lobby");
  const alicePresence = new Presence(alice);
  assert.deepEqual(await joined(alice), {});
  await waitFor(() => names(alicePresence).includes("alice"), "alice in her own presence list");

  const bob = connect("bob").channel("room:lobby");
  const bobPresence = new Presence(bob);
  await joined(bob);
  await waitFor(() => names(bobPresence).join() === "alice,bob", "alice and bob in bob's list");
  await waitFor(() => names(alicePresence).join() === "alice,bob", "bob in alice's list");

  const toAlice = nextEvent(alice, "new_msg");
  const toBob = nextEvent(bob, "new_msg");
  const reply = await new Promise((resolve, reject) => {
    alice
      .push("new_msg", { body: "hello" })
      .receive("ok", resolve)
      .receive("error", (e) => reject(new Error(`push refused: ${JSON.stringify(e)}`)))
      .receive("timeout", () => reject(new Error("push timed out")));
  });
  assert.deepEqual(reply, { sent: true });
  assert.deepEqual(await toAlice, { user: "alice", body: "hello" });
  assert.deepEqual(await toBob, { user: "alice", body: "hello" });

  const error = await new Promise((resolve, reject) => {
    bob
      .push("dance", {})
      .receive("error", resolve)
      .receive("ok", () => reject(new Error("an unknown event was answered ok")))
      .receive("timeout", () => reject(new Error("push timed out")));
  });
  assert.deepEqual(error, { reason: "unknown event" });

  bob.socket.disconnect();
  await waitFor(() => names(alicePresence).join() === "alice", "bob gone from alice's list");
});

test("a connection without a name is refused with HTTP 403", bounded, async () => {
  const status = await new Promise((resolve, reject) => {
    const ws = new WebSocket(`${server.ws}/socket/websocket?vsn=2.0.0`);
    ws.on("unexpected-response", (_req, res) => resolve(res.statusCode));
    ws.on("open", () => reject(new Error("a socket without a name was accepted")));
    ws.on("error", () => {});
  });
  assert.equal(status, 403);
});

// Last: it stops the server. systemd, Docker and Kubernetes stop a process with SIGTERM;
// the example waits for it (phx_server::shutdown_signal) and drains instead of dying.
test("SIGTERM closes the joined sockets with 1012 (phoenix.js reconnects) and the server exits 0", bounded, async () => {
  const exited = new Promise((resolve) => {
    server.child.on("exit", (code, signal) => resolve({ code, signal }));
  });
  const ws = new WebSocket(`${server.ws}/socket/websocket?vsn=2.0.0&name=ann`);
  ws.on("error", () => {});
  const closed = new Promise((resolve) => ws.on("close", (code) => resolve(code)));
  const joinReply = new Promise((resolve) => ws.on("message", (data) => resolve(JSON.parse(data))));
  await new Promise((resolve, reject) => {
    ws.on("open", resolve);
    ws.on("unexpected-response", (_req, res) => reject(new Error(`refused: ${res.statusCode}`)));
  });
  ws.send(JSON.stringify(["1", "1", "room:lobby", "phx_join", {}]));
  const [, , , event, reply] = await joinReply;
  assert.deepEqual([event, reply.status], ["phx_reply", "ok"]);

  server.child.kill("SIGTERM");
  assert.equal(await closed, 1012, "service restart, which phoenix.js answers by reconnecting");
  assert.deepEqual(await exited, { code: 0, signal: null });
});
