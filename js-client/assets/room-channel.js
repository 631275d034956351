// The room: joining `room:<name>` (params a function, so every rejoin sends `after_id` and
// `after_seq`, docs/chat.md), its events (new_msg, msg_updated, reaction, typing,
// presence), the join reply (the first page, or what was missed and what changed, or a
// gap, or a reload when too much changed), refusals in words, older history on scroll-up,
// and leaving.
import { Presence } from "/assets/phoenix.mjs";
import { refusalText } from "/assets/format.js";
import { Timeline } from "/assets/timeline.js";
import { connect, lostChannel, setConnected, setStatus } from "/assets/connection.js";
import { el, kindMark } from "/assets/dom.js";
import { arrived, clearCache, nearBottom, render, settleScroll } from "/assets/list-view.js";
import { resetFileLinks } from "/assets/file-links.js";
import { closePane, showPeopleIfWanted } from "/assets/panes.js";
import { closePicker } from "/assets/message-actions.js";
import { clearAllTyping, clearTyping, renderPresence, showTyping } from "/assets/people.js";
import { flushPending } from "/assets/sending.js";
import { markRead, refreshRooms, renderSidebar, sidebarSay } from "/assets/sidebar.js";
import { closeThread, openThread } from "/assets/threads.js";
import { identityOf, unsentRooms, unsentStore, unsentSummary } from "/assets/unsent.js";
import { $, HISTORY_PAGE, RETRYABLE, isMine, myAuthor, roomInfo, state } from "/assets/state.js";

/** Where this person left off in each room: `phx-chat:seen:<who>:<room>` = the newest id seen. */
const seenKey = () => `phx-chat:seen:${encodeURIComponent(identityOf(state.session, state.username))}:${encodeURIComponent(state.room)}`;

function lastSeen() {
  const n = Number(localStorage.getItem(seenKey()));
  return Number.isSafeInteger(n) && n > 0 ? n : null;
}

/** The newest message is on screen (the tab visible, the list at its bottom): remember it. */
export function noteSeen() {
  if (!state.joined || document.visibilityState === "hidden" || !state.stick) return;
  const top = state.timeline.topLevel().at(-1);
  if (top && top.id !== lastSeen()) {
    try {
      localStorage.setItem(seenKey(), String(top.id));
    } catch {
      // Storage full: the "New" line is a convenience.
    }
  }
}

/** The room's name in the room header: "#lobby", a lock and "team", "@ann". */
function showRoomName(room) {
  const { kind, title, label } = roomInfo(room);
  const heading = $("room-name");
  heading.dataset.kind = kind;
  if (kind === "private") heading.replaceChildren(kindMark(kind), document.createTextNode(title));
  else heading.textContent = label;
}

/**
 * The sign-in and join forms, with `error` under the guest form and `notice` above both
 * (why the person is here again), followed by what is kept of their unsent messages.
 */
export function showLogin(error = "", notice = "", identity = null) {
  $("chat").hidden = true;
  $("login").hidden = false;
  $("room-name").textContent = "";
  $("menu-button").hidden = true;
  $("leave-guest").hidden = true;
  $("connection-banner").hidden = true;
  $("login-error").textContent = error;
  setNotice(notice, identity);
}

/** The notice above the forms: `text` and the unsent messages of `identity`, if any. */
export function setNotice(text, identity = null) {
  const kept = identity ? unsentSummary(unsentRooms(identity)) : "";
  const full = [text, kept].filter(Boolean).join(" ");
  $("login-notice").textContent = full;
  $("login-notice").hidden = !full;
}

const CONNECTION_LOST = "Connection lost — reconnecting… Messages you send now are kept and sent when it is back.";

export function leaveRoom() {
  if (state.channel) state.channel.leave();
  state.channel = null;
  state.presence = null;
  state.me = null;
  state.joined = false;
  state.everJoined = false;
  state.timeline = new Timeline();
  state.noOlder = false;
  state.unseenFrom = null;
  state.unseenCount = 0;
  state.stick = true;
  state.editing = null;
  state.unreadFrom = null;
  state.expanded.clear();
  state.roving = {};
  clearTimeout(state.retryTimer);
  closeThread();
  closePane("search");
  closePicker();
  clearCache();
  resetFileLinks();
  $("message-list").replaceChildren();
  $("presence").replaceChildren();
  $("history-status").textContent = "";
  $("empty-state").hidden = true;
  clearAllTyping();
}

