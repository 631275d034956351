// Moving between rooms (signed in): switching without a reload, DMs from a name, creating
// a private room, inviting, leaving; the sidebar's and the people list's clicks. Refusals
// are said in words: a look-alike name offers the room it resembles, a cooldown says
// until when.
import { momentLabel, refusalText } from "/assets/format.js";
import { setDrawer } from "/assets/panes.js";
import { joinRoom, leaveRoom, offerRoom } from "/assets/room-channel.js";
import { refreshRooms, renderSidebar, sidebarSay } from "/assets/sidebar.js";
import { $, roomFromHash, state } from "/assets/state.js";

export function switchRoom(room) {
  // No reload: leave one channel, join the other (the hash keeps the link shareable).
  sidebarSay("");
  if (roomFromHash() !== room) history.replaceState(null, "", `#${encodeURIComponent(room)}`);
  joinRoom(state.username, room);
  renderSidebar();
  setDrawer(false);
}

function openDm(username) {
  state.userChannel
    ?.push("open_dm", { username })
    .receive("ok", ({ room }) => {
      refreshRooms();
      switchRoom(room);
    })
    .receive("error", ({ reason }) => sidebarSay(refusalText(reason, username)));
}

/** Why an invitation was refused, in words: who, and until when for a cooldown. */
export function inviteRefusal(reason, username, retryAt) {
  if (/^this user declined or left recently/.test(reason ?? "") && retryAt) {
    return `${username} declined an invitation or left recently: you can invite them again after ${momentLabel(retryAt)}.`;
  }
  return refusalText(reason, username);
}

/** The sidebar's forms and lists, and the people list's DM buttons. */
export function wireRooms() {
  for (const list of [$("room-list"), $("directory")]) {
    list.addEventListener("click", (e) => {
      const li = e.target.closest("li[data-room]");
      if (li) switchRoom(li.dataset.room);
    });
  }
  $("presence").addEventListener("click", (e) => {
    const button = e.target.closest("button.dm");
    if (button) openDm(button.closest("li").dataset.user);
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
      .receive("error", ({ reason, room: similar }) => {
        const line = sidebarSay(refusalText(reason));
        if (similar) offerRoom(line, similar);
      });
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
      .receive("ok", ({ username: invitee }) => {
        $("invite-username").value = "";
        sidebarSay(`${invitee ?? username} is invited: they become a member once they accept.`, false);
      })
      .receive("error", ({ reason, retry_at: retryAt }) => sidebarSay(inviteRefusal(reason, username, retryAt)));
  });
}
