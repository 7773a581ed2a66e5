//! Tracking plans through the FFI: the shared tables (`tests/plan/*.json`) sent with the
//! host-facing client, with the same verdicts as the native runtime and the validator;
//! the configuration's plan errors.
#![cfg(feature = "ureq")]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use trailhound_ffi::value::from_json;
use trailhound_ffi::*;
use trailhound_tests::collector::Collector;
use trailhound_tests::plan_cases::{self, CaseCall, Table};

#[allow(dead_code)] // Each test file uses a part of it.
mod common;

const WAIT_MS: i64 = 20_000;

/// Records every notification.
#[derive(Default)]
struct Heard(Mutex<Vec<Notification>>);

impl DeliveryListener for Heard {
    fn on_notification(&self, n: Notification) -> Result<(), TrailhoundError> {
        self.0.lock().unwrap().push(n);
        Ok(())
    }
}

/// Records each event's `messageId` as it passes (plugins run before the plan).
#[derive(Default)]
struct Ids(Mutex<Vec<String>>);

impl EventPlugin for Ids {
    fn process(&self, event: Event) -> Result<Option<Event>, TrailhoundError> {
        self.0.lock().unwrap().push(event.message_id.clone());
        Ok(Some(event))
    }
}

fn map(v: &serde_json::Value) -> HashMap<String, Value> {
    match from_json(v) {
        Value::Object { v } => v,
        other => panic!("not an object: {other:?}"),
    }
}

fn send(client: &TrailhoundClient, call: &CaseCall) -> Result<(), TrailhoundError> {
    match call {
        CaseCall::Track { event, properties } => client.track(event.clone(), map(properties)),
        CaseCall::Screen { name, properties } => client.screen(name.clone(), map(properties)),
        CaseCall::Page { name, properties } => client.page(name.clone(), map(properties)),
        CaseCall::Identify { user_id, traits } => {
            client.identify(Some(user_id.clone()), map(traits))
        }
        CaseCall::Group { group_id, traits } => client.group(group_id.clone(), map(traits)),
    }
}

fn config(url: &str, dir: &std::path::Path, plan: &str, mode: PlanMode) -> Config {
    Config {
        endpoint: url.into(),
        plan_json: Some(plan.into()),
        plan_mode: Some(mode),
        jitter_seed: Some(1),
        ..common::config("key", dir)
    }
}

/// Sorted (rule, pointer) pairs.
type Pairs = Vec<(String, String)>;

/// Each case's verdict through the FFI in `mode`: what the listener was told (action and
/// pairs) and what arrived (the `context.plan` pairs, or `None` if nothing arrived);
/// and the final stats.
struct Outcome {
    told: Vec<Option<(String, Pairs)>>,
    arrived: Vec<Option<Option<Pairs>>>,
    stats: Stats,
}

fn run(table: &Table, mode: PlanMode) -> Outcome {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let heard = Arc::new(Heard::default());
    let ids = Arc::new(Ids::default());
    let client = TrailhoundClient::new(
        config(collector.url(), dir.path(), &table.plan, mode),
        None,
        vec![ids.clone()],
        vec![heard.clone()],
    )
    .unwrap();
    for case in &table.cases {
        send(&client, &case.call).unwrap_or_else(|e| panic!("{} `{}`: {e}", table.name, case.name));
    }
    let stats = client.flush_blocking(WAIT_MS).unwrap();
    client.shutdown(WAIT_MS).unwrap();
    let ids = ids.0.lock().unwrap().clone();
    assert_eq!(ids.len(), table.cases.len());
    let heard = heard.0.lock().unwrap().clone();
    let events = collector.events();
    let told = ids
        .iter()
        .map(|id| {
            heard.iter().find_map(|n| match n {
                Notification::PlanViolation {
                    message_id,
                    action,
                    violations,
                } if message_id == id => {
                    let mut pairs: Pairs = violations
                        .iter()
                        .map(|v| (v.rule.clone(), v.pointer.clone()))
                        .collect();
                    pairs.sort();
                    Some((action.clone(), pairs))
                }
                _ => None,
            })
        })
        .collect();
    let arrived = ids
        .iter()
        .map(|id| {
            let event = events.iter().find(|e| e["messageId"] == id.as_str())?;
            Some(
                event["context"]
                    .get("plan")
                    .map(|p| plan_cases::pairs(&p["violations"])),
            )
        })
        .collect();
    Outcome {
        told,
        arrived,
        stats,
    }
}

