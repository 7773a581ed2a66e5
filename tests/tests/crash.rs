//! The crash window: a process killed with SIGKILL loses at most the events accepted in
//! the last commit interval (plus the one commit under way), and never leaves a hole in the
//! queue.
//!
//! The child (`src/bin/crash_child.rs`) records, right where each `track()` returned, the
//! event's number and the `CLOCK_MONOTONIC` time into a file through the page cache, which
//! survives a SIGKILL. The parent reads the same clock right before `kill()`, so acceptance
//! and kill times are on one clock and no pipe latency counts. The child also
//! records when `stats()` showed each commit done, which bounds how long a commit takes
//! (the "one commit under way" of the README's crash window).

use std::fmt::Write as _;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use trailhound::store::SqliteStore;
use trailhound::Policy;
use trailhound_tests::util::{monotonic_ns, SplitMix64};

/// SIGKILL trials in the test: enough that kills land in every phase of a commit cycle.
const TRIALS: u64 = 120;

/// Set to a number to rerun the trials of an earlier run (each run prints its seed).
const SEED_ENV: &str = "TRAILHOUND_CRASH_SEED";

/// A commit the child saw in `stats()`: the committed count, published between the two times.
struct Commit {
    committed: u64,
    published_after: u64,
    published_before: u64,
}

/// What one SIGKILL left behind.
struct Trial {
    pattern: &'static str,
    /// How long after the spawn the parent sent SIGKILL.
    offset: Duration,
    /// Acceptance times (CLOCK_MONOTONIC ns) of events 0, 1, …, as the child recorded them.
    accepted: Vec<u64>,
    /// The commits `stats()` showed before the kill, in order.
    commits: Vec<Commit>,
    /// Events on disk: numbers 0..stored (checked gap-free).
    stored: u64,
    /// CLOCK_MONOTONIC right before `kill()`: the child lived at least until then, so an
    /// event lost although accepted more than the window before this is a certain breach
    /// (the parent may be preempted around `kill()`; timing after it could overstate).
    killed_at: u64,
    /// How long the `kill()` call took (how much later the child may have died).
    kill_call: Duration,
}

impl Trial {
    /// Accepted events that are not on disk.
    fn lost(&self) -> u64 {
        self.accepted.len() as u64 - self.stored.min(self.accepted.len() as u64)
    }

    /// How long before the kill the oldest lost event was accepted: the loss window this
    /// trial shows (`None`: nothing was lost).
    fn loss_window(&self) -> Option<Duration> {
        let first_lost = *self.accepted.get(self.stored as usize)?;
        Some(Duration::from_nanos(
            self.killed_at.saturating_sub(first_lost),
        ))
    }

    /// Upper bounds of how long each commit took, from the one before it being published
    /// to it being published (handling its events included), for the commits of at least
    /// `min_events` events (those made at once, not after waiting for the timer).
    fn commit_durations(&self, min_events: u64) -> impl Iterator<Item = Duration> + '_ {
        self.commits
            .windows(2)
            .filter(move |w| w[1].committed - w[0].committed >= min_events)
            .map(|w| {
                Duration::from_nanos(w[1].published_before.saturating_sub(w[0].published_after))
            })
    }

    /// How long before the kill the newest event on disk was accepted.
    fn newest_survivor_age(&self) -> Option<Duration> {
        let newest = *self.accepted.get((self.stored as usize).checked_sub(1)?)?;
        Some(Duration::from_nanos(self.killed_at.saturating_sub(newest)))
    }
}

/// Reads the child's commit log: 24-byte slots, the committed count (never 0) and two times.
fn read_commit_log(bytes: &[u8]) -> Vec<Commit> {
    let mut commits: Vec<Commit> = Vec::new();
    for slot in bytes.chunks(24) {
        assert_eq!(slot.len(), 24, "torn slot in the commit log");
        let word = |r: std::ops::Range<usize>| u64::from_le_bytes(slot[r].try_into().unwrap());
        let commit = Commit {
            committed: word(0..8),
            published_after: word(8..16),
            published_before: word(16..24),
        };
        assert!(
            commits
                .last()
                .is_none_or(|c| c.committed < commit.committed),
            "the committed count went down"
        );
        commits.push(commit);
    }
    commits
}

