//! Tracking plans on the native runtime: the shared table (`tests/plan/cases.json`) sent
//! through a real client in every mode, to a loopback collector, with the verdicts
//! compared to the table's; and the builder's errors for a plan it cannot use.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use trailhound::core::plan::{event_label, PlanMode, Rule};
use trailhound::{Builder, DropReason, Error, Message, MessageType, Notification, Stats};
use trailhound_tests::collector::Collector;
use trailhound_tests::plan_cases::{self, Case, CaseCall, Table};
use trailhound_tests::util::{offline, recording_builder, wait_stats, wifi, Notes};

const WAIT: Duration = Duration::from_secs(20);

/// What one run of the table through a client produced.
struct Run {
    /// Each case's `messageId`, in table order.
    ids: Vec<String>,
    /// The delivered events, by `messageId`.
    delivered: HashMap<String, Value>,
    /// The listener's notifications.
    notes: Vec<Notification>,
    stats: Stats,
}

/// Sends every case of the table through a client with the table's plan in `mode`,
/// flushes to a loopback collector, and collects what came of it.
fn run_table(table: &Table, mode: PlanMode) -> Run {
    let cases = &table.cases;
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let notes: Notes = Arc::default();
    // Plugins run before the plan, on the caller's thread: the last id is this call's.
    let ids = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = Arc::clone(&ids);
    let client = recording_builder(collector.url(), dir.path(), &notes, Duration::from_secs(1))
        .conditions(wifi())
        .plan_json(table.plan.as_str())
        .plan_mode(mode)
        .plugin(move |m: Message| {
            seen.lock().unwrap().push(m.message_id.clone());
            Some(m)
        })
        .build()
        .unwrap();
    for case in cases {
        plan_cases::send(&client, &case.call)
            .unwrap_or_else(|e| panic!("{} `{}` ({mode:?}): {e}", table.name, case.name));
    }
    let ids = ids.lock().unwrap().clone();
    assert_eq!(ids.len(), cases.len(), "one plugin call per case");
    let stats = client.flush_blocking(WAIT).unwrap();
    client.shutdown(WAIT).unwrap();
    let delivered = collector
        .events()
        .into_iter()
        .map(|e| (e["messageId"].as_str().unwrap_or_default().to_owned(), e))
        .collect();
    let notes = notes.lock().unwrap().clone();
    Run {
        ids,
        delivered,
        notes,
        stats,
    }
}

/// Sorted (rule, pointer) pairs.
type Pairs = Vec<(String, String)>;

/// The (rule, pointer) pairs each PlanViolation notification told, by `messageId`, with
/// its action.
fn told(notes: &[Notification]) -> HashMap<String, (&'static str, Pairs)> {
    let mut told = HashMap::new();
    for n in notes {
        if let Notification::PlanViolation {
            message_id,
            action,
            violations,
        } = n
        {
            let mut pairs: Pairs = violations
                .iter()
                .map(|v| (v.rule.as_str().to_owned(), v.pointer.clone()))
                .collect();
            pairs.sort();
            let before = told.insert(message_id.clone(), (*action, pairs));
            assert!(before.is_none(), "{message_id} told twice");
        }
    }
    told
}

/// The counts `stats().plan_violations` must hold after the table: one per violation,
/// by the event's label and rule.
fn expected_counts(cases: &[Case]) -> BTreeMap<(String, String), u64> {
    let mut counts = BTreeMap::new();
    for case in cases {
        let (kind, name) = match &case.call {
            CaseCall::Track { event, .. } => (MessageType::Track, Some(event.as_str())),
            CaseCall::Screen { name, .. } => (MessageType::Screen, Some(name.as_str())),
            CaseCall::Page { name, .. } => (MessageType::Page, Some(name.as_str())),
            CaseCall::Identify { .. } => (MessageType::Identify, None),
            CaseCall::Group { .. } => (MessageType::Group, None),
        };
        for (rule, _) in &case.violations {
            *counts
                .entry((event_label(kind, name), rule.clone()))
                .or_insert(0) += 1;
        }
    }
    counts
}

fn counts_of(stats: &Stats) -> BTreeMap<(String, String), u64> {
    stats
        .plan_violations
        .iter()
        .map(|c| ((c.event.clone(), c.rule.as_str().to_owned()), c.count))
        .collect()
}

