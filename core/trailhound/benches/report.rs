//! The performance report: percentile latencies, throughputs, CPU, disk writes, wake-ups
//! and peak memory, each beside a baseline measured in the same run, printed as one table
//! with the targets.
//!
//! ```text
//! cargo bench -p trailhound --bench report              # full run, under a minute
//! cargo bench -p trailhound --bench report -- --quick   # a tenth of the events
//! TRAILHOUND_BENCH_QUICK=1 cargo bench -p trailhound --bench report
//! TRAILHOUND_BENCH_ONLY=a,e cargo bench -p trailhound --bench report   # some parts only
//! TRAILHOUND_BENCH_CALL_QUEUE=1000 cargo bench ...   # experiment: another call_queue_capacity
//! ```
//!
//! - (a) `track()` latency per call (p50/p99/p99.9) on an offline client while the background
//!   thread commits concurrently; baseline: `try_send` of a pre-built `String` of the same
//!   size into a `sync_channel` drained by another thread. Every call counts, also those
//!   refused (`Error::Backpressure`, a full channel): a refused call is a call the app made
//!   and waited for. The `refused` column says how many of the calls were refused.
//! - (b) durable throughput: events per second from the first `track()` until the stats show
//!   every event committed; baseline: the same rows inserted with rusqlite into a table of
//!   the same shape, in one transaction with a prepared statement, same PRAGMAs.
//! - (c) end to end: events per second from the first `track()` until the loopback
//!   collector acknowledged them all (roomy queue, calls retried when refused).
//! - (d) peak memory (VmHWM) of a child process that queues a million events offline;
//!   baseline: a child that only builds the same events.
//! - (e) where `track()`'s time goes: its steps timed in isolation on this thread, and the
//!   same work's latency without the background thread.
//!
//! Issue 10's figures, all from one fresh child process of this binary with the DEFAULT
//! policy (endpoint: a lean loopback collector in this parent process, whose CPU does not
//! count; wifi while charging; the phone context), so that its RSS, CPU and
//! `/proc/self/io` are the SDK's alone (`TRAILHOUND_BENCH_ONLY=f`). Each figure is the
//! median of 3 such children (`TRAILHOUND_BENCH_ROUNDS=n`), counts of failures (refused
//! calls, drops, duplicates) the worst round's:
//!
//! - (f) paced `track()`: 2,000 calls at 2 kHz (each on its 500 us slot, the engine thread
//!   idle in between), each timed, refused calls counted and included; baseline: the same
//!   pacing of `mpsc::Sender::send` of a `String` of the event's size to a consumer parked
//!   in `recv()`, in the same child before the client exists.
//! - (g) burst: then 100,000 back-to-back `track()` calls, never retried; refused calls
//!   counted and included; baseline: the same burst of `send` on the bare channel (after the
//!   client shut down). Peak RSS (VmHWM, reset after the baseline) over paced + burst +
//!   delivery; baseline: a child that only builds the events.
//! - (h) CPU per event, all threads of the child (`CLOCK_PROCESS_CPUTIME_ID`), from the burst's first
//!   `track()` until the SDK knows the collector acknowledged every event; baseline: the
//!   floor, the sum of the pieces measured alone in this process (CPU time of this thread):
//!   track()'s own work, seal, SQLite insert (groups of 256), load, gzip and delete
//!   (batches of 500).
//! - (i) end to end: the burst's events per second from its first `track()` until all are
//!   acknowledged; the collector counts distinct `messageId`s and duplicates.
//! - (j) disk bytes dirtied per event (`/proc/self/io` `write_bytes`) from before the burst
//!   until delivered and the client shut down (its last checkpoint included); baseline: the
//!   bytes one event adds to a batch body before gzip.
//! - (k) idle wake-ups (`TRAILHOUND_BENCH_ONLY=k`): context switches of every thread of
//!   another child over a window (3 s, 1 s quick) with (i) a client with an empty queue,
//!   (ii) a client with events waiting under cellular conditions (held until `max_delay`);
//!   baseline: the same window before the client exists.
//!
//! Misses are reported, never asserted: the machine is shared and noisy.

mod common;

use std::hint::black_box;
use std::path::Path;
use std::process::Command;
use std::sync::mpsc::{sync_channel, TrySendError};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection};
use serde_json::Value;
use trailhound::core::message::{self, Identity};
use trailhound::core::store::QueueStore;
use trailhound::{Builder, Call, Client, DeviceConditions, Network, Policy};

use common::collector::LeanCollector;
use common::sys;
use common::{app_context, message_context, offline, properties, track_retry, wifi, EVENT};

/// Set in the child processes of (d): `rss` queues events, `baseline` only builds them.
const CHILD_ENV: &str = "TRAILHOUND_BENCH_CHILD";
/// How many events the child handles.
const CHILD_EVENTS_ENV: &str = "TRAILHOUND_BENCH_EVENTS";
/// Any non-empty value other than `0`: the quick run.
const QUICK_ENV: &str = "TRAILHOUND_BENCH_QUICK";
/// Runs only some parts, for profiling: `TRAILHOUND_BENCH_ONLY=a,e`.
const ONLY_ENV: &str = "TRAILHOUND_BENCH_ONLY";
/// Overrides `Policy::call_queue_capacity` in every client (an experiment knob).
const CALL_QUEUE_ENV: &str = "TRAILHOUND_BENCH_CALL_QUEUE";
/// The collector's URL, for the children of (f) and (k).
const URL_ENV: &str = "TRAILHOUND_BENCH_URL";
/// How many paced calls the child of (f) makes.
const PACED_ENV: &str = "TRAILHOUND_BENCH_PACED";
/// The idle window of (k), in milliseconds.
const WINDOW_ENV: &str = "TRAILHOUND_BENCH_WINDOW_MS";
/// How many children (f)-(j) runs (3 unless the smoke run); the medians are reported.
const ROUNDS_ENV: &str = "TRAILHOUND_BENCH_ROUNDS";

/// How long to wait for anything (commits, deliveries) before giving up on a measurement.
const PATIENCE: Duration = Duration::from_secs(120);
/// Pause after a refused call (`Error::Backpressure`).
const BACKOFF: Duration = Duration::from_micros(100);

struct Sizes {
    warmup: u64,
    latency: u64,
    durable: u64,
    e2e: u64,
    memory: u64,
    breakdown: u64,
    /// (f): paced calls.
    paced: u64,
    /// (g): burst calls.
    burst: u64,
    /// (h): events of the floor's pieces.
    pieces: u64,
    /// (k): each idle window.
    window: Duration,
    /// (f)-(j): fresh children, one after the other.
    rounds: usize,
}

impl Sizes {
    /// The full sizes divided by `divisor`.
    fn new(divisor: u64) -> Sizes {
        let full = Sizes {
            warmup: 20_000,
            latency: 200_000,
            durable: 200_000,
            e2e: 50_000,
            memory: 1_000_000,
            breakdown: 100_000,
            paced: 2_000,
            burst: 100_000,
            pieces: 20_000,
            window: Duration::from_secs(3),
            rounds: 3,
        };
        Sizes {
            warmup: full.warmup / divisor,
            latency: full.latency / divisor,
            durable: full.durable / divisor,
            e2e: full.e2e / divisor,
            memory: full.memory / divisor,
            breakdown: full.breakdown / divisor,
            paced: full.paced / divisor,
            burst: full.burst / divisor,
            pieces: full.pieces / divisor,
            // 3 s full, 1 s quick, 100 ms for the smoke run.
            window: match divisor {
                1 => full.window,
                10 => Duration::from_secs(1),
                _ => Duration::from_millis(100),
            },
            rounds: std::env::var(ROUNDS_ENV)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(if divisor > 10 { 1 } else { full.rounds })
                .max(1),
        }
    }
}

