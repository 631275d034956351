// examples/gateway/python: the chat app's guest protocol (docs/chat.md) answered by a
// Python backend behind phx-gateway, started as a newcomer would, with its run.sh, on a
// free port and a database of the test's own (run.sh creates it; dropped after). Two
// phoenix.js clients join a room, one sends, both get the broadcast with the chat
// message's fields; a rejoin gets the history oldest first, `history` pages further
// back; bad input gets the chat app's refusals; presence lists both under their names;
// the gateway serves the chat page; SIGTERM stops both processes.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import net from "node:net";
import path from "node:path";
import readline from "node:readline";
import { Presence } from "phoenix";
import { build, disconnectAll, phxSocket, repoRoot, waitFor, PATIENCE_MS } from "../lib/harness.js";

const ADMIN = process.env.TEST_DATABASE_ADMIN_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const DB = `phx_gateway_python_${process.pid}`;
const DATABASE_URL = ADMIN.replace(/\/[^/]*$/, `/${DB}`);

function psql(sql) {
  try {
    return execFileSync("psql", [ADMIN, "-v", "ON_ERROR_STOP=1", "-Atc", sql], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (e) {
    if (/could not connect|Connection refused|No such file/.test(String(e.stderr ?? e.message))) {
      throw new Error(
        "PostgreSQL is not reachable on 127.0.0.1:5432. Start it with: " +
          "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
      );
    }
    throw new Error(`psql failed: ${e.stderr ?? e.message}`);
  }
}

function freePort() {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

let run; // run.sh
let base; // http://127.0.0.1:PORT
const output = [];

before(async () => {
  build();
  psql(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
  const port = await freePort();
  run = spawn("bash", [path.join(repoRoot, "examples/gateway/python/run.sh")], {
    env: {
      ...process.env,
      PORT: String(port),
      DATABASE_URL,
      PHX_GATEWAY_BIN: path.join(process.env.CARGO_TARGET_DIR ?? path.join(repoRoot, "target"), "debug/phx-gateway"),
      RUST_LOG: "phx_gateway=info,phx_server=warn",
    },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true, // its own process group: a failed test kills the backend too
  });
  readline.createInterface({ input: run.stderr }).on("line", (l) => output.push(l));
  await new Promise((resolve, reject) => {
    // The first run installs psycopg into the virtual environment.
    const timer = setTimeout(() => reject(new Error(`run.sh did not start in 120 s:\n${output.join("\n")}`)), 120000);
    run.on("exit", (code) => reject(new Error(`run.sh exited with ${code}:\n${output.join("\n")}`)));
    readline.createInterface({ input: run.stdout }).on("line", (line) => {
      output.push(line);
      if (/phx-gateway listening on ws:\/\//.test(line)) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  base = `http://127.0.0.1:${port}`;
});

after(() => {
  disconnectAll();
  if (run && run.exitCode === null && run.signalCode === null) {
    try {
      process.kill(-run.pid, "SIGKILL");
    } catch {}
  }
  psql(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
});

const key = (c) => c.repeat(40);

/** A guest's phoenix.js socket joined to `topic` as `username`, recording broadcasts. */
async function guest(username, topic, guestKey, params = () => ({ username })) {
  const socket = phxSocket(`${base.replace("http", "ws")}/socket`, { params: { guest_key: guestKey } });
  socket.connect();
  const channel = socket.channel(topic, params);
  const got = [];
  channel.on("new_msg", (m) => got.push(m));
  const presence = new Presence(channel);
  const reply = await new Promise((resolve, reject) =>
    channel.join().receive("ok", resolve).receive("error", (e) => reject(new Error(JSON.stringify(e)))),
  );
  return { socket, channel, got, presence, reply };
}

/** Pushes and resolves with {status, response}. */
function push(channel, event, payload) {
  return new Promise((resolve, reject) => {
    channel
      .push(event, payload, PATIENCE_MS)
      .receive("ok", (response) => resolve({ status: "ok", response }))
      .receive("error", (response) => resolve({ status: "error", response }))
      .receive("timeout", () => reject(new Error(`${event}: no reply`)));
  });
}

test("two guests: a message stored and broadcast with the chat fields, presence under the usernames", async () => {
  const ann = await guest("ann", "room:py", key("a"));
  const bob = await guest("bob", "room:py", key("b"));
  assert.deepEqual(ann.reply.messages, [], "a fresh room");
  assert.equal(ann.reply.gap, false);
  const annAuthor = ann.reply.me.author;
  assert.match(annAuthor, /^guest:[0-9a-f]{32}$/);
  assert.deepEqual(ann.reply.me, { author: annAuthor, username: "ann", guest: true });

  await waitFor(() => ann.presence.list().length === 2, "both guests in ann's presence list");
  await waitFor(() => bob.presence.list().length === 2, "both guests in bob's presence list");
  const keys = [];
  ann.presence.list((k, { metas }) => keys.push([k, metas[0].username, metas[0].author]));
  assert.deepEqual(keys.sort(), [["ann", "ann", annAuthor], ["bob", "bob", bob.reply.me.author]]);

  const sent = await push(ann.channel, "new_msg", { body: "  hello @bob  ", client_id: "c-1" });
  assert.equal(sent.status, "ok");
  assert.ok(Number.isSafeInteger(sent.response.id));
  for (const c of [ann, bob]) await waitFor(() => c.got.length === 1, "the broadcast");
  const m = bob.got[0];
  assert.equal(m.id, sent.response.id);
  assert.equal(m.username, "ann");
  assert.equal(m.body, "hello @bob", "trimmed as the chat app does");
  assert.match(m.inserted_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
  assert.equal(m.author, annAuthor);
  assert.equal(m.guest, true);
  assert.equal(m.room, "py");
  assert.deepEqual(m.mentions, ["bob"]);
  assert.equal(m.client_id, "c-1");
  assert.equal(m.seq, m.id);
  assert.deepEqual(ann.got, bob.got, "the sender gets it too");

  // The same client_id again: the first id, no second broadcast.
  assert.deepEqual(await push(ann.channel, "new_msg", { body: "hello again", client_id: "c-1" }), {
    status: "ok",
    response: { id: m.id, duplicate: true },
  });
  const marker = await push(bob.channel, "new_msg", { body: "marker" });
  await waitFor(() => ann.got.some((x) => x.id === marker.response.id), "bob's marker");
  assert.deepEqual(ann.got.map((x) => x.body), ["hello @bob", "marker"]);

  // bob leaves: ann's list shrinks to herself.
  await new Promise((r) => bob.channel.leave().receive("ok", r));
  await waitFor(() => ann.presence.list().length === 1, "bob gone from presence");
});

test("a rejoin gets the history oldest first; history pages further back", async () => {
  const ann = await guest("ann", "room:history", key("c"));
  const ids = [];
  for (const body of ["one", "two", "three", "four"]) ids.push((await push(ann.channel, "new_msg", { body })).response.id);
  assert.deepEqual([...ids].sort((a, b) => a - b), ids, "ids increase");

  const again = await guest("cat", "room:history", key("d"));
  assert.deepEqual(again.reply.messages.map((x) => x.body), ["one", "two", "three", "four"]);
  assert.equal(again.reply.seq, ids[3]);
  // A rejoin that saw up to "two" gets what it missed.
  const missed = await guest("dan", "room:history", key("e"), () => ({ username: "dan", after_id: ids[1] }));
  assert.deepEqual(missed.reply.messages.map((x) => x.body), ["three", "four"]);
  assert.equal(missed.reply.gap, false);

  const page = await push(again.channel, "history", { before_id: ids[2], limit: 1 });
  assert.deepEqual(page.response.messages.map((x) => x.body), ["two"]);
  const rest = await push(again.channel, "history", { before_id: ids[1] });
  assert.deepEqual(rest.response.messages.map((x) => x.body), ["one"]);
});

test("bad input gets the chat app's refusals", async () => {
  const ann = await guest("ann", "room:rules", key("f"));
  const refused = async (event, payload) => {
    const r = await push(ann.channel, event, payload);
    assert.equal(r.status, "error", `${event} ${JSON.stringify(payload)}`);
    return r.response.reason;
  };
  assert.equal(await refused("new_msg", { body: " \n\t " }), "message can't be blank");
  assert.equal(await refused("new_msg", { body: "é".repeat(4001) }), "message must be at most 4000 characters");
  assert.equal(
    await refused("new_msg", { body: "bell\u0007" }),
    "message may not contain control characters (line breaks and tabs are fine)",
  );
  assert.equal(await refused("new_msg", {}), "body is required");
  assert.equal(await refused("new_msg", { body: 5 }), "body is required");
  assert.equal(
    await refused("new_msg", { body: "x", client_id: "no spaces" }),
    "client_id must be 1 to 64 characters of letters, digits, '_' and '-'",
  );
  assert.equal(await refused("new_msg", { body: "x", attachments: ["u1"] }), "uploads are not enabled");
  assert.equal(await refused("history", { before_id: 1, limit: 101 }), "limit must be an integer from 1 to 100");
  assert.equal(await refused("history", { before_id: "x" }), "before_id must be an integer");
  assert.equal(await refused("nonsense", {}), 'unknown event "nonsense"');
  // Tabs and line breaks are text; the message is stored.
  assert.equal((await push(ann.channel, "new_msg", { body: "a\tb\nc" })).status, "ok");

  const join = (topic, params) =>
    new Promise((resolve) => {
      const socket = phxSocket(`${base.replace("http", "ws")}/socket`, { params: { guest_key: key("g") } });
      socket.connect();
      const channel = socket.channel(topic, params);
      channel.join().receive("error", (e) => {
        channel.leave();
        resolve(e.reason);
      }).receive("ok", () => resolve("joined"));
    });
  assert.equal(await join("room:rules", {}), "username is required");
  assert.equal(await join("room:rules", { username: "   " }), "username can't be blank");
  assert.equal(await join("room:rules", { username: "x".repeat(33) }), "username must be at most 32 characters");
  assert.equal(await join("room:rules", { username: "<b>" }), "username may only contain letters, digits, spaces, '_', '-' and '.'");
  assert.equal(await join("room:a b", { username: "ann" }), "room name may only contain letters, digits, '_', '-' and '.'");
  assert.equal(await join("room:rules", { username: "ann", after_id: "x" }), "after_id must be an integer");
});

test("the gateway serves the chat page and its phoenix.js; SIGTERM stops both processes", async () => {
  const page = await fetch(`${base}/`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get("content-type"), /^text\/html/);
  assert.match(await page.text(), /assets\/app\.js/);
  for (const asset of ["/assets/app.js", "/assets/phoenix.mjs", "/assets/style.css"]) {
    const res = await fetch(`${base}${asset}`);
    assert.equal(res.status, 200, asset);
  }
  assert.equal((await fetch(`${base}/assets/../package.json`)).status, 404);
  assert.equal((await fetch(`${base}/readyz`)).status, 200, "the backend and its database answer");

  const pids = execFileSync("pgrep", ["-g", String(run.pid)], { encoding: "utf8" }).trim().split("\n").map(Number);
  assert.ok(pids.length >= 3, `run.sh, the backend and the gateway: ${pids}`);
  const exited = new Promise((r) => run.once("exit", (code, signal) => r({ code, signal })));
  run.kill("SIGTERM");
  assert.deepEqual(await exited, { code: 0, signal: null });
  await waitFor(() => {
    try {
      execFileSync("pgrep", ["-g", String(run.pid)]);
      return false;
    } catch {
      return true; // pgrep finds nothing: every process of the group is gone
    }
  }, "the backend and the gateway gone");
});
