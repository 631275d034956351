// Small DOM builders shared by the views: elements with text (never HTML), the toolbar's
// SVG icons, avatars, and toolbar buttons.
import { avatarLightness, initials, nameHue } from "/assets/format.js";

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
  lock: ["M6 11h12v9H6z", "M8.5 11V8a3.5 3.5 0 0 1 7 0v3"],
  people: ["M9 11a3.5 3.5 0 1 0 0-7a3.5 3.5 0 0 0 0 7z", "M2.5 20c.8-3.5 3.3-5.5 6.5-5.5s5.7 2 6.5 5.5", "M16 4.3a3.5 3.5 0 0 1 0 6.4", "M18 14.8c2 .7 3.2 2.5 3.6 5.2"],
  menu: ["M4 6h16", "M4 12h16", "M4 18h16"],
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

/** A room's kind before its name: "#" or "@" as text, a lock (named) for a private room. */
export function kindMark(kind) {
  if (kind !== "private") return document.createTextNode(kind === "dm" ? "@" : "#");
  const mark = el("span", "room-kind");
  mark.setAttribute("role", "img");
  mark.setAttribute("aria-label", "private room");
  mark.title = "Private room";
  mark.append(icon("lock"));
  return mark;
}

/** Initials on a colour from the author id (two people with one name differ), else the name. */
export function avatar(name, author = null) {
  const a = el("span", "avatar", initials(name));
  a.setAttribute("aria-hidden", "true");
  const hue = nameHue(author ?? name);
  a.style.setProperty("--hue", String(hue));
  a.style.setProperty("--light", `${avatarLightness(hue)}%`);
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
