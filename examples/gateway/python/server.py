"""The chat app's guest protocol (docs/chat.md) as phx-gateway hooks, in Python.

phoenix.js talks to phx-gateway; the gateway asks this backend over signed HTTP
(docs/gateway.md, "The hook protocol"):

  /phx/connect  a socket connects with {"guest_key"}: the guest id, as the chat app
                makes it (the first 32 hex digits of SHA-256 of the key; a random id
                without a valid key)
  /phx/join     room:<name> with {"username", "after_id"?}: the recent messages oldest
                first (or what a rejoin missed), "me", and presence under the username
  /phx/event    new_msg (stored in PostgreSQL, then broadcast), history (older pages),
                typing (to the others, at most one per second per guest and room)
  /healthz      for the gateway's /readyz

Every request's signature is checked before its body is read as JSON. The input rules
are the chat app's (crates/chat-app/src/validate.rs), with the same refusal texts.

Standard library (http.server, hashlib, hmac, json) plus psycopg 3 for PostgreSQL.

  python server.py setup   # create the database (if missing) and the table
  python server.py         # serve on 127.0.0.1:$PORT (0: a free port, printed)

Environment: DATABASE_URL, PHX_GATEWAY_SECRET (the gateway's [backend] secret), PORT.
"""

import hashlib
import hmac
import json
import os
import queue
import secrets
import signal
import sys
import threading
import time
import unicodedata
from datetime import timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
from psycopg import conninfo, sql

# ---- the input rules (crates/chat-app/src/validate.rs) -------------------------------

USERNAME_MAX = 32
ROOM_MAX = 64
BODY_MAX = 4000
HISTORY_MAX = 100
RECENT_ON_JOIN = 50
REPLAY_MAX = 200
CLIENT_ID_MAX = 64
ATTACHMENTS_MAX = 10
MENTIONS_MAX = 20

# Rust's str::trim and char::is_whitespace: the Unicode White_Space characters (Python's
# str.strip() would also strip the separators U+001C–U+001F, which the chat app refuses
# as control characters).
WHITE_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006" \
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"


class Refused(Exception):
    """A refusal: the reply is error {"reason": text}."""


def _alnum(c):
    # Rust's char::is_alphanumeric: letters and numbers (Unicode categories L* and N*).
    return unicodedata.category(c)[0] in "LN"


def _control(c):
    return unicodedata.category(c) == "Cc"


def _integer(value):
    # A JSON integer (not a float, not a boolean).
    return isinstance(value, int) and not isinstance(value, bool)


def username(raw):
    name = raw.strip(WHITE_SPACE)
    if not name:
        raise Refused("username can't be blank")
    if len(name) > USERNAME_MAX:
        raise Refused(f"username must be at most {USERNAME_MAX} characters")
    if not all(_alnum(c) or c in " _-." for c in name):
        raise Refused("username may only contain letters, digits, spaces, '_', '-' and '.'")
    return name


def room(raw):
    name = raw.strip(WHITE_SPACE)
    if not name:
        raise Refused("room name can't be blank")
    if len(name) > ROOM_MAX:
        raise Refused(f"room name must be at most {ROOM_MAX} characters")
    if not all(_alnum(c) or c in "_-." for c in name):
        raise Refused("room name may only contain letters, digits, '_', '-' and '.'")
    return name


def body(raw):
    text = raw.strip(WHITE_SPACE)
    if not text:
        raise Refused("message can't be blank")
    if len(text) > BODY_MAX:
        raise Refused(f"message must be at most {BODY_MAX} characters")
    if any(_control(c) and c not in "\n\r\t" for c in text):
        raise Refused("message may not contain control characters (line breaks and tabs are fine)")
    return text


def client_id(raw):
    if raw is None:
        return None
    if (isinstance(raw, str) and 1 <= len(raw) <= CLIENT_ID_MAX
            and all(c.isascii() and (c.isalnum() or c in "_-") for c in raw)):
        return raw
    raise Refused(f"client_id must be 1 to {CLIENT_ID_MAX} characters of letters, digits, '_' and '-'")


def optional_id(raw, field):
    if raw is None:
        return None
    if _integer(raw) and -2**63 <= raw < 2**63:
        return raw
    raise Refused(f"{field} must be an integer")