/// Reads the child's acceptance log: slot `i` holds `i + 1` and the acceptance time.
fn read_acceptance_log(bytes: &[u8]) -> Vec<u64> {
    let mut accepted = Vec::new();
    let mut ended = false;
    for (i, slot) in bytes.chunks(16).enumerate() {
        let word = |r: std::ops::Range<usize>| u64::from_le_bytes(slot[r].try_into().unwrap());
        assert_eq!(slot.len(), 16, "torn slot {i} in the acceptance log");
        let (n, at) = (word(0..8), word(8..16));
        if n == 0 {
            ended = true;
            continue;
        }
        assert!(!ended, "the acceptance log has a hole before slot {i}");
        assert_eq!(n, i as u64 + 1, "slot {i} of the acceptance log");
        assert!(
            accepted.last().is_none_or(|&prev| prev <= at),
            "acceptance times go back at slot {i}"
        );
        accepted.push(at);
    }
    accepted
}

/// Runs the child with `pattern`, SIGKILLs it `offset` after the spawn, and checks that
/// the database is intact and holds a gap-free prefix of the accepted events.
fn trial(exe: &Path, pattern: &'static str, offset: Duration, seed: u64) -> Trial {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let log_path = tmp.path().join("accepted.log");
    std::fs::File::create(&log_path).unwrap();
    let commit_log_path = tmp.path().join("commits.log");
    std::fs::File::create(&commit_log_path).unwrap();

    let spawned = Instant::now();
    let mut child = Command::new(exe)
        .arg(&data)
        .arg(&log_path)
        .arg(&commit_log_path)
        .arg(pattern)
        .arg(seed.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(offset.saturating_sub(spawned.elapsed()));
    let killed_at = monotonic_ns();
    child.kill().unwrap(); // SIGKILL
    let kill_returned = monotonic_ns();
    let output = child.wait_with_output().unwrap();
    assert_eq!(
        output.status.signal(),
        Some(9),
        "the child ({pattern}, seed {seed}) died of SIGKILL, not {:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );

    let accepted = read_acceptance_log(&std::fs::read(&log_path).unwrap());
    let commits = read_commit_log(&std::fs::read(&commit_log_path).unwrap());
    let opened = SqliteStore::open(&data).unwrap();
    assert_eq!(
        opened.recovered, None,
        "a SIGKILL {offset:?} after the start ({pattern}) corrupted the database"
    );
    let mut numbers = Vec::new();
    opened
        .store
        .iter_events(|ev| {
            let v: serde_json::Value = serde_json::from_str(&ev.json.wire()).unwrap();
            numbers.push(v["properties"]["i"].as_u64().unwrap());
            true
        })
        .unwrap();
    numbers.sort_unstable();
    if let Some((n, i)) = numbers.iter().zip(0u64..).find(|(n, i)| **n != *i) {
        panic!(
            "{pattern}, killed {offset:?} after the start: what survived is not a gap-free \
             prefix: {} events on disk, the {i}th smallest is {n}, the largest {:?}",
            numbers.len(),
            numbers.last()
        );
    }
    let stored = numbers.len() as u64;
    // The child may be killed between track() returning and its log write: at most one
    // accepted event is missing from the log.
    assert!(
        stored <= accepted.len() as u64 + 1,
        "{pattern}: {stored} events on disk, only {} recorded as accepted",
        accepted.len()
    );
    // Committed means on disk: a SIGKILL loses nothing that stats() showed committed.
    let reported = commits.last().map_or(0, |c| c.committed);
    assert!(
        stored >= reported,
        "{pattern}, killed {offset:?} after the start: stats() showed {reported} events \
         committed, only {stored} are on disk"
    );
    Trial {
        pattern,
        offset,
        accepted,
        commits,
        stored,
        killed_at,
        kill_call: Duration::from_nanos(kill_returned - killed_at),
    }
}

/// `q`-quantile of sorted durations.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn distribution(mut v: Vec<Duration>) -> String {
    v.sort_unstable();
    let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1e3);
    format!(
        "n={} min {} p50 {} p90 {} p99 {} max {} ms",
        v.len(),
        ms(quantile(&v, 0.0)),
        ms(quantile(&v, 0.5)),
        ms(quantile(&v, 0.9)),
        ms(quantile(&v, 0.99)),
        ms(quantile(&v, 1.0)),
    )
}

