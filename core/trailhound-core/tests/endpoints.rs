//! Several endpoints under the virtual clock (issue 12): every breaker transition, every
//! row of the response table per endpoint, failover inside the same burst, and breaker
//! state across restarts.

use std::time::Duration;

use trailhound_core::breaker::{BreakerState, OpenReason};
use trailhound_core::testing::*;
use trailhound_core::*;

/// 2025-06-15T15:06:40Z.
const T0: i64 = 1_750_000_000_000;
const PRIMARY: &str = "https://proxy.example.com";
const FALLBACK: &str = "https://api.vendor.example";

fn ms(d: Duration) -> i64 {
    d.as_millis() as i64
}

fn two_endpoints() -> Harness {
    let mut h = Harness::new(Policy::default(), 11, T0);
    h.set_endpoints(&[PRIMARY, FALLBACK]);
    h
}

fn track_n(h: &mut Harness, n: usize) -> Vec<String> {
    (0..n).map(|i| h.track(&format!("Event {i}"))).collect()
}

fn endpoint_state(h: &Harness, i: usize) -> BreakerState {
    h.stats().endpoints[i].state
}

/// Every tracked event was acknowledged exactly once.
fn assert_each_delivered_once(h: &Harness, ids: &[String]) {
    for id in ids {
        assert_eq!(h.delivery_count(id), 1, "{id}: {:?}", h.delivered.get(id));
    }
}

/// Answers with `down` on endpoint 0 and 200 on the others.
fn primary_answers(h: &mut Harness, down: UploadResult) {
    h.respond_with(move |r| if r.endpoint == 0 { down.clone() } else { ok() });
}

/// With one endpoint nothing changes: requests go to endpoint 0 and the stats list it.
#[test]
fn one_endpoint_is_the_default() {
    let mut h = Harness::new(Policy::default(), 1, T0);
    let ids = track_n(&mut h, 5);
    h.flush();
    h.settle();
    assert_eq!(h.requests.len(), 1);
    assert_eq!(h.requests[0].endpoint, 0);
    assert_each_delivered_once(&h, &ids);
    let stats = h.stats();
    assert_eq!(stats.endpoints.len(), 1);
    assert_eq!(stats.endpoints[0].requests, 1);
    assert_eq!(stats.endpoints[0].state, BreakerState::Closed);
}

/// A batch that fails on the primary (no answer, 5xx, 429 without `Retry-After`, 408)
/// goes to the fallback at the same instant with the same `messageId`s, the primary's
/// breaker opens and the listener hears it; nothing is delivered twice.
#[test]
fn failed_batch_moves_to_the_next_endpoint_at_once() {
    for down in [
        network_error(),
        status(503),
        status(500),
        status(429),
        status(408),
    ] {
        let mut h = two_endpoints();
        primary_answers(&mut h, down.clone());
        let ids = track_n(&mut h, 5);
        h.flush();
        h.settle();
        assert_eq!(h.requests.len(), 2, "{down:?}");
        let (a, b) = (&h.requests[0], &h.requests[1]);
        assert_eq!((a.endpoint, b.endpoint), (0, 1));
        assert_eq!(
            a.at_ms, b.at_ms,
            "the fallback is tried inside the same burst"
        );
        assert_eq!(a.message_ids, b.message_ids);
        assert_each_delivered_once(&h, &ids);
        assert_eq!(endpoint_state(&h, 0), BreakerState::Open);
        assert_eq!(endpoint_state(&h, 1), BreakerState::Closed);
        assert!(h.notifications.iter().any(|(_, n)| matches!(
            n,
            Notification::EndpointOpened { url, .. } if url == PRIMARY
        )));
        let failed: Vec<_> = h
            .notifications
            .iter()
            .filter_map(|(_, n)| match n {
                Notification::UploadFailed { retry_in_ms, .. } => Some(*retry_in_ms),
                _ => None,
            })
            .collect();
        assert_eq!(failed, [0], "told, and retried at once elsewhere");
        assert_eq!(h.stats().flushes, 1);
    }
}

