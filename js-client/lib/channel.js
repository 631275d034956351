// Small phoenix.js helpers shared by the Node tests: a socket to a chat app, joins and
// pushes as promises, and a bounded wait for a condition.
import { Socket } from "phoenix";
import WebSocket from "ws";

// Upper bound on waits for events (replies, broadcasts): only a broken server reaches it,
// and a loaded 2-core machine can stall for seconds. phoenix.js' own push timeout (10 s by
// default) is raised to match, so a slow reply is not mistaken for a missing one.
export const PATIENCE_MS = 30000;

const open = [];

/** A socket to the chat app at `url` (http://…), connecting; `params`: connect params. */
export function client(url, params = {}, options = {}) {
  const socket = new Socket(url.replace(/^http/, "ws") + "/socket", {
    transport: WebSocket,
    params,
    reconnectAfterMs: () => 50,
    timeout: PATIENCE_MS,
    ...options,
  });
  socket.connect();
  open.push(socket);
  return socket;
}

/** Disconnects every socket `client` made (call it from `after`). */
export function disconnectAll() {
  open.splice(0).forEach((s) => s.disconnect());
}

/** Joins `topic` with `params` (an object or a function, as phoenix.js takes them). */
export function join(socket, topic, params = {}) {
  const channel = socket.channel(topic, params);
  return new Promise((resolve) =>
    channel
      .join()
      .receive("ok", (reply) => resolve({ channel, reply, ok: true }))
      .receive("error", (reply) => {
        channel.leave();
        resolve({ channel, reply, ok: false });
      }),
  );
}

/** Pushes and resolves with `{status, ...reply}` (`status`: ok, error or timeout). */
export function push(channel, event, payload, timeout) {
  return new Promise((resolve) =>
    channel
      .push(event, payload, timeout)
      .receive("ok", (r) => resolve({ status: "ok", ...r }))
      .receive("error", (r) => resolve({ status: "error", ...r }))
      .receive("timeout", () => resolve({ status: "timeout" })),
  );
}

/** Waits until `check()` holds, polling; fails after `timeout` ms naming `what`. */
export async function until(check, what, timeout = PATIENCE_MS) {
  const deadline = Date.now() + timeout;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
