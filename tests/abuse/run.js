// The abuse suite: every row in attacks/ attacks a freshly started server while a
// legitimate user does one ordinary thing, and the row passes only if the server stays
// within the row's bounds (RSS growth, threads, the legitimate user's wait) and is still
// running at the end. Prints a report with the exact figures; exits 1 if any row failed.
//
//   node tests/abuse/run.js              every row
//   node tests/abuse/run.js name …       the named rows (file names without .js)
//
// How to write a row: tests/abuse/README.md.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { makeContext, procStats } from "./lib/context.js";
import { startTarget } from "./lib/targets.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const SAMPLE_MS = 100;
// Time the server is left alone after start before its baseline is read.
const SETTLE_MS = 500;
// The legitimate user starts this long after the attack, so it meets the attack in full swing.
const DEFAULT_LEGIT_DELAY_MS = 1000;
const DEFAULT_ROW_TIMEOUT_MS = 60000;
// After the attack, how long the server gets to give memory back before "kept" is read.
const KEPT_AFTER_MS = 2000;

const BOUND_KEYS = new Set(["rssGrowthMiB", "keptMiB", "threads", "legitMs"]);

async function loadRows(names) {
  const dir = path.join(here, "attacks");
  const files = fs.readdirSync(dir).filter((f) => f.endsWith(".js")).sort();
  const rows = [];
  for (const file of files) {
    const row = (await import(pathToFileURL(path.join(dir, file)))).default;
    const name = file.slice(0, -3);
    check(row?.name === name, `${file}: name must be ${JSON.stringify(name)}`);
    check(typeof row.sends === "string" && row.sends, `${file}: 'sends' says what the attack sends`);
    check(typeof row.attack === "function", `${file}: 'attack' is a function`);
    check(typeof row.legit === "function", `${file}: 'legit' is a function`);
    check(row.bounds && Object.keys(row.bounds).length > 0, `${file}: 'bounds' names at least one bound`);
    for (const key of Object.keys(row.bounds)) check(BOUND_KEYS.has(key), `${file}: unknown bound ${key}`);
    rows.push(row);
  }
  if (names.length === 0) return rows;
  const unknown = names.filter((n) => !rows.some((r) => r.name === n));
  check(unknown.length === 0, `no such rows: ${unknown.join(", ")}`);
  return rows.filter((r) => names.includes(r.name));
}

