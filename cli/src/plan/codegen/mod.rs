//! `trailhound plan codegen`: typed tracking functions generated from a plan file, one per
//! event, for Kotlin, Swift, TypeScript, Python and Rust.
use std::path::PathBuf;

/// The languages `plan codegen` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// Kotlin, against the UniFFI bindings' `Client`.
    Kotlin,
    /// Swift, against the UniFFI bindings' `Client`.
    Swift,
    /// TypeScript, against a structural interface the browser client satisfies.
    Typescript,
    /// Python, against the UniFFI bindings' `Client`.
    Python,
    /// Rust, against `trailhound::Client`.
    Rust,
}

/// Arguments of `trailhound plan codegen`.
#[derive(Debug, clap::Args)]
pub struct CodegenArgs {
    /// The plan file (JSON).
    #[arg(value_name = "PLAN")]
    pub plan: PathBuf,
    /// The language to generate.
    #[arg(long, value_enum)]
    pub lang: Lang,
    /// The directory to write the generated file into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// Generates the typed tracking code for `args.plan` into `args.out`.
pub fn run(args: &CodegenArgs) -> anyhow::Result<()> {
    anyhow::bail!(
        "plan codegen for {:?} from {} into {}: not implemented yet",
        args.lang,
        args.plan.display(),
        args.out.display()
    )
}