export function joinRoom(username, room) {
  leaveRoom();
  connect();
  state.username = username;
  state.room = room;
  // What this person wrote here and the server has not acknowledged, from before a
  // refused reconnect or a reload: shown as waiting, sent once joined.
  const unsent = unsentStore(identityOf(state.session, username), room);
  state.timeline = new Timeline(unsent);
  state.timeline.restorePending(unsent.load());
  // A function: phoenix.js calls it on every rejoin, so each rejoin asks for what it missed.
  const channel = state.socket.channel(`room:${room}`, () => {
    const params = { username: state.username };
    if (state.timeline.lastId !== null) {
      params.after_id = state.timeline.lastId;
      // And every change to what is held here since (edits, deletes, reactions, replies).
      if (state.timeline.seq !== null) params.after_seq = state.timeline.seq;
    }
    return params;
  });
  const presence = new Presence(channel);
  presence.onSync(() => {
    renderPresence();
    // A name shown by two people (one of them present) tags their messages.
    render();
  });
  channel.on("new_msg", (m) => {
    clearTyping(m.author);
    for (const added of state.timeline.merge([m])) arrived(added);
    state.timeline.noteSeq(m.seq);
    render();
    markRead(channel, m.id);
  });
  channel.on("msg_updated", (m) => {
    state.timeline.merge([m]);
    state.timeline.noteSeq(m.seq);
    if (state.editing === m.id && m.deleted) state.editing = null;
    render();
  });
  channel.on("reaction", ({ id, reactions, reactors, seq }) => {
    if (state.timeline.setReactions(id, reactions, reactors, seq)) render();
  });
  channel.on("typing", ({ username: who, author }) => {
    if (!author || author === myAuthor()) return;
    showTyping(author, who);
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
      // Who I am here: "mine" is decided by this author id from now on.
      if (reply?.me?.author) {
        state.me = reply.me;
        state.username = reply.me.username ?? state.username;
      }
      $("login").hidden = true;
      $("chat").hidden = false;
      $("leave-guest").hidden = Boolean(state.session);
      if (!state.session) sessionStorage.setItem("phx-chat:guest-room", room);
      showRoomName(room);
      if (first) {
        // The "New" line: before the first message of someone else after where this
        // person left off (the server's read position or this browser's, the later).
        const entry = state.rooms.find((r) => r.room === room);
        const since = Math.max(entry?.last_read_id ?? 0, lastSeen() ?? 0);
        const next = since > 0 ? messages.find((m) => m.parent_id === null && m.id > since && !isMine(m)) : null;
        state.unreadFrom = next?.id ?? null;
      }
      if (reply?.gap) {
        // Too much was missed: show the latest page instead of a list with a hole.
        state.timeline.replace(messages);
        state.noOlder = false;
        state.unseenFrom = null;
        state.unseenCount = 0;
        clearCache();
        state.stick = true;
      } else {
        const added = state.timeline.merge(messages);
        if (!first) added.forEach(arrived);
        // After the new ones (a reply counted on its parent is then overwritten by the
        // parent's own count): what changed meanwhile replaces what is held.
        state.timeline.applyChanged(reply?.changed);
      }
      state.timeline.noteSeq(reply?.seq);
      if (reply?.refetch && !first) reloadShown(channel);
      if (first) state.noOlder = messages.length < HISTORY_PAGE;
      state.everJoined = true;
      state.joined = true;
      $("connection-banner").textContent = CONNECTION_LOST;
      setConnected(true);
      setStatus("online");
      render();
      if (first) {
        settleScroll();
        if (state.unreadFrom !== null) showUnreadLine();
        showPeopleIfWanted();
      }
      noteSeen();
      const last = messages.at(-1);
      if (last) markRead(channel, last.id);
      if (state.session) refreshRooms();
      flushPending();
      if (first) $("body").focus({ preventScroll: true });
    })
    .receive("error", ({ reason, room: similar }) => {
      if (state.channel !== channel) {
        channel.leave();
        return;
      }
      const rejoin = state.everJoined;
      if (rejoin && RETRYABLE.has(reason)) {
        // A refusal for now (the store is down): phoenix.js joins again by itself, with
        // backoff; the room stays on screen and the banner says why.
        setStatus("reconnecting");
        $("connection-banner").textContent = "The chat is unavailable right now — trying again. Messages you send now are kept.";
        lostChannel();
        return;
      }
      // Don't let phoenix.js rejoin forever with a name the server refuses.
      channel.leave();
      state.channel = null;
      state.joined = false;
      const text = refusalText(reason, username);
      if (state.session) {
        // Signed in: stay, say why (e.g. "unauthorized" for a private room).
        const line = sidebarSay(`#${room}: ${text}`);
        if (similar) offerRoom(line, similar, username);
        return;
      }
      // A guest: back to the form, name and room filled in. After a refused rejoin a
      // reload tries the room again (the refusal may have been for now).
      if (!rejoin) sessionStorage.removeItem("phx-chat:guest-room");
      $("username").value = username;
      $("room").value = room;
      setStatus("offline");
      showLogin(
        text,
        rejoin ? `You are no longer in #${room}: the server refused to let you back in (${text}).` : "",
        "guest",
      );
      if (similar) offerRoom($("login-error"), similar, username);
      // The field the refusal is about gets focus: the room's, or the name's (selected,
      // ready for another name).
      if (/room|unauthorized|script/.test(reason)) $("room").focus();
      else {
        $("username").focus();
        $("username").select();
      }
    });
  state.channel = channel;
  state.presence = presence;
}

