// What lets people trust the chat, in Chromium against the real chat app (memory store):
// changes made while a page was away reach it on rejoin (edits, deletes, reactions,
// replies; a reload when too much changed), guests cannot be present under one name and
// are marked as guests, a page never takes someone else's message, reaction or presence
// for its own (author ids, not names), look-alike rooms are refused with the reason,
// invitations are pending until accepted or declined and not repeated during the
// cooldown, files of a private room reach its members only through short-lived URLs the
// page keeps fresh (and a deleted file is gone), and a refused registration says when to
// retry while weak passwords do not spend the budget. One browser and one server for the
// file (a second, stricter one for the registration budget). Screenshots of the new
// states go to js-client/artifacts/ (trust-*.png), axe-core checks each.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createRequire } from "node:module";
import { startChat } from "../lib/chat-server.js";
import { ARTIFACTS, launchBrowser, joinAsGuest, send } from "../lib/browser.js";
import { cutProxy } from "../lib/cut-proxy.js";
import { client, disconnectAll, join, push } from "../lib/channel.js";

const AXE = createRequire(import.meta.url).resolve("axe-core/axe.min.js");
const PASSWORD = "correct horse battery";
// PHX_HOST: pages served through a cut-able proxy (another port) may connect too. File
// URLs live 6 s (rounded up to 7.5 s), so their expiry is seen within the test.
const URL_TTL_SECS = 6;
let uploads;
let chat;
let browser;

before(async () => {
  uploads = fs.mkdtempSync(path.join(os.tmpdir(), "chat-trust-uploads-"));
  chat = await startChat({
    env: {
      REGISTER_BURST: "100",
      LOGIN_ADDRESS_BURST: "100",
      PHX_HOST: "127.0.0.1",
      UPLOAD_DIR: uploads,
      UPLOAD_URL_TTL_SECS: String(URL_TTL_SECS),
    },
  });
  browser = await launchBrowser();
});

after(async () => {
  disconnectAll();
  await browser?.close();
  await chat?.stop();
  if (uploads) fs.rmSync(uploads, { recursive: true, force: true });
});

const tag = () => `${Date.now().toString(36)}${Math.floor(Math.random() * 1e4)}`;
const exactly = (text) => new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`);
/** The shown (not pending) message whose body is exactly `text`. */
const msg = (page, text) => page.locator("#message-list li.message:not(.pending)").filter({ has: page.locator(".body", { hasText: exactly(text) }) });
const shown = (page, text) => msg(page, text).waitFor();
const byId = (page, id) => page.locator(`#message-list li.message[data-id="${id}"]`);

async function axe(page, label) {
  if (!(await page.evaluate(() => Boolean(window.axe)))) await page.addScriptTag({ path: AXE });
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, { resultTypes: ["violations"] });
    return result.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(" ")).slice(0, 5) }));
  });
  const bad = violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  assert.deepEqual(bad, [], `${label}: axe-core found serious or critical violations`);
}

/** A new browser context whose page registers `name` (or logs in) at `url`, in `room`. */
async function account(name, room, { url = chat.url, viewport = { width: 1280, height: 800 }, action = "#register-button", watch = null } = {}) {
  const context = await browser.newContext({ viewport, reducedMotion: "reduce" });
  const page = await context.newPage();
  const frames = watch ? watchJoins(page, watch) : null;
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(`${url}/#${room}`);
  await page.fill("#acct-username", name);
  await page.fill("#acct-password", PASSWORD);
  await page.click(action);
  await page.waitForSelector("#sidebar:not([hidden])");
  await page.waitForFunction((r) => document.querySelector("#room-name").textContent === `#${r}`, room);
  return { context, page, errors, frames };
}

/**
 * The page's joins of `topic`, their replies and its other pushes there, as sent and
 * received (phoenix.js frames). Only sockets opened after the call are seen.
 */
