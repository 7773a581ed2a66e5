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
//!
//! Quick run: `cargo bench -p trailhound-core --bench plan -- --quick`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::{json, Value};
use trailhound_core::plan::Plan;
use trailhound_core::Message;

const TYPED: &str = r#"{
  "plan": "bench", "version": "1-0-0",
  "events": [
    { "type": "track", "name": "Song Played",
      "schema": { "type": "object", "required": ["title", "artist", "seconds"],
        "additionalProperties": false,
        "properties": {
          "title": { "type": "string", "minLength": 1, "maxLength": 200 },
          "artist": { "type": "string", "maxLength": 200 },
          "seconds": { "type": "integer", "minimum": 0, "maximum": 86400 },
          "shuffle": { "type": "boolean" },
          "rating": { "type": "number", "minimum": 0, "maximum": 5 } } } }
  ]
}"#;

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

criterion_group!(benches, bench);
criterion_main!(benches);
