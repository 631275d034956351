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

// ---- connection state ----

function setStatus(text) {
  const el = $("status");
  el.textContent = text;
  el.dataset.state = text;
}

function connect() {
  if (state.socket) return;
  // The token is read on every (re)connect, so a logged-out tab stops sending it.
  const socket = new Socket("/socket", { params: () => (state.session ? { token: state.session.token } : {}) });
  socket.onOpen(() => setStatus("online"));
  socket.onError(() => setStatus("reconnecting"));
  socket.onClose((event) => {
    if (state.socket === socket) setStatus("reconnecting");
    // 1001: the server closed every socket of this user (a logout in another tab).
    if (state.socket === socket && state.session && event?.code === 1001) checkSession();
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
  channel.on("new_msg", (m) => {
    addMessages([m]);
    markRead(channel, m.id);
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
  channel.onError(() => setStatus("reconnecting"));
  channel
    .join()
    .receive("ok", ({ messages }) => {
      // Also on every rejoin: the reply carries the latest messages, merged by id.
      $("login").hidden = true;
      $("chat").hidden = false;
      const entry = state.rooms.find((r) => r.room === room);
      $("room-name").textContent = entry?.kind === "dm" ? `@${entry.title}` : `#${room}`;
      addMessages(messages ?? []);
      const last = (messages ?? []).at(-1);
      if (last) markRead(channel, last.id);
      if (state.session) refreshRooms();
      if ((messages ?? []).length < HISTORY_PAGE) state.noOlder = true;
      setStatus("online");
      $("body").focus();
    })
    .receive("error", ({ reason }) => {
      // Don't let phoenix.js rejoin forever with a name the server refuses.
      channel.leave();
      if (state.channel === channel) state.channel = null;
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
  const last = state.messages.at(-1);
  if (document.visibilityState === "visible" && last && state.channel) markRead(state.channel, last.id);
});

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
  if (state.channel && room !== state.room && ROOM.test(room)) {
    joinRoom(state.username, room);
    if (state.session) renderSidebar();
  }
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

if (state.session) {
  // A stored session: check it, then sign in without asking again.
  const stored = state.session;
  state.session = null;
  api("session", { token: stored.token }).then(({ status }) => {
    if (status === 200) startSignedIn(stored, roomFromHash());
    else localStorage.removeItem("phx-chat:session");
  });
} else if (localStorage.getItem("phx-chat:username")) $("username").focus();
else $("username").select();
