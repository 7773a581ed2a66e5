//! The checks of one message against the compiled plan.
//!
//! - Lookup: `track` by `event`, `screen`/`page` by `name`; `identify`/`group` by the
//!   plan's single entry of that type (none: their traits are not checked against a
//!   schema); `alias` is never checked, and neither is a wire event of an unknown type.
//!   A `track`, `screen` or `page` event that is not planned is an `unplanned_event`
//!   (pointer `/event` or `/name`) unless the plan allows unplanned events.
//! - Naming conventions apply to every checked event, planned or not: the event or
//!   screen name (`event_name`, `/event` or `/name`; an absent name is not checked) and
//!   every property or trait name at every depth, inside arrays too (`property_name`,
//!   the property's pointer). Values nested deeper than [`MAX_VALUE_DEPTH`] are not
//!   walked for names.
//! - Pointers are RFC 6901 pointers into the wire message (`/properties/price`,
//!   `/traits/address/city`, `/properties/tags/1`, `~` and `/` escaped). A missing
//!   required property is reported at the pointer it would have.
//! - A value of the wrong `type` gets only the `type` violation: the value's other
//!   keywords would only repeat it. Otherwise every keyword is checked and each one broken
//!   is reported: `enum`, `const`, the numeric bounds (on numbers), the string keywords
//!   (on strings: lengths in Unicode code points, `pattern` unanchored, `format`), the
//!   array keywords (on arrays; `items` for every element) and the object keywords (on
//!   objects: `required`, `properties`, `additionalProperties`).
//! - `integer` is a number with no fractional part (`1.0` is one, `1.5` is not). Numbers
//!   are compared as `f64`, in bounds and in `enum`/`const` (`1` equals `1.0`).
//! - Absent or `null` `properties`/`traits` count as an empty object (a [`crate::Message`]
//!   reads `null` as absent too); anything else that is not an object breaks the event
//!   schema's `type`.
//! - The result is sorted by (pointer, rule) (pointers bytewise, rules in [`Rule`]'s
//!   declaration order, the order of [`super::ALL_RULES`]), so that every platform and
//!   build gives the same list whatever order its JSON objects keep.
//! - An event that passes allocates nothing: the pointer is a chain of borrowed segments
//!   on the stack, turned into a string only for a violation, and events are looked up by
//!   `&str`. (The built-in engine builds a pattern's match cache on its first use on a
//!   thread; that is once per pattern and thread, not per event.)

use serde_json::{Map, Number, Value};

use super::compile::{type_bit, type_text, Compiled, EventNode, Extra, Node, TypeSet};
use super::formats;
use super::model::{Case, JsonType};
use super::{event_label, Rule, Violation};
use crate::MessageType;

/// How deep the naming walk goes into values.
pub const MAX_VALUE_DEPTH: usize = 128;

/// A JSON pointer under construction: borrowed segments, rendered only when needed.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Path<'a> {
    /// The start: `/properties`, `/traits`, `/event`, `/name` or `""`.
    Root(&'static str),
    /// A property of the parent.
    Key(&'a Path<'a>, &'a str),
    /// An element of the parent.
    Index(&'a Path<'a>, usize),
}

impl Path<'_> {
    fn render_into(&self, out: &mut String) {
        match self {
            Path::Root(r) => out.push_str(r),
            Path::Key(parent, key) => {
                parent.render_into(out);
                out.push('/');
                for c in key.chars() {
                    match c {
                        '~' => out.push_str("~0"),
                        '/' => out.push_str("~1"),
                        c => out.push(c),
                    }
                }
            }
            Path::Index(parent, i) => {
                parent.render_into(out);
                out.push('/');
                out.push_str(&i.to_string());
            }
        }
    }

    /// The pointer as a string.
    pub fn render(&self) -> String {
        let mut s = String::new();
        self.render_into(&mut s);
        s
    }
}

/// The event being checked, for the violations' `event`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ctx<'a> {
    kind: MessageType,
    name: Option<&'a str>,
}

impl<'a> Ctx<'a> {
    pub fn new(kind: MessageType, name: Option<&'a str>) -> Self {
        Ctx { kind, name }
    }

    fn push(
        &self,
        out: &mut Vec<Violation>,
        rule: Rule,
        path: &Path<'_>,
        expected: String,
        found: String,
    ) {
        out.push(Violation {
            event: event_label(self.kind, self.name),
            rule,
            pointer: path.render(),
            expected,
            found,
        });
    }
}

