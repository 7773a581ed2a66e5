// The package's entry point: loads the wasm module once, then hands out clients.
// Everything else (validation, queue, batching, retries) is in Rust.
import init, { Trailhound as Client } from "./trailhound_wasm.js";

let ready;

export class Trailhound {
  /**
   * Opens the queue and starts delivery. See index.d.ts for the options.
   * `wasmUrl` overrides where the .wasm file is fetched from (default: next to this file).
   */
  static async load(options) {
    if (!ready) {
      const url = options && options.wasmUrl;
      ready = init(url ? { module_or_path: url } : undefined);
    }
    await ready;
    return Client.load(options);
  }
}

export { Client };
