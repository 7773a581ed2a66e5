// Drives a fresh npm project (made by scripts/test-package-npm.sh from this template) in
// headless Chromium against a real `trailhound collect`, and checks what the collector got:
//   node examples/npm-app/test.mjs PROJECT_DIR
// PROJECT_DIR has node_modules/trailhound, dist-esbuild/ and dist-vite/ built from app.ts.
// TRAILHOUND_COLLECTOR=path/to/trailhound (default target/debug/trailhound).
// Prints "npm-app: N passed, N failed".
import { spawn, execFileSync } from "node:child_process";
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { copyFileSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";

const here = fileURLToPath(new URL(".", import.meta.url));
const root = join(here, "..", "..");
const { chromium } = createRequire(join(root, "wasm", "tools", "package.json"))("playwright-core");
const project = process.argv[2];
const collectorBin = process.env.TRAILHOUND_COLLECTOR || join(root, "target", "debug", "trailhound");
const WRITE_KEY = "npm-app-key";

let passed = 0, failed = 0;
function check(name, ok, detail = "") {
  if (ok) passed++; else failed++;
  console.log(`${ok ? "ok" : "FAILED"}: ${name}${ok ? "" : " " + detail}`);
}

// A static file server for `dir` on a free loopback port, as a user's would be.
const types = { ".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm", ".json": "application/json" };
async function serve(dir) {
  const server = createServer(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url, "http://x").pathname));
    if (path.includes("..")) return void res.writeHead(400).end();
    const file = join(dir, path.endsWith("/") ? path + "index.html" : path);
    try {
      const body = await readFile(file);
      res.writeHead(200, { "Content-Type": types[extname(file)] ?? "application/octet-stream" }).end(body);
    } catch {
      res.writeHead(404).end("not found");
    }
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${server.address().port}`, close: () => server.close() };
}

// The collector, with its database in the project; resolves to its URL.
function startCollector() {
  return new Promise((resolve, reject) => {
    const child = spawn(collectorBin, ["collect", "--listen", "127.0.0.1:0", "--db", join(project, "collect.db")],
      { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    const timer = setTimeout(() => reject(new Error("collector: no listening line in 30 s")), 30_000);
    child.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/\S+)/);
      if (m) { clearTimeout(timer); resolve({ url: m[1], child }); }
    });
    child.on("exit", (code) => reject(new Error(`collector exited with ${code}`)));
  });
}

// `vite` (the dev server) on a free port in the project; resolves to its URL.
const children = [];
async function viteDev() {
  const port = await new Promise((r) => { const s = createServer().listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => r(p)); }); });
  const child = spawn(join(project, "node_modules", ".bin", "vite"), ["--host", "127.0.0.1", "--port", String(port), "--strictPort"],
    { cwd: project, stdio: ["ignore", "pipe", "inherit"] });
  children.push(child);
  let out = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`vite dev server: not ready in 30 s: ${out}`)), 30_000);
    child.stdout.on("data", (d) => {
      out += d;
      if (/ready in/.test(out)) { clearTimeout(timer); resolve(`http://127.0.0.1:${port}`); }
    });
    child.on("exit", (code) => reject(new Error(`vite exited with ${code}: ${out}`)));
  });
}

// The first `ts` snippet of docs/getting-started/web.md, pointed at `endpoint`, bundled by
// esbuild as that page says, into dist-doc/.
function buildDocQuickstart(endpoint) {
  const md = readFileSync(join(root, "docs", "getting-started", "web.md"), "utf8");
  const snippet = md.match(/```ts\n([\s\S]*?)```/)[1];
  if (!snippet.includes('"http://127.0.0.1:8787"')) throw new Error("the doc's quickstart no longer uses http://127.0.0.1:8787");
  writeFileSync(join(project, "doc-quickstart.ts"), snippet.replace('"http://127.0.0.1:8787"', JSON.stringify(endpoint)));
  const out = join(project, "dist-doc");
  execFileSync(join(project, "node_modules", ".bin", "esbuild"),
    ["doc-quickstart.ts", "--bundle", "--format=esm", "--splitting", `--outdir=${out}`, "--log-level=warning"], { cwd: project, stdio: "inherit" });
  copyFileSync(join(project, "node_modules", "trailhound", "trailhound_wasm_bg.wasm"), join(out, "trailhound_wasm_bg.wasm"));
  writeFileSync(join(out, "index.html"), '<!doctype html><meta charset="utf-8"><script type="module" src="./doc-quickstart.js"></script>');
  return out;
}

const pkg = join(project, "node_modules", "trailhound");
const leanBytes = statSync(join(pkg, "trailhound_wasm_bg.wasm")).size;
const planBytes = statSync(join(pkg, "plans", "trailhound_wasm_bg.wasm")).size;

