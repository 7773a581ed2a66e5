//! `trailhound plan diff OLD NEW`: every change between two versions of a plan, classified
//! SchemaVer-style.
//!
//! A change is *compatible* when every event valid under OLD is still valid under NEW, and
//! *breaking* otherwise:
//!
//! | change | class |
//! |---|---|
//! | new event; new optional property; widened `type` (`integer` to `number`, one more type), `enum` or range/length/items bound; removed constraint (`enum`, `const`, `pattern`, `format`, a bound, `items`, `required`, naming convention); `additionalProperties` `false` to `true` or a schema; `allowUnplannedEvents` `false` to `true`; description, title, `$comment`, plan id | compatible |
//! | removed event or property; retyped property; new required property or a property made required; narrowed `enum` or bound; new `pattern`, `format`, `const`, bound, `items` or naming convention (or a changed one); `additionalProperties` to `false` or from `true` to a schema; `allowUnplannedEvents` `true` to `false` | breaking |
//!
//! Each change has a path: the event (as violations name it: `Song Played`, `screen:Player`,
//! `identify`) and a JSON pointer into its wire message (`/properties/output/kind`;
//! `/properties/tags/[]` is every element of `tags`, `/properties/meta/*` every property
//! that `additionalProperties` covers); plan-level changes have a pointer into the plan file.
//!
//! The version is SchemaVer `MODEL-REVISION-ADDITION`: the command fails when there is a
//! breaking change and NEW's MODEL is not greater than OLD's, and warns when the plan
//! changed but its version did not.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use serde::Serialize;
use serde_json::Value;
use trailhound_core::message::MessageType;
use trailhound_core::plan::event_label;
use trailhound_core::plan::model::{
    Additional, Case, EventSpec, JsonType, PlanFile, Schema, Types,
};

/// `trailhound plan diff`.
#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// The plan before the change.
    #[arg(value_name = "OLD")]
    pub old: PathBuf,
    /// The plan after the change.
    #[arg(value_name = "NEW")]
    pub new: PathBuf,
    /// Print the changes as one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Whether a change keeps every event that was valid still valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// Every event valid under the old plan is valid under the new one.
    Compatible,
    /// Some event valid under the old plan is not valid under the new one.
    Breaking,
}

impl Class {
    /// `compatible` or `breaking`.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Compatible => "compatible",
            Class::Breaking => "breaking",
        }
    }
}

/// One change between two plans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Compatible or breaking.
    pub class: Class,
    /// The event changed, as violations name it; `None` for a plan-level change.
    pub event: Option<String>,
    /// A JSON pointer: into the event's wire message, or into the plan file for a
    /// plan-level change; `""` for a whole event.
    pub pointer: String,
    /// What changed, for people.
    pub message: String,
}

impl Change {
    /// `breaking   Song Played /properties/song_id: property removed`.
    pub fn line(&self) -> String {
        let place = match (&self.event, self.pointer.is_empty()) {
            (Some(e), true) => e.clone(),
            (Some(e), false) => format!("{e} {}", self.pointer),
            (None, _) => format!("plan {}", self.pointer),
        };
        format!("{:<10} {place}: {}", self.class.as_str(), self.message)
    }
}

/// A SchemaVer version, `MODEL-REVISION-ADDITION`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SchemaVer {
    /// Raised for a breaking change.
    pub model: u64,
    /// Raised for a change that may break some historical data.
    pub revision: u64,
    /// Raised for a compatible change.
    pub addition: u64,
}

impl SchemaVer {
    /// Parses `1-0-0`.
    pub fn parse(s: &str) -> Option<SchemaVer> {
        let mut parts = s.split('-').map(|p| {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                None
            } else {
                p.parse::<u64>().ok()
            }
        });
        let v = SchemaVer {
            model: parts.next()??,
            revision: parts.next()??,
            addition: parts.next()??,
        };
        parts.next().is_none().then_some(v)
    }
}

impl std::fmt::Display for SchemaVer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}-{}", self.model, self.revision, self.addition)
    }
}

