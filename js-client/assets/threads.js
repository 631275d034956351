// Threads: a side panel (full screen on phones) with a parent message and its replies,
// loaded with the `thread` event (docs/chat.md) and paged back on demand.
import { render, scrollThreadToBottom } from "/assets/list-view.js";
import { closePane, openPane } from "/assets/panes.js";
import { $, state, THREAD_PAGE } from "/assets/state.js";

/** Opens the thread of `parentId`; resolves true once its latest replies are here. */
export function openThread(parentId) {
  if (!state.channel) return Promise.resolve(false);
  const returnFocus = state.thread?.returnFocus ?? document.activeElement;
  state.thread = { parentId, noOlder: false, loading: true, stick: true, returnFocus };
  openPane("thread");
  $("thread-list").replaceChildren();
  $("thread-error").textContent = "";
  render();
  $("thread-body").focus();
  return new Promise((resolve) =>
    state.channel
      .push("thread", { parent_id: parentId, limit: THREAD_PAGE })
      .receive("ok", ({ parent, messages }) => {
        if (state.thread?.parentId !== parentId) return resolve(false);
        state.timeline.merge([parent, ...messages]);
        state.thread.loading = false;
        state.thread.noOlder = messages.length < THREAD_PAGE;
        render();
        scrollThreadToBottom();
        resolve(true);
      })
      .receive("error", ({ reason }) => {
        $("thread-error").textContent = `Could not open the thread: ${reason}`;
        resolve(false);
      })
      .receive("timeout", () => resolve(false)),
  );
}

/** One page of earlier replies; resolves true if any came. */
export function loadOlderReplies() {
  const t = state.thread;
  const oldest = t && state.timeline.replies(t.parentId)[0];
  if (!t || !oldest || t.loading || t.noOlder) return Promise.resolve(false);
  t.loading = true;
  return new Promise((resolve) =>
    state.channel
      ?.push("thread", { parent_id: t.parentId, before_id: oldest.id, limit: THREAD_PAGE })
      .receive("ok", ({ messages }) => {
        t.loading = false;
        t.noOlder = messages.length < THREAD_PAGE;
        state.timeline.merge(messages);
        render();
        resolve(messages.length > 0);
      })
      .receive("error", ({ reason }) => {
        t.loading = false;
        $("thread-error").textContent = reason;
        resolve(false);
      })
      .receive("timeout", () => {
        t.loading = false;
        resolve(false);
      }),
  );
}

export function closeThread() {
  if (!state.thread) return false;
  const back = state.thread.returnFocus;
  state.thread = null;
  closePane("thread");
  $("thread-list").replaceChildren();
  if (back?.isConnected) back.focus({ preventScroll: true });
  return true;
}
