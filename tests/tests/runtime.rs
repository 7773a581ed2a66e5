//! The native runtime end to end: the real SQLite store, the real ureq transport and a
//! loopback collector, with faults injected at the server, the disk and the process.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use trailhound::{Builder, Client, DropReason, Error, Notification};
use trailhound_tests::collector::{Collector, Reply};
use trailhound_tests::util::{offline, recording_builder, wait_stats, wifi, Notes};

const WAIT: Duration = Duration::from_secs(20);

/// A recording client builder on `c`, on Wi-Fi, with a backoff capped at 2 s.
fn builder(c: &Collector, dir: &std::path::Path, notes: &Notes) -> Builder {
    recording_builder(c.url(), dir, notes, Duration::from_secs(2)).conditions(wifi())
}

/// Waits until the background thread has taken `n` events and committed (or dropped)
/// all of them.
fn committed(client: &Client, n: u64) -> trailhound::Stats {
    wait_stats(client, WAIT, |s| {
        s.accepted == n && s.uncommitted_events == 0
    })
}

fn start(c: &Collector, dir: &std::path::Path) -> (Client, Notes) {
    let notes = Notes::default();
    (builder(c, dir, &notes).build().unwrap(), notes)
}

/// Events tracked online arrive at the collector as Segment batches: gzip, Basic auth,
/// sentAt, unique messageIds and the context.
#[test]
fn delivers_segment_batches() {
    let c = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let (client, _) = start(&c, dir.path());
    client.identify(Some("u1"), json!({"plan": "pro"})).unwrap();
    for i in 0..30 {
        client.track("Song Played", json!({"i": i})).unwrap();
    }
    client.screen("Player", json!({})).unwrap();
    client.flush_blocking(WAIT).unwrap();
    assert!(c.wait_for_events(32, WAIT));
    let events = c.events();
    let req = &c.requests()[0];
    assert_eq!(req.authorization.as_deref(), Some("Basic dGVzdC1rZXk6"));
    assert_eq!(req.content_encoding.as_deref(), Some("gzip"));
    assert!(req.sent_at.is_some());
    let ids: std::collections::HashSet<_> = c.message_ids().into_iter().collect();
    assert_eq!(ids.len(), 32, "messageIds are unique");
    assert_eq!(events[0]["type"], "identify");
    assert_eq!(events[0]["traits"]["plan"], "pro");
    let played = &events[1];
    assert_eq!(played["event"], "Song Played");
    assert_eq!(played["userId"], "u1");
    assert_eq!(played["anonymousId"], client.anonymous_id());
    assert_eq!(played["context"]["device"]["id"], client.anonymous_id());
    assert_eq!(played["context"]["library"]["name"], "trailhound");
    assert_eq!(played["context"]["network"]["wifi"], true);
    assert!(played["context"]["sessionId"].is_number());
    assert_eq!(events[31]["type"], "screen");
    assert_eq!(client.stats().delivered, 32);
    client.shutdown(WAIT).unwrap();
}

/// Offline, nothing is sent; the queue survives a restart with the same messageIds and
/// device id, and goes out as soon as the network returns.
#[test]
fn offline_queue_survives_restart() {
    let c = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let (client, _) = start(&c, dir.path());
    client.set_device_conditions(offline()).unwrap();
    for i in 0..50 {
        client.track("Offline Event", json!({"i": i})).unwrap();
    }
    let device = client.anonymous_id();
    client.shutdown(WAIT).unwrap();
    assert!(c.requests().is_empty(), "nothing attempted while offline");

    let notes = Notes::default();
    let client = builder(&c, dir.path(), &notes)
        .conditions(offline())
        .build()
        .unwrap();
    assert_eq!(client.anonymous_id(), device, "device id persisted");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(client.stats().queued_events, 50);
    client.set_device_conditions(wifi()).unwrap();
    assert!(
        c.wait_for_events(50, WAIT),
        "flushed when the network returned"
    );
    assert_eq!(c.duplicates(), 0);
    client.shutdown(WAIT).unwrap();
}

