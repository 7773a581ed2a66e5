//! The native runtime at its edges: calls racing `shutdown`, storage failing until
//! shutdown, a dropped client, listeners calling back into the client, a transport that
//! never returns, and storage stalling under a flood of calls. Faults are real: a second
//! SQLite connection holding the queue's write lock, a transport blocked on a lock.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use serde_json::json;
use trailhound::store::SqliteStore;
use trailhound::{Builder, Client, DropReason, Error, Notification, UploadResult};
use trailhound_tests::collector::Collector;
use trailhound_tests::util::{self, offline, recording_builder, wifi, Notes};

const WAIT: Duration = Duration::from_secs(30);

/// A call's name and what it returned.
type Outcome = (&'static str, Result<(), String>);

/// A recording client builder, offline, with a backoff capped at 1 s.
fn builder(endpoint: &str, dir: &Path, notes: &Notes) -> Builder {
    recording_builder(endpoint, dir, notes, Duration::from_secs(1)).conditions(offline())
}

/// A client on nowhere reachable, offline: what it accepts stays queued.
fn start_offline(dir: &Path, notes: &Notes) -> Client {
    builder("https://collector.invalid", dir, notes)
        .build()
        .unwrap()
}

/// A client on the collector `c`, on Wi-Fi.
fn start_online(c: &Collector, dir: &Path, notes: &Notes) -> Client {
    builder(c.url(), dir, notes)
        .conditions(wifi())
        .build()
        .unwrap()
}

/// Builds the client and puts it where its listener finds it (`slot`), then tracks one
/// event and flushes: the listener hears the delivery on the background thread.
fn start_reachable(builder: Builder, slot: &OnceLock<Weak<Client>>) -> Arc<Client> {
    let client = Arc::new(builder.build().unwrap());
    slot.set(Arc::downgrade(&client)).unwrap();
    client.track("First", json!({})).unwrap();
    client.flush().unwrap();
    client
}

/// `(t, i)` of every event in the queue of `dir` (the client must be shut down).
fn queued(dir: &Path) -> BTreeSet<(u64, u64)> {
    let store = SqliteStore::open(dir).unwrap().store;
    let mut out = BTreeSet::new();
    store
        .iter_events(|e| {
            let v: serde_json::Value = serde_json::from_str(&e.json.wire()).unwrap();
            let p = if v["type"] == "identify" {
                &v["traits"]
            } else {
                &v["properties"]
            };
            out.insert((p["t"].as_u64().unwrap(), p["i"].as_u64().unwrap()));
            true
        })
        .unwrap();
    out
}

/// Holds the queue database's write lock from a second connection: every write of the
/// client fails as busy (after SQLite's busy timeout) until this is dropped.
fn lock_database(dir: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(dir.join(trailhound::store::DB_FILE)).unwrap();
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    conn
}

/// Waits (bounded) until `done` holds for the client's stats.
fn wait_stats(client: &Client, done: impl Fn(&trailhound::Stats) -> bool) -> trailhound::Stats {
    util::wait_stats(client, WAIT, done)
}

fn store_failed(notes: &Notes) -> (u64, usize) {
    notes
        .lock()
        .unwrap()
        .iter()
        .filter_map(|n| match n {
            Notification::Dropped {
                reason: DropReason::StoreFailed,
                count,
                message_ids,
            } => Some((*count, message_ids.len())),
            _ => None,
        })
        .fold((0, 0), |(c, m), (c2, m2)| (c + c2, m + m2))
}

/// Threads tracking and identifying while another shuts the client down: every call that
/// returned `Ok` is in the queue afterwards, and no call that returned an error is.
#[test]
fn calls_racing_shutdown_are_all_or_nothing() {
    for round in 0..12 {
        let dir = tempfile::tempdir().unwrap();
        let notes = Notes::default();
        let client = Arc::new(
            builder("https://collector.invalid", dir.path(), &notes)
                .build()
                .unwrap(),
        );
        let started = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let client = Arc::clone(&client);
                let started = Arc::clone(&started);
                std::thread::spawn(move || {
                    let mut accepted = BTreeSet::new();
                    for i in 0.. {
                        let props = json!({"t": t, "i": i});
                        let r = if i % 3 == 0 {
                            client.identify(Some(&format!("u-{t}-{i}")), props)
                        } else {
                            client.track("Racing", props)
                        };
                        started.fetch_add(1, Ordering::Relaxed);
                        match r {
                            Ok(()) => {
                                accepted.insert((t, i));
                            }
                            Err(Error::Backpressure) => std::thread::yield_now(),
                            Err(Error::Closed) => break,
                            Err(e) => panic!("{e}"),
                        }
                    }
                    accepted
                })
            })
            .collect();
        while started.load(Ordering::Relaxed) < 200 * (round + 1) {
            std::thread::yield_now();
        }
        client.shutdown(WAIT).unwrap();
        let accepted: BTreeSet<_> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        let stored = queued(dir.path());
        let lost: Vec<_> = accepted.difference(&stored).take(5).collect();
        let unexpected: Vec<_> = stored.difference(&accepted).take(5).collect();
        assert!(
            lost.is_empty() && unexpected.is_empty(),
            "round {round}: {} accepted, {} stored; accepted but lost: {lost:?}; \
             refused but stored: {unexpected:?}",
            accepted.len(),
            stored.len()
        );
    }
}

