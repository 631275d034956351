// docs/gateway.md, "Authentication": JWT (HS, RS, ES, EdDSA; inline, file and JWKS keys;
// exp/nbf/aud/iss; alg none and HS/RS confusion refused; unknown kid then a key rotation;
// a storm of made-up kids costing no fetch), the authToken subprotocol, and
// Phoenix.Token with tokens real Phoenix signed.
import { test, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import { createHmac, generateKeyPairSync, sign as cryptoSign } from "node:crypto";
import { readFileSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import { startGateway, fakeBackend, backendToml, Raw, upgradeStatus, phxSocket, disconnectAll, repoRoot } from "../lib/harness.js";

const HS_SECRET = "hs-secret-".repeat(4); // 40 bytes
const ISSUER = "https://issuer.test/";
const b64url = (data) => Buffer.from(typeof data === "string" ? data : JSON.stringify(data)).toString("base64url");
const now = () => Math.floor(Date.now() / 1000);

const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
const rsaOther = generateKeyPairSync("rsa", { modulusLength: 2048 });
const rsaRotated = generateKeyPairSync("rsa", { modulusLength: 2048 });
const ec = generateKeyPairSync("ec", { namedCurve: "P-256" });
const ed = generateKeyPairSync("ed25519");
const pem = (pair) => pair.publicKey.export({ type: "spki", format: "pem" });

/** A JWT with `header` (alg included) and `claims`, signed by `signer(input)`. */
function jwt(header, claims, signer) {
  const input = `${b64url({ typ: "JWT", ...header })}.${b64url(claims)}`;
  return `${input}.${signer ? Buffer.from(signer(input)).toString("base64url") : ""}`;
}
const hs = (bits, secret = HS_SECRET) => (input) => createHmac(`sha${bits}`, secret).update(input).digest();
const rs = (pair) => (input) => cryptoSign("sha256", Buffer.from(input), pair.privateKey);
const es = (input) => cryptoSign("sha256", Buffer.from(input), { key: ec.privateKey, dsaEncoding: "ieee-p1363" });
const eddsa = (input) => cryptoSign(null, Buffer.from(input), ed.privateKey);

const claims = (extra = {}) => ({ sub: "u1", role: "admin", aud: "app", iss: ISSUER, exp: now() + 600, ...extra });

// A JWKS server whose key set a test can rotate; counts fetches per path.
const jwks = { keys: [], fetches: {} };
const jwk = (pair, kid) => ({ ...pair.publicKey.export({ format: "jwk" }), kid, alg: "RS256", use: "sig" });
let jwksServer;
let jwksUrl;

let backend;
let gateway;

/** One [[socket]] with a `room:*` channel whose `whoami` the backend answers. */
function mount(pathName, auth) {
  return `
[[socket]]
path = "${pathName}"
check_origin = false
[socket.auth]
${auth}
[[socket.channel]]
topic = "room:*"
join = "all"
[[socket.channel.event]]
name = "whoami"
handle = "forward"
`;
}

const vectors = JSON.parse(readFileSync(path.join(repoRoot, "crates/phx-server/tests/data/phoenix-token-vectors.json"), "utf8"));
const vector42 = vectors.cases.find((c) => c.data === 42 && c.salt === "user socket");

before(async () => {
  jwks.keys = [jwk(rsa, "kid1")];
  jwksServer = http.createServer((req, res) => {
    jwks.fetches[req.url] = (jwks.fetches[req.url] ?? 0) + 1;
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ keys: jwks.keys }));
  });
  await new Promise((r) => jwksServer.listen(0, "127.0.0.1", r));
  jwksUrl = `http://127.0.0.1:${jwksServer.address().port}`;

  backend = await fakeBackend({
    "/phx/event": (req) => ({ reply: { status: "ok", response: { assigns: req.assigns, socket_id: req.socket_id } } }),
  });
  const common = `audience = "app"\nissuer = "${ISSUER}"\nleeway = "5s"\nsocket_id = "user_socket:{sub}"`;
  gateway = await startGateway(
    `${backendToml(backend)}
${mount("/hs", `method = "jwt"\nalgorithms = ["HS256"]\nsecret = "${HS_SECRET}"\n${common}`)}
${mount("/rs", `method = "jwt"\nalgorithms = ["RS256"]\npublic_key_file = "rs.pem"\n${common}`)}
${mount("/es", `method = "jwt"\nalgorithms = ["ES256"]\npublic_key = """\n${pem(ec)}"""\n${common}`)}
${mount("/ed", `method = "jwt"\nalgorithms = ["EdDSA"]\npublic_key = """\n${pem(ed)}"""\n${common}`)}
${mount("/jwks", `method = "jwt"\nalgorithms = ["RS256"]\njwks_url = "${jwksUrl}/rotating.json"\njwks_min_interval = "100ms"\n${common}`)}
${mount("/storm", `method = "jwt"\nalgorithms = ["RS256"]\njwks_url = "${jwksUrl}/storm.json"\njwks_min_interval = "1h"\n${common}`)}
${mount("/subprotocol", `method = "jwt"\nalgorithms = ["HS256"]\nsecret = "${HS_SECRET}"\ntoken = "auth_token"\n${common}`)}
${mount("/ptoken", `method = "phoenix_token"\nsecret_key_base = "${vectors.secret_key_base}"\nsalt = "user socket"\nmax_age = "36500d"\nsocket_id = "user_socket:{user_id}"`)}
${mount("/ptoken-day", `method = "phoenix_token"\nsecret_key_base = "${vectors.secret_key_base}"\nsalt = "user socket"\nmax_age = "1d"`)}
`,
    { files: { "rs.pem": pem(rsa) } },
  );
});

