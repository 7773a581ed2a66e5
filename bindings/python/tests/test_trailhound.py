"""The Python bindings driven through the real core against a loopback collector."""

import threading

import pytest

from conftest import Collector, free_port
from trailhound import (
    HttpClientTransport,
    Notification,
    PolicyOverrides,
    Trailhound,
    TrailhoundError,
)

# Short retry delays so that a retried upload is seconds, not minutes, away.
FAST = PolicyOverrides(backoff_base_ms=10, backoff_max_ms=50)


def setup(collector_url, tmp_path, **kw):
    kw.setdefault("policy", FAST)
    return Trailhound.setup("test-key", collector_url, str(tmp_path), jitter_seed=7, **kw)


PROPS = {
    "title": "Nachtmusik",
    "seconds": 215,
    "ratio": 0.5,
    "whole_float": 2.0,
    "big": 2**63 - 1,
    "negative": -7,
    "live": True,
    "muted": False,
    "nothing": None,
    "tags": ["a", 1, 1.5, None, True, ["nested"]],
    "meta": {"artist": {"name": "Mozart", "born": 1756}, "empty": {}, "list": []},
    "unicode": "Grüße ♪ 🎵",
}


def test_track_round_trips_every_kind_of_value(collector, tmp_path):
    """Numbers, strings, booleans, null, nested maps and lists arrive exactly as passed."""
    th = setup(collector.url, tmp_path)
    th.track("Song Played", PROPS)
    stats = th.flush(wait=5)
    assert stats.delivered == 1
    [event] = collector.events
    assert event["event"] == "Song Played"
    assert event["type"] == "track"
    assert event["properties"] == PROPS
    # == treats 2.0 == 2 and True == 1: check the kinds survived too.
    assert type(event["properties"]["whole_float"]) is float
    assert type(event["properties"]["seconds"]) is int
    assert type(event["properties"]["live"]) is bool
    th.shutdown()


def test_every_call_reaches_the_server(collector, tmp_path):
    """identify, screen, page, group and alias are sent with their fields."""
    th = setup(collector.url, tmp_path)
    th.identify("user-42", {"plan": "pro"})
    th.screen("Player", {"from": "home"})
    th.page("Pricing", {"path": "/pricing"})
    th.group("org-1", {"seats": 5})
    th.alias("user-43")
    assert th.user_id == "user-43"
    th.flush(wait=5)
    by_type = {e["type"]: e for e in collector.events}
    assert by_type["identify"]["userId"] == "user-42"
    assert by_type["identify"]["traits"] == {"plan": "pro"}
    assert by_type["screen"]["name"] == "Player"
    assert by_type["page"]["properties"] == {"path": "/pricing"}
    assert by_type["group"]["groupId"] == "org-1"
    assert by_type["alias"]["previousId"] == "user-42"
    assert by_type["alias"]["userId"] == "user-43"
    th.shutdown()


def test_flush_without_waiting_delivers(collector, tmp_path):
    """flush() returns at once and the upload still happens."""
    th = setup(collector.url, tmp_path)
    th.track("a")
    th.flush()
    assert collector.wait_for(1)
    th.shutdown()


class Opaque:
    pass


@pytest.mark.parametrize(
    "bad, error",
    [
        ({"when": Opaque()}, TypeError),
        ({"nested": {"deep": [1, {"x": {1, 2}}]}}, TypeError),
        ({1: "int key"}, TypeError),
        ({"huge": 2**64}, ValueError),
        ({"nan": float("nan")}, ValueError),
        ("not a dict", TypeError),
    ],
)
def test_bad_input_is_a_clear_error_and_loses_nothing(collector, tmp_path, bad, error):
    """Unsupported values raise in Python, name the path, and queue nothing; the next
    call still works and everything before it is kept."""
    th = setup(collector.url, tmp_path)
    th.track("before")
    with pytest.raises(error) as info:
        th.track("bad", bad)
    assert "properties" in str(info.value)
    th.track("after")
    th.flush(wait=5)
    assert [e["event"] for e in collector.events] == ["before", "after"]
    th.shutdown()


def test_invalid_call_is_refused_by_the_core(collector, tmp_path):
    """The core's validation (an empty event name) reaches Python as TrailhoundError."""
    th = setup(collector.url, tmp_path)
    with pytest.raises(TrailhoundError.Invalid) as info:
        th.track("", {})
    assert "must not be empty" in str(info.value)
    assert th.invalid_calls() == 1
    th.shutdown()


def test_503_is_retried_and_the_listener_hears_it(collector, tmp_path):
    """A server answering 503 loses nothing: the batch is retried and delivered."""
    heard = []
    collector.script = [503]
    th = setup(collector.url, tmp_path, listeners=[heard.append])
    th.track("Song Played")
    first = th.flush(wait=5)
    assert first.delivered == 0 and first.retries == 1
    second = th.flush(wait=5)
    assert second.delivered == 1
    assert len(collector.events) == 1
    failed = [n for n in heard if n.is_UPLOAD_FAILED()]
    assert failed and failed[0].status == 503
    delivered = [n for n in heard if n.is_DELIVERED()]
    assert delivered[0].message_ids == [collector.events[0]["messageId"]]
    th.shutdown()


