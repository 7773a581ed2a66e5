//! `trailhound plan lint PLAN`: parse, lint and compile a plan with the validator every
//! platform uses ([`Plan::parse`]), so that a plan that passes here loads everywhere.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use trailhound_core::plan::{Plan, PlanError};

/// `trailhound plan lint`.
#[derive(Debug, clap::Args)]
pub struct LintArgs {
    /// The plan file (JSON, or YAML with a .yaml/.yml name).
    #[arg(value_name = "PLAN")]
    pub plan: PathBuf,
}

/// Loads and compiles a plan file. `Ok(Err(_))` is a plan the validator refused; `Err` is a
/// file that could not be read.
pub fn load(path: &Path) -> anyhow::Result<Result<Plan, PlanError>> {
    let text = super::plan_text(path)?;
    Ok(Plan::parse(&text))
}

/// `PLAN: at <pointer>: <message>`, the one-line form of a refused plan. An empty pointer
/// (the whole file) reads `at the top level`: `/` would be the pointer of the key `""`.
pub fn describe_error(path: &Path, e: &PlanError) -> String {
    let at = if e.at.is_empty() {
        "the top level"
    } else {
        e.at.as_str()
    };
    format!("{}: at {at}: {}", path.display(), e.message)
}

/// Loads a plan, or fails with [`describe_error`]'s text (for commands that need a plan).
pub fn load_or_fail(path: &Path) -> anyhow::Result<Plan> {
    load(path)?.map_err(|e| anyhow::anyhow!("{}", describe_error(path, &e)))
}

/// One line about a plan that compiled: its id, version and events by type.
pub fn summary(plan: &Plan) -> String {
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &plan.file().events {
        *kinds.entry(e.kind.as_str()).or_default() += 1;
    }
    let by_kind: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
    let n = plan.file().events.len();
    format!(
        "plan {} version {}: {n} event{} ({}){}",
        plan.id(),
        plan.version(),
        if n == 1 { "" } else { "s" },
        if by_kind.is_empty() {
            "none".to_owned()
        } else {
            by_kind.join(", ")
        },
        if plan.file().allow_unplanned_events {
            ", unplanned events allowed"
        } else {
            ""
        }
    )
}

/// Runs `plan lint`: exit 0 and a summary for a good plan, exit 1 naming the place for a bad one.
pub fn run(args: &LintArgs) -> anyhow::Result<ExitCode> {
    match load(&args.plan)? {
        Ok(plan) => {
            println!("{}: ok: {}", args.plan.display(), summary(&plan));
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{}", describe_error(&args.plan, &e));
            Ok(ExitCode::FAILURE)
        }
    }
}
