// File uploads (docs/chat.md, "Uploads") against the real chat app: POST /api/uploads with
// a session token, the signed GET /uploads/<signed> and /uploads/<signed>/thumb, and every
// refusal: size (also a body far over the limit is cut off, not read), empty, type from
// the content whatever the name says, names, tokens, the per-user rate, and paths. Who may
// fetch a file is uploads-access.test.js.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import zlib from "node:zlib";
import { Readable } from "node:stream";
import { startChat } from "../lib/chat-server.js";
import { client, disconnectAll, join, push, until } from "../lib/channel.js";

const MAX_BYTES = 64 * 1024;
const BURST = 14;
const PASSWORD = "correct horse battery";
let chat;
let base;
let uploadDir;
let users = 0;

before(async () => {
  base = fs.mkdtempSync(path.join(os.tmpdir(), "chat-uploads-test-"));
  uploadDir = path.join(base, "files");
  chat = await startChat({
    env: {
      UPLOAD_DIR: uploadDir,
      UPLOAD_MAX_BYTES: String(MAX_BYTES),
      UPLOAD_BURST: String(BURST),
      UPLOAD_REFILL_MS: "600000",
      UPLOAD_QUOTA_BYTES: String(3 * MAX_BYTES),
      REGISTER_BURST: "100",
    },
  });
});
after(async () => {
  disconnectAll();
  await chat?.stop();
  if (base) fs.rmSync(base, { recursive: true, force: true });
});

/** A new signed-in user's token (each test its own: the upload rate is per user). */
async function token() {
  users += 1;
  const res = await fetch(`${chat.url}/api/register`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username: `up${users}_${process.pid}`, password: PASSWORD }),
  });
  const body = await res.json();
  assert.equal(res.status, 201, JSON.stringify(body));
  return body.token;
}

async function upload(auth, name, data, { query } = {}) {
  const qs = query ?? (name === undefined ? "" : `?name=${encodeURIComponent(name)}`);
  const headers = auth === undefined ? {} : { authorization: auth.includes(" ") ? auth : `Bearer ${auth}` };
  const res = await fetch(`${chat.url}/api/uploads${qs}`, { method: "POST", headers, body: data });
  return { status: res.status, body: await res.json().catch(() => null) };
}

// --- A PNG encoder (RGB, 8 bits) so the test makes its own images. ---
const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}
function png(width, height) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8 bits, RGB, deflate, no filter method, no interlace
  const row = Buffer.alloc(1 + width * 3);
  for (let x = 0; x < width; x++) row.set([x % 256, 80, 160], 1 + x * 3);
  const raw = Buffer.concat(Array.from({ length: height }, () => row));
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", zlib.deflateSync(raw)),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}
/** Width and height from a PNG's IHDR. */
function pngSize(buf) {
  assert.equal(buf.subarray(1, 4).toString("ascii"), "PNG");
  return [buf.readUInt32BE(16), buf.readUInt32BE(20)];
}

/** Every name under UPLOAD_DIR's parent, recursively. */
function tree(dir) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? [path.relative(base, p) + "/", ...tree(p)] : [path.relative(base, p)];
  });
}

/** A raw GET, so that `..` in the path reaches the server as written. */
function rawGet(pathname) {
  const { hostname, port } = new URL(chat.url);
  return new Promise((resolve, reject) => {
    http
      .get({ hostname, port, path: pathname }, (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode));
      })
      .on("error", reject);
  });
}

