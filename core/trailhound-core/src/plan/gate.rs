//! A plan on the device: what happens to an event that breaks it.
//!
//! Every driver (the native client, the browser package) runs [`PlanGate::apply`] on the
//! caller's thread after the plugins and before the event is sealed, so the verdict is the
//! one for what is actually sent, and is the same on every platform.
//!
//! | mode            | event that breaks the plan                                       |
//! |-----------------|------------------------------------------------------------------|
//! | `off`           | not checked                                                      |
//! | `report`        | sent unchanged but for `context.plan` (plan id, version, rules)  |
//! | `enforce`       | dropped (`plan_violation`)                                       |
//! | `enforce_strip` | unplanned properties removed and the event sent, annotated; any  |
//! |                 | other violation drops it                                         |
//!
//! In every mode but `off`, each violation is counted per event and rule
//! ([`PlanGate::counts`], in `stats()`), and the driver tells the listener.

use std::sync::{Arc, Mutex};

use serde::Serialize;

use super::{Plan, Rule, Violation};
use crate::message::{ContextAnnex, Message};
use crate::report::{DropReason, Notification};

/// What the device does with an event that breaks the plan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum PlanMode {
    /// Events are not checked.
    Off,
    /// Violating events are sent, carrying their rule ids in `context.plan`; violations
    /// are counted and told. The default: production builds still communicate failure,
    /// and nothing the app tracked is lost to a plan that lags behind the app.
    #[default]
    Report,
    /// Violating events are dropped (reason `plan_violation`), counted and told.
    Enforce,
    /// Properties the plan does not allow are removed and the event is sent (annotated);
    /// an event with any other violation is dropped.
    EnforceStrip,
}

/// Serialised as [`PlanMode::as_str`] (what a `snake_case` derive would write), in one
/// call per serializer type.
impl Serialize for PlanMode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl PlanMode {
    /// The setting's name: `off`, `report`, `enforce`, `enforce_strip`.
    pub fn as_str(self) -> &'static str {
        match self {
            PlanMode::Off => "off",
            PlanMode::Report => "report",
            PlanMode::Enforce => "enforce",
            PlanMode::EnforceStrip => "enforce_strip",
        }
    }

    /// Parses a setting's name.
    pub fn parse(s: &str) -> Option<PlanMode> {
        [
            PlanMode::Off,
            PlanMode::Report,
            PlanMode::Enforce,
            PlanMode::EnforceStrip,
        ]
        .into_iter()
        .find(|m| m.as_str() == s)
    }
}

/// What [`PlanGate::apply`] decided for one event.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// No violation (or mode `off`): send the event as it is.
    Pass,
    /// `report`: send the event, now annotated; tell the listener these violations.
    Reported(Vec<Violation>),
    /// `enforce_strip`: these properties were removed (the violations say which); send
    /// the event, now annotated.
    Stripped(Vec<Violation>),
    /// `enforce`/`enforce_strip`: do not send the event; count it as dropped
    /// (`plan_violation`) and tell the listener these violations.
    Dropped(Vec<Violation>),
}

impl Verdict {
    /// The violations, if any.
    pub fn violations(&self) -> &[Violation] {
        match self {
            Verdict::Pass => &[],
            Verdict::Reported(v) | Verdict::Stripped(v) | Verdict::Dropped(v) => v,
        }
    }

    /// `reported`, `stripped`, `dropped` (`pass` for none): what the listener is told.
    pub fn action(&self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Reported(_) => "reported",
            Verdict::Stripped(_) => "stripped",
            Verdict::Dropped(_) => "dropped",
        }
    }
}

/// How many times one event broke one rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ViolationCount {
    /// The event, as [`super::event_label`] names it ([`OTHER_EVENTS`] past the limit).
    pub event: String,
    /// The rule.
    pub rule: Rule,
    /// How many violations.
    pub count: u64,
}

/// Where counts go once [`crate::Policy::max_violation_kinds`] distinct (event, rule) pairs
/// are counted: an app that puts ids in event names must not grow memory without bound.
pub const OTHER_EVENTS: &str = "(other events)";

