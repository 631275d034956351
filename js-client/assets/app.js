// The chat page: phoenix.js (the npm package as published, served as an ES module) on a
// `room:<name>` channel, with the contract of docs/chat.md. All user text goes through
// textContent and DOM nodes (format.js `segments`), never innerHTML.
import { Socket, Presence } from "/assets/phoenix.mjs";
import {
  BODY_MAX,
  COUNTER_FROM,
  bodyLength,
  continuesGroup,
  dayKey,
  dayLabel,
  formatSize,
  initials,
  nameHue,
  randomKey,
  segments,
  timeLabel,
} from "/assets/format.js";
import { Timeline } from "/assets/timeline.js";

const $ = (id) => document.getElementById(id);
const HISTORY_PAGE = 50;
const THREAD_PAGE = 50;
const TYPING_SEND_EVERY_MS = 2000;
const TYPING_SHOW_MS = 3000;
/** A push without an answer for this long is kept pending and sent again later. */
const PUSH_TIMEOUT_MS = 10000;
/** How long a refused-for-now message waits before the page tries it again. */
const RETRY_AFTER_MS = 3000;
const TOAST_MS = 8000;
/** Unsent messages kept at most (while offline): past this the composer says so. */
const PENDING_MAX = 100;
const REACTIONS = ["👍", "❤️", "😂", "🎉", "😮", "👀"];
/** Refusals that say "later", not "never": the message stays pending and is sent again. */
const RETRYABLE = new Set(["unavailable", "busy, try again"]);

const state = {
  socket: null,
  channel: null,
  presence: null,
  username: null,
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
  typing: new Map(), // username → timer
  lastTypingSent: 0,
  typingTimer: null,
  /** The open thread: {parentId, noOlder, loading} or null. */
  thread: null,
  /** The message being edited (its id) or null. */
  editing: null,
  /** Uploaded attachments waiting for the next message (signed-in users). */
  staged: [],
  retryTimer: null,
  // Accounts: the session ({token, user}) from /api/, the user:<id> channel, the sidebar.
  session: JSON.parse(localStorage.getItem("phx-chat:session") ?? "null"),
  userChannel: null,
  rooms: [], // [{room, kind, title, unread, latest_id}], latest activity first
};

// ---- validation (the server is authoritative; this only saves a round trip) ----

const USERNAME = /^[\p{L}\p{N} _.-]{1,32}$/u;
const ROOM = /^[\p{L}\p{N}_.-]{1,64}$/u;

function roomFromHash() {
  const raw = decodeURIComponent(location.hash.slice(1)).trim();
  return raw || "lobby";
}

// ---- identity: the guest key (docs/chat.md, Identity) ----

/** This browser's guest key: made once, kept in localStorage, sent on every connect. */
function guestKey() {
  let key = localStorage.getItem("phx-chat:guest-key");
  if (!key || !/^[A-Za-z0-9_-]{32,128}$/.test(key)) {
    key = randomKey(32);
    localStorage.setItem("phx-chat:guest-key", key);
  }
  return key;
}

// ---- connection state ----

function setStatus(text) {
  const el = $("status");
  el.textContent = text;
  el.dataset.state = text;
}

/** Shows or hides the "connection lost" banner and greys the presence list. */
function setConnected(connected) {
  const inRoom = !$("chat").hidden;
  $("connection-banner").hidden = connected || !inRoom;
  $("chat").classList.toggle("disconnected", !connected);
}

function connect() {
  if (state.socket) return;
  // Read on every (re)connect: a logged-out tab stops sending the token.
  const socket = new Socket("/socket", {
    params: () => (state.session ? { token: state.session.token } : { guest_key: guestKey() }),
  });
  socket.onOpen(() => setStatus(state.joined ? "online" : "connecting"));
  socket.onError(() => {
    if (state.socket !== socket) return;
    setStatus("reconnecting");
    lostChannel();
  });
  socket.onClose((event) => {
    if (state.socket !== socket) return;
    setStatus("reconnecting");
    lostChannel();
    // 1001: the server closed every socket of this user (a logout in another tab).
    if (state.session && event?.code === 1001) checkSession();
  });
  setStatus("connecting");
  socket.connect();
  state.socket = socket;
}

/** The room channel is gone until phoenix.js rejoins it: pushes wait as pending. */
function lostChannel() {
  if (!state.channel) return;
  state.joined = false;
  setConnected(false);
  render();
}

// ---- rendering: messages ----

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function isMe(name) {
  return typeof name === "string" && state.username !== null && name.toLowerCase() === state.username.toLowerCase();
}

// Toolbar icons as SVG strokes (no emoji font needed for the page's own controls).
const ICONS = {
  smile: ["M12 3a9 9 0 1 0 0 18a9 9 0 1 0 0-18z", "M8 14c1 1.5 2.4 2.2 4 2.2s3-.7 4-2.2", "M9 9.5h.01", "M15 9.5h.01"],
  reply: ["M9 14L4 9l5-5", "M4 9h10a6 6 0 0 1 6 6v4"],
  edit: ["M4 20h4L19 9l-4-4L4 16z", "M13 7l4 4"],
  trash: ["M4 7h16", "M9 7V4h6v3", "M6 7l1 13h10l1-13"],
  file: ["M6 3h8l4 4v14H6z", "M14 3v4h4"],
  clip: ["M20 11l-8.5 8.5a5 5 0 0 1-7-7L13 4a3.5 3.5 0 0 1 5 5l-8.5 8.5a2 2 0 0 1-3-3L14 7"],
};

function icon(name) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", "icon");
  svg.setAttribute("aria-hidden", "true");
  for (const d of ICONS[name]) {
    const path = document.createElementNS(ns, "path");
    path.setAttribute("d", d);
    svg.append(path);
  }
  return svg;
}

function avatar(name) {
  const a = el("span", "avatar", initials(name));
  a.setAttribute("aria-hidden", "true");
  a.style.setProperty("--hue", String(nameHue(name)));
  return a;
}