def test_exception_in_python_transport_is_a_network_error(collector, tmp_path):
    """A Python transport that raises makes a retried upload, not a crash or a loss."""
    calls = []
    send = HttpClientTransport(timeout=10)

    def transport(req):
        calls.append(req.url)
        if len(calls) == 1:
            raise ConnectionError("proxy refused the connection")
        return send(req)

    th = setup(collector.url, tmp_path, transport=transport)
    th.track("via python")
    first = th.flush(wait=5)
    assert first.delivered == 0
    assert "proxy refused the connection" in first.last_error
    second = th.flush(wait=5)
    assert second.delivered == 1
    assert collector.events[0]["event"] == "via python"
    assert calls == [collector.url + "/v1/batch"] * 2
    th.shutdown()


def test_plugin_changes_drops_and_fails_cleanly(collector, tmp_path):
    """A plugin can rewrite or drop events; one that raises refuses only its event."""

    def plugin(event):
        if event["event"] == "drop me":
            return None
        if event["event"] == "explode":
            raise RuntimeError("plugin exploded")
        event["properties"]["scrubbed"] = True
        event["properties"].pop("email", None)
        return event

    th = setup(collector.url, tmp_path, plugins=[plugin])
    th.track("kept", {"email": "a@b.c", "n": 1})
    th.track("drop me")
    with pytest.raises(TrailhoundError.Plugin) as info:
        th.track("explode")
    assert "plugin exploded" in str(info.value)
    th.track("also kept")
    stats = th.flush(wait=5)
    assert [e["event"] for e in collector.events] == ["kept", "also kept"]
    assert collector.events[0]["properties"] == {"n": 1, "scrubbed": True}
    assert stats.dropped.plugin == 1
    th.shutdown()


def test_exception_in_listener_does_not_stop_delivery(collector, tmp_path):
    """A listener that raises is ignored; events are still delivered."""

    def listener(n: Notification):
        raise RuntimeError("listener bug")

    th = setup(collector.url, tmp_path, listeners=[listener])
    th.track("a")
    th.track("b")
    assert th.flush(wait=5).delivered == 2
    th.flush(wait=5)
    assert len(collector.events) == 2
    th.shutdown()


def test_track_from_many_threads(collector, tmp_path):
    """Concurrent calls from 8 threads are all delivered, each exactly once."""
    th = setup(collector.url, tmp_path)
    errors = []

    def work(t):
        try:
            for i in range(50):
                th.track("tick", {"thread": t, "i": i})
        except Exception as e:  # pragma: no cover - surfaced by the assert below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    th.flush(wait=10)
    assert collector.wait_for(400)
    seen = {(e["properties"]["thread"], e["properties"]["i"]) for e in collector.events}
    assert len(seen) == 400 == len(collector.events)
    th.shutdown()


def test_queued_events_survive_a_restart_while_offline(tmp_path):
    """Events tracked while the server is unreachable are kept across a client restart
    and delivered once it is back."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    th = setup(url, tmp_path)
    th.track("offline 1")
    th.track("offline 2")
    assert th.flush(wait=5).delivered == 0
    th.shutdown()

    collector = Collector(port)
    try:
        th2 = setup(url, tmp_path)
        assert th2.flush(wait=5).delivered == 2
        assert [e["event"] for e in collector.events] == ["offline 1", "offline 2"]
        th2.shutdown()
    finally:
        collector.stop()


def test_opt_out_sends_nothing(collector, tmp_path):
    """After opt_out nothing is queued; after opt_in tracking resumes."""
    th = setup(collector.url, tmp_path)
    th.opt_out()
    assert th.opted_out
    th.track("private")
    th.opt_in()
    th.track("public")
    th.flush(wait=5)
    assert [e["event"] for e in collector.events] == ["public"]
    th.shutdown()


def test_calls_after_shutdown_fail_with_closed(collector, tmp_path):
    """A shut-down client says so instead of silently dropping."""
    th = setup(collector.url, tmp_path)
    th.shutdown()
    with pytest.raises(TrailhoundError.Closed):
        th.track("late")


def test_bad_endpoint_is_a_config_error(tmp_path):
    """Plain http to a remote host is refused at setup."""
    with pytest.raises(TrailhoundError.Config) as info:
        Trailhound.setup("k", "http://example.com", str(tmp_path))
    assert "loopback" in str(info.value)


@pytest.mark.parametrize(
    ("setting", "policy"),
    [
        ("policy.flush_at: -1 is negative", PolicyOverrides(flush_at=-1)),
        ("policy.max_endpoints: -2 is negative", PolicyOverrides(max_endpoints=-2)),
        ("policy.backoff_base_ms: -10 is negative", PolicyOverrides(backoff_base_ms=-10)),
    ],
)
def test_negative_policy_values_are_config_errors(tmp_path, setting, policy):
    """The FFI's integers are signed (usable from Java); a negative setting is refused by name."""
    with pytest.raises(TrailhoundError.Config) as info:
        Trailhound.setup("k", "http://127.0.0.1:9", str(tmp_path), policy=policy)
    assert setting in str(info.value)