test("an image is stored with a thumbnail and served inline with the protective headers", async () => {
  const auth = await token();
  const image = png(400, 200);
  assert.ok(image.length < MAX_BYTES, `test image ${image.length} bytes`);
  const { status, body } = await upload(auth, "cat picture.png", image);
  assert.equal(status, 201, JSON.stringify(body));
  assert.match(body.id, /^[0-9a-f]{32}$/);
  // The URLs are signed for the uploader (docs/chat.md, "Who can fetch a file").
  assert.match(body.url, new RegExp(`^/uploads/${body.id}-u[0-9]+-[0-9]+-[0-9a-f]{32}$`));
  assert.match(body.urls_expire_at, /^\d{4}-\d\d-\d\dT/);
  assert.deepEqual(body, {
    id: body.id,
    name: "cat picture.png",
    size: image.length,
    content_type: "image/png",
    url: body.url,
    thumb_url: `${body.url}/thumb`,
    urls_expire_at: body.urls_expire_at,
  });
  assert.deepEqual(fs.readdirSync(uploadDir).filter((f) => f.startsWith(body.id)).sort(), [
    body.id,
    `${body.id}.json`,
    `${body.id}.thumb.png`,
  ]);

  const file = await fetch(chat.url + body.url);
  assert.equal(file.status, 200);
  assert.deepEqual(Buffer.from(await file.arrayBuffer()), image);
  assert.equal(file.headers.get("content-type"), "image/png");
  assert.equal(file.headers.get("x-content-type-options"), "nosniff");
  assert.equal(file.headers.get("content-security-policy"), "default-src 'none'; sandbox");
  assert.equal(file.headers.get("content-disposition"), "inline; filename*=UTF-8''cat%20picture.png");

  const thumb = await fetch(chat.url + body.thumb_url);
  assert.equal(thumb.status, 200);
  assert.equal(thumb.headers.get("content-type"), "image/png");
  assert.equal(thumb.headers.get("x-content-type-options"), "nosniff");
  assert.equal(thumb.headers.get("content-security-policy"), "default-src 'none'; sandbox");
  assert.match(thumb.headers.get("content-disposition"), /^inline; filename\*=UTF-8''/);
  const [w, h] = pngSize(Buffer.from(await thumb.arrayBuffer()));
  assert.ok(w <= 320 && h <= 320, `thumbnail ${w}×${h}`);
  assert.deepEqual([w, h], [320, 160], "the aspect ratio is kept");
});

test("text and PDF are downloads with their detected types and no thumbnail", async () => {
  const auth = await token();
  const text = await upload(auth, "notes.txt", "héllo\nworld\n");
  assert.equal(text.status, 201, JSON.stringify(text.body));
  assert.equal(text.body.content_type, "text/plain");
  assert.equal(text.body.thumb_url, null);
  const res = await fetch(chat.url + text.body.url);
  assert.equal(await res.text(), "héllo\nworld\n");
  assert.equal(res.headers.get("content-type"), "text/plain; charset=utf-8");
  assert.equal(res.headers.get("x-content-type-options"), "nosniff");
  assert.equal(res.headers.get("content-security-policy"), "default-src 'none'; sandbox");
  assert.equal(res.headers.get("content-disposition"), "attachment; filename*=UTF-8''notes.txt");
  assert.equal((await fetch(`${chat.url}${text.body.url}/thumb`)).status, 404);

  // A PDF named like an image is still a PDF, and a download.
  const pdf = await upload(auth, "résumé.png", "%PDF-1.4\n%âãÏÓ\n1 0 obj\n<<>>\nendobj\n%%EOF\n");
  assert.equal(pdf.status, 201, JSON.stringify(pdf.body));
  assert.equal(pdf.body.content_type, "application/pdf");
  const got = await fetch(chat.url + pdf.body.url);
  assert.equal(got.headers.get("content-type"), "application/pdf");
  assert.equal(got.headers.get("content-disposition"), "attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.png");
});

test("the type comes from the content: HTML named .png, SVG and other types are refused (415)", async () => {
  const auth = await token();
  for (const [name, data] of [
    ["x.png", "<!DOCTYPE html><html><script>alert(document.cookie)</script></html>"],
    ["x.png", "  <script>alert(1)</script>"],
    ["logo.svg", '<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>'],
    ["a.gz", zlib.gzipSync(Buffer.from("hello"))],
    ["a.bin", Buffer.from([0, 1, 2, 3, 255, 254, 0, 0])],
  ]) {
    const { status, body } = await upload(auth, name, data);
    assert.equal(status, 415, `${name}: ${JSON.stringify(body)}`);
    assert.equal(typeof body.error, "string");
  }
  // An image whose bytes are not a decodable image is refused too.
  const broken = png(64, 64).subarray(0, 40);
  assert.equal((await upload(auth, "broken.png", broken)).status, 415);
});

