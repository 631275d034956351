// The page's layout at 1440, 1024 and 390 px wide, light and dark: who is online sits
// behind the header's count (a collapsible pane, open beside the room on wide screens),
// a thread takes the pane beside the room from 1200 px and overlays it below, phones keep
// rooms behind a menu (which counts pending invitations), nothing is cut off, and axe-core
// finds nothing serious. The room has a guest's message (marked) and ann a pending
// invitation. The screenshots (js-client/artifacts/page-<width>-<scheme>.png) are what the
// page looks like.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { createRequire } from "node:module";
import { startChat } from "../lib/chat-server.js";
import { ARTIFACTS, launchBrowser, joinAsGuest, send } from "../lib/browser.js";
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

async function account(name, room, viewport) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(`${chat.url}/#${room}`);
  await page.fill("#acct-username", name);
  await page.fill("#acct-password", PASSWORD);
  await page.click("#register-button");
  await page.waitForSelector("#sidebar:not([hidden])");
  await page.waitForFunction((r) => document.querySelector("#room-name").textContent === `#${r}`, room);
  return { context, page, errors };
}

const shown = (page, text) =>
  page.waitForFunction((t) => [...document.querySelectorAll("#message-list li.message:not(.pending) .body")].some((e) => e.textContent === t), text);

async function axe(page, label) {
  if (!(await page.evaluate(() => Boolean(window.axe)))) await page.addScriptTag({ path: AXE });
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, { resultTypes: ["violations"] });
    return result.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(" ")).slice(0, 5) }));
  });
  const bad = violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  assert.deepEqual(bad, [], `${label}: axe-core found serious or critical violations`);
}

/**
 * Every visible control (button, input, textarea, link) lies inside the window and is not
 * covered or clipped: the point at its middle belongs to it (a pane opened over the room
 * may cover the room). Returns the ones that fail.
 */
const cutOff = (page) =>
  page.evaluate(() => {
    const bad = [];
    for (const c of document.querySelectorAll("button, input:not([type=file]), textarea, a[href]")) {
      const r = c.getBoundingClientRect();
      const style = getComputedStyle(c);
      if (r.width === 0 || r.height === 0 || style.visibility === "hidden" || c.closest(".actions, .visually-hidden")) continue;
      const x = r.left + r.width / 2;
      const y = r.top + r.height / 2;
      const inside = r.left >= -1 && r.right <= innerWidth + 1 && r.top >= -1 && r.bottom <= innerHeight + 1;
      // A control scrolled out of its own list is fine; one cut by the layout is not.
      const scroller = c.closest(".messages, .thread-scroll, .search-results, .sidebar, .people ul");
      if (scroller) {
        const s = scroller.getBoundingClientRect();
        if (y < s.top || y > s.bottom) continue;
      }
      const hit = document.elementFromPoint(x, y);
      // Under a pane the person opened over the room (below 1200 px): covered on purpose.
      if (hit?.closest(".side-panel") && !c.closest(".side-panel")) continue;
      if (!inside || !(hit === c || c.contains(hit))) bad.push(`${c.id || c.className || c.tagName} ${c.textContent.trim().slice(0, 20)} @${Math.round(x)},${Math.round(y)}`);
    }
    return bad;
  });

const box = (page, selector) => page.$eval(selector, (e) => e.getBoundingClientRect().toJSON());

