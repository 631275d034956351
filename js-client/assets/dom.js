// Small DOM builders shared by the views: elements with text (never HTML), the toolbar's
// SVG icons, avatars, and toolbar buttons.
import { initials, nameHue } from "/assets/format.js";

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// Toolbar icons as SVG strokes (no emoji font needed for the page's own controls).
const ICONS = {
  smile: ["M12 3a9 9 0 1 0 0 18a9 9 0 1 0 0-18z", "M8 14c1 1.5 2.4 2.2 4 2.2s3-.7 4-2.2", "M9 9.5h.01", "M15 9.5h.01"],
  reply: ["M9 14L4 9l5-5", "M4 9h10a6 6 0 0 1 6 6v4"],
  edit: ["M4 20h4L19 9l-4-4L4 16z", "M13 7l4 4"],
  trash: ["M4 7h16", "M9 7V4h6v3", "M6 7l1 13h10l1-13"],
  file: ["M6 3h8l4 4v14H6z", "M14 3v4h4"],
  clip: ["M20 11l-8.5 8.5a5 5 0 0 1-7-7L13 4a3.5 3.5 0 0 1 5 5l-8.5 8.5a2 2 0 0 1-3-3L14 7"],
};

export function icon(name) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", "icon");
  svg.setAttribute("aria-hidden", "true");
  for (const d of ICONS[name]) {
    const path = document.createElementNS(ns, "path");
    path.setAttribute("d", d);
    svg.append(path);
  }
  return svg;
}

export function avatar(name) {
  const a = el("span", "avatar", initials(name));
  a.setAttribute("aria-hidden", "true");
  a.style.setProperty("--hue", String(nameHue(name)));
  return a;
}

/**
 * A toolbar button: `content` is its text or an icon; `label` its accessible name.
 * `action` names what it does for the delegated handler of its list (message-actions.js);
 * `onClick`, when given, is called directly instead.
 */
export function actionButton(label, content, { action, onClick, className = "" } = {}) {
  const b = el("button", `action ${className}`.trim());
  b.append(content);
  b.type = "button";
  b.title = label;
  b.setAttribute("aria-label", label);
  if (action) b.dataset.action = action;
  if (onClick) {
    b.addEventListener("click", (e) => {
      e.stopPropagation();
      onClick(b);
    });
  }
  return b;
}