after(async () => {
  await gateway?.stop();
  await backend?.close();
  await new Promise((r) => jwksServer?.close(r));
});

afterEach(() => disconnectAll());

const status = (mountPath, token) => upgradeStatus(gateway.ws, { mount: mountPath, query: token === undefined ? "" : `token=${encodeURIComponent(token)}` });

/** What the backend sees of a socket connected with `token` on `mountPath`. */
async function whoami(mountPath, token) {
  const raw = await Raw.open(gateway.ws, { mount: mountPath, query: `token=${encodeURIComponent(token)}` });
  const { joinRef } = await raw.join("room:me");
  const reply = await raw.reply(raw.push("room:me", joinRef, "whoami"));
  raw.close();
  return reply[4].response;
}

test("JWT HS256: a valid token connects; its claims are the assigns and the socket id is templated", async () => {
  const c = claims();
  assert.deepEqual(await whoami("/hs", jwt({ alg: "HS256" }, c, hs(256))), { assigns: c, socket_id: "user_socket:u1" });
});

test("JWT RS256 (key file), ES256 and EdDSA (inline keys) connect", async () => {
  assert.equal(await status("/rs", jwt({ alg: "RS256" }, claims(), rs(rsa))), 101);
  assert.equal(await status("/es", jwt({ alg: "ES256" }, claims(), es)), 101);
  assert.equal(await status("/ed", jwt({ alg: "EdDSA" }, claims(), eddsa)), 101);
});

test("JWT refusals: expired, not yet valid, wrong aud, wrong iss, no token, no exp: all 403", async () => {
  const refused = {
    "expired beyond the leeway": claims({ exp: now() - 60 }),
    "not valid before a minute from now": claims({ nbf: now() + 60 }),
    "wrong audience": claims({ aud: "another-app" }),
    "wrong issuer": claims({ iss: "https://evil.test/" }),
    "no exp": (({ exp, ...rest }) => rest)(claims()),
    "exp as a string (type confusion)": claims({ exp: "99999999999" }),
    "nbf as a string (type confusion)": claims({ nbf: String(now() + 3600) }),
  };
  for (const [why, c] of Object.entries(refused)) {
    assert.equal(await status("/hs", jwt({ alg: "HS256" }, c, hs(256))), 403, why);
  }
  assert.equal(await status("/hs"), 403, "no token");
  assert.equal(await status("/hs", "not.a.jwt"), 403, "garbage");
  // Within the leeway still passes.
  assert.equal(await status("/hs", jwt({ alg: "HS256" }, claims({ exp: now() - 2 }), hs(256))), 101);
});

