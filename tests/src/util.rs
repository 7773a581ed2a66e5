//! Small pieces the integration tests and the crash child share: device conditions, a
//! client builder that records notifications, a bounded wait on a client's stats, the
//! `CLOCK_MONOTONIC` reader and a seeded PRNG.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use trailhound::{Builder, Client, Notification, Stats};

/// On Wi-Fi while charging (nothing holds uploads back), and no network (nothing is
/// uploaded): the engine's own test conditions.
pub use trailhound::core::testing::{offline, wifi_charging as wifi};

/// Every notification a client's listener heard, in order.
pub type Notes = Arc<Mutex<Vec<Notification>>>;

/// A client builder with the tests' write key, jitter seed 1, a backoff from 100 ms up to
/// `backoff_max`, and a listener recording every notification into `notes`.
pub fn recording_builder(
    endpoint: &str,
    dir: &Path,
    notes: &Notes,
    backoff_max: Duration,
) -> Builder {
    let notes = Arc::clone(notes);
    Builder::new("test-key", endpoint, dir)
        .jitter_seed(1)
        .with_policy(|p| {
            p.backoff_base = Duration::from_millis(100);
            p.backoff_max = backoff_max;
        })
        .listener(move |n: &Notification| notes.lock().unwrap().push(n.clone()))
}

/// Polls the client's stats until `done` holds of them or `within` has passed, and
/// returns the last stats read.
pub fn wait_stats(client: &Client, within: Duration, done: impl Fn(&Stats) -> bool) -> Stats {
    let deadline = Instant::now() + within;
    loop {
        let stats = client.stats();
        if done(&stats) || Instant::now() > deadline {
            return stats;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Polls `done` every 10 ms until it holds (`true`) or `within` has passed (`false`).
pub fn wait_until(within: Duration, done: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while !done() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// `CLOCK_MONOTONIC` in nanoseconds: the clock `std::time::Instant` reads on Linux, whose
/// value std does not expose, and one that two processes on one machine share.
pub fn monotonic_ns() -> u64 {
    #[repr(C)]
    struct Timespec {
        tv_sec: std::ffi::c_long,
        tv_nsec: std::ffi::c_long,
    }
    extern "C" {
        fn clock_gettime(clock: std::ffi::c_int, tp: *mut Timespec) -> std::ffi::c_int;
    }
    const CLOCK_MONOTONIC: std::ffi::c_int = 1;
    let mut ts = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    let rc = unsafe { clock_gettime(CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_MONOTONIC)");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// splitmix64: reproducible numbers from a seed.
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`0` when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}
