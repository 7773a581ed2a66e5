//! The language-neutral model the generators print: events with their parameters, and the
//! enums and object types they need, named in words so each language can case them its
//! own way. Built once from a [`PlanFile`]; everything a generator needs to decide (which
//! property is a parameter, what type it has, what it is called) is decided here, so the
//! five languages cannot disagree.

use std::collections::BTreeMap;

use serde_json::Value;
use trailhound_core::plan::model::{Additional, EventSpec, JsonType, PlanFile, Schema};
use trailhound_core::MessageType;

/// A name split into lowercase ASCII words: `Song Played` and `songPlayed` are both
/// `["song", "played"]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Words(pub Vec<String>);

impl Words {
    /// Splits `name` at anything that is not an ASCII letter or digit and at case changes
    /// (`songID` is `song`, `id`; `HTTPServer` is `http`, `server`). A name that would start
    /// with a digit gets a leading `n` word (`1x` is `n`, `1x`), one with no word is `value`.
    pub fn split(name: &str) -> Words {
        let chars: Vec<char> = name.chars().collect();
        let mut words: Vec<String> = Vec::new();
        let mut cur = String::new();
        for (i, &c) in chars.iter().enumerate() {
            if !c.is_ascii_alphanumeric() {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
                continue;
            }
            if !cur.is_empty() && c.is_ascii_uppercase() {
                let prev = chars[i - 1];
                let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
                // aB -> a|B ; 1B -> 1|B ; ABc -> A|Bc
                if prev.is_ascii_lowercase()
                    || prev.is_ascii_digit()
                    || (prev.is_ascii_uppercase() && next_lower)
                {
                    words.push(std::mem::take(&mut cur));
                }
            }
            cur.push(c.to_ascii_lowercase());
        }
        if !cur.is_empty() {
            words.push(cur);
        }
        if words.is_empty() {
            words.push("value".to_owned());
        }
        if words[0].starts_with(|c: char| c.is_ascii_digit()) {
            words.insert(0, "n".to_owned());
        }
        Words(words)
    }

    /// These words followed by `more`.
    pub fn join(&self, more: &Words) -> Words {
        Words(self.0.iter().chain(more.0.iter()).cloned().collect())
    }

    /// `song_played`
    pub fn snake(&self) -> String {
        self.0.join("_")
    }

    /// `SONG_PLAYED`
    pub fn screaming(&self) -> String {
        self.snake().to_ascii_uppercase()
    }

    /// `songPlayed`
    pub fn camel(&self) -> String {
        let mut out = String::new();
        for (i, w) in self.0.iter().enumerate() {
            if i == 0 {
                out.push_str(w);
            } else {
                out.push_str(&capitalize(w));
            }
        }
        out
    }

    /// `SongPlayed`
    pub fn pascal(&self) -> String {
        self.0.iter().map(|w| capitalize(w)).collect()
    }
}

fn capitalize(w: &str) -> String {
    let mut c = w.chars();
    match c.next() {
        Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
        None => String::new(),
    }
}

/// The type of a parameter or field.
#[derive(Debug, Clone, PartialEq)]
pub enum Ty {
    /// A string (any `format` too: it stays a string in every language).
    String,
    /// A whole number (64-bit).
    Integer,
    /// Any number (a double).
    Number,
    /// `true` / `false`.
    Boolean,
    /// Any JSON value: no type, or several.
    Any,
    /// An object without declared properties: string keys to values of this type.
    Map(Box<Ty>),
    /// An array of this type.
    Array(Box<Ty>),
    /// A string enum: index into [`Model::enums`].
    Enum(usize),
    /// An object with declared properties: index into [`Model::objects`].
    Object(usize),
}

