// Notifications: toasts in the page, and a system notification for a mention while the
// tab is hidden (when the person allowed them).
import { el } from "/assets/dom.js";
import { switchRoom } from "/assets/rooms.js";
import { plainText } from "/assets/markup.js";
import { $, roomInfo, state, TOAST_MS } from "/assets/state.js";

export function toast(text, onOpen, openLabel = "Open") {
  const box = el("div", "toast");
  box.append(el("span", "", text));
  if (onOpen) {
    const open = el("button", "small", openLabel);
    open.type = "button";
    open.addEventListener("click", () => {
      box.remove();
      onOpen();
    });
    box.append(open);
  }
  const close = el("button", "small secondary", "✕");
  close.type = "button";
  close.setAttribute("aria-label", "Dismiss");
  close.addEventListener("click", () => box.remove());
  box.append(close);
  $("toasts").append(box);
  setTimeout(() => box.remove(), TOAST_MS);
}

/** A `mention` on the user:<id> channel (docs/chat.md, Mentions). */
export function mentioned({ room, username, body }) {
  const where = roomInfo(room).label;
  const text = `${username} mentioned you in ${where}: ${plainText(body)}`;
  toast(text, room === state.room ? null : () => switchRoom(room));
  if (document.visibilityState === "hidden" && "Notification" in window && Notification.permission === "granted") {
    new Notification(`${username} in ${where}`, { body: plainText(body) });
  }
}
