// The signed-in sidebar's contents: my pending invitations, my rooms with their unread
// counts (from the user:<id> channel), the public directory (GET /api/rooms), and read
// marks. Every room is a button (a Tab stop, Enter opens it); the current one is marked
// for screen readers. Clicks are handled in rooms.js and invitations.js.
import { momentLabel } from "/assets/format.js";
import { actionButton, el, kindMark } from "/assets/dom.js";
import { identityOf, unsentRooms } from "/assets/unsent.js";
import { $, state } from "/assets/state.js";

/** The sidebar's line under its forms: a refusal (`error`), or a note of what was done. */
export function sidebarSay(text, error = true) {
  const line = $("sidebar-error");
  line.textContent = text;
  line.classList.toggle("note", !error);
  return line;
}

export function markRead(channel, id) {
  if (!state.session || channel !== state.channel || document.visibilityState === "hidden") return;
  channel.push("read", { id });
  const entry = state.rooms.find((r) => r.room === state.room);
  if (entry && id > (entry.last_read_id ?? 0)) entry.last_read_id = id;
  setUnread(state.room, 0);
}

export function setUnread(room, unread) {
  const entry = state.rooms.find((r) => r.room === room);
  if (entry && entry.unread !== unread) {
    entry.unread = unread;
    renderSidebar();
  }
}

/** A room button: its kind, its title, and what is waiting there. */
function roomButton(room, kind, title) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = "room-link";
  const mark = document.createElement("span");
  mark.className = "kind";
  mark.append(kindMark(kind));
  const name = document.createElement("span");
  name.className = "title";
  name.textContent = title;
  b.append(mark, name);
  if (room === state.room) b.setAttribute("aria-current", "page");
  return b;
}

export function renderSidebar() {
  const unsent = new Map(state.session ? unsentRooms(identityOf(state.session)).map((r) => [r.room, r.count]) : []);
  $("room-list").replaceChildren(
    ...state.rooms.map((r) => {
      const li = document.createElement("li");
      li.dataset.room = r.room;
      li.className = r.room === state.room ? "current" : "";
      const b = roomButton(r.room, r.kind, r.title);
      if (r.unread > 0) {
        b.classList.add("unread");
        const badge = document.createElement("span");
        badge.className = "badge";
        badge.textContent = r.unread >= 100 ? "99+" : String(r.unread);
        badge.setAttribute("aria-label", `${r.unread} unread`);
        b.append(badge);
      }
      if (unsent.has(r.room) && r.room !== state.room) {
        const note = document.createElement("span");
        note.className = "unsent";
        note.textContent = "unsent";
        note.title = `${unsent.get(r.room)} unsent: sent when you open the room`;
        b.append(note);
      }
      li.append(b);
      return li;
    }),
  );
  renderInvitations();
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
        const b = roomButton(room, "public", room);
        const counts = document.createElement("span");
        counts.className = "counts";
        counts.textContent = `${online} online · ${members} ${members === 1 ? "member" : "members"}`;
        b.append(counts);
        li.append(b);
        return li;
      }),
    );
  } catch {
    // The directory is a convenience: the sidebar works without it.
  }
}

export function refreshRooms() {
  refreshDirectory();
  state.userChannel?.push("rooms", {}).receive("ok", ({ rooms, invitations }) => {
    state.rooms = rooms;
    if (Array.isArray(invitations)) state.invitations = invitations;
    renderSidebar();
  });
}

/** Invitations whose answer was refused: room → why (shown until answered or gone). */
export const invitationErrors = new Map();

/**
 * My pending invitations (docs/chat.md, "Invitations"): the room, who invited me and when,
 * and Accept / Decline. Until I accept, I am not a member. The menu button (phones) says
 * how many wait. An answer the server refused says why under the invitation.
 */
export function renderInvitations() {
  const errors = invitationErrors;
  const list = state.invitations;
  $("invitations").hidden = list.length === 0;
  $("invitation-list").replaceChildren(
    ...list.map((inv) => {
      const li = el("li", "invitation");
      li.dataset.room = inv.room;
      const what = el("p", "invite-what");
      const title = el("strong", "", inv.title ?? inv.room);
      what.append(kindMark("private"), " ", title, el("span", "invite-by", ` from ${inv.by ?? "someone"}`));
      const at = Date.parse(inv.at);
      if (Number.isFinite(at)) {
        const when = el("time", "invite-when", momentLabel(inv.at));
        when.dateTime = inv.at;
        what.append(" · ", when);
      }
      const row = el("div", "row");
      const name = inv.title ?? inv.room;
      const accept = actionButton(`Accept the invitation to ${name}`, "Accept", { className: "accept" });
      accept.classList.remove("action");
      accept.classList.add("small");
      const decline = actionButton(`Decline the invitation to ${name}`, "Decline", { className: "decline" });
      decline.classList.remove("action");
      decline.classList.add("small", "secondary");
      row.append(accept, decline);
      li.append(what, row);
      if (errors.has(inv.room)) {
        const why = el("p", "error", errors.get(inv.room));
        why.setAttribute("role", "alert");
        li.append(why);
      }
      return li;
    }),
  );
  const n = list.length;
  const menu = $("menu-button");
  menu.dataset.count = n > 0 ? String(n) : "";
  menu.setAttribute("aria-label", n > 0 ? `Rooms (${n} ${n === 1 ? "invitation" : "invitations"})` : "Rooms");
}

/** A top-level message was deleted in `room` (user:<id> `deleted`): one fewer unread if it was. */
export function deletedIn(room, id) {
  const entry = state.rooms.find((r) => r.room === room);
  if (!entry || room === state.room || entry.unread <= 0 || id <= (entry.last_read_id ?? 0)) return;
  entry.unread -= 1;
  renderSidebar();
}
