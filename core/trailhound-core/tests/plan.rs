//! The validator against the shared tables (`tests/plan/*.json`, run by every platform),
//! the lint table, and unit tables for formats, naming, pattern portability and strip.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::{json, Value};
use trailhound_core::plan::{Plan, Rule, ALL_RULES};
use trailhound_core::Message;

fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/plan")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

/// The wire event as a stamped [`Message`] (the fields the SDK adds, with fixed values).
fn message(event: &Value) -> Message {
    let mut m = event.clone();
    let obj = m.as_object_mut().expect("an event is an object");
    obj.entry("messageId").or_insert(json!("m1"));
    obj.entry("timestamp")
        .or_insert(json!("2026-12-02T10:00:00.000Z"));
    obj.entry("anonymousId").or_insert(json!("a1"));
    obj.insert("context".into(), json!({}));
    serde_json::from_value(m).expect("the event is a message")
}

fn pairs(violations: &[trailhound_core::plan::Violation]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = violations
        .iter()
        .map(|v| (v.rule.as_str().to_owned(), v.pointer.clone()))
        .collect();
    v.sort();
    v
}

/// Runs one table; returns the rules it expects.
fn run_table(name: &str) -> BTreeSet<String> {
    let table = fixture(name);
    let plan = Plan::parse(&table["plan"].to_string()).expect("the table's plan passes lint");
    let mut rules = BTreeSet::new();
    let mut failures = Vec::new();
    for case in table["cases"].as_array().expect("cases") {
        let label = case["name"].as_str().expect("name");
        let mut expected: Vec<(String, String)> = case["violations"]
            .as_array()
            .expect("violations")
            .iter()
            .map(|v| {
                let rule = v["rule"].as_str().expect("rule").to_owned();
                assert!(Rule::parse(&rule).is_some(), "{label}: unknown rule {rule}");
                rules.insert(rule.clone());
                (rule, v["pointer"].as_str().expect("pointer").to_owned())
            })
            .collect();
        expected.sort();
        let wire = plan.check_wire(&case["event"]);
        let native = plan.check(&message(&case["event"]));
        if pairs(&wire) != expected {
            failures.push(format!(
                "{label}: check_wire gave {wire:#?}, expected {expected:?}"
            ));
        }
        if native != wire {
            failures.push(format!(
                "{label}: check gave {native:#?}, check_wire {wire:#?}"
            ));
        }
        let mut sorted = wire.clone();
        sorted.sort_by(|a, b| (&a.pointer, a.rule).cmp(&(&b.pointer, b.rule)));
        if sorted != wire {
            failures.push(format!("{label}: not in (pointer, rule) order: {wire:#?}"));
        }
        for v in &wire {
            if v.expected.is_empty() || v.found.is_empty() {
                failures.push(format!("{label}: empty expected/found in {v:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    rules
}

/// Every case of the shared table gets its listed violations, from check_wire and check alike.
#[test]
fn shared_table() {
    run_table("cases.json");
}

/// The table of a plan that allows unplanned events (naming still applies).
#[test]
fn shared_table_unplanned_allowed() {
    run_table("cases-unplanned.json");
}

/// The shared tables exercise every rule id at least once.
#[test]
fn tables_cover_every_rule() {
    let mut seen = run_table("cases.json");
    seen.extend(run_table("cases-unplanned.json"));
    let missing: Vec<&str> = ALL_RULES
        .iter()
        .map(|r| r.as_str())
        .filter(|r| !seen.contains(*r))
        .collect();
    assert!(missing.is_empty(), "rules no case expects: {missing:?}");
}

/// Every plan of the lint table is refused at the listed place, with the listed words.
#[test]
fn lint_table() {
    let table = fixture("lint-cases.json");
    let mut failures = Vec::new();
    for case in table["cases"].as_array().expect("cases") {
        let label = case["name"].as_str().expect("name");
        // A string plan is the raw text (for JSON syntax errors).
        let text = match &case["plan"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        match Plan::parse(&text) {
            Ok(_) => failures.push(format!("{label}: accepted")),
            Err(e) => {
                let at = case["at"].as_str().expect("at");
                let contains = case["contains"].as_str().expect("contains");
                if e.at != at || !e.message.contains(contains) {
                    failures.push(format!(
                        "{label}: got at {:?}: {:?}; expected at {at:?} containing {contains:?}",
                        e.at, e.message
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
