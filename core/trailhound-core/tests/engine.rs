//! Behaviour of the engine, driven on a virtual clock through `trailhound_core::testing`.

use serde_json::Value;
use trailhound_core::message::iso8601;
use trailhound_core::retry::Jitter;
use trailhound_core::store::{self, conformance, execute};
use trailhound_core::testing::*;
use trailhound_core::*;

/// 2025-06-15T15:06:40Z.
const T0: i64 = 1_750_000_000_000;

fn harness() -> Harness {
    Harness::new(Policy::default(), 7, T0)
}

/// A harness whose prompt uploads go at the `flush_at`-th event, without gathering: the
/// set-up of tests about what happens to a request.
fn eager() -> Harness {
    let policy = Policy {
        prompt_gather: std::time::Duration::ZERO,
        ..Policy::default()
    };
    Harness::new(policy, 7, T0)
}

/// A policy whose batches are always read back from the store.
fn loads_only() -> Policy {
    Policy {
        batches_from_memory: false,
        ..Policy::default()
    }
}

/// How long held tiers (cellular, low battery, background) wait: `max_delay` less the
/// margin that lets the upload land within it.
fn held(p: &Policy) -> i64 {
    ms(p.max_delay) - ms(p.upload_margin)
}

fn ms(d: std::time::Duration) -> i64 {
    d.as_millis() as i64
}

/// Tracks `n` events at the current instant.
fn track_n<S: QueueStore>(h: &mut Harness<S>, n: usize) -> Vec<String> {
    (0..n).map(|i| h.track(&format!("Event {i}"))).collect()
}

/// The `messageId`s in the store, oldest first.
fn stored_ids<S: QueueStore>(h: &mut Harness<S>) -> Vec<String> {
    let events = h.store_mut().load(usize::MAX, usize::MAX).unwrap();
    events.into_iter().map(|e| e.message_id).collect()
}

fn inserts<S: QueueStore>(h: &Harness<S>) -> Vec<(i64, usize)> {
    h.store_calls
        .iter()
        .filter(|c| c.op == "insert" && c.failed.is_none())
        .map(|c| (c.at_ms, c.events))
        .collect()
}

fn low_power_wifi() -> DeviceConditions {
    DeviceConditions {
        low_power_mode: true,
        ..wifi_charging()
    }
}

// ----- group commit -----

/// Events are committed together once `commit_interval` has passed since the first, never earlier.
#[test]
fn group_commit_waits_for_the_interval() {
    let mut h = harness();
    h.set_conditions(offline());
    let a = h.track("a");
    h.advance(50);
    h.track("b");
    h.advance(100);
    h.track("c");
    h.run_until(T0 + 199);
    assert!(
        inserts(&h).is_empty(),
        "nothing is inserted before the interval"
    );
    assert_eq!(h.stats().uncommitted_events, 3);
    h.run_until(T0 + 200);
    assert_eq!(
        inserts(&h),
        vec![(T0 + 200, 3)],
        "one transaction for the three"
    );
    assert_eq!(h.stats().uncommitted_events, 0);
    assert_eq!(stored_ids(&mut h)[0], a);
}

/// `commit_max_events` events are committed at once, without waiting for the interval.
#[test]
fn group_commit_at_max_events() {
    let mut h = harness();
    h.set_conditions(offline());
    let max = h.engine().policy().commit_max_events;
    track_n(&mut h, max - 1);
    assert!(inserts(&h).is_empty());
    h.track("last of the group");
    assert_eq!(inserts(&h), vec![(T0, max)]);
    h.track("next group");
    h.advance(SECOND);
    assert_eq!(inserts(&h), vec![(T0, max), (T0 + 200, 1)]);
}

/// A drain longer than twice `commit_max_events` (a call queue that filled while the
/// runtime was busy, or events kept while storage failed) is committed in groups of that
/// many, in order, at once, until at most twice that many are left, which go together: no
/// commit grows with the backlog, and none is left waiting for its interval.
#[test]
fn a_long_drain_commits_in_groups_of_max_events() {
    let mut h = harness();
    h.set_conditions(offline());
    let max = h.engine().policy().commit_max_events;
    let ids = h.track_drain(4 * max + max / 2);
    assert_eq!(
        inserts(&h),
        vec![(T0, max), (T0, max), (T0, max), (T0, max + max / 2)]
    );
    assert_eq!(h.stats().uncommitted_events, 0);
    assert_eq!(stored_ids(&mut h), ids);
    // Just over one commit's worth goes as one.
    h.track_drain(max + 1);
    assert_eq!(inserts(&h).last(), Some(&(T0, max + 1)));
    assert_eq!(h.stats().uncommitted_events, 0);
}

// ----- the response table -----

/// A 2xx deletes the batch from the store, notifies Delivered with its ids and resets nothing else.
#[test]
fn success_deletes_and_notifies() {
    let mut h = harness();
    let ids = track_n(&mut h, 3);
    h.flush();
    assert_eq!(h.requests.len(), 1);
    assert_eq!(h.requests[0].message_ids, ids);
    assert!(h.notifications.iter().any(|(_, n)| *n
        == Notification::Delivered {
            message_ids: ids.clone()
        }));
    assert!(stored_ids(&mut h).is_empty());
    let s = h.stats();
    assert_eq!(
        (s.delivered, s.batches_delivered, s.queued_events),
        (3, 1, 0)
    );
}

/// A retried batch keeps its messageIds, and `sentAt` is re-stamped with the time of each attempt.
#[test]
fn retries_keep_message_ids_and_restamp_sent_at() {
    let mut h = harness();
    h.set_latency(120);
    h.script([status(503), network_error(), status(500), ok()]);
    let ids = track_n(&mut h, 20);
    h.advance(10 * MINUTE);
    assert_eq!(h.requests.len(), 4);
    let mut times = Vec::new();
    for r in &h.requests {
        assert_eq!(r.message_ids, ids, "same events, same order, same ids");
        assert_eq!(
            r.sent_at,
            iso8601(r.at_ms),
            "sentAt is the time of this attempt"
        );
        times.push(r.at_ms);
    }
    times.dedup();
    assert_eq!(times.len(), 4, "every attempt at its own time");
    assert!(ids.iter().all(|id| h.delivery_count(id) == 1));
}

