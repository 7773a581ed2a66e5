//! The hand-off from the callers to the engine thread: no event waits for a wake-up that
//! never comes, and the engine thread wakes only when it has something to do (see the
//! `Bell` in core/trailhound/src/worker.rs).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::json;
use trailhound::{Builder, Client, Notification, Policy, Stats};
use trailhound_tests::collector::Collector;
use trailhound_tests::util::{offline, wait_stats, wifi, SplitMix64};

/// Generous: these waits end as soon as the commit is seen, normally within milliseconds.
const WAIT: Duration = Duration::from_secs(10);

/// The tests that count the engine thread's context switches find it by name: one client
/// at a time in this file.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn offline_client(dir: &Path, change: impl FnOnce(&mut Policy)) -> Client {
    Builder::new("test-key", "https://collector.invalid", dir)
        .conditions(offline())
        .with_policy(change)
        .build()
        .unwrap()
}

/// Waits until `n` events were taken by the engine and all of them are committed.
fn committed(client: &Client, n: u64) -> Stats {
    wait_stats(client, WAIT, |s| {
        s.accepted == n && s.queued_events == n && s.uncommitted_events == 0
    })
}

/// Polls every 100 us (a lost wake-up shows at the end of every burst, so the test checks
/// after each) until `n` events are committed, at most [`WAIT`].
fn committed_soon(client: &Client, n: u64) -> Stats {
    let deadline = Instant::now() + WAIT;
    loop {
        let s = client.stats();
        let done = s.accepted == n && s.queued_events == n && s.uncommitted_events == 0;
        if done || Instant::now() > deadline {
            return s;
        }
        std::thread::sleep(Duration::from_micros(100));
    }
}

/// Threads tracking at once, in bursts, with tiny commit intervals and groups, get every
/// event committed after every burst without any flush or other control call: no event
/// is left waiting for a wake-up (thousands of bursts, each ending in its own
/// interleaving).
#[test]
fn racing_trackers_are_all_committed_without_a_flush() {
    let _serial = serial();
    const THREADS: usize = 4;
    const BURSTS: u64 = 150;
    let mut rng = SplitMix64(0x5eed);
    for round in 0..12 {
        let interval = Duration::from_millis(rng.below(3));
        let group = [1, 2, 3, 7, 64, 256][rng.below(6) as usize];
        let dir = tempfile::tempdir().unwrap();
        let client = Arc::new(offline_client(dir.path(), |p| {
            p.commit_interval = interval;
            p.commit_max_events = group;
        }));
        // Each burst: the threads start together, track 1 to 3 events each, and end together.
        let gate = Arc::new(Barrier::new(THREADS + 1));
        let sent = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let (client, gate, sent) =
                    (Arc::clone(&client), Arc::clone(&gate), Arc::clone(&sent));
                let seed = rng.next_u64();
                std::thread::spawn(move || {
                    let mut rng = SplitMix64(seed);
                    for burst in 0..BURSTS {
                        gate.wait();
                        for i in 0..1 + rng.below(3) {
                            if rng.below(2) == 0 {
                                std::thread::yield_now();
                            }
                            client
                                .track("Raced", json!({"t": t, "b": burst, "i": i}))
                                .unwrap();
                            sent.fetch_add(1, Ordering::SeqCst);
                        }
                        gate.wait();
                    }
                })
            })
            .collect();
        for burst in 0..BURSTS {
            gate.wait();
            gate.wait();
            let n = sent.load(Ordering::SeqCst);
            let s = committed_soon(&client, n);
            assert_eq!(
                (s.accepted, s.queued_events, s.uncommitted_events),
                (n, n, 0),
                "round {round} burst {burst} (commit_interval {interval:?}, \
                 commit_max_events {group}): {s:?}"
            );
        }
        for t in threads {
            t.join().unwrap();
        }
    }
}

/// One event and no further call is committed by its commit timer; so is an event sent
/// while that timer is already running (it does not wake the engine thread, it joins the
/// commit), and the next lone event after the commit starts a timer of its own.
#[test]
fn lone_events_are_committed_by_the_timer() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let client = offline_client(dir.path(), |p| {
        p.commit_interval = Duration::from_millis(300);
    });
    client.track("Alone", json!({})).unwrap();
    assert_eq!(committed(&client, 1).queued_events, 1);
    client.track("First", json!({})).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    client.track("Joins the first's commit", json!({})).unwrap();
    assert_eq!(committed(&client, 3).queued_events, 3);
    client.track("Alone again", json!({})).unwrap();
    assert_eq!(committed(&client, 4).queued_events, 4);
}

/// The `(voluntary, involuntary)` context switches of each of this process's threads
/// named `name`, by thread id.
#[cfg(target_os = "linux")]
fn switches(name: &str) -> std::collections::BTreeMap<u64, (u64, u64)> {
    let mut out = std::collections::BTreeMap::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let task = task.unwrap();
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim_end() != name {
            continue;
        }
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        let field = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        let tid = task.file_name().to_string_lossy().parse().unwrap_or(0);
        out.insert(
            tid,
            (
                field("voluntary_ctxt_switches:"),
                field("nonvoluntary_ctxt_switches:"),
            ),
        );
    }
    out
}

