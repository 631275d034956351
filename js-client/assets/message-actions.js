// What a person does to a message: react (the picker), edit in place, delete, open its
// thread, retry or discard a pending one. One delegated handler per list reads the
// `data-action` of the control (message-view.js builds them).
import { BODY_MAX, bodyLength } from "/assets/format.js";
import { el } from "/assets/dom.js";
import { confirmDialog } from "/assets/dialog.js";
import { render } from "/assets/list-view.js";
import { discardPending, sendPending } from "/assets/sending.js";
import { openThread } from "/assets/threads.js";
import { $, REACTIONS, state } from "/assets/state.js";

function showActionError(reason) {
  const target = state.thread ? $("thread-error") : $("send-error");
  target.textContent = reason;
}

function react(id, emoji) {
  closePicker();
  state.channel
    ?.push("react", { id, emoji })
    // The seq comes with the `reaction` broadcast (docs/chat.md: the page counts what
    // arrives on the channel in order).
    .receive("ok", ({ reactions, reactors }) => state.timeline.setReactions(id, reactions, reactors) && render())
    .receive("error", ({ reason }) => showActionError(`Reaction not added: ${reason}`));
}

function openPicker(id, anchor) {
  closePicker();
  const picker = el("div", "picker");
  picker.id = "picker";
  picker.setAttribute("role", "group");
  picker.setAttribute("aria-label", "Pick a reaction");
  for (const emoji of REACTIONS) {
    const b = el("button", "pick", emoji);
    b.type = "button";
    b.setAttribute("aria-label", `React with ${emoji}`);
    b.addEventListener("click", (e) => {
      e.stopPropagation();
      react(id, emoji);
    });
    picker.append(b);
  }
  document.body.append(picker);
  const r = anchor.getBoundingClientRect();
  const width = picker.offsetWidth;
  const left = Math.max(8, Math.min(r.right - width, window.innerWidth - width - 8));
  const top = r.top - picker.offsetHeight - 6 > 8 ? r.top - picker.offsetHeight - 6 : r.bottom + 6;
  picker.style.left = `${left}px`;
  picker.style.top = `${top}px`;
  picker.querySelector("button").focus();
  picker.returnFocus = anchor;
}

export function closePicker() {
  const picker = $("picker");
  if (!picker) return false;
  picker.remove();
  return true;
}

/** Closes the picker and gives focus back to the button that opened it; false if none. */
export function dismissPicker() {
  const picker = $("picker");
  if (!picker) return false;
  const back = picker.returnFocus;
  closePicker();
  back?.focus();
  return true;
}

export function startEdit(id) {
  // Where focus goes back after the edit: the composer when ↑ started it.
  state.editReturn = document.activeElement;
  state.editing = id;
  state.editDraft = null;
  state.editError = "";
  render();
}

export function stopEdit() {
  const id = state.editing;
  state.editing = null;
  state.editDraft = null;
  state.editError = "";
  render();
  const back = state.editReturn;
  state.editReturn = null;
  const li = document.querySelector(`.message[data-id="${id}"]`);
  (back?.isConnected && back.matches("textarea") ? back : li?.querySelector(".action.edit") ?? li)?.focus({ preventScroll: true });
}

/** A refused edit: the reason under the text being edited, which stays open. */
function editError(id, text) {
  if (state.editing !== id) return showActionError(text);
  state.editError = text;
  const slot = document.querySelector(`.message[data-id="${id}"] form.editor .edit-error`);
  if (slot) slot.textContent = text;
}

function saveEdit(id, text) {
  const body = text.trim();
  const m = state.timeline.byId.get(id);
  if (m && body === m.body) return stopEdit();
  if (bodyLength(body) > BODY_MAX) return editError(id, `Not saved: ${bodyLength(body)} characters, over the limit of ${BODY_MAX}.`);
  if (!body) return editError(id, "Not saved: a message cannot be empty (delete it instead).");
  state.channel
    ?.push("edit_msg", { id, body })
    .receive("ok", () => {
      if (state.editing === id) stopEdit();
    })
    .receive("error", ({ reason }) => editError(id, `Not saved: ${reason}`))
    .receive("timeout", () => editError(id, "Not saved: no answer from the server."));
}

async function deleteMessage(id) {
  const sure = await confirmDialog({
    title: "Delete this message?",
    text: "It is replaced by “message deleted” for everyone in the room. This cannot be undone.",
    confirm: "Delete",
  });
  if (!sure) return;
  state.channel
    ?.push("delete_msg", { id })
    .receive("error", ({ reason }) => showActionError(`Not deleted: ${reason}`))
    .receive("timeout", () => showActionError("Not deleted: no answer from the server."));
}

/** "Show more" / "Show less" on a long message. */
function toggleExpanded(id) {
  if (state.expanded.has(id)) state.expanded.delete(id);
  else state.expanded.add(id);
  render();
  document.querySelector(`.message[data-id="${id}"] button.more`)?.focus({ preventScroll: true });
}

/** The message (by id) or pending message (by client_id) a control belongs to. */
function owner(target) {
  const li = target.closest("li.message");
  if (!li) return {};
  if (li.dataset.clientId) return { li, pending: state.timeline.pending.find((p) => p.client_id === li.dataset.clientId) };
  return { li, id: Number(li.dataset.id) };
}

/** Wires a message list (the room's or the thread's): clicks, the editor's keys and submit. */
export function wireMessageList(list) {
  list.addEventListener("click", (e) => {
    const chip = e.target.closest("button.reaction");
    if (chip) {
      react(owner(chip).id, chip.dataset.emoji);
      return;
    }
    const button = e.target.closest("button[data-action]");
    if (button) {
      e.stopPropagation();
      const { id, pending } = owner(button);
      const action = button.dataset.action;
      if (action === "react") openPicker(id, button);
      else if (action === "thread") openThread(id);
      else if (action === "edit") startEdit(id);
      else if (action === "delete") deleteMessage(id);
      else if (action === "cancel-edit") stopEdit();
      else if (action === "expand") toggleExpanded(id);
      else if (action === "retry" && pending) sendPending(pending);
      else if (action === "discard" && pending) discardPending(pending);
      return;
    }
    // A tap shows the toolbar on touch screens (no hover there).
    const li = e.target.closest("li.message");
    if (!li || e.target.closest("a, button, textarea")) return;
    for (const other of document.querySelectorAll(".message.active")) if (other !== li) other.classList.remove("active");
    li.classList.toggle("active");
  });
  list.addEventListener("submit", (e) => {
    const form = e.target.closest("form.editor");
    if (!form) return;
    e.preventDefault();
    saveEdit(owner(form).id, form.querySelector("textarea").value);
  });
  list.addEventListener("input", (e) => {
    if (e.target.closest("form.editor textarea")) state.editDraft = e.target.value;
  });
  list.addEventListener("keydown", (e) => {
    const area = e.target.closest("form.editor textarea");
    if (!area) return;
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      area.form.requestSubmit();
    } else if (e.key === "Escape") {
      e.stopPropagation();
      stopEdit();
    }
  });
}
