// TLS that never gets going, against phx-gateway's [tls] (handshake_timeout 2 s here):
// connections that send nothing, half a ClientHello, or plain HTTP or random bytes
// instead of one. Each holds a connection slot for at most the handshake timeout;
// garbage is closed at once; a user chats over wss:// meanwhile, trusting the test CA only.
import crypto from "node:crypto";
import fs from "node:fs";
import WebSocket from "ws";
import { pause, Tally, chatsOnce } from "../lib/raw.js";
import { closedAfter, testCertificates } from "../lib/tls.js";

const HANDSHAKE_TIMEOUT_MS = 2000;
let pki = null;

function certificates() {
  return testCertificates("abuse-gateway-tls-");
}

export default {
  name: "gateway-tls-handshakes",
  sends: "200 TLS connections from 20 addresses that never send a ClientHello, 100 that send half of one, 100 that send plain HTTP or random bytes instead",
  target: "gateway",
  gateway: {
    async setup() {
      pki = certificates();
      return { vars: { cert: pki.cert, key: pki.key }, stop: async () => fs.rmSync(pki.dir, { recursive: true, force: true }) };
    },
    config: ({ cert, key }) => `
[tls]
cert_file = "${cert}"
key_file = "${key}"
handshake_timeout = "${HANDSHAKE_TIMEOUT_MS}ms"

[[socket]]
path = "/socket"
check_origin = false
[socket.auth]
method = "none"
[[socket.channel]]
topic = "room:*"
join = "all"
[[socket.channel.event]]
name = "*"
handle = "broadcast"
`,
  },
  bounds: { rssGrowthMiB: 60, threads: 40, legitMs: 15000 },
  timeoutMs: 40000,
  async attack(ctx) {
    const wait = HANDSHAKE_TIMEOUT_MS * 4;
    const kinds = [
      ["silent", 200, () => null],
      ["half a ClientHello", 100, () => Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc])],
      ["plain HTTP", 50, () => Buffer.from("GET /socket/websocket HTTP/1.1\r\nHost: x\r\n\r\n")],
      ["random bytes", 50, () => crypto.randomBytes(1024)],
    ];
    let n = 0;
    const results = await Promise.all(
      kinds.flatMap(([kind, count, bytes]) =>
        Array.from({ length: count }, () => closedAfter(ctx, ctx.addr(n++ % 20), bytes(), wait).then((ms) => [kind, ms])),
      ),
    );
    const closed = new Tally();
    const slowest = new Map();
    for (const [kind, ms] of results) {
      closed.add(`${kind} ${ms === null ? "still open" : "closed"}`);
      if (ms !== null) slowest.set(kind, Math.max(slowest.get(kind) ?? 0, ms));
    }
    ctx.log(`outcomes: ${closed}`);
    ctx.log(`slowest close per kind (ms): ${[...slowest].map(([k, ms]) => `${k} ${ms}`).join(", ")}`);
    const open = results.filter(([, ms]) => ms === null).length;
    if (open > 0) throw new Error(`${open} connections still open after ${wait} ms (handshake timeout ${HANDSHAKE_TIMEOUT_MS} ms)`);
    await pause(0);
  },
  legit(ctx) {
    const localAddress = ctx.addr(250);
    class TrustingWebSocket extends WebSocket {
      constructor(url, protocols) {
        super(url, protocols, { ca: pki.ca, localAddress });
      }
    }
    return chatsOnce(ctx, { options: { transport: TrustingWebSocket } });
  },
};