/** The body as text, links and mentions: DOM nodes only, links http(s) only. */
function bodyNodes(body) {
  return segments(body).map((run) => {
    if (run.type === "link") {
      const a = el("a", "link", run.text);
      a.href = run.href;
      a.target = "_blank";
      a.rel = "noopener noreferrer";
      return a;
    }
    if (run.type === "mention") return el("span", isMe(run.name) ? "mention me" : "mention", run.text);
    return document.createTextNode(run.text);
  });
}

/** Only the server's own upload paths are linked (never a URL from elsewhere). */
function uploadUrl(url) {
  return typeof url === "string" && /^\/uploads\/[A-Za-z0-9_-]+(\/thumb)?$/.test(url) ? url : null;
}

function attachmentElement(a) {
  const url = uploadUrl(a.url);
  const thumb = uploadUrl(a.thumb_url);
  if (url && thumb && String(a.content_type).startsWith("image/")) {
    const link = el("a", "attachment image");
    link.href = url;
    link.target = "_blank";
    link.rel = "noopener noreferrer";
    const img = el("img");
    img.src = thumb;
    img.alt = a.name ?? "image";
    img.loading = "lazy";
    link.append(img);
    return link;
  }
  const link = el(url ? "a" : "span", "attachment file");
  if (url) {
    link.href = url;
    link.download = a.name ?? "";
  }
  link.append(icon("file"), el("span", "file-name", a.name ?? "file"), el("span", "file-size", formatSize(a.size)));
  return link;
}

function reactionsElement(m) {
  const row = el("div", "reactions");
  for (const [emoji, who] of Object.entries(m.reactions)) {
    if (!Array.isArray(who) || who.length === 0) continue;
    const mine = who.some(isMe);
    const chip = el("button", mine ? "reaction mine" : "reaction");
    chip.type = "button";
    chip.dataset.emoji = emoji;
    chip.title = `${who.join(", ")} reacted with ${emoji}`;
    chip.setAttribute("aria-pressed", String(mine));
    chip.setAttribute("aria-label", `${emoji} ${who.length}: ${who.join(", ")}${mine ? " (you reacted)" : ""}`);
    chip.append(el("span", "emoji", emoji), el("span", "n", String(who.length)));
    chip.addEventListener("click", () => react(m.id, emoji));
    row.append(chip);
  }
  return row;
}

/** A toolbar button: `content` is its text or an icon; `label` its accessible name. */
function actionButton(label, content, onClick, className = "") {
  const b = el("button", `action ${className}`.trim());
  b.append(content);
  b.type = "button";
  b.title = label;
  b.setAttribute("aria-label", label);
  b.addEventListener("click", (e) => {
    e.stopPropagation();
    onClick(b);
  });
  return b;
}

/**
 * One message: avatar, name and time unless it continues a group, body (or its editor),
 * attachments, reactions, the reply count; a toolbar on hover, focus or tap.
 */
function messageElement(m, { grouped, inThread }) {
  const mine = isMe(m.username);
  const li = el("li", "message");
  li.classList.toggle("grouped", grouped);
  li.classList.toggle("mine", mine);
  li.classList.toggle("deleted", m.deleted);
  li.classList.toggle("mentions-me", !mine && m.mentions.some(isMe));
  li.dataset.id = String(m.id);
  li.dataset.user = m.username;
  const gutter = el("div", "gutter");
  if (grouped) {
    const t = el("time", "gutter-time", timeLabel(m.inserted_at));
    t.dateTime = m.inserted_at;
    gutter.append(t);
  } else gutter.append(avatar(m.username));
  const content = el("div", "content");
  if (grouped) content.append(el("span", "visually-hidden", `${m.username}, ${timeLabel(m.inserted_at)}: `));
  else {
    const meta = el("div", "meta");
    const when = el("time", "", timeLabel(m.inserted_at));
    when.dateTime = m.inserted_at;
    when.title = new Date(m.inserted_at).toLocaleString();
    meta.append(el("span", "who", m.username), when);
    content.append(meta);
  }
  if (m.deleted) {
    content.append(el("div", "body tombstone", "message deleted"));
  } else if (state.editing === m.id) {
    content.append(editorElement(m));
  } else {
    const body = el("div", "body");
    body.append(...bodyNodes(m.body));
    content.append(body);
    if (m.edited_at) content.append(el("span", "edited", "(edited)"));
  }
  if (!m.deleted && m.attachments.length) {
    const list = el("div", "attachments");
    list.append(...m.attachments.map(attachmentElement));
    content.append(list);
  }
  if (!m.deleted && Object.keys(m.reactions).length) content.append(reactionsElement(m));
  if (!inThread && m.parent_id === null && m.reply_count > 0) {
    const n = m.reply_count;
    const text = `${n} ${n === 1 ? "reply" : "replies"}`;
    // The accessible name starts with the visible text (WCAG 2.5.3).
    content.append(actionButton(`${text}, open the thread`, text, () => openThread(m.id), "reply-count"));
  }
  li.append(gutter, content);
  if (!m.deleted) {
    const bar = el("div", "actions");
    bar.setAttribute("role", "toolbar");
    bar.setAttribute("aria-label", `Actions for ${m.username}'s message`);
    bar.append(actionButton("Add a reaction", icon("smile"), (b) => openPicker(m.id, b), "react"));
    if (!inThread && m.parent_id === null) bar.append(actionButton("Reply in thread", icon("reply"), () => openThread(m.id), "reply"));
    if (mine) {
      bar.append(actionButton("Edit", icon("edit"), () => startEdit(m.id), "edit"));
      bar.append(actionButton("Delete", icon("trash"), () => deleteMessage(m.id), "delete"));
    }
    li.append(bar);
  }
  li.addEventListener("click", (e) => {
    // A tap shows the toolbar on touch screens (no hover there).
    if (e.target.closest("a, button, textarea")) return;
    for (const other of document.querySelectorAll(".message.active")) if (other !== li) other.classList.remove("active");
    li.classList.toggle("active");
  });
  return li;
}

