//! The compiled plan: the plan file read with the place of every format error, and
//! compiled into what the checks walk.
//!
//! What the device refuses (every build; [`super::Plan::load`]): text that is not JSON, a
//! field or keyword that is not in the format (a typo such as `requried` must not check
//! nothing), a keyword value of the wrong JSON type, schemas nested deeper than
//! [`MAX_DEPTH`], entries that cannot be keyed (a `track`/`screen`/`page` event without a
//! name, `identify`/`group` with one, `alias`), two entries for the same event, and a
//! `pattern` that is not portable ([`portable_pattern`]) or that the engine refuses. What
//! a plan means is `super::lint`'s (the `lint` feature, `trailhound plan lint`).

use serde_json::Value;

use super::check;
#[cfg(feature = "lint")]
use super::model::{Additional, EventSpec, PlanFile, Schema};
use super::model::{Case, Format, JsonType, Naming, Types};
use super::{Pattern, PatternEngine, PlanError};
use crate::MessageType;

/// How deep schemas may nest (`properties`, `items`, `additionalProperties`): the checks
/// recurse along the schema, so this bounds their stack on every platform.
pub const MAX_DEPTH: usize = 32;

/// Bits of a `type` set; `0` means any type.
pub(crate) type TypeSet = u8;

pub(crate) fn type_bit(t: JsonType) -> TypeSet {
    match t {
        JsonType::String => 1,
        JsonType::Number => 2,
        JsonType::Integer => 4,
        JsonType::Boolean => 8,
        JsonType::Object => 16,
        JsonType::Array => 32,
        JsonType::Null => 64,
    }
}

/// What `additionalProperties` allows.
#[derive(Debug)]
pub(crate) enum Extra {
    /// Absent or `true`.
    Any,
    /// `false`.
    None,
    /// A schema.
    Schema(Box<Node>),
}

/// One compiled schema.
#[derive(Debug)]
pub(crate) struct Node {
    pub types: TypeSet,
    /// The `type` keyword as written, for messages.
    pub type_names: Vec<JsonType>,
    pub enum_values: Option<Vec<Value>>,
    pub const_value: Option<Value>,
    pub minimum: Option<f64>,
    pub maximum: Option<f64>,
    pub exclusive_minimum: Option<f64>,
    pub exclusive_maximum: Option<f64>,
    pub min_length: Option<u64>,
    pub max_length: Option<u64>,
    pub pattern: Option<(String, Box<dyn Pattern>)>,
    pub format: Option<Format>,
    pub items: Option<Box<Node>>,
    pub min_items: Option<u64>,
    pub max_items: Option<u64>,
    /// `properties`, sorted by name (the model's BTreeMap order) for binary search.
    pub properties: Vec<(String, Node)>,
    pub required: Vec<String>,
    pub additional: Extra,
}

/// One planned event.
#[derive(Debug)]
pub(crate) struct EventNode {
    pub schema: Node,
}

/// Named events of one kind, sorted by name for binary search: smaller in the mobile
/// library and the browser package than a HashMap (no hasher, no table code), and as
/// fast for plans of a few hundred events.
pub(crate) type Named = Vec<(String, EventNode)>;

/// The compiled plan: events by kind and name, looked up without allocating.
#[derive(Debug)]
pub(crate) struct Compiled {
    pub track: Named,
    pub screen: Named,
    pub page: Named,
    pub identify: Option<EventNode>,
    pub group: Option<EventNode>,
    pub allow_unplanned: bool,
    pub naming: Naming,
}

impl Node {
    /// The schema of property `name`, if planned.
    pub fn property(&self, name: &str) -> Option<&Node> {
        self.properties
            .binary_search_by(|(k, _)| k.as_str().cmp(name))
            .ok()
            .map(|i| &self.properties[i].1)
    }
}

impl Compiled {
    /// The planned event of this kind and name; `None` if not planned (or `alias`).
    pub fn lookup(&self, kind: MessageType, name: Option<&str>) -> Option<&EventNode> {
        let name = name.unwrap_or_default();
        match kind {
            MessageType::Track => find_named(&self.track, name),
            MessageType::Screen => find_named(&self.screen, name),
            MessageType::Page => find_named(&self.page, name),
            MessageType::Identify => self.identify.as_ref(),
            MessageType::Group => self.group.as_ref(),
            MessageType::Alias => None,
        }
    }
}

