//! The upload schedule on an unconstrained link (the Prompt tier), measured on the virtual
//! clock: requests per 1,000 events and delivery delay, for steady tracking at several
//! rates and for a few `flush_at` / `prompt_gather` settings. The figures behind the
//! defaults in `Policy::prompt_gather`'s doc comment:
//!
//! ```sh
//! cargo test -p trailhound-core --test schedule -- --ignored --nocapture
//! ```

use std::time::Duration;

use trailhound_core::testing::*;
use trailhound_core::*;

const T0: i64 = 1_750_000_000_000;

/// What steady tracking at `per_second` for `seconds` costs under `policy`: requests per
/// 1,000 events, and the median, 95th percentile and largest delivery delay in ms.
fn measure(policy: &Policy, per_second: u32, seconds: i64) -> (f64, i64, i64, i64) {
    let mut h = Harness::new(policy.clone(), 7, T0);
    h.set_conditions(wifi_charging());
    h.set_latency(50);
    let mut ids = Vec::new();
    let step_us = 1_000_000 / per_second as i64;
    let mut t_us = 0i64;
    while t_us < seconds * 1_000_000 {
        let due = T0 + t_us / 1_000;
        if due > h.now() {
            h.run_until(due);
        }
        ids.push(h.track("e"));
        t_us += step_us;
    }
    h.advance(10 * MINUTE);
    let mut waits: Vec<i64> = h
        .tracked
        .iter()
        .map(|t| h.delivered_at(&t.message_id).expect("delivered") - t.at_ms)
        .collect();
    waits.sort_unstable();
    let q = |f: f64| waits[((waits.len() - 1) as f64 * f) as usize];
    let per_1000 = h.requests.len() as f64 * 1000.0 / ids.len() as f64;
    (per_1000, q(0.5), q(0.95), *waits.last().unwrap())
}

/// Prints the table (not a check: the checks are in `pipeline.rs`).
#[test]
#[ignore]
fn prompt_schedule_table() {
    println!(
        "| flush_at | prompt_gather | rate/s | requests per 1000 events | delay p50 | p95 | max |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (flush_at, gather_ms) in [(20, 0), (100, 0), (20, 1_000), (20, 2_000), (20, 5_000)] {
        let policy = Policy {
            flush_at,
            prompt_gather: Duration::from_millis(gather_ms),
            ..Policy::default()
        };
        for rate in [1, 10, 200, 2_000] {
            let seconds = if rate >= 200 { 20 } else { 120 };
            let (per_1000, p50, p95, max) = measure(&policy, rate, seconds);
            println!(
                "| {flush_at} | {gather_ms} ms | {rate} | {per_1000:.1} | {p50} ms | {p95} ms | {max} ms |"
            );
        }
    }
}

/// With the defaults, steady tracking at any rate costs at most a few requests per 1,000
/// events and no event waits much longer than the gathering delay beyond `flush_at`.
#[test]
fn default_prompt_schedule_is_frugal_and_prompt() {
    let policy = Policy::default();
    let gather = policy.prompt_gather.as_millis() as i64;
    for rate in [200, 2_000] {
        let (per_1000, _, p95, max) = measure(&policy, rate, 10);
        assert!(per_1000 <= 5.0, "{rate}/s: {per_1000} requests per 1000");
        assert!(p95 <= gather + 200, "{rate}/s: p95 {p95} ms");
        assert!(max <= 2 * gather + 200, "{rate}/s: max {max} ms");
    }
}