function watchJoins(page, topic) {
  const seen = { joins: [], replies: [], pushes: [] };
  const refs = new Set();
  page.on("websocket", (ws) => {
    ws.on("framesent", ({ payload }) => {
      const [, ref, t, event, body] = JSON.parse(String(payload));
      if (t !== topic) return;
      if (event === "phx_join") {
        seen.joins.push(body);
        refs.add(ref);
      } else seen.pushes.push({ event, body });
    });
    ws.on("framereceived", ({ payload }) => {
      const [, ref, t, event, body] = JSON.parse(String(payload));
      if (t === topic && event === "phx_reply" && refs.has(ref)) seen.replies.push(body.response);
    });
  });
  return seen;
}

/** A real PNG drawn by the browser: `w` × `h`. */
const png = async (page, w, h, colour = "#2a7") =>
  Buffer.from(
    await page.evaluate(
      ([w, h, colour]) =>
        new Promise((resolve) => {
          const canvas = Object.assign(document.createElement("canvas"), { width: w, height: h });
          const g = canvas.getContext("2d");
          g.fillStyle = colour;
          g.fillRect(0, 0, w, h);
          canvas.toBlob((blob) => blob.arrayBuffer().then((a) => resolve([...new Uint8Array(a)])), "image/png");
        }),
      [w, h, colour],
    ),
  );

test("away while someone edits, deletes, reacts and replies: on rejoin the page shows all of it", async () => {
  const id = tag();
  const room = `away-${id}`;
  const proxy = await cutProxy({ port: Number(new URL(chat.url).port) });
  try {
    // The other person, from Node: a guest with a key of its own (one author across pushes).
    const other = client(chat.url, { guest_key: `other-${id}-${"k".repeat(32)}` });
    const { channel, ok } = await join(other, `room:${room}`, { username: `otto${id}` });
    assert.ok(ok);
    const posted = {};
    for (const body of ["alpha", "beta", "gamma", "a topic"]) posted[body] = (await push(channel, "new_msg", { body })).id;

    const ann = await joinAsGuest(browser, proxy.url, `ann${id}`, room);
    const frames = watchJoins(ann.page, `room:${room}`);
    await shown(ann.page, "a topic");
    await send(ann.page, "mine, before");
    await shown(ann.page, "mine, before");
    const mineId = Number(await msg(ann.page, "mine, before").getAttribute("data-id"));

    proxy.cut();
    await ann.page.waitForSelector("#connection-banner:not([hidden])");
    // Meanwhile: an edit, a delete, reactions (one on ann's message), a thread reply, a new message.
    assert.equal((await push(channel, "edit_msg", { id: posted.alpha, body: "alpha, edited" })).status, "ok");
    assert.equal((await push(channel, "delete_msg", { id: posted.beta })).status, "ok");
    assert.equal((await push(channel, "react", { id: posted.gamma, emoji: "🎉" })).status, "ok");
    assert.equal((await push(channel, "react", { id: mineId, emoji: "👍" })).status, "ok");
    assert.equal((await push(channel, "new_msg", { body: "a reply", parent_id: posted["a topic"] })).status, "ok");
    assert.equal((await push(channel, "new_msg", { body: "delta" })).status, "ok");

    proxy.restore();
    await shown(ann.page, "delta");
    await ann.page.waitForSelector("#connection-banner", { state: "hidden" });
    // The rejoin sent the sequence it had seen, and got the changes back.
    const rejoin = frames.joins.at(-1);
    assert.ok(Number.isSafeInteger(rejoin.after_seq) && rejoin.after_seq >= mineId, JSON.stringify(rejoin));
    assert.deepEqual(frames.replies.at(-1).changed.map((m) => m.id).sort(), [posted.alpha, posted.beta, posted.gamma, posted["a topic"], mineId].sort());

    await shown(ann.page, "alpha, edited");
    assert.equal(await msg(ann.page, "alpha, edited").locator(".edited").textContent(), "(edited)");
    assert.equal(await byId(ann.page, posted.beta).locator(".tombstone").textContent(), "message deleted");
    await msg(ann.page, "gamma").locator('.reaction[data-emoji="🎉"]', { hasText: "1" }).waitFor();
    const thumbs = msg(ann.page, "mine, before").locator('.reaction[data-emoji="👍"]');
    assert.equal(await thumbs.getAttribute("aria-pressed"), "false", "someone else's reaction is not mine");
    assert.equal(await msg(ann.page, "a topic").locator(".reply-count").textContent(), "1 reply");
    assert.deepEqual(
      await ann.page.$$eval("#message-list li.message .body", (b) => b.map((e) => e.textContent)),
      ["alpha, edited", "message deleted", "gamma", "a topic", "mine, before", "delta"],
    );
    assert.deepEqual(ann.errors, []);
    await ann.context.close();
  } finally {
    await proxy.close();
  }
});

