// Faults in real Chromium pages (playwright-core), against the real `trailhound collect`:
// - an endpoint that redirects (301, 307, 308) to the collector: nothing may follow it;
// - two tabs of one site (two pages in one browser context, sharing IndexedDB): an opt-out
//   or a reset in one must not be undone by the other tab's state save.
//
//   node examples/web/faults.test.mjs     (after wasm/build.sh and scripts/test-wasm.sh's npm install)
// TRAILHOUND_COLLECTOR=path/to/trailhound (default target/debug/trailhound).
// Prints "faults: N passed, N failed".
import { createServer } from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { check, chromium, chromiumOptions, finish, sleep, startServers, stopChildren, until } from "./harness.mjs";

// A misconfigured endpoint: answers every batch with `status` and a Location pointing at
// the real collector (with the CORS headers a browser needs to show it to the page).
async function redirector(status, target) {
  const hits = [];
  const server = createServer((req, res) => {
    const cors = {
      "Access-Control-Allow-Origin": req.headers.origin || "*",
      "Access-Control-Allow-Headers": "Authorization, Content-Type, Content-Encoding",
      "Access-Control-Allow-Methods": "POST, OPTIONS",
    };
    req.resume();
    req.on("end", () => {
      if (req.method === "OPTIONS") return void res.writeHead(204, cors).end();
      hits.push(req.method);
      res.writeHead(status, { ...cors, Location: `${target}/v1/batch` }).end();
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${server.address().port}`, hits, close: () => server.close() };
}

const dataDir = mkdtempSync(join(tmpdir(), "th-faults-"));
let browser;
try {
  const { collector, site, events } = await startServers(dataDir);
  browser = await chromium.launch(chromiumOptions);
  const pageUrl = (endpoint, key) => `${site}/?endpoint=${encodeURIComponent(endpoint)}&writeKey=${key}`;
  const open = async (context, url) => {
    const page = await context.newPage();
    page.on("pageerror", (e) => console.log("page error:", e.message));
    await page.goto(url);
    await page.waitForFunction(() => window.thReady === true);
    return page;
  };
  const reload = async (page) => {
    await page.reload();
    await page.waitForFunction(() => window.thReady === true);
  };

  // 1. Redirects: the events stay queued in the page, uploads pause, and nothing reaches
  //    the collector the redirect points at (not even on page hide).
  for (const status of [301, 307, 308]) {
    const r = await redirector(status, collector);
    const key = `redirect-${status}`;
    const context = await browser.newContext();
    const page = await open(context, pageUrl(r.url, key));
    const result = await page.evaluate(async () => {
      const heard = [];
      window.th.on("*", (n) => heard.push(n));
      window.th.track("Redirected", { n: 1 });
      const stats = await window.th.flush(5000);
      return { heard, stats };
    });
    const paused = result.heard.find((n) => n.kind === "paused");
    check(`${status}: the upload was answered by the redirect, not followed`, r.hits.length >= 1 && paused && paused.status === 300,
      `hits ${r.hits.length}, heard ${JSON.stringify(result.heard)}`);
    check(`${status}: the events stay queued, not delivered or dropped`,
      result.stats.delivered === 0 && result.stats.queued_events === 2 && Object.values(result.stats.dropped).every((n) => n === 0),
      JSON.stringify(result.stats));
    await page.close({ runBeforeUnload: true });
    await context.close();
    r.close();
  }
  // The page hide's keepalive requests went out synchronously with the close; give them
  // time to arrive, were they to follow the redirect.
  await sleep(1000);
  const leaked = (await events()).filter((e) => e.name === "Redirected" || e.name === "Player");
  check("nothing reached the collector behind the redirects", leaked.length === 0, JSON.stringify(leaked));

  // 2. Two tabs, opt-out: A opts out; B (the uploader) then identifies and tracks, saving
  //    its state. After both reload, both are opted out and nothing B tracked was sent.
  {
    const context = await browser.newContext();
    const url = pageUrl(collector, "tabs-optout");
    const b = await open(context, url);
    const a = await open(context, url);
    await a.evaluate(async () => { window.th.optOut(); await window.th.flush(1000); });
    await b.evaluate(async () => {
      window.th.identify("user-9", { plan: "pro" });
      window.th.track("After Opt Out", {});
      window.th.track("After Opt Out", {});
      await window.th.flush(2000);
    });
    await reload(b);
    await reload(a);
    const opted = await Promise.all([a, b].map((p) => p.evaluate(() => window.th.isOptedOut())));
    check("opt-out in tab A holds in both tabs after B's save and a reload", opted.every(Boolean), JSON.stringify(opted));
    const queued = await b.evaluate(() => window.th.exportQueue());
    check("tab B's queue was purged", queued === "", queued);
    // A marker from A after opting in again: once it arrives, anything B sent earlier has too.
    await a.evaluate(async () => { window.th.optIn(); window.th.track("Marker", {}); await window.th.flush(3000); });
    await until("the marker", 10_000, async () => (await events()).some((e) => e.name === "Marker"));
    // B's identify may have been accepted before B heard of the opt-out (its identity then
    // keeps user-9, which A's marker carries), but its event, like B's tracks, never leaves.
    const sent = (await events()).filter((e) => e.name === "After Opt Out" || e.type === "identify");
    check("nothing tab B tracked after the opt-out was sent", sent.length === 0,
      JSON.stringify(sent.map((e) => ({ type: e.type, name: e.name, userId: e.userId, id: e.id, receivedAt: e.receivedAt }))));
    await context.close();
  }

  // 3. Two tabs, reset: A resets (a new anonymous id); B identifies and saves. After both
  //    reload, both have A's new id.
  {
    const context = await browser.newContext();
    const url = pageUrl(collector, "tabs-reset");
    const b = await open(context, url);
    const a = await open(context, url);
    await until("one anonymous id for both tabs", 5_000, async () =>
      (await a.evaluate(() => window.th.anonymousId)) === (await b.evaluate(() => window.th.anonymousId)));
    const old = await a.evaluate(() => window.th.anonymousId);
    const fresh = await a.evaluate(async () => { window.th.reset(); await window.th.flush(1000); return window.th.anonymousId; });
    await b.evaluate(async () => { window.th.identify("user-10", {}); await window.th.flush(2000); });
    await reload(b);
    await reload(a);
    const ids = await Promise.all([a, b].map((p) => p.evaluate(() => window.th.anonymousId)));
    check("reset in tab A holds in both tabs after B's save and a reload", fresh !== old && ids.every((id) => id === fresh),
      `old ${old}, new ${fresh}, after reload ${JSON.stringify(ids)}`);
    await context.close();
  }

  // 4. Two builds: a page that gives no plan loads only the build without tracking plans; a
  //    client given a plan loads the build with them (plans/), which applies it.
  {
    const context = await browser.newContext();
    const wasm = [];
    context.on("request", (r) => { if (r.url().endsWith(".wasm")) wasm.push(new URL(r.url()).pathname); });
    const page = await open(context, pageUrl(collector, "builds"));
    check("a page without a plan loads the build without plans", JSON.stringify(wasm) === JSON.stringify(["/pkg/trailhound_wasm_bg.wasm"]),
      JSON.stringify(wasm));
    const got = await page.evaluate(async (endpoint) => {
      const { Trailhound } = await import("/pkg/index.js");
      const plan = {
        plan: "faults", version: "1-0-0",
        events: [{ type: "track", name: "Song Played", schema: { type: "object", required: ["title"] } }],
      };
      const th = await Trailhound.load({ writeKey: "builds-plan", endpoint, storage: "memory", plan, planMode: "enforce" });
      const kept = th.track("Song Played", { title: "Clair de lune" });
      const dropped = th.track("Song Played", { seconds: 3 });
      const stats = th.stats();
      await th.close();
      return { kept, dropped, violations: stats.plan_violations.length, planDropped: stats.dropped.plan_violation };
    }, collector);
    check("a client given a plan loads the build with plans, which enforces it",
      wasm.includes("/pkg/plans/trailhound_wasm_bg.wasm") && got.kept !== "" && got.dropped === "" && got.violations > 0 && got.planDropped === 1,
      `${JSON.stringify(wasm)} ${JSON.stringify(got)}`);
    await context.close();
  }

  // 5. A build whose .wasm failed to load (a network error) is fetched again by the next
  //    load(): the failure is not kept for the rest of the page's life.
  {
    const context = await browser.newContext();
    const page = await open(context, pageUrl(collector, "retry-load"));
    const wasm = "**/pkg/plans/trailhound_wasm_bg.wasm";
    let aborted = 0;
    await context.route(wasm, (route) => { aborted += 1; return route.abort("internetdisconnected"); });
    const plan = {
      plan: "faults", version: "1-0-0",
      events: [{ type: "track", name: "Song Played", schema: { type: "object", required: ["title"] } }],
    };
    const load = ({ endpoint, plan }) => import("/pkg/index.js").then(({ Trailhound }) =>
      Trailhound.load({ writeKey: "retry-load", endpoint, storage: "memory", plan })
        .then(async (th) => {
          const id = th.track("Song Played", { title: "Gymnopédie" });
          await th.flush();
          await th.close();
          return `tracked ${id}`;
        }, (e) => `refused: ${e.message || e}`));
    const first = await page.evaluate(load, { endpoint: collector, plan });
    await context.unroute(wasm);
    const second = await page.evaluate(load, { endpoint: collector, plan });
    check("a build whose .wasm failed to load is fetched again by the next load()",
      first.startsWith("refused") && aborted === 1 && second.startsWith("tracked ") && second.length > 20,
      `first: ${first}; second: ${second}; aborted ${aborted}`);
    await context.close();
  }
} catch (e) {
  check("faults run", false, e.stack || String(e));
} finally {
  if (browser) await browser.close().catch(() => {});
  stopChildren();
  rmSync(dataDir, { recursive: true, force: true });
}
finish("faults");
