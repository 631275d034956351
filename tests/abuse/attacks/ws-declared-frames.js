// 500 WebSockets that each declare an 8 MiB frame (the largest allowed) and trickle it,
// against the chat app: the server must hold what arrived, not what was declared (it used
// to reserve the declared 8 MiB at once: +1 GB with mimalloc).
import { declaredFrameHead, pause, Tally, upgrade, chatsOnce } from "../lib/raw.js";

export const CONNECTIONS = 500;
const ADDRESSES = 20;
const TRICKLE_MS = 4000;

/** The attack, shared with the conformance-server row. */
export async function trickleDeclaredFrames(ctx) {
  const statuses = new Tally();
  const open = [];
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async (_, i) => {
      const { socket, status } = await upgrade(ctx.url, `${ctx.socketPath}/websocket`, {
        localAddress: ctx.addr(i % ADDRESSES),
      });
      statuses.add(status);
      if (status !== 101) return;
      socket.on("error", () => {});
      socket.write(declaredFrameHead(8 * 1024 * 1024));
      socket.write(Buffer.alloc(1000, 0x20));
      open.push(socket);
    }),
  );
  ctx.log(`upgrades: ${statuses}`);
  // A hundred more bytes per connection every half second: the frame grows, slowly.
  const started = Date.now();
  while (Date.now() - started < TRICKLE_MS && !ctx.signal.aborted) {
    for (const socket of open) if (!socket.destroyed) socket.write(Buffer.alloc(100, 0x20));
    await pause(500, ctx.signal);
  }
  const alive = open.filter((s) => !s.destroyed).length;
  ctx.log(`${alive} of ${open.length} connections still open after ${TRICKLE_MS / 1000} s of trickling; RSS now ${ctx.proc()?.rssMiB.toFixed(1)} MiB`);
  for (const socket of open) socket.destroy();
}

export default {
  name: "ws-declared-frames",
  sends: `${CONNECTIONS} WebSockets from ${ADDRESSES} addresses, each declaring an 8 MiB frame and trickling 100 bytes of it every 0.5 s for 4 s`,
  target: "chat",
  // Measured: ~10 MiB at peak (~20 KB per connection); +1 040 MiB before frames grew
  // with what arrives.
  bounds: { rssGrowthMiB: 150, threads: 40, legitMs: 15000 },
  timeoutMs: 30000,
  attack: trickleDeclaredFrames,
  legit: (ctx) => chatsOnce(ctx, { localAddress: ctx.addr(200) }),
};
