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
      return m.Trailhound;
    });
    // A module that failed to load (offline, a network error, a CDN hiccup) is not kept:
    // the next load() fetches it again instead of failing for the rest of the page's life.
    builds[key].catch(() => { delete builds[key]; });
  }
  return builds[key];
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
