// File URLs that keep working in a page open for hours (docs/chat.md, "Who can fetch a
// file": what the page must do). Attachments carry short-lived URLs signed for this
// reader. URLs about to expire are refreshed with the `attachments` event (batched per
// room, at most 100 ids a push) when the list is drawn, a link clicked after its URL
// expired opens with a fresh one, and an image that fails to load is looked at: 403 (an
// expired URL) gets fresh URLs, 404 (the file was removed) shows the file as gone, and so
// does an id missing from the reply. Nothing is built from an id: only URLs as received.
import { onRendered, render } from "/assets/list-view.js";
import { state } from "/assets/state.js";

/** Ids per `attachments` push (the server's bound). */
const BATCH = 100;
/** URLs that expire sooner than this are refreshed before they are used... */
const MARGIN_MS = 60_000;
/** ...or sooner than this share of their lifetime, when that is shorter (short TTLs). */
const MARGIN_SHARE = 0.25;
/** The list is looked at for expiring URLs at most this often. */
const SCAN_EVERY_MS = 5000;

/** When this page got each upload's current URLs (their lifetime starts there). */
const receivedAt = new Map();
/** Ids waiting for the next push → the callbacks waiting for their answer. */
let queued = new Map();
let flushTimer = null;
/** Ids asked for and not answered yet: not asked again meanwhile. */
const inFlight = new Set();
/** Image URLs that failed once and were looked at (never twice: no loops). */
const looked = new Set();
let lastScan = 0;

/** Forgets everything about the room's files (another room). */
export function resetFileLinks() {
  receivedAt.clear();
  looked.clear();
  inFlight.clear();
  for (const waiters of queued.values()) waiters.forEach((w) => w());
  queued = new Map();
  clearTimeout(flushTimer);
  flushTimer = null;
}

/** Whether attachment `a`'s URLs expire soon (or have expired). */
export function expiring(a, now = Date.now()) {
  const expires = Date.parse(a?.urls_expire_at);
  if (!Number.isFinite(expires)) return false;
  if (!receivedAt.has(a.id)) receivedAt.set(a.id, now);
  const life = expires - receivedAt.get(a.id);
  return expires - now < Math.min(MARGIN_MS, life * MARGIN_SHARE);
}

/** Asks for fresh URLs of uploads `ids`; resolves once answered (or given up). */
export function refreshFiles(ids) {
  if (!state.channel || !state.joined) return Promise.resolve();
  const waits = ids.map(
    (id) =>
      new Promise((resolve) => {
        if (!queued.has(id)) queued.set(id, []);
        queued.get(id).push(resolve);
      }),
  );
  // Asked together: one push for what one render or one scroll found.
  flushTimer ??= setTimeout(flush, 50);
  return Promise.all(waits).then(() => undefined);
}

function flush() {
  flushTimer = null;
  const channel = state.channel;
  const batch = queued;
  queued = new Map();
  const ids = [...batch.keys()];
  const done = (part) => {
    for (const id of part) {
      inFlight.delete(id);
      batch.get(id)?.forEach((resolve) => resolve());
    }
  };
  if (!channel || !state.joined) return done(ids);
  for (let i = 0; i < ids.length; i += BATCH) {
    const part = ids.slice(i, i + BATCH);
    part.forEach((id) => inFlight.add(id));
    channel
      .push("attachments", { ids: part })
      .receive("ok", ({ attachments }) => {
        if (state.channel === channel) {
          const fresh = Array.isArray(attachments) ? attachments : [];
          const now = Date.now();
          for (const a of fresh) receivedAt.set(a.id, now);
          // An id left out is no longer readable here: its message was deleted.
          const found = new Set(fresh.map((a) => a.id));
          const gone = part.filter((id) => !found.has(id));
          if (state.timeline.refreshAttachments(fresh, gone)) render();
        }
        done(part);
      })
      .receive("error", () => done(part))
      .receive("timeout", () => done(part));
  }
}

/** After a render, now and then: URLs of the room that expire soon are refreshed. */
function scan(force = false) {
  const now = Date.now();
  if (!state.joined || (!force && now - lastScan < SCAN_EVERY_MS)) return;
  lastScan = now;
  const due = [];
  for (const a of state.timeline.attachments().values()) if (!inFlight.has(a.id) && expiring(a, now)) due.push(a.id);
  if (due.length) refreshFiles(due);
}

/** An image of upload `id` did not load from `url`: expired (403) or removed (404)? */
async function imageFailed(id, url) {
  if (!url || looked.has(url)) return;
  looked.add(url);
  let status = 0;
  try {
    status = (await fetch(url, { cache: "no-store" })).status;
  } catch {
    // No answer: the browser shows the image's name; nothing more to learn.
  }
  if (status === 404) {
    if (state.timeline.refreshAttachments([], [id])) render();
  } else if (status === 403) await refreshFiles([id]);
}

/** Opens attachment `a` as its link would have: a new tab, or a download. */
function openFile(a, download) {
  if (download) {
    const link = document.createElement("a");
    link.href = a.url;
    link.download = a.name ?? "";
    link.click();
  } else window.open(a.url, "_blank", "noopener,noreferrer");
}

/** Wires a message list: clicks on expired file links, images that fail to load. */
export function wireFileLinks(list) {
  // Capture: an image's `error` does not bubble; a stale link's click is taken first.
  list.addEventListener(
    "error",
    (e) => {
      const img = e.target;
      if (img instanceof HTMLImageElement && img.dataset.upload) imageFailed(img.dataset.upload, img.getAttribute("src"));
    },
    true,
  );
  list.addEventListener(
    "click",
    (e) => {
      const link = e.target.closest?.("a[data-upload]");
      const a = link && state.timeline.attachments().get(link.dataset.upload);
      if (!a || !expiring(a)) return;
      e.preventDefault();
      e.stopPropagation();
      const download = link.hasAttribute("download");
      refreshFiles([a.id]).then(() => {
        const fresh = state.timeline.attachments().get(a.id);
        // Gone meanwhile: the card now says so.
        if (fresh && !expiring(fresh)) openFile(fresh, download);
      });
    },
    true,
  );
}

onRendered(() => scan());
// Back to a tab that slept: URLs may have expired meanwhile.
document.addEventListener("visibilitychange", () => document.visibilityState === "visible" && scan(true));