function editorElement(m) {
  const form = el("form", "editor");
  const area = el("textarea");
  area.value = m.body;
  area.rows = 2;
  area.setAttribute("aria-label", "Edit message");
  const save = el("button", "small", "Save");
  save.type = "submit";
  const cancel = el("button", "secondary small", "Cancel");
  cancel.type = "button";
  cancel.addEventListener("click", () => stopEdit());
  form.append(area, save, cancel);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    saveEdit(m.id, area.value);
  });
  area.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      form.requestSubmit();
    } else if (e.key === "Escape") {
      e.stopPropagation();
      stopEdit();
    }
  });
  queueMicrotask(() => {
    area.focus();
    area.setSelectionRange(area.value.length, area.value.length);
  });
  return form;
}

/** A message this page sent and the server has not confirmed (yet). */
function pendingElement(p, grouped) {
  const li = el("li", `message mine pending ${p.state}`);
  li.classList.toggle("grouped", grouped);
  li.dataset.clientId = p.client_id;
  const gutter = el("div", "gutter");
  if (!grouped) gutter.append(avatar(state.username));
  const content = el("div", "content");
  if (!grouped) {
    const meta = el("div", "meta");
    meta.append(el("span", "who", state.username));
    content.append(meta);
  }
  const body = el("div", "body");
  body.append(...bodyNodes(p.body));
  content.append(body);
  if (p.attachments.length) {
    const list = el("div", "attachments");
    list.append(...p.attachments.map(attachmentElement));
    content.append(list);
  }
  const note = el("div", "pending-note");
  if (p.state === "failed") {
    note.append(el("span", "error", `Not sent: ${p.reason}`));
    note.append(actionButton("Try again", "Retry", () => sendPending(p), "retry"));
    note.append(actionButton("Discard", "Discard", () => discardPending(p), "discard"));
  } else {
    note.textContent = p.state === "waiting" ? "Waiting for the connection — will be sent automatically" : "Sending…";
  }
  content.append(note);
  li.append(gutter, content);
  return li;
}

/** Each message object's JSON, computed once (an update brings a new object). */
const messageJson = new WeakMap();

/** A pure signature of what an element shows: the element is rebuilt only when it changes. */
function signature(m, grouped) {
  let json = messageJson.get(m);
  if (json === undefined) {
    json = JSON.stringify(m);
    messageJson.set(m, json);
  }
  return `${grouped}|${state.editing === m.id}|${state.username}|${json}`;
}

const cache = new Map(); // key → {sig, node}
/** Keys used by the current render(): the others (settled pending lines, …) are dropped. */
const used = new Set();

function keyed(key, sig, build) {
  used.add(key);
  const hit = cache.get(key);
  if (hit && hit.sig === sig) return hit.node;
  const node = build();
  cache.set(key, { sig, node });
  return node;
}

/** Puts `nodes` into `parent` in order, moving only what is out of place (focus survives). */
function reconcile(parent, nodes) {
  nodes.forEach((node, i) => {
    if (parent.children[i] !== node) parent.insertBefore(node, parent.children[i] ?? null);
  });
  while (parent.children.length > nodes.length) parent.lastElementChild.remove();
}

function listItems(messages, pending, prefix, inThread) {
  const items = [];
  const now = new Date();
  let prev = null;
  let day = null;
  for (const m of messages) {
    const d = dayKey(m.inserted_at);
    if (!inThread && d !== day) {
      const label = dayLabel(m.inserted_at, now);
      items.push(
        keyed(`${prefix}day:${d}`, label, () => {
          const li = el("li", "day");
          li.append(el("span", "", label));
          return li;
        }),
      );
      day = d;
      prev = null;
    }
    if (!inThread && m.id === state.unseenFrom) {
      items.push(
        keyed(`${prefix}unseen`, "", () => {
          const li = el("li", "unseen-marker");
          li.append(el("span", "", "New messages"));
          return li;
        }),
      );
      prev = null;
    }
    const grouped = continuesGroup(prev, m) && !prev.deleted && !m.deleted;
    items.push(keyed(`${prefix}m:${m.id}`, signature(m, grouped), () => messageElement(m, { grouped, inThread })));
    prev = m;
  }
  const nowIso = now.toISOString();
  for (const p of pending) {
    const fake = { username: state.username, inserted_at: nowIso };
    const grouped = continuesGroup(prev, fake) && !prev?.deleted;
    items.push(keyed(`${prefix}p:${p.client_id}`, JSON.stringify([p, grouped]), () => pendingElement(p, grouped)));
    prev = fake;
  }
  return items;
}

function nearBottom(box) {
  return box.scrollHeight - box.scrollTop - box.clientHeight < 80;
}

function scrollToBottom() {
  const box = $("messages");
  box.scrollTop = box.scrollHeight;
  state.stick = true;
}

function render() {
  used.clear();
  const top = state.timeline.topLevel();
  const pending = state.timeline.pendingIn(null);
  reconcile($("message-list"), listItems(top, pending, "", false));
  const empty = state.everJoined && top.length === 0 && pending.length === 0;
  $("empty-state").hidden = !empty;
  $("empty-room").textContent = `#${state.room ?? ""}`;
  // No scrolling here: reading the layout on every message would lay the list out each
  // time. The resize observer below follows the bottom once per frame instead.
  renderJump();
  if (state.thread) renderThread();
  for (const key of cache.keys()) if (!used.has(key)) cache.delete(key);
}

function renderJump() {
  const jump = $("jump");
  jump.hidden = state.stick || state.unseenCount === 0;
  const n = state.unseenCount;
  jump.textContent = `↓ ${n} new ${n === 1 ? "message" : "messages"}`;
}

/** A message arrived: counted as unseen when the user is scrolled up, announced if not mine. */
function arrived(m) {
  if (m.parent_id === null && !isMe(m.username) && !state.stick) {
    if (state.unseenFrom === null) state.unseenFrom = m.id;
    state.unseenCount += 1;
  }
  if (!isMe(m.username)) {
    const text = m.body || (m.attachments.length ? "sent a file" : "");
    $("announcer").textContent = `${m.username}${m.parent_id === null ? "" : " (in a thread)"}: ${text}`;
  }
}

