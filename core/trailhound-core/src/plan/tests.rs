//! What the device refuses and what it leaves to lint: the shared lint table
//! (`tests/plan/lint-cases.json`) says of each case who refuses it (`"by": "device"`
//! or `"lint"`). These run in every build, with or without the `lint` feature
//! (`cargo test -p trailhound-core --no-default-features --features regex --lib` is the
//! SDKs' build).

use serde_json::{json, Value};

use super::{Plan, Rule};
use crate::Message;

fn lint_cases() -> Vec<Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/plan/lint-cases.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let table: Value = serde_json::from_str(&text).expect("the lint table is JSON");
    table["cases"].as_array().expect("cases").clone()
}

fn plan_text(case: &Value) -> String {
    // A string plan is the raw text (for JSON syntax errors).
    match &case["plan"] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The device (`Plan::load`, no lint) refuses every `"by": "device"` case of the lint
/// table at the listed place with the listed words, and accepts every `"by": "lint"` one.
#[test]
fn device_refuses_the_structural_cases_only() {
    let cases = lint_cases();
    let mut failures = Vec::new();
    let mut by = (0, 0);
    for case in &cases {
        let label = case["name"].as_str().expect("name");
        let result = Plan::load(&plan_text(case));
        match (case["by"].as_str(), result) {
            (Some("device"), Err(e)) => {
                by.0 += 1;
                let at = case["at"].as_str().expect("at");
                let contains = case["contains"].as_str().expect("contains");
                if e.at != at || !e.message.contains(contains) {
                    failures.push(format!(
                        "{label}: got at {:?}: {:?}; expected at {at:?} containing {contains:?}",
                        e.at, e.message
                    ));
                }
            }
            (Some("device"), Ok(_)) => failures.push(format!("{label}: accepted")),
            (Some("lint"), Ok(_)) => by.1 += 1,
            (Some("lint"), Err(e)) => failures.push(format!("{label}: refused on device: {e}")),
            (other, _) => failures.push(format!("{label}: \"by\" is {other:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(by.0 > 0 && by.1 > 0, "{by:?}");
}

/// With lint, each `"by": "lint"` case that the device loaded is refused by
/// [`Plan::lint`] at the listed place with the listed words.
#[cfg(feature = "lint")]
#[test]
fn lint_refuses_what_the_device_loads() {
    let mut failures = Vec::new();
    for case in lint_cases().iter().filter(|c| c["by"] == "lint") {
        let label = case["name"].as_str().expect("name");
        let plan = Plan::load(&plan_text(case)).expect("the device loads it");
        match plan.lint() {
            Ok(()) => failures.push(format!("{label}: lint passed")),
            Err(e)
                if e.at != case["at"]
                    || !e.message.contains(case["contains"].as_str().unwrap()) =>
            {
                failures.push(format!("{label}: got {e}"))
            }
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn track(properties: Value) -> Message {
    serde_json::from_value(json!({
        "type": "track", "messageId": "m1", "timestamp": "2026-12-02T10:00:00.000Z",
        "event": "Song Played", "properties": properties, "context": {}
    }))
    .expect("a valid message")
}

fn rules(plan: &Plan, properties: Value) -> Vec<(Rule, String)> {
    plan.check(&track(properties))
        .into_iter()
        .map(|v| (v.rule, v.pointer))
        .collect()
}

/// A plan that only lint refuses (bounds no number meets, an enum value of another
/// type, a property name against the plan's convention) loads on the device and checks
/// events by the letter of its keywords.
#[test]
fn device_checks_a_plan_only_lint_refuses() {
    let text = json!({
        "plan": "contradictions", "version": "1-0-0",
        "naming": { "properties": "snake_case" },
        "events": [{ "type": "track", "name": "Song Played", "schema": {
            "type": "object",
            "properties": {
                "x": { "type": "integer", "minimum": 5, "maximum": 1 },
                "source": { "type": "string", "enum": ["radio", 1] },
                "songId": { "type": "string" }
            }
        }}]
    })
    .to_string();
    let plan = Plan::load(&text).expect("the device loads it");
    let at = |p: &str| p.to_owned();
    assert_eq!(
        rules(&plan, json!({ "x": 3 })),
        [
            (Rule::Minimum, at("/properties/x")),
            (Rule::Maximum, at("/properties/x"))
        ]
    );
    assert_eq!(
        rules(&plan, json!({ "x": 0 })),
        [(Rule::Minimum, at("/properties/x"))]
    );
    assert_eq!(rules(&plan, json!({ "source": "radio" })), []);
    assert_eq!(
        rules(&plan, json!({ "source": 1 })),
        [(Rule::Type, at("/properties/source"))]
    );
    assert_eq!(
        rules(&plan, json!({ "songId": "s1" })),
        [(Rule::PropertyName, at("/properties/songId"))]
    );
    #[cfg(feature = "lint")]
    assert_eq!(
        Plan::parse(&text).expect_err("lint refuses it").at,
        "/events/0/schema/properties/songId"
    );
}
