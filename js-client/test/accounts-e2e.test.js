// Accounts in headless Chromium: two accounts and a guest. Register, log in, create a
// private room, invite, chat, a DM opened from a name, the unread badge rising and
// clearing, room switching without reload, logout in one tab closing the other.
// Screenshots (desktop and a 390 px phone) go to js-client/artifacts/.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { startChat } from "../lib/chat-server.js";
import { ARTIFACTS, launchBrowser, send } from "../lib/browser.js";

const PASSWORD = "correct horse battery";
let chat;
let browser;

before(async () => {
  chat = await startChat({ env: { REGISTER_BURST: "100", LOGIN_ADDRESS_BURST: "100" } });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await chat?.stop();
});

async function account(name, room, action = "#register-button") {
  const context = await browser.newContext({ viewport: { width: 1200, height: 760 } });
  const page = await context.newPage();
  await page.goto(`${chat.url}/#${room}`);
  await page.fill("#acct-username", name);
  await page.fill("#acct-password", PASSWORD);
  await page.click(action);
  await page.waitForSelector("#sidebar:not([hidden])");
  await page.waitForFunction((r) => document.querySelector("#room-name").textContent === `#${r}`, room);
  return { context, page };
}

const hasBody = (page, text) =>
  page.waitForFunction((t) => [...document.querySelectorAll("#message-list .body")].some((e) => e.textContent === t), text);
const badge = (page, room) => page.$eval(`#room-list li[data-room="${room}"]`, (li) => li.querySelector(".badge")?.textContent ?? "");