/** A push that waits for the socket's rate budget (RATE_LIMIT_BURST, then RATE_LIMIT per second) when it is spent. */
async function pushPaced(channel, event, payload) {
  let r = await push(channel, event, payload);
  while (r.reason === "rate limited") {
    await new Promise((resolve) => setTimeout(resolve, 100));
    r = await push(channel, event, payload);
  }
  return r;
}

test("more changes while away than a rejoin carries: the page loads what it shows again", async () => {
  const id = tag();
  const room = `refetch-${id}`;
  const proxy = await cutProxy({ port: Number(new URL(chat.url).port) });
  try {
    // 210 messages from three writers; each writer's 70 messages and 70 reactions go past
    // its socket's burst, so pushes wait for the budget when the server says so.
    const writers = await Promise.all([0, 1, 2].map((w) => join(client(chat.url), `room:${room}`, { username: `w${w}${id}` })));
    const ids = [];
    for (const [w, { channel }] of writers.entries()) for (let i = 0; i < 70; i++) ids.push((await pushPaced(channel, "new_msg", { body: `m ${w}.${i}` })).id);
    const bea = await joinAsGuest(browser, proxy.url, `bea${id}`, room);
    const frames = watchJoins(bea.page, `room:${room}`);
    await shown(bea.page, "m 2.69");
    proxy.cut();
    await bea.page.waitForSelector("#connection-banner:not([hidden])");
    // Every one of them gets a reaction: 210 changed messages, past the 200 a rejoin carries.
    for (const [i, mid] of ids.entries()) {
      const r = await pushPaced(writers[i % 3].channel, "react", { id: mid, emoji: "👀" });
      assert.equal(r.status, "ok", JSON.stringify(r));
    }
    proxy.restore();
    await bea.page.waitForSelector("#connection-banner", { state: "hidden" });
    await bea.page.waitForFunction(() => {
      const items = [...document.querySelectorAll("#message-list li.message")];
      return items.length === 50 && items.every((li) => li.querySelector('.reaction[data-emoji="👀"]'));
    });
    assert.equal(frames.replies.at(-1).refetch, true, "the rejoin was answered refetch");
    assert.deepEqual(bea.errors, []);
    await bea.context.close();
  } finally {
    await proxy.close();
  }
});

