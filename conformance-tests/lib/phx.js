// phoenix.js (npm phoenix@1.8.16, unmodified) in Node: the `ws` package as transport.
import { Socket, Presence, LongPoll } from "phoenix";
import WebSocket from "ws";

export { Presence, LongPoll };

/** sessionStorage stand-in for Node (phoenix.js remembers long-poll fallback in it). */
export class MemoryStorage {
  constructor() {
    this.map = new Map();
  }
  getItem(k) {
    return this.map.has(k) ? this.map.get(k) : null;
  }
  setItem(k, v) {
    this.map.set(k, String(v));
  }
  removeItem(k) {
    this.map.delete(k);
  }
}

import { test } from "node:test";
import { clusterMode, clusterPeer, gatewayMode } from "./server.js";
import { gatewayGaps } from "./gateway.js";

/**
 * PHX_TRANSPORT=longpoll runs every phoenix.js-driven test over long poll (§7): the
 * sockets use `transport: LongPoll`, those tests are named "[long poll] …", and the
 * raw-WebSocket tests (which test the wire itself) are not defined in that run.
 * PHX_CLUSTER=1 does the same with consecutive phoenix.js sockets on two nodes of a
 * cluster ("[cluster] …"): the raw tests talk to one node and would check nothing more.
 */
export const viaLongPoll = process.env.PHX_TRANSPORT === "longpoll";
const prefix = [viaLongPoll && "[long poll]", clusterMode && "[cluster]", gatewayMode && "[gateway]"]
  .filter(Boolean)
  .join(" ");
/**
 * PHX_GATEWAY=1 runs the tests against phx-gateway and the Node contract backend; the
 * cases the hook model cannot express (lib/gateway.js, docs/gateway.md) are skipped
 * there with their reason.
 */
function define(name, ...rest) {
  const gap = gatewayMode ? gatewayGaps[name] : undefined;
  const full = prefix ? `${prefix} ${name}` : name;
  if (!gap) return test(full, ...rest);
  const fn = rest.at(-1);
  const options = rest.length > 1 ? rest[0] : {};
  return test(full, { ...options, skip: `phx-gateway: ${gap}` }, fn);
}
export const jsTest = define;
export const rawTest = viaLongPoll || clusterMode ? () => {} : define;
/** Long-poll window for servers started by the suite in long-poll mode (fast expiry). */
export const serverOptions = viaLongPoll ? { longpollWindowMs: 1000 } : {};

const live = new Set();
let sockets = 0;

/**
 * How long a test waits for something that should happen (a frame, a close, a state):
 * generous, because this is an upper bound that only a broken server reaches, and a
 * loaded 2-core machine running a debug build can stall for seconds. Waits end as soon
 * as the event happens, so a passing suite is no slower for it.
 */
export const PATIENCE_MS = 20000;

/**
 * A phoenix.js Socket on `<base><mount>` with fast reconnects for tests. Joins and pushes
 * time out after 30 s (phoenix.js' default 10 s can pass on a loaded machine: the test
 * would then see a spurious "timeout" instead of the reply that is on its way).
 * In cluster mode (`base` is a cluster's first node) every second socket goes to the
 * cluster's second node instead, so a test's clients sit on both.
 */
export function phxSocket(base, opts = {}, mount = "/ws") {
  const peer = clusterPeer(base);
  const url = peer && sockets++ % 2 === 1 ? peer : base;
  const socket = new Socket(`${url}${mount}`, {
    transport: viaLongPoll ? LongPoll : WebSocket,
    reconnectAfterMs: () => 50,
    rejoinAfterMs: () => 50,
    heartbeatIntervalMs: 30000,
    timeout: 30000,
    ...opts,
  });
  live.add(socket);
  return socket;
}

/** Disconnects every socket created by phxSocket (call in afterEach). */
export function disconnectAll() {
  for (const s of live) s.disconnect();
  live.clear();
}

/** Resolves when `check()` is truthy, polling every 10 ms, or rejects after `timeout`. */
export async function waitFor(check, timeout = PATIENCE_MS, what = "condition") {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Joins a channel and resolves with the ok response (rejects on error/timeout). */
export function joined(channel) {
  return new Promise((resolve, reject) => {
    channel
      .join()
      .receive("ok", resolve)
      .receive("error", (e) => reject(new Error(`join error ${JSON.stringify(e)}`)))
      .receive("timeout", () => reject(new Error("join timeout")));
  });
}

/** Pushes and resolves with {status, response}. */
export function pushed(channel, event, payload = {}) {
  return new Promise((resolve) => {
    channel
      .push(event, payload)
      .receive("ok", (response) => resolve({ status: "ok", response }))
      .receive("error", (response) => resolve({ status: "error", response }))
      .receive("timeout", () => resolve({ status: "timeout" }));
  });
}
