// One message as DOM: avatar, name and time, body (formatted: markup.js), attachments,
// reactions, reply count, and its toolbar. Views only: every control carries a
// `data-action` that the list's delegated handler (message-actions.js) acts on, so this
// module calls nothing outside itself. All user text goes through textContent. Controls
// start out of the Tab order: the list's one current message puts its own back
// (list-view.js, a roving tabindex), so a conversation is not four Tab stops a message.
import { authorTag, formatSize, timeLabel } from "/assets/format.js";
import { blocks } from "/assets/markup.js";
import { actionButton, avatar, el, icon } from "/assets/dom.js";
import { isMine, isMyName, myAuthor, reactedByMe, state } from "/assets/state.js";

/** A body longer than this many lines or characters is shown collapsed ("Show more"). */
const LONG_LINES = 10;
const LONG_CHARS = 700;

function inlineNodes(runs) {
  return runs.map((run) => {
    if (run.type === "link") {
      const a = el("a", "link", run.text);
      a.href = run.href;
      a.target = "_blank";
      a.rel = "noopener noreferrer";
      return a;
    }
    if (run.type === "mention") return el("span", isMyName(run.name) ? "mention me" : "mention", run.text);
    if (run.type === "code") return el("code", "", run.text);
    if (run.children) {
      const node = el(run.type === "bold" ? "strong" : run.type === "italic" ? "em" : "s");
      node.append(...inlineNodes(run.children));
      return node;
    }
    return document.createTextNode(run.text);
  });
}

/** The body as DOM nodes: formatting, links (http and https only) and mentions. */
export function bodyNodes(body) {
  return blocks(body).map((b) => {
    if (b.type === "code") {
      const pre = el("pre");
      pre.append(el("code", "", b.text));
      return pre;
    }
    if (b.type === "quote") {
      const quote = el("blockquote");
      quote.append(...inlineNodes(b.inline));
      return quote;
    }
    const span = el("span");
    span.append(...inlineNodes(b.inline));
    return span;
  });
}

/** Whether a body is shown collapsed until "Show more". */
export function isLong(body) {
  return body.length > LONG_CHARS || body.split("\n").length > LONG_LINES;
}

/** Only the server's own upload paths are linked (never a URL from elsewhere). */
function uploadUrl(url) {
  return typeof url === "string" && /^\/uploads\/[A-Za-z0-9_-]+(\/thumb)?$/.test(url) ? url : null;
}

/**
 * One attachment: an image thumbnail linking to the file, or a file card. Its links carry
 * the upload id (`data-upload`): file-links.js gets fresh URLs when they expire or fail.
 * A file no longer readable (deleted, `gone`) shows as such, without a link.
 */
export function attachmentElement(a) {
  if (a.gone) {
    const card = el("span", "attachment file gone");
    card.append(icon("file"), el("span", "file-name", a.name ?? "file"), el("span", "file-size", "no longer available"));
    return card;
  }
  const url = uploadUrl(a.url);
  const thumb = uploadUrl(a.thumb_url);
  if (url && thumb && String(a.content_type).startsWith("image/")) {
    const link = el("a", "attachment image");
    link.href = url;
    link.target = "_blank";
    link.rel = "noopener noreferrer";
    link.dataset.upload = a.id;
    const img = el("img");
    img.src = thumb;
    img.alt = a.name ?? "image";
    img.loading = "lazy";
    img.dataset.upload = a.id;
    link.append(img);
    return link;
  }
  const link = el(url ? "a" : "span", "attachment file");
  if (url) {
    link.href = url;
    link.download = a.name ?? "";
    link.dataset.upload = a.id;
  }
  link.append(icon("file"), el("span", "file-name", a.name ?? "file"), el("span", "file-size", formatSize(a.size)));
  return link;
}

function reactionsElement(m) {
  const row = el("div", "reactions");
  for (const [emoji, who] of Object.entries(m.reactions)) {
    if (!Array.isArray(who) || who.length === 0) continue;
    const mine = reactedByMe(m, emoji);
    const chip = el("button", mine ? "reaction mine" : "reaction");
    chip.type = "button";
    chip.dataset.emoji = emoji;
    chip.title = `${who.join(", ")} reacted with ${emoji}`;
    chip.setAttribute("aria-pressed", String(mine));
    chip.setAttribute("aria-label", `${emoji} ${who.length}: ${who.join(", ")}${mine ? " (you reacted)" : ""}`);
    chip.append(el("span", "emoji", emoji), el("span", "n", String(who.length)));
    row.append(chip);
  }
  return row;
}

/**
 * Who wrote a message, as the meta line shows it: the name, a "guest" badge for a guest
 * (docs/chat.md: `guest`), and, when several people in the room show this name
 * (`shared`), a short tag from the author id that tells them apart.
 */
export function authorNodes(m, shared) {
  const nodes = [el("span", "who", m.username)];
  if (m.guest) {
    const badge = el("span", "guest-badge", "guest");
    badge.title = "A guest: not a registered account";
    nodes.push(badge);
  }
  const tag = shared ? authorTag(m.author) : "";
  if (tag) {
    const t = el("span", "author-tag", tag);
    t.title = `Several people here show the name ${m.username}: this is ${m.guest ? "the guest" : "the account"} ${tag}`;
    nodes.push(t);
  }
  return nodes;
}

/**
 * One message: avatar, name and time unless it continues a group, body (or its editor),
 * attachments, reactions, the reply count; a toolbar on hover, focus or tap. "Mine" (the
 * edit and delete controls) is decided by author id, never by name. `shared`: another
 * author in the room shows the same name.
 */