test("guests: one name per room, marked as guests; a page never takes another's message, reaction or presence for its own", async () => {
  const id = tag();
  const room = `guests-${id}`;
  const name = `sam${id}`;
  const sam = await joinAsGuest(browser, chat.url, name, room);
  await send(sam.page, "hello from the guest");
  await shown(sam.page, "hello from the guest");

  // A second guest cannot be present under the same name (nor its case variant).
  const other = await browser.newContext({ viewport: { width: 1100, height: 720 } });
  const twin = await other.newPage();
  await twin.goto(`${chat.url}/#${room}`);
  await twin.fill("#username", name.toUpperCase());
  await twin.click("#login-form button");
  await twin.waitForFunction(() => /using the name/.test(document.querySelector("#login-error").textContent));
  assert.match(await twin.textContent("#login-error"), new RegExp(`Someone else in this room is using the name “${name.toUpperCase()}” right now: choose another name\\.`));
  assert.equal(await twin.isHidden("#chat"), true);
  assert.equal(await twin.evaluate(() => document.activeElement.id), "username", "ready for another name");
  await twin.screenshot({ path: path.join(ARTIFACTS, "trust-guest-name-taken.png") });
  await axe(twin, "guest name taken");
  await other.close();

  // Someone registers the name the guest holds and comes into the room: two people, one name.
  const acct = await account(name, room);
  await send(acct.page, `hello from the account @${name}`);
  await shown(sam.page, `hello from the account @${name}`);
  const guestMsg = msg(sam.page, "hello from the guest");
  const acctMsg = msg(sam.page, `hello from the account @${name}`);
  const guestId = await guestMsg.getAttribute("data-id");
  // The guest's page: its own message is its own (and marked guest); the account's is not.
  assert.deepEqual(
    await guestMsg.evaluate((li) => ({ mine: li.classList.contains("mine"), edit: Boolean(li.querySelector(".action.edit")), badge: li.querySelector(".guest-badge")?.textContent })),
    { mine: true, edit: true, badge: "guest" },
  );
  assert.deepEqual(
    await acctMsg.evaluate((li) => ({ mine: li.classList.contains("mine"), edit: Boolean(li.querySelector(".action.edit")), grouped: li.classList.contains("grouped"), badge: li.querySelector(".guest-badge") !== null })),
    { mine: false, edit: false, grouped: false, badge: false },
  );
  // The account's mention of the name is the account's, not the guest's.
  assert.equal(await acctMsg.evaluate((li) => li.classList.contains("mentions-me") || li.querySelector(".mention.me") !== null), false);
  // The two are told apart: a tag from each author id beside the shared name.
  const tags = await sam.page.$$eval("#message-list .meta", (metas) => metas.map((m) => m.querySelector(".author-tag")?.textContent ?? null));
  assert.equal(tags.length, 2);
  assert.ok(tags.every(Boolean) && tags[0] !== tags[1], JSON.stringify(tags));

  // The account reacts to the guest's message: a reaction by the same name is not the guest's.
  await guestMsg.hover();
  const accountsView = msg(acct.page, "hello from the guest");
  await accountsView.hover();
  await accountsView.locator(".action.react").click();
  await acct.page.click('#picker button[aria-label="React with 👍"]');
  const chip = guestMsg.locator('.reaction[data-emoji="👍"]');
  await chip.waitFor();
  assert.equal(await chip.getAttribute("aria-pressed"), "false");
  assert.equal(await accountsView.locator('.reaction[data-emoji="👍"]').getAttribute("aria-pressed"), "true");
  // The account's page: the guest's message is marked and not editable.
  assert.deepEqual(
    await accountsView.evaluate((li) => ({ mine: li.classList.contains("mine"), edit: Boolean(li.querySelector(".action.edit")), badge: li.querySelector(".guest-badge")?.textContent })),
    { mine: false, edit: false, badge: "guest" },
  );

  // Typing by the other one shows, though the name is the guest's own.
  await acct.page.type("#body", "typing…");
  await sam.page.waitForFunction((n) => document.querySelector("#typing").textContent === `${n} is typing…`, name);
  await acct.page.fill("#body", "");
  // ↑ edits the guest's own last message, not the later one under the same name.
  await sam.page.focus("#body");
  await sam.page.keyboard.press("ArrowUp");
  await byId(sam.page, guestId).locator("form.editor").waitFor();
  await sam.page.keyboard.press("Escape");
  // Presence: two entries with the name, "(you)" on the guest's own only.
  await sam.page.waitForFunction(() => document.querySelectorAll("#presence li").length === 2);
  const people = await sam.page.$$eval("#presence li", (lis) => lis.map((li) => ({ text: li.textContent, me: li.classList.contains("me") })));
  assert.deepEqual(people.filter((p) => p.me).length, 1);
  assert.match(people.find((p) => p.me).text, /\(you\)guest/);
  await sam.page.screenshot({ path: path.join(ARTIFACTS, "trust-guests.png") });
  await axe(sam.page, "a guest and an account with one name");
  await sam.page.emulateMedia({ colorScheme: "dark" });
  await sam.page.screenshot({ path: path.join(ARTIFACTS, "trust-guests-dark.png") });
  await axe(sam.page, "a guest and an account with one name, dark");
  for (const u of [sam, acct]) {
    assert.deepEqual(u.errors, []);
    await u.context.close();
  }
});