/// `shutdown(Duration::MAX)` and `flush_blocking(Duration::MAX)` return (no overflow
/// panic), and the directory is free again afterwards.
#[test]
fn unbounded_timeouts_do_not_panic() {
    let c = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let notes = Notes::default();
    let client = start_online(&c, dir.path(), &notes);
    client.track("Before", json!({})).unwrap();
    let stats = client.flush_blocking(Duration::MAX).unwrap();
    assert_eq!(stats.delivered, 1);
    client.track("Queued", json!({})).unwrap();
    client.shutdown(Duration::MAX).unwrap();
    assert!(matches!(
        client.track("After", json!({})),
        Err(Error::Closed)
    ));
    let again = builder(c.url(), dir.path(), &notes).build().unwrap();
    again.shutdown(Duration::MAX).unwrap();
}

/// Storage failing (the database locked by another connection) until shutdown: the
/// events that could not be saved are reported as dropped `store_failed`, with their
/// messageIds, and `shutdown` returns an error saying so.
#[test]
fn storage_failing_until_shutdown_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let notes = Notes::default();
    let client = start_offline(dir.path(), &notes);
    let lock = lock_database(dir.path());
    for i in 0..20 {
        client.track("Unsaved", json!({"t": 0, "i": i})).unwrap();
    }
    let err = client.shutdown(Duration::from_secs(1)).unwrap_err();
    assert!(
        matches!(err, Error::Unsaved { events: 20, .. }),
        "shutdown says what was lost: {err}"
    );
    assert!(err.to_string().contains("20 accepted events"), "{err}");
    assert_eq!(store_failed(&notes), (20, 20), "reported with messageIds");
    assert_eq!(client.stats().dropped.store_failed, 20);
    drop(lock);
    assert!(queued(dir.path()).is_empty());
}

