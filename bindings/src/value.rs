//! [`Value`]: how properties and traits cross the boundary.
//!
//! Typed rather than JSON text so that integers stay integers and doubles stay doubles
//! on the way in and out (a plugin sees exactly what the app passed), and so that the
//! host layer, not a JSON encoder guessing at types, decides what is refused.

use std::collections::HashMap;

use trailhound::core::message::ValidationError;

use crate::error::TrailhoundError;

/// A JSON value. The host wrappers convert their maps, lists, strings, numbers, booleans
/// and null into it and refuse anything else.
#[derive(Debug, Clone, PartialEq, uniffi::Enum)]
pub enum Value {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool {
        /// The value.
        v: bool,
    },
    /// An integer.
    Int {
        /// The value.
        v: i64,
    },
    /// A floating-point number; must be finite.
    Double {
        /// The value.
        v: f64,
    },
    /// A string.
    Text {
        /// The value.
        v: String,
    },
    /// An array. (Not `List`: the generated Kotlin variant would shadow `kotlin.collections.List`.)
    Array {
        /// The elements.
        v: Vec<Value>,
    },
    /// An object.
    Object {
        /// The members.
        v: HashMap<String, Value>,
    },
}

/// The deepest nesting the conversion accepts, whatever the policy says: it bounds the
/// conversion's recursion (and so its stack use on the caller's thread) for hostile
/// input. The core's own limit (`max_nesting_depth`, default 12) is checked afterwards and
/// may not be set above this one.
pub const MAX_VALUE_DEPTH: usize = 128;

/// Converts one host value to JSON, as every call does with its properties and traits.
/// Refuses a NaN or an infinity ([`TrailhoundError::Invalid`] naming the path) and
/// nesting deeper than [`MAX_VALUE_DEPTH`]; never panics. Public for fuzzing and tests.
pub fn to_json(value: Value) -> Result<serde_json::Value, TrailhoundError> {
    convert(value, "value", 1).map_err(invalid)
}

/// Converts a properties or traits map to the JSON object the core receives, as
/// [`crate::TrailhoundClient::track`] does; `path` names the map in errors
/// (`properties`). Never panics. Public for fuzzing and tests.
pub fn properties_to_json(
    map: HashMap<String, Value>,
    path: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, TrailhoundError> {
    to_properties(map, path).map_err(invalid)
}

/// The core's JSON back to a value, as a plugin sees it. Total: every JSON value has a
/// [`Value`] form. Public for fuzzing and tests.
pub fn from_json(value: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match value {
        J::Null => Value::Null,
        J::Bool(v) => Value::Bool { v: *v },
        J::Number(n) => match n.as_i64() {
            Some(v) => Value::Int { v },
            // A double, or a u64 above i64::MAX (which a host cannot send: its integers
            // are i64, but a plugin could see one from elsewhere): kept by magnitude
            // rather than wrapped. serde_json always has an f64 form without
            // arbitrary_precision.
            None => Value::Double {
                v: n.as_f64().unwrap_or(f64::MAX),
            },
        },
        J::String(v) => Value::Text { v: v.clone() },
        J::Array(v) => Value::Array {
            v: v.iter().map(from_json).collect(),
        },
        J::Object(v) => Value::Object {
            v: from_properties(v),
        },
    }
}

/// The core's map back to values (for plugins).
pub(crate) fn from_properties(
    map: &serde_json::Map<String, serde_json::Value>,
) -> HashMap<String, Value> {
    map.iter().map(|(k, v)| (k.clone(), from_json(v))).collect()
}

fn invalid(e: ValidationError) -> TrailhoundError {
    trailhound::Error::from(e).into()
}

/// Converts properties to the core's map; `path` names the bad value in the error.
pub(crate) fn to_properties(
    map: HashMap<String, Value>,
    path: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, ValidationError> {
    object(map, path, 1)
}

/// An object's members, the object itself being at `depth` (a properties map is 1).
fn object(
    map: HashMap<String, Value>,
    path: &str,
    depth: usize,
) -> Result<serde_json::Map<String, serde_json::Value>, ValidationError> {
    let mut out = serde_json::Map::with_capacity(map.len());
    for (k, v) in map {
        let p = format!("{path}.{k}");
        let json = convert(v, &p, depth + 1)?;
        out.insert(k, json);
    }
    Ok(out)
}

fn convert(value: Value, path: &str, depth: usize) -> Result<serde_json::Value, ValidationError> {
    use serde_json::Value as J;
    let nested = matches!(value, Value::Array { .. } | Value::Object { .. });
    if nested && depth > MAX_VALUE_DEPTH {
        return Err(ValidationError::TooDeep {
            path: path.to_owned(),
            max: MAX_VALUE_DEPTH,
        });
    }
    Ok(match value {
        Value::Null => J::Null,
        Value::Bool { v } => J::Bool(v),
        Value::Int { v } => J::from(v),
        Value::Double { v } => match serde_json::Number::from_f64(v) {
            Some(n) => J::Number(n),
            None => {
                return Err(ValidationError::NotFinite {
                    path: path.to_owned(),
                })
            }
        },
        Value::Text { v } => J::String(v),
        Value::Array { v } => J::Array(
            v.into_iter()
                .enumerate()
                .map(|(i, e)| convert(e, &format!("{path}[{i}]"), depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object { v } => J::Object(object(v, path, depth)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind survives the trip to the core's JSON and back, integers as integers.
    #[test]
    fn round_trip() {
        let inner: HashMap<String, Value> = [
            ("n".to_owned(), Value::Null),
            (
                "l".to_owned(),
                Value::Array {
                    v: vec![Value::Int { v: -3 }, Value::Double { v: 0.5 }],
                },
            ),
        ]
        .into();
        let map: HashMap<String, Value> = [
            ("b".to_owned(), Value::Bool { v: true }),
            ("i".to_owned(), Value::Int { v: i64::MAX }),
            ("d".to_owned(), Value::Double { v: 1.0 }),
            (
                "t".to_owned(),
                Value::Text {
                    v: "Nachtmusik ♪".into(),
                },
            ),
            ("m".to_owned(), Value::Object { v: inner }),
        ]
        .into();
        let json = to_properties(map.clone(), "properties").unwrap();
        assert_eq!(json["d"].to_string(), "1.0");
        assert_eq!(from_properties(&json), map);
    }

    /// A NaN deep inside is refused with its path.
    #[test]
    fn nan_is_refused_with_path() {
        let map: HashMap<String, Value> = [(
            "a".to_owned(),
            Value::Array {
                v: vec![Value::Int { v: 1 }, Value::Double { v: f64::NAN }],
            },
        )]
        .into();
        let err = to_properties(map, "properties").unwrap_err();
        assert_eq!(
            err.to_string(),
            "value at properties.a[1] is not a finite number"
        );
    }
}
