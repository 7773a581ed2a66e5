//! `trailhound plan import`: plans from other vendors' tracking plan formats.
//!
//! What maps is converted; everything that does not (keywords outside the plan's subset,
//! `$ref`, `oneOf`/`anyOf`/`allOf`, variants, context rules...) is collected as a warning,
//! printed to standard error. The result is then run through the validator's lint, and
//! whatever lint still refuses (a pattern whose meaning differs between engines, a keyword
//! that contradicts its type) is dropped with a warning too, so that the output always
//! passes `plan lint`. docs/plans.md has the mapping table.
//!
//! # Layout
//!
//! - [`segment`]: Segment Protocols tracking plans (Public API and Config API JSON) and
//!   Typewriter's `plan.json`.
//! - [`rudderstack`]: RudderStack tracking plan YAML (rudder-cli data catalog projects).
//! - [`schema`]: JSON Schema to the plan's schema subset.

pub mod rudderstack;
pub mod schema;
pub mod segment;

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{bail, Context as _};
use serde_json::Value;
use trailhound_core::plan::model::PlanFile;
use trailhound_core::plan::Plan;

/// The formats `plan import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Source {
    /// Segment Protocols tracking plan JSON or Typewriter's `plan.json`.
    Segment,
    /// RudderStack tracking plan YAML (rudder-cli data catalog).
    Rudderstack,
}

/// `trailhound plan import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The format of FILE.
    #[arg(long, value_enum)]
    pub from: Source,
    /// The plan to convert. RudderStack: YAML files or directories of them (a data catalog
    /// project: the tracking plan with the events, properties and custom types it refers to).
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    /// Write the plan here instead of standard output.
    #[arg(long, value_name = "PLAN")]
    pub out: Option<PathBuf>,
    /// RudderStack: the tracking plan's id, when the files hold more than one.
    #[arg(long, value_name = "ID")]
    pub tracking_plan: Option<String>,
}

/// What did not map, each naming its place.
#[derive(Debug, Default)]
pub struct Warnings(pub Vec<String>);

impl Warnings {
    /// Adds one: `at` names the place (`Song Played /properties/price`).
    pub fn add(&mut self, at: &str, message: String) {
        self.0.push(if at.is_empty() {
            message
        } else {
            format!("{at}: {message}")
        });
    }
}

/// A converted plan and what did not map.
#[derive(Debug)]
pub struct Imported {
    /// The plan; it passes lint.
    pub file: PlanFile,
    /// What did not map.
    pub warnings: Vec<String>,
}

/// A plan id from a display name: lowercase ASCII letters and digits, words joined by `-`.
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    if out.is_empty() {
        "imported".to_owned()
    } else {
        out
    }
}

/// How many times lint may refuse a converted plan before giving up: each round drops one
/// refused keyword or event.
const MAX_REPAIRS: usize = 500;

/// Removes the value at a JSON pointer, or at the nearest ancestor that exists. Returns the
/// pointer removed, or `None` when nothing below the top level exists there.
fn remove_at(root: &mut Value, pointer: &str) -> Option<String> {
    let segments: Vec<&str> = pointer.split('/').skip(1).collect();
    for len in (1..=segments.len()).rev() {
        let parent_pointer: String = segments[..len - 1]
            .iter()
            .map(|s| format!("/{s}"))
            .collect();
        let last = segments[len - 1].replace("~1", "/").replace("~0", "~");
        let removed = match root.pointer_mut(&parent_pointer) {
            Some(Value::Object(m)) => m.remove(&last).is_some(),
            Some(Value::Array(a)) => match last.parse::<usize>() {
                Ok(i) if i < a.len() => {
                    a.remove(i);
                    true
                }
                _ => false,
            },
            _ => false,
        };
        if removed {
            return Some(format!("{parent_pointer}/{}", segments[len - 1]));
        }
    }
    None
}

/// Lints a converted plan, dropping what lint refuses (with a warning each) until it passes.
pub fn finish(file: PlanFile, mut warnings: Warnings) -> anyhow::Result<Imported> {
    let mut value = serde_json::to_value(&file).context("serialising the plan")?;
    for _ in 0..MAX_REPAIRS {
        let text = serde_json::to_string(&value)?;
        let err = match Plan::parse(&text) {
            Ok(plan) => {
                return Ok(Imported {
                    file: plan.file().clone(),
                    warnings: warnings.0,
                })
            }
            Err(e) => e,
        };
        let top_level = matches!(err.at.as_str(), "" | "/plan" | "/version" | "/events");
        let removed = if top_level {
            None
        } else {
            remove_at(&mut value, &err.at)
        };
        match removed {
            Some(p) => warnings.add("", format!("dropped {p}: {}", err.message)),
            None => bail!(
                "the converted plan does not pass lint at {:?}: {}",
                err.at,
                err.message
            ),
        }
    }
    bail!("the converted plan still does not pass lint after {MAX_REPAIRS} repairs")
}

/// Runs `plan import`: the plan on standard output or in `--out`, warnings on standard error.
pub fn run(args: &ImportArgs) -> anyhow::Result<()> {
    let imported = match args.from {
        Source::Segment => {
            let [file] = args.files.as_slice() else {
                bail!("--from segment reads one file, got {}", args.files.len());
            };
            let text = super::read_text(file)?;
            let v: Value = serde_json::from_str(&text)
                .with_context(|| format!("{}: not JSON", file.display()))?;
            segment::import(&v).with_context(|| format!("{}", file.display()))?
        }
        Source::Rudderstack => {
            rudderstack::import_files(&args.files, args.tracking_plan.as_deref())?
        }
    };
    for w in &imported.warnings {
        eprintln!("warning: {w}");
    }
    let mut json = serde_json::to_string_pretty(&imported.file)?;
    json.push('\n');
    match &args.out {
        Some(p) => std::fs::write(p, &json).with_context(|| format!("{}", p.display()))?,
        None => std::io::stdout().lock().write_all(json.as_bytes())?,
    }
    eprintln!(
        "imported plan {} version {}: {} events, {} warnings",
        imported.file.plan,
        imported.file.version,
        imported.file.events.len(),
        imported.warnings.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Plan ids from display names: lowercase words joined by `-`, never empty.
    #[test]
    fn slug_makes_plan_ids() {
        assert_eq!(slug("Storefront Web"), "storefront-web");
        assert_eq!(slug("  Acme Music (iOS) v2 "), "acme-music-ios-v2");
        assert_eq!(slug("Ärger/Ünd"), "rger-nd");
        assert_eq!(slug("!!!"), "imported");
    }

    /// A pointer is removed where it exists, else its nearest existing ancestor; escaped
    /// segments and array indexes work; the top level is never removed.
    #[test]
    fn remove_at_removes_the_pointer_or_its_ancestor() {
        let mut v = json!({"events": [{"schema": {"properties": {"a/b": {"minimum": 1}}}}, {}]});
        assert_eq!(
            remove_at(&mut v, "/events/0/schema/properties/a~1b/minimum").as_deref(),
            Some("/events/0/schema/properties/a~1b/minimum")
        );
        assert_eq!(v["events"][0]["schema"]["properties"]["a/b"], json!({}));
        assert_eq!(
            remove_at(&mut v, "/events/0/schema/nothing/here").as_deref(),
            Some("/events/0/schema")
        );
        assert_eq!(remove_at(&mut v, "/events/1").as_deref(), Some("/events/1"));
        assert_eq!(v, json!({"events": [{}]}));
        assert_eq!(remove_at(&mut v, "/missing/x"), None);
        assert_eq!(remove_at(&mut v, ""), None);
    }
}