let browser, collector;
const servers = [];
try {
  collector = await startCollector();
  // Each event as the collector received it, with the collector's verdict.
  const events = async () => (await (await fetch(`${collector.url}/api/events?limit=10000`)).json()).events
    .map((e) => ({ ...e.json, valid: e.valid }));
  const sites = {
    esbuild: await serve(join(project, "dist-esbuild")),
    vite: await serve(join(project, "dist-vite")),
    plain: await serve(project),
  };
  servers.push(...Object.values(sites));
  sites["vite-dev"] = { url: await viteDev() };
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });

  for (const [site, path] of [["esbuild", "/"], ["vite", "/"], ["vite-dev", "/"], ["plain", "/plain.html"]]) {
    for (const withPlan of [false, true]) {
      const app = `npm-app-${site}-${withPlan ? "plan" : "lean"}`;
      const context = await browser.newContext();
      const page = await context.newPage();
      const errors = [];
      page.on("pageerror", (e) => errors.push(e.message));
      const query = new URLSearchParams({ endpoint: collector.url, writeKey: WRITE_KEY, app, plan: withPlan ? "1" : "0" });
      await page.goto(`${sites[site].url}${path}?${query}`);
      let result;
      try {
        await page.waitForFunction(() => window.result || window.error, null, { timeout: 20_000 });
        result = await page.evaluate(() => window.result ?? { error: window.error });
      } catch (e) {
        result = { error: `no result: ${e.message}; page errors: ${errors.join("; ")}` };
      }
      await context.close();
      if (result.error) {
        check(`${app}: the page loaded the package and tracked`, false, result.error);
        continue;
      }
      // Which .wasm the page fetched, told apart by size (Vite renames the files).
      const fetched = result.wasm.map((w) => w.bytes);
      check(`${app}: fetched the ${withPlan ? "plan" : "lean"} build's .wasm only`,
        fetched.length === 1 && fetched[0] === (withPlan ? planBytes : leanBytes),
        `${JSON.stringify(result.wasm)} (lean ${leanBytes} B, plans ${planBytes} B)`);
      const got = (await events()).filter((e) => e.context?.app?.name === app);
      const titles = got.map((e) => e.properties?.title);
      if (withPlan) {
        check(`${app}: the collector has the event that keeps the plan, not the one that breaks it`,
          got.length === 1 && got[0].event === "Song Played" && got[0].properties.seconds === 300
            && got[0].messageId === result.ids[0] && result.ids[1] === "" && result.stats.dropped.plan_violation === 1,
          `got ${JSON.stringify(got)}, ids ${JSON.stringify(result.ids)}, dropped ${JSON.stringify(result.stats.dropped)}`);
      } else {
        const sorted = [...got].sort((a, b) => (a.messageId === result.ids[0] ? -1 : 1));
        check(`${app}: the collector has both events, names and properties`,
          got.length === 2 && sorted[0].messageId === result.ids[0] && sorted[1].messageId === result.ids[1]
            && got.every((e) => e.event === "Song Played" && e.valid !== false)
            && titles.includes("Clair de lune") && got.some((e) => e.properties?.seconds === -1),
          `got ${JSON.stringify(got)}, ids ${JSON.stringify(result.ids)}`);
      }
      check(`${app}: no page errors`, errors.length === 0, errors.join("; "));
    }
  }

  // The getting-started page's quickstart, as written there.
  {
    const doc = await serve(buildDocQuickstart(collector.url));
    servers.push(doc);
    const context = await browser.newContext();
    const page = await context.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(e.message));
    const logged = new Promise((resolve) => page.on("console", (m) => { if (/^delivered /.test(m.text())) resolve(m.text()); }));
    await page.goto(`${doc.url}/`);
    const line = await Promise.race([logged, new Promise((r) => setTimeout(() => r(null), 20_000))]);
    await context.close();
    const got = (await events()).filter((e) => e.userId === "user-42");
    const kinds = got.map((e) => `${e.type} ${e.event ?? ""}`.trim()).sort();
    const track = got.find((e) => e.type === "track");
    check("docs/getting-started/web.md quickstart: it logs delivered 3, and the collector has identify, track, page",
      line === "delivered 3, queued 0" && JSON.stringify(kinds) === JSON.stringify(["identify", "page", "track Song Played"])
        && track.properties.title === "Clair de lune" && track.properties.seconds === 300 && errors.length === 0,
      `logged ${line}, got ${JSON.stringify(got)}, errors ${errors.join("; ")}`);
  }

  // Node, through the `node` export condition, as ESM and as CommonJS.
  for (const [file, app, title] of [["node.mjs", "npm-app-node-esm", "From Node (import)"],
    ["node.cjs", "npm-app-node-cjs", "From Node (require)"]]) {
    let out;
    try {
      out = execFileSync(process.execPath, [file], { cwd: project, env: { ...process.env, ENDPOINT: collector.url }, encoding: "utf8", timeout: 30_000 });
    } catch (e) {
      check(`${app}: runs`, false, `${e.message}\n${e.stdout ?? ""}${e.stderr ?? ""}`);
      continue;
    }
    const got = (await events()).filter((e) => e.context?.app?.name === app);
    check(`${app}: delivered, and the collector has the event`,
      JSON.parse(out.trim().split("\n").pop()).delivered === 1 && got.length === 1 && got[0].event === "Song Played"
        && got[0].properties.title === title,
      `output ${out}, got ${JSON.stringify(got)}`);
  }
} catch (e) {
  check("the test ran", false, e.stack || String(e));
} finally {
  if (browser) await browser.close();
  for (const s of servers) s.close();
  if (collector) collector.child.kill();
  for (const c of children) c.kill();
}
console.log(`npm-app: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
