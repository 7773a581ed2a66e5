//! The local validating collector (work in progress).

/// `trailhound collect` options.
#[derive(Debug, clap::Args)]
pub struct CollectArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8787")]
    pub listen: String,
}

/// Runs `trailhound collect` until interrupted.
pub fn run_cli(args: CollectArgs) -> anyhow::Result<()> {
    anyhow::bail!("collect is not implemented yet ({args:?})")
}
