// 10 000 random and mutated frames against a live server: it stays up, keeps answering
// heartbeats, and a well-behaved socket connected throughout is unaffected.
import { before, after } from "node:test";
import assert from "node:assert/strict";
import { rawTest as test, serverOptions } from "../lib/phx.js";
import { startServer } from "../lib/server.js";
import { Raw, nextRef, ok } from "../lib/raw.js";

let server;
before(async () => (server = await startServer(serverOptions)));
after(async () => server.stop());

/** mulberry32: a small seeded PRNG so a failure can be replayed with FUZZ_SEED. */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const VALID_TEXT = [
  '["1","1","room:fz","phx_join",{}]',
  '["1","2","room:fz","echo",{"a":[1,2,{"b":null}]}]',
  '["1","3","room:fz","new_msg",{"body":"x"}]',
  '[null,"4","phoenix","heartbeat",{}]',
  '["1","5","room:fz","phx_leave",{}]',
  '["1","6","custom:fz","phx_join",{"action":"ok"}]',
  '["1","7","room:fz","push",{"event":"e","payload":{}}]',
  '["1","8","presence:fz","phx_join",{"user":"u","meta":{}}]',
];
const EVENTS = ["phx_join", "phx_leave", "echo", "new_msg", "boom", "stop", "heartbeat", "binary_event", "bin", "x"];
const TOPICS = ["room:fz", "phoenix", "custom:fz", "presence:fz", "", "room:" + "z".repeat(300)];

function randomJson(rand, depth = 0) {
  const pick = Math.floor(rand() * (depth > 2 ? 4 : 7));
  switch (pick) {
    case 0: return null;
    case 1: return rand() < 0.5;
    case 2: return Math.floor(rand() * 1e6) - 5e5;
    case 3: return String.fromCharCode(...Array.from({ length: Math.floor(rand() * 8) }, () => 32 + Math.floor(rand() * 90)));
    case 4: return Array.from({ length: Math.floor(rand() * 6) }, () => randomJson(rand, depth + 1));
    default: {
      const o = {};
      for (let i = 0; i < rand() * 4; i++) o["k" + i] = randomJson(rand, depth + 1);
      return o;
    }
  }
}

/** A valid V2 binary client push (§2.4), to be sent as is or mutated. */
function binaryPush(joinRef, ref, topic, event, payload) {
  const strings = [joinRef, ref, topic, event].map((x) => Buffer.from(x, "utf8"));
  return Buffer.concat([Buffer.from([0, ...strings.map((x) => x.length)]), ...strings, payload]);
}

