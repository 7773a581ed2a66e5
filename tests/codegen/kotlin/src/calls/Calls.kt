// App code written against plan v1's generated tracker: the calls of
// tests/codegen/expected-calls.json. src/real/Main.kt runs it through the real bindings;
// against plan v2's tracker it must not compile: a new required property, a removed
// event, a narrowed enum.
package app

import analytics.*

fun makeCalls(t: MusicAppTracker) {
    t.songPlayed(
        songId = "s1",
        positionMs = 0,
        durationMs = 215000,
        source = SongPlayedSource.PLAYLIST,
        playlistId = "p1",
        shuffle = true,
        output = SongPlayedOutput(kind = SongPlayedOutputKind.HEADPHONES, volume = 0.5),
    )
    t.songSkipped(songId = "s1", positionMs = 30000, direction = SongSkippedDirection.NEXT, source = SongSkippedSource.RADIO)
    t.songLiked(songId = "s2", tags = listOf("calm", "piano"))
    t.playerScreen(view = PlayerScreenView.FULL)
    t.settingsPage(section = "privacy")
    t.identify("user-42", plan = IdentifyTraitsPlan.PREMIUM, email = "a@example.com", age = 30)
    t.group("g-1", name = "Band", seats = 4)
    t.playlistCreated(
        type = "mixtape",
        isPublic = true,
        `class` = "jazz",
        self = false,
        description = null,
        songs = listOf(PlaylistCreatedSongsItem(id = "s1"), PlaylistCreatedSongsItem(id = "s2", addedBy = "ann")),
        meta = mapOf("k" to "v"),
        counts = mapOf("a" to 1L),
        rating = 3,
        score = "high",
        visibility = PlaylistCreatedVisibility.N_2X,
    )
    t.appOpened()
    t.heartbeat()
}