impl Ty {
    /// Whether a value of this type needs converting to its JSON form: it is (or holds)
    /// a generated object, or, when `enums` (a language whose enums are not their wire
    /// strings at run time), an enum.
    pub fn needs_conversion(&self, enums: bool) -> bool {
        match self {
            Ty::Object(_) => true,
            Ty::Enum(_) => enums,
            Ty::Array(v) | Ty::Map(v) => v.needs_conversion(enums),
            _ => false,
        }
    }
}

/// A property (or trait) of an event or a nested object.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// The name sent on the wire, as written in the plan.
    pub wire: String,
    /// The name's words, for the language's identifier.
    pub words: Words,
    /// Its type.
    pub ty: Ty,
    /// `null` is allowed (the type list has `null`).
    pub nullable: bool,
    /// Listed in `required`.
    pub required: bool,
    /// A `const`: not a parameter; always sent with this value.
    pub constant: Option<Value>,
    /// The schema's `description` (or `title`).
    pub doc: Option<String>,
    /// Facts for the doc comment the type cannot say: range, length, format, pattern.
    pub notes: Vec<String>,
    /// The values of a non-string `enum` of numbers or booleans, for languages with
    /// literal types (TypeScript `1 | 2`, Python `Literal[1, 2]`); the others use `ty`.
    pub literals: Option<Vec<Value>>,
}

impl Field {
    /// Whether the caller passes this field (everything but constants).
    pub fn is_param(&self) -> bool {
        self.constant.is_none()
    }

    /// Whether the language's type must admit "nothing" (optional, or nullable).
    pub fn is_optional_type(&self) -> bool {
        !self.required || self.nullable
    }
}

/// A string enum.
#[derive(Debug, Clone, PartialEq)]
pub struct EnumDef {
    /// The type's name in words (event + property).
    pub name: Words,
    /// Each value: as sent, and its words for the member name.
    pub values: Vec<(String, Words)>,
    /// The schema's description.
    pub doc: Option<String>,
}

/// An object type with declared properties.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectDef {
    /// The type's name in words (event + property).
    pub name: Words,
    /// Required fields first, then optional ones; each group in wire-name order.
    pub fields: Vec<Field>,
    /// The schema's description.
    pub doc: Option<String>,
}

/// One planned event: one generated function.
#[derive(Debug, Clone, PartialEq)]
pub struct EventDef {
    /// `track`, `screen`, `page`, `identify` or `group`.
    pub kind: MessageType,
    /// The event (or screen/page) name as sent; `None` for identify and group.
    pub name: Option<String>,
    /// The function's name in words.
    pub func: Words,
    /// The plan's description of the event.
    pub doc: Option<String>,
    /// The properties (traits): required first, then optional; each in wire-name order.
    pub fields: Vec<Field>,
    /// The words of the type named after the event (options, props).
    pub type_name: Words,
}

/// Everything a generator prints.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// The plan's id.
    pub plan: String,
    /// The plan's version.
    pub version: String,
    /// The plan's description.
    pub description: Option<String>,
    /// The tracker type's name in words: the plan id + `tracker`.
    pub tracker: Words,
    /// The events, in plan order.
    pub events: Vec<EventDef>,
    /// The string enums, in order of first use.
    pub enums: Vec<EnumDef>,
    /// The object types, in order of first use.
    pub objects: Vec<ObjectDef>,
}

/// Why a plan cannot be generated (beyond what lint refuses): names that collide once
/// converted to identifiers. `at` is a JSON pointer into the plan file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodegenError {
    /// A JSON pointer into the plan file.
    pub at: String,
    /// What is wrong there.
    pub message: String,
}

impl std::fmt::Display for CodegenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.at.is_empty() {
            write!(f, "cannot generate code: {}", self.message)
        } else {
            write!(f, "cannot generate code: at {}: {}", self.at, self.message)
        }
    }
}

impl std::error::Error for CodegenError {}

fn err(at: impl Into<String>, message: impl Into<String>) -> CodegenError {
    CodegenError {
        at: at.into(),
        message: message.into(),
    }
}

