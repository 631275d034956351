// Accounts: register, log in, log out (POST /api/…), the stored session, signing in
// without asking again, and the user:<id> channel that feeds the sidebar (activity,
// read marks, invitations, DMs, mentions).
import { connect, onSocketDown, setStatus } from "/assets/connection.js";
import { mentioned } from "/assets/notify.js";
import { answered, invited } from "/assets/invitations.js";
import { readableError, sentence } from "/assets/format.js";
import { joinRoom, leaveRoom, setNotice, showLogin } from "/assets/room-channel.js";
import { clearUnsent, identityOf, unsentRooms } from "/assets/unsent.js";
import { confirmDialog } from "/assets/dialog.js";
import { deletedIn, refreshRooms, renderSidebar, setUnread } from "/assets/sidebar.js";
import { clearStaged } from "/assets/uploads.js";
import { $, roomFromHash, state } from "/assets/state.js";

const unsentCount = (rooms) => {
  const n = rooms.reduce((sum, r) => sum + r.count, 0);
  return n === 1 ? "1 message" : `${n} messages`;
};

export function startSignedIn(session, room) {
  state.session = session;
  localStorage.setItem("phx-chat:session", JSON.stringify(session));
  setNotice("");
  localStorage.removeItem(SIGNED_OUT);
  state.username = session.user.username;
  $("chat").classList.add("signed-in");
  $("sidebar").hidden = false;
  $("me").textContent = session.user.username;
  $("menu-button").hidden = false;
  $("attach-label").hidden = false;
  connect();
  const channel = state.socket.channel(`user:${session.user.id}`, {});
  channel.on("activity", ({ room, id, author }) => {
    const entry = state.rooms.find((r) => r.room === room);
    if (!entry) return refreshRooms();
    entry.latest_id = id;
    // What I wrote (in another tab) is not waiting for me to read it.
    if (room !== state.room && author !== `user:${session.user.id}`) entry.unread += 1;
    state.rooms.sort((a, b) => b.latest_id - a.latest_id);
    renderSidebar();
  });
  channel.on("read", ({ room, last_read_id: id }) => {
    const entry = state.rooms.find((r) => r.room === room);
    if (entry && id > (entry.last_read_id ?? 0)) entry.last_read_id = id;
    setUnread(room, 0);
  });
  channel.on("deleted", ({ room, id }) => deletedIn(room, id));
  channel.on("invited", invited);
  channel.on("invitation_answered", answered);
  channel.on("dm", refreshRooms);
  channel.on("left", refreshRooms);
  channel.on("mention", mentioned);
  channel.join().receive("ok", ({ rooms, invitations }) => {
    state.rooms = rooms;
    state.invitations = Array.isArray(invitations) ? invitations : [];
    renderSidebar();
  });
  state.userChannel = channel;
  joinRoom(session.user.username, room);
}

/** The session is asked about at most this often while the socket keeps failing. */
const PROBE_EVERY_MS = 2000;

function signOutLocally(message = "") {
  state.session = null;
  localStorage.removeItem("phx-chat:session");
  leaveRoom();
  state.userChannel?.leave();
  state.userChannel = null;
  state.rooms = [];
  state.invitations = [];
  state.socket?.disconnect();
  state.socket = null;
  $("chat").classList.remove("signed-in", "drawer-open");
  $("sidebar").hidden = true;
  $("menu-button").hidden = true;
  $("attach-label").hidden = true;
  clearStaged();
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

let probing = false;
let lastProbe = 0;

/**
 * The socket failed or closed: is the session still good? A browser cannot see why an
 * upgrade failed, and a reconnect refused with 403 (a server restarted with another
 * secret, a session ended elsewhere) would otherwise look like an outage forever.
 * `loggedOut`: the server closed every socket of this user (a logout in another tab).
 */
async function checkSession(loggedOut) {
  const session = state.session;
  if (!session || probing || (!loggedOut && Date.now() - lastProbe < PROBE_EVERY_MS)) return;
  probing = true;
  lastProbe = Date.now();
  const { status } = await api("session", { token: session.token });
  probing = false;
  // 401: the server does not know the session any more. Anything else (no answer, 503)
  // is an outage: phoenix.js keeps reconnecting.
  if (status === 401 && state.session === session) sessionEnded(session, loggedOut);
}

/** Back to the sign-in form, saying why; unsent messages stay stored for the next sign-in. */
function sessionEnded(session, loggedOut) {
  signOutLocally(loggedOut ? "You were logged out." : "");
  localStorage.setItem(SIGNED_OUT, session.user.username);
  setStatus("signed out");
  const notice = loggedOut
    ? "You were logged out in another tab."
    : "You were signed out: the server no longer accepts your session (it may have restarted). Sign in again to go on.";
  setNotice(notice, identityOf(session));
  $("acct-username").value = session.user.username;
  $("acct-password").focus();
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
    // A limit says when to retry (docs/chat.md, "Sign-in refusals"): in words and a time.
    $("account-error").textContent = sentence(readableError(body.error ?? `error ${status}`));
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
    const session = state.session;
    const kept = session ? unsentRooms(identityOf(session)) : [];
    if (kept.length) {
      const sure = await confirmDialog({
        title: "Log out?",
        text: `${unsentCount(kept)} you wrote (${kept.map((r) => `#${r.room}`).join(", ")}) could not be sent yet: logging out discards ${kept.length === 1 && kept[0].count === 1 ? "it" : "them"}.`,
        confirm: "Log out",
      });
      if (!sure) return;
    }
    if (session) await api("logout", { token: session.token });
    signOutLocally();
    // Logging out on purpose leaves nothing of this person's behind in the browser.
    if (session) clearUnsent(identityOf(session));
    localStorage.removeItem(SIGNED_OUT);
  });
  onSocketDown((event) => {
    // 1001: the server closed every socket of this user (a logout in another tab).
    if (state.session) checkSession(event?.code === 1001);
  });
}

/**
 * A stored session: checked, then signed in without asking again. Only a 401 ends it;
 * a server that cannot be reached is asked again (a reload during an outage keeps the
 * session).
 */
export function resumeSession(stored = state.session, wait = 1000) {
  state.session = null;
  api("session", { token: stored.token }).then(({ status }) => {
    if (status === 200) startSignedIn(stored, roomFromHash());
    else if (status === 401) {
      localStorage.removeItem("phx-chat:session");
      localStorage.setItem(SIGNED_OUT, stored.user.username);
      offerSignIn();
    } else {
      setNotice("The server cannot be reached right now — trying again…");
      setTimeout(() => resumeSession(stored, Math.min(wait * 2, 10000)), wait);
    }
  });
}

/** Who was signed out without logging out (kept for the sign-in form after a reload). */
const SIGNED_OUT = "phx-chat:signed-out";

/** The sign-in form after a session ended by itself: the name filled in, the notice. */
export function offerSignIn() {
  const username = localStorage.getItem(SIGNED_OUT);
  if (!username) return false;
  $("acct-username").value = username;
  setNotice(`You were signed out as ${username}. Sign in again to go on.`, identityOf({ user: { username } }));
  $("acct-password").focus();
  return true;
}
