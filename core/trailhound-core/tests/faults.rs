//! The engine under hostile servers, wrong clocks, failing storage and transports that
//! never answer (issue 9): each test injects the fault and asserts that nothing accepted
//! is lost or double counted, and that nothing spins.

use std::time::Duration;

use trailhound_core::store::{FailureKind, QueueStore, StoreSnapshot};
use trailhound_core::testing::*;
use trailhound_core::*;

/// 2025-06-15T15:06:40Z.
const T0: i64 = 1_750_000_000_000;
const YEAR: i64 = 365 * DAY;

fn ms(d: Duration) -> i64 {
    d.as_millis() as i64
}

fn track_n<S: QueueStore>(h: &mut Harness<S>, n: usize) -> Vec<String> {
    (0..n).map(|i| h.track(&format!("Event {i}"))).collect()
}

fn stored_ids(h: &mut Harness) -> Vec<String> {
    h.store().message_ids()
}

// ----- Retry-After (defect 5) -----

/// `Retry-After: 0`, a negative or unreadable value, or an HTTP-date already past (a
/// device clock ahead of the server's) never retries sooner than our own backoff: against
/// a server that keeps shedding load, a minute holds a handful of requests, not hundreds.
#[test]
fn retry_after_zero_or_past_never_beats_own_backoff() {
    for value in [
        "0",
        "-5",
        "soon",
        "Wed, 21 Oct 2015 07:28:00 GMT",
        "Wednesday, 21-Oct-15 07:28:00 GMT",
        "Wed Oct 21 07:28:00 2015",
    ] {
        let mut h = Harness::new(Policy::default(), 7, T0);
        h.set_latency(5);
        h.respond_with(move |_| retry_after(503, value));
        track_n(&mut h, 20);
        h.advance(MINUTE);
        let n = h.requests.len();
        assert!(
            (3..=7).contains(&n),
            "Retry-After {value:?}: {n} requests in a minute (2 s base backoff doubling)"
        );
        let base = ms(h.engine().policy().backoff_base);
        for pair in h.requests.windows(2) {
            assert!(
                pair[1].at_ms - pair[0].done_ms >= base / 2,
                "Retry-After {value:?}: retried after {} ms",
                pair[1].at_ms - pair[0].done_ms
            );
        }
        assert_eq!(h.stats().dropped.total(), 0);
    }
}

/// A `Retry-After` longer than our own backoff still wins, and binds `flush()`.
#[test]
fn future_retry_after_is_honoured() {
    let mut h = Harness::new(Policy::default(), 7, T0);
    h.script([retry_after(503, "Sun, 15 Jun 2025 15:16:40 GMT")]);
    track_n(&mut h, 20);
    h.flush();
    h.advance(9 * MINUTE);
    assert_eq!(h.requests.len(), 1, "the server's date (T0 + 10 min) binds");
    h.advance(2 * MINUTE);
    assert_eq!(h.requests.len(), 2);
    assert_eq!(h.requests[1].at_ms, T0 + 10 * MINUTE);
}

// ----- wrong wall clocks (defect 6) -----

/// A retry deadline and an auth pause saved while the clock was a year ahead are clamped
/// when loaded: uploads resume within `backoff_max` / `auth_pause`, not a year later.
#[test]
fn persisted_deadlines_from_a_clock_far_ahead_are_clamped() {
    for (pause, status) in [(false, retry_after(503, "1800")), (true, status(401))] {
        let mut h = Harness::new(Policy::default(), 7, T0);
        h.set_clock(T0 + YEAR);
        h.script([status]);
        track_n(&mut h, 20);
        h.advance(SECOND);
        assert_eq!(h.requests.len(), 1);
        let saved = h.store_mut().snapshot().unwrap().state.unwrap().endpoints[0]
            .retry
            .clone();
        assert!(
            saved
                .next_attempt_ms
                .or(saved.auth_paused_until_ms)
                .unwrap()
                > T0 + YEAR,
            "{saved:?}"
        );
        // The clock is corrected and the app restarts.
        h.set_clock(T0 + SECOND);
        h.restart();
        let longest = if pause {
            ms(h.engine().policy().auth_pause)
        } else {
            ms(h.engine().policy().backoff_max)
        };
        h.advance(longest + SECOND);
        assert_eq!(h.requests.len(), 2, "pause={pause}: uploads resumed");
        assert_eq!(h.stats().delivered, 20, "pause={pause}");
    }
}

