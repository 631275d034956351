// Starts the chat app (target/debug/chat-app, built here) on a free port, or uses CHAT_URL.
import { spawn, execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
let built = false;

/** `env`: extra environment for the server (flags such as STORE_TIMEOUT_MS). */
export async function startChat({ databaseUrl, port = 0, env: extraEnv = {} } = {}) {
  if (process.env.CHAT_URL && !databaseUrl && Object.keys(extraEnv).length === 0) {
    return { url: process.env.CHAT_URL, stop: async () => {} };
  }
  // CHAT_APP_BIN: run another build of the server (e.g. an older one, to see a new test
  // fail on it); else this tree's, built here.
  const binary = process.env.CHAT_APP_BIN ?? path.join(repoRoot, "target/debug/chat-app");
  if (!built && !process.env.CHAT_APP_BIN) {
    // The workspace's binaries, not one package's: `-p <one>` unifies features differently
    // and recompiles phx-server (~25 s) after the test command's `cargo build --workspace`.
    execFileSync("cargo", ["build", "--quiet", "--workspace", "--bins"], { cwd: repoRoot, stdio: "inherit" });
    built = true;
  }
  // Uploads go to a directory of this server's own unless the test names one, so no
  // test leaves files in the working directory.
  const uploadDir = extraEnv.UPLOAD_DIR ? null : fs.mkdtempSync(path.join(os.tmpdir(), "chat-uploads-"));
  const env = {
    ...process.env,
    ...(uploadDir ? { UPLOAD_DIR: uploadDir } : {}),
    PORT: String(port),
    BIND: "127.0.0.1",
    // CHAT_STATIC_DIR: serve another copy of the page (e.g. an older one, to see a new
    // test fail on it).
    STATIC_DIR: process.env.CHAT_STATIC_DIR ?? path.join(repoRoot, "js-client"),
    CHECK_ORIGIN: "true",
    LOG_LEVEL: "info",
    ...extraEnv,
  };
  delete env.DATABASE_URL;
  if (databaseUrl) env.DATABASE_URL = databaseUrl;
  const child = spawn(binary, [], { env, stdio: ["ignore", "pipe", "pipe"] });
  const logs = [];
  const removeUploads = () => uploadDir && fs.rmSync(uploadDir, { recursive: true, force: true });
  const url = await new Promise((resolve, reject) => {
    // A server that does not start (some tests expect that) leaves nothing behind.
    const fail = (error) => {
      child.kill("SIGKILL");
      removeUploads();
      reject(error);
    };
    const timer = setTimeout(() => fail(new Error(`chat-app did not start:\n${logs.join("\n")}`)), 60000);
    child.on("exit", (code) => fail(new Error(`chat-app exited with ${code}:\n${logs.join("\n")}`)));
    for (const stream of [child.stdout, child.stderr]) {
      readline.createInterface({ input: stream }).on("line", (line) => {
        logs.push(line);
        const match = /listening on (https?:\/\/[^\s]+)/.exec(line);
        if (match) {
          clearTimeout(timer);
          resolve(match[1]);
        }
      });
    }
  });
  return {
    url,
    logs,
    child,
    stop: async () => {
      child.kill("SIGKILL");
      await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r() : child.on("exit", r)));
      removeUploads();
    },
  };
}

/** A PostgreSQL database of the test's own (created now, dropped by `drop`). */
export function testDatabase(name) {
  const admin = process.env.TEST_DATABASE_ADMIN_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
  const psql = (sql) => {
    try {
      return execFileSync("psql", [admin, "-v", "ON_ERROR_STOP=1", "-Atc", sql], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    } catch (e) {
      if (/could not connect|Connection refused|No such file/.test(String(e.stderr ?? e.message))) {
        throw new Error(
          "PostgreSQL is not reachable on 127.0.0.1:5432. Start it with: " +
            "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
        );
      }
      throw new Error(`psql failed: ${e.stderr ?? e.message}`);
    }
  };
  psql(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  psql(`CREATE DATABASE ${name}`);
  return {
    url: admin.replace(/\/[^/]*$/, `/${name}`),
    cut: () =>
      psql(
        `ALTER DATABASE ${name} WITH ALLOW_CONNECTIONS false; ` +
          `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '${name}'`,
      ),
    restore: () => psql(`ALTER DATABASE ${name} WITH ALLOW_CONNECTIONS true`),
    drop: () => psql(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`),
  };
}
