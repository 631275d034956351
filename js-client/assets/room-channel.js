// The room: joining `room:<name>` (params a function, so every rejoin sends `after_id`,
// docs/chat.md), its events (new_msg, msg_updated, reaction, typing, presence), the join
// reply (the first page, or what was missed, or a gap), older history on scroll-up, and
// leaving.
import { Presence } from "/assets/phoenix.mjs";
import { Timeline } from "/assets/timeline.js";
import { connect, lostChannel, setConnected, setStatus } from "/assets/connection.js";
import { arrived, clearCache, render, settleScroll } from "/assets/list-view.js";
import { closePicker } from "/assets/message-actions.js";
import { clearAllTyping, clearTyping, renderPresence, showTyping } from "/assets/people.js";
import { flushPending } from "/assets/sending.js";
import { markRead, refreshRooms } from "/assets/sidebar.js";
import { closeThread } from "/assets/threads.js";
import { identityOf, unsentRooms, unsentStore, unsentSummary } from "/assets/unsent.js";
import { $, HISTORY_PAGE, RETRYABLE, state } from "/assets/state.js";

/**
 * The sign-in and join forms, with `error` under the guest form and `notice` above both
 * (why the person is here again), followed by what is kept of their unsent messages.
 */
export function showLogin(error = "", notice = "", identity = null) {
  $("chat").hidden = true;
  $("login").hidden = false;
  $("room-name").textContent = "";
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
  clearCache();
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
    showTyping(who);
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
        clearCache();
        state.stick = true;
      } else {
        const added = state.timeline.merge(messages);
        if (!first) added.forEach(arrived);
      }
      if (first) state.noOlder = messages.length < HISTORY_PAGE;
      state.everJoined = true;
      state.joined = true;
      $("connection-banner").textContent = CONNECTION_LOST;
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
      const text = reason === "unavailable" ? "The chat is unavailable right now, try again soon." : reason;
      if (state.session) {
        // Signed in: stay, say why (e.g. "unauthorized" for a private room).
        $("sidebar-error").textContent = `#${room}: ${text}`;
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
      $("username").focus();
    });
  state.channel = channel;
  state.presence = presence;
}

export function loadOlder() {
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