/// What a message holds for the plan: its kind, name and properties or traits.
pub(crate) enum Body<'a> {
    /// Absent: an empty object.
    Absent,
    /// An object (a [`crate::Message`]'s properties or traits).
    Map(&'a Map<String, Value>),
    /// Whatever the wire event had.
    Value(&'a Value),
}

/// Checks one event. `root` is `/properties` or `/traits`.
pub(crate) fn check_event(
    plan: &Compiled,
    kind: MessageType,
    name: Option<&str>,
    root: &'static str,
    body: Body<'_>,
) -> Vec<Violation> {
    let mut out = Vec::new();
    if kind == MessageType::Alias {
        return out;
    }
    let ctx = Ctx::new(kind, name);
    let named = matches!(
        kind,
        MessageType::Track | MessageType::Screen | MessageType::Page
    );
    let name_ptr = if kind == MessageType::Track {
        "/event"
    } else {
        "/name"
    };
    if named {
        if let (Some(case), Some(n)) = (plan.naming.events, name) {
            if !formats::follows(case, n) {
                ctx.push(
                    &mut out,
                    Rule::EventName,
                    &Path::Root(name_ptr),
                    formats::case_name(case).to_owned(),
                    quoted(n),
                );
            }
        }
    }
    let path = Path::Root(root);
    if let Some(case) = plan.naming.properties {
        match body {
            Body::Absent => {}
            Body::Map(m) => names_in_map(&ctx, case, m, &path, 0, &mut out),
            Body::Value(v) => names_in_value(&ctx, case, v, &path, 0, &mut out),
        }
    }
    let entry: Option<&EventNode> = plan.lookup(kind, name);
    match entry {
        Some(entry) => match body {
            Body::Absent => {
                let empty = Map::new();
                check_object(&ctx, &entry.schema, &empty, &path, &mut out);
            }
            Body::Map(m) => check_object(&ctx, &entry.schema, m, &path, &mut out),
            Body::Value(v) => check_value(&ctx, &entry.schema, v, &path, &mut out),
        },
        None if named && !plan.allow_unplanned => ctx.push(
            &mut out,
            Rule::UnplannedEvent,
            &Path::Root(name_ptr),
            "an event in the plan".to_owned(),
            match name {
                Some(n) => quoted(n),
                None => "no name".to_owned(),
            },
        ),
        None => {}
    }
    if out.len() > 1 {
        heap_sort(&mut out, |a, b| (&a.pointer, a.rule) < (&b.pointer, b.rule));
    }
    out
}

/// Sorts `v` by `less` in O(n log n): the validator's only sort, small in code (the
/// standard library's sorts are several KB per element type in the mobile library). Not
/// stable; the validator sorts only items with unique keys.
pub(crate) fn heap_sort<T>(v: &mut [T], less: impl Fn(&T, &T) -> bool) {
    fn sift_down<T>(v: &mut [T], mut root: usize, end: usize, less: &impl Fn(&T, &T) -> bool) {
        loop {
            let mut child = 2 * root + 1;
            if child >= end {
                return;
            }
            if child + 1 < end && less(&v[child], &v[child + 1]) {
                child += 1;
            }
            if !less(&v[root], &v[child]) {
                return;
            }
            v.swap(root, child);
            root = child;
        }
    }
    let n = v.len();
    for start in (0..n / 2).rev() {
        sift_down(v, start, n, &less);
    }
    for end in (1..n).rev() {
        v.swap(0, end);
        sift_down(v, 0, end, &less);
    }
}

/// `items` joined by `sep`.
pub(crate) fn join(items: impl IntoIterator<Item = String>, sep: &str) -> String {
    let mut out = String::new();
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push_str(sep);
        }
        out.push_str(&item);
    }
    out
}

fn names_in_map(
    ctx: &Ctx<'_>,
    case: Case,
    map: &Map<String, Value>,
    path: &Path<'_>,
    depth: usize,
    out: &mut Vec<Violation>,
) {
    for (k, v) in map {
        let p = Path::Key(path, k);
        if !formats::follows(case, k) {
            ctx.push(
                out,
                Rule::PropertyName,
                &p,
                formats::case_name(case).to_owned(),
                quoted(k),
            );
        }
        names_in_value(ctx, case, v, &p, depth + 1, out);
    }
}

