// Headless Chromium for the browser tests (Debian's chromium, driven by playwright-core),
// and where their screenshots go.
import { mkdirSync } from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";
import { repoRoot } from "./chat-server.js";

/** Screenshots of the browser tests (gitignored). */
export const ARTIFACTS = path.join(repoRoot, "js-client/artifacts");
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

/**
 * A headless Chromium without background traffic; the artifacts folder exists after.
 * `extraArgs`: more command-line switches (the TLS test pins its server's key).
 */
export async function launchBrowser(extraArgs = []) {
  mkdirSync(ARTIFACTS, { recursive: true });
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      ...extraArgs,
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/** A guest in `room` (a new browser context: its own storage), through the join form. */
export async function joinAsGuest(browser, url, name, room, viewport = { width: 1100, height: 720 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const dialogs = [];
  page.on("dialog", (d) => {
    dialogs.push(d.message());
    d.dismiss();
  });
  // Uncaught exceptions in the page, for tests to assert there were none.
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(`${url}/#${room}`);
  await page.fill("#username", name);
  await page.click("#login-form button");
  await page.waitForSelector("#chat:not([hidden])");
  return { context, page, dialogs, errors };
}

/** Types `text` into the composer and presses Enter. */
export async function send(page, text) {
  await page.fill("#body", text);
  await page.press("#body", "Enter");
}
