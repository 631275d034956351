// What the gateway tests share: a phx-gateway started on a config of the test's own, a
// fake backend in this process whose every hook can be made to fail on purpose, a raw
// WebSocket client, and phoenix.js in Node.
import { spawn, execFileSync } from "node:child_process";
import { createHmac, timingSafeEqual } from "node:crypto";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import net from "node:net";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";
import { Socket } from "phoenix";
import WebSocket from "ws";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const binary = path.join(process.env.CARGO_TARGET_DIR ?? path.join(repoRoot, "target"), "debug/phx-gateway");

/**
 * An upper bound only a broken gateway reaches (a loaded 2-core machine running a debug
 * build can stall for seconds); every wait ends as soon as its event happens.
 */
export const PATIENCE_MS = 20000;

/** A 64-hex-digit secret (32 random bytes' worth of text). */
export const SECRET = "5e".repeat(32);
export const API_KEY = "a7".repeat(32);

let built = false;
export function build() {
  if (built) return;
  // The workspace's binaries, not one package's: `-p <one>` unifies features differently
  // and recompiles phx-server (~25 s) after the test command's `cargo build --workspace`.
  execFileSync("cargo", ["build", "--quiet", "--workspace", "--bins"], { cwd: repoRoot, stdio: "inherit" });
  built = true;
}

const children = new Set();
const dirs = new Set();
process.on("exit", () => {
  for (const child of children) child.kill("SIGKILL");
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** Writes `text` to a config file of its own (removed when the tests exit); returns its path. */
export function configFile(text) {
  const dir = mkdtempSync(path.join(os.tmpdir(), "phx-gateway-test-"));
  dirs.add(dir);
  const file = path.join(dir, "gateway.toml");
  writeFileSync(file, text);
  return file;
}

/**
 * Starts phx-gateway on `config` (TOML text; `listen` is set here) with `env`. Resolves
 * with {ws, http, logs, stop} once it printed its `listening` line; `logs` collects its
 * standard error (for assertions on what it logged).
 */
export async function startGateway(config, { env = {}, files = {} } = {}) {
  build();
  const file = configFile(`[server]\nlisten = "127.0.0.1:0"\n${config}`);
  for (const [name, content] of Object.entries(files)) writeFileSync(path.join(path.dirname(file), name), content);
  const child = spawn(binary, ["--config", file], {
    env: { ...process.env, RUST_LOG: "phx_gateway=debug,phx_server=warn", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.add(child);
  const logs = [];
  readline.createInterface({ input: child.stderr }).on("line", (line) => {
    logs.push(line);
    if (process.env.GATEWAY_LOGS) console.error(line);
  });
  const ws = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("phx-gateway printed no 'listening' line in 120 s")), 120000);
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`phx-gateway exited with ${code} before listening:\n${logs.join("\n")}`));
    });
    readline.createInterface({ input: child.stdout }).on("line", (line) => {
      const match = /listening on (wss?:\/\/\S+)/.exec(line);
      if (!match) return;
      clearTimeout(timer);
      resolve(match[1]);
    });
  });
  const stop = async () => {
    children.delete(child);
    if (child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise((r) => child.once("exit", r));
    child.kill("SIGKILL");
    await gone;
  };
  // ws:// → http://, wss:// → https://
  return { ws, http: ws.replace(/^ws/, "http"), logs, child, stop };
}

