// Nothing typed is lost when the server stops accepting someone: with PostgreSQL and no
// SECRET_KEY_BASE a restart keeps sessions (the secret is kept in the database), so the
// page reconnects by itself and sends what was typed meanwhile; a signed-in person whose
// reconnect is refused (the server restarted with another, configured secret, so their
// session token is refused 403) is told so in words, not "reconnecting…" forever; what
// they wrote stays (also across a reload, in localStorage per person and room) and is
// sent, once, after they sign in again. The notice is photographed at 1440, 1024 and
// 390 px, light and dark. A guest whose rejoin is refused keeps their unsent messages too and
// sends them after joining again; one refused for now (the database is down) stays in the
// room and is back by itself. Chromium against the real chat app.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { startChat, testDatabase } from "../lib/chat-server.js";
import { createRequire } from "node:module";
import { ARTIFACTS, launchBrowser, joinAsGuest, send } from "../lib/browser.js";
import { cutProxy } from "../lib/cut-proxy.js";
import { client, disconnectAll, join } from "../lib/channel.js";

const AXE = createRequire(import.meta.url).resolve("axe-core/axe.min.js");
const PASSWORD = "correct horse battery";
const LIMITS = { REGISTER_BURST: "100", LOGIN_ADDRESS_BURST: "100", PHX_HOST: "127.0.0.1" };
const tag = () => `${Date.now().toString(36)}${Math.floor(Math.random() * 1e4)}`;
let browser;

before(async () => {
  browser = await launchBrowser();
});

after(async () => {
  disconnectAll();
  await browser?.close();
});

const shown = (page, text) =>
  page.waitForFunction((t) => [...document.querySelectorAll("#message-list li.message:not(.pending) .body")].some((e) => e.textContent === t), text, {
    timeout: 30000,
  });
const unsentKeys = (page) => page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith("phx-chat:unsent:")));

async function axe(page, label) {
  if (!(await page.evaluate(() => Boolean(window.axe)))) await page.addScriptTag({ path: AXE });
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, { resultTypes: ["violations"] });
    return result.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(" ")).slice(0, 5) }));
  });
  const bad = violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  assert.deepEqual(bad, [], `${label}: axe-core found serious or critical violations`);
}

/** How many stored messages of `room` have exactly this body (a fresh client's join reply). */
async function stored(url, room, body) {
  const { reply, ok } = await join(client(url), `room:${room}`, { username: `count${tag()}` });
  assert.ok(ok, JSON.stringify(reply));
  return reply.messages.filter((m) => m.body === body).length;
}

test("a restart keeps the session (PostgreSQL keeps the secret); a refused reconnect signs out in words, keeps the unsent message across a reload, and sends it once after signing in", async () => {
  const id = tag();
  const db = testDatabase(`chatpage_resume_${id}`);
  const secret = (c) => c.repeat(64);
  // As the README starts it: DATABASE_URL, no SECRET_KEY_BASE.
  let chat = await startChat({ databaseUrl: db.url, env: LIMITS });
  const port = Number(new URL(chat.url).port);
  const room = `resume-${id}`;
  const name = `nia${id}`;
  const context = await browser.newContext({ viewport: { width: 1200, height: 760 } });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  try {
    await page.goto(`${chat.url}/#${room}`);
    await page.fill("#acct-username", name);
    await page.fill("#acct-password", PASSWORD);
    await page.click("#register-button");
    await page.waitForSelector("#sidebar:not([hidden])");
    await send(page, "before the restart");
    await shown(page, "before the restart");

    // A restart: the session survives; what was written meanwhile goes out by itself.
    await chat.stop();
    await page.waitForSelector("#connection-banner:not([hidden])", { timeout: 30000 });
    await send(page, "written during a restart");
    await page.waitForSelector("#message-list li.pending.waiting");
    chat = await startChat({ port, databaseUrl: db.url, env: LIMITS });
    await shown(page, "written during a restart");
    await page.waitForSelector("#connection-banner", { state: "hidden", timeout: 30000 });
    assert.equal(await page.isHidden("#login"), true, "still signed in");
    assert.deepEqual(await unsentKeys(page), []);
    await page.reload();
    await page.waitForSelector("#sidebar:not([hidden])");
    await shown(page, "written during a restart");
    assert.equal(await stored(chat.url, room, "written during a restart"), 1);

    // The server goes away; what is written now waits, and is kept in localStorage.
    await chat.stop();
    await page.waitForSelector("#connection-banner:not([hidden])", { timeout: 30000 });
    const text = "written while the server was away";
    await send(page, text);
    await page.waitForSelector("#message-list li.pending.waiting");
    assert.equal((await unsentKeys(page)).length, 1, "the unsent message is stored");

    // Back with another secret: the session token is refused. The page says so.
    chat = await startChat({ port, databaseUrl: db.url, env: { ...LIMITS, SECRET_KEY_BASE: secret("b") } });
    await page.waitForSelector("#login:not([hidden])", { timeout: 30000 });
    const notice = await page.textContent("#login-notice");
    assert.match(notice, /signed out/i);
    assert.match(notice, new RegExp(`1 unsent message \\(#${room}\\)`));
    assert.notEqual(await page.textContent("#status"), "reconnecting");
    assert.equal(await page.inputValue("#acct-username"), name);
    await page.screenshot({ path: path.join(ARTIFACTS, "resume-signed-out.png") });
    // The notice at every width, light and dark.
    for (const [width, height] of [[1440, 900], [1024, 768], [390, 844]]) {
      await page.setViewportSize({ width, height });
      for (const scheme of ["light", "dark"]) {
        await page.emulateMedia({ colorScheme: scheme });
        const notice = await page.$eval("#login-notice", (n) => n.getBoundingClientRect().toJSON());
        assert.ok(notice.top >= 0 && notice.left >= 0 && notice.right <= width + 1, `the notice shows whole at ${width}: ${JSON.stringify(notice)}`);
        await page.screenshot({ path: path.join(ARTIFACTS, `resume-signed-out-${width}-${scheme}.png`) });
        await axe(page, `the signed-out notice, ${width} ${scheme}`);
      }
    }
    await page.emulateMedia({ colorScheme: "light" });
    await page.setViewportSize({ width: 1200, height: 760 });

    // A reload: still the sign-in form, the name and the kept message remembered.
    await page.reload();
    await page.waitForFunction(() => /signed out/.test(document.querySelector("#login-notice").textContent));
    assert.match(await page.textContent("#login-notice"), /1 unsent message/);
    assert.equal(await page.inputValue("#acct-username"), name);
    assert.equal((await unsentKeys(page)).length, 1);

    // Signing in again sends it, once, and forgets it.
    await page.fill("#acct-password", PASSWORD);
    await page.click("#login-button");
    await shown(page, text);
    await page.waitForFunction(() => !document.querySelector("#message-list li.pending"));
    await page.waitForFunction(() => !Object.keys(localStorage).some((k) => k.startsWith("phx-chat:unsent:")));
    assert.equal(await page.isHidden("#login-notice"), true);
    assert.equal(await stored(chat.url, room, text), 1);
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
    await chat.stop();
    db.drop();
  }
});