/// While the primary is open, batches go to the fallback; once its wait is over, the next
/// flush starts at the primary with a probe of at most `breaker_probe_events`, and a
/// delivery closes it: the rest of the batch and later batches go to the primary again.
#[test]
fn half_open_probe_brings_the_primary_back() {
    let mut h = two_endpoints();
    h.script([network_error()]);
    track_n(&mut h, 3);
    h.flush();
    h.settle();
    assert_eq!(endpoint_state(&h, 0), BreakerState::Open);
    let retry_at = h.stats().endpoints[0].retry_at_ms.expect("open until");
    // Another flush before the wait is over goes straight to the fallback... but a flush
    // ends our own backoff; so wait with the schedule instead.
    h.run_until(retry_at);
    assert_eq!(endpoint_state(&h, 0), BreakerState::HalfOpen);
    let probe = Policy::default().breaker_probe_events;
    let ids = track_n(&mut h, probe + 15);
    h.flush();
    h.settle();
    let after: Vec<_> = h.requests[2..].iter().collect();
    assert_eq!(after.len(), 2, "{after:?}");
    assert_eq!(after[0].endpoint, 0);
    assert_eq!(after[0].events, probe, "the probe is small");
    assert_eq!(
        after[1].endpoint, 0,
        "closed again: the rest goes to the primary"
    );
    assert_eq!(after[1].events, 15);
    assert_each_delivered_once(&h, &ids);
    assert_eq!(endpoint_state(&h, 0), BreakerState::Closed);
    assert!(h.notifications.iter().any(|(_, n)| matches!(
        n,
        Notification::EndpointClosed { url } if url == PRIMARY
    )));
}

/// A failed probe opens the primary again, for longer, and the probe's events and the
/// rest still reach the fallback in the same burst, each once.
#[test]
fn failed_probe_falls_over_and_reopens_longer() {
    let mut h = two_endpoints();
    primary_answers(&mut h, network_error());
    track_n(&mut h, 3);
    h.flush();
    h.settle();
    let first_wait = h.stats().endpoints[0].retry_at_ms.unwrap() - h.now();
    h.run_until(h.stats().endpoints[0].retry_at_ms.unwrap());
    let ids = track_n(&mut h, 30);
    let before = h.requests.len();
    h.flush();
    h.settle();
    let burst: Vec<_> = h.requests[before..]
        .iter()
        .map(|r| (r.endpoint, r.events))
        .collect();
    let probe = Policy::default().breaker_probe_events;
    assert_eq!(burst, [(0, probe), (1, probe), (1, 30 - probe)]);
    assert_each_delivered_once(&h, &ids);
    let second_wait = h.stats().endpoints[0].retry_at_ms.unwrap() - h.now();
    assert!(second_wait >= first_wait, "{first_wait} then {second_wait}");
    assert_eq!(h.stats().endpoints[0].failures, 2);
}

/// A `Retry-After` binds the endpoint that sent it: the fallback takes the batch, the
/// primary is not asked again before its wait is over, even by an explicit `flush()`.
#[test]
fn retry_after_binds_only_its_endpoint() {
    let mut h = two_endpoints();
    h.script([retry_after(429, "600")]);
    track_n(&mut h, 2);
    h.flush();
    h.settle();
    assert_eq!(
        h.requests.iter().map(|r| r.endpoint).collect::<Vec<_>>(),
        [0, 1]
    );
    for _ in 0..5 {
        h.advance(30 * SECOND);
        track_n(&mut h, 2);
        h.flush();
        h.settle();
    }
    let to_primary: Vec<_> = h.requests.iter().filter(|r| r.endpoint == 0).collect();
    assert_eq!(
        to_primary.len(),
        1,
        "flush() does not shorten the server's wait"
    );
    assert_eq!(
        h.stats().endpoints[0].retry_at_ms,
        Some(T0 + 600 * SECOND),
        "{:?}",
        h.stats().endpoints[0]
    );
    h.run_until(T0 + 600 * SECOND);
    track_n(&mut h, 2);
    h.flush();
    h.settle();
    assert_eq!(h.requests.last().unwrap().endpoint, 0, "the wait is over");
}

