// What people expect from a chat, in Chromium against the real chat app: formatting
// (built as DOM, never HTML), long messages collapsed with "Show more", the page's own
// confirm dialog, an "unread" line where I left off, search with results opened in
// context (older history loaded around them; a reply in its thread), and files dropped or
// pasted with a preview and a progress bar before sending.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { createRequire } from "node:module";
import { startChat } from "../lib/chat-server.js";
import { ARTIFACTS, launchBrowser, send } from "../lib/browser.js";
import { client, disconnectAll, join, push } from "../lib/channel.js";

const AXE = createRequire(import.meta.url).resolve("axe-core/axe.min.js");
const PASSWORD = "correct horse battery";
const ENV = { REGISTER_BURST: "100", LOGIN_ADDRESS_BURST: "100" };
let chat;
let browser;

before(async () => {
  chat = await startChat({ env: ENV });
  browser = await launchBrowser();
});

after(async () => {
  disconnectAll();
  await browser?.close();
  await chat?.stop();
});

const tag = () => `${Date.now().toString(36)}${Math.floor(Math.random() * 1e4)}`;

async function account(name, room, viewport = { width: 1280, height: 800 }) {
  const context = await browser.newContext({ viewport, reducedMotion: "reduce" });
  const page = await context.newPage();
  const errors = [];
  const dialogs = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("dialog", (d) => {
    dialogs.push(d.message());
    d.dismiss();
  });
  await page.goto(`${chat.url}/#${room}`);
  await page.fill("#acct-username", name);
  await page.fill("#acct-password", PASSWORD);
  await page.click("#register-button");
  await page.waitForSelector("#sidebar:not([hidden])");
  await page.waitForFunction((r) => document.querySelector("#room-name").textContent === `#${r}`, room);
  return { context, page, errors, dialogs };
}

async function axe(page, label) {
  if (!(await page.evaluate(() => Boolean(window.axe)))) await page.addScriptTag({ path: AXE });
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, { resultTypes: ["violations"] });
    return result.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(" ")).slice(0, 5) }));
  });
  const bad = violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  assert.deepEqual(bad, [], `${label}: axe-core found serious or critical violations`);
}

const byId = (page, id) => page.locator(`#message-list li.message[data-id="${id}"]`);
/** The newest shown message whose body contains `text`. */
const msg = (page, text) => page.locator("#message-list li.message:not(.pending)").filter({ hasText: text }).last();

