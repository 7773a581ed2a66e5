// The package's entry point: loads the wasm module once, then hands out clients.
// Everything else (validation, queue, batching, retries) is in Rust.
//
// Two builds of the module: without tracking plans (./trailhound_wasm.js, what a page that
// gives no `plan` loads) and with them (./plans/), about a seventh larger. Each is loaded
// once, the first time a client needs it.
const builds = {};

function build(plans, wasmUrl) {
  const key = plans ? "plans" : "lean";
  if (!builds[key]) {
    const glue = plans ? import("./plans/trailhound_wasm.js") : import("./trailhound_wasm.js");
    // Each .wasm is named here, relative to this file, in the `new URL("./…", import.meta.url)`
    // form that bundlers (Vite, webpack, Parcel) recognise and copy with the bundle. Left to
    // the glue, both builds would ask for `trailhound_wasm_bg.wasm` next to the bundle, and a
    // client with a plan would get the lean module.
    const url = wasmUrl || (plans ? new URL("./plans/trailhound_wasm_bg.wasm", import.meta.url)
      : new URL("./trailhound_wasm_bg.wasm", import.meta.url));
    builds[key] = glue.then(async (m) => {
      await m.default({ module_or_path: url });
      return withLocalIds(m.Trailhound);
    });
    // A module that failed to load (offline, a network error, a CDN hiccup) is not kept:
    // the next load() fetches it again instead of failing for the rest of the page's life.
    builds[key].catch(() => { delete builds[key]; });
  }
  return builds[key];
}

// track() makes its messageId here and hands it to the wasm, instead of decoding the one
// the wasm would make (a string returned by the wasm goes through TextDecoder: a fifth of
// a paced call's time, wasm/bench --profile). A UUID v4 from random bytes drawn 4 KiB at a
// time with crypto.getRandomValues, as the wasm draws its own: crypto.randomUUID() cost a
// paced call more than the decoding did (25 us against 19, cold). Without crypto the wasm
// makes the id, as before.
const HEX = Array.from({ length: 256 }, (_, b) => (b + 0x100).toString(16).slice(1));
let pool = null;
let at = 0;
function uuid() {
  if (pool === null || at + 16 > pool.length) {
    pool = globalThis.crypto.getRandomValues(new Uint8Array(4096));
    at = 0;
  }
  const b = pool;
  const i = at;
  at += 16;
  return HEX[b[i]] + HEX[b[i + 1]] + HEX[b[i + 2]] + HEX[b[i + 3]] + "-" + HEX[b[i + 4]]
    + HEX[b[i + 5]] + "-" + HEX[(b[i + 6] & 0x0f) | 0x40] + HEX[b[i + 7]] + "-"
    + HEX[(b[i + 8] & 0x3f) | 0x80] + HEX[b[i + 9]] + "-" + HEX[b[i + 10]] + HEX[b[i + 11]]
    + HEX[b[i + 12]] + HEX[b[i + 13]] + HEX[b[i + 14]] + HEX[b[i + 15]];
}
const withIds = new WeakSet();
function withLocalIds(Client) {
  const c = globalThis.crypto;
  if (c && typeof c.getRandomValues === "function" && !withIds.has(Client)) {
    withIds.add(Client);
    Client.prototype.track = function (event, properties) {
      const id = uuid();
      return this.trackWithId(id, event, properties) ? id : "";
    };
  }
  return Client;
}

export class Trailhound {
  /**
   * Opens the queue and starts delivery. See index.d.ts for the options.
   * `wasmUrl` overrides where the .wasm file is fetched from (default: next to this file;
   * with a `plan`, `plans/` next to it).
   */
  static async load(options) {
    const plans = options != null && (options.plan != null || options.planMode != null);
    const Client = await build(plans, options && options.wasmUrl);
    return Client.load(options);
  }
}
