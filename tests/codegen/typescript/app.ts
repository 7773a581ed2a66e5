// An app written against plan v1's generated code (scripts/test-codegen.sh puts the
// generated music-app-tracker.ts beside it). It makes the calls of
// tests/codegen/expected-calls.json through a recording fake client and prints them as
// JSON. Against plan v2's code it must not compile: a new required property, a removed
// event, a narrowed enum.
import {
  IdentifyTraitsPlan,
  MusicAppTracker,
  PlayerScreenView,
  PlaylistCreatedVisibility,
  SongPlayedOutputKind,
  SongPlayedSource,
  SongSkippedDirection,
  SongSkippedSource,
  type TrailhoundLike,
} from "./music-app-tracker.js";

interface Call {
  type: string;
  name?: string;
  userId?: string | null;
  groupId?: string;
  properties: Record<string, unknown> | null | undefined;
}

const calls: Call[] = [];
const fake: TrailhoundLike = {
  track: (event, properties) => calls.push({ type: "track", name: event, properties }),
  screen: (name, properties) => calls.push({ type: "screen", name, properties }),
  page: (name, properties) => calls.push({ type: "page", name: name ?? undefined, properties }),
  identify: (userId, traits) => calls.push({ type: "identify", userId, properties: traits }),
  group: (groupId, traits) => calls.push({ type: "group", groupId, properties: traits }),
};

const t = new MusicAppTracker(fake);
t.songPlayed({
  songId: "s1",
  positionMs: 0,
  durationMs: 215000,
  source: SongPlayedSource.Playlist,
  playlistId: "p1",
  shuffle: true,
  output: { kind: SongPlayedOutputKind.Headphones, volume: 0.5 },
});
t.songSkipped({ songId: "s1", positionMs: 30000, direction: SongSkippedDirection.Next, source: SongSkippedSource.Radio });
t.songLiked({ songId: "s2", tags: ["calm", "piano"] });
t.playerScreen({ view: PlayerScreenView.Full });
t.settingsPage({ section: "privacy" });
t.identify("user-42", { plan: IdentifyTraitsPlan.Premium, email: "a@example.com", age: 30 });
t.group("g-1", { name: "Band", seats: 4 });
t.playlistCreated({
  type: "mixtape",
  isPublic: true,
  class: "jazz",
  self: false,
  description: null,
  songs: [{ id: "s1" }, { id: "s2", addedBy: "ann" }],
  meta: { k: "v" },
  counts: { a: 1 },
  rating: 3,
  score: "high",
  visibility: PlaylistCreatedVisibility.N2x,
});

t.appOpened();
t.heartbeat();

console.log(JSON.stringify(calls));
