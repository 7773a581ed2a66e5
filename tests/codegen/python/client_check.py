"""The bindings' real `trailhound.Trailhound` satisfies the generated `TrailhoundLike`, so
the generated tracker takes it as it is. Type-checked only (mypy --strict)."""
from trailhound import Trailhound

from music_app_tracker import TrailhoundLike


def as_trailhound_like(client: Trailhound) -> TrailhoundLike:
    return client