/// Every change from `old` to `new`: plan-level first, then events in OLD's order
/// (changed or removed), then NEW's added events.
pub fn diff(old: &PlanFile, new: &PlanFile) -> Vec<Change> {
    let mut d = Differ { out: Vec::new() };
    d.plan_level(old, new);
    let key = |e: &EventSpec| (e.kind, e.name.clone());
    let new_events: BTreeMap<_, &EventSpec> = new.events.iter().map(|e| (key(e), e)).collect();
    let old_events: BTreeMap<_, &EventSpec> = old.events.iter().map(|e| (key(e), e)).collect();
    for o in &old.events {
        let label = event_label(o.kind, o.name.as_deref());
        match new_events.get(&key(o)) {
            Some(n) => d.event(&label, o, n),
            None => d.push(Class::Breaking, Some(&label), "", "event removed".into()),
        }
    }
    for n in &new.events {
        if !old_events.contains_key(&key(n)) {
            let label = event_label(n.kind, n.name.as_deref());
            d.push(Class::Compatible, Some(&label), "", "new event".into());
        }
    }
    d.out
}

struct Differ {
    out: Vec<Change>,
}

/// Whether a bound limits from below (raising it narrows) or above (lowering it narrows).
#[derive(Clone, Copy)]
enum Side {
    Lower,
    Upper,
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn case_name(c: Case) -> &'static str {
    match c {
        Case::SnakeCase => "snake_case",
        Case::CamelCase => "camelCase",
        Case::PascalCase => "PascalCase",
        Case::TitleCase => "Title Case",
        Case::KebabCase => "kebab-case",
    }
}

fn types_text(t: &[JsonType]) -> String {
    let names: Vec<String> = t
        .iter()
        .map(|t| {
            serde_json::to_value(t)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        })
        .collect();
    names.join(" or ")
}

fn values_text(v: &[Value]) -> String {
    let items: Vec<String> = v.iter().map(Value::to_string).collect();
    format!("[{}]", items.join(", "))
}

/// Whether a value of type `t` is accepted by one of `allowed`.
fn accepts(allowed: &[JsonType], t: JsonType) -> bool {
    allowed.contains(&t) || (t == JsonType::Integer && allowed.contains(&JsonType::Number))
}

impl Differ {
    fn push(&mut self, class: Class, event: Option<&str>, pointer: &str, message: String) {
        self.out.push(Change {
            class,
            event: event.map(str::to_owned),
            pointer: pointer.to_owned(),
            message,
        });
    }

    fn plan_level(&mut self, old: &PlanFile, new: &PlanFile) {
        if old.plan != new.plan {
            self.push(
                Class::Compatible,
                None,
                "/plan",
                format!("plan id changed from {:?} to {:?}", old.plan, new.plan),
            );
        }
        if old.description != new.description {
            self.push(
                Class::Compatible,
                None,
                "/description",
                "description changed".into(),
            );
        }
        match (old.allow_unplanned_events, new.allow_unplanned_events) {
            (true, false) => self.push(
                Class::Breaking,
                None,
                "/allowUnplannedEvents",
                "unplanned events no longer allowed (true to false)".into(),
            ),
            (false, true) => self.push(
                Class::Compatible,
                None,
                "/allowUnplannedEvents",
                "unplanned events now allowed (false to true)".into(),
            ),
            _ => {}
        }
        for (field, o, n) in [
            ("events", old.naming.events, new.naming.events),
            ("properties", old.naming.properties, new.naming.properties),
        ] {
            let at = format!("/naming/{field}");
            match (o, n) {
                (None, Some(n)) => self.push(
                    Class::Breaking,
                    None,
                    &at,
                    format!("new naming convention {}", case_name(n)),
                ),
                (Some(o), None) => self.push(
                    Class::Compatible,
                    None,
                    &at,
                    format!("naming convention {} removed", case_name(o)),
                ),
                (Some(o), Some(n)) if o != n => self.push(
                    Class::Breaking,
                    None,
                    &at,
                    format!(
                        "naming convention changed from {} to {}",
                        case_name(o),
                        case_name(n)
                    ),
                ),
                _ => {}
            }
        }
    }

    fn event(&mut self, label: &str, old: &EventSpec, new: &EventSpec) {
        if old.description != new.description {
            self.push(
                Class::Compatible,
                Some(label),
                "",
                "description changed".into(),
            );
        }
        let root = match old.kind {
            MessageType::Identify | MessageType::Group => "/traits",
            _ => "/properties",
        };
        self.schema(Some(label), root, &old.schema, &new.schema);
    }

