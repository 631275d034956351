// Many addresses, each within its per-address cap, open thousands of connections against
// the chat app: half complete a WebSocket upgrade and idle, half never finish their
// request head (slowloris). Every one is admitted (the total cap is 90 % of the open-file
// limit, which such a flood does not reach here), each costs a few KB, and a user at yet
// another address connects, joins and chats meanwhile. Past the total, new connections
// get 503 at accept (the Rust test connection_limits.rs shows it).
import net from "node:net";
import { pause, Tally, upgrade, chatsOnce } from "../lib/raw.js";

const ADDRESSES = 40;
const PER_ADDRESS = 75;
const HOLD_MS = 3000;

function slowHead(ctx, localAddress) {
  const { hostname, port } = new URL(ctx.url);
  return new Promise((resolve) => {
    const socket = net.connect({ host: hostname, port: Number(port), localAddress });
    socket.on("error", () => resolve(null));
    socket.once("connect", () => {
      socket.write(`GET ${ctx.socketPath}/websocket?vsn=2.0.0 HTTP/1.1\r\nHost: ${hostname}\r\n`);
      resolve(socket);
    });
  });
}

export default {
  name: "connection-flood-many-addresses",
  sends: `${ADDRESSES * PER_ADDRESS} connections from ${ADDRESSES} addresses (${PER_ADDRESS} each): half idle WebSockets, half request heads never finished, held ${HOLD_MS / 1000} s`,
  target: "chat",
  bounds: { rssGrowthMiB: 200, threads: 40, legitMs: 15000 },
  timeoutMs: 60000,
  legitDelayMs: 3000,
  async attack(ctx) {
    const statuses = new Tally();
    const open = [];
    for (let a = 0; a < ADDRESSES; a += 4) {
      const batch = [];
      for (let i = a; i < Math.min(a + 4, ADDRESSES); i++) {
        for (let k = 0; k < PER_ADDRESS; k++) {
          const localAddress = ctx.addr(10 + i);
          if (k % 2 === 0) {
            batch.push(
              upgrade(ctx.url, `${ctx.socketPath}/websocket`, { localAddress }).then(({ socket, status }) => {
                statuses.add(status);
                if (status === 101) {
                  socket.on("error", () => {});
                  open.push(socket);
                }
              }),
            );
          } else {
            batch.push(
              slowHead(ctx, localAddress).then((socket) => {
                statuses.add(socket ? "head sent" : "refused");
                if (socket) open.push(socket);
              }),
            );
          }
        }
      }
      await Promise.all(batch);
    }
    ctx.log(`answers: ${statuses}; RSS with all of them open: ${ctx.proc()?.rssMiB.toFixed(1)} MiB`);
    await pause(HOLD_MS, ctx.signal);
    const alive = open.filter((s) => !s.destroyed).length;
    ctx.log(`${alive} of ${open.length} still open after ${HOLD_MS / 1000} s`);
    for (const socket of open) socket.destroy();
    const upgraded = statuses.get(101) ?? 0;
    if (upgraded < (ADDRESSES * PER_ADDRESS) / 2) throw new Error(`only ${upgraded} upgrades admitted: ${statuses}`);
  },
  legit: (ctx) => chatsOnce(ctx, { localAddress: ctx.addr(250) }),
};
