// A TCP proxy in front of the chat app whose connections can be cut: `cut()` closes every
// connection and refuses new ones (a browser sees its WebSocket drop and cannot reconnect)
// until `restore()`. Unlike partition-proxy.js nothing is held: this is a dropped link, the
// case the page's rejoin with `after_id` is for.
import net from "node:net";

export async function cutProxy({ host = "127.0.0.1", port }) {
  let cut = false;
  const sockets = new Set();
  const server = net.createServer((client) => {
    if (cut) return client.destroy();
    const upstream = net.connect(port, host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => {});
    }
    client.pipe(upstream);
    upstream.pipe(client);
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    cut: () => {
      cut = true;
      for (const s of sockets) s.destroy();
    },
    restore: () => {
      cut = false;
    },
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(resolve);
      }),
  };
}