    fn schema(&mut self, ev: Option<&str>, at: &str, old: &Schema, new: &Schema) {
        // Annotations.
        for (what, o, n) in [
            ("description", &old.description, &new.description),
            ("title", &old.title, &new.title),
            ("$comment", &old.comment, &new.comment),
        ] {
            if o != n {
                self.push(Class::Compatible, ev, at, format!("{what} changed"));
            }
        }
        self.types(ev, at, old.types.as_ref(), new.types.as_ref());
        // enum
        match (&old.enum_values, &new.enum_values) {
            (None, Some(n)) => self.push(
                Class::Breaking,
                ev,
                at,
                format!("new enum {}", values_text(n)),
            ),
            (Some(o), None) => self.push(
                Class::Compatible,
                ev,
                at,
                format!("enum {} removed", values_text(o)),
            ),
            (Some(o), Some(n)) => {
                let removed: Vec<Value> = o.iter().filter(|v| !n.contains(v)).cloned().collect();
                let added: Vec<Value> = n.iter().filter(|v| !o.contains(v)).cloned().collect();
                if !removed.is_empty() {
                    self.push(
                        Class::Breaking,
                        ev,
                        at,
                        format!("enum narrowed: removed {}", values_text(&removed)),
                    );
                } else if !added.is_empty() {
                    self.push(
                        Class::Compatible,
                        ev,
                        at,
                        format!("enum widened: added {}", values_text(&added)),
                    );
                }
            }
            (None, None) => {}
        }
        // const, pattern, format: any new or changed one can refuse what passed.
        self.constraint(
            ev,
            at,
            "const",
            old.const_value.as_ref(),
            new.const_value.as_ref(),
        );
        self.constraint(
            ev,
            at,
            "pattern",
            old.pattern.as_ref(),
            new.pattern.as_ref(),
        );
        let fmt = |f: &trailhound_core::plan::model::Format| {
            serde_json::to_value(f)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        };
        self.constraint(
            ev,
            at,
            "format",
            old.format.as_ref().map(fmt).as_ref(),
            new.format.as_ref().map(fmt).as_ref(),
        );
        // Bounds.
        self.bound(ev, at, "minimum", Side::Lower, old.minimum, new.minimum);
        self.bound(
            ev,
            at,
            "exclusiveMinimum",
            Side::Lower,
            old.exclusive_minimum,
            new.exclusive_minimum,
        );
        self.bound(ev, at, "maximum", Side::Upper, old.maximum, new.maximum);
        self.bound(
            ev,
            at,
            "exclusiveMaximum",
            Side::Upper,
            old.exclusive_maximum,
            new.exclusive_maximum,
        );
        self.bound(
            ev,
            at,
            "minLength",
            Side::Lower,
            old.min_length,
            new.min_length,
        );
        self.bound(
            ev,
            at,
            "maxLength",
            Side::Upper,
            old.max_length,
            new.max_length,
        );
        self.bound(
            ev,
            at,
            "minItems",
            Side::Lower,
            old.min_items,
            new.min_items,
        );
        self.bound(
            ev,
            at,
            "maxItems",
            Side::Upper,
            old.max_items,
            new.max_items,
        );
        // items
        let items_at = format!("{at}/[]");
        match (&old.items, &new.items) {
            (None, Some(_)) => self.push(
                Class::Breaking,
                ev,
                &items_at,
                "items constrained by a new schema".into(),
            ),
            (Some(_), None) => self.push(
                Class::Compatible,
                ev,
                &items_at,
                "items schema removed".into(),
            ),
            (Some(o), Some(n)) => self.schema(ev, &items_at, o, n),
            (None, None) => {}
        }
        self.properties(ev, at, old, new);
        self.additional(
            ev,
            at,
            old.additional_properties.as_ref(),
            new.additional_properties.as_ref(),
        );
    }

    fn types(&mut self, ev: Option<&str>, at: &str, old: Option<&Types>, new: Option<&Types>) {
        match (old.map(Types::as_slice), new.map(Types::as_slice)) {
            (None, Some(n)) => self.push(
                Class::Breaking,
                ev,
                at,
                format!("type restricted to {}", types_text(n)),
            ),
            (Some(o), None) => self.push(
                Class::Compatible,
                ev,
                at,
                format!("type {} removed (any type)", types_text(o)),
            ),
            (Some(o), Some(n)) => {
                let same = o.iter().all(|t| n.contains(t)) && n.iter().all(|t| o.contains(t));
                if same {
                    return;
                }
                if o.iter().all(|&t| accepts(n, t)) {
                    self.push(
                        Class::Compatible,
                        ev,
                        at,
                        format!("type widened from {} to {}", types_text(o), types_text(n)),
                    );
                } else {
                    self.push(
                        Class::Breaking,
                        ev,
                        at,
                        format!("retyped from {} to {}", types_text(o), types_text(n)),
                    );
                }
            }
            (None, None) => {}
        }
    }