export function messageElement(m, { grouped, inThread, shared = false }) {
  const mine = isMine(m);
  const li = el("li", "message");
  li.classList.toggle("grouped", grouped);
  li.classList.toggle("mine", mine);
  li.classList.toggle("guest", m.guest);
  li.classList.toggle("deleted", m.deleted);
  li.classList.toggle("mentions-me", !mine && m.mentions.some(isMyName));
  li.dataset.id = String(m.id);
  li.dataset.user = m.username;
  if (m.author) li.dataset.author = m.author;
  const gutter = el("div", "gutter");
  if (grouped) {
    const t = el("time", "gutter-time", timeLabel(m.inserted_at));
    t.dateTime = m.inserted_at;
    gutter.append(t);
  } else gutter.append(avatar(m.username, m.author));
  const content = el("div", "content");
  if (grouped) content.append(el("span", "visually-hidden", `${m.username}${m.guest ? " (guest)" : ""}, ${timeLabel(m.inserted_at)}: `));
  else {
    const meta = el("div", "meta");
    const when = el("time", "", timeLabel(m.inserted_at));
    when.dateTime = m.inserted_at;
    when.title = new Date(m.inserted_at).toLocaleString();
    meta.append(...authorNodes(m, shared), when);
    content.append(meta);
  }
  if (m.deleted) {
    content.append(el("div", "body tombstone", "message deleted"));
  } else if (state.editing === m.id) {
    content.append(editorElement(m));
  } else {
    const body = el("div", "body");
    body.append(...bodyNodes(m.body));
    content.append(body);
    if (isLong(m.body)) {
      const open = state.expanded.has(m.id);
      body.classList.toggle("collapsed", !open);
      const more = el("button", "more", open ? "Show less" : "Show more");
      more.type = "button";
      more.dataset.action = "expand";
      more.setAttribute("aria-expanded", String(open));
      content.append(more);
    }
    if (m.edited_at) content.append(el("span", "edited", "(edited)"));
  }
  if (!m.deleted && m.attachments.length) {
    const list = el("div", "attachments");
    list.append(...m.attachments.map(attachmentElement));
    content.append(list);
  }
  if (!m.deleted && Object.keys(m.reactions).length) content.append(reactionsElement(m));
  if (!inThread && m.parent_id === null && m.reply_count > 0) {
    const n = m.reply_count;
    const text = `${n} ${n === 1 ? "reply" : "replies"}`;
    // The accessible name starts with the visible text (WCAG 2.5.3).
    content.append(actionButton(`${text}, open the thread`, text, { action: "thread", className: "reply-count" }));
  }
  li.append(gutter, content);
  if (!m.deleted) {
    const bar = el("div", "actions");
    bar.setAttribute("role", "toolbar");
    bar.setAttribute("aria-label", `Actions for ${m.username}'s message`);
    bar.append(actionButton("Add a reaction", icon("smile"), { action: "react", className: "react" }));
    if (!inThread && m.parent_id === null) bar.append(actionButton("Reply in thread", icon("reply"), { action: "thread", className: "reply" }));
    if (mine) {
      bar.append(actionButton("Edit", icon("edit"), { action: "edit", className: "edit" }));
      bar.append(actionButton("Delete", icon("trash"), { action: "delete", className: "delete" }));
    }
    li.append(bar);
  }
  outOfTabOrder(li);
  return li;
}

/** A message and its links and buttons leave the Tab order (the editor stays in it). */
function outOfTabOrder(li) {
  li.tabIndex = -1;
  for (const c of li.querySelectorAll("a, button")) if (!c.closest("form.editor")) c.tabIndex = -1;
}

/** The inline editor of message `m` (its form is handled by message-actions.js). */
function editorElement(m) {
  const form = el("form", "editor");
  const area = el("textarea");
  // The draft survives a rebuild (someone reacts while this is being edited).
  area.value = state.editDraft ?? m.body;
  area.rows = 2;
  area.setAttribute("aria-label", "Edit message");
  const save = el("button", "small", "Save");
  save.type = "submit";
  const cancel = el("button", "secondary small", "Cancel");
  cancel.type = "button";
  cancel.dataset.action = "cancel-edit";
  // A refused edit says why here, under the text being edited (not under the composer).
  const error = el("p", "error edit-error", state.editError);
  error.setAttribute("role", "alert");
  form.append(area, save, cancel, error);
  queueMicrotask(() => {
    area.focus();
    area.setSelectionRange(area.value.length, area.value.length);
  });
  return form;
}

/** A message this page sent and the server has not confirmed (yet). */
export function pendingElement(p, grouped) {
  const li = el("li", `message mine pending ${p.state}`);
  li.classList.toggle("grouped", grouped);
  li.dataset.clientId = p.client_id;
  const gutter = el("div", "gutter");
  const who = state.me?.username ?? state.username;
  if (!grouped) gutter.append(avatar(who, myAuthor()));
  const content = el("div", "content");
  if (!grouped) {
    const meta = el("div", "meta");
    meta.append(...authorNodes({ username: who, guest: !state.session, author: myAuthor() }, false));
    content.append(meta);
  }
  const body = el("div", "body");
  body.append(...bodyNodes(p.body));
  content.append(body);
  if (p.attachments.length) {
    const list = el("div", "attachments");
    list.append(...p.attachments.map(attachmentElement));
    content.append(list);
  }
  const note = el("div", "pending-note");
  if (p.state === "failed") {
    note.append(el("span", "error", `Not sent: ${p.reason}`));
    note.append(actionButton("Try again", "Retry", { action: "retry", className: "retry" }));
    note.append(actionButton("Discard", "Discard", { action: "discard", className: "discard" }));
  } else {
    note.textContent = p.state === "waiting" ? "Waiting for the connection — will be sent automatically" : "Sending…";
  }
  content.append(note);
  li.append(gutter, content);
  outOfTabOrder(li);
  return li;
}