/// Answers about the data (400, 413, 422) never move to another endpoint: the batch is
/// split and the bad event isolated on the endpoint that answered, and its breaker stays
/// closed.
#[test]
fn answers_about_the_data_stay_on_their_endpoint() {
    for bad in [400, 413, 422] {
        let mut h = two_endpoints();
        let ids = track_n(&mut h, 4);
        let poison = ids[2].clone();
        h.respond_with(move |r| {
            if r.message_ids.contains(&poison) {
                status(bad)
            } else {
                ok()
            }
        });
        h.flush();
        h.settle();
        assert!(h.requests.iter().all(|r| r.endpoint == 0), "{bad}");
        assert_eq!(h.stats().dropped.total(), 1);
        assert_eq!(endpoint_state(&h, 0), BreakerState::Closed);
        for id in ids.iter().filter(|id| **id != ids[2]) {
            assert_eq!(h.delivery_count(id), 1);
        }
    }
}

/// 401, 403, a redirect, 404 and every other answer about the endpoint pause that
/// endpoint and fail over; nothing is dropped. With one endpoint the SDK pauses as before.
#[test]
fn pauses_fail_over_and_never_drop() {
    for s in [401, 403, 301, 307, 404, 405, 410, 501] {
        let mut h = two_endpoints();
        primary_answers(&mut h, status(s));
        let ids = track_n(&mut h, 3);
        h.flush();
        h.settle();
        assert_each_delivered_once(&h, &ids);
        assert_eq!(h.stats().dropped.total(), 0);
        let e = &h.stats().endpoints[0];
        assert_eq!(e.state, BreakerState::Open, "{s}");
        assert_eq!(e.reason, Some(OpenReason::Paused { status: s }));
        assert!(
            !h.notifications
                .iter()
                .any(|(_, n)| matches!(n, Notification::Paused { .. })),
            "uploads are not paused: the fallback took over"
        );

        let mut one = Harness::new(Policy::default(), 1, T0);
        one.script([status(s)]);
        track_n(&mut one, 3);
        one.flush();
        one.settle();
        assert!(one
            .notifications
            .iter()
            .any(|(_, n)| matches!(n, Notification::Paused { status, .. } if *status == s)));
        assert_eq!(one.stats().queued_events, 3);
    }
}

/// A request blocked on the device opens that endpoint for the longest wait (a flush does
/// not end it) and the fallback takes the batch; when every endpoint is blocked, events
/// stay queued, the stats say so, and the SDK asks again only after `backoff_max`: a
/// bounded number of requests, not a retry storm.
#[test]
fn blocked_endpoints_wait_longest() {
    let mut h = two_endpoints();
    primary_answers(&mut h, blocked());
    let ids = track_n(&mut h, 3);
    h.flush();
    h.settle();
    assert_each_delivered_once(&h, &ids);
    let p = &h.stats().endpoints[0];
    assert_eq!(p.reason, Some(OpenReason::Blocked));
    assert_eq!(p.retry_at_ms, Some(T0 + ms(Policy::default().backoff_max)));
    for _ in 0..10 {
        track_n(&mut h, 1);
        h.flush();
        h.settle();
        h.advance(MINUTE);
    }
    assert_eq!(h.requests.iter().filter(|r| r.endpoint == 0).count(), 1);

    let mut all = two_endpoints();
    all.respond_with(|_| blocked());
    track_n(&mut all, 3);
    all.flush();
    all.advance(6 * HOUR);
    for _ in 0..20 {
        all.flush();
        all.advance(MINUTE);
    }
    let stats = all.stats();
    assert_eq!(stats.queued_events, 3);
    assert!(stats
        .endpoints
        .iter()
        .all(|e| e.reason == Some(OpenReason::Blocked)));
    let hours = (all.now() - T0) / HOUR + 1;
    // Two endpoints, each asked at most once per backoff_max (30 min).
    assert!(
        (all.requests.len() as i64) <= 2 * (hours * 2 + 1),
        "{} requests in {hours} h",
        all.requests.len()
    );
    assert!(all.notifications.iter().any(|(_, n)| matches!(
        n,
        Notification::EndpointOpened {
            reason: OpenReason::Blocked,
            ..
        }
    )));
}

