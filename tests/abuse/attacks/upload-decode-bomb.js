// Images made to decode huge, uploaded by two users two at a time for 6 s: PNGs of
// 8 000 × 6 000 (under 1 MB on disk, 144 MB decoded: before the decode budget, four at
// once took +431 MB), PNGs whose header declares 100 000 × 100 000, and PNGs of
// 2 048 × 2 048 RGBA that are decoded (16 MiB each; the largest that still gets a
// thumbnail, 64 MiB, is measured by crates/chat-app/tests/uploads_http.rs: it takes
// seconds per decode in a debug build). Memory stays within two decodes, and another
// user's ordinary image gets its thumbnail meanwhile.

import { setMaxListeners } from "node:events";

const USERS = 2;
const LANES_PER_USER = 2; // the default uploads in progress per user
const ATTACK_MS = 6000;
const PASSWORD = "correct horse battery staple";

/** Bits into bytes, least significant first (deflate's order). */
class Bits {
  constructor() {
    this.out = [];
    this.acc = 0;
    this.n = 0;
  }
  put(value, len) {
    for (let i = 0; i < len; i++) {
      this.acc |= ((value >> i) & 1) << this.n;
      if (++this.n === 8) {
        this.out.push(this.acc);
        this.acc = 0;
        this.n = 0;
      }
    }
  }
  /** A Huffman code, most significant bit first. */
  code(code, len) {
    for (let i = len - 1; i >= 0; i--) this.put((code >> i) & 1, 1);
  }
  finish() {
    if (this.n > 0) this.out.push(this.acc);
    return Buffer.from(this.out);
  }
}

/** A zlib stream of `n` zero bytes: one fixed-Huffman block of copies of 258. */
function zlibZeros(n) {
  const bits = new Bits();
  bits.put(1, 1); // final block
  bits.put(1, 2); // fixed codes
  bits.code(0x30, 8); // literal 0
  let left = n - 1;
  for (; left >= 258; left -= 258) {
    bits.code(0xc5, 8); // length 258
    bits.code(0, 5); // distance 1
  }
  for (; left > 0; left--) bits.code(0x30, 8);
  bits.code(0, 7); // end of block
  const adler = Buffer.alloc(4);
  adler.writeUInt32BE((((n % 65521) << 16) | 1) >>> 0);
  return Buffer.concat([Buffer.from([0x78, 0x01]), bits.finish(), adler]);
}

const CRC = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function chunk(type, data) {
  const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
  let c = 0xffffffff;
  for (const b of body) c = CRC[(c ^ b) & 0xff] ^ (c >>> 8);
  const head = Buffer.alloc(4);
  head.writeUInt32BE(data.length);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE((c ^ 0xffffffff) >>> 0);
  return Buffer.concat([head, body, crc]);
}
/** A black PNG, 8 bits, `channels` 3 (RGB) or 4 (RGBA); its pixels are `rows` rows. */
function blackPng(width, height, channels, rows = height) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, channels === 4 ? 6 : 2, 0, 0, 0], 8);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", zlibZeros((1 + width * channels) * rows)),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

const images = [
  ["bomb.png", blackPng(8000, 6000, 3)],
  ["declared-huge.png", blackPng(100000, 100000, 3, 1)],
  ["decoded.png", blackPng(2048, 2048, 4)],
];
const outcomes = new Map();

async function register(ctx, username, address) {
  const res = await ctx.http("POST", "/api/register", { body: { username, password: PASSWORD }, localAddress: address });
  if (res.status !== 201) throw new Error(`register ${username}: ${res.status} ${res.body}`);
  return res.json().token;
}

async function upload(ctx, token, name, data, address) {
  const res = await ctx.http("POST", `/api/uploads?name=${name}`, {
    headers: { authorization: `Bearer ${token}` },
    body: data,
    localAddress: address,
    timeoutMs: 60000,
  });
  return { status: res.status, body: res.status === 201 ? res.json() : res.body };
}

export default {
  name: "upload-decode-bomb",
  sends: `${USERS} users upload, ${LANES_PER_USER} at a time each for ${ATTACK_MS / 1000} s, PNGs of 8000 x 6000 (${images[0][1].length} bytes, 144 MB decoded), of 100000 x 100000 declared (${images[1][1].length} bytes) and of 2048 x 2048 RGBA (${images[2][1].length} bytes, 16 MiB decoded)`,
  target: "chat",
  env: { REGISTER_BURST: "100", UPLOAD_BURST: "100000" },
  bounds: { rssGrowthMiB: 150, threads: 64, legitMs: 20000 },
  async attack(ctx) {
    setMaxListeners(64, ctx.signal); // one per request in flight
    const until = Date.now() + ATTACK_MS;
    const lanes = [];
    for (let u = 0; u < USERS; u++) {
      const address = ctx.addr(10 + u);
      const token = await register(ctx, `bomber${u}`, address);
      for (let l = 0; l < LANES_PER_USER; l++) {
        lanes.push(
          (async () => {
            for (let i = l; Date.now() < until && !ctx.signal.aborted; i++) {
              const [name, data] = images[i % images.length];
              const { status, body } = await upload(ctx, token, name, data, address);
              const key = `${name}: ${status}${status === 201 ? (body.thumb_url ? " with a thumbnail" : " without a thumbnail") : ` ${body}`}`;
              outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
            }
          })(),
        );
      }
    }
    await Promise.all(lanes);
    for (const [key, n] of [...outcomes].sort()) ctx.log(`${key}: ${n}×`);
    if ([...outcomes.keys()].some((k) => k.startsWith("bomb.png: 201 with a thumbnail"))) {
      throw new Error("an image over the decode budget was decoded");
    }
    if ([...outcomes.keys()].some((k) => k.startsWith("declared-huge.png") && !k.includes(": 415"))) {
      throw new Error("an image over the side limit was not refused");
    }
  },
  async legit(ctx) {
    const address = ctx.addr(2);
    const token = await register(ctx, "legit", address);
    const { status, body } = await upload(ctx, token, "photo.png", blackPng(400, 300, 3), address);
    if (status !== 201 || !body.thumb_url) throw new Error(`upload answered ${status} ${JSON.stringify(body)}`);
  },
};
