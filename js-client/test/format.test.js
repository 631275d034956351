// The page's pure parts in Node: date labels, grouping, links and mentions, and the
// timeline (dedupe and order by id, pending messages matched back by client_id).
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  authorTag,
  avatarLightness,
  bodyLength,
  continuesGroup,
  dayLabel,
  formatSize,
  initials,
  nameHue,
  randomKey,
  readableError,
  refusalText,
  retryLabel,
  sameName,
  segments,
  sentence,
} from "../assets/format.js";
import { Timeline } from "../assets/timeline.js";

const local = (y, mo, d, h = 12, mi = 0) => new Date(y, mo - 1, d, h, mi).toISOString();

test("day labels: Today, Yesterday, a weekday within the week, else a date", () => {
  const now = new Date(2026, 10, 28, 0, 30); // just after midnight
  assert.equal(dayLabel(local(2026, 11, 28, 0, 5), now, "en-GB"), "Today");
  assert.equal(dayLabel(local(2026, 11, 27, 23, 59), now, "en-GB"), "Yesterday");
  assert.equal(dayLabel(local(2026, 11, 27, 0, 0), now, "en-GB"), "Yesterday");
  assert.equal(dayLabel(local(2026, 11, 24), now, "en-GB"), "Tuesday");
  // The exact punctuation is the ICU version's; the parts are ours.
  assert.match(dayLabel(local(2026, 11, 3), now, "en-GB"), /^Tue,? 3 Nov$/);
  assert.match(dayLabel(local(2025, 11, 3), now, "en-GB"), /^Mon,? 3 Nov 2025$/);
  assert.equal(dayLabel("not a date", now), "");
});

test("grouping: same author, same day, under five minutes", () => {
  const m = (username, at) => ({ username, inserted_at: at });
  assert.equal(continuesGroup(m("ann", local(2026, 11, 28, 10, 0)), m("ann", local(2026, 11, 28, 10, 4))), true);
  assert.equal(continuesGroup(m("ann", local(2026, 11, 28, 10, 0)), m("ann", local(2026, 11, 28, 10, 6))), false);
  assert.equal(continuesGroup(m("ann", local(2026, 11, 28, 10, 0)), m("bob", local(2026, 11, 28, 10, 1))), false);
  assert.equal(continuesGroup(m("ann", local(2026, 11, 27, 23, 58)), m("ann", local(2026, 11, 28, 0, 1))), false);
  assert.equal(continuesGroup(null, m("ann", local(2026, 11, 28))), false);
});

test("grouping and names follow author ids: two people with one name are two groups", () => {
  const at = local(2026, 11, 28, 10, 0);
  const later = local(2026, 11, 28, 10, 1);
  const guest = { username: "sam", author: "guest:0e10aa", inserted_at: at };
  const account = { username: "sam", author: "user:7", inserted_at: later };
  assert.equal(continuesGroup(guest, account), false);
  assert.equal(continuesGroup(guest, { ...guest, inserted_at: later }), true);
  // Messages stored before author ids: by name, never grouped with one that has an id.
  assert.equal(continuesGroup({ username: "sam", author: null, inserted_at: at }, { username: "sam", author: null, inserted_at: later }), true);
  assert.equal(continuesGroup({ username: "sam", author: null, inserted_at: at }, account), false);
  assert.equal(authorTag("user:7"), "#7");
  assert.equal(authorTag("guest:0e10aa99"), "0e10");
  assert.equal(authorTag(null), "");
  assert.equal(sameName("Sam", "ｓａｍ"), true);
  assert.equal(sameName("sam", "sammy"), false);
});