function renderPresence() {
  // One entry per account (`user:<id>`) or guest (`guest:<id>`), a meta per tab.
  const people = state.presence
    .list((key, { metas }) => ({
      key,
      name: metas[0]?.username ?? key,
      guest: metas[0]?.guest ?? !key.startsWith("user:"),
      tabs: metas.length,
    }))
    .sort((a, b) => a.name.localeCompare(b.name));
  const ul = $("presence");
  ul.replaceChildren(
    ...people.map(({ key, name, guest, tabs }) => {
      const me = state.session ? key === `user:${state.session.user.id}` : guest && name === state.username;
      const li = document.createElement("li");
      li.className = me ? "me" : "";
      li.dataset.user = name;
      const dot = document.createElement("span");
      dot.className = "dot";
      let label = document.createElement("span");
      if (state.session && !guest && !me) {
        // A registered user's name opens a direct message.
        label = document.createElement("button");
        label.type = "button";
        label.className = "dm";
        label.title = `Message ${name}`;
        label.addEventListener("click", () => openDm(name));
      }
      label.textContent = name + (me ? " (you)" : "");
      li.append(dot, label);
      if (guest) {
        const mark = document.createElement("span");
        mark.className = "guest-mark";
        mark.textContent = "guest";
        li.append(mark);
      }
      if (tabs > 1) {
        const count = document.createElement("span");
        count.className = "tabs";
        count.textContent = `${tabs} tabs`;
        li.append(count);
      }
      return li;
    }),
  );
  $("online-count").textContent = String(people.length);
}

function renderTyping() {
  const names = [...state.typing.keys()];
  $("typing").textContent =
    names.length === 0 ? "" : names.length === 1 ? `${names[0]} is typing…` : `${names.join(", ")} are typing…`;
}

function clearTyping(name) {
  if (!state.typing.has(name)) return;
  clearTimeout(state.typing.get(name));
  state.typing.delete(name);
  renderTyping();
}

// ---- the channel ----

function showLogin(error = "") {
  $("chat").hidden = true;
  $("login").hidden = false;
  $("room-name").textContent = "";
  $("leave-guest").hidden = true;
  $("connection-banner").hidden = true;
  $("login-error").textContent = error;
}

function leaveRoom() {
  if (state.channel) state.channel.leave();
  state.channel = null;
  state.presence = null;
  state.joined = false;
  state.everJoined = false;
  state.timeline = new Timeline();
  state.noOlder = false;
  state.unseenFrom = null;
  state.unseenCount = 0;
  state.stick = true;
  state.editing = null;
  clearTimeout(state.retryTimer);
  closeThread();
  closePicker();
  cache.clear();
  $("message-list").replaceChildren();
  $("presence").replaceChildren();
  $("history-status").textContent = "";
  $("empty-state").hidden = true;
  for (const timer of state.typing.values()) clearTimeout(timer);
  state.typing.clear();
  renderTyping();
}

function joinRoom(username, room) {
  leaveRoom();
  connect();
  state.username = username;
  state.room = room;
  // A function: phoenix.js calls it on every rejoin, so each rejoin asks for what it missed.
  const channel = state.socket.channel(`room:${room}`, () => {
    const params = { username: state.username };
    if (state.timeline.lastId !== null) params.after_id = state.timeline.lastId;
    return params;
  });
  const presence = new Presence(channel);
  presence.onSync(renderPresence);
  channel.on("new_msg", (m) => {
    clearTyping(m.username);
    for (const added of state.timeline.merge([m])) arrived(added);
    render();
    markRead(channel, m.id);
  });
  channel.on("msg_updated", (m) => {
    state.timeline.merge([m]);
    if (state.editing === m.id && m.deleted) state.editing = null;
    render();
  });
  channel.on("reaction", ({ id, reactions }) => {
    if (state.timeline.setReactions(id, reactions)) render();
  });
  channel.on("typing", ({ username: who }) => {
    if (who === state.username) return;
    clearTimeout(state.typing.get(who));
    state.typing.set(
      who,
      setTimeout(() => {
        state.typing.delete(who);
        renderTyping();
      }, TYPING_SHOW_MS),
    );
    renderTyping();
  });
  channel.onError(() => {
    if (state.channel !== channel) return;
    setStatus("reconnecting");
    lostChannel();
  });
  channel
    .join()
    .receive("ok", (reply) => {
      if (state.channel !== channel) return;
      const messages = reply?.messages ?? [];
      const first = !state.everJoined;
      $("login").hidden = true;
      $("chat").hidden = false;
      $("leave-guest").hidden = Boolean(state.session);
      if (!state.session) sessionStorage.setItem("phx-chat:guest-room", room);
      const entry = state.rooms.find((r) => r.room === room);
      $("room-name").textContent = entry?.kind === "dm" ? `@${entry.title}` : `#${room}`;
      if (reply?.gap) {
        // Too much was missed: show the latest page instead of a list with a hole.
        state.timeline.replace(messages);
        state.noOlder = false;
        state.unseenFrom = null;
        state.unseenCount = 0;
        cache.clear();
        state.stick = true;
      } else {
        const added = state.timeline.merge(messages);
        if (!first) added.forEach(arrived);
      }
      if (first) state.noOlder = messages.length < HISTORY_PAGE;
      state.everJoined = true;
      state.joined = true;
      setConnected(true);
      setStatus("online");
      render();
      if (first) settleScroll();
      const last = messages.at(-1);
      if (last) markRead(channel, last.id);
      if (state.session) refreshRooms();
      flushPending();
      if (first) $("body").focus({ preventScroll: true });
    })
    .receive("error", ({ reason }) => {
      // Don't let phoenix.js rejoin forever with a name the server refuses.
      channel.leave();
      if (state.channel === channel) {
        state.channel = null;
        state.joined = false;
      }
      sessionStorage.removeItem("phx-chat:guest-room");
      const text = reason === "unavailable" ? "The chat is unavailable right now, try again soon." : reason;
      if (state.session) {
        // Signed in: stay, say why (e.g. "unauthorized" for a private room).
        $("sidebar-error").textContent = `#${room}: ${text}`;
        return;
      }
      showLogin(text);
    });
  state.channel = channel;
  state.presence = presence;
}

/** After the first render: once more after layout and fonts, so the newest message shows. */
function settleScroll() {
  scrollToBottom();
  requestAnimationFrame(() => state.stick && scrollToBottom());
  document.fonts?.ready.then(() => state.stick && scrollToBottom());
}

