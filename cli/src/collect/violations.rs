//! Tracking-plan violations in the collector (`--plan`): each received event is checked
//! with the one validator ([`Plan::check_wire`], the same verdict as on the device and in
//! the browser), its violations are stored with it, and `/api/violations` sums them up.
//!
//! A plan violation never refuses an event: the collector is a QA tool, it shows what
//! apps send. The Segment-format checks ([`super::validate`]) are separate: an event can
//! be valid and break the plan, or the reverse.
//!
//! An event keeps the verdict of the plan the collector had when it arrived: a restart
//! with another plan (or none) does not re-check the events already stored.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use trailhound_core::plan::{Plan, Violation};

use super::store::{Count, StoredEvent};
use super::validate::Checked;

/// One rule an event broke, as stored and shown in `/api/events`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PlanViolation {
    /// The event as the validator names it: the track name, `screen:Name`, `identify`…
    pub event: String,
    /// The stable rule id ([`trailhound_core::plan::Rule::as_str`]), such as `type`.
    pub rule: String,
    /// A JSON pointer into the event, such as `/properties/price`.
    pub pointer: String,
    /// What the plan expects there, for people.
    pub expected: String,
    /// What was found, for people.
    pub found: String,
}

impl From<Violation> for PlanViolation {
    fn from(v: Violation) -> PlanViolation {
        PlanViolation {
            event: v.event,
            rule: v.rule.as_str().to_owned(),
            pointer: v.pointer,
            expected: v.expected,
            found: v.found,
        }
    }
}

/// The rule id of an event that is not in the plan.
pub const UNPLANNED: &str = "unplanned_event";

/// How many entries the lists of `/api/violations` keep: every rule (there are 18), and
/// a screenful of events.
pub const TOP_N: usize = 50;

/// `/api/violations` gives at most this many recent violating events unless asked for
/// more (`limit`).
pub const DEFAULT_RECENT: usize = 50;

/// Checks one received event against `plan`, as the device would have checked it.
///
/// An event sent to a single-event endpoint (`/v1/track`) may leave out its `type`: it is
/// checked with the type the endpoint implies. A body that is not an object has nothing
/// the plan could say about it (the Segment checks already refuse it).
pub fn check(plan: &Plan, checked: &Checked, json: &Value) -> Vec<PlanViolation> {
    let Some(obj) = json.as_object() else {
        return Vec::new();
    };
    let violations = match (obj.get("type"), checked.kind.as_deref()) {
        (None, Some(kind)) => {
            let mut typed = obj.clone();
            typed.insert("type".into(), Value::String(kind.to_owned()));
            plan.check_wire(&Value::Object(typed))
        }
        _ => plan.check_wire(json),
    };
    violations.into_iter().map(PlanViolation::from).collect()
}

/// Which plan the collector checks events against.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PlanInfo {
    /// The plan's id.
    pub id: String,
    /// Its SchemaVer version.
    pub version: String,
    /// How many events it plans.
    pub events: usize,
}

impl PlanInfo {
    /// The summary of `plan`.
    pub fn of(plan: &Arc<Plan>) -> PlanInfo {
        PlanInfo {
            id: plan.id().to_owned(),
            version: plan.version().to_owned(),
            events: plan.file().events.len(),
        }
    }
}

/// How often a rule was broken.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RuleCount {
    /// The rule id.
    pub rule: String,
    /// Violations of it.
    pub count: u64,
}

/// How often one event broke one rule.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct EventRuleCount {
    /// The event, as the validator names it.
    pub event: String,
    /// The rule id.
    pub rule: String,
    /// Violations.
    pub count: u64,
}

/// The answer of `/api/violations`.
///
/// `violating_total` counts every event stored since the database was created (or the
/// collector started, without one); everything else describes the events in memory that
/// match the query's filters (the same filters as `/api/events`), like the top lists of
/// `/api/stats`.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct ViolationReport {
    /// The plan events are checked against now; `None` without `--plan` (events stored
    /// under an earlier plan still show their violations).
    pub plan: Option<PlanInfo>,
    /// Events stored with at least one violation, ever.
    pub violating_total: u64,
    /// Events in memory matching the filters.
    pub events: u64,
    /// Of those, the events with at least one violation.
    pub violating: u64,
    /// Their violations.
    pub violations: u64,
    /// Violations per rule, most first (ties by rule id).
    pub by_rule: Vec<RuleCount>,
    /// Violations per event and rule, most first (ties by event, then rule), at most
    /// [`TOP_N`].
    pub by_event_rule: Vec<EventRuleCount>,
    /// Events that are not in the plan (`unplanned_event`), by name, most first, at most
    /// [`TOP_N`].
    pub unplanned: Vec<Count>,
    /// How many violating events match the filters: `recent` has the newest of them.
    pub recent_total: u64,
    /// The newest violating events, newest first (at most the query's `limit`).
    pub recent: Vec<StoredEvent>,
}
