// The chat page in headless Chromium (Debian's chromium, driven by playwright-core):
// two users in one room, presence, messages both ways, history on reload, escaping,
// and presence leaving when a browser goes away.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { startChat } from "../lib/chat-server.js";
import { ARTIFACTS, launchBrowser, joinAsGuest, send } from "../lib/browser.js";

let chat;
let browser;

before(async () => {
  chat = await startChat();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await chat?.stop();
});

const user = (name, room, viewport) => joinAsGuest(browser, chat.url, name, room, viewport);

const presenceNames = (page) => page.$$eval("#presence li", (lis) => lis.map((li) => li.dataset.user));
const bodies = (page) => page.$$eval("#message-list .body", (els) => els.map((e) => e.textContent));

test("two users chat: presence, messages both ways, history on reload, escaping, leaving", async () => {
  const room = `e2e-${Date.now()}`;
  const alice = await user("alice", room);
  const bob = await user("bob", room);

  await alice.page.waitForFunction(() => document.querySelectorAll("#presence li").length === 2);
  await bob.page.waitForFunction(() => document.querySelectorAll("#presence li").length === 2);
  assert.deepEqual(await presenceNames(alice.page), ["alice", "bob"]);
  assert.deepEqual(await presenceNames(bob.page), ["alice", "bob"]);
  assert.equal(await alice.page.textContent("#status"), "online");

  await send(alice.page, "Hi Bob! 👋");
  await bob.page.waitForFunction(() => [...document.querySelectorAll(".body")].some((e) => e.textContent === "Hi Bob! 👋"));
  await send(bob.page, "Hey Alice, how is the Rust port going?");
  await alice.page.waitForFunction(() => [...document.querySelectorAll(".body")].some((e) => e.textContent.startsWith("Hey Alice")));
  await send(alice.page, "Great — phoenix.js can't tell the difference.");

  const xss = "<img src=x onerror=alert(1)>";
  await send(bob.page, xss);
  await alice.page.waitForFunction((x) => [...document.querySelectorAll(".body")].some((e) => e.textContent === x), xss);
  assert.equal(await alice.page.$$eval("#message-list img", (imgs) => imgs.length), 0, "no element was created from the text");
  assert.deepEqual(alice.dialogs, [], "no script ran");

  // Typing indicator.
  await bob.page.type("#body", "typing…");
  await alice.page.waitForFunction(() => document.querySelector("#typing").textContent.includes("bob is typing"));
  await bob.page.fill("#body", "");

  await alice.page.waitForFunction(() => document.querySelectorAll(".body").length === 4);
  await alice.page.screenshot({ path: path.join(ARTIFACTS, "chat-two-users.png") });

  // A reload goes back into the room (no join form) and shows the history.
  await bob.page.reload();
  await bob.page.waitForFunction(() => document.querySelectorAll(".body").length === 4);
  assert.deepEqual(await bodies(bob.page), [
    "Hi Bob! 👋",
    "Hey Alice, how is the Rust port going?",
    "Great — phoenix.js can't tell the difference.",
    xss,
  ]);

  // Phone width: the same conversation, presence above the messages.
  const phone = await user("carol", room, { width: 390, height: 844 });
  await phone.page.waitForFunction(() => document.querySelectorAll(".body").length === 4);
  await phone.page.screenshot({ path: path.join(ARTIFACTS, "chat-phone.png") });
  const overflow = await phone.page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
  assert.equal(overflow, false, "no horizontal scrolling at phone width");
  await phone.context.close();

  // Closing bob's browser removes bob from alice's list.
  await bob.context.close();
  await alice.page.waitForFunction(() => ![...document.querySelectorAll("#presence li")].some((li) => li.dataset.user === "bob"));
  assert.deepEqual(await presenceNames(alice.page), ["alice"]);
  await alice.context.close();
});

test("an invalid username shows the server's reason", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${chat.url}/#lobby`);
  // Passes the page's own check (letters), refused by the server (33 characters).
  await page.fill("#username", "a".repeat(32));
  await page.evaluate(() => (document.querySelector("#username").maxLength = 100));
  await page.fill("#username", "a".repeat(33));
  await page.click("#login-form button");
  await page.waitForFunction(() => document.querySelector("#login-error").textContent.length > 0);
  assert.match(await page.textContent("#login-error"), /1–32|at most 32/);
  await context.close();
});

test("the room comes from the URL hash and older messages load on scroll-up", async () => {
  const room = `scroll-${Date.now()}`;
  const writer = await user("writer", room);
  for (let i = 0; i < 70; i++) {
    await writer.page.evaluate((n) => {
      document.querySelector("#body").value = `message ${n}`;
      document.querySelector("#composer").requestSubmit();
    }, i);
  }
  await writer.page.waitForFunction(() => document.querySelectorAll(".body").length === 70);
  const reader = await user("reader", room, { width: 900, height: 500 });
  assert.equal(await reader.page.textContent("#room-name"), `#${room}`);
  await reader.page.waitForFunction(() => document.querySelectorAll(".body").length === 50);
  await reader.page.evaluate(() => (document.querySelector("#messages").scrollTop = 0));
  await reader.page.waitForFunction(() => document.querySelectorAll(".body").length === 70);
  assert.equal((await bodies(reader.page))[0], "message 0");
  await writer.context.close();
  await reader.context.close();
});