test("two accounts and a guest: private room, invitation, DM, unread badges, switching, logout everywhere", async () => {
  const tag = Date.now().toString(36);
  const lobby = `lobby-${tag}`;
  const team = `team-${tag}`;
  const ann = await account(`ann${tag}`, lobby);
  const bob = await account(`bob${tag}`, lobby);

  // A guest in the same public room, marked as such in everyone's list.
  const guestContext = await browser.newContext();
  const guest = await guestContext.newPage();
  await guest.goto(`${chat.url}/#${lobby}`);
  await guest.fill("#username", `gus${tag}`);
  await guest.click("#login-form button");
  await guest.waitForSelector("#chat:not([hidden])");
  await ann.page.waitForFunction((g) => [...document.querySelectorAll("#presence li")].some((li) => li.dataset.user === g && li.querySelector(".guest-mark")), `gus${tag}`);
  // A guest cannot take a registered name.
  const impostorContext = await browser.newContext();
  const impostor = await impostorContext.newPage();
  await impostor.goto(`${chat.url}/#${lobby}`);
  await impostor.fill("#username", `ANN${tag}`);
  await impostor.click("#login-form button");
  await impostor.waitForFunction(() => document.querySelector("#login-error").textContent.includes("registered"));
  await impostorContext.close();

  // The directory lists the public room with its counts (ann, bob and the guest online).
  await ann.page.click(`#room-list li[data-room="${lobby}"]`);
  await ann.page.waitForFunction((r) => document.querySelector(`#directory li[data-room="${r}"] .counts`)?.textContent === "3 online · 2 members", lobby);

  // ann creates a private room and invites bob. Its name has a lock, not "#".
  await ann.page.fill("#new-room", team);
  await ann.page.press("#new-room", "Enter");
  await ann.page.waitForFunction((r) => document.querySelector("#room-name").textContent === r, team);
  assert.equal(await ann.page.getAttribute("#room-name", "data-kind"), "private");
  assert.equal(await ann.page.getAttribute("#room-name .room-kind", "aria-label"), "private room");
  await ann.page.waitForSelector(`#room-list li[data-room="${team}"] .room-kind[aria-label="private room"]`);
  await ann.page.fill("#invite-username", `bob${tag}`);
  await ann.page.press("#invite-username", "Enter");
  await ann.page.waitForFunction(() => document.querySelector("#sidebar-error").textContent.includes("invited"));
  // The invitation is pending until bob accepts it (docs/chat.md, "Invitations"): it shows
  // in his sidebar, and Accept makes him a member and opens the room.
  const invitation = bob.page.locator(`#invitation-list li[data-room="${team}"]`);
  await invitation.waitFor();
  assert.match(await invitation.textContent(), new RegExp(`${team}.*from ann${tag}`));
  await invitation.locator("button.accept").click();
  await bob.page.waitForFunction((r) => document.querySelector("#room-name").textContent === r, team);
  await bob.page.waitForSelector("#invitations", { state: "hidden" });
  await bob.page.click(`#room-list li[data-room="${lobby}"]`);
  await bob.page.waitForFunction((r) => document.querySelector("#room-name").textContent === `#${r}`, lobby);

  // ann writes while bob is elsewhere: bob's badge rises ...
  await send(ann.page, "welcome to the team");
  await send(ann.page, "second message");
  await bob.page.waitForFunction((r) => document.querySelector(`#room-list li[data-room="${r}"] .badge`)?.textContent === "2", team);
  // ... and clears when bob switches to the room (no reload: same page, new channel).
  await bob.page.evaluate(() => (window.__sameDocument = true));
  await bob.page.click(`#room-list li[data-room="${team}"]`);
  await hasBody(bob.page, "welcome to the team");
  assert.equal(await badge(bob.page, team), "");
  assert.equal(await bob.page.evaluate(() => window.__sameDocument), true, "switched without a reload");

  // The guest cannot see the private room.
  await guest.evaluate((r) => (location.hash = r), team);
  await guest.waitForFunction(() => document.querySelector("#login-error").textContent.includes("This room is private"));

  // bob opens a DM from ann's name; ann's badge rises on the DM, clears on opening it.
  await bob.page.click(`#presence button.dm`);
  await bob.page.waitForFunction(() => document.querySelector("#room-name").textContent.startsWith("@"));
  await send(bob.page, "a private word");
  await ann.page.waitForFunction(() => [...document.querySelectorAll("#room-list li")].some((li) => li.dataset.room.startsWith("dm.") && li.querySelector(".badge")?.textContent === "1"));
  await ann.page.screenshot({ path: path.join(ARTIFACTS, "accounts-desktop-unread.png") });
  await ann.page.click(`#room-list li[data-room^="dm."]`);
  await hasBody(ann.page, "a private word");
  await ann.page.waitForFunction(() => !document.querySelector(`#room-list li[data-room^="dm."] .badge`));
  await send(ann.page, "got it");
  await hasBody(bob.page, "got it");
  await ann.page.screenshot({ path: path.join(ARTIFACTS, "accounts-desktop-dm.png") });

  // Phone width: the rooms behind the menu button, no horizontal scrolling.
  await bob.page.setViewportSize({ width: 390, height: 844 });
  await bob.page.waitForSelector("#sidebar", { state: "hidden" });
  await bob.page.click("#menu-button");
  await bob.page.waitForFunction(() => getComputedStyle(document.querySelector("#sidebar")).visibility === "visible");
  await bob.page.screenshot({ path: path.join(ARTIFACTS, "accounts-phone.png") });
  assert.equal(await bob.page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth), false);
  await bob.page.keyboard.press("Escape");
  await bob.page.waitForFunction(() => !document.querySelector("#chat").classList.contains("drawer-open"));
  await bob.page.setViewportSize({ width: 1200, height: 760 });

  // ann has a second tab (signed in from the stored session); logging out in one closes the other.
  const tab2 = await ann.context.newPage();
  await tab2.goto(`${chat.url}/#${lobby}`);
  await tab2.waitForSelector("#sidebar:not([hidden])");
  await ann.page.click("#logout");
  await ann.page.waitForSelector("#login:not([hidden])");
  await tab2.waitForSelector("#login:not([hidden])");
  assert.match(await tab2.textContent("#account-error"), /logged out/);
  // bob stays signed in and online.
  assert.equal(await bob.page.isVisible("#sidebar"), true);
  await send(bob.page, "still here");
  await hasBody(bob.page, "still here");

  // bob leaves the private room: it drops from his list, and he cannot rejoin it.
  await bob.page.click(`#room-list li[data-room="${team}"]`);
  await hasBody(bob.page, "welcome to the team");
  await bob.page.click("#leave-room");
  await bob.page.waitForFunction((r) => !document.querySelector(`#room-list li[data-room="${r}"]`), team);

  // Logging in again works (the login form, not registration).
  await ann.context.close();
  const again = await account(`ann${tag}`, lobby, "#login-button");
  await again.context.close();
  await bob.context.close();
  await guestContext.close();
});