fn names_in_value(
    ctx: &Ctx<'_>,
    case: Case,
    v: &Value,
    path: &Path<'_>,
    depth: usize,
    out: &mut Vec<Violation>,
) {
    if depth > MAX_VALUE_DEPTH {
        return;
    }
    match v {
        Value::Object(m) => names_in_map(ctx, case, m, path, depth, out),
        Value::Array(a) => {
            for (i, e) in a.iter().enumerate() {
                names_in_value(ctx, case, e, &Path::Index(path, i), depth + 1, out);
            }
        }
        _ => {}
    }
}

fn is_integer(n: &Number) -> bool {
    n.is_i64()
        || n.is_u64()
        || n.as_f64()
            .is_some_and(|f| f.is_finite() && f.fract() == 0.0)
}

/// Whether `v` is of one of the types in `types` (`0`: any).
pub(crate) fn type_matches(types: TypeSet, v: &Value) -> bool {
    if types == 0 {
        return true;
    }
    let bit = |t: JsonType| types & type_bit(t) != 0;
    match v {
        Value::Null => bit(JsonType::Null),
        Value::Bool(_) => bit(JsonType::Boolean),
        Value::Number(n) => bit(JsonType::Number) || (bit(JsonType::Integer) && is_integer(n)),
        Value::String(_) => bit(JsonType::String),
        Value::Array(_) => bit(JsonType::Array),
        Value::Object(_) => bit(JsonType::Object),
    }
}

/// JSON equality with numbers compared as `f64` (`1` equals `1.0`).
pub(crate) fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| values_equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, a)| y.get(k).is_some_and(|b| values_equal(a, b)))
        }
        _ => a == b,
    }
}

fn quoted(s: &str) -> String {
    const MAX: usize = 40;
    match s.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{:?}…", &s[..cut]),
        None => format!("{s:?}"),
    }
}

/// A value for people: `string "12"`, `integer 3`, `number 1.5`, `true`, `null`,
/// `object`, `array of 2`.
pub(crate) fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) if is_integer(n) => format!("integer {n}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => format!("string {}", quoted(s)),
        Value::Array(a) => format!("array of {}", a.len()),
        Value::Object(_) => "object".to_owned(),
    }
}

fn compact(v: &Value) -> String {
    // serde_json::to_string rather than Display (`v.to_string()`): Display instantiates
    // the serializer twice more (compact and `{:#}` pretty, over a fmt::Write adapter),
    // while to_string's is already in every build. Serialising a Value cannot fail.
    let s = serde_json::to_string(v).unwrap_or_default();
    match s.char_indices().nth(80) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s,
    }
}

/// Checks `v` against `node`, at `path`.
pub(crate) fn check_value(
    ctx: &Ctx<'_>,
    node: &Node,
    v: &Value,
    path: &Path<'_>,
    out: &mut Vec<Violation>,
) {
    if !type_matches(node.types, v) {
        ctx.push(
            out,
            Rule::Type,
            path,
            type_text(&node.type_names),
            describe(v),
        );
        return;
    }
    if let Some(values) = &node.enum_values {
        if !values.iter().any(|e| values_equal(e, v)) {
            ctx.push(
                out,
                Rule::Enum,
                path,
                format!("one of [{}]", join(values.iter().map(compact), ", ")),
                describe(v),
            );
        }
    }
    if let Some(c) = &node.const_value {
        if !values_equal(c, v) {
            ctx.push(out, Rule::Const, path, compact(c), describe(v));
        }
    }
    match v {
        Value::Number(n) => check_number(ctx, node, n, path, out),
        Value::String(s) => check_string(ctx, node, s, path, out),
        Value::Array(a) => check_array(ctx, node, a, path, out),
        Value::Object(m) => check_object(ctx, node, m, path, out),
        Value::Null | Value::Bool(_) => {}
    }
}

fn check_number(ctx: &Ctx<'_>, node: &Node, n: &Number, path: &Path<'_>, out: &mut Vec<Violation>) {
    let Some(x) = n.as_f64() else { return };
    let found = || n.to_string();
    if let Some(m) = node.minimum {
        if x < m {
            ctx.push(out, Rule::Minimum, path, format!(">= {m}"), found());
        }
    }
    if let Some(m) = node.maximum {
        if x > m {
            ctx.push(out, Rule::Maximum, path, format!("<= {m}"), found());
        }
    }
    if let Some(m) = node.exclusive_minimum {
        if x <= m {
            ctx.push(out, Rule::ExclusiveMinimum, path, format!("> {m}"), found());
        }
    }
    if let Some(m) = node.exclusive_maximum {
        if x >= m {
            ctx.push(out, Rule::ExclusiveMaximum, path, format!("< {m}"), found());
        }
    }
}

