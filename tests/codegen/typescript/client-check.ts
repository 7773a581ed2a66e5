// The browser package's real Client satisfies the generated TrailhoundLike, so the
// generated tracker takes `await Trailhound.load(...)` as it is. Type-checked only;
// scripts/test-codegen.sh replaces @WASM_INDEX@ with the path of wasm/js/index.js.
import type { Client } from "@WASM_INDEX@";
import type { TrailhoundLike } from "./music-app-tracker.js";

export function asTrailhoundLike(client: Client): TrailhoundLike {
  return client;
}