/// A policy with room for every event of a run, so that no measurement includes eviction.
fn roomy(p: &mut Policy) {
    p.max_queue_events = 2_000_000;
    p.max_queue_bytes = 4 << 30;
    if let Some(cap) = std::env::var(CALL_QUEUE_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
    {
        p.call_queue_capacity = cap;
    }
}

/// A client with the default policy on wifi while charging, sending to `url`: issue 10's
/// scenarios.
fn default_client(url: &str, dir: &Path) -> Client {
    Builder::new("bench-key", url, dir)
        .context(app_context())
        .conditions(wifi())
        .build()
        .expect("client")
}

fn offline_client(dir: &Path) -> Client {
    Builder::new("bench-key", "https://collector.invalid", dir)
        .context(app_context())
        .conditions(offline())
        .with_policy(roomy)
        .build()
        .expect("client")
}

/// Polls the stats until `n` events are queued and none is uncommitted.
fn wait_committed(client: &Client, n: u64) -> bool {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let s = client.stats();
        if s.queued_events >= n && s.uncommitted_events == 0 {
            return true;
        }
        if Instant::now() > deadline {
            eprintln!("gave up waiting for commits: {s:?}");
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// `200k` for 200 000, `50` for 50.
fn count(n: u64) -> String {
    if n >= 1000 && n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

/// `q`-quantile of sorted nanoseconds, in microseconds.
fn quantile_us(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64 / 1_000.0
}

fn mean_us(ns: &[u64]) -> f64 {
    ns.iter().sum::<u64>() as f64 / ns.len().max(1) as f64 / 1_000.0
}

// ----- the table -----

#[derive(Clone, Copy)]
enum Target {
    /// No target: reported for reference.
    None,
    /// The measured value must be at most this.
    AtMost(f64),
    /// The measured value must be at least this.
    AtLeast(f64),
    /// The ratio measured / baseline must be at least this.
    RatioAtLeast(f64),
    /// The ratio measured / baseline must be at most this.
    RatioAtMost(f64),
    /// The value must be at most the first, and the ratio at most the second.
    AtMostAndRatioAtMost(f64, f64),
    /// The value must exceed the baseline by at most this.
    AboveBaselineAtMost(f64),
}

struct Row {
    metric: String,
    value: f64,
    baseline: Option<f64>,
    unit: &'static str,
    target: Target,
    /// Calls refused among those measured (`refused of calls`), ours and the baseline's.
    refused: Option<[(u64, u64); 2]>,
    note: String,
    /// Why the figure does not count (events lost or missing): a miss whatever its value.
    incomplete: Option<String>,
}

impl Row {
    fn new(
        metric: impl Into<String>,
        value: f64,
        baseline: Option<f64>,
        unit: &'static str,
    ) -> Row {
        Row {
            metric: metric.into(),
            value,
            baseline,
            unit,
            target: Target::None,
            refused: None,
            note: String::new(),
            incomplete: None,
        }
    }

    fn target(mut self, target: Target) -> Row {
        self.target = target;
        self
    }

    fn refused(mut self, ours: (u64, u64), baseline: (u64, u64)) -> Row {
        self.refused = Some([ours, baseline]);
        self
    }

    fn note(mut self, note: impl Into<String>) -> Row {
        self.note = note.into();
        self
    }

    /// Marks the figure as not counting, for `reason`, when `incomplete`.
    fn incomplete_if(mut self, incomplete: bool, reason: impl Into<String>) -> Row {
        if incomplete {
            self.incomplete = Some(reason.into());
        }
        self
    }
}

fn fmt_value(v: f64, unit: &str) -> String {
    if v.is_nan() {
        return "n/a".into();
    }
    match unit {
        "ev/s" | "calls" | "B" => format!("{:.0} {unit}", v),
        _ if v >= 100.0 => format!("{v:.0} {unit}"),
        _ if v >= 10.0 => format!("{v:.1} {unit}"),
        _ => format!("{v:.2} {unit}"),
    }
}

/// Prints `rows` as a Markdown table, and their notes after it when `notes`.
fn print_table(rows: &[&Row], notes: bool) {
    let header = [
        "metric",
        "trailhound",
        "baseline",
        "ratio",
        "refused (ours / baseline)",
        "target",
        "verdict",
    ];
    let refused =
        |(r, n): (u64, u64)| format!("{r} of {n} ({:.2}%)", 100.0 * r as f64 / n.max(1) as f64);
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            let ratio = r.baseline.map(|b| r.value / b);
            let verdict = |pass: bool| if pass { "PASS" } else { "MISS" }.to_owned();
            let (target, verdict) = match r.target {
                Target::None => ("-".to_owned(), "-".to_owned()),
                Target::AtMost(max) => (
                    format!("<= {}", fmt_value(max, r.unit)),
                    verdict(r.value <= max),
                ),
                Target::AtLeast(min) => (
                    format!(">= {}", fmt_value(min, r.unit)),
                    verdict(r.value >= min),
                ),
                Target::RatioAtLeast(min) => (
                    format!("ratio >= {min}"),
                    verdict(ratio.is_some_and(|x| x >= min)),
                ),
                Target::RatioAtMost(max) => (
                    format!("ratio <= {max}"),
                    verdict(ratio.is_some_and(|x| x <= max)),
                ),
                Target::AtMostAndRatioAtMost(max, ratio_max) => (
                    format!("<= {} and ratio <= {ratio_max}", fmt_value(max, r.unit)),
                    verdict(r.value <= max && ratio.is_some_and(|x| x <= ratio_max)),
                ),
                Target::AboveBaselineAtMost(extra) => (
                    format!("<= baseline + {}", fmt_value(extra, r.unit)),
                    verdict(r.baseline.is_some_and(|b| r.value <= b + extra)),
                ),
            };
            let verdict = match &r.incomplete {
                Some(why) => format!("MISS ({why})"),
                None => verdict,
            };
            [
                r.metric.clone(),
                fmt_value(r.value, r.unit),
                r.baseline.map_or("-".into(), |b| fmt_value(b, r.unit)),
                ratio.map_or("-".into(), |x| format!("{x:.2}")),
                r.refused.map_or("-".into(), |[ours, base]| {
                    format!("{} / {}", refused(ours), refused(base))
                }),
                target,
                verdict,
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cols: &[String]| {
        let mut s = String::from("|");
        for (i, (c, w)) in cols.iter().zip(widths).enumerate() {
            if i == 0 {
                s += &format!(" {c:<w$} |");
            } else {
                s += &format!(" {c:>w$} |");
            }
        }
        s
    };
    println!("{}", line(&header.map(String::from)));
    println!(
        "|{}|",
        widths
            .iter()
            .map(|w| "-".repeat(w + 2))
            .collect::<Vec<_>>()
            .join("|")
    );
    for row in &cells {
        println!("{}", line(row));
    }
    if !notes {
        return;
    }
    println!();
    for r in rows.iter().filter(|r| !r.note.is_empty()) {
        println!("  {}: {}", r.metric, r.note);
    }
}

// ----- (a) latency -----

fn latency(sizes: &Sizes, rows: &mut Vec<Row>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let client = offline_client(dir.path());
    let mut refused = 0;
    for i in 0..sizes.warmup {
        refused += track_retry(&client, i, BACKOFF);
    }
    wait_committed(&client, sizes.warmup);
    let warmup_refused = refused;

    // Every call is a sample, accepted or refused: leaving the refused ones out would
    // report the latency of the calls that went well. `n` calls are accepted in all.
    let n = sizes.latency as usize;
    let mut samples = Vec::with_capacity(n);
    let mut accepted_only = Vec::with_capacity(n);
    let mut refused = 0u64;
    let mut i = sizes.warmup;
    let started = Instant::now();
    while accepted_only.len() < n {
        let props = properties(i);
        let t = Instant::now();
        let r = client.track(EVENT, props);
        let ns = t.elapsed().as_nanos() as u64;
        samples.push(ns);
        match r {
            Ok(()) => {
                accepted_only.push(ns);
                i += 1;
            }
            Err(trailhound::Error::Backpressure) => {
                refused += 1;
                std::thread::sleep(BACKOFF);
            }
            Err(e) => panic!("track failed: {e}"),
        }
    }
    let wall = started.elapsed();
    let committed = wait_committed(&client, sizes.warmup + sizes.latency);
    let json_len = common::typical_events(1).1[0].json.len();
    client.shutdown(Duration::from_secs(30)).expect("shutdown");
    let track_mean = mean_us(&samples);
    samples.sort_unstable();
    accepted_only.sort_unstable();

    // Baseline: sends of a pre-built String of the event's size until as many were
    // accepted; a send refused because the channel is full is a sample too.
    let (tx, rx) = sync_channel::<String>(Policy::default().call_queue_capacity);
    let drain = std::thread::spawn(move || rx.into_iter().map(|s| s.len() as u64).sum::<u64>());
    let template = "x".repeat(json_len);
    let mut base = Vec::with_capacity(n);
    let mut base_accepted = 0usize;
    let mut full = 0u64;
    for _ in 0..sizes.warmup {
        let _ = tx.send(template.clone());
    }
    while base_accepted < n {
        let s = template.clone();
        let t = Instant::now();
        let r = tx.try_send(s);
        let ns = t.elapsed().as_nanos() as u64;
        base.push(ns);
        match r {
            Ok(()) => base_accepted += 1,
            Err(TrySendError::Full(_)) => {
                full += 1;
                std::thread::sleep(BACKOFF);
            }
            Err(TrySendError::Disconnected(_)) => panic!("drain thread stopped"),
        }
    }
    drop(tx);
    black_box(drain.join().expect("drain thread"));
    let base_mean = mean_us(&base);
    base.sort_unstable();

    let ours = (refused, samples.len() as u64);
    let theirs = (full, base.len() as u64);
    let tag = format!(
        "(a) track() latency, all {} calls incl. refused",
        count(samples.len() as u64)
    );
    let row = |q: &str, value: f64, baseline: f64| {
        Row::new(format!("{tag} {q}"), value, Some(baseline), "us").refused(ours, theirs)
    };
    rows.push(
        row("p50", quantile_us(&samples, 0.50), quantile_us(&base, 0.50)).note(format!(
            "offline, {json_len}-byte events, background commits running; {n} calls accepted and \
             {refused} refused with Backpressure ({:.2}%, each retried after {BACKOFF:?}; \
             {warmup_refused} more in the {}-call warm-up, not measured); the accepted calls \
             alone: p50 {:.2} us, p99 {:.2} us, p99.9 {:.2} us, max {:.0} us; {:.0} calls/s wall; \
             all committed: {committed}; baseline channel full {full} times",
            100.0 * refused as f64 / samples.len().max(1) as f64,
            count(sizes.warmup),
            quantile_us(&accepted_only, 0.5),
            quantile_us(&accepted_only, 0.99),
            quantile_us(&accepted_only, 0.999),
            quantile_us(&accepted_only, 1.0),
            samples.len() as f64 / wall.as_secs_f64()
        )),
    );
    rows.push(
        row("p99", quantile_us(&samples, 0.99), quantile_us(&base, 0.99))
            .target(Target::AtMost(5.0)),
    );
    rows.push(row(
        "p99.9",
        quantile_us(&samples, 0.999),
        quantile_us(&base, 0.999),
    ));
    rows.push(row(
        "max",
        quantile_us(&samples, 1.0),
        quantile_us(&base, 1.0),
    ));
    rows.push(row("mean", track_mean, base_mean));
}

// ----- (b) durable throughput -----

const RAW_SCHEMA: &str = "
    CREATE TABLE events(
        seq INTEGER PRIMARY KEY,
        message_id TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        json TEXT NOT NULL,
        type TEXT,
        name TEXT,
        context_id INTEGER
    );
    CREATE INDEX events_created_ms ON events(created_ms);
";

type RawRow = (
    i64,
    String,
    i64,
    i64,
    String,
    Option<String>,
    Option<String>,
    Option<i64>,
);

/// Inserts `rows` into a fresh database with the queue's table and PRAGMAs (2 KiB pages,
/// WAL, synchronous=NORMAL) in one transaction through one prepared statement. Returns the
/// time from `BEGIN` to `COMMIT`.
fn raw_insert(rows: &[RawRow]) -> Duration {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut conn = Connection::open(dir.path().join("raw.db")).expect("open");
    // The queue's page size (set before anything is written).
    conn.execute_batch("PRAGMA page_size = 2048;")
        .expect("pragma");
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .expect("WAL");
    assert!(mode.eq_ignore_ascii_case("wal"), "journal mode {mode}");
    conn.execute_batch("PRAGMA synchronous = NORMAL;")
        .expect("pragma");
    conn.execute_batch(RAW_SCHEMA).expect("schema");
    let t = Instant::now();
    let tx = conn.transaction().expect("begin");
    {
        let mut stmt = tx
            .prepare(
                "INSERT INTO events(seq, message_id, created_ms, bytes, json, type, name,
                 context_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .expect("prepare");
        for r in rows {
            stmt.execute(params![r.0, r.1, r.2, r.3, r.4, r.5, r.6, r.7])
                .expect("insert");
        }
    }
    tx.commit().expect("commit");
    t.elapsed()
}

/// The rows of a queue database, as the store gives them back (through its API, so that
/// this follows the schema).
fn read_rows(db: &Path) -> Vec<RawRow> {
    let store = trailhound::store::SqliteStore::open_file(db, true).expect("open the queue");
    let mut rows = Vec::new();
    store
        .iter_events(|e| {
            rows.push((
                e.seq as i64,
                e.message_id.clone(),
                e.created_ms,
                e.stored_bytes() as i64,
                e.json.body().to_owned(),
                Some(e.kind.as_str().to_owned()),
                e.name.clone(),
                // The queue's events share one context: one row of its `contexts` table.
                e.json.context().map(|_| 1),
            ));
            true
        })
        .expect("read the queue");
    rows
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Rounds of (b), alternating Trailhound and raw SQLite, so that a burst of load from
/// other processes hits both sides alike; the medians are reported.
const DURABLE_ROUNDS: usize = 3;

fn durable(sizes: &Sizes, rows: &mut Vec<Row>) {
    let n = sizes.durable;
    let mut ours = Vec::new();
    let mut raw = Vec::new();
    let mut notes = Vec::new();
    for round in 1..=DURABLE_ROUNDS {
        let dir = tempfile::tempdir().expect("temp dir");
        let client = offline_client(dir.path());
        let mut refused = 0;
        let started = Instant::now();
        for i in 0..n {
            refused += track_retry(&client, i, BACKOFF);
        }
        let tracked = started.elapsed();
        let committed = wait_committed(&client, n);
        let elapsed = started.elapsed();
        client.shutdown(Duration::from_secs(30)).expect("shutdown");
        let eps = if committed {
            n as f64 / elapsed.as_secs_f64()
        } else {
            f64::NAN
        };

        // Baseline: the very rows Trailhound stored, inserted into a fresh database.
        let raw_rows = read_rows(&dir.path().join(trailhound::store::DB_FILE));
        drop(dir);
        let raw_elapsed = raw_insert(&raw_rows);
        let raw_eps = raw_rows.len() as f64 / raw_elapsed.as_secs_f64();
        let avg_bytes =
            raw_rows.iter().map(|r| r.3).sum::<i64>() as f64 / raw_rows.len().max(1) as f64;
        notes.push(format!(
            "round {round}: {eps:.0} vs {raw_eps:.0} ev/s = {:.2} (track loop {tracked:.2?} + {:.0?} to the \
             last commit; {refused} Backpressure; raw: {} rows of {avg_bytes:.0} bytes in {raw_elapsed:.2?})",
            eps / raw_eps,
            elapsed - tracked,
            raw_rows.len(),
        ));
        ours.push(eps);
        raw.push(raw_eps);
    }
    rows.push(
        Row::new(
            format!("(b) durable throughput, {} events", count(n)),
            median(ours),
            Some(median(raw)),
            "ev/s",
        )
        .target(Target::RatioAtLeast(0.5))
        .note(format!(
            "medians of {DURABLE_ROUNDS} alternating rounds; time from the first track() until the stats \
             show all committed (the last commit may wait up to commit_interval, 200 ms, by design); {}",
            notes.join("; ")
        )),
    );
}

// ----- (c) end to end -----

fn end_to_end(sizes: &Sizes, rows: &mut Vec<Row>) {
    let n = sizes.e2e;
    let collector = LeanCollector::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let client = Builder::new("bench-key", collector.url(), dir.path())
        .context(app_context())
        .conditions(wifi())
        .with_policy(roomy)
        .build()
        .expect("client");
    let mut refused = 0;
    let started = Instant::now();
    for i in 0..n {
        refused += track_retry(&client, i, BACKOFF);
    }
    let tracked = started.elapsed();
    let deadline = Instant::now() + PATIENCE;
    let mut stats = client.stats();
    let mut flushes = 0;
    while stats.delivered < n && Instant::now() < deadline {
        flushes += 1;
        match client.flush_blocking(PATIENCE) {
            Ok(s) => stats = s,
            Err(e) => {
                eprintln!("flush_blocking: {e}");
                stats = client.stats();
            }
        }
    }
    let elapsed = started.elapsed();
    client.shutdown(Duration::from_secs(10)).expect("shutdown");
    let eps = if stats.delivered >= n {
        n as f64 / elapsed.as_secs_f64()
    } else {
        f64::NAN
    };
    rows.push(
        Row::new(
            format!("(c) end to end to loopback, {} events", count(n)),
            eps,
            None,
            "ev/s",
        )
        .note(format!(
            "in this process, roomy queue, calls retried when refused; first track() to \
             delivered == {n}: {elapsed:.2?} (track loop {tracked:.2?}); {} requests, {} retries, \
             {} KiB gzip sent, {flushes} flush_blocking calls, {refused} calls refused; the lean \
             collector has all {n} distinct events: {}, {} duplicates",
            stats.requests,
            stats.retries,
            stats.bytes_sent / 1024,
            collector.wait_for(n, Duration::ZERO),
            collector.duplicates()
        )),
    );
}

// ----- (d) memory -----

/// The child of (d). Prints `vmhwm_kb=…` and a few facts, one `key=value` per line.
fn child(mode: &str) {
    let n: u64 = std::env::var(CHILD_EVENTS_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let started = Instant::now();
    match mode {
        "rss" => {
            let dir = tempfile::tempdir().expect("temp dir");
            // Room for a million events: `roomy` is exactly that.
            let client = offline_client(dir.path());
            let mut refused = 0;
            for i in 0..n {
                refused += track_retry(&client, i, BACKOFF);
            }
            let committed = wait_committed(&client, n);
            let stats = client.stats();
            println!("vmhwm_kb={}", sys::status_kb("VmHWM").unwrap_or(0));
            println!("vmrss_kb={}", sys::status_kb("VmRSS").unwrap_or(0));
            println!("committed={committed}");
            println!("queued={}", stats.queued_events);
            println!("queued_bytes={}", stats.queued_bytes);
            println!("refused={refused}");
            println!("seconds={:.2}", started.elapsed().as_secs_f64());
            let db = [
                trailhound::store::DB_FILE.to_owned(),
                format!(
                    "{}{}",
                    trailhound::store::DB_FILE,
                    trailhound::store::GROUPS_SUFFIX
                ),
            ]
            .iter()
            .map(|f| std::fs::metadata(dir.path().join(f)).map_or(0, |m| m.len()))
            .sum::<u64>();
            println!("db_bytes={db}");
            client.shutdown(Duration::from_secs(30)).expect("shutdown");
        }
        "baseline" => {
            for i in 0..n {
                black_box(properties(i));
            }
            println!("vmhwm_kb={}", sys::status_kb("VmHWM").unwrap_or(0));
            println!("vmrss_kb={}", sys::status_kb("VmRSS").unwrap_or(0));
            println!("seconds={:.2}", started.elapsed().as_secs_f64());
        }
        // On a thread named `app`, so that the per-thread figures say which is the caller.
        "sdk" => on_app_thread(move || sdk_child(n)),
        "idle" => on_app_thread(idle_child),
        other => panic!("unknown {CHILD_ENV}={other}"),
    }
}

fn on_app_thread(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .name("app".into())
        .spawn(f)
        .expect("spawn the app thread")
        .join()
        .expect("the app thread");
}

/// Runs the child in `mode` and returns its `key=value` lines.
fn run_child(mode: &str, n: u64) -> Vec<(String, String)> {
    run_child_with(mode, n, &[])
}

/// Runs the child in `mode` with more environment variables.
fn run_child_with(mode: &str, n: u64, env: &[(&str, String)]) -> Vec<(String, String)> {
    // This very binary, even if a rebuild replaced its file since it started (other
    // people run the bench in the same target directory).
    let exe = if Path::new("/proc/self/exe").exists() {
        std::path::PathBuf::from("/proc/self/exe")
    } else {
        std::env::current_exe().expect("current exe")
    };
    let out = Command::new(exe)
        .env(CHILD_ENV, mode)
        .env(CHILD_EVENTS_ENV, n.to_string())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("run the child");
    if !out.status.success() {
        eprintln!(
            "child {mode} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect()
}

fn get(kv: &[(String, String)], key: &str) -> String {
    kv.iter()
        .find(|(k, _)| k == key)
        .map_or_else(|| "?".into(), |(_, v)| v.clone())
}

/// A number the child printed, NaN if it did not.
fn getf(kv: &[(String, String)], key: &str) -> f64 {
    get(kv, key).parse().unwrap_or(f64::NAN)
}

fn memory(sizes: &Sizes, rows: &mut Vec<Row>) {
    let n = sizes.memory;
    let rss = run_child("rss", n);
    let base = run_child("baseline", n);
    let mb = |kv: &[(String, String)]| {
        get(kv, "vmhwm_kb")
            .parse::<f64>()
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    let (peak, base_peak) = (mb(&rss), mb(&base));
    rows.push(
        Row::new(format!("(d) peak RSS, {} events queued offline", count(n)), peak, Some(base_peak), "MB")
            .target(Target::AtMost(30.0))
            .note(format!(
                "VmHWM of a child process; trailhound minus baseline {:.1} MB; committed {}, queued {} \
                 ({} MB of JSON), database {} MB, {} calls refused, {} s; final VmRSS {} MB; \
                 baseline child only builds the properties ({} s)",
                peak - base_peak,
                get(&rss, "committed"),
                get(&rss, "queued"),
                get(&rss, "queued_bytes").parse::<u64>().map_or(0, |b| b >> 20),
                get(&rss, "db_bytes").parse::<u64>().map_or(0, |b| b >> 20),
                get(&rss, "refused"),
                get(&rss, "seconds"),
                get(&rss, "vmrss_kb").parse::<u64>().map_or(0, |kb| kb >> 10),
                get(&base, "seconds"),
            )),
    );
}

// ----- (f)-(j): issue 10, one child with the default policy -----

/// The pacing of (f): 2 kHz.
const PERIOD: Duration = Duration::from_micros(500);
/// The end of each slot is spun rather than slept: a sleep overshoots by up to the timer
/// slack (50 us by default) plus the scheduler's latency.
const SPIN: Duration = Duration::from_micros(80);
/// How long a child waits for deliveries before giving up on a measurement.
const CHILD_PATIENCE: Duration = Duration::from_secs(60);
/// Events tracked before the idle window (ii): fewer than a batch, so they wait.
const HELD_EVENTS: u64 = 10;

/// Per-call latencies of a run, refused calls included.
struct Calls {
    ns: Vec<u64>,
    refused: u64,
}

impl Calls {
    fn with_capacity(n: u64) -> Calls {
        Calls {
            ns: Vec::with_capacity(n as usize),
            refused: 0,
        }
    }

    fn push(&mut self, ns: u64, refused: bool) {
        self.ns.push(ns);
        self.refused += u64::from(refused);
    }

    /// Prints `<prefix>_calls`, `_refused`, `_p50`, `_p99`, `_p999`, `_max` and `_mean`
    /// (microseconds) for the parent.
    fn print(mut self, prefix: &str) {
        let mean = mean_us(&self.ns);
        self.ns.sort_unstable();
        println!("{prefix}_calls={}", self.ns.len());
        println!("{prefix}_refused={}", self.refused);
        for (key, q) in [("p50", 0.5), ("p99", 0.99), ("p999", 0.999), ("max", 1.0)] {
            println!("{prefix}_{key}={}", quantile_us(&self.ns, q));
        }
        println!("{prefix}_mean={mean}");
    }
}

/// Runs `call(i)` at the start of each 500 us slot of a 2 kHz clock, `n` times (a call
/// whose slot has passed, because the previous one overran, goes at once). `call` returns
/// its latency in nanoseconds and whether it was refused. Also returns how late each call
/// started, sorted, to show the pacing's precision.
fn paced(n: u64, mut call: impl FnMut(u64) -> (u64, bool)) -> (Calls, Vec<u64>) {
    let mut calls = Calls::with_capacity(n);
    let mut late = Vec::with_capacity(n as usize);
    let start = Instant::now() + PERIOD;
    for i in 0..n {
        let slot = start + PERIOD * i as u32;
        let now = Instant::now();
        if slot > now + SPIN {
            std::thread::sleep(slot - now - SPIN);
        }
        while Instant::now() < slot {
            std::hint::spin_loop();
        }
        late.push(Instant::now().duration_since(slot).as_nanos() as u64);
        let (ns, refused) = call(i);
        calls.push(ns, refused);
    }
    late.sort_unstable();
    (calls, late)
}

/// Context switches per thread name between two snapshots, as `name n, name n`.
fn per_thread(before: &[sys::TaskSwitches], after: &[sys::TaskSwitches]) -> String {
    sys::switches_between(before, after)
        .iter()
        .map(|(name, n)| format!("{name} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The baselines' channel: a consumer thread parked in `recv()` between sends.
fn bare_channel() -> (
    std::sync::mpsc::Sender<String>,
    std::thread::JoinHandle<u64>,
) {
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let consumer = std::thread::spawn(move || {
        let mut bytes = 0;
        while let Ok(s) = rx.recv() {
            bytes += s.len() as u64;
        }
        bytes
    });
    (tx, consumer)
}

/// `track()` of event `i`, timed (the properties are built before the clock starts, as
/// the app builds them): nanoseconds, and whether it was refused (`Backpressure`).
fn timed_track(client: &Client, i: u64) -> (u64, bool) {
    let props = properties(i);
    let t = Instant::now();
    let r = client.track(EVENT, props);
    let ns = t.elapsed().as_nanos() as u64;
    match r {
        Ok(()) => (ns, false),
        Err(trailhound::Error::Backpressure) => (ns, true),
        Err(e) => panic!("track failed: {e}"),
    }
}

/// Polls the stats until `n` events are delivered or dropped; gives up after
/// [`CHILD_PATIENCE`]. Returns the last stats and whether all were.
fn wait_delivered(client: &Client, n: u64) -> (trailhound::Stats, bool) {
    let deadline = Instant::now() + CHILD_PATIENCE;
    loop {
        let s = client.stats();
        if s.delivered + s.dropped.total() >= n {
            return (s, true);
        }
        if Instant::now() > deadline {
            eprintln!("gave up waiting for {n} deliveries: {s:?}");
            return (s, false);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A data directory on the disk the project is on (`target/tmp`): `/tmp` may be a tmpfs,
/// where nothing would ever count as written.
fn disk_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("trailhound-bench")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("temp dir in target/tmp")
}

/// Bytes of the files in `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |d| {
        d.flatten()
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum()
    })
}

/// The child of (f)-(j): paced calls, then the burst of `burst` calls, on one client with
/// the default policy. Prints `key=value` lines.
fn sdk_child(burst: u64) {
    let paced_n: u64 = std::env::var(PACED_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let url = std::env::var(URL_ENV).expect("the collector's URL");
    let json_len = common::wire_event_bytes();
    let template = "x".repeat(json_len);
    println!("json_bytes={json_len}");

    // Baseline of (f), before the client exists.
    let (tx, consumer) = bare_channel();
    let (bare, _) = paced(paced_n, |_| {
        let s = template.clone();
        let t = Instant::now();
        tx.send(s).expect("the consumer is alive");
        (t.elapsed().as_nanos() as u64, false)
    });
    drop(tx);
    black_box(consumer.join().expect("consumer"));
    bare.print("bare_paced");
    // The peak RSS from here on is the SDK's.
    println!("rss_reset={}", sys::reset_peak_rss());
    println!("rss_start_kb={}", sys::status_kb("VmRSS").unwrap_or(0));

    // (f) paced.
    let dir = disk_dir();
    let client = default_client(&url, dir.path());
    let mut paced_accepted = 0;
    let tasks0 = sys::task_switches();
    let (ours, late) = paced(paced_n, |i| {
        let (ns, refused) = timed_track(&client, i);
        paced_accepted += u64::from(!refused);
        (ns, refused)
    });
    let tasks1 = sys::task_switches();
    println!("paced_threads={}", per_thread(&tasks0, &tasks1));
    ours.print("paced");
    println!("paced_late_p50={}", quantile_us(&late, 0.5));
    println!("paced_late_p99={}", quantile_us(&late, 0.99));
    let t = Instant::now();
    // As an app that is done does: the last events need not wait for prompt_delay.
    let _ = client.flush();
    let (before, _) = wait_delivered(&client, paced_accepted);
    println!("paced_delivered_ms={}", t.elapsed().as_millis());
    // The deletes and the commit that follow the last paced delivery stay out of the
    // burst's window.
    std::thread::sleep(Duration::from_millis(300));
    let before = trailhound::Stats {
        delivered: before.delivered,
        dropped: before.dropped,
        requests: before.requests,
        retries: before.retries,
        bytes_sent: before.bytes_sent,
        ..Default::default()
    };

    // (g) burst, (h) CPU, (i) end to end, (j) disk.
    let mut calls = Calls::with_capacity(burst);
    let tasks0 = sys::task_switches();
    let io0 = sys::io();
    let cpu0 = sys::process_cpu();
    let exact0 = sys::process_cpu_time();
    let caller0 = sys::thread_cpu_time();
    let started = Instant::now();
    let started_unix = std::time::SystemTime::now();
    for i in 0..burst {
        let (ns, refused) = timed_track(&client, paced_n + i);
        calls.push(ns, refused);
    }
    let burst_loop = started.elapsed();
    let burst_accepted = burst - calls.refused;
    let _ = client.flush();
    let (after, all) = wait_delivered(&client, paced_accepted + burst_accepted);
    let e2e = started.elapsed();
    let cpu1 = sys::process_cpu();
    let exact1 = sys::process_cpu_time();
    let caller1 = sys::thread_cpu_time();
    let tasks1 = sys::task_switches();
    println!("burst_threads={}", per_thread(&tasks0, &tasks1));
    client.shutdown(Duration::from_secs(30)).expect("shutdown");
    let shut = started.elapsed();
    let io1 = sys::io();
    println!("vmhwm_kb={}", sys::status_kb("VmHWM").unwrap_or(0));
    println!("vmrss_kb={}", sys::status_kb("VmRSS").unwrap_or(0));
    drop(client);
    println!("dir_bytes_after={}", dir_bytes(dir.path()));
    calls.print("burst");
    println!("burst_accepted={burst_accepted}");
    println!("burst_loop_s={}", burst_loop.as_secs_f64());
    println!("e2e_s={}", e2e.as_secs_f64());
    println!(
        "burst_start_unix_ns={}",
        started_unix
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    println!("shutdown_s={}", (shut - e2e).as_secs_f64());
    println!("all_delivered={all}");
    println!("delivered={}", after.delivered - before.delivered);
    println!("dropped={}", after.dropped.total() - before.dropped.total());
    println!("dropped_detail={:?}", after.dropped);
    println!("requests={}", after.requests - before.requests);
    println!("retries={}", after.retries - before.retries);
    println!("bytes_sent={}", after.bytes_sent - before.bytes_sent);
    if let (Some(e0), Some(e1), Some(t0), Some(t1)) = (exact0, exact1, caller0, caller1) {
        println!("cpu_s={}", e1.saturating_sub(e0).as_secs_f64());
        println!("cpu_caller_s={}", t1.saturating_sub(t0).as_secs_f64());
    }
    if let (Some(c0), Some(c1)) = (cpu0, cpu1) {
        // getrusage's split, scaled to the exact total above by the parent.
        let all = c1.since(&c0);
        println!("cpu_user_s={}", all.user.as_secs_f64());
        println!("cpu_sys_s={}", all.sys.as_secs_f64());
        println!("switches={}", all.voluntary + all.involuntary);
    }
    if let (Some(a), Some(b)) = (io0, io1) {
        let d = b.since(&a);
        println!("write_bytes={}", d.write_bytes);
        println!("cancelled_write_bytes={}", d.cancelled_write_bytes);
        println!("wchar={}", d.wchar);
    }

    // Baseline of (g), once the client is gone.
    let (tx, consumer) = bare_channel();
    let mut bare = Calls::with_capacity(burst);
    for _ in 0..burst {
        let s = template.clone();
        let t = Instant::now();
        tx.send(s).expect("the consumer is alive");
        bare.push(t.elapsed().as_nanos() as u64, false);
    }
    drop(tx);
    black_box(consumer.join().expect("consumer"));
    bare.print("bare_burst");
}

/// CPU time of this thread spent in `f` (user + system), and the wall time.
fn cpu_of<T>(f: impl FnOnce() -> T) -> (T, Duration, Duration) {
    let c0 = sys::thread_cpu_time();
    let t = Instant::now();
    let out = f();
    let wall = t.elapsed();
    let cpu = match (c0, sys::thread_cpu_time()) {
        (Some(a), Some(b)) => b.saturating_sub(a),
        _ => wall,
    };
    (out, cpu, wall)
}

/// The floor of (h): what every event costs at least, each piece alone on this thread.
struct Floor {
    /// (name, CPU ns per event, wall ns per event).
    pieces: Vec<(&'static str, f64, f64)>,
    /// Loading a batch back from SQLite, (CPU, wall) ns per event: not in the floor, as
    /// the engine can send recent commits from memory.
    load: (f64, f64),
    /// Building the properties (the app's work, not the SDK's), CPU ns per event.
    properties_ns: f64,
}

impl Floor {
    fn sum_us(&self) -> f64 {
        self.pieces.iter().map(|p| p.1).sum::<f64>() / 1_000.0
    }
}

fn floor(n: u64) -> Floor {
    let n = n.max(1);
    let policy = Policy::default();
    let per = |d: Duration, count: u64| d.as_nanos() as f64 / count.max(1) as f64;
    let mut pieces = Vec::new();

    let (_, props_cpu, _) = cpu_of(|| {
        for i in 0..n {
            black_box(properties(i));
        }
    });

    // track()'s own work on the caller's thread: message id, clock, stamp.
    let identity = Identity::new(uuid::Uuid::new_v4());
    let ctx = message_context(&identity, Network::Wifi);
    let calls: Vec<Call> = (0..n)
        .map(|i| {
            let Value::Object(props) = properties(i) else {
                unreachable!("properties() is an object")
            };
            Call::Track {
                event: EVENT.into(),
                properties: props,
            }
        })
        .collect();
    let (messages, cpu, wall) = cpu_of(|| {
        calls
            .into_iter()
            .map(|call| {
                let id = uuid::Uuid::new_v4().hyphenated().to_string();
                let at = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64);
                message::stamp(call, &identity, &ctx, id, at, &policy).expect("valid")
            })
            .collect::<Vec<_>>()
    });
    pieces.push((
        "track(): message id, clock, stamp",
        per(cpu, n),
        per(wall, n),
    ));

    let (mut events, cpu, wall) = cpu_of(|| {
        messages
            .into_iter()
            .map(|m| message::seal(m, 1_700_000_000_000, &policy).expect("valid"))
            .collect::<Vec<_>>()
    });
    pieces.push(("seal (serialise)", per(cpu, n), per(wall, n)));
    for (i, e) in events.iter_mut().enumerate() {
        e.seq = i as u64 + 1;
    }

    let dir = disk_dir();
    let mut store = trailhound::store::SqliteStore::open(dir.path())
        .expect("open the store")
        .store;
    let ((), cpu, wall) = cpu_of(|| {
        for group in events.chunks(policy.commit_max_events) {
            QueueStore::insert(&mut store, group).expect("insert");
        }
    });
    pieces.push(("SQLite insert, groups of 256", per(cpu, n), per(wall, n)));
    drop(events);

    let (mut load, mut gzip, mut delete) = (
        [Duration::ZERO; 2],
        [Duration::ZERO; 2],
        [Duration::ZERO; 2],
    );
    let mut done = 0u64;
    loop {
        let (batch, c, w) = cpu_of(|| {
            QueueStore::load(&mut store, policy.max_batch_events, policy.max_batch_bytes)
                .expect("load")
        });
        if batch.is_empty() {
            break;
        }
        load[0] += c;
        load[1] += w;
        let (body, c, w) =
            cpu_of(|| trailhound::core::wire::build_batch_body(&batch, 1_700_000_000_000));
        black_box(body);
        gzip[0] += c;
        gzip[1] += w;
        let seqs: Vec<u64> = batch.iter().map(|e| e.seq).collect();
        let (_, c, w) = cpu_of(|| QueueStore::delete(&mut store, &seqs).expect("delete"));
        delete[0] += c;
        delete[1] += w;
        done += batch.len() as u64;
    }
    pieces.push((
        "gzip batch body, 500 events",
        per(gzip[0], done),
        per(gzip[1], done),
    ));
    pieces.push((
        "SQLite delete, batches of 500",
        per(delete[0], done),
        per(delete[1], done),
    ));
    Floor {
        pieces,
        load: (per(load[0], done), per(load[1], done)),
        properties_ns: per(props_cpu, n),
    }
}

/// Runs the child of (f)-(j) once and adds the collector's view of its events.
fn sdk_round(sizes: &Sizes, collector: &LeanCollector) -> Vec<(String, String)> {
    collector.reset();
    let mut kv = run_child_with(
        "sdk",
        sizes.burst,
        &[
            (URL_ENV, collector.url().to_owned()),
            (PACED_ENV, sizes.paced.to_string()),
        ],
    );
    let n = |key: &str| getf(&kv, key).max(0.0) as u64;
    let tracked = n("paced_calls") - n("paced_refused") + n("burst_accepted");
    let arrived = collector.wait_for(tracked, Duration::from_secs(2));
    // The end to end time by the collector's clock: the wall clock, shared with the child.
    let start_ns: u128 = get(&kv, "burst_start_unix_ns").parse().unwrap_or(0);
    let collector_s = collector
        .last_new()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(f64::NAN, |t| {
            (t.as_nanos().saturating_sub(start_ns)) as f64 / 1e9
        });
    let delivered = getf(&kv, "delivered");
    let e2e_s = if collector_s.is_finite() {
        collector_s
    } else {
        getf(&kv, "e2e_s")
    };
    let facts = [
        ("tracked", tracked.to_string()),
        ("arrived", arrived.to_string()),
        ("collector_s", collector_s.to_string()),
        ("eps", (delivered / e2e_s).to_string()),
        ("cpu_us", (getf(&kv, "cpu_s") * 1e6 / delivered).to_string()),
        (
            "disk_b",
            (getf(&kv, "write_bytes") / getf(&kv, "burst_accepted")).to_string(),
        ),
        ("c_distinct", collector.distinct().to_string()),
        ("c_dups", collector.duplicates().to_string()),
        ("c_requests", collector.requests().to_string()),
        ("c_bad", collector.bad_requests().to_string()),
        ("c_connections", collector.connections().to_string()),
        (
            "c_cpu_us",
            (collector.cpu().as_nanos() as f64 / 1_000.0 / tracked as f64).to_string(),
        ),
    ];
    kv.extend(facts.map(|(k, v)| (k.to_owned(), v)));
    kv
}

/// One value per key over the rounds: the median of numbers, except counts of failures
/// (refused calls, drops, duplicates, bad requests), of which the worst round is kept;
/// flags hold only if they held in every round; other text is the first round's (the
/// drops' detail: the worst round's).
fn merge_rounds(rounds: &[Vec<(String, String)>]) -> Vec<(String, String)> {
    let worst_round = rounds
        .iter()
        .max_by(|a, b| getf(a, "dropped").total_cmp(&getf(b, "dropped")))
        .expect("at least one round");
    rounds[0]
        .iter()
        .map(|(key, first)| {
            let values: Vec<String> = rounds.iter().map(|r| get(r, key)).collect();
            let numbers: Result<Vec<f64>, _> = values.iter().map(|v| v.parse::<f64>()).collect();
            let merged = if values.iter().all(|v| v == "true" || v == "false") {
                values.iter().all(|v| v == "true").to_string()
            } else if let Ok(numbers) = numbers {
                let failures = ["refused", "dropped", "dups", "bad"];
                if failures.iter().any(|f| key.ends_with(f)) {
                    numbers.into_iter().fold(0.0, f64::max).to_string()
                } else {
                    median(numbers).to_string()
                }
            } else if key == "dropped_detail" {
                get(worst_round, key)
            } else {
                first.clone()
            };
            (key.clone(), merged)
        })
        .collect()
}

/// `key` in each round, formatted, as `a, b, c`.
fn per_round(rounds: &[Vec<(String, String)>], key: &str, fmt: impl Fn(f64) -> String) -> String {
    rounds
        .iter()
        .map(|r| fmt(getf(r, key)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn issue10(sizes: &Sizes, rows: &mut Vec<Row>) {
    let collector = LeanCollector::start();
    let all: Vec<_> = (0..sizes.rounds)
        .map(|_| sdk_round(sizes, &collector))
        .collect();
    let kv = merge_rounds(&all);
    let rounds = |key: &str, fmt: &dyn Fn(f64) -> String| per_round(&all, key, fmt);
    let us = |v: f64| format!("{v:.1}");
    let n = |key: &str| getf(&kv, key).max(0.0) as u64;
    let tracked = n("tracked");
    let arrived = get(&kv, "arrived") == "true";
    let base = run_child("baseline", sizes.paced + sizes.burst);
    let floor = floor(sizes.pieces);
    let json_len = getf(&kv, "json_bytes");

    // A latency row of (f) or (g): ours beside the bare channel's, refused calls counted.
    let latency_row = |tag: &str, part: &str, q: &str, key: &str| {
        Row::new(
            format!("{tag} {q}"),
            getf(&kv, &format!("{part}_{key}")),
            Some(getf(&kv, &format!("bare_{part}_{key}"))),
            "us",
        )
        .refused(
            (n(&format!("{part}_refused")), n(&format!("{part}_calls"))),
            (
                n(&format!("bare_{part}_refused")),
                n(&format!("bare_{part}_calls")),
            ),
        )
    };

    // (f) paced.
    let tag = format!("(f) paced 2 kHz track(), {} calls", count(sizes.paced));
    let row = |q: &str, key: &str| latency_row(&tag, "paced", q, key);
    rows.push(row("p50", "p50").note(format!(
        "medians of {} rounds (failures: the worst round), each a fresh child and client; \
         default policy, wifi while charging, {json_len:.0}-byte events; each call \
         on its 500 us slot (started late by p50 {:.1} us, p99 {:.1} us); the engine thread idles \
         between calls and uploads go on (flush_at); refused calls count and are not retried; \
         baseline: mpsc send of a String of the event's size to a consumer parked in recv(), \
         same pacing, same child; paced events delivered {} ms after a flush() at the end; \
         context switches during the paced calls, per thread: {}",
        all.len(),
        getf(&kv, "paced_late_p50"),
        getf(&kv, "paced_late_p99"),
        get(&kv, "paced_delivered_ms"),
        get(&kv, "paced_threads"),
    )));
    rows.push(
        row("p99", "p99")
            .target(Target::AtMostAndRatioAtMost(25.0, 2.0))
            .note(format!(
                "per round: {} us, baseline {} us",
                rounds("paced_p99", &us),
                rounds("bare_paced_p99", &us)
            )),
    );
    rows.push(row("p99.9", "p999"));
    rows.push(row("max", "max"));

    // (g) burst.
    let tag = format!("(g) burst track(), {} calls", count(sizes.burst));
    let row = |q: &str, key: &str| latency_row(&tag, "burst", q, key);
    rows.push(row("p50", "p50").note(format!(
        "right after (f), same client: back-to-back calls, never retried, refused ones included; \
         loop {:.2} s; mean {:.2} us; baseline: mpsc send of a String of the event's size to \
         a consumer thread, same child, after the client shut down",
        getf(&kv, "burst_loop_s"),
        getf(&kv, "burst_mean"),
    )));
    rows.push(row("p99", "p99").target(Target::AtMost(5.0)).note(format!(
        "per round: {} us, baseline {} us",
        rounds("burst_p99", &us),
        rounds("bare_burst_p99", &us)
    )));
    rows.push(row("p99.9", "p999"));
    rows.push(row("max", "max"));
    rows.push(
        Row::new(
            format!("{tag}: refused"),
            n("burst_refused") as f64,
            None,
            "calls",
        )
        .target(Target::AtMost(0.0))
        .note(format!(
            "the worst round; per round: {}",
            rounds("burst_refused", &|v| format!("{v:.0}"))
        )),
    );
    let mb = |kv: &[(String, String)], key: &str| getf(kv, key) / 1024.0;
    rows.push(
        Row::new(
            "(g) peak RSS over (f) + (g) + delivery",
            mb(&kv, "vmhwm_kb"),
            Some(mb(&base, "vmhwm_kb")),
            "MB",
        )
        .target(Target::AtMost(20.0))
        .note(format!(
            "VmHWM of the child, reset (clear_refs: {}) before the client was built, when VmRSS \
             was {:.1} MB; VmRSS after shutdown {:.1} MB; baseline: a child that only builds \
             the {} events' properties; per round: {} MB",
            get(&kv, "rss_reset"),
            mb(&kv, "rss_start_kb"),
            mb(&kv, "vmrss_kb"),
            count(sizes.paced + sizes.burst),
            rounds("vmhwm_kb", &|kb| format!("{:.1}", kb / 1024.0)),
        )),
    );

    // (h) CPU per event.
    let delivered = getf(&kv, "delivered");
    let per_event_us = |key: &str| getf(&kv, key) * 1e6 / delivered;
    let complete = get(&kv, "all_delivered") == "true" && n("dropped") == 0;
    let lost = if n("dropped") > 0 {
        format!("{} dropped", n("dropped"))
    } else {
        "not all delivered".to_owned()
    };
    rows.push(
        Row::new(
            "(h) CPU per event, all threads, track() to acknowledged",
            getf(&kv, "cpu_us"),
            Some(floor.sum_us()),
            "us",
        )
        .target(Target::AtMost(8.0))
        .incomplete_if(!complete, &lost)
        .note(format!(
            "CPU time of the whole child (CLOCK_PROCESS_CPUTIME_ID, every thread) from the \
             burst's first track() until the stats show all {delivered:.0} delivered ({:.0}% \
             user, {:.0}% system by getrusage); baseline: the floor, the sum of the floor's \
             pieces below; the caller's thread includes building the properties ({:.2} us, the app's \
             work) and polling the stats; context switches in the window {} ({:.3} per \
             event), per live thread: {}; per round: {} us",
            100.0 * getf(&kv, "cpu_user_s") / (getf(&kv, "cpu_user_s") + getf(&kv, "cpu_sys_s")),
            100.0 * getf(&kv, "cpu_sys_s") / (getf(&kv, "cpu_user_s") + getf(&kv, "cpu_sys_s")),
            floor.properties_ns / 1_000.0,
            get(&kv, "switches"),
            getf(&kv, "switches") / delivered,
            get(&kv, "burst_threads"),
            rounds("cpu_us", &|v| format!("{v:.2}")),
        )),
    );
    rows.push(Row::new(
        "(h) .. of which the caller's thread",
        per_event_us("cpu_caller_s"),
        None,
        "us",
    ));
    rows.push(Row::new(
        "(h) .. of which the SDK's threads",
        (getf(&kv, "cpu_s") - getf(&kv, "cpu_caller_s")) * 1e6 / delivered,
        None,
        "us",
    ));
    for (i, (name, cpu_ns, _)) in floor.pieces.iter().enumerate() {
        let row = Row::new(format!("(h) floor: {name}"), cpu_ns / 1_000.0, None, "us");
        rows.push(if i == 0 {
            row.note(format!(
                "each piece alone on the parent's thread, CPU time per event over {} events \
                 (wall per event: {})",
                count(sizes.pieces),
                floor
                    .pieces
                    .iter()
                    .map(|p| format!("{:.2} us", p.2 / 1_000.0))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        } else {
            row
        });
    }
    rows.push(
        Row::new(
            "(h) not in the floor: SQLite load, batches of 500",
            floor.load.0 / 1_000.0,
            None,
            "us",
        )
        .note(format!(
            "wall {:.2} us; a batch the engine sends from its recent commits is never loaded",
            floor.load.1 / 1_000.0
        )),
    );

    // (i) end to end, by the collector's clock.
    let collector_s = getf(&kv, "collector_s");
    let eps = getf(&kv, "eps");
    rows.push(
        Row::new(
            format!(
                "(i) end to end, the burst's {} events",
                count(n("burst_accepted"))
            ),
            eps,
            None,
            "ev/s",
        )
        .target(Target::AtLeast(100_000.0))
        .incomplete_if(!(complete && arrived), &lost)
        .note(format!(
            "first track() of the burst until the collector had every event: {collector_s:.3} s \
             (until the child's stats showed them delivered: {:.3} s); {} \
             requests, {} retries, {} KiB gzip, {} dropped{}; the lean collector (this process, \
             gunzips and counts messageIds, one thread per connection) received {} distinct of \
             the {tracked} tracked ({}), {} duplicates, {} requests, {} bad, {} connections, and \
             spent {:.2} us of CPU per event (not counted in (h)); per round: {} ev/s",
            getf(&kv, "e2e_s"),
            get(&kv, "requests"),
            get(&kv, "retries"),
            n("bytes_sent") / 1024,
            get(&kv, "dropped"),
            if n("dropped") > 0 {
                format!(" ({})", get(&kv, "dropped_detail"))
            } else {
                String::new()
            },
            get(&kv, "c_distinct"),
            if arrived { "all" } else { "NOT all" },
            get(&kv, "c_dups"),
            get(&kv, "c_requests"),
            get(&kv, "c_bad"),
            get(&kv, "c_connections"),
            getf(&kv, "c_cpu_us"),
            rounds("eps", &|v| format!("{v:.0}")),
        )),
    );

    // (j) disk.
    let accepted = getf(&kv, "burst_accepted");
    rows.push(
        Row::new(
            "(j) disk bytes dirtied per event",
            getf(&kv, "disk_b"),
            Some(json_len),
            "B",
        )
        .target(Target::RatioAtMost(1.5))
        .note(format!(
            "/proc/self/io write_bytes of the child from before the burst until delivered and \
             shut down ({:.2} s of it in shutdown), over the burst's accepted events; \
             cancelled_write_bytes {:.0} B/event, wchar {:.0} B/event; files left {} KiB; \
             baseline: the bytes one event adds to a batch before gzip; per round: {} B",
            getf(&kv, "shutdown_s"),
            getf(&kv, "cancelled_write_bytes") / accepted,
            getf(&kv, "wchar") / accepted,
            n("dir_bytes_after") / 1024,
            rounds("disk_b", &|v| format!("{v:.0}")),
        )),
    );
}

// ----- (k) idle wake-ups -----

/// Cellular: events wait for a full batch or `max_delay`.
fn cellular() -> DeviceConditions {
    DeviceConditions {
        network: Network::Cellular,
        battery_level: Some(0.8),
        charging: Some(false),
        ..DeviceConditions::default()
    }
}

/// The child of (k): three windows, each printed as `<label>_switches` (every thread's
/// context switches), `<label>_threads` (per thread name) and `<label>_rusage` (the
/// process's, ended threads included).
fn idle_child() {
    let window = Duration::from_millis(
        std::env::var(WINDOW_ENV)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(3_000),
    );
    let url = std::env::var(URL_ENV).expect("the collector's URL");
    let settle = Duration::from_millis(500);
    let measure = |label: &str| {
        let before = sys::task_switches();
        let r0 = sys::process_cpu();
        std::thread::sleep(window);
        let r1 = sys::process_cpu();
        let after = sys::task_switches();
        let per = sys::switches_between(&before, &after);
        println!(
            "{label}_switches={}",
            per.iter().map(|(_, n)| n).sum::<u64>()
        );
        println!("{label}_threads={}", per_thread(&before, &after));
        let mut names: Vec<_> = after.iter().map(|t| t.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        println!("{label}_alive={}", names.join(", "));
        if let (Some(a), Some(b)) = (r0, r1) {
            let d = b.since(&a);
            println!("{label}_rusage={}", d.voluntary + d.involuntary);
        }
    };
    // This process's own start-up is over before the baseline window.
    std::thread::sleep(settle);
    measure("none");
    let dir = disk_dir();
    let client = default_client(&url, dir.path());
    std::thread::sleep(settle);
    measure("empty");
    client
        .set_device_conditions(cellular())
        .expect("conditions");
    for i in 0..HELD_EVENTS {
        track_retry(&client, i, BACKOFF);
    }
    wait_committed(&client, HELD_EVENTS);
    std::thread::sleep(settle);
    let s = client.stats();
    measure("waiting");
    let s2 = client.stats();
    println!("waiting_queued={}", s.queued_events);
    println!("waiting_requests={}", s2.requests - s.requests);
    client.shutdown(Duration::from_secs(10)).expect("shutdown");
}

fn idle(sizes: &Sizes, rows: &mut Vec<Row>) {
    let collector = LeanCollector::start();
    let kv = run_child_with(
        "idle",
        0,
        &[
            (URL_ENV, collector.url().to_owned()),
            (WINDOW_ENV, sizes.window.as_millis().to_string()),
        ],
    );
    let per_min = |key: &str| getf(&kv, key) * 60.0 / sizes.window.as_secs_f64();
    let baseline = per_min("none_switches");
    let policy = Policy::default();
    let held = policy.max_delay.saturating_sub(policy.upload_margin);
    rows.push(
        Row::new(
            "(k) idle wake-ups, (i) empty queue",
            per_min("empty_switches"),
            Some(baseline),
            "wakes/min",
        )
        .target(Target::AboveBaselineAtMost(0.0))
        .note(format!(
            "context switches of every thread of a child over a {:.1?} window (per thread: {}), \
             a client built {:?} before, wifi (threads alive: {}; `app` runs the windows, `exe` \
             is the child's main thread, parked in join); baseline: the same window \
             before the client existed (per thread: {}); process-wide (getrusage): {} vs {}",
            sizes.window,
            get(&kv, "empty_threads"),
            Duration::from_millis(500),
            get(&kv, "empty_alive"),
            get(&kv, "none_threads"),
            get(&kv, "empty_rusage"),
            get(&kv, "none_rusage"),
        )),
    );
    rows.push(
        Row::new(
            format!("(k) idle wake-ups, (ii) {HELD_EVENTS} events held for max_delay"),
            per_min("waiting_switches"),
            Some(baseline),
            "wakes/min",
        )
        .target(Target::AboveBaselineAtMost(0.0))
        .note(format!(
            "same client on cellular, {} events queued and committed before the window; their \
             upload is due {held:?} after they were tracked, beyond the window, and no commit \
             is due: no wake-up is owed (per thread: {}; alive: {}); process-wide: {}; requests \
             in the window: {}",
            get(&kv, "waiting_queued"),
            get(&kv, "waiting_threads"),
            get(&kv, "waiting_alive"),
            get(&kv, "waiting_rusage"),
            get(&kv, "waiting_requests"),
        )),
    );
}

// ----- (e) where track()'s time goes -----

/// Nanoseconds per run of `f`: `n` runs in 25 slices, the median of the slices' means, so
/// that a slice preempted by another process does not count.
fn time_ns<T>(n: u64, mut f: impl FnMut(u64) -> T) -> f64 {
    const SLICES: u64 = 25;
    let per = (n / SLICES).max(1);
    let mut means = Vec::with_capacity(SLICES as usize);
    for slice in 0..SLICES {
        let t = Instant::now();
        for i in slice * per..(slice + 1) * per {
            black_box(f(i));
        }
        means.push(t.elapsed().as_nanos() as f64 / per as f64);
    }
    median(means)
}

fn breakdown(sizes: &Sizes, rows: &mut Vec<Row>) {
    let n = sizes.breakdown;
    let policy = Policy::default();
    let identity = Identity::new(uuid::Uuid::new_v4());
    let ctx = message_context(&identity, Network::Offline);
    let now = 1_700_000_000_000i64;
    let track_call = |i: u64| {
        let Value::Object(props) = properties(i) else {
            unreachable!("properties() is an object")
        };
        Call::Track {
            event: EVENT.into(),
            properties: props,
        }
    };
    let stamped = |i: u64| {
        message::stamp(
            track_call(i),
            &identity,
            &ctx,
            format!("m{i}"),
            now,
            &policy,
        )
        .expect("valid")
    };

    let props_ns = time_ns(n, properties);
    let uuid_ns = time_ns(n, |_| uuid::Uuid::new_v4().hyphenated().to_string());
    let clock_ns = time_ns(n, |_| std::time::SystemTime::now());
    let iso_ns = time_ns(n, |i| message::iso8601(now + i as i64));
    // stamp and seal take their input by value: it is built before the timing.
    let pool = n.min(20_000);
    let mut calls: Vec<_> = (0..pool).map(|i| Some(track_call(i))).collect();
    let stamp_ns = time_ns(pool, |i| {
        let call = calls[i as usize].take().expect("one use");
        message::stamp(call, &identity, &ctx, format!("m{i}"), now, &policy).expect("valid")
    });
    let msgs: Vec<_> = (0..pool).map(stamped).collect();
    let mut owned: Vec<_> = msgs.iter().cloned().map(Some).collect();
    let seal_ns = time_ns(pool, |i| {
        let msg = owned[i as usize].take().expect("one use");
        message::seal(msg, now, &policy).expect("valid")
    });
    let to_string_ns = time_ns(msgs.len() as u64, |i| {
        serde_json::to_string(&msgs[i as usize]).expect("ok")
    });
    let ctx_ns = time_ns(n, |_| serde_json::to_string(&*ctx).expect("ok"));
    let mutex = Mutex::new(0u64);
    let mutex_ns = time_ns(n, |i| *mutex.lock().expect("lock") += i);
    // Sends of a sealed event into a drained channel, as record() does.
    let event = message::seal(stamped(0), now, &policy).expect("valid");
    let (tx, rx) = sync_channel(policy.call_queue_capacity);
    let drain = std::thread::spawn(move || rx.into_iter().count());
    let events: Vec<_> = (0..n.min(20_000)).map(|_| event.clone()).collect();
    let mut events = events.into_iter();
    let send_ns = time_ns(n.min(20_000), |_| {
        let mut ev = events.next().expect("enough events");
        loop {
            match tx.try_send(ev) {
                Ok(()) => break,
                Err(TrySendError::Full(back)) => {
                    ev = back;
                    std::thread::yield_now();
                }
                Err(TrySendError::Disconnected(_)) => panic!("drain stopped"),
            }
        }
    });
    drop(tx);
    black_box(drain.join().expect("drain"));

    // The caller-side work of track() per call, alone (no background thread, no
    // channel): its own latency distribution, to tell intrinsic cost from interference.
    let mut lat = Vec::with_capacity(n as usize);
    for i in 0..n {
        let call = track_call(i);
        let t = Instant::now();
        let id = uuid::Uuid::new_v4().hyphenated().to_string();
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let msg = message::stamp(call, &identity, &ctx, id, at, &policy).expect("valid");
        black_box(message::seal(msg, at, &policy).expect("valid"));
        lat.push(t.elapsed().as_nanos() as u64);
    }
    let alone_mean = mean_us(&lat);
    lat.sort_unstable();

    let us = |ns: f64| ns / 1_000.0;
    let tag = "(e) track() step, mean";
    rows.push(
        Row::new(
            format!("{tag}: build the properties (caller's)"),
            us(props_ns),
            None,
            "us",
        )
        .note("time of each step alone on the caller thread, no background thread running (median of 25 slices' means)"),
    );
    rows.push(Row::new(
        format!("{tag}: uuid v4 message id"),
        us(uuid_ns),
        None,
        "us",
    ));
    rows.push(Row::new(
        format!("{tag}: SystemTime::now"),
        us(clock_ns),
        None,
        "us",
    ));
    rows.push(Row::new(
        format!("{tag}: iso8601 timestamp"),
        us(iso_ns),
        None,
        "us",
    ));
    rows.push(Row::new(
        format!("{tag}: stamp (incl. iso8601)"),
        us(stamp_ns),
        None,
        "us",
    ));
    rows.push(Row::new(
        format!("{tag}: seal (serde_json)"),
        us(seal_ns),
        None,
        "us",
    ));
    rows.push(Row::new(
        format!("{tag}: .. to_string(message)"),
        us(to_string_ns),
        None,
        "us",
    ));
    rows.push(Row::new(
        format!("{tag}: .. the context alone (serialised once per change, not per call)"),
        us(ctx_ns),
        None,
        "us",
    ));
    rows.push(Row::new(
        format!("{tag}: mutex lock+unlock"),
        us(mutex_ns),
        None,
        "us",
    ));
    rows.push(Row::new(
        format!("{tag}: try_send QueuedEvent"),
        us(send_ns),
        None,
        "us",
    ));
    let tag = "(e) track() work alone, no worker";
    rows.push(
        Row::new(format!("{tag} p50"), quantile_us(&lat, 0.5), None, "us")
            .note("uuid + clock + stamp + seal per call on this thread, timed like (a) but without the channel and the background thread"),
    );
    rows.push(Row::new(
        format!("{tag} p99"),
        quantile_us(&lat, 0.99),
        None,
        "us",
    ));
    rows.push(Row::new(
        format!("{tag} p99.9"),
        quantile_us(&lat, 0.999),
        None,
        "us",
    ));
    rows.push(Row::new(format!("{tag} mean"), alone_mean, None, "us"));
}

fn main() {
    if let Ok(mode) = std::env::var(CHILD_ENV) {
        child(&mode);
        return;
    }
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick")
        || std::env::var(QUICK_ENV).is_ok_and(|v| !v.is_empty() && v != "0");
    // `cargo bench` passes `--bench`; without it this is `cargo test --benches` (or
    // `--all-targets`), often a debug build: a smoke run that only checks that it works.
    let smoke = !args.iter().any(|a| a == "--bench");
    let (mode, divisor) = match (smoke, quick) {
        (true, _) => (
            "smoke test, not `cargo bench`: sizes / 1000, numbers meaningless",
            1000,
        ),
        (false, true) => ("quick: sizes / 10", 10),
        (false, false) => ("full", 1),
    };
    let sizes = Sizes::new(divisor);
    let started = Instant::now();
    let mut rows = Vec::new();
    let only = std::env::var(ONLY_ENV).unwrap_or_default();
    // Each part runs when ONLY names one of its keys (f's child measures f to j).
    let mut step = |keys: &str, name: &str, f: &dyn Fn(&Sizes, &mut Vec<Row>)| {
        if !only.is_empty()
            && !only
                .split(',')
                .any(|o| keys.split(',').any(|k| k == o.trim()))
        {
            return;
        }
        let t = Instant::now();
        eprintln!("running {name}...");
        f(&sizes, &mut rows);
        eprintln!("  {name} took {:.1?}", t.elapsed());
    };
    step("a", "(a) latency", &latency);
    step("b", "(b) durable throughput", &durable);
    step("c", "(c) end to end", &end_to_end);
    step("d", "(d) memory", &memory);
    step("e", "(e) breakdown", &breakdown);
    step(
        "f,g,h,i,j",
        "(f)-(j) paced, burst, CPU, end to end, disk (default policy, child)",
        &issue10,
    );
    step("k", "(k) idle wake-ups", &idle);
    println!();
    println!(
        "Trailhound performance report ({}; {} CPUs; ratios are trailhound / baseline, same run)",
        mode,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    print_table(&rows.iter().collect::<Vec<_>>(), true);
    // Issue 10's goals alone, for the README.
    let goals: Vec<&Row> = rows
        .iter()
        .filter(|r| {
            !matches!(r.target, Target::None)
                && ["(f)", "(g)", "(h)", "(i)", "(j)", "(k)"]
                    .iter()
                    .any(|p| r.metric.starts_with(p))
        })
        .collect();
    if !goals.is_empty() {
        println!();
        println!("Issue 10's goals ({mode}):");
        println!();
        print_table(&goals, false);
    }
    println!();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "total {:.1?}; load average at the end: {}",
        started.elapsed(),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
}
