// The page's details and keyboard, in Chromium against the real chat app: the reaction
// picker's emoji are readable, a mention's toast leaves Send free and keeps "Open" on one
// line, file cards are not stretched to an image's height, a refused edit says why in the
// editor, upload refusals speak in sizes and type names, a deleted DM message stops being
// unread; rooms and the directory are Tab stops, a conversation is one Tab stop however
// long (arrows move between messages), and ↑ in the empty composer edits my last message.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { startChat } from "../lib/chat-server.js";
import { ARTIFACTS, launchBrowser, send } from "../lib/browser.js";

const PASSWORD = "correct horse battery";
const ENV = { REGISTER_BURST: "100", LOGIN_ADDRESS_BURST: "100", UPLOAD_MAX_BYTES: "3000000" };
let chat;
let browser;

before(async () => {
  chat = await startChat({ env: ENV });
  browser = await launchBrowser();
});

after(async () => {
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

const exactly = (text) => new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`);
const msg = (page, text) => page.locator("#message-list li.message:not(.pending)").filter({ has: page.locator(".body", { hasText: exactly(text) }) });
const shown = (page, text) => msg(page, text).waitFor();

/** WCAG contrast ratio of two CSS rgb() colours. */
function contrast(a, b) {
  const lum = (rgb) => {
    const [r, g, bl] = rgb.match(/[\d.]+/g).slice(0, 3).map((v) => {
      const c = Number(v) / 255;
      return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * bl;
  };
  const [hi, lo] = [lum(a), lum(b)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
}

/** A real PNG, drawn by the browser: `w` × `h`. */
const png = async (page, w, h) =>
  Buffer.from(
    await page.evaluate(
      ([w, h]) =>
        new Promise((resolve) => {
          const canvas = Object.assign(document.createElement("canvas"), { width: w, height: h });
          const g = canvas.getContext("2d");
          g.fillStyle = "#2a7";
          g.fillRect(0, 0, w, h);
          canvas.toBlob((blob) => blob.arrayBuffer().then((a) => resolve([...new Uint8Array(a)])), "image/png");
        }),
      [w, h],
    ),
  );

test("details: readable picker, toasts clear of Send, unstretched file cards, edit errors in the editor, readable upload refusals, deleted DMs not unread", async () => {
  const id = tag();
  const room = `details-${id}`;
  const ann = await account(`ann${id}`, room);
  const bob = await account(`bob${id}`, room);

  // The picker's six emoji have the page's ink, readable on the picker (not white on white).
  await send(bob.page, "pick an emoji");
  await shown(ann.page, "pick an emoji");
  await msg(ann.page, "pick an emoji").hover();
  await msg(ann.page, "pick an emoji").locator(".action.react").click();
  const picks = await ann.page.$$eval("#picker button.pick", (bs) =>
    bs.map((b) => ({ text: b.textContent, color: getComputedStyle(b).color, bg: getComputedStyle(document.querySelector("#picker")).backgroundColor })),
  );
  assert.equal(picks.length, 6);
  for (const p of picks) assert.ok(contrast(p.color, p.bg) >= 4.5, `${p.text}: ${p.color} on ${p.bg}`);
  await ann.page.keyboard.press("Escape");
  await ann.page.waitForSelector("#picker", { state: "detached" });

  // A mention from another room: the toast leaves the composer's Send free, "Open" is one line.
  await bob.page.evaluate((r) => (location.hash = r), `elsewhere-${id}`);
  await bob.page.waitForFunction((r) => document.querySelector("#room-name").textContent === `#${r}`, `elsewhere-${id}`);
  await send(bob.page, `@ann${id} could you look at the release checklist when you have a minute? It is long.`);
  const toast = ann.page.locator(".toast", { hasText: "mentioned you" });
  await toast.waitFor();
  const [toastBox, sendBox] = [await toast.boundingBox(), await ann.page.locator("#composer button[type=submit]").boundingBox()];
  const overlap = !(toastBox.x + toastBox.width <= sendBox.x || sendBox.x + sendBox.width <= toastBox.x || toastBox.y + toastBox.height <= sendBox.y || sendBox.y + sendBox.height <= toastBox.y);
  assert.equal(overlap, false, `toast ${JSON.stringify(toastBox)} over Send ${JSON.stringify(sendBox)}`);
  const openLines = await toast.locator("button", { hasText: "Open" }).evaluate((b) => {
    const range = document.createRange();
    range.selectNodeContents(b);
    return new Set([...range.getClientRects()].map((r) => Math.round(r.top))).size;
  });
  assert.equal(openLines, 1, "Open on one line");
  await ann.page.screenshot({ path: path.join(ARTIFACTS, "details-toast.png") });
  await toast.locator('button[aria-label="Dismiss"]').click();

  // An image and a text file side by side: the file's card keeps its own height.
  await ann.page.setInputFiles("#attach", [
    { name: "chart.png", mimeType: "image/png", buffer: await png(ann.page, 160, 120) },
    { name: "notes.txt", mimeType: "text/plain", buffer: Buffer.from("plain notes\n") },
  ]);
  await send(ann.page, "files side by side");
  await shown(ann.page, "files side by side");
  const cards = msg(ann.page, "files side by side").locator(".attachment");
  await cards.locator("img").evaluate((img) => img.complete || new Promise((r) => (img.onload = r)));
  const [image, file] = [await cards.nth(0).boundingBox(), await cards.nth(1).boundingBox()];
  assert.ok(image.height >= 100 && file.height < 70, `image ${image.height}px, file card ${file.height}px`);

  // A refused edit: the reason under the text being edited, none under the composer.
  await send(ann.page, "a short message");
  await shown(ann.page, "a short message");
  const shortId = await msg(ann.page, "a short message").getAttribute("data-id");
  await ann.page.focus("#body");
  await ann.page.keyboard.press("ArrowUp");
  const editor = ann.page.locator(`#message-list li[data-id="${shortId}"] form.editor`);
  await editor.waitFor();
  await editor.locator("textarea").fill("x".repeat(4100));
  await editor.locator("textarea").press("Enter");
  await editor.locator(".edit-error", { hasText: /Not saved: 4100 characters/ }).waitFor();
  assert.equal(await ann.page.textContent("#send-error"), "");
  await editor.locator("textarea").press("Escape");
  await editor.waitFor({ state: "detached" });
  assert.equal(await ann.page.locator(".edit-error").count(), 0);

  // Upload refusals in words: a size, not a byte count; a type's name, not a MIME type.
  await ann.page.setInputFiles("#attach", { name: "big.txt", mimeType: "text/plain", buffer: Buffer.alloc(3200000, "a") });
  await ann.page.waitForFunction(() => /Upload refused: big\.txt/.test(document.querySelector("#send-error").textContent));
  const tooBig = await ann.page.textContent("#send-error");
  assert.match(tooBig, /2\.9 MB/);
  assert.doesNotMatch(tooBig, /\d{4,} bytes/);
  const bmp = Buffer.concat([Buffer.from("BM"), Buffer.alloc(64)]);
  await ann.page.setInputFiles("#attach", { name: "scan.bmp", mimeType: "image/bmp", buffer: bmp });
  await ann.page.waitForFunction(() => /Upload refused: scan\.bmp/.test(document.querySelector("#send-error").textContent));
  const badType = await ann.page.textContent("#send-error");
  assert.match(badType, /BMP files are not accepted/);
  assert.doesNotMatch(badType, /image\/bmp/);

  // A DM deleted before it was read stops being unread in the other's sidebar.
  await bob.page.evaluate((r) => (location.hash = r), room);
  await bob.page.waitForFunction((r) => document.querySelector("#room-name").textContent === `#${r}`, room);
  await bob.page.click(`#presence li[data-user="ann${id}"] button.dm`);
  await bob.page.waitForFunction(() => document.querySelector("#room-name").textContent.startsWith("@"));
  await send(bob.page, "oops, wrong person");
  await shown(bob.page, "oops, wrong person");
  const dmBadge = () => ann.page.evaluate(() => document.querySelector('#room-list li[data-room^="dm."] .badge')?.textContent ?? "");
  await ann.page.waitForFunction(() => document.querySelector('#room-list li[data-room^="dm."] .badge')?.textContent === "1");
  await msg(bob.page, "oops, wrong person").hover();
  await msg(bob.page, "oops, wrong person").locator(".action.delete").click();
  await bob.page.click("#confirm-ok");
  await bob.page.locator("#message-list .tombstone").waitFor();
  await ann.page.waitForFunction(() => !document.querySelector('#room-list li[data-room^="dm."] .badge'));
  assert.equal(await dmBadge(), "");

  for (const u of [ann, bob]) {
    assert.deepEqual(u.errors, []);
    assert.deepEqual(u.dialogs, [], "no browser dialog");
    await u.context.close();
  }
});