/// `Report` through the FFI: every event arrives, a violating one with exactly the
/// table's (rule, pointer) list in `context.plan`, and the listener is told the same.
#[test]
fn tables_in_report_mode() {
    for table in plan_cases::load_all() {
        let out = run(&table, PlanMode::Report);
        let mut total = 0;
        for (i, case) in table.cases.iter().enumerate() {
            let want = &case.violations;
            total += i64::try_from(want.len()).unwrap();
            if want.is_empty() {
                assert_eq!(out.told[i], None, "`{}`", case.name);
                assert_eq!(out.arrived[i], Some(None), "`{}`", case.name);
            } else {
                let told = Some(("reported".to_owned(), want.clone()));
                assert_eq!(out.told[i], told, "`{}`", case.name);
                assert_eq!(out.arrived[i], Some(Some(want.clone())), "`{}`", case.name);
            }
        }
        let counted: i64 = out.stats.plan_violations.iter().map(|c| c.count).sum();
        assert_eq!(counted, total, "{}", table.name);
        assert_eq!(out.stats.dropped.plan_violation, 0);
    }
}

/// `Enforce` through the FFI: violating events never arrive and are counted as dropped
/// `plan_violation`; the others arrive unannotated.
#[test]
fn tables_in_enforce_mode() {
    for table in plan_cases::load_all() {
        let out = run(&table, PlanMode::Enforce);
        let mut dropped = 0;
        for (i, case) in table.cases.iter().enumerate() {
            if case.violations.is_empty() {
                assert_eq!(out.arrived[i], Some(None), "`{}`", case.name);
            } else {
                dropped += 1;
                assert_eq!(out.arrived[i], None, "`{}` arrived", case.name);
                let told = Some(("dropped".to_owned(), case.violations.clone()));
                assert_eq!(out.told[i], told, "`{}`", case.name);
            }
        }
        assert_eq!(out.stats.dropped.plan_violation, dropped, "{}", table.name);
        assert_eq!(out.stats.dropped.total, dropped, "{}", table.name);
    }
}

/// A plan the SDK cannot apply (an unknown keyword) is a `Plan` error carrying the JSON
/// pointer into the plan; a
/// missing plan file names the path; two plans at once are a configuration error.
#[test]
fn bad_plans_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let bad = r#"{"plan": "p", "version": "1-0-0", "events": [
        {"type": "track", "name": "A", "schema": {"type": "object",
         "properties": {"n": {"type": "integer", "minimun": 5}}}}]}"#;
    let err = TrailhoundClient::new(
        config(
            "https://collector.example.com",
            &data,
            bad,
            PlanMode::Report,
        ),
        None,
        vec![],
        vec![],
    )
    .unwrap_err();
    let TrailhoundError::Plan { at, detail } = &err else {
        panic!("{err}");
    };
    assert!(at.starts_with("/events/0/schema/properties/n"), "{err}");
    assert!(detail.contains(at.as_str()), "{err}");

    let missing = dir.path().join("missing-plan.json");
    let cfg = Config {
        plan_json: None,
        plan_file: Some(missing.to_string_lossy().into_owned()),
        ..common::config("key", &data)
    };
    let err = TrailhoundClient::new(cfg, None, vec![], vec![]).unwrap_err();
    assert!(matches!(err, TrailhoundError::Plan { .. }), "{err}");
    assert!(err.to_string().contains("missing-plan.json"), "{err}");

    let cfg = Config {
        plan_json: Some(bad.into()),
        plan_file: Some("/p.json".into()),
        ..common::config("key", &data)
    };
    let err = TrailhoundClient::new(cfg, None, vec![], vec![]).unwrap_err();
    assert!(matches!(err, TrailhoundError::Config { .. }), "{err}");
    assert!(!data.exists(), "the data directory was created");
}

/// The stats count violations per event and rule, bounded by `max_violation_kinds`: past
/// it, new pairs go to `(other events)`.
#[test]
fn violation_counts_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let plan = r#"{"plan": "p", "version": "1-0-0", "events": []}"#;
    let cfg = Config {
        plan_json: Some(plan.into()),
        policy: Some(PolicyOverrides {
            max_violation_kinds: Some(2),
            ..PolicyOverrides::default()
        }),
        ..common::config("key", dir.path())
    };
    let rec = Arc::new(common::Recorder(Mutex::new(vec![])));
    let client = TrailhoundClient::new(cfg, Some(rec), vec![], vec![]).unwrap();
    for name in ["A", "B", "C", "D", "A"] {
        client.track(name.into(), HashMap::new()).unwrap();
    }
    let counts: Vec<(String, String, i64)> = client
        .stats()
        .plan_violations
        .into_iter()
        .map(|c| (c.event, c.rule, c.count))
        .collect();
    let unplanned = "unplanned_event".to_owned();
    assert_eq!(
        counts,
        vec![
            ("(other events)".into(), unplanned.clone(), 2),
            ("A".into(), unplanned.clone(), 2),
            ("B".into(), unplanned, 1),
        ]
    );
    client.shutdown(WAIT_MS).unwrap();
}
