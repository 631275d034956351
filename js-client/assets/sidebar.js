// The signed-in sidebar's contents: my rooms with their unread counts (from the user:<id>
// channel), the public directory (GET /api/rooms), and read marks. Clicks are handled in
// rooms.js.
import { $, state } from "/assets/state.js";

export function markRead(channel, id) {
  if (!state.session || channel !== state.channel || document.visibilityState === "hidden") return;
  channel.push("read", { id });
  setUnread(state.room, 0);
}

export function setUnread(room, unread) {
  const entry = state.rooms.find((r) => r.room === room);
  if (entry && entry.unread !== unread) {
    entry.unread = unread;
    renderSidebar();
  }
}

export function renderSidebar() {
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
