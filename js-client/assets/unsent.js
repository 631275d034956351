// Unsent messages kept in localStorage, per person and room, so that neither a refused
// reconnect (a server restart that ends sessions), nor a reload, nor closing the tab
// loses what someone wrote: a message is stored when it is written and dropped once the
// server acknowledged it (or the person discarded it). The page sends the stored ones
// again when that person is back in that room; the client_id makes a second send of a
// message the server already had harmless (docs/chat.md, new_msg). Importable in Node:
// the storage is a parameter (window.localStorage in the page).

const PREFIX = "phx-chat:unsent:";
/** At most this many unsent messages are kept per person and room (as in the page). */
export const UNSENT_MAX = 100;
/** A kept message older than this is dropped when read (a week). */
export const UNSENT_MAX_AGE_MS = 7 * 24 * 3600 * 1000;

/** Whose messages: a signed-in user by folded name, all guests of this browser as one. */
export function identityOf(session, username) {
  return session ? `user:${String(session.user?.username ?? username).toLowerCase()}` : "guest";
}

function keyOf(identity, room) {
  return `${PREFIX}${encodeURIComponent(identity)}:${encodeURIComponent(room)}`;
}

/** A stored record as the page can use it, or null when it is not one (a hand-edited key). */
function valid(r, now) {
  const ok =
    r &&
    typeof r.client_id === "string" &&
    /^[A-Za-z0-9_-]{1,64}$/.test(r.client_id) &&
    typeof r.body === "string" &&
    r.body.length <= 16000 &&
    (r.parent_id === null || Number.isSafeInteger(r.parent_id)) &&
    Array.isArray(r.attachments) &&
    r.attachments.length <= 10 &&
    r.attachments.every((a) => a && typeof a.id === "string") &&
    Number.isFinite(r.at) &&
    now - r.at < UNSENT_MAX_AGE_MS;
  return ok ? { client_id: r.client_id, body: r.body, parent_id: r.parent_id, attachments: r.attachments, at: r.at } : null;
}

function read(storage, key, now = Date.now()) {
  let raw;
  try {
    raw = JSON.parse(storage.getItem(key) ?? "[]");
  } catch {
    raw = [];
  }
  return (Array.isArray(raw) ? raw : [])
    .map((r) => valid(r, now))
    .filter(Boolean)
    .slice(-UNSENT_MAX);
}

function write(storage, key, records) {
  try {
    if (records.length) storage.setItem(key, JSON.stringify(records));
    else storage.removeItem(key);
  } catch {
    // Storage full or disabled: the message stays in the page's memory only.
  }
}

/**
 * The unsent messages of `identity` in `room`: `put` a pending message, `drop` one by
 * client_id, `load` them (oldest first). Each call reads and writes the key again, so
 * two tabs of one person in one room do not erase each other's messages.
 */
export function unsentStore(identity, room, storage = globalThis.localStorage) {
  const key = keyOf(identity, room);
  return {
    put(p) {
      const records = read(storage, key).filter((r) => r.client_id !== p.client_id);
      records.push({ client_id: p.client_id, body: p.body, parent_id: p.parent_id, attachments: p.attachments, at: Date.now() });
      write(storage, key, records.slice(-UNSENT_MAX));
    },
    drop(clientId) {
      const records = read(storage, key);
      const left = records.filter((r) => r.client_id !== clientId);
      if (left.length !== records.length || records.length === 0) write(storage, key, left);
    },
    load() {
      return read(storage, key);
    },
  };
}

/** Rooms where `identity` has unsent messages: [{room, count}]. */
export function unsentRooms(identity, storage = globalThis.localStorage) {
  const prefix = `${PREFIX}${encodeURIComponent(identity)}:`;
  const rooms = [];
  for (let i = 0; i < storage.length; i++) {
    const key = storage.key(i);
    if (!key?.startsWith(prefix)) continue;
    const count = read(storage, key).length;
    if (count) rooms.push({ room: decodeURIComponent(key.slice(prefix.length)), count });
  }
  return rooms.sort((a, b) => a.room.localeCompare(b.room));
}

/** Forgets every unsent message of `identity` (an explicit logout). */
export function clearUnsent(identity, storage = globalThis.localStorage) {
  const prefix = `${PREFIX}${encodeURIComponent(identity)}:`;
  const keys = [];
  for (let i = 0; i < storage.length; i++) if (storage.key(i)?.startsWith(prefix)) keys.push(storage.key(i));
  for (const key of keys) storage.removeItem(key);
}

/** "2 unsent messages (#a, #b) are kept …", or "" when there are none. */
export function unsentSummary(rooms) {
  const n = rooms.reduce((sum, r) => sum + r.count, 0);
  if (n === 0) return "";
  const where = rooms.map((r) => `#${r.room}`).join(", ");
  const what = n === 1 ? "1 unsent message" : `${n} unsent messages`;
  return `Your ${what} (${where}) ${n === 1 ? "is" : "are"} kept and sent when you are back in the room.`;
}
