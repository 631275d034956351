// Message formatting, as chat apps write it: *bold* (or **bold**), _italic_, ~strike~,
// `inline code`, ```code blocks``` and > quotes. Parsed into a tree that the page turns
// into DOM nodes (message-view.js), never into HTML: whatever a body holds, at worst it
// shows as text. Pure, importable in Node (test/markup.test.js).
import { segments } from "./format.js";

/** Emphasis delimiters, longest first (a tie at one position goes to the first). */
const EMPHASIS = [
  ["**", "bold"],
  ["*", "bold"],
  ["_", "italic"],
  ["~", "strike"],
];
/** What may stand before an opening delimiter, and after a closing one. */
const BEFORE = `(^|[\\s(\\[{"'>])`;
const AFTER = `(?=$|[\\s.,;:!?)\\]}"'<])`;
const escapeRe = (s) => s.replace(/\*/g, "\\*");
const PATTERNS = EMPHASIS.map(([d, type]) => [new RegExp(`${BEFORE}${escapeRe(d)}(?=\\S)([^\\n]*?\\S)${escapeRe(d)}${AFTER}`, "gu"), type]);
/** Nesting deeper than this is left as text (bounds the recursion on hostile input). */
const MAX_DEPTH = 4;
/** A fence's first line naming a language (```js): not part of the code. */
const LANGUAGE = /^[A-Za-z0-9_+#-]{1,20}$/;

/**
 * Inline runs of `text`: `{type: "code", text}`, `{type: "bold"|"italic"|"strike",
 * children}`, and the runs of format.js `segments` (text, link, mention).
 */
export function inline(text, depth = 0) {
  const out = [];
  let at = 0;
  for (const m of String(text).matchAll(/`([^`\n]+)`/g)) {
    if (m.index > at) out.push(...emphasis(text.slice(at, m.index), depth));
    out.push({ type: "code", text: m[1] });
    at = m.index + m[0].length;
  }
  if (at < text.length) out.push(...emphasis(text.slice(at), depth));
  return out;
}

function emphasis(text, depth) {
  let best = null;
  if (depth < MAX_DEPTH) {
    // A delimiter inside a link is part of the link ("https://x.org/a_b_"): matched on a
    // copy where links are masked, cut from the text at the same positions.
    let shadow = "";
    for (const run of segments(text)) shadow += run.type === "link" ? "x".repeat(run.text.length) : run.text;
    for (const [re, type] of PATTERNS) {
      re.lastIndex = 0;
      const m = re.exec(shadow);
      const start = m ? m.index + m[1].length : -1;
      if (m && (!best || start < best.start)) best = { start, end: m.index + m[0].length, type, width: m[0].length - m[1].length - m[2].length };
    }
    if (best) best.inner = text.slice(best.start + best.width / 2, best.end - best.width / 2);
  }
  if (!best) return segments(text);
  return [
    ...segments(text.slice(0, best.start)),
    { type: best.type, children: emphasis(best.inner, depth + 1) },
    ...emphasis(text.slice(best.end), depth),
  ];
}

/**
 * The blocks of a body: `{type: "code", text}` (a fenced block), `{type: "quote",
 * inline}` (consecutive lines starting with ">"), `{type: "text", inline}` (the rest,
 * line breaks kept). An unclosed fence is plain text.
 */
export function blocks(body) {
  const lines = String(body).split("\n");
  const out = [];
  let text = [];
  let quote = [];
  const flushText = () => {
    if (text.length) out.push({ type: "text", inline: inline(text.join("\n")) });
    text = [];
  };
  const flushQuote = () => {
    if (quote.length) out.push({ type: "quote", inline: inline(quote.join("\n")) });
    quote = [];
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const fence = /^\s*```(.*)$/.exec(line);
    if (fence) {
      const rest = fence[1];
      const close = rest.indexOf("```");
      if (close >= 0) {
        // ```code``` on one line, maybe with text after it.
        flushText();
        flushQuote();
        out.push({ type: "code", text: rest.slice(0, close) });
        const after = rest.slice(close + 3);
        if (after.trim()) text.push(after);
        continue;
      }
      let j = i + 1;
      while (j < lines.length && !/```\s*$/.test(lines[j])) j++;
      if (j < lines.length) {
        const code = [];
        if (rest.trim() && !LANGUAGE.test(rest.trim())) code.push(rest);
        code.push(...lines.slice(i + 1, j));
        const last = lines[j].replace(/```\s*$/, "");
        if (last.trim()) code.push(last);
        flushText();
        flushQuote();
        out.push({ type: "code", text: code.join("\n") });
        i = j;
        continue;
      }
    }
    const q = /^>\s?(.*)$/.exec(line);
    if (q) {
      flushText();
      quote.push(q[1]);
      continue;
    }
    flushQuote();
    text.push(line);
  }
  flushText();
  flushQuote();
  return out;
}

/** The body as plain text, markup removed (announcements, notifications, snippets). */
export function plainText(body) {
  const flat = (runs) => runs.map((r) => (r.children ? flat(r.children) : r.text)).join("");
  return blocks(body)
    .map((b) => (b.type === "code" ? b.text : flat(b.inline)))
    .join("\n");
}