fn find_named<'a>(events: &'a [(String, EventNode)], name: &str) -> Option<&'a EventNode> {
    events
        .binary_search_by(|(k, _)| k.as_str().cmp(name))
        .ok()
        .map(|i| &events[i].1)
}

/// Adds a named event in order; false if the name is already there.
fn insert_named(events: &mut Named, name: String, entry: EventNode) -> bool {
    match events.binary_search_by(|(k, _)| k.as_str().cmp(&name)) {
        Ok(_) => false,
        Err(i) => {
            events.insert(i, (name, entry));
            true
        }
    }
}

pub(crate) fn err(at: impl Into<String>, message: impl Into<String>) -> PlanError {
    PlanError {
        at: at.into(),
        message: message.into(),
    }
}

/// Escapes one JSON pointer token (`~` as `~0`, `/` as `~1`).
pub fn escape_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

// ---------------------------------------------------------------------------------------
// Parsing, with the place of a format error.
//
// `null` reads as absent wherever the model has an `Option` (so `"const": null` is no
// `const`, as serde reads `Option<Value>`); duplicate keys keep the last value.
//
// By hand rather than with the model's serde derives: the same result (the test
// `parse_agrees_with_serde` compares them), the place of every error for free, and a
// fraction of the code that serde's generic deserializers (untagged enums buffer their
// input) put in the mobile library.

type Parsed<T> = Result<T, PlanError>;

/// Parses a plan file's JSON.
pub(crate) fn read(json: &str) -> Parsed<Value> {
    serde_json::from_str(json).map_err(|e| err("", format!("not valid JSON: {e}")))
}

fn key_at(at: &str, key: &str) -> String {
    format!("{at}/{}", escape_token(key))
}

/// What a value is, for `invalid type` messages.
fn found(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("boolean `{b}`"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => format!("string {s:?}"),
        Value::Array(_) => "a list".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

fn invalid_type(v: &Value, at: &str, expected: &str) -> PlanError {
    err(
        at,
        format!("invalid type: {}, expected {expected}", found(v)),
    )
}

fn object<'a>(v: &'a Value, at: &str, what: &str) -> Parsed<&'a serde_json::Map<String, Value>> {
    v.as_object().ok_or_else(|| invalid_type(v, at, what))
}

/// `` `a`, `b`, `c` ``: the names of a serde-style "expected one of" message.
fn backtick_list(len: usize, name: &dyn Fn(usize) -> &'static str) -> String {
    let mut out = String::new();
    for i in 0..len {
        if i > 0 {
            out.push_str(", ");
        }
        out.push('`');
        out.push_str(name(i));
        out.push('`');
    }
    out
}

