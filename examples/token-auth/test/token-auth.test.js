// examples/token-auth through the unmodified phoenix.js (npm, with the `ws` package as
// its WebSocket in Node): tokens from --print-token, bad tokens, and tokens that real
// Phoenix 1.7.14 signed (crates/phx-server/tests/data/phoenix-token-vectors.json).
import { test, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";
import { Socket } from "phoenix";
import WebSocket from "ws";

const exampleDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const repoRoot = path.resolve(exampleDir, "../..");
const binary = path.join(process.env.CARGO_TARGET_DIR ?? path.join(repoRoot, "target"), "debug/token-auth");
const vectors = JSON.parse(
  readFileSync(path.join(repoRoot, "crates/phx-server/tests/data/phoenix-token-vectors.json"), "utf8"),
);
// The Phoenix app's secret_key_base: the vectors were signed with it.
const SECRET = vectors.secret_key_base;

// An upper bound only a broken server reaches (a loaded 2-core machine running a debug
// build can stall for seconds); every wait ends as soon as its event happens.
const PATIENCE_MS = 20000;
const bounded = { timeout: 4 * PATIENCE_MS };

const children = new Set();
process.on("exit", () => {
  for (const child of children) child.kill("SIGKILL");
});

/** `token-auth --print-token USER_ID` under `secret`. */
function printToken(userId, secret = SECRET) {
  return execFileSync(binary, ["--print-token", String(userId)], {
    env: { ...process.env, SECRET_KEY_BASE: secret },
    encoding: "utf8",
  }).trim();
}

/** Starts the server with `args`; resolves with its ws:// base URL. */
async function startServer(args = []) {
  const child = spawn(binary, ["--addr", "127.0.0.1:0", ...args], {
    env: { ...process.env, SECRET_KEY_BASE: SECRET },
    stdio: ["ignore", "pipe", "inherit"],
  });
  children.add(child);
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("token-auth printed no 'listening' line in 120 s")), 120000);
    child.on("exit", (code) => reject(new Error(`token-auth exited with ${code} before listening`)));
    readline.createInterface({ input: child.stdout }).on("line", (line) => {
      const match = /listening on ws:\/\/localhost:(\d+)\/socket/.exec(line);
      if (!match) return;
      clearTimeout(timer);
      resolve(Number(match[1]));
    });
  });
  return `ws://127.0.0.1:${port}/socket`;
}

let server; // --max-age left at its default: two weeks, as in the Phoenix original
let ageless; // --max-age infinity
const sockets = new Set();

before(async () => {
  // The workspace's binaries, not one package's: `-p <one>` unifies features differently
  // and recompiles phx-server (~25 s) after the test command's `cargo build --workspace`.
  execFileSync("cargo", ["build", "--quiet", "--workspace", "--bins"], { cwd: repoRoot, stdio: "inherit" });
  server = await startServer();
  ageless = await startServer(["--max-age", "infinity"]);
});

after(() => {
  for (const child of children) child.kill("SIGKILL");
});

afterEach(() => {
  for (const socket of sockets) socket.disconnect();
  sockets.clear();
});

/** The status the WebSocket upgrade is answered with for `token` (101: accepted). */
function upgradeStatus(base, token) {
  const query = new URLSearchParams({ vsn: "2.0.0", ...(token === undefined ? {} : { token }) });
  return new Promise((resolve) => {
    const ws = new WebSocket(`${base}/websocket?${query}`);
    ws.on("unexpected-response", (_req, res) => resolve(res.statusCode));
    ws.on("open", () => {
      ws.close();
      resolve(101);
    });
    ws.on("error", () => {});
  });
}

/** Connects phoenix.js as a page would (`new Socket("/socket", {params: {token}})`) and joins. */
function joinAs(base, token, topic = "room:lobby") {
  const socket = new Socket(base, { transport: WebSocket, params: { token }, timeout: 30000 });
  sockets.add(socket);
  socket.connect();
  const channel = socket.channel(topic);
  return new Promise((resolve, reject) => {
    channel
      .join()
      .receive("ok", (response) => resolve({ channel, response }))
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

test("a token from --print-token connects, and the channel takes the user id from it", bounded, async () => {
  const token = printToken(42);
  assert.match(token, /^SFMyNTY\.[\w-]+\.[\w-]+$/, "Phoenix.Token's signed form");

  const { channel, response } = await joinAs(server, token);
  assert.deepEqual(response, { user_id: 42 });

  // A client cannot speak for someone else: the sender comes from the token.
  const broadcast = nextEvent(channel, "new_msg");
  channel.push("new_msg", { body: "hi", user_id: 7 });
  assert.deepEqual(await broadcast, { user_id: 42, body: "hi" });
});

test("a missing, tampered, foreign or wrongly salted token is refused with HTTP 403", bounded, async () => {
  const token = printToken(42);
  // One whole base64 character of the MAC changed (the last one holds padding bits).
  const at = token.length - 10;
  const tampered = token.slice(0, at) + (token[at] === "A" ? "B" : "A") + token.slice(at + 1);
  const foreign = printToken(42, "another-secret-key-base-0123456789-0123456789-0123456789-abcdef");
  const userAuth = vectors.cases.find((c) => c.salt === "user auth");
  assert.ok(userAuth, "the vectors hold a token with salt \"user auth\"");

  assert.equal(await upgradeStatus(server, token), 101);
  assert.equal(await upgradeStatus(server, undefined), 403);
  assert.equal(await upgradeStatus(server, ""), 403);
  assert.equal(await upgradeStatus(server, "not-a-token"), 403);
  assert.equal(await upgradeStatus(server, tampered), 403);
  assert.equal(await upgradeStatus(server, foreign), 403);
  assert.equal(await upgradeStatus(ageless, userAuth.signed), 403, "signed by Phoenix, other salt");
});

test("a token real Phoenix signed for this secret connects when max_age allows its age", bounded, async () => {
  const phoenix42 = vectors.cases.find((c) => c.salt === "user socket" && c.data === 42);
  const phoenixAlice = vectors.cases.find((c) => c.salt === "user socket" && c.data === "alice");
  assert.ok(phoenix42 && phoenixAlice, "the vectors hold user-socket tokens for 42 and \"alice\"");
  const signedAt = new Date(phoenix42.signed_at * 1000);
  assert.ok(Date.now() - signedAt > 14 * 86400 * 1000, "the vector is older than two weeks");

  // Signed in 2025: older than the two weeks the default server allows.
  assert.equal(await upgradeStatus(server, phoenix42.signed), 403);

  // With max_age: :infinity the same bytes verify, and the user is 42.
  const { response } = await joinAs(ageless, phoenix42.signed);
  assert.deepEqual(response, { user_id: 42 });

  // Authentic, but the data is not a user id.
  assert.equal(await upgradeStatus(ageless, phoenixAlice.signed), 403);
});
