//! The day simulation's goal: far fewer radio wake-ups than a fixed flush policy, without
//! delaying online events past `max_delay` or losing or duplicating any.

use trailhound_tests::sim::{self, percentile, OutageRun, Variant};

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

/// Through two hours of connection refused and twenty minutes of 503 on the primary
/// endpoint: with a fallback, no event tracked online in the outage waits past
/// `max_delay` and the day takes no more radio wake-ups than without the outage; with one
/// endpoint, the events wait for the outage to end and every one is delivered exactly once.
#[test]
fn an_outage_of_the_primary_endpoint() {
    let day = sim::typical_day(sim::SEED);
    let [calm, alone, fallback] = [
        OutageRun::NoOutage,
        OutageRun::OneEndpoint,
        OutageRun::WithFallback,
    ]
    .map(|r| sim::run_setup(&day, &r.setup()));
    println!(
        "{}",
        sim::outage_report(&day, &[calm.clone(), alone.clone(), fallback.clone()])
    );

    let outage = sim::OUTAGE;
    let in_outage = |at: i64| outage.contains(at - day.start_ms);
    // The fault was injected: the primary was tried in the outage and took nothing then.
    for o in [&alone, &fallback] {
        let tried: Vec<_> = o
            .requests
            .iter()
            .filter(|r| r.endpoint == 0 && in_outage(r.at_ms))
            .collect();
        assert!(
            !tried.is_empty(),
            "{}: the primary was never tried in the outage",
            o.name
        );
        assert!(
            tried.iter().all(|r| !r.accepted()),
            "{}: the primary accepted a batch in the outage",
            o.name
        );
    }
    assert!(alone.requests.iter().all(|r| r.endpoint == 0));
    assert!(fallback.requests_to(1) > 0, "nothing went to the fallback");

    let mut missed = Vec::new();
    let tracked = fallback.tracked_online_during(&outage);
    assert!(
        !tracked.is_empty(),
        "no event was tracked online in the outage"
    );
    for e in &tracked {
        match e.delivered_ms.map(|t| t - e.tracked_ms) {
            Some(d) if d <= fallback.max_delay_ms => {}
            d => missed.push(format!(
                "with a fallback, an event tracked at {} waited {d:?} ms (max_delay {} ms)",
                e.tracked_ms - day.start_ms,
                fallback.max_delay_ms
            )),
        }
    }
    let (w_calm, w_fallback) = (calm.wakeups().len(), fallback.wakeups().len());
    if w_fallback > w_calm {
        missed.push(format!(
            "with a fallback, {w_fallback} radio wake-ups, {w_calm} without the outage"
        ));
    }
    for o in [&calm, &alone, &fallback] {
        if o.delivered_once() != day.events() || o.delivered() != day.events() {
            missed.push(format!(
                "{}: {} events tracked, {} delivered, {} exactly once",
                o.name,
                day.events(),
                o.delivered(),
                o.delivered_once()
            ));
        }
    }
    assert!(
        missed.is_empty(),
        "outage goal missed:\n{}",
        missed.join("\n")
    );
}
