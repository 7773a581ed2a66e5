//! `trailhound queue …` run as a binary against queues written by the real SDK.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use trailhound_tests::collector::{Collector, Reply};

mod common;
use common::{cli, offline_device, ok, s};

/// Standard error of a run that must fail.
fn failed(out: &Output) -> String {
    common::failed(out).1
}

/// A device's data directory with a queue the SDK filled while offline: `songs` "Song
/// Played" tracks, 2 "Song Skipped", an identify and 2 screens.
fn device_queue(dir: &Path, songs: usize) -> PathBuf {
    let data = dir.join("device");
    let client = offline_device(&data);
    client
        .identify(Some("listener-7"), json!({"plan": "duo"}))
        .unwrap();
    client.screen("Library", json!({})).unwrap();
    for i in 0..songs {
        client
            .track(
                "Song Played",
                json!({"track": i, "title": format!("Song {i}")}),
            )
            .unwrap();
    }
    client.track("Song Skipped", json!({"track": 1})).unwrap();
    client.track("Song Skipped", json!({"track": 2})).unwrap();
    client.screen("Player", json!({})).unwrap();
    client.shutdown(Duration::from_secs(5)).unwrap();
    data
}

/// Every file in `dir` with its length and a hash of its bytes.
fn bytes_of(dir: &Path) -> Vec<(String, usize, u64)> {
    use std::hash::{Hash, Hasher};
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            let mut h = std::collections::hash_map::DefaultHasher::new();
            bytes.hash(&mut h);
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                bytes.len(),
                h.finish(),
            )
        })
        .collect();
    files.sort();
    files
}

fn export_lines(path: &Path, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["queue", "export", s(path)];
    args.extend_from_slice(extra);
    ok(&cli(&args))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// inspect reports counts, bytes, names, identity and schema, and changes no file.
#[test]
fn inspect_reports_the_queue_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = device_queue(tmp.path(), 5);
    let before = bytes_of(&data);
    let out = ok(&cli(&["queue", "inspect", s(&data), "--json"]));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["events"], 10, "{v}");
    assert!(v["bytes"].as_u64().unwrap() > 500);
    assert_eq!(v["user_id"], "listener-7");
    assert_eq!(v["anonymous_id"].as_str().unwrap().len(), 36);
    assert_eq!(v["opted_out"], false);
    assert_eq!(v["schema_version"], trailhound::store::SCHEMA_VERSION);
    assert!(v["oldest"].as_str().unwrap() <= v["newest"].as_str().unwrap());
    let count = |t: &str, n: Option<&str>| {
        v["by_name"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["type"] == t && r["name"].as_str() == n)
            .map(|r| r["events"].as_u64().unwrap())
    };
    assert_eq!(count("track", Some("Song Played")), Some(5));
    assert_eq!(count("track", Some("Song Skipped")), Some(2));
    assert_eq!(count("screen", Some("Player")), Some(1));
    assert_eq!(count("identify", Some("listener-7")), Some(1));

    let text = ok(&cli(&["queue", "inspect", s(&data.join("trailhound.db"))]));
    assert!(text.contains("Song Played"), "{text}");
    assert!(text.contains("listener-7"), "{text}");
    assert_eq!(
        bytes_of(&data),
        before,
        "inspect changed the data directory"
    );
}

