// The servers a row can attack, each started fresh for the row: the chat app (memory
// store, or PostgreSQL in a database of the row's own) and examples/conformance-server.
// Both are started through the helpers their own suites use.
import { startChat, testDatabase } from "../../../js-client/lib/chat-server.js";
import { launch, killChild } from "../../../conformance-tests/lib/server.js";

/**
 * Starts `row.target` with `row.env` (chat) or `row.args` (conformance); resolves with
 * {url, socketPath, pid, stop, logs}.
 */
export async function startTarget(row) {
  switch (row.target) {
    case "chat":
      return chat(row, null);
    case "chat-postgres": {
      const db = testDatabase(`abuse_${row.name.replace(/[^a-z0-9]/gi, "_")}_${process.pid}`.toLowerCase());
      try {
        return await chat(row, db);
      } catch (e) {
        db.drop();
        throw e;
      }
    }
    case "conformance": {
      const { http, child } = await launch(row.args ?? []);
      // /ws/open: the contract's mount without an origin check (docs/conformance.md).
      return { url: http, socketPath: "/ws/open", pid: child.pid, logs: [], stop: () => killChild(child) };
    }
    default:
      throw new Error(`row ${row.name}: unknown target ${JSON.stringify(row.target)}`);
  }
}

async function chat(row, db) {
  const server = await startChat({ databaseUrl: db?.url, env: { ABUSE_ROW: row.name, ...(row.env ?? {}) } });
  return {
    url: server.url,
    socketPath: "/socket",
    pid: server.child.pid,
    logs: server.logs,
    stop: async () => {
      await server.stop();
      db?.drop();
    },
  };
}