test("refusals in words: when to retry, until when, what to do", () => {
  const now = new Date(2026, 10, 28, 14, 0);
  assert.equal(retryLabel(42, now), "in 42 s");
  assert.match(retryLabel(90, now, "en-GB"), /^in 2 min \(at 14:01\)$/);
  assert.match(retryLabel(7200, now, "en-GB"), /^in 2 h \(at 16:00\)$/);
  assert.equal(readableError("too many attempts: try again in 42 s", now), "too many attempts: try again in 42 s");
  assert.match(readableError("too many new accounts from this address: try again in 600 s", now, "en-GB"), /^too many new accounts from this address: try again in 10 min \(at 14:10\)$/);
  // A moment in RFC 3339: the time today, the day and time another day.
  const today = new Date(2026, 10, 28, 16, 30).toISOString().replace(/\.\d+Z$/, "Z");
  assert.match(readableError(`no new invitation before ${today}`, now, "en-GB"), /^no new invitation before 16:30$/);
  const tomorrow = new Date(2026, 10, 29, 9, 5).toISOString().replace(/\.\d+Z$/, "Z");
  assert.match(readableError(`no new invitation before ${tomorrow}`, now, "en-GB"), /before Sun,? 29 Nov, 09:05$/);
  assert.equal(sentence("too many attempts: try again in 3 s"), "Too many attempts: try again in 3 s.");
  assert.equal(sentence("Done."), "Done.");
  assert.equal(refusalText("this name is used by another guest", "Sam"), "Someone else in this room is using the name “Sam” right now: choose another name.");
  assert.match(refusalText("a room with a similar name exists"), /similar name exists already/);
  assert.match(refusalText("unauthorized"), /private/);
  // Anything else as it comes, made readable.
  assert.equal(refusalText("at most 200 rooms per user"), "at most 200 rooms per user");
});

test("avatars: white initials readable on every hue (contrast at least 4.5)", () => {
  const lum = (h, l) => {
    // The browser's hsl() to sRGB, then WCAG luminance.
    const s = 0.55;
    const L = l / 100;
    const a = s * Math.min(L, 1 - L);
    const f = (n) => {
      const k = (n + h / 30) % 12;
      const c = L - a * Math.max(-1, Math.min(k - 3, 9 - k, 1));
      const v = Math.round(c * 255) / 255;
      return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
    };
    return 0.2126 * f(0) + 0.7152 * f(8) + 0.0722 * f(4);
  };
  for (let hue = 0; hue < 360; hue++) {
    const light = avatarLightness(hue);
    assert.ok(light <= 42 && light >= 20, `${hue}: ${light}`);
    assert.ok(1.05 / (lum(hue, light) + 0.05) >= 4.5, `hue ${hue} at ${light}%`);
  }
  assert.equal(avatarLightness(230), 42, "blues keep the usual shade");
});

test("links: http and https only, sentence punctuation left out; mentions", () => {
  assert.deepEqual(segments("see https://example.com/a?b=1. ok"), [
    { type: "text", text: "see " },
    { type: "link", text: "https://example.com/a?b=1", href: "https://example.com/a?b=1" },
    { type: "text", text: ". ok" },
  ]);
  assert.deepEqual(segments("(https://en.wikipedia.org/wiki/Rust_(programming_language))")[1].href, "https://en.wikipedia.org/wiki/Rust_(programming_language)");
  for (const text of ["javascript:alert(1)", "data:text/html,<b>x</b>", "JaVaScRiPt:alert(1)", "ftp://x.org/f", "<a href=x>"]) {
    assert.ok(segments(text).every((s) => s.type === "text"), text);
  }
  assert.deepEqual(segments("hi @Ada, and mail@example.org"), [
    { type: "text", text: "hi " },
    { type: "mention", text: "@Ada", name: "Ada" },
    { type: "text", text: ", and mail@example.org" },
  ]);
  assert.equal(segments("").length, 0);
});

test("avatars, sizes, lengths and random keys", () => {
  assert.equal(initials("Ada Lovelace"), "AL");
  assert.equal(initials("bob"), "B");
  assert.equal(initials("élodie_martin"), "ÉM");
  assert.equal(nameHue("ann"), nameHue("ann"));
  assert.notEqual(nameHue("ann"), nameHue("bob"));
  assert.ok(nameHue("x") >= 0 && nameHue("x") < 360);
  assert.equal(formatSize(512), "512 B");
  assert.equal(formatSize(1536), "1.5 KB");
  assert.equal(formatSize(10 * 1024 * 1024), "10 MB");
  assert.equal(bodyLength("  👋é  "), 2);
  assert.match(randomKey(16), /^[0-9a-f]{32}$/);
  assert.notEqual(randomKey(16), randomKey(16));
});

const msg = (id, extra = {}) => ({ id, username: "ann", body: `m${id}`, inserted_at: local(2026, 11, 28), ...extra });