/// A 503 with Retry-After is waited out; the retry has the same messageIds and a new sentAt.
#[test]
fn retry_after_is_honoured_and_sent_at_restamped() {
    let c = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let (client, notes) = start(&c, dir.path());
    c.script([Reply::retry_after(503, "1")]);
    for i in 0..5 {
        client.track("E", json!({"i": i})).unwrap();
    }
    client.flush().unwrap();
    assert!(c.wait_for_events(5, WAIT));
    let reqs = c.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].status, 503);
    assert_eq!(
        reqs[0].message_ids, reqs[1].message_ids,
        "same messageIds on retry"
    );
    assert_ne!(reqs[0].sent_at, reqs[1].sent_at, "sentAt re-stamped");
    let gap = reqs[1].at - reqs[0].at;
    assert!(
        gap >= Duration::from_millis(950),
        "waited {gap:?} for Retry-After: 1"
    );
    let failed = notes.lock().unwrap().iter().any(|n| {
        matches!(
            n,
            Notification::UploadFailed {
                status: Some(503),
                ..
            }
        )
    });
    assert!(failed, "listener heard of the failure");
    client.shutdown(WAIT).unwrap();
}

/// A 400 isolates the one bad event, which is dropped and reported; the rest are delivered.
#[test]
fn bad_event_is_isolated() {
    let c = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let (client, notes) = start(&c, dir.path());
    c.reject_if(|e| e["properties"]["i"] == 4);
    for i in 0..9 {
        client.track("E", json!({"i": i})).unwrap();
    }
    let stats = client.flush_blocking(WAIT).unwrap();
    assert!(c.wait_for_events(8, WAIT));
    assert!(c.events().iter().all(|e| e["properties"]["i"] != 4));
    assert_eq!(stats.dropped.rejected, 1);
    assert_eq!(stats.queued_events, 0);
    let reported = notes.lock().unwrap().iter().any(|n| {
        matches!(n, Notification::Dropped { reason: DropReason::Rejected { status: 400 }, message_ids, .. } if message_ids.len() == 1)
    });
    assert!(reported, "the dropped event was reported with its id");
    client.shutdown(WAIT).unwrap();
}

/// 401 pauses uploads and is reported; events keep queuing; flush() probes and delivers.
#[test]
fn unauthorized_pauses_until_flush() {
    let c = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let (client, notes) = start(&c, dir.path());
    c.script([Reply::status(401)]);
    client.track("A", json!({})).unwrap();
    client.flush_blocking(WAIT).unwrap();
    let paused = notes
        .lock()
        .unwrap()
        .iter()
        .any(|n| matches!(n, Notification::Paused { status: 401, .. }));
    assert!(paused);
    for _ in 0..25 {
        client.track("B", json!({})).unwrap();
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(c.requests().len(), 1, "no uploads while paused");
    assert_eq!(client.stats().queued_events, 26);
    client.flush_blocking(WAIT).unwrap();
    assert!(c.wait_for_events(26, WAIT));
    client.shutdown(WAIT).unwrap();
}

/// Invalid calls return clear errors and queue nothing; valid calls around them are unaffected.
#[test]
fn bad_input_is_refused() {
    let c = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let (client, _) = start(&c, dir.path());
    client.track("ok-1", json!({})).unwrap();
    assert!(matches!(
        client.track("", json!({})),
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        client.track("x", json!([1, 2])),
        Err(Error::Invalid(_))
    ));
    let deep = (0..20).fold(json!(1), |acc, _| json!({ "n": acc }));
    let err = client.track("x", deep).unwrap_err();
    assert!(err.to_string().contains("nests deeper"), "{err}");
    let err = client
        .track("x", json!({"blob": "x".repeat(40_000)}))
        .unwrap_err();
    assert!(err.to_string().contains("32768"), "{err}");
    assert!(matches!(client.alias(""), Err(Error::Invalid(_))));
    // A refused identify changes nothing: not the user id, not the traits.
    let huge = json!({"bio": "x".repeat(40_000)});
    assert!(matches!(
        client.identify(Some("u-big"), huge),
        Err(Error::Invalid(_))
    ));
    assert_eq!(client.user_id(), None);
    client.track("ok-2", json!({})).unwrap();
    client.flush_blocking(WAIT).unwrap();
    assert!(c.wait_for_events(2, WAIT));
    let names: Vec<_> = c
        .events()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["ok-1", "ok-2"]);
    assert_eq!(client.invalid_calls(), 6);
    client.shutdown(WAIT).unwrap();
}

