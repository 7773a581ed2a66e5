//! RudderStack tracking plans, as rudder-cli's data catalog writes them: YAML documents
//! of `kind` `tp` (spec `rudder/0.1`, `rudder/v0.1`) or `tracking-plan` (`rudder/v1`), whose
//! rules refer to the `events`, `properties` and `custom-types` documents of the same
//! project. The importer reads every document of the files (or directories) it is given.
//!
//! References: `#/events/<group>/<id>` and `#/properties/<group>/<id>`, `#/custom-types/
//! <group>/<id>` (legacy), `#event:<id>`, `#property:<id>`, `#custom-type:<id>` (v1).
//! Property constraints are in `propConfig` (legacy, camelCase keys) or `config` (v1,
//! snake_case keys); both are JSON Schema keywords by another name, converted by
//! [`super::schema`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use serde::Deserialize as _;
use serde_json::{json, Map, Value};
use trailhound_core::message::MessageType;
use trailhound_core::plan::event_label;
use trailhound_core::plan::model::{EventSpec, PlanFile, Schema};

use super::schema::convert;
use super::{finish, Imported, Warnings};

/// How deep custom types may refer to each other (a cycle stops here, with a warning).
const MAX_DEPTH: usize = 16;

/// Every YAML file under `path` (itself, when it is a file), sorted.
fn yaml_files(path: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    if !path.is_dir() {
        out.push(path.to_owned());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| format!("{}", path.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            yaml_files(&p, out)?;
        } else if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(p);
        }
    }
    Ok(())
}

/// The documents of a project, by reference.
#[derive(Default)]
struct Catalog {
    events: HashMap<String, Value>,
    properties: HashMap<String, Value>,
    types: HashMap<String, Value>,
    /// Tracking plans: (where, spec).
    plans: Vec<(String, Value)>,
}

impl Catalog {
    /// Adds one YAML document.
    fn add(&mut self, doc: Value, at: &str, w: &mut Warnings) {
        let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
        let group = doc
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let spec = doc.get("spec").cloned().unwrap_or(Value::Null);
        let (list, legacy, v1, map) = match kind {
            "tp" | "tracking-plan" => {
                self.plans.push((at.to_owned(), spec));
                return;
            }
            "events" => ("events", "events", "event", &mut self.events),
            "properties" => ("properties", "properties", "property", &mut self.properties),
            "custom-types" => ("types", "custom-types", "custom-type", &mut self.types),
            "categories" => return,
            other => {
                w.add(
                    at,
                    format!("document kind {other:?} is not part of a tracking plan; skipped"),
                );
                return;
            }
        };
        for item in spec
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(id) = item.get("id").and_then(Value::as_str) else {
                w.add(at, format!("a {kind} entry without an id; skipped"));
                continue;
            };
            map.insert(format!("#/{legacy}/{group}/{id}"), item.clone());
            map.insert(format!("#{v1}:{id}"), item.clone());
        }
    }
}

/// The reference in a rule entry: `$ref` (legacy) or `property`/`event` (v1), or the
/// string itself.
fn reference<'a>(entry: &'a Value, v1_key: &str) -> Option<&'a str> {
    match entry {
        Value::String(s) => Some(s),
        _ => entry
            .get("$ref")
            .or_else(|| entry.get(v1_key))
            .and_then(Value::as_str),
    }
}

/// JSON Schema's name for a RudderStack config key (v1 writes them in snake_case).
fn keyword(key: &str) -> String {
    match key {
        "min_length" => "minLength",
        "max_length" => "maxLength",
        "exclusive_minimum" => "exclusiveMinimum",
        "exclusive_maximum" => "exclusiveMaximum",
        "multiple_of" => "multipleOf",
        "min_items" => "minItems",
        "max_items" => "maxItems",
        "unique_items" => "uniqueItems",
        "item_types" => "itemTypes",
        "additional_properties" => "additionalProperties",
        other => other,
    }
    .to_owned()
}

struct Converter<'a> {
    cat: &'a Catalog,
    w: Warnings,
}