/// An opt-out that storage could not save before shutdown is not lost: `shutdown` says
/// so, and the next start is opted out, with the queue purged.
#[test]
fn unsaved_opt_out_holds_at_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let notes = Notes::default();
    let client = start_offline(dir.path(), &notes);
    for i in 0..5 {
        client.track("Before", json!({"t": 0, "i": i})).unwrap();
    }
    client.app_backgrounded().unwrap();
    let stats = wait_stats(&client, |s| s.accepted == 5 && s.uncommitted_events == 0);
    assert_eq!(stats.queued_events, 5);
    let lock = lock_database(dir.path());
    client.opt_out().unwrap();
    let err = client.shutdown(Duration::from_secs(1)).unwrap_err();
    assert!(
        matches!(err, Error::Unsaved { opt_out: true, .. }),
        "shutdown says the opt-out was not saved: {err}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let marker = std::fs::metadata(dir.path().join("trailhound.opted-out")).unwrap();
        assert_eq!(
            marker.permissions().mode() & 0o777,
            0o600,
            "the marker is private"
        );
    }
    drop(lock);

    let client = start_offline(dir.path(), &notes);
    assert!(client.is_opted_out(), "the opt-out holds");
    let stats = wait_stats(&client, |s| s.queued_events == 0);
    assert_eq!(stats.queued_events, 0, "the queue was purged");
    client.track("While Out", json!({"t": 0, "i": 99})).unwrap();
    client.shutdown(WAIT).unwrap();
    assert!(queued(dir.path()).is_empty());
    // Saved in the database now: it holds without the marker too.
    let client = start_offline(dir.path(), &notes);
    assert!(client.is_opted_out());
    client.shutdown(WAIT).unwrap();
}

/// Dropping a client without `shutdown` commits what was accepted but starts no upload
/// (its answer would be thrown away, and the batch sent twice).
#[test]
fn drop_commits_without_uploading() {
    let c = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let notes = Notes::default();
    let client = start_online(&c, dir.path(), &notes);
    for i in 0..3 {
        client
            .track("Dropped Client", json!({"t": 0, "i": i}))
            .unwrap();
    }
    drop(client);
    // A request started by the drop would arrive within milliseconds on loopback.
    std::thread::sleep(Duration::from_millis(500));
    assert!(c.requests().is_empty(), "no upload: {:?}", c.requests());
    assert_eq!(queued(dir.path()).len(), 3, "committed");
}

/// A listener (on the background thread) that fills the call queue and then calls
/// flush, reset, set_device_conditions, opt_out, opt_in and flush_blocking does not
/// deadlock the client: each returns at once, and the client keeps working.
#[test]
fn listener_calling_back_does_not_deadlock() {
    let c = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let slot: Arc<OnceLock<Weak<Client>>> = Arc::new(OnceLock::new());
    let results: Arc<Mutex<Vec<Outcome>>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let fired = Arc::new(AtomicBool::new(false));
    let listener = {
        let (slot, results, done, fired) = (
            Arc::clone(&slot),
            Arc::clone(&results),
            Arc::clone(&done),
            Arc::clone(&fired),
        );
        move |n: &Notification| {
            if !matches!(n, Notification::Delivered { .. }) || fired.swap(true, Ordering::SeqCst) {
                return;
            }
            let Some(client) = slot.get().and_then(Weak::upgrade) else {
                return;
            };
            let mut filled = 0;
            while client.track("Filler", json!({})).is_ok() {
                filled += 1;
                assert!(filled < 1_000_000, "the call queue never filled");
            }
            let mut r = results.lock().unwrap();
            let s = |x: Result<(), Error>| x.map_err(|e| e.to_string());
            r.push(("flush", s(client.flush())));
            r.push(("reset", s(client.reset())));
            r.push(("conditions", s(client.set_device_conditions(wifi()))));
            r.push(("opt_out", s(client.opt_out())));
            r.push(("opt_in", s(client.opt_in())));
            let blocking = client.flush_blocking(Duration::from_secs(3600));
            r.push(("flush_blocking", s(blocking.map(|_| ()))));
            done.store(true, Ordering::SeqCst);
        }
    };
    let client = start_reachable(
        Builder::new("test-key", c.url(), dir.path())
            .conditions(wifi())
            .with_policy(|p| p.call_queue_capacity = 64)
            .listener(listener),
        &slot,
    );
    util::wait_until(WAIT, || done.load(Ordering::SeqCst));
    if !done.load(Ordering::SeqCst) {
        // Deadlocked: dropping the client would hang this test too.
        std::mem::forget(client);
        panic!("the listener never returned: the background thread is deadlocked");
    }
    let results = results.lock().unwrap().clone();
    for (name, r) in &results[..5] {
        assert!(r.is_ok(), "{name}: {r:?}");
    }
    let (name, blocking) = &results[5];
    assert_eq!(*name, "flush_blocking");
    let err = blocking.as_ref().unwrap_err();
    assert!(err.contains("listener"), "{err}");
    client.track("After", json!({})).unwrap();
    client.flush_blocking(WAIT).unwrap();
    assert!(c.wait_for_events(2, WAIT));
    assert!(c.events().iter().any(|e| e["event"] == "After"));
    client.shutdown(WAIT).unwrap();
}