/// A transport that never answers: the engine abandons the request after
/// `upload_timeout` and the batch goes to the fallback.
#[test]
fn timeout_fails_over() {
    let mut h = two_endpoints();
    let never = Policy::default().upload_timeout;
    h.set_latency(ms(never) + HOUR);
    let ids = track_n(&mut h, 2);
    h.flush();
    h.settle();
    h.set_latency(0);
    h.advance(ms(never) + SECOND);
    assert_eq!(h.abandoned.len(), 1);
    let to_fallback: Vec<_> = h.requests.iter().filter(|r| r.endpoint == 1).collect();
    assert_eq!(to_fallback.len(), 1);
    assert_eq!(to_fallback[0].message_ids, ids);
    assert_eq!(endpoint_state(&h, 0), BreakerState::Open);
}

/// When every endpoint is down, the burst ends and the batch is retried when the first
/// endpoint reopens; meanwhile nothing is sent.
#[test]
fn all_down_waits_for_the_first_to_reopen() {
    let mut h = two_endpoints();
    h.script([network_error(), status(503)]);
    let ids = track_n(&mut h, 4);
    h.flush();
    h.settle();
    assert_eq!(h.requests.len(), 2);
    let reopen = h
        .stats()
        .endpoints
        .iter()
        .filter_map(|e| e.retry_at_ms)
        .min()
        .unwrap();
    h.run_until(reopen - 1);
    assert_eq!(
        h.requests.len(),
        2,
        "nothing before the first endpoint reopens"
    );
    h.advance(SECOND);
    assert_eq!(h.requests.len(), 3);
    assert_each_delivered_once(&h, &ids);
}

/// Breaker state survives a restart: the primary, open before, is left alone after it,
/// and the first batch goes to the fallback; a list given in another order keeps each
/// endpoint's own state.
#[test]
fn breaker_state_survives_restart() {
    let mut h = two_endpoints();
    primary_answers(&mut h, blocked());
    track_n(&mut h, 2);
    h.flush();
    h.settle();
    h.restart();
    assert_eq!(h.stats().endpoints[0].reason, Some(OpenReason::Blocked));
    h.respond_with(|_| ok());
    let ids = track_n(&mut h, 2);
    h.flush();
    h.settle();
    assert_eq!(h.requests.last().unwrap().endpoint, 1);
    assert_each_delivered_once(&h, &ids);

    h.set_endpoints(&[FALLBACK, PRIMARY]);
    h.restart();
    let e = h.stats().endpoints;
    assert_eq!(e[0].url, FALLBACK);
    assert_eq!(e[0].state, BreakerState::Closed);
    assert_eq!(e[1].reason, Some(OpenReason::Blocked));
}

/// The configured list is cut to `max_endpoints`.
#[test]
fn endpoint_list_is_bounded() {
    let mut h = Harness::new(Policy::default(), 1, T0);
    let urls: Vec<String> = (0..10).map(|i| format!("https://e{i}.example")).collect();
    let refs: Vec<&str> = urls.iter().map(String::as_str).collect();
    h.set_endpoints(&refs);
    assert_eq!(h.stats().endpoints.len(), Policy::default().max_endpoints);
}