impl Converter<'_> {
    /// The JSON Schema of a property or custom type definition.
    fn definition(&mut self, def: &Value, at: &str, depth: usize) -> Value {
        let mut s = Map::new();
        if depth > MAX_DEPTH {
            self.w.add(
                at,
                "custom types nested too deep (a cycle?); any value accepted".into(),
            );
            return Value::Object(s);
        }
        let mut item_types: Vec<String> = Vec::new();
        let config = def
            .get("config")
            .or_else(|| def.get("propConfig"))
            .and_then(Value::as_object);
        for (k, v) in config.into_iter().flatten() {
            let k = keyword(k);
            if k == "itemTypes" {
                item_types.extend(
                    v.as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|t| t.as_str().map(str::to_owned)),
                );
            } else {
                s.insert(k, v.clone());
            }
        }
        // The type: a custom type, a comma-separated list (legacy) or `types` (v1).
        let mut types: Vec<String> = Vec::new();
        match def.get("type").and_then(Value::as_str) {
            Some(t) if t.starts_with('#') => match self.cat.types.get(t) {
                Some(ct) => {
                    let inner = self.definition(ct, at, depth + 1);
                    if let Value::Object(inner) = inner {
                        for (k, v) in inner {
                            s.entry(k).or_insert(v);
                        }
                    }
                }
                None => self.w.add(
                    at,
                    format!("custom type {t:?} not found; any value accepted"),
                ),
            },
            Some(t) => types.extend(
                t.split(',')
                    .map(|t| t.trim().to_owned())
                    .filter(|t| !t.is_empty()),
            ),
            None => {}
        }
        types.extend(
            def.get("types")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|t| t.as_str().map(str::to_owned)),
        );
        if !types.is_empty() {
            s.insert("type".into(), json!(types));
        }
        if let Some(d) = def.get("description").and_then(Value::as_str) {
            s.entry("description").or_insert_with(|| json!(d));
        }
        // Array items.
        if let Some(t) = def.get("item_type").and_then(Value::as_str) {
            item_types.push(t.to_owned());
        }
        item_types.extend(
            def.get("item_types")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|t| t.as_str().map(str::to_owned)),
        );
        match item_types.as_slice() {
            [] => {}
            [one] if one.starts_with('#') => match self.cat.types.get(one.as_str()) {
                Some(ct) => {
                    let items = self.definition(ct, &format!("{at}/[]"), depth + 1);
                    s.insert("items".into(), items);
                }
                None => self.w.add(
                    at,
                    format!("item custom type {one:?} not found; items unchecked"),
                ),
            },
            many => {
                let plain: Vec<&String> = many.iter().filter(|t| !t.starts_with('#')).collect();
                if plain.len() < many.len() {
                    self.w.add(at, "items of several types including a custom type are not supported; items unchecked".into());
                } else {
                    s.insert("items".into(), json!({ "type": plain }));
                }
            }
        }
        // Object custom types list their properties like a rule does.
        if let Some(props) = def.get("properties").and_then(Value::as_array) {
            self.object(&mut s, props, None, at, depth + 1);
        }
        if def.get("variants").is_some_and(|v| !v.is_null()) {
            self.w.add(at, "variants (properties that depend on a discriminator) are not supported; only the base properties are kept".into());
        }
        Value::Object(s)
    }

    /// Adds `properties`, `required` and `additionalProperties` to an object schema from a
    /// list of property references.
    fn object(
        &mut self,
        s: &mut Map<String, Value>,
        entries: &[Value],
        additional: Option<bool>,
        at: &str,
        depth: usize,
    ) {
        let mut props = Map::new();
        let mut required = Vec::new();
        for e in entries {
            let Some(r) = reference(e, "property") else {
                self.w
                    .add(at, format!("property entry {e} has no reference; skipped"));
                continue;
            };
            let Some(def) = self.cat.properties.get(r) else {
                self.w.add(at, format!("property {r:?} not found; skipped"));
                continue;
            };
            let Some(name) = def.get("name").and_then(Value::as_str) else {
                self.w
                    .add(at, format!("property {r:?} has no name; skipped"));
                continue;
            };
            let here = format!("{at}/{}", name.replace('~', "~0").replace('/', "~1"));
            let mut p = match self.definition(def, &here, depth) {
                Value::Object(m) => m,
                _ => Map::new(),
            };
            if let Some(nested) = e.get("properties").and_then(Value::as_array) {
                let add = e
                    .get("additional_properties")
                    .or_else(|| e.get("additionalProperties"))
                    .and_then(Value::as_bool);
                self.object(&mut p, nested, add, &here, depth + 1);
            }
            if e.get("required").and_then(Value::as_bool) == Some(true) {
                required.push(json!(name));
            }
            props.insert(name.to_owned(), Value::Object(p));
        }
        s.insert("properties".into(), Value::Object(props));
        if !required.is_empty() {
            s.insert("required".into(), Value::Array(required));
        }
        if let Some(a) = additional {
            s.insert("additionalProperties".into(), json!(a));
        }
    }

    /// One rule as a planned event, or `None` (with a warning) when it does not map.
    fn rule(&mut self, rule: &Value, i: usize) -> Option<EventSpec> {
        let id = rule.get("id").and_then(Value::as_str).unwrap_or_default();
        let at = format!("rule {i} ({id:?})");
        let ty = rule
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("event_rule");
        if ty != "event_rule" {
            self.w
                .add(&at, format!("rule type {ty:?} is not supported; skipped"));
            return None;
        }
        if rule.get("includes").is_some_and(|v| !v.is_null()) {
            self.w.add(
                &at,
                "includes (rules of another tracking plan) are not supported; skipped".into(),
            );
        }
        let event = rule.get("event");
        let Some(r) = event.and_then(|e| reference(e, "$ref")) else {
            self.w.add(&at, "no event reference; skipped".into());
            return None;
        };
        let Some(def) = self.cat.events.get(r) else {
            self.w.add(&at, format!("event {r:?} not found; skipped"));
            return None;
        };
        let kind = match def
            .get("event_type")
            .and_then(Value::as_str)
            .and_then(MessageType::parse)
        {
            Some(k) if k != MessageType::Alias => k,
            _ => {
                self.w
                    .add(&at, format!("event {r:?} has no known event_type; skipped"));
                return None;
            }
        };
        let name = def
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty());
        let section = rule
            .get("identity_section")
            .or_else(|| event.and_then(|e| e.get("identity_section")))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let name = match kind {
            MessageType::Track | MessageType::Screen | MessageType::Page => {
                let Some(n) = name else {
                    self.w.add(&at, format!(
                        "a {} rule without a name applies to every {0}; a plan lists each by name; skipped",
                        kind.as_str()
                    ));
                    return None;
                };
                if !matches!(section, "" | "properties") {
                    self.w.add(
                        &at,
                        format!(
                            "identity_section {section:?}: only properties are checked; skipped"
                        ),
                    );
                    return None;
                }
                Some(n.to_owned())
            }
            _ => {
                if !matches!(section, "" | "traits") {
                    self.w.add(
                        &at,
                        format!("identity_section {section:?}: only traits are checked; skipped"),
                    );
                    return None;
                }
                None
            }
        };
        let label = event_label(kind, name.as_deref());
        // Unplanned properties: `allow_unplanned` on the event (legacy) or
        // `additional_properties` on the rule (v1); both default to false.
        let allow = event
            .and_then(|e| e.get("allow_unplanned"))
            .or_else(|| rule.get("additional_properties"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let root = if matches!(kind, MessageType::Identify | MessageType::Group) {
            "/traits"
        } else {
            "/properties"
        };
        let mut s = Map::new();
        s.insert("type".into(), json!("object"));
        let entries = rule
            .get("properties")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        self.object(
            &mut s,
            &entries,
            (!allow).then_some(false),
            &format!("{label} {root}"),
            0,
        );
        if rule.get("variants").is_some_and(|v| !v.is_null()) {
            self.w.add(&label, "variants (properties that depend on a discriminator) are not supported; only the base properties are kept".into());
        }
        let mut schema: Schema =
            convert(&Value::Object(s), &format!("{label} {root}"), &mut self.w);
        if schema.types.is_none() {
            schema.types = Schema::any_object().types;
        }
        Some(EventSpec {
            kind,
            name,
            description: def
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_owned),
            schema,
        })
    }
}

