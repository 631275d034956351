// The keyboard in a conversation. A message list is one Tab stop: one message is in the
// Tab order with its own controls (list-view.js, a roving tabindex), ↑/↓/Home/End move to
// another message, which then holds the Tab stop; Enter goes to its toolbar, E edits my
// message, T opens its thread, Escape goes back to the composer. ↑ in an empty composer
// edits my last message, as in Slack.
import { applyRoving, itemKey } from "/assets/list-view.js";
import { startEdit } from "/assets/message-actions.js";
import { openThread } from "/assets/threads.js";
import { isMine, state } from "/assets/state.js";

const items = (list) => [...list.querySelectorAll(":scope > li.message")];

/** Keys and focus of a message list; `composer`: where Escape goes. */
export function wireListKeys(list, composer) {
  list.addEventListener("focusin", (e) => {
    const li = e.target.closest("li.message");
    if (!li || li.parentElement !== list) return;
    const key = itemKey(li);
    if (state.roving[list.id] !== key) {
      state.roving[list.id] = key;
      applyRoving(list);
    }
  });
  list.addEventListener("keydown", (e) => {
    const li = e.target;
    // Only when the message itself has focus: inside it, keys belong to its controls.
    if (!li.matches?.("li.message") || li.parentElement !== list || e.altKey || e.ctrlKey || e.metaKey) return;
    const all = items(list);
    const at = all.indexOf(li);
    const id = li.dataset.id ? Number(li.dataset.id) : null;
    const live = id !== null && !li.classList.contains("deleted");
    let next;
    switch (e.key) {
      case "ArrowUp":
        next = all[at - 1];
        break;
      case "ArrowDown":
        next = all[at + 1];
        break;
      case "Home":
        next = all[0];
        break;
      case "End":
        next = all.at(-1);
        break;
      case "Enter":
        li.querySelector(".actions button, button.reply-count, button.more")?.focus();
        break;
      case "e":
        if (live && isMine(state.timeline.byId.get(id))) startEdit(id);
        break;
      case "t":
        if (live && list.id === "message-list") openThread(id);
        break;
      case "Escape":
        e.stopPropagation();
        composer.focus();
        break;
      default:
        return;
    }
    e.preventDefault();
    if (next) {
      next.focus({ preventScroll: true });
      next.scrollIntoView({ block: "nearest" });
    }
  });
}

/** ↑ in the empty composer `area` edits my last message (of the thread, for `inThread`). */
export function wireEditLast(area, inThread) {
  area.addEventListener("keydown", (e) => {
    if (e.key !== "ArrowUp" || area.value !== "" || e.shiftKey || e.altKey || e.ctrlKey || e.metaKey || e.isComposing) return;
    const list = inThread ? (state.thread ? state.timeline.replies(state.thread.parentId) : []) : state.timeline.topLevel();
    const mine = list.filter((m) => isMine(m) && !m.deleted).at(-1);
    if (!mine) return;
    e.preventDefault();
    startEdit(mine.id);
    document.querySelector(`#${inThread ? "thread-list" : "message-list"} .message[data-id="${mine.id}"]`)?.scrollIntoView({ block: "nearest" });
  });
}
