//! `trailhound`: QA tools for the Trailhound SDK.
use clap::{Parser, Subcommand};

use trailhound_cli::{collect, demo, plan, queue};

/// QA tools for Trailhound: look into a device's queue, replay it, and collect events locally.
#[derive(Debug, Parser)]
#[command(name = "trailhound", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// A local validating Segment-compatible collector with a live page.
    Collect(collect::CollectArgs),
    /// Look into a device's queue (a copy of its data directory), export, import, replay.
    #[command(subcommand)]
    Queue(queue::QueueCommand),
    /// The SDK through a simulated app session against a local collector, then a report.
    Demo(demo::DemoArgs),
    /// Tracking plans: lint, check exported events, diff versions, import, generate code.
    #[command(subcommand)]
    Plan(plan::PlanCommand),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Collect(args) => collect::run_cli(args),
        Command::Queue(cmd) => queue::run(cmd),
        Command::Demo(args) => demo::run(&args),
        // lint, check and diff print their own report and choose the exit code.
        Command::Plan(cmd) => match plan::run(cmd) {
            Ok(code) => return code,
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}
