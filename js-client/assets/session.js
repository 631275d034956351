// Accounts: register, log in, log out (POST /api/…), the stored session, signing in
// without asking again, and the user:<id> channel that feeds the sidebar (activity,
// read marks, invitations, DMs, mentions).
import { connect, onSocketClose, setStatus } from "/assets/connection.js";
import { mentioned } from "/assets/notify.js";
import { joinRoom, leaveRoom, showLogin } from "/assets/room-channel.js";
import { refreshRooms, renderSidebar, setUnread } from "/assets/sidebar.js";
import { renderStaged } from "/assets/uploads.js";
import { $, roomFromHash, state } from "/assets/state.js";

export function startSignedIn(session, room) {
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

/** The account form's buttons, logout, and the session check when the socket closes. */
export function wireSession() {
  $("account-form").addEventListener("submit", (e) => {
    e.preventDefault();
    accountSubmit("login");
  });
  $("register-button").addEventListener("click", () => accountSubmit("register"));
  $("logout").addEventListener("click", async () => {
    if (state.session) await api("logout", { token: state.session.token });
    signOutLocally();
  });
  onSocketClose((event) => {
    // 1001: the server closed every socket of this user (a logout in another tab).
    if (state.session && event?.code === 1001) checkSession();
  });
}

/** A stored session: checked, then signed in without asking again. */
export function resumeSession() {
  const stored = state.session;
  state.session = null;
  api("session", { token: stored.token }).then(({ status }) => {
    if (status === 200) startSignedIn(stored, roomFromHash());
    else localStorage.removeItem("phx-chat:session");
  });
}
