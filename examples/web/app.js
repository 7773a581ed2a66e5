// The example page: a music player mock that tracks what the listener does.
// Query parameters: ?endpoint=http://127.0.0.1:PORT (the collector), &writeKey=…,
// &fallback=URL (repeatable: fallback endpoints, in order), &policy={JSON} (policy options).
import { Trailhound } from "./pkg/index.js";

const SONGS = [
  { title: "Eine kleine Nachtmusik", artist: "Mozart", seconds: 1080 },
  { title: "Clair de lune", artist: "Debussy", seconds: 300 },
  { title: "Gymnopédie No. 1", artist: "Satie", seconds: 190 },
];

const params = new URLSearchParams(location.search);
const th = await Trailhound.load({
  writeKey: params.get("writeKey") || "demo-write-key",
  endpoint: params.get("endpoint") || "http://127.0.0.1:8787",
  fallbackEndpoints: params.getAll("fallback"),
  app: { name: "Trailhound Player", version: "1.0.0", build: "1", namespace: "example.player" },
  // A demo wants to see events arrive quickly; the defaults batch more.
  policy: { flushAt: 5, promptDelayMs: 2000, ...JSON.parse(params.get("policy") || "{}") },
});
window.th = th;
// Every notification, for the page tests (blocked.test.mjs).
window.thHeard = [];
th.on("*", (n) => window.thHeard.push(n));

let song = 0;
let position = 0;
const $ = (id) => document.getElementById(id);
const current = () => ({ ...SONGS[song], position });
function show() {
  $("title").textContent = SONGS[song].title;
  $("artist").textContent = SONGS[song].artist;
}

$("play").onclick = () => th.track("Song Played", current());
$("pause").onclick = () => { position += 17; th.track("Song Paused", current()); };
$("skip").onclick = () => {
  const from = current();
  song = (song + 1) % SONGS.length;
  position = 0;
  show();
  th.track("Song Skipped", { from: from.title, to: SONGS[song].title, position: from.position });
};
$("like").onclick = () => th.track("Song Liked", current());

th.on("delivered", (n) => { $("status").textContent = `delivered ${n.message_ids.length} event(s)`; });
th.on("upload_failed", (n) => { $("status").textContent = `upload failed (${n.error}); retrying in ${n.retry_in_ms} ms`; });
th.on("dropped", (n) => { $("status").textContent = `dropped ${n.count} event(s): ${n.reason}`; });
th.on("endpoint_opened", (n) => {
  $("status").textContent = n.reason === "blocked"
    ? `${n.url} is blocked in this browser (an ad blocker?); see docs/first-party-proxy.md`
    : `${n.url} failing (${n.reason}); retried in ${n.retry_in_ms} ms`;
});

show();
th.page("Player");
setInterval(() => { $("stats").textContent = JSON.stringify(th.stats(), null, 2); }, 500);
window.thReady = true;
$("status").textContent = "ready";
