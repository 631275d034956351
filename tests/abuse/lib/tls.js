// What the TLS rows share: a test CA with a server certificate for 127.0.0.1, made with
// openssl on first use, and a probe that times how long a server keeps a connection.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";

/** A CA and a server certificate for IP 127.0.0.1 in a new temporary directory: {dir, cert, key, ca}. */
export function testCertificates(prefix) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const file = (name) => path.join(dir, name);
  const openssl = (...args) => execFileSync("openssl", args, { stdio: ["ignore", "ignore", "pipe"] });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  openssl("req", "-x509", ...ec, "-keyout", file("ca-key.pem"), "-out", file("ca.pem"), "-subj", "/CN=abuse CA", "-days", "2",
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign");
  openssl("req", ...ec, "-keyout", file("key.pem"), "-out", file("server.csr"), "-subj", "/CN=127.0.0.1");
  fs.writeFileSync(file("ext.cnf"), "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
  openssl("x509", "-req", "-in", file("server.csr"), "-CA", file("ca.pem"), "-CAkey", file("ca-key.pem"),
    "-set_serial", "1", "-days", "2", "-out", file("cert.pem"), "-extfile", file("ext.cnf"));
  return { dir, cert: file("cert.pem"), key: file("key.pem"), ca: fs.readFileSync(file("ca.pem")) };
}

/**
 * Opens a TCP connection from `localAddress`, sends `bytes` (if any) and reads (drops)
 * whatever comes back; resolves with how long until the server closed it (ms), or null
 * if it was still open after `waitMs`.
 */
export function closedAfter(ctx, localAddress, bytes, waitMs) {
  const { hostname, port } = new URL(ctx.url);
  return new Promise((resolve) => {
    const started = Date.now();
    const socket = net.connect({ host: hostname, port: Number(port), localAddress });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(null);
    }, waitMs);
    socket.on("error", () => {});
    socket.on("data", () => {});
    socket.once("close", () => {
      clearTimeout(timer);
      resolve(Date.now() - started);
    });
    socket.once("connect", () => bytes && socket.write(bytes));
  });
}
