// The benchmark page's module, driven by run.mjs. `?sdk=trailhound` loads the package from
// /pkg/ (a dynamic import, the way a site loads a tag after its own code) and waits for
// `Trailhound.load`; `?sdk=none` is the baseline: the same page, `track` a no-op that only
// receives the properties the caller built. `&db=NAME` picks the IndexedDB queue.
const params = new URLSearchParams(location.search);
const sdk = params.get("sdk") || "none";
bench.moduleStart = performance.now();

let client;
if (sdk === "trailhound") {
  const { Trailhound } = await import("/pkg/index.js");
  bench.imported = performance.now();
  if (params.has("split")) {
    // Where the time goes: the module's instantiation first (the wasm-bindgen init that
    // Trailhound.load would run; it runs once), then the client's own load. Skipped if the
    // package's layout has changed.
    try {
      await (await import("/pkg/trailhound_wasm.js")).default();
      bench.initialised = performance.now();
    } catch {}
  }
  client = await Trailhound.load({
    writeKey: "bench-write-key",
    endpoint: location.origin,
    dbName: params.get("db") || "trailhound",
  });
} else {
  // Kept in a global so that the engine cannot drop the object the caller built.
  client = { track(event, properties) { bench.sink = properties; return ""; }, stats: () => null };
}
bench.ready = performance.now();
bench.sdk = sdk;
window.client = client;
document.getElementById("status").textContent = `ready (${sdk})`;

const epoch = (t) => performance.timeOrigin + t;

// The five properties of a "Product Viewed" event, built at every call as a page would.
const props = (i) => ({
  product_id: `sku-${i % 97}`,
  name: "Trailhound Trail Runner",
  price: 129.99,
  currency: "EUR",
  position: i,
});

// `n` calls in one synchronous loop, each timed; and the whole loop, whose mean per call
// also carries the two performance.now() calls of each iteration (the baseline has them too).
bench.burst = (n) => {
  const times = new Float64Array(n);
  const ids = new Array(n);
  const start = performance.now();
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    ids[i] = client.track("Product Viewed", props(i));
    times[i] = performance.now() - t0;
  }
  const end = performance.now();
  return { start, end, startEpoch: epoch(start), loopMs: end - start, times: Array.from(times), ids };
};

// `n` calls, one every `everyMs` (setInterval), each timed.
bench.paced = (n, everyMs) => new Promise((resolve) => {
  const times = new Float64Array(n);
  const ids = new Array(n);
  let i = 0;
  let first = 0;
  const h = setInterval(() => {
    const t0 = performance.now();
    if (i === 0) first = t0;
    ids[i] = client.track("Product Viewed", props(i));
    times[i] = performance.now() - t0;
    i++;
    if (i === n) {
      clearInterval(h);
      const end = performance.now();
      resolve({ start: first, end, startEpoch: epoch(first), lastEpoch: epoch(t0), times: Array.from(times), ids });
    }
  }, everyMs);
});

// A diagnostic (run.mjs --profile): `n` ticks at `everyMs`, two calls per tick, each timed:
// whether a paced call costs more than a burst's because it is the first of its task.
bench.pacedPairs = (n, everyMs) => new Promise((resolve) => {
  const first = [], second = [];
  let i = 0;
  const h = setInterval(() => {
    const t0 = performance.now();
    client.track("Product Viewed", props(i));
    const t1 = performance.now();
    client.track("Product Viewed", props(i + 1));
    second.push(performance.now() - t1);
    first.push(t1 - t0);
    if (++i === n) { clearInterval(h); resolve({ first, second }); }
  }, everyMs);
});

// The smallest step performance.now() takes here (5 µs when cross-origin isolated in
// Chromium, 100 µs otherwise), from 2,000 consecutive changes.
bench.resolution = () => {
  const steps = [];
  let last = performance.now();
  const giveUp = last + 2000;
  while (steps.length < 2000) {
    const t = performance.now();
    if (t !== last) { steps.push(t - last); last = t; }
    if (t > giveUp) break;
  }
  steps.sort((a, b) => a - b);
  return { min: steps[0], median: steps[steps.length >> 1], crossOriginIsolated: globalThis.crossOriginIsolated === true };
};

// `count` events at once (the reload scenarios); returns their messageIds.
bench.trackMany = (count, tag) => {
  const ids = [];
  for (let i = 0; i < count; i++) ids.push(client.track("Product Viewed", { ...props(i), scenario: tag }));
  return ids;
};

// What the driver reads after a load: the times, and how the resources came.
bench.loadInfo = () => ({
  sdk,
  navToReady: bench.ready,
  scriptToReady: bench.ready - bench.scriptStart,
  moduleToReady: bench.ready - bench.moduleStart,
  split: bench.initialised === undefined ? null : {
    import: bench.imported - bench.moduleStart,
    init: bench.initialised - bench.imported,
    load: bench.ready - bench.initialised,
  },
  // Navigation start to: the request (fetchStart), the response's end, the first script.
  navigation: (({ fetchStart, responseEnd }) => ({ fetchStart, responseEnd, scriptStart: bench.scriptStart }))(
    performance.getEntriesByType("navigation")[0]),
  resources: performance.getEntriesByType("resource").map((r) => ({
    name: new URL(r.name).pathname,
    transferSize: r.transferSize,
    decodedBodySize: r.decodedBodySize,
    duration: r.duration,
  })),
});

bench.setReady(true);
