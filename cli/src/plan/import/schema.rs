//! JSON Schema (as Segment writes it, and as the RudderStack importer builds it) to the
//! plan's schema subset. What maps is kept; every keyword that does not is reported.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use trailhound_core::plan::model::{Additional, Format, JsonType, Schema, Types};

use super::Warnings;

/// Keywords dropped without a warning: identifiers and vendor bookkeeping that mean nothing
/// for a check.
const SILENT: [&str; 5] = ["$schema", "$id", "id", "eventMetadata", "labels"];

/// Patterns standing in for formats the plan does not have, written in the portable
/// subset (no `\d`: ASCII digits spelled out).
fn format_pattern(format: &str) -> Option<&'static str> {
    Some(match format {
        "uuid" => "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
        "date" => "^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
        _ => return None,
    })
}

fn json_type(name: &str) -> Option<JsonType> {
    Some(match name {
        "string" => JsonType::String,
        "number" => JsonType::Number,
        "integer" => JsonType::Integer,
        "boolean" => JsonType::Boolean,
        "object" => JsonType::Object,
        "array" => JsonType::Array,
        "null" => JsonType::Null,
        _ => return None,
    })
}

/// Parses a `type` keyword's names, warning about the unknown ones.
pub fn types_of(names: &[&str], at: &str, w: &mut Warnings) -> Option<Types> {
    let mut types = Vec::new();
    for n in names {
        match json_type(n.trim()) {
            Some(t) if !types.contains(&t) => types.push(t),
            Some(_) => {}
            None => w.add(at, format!("type {n:?} is not a JSON Schema type; dropped")),
        }
    }
    match types.len() {
        0 => None,
        1 => Some(Types::One(types[0])),
        _ => Some(Types::Many(types)),
    }
}

fn count(v: &Value, keyword: &str, at: &str, w: &mut Warnings) -> Option<u64> {
    let n = v.as_u64().or_else(|| {
        // 3.0 is a count too.
        v.as_f64()
            .filter(|f| *f >= 0.0 && f.fract() == 0.0 && *f < 9.0e15)
            .map(|f| f as u64)
    });
    if n.is_none() {
        w.add(at, format!("{keyword} {v} is not a count; dropped"));
    }
    n
}

fn number(v: &Value, keyword: &str, at: &str, w: &mut Warnings) -> Option<f64> {
    let n = v.as_f64();
    if n.is_none() {
        w.add(at, format!("{keyword} {v} is not a number; dropped"));
    }
    n
}

fn string(v: &Value, keyword: &str, at: &str, w: &mut Warnings) -> Option<String> {
    let s = v.as_str().map(str::to_owned);
    if s.is_none() {
        w.add(at, format!("{keyword} {v} is not a string; dropped"));
    }
    s
}

/// Why a keyword we do not support does not map.
fn unsupported(keyword: &str) -> String {
    match keyword {
        "$ref" | "definitions" | "$defs" => {
            format!("{keyword}: references are not supported (write the schema inline); dropped")
        }
        "oneOf" | "anyOf" | "allOf" | "not" | "if" | "then" | "else" => format!(
            "{keyword}: schema combinators are not supported (a plan checks one schema per \
             property); dropped"
        ),
        "multipleOf"
        | "uniqueItems"
        | "contains"
        | "minContains"
        | "maxContains"
        | "patternProperties"
        | "propertyNames"
        | "minProperties"
        | "maxProperties"
        | "dependencies"
        | "dependentRequired"
        | "dependentSchemas"
        | "unevaluatedProperties"
        | "unevaluatedItems"
        | "prefixItems"
        | "additionalItems" => {
            format!("{keyword}: not in the plan's keyword subset; dropped")
        }
        "default" | "examples" | "readOnly" | "writeOnly" | "deprecated" => {
            format!("{keyword}: annotation not kept")
        }
        _ => format!("{keyword}: unknown keyword; dropped"),
    }
}

/// Converts one JSON Schema. `at` names the place for warnings
/// (`Song Played /properties/price`).
pub fn convert(v: &Value, at: &str, w: &mut Warnings) -> Schema {
    let Some(obj) = v.as_object() else {
        match v {
            Value::Bool(true) => {}
            _ => w.add(
                at,
                format!("schema {v} is not an object; any value accepted"),
            ),
        }
        return Schema::default();
    };
    convert_object(obj, at, w)
}

