// The page's own confirm dialog (a <dialog>, modal, styled like the page), instead of the
// browser's confirm(): same colours and words as the rest, and no browser chrome that
// tests and some embedders cannot see.
import { $ } from "/assets/state.js";

/**
 * Asks `title` / `text` with a Cancel button and a `confirm` button; resolves true when
 * the person confirms. Escape, Cancel and a second question in the meantime resolve false.
 */
export function confirmDialog({ title, text, confirm }) {
  const dialog = $("confirm-dialog");
  if (dialog.open) dialog.close("cancel");
  const opener = document.activeElement;
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  $("confirm-ok").textContent = confirm;
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        resolve(dialog.returnValue === "ok");
        if (opener?.isConnected) opener.focus({ preventScroll: true });
      },
      { once: true },
    );
    dialog.showModal();
    // The safe choice has focus: Enter does not destroy anything by accident.
    $("confirm-cancel").focus();
  });
}