test("rooms: look-alike names refused with the reason; invitations pending until accepted or declined, none again during the cooldown", async () => {
  const id = tag();
  const release = `release-${id}`;
  const ann = await account(`ann${id}`, release, { viewport: { width: 1440, height: 900 } });
  // A guest asks for the same room in other letters: refused, with the room it resembles.
  const visitor = await browser.newContext({ viewport: { width: 1024, height: 768 } });
  const guest = await visitor.newPage();
  await guest.goto(`${chat.url}/#Release-${id}`);
  await guest.fill("#username", `vic${id}`);
  await guest.click("#login-form button");
  await guest.waitForFunction(() => /similar name/.test(document.querySelector("#login-error").textContent));
  await guest.screenshot({ path: path.join(ARTIFACTS, "trust-look-alike.png") });
  await axe(guest, "a look-alike room refused");
  await guest.click(`#login-error button.offer`);
  await guest.waitForFunction((r) => document.querySelector("#room-name").textContent === `#${r}`, release);
  await visitor.close();
  // A private room named with a Cyrillic е: refused the same way, in the sidebar.
  await ann.page.fill("#new-room", `r\u0435lease-${id}`);
  await ann.page.press("#new-room", "Enter");
  await ann.page.waitForFunction(() => /similar name/.test(document.querySelector("#sidebar-error").textContent));
  assert.equal(await ann.page.textContent("#sidebar-error button.offer"), `Open #${release}`);

  // ann invites bob to a private room: pending, shown to bob (both tabs) with Accept and Decline.
  const team = `team-${id}`;
  const bob = await account(`bob${id}`, release);
  const bobTab2 = await bob.context.newPage();
  await bobTab2.goto(`${chat.url}/#${release}`);
  await bobTab2.waitForSelector("#sidebar:not([hidden])");
  await ann.page.fill("#new-room", team);
  await ann.page.press("#new-room", "Enter");
  await ann.page.waitForFunction((r) => document.querySelector("#room-name").textContent === r, team);
  const invite = async (page, who) => {
    await page.fill("#invite-username", who);
    await page.press("#invite-username", "Enter");
  };
  // The toast announcing it lasts 8 s: watched for from before the invitation is sent.
  const toast = bob.page.locator(".toast", { hasText: `ann${id} invited you to ${team}` }).waitFor();
  await invite(ann.page, `bob${id}`);
  await toast;
  await ann.page.waitForFunction(() => /is invited: they become a member once they accept/.test(document.querySelector("#sidebar-error").textContent));
  for (const page of [bob.page, bobTab2]) {
    const item = page.locator(`#invitation-list li[data-room="${team}"]`);
    await item.waitFor();
    assert.match(await item.textContent(), new RegExp(`${team} from ann${id}`));
  }
  // Pending is not a member: the room does not open for bob.
  assert.equal(await bob.page.locator(`#room-list li[data-room="${team}"]`).count(), 0);
  await bob.page.screenshot({ path: path.join(ARTIFACTS, "trust-invitation.png") });
  await axe(bob.page, "a pending invitation");

  // bob declines in one tab: both drop it, and he is still no member.
  await bob.page.click(`#invitation-list li[data-room="${team}"] button.decline`);
  await bobTab2.waitForSelector("#invitations", { state: "hidden" });
  await bob.page.waitForSelector("#invitations", { state: "hidden" });
  await bob.page.evaluate((r) => (location.hash = r), team);
  await bob.page.waitForFunction(() => /This room is private/.test(document.querySelector("#sidebar-error").textContent));

  // ann cannot invite him again during the cooldown, to this room or another; the page says until when.
  await invite(ann.page, `bob${id}`);
  await ann.page.waitForFunction(() => /you can invite them again after/.test(document.querySelector("#sidebar-error").textContent));
  assert.match(await ann.page.textContent("#sidebar-error"), new RegExp(`^bob${id} declined an invitation or left recently: you can invite them again after .*\\d{1,2}:\\d{2}( [AP]M)?\\.$`));
  await ann.page.screenshot({ path: path.join(ARTIFACTS, "trust-cooldown.png") });
  await axe(ann.page, "an invitation refused during the cooldown");
  const crew = `crew-${id}`;
  await ann.page.fill("#new-room", crew);
  await ann.page.press("#new-room", "Enter");
  await ann.page.waitForFunction((r) => document.querySelector("#room-name").textContent === r, crew);
  await invite(ann.page, `bob${id}`);
  await ann.page.waitForFunction(() => /you can invite them again after/.test(document.querySelector("#sidebar-error").textContent));

  // Someone else's invitation: accepted in the second tab, which opens the room; the
  // first tab drops the invitation and lists the room.
  const cy = await account(`cy${id}`, release);
  const den = `den-${id}`;
  await cy.page.fill("#new-room", den);
  await cy.page.press("#new-room", "Enter");
  await cy.page.waitForFunction((r) => document.querySelector("#room-name").textContent === r, den);
  await invite(cy.page, `bob${id}`);
  await bobTab2.locator(`#invitation-list li[data-room="${den}"] button.accept`).click();
  await bobTab2.waitForFunction((r) => document.querySelector("#room-name").textContent === r, den);
  await bob.page.waitForSelector("#invitations", { state: "hidden" });
  await bob.page.waitForSelector(`#room-list li[data-room="${den}"]`);
  await send(bobTab2, "thanks for the invitation");
  await shown(cy.page, "thanks for the invitation");
  // He leaves it: cy cannot invite him back during the cooldown either.
  await bobTab2.click("#leave-room");
  await bobTab2.waitForFunction((r) => !document.querySelector(`#room-list li[data-room="${r}"]`), den);
  await invite(cy.page, `bob${id}`);
  await cy.page.waitForFunction(() => /you can invite them again after/.test(document.querySelector("#sidebar-error").textContent));
  for (const u of [ann, bob, cy]) {
    assert.deepEqual(u.errors, []);
    await u.context.close();
  }
});

