// Attachments (signed-in users): a file is uploaded first (POST /api/uploads, docs/chat.md)
// and staged; the next message carries the staged upload ids.
import { formatSize } from "/assets/format.js";
import { actionButton, el, icon } from "/assets/dom.js";
import { $, state } from "/assets/state.js";

export async function upload(file) {
  $("send-error").textContent = `Uploading ${file.name}…`;
  try {
    const res = await fetch(`/api/uploads?name=${encodeURIComponent(file.name)}`, {
      method: "POST",
      headers: { authorization: `Bearer ${state.session?.token ?? ""}` },
      body: file,
    });
    const body = await res.json().catch(() => ({}));
    if (res.status === 201) {
      state.staged.push(body);
      $("send-error").textContent = "";
      renderStaged();
    } else {
      $("send-error").textContent = `Upload refused: ${body.error ?? `error ${res.status}`}`;
    }
  } catch {
    $("send-error").textContent = "Upload failed: the server cannot be reached.";
  }
}

export function renderStaged() {
  $("staged").replaceChildren(
    ...state.staged.map((a) => {
      const chip = el("span", "staged-file");
      chip.append(icon("clip"), el("span", "", `${a.name} (${formatSize(a.size)})`));
      const remove = actionButton(`Remove ${a.name}`, "✕", {
        onClick: () => {
          state.staged = state.staged.filter((x) => x !== a);
          renderStaged();
        },
      });
      chip.append(remove);
      return chip;
    }),
  );
}