fn unknown_field(key: &str, at: &str, fields: &[&'static str]) -> PlanError {
    err(
        key_at(at, key),
        format!(
            "unknown field `{key}`, expected one of {}",
            backtick_list(fields.len(), &|i| fields[i])
        ),
    )
}

fn missing(field: &str, at: &str) -> PlanError {
    err(at, format!("missing field `{field}`"))
}

fn string(v: &Value, at: &str) -> Parsed<String> {
    v.as_str()
        .map(str::to_owned)
        .ok_or_else(|| invalid_type(v, at, "a string"))
}

/// `null` is absent, as serde reads an `Option`.
fn optional<T>(v: &Value, read: impl FnOnce(&Value) -> Parsed<T>) -> Parsed<Option<T>> {
    if v.is_null() {
        Ok(None)
    } else {
        read(v).map(Some)
    }
}

fn number(v: &Value, at: &str) -> Parsed<f64> {
    v.as_f64().ok_or_else(|| invalid_type(v, at, "a number"))
}

fn count(v: &Value, at: &str) -> Parsed<u64> {
    match v {
        Value::Number(n) if n.is_i64() && !n.is_u64() => Err(err(
            at,
            format!("invalid value: {n}, expected a non-negative integer"),
        )),
        _ => v
            .as_u64()
            .ok_or_else(|| invalid_type(v, at, "a non-negative integer")),
    }
}

/// The value of a string enum: `table[i].1` for the name `table[i].0`. Generic only in
/// this thin wrapper; the lookup and its error message are one function for all tables.
fn variant<T: Copy>(v: &Value, at: &str, table: &[(&'static str, T)]) -> Parsed<T> {
    variant_index(v, at, table.len(), &|i| table[i].0).map(|i| table[i].1)
}

fn variant_index(
    v: &Value,
    at: &str,
    len: usize,
    name: &dyn Fn(usize) -> &'static str,
) -> Parsed<usize> {
    let s = v.as_str().ok_or_else(|| invalid_type(v, at, "a string"))?;
    (0..len).find(|&i| name(i) == s).ok_or_else(|| {
        err(
            at,
            format!(
                "unknown variant `{s}`, expected one of {}",
                backtick_list(len, name)
            ),
        )
    })
}

const KINDS: [(&str, MessageType); 6] = [
    ("track", MessageType::Track),
    ("identify", MessageType::Identify),
    ("screen", MessageType::Screen),
    ("page", MessageType::Page),
    ("group", MessageType::Group),
    ("alias", MessageType::Alias),
];

const CASES: [(&str, Case); 5] = [
    ("snake_case", Case::SnakeCase),
    ("camel_case", Case::CamelCase),
    ("pascal_case", Case::PascalCase),
    ("title_case", Case::TitleCase),
    ("kebab_case", Case::KebabCase),
];

const TYPES: [(&str, JsonType); 7] = [
    ("string", JsonType::String),
    ("number", JsonType::Number),
    ("integer", JsonType::Integer),
    ("boolean", JsonType::Boolean),
    ("object", JsonType::Object),
    ("array", JsonType::Array),
    ("null", JsonType::Null),
];

const FORMATS: [(&str, Format); 3] = [
    ("date-time", Format::DateTime),
    ("email", Format::Email),
    ("uri", Format::Uri),
];

/// A plan file read down to its events, each event's schema left as JSON: the device
/// compiles it straight into a [`Node`] ([`compile`]), lint reads it into the model too.
pub(crate) struct Shallow<'v> {
    pub plan: String,
    pub version: String,
    pub description: Option<String>,
    pub allow_unplanned_events: bool,
    pub naming: Naming,
    pub events: Vec<Entry<'v>>,
}

/// One event of a [`Shallow`] plan.
pub(crate) struct Entry<'v> {
    pub kind: MessageType,
    pub name: Option<String>,
    pub description: Option<String>,
    /// `None`: absent, `{"type": "object"}`.
    pub schema: Option<&'v Value>,
}

/// Reads a plan file's fields, naming the place of any error.
pub(crate) fn shallow(v: &Value) -> Parsed<Shallow<'_>> {
    const FIELDS: [&str; 6] = [
        "plan",
        "version",
        "description",
        "allowUnplannedEvents",
        "naming",
        "events",
    ];
    let map = v
        .as_object()
        .ok_or_else(|| err("", format!("a plan is a JSON object, not {}", found(v))))?;
    let (mut plan, mut version, mut events) = (None, None, None);
    let mut file = Shallow {
        plan: String::new(),
        version: String::new(),
        description: None,
        allow_unplanned_events: false,
        naming: Naming::default(),
        events: Vec::new(),
    };
    for (k, fv) in map {
        let at = key_at("", k);
        match k.as_str() {
            "plan" => plan = Some(string(fv, &at)?),
            "version" => version = Some(string(fv, &at)?),
            "description" => file.description = optional(fv, |v| string(v, &at))?,
            "allowUnplannedEvents" => {
                file.allow_unplanned_events = fv
                    .as_bool()
                    .ok_or_else(|| invalid_type(fv, &at, "a boolean"))?
            }
            "naming" => file.naming = naming(fv, &at)?,
            "events" => {
                let list = fv
                    .as_array()
                    .ok_or_else(|| invalid_type(fv, &at, "a list"))?;
                let mut out = Vec::with_capacity(list.len());
                for (i, ev) in list.iter().enumerate() {
                    out.push(entry(ev, &format!("{at}/{i}"))?);
                }
                events = Some(out);
            }
            _ => return Err(unknown_field(k, "", &FIELDS)),
        }
    }
    file.plan = plan.ok_or_else(|| missing("plan", ""))?;
    file.version = version.ok_or_else(|| missing("version", ""))?;
    file.events = events.ok_or_else(|| missing("events", ""))?;
    Ok(file)
}

fn naming(v: &Value, at: &str) -> Parsed<Naming> {
    let mut out = Naming::default();
    for (k, fv) in object(v, at, "an object")? {
        let kat = key_at(at, k);
        let case = optional(fv, |v| variant(v, &kat, &CASES))?;
        match k.as_str() {
            "events" => out.events = case,
            "properties" => out.properties = case,
            _ => return Err(unknown_field(k, at, &["events", "properties"])),
        }
    }
    Ok(out)
}

