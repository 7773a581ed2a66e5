//! A tracking plan and events from arbitrary text: the plan file is the one input a
//! developer (or an importer) writes, and the events are whatever an app sends.
//!
//! The input is a plan, a line `---`, then one event per line. Never panics; a plan that
//! compiles gives the same verdict for an event whether it is checked as a stamped
//! message (the device) or as wire JSON (the collector, `plan check`); in every device
//! mode the gate's verdict holds the check's violations, and an event that
//! `enforce_strip` sends breaks nothing but what was stripped.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use trailhound_core::plan::{Plan, PlanGate, PlanMode, Rule, Verdict};
use trailhound_core::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (plan, events) = text.split_once("\n---\n").unwrap_or((text, ""));
    let Ok(plan) = Plan::parse(plan) else {
        return;
    };
    let plan = Arc::new(plan);
    for line in events.lines().take(16) {
        let Ok(wire) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let on_wire = plan.check_wire(&wire);
        let Ok(msg) = serde_json::from_value::<Message>(wire.clone()) else {
            continue;
        };
        assert_eq!(
            plan.check(&msg),
            on_wire,
            "a message and its wire form get different verdicts: {line}"
        );
        for mode in [PlanMode::Report, PlanMode::Enforce, PlanMode::EnforceStrip] {
            let gate = PlanGate::new(Arc::clone(&plan), mode, 8);
            let mut m = msg.clone();
            let verdict = gate.apply(&mut m);
            assert_eq!(verdict.violations(), on_wire.as_slice());
            if let Verdict::Stripped(_) = verdict {
                assert!(
                    plan.check(&m)
                        .iter()
                        .all(|v| v.rule != Rule::AdditionalProperties),
                    "stripping left unplanned properties: {line}"
                );
            }
            // What is sent still serialises.
            serde_json::to_string(&m).expect("a gated message serialises");
        }
    }
});
