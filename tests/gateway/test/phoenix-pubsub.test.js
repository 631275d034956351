// docs/cluster.md, "Beside a Phoenix cluster", configured from the gateway's [cluster]
// (phoenix_pubsub, phoenix_node, compression_level), checked with real Erlang as
// conformance-tests/interop does: a broadcast made through the gateway's server API is
// published on phx:Elixir.MyApp.PubSub.Adapter of a private redis-server as the term a
// Phoenix node publishes (read back by `erl`'s binary_to_term, compressed at the
// configured level), and a message made by Erlang's term_to_binary there reaches a
// phoenix.js client of the gateway. Needs `erl` (Debian's erlang-base), `redis-server`
// and `redis-cli`; fails saying so when one is missing.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { erl, need, subscriber } from "../../../conformance-tests/lib/phoenix-pubsub.js";
import { disconnectAll, phxSocket, privateRedis, startGateway, waitFor, API_KEY } from "../lib/harness.js";

const CHANNEL = "phx:Elixir.MyApp.PubSub.Adapter";
const NODE = "phx_rs_gw@127.0.0.1";

const cleanups = [];
after(async () => {
  disconnectAll();
  for (const c of cleanups.reverse()) await c();
});

test("a server API broadcast reaches Phoenix's Redis channel as Phoenix's term; Phoenix's broadcasts reach phoenix.js", async () => {
  need("erl", ["-version"], "erlang-base");
  need("redis-cli", ["--version"], "redis-tools");
  const redis = await privateRedis();
  const gateway = await startGateway(`
[server.api]
key = "${API_KEY}"

[cluster]
redis_url = "${redis.url}"
phoenix_pubsub = "MyApp.PubSub"
phoenix_node = "${NODE}"
compression_level = 9

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
handle = "refuse"
`);
  cleanups.push(() => gateway.stop());
  const sub = await subscriber(redis.port);
  cleanups.push(() => sub.close());
  const numsub = () =>
    Number(spawnSync("redis-cli", ["-p", String(redis.port), "PUBSUB", "NUMSUB", CHANNEL], { encoding: "utf8" }).stdout.trim().split("\n")[1] ?? 0);
  await waitFor(() => numsub() === 2, "the gateway subscribed to the Phoenix channel");

  const socket = phxSocket(`${gateway.ws}/socket`);
  socket.connect();
  const channel = socket.channel("room:mixed", {});
  const got = [];
  channel.on("from_phoenix", (m) => got.push(m));
  await new Promise((resolve, reject) => channel.join().receive("ok", resolve).receive("error", reject));

  const payload = { body: "hé", n: 1, f: 1.5, none: null, list: [1, "a", true], text: "x".repeat(300) };
  const res = await fetch(`${gateway.http}/api/broadcast`, {
    method: "POST",
    headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
    body: JSON.stringify({ topic: "room:mixed", event: "from_api", payload }),
  });
  assert.equal(res.status, 200);
  await waitFor(() => sub.messages.length >= 1, "the broadcast on the Phoenix channel");
  const [published] = sub.messages;
  assert.equal(published[1], 80, "compressed (compression_level = 9; 80 is term_to_binary's compressed tag)");

  const lines = erl(`
    B = fun(T, E, P) -> #{'__struct__' => 'Elixir.Phoenix.Socket.Broadcast', topic => T, event => E, payload => P} end,
    T = <<"room:mixed">>,
    Fast = 'Elixir.Phoenix.Channel.Server',
    Expected = {3, except, '${NODE}', T, B(T, <<"from_api">>, #{<<"body">> => <<"h", 233/utf8>>, <<"n">> => 1,
      <<"f">> => 1.5, <<"none">> => nil, <<"list">> => [1, <<"a">>, true], <<"text">> => binary:copy(<<"x">>, 300)}), Fast},
    Got = binary_to_term(binary:decode_hex(<<"${published.toString("hex")}">>)),
    case Got =:= Expected of
      true -> io:format("same~n");
      false -> io:format("different ~p~n", [Got])
    end,
    Phx = 'phx_app@10.0.0.7',
    io:format("~s~n", [binary:encode_hex(term_to_binary({3, except, Phx, T, B(T, <<"from_phoenix">>, #{body => <<"hi">>, n => 42}), Fast}))]),
  `);
  assert.equal(lines[0], "same", lines.join("\n"));

  const pub = spawnSync("redis-cli", ["-p", String(redis.port), "-x", "PUBLISH", CHANNEL], { input: Buffer.from(lines[1], "hex") });
  assert.equal(pub.status, 0, String(pub.stderr));
  await waitFor(() => got.length === 1, "the Phoenix node's broadcast in phoenix.js");
  assert.deepEqual(got, [{ body: "hi", n: 42 }]);
});