/// Reads every YAML document of `paths` (files, or directories searched for `.yaml` and
/// `.yml`) and converts the tracking plan among them (`plan_id` chooses one of several).
pub fn import_files(paths: &[PathBuf], plan_id: Option<&str>) -> anyhow::Result<Imported> {
    let mut files = Vec::new();
    for p in paths {
        yaml_files(p, &mut files)?;
    }
    let mut docs = Vec::new();
    for f in &files {
        let text = super::super::read_text(f)?;
        for (i, doc) in serde_norway::Deserializer::from_str(&text).enumerate() {
            let v = Value::deserialize(doc)
                .with_context(|| format!("{}: YAML document {}", f.display(), i + 1))?;
            if !v.is_null() {
                docs.push((format!("{} (document {})", f.display(), i + 1), v));
            }
        }
    }
    import(docs, plan_id)
}

/// Converts the tracking plan among parsed documents (`(where, document)`).
pub fn import(docs: Vec<(String, Value)>, plan_id: Option<&str>) -> anyhow::Result<Imported> {
    let mut w = Warnings::default();
    let mut cat = Catalog::default();
    for (at, doc) in docs {
        cat.add(doc, &at, &mut w);
    }
    let id_of = |spec: &Value| {
        spec.get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let plan = match (plan_id, cat.plans.as_slice()) {
        (_, []) => {
            bail!("no tracking plan (a document of kind \"tp\" or \"tracking-plan\") in the files")
        }
        (Some(want), plans) => match plans.iter().find(|(_, s)| id_of(s) == want) {
            Some(p) => p.1.clone(),
            None => bail!(
                "no tracking plan with id {want:?}; found {}",
                plans
                    .iter()
                    .map(|(_, s)| format!("{:?}", id_of(s)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
        (None, [one]) => one.1.clone(),
        (None, plans) => bail!(
            "{} tracking plans ({}); choose one with --tracking-plan ID",
            plans.len(),
            plans
                .iter()
                .map(|(_, s)| format!("{:?}", id_of(s)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut conv = Converter { cat: &cat, w };
    let mut events = Vec::new();
    for (i, rule) in plan
        .get("rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if let Some(e) = conv.rule(rule, i) {
            events.push(e);
        }
    }
    let display = plan
        .get("display_name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let id = id_of(&plan);
    let file = PlanFile {
        plan: if id.is_empty() {
            super::slug(display)
        } else {
            id
        },
        version: "1-0-0".to_owned(),
        description: plan
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| (!display.is_empty()).then(|| display.to_owned())),
        allow_unplanned_events: false,
        naming: Default::default(),
        events,
    };
    finish(file, conv.w)
}
