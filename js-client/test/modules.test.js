// The page's modules stay small and layered: each file under assets/ at most 400 lines,
// every module listed in app.js's map of floors and importing only modules above it (no
// import cycles), no bundler-only syntax (bare imports), and no innerHTML anywhere (user
// text is put in the page through textContent and DOM nodes only).
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ASSETS = path.join(path.dirname(fileURLToPath(import.meta.url)), "../assets");
const modules = fs.readdirSync(ASSETS).filter((f) => f.endsWith(".js"));
const source = (f) => fs.readFileSync(path.join(ASSETS, f), "utf8");

/** The floors of app.js's header: lines "//   a.js, b.js   what they hold". */
function floors() {
  const header = source("app.js").split("\nimport ")[0];
  const order = [];
  for (const line of header.split("\n")) {
    const m = /^\/\/ {3}([a-z., -]+?\.js)\s{2,}/.exec(line);
    if (m) order.push(...m[1].split(",").map((s) => s.trim()));
  }
  return order;
}

test("every page module is at most 400 lines", () => {
  for (const f of modules) {
    const lines = source(f).split("\n").length;
    assert.ok(lines <= 400, `${f}: ${lines} lines`);
  }
});

test("modules import only modules above them in app.js's map (no cycles), by path", () => {
  const order = floors();
  assert.ok(order.length >= 10, `the map lists the modules: ${order}`);
  for (const f of modules.filter((m) => m !== "app.js")) {
    assert.ok(order.includes(f), `${f} is in app.js's map`);
    for (const [, spec] of source(f).matchAll(/^import [^;]*? from "([^"]+)";/gms)) {
      assert.match(spec, /^(\/assets\/|\.\/)/, `${f}: "${spec}" is a path the browser loads as is`);
      const name = spec.replace(/^.*\//, "");
      if (name === "phoenix.mjs") continue;
      assert.ok(order.indexOf(name) >= 0 && order.indexOf(name) < order.indexOf(f), `${f} imports ${name}, which is not above it`);
    }
  }
});

test("no module writes HTML: no innerHTML, outerHTML, insertAdjacentHTML or document.write", () => {
  for (const f of modules) assert.doesNotMatch(source(f), /\.(innerHTML|outerHTML)\b|insertAdjacentHTML\(|document\.write\(/, f);
});