/// Plugins can enrich, scrub and drop events; drops are counted and reported.
#[test]
fn plugins_change_and_drop() {
    let c = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let notes = Notes::default();
    let client = builder(&c, dir.path(), &notes)
        .plugin(|mut m: trailhound::Message| {
            if m.event.as_deref() == Some("Secret") {
                return None;
            }
            if let Some(p) = m.properties.as_mut() {
                p.remove("email");
            }
            m.context.make_mut().insert("experiment".into(), json!("B"));
            Some(m)
        })
        .build()
        .unwrap();
    client
        .track("Signed Up", json!({"email": "a@b.c", "plan": "pro"}))
        .unwrap();
    client.track("Secret", json!({})).unwrap();
    client.flush_blocking(WAIT).unwrap();
    assert!(c.wait_for_events(1, WAIT));
    let ev = &c.events()[0];
    assert!(ev["properties"].get("email").is_none());
    assert_eq!(ev["properties"]["plan"], "pro");
    assert_eq!(ev["context"]["experiment"], "B");
    assert_eq!(c.events().len(), 1);
    assert_eq!(client.stats().dropped.plugin, 1);
    assert!(notes.lock().unwrap().iter().any(|n| matches!(
        n,
        Notification::Dropped {
            reason: DropReason::Plugin,
            ..
        }
    )));
    client.shutdown(WAIT).unwrap();
}

/// Opting out purges the queue and stops collection, across a restart; opting in resumes.
#[test]
fn opt_out_purges_and_persists() {
    let c = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let (client, _) = start(&c, dir.path());
    client.set_device_conditions(offline()).unwrap();
    for _ in 0..10 {
        client.track("Before", json!({})).unwrap();
    }
    client.opt_out().unwrap();
    client.track("During", json!({})).unwrap();
    client.shutdown(WAIT).unwrap();

    let (client, _) = start(&c, dir.path());
    assert!(client.is_opted_out(), "the choice persisted");
    client.track("Still out", json!({})).unwrap();
    client.flush_blocking(WAIT).unwrap();
    assert_eq!(client.stats().queued_events, 0);
    client.opt_in().unwrap();
    client.track("After", json!({})).unwrap();
    client.flush_blocking(WAIT).unwrap();
    assert!(c.wait_for_events(1, WAIT));
    let names: Vec<_> = c
        .events()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["After"]);
    client.shutdown(WAIT).unwrap();
}

/// reset() makes a new device id and forgets the user, and that persists.
#[test]
fn reset_new_identity_persists() {
    let c = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let (client, _) = start(&c, dir.path());
    client.identify(Some("u1"), json!({"name": "Ada"})).unwrap();
    let first = client.anonymous_id();
    client.reset().unwrap();
    let second = client.anonymous_id();
    assert_ne!(first, second);
    assert_eq!(client.user_id(), None);
    client.track("After Reset", json!({})).unwrap();
    client.shutdown(WAIT).unwrap();
    let (client, _) = start(&c, dir.path());
    assert_eq!(client.anonymous_id(), second);
    assert_eq!(client.user_id(), None);
    client.flush_blocking(WAIT).unwrap();
    assert!(c.wait_for_events(2, WAIT));
    let after = c
        .events()
        .into_iter()
        .find(|e| e["event"] == "After Reset")
        .unwrap();
    assert_eq!(after["anonymousId"], second.as_str());
    assert!(after.get("userId").is_none());
    client.shutdown(WAIT).unwrap();
}

/// A second client on the same data directory gets a clear error; the first keeps working.
#[test]
fn second_client_on_same_dir_is_refused() {
    let c = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let (client, _) = start(&c, dir.path());
    let err = Builder::new("k", c.url(), dir.path()).build().unwrap_err();
    assert!(matches!(err, Error::Open(_)), "{err}");
    assert!(
        err.to_string().contains("another Trailhound client"),
        "{err}"
    );
    client.track("still fine", json!({})).unwrap();
    client.shutdown(WAIT).unwrap();
    Builder::new("k", c.url(), dir.path())
        .build()
        .unwrap()
        .shutdown(WAIT)
        .unwrap();
}