test("empty bodies and bad names are refused (400); directory parts are stripped", async () => {
  const auth = await token();
  assert.equal((await upload(auth, "empty.txt", "")).status, 400);
  for (const name of ["", ".", "..", "dir/..", "a\u0000b.txt", "a\nb.txt", "a\rb", "x".repeat(256)]) {
    const { status, body } = await upload(auth, name, "hello");
    assert.equal(status, 400, `${JSON.stringify(name)}: ${JSON.stringify(body)}`);
  }
  assert.equal((await upload(auth, undefined, "hello")).status, 400, "no name parameter");

  const passwd = await upload(auth, "../../etc/passwd", "root:x:0:0::/root:/bin/sh\n");
  assert.equal(passwd.status, 201, JSON.stringify(passwd.body));
  assert.equal(passwd.body.name, "passwd");
  const backslash = await upload(auth, "a\\b.png", png(10, 10));
  assert.equal(backslash.status, 201, JSON.stringify(backslash.body));
  assert.equal(backslash.body.name, "b.png");

  // Nothing was written outside UPLOAD_DIR, and inside it only id-named files.
  for (const entry of tree(base)) {
    if (entry === "files/") continue;
    assert.match(entry, /^files\/[0-9a-f]{32}(\.json|\.thumb\.png)?$/, entry);
  }
});

test("no token, a bad token and a logged-out token are refused (401)", async () => {
  assert.equal((await upload(undefined, "a.txt", "hello")).status, 401);
  assert.equal((await upload("not-a-token", "a.txt", "hello")).status, 401);
  const auth = await token();
  assert.equal((await upload(`Basic ${auth}`, "a.txt", "hello")).status, 401);
  assert.equal((await upload(auth.slice(0, -2) + "xx", "a.txt", "hello")).status, 401);
  const out = await fetch(`${chat.url}/api/logout`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ token: auth }),
  });
  assert.equal(out.status, 200);
  assert.equal((await upload(auth, "a.txt", "hello")).status, 401);
});

test("a body over UPLOAD_MAX_BYTES is refused (413), and a huge one is cut off, not read", { timeout: 20000 }, async () => {
  const auth = await token();
  const exact = await upload(auth, "max.txt", "a".repeat(MAX_BYTES));
  assert.equal(exact.status, 201, "exactly the limit is accepted");
  const { status } = await fetch(`${chat.url}/api/uploads?name=big.txt`, {
    method: "POST",
    headers: { authorization: `Bearer ${auth}`, "content-length": String(MAX_BYTES + 1) },
    body: "a".repeat(MAX_BYTES + 1),
  }).catch(() => ({ status: "reset" }));
  assert.ok(status === 413 || status === "reset", `declared length over the limit: ${status}`);

  // The declared length alone is refused: the answer comes before any body byte is sent.
  const { hostname: h, port: p } = new URL(chat.url);
  const early = await new Promise((resolve, reject) => {
    const req = http.request(
      {
        hostname: h,
        port: p,
        method: "POST",
        path: "/api/uploads?name=big.txt",
        headers: { authorization: `Bearer ${auth}`, "content-length": String(100 * 1024 * 1024) },
      },
      (res) => {
        res.resume();
        resolve(res.statusCode);
        req.destroy();
      },
    );
    req.on("error", reject);
    req.flushHeaders();
  });
  assert.equal(early, 413);

  // Chunked, no length: 512 MiB offered. The server must answer 413 (or close) after
  // about the limit, so what the client managed to push is bounded by socket buffers.
  const OFFER = 512 * 1024 * 1024;
  const piece = Buffer.alloc(64 * 1024, 97);
  let sent = 0;
  const body = new Readable({
    read() {
      if (sent >= OFFER) return this.push(null);
      sent += piece.length;
      this.push(piece);
    },
  });
  const { hostname, port } = new URL(chat.url);
  const started = Date.now();
  const outcome = await new Promise((resolve) => {
    const req = http.request(
      {
        hostname,
        port,
        method: "POST",
        path: "/api/uploads?name=huge.txt",
        headers: { authorization: `Bearer ${auth}`, "transfer-encoding": "chunked" },
      },
      (res) => {
        res.resume();
        resolve(res.statusCode);
        body.destroy();
        req.destroy();
      },
    );
    req.on("error", (e) => resolve(e.code));
    body.pipe(req);
  });
  const elapsed = Date.now() - started;
  assert.ok(outcome === 413 || outcome === "ECONNRESET" || outcome === "EPIPE", `outcome ${outcome}`);
  assert.ok(sent < 64 * 1024 * 1024, `the client pushed ${sent} bytes of ${OFFER} before the cut`);
  assert.ok(elapsed < 15000, `took ${elapsed} ms`);
  assert.ok(!fs.readdirSync(uploadDir).some((f) => f.startsWith(".tmp-")), "no partial file left");
});

