// The page's shared state and constants: one object every module reads and writes, so a
// module's functions stay plain functions (no classes, no framework). Nothing here
// touches the network.
import { sameName } from "/assets/format.js";
import { Timeline } from "/assets/timeline.js";

export const $ = (id) => document.getElementById(id);

export const HISTORY_PAGE = 50;
export const THREAD_PAGE = 50;
export const TYPING_SEND_EVERY_MS = 2000;
export const TYPING_SHOW_MS = 3000;
/** A push without an answer for this long is kept pending and sent again later. */
export const PUSH_TIMEOUT_MS = 10000;
/** How long a refused-for-now message waits before the page tries it again. */
export const RETRY_AFTER_MS = 3000;
export const TOAST_MS = 8000;
/** Unsent messages kept at most (while offline): past this the composer says so. */
export const PENDING_MAX = 100;
export const REACTIONS = ["👍", "❤️", "😂", "🎉", "😮", "👀"];
/** Refusals that say "later", not "never": the message stays pending and is sent again. */
export const RETRYABLE = new Set(["unavailable", "busy, try again", "rate limited"]);

// Validation (the server is authoritative; this only saves a round trip).
export const USERNAME = /^[\p{L}\p{N} _.-]{1,32}$/u;
export const ROOM = /^[\p{L}\p{N}_.-]{1,64}$/u;

export const state = {
  socket: null,
  channel: null,
  presence: null,
  username: null,
  /**
   * This client as the room sees it (the join reply's `me`: author, username, guest), or
   * null before the first join reply. "Mine" is decided by `me.author`, never by name.
   */
  me: null,
  room: null,
  /** The room's messages and this page's pending ones (timeline.js). */
  timeline: new Timeline(),
  /** The channel is joined now (a push would reach the server). */
  joined: false,
  /** The room was joined at least once since it was chosen (later joins are rejoins). */
  everJoined: false,
  /** The view follows new messages (the user is at the bottom). */
  stick: true,
  /** The first message that arrived while the user was scrolled up ("New messages" line). */
  unseenFrom: null,
  unseenCount: 0,
  loadingOlder: false,
  noOlder: false,
  typing: new Map(), // author id → {name, timer}
  lastTypingSent: 0,
  typingTimer: null,
  /** The open thread: {parentId, noOlder, loading} or null. */
  thread: null,
  /** The message being edited (its id) or null, its text so far, and why a save failed. */
  editing: null,
  editDraft: null,
  editError: "",
  /** Long messages the person expanded ("Show more"), by id. */
  expanded: new Set(),
  /** The first message after where this person left off (the "New" line), or null. */
  unreadFrom: null,
  /** Each message list's current item (roving tabindex): list id → message key. */
  roving: {},
  /** What the right-hand pane shows: "thread", "search", "people" or null. */
  pane: null,
  /** Files for the next message (signed-in users): uploading or uploaded (uploads.js). */
  staged: [],
  /** A message waits for its files to finish uploading. */
  sendWhenUploaded: false,
  retryTimer: null,
  // Accounts: the session ({token, user}) from /api/, the user:<id> channel, the sidebar.
  session: JSON.parse(localStorage.getItem("phx-chat:session") ?? "null"),
  userChannel: null,
  rooms: [], // [{room, kind, title, unread, latest_id}], latest activity first
  /** Names (folded) that accounts show in the room: list-view.js keeps it. */
  accountNames: new Set(),
  /** Pending invitations to private rooms, newest first (docs/chat.md, "Invitations"). */
  invitations: [],
};

export function roomFromHash() {
  const raw = decodeURIComponent(location.hash.slice(1)).trim();
  return raw || "lobby";
}

/** A room as people see it: "#lobby" (public), "team" (private: a lock), "@ann" (a DM). */
export function roomInfo(room) {
  const entry = state.rooms.find((r) => r.room === room);
  const kind = entry?.kind ?? (String(room).startsWith("dm.") ? "dm" : "public");
  const title = entry?.title ?? room;
  const label = kind === "dm" ? `@${title}` : kind === "private" ? title : `#${room}`;
  return { kind, title, label };
}

/** My author id: the room's `me.author`, or the signed-in account's before any join reply. */
export function myAuthor() {
  return state.me?.author ?? (state.session ? `user:${state.session.user.id}` : null);
}

/**
 * Whether `m` (a message, or anything with an `author`) is mine: the same author id
 * (docs/chat.md, Identity). A message without an author id is nobody's.
 */
export function isMine(m) {
  const me = myAuthor();
  return me !== null && typeof m?.author === "string" && m.author === me;
}

/** Whether I reacted to `m` with `emoji`: my author id among its `reactors`. */
export function reactedByMe(m, emoji) {
  const me = myAuthor();
  const who = m?.reactors?.[emoji];
  return me !== null && Array.isArray(who) && who.includes(me);
}

/**
 * Whether `@name` is me: mentions are names (docs/chat.md), compared with the room's name
 * for me. A guest whose name an account in the room also shows is not who `@name` means:
 * the server notifies the account (a registered name is the account's).
 */
export function isMyName(name) {
  const mine = state.me?.username ?? state.username;
  if (mine === null || !sameName(name, mine)) return false;
  return !(state.me?.guest && state.accountNames.has(String(mine).normalize("NFKC").toLowerCase()));
}