test("JWT algorithm attacks: none, another HS size, HS/RS key confusion, a foreign key: all 403", async () => {
  assert.equal(await status("/hs", jwt({ alg: "none" }, claims())), 403, "alg none, no signature");
  assert.equal(await status("/hs", jwt({ alg: "HS384" }, claims(), hs(384))), 403, "an algorithm not listed");
  // The classic confusion: an HS256 token whose HMAC key is the server's RSA public key.
  assert.equal(await status("/rs", jwt({ alg: "HS256" }, claims(), hs(256, pem(rsa)))), 403, "HS256 signed with the RSA public key");
  assert.equal(await status("/rs", jwt({ alg: "RS256" }, claims(), rs(rsaOther))), 403, "signed by another RSA key");
  assert.equal(await status("/rs", jwt({ alg: "ES256" }, claims(), es)), 403, "an ES256 token on an RS256 socket");
  assert.equal(await status("/hs", jwt({ alg: "HS256" }, claims(), hs(256, "x".repeat(40)))), 403, "a wrong secret");
});

test("JWKS: a token with an unknown kid makes the gateway fetch the rotated set", async () => {
  assert.equal(await status("/jwks", jwt({ alg: "RS256", kid: "kid1" }, claims(), rs(rsa))), 101);
  const before = jwks.fetches["/rotating.json"];
  assert.ok(before >= 1, "fetched at start");
  const rotated = jwt({ alg: "RS256", kid: "kid2" }, claims(), rs(rsaRotated));
  // Past the minimum interval (100 ms) since the fetch at start, so this unknown kid is
  // fetched for (a fast machine gets here within it, and the count below would be one short).
  await new Promise((r) => setTimeout(r, 150));
  assert.equal(await status("/jwks", rotated), 403, "kid2 is not published yet");
  jwks.keys = [jwk(rsa, "kid1"), jwk(rsaRotated, "kid2")];
  // The minimum interval (100 ms) may hold the next fetch back: wait it out.
  await new Promise((r) => setTimeout(r, 150));
  assert.equal(await status("/jwks", rotated), 101, "kid2 found after one fetch");
  assert.equal(jwks.fetches["/rotating.json"], before + 2, "one fetch per unknown kid, none for known ones");
  assert.equal(await status("/jwks", jwt({ alg: "RS256", kid: "kid1" }, claims(), rs(rsa))), 101);
  assert.equal(jwks.fetches["/rotating.json"], before + 2);
});

test("JWKS: a storm of made-up kids costs no fetch within the minimum interval", async () => {
  const before = jwks.fetches["/storm.json"];
  assert.equal(before, 1, "fetched once at start");
  const storm = [];
  for (let i = 0; i < 40; i++) {
    storm.push(status("/storm", jwt({ alg: "RS256", kid: `made-up-${i}` }, claims(), rs(rsa))));
  }
  assert.deepEqual(new Set(await Promise.all(storm)), new Set([403]));
  assert.equal(jwks.fetches["/storm.json"], before, "no fetch for unknown kids within jwks_min_interval");
  assert.equal(await status("/storm", jwt({ alg: "RS256", kid: "kid1" }, claims(), rs(rsa))), 101, "known keys still work");
});

test("JWT from phoenix.js' authToken (the WebSocket subprotocol)", async () => {
  const token = jwt({ alg: "HS256" }, claims({ sub: "sp" }), hs(256));
  const socket = phxSocket(`${gateway.ws}/subprotocol`, { authToken: token });
  socket.connect();
  const channel = socket.channel("room:me");
  await new Promise((resolve, reject) => channel.join().receive("ok", resolve).receive("error", reject));
  const reply = await new Promise((resolve) => channel.push("whoami", {}).receive("ok", resolve));
  assert.equal(reply.socket_id, "user_socket:sp");
  assert.equal(reply.assigns.sub, "sp");
  // The same token as a param is not read on this socket.
  assert.equal(await status("/subprotocol", token), 403);
});

test("Phoenix.Token signed by real Phoenix: data becomes assigns, socket id templated; max_age enforced", async () => {
  assert.deepEqual(await whoami("/ptoken", vector42.signed), { assigns: { user_id: 42 }, socket_id: "user_socket:42" });
  assert.equal(await status("/ptoken-day", vector42.signed), 403, "signed long ago: expired under a one-day max_age");
  assert.equal(await status("/ptoken", vector42.signed.slice(0, -2) + "xx"), 403, "tampered");
  assert.equal(await status("/ptoken"), 403, "missing");
});
