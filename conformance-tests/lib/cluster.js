// A cluster of conformance-server nodes as real processes, joined through a private
// redis-server this module starts on a free port (never 127.0.0.1:6379). Tests can kill
// (SIGKILL), pause (SIGSTOP) and resume (SIGCONT) a node, and kill Redis and start it
// again on the same port. Every process is SIGKILLed when the test process exits.
import { spawn } from "node:child_process";
import net from "node:net";
import { adopt, freePort, killChild, launch } from "./server.js";

/** Short cluster timings, so node-down tests take seconds (the defaults are 1.5 s / 5 s). */
export const HEARTBEAT_MS = 300;
export const DOWN_MS = 2000;

/** Resolves true when something on `port` answers a Redis PING with +PONG. */
function pong(port) {
  return new Promise((resolve) => {
    const sock = net.connect(port, "127.0.0.1");
    let got = "";
    const done = (ok) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(1000, () => done(false));
    sock.on("error", () => done(false));
    sock.on("connect", () => sock.write("PING\r\n"));
    sock.on("data", (d) => {
      got += d.toString();
      if (got.includes("\r\n")) done(got.startsWith("+PONG"));
    });
  });
}

/** A private redis-server on `port` (a free one when unset). */
export class Redis {
  constructor(port) {
    this.port = port;
    this.url = `redis://127.0.0.1:${port}`;
    this.child = null;
  }

  static async start(port) {
    const redis = new Redis(port ?? (await freePort()));
    await redis.start();
    return redis;
  }

  /** Starts redis-server on this port (again, after kill()) and waits until it answers PING. */
  async start() {
    // Right after a kill the port can take a moment to be bindable again: retry.
    for (let attempt = 1; ; attempt++) {
      const child = spawn("redis-server", ["--port", String(this.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
        stdio: ["ignore", "pipe", "pipe"],
      });
      const release = adopt(child);
      let output = "";
      child.stdout.on("data", (d) => (output += d));
      child.stderr.on("data", (d) => (output += d));
      const failed = new Promise((resolve) => {
        child.once("error", (e) => resolve(e.code === "ENOENT" ? "missing" : e.message));
        child.once("exit", (code) => resolve(`exited with ${code}`));
      });
      const deadline = Date.now() + 20000;
      let outcome = null;
      while (!outcome) {
        outcome = await Promise.race([failed, pong(this.port).then((ok) => (ok ? "ready" : null))]);
        if (!outcome && Date.now() > deadline) outcome = "did not answer PING within 20 s";
        if (!outcome) await new Promise((r) => setTimeout(r, 50));
      }
      if (outcome === "ready") {
        this.child = child;
        return;
      }
      release();
      child.kill("SIGKILL");
      if (outcome === "missing") {
        throw new Error("redis-server not found: the cluster tests need it; install Debian's redis-server package (apt-get install redis-server)");
      }
      if (attempt >= 20) throw new Error(`redis-server on port ${this.port} ${outcome}:\n${output}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  /** SIGKILLs redis-server (no goodbye to its clients) and waits until it is gone. */
  async kill() {
    if (this.child) await killChild(this.child);
    this.child = null;
  }
}

/** One conformance-server process of a cluster. */
export class Node {
  constructor(name, { ws, http, child }) {
    this.name = name;
    this.ws = ws;
    this.http = http;
    this.child = child;
  }

  /** SIGKILL: the node vanishes without a word to Redis or to its clients. */
  kill() {
    return killChild(this.child);
  }

  /** SIGSTOP: the node stalls (sockets stay open, nothing is answered or sent). */
  pause() {
    this.child.kill("SIGSTOP");
  }

  /** SIGCONT after pause(). */
  resume() {
    this.child.kill("SIGCONT");
  }
}

/**
 * Starts a private Redis and `nodes` conformance-servers named node1…nodeN joined through
 * it. `args` are extra conformance-server flags (timeouts). Returns {redis, nodes, stop}.
 */
export async function startCluster({ nodes = 3, heartbeatMs = HEARTBEAT_MS, downMs = DOWN_MS, args = [] } = {}) {
  const redis = await Redis.start();
  const started = [];
  try {
    for (let i = 1; i <= nodes; i++) {
      const name = `node${i}`;
      const flags = ["--redis-url", redis.url, "--node-name", name, "--cluster-heartbeat-ms", String(heartbeatMs), "--cluster-down-ms", String(downMs), ...args];
      started.push(new Node(name, await launch(flags)));
    }
  } catch (e) {
    for (const node of started) await node.kill();
    await redis.kill();
    throw e;
  }
  return {
    redis,
    nodes: started,
    async stop() {
      for (const node of started) await node.kill();
      await redis.kill();
    },
  };
}
