// Where the server under test lives: PHX_URL (any Phoenix-protocol server implementing
// docs/conformance.md, Phoenix included), or examples/conformance-server built and
// started here on a free port.
import { spawn, execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import path from "node:path";
import readline from "node:readline";
import net from "node:net";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
let built = false;

function build() {
  if (built) return;
  // The workspace's binaries, not one package's: `-p <one>` unifies features differently
  // and recompiles phx-server (~25 s) after the test command's `cargo build --workspace`.
  execFileSync("cargo", ["build", "--quiet", "--workspace", "--bins"], { cwd: repoRoot, stdio: "inherit" });
  built = true;
}

/** A TCP port that was free a moment ago (the server binds it right after). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const children = new Set();
// A test file that dies (uncaught error, Ctrl-C) must not leave servers behind.
process.on("exit", () => {
  for (const child of children) child.kill("SIGKILL");
});
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.once(signal, () => process.exit(130));
}

/** Kills `child` (with SIGKILL) when this process exits, unless released first. */
export function adopt(child) {
  children.add(child);
  return () => children.delete(child);
}

/** SIGKILLs `child` (a paused one too) and resolves once it is gone. */
export async function killChild(child) {
  children.delete(child);
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((r) => child.once("exit", r));
  child.kill("SIGKILL");
  await gone;
}

/**
 * Builds (once) and starts `target/debug/conformance-server` with `args`, on a port it
 * found free. Resolves with {ws, http, child} once the server printed its `listening`
 * line.
 */
export async function launch(args, { port } = {}) {
  build();
  const bin = path.join(repoRoot, "target/debug/conformance-server");
  port ??= await freePort();
  const child = spawn(bin, ["--port", String(port), ...args], { stdio: ["ignore", "pipe", "inherit"] });
  adopt(child);
  const url = await new Promise((resolve, reject) => {
    // Generous: the first start after a build can be slow on a loaded machine.
    const timer = setTimeout(() => reject(new Error("conformance-server printed no 'listening' line in 120 s")), 120000);
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`conformance-server exited with ${code} before listening`));
    });
    readline.createInterface({ input: child.stdout }).on("line", (line) => {
      if (!/listening/i.test(line)) return;
      clearTimeout(timer);
      resolve(/(wss?:\/\/[^\s]+)/.exec(line)?.[1] ?? `ws://127.0.0.1:${port}`);
    });
  });
  return { ws: url, http: url.replace(/^ws/, "http"), child };
}

/**
 * PHX_GATEWAY=1: every server a test file asks for is phx-gateway in front of the Node
 * contract backend (`examples/gateway/node/run.sh`, docs/gateway.md): the same sockets
 * and channels, answered by HTTP hooks. The control routes are the backend's (it carries
 * them out through the gateway's server API), so `server.control` names it.
 */
export const gatewayMode = process.env.PHX_GATEWAY === "1";
let gatewayBuilt = false;

/**
 * Starts `examples/gateway/node/run.sh` on a free port, in a process group of its own
 * (run.sh starts two processes; stopping the group stops both). Resolves with
 * {ws, http, control, stop} once the gateway printed its `listening` line.
 */
async function launchGateway({ timeoutMs, longpollWindowMs }) {
  if (!gatewayBuilt) {
    // The workspace's binaries, not one package's: `-p <one>` unifies features differently
    // and recompiles phx-server (~25 s) after the test command's `cargo build --workspace`.
    execFileSync("cargo", ["build", "--quiet", "--workspace", "--bins"], { cwd: repoRoot, stdio: "inherit" });
    gatewayBuilt = true;
  }
  const port = await freePort();
  const child = spawn("bash", [path.join(repoRoot, "examples/gateway/node/run.sh")], {
    stdio: ["ignore", "pipe", "inherit"],
    detached: true,
    env: {
      ...process.env,
      PORT: String(port),
      PHX_GATEWAY_BIN: path.join(repoRoot, "target/debug/phx-gateway"),
      PHX_IDLE_TIMEOUT: `${timeoutMs}ms`,
      PHX_LONGPOLL_WINDOW: `${longpollWindowMs}ms`,
      // Nothing here tests the drain: a stop need not wait for its batch interval.
      PHX_DRAIN_INTERVAL: "50ms",
      // A loaded machine running the crowd tests: hooks get the suite's own patience.
      PHX_HOOK_TIMEOUT: "30s",
      RUST_LOG: process.env.RUST_LOG ?? "warn",
    },
  });
  const group = { pid: child.pid, kill: (signal) => { try { process.kill(-child.pid, signal); } catch {} } };
  groups.add(group);
  let control = null;
  const ws = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("phx-gateway printed no 'listening' line in 120 s")), 120000);
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`examples/gateway/node/run.sh exited with ${code} before listening`));
    });
    readline.createInterface({ input: child.stdout }).on("line", (line) => {
      if (/backend listening/.test(line)) control = /(http:\/\/[^\s]+)/.exec(line)?.[1] ?? null;
      if (!/phx-gateway listening/.test(line)) return;
      clearTimeout(timer);
      resolve(/(ws:\/\/[^\s]+)/.exec(line)?.[1] ?? `ws://127.0.0.1:${port}`);
    });
  });
  const stop = async () => {
    groups.delete(group);
    if (child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise((r) => child.once("exit", r));
    group.kill("SIGTERM");
    await gone;
  };
  return { ws, http: ws.replace(/^ws/, "http"), control, stop };
}