test("files in a private room: members see them through short-lived URLs the page keeps fresh; copied or bare URLs are refused elsewhere; a removed file is gone", async () => {
  const id = tag();
  const room = `files-${id}`;
  const ann = await account(`ann${id}`, `lobby-${id}`);
  const bob = await account(`bob${id}`, `lobby-${id}`, { viewport: { width: 1100, height: 700 }, watch: `room:${room}` });
  const cal = await account(`cal${id}`, `lobby-${id}`);
  await ann.page.fill("#new-room", room);
  await ann.page.press("#new-room", "Enter");
  await ann.page.waitForFunction((r) => document.querySelector("#room-name").textContent === r, room);
  await ann.page.fill("#invite-username", `bob${id}`);
  await ann.page.press("#invite-username", "Enter");
  await bob.page.locator(`#invitation-list li[data-room="${room}"] button.accept`).click();
  await bob.page.waitForFunction((r) => document.querySelector("#room-name").textContent === r, room);
  const { frames } = bob;

  // An image, then enough text after it that a later one starts far out of view.
  await ann.page.setInputFiles("#attach", { name: "plan.png", mimeType: "image/png", buffer: await png(ann.page, 160, 120) });
  await ann.page.waitForSelector("#staged .staged-file.ready");
  await send(ann.page, "the plan");
  const plan = msg(bob.page, "the plan");
  const planImg = plan.locator(".attachment.image img");
  await planImg.waitFor();
  await planImg.evaluate((img) => img.complete || new Promise((r) => (img.onload = img.onerror = r)));
  assert.ok(await planImg.evaluate((img) => img.naturalWidth > 0), "a member sees the image");
  const planUrl = await plan.locator("a.attachment.image").getAttribute("href");
  const planId = await plan.getAttribute("data-id");
  // Every upload URL bob's page fetches, with its status.
  const fetched = [];
  bob.page.on("response", (r) => r.url().includes("/uploads/") && fetched.push({ path: new URL(r.url()).pathname, status: r.status() }));
  const planUploadId = await plan.locator("a.attachment.image").getAttribute("data-upload");

  // Not in the room: cal's page is refused, and URLs from elsewhere answer 403 in cal's browser.
  await cal.page.evaluate((r) => (location.hash = r), room);
  await cal.page.waitForFunction(() => /This room is private/.test(document.querySelector("#sidebar-error").textContent));
  const status = async (page, url) => (await page.request.get(new URL(url, chat.url).href)).status();
  const [upload, viewer, expiry, sig] = planUrl.slice("/uploads/".length).split("-");
  const calId = await cal.page.evaluate(() => JSON.parse(localStorage.getItem("phx-chat:session")).user.id);
  assert.equal(await status(cal.page, `/uploads/${upload}`), 403, "the bare id");
  assert.equal(await status(cal.page, `/uploads/${upload}-u${calId}-${expiry}-${sig}`), 403, "bob's URL made out to cal");
  assert.notEqual(viewer, `u${calId}`);

  // Many lines (from ann's session in Node), bob reads from the top, and two more images
  // arrive far below his view: not loaded yet (lazy).
  const annToken = await ann.page.evaluate(() => JSON.parse(localStorage.getItem("phx-chat:session")).token);
  const annNode = await join(client(chat.url, { token: annToken }), `room:${room}`);
  assert.ok(annNode.ok);
  for (let i = 0; i < 120; i++) {
    let r = await push(annNode.channel, "new_msg", { body: `line ${i}` });
    // Past the socket's burst (RATE_LIMIT_BURST): a moment for its budget to refill.
    while (r.reason === "rate limited") {
      await new Promise((resolve) => setTimeout(resolve, 100));
      r = await push(annNode.channel, "new_msg", { body: `line ${i}` });
    }
    assert.equal(r.status, "ok", JSON.stringify(r));
  }
  await shown(bob.page, "line 119");
  await bob.page.$eval("#messages", (box) => (box.scrollTop = 0));
  await bob.page.waitForFunction(() => document.querySelector("#messages").scrollTop === 0);
  for (const [file, colour] of [["later.png", "#a27"], ["removed.png", "#27a"]]) {
    await ann.page.setInputFiles("#attach", { name: file, mimeType: "image/png", buffer: await png(ann.page, 120, 90, colour) });
    await ann.page.waitForSelector("#staged .staged-file.ready");
    await send(ann.page, file);
    await shown(bob.page, file);
  }
  const later = msg(bob.page, "later.png").locator("img");
  const removed = msg(bob.page, "removed.png").locator("img");
  const firstLater = await later.getAttribute("src");
  assert.equal(await later.evaluate((img) => img.complete && img.naturalWidth > 0), false, "not loaded while out of view");
  const removedId = await removed.getAttribute("data-upload");

  // The URLs expire; cal's copy of bob's expired URL is refused (who has a URL fetches it
  // only while it lasts: docs/chat.md, "Who can fetch a file").
  const expiryOf = (url) => Number(url.slice("/uploads/".length).split("-")[2]) * 1000;
  const expired = Math.max(expiryOf(planUrl), expiryOf(firstLater)) + 1000;
  await new Promise((r) => setTimeout(r, Math.max(0, expired - Date.now())));
  assert.equal(await status(cal.page, planUrl), 403, "a copied URL, expired");
  // A file removed from the server meanwhile (its files gone from UPLOAD_DIR).
  for (const f of fs.readdirSync(uploads).filter((f) => f.startsWith(removedId))) fs.rmSync(path.join(uploads, f));

  // Scrolled into view, the expired image loads through fresh URLs; the removed one shows as gone.
  await later.scrollIntoViewIfNeeded();
  await bob.page.waitForFunction((first) => {
    const img = [...document.querySelectorAll("#message-list li.message")].find((li) => li.textContent.includes("later.png"))?.querySelector("img");
    return img && img.getAttribute("src") !== first && img.complete && img.naturalWidth > 0;
  }, firstLater);
  assert.ok(frames.pushes.some((p) => p.event === "attachments"), "fresh URLs were asked for");
  assert.ok(fetched.some((f) => f.path === firstLater && f.status === 403), `the expired URL was refused first: ${JSON.stringify(fetched)}`);
  await msg(bob.page, "removed.png").locator(".attachment.gone", { hasText: "no longer available" }).waitFor();
  await msg(bob.page, "removed.png").scrollIntoViewIfNeeded();
  await bob.page.screenshot({ path: path.join(ARTIFACTS, "trust-files.png") });
  await axe(bob.page, "files, one gone");
  // The first image's link, clicked long after its URL expired, opens a fresh one.
  await plan.scrollIntoViewIfNeeded();
  const [tab] = await Promise.all([bob.context.waitForEvent("page"), plan.locator("a.attachment.image").click()]);
  await tab.waitForLoadState();
  assert.notEqual(new URL(tab.url()).pathname, planUrl);
  assert.match(new URL(tab.url()).pathname, new RegExp(`^/uploads/${planUploadId}-u\\d+-`));
  const fresh = new URL(tab.url()).pathname;
  assert.equal(await status(bob.page, fresh), 200);
  await tab.close();

  // ann deletes the message: bob sees the tombstone; its file is gone even with a fresh URL.
  await msg(ann.page, "the plan").hover();
  await msg(ann.page, "the plan").locator(".action.delete").click();
  await ann.page.click("#confirm-ok");
  await byId(bob.page, planId).locator(".tombstone").waitFor();
  assert.equal(await status(bob.page, fresh), 404);
  assert.deepEqual(fs.readdirSync(uploads).filter((f) => f.startsWith(planUploadId)), []);
  for (const u of [ann, bob, cal]) {
    assert.deepEqual(u.errors, []);
    await u.context.close();
  }
});

