// Unsent messages in storage (unsent.js) and the timeline that keeps them: stored when
// written, dropped once acknowledged, broadcast or discarded; two tabs of one person do not
// erase each other's; hand-edited or stale entries are ignored; at most 100 per room.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Timeline } from "../assets/timeline.js";
import { UNSENT_MAX, UNSENT_MAX_AGE_MS, clearUnsent, identityOf, unsentRooms, unsentStore, unsentSummary } from "../assets/unsent.js";

/** localStorage's interface over a Map. */
function memoryStorage() {
  const map = new Map();
  return {
    get length() {
      return map.size;
    },
    key: (i) => [...map.keys()][i] ?? null,
    getItem: (k) => (map.has(k) ? map.get(k) : null),
    setItem: (k, v) => map.set(k, String(v)),
    removeItem: (k) => map.delete(k),
  };
}

test("a pending message is stored when written and dropped when acknowledged, broadcast or discarded", () => {
  const storage = memoryStorage();
  const store = unsentStore("user:ann", "lobby", storage);
  const t = new Timeline(store);
  const a = t.addPending({ body: "a" });
  const b = t.addPending({ body: "b", parent_id: 7 });
  const c = t.addPending({ body: "c" });
  assert.deepEqual(store.load().map((r) => [r.body, r.parent_id]), [["a", null], ["b", 7]].concat([["c", null]]));
  t.acknowledge(a.client_id, 100);
  t.merge([{ id: 101, username: "ann", body: "b", parent_id: 7, client_id: b.client_id, inserted_at: new Date().toISOString() }]);
  assert.deepEqual(store.load().map((r) => r.body), ["c"]);
  t.discard(c);
  assert.deepEqual(store.load(), []);
  assert.equal(storage.length, 0, "an empty list leaves no key behind");
});

test("a reload restores what was kept, once; two tabs of one person keep both their messages", () => {
  const storage = memoryStorage();
  const tab1 = new Timeline(unsentStore("guest", "r", storage));
  const tab2 = new Timeline(unsentStore("guest", "r", storage));
  const one = tab1.addPending({ body: "from tab 1" });
  tab2.addPending({ body: "from tab 2" });
  const reloaded = new Timeline(unsentStore("guest", "r", storage));
  const restored = reloaded.restorePending(unsentStore("guest", "r", storage).load());
  assert.deepEqual(restored.map((p) => [p.body, p.state]), [["from tab 1", "waiting"], ["from tab 2", "waiting"]]);
  assert.equal(restored[0].client_id, one.client_id, "the same client_id: the server deduplicates a second send");
  assert.equal(reloaded.restorePending(unsentStore("guest", "r", storage).load()).length, 0, "not twice");
  // Another person or room sees nothing of it.
  assert.deepEqual(unsentStore("user:bob", "r", storage).load(), []);
  assert.deepEqual(unsentStore("guest", "other", storage).load(), []);
});

test("hand-edited, stale and excess entries are ignored; rooms are listed and summarised; logout clears", () => {
  const storage = memoryStorage();
  const store = unsentStore("user:ann", "lobby", storage);
  store.put({ client_id: "ok1", body: "fine", parent_id: null, attachments: [] });
  const key = [...Array(storage.length).keys()].map((i) => storage.key(i))[0];
  const records = JSON.parse(storage.getItem(key));
  records.push({ client_id: "bad id!", body: "x", parent_id: null, attachments: [], at: Date.now() });
  records.push({ client_id: "old", body: "x", parent_id: null, attachments: [], at: Date.now() - UNSENT_MAX_AGE_MS - 1 });
  records.push({ client_id: "nobody", parent_id: null, attachments: [], at: Date.now() });
  storage.setItem(key, JSON.stringify(records));
  assert.deepEqual(store.load().map((r) => r.client_id), ["ok1"]);
  storage.setItem(key, "not json");
  assert.deepEqual(store.load(), []);
  for (let i = 0; i < UNSENT_MAX + 5; i++) store.put({ client_id: `m${i}`, body: "x", parent_id: null, attachments: [] });
  assert.equal(store.load().length, UNSENT_MAX);
  assert.equal(store.load()[0].client_id, "m5", "the oldest go first");
  unsentStore("user:ann", "team", storage).put({ client_id: "t", body: "x", parent_id: null, attachments: [] });
  assert.deepEqual(unsentRooms("user:ann", storage), [
    { room: "lobby", count: UNSENT_MAX },
    { room: "team", count: 1 },
  ]);
  assert.equal(unsentSummary([{ room: "team", count: 1 }]), "Your 1 unsent message (#team) is kept and sent when you are back in the room.");
  assert.equal(unsentSummary([]), "");
  clearUnsent("user:ann", storage);
  assert.deepEqual(unsentRooms("user:ann", storage), []);
  assert.equal(identityOf({ user: { username: "Ann" } }), "user:ann");
  assert.equal(identityOf(null, "Ann"), "guest");
});

test("a storage that refuses writes (full, disabled) loses nothing in the page", () => {
  const storage = memoryStorage();
  storage.setItem = () => {
    throw new Error("QuotaExceededError");
  };
  const t = new Timeline(unsentStore("guest", "r", storage));
  const p = t.addPending({ body: "still here" });
  assert.deepEqual(t.pendingIn(null), [p]);
});
