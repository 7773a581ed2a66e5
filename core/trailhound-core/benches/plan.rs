//! The validator's cost per event (criterion): `Plan::check` of a stamped message and
//! `Plan::check_wire` of its wire form, for a planned event with five properties.
//!
//! - `plan/check_typed_pass`: five typed and bounded properties, `additionalProperties:
//!   false`, no naming convention (the plan of the runtime's `track` bench).
//! - `plan/check_rich_pass`: the same five properties with an enum, a pattern, a
//!   `date-time` format and lengths, and naming conventions for event and property names.
//! - `plan/check_rich_fail`: the rich plan, one property over its maximum and one not in
//!   the plan (two violations: what `report` mode then annotates).
//! - `plan/check_wire_rich_pass`: the rich event in its wire form (the collector, the CLI).
//! - `plan/parse_rich`: parsing, linting and compiling the rich plan.
//! - `plan/pattern_is_match` (best batch only): the rich plan's `^s[0-9]+$` on `s1234`
//!   with the built-in engine (plan::pattern), most of the rich plan's cost.
//!
//! Before criterion's means, the bench prints for each the best of 200 batches of 2 000
//! calls (ns per call): on a shared machine under load the mean measures the neighbours
//! too, and the best batch is the closest to the validator's own cost.
//!
//! Quick run: `cargo bench -p trailhound-core --bench plan -- --quick`.

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, Criterion};
use serde_json::{json, Value};
use trailhound_core::plan::{BuiltinEngine, PatternEngine, Plan};
use trailhound_core::Message;

/// The plan of the typical event, shared with the runtime's `track` bench.
const TYPED: &str = include_str!("typical-plan.json");

const RICH: &str = r#"{
  "plan": "bench", "version": "1-0-0",
  "naming": { "events": "title_case", "properties": "snake_case" },
  "events": [
    { "type": "track", "name": "Song Paused", "schema": { "type": "object" } },
    { "type": "track", "name": "Song Played",
      "schema": { "type": "object", "required": ["song_id", "source", "seconds"],
        "additionalProperties": false,
        "properties": {
          "song_id": { "type": "string", "pattern": "^s[0-9]+$", "maxLength": 32 },
          "source": { "type": "string", "enum": ["library", "radio", "search"] },
          "seconds": { "type": "integer", "minimum": 0, "maximum": 86400 },
          "played_at": { "type": "string", "format": "date-time" },
          "rating": { "type": ["number", "null"], "minimum": 0, "maximum": 5 } } } },
    { "type": "screen", "name": "Player", "schema": { "type": "object" } }
  ]
}"#;

fn message(props: Value) -> Message {
    serde_json::from_value(json!({
        "type": "track", "event": "Song Played", "messageId": "m1",
        "timestamp": "2026-12-02T10:00:00.000Z", "anonymousId": "a1", "context": {},
        "properties": props,
    }))
    .expect("a message")
}

fn typed_props() -> Value {
    json!({"title": "Blue in Green", "artist": "Miles Davis", "seconds": 337,
           "shuffle": false, "rating": 4.5})
}

fn rich_props() -> Value {
    json!({"song_id": "s1234", "source": "radio", "seconds": 337,
           "played_at": "2026-12-02T10:00:00.000Z", "rating": 4.5})
}

fn bench(c: &mut Criterion) {
    let typed = Plan::parse(TYPED).expect("typed plan");
    let rich = Plan::parse(RICH).expect("rich plan");
    let typed_msg = message(typed_props());
    let rich_msg = message(rich_props());
    let mut bad = rich_props();
    bad["seconds"] = json!(90000);
    bad["mood"] = json!("calm");
    let rich_bad = message(bad);
    let rich_wire = serde_json::to_value(&rich_msg).expect("wire form");
    assert!(typed.check(&typed_msg).is_empty());
    assert!(rich.check(&rich_msg).is_empty());
    assert_eq!(rich.check(&rich_bad).len(), 2);
    assert!(rich.check_wire(&rich_wire).is_empty());

    let mut g = c.benchmark_group("plan");
    g.bench_function("check_typed_pass", |b| {
        b.iter(|| black_box(typed.check(black_box(&typed_msg))))
    });
    g.bench_function("check_rich_pass", |b| {
        b.iter(|| black_box(rich.check(black_box(&rich_msg))))
    });
    g.bench_function("check_rich_fail", |b| {
        b.iter(|| black_box(rich.check(black_box(&rich_bad))))
    });
    g.bench_function("check_wire_rich_pass", |b| {
        b.iter(|| black_box(rich.check_wire(black_box(&rich_wire))))
    });
    g.bench_function("parse_rich", |b| {
        b.iter(|| black_box(Plan::parse(black_box(RICH)).is_ok()))
    });
    g.finish();
}

/// The best of 200 batches of 2 000 calls, in ns per call.
fn best_batch(mut f: impl FnMut()) -> f64 {
    const CALLS: u32 = 2_000;
    let mut best = f64::INFINITY;
    for _ in 0..200 {
        let start = Instant::now();
        for _ in 0..CALLS {
            f();
        }
        best = best.min(start.elapsed().as_nanos() as f64 / f64::from(CALLS));
    }
    best
}

fn best_batches() {
    let typed = Plan::parse(TYPED).expect("typed plan");
    let rich = Plan::parse(RICH).expect("rich plan");
    let typed_msg = message(typed_props());
    let rich_msg = message(rich_props());
    let rich_wire = serde_json::to_value(&rich_msg).expect("wire form");
    let pattern = BuiltinEngine.compile("^s[0-9]+$").expect("pattern");
    let rows: [(&str, f64); 4] = [
        (
            "check_typed_pass",
            best_batch(|| {
                black_box(typed.check(black_box(&typed_msg)));
            }),
        ),
        (
            "check_rich_pass",
            best_batch(|| {
                black_box(rich.check(black_box(&rich_msg)));
            }),
        ),
        (
            "check_wire_rich_pass",
            best_batch(|| {
                black_box(rich.check_wire(black_box(&rich_wire)));
            }),
        ),
        (
            "pattern_is_match",
            best_batch(|| {
                black_box(pattern.is_match(black_box("s1234")));
            }),
        ),
    ];
    for (name, ns) in rows {
        println!("plan/{name:<24} best batch: {ns:7.1} ns per call");
    }
}

criterion_group!(benches, bench);

fn main() {
    best_batches();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
