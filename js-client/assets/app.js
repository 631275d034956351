// The chat page: phoenix.js (the npm package as published, served as an ES module) on a
// `room:<name>` channel. All user text goes through textContent, never innerHTML.
import { Socket, Presence } from "/assets/phoenix.mjs";

const $ = (id) => document.getElementById(id);
const HISTORY_PAGE = 50;
const TYPING_SEND_EVERY_MS = 2000;
const TYPING_SHOW_MS = 3000;

const state = {
  socket: null,
  channel: null,
  presence: null,
  username: null,
  room: null,
  messages: [], // sorted by id
  oldestId: null,
  loadingOlder: false,
  noOlder: false,
  typing: new Map(), // username → timer
  lastTypingSent: 0,
};

// ---- validation (the server is authoritative; this only saves a round trip) ----

const USERNAME = /^[\p{L}\p{N} _.-]{1,32}$/u;
const ROOM = /^[\p{L}\p{N}_.-]{1,64}$/u;

function roomFromHash() {
  const raw = decodeURIComponent(location.hash.slice(1)).trim();
  return raw || "lobby";
}

// ---- connection state ----

function setStatus(text) {
  const el = $("status");
  el.textContent = text;
  el.dataset.state = text;
}

function connect() {
  if (state.socket) return;
  const socket = new Socket("/socket", {});
  socket.onOpen(() => setStatus("online"));
  socket.onError(() => setStatus("reconnecting"));
  socket.onClose(() => {
    if (state.socket === socket) setStatus("reconnecting");
  });
  setStatus("connecting");
  socket.connect();
  state.socket = socket;
}

// ---- rendering ----

