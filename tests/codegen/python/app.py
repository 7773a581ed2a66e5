"""An app written against plan v1's generated code (scripts/test-codegen.sh puts the
generated music_app_tracker.py beside it). `make_calls` makes the calls of
tests/codegen/expected-calls.json; `main` runs them through a recording fake client and
prints them as JSON (real_run.py runs them through the real bindings). Against plan v2's
code, `mypy --strict` must refuse it: a new required property, a removed event, a
narrowed enum."""
from __future__ import annotations

import json
import typing

from music_app_tracker import (
    IdentifyTraitsPlan,
    MusicAppTracker,
    PlayerScreenView,
    PlaylistCreatedSongsItem,
    PlaylistCreatedVisibility,
    SongPlayedOutput,
    SongPlayedOutputKind,
    SongPlayedSource,
    SongSkippedDirection,
    SongSkippedSource,
)


class Recorder:
    """A fake client that records every call."""

    def __init__(self) -> None:
        self.calls: list[dict[str, typing.Any]] = []

    def track(self, event: str, properties: dict[str, typing.Any]) -> None:
        self.calls.append({"type": "track", "name": event, "properties": properties})

    def screen(self, name: str, properties: dict[str, typing.Any]) -> None:
        self.calls.append({"type": "screen", "name": name, "properties": properties})

    def page(self, name: str, properties: dict[str, typing.Any]) -> None:
        self.calls.append({"type": "page", "name": name, "properties": properties})

    def identify(self, user_id: typing.Optional[str], traits: dict[str, typing.Any]) -> None:
        self.calls.append({"type": "identify", "userId": user_id, "properties": traits})

    def group(self, group_id: str, traits: dict[str, typing.Any]) -> None:
        self.calls.append({"type": "group", "groupId": group_id, "properties": traits})


def make_calls(t: MusicAppTracker) -> None:
    t.song_played(
        song_id="s1",
        position_ms=0,
        duration_ms=215000,
        source=SongPlayedSource.PLAYLIST,
        playlist_id="p1",
        shuffle=True,
        output=SongPlayedOutput(kind=SongPlayedOutputKind.HEADPHONES, volume=0.5),
    )
    t.song_skipped(
        song_id="s1", position_ms=30000, direction=SongSkippedDirection.NEXT, source=SongSkippedSource.RADIO
    )
    t.song_liked(song_id="s2", tags=["calm", "piano"])
    t.player_screen(view=PlayerScreenView.FULL)
    t.settings_page(section="privacy")
    t.identify("user-42", plan=IdentifyTraitsPlan.PREMIUM, email="a@example.com", age=30)
    t.group("g-1", name="Band", seats=4)
    t.playlist_created(
        type="mixtape",
        is_public=True,
        class_="jazz",
        self_=False,
        description=None,
        songs=[PlaylistCreatedSongsItem(id="s1"), PlaylistCreatedSongsItem(id="s2", added_by="ann")],
        meta={"k": "v"},
        counts={"a": 1},
        rating=3,
        score="high",
        visibility=PlaylistCreatedVisibility.N_2X,
    )
    t.app_opened()
    t.heartbeat()


def main() -> None:
    rec = Recorder()
    make_calls(MusicAppTracker(rec))
    print(json.dumps(rec.calls))


if __name__ == "__main__":
    main()
