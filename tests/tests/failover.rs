//! Several endpoints in the native runtime (issue 12): a dead primary and a live fallback,
//! both real loopback servers, with the primary's death injected at the socket (a reset,
//! or nothing listening) and switched off at run time.

use std::cell::Cell;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use trailhound::core::breaker::{BreakerState, OpenReason};
use trailhound::{Builder, Client, Notification};
use trailhound_tests::collector::Collector;
use trailhound_tests::hostile::{HostileServer, Reply, Request};
use trailhound_tests::util::{recording_builder, wait_stats, wait_until, wifi, Notes};

const WAIT: Duration = Duration::from_secs(20);

/// A primary endpoint that resets every connection (no answer: a network error) while
/// `dead` is set, and accepts every batch once it is cleared.
fn primary(dead: bool) -> (HostileServer, Arc<AtomicBool>) {
    let flag = Arc::new(AtomicBool::new(dead));
    let f = Arc::clone(&flag);
    let server = HostileServer::start(move |_: &Request| {
        if f.load(Ordering::SeqCst) {
            Reply::Reset
        } else {
            Reply::status(200)
        }
    });
    (server, flag)
}

/// A recording client sending to `primary` first and `fallback` second, on Wi-Fi, each
/// event uploaded as soon as it is committed (no `flush()`, which would end our own
/// backoff: these tests let the breaker's wait run out by itself), with breakers open for
/// `backoff` (jitter draws from its upper half).
fn builder(primary: &str, fallback: &str, dir: &Path, notes: &Notes, backoff: Duration) -> Builder {
    recording_builder(primary, dir, notes, backoff)
        .fallback_endpoint(fallback)
        .conditions(wifi())
        .with_policy(|p| {
            p.backoff_base = backoff;
            p.flush_at = 1;
            p.prompt_delay = Duration::ZERO;
            p.commit_interval = Duration::from_millis(20);
        })
}

/// `http://127.0.0.1:PORT`: how the runtime names an endpoint in stats and notifications.
fn base(server: &HostileServer) -> String {
    server.url()
}

fn opened(notes: &Notes, url: &str) -> Vec<OpenReason> {
    notes
        .lock()
        .unwrap()
        .iter()
        .filter_map(|n| match n {
            Notification::EndpointOpened { url: u, reason, .. } if u == url => Some(*reason),
            _ => None,
        })
        .collect()
}

fn closed(notes: &Notes, url: &str) -> usize {
    notes
        .lock()
        .unwrap()
        .iter()
        .filter(|n| matches!(n, Notification::EndpointClosed { url: u } if u == url))
        .count()
}

/// Tracks `n` events tagged `tag`; returns nothing (their ids are read at the servers).
fn track(client: &Client, tag: &str, n: usize) {
    for i in 0..n {
        client
            .track("Failover", json!({ "tag": tag, "i": i }))
            .unwrap();
    }
}

/// How many times each `messageId` was stored, over both servers.
fn stored(primary: &HostileServer, fallback: &Collector) -> HashMap<String, usize> {
    let mut count = HashMap::new();
    for id in primary
        .stored_ids()
        .into_iter()
        .chain(fallback.message_ids())
    {
        *count.entry(id).or_insert(0) += 1;
    }
    count
}

