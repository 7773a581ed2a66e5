//! What the browser package refuses when it loads a plan (`Plan::load_with`, the
//! structure only: the package is built without the core's `lint` feature), with patterns
//! compiled by the browser's RegExp. The lint table says of each case who refuses it.

use serde_json::{json, Value};
use trailhound_core::plan::{Plan, Rule};
use trailhound_core::Message;
use trailhound_wasm::plan::JsEngine;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const LINT_CASES: &str = include_str!("../../tests/plan/lint-cases.json");

/// Every `"by": "device"` case of the lint table is refused at the listed place with the
/// listed words, as natively; every `"by": "lint"` case loads.
#[wasm_bindgen_test]
fn device_refuses_the_structural_cases_only() {
    let table: Value = serde_json::from_str(LINT_CASES).unwrap();
    let mut wrong = Vec::new();
    for case in table["cases"].as_array().expect("cases") {
        let name = case["name"].as_str().unwrap_or("?");
        let plan = match &case["plan"] {
            Value::String(text) => text.clone(),
            plan => plan.to_string(),
        };
        match (case["by"].as_str(), Plan::load_with(&plan, &JsEngine)) {
            (Some("device"), Err(e)) => {
                let words = case["contains"].as_str().unwrap_or_default();
                if e.at != case["at"].as_str().unwrap_or_default() || !e.message.contains(words) {
                    wrong.push(format!(
                        "{name}: got {e}; expected at {} containing {words:?}",
                        case["at"]
                    ));
                }
            }
            (Some("device"), Ok(_)) => wrong.push(format!("{name}: accepted")),
            (Some("lint"), Ok(_)) => {}
            (by, result) => wrong.push(format!("{name}: by {by:?}, got {:?}", result.err())),
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// A plan that only lint refuses (bounds no number meets, an enum value of another type)
/// loads, and its keywords check events by the letter.
#[wasm_bindgen_test]
fn device_checks_a_plan_only_lint_refuses() {
    let text = json!({
        "plan": "contradictions", "version": "1-0-0",
        "events": [{ "type": "track", "name": "Song Played", "schema": {
            "type": "object",
            "properties": {
                "x": { "type": "integer", "minimum": 5, "maximum": 1 },
                "source": { "type": "string", "enum": ["radio", 1], "pattern": "^r" }
            }
        }}]
    })
    .to_string();
    let plan = Plan::load_with(&text, &JsEngine).expect("the browser loads it");
    let rules = |properties: Value| -> Vec<(Rule, String)> {
        let msg: Message = serde_json::from_value(json!({
            "type": "track", "messageId": "m1", "timestamp": "2026-12-02T10:00:00.000Z",
            "event": "Song Played", "properties": properties, "context": {}
        }))
        .unwrap();
        plan.check(&msg)
            .into_iter()
            .map(|v| (v.rule, v.pointer))
            .collect()
    };
    let x = "/properties/x".to_owned();
    assert_eq!(
        rules(json!({ "x": 3 })),
        [(Rule::Minimum, x.clone()), (Rule::Maximum, x)]
    );
    assert_eq!(rules(json!({ "source": "radio" })), []);
    assert_eq!(
        rules(json!({ "source": "tv" })),
        [
            (Rule::Enum, "/properties/source".to_owned()),
            (Rule::Pattern, "/properties/source".to_owned())
        ]
    );
}
