// The conformance contract of docs/conformance.md, written as phx-gateway hooks
// (docs/gateway.md, "The hook protocol"). Node's standard library only: node:http for
// the hooks and the test routes, node:crypto for the signature.
//
//   PORT=5000 GATEWAY_URL=http://127.0.0.1:4000 PHX_GATEWAY_SECRET=… PHX_GATEWAY_API_KEY=… node server.js
//
// Hooks (POST, signed by the gateway): /phx/connect, /phx/join, /phx/event, /phx/notify.
// Test routes (docs/conformance.md, "Control routes"): POST /test/disconnect and
// POST /test/broadcast, carried out through the gateway's server API.
// GET /healthz for the gateway's /readyz.
import http from "node:http";
import { createHmac, timingSafeEqual } from "node:crypto";

const secret = process.env.PHX_GATEWAY_SECRET;
const apiKey = process.env.PHX_GATEWAY_API_KEY;
const gatewayUrl = process.env.GATEWAY_URL;
if (!secret || !apiKey || !gatewayUrl) {
  console.error("set PHX_GATEWAY_SECRET, PHX_GATEWAY_API_KEY and GATEWAY_URL");
  process.exit(2);
}

/** docs/gateway.md, "Checking the signature". */
export function verify(key, header, body, tolerance = 300) {
  const parts = Object.fromEntries((header ?? "").split(",").map((p) => p.split("=", 2)));
  const t = Number(parts.t);
  if (!Number.isInteger(t) || !parts.v1 || Math.abs(Date.now() / 1000 - t) > tolerance) return false;
  const expected = createHmac("sha256", key).update(`${t}.`).update(body).digest();
  const given = Buffer.from(parts.v1, "hex");
  return given.length === expected.length && timingSafeEqual(given, expected);
}

// ---- the hooks ----------------------------------------------------------------------

/** The connect hook of every mount (docs/conformance.md, "The connect hook"). */
function connect({ params, auth_token: authToken, transport }) {
  if (params.reject === "true") return { status: "error", http_status: 403 };
  if (params.ratelimit === "true") return { status: "error", http_status: transport === "longpoll" ? 403 : 429 };
  const userId = typeof params.user_id === "string" ? params.user_id : null;
  const answer = { status: "ok", assigns: { user_id: userId, auth_token: authToken ?? null } };
  if (userId !== null) answer.socket_id = `user_sockets:${userId}`;
  return answer;
}

const crash = { actions: [{ type: "stop", reason: "crash" }] };
const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

function join({ topic, payload, assigns }) {
  if (topic.startsWith("room:")) {
    return {
      status: "ok",
      response: {},
      // After the join reply (Phoenix's send(self(), :after_join)).
      actions: [
        { type: "broadcast", event: "user_entered", payload: { user: payload?.user ?? null } },
        {
          type: "push",
          event: "joined",
          payload: { status: "connected", user_id: assigns.user_id ?? null, auth_token: assigns.auth_token ?? null },
        },
      ],
      // terminate/2 on a leave or a stop: after phx_close.
      on_terminate: [{ type: "push", event: "you_left", payload: { message: "bye!" } }],
    };
  }
  if (topic.startsWith("custom:")) {
    if (payload?.action === "ok") return { status: "ok", response: { action: "ok" } };
    if (payload?.action === "ignore") return { status: "error", response: { action: "ignore" } };
    return { status: "error", response: { reason: "join crashed" } };
  }
  if (topic.startsWith("presence:")) {
    if (payload?.user === undefined || payload?.user === null) {
      return { status: "error", response: { reason: "user required" } };
    }
    const key = typeof payload.user === "string" ? payload.user : JSON.stringify(payload.user);
    return { status: "ok", response: {}, presence: { key, meta: isObject(payload.meta) ? payload.meta : {} } };
  }
  return { status: "error", response: { reason: "unmatched topic" } };
}

const ok = (response = {}) => ({ status: "ok", response });

function event({ topic, event, payload, payload_base64: binary }) {
  if (topic.startsWith("room:")) return roomEvent(event, payload, binary);
  if (topic.startsWith("custom:")) {
    return event === "close" ? { actions: [{ type: "stop", reason: "normal" }] } : crash;
  }
  if (topic.startsWith("presence:")) {
    switch (event) {
      case "update":
        return { reply: ok(), actions: [{ type: "update", meta: isObject(payload) ? payload : {} }] };
      case "untrack":
        return { reply: ok(), actions: [{ type: "untrack" }] };
      default:
        return crash;
    }
  }
  return crash;
}

