//! Helpers shared by the fuzz targets: JSON values built from fuzzer bytes, and an
//! independent measure of nesting.
//!
//! A [`Json`] tree is `Arbitrary`, so that the fuzzer mutates the structure of properties
//! (kinds, keys, depth) rather than JSON text that mostly fails to parse. `Wrap` nests a
//! value in many containers at once, so that deep inputs are reached without a byte per
//! level.

use arbitrary::{Arbitrary, Result, Unstructured};
use serde_json::{Map, Value};

/// Deepest `Wrap` the generator makes: far beyond any policy's nesting limit (the core's
/// default is 12), well within the fuzzer thread's stack.
pub const MAX_WRAP: usize = 200;

/// Which call a target makes: the six of the Segment spec (an identify with or without a
/// user id).
#[derive(Debug, Arbitrary)]
pub enum CallKind {
    Track,
    Identify { anonymous: bool },
    Screen,
    Page,
    Group,
    Alias,
}

/// A JSON value as the fuzzer builds it.
#[derive(Debug, Clone)]
pub enum Json {
    /// `null`.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// An unsigned integer (above `i64::MAX` when the fuzzer picks so).
    UInt(u64),
    /// A float; NaN and infinities have no JSON form and become `null` in [`Json::to_value`].
    Float(f64),
    /// A string.
    Str(String),
    /// An array.
    Array(Vec<Json>),
    /// An object.
    Object(Vec<(String, Json)>),
    /// `depth` arrays (or objects, keyed `key`) around a value.
    Wrap {
        /// How many levels.
        depth: usize,
        /// Objects instead of arrays.
        objects: bool,
        /// The key of each object level.
        key: String,
        /// The innermost value.
        inner: Box<Json>,
    },
}

impl<'a> Arbitrary<'a> for Json {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Json::arbitrary_depth(u, 0)
    }
}

impl Json {
    fn arbitrary_depth(u: &mut Unstructured<'_>, depth: u32) -> Result<Self> {
        // Containers get rarer with depth so that trees stay small; Wrap makes depth cheap.
        let kinds = if depth >= 6 || u.is_empty() { 6 } else { 9 };
        Ok(match u.choose_index(kinds)? {
            0 => Json::Null,
            1 => Json::Bool(u.arbitrary()?),
            2 => Json::Int(u.arbitrary()?),
            3 => Json::UInt(u.arbitrary()?),
            4 => Json::Float(u.arbitrary()?),
            5 => Json::Str(u.arbitrary()?),
            6 => {
                let n = u.int_in_range(0..=4)?;
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(Json::arbitrary_depth(u, depth + 1)?);
                }
                Json::Array(v)
            }
            7 => {
                let n = u.int_in_range(0..=4)?;
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push((u.arbitrary()?, Json::arbitrary_depth(u, depth + 1)?));
                }
                Json::Object(v)
            }
            _ => Json::Wrap {
                depth: u.int_in_range(1..=MAX_WRAP)?,
                objects: u.arbitrary()?,
                key: u.arbitrary()?,
                inner: Box::new(Json::arbitrary_depth(u, depth + 1)?),
            },
        })
    }

    /// The serde_json value (non-finite floats become `null`: JSON cannot carry them, and
    /// serde_json's `Value` cannot hold them).
    pub fn to_value(&self) -> Value {
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Int(i) => Value::from(*i),
            Json::UInt(i) => Value::from(*i),
            Json::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Json::Str(s) => Value::String(s.clone()),
            Json::Array(v) => Value::Array(v.iter().map(Json::to_value).collect()),
            Json::Object(v) => Value::Object(
                v.iter()
                    .map(|(k, j)| (k.clone(), j.to_value()))
                    .collect::<Map<_, _>>(),
            ),
            Json::Wrap {
                depth,
                objects,
                key,
                inner,
            } => {
                let mut v = inner.to_value();
                for _ in 0..*depth {
                    v = if *objects {
                        let mut m = Map::new();
                        m.insert(key.clone(), v);
                        Value::Object(m)
                    } else {
                        Value::Array(vec![v])
                    };
                }
                v
            }
        }
    }
}

/// Properties from the fuzzer: a built tree, or raw bytes parsed as JSON (what a host
/// that hands over JSON text sends).
#[derive(Debug, Clone, Arbitrary)]
pub enum Props {
    /// Members built from a tree.
    Tree(Vec<(String, Json)>),
    /// Bytes that may or may not be a JSON object.
    Raw(Vec<u8>),
}

impl Props {
    /// The properties map, or `None` when the raw bytes are not a JSON object.
    pub fn to_map(&self) -> Option<Map<String, Value>> {
        match self {
            Props::Tree(members) => Some(
                members
                    .iter()
                    .map(|(k, j)| (k.clone(), j.to_value()))
                    .collect(),
            ),
            Props::Raw(bytes) => match serde_json::from_slice(bytes) {
                Ok(Value::Object(m)) => Some(m),
                _ => None,
            },
        }
    }
}

/// Containers on the deepest path of `v`: 0 for a scalar, 1 for `[]` or `{"a": 1}`.
/// Written here, not taken from the core, so that the targets check the core against an
/// independent count. Iterative: a deep value must not overflow the checker's stack.
pub fn nesting(v: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(v, 0usize)];
    while let Some((v, above)) = stack.pop() {
        match v {
            Value::Array(items) => {
                deepest = deepest.max(above + 1);
                stack.extend(items.iter().map(|i| (i, above + 1)));
            }
            Value::Object(map) => {
                deepest = deepest.max(above + 1);
                stack.extend(map.values().map(|i| (i, above + 1)));
            }
            _ => deepest = deepest.max(above),
        }
    }
    deepest
}

/// Equal, except that floats may differ in their last bits: serde_json parses floats
/// best-effort (the workspace does not enable its `float_roundtrip` feature), so a float
/// written and read back may come back an ULP or two off.
pub fn same_up_to_float_ulp(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value as J;
    match (a, b) {
        (J::Number(x), J::Number(y)) if x.is_f64() && y.is_f64() => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            // Both sides went through the best-effort parser: a few ULPs apart at most.
            x == y || x.to_bits().abs_diff(y.to_bits()) <= 4
        }
        (J::Array(x), J::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_up_to_float_ulp(x, y))
        }
        (J::Object(x), J::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((kx, x), (ky, y))| kx == ky && same_up_to_float_ulp(x, y))
        }
        _ => a == b,
    }
}

/// A fresh directory for a target's files: under `$TRAILHOUND_FUZZ_TMP` when set
/// (scripts/test-fuzz.sh points it at a directory it deletes afterwards, so that what a
/// crashed or aborted run leaves behind goes too), else on tmpfs (`/dev/shm`), where
/// SQLite's fsyncs cost nothing, else in `/tmp`.
pub fn tempdir() -> tempfile::TempDir {
    let base = match std::env::var_os("TRAILHOUND_FUZZ_TMP") {
        Some(dir) => std::path::PathBuf::from(dir),
        None if std::path::Path::new("/dev/shm").is_dir() => "/dev/shm".into(),
        None => std::env::temp_dir(),
    };
    tempfile::Builder::new()
        .prefix("trailhound-fuzz-")
        .tempdir_in(base)
        .expect("a temporary directory")
}