/// A plan applied on the device: the compiled plan, the mode and the counts.
#[derive(Debug)]
pub struct PlanGate {
    plan: Arc<Plan>,
    mode: PlanMode,
    max_kinds: usize,
    /// (event, rule) and count, sorted by (event, rule): a Vec with binary search rather
    /// than a BTreeMap, whose insertion code is several KB in the mobile library.
    counts: Mutex<Vec<(String, Rule, u64)>>,
    /// The last `context.plan` annotation: events that break the plan the same way in a
    /// row (a plan that lags behind the app) share it, and so one serialised context.
    last_annex: Mutex<Option<ContextAnnex>>,
}

impl PlanGate {
    /// A gate for `plan` in `mode`, counting at most `max_kinds` distinct (event, rule)
    /// pairs (see [`crate::Policy::max_violation_kinds`]).
    pub fn new(plan: Arc<Plan>, mode: PlanMode, max_kinds: usize) -> PlanGate {
        PlanGate {
            plan,
            mode,
            max_kinds: max_kinds.max(1),
            counts: Mutex::new(Vec::new()),
            last_annex: Mutex::new(None),
        }
    }

    /// The plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The mode.
    pub fn mode(&self) -> PlanMode {
        self.mode
    }

    /// Checks `msg` and applies the mode to it: annotates its context, strips it, or says
    /// to drop it; counts every violation.
    pub fn apply(&self, msg: &mut Message) -> Verdict {
        let verdict = self.judge(msg);
        self.count(verdict.violations());
        verdict
    }

    /// [`PlanGate::apply`] without counting: for a driver that may still refuse the call
    /// (backpressure, the size limit once annotated), and settles with
    /// [`PlanGate::settle`] only what it accepted, so that a retried call is counted once.
    pub fn judge(&self, msg: &mut Message) -> Verdict {
        if self.mode == PlanMode::Off {
            return Verdict::Pass;
        }
        let violations = self.plan.check(msg);
        if violations.is_empty() {
            return Verdict::Pass;
        }
        match self.mode {
            PlanMode::Off => Verdict::Pass,
            PlanMode::Report => {
                self.annotate(msg, &violations, "reported");
                Verdict::Reported(violations)
            }
            PlanMode::Enforce => Verdict::Dropped(violations),
            PlanMode::EnforceStrip => {
                let only_unplanned = violations
                    .iter()
                    .all(|v| v.rule == Rule::AdditionalProperties);
                if !only_unplanned {
                    return Verdict::Dropped(violations);
                }
                self.plan.strip_unplanned(msg);
                self.annotate(msg, &violations, "stripped");
                Verdict::Stripped(violations)
            }
        }
    }

    /// Settles a verdict the driver has accepted (or that drops the event): counts its
    /// violations and returns what the listener is told, in order: the violations, then,
    /// for a drop, that the event was dropped. Nothing for a pass.
    pub fn settle(&self, verdict: Verdict, message_id: &str) -> Vec<Notification> {
        let action = verdict.action();
        let (violations, dropped) = match verdict {
            Verdict::Pass => return Vec::new(),
            Verdict::Reported(v) | Verdict::Stripped(v) => (v, false),
            Verdict::Dropped(v) => (v, true),
        };
        self.count(&violations);
        let mut told = vec![Notification::PlanViolation {
            message_id: message_id.to_owned(),
            action,
            violations,
        }];
        if dropped {
            told.push(Notification::Dropped {
                reason: DropReason::PlanViolation,
                count: 1,
                message_ids: vec![message_id.to_owned()],
            });
        }
        told
    }

    /// The counts so far, by event then rule.
    pub fn counts(&self) -> Vec<ViolationCount> {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts
            .iter()
            .map(|(event, rule, n)| ViolationCount {
                event: event.clone(),
                rule: *rule,
                count: *n,
            })
            .collect()
    }

