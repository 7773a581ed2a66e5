//! Replays one simulated day under Trailhound's policy and under a fixed
//! "flush at 20 events or every 30 s" baseline, and prints them side by side; then the
//! same day through an outage of the primary endpoint, with one endpoint and a fallback.
//!
//! `cargo run -p trailhound-tests --bin simulate --release`

use trailhound_tests::sim::{self, OutageRun, Variant};

fn main() {
    let day = sim::typical_day(sim::SEED);
    let ours = sim::run(&day, Variant::Trailhound);
    let baseline = sim::run(&day, Variant::Baseline);
    print!("{}", sim::report(&day, &ours, &baseline));
    let runs = [
        OutageRun::NoOutage,
        OutageRun::OneEndpoint,
        OutageRun::WithFallback,
    ]
    .map(|r| sim::run_setup(&day, &r.setup()));
    print!("\n{}", sim::outage_report(&day, &runs));
}