function loadOlder() {
  const channel = state.channel;
  const oldest = state.timeline.oldestTopLevelId();
  if (!channel || !state.joined || state.loadingOlder || state.noOlder || oldest === null) return;
  state.loadingOlder = true;
  $("history-status").textContent = "Loading older messages…";
  const done = () => setTimeout(() => (state.loadingOlder = false), 300);
  channel
    .push("history", { before_id: oldest, limit: HISTORY_PAGE })
    .receive("ok", ({ messages }) => {
      if (messages.length < HISTORY_PAGE) state.noOlder = true;
      const box = $("messages");
      const before = box.scrollHeight;
      state.timeline.merge(messages);
      render();
      box.scrollTop += box.scrollHeight - before;
      $("history-status").textContent = state.noOlder ? "This is the beginning of the room." : "";
      done();
    })
    .receive("error", ({ reason }) => {
      $("history-status").textContent = `Could not load history: ${reason}`;
      done();
    })
    .receive("timeout", () => {
      $("history-status").textContent = "Could not load history (timeout).";
      done();
    });
}

// ---- sending: pending messages, re-sent until the server has them ----

function submitMessage(input, parentId, errorEl) {
  const body = input.value.trim();
  const attachments = parentId === null ? state.staged : [];
  if (!body && attachments.length === 0) return;
  const length = bodyLength(body);
  if (length > BODY_MAX) {
    errorEl.textContent = `Not sent: the message has ${length} characters, ${length - BODY_MAX} over the limit of ${BODY_MAX}. Shorten it or split it.`;
    return;
  }
  if (!state.channel) return;
  if (state.timeline.pending.length >= PENDING_MAX) {
    errorEl.textContent = `Not sent: ${PENDING_MAX} messages are already waiting for the connection. Your text is kept.`;
    return;
  }
  errorEl.textContent = "";
  const p = state.timeline.addPending({ body, parent_id: parentId, attachments });
  // The message clears this author's indicator for the others: no late "typing" after it.
  clearTimeout(state.typingTimer);
  state.typingTimer = null;
  input.value = "";
  autoGrow(input);
  updateCounter();
  if (parentId === null) {
    state.staged = [];
    renderStaged();
    state.unseenFrom = null;
    state.unseenCount = 0;
    state.stick = true;
  }
  render();
  if (parentId === null) scrollToBottom();
  else scrollThreadToBottom();
  sendPending(p);
}

function sendPending(p) {
  const channel = state.channel;
  p.attempt = (p.attempt ?? 0) + 1;
  const attempt = p.attempt;
  if (!channel || !state.joined) {
    p.state = "waiting";
    render();
    return;
  }
  p.state = "sending";
  const payload = { body: p.body, client_id: p.client_id };
  if (p.parent_id !== null) payload.parent_id = p.parent_id;
  if (p.attachments.length) payload.attachments = p.attachments.map((a) => a.id);
  const current = () => p.attempt === attempt && state.timeline.pending.includes(p);
  channel
    .push("new_msg", payload, PUSH_TIMEOUT_MS)
    .receive("ok", ({ id }) => {
      state.timeline.acknowledge(p.client_id, id);
      render();
    })
    .receive("error", ({ reason }) => {
      if (!current()) return;
      if (RETRYABLE.has(reason)) {
        p.state = "waiting";
        scheduleRetry();
      } else Object.assign(p, { state: "failed", reason });
      render();
    })
    .receive("timeout", () => {
      if (!current()) return;
      p.state = "waiting";
      scheduleRetry();
      render();
    });
  render();
}

/** Sends every message still waiting (on join and rejoin, and after a refusal for now). */
function flushPending() {
  for (const p of state.timeline.pending) if (p.state === "waiting" || p.state === "sending") sendPending(p);
}

function scheduleRetry() {
  clearTimeout(state.retryTimer);
  state.retryTimer = setTimeout(() => state.joined && flushPending(), RETRY_AFTER_MS);
}

function discardPending(p) {
  state.timeline.pending = state.timeline.pending.filter((x) => x !== p);
  render();
}

// ---- reactions, edits, deletes ----

function showActionError(reason) {
  const target = state.thread ? $("thread-error") : $("send-error");
  target.textContent = reason;
}

function react(id, emoji) {
  closePicker();
  state.channel
    ?.push("react", { id, emoji })
    .receive("ok", ({ reactions }) => state.timeline.setReactions(id, reactions) && render())
    .receive("error", ({ reason }) => showActionError(`Reaction not added: ${reason}`));
}

function openPicker(id, anchor) {
  closePicker();
  const picker = el("div", "picker");
  picker.id = "picker";
  picker.setAttribute("role", "group");
  picker.setAttribute("aria-label", "Pick a reaction");
  for (const emoji of REACTIONS) {
    const b = el("button", "pick", emoji);
    b.type = "button";
    b.setAttribute("aria-label", `React with ${emoji}`);
    b.addEventListener("click", (e) => {
      e.stopPropagation();
      react(id, emoji);
    });
    picker.append(b);
  }
  document.body.append(picker);
  const r = anchor.getBoundingClientRect();
  const width = picker.offsetWidth;
  const left = Math.max(8, Math.min(r.right - width, window.innerWidth - width - 8));
  const top = r.top - picker.offsetHeight - 6 > 8 ? r.top - picker.offsetHeight - 6 : r.bottom + 6;
  picker.style.left = `${left}px`;
  picker.style.top = `${top}px`;
  picker.querySelector("button").focus();
  picker.returnFocus = anchor;
}

function closePicker() {
  const picker = $("picker");
  if (!picker) return false;
  picker.remove();
  return true;
}

function startEdit(id) {
  state.editing = id;
  render();
}

function stopEdit() {
  const id = state.editing;
  state.editing = null;
  render();
  document.querySelector(`.message[data-id="${id}"] .action.edit`)?.focus({ preventScroll: true });
}

