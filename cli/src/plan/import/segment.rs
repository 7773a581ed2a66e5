//! Segment Protocols tracking plans.
//!
//! Three shapes, told apart by `rules`:
//!
//! - Public API (`GET /tracking-plans/{id}` with its rules, what Typewriter 8 saves as
//!   `plan.json`): `rules` is a list of `{key, type: TRACK|IDENTIFY|GROUP|PAGE|SCREEN|COMMON,
//!   jsonSchema, version, deprecatedAt}`. `jsonSchema` describes the whole message:
//!   `properties.properties` holds the event's properties and `properties.traits` the
//!   traits. Typewriter's own copy is already unwrapped (it has `eventMetadata`, and the
//!   event's properties are `jsonSchema.properties` directly). A `{"data": {"trackingPlan":
//!   ...}}` response wrapper is accepted.
//! - Config API (Typewriter 7's `plan.json`): `rules` is `{events: [{name, description,
//!   rules, version}], identify, group, global}`, each a whole-message JSON Schema.

use std::collections::BTreeMap;

use anyhow::bail;
use serde_json::Value;
use trailhound_core::message::MessageType;
use trailhound_core::plan::event_label;
use trailhound_core::plan::model::{EventSpec, PlanFile, Schema};

use super::schema::convert;
use super::{finish, slug, Imported, Warnings};

/// Whether a `deprecatedAt` marks a rule deprecated (the API writes year 1 for "never").
fn deprecated(rule: &Value) -> bool {
    rule.get("deprecatedAt")
        .and_then(Value::as_str)
        .is_some_and(|d| !d.is_empty() && !d.starts_with("0001-"))
}

/// The part of a whole-message schema that a plan checks: `properties.<section>`, where
/// `section` is `properties` or `traits`. Warns about rules on the rest of the message.
fn section_schema(js: &Value, section: &str, at: &str, w: &mut Warnings) -> Schema {
    let Some(obj) = js.as_object() else {
        w.add(
            at,
            format!("jsonSchema {js} is not an object; any properties accepted"),
        );
        return Schema::any_object();
    };
    if obj.contains_key("eventMetadata") {
        // Typewriter's unwrapped copy: the schema is the properties' own.
        let mut inner = obj.clone();
        inner.remove("description");
        let mut s = convert(&Value::Object(inner), at, w);
        if s.types.is_none() {
            s.types = Schema::any_object().types;
        }
        return s;
    }
    let props = obj.get("properties").and_then(Value::as_object);
    for (k, v) in props.into_iter().flatten() {
        let empty = v.as_object().is_none_or(|m| {
            m.keys()
                .all(|k| matches!(k.as_str(), "type" | "id" | "$id" | "description"))
        });
        if k != section && !empty {
            w.add(
                at,
                format!("rules on the message's {k:?} are not checked by a plan; dropped"),
            );
        }
    }
    for (k, _) in obj {
        if !matches!(
            k.as_str(),
            "properties"
                | "type"
                | "required"
                | "$schema"
                | "$id"
                | "id"
                | "description"
                | "labels"
                | "title"
        ) {
            w.add(at, format!("{k}: on the whole message; dropped"));
        }
    }
    match props.and_then(|p| p.get(section)) {
        Some(s) => {
            let mut s = convert(s, &format!("{at} /{section}"), w);
            if s.types.is_none() {
                s.types = Schema::any_object().types;
            }
            s
        }
        None => Schema::any_object(),
    }
}

struct Rule<'a> {
    kind: MessageType,
    name: Option<String>,
    description: Option<String>,
    version: i64,
    schema: &'a Value,
}

fn description(rule: &Value, js: &Value) -> Option<String> {
    [rule.get("description"), js.get("description")]
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .find(|d| !d.trim().is_empty())
        .map(str::to_owned)
}

