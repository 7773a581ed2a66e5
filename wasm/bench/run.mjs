// The browser benchmark (issue 13): the Trailhound package beside a baseline page with no
// SDK, in headless Chromium against a loopback collector, in one run.
//
//   bash wasm/build.sh && node wasm/bench/run.mjs [--calls N] [--runs N] [--pkg DIR] [--profile]
//
// Env: BENCH_CALLS, BENCH_RUNS, BENCH_PKG, BENCH_PROFILE=1, CHROMIUM (the browser's path).
// Prints a markdown table (metric | baseline | trailhound) and writes every sample to
// target/bench/last-run.json. A benchmark, not a test: it asserts nothing about timings.
// See README.md for what each number means.
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import { gunzipSync, gzipSync } from "node:zlib";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";

const here = fileURLToPath(new URL(".", import.meta.url));
const root = join(here, "..", "..");
const require = createRequire(join(here, "..", "tools", "package.json"));

// ---- options ----------------------------------------------------------------------------

const argv = process.argv.slice(2);
function opt(name, env, fallback) {
  const i = argv.indexOf(`--${name}`);
  if (i >= 0) return typeof fallback === "boolean" ? true : argv[i + 1];
  if (process.env[env] !== undefined) return typeof fallback === "boolean" ? process.env[env] === "1" : process.env[env];
  return fallback;
}
const CALLS = Number(opt("calls", "BENCH_CALLS", 1000));
const RUNS = Math.max(2, Number(opt("runs", "BENCH_RUNS", 6)));
const PKG = opt("pkg", "BENCH_PKG", join(root, "wasm", "pkg"));
const PROFILE = opt("profile", "BENCH_PROFILE", false);
// One cold load is one sample of a noisy figure: each variant's cold load is the median of
// COLD first loads, each in a fresh profile (the first is the one `--runs` starts with).
const COLD = Math.max(1, Number(opt("cold", "BENCH_COLD", 3)));
// Only the loads (cold and warm), for comparing builds' load times quickly.
const LOADS_ONLY = opt("loads-only", "BENCH_LOADS_ONLY", false);
const PACE_MS = 10;
const ACK_TIMEOUT_MS = 40_000;
const OUT = join(root, "target", "bench", "last-run.json");

const wasmFile = existsSync(PKG) ? readdirSync(PKG).find((f) => f.endsWith(".wasm")) : undefined;
if (!existsSync(join(PKG, "index.js")) || !wasmFile) {
  console.error(`run.mjs: no built package in ${PKG} (index.js and a .wasm).\n` +
    "Build it first:  bash wasm/build.sh");
  process.exit(2);
}
let chromium;
try {
  ({ chromium } = require("playwright-core"));
} catch {
  console.error("run.mjs: playwright-core is missing from wasm/tools/node_modules " +
    "(scripts/test-wasm.sh installs it: npm install --prefix wasm/tools).");
  process.exit(2);
}
// As examples/web/harness.mjs: Debian's headless Chromium without background traffic.
const chromiumOptions = {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
};

// ---- the server: page, package, collector on one origin --------------------------------