def history_limit(raw):
    if raw is None:
        return RECENT_ON_JOIN
    if _integer(raw) and 1 <= raw <= HISTORY_MAX:
        return raw
    raise Refused(f"limit must be an integer from 1 to {HISTORY_MAX}")


def before_id(raw):
    if raw is None:
        return 2**63 - 1
    if _integer(raw) and -2**63 <= raw < 2**63:
        return raw
    raise Refused("before_id must be an integer")


def mentions(text):
    """The @names of a body, as written, deduplicated, at most MENTIONS_MAX."""
    found = []
    prev = None
    for at, c in enumerate(text):
        if c == "@" and not (prev is not None and _alnum(prev)):
            end = at + 1
            while end < len(text) and (_alnum(text[end]) or text[end] in "_-."):
                end += 1
            name = text[at + 1:end].rstrip(".")
            try:
                ok = username(name) == name
            except Refused:
                ok = False
            if ok and name not in found:
                found.append(name)
                if len(found) == MENTIONS_MAX:
                    break
        prev = c
    return found


# ---- PostgreSQL ------------------------------------------------------------------------

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id          bigserial PRIMARY KEY,
    room        text NOT NULL,
    username    text NOT NULL,
    author      text NOT NULL,
    body        text NOT NULL,
    mentions    text[] NOT NULL DEFAULT '{}',
    client_id   text,
    inserted_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS messages_room_id ON messages (room, id);
CREATE UNIQUE INDEX IF NOT EXISTS messages_client_id
    ON messages (room, author, client_id) WHERE client_id IS NOT NULL;
