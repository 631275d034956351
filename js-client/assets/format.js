// Pure formatting for the chat page: no DOM, no globals, so Node's test runner can import
// it (test/format.test.js) and a date or a link rule is checked without a browser.

/** Messages by one author closer than this share one name and time (as Slack does). */
export const GROUP_WITHIN_MS = 5 * 60 * 1000;
/** The server's limit (docs/chat.md: 1–4 000 characters after trimming). */
export const BODY_MAX = 4000;
/** The character counter appears from here on. */
export const COUNTER_FROM = 3500;

const DAY_MS = 24 * 60 * 60 * 1000;

/** A Date, or null for a missing or unparsable timestamp. */
export function parseTime(iso) {
  const at = new Date(iso);
  return Number.isNaN(at.getTime()) ? null : at;
}

/** Midnight (local time) of `date`'s day, as milliseconds. */
function startOfDay(date) {
  return new Date(date.getFullYear(), date.getMonth(), date.getDate()).getTime();
}

/** The local calendar day of a timestamp, as a key ("2026-11-28"); "" when unknown. */
export function dayKey(iso) {
  const at = parseTime(iso);
  if (!at) return "";
  const pad = (n) => String(n).padStart(2, "0");
  return `${at.getFullYear()}-${pad(at.getMonth() + 1)}-${pad(at.getDate())}`;
}

/** "Today", "Yesterday", a weekday within the last week, else a date ("Mon, 3 Nov 2025"). */
export function dayLabel(iso, now = new Date(), locale = undefined) {
  const at = parseTime(iso);
  if (!at) return "";
  // Rounded: a day with a daylight-saving change is 23 or 25 hours long.
  const days = Math.round((startOfDay(now) - startOfDay(at)) / DAY_MS);
  if (days === 0) return "Today";
  if (days === 1) return "Yesterday";
  if (days > 1 && days < 7) return at.toLocaleDateString(locale, { weekday: "long" });
  const sameYear = at.getFullYear() === now.getFullYear();
  return at.toLocaleDateString(locale, {
    weekday: "short",
    day: "numeric",
    month: "short",
    ...(sameYear ? {} : { year: "numeric" }),
  });
}

/** "14:05" (the locale's short time), "" when unknown. */
export function timeLabel(iso, locale = undefined) {
  const at = parseTime(iso);
  return at ? at.toLocaleTimeString(locale, { hour: "2-digit", minute: "2-digit" }) : "";
}

/**
 * Whether `a` and `b` are by the same person: the same author id (docs/chat.md: names are
 * for display, two people may show the same one), or the same name when either message
 * has no author id (stored before author ids existed).
 */
export function sameAuthor(a, b) {
  if (a.author && b.author) return a.author === b.author;
  return !a.author && !b.author && a.username === b.username;
}

/** Whether `m` continues `prev`'s group: same author, same day, within GROUP_WITHIN_MS. */
export function continuesGroup(prev, m) {
  if (!prev || !sameAuthor(prev, m)) return false;
  const a = parseTime(prev.inserted_at);
  const b = parseTime(m.inserted_at);
  if (!a || !b || dayKey(prev.inserted_at) !== dayKey(m.inserted_at)) return false;
  return b - a >= 0 && b - a < GROUP_WITHIN_MS;
}

/** Up to two initials: "Ada Lovelace" → "AL", "bob" → "B", "_x" → "X". */
export function initials(name) {
  const words = String(name)
    .split(/[\s_.-]+/u)
    .filter((w) => w.length > 0);
  const letters = words.slice(0, 2).map((w) => [...w][0]);
  return (letters.length ? letters.join("") : "?").toUpperCase();
}

/** Two names that are the same name to people: compatibility forms and case folded. */
export function sameName(a, b) {
  const fold = (s) => String(s).normalize("NFKC").toLowerCase();
  return typeof a === "string" && typeof b === "string" && fold(a) === fold(b);
}

/**
 * A short tag telling apart people who show the same name: "#12" for the account
 * `user:12`, the guest id's first four digits for a guest ("a3f2").
 */
export function authorTag(author) {
  const text = String(author ?? "");
  if (text.startsWith("user:")) return `#${text.slice(5)}`;
  if (text.startsWith("guest:")) return text.slice(6, 10);
  return "";
}