function saveEdit(id, text) {
  const body = text.trim();
  const m = state.timeline.byId.get(id);
  if (m && body === m.body) return stopEdit();
  if (bodyLength(body) > BODY_MAX) return showActionError(`Not saved: over the limit of ${BODY_MAX} characters.`);
  if (!body) return showActionError("Not saved: a message cannot be empty (delete it instead).");
  state.channel
    ?.push("edit_msg", { id, body })
    .receive("ok", () => {
      if (state.editing === id) stopEdit();
    })
    .receive("error", ({ reason }) => showActionError(`Not saved: ${reason}`))
    .receive("timeout", () => showActionError("Not saved: no answer from the server."));
}

function deleteMessage(id) {
  if (!window.confirm("Delete this message? It is replaced by “message deleted” for everyone.")) return;
  state.channel
    ?.push("delete_msg", { id })
    .receive("error", ({ reason }) => showActionError(`Not deleted: ${reason}`))
    .receive("timeout", () => showActionError("Not deleted: no answer from the server."));
}

// ---- threads: a side panel (full screen on phones) ----

function openThread(parentId) {
  if (!state.channel) return;
  state.thread = { parentId, noOlder: false, loading: true, stick: true, returnFocus: document.activeElement };
  $("thread-panel").hidden = false;
  $("chat").classList.add("thread-open");
  $("thread-error").textContent = "";
  renderThread();
  state.channel
    .push("thread", { parent_id: parentId, limit: THREAD_PAGE })
    .receive("ok", ({ parent, messages }) => {
      if (state.thread?.parentId !== parentId) return;
      state.timeline.merge([parent, ...messages]);
      state.thread.loading = false;
      state.thread.noOlder = messages.length < THREAD_PAGE;
      render();
      scrollThreadToBottom();
    })
    .receive("error", ({ reason }) => ($("thread-error").textContent = `Could not open the thread: ${reason}`));
  $("thread-body").focus();
}

function loadOlderReplies() {
  const t = state.thread;
  const oldest = t && state.timeline.replies(t.parentId)[0];
  if (!t || !oldest || t.loading) return;
  t.loading = true;
  state.channel
    ?.push("thread", { parent_id: t.parentId, before_id: oldest.id, limit: THREAD_PAGE })
    .receive("ok", ({ messages }) => {
      t.loading = false;
      t.noOlder = messages.length < THREAD_PAGE;
      state.timeline.merge(messages);
      render();
    })
    .receive("error", ({ reason }) => {
      t.loading = false;
      $("thread-error").textContent = reason;
    });
}

function closeThread() {
  if (!state.thread) return false;
  const back = state.thread.returnFocus;
  state.thread = null;
  $("thread-panel").hidden = true;
  $("chat").classList.remove("thread-open");
  $("thread-list").replaceChildren();
  if (back?.isConnected) back.focus({ preventScroll: true });
  return true;
}

function renderThread() {
  const t = state.thread;
  const parent = state.timeline.byId.get(t.parentId);
  const replies = state.timeline.replies(t.parentId);
  const items = parent ? listItems([parent], [], "t:parent:", true) : [];
  if (parent) {
    const n = parent.reply_count;
    items.push(keyed("t:count", String(n), () => el("li", "thread-count", `${n} ${n === 1 ? "reply" : "replies"}`)));
  }
  items.push(...listItems(replies, state.timeline.pendingIn(t.parentId), "t:", true));
  reconcile($("thread-list"), items);
  $("thread-older").hidden = t.noOlder || replies.length === 0;
  $("thread-title").textContent = parent ? `Thread — ${parent.username}` : "Thread";
}

function scrollThreadToBottom() {
  const scroll = $("thread-scroll");
  scroll.scrollTop = scroll.scrollHeight;
  if (state.thread) state.thread.stick = true;
}

// ---- attachments (signed-in users): uploaded first, sent with the next message ----

async function upload(file) {
  $("send-error").textContent = `Uploading ${file.name}…`;
  try {
    const res = await fetch(`/api/uploads?name=${encodeURIComponent(file.name)}`, {
      method: "POST",
      headers: { authorization: `Bearer ${state.session?.token ?? ""}` },
      body: file,
    });
    const body = await res.json().catch(() => ({}));
    if (res.status === 201) {
      state.staged.push(body);
      $("send-error").textContent = "";
      renderStaged();
    } else {
      $("send-error").textContent = `Upload refused: ${body.error ?? `error ${res.status}`}`;
    }
  } catch {
    $("send-error").textContent = "Upload failed: the server cannot be reached.";
  }
}

function renderStaged() {
  $("staged").replaceChildren(
    ...state.staged.map((a) => {
      const chip = el("span", "staged-file");
      chip.append(icon("clip"), el("span", "", `${a.name} (${formatSize(a.size)})`));
      const remove = actionButton(`Remove ${a.name}`, "✕", () => {
        state.staged = state.staged.filter((x) => x !== a);
        renderStaged();
      });
      chip.append(remove);
      return chip;
    }),
  );
}

// ---- notifications ----

function toast(text, onOpen) {
  const box = el("div", "toast");
  box.append(el("span", "", text));
  if (onOpen) {
    const open = el("button", "small", "Open");
    open.type = "button";
    open.addEventListener("click", () => {
      box.remove();
      onOpen();
    });
    box.append(open);
  }
  $("toasts").append(box);
  setTimeout(() => box.remove(), TOAST_MS);
}

function mentioned({ room, username, body }) {
  const text = `${username} mentioned you in #${room}: ${body}`;
  toast(text, room === state.room ? null : () => switchRoom(room));
  if (document.visibilityState === "hidden" && "Notification" in window && Notification.permission === "granted") {
    new Notification(`${username} in #${room}`, { body });
  }
}

// ---- the composer ----

/**
 * Tells the room this user is typing, at most every TYPING_SEND_EVERY_MS (the server drops
 * more than one a second). Typing inside that interval sends once at its end, if there is
 * still text, so a new message right after the last one is announced too.
 */
function announceTyping(area) {
  const wait = state.lastTypingSent + TYPING_SEND_EVERY_MS - Date.now();
  if (wait > 0) {
    if (!state.typingTimer) {
      state.typingTimer = setTimeout(() => {
        state.typingTimer = null;
        if (area.value.trim()) announceTyping(area);
      }, wait);
    }
    return;
  }
  if (!state.channel || !state.joined) return;
  state.lastTypingSent = Date.now();
  state.channel.push("typing", {});
}