/// Failover spends no extra radio wake-up: on battery, a day with the primary down for
/// two hours makes as many flushes as the same day with both endpoints up, and no event
/// waits longer than `max_delay`.
#[test]
fn failover_adds_no_wake_up() {
    let run = |outage: bool| {
        let mut h = two_endpoints();
        h.set_conditions(cellular(0.8));
        if outage {
            let start = T0 + 2 * HOUR;
            let end = start + 2 * HOUR;
            h.respond_with(move |r| {
                if r.endpoint == 0 && (start..end).contains(&r.at_ms) {
                    network_error()
                } else {
                    ok()
                }
            });
        }
        for minute in 0..(6 * 60) {
            if minute % 3 == 0 {
                h.track("Tick");
            }
            h.advance(MINUTE);
        }
        h.advance(HOUR);
        let worst = h
            .tracked
            .iter()
            .map(|t| h.delivered_at(&t.message_id).expect("delivered") - t.at_ms)
            .max()
            .unwrap();
        (h.stats().flushes, worst)
    };
    let (calm_flushes, _) = run(false);
    let (outage_flushes, worst) = run(true);
    assert_eq!(outage_flushes, calm_flushes);
    assert!(worst <= ms(Policy::default().max_delay), "{worst}");
}

/// An explicit `flush()` while the fallback is usable goes there at once and does not
/// probe the open primary first (a primary that swallows packets would cost each flush a
/// timeout); when every endpoint is open, it ends our own backoff and the primary is
/// probed.
#[test]
fn flush_goes_to_the_usable_endpoint_without_probing_the_open_one() {
    let mut h = two_endpoints();
    h.script([network_error()]);
    track_n(&mut h, 2);
    h.flush();
    h.settle();
    assert_eq!(endpoint_state(&h, 0), BreakerState::Open);
    for _ in 0..5 {
        track_n(&mut h, 2);
        h.flush();
        h.settle();
    }
    assert_eq!(h.requests.iter().filter(|r| r.endpoint == 0).count(), 1);
    assert_eq!(h.requests.len(), 7);

    h.script([network_error(), network_error()]);
    track_n(&mut h, 2);
    h.flush();
    h.settle();
    assert_eq!(h.stats().endpoints[1].state, BreakerState::Open);
    assert_eq!(h.requests.last().unwrap().endpoint, 1);
    let before = h.requests.len();
    h.flush();
    h.settle();
    assert_eq!(
        h.requests[before].endpoint, 0,
        "all open: flush() probes the first"
    );
}

/// The halves of a batch split on the fallback (an answer about the data) stay on the
/// fallback even when the primary's wait ends half-way: isolating the bad event is not
/// moved to another endpoint, which may judge the data differently.
#[test]
fn split_halves_stay_on_the_endpoint_that_answered() {
    let mut h = two_endpoints();
    let ids = track_n(&mut h, 16);
    let poison = ids[11].clone();
    h.respond_with(move |r| {
        if r.endpoint == 0 && r.at_ms < T0 + 2 * SECOND {
            network_error()
        } else if r.message_ids.contains(&poison) {
            status(400)
        } else {
            ok()
        }
    });
    h.set_latency(700);
    h.flush();
    h.advance(MINUTE);
    let primary_open_until = T0 + 2 * SECOND;
    let split_requests: Vec<_> = h.requests.iter().skip(1).collect();
    assert!(split_requests.len() >= 6, "{split_requests:?}");
    assert!(
        split_requests
            .iter()
            .any(|r| r.at_ms > primary_open_until + 2 * SECOND),
        "the primary's wait ended during the split"
    );
    assert!(
        split_requests.iter().all(|r| r.endpoint == 1),
        "{:?}",
        split_requests
            .iter()
            .map(|r| (r.at_ms - T0, r.endpoint, r.events))
            .collect::<Vec<_>>()
    );
    assert_eq!(h.stats().dropped.total(), 1);
    for id in ids.iter().filter(|id| **id != ids[11]) {
        assert_eq!(h.delivery_count(id), 1);
    }
}
