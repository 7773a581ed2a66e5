// The browser package's real Client satisfies the generated TrailhoundLike, so the
// generated tracker takes `await Trailhound.load(...)` as it is. Type-checked only.
import type { Client } from "../../../../wasm/js/index.js";
import type { TrailhoundLike } from "./music-app-tracker.js";

export function asTrailhoundLike(client: Client): TrailhoundLike {
  return client;
}