function check(ok, message) {
  if (!ok) throw new Error(message);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Runs one row; resolves with its result (never rejects). */
async function runRow(row) {
  const notes = [];
  const log = (...args) => notes.push(args.map((a) => (typeof a === "string" ? a : JSON.stringify(a))).join(" "));
  const result = { name: row.name, sends: row.sends, bounds: row.bounds, notes, failures: [] };
  const started = Date.now();
  let server;
  try {
    server = await startTarget(row);
    log(`server started in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } catch (e) {
    result.failures.push(`server did not start: ${e.message}`);
    return result;
  }
  const controller = new AbortController();
  const timeoutMs = row.timeoutMs ?? DEFAULT_ROW_TIMEOUT_MS;
  const timer = setTimeout(() => controller.abort(new Error(`row time (${timeoutMs} ms) is up`)), timeoutMs);
  const ctx = makeContext(row, server, { signal: controller.signal, log });
  try {
    await sleep(SETTLE_MS);
    const base = procStats(server.pid);
    check(base, "the server exited before the attack");
    result.baseline = base;
    let peakRss = base.rssMiB;
    let peakThreads = base.threads;
    const sampler = setInterval(() => {
      const now = procStats(server.pid);
      if (!now) return;
      peakRss = Math.max(peakRss, now.rssMiB);
      peakThreads = Math.max(peakThreads, now.threads);
    }, SAMPLE_MS);

    const attackStarted = Date.now();
    const attack = Promise.resolve()
      .then(() => row.attack(ctx))
      .then(
        () => {
          log(`attack took ${((Date.now() - attackStarted) / 1000).toFixed(1)} s`);
          return null;
        },
        (e) => (controller.signal.aborted ? null : e),
      );
    const legit = (async () => {
      await sleep(row.legitDelayMs ?? DEFAULT_LEGIT_DELAY_MS);
      const t0 = Date.now();
      await row.legit(ctx);
      return Date.now() - t0;
    })().then(
      (ms) => ({ ms }),
      (e) => ({ error: e }),
    );
    const [attackError, legitResult] = await Promise.all([attack, legit]);
    clearInterval(sampler);
    ctx.close();
    // Only a row with a bound on what is kept waits for memory to come back.
    if (row.bounds.keptMiB !== undefined) await sleep(KEPT_AFTER_MS);
    const after = procStats(server.pid);

    result.peakRssGrowthMiB = peakRss - base.rssMiB;
    result.peakThreads = peakThreads;
    result.legitMs = legitResult.ms;
    result.keptMiB = after ? after.rssMiB - base.rssMiB : undefined;

    if (attackError) result.failures.push(`the attack itself failed: ${attackError.stack ?? attackError}`);
    if (legitResult.error) result.failures.push(`the legitimate user failed: ${legitResult.error.message ?? legitResult.error}`);
    if (!after) result.failures.push("the server is gone (crashed or exited) after the attack");
    const { rssGrowthMiB, keptMiB, threads, legitMs } = row.bounds;
    if (rssGrowthMiB !== undefined && result.peakRssGrowthMiB > rssGrowthMiB) {
      result.failures.push(`RSS grew ${result.peakRssGrowthMiB.toFixed(1)} MiB at peak (bound ${rssGrowthMiB})`);
    }
    if (keptMiB !== undefined && result.keptMiB !== undefined && result.keptMiB > keptMiB) {
      result.failures.push(`RSS kept ${result.keptMiB.toFixed(1)} MiB after the attack (bound ${keptMiB})`);
    }
    if (threads !== undefined && peakThreads > threads) {
      result.failures.push(`${peakThreads} threads at peak (bound ${threads})`);
    }
    if (legitMs !== undefined && result.legitMs !== undefined && result.legitMs > legitMs) {
      result.failures.push(`the legitimate user waited ${result.legitMs} ms (bound ${legitMs})`);
    }
  } catch (e) {
    result.failures.push(e.stack ?? String(e));
  } finally {
    clearTimeout(timer);
    ctx.close();
    await server.stop();
    result.seconds = (Date.now() - started) / 1000;
    if (result.failures.length > 0 && server.logs?.length) {
      result.serverLog = server.logs.slice(-20);
    }
  }
  return result;
}

function report(results) {
  const fmt = (v, digits = 1) => (v === undefined || Number.isNaN(v) ? "-" : typeof v === "number" ? v.toFixed(digits) : String(v));
  const header = ["row", "verdict", "RSS base MiB", "peak growth MiB", "kept MiB", "peak threads", "legit ms", "bounds", "s"];
  const lines = results.map((r) => [
    r.name,
    r.failures.length === 0 ? "ok" : "FAIL",
    fmt(r.baseline?.rssMiB),
    fmt(r.peakRssGrowthMiB),
    fmt(r.keptMiB),
    fmt(r.peakThreads, 0),
    fmt(r.legitMs, 0),
    Object.entries(r.bounds ?? {}).map(([k, v]) => `${k}≤${v}`).join(" "),
    fmt(r.seconds, 0),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const row = (cells) => cells.map((c, i) => c.padEnd(widths[i])).join("  ");
  console.log("\nabuse suite report");
  console.log(row(header));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const l of lines) console.log(row(l));
  for (const r of results) {
    console.log(`\n${r.name}: ${r.sends}`);
    for (const n of r.notes) console.log(`  ${n}`);
    for (const f of r.failures) console.log(`  FAIL: ${f}`);
    if (r.serverLog) console.log(`  server log (last lines):\n    ${r.serverLog.join("\n    ")}`);
  }
}

const rows = await loadRows(process.argv.slice(2));
const results = [];
for (const row of rows) {
  process.stdout.write(`${row.name} … `);
  const r = await runRow(row);
  console.log(r.failures.length === 0 ? `ok (${r.seconds.toFixed(0)} s)` : `FAIL (${r.seconds.toFixed(0)} s)`);
  results.push(r);
}
report(results);
process.exit(results.every((r) => r.failures.length === 0) ? 0 : 1);
