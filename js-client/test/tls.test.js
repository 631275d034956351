// The chat app serving TLS itself (TLS_CERT_FILE / TLS_KEY_FILE): phoenix.js in Node over
// wss:// and long poll over https:// with a certificate authority made here and trusted
// through NODE_EXTRA_CA_CERTS, the same CA not trusted (the connection must fail), the
// chat page in Chromium told to trust exactly the server's key, and a certificate
// reloaded on SIGHUP that new connections see while an open socket stays up.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import tls from "node:tls";
import WebSocket from "ws";
import { startChat } from "../lib/chat-server.js";
import { launchBrowser } from "../lib/browser.js";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "chat-tls-"));
const file = (name) => path.join(dir, name);
let server;

/** openssl, quietly. */
function openssl(...args) {
  execFileSync("openssl", args, { stdio: ["ignore", "ignore", "pipe"] });
}

/** A server certificate for 127.0.0.1 signed by the CA, with `serial`, into cert.pem/key.pem. */
function issue(serial) {
  openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
    "-keyout", file("key.pem"), "-out", file("server.csr"), "-subj", "/CN=127.0.0.1");
  fs.writeFileSync(file("ext.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n");
  openssl("x509", "-req", "-in", file("server.csr"), "-CA", file("ca.pem"), "-CAkey", file("ca-key.pem"),
    "-set_serial", String(serial), "-days", "2", "-out", file("cert.pem"), "-extfile", file("ext.cnf"));
  return new crypto.X509Certificate(fs.readFileSync(file("cert.pem")));
}

/** The server certificate a new TLS connection gets (its serial, upper-case hex). */
function servedSerial(port) {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: "127.0.0.1", port, ca: fs.readFileSync(file("ca.pem")), ALPNProtocols: ["http/1.1"] }, () => {
      const cert = socket.getPeerCertificate();
      const alpn = socket.alpnProtocol;
      socket.end();
      resolve({ serial: cert.serialNumber, alpn });
    });
    socket.on("error", reject);
  });
}

/**
 * Runs phoenix.js in a child Node process whose only extra trust is the test CA
 * (NODE_EXTRA_CA_CERTS, read at start-up by Node's TLS, which `ws` and `fetch` use):
 * over `transport` ("websocket" or "longpoll"), join a room, send a message and get its
 * broadcast back. Resolves with the child's JSON result.
 */
function phoenixInChild(url, transport, { trustCa = true } = {}) {
  const code = `
    import { Socket, LongPoll } from "phoenix";
    import WebSocket from "ws";
    const done = (r) => { console.log(JSON.stringify(r)); process.exit(0); };
    setTimeout(() => done({ error: "timeout" }), 30000);
    const socket = new Socket(${JSON.stringify(url.replace(/^http/, "ws") + "/socket")}, {
      transport: ${JSON.stringify(transport)} === "longpoll" ? LongPoll : WebSocket,
      reconnectAfterMs: () => 60000,
      timeout: 30000,
    });
    socket.onError((e) => done({ error: String(e?.message ?? e?.type ?? e) }));
    socket.connect();
    const channel = socket.channel("room:tls", { username: "tls-" + ${JSON.stringify(transport)} });
    channel.on("new_msg", (m) => done({ ok: true, body: m.body, transport: socket.transport.name }));
    channel.join()
      .receive("ok", () => channel.push("new_msg", { body: "over tls" }))
      .receive("error", (e) => done({ error: JSON.stringify(e) }));
  `;
  const env = { ...process.env };
  delete env.NODE_EXTRA_CA_CERTS;
  if (trustCa) env.NODE_EXTRA_CA_CERTS = file("ca.pem");
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--input-type=module", "-e", code], {
      cwd: path.resolve(import.meta.dirname, ".."),
      env,
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.on("error", reject);
    child.on("exit", () => {
      try {
        resolve(JSON.parse(out.trim().split("\n").pop()));
      } catch {
        reject(new Error(`child printed ${JSON.stringify(out)}`));
      }
    });
  });
}

before(async () => {
  openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
    "-keyout", file("ca-key.pem"), "-out", file("ca.pem"), "-subj", "/CN=phx-rs test CA", "-days", "2",
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign");
  issue(1);
  server = await startChat({ env: { TLS_CERT_FILE: file("cert.pem"), TLS_KEY_FILE: file("key.pem") } });
});

