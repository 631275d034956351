// Search in the room: the `search` event (docs/chat.md), results in the right-hand pane,
// and a result opens its message in context: older pages of the room load until it is
// there (at most JUMP_PAGES of them), then it is scrolled to, flashed and focused; a
// thread reply opens its thread and is found there the same way.
import { dayLabel, timeLabel } from "/assets/format.js";
import { plainText } from "/assets/markup.js";
import { avatar, el } from "/assets/dom.js";
import { applyRoving } from "/assets/list-view.js";
import { closePane, openPane } from "/assets/panes.js";
import { fetchOlder } from "/assets/room-channel.js";
import { loadOlderReplies, openThread } from "/assets/threads.js";
import { $, state } from "/assets/state.js";

const PAGE = 20;
/** Pages of 100 loaded at most to reach a result (2 000 messages back). */
const JUMP_PAGES = 20;
const NARROW = window.matchMedia("(max-width: 1199px)");

/** The search shown: its query, results by id, and where the next page starts. */
let current = null;

function status(text) {
  $("search-status").textContent = text;
}

/** `text` with every term of `query` marked, as DOM nodes. */
function highlighted(text, query) {
  const terms = query.toLowerCase().split(/[^\p{L}\p{N}]+/u).filter(Boolean);
  if (terms.length === 0) return [document.createTextNode(text)];
  const re = new RegExp(terms.map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|"), "giu");
  const out = [];
  let at = 0;
  for (const m of text.matchAll(re)) {
    if (m.index > at) out.push(document.createTextNode(text.slice(at, m.index)));
    out.push(el("mark", "", m[0]));
    at = m.index + m[0].length;
  }
  if (at < text.length) out.push(document.createTextNode(text.slice(at)));
  return out;
}

function resultElement(m, query) {
  const li = el("li");
  const b = el("button", "result");
  b.type = "button";
  b.dataset.id = String(m.id);
  const meta = el("span", "meta");
  const when = `${dayLabel(m.inserted_at)} ${timeLabel(m.inserted_at)}`;
  meta.append(el("span", "who", m.username), ...(m.guest ? [el("span", "guest-badge", "guest")] : []), el("span", "", when));
  if (m.parent_id !== null) meta.append(el("span", "", "· in a thread"));
  const snippet = el("span", "snippet");
  snippet.append(...highlighted(plainText(m.body), query));
  b.append(avatar(m.username, m.author), meta, snippet);
  li.append(b);
  return li;
}

/** Searches the room for `query`; `before`: the next page after the shown results. */
export function search(query, before = null) {
  if (!state.channel || !state.joined) {
    openPane("search");
    status("Not connected: search again when the connection is back.");
    return;
  }
  openPane("search");
  if (before === null) {
    current = { query, byId: new Map(), before: null, count: 0 };
    $("search-results").replaceChildren();
    $("search-more").hidden = true;
    status(`Searching for “${query}”…`);
  }
  const search = current;
  const payload = { query, limit: PAGE };
  if (before !== null) payload.before_id = before;
  state.channel
    .push("search", payload)
    .receive("ok", ({ messages }) => {
      if (current !== search) return;
      for (const m of messages) search.byId.set(m.id, m);
      search.count += messages.length;
      search.before = messages.at(-1)?.id ?? search.before;
      $("search-results").append(...messages.map((m) => resultElement(m, query)));
      const more = messages.length === PAGE;
      $("search-more").hidden = !more;
      const n = search.count;
      status(n === 0 ? `No messages match “${query}”.` : `${n}${more ? "+" : ""} ${n === 1 ? "message matches" : "messages match"} “${query}”.`);
    })
    .receive("error", ({ reason }) => current === search && status(`Search failed: ${reason}`))
    .receive("timeout", () => current === search && status("Search failed: no answer from the server."));
}

function flash(li) {
  li.classList.remove("flash");
  void li.offsetWidth; // restarts the animation
  li.classList.add("flash");
}

/** Focuses message `id` of `list`, in the middle of the view, flashed. */
function reveal(list, id) {
  const li = list.querySelector(`:scope > li.message[data-id="${id}"]`);
  if (!li) return false;
  state.roving[list.id] = String(id);
  applyRoving(list);
  li.scrollIntoView({ block: "center" });
  li.focus({ preventScroll: true });
  flash(li);
  return true;
}

/** Opens search result `m` in context. */
async function openResult(m) {
  if (m.parent_id !== null) {
    await openThread(m.parent_id);
    for (let pages = 0; !state.timeline.byId.has(m.id) && pages < JUMP_PAGES; pages++) {
      if (!(await loadOlderReplies())) break;
    }
    if (state.thread) state.thread.stick = false;
    if (!reveal($("thread-list"), m.id)) $("thread-error").textContent = "That reply could not be found in the thread.";
    return;
  }
  for (let pages = 0; !state.timeline.byId.has(m.id) && !state.noOlder && pages < JUMP_PAGES; pages++) {
    status("Loading the conversation up to that message…");
    if ((await fetchOlder(100, false)) === 0) break;
  }
  if (!state.timeline.byId.has(m.id)) {
    status("That message is too far back to show in the room.");
    return;
  }
  status(`${current?.count ?? 0} ${current?.count === 1 ? "message matches" : "messages match"} “${current?.query ?? ""}”.`);
  // Below 1200 px the results cover the room: they step aside.
  if (NARROW.matches) closePane("search");
  state.stick = false;
  reveal($("message-list"), m.id);
}

export function closeSearch() {
  current = null;
  return closePane("search");
}

export function wireSearch() {
  $("search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const query = $("search").value.trim();
    if (query) search(query);
  });
  $("search-close").addEventListener("click", () => {
    closeSearch();
    $("search").focus();
  });
  $("search-more").addEventListener("click", () => current && search(current.query, current.before));
  $("search-results").addEventListener("click", (e) => {
    const b = e.target.closest("button.result");
    const m = b && current?.byId.get(Number(b.dataset.id));
    if (m) openResult(m);
  });
}