/// export writes the stored events as sent, filtered by type, name and time.
#[test]
fn export_filters_and_formats() {
    let tmp = tempfile::tempdir().unwrap();
    let data = device_queue(tmp.path(), 4);
    let all = export_lines(&data, &[]);
    assert_eq!(all.len(), 9);
    for e in &all {
        assert!(
            e["messageId"].is_string() && e["anonymousId"].is_string(),
            "{e}"
        );
        assert!(e["timestamp"].is_string() && e["context"]["library"].is_object());
    }
    let tracks = export_lines(&data, &["--type", "track"]);
    assert_eq!(tracks.len(), 6);
    let skipped = export_lines(&data, &["--event", "Song Skipped"]);
    assert_eq!(skipped.len(), 2);
    assert!(skipped.iter().all(|e| e["event"] == "Song Skipped"));
    assert_eq!(export_lines(&data, &["--since", "1h"]).len(), 9);
    assert_eq!(export_lines(&data, &["--since", "2999-01-01"]).len(), 0);

    let arr: Value = serde_json::from_str(&ok(&cli(&[
        "queue",
        "export",
        s(&data),
        "--format",
        "json",
    ])))
    .unwrap();
    assert_eq!(arr.as_array().unwrap(), &all);

    let err = failed(&cli(&["queue", "export", s(&data), "--since", "yesterday"]));
    assert!(err.contains("--since"), "{err}");
    let err = failed(&cli(&["queue", "export", s(&data), "--type", "tracks"]));
    assert!(err.contains("expected one of"), "{err}");
}

/// export then import into a new directory gives the same queue; a second import adds
/// nothing; a bad line imports nothing and names the line.
#[test]
fn import_round_trips_and_is_all_or_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = device_queue(tmp.path(), 3);
    let file = tmp.path().join("queue.ndjson");
    ok(&cli(&["queue", "export", s(&data), "-o", s(&file)]));
    let copy = tmp.path().join("copy");
    let out = ok(&cli(&["queue", "import", s(&file), "--into", s(&copy)]));
    assert!(out.contains("imported 8 events"), "{out}");
    assert_eq!(export_lines(&copy, &[]), export_lines(&data, &[]));

    let out = ok(&cli(&["queue", "import", s(&file), "--into", s(&copy)]));
    assert!(
        out.contains("imported 0 events") && out.contains("8 already queued"),
        "{out}"
    );

    let mut text = std::fs::read_to_string(&file).unwrap();
    let mut extra: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    extra["messageId"] = json!("fresh-1");
    text.push_str(&format!("{extra}\n{{\"type\":\"track\"}}\nnot json\n"));
    let bad = tmp.path().join("bad.ndjson");
    std::fs::write(&bad, text).unwrap();
    let err = failed(&cli(&["queue", "import", s(&bad), "--into", s(&copy)]));
    assert!(err.contains("line 10") && err.contains("line 11"), "{err}");
    assert!(err.contains("nothing was imported"), "{err}");
    assert_eq!(export_lines(&copy, &[]).len(), 8);
}

/// replay delivers every event with its messageId, leaves the source as it was, and a
/// second replay is seen by the collector as duplicates.
#[test]
fn replay_delivers_keeps_ids_and_source() {
    let tmp = tempfile::tempdir().unwrap();
    let data = device_queue(tmp.path(), 20);
    let ids: Vec<String> = export_lines(&data, &[])
        .iter()
        .map(|e| e["messageId"].as_str().unwrap().to_owned())
        .collect();
    let before = bytes_of(&data);
    let collector = Collector::start();
    let out = ok(&cli(&[
        "queue",
        "replay",
        s(&data),
        "--to",
        collector.url(),
        "--write-key",
        "qa",
    ]));
    assert!(out.contains("delivered   25"), "{out}");
    assert!(out.contains("unchanged"), "{out}");
    assert_eq!(collector.message_ids(), ids);
    assert_eq!(collector.duplicates(), 0);
    let auth = collector.requests()[0].authorization.clone().unwrap();
    assert_eq!(auth, trailhound::core::wire::basic_auth("qa"));
    assert_eq!(bytes_of(&data), before, "replay changed the source");

    ok(&cli(&[
        "queue",
        "replay",
        s(&data),
        "--to",
        collector.url(),
    ]));
    assert_eq!(collector.duplicates(), 25);
}