/// The `context.plan` violations of a delivered event, sorted, and its action.
fn annotation(event: &Value) -> Option<(String, Pairs)> {
    let plan = event["context"].get("plan")?;
    let action = plan["action"].as_str().unwrap_or_default().to_owned();
    Some((action, plan_cases::pairs(&plan["violations"])))
}

fn plan_drops(notes: &[Notification]) -> Vec<String> {
    notes
        .iter()
        .filter_map(|n| match n {
            Notification::Dropped {
                reason: DropReason::PlanViolation,
                message_ids,
                ..
            } => Some(message_ids.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

/// `report`: every event is delivered; a violating one carries exactly the table's
/// (rule, pointer) list in `context.plan`, the listener is told the same list, and the
/// stats count every violation by event and rule.
#[test]
fn table_in_report_mode() {
    for table in plan_cases::load_all() {
        report_mode(&table);
    }
}

fn report_mode(table: &Table) {
    let run = run_table(table, PlanMode::Report);
    let told = told(&run.notes);
    assert_eq!(
        run.delivered.len(),
        table.cases.len(),
        "every event delivered"
    );
    for (case, id) in table.cases.iter().zip(&run.ids) {
        let event = &run.delivered[id];
        if case.violations.is_empty() {
            assert_eq!(annotation(event), None, "case `{}` annotated", case.name);
            assert!(!told.contains_key(id), "case `{}` told", case.name);
        } else {
            let want = Some(("reported".to_owned(), case.violations.clone()));
            assert_eq!(annotation(event), want, "case `{}`", case.name);
            assert_eq!(
                told.get(id),
                Some(&("reported", case.violations.clone())),
                "case `{}`",
                case.name
            );
        }
    }
    assert_eq!(counts_of(&run.stats), expected_counts(&table.cases));
    assert_eq!(run.stats.dropped.plan_violation, 0);
    assert_eq!(run.stats.dropped.total(), 0);
}

/// `enforce`: violating events are dropped (counted as `plan_violation`, told with their
/// violations and as a drop), never queued; the others are delivered unannotated.
#[test]
fn table_in_enforce_mode() {
    for table in plan_cases::load_all() {
        enforce_mode(&table);
    }
}

fn enforce_mode(table: &Table) {
    let run = run_table(table, PlanMode::Enforce);
    let told = told(&run.notes);
    let drops = plan_drops(&run.notes);
    let mut violating = 0;
    for (case, id) in table.cases.iter().zip(&run.ids) {
        if case.violations.is_empty() {
            let event = run.delivered.get(id);
            assert!(event.is_some(), "case `{}` not delivered", case.name);
            assert_eq!(annotation(event.unwrap()), None, "case `{}`", case.name);
        } else {
            violating += 1;
            assert!(!run.delivered.contains_key(id), "case `{}` sent", case.name);
            assert_eq!(
                told.get(id),
                Some(&("dropped", case.violations.clone())),
                "case `{}`",
                case.name
            );
            assert!(drops.contains(id), "case `{}`: no drop notice", case.name);
        }
    }
    assert!(violating > 0, "the table has violating cases");
    assert_eq!(run.delivered.len(), table.cases.len() - violating);
    assert_eq!(drops.len(), violating);
    assert_eq!(run.stats.dropped.plan_violation, violating as u64);
    assert_eq!(run.stats.dropped.total(), violating as u64);
    assert_eq!(run.stats.accepted, (table.cases.len() - violating) as u64);
    assert_eq!(counts_of(&run.stats), expected_counts(&table.cases));
}

/// `enforce_strip`: an event whose only violations are unplanned properties is delivered
/// without them, annotated `stripped`; any other violation drops the event.
#[test]
fn table_in_enforce_strip_mode() {
    let table = plan_cases::load(plan_cases::TABLES[0]);
    let run = run_table(&table, PlanMode::EnforceStrip);
    let told = told(&run.notes);
    let drops = plan_drops(&run.notes);
    let additional = Rule::AdditionalProperties.as_str();
    let (mut stripped, mut dropped) = (0, 0);
    for (case, id) in table.cases.iter().zip(&run.ids) {
        let event = run.delivered.get(id);
        if case.violations.is_empty() {
            assert!(event.is_some(), "case `{}` not delivered", case.name);
            assert_eq!(annotation(event.unwrap()), None, "case `{}`", case.name);
        } else if case.violations.iter().all(|(rule, _)| rule == additional) {
            stripped += 1;
            let event = event.unwrap_or_else(|| panic!("case `{}` not sent", case.name));
            let want = Some(("stripped".to_owned(), case.violations.clone()));
            assert_eq!(annotation(event), want, "case `{}`", case.name);
            for (_, pointer) in &case.violations {
                assert_eq!(event.pointer(pointer), None, "case `{}` kept it", case.name);
            }
            assert_eq!(told.get(id).map(|t| t.0), Some("stripped"));
        } else {
            dropped += 1;
            assert!(event.is_none(), "case `{}` sent", case.name);
            assert_eq!(told.get(id).map(|t| t.0), Some("dropped"));
            assert!(drops.contains(id), "case `{}`: no drop notice", case.name);
        }
    }
    assert!(
        stripped > 0,
        "the table has cases with only unplanned properties"
    );
    assert_eq!(run.stats.dropped.plan_violation, dropped);
    assert_eq!(counts_of(&run.stats), expected_counts(&table.cases));
}

/// `off`: nothing is checked, counted, told or annotated; everything is delivered.
#[test]
fn table_in_off_mode() {
    let table = plan_cases::load(plan_cases::TABLES[0]);
    let run = run_table(&table, PlanMode::Off);
    assert_eq!(run.delivered.len(), table.cases.len());
    assert!(run.delivered.values().all(|e| annotation(e).is_none()));
    assert!(told(&run.notes).is_empty());
    assert!(run.stats.plan_violations.is_empty());
    assert_eq!(run.stats.dropped.total(), 0);
}

/// A small plan for the tests below: one track event, and identify traits.
const SMALL_PLAN: &str = r#"{
  "plan": "small", "version": "1-0-0",
  "events": [
    { "type": "track", "name": "Song Played",
      "schema": { "type": "object", "required": ["song_id"],
                  "properties": { "song_id": { "type": "string" } },
                  "additionalProperties": false } },
    { "type": "identify",
      "schema": { "type": "object", "properties": { "age": { "type": "integer" } } } }
  ]
}"#;

/// The listener hears of violations and plugin drops on the background thread, never
/// inside `track()` on the caller's (where a listener that tracks would re-enter it).
#[test]
fn violations_and_drops_are_told_on_the_background_thread() {
    let dir = tempfile::tempdir().unwrap();
    let threads = Arc::new(Mutex::new(Vec::new()));
    let t2 = Arc::clone(&threads);
    let client = Builder::new("k", "https://collector.invalid", dir.path())
        .conditions(offline())
        .plan_json(SMALL_PLAN)
        .plugin(|m: Message| (m.event.as_deref() != Some("Drop Me")).then_some(m))
        .listener(move |n: &Notification| {
            if matches!(
                n,
                Notification::PlanViolation { .. } | Notification::Dropped { .. }
            ) {
                t2.lock().unwrap().push(std::thread::current().id());
            }
        })
        .build()
        .unwrap();
    client.track("Song Played", json!({"song_id": 7})).unwrap();
    client.track("Drop Me", json!({})).unwrap();
    client.flush_blocking(WAIT).unwrap();
    let threads = threads.lock().unwrap().clone();
    assert_eq!(threads.len(), 2);
    assert!(threads.iter().all(|t| *t != std::thread::current().id()));
    client.shutdown(WAIT).unwrap();
}

/// An identify that `enforce` drops changes neither the user id nor the traits.
#[test]
fn dropped_identify_keeps_the_identity() {
    let dir = tempfile::tempdir().unwrap();
    let client = Builder::new("k", "https://collector.invalid", dir.path())
        .conditions(offline())
        .plan_json(SMALL_PLAN)
        .plan_mode(PlanMode::Enforce)
        .build()
        .unwrap();
    client.identify(Some("u-good"), json!({"age": 30})).unwrap();
    client
        .identify(Some("u-bad"), json!({"age": "old"}))
        .unwrap();
    assert_eq!(client.user_id().as_deref(), Some("u-good"));
    let stats = wait_stats(&client, WAIT, |s| s.accepted == 1);
    assert_eq!(stats.accepted, 1);
    assert_eq!(stats.dropped.plan_violation, 1);
    client.shutdown(WAIT).unwrap();
}

/// A plan that is not JSON, one with an unknown keyword (a typo that would check nothing)
/// and a file that cannot be read are refused at build with the place named; nothing is
/// opened or created. (What only lint refuses is `trailhound plan lint`'s, in CI.)
#[test]
fn bad_plans_are_refused_at_build() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let build = |b: Builder| b.conditions(offline()).build();
    let new = || Builder::new("k", "https://collector.invalid", &data);

    let err = build(new().plan_json("{ not json")).unwrap_err();
    let Error::Plan { origin, .. } = &err else {
        panic!("{err}");
    };
    assert_eq!(origin, "(JSON text)");

    let typo = SMALL_PLAN.replace(
        r#""age": { "type": "integer" }"#,
        r#""age": { "type": "integer", "minimun": 10 }"#,
    );
    let err = build(new().plan_json(typo)).unwrap_err();
    let Error::Plan { error, .. } = &err else {
        panic!("{err}");
    };
    assert!(
        error.at == "/events/1/schema/properties/age/minimun",
        "{err}"
    );
    assert!(err.to_string().contains(&error.at), "{err}");

    let missing = dir.path().join("no-such-plan.json");
    let err = build(new().plan_file(&missing)).unwrap_err();
    assert!(matches!(err, Error::Plan { .. }), "{err}");
    assert!(err.to_string().contains("no-such-plan.json"), "{err}");

    assert!(!data.exists(), "the data directory was created");
}

/// A bad plan loses nothing already queued: the next client without it finds the events.
#[test]
fn bad_plan_keeps_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let builder =
        || Builder::new("k", "https://collector.invalid", dir.path()).conditions(offline());
    let client = builder().build().unwrap();
    for i in 0..3 {
        client.track("Kept", json!({ "i": i })).unwrap();
    }
    client.shutdown(WAIT).unwrap();
    drop(client);
    assert!(builder().plan_json("[]").build().is_err());
    let client = builder().build().unwrap();
    let stats = wait_stats(&client, WAIT, |s| s.queued_events == 3);
    assert_eq!(stats.queued_events, 3);
    client.shutdown(WAIT).unwrap();
}

/// A plan file on disk is read at build, and its plan applies.
#[test]
fn plan_file_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plan.json");
    std::fs::write(&path, SMALL_PLAN).unwrap();
    let client = Builder::new("k", "https://collector.invalid", dir.path().join("data"))
        .conditions(offline())
        .plan_file(&path)
        .plan_mode(PlanMode::Enforce)
        .build()
        .unwrap();
    client
        .track("Song Played", json!({"song_id": "s1"}))
        .unwrap();
    client.track("Song Played", json!({})).unwrap();
    let stats = client.stats();
    assert_eq!(stats.dropped.plan_violation, 1);
    assert_eq!(client.plan().map(|g| g.plan().id()), Some("small"));
    client.shutdown(WAIT).unwrap();
}

