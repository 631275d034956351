// The composers and pending messages: a message is shown at once as pending, pushed with a
// client_id (docs/chat.md: the server deduplicates on it), and sent again after a timeout,
// a refusal for now, or a rejoin, until the server has it. Also the composer's growth,
// character counter and typing signal.
import { BODY_MAX, COUNTER_FROM, bodyLength } from "/assets/format.js";
import { render, scrollThreadToBottom, scrollToBottom } from "/assets/list-view.js";
import { clearStaged, readyAttachments, uploading } from "/assets/uploads.js";
import { $, PENDING_MAX, PUSH_TIMEOUT_MS, RETRY_AFTER_MS, RETRYABLE, TYPING_SEND_EVERY_MS, state } from "/assets/state.js";

export function submitMessage(input, parentId, errorEl) {
  const body = input.value.trim();
  if (parentId === null && uploading()) {
    // The message goes with its files: once they are up (uploads.js sends it then).
    state.sendWhenUploaded = true;
    errorEl.textContent = "Sending as soon as the files are uploaded…";
    return;
  }
  const attachments = parentId === null ? readyAttachments() : [];
  if (!body && attachments.length === 0) return;
  const length = bodyLength(body);
  if (length > BODY_MAX) {
    errorEl.textContent = `Not sent: the message has ${length} characters, ${length - BODY_MAX} over the limit of ${BODY_MAX}. Shorten it or split it.`;
    return;
  }
  if (!state.channel) return;
  if (state.timeline.pending.length >= PENDING_MAX) {
    errorEl.textContent = `Not sent: ${PENDING_MAX} messages are already waiting for the connection. Your text is kept.`;
    return;
  }
  errorEl.textContent = "";
  const p = state.timeline.addPending({ body, parent_id: parentId, attachments });
  // The message clears this author's indicator for the others: no late "typing" after it.
  clearTimeout(state.typingTimer);
  state.typingTimer = null;
  input.value = "";
  autoGrow(input);
  updateCounter();
  if (parentId === null) {
    clearStaged();
    state.unseenFrom = null;
    state.unseenCount = 0;
    state.stick = true;
  }
  render();
  if (parentId === null) scrollToBottom();
  else scrollThreadToBottom();
  sendPending(p);
}

export function sendPending(p) {
  const channel = state.channel;
  p.attempt = (p.attempt ?? 0) + 1;
  const attempt = p.attempt;
  if (!channel || !state.joined) {
    p.state = "waiting";
    render();
    return;
  }
  p.state = "sending";
  const payload = { body: p.body, client_id: p.client_id };
  if (p.parent_id !== null) payload.parent_id = p.parent_id;
  if (p.attachments.length) payload.attachments = p.attachments.map((a) => a.id);
  const current = () => p.attempt === attempt && state.timeline.pending.includes(p);
  channel
    .push("new_msg", payload, PUSH_TIMEOUT_MS)
    .receive("ok", ({ id, duplicate }) => {
      state.timeline.acknowledge(p.client_id, id);
      // The server had it already (sent again after a reload): no broadcast follows, and
      // the message may be older than what is shown, so the pending line goes now.
      if (duplicate && !state.timeline.byId.has(id)) state.timeline.discard(p);
      render();
    })
    .receive("error", ({ reason }) => {
      if (!current()) return;
      if (RETRYABLE.has(reason)) {
        p.state = "waiting";
        scheduleRetry();
      } else Object.assign(p, { state: "failed", reason });
      render();
    })
    .receive("timeout", () => {
      if (!current()) return;
      p.state = "waiting";
      scheduleRetry();
      render();
    });
  render();
}

/** Sends every message still waiting (on join and rejoin, and after a refusal for now). */
export function flushPending() {
  for (const p of state.timeline.pending) if (p.state === "waiting" || p.state === "sending") sendPending(p);
}

function scheduleRetry() {
  clearTimeout(state.retryTimer);
  state.retryTimer = setTimeout(() => state.joined && flushPending(), RETRY_AFTER_MS);
}

export function discardPending(p) {
  state.timeline.discard(p);
  render();
}

/**
 * Tells the room this user is typing, at most every TYPING_SEND_EVERY_MS (the server drops
 * more than one a second). Typing inside that interval sends once at its end, if there is
 * still text, so a new message right after the last one is announced too.
 */
export function announceTyping(area) {
  const wait = state.lastTypingSent + TYPING_SEND_EVERY_MS - Date.now();
  if (wait > 0) {
    if (!state.typingTimer) {
      state.typingTimer = setTimeout(() => {
        state.typingTimer = null;
        if (area.value.trim()) announceTyping(area);
      }, wait);
    }
    return;
  }
  if (!state.channel || !state.joined) return;
  state.lastTypingSent = Date.now();
  state.channel.push("typing", {});
}

/** Grows the textarea with its text, up to the CSS max-height (about five lines). */
export function autoGrow(area) {
  area.style.height = "auto";
  const border = area.offsetHeight - area.clientHeight;
  area.style.height = `${area.scrollHeight + border}px`;
}

export function updateCounter() {
  const n = bodyLength($("body").value);
  const counter = $("counter");
  counter.classList.toggle("over", n > BODY_MAX);
  counter.textContent =
    n < COUNTER_FROM ? "" : n > BODY_MAX ? `${n} / ${BODY_MAX} — ${n - BODY_MAX} too many` : `${n} / ${BODY_MAX}`;
}