/// --drain deletes what was delivered and keeps what the server rejected.
#[test]
fn replay_drain_deletes_only_delivered() {
    let tmp = tempfile::tempdir().unwrap();
    let data = device_queue(tmp.path(), 6);
    let collector = Collector::start();
    collector.reject_if(|e| e["event"] == "Song Skipped");
    let out = cli(&[
        "queue",
        "replay",
        s(&data),
        "--to",
        collector.url(),
        "--drain",
    ]);
    let err = failed(&out);
    assert!(err.contains("2 events were rejected"), "{err}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("rejected by the server (HTTP 400)"),
        "{stdout}"
    );
    let left = export_lines(&data, &[]);
    assert_eq!(left.len(), 2);
    assert!(left.iter().all(|e| e["event"] == "Song Skipped"));
    assert_eq!(collector.events().len(), 9);
}

/// 503s with Retry-After are retried after the wait the server asked for.
#[test]
fn replay_retries_503_with_retry_after() {
    let tmp = tempfile::tempdir().unwrap();
    let data = device_queue(tmp.path(), 3);
    let collector = Collector::start();
    collector.script([Reply::retry_after(503, "1"), Reply::status(503)]);
    let out = ok(&cli(&[
        "queue",
        "replay",
        s(&data),
        "--to",
        collector.url(),
    ]));
    assert!(out.contains("retried     2 failed requests"), "{out}");
    assert!(out.contains("HTTP 503"), "{out}");
    let requests = collector.requests();
    assert_eq!(requests.len(), 3);
    assert!(
        requests[1].at - requests[0].at >= Duration::from_millis(950),
        "Retry-After: 1 was not respected: {:?}",
        requests[1].at - requests[0].at
    );
    assert_eq!(collector.events().len(), 8);
}

/// A server that keeps failing makes replay give up, say so, and fail.
#[test]
fn replay_gives_up_after_max_attempts() {
    let tmp = tempfile::tempdir().unwrap();
    let data = device_queue(tmp.path(), 1);
    let collector = Collector::start();
    collector.set_default(Some(Reply::retry_after(503, "0")));
    let out = cli(&[
        "queue",
        "replay",
        s(&data),
        "--to",
        collector.url(),
        "--max-attempts",
        "2",
    ]);
    let err = failed(&out);
    assert!(err.contains("gave up after 2 failed attempts"), "{err}");
    assert_eq!(collector.events().len(), 0);
}

/// --dry-run sends nothing and shows the batches; --rate splits and paces them.
#[test]
fn replay_dry_run_sends_nothing_and_rate_paces() {
    let tmp = tempfile::tempdir().unwrap();
    let data = device_queue(tmp.path(), 15);
    let collector = Collector::start();
    let out = ok(&cli(&[
        "queue",
        "replay",
        s(&data),
        "--to",
        collector.url(),
        "--dry-run",
        "--rate",
        "10/s",
    ]));
    assert!(out.contains("nothing was sent"), "{out}");
    assert!(out.contains("would send  20 in 2 batches"), "{out}");
    assert!(collector.requests().is_empty());

    let started = Instant::now();
    ok(&cli(&[
        "queue",
        "replay",
        s(&data),
        "--to",
        collector.url(),
        "--rate",
        "10",
    ]));
    assert_eq!(collector.requests().len(), 2);
    assert!(started.elapsed() >= Duration::from_millis(900), "not paced");
    assert_eq!(collector.events().len(), 20);
}

/// A plain http endpoint that is not loopback is refused before anything is read.
#[test]
fn replay_refuses_plain_http_to_remote_hosts() {
    let tmp = tempfile::tempdir().unwrap();
    let data = device_queue(tmp.path(), 1);
    let err = failed(&cli(&[
        "queue",
        "replay",
        s(&data),
        "--to",
        "http://example.com",
    ]));
    assert!(err.contains("loopback"), "{err}");
}

