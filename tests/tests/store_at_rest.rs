//! Data at rest in the native SQLite queue: what stays on the disk after events are
//! delivered or purged (opt-out), how large the file stays, who may read it, and what a
//! damaged file does to the store. Every check looks at the real files.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use serde_json::value::RawValue;
use trailhound::store::{SqliteStore, DB_FILE};
use trailhound::{Builder, DeviceConditions, Network};
use trailhound_core::message::{EventJson, MessageType, QueuedEvent, SharedContext};
use trailhound_core::store::QueueStore;

/// What the tests look for in the raw bytes of every file.
const MARKER: &str = "MARKER-7f3a-opted-out-user-secret";

/// A context holding `marker`, stored once for the events that share it.
fn context_with(marker: &str) -> SharedContext {
    let json = format!("{{\"device\":{{\"name\":\"{marker}\"}}}}");
    SharedContext::from(RawValue::from_string(json).unwrap())
}

/// Track events with about `size` bytes of JSON, each with the marker in its properties
/// and in the context they share.
fn marked(seqs: std::ops::RangeInclusive<u64>, size: usize) -> Vec<QueuedEvent> {
    marked_with(seqs, size, &context_with(MARKER))
}

/// [`marked`] events sharing `context`.
fn marked_with(
    seqs: std::ops::RangeInclusive<u64>,
    size: usize,
    context: &SharedContext,
) -> Vec<QueuedEvent> {
    seqs.map(|seq| {
        let head = format!(
            "{{\"type\":\"track\",\"event\":\"Song Played\",\"messageId\":\"m{seq}\",\
             \"properties\":{{\"secret\":\"{MARKER}\",\"pad\":\""
        );
        let pad = size.saturating_sub(head.len() + 3);
        QueuedEvent {
            seq,
            message_id: format!("m{seq}"),
            kind: MessageType::Track,
            name: Some("Song Played".into()),
            created_ms: 1_700_000_000_000 + seq as i64,
            json: EventJson::with_context(
                format!("{head}{}\"}}}}", "x".repeat(pad)),
                SharedContext::clone(context),
            ),
        }
    })
    .collect()
}

/// Inserts marked events 1 to `events` (a multiple of 500) of 400 bytes each, 500 a commit.
fn fill(store: &mut SqliteStore, events: u64) {
    for first in (1..=events).step_by(500) {
        store.insert(&marked(first..=first + 499, 400)).unwrap();
    }
}

fn open(dir: &Path) -> SqliteStore {
    let opened = SqliteStore::open(dir).unwrap();
    assert_eq!(opened.recovered, None);
    opened.store
}

/// Every file in `dir` (not recursing) whose bytes contain the marker.
fn files_with_marker(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = fs::read(&path).unwrap();
        if bytes.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()) {
            found.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    found.sort();
    found
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn corrupt_copies(dir: &Path) -> Vec<String> {
    names(dir)
        .into_iter()
        .filter(|n| n.starts_with("trailhound.db.corrupt-"))
        .collect()
}

/// The queue's files: the database and the commit groups beside it.
fn db_size(dir: &Path) -> u64 {
    let groups = format!("{DB_FILE}{}", trailhound::store::GROUPS_SUFFIX);
    fs::metadata(dir.join(DB_FILE)).unwrap().len()
        + fs::metadata(dir.join(groups)).map_or(0, |m| m.len())
}

/// Garbage that is no SQLite database but holds tracked data, as a damaged file does.
fn garbage() -> Vec<u8> {
    format!("not a database; it once held {MARKER} ")
        .repeat(200)
        .into_bytes()
}

/// After the opt-out purge, no byte of a purged event is left in the database, its WAL
/// or its shared-memory file, neither while the store is open nor after it is closed.
#[test]
fn purge_leaves_no_event_bytes_in_db_or_wal() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    // Several commits, some rows larger than a page (overflow pages), some delivered.
    for chunk in 0..10u64 {
        let first = chunk * 100 + 1;
        let size = if chunk % 3 == 0 { 6000 } else { 400 };
        store.insert(&marked(first..=first + 99, size)).unwrap();
    }
    store.delete(&(1..=150).collect::<Vec<_>>()).unwrap();
    assert!(
        !files_with_marker(dir.path()).is_empty(),
        "the test sees the events"
    );

    let removed = store.clear(0).unwrap();
    assert_eq!(removed.events, 850);
    assert_eq!(files_with_marker(dir.path()), Vec::<String>::new(), "open");
    assert_eq!(store.snapshot().unwrap().events, 0);
    drop(store);
    assert_eq!(
        files_with_marker(dir.path()),
        Vec::<String>::new(),
        "closed"
    );
}