function roomEvent(event, payload, binary) {
  switch (event) {
    case "new_msg":
      return { reply: ok(), actions: [{ type: "broadcast", event: "new_msg", payload }] };
    case "echo":
      return { reply: ok(payload) };
    case "error_reply":
      return { reply: { status: "error", response: payload } };
    case "noreply":
      return {};
    case "broadcast_from":
      return { reply: ok(), actions: [{ type: "broadcast_from", event: "broadcast_from", payload }] };
    case "push": {
      const e = typeof payload?.event === "string" ? payload.event : "push";
      return { reply: ok(), actions: [{ type: "push", event: e, payload: payload?.payload ?? {} }] };
    }
    case "stop":
      return { actions: [{ type: "stop", reason: "normal" }] };
    case "binary_event": {
      if (binary === undefined) return crash;
      const reply = Buffer.concat([Buffer.from(binary, "base64"), Buffer.from([3, 4])]);
      return {
        reply: { status: "ok", response_base64: reply.toString("base64") },
        actions: [{ type: "push", event: "binary_event", payload_base64: Buffer.from([0, 1]).toString("base64") }],
      };
    }
    case "bin":
      return { actions: [{ type: "broadcast", event: "bin_ack", payload: {} }] };
    default:
      // "boom" and any event without a handler: the channel crashes (phx_error).
      return crash;
  }
}

const notifications = [];

function notify({ notifications: batch }) {
  for (const n of batch) notifications.push(n);
  if (notifications.length > 1000) notifications.splice(0, notifications.length - 1000);
  return {};
}

// ---- the test routes, through the gateway's server API --------------------------------

async function api(path, body) {
  const res = await fetch(`${gatewayUrl}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return res.status;
}

async function control(req, url, body) {
  const q = url.searchParams;
  if (url.pathname === "/test/disconnect") {
    const id = q.get("id");
    if (!id) return [400, "id missing"];
    return [(await api("/api/disconnect", { socket_id: id })) === 200 ? 204 : 502, ""];
  }
  if (url.pathname === "/test/broadcast") {
    const topic = q.get("topic");
    const event = q.get("event");
    if (!topic || !event) return [400, "topic and event required"];
    let payload;
    try {
      payload = JSON.parse(body.toString("utf8"));
    } catch {
      return [400, "body must be JSON"];
    }
    if (!isObject(payload)) return [400, "payload must be a JSON object"];
    return [(await api("/api/broadcast", { topic, event, payload })) === 200 ? 204 : 502, ""];
  }
  return [404, ""];
}

// ---- the server -------------------------------------------------------------------------

const hooks = { "/phx/connect": connect, "/phx/join": join, "/phx/event": event, "/phx/notify": notify };

const server = http.createServer(async (req, res) => {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const body = Buffer.concat(chunks);
  const url = new URL(req.url, "http://backend");
  const send = (status, data, type = "application/json") => {
    res.writeHead(status, { "content-type": type });
    res.end(typeof data === "string" ? data : JSON.stringify(data));
  };
  if (req.method === "GET" && url.pathname === "/healthz") return send(200, { status: "ok" });
  if (req.method === "GET" && url.pathname === "/notifications") return send(200, notifications);
  if (req.method === "POST" && url.pathname.startsWith("/test/")) {
    const [status, text] = await control(req, url, body);
    return send(status, text, "text/plain");
  }
  const hook = req.method === "POST" && hooks[url.pathname];
  if (!hook) return send(404, { error: "not found" });
  if (!verify(secret, req.headers["x-phx-gateway-signature"], body)) {
    console.error(`refused ${url.pathname} ${req.headers["x-request-id"]}: bad signature`);
    return send(401, { error: "bad signature" });
  }
  let request;
  try {
    request = JSON.parse(body.toString("utf8"));
  } catch {
    return send(400, { error: "body must be JSON" });
  }
  send(200, hook(request));
});
server.keepAliveTimeout = 120_000;

server.listen(Number(process.env.PORT ?? 0), "127.0.0.1", () => {
  console.log(`backend listening on http://127.0.0.1:${server.address().port}`);
});

for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => server.close(() => process.exit(0)));
