// Accepting an invitation for a signed-in page, over a socket of the test's own: the page
// has no accept button yet (docs/chat.md, "Invitations": an invitation is pending until
// the invitee accepts it).
import { client, join, push } from "./channel.js";

/** Accepts the invitation to `room` of the user signed in on `page` (a Playwright page). */
export async function acceptInvitation(page, url, room) {
  const session = await page.evaluate(() => JSON.parse(localStorage.getItem("phx-chat:session")));
  const socket = client(url, { token: session.token });
  try {
    const me = await join(socket, `user:${session.user.id}`);
    if (!me.ok) throw new Error(`user channel refused: ${JSON.stringify(me.reply)}`);
    const reply = await push(me.channel, "accept_invite", { room });
    if (reply.status !== "ok") throw new Error(`accept_invite ${room}: ${JSON.stringify(reply)}`);
  } finally {
    socket.disconnect();
  }
}
