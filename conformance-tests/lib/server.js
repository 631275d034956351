// Where the server under test lives: PHX_URL (any Phoenix-protocol server implementing
// shared/CONFORMANCE.md, Phoenix included), or examples/conformance-server built and
// started here on a free port.
import { spawn, execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import path from "node:path";
import readline from "node:readline";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
let built = false;

function build() {
  if (built) return;
  execFileSync("cargo", ["build", "--quiet", "-p", "conformance-server"], { cwd: repoRoot, stdio: "inherit" });
  built = true;
}

/** Starts a server (or uses PHX_URL / PHX_URL_SHORT_TIMEOUT). Returns {ws, http, stop}. */
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
    return { ws: given, http: given.replace(/^ws/, "http"), stop: async () => {} };
  }
  build();
  const bin = path.join(repoRoot, "target/debug/conformance-server");
  const args = ["--port", "0", "--timeout-ms", String(timeoutMs), "--longpoll-window-ms", String(longpollWindowMs)];
  const child = spawn(bin, args, {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("conformance-server did not start in 60 s")), 60000);
    child.on("exit", (code) => reject(new Error(`conformance-server exited with ${code}`)));
    readline.createInterface({ input: child.stdout }).on("line", (line) => {
      const match = /listening on (ws:\/\/[^\s]+)/.exec(line);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
  });
  return {
    ws: url,
    http: url.replace(/^ws/, "http"),
    stop: async () => {
      child.kill("SIGKILL");
      await new Promise((r) => (child.exitCode !== null ? r() : child.on("exit", r)));
    },
  };
}

/** POST /test/disconnect?id=... */
export async function disconnect(server, id) {
  const res = await fetch(`${server.http}/test/disconnect?id=${encodeURIComponent(id)}`, { method: "POST" });
  if (res.status !== 204) throw new Error(`disconnect answered ${res.status}`);
}

/** POST /test/broadcast?topic=...&event=... with a JSON body. */
export async function serverBroadcast(server, topic, event, payload) {
  const q = `topic=${encodeURIComponent(topic)}&event=${encodeURIComponent(event)}`;
  const res = await fetch(`${server.http}/test/broadcast?${q}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(payload),
  });
  if (res.status !== 204) throw new Error(`broadcast answered ${res.status}`);
}
