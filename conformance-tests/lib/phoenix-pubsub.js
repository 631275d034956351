// What the tests beside a Phoenix cluster share (conformance-tests/interop and
// tests/gateway): real Erlang for making and reading terms, and a raw Redis subscriber on
// the Phoenix PubSub's channel that keeps every message's bytes.
import { spawnSync } from "node:child_process";
import net from "node:net";

/** The Redis channel of a Phoenix app whose PubSub is `MyApp.PubSub` (docs/cluster.md). */
export const PHOENIX_CHANNEL = "phx:Elixir.MyApp.PubSub.Adapter";

/** Fails, saying which Debian package to install, when `command` is missing. */
export function need(command, args, pkg) {
  const probe = spawnSync(command, args, { encoding: "utf8" });
  if (probe.error?.code === "ENOENT") {
    throw new Error(`${command} not found: the tests beside Phoenix need it; install Debian's ${pkg} package (apt-get install ${pkg})`);
  }
}

/** Runs Erlang `code` (expressions ending in a full stop) and returns its stdout lines. */
export function erl(code) {
  const run = spawnSync("erl", ["-noshell", "-eval", `${code} halt().`], { encoding: "utf8", timeout: 120000 });
  if (run.error) throw run.error;
  if (run.status !== 0) throw new Error(`erl failed (${run.status}):\n${run.stdout}\n${run.stderr}`);
  return run.stdout.split("\n").filter(Boolean);
}

/** A raw RESP subscriber on `channel` (Redis at 127.0.0.1:`port`) that keeps every message's bytes. */
export async function subscriber(port, channel = PHOENIX_CHANNEL) {
  const sock = net.connect(port, "127.0.0.1");
  const messages = [];
  let buf = Buffer.alloc(0);
  let confirmed;
  const ready = new Promise((r) => (confirmed = r));
  // One RESP value at `at`: [value, next] or null when incomplete.
  const parse = (at) => {
    if (at >= buf.length) return null;
    const eol = buf.indexOf("\r\n", at);
    if (eol < 0) return null;
    const head = buf.toString("latin1", at + 1, eol);
    switch (buf[at]) {
      case 0x2a: { // *
        const items = [];
        let next = eol + 2;
        for (let i = 0; i < Number(head); i++) {
          const item = parse(next);
          if (!item) return null;
          items.push(item[0]);
          next = item[1];
        }
        return [items, next];
      }
      case 0x24: { // $
        const end = eol + 2 + Number(head);
        if (buf.length < end + 2) return null;
        return [buf.subarray(eol + 2, end), end + 2];
      }
      default:
        return [head, eol + 2];
    }
  };
  sock.on("data", (data) => {
    buf = Buffer.concat([buf, data]);
    for (;;) {
      const value = parse(0);
      if (!value) break;
      buf = buf.subarray(value[1]);
      const [kind, , payload] = value[0];
      if (String(kind) === "subscribe") confirmed();
      if (String(kind) === "message") messages.push(Buffer.from(payload));
    }
  });
  await new Promise((r) => sock.once("connect", r));
  sock.write(`SUBSCRIBE ${channel}\r\n`);
  await ready;
  return { messages, close: () => sock.destroy() };
}

