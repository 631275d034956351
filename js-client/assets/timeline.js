// What a room shows, without the DOM: the messages the server sent (top-level and thread
// replies, by id), and the messages this page sent that the server has not confirmed yet
// (pending, matched back by client_id). Ids order and deduplicate, nothing else: a message
// is never dropped or moved because of its id. Importable in Node (test/format.test.js).
import { randomKey } from "./format.js";

/** A message as the page keeps it: every field of docs/chat.md, with defaults. */
export function normalize(m) {
  return {
    ...m,
    author: typeof m.author === "string" ? m.author : null,
    guest: m.guest === true,
    parent_id: m.parent_id ?? null,
    reply_count: m.reply_count ?? 0,
    edited_at: m.edited_at ?? null,
    deleted: m.deleted ?? false,
    reactions: m.reactions ?? {},
    reactors: m.reactors ?? {},
    attachments: m.attachments ?? [],
    mentions: m.mentions ?? [],
    client_id: m.client_id ?? null,
  };
}

export class Timeline {
  /**
   * `store`: where pending messages are also kept until the server acknowledged them
   * (unsent.js: `put(p)`, `drop(clientId)`), or null.
   */
  constructor(store = null) {
    this.store = store;
    /** id → message (top-level and replies). */
    this.byId = new Map();
    /** Highest id seen in the room (replies included): `after_id` on the next rejoin. */
    this.lastId = null;
    /**
     * The room's change sequence as far as this page has seen it (docs/chat.md, "Changes
     * while away"): `after_seq` on the next rejoin, with `after_id`.
     */
    this.seq = null;
    /** [{client_id, body, parent_id, attachments, state, id?, reason?}] oldest first. */
    this.pending = [];
  }

  /** Top-level messages, oldest first. */
  topLevel() {
    return [...this.byId.values()].filter((m) => m.parent_id === null).sort((a, b) => a.id - b.id);
  }

  /** A thread's replies known here, oldest first. */
  replies(parentId) {
    return [...this.byId.values()].filter((m) => m.parent_id === parentId).sort((a, b) => a.id - b.id);
  }

  oldestTopLevelId() {
    let oldest = null;
    for (const m of this.byId.values()) if (m.parent_id === null && (oldest === null || m.id < oldest)) oldest = m.id;
    return oldest;
  }

  /**
   * Adds or replaces messages by id. A reply seen for the first time counts on its parent
   * (a parent sent later by the server carries its own count, which wins).
   * Returns the messages that were new here.
   */
  merge(list) {
    const added = [];
    // A parent in the same batch already counts the replies that come with it.
    const batch = new Set((list ?? []).map((m) => m?.id));
    for (const raw of list ?? []) {
      if (!Number.isFinite(raw?.id)) continue;
      const m = normalize(raw);
      const known = this.byId.has(m.id);
      this.byId.set(m.id, m);
      if (this.lastId === null || m.id > this.lastId) this.lastId = m.id;
      this.settle(m);
      if (known) continue;
      added.push(m);
      if (m.parent_id !== null && !batch.has(m.parent_id)) {
        const parent = this.byId.get(m.parent_id);
        if (parent) this.byId.set(parent.id, { ...parent, reply_count: parent.reply_count + 1 });
      }
    }
    return added;
  }

  /** Replaces everything (a join reply with `gap: true`); pending messages stay. */
  replace(list) {
    this.byId.clear();
    this.lastId = null;
    return this.merge(list);
  }

  /**
   * The room's sequence is at least `seq`: from the join reply and what comes on the
   * channel in order (broadcasts, the reply to `react`), never from pages loaded later
   * (`history`, `thread`), which may be ahead of a broadcast still on its way.
   */
  noteSeq(seq) {
    if (Number.isSafeInteger(seq) && (this.seq === null || seq > this.seq)) this.seq = seq;
  }

  /**
   * A rejoin's `changed`: the new state of messages changed while away. Only the ones held
   * here are replaced (an older message not shown stays unshown: no hole in the list).
   * Returns how many were replaced.
   */
  applyChanged(list) {
    let n = 0;
    for (const raw of list ?? []) {
      if (!Number.isFinite(raw?.id)) continue;
      this.noteSeq(raw.seq);
      if (!this.byId.has(raw.id)) continue;
      this.byId.set(raw.id, normalize(raw));
      n += 1;
    }
    return n;
  }

  /** A `reaction` event or `react` reply: the message's reactions, who by, and its seq. */
  setReactions(id, reactions, reactors, seq) {
    this.noteSeq(seq);
    const m = this.byId.get(id);
    if (m) this.byId.set(id, { ...m, reactions: reactions ?? {}, reactors: reactors ?? {} });
    return Boolean(m);
  }

  /**
   * Fresh signed URLs (the `attachments` reply): every held message showing one of these
   * uploads gets them. `gone`: upload ids no longer readable, shown as gone. Returns
   * whether anything changed.
   */
  refreshAttachments(fresh, gone = []) {
    const byUpload = new Map((fresh ?? []).map((a) => [a.id, a]));
    const lost = new Set(gone);
    let changed = false;
    for (const m of this.byId.values()) {
      if (!m.attachments.some((a) => byUpload.has(a.id) || lost.has(a.id))) continue;
      const attachments = m.attachments.map((a) => (lost.has(a.id) ? { ...a, gone: true } : byUpload.has(a.id) ? { ...byUpload.get(a.id) } : a));
      this.byId.set(m.id, { ...m, attachments });
      changed = true;
    }
    return changed;
  }

  /** Every upload shown in held messages (not deleted): upload id → attachment. */
  attachments() {
    const all = new Map();
    for (const m of this.byId.values()) if (!m.deleted) for (const a of m.attachments) if (!a.gone) all.set(a.id, a);
    return all;
  }

  /** A new pending message (not sent yet). */
  addPending({ body, parent_id = null, attachments = [] }) {
    const p = { client_id: randomKey(16), body, parent_id, attachments, state: "waiting" };
    this.pending.push(p);
    this.store?.put(p);
    return p;
  }

  /** Pending messages kept from before (unsent.js records), waiting to be sent; returns them. */
  restorePending(records) {
    const restored = [];
    for (const r of records ?? []) {
      if (this.pending.some((p) => p.client_id === r.client_id)) continue;
      const p = { client_id: r.client_id, body: r.body, parent_id: r.parent_id ?? null, attachments: r.attachments ?? [], state: "waiting" };
      this.pending.push(p);
      restored.push(p);
    }
    return restored;
  }

  /** The person gave up on a pending message. */
  discard(p) {
    this.pending = this.pending.filter((x) => x !== p);
    this.store?.drop(p.client_id);
  }

  /** Drops the pending message that `m` confirms (same client_id, or the id its reply gave). */
  settle(m) {
    const done = (p) => (m.client_id && p.client_id === m.client_id) || p.id === m.id;
    for (const p of this.pending) if (done(p)) this.store?.drop(p.client_id);
    this.pending = this.pending.filter((p) => !done(p));
  }

  /** The push's reply said `id`: done if the message is here already, else wait for it. */
  acknowledge(clientId, id) {
    const p = this.pending.find((x) => x.client_id === clientId);
    if (!p) return;
    Object.assign(p, { state: "sent", id });
    // The server has it: nothing to send again after a reload.
    this.store?.drop(clientId);
    if (this.byId.has(id)) this.settle(this.byId.get(id));
  }

  /** Pending messages to show in a list (top level: parent null), not yet confirmed. */
  pendingIn(parentId) {
    return this.pending.filter((p) => p.parent_id === parentId && !(p.id && this.byId.has(p.id)));
  }
}