/// Primary dead (connections reset): every event arrives at the fallback exactly once,
/// the primary's breaker is open and the listener heard it open. The primary comes back:
/// once its breaker's wait is over, a probe takes traffic back to it and the listener
/// hears it close; no event is stored twice over the pair.
#[test]
fn dead_primary_fails_over_then_traffic_returns() {
    let (p, dead) = primary(true);
    let fallback = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let notes = Notes::default();
    let client = builder(
        p.url().as_str(),
        fallback.url(),
        dir.path(),
        &notes,
        Duration::from_secs(2),
    )
    .build()
    .unwrap();

    track(&client, "outage", 30);
    assert!(
        fallback.wait_for_events(30, WAIT),
        "delivered by the fallback"
    );
    let stats = wait_stats(&client, WAIT, |s| s.delivered == 30);
    assert_eq!(stats.delivered, 30);
    assert!(!p.requests().is_empty(), "the primary was tried");
    assert!(p.stored_ids().is_empty());
    assert_eq!(fallback.duplicates(), 0);
    assert!(fallback.requests().iter().all(|r| r.path == "/v1/batch"));
    let primary_stats = &stats.endpoints[0];
    assert_eq!(primary_stats.url, base(&p));
    assert_eq!(primary_stats.state, BreakerState::Open);
    assert_eq!(primary_stats.reason, Some(OpenReason::Network));
    assert!(primary_stats.failures >= 1);
    assert!(primary_stats.last_error.is_some());
    assert_eq!(stats.endpoints[1].state, BreakerState::Closed);
    assert_eq!(stats.endpoints[1].url, fallback.url());
    assert_eq!(
        opened(&notes, &base(&p)).first(),
        Some(&OpenReason::Network),
        "the listener heard the primary open"
    );
    let tried = p.requests().len();

    // The primary recovers. Events keep going to the fallback until the breaker's wait is
    // over; then one goes to the primary as a probe, and it takes the traffic back.
    dead.store(false, Ordering::SeqCst);
    let tracked = Cell::new(30);
    let back = wait_until(WAIT, || {
        if !p.stored_ids().is_empty() {
            return true;
        }
        client
            .track("Failover", json!({ "tag": "recovery" }))
            .unwrap();
        tracked.set(tracked.get() + 1);
        std::thread::sleep(Duration::from_millis(50));
        false
    });
    assert!(back, "traffic returned to the primary");
    assert!(p.requests().len() > tried);
    assert!(
        wait_until(WAIT, || closed(&notes, &base(&p)) == 1),
        "the listener heard the primary close"
    );

    // Closed again: what follows goes to the primary.
    let at_fallback = fallback.message_ids().len();
    track(&client, "after", 5);
    let all = tracked.get() as u64 + 5;
    let stats = wait_stats(&client, WAIT, |s| s.delivered == all);
    assert_eq!(stats.delivered, all);
    assert_eq!(stats.endpoints[0].state, BreakerState::Closed);
    assert_eq!(
        fallback.message_ids().len(),
        at_fallback,
        "none went to the fallback"
    );
    let counts = stored(&p, &fallback);
    assert_eq!(counts.len() as u64, all);
    assert!(
        counts.values().all(|&n| n == 1),
        "every event stored exactly once over both endpoints"
    );
    client.shutdown(WAIT).unwrap();
}

/// The breaker state survives a restart: right after it, the primary is still open, and
/// the first batch goes to the fallback without trying the primary.
#[test]
fn open_breaker_survives_restart() {
    let (p, _dead) = primary(true);
    let fallback = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    // Far longer than the test: the breaker cannot reopen by itself meanwhile.
    let long = Duration::from_secs(600);
    let notes = Notes::default();
    let client = builder(p.url().as_str(), fallback.url(), dir.path(), &notes, long)
        .build()
        .unwrap();
    track(&client, "first run", 3);
    assert!(fallback.wait_for_events(3, WAIT));
    assert_eq!(p.requests().len(), 1, "one attempt at the primary");
    let stats = wait_stats(&client, WAIT, |s| s.delivered == 3);
    assert_eq!(stats.endpoints[0].state, BreakerState::Open);
    client.shutdown(WAIT).unwrap();

    let notes = Notes::default();
    let client = builder(p.url().as_str(), fallback.url(), dir.path(), &notes, long)
        .build()
        .unwrap();
    let stats = client.stats();
    assert_eq!(stats.endpoints[0].state, BreakerState::Open, "restored");
    assert_eq!(stats.endpoints[0].reason, Some(OpenReason::Network));
    assert!(stats.endpoints[0].retry_at_ms.is_some());
    track(&client, "second run", 3);
    assert!(fallback.wait_for_events(6, WAIT), "went to the fallback");
    assert_eq!(p.requests().len(), 1, "the primary was not tried again");
    assert_eq!(fallback.duplicates(), 0);
    client.shutdown(WAIT).unwrap();
    assert_eq!(p.requests().len(), 1, "nor at shutdown");
}

/// Nothing listening at the primary (connection refused): the fallback delivers
/// everything once; the primary's figures say why.
#[test]
fn refused_primary_uses_the_fallback() {
    // A port that was free a moment ago and has nothing listening now.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = format!("http://127.0.0.1:{port}");
    let fallback = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let notes = Notes::default();
    let client = builder(
        &dead,
        fallback.url(),
        dir.path(),
        &notes,
        Duration::from_secs(600),
    )
    .build()
    .unwrap();
    track(&client, "refused", 10);
    assert!(fallback.wait_for_events(10, WAIT));
    let stats = wait_stats(&client, WAIT, |s| s.delivered == 10);
    assert_eq!(stats.delivered, 10);
    assert_eq!(fallback.duplicates(), 0);
    let e = &stats.endpoints[0];
    assert_eq!(
        (e.state, e.reason),
        (BreakerState::Open, Some(OpenReason::Network))
    );
    assert_eq!((e.requests, e.failures), (1, 1));
    assert_eq!(
        stats.endpoints[1].requests,
        fallback.requests().len() as u64
    );
    assert_eq!(opened(&notes, &dead), [OpenReason::Network]);
    client.shutdown(WAIT).unwrap();
}
