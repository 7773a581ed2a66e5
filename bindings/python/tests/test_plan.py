"""Tracking plans through the Python bindings: the shared tables (tests/plan/*.json) give
the same verdicts here as in the validator, the native runtime and the Rust FFI tests."""

import json
import pathlib

import pytest

from trailhound import PlanMode, PolicyOverrides, Trailhound, TrailhoundError

TABLES = pathlib.Path(__file__).resolve().parents[3] / "tests" / "plan"
TABLE_FILES = ["cases.json", "cases-unplanned.json"]
FAST = PolicyOverrides(backoff_base_ms=10, backoff_max_ms=50)


def load(name):
    table = json.loads((TABLES / name).read_text())
    return json.dumps(table["plan"]), table["cases"]


def pairs(violations):
    return sorted((v["rule"], v["pointer"]) for v in violations)


def send(th, event):
    """The SDK call that stamps the case's wire event."""
    kind = event["type"]
    if kind == "track":
        th.track(event["event"], event.get("properties"))
    elif kind in ("screen", "page"):
        getattr(th, kind)(event.get("name", ""), event.get("properties"))
    elif kind == "identify":
        th.identify(event.get("userId", "u1"), event.get("traits"))
    elif kind == "group":
        th.group(event.get("groupId", "g1"), event.get("traits"))
    else:
        raise AssertionError(f"no SDK call sends a {kind} event")


def run(collector, tmp_path, name, mode):
    """Sends every case of table `name` in `mode`; returns the cases, their message ids,
    the delivered events by id, the listener's plan notices by id, and the stats."""
    plan, cases = load(name)
    ids, heard = [], []

    def remember(event):
        ids.append(event["messageId"])
        return event

    th = Trailhound.setup(
        "test-key", collector.url, str(tmp_path / name), policy=FAST, jitter_seed=7,
        plan=plan, plan_mode=mode, plugins=[remember], listeners=[heard.append],
    )
    for case in cases:
        send(th, case["event"])
    stats = th.flush(wait=20)
    th.shutdown()
    assert len(ids) == len(cases)
    delivered = {e["messageId"]: e for e in collector.events}
    told = {
        n.message_id: (n.action, sorted((v.rule, v.pointer) for v in n.violations))
        for n in heard
        if n.is_PLAN_VIOLATION()
    }
    return cases, ids, delivered, told, stats


@pytest.mark.parametrize("name", TABLE_FILES)
def test_report_mode_gives_the_tables_verdicts(collector, tmp_path, name):
    """report: every event arrives; a violating one carries exactly the table's
    (rule, pointer) list in context.plan, and the listener hears the same list."""
    cases, ids, delivered, told, stats = run(collector, tmp_path, name, "report")
    total = 0
    for case, mid in zip(cases, ids):
        want = pairs(case["violations"])
        total += len(want)
        event = delivered[mid]
        if want:
            assert pairs(event["context"]["plan"]["violations"]) == want, case["name"]
            assert told[mid] == ("reported", want), case["name"]
        else:
            assert "plan" not in event["context"], case["name"]
            assert mid not in told, case["name"]
    assert sum(c.count for c in stats.plan_violations) == total
    assert stats.dropped.plan_violation == 0


@pytest.mark.parametrize("name", TABLE_FILES)
def test_enforce_mode_drops_violating_events(collector, tmp_path, name):
    """enforce (given as the enum): violating events never arrive and are counted as
    dropped plan_violation; the others arrive."""
    cases, ids, delivered, told, stats = run(collector, tmp_path, name, PlanMode.ENFORCE)
    dropped = 0
    for case, mid in zip(cases, ids):
        want = pairs(case["violations"])
        if want:
            dropped += 1
            assert mid not in delivered, case["name"]
            assert told[mid] == ("dropped", want), case["name"]
        else:
            assert mid in delivered, case["name"]
    assert stats.dropped.plan_violation == dropped
    assert len(delivered) == len(cases) - dropped


def test_bad_plan_is_a_plan_error_naming_the_place(tmp_path):
    """A plan the SDK cannot apply (an unknown keyword) raises TrailhoundError.Plan naming the place."""
    bad = json.dumps({
        "plan": "p", "version": "1-0-0",
        "events": [{"type": "track", "name": "A", "schema": {
            "type": "object",
            "properties": {"n": {"type": "integer", "minimun": 5}}}}],
    })
    with pytest.raises(TrailhoundError.Plan) as info:
        Trailhound.setup("k", "https://collector.example.com", str(tmp_path), plan=bad)
    assert info.value.at.startswith("/events/0/schema/properties/n")
    assert info.value.at in str(info.value)


def test_unknown_plan_mode_is_refused(tmp_path):
    """A misspelt mode is a ValueError before anything starts."""
    with pytest.raises(ValueError, match="enforce_strip"):
        Trailhound.setup("k", "https://collector.example.com", str(tmp_path),
                         plan="{}", plan_mode="enforced")
