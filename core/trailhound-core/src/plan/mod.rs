//! Tracking plans: one validator for every platform.
//!
//! A plan ([`model::PlanFile`]) lists the events an app may send and the JSON Schema of
//! each one's properties or traits. [`Plan`] is its compiled form, and [`Plan::check`] is
//! the only implementation of the checks: the native runtime, the bindings, the browser
//! package, the collector and the CLI all call it, so that an event gets the same verdict
//! everywhere. [`gate::PlanGate`] applies a plan on the device (`off`, `report`, `enforce`).
//!
//! Violations are structured ([`Violation`]: event, rule, JSON pointer, expected, found)
//! and each [`Rule`] has a stable id.
//!
//! # Layout
//!
//! - [`model`]: the plan file as written (serde).
//! - `compile`: the plan file read and compiled; what the device refuses (a plan it
//!   cannot read or apply), with the place named.
//! - `lint` (the `lint` feature): what a plan means (a plan that contradicts itself is
//!   refused with the place named); `trailhound plan lint`, off the device.
//! - `check`: the checks of one message against the compiled plan.
//! - `formats`: `date-time`, `email`, `uri`, and naming conventions.
//! - [`gate`]: the device modes, counts and context annotation.

mod check;
mod compile;
pub mod formats;
pub mod gate;
#[cfg(feature = "lint")]
mod lint;
pub mod model;
#[cfg(feature = "regex")]
pub mod pattern;
#[cfg(all(test, feature = "regex"))]
mod tests;

use serde::Serialize;

pub use gate::{PlanGate, PlanMode, Verdict, ViolationCount};
pub use model::PlanFile;

pub use check::MAX_VALUE_DEPTH;
pub use compile::{escape_token, json_type_name, portable_pattern, MAX_DEPTH, MAX_REPEAT};
#[cfg(feature = "regex")]
pub use pattern::BuiltinEngine;

/// Why a plan was refused: where (a JSON pointer into the plan file, such as
/// `/events/2/schema/properties/price/minimum`) and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("plan error at {at}: {message}")]
pub struct PlanError {
    /// A JSON pointer into the plan file (`""` for the whole file).
    pub at: String,
    /// What is wrong there.
    pub message: String,
}

/// A compiled regular expression of a `pattern` keyword.
pub trait Pattern: Send + Sync + std::fmt::Debug {
    /// Whether the pattern matches anywhere in `s` (JSON Schema patterns are unanchored).
    fn is_match(&self, s: &str) -> bool;
}

/// Compiles `pattern` keywords. Native code uses the built-in engine ([`BuiltinEngine`],
/// the `regex` feature); the browser package passes one backed by JavaScript's `RegExp` (with
/// the `u` flag), so that it ships no regex engine of its own. Plans may use only the
/// syntax that means the same in both (`trailhound plan lint` refuses the rest).
pub trait PatternEngine {
    /// Compiles one pattern, or says why it cannot.
    fn compile(&self, pattern: &str) -> Result<Box<dyn Pattern>, String>;
}

/// A stable rule id: what a violation broke. The ids are part of the wire format
/// (`context.plan.violations`) and of stats; never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// The event is not in the plan and the plan does not allow unplanned events.
    UnplannedEvent,
    /// The event or screen name breaks the plan's naming convention.
    EventName,
    /// A property or trait name breaks the plan's naming convention.
    PropertyName,
    /// `type`
    Type,
    /// `required`
    Required,
    /// `additionalProperties`
    AdditionalProperties,
    /// `enum`
    Enum,
    /// `const`
    Const,
    /// `minimum`
    Minimum,
    /// `maximum`
    Maximum,
    /// `exclusiveMinimum`
    ExclusiveMinimum,
    /// `exclusiveMaximum`
    ExclusiveMaximum,
    /// `minLength`
    MinLength,
    /// `maxLength`
    MaxLength,
    /// `pattern`
    Pattern,
    /// `format`
    Format,
    /// `minItems`
    MinItems,
    /// `maxItems`
    MaxItems,
}