    /// Counts violations of an accepted (or dropped) event.
    pub fn count(&self, violations: &[Violation]) {
        if violations.is_empty() {
            return;
        }
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        for v in violations {
            let find = |counts: &[(String, Rule, u64)], event: &str| {
                counts.binary_search_by(|(e, r, _)| (e.as_str(), *r).cmp(&(event, v.rule)))
            };
            let mut at = find(&counts, &v.event);
            if at.is_err() && counts.len() >= self.max_kinds {
                at = find(&counts, OTHER_EVENTS);
            }
            match at {
                Ok(i) => counts[i].2 += 1,
                Err(i) => {
                    let event = if counts.len() < self.max_kinds {
                        v.event.clone()
                    } else {
                        OTHER_EVENTS.to_owned()
                    };
                    counts.insert(i, (event, v.rule, 1));
                }
            }
        }
    }

    /// `context.plan`: which plan, and what the event broke, so that the pipeline can
    /// route or quarantine it. Annexed to the shared context, not a copy of it: a
    /// violating event must not cost a copy and a re-serialisation of the whole context.
    fn annotate(&self, msg: &mut Message, violations: &[Violation], action: &str) {
        #[derive(Serialize)]
        struct Annotation<'a> {
            id: &'a str,
            version: &'a str,
            action: &'a str,
            violations: Vec<RuleAt<'a>>,
        }
        #[derive(Serialize)]
        struct RuleAt<'a> {
            rule: Rule,
            pointer: &'a str,
        }
        let annotation = Annotation {
            id: self.plan.id(),
            version: self.plan.version(),
            action,
            violations: violations
                .iter()
                .map(|v| RuleAt {
                    rule: v.rule,
                    pointer: &v.pointer,
                })
                .collect(),
        };
        // Strings and rule ids only: serialising them cannot fail.
        let Ok(value) = serde_json::value::to_raw_value(&annotation) else {
            return;
        };
        // Events that break the plan the same way share one annex, and so one context.
        let annex = {
            let mut last = self.last_annex.lock().unwrap_or_else(|e| e.into_inner());
            match &*last {
                Some(a) if a.value() == value.get() => a.clone(),
                _ => {
                    let a = ContextAnnex::from_raw("plan", value);
                    *last = Some(a.clone());
                    a
                }
            }
        };
        let _ = msg.context.set_annex(annex);
    }
}

