// Beside a Phoenix cluster, with real Erlang: two conformance-server nodes in Phoenix
// mode (--phoenix-pubsub MyApp.PubSub) on a private redis-server, and
//  (a) messages built by Erlang's own term_to_binary (erl -noshell), PUBLISHed with
//      redis-cli on phx:Elixir.MyApp.PubSub.Adapter exactly as phoenix_pubsub_redis does,
//      checked as phoenix.js receives them;
//  (b) what the phx-rs nodes publish there, read back by Erlang's binary_to_term and
//      compared (=:=) with the term a Phoenix node would have published.
// Needs `erl` (Debian's erlang-base) and `redis-server`/`redis-cli`; fails saying so when
// one is missing.
import { test, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { inflateSync } from "node:zlib";
import { launch, killChild, serverBroadcast } from "../lib/server.js";
import { Redis } from "../lib/cluster.js";
import { erl, need, subscriber } from "../lib/phoenix-pubsub.js";
import { phxSocket, disconnectAll, joined, pushed, waitFor, PATIENCE_MS } from "../lib/phx.js";

const PUBSUB = "MyApp.PubSub";
const CHANNEL = "phx:Elixir.MyApp.PubSub.Adapter";
const NODE1 = "phx_rs_1@127.0.0.1";
const NODE2 = "phx_rs_2@127.0.0.1";

/** PUBLISH `bytes` (binary-safe: redis-cli -x reads the last argument from stdin). */
function publish(redis, bytes) {
  const run = spawnSync("redis-cli", ["-p", String(redis.port), "-x", "PUBLISH", CHANNEL], { input: bytes, encoding: "utf8" });
  if (run.status !== 0) throw new Error(`redis-cli PUBLISH failed: ${run.stderr}`);
  return Number(run.stdout.trim());
}

function numsub(redis) {
  const run = spawnSync("redis-cli", ["-p", String(redis.port), "PUBSUB", "NUMSUB", CHANNEL], { encoding: "utf8" });
  return Number(run.stdout.trim().split("\n")[1] ?? 0);
}

/** A message's term bytes after the version byte, inflated when compressed. */
function body(message) {
  const bytes = message[1] === 80 ? inflateSync(message.subarray(6)) : message.subarray(1);
  return bytes.toString("latin1");
}

/** A phoenix.js client on `node` joined to `topic`, recording every event. */
async function client(node, topic, params = {}) {
  const socket = phxSocket(node.ws, { params });
  const closes = [];
  socket.onClose((event) => closes.push(event.code));
  socket.connect();
  const channel = socket.channel(topic, {});
  const events = [];
  const onMessage = channel.onMessage;
  channel.onMessage = (event, payload, ref) => {
    events.push({ event, payload });
    return onMessage.call(channel, event, payload, ref);
  };
  await joined(channel);
  return { socket, channel, events, closes, got: (event) => events.filter((e) => e.event === event).map((e) => e.payload) };
}

let redis;
let nodes;
let sub;
before(async () => {
  need("erl", ["-version"], "erlang-base");
  need("redis-cli", ["--version"], "redis-tools");
  redis = await Redis.start();
  nodes = [];
  for (const [name, level] of [[NODE1, "0"], [NODE2, "6"]]) {
    nodes.push(
      await launch([
        "--redis-url", redis.url,
        "--node-name", name,
        "--phoenix-pubsub", PUBSUB,
        "--phoenix-node", name,
        "--phoenix-compression-level", level,
        "--metrics",
      ]),
    );
  }
  sub = await subscriber(redis.port);
  // Both nodes listen on the Phoenix channel (and our subscriber).
  await waitFor(() => numsub(redis) === 3, PATIENCE_MS, "both nodes subscribed to the Phoenix channel");
});
after(async () => {
  sub?.close();
  for (const node of nodes ?? []) await killChild(node.child);
  await redis?.kill();
});
afterEach(() => disconnectAll());

// Erlang: Broadcast struct, calendar values, and term_to_binary with given options.
const ERL_HELPERS = `
  B = fun(T, E, P) -> #{'__struct__' => 'Elixir.Phoenix.Socket.Broadcast', topic => T, event => E, payload => P} end,
  Msg = fun(Mode, Node, T, Message, Dispatcher, Opts) -> term_to_binary({3, Mode, Node, T, Message, Dispatcher}, Opts) end,
  Out = fun(Name, Bin) -> io:format("~s ~s~n", [Name, binary:encode_hex(Bin)]) end,
  Dt = #{'__struct__' => 'Elixir.DateTime', calendar => 'Elixir.Calendar.ISO', year => 2026, month => 12, day => 5,
         hour => 10, minute => 0, second => 7, microsecond => {123000, 3}, time_zone => <<"Etc/UTC">>,
         zone_abbr => <<"UTC">>, utc_offset => 0, std_offset => 0},
  Fast = 'Elixir.Phoenix.Channel.Server',
  Phx = 'phx_app@10.0.0.7',
`;

test("broadcasts from a Phoenix node reach phoenix.js on every phx-rs node, once, as Phoenix would write them", async () => {
  const topic = "room:from-phoenix";
  const a = await client(nodes[0], topic);
  const b = await client(nodes[1], topic);
  const kicked = await client(nodes[0], "room:kick", { user_id: "77" });
  const lines = erl(`${ERL_HELPERS}
    T = <<"${topic}">>,
    Out("greet", Msg(except, Phx, T, B(T, <<"greet">>, #{body => <<"h", 233/utf8, "llo">>, n => 42, ratio => 0.5, none => nil, at => Dt, tags => [ok, 1]}), Fast, [{minor_version, 1}])),
    Out("compressed", Msg(except, Phx, T, B(T, <<"compressed">>, #{<<"text">> => binary:copy(<<"abc">>, 200), 1 => <<"one">>}), Fast, [{compressed, 6}, {minor_version, 2}])),
    Out("binary", Msg(except, Phx, T, B(T, <<"file">>, {binary, <<0, 1, 2, 255>>}), Fast, [])),
    Out("intercepted", Msg(except, Phx, T, B(T, <<"new_msg">>, #{body => <<"via handle_out">>}), Fast, [])),
    Out("direct", Msg(only, <<"${NODE2}">>, T, B(T, <<"direct">>, #{to => 2}), Fast, [])),
    Out("tracker", Msg(except, Phx, <<"phx_presence:x">>, {some_tracker_message, 1}, 'Elixir.Phoenix.PubSub', [])),
    Out("tuple_payload", Msg(except, Phx, T, B(T, <<"bad">>, #{t => {1, 2}}), Fast, [])),
    Out("disconnect", Msg(except, Phx, <<"user_sockets:77">>, B(<<"user_sockets:77">>, <<"disconnect">>, #{}), Fast, [])),
    Out("marker", Msg(except, Phx, T, B(T, <<"marker">>, #{}), Fast, [])),
  `);
  const messages = Object.fromEntries(lines.map((l) => l.split(" ")).map(([name, hex]) => [name, Buffer.from(hex, "hex")]));
  assert.equal(messages.compressed[1], 80, "Erlang compressed that one");
  for (const name of ["greet", "compressed", "binary", "intercepted", "direct", "tracker", "tuple_payload", "disconnect", "marker"]) {
    assert.equal(publish(redis, messages[name]), 3, `${name}: both nodes and the test's subscriber listen`);
  }
  for (const c of [a, b]) await waitFor(() => c.got("marker").length > 0, PATIENCE_MS, "the marker broadcast");
  const greet = { body: "héllo", n: 42, ratio: 0.5, none: null, at: "2026-12-05T10:00:07.123Z", tags: ["ok", 1] };
  for (const [c, name] of [[a, "node 1"], [b, "node 2"]]) {
    // Everything published before the marker has been handled: counts are final.
    assert.deepEqual(c.got("greet"), [greet], `${name}: greet once, as Jason writes it`);
    assert.deepEqual(c.got("compressed"), [{ text: "abc".repeat(200), 1: "one" }], name);
    const [file] = c.got("file");
    assert.ok(file instanceof ArrayBuffer, `${name}: {:binary, data} is a binary frame`);
    assert.deepEqual([...new Uint8Array(file)], [0, 1, 2, 255], name);
    assert.equal(c.got("file").length, 1, name);
    // room:* intercepts new_msg: its handle_out adds the transport, as for any broadcast.
    assert.deepEqual(c.got("new_msg"), [{ body: "via handle_out", transport: ":websocket" }], name);
    assert.deepEqual(c.got("bad"), [], `${name}: a payload Jason cannot encode is dropped`);
  }
  assert.deepEqual(a.got("direct"), [], ":only for node 2 is not delivered on node 1");
  assert.deepEqual(b.got("direct"), [{ to: 2 }], ":only for node 2 is delivered there");
  await waitFor(() => kicked.closes.includes(1001), PATIENCE_MS, "the socket with id user_sockets:77 closed with 1001");
  assert.deepEqual(a.closes, [], "other sockets stay open");
  // What was not delivered is counted, by kind.
  const metrics = await (await fetch(`${nodes[0].http}/metrics`)).text();
  const count = (kind) => Number(new RegExp(`phx_phoenix_pubsub_ignored_total\\{kind="${kind}"\\} (\\d+)`).exec(metrics)?.[1] ?? 0);
  assert.equal(count("not_encodable"), 1, metrics);
  assert.equal(count("not_a_broadcast"), 1, metrics);
  assert.equal(count("other_node"), 1, metrics);
});

test("broadcasts that start on phx-rs are published as Phoenix's term, and phx-rs nodes get them once", async () => {
  const topic = "room:to-phoenix";
  const a = await client(nodes[0], topic);
  const b = await client(nodes[1], topic);
  const before = sub.messages.length;
  const payload = { body: "hé", n: 1, f: 1.5, none: null, list: [1, "a", true], nested: { b: false } };
  assert.equal((await pushed(a.channel, "new_msg", payload)).status, "ok");
  await serverBroadcast({ http: nodes[1].http }, topic, "from_api", { big: 12345678901234, text: "x".repeat(300) });
  await serverBroadcast({ http: nodes[0].http }, topic, "marker", {});
  for (const c of [a, b]) await waitFor(() => c.got("marker").length > 0, PATIENCE_MS, "the marker broadcast");
  // Each phx-rs client got each broadcast once: its own node's echo and the other
  // node's Phoenix copy were skipped (both were handled before the marker).
  for (const [c, name] of [[a, "node 1"], [b, "node 2"]]) {
    assert.deepEqual(c.got("new_msg"), [{ ...payload, transport: ":websocket" }], name);
    assert.equal(c.got("from_api").length, 1, name);
  }
  // The Phoenix copies, found by their event (node 2's are compressed: inflate them).
  const events = ["new_msg", "from_api", "marker"];
  const mine = () => sub.messages.slice(before).filter((m) => events.some((e) => body(m).includes(`\x00\x00\x00${String.fromCharCode(e.length)}${e}`)));
  await waitFor(() => mine().length === 3, PATIENCE_MS, "the three broadcasts on the Phoenix channel");
  const published = mine();
  // Node 2 compresses (level 6) its broadcast, which holds a 300-byte string; node 1 does not.
  assert.deepEqual(published.map((m) => m[1]).sort(), [104, 104, 80].sort(), "only node 2's message is compressed");
  const lines = erl(`
    B = fun(T, E, P) -> #{'__struct__' => 'Elixir.Phoenix.Socket.Broadcast', topic => T, event => E, payload => P} end,
    T = <<"${topic}">>,
    Fast = 'Elixir.Phoenix.Channel.Server',
    Expected = [
      {"new_msg", {3, except, '${NODE1}', T, B(T, <<"new_msg">>, #{<<"body">> => <<"h", 233/utf8>>, <<"n">> => 1,
        <<"f">> => 1.5, <<"none">> => nil, <<"list">> => [1, <<"a">>, true], <<"nested">> => #{<<"b">> => false}}), Fast}},
      {"from_api", {3, except, '${NODE2}', T, B(T, <<"from_api">>, #{<<"big">> => 12345678901234,
        <<"text">> => binary:copy(<<"x">>, 300)}), Fast}},
      {"marker", {3, except, '${NODE1}', T, B(T, <<"marker">>, #{}), Fast}}
    ],
    Check = fun(Bin) ->
      Term = binary_to_term(Bin),
      case [Name || {Name, E} <- Expected, E =:= Term] of
        [Name] -> io:format("~s ok~n", [Name]);
        [] -> io:format("unexpected ~p~n", [Term])
      end
    end,
    lists:foreach(Check, [${published.map((m) => `binary:decode_hex(<<"${m.toString("hex")}">>)`).join(", ")}]),
  `);
  assert.deepEqual(lines.sort(), ["from_api ok", "marker ok", "new_msg ok"], lines.join("\n"));
});
