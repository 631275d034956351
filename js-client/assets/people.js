// Who is here: the presence list (one entry per account or guest, a meta per tab) and
// who is typing. A registered user's name is a button that opens a DM (rooms.js handles
// the click).
import { $, myAuthor, state, TYPING_SHOW_MS } from "/assets/state.js";

export function renderPresence() {
  // One entry per account (`user:<id>`) or guest (`guest:<id>`), a meta per tab.
  const people = state.presence
    .list((key, { metas }) => ({
      key,
      name: metas[0]?.username ?? key,
      guest: metas[0]?.guest ?? !key.startsWith("user:"),
      tabs: metas.length,
    }))
    .sort((a, b) => a.name.localeCompare(b.name));
  const ul = $("presence");
  ul.replaceChildren(
    ...people.map(({ key, name, guest, tabs }) => {
      // Me by author id (the presence key), never by name: another guest may show mine.
      const me = key === myAuthor();
      const li = document.createElement("li");
      li.className = me ? "me" : "";
      li.dataset.user = name;
      li.dataset.author = key;
      const dot = document.createElement("span");
      dot.className = "dot";
      let label = document.createElement("span");
      if (state.session && !guest && !me) {
        // A registered user's name opens a direct message.
        label = document.createElement("button");
        label.type = "button";
        label.className = "dm";
        label.title = `Message ${name}`;
      }
      label.textContent = name + (me ? " (you)" : "");
      li.append(dot, label);
      if (guest) {
        const mark = document.createElement("span");
        mark.className = "guest-mark";
        mark.textContent = "guest";
        li.append(mark);
      }
      if (tabs > 1) {
        const count = document.createElement("span");
        count.className = "tabs";
        count.textContent = `${tabs} tabs`;
        li.append(count);
      }
      return li;
    }),
  );
  $("online-count").textContent = String(people.length);
  $("people-count").textContent = String(people.length);
}

export function renderTyping() {
  const names = [...new Set([...state.typing.values()].map((t) => t.name))];
  $("typing").textContent =
    names.length === 0 ? "" : names.length === 1 ? `${names[0]} is typing…` : `${names.join(", ")} are typing…`;
}

/** `author` (showing `name`) is typing: shown for TYPING_SHOW_MS after their last signal. */
export function showTyping(author, name) {
  clearTimeout(state.typing.get(author)?.timer);
  const timer = setTimeout(() => {
    state.typing.delete(author);
    renderTyping();
  }, TYPING_SHOW_MS);
  state.typing.set(author, { name, timer });
  renderTyping();
}

/** `author`'s message arrived: no longer typing. */
export function clearTyping(author) {
  if (!state.typing.has(author)) return;
  clearTimeout(state.typing.get(author).timer);
  state.typing.delete(author);
  renderTyping();
}

/** Forgets every typing indicator (another room). */
export function clearAllTyping() {
  for (const { timer } of state.typing.values()) clearTimeout(timer);
  state.typing.clear();
  renderTyping();
}
