// What the browser tests (e2e.test.mjs, faults.test.mjs, blocked.test.mjs) share: playwright-core's
// Chromium, the real `trailhound collect` and the example site as child processes, a
// bounded wait, and the pass/fail count each test prints at the end.
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const here = fileURLToPath(new URL(".", import.meta.url));
const require = createRequire(join(here, "..", "..", "wasm", "tools", "package.json"));
export const { chromium } = require("playwright-core");

// Headless Debian Chromium (CHROMIUM overrides the path), without background traffic.
export const chromiumOptions = {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
};

const children = [];
// Starts `cmd args` and resolves to the URL on its first stdout line matching
// "`pattern` http://...", within 60 s.
export function start(cmd, args, pattern) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "inherit"] });
    children.push(child);
    let out = "";
    const timer = setTimeout(() => reject(new Error(`${cmd}: no "${pattern}" line in 60 s`)), 60_000);
    child.stdout.on("data", (d) => {
      out += d;
      const m = out.match(new RegExp(pattern + " (http://\\S+)"));
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    child.on("exit", (code) => reject(new Error(`${cmd} exited with ${code}`)));
  });
}

// Kills every child process `start` began.
export function stopChildren() {
  for (const c of children) c.kill();
}

// The collector (TRAILHOUND_COLLECTOR, default target/debug/trailhound) with its database
// in `dataDir`, and the example site; `events()` reads what the collector stored.
export async function startServers(dataDir) {
  const collectorBin = process.env.TRAILHOUND_COLLECTOR || join(here, "../../target/debug/trailhound");
  const collector = await start(collectorBin, ["collect", "--listen", "127.0.0.1:0", "--db", join(dataDir, "collect.db")], "trailhound collect: listening on");
  const site = await start(process.execPath, [join(here, "serve.mjs"), "0"], "serving on");
  const events = async () => (await (await fetch(`${collector}/api/events?limit=10000`)).json()).events;
  return { collectorBin, collector, site, events };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls `fn` every 100 ms until it returns something truthy (returned), at most `ms`.
export async function until(what, ms, fn) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

let passed = 0, failed = 0;
// Counts and prints one check.
export function check(name, ok, detail = "") {
  if (ok) passed++; else failed++;
  console.log(`${ok ? "ok" : "FAILED"}: ${name}${ok ? "" : " " + detail}`);
}

// Prints "`suite`: N passed, N failed" (what scripts/test-wasm.sh reads) and exits.
export function finish(suite) {
  console.log(`${suite}: ${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}
