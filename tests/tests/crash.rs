//! The crash window: a process killed with SIGKILL loses at most the events accepted in
//! the last commit interval, and never leaves a hole in the queue.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use trailhound::store::SqliteStore;
use trailhound::Policy;

/// Events accepted more than one commit interval (plus scheduling slack) before a SIGKILL
/// are on disk; what is on disk is a gap-free prefix of what was accepted.
#[test]
fn sigkill_loses_at_most_the_commit_window() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_crash_child"))
        .arg(dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // The pipe stays open until after the kill, so the child is alive (tracking, or
    // blocked writing to a full pipe) when SIGKILL arrives.
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let start = Instant::now();
    let mut accepted: Vec<(u64, Instant)> = Vec::new();
    for line in lines.by_ref() {
        let i: u64 = line.unwrap().trim().parse().unwrap();
        accepted.push((i, Instant::now()));
        if start.elapsed() > Duration::from_millis(1500) {
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL on Unix
    let killed_at = Instant::now();
    let status = child.wait().unwrap();
    drop(lines);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.signal(),
        Some(9),
        "the child died of SIGKILL: {status:?}"
    );

    let mut stored = Vec::new();
    let store = SqliteStore::open(dir.path()).unwrap().store;
    store
        .iter_events(|ev| {
            let v: serde_json::Value = serde_json::from_str(&ev.json).unwrap();
            stored.push(v["properties"]["i"].as_u64().unwrap());
            true
        })
        .unwrap();
    stored.sort_unstable();
    let expected: Vec<u64> = (0..stored.len() as u64).collect();
    if stored != expected {
        let first_gap = stored.iter().zip(0u64..).find(|(s, i)| **s != *i);
        panic!(
            "what survived is not a gap-free prefix: {} events, first mismatch {:?}, last {:?}",
            stored.len(),
            first_gap,
            stored.last()
        );
    }

    let window = Policy::default().commit_interval + Duration::from_millis(500);
    let must_survive = accepted
        .iter()
        .filter(|(_, at)| killed_at.duration_since(*at) > window)
        .count() as u64;
    let lost = accepted.len() as u64 - (stored.len() as u64).min(accepted.len() as u64);
    eprintln!(
        "accepted {} events, {} on disk after SIGKILL, {} lost (window {:?})",
        accepted.len(),
        stored.len(),
        lost,
        window
    );
    assert!(accepted.len() > 100, "the child tracked events");
    assert!(
        stored.len() as u64 >= must_survive,
        "{} events were accepted more than {window:?} before the kill, only {} survived",
        must_survive,
        stored.len()
    );
}
