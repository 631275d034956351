// Threads: a side panel (full screen on phones) with a parent message and its replies,
// loaded with the `thread` event (docs/chat.md) and paged back on demand.
import { render, scrollThreadToBottom } from "/assets/list-view.js";
import { $, state, THREAD_PAGE } from "/assets/state.js";

export function openThread(parentId) {
  if (!state.channel) return;
  state.thread = { parentId, noOlder: false, loading: true, stick: true, returnFocus: document.activeElement };
  $("thread-panel").hidden = false;
  $("chat").classList.add("thread-open");
  $("thread-error").textContent = "";
  render();
  state.channel
    .push("thread", { parent_id: parentId, limit: THREAD_PAGE })
    .receive("ok", ({ parent, messages }) => {
      if (state.thread?.parentId !== parentId) return;
      state.timeline.merge([parent, ...messages]);
      state.thread.loading = false;
      state.thread.noOlder = messages.length < THREAD_PAGE;
      render();
      scrollThreadToBottom();
    })
    .receive("error", ({ reason }) => ($("thread-error").textContent = `Could not open the thread: ${reason}`));
  $("thread-body").focus();
}

export function loadOlderReplies() {
  const t = state.thread;
  const oldest = t && state.timeline.replies(t.parentId)[0];
  if (!t || !oldest || t.loading) return;
  t.loading = true;
  state.channel
    ?.push("thread", { parent_id: t.parentId, before_id: oldest.id, limit: THREAD_PAGE })
    .receive("ok", ({ messages }) => {
      t.loading = false;
      t.noOlder = messages.length < THREAD_PAGE;
      state.timeline.merge(messages);
      render();
    })
    .receive("error", ({ reason }) => {
      t.loading = false;
      $("thread-error").textContent = reason;
    });
}

export function closeThread() {
  if (!state.thread) return false;
  const back = state.thread.returnFocus;
  state.thread = null;
  $("thread-panel").hidden = true;
  $("chat").classList.remove("thread-open");
  $("thread-list").replaceChildren();
  if (back?.isConnected) back.focus({ preventScroll: true });
  return true;
}