/// The model of a shallow plan: each event's schema read into a [`Schema`].
#[cfg(feature = "lint")]
pub(crate) fn model(s: &Shallow<'_>) -> Parsed<PlanFile> {
    let mut events = Vec::with_capacity(s.events.len());
    for (i, e) in s.events.iter().enumerate() {
        events.push(EventSpec {
            kind: e.kind,
            name: e.name.clone(),
            description: e.description.clone(),
            schema: match e.schema {
                Some(v) => schema(v, &format!("/events/{i}/schema"), 0)?,
                None => Schema::any_object(),
            },
        });
    }
    Ok(PlanFile {
        plan: s.plan.clone(),
        version: s.version.clone(),
        description: s.description.clone(),
        allow_unplanned_events: s.allow_unplanned_events,
        naming: s.naming.clone(),
        events,
    })
}

fn entry<'v>(v: &'v Value, at: &str) -> Parsed<Entry<'v>> {
    let mut kind = None;
    let mut out = Entry {
        kind: MessageType::Track,
        name: None,
        description: None,
        schema: None,
    };
    for (k, fv) in object(v, at, "an event (an object)")? {
        let kat = key_at(at, k);
        match k.as_str() {
            "type" => kind = Some(variant(fv, &kat, &KINDS)?),
            "name" => out.name = optional(fv, |v| string(v, &kat))?,
            "description" => out.description = optional(fv, |v| string(v, &kat))?,
            "schema" => out.schema = Some(fv),
            _ => {
                return Err(unknown_field(
                    k,
                    at,
                    &["type", "name", "description", "schema"],
                ))
            }
        }
    }
    out.kind = kind.ok_or_else(|| missing("type", at))?;
    Ok(out)
}

const SCHEMA_FIELDS: [&str; 20] = [
    "type",
    "description",
    "title",
    "$comment",
    "enum",
    "const",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "format",
    "items",
    "minItems",
    "maxItems",
    "properties",
    "required",
    "additionalProperties",
];

#[cfg(feature = "lint")]
fn schema(v: &Value, at: &str, depth: usize) -> Parsed<Schema> {
    if depth > MAX_DEPTH {
        return Err(err(
            at,
            format!("schemas nest deeper than {MAX_DEPTH} levels"),
        ));
    }
    let mut s = Schema::default();
    for (k, fv) in object(v, at, "a schema (an object)")? {
        // `null` is absent for every keyword but `properties` and `required` (not
        // options in the model), checked once here rather than in each arm.
        if fv.is_null()
            && !matches!(k.as_str(), "properties" | "required")
            && SCHEMA_FIELDS.contains(&k.as_str())
        {
            continue;
        }
        let kat = key_at(at, k);
        let kat = kat.as_str();
        match k.as_str() {
            "type" => s.types = Some(types(fv, kat)?),
            "description" => s.description = Some(string(fv, kat)?),
            "title" => s.title = Some(string(fv, kat)?),
            "$comment" => s.comment = Some(string(fv, kat)?),
            "enum" => {
                s.enum_values = Some(
                    fv.as_array()
                        .cloned()
                        .ok_or_else(|| invalid_type(fv, kat, "a list"))?,
                )
            }
            "const" => s.const_value = Some(fv.clone()),
            "minimum" => s.minimum = Some(number(fv, kat)?),
            "maximum" => s.maximum = Some(number(fv, kat)?),
            "exclusiveMinimum" => s.exclusive_minimum = Some(number(fv, kat)?),
            "exclusiveMaximum" => s.exclusive_maximum = Some(number(fv, kat)?),
            "minLength" => s.min_length = Some(count(fv, kat)?),
            "maxLength" => s.max_length = Some(count(fv, kat)?),
            "minItems" => s.min_items = Some(count(fv, kat)?),
            "maxItems" => s.max_items = Some(count(fv, kat)?),
            "pattern" => s.pattern = Some(string(fv, kat)?),
            "format" => s.format = Some(variant(fv, kat, &FORMATS)?),
            "items" => s.items = Some(Box::new(schema(fv, kat, depth + 1)?)),
            "properties" => {
                for (name, sub) in object(fv, kat, "an object of schemas")? {
                    let sub = schema(sub, &key_at(kat, name), depth + 1)?;
                    s.properties.insert(name.clone(), sub);
                }
            }
            "required" => {
                let list = fv
                    .as_array()
                    .ok_or_else(|| invalid_type(fv, kat, "a list"))?;
                for (i, name) in list.iter().enumerate() {
                    s.required.push(string(name, &format!("{kat}/{i}"))?);
                }
            }
            "additionalProperties" => {
                s.additional_properties = match fv {
                    Value::Bool(b) => Some(Additional::Allowed(*b)),
                    Value::Object(_) => {
                        Some(Additional::Schema(Box::new(schema(fv, kat, depth + 1)?)))
                    }
                    _ => {
                        return Err(err(
                            kat,
                            format!(
                                "additionalProperties is true, false or a schema, not {}",
                                found(fv)
                            ),
                        ))
                    }
                }
            }
            _ => return Err(unknown_field(k, at, &SCHEMA_FIELDS)),
        }
    }
    Ok(s)
}