// Process groups started here (gateway mode), killed with the test process.
const groups = new Set();
process.on("exit", () => {
  for (const group of groups) group.kill("SIGKILL");
});

/**
 * PHX_CLUSTER=1: every server a test file asks for is two nodes of one cluster (each
 * server its own private Redis), and phoenix.js sockets alternate between them (see
 * phxSocket in phx.js). With PHX_URL set, PHX_URL_2 names the second node.
 */
export const clusterMode = process.env.PHX_CLUSTER === "1";

// base URL of a first node → base URL of its second node.
const peers = new Map();

/** The other node of the cluster whose first node is `base`, if any. */
export function clusterPeer(base) {
  return peers.get(base);
}

/**
 * Starts a server (or uses PHX_URL / PHX_URL_SHORT_TIMEOUT). Returns {ws, http, stop}
 * (and {ws2, http2} in cluster mode: the second node). A server with a short idle timeout
 * (`timeoutMs` < 60 000) is a second instance: with PHX_URL set it must be given as
 * PHX_URL_SHORT_TIMEOUT, or this rejects with a message saying so (the idle-timeout tests
 * then fail, they never skip).
 */
export async function startServer({ timeoutMs = 60000, longpollWindowMs = 10000 } = {}) {
  const short = timeoutMs < 60000;
  const given = short ? process.env.PHX_URL_SHORT_TIMEOUT : process.env.PHX_URL;
  if (process.env.PHX_URL) {
    if (!given) {
      throw new Error(
        `PHX_URL is set but PHX_URL_SHORT_TIMEOUT is not: the idle-timeout tests need a second ` +
          `server instance started with an idle timeout of ${timeoutMs} ms`,
      );
    }
    const server = { ws: given, http: given.replace(/^ws/, "http"), stop: async () => {} };
    if (clusterMode && !short) {
      const second = process.env.PHX_URL_2;
      if (!second) {
        throw new Error("PHX_CLUSTER=1 and PHX_URL are set but PHX_URL_2 is not: cluster mode needs a second node of PHX_URL's cluster");
      }
      peers.set(given, second);
      Object.assign(server, { ws2: second, http2: second.replace(/^ws/, "http") });
    }
    return server;
  }
  if (gatewayMode) {
    if (clusterMode) throw new Error("PHX_GATEWAY=1 does not combine with PHX_CLUSTER=1");
    return launchGateway({ timeoutMs, longpollWindowMs });
  }
  const args = ["--timeout-ms", String(timeoutMs), "--longpoll-window-ms", String(longpollWindowMs)];
  if (clusterMode) {
    const { startCluster } = await import("./cluster.js");
    // The library's default timings: nothing here stops a node, and a loaded machine
    // must not make a node look down.
    const cluster = await startCluster({ nodes: 2, heartbeatMs: 1500, downMs: 5000, args });
    const [a, b] = cluster.nodes;
    peers.set(a.ws, b.ws);
    return { ws: a.ws, http: a.http, ws2: b.ws, http2: b.http, cluster, stop: () => cluster.stop() };
  }
  const { ws, http, child } = await launch(args);
  return { ws, http, stop: () => killChild(child) };
}

/** POST /test/disconnect?id=... */
export async function disconnect(server, id) {
  const res = await fetch(`${server.control ?? server.http}/test/disconnect?id=${encodeURIComponent(id)}`, { method: "POST" });
  if (res.status !== 204) throw new Error(`disconnect answered ${res.status}`);
}

/** POST /test/broadcast?topic=...&event=... with a JSON body. */
export async function serverBroadcast(server, topic, event, payload) {
  const q = `topic=${encodeURIComponent(topic)}&event=${encodeURIComponent(event)}`;
  const res = await fetch(`${server.control ?? server.http}/test/broadcast?${q}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(payload),
  });
  if (res.status !== 204) throw new Error(`broadcast answered ${res.status}`);
}