fn convert_object(obj: &Map<String, Value>, at: &str, w: &mut Warnings) -> Schema {
    let mut s = Schema::default();
    // Draft 4's boolean exclusive bounds apply to minimum/maximum: read them first.
    let excl_min = obj.get("exclusiveMinimum").and_then(Value::as_bool);
    let excl_max = obj.get("exclusiveMaximum").and_then(Value::as_bool);
    for (k, v) in obj {
        let k = k.as_str();
        match k {
            _ if SILENT.contains(&k) => {}
            "type" => {
                let names: Vec<&str> = match v {
                    Value::String(t) => vec![t.as_str()],
                    Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                    _ => {
                        w.add(
                            at,
                            format!("type {v} is neither a string nor a list; dropped"),
                        );
                        Vec::new()
                    }
                };
                s.types = types_of(&names, at, w);
            }
            "description" => s.description = string(v, k, at, w),
            "title" => s.title = string(v, k, at, w),
            "$comment" => s.comment = string(v, k, at, w),
            "enum" => match v {
                Value::Array(vals) => s.enum_values = Some(vals.clone()),
                _ => w.add(at, format!("enum {v} is not a list; dropped")),
            },
            "const" => s.const_value = Some(v.clone()),
            "minimum" if excl_min == Some(true) => s.exclusive_minimum = number(v, k, at, w),
            "minimum" => s.minimum = number(v, k, at, w),
            "maximum" if excl_max == Some(true) => s.exclusive_maximum = number(v, k, at, w),
            "maximum" => s.maximum = number(v, k, at, w),
            "exclusiveMinimum" | "exclusiveMaximum" if v.is_boolean() => {}
            "exclusiveMinimum" => s.exclusive_minimum = number(v, k, at, w),
            "exclusiveMaximum" => s.exclusive_maximum = number(v, k, at, w),
            "minLength" => s.min_length = count(v, k, at, w),
            "maxLength" => s.max_length = count(v, k, at, w),
            "minItems" => s.min_items = count(v, k, at, w),
            "maxItems" => s.max_items = count(v, k, at, w),
            "pattern" => {
                if let Some(p) = string(v, k, at, w) {
                    if s.pattern.is_some() {
                        // A format mapped to a pattern got there first.
                        w.add(
                            at,
                            format!("pattern {p:?} dropped: the format's pattern is kept"),
                        );
                    } else {
                        s.pattern = Some(p);
                    }
                }
            }
            "format" => format(&mut s, v, obj.contains_key("pattern"), at, w),
            "items" => match v {
                Value::Object(_) | Value::Bool(true) => {
                    s.items = Some(Box::new(convert(v, &format!("{at}/[]"), w)));
                }
                Value::Array(_) => w.add(
                    at,
                    "items: a list of schemas (tuple validation) is not supported; dropped".into(),
                ),
                _ => w.add(at, format!("items {v} is not a schema; dropped")),
            },
            "properties" => match v {
                Value::Object(props) => {
                    let mut out = BTreeMap::new();
                    for (name, p) in props {
                        let here = format!("{at}/{}", name.replace('~', "~0").replace('/', "~1"));
                        out.insert(name.clone(), convert(p, &here, w));
                    }
                    s.properties = out;
                }
                _ => w.add(at, format!("properties {v} is not an object; dropped")),
            },
            "required" => match v {
                Value::Array(names) => {
                    for n in names {
                        match n.as_str() {
                            Some(n) if !s.required.iter().any(|r| r == n) => {
                                s.required.push(n.to_owned());
                            }
                            Some(_) => {}
                            None => {
                                w.add(at, format!("required name {n} is not a string; dropped"))
                            }
                        }
                    }
                }
                _ => w.add(
                    at,
                    format!("required {v} is not a list of names (draft 3 style); dropped"),
                ),
            },
            "additionalProperties" => match v {
                Value::Bool(b) => s.additional_properties = Some(Additional::Allowed(*b)),
                Value::Object(_) => {
                    let sub = convert(v, &format!("{at}/*"), w);
                    s.additional_properties = Some(Additional::Schema(Box::new(sub)));
                }
                _ => w.add(
                    at,
                    format!("additionalProperties {v} is not a schema; dropped"),
                ),
            },
            other => w.add(at, unsupported(other)),
        }
    }
    s
}

fn format(s: &mut Schema, v: &Value, has_pattern: bool, at: &str, w: &mut Warnings) {
    let Some(f) = v.as_str() else {
        w.add(at, format!("format {v} is not a string; dropped"));
        return;
    };
    s.format = match f {
        "date-time" => Some(Format::DateTime),
        "email" => Some(Format::Email),
        "uri" => Some(Format::Uri),
        _ => {
            match format_pattern(f) {
                Some(p) if !has_pattern => {
                    s.pattern = Some(p.to_owned());
                    w.add(at, format!("format {f:?} checked as the pattern {p:?}"));
                }
                _ => w.add(
                    at,
                    format!("format {f:?} is not supported (date-time, email, uri); dropped"),
                ),
            }
            None
        }
    };
}
