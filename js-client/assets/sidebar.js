// The signed-in sidebar's contents: my rooms with their unread counts (from the user:<id>
// channel), the public directory (GET /api/rooms), and read marks. Every room is a
// button (a Tab stop, Enter opens it); the current one is marked for screen readers.
// Clicks are handled in rooms.js.
import { kindMark } from "/assets/dom.js";
import { identityOf, unsentRooms } from "/assets/unsent.js";
import { $, state } from "/assets/state.js";

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
  state.userChannel?.push("rooms", {}).receive("ok", ({ rooms }) => {
    state.rooms = rooms;
    renderSidebar();
  });
}

/** A top-level message was deleted in `room` (user:<id> `deleted`): one fewer unread if it was. */
export function deletedIn(room, id) {
  const entry = state.rooms.find((r) => r.room === room);
  if (!entry || room === state.room || entry.unread <= 0 || id <= (entry.last_read_id ?? 0)) return;
  entry.unread -= 1;
  renderSidebar();
}