fn types(v: &Value, at: &str) -> Parsed<Types> {
    let one = |v: &Value, at: &str| {
        variant(v, at, &TYPES).map_err(|e| PlanError {
            message: format!(
                "{}: type is one of string, number, integer, boolean, object, array, null, \
                 or a list of them",
                e.message
            ),
            ..e
        })
    };
    match v {
        Value::Array(list) => {
            let mut out = Vec::with_capacity(list.len());
            for (i, t) in list.iter().enumerate() {
                out.push(one(t, &format!("{at}/{i}"))?);
            }
            Ok(Types::Many(out))
        }
        _ => one(v, at).map(Types::One),
    }
}

// ---------------------------------------------------------------------------------------
// Compile: what a device needs to apply the plan, and refuses what it cannot apply.

/// Compiles a plan file, refusing only what the device cannot apply: two entries for the
/// same event (which one would check it?), entries that cannot be keyed (a `track`,
/// `screen` or `page` event without a name, an `identify` or `group` with one, `alias`),
/// schemas nested deeper than [`MAX_DEPTH`], and patterns that are not portable or that
/// the engine cannot compile. What the plan means (bounds no value meets, keywords that
/// cannot apply, naming) is lint's (`super::lint`, the `lint` feature).
pub(crate) fn compile(file: &Shallow<'_>, engine: &dyn PatternEngine) -> Parsed<Compiled> {
    let mut out = Compiled {
        track: Vec::new(),
        screen: Vec::new(),
        page: Vec::new(),
        identify: None,
        group: None,
        allow_unplanned: file.allow_unplanned_events,
        naming: file.naming.clone(),
    };
    for (i, ev) in file.events.iter().enumerate() {
        let at = format!("/events/{i}");
        let kind = ev.kind;
        match (kind, &ev.name) {
            (MessageType::Alias, _) => {
                return Err(err(
                    format!("{at}/type"),
                    "alias events carry nothing to check: remove this entry",
                ))
            }
            (MessageType::Track | MessageType::Screen | MessageType::Page, None) => {
                return Err(err(&at, format!("a {} event needs a name", kind.as_str())))
            }
            (MessageType::Track | MessageType::Screen | MessageType::Page, Some(n))
                if n.is_empty() =>
            {
                return Err(err(
                    format!("{at}/name"),
                    format!("a {} event needs a non-empty name", kind.as_str()),
                ))
            }
            (MessageType::Identify | MessageType::Group, Some(_)) => {
                return Err(err(
                    format!("{at}/name"),
                    format!(
                        "{} events have no name: the plan has one entry for all of them",
                        kind.as_str()
                    ),
                ))
            }
            _ => {}
        }
        let node = match ev.schema {
            Some(v) => node(engine, v, &format!("{at}/schema"), 0)?,
            None => Node {
                types: type_bit(JsonType::Object),
                type_names: vec![JsonType::Object],
                ..Node::any()
            },
        };
        let entry = EventNode { schema: node };
        let name = ev.name.clone().unwrap_or_default();
        let dup = match kind {
            MessageType::Track => !insert_named(&mut out.track, name, entry),
            MessageType::Screen => !insert_named(&mut out.screen, name, entry),
            MessageType::Page => !insert_named(&mut out.page, name, entry),
            MessageType::Identify => out.identify.replace(entry).is_some(),
            MessageType::Group => out.group.replace(entry).is_some(),
            MessageType::Alias => false,
        };
        if dup {
            let what = match &ev.name {
                Some(n) => format!("{} event {n:?}", kind.as_str()),
                None => format!("{} event", kind.as_str()),
            };
            return Err(err(&at, format!("the plan already has a {what}")));
        }
    }
    Ok(out)
}