/// A database of a newer schema is refused by every tool and left byte for byte as it was.
#[test]
fn newer_schema_is_refused_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let data = device_queue(tmp.path(), 2);
    let db = data.join("trailhound.db");
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
    }
    let before = bytes_of(&data);
    let collector = Collector::start();
    for args in [
        vec!["queue", "inspect", s(&db)],
        vec!["queue", "export", s(&db)],
        vec!["queue", "replay", s(&db), "--to", collector.url()],
    ] {
        let err = failed(&cli(&args));
        assert!(err.contains("schema version 99, newer"), "{args:?}: {err}");
    }
    assert!(collector.requests().is_empty());
    assert_eq!(bytes_of(&data), before);
}

/// An older schema is read through a migrated temporary copy; the source stays as it was.
#[test]
fn older_schema_is_read_through_a_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let data = device_queue(tmp.path(), 2);
    let db = data.join("trailhound.db");
    // The SDK wrote commit groups; a version 1 file holds rows.
    trailhound::store::SqliteStore::open_file(&db, false)
        .unwrap()
        .expand_groups_into_rows()
        .unwrap();
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        // Version 1: whole messages, no type, name or shared contexts.
        conn.execute_batch(
            "UPDATE events SET json = json_set(json, '$.context',
                 json((SELECT c.json FROM contexts c WHERE c.id = context_id)))
             WHERE context_id IS NOT NULL;
             ALTER TABLE events DROP COLUMN context_id; DROP TABLE contexts;
             DROP INDEX events_created_ms;
             ALTER TABLE events DROP COLUMN type; ALTER TABLE events DROP COLUMN name;
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let before = bytes_of(&data);
    let out = ok(&cli(&["queue", "inspect", s(&db)]));
    assert!(out.contains("migrated temporary copy"), "{out}");
    assert!(out.contains("events          7"), "{out}");
    assert_eq!(export_lines(&db, &["--event", "Song Played"]).len(), 2);
    assert_eq!(bytes_of(&data), before);
}

