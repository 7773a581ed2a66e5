//! The plan file, as written: what `trailhound plan lint` reads, `diff` compares, `codegen`
//! generates from and the importers produce. [`super::Plan`] is its compiled form.
//!
//! ```json
//! {
//!   "plan": "music-app",
//!   "version": "1-2-0",
//!   "description": "Events of the music app.",
//!   "allowUnplannedEvents": false,
//!   "naming": { "events": "title_case", "properties": "snake_case" },
//!   "events": [
//!     { "type": "track", "name": "Song Played", "description": "A song started playing.",
//!       "schema": { "type": "object", "required": ["song_id"],
//!                   "properties": { "song_id": { "type": "string" } },
//!                   "additionalProperties": false } },
//!     { "type": "screen", "name": "Player", "schema": { "type": "object" } },
//!     { "type": "identify", "schema": { "type": "object", "properties": { … } } }
//!   ]
//! }
//! ```
//!
//! `version` is SchemaVer (`MODEL-REVISION-ADDITION`): a breaking change must raise MODEL.
//! `schema` is the JSON Schema of the event's properties (`track`, `screen`, `page`) or
//! traits (`identify`, `group`); the keywords are the subset in [`Schema`], and any other
//! keyword is an error (a typo such as `requried` must not silently check nothing).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::message::MessageType;

/// A tracking plan file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlanFile {
    /// The plan's id, such as `music-app`: carried in the `context` of violating events.
    pub plan: String,
    /// SchemaVer `MODEL-REVISION-ADDITION`, such as `1-0-0`.
    pub version: String,
    /// What the plan is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Whether `track`, `screen` and `page` events not listed in the plan are allowed.
    /// When false (the default), such an event is an `unplanned_event` violation.
    #[serde(default)]
    pub allow_unplanned_events: bool,
    /// Naming conventions for event and property names.
    #[serde(default, skip_serializing_if = "Naming::is_empty")]
    pub naming: Naming,
    /// The planned events.
    pub events: Vec<EventSpec>,
}

/// Naming conventions checked on every event (planned or not).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Naming {
    /// The case of `track` event names and `screen`/`page` names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Case>,
    /// The case of property and trait names, at every depth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<Case>,
}

impl Naming {
    /// No convention is set.
    pub fn is_empty(&self) -> bool {
        self.events.is_none() && self.properties.is_none()
    }
}

/// A naming convention. Words are ASCII letters and digits; a digit may not start a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Case {
    /// `song_played`
    SnakeCase,
    /// `songPlayed`
    CamelCase,
    /// `SongPlayed`
    PascalCase,
    /// `Song Played`: words each starting with a capital, separated by one space.
    TitleCase,
    /// `song-played`
    KebabCase,
}

/// One planned event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventSpec {
    /// `track`, `screen`, `page`, `identify` or `group` (`alias` carries nothing to check).
    #[serde(rename = "type")]
    pub kind: MessageType,
    /// The event name (`track`) or screen/page name; absent for `identify` and `group`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What the event means: the doc comment of its generated function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The JSON Schema of the properties (or traits).
    #[serde(default = "Schema::any_object")]
    pub schema: Schema,
}

/// The JSON Schema subset a plan may use. Unknown keywords are refused.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Schema {
    /// `type`: one JSON type or a list (`["string", "null"]` for a nullable string).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub types: Option<Types>,
    /// Annotation: shown in generated code and on the collector's page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Annotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Annotation, ignored.
    #[serde(rename = "$comment", default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// `enum`: the value must equal one of these.
    #[serde(rename = "enum", default, skip_serializing_if = "Option::is_none")]
    pub enum_values: Option<Vec<Value>>,
    /// `const`: the value must equal this.
    #[serde(rename = "const", default, skip_serializing_if = "Option::is_none")]
    pub const_value: Option<Value>,
    /// `minimum` (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum: Option<f64>,
    /// `maximum` (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum: Option<f64>,
    /// `exclusiveMinimum` (a number, as in draft 6 and later).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclusive_minimum: Option<f64>,
    /// `exclusiveMaximum` (a number, as in draft 6 and later).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclusive_maximum: Option<f64>,
    /// `minLength`, in Unicode code points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_length: Option<u64>,
    /// `maxLength`, in Unicode code points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u64>,
    /// `pattern`: unanchored, in the portable subset of regular expressions (see
    /// [`super::PatternEngine`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// `format`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
    /// `items`: the schema of every element of an array.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Box<Schema>>,
    /// `minItems`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_items: Option<u64>,
    /// `maxItems`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_items: Option<u64>,
    /// `properties` of an object.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, Schema>,
    /// `required` properties of an object.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required: Vec<String>,
    /// `additionalProperties`: `false` refuses properties not in `properties`; a schema
    /// checks them. Absent means any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_properties: Option<Additional>,
}

impl Schema {
    /// `{"type": "object"}`: any properties.
    pub fn any_object() -> Schema {
        Schema {
            types: Some(Types::One(JsonType::Object)),
            ..Schema::default()
        }
    }
}

/// The `type` keyword.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Types {
    /// `"type": "string"`
    One(JsonType),
    /// `"type": ["string", "null"]`
    Many(Vec<JsonType>),
}

impl Types {
    /// The types as a slice.
    pub fn as_slice(&self) -> &[JsonType] {
        match self {
            Types::One(t) => std::slice::from_ref(t),
            Types::Many(ts) => ts,
        }
    }
}

/// JSON Schema's types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JsonType {
    /// A string.
    String,
    /// Any number.
    Number,
    /// A number with no fractional part (`1.0` is an integer, as in JSON Schema).
    Integer,
    /// `true` or `false`.
    Boolean,
    /// An object.
    Object,
    /// An array.
    Array,
    /// `null`.
    Null,
}

/// The `format` keyword's values that plans may use (asserted, not just annotations).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Format {
    /// RFC 3339 `date-time`, such as `2026-12-02T10:00:00.000Z`.
    #[serde(rename = "date-time")]
    DateTime,
    /// An email address (`local@domain`, RFC 5321 dot-atom form).
    #[serde(rename = "email")]
    Email,
    /// An absolute URI (RFC 3986: a scheme, `:`, then URI characters).
    #[serde(rename = "uri")]
    Uri,
}

/// The `additionalProperties` keyword.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Additional {
    /// `true` (any) or `false` (none).
    Allowed(bool),
    /// Additional properties must match this schema.
    Schema(Box<Schema>),
}