impl Rule {
    /// The stable id, such as `"additional_properties"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::UnplannedEvent => "unplanned_event",
            Rule::EventName => "event_name",
            Rule::PropertyName => "property_name",
            Rule::Type => "type",
            Rule::Required => "required",
            Rule::AdditionalProperties => "additional_properties",
            Rule::Enum => "enum",
            Rule::Const => "const",
            Rule::Minimum => "minimum",
            Rule::Maximum => "maximum",
            Rule::ExclusiveMinimum => "exclusive_minimum",
            Rule::ExclusiveMaximum => "exclusive_maximum",
            Rule::MinLength => "min_length",
            Rule::MaxLength => "max_length",
            Rule::Pattern => "pattern",
            Rule::Format => "format",
            Rule::MinItems => "min_items",
            Rule::MaxItems => "max_items",
        }
    }

    /// Parses a stable id.
    pub fn parse(id: &str) -> Option<Rule> {
        ALL_RULES.iter().copied().find(|r| r.as_str() == id)
    }
}

/// Serialised as its stable id ([`Rule::as_str`]), as a `snake_case` unit-variant derive
/// would, but in one call instead of a jump table of 18 per serializer type.
impl Serialize for Rule {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Every rule, in id order of declaration.
pub const ALL_RULES: [Rule; 18] = [
    Rule::UnplannedEvent,
    Rule::EventName,
    Rule::PropertyName,
    Rule::Type,
    Rule::Required,
    Rule::AdditionalProperties,
    Rule::Enum,
    Rule::Const,
    Rule::Minimum,
    Rule::Maximum,
    Rule::ExclusiveMinimum,
    Rule::ExclusiveMaximum,
    Rule::MinLength,
    Rule::MaxLength,
    Rule::Pattern,
    Rule::Format,
    Rule::MinItems,
    Rule::MaxItems,
];

/// One broken rule of one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// The event: `track` name, `screen`/`page` name, or `identify`/`group`, as
    /// [`event_label`] writes it.
    pub event: String,
    /// The rule broken.
    pub rule: Rule,
    /// A JSON pointer into the message, such as `/properties/price` (`/event` for the
    /// name rules and unplanned events).
    pub pointer: String,
    /// What the plan expects there, for people: `integer`, `>= 0`, `one of ["a", "b"]`.
    pub expected: String,
    /// What was found, for people: `string "12"`, `absent`, `-1`.
    pub found: String,
}

/// How violations and counts name an event: the `track` event name; `screen:Name` /
/// `page:Name` (`screen:` alone for an unnamed one); `identify`, `group`, `alias`.
pub fn event_label(kind: crate::MessageType, name: Option<&str>) -> String {
    use crate::MessageType as T;
    match kind {
        T::Track => name.unwrap_or_default().to_owned(),
        T::Screen | T::Page => format!("{}:{}", kind.as_str(), name.unwrap_or_default()),
        T::Identify | T::Group | T::Alias => kind.as_str().to_owned(),
    }
}

/// A compiled plan.
///
/// The SDKs [`Plan::load`] a plan: its structure is checked (what the device cannot read
/// or apply is refused), not its meaning. [`Plan::parse`] (the `lint` feature: the CLI,
/// CI, the tests) lints it too, so a plan that contradicts itself is refused before it
/// ships. Both compile the same checks: a plan gets the same verdicts either way.
#[derive(Debug)]
pub struct Plan {
    id: String,
    version: String,
    /// The plan as written, for the CLI (the device has no use for it).
    #[cfg(feature = "lint")]
    file: PlanFile,
    compiled: compile::Compiled,
}

impl Plan {
    /// Parses and compiles a plan file with the built-in pattern engine, checking its
    /// structure only, as the SDKs do.
    #[cfg(feature = "regex")]
    pub fn load(json: &str) -> Result<Plan, PlanError> {
        Plan::load_with(json, &BuiltinEngine)
    }

    /// Parses and compiles a plan file, compiling patterns with `patterns`, checking its
    /// structure only, as the SDKs do.
    pub fn load_with(json: &str, patterns: &dyn PatternEngine) -> Result<Plan, PlanError> {
        Plan::load_value(&compile::read(json)?, patterns)
    }

    /// Reads and compiles a plan file's JSON: each schema straight into its compiled
    /// form, without the model (lint builds that too, for [`Plan::file`]).
    fn load_value(
        value: &serde_json::Value,
        patterns: &dyn PatternEngine,
    ) -> Result<Plan, PlanError> {
        let shallow = compile::shallow(value)?;
        let compiled = compile::compile(&shallow, patterns)?;
        #[cfg(feature = "lint")]
        let file = compile::model(&shallow)?;
        Ok(Plan {
            id: shallow.plan,
            version: shallow.version,
            #[cfg(feature = "lint")]
            file,
            compiled,
        })
    }