/// `string or null`: by hand, as `join` is an instantiation of its own.
pub(crate) fn type_text(types: &[JsonType]) -> String {
    let mut out = String::new();
    for (i, t) in types.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        out.push_str(json_type_name(*t));
    }
    out
}

/// A JSON type's name as written in schemas.
pub fn json_type_name(t: JsonType) -> &'static str {
    match t {
        JsonType::String => "string",
        JsonType::Number => "number",
        JsonType::Integer => "integer",
        JsonType::Boolean => "boolean",
        JsonType::Object => "object",
        JsonType::Array => "array",
        JsonType::Null => "null",
    }
}

impl Node {
    /// A schema with no keyword.
    fn any() -> Node {
        Node {
            types: 0,
            type_names: Vec::new(),
            enum_values: None,
            const_value: None,
            minimum: None,
            maximum: None,
            exclusive_minimum: None,
            exclusive_maximum: None,
            min_length: None,
            max_length: None,
            pattern: None,
            format: None,
            items: None,
            min_items: None,
            max_items: None,
            properties: Vec::new(),
            required: Vec::new(),
            additional: Extra::Any,
        }
    }
}

/// Reads and compiles one schema (and those under it) in one walk: the same refusals,
/// at the same places, as the model's reader (`schema`, lint's), without building the
/// model first.
fn node(engine: &dyn PatternEngine, v: &Value, at: &str, depth: usize) -> Parsed<Node> {
    if depth > MAX_DEPTH {
        return Err(err(
            at,
            format!("schemas nest deeper than {MAX_DEPTH} levels"),
        ));
    }
    let mut n = Node::any();
    for (k, fv) in object(v, at, "a schema (an object)")? {
        // `null` is absent for every keyword but `properties` and `required`, as in the
        // model.
        if fv.is_null()
            && !matches!(k.as_str(), "properties" | "required")
            && SCHEMA_FIELDS.contains(&k.as_str())
        {
            continue;
        }
        let kat = key_at(at, k);
        let kat = kat.as_str();
        match k.as_str() {
            "type" => {
                n.type_names = match types(fv, kat)? {
                    Types::One(t) => vec![t],
                    Types::Many(list) => list,
                }
            }
            "description" | "title" | "$comment" => {
                string(fv, kat)?;
            }
            "enum" => {
                n.enum_values = Some(
                    fv.as_array()
                        .cloned()
                        .ok_or_else(|| invalid_type(fv, kat, "a list"))?,
                )
            }
            "const" => n.const_value = Some(fv.clone()),
            "minimum" => n.minimum = Some(number(fv, kat)?),
            "maximum" => n.maximum = Some(number(fv, kat)?),
            "exclusiveMinimum" => n.exclusive_minimum = Some(number(fv, kat)?),
            "exclusiveMaximum" => n.exclusive_maximum = Some(number(fv, kat)?),
            "minLength" => n.min_length = Some(count(fv, kat)?),
            "maxLength" => n.max_length = Some(count(fv, kat)?),
            "minItems" => n.min_items = Some(count(fv, kat)?),
            "maxItems" => n.max_items = Some(count(fv, kat)?),
            "pattern" => {
                let p = string(fv, kat)?;
                portable_pattern(&p).map_err(|m| err(kat, m))?;
                let compiled = engine
                    .compile(&p)
                    .map_err(|m| err(kat, format!("invalid pattern: {m}")))?;
                n.pattern = Some((p, compiled));
            }
            "format" => n.format = Some(variant(fv, kat, &FORMATS)?),
            "items" => n.items = Some(Box::new(node(engine, fv, kat, depth + 1)?)),
            "properties" => {
                for (name, sub) in object(fv, kat, "an object of schemas")? {
                    let sub = node(engine, sub, &key_at(kat, name), depth + 1)?;
                    n.properties.push((name.clone(), sub));
                }
                // By name, for binary search (a JSON object may keep insertion order).
                check::heap_sort(&mut n.properties, |a, b| a.0 < b.0);
            }
            "required" => {
                let list = fv
                    .as_array()
                    .ok_or_else(|| invalid_type(fv, kat, "a list"))?;
                for (i, name) in list.iter().enumerate() {
                    n.required.push(string(name, &format!("{kat}/{i}"))?);
                }
            }
            "additionalProperties" => {
                n.additional = match fv {
                    Value::Bool(true) => Extra::Any,
                    Value::Bool(false) => Extra::None,
                    Value::Object(_) => Extra::Schema(Box::new(node(engine, fv, kat, depth + 1)?)),
                    _ => {
                        return Err(err(
                            kat,
                            format!(
                                "additionalProperties is true, false or a schema, not {}",
                                found(fv)
                            ),
                        ))
                    }
                }
            }
            _ => return Err(unknown_field(k, at, &SCHEMA_FIELDS)),
        }
    }
    n.types = n.type_names.iter().fold(0, |set, t| set | type_bit(*t));
    Ok(n)
}