/**
 * A look-alike room was refused: `after` gets a button that opens `room`, the public room
 * whose name it resembles (docs/chat.md, "Look-alike names").
 */
export function offerRoom(after, room, username = state.username) {
  const b = el("button", "secondary small offer", `Open #${room}`);
  b.type = "button";
  b.addEventListener("click", () => {
    after.textContent = "";
    $("room").value = room;
    history.replaceState(null, "", `#${encodeURIComponent(room)}`);
    joinRoom(username, room);
    if (state.session) renderSidebar();
  });
  after.append(" ", b);
}

/**
 * The rejoin's reply said `refetch`: more changed while away than a reply carries, so
 * what is shown is loaded again (the latest page, and the open thread).
 */
function reloadShown(channel) {
  channel.push("history", { limit: HISTORY_PAGE }).receive("ok", ({ messages }) => {
    if (state.channel !== channel) return;
    state.timeline.replace(messages);
    state.noOlder = messages.length < HISTORY_PAGE;
    state.unseenFrom = null;
    state.unseenCount = 0;
    clearCache();
    state.stick = true;
    render();
    if (state.thread) openThread(state.thread.parentId);
  });
}

/** The "New" line near the top of the view, when the newest message is not far below it. */
function showUnreadLine() {
  const line = $("message-list").querySelector(".unread-marker");
  if (!line) return;
  line.scrollIntoView({ block: "start" });
  state.stick = nearBottom($("messages"));
}

/**
 * One page of older top-level messages (up to `limit`); resolves how many came. After a
 * page loaded by scrolling, the next waits a moment (`guard`): the scroll position moves
 * as the page is put in and must not ask again at once.
 */
export function fetchOlder(limit = HISTORY_PAGE, guard = true) {
  const channel = state.channel;
  const oldest = state.timeline.oldestTopLevelId();
  if (!channel || !state.joined || state.loadingOlder || state.noOlder || oldest === null) return Promise.resolve(0);
  state.loadingOlder = true;
  $("history-status").textContent = "Loading older messages…";
  const done = () => setTimeout(() => (state.loadingOlder = false), 300);
  return new Promise((resolve) =>
    channel
      .push("history", { before_id: oldest, limit })
      .receive("ok", ({ messages }) => {
        if (messages.length < limit) state.noOlder = true;
        const box = $("messages");
        const before = box.scrollHeight;
        state.timeline.merge(messages);
        render();
        box.scrollTop += box.scrollHeight - before;
        $("history-status").textContent = state.noOlder ? "This is the beginning of the room." : "";
        if (guard) done();
        else state.loadingOlder = false;
        resolve(messages.length);
      })
      .receive("error", ({ reason }) => {
        $("history-status").textContent = `Could not load history: ${reason}`;
        done();
        resolve(0);
      })
      .receive("timeout", () => {
        $("history-status").textContent = "Could not load history (timeout).";
        done();
        resolve(0);
      }),
  );
}

/** Scrolled to the top: the page before. */
export function loadOlder() {
  fetchOlder();
}
