// Smoke test of the nodejs build (wasm/pkg-node): the parts that need no browser —
// validation and its errors, stamping, plugins, opt-out, the NDJSON export, the memory
// fallback where there is no IndexedDB, one delivery to a loopback server, the endpoint
// rules, redirects (never followed), and tracking plans (Node's RegExp for patterns).
//   node wasm/tests/node-smoke.mjs     (after wasm/build.sh). Prints "node: N passed, N failed".
import { createRequire } from "node:module";
import { createServer } from "node:http";
import { gunzipSync } from "node:zlib";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const require = createRequire(import.meta.url);
const { Trailhound } = require("../pkg-node/index.cjs");

let passed = 0, failed = 0;
async function test(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok: ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAILED: ${name}: ${e.stack || e}`);
  }
}
function assert(cond, msg) { if (!cond) throw new Error(msg); }
function throws(fn, pattern) {
  try { fn(); } catch (e) {
    assert(e instanceof Error, `not an Error: ${e}`);
    assert(pattern.test(e.message), `message "${e.message}" does not match ${pattern}`);
    return;
  }
  throw new Error(`did not throw (expected ${pattern})`);
}

// A collector that records what it gets.
const got = [];
const server = createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    got.push({ auth: req.headers.authorization, encoding: req.headers["content-encoding"], body: JSON.parse(gunzipSync(Buffer.concat(chunks))) });
    res.writeHead(200).end("{}");
  });
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const endpoint = `http://127.0.0.1:${server.address().port}`;

const th = await Trailhound.load({ writeKey: "node-key", endpoint, policy: { flushAt: 1000, promptDelayMs: 600000 } });

await test("without IndexedDB the queue is in memory, and stats say why", () => {
  const s = th.stats();
  assert(s.storage === "memory", `storage ${s.storage}`);
  assert(/IndexedDB/.test(s.storageFallbackReason), `reason ${s.storageFallbackReason}`);
});

await test("load refuses missing or bad options", async () => {
  for (const [opts, re] of [[{ endpoint }, /writeKey is required/], [{ writeKey: "k" }, /endpoint is required/], [{ writeKey: "k", endpoint: "ftp://x" }, /must start with https/]]) {
    let err;
    try { await Trailhound.load(opts); } catch (e) { err = e; }
    assert(err && re.test(err.message), `${JSON.stringify(opts)}: ${err && err.message}`);
  }
});

// The core's endpoint rules, applied to what `new URL()` parsed, never to the string.
await test("endpoint rules: https anywhere, http only to loopback, no userinfo, query or fragment", async () => {
  const refused = [
    ["http://collector.example.com", /plain http/],
    ["http://localhost:1@evil.example", /user name or password/],
    ["http://127.0.0.1.evil.example", /plain http/],
    ["http://0x7f000001.evil.example", /plain http/],
    ["https://user:pass@collector.example.com", /user name or password/],
    ["https://collector.example.com/?k=v", /query/],
    ["https://collector.example.com/?", /query/],
    ["https://collector.example.com/#top", /fragment/],
    ["https://collector.example.com#", /fragment/],
    ["not a url", /not a URL/],
  ];
  for (const [ep, re] of refused) {
    let err;
    try { await Trailhound.load({ writeKey: "k", endpoint: ep, storage: "memory" }); } catch (e) { err = e; }
    assert(err instanceof Error && re.test(err.message), `${ep}: ${err && err.message}`);
    assert(err.message.includes("endpoint"), `${ep}: the message names the endpoint: ${err.message}`);
  }
  for (const ep of ["http://127.0.0.1:1", "http://0x7f000001:1", "http://localhost:1/", "http://[::1]:1", "http://127.1.2.3:1", "https://collector.example.com/prefix/"]) {
    const c = await Trailhound.load({ writeKey: "k", endpoint: ep, storage: "memory" });
    await c.close();
  }
});

await test("bad input throws a clear error", () => {
  throws(() => th.track("X", { n: 10n }), /properties\.n is a BigInt/);
  const cyc = {}; cyc.me = cyc;
  throws(() => th.track("X", cyc), /circular/);
  throws(() => th.track("X", { d: NaN }), /properties\.d is not a finite number/);
  throws(() => th.track("X", { f: () => 1 }), /properties\.f is a function/);
  throws(() => th.track("X", { s: "x".repeat(40000) }), /limit is 32768/);
  throws(() => th.track("", {}), /event name must not be empty/);
  throws(() => th.track("X", [1, 2]), /must be an object, got an array/);
  throws(() => th.group("", {}), /group id must not be empty/);
  throws(() => th.on("nope", () => {}), /unknown notification/);
  assert(th.stats().invalidCalls === 8, `invalidCalls ${th.stats().invalidCalls}`);
  assert(th.stats().accepted === 0, "nothing accepted");
});

// Tracking plans in Node: the same API, patterns compiled by Node's RegExp.
await test("a plan: report marks, enforce drops and counts, an invalid plan is refused", async () => {
  const plan = {
    plan: "node-smoke", version: "1-0-0",
    events: [{ type: "track", name: "Song Played", schema: { type: "object", required: ["song_id"],
      properties: { song_id: { type: "string", pattern: "^s-[0-9]+$" } }, additionalProperties: false } }],
  };
  const heard = [];
  const rep = await Trailhound.load({ writeKey: "k", endpoint: "http://127.0.0.1:1", storage: "memory", plan, policy: { flushAt: 1000, promptDelayMs: 600000 } });
  rep.on("plan_violation", (n) => heard.push(n));
  const id = rep.track("Song Played", { song_id: "x-1" });
  const [ev] = (await rep.exportQueue()).trim().split("\n").map((l) => JSON.parse(l));
  assert(ev.messageId === id, "the reported event is queued");
  const v = ev.context.plan.violations;
  assert(v.length === 1 && v[0].rule === "pattern" && v[0].pointer === "/properties/song_id", JSON.stringify(ev.context.plan));
  assert(heard.length === 1 && heard[0].action === "reported" && heard[0].violations[0].expected.length > 0, JSON.stringify(heard));
  await rep.close();
  const enf = await Trailhound.load({ writeKey: "k", endpoint: "http://127.0.0.1:1", storage: "memory", plan: JSON.stringify(plan), planMode: "enforce" });
  assert(enf.track("Song Played", { song_id: 7 }) === "", "dropped");
  assert(enf.track("Song Played", { song_id: "s-7" }) !== "", "kept");
  const s = enf.stats();
  assert(s.dropped.plan_violation === 1, JSON.stringify(s.dropped));
  const c = s.plan_violations;
  assert(c.length === 1 && c[0].event === "Song Played" && c[0].rule === "type" && c[0].count === 1, JSON.stringify(c));
  await enf.close();
  let err;
  // A typo in a keyword would check nothing: refused, with its place (what only lint
  // refuses, such as minimum > maximum, is `trailhound plan lint`'s, in CI).
  const typo = JSON.parse(JSON.stringify(plan));
  typo.events[0].schema.properties.song_id.patern = "^s-";
  try { await Trailhound.load({ writeKey: "k", endpoint: "http://127.0.0.1:1", storage: "memory", plan: typo }); } catch (e) { err = e; }
  assert(err instanceof Error && err.message.startsWith("plan error at /events/0/schema/properties/song_id/patern"), err && err.message);
});

await test("calls are stamped in the Segment format and exported as NDJSON", async () => {
  th.identify("user-1", { plan: "pro" });
  const id = th.track("Song Played", { title: "Clair de lune", seconds: 300 });
  th.screen("Home", {});
  th.group("g-1", { name: "Team" });
  th.alias("user-2");
  const lines = (await th.exportQueue()).trim().split("\n").map((l) => JSON.parse(l));
  assert(lines.length === 5, `${lines.length} lines`);
  const track = lines[1];
  assert(track.messageId === id && track.type === "track" && track.event === "Song Played", JSON.stringify(track));
  assert(track.userId === "user-1" && track.anonymousId === th.anonymousId, "identity stamped");
  assert(track.context.library.name === "trailhound", "context.library");
  assert(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/.test(track.timestamp), track.timestamp);
  assert(lines[4].type === "alias" && lines[4].previousId === "user-1" && lines[4].userId === "user-2", JSON.stringify(lines[4]));
  assert(th.userId === "user-2", "alias changes the user id");
});

// TRAILHOUND_CLI=path/to/trailhound: the native CLI must import the export as is.
if (process.env.TRAILHOUND_CLI) {
  await test("trailhound queue import accepts exportQueue()'s NDJSON", async () => {
    const dir = mkdtempSync(join(tmpdir(), "th-import-"));
    try {
      const file = join(dir, "export.ndjson");
      writeFileSync(file, await th.exportQueue());
      const out = execFileSync(process.env.TRAILHOUND_CLI, ["queue", "import", "--into", join(dir, "q"), file], { encoding: "utf8" });
      assert(/imported 5 events/.test(out), out);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

// The browser's export is what `trailhound plan check` reads in CI: the same validator
// there must give each exported event the verdict the package marked it with.
if (process.env.TRAILHOUND_CLI) {
  await test("trailhound plan check gives exportQueue()'s events the package's verdicts", async () => {
    const dir = mkdtempSync(join(tmpdir(), "th-plan-"));
    const plan = {
      plan: "node-check", version: "1-0-0", naming: { properties: "snake_case" },
      events: [{ type: "track", name: "Song Played", schema: { type: "object", required: ["song_id"],
        properties: { song_id: { type: "string", pattern: "^s-[0-9]+$" }, rating: { type: "integer", minimum: 1, maximum: 5 } },
        additionalProperties: false } }],
    };
    const th2 = await Trailhound.load({ writeKey: "k", endpoint: "http://127.0.0.1:1", storage: "memory", plan, policy: { flushAt: 1000, promptDelayMs: 600000 } });
    try {
      th2.track("Song Played", { song_id: "s-1", rating: 5 });
      th2.track("Song Played", { song_id: "x", rating: 9, Extra: true });
      th2.track("Unknown", {});
      th2.screen("Home", {});
      const exported = await th2.exportQueue();
      const file = join(dir, "export.ndjson");
      const planFile = join(dir, "plan.json");
      writeFileSync(file, exported);
      writeFileSync(planFile, JSON.stringify(plan));
      let out;
      try {
        execFileSync(process.env.TRAILHOUND_CLI, ["plan", "check", "--json", planFile, file], { encoding: "utf8" });
        throw new Error("plan check passed events that break the plan");
      } catch (e) {
        if (e.status !== 1) throw e;
        out = JSON.parse(e.stdout);
      }
      const pairs = (vs) => vs.map((v) => `${v.rule} ${v.pointer}`).sort().join(", ");
      const events = exported.trim().split("\n").map((l) => JSON.parse(l));
      assert(events.length === 4 && out.events === 4, `${events.length} exported, ${out.events} checked`);
      let marked = 0;
      for (const ev of events) {
        const line = out.lines.find((l) => l.messageId === ev.messageId);
        const device = ev.context.plan ? pairs(ev.context.plan.violations) : "";
        const cli = line ? pairs(line.violations) : "";
        assert(device === cli, `${ev.messageId}: package [${device}] vs plan check [${cli}]`);
        if (device) marked += 1;
      }
      assert(marked === 3 && out.failed === 3, `${marked} marked, ${out.failed} failed`);
    } finally {
      await th2.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

await test("plugins can change and drop events", async () => {
  const dropped = [];
  th.on("dropped", (n) => dropped.push(n));
  th.addPlugin((m) => (m.event === "Secret" ? null : { ...m, properties: { ...m.properties, scrubbed: true } }));
  assert(th.track("Secret", {}) === "", "dropped by the plugin");
  th.track("Public", { a: 1 });
  const last = JSON.parse((await th.exportQueue()).trim().split("\n").pop());
  assert(last.event === "Public" && last.properties.scrubbed === true, JSON.stringify(last));
  assert(dropped.length === 1 && dropped[0].reason === "plugin", JSON.stringify(dropped));
});

await test("flush delivers one gzip batch with Basic auth", async () => {
  const delivered = [];
  th.on("delivered", (n) => delivered.push(...n.message_ids));
  const stats = await th.flush(5000);
  assert(stats.delivered === 6 && stats.queued_events === 0, JSON.stringify(stats));
  assert(got.length === 1, `${got.length} requests`);
  assert(got[0].auth === "Basic " + Buffer.from("node-key:").toString("base64"), got[0].auth);
  assert(got[0].encoding === "gzip", "gzip");
  assert(got[0].body.batch.length === 6 && typeof got[0].body.sentAt === "string", "batch");
  assert(delivered.length === 6, `listener heard ${delivered.length}`);
});

await test("opt-out purges and ignores calls; opt-in resumes", async () => {
  th.track("Queued", {});
  th.optOut();
  assert(th.isOptedOut(), "opted out");
  assert(th.track("Ignored", {}) === "", "ignored while opted out");
  assert((await th.exportQueue()) === "", "queue purged");
  th.optIn();
  th.track("Back", {});
  assert((await th.exportQueue()).includes('"event":"Back"'), "collecting again");
});

await test("reset makes a new anonymous id and forgets the user", () => {
  const before = th.anonymousId;
  th.reset();
  assert(th.anonymousId !== before && th.userId === undefined, "reset");
});

// A collector behind a redirect: the upload must not follow it to the collector, and
// the events stay queued (uploads pause), for 301, 307 and 308 alike.
await test("uploads never follow a redirect (301, 307, 308)", async () => {
  for (const status of [301, 307, 308]) {
    const before = got.length;
    const redirector = createServer((req, res) => {
      req.resume();
      req.on("end", () => res.writeHead(status, { Location: `${endpoint}/v1/batch` }).end());
    });
    await new Promise((r) => redirector.listen(0, "127.0.0.1", r));
    const c = await Trailhound.load({ writeKey: "k", endpoint: `http://127.0.0.1:${redirector.address().port}`, storage: "memory" });
    const heard = [];
    c.on("*", (n) => heard.push(n));
    c.track("Redirected", {});
    const stats = await c.flush(5000);
    await c.close();
    redirector.close();
    assert(got.length === before, `${status}: the collector behind the redirect got ${got.length - before} request(s)`);
    assert(stats.delivered === 0 && stats.queued_events === 1, `${status}: ${JSON.stringify(stats)}`);
    const paused = heard.find((n) => n.kind === "paused");
    assert(paused && paused.status === status, `${status}: heard ${JSON.stringify(heard)}`);
  }
});

await th.close();
server.close();
console.log(`node: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