/// Events stamped while the clock was a year ahead lie in the future once it is corrected:
/// they are delivered, never evicted for age.
#[test]
fn events_from_the_future_are_not_evicted_for_age() {
    let policy = Policy {
        max_event_age: Duration::from_secs(3600),
        ..Policy::default()
    };
    let mut h = Harness::new(policy, 7, T0);
    h.set_conditions(offline());
    h.set_clock(T0 + YEAR);
    let ahead = track_n(&mut h, 5);
    h.advance(SECOND);
    h.set_clock(T0 + 2 * SECOND);
    let now = track_n(&mut h, 5);
    h.advance(2 * 3600 * SECOND);
    assert_eq!(h.stats().dropped.age, 5, "the events of now aged out");
    assert_eq!(stored_ids(&mut h), ahead, "the future ones are kept");
    assert!(now.iter().all(|id| !stored_ids(&mut h).contains(id)));
    h.set_conditions(wifi_charging());
    h.flush();
    assert!(ahead.iter().all(|id| h.delivery_count(id) == 1));
}

// ----- transports that never answer (defect 10) -----

/// A request with no answer within `upload_timeout` is abandoned (the runtime is told to
/// cancel it) and retried like a network error; its late answer is ignored, and later
/// uploads are not held up by it.
#[test]
fn an_upload_without_answer_is_abandoned_and_retried() {
    let mut h = Harness::new(Policy::default(), 7, T0);
    let timeout = ms(h.engine().policy().upload_timeout);
    h.set_latency(10 * DAY);
    let ids = track_n(&mut h, 20);
    h.advance(timeout - SECOND);
    assert_eq!(h.requests.len(), 1);
    assert!(h.abandoned.is_empty());
    h.set_latency(50);
    h.advance(2 * SECOND);
    assert_eq!(
        h.abandoned,
        vec![h.requests[0].id],
        "the first request is abandoned"
    );
    assert!(h.notifications.iter().any(|(_, n)| matches!(
        n,
        Notification::UploadFailed { status: None, error, .. } if error.contains("abandoned")
    )));
    h.advance(MINUTE);
    assert_eq!(h.requests.len(), 2, "retried after the backoff");
    assert!(ids.iter().all(|id| h.delivered_at(id).is_some()));
    assert_eq!(h.stats().delivered, 20);
    // The first request's answer arrives ten days later and changes nothing.
    h.advance(11 * DAY);
    assert_eq!(h.stats().delivered, 20);
    assert_eq!(h.stats().queued_events, 0);
}

// ----- a store replaced while a batch is out (defect 9) -----

/// When the store is found corrupt while a batch is in flight, the batch's events are not
/// counted lost: a 2xx counts them delivered (once), and a failure puts them back into the
/// new store, so that they are delivered later. Only the rest counts as `store_corrupt`.
#[test]
fn corrupt_store_replaced_during_an_upload_counts_each_event_once() {
    for answer in [ok(), status(503), status(401), status(400)] {
        let policy = Policy {
            max_batch_events: 4,
            ..Policy::default()
        };
        let mut h = Harness::new(policy, 7, T0);
        h.set_conditions(offline());
        let ids = track_n(&mut h, 10);
        h.advance(SECOND);
        h.set_latency(5 * SECOND);
        h.script([answer.clone()]);
        h.set_conditions(wifi_charging());
        assert_eq!(h.requests.len(), 1, "{answer:?}: a batch of 4 is in flight");
        let in_flight = h.requests[0].message_ids.clone();
        h.replace_store(MemoryStore::new(), "database disk image is malformed");
        assert_eq!(
            h.stats().dropped.store_corrupt,
            6,
            "{answer:?}: the 6 stored, not sent"
        );
        h.set_latency(0);
        h.advance(2 * HOUR);
        h.flush();
        h.advance(MINUTE);
        let stats = h.stats();
        for id in &in_flight {
            let delivered = h.delivery_count(id);
            let dropped = h
                .dropped_ids(DropReason::Rejected { status: 400 })
                .contains(id);
            assert!(
                (delivered == 1) ^ dropped,
                "{answer:?}: {id} delivered {delivered} times, dropped: {dropped}"
            );
        }
        assert_eq!(
            stats.delivered + stats.dropped.total() + stats.queued_events,
            ids.len() as u64,
            "{answer:?}: every event counted once: {stats:?}"
        );
        assert_eq!(stats.queued_events, 0, "{answer:?}");
    }
}

// ----- storage failing (defect 4 and 7, engine side) -----