/// The README's first command: the demo delivers every tracked event exactly once and
/// reports it.
#[test]
fn demo_delivers_everything_once() {
    let out = ok(&cli(&["demo", "--no-serve"]));
    assert!(
        out.contains("Every tracked event arrived exactly once."),
        "{out}"
    );
    let field = |name: &str| -> u64 {
        let line = out
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap();
        line[name.len() + 2..]
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(field("tracked") > 100);
    assert_eq!(field("tracked"), field("delivered (distinct)"));
    assert!(field("retries") > 0, "{out}");
    assert!(field("radio wake-ups") < field("tracked") / 4, "{out}");
    // The Search and Library screens are not in the music app's plan: the device and the
    // collector report the same events, and nothing else.
    let plan_line = out
        .lines()
        .find(|l| l.trim_start().starts_with("breaking the plan"))
        .unwrap();
    assert!(field("breaking the plan") > 0, "{out}");
    assert!(
        plan_line.contains(&format!("{} at the collector", field("breaking the plan"))),
        "{plan_line}"
    );
    let rules = plan_line
        .split("rules: ")
        .nth(1)
        .and_then(|r| r.split(';').next())
        .unwrap_or_default();
    assert!(
        rules.starts_with("unplanned_event ") && !rules.contains(','),
        "only unplanned_event: {plan_line}"
    );
    assert!(
        plan_line.contains("screen:Search") && plan_line.contains("screen:Library"),
        "{plan_line}"
    );
    assert!(out.contains("the same"), "{out}");
}

/// Replayed events pass the real collector's validation; a second replay is all
/// duplicates there, removed by messageId.
#[test]
fn replay_into_trailhound_collect_dedupes() {
    use trailhound_cli::collect::{Collector as Collect, Config};
    let tmp = tempfile::tempdir().unwrap();
    let data = device_queue(tmp.path(), 30);
    let collect = Collect::start(Config::default()).unwrap();
    let url = collect.url();
    ok(&cli(&["queue", "replay", s(&data), "--to", &url]));
    let stats = collect.stats();
    assert_eq!(
        (stats.accepted, stats.invalid, stats.duplicates),
        (35, 0, 0)
    );
    ok(&cli(&["queue", "replay", s(&data), "--to", &url]));
    let stats = collect.stats();
    assert_eq!(
        (stats.accepted, stats.invalid, stats.duplicates),
        (35, 0, 35)
    );
}

/// Against the collector's injected 503s (half the requests, seeded: the 4th fails) with
/// Retry-After, replay retries until every
/// event is in.
#[test]
fn replay_through_injected_faults() {
    use trailhound_cli::collect::{Collector as Collect, Config, Faults};
    let tmp = tempfile::tempdir().unwrap();
    let data = device_queue(tmp.path(), 1795);
    let collect = Collect::start(Config {
        faults: Faults {
            fail_rate: 0.5,
            retry_after: Some(1),
            ..Faults::default()
        },
        ..Config::default()
    })
    .unwrap();
    let out = ok(&cli(&["queue", "replay", s(&data), "--to", &collect.url()]));
    let stats = collect.stats();
    assert_eq!(stats.accepted, 1800);
    assert!(
        stats.failed_requests > 0,
        "no fault was injected: {stats:?}\n{out}"
    );
    assert!(
        out.contains(&format!(
            "retried     {} failed requests",
            stats.failed_requests
        )),
        "{out}"
    );
}

/// With a dead first --to (a `trailhound collect` that resets every request) and a live
/// second, every event arrives once at the second: the first failure opens the dead one's
/// breaker and the batch goes on at once; the output names each endpoint's requests and
/// the breaker opening.
#[test]
fn replay_fails_over_from_a_dead_endpoint() {
    use trailhound_cli::collect::{Collector as Collect, Config, Faults};
    let tmp = tempfile::tempdir().unwrap();
    let data = device_queue(tmp.path(), 1195);
    let ids: Vec<String> = export_lines(&data, &[])
        .iter()
        .map(|e| e["messageId"].as_str().unwrap().to_owned())
        .collect();
    let dead = Collect::start(Config {
        faults: Faults {
            status: Some(Faults::NO_ANSWER),
            ..Faults::default()
        },
        ..Config::default()
    })
    .unwrap();
    let live = Collector::start();
    let out = ok(&cli(&[
        "queue",
        "replay",
        s(&data),
        "--to",
        &dead.url(),
        "--to",
        live.url(),
        "--max-attempts",
        "2",
    ]));
    let mut got = live.message_ids();
    got.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(got, want, "{out}");
    assert_eq!(live.duplicates(), 0, "{out}");
    assert!(out.contains("delivered   1200"), "{out}");

    // The dead endpoint saw the first batch, then only probes when its breaker's wait
    // ended (how many depends on the wall clock), each sent on to the live one at once.
    let tried_dead = dead.stats().requests;
    let live_requests = live.requests().len() as u64;
    assert!(
        tried_dead >= 1 && tried_dead <= live_requests,
        "{tried_dead} requests to the dead endpoint, {live_requests} to the live one\n{out}"
    );
    assert_eq!(dead.stats().accepted, 0);
    let dead_base = dead.url().trim_end_matches('/').to_owned();
    assert!(
        out.contains(&format!("endpoint {dead_base}")) && out.contains("opened (no answer)"),
        "{out}"
    );
    assert!(
        out.contains(&format!("{tried_dead:>8}  to {dead_base}")),
        "per-endpoint counts\n{out}"
    );
    assert!(
        out.contains(&format!(
            "{live_requests:>8}  to {}",
            live.url().trim_end_matches('/')
        )),
        "per-endpoint counts\n{out}"
    );
}

/// inspect shows each saved endpoint's breaker (url, state, reason, attempts, next
/// attempt, pause) in text and JSON, and keeps the old retry fields for the first.
#[test]
fn inspect_shows_each_endpoints_breaker() {
    use trailhound::core::breaker::{EndpointState, OpenReason};
    use trailhound::core::retry::RetryState;
    use trailhound::core::store::QueueStore;
    let tmp = tempfile::tempdir().unwrap();
    let data = device_queue(tmp.path(), 1);
    let now = chrono::Utc::now().timestamp_millis();
    {
        let mut store =
            trailhound::store::SqliteStore::open_file(&data.join("trailhound.db"), false).unwrap();
        let mut state = store.snapshot().unwrap().state.unwrap();
        state.endpoints = vec![
            EndpointState {
                url: "https://proxy.example.com".into(),
                retry: RetryState {
                    attempts: 3,
                    next_attempt_ms: Some(now + 3_600_000),
                    server_directed: true,
                    ..RetryState::default()
                },
                reason: Some(OpenReason::Status { status: 503 }),
            },
            EndpointState {
                url: "https://eu.collect.example.net".into(),
                retry: RetryState {
                    auth_paused_until_ms: Some(now + 1_800_000),
                    auth_status: Some(401),
                    ..RetryState::default()
                },
                reason: Some(OpenReason::Paused { status: 401 }),
            },
            EndpointState {
                url: "https://collect.example.net".into(),
                ..EndpointState::default()
            },
        ];
        store.save_state(&state).unwrap();
    }
    let v: Value =
        serde_json::from_str(&ok(&cli(&["queue", "inspect", s(&data), "--json"]))).unwrap();
    // The old fields: the first endpoint's.
    assert_eq!(v["retry_attempts"], 3, "{v}");
    assert!(v["next_attempt"].is_string(), "{v}");
    let e = v["endpoints"].as_array().unwrap();
    assert_eq!(e.len(), 3, "{v}");
    assert_eq!(e[0]["url"], "https://proxy.example.com");
    assert_eq!(e[0]["state"], "open");
    assert_eq!(e[0]["reason"], json!({"kind": "status", "status": 503}));
    assert_eq!(e[0]["attempts"], 3);
    assert_eq!(e[0]["server_directed"], true);
    assert_eq!(e[1]["state"], "open");
    assert_eq!(e[1]["reason"], json!({"kind": "paused", "status": 401}));
    assert_eq!(e[1]["paused_status"], 401);
    assert!(e[1]["paused_until"].is_string(), "{v}");
    assert_eq!(e[2]["state"], "closed");
    assert_eq!(e[2]["reason"], Value::Null);

    let text = ok(&cli(&["queue", "inspect", s(&data)]));
    for want in [
        "endpoint 1      https://proxy.example.com",
        "open (HTTP 503), 3 failed attempts",
        "(the server's Retry-After)",
        "endpoint 2      https://eu.collect.example.net",
        "open (paused after HTTP 401), 0 failed attempts",
        "paused until",
        "endpoint 3      https://collect.example.net",
        "closed, 0 failed attempts",
    ] {
        assert!(text.contains(want), "{want:?} missing:\n{text}");
    }
}

/// With every --to dead, replay gives up once each endpoint has failed --max-attempts
/// times in a row, and says so.
#[test]
fn replay_gives_up_when_every_endpoint_fails() {
    use trailhound_cli::collect::{Collector as Collect, Config, Faults};
    let tmp = tempfile::tempdir().unwrap();
    let data = device_queue(tmp.path(), 1);
    let dead = || {
        Collect::start(Config {
            faults: Faults {
                status: Some(Faults::NO_ANSWER),
                ..Faults::default()
            },
            ..Config::default()
        })
        .unwrap()
    };
    let (a, b) = (dead(), dead());
    let out = cli(&[
        "queue",
        "replay",
        s(&data),
        "--to",
        &a.url(),
        "--to",
        &b.url(),
        "--max-attempts",
        "2",
    ]);
    let err = failed(&out);
    assert!(
        err.contains("gave up after 2 failed attempts in a row at each of the 2 endpoints"),
        "{err}"
    );
    assert!(a.stats().requests >= 2 && b.stats().requests >= 2);
}
