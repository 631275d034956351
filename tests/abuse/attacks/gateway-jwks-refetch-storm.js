// Connections carrying JWTs with made-up key ids (`kid`), each of which would make a
// naive gateway fetch the JWKS again: the gateway fetches at most once per
// jwks_min_interval however many arrive, refuses them all (403), and a user with a
// valid token still connects.
import http from "node:http";
import { createSign, generateKeyPairSync } from "node:crypto";

const ATTEMPTS = 600;
const ADDRESSES = 60;

let keys = null;
let fetches = 0;

const b64url = (v) => Buffer.from(typeof v === "string" ? v : JSON.stringify(v)).toString("base64url");
function token(kid) {
  const input = `${b64url({ alg: "RS256", typ: "JWT", kid })}.${b64url({ sub: "u", exp: Math.floor(Date.now() / 1000) + 600 })}`;
  const signature = createSign("RSA-SHA256").update(input).sign(keys.privateKey).toString("base64url");
  return `${input}.${signature}`;
}

function attempt(ctx, i) {
  const { hostname, port } = new URL(ctx.url);
  return new Promise((resolve) => {
    const req = http.request({
      host: hostname,
      port,
      path: `${ctx.socketPath}/websocket?vsn=2.0.0&token=${token(`made-up-${i}`)}`,
      localAddress: ctx.addr(i % ADDRESSES),
      agent: false,
      headers: { connection: "Upgrade", upgrade: "websocket", "sec-websocket-version": "13", "sec-websocket-key": b64url("0123456789abcdef") },
    });
    req.on("response", (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on("upgrade", (_res, socket) => {
      socket.destroy();
      resolve(101);
    });
    req.on("error", () => resolve("error"));
    req.end();
  });
}

export default {
  name: "gateway-jwks-refetch-storm",
  sends: `${ATTEMPTS} WebSocket connects from ${ADDRESSES} addresses, each with a JWT naming a different unknown kid (jwks_min_interval 30 s)`,
  target: "gateway",
  gateway: {
    async setup() {
      keys = generateKeyPairSync("rsa", { modulusLength: 2048 });
      fetches = 0;
      const jwk = { ...keys.publicKey.export({ format: "jwk" }), kid: "kid1", alg: "RS256", use: "sig" };
      const server = http.createServer((_req, res) => {
        fetches++;
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ keys: [jwk] }));
      });
      await new Promise((r) => server.listen(0, "127.0.0.1", r));
      return {
        vars: { jwks: `http://127.0.0.1:${server.address().port}/jwks.json` },
        stop: () => new Promise((r) => server.close(r)),
      };
    },
    config: ({ jwks }) => `
[[socket]]
path = "/socket"
check_origin = false
[socket.auth]
method = "jwt"
algorithms = ["RS256"]
jwks_url = "${jwks}"
jwks_min_interval = "30s"
[[socket.channel]]
topic = "room:*"
join = "all"
[[socket.channel.event]]
name = "*"
handle = "refuse"
`,
  },
  bounds: { rssGrowthMiB: 64, threads: 40, legitMs: 15000 },
  async attack(ctx) {
    const before = fetches;
    const statuses = {};
    for (let i = 0; i < ATTEMPTS; i += 50) {
      const batch = await Promise.all(Array.from({ length: 50 }, (_, j) => attempt(ctx, i + j)));
      for (const s of batch) statuses[s] = (statuses[s] ?? 0) + 1;
    }
    ctx.log(`upgrade answers: ${JSON.stringify(statuses)}; JWKS fetches during the attack: ${fetches - before} (at start: ${before})`);
    if (statuses[101]) throw new Error("a token with an unknown kid was accepted");
    if (fetches - before > 1) throw new Error(`${fetches - before} JWKS fetches within one minimum interval`);
  },
  async legit(ctx) {
    const socket = ctx.socket({ token: token("kid1") }, { localAddress: ctx.addr(ADDRESSES + 1) });
    const { ok } = await ctx.join(socket, "room:legit");
    if (!ok) throw new Error("the legitimate user was refused");
  },
};