/// A corrupt database is moved aside and replaced, the error reported, and tracking works.
#[test]
fn corrupt_database_is_replaced() {
    let c = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("trailhound.db"),
        b"this is not a database, it is garbage".repeat(100),
    )
    .unwrap();
    let (client, notes) = start(&c, dir.path());
    client.track("After Corruption", json!({})).unwrap();
    client.flush_blocking(WAIT).unwrap();
    assert!(c.wait_for_events(1, WAIT));
    let reported = notes
        .lock()
        .unwrap()
        .iter()
        .any(|n| matches!(n, Notification::StoreError { .. }));
    assert!(reported, "the listener heard about the corrupt store");
    let aside = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .any(|e| e.file_name().to_string_lossy().contains("corrupt"));
    assert!(aside, "the corrupt file was kept aside");
    client.shutdown(WAIT).unwrap();
}

/// A week offline never grows the queue beyond its count cap; the drops are counted and reported.
#[test]
fn caps_bound_the_queue_offline() {
    let c = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let notes = Notes::default();
    let client = builder(&c, dir.path(), &notes)
        .conditions(offline())
        .with_policy(|p| {
            p.max_queue_events = 500;
            p.max_queue_bytes = 1 << 30;
        })
        .build()
        .unwrap();
    for i in 0..2_000 {
        loop {
            match client.track("Offline", json!({"i": i})) {
                Err(Error::Backpressure) => std::thread::sleep(Duration::from_millis(5)),
                r => break r.unwrap(),
            }
        }
    }
    client.shutdown(WAIT).unwrap();
    let (client, _) = start(&c, dir.path());
    let stats = client.flush_blocking(WAIT).unwrap();
    assert!(c.wait_for_events(500, WAIT));
    std::thread::sleep(Duration::from_millis(200));
    let events = c.events();
    assert_eq!(events.len(), 500, "exactly the cap was kept");
    assert_eq!(
        events[0]["properties"]["i"], 1_500,
        "the oldest were dropped first"
    );
    assert_eq!(stats.queued_events, 0);
    let dropped: u64 = notes
        .lock()
        .unwrap()
        .iter()
        .filter_map(|n| match n {
            Notification::Dropped {
                reason: DropReason::CountCap,
                count,
                ..
            } => Some(*count),
            _ => None,
        })
        .sum();
    assert_eq!(dropped, 1_500, "every drop was reported");
    client.shutdown(WAIT).unwrap();
}