#[cfg(all(test, feature = "regex"))]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// The context as it is sent.
    fn context_of(m: &Message) -> Value {
        serde_json::to_value(m).expect("serialisable")["context"].clone()
    }

    const PLAN: &str = r#"{
      "plan": "gate-test", "version": "1-2-0",
      "events": [
        { "type": "track", "name": "Played",
          "schema": { "type": "object", "required": ["id"],
                      "properties": { "id": { "type": "string" } },
                      "additionalProperties": false } }
      ]
    }"#;

    fn gate(mode: PlanMode, max_kinds: usize) -> PlanGate {
        let plan = Plan::load(PLAN).expect("the test plan is valid");
        PlanGate::new(Arc::new(plan), mode, max_kinds)
    }

    fn track(event: &str, properties: Value) -> Message {
        serde_json::from_value(json!({
            "type": "track", "messageId": "m1", "timestamp": "2026-12-02T10:00:00.000Z",
            "event": event, "properties": properties, "context": {"app": {"name": "x"}}
        }))
        .expect("a valid message")
    }

    fn pairs(verdict: &Verdict) -> Vec<(Rule, &str)> {
        let mut p: Vec<_> = verdict
            .violations()
            .iter()
            .map(|v| (v.rule, v.pointer.as_str()))
            .collect();
        p.sort();
        p
    }

    /// `off` checks nothing: an unplanned event passes unchanged and nothing is counted.
    #[test]
    fn off_checks_nothing() {
        let g = gate(PlanMode::Off, 10);
        let mut m = track("Unplanned", json!({"x": 1}));
        let before = m.clone();
        assert_eq!(g.apply(&mut m), Verdict::Pass);
        assert_eq!(m, before);
        assert!(g.counts().is_empty());
    }

    /// A passing event is left untouched in every mode.
    #[test]
    fn passing_event_is_untouched() {
        for mode in [PlanMode::Report, PlanMode::Enforce, PlanMode::EnforceStrip] {
            let g = gate(mode, 10);
            let mut m = track("Played", json!({"id": "a"}));
            let before = m.clone();
            assert_eq!(g.apply(&mut m), Verdict::Pass, "{mode:?}");
            assert_eq!(m, before, "{mode:?}");
            assert!(g.counts().is_empty(), "{mode:?}");
        }
    }

    /// `report` keeps the properties, writes plan id, version, action and the (rule,
    /// pointer) list into `context.plan`, and counts each violation.
    #[test]
    fn report_annotates_and_counts() {
        let g = gate(PlanMode::Report, 10);
        let mut m = track("Played", json!({"id": 5, "extra": true}));
        let v = g.apply(&mut m);
        assert_eq!(v.action(), "reported");
        assert_eq!(
            pairs(&v),
            vec![
                (Rule::Type, "/properties/id"),
                (Rule::AdditionalProperties, "/properties/extra"),
            ]
        );
        assert_eq!(m.properties.as_ref().map(|p| p.len()), Some(2));
        let plan = &context_of(&m)["plan"];
        assert_eq!(plan["id"], "gate-test");
        assert_eq!(plan["version"], "1-2-0");
        assert_eq!(plan["action"], "reported");
        assert_eq!(plan["violations"].as_array().map(Vec::len), Some(2));
        assert_eq!(m.context.get("app"), Some(&json!({"name": "x"})));
        let counts: Vec<(String, Rule, u64)> = g
            .counts()
            .into_iter()
            .map(|c| (c.event, c.rule, c.count))
            .collect();
        // By event, then rule in declaration order.
        assert_eq!(
            counts,
            vec![
                ("Played".into(), Rule::Type, 1),
                ("Played".into(), Rule::AdditionalProperties, 1),
            ]
        );
    }

    /// `enforce` drops a violating event and leaves it unannotated.
    #[test]
    fn enforce_drops() {
        let g = gate(PlanMode::Enforce, 10);
        let mut m = track("Played", json!({}));
        let v = g.apply(&mut m);
        assert_eq!(v.action(), "dropped");
        assert_eq!(pairs(&v), vec![(Rule::Required, "/properties/id")]);
        assert_eq!(context_of(&m).get("plan"), None);
        assert_eq!(g.counts().len(), 1);
    }

    /// `enforce_strip` removes unplanned properties when they are the only violations,
    /// and drops an event with any other violation.
    #[test]
    fn enforce_strip_strips_or_drops() {
        let g = gate(PlanMode::EnforceStrip, 10);
        let mut m = track("Played", json!({"id": "a", "extra": 1}));
        let v = g.apply(&mut m);
        assert_eq!(v.action(), "stripped");
        assert_eq!(m.properties, json!({"id": "a"}).as_object().cloned());
        assert_eq!(context_of(&m)["plan"]["action"], "stripped");

        let mut m = track("Played", json!({"id": 1, "extra": 1}));
        let v = g.apply(&mut m);
        assert_eq!(v.action(), "dropped");
        assert!(m
            .properties
            .as_ref()
            .is_some_and(|p| p.contains_key("extra")));
    }

    /// Past `max_kinds` distinct (event, rule) pairs, new pairs are counted under
    /// `(other events)`; pairs already counted keep counting.
    #[test]
    fn counts_are_bounded() {
        let g = gate(PlanMode::Report, 2);
        for name in ["A", "B", "C", "D", "A"] {
            g.apply(&mut track(name, json!({})));
        }
        let counts: Vec<(String, u64)> =
            g.counts().into_iter().map(|c| (c.event, c.count)).collect();
        assert_eq!(
            counts,
            vec![(OTHER_EVENTS.into(), 2), ("A".into(), 2), ("B".into(), 1)]
        );
    }
}