function formatTime(iso) {
  const at = new Date(iso);
  return Number.isNaN(at.getTime()) ? "" : at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function messageElement(m) {
  const li = document.createElement("li");
  li.className = m.username === state.username ? "message mine" : "message";
  li.dataset.id = String(m.id);
  const meta = document.createElement("div");
  meta.className = "meta";
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = m.username;
  const when = document.createElement("time");
  when.dateTime = m.inserted_at;
  when.textContent = formatTime(m.inserted_at);
  meta.append(who, when);
  const body = document.createElement("div");
  body.className = "body";
  body.textContent = m.body;
  li.append(meta, body);
  return li;
}

function nearBottom(el) {
  return el.scrollHeight - el.scrollTop - el.clientHeight < 80;
}

/** Adds messages (deduplicated by id), keeping the list in id order. */
function addMessages(list, { keepScroll = false } = {}) {
  const box = $("messages");
  const ol = $("message-list");
  const stick = nearBottom(box);
  const before = box.scrollHeight;
  for (const m of list) {
    if (state.messages.some((x) => x.id === m.id)) continue;
    let at = state.messages.findIndex((x) => x.id > m.id);
    if (at < 0) at = state.messages.length;
    state.messages.splice(at, 0, m);
    ol.insertBefore(messageElement(m), ol.children[at] ?? null);
  }
  state.oldestId = state.messages.length ? state.messages[0].id : null;
  if (keepScroll) box.scrollTop += box.scrollHeight - before;
  else if (stick) box.scrollTop = box.scrollHeight;
}

function renderPresence() {
  const people = state.presence
    .list((name, { metas }) => ({ name, tabs: metas.length }))
    .sort((a, b) => a.name.localeCompare(b.name));
  const ul = $("presence");
  ul.replaceChildren(
    ...people.map(({ name, tabs }) => {
      const li = document.createElement("li");
      li.className = name === state.username ? "me" : "";
      li.dataset.user = name;
      const dot = document.createElement("span");
      dot.className = "dot";
      const label = document.createElement("span");
      label.textContent = name + (name === state.username ? " (you)" : "");
      li.append(dot, label);
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

// ---- the channel ----

function showLogin(error = "") {
  $("chat").hidden = true;
  $("login").hidden = false;
  $("room-name").textContent = "";
  $("login-error").textContent = error;
}

function leaveRoom() {
  if (state.channel) state.channel.leave();
  state.channel = null;
  state.presence = null;
  state.messages = [];
  state.oldestId = null;
  state.noOlder = false;
  $("message-list").replaceChildren();
  $("presence").replaceChildren();
  $("history-status").textContent = "";
  for (const timer of state.typing.values()) clearTimeout(timer);
  state.typing.clear();
  renderTyping();
}

function joinRoom(username, room) {
  leaveRoom();
  connect();
  state.username = username;
  state.room = room;
  const channel = state.socket.channel(`room:${room}`, () => ({ username: state.username }));
  const presence = new Presence(channel);
  presence.onSync(renderPresence);
  channel.on("new_msg", (m) => addMessages([m]));
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
  channel.onError(() => setStatus("reconnecting"));
  channel
    .join()
    .receive("ok", ({ messages }) => {
      // Also on every rejoin: the reply carries the latest messages, merged by id.
      $("login").hidden = true;
      $("chat").hidden = false;
      $("room-name").textContent = `#${room}`;
      addMessages(messages ?? []);
      if ((messages ?? []).length < HISTORY_PAGE) state.noOlder = true;
      setStatus("online");
      $("body").focus();
    })
    .receive("error", ({ reason }) => {
      // Don't let phoenix.js rejoin forever with a name the server refuses.
      channel.leave();
      if (state.channel === channel) state.channel = null;
      showLogin(reason === "unavailable" ? "The chat is unavailable right now, try again soon." : reason);
    });
  state.channel = channel;
  state.presence = presence;
}

function loadOlder() {
  const channel = state.channel;
  if (!channel || state.loadingOlder || state.noOlder || state.oldestId === null) return;
  state.loadingOlder = true;
  $("history-status").textContent = "Loading older messages…";
  channel
    .push("history", { before_id: state.oldestId, limit: HISTORY_PAGE })
    .receive("ok", ({ messages }) => {
      if (messages.length < HISTORY_PAGE) state.noOlder = true;
      addMessages(messages, { keepScroll: true });
      $("history-status").textContent = state.noOlder ? "This is the beginning of the room." : "";
    })
    .receive("error", ({ reason }) => ($("history-status").textContent = `Could not load history: ${reason}`))
    .receive("timeout", () => ($("history-status").textContent = "Could not load history (timeout)."));
  setTimeout(() => (state.loadingOlder = false), 300);
}

// ---- wiring ----

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

window.addEventListener("hashchange", () => {
  const room = roomFromHash();
  $("room").value = room;
  if (state.channel && room !== state.room && ROOM.test(room)) joinRoom(state.username, room);
});

$("composer").addEventListener("submit", (e) => {
  e.preventDefault();
  const input = $("body");
  const body = input.value.trim();
  if (!body || !state.channel) return;
  $("send-error").textContent = "";
  state.channel
    .push("new_msg", { body })
    .receive("ok", () => {
      if (input.value.trim() === body) input.value = "";
    })
    .receive("error", ({ reason }) => {
      $("send-error").textContent =
        reason === "unavailable" ? "Not sent: the chat is unavailable right now. Your text is kept." : `Not sent: ${reason}`;
    })
    .receive("timeout", () => ($("send-error").textContent = "Not sent: no answer from the server. Your text is kept."));
});

$("body").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) {
    e.preventDefault();
    $("composer").requestSubmit();
  }
});

$("body").addEventListener("input", () => {
  const now = Date.now();
  if (state.channel && now - state.lastTypingSent > TYPING_SEND_EVERY_MS) {
    state.lastTypingSent = now;
    state.channel.push("typing", {});
  }
});

$("messages").addEventListener("scroll", () => {
  if ($("messages").scrollTop < 40) loadOlder();
});

if (localStorage.getItem("phx-chat:username")) $("username").focus();
else $("username").select();