test("a guest whose rejoin is refused is told why, keeps the unsent message, and sends it after joining again", async () => {
  const chat = await startChat({ env: LIMITS });
  const proxy = await cutProxy({ port: Number(new URL(chat.url).port) });
  const id = tag();
  const room = `guest-resume-${id}`;
  try {
    const pia = await joinAsGuest(browser, proxy.url, `pia${id}`, room);
    await send(pia.page, "hello");
    await shown(pia.page, "hello");
    proxy.cut();
    await pia.page.waitForSelector("#connection-banner:not([hidden])");
    await send(pia.page, "a guest wrote this offline");
    await pia.page.waitForSelector("#message-list li.pending.waiting");
    // Meanwhile someone registers the guest's name: the rejoin is refused.
    const res = await fetch(`${chat.url}/api/register`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ username: `pia${id}`, password: PASSWORD }),
    });
    assert.equal(res.status, 201);
    proxy.restore();
    await pia.page.waitForSelector("#login:not([hidden])", { timeout: 30000 });
    const notice = await pia.page.textContent("#login-notice");
    assert.match(notice, new RegExp(`no longer in #${room}.*registered user`));
    assert.match(notice, /1 unsent message/);
    assert.equal(await pia.page.inputValue("#username"), `pia${id}`);
    assert.equal(await pia.page.inputValue("#room"), room);

    // Another name: back in the room, and the kept message goes out under it.
    await pia.page.fill("#username", `pia2${id}`);
    await pia.page.click("#login-form button");
    await shown(pia.page, "a guest wrote this offline");
    await pia.page.waitForFunction(() => !document.querySelector("#message-list li.pending"));
    assert.deepEqual(await unsentKeys(pia.page), []);
    assert.equal(await stored(chat.url, room, "a guest wrote this offline"), 1);
    assert.deepEqual(pia.errors, []);
    await pia.context.close();
  } finally {
    await proxy.close();
    await chat.stop();
  }
});

test("a guest whose rejoin is refused for now (the database is down) stays in the room and is back by itself", async () => {
  const id = tag();
  const db = testDatabase(`chatpage_transient_${id}`);
  const chat = await startChat({ databaseUrl: db.url, env: LIMITS });
  const proxy = await cutProxy({ port: Number(new URL(chat.url).port) });
  const room = `transient-${id}`;
  try {
    const hal = await joinAsGuest(browser, proxy.url, `hal${id}`, room);
    await send(hal.page, "hello");
    await shown(hal.page, "hello");
    proxy.cut();
    await hal.page.waitForSelector("#connection-banner:not([hidden])");
    db.cut();
    proxy.restore();
    // The rejoin is refused "unavailable": still the room, and the banner says why.
    await hal.page.waitForFunction(() => /unavailable/.test(document.querySelector("#connection-banner").textContent), null, { timeout: 30000 });
    assert.equal(await hal.page.isHidden("#login"), true, "not sent back to the join form");
    await send(hal.page, "written while the database was down");
    await hal.page.waitForSelector("#message-list li.pending");
    db.restore();
    await shown(hal.page, "written while the database was down");
    await hal.page.waitForSelector("#connection-banner", { state: "hidden" });
    assert.equal(await stored(chat.url, room, "written while the database was down"), 1);
    assert.deepEqual(hal.errors, []);
    await hal.context.close();
  } finally {
    await proxy.close();
    await chat.stop();
    db.drop();
  }
});
