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
    builds[key] = glue.then(async (m) => {
      await m.default(wasmUrl ? { module_or_path: wasmUrl } : undefined);
      return m.Trailhound;
    });
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
