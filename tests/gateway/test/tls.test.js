// docs/gateway.md, "[tls]": the gateway serving https:// and wss:// itself. A certificate
// authority is made here with openssl; phoenix.js (through `ws`, told to trust exactly
// that CA) joins and chats over wss://; a client that does not trust it cannot connect;
// SIGHUP loads a renewed certificate for new connections while an open socket stays up;
// and `phx-gateway check` refuses a key that does not belong to the certificate, at the
// key's line.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import tls from "node:tls";
import WebSocket from "ws";
import { build, configFile, phxSocket, disconnectAll, repoRoot, startGateway, waitFor } from "../lib/harness.js";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "phx-gateway-tls-"));
const file = (name) => path.join(dir, name);
let gateway;

function openssl(...args) {
  try {
    execFileSync("openssl", args, { stdio: ["ignore", "ignore", "pipe"] });
  } catch (e) {
    if (e.code === "ENOENT") throw new Error("openssl not found: these tests make their certificates with it (apt-get install openssl)");
    throw e;
  }
}

/** A server certificate for 127.0.0.1 signed by the test CA, with `serial`, into cert.pem/key.pem. */
function issue(serial, { cert = "cert.pem", key = "key.pem" } = {}) {
  openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
    "-keyout", file(key), "-out", file("server.csr"), "-subj", "/CN=127.0.0.1");
  fs.writeFileSync(file("ext.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n");
  openssl("x509", "-req", "-in", file("server.csr"), "-CA", file("ca.pem"), "-CAkey", file("ca-key.pem"),
    "-set_serial", String(serial), "-days", "2", "-out", file(cert), "-extfile", file("ext.cnf"));
  return new crypto.X509Certificate(fs.readFileSync(file(cert)));
}

/** The serial of the certificate a new TLS connection gets, and the ALPN protocol. */
function served(port) {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: "127.0.0.1", port, ca: fs.readFileSync(file("ca.pem")), ALPNProtocols: ["http/1.1"] }, () => {
      const result = { serial: socket.getPeerCertificate().serialNumber, alpn: socket.alpnProtocol };
      socket.end();
      resolve(result);
    });
    socket.on("error", reject);
  });
}

/** `ws` trusting `ca` only: the WebSocket phoenix.js is given as its transport. */
function trusting(ca) {
  return class extends WebSocket {
    constructor(url, protocols) {
      super(url, protocols, ca ? { ca } : {});
    }
  };
}

before(() => {
  openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
    "-keyout", file("ca-key.pem"), "-out", file("ca.pem"), "-subj", "/CN=phx-gateway test CA", "-days", "2",
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign");
  issue(1);
});

after(async () => {
  disconnectAll();
  await gateway?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

const CONFIG = () => `
[tls]
cert_file = "\${TLS_CERT_FILE}"
key_file = "${file("key.pem")}"
handshake_timeout = "5s"

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
`;

test("phoenix.js joins and chats over wss:// through the gateway; ALPN is http/1.1", async () => {
  gateway = await startGateway(CONFIG(), { env: { TLS_CERT_FILE: file("cert.pem") } });
  assert.match(gateway.ws, /^wss:\/\/127\.0\.0\.1:\d+$/, "the listening line says wss://");
  const port = Number(new URL(gateway.http).port);
  assert.deepEqual(await served(port), { serial: "01", alpn: "http/1.1" });

  const socket = phxSocket(`${gateway.ws}/socket`, { transport: trusting(fs.readFileSync(file("ca.pem"))) });
  socket.connect();
  const channel = socket.channel("room:tls", {});
  const got = [];
  channel.on("new_msg", (m) => got.push(m));
  await new Promise((resolve, reject) => channel.join().receive("ok", resolve).receive("error", reject));
  const reply = await new Promise((resolve) => channel.push("new_msg", { body: "over tls" }).receive("ok", resolve));
  assert.deepEqual(reply, {});
  await waitFor(() => got.length === 1, "the broadcast over wss://");
  assert.deepEqual(got, [{ body: "over tls" }]);
  // Plain http:// on the TLS port gets no HTTP answer.
  await assert.rejects(fetch(`http://127.0.0.1:${port}/healthz`));
  assert.match(gateway.http, /^https:/);
});

test("a client that does not trust the CA cannot connect", async () => {
  const refused = await new Promise((resolve) => {
    const ws = new WebSocket(`${gateway.ws}/socket/websocket?vsn=2.0.0`);
    ws.on("open", () => {
      ws.close();
      resolve(null);
    });
    ws.on("error", (e) => resolve(e));
  });
  assert.ok(refused, "the handshake fails");
  assert.match(String(refused.code ?? refused.message), /SELF_SIGNED|UNABLE_TO_VERIFY|self-signed|local issuer/i);
});

test("SIGHUP loads a renewed certificate for new connections; an open socket stays up", async () => {
  const port = Number(new URL(gateway.http).port);
  const socket = phxSocket(`${gateway.ws}/socket`, { transport: trusting(fs.readFileSync(file("ca.pem"))) });
  const closes = [];
  socket.onClose(() => closes.push(Date.now()));
  socket.connect();
  const channel = socket.channel("room:reload", {});
  const got = [];
  channel.on("after", (m) => got.push(m));
  await new Promise((resolve, reject) => channel.join().receive("ok", resolve).receive("error", reject));

  issue(2);
  gateway.child.kill("SIGHUP");
  await waitFor(async () => (await served(port)).serial === "02", "the renewed certificate served");
  channel.push("after", { n: 1 });
  await waitFor(() => got.length === 1, "a broadcast on the socket opened before the reload");
  assert.deepEqual(closes, [], "the open socket was not closed");
  assert.equal(gateway.child.exitCode, null, "SIGHUP does not end the gateway");
});

test("phx-gateway check: a key that does not belong to the certificate, at the key's line", () => {
  build();
  issue(3, { cert: "other-cert.pem", key: "other-key.pem" });
  const config = configFile(`[tls]\ncert_file = "${file("cert.pem")}"\nkey_file = "${file("other-key.pem")}"\n[[socket]]\npath = "/s"\n[socket.auth]\nmethod = "none"\n`);
  const bin = path.join(process.env.CARGO_TARGET_DIR ?? path.join(repoRoot, "target"), "debug/phx-gateway");
  const out = spawnSync(bin, ["check", "--config", config], { encoding: "utf8" });
  assert.equal(out.status, 1, out.stderr);
  assert.match(out.stderr, new RegExp(`${config.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:3: tls\\.key_file: .*other-key\\.pem`), out.stderr);
});
