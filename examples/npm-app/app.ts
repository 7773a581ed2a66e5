// The quickstart as a bundled app (esbuild or Vite): load, track, flush. The query string
// says where to send (`endpoint`, `writeKey`), the app's name, and whether the client is
// given a tracking plan (`plan=1`: enforced, so the event that breaks it is dropped).
import { Trailhound, type LoadOptions, type PlanFile, type Stats } from "trailhound";

const plan: PlanFile = {
  plan: "npm-app",
  version: "1-0-0",
  allowUnplannedEvents: false,
  events: [{
    type: "track",
    name: "Song Played",
    schema: {
      type: "object",
      required: ["title"],
      properties: { title: { type: "string" }, seconds: { type: "integer", minimum: 0 } },
      additionalProperties: false,
    },
  }],
};

declare global {
  interface Window {
    result?: { ids: string[]; stats: Stats; wasm: { url: string; bytes: number }[] };
    error?: string;
  }
}

async function main(): Promise<void> {
  const q = new URLSearchParams(location.search);
  const options: LoadOptions = {
    writeKey: q.get("writeKey") ?? "",
    endpoint: q.get("endpoint") ?? "",
    app: { name: q.get("app") ?? "npm-app" },
  };
  if (q.get("plan") === "1") {
    options.plan = plan;
    options.planMode = "enforce";
  }
  const th = await Trailhound.load(options);
  const ids = [
    th.track("Song Played", { title: "Clair de lune", seconds: 300 }),
    th.track("Song Played", { seconds: -1 }), // breaks the plan: no title, below the minimum
  ];
  const stats = await th.flush(10_000);
  const wasm = performance.getEntriesByType("resource")
    .filter((e) => e.name.endsWith(".wasm"))
    .map((e) => ({ url: e.name, bytes: (e as PerformanceResourceTiming).decodedBodySize }));
  window.result = { ids, stats, wasm };
}

main().catch((e: unknown) => {
  window.error = String(e instanceof Error ? e.stack ?? e.message : e);
});