test("keyboard: rooms and the directory are Tab stops, a conversation is one Tab stop with arrows inside, ↑ edits my last message", async () => {
  const id = tag();
  const room = `keys-${id}`;
  const cy = await account(`cy${id}`, room);
  const { page } = cy;
  for (let i = 0; i < 6; i++) await send(page, `line ${i}`);
  await shown(page, "line 5");

  // From the account row, Tab reaches my rooms and then the public directory.
  await page.focus("#logout");
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.closest("#room-list li")?.dataset.room), room);
  let inDirectory = false;
  for (let i = 0; i < 8 && !inDirectory; i++) {
    await page.keyboard.press("Tab");
    inDirectory = await page.evaluate(() => document.activeElement.closest("#directory") !== null);
  }
  assert.ok(inDirectory, "the directory is reachable with Tab");

  // The message list: one message and its own controls in the Tab order, whatever its length.
  await page.focus("#messages");
  let stops = 0;
  for (;;) {
    await page.keyboard.press("Tab");
    const inList = await page.evaluate(() => document.activeElement.closest("#message-list") !== null);
    if (!inList) break;
    stops += 1;
    assert.ok(stops < 20, "Tab leaves the list");
  }
  assert.ok(stops >= 1 && stops <= 5, `Tab stops in a list of 6 messages: ${stops}`);
  // ↑ from the current message goes to the one before, which becomes the Tab stop.
  await page.focus("#message-list li.message[tabindex='0']");
  assert.equal(await page.evaluate(() => document.activeElement.querySelector(".body").textContent), "line 5");
  await page.keyboard.press("ArrowUp");
  assert.equal(await page.evaluate(() => document.activeElement.querySelector(".body").textContent), "line 4");
  assert.deepEqual(
    await page.$$eval("#message-list li.message[tabindex='0'] .body", (b) => b.map((e) => e.textContent)),
    ["line 4"],
  );
  await page.keyboard.press("Escape");
  assert.equal(await page.evaluate(() => document.activeElement.id), "body");

  // ↑ in the empty composer edits my last message; Enter saves; focus comes back.
  await page.keyboard.press("ArrowUp");
  await page.waitForFunction(() => document.activeElement.matches(".editor textarea"));
  assert.equal(await page.evaluate(() => document.activeElement.value), "line 5");
  await page.keyboard.press("End");
  await page.keyboard.type(" (fixed)");
  await page.keyboard.press("Enter");
  await shown(page, "line 5 (fixed)");
  await page.waitForFunction(() => document.activeElement.id === "body");
  assert.deepEqual(cy.errors, []);
  await cy.context.close();
});
