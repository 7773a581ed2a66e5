//! `trailhound collect --plan`: every event checked against a tracking plan, over real
//! HTTP: the shared verdict table, `/api/events` and `/api/violations`, the flag, and a
//! database of the collector before plans.

use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use trailhound_cli::collect::{Collector, Config};
use trailhound_core::plan::Plan;

mod common;
use common::{message_ids, Bin};

// ---------------------------------------------------------------------------
// A minimal HTTP/1.1 client (one request per connection).

fn request(base: &str, method: &str, path: &str, auth: bool, body: &[u8]) -> (u16, Value) {
    let host = base.trim_start_matches("http://");
    let mut s = TcpStream::connect(host).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if auth {
        // The write key `key`, as the Basic auth user.
        head.push_str("Authorization: Basic a2V5Og==\r\n");
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read the answer");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("end of headers");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    let body = serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    (status, body)
}

fn post_batch(base: &str, events: &[Value]) {
    let body = json!({"batch": events, "sentAt": "2026-12-02T10:00:01.000Z"}).to_string();
    let (status, answer) = request(base, "POST", "/v1/batch", true, body.as_bytes());
    assert_eq!(status, 200, "{answer}");
}

fn get(base: &str, path: &str) -> Value {
    let (status, body) = request(base, "GET", path, false, b"");
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

// ---------------------------------------------------------------------------

fn repo_file(rel: &str) -> PathBuf {
    common::repo().join(rel)
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn collector_with(plan: &Value) -> Collector {
    let plan = Plan::parse(&plan.to_string()).expect("the test plan passes lint");
    Collector::start(Config {
        plan: Some(Arc::new(plan)),
        ..Config::default()
    })
    .expect("start the collector")
}

/// The (rule, pointer) pairs of a list of violations, sorted: how every platform's runner
/// compares verdicts.
fn verdict(violations: &Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = violations
        .as_array()
        .unwrap_or_else(|| panic!("not a list of violations: {violations}"))
        .iter()
        .map(|v| {
            (
                v["rule"].as_str().unwrap_or_default().to_owned(),
                v["pointer"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    v.sort();
    v
}

/// Every event of `/api/events`, by `messageId`.
fn events_by_id(base: &str) -> std::collections::HashMap<String, Value> {
    let all = get(base, "/api/events?limit=100000");
    all["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["messageId"].as_str().unwrap().to_owned(), e.clone()))
        .collect()
}

/// Runs one shared table (`tests/plan/*.json`) through the collector: every case as one
/// event of a batch, then compares the stored verdicts.
fn run_table(file: &str) -> usize {
    let table = read_json(&repo_file(file));
    let c = collector_with(&table["plan"]);
    let cases = table["cases"].as_array().expect("cases");
    assert!(!cases.is_empty(), "{file} has no cases");
    let mut batch = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let mut event = case["event"].clone();
        event["messageId"] = json!(format!("case-{i}"));
        batch.push(event);
    }
    // In several requests, as an SDK would send them.
    for chunk in batch.chunks(25) {
        post_batch(&c.url(), chunk);
    }
    let stored = events_by_id(&c.url());
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let e = &stored[&format!("case-{i}")];
        let got = verdict(&e["violations"]);
        let want = verdict(&case["violations"]);
        if got != want {
            failures.push(format!("{}: got {got:?}, want {want:?}", case["name"]));
        }
        for v in e["violations"].as_array().unwrap() {
            for key in ["expected", "found"] {
                assert!(
                    v[key].as_str().is_some_and(|s| !s.is_empty()),
                    "{}: {v}",
                    case["name"]
                );
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{file}: {} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    // Events are still accepted: the plan shows, it does not refuse.
    let stats = c.stats();
    assert_eq!(stats.accepted + stats.invalid, cases.len() as u64);
    cases.len()
}

/// The collector's verdict for every case of the shared table equals the case's expected
/// (rule, pointer) list: the same table the device, the FFI and the browser run.
#[test]
fn shared_table_verdicts() {
    let n = run_table("tests/plan/cases.json");
    assert!(n >= 50, "only {n} cases");
}

/// The same for the table whose plan allows unplanned events.
#[test]
fn shared_table_verdicts_unplanned_allowed() {
    run_table("tests/plan/cases-unplanned.json");
}

/// A small plan: one track event with a strict schema and one screen.
fn music_plan() -> Value {
    json!({
        "plan": "music-test", "version": "1-0-0",
        "events": [
            {"type": "track", "name": "Song Played",
             "schema": {"type": "object", "required": ["song_id"], "additionalProperties": false,
                        "properties": {"song_id": {"type": "string"},
                                       "seconds": {"type": "integer", "minimum": 0}}}},
            {"type": "screen", "name": "Player", "schema": {"type": "object"}}
        ]
    })
}

fn track(id: &str, name: &str, props: Value) -> Value {
    json!({"type": "track", "event": name, "anonymousId": "dev-1", "messageId": id,
           "originalTimestamp": "2026-12-02T10:00:00.000Z", "properties": props})
}

fn screen(id: &str, name: &str) -> Value {
    json!({"type": "screen", "name": name, "anonymousId": "dev-1", "messageId": id,
           "originalTimestamp": "2026-12-02T10:00:00.000Z", "properties": {}})
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<_> = list
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    v.sort();
    v
}

/// Good, violating and unplanned events are all accepted; each event carries its
/// violations in `/api/events` (separate from the Segment checks), and `/api/violations`
/// counts them by rule, by event and rule, lists the unplanned events and the newest
/// violating ones, with the filters of `/api/events`.
#[test]
fn violations_api() {
    let c = collector_with(&music_plan());
    let url = c.url();
    let mut invalid = track("v6", "Song Played", json!({"song_id": 5}));
    invalid.as_object_mut().unwrap().remove("anonymousId");
    post_batch(
        &url,
        &[
            track("v1", "Song Played", json!({"song_id": "s1", "seconds": 3})),
            track(
                "v2",
                "Song Played",
                json!({"song_id": "s1", "seconds": "12"}),
            ),
            track("v3", "Song Played", json!({"seconds": -1, "extra": true})),
            track("v4", "Song Skipped", json!({})),
            screen("v5", "Settings"),
            invalid,
        ],
    );
    // A single-event endpoint implies the type: the event is checked as a track.
    let mut single = track("v7", "Song Skipped", json!({}));
    single.as_object_mut().unwrap().remove("type");
    let (status, _) = request(
        &url,
        "POST",
        "/v1/track",
        true,
        single.to_string().as_bytes(),
    );
    assert_eq!(status, 200);
    post_batch(&url, &[screen("v8", "Player")]);

    let events = events_by_id(&url);
    assert_eq!(events.len(), 8, "every event is accepted");
    let of = |id: &str| verdict(&events[id]["violations"]);
    assert_eq!(of("v1"), pairs(&[]));
    assert_eq!(of("v2"), pairs(&[("type", "/properties/seconds")]));
    assert_eq!(
        of("v3"),
        pairs(&[
            ("required", "/properties/song_id"),
            ("minimum", "/properties/seconds"),
            ("additional_properties", "/properties/extra"),
        ])
    );
    assert_eq!(of("v4"), pairs(&[("unplanned_event", "/event")]));
    assert_eq!(of("v5"), pairs(&[("unplanned_event", "/name")]));
    assert_eq!(of("v7"), pairs(&[("unplanned_event", "/event")]));
    assert_eq!(of("v8"), pairs(&[]));
    // Segment-invalid and breaking the plan: both verdicts, each in its own field.
    assert_eq!(events["v6"]["valid"], false);
    assert_eq!(of("v6"), pairs(&[("type", "/properties/song_id")]));
    assert_eq!(events["v1"]["valid"], true);
    assert_eq!(events["v2"]["valid"], true);
    assert_eq!(events["v2"]["error"], Value::Null);
    let v = &events["v2"]["violations"][0];
    assert_eq!(
        v["expected"].as_str().map(str::is_empty),
        Some(false),
        "{v}"
    );
    assert_eq!(v["found"].as_str().map(str::is_empty), Some(false), "{v}");
    assert_eq!(v["event"], "Song Played");

    let r = get(&url, "/api/violations");
    assert_eq!(
        r["plan"],
        json!({"id": "music-test", "version": "1-0-0", "events": 2})
    );
    assert_eq!(r["events"], 8);
    assert_eq!(r["violating"], 6);
    assert_eq!(r["violating_total"], 6);
    assert_eq!(r["violations"], 8);
    assert_eq!(
        r["by_rule"],
        json!([
            {"rule": "unplanned_event", "count": 3},
            {"rule": "type", "count": 2},
            {"rule": "additional_properties", "count": 1},
            {"rule": "minimum", "count": 1},
            {"rule": "required", "count": 1},
        ])
    );
    assert_eq!(
        r["by_event_rule"][0],
        json!({"event": "Song Played", "rule": "type", "count": 2})
    );
    assert_eq!(
        r["by_event_rule"][1],
        json!({"event": "Song Skipped", "rule": "unplanned_event", "count": 2})
    );
    assert_eq!(r["by_event_rule"].as_array().unwrap().len(), 6);
    assert_eq!(
        r["unplanned"],
        json!([{"name": "Song Skipped", "count": 2}, {"name": "screen:Settings", "count": 1}])
    );
    let ids = |r: &Value| -> Vec<String> {
        r["recent"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["messageId"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&r), ["v7", "v6", "v5", "v4", "v3", "v2"]);
    assert_eq!(r["recent_total"], 6);
    assert_eq!(r["recent"][0]["violations"][0]["rule"], "unplanned_event");

    // The filters of /api/events choose the events summed up.
    let tracks = get(&url, "/api/violations?type=track&limit=2");
    assert_eq!(ids(&tracks), ["v7", "v6"]);
    assert_eq!(tracks["recent_total"], 5);
    assert_eq!(tracks["events"], 6);
    assert_eq!(
        tracks["unplanned"],
        json!([{"name": "Song Skipped", "count": 2}])
    );
    let played = get(&url, "/api/violations?event=Song+Played&valid=true");
    assert_eq!(ids(&played), ["v3", "v2"]);
    assert_eq!(played["violations"], 4);
    assert_eq!(played["unplanned"], json!([]));
    let late = get(&url, "/api/violations?since_id=5");
    assert_eq!(ids(&late), ["v7", "v6"]);
    assert_eq!(late["events"], 3);
    assert_eq!(get(&url, "/api/violations?limit=0")["recent"], json!([]));
    assert_eq!(
        request(&url, "GET", "/api/violations?valid=maybe", false, b"").0,
        400
    );
    // And /api/events filters on them.
    let list = |q: &str| -> Vec<String> { message_ids(&get(&url, &format!("/api/events{q}"))) };
    assert_eq!(list("?violations=false"), ["v8", "v1"]);
    assert_eq!(list("?violations=true&type=screen"), ["v5"]);
    assert_eq!(
        request(&url, "GET", "/api/events?violations=yes", false, b"").0,
        400
    );
    // The handle says the same.
    let report = c.violations(&trailhound_cli::collect::Query::default());
    assert_eq!(report.violating, 6);
    assert_eq!(
        report.plan.as_ref().map(|p| p.id.as_str()),
        Some("music-test")
    );
}

/// Without a plan, events carry an empty violations list and `/api/violations` says
/// there is no plan.
#[test]
fn no_plan_no_violations() {
    let c = Collector::start(Config::default()).unwrap();
    post_batch(&c.url(), &[track("n1", "Anything", json!({"x": 1}))]);
    let e = &get(&c.url(), "/api/events")["events"][0];
    assert_eq!(e["violations"], json!([]));
    let r = get(&c.url(), "/api/violations");
    assert_eq!(r["plan"], Value::Null);
    assert_eq!(
        (r["events"].as_u64(), r["violating"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(r["by_rule"], json!([]));
}

// ---------------------------------------------------------------------------
// The binary.

/// A plan that lint refuses stops `collect --plan` before it listens, with an error
/// naming the file and the place in it; so does a plan file that cannot be read.
#[test]
fn bad_plan_refused() {
    let dir = tempfile::tempdir().unwrap();
    let lint = read_json(&repo_file("tests/plan/lint-cases.json"));
    let cases = lint["cases"].as_array().unwrap();
    assert!(!cases.is_empty());
    // A few of the shared lint cases: the first, one from the middle, the last.
    for case in [&cases[0], &cases[cases.len() / 2], &cases[cases.len() - 1]] {
        let path = dir.path().join("bad-plan.json");
        std::fs::write(&path, case["plan"].to_string()).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_trailhound"))
            .args(["collect", "--memory", "--listen", "127.0.0.1:0", "--plan"])
            .arg(&path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{}: {err}", case["name"]);
        assert!(out.stdout.is_empty(), "it started listening: {err}");
        let at = case["at"].as_str().unwrap();
        assert!(
            err.contains(&format!("at {at}:")) && err.contains(path.to_str().unwrap()),
            "{}: {err}",
            case["name"]
        );
        assert!(
            err.contains(case["contains"].as_str().unwrap()),
            "{}: {err}",
            case["name"]
        );
    }
    let out = Command::new(env!("CARGO_BIN_EXE_trailhound"))
        .args(["collect", "--memory", "--plan", "/nonexistent/plan.json"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot read the plan /nonexistent/plan.json"),
        "{err}"
    );
}

/// `--plan` with `--db`: violations are logged and stored; a restart without the plan
/// still shows the stored violations (and no plan); a restart with it checks again.
#[test]
fn plan_flag_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.json");
    std::fs::write(&plan, music_plan().to_string()).unwrap();
    let db = dir.path().join("qa.db");
    let (plan, db) = (plan.to_str().unwrap(), db.to_str().unwrap());

    let mut first = Bin::spawn(&["--db", db, "--plan", plan]);
    post_batch(
        &first.url,
        &[
            track("f1", "Song Played", json!({"song_id": "s1"})),
            track("f2", "Song Played", json!({"song_id": 7})),
        ],
    );
    let mut line = String::new();
    first.stdout.read_line(&mut line).unwrap();
    assert!(
        line.contains("2 accepted, 0 invalid, 0 duplicates, 1 breaking the plan"),
        "{line}"
    );
    line.clear();
    first.stdout.read_line(&mut line).unwrap();
    assert!(
        line.contains("plan: track f2: type /properties/song_id (expected "),
        "{line}"
    );
    let before = get(&first.url, "/api/events");
    assert_eq!(
        get(&first.url, "/api/violations")["plan"]["id"],
        "music-test"
    );
    drop(first);

    let second = Bin::spawn(&["--db", db, "--quiet"]);
    assert_eq!(get(&second.url, "/api/events"), before);
    let r = get(&second.url, "/api/violations");
    assert_eq!(r["plan"], Value::Null);
    assert_eq!(
        (r["violating"].as_u64(), r["violating_total"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(r["recent"][0]["messageId"], "f2");
    // Without a plan, new events are not checked.
    post_batch(
        &second.url,
        &[track("f3", "Song Played", json!({"song_id": 7}))],
    );
    assert_eq!(get(&second.url, "/api/violations")["violating_total"], 1);
    drop(second);

    let third = Bin::spawn(&["--db", db, "--quiet", "--plan", plan]);
    post_batch(
        &third.url,
        &[track("f4", "Song Played", json!({"song_id": 7}))],
    );
    let r = get(&third.url, "/api/violations");
    assert_eq!(r["violating_total"], 2);
    let ids: Vec<_> = r["recent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["messageId"].clone())
        .collect();
    assert_eq!(ids, [json!("f4"), json!("f2")]);
}

/// A database of the collector before plans (schema version 2) opens with `--plan`: its
/// events are kept and shown with no violations, new events get theirs, the file is
/// upgraded to version 3 and reopens the same.
#[test]
fn upgrade_from_version_2_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let db = rusqlite::Connection::open(&path).unwrap();
        // Exactly what the version 2 collector created.
        db.execute_batch(
            "CREATE TABLE events (
                 id INTEGER PRIMARY KEY,
                 message_id TEXT,
                 type TEXT,
                 name TEXT,
                 user_id TEXT,
                 anonymous_id TEXT,
                 valid INTEGER NOT NULL,
                 error TEXT,
                 received_at_ms INTEGER NOT NULL,
                 timestamp_ms INTEGER NOT NULL,
                 original_timestamp_ms INTEGER,
                 sent_at_ms INTEGER,
                 json TEXT NOT NULL
             );
             CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
             CREATE INDEX events_message_id ON events (message_id);
             INSERT INTO events VALUES (1, 'old-1', 'track', 'Song Played', NULL, 'dev-1', 1,
                 NULL, 1790000000000, 1790000000000, NULL, NULL,
                 '{\"type\":\"track\",\"event\":\"Song Played\",\"messageId\":\"old-1\",\"properties\":{\"song_id\":1}}');
             INSERT INTO counters VALUES ('requests', 1);
             PRAGMA user_version = 2;",
        )
        .unwrap();
    }
    let plan = dir.path().join("plan.json");
    std::fs::write(&plan, music_plan().to_string()).unwrap();
    let (db, plan) = (path.to_str().unwrap(), plan.to_str().unwrap());
    let bin = Bin::spawn(&["--db", db, "--quiet", "--plan", plan]);
    let old = &get(&bin.url, "/api/events")["events"][0];
    assert_eq!(old["messageId"], "old-1");
    // Stored before plans: not re-checked, although it breaks this plan.
    assert_eq!(old["violations"], json!([]));
    post_batch(
        &bin.url,
        &[track("new-1", "Song Played", json!({"song_id": 1}))],
    );
    let events = get(&bin.url, "/api/events");
    assert_eq!(events["events"][0]["id"], 2);
    assert_eq!(
        verdict(&events["events"][0]["violations"]),
        pairs(&[("type", "/properties/song_id")])
    );
    assert_eq!(get(&bin.url, "/api/stats")["requests"], 2);
    drop(bin);

    let version: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, 3);
    let again = Bin::spawn(&["--db", db, "--quiet"]);
    assert_eq!(get(&again.url, "/api/events"), events);
}
