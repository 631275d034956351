// The "gateway" target: phx-gateway started fresh for a row, in front of a backend that
// lives in this process and answers as the row says (slowly, hugely…). The row's
// `gateway` field describes both:
//
//   gateway: {
//     setup: async () => ({ vars: { … }, stop }),  // optional: servers the config names
//     config: ({ backend, secret, ...vars }) => `TOML after [server]`,
//     backend: { "/phx/join": (request) => answer, … },
//   }
//
// A backend handler returns the JSON answer, or {delayMs, status, body, chunks,
// chunkDelayMs} to misbehave (`chunks` × `body` streamed with a pause between them).
// Unhandled paths get 404. The gateway's process is what the harness measures.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const binary = path.join(process.env.CARGO_TARGET_DIR ?? path.join(repoRoot, "target"), "debug/phx-gateway");
export const GATEWAY_SECRET = "ab".repeat(32);

let built = false;

async function backendServer(handlers) {
  const server = http.createServer(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    let request = null;
    try {
      request = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    } catch {}
    const handler = handlers[new URL(req.url, "http://b").pathname];
    const answer = handler ? await handler(request) : { misbehave: { status: 404 } };
    const bad = answer?.misbehave;
    if (!bad) {
      res.writeHead(200, { "content-type": "application/json" });
      return res.end(JSON.stringify(answer ?? {}));
    }
    if (bad.delayMs) await new Promise((r) => setTimeout(r, bad.delayMs));
    if (res.destroyed) return;
    res.writeHead(bad.status ?? 200, { "content-type": "application/json" });
    const body = Buffer.from(bad.body ?? "{}");
    for (let i = 0; i < (bad.chunks ?? 1) && !res.destroyed; i++) {
      res.write(body);
      if (bad.chunkDelayMs) await new Promise((r) => setTimeout(r, bad.chunkDelayMs));
    }
    res.end();
  });
  server.keepAliveTimeout = 60_000;
  const sockets = new Set();
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(r);
      }),
  };
}

/** Starts the row's backend and phx-gateway; resolves with the harness's server shape. */
export async function startGateway(row) {
  if (!built) {
    // The workspace's binaries, not one package's: `-p <one>` unifies features differently
    // and recompiles phx-server (~25 s) after the test command's `cargo build --workspace`.
    execFileSync("cargo", ["build", "--quiet", "--workspace", "--bins"], { cwd: repoRoot, stdio: "inherit" });
    built = true;
  }
  const spec = row.gateway ?? {};
  const extra = spec.setup ? await spec.setup() : { vars: {}, stop: async () => {} };
  const backend = await backendServer(spec.backend ?? {});
  const dir = mkdtempSync(path.join(os.tmpdir(), "phx-gateway-abuse-"));
  const file = path.join(dir, "gateway.toml");
  writeFileSync(
    file,
    `[server]\nlisten = "127.0.0.1:0"\n${spec.config({ backend: backend.url, secret: GATEWAY_SECRET, ...extra.vars })}`,
  );
  const child = spawn(binary, ["--config", file], {
    env: { ...process.env, RUST_LOG: "warn" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const logs = [];
  readline.createInterface({ input: child.stderr }).on("line", (l) => {
    logs.push(l);
    if (logs.length > 200) logs.shift();
  });
  const stopAll = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const gone = new Promise((r) => child.once("exit", r));
      child.kill("SIGKILL");
      await gone;
    }
    await backend.close();
    await extra.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  process.once("exit", () => child.kill("SIGKILL"));
  try {
    const url = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("phx-gateway printed no 'listening' line in 120 s")), 120000);
      child.on("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`phx-gateway exited with ${code}:\n${logs.join("\n")}`));
      });
      readline.createInterface({ input: child.stdout }).on("line", (line) => {
        // ws:// → http://; wss:// (a row with [tls]) → https://.
        const match = /listening on (wss?):\/\/(\S+)/.exec(line);
        if (!match) return;
        clearTimeout(timer);
        resolve(`${match[1] === "wss" ? "https" : "http"}://${match[2]}`);
      });
    });
    return { url, socketPath: "/socket", pid: child.pid, logs, stop: stopAll };
  } catch (e) {
    await stopAll();
    throw e;
  }
}