/// A transport that never returns from its first request does not stop uploads for
/// good: after `upload_timeout` the request is abandoned (reported as a failed upload)
/// and later requests go out on a fresh thread.
#[test]
fn stuck_transport_is_abandoned() {
    let dir = tempfile::tempdir().unwrap();
    let notes = Notes::default();
    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    let calls = Arc::new(AtomicU64::new(0));
    let transport = {
        let (gate, calls) = (Arc::clone(&gate), Arc::clone(&calls));
        move |_: &trailhound::HttpRequest| {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                // Blocks until the test ends: a transport that never answers.
                let (lock, cond) = &*gate;
                let _released = cond
                    .wait_while(lock.lock().unwrap(), |open| !*open)
                    .unwrap();
                return UploadResult::NetworkError("released at the end of the test".into());
            }
            UploadResult::Response {
                status: 200,
                retry_after: None,
            }
        }
    };
    let client = builder("https://collector.invalid", dir.path(), &notes)
        .conditions(wifi())
        .with_policy(|p| {
            p.request_timeout = Duration::from_millis(200);
            p.upload_timeout = Duration::from_millis(300);
        })
        .transport(transport)
        .build()
        .unwrap();
    for i in 0..5 {
        client.track("Stuck", json!({"i": i})).unwrap();
    }
    client.flush().unwrap();
    let stats = wait_stats(&client, |s| s.delivered == 5);
    let heard = notes
        .lock()
        .unwrap()
        .iter()
        .any(|n| matches!(n, Notification::UploadFailed { status: None, .. }));
    let released = || {
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
    };
    released();
    assert_eq!(stats.delivered, 5, "delivered on a fresh thread: {stats:?}");
    assert!(heard, "the listener heard the abandoned upload fail");
    client.shutdown(WAIT).unwrap();
}

