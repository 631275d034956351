// The socket: one phoenix.js Socket per page, connected with the session token or this
// browser's guest key (docs/chat.md, Identity), and what the page shows about it (the
// status pill, the "connection lost" banner).
import { Socket } from "/assets/phoenix.mjs";
import { randomKey } from "/assets/format.js";
import { render } from "/assets/list-view.js";
import { $, state } from "/assets/state.js";

/** This browser's guest key: made once, kept in localStorage, sent on every connect. */
export function guestKey() {
  let key = localStorage.getItem("phx-chat:guest-key");
  if (!key || !/^[A-Za-z0-9_-]{32,128}$/.test(key)) {
    key = randomKey(32);
    localStorage.setItem("phx-chat:guest-key", key);
  }
  return key;
}

export function setStatus(text) {
  const el = $("status");
  el.textContent = text;
  el.dataset.state = text;
}

/** Shows or hides the "connection lost" banner and greys the presence list. */
export function setConnected(connected) {
  const inRoom = !$("chat").hidden;
  $("connection-banner").hidden = connected || !inRoom;
  $("chat").classList.toggle("disconnected", !connected);
}

const downHooks = [];

/**
 * `hook(event)` runs when the socket fails or closes: the close event, or null for an
 * error. A refused reconnect (the server answers the upgrade 403) looks like any other
 * failure to the browser, so session.js asks the server about the session then.
 */
export function onSocketDown(hook) {
  downHooks.push(hook);
}

export function connect() {
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
    for (const hook of downHooks) hook(null);
  });
  socket.onClose((event) => {
    if (state.socket !== socket) return;
    setStatus("reconnecting");
    lostChannel();
    for (const hook of downHooks) hook(event);
  });
  setStatus("connecting");
  socket.connect();
  state.socket = socket;
}

/** The room channel is gone until phoenix.js rejoins it: pushes wait as pending. */
export function lostChannel() {
  if (!state.channel) return;
  state.joined = false;
  setConnected(false);
  render();
}