test("a user over the upload rate gets 429; another user is not affected", async () => {
  const auth = await token();
  for (let i = 0; i < BURST; i++) {
    assert.equal((await upload(auth, `n${i}.txt`, `file ${i}`)).status, 201, `upload ${i}`);
  }
  const over = await upload(auth, "one-more.txt", "x");
  assert.equal(over.status, 429, JSON.stringify(over.body));
  assert.equal((await upload(await token(), "other.txt", "x")).status, 201);
});

test("a user over the disk quota gets 413; refused uploads do not count", async () => {
  const auth = await token();
  const full = "q".repeat(MAX_BYTES);
  assert.equal((await upload(auth, "bad.bin", Buffer.alloc(MAX_BYTES, 0))).status, 415);
  for (let i = 0; i < 3; i++) assert.equal((await upload(auth, `q${i}.txt`, full)).status, 201, `upload ${i}`);
  const over = await upload(auth, "one-byte.txt", "q");
  assert.equal(over.status, 413, JSON.stringify(over.body));
  assert.match(over.body.error, /quota/);
  assert.equal((await upload(await token(), "other.txt", full)).status, 201, "quotas are per user");
});

test("without a valid signed URL every GET path is 403: ids, metadata files, traversal", async () => {
  const auth = await token();
  const { body } = await upload(auth, "a.txt", "hello");
  assert.equal(await rawGet(body.url), 200);
  for (const p of [
    `/uploads/${body.id}`,
    `/uploads/${body.id}/thumb`,
    `/uploads/${"0".repeat(32)}`,
    `/uploads/${"0".repeat(32)}/thumb`,
    `/uploads/${body.id}.json`,
    `/uploads/${body.id.toUpperCase()}`,
    `/uploads/${body.id}/../${body.id}`,
    "/uploads/../../../../etc/passwd",
    "/uploads/..%2f..%2f..%2fetc%2fpasswd",
    "/uploads/%2e%2e/%2e%2e/etc/passwd",
    "/uploads/",
    "/uploads/thumb",
    `${body.url}/../${body.id}`,
    `${body.url}.json`,
  ]) {
    assert.equal(await rawGet(p), 403, p);
  }
});

test("a message carries its author's uploads as attachments; someone else's upload is refused", async () => {
  const [ann, bob] = [await token(), await token()];
  const image = await upload(ann, "photo.png", png(40, 30));
  const notes = await upload(ann, "notes.txt", "hello");
  const bobs = await upload(bob, "bob.txt", "bob's");
  for (const u of [image, notes, bobs]) assert.equal(u.status, 201, JSON.stringify(u.body));
  const room = `attach${process.pid}`;
  const seen = [];
  const watcher = await join(client(chat.url, { token: bob }), `room:${room}`);
  assert.ok(watcher.ok, JSON.stringify(watcher.reply));
  watcher.channel.on("new_msg", (m) => seen.push(m));
  const { channel, ok } = await join(client(chat.url, { token: ann }), `room:${room}`);
  assert.ok(ok);

  const sent = await push(channel, "new_msg", { body: "", attachments: [image.body.id, notes.body.id] });
  assert.equal(sent.status, "ok", JSON.stringify(sent));
  await until(() => seen.length === 1, "the broadcast with attachments");
  // The same files, with URLs signed for bob (the reader), not ann's.
  const unsigned = ({ url, thumb_url, urls_expire_at, ...rest }) => rest;
  assert.deepEqual(seen[0].attachments.map(unsigned), [image.body, notes.body].map(unsigned));
  assert.notEqual(seen[0].attachments[0].url, image.body.url);
  assert.equal(seen[0].attachments[0].thumb_url, `${seen[0].attachments[0].url}/thumb`);
  assert.equal(seen[0].attachments[1].thumb_url, null);
  assert.equal(await rawGet(seen[0].attachments[0].thumb_url), 200);

  const stolen = await push(channel, "new_msg", { body: "mine now", attachments: [bobs.body.id] });
  assert.deepEqual(stolen, { status: "error", reason: "unknown attachment" });
  const made_up = await push(channel, "new_msg", { body: "x", attachments: ["0".repeat(32)] });
  assert.deepEqual(made_up, { status: "error", reason: "unknown attachment" });
  const history = await join(client(chat.url, { token: bob }), `room:${room}`);
  assert.deepEqual(
    history.reply.messages.map((m) => m.attachments.map(unsigned)),
    [[image.body, notes.body].map(unsigned)],
  );
});