/** A stable hue (0–359) from a name, so one person keeps one avatar colour everywhere. */
export function nameHue(name) {
  let h = 2166136261;
  for (const ch of String(name)) {
    h ^= ch.codePointAt(0);
    h = Math.imul(h, 16777619);
  }
  return (h >>> 0) % 360;
}

/** WCAG relative luminance of `hsl(hue, sat%, light%)`. */
function hslLuminance(hue, sat, light) {
  const s = sat / 100;
  const l = light / 100;
  const k = (n) => (n + hue / 30) % 12;
  const a = s * Math.min(l, 1 - l);
  const channel = (n) => {
    const c = l - a * Math.max(-1, Math.min(k(n) - 3, 9 - k(n), 1));
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * channel(0) + 0.7152 * channel(8) + 0.0722 * channel(4);
}

/**
 * The lightness (%) of an avatar of `hue` (saturation 55 %): the lightest up to 42 % on
 * which white initials keep a contrast of 4.5 (yellows and greens get darker shades).
 */
export function avatarLightness(hue) {
  for (let light = 42; light > 20; light -= 1) if (1.05 / (hslLuminance(hue, 55, light) + 0.05) >= 4.6) return light;
  return 20;
}

/** "512 B", "1.5 KB", "3.2 MB". */
export function formatSize(bytes) {
  if (!Number.isFinite(bytes) || bytes < 0) return "";
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KB", "MB", "GB"];
  let n = bytes / 1024;
  let u = 0;
  while (n >= 1024 && u < units.length - 1) {
    n /= 1024;
    u += 1;
  }
  return `${n < 10 ? n.toFixed(1) : Math.round(n)} ${units[u]}`;
}

/** Characters as the server counts them (Unicode scalar values), after trimming. */
export function bodyLength(text) {
  return [...String(text).trim()].length;
}

// A link candidate: an http(s) URL up to whitespace. Trailing punctuation that usually ends
// a sentence is not part of it ("see https://x.org." links https://x.org).
const URL_RE = /\bhttps?:\/\/[^\s<>"]+/giu;
const MENTION_RE = /(^|[^\p{L}\p{N}_.@-])@([\p{L}\p{N}_.-]{1,32})/gu;
const TRAILING = /[.,;:!?'")\]}]+$/u;

/** The URL when `text` is a safe link target (http or https only), else null. */
export function safeHref(text) {
  try {
    const url = new URL(text);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

/**
 * Splits a body into runs: `{type: "text", text}`, `{type: "link", text, href}` (http and
 * https only; anything else, `javascript:` included, stays text) and
 * `{type: "mention", text, name}`. The page builds DOM nodes from these, never HTML.
 */
export function segments(body) {
  const text = String(body);
  const marks = [];
  for (const match of text.matchAll(URL_RE)) {
    let raw = match[0];
    // Keep a closing bracket that belongs to the URL (wikipedia-style "(x)").
    const trail = TRAILING.exec(raw);
    if (trail) {
      let cut = trail[0];
      if (cut.startsWith(")") && raw.slice(0, -cut.length).includes("(")) cut = cut.slice(1);
      raw = raw.slice(0, raw.length - cut.length);
    }
    const href = raw && safeHref(raw);
    if (href) marks.push({ start: match.index, end: match.index + raw.length, type: "link", text: raw, href });
  }
  for (const match of text.matchAll(MENTION_RE)) {
    const start = match.index + match[1].length;
    const name = match[2].replace(/[.-]+$/u, "");
    if (!name) continue;
    const end = start + 1 + name.length;
    if (marks.some((m) => start < m.end && end > m.start)) continue;
    marks.push({ start, end, type: "mention", text: `@${name}`, name });
  }
  marks.sort((a, b) => a.start - b.start);
  const out = [];
  let at = 0;
  for (const { start, end, ...run } of marks) {
    if (start > at) out.push({ type: "text", text: text.slice(at, start) });
    out.push(run);
    at = end;
  }
  if (at < text.length) out.push({ type: "text", text: text.slice(at) });
  return out;
}

/** A random key of `bytes` random bytes as hex: client_id and guest_key ([A-Za-z0-9_-]). */
export function randomKey(bytes = 16, cryptoImpl = globalThis.crypto) {
  const buf = new Uint8Array(bytes);
  cryptoImpl.getRandomValues(buf);
  return [...buf].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Names people know for the types the server names (the rest: the subtype, upper case). */
const TYPE_NAMES = {
  "image/png": "PNG",
  "image/jpeg": "JPEG",
  "image/gif": "GIF",
  "image/webp": "WebP",
  "image/svg+xml": "SVG",
  "image/bmp": "BMP",
  "image/tiff": "TIFF",
  "text/html": "HTML",
  "text/plain": "text",
  "application/pdf": "PDF",
  "application/zip": "ZIP",
  "application/x-msdownload": "Windows program",
  "application/octet-stream": "Unknown",
};

/** A content type as a name ("image/svg+xml" → "SVG", "application/x-7z-compressed" → "7Z"). */
export function typeName(type) {
  const lower = String(type).toLowerCase();
  if (TYPE_NAMES[lower]) return TYPE_NAMES[lower];
  const sub = lower.split("/")[1] ?? lower;
  return sub.replace(/^(x-|vnd\.)/, "").split(/[+.-]/)[0].toUpperCase() || "Unknown";
}

/**
 * A server's refusal in words people read: byte counts as sizes ("10485760 bytes" →
 * "10 MB") and content types as names ("image/svg+xml" → "SVG").
 */
export function readableError(text, now = new Date(), locale = undefined) {
  return String(text)
    .replace(/\b(\d{4,}) bytes\b/g, (_, n) => formatSize(Number(n)))
    .replace(/\b(?:image|text|application|audio|video|font)\/[a-z0-9.+-]+/gi, (t) => typeName(t))
    .replace(/\btry again in (\d+) s\b/g, (_, n) => `try again ${retryLabel(Number(n), now, locale)}`)
    .replace(/\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z\b/g, (iso) => momentLabel(iso, now, locale));
}

/** A refusal as a sentence: a capital first letter and a full stop. */
export function sentence(text) {
  const t = String(text).trim();
  if (!t) return t;
  return t[0].toUpperCase() + t.slice(1) + (/[.!?]$/.test(t) ? "" : ".");
}

/** "in 42 s", "in 3 min (at 14:05)", "in 2 h (at 16:30)": a wait people can plan around. */
export function retryLabel(seconds, now = new Date(), locale = undefined) {
  if (!Number.isFinite(seconds) || seconds < 0) return "later";
  if (seconds < 60) return `in ${Math.max(1, Math.ceil(seconds))} s`;
  const at = timeLabel(new Date(now.getTime() + seconds * 1000).toISOString(), locale);
  const span = seconds < 3600 ? `${Math.ceil(seconds / 60)} min` : `${Math.round(seconds / 360) / 10} h`;
  return `in ${span} (at ${at})`;
}

/** A moment as people read it: "14:05" today, "Tue, 3 Nov, 14:05" another day. */
export function momentLabel(iso, now = new Date(), locale = undefined) {
  const at = parseTime(iso);
  if (!at) return String(iso);
  const time = timeLabel(iso, locale);
  return dayKey(iso) === dayKey(now.toISOString()) ? time : `${at.toLocaleDateString(locale, { weekday: "short", day: "numeric", month: "short" })}, ${time}`;
}

/**
 * A refusal of the chat app (docs/chat.md) in words people read: what happened and what
 * to do. `who`: the name concerned, if any. Unknown reasons are shown as they come,
 * made readable (sizes, types, times).
 */
export function refusalText(reason, who = "", now = new Date()) {
  const name = who ? `“${who}”` : "this name";
  switch (reason) {
    case "this name is used by another guest":
      return `Someone else in this room is using the name ${name} right now: choose another name.`;
    case "this name belongs to a registered user":
      return `The name ${name} belongs to a registered user: choose another name, or sign in if it is yours.`;
    case "a room with a similar name exists":
      return "A room with a very similar name exists already (names that differ only in case or in look-alike letters are the same name).";
    case "unauthorized":
      return "This room is private: only its members can open it (a member invites you, you accept).";
    case "unavailable":
      return "The chat is unavailable right now, try again soon.";
    case "no such user":
      return `There is no account named ${name}.`;
    case "already a member":
      return `${who || "They"} ${who ? "is" : "are"} already a member.`;
    case "rate limited":
      return "You are going faster than the server allows: wait a moment and try again.";
    case "no such invitation":
      return "This invitation is no longer open (it was answered in another tab, withdrawn or expired).";
    default:
      return readableError(reason, now);
  }
}
