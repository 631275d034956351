// Who may fetch an uploaded file (docs/chat.md, "Who can fetch a file"), over HTTP against
// the real chat app: a file is served only through a short-lived URL signed for a reader
// of the message it is in (or its uploader before posting). No credentials or a made-up
// or altered URL: 403, whether or not a file is behind it; a non-member never gets a URL;
// an expired URL: 403; a deleted message's files: 404 and gone from UPLOAD_DIR; an upload
// never posted: removed after its time.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { startChat } from "../lib/chat-server.js";
import { client, disconnectAll, join, push, until } from "../lib/channel.js";

const PASSWORD = "correct horse battery";
let chat; // default URL and unposted lifetimes
let brief; // 3 s URLs, uploads removed 5 s after upload unless posted
let base;
const dirs = {};

before(async () => {
  base = fs.mkdtempSync(path.join(os.tmpdir(), "chat-uploads-access-"));
  dirs.chat = path.join(base, "chat");
  dirs.brief = path.join(base, "brief");
  const env = { REGISTER_BURST: "100", UPLOAD_BURST: "100" };
  chat = await startChat({ env: { ...env, UPLOAD_DIR: dirs.chat } });
  brief = await startChat({
    env: { ...env, UPLOAD_DIR: dirs.brief, UPLOAD_URL_TTL_SECS: "3", UPLOAD_UNPOSTED_TTL_SECS: "5" },
  });
});
after(async () => {
  disconnectAll();
  await chat?.stop();
  await brief?.stop();
  if (base) fs.rmSync(base, { recursive: true, force: true });
});

let users = 0;
async function register(server) {
  users += 1;
  const username = `acc${users}_${process.pid}`;
  const res = await fetch(`${server.url}/api/register`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username, password: PASSWORD }),
  });
  const body = await res.json();
  assert.equal(res.status, 201, JSON.stringify(body));
  return { ...body, socket: client(server.url, { token: body.token }) };
}

async function upload(server, user, name, data) {
  const res = await fetch(`${server.url}/api/uploads?name=${encodeURIComponent(name)}`, {
    method: "POST",
    headers: { authorization: `Bearer ${user.token}` },
    body: data,
  });
  const body = await res.json();
  assert.equal(res.status, 201, JSON.stringify(body));
  return body;
}

async function get(server, url) {
  const res = await fetch(server.url + url);
  const body = Buffer.from(await res.arrayBuffer());
  return { status: res.status, body };
}

/** The files of upload `id` under `dir`. */
function filesOf(dir, id) {
  return fs.readdirSync(dir).filter((f) => f.startsWith(id));
}

// A 1 × 1 PNG (so the upload has a thumbnail).
const PNG = Buffer.from(
  "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c4944415408d763f8cfc000000301010018dd8db00000000049454e44ae426082",
  "hex",
);

test("a private room's file: members fetch it with their URL; no credentials, altered URLs and non-members get 403", async () => {
  const [ann, bob, cal] = [await register(chat), await register(chat), await register(chat)];
  const room = `files-${process.pid}`;
  const annMe = await join(ann.socket, `user:${ann.user.id}`);
  assert.equal((await push(annMe.channel, "create_private", { room })).status, "ok");
  assert.equal((await push(annMe.channel, "invite", { room, username: bob.user.username })).status, "ok");
  // An invitation is pending until accepted (docs/chat.md, "Invitations").
  const bobMe = await join(bob.socket, `user:${bob.user.id}`);
  assert.equal((await push(bobMe.channel, "accept_invite", { room })).status, "ok");
  const annRoom = await join(ann.socket, `room:${room}`);
  const bobRoom = await join(bob.socket, `room:${room}`);
  assert.ok(annRoom.ok && bobRoom.ok, JSON.stringify([annRoom.reply, bobRoom.reply]));
  const seen = [];
  bobRoom.channel.on("new_msg", (m) => seen.push(m));

  const image = await upload(chat, ann, "secret.png", PNG);
  // The uploader may fetch it before posting, through the upload reply's URL.
  assert.equal((await get(chat, image.url)).status, 200);
  const sent = await push(annRoom.channel, "new_msg", { body: "for bob", attachments: [image.id] });
  assert.equal(sent.status, "ok", JSON.stringify(sent));
  await until(() => seen.length === 1, "bob's copy");
  const forBob = seen[0].attachments[0];

  // A member with a valid URL: 200, the bytes, the thumbnail.
  const file = await get(chat, forBob.url);
  assert.equal(file.status, 200);
  assert.deepEqual(file.body, PNG);
  assert.equal((await get(chat, forBob.thumb_url)).status, 200);

  // No credentials (the bare id, as every URL was before): 403, and the same for an id
  // that does not exist, so the answer tells nothing about which files exist.
  const bare = await get(chat, `/uploads/${image.id}`);
  assert.equal(bare.status, 403);
  assert.match(JSON.parse(bare.body).error, /signature/);
  assert.equal((await get(chat, `/uploads/${"0".repeat(32)}`)).status, 403);
  assert.equal((await get(chat, `/uploads/${image.id}/thumb`)).status, 403);

  // An altered URL: another viewer, a later expiry, another file, a forged signature.
  const [id, viewer, expires, sig] = forBob.url.slice("/uploads/".length).split("-");
  for (const forged of [
    `${id}-u${cal.user.id}-${expires}-${sig}`,
    `${id}-${viewer}-${Number(expires) + 3600}-${sig}`,
    `${"f".repeat(32)}-${viewer}-${expires}-${sig}`,
    `${id}-${viewer}-${expires}-${"0".repeat(32)}`,
  ]) {
    const res = await get(chat, `/uploads/${forged}`);
    assert.equal(res.status, 403, forged);
    assert.match(JSON.parse(res.body).error, /not valid/);
  }

  // A non-member never gets a URL: the join is refused, and asking for fresh URLs from
  // a room they are in answers nothing for a file posted elsewhere.
  const calTry = await join(cal.socket, `room:${room}`);
  assert.equal(calTry.ok, false);
  const lobby = await join(cal.socket, `room:lobby-${process.pid}`);
  const asked = await push(lobby.channel, "attachments", { ids: [image.id] });
  assert.deepEqual(asked, { status: "ok", attachments: [] });
  // A member asking in the room gets fresh URLs signed for themselves.
  const fresh = await push(bobRoom.channel, "attachments", { ids: [image.id] });
  assert.equal(fresh.attachments.length, 1);
  assert.match(fresh.attachments[0].url, new RegExp(`^/uploads/${image.id}-u${bob.user.id}-`));
  assert.equal((await get(chat, fresh.attachments[0].url)).status, 200);
});