    fn constraint<T: PartialEq + Display>(
        &mut self,
        ev: Option<&str>,
        at: &str,
        keyword: &str,
        old: Option<&T>,
        new: Option<&T>,
    ) {
        match (old, new) {
            (None, Some(n)) => {
                self.push(Class::Breaking, ev, at, format!("new {keyword} {n}"));
            }
            (Some(o), None) => {
                self.push(Class::Compatible, ev, at, format!("{keyword} {o} removed"));
            }
            (Some(o), Some(n)) if o != n => {
                self.push(
                    Class::Breaking,
                    ev,
                    at,
                    format!("{keyword} changed from {o} to {n}"),
                );
            }
            _ => {}
        }
    }

    fn bound<T: PartialOrd + Display + Copy>(
        &mut self,
        ev: Option<&str>,
        at: &str,
        keyword: &str,
        side: Side,
        old: Option<T>,
        new: Option<T>,
    ) {
        match (old, new) {
            (None, Some(n)) => self.push(Class::Breaking, ev, at, format!("new {keyword} {n}")),
            (Some(o), None) => {
                self.push(Class::Compatible, ev, at, format!("{keyword} {o} removed"));
            }
            (Some(o), Some(n)) if o != n => {
                let raised = n > o;
                let narrowed = match side {
                    Side::Lower => raised,
                    Side::Upper => !raised,
                };
                let (class, how) = if narrowed {
                    (Class::Breaking, "narrowed")
                } else {
                    (Class::Compatible, "widened")
                };
                self.push(
                    class,
                    ev,
                    at,
                    format!(
                        "{keyword} {} from {o} to {n} ({how})",
                        if raised { "raised" } else { "lowered" }
                    ),
                );
            }
            _ => {}
        }
    }

    fn properties(&mut self, ev: Option<&str>, at: &str, old: &Schema, new: &Schema) {
        let mut names: Vec<&String> = old.properties.keys().chain(new.properties.keys()).collect();
        names.sort();
        names.dedup();
        for name in names {
            let p = format!("{at}/{}", escape(name));
            let required = new.required.contains(name);
            match (old.properties.get(name), new.properties.get(name)) {
                (Some(_), None) => {
                    self.push(Class::Breaking, ev, &p, "property removed".into());
                }
                (None, Some(_)) if required => {
                    self.push(Class::Breaking, ev, &p, "new required property".into());
                }
                (None, Some(_)) => {
                    self.push(Class::Compatible, ev, &p, "new optional property".into());
                }
                (Some(o), Some(n)) => {
                    self.schema(ev, &p, o, n);
                }
                (None, None) => {}
            }
        }
        for name in &new.required {
            let is_new_property =
                new.properties.contains_key(name) && !old.properties.contains_key(name);
            if !old.required.contains(name) && !is_new_property {
                let p = format!("{at}/{}", escape(name));
                self.push(Class::Breaking, ev, &p, "property made required".into());
            }
        }
        for name in &old.required {
            let removed = old.properties.contains_key(name) && !new.properties.contains_key(name);
            if !new.required.contains(name) && !removed {
                let p = format!("{at}/{}", escape(name));
                self.push(
                    Class::Compatible,
                    ev,
                    &p,
                    "property no longer required".into(),
                );
            }
        }
    }