function randomFrame(rand) {
  const r = rand();
  const pick = (list) => list[Math.floor(rand() * list.length)];
  if (r < 0.18) {
    // valid-looking V2 message with random fields
    return { text: JSON.stringify([pick(["1", null, "2", 3]), String(Math.floor(rand() * 100)), pick(TOPICS), pick(EVENTS), randomJson(rand)]) };
  }
  if (r < 0.24) {
    // valid-looking V1 object (sent to V2 sockets too, where it is malformed)
    return { text: JSON.stringify({ topic: pick(TOPICS), event: pick(EVENTS), payload: randomJson(rand), ref: pick(["1", null, 7]) }) };
  }
  if (r < 0.3) {
    // huge field lengths and deep nesting
    const big = "x".repeat(1000 + Math.floor(rand() * 200000));
    const depth = 10 + Math.floor(rand() * 5000);
    const shapes = [
      () => JSON.stringify(["1", "1", big, "phx_join", {}]),
      () => JSON.stringify(["1", big, "room:fz", "echo", {}]),
      () => JSON.stringify([big, "1", "room:fz", big, { big }]),
      () => `["1","1","room:fz","echo",${"[".repeat(depth)}${"]".repeat(depth)}]`,
      () => `["1","1","room:fz","echo",${'{"a":'.repeat(depth)}1${"}".repeat(depth)}]`,
      () => "[".repeat(depth),
    ];
    return { text: pick(shapes)() };
  }
  if (r < 0.38) return { text: JSON.stringify(randomJson(rand)) }; // random JSON shapes
  if (r < 0.5) {
    // mutated valid text: bit flips and truncation
    const bytes = Buffer.from(pick(VALID_TEXT));
    for (let i = 0; i < 1 + rand() * 3; i++) bytes[Math.floor(rand() * bytes.length)] ^= 1 << Math.floor(rand() * 8);
    return { raw: bytes.subarray(0, Math.floor(rand() * (bytes.length + 1))) };
  }
  if (r < 0.6) {
    // truncated valid text
    const t = pick(VALID_TEXT);
    return { text: t.slice(0, Math.floor(rand() * t.length)) };
  }
  if (r < 0.75) {
    // valid binary pushes, sometimes bit-flipped or truncated, sometimes with a wrong kind
    const payload = Buffer.from(Array.from({ length: Math.floor(rand() * 32) }, () => Math.floor(rand() * 256)));
    const bytes = binaryPush(pick(["1", "", "2"]), String(Math.floor(rand() * 100)), pick(["room:fz", "custom:fz", "phoenix", ""]), pick(EVENTS), payload);
    const m = rand();
    if (m < 0.25) bytes[Math.floor(rand() * bytes.length)] ^= 1 << Math.floor(rand() * 8);
    else if (m < 0.5) return { binary: bytes.subarray(0, Math.floor(rand() * bytes.length)) };
    else if (m < 0.6) bytes[0] = 1 + Math.floor(rand() * 255);
    return { binary: bytes };
  }
  // binary: random kinds, header sizes that lie, random payloads
  const len = Math.floor(rand() * 64);
  const bytes = Buffer.alloc(len);
  for (let i = 0; i < len; i++) bytes[i] = Math.floor(rand() * 256);
  if (len > 0 && rand() < 0.6) bytes[0] = rand() < 0.8 ? 0 : Math.floor(rand() * 4);
  if (len > 4 && rand() < 0.3) bytes[1] = 255; // a size far beyond the frame
  return { binary: bytes };
}

test("§2.6/§3.7 robustness: 10 000 random and mutated frames leave the server up and answering", async () => {
  const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31);
  console.log(`robustness seed: ${seed} (replay with FUZZ_SEED=${seed})`);

  const witness = await Raw.open(server.ws);
  const j = await witness.join("room:witness", {});

  // Four workers, each with its own PRNG (seed + worker) and a fixed quota, so a seed
  // replays the same frames on the same connections. After each burst of 1-4 frames the
  // worker sends a heartbeat and waits for its reply or for the close: every frame is
  // processed by the server (none is lost in a socket that was already closing), and a
  // server that neither answers nor closes fails the test.
  const TOTAL = 10000;
  const WORKERS = 4;
  let sent = 0;
  let connections = 0;
  let closes = 0;
  const workers = Array.from({ length: WORKERS }, async (_, w) => {
    const rand = prng(seed + w);
    let raw = null;
    for (let mine = 0; mine < TOTAL / WORKERS; ) {
      if (!raw || raw.closeInfo) {
        if (raw) closes += 1;
        raw = await Raw.open(server.ws, { vsn: rand() < 0.2 ? "1.0.0" : "2.0.0" });
        connections += 1;
      }
      const burst = rand() < 0.7 ? 1 : 2 + Math.floor(rand() * 3);
      for (let i = 0; i < burst && mine < TOTAL / WORKERS; i++, mine++, sent++) {
        const frame = randomFrame(rand);
        if (frame.text !== undefined) raw.send(frame.text);
        else if (frame.raw) raw.sendRawText(frame.raw);
        else raw.sendBinary(frame.binary);
      }
      try {
        await raw.drain();
      } catch (e) {
        if (!raw.closeInfo) throw new Error(`worker ${w}: the server neither answered nor closed (${e.message})`);
      }
    }
    if (raw) raw.close();
  });
  await Promise.all(workers);
  console.log(`sent ${sent} frames over ${connections} connections (${closes} closed by the server)`);

  const fresh = await Raw.open(server.ws);
  const ref = nextRef();
  fresh.send([null, ref, "phoenix", "heartbeat", {}]);
  assert.deepEqual(await fresh.next((f) => f[1] === ref), [null, ref, "phoenix", "phx_reply", ok()]);
  fresh.close();

  const reply = await witness.push(j, "room:witness", "echo", { alive: true });
  assert.deepEqual(reply, [j, reply[1], "room:witness", "phx_reply", ok({ alive: true })]);
  witness.close();
});