/// A context no queued event carries any more leaves the database once the queue has
/// emptied: here an older one (with the marker), after every event was delivered under
/// a newer one; the rows the context was removed from stay in use, so FAST zeroes it.
#[test]
fn contexts_leave_with_their_events() {
    use trailhound_core::store::conformance::event_sharing;
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let (older, newer) = (context_with(MARKER), context_with("a newer context"));
    let evs = |seqs: std::ops::RangeInclusive<u64>, context: &SharedContext| {
        seqs.map(|i| event_sharing(i, 1, 500, context))
            .collect::<Vec<_>>()
    };
    store.insert(&evs(1..=300, &older)).unwrap();
    store.insert(&evs(301..=600, &newer)).unwrap();
    let seqs: Vec<u64> = (1..=600).collect();
    for batch in seqs.chunks(100) {
        store.delete(batch).unwrap();
    }
    assert_eq!(store.snapshot().unwrap().events, 0);
    drop(store);
    assert_eq!(files_with_marker(dir.path()), Vec::<String>::new());
}

/// Delivered events may stay in free pages (`secure_delete = FAST`), but not past an
/// opt-out: after the purge no byte of a delivered or purged event is left anywhere.
#[test]
fn purge_leaves_no_delivered_event_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    fill(&mut store, 2_000);
    let seqs: Vec<u64> = (1..=2_000).collect();
    for batch in seqs.chunks(500) {
        store.delete(batch).unwrap();
    }
    store.insert(&marked(2_001..=2_100, 400)).unwrap();
    store.delete(&(2_001..=2_050).collect::<Vec<_>>()).unwrap();
    assert_eq!(store.snapshot().unwrap().events, 50);
    store.clear(0).unwrap();
    assert_eq!(files_with_marker(dir.path()), Vec::<String>::new(), "open");
    drop(store);
    assert_eq!(
        files_with_marker(dir.path()),
        Vec::<String>::new(),
        "closed"
    );
}

/// Delivered events stay in the file (as rows behind the watermark) while events are
/// queued behind them; the opt-out purge removes them with the queued ones.
#[test]
fn purge_removes_delivered_rows_behind_queued_events() {
    use trailhound_core::store::conformance::event;
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    store
        .insert(&marked_with(1..=500, 400, &context_with("plain")))
        .unwrap();
    // Queued behind the delivered ones: events without the marker.
    store
        .insert(&(501..=600).map(|i| event(i, 1, 400)).collect::<Vec<_>>())
        .unwrap();
    store.delete(&(1..=500).collect::<Vec<_>>()).unwrap();
    assert_eq!(store.snapshot().unwrap().events, 100);
    assert!(
        !files_with_marker(dir.path()).is_empty(),
        "delivered, still in the file"
    );
    assert_eq!(store.clear(0).unwrap().events, 100);
    assert_eq!(files_with_marker(dir.path()), Vec::<String>::new(), "open");
    drop(store);
    assert_eq!(
        files_with_marker(dir.path()),
        Vec::<String>::new(),
        "closed"
    );
}

/// Events spared by the purge (a batch in flight) leave the WAL once they are deleted.
#[test]
fn purge_wipes_wal_once_spared_events_are_gone() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    store.insert(&marked(1..=300, 500)).unwrap();
    store.clear(20).unwrap();
    // The twenty in flight are still queued, so their bytes are too.
    assert!(!files_with_marker(dir.path()).is_empty());
    store.delete(&(1..=20).collect::<Vec<_>>()).unwrap();
    assert_eq!(files_with_marker(dir.path()), Vec::<String>::new());
}

/// Opting out through the client leaves no tracked byte anywhere in the data directory,
/// including the copy of a corrupt database found at start-up.
#[test]
fn client_opt_out_leaves_no_event_bytes() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join(DB_FILE), garbage()).unwrap();
    let client = Builder::new("key", "http://127.0.0.1:9", dir.path())
        .conditions(DeviceConditions {
            network: Network::Offline,
            ..DeviceConditions::default()
        })
        .build()
        .unwrap();
    assert_eq!(corrupt_copies(dir.path()).len(), 1, "recovered at start-up");
    for i in 0..500 {
        client
            .track("Song Played", json!({"secret": MARKER, "i": i}))
            .unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while client.stats().uncommitted_events > 0 || client.stats().accepted < 500 {
        assert!(std::time::Instant::now() < deadline, "{:?}", client.stats());
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!files_with_marker(dir.path()).is_empty());
    client.opt_out().unwrap();
    client.shutdown(Duration::from_secs(10)).unwrap();
    drop(client);
    assert_eq!(files_with_marker(dir.path()), Vec::<String>::new());
    assert_eq!(corrupt_copies(dir.path()), Vec::<String>::new());
}

