// End-to-end: the example page in Debian's Chromium (driven by playwright-core), sending to
// a loopback collector. Clicks buttons, goes offline, reloads, comes back online and closes
// the page, then checks that the collector received every event exactly once.
//
//   node examples/web/e2e.test.mjs      (after wasm/build.sh and scripts/test-wasm.sh's npm install)
// The collector is the real `trailhound collect`: TRAILHOUND_COLLECTOR=path/to/trailhound, or
// target/debug/trailhound (`cargo build -p trailhound-cli`). Prints "e2e: N passed, N failed".
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { check, chromium, chromiumOptions, finish, sleep, startServers, stopChildren, until } from "./harness.mjs";

const dataDir = mkdtempSync(join(tmpdir(), "th-e2e-"));
let context;
try {
  const { collectorBin, collector, site, events } = await startServers(dataDir);
  console.log(`collector: ${collectorBin} at ${collector}`);

  context = await chromium.launchPersistentContext(join(dataDir, "profile"), chromiumOptions);
  const url = `${site}/?endpoint=${encodeURIComponent(collector)}&writeKey=e2e-key`;
  const expected = new Map(); // "type name" -> count
  const expect = (key, n = 1) => expected.set(key, (expected.get(key) ?? 0) + n);
  const names = { play: "Song Played", pause: "Song Paused", skip: "Song Skipped", like: "Song Liked" };
  // A page of our own, as faults.test.mjs and blocked.test.mjs do: the persistent context's
  // initial tab can be closed under us while Chromium starts (one run of the test command
  // failed its first goto with "Target page, context or browser has been closed").
  let page = await context.newPage();
  page.on("pageerror", (e) => console.log("page error:", e.message));
  const open = async () => {
    await page.goto(url);
    await page.waitForFunction(() => window.thReady === true);
    expect("page Player");
  };
  const click = async (...ids) => {
    for (const id of ids) {
      await page.click(`#${id}`);
      expect(`track ${names[id]}`);
    }
  };
  const total = () => [...expected.values()].reduce((a, b) => a + b, 0);

  // 1. Online: events arrive.
  await open();
  await click("play", "pause", "skip", "like");
  await page.evaluate(() => window.th.flush());
  await until("the first events", 10_000, async () => (await events()).length === total());
  check("online events delivered", true);
  // The messageId track() returns (made by index.js from crypto.getRandomValues) is the one sent.
  const returned = await page.evaluate(() => window.th.track("Song Shared", { via: "e2e" }));
  expect("track Song Shared");
  await page.evaluate(() => window.th.flush());
  await until("the shared event", 10_000, async () => (await events()).length === total());
  const shared = (await events()).find((e) => e.name === "Song Shared");
  check("track() returns the messageId sent", shared?.messageId === returned
    && /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(returned),
    `returned ${returned}, sent ${shared?.messageId}`);

  // 2. Offline: events wait in IndexedDB; nothing reaches the collector.
  await context.setOffline(true);
  await click("like", "skip", "play");
  await page.evaluate(() => window.th.flush(1000));
  await sleep(500);
  const whileOffline = (await events()).length;
  check("nothing sent while offline", whileOffline === total() - 3, `${whileOffline} of ${total()}`);
  const queued = await page.evaluate(() => window.th.stats().queued_events);
  check("offline events queued", queued === 3, `queued ${queued}`);

  // 3. Reload while the collector is still unreachable (the page itself loads), and go on
  // clicking: the queue survives the reload. An unreachable host fails after a while (a
  // connect timeout); one that fails at once while the page's own origin answers would be
  // taken as blocked by an ad blocker (blocked.test.mjs), and left alone for backoffMaxMs.
  await page.route(`${collector}/**`, (route) =>
    setTimeout(() => route.abort("internetdisconnected").catch(() => {}), 500));
  await context.setOffline(false);
  await page.reload();
  await page.waitForFunction(() => window.thReady === true);
  expect("page Player");
  await click("pause", "like");
  await page.evaluate(() => window.th.flush(1000));
  const afterReload = await page.evaluate(() => window.th.stats());
  check("queue survived the reload", afterReload.queued_events >= 6, JSON.stringify(afterReload));

  // 4. Back online: everything goes out, once.
  await page.unroute(`${collector}/**`);
  await context.setOffline(true);
  await context.setOffline(false);
  await until("delivery after coming back online", 15_000, async () => (await events()).length === total());
  check("delivered after coming back online", true);

  // 5. A click right before the page is closed: sent on page hide.
  await click("skip");
  await page.close({ runBeforeUnload: true });
  await until("the event sent as the page closed", 10_000, async () => (await events()).length >= total())
    .then(() => check("event tracked just before close delivered", true))
    .catch((e) => check("event tracked just before close delivered", false, e.message));

  // Every event exactly once: no messageId twice, and per name as many as clicked.
  const got = await events();
  const ids = new Set(got.map((e) => e.messageId));
  check("no messageId twice", ids.size === got.length, `${got.length} events, ${ids.size} ids`);
  check("every event valid", got.every((e) => e.valid !== false), JSON.stringify(got.filter((e) => e.valid === false)));
  const counts = new Map();
  for (const e of got) counts.set(`${e.type} ${e.name}`, (counts.get(`${e.type} ${e.name}`) ?? 0) + 1);
  const same = [...expected].every(([k, n]) => counts.get(k) === n) && counts.size === expected.size;
  check("the collector has exactly the events clicked", same,
    `expected ${JSON.stringify([...expected])}, got ${JSON.stringify([...counts])}`);
  const stats = await (await fetch(`${collector}/api/stats`)).json();
  console.log(`collector stats: ${JSON.stringify(stats)}`);
  // Not even a copy the collector deduplicated: the reload in step 3 leaves what the old page
  // committed to the new one, instead of also sending it in the old page's keepalive request.
  check("nothing sent twice", stats.duplicates === 0, `${stats.duplicates} duplicates`);
} catch (e) {
  check("e2e run", false, e.stack || String(e));
} finally {
  if (context) await context.close().catch(() => {});
  stopChildren();
  rmSync(dataDir, { recursive: true, force: true });
}
finish("e2e");