/// Over 120 SIGKILLs at random moments (during startup, steady tracking, bursts and paced
/// tracking), what is on disk is a gap-free prefix of what was accepted, holds everything
/// `stats()` showed committed, the database is never corrupt, and every event accepted more
/// than the documented window (`commit_interval` plus the one commit under way) before the
/// kill survived.
#[test]
fn sigkill_loses_at_most_the_commit_window() {
    let seed = std::env::var(SEED_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("{SEED_ENV}={seed}");
    let mut rng = SplitMix64(seed);
    let policy = Policy::default();

    // A private copy of the child: a concurrent `cargo build` relinking the original
    // would make a spawn fail with "text file busy".
    let bin = tempfile::tempdir().unwrap();
    let exe = bin.path().join("crash_child");
    std::fs::copy(env!("CARGO_BIN_EXE_crash_child"), &exe).unwrap();

    let mut trials = Vec::new();
    for t in 0..TRIALS {
        let pattern = ["steady", "bursts", "paced"][(t % 3) as usize];
        // One kill in five during startup (opening the database, the first commits).
        let offset_ms = if t % 5 == 0 {
            rng.below(40)
        } else {
            40 + rng.below(361)
        };
        trials.push(trial(
            &exe,
            pattern,
            Duration::from_millis(offset_ms),
            rng.next_u64(),
        ));
    }

    // The one commit under way: the longest commit seen in this run, measured where the
    // background thread is busiest (a tight loop, commits of at least commit_max_events
    // made at once), from the commit before it being published to it being published.
    let commit_times: Vec<Duration> = trials
        .iter()
        .filter(|t| t.pattern == "steady")
        .flat_map(|t| t.commit_durations(policy.commit_max_events as u64))
        .collect();
    assert!(
        !commit_times.is_empty(),
        "no commit of the tight loop was measured"
    );
    let one_commit = commit_times.iter().copied().max().unwrap_or_default();
    let window = policy.commit_interval + one_commit;

    let mut report = String::new();
    for pattern in ["steady", "bursts", "paced"] {
        let of: Vec<&Trial> = trials.iter().filter(|t| t.pattern == pattern).collect();
        let _ = writeln!(
            report,
            "{pattern}: {} kills, {} events accepted, {} lost; loss window {}; \
             kill - newest survivor {}",
            of.len(),
            of.iter().map(|t| t.accepted.len()).sum::<usize>(),
            of.iter().map(|t| t.lost()).sum::<u64>(),
            distribution(of.iter().filter_map(|t| t.loss_window()).collect()),
            distribution(of.iter().filter_map(|t| t.newest_survivor_age()).collect()),
        );
    }
    let _ = writeln!(
        report,
        "all: loss window {}; over {:?}: {} trials; one commit (tight loop) {}; \
         window asserted {window:?}; kill() call took at most {:?}",
        distribution(trials.iter().filter_map(|t| t.loss_window()).collect()),
        policy.commit_interval,
        trials
            .iter()
            .filter(|t| t.loss_window().is_some_and(|w| w > policy.commit_interval))
            .count(),
        distribution(commit_times),
        trials.iter().map(|t| t.kill_call).max().unwrap_or_default(),
    );
    eprint!("{report}");

    let violations: Vec<String> = trials
        .iter()
        .filter(|t| t.loss_window().is_some_and(|w| w > window))
        .map(|t| {
            format!(
                "{} killed {:?} after the start: lost {} of {} events, the oldest accepted {:?} \
                 before the kill",
                t.pattern,
                t.offset,
                t.lost(),
                t.accepted.len(),
                t.loss_window().unwrap()
            )
        })
        .collect();
    assert!(
        violations.is_empty(),
        "events accepted more than {window:?} before a SIGKILL were lost \
         ({SEED_ENV}={seed}):\n{}\n{report}",
        violations.join("\n")
    );
    assert!(
        trials.iter().any(|t| t.lost() > 0),
        "no kill landed while events were waiting for a commit: the test saw no window\n{report}"
    );
}