test("registration: a refusal for the limit says when to retry; weak passwords do not spend the budget", async () => {
  // Two new accounts per address, then one a minute.
  const strict = await startChat({ env: { REGISTER_BURST: "2" } });
  const id = tag();
  const context = await browser.newContext({ viewport: { width: 1024, height: 768 } });
  const page = await context.newPage();
  try {
    await page.goto(`${strict.url}/#lobby-${id}`);
    const register = async (name, password) => {
      await page.fill("#acct-username", name);
      await page.fill("#acct-password", password);
      const [res] = await Promise.all([page.waitForResponse((r) => r.url().endsWith("/api/register")), page.click("#register-button")]);
      return res;
    };
    // Three weak passwords: refused with the reason, nothing spent.
    for (const weak of ["short", "password123", "0123456789"]) {
      const res = await register(`eve${id}`, weak);
      assert.equal(res.status(), 422, weak);
      await page.waitForFunction(() => /password/i.test(document.querySelector("#account-error").textContent));
    }
    // So two accounts can still be made.
    for (const who of [`eve${id}`, `fay${id}`]) {
      assert.equal((await register(who, PASSWORD)).status(), 201);
      await page.waitForSelector("#sidebar:not([hidden])");
      await page.click("#logout");
      await page.waitForSelector("#login:not([hidden])");
    }
    // The third is refused for the limit, and the page says when to retry.
    const res = await register(`gus${id}`, PASSWORD);
    assert.equal(res.status(), 429);
    const retry = Number(res.headers()["retry-after"]);
    assert.ok(retry >= 1 && retry <= 60, `Retry-After: ${retry}`);
    await page.waitForFunction(() => /too many new accounts/i.test(document.querySelector("#account-error").textContent));
    assert.match(await page.textContent("#account-error"), /^Too many new accounts from this address: try again in (\d+ s|1 min \(at \d{1,2}:\d{2}( [AP]M)?\))\.$/);
    await page.screenshot({ path: path.join(ARTIFACTS, "trust-register-limit.png") });
    await axe(page, "registration refused for the limit");
  } finally {
    await context.close();
    await strict.stop();
  }
});
