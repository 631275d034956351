// Hostile bytes after a valid WebSocket upgrade: every connection must be closed by the
// server (1002 / 1007 / 1009 or a dropped TCP connection) without a crash, and a client
// that speaks the protocol keeps being served meanwhile.
import net from "node:net";
import crypto from "node:crypto";

const CONNECTIONS = 200;
const ADDRESSES = 20;

/** Each payload is what one connection sends after its upgrade. */
const garbage = [
  () => crypto.randomBytes(4096), // random bytes
  () => Buffer.from([0x81, 0x05, ...Buffer.from("hello")]), // unmasked text frame
  () => Buffer.from([0x83, 0x80, 1, 2, 3, 4]), // reserved opcode 3
  () => Buffer.from([0xc1, 0x80, 1, 2, 3, 4]), // RSV1 without an extension
  () => maskedFrame(0x81, Buffer.from([0xff, 0xfe, 0xfd])), // text that is not UTF-8
  () => maskedFrame(0x89, Buffer.alloc(200)), // ping with a 200-byte payload (max 125)
  () => maskedFrame(0x81, Buffer.from("[null,null,null,null,null")), // a truncated Phoenix message
  () => maskedFrame(0x81, Buffer.from('{"topic":1,"event":[],"payload":"x","ref":{}}')), // wrong types
  // declares a 2^63-1 byte frame, then stops
  () => Buffer.from([0x82, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4]),
];

function maskedFrame(first, payload) {
  const mask = crypto.randomBytes(4);
  const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]));
  if (payload.length >= 126) {
    const len = Buffer.alloc(2);
    len.writeUInt16BE(payload.length);
    return Buffer.concat([Buffer.from([first, 0x80 | 126]), len, mask, masked]);
  }
  return Buffer.concat([Buffer.from([first, 0x80 | payload.length]), mask, masked]);
}

const stillOpen = new Map();

function hostile(ctx, i) {
  const { hostname, port } = new URL(ctx.url);
  return new Promise((resolve) => {
    const sock = net.connect({ host: hostname, port: Number(port), localAddress: ctx.addr(i % ADDRESSES) });
    const done = () => {
      clearTimeout(timer);
      sock.destroy();
      resolve();
    };
    // The server closes every one of these but the frame declared and never sent, which
    // waits for the idle timeout (as in Phoenix); the row cuts what is left after 5 s and
    // counts it (RSS and threads are the bounds).
    const timer = setTimeout(() => {
      stillOpen.set(i % garbage.length, (stillOpen.get(i % garbage.length) ?? 0) + 1);
      done();
    }, 5000);
    let upgraded = false;
    sock.on("data", (d) => {
      if (!upgraded && d.toString("latin1").startsWith("HTTP/1.1 101")) {
        upgraded = true;
        sock.write(garbage[i % garbage.length]());
      }
    });
    sock.on("error", done);
    sock.on("close", done);
    sock.write(
      `GET ${ctx.socketPath}/websocket?vsn=2.0.0 HTTP/1.1\r\nHost: ${hostname}:${port}\r\n` +
        `Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n` +
        `Sec-WebSocket-Key: ${crypto.randomBytes(16).toString("base64")}\r\n\r\n`,
    );
  });
}

export default {
  name: "ws-garbage-frames",
  sends: `${CONNECTIONS} WebSocket connections from ${ADDRESSES} addresses, each sending one kind of hostile frame after the upgrade`,
  target: "conformance",
  bounds: { rssGrowthMiB: 64, threads: 32, legitMs: 15000 },
  async attack(ctx) {
    await Promise.all(Array.from({ length: CONNECTIONS }, (_, i) => hostile(ctx, i)));
    for (const [kind, n] of [...stillOpen].sort()) ctx.log(`hostile frame kind ${kind}: ${n} connections still open after 5 s`);
  },
  async legit(ctx) {
    const socket = ctx.socket({});
    const { channel, ok } = await ctx.join(socket, "room:lobby", {});
    if (!ok) throw new Error("join refused");
    const reply = await ctx.push(channel, "echo", { hello: "world" });
    if (reply.status !== "ok" || reply.hello !== "world") throw new Error(`echo answered ${JSON.stringify(reply)}`);
  },
};