/// Many threads tracking at once: every event is delivered exactly once.
#[test]
fn concurrent_tracking() {
    let c = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let (client, _) = start(&c, dir.path());
    let client = Arc::new(client);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let client = Arc::clone(&client);
            std::thread::spawn(move || {
                for i in 0..250 {
                    client
                        .track("Thread Event", json!({"t": t, "i": i}))
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    client.flush_blocking(WAIT).unwrap();
    assert!(c.wait_for_events(2_000, WAIT));
    assert_eq!(c.duplicates(), 0);
    client.shutdown(WAIT).unwrap();
}

/// A full disk drops new events with a counted, reported reason; the client keeps working.
#[test]
fn full_disk_drops_new_events() {
    let c = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let notes = Notes::default();
    let client = builder(&c, dir.path(), &notes)
        .conditions(offline())
        .sqlite_max_pages(100)
        .build()
        .unwrap();
    let blob = "x".repeat(8_000);
    // Commit in groups of five (backgrounding commits at once), so that the disk fills
    // part way through.
    for i in 0..100 {
        client.track("Big", json!({"i": i, "blob": blob})).unwrap();
        if i % 5 == 4 {
            client.app_backgrounded().unwrap();
            std::thread::sleep(Duration::from_millis(30));
        }
    }
    let stats = committed(&client, 100);
    assert!(stats.dropped.disk_full > 0, "{stats:?}");
    assert!(stats.queued_events > 0, "what fitted stayed queued");
    assert_eq!(
        stats.queued_events + stats.dropped.disk_full,
        100,
        "every event accounted for"
    );
    let reported: u64 = notes
        .lock()
        .unwrap()
        .iter()
        .filter_map(|n| match n {
            Notification::Dropped {
                reason: DropReason::DiskFull,
                count,
                ..
            } => Some(*count),
            _ => None,
        })
        .sum();
    assert_eq!(reported, stats.dropped.disk_full);
    client.set_device_conditions(wifi()).unwrap();
    assert!(
        c.wait_for_events(stats.queued_events as usize, WAIT),
        "what was stored is delivered"
    );
    client.shutdown(WAIT).unwrap();
}

/// When several batches are due, they go back to back in one flush over one kept-alive
/// connection.
#[test]
fn batches_go_back_to_back_on_one_connection() {
    let c = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let notes = Notes::default();
    let client = builder(&c, dir.path(), &notes)
        .conditions(offline())
        .build()
        .unwrap();
    for i in 0..1_200 {
        client.track("Bulk", json!({"i": i})).unwrap();
    }
    client.set_device_conditions(wifi()).unwrap();
    assert!(c.wait_for_events(1_200, WAIT));
    let stats = client.flush_blocking(WAIT).unwrap();
    let reqs = c.requests();
    assert_eq!(reqs.len(), 3, "500 + 500 + 200");
    assert_eq!(stats.flushes, 1, "one flush, one radio wake-up");
    assert!(
        reqs.iter()
            .all(|r| r.peer.is_some() && r.peer == reqs[0].peer),
        "one connection: {reqs:?}"
    );
    let span = reqs[2].at - reqs[0].at;
    assert!(
        span < Duration::from_secs(5),
        "back to back, not scheduled apart: {span:?}"
    );
    client.shutdown(WAIT).unwrap();
}

/// User id, traits and a server's Retry-After survive a restart: the restarted client
/// stamps events with the same user and does not upload before the server allowed it.
#[test]
fn identity_and_retry_state_survive_restart() {
    let c = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    // Retry-After is honoured up to backoff_max; allow two hours here.
    let long = |b: Builder| b.with_policy(|p| p.backoff_max = Duration::from_secs(7_200));
    let notes = Notes::default();
    let client = long(builder(&c, dir.path(), &notes)).build().unwrap();
    c.script([Reply::retry_after(429, "3600")]);
    client
        .identify(Some("u-7"), json!({"plan": "family"}))
        .unwrap();
    client.flush_blocking(WAIT).unwrap();
    assert_eq!(c.requests().len(), 1);
    client.shutdown(WAIT).unwrap();

    let client = long(builder(&c, dir.path(), &notes)).build().unwrap();
    assert_eq!(client.user_id().as_deref(), Some("u-7"));
    let next = client
        .stats()
        .retry
        .next_attempt_ms
        .expect("retry state restored");
    let wait = next
        - std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
    assert!(wait > 3_500_000, "about an hour left: {wait} ms");
    for _ in 0..30 {
        client.track("Waiting", json!({})).unwrap();
    }
    client.flush_blocking(WAIT).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        c.requests().len(),
        1,
        "the server's Retry-After holds across the restart, even for flush()"
    );
    let stats = client.stats();
    assert_eq!(stats.queued_events, 31);
    client.shutdown(WAIT).unwrap();
}

/// A transport that fails with network errors is retried with backoff; one that panics
/// is contained and treated as a network error; a recording transport sees gzip bodies.
#[test]
fn custom_transport_faults() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Vec::<trailhound::HttpRequest>::new()));
    let (calls2, seen2) = (Arc::clone(&calls), Arc::clone(&seen));
    let client = Builder::new("k", "https://collector.invalid", dir.path())
        .jitter_seed(3)
        .with_policy(|p| {
            p.backoff_base = Duration::from_millis(50);
            p.backoff_max = Duration::from_millis(200);
        })
        .transport(move |req: &trailhound::HttpRequest| {
            let n = calls2.fetch_add(1, Ordering::SeqCst);
            seen2.lock().unwrap().push(req.clone());
            match n {
                0 => trailhound::UploadResult::NetworkError("connection reset".into()),
                1 => panic!("transport bug"),
                _ => trailhound::UploadResult::Response {
                    status: 200,
                    retry_after: None,
                },
            }
        })
        .build()
        .unwrap();
    client
        .track("Through A Custom Transport", json!({}))
        .unwrap();
    client.flush().unwrap();
    let stats = wait_stats(&client, WAIT, |s| s.delivered >= 1);
    assert_eq!(stats.delivered, 1);
    assert_eq!(
        stats.retries, 2,
        "the reset and the panic were both retried"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let req = seen.lock().unwrap()[2].clone();
    assert_eq!(req.url, "https://collector.invalid/v1/batch");
    assert_eq!(&req.body[..2], &[0x1f, 0x8b], "gzip magic");
    assert!(
        !format!("{req:?}").contains("Basic"),
        "Debug leaves out the auth header"
    );
    client.shutdown(WAIT).unwrap();
}