const types = { ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm", ".json": "application/json" };
// Every file served (for transfer size) and every /v1/batch request (for the collector).
const served = [];
const batches = [];
// messageId -> epoch ms of each receipt (a duplicate has two).
const received = new Map();

// 200 with the headers that make the page crossOriginIsolated (performance.now() at 5 µs
// instead of 100 µs in Chromium).
function isolate(res, headers) {
  res.writeHead(200, {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "same-origin",
    ...headers,
  });
}

function collect(req, res, body) {
  const at = Date.now();
  const encoding = req.headers["content-encoding"] || "identity";
  const type = req.headers["content-type"] || "";
  let json, error = null;
  try {
    const text = (encoding === "gzip" ? gunzipSync(body) : body).toString("utf8");
    json = JSON.parse(text);
    if (!Array.isArray(json.batch)) throw new Error("no batch array");
    if (!req.headers.authorization && typeof json.writeKey !== "string") throw new Error("no write key");
  } catch (e) {
    error = String(e.message || e);
  }
  const ids = error ? [] : json.batch.map((m) => m.messageId);
  batches.push({ at, bytes: body.length, encoding, type, beacon: !req.headers.authorization, events: ids.length, error });
  for (const id of ids) {
    if (!received.has(id)) received.set(id, []);
    received.get(id).push(at);
  }
  res.writeHead(error ? 400 : 200, {
    "Content-Type": "application/json",
    "Access-Control-Allow-Origin": "*",
  });
  res.end(error ? JSON.stringify({ error }) : "{}");
}

const server = createServer((req, res) => {
  const url = new URL(req.url, "http://x");
  if (req.method === "OPTIONS") {
    res.writeHead(204, {
      "Access-Control-Allow-Origin": "*",
      "Access-Control-Allow-Headers": "Authorization, Content-Type, Content-Encoding",
      "Access-Control-Allow-Methods": "POST, GET, HEAD, OPTIONS",
      "Access-Control-Max-Age": "600",
    });
    return void res.end();
  }
  if (url.pathname === "/v1/batch") {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => collect(req, res, Buffer.concat(chunks)));
    return;
  }
  // The SDK's block check (a HEAD of the origin) and anything else at "/".
  if (url.pathname === "/") {
    isolate(res, { "Content-Type": "text/plain" });
    return void res.end(req.method === "HEAD" ? undefined : "ok");
  }
  const path = normalize(decodeURIComponent(url.pathname));
  if (path.includes("..")) return void res.writeHead(400).end();
  const file = path.startsWith("/pkg/") ? join(PKG, path.slice(5)) : join(here, path);
  let body;
  try {
    body = readFileSync(file);
  } catch {
    return void res.writeHead(404).end("not found");
  }
  served.push({ at: Date.now(), path, bytes: body.length, file });
  // Cacheable, so that later loads may take the script and the compiled wasm from the
  // browser's caches (Chromium's wasm code cache needs an HTTP-cached response).
  isolate(res, { "Content-Type": types[extname(file)] ?? "application/octet-stream", "Cache-Control": "public, max-age=3600" });
  res.end(req.method === "HEAD" ? undefined : body);
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const origin = `http://127.0.0.1:${server.address().port}`;

// ---- helpers ---------------------------------------------------------------------------

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const gz = (file) => gzipSync(readFileSync(file), { level: 9 }).length;
const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
const median = (xs) => pct([...xs].sort((a, b) => a - b), 50);
function summary(times) {
  const s = [...times].sort((a, b) => a - b);
  return { p50: pct(s, 50), p99: pct(s, 99), max: s[s.length - 1], mean: s.reduce((a, b) => a + b, 0) / s.length };
}
// Resolves once every id has reached the collector (or after `ms`): the epoch of the last
// first receipt, and how many arrived.
async function acked(ids, ms = ACK_TIMEOUT_MS) {
  const want = ids.filter(Boolean);
  const end = Date.now() + ms;
  for (;;) {
    const got = want.filter((id) => received.has(id));
    if (got.length === want.length || Date.now() > end) {
      const last = got.length ? Math.max(...got.map((id) => received.get(id)[0])) : null;
      return { got: got.length, of: want.length, last, complete: got.length === want.length };
    }
    await sleep(10);
  }
}
async function launch() {
  const dir = mkdtempSync(join(tmpdir(), "trailhound-bench-"));
  // A persistent profile: a disk HTTP cache and code cache, as a returning visitor has.
  const context = await chromium.launchPersistentContext(dir, chromiumOptions);
  const page = context.pages()[0] ?? (await context.newPage());
  page.on("pageerror", (e) => console.error("page error:", e.message));
  return { context, page, close: async () => { await context.close(); rmSync(dir, { recursive: true, force: true }); } };
}
async function open(page, url, how = "goto") {
  if (how === "reload") await page.reload({ waitUntil: "commit" });
  else await page.goto(url, { waitUntil: "commit" });
  await page.evaluate(() => window.bench.whenReady);
}
async function metrics(cdp) {
  const { metrics } = await cdp.send("Performance.getMetrics");
  const m = Object.fromEntries(metrics.map((x) => [x.name, x.value]));
  return { task: m.TaskDuration * 1000, script: m.ScriptDuration * 1000 };
}
// Long tasks that started in [from, to), apart from the one that ran the burst loop itself
// (the page's own 1,000 calls in one task: `loopTask`, its length).
const longTasksIn = (tasks, from, to, loop) => {
  const isLoop = ([start, d]) => loop && start <= loop.start + 1 && start + d >= loop.end - 1;
  const inside = tasks.filter((t) => t[0] >= from - 1 && t[0] < to && !isLoop(t));
  const own = loop ? tasks.find(isLoop) : undefined;
  return { count: inside.length, ms: inside.reduce((a, [, d]) => a + d, 0), loopTask: own ? own[1] : null };
};

// ---- one variant: loads, then the calls ------------------------------------------------

async function variant(sdk) {
  const url = `${origin}/bench.html?sdk=${sdk}&db=bench-${sdk}`;
  const { page, context, close } = await launch();
  const loads = [];
  let firstFiles = null;
  // The renderer process for the origin starts here, not in the first timed load: that
  // load's HTTP cache is still cold, but it does not pay for the process.
  await page.goto(`${origin}/`);
  for (let r = 0; r < RUNS; r++) {
    const mark = served.length;
    await open(page, url);
    const info = await page.evaluate(() => window.bench.loadInfo());
    const files = served.slice(mark).map((f) => ({ path: f.path, bytes: f.bytes, file: f.file }));
    if (r === 0) firstFiles = files;
    const wasm = info.resources.find((x) => x.name.endsWith(".wasm"));
    loads.push({ run: r + 1, navToReady: info.navToReady, scriptToReady: info.scriptToReady, moduleToReady: info.moduleToReady,
      filesServed: files.length, wasmTransferSize: wasm ? wasm.transferSize : null, navigation: info.navigation });
  }
  // More cold loads, each the first load of a fresh profile.
  for (let c = 1; c < COLD; c++) {
    const fresh = await launch();
    await fresh.page.goto(`${origin}/`);
    await open(fresh.page, url);
    const info = await fresh.page.evaluate(() => window.bench.loadInfo());
    await fresh.close();
    loads[0].more = [...(loads[0].more ?? []), { navToReady: info.navToReady, scriptToReady: info.scriptToReady }];
  }
  // Where a warm load's time goes (Trailhound only): import, wasm init, Client.load.
  const split = [];
  if (sdk === "trailhound") {
    for (let r = 0; r < 4; r++) {
      await open(page, `${url}&split=1`);
      const info = await page.evaluate(() => window.bench.loadInfo());
      if (r > 0 && info.split) split.push(info.split); // the first fetches the new URL's page
    }
    await open(page, url);
  }
  const transfer = firstFiles.map((f) => ({ path: f.path, bytes: f.bytes, gzip9: gz(f.file) }));
  if (LOADS_ONLY) {
    await close();
    return { sdk, loads, split, transfer };
  }

  // The calls, on the last (warm) load's page.
  const cdp = await context.newCDPSession(page);
  await cdp.send("Performance.enable");
  const resolution = await page.evaluate(() => window.bench.resolution());
  const phases = {};
  for (const kind of ["burst", "paced"]) {
    const m0 = await metrics(cdp);
    const b0 = batches.length;
    const run = kind === "burst"
      ? await page.evaluate((n) => window.bench.burst(n), CALLS)
      : await page.evaluate(([n, ms]) => window.bench.paced(n, ms), [CALLS, PACE_MS]);
    const ack = sdk === "none" ? null : await acked(run.ids);
    await sleep(500); // what follows an acknowledgement (the queue's deletes) counts too
    const m1 = await metrics(cdp);
    const pageNow = await page.evaluate(() => performance.now());
    const tasks = await page.evaluate(() => window.bench.longTasks);
    const sent = batches.slice(b0);
    const ids = run.ids.filter(Boolean);
    const slowest = run.times.map((t, i) => [i, t]).sort((a, b) => b[1] - a[1]).slice(0, 12);
    phases[kind] = {
      calls: run.times.length,
      perCall: summary(run.times),
      loopMeanMs: run.loopMs !== undefined ? run.loopMs / run.times.length : null,
      slowest,
      longTasks: longTasksIn(tasks, run.start, pageNow, kind === "burst" ? run : null),
      taskMs: m1.task - m0.task,
      scriptMs: m1.script - m0.script,
      requests: sent.length,
      bytesUp: sent.reduce((a, b) => a + b.bytes, 0),
      encodings: [...new Set(sent.map((b) => b.encoding))],
      beacons: sent.filter((b) => b.beacon).length,
      eventsReceived: sent.reduce((a, b) => a + b.events, 0),
      distinctIds: new Set(ids).size,
      duplicates: ids.reduce((a, id) => a + Math.max(0, (received.get(id)?.length ?? 0) - 1), 0),
      ack: ack && { ...ack, fromFirstMs: ack.last - run.startEpoch, fromLastMs: run.lastEpoch ? ack.last - run.lastEpoch : null },
    };
  }
  const stats = await page.evaluate(() => window.client.stats());
  const longTasksAll = await page.evaluate(() => window.bench.longTasks);
  await cdp.detach();
  await close();
  return { sdk, loads, split, transfer, resolution, phases, stats, longTasksAll };
}

// ---- reload scenarios (Trailhound only; reported, not asserted) -------------------------

async function scenarios() {
  const { page, context, close } = await launch();
  const out = {};
  const count = (ids) => {
    const times = ids.map((id) => received.get(id)?.length ?? 0);
    return { tracked: ids.length, received: times.filter((n) => n > 0).length,
      duplicates: times.reduce((a, n) => a + Math.max(0, n - 1), 0), maxSends: Math.max(...times) };
  };

  // (a) 20 events delivered online, then a reload as soon as the collector has them: is
  // anything sent again? The reload races the page's handling of the answer (and the
  // deletes that follow), so also 250 ms and 1 s after, each noting whether the SDK had
  // counted them delivered when the reload began.
  out.a = [];
  for (const after of [0, 250, 1000]) {
    const url = `${origin}/bench.html?sdk=trailhound&db=reload-a${after}`;
    await open(page, url);
    const ids = await page.evaluate(() => window.bench.trackMany(20, "a"));
    const ack = await acked(ids, 40_000);
    await sleep(after);
    const delivered = await page.evaluate(() => window.client.stats().delivered);
    await open(page, url, "reload");
    await sleep(3000);
    out.a.push({ after, ...count(ids), deliveredBeforeReload: ack.complete, sdkDeliveredAtReload: delivered });
  }
  // (b) 20 events and a reload at once, before the first upload; three times, since what
  // happens depends on a race (the page hide's keepalive request against the new page).
  out.b = [];
  for (let k = 1; k <= 3; k++) {
    const url = `${origin}/bench.html?sdk=trailhound&db=reload-b${k}`;
    await open(page, url);
    const b0 = batches.length;
    const ids = await page.evaluate(() => window.bench.trackMany(20, "b"));
    await open(page, url, "reload");
    const ack = await acked(ids, 15_000);
    await sleep(3000);
    out.b.push({ ...count(ids), complete: ack.complete,
      requests: batches.slice(b0).map((b) => `${b.events} events ${b.encoding}${b.beacon ? " beacon" : ""}`) });
  }
  // (c) offline: 20 events, the page reloaded from the HTTP cache while still offline, then
  // back online.
  {
    const url = `${origin}/bench.html?sdk=trailhound&db=reload-c`;
    await open(page, url);
    await context.setOffline(true);
    const ids = await page.evaluate(() => window.bench.trackMany(20, "c"));
    await sleep(300);
    let how = "goto while offline (page from the HTTP cache)";
    try {
      await open(page, url);
    } catch (e) {
      how = `offline navigation failed (${e.message.split("\n")[0]}); reloaded online`;
      await context.setOffline(false);
      await open(page, url);
    }
    const beforeOnline = count(ids).received;
    await context.setOffline(false);
    const ack = await acked(ids, 20_000);
    await sleep(3000);
    out.c = { ...count(ids), how, receivedWhileOffline: beforeOnline, complete: ack.complete };
  }
  await close();
  return out;
}

// ---- optional: CPU profiles of a burst and of paced calls ------------------------------

// Self time by function over the samples taken inside the page's own calls (a bench.js
// frame on the stack: the track() path), and the rest (the SDK's timers, uploads, storage).
function selfTimes(p) {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const inCall = (id) => {
    for (let n = id; n !== undefined; n = parent.get(n)) if (byId.get(n).callFrame.url.endsWith("/bench.js")) return true;
    return false;
  };
  const name = (f) => `${f.functionName || "(anonymous)"} ${f.url ? f.url.replace(origin, "") : ""}`.trim();
  const calls = new Map(), other = new Map();
  let callUs = 0, otherUs = 0;
  p.samples.forEach((id, i) => {
    const dt = p.timeDeltas[i + 1] ?? 0; // a sample's delta is the time until the next one
    const key = name(byId.get(id).callFrame);
    if (key.startsWith("(idle)")) return;
    if (inCall(id)) { calls.set(key, (calls.get(key) ?? 0) + dt); callUs += dt; }
    else { other.set(key, (other.get(key) ?? 0) + dt); otherUs += dt; }
  });
  const top = (m, total, n) => [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, n)
    .map(([fn, us]) => ({ fn, ms: us / 1000, share: us / total }));

  // The longest busy stretch after the page's last call (no idle sample for 1 ms): the
  // SDK's own work that follows the calls, a long task if over 50 ms. What it spends its
  // time in, and which callbacks (the frame under the root) started it.
  const at = [];
  let t = p.startTime;
  p.samples.forEach((_, i) => { t += p.timeDeltas[i] ?? 0; at.push(t); });
  let lastCall = -1;
  p.samples.forEach((id, i) => { if (inCall(id)) lastCall = i; });
  const idle = (i) => name(byId.get(p.samples[i]).callFrame).startsWith("(idle)");
  let best = null;
  for (let i = lastCall + 1; i < p.samples.length;) {
    if (idle(i)) { i++; continue; }
    let j = i, lastBusy = i;
    while (j + 1 < p.samples.length && (!idle(j + 1) || at[j + 1] - at[lastBusy] < 1000)) { j++; if (!idle(j)) lastBusy = j; }
    if (!best || at[lastBusy] - at[i] > best.us) best = { from: i, to: lastBusy, us: at[lastBusy] - at[i] };
    i = j + 1;
  }
  let stretch = null;
  if (best) {
    const self = new Map(), entries = new Map();
    for (let i = best.from; i <= best.to; i++) {
      const dt = p.timeDeltas[i + 1] ?? 0;
      let n = p.samples[i];
      const key = name(byId.get(n).callFrame);
      if (key.startsWith("(idle)")) continue;
      self.set(key, (self.get(key) ?? 0) + dt);
      while (parent.has(n) && parent.get(parent.get(n)) !== undefined) n = parent.get(n);
      const entry = name(byId.get(n).callFrame);
      entries.set(entry, (entries.get(entry) ?? 0) + dt);
    }
    stretch = { afterLastCallMs: (at[best.from] - at[Math.max(0, lastCall)]) / 1000, ms: best.us / 1000,
      self: top(self, best.us, 12), entries: top(entries, best.us, 8) };
  }
  return { callMs: callUs / 1000, otherMs: otherUs / 1000, inCalls: top(calls, callUs, 25), other: top(other, otherUs, 10), stretch };
}

// Per track() call, how often the package calls these browser functions (wrapped in the
// page for 200 calls): the JS<->wasm crossings that cost most in the profiles.
async function crossings(page) {
  return page.evaluate(() => {
    const counts = {};
    const wrap = (obj, key, label) => {
      const f = obj[key];
      obj[key] = function (...args) { counts[label] = (counts[label] ?? 0) + 1; return f.apply(this, args); };
      return () => { obj[key] = f; };
    };
    const undo = [
      wrap(TextDecoder.prototype, "decode", "TextDecoder.decode"),
      wrap(TextEncoder.prototype, "encode", "TextEncoder.encode"),
      wrap(TextEncoder.prototype, "encodeInto", "TextEncoder.encodeInto"),
      wrap(Crypto.prototype, "getRandomValues", "crypto.getRandomValues"),
      wrap(globalThis, "queueMicrotask", "queueMicrotask"),
      wrap(globalThis, "setTimeout", "setTimeout"),
      wrap(globalThis, "clearTimeout", "clearTimeout"),
      wrap(Performance.prototype, "now", "performance.now"),
      wrap(Date, "now", "Date.now"),
      wrap(JSON, "stringify", "JSON.stringify"),
      wrap(JSON, "parse", "JSON.parse"),
      wrap(Reflect, "get", "Reflect.get"),
    ];
    const n = 200;
    for (let i = 0; i < n; i++) window.client.track("Product Viewed", { product_id: `sku-${i}`, name: "x", price: 1.5, currency: "EUR", position: i });
    undo.forEach((u) => u());
    return Object.fromEntries(Object.entries(counts).map(([k, v]) => [k, v / n]));
  });
}

async function profile() {
  const { page, context, close } = await launch();
  await open(page, `${origin}/bench.html?sdk=trailhound&db=profile`);
  const cdp = await context.newCDPSession(page);
  await cdp.send("Profiler.enable");
  await cdp.send("Profiler.setSamplingInterval", { interval: 50 });
  const out = {};
  for (const kind of ["burst", "paced"]) {
    await cdp.send("Profiler.start");
    const n = kind === "burst" ? CALLS : Math.min(CALLS, 300);
    const run = kind === "burst"
      ? await page.evaluate((n) => window.bench.burst(n), n)
      : await page.evaluate(([n, ms]) => window.bench.paced(n, ms), [n, PACE_MS]);
    await acked(run.ids);
    const { profile: p } = await cdp.send("Profiler.stop");
    out[kind] = { calls: n, perCall: summary(run.times), ...selfTimes(p) };
  }
  out.crossings = await crossings(page);
  const pairs = await page.evaluate(([n, ms]) => window.bench.pacedPairs(n, ms), [200, PACE_MS]);
  out.pairs = { first: summary(pairs.first), second: summary(pairs.second) };
  await close();
  return out;
}

// ---- run and print ---------------------------------------------------------------------

const started = Date.now();
let commit = "?";
try { commit = execFileSync("git", ["-C", root, "rev-parse", "--short", "HEAD"]).toString().trim(); } catch {}
const wasmSha = createHash("sha256").update(readFileSync(join(PKG, wasmFile))).digest("hex").slice(0, 12);
const chromeVersion = await (async () => { const b = await chromium.launch(chromiumOptions); const v = b.version(); await b.close(); return v; })();

const base = await variant("none");
const th = await variant("trailhound");
const reloads = LOADS_ONLY ? null : await scenarios();
const prof = PROFILE && !LOADS_ONLY ? await profile() : null;

const us = (ms) => (ms == null ? "–" : ms < 1 ? `${(ms * 1000).toFixed(1)} µs` : `${ms.toFixed(2)} ms`);
const ms0 = (ms) => (ms == null ? "–" : `${ms.toFixed(0)} ms`);
const kib = (b) => `${(b / 1024).toFixed(1)} KiB`;
const gzTotal = (v) => v.transfer.reduce((a, f) => a + f.gzip9, 0);
const colds = (v, key) => [v.loads[0][key], ...(v.loads[0].more ?? []).map((l) => l[key])];
const loadCol = (v, key) => {
  const cold = median(colds(v, key));
  const warm = v.loads.slice(1).map((l) => l[key]);
  return `${ms0(cold)} / ${ms0(median(warm))}`;
};
const callCol = (v, k) => { const s = v.phases[k].perCall; return `${us(s.p50)} / ${us(s.p99)} / ${us(s.max)}`; };
const both = (f) => `${f(base)} | ${f(th)}`;
const ph = (k) => (v) => v.phases[k];
const loadRows = [
  `| metric | baseline (no SDK) | trailhound |`,
  `|---|---|---|`,
  `| transfer, gzip -9 of what the page loaded (cold) | ${kib(gzTotal(base))} (${base.transfer.length} files) | ${kib(gzTotal(th))} (${th.transfer.length} files; SDK ${kib(gzTotal(th) - gzTotal(base))}) |`,
  `| load to ready from navigation start, cold median of ${COLD} / warm median of ${RUNS - 1} | ${loadCol(base, "navToReady")} | ${loadCol(th, "navToReady")} |`,
  `| load to ready from script start, cold / warm median | ${loadCol(base, "scriptToReady")} | ${loadCol(th, "scriptToReady")} |`,
];
const rows = LOADS_ONLY ? loadRows : [...loadRows,
  `| per call, burst of ${CALLS}: p50 / p99 / max | ${callCol(base, "burst")} | ${callCol(th, "burst")} |`,
  `| per call, burst: mean of the timed calls / loop time ÷ ${CALLS} (exact) | ${us(base.phases.burst.perCall.mean)} / ${us(base.phases.burst.loopMeanMs)} | ${us(th.phases.burst.perCall.mean)} / ${us(th.phases.burst.loopMeanMs)} |`,
  `| per call, paced ${1000 / PACE_MS} Hz: p50 / p99 / max | ${callCol(base, "paced")} | ${callCol(th, "paced")} |`,
  `| per call, paced: mean | ${us(base.phases.paced.perCall.mean)} | ${us(th.phases.paced.perCall.mean)} |`,
  `| main thread, burst until acknowledged +0.5 s: tasks / script (CDP) | ${both((v) => `${ms0(ph("burst")(v).taskMs)} / ${ms0(ph("burst")(v).scriptMs)}`)} |`,
  `| main thread, paced until acknowledged +0.5 s: tasks / script (CDP) | ${both((v) => `${ms0(ph("paced")(v).taskMs)} / ${ms0(ph("paced")(v).scriptMs)}`)} |`,
  `| the burst loop (one task): length, and as a long task | ${both((v) => `${us(ph("burst")(v).loopMeanMs * CALLS)}, ${ph("burst")(v).longTasks.loopTask ? ms0(ph("burst")(v).longTasks.loopTask) : "not long"}`)} |`,
  `| other long tasks (> 50 ms) in burst / paced phase: count, total | ${both((v) => `${ph("burst")(v).longTasks.count}, ${ms0(ph("burst")(v).longTasks.ms)} / ${ph("paced")(v).longTasks.count}, ${ms0(ph("paced")(v).longTasks.ms)}`)} |`,
  `| long tasks over the whole page life (incl. load) | ${base.longTasksAll.length}, ${ms0(base.longTasksAll.reduce((a, t) => a + t[1], 0))} | ${th.longTasksAll.length}, ${ms0(th.longTasksAll.reduce((a, t) => a + t[1], 0))} |`,
  `| burst: requests, bytes up (collector) | – | ${ph("burst")(th).requests}, ${kib(ph("burst")(th).bytesUp)} (${ph("burst")(th).encodings.join(", ")}) |`,
  `| paced: requests, bytes up (collector) | – | ${ph("paced")(th).requests}, ${kib(ph("paced")(th).bytesUp)} (${ph("paced")(th).encodings.join(", ")}) |`,
  `| events received / duplicates (burst + paced) | – | ${ph("burst")(th).eventsReceived + ph("paced")(th).eventsReceived} of ${2 * CALLS} / ${ph("burst")(th).duplicates + ph("paced")(th).duplicates} |`,
  `| SDK's own stats(): requests, bytes_sent, delivered | – | ${th.stats.requests}, ${kib(th.stats.bytes_sent)}, ${th.stats.delivered} |`,
  `| burst: first track() to all acknowledged | – | ${ms0(ph("burst")(th).ack.fromFirstMs)}${ph("burst")(th).ack.complete ? "" : ` (only ${ph("burst")(th).ack.got} of ${CALLS} in ${ACK_TIMEOUT_MS / 1000} s)`} |`,
  `| paced: first track() to all acknowledged (after the last call) | – | ${ms0(ph("paced")(th).ack.fromFirstMs)} (${ms0(ph("paced")(th).ack.fromLastMs)})${ph("paced")(th).ack.complete ? "" : ` (only ${ph("paced")(th).ack.got} of ${CALLS} in ${ACK_TIMEOUT_MS / 1000} s)`} |`,
  `| reload (a): 20 delivered, reload (at once; 250 ms; 1 s after), 3 s: received / sent again | – | ${reloads.a.map((a) => `${a.received} / ${a.duplicates}`).join("; ")} |`,
  `| reload (b): 20 tracked, reload at once: received / duplicates, 3 tries | – | ${reloads.b.map((b) => `${b.received} / ${b.duplicates}`).join("; ")} |`,
  `| reload (c): offline, 20 tracked, reload, online: received / duplicates | – | ${reloads.c.received} / ${reloads.c.duplicates} |`,
];

const res = th.resolution;
console.log(`\nTrailhound browser benchmark, ${new Date().toISOString().slice(0, 16)}Z, checkout at ${commit}, Chromium ${chromeVersion}, ${CALLS} calls, ${RUNS} loads`);
console.log(`Package: ${PKG} (wasm sha256 ${wasmSha}; built from whatever wasm/ held when build.sh ran)\n`);
console.log(rows.join("\n"));
if (res) console.log(`\nTimer: crossOriginIsolated ${res.crossOriginIsolated}, performance.now() steps min ${us(res.min)}, median ${us(res.median)}.`);
console.log(`Transfer (cold load, per file, served bytes -> gzip -9):`);
for (const f of th.transfer) console.log(`  ${f.path}: ${f.bytes} B -> ${f.gzip9} B`);
for (const v of [base, th]) console.log(`Cold loads (${v.sdk}), navigation start to ready: ${colds(v, "navToReady").map(ms0).join(", ")}`);
console.log(`Loads (trailhound): ${th.loads.map((l) => `#${l.run} ${ms0(l.navToReady)} (script ${ms0(l.scriptToReady)}, ${l.filesServed} files served, wasm transferSize ${l.wasmTransferSize})`).join("; ")}`);
if (th.split.length) {
  const m = (k) => ms0(median(th.split.map((x) => x[k])));
  console.log(`Warm load split (trailhound, median of ${th.split.length}): import of the package ${m("import")}, wasm init ${m("init")}, Trailhound.load ${m("load")}.`);
}
for (const v of [base, th]) {
  const warm = v.loads.slice(1).map((l) => l.navigation);
  const m = (k) => ms0(median(warm.map((x) => x[k])));
  console.log(`Warm loads (${v.sdk}, median): navigation start to fetchStart ${m("fetchStart")}, to the page's response end ${m("responseEnd")}, to its first script ${m("scriptStart")}.`);
}
console.log(`Loads (baseline): ${base.loads.map((l) => `#${l.run} ${ms0(l.navToReady)}`).join("; ")}`);
if (!LOADS_ONLY) {
console.log(`Slowest burst calls (trailhound, call index: time): ${th.phases.burst.slowest.map(([i, t]) => `#${i} ${us(t)}`).join(", ")}`);
console.log(`Slowest paced calls (trailhound): ${th.phases.paced.slowest.map(([i, t]) => `#${i} ${us(t)}`).join(", ")}`);
console.log(`Reload (c): ${reloads.c.how}; received while offline ${reloads.c.receivedWhileOffline}.`);
console.log(`Reload (a): the SDK's stats().delivered when each reload began: ${reloads.a.map((a) => `${a.sdkDeliveredAtReload} (${a.after} ms after)`).join(", ")}, of 20.`);
console.log(`Reload (b) requests per try: ${reloads.b.map((b) => b.requests.join(", ")).join("; ")}.`);
}
if (prof) {
  for (const kind of ["burst", "paced"]) {
    const p = prof[kind];
    console.log(`\nCPU profile, ${kind} of ${p.calls} calls on a fresh page (p50 ${us(p.perCall.p50)}, p99 ${us(p.perCall.p99)} under the profiler): ` +
      `${us(p.callMs)} sampled inside the calls, ${us(p.otherMs)} outside them. Top self time inside the calls:`);
    for (const t of p.inCalls) console.log(`  ${(t.share * 100).toFixed(1).padStart(5)}%  ${us(t.ms).padStart(9)}  ${t.fn}`);
    console.log("  outside the calls:");
    for (const t of p.other) console.log(`  ${(t.share * 100).toFixed(1).padStart(5)}%  ${us(t.ms).padStart(9)}  ${t.fn}`);
    if (p.stretch) {
      console.log(`  the longest busy stretch after the last call: ${us(p.stretch.ms)}, ${us(p.stretch.afterLastCallMs)} after it; started by:`);
      for (const t of p.stretch.entries) console.log(`  ${(t.share * 100).toFixed(1).padStart(5)}%  ${us(t.ms).padStart(9)}  ${t.fn}`);
      console.log("  its top self time:");
      for (const t of p.stretch.self) console.log(`  ${(t.share * 100).toFixed(1).padStart(5)}%  ${us(t.ms).padStart(9)}  ${t.fn}`);
    }
  }
  console.log(`\nPaced, two calls per tick (200 ticks): the tick's first call p50 ${us(prof.pairs.first.p50)} / p99 ${us(prof.pairs.first.p99)}, ` +
    `its second p50 ${us(prof.pairs.second.p50)} / p99 ${us(prof.pairs.second.p99)}.`);
  console.log(`Per track() call, the package called: ${Object.entries(prof.crossings).map(([k, v]) => `${k} ${v}`).join(", ")}.`);
}
console.log(`\nWhole run: ${((Date.now() - started) / 1000).toFixed(1)} s; every sample in ${OUT}`);

mkdirSync(join(root, "target", "bench"), { recursive: true });
writeFileSync(OUT, JSON.stringify({ date: new Date().toISOString(), commit, wasmSha, chromium: chromeVersion, calls: CALLS, runs: RUNS,
  pkg: PKG, baseline: base, trailhound: th, reloads, profile: prof, batches }, null, 1));
server.close();
process.exit(0);