/// The largest count of a `{n,m}` quantifier: native engines' size limits refuse large
/// ones that JavaScript accepts.
pub const MAX_REPEAT: u32 = 1000;

/// Refuses pattern syntax whose meaning differs between regex-lite's (which the built-in
/// engine, [`super::pattern`], follows) and JavaScript's `RegExp` with the `u` and `s` flags, or that only one of them accepts, so that the
/// device, the browser and the CLI refuse the same plans:
///
/// - escapes other than `\d \D \w \W \b \B` (ASCII in both), `\t \n \r \f \v`, `\xHH`,
///   `\uHHHH` (not a surrogate), `\u{H…}`, and an escaped syntax character
///   (`^ $ \ . * + ? ( ) [ ] { } | /`, and `-` inside a class): so `\s \S` (Unicode in
///   JavaScript, ASCII in regex-lite), `\p \P \A \z \Q \E \h`, back-references and
///   `\x{…}` are refused;
/// - `(?` other than `(?:` (inline flags, named groups, lookaround);
/// - in a class: POSIX classes (`[[:`), nested classes and set operations (`[`, `&&`,
///   `--`, `~~`), `\b`, a class escape as the end of a range (`[\w-x]`), and the empty
///   classes `[]` and `[^]`;
/// - a quantifier with nothing to repeat, after an assertion (`^*`) or after another
///   quantifier (`a**`; a lazy `?` is fine), `{` that does not start a quantifier `{n}`,
///   `{n,}`, `{n,m}`, a count above [`MAX_REPEAT`], and a lone `]` or `}`.
///
/// What passes is then compiled by the engine, which may still refuse it (`a{2,1}`).
pub fn portable_pattern(p: &str) -> Result<(), String> {
    #[derive(PartialEq)]
    enum Last {
        /// Start of the pattern, of a group or of an alternative: nothing to repeat.
        Start,
        /// Something that may be repeated.
        Atom,
        /// An assertion (`^`, `$`, `\b`, `\B`): JavaScript refuses to repeat it.
        Assertion,
        /// A quantifier: only a lazy `?` may follow.
        Quantifier,
        /// A lazy quantifier: nothing may repeat it.
        Lazy,
    }
    let chars: Vec<char> = p.chars().collect();
    let refuse = |what: &str| {
        Err(format!(
            "pattern {p:?}: {what} is not portable (its meaning differs between regex \
             engines, or one of them refuses it)"
        ))
    };
    let mut i = 0;
    let mut in_class = false;
    let mut last = Last::Start;
    // In a class: where it started (after `[` or `[^`), and whether the last item was a
    // class escape (`\d`): JavaScript refuses those as range ends.
    let mut class_start = 0;
    let mut after_class_escape = false;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' {
            let Some(&e) = chars.get(i + 1) else {
                return refuse("a trailing backslash");
            };
            let hex = |k: usize| chars.get(k).is_some_and(char::is_ascii_hexdigit);
            let mut next = Last::Atom;
            let class_escape = matches!(e, 'd' | 'D' | 'w' | 'W');
            if in_class && class_escape && i > class_start && chars[i - 1] == '-' {
                let range_op = i - 1 > class_start;
                if range_op {
                    return refuse("a class escape as the end of a range");
                }
            }
            match e {
                'd' | 'D' | 'w' | 'W' => i += 2,
                'b' | 'B' if !in_class && chars.get(i + 2) != Some(&'{') => {
                    next = Last::Assertion;
                    i += 2
                }
                't' | 'n' | 'r' | 'f' | 'v' => i += 2,
                'x' if hex(i + 2) && hex(i + 3) => i += 4,
                'u' if (2..6).all(|k| hex(i + k)) => {
                    let code: String = chars[i + 2..i + 6].iter().collect();
                    if u32::from_str_radix(&code, 16).is_ok_and(|c| (0xD800..0xE000).contains(&c)) {
                        return refuse("a surrogate \\u escape (write the code point as \\u{…})");
                    }
                    i += 6
                }
                'u' if chars.get(i + 2) == Some(&'{') => {
                    let mut k = i + 3;
                    while hex(k) {
                        k += 1;
                    }
                    if k == i + 3 || chars.get(k) != Some(&'}') {
                        return refuse("a malformed \\u{…} escape");
                    }
                    i = k + 1;
                }
                '^' | '$' | '\\' | '.' | '*' | '+' | '?' | '(' | ')' | '[' | ']' | '{' | '}'
                | '|' | '/' => i += 2,
                '-' if in_class => i += 2,
                _ => return refuse(&format!("the escape \\{e}")),
            }
            if in_class {
                after_class_escape = class_escape;
            } else {
                last = next;
            }
            continue;
        }
        if in_class {
            match c {
                '[' => return refuse("a nested class or POSIX class ('[' in a class)"),
                ']' => {
                    in_class = false;
                    last = Last::Atom;
                }
                '&' | '-' | '~' if chars.get(i + 1) == Some(&c) => {
                    return refuse("a class set operation (&&, --, ~~)")
                }
                '-' if after_class_escape && chars.get(i + 1) != Some(&']') => {
                    return refuse("a class escape as the start of a range");
                }
                _ => {}
            }
            after_class_escape = false;
            i += 1;
            continue;
        }
        let quantifier = |last: &Last| match last {
            Last::Atom => Ok(()),
            Last::Start => refuse("a quantifier with nothing to repeat"),
            Last::Assertion => refuse("a repeated assertion"),
            Last::Quantifier | Last::Lazy => refuse("a quantifier after a quantifier"),
        };
        match c {
            '[' => {
                in_class = true;
                let mut k = i + 1;
                if chars.get(k) == Some(&'^') {
                    k += 1;
                }
                if chars.get(k) == Some(&']') {
                    return refuse("an empty class or ']' first in a class");
                }
                class_start = k;
                after_class_escape = false;
                i = k;
                continue;
            }
            ']' => return refuse("a lone ']'"),
            '}' => return refuse("a lone '}'"),
            '(' => {
                if chars.get(i + 1) == Some(&'?') {
                    if chars.get(i + 2) != Some(&':') {
                        return refuse("'(?' other than '(?:' (flags, named groups, lookaround)");
                    }
                    i += 2;
                }
                last = Last::Start;
            }
            '|' => last = Last::Start,
            ')' => last = Last::Atom,
            '^' | '$' => last = Last::Assertion,
            '?' if last == Last::Quantifier => last = Last::Lazy,
            '*' | '+' | '?' => {
                quantifier(&last)?;
                last = Last::Quantifier;
            }
            '{' => {
                let mut k = i + 1;
                let start = k;
                while chars.get(k).is_some_and(char::is_ascii_digit) {
                    k += 1;
                }
                if k == start {
                    return refuse("a '{' that does not start a quantifier {n}, {n,} or {n,m}");
                }
                if chars.get(k) == Some(&',') {
                    k += 1;
                    while chars.get(k).is_some_and(char::is_ascii_digit) {
                        k += 1;
                    }
                }
                if chars.get(k) != Some(&'}') {
                    return refuse("a '{' that does not start a quantifier {n}, {n,} or {n,m}");
                }
                let counts: String = chars[start..k].iter().collect();
                let too_many = counts
                    .split(',')
                    .any(|n| !n.is_empty() && n.parse::<u32>().map_or(true, |n| n > MAX_REPEAT));
                if too_many {
                    return refuse(&format!("a repetition count above {MAX_REPEAT}"));
                }
                quantifier(&last)?;
                last = Last::Quantifier;
                i = k + 1;
                continue;
            }
            _ => last = Last::Atom,
        }
        i += 1;
    }
    if in_class {
        return refuse("an unclosed class");
    }
    Ok(())
}
