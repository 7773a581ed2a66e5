//! `trailhound plan import`: plans from other vendors' tracking plan formats.

use std::path::PathBuf;

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
    /// The plan to convert.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    /// Write the plan here instead of standard output.
    #[arg(long, value_name = "PLAN")]
    pub out: Option<PathBuf>,
}

/// Runs `plan import`.
pub fn run(args: &ImportArgs) -> anyhow::Result<()> {
    anyhow::bail!("plan import from {:?}: not implemented yet", args.from)
}
