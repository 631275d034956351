// 50 WebSockets that join 9 rooms with history (each join reply ~200 KB) and then never
// read, heartbeating all the while, against the chat app. A client that does not read
// may hold its outbound budget (128 KiB) plus the frame it was taking; one over its budget
// with nothing written for 3 s is closed with 1013, and the frames of all sockets together
// are bounded too (256 MiB). The kernel's socket buffers hold the rest (about 1 MB per
// connection on loopback here): they are not the process's RSS, the row logs them.
import { execFileSync } from "node:child_process";
import { pause, phxFrame, upgrade, chatsOnce } from "../lib/raw.js";

const NON_READERS = 50;
const ROOMS = 9;
const HOLD_MS = 6000;

/** Bytes in the kernel's queues of the server's connections (ss): [send, peers' receive]. */
function kernelQueues(port) {
  let out = "";
  try {
    out = execFileSync("ss", ["-tnH", "state", "established"], { encoding: "utf8" });
  } catch {
    return null;
  }
  let send = 0;
  let receive = 0;
  for (const line of out.split("\n")) {
    const [recvQ, sendQ, local, peer] = line.trim().split(/\s+/);
    if (local?.endsWith(`:${port}`)) send += Number(sendQ);
    if (peer?.endsWith(`:${port}`)) receive += Number(recvQ);
  }
  return [send, receive];
}

async function seedHistory(ctx) {
  // One guest per room, from one address (room creation is limited per address: 10).
  await Promise.all(
    Array.from({ length: ROOMS }, async (_, r) => {
      const socket = ctx.socket({}, { localAddress: ctx.addr(100) });
      const { channel, ok, reply } = await ctx.join(socket, `room:nr${r}`, { username: `seed${r}` });
      if (!ok) throw new Error(`seed join refused: ${JSON.stringify(reply)}`);
      // 50 messages of 2 000 two-byte characters: a join reply of ~200 KB.
      const pushes = Array.from({ length: 50 }, () => ctx.push(channel, "new_msg", { body: "é".repeat(2000) }));
      const replies = await Promise.all(pushes);
      const bad = replies.filter((r) => r.status !== "ok");
      if (bad.length) throw new Error(`seeding refused: ${JSON.stringify(bad[0])}`);
      socket.disconnect();
    }),
  );
}

export default {
  name: "ws-non-readers",
  sends: `${NON_READERS} WebSockets that each join ${ROOMS} rooms with 50 messages of history (~200 KB join replies), never read, and heartbeat every second for ${HOLD_MS / 1000} s`,
  target: "chat",
  // Measured before: +143 MB (issue), +48 MiB here; the bound is what the budget allows.
  bounds: { rssGrowthMiB: 120, threads: 40, legitMs: 15000 },
  timeoutMs: 40000,
  legitDelayMs: 4000,
  async attack(ctx) {
    await seedHistory(ctx);
    const port = Number(new URL(ctx.url).port);
    const sockets = [];
    await Promise.all(
      Array.from({ length: NON_READERS }, async (_, i) => {
        const { socket, status } = await upgrade(ctx.url, `${ctx.socketPath}/websocket`, { localAddress: ctx.addr(i % 25) });
        if (status !== 101) return;
        socket.on("error", () => {});
        socket.pause(); // never read
        socket.closedByServer = false;
        socket.on("close", () => (socket.closedByServer = true));
        for (let r = 0; r < ROOMS; r++) socket.write(phxFrame([`${r}`, `${r}`, `room:nr${r}`, "phx_join", { username: `nr${i}` }]));
        sockets.push(socket);
      }),
    );
    ctx.log(`${sockets.length} non-readers joined`);
    const started = Date.now();
    let beat = 0;
    while (Date.now() - started < HOLD_MS && !ctx.signal.aborted) {
      for (const socket of sockets) if (!socket.destroyed) socket.write(phxFrame([null, `hb${beat}`, "phoenix", "heartbeat", {}]));
      beat++;
      await pause(1000, ctx.signal);
      if (beat === 3) {
        const queues = kernelQueues(port);
        if (queues) {
          const [send, receive] = queues.map((b) => b / 1048576);
          ctx.log(`after 3 s: server RSS ${ctx.proc()?.rssMiB.toFixed(1)} MiB; kernel: ${send.toFixed(1)} MiB in the server's send queues, ${receive.toFixed(1)} MiB in the non-readers' receive queues (${(((send + receive) * 1048576) / NON_READERS / 1024).toFixed(0)} KiB per connection)`);
        }
      }
    }
    const queues = kernelQueues(port);
    ctx.log(`after ${HOLD_MS / 1000} s: server RSS ${ctx.proc()?.rssMiB.toFixed(1)} MiB; kernel send queues ${((queues?.[0] ?? 0) / 1048576).toFixed(1)} MiB (what is left of the connections the server has not closed)`);
    for (const socket of sockets) socket.destroy();
  },
  legit: (ctx) => chatsOnce(ctx, { localAddress: ctx.addr(201) }),
};
