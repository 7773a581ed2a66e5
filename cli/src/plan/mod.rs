//! `trailhound plan`: tracking plans in CI and at the desk.
//!
//! # Layout
//!
//! - [`lint`]: `plan lint PLAN`: parse and compile a plan; refuse it naming the place.
//! - [`check`]: `plan check PLAN EVENTS.ndjson`: check exported events against a plan.
//! - [`diff`]: `plan diff OLD NEW`: classify every change as compatible or breaking.
//! - [`import`]: `plan import --from segment|rudderstack`: plans from other vendors.
//! - [`codegen`]: `plan codegen`: typed tracking functions per language.

pub mod check;
pub mod codegen;
pub mod diff;
pub mod import;
pub mod lint;

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;

/// `trailhound plan` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum PlanCommand {
    /// Parse and compile a plan; a plan that is invalid or contradicts itself is refused
    /// with the place named.
    Lint(lint::LintArgs),
    /// Check exported events (NDJSON of `queue export` or `exportQueue()`) against a plan.
    Check(check::CheckArgs),
    /// Classify the changes between two versions of a plan as compatible or breaking.
    Diff(diff::DiffArgs),
    /// Convert a Segment Protocols / Typewriter or RudderStack tracking plan.
    Import(import::ImportArgs),
    /// Typed tracking functions for an app, one per planned event.
    Codegen(codegen::CodegenArgs),
}

/// Runs a `trailhound plan` subcommand. `Ok` carries the exit code: lint, check and diff
/// fail (exit 1) on a bad plan, violations or an undeclared breaking change, after printing
/// their report; `Err` is for everything that stopped the command itself.
pub fn run(cmd: PlanCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PlanCommand::Lint(a) => lint::run(&a),
        PlanCommand::Check(a) => check::run(&a),
        PlanCommand::Diff(a) => diff::run(&a),
        PlanCommand::Import(a) => import::run(&a).map(|()| ExitCode::SUCCESS),
        PlanCommand::Codegen(a) => codegen::run(&a).map(|()| ExitCode::SUCCESS),
    }
}

/// Reads a file as UTF-8 text, naming it in the error.
pub(crate) fn read_text(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))
}

/// Reads a plan file as the JSON text the validator takes. A `.yaml`/`.yml` file is the
/// same plan written in YAML (the structure, and so every error's JSON pointer, is the
/// same); the devices and the browser take JSON only, so the CLI is where YAML stops.
pub fn plan_text(path: &Path) -> anyhow::Result<String> {
    let text = read_text(path)?;
    let yaml = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"));
    if !yaml {
        return Ok(text);
    }
    let value: serde_json::Value = serde_norway::from_str(&text)
        .with_context(|| format!("{} is not a YAML plan", path.display()))?;
    Ok(value.to_string())
}
