// My pending invitations (docs/chat.md, "Invitations"): an invitation to a private room
// is an offer until I accept it. It shows in the sidebar (and as a toast when it
// arrives) with Accept, which makes me a member and opens the room, and Decline. Every
// tab of mine hears the answer (`invitation_answered`) and drops it.
import { refusalText } from "/assets/format.js";
import { setDrawer } from "/assets/panes.js";
import { switchRoom } from "/assets/rooms.js";
import { toast } from "/assets/notify.js";
import { invitationErrors, refreshRooms, renderInvitations, sidebarSay } from "/assets/sidebar.js";
import { $, state } from "/assets/state.js";

function drop(room) {
  state.invitations = state.invitations.filter((i) => i.room !== room);
  invitationErrors.delete(room);
  renderInvitations();
}

function refused(room, reason) {
  invitationErrors.set(room, refusalText(reason));
  renderInvitations();
}

function accept(room) {
  const inv = state.invitations.find((i) => i.room === room);
  state.userChannel
    ?.push("accept_invite", { room })
    .receive("ok", ({ room: joined, kind, title }) => {
      drop(room);
      // A member now: the room is in my list (kind known before the refresh answers).
      if (!state.rooms.some((r) => r.room === joined)) {
        state.rooms.unshift({ room: joined, kind: kind ?? "private", title: title ?? inv?.title ?? joined, unread: 0, last_read_id: 0, latest_id: 0 });
      }
      refreshRooms();
      switchRoom(joined);
    })
    .receive("error", ({ reason }) => refused(room, reason))
    .receive("timeout", () => refused(room, "unavailable"));
}

function decline(room) {
  state.userChannel
    ?.push("decline_invite", { room })
    .receive("ok", () => {
      drop(room);
      sidebarSay(`You declined the invitation to ${room}.`, false);
    })
    .receive("error", ({ reason }) => {
      // Answered elsewhere or expired: nothing left to decline.
      if (reason === "no such invitation") drop(room);
      else refused(room, reason);
    })
    .receive("timeout", () => refused(room, "unavailable"));
}

/** `invited` on user:<id>: a new pending invitation, listed and announced. */
export function invited(inv) {
  if (!inv?.room) return;
  state.invitations = [inv, ...state.invitations.filter((i) => i.room !== inv.room)];
  renderInvitations();
  toast(`${inv.by ?? "Someone"} invited you to ${inv.title ?? inv.room}`, () => {
    if ($("menu-button").offsetParent !== null) setDrawer(true);
    $("invitation-list").querySelector(`li[data-room="${CSS.escape(inv.room)}"] button.accept`)?.focus();
  }, "Show");
}

/** `invitation_answered`: one of my tabs answered; accepted, my room list changed. */
export function answered({ room, accepted }) {
  drop(room);
  if (accepted) refreshRooms();
}

export function wireInvitations() {
  $("invitation-list").addEventListener("click", (e) => {
    const button = e.target.closest("button");
    const room = button?.closest("li[data-room]")?.dataset.room;
    if (!room) return;
    if (button.classList.contains("accept")) accept(room);
    else if (button.classList.contains("decline")) decline(room);
  });
}
