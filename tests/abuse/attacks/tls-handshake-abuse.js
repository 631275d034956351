// TLS that never gets going, against the chat app serving TLS itself: connections that
// send nothing (slowloris on the handshake), a partial ClientHello, or garbage (plain
// HTTP, random bytes) instead of one, and one address opening more than its share. Every
// handshake holds a connection slot (bounded per address and in all, like plain
// connections) for at most the handshake timeout (2 s here, 10 s by default); garbage is
// closed at once; a user at another address chats over wss:// meanwhile, trusting the
// test CA only.
import crypto from "node:crypto";
import fs from "node:fs";
import WebSocket from "ws";
import { pause, Tally, chatsOnce } from "../lib/raw.js";
import { closedAfter, testCertificates } from "../lib/tls.js";

const HANDSHAKE_TIMEOUT_MS = 2000;
const PER_ADDRESS = 50;

// The CA and server certificate, made on first use (when the harness reads `env`).
let pki = null;
function certificates() {
  if (pki) return pki;
  pki = testCertificates("abuse-tls-");
  process.on("exit", () => fs.rmSync(pki.dir, { recursive: true, force: true }));
  return pki;
}

export default {
  name: "tls-handshake-abuse",
  sends: "300 TLS connections from 30 addresses that never send a ClientHello, 150 that send half of one, 150 that send plain HTTP or random bytes instead, and 80 from one address (cap 50)",
  target: "chat",
  get env() {
    const { cert, key } = certificates();
    return {
      TLS_CERT_FILE: cert,
      TLS_KEY_FILE: key,
      TLS_HANDSHAKE_TIMEOUT_MS: String(HANDSHAKE_TIMEOUT_MS),
      MAX_CONNECTIONS_PER_ADDRESS: String(PER_ADDRESS),
    };
  },
  bounds: { rssGrowthMiB: 80, threads: 40, legitMs: 15000 },
  timeoutMs: 40000,
  async attack(ctx) {
    const wait = HANDSHAKE_TIMEOUT_MS * 4;
    const kinds = [
      ["silent", 300, () => null],
      // A TLS record header announcing a 512-byte ClientHello, then nothing more.
      ["half a ClientHello", 150, () => Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc])],
      ["plain HTTP", 75, () => Buffer.from("GET /socket/websocket HTTP/1.1\r\nHost: x\r\n\r\n")],
      ["random bytes", 75, () => crypto.randomBytes(1024)],
    ];
    let n = 0;
    const runs = kinds.flatMap(([kind, count, bytes]) =>
      Array.from({ length: count }, () => {
        const at = ctx.addr(n++ % 30);
        return closedAfter(ctx, at, bytes(), wait).then((ms) => [kind, ms]);
      }),
    );
    const first = await Promise.all(runs);
    // Then one address, more than its cap at once: the surplus is closed at accept, the
    // rest at the handshake timeout (after the flood above, so the two are told apart by
    // when they close, not blurred by a busy accept queue).
    const crowd = await Promise.all(
      Array.from({ length: 80 }, () => closedAfter(ctx, ctx.addr(40), null, wait).then((ms) => ["one address", ms])),
    );
    const results = [...first, ...crowd];
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
    const crowdEarly = crowd.filter(([, ms]) => ms !== null && ms < (HANDSHAKE_TIMEOUT_MS * 3) / 4).length;
    ctx.log(`one address: ${crowdEarly} of 80 closed at accept (cap ${PER_ADDRESS}), the rest at the handshake timeout`);
    if (crowdEarly < 80 - PER_ADDRESS) throw new Error(`only ${crowdEarly} of 80 refused at once from one address`);
    await pause(0);
  },
  legit(ctx) {
    const { ca } = certificates();
    const localAddress = ctx.addr(250);
    // phoenix.js' transport, trusting the test CA and nothing else.
    class TrustingWebSocket extends WebSocket {
      constructor(url, protocols) {
        super(url, protocols, { ca, localAddress });
      }
    }
    return chatsOnce(ctx, { options: { transport: TrustingWebSocket } });
  },
};
