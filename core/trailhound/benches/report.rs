//! The performance report: percentile latencies, throughputs and peak memory, each beside a
//! baseline measured in the same run, printed as one table with the targets.
//!
//! ```text
//! cargo bench -p trailhound --bench report              # full run, about a minute
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
//!   collector acknowledged them all.
//! - (d) peak memory (VmHWM) of a child process that queues a million events offline;
//!   baseline: a child that only builds the same events.
//! - (e) where `track()`'s time goes: its steps timed in isolation on this thread, and the
//!   same work's latency without the background thread.
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
use trailhound::{Builder, Call, Client, Network, Policy};
use trailhound_tests::collector::Collector;

use common::{app_context, offline, properties, track_retry, wifi, EVENT};

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
        };
        Sizes {
            warmup: full.warmup / divisor,
            latency: full.latency / divisor,
            durable: full.durable / divisor,
            e2e: full.e2e / divisor,
            memory: full.memory / divisor,
            breakdown: full.breakdown / divisor,
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

/// `kB` value of a `/proc/self/status` field.
fn proc_status_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

// ----- the table -----

#[derive(Clone, Copy)]
enum Target {
    /// No target: reported for reference.
    None,
    /// The measured value must be at most this.
    AtMost(f64),
    /// The ratio measured / baseline must be at least this.
    RatioAtLeast(f64),
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
}

fn fmt_value(v: f64, unit: &str) -> String {
    if v.is_nan() {
        return "n/a".into();
    }
    match unit {
        "ev/s" => format!("{:.0} {unit}", v),
        _ if v >= 100.0 => format!("{v:.0} {unit}"),
        _ if v >= 10.0 => format!("{v:.1} {unit}"),
        _ => format!("{v:.2} {unit}"),
    }
}

fn print_table(rows: &[Row]) {
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
            let (target, verdict) = match r.target {
                Target::None => ("-".to_owned(), "-".to_owned()),
                Target::AtMost(max) => (
                    format!("<= {}", fmt_value(max, r.unit)),
                    if r.value <= max { "PASS" } else { "MISS" }.to_owned(),
                ),
                Target::RatioAtLeast(min) => (
                    format!("ratio >= {min}"),
                    if ratio.is_some_and(|x| x >= min) {
                        "PASS"
                    } else {
                        "MISS"
                    }
                    .to_owned(),
                ),
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
        name TEXT
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
);

/// Inserts `rows` into a fresh database with the queue's table and PRAGMAs (WAL,
/// synchronous=NORMAL) in one transaction through one prepared statement. Returns the
/// time from `BEGIN` to `COMMIT`.
fn raw_insert(rows: &[RawRow]) -> Duration {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut conn = Connection::open(dir.path().join("raw.db")).expect("open");
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
                "INSERT INTO events(seq, message_id, created_ms, bytes, json, type, name)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .expect("prepare");
        for r in rows {
            stmt.execute(params![r.0, r.1, r.2, r.3, r.4, r.5, r.6])
                .expect("insert");
        }
    }
    tx.commit().expect("commit");
    t.elapsed()
}

/// The rows of a queue database, as stored.
fn read_rows(db: &Path) -> Vec<RawRow> {
    let src = Connection::open(db).expect("open the queue");
    let mut stmt = src
        .prepare(
            "SELECT seq, message_id, created_ms, bytes, json, type, name FROM events ORDER BY seq",
        )
        .expect("prepare");
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })
        .and_then(|rows| rows.collect())
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
    let collector = Collector::start();
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
            "first track() to delivered == {n}: {elapsed:.2?} (track loop {tracked:.2?}); \
             {} requests, {} retries, {} KiB gzip sent, {flushes} flush_blocking calls, \
             {refused} calls refused; collector has all {n} distinct events: {}, {} duplicates \
             (the test collector decodes and clones every batch on the same 2 cores)",
            stats.requests,
            stats.retries,
            stats.bytes_sent / 1024,
            collector.wait_for_events(n as usize, Duration::ZERO),
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
            let client = Builder::new("bench-key", "https://collector.invalid", dir.path())
                .context(app_context())
                .conditions(offline())
                // Room for a million events: `roomy` is exactly that.
                .with_policy(roomy)
                .build()
                .expect("client");
            let mut refused = 0;
            for i in 0..n {
                refused += track_retry(&client, i, BACKOFF);
            }
            let committed = wait_committed(&client, n);
            let stats = client.stats();
            println!("vmhwm_kb={}", proc_status_kb("VmHWM").unwrap_or(0));
            println!("vmrss_kb={}", proc_status_kb("VmRSS").unwrap_or(0));
            println!("committed={committed}");
            println!("queued={}", stats.queued_events);
            println!("queued_bytes={}", stats.queued_bytes);
            println!("refused={refused}");
            println!("seconds={:.2}", started.elapsed().as_secs_f64());
            let db = std::fs::metadata(dir.path().join(trailhound::store::DB_FILE))
                .map_or(0, |m| m.len());
            println!("db_bytes={db}");
            client.shutdown(Duration::from_secs(30)).expect("shutdown");
        }
        "baseline" => {
            for i in 0..n {
                black_box(properties(i));
            }
            println!("vmhwm_kb={}", proc_status_kb("VmHWM").unwrap_or(0));
            println!("vmrss_kb={}", proc_status_kb("VmRSS").unwrap_or(0));
            println!("seconds={:.2}", started.elapsed().as_secs_f64());
        }
        other => panic!("unknown {CHILD_ENV}={other}"),
    }
}

/// Runs the child in `mode` and returns its `key=value` lines.
fn run_child(mode: &str, n: u64) -> Vec<(String, String)> {
    let exe = std::env::current_exe().expect("current exe");
    let out = Command::new(exe)
        .env(CHILD_ENV, mode)
        .env(CHILD_EVENTS_ENV, n.to_string())
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
    let ctx = trailhound::core::message::Context::new(trailhound::core::context::build(
        &app_context(),
        &identity.anonymous_id,
        Network::Offline,
        Some(1_700_000_000_000),
    ));
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
    let mut step = |name: &str, f: &dyn Fn(&Sizes, &mut Vec<Row>)| {
        let key = &name[1..2];
        if !only.is_empty() && !only.split(',').any(|o| o.trim() == key) {
            return;
        }
        let t = Instant::now();
        eprintln!("running {name}...");
        f(&sizes, &mut rows);
        eprintln!("  {name} took {:.1?}", t.elapsed());
    };
    step("(a) latency", &latency);
    step("(b) durable throughput", &durable);
    step("(c) end to end", &end_to_end);
    step("(d) memory", &memory);
    step("(e) breakdown", &breakdown);
    println!();
    println!(
        "Trailhound performance report ({}; {} CPUs; ratios are trailhound / baseline, same run)",
        mode,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    print_table(&rows);
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