test("formatting, Show more, the page's own confirm dialog, and the unread line", async () => {
  const id = tag();
  const room = `features-${id}`;
  const other = `other-${id}`;
  const dee = await account(`dee${id}`, room);
  const eli = await account(`eli${id}`, room);

  // Formatting: nodes built from the text; HTML in it stays text.
  const text = "*bold* _it_ `code` ~gone~ <b>not bold</b> https://example.com/x_y_z\n> quoted *too*\n```\nlet x = *1*;\n```";
  await send(dee.page, text);
  const m = msg(eli.page, "quoted");
  await m.waitFor();
  const parts = await m.locator(".body").evaluate((b) => ({
    strong: [...b.querySelectorAll("strong")].map((e) => e.textContent),
    em: [...b.querySelectorAll("em")].map((e) => e.textContent),
    code: [...b.querySelectorAll(":not(pre) > code")].map((e) => e.textContent),
    s: [...b.querySelectorAll("s")].map((e) => e.textContent),
    quote: b.querySelector("blockquote")?.textContent,
    pre: b.querySelector("pre")?.textContent,
    links: [...b.querySelectorAll("a")].map((a) => a.href),
    html: b.querySelectorAll("b, img, script").length,
  }));
  assert.deepEqual(parts, {
    strong: ["bold", "too"],
    em: ["it"],
    code: ["code"],
    s: ["gone"],
    quote: "quoted too",
    pre: "let x = *1*;",
    links: ["https://example.com/x_y_z"],
    html: 0,
  });
  assert.match(await m.locator(".body").textContent(), /<b>not bold<\/b>/);

  // A long message is collapsed with "Show more", and opens.
  const long = Array.from({ length: 30 }, (_, i) => `step ${i + 1}: check the thing`).join("\n");
  await send(dee.page, long);
  const longMsg = msg(eli.page, "step 30");
  await longMsg.waitFor();
  const collapsed = await longMsg.locator(".body").evaluate((b) => ({ cls: b.classList.contains("collapsed"), clipped: b.scrollHeight > b.clientHeight + 20 }));
  assert.deepEqual(collapsed, { cls: true, clipped: true });
  await longMsg.locator("button.more", { hasText: "Show more" }).click();
  await longMsg.locator("button.more", { hasText: "Show less" }).waitFor();
  assert.equal(await longMsg.locator(".body").evaluate((b) => b.classList.contains("collapsed") || b.scrollHeight > b.clientHeight + 2), false);
  await eli.page.screenshot({ path: path.join(ARTIFACTS, "features-formatting.png") });
  await axe(eli.page, "formatting and Show more");

  // Delete asks in the page's own dialog: Cancel keeps the message, Delete removes it.
  await send(dee.page, "delete me maybe");
  const victim = msg(dee.page, "delete me maybe");
  await victim.waitFor();
  await victim.hover();
  await victim.locator(".action.delete").click();
  await dee.page.waitForSelector("#confirm-dialog[open]");
  assert.equal(await dee.page.evaluate(() => document.activeElement.id), "confirm-cancel", "the safe choice has focus");
  await dee.page.screenshot({ path: path.join(ARTIFACTS, "features-confirm.png") });
  await axe(dee.page, "the confirm dialog");
  await dee.page.keyboard.press("Escape");
  await dee.page.waitForFunction(() => !document.querySelector("#confirm-dialog").open);
  assert.equal(await victim.locator(".tombstone").count(), 0, "Escape cancels");
  await victim.hover();
  await victim.locator(".action.delete").click();
  await dee.page.click("#confirm-ok");
  await msg(eli.page, "message deleted").waitFor();
  assert.deepEqual(dee.dialogs, [], "no browser dialog");

  // The unread line: eli leaves, dee writes twice, eli comes back to a "New" line there.
  await eli.page.evaluate((r) => (location.hash = r), other);
  await eli.page.waitForFunction((r) => document.querySelector("#room-name").textContent === `#${r}`, other);
  await send(dee.page, "while eli was away 1");
  await send(dee.page, "while eli was away 2");
  await msg(dee.page, "while eli was away 2").waitFor();
  await eli.page.click(`#room-list li[data-room="${room}"] button`);
  await msg(eli.page, "while eli was away 2").waitFor();
  const line = await eli.page.$eval("#message-list li.unread-marker", (li) => ({ next: li.nextElementSibling.querySelector(".body")?.textContent, text: li.textContent }));
  assert.deepEqual(line, { next: "while eli was away 1", text: "New since you were last here" });
  for (const u of [dee, eli]) {
    assert.deepEqual(u.errors, []);
    await u.context.close();
  }
});

test("search finds a message 60 back and opens it in context; a reply opens in its thread", async () => {
  const id = tag();
  const room = `search-${id}`;
  // History written from Node: the needle, a thread with a needle reply, then 60 more.
  const { channel } = await join(client(chat.url), `room:${room}`, { username: "writer" });
  const needle = await push(channel, "new_msg", { body: "the needle is in this haystack" });
  const parent = await push(channel, "new_msg", { body: "a thread about sewing" });
  await push(channel, "new_msg", { body: "a needle reply, in the thread", parent_id: parent.id });
  for (let i = 0; i < 60; i++) assert.equal((await push(channel, "new_msg", { body: `hay ${i}` })).status, "ok");

  const fay = await account(`fay${id}`, room);
  const { page } = fay;
  await msg(page, "hay 59").waitFor();
  assert.equal(await byId(page, needle.id).count(), 0, "not loaded yet");
  await page.fill("#search", "NEEDLE");
  await page.press("#search", "Enter");
  await page.waitForSelector("#search-panel:not([hidden])");
  await page.waitForFunction(() => document.querySelectorAll("#search-results button.result").length === 2);
  assert.match(await page.textContent("#search-status"), /2 messages match “NEEDLE”/);
  assert.deepEqual(await page.$$eval("#search-results mark", (ms) => ms.map((m) => m.textContent)), ["needle", "needle"]);
  await page.screenshot({ path: path.join(ARTIFACTS, "features-search.png") });
  await axe(page, "search results");

  // The older one: history loads back to it; it is in view, focused and flashed.
  await page.click(`#search-results button.result[data-id="${needle.id}"]`);
  await byId(page, needle.id).waitFor();
  await page.waitForFunction((id) => document.activeElement?.dataset?.id === String(id), needle.id);
  const shown = await byId(page, needle.id).evaluate((li) => {
    const r = li.getBoundingClientRect();
    const box = document.querySelector("#messages").getBoundingClientRect();
    return { inView: r.top >= box.top && r.bottom <= box.bottom, flash: li.classList.contains("flash"), before: li.previousElementSibling !== null };
  });
  assert.deepEqual(shown, { inView: true, flash: true, before: true });
  // The context is there: every top-level message from it to the newest (62).
  assert.equal(await page.locator("#message-list li.message").count(), 62);

  // The reply: its thread opens, with the reply focused.
  await page.fill("#search", "needle reply");
  await page.press("#search", "Enter");
  await page.waitForFunction(() => document.querySelectorAll("#search-results button.result").length === 1);
  assert.match(await page.textContent("#search-results"), /in a thread/);
  await page.click("#search-results button.result");
  await page.waitForSelector("#thread-panel:not([hidden])");
  await page.waitForFunction(() => document.activeElement?.closest?.("#thread-list") && document.activeElement.textContent.includes("a needle reply"));
  assert.deepEqual(fay.errors, []);
  await fay.context.close();
});

