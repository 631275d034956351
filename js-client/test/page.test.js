// The chat page's features in headless Chromium, against the real chat app: grouping and
// day separators, safe links, mentions, the growing input and the length limit, the
// "new messages" marker, typing cleared by the message, rejoin on reload, the outage
// banner and automatic re-send across a server restart, dark mode, the phone layout,
// reactions, threads, edits, deletes, uploads, and axe-core (no serious or critical
// violation, light and dark). Screenshots go to js-client/artifacts/.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { createRequire } from "node:module";
import { startChat } from "../lib/chat-server.js";
import { ARTIFACTS, launchBrowser, joinAsGuest, send } from "../lib/browser.js";
import { cutProxy } from "../lib/cut-proxy.js";
import { client, disconnectAll, join, push } from "../lib/channel.js";

const AXE = createRequire(import.meta.url).resolve("axe-core/axe.min.js");
const PASSWORD = "correct horse battery";
// PHX_HOST: pages served through the test's cut-able proxy (another port) may connect too.
const ENV = { REGISTER_BURST: "100", LOGIN_ADDRESS_BURST: "100", PHX_HOST: "127.0.0.1" };
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

const guest = (name, room, viewport) => joinAsGuest(browser, chat.url, name, room, viewport);
const tag = () => `${Date.now().toString(36)}${Math.floor(Math.random() * 1e4)}`;

/** Waits until a message with this exact body is shown. */
const shown = (page, text) =>
  page.waitForFunction((t) => [...document.querySelectorAll("#message-list .body")].some((e) => e.textContent === t), text);
