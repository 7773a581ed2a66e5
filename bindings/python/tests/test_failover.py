"""Fallback endpoints through the Python wrapper (issue 12)."""

import pytest

from conftest import free_port
from trailhound import PolicyOverrides, Trailhound, TrailhoundError

# Open far longer than a test: the flush's first request is the dead primary's only one.
LONG_OPEN = PolicyOverrides(backoff_base_ms=600_000)


def test_dead_primary_delivers_through_the_fallback(collector, tmp_path):
    """A dead primary (connection refused) and a live fallback: every event arrives
    once, the primary's breaker is open and the listener heard it open."""
    dead = f"http://127.0.0.1:{free_port()}"
    heard = []
    th = Trailhound.setup(
        "test-key", dead, str(tmp_path), policy=LONG_OPEN, listeners=[heard.append],
        fallback_endpoints=[collector.url],
    )
    for i in range(5):
        th.track("Failover", {"i": i})
    stats = th.flush(wait=20)
    assert stats.delivered == 5
    assert collector.wait_for(5)
    assert sorted(e["properties"]["i"] for e in collector.events) == list(range(5))
    primary, fallback = stats.endpoints
    assert (primary.url, primary.state, primary.reason) == (dead, "open", "network")
    assert (primary.requests, primary.failures) == (1, 1)
    assert (fallback.url, fallback.state) == (collector.url, "closed")
    opened = [n for n in heard if n.is_ENDPOINT_OPENED()]
    assert [(n.url, n.reason) for n in opened] == [(dead, "network")]
    th.shutdown()


@pytest.mark.parametrize("fallbacks, expected", [
    (["http://example.com"], "fallback endpoint 1"),
    (["https://b.example", "https://B.example/"], "same endpoint as fallback endpoint 1"),
    ([f"https://{h}.example" for h in "bcde"], "max_endpoints = 4"),
])
def test_bad_fallbacks_are_config_errors(tmp_path, fallbacks, expected):
    data = tmp_path / "data"
    with pytest.raises(TrailhoundError.Config) as info:
        Trailhound.setup("k", "https://a.example", str(data), fallback_endpoints=fallbacks)
    assert expected in str(info.value)
    assert not data.exists()


def test_a_lone_string_is_refused(tmp_path):
    """A str is a sequence too: it must not become one endpoint per letter."""
    with pytest.raises(TypeError):
        Trailhound.setup("k", "https://a.example", str(tmp_path),
                         fallback_endpoints="https://b.example")