/// The engine thread of a client built by `build`: the one thread named `trailhound`
/// that was not there before.
#[cfg(target_os = "linux")]
fn engine_thread(build: impl FnOnce() -> Client) -> (Client, u64) {
    let before = switches("trailhound");
    let client = build();
    let new: Vec<u64> = switches("trailhound")
        .into_keys()
        .filter(|tid| !before.contains_key(tid))
        .collect();
    assert_eq!(new.len(), 1, "one new engine thread: {new:?}");
    (client, new[0])
}

#[cfg(target_os = "linux")]
fn voluntary(tid: u64) -> u64 {
    switches("trailhound").get(&tid).map_or(0, |s| s.0)
}

/// Calls paced a millisecond apart do not wake the engine thread one by one: the first
/// starts the commit timer, the others join its commit (before, every send woke it).
#[cfg(target_os = "linux")]
#[test]
fn paced_calls_do_not_wake_the_engine_thread_each() {
    let _serial = serial();
    const CALLS: u64 = 200;
    let dir = tempfile::tempdir().unwrap();
    let (client, tid) = engine_thread(|| {
        offline_client(dir.path(), |p| {
            // Longer than the calls take: one commit timer covers them all.
            p.commit_interval = Duration::from_secs(5);
            p.commit_max_events = 1_000;
        })
    });
    let before = voluntary(tid);
    for i in 0..CALLS {
        client.track("Paced", json!({"i": i})).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    let woken = voluntary(tid) - before;
    assert!(
        woken <= CALLS / 10,
        "the engine thread blocked {woken} times for {CALLS} paced calls"
    );
    assert_eq!(committed(&client, CALLS).queued_events, CALLS);
}

/// An idle client wakes no thread: not with an empty queue, and not while committed
/// events wait for their upload (the engine thread sleeps until that deadline).
#[cfg(target_os = "linux")]
#[test]
fn an_idle_client_wakes_no_thread() {
    let _serial = serial();
    let all = || {
        let mut s = switches("trailhound");
        s.extend(switches("trailhound-uplo"));
        s
    };
    let dir = tempfile::tempdir().unwrap();
    // Online, to a port nothing listens on: an upload is due only after prompt_delay.
    let client = Builder::new("test-key", "http://127.0.0.1:9", dir.path())
        .conditions(wifi())
        .with_policy(|p| {
            p.prompt_delay = Duration::from_secs(600);
            p.flush_at = 1_000;
        })
        .build()
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let before = all();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(all(), before, "an empty queue woke a thread");

    for i in 0..5 {
        client.track("Waiting", json!({"i": i})).unwrap();
    }
    assert_eq!(committed(&client, 5).queued_events, 5);
    std::thread::sleep(Duration::from_millis(100));
    let before = all();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        all(),
        before,
        "events waiting for their upload woke a thread"
    );
    assert_eq!(client.stats().requests, 0);
}

/// A listener that parks (as blocking on a channel does) runs on the engine thread and may
/// take the unpark meant for it: no wake-up is lost all the same. Bursts from several
/// threads while uploads (and so listener calls) go on; every burst is committed and
/// every event delivered without a flush.
#[test]
fn a_listener_that_parks_loses_no_wake_up() {
    let _serial = serial();
    const THREADS: usize = 3;
    const BURSTS: u64 = 60;
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let client = Arc::new(
        Builder::new("test-key", collector.url(), dir.path())
            .conditions(wifi())
            .with_policy(|p| {
                p.commit_interval = Duration::from_millis(1);
                p.flush_at = 2;
                p.prompt_delay = Duration::ZERO;
            })
            .listener(|_: &Notification| std::thread::park_timeout(Duration::from_millis(1)))
            .build()
            .unwrap(),
    );
    let gate = Arc::new(Barrier::new(THREADS + 1));
    let sent = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (client, gate, sent) = (Arc::clone(&client), Arc::clone(&gate), Arc::clone(&sent));
            std::thread::spawn(move || {
                let mut rng = SplitMix64(t as u64 + 1);
                for burst in 0..BURSTS {
                    gate.wait();
                    for i in 0..1 + rng.below(3) {
                        client
                            .track("Parked", json!({"t": t, "b": burst, "i": i}))
                            .unwrap();
                        sent.fetch_add(1, Ordering::SeqCst);
                    }
                    gate.wait();
                }
            })
        })
        .collect();
    for burst in 0..BURSTS {
        gate.wait();
        gate.wait();
        let n = sent.load(Ordering::SeqCst);
        let s = wait_stats(&client, WAIT, |s| {
            s.accepted == n && s.uncommitted_events == 0
        });
        assert_eq!(
            (s.accepted, s.uncommitted_events),
            (n, 0),
            "burst {burst}: {s:?}"
        );
    }
    for t in threads {
        t.join().unwrap();
    }
    let n = sent.load(Ordering::SeqCst);
    let s = wait_stats(&client, WAIT, |s| s.delivered == n);
    assert_eq!(s.delivered, n, "{s:?}");
}
