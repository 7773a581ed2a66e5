//! Mean-throughput benchmarks (criterion), each beside a baseline measured in the same run.
//!
//! - `track/*`: `Client::track()` of a typical event (a name and five properties) on an
//!   offline client, so that nothing is uploaded while the background thread commits to
//!   SQLite; baseline: a bare `sync_channel` send of a pre-built `String` of the same size
//!   into a channel drained by another thread. Both time each call and leave out the
//!   waits after a refused call (counted and printed); the properties are built outside the
//!   timed call. `track/sustained_tight_loop_at_queue_caps` is the rate of a tight loop,
//!   waits included, once the default queue caps are reached.
//! - `track/*_plan_*`: the same `track()` on a client with a tracking plan in `report`
//!   mode (the event's five properties planned and typed, `additionalProperties: false`):
//!   an event that passes, and one that breaks one rule (so it is annotated in
//!   `context.plan`, counted, and a notice is sent to the background thread). Compare
//!   with `trailhound_track_offline`, the same call without a plan, in the same run.
//! - `plan_gate/*`: `PlanGate::apply` alone on the typical event, stamped: what a plan in
//!   `report` mode adds to `track()` on the caller's thread, without the machine's noise
//!   around a whole call.
//! - `batch_build/*`: `wire::build_batch_body` (concatenate + gzip) of 100 and 500 typical
//!   events; baseline: `serde_json::to_vec` of the same messages, without gzip.
//!
//! Read the results as ratios (trailhound / baseline); absolute numbers on a shared 2-core
//! machine are noise. Quick run: `cargo bench -p trailhound --bench track -- --quick`.

mod common;

use std::hint::black_box;
use std::sync::mpsc::{sync_channel, TrySendError};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use trailhound::core::wire;
use trailhound::{Builder, Error, Policy};

use common::{app_context, offline, properties, typical_events, EVENT};
use serde_json::Value;
use trailhound::core::plan::PlanMode;
use trailhound::Client;

const SENT_AT: i64 = 1_700_000_000_000;

/// Pause after a refused call (`Error::Backpressure`, or a full baseline channel).
const BACKOFF: Duration = Duration::from_micros(100);

/// The plan of the typical event: its five properties, typed and bounded.
/// (The file is shared with the validator's bench, `trailhound-core/benches/plan.rs`.)
const PLAN: &str = include_str!("../../trailhound-core/benches/typical-plan.json");

/// The typical event, breaking the plan once (`rating` above its maximum).
fn violating_properties(i: u64) -> Value {
    let mut p = properties(i);
    p["rating"] = 7.5.into();
    p
}

/// Times `iters` accepted `track()` calls, each on its own (the properties built outside
/// the timed call); refused calls wait and are counted in `refused`, not timed.
fn time_tracks(
    client: &Client,
    iters: u64,
    props: impl Fn(u64) -> Value,
    refused: &mut u64,
) -> Duration {
    let mut total = Duration::ZERO;
    for i in 0..iters {
        loop {
            let p = props(i);
            let t = Instant::now();
            let r = client.track(EVENT, p);
            let d = t.elapsed();
            match r {
                Ok(()) => {
                    total += d;
                    break;
                }
                Err(Error::Backpressure) => {
                    *refused += 1;
                    std::thread::sleep(BACKOFF);
                }
                Err(e) => panic!("track failed: {e}"),
            }
        }
    }
    total
}

