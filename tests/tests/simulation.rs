//! The day simulation's goal: far fewer radio wake-ups than a fixed flush policy, without
//! delaying online events past `max_delay` or losing or duplicating any.

use trailhound_tests::sim::{self, percentile, Variant};

/// Over a typical day Trailhound wakes the radio at least 5x less often than a flush-at-20-or-30-s baseline, keeps the p95 delay of events tracked online within `max_delay`, and delivers every event exactly once.
#[test]
fn a_day_of_music_meets_the_goal() {
    let day = sim::typical_day(sim::SEED);
    let ours = sim::run(&day, Variant::Trailhound);
    let baseline = sim::run(&day, Variant::Baseline);
    println!("{}", sim::report(&day, &ours, &baseline));

    let mut missed = Vec::new();
    let (w_ours, w_base) = (ours.wakeups().len(), baseline.wakeups().len());
    if w_ours * 5 > w_base {
        missed.push(format!(
            "wake-ups: Trailhound {w_ours}, baseline {w_base}: not 5x fewer"
        ));
    }
    let p95 = percentile(&ours.delays(true), 0.95);
    if p95 > ours.max_delay_ms {
        missed.push(format!(
            "p95 delay of events tracked online is {p95} ms, over max_delay ({} ms)",
            ours.max_delay_ms
        ));
    }
    if ours.delivered_once() != day.events() || ours.delivered() != day.events() {
        missed.push(format!(
            "{} events tracked, {} delivered, {} exactly once",
            day.events(),
            ours.delivered(),
            ours.delivered_once()
        ));
    }
    assert!(missed.is_empty(), "goal missed:\n{}", missed.join("\n"));
}

/// The same seed gives the same day and the same outcome, to the request.
#[test]
fn the_simulation_is_deterministic() {
    let a = sim::run(&sim::typical_day(sim::SEED), Variant::Trailhound);
    let b = sim::run(&sim::typical_day(sim::SEED), Variant::Trailhound);
    assert_eq!(a.requests, b.requests);
    assert_eq!(a.events, b.events);
}

/// The baseline is honest: same events, never sends while offline, and delivers everything.
#[test]
fn the_baseline_sends_nothing_offline() {
    let day = sim::typical_day(sim::SEED);
    let baseline = sim::run(&day, Variant::Baseline);
    let offline = |t: i64| !sim::conditions_at(t - day.start_ms).network.is_online();
    assert!(baseline.requests.iter().all(|r| !offline(r.at_ms)));
    assert_eq!(baseline.events.len(), day.events());
    assert_eq!(baseline.delivered_once(), day.events());
}
