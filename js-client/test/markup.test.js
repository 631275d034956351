// Message formatting (markup.js): bold, italic, strike, inline code, code blocks and
// quotes; links and mentions inside; nothing mistaken for markup in words, URLs or
// arithmetic; HTML stays text.
import { test } from "node:test";
import assert from "node:assert/strict";
import { blocks, inline, plainText } from "../assets/markup.js";

/** A compact form of inline runs: "b(...)", "i(...)", "s(...)", "c:x", plain text. */
const show = (runs) =>
  runs
    .map((r) => {
      if (r.type === "bold" || r.type === "italic" || r.type === "strike") return `${r.type[0]}(${show(r.children)})`;
      if (r.type === "code") return `c:${r.text}`;
      if (r.type === "link") return `L:${r.href}`;
      if (r.type === "mention") return `@${r.name}`;
      return r.text;
    })
    .join("|");

test("emphasis, code and strike, nested, with links and mentions inside", () => {
  assert.equal(show(inline("a *bold* and **also** _it_ ~gone~ `x*y*z`")), "a |b(bold)| and |b(also)| |i(it)| |s(gone)| |c:x*y*z");
  assert.equal(show(inline("*bold _and italic_*")), "b(bold |i(and italic))");
  assert.equal(show(inline("_see https://x.org/a_b_ @ann_")), "i(see |L:https://x.org/a_b_| |@ann)");
  assert.equal(show(inline("(*yes*), ok")), "(|b(yes)|), ok");
});

test("no markup in words, URLs, arithmetic or across lines; HTML is text", () => {
  for (const text of ["snake_case_name", "2 * 3 * 4", "a*b*c", "https://x.org/_x_", "*not\nbold*", "**", "_ _", "<b>x</b>"]) {
    assert.ok(
      inline(text).every((r) => r.type === "text" || r.type === "link"),
      `${JSON.stringify(text)} → ${show(inline(text))}`,
    );
  }
  assert.equal(plainText("<img src=x onerror=alert(1)>"), "<img src=x onerror=alert(1)>");
});

test("code blocks (fenced, one-line, with a language), quotes, and an unclosed fence", () => {
  const b = blocks("look:\n```js\nlet x = *1*;\n```\n> quoted *bold*\n> second\nafter");
  assert.deepEqual(
    b.map((x) => [x.type, x.text ?? show(x.inline)]),
    [
      ["text", "look:"],
      ["code", "let x = *1*;"],
      ["quote", "quoted |b(bold)|\nsecond"],
      ["text", "after"],
    ],
  );
  assert.deepEqual(blocks("```one line``` then"), [
    { type: "code", text: "one line" },
    { type: "text", inline: [{ type: "text", text: " then" }] },
  ]);
  assert.deepEqual(blocks("```\nnever closed"), [{ type: "text", inline: [{ type: "text", text: "```\nnever closed" }] }]);
  assert.equal(plainText("*hi* `x`\n> q"), "hi x\nq");
});

test("hostile nesting stays bounded", () => {
  const deep = "*_~*_~*_~x~_*~_*~_*";
  assert.ok(Array.isArray(inline(deep)));
  const long = "*a ".repeat(5000);
  assert.ok(inline(long).length > 0);
});
