// The page's side of examples/hello: phoenix.js from npm, unmodified.
import { Socket, Presence } from "/phoenix.mjs";

const name = new URLSearchParams(location.search).get("name") || `guest-${Math.floor(Math.random() * 1000)}`;
const socket = new Socket("/socket", { params: { name } });
socket.connect();

const channel = socket.channel("room:lobby");
const presence = new Presence(channel);
presence.onSync(() => {
  const names = presence.list((user, { metas }) => (metas.length > 1 ? `${user} (${metas.length} tabs)` : user));
  document.querySelector("#online").textContent = `online: ${names.join(", ")}`;
});

channel.on("new_msg", ({ user, body }) => {
  const item = document.createElement("li");
  const who = document.createElement("b");
  who.textContent = user;
  item.append(who, document.createTextNode(String(body)));
  document.querySelector("#messages").append(item);
});

channel
  .join()
  .receive("ok", () => console.log(`joined room:lobby as ${name}`))
  .receive("error", (reason) => console.error("join refused", reason));

document.querySelector("#send").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = document.querySelector("#body");
  if (!input.value) return;
  channel
    .push("new_msg", { body: input.value })
    .receive("ok", () => (input.value = ""))
    .receive("error", (reason) => console.error("not sent", reason));
});
