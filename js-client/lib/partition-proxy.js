// A TCP proxy in front of PostgreSQL that can be partitioned: while partitioned it
// reads and forwards nothing in either direction (the kernel still accepts bytes and
// connections, nothing is refused, as in a real network partition); healing delivers
// everything held, late, as TCP would after retransmitting.
import net from "node:net";

export async function partitionProxy({ host = "127.0.0.1", port = 5432 } = {}) {
  let partitioned = false;
  let trigger = null;
  const pairs = new Set();

  const partition = () => {
    partitioned = true;
    for (const pair of pairs) {
      pair.client.pause();
      pair.upstream.pause();
    }
  };

  const server = net.createServer((client) => {
    const upstream = net.connect(port, host);
    const pair = { client, upstream, held: [], closing: false };
    pairs.add(pair);
    const forward = (from, to, watch) =>
      from.on("data", (chunk) => {
        if (watch && trigger && chunk.includes(trigger)) {
          // The chunk carrying the marker is held: its statement is in flight when the
          // partition starts.
          trigger = null;
          partition();
        }
        if (partitioned) pair.held.push([to, chunk]);
        else to.write(chunk);
      });
    forward(client, upstream, true);
    forward(upstream, client, false);
    const close = () => {
      // A close does not cross a partition either.
      if (partitioned) {
        pair.closing = true;
        return;
      }
      client.destroy();
      upstream.destroy();
      pairs.delete(pair);
    };
    for (const s of [client, upstream]) s.on("error", close).on("close", close);
    if (partitioned) {
      client.pause();
      upstream.pause();
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const proxyPort = server.address().port;

  return {
    /** `url` (postgres://user@host:port/db) pointed at the proxy. */
    url: (url) => url.replace(/@[^/]+\//, `@127.0.0.1:${proxyPort}/`),
    /** Partition as soon as a client → server chunk contains `marker`. */
    partitionWhenSent(marker) {
      trigger = Buffer.from(marker);
    },
    get partitioned() {
      return partitioned;
    },
    heal() {
      partitioned = false;
      for (const pair of [...pairs]) {
        for (const [to, chunk] of pair.held.splice(0)) to.write(chunk);
        if (pair.closing) {
          pair.client.destroy();
          pair.upstream.destroy();
          pairs.delete(pair);
        } else {
          pair.client.resume();
          pair.upstream.resume();
        }
      }
    },
    close() {
      for (const pair of pairs) {
        pair.client.destroy();
        pair.upstream.destroy();
      }
      pairs.clear();
      server.close();
    },
  };
}
