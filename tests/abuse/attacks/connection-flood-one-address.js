// One address opens far more connections than its share, against the chat app: past the
// per-address cap (1 000 by default; IPv6 counts per /64) it is answered 429 at accept
// (or, while 256 refusals are being answered, just closed), before anything is allocated,
// and a user at another address connects, joins and chats.
import { pause, Tally, upgrade, chatsOnce } from "../lib/raw.js";

const ATTEMPTS = 1300;
const PER_ADDRESS = 1000; // phx_server::DEFAULT_MAX_CONNECTIONS_PER_ADDRESS
const HOLD_MS = 2000;

export default {
  name: "connection-flood-one-address",
  sends: `${ATTEMPTS} WebSocket upgrades from one address, held ${HOLD_MS / 1000} s (the per-address cap is ${PER_ADDRESS})`,
  target: "chat",
  bounds: { rssGrowthMiB: 120, threads: 40, legitMs: 15000 },
  timeoutMs: 40000,
  async attack(ctx) {
    const statuses = new Tally();
    const open = [];
    // In waves, so the kernel's accept queue is not what refuses them.
    for (let wave = 0; wave < ATTEMPTS; wave += 100) {
      const results = await Promise.all(
        Array.from({ length: Math.min(100, ATTEMPTS - wave) }, () =>
          upgrade(ctx.url, `${ctx.socketPath}/websocket`, { localAddress: ctx.addr(0) }),
        ),
      );
      for (const { socket, status } of results) {
        statuses.add(status);
        if (status === 101) {
          socket.on("error", () => {});
          open.push(socket);
        }
      }
    }
    ctx.log(`answers: ${statuses}`);
    await pause(HOLD_MS, ctx.signal);
    for (const socket of open) socket.destroy();
    // Refused: 429, or a plain close when many refusals are being answered at once.
    const admitted = statuses.get(101) ?? 0;
    const refused = (statuses.get(429) ?? 0) + (statuses.get(0) ?? 0);
    if (admitted > PER_ADDRESS) throw new Error(`${admitted} connections admitted from one address (cap ${PER_ADDRESS})`);
    if (refused < ATTEMPTS - PER_ADDRESS) throw new Error(`too few refusals: ${statuses}`);
    if ((statuses.get(429) ?? 0) === 0) throw new Error(`no refusal was answered 429: ${statuses}`);
  },
  legit: (ctx) => chatsOnce(ctx, { localAddress: ctx.addr(1) }),
};
