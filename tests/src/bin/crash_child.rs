//! Helper process for the crash test: tracks numbered events offline until it is killed,
//! and records, for each event `track()` accepted, when it returned.
//!
//! `crash_child DATA_DIR LOG_FILE COMMIT_LOG PATTERN SEED`
//!
//! - `PATTERN`: `steady` (a tight loop), `bursts` (runs of up to 3000 calls as fast as
//!   possible, then up to 120 ms of silence) or `paced` (a pause of up to 3 ms after each call).
//! - The log has one 16-byte slot per accepted event, written with `pwrite` right after
//!   `track()` returned: slot `i` holds `i + 1` and the `CLOCK_MONOTONIC` reading in
//!   nanoseconds, both little-endian `u64`. The writes land in the page cache, which a
//!   SIGKILL of this process does not touch, so the parent reads every record written
//!   before the kill without an fsync. The parent reads the same clock (same machine).
//! - The commit log: a second thread polls `stats()` every half millisecond and, each time
//!   the committed count (`queued_events - uncommitted_events`) grows, writes a 24-byte slot:
//!   the count, then the clock before the previous poll (the commit was published after it)
//!   and after this poll (published before it).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::Duration;

use trailhound_tests::util::{monotonic_ns, SplitMix64};

fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: crash_child DATA_DIR LOG_FILE COMMIT_LOG steady|bursts|paced SEED";
    let dir = args.next().expect(usage);
    let log_path = args.next().expect(usage);
    let commit_log_path = args.next().expect(usage);
    let pattern = args.next().expect(usage);
    let seed: u64 = args.next().and_then(|s| s.parse().ok()).expect(usage);
    let mut rng = SplitMix64(seed);
    let open = |path: &str| {
        std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .expect("open a log")
    };
    let log = open(&log_path);
    let commit_log = open(&commit_log_path);

    let client = trailhound::Builder::new("k", "http://127.0.0.1:9", dir)
        .conditions(trailhound::DeviceConditions {
            network: trailhound::Network::Offline,
            ..Default::default()
        })
        // Caps far above what a run fills, so that no eviction is taken for crash loss.
        .with_policy(|p| {
            p.max_queue_bytes = 1 << 30;
            p.max_queue_events = 10_000_000;
        })
        .build()
        .expect("client");
    let client = Arc::new(client);
    let watched = Arc::clone(&client);
    std::thread::spawn(move || watch_commits(&watched, &commit_log));

    let mut burst_left = 0u64;
    for i in 0u64.. {
        // A call refused with Backpressure was not accepted: try the same number again,
        // so that the accepted numbers stay a gap-free sequence.
        loop {
            match client.track("Crash Test", serde_json::json!({ "i": i })) {
                Ok(()) => break,
                Err(trailhound::Error::Backpressure) => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                Err(e) => panic!("{e}"),
            }
        }
        let accepted_at = monotonic_ns();
        let mut slot = [0u8; 16];
        slot[..8].copy_from_slice(&(i + 1).to_le_bytes());
        slot[8..].copy_from_slice(&accepted_at.to_le_bytes());
        log.write_all_at(&slot, i * 16)
            .expect("write the acceptance log");

        match pattern.as_str() {
            "steady" => {}
            "bursts" => {
                if burst_left == 0 {
                    std::thread::sleep(Duration::from_millis(rng.below(121)));
                    burst_left = 1 + rng.below(3000);
                }
                burst_left -= 1;
            }
            "paced" => std::thread::sleep(Duration::from_micros(rng.below(3001))),
            other => panic!("unknown pattern {other}; {usage}"),
        }
    }
}

/// Records when the committed count grows (see the module doc), until the process dies.
fn watch_commits(client: &trailhound::Client, log: &File) {
    let mut committed = 0;
    let mut slot_index = 0u64;
    let mut previous_poll = monotonic_ns();
    loop {
        let before = monotonic_ns();
        let s = client.stats();
        let after = monotonic_ns();
        let now_committed = s.queued_events - s.uncommitted_events;
        if now_committed != committed {
            committed = now_committed;
            let mut slot = [0u8; 24];
            slot[..8].copy_from_slice(&committed.to_le_bytes());
            slot[8..16].copy_from_slice(&previous_poll.to_le_bytes());
            slot[16..].copy_from_slice(&after.to_le_bytes());
            log.write_all_at(&slot, slot_index * 24)
                .expect("write the commit log");
            slot_index += 1;
        }
        previous_poll = before;
        std::thread::sleep(Duration::from_micros(500));
    }
}