/// Once a full queue (20 000 events, about 8 MB) is delivered, the file gives the space
/// back: it ends below 1.5 MiB.
#[test]
fn file_shrinks_after_queue_drains() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    fill(&mut store, 20_000);
    drop(store);
    let full = db_size(dir.path());
    assert!(full > 8_000_000, "{full}");

    let mut store = open(dir.path());
    loop {
        let batch = store.load(100, 1 << 20).unwrap();
        if batch.is_empty() {
            break;
        }
        let seqs: Vec<u64> = batch.iter().map(|e| e.seq).collect();
        store.delete(&seqs).unwrap();
    }
    drop(store);
    let empty = db_size(dir.path());
    eprintln!("file size: {full} B full, {empty} B drained");
    assert!(
        empty < 1536 * 1024,
        "{empty} B after draining from {full} B"
    );
}

/// A full queue evicted by its caps gives the space back too, and the file is reused.
#[test]
fn file_shrinks_after_eviction() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    fill(&mut store, 10_000);
    store.evict(10, u64::MAX, 0, 0).unwrap();
    drop(store);
    let size = db_size(dir.path());
    assert!(size < 1536 * 1024, "{size} B after evicting to 10 events");
    assert_eq!(open(dir.path()).snapshot().unwrap().events, 10);
}

fn recovered_message(opened: &trailhound::store::Opened) -> &str {
    opened.recovered.as_deref().unwrap()
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

/// Of the copies of corrupt databases, only the newest is kept, for at most a week,
/// and the opt-out purge deletes it.
#[test]
fn corrupt_copies_are_bounded_and_purged() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join(DB_FILE);

    fs::write(&db, garbage()).unwrap();
    fs::write(dir.path().join("trailhound.db-wal"), garbage()).unwrap();
    let first = SqliteStore::open(dir.path()).unwrap();
    assert!(first.recovered.is_some());
    let first_copies = corrupt_copies(dir.path());
    assert!(
        first_copies.iter().any(|n| n.ends_with("-wal")),
        "the copy keeps its WAL: {first_copies:?}"
    );
    drop(first);

    // Damaged again: a second copy replaces the first.
    fs::write(&db, b"another damaged file ".repeat(300)).unwrap();
    let second = SqliteStore::open(dir.path()).unwrap();
    assert!(second.recovered.is_some());
    let copies = corrupt_copies(dir.path());
    assert_eq!(copies.len(), 1, "{copies:?}");
    assert!(!first_copies.contains(&copies[0]), "{copies:?}");
    assert!(
        recovered_message(&second).contains(&copies[0]),
        "the message names the copy kept"
    );
    drop(second);

    // An eight-day-old copy (with a stray WAL) goes at the next open, a fresh one stays.
    let old = format!("trailhound.db.corrupt-{}", now_ms() - 8 * 24 * 3_600_000);
    fs::remove_file(dir.path().join(&copies[0])).unwrap();
    fs::write(dir.path().join(&old), garbage()).unwrap();
    fs::write(dir.path().join(format!("{old}-wal")), garbage()).unwrap();
    drop(open(dir.path()));
    assert_eq!(corrupt_copies(dir.path()), Vec::<String>::new());
    let recent = format!("trailhound.db.corrupt-{}", now_ms() - 3_600_000);
    fs::write(dir.path().join(&recent), garbage()).unwrap();
    let mut store = open(dir.path());
    assert_eq!(corrupt_copies(dir.path()), vec![recent]);

    // The opt-out purge deletes it: it holds events the user asked to forget.
    store.clear(0).unwrap();
    assert_eq!(corrupt_copies(dir.path()), Vec::<String>::new());
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
fn store_files(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

/// The data directory the store creates is 0700 and its files 0600, whatever the umask.
#[cfg(unix)]
#[test]
fn new_files_are_private() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("app").join("trailhound");
    let mut store = open(&dir);
    store.insert(&marked(1..=10, 200)).unwrap();
    let files = store_files(&dir);
    let names: Vec<_> = files.iter().map(|p| p.file_name().unwrap()).collect();
    for n in [
        "trailhound.db",
        "trailhound.db-wal",
        "trailhound.db-shm",
        "trailhound.lock",
    ] {
        assert!(names.iter().any(|m| *m == n), "{n} in {names:?}");
    }
    assert_eq!(mode(&dir), 0o700);
    for f in &files {
        assert_eq!(mode(f), 0o600, "{}", f.display());
    }
}

/// Files of the store found readable by others (an older version, a restore) are
/// tightened to 0600 when the store opens, corrupt copies included.
#[cfg(unix)]
#[test]
fn existing_files_are_tightened() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = open(dir.path());
        store.insert(&marked(1..=10, 200)).unwrap();
    }
    let copy = dir
        .path()
        .join(format!("trailhound.db.corrupt-{}", now_ms()));
    fs::write(&copy, garbage()).unwrap();
    let wal = dir.path().join("trailhound.db-wal");
    fs::write(&wal, b"").unwrap();
    for f in store_files(dir.path()) {
        fs::set_permissions(&f, fs::Permissions::from_mode(0o644)).unwrap();
    }
    let store = open(dir.path());
    for f in store_files(dir.path()) {
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
    drop(store);
}