/** Grows the textarea with its text, up to the CSS max-height (about five lines). */
function autoGrow(area) {
  area.style.height = "auto";
  const border = area.offsetHeight - area.clientHeight;
  area.style.height = `${area.scrollHeight + border}px`;
}

function updateCounter() {
  const n = bodyLength($("body").value);
  const counter = $("counter");
  counter.classList.toggle("over", n > BODY_MAX);
  counter.textContent =
    n < COUNTER_FROM ? "" : n > BODY_MAX ? `${n} / ${BODY_MAX} — ${n - BODY_MAX} too many` : `${n} / ${BODY_MAX}`;
}

// ---- accounts: sessions, the sidebar (user:<id>), private rooms, DMs ----

function markRead(channel, id) {
  if (!state.session || channel !== state.channel || document.visibilityState === "hidden") return;
  channel.push("read", { id });
  setUnread(state.room, 0);
}

function setUnread(room, unread) {
  const entry = state.rooms.find((r) => r.room === room);
  if (entry && entry.unread !== unread) {
    entry.unread = unread;
    renderSidebar();
  }
}

function renderSidebar() {
  const ul = $("room-list");
  ul.replaceChildren(
    ...state.rooms.map((r) => {
      const li = document.createElement("li");
      li.dataset.room = r.room;
      li.className = r.room === state.room ? "current" : "";
      const kind = document.createElement("span");
      kind.className = "kind";
      kind.textContent = r.kind === "dm" ? "@" : r.kind === "private" ? "◆" : "#";
      const title = document.createElement("span");
      title.className = "title";
      title.textContent = r.title;
      li.append(kind, title);
      if (r.unread > 0) {
        const badge = document.createElement("span");
        badge.className = "badge";
        badge.textContent = r.unread >= 100 ? "99+" : String(r.unread);
        li.append(badge);
      }
      li.addEventListener("click", () => switchRoom(r.room));
      return li;
    }),
  );
  const current = state.rooms.find((r) => r.room === state.room);
  $("invite-form").hidden = current?.kind !== "private";
  $("leave-room").hidden = !current || current.kind === "dm";
}

async function refreshDirectory() {
  try {
    const res = await fetch("/api/rooms");
    const { rooms } = await res.json();
    $("directory").replaceChildren(
      ...rooms.map(({ room, members, online }) => {
        const li = document.createElement("li");
        li.dataset.room = room;
        li.textContent = `#${room}`;
        const counts = document.createElement("span");
        counts.className = "counts";
        counts.textContent = `${online} online · ${members} ${members === 1 ? "member" : "members"}`;
        li.append(counts);
        li.addEventListener("click", () => switchRoom(room));
        return li;
      }),
    );
  } catch {
    // The directory is a convenience: the sidebar works without it.
  }
}

function refreshRooms() {
  refreshDirectory();
  state.userChannel?.push("rooms", {}).receive("ok", ({ rooms }) => {
    state.rooms = rooms;
    renderSidebar();
  });
}

function switchRoom(room) {
  // No reload: leave one channel, join the other (the hash keeps the link shareable).
  $("sidebar-error").textContent = "";
  if (roomFromHash() !== room) history.replaceState(null, "", `#${encodeURIComponent(room)}`);
  joinRoom(state.username, room);
  renderSidebar();
}

function startSignedIn(session, room) {
  state.session = session;
  localStorage.setItem("phx-chat:session", JSON.stringify(session));
  state.username = session.user.username;
  $("chat").classList.add("signed-in");
  $("sidebar").hidden = false;
  $("me").textContent = session.user.username;
  $("attach-label").hidden = false;
  connect();
  const channel = state.socket.channel(`user:${session.user.id}`, {});
  channel.on("activity", ({ room, id }) => {
    const entry = state.rooms.find((r) => r.room === room);
    if (!entry) return refreshRooms();
    entry.latest_id = id;
    if (room !== state.room) entry.unread += 1;
    state.rooms.sort((a, b) => b.latest_id - a.latest_id);
    renderSidebar();
  });
  channel.on("read", ({ room }) => setUnread(room, 0));
  channel.on("invited", refreshRooms);
  channel.on("dm", refreshRooms);
  channel.on("left", refreshRooms);
  channel.on("mention", mentioned);
  channel.join().receive("ok", ({ rooms }) => {
    state.rooms = rooms;
    renderSidebar();
  });
  state.userChannel = channel;
  joinRoom(session.user.username, room);
}

function signOutLocally(message = "") {
  state.session = null;
  localStorage.removeItem("phx-chat:session");
  leaveRoom();
  state.userChannel?.leave();
  state.userChannel = null;
  state.rooms = [];
  state.socket?.disconnect();
  state.socket = null;
  $("chat").classList.remove("signed-in");
  $("sidebar").hidden = true;
  $("attach-label").hidden = true;
  state.staged = [];
  renderStaged();
  setStatus("offline");
  showLogin();
  $("account-error").textContent = message;
}