/// Converts a Segment tracking plan.
pub fn import(v: &Value) -> anyhow::Result<Imported> {
    let v = v
        .pointer("/data/trackingPlan")
        .filter(|p| p.get("rules").is_some())
        .unwrap_or(v);
    let mut w = Warnings::default();
    let str_of = |k: &str| v.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    let mut rules: Vec<Rule> = Vec::new();
    let name = match v.get("rules") {
        Some(Value::Array(list)) => {
            for (i, r) in list.iter().enumerate() {
                let key = r.get("key").and_then(Value::as_str).unwrap_or_default();
                let at = format!("rule {i} ({key:?})");
                let Some(js) = r.get("jsonSchema") else {
                    w.add(&at, "no jsonSchema; skipped".into());
                    continue;
                };
                if deprecated(r) {
                    w.add(&at, "deprecated; skipped".into());
                    continue;
                }
                let ty = r.get("type").and_then(Value::as_str).unwrap_or("TRACK");
                let kind = match ty.to_ascii_uppercase().as_str() {
                    "TRACK" => MessageType::Track,
                    "PAGE" => MessageType::Page,
                    "SCREEN" => MessageType::Screen,
                    "IDENTIFY" => MessageType::Identify,
                    "GROUP" => MessageType::Group,
                    "COMMON" => {
                        w.add(
                            &at,
                            "COMMON rules (checks on every message) are not supported; skipped"
                                .into(),
                        );
                        continue;
                    }
                    other => {
                        w.add(&at, format!("unknown rule type {other:?}; skipped"));
                        continue;
                    }
                };
                rules.push(Rule {
                    kind,
                    name: (!key.is_empty()).then(|| key.to_owned()),
                    description: description(r, js),
                    version: r.get("version").and_then(Value::as_i64).unwrap_or(1),
                    schema: js,
                });
            }
            str_of("name").or(str_of("slug")).or(str_of("id"))
        }
        Some(Value::Object(config)) => {
            let events = config.get("events").and_then(Value::as_array);
            for (i, e) in events.into_iter().flatten().enumerate() {
                let name = e.get("name").and_then(Value::as_str).unwrap_or_default();
                let Some(js) = e.get("rules") else {
                    w.add(
                        &format!("events[{i}] ({name:?})"),
                        "no rules; skipped".into(),
                    );
                    continue;
                };
                rules.push(Rule {
                    kind: MessageType::Track,
                    name: (!name.is_empty()).then(|| name.to_owned()),
                    description: description(e, js),
                    version: e.get("version").and_then(Value::as_i64).unwrap_or(1),
                    schema: js,
                });
            }
            for (k, kind) in [
                ("identify", MessageType::Identify),
                ("group", MessageType::Group),
            ] {
                if let Some(js) = config.get(k).filter(|j| !j.is_null()) {
                    rules.push(Rule {
                        kind,
                        name: None,
                        description: description(&Value::Null, js),
                        version: 1,
                        schema: js,
                    });
                }
            }
            if config.get("global").is_some_and(|g| !g.is_null()) {
                w.add(
                    "rules.global",
                    "rules on every message (context...) are not supported; skipped".into(),
                );
            }
            str_of("display_name").or(str_of("name"))
        }
        _ => bail!(
            "not a Segment tracking plan: expected \"rules\", a list of rules (Public API, \
             Typewriter 8) or an object with \"events\" (Config API, Typewriter 7)"
        ),
    };

    // One rule per event: the highest version.
    let mut latest: BTreeMap<(MessageType, Option<String>), usize> = BTreeMap::new();
    for (i, r) in rules.iter().enumerate() {
        let key = (r.kind, r.name.clone());
        match latest.get(&key) {
            Some(&j) if rules[j].version >= r.version => {
                let label = event_label(r.kind, r.name.as_deref());
                w.add(
                    &label,
                    format!(
                        "version {} skipped: version {} is kept",
                        r.version, rules[j].version
                    ),
                );
            }
            Some(&j) => {
                let label = event_label(r.kind, r.name.as_deref());
                w.add(
                    &label,
                    format!(
                        "version {} skipped: version {} is kept",
                        rules[j].version, r.version
                    ),
                );
                latest.insert(key, i);
            }
            None => {
                latest.insert(key, i);
            }
        }
    }
    let mut events = Vec::new();
    for (i, r) in rules.iter().enumerate() {
        if latest.get(&(r.kind, r.name.clone())) != Some(&i) {
            continue;
        }
        let label = event_label(r.kind, r.name.as_deref());
        let (name, section) = match r.kind {
            // The key of an identify or group rule names nothing on the wire.
            MessageType::Identify | MessageType::Group => (None, "traits"),
            _ => {
                if r.name.is_none() {
                    w.add(&label, "an event without a name; skipped".into());
                    continue;
                }
                (r.name.clone(), "properties")
            }
        };
        let label = event_label(r.kind, name.as_deref());
        events.push(EventSpec {
            kind: r.kind,
            name,
            description: r.description.clone(),
            schema: section_schema(r.schema, section, &label, &mut w),
        });
    }
    let display = name.unwrap_or("imported");
    let file =
        PlanFile {
            plan: slug(display),
            version: "1-0-0".to_owned(),
            description: Some(str_of("description").map(str::to_owned).unwrap_or_else(|| {
                format!("Imported from the Segment tracking plan {display:?}.")
            })),
            allow_unplanned_events: false,
            naming: Default::default(),
            events,
        };
    finish(file, w)
}