const bodies = (page) => page.$$eval("#message-list .body", (els) => els.map((e) => e.textContent));
const exactly = (text) => new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`);
/** The message (li) whose body is exactly `text`. */
const msg = (page, text) => page.locator("#message-list li.message").filter({ has: page.locator(".body", { hasText: exactly(text) }) });

/** Sends `n` messages quickly (the composer, without waiting for each). */
async function burst(page, prefix, n) {
  await page.evaluate(
    ({ prefix, n }) => {
      for (let i = 0; i < n; i++) {
        document.querySelector("#body").value = `${prefix} ${i}`;
        document.querySelector("#composer").requestSubmit();
      }
    },
    { prefix, n },
  );
  await shown(page, `${prefix} ${n - 1}`);
}

/** Closes a user's browser context, after checking its page threw nothing. */
async function done(user) {
  assert.deepEqual(user.errors, [], "no uncaught exception in the page");
  await user.context.close();
}

async function axe(page, label) {
  await page.addScriptTag({ path: AXE });
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, { resultTypes: ["violations"] });
    return result.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(" ")).slice(0, 5) }));
  });
  const bad = violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  assert.deepEqual(bad, [], `${label}: axe-core found serious or critical violations`);
}

test("a conversation: empty state, grouping, separators, avatars, safe links, mentions, typing cleared by the message", async () => {
  const room = `conv-${tag()}`;
  const ada = await guest("Ada Lovelace", room);
  await ada.page.waitForSelector("#empty-state:not([hidden])");
  assert.match(await ada.page.textContent("#empty-state"), /No messages here yet/);

  const bob = await guest("bob", room);
  await send(ada.page, "first");
  await shown(ada.page, "first");
  assert.equal(await ada.page.isHidden("#empty-state"), true);
  await send(ada.page, "second");
  await send(ada.page, "third");
  await shown(bob.page, "third");

  // One name and avatar for Ada's three messages, one day separator saying Today.
  const rows = await bob.page.$$eval("#message-list > li", (lis) =>
    lis.map((li) => ({ cls: li.className, who: li.querySelector(".who")?.textContent ?? null, avatar: li.querySelector(".avatar")?.textContent ?? null })),
  );
  assert.deepEqual(rows.map((r) => r.cls.split(" ")[0]), ["day", "message", "message", "message"]);
  assert.equal(await bob.page.textContent("#message-list li.day"), "Today");
  assert.deepEqual(rows.slice(1).map((r) => r.who), ["Ada Lovelace", null, null]);
  assert.equal(rows[1].avatar, "AL");
  const colour = await bob.page.$eval(".avatar", (a) => getComputedStyle(a).backgroundColor);
  assert.match(colour, /^rgb/);

  // bob types, then sends: the indicator goes as soon as his message arrives, not seconds later.
  await bob.page.type("#body", "look at https://example.com/a?b=1. and javascript:alert(1) @Ada");
  await ada.page.waitForFunction(() => document.querySelector("#typing").textContent === "bob is typing…");
  await bob.page.press("#body", "Enter");
  const text = "look at https://example.com/a?b=1. and javascript:alert(1) @Ada";
  await shown(ada.page, text);
  assert.equal(await ada.page.textContent("#typing"), "", "typing cleared with the message");
  // Screen readers hear it through the polite live region.
  assert.equal(await ada.page.textContent("#announcer"), `bob: ${text}`);
  assert.equal(await ada.page.getAttribute("#announcer", "aria-live"), "polite");

  // A new author starts a new group; the link is an anchor, javascript: is text.
  const links = await msg(ada.page, text).locator("a").evaluateAll((as) => as.map((a) => ({ href: a.href, rel: a.rel, target: a.target, text: a.textContent })));
  assert.deepEqual(links, [{ href: "https://example.com/a?b=1", rel: "noopener noreferrer", target: "_blank", text: "https://example.com/a?b=1" }]);
  assert.equal(await msg(ada.page, text).evaluate((li) => li.classList.contains("grouped")), false);
  assert.equal(await msg(ada.page, text).locator(".mention").textContent(), "@Ada");
  await done(ada);
  await done(bob);
});

test("the composer: grows to about five lines, Shift+Enter is a new line, the limit is shown and enforced", async () => {
  const room = `composer-${tag()}`;
  const { page, context } = await guest("cy", room);
  const height = () => page.$eval("#body", (t) => t.getBoundingClientRect().height);
  const one = await height();
  await page.focus("#body");
  await page.keyboard.type("line 1");
  await page.keyboard.press("Shift+Enter");
  await page.keyboard.type("line 2");
  await page.keyboard.press("Shift+Enter");
  await page.keyboard.type("line 3");
  const three = await height();
  assert.ok(three > one * 1.5, `grows: ${one} → ${three}`);
  assert.equal(await page.$$eval("#message-list .body", (b) => b.length), 0, "Shift+Enter did not send");
  await page.fill("#body", Array.from({ length: 20 }, (_, i) => `l${i}`).join("\n"));
  await page.dispatchEvent("#body", "input");
  const capped = await height();
  const lineHeight = await page.$eval("#body", (t) => parseFloat(getComputedStyle(t).lineHeight));
  assert.ok(capped > three && capped < lineHeight * 8, `capped near five lines: ${capped}px, line ${lineHeight}px`);

  // The counter appears near the limit; over it, Enter is refused with a visible reason and
  // the text stays (nothing cut, nothing sent).
  await page.fill("#body", "x".repeat(3600));
  await page.waitForFunction(() => document.querySelector("#counter").textContent === "3600 / 4000");
  const long = "y".repeat(4010);
  await page.fill("#body", long);
  await page.press("#body", "Enter");
  await page.waitForFunction(() => /over the limit/.test(document.querySelector("#send-error").textContent));
  assert.match(await page.textContent("#counter"), /4010 \/ 4000/);
  assert.equal((await page.inputValue("#body")).length, 4010);
  assert.equal(await page.$$eval("#message-list .body", (b) => b.length), 0);
  await page.fill("#body", "short again");
  await page.press("#body", "Enter");
  await shown(page, "short again");
  assert.equal(await page.textContent("#send-error"), "");
  await context.close();
});

test("scrolled up while messages arrive: a New messages line and a jump button", async () => {
  const room = `unseen-${tag()}`;
  const writer = await guest("writer", room);
  await burst(writer.page, "filler", 30);
  const reader = await guest("reader", room, { width: 900, height: 480 });
  await shown(reader.page, "filler 29");
  assert.equal(await reader.page.isHidden("#jump"), true);
  await reader.page.$eval("#messages", (box) => (box.scrollTop = 0));
  await reader.page.waitForFunction(() => document.querySelector("#messages").scrollTop === 0);
  await send(writer.page, "while you were away");
  await shown(reader.page, "while you were away");
  await reader.page.waitForSelector("#jump:not([hidden])");
  assert.equal(await reader.page.textContent("#jump"), "↓ 1 new message");
  const next = await reader.page.$eval("#message-list li.unseen-marker", (li) => li.nextElementSibling.querySelector(".body").textContent);
  assert.equal(next, "while you were away");
  await reader.page.click("#jump");
  await reader.page.waitForSelector("#jump", { state: "hidden" });
  const atBottom = await reader.page.$eval("#messages", (b) => b.scrollHeight - b.scrollTop - b.clientHeight < 5);
  assert.equal(atBottom, true);
  await done(writer);
  await done(reader);
});

test("reload rejoins; an outage shows a banner, keeps what is typed, and sends it once when back", async () => {
  const room = `outage-${tag()}`;
  const port = Number(new URL(chat.url).port);
  const dan = await guest("dan", room);
  const eve = await guest("eve", room);
  await send(dan.page, "before the outage");
  await shown(eve.page, "before the outage");

  // A reload lands back in the room, without the join form.
  await dan.page.reload();
  await dan.page.waitForSelector("#chat:not([hidden])");
  assert.equal(await dan.page.isHidden("#login"), true);
  await shown(dan.page, "before the outage");
  await dan.page.waitForFunction(() => document.querySelector("#status").textContent === "online");
  // Same browser, same author (the guest_key kept in localStorage): dan may still edit it.
  assert.match(await dan.page.evaluate(() => localStorage.getItem("phx-chat:guest-key")), /^[A-Za-z0-9_-]{32,128}$/);
  await msg(dan.page, "before the outage").hover();
  await msg(dan.page, "before the outage").locator(".action.edit").click();
  await dan.page.fill(".editor textarea", "before the outage!");
  await dan.page.press(".editor textarea", "Enter");
  await msg(eve.page, "before the outage!").locator(".edited").waitFor();

  // The server goes away: a banner, a greyed presence list; a message is kept as pending.
  // Waited for together, not read once: while the server drains, phoenix.js may reconnect
  // for a moment before the port closes, and the greying fades in with a transition.
  await chat.stop();
  // Restarted whatever happens here, so a failure stays this test's and not every later one's.
  try {
    await dan.page.waitForFunction(
      () =>
        !document.querySelector("#connection-banner").hidden &&
        document.querySelector("#chat").classList.contains("disconnected") &&
        Number(getComputedStyle(document.querySelector(".people")).opacity) < 1,
      null,
      { timeout: 30000 },
    );
    await send(dan.page, "written during the outage");
    await dan.page.waitForSelector("#message-list li.pending.waiting");
    await dan.page.screenshot({ path: path.join(ARTIFACTS, "page-outage.png") });
  } finally {
    // Back on the same port: the page rejoins by itself and sends the message, exactly once.
    chat = await startChat({ port, env: ENV });
  }
  await dan.page.waitForSelector("#connection-banner", { state: "hidden", timeout: 30000 });
  await dan.page.waitForFunction(() => !document.querySelector("#message-list li.pending"), null, { timeout: 20000 });
  await shown(eve.page, "written during the outage");
  await shown(dan.page, "written during the outage");
  const count = async (page) => (await bodies(page)).filter((b) => b === "written during the outage").length;
  // A moment for a duplicate to show up, if one were coming (it must not).
  await send(eve.page, "after");
  await shown(dan.page, "after");
  assert.equal(await count(dan.page), 1);
  assert.equal(await count(eve.page), 1);
  assert.equal(await dan.page.isHidden("#connection-banner"), true);
  // Leave goes back to the form, and a reload then stays there.
  await dan.page.click("#leave-guest");
  await dan.page.waitForSelector("#login:not([hidden])");
  await dan.page.reload();
  await dan.page.waitForSelector("#login:not([hidden])");
  assert.equal(await dan.page.isHidden("#chat"), true);
  await done(dan);
  await done(eve);
});

test("a dropped link: what others wrote meanwhile is replayed (after_id), what I wrote is sent once", async () => {
  const room = `cut-${tag()}`;
  const proxy = await cutProxy({ port: Number(new URL(chat.url).port) });
  const fay = await joinAsGuest(browser, proxy.url, "fay", room);
  const gus = await guest("gus", room);
  await send(gus.page, "one");
  await shown(fay.page, "one");

  // The page's joins, as sent (phoenix.js's JSON array frames).
  const joins = [];
  fay.page.on("websocket", (ws) =>
    ws.on("framesent", ({ payload }) => {
      const frame = JSON.parse(String(payload));
      if (frame[3] === "phx_join" && frame[2] === `room:${room}`) joins.push(frame[4]);
    }),
  );
  const oneId = Number(await msg(fay.page, "one").getAttribute("data-id"));
  proxy.cut();
  await fay.page.waitForSelector("#connection-banner:not([hidden])");
  await send(gus.page, "two (fay is away)");
  await send(gus.page, "three (fay is away)");
  await shown(gus.page, "three (fay is away)");
  await send(fay.page, "fay wrote this offline");
  await fay.page.waitForSelector("#message-list li.pending.waiting");

  proxy.restore();
  await shown(fay.page, "three (fay is away)");
  await shown(gus.page, "fay wrote this offline");
  await fay.page.waitForFunction(() => !document.querySelector("#message-list li.pending"));
  await fay.page.waitForSelector("#connection-banner", { state: "hidden" });
  await send(gus.page, "four");
  await shown(fay.page, "four");
  // What came after the last id seen, and what changed after the last change seen (here
  // nothing was changed: the sequence is the last message's).
  assert.deepEqual(joins.at(-1), { username: "fay", after_id: oneId, after_seq: oneId }, "the rejoin asks for what came after the last id and change seen");
  const expected = ["one", "two (fay is away)", "three (fay is away)", "fay wrote this offline", "four"];
  assert.deepEqual(await bodies(fay.page), expected, "nothing lost, nothing twice, in id order");
  assert.deepEqual(await bodies(gus.page), expected);
  await done(fay);
  await done(gus);
  await proxy.close();
});

test("a long absence: past 200 missed messages the rejoin replaces the list (gap)", async () => {
  const room = `gap-${tag()}`;
  const proxy = await cutProxy({ port: Number(new URL(chat.url).port) });
  const jo = await joinAsGuest(browser, proxy.url, "jo", room);
  // Three writers from Node (phoenix.js), each under the per-socket rate limit's burst.
  const writers = await Promise.all(["kai", "lou", "max"].map((username) => join(client(chat.url), `room:${room}`, { username })));
  assert.ok(writers.every((w) => w.ok));
  assert.equal((await push(writers[0].channel, "new_msg", { body: "old news" })).status, "ok");
  await shown(jo.page, "old news");
  proxy.cut();
  await jo.page.waitForSelector("#connection-banner:not([hidden])");
  const sent = await Promise.all(
    writers.map(async ({ channel }, w) => {
      const replies = [];
      for (let i = 0; i < 67; i++) replies.push(await push(channel, "new_msg", { body: `missed ${w}.${i}` }));
      return replies;
    }),
  );
  assert.ok(sent.flat().every((r) => r.status === "ok"), "201 messages stored");
  assert.equal((await push(writers[0].channel, "new_msg", { body: "the latest" })).status, "ok");
  proxy.restore();
  await shown(jo.page, "the latest");
  await jo.page.waitForSelector("#connection-banner", { state: "hidden" });
  const seen = await bodies(jo.page);
  assert.equal(seen.length, 50, "the latest page only");
  assert.equal(seen.includes("old news"), false, "no list with a hole in it");
  assert.equal(seen.at(-1), "the latest");
  await done(jo);
  await proxy.close();
});

test("looks: desktop and dark screenshots, dark mode follows the system, axe-core finds nothing serious", async () => {
  const room = `looks-${tag()}`;
  const ann = await guest("Ann Smith", room, { width: 1200, height: 760 });
  const raj = await guest("raj", room);
  await send(ann.page, "Morning! The deploy went out at 9 — notes at https://example.com/notes");
  await send(ann.page, "Ping me if anything looks odd.");
  await send(raj.page, "@Ann Smith thanks, checking the dashboards now");
  await send(raj.page, "All green so far 🎉");
  await shown(ann.page, "All green so far 🎉");
  await ann.page.screenshot({ path: path.join(ARTIFACTS, "page-desktop.png") });
  // The favicon: linked, served as SVG.
  const icon = await ann.page.getAttribute('link[rel="icon"]', "href");
  const served = await ann.page.request.get(new URL(icon, chat.url).href);
  assert.equal(served.status(), 200);
  assert.match(served.headers()["content-type"], /^image\/svg\+xml/);
  await axe(ann.page, "light");

  await ann.page.emulateMedia({ colorScheme: "dark" });
  const [background, ink, card] = await ann.page.evaluate(() => [
    getComputedStyle(document.documentElement).backgroundColor,
    getComputedStyle(document.querySelector(".who")).color,
    getComputedStyle(document.querySelector(".people")).backgroundColor,
  ]);
  const sum = (rgb) => rgb.match(/\d+/g).slice(0, 3).reduce((a, b) => a + Number(b), 0);
  assert.ok(sum(background) < 150 && sum(card) < 150, `dark backgrounds: ${background}, ${card}`);
  assert.ok(sum(ink) > 550, `light text: ${ink}`);
  await ann.page.screenshot({ path: path.join(ARTIFACTS, "page-dark.png") });
  await axe(ann.page, "dark");
  await done(ann);
  await done(raj);
});

test("phone: after a reload the newest message is fully visible above the composer", async () => {
  const room = `phone-${tag()}`;
  const writer = await guest("writer", room);
  await burst(writer.page, "a fairly long line of text so that messages wrap on a narrow phone screen, number", 40);
  const phone = await guest("pat", room, { width: 390, height: 844 });
  const last = "a fairly long line of text so that messages wrap on a narrow phone screen, number 39";
  await shown(phone.page, last);
  await phone.page.reload();
  await shown(phone.page, last);
  await phone.page.waitForFunction(() => document.querySelector("#status").textContent === "online" && document.querySelectorAll("#presence li").length === 2);
  // What the user sees: the layout after the next frames are painted (resize observers run).
  await phone.page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  const fit = await phone.page.evaluate(() => {
    const items = document.querySelectorAll("#message-list li.message");
    const m = items[items.length - 1].getBoundingClientRect();
    const box = document.querySelector("#messages").getBoundingClientRect();
    return { top: m.top, bottom: m.bottom, boxTop: box.top, boxBottom: box.bottom, vh: window.innerHeight };
  });
  assert.ok(fit.top >= fit.boxTop && fit.bottom <= fit.boxBottom + 1 && fit.boxBottom <= fit.vh, JSON.stringify(fit));
  assert.equal(await phone.page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth), false);
  await phone.page.screenshot({ path: path.join(ARTIFACTS, "page-phone.png") });
  await axe(phone.page, "phone");
  await done(writer);
  await done(phone);
});

test("a long thread pages: the latest 50 replies, then earlier ones on demand", async () => {
  const room = `paging-${tag()}`;
  const hal = await guest("hal", room);
  await send(hal.page, "a busy topic");
  await shown(hal.page, "a busy topic");
  await msg(hal.page, "a busy topic").hover();
  await msg(hal.page, "a busy topic").locator(".action.reply").click();
  await hal.page.waitForSelector("#thread-panel:not([hidden])");
  await hal.page.evaluate(() => {
    for (let i = 0; i < 55; i++) {
      document.querySelector("#thread-body").value = `reply ${i}`;
      document.querySelector("#thread-composer").requestSubmit();
    }
  });
  await msg(hal.page, "a busy topic").locator(".reply-count", { hasText: /^55 replies$/ }).waitFor();
  await hal.page.waitForFunction(() => !document.querySelector("#thread-list li.pending"));

  const ivy = await guest("ivy", room);
  await msg(ivy.page, "a busy topic").locator(".reply-count").click();
  const replies = () => ivy.page.$$eval("#thread-list li.message .body", (b) => b.map((e) => e.textContent));
  await ivy.page.waitForFunction(() => document.querySelectorAll("#thread-list li.message").length === 51);
  assert.deepEqual((await replies()).slice(0, 2), ["a busy topic", "reply 5"]);
  await ivy.page.click("#thread-older");
  await ivy.page.waitForFunction(() => document.querySelectorAll("#thread-list li.message").length === 56);
  assert.deepEqual(await replies(), ["a busy topic", ...Array.from({ length: 55 }, (_, i) => `reply ${i}`)]);
  await ivy.page.waitForSelector("#thread-older", { state: "hidden" });
  await done(hal);
  await done(ivy);
});

async function account(name, room) {
  const context = await browser.newContext({ viewport: { width: 1200, height: 760 } });
  const page = await context.newPage();
  page.on("dialog", (d) => d.accept());
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

test("reactions, threads, edit and delete, mention notifications, attachments", async () => {
  const id = tag();
  const room = `rich-${id}`;
  const kim = await account(`kim${id}`, room);
  const lee = await account(`lee${id}`, room);
  await send(kim.page, "shall we ship it?");
  await shown(lee.page, "shall we ship it?");
  // lee reacts through the toolbar's picker.
  await msg(lee.page, "shall we ship it?").hover();
  await msg(lee.page, "shall we ship it?").locator(".action.react").click();
  await lee.page.click('#picker button[aria-label="React with 👍"]');
  await lee.page.waitForSelector("#picker", { state: "detached" });
  // Reactions: the count, mine highlighted, who in the tooltip; kim adds the same one.
  const ship = "shall we ship it?";
  const chip = (page) => msg(page, ship).locator('.reaction[data-emoji="👍"]');
  await chip(kim.page).waitFor();
  assert.equal(await chip(kim.page).evaluate((c) => c.classList.contains("mine")), false);
  await chip(kim.page).click();
  await chip(kim.page).filter({ hasText: /^👍2$/ }).waitFor();
  await chip(lee.page).filter({ hasText: /^👍2$/ }).waitFor();
  assert.equal(await chip(kim.page).evaluate((c) => c.classList.contains("mine")), true);
  assert.match(await chip(kim.page).getAttribute("title"), new RegExp(`lee${id}, kim${id} reacted`));

  // Threads: a reply in the side panel; the parent shows the count for both.
  await msg(lee.page, ship).hover();
  await msg(lee.page, ship).locator(".action.reply").click();
  await lee.page.waitForSelector("#thread-panel:not([hidden])");
  await lee.page.fill("#thread-body", "yes, after the tests");
  await lee.page.press("#thread-body", "Enter");
  await lee.page.locator("#thread-list .body", { hasText: /^yes, after the tests$/ }).waitFor();
  await msg(kim.page, ship).locator(".reply-count", { hasText: /^1 reply$/ }).waitFor();
  assert.deepEqual(await bodies(kim.page), [ship], "the reply stays in the thread");
  await lee.page.screenshot({ path: path.join(ARTIFACTS, "page-thread.png") });
  await axe(lee.page, "thread panel");
  // On a phone the thread covers the screen, its composer visible.
  await lee.page.setViewportSize({ width: 390, height: 844 });
  const panel = await lee.page.$eval("#thread-panel", (p) => p.getBoundingClientRect().toJSON());
  assert.ok(panel.left === 0 && panel.top === 0 && panel.width === 390 && Math.abs(panel.height - 844) < 2, JSON.stringify(panel));
  const reply = await lee.page.$eval("#thread-body", (t) => t.getBoundingClientRect().bottom);
  assert.ok(reply <= 844, `thread composer inside the screen: ${reply}`);
  await lee.page.screenshot({ path: path.join(ARTIFACTS, "page-phone-thread.png") });
  await lee.page.keyboard.press("Escape");
  await lee.page.waitForSelector("#thread-panel", { state: "hidden" });
  await lee.page.setViewportSize({ width: 1200, height: 760 });

  // Edit and delete my own message; the others see "(edited)" and the tombstone.
  await send(kim.page, "typo hree");
  await shown(lee.page, "typo hree");
  await msg(kim.page, "typo hree").hover();
  await msg(kim.page, "typo hree").locator(".action.edit").click();
  await kim.page.fill(".editor textarea", "typo here");
  await kim.page.press(".editor textarea", "Enter");
  await shown(lee.page, "typo here");
  assert.equal(await msg(lee.page, "typo here").locator(".edited").textContent(), "(edited)");
  assert.equal(await msg(lee.page, "typo here").locator(".action.edit").count(), 0, "no edit on others' messages");
  await msg(kim.page, "typo here").hover();
  await msg(kim.page, "typo here").locator(".action.delete").click();
  // The page's own dialog asks first (not the browser's confirm()).
  await kim.page.waitForSelector("#confirm-dialog[open]");
  assert.match(await kim.page.textContent("#confirm-title"), /Delete this message/);
  await kim.page.click("#confirm-ok");
  await shown(lee.page, "message deleted");

  // A mention of a signed-in user notifies them in the page, wherever they are.
  await lee.page.click(`#room-list li[data-room="${room}"]`);
  await send(lee.page, `@kim${id} can you look?`);
  await kim.page.waitForFunction((who) => [...document.querySelectorAll(".toast")].some((t) => t.textContent.includes(`${who} mentioned you`)), `lee${id}`);
  assert.equal(await msg(kim.page, `@kim${id} can you look?`).evaluate((li) => li.classList.contains("mentions-me")), true);

  // Attachments (signed-in): an image inline as a thumbnail, a text file as a download link,
  // a refused upload with the server's reason.
  // A real PNG, drawn by the browser itself.
  const png = Buffer.from(
    await kim.page.evaluate(
      () =>
        new Promise((resolve) => {
          const canvas = Object.assign(document.createElement("canvas"), { width: 120, height: 80 });
          const g = canvas.getContext("2d");
          g.fillStyle = "#ff6b35";
          g.fillRect(0, 0, 120, 80);
          canvas.toBlob((blob) => blob.arrayBuffer().then((a) => resolve([...new Uint8Array(a)])), "image/png");
        }),
    ),
  );
  await kim.page.setInputFiles("#attach", { name: "dot.png", mimeType: "image/png", buffer: png });
  await kim.page.waitForFunction(() => document.querySelector("#staged").textContent.includes("dot.png"));
  await kim.page.setInputFiles("#attach", { name: "notes.txt", mimeType: "text/plain", buffer: Buffer.from("plain notes\n") });
  await kim.page.waitForFunction(() => document.querySelector("#staged").textContent.includes("notes.txt"));
  await send(kim.page, "files attached");
  await shown(lee.page, "files attached");
  const att = await msg(lee.page, "files attached").locator(".attachment").evaluateAll((as) =>
    as.map((a) => ({ cls: a.className, href: a.getAttribute("href"), img: a.querySelector("img")?.getAttribute("src") ?? null, text: a.textContent })),
  );
  assert.equal(att.length, 2);
  assert.match(att[0].cls, /image/);
  assert.match(att[0].img, /^\/uploads\/[A-Za-z0-9_-]+\/thumb$/);
  assert.match(att[1].text, /notes\.txt.*12 B/);
  await lee.page.locator(`${"#message-list"} img`).evaluate((img) => img.complete || new Promise((r) => (img.onload = r)));
  // The thumbnail's URL is signed for lee (docs/chat.md, "Who can fetch a file"): it loaded.
  assert.ok(await lee.page.locator(`${"#message-list"} img`).evaluate((img) => img.naturalWidth > 0), "the thumbnail loaded");
  await lee.page.screenshot({ path: path.join(ARTIFACTS, "page-rich.png") });
  await kim.page.setInputFiles("#attach", { name: "x.png", mimeType: "image/png", buffer: Buffer.from("<html><script>alert(1)</script>") });
  await kim.page.waitForFunction(() => /Upload refused: .+/.test(document.querySelector("#send-error").textContent));
  await done(kim);
  await done(lee);
});