async function api(path, body) {
  try {
    const res = await fetch(`/api/${path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: await res.json().catch(() => ({})) };
  } catch {
    return { status: 0, body: { error: "the server cannot be reached" } };
  }
}

async function checkSession() {
  if (!state.session) return;
  const { status } = await api("session", { token: state.session.token });
  if (status === 401) signOutLocally("You were logged out.");
}

function openDm(username) {
  state.userChannel
    ?.push("open_dm", { username })
    .receive("ok", ({ room }) => {
      refreshRooms();
      switchRoom(room);
    })
    .receive("error", ({ reason }) => ($("sidebar-error").textContent = reason));
}

async function accountSubmit(path) {
  const username = $("acct-username").value.trim();
  const password = $("acct-password").value;
  $("account-error").textContent = "";
  const { status, body } = await api(path, { username, password });
  if (status === 200 || status === 201) {
    $("acct-password").value = "";
    startSignedIn(body, roomFromHash());
  } else {
    $("account-error").textContent = body.error ?? `error ${status}`;
  }
}

$("account-form").addEventListener("submit", (e) => {
  e.preventDefault();
  accountSubmit("login");
});
$("register-button").addEventListener("click", () => accountSubmit("register"));
$("logout").addEventListener("click", async () => {
  if (state.session) await api("logout", { token: state.session.token });
  signOutLocally();
});

$("new-room-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const room = $("new-room").value.trim();
  if (!room) return;
  state.userChannel
    ?.push("create_private", { room })
    .receive("ok", ({ room: created }) => {
      $("new-room").value = "";
      refreshRooms();
      switchRoom(created);
    })
    .receive("error", ({ reason }) => ($("sidebar-error").textContent = reason));
});

$("leave-room").addEventListener("click", () => {
  const room = state.room;
  state.userChannel?.push("leave_room", { room }).receive("ok", () => {
    leaveRoom();
    state.room = null;
    switchRoom(state.rooms.find((r) => r.room !== room)?.room ?? "lobby");
  });
});

$("invite-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const username = $("invite-username").value.trim();
  if (!username || !state.room) return;
  state.userChannel
    ?.push("invite", { room: state.room, username })
    .receive("ok", () => {
      $("invite-username").value = "";
      $("sidebar-error").textContent = `${username} was invited.`;
    })
    .receive("error", ({ reason }) => ($("sidebar-error").textContent = reason));
});

document.addEventListener("visibilitychange", () => {
  const last = state.timeline.lastId;
  if (document.visibilityState === "visible" && last !== null && state.channel) markRead(state.channel, last);
});

// ---- wiring ----

$("attach-icon").replaceWith(icon("clip"));

$("room").value = roomFromHash();
$("username").value = localStorage.getItem("phx-chat:username") ?? "";

$("login-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const username = $("username").value.trim();
  const room = $("room").value.trim() || "lobby";
  if (!USERNAME.test(username)) {
    $("login-error").textContent = "Names are 1–32 letters, digits, spaces, '_', '-' or '.'.";
    return;
  }
  if (!ROOM.test(room)) {
    $("login-error").textContent = "Rooms are 1–64 letters, digits, '_', '-' or '.'.";
    return;
  }
  $("login-error").textContent = "";
  localStorage.setItem("phx-chat:username", username);
  if (roomFromHash() !== room) history.replaceState(null, "", `#${encodeURIComponent(room)}`);
  joinRoom(username, room);
});

$("leave-guest").addEventListener("click", () => {
  // A guest leaves the room for the join form; a reload no longer rejoins.
  sessionStorage.removeItem("phx-chat:guest-room");
  leaveRoom();
  state.room = null;
  setStatus("offline");
  showLogin();
});

window.addEventListener("hashchange", () => {
  const room = roomFromHash();
  $("room").value = room;
  if (state.channel && room !== state.room && ROOM.test(room)) {
    joinRoom(state.username, room);
    if (state.session) renderSidebar();
  }
});

$("composer").addEventListener("submit", (e) => {
  e.preventDefault();
  submitMessage($("body"), null, $("send-error"));
});

$("thread-composer").addEventListener("submit", (e) => {
  e.preventDefault();
  if (state.thread) submitMessage($("thread-body"), state.thread.parentId, $("thread-error"));
});

for (const [area, form] of [
  [$("body"), $("composer")],
  [$("thread-body"), $("thread-composer")],
]) {
  area.addEventListener("keydown", (e) => {
    // Enter sends, Shift+Enter is a new line (and nothing is sent mid-composition, e.g. IME).
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
  area.addEventListener("input", () => {
    autoGrow(area);
    announceTyping(area);
  });
}

$("body").addEventListener("input", () => {
  updateCounter();
  if (bodyLength($("body").value) <= BODY_MAX && $("send-error").textContent.startsWith("Not sent: the message has")) {
    $("send-error").textContent = "";
  }
});

$("attach").addEventListener("change", async (e) => {
  const files = [...e.target.files];
  e.target.value = "";
  for (const file of files) await upload(file);
});

$("messages").addEventListener("scroll", () => {
  const box = $("messages");
  state.stick = nearBottom(box);
  if (state.stick && state.unseenCount > 0) {
    state.unseenCount = 0;
    renderJump();
  }
  if (box.scrollTop < 40) loadOlder();
});

// Content that grows later (images, fonts, the presence list, the textarea) keeps the
// newest message in view while the user is at the bottom.
const follow = new ResizeObserver(() => {
  if (state.stick) $("messages").scrollTop = $("messages").scrollHeight;
});
follow.observe($("messages"));
follow.observe($("message-list"));

$("thread-scroll").addEventListener("scroll", () => {
  if (state.thread) state.thread.stick = nearBottom($("thread-scroll"));
});
const followThread = new ResizeObserver(() => {
  if (state.thread?.stick) $("thread-scroll").scrollTop = $("thread-scroll").scrollHeight;
});
followThread.observe($("thread-scroll"));
followThread.observe($("thread-list"));

$("jump").addEventListener("click", () => {
  scrollToBottom();
  state.unseenCount = 0;
  renderJump();
  $("body").focus({ preventScroll: true });
});

$("thread-close").addEventListener("click", closeThread);
$("thread-older").addEventListener("click", loadOlderReplies);

document.addEventListener("keydown", (e) => {
  if (e.key !== "Escape") return;
  const picker = $("picker");
  if (picker) {
    const back = picker.returnFocus;
    closePicker();
    back?.focus();
  } else if (state.editing !== null) stopEdit();
  else closeThread();
});

document.addEventListener("click", (e) => {
  if (!e.target.closest("#picker")) closePicker();
});

if (state.session) {
  // A stored session: check it, then sign in without asking again.
  const stored = state.session;
  state.session = null;
  api("session", { token: stored.token }).then(({ status }) => {
    if (status === 200) startSignedIn(stored, roomFromHash());
    else localStorage.removeItem("phx-chat:session");
  });
} else if (sessionStorage.getItem("phx-chat:guest-room") && USERNAME.test(localStorage.getItem("phx-chat:username") ?? "")) {
  // A reload of a guest's tab goes back into the room (the hash names it), no form.
  joinRoom(localStorage.getItem("phx-chat:username"), roomFromHash());
} else if (localStorage.getItem("phx-chat:username")) $("username").focus();
else $("username").select();