/// A plugin that panics refuses that one event with an error; the client keeps working.
#[test]
fn panicking_plugin_is_contained() {
    let c = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let notes = Notes::default();
    let client = builder(&c, dir.path(), &notes)
        .plugin(|m: trailhound::Message| {
            if m.event.as_deref() == Some("Boom") {
                panic!("plugin bug");
            }
            Some(m)
        })
        .build()
        .unwrap();
    assert!(matches!(
        client.track("Boom", json!({})),
        Err(Error::Plugin(_))
    ));
    client.track("Fine", json!({})).unwrap();
    client.flush_blocking(WAIT).unwrap();
    assert!(c.wait_for_events(1, WAIT));
    assert_eq!(c.events()[0]["event"], "Fine");
    client.shutdown(WAIT).unwrap();
}

/// An empty Segment batch, gzipped as the engine sends it.
fn empty_batch_gzipped() -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(br#"{"batch":[],"sentAt":"2026-01-01T00:00:00.000Z"}"#)
        .unwrap();
    gz.finish().unwrap()
}

/// The built-in transport never follows a redirect: a 301 (or 307, 308) answer to the batch
/// POST comes back to the engine as that status, and the redirect's target is never asked.
#[test]
fn ureq_transport_returns_redirects_unfollowed() {
    let c = Collector::start();
    c.serve_path("/landing", 200);
    let transport = trailhound::UreqTransport::new(Duration::from_secs(10)).unwrap();
    let body = empty_batch_gzipped();
    let url = format!("{}/v1/batch", c.url());
    for status in [301, 302, 303, 307, 308] {
        c.script([Reply::redirect(status, "/landing")]);
        let req = trailhound::HttpRequest::batch(&url, "Basic dGVzdC1rZXk6", body.clone());
        let result = trailhound::Transport::send(&transport, &req);
        assert_eq!(
            result,
            trailhound::UploadResult::Response {
                status,
                retry_after: None
            },
            "{status} is an answer, not followed"
        );
    }
    assert!(
        c.requests().iter().all(|r| r.path == "/v1/batch"),
        "the landing page was never asked for: {:?}",
        c.requests()
    );
}

/// A collector that redirects the batch POST to a page answering 200: nothing counts as
/// delivered, the events stay queued, and uploads pause with the redirect's status.
#[test]
fn redirect_is_not_delivery() {
    let c = Collector::start();
    c.serve_path("/landing", 200);
    c.set_default(Some(Reply::redirect(301, "/landing")));
    let dir = tempfile::tempdir().unwrap();
    let (client, notes) = start(&c, dir.path());
    for i in 0..10 {
        client.track("Redirected", json!({"i": i})).unwrap();
    }
    let stats = client.flush_blocking(WAIT).unwrap();
    assert_eq!(stats.delivered, 0, "{stats:?}");
    assert_eq!(stats.queued_events, 10, "kept: {stats:?}");
    assert!(
        c.requests().iter().all(|r| r.path == "/v1/batch"),
        "the redirect was not followed: {:?}",
        c.requests()
    );
    let paused = notes
        .lock()
        .unwrap()
        .iter()
        .any(|n| matches!(n, Notification::Paused { status: 301, .. }));
    assert!(paused, "{:?}", notes.lock().unwrap());
    client.shutdown(WAIT).unwrap();
}

/// The built-in transport with an unbounded timeout (`Duration::MAX` in the policy) sends
/// normally: no overflow panic computing its deadlines.
#[test]
fn ureq_transport_with_unbounded_timeout_sends() {
    let c = Collector::start();
    let transport = trailhound::UreqTransport::new(Duration::MAX).unwrap();
    let body = empty_batch_gzipped();
    let url = format!("{}/v1/batch", c.url());
    let req = trailhound::HttpRequest::batch(&url, "Basic dGVzdC1rZXk6", body);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        trailhound::Transport::send(&transport, &req)
    }));
    assert_eq!(
        result.ok(),
        Some(trailhound::UploadResult::Response {
            status: 200,
            retry_after: None
        })
    );
}
