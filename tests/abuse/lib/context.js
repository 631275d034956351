// What an attack row gets to work with (`ctx`): the server's address and process, source
// addresses across 127.0.0.0/8, /proc readings, and HTTP and phoenix.js clients that can
// bind any of those source addresses.
import { setMaxListeners } from "node:events";
import fs from "node:fs";
import http from "node:http";
import { Socket } from "phoenix";
import WebSocket from "ws";
import { join, push, until } from "../../../js-client/lib/channel.js";

/**
 * The i-th source address of the loopback net (i ≥ 0): 127.77.N.H with H in 1..254, so
 * every address is a distinct client to a per-address limit and none is the server's own
 * 127.0.0.1. Linux routes all of 127.0.0.0/8 to `lo`, so any of them can be bound.
 */
export function sourceAddress(i) {
  if (!Number.isInteger(i) || i < 0 || i >= 254 * 256) throw new RangeError(`no source address ${i}`);
  return `127.77.${Math.floor(i / 254)}.${1 + (i % 254)}`;
}

/** RSS (MiB) and thread count of `pid`, from /proc/<pid>/status; null once it is gone. */
export function procStats(pid) {
  let status;
  try {
    status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
  } catch {
    return null;
  }
  const field = (name) => Number(new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(status)?.[1] ?? NaN);
  return { rssMiB: field("VmRSS") / 1024, threads: field("Threads") };
}

/**
 * A small HTTP client over node:http (fetch cannot bind a source address): resolves with
 * `{status, headers, body}` (`body` a string; `json()` parses it), rejects on a network
 * error or when `signal` aborts. No connection is reused.
 */
export function httpRequest(base, method, path, { headers = {}, body, localAddress, signal, timeoutMs } = {}) {
  return new Promise((resolve, reject) => {
    const url = new URL(path, base);
    const payload = body === undefined || typeof body === "string" || Buffer.isBuffer(body) ? body : JSON.stringify(body);
    const allHeaders = { ...headers };
    if (payload !== undefined && body !== null && typeof body === "object" && !Buffer.isBuffer(body)) {
      allHeaders["content-type"] ??= "application/json";
    }
    const req = http.request(
      url,
      { method, headers: allHeaders, localAddress, signal, agent: false, timeout: timeoutMs },
      (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("error", reject);
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          resolve({ status: res.statusCode, headers: res.headers, body: text, json: () => JSON.parse(text) });
        });
      },
    );
    req.on("timeout", () => req.destroy(new Error(`${method} ${path}: no answer in ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end(payload);
  });
}

/** A `ws` WebSocket class that connects from `localAddress` (phoenix.js calls `new transport(url, protocols)`). */
export function websocketFrom(localAddress) {
  if (!localAddress) return WebSocket;
  return class extends WebSocket {
    constructor(url, protocols) {
      super(url, protocols, { localAddress });
    }
  };
}

/**
 * Builds the `ctx` of one row. `server`: {url, pid, socketPath}. The returned `close()` disconnects
 * every socket the row opened through `ctx.socket`.
 */
export function makeContext(row, server, { signal, log }) {
  // Every request of a row listens for the row's end on this one signal.
  setMaxListeners(0, signal);
  const sockets = [];
  const ctx = {
    url: server.url,
    socketPath: server.socketPath,
    pid: server.pid,
    signal,
    log,
    addr: sourceAddress,
    proc: () => procStats(server.pid),
    http: (method, path, options = {}) => httpRequest(server.url, method, path, { signal, ...options }),
    /**
     * A phoenix.js Socket (Node, `ws`), connecting. `localAddress` binds a source
     * address; other `options` go to the Socket as they are.
     */
    socket(params = {}, { localAddress, ...options } = {}) {
      const socket = new Socket(server.url.replace(/^http/, "ws") + server.socketPath, {
        transport: websocketFrom(localAddress),
        params,
        reconnectAfterMs: () => 200,
        timeout: 30000,
        ...options,
      });
      socket.connect();
      sockets.push(socket);
      return socket;
    },
    /** Joins `topic`: resolves with {channel, reply, ok} (js-client/lib/channel.js). */
    join,
    /** Pushes and resolves with {status, ...reply}; status ok, error or timeout. */
    push,
    /** Waits until `check()` holds, polling; rejects after `timeout` ms naming `what`. */
    until,
    close() {
      for (const socket of sockets.splice(0)) socket.disconnect();
    },
  };
  return ctx;
}