test("timeline: ordered and deduplicated by id, replies counted once, gap replaces", () => {
  const t = new Timeline();
  assert.equal(t.merge([msg(5), msg(3), msg(9)]).length, 3);
  assert.equal(t.merge([msg(3), msg(7)]).length, 1);
  assert.deepEqual(t.topLevel().map((m) => m.id), [3, 5, 7, 9]);
  assert.equal(t.lastId, 9);
  // A reply counts on its parent once; a parent arriving with its replies is not counted twice.
  t.merge([msg(10, { parent_id: 3 })]);
  t.merge([msg(10, { parent_id: 3 })]);
  assert.equal(t.byId.get(3).reply_count, 1);
  t.merge([msg(11, { reply_count: 1 }), msg(12, { parent_id: 11 })]);
  assert.equal(t.byId.get(11).reply_count, 1);
  assert.deepEqual(t.replies(3).map((m) => m.id), [10]);
  assert.equal(t.lastId, 12);
  assert.deepEqual(t.topLevel().map((m) => m.id), [3, 5, 7, 9, 11]);
  // An edit replaces by id, in place.
  t.merge([msg(5, { body: "changed", edited_at: local(2026, 11, 28) })]);
  assert.equal(t.byId.get(5).body, "changed");
  assert.deepEqual(t.topLevel().map((m) => m.id), [3, 5, 7, 9, 11]);
  t.replace([msg(100), msg(101)]);
  assert.deepEqual(t.topLevel().map((m) => m.id), [100, 101]);
  assert.equal(t.lastId, 101);
});

test("timeline: the change sequence, changes while away (held messages only), reactors, fresh file URLs", () => {
  const t = new Timeline();
  t.merge([msg(1), msg(2), msg(3, { attachments: [{ id: "f1", url: "/uploads/a", urls_expire_at: "x" }] })]);
  assert.equal(t.seq, null, "only the join reply and the channel's events move it");
  t.noteSeq(3);
  t.noteSeq(2);
  assert.equal(t.seq, 3);
  // A rejoin's changes: the held ones replaced, one never held not added (no hole).
  assert.equal(t.applyChanged([msg(1, { body: "edited", seq: 9 }), msg(0, { body: "older", seq: 10 })]), 1);
  assert.equal(t.byId.get(1).body, "edited");
  assert.equal(t.byId.has(0), false);
  assert.equal(t.seq, 10);
  assert.equal(t.setReactions(2, { "👍": ["sam"] }, { "👍": ["user:7"] }, 11), true);
  assert.deepEqual(t.byId.get(2).reactors, { "👍": ["user:7"] });
  assert.equal(t.seq, 11);
  // Fresh URLs replace the old ones; an upload left out of the reply is gone.
  assert.equal(t.refreshAttachments([{ id: "f1", url: "/uploads/b", urls_expire_at: "y" }]), true);
  assert.equal(t.byId.get(3).attachments[0].url, "/uploads/b");
  assert.deepEqual([...t.attachments().keys()], ["f1"]);
  assert.equal(t.refreshAttachments([], ["f1"]), true);
  assert.equal(t.byId.get(3).attachments[0].gone, true);
  assert.deepEqual([...t.attachments().keys()], []);
  assert.equal(t.refreshAttachments([], ["nope"]), false);
});

test("timeline: a pending message ends when the broadcast (client_id) or the ack (id) arrives, never shown twice", () => {
  const t = new Timeline();
  const a = t.addPending({ body: "a" });
  const b = t.addPending({ body: "b" });
  assert.match(a.client_id, /^[A-Za-z0-9_-]{1,64}$/);
  assert.deepEqual(t.pendingIn(null), [a, b]);
  // The broadcast first (matched by client_id), then the ack: nothing left, nothing twice.
  t.merge([msg(20, { client_id: a.client_id })]);
  t.acknowledge(a.client_id, 20);
  assert.deepEqual(t.pendingIn(null), [b]);
  // The ack first: hidden as soon as the message is here, even without a client_id echo.
  t.acknowledge(b.client_id, 21);
  assert.equal(t.pending.length, 1);
  t.merge([msg(21)]);
  assert.deepEqual(t.pending, []);
  assert.deepEqual(t.topLevel().map((m) => m.id), [20, 21]);
});