/// Storage stalling (the database locked) under a flood of `track()` calls: what waits
/// in memory stays within the policy (`track()` returns `Backpressure` instead), control
/// calls still work, and once storage recovers everything accepted is committed and
/// delivered.
#[test]
fn storage_stall_bounds_memory_then_recovers() {
    const CAPACITY: usize = 100;
    const UNCOMMITTED: usize = 100;
    let c = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let notes = Notes::default();
    let client = builder(c.url(), dir.path(), &notes)
        .with_policy(|p| {
            p.call_queue_capacity = CAPACITY;
            p.commit_max_events = 50;
            p.max_uncommitted_events = UNCOMMITTED;
        })
        .build()
        .unwrap();
    let lock = lock_database(dir.path());
    let store_errors = || {
        notes
            .lock()
            .unwrap()
            .iter()
            .filter(|n| matches!(n, Notification::StoreError { .. }))
            .count()
    };
    let mut accepted = 0u64;
    let mut refused = 0u64;
    let mut most_uncommitted = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    // Until the background thread has failed to commit twice (a retry included).
    while store_errors() < 2 && Instant::now() < deadline {
        match client.track("Flood", json!({"i": accepted})) {
            Ok(()) => accepted += 1,
            Err(Error::Backpressure) => {
                refused += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => panic!("{e}"),
        }
        most_uncommitted = most_uncommitted.max(client.stats().uncommitted_events);
        assert!(
            accepted <= (UNCOMMITTED + CAPACITY) as u64,
            "memory is not bounded: {accepted} events accepted while storage fails"
        );
    }
    assert!(store_errors() >= 2, "storage never failed");
    assert!(refused > 0, "track() returned Backpressure");
    assert!(
        most_uncommitted <= UNCOMMITTED as u64,
        "uncommitted events in memory: {most_uncommitted}"
    );
    // Control calls are not held up by the stalled events.
    client.set_device_conditions(offline()).unwrap();
    drop(lock);
    let stats = wait_stats(&client, |s| {
        s.accepted == accepted && s.uncommitted_events == 0
    });
    assert_eq!(
        stats.queued_events,
        accepted,
        "every accepted event committed: {stats:?} {:?}",
        notes.lock().unwrap()
    );
    client.set_device_conditions(wifi()).unwrap();
    assert!(c.wait_for_events(accepted as usize, WAIT), "and delivered");
    assert_eq!(c.events().len() as u64, accepted);
    client.shutdown(WAIT).unwrap();
}

/// `shutdown` from a listener (on the background thread) returns at once instead of
/// waiting for itself; the client stops, and a later `shutdown` from the app returns
/// the outcome.
#[test]
fn shutdown_from_a_listener_does_not_wait_for_itself() {
    let c = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let slot: Arc<OnceLock<Weak<Client>>> = Arc::new(OnceLock::new());
    let answer: Arc<Mutex<Option<String>>> = Arc::default();
    let listener = {
        let (slot, answer) = (Arc::clone(&slot), Arc::clone(&answer));
        move |n: &Notification| {
            if !matches!(n, Notification::Delivered { .. }) {
                return;
            }
            if let Some(client) = slot.get().and_then(Weak::upgrade) {
                let r = client.shutdown(Duration::from_secs(3600));
                *answer.lock().unwrap() = Some(format!("{r:?}"));
            }
        }
    };
    let client = start_reachable(
        Builder::new("test-key", c.url(), dir.path())
            .conditions(wifi())
            .listener(listener),
        &slot,
    );
    util::wait_until(WAIT, || answer.lock().unwrap().is_some());
    let Some(answer) = answer.lock().unwrap().clone() else {
        std::mem::forget(client);
        panic!("the listener's shutdown never returned");
    };
    assert!(answer.contains("FromListener"), "{answer}");
    assert!(matches!(
        client.track("Late", json!({})),
        Err(Error::Closed)
    ));
    client.shutdown(WAIT).unwrap();
    assert!(queued(dir.path()).is_empty(), "First was delivered");
}

/// Control calls pile up no further than a bound while the background thread waits on a
/// locked database: a loop calling `flush()` gets `Backpressure` instead of growing memory,
/// and the client works normally once storage recovers.
#[test]
fn control_calls_are_bounded_while_storage_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let notes = Notes::default();
    let client = start_offline(dir.path(), &notes);
    let lock = lock_database(dir.path());
    client.track("Blocked", json!({"t": 0, "i": 0})).unwrap();
    // Commits at once: the background thread now waits on the lock (busy timeout).
    client.app_backgrounded().unwrap();
    let mut calls = 0u64;
    let refused = loop {
        match client.flush() {
            Ok(()) => calls += 1,
            Err(Error::Backpressure) => break true,
            Err(e) => panic!("{e}"),
        }
        if calls >= 1_000_000 {
            break false;
        }
    };
    assert!(refused, "{calls} flush calls queued without bound");
    drop(lock);
    let stats = wait_stats(&client, |s| s.accepted == 1 && s.uncommitted_events == 0);
    assert_eq!(stats.queued_events, 1);
    client.flush().unwrap();
    client.shutdown(WAIT).unwrap();
    assert_eq!(queued(dir.path()).len(), 1);
}