/// While storage fails, what waits uncommitted in memory is bounded: the engine stops
/// accepting at `max_uncommitted_events`, keeps what it has, and commits it all once
/// storage recovers.
#[test]
fn failing_storage_bounds_what_waits_in_memory() {
    let policy = Policy {
        max_uncommitted_events: 1_000,
        ..Policy::default()
    };
    let mut h = Harness::with_store(FlakyStore::default(), policy, 7, T0);
    h.set_conditions(offline());
    h.store_mut().fail("insert", FailureKind::Busy, u32::MAX);
    let mut accepted = 0;
    while h.engine().accepting() {
        h.track("e");
        accepted += 1;
        if accepted % 50 == 0 {
            h.advance(100);
        }
        assert!(accepted <= 1_000, "the engine kept accepting");
    }
    assert_eq!(accepted, 1_000);
    assert_eq!(h.stats().uncommitted_events, 1_000);
    h.advance(MINUTE);
    assert!(!h.engine().accepting(), "still full while storage fails");
    h.store_mut().failing = None;
    h.advance(2 * SECOND);
    assert!(h.engine().accepting());
    assert_eq!(h.stats().uncommitted_events, 0);
    assert_eq!(h.store().inner.message_ids().len(), 1_000);
}

/// A runtime that gives up on a failing store at shutdown counts the uncommitted events
/// dropped as `store_failed`, with their ids, and says that an opt-out was not saved.
#[test]
fn giving_up_on_a_failing_store_is_reported() {
    let mut h = Harness::with_store(FlakyStore::default(), Policy::default(), 7, T0);
    h.set_conditions(offline());
    h.store_mut().fail("insert", FailureKind::Other, u32::MAX);
    let ids = track_n(&mut h, 7);
    h.advance(5 * SECOND);
    h.store_mut()
        .fail("save_state", FailureKind::Other, u32::MAX);
    h.engine_mut().handle_opt_out(false, T0 + 5 * SECOND); // no change: nothing to save
    let unsaved = h.engine_mut().handle_give_up(T0 + 5 * SECOND);
    assert_eq!(unsaved.events, 7);
    assert!(!unsaved.opt_out);
    h.settle();
    let mut dropped = h.dropped_ids(DropReason::StoreFailed);
    dropped.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(dropped, expected);
    assert_eq!(h.stats().dropped.store_failed, 7);

    // An opt-out whose save keeps failing is reported as not persisted.
    let mut h = Harness::with_store(FlakyStore::default(), Policy::default(), 7, T0);
    h.store_mut()
        .fail("save_state", FailureKind::Other, u32::MAX);
    h.opt_out(true);
    h.advance(5 * SECOND);
    let unsaved = h.engine_mut().handle_give_up(T0 + 5 * SECOND);
    assert!(unsaved.opt_out && unsaved.state, "{unsaved:?}");
    h.settle();
    assert!(h.notifications.iter().any(|(_, n)| matches!(
        n,
        Notification::StoreError { error } if error.contains("opt-out")
    )));
}

/// An engine rebuilt from a snapshot with a pause far in the future, at startup, has
/// clamped it in the state it saves.
#[test]
fn clamped_deadlines_are_saved() {
    let mut state = PersistedState {
        identity: identity(1),
        opted_out: false,
        endpoints: vec![Default::default()],
    };
    state.endpoints[0].retry.auth_paused_until_ms = Some(T0 + 10 * YEAR);
    state.endpoints[0].retry.auth_status = Some(404);
    let snapshot = StoreSnapshot {
        state: Some(state),
        ..StoreSnapshot::default()
    };
    let mut e = Engine::new(Policy::default(), 1, snapshot, identity(2), T0);
    let pause = ms(Policy::default().auth_pause);
    assert_eq!(e.stats().retry.auth_paused_until_ms, Some(T0 + pause));
    match e.poll_store(T0) {
        Some(StoreOp::SaveState(s)) => {
            assert_eq!(s.endpoints[0].retry.auth_paused_until_ms, Some(T0 + pause))
        }
        other => panic!("expected a state save, got {other:?}"),
    }
}

/// Limits set to `Duration::MAX` mean "forever", never a wrapped negative deadline: with
/// every timing at its maximum, events are still committed and delivered, and nothing is
/// abandoned.
#[test]
fn unbounded_durations_do_not_wrap() {
    let policy = Policy {
        request_timeout: Duration::MAX,
        upload_timeout: Duration::MAX,
        backoff_max: Duration::MAX,
        auth_pause: Duration::MAX,
        max_event_age: Duration::MAX,
        session_timeout: Duration::MAX,
        ..Policy::default()
    };
    policy.validate().unwrap();
    let mut h = Harness::new(policy, 7, T0);
    h.set_latency(100);
    h.script([status(503)]);
    let ids = track_n(&mut h, 20);
    h.advance(HOUR);
    assert!(h.abandoned.is_empty(), "{:?}", h.abandoned);
    assert!(ids.iter().all(|id| h.delivery_count(id) == 1));
    assert_eq!(h.stats().dropped.total(), 0);
}
