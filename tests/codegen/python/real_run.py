"""Runs app.py's calls through the real bindings: `trailhound.Trailhound` over the host
libtrailhound_ffi, offline, with a plugin that records every event as the SDK queues it;
prints them as JSON for scripts/test-codegen.sh to compare with expected-calls.json."""
from __future__ import annotations

import json
import sys
import typing

from trailhound import Trailhound

from app import make_calls
from music_app_tracker import MusicAppTracker


def main() -> None:
    calls: list[dict[str, typing.Any]] = []

    def record(event: dict[str, typing.Any]) -> dict[str, typing.Any]:
        call: dict[str, typing.Any] = {"type": event["type"]}
        name = event.get("event") or event.get("name")
        if name is not None:
            call["name"] = name
        if event["type"] == "identify":
            call["userId"] = event.get("userId")
        if event.get("groupId") is not None:
            call["groupId"] = event["groupId"]
        props = event.get("properties")
        call["properties"] = props if props is not None else event.get("traits")
        calls.append(call)
        return event

    # Port 9 (discard) on loopback: nothing listens, so nothing is ever delivered.
    th = Trailhound.setup("key", "http://127.0.0.1:9", sys.argv[1], plugins=[record])
    make_calls(MusicAppTracker(th))
    th.shutdown()
    print(json.dumps(calls))


if __name__ == "__main__":
    main()
