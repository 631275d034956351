// The chat page's entry point: phoenix.js (the npm package as published, served as an ES
// module) on a `room:<name>` channel, with the contract of docs/chat.md. This module only
// wires the page's controls to the modules that do the work, in floors (a module imports
// only modules listed above it, so there are no import cycles):
//
//   format.js, markup.js      pure: dates, links, sizes, readable errors; message formatting
//   timeline.js               pure: the room's messages and the pending ones
//   unsent.js                 unsent messages kept in localStorage per person and room
//   state.js, dom.js          shared state and constants; element builders
//   dialog.js                 the page's own confirm dialog
//   message-view.js           one message as DOM (no handlers: data-action attributes)
//   list-view.js              the room's and thread's lists, reconciled; roving tabindex
//   file-links.js             signed file URLs kept fresh; files gone shown as such
//   people.js                 presence and typing
//   connection.js             the socket, status and outage banner
//   uploads.js                attachments: progress, previews, drops and pastes
//   sending.js                composers, pending messages and their re-sending
//   panes.js                  the right-hand pane (thread, search, people); the phone drawer
//   threads.js                the thread pane
//   message-actions.js        reactions, edits, deletes, thread opening (delegated clicks)
//   keyboard.js               arrows between messages, ↑ to edit my last message
//   sidebar.js                my rooms, the directory, read marks
//   room-channel.js           joining and leaving a room, its events, older history
//   search.js                 search in the room, results opened in context
//   rooms.js                  switching, DMs, private rooms, inviting
//   notify.js                 toasts and mentions
//   invitations.js            my pending invitations: accept or decline
//   session.js                accounts and the user:<id> channel
//
// All user text goes through textContent and DOM nodes, never innerHTML.
import { BODY_MAX, bodyLength } from "/assets/format.js";
import { icon } from "/assets/dom.js";
import { nearBottom, renderJump, scrollToBottom } from "/assets/list-view.js";
import { wireFileLinks } from "/assets/file-links.js";
import { setStatus } from "/assets/connection.js";
import { upload, wireFileDrops } from "/assets/uploads.js";
import { announceTyping, autoGrow, submitMessage, updateCounter } from "/assets/sending.js";
import { closePane, setDrawer, wirePanes } from "/assets/panes.js";
import { closeThread, loadOlderReplies } from "/assets/threads.js";
import { dismissPicker, closePicker, stopEdit, wireMessageList } from "/assets/message-actions.js";
import { wireEditLast, wireListKeys } from "/assets/keyboard.js";
import { markRead, renderSidebar } from "/assets/sidebar.js";
import { joinRoom, leaveRoom, loadOlder, noteSeen, showLogin } from "/assets/room-channel.js";
import { closeSearch, wireSearch } from "/assets/search.js";
import { wireRooms } from "/assets/rooms.js";
import { wireInvitations } from "/assets/invitations.js";
import { offerSignIn, resumeSession, wireSession } from "/assets/session.js";
import { $, ROOM, USERNAME, roomFromHash, state } from "/assets/state.js";

$("attach-icon").replaceWith(icon("clip"));
$("people-icon").replaceWith(icon("people"));
$("menu-button").append(icon("menu"));
wireMessageList($("message-list"));
wireMessageList($("thread-list"));
wireFileLinks($("message-list"));
wireFileLinks($("thread-list"));
wireListKeys($("message-list"), $("body"));
wireListKeys($("thread-list"), $("thread-body"));
wireEditLast($("body"), false);
wireEditLast($("thread-body"), true);
wireFileDrops(document.querySelector(".conversation"), $("body"));
wirePanes();
wireSearch();
wireRooms();
wireInvitations();
wireSession();

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

document.addEventListener("visibilitychange", () => {
  const last = state.timeline.lastId;
  if (document.visibilityState === "visible" && last !== null && state.channel) markRead(state.channel, last);
  noteSeen();
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
  for (const file of files) upload(file);
});

$("messages").addEventListener("scroll", () => {
  const box = $("messages");
  state.stick = nearBottom(box);
  if (state.stick && state.unseenCount > 0) {
    state.unseenCount = 0;
    renderJump();
  }
  if (state.stick) noteSeen();
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

// Escape closes the innermost thing open: the picker, an edit, the drawer, then the pane.
document.addEventListener("keydown", (e) => {
  if (e.key !== "Escape" || $("confirm-dialog").open) return;
  if (dismissPicker()) return;
  if (state.editing !== null) stopEdit();
  else if ($("chat").classList.contains("drawer-open")) setDrawer(false);
  else if (!closeThread() && !closeSearch() && closePane("people")) $("people-button").focus();
});

document.addEventListener("click", (e) => {
  if (!e.target.closest("#picker")) closePicker();
});

if (state.session) {
  resumeSession();
} else if (sessionStorage.getItem("phx-chat:guest-room") && USERNAME.test(localStorage.getItem("phx-chat:username") ?? "")) {
  // A reload of a guest's tab goes back into the room (the hash names it), no form.
  joinRoom(localStorage.getItem("phx-chat:username"), roomFromHash());
} else if (offerSignIn()) {
  // Signed out by the server (not by logging out): the sign-in form, name filled in.
} else if (localStorage.getItem("phx-chat:username")) $("username").focus();
else $("username").select();
