// Attachments (signed-in users): a file is uploaded at once (POST /api/uploads,
// docs/chat.md), shown while it goes up (a progress bar; a preview for images), and the
// next message carries the uploaded ids. Files come from the attach button, a drop on
// the conversation or a paste into the composer. A message sent while files are still
// going up waits for them.
import { formatSize, readableError } from "/assets/format.js";
import { actionButton, el, icon } from "/assets/dom.js";
import { $, state } from "/assets/state.js";

let nextKey = 0;

/** Uploaded attachments ready to go with the next message. */
export function readyAttachments() {
  return state.staged.filter((s) => s.state === "ready").map((s) => s.attachment);
}

/** Whether a file is still going up. */
export function uploading() {
  return state.staged.some((s) => s.state === "uploading");
}

/** Forgets the staged files (sent, or signed out); previews are released. */
export function clearStaged() {
  for (const s of state.staged) {
    s.xhr?.abort();
    if (s.preview) URL.revokeObjectURL(s.preview);
  }
  state.staged = [];
  renderStaged();
}

function remove(item) {
  item.xhr?.abort();
  if (item.preview) URL.revokeObjectURL(item.preview);
  state.staged = state.staged.filter((x) => x !== item);
  renderStaged();
  settled();
}

/** After an upload ends: a message that waited for the files goes now. */
function settled() {
  if (state.sendWhenUploaded && !uploading()) {
    state.sendWhenUploaded = false;
    $("composer").requestSubmit();
  }
}

export function upload(file) {
  if (!state.session) {
    $("send-error").textContent = "Sign in to share files.";
    return;
  }
  const item = {
    key: ++nextKey,
    name: file.name,
    size: file.size,
    state: "uploading",
    progress: 0,
    preview: /^image\/(png|jpeg|gif|webp)$/.test(file.type) ? URL.createObjectURL(file) : null,
  };
  state.staged.push(item);
  renderStaged();
  // XMLHttpRequest, not fetch: only it reports the upload's progress.
  const xhr = new XMLHttpRequest();
  item.xhr = xhr;
  xhr.open("POST", `/api/uploads?name=${encodeURIComponent(file.name)}`);
  xhr.setRequestHeader("authorization", `Bearer ${state.session?.token ?? ""}`);
  xhr.upload.addEventListener("progress", (e) => {
    if (!e.lengthComputable) return;
    item.progress = e.loaded / e.total;
    if (item.bar) item.bar.value = item.progress;
  });
  xhr.addEventListener("load", () => {
    item.xhr = null;
    let body = {};
    try {
      body = JSON.parse(xhr.responseText);
    } catch {
      // Not JSON (a proxy's page): the status says enough.
    }
    if (xhr.status === 201) {
      Object.assign(item, { state: "ready", attachment: body });
      renderStaged();
      settled();
    } else refused(item, `Upload refused: ${file.name}: ${readableError(body.error ?? `error ${xhr.status}`)}`);
  });
  xhr.addEventListener("error", () => refused(item, "Upload failed: the server cannot be reached."));
  xhr.send(file);
}

function refused(item, text) {
  item.xhr = null;
  $("send-error").textContent = text;
  state.sendWhenUploaded = false;
  remove(item);
}

export function renderStaged() {
  $("staged").replaceChildren(
    ...state.staged.map((item) => {
      const chip = el("span", `staged-file ${item.state}`);
      if (item.preview) {
        const img = el("img", "preview");
        img.src = item.preview;
        img.alt = "";
        chip.append(img);
      } else chip.append(icon("clip"));
      const info = el("span", "staged-info");
      info.append(el("span", "staged-name", item.name), el("span", "staged-size", formatSize(item.size)));
      if (item.state === "uploading") {
        const bar = el("progress");
        bar.max = 1;
        bar.value = item.progress;
        bar.setAttribute("aria-label", `Uploading ${item.name}`);
        item.bar = bar;
        info.append(bar);
      } else item.bar = null;
      chip.append(info);
      chip.append(actionButton(`Remove ${item.name}`, "✕", { onClick: () => remove(item) }));
      return chip;
    }),
  );
}

/** Drops on the conversation and pastes into the composer upload their files. */
export function wireFileDrops(zone, composer) {
  const hasFiles = (e) => [...(e.dataTransfer?.types ?? [])].includes("Files");
  let depth = 0;
  zone.addEventListener("dragenter", (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    depth += 1;
    $("drop-zone").hidden = false;
  });
  zone.addEventListener("dragover", (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = state.session ? "copy" : "none";
  });
  zone.addEventListener("dragleave", (e) => {
    if (!hasFiles(e)) return;
    depth = Math.max(0, depth - 1);
    if (depth === 0) $("drop-zone").hidden = true;
  });
  zone.addEventListener("drop", (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    depth = 0;
    $("drop-zone").hidden = true;
    for (const file of e.dataTransfer.files) upload(file);
  });
  composer.addEventListener("paste", (e) => {
    const files = [...(e.clipboardData?.files ?? [])];
    if (files.length === 0) return;
    e.preventDefault();
    for (const file of files) upload(file);
  });
}
