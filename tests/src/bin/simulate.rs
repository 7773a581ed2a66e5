//! Replays one simulated day under Trailhound's policy and under a fixed
//! "flush at 20 events or every 30 s" baseline, and prints them side by side.
//!
//! `cargo run -p trailhound-tests --bin simulate --release`

use trailhound_tests::sim::{self, Variant};

fn main() {
    let day = sim::typical_day(sim::SEED);
    let ours = sim::run(&day, Variant::Trailhound);
    let baseline = sim::run(&day, Variant::Baseline);
    print!("{}", sim::report(&day, &ours, &baseline));
}