fn bench_track(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    // The default policy, as an app has it: the queue caps keep the database small however
    // many iterations criterion runs (eviction runs on the background thread).
    let client = Builder::new("bench-key", "https://collector.invalid", dir.path())
        .context(app_context())
        .conditions(offline())
        .build()
        .expect("client");
    let json_len = typical_events(1).1[0].json.len();

    let mut group = c.benchmark_group("track");
    group.throughput(Throughput::Elements(1));

    // Each call is timed on its own and only accepted calls count: a tight loop outruns
    // the background thread, and waiting for it is not the cost of track() (the sustained
    // rate is measured below). The properties are built outside the timed call.
    let mut refused = 0u64;
    group.bench_function("trailhound_track_offline", |b| {
        b.iter_custom(|iters| time_tracks(&client, iters, properties, &mut refused))
    });

    // The same call with a plan in `report` mode, on its own client (and data directory).
    let plan_dir = tempfile::tempdir().expect("temp dir");
    let planned = Builder::new("bench-key", "https://collector.invalid", plan_dir.path())
        .context(app_context())
        .conditions(offline())
        .plan_json(PLAN)
        .plan_mode(PlanMode::Report)
        .build()
        .expect("client with a plan");
    group.bench_function("trailhound_track_offline_plan_pass", |b| {
        b.iter_custom(|iters| time_tracks(&planned, iters, properties, &mut refused))
    });
    group.bench_function("trailhound_track_offline_plan_violation", |b| {
        b.iter_custom(|iters| time_tracks(&planned, iters, violating_properties, &mut refused))
    });
    let plan_stats = planned.stats();
    let violations: u64 = plan_stats.plan_violations.iter().map(|c| c.count).sum();
    eprintln!(
        "track: with the plan, accepted {}, violations counted {violations}",
        plan_stats.accepted
    );
    // (Nothing ran when a filter left these benchmarks out.)
    assert!(
        plan_stats.accepted == 0 || violations > 0,
        "the violating event broke no rule"
    );
    planned.shutdown(Duration::from_secs(30)).expect("shutdown");

    // Baseline: the cheapest possible hand-off of a serialised event to another thread.
    let (tx, rx) = sync_channel::<String>(Policy::default().call_queue_capacity);
    let drain = std::thread::spawn(move || rx.into_iter().map(|s| s.len() as u64).sum::<u64>());
    let template = "x".repeat(json_len);
    let mut full = 0u64;
    group.bench_function("baseline_sync_channel_send", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut s = template.clone();
                loop {
                    let t = Instant::now();
                    let r = tx.try_send(s);
                    let d = t.elapsed();
                    match r {
                        Ok(()) => {
                            total += d;
                            break;
                        }
                        Err(TrySendError::Full(back)) => {
                            full += 1;
                            s = back;
                            std::thread::sleep(BACKOFF);
                        }
                        Err(TrySendError::Disconnected(_)) => panic!("drain thread stopped"),
                    }
                }
            }
            total
        })
    });
    drop(tx);
    black_box(drain.join().expect("drain thread"));

    // The sustained rate of a tight loop, waits for the background thread included: once
    // the queue is at its caps, every commit also evicts.
    let mut waits = 0u64;
    group.bench_function("sustained_tight_loop_at_queue_caps", |b| {
        b.iter_batched(
            || properties(7),
            |props| match client.track(EVENT, props) {
                Ok(()) => {}
                Err(Error::Backpressure) => {
                    waits += 1 + common::track_retry(&client, 7, Duration::ZERO);
                }
                Err(e) => panic!("track failed: {e}"),
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();

    let stats = client.stats();
    eprintln!(
        "track: event json {json_len} bytes; {refused} calls refused with Backpressure in \
         trailhound_track_offline (not timed), {full} full-channel retries in the baseline, \
         {waits} waits in sustained_tight_loop_at_queue_caps; accepted {}, queued {}, dropped by \
         the queue caps {}",
        stats.accepted,
        stats.queued_events,
        stats.dropped.count_cap + stats.dropped.bytes_cap
    );
    let started = Instant::now();
    client.shutdown(Duration::from_secs(30)).expect("shutdown");
    eprintln!("track: shutdown took {:?}", started.elapsed());
}

/// The gate alone (`PlanGate::apply`, what `track()` adds with a plan) on the typical
/// event as `track()` has it after stamping: one that passes, one that breaks one rule
/// (checked, counted, annotated: its shared context copied for `context.plan`).
fn bench_plan_gate(c: &mut Criterion) {
    use std::sync::{Arc, Mutex};
    use trailhound::core::plan::{Plan, PlanGate, Verdict};
    use trailhound::Message;

    // A stamped message, as the plugins see it: caught by a plugin on a real client.
    let dir = tempfile::tempdir().expect("temp dir");
    let caught: Arc<Mutex<Vec<Message>>> = Arc::default();
    let keep = Arc::clone(&caught);
    let client = Builder::new("bench-key", "https://collector.invalid", dir.path())
        .context(app_context())
        .conditions(offline())
        .plugin(move |m: Message| {
            keep.lock().expect("lock").push(m.clone());
            Some(m)
        })
        .build()
        .expect("client");
    client.track(EVENT, properties(1)).expect("track");
    client.track(EVENT, violating_properties(1)).expect("track");
    client.shutdown(Duration::from_secs(30)).expect("shutdown");
    let (passing, violating) = {
        let mut caught = caught.lock().expect("lock");
        let violating = caught.pop().expect("caught");
        (caught.pop().expect("caught"), violating)
    };
    let plan = Arc::new(Plan::parse(PLAN).expect("plan"));
    let gate = PlanGate::new(
        Arc::clone(&plan),
        PlanMode::Report,
        Policy::default().max_violation_kinds,
    );

    let mut group = c.benchmark_group("plan_gate");
    group.throughput(Throughput::Elements(1));
    group.bench_function("apply_report_pass", |b| {
        b.iter_batched_ref(
            || passing.clone(),
            |m| assert_eq!(gate.apply(m), Verdict::Pass),
            BatchSize::SmallInput,
        )
    });
    // Of which the validator (the violation built with its texts).
    group.bench_function("check_violation", |b| {
        b.iter(|| black_box(plan.check(black_box(&violating))))
    });
    group.bench_function("apply_report_violation", |b| {
        b.iter_batched_ref(
            || violating.clone(),
            |m| black_box(gate.apply(m)),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn bench_batch_build(c: &mut Criterion) {
    let mut group = c.benchmark_group("batch_build");
    for n in [100u64, 500] {
        let (messages, events) = typical_events(n);
        let raw = wire::batch_json(&events, SENT_AT).len();
        let gz = wire::build_batch_body(&events, SENT_AT).len();
        eprintln!(
            "batch_build/{n}: {raw} bytes raw, {gz} bytes gzip ({:.1}x)",
            raw as f64 / gz as f64
        );
        group.throughput(Throughput::Elements(n));
        group.bench_function(format!("build_batch_body/{n}"), |b| {
            b.iter(|| wire::build_batch_body(black_box(&events), SENT_AT))
        });
        group.bench_function(format!("baseline_serde_json_to_vec/{n}"), |b| {
            b.iter(|| serde_json::to_vec(black_box(&messages)).expect("serialise"))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench_track, bench_plan_gate, bench_batch_build
}
criterion_main!(benches);
