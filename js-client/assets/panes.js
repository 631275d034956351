// Where things open: the right-hand pane shows a thread, search results or the people
// in the room, one at a time (as in Slack): beside the room from 1200 px, over it below,
// full screen on phones. The people list opens by itself on wide screens unless the
// person closed it. On phones the rooms are in a drawer behind the menu button.
import { $, state } from "/assets/state.js";

const PANES = { thread: "thread-panel", search: "search-panel", people: "people-panel" };
const WIDE = window.matchMedia("(min-width: 1200px)");
const PEOPLE_PREF = "phx-chat:people";

export function openPane(name) {
  state.pane = name;
  for (const [n, id] of Object.entries(PANES)) $(id).hidden = n !== name;
  $("chat").classList.add("pane-open");
  $("chat").classList.toggle("thread-open", name === "thread");
  $("people-button").setAttribute("aria-expanded", String(name === "people"));
}

/** Closes pane `name` if it is the open one; false if it was not. */
export function closePane(name) {
  if (state.pane !== name) return false;
  state.pane = null;
  $(PANES[name]).hidden = true;
  $("chat").classList.remove("pane-open", "thread-open");
  $("people-button").setAttribute("aria-expanded", "false");
  if (name !== "people") showPeopleIfWanted();
  return true;
}

/** On a wide screen with nothing else open: the people list, unless it was closed. */
export function showPeopleIfWanted() {
  if (!state.pane && WIDE.matches && localStorage.getItem(PEOPLE_PREF) !== "closed") openPane("people");
}

export function togglePeople() {
  if (state.pane === "people") {
    closePane("people");
    if (WIDE.matches) localStorage.setItem(PEOPLE_PREF, "closed");
  } else {
    if (WIDE.matches) localStorage.setItem(PEOPLE_PREF, "open");
    openPane("people");
    $("people-close").focus({ preventScroll: true });
  }
}

/** The rooms drawer (phones): open or closed; focus goes in and comes back. */
export function setDrawer(open) {
  const chat = $("chat");
  if (chat.classList.contains("drawer-open") === open) return;
  chat.classList.toggle("drawer-open", open);
  $("drawer-backdrop").hidden = !open;
  $("menu-button").setAttribute("aria-expanded", String(open));
  if (open) ($("room-list").querySelector('[aria-current="page"]') ?? $("sidebar").querySelector("button, input"))?.focus();
  else if ($("sidebar").contains(document.activeElement)) $("menu-button").focus();
}

/** Panes follow the width: the people list leaves a narrowing screen, comes back when wide. */
export function wirePanes() {
  WIDE.addEventListener("change", () => {
    if (!WIDE.matches && state.pane === "people") closePane("people");
    else if (!$("chat").hidden) showPeopleIfWanted();
  });
  $("people-button").addEventListener("click", togglePeople);
  $("people-close").addEventListener("click", () => {
    closePane("people");
    if (WIDE.matches) localStorage.setItem(PEOPLE_PREF, "closed");
    $("people-button").focus();
  });
  $("menu-button").addEventListener("click", () => setDrawer(!$("chat").classList.contains("drawer-open")));
  $("drawer-backdrop").addEventListener("click", () => setDrawer(false));
}