/// Escapes a JSON pointer token (`~` and `/`).
fn token(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

impl Model {
    /// Builds the model of a plan file; refuses names that collide once converted.
    pub fn build(file: &PlanFile) -> Result<Model, CodegenError> {
        let mut b = Builder {
            enums: Vec::new(),
            objects: Vec::new(),
        };
        let mut events = Vec::new();
        let mut funcs: BTreeMap<String, String> = BTreeMap::new();
        for (i, ev) in file.events.iter().enumerate() {
            let at = format!("/events/{i}");
            let Some(def) = b.event(ev, &at)? else {
                continue;
            };
            if let Some(prev) = funcs.insert(def.func.snake(), at.clone()) {
                return Err(err(
                    at,
                    format!(
                        "its function would be named `{}`, as that of the event at {prev}",
                        def.func.snake()
                    ),
                ));
            }
            events.push(def);
        }
        let tracker = Words::split(&file.plan).join(&Words(vec!["tracker".to_owned()]));
        let model = Model {
            plan: file.plan.clone(),
            version: file.version.clone(),
            description: file.description.clone(),
            tracker,
            events,
            enums: b.enums,
            objects: b.objects,
        };
        model.check_type_names()?;
        Ok(model)
    }

    /// Every generated type name (enums, objects, per-event types, the tracker) is distinct.
    fn check_type_names(&self) -> Result<(), CodegenError> {
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        let mut names: Vec<(String, String)> = vec![(self.tracker.pascal(), "the tracker".into())];
        // The generators' own helper types.
        for helper in HELPER_TYPES {
            names.push((
                (*helper).to_owned(),
                "a helper of the generated code".into(),
            ));
        }
        for e in &self.enums {
            names.push((e.name.pascal(), format!("the enum {}", e.name.pascal())));
        }
        for o in &self.objects {
            names.push((
                o.name.pascal(),
                format!("the object type {}", o.name.pascal()),
            ));
        }
        for ev in &self.events {
            for suffix in ["options", "props"] {
                let w = ev.type_name.join(&Words(vec![suffix.to_owned()]));
                names.push((w.pascal(), format!("the {suffix} of {}", ev.func.snake())));
            }
        }
        for (name, what) in names {
            if let Some(prev) = seen.insert(name.clone(), what.clone()) {
                return Err(err(
                    "",
                    format!("two generated types would be named `{name}`: {prev} and {what}"),
                ));
            }
        }
        Ok(())
    }
}

/// Type names the generated files declare themselves, in some language.
pub const HELPER_TYPES: &[&str] = &["ToJson", "TrailhoundLike", "TrailhoundSink", "PlanObject"];

struct Builder {
    enums: Vec<EnumDef>,
    objects: Vec<ObjectDef>,
}

impl Builder {
    fn event(&mut self, ev: &EventSpec, at: &str) -> Result<Option<EventDef>, CodegenError> {
        let (func, type_name) = match ev.kind {
            MessageType::Track => {
                let name = ev
                    .name
                    .as_deref()
                    .ok_or_else(|| err(format!("{at}/name"), "a track event needs a name"))?;
                let w = Words::split(name);
                (w.clone(), w)
            }
            MessageType::Screen | MessageType::Page => {
                let kind = ev.kind.as_str();
                let name = ev.name.as_deref().ok_or_else(|| {
                    err(
                        format!("{at}/name"),
                        format!("a {kind} event needs a name to generate a function for it"),
                    )
                })?;
                let w = Words::split(name);
                let suffixed = if w.0.last().is_some_and(|l| l == kind) {
                    w
                } else {
                    w.join(&Words(vec![kind.to_owned()]))
                };
                (suffixed.clone(), suffixed)
            }
            MessageType::Identify | MessageType::Group => {
                let w = Words(vec![ev.kind.as_str().to_owned()]);
                (w.clone(), w.join(&Words(vec!["traits".to_owned()])))
            }
            // An alias carries nothing to type.
            MessageType::Alias => return Ok(None),
        };
        let fields = self.fields(&ev.schema, &type_name, &format!("{at}/schema"))?;
        Ok(Some(EventDef {
            kind: ev.kind,
            name: ev.name.clone(),
            func,
            doc: ev.description.clone(),
            fields,
            type_name,
        }))
    }

    /// The fields of an object schema: required first, then optional, each in name order.
    fn fields(&mut self, s: &Schema, owner: &Words, at: &str) -> Result<Vec<Field>, CodegenError> {
        let mut required = Vec::new();
        let mut optional = Vec::new();
        let mut idents: BTreeMap<String, String> = BTreeMap::new();
        let mut names: Vec<&String> = s.properties.keys().collect();
        // A required name without a schema: any value.
        let any = Schema::default();
        for r in &s.required {
            if !s.properties.contains_key(r) && !names.contains(&r) {
                names.push(r);
            }
        }
        names.sort();
        for wire in names {
            let schema = s.properties.get(wire).unwrap_or(&any);
            let fat = format!("{at}/properties/{}", token(wire));
            let words = Words::split(wire);
            if let Some(prev) = idents.insert(words.snake(), wire.clone()) {
                return Err(err(
                    fat,
                    format!(
                        "the properties {prev:?} and {wire:?} would have the same name in code (`{}`)",
                        words.snake()
                    ),
                ));
            }
            let is_required = s.required.contains(wire);
            let field = self.field(wire, words, schema, is_required, owner, &fat)?;
            if is_required {
                required.push(field);
            } else {
                optional.push(field);
            }
        }
        required.extend(optional);
        Ok(required)
    }

    fn field(
        &mut self,
        wire: &str,
        words: Words,
        s: &Schema,
        required: bool,
        owner: &Words,
        at: &str,
    ) -> Result<Field, CodegenError> {
        let type_words = owner.join(&words);
        let (ty, nullable) = self.ty(s, &type_words, at)?;
        let literals = literals(s, &ty);
        Ok(Field {
            wire: wire.to_owned(),
            words,
            ty,
            nullable,
            required,
            constant: s.const_value.clone(),
            doc: s.description.clone().or_else(|| s.title.clone()),
            notes: notes(s),
            literals,
        })
    }

    /// The type of a schema, and whether it admits null.
    fn ty(&mut self, s: &Schema, name: &Words, at: &str) -> Result<(Ty, bool), CodegenError> {
        let declared: Vec<JsonType> = s
            .types
            .as_ref()
            .map(|t| t.as_slice().to_vec())
            .unwrap_or_default();
        let mut nullable = declared.contains(&JsonType::Null);
        let mut types: Vec<JsonType> = declared
            .iter()
            .copied()
            .filter(|t| *t != JsonType::Null)
            .collect();
        types.sort();
        types.dedup();

        if let Some(values) = &s.enum_values {
            if values.iter().any(Value::is_null) {
                nullable = true;
            }
            let non_null: Vec<&Value> = values.iter().filter(|v| !v.is_null()).collect();
            let strings: Vec<&str> = non_null.iter().filter_map(|v| v.as_str()).collect();
            if !strings.is_empty()
                && strings.len() == non_null.len()
                && (types.is_empty() || types == [JsonType::String])
            {
                return Ok((Ty::Enum(self.enumeration(&strings, name, s, at)?), nullable));
            }
            if types.is_empty() {
                // An untyped non-string enum: the type of its values, if they share one.
                types = non_null.iter().map(|v| json_type(v)).collect();
                types.sort();
                types.dedup();
            }
        }
        // An integer is a number: both together are a number.
        if types.len() == 2
            && types.contains(&JsonType::Integer)
            && types.contains(&JsonType::Number)
        {
            types = vec![JsonType::Number];
        }
        let ty = match types.as_slice() {
            [JsonType::String] => Ty::String,
            [JsonType::Integer] => Ty::Integer,
            [JsonType::Number] => Ty::Number,
            [JsonType::Boolean] => Ty::Boolean,
            [JsonType::Array] => {
                let item = match &s.items {
                    Some(items) => {
                        let (t, item_nullable) = self.ty(
                            items,
                            &name.join(&Words(vec!["item".to_owned()])),
                            &format!("{at}/items"),
                        )?;
                        if item_nullable {
                            Ty::Any
                        } else {
                            t
                        }
                    }
                    None => Ty::Any,
                };
                Ty::Array(Box::new(item))
            }
            [JsonType::Object] if !s.properties.is_empty() => {
                let fields = self.fields(s, name, at)?;
                self.objects.push(ObjectDef {
                    name: name.clone(),
                    fields,
                    doc: s.description.clone().or_else(|| s.title.clone()),
                });
                Ty::Object(self.objects.len() - 1)
            }
            [JsonType::Object] => match &s.additional_properties {
                Some(Additional::Schema(v)) => {
                    let (t, value_nullable) = self.ty(
                        v,
                        &name.join(&Words(vec!["value".to_owned()])),
                        &format!("{at}/additionalProperties"),
                    )?;
                    Ty::Map(Box::new(if value_nullable { Ty::Any } else { t }))
                }
                _ => Ty::Map(Box::new(Ty::Any)),
            },
            // No type, or several (a number or a string): any value.
            _ => Ty::Any,
        };
        Ok((ty, nullable))
    }

    fn enumeration(
        &mut self,
        values: &[&str],
        name: &Words,
        s: &Schema,
        at: &str,
    ) -> Result<usize, CodegenError> {
        let mut members: Vec<(String, Words)> = Vec::new();
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        for v in values {
            let w = Words::split(v);
            if let Some(prev) = seen.insert(w.snake(), (*v).to_owned()) {
                if prev == *v {
                    continue; // a repeated value
                }
                return Err(err(
                    format!("{at}/enum"),
                    format!(
                        "the values {prev:?} and {v:?} would have the same name in code (`{}`)",
                        w.pascal()
                    ),
                ));
            }
            members.push(((*v).to_owned(), w));
        }
        // The same values under the same name (a property shared by events keeps one
        // type per event, so names never clash across events).
        self.enums.push(EnumDef {
            name: name.clone(),
            values: members,
            doc: s.description.clone().or_else(|| s.title.clone()),
        });
        Ok(self.enums.len() - 1)
    }
}

/// The values of a number or boolean `enum` (null aside), when the type is one of them.
fn literals(s: &Schema, ty: &Ty) -> Option<Vec<Value>> {
    let values = s.enum_values.as_ref()?;
    let non_null: Vec<Value> = values.iter().filter(|v| !v.is_null()).cloned().collect();
    let fits = |v: &Value| match ty {
        Ty::Integer => v.is_i64() || v.is_u64(),
        Ty::Number => v.is_number(),
        Ty::Boolean => v.is_boolean(),
        _ => false,
    };
    (!non_null.is_empty() && non_null.iter().all(fits)).then_some(non_null)
}

fn json_type(v: &Value) -> JsonType {
    match v {
        Value::Null => JsonType::Null,
        Value::Bool(_) => JsonType::Boolean,
        Value::Number(n) if n.is_i64() || n.is_u64() => JsonType::Integer,
        Value::Number(_) => JsonType::Number,
        Value::String(_) => JsonType::String,
        Value::Array(_) => JsonType::Array,
        Value::Object(_) => JsonType::Object,
    }
}

/// What a doc comment should say that the type does not: bounds, formats, patterns, and
/// the values of a non-string enum.
fn notes(s: &Schema) -> Vec<String> {
    let mut out = Vec::new();
    let num = |x: f64| {
        if x.fract() == 0.0 && x.abs() < 1e15 {
            format!("{}", x as i64)
        } else {
            format!("{x}")
        }
    };
    if let Some(m) = s.minimum {
        out.push(format!(">= {}", num(m)));
    }
    if let Some(m) = s.exclusive_minimum {
        out.push(format!("> {}", num(m)));
    }
    if let Some(m) = s.maximum {
        out.push(format!("<= {}", num(m)));
    }
    if let Some(m) = s.exclusive_maximum {
        out.push(format!("< {}", num(m)));
    }
    if let Some(m) = s.min_length {
        out.push(format!("at least {m} characters"));
    }
    if let Some(m) = s.max_length {
        out.push(format!("at most {m} characters"));
    }
    if let Some(m) = s.min_items {
        out.push(format!("at least {m} items"));
    }
    if let Some(m) = s.max_items {
        out.push(format!("at most {m} items"));
    }
    if let Some(f) = s.format {
        let f = match f {
            trailhound_core::plan::model::Format::DateTime => "an RFC 3339 date-time",
            trailhound_core::plan::model::Format::Email => "an email address",
            trailhound_core::plan::model::Format::Uri => "an absolute URI",
        };
        out.push(f.to_owned());
    }
    if let Some(p) = &s.pattern {
        out.push(format!("matches `{p}`"));
    }
    if let Some(values) = &s.enum_values {
        if !values.iter().all(|v| v.is_string() || v.is_null()) {
            let list: Vec<String> = values.iter().map(Value::to_string).collect();
            out.push(format!("one of {}", list.join(", ")));
        }
    }
    if let Some(c) = &s.const_value {
        out.push(format!("always {c}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names split into the same words whatever their case or separators.
    #[test]
    fn words_split_any_convention() {
        for (name, words) in [
            ("Song Played", "song_played"),
            ("songPlayed", "song_played"),
            ("song-played", "song_played"),
            ("SongPlayed", "song_played"),
            ("HTTPServer", "http_server"),
            ("songID", "song_id"),
            ("position_ms", "position_ms"),
            ("1x", "n_1x"),
            ("", "value"),
            ("Ünïcode!", "n_code"),
        ] {
            assert_eq!(Words::split(name).snake(), words, "{name}");
        }
        let w = Words::split("song played id");
        assert_eq!(w.camel(), "songPlayedId");
        assert_eq!(w.pascal(), "SongPlayedId");
        assert_eq!(w.screaming(), "SONG_PLAYED_ID");
    }

    fn model(events: serde_json::Value) -> Result<Model, CodegenError> {
        let file: PlanFile = serde_json::from_value(serde_json::json!({
            "plan": "p", "version": "1-0-0", "events": events
        }))
        .expect("plan file");
        Model::build(&file)
    }

    fn field_ty(m: &Model, name: &str) -> (Ty, bool, bool) {
        let f = m.events[0]
            .fields
            .iter()
            .find(|f| f.wire == name)
            .unwrap_or_else(|| panic!("no field {name}"));
        (f.ty.clone(), f.nullable, f.required)
    }

    /// Each schema shape gets the type the generators print: nullable lists, enums with
    /// null, untyped enums, integer-or-number, nullable items, typed maps, no type at all.
    #[test]
    fn schemas_map_to_types() {
        let m = model(
            serde_json::json!([{ "type": "track", "name": "E", "schema": {
            "type": "object", "required": ["a", "undeclared"],
            "properties": {
                "a": { "type": ["string", "null"] },
                "b": { "enum": ["x", "y", null] },
                "c": { "enum": [1, 2.5] },
                "d": { "type": ["integer", "number"] },
                "e": { "type": "array", "items": { "type": ["integer", "null"] } },
                "f": { "type": "object", "additionalProperties": { "type": "boolean" } },
                "g": {},
                "h": { "type": ["string", "integer"] },
                "i": { "type": "array" }
            } } }]),
        )
        .expect("model");
        assert_eq!(field_ty(&m, "a"), (Ty::String, true, true));
        assert_eq!(field_ty(&m, "undeclared"), (Ty::Any, false, true));
        assert_eq!(field_ty(&m, "b"), (Ty::Enum(0), true, false));
        assert_eq!(m.enums[0].values.len(), 2);
        assert_eq!(field_ty(&m, "c").0, Ty::Number);
        let c = m.events[0]
            .fields
            .iter()
            .find(|f| f.wire == "c")
            .expect("c");
        assert_eq!(
            c.literals,
            Some(vec![serde_json::json!(1), serde_json::json!(2.5)])
        );
        let a = m.events[0]
            .fields
            .iter()
            .find(|f| f.wire == "a")
            .expect("a");
        assert_eq!(a.literals, None);
        assert_eq!(field_ty(&m, "d").0, Ty::Number);
        assert_eq!(field_ty(&m, "e").0, Ty::Array(Box::new(Ty::Any)));
        assert_eq!(field_ty(&m, "f").0, Ty::Map(Box::new(Ty::Boolean)));
        assert_eq!(field_ty(&m, "g").0, Ty::Any);
        assert_eq!(field_ty(&m, "h").0, Ty::Any);
        assert_eq!(field_ty(&m, "i").0, Ty::Array(Box::new(Ty::Any)));
        // Required first, then optional, each in name order.
        let order: Vec<&str> = m.events[0].fields.iter().map(|f| f.wire.as_str()).collect();
        assert_eq!(
            order,
            ["a", "undeclared", "b", "c", "d", "e", "f", "g", "h", "i"]
        );
    }

    /// Function names: track by name, screen/page suffixed once, identify and group by
    /// kind; alias has nothing to type; an unnamed screen is refused.
    #[test]
    fn function_names_per_kind() {
        let m = model(serde_json::json!([
            { "type": "track", "name": "Song Played" },
            { "type": "screen", "name": "Player" },
            { "type": "screen", "name": "Settings Screen" },
            { "type": "page", "name": "Home" },
            { "type": "identify" },
            { "type": "group" },
            { "type": "alias" }
        ]))
        .expect("model");
        let names: Vec<String> = m.events.iter().map(|e| e.func.snake()).collect();
        assert_eq!(
            names,
            [
                "song_played",
                "player_screen",
                "settings_screen",
                "home_page",
                "identify",
                "group"
            ]
        );
        let e = model(serde_json::json!([{ "type": "screen" }])).expect_err("unnamed");
        assert_eq!(e.at, "/events/0/name");
    }

    /// Enum values that would share a member name are refused; a repeated value is not.
    #[test]
    fn enum_member_collisions() {
        let e = model(
            serde_json::json!([{ "type": "track", "name": "E", "schema": {
            "type": "object", "properties": { "k": { "enum": ["a-b", "a_b"] } } } }]),
        )
        .expect_err("collision");
        assert_eq!(e.at, "/events/0/schema/properties/k/enum");
        let m = model(
            serde_json::json!([{ "type": "track", "name": "E", "schema": {
            "type": "object", "properties": { "k": { "enum": ["a", "a"] } } } }]),
        )
        .expect("repeat");
        assert_eq!(m.enums[0].values.len(), 1);
    }

    /// Generated type names that would clash (an event's enum and another event's type)
    /// are refused instead of printing code that does not compile.
    #[test]
    fn type_name_collisions() {
        let e = model(serde_json::json!([
            { "type": "track", "name": "Song", "schema": { "type": "object",
              "properties": { "played source": { "enum": ["a"] } } } },
            { "type": "track", "name": "Song Played", "schema": { "type": "object",
              "properties": { "source": { "enum": ["b"] } } } }
        ]))
        .expect_err("collision");
        assert!(e.message.contains("SongPlayedSource"), "{e}");
    }
}