/// 503s and network errors are retried after a backoff that doubles, jittered within [half, full].
#[test]
fn backoff_grows() {
    let mut h = harness();
    h.set_latency(300);
    h.script([
        status(503),
        status(503),
        network_error(),
        network_error(),
        status(503),
        network_error(),
        ok(),
    ]);
    track_n(&mut h, 20);
    h.advance(HOUR);
    assert_eq!(h.requests.len(), 7);
    let base = ms(h.engine().policy().backoff_base);
    let mut previous = 0;
    for (k, pair) in h.requests.windows(2).enumerate() {
        let gap = pair[1].at_ms - pair[0].done_ms;
        let nominal = base << k;
        assert!(
            gap >= nominal / 2 && gap <= nominal,
            "retry {}: waited {gap} ms, nominal {nominal}",
            k + 1
        );
        assert!(gap >= previous, "backoff never shrinks");
        previous = gap;
    }
    let attempts: Vec<u32> = h
        .notifications
        .iter()
        .filter_map(|(_, n)| match n {
            Notification::UploadFailed { attempts, .. } => Some(*attempts),
            _ => None,
        })
        .collect();
    assert_eq!(attempts, vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(h.stats().retries, 6);
    assert_eq!(h.stats().retry.attempts, 0, "a success resets the backoff");
}

/// `Retry-After` in seconds is honoured to the millisecond, for 503 and 429.
#[test]
fn retry_after_is_honoured_exactly() {
    for code in [503, 429] {
        let mut h = harness();
        h.set_latency(80);
        h.script([retry_after(code, "120"), ok()]);
        track_n(&mut h, 20);
        h.advance(HOUR);
        assert_eq!(h.requests.len(), 2);
        assert_eq!(
            h.requests[1].at_ms,
            h.requests[0].done_ms + 120 * SECOND,
            "status {code}"
        );
    }
}

/// A `Retry-After` longer than `backoff_max` is honoured only up to `backoff_max`.
#[test]
fn retry_after_is_capped() {
    let mut h = harness();
    h.script([retry_after(503, "86400"), ok()]);
    track_n(&mut h, 20);
    h.advance(DAY);
    assert_eq!(h.requests.len(), 2);
    assert_eq!(
        h.requests[1].at_ms,
        h.requests[0].done_ms + ms(h.engine().policy().backoff_max)
    );
}

/// `flush()` skips our own backoff, but not a server's `Retry-After`.
#[test]
fn flush_overrides_backoff_but_not_retry_after() {
    let mut h = eager();
    h.script([status(503), status(503)]);
    track_n(&mut h, 20);
    h.advance(SECOND / 4);
    h.flush();
    assert_eq!(h.requests.len(), 2, "own backoff skipped");
    h.script([retry_after(503, "300")]);
    h.advance(3 * MINUTE);
    let before = h.requests.len();
    h.flush();
    h.advance(MINUTE);
    assert_eq!(h.requests.len(), before, "the server's Retry-After stands");
}

/// Answers that say the endpoint is wrong (every 3xx, 404, 405, 410, other 4xx, 501, 505,
/// 1xx, nonsense) pause uploads and keep every event, then one probe after `auth_pause`
/// delivers them: a typo in the endpoint never empties the queue (issue 9, defect 3).
#[test]
fn misconfigured_endpoint_pauses_and_keeps_the_queue() {
    for code in [
        100, 199, 300, 301, 302, 303, 304, 307, 308, 404, 405, 409, 410, 418, 451, 501, 505, 600,
        999,
    ] {
        let mut h = harness();
        let pause = ms(h.engine().policy().auth_pause);
        h.script([status(code)]);
        let ids = track_n(&mut h, 20);
        h.advance(pause - MINUTE);
        assert_eq!(
            h.requests.len(),
            1,
            "status {code}: one request, then a pause"
        );
        assert_eq!(
            h.stats().dropped.total(),
            0,
            "status {code}: nothing dropped"
        );
        assert_eq!(stored_ids(&mut h), ids, "status {code}: the queue is kept");
        assert!(
            h.notifications.iter().any(|(_, n)| matches!(
                n,
                Notification::Paused { status, .. } if *status == code
            )),
            "status {code}: the listener hears the pause"
        );
        assert!(h
            .stats()
            .last_error
            .is_some_and(|e| e.contains("misconfigured")));
        h.advance(2 * MINUTE);
        assert_eq!(
            h.requests.len(),
            2,
            "status {code}: one probe after the pause"
        );
        assert!(ids.iter().all(|id| h.delivery_count(id) == 1));
    }
}

/// 408, 429 and 5xx other than 501 and 505 are retried and then delivered.
#[test]
fn retryable_statuses_are_retried() {
    for code in [408, 429, 500, 502, 503, 504] {
        let mut h = harness();
        h.script([status(code)]);
        let ids = track_n(&mut h, 20);
        h.advance(HOUR);
        assert_eq!(h.requests.len(), 2, "status {code}");
        assert!(
            ids.iter().all(|id| h.delivery_count(id) == 1),
            "status {code}"
        );
        assert_eq!(h.stats().dropped.total(), 0);
    }
}

/// A 413 splits a batch of 8 down to single events; the one still refused alone is dropped as too large, the other seven are delivered in the same flush.
#[test]
fn payload_too_large_splits_down_to_singles() {
    let mut h = harness();
    // A server whose body limit fits one small event, not two.
    h.respond_with(|r| if r.raw_bytes > 700 { status(413) } else { ok() });
    let mut ids = track_n(&mut h, 3);
    let mut props = Properties::new();
    props.insert("lyrics".into(), Value::String("la ".repeat(400)));
    let big = h.call(Call::Track {
        event: "Lyrics Shown".into(),
        properties: props,
    });
    ids.extend(track_n(&mut h, 4));
    h.flush();
    assert_eq!(h.requests[0].events, 8);
    assert_eq!(
        h.requests.len(),
        1 + 2 + 4 + 8,
        "halves, quarters, pairs, singles"
    );
    assert!(h.requests.iter().all(|r| r.at_ms == T0), "all in one burst");
    assert_eq!(h.dropped_ids(DropReason::TooLarge), vec![big]);
    assert!(ids.iter().all(|id| h.delivery_count(id) == 1));
    let s = h.stats();
    assert_eq!(
        (s.delivered, s.dropped.too_large, s.flushes, s.queued_events),
        (7, 1, 1, 0)
    );
}

/// A 400 on a batch isolates exactly the one bad event by halving; it is dropped as rejected and the rest delivered.
#[test]
fn bad_request_isolates_the_bad_event() {
    for code in [400, 422] {
        let mut h = harness();
        let ids = track_n(&mut h, 8);
        let bad = ids[5].clone();
        let refused = bad.clone();
        h.respond_with(move |r| {
            if r.message_ids.contains(&refused) {
                status(code)
            } else {
                ok()
            }
        });
        h.flush();
        assert!(
            h.requests.len() <= 7,
            "a binary search: {} requests",
            h.requests.len()
        );
        assert_eq!(
            h.dropped_ids(DropReason::Rejected { status: code }),
            vec![bad.clone()]
        );
        for id in ids.iter().filter(|id| **id != bad) {
            assert_eq!(h.delivery_count(id), 1, "{id} delivered once");
        }
        assert_eq!(h.stats().dropped.rejected, 1);
        assert_eq!(h.stats().queued_events, 0);
    }
}

/// A 401 pauses uploads for `auth_pause` while events keep queuing; then one probe carries them all.
#[test]
fn unauthorized_pauses_then_probes() {
    let mut h = eager();
    let pause = ms(h.engine().policy().auth_pause);
    h.script([status(401)]);
    track_n(&mut h, 20);
    assert_eq!(h.requests.len(), 1);
    let paused_at = h.requests[0].done_ms;
    assert!(h.notifications.iter().any(|(_, n)| *n
        == Notification::Paused {
            status: 401,
            resume_in_ms: pause as u64
        }));
    for _ in 0..30 {
        h.advance(MINUTE);
        h.track("while paused");
    }
    h.run_until(paused_at + pause - 1);
    assert_eq!(h.requests.len(), 1, "nothing during the pause");
    assert_eq!(h.stats().queued_events, 50);
    h.run_until(paused_at + pause);
    assert_eq!(h.requests.len(), 2);
    assert_eq!(
        h.requests[1].at_ms,
        paused_at + pause,
        "the probe goes when the pause ends"
    );
    assert_eq!(h.requests[1].events, 50);
    assert_eq!(h.stats().delivered, 50);
    assert_eq!(h.stats().retry.auth_paused_until_ms, None);
}

/// After a 403, `flush()` sends a probe at once instead of waiting for the pause to end.
#[test]
fn flush_probes_an_auth_pause_at_once() {
    let mut h = harness();
    h.script([status(403)]);
    track_n(&mut h, 20);
    h.advance(5 * MINUTE);
    h.track("one more");
    assert_eq!(h.requests.len(), 1);
    h.flush();
    assert_eq!(h.requests.len(), 2);
    assert_eq!(h.requests[1].at_ms, T0 + 5 * MINUTE);
    assert_eq!(h.stats().delivered, 21);
}

// ----- persistence -----

/// Retry state is persisted: an engine rebuilt from the store's snapshot waits for the same `next_attempt_ms`.
#[test]
fn retry_state_survives_a_restart() {
    let mut h = eager();
    h.script([retry_after(503, "600")]);
    let ids = track_n(&mut h, 20);
    h.advance(MINUTE);
    h.restart();
    assert_eq!(h.stats().retry.next_attempt_ms, Some(T0 + 600 * SECOND));
    assert_eq!(h.stats().retry.attempts, 1);
    h.advance(HOUR);
    assert_eq!(h.requests.len(), 2);
    assert_eq!(h.requests[1].at_ms, T0 + 600 * SECOND);
    assert!(ids.iter().all(|id| h.delivery_count(id) == 1));
}

/// Consecutive failures keep counting across a restart, so backoff keeps growing.
#[test]
fn backoff_attempts_survive_a_restart() {
    let mut h = harness();
    h.script([network_error(), network_error(), network_error()]);
    track_n(&mut h, 20);
    // The first retry comes within 2 s, the second no sooner than 2 s after it.
    h.advance(2_500);
    assert_eq!(h.requests.len(), 2);
    h.restart();
    h.advance(MINUTE);
    let attempts: Vec<u32> = h
        .notifications
        .iter()
        .filter_map(|(_, n)| match n {
            Notification::UploadFailed { attempts, .. } => Some(*attempts),
            _ => None,
        })
        .collect();
    assert_eq!(attempts, vec![1, 2, 3]);
    assert_eq!(h.stats().delivered, 20);
}

// ----- caps -----

/// Over the count cap the oldest events are evicted first, counted in stats and notified as CountCap.
#[test]
fn count_cap_evicts_oldest() {
    let policy = Policy {
        max_queue_events: 10,
        ..Policy::default()
    };
    let mut h = Harness::new(policy, 7, T0);
    h.set_conditions(offline());
    let mut ids = Vec::new();
    for _ in 0..15 {
        ids.push(h.track("e"));
        h.advance(SECOND);
    }
    assert_eq!(
        stored_ids(&mut h),
        ids[5..].to_vec(),
        "the newest ten are kept"
    );
    assert_eq!(h.stats().dropped.count_cap, 5);
    assert_eq!(h.dropped(DropReason::CountCap), 5);
    assert_eq!(h.stats().queued_events, 10);
}

/// Eviction spares the events being uploaded: an event is never both delivered and
/// dropped, and the caps take the newest unsent ones instead.
#[test]
fn eviction_spares_the_batch_in_flight() {
    let policy = Policy {
        max_queue_events: 10,
        max_batch_events: 4,
        ..Policy::default()
    };
    let mut h = Harness::new(policy, 7, T0);
    h.set_conditions(offline());
    let first = track_n(&mut h, 10);
    h.set_latency(10 * SECOND);
    h.set_conditions(wifi_charging());
    assert_eq!(h.requests.len(), 1, "the first batch is in flight");
    for _ in 0..6 {
        h.track("while uploading");
    }
    h.advance(200);
    assert_eq!(h.stats().dropped.count_cap, 6);
    h.advance(HOUR);
    for id in &first[..4] {
        assert_eq!(h.delivery_count(id), 1, "the batch in flight was delivered");
    }
    let evicted = h.removed_ids("evict");
    assert_eq!(
        evicted.len(),
        6,
        "the harness saw which events were evicted"
    );
    assert!(first[..4].iter().all(|id| !evicted.contains(id)));
    let stats = h.stats();
    assert_eq!(
        stats.delivered + stats.dropped.count_cap,
        16,
        "each event counted once"
    );
    assert_eq!(stats.queued_events, 0);
}

/// An event that crosses the age cap while its batch is being uploaded is neither
/// evicted nor spun on: the engine waits for the upload's answer.
#[test]
fn age_cap_during_an_upload_waits_for_it() {
    let policy = Policy {
        max_event_age: std::time::Duration::from_secs(60),
        ..Policy::default()
    };
    let mut h = Harness::new(policy, 7, T0);
    h.set_conditions(offline());
    let ids = track_n(&mut h, 3);
    h.advance(50 * SECOND);
    h.set_latency(30 * SECOND);
    h.set_conditions(wifi_charging());
    assert_eq!(h.requests.len(), 1, "in flight from T0+50s to T0+80s");
    // The harness panics if the engine asks to wake while doing nothing (a spin).
    h.advance(HOUR);
    for id in &ids {
        assert_eq!(h.delivery_count(id), 1);
    }
    assert_eq!(h.stats().dropped.age, 0, "delivered, not aged out");
    assert_eq!(h.stats().queued_events, 0);
}

/// Over the bytes cap the oldest events are evicted first, counted in stats and notified as BytesCap.
#[test]
fn bytes_cap_evicts_oldest() {
    let policy = Policy {
        max_event_bytes: 1024,
        max_queue_bytes: 4096,
        ..Policy::default()
    };
    let mut h = Harness::new(policy, 7, T0);
    h.set_conditions(offline());
    let mut ids = Vec::new();
    for _ in 0..30 {
        ids.push(h.track("e"));
        h.advance(SECOND);
    }
    let kept = stored_ids(&mut h);
    assert!(h.stats().queued_bytes <= 4096);
    assert_eq!(kept, ids[30 - kept.len()..].to_vec(), "the newest are kept");
    let dropped = (30 - kept.len()) as u64;
    assert!(dropped > 0);
    assert_eq!(h.stats().dropped.bytes_cap, dropped);
    assert_eq!(h.dropped(DropReason::BytesCap), dropped);
}

/// The bytes cap counts what the queue keeps: each event's own bytes, not a copy of the
/// context it shares with the other events (kept once), so a queue of typical events is
/// not evicted at a third of its cap.
#[test]
fn bytes_cap_counts_a_shared_context_once() {
    let sizes = {
        let mut h = Harness::new(Policy::default(), 7, T0);
        h.set_context_info(phone_context());
        h.set_conditions(offline());
        h.track("e");
        h.flush();
        h.advance(SECOND);
        let evs = h.store_mut().load(1, 1 << 20).unwrap();
        (evs[0].stored_bytes(), evs[0].bytes())
    };
    let (own, wire) = sizes;
    assert!(
        wire > 2 * own,
        "the context is most of a typical event: {own} of {wire}"
    );
    let policy = Policy {
        max_queue_bytes: 30 * own + 40,
        ..Policy::default()
    };
    let mut h = Harness::new(policy, 7, T0);
    h.set_context_info(phone_context());
    h.set_conditions(offline());
    for _ in 0..30 {
        h.track("e");
        h.advance(SECOND);
    }
    assert_eq!(h.stats().dropped.bytes_cap, 0);
    assert_eq!(h.stats().queued_events, 30);
    assert!(
        h.stats().queued_bytes <= 30 * own + 30,
        "{}",
        h.stats().queued_bytes
    );
    // Two more are over the cap: the oldest go.
    h.track("e");
    h.track("e");
    h.advance(SECOND);
    assert!(h.stats().dropped.bytes_cap >= 1);
}

/// Events older than `max_event_age` are evicted, oldest first, and notified as Age.
#[test]
fn age_cap_evicts_oldest() {
    let policy = Policy {
        max_event_age: std::time::Duration::from_secs(3600),
        ..Policy::default()
    };
    let mut h = Harness::new(policy, 7, T0);
    h.set_conditions(offline());
    h.track("old");
    h.advance(30 * MINUTE);
    let young = h.track("young");
    h.run_until(T0 + HOUR + SECOND);
    assert_eq!(stored_ids(&mut h), vec![young]);
    assert_eq!(h.stats().dropped.age, 1);
    h.run_until(T0 + 2 * HOUR);
    assert!(stored_ids(&mut h).is_empty());
    assert_eq!(h.dropped(DropReason::Age), 2);
}

/// A week offline with an event every 30 s never holds more than the caps, reaches both the count and the bytes cap, and drops only the oldest.
#[test]
fn a_week_offline_stays_within_the_caps() {
    // Scaled-down caps so that a week reaches them; the days alternate between small
    // events (the count cap binds) and large ones (the bytes cap binds).
    let policy = Policy {
        max_queue_events: 2_000,
        max_queue_bytes: 1024 * 1024,
        ..Policy::default()
    };
    let mut h = Harness::new(policy.clone(), 7, T0);
    h.set_conditions(offline());
    let mut tracked = 0u64;
    while h.now() < T0 + 7 * DAY {
        let day = (h.now() - T0) / DAY;
        let mut props = Properties::new();
        let blob = if day % 2 == 0 { 40 } else { 2_000 };
        props.insert("blob".into(), Value::String("x".repeat(blob)));
        h.call(Call::Track {
            event: "Song Played".into(),
            properties: props,
        });
        tracked += 1;
        h.advance(30 * SECOND);
        let snap = h.store_mut().snapshot().unwrap();
        assert!(
            snap.events <= policy.max_queue_events,
            "{} events",
            snap.events
        );
        assert!(snap.bytes <= policy.max_queue_bytes, "{} bytes", snap.bytes);
    }
    assert!(h.requests.is_empty());
    let s = h.stats();
    assert!(
        s.dropped.count_cap > 0 && s.dropped.bytes_cap > 0,
        "{:?}",
        s.dropped
    );
    assert_eq!(h.dropped(DropReason::CountCap), s.dropped.count_cap);
    assert_eq!(h.dropped(DropReason::BytesCap), s.dropped.bytes_cap);
    assert_eq!(
        s.dropped.total() + s.queued_events,
        tracked,
        "every event is stored or counted as dropped"
    );
    let kept = stored_ids(&mut h);
    let newest: Vec<String> = h.tracked[h.tracked.len() - kept.len()..]
        .iter()
        .map(|t| t.message_id.clone())
        .collect();
    assert_eq!(kept, newest, "what is kept is the newest");
}

// ----- opt-out -----

/// Opting out purges stored and uncommitted events, stops collection and is persisted; opting in resumes.
#[test]
fn opt_out_purges_and_persists() {
    let mut h = harness();
    h.set_conditions(offline());
    track_n(&mut h, 5);
    h.advance(SECOND);
    track_n(&mut h, 3);
    assert_eq!(h.stats().uncommitted_events, 3);
    h.opt_out(true);
    assert!(stored_ids(&mut h).is_empty());
    assert_eq!(h.stats().queued_events, 0);
    assert_eq!(h.dropped(DropReason::OptOut), 8);
    assert_eq!(h.stats().dropped.opt_out, 8);
    h.track("after opt-out");
    assert_eq!(h.stats().accepted, 8, "no longer collected");
    assert!(
        h.store_mut().snapshot().unwrap().state.unwrap().opted_out,
        "persisted"
    );
    h.restart();
    assert!(h.engine().opted_out(), "the choice survives a restart");
    h.set_conditions(wifi_charging());
    h.track("still out");
    h.advance(HOUR);
    assert!(h.requests.is_empty());
    h.opt_out(false);
    let id = h.track("back in");
    h.advance(MINUTE);
    assert_eq!(h.delivery_count(&id), 1);
    assert!(
        !h.store_mut().snapshot().unwrap().state.unwrap().opted_out,
        "persisted"
    );
}

/// An opt-out that arrives while a batch is being loaded (an asynchronous store) keeps that batch from being sent.
#[test]
fn opt_out_during_a_load_sends_nothing() {
    let mut store = MemoryStore::new();
    let mut engine = Engine::new(loads_only(), 1, store.snapshot().unwrap(), identity(1), T0);
    engine.handle_event(conformance::event(0, T0, 300), T0);
    engine.handle_flush(T0);
    let load = loop {
        let op = engine.poll_store(T0).expect("work to do").clone();
        if matches!(op, StoreOp::Load { .. }) {
            break op;
        }
        let result = execute(&mut store, &op);
        engine.handle_store(result, T0);
    };
    engine.handle_opt_out(true, T0);
    let loaded = execute(&mut store, &load);
    engine.handle_store(loaded, T0);
    assert_eq!(
        engine.poll_transmit(T0),
        None,
        "nothing is sent after opt-out"
    );
}

/// An acknowledged batch is owed a delete from the answer until the store confirms it, a
/// failed delete included: what a runtime that may be gone mid-operation keeps aside.
#[test]
fn acknowledged_events_are_owed_a_delete_until_the_store_confirms_it() {
    let mut store = MemoryStore::new();
    let mut engine = Engine::new(loads_only(), 1, store.snapshot().unwrap(), identity(1), T0);
    for i in 0..3 {
        engine.handle_event(conformance::event(0, T0 + i, 300), T0);
    }
    engine.handle_flush(T0);
    let transmit = loop {
        if let Some(op) = engine.poll_store(T0).cloned() {
            let result = execute(&mut store, &op);
            engine.handle_store(result, T0);
        } else if let Some(t) = engine.poll_transmit(T0) {
            break t;
        } else {
            panic!("neither a store operation nor a request");
        }
    };
    assert_eq!(transmit.events, 3);
    assert!(engine.deletes_owed().is_empty(), "not settled yet");
    engine.handle_upload(transmit.id, status(200), T0);
    assert_eq!(
        engine.deletes_owed(),
        vec![1, 2, 3],
        "settled, still stored"
    );
    let delete = engine.poll_store(T0).cloned().expect("the delete");
    assert_eq!(delete, StoreOp::Delete(vec![1, 2, 3]));
    assert_eq!(engine.deletes_owed(), vec![1, 2, 3], "in flight");
    engine.handle_store(
        Err(StoreFailure {
            kind: store::FailureKind::Other,
            op: "delete",
            message: "disk I/O error".into(),
        }),
        T0,
    );
    assert_eq!(
        engine.deletes_owed(),
        vec![1, 2, 3],
        "failed: to be retried"
    );
    let retry = loop {
        if let Some(op) = engine.poll_store(T0 + 60_000).cloned() {
            break op;
        }
        engine.handle_timeout(T0 + 60_000);
    };
    assert_eq!(retry, delete);
    let result = execute(&mut store, &retry);
    engine.handle_store(result, T0 + 60_000);
    assert!(engine.deletes_owed().is_empty());
    assert_eq!(store.snapshot().unwrap().events, 0);
}

/// Deletes an earlier run owed go before anything else: the next batch holds only the
/// event not named, and the counts drop by what was deleted.
#[test]
fn owed_deletes_go_first_and_are_never_sent() {
    let mut store = MemoryStore::new();
    let events = (1..=3).map(|n| conformance::event(n, T0, 300)).collect();
    execute(&mut store, &StoreOp::Insert(events)).unwrap();
    let mut engine = Engine::new(loads_only(), 1, store.snapshot().unwrap(), identity(1), T0);
    engine.handle_owed_deletes(vec![1, 2]);
    assert_eq!(engine.deletes_owed(), vec![1, 2]);
    engine.handle_flush(T0);
    let first = engine.poll_store(T0).cloned().expect("the owed delete");
    assert_eq!(first, StoreOp::Delete(vec![1, 2]));
    let result = execute(&mut store, &first);
    engine.handle_store(result, T0);
    assert!(engine.deletes_owed().is_empty());
    assert_eq!(engine.stats().queued_events, 1);
    let transmit = loop {
        if let Some(op) = engine.poll_store(T0).cloned() {
            let result = execute(&mut store, &op);
            engine.handle_store(result, T0);
        } else {
            break engine.poll_transmit(T0).expect("the batch");
        }
    };
    assert_eq!(transmit.events, 1);
    let mut body = String::new();
    if transmit.gzipped {
        std::io::Read::read_to_string(
            &mut flate2::read::GzDecoder::new(&transmit.body[..]),
            &mut body,
        )
        .unwrap();
    } else {
        body = String::from_utf8(transmit.body).unwrap();
    }
    assert!(
        body.contains("\"m3\"") && !body.contains("\"m1\""),
        "{body}"
    );
}

/// An event within a commit interval leaves only the commit timer to wait for; an identity
/// to save, or a batch ready to send, is work to poll now.
#[test]
fn waits_for_timeout_only_when_only_a_timer_is_due() {
    let mut store = MemoryStore::new();
    let mut engine = Engine::new(loads_only(), 1, store.snapshot().unwrap(), identity(1), T0);
    let mut drain = |engine: &mut Engine| {
        while let Some(op) = engine.poll_store(T0).cloned() {
            let result = execute(&mut store, &op);
            engine.handle_store(result, T0);
        }
        while engine.poll_notification().is_some() {}
    };
    drain(&mut engine);
    assert!(engine.waits_for_timeout(), "settled");
    engine.handle_event(conformance::event(0, T0, 300), T0);
    assert!(engine.waits_for_timeout(), "the commit has its timer");
    let commit_at = T0 + ms(Policy::default().commit_interval);
    assert_eq!(engine.poll_timeout(), Some(commit_at));
    engine.handle_event(conformance::event(0, T0 + 1, 300), T0 + 1);
    assert!(engine.waits_for_timeout());
    assert_eq!(engine.poll_timeout(), Some(commit_at), "the same timer");
    engine.handle_identity(identity(2));
    assert!(!engine.waits_for_timeout(), "an identity to save");
    drain(&mut engine);
    engine.handle_flush(T0);
    drain(&mut engine);
    assert!(!engine.waits_for_timeout(), "a batch ready to send");
    assert!(engine.poll_transmit(T0).is_some());
}

// ----- scheduling -----

/// Offline, nothing is ever sent: not on a schedule, not on `flush()`, not when going to the background.
#[test]
fn offline_sends_nothing() {
    let mut h = harness();
    h.set_conditions(offline());
    for i in 0..500 {
        h.track("e");
        if i % 50 == 0 {
            h.flush();
            h.lifecycle(Lifecycle::Background);
        }
        h.advance(3 * MINUTE);
    }
    assert!(h.requests.is_empty());
    assert_eq!(h.stats().queued_events, 500);
}

/// The network coming back sends what was queued at once, even on a holding tier.
#[test]
fn network_return_flushes_at_once() {
    let mut h = harness();
    h.set_conditions(offline());
    track_n(&mut h, 10);
    h.advance(10 * MINUTE);
    h.set_conditions(cellular(0.1));
    assert_eq!(h.requests.len(), 1);
    assert_eq!(
        (h.requests[0].at_ms, h.requests[0].events),
        (T0 + 10 * MINUTE, 10)
    );
}

/// Going to the background commits at once and makes one flush attempt, even on a holding tier.
#[test]
fn background_commits_and_flushes_once() {
    let mut h = harness();
    h.set_conditions(cellular(0.9));
    h.script([status(503)]);
    track_n(&mut h, 3);
    h.advance(50);
    h.lifecycle(Lifecycle::Background);
    assert_eq!(
        inserts(&h),
        vec![(T0 + 50, 3)],
        "committed at once, not after the interval"
    );
    assert_eq!(h.requests.len(), 1);
    assert_eq!(h.requests[0].at_ms, T0 + 50);
    assert_eq!(h.stats().flushes, 1);
    h.advance(10 * MINUTE);
    h.advance(10 * MINUTE);
    assert_eq!(h.requests.len(), 2, "one attempt, then one retry");
    let gap = h.requests[1].at_ms - h.requests[0].done_ms;
    assert!(
        gap >= ms(h.engine().policy().backoff_base) / 2,
        "the retry waits for the backoff: {gap} ms"
    );
    assert_eq!(h.stats().delivered, 3);
}

/// In the background on battery, events are held like on low power; back in the
/// foreground, wifi's relaxed schedule applies again; charging lifts the hold.
#[test]
fn background_on_battery_holds() {
    let mut h = harness();
    h.set_conditions(wifi_battery(0.9));
    h.lifecycle(Lifecycle::Background);
    let p = h.engine().policy().clone();
    let t = h.now();
    h.track("background playback");
    h.run_until(t + held(&p) - 1);
    assert!(
        h.requests.is_empty(),
        "held past relaxed_delay in the background"
    );
    h.run_until(t + held(&p));
    assert_eq!(h.requests.len(), 1);

    h.lifecycle(Lifecycle::Foreground);
    let t = h.now();
    h.track("foreground again");
    h.advance(HOUR);
    assert_eq!(h.requests[1].at_ms, t + ms(p.relaxed_delay));

    h.lifecycle(Lifecycle::Background);
    h.set_conditions(wifi_charging());
    let t = h.now();
    h.track("background, charging");
    h.advance(HOUR);
    assert_eq!(
        h.requests[2].at_ms,
        t + ms(p.prompt_delay),
        "charging: prompt even in the background"
    );
}

/// Once a flush has emptied the queue it is over: the next event waits for its tier's schedule.
#[test]
fn flush_ends_when_the_queue_is_empty() {
    let mut h = harness();
    h.set_conditions(cellular(0.9));
    track_n(&mut h, 3);
    h.flush();
    assert_eq!(h.requests.len(), 1);
    assert!(h.engine().is_settled(), "the flush is over");
    h.advance(MINUTE);
    let t = h.now();
    h.track("after the flush");
    h.advance(HOUR);
    assert_eq!(h.requests.len(), 2);
    assert_eq!(
        h.requests[1].at_ms,
        t + held(h.engine().policy()),
        "held like any event on cellular"
    );
}

/// On wifi while charging, an upload goes at the `flush_at`-th event (the oldest waited longer than `prompt_gather`), or `prompt_delay` after the first.
#[test]
fn prompt_tier_sends_at_flush_at_or_prompt_delay() {
    let mut h = harness();
    h.set_conditions(wifi_charging());
    let p = h.engine().policy().clone();
    for _ in 1..p.flush_at {
        h.track("e");
        h.advance(SECOND);
    }
    assert!(h.requests.is_empty());
    h.track("e");
    assert_eq!(h.requests.len(), 1);
    assert_eq!(h.requests[0].events as u64, p.flush_at);
    h.advance(MINUTE);
    let t = h.now();
    h.track("alone");
    h.advance(HOUR);
    assert_eq!(h.requests.len(), 2);
    assert_eq!(h.requests[1].at_ms, t + ms(p.prompt_delay));
}

/// On cellular, events wait until the oldest is nearly `max_delay` old (less the upload margin), unless a full batch is queued.
#[test]
fn cellular_holds_until_max_delay_or_a_full_batch() {
    let mut h = harness();
    h.set_conditions(cellular(0.9));
    let p = h.engine().policy().clone();
    for _ in 0..14 {
        h.track("e");
        h.advance(MINUTE);
    }
    h.run_until(T0 + held(&p) - 1);
    assert!(h.requests.is_empty());
    h.run_until(T0 + held(&p));
    assert_eq!(h.requests.len(), 1);
    assert_eq!(h.requests[0].events, 14);
    h.advance(MINUTE);
    track_n(&mut h, p.max_batch_events);
    assert_eq!(h.requests.len(), 2, "a full batch goes at once");
    assert_eq!(h.requests[1].events, p.max_batch_events);
}

/// On low battery or in low-power mode, even a full batch is held (until `max_delay` less the upload margin); nearing a cap sends at once.
#[test]
fn low_battery_holds_unless_near_cap() {
    for conditions in [wifi_battery(0.1), low_power_wifi()] {
        let mut h = harness();
        h.set_conditions(conditions);
        let p = h.engine().policy().clone();
        track_n(&mut h, 600);
        h.run_until(T0 + held(&p) - 1);
        assert!(h.requests.is_empty(), "{conditions:?}");
        h.run_until(T0 + held(&p));
        assert_eq!(
            h.requests.iter().map(|r| r.events).collect::<Vec<_>>(),
            vec![500, 100]
        );
        assert_eq!(h.stats().flushes, 1);
    }
    let policy = Policy {
        max_queue_events: 100,
        ..Policy::default()
    };
    let mut h = Harness::new(policy, 7, T0);
    h.set_conditions(wifi_battery(0.1));
    track_n(&mut h, 79);
    assert!(h.requests.is_empty());
    h.track("the 80th: 80% of the cap");
    assert_eq!(h.requests.len(), 1);
    assert_eq!(h.requests[0].events, 80);
}

/// With the network up, whatever the tier and lifecycle, no event waits longer than `max_delay` (checked on every delivery).
#[test]
fn no_event_waits_longer_than_max_delay_online() {
    let mut h = harness();
    let latency = 250;
    h.set_latency(latency);
    let max_delay = ms(h.engine().policy().max_delay);
    let tiers = [
        wifi_charging(),
        wifi_battery(0.8),
        cellular(0.8),
        wifi_battery(0.1),
        cellular(0.1),
        low_power_wifi(),
    ];
    let mut rng = Jitter::new(99);
    let mut next_change = T0;
    let mut change = 0;
    while h.now() < T0 + 2 * DAY {
        if h.now() >= next_change {
            h.set_conditions(tiers[change % tiers.len()]);
            if change % 4 == 1 {
                h.lifecycle(Lifecycle::Background);
            }
            change += 1;
            next_change = h.now() + 3 * MINUTE + (rng.next_f64() * 20.0 * MINUTE as f64) as i64;
        }
        h.track("e");
        // Mostly seconds apart, sometimes many minutes.
        let gap = if rng.next_f64() < 0.9 {
            rng.next_f64() * 20.0 * SECOND as f64
        } else {
            rng.next_f64() * 30.0 * MINUTE as f64
        };
        h.advance(gap as i64 + 1);
    }
    h.advance(HOUR);
    for t in &h.tracked {
        let sent = h
            .requests
            .iter()
            .find(|r| r.message_ids.contains(&t.message_id))
            .unwrap_or_else(|| panic!("{} never sent", t.message_id));
        assert!(
            sent.at_ms - t.at_ms <= max_delay,
            "{} sent after {} ms",
            t.message_id,
            sent.at_ms - t.at_ms
        );
        let delivered = h.delivered_at(&t.message_id).unwrap();
        assert!(delivered - t.at_ms <= max_delay + latency);
        assert_eq!(h.delivery_count(&t.message_id), 1);
    }
    assert!(h.tracked.len() > 1_000);
}

/// A wall clock set back by a day delays nothing by a day: waits continue where they were.
#[test]
fn clock_jumping_back_does_not_stall_uploads() {
    let mut h = harness();
    h.set_conditions(cellular(0.9));
    let hold = held(h.engine().policy());
    h.track("before the jump");
    h.advance(5 * MINUTE);
    let jumped = h.now() - DAY;
    h.set_clock(jumped);
    h.run_until(jumped + hold - 5 * MINUTE);
    assert_eq!(
        h.requests.len(),
        1,
        "sent when it had been held its time, by elapsed time"
    );
    assert_eq!(h.requests[0].at_ms, jumped + hold - 5 * MINUTE);

    // A server's Retry-After, too, counts elapsed time.
    let mut h = eager();
    h.script([retry_after(503, "600")]);
    track_n(&mut h, 20);
    h.advance(MINUTE);
    let jumped = h.now() - DAY;
    h.set_clock(jumped);
    h.advance(10 * MINUTE);
    assert_eq!(h.requests.len(), 2);
    assert_eq!(h.requests[1].at_ms, jumped + 9 * MINUTE);
}

/// When more than one batch is queued, the batches go back to back in one flush.
#[test]
fn several_batches_go_back_to_back_in_one_flush() {
    let mut h = harness();
    h.set_latency(200);
    h.set_conditions(offline());
    track_n(&mut h, 1_200);
    h.advance(MINUTE);
    h.set_conditions(wifi_battery(0.8));
    h.advance(MINUTE);
    let sizes: Vec<usize> = h.requests.iter().map(|r| r.events).collect();
    assert_eq!(sizes, vec![500, 500, 200]);
    for pair in h.requests.windows(2) {
        assert_eq!(
            pair[1].at_ms, pair[0].done_ms,
            "each starts when the previous one is answered"
        );
    }
    assert_eq!(h.stats().flushes, 1);
}

// ----- storage faults -----

fn flaky() -> Harness<FlakyStore> {
    Harness::with_store(FlakyStore::default(), Policy::default(), 7, T0)
}

/// A flaky store whose batches are always loaded (so that a load can fail).
fn flaky_loads() -> Harness<FlakyStore> {
    Harness::with_store(FlakyStore::default(), loads_only(), 7, T0)
}

fn store_errors<S: QueueStore>(h: &Harness<S>) -> usize {
    h.notifications
        .iter()
        .filter(|(_, n)| matches!(n, Notification::StoreError { .. }))
        .count()
}

/// A full disk drops the events being committed as DiskFull and reports them; later commits work.
#[test]
fn disk_full_drops_and_reports_then_recovers() {
    let mut h = flaky();
    h.set_conditions(offline());
    h.store_mut().fail("insert", FailureKind::Full, 1);
    let lost = track_n(&mut h, 3);
    h.advance(SECOND);
    assert_eq!(h.dropped_ids(DropReason::DiskFull), lost);
    assert_eq!(h.stats().dropped.disk_full, 3);
    assert_eq!(store_errors(&h), 1);
    let kept = track_n(&mut h, 2);
    h.advance(SECOND);
    assert_eq!(stored_ids(&mut h), kept);
    h.set_conditions(wifi_charging());
    assert!(kept.iter().all(|id| h.delivery_count(id) == 1));
    assert_eq!(h.stats().queued_events, 0);
}

/// A busy store makes commits retry later; no event is lost.
#[test]
fn busy_store_retries_commits() {
    let mut h = flaky();
    h.store_mut().fail("insert", FailureKind::Busy, 3);
    let ids = track_n(&mut h, 5);
    h.advance(5 * SECOND);
    assert_eq!(store_errors(&h), 3);
    assert_eq!(stored_ids(&mut h), ids);
    h.advance(MINUTE);
    assert!(ids.iter().all(|id| h.delivery_count(id) == 1));
    assert_eq!(h.stats().dropped.total(), 0);
}

/// A busy store while a flush loads its batch retries that flush shortly, not at the next scheduled upload.
#[test]
fn busy_store_during_a_flush_retries_the_flush() {
    let mut h = flaky_loads();
    h.set_conditions(cellular(0.9));
    track_n(&mut h, 3);
    h.advance(SECOND);
    h.store_mut().fail("load", FailureKind::Busy, 1);
    h.flush();
    assert!(h.requests.is_empty());
    h.advance(5 * SECOND);
    assert_eq!(
        h.requests.len(),
        1,
        "flush() still means now, store hiccup or not"
    );
    assert_eq!(h.stats().flushes, 1);
}

/// A busy store while deleting a delivered batch retries the delete after a pause, without spinning and without re-sending.
#[test]
fn busy_delete_is_retried_without_spinning() {
    let mut h = flaky();
    let ids = track_n(&mut h, 3);
    h.store_mut().fail("delete", FailureKind::Busy, 1);
    h.flush();
    h.advance(5 * SECOND);
    assert!(stored_ids(&mut h).is_empty());
    assert_eq!(h.requests.len(), 1, "not sent again");
    assert!(ids.iter().all(|id| h.delivery_count(id) == 1));
    assert!(h.engine().is_settled());
}

/// A busy store while saving the opt-out choice retries the save on its own, with no other input to wake the engine.
#[test]
fn busy_state_save_is_retried() {
    let mut h = flaky();
    h.store_mut().fail("save_state", FailureKind::Busy, 1);
    h.opt_out(true);
    assert_eq!(store_errors(&h), 1);
    assert_eq!(
        h.engine().poll_timeout(),
        Some(h.now() + SECOND),
        "a timer for the retry, or nothing wakes the engine"
    );
    h.advance(5 * SECOND);
    let saved = h.store_mut().snapshot().unwrap().state;
    assert!(
        saved.is_some_and(|s| s.opted_out),
        "the choice is persisted"
    );
}

/// Replacing a corrupt store counts the lost events as StoreCorrupt and saves the identity into the new store.
#[test]
fn corrupt_store_is_replaced() {
    let mut h = harness();
    h.set_conditions(offline());
    track_n(&mut h, 4);
    h.advance(SECOND);
    let pending = h.track("not yet committed");
    let identity = h.engine().identity().clone();
    h.replace_store(MemoryStore::new(), "database disk image is malformed");
    assert_eq!(h.dropped(DropReason::StoreCorrupt), 4);
    assert_eq!(h.stats().dropped.store_corrupt, 4);
    assert_eq!(
        h.store_mut().snapshot().unwrap().state.map(|s| s.identity),
        Some(identity)
    );
    h.advance(SECOND);
    assert_eq!(stored_ids(&mut h), vec![pending.clone()]);
    h.set_conditions(wifi_charging());
    h.flush();
    assert_eq!(h.delivery_count(&pending), 1);
}

// ----- a store shared with another writer -----

/// Events another writer (a second browser tab) put in a shared store are unknown to the
/// engine until a resync, and are then counted and uploaded.
#[test]
fn resync_learns_of_another_writers_events() {
    let mut e = Engine::new(
        Policy::default(),
        1,
        StoreSnapshot::default(),
        Identity::new(uuid::Uuid::from_u128(1)),
        T0,
    );
    e.handle_conditions(wifi_charging(), T0);
    let op = e.poll_store(T0).cloned();
    assert!(matches!(op, Some(StoreOp::SaveState(_))), "{op:?}");
    e.handle_store(Ok(store::StoreOutcome::StateSaved), T0);
    assert_eq!(e.poll_store(T0), None, "nothing known to send");
    let snap = StoreSnapshot {
        state: None,
        events: 30,
        bytes: 3_000,
        max_seq: 30,
        oldest_ms: Some(T0 - 1_000),
    };
    e.handle_store_resync(&snap, T0);
    assert_eq!(e.stats().queued_events, 30);
    assert!(
        matches!(e.poll_store(T0), Some(StoreOp::Load { .. })),
        "over flush_at on wifi: an upload starts"
    );
}
