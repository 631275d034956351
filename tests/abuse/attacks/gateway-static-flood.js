// The gateway's [[static]] files (read once at start, served from memory): 300
// connections that ask for an 8 MiB file and never read it, 1 200 requests for paths
// that must not resolve (traversal, encoded dots, hidden files, subdirectories, long
// paths) and 200 of other methods. Non-readers share the one copy of the file, so memory
// stays flat; no listed-nowhere file is served; a page load meanwhile is answered.
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { pause, Tally } from "../lib/raw.js";

const BIG_MIB = 8;
const NON_READERS = 300;

let dir = null;

/** Sends one raw request line (the path as written, not normalised); resolves with the status. */
function status(ctx, localAddress, requestLine) {
  const { hostname, port } = new URL(ctx.url);
  return new Promise((resolve) => {
    const socket = net.connect({ host: hostname, port: Number(port), localAddress });
    let head = "";
    socket.setTimeout(10000, () => socket.destroy());
    socket.on("error", () => resolve("error"));
    socket.on("data", (d) => {
      head += d.toString("latin1");
      const match = /^HTTP\/1\.1 (\d{3})/.exec(head);
      if (match) {
        socket.destroy();
        resolve(Number(match[1]));
      }
    });
    socket.on("close", () => resolve("closed"));
    socket.once("connect", () => socket.write(`${requestLine}\r\nHost: x\r\nContent-Length: 0\r\n\r\n`));
  });
}

/** Asks for the big file and reads nothing for `holdMs`. */
function nonReader(ctx, localAddress, holdMs) {
  const { hostname, port } = new URL(ctx.url);
  return new Promise((resolve) => {
    const socket = net.connect({ host: hostname, port: Number(port), localAddress });
    socket.on("error", () => {});
    socket.once("connect", () => {
      socket.write("GET /assets/big.bin HTTP/1.1\r\nHost: x\r\n\r\n");
      socket.pause();
      setTimeout(() => {
        socket.destroy();
        resolve();
      }, holdMs);
    });
  });
}

export default {
  name: "gateway-static-flood",
  sends: `${NON_READERS} connections that ask for an ${BIG_MIB} MiB static file and never read it, 1 200 requests for paths outside the listed files, 200 POST/PUT/DELETE`,
  target: "gateway",
  gateway: {
    async setup() {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), "abuse-static-"));
      fs.mkdirSync(path.join(dir, "assets"));
      fs.mkdirSync(path.join(dir, "assets", "sub"));
      fs.writeFileSync(path.join(dir, "index.html"), "<!doctype html><title>legit</title>");
      fs.writeFileSync(path.join(dir, "assets", "big.bin"), Buffer.alloc(BIG_MIB << 20, 7));
      fs.writeFileSync(path.join(dir, "assets", ".env"), "SECRET=1");
      fs.writeFileSync(path.join(dir, "assets", "sub", "deep.js"), "no");
      fs.writeFileSync(path.join(dir, "secret.txt"), "no");
      return { vars: { dir }, stop: async () => fs.rmSync(dir, { recursive: true, force: true }) };
    },
    config: ({ dir: root }) => `
[[static]]
path = "/"
file = "${root}/index.html"
[[static]]
path = "/assets/"
dir = "${root}/assets"

[[socket]]
path = "/socket"
check_origin = false
[socket.auth]
method = "none"
[[socket.channel]]
topic = "room:*"
join = "all"
[[socket.channel.event]]
name = "*"
handle = "broadcast"
`,
  },
  bounds: { rssGrowthMiB: 120, keptMiB: 40, threads: 40, legitMs: 10000 },
  timeoutMs: 60000,
  legitDelayMs: 1500,
  async attack(ctx) {
    const holders = Array.from({ length: NON_READERS }, (_, i) => nonReader(ctx, ctx.addr(i % 30), 5000));
    const paths = [
      "/assets/../secret.txt",
      "/assets/%2e%2e/secret.txt",
      "/assets/..%2fsecret.txt",
      "/assets/.env",
      "/assets/sub/deep.js",
      "/secret.txt",
      "/../../../../etc/passwd",
      "/assets//big.bin",
      "/assets/big.bin/",
      `/assets/${"a".repeat(4000)}`,
      "/index.html",
      "/assets/",
    ];
    const statuses = new Tally();
    const served = [];
    for (let round = 0; round < 100; round++) {
      const answers = await Promise.all(paths.map((p, i) => status(ctx, ctx.addr(40 + (i % 10)), `GET ${p} HTTP/1.1`)));
      answers.forEach((s, i) => {
        statuses.add(`GET ${s}`);
        if (s === 200) served.push(paths[i]);
      });
    }
    for (let i = 0; i < 200; i++) {
      const method = ["POST", "PUT", "DELETE"][i % 3];
      statuses.add(`${method} ${await status(ctx, ctx.addr(60 + (i % 10)), `${method} / HTTP/1.1`)}`);
    }
    await Promise.all(holders);
    ctx.log(`answers: ${statuses}`);
    if (served.length > 0) throw new Error(`served paths outside the listed files: ${[...new Set(served)].join(", ")}`);
    await pause(0);
  },
  async legit(ctx) {
    const page = await ctx.http("GET", "/", { localAddress: ctx.addr(250), timeoutMs: 10000 });
    if (page.status !== 200 || !page.body.includes("legit")) throw new Error(`GET / answered ${page.status}`);
  },
};