fn check_string(ctx: &Ctx<'_>, node: &Node, s: &str, path: &Path<'_>, out: &mut Vec<Violation>) {
    if node.min_length.is_some() || node.max_length.is_some() {
        let len = s.chars().count() as u64;
        if let Some(m) = node.min_length {
            if len < m {
                ctx.push(
                    out,
                    Rule::MinLength,
                    path,
                    format!("at least {m} characters"),
                    format!("{len} characters"),
                );
            }
        }
        if let Some(m) = node.max_length {
            if len > m {
                ctx.push(
                    out,
                    Rule::MaxLength,
                    path,
                    format!("at most {m} characters"),
                    format!("{len} characters"),
                );
            }
        }
    }
    if let Some((src, re)) = &node.pattern {
        if !re.is_match(s) {
            ctx.push(
                out,
                Rule::Pattern,
                path,
                format!("matches /{src}/"),
                format!("string {}", quoted(s)),
            );
        }
    }
    if let Some(f) = node.format {
        if !formats::is_valid(f, s) {
            ctx.push(
                out,
                Rule::Format,
                path,
                formats::format_name(f).to_owned(),
                format!("string {}", quoted(s)),
            );
        }
    }
}

fn check_array(ctx: &Ctx<'_>, node: &Node, a: &[Value], path: &Path<'_>, out: &mut Vec<Violation>) {
    let len = a.len() as u64;
    if let Some(m) = node.min_items {
        if len < m {
            ctx.push(
                out,
                Rule::MinItems,
                path,
                format!("at least {m} items"),
                format!("{len} items"),
            );
        }
    }
    if let Some(m) = node.max_items {
        if len > m {
            ctx.push(
                out,
                Rule::MaxItems,
                path,
                format!("at most {m} items"),
                format!("{len} items"),
            );
        }
    }
    if let Some(items) = &node.items {
        for (i, e) in a.iter().enumerate() {
            check_value(ctx, items, e, &Path::Index(path, i), out);
        }
    }
}

pub(crate) fn check_object(
    ctx: &Ctx<'_>,
    node: &Node,
    m: &Map<String, Value>,
    path: &Path<'_>,
    out: &mut Vec<Violation>,
) {
    for name in &node.required {
        if !m.contains_key(name) {
            ctx.push(
                out,
                Rule::Required,
                &Path::Key(path, name),
                "present".to_owned(),
                "absent".to_owned(),
            );
        }
    }
    for (k, v) in m {
        let p = Path::Key(path, k);
        match node.property(k) {
            Some(sub) => check_value(ctx, sub, v, &p, out),
            None => match &node.additional {
                Extra::Any => {}
                Extra::None => ctx.push(
                    out,
                    Rule::AdditionalProperties,
                    &p,
                    "no such property (additionalProperties is false)".to_owned(),
                    describe(v),
                ),
                Extra::Schema(sub) => check_value(ctx, sub, v, &p, out),
            },
        }
    }
}

/// Removes what `additionalProperties: false` refuses from `m`, at every depth; pushes
/// the removed properties' pointers.
pub(crate) fn strip_object(
    node: &Node,
    m: &mut Map<String, Value>,
    path: &Path<'_>,
    out: &mut Vec<String>,
) {
    if matches!(node.additional, Extra::None) && m.keys().any(|k| node.property(k).is_none()) {
        // Rebuilt rather than removed from: Map::insert is in every build already.
        for (k, v) in std::mem::take(m) {
            if node.property(&k).is_some() {
                m.insert(k, v);
            } else {
                out.push(Path::Key(path, &k).render());
            }
        }
    }
    for (k, v) in m.iter_mut() {
        let sub = match node.property(k) {
            Some(sub) => sub,
            None => match &node.additional {
                Extra::Schema(sub) => sub,
                _ => continue,
            },
        };
        strip_value(sub, v, &Path::Key(path, k), out);
    }
}

fn strip_value(node: &Node, v: &mut Value, path: &Path<'_>, out: &mut Vec<String>) {
    if !type_matches(node.types, v) {
        return;
    }
    match v {
        Value::Object(m) => strip_object(node, m, path, out),
        Value::Array(a) => {
            if let Some(items) = &node.items {
                for (i, e) in a.iter_mut().enumerate() {
                    strip_value(items, e, &Path::Index(path, i), out);
                }
            }
        }
        _ => {}
    }
}