after(async () => {
  await server?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

test("the chat app listens on https:// and offers ALPN http/1.1", async () => {
  assert.match(server.url, /^https:\/\/127\.0\.0\.1:\d+$/);
  const { alpn } = await servedSerial(Number(new URL(server.url).port));
  assert.equal(alpn, "http/1.1");
});

test("phoenix.js in Node joins and chats over wss:// with the test CA trusted", async () => {
  const result = await phoenixInChild(server.url, "websocket");
  assert.deepEqual(result, { ok: true, body: "over tls", transport: "WebSocket" });
});

test("phoenix.js in Node joins and chats over long poll on https://", async () => {
  const result = await phoenixInChild(server.url, "longpoll");
  assert.deepEqual(result, { ok: true, body: "over tls", transport: "LongPoll" });
});

test("without the CA trusted, the certificate is refused", async () => {
  const result = await phoenixInChild(server.url, "websocket", { trustCa: false });
  assert.equal(result.ok, undefined, JSON.stringify(result));
  assert.ok(result.error, "the socket failed");
  // And a direct TLS connection says why.
  await assert.rejects(
    new Promise((resolve, reject) => {
      const socket = tls.connect({ host: "127.0.0.1", port: Number(new URL(server.url).port) }, resolve);
      socket.on("error", reject);
    }),
    /self[- ]signed|unable to (get|verify)|UNABLE_TO|certificate/i,
  );
});

test("Chromium loads the page over https:// and chats over wss://, trusting exactly the server's key", async () => {
  const cert = new crypto.X509Certificate(fs.readFileSync(file("cert.pem")));
  const spki = crypto.createHash("sha256").update(cert.publicKey.export({ type: "spki", format: "der" })).digest("base64");
  // Without the key pinned the browser refuses the certificate: it really checks.
  const strict = await launchBrowser();
  try {
    const page = await (await strict.newContext()).newPage();
    await assert.rejects(page.goto(server.url), /ERR_CERT_AUTHORITY_INVALID|ERR_CERT/);
  } finally {
    await strict.close();
  }
  const browser = await launchBrowser([`--ignore-certificate-errors-spki-list=${spki}`]);
  try {
    const page = await (await browser.newContext()).newPage();
    const sockets = [];
    page.on("websocket", (ws) => sockets.push(ws.url()));
    await page.goto(`${server.url}/#tls-browser`);
    await page.fill("#username", "browser");
    await page.click("#login-form button");
    await page.waitForSelector("#chat:not([hidden])");
    await page.fill("#body", "hello over wss");
    await page.press("#body", "Enter");
    await page.waitForFunction(() => document.body.innerText.includes("hello over wss"), null, { timeout: 30000 });
    assert.ok(sockets.some((u) => u.startsWith("wss://127.0.0.1:")), `sockets: ${sockets}`);
  } finally {
    await browser.close();
  }
});

test("SIGHUP reloads the certificate: an open socket stays up, a new connection sees the new serial", async () => {
  const port = Number(new URL(server.url).port);
  assert.equal((await servedSerial(port)).serial, "01");
  const ca = fs.readFileSync(file("ca.pem"));
  const ws = new WebSocket(`wss://127.0.0.1:${port}/socket/websocket?vsn=2.0.0`, { ca });
  await new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  const heartbeat = (ref) =>
    new Promise((resolve, reject) => {
      const onMessage = (data) => {
        const [, r, topic, , payload] = JSON.parse(data);
        if (r === ref && topic === "phoenix") {
          ws.off("message", onMessage);
          resolve(payload.status);
        }
      };
      ws.on("message", onMessage);
      ws.once("close", () => reject(new Error("socket closed")));
      ws.send(JSON.stringify([null, ref, "phoenix", "heartbeat", {}]));
    });
  assert.equal(await heartbeat("1"), "ok");

  issue(2);
  server.child.kill("SIGHUP");
  let serial;
  for (let i = 0; i < 200 && serial !== "02"; i++) {
    serial = (await servedSerial(port)).serial;
    if (serial !== "02") await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(serial, "02", "a new connection sees the new certificate");
  assert.equal(await heartbeat("2"), "ok", "the socket opened before the reload is still up");
  assert.ok(server.logs.some((l) => /certificate reloaded/.test(l)), "the reload is logged");
  ws.close();
});