test("layout at 1440, 1024 and 390 px, light and dark: people behind the count, thread beside or over the room, rooms behind a menu on phones", async () => {
  const id = tag();
  const room = `looks-${id}`;
  const ann = await account(`Ann${id}`, room, { width: 1440, height: 900 });
  const raj = await account(`raj${id}`, room, { width: 1440, height: 900 });
  const { page } = ann;
  await send(page, "Morning! The deploy went out at 9 — notes at https://example.com/notes");
  await send(page, "Ping me if anything looks *odd*, especially `api/orders`.");
  await send(raj.page, `@Ann${id} thanks, checking the dashboards now`);
  await send(raj.page, "> deploy went out at 9\nAll green so far 🎉");
  await shown(page, "deploy went out at 9All green so far 🎉");
  // A guest drops by: the message is marked as a guest's.
  const gus = await joinAsGuest(browser, chat.url, `Gus${id}`, room);
  await send(gus.page, "Hi all, visiting from the docs team 👋");
  await shown(page, "Hi all, visiting from the docs team 👋");
  assert.equal(await page.locator("#message-list li.message.guest .guest-badge").textContent(), "guest");
  // raj invites ann to a private room: pending in her sidebar until she answers.
  const token = await raj.page.evaluate(() => JSON.parse(localStorage.getItem("phx-chat:session")));
  const rajMe = await join(client(chat.url, { token: token.token }), `user:${token.user.id}`);
  assert.equal((await push(rajMe.channel, "create_private", { room: `ops-${id}` })).status, "ok");
  const announced = page.locator(".toast", { hasText: "invited you" });
  const shownToast = announced.waitFor();
  assert.equal((await push(rajMe.channel, "invite", { room: `ops-${id}`, username: `Ann${id}` })).status, "ok");
  await shownToast;
  // Dismissed at once (it would go by itself after 8 s), so the layout checks see the page.
  await announced.locator('button[aria-label="Dismiss"]').click();
  await page.locator(`#invitation-list li[data-room="ops-${id}"]`).waitFor();
  const first = page.locator("#message-list li.message", { hasText: "Morning!" });
  await first.hover();
  await first.locator(".action.react").click();
  await page.click('#picker button[aria-label="React with 🎉"]');
  await page.locator("#message-list .reaction").waitFor();

  // 1440: people beside the room, open by themselves; the room keeps most of the width.
  await page.waitForSelector("#people-panel:not([hidden])");
  assert.equal(await page.getAttribute("#people-button", "aria-expanded"), "true");
  const conversation = await box(page, ".conversation");
  const people = await box(page, "#people-panel");
  assert.ok(conversation.width >= 700 && people.left >= conversation.right - 1, JSON.stringify({ conversation, people }));
  assert.deepEqual(await cutOff(page), []);
  await page.screenshot({ path: path.join(ARTIFACTS, "page-1440-light.png") });
  await axe(page, "1440 light");
  // The count collapses the list; the thread then takes the pane, beside the room.
  await page.click("#people-button");
  await page.waitForSelector("#people-panel", { state: "hidden" });
  await first.hover();
  await first.locator(".action.reply").click();
  await page.waitForSelector("#thread-panel:not([hidden])");
  await page.fill("#thread-body", "Rolled back the cache flag, all good.");
  await page.press("#thread-body", "Enter");
  await page.locator("#thread-list .body", { hasText: "Rolled back" }).waitFor();
  const wide = { conversation: await box(page, ".conversation"), thread: await box(page, "#thread-panel") };
  assert.ok(wide.thread.left >= wide.conversation.right - 1, `beside: ${JSON.stringify(wide)}`);
  await page.emulateMedia({ colorScheme: "dark" });
  await page.screenshot({ path: path.join(ARTIFACTS, "page-1440-dark.png") });
  await axe(page, "1440 dark (thread)");

  // 1024: the thread overlays the room, which keeps its width; nothing is cut off, and
  // the composer's placeholder fits on one line.
  await page.setViewportSize({ width: 1024, height: 768 });
  const mid = { conversation: await box(page, ".conversation"), thread: await box(page, "#thread-panel") };
  assert.ok(mid.conversation.width >= 700, `the room keeps its width: ${JSON.stringify(mid)}`);
  assert.ok(mid.thread.left < mid.conversation.right && Math.abs(mid.thread.right - 1024) < 2, `over the room: ${JSON.stringify(mid)}`);
  const composer = await page.$eval("#body", (t) => ({ h: t.getBoundingClientRect().height, line: parseFloat(getComputedStyle(t).lineHeight), w: t.getBoundingClientRect().width }));
  assert.ok(composer.h < composer.line * 2.5 && composer.w > 300, `one line: ${JSON.stringify(composer)}`);
  assert.deepEqual(await cutOff(page), []);
  await page.screenshot({ path: path.join(ARTIFACTS, "page-1024-dark.png") });
  await axe(page, "1024 dark (thread over the room)");
  await page.keyboard.press("Escape");
  await page.waitForSelector("#thread-panel", { state: "hidden" });
  await page.emulateMedia({ colorScheme: "light" });
  assert.deepEqual(await cutOff(page), []);
  await page.screenshot({ path: path.join(ARTIFACTS, "page-1024-light.png") });
  await axe(page, "1024 light");

  // 390: header and room header take little height; rooms and people behind buttons.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForSelector("#sidebar", { state: "hidden" });
  const chrome = await page.evaluate(() => document.querySelector("#messages").getBoundingClientRect().top);
  assert.ok(chrome < 844 * 0.15, `header and room header: ${chrome}px of 844`);
  assert.equal(await page.isHidden("#people-panel"), true);
  assert.equal(await page.evaluate(() => document.documentElement.scrollWidth > innerWidth), false);
  assert.deepEqual(await cutOff(page), []);
  await page.screenshot({ path: path.join(ARTIFACTS, "page-390-light.png") });
  await axe(page, "390 light");
  await page.click("#menu-button");
  await page.waitForFunction(() => document.querySelector("#sidebar").getBoundingClientRect().left >= 0);
  assert.equal(await page.evaluate(() => document.activeElement.closest("#sidebar") !== null), true, "focus goes into the drawer");
  assert.equal(await page.getAttribute("#menu-button", "aria-label"), "Rooms (1 invitation)");
  await page.emulateMedia({ colorScheme: "dark" });
  await page.screenshot({ path: path.join(ARTIFACTS, "page-390-dark-rooms.png") });
  await axe(page, "390 dark, the rooms drawer with an invitation");
  await page.keyboard.press("Escape");
  await page.waitForSelector("#sidebar", { state: "hidden" });
  await page.click("#people-button");
  await page.waitForSelector("#people-panel:not([hidden])");
  assert.deepEqual((await box(page, "#people-panel")).width, 390);
  await page.keyboard.press("Escape");
  await page.waitForSelector("#people-panel", { state: "hidden" });
  await page.screenshot({ path: path.join(ARTIFACTS, "page-390-dark.png") });
  await axe(page, "390 dark");
  assert.deepEqual(ann.errors, []);
  assert.deepEqual(raj.errors, []);
  assert.deepEqual(gus.errors, []);
  await gus.context.close();
  await ann.context.close();
  await raj.context.close();
});
