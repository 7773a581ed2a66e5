//! Lint: what a plan means, checked off the device (`trailhound plan lint`, which `plan
//! check`, `diff`, `import`, `codegen` and `collect --plan` run too). The SDKs check only
//! a plan's structure (`super::compile`): the checks below would add their code to every
//! app for plans that CI has already refused. Built with the `lint` feature.
//!
//! What lint refuses, beyond what the device refuses:
//!
//! - a `version` that is not SchemaVer (`\d+-\d+-\d+`), an empty plan id;
//! - an event schema that is not `"type": "object"`;
//! - an empty `type` list or one naming a type twice;
//! - bounds that no value meets: `minimum > maximum`, `minLength > maxLength`,
//!   `minItems > maxItems`, exclusive bounds that leave nothing between them, and for an
//!   `integer`-only schema bounds with no integer between them;
//! - keywords that cannot apply to the declared type(s): `minLength` on an integer,
//!   `items` on a string, `properties` on a number;
//! - `enum` empty, listing a value twice or a value the `type` does not allow, or a value
//!   that breaks the schema's other keywords; `const` that breaks the schema's own
//!   keywords; `required` names absent from `properties` when
//!   `additionalProperties` is false, or listed twice;
//! - planned event and property names that break the plan's own naming convention.

use serde_json::Value;

use super::check::{self, describe, values_equal, Path};
use super::compile::{err, json_type_name, type_bit, type_text, Compiled, Extra, Node, TypeSet};
use super::formats;
use super::model::{Additional, Case, JsonType, PlanFile, Schema, Types};
use super::{PlanError, Rule, Violation};
use crate::MessageType;

const NUMERIC: TypeSet = 2 | 4;

/// Three non-empty runs of ASCII digits joined by `-` (by bytes: no split or Vec).
fn is_schemaver(v: &str) -> bool {
    let (mut dashes, mut run) = (0, 0);
    for c in v.bytes() {
        match c {
            b'0'..=b'9' => run += 1,
            b'-' if run > 0 => {
                dashes += 1;
                run = 0;
            }
            _ => return false,
        }
    }
    dashes == 2 && run > 0
}

/// Lints a plan file that compiled into `compiled`.
pub(crate) fn lint(file: &PlanFile, compiled: &Compiled) -> Result<(), PlanError> {
    if file.plan.trim().is_empty() {
        return Err(err("/plan", "the plan id is empty"));
    }
    if !is_schemaver(&file.version) {
        return Err(err(
            "/version",
            format!(
                "version {:?} is not SchemaVer MODEL-REVISION-ADDITION (such as 1-0-0)",
                file.version
            ),
        ));
    }
    for (i, ev) in file.events.iter().enumerate() {
        let at = format!("/events/{i}");
        if let (Some(case), Some(name)) = (file.naming.events, &ev.name) {
            if !formats::follows(case, name) {
                return Err(err(
                    format!("{at}/name"),
                    format!(
                        "event name {name:?} breaks the plan's naming convention {}",
                        formats::case_name(case)
                    ),
                ));
            }
        }
        let schema_at = format!("{at}/schema");
        if ev.schema.types.as_ref().map(Types::as_slice) != Some(&[JsonType::Object][..]) {
            return Err(err(
                format!("{schema_at}/type"),
                "an event's schema must have \"type\": \"object\" (its properties or traits)",
            ));
        }
        // Compile refused duplicates, so the entry is this event's.
        let entry = compiled
            .lookup(ev.kind, ev.name.as_deref())
            .expect("a compiled plan has every event of its file");
        node(
            &ev.schema,
            &entry.schema,
            &schema_at,
            file.naming.properties,
        )?;
    }
    Ok(())
}

fn naming_error(at: String, name: &str, case: Case) -> PlanError {
    err(
        at,
        format!(
            "property name {name:?} breaks the plan's naming convention {}",
            formats::case_name(case)
        ),
    )
}