test("files dropped or pasted: a preview and a progress bar, then sent with the message", async () => {
  const id = tag();
  const room = `drop-${id}`;
  const gus = await account(`gus${id}`, room);
  const { page } = gus;
  // Every progress bar the page shows, recorded as it appears.
  await page.evaluate(() => {
    window.progressSeen = [];
    new MutationObserver(() => {
      for (const p of document.querySelectorAll("#staged progress")) {
        const label = p.getAttribute("aria-label");
        if (!window.progressSeen.includes(label)) window.progressSeen.push(label);
      }
    }).observe(document.querySelector("#staged"), { childList: true, subtree: true });
  });
  // A PNG dropped on the conversation: the drop zone while dragging, then a preview.
  await page.evaluate(async () => {
    const canvas = Object.assign(document.createElement("canvas"), { width: 200, height: 120 });
    canvas.getContext("2d").fillRect(0, 0, 200, 120);
    const blob = await new Promise((r) => canvas.toBlob(r, "image/png"));
    const data = new DataTransfer();
    data.items.add(new File([blob], "dropped.png", { type: "image/png" }));
    const target = document.querySelector("#messages");
    target.dispatchEvent(new DragEvent("dragenter", { bubbles: true, cancelable: true, dataTransfer: data }));
    window.zoneShown = !document.querySelector("#drop-zone").hidden;
    target.dispatchEvent(new DragEvent("drop", { bubbles: true, cancelable: true, dataTransfer: data }));
  });
  assert.equal(await page.evaluate(() => window.zoneShown), true, "the drop zone shows while dragging");
  assert.equal(await page.isHidden("#drop-zone"), true);
  const preview = await page.getAttribute("#staged .staged-file img.preview", "src");
  assert.match(preview, /^blob:/);
  // A text file pasted into the composer.
  await page.evaluate(() => {
    const data = new DataTransfer();
    data.items.add(new File(["pasted notes\n"], "pasted.txt", { type: "text/plain" }));
    document.querySelector("#body").dispatchEvent(new ClipboardEvent("paste", { bubbles: true, cancelable: true, clipboardData: data }));
  });
  await page.waitForFunction(() => document.querySelectorAll("#staged .staged-file").length === 2);
  await page.screenshot({ path: path.join(ARTIFACTS, "features-staged.png") });
  await axe(page, "files staged");
  await send(page, "two files");
  const sent = msg(page, "two files");
  await sent.locator(".attachment.image img").waitFor();
  assert.match(await sent.locator(".attachment.file").textContent(), /pasted\.txt/);
  assert.equal(await page.locator("#staged .staged-file").count(), 0);
  assert.deepEqual(await page.evaluate(() => window.progressSeen), ["Uploading dropped.png", "Uploading pasted.txt"]);
  assert.deepEqual(gus.errors, []);
  await gus.context.close();
});