/** docs/gateway.md, "Checking the signature". */
export function verify(secret, header, body, tolerance = 300) {
  const parts = Object.fromEntries((header ?? "").split(",").map((p) => p.split("=", 2)));
  const t = Number(parts.t);
  if (!Number.isInteger(t) || !parts.v1 || Math.abs(Date.now() / 1000 - t) > tolerance) return false;
  const expected = createHmac("sha256", secret).update(`${t}.`).update(body).digest();
  const given = Buffer.from(parts.v1, "hex");
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/**
 * A backend in this process. `handlers[path](request)` answers each hook with a JSON
 * object (or an object {status, body, delayMs, raw} to misbehave). Every request is
 * recorded with whether its signature verified under `secret`.
 */
export async function fakeBackend(handlers = {}, { secret = SECRET } = {}) {
  const requests = [];
  // `self.secret` may be changed by a test (a backend configured with another secret).
  const self = { secret };
  const server = http.createServer(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const body = Buffer.concat(chunks);
    const url = new URL(req.url, "http://backend");
    const signed = verify(self.secret, req.headers["x-phx-gateway-signature"], body);
    let json = null;
    try {
      json = body.length ? JSON.parse(body.toString("utf8")) : null;
    } catch {}
    const entry = { path: url.pathname, method: req.method, signed, json, headers: req.headers };
    requests.push(entry);
    if (!signed) {
      entry.status = 401;
      res.writeHead(401, { "content-type": "application/json" });
      return res.end('{"error":"bad signature"}');
    }
    const handler = handlers[url.pathname];
    let answer = handler ? await handler(json, entry) : { misbehave: { status: 404 } };
    if (answer === undefined) answer = {};
    if (answer && answer.misbehave) {
      const { status = 200, body: raw = "{}", delayMs = 0 } = answer.misbehave;
      if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
      if (res.destroyed) return;
      entry.status = status;
      res.writeHead(status, { "content-type": "application/json" });
      return res.end(raw);
    }
    entry.status = 200;
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify(answer));
  });
  server.keepAliveTimeout = 60_000;
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${server.address().port}`;
  const sockets = new Set();
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  return Object.assign(self, {
    url,
    requests,
    handlers,
    /** Requests to `path` so far. */
    calls: (p) => requests.filter((r) => r.path === p),
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(r);
      }),
  });
}

/** The `[backend]` table for `backend` with optional extra lines. */
export function backendToml(backend, extra = "") {
  return `[backend]\nurl = "${backend.url}"\nsecret = "${SECRET}"\n${extra}\n`;
}

/** A raw V2 WebSocket client: frames as arrays, waiting on the next matching one. */
export class Raw {
  constructor(ws) {
    this.ws = ws;
    this.frames = [];
    this.waiters = [];
    this.closed = null;
    this.ref = 100;
    ws.on("message", (data, isBinary) => {
      this.frames.push(isBinary ? { binary: Buffer.from(data) } : JSON.parse(data.toString("utf8")));
      this.wake();
    });
    ws.on("close", (code) => {
      this.closed = { code };
      this.wake();
    });
    ws.on("error", () => {});
  }

  /** Opens `<base><mount>/websocket?vsn=2.0.0&<query>`; rejects with {status} if refused. */
  static open(base, { mount = "/socket", query = "", protocols, headers = {} } = {}) {
    const url = `${base}${mount}/websocket?vsn=2.0.0${query ? "&" + query : ""}`;
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, protocols, { headers, perMessageDeflate: false });
      const raw = new Raw(ws);
      ws.once("open", () => resolve(raw));
      ws.once("unexpected-response", (_req, res) => {
        reject(Object.assign(new Error(`upgrade refused with ${res.statusCode}`), { status: res.statusCode }));
        ws.terminate();
      });
      ws.once("error", reject);
    });
  }

  wake() {
    for (const w of this.waiters.splice(0)) w();
  }

  nextRef() {
    return String(this.ref++);
  }

  send(frame) {
    this.ws.send(JSON.stringify(frame));
  }

  /** Resolves with the first received frame matching `pred` (removing it). */
  async next(pred = () => true, what = "a frame") {
    const deadline = Date.now() + PATIENCE_MS;
    for (;;) {
      const at = this.frames.findIndex(pred);
      if (at >= 0) return this.frames.splice(at, 1)[0];
      if (this.closed) throw new Error(`socket closed (${this.closed.code}) while waiting for ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => {
        const timer = setTimeout(r, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          r();
        });
      });
    }
  }

  /** The reply to the message with ref `ref`. */
  reply(ref) {
    return this.next((f) => Array.isArray(f) && f[1] === ref && f[3] === "phx_reply", `the reply to ${ref}`);
  }

  /** Sends a heartbeat; resolves with its reply. */
  async heartbeat() {
    const ref = this.nextRef();
    this.send([null, ref, "phoenix", "heartbeat", {}]);
    return this.reply(ref);
  }

  /** Joins `topic`; resolves with the reply frame. */
  async join(topic, payload = {}) {
    const ref = this.nextRef();
    this.send([ref, ref, topic, "phx_join", payload]);
    const reply = await this.reply(ref);
    return { joinRef: ref, reply };
  }

  /** Pushes `event` on a joined topic; returns its ref. */
  push(topic, joinRef, event, payload = {}) {
    const ref = this.nextRef();
    this.send([joinRef, ref, topic, event, payload]);
    return ref;
  }

  close() {
    this.ws.close();
  }
}

/** Resolves when `check()` is truthy, or rejects after PATIENCE_MS. */
export async function waitFor(check, what = "condition", timeout = PATIENCE_MS) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const live = new Set();

/** A phoenix.js Socket (the `ws` package as its WebSocket) with test-friendly timings. */
export function phxSocket(url, opts = {}) {
  const socket = new Socket(url, {
    transport: WebSocket,
    reconnectAfterMs: () => 100,
    rejoinAfterMs: () => 100,
    timeout: 30000,
    ...opts,
  });
  live.add(socket);
  return socket;
}

export function disconnectAll() {
  for (const s of live) s.disconnect();
  live.clear();
}

/** The status a WebSocket upgrade gets (101 when accepted). */
export async function upgradeStatus(base, opts) {
  try {
    const raw = await Raw.open(base, opts);
    raw.close();
    return 101;
  } catch (e) {
    if (e.status) return e.status;
    throw e;
  }
}

/** A free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * A private redis-server on a free port (never the shared 127.0.0.1:6379), killed when
 * the tests exit; fails saying how to install it. Resolves with {url, port}.
 */
export async function privateRedis() {
  const port = await freePort();
  const child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
    stdio: "ignore",
  });
  children.add(child);
  const missing = new Promise((resolve) => child.once("error", (e) => resolve(e)));
  const up = waitFor(
    () =>
      new Promise((resolve) => {
        const s = net.connect(port, "127.0.0.1");
        s.once("connect", () => {
          s.destroy();
          resolve(true);
        });
        s.once("error", () => resolve(false));
      }),
    "redis-server to listen",
  );
  const first = await Promise.race([up.then(() => null), missing]);
  if (first) throw new Error(`redis-server could not start (${first.message}): install Debian's redis-server package`);
  return { url: `redis://127.0.0.1:${port}`, port };
}