    /// Parses, compiles and lints a plan file with the built-in pattern engine.
    #[cfg(all(feature = "lint", feature = "regex"))]
    pub fn parse(json: &str) -> Result<Plan, PlanError> {
        Plan::parse_with(json, &BuiltinEngine)
    }

    /// Parses, compiles and lints a plan file, compiling patterns with `patterns`.
    #[cfg(feature = "lint")]
    pub fn parse_with(json: &str, patterns: &dyn PatternEngine) -> Result<Plan, PlanError> {
        let plan = Plan::load_with(json, patterns)?;
        plan.lint()?;
        Ok(plan)
    }

    /// Compiles and lints a plan file built in code (the importers), as if read from its
    /// JSON.
    #[cfg(feature = "lint")]
    pub fn compile(file: PlanFile, patterns: &dyn PatternEngine) -> Result<Plan, PlanError> {
        let value = serde_json::to_value(&file).map_err(|e| PlanError {
            at: String::new(),
            message: e.to_string(),
        })?;
        let plan = Plan::load_value(&value, patterns)?;
        plan.lint()?;
        Ok(plan)
    }

    /// Lints the plan: refuses one that contradicts itself (see [`Plan::parse`]).
    #[cfg(feature = "lint")]
    pub fn lint(&self) -> Result<(), PlanError> {
        lint::lint(&self.file, &self.compiled)
    }

    /// The plan as written.
    #[cfg(feature = "lint")]
    pub fn file(&self) -> &PlanFile {
        &self.file
    }

    /// The plan's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The plan's SchemaVer version.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Checks one message. Allocates nothing for an event that passes.
    pub fn check(&self, msg: &crate::Message) -> Vec<Violation> {
        use crate::MessageType as T;
        let (name, root, body) = match msg.kind {
            T::Track => (msg.event.as_deref(), "/properties", msg.properties.as_ref()),
            T::Screen | T::Page => (msg.name.as_deref(), "/properties", msg.properties.as_ref()),
            T::Identify | T::Group => (None, "/traits", msg.traits.as_ref()),
            T::Alias => return Vec::new(),
        };
        let body = body.map_or(check::Body::Absent, check::Body::Map);
        check::check_event(&self.compiled, msg.kind, name, root, body)
    }

    /// Checks one event in the Segment wire form (a line of `queue export`, an event of a
    /// batch the collector received), with the same verdict as [`Plan::check`].
    pub fn check_wire(&self, event: &serde_json::Value) -> Vec<Violation> {
        use crate::MessageType as T;
        let Some(kind) = event
            .get("type")
            .and_then(serde_json::Value::as_str)
            .and_then(T::parse)
        else {
            return Vec::new();
        };
        let text = |key: &str| event.get(key).and_then(serde_json::Value::as_str);
        let (name, root, key) = match kind {
            T::Track => (text("event"), "/properties", "properties"),
            T::Screen | T::Page => (text("name"), "/properties", "properties"),
            T::Identify | T::Group => (None, "/traits", "traits"),
            T::Alias => return Vec::new(),
        };
        // `null` reads as absent, as when deserialized into a Message.
        let body = match event.get(key) {
            None | Some(serde_json::Value::Null) => check::Body::Absent,
            Some(v) => check::Body::Value(v),
        };
        check::check_event(&self.compiled, kind, name, root, body)
    }

    /// Removes the properties (or traits) the plan does not allow (`additionalProperties:
    /// false`, at every depth) from a planned event; returns their pointers.
    pub fn strip_unplanned(&self, msg: &mut crate::Message) -> Vec<String> {
        use crate::MessageType as T;
        let name = match msg.kind {
            T::Track => msg.event.as_deref(),
            T::Screen | T::Page => msg.name.as_deref(),
            _ => None,
        };
        let Some(entry) = self.compiled.lookup(msg.kind, name) else {
            return Vec::new();
        };
        let (root, body) = match msg.kind {
            T::Identify | T::Group => ("/traits", msg.traits.as_mut()),
            _ => ("/properties", msg.properties.as_mut()),
        };
        let mut out = Vec::new();
        if let Some(body) = body {
            check::strip_object(&entry.schema, body, &check::Path::Root(root), &mut out);
        }
        check::heap_sort(&mut out, |a, b| a < b);
        out
    }
}