    fn additional(
        &mut self,
        ev: Option<&str>,
        at: &str,
        old: Option<&Additional>,
        new: Option<&Additional>,
    ) {
        let any = Additional::Allowed(true);
        let (o, n) = (old.unwrap_or(&any), new.unwrap_or(&any));
        let msg = |s: &str| format!("additionalProperties {s}");
        match (o, n) {
            (Additional::Allowed(a), Additional::Allowed(b)) if a == b => {}
            (Additional::Allowed(true), Additional::Allowed(false)) => {
                self.push(Class::Breaking, ev, at, msg("changed from true to false"));
            }
            (Additional::Allowed(false), Additional::Allowed(true)) => {
                self.push(Class::Compatible, ev, at, msg("changed from false to true"));
            }
            (Additional::Allowed(true), Additional::Schema(_)) => {
                self.push(
                    Class::Breaking,
                    ev,
                    at,
                    msg("changed from true to a schema"),
                );
            }
            (Additional::Allowed(false), Additional::Schema(_)) => {
                self.push(
                    Class::Compatible,
                    ev,
                    at,
                    msg("changed from false to a schema"),
                );
            }
            (Additional::Schema(_), Additional::Allowed(true)) => {
                self.push(
                    Class::Compatible,
                    ev,
                    at,
                    msg("schema removed (any allowed)"),
                );
            }
            (Additional::Schema(_), Additional::Allowed(false)) => {
                self.push(
                    Class::Breaking,
                    ev,
                    at,
                    msg("changed from a schema to false"),
                );
            }
            (Additional::Schema(a), Additional::Schema(b)) => {
                self.schema(ev, &format!("{at}/*"), a, b);
            }
            // Unreachable: equal booleans are the first arm.
            (Additional::Allowed(_), Additional::Allowed(_)) => {}
        }
    }
}

/// What `plan diff` decided.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    /// OLD's version.
    pub old_version: String,
    /// NEW's version.
    pub new_version: String,
    /// Every change.
    pub changes: Vec<Change>,
    /// Whether any change is breaking.
    pub breaking: bool,
    /// Whether NEW's version declares what changed (a higher MODEL for a breaking change).
    pub declared: bool,
    /// The least version NEW should have, SchemaVer-style: MODEL+1 for a breaking change,
    /// ADDITION+1 for compatible ones, OLD's for none.
    pub suggested_version: String,
    /// Warnings (printed to standard error in text mode).
    pub warnings: Vec<String>,
}

/// Compares two plan files and decides whether NEW's version declares the changes.
pub fn outcome(old: &PlanFile, new: &PlanFile) -> anyhow::Result<Outcome> {
    let (Some(ov), Some(nv)) = (
        SchemaVer::parse(&old.version),
        SchemaVer::parse(&new.version),
    ) else {
        bail!(
            "versions {:?} and {:?}: expected SchemaVer MODEL-REVISION-ADDITION such as 1-0-0",
            old.version,
            new.version
        );
    };
    let changes = diff(old, new);
    let breaking = changes.iter().any(|c| c.class == Class::Breaking);
    let suggested = if breaking {
        SchemaVer {
            model: ov.model + 1,
            revision: 0,
            addition: 0,
        }
    } else if changes.is_empty() {
        ov
    } else {
        SchemaVer {
            addition: ov.addition + 1,
            ..ov
        }
    };
    let declared = !breaking || nv.model > ov.model;
    let mut warnings = Vec::new();
    if !changes.is_empty() && nv == ov {
        warnings.push(format!(
            "the plan changed but its version did not (still {ov}); expected at least {suggested}"
        ));
    }
    if nv < ov {
        warnings.push(format!("the version went down, from {ov} to {nv}"));
    }
    Ok(Outcome {
        old_version: ov.to_string(),
        new_version: nv.to_string(),
        changes,
        breaking,
        declared,
        suggested_version: suggested.to_string(),
        warnings,
    })
}

/// Runs `plan diff`: the changes on standard output; exit 1 when a breaking change is not
/// declared by a higher MODEL.
pub fn run(args: &DiffArgs) -> anyhow::Result<ExitCode> {
    let old = super::lint::load_or_fail(&args.old)?;
    let new = super::lint::load_or_fail(&args.new)?;
    let o = outcome(old.file(), new.file())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&o)?);
    } else {
        for c in &o.changes {
            println!("{}", c.line());
        }
        let n_breaking = o
            .changes
            .iter()
            .filter(|c| c.class == Class::Breaking)
            .count();
        println!(
            "{} change{} ({} breaking, {} compatible), version {} -> {}",
            o.changes.len(),
            if o.changes.len() == 1 { "" } else { "s" },
            n_breaking,
            o.changes.len() - n_breaking,
            o.old_version,
            o.new_version
        );
        for w in &o.warnings {
            eprintln!("warning: {w}");
        }
    }
    if o.declared {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "error: breaking changes need a higher MODEL: {} -> {} (expected at least {})",
            o.old_version, o.new_version, o.suggested_version
        );
        Ok(ExitCode::FAILURE)
    }
}