"""

COLUMNS = "id, room, username, author, body, mentions, client_id, inserted_at"


def setup(url):
    """Creates the database named in `url` if it is missing, then the table."""
    name = conninfo.conninfo_to_dict(url).get("dbname")
    try:
        psycopg.connect(url, connect_timeout=5).close()
    except psycopg.OperationalError as error:
        if not name or f'database "{name}" does not exist' not in str(error):
            raise
        admin = conninfo.make_conninfo(url, dbname="postgres")
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"CREATE DATABASE {sql.Identifier(name).as_string(conn)}")
        print(f"created database {name}", flush=True)
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(SCHEMA)


class Pool:
    """At most `size` connections, made when first needed; a broken one is dropped."""

    def __init__(self, url, size=8, wait=5.0):
        self.url, self.wait = url, wait
        self.idle = queue.LifoQueue()
        self.slots = threading.BoundedSemaphore(size)

    def run(self, work):
        if not self.slots.acquire(timeout=self.wait):
            raise Refused("unavailable")
        conn = None
        try:
            try:
                conn = self.idle.get_nowait()
            except queue.Empty:
                conn = psycopg.connect(self.url, autocommit=True, connect_timeout=5)
            result = work(conn)
            self.idle.put(conn)
            conn = None
            return result
        except psycopg.Error as error:
            print(f"store error: {error}", file=sys.stderr, flush=True)
            raise Refused("unavailable") from None
        finally:
            if conn is not None:
                conn.close()
            self.slots.release()


def message_json(row):
    """A stored row as docs/chat.md's message object (guests only: no edits, reactions,
    threads or attachments here, so those fields keep their empty values)."""
    id_, room_, name, author, text, mention_list, cid, at = row
    return {
        "id": id_,
        "room": room_,
        "username": name,
        "author": author,
        "guest": author.startswith("guest:"),
        "body": text,
        "inserted_at": at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "parent_id": None,
        "reply_count": 0,
        "edited_at": None,
        "deleted": False,
        "reactions": {},
        "reactors": {},
        "attachments": [],
        "mentions": list(mention_list),
        "client_id": cid,
        "seq": id_,
    }


# ---- the hooks -------------------------------------------------------------------------

def guest_id_of(key):
    """docs/chat.md, Identity: the first 32 hex digits of SHA-256(guest_key)."""
    if (isinstance(key, str) and 32 <= len(key) <= 128
            and all(c.isascii() and (c.isalnum() or c in "_-") for c in key)):
        return hashlib.sha256(key.encode()).hexdigest()[:32]
    return None


def connect(request):
    params = request.get("params") or {}
    guest_id = guest_id_of(params.get("guest_key")) or secrets.token_hex(16)
    return {"status": "ok", "assigns": {"author": f"guest:{guest_id}"}}


def refusal(text):
    return {"status": "error", "response": {"reason": text}}


def join(request, pool):
    topic = request["topic"]
    try:
        name = room(topic.removeprefix("room:"))
        params = request.get("payload")
        params = params if isinstance(params, dict) else {}
        after_id = optional_id(params.get("after_id"), "after_id")
        optional_id(params.get("after_seq"), "after_seq")
        raw_name = params.get("username")
        if not isinstance(raw_name, str):
            raise Refused("username is required")
        who = username(raw_name)
        author = request["assigns"]["author"]
        reply = pool.run(lambda conn: replay(conn, name, after_id))
    except Refused as why:
        return refusal(str(why))
    reply["me"] = {"author": author, "username": who, "guest": True}
    meta = {"online_at": str(int(time.time())), "username": who, "guest": True, "author": author}
    return {
        "status": "ok",
        "response": reply,
        "assigns": {"room": name, "username": who, "author": author},
        # Presence under the username, as the chat app keys it without accounts.
        "presence": {"key": who, "meta": meta},
    }


def replay(conn, name, after_id):
    """docs/chat.md, "Join": the latest 50 oldest first, or every message after
    `after_id` (more than 200: the latest 50 and gap: true). Nothing here is ever
    changed, so `changed` is empty and `seq` is the newest id."""
    seq = conn.execute("SELECT coalesce(max(id), 0) FROM messages WHERE room = %s", (name,)).fetchone()[0]
    if after_id is not None:
        missed = conn.execute(
            f"SELECT {COLUMNS} FROM messages WHERE room = %s AND id > %s ORDER BY id LIMIT %s",
            (name, after_id, REPLAY_MAX + 1)).fetchall()
        if len(missed) <= REPLAY_MAX:
            return {"messages": [message_json(r) for r in missed], "gap": False,
                    "changed": [], "refetch": False, "seq": seq}
    return {"messages": older(conn, name, 2**63 - 1, RECENT_ON_JOIN), "gap": after_id is not None,
            "changed": [], "refetch": False, "seq": seq}


def older(conn, name, before, limit):
    rows = conn.execute(
        f"SELECT {COLUMNS} FROM messages WHERE room = %s AND id < %s ORDER BY id DESC LIMIT %s",
        (name, before, limit)).fetchall()
    return [message_json(r) for r in reversed(rows)]


def ok(response):
    return {"reply": {"status": "ok", "response": response}}


def error(text):
    return {"reply": {"status": "error", "response": {"reason": text}}}


TYPING_EVERY = 1.0
typing_lock = threading.Lock()
typing_last = {}


def event(request, pool):
    ch = request.get("channel_assigns") or {}
    name, who, author = ch.get("room"), ch.get("username"), ch.get("author")
    payload = request.get("payload")
    kind = request["event"]
    try:
        if kind == "new_msg":
            return new_msg(payload, name, who, author, pool)
        if kind == "history":
            if not isinstance(payload, dict):
                raise Refused("history takes an object")
            before = before_id(payload.get("before_id"))
            limit = history_limit(payload.get("limit"))
            return ok({"messages": pool.run(lambda conn: older(conn, name, before, limit))})
        if kind == "typing":
            # One per guest and room per second, to everyone else; no reply (the page
            # sends it fire-and-forget).
            now = time.monotonic()
            with typing_lock:
                if now - typing_last.get((name, author), -TYPING_EVERY) < TYPING_EVERY:
                    return {}
                typing_last[(name, author)] = now
                if len(typing_last) > 10000:
                    typing_last.clear()
            return {"actions": [{"type": "broadcast_from", "event": "typing",
                                 "payload": {"username": who, "author": author}}]}
        raise Refused(f"unknown event {json.dumps(kind)}")
    except Refused as why:
        return error(str(why))


def new_msg(payload, name, who, author, pool):
    """Stored first, broadcast once stored; a client_id already used by this guest in
    this room answers the first message's id with duplicate: true and is not broadcast
    again."""
    if not isinstance(payload, dict):
        raise Refused("body is required")
    cid = client_id(payload.get("client_id"))
    files = payload.get("attachments")
    if files is not None and files != []:
        if not isinstance(files, list):
            raise Refused("attachments must be a list of upload ids")
        if len(files) > ATTACHMENTS_MAX:
            raise Refused(f"at most {ATTACHMENTS_MAX} attachments per message")
        raise Refused("uploads are not enabled")
    raw = payload.get("body")
    if not isinstance(raw, str):
        raise Refused("body is required")
    text = body(raw)
    if optional_id(payload.get("parent_id"), "parent_id") is not None:
        # Threads are not part of this example: no message is a parent here.
        raise Refused("not found")

    def insert(conn):
        row = conn.execute(
            f"INSERT INTO messages (room, username, author, body, mentions, client_id) "
            f"VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING {COLUMNS}",
            (name, who, author, text, mentions(text), cid)).fetchone()
        if row is not None:
            return row, False
        first = conn.execute(
            "SELECT id FROM messages WHERE room = %s AND author = %s AND client_id = %s",
            (name, author, cid)).fetchone()
        return first, True

    row, duplicate = pool.run(insert)
    if duplicate:
        return ok({"id": row[0], "duplicate": True})
    message = message_json(row)
    return {"reply": {"status": "ok", "response": {"id": message["id"]}},
            "actions": [{"type": "broadcast", "event": "new_msg", "payload": message}]}


# ---- the HTTP server -------------------------------------------------------------------

def verify(secret, header, data, tolerance=300):
    """docs/gateway.md, "Checking the signature"."""
    try:
        parts = dict(p.split("=", 1) for p in (header or "").split(","))
        t, sig = int(parts["t"]), parts["v1"]
    except (KeyError, ValueError):
        return False
    if abs(time.time() - t) > tolerance:
        return False
    expected = hmac.new(secret, f"{t}.".encode() + data, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, sig)


MAX_BODY = 1 << 20


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the gateway reuses its connections
    server_version = "phx-gateway-python-chat"

    def send(self, status, answer):
        data = json.dumps(answer, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def signed_body(self):
        length = int(self.headers.get("content-length") or 0)
        if length > MAX_BODY:
            self.send(413, {"error": "too large"})
            self.close_connection = True
            return None
        data = self.rfile.read(length)
        if not verify(self.server.secret, self.headers.get("x-phx-gateway-signature"), data):
            print(f"refused {self.path} {self.headers.get('x-request-id')}: bad signature",
                  file=sys.stderr, flush=True)
            self.send(401, {"error": "bad signature"})
            return None
        return data

    def do_GET(self):
        if self.signed_body() is None:
            return
        if self.path == "/healthz":
            try:
                self.server.pool.run(lambda conn: conn.execute("SELECT 1"))
            except Refused:
                return self.send(503, {"status": "database unavailable"})
            return self.send(200, {"status": "ok"})
        self.send(404, {"error": "not found"})

    def do_POST(self):
        data = self.signed_body()
        if data is None:
            return
        try:
            request = json.loads(data)
        except ValueError:
            return self.send(400, {"error": "body must be JSON"})
        if self.path == "/phx/connect":
            return self.send(200, connect(request))
        if self.path == "/phx/join":
            return self.send(200, join(request, self.server.pool))
        if self.path == "/phx/event":
            return self.send(200, event(request, self.server.pool))
        self.send(404, {"error": "not found"})

    def log_message(self, format, *args):
        if os.environ.get("LOG_REQUESTS"):
            super().log_message(format, *args)


def main():
    url = os.environ.get("DATABASE_URL")
    if not url:
        sys.exit("set DATABASE_URL (postgres://user@host:5432/db)")
    if sys.argv[1:] == ["setup"]:
        setup(url)
        return
    secret = os.environ.get("PHX_GATEWAY_SECRET")
    if not secret:
        sys.exit("set PHX_GATEWAY_SECRET (the gateway's [backend] secret)")
    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ.get("PORT", "0"))), Handler)
    server.daemon_threads = True
    server.secret = secret.encode()
    server.pool = Pool(url)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"backend listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    server.server_close()


if __name__ == "__main__":
    main()