test("deleting a message deletes its files: 404 with a valid URL, gone from UPLOAD_DIR", async () => {
  const ann = await register(chat);
  const room = `gone-${process.pid}`;
  const annRoom = await join(ann.socket, `room:${room}`);
  const image = await upload(chat, ann, "gone.png", PNG);
  const notes = await upload(chat, ann, "notes.txt", "plain notes\n");
  assert.deepEqual(filesOf(dirs.chat, image.id).sort(), [image.id, `${image.id}.json`, `${image.id}.thumb.png`]);
  const sent = await push(annRoom.channel, "new_msg", { body: "soon gone", attachments: [image.id, notes.id] });
  assert.equal(sent.status, "ok");
  assert.equal((await get(chat, image.url)).status, 200);

  assert.equal((await push(annRoom.channel, "delete_msg", { id: sent.id })).status, "ok");
  assert.equal((await get(chat, image.url)).status, 404, "the URL is still valid; the file is not there");
  assert.equal((await get(chat, image.thumb_url)).status, 404);
  assert.equal((await get(chat, notes.url)).status, 404);
  assert.deepEqual(filesOf(dirs.chat, image.id), []);
  assert.deepEqual(filesOf(dirs.chat, notes.id), []);
  // And it cannot be posted again.
  const again = await push(annRoom.channel, "new_msg", { body: "x", attachments: [image.id] });
  assert.deepEqual(again, { status: "error", reason: "unknown attachment" });
});

test("guests reading a public room fetch its files through URLs signed for them", async () => {
  const ann = await register(chat);
  const room = `public-${process.pid}`;
  const annRoom = await join(ann.socket, `room:${room}`);
  const guest = client(chat.url, { guest_key: `guest-key-${process.pid}-${"x".repeat(32)}` });
  const guestRoom = await join(guest, `room:${room}`, { username: `visitor${process.pid}` });
  assert.ok(guestRoom.ok);
  const seen = [];
  guestRoom.channel.on("new_msg", (m) => seen.push(m));
  const image = await upload(chat, ann, "public.png", PNG);
  assert.equal((await push(annRoom.channel, "new_msg", { body: "", attachments: [image.id] })).status, "ok");
  await until(() => seen.length === 1, "the guest's copy");
  const url = seen[0].attachments[0].url;
  assert.match(url, new RegExp(`^/uploads/${image.id}-g[0-9a-f]{32}-`));
  assert.equal((await get(chat, url)).status, 200);
});

test("an expired URL is refused (403); an upload never posted is removed after its time", { timeout: 60000 }, async () => {
  const ann = await register(brief);
  const room = `brief-${process.pid}`;
  const annRoom = await join(ann.socket, `room:${room}`);
  // Posted at once, so only its URL expires.
  const posted = await upload(brief, ann, "posted.png", PNG);
  const sent = await push(annRoom.channel, "new_msg", { body: "", attachments: [posted.id] });
  assert.equal(sent.status, "ok", JSON.stringify(sent));
  const expiresAt = Date.parse(posted.urls_expire_at);
  await until(() => Date.now() > expiresAt + 1500, "the URL's expiry");
  const expired = await get(brief, posted.url);
  assert.equal(expired.status, 403);
  assert.match(JSON.parse(expired.body).error, /expired/);
  // The file is still there for whoever gets a fresh URL.
  const fresh = await push(annRoom.channel, "attachments", { ids: [posted.id] });
  assert.equal((await get(brief, fresh.attachments[0].url)).status, 200);

  // Never posted: gone from UPLOAD_DIR once past its time, and cannot be posted.
  const orphan = await upload(brief, ann, "orphan.png", PNG);
  assert.equal(filesOf(dirs.brief, orphan.id).length, 3);
  await until(() => filesOf(dirs.brief, orphan.id).length === 0, "the sweeper", 30000);
  const late = await push(annRoom.channel, "new_msg", { body: "x", attachments: [orphan.id] });
  assert.equal(late.status, "error");
  assert.deepEqual(filesOf(dirs.brief, posted.id).sort(), [posted.id, `${posted.id}.json`, `${posted.id}.thumb.png`]);
});
