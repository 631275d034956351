// The room's and the open thread's message lists: built from the timeline, with day
// separators, the "New messages" line and pending messages, reconciled into the DOM so an
// unchanged message keeps its element (and focus), and scrolled to follow the bottom.
import { continuesGroup, dayKey, dayLabel } from "/assets/format.js";
import { el } from "/assets/dom.js";
import { messageElement, pendingElement } from "/assets/message-view.js";
import { $, isMine, isMyName, myAuthor, roomInfo, state } from "/assets/state.js";

/** Each message object's JSON, computed once (an update brings a new object). */
const messageJson = new WeakMap();

/** A pure signature of what an element shows: the element is rebuilt only when it changes. */
function signature(m, grouped, shared) {
  let json = messageJson.get(m);
  if (json === undefined) {
    json = JSON.stringify(m);
    messageJson.set(m, json);
  }
  const who = `${myAuthor()}|${state.me?.username ?? state.username}|${isMyName(state.me?.username ?? "")}`;
  return `${grouped}|${shared}|${state.editing === m.id}|${state.expanded.has(m.id)}|${who}|${json}`;
}

/**
 * Names shown by more than one author among the room's messages and the people present
 * (folded as the server folds names for display: case and compatibility forms): their
 * messages carry a tag that tells the people apart.
 */
function sharedNames() {
  const authors = new Map();
  const note = (name, author) => {
    if (typeof name !== "string" || !author) return;
    const key = name.normalize("NFKC").toLowerCase();
    if (!authors.has(key)) authors.set(key, new Set());
    authors.get(key).add(author);
  };
  for (const m of state.timeline.byId.values()) note(m.username, m.author);
  state.presence?.list((key, { metas }) => note(metas[0]?.username, key));
  const shared = new Set();
  state.accountNames = new Set();
  for (const [key, set] of authors) {
    if (set.size > 1) shared.add(key);
    if ([...set].some((a) => a.startsWith("user:"))) state.accountNames.add(key);
  }
  return shared;
}

let shared = new Set();
const isShared = (name) => shared.has(String(name).normalize("NFKC").toLowerCase());

const cache = new Map(); // key → {sig, node}
/** Keys used by the current render(): the others (settled pending lines, …) are dropped. */
const used = new Set();

/** Forgets every built element (another room, or a list replaced after a gap). */
export function clearCache() {
  cache.clear();
}

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
    if (!inThread && m.id === state.unreadFrom) {
      items.push(
        keyed(`${prefix}unread`, "", () => {
          const li = el("li", "unread-marker");
          li.append(el("span", "", "New since you were last here"));
          return li;
        }),
      );
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
    const tagged = isShared(m.username);
    items.push(keyed(`${prefix}m:${m.id}`, signature(m, grouped, tagged), () => messageElement(m, { grouped, inThread, shared: tagged })));
    prev = m;
  }
  const nowIso = now.toISOString();
  for (const p of pending) {
    const fake = { username: state.me?.username ?? state.username, author: myAuthor(), inserted_at: nowIso };
    const grouped = continuesGroup(prev, fake) && !prev?.deleted;
    items.push(keyed(`${prefix}p:${p.client_id}`, JSON.stringify([p, grouped]), () => pendingElement(p, grouped)));
    prev = fake;
  }
  return items;
}

export function nearBottom(box) {
  return box.scrollHeight - box.scrollTop - box.clientHeight < 80;
}

export function scrollToBottom() {
  const box = $("messages");
  box.scrollTop = box.scrollHeight;
  state.stick = true;
}

/** After the first render: once more after layout and fonts, so the newest message shows. */
export function settleScroll() {
  scrollToBottom();
  requestAnimationFrame(() => state.stick && scrollToBottom());
  document.fonts?.ready.then(() => state.stick && scrollToBottom());
}

/** The key of a message item for the roving tabindex: its id, or its client_id if pending. */
export function itemKey(li) {
  return li.dataset.id ?? `p:${li.dataset.clientId}`;
}

function tabbable(li, on) {
  li.tabIndex = on ? 0 : -1;
  for (const c of li.querySelectorAll("a, button")) if (!c.closest("form.editor")) c.tabIndex = on ? 0 : -1;
}

/**
 * One message of `list` is in the Tab order, with its links and buttons: the current one
 * (state.roving), else the newest. ↑/↓ move it (keyboard.js).
 */
export function applyRoving(list) {
  const items = list.querySelectorAll(":scope > li.message");
  if (items.length === 0) return;
  const want = state.roving[list.id];
  let current = null;
  if (want !== undefined) for (const li of items) if (itemKey(li) === want) current = li;
  current ??= items[items.length - 1];
  for (const li of list.querySelectorAll(':scope > li.message[tabindex="0"]')) if (li !== current) tabbable(li, false);
  if (current.tabIndex !== 0) tabbable(current, true);
}

const renderHooks = [];

/** `hook()` runs after every render (file-links.js looks at the URLs shown). */
export function onRendered(hook) {
  renderHooks.push(hook);
}

export function render() {
  used.clear();
  shared = sharedNames();
  const top = state.timeline.topLevel();
  const pending = state.timeline.pendingIn(null);
  reconcile($("message-list"), listItems(top, pending, "", false));
  applyRoving($("message-list"));
  const empty = state.everJoined && top.length === 0 && pending.length === 0;
  $("empty-state").hidden = !empty;
  $("empty-room").textContent = state.room ? roomInfo(state.room).label : "";
  // No scrolling here: reading the layout on every message would lay the list out each
  // time. The resize observer (app.js) follows the bottom once per frame instead.
  renderJump();
  if (state.thread) renderThread();
  for (const key of cache.keys()) if (!used.has(key)) cache.delete(key);
  for (const hook of renderHooks) hook();
}

export function renderJump() {
  const jump = $("jump");
  jump.hidden = state.stick || state.unseenCount === 0;
  const n = state.unseenCount;
  jump.textContent = `↓ ${n} new ${n === 1 ? "message" : "messages"}`;
}

/** A message arrived: counted as unseen when the user is scrolled up, announced if not mine. */
export function arrived(m) {
  const mine = isMine(m);
  if (m.parent_id === null && !mine && !state.stick) {
    if (state.unseenFrom === null) state.unseenFrom = m.id;
    state.unseenCount += 1;
  }
  if (!mine) {
    const text = m.body || (m.attachments.length ? "sent a file" : "");
    $("announcer").textContent = `${m.username}${m.parent_id === null ? "" : " (in a thread)"}: ${text}`;
  }
}

/** The open thread's panel: its parent, the reply count, the replies and pending replies. */
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
  applyRoving($("thread-list"));
  $("thread-older").hidden = t.noOlder || replies.length === 0;
  $("thread-title").textContent = parent ? `Thread — ${parent.username}` : "Thread";
}

export function scrollThreadToBottom() {
  const scroll = $("thread-scroll");
  scroll.scrollTop = scroll.scrollHeight;
  if (state.thread) state.thread.stick = true;
}