/// Lints one schema `s` and those under it; `n` is its compiled form (the enum and
/// const values are checked by the checks themselves).
fn node(s: &Schema, n: &Node, at: &str, naming: Option<Case>) -> Result<(), PlanError> {
    let type_list = &n.type_names;
    let types = n.types;
    if let Some(t) = &s.types {
        if t.as_slice().is_empty() {
            return Err(err(format!("{at}/type"), "the type list is empty"));
        }
        let mut seen: TypeSet = 0;
        for jt in t.as_slice() {
            if seen & type_bit(*jt) != 0 {
                return Err(err(
                    format!("{at}/type"),
                    format!("type {} is listed twice", json_type_name(*jt)),
                ));
            }
            seen |= type_bit(*jt);
        }
    }
    let declared = |mask: TypeSet| types == 0 || types & mask != 0;
    // Keywords that cannot apply to the declared type(s): one table, one loop.
    const STRING: TypeSet = 1;
    const ARRAY: TypeSet = 32;
    const OBJECT: TypeSet = 16;
    let keywords = [
        ("minimum", s.minimum.is_some(), NUMERIC),
        ("maximum", s.maximum.is_some(), NUMERIC),
        ("exclusiveMinimum", s.exclusive_minimum.is_some(), NUMERIC),
        ("exclusiveMaximum", s.exclusive_maximum.is_some(), NUMERIC),
        ("minLength", s.min_length.is_some(), STRING),
        ("maxLength", s.max_length.is_some(), STRING),
        ("pattern", s.pattern.is_some(), STRING),
        ("format", s.format.is_some(), STRING),
        ("items", s.items.is_some(), ARRAY),
        ("minItems", s.min_items.is_some(), ARRAY),
        ("maxItems", s.max_items.is_some(), ARRAY),
        ("properties", !s.properties.is_empty(), OBJECT),
        ("required", !s.required.is_empty(), OBJECT),
        (
            "additionalProperties",
            s.additional_properties.is_some(),
            OBJECT,
        ),
    ];
    for (kw, present, mask) in keywords {
        if present && !declared(mask) {
            let what = match mask {
                NUMERIC => "number",
                STRING => "string",
                ARRAY => "array",
                _ => "object",
            };
            return Err(err(
                format!("{at}/{kw}"),
                format!(
                    "{kw} applies to {what} values, and this schema's type is {}",
                    type_text(type_list)
                ),
            ));
        }
    }
    // Bounds no value meets.
    let pairs = [
        ("minimum", s.minimum, "maximum", s.maximum, false),
        (
            "exclusiveMinimum",
            s.exclusive_minimum,
            "maximum",
            s.maximum,
            true,
        ),
        (
            "minimum",
            s.minimum,
            "exclusiveMaximum",
            s.exclusive_maximum,
            true,
        ),
        (
            "exclusiveMinimum",
            s.exclusive_minimum,
            "exclusiveMaximum",
            s.exclusive_maximum,
            true,
        ),
    ];
    for (lo_kw, lo, hi_kw, hi, strict) in pairs {
        if let (Some(lo), Some(hi)) = (lo, hi) {
            if lo > hi || (strict && lo >= hi) {
                return Err(err(
                    format!("{at}/{lo_kw}"),
                    format!("{lo_kw} {lo} leaves no number below {hi_kw} {hi}"),
                ));
            }
        }
    }
    if types & type_bit(JsonType::Number) == 0 && types & type_bit(JsonType::Integer) != 0 {
        let lo = [
            s.minimum.map(f64::ceil),
            s.exclusive_minimum.map(|x| x.floor() + 1.0),
        ]
        .into_iter()
        .flatten()
        .fold(f64::NEG_INFINITY, f64::max);
        let hi = [
            s.maximum.map(f64::floor),
            s.exclusive_maximum.map(|x| x.ceil() - 1.0),
        ]
        .into_iter()
        .flatten()
        .fold(f64::INFINITY, f64::min);
        if lo > hi {
            return Err(err(
                at,
                format!("no integer is within the bounds (from {lo} to {hi})"),
            ));
        }
    }
    let counts = [
        ("minLength", s.min_length, "maxLength", s.max_length),
        ("minItems", s.min_items, "maxItems", s.max_items),
    ];
    for (lo_kw, lo, hi_kw, hi) in counts {
        if let (Some(lo), Some(hi)) = (lo, hi) {
            if lo > hi {
                return Err(err(
                    format!("{at}/{lo_kw}"),
                    format!("{lo_kw} {lo} is greater than {hi_kw} {hi}"),
                ));
            }
        }
    }
    // enum
    if let Some(values) = &s.enum_values {
        if values.is_empty() {
            return Err(err(format!("{at}/enum"), "enum is empty: no value passes"));
        }
        for (i, v) in values.iter().enumerate() {
            if !check::type_matches(types, v) {
                return Err(err(
                    format!("{at}/enum/{i}"),
                    format!(
                        "enum value {} is not of the schema's type {}",
                        describe(v),
                        type_text(type_list)
                    ),
                ));
            }
            if values[..i].iter().any(|w| values_equal(v, w)) {
                return Err(err(
                    format!("{at}/enum/{i}"),
                    format!("enum value {} is listed twice", describe(v)),
                ));
            }
        }
    }
    // required
    let no_extra = matches!(s.additional_properties, Some(Additional::Allowed(false)));
    for (i, name) in s.required.iter().enumerate() {
        if no_extra && !s.properties.contains_key(name) {
            return Err(err(
                format!("{at}/required/{i}"),
                format!(
                    "required property {name:?} is not in properties, and \
                     additionalProperties is false: no event passes"
                ),
            ));
        }
        if s.required[..i].contains(name) {
            return Err(err(
                format!("{at}/required/{i}"),
                format!("required property {name:?} is listed twice"),
            ));
        }
        if let Some(case) = naming {
            if !formats::follows(case, name) {
                return Err(naming_error(format!("{at}/required/{i}"), name, case));
            }
        }
    }
    // children (compiled in the same order: the model's BTreeMap order)
    for ((name, sub), (_, sub_node)) in s.properties.iter().zip(&n.properties) {
        let sub_at = format!("{at}/properties/{}", super::escape_token(name));
        if let Some(case) = naming {
            if !formats::follows(case, name) {
                return Err(naming_error(sub_at, name, case));
            }
        }
        node(sub, sub_node, &sub_at, naming)?;
    }
    if let (Some(sub), Some(sub_node)) = (&s.items, &n.items) {
        node(sub, sub_node, &format!("{at}/items"), naming)?;
    }
    if let (Some(Additional::Schema(sub)), Extra::Schema(sub_node)) =
        (&s.additional_properties, &n.additional)
    {
        node(sub, sub_node, &format!("{at}/additionalProperties"), naming)?;
    }
    // enum: every value must pass the schema's other keywords (else it is dead). `const`
    // is the const check's below, as it was before the node had one.
    for (i, v) in n.enum_values.iter().flatten().enumerate() {
        if let Some(broken) = self_check(n, v, Some(Rule::Const)) {
            return Err(err(
                format!("{at}/enum/{i}"),
                format!(
                    "enum value {} breaks the schema's own {} (expected {}): no event \
                     can send it",
                    describe(v),
                    broken.rule.as_str(),
                    broken.expected
                ),
            ));
        }
    }
    // const: must pass the schema's other keywords.
    if let Some(c) = &n.const_value {
        if let Some(v) = self_check(n, c, None) {
            return Err(err(
                format!("{at}/const"),
                format!(
                    "const {} breaks the schema's own {} (expected {})",
                    describe(c),
                    v.rule.as_str(),
                    v.expected
                ),
            ));
        }
    }
    Ok(())
}

/// The first rule other than `skip` that a value breaks in the schema it is written in.
fn self_check(n: &Node, v: &Value, skip: Option<Rule>) -> Option<Violation> {
    let mut violations: Vec<Violation> = Vec::new();
    check::check_value(
        &check::Ctx::new(MessageType::Track, None),
        n,
        v,
        &Path::Root(""),
        &mut violations,
    );
    violations.into_iter().find(|b| Some(b.rule) != skip)
}

#[cfg(test)]
mod tests {
    use super::is_schemaver;

    /// SchemaVer is exactly three non-empty runs of ASCII digits joined by single dashes.
    #[test]
    fn schemaver_accepts_three_digit_runs_only() {
        for ok in ["1-0-0", "10-20-300", "0-0-0"] {
            assert!(is_schemaver(ok), "{ok}");
        }
        for bad in [
            "", "1-0", "1-0-0-0", "-1-0", "1--0", "1-0-", "1.0.0", "a-0-0", "1-0-0 ", "١-0-0",
        ] {
            assert!(!is_schemaver(bad), "{bad:?}");
        }
    }
}