/// A call the runtime refuses after the plan judged it (here: the annotation takes the
/// event past the size limit) counts no violation and tells none: a refused call that the
/// app retries must not be counted twice.
#[test]
fn refused_calls_count_no_violation() {
    let dir = tempfile::tempdir().unwrap();
    let notes: Notes = Arc::default();
    let client = recording_builder(
        "https://collector.invalid",
        dir.path(),
        &notes,
        Duration::from_secs(1),
    )
    .conditions(offline())
    .plan_json(SMALL_PLAN)
    .plan_mode(PlanMode::Report)
    .build()
    .unwrap();
    let big = |n: usize| json!({"song_id": 1, "blob": "x".repeat(n)});
    // The largest blob whose event fits without the annotation: the violation is the same.
    let mut n = 32 * 1024;
    let fits = |n: usize| {
        let probe = tempfile::tempdir().unwrap();
        let off = Builder::new("k", "https://collector.invalid", probe.path())
            .conditions(offline())
            .plan_json(SMALL_PLAN)
            .plan_mode(PlanMode::Off)
            .build()
            .unwrap();
        let ok = off.track("Song Played", big(n)).is_ok();
        off.shutdown(WAIT).unwrap();
        ok
    };
    while !fits(n) {
        n -= 64;
    }
    let refused = client.track("Song Played", big(n));
    assert!(
        matches!(refused, Err(Error::Invalid(_))),
        "annotated, the event is over the limit: {refused:?}"
    );
    client.track("Song Played", big(10)).unwrap();
    let stats = wait_stats(&client, WAIT, |s| s.accepted == 1);
    assert_eq!(
        counts_of(&stats).values().sum::<u64>(),
        2,
        "only the accepted call's two violations (type, additional_properties)"
    );
    client.shutdown(WAIT).unwrap();
    let told = notes
        .lock()
        .unwrap()
        .iter()
        .filter(|n| matches!(n, Notification::PlanViolation { .. }))
        .count();
    assert_eq!(told, 1);
}
