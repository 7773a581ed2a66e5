//! `trailhound queue`: look into a device's queue, export it, import into it, replay it.
//!
//! The tools work on a copy of a device's data directory (or its `trailhound.db`). Reading
//! tools open the database read-only (`SQLITE_OPEN_READ_ONLY`): they never migrate, lock
//! or change what they were only asked to read, and a database of a newer schema than
//! this build knows is refused with a clear error.

pub mod replay;

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use chrono::{DateTime, Utc};
use serde::Serialize;
use trailhound::core::breaker::{Breakers, OpenReason};
use trailhound::core::message::iso8601;
use trailhound::core::store::QueueStore;
use trailhound::core::{Policy, QueuedEvent};
use trailhound::store::{OpenError, SqliteStore, DB_FILE};

pub use replay::ReplayArgs;

/// `trailhound queue` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum QueueCommand {
    /// Counts, bytes, age, identity, opt-out and each endpoint's breaker state of a queue.
    Inspect(InspectArgs),
    /// The queued events, exactly as they would be sent.
    Export(ExportArgs),
    /// NDJSON events (one sent-form event per line) into a queue.
    Import(ImportArgs),
    /// Sends the queued events to a collector through the SDK's delivery code.
    Replay(ReplayArgs),
}

/// `trailhound queue inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// A data directory or a queue database file.
    pub path: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Output formats of `trailhound queue export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One event per line.
    Ndjson,
    /// One JSON array.
    Json,
}

/// `trailhound queue export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// A data directory or a queue database file.
    pub path: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "ndjson")]
    pub format: Format,
    /// Only events of this type (track, identify, screen, page, group, alias).
    #[arg(long = "type", value_name = "T")]
    pub kind: Option<String>,
    /// Only events with this name (a track's event, a screen's or page's name).
    #[arg(long = "event", value_name = "NAME")]
    pub name: Option<String>,
    /// Only events created at or after T: an RFC 3339 time, a date (2026-11-26) or an age
    /// (90s, 30m, 2h, 7d).
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    /// Write to this file instead of standard output.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

/// `trailhound queue import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// NDJSON file (`-` for standard input): one event per line, as `export` or the
    /// browser's `exportQueue()` write them.
    pub file: PathBuf,
    /// A data directory (created if missing) or an existing queue database file.
    #[arg(long)]
    pub into: PathBuf,
}

/// Runs a `trailhound queue` subcommand.
pub fn run(cmd: QueueCommand) -> anyhow::Result<()> {
    match cmd {
        QueueCommand::Inspect(a) => inspect(&a),
        QueueCommand::Export(a) => export(&a),
        QueueCommand::Import(a) => import(&a),
        QueueCommand::Replay(a) => replay::run(&a),
    }
}

/// The database file for a path that is either a data directory or the file itself.
pub fn db_path(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join(DB_FILE)
    } else {
        path.to_owned()
    }
}

/// A queue opened for reading.
#[derive(Debug)]
pub struct Source {
    /// The store, read-only (or a migrated temporary copy of an older schema).
    pub store: SqliteStore,
    /// Set when an older schema was read through a migrated temporary copy.
    pub note: Option<String>,
    _copy: Option<tempfile::TempDir>,
}

impl Source {
    /// A store opened directly.
    pub fn direct(store: SqliteStore) -> Source {
        Source {
            store,
            note: None,
            _copy: None,
        }
    }
}

/// Opens a queue to read it, never changing it.
///
/// A newer schema than this build knows is refused. An older one is read through a
/// migrated temporary copy (a read-only open cannot migrate, and the source must not be
/// changed).
pub fn open_read_only(path: &Path) -> anyhow::Result<Source> {
    let db = db_path(path);
    if !db.is_file() {
        bail!("{}: no queue database there", db.display());
    }
    match SqliteStore::open_file(&db, true) {
        Ok(store) => Ok(Source::direct(store)),
        Err(OpenError::OlderSchema { found, .. }) => {
            let dir = tempfile::tempdir().context("creating a temporary copy")?;
            let copy = dir.path().join(DB_FILE);
            std::fs::copy(&db, &copy).with_context(|| format!("copying {}", db.display()))?;
            for suffix in ["-wal", "-shm", trailhound::store::GROUPS_SUFFIX] {
                let mut companion = db.clone().into_os_string();
                companion.push(suffix);
                let companion = PathBuf::from(companion);
                if companion.is_file() {
                    let mut to = copy.clone().into_os_string();
                    to.push(suffix);
                    std::fs::copy(&companion, PathBuf::from(to))
                        .with_context(|| format!("copying {}", companion.display()))?;
                }
            }
            let store = SqliteStore::open_file(&copy, false)
                .with_context(|| format!("cannot read {}", db.display()))?;
            Ok(Source {
                store,
                note: Some(format!(
                    "schema version {found} was read through a migrated temporary copy; \
                     {} was not changed",
                    db.display()
                )),
                _copy: Some(dir),
            })
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", db.display())),
    }
}

/// What `inspect` reports.
#[derive(Debug, Serialize)]
pub struct Inspection {
    /// The database file.
    pub path: String,
    /// How it was read, if not directly.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Its schema version.
    pub schema_version: u32,
    /// Events queued.
    pub events: u64,
    /// Their bytes.
    pub bytes: u64,
    /// The oldest event's creation time.
    pub oldest: Option<String>,
    /// The newest event's creation time.
    pub newest: Option<String>,
    /// Per type and name.
    pub by_name: Vec<NameCount>,
    /// The device id.
    pub anonymous_id: Option<String>,
    /// The user id.
    pub user_id: Option<String>,
    /// The user opted out.
    pub opted_out: bool,
    /// Consecutive failed uploads (of the first endpoint; see `endpoints` for each).
    pub retry_attempts: u32,
    /// No upload before this time (the first endpoint's).
    pub next_attempt: Option<String>,
    /// Uploads paused by a 401/403 until this time (the first endpoint's).
    pub auth_paused_until: Option<String>,
    /// Each saved endpoint's circuit breaker, in the configured order.
    pub endpoints: Vec<SavedEndpoint>,
}

/// One endpoint's saved breaker state.
#[derive(Debug, Serialize)]
pub struct SavedEndpoint {
    /// Its base URL; `None` for state saved by an SDK that named no endpoints to the
    /// engine (one endpoint, the configured one).
    pub url: Option<String>,
    /// `closed`, `open` or `half_open`, now.
    pub state: &'static str,
    /// Why it is open (or was, if half-open).
    pub reason: Option<OpenReason>,
    /// Consecutive failed requests to it.
    pub attempts: u32,
    /// No request to it before this time.
    pub next_attempt: Option<String>,
    /// Whether that wait is the server's `Retry-After` (which `flush()` does not shorten).
    pub server_directed: bool,
    /// Paused (401/403/3xx/404) until this time.
    pub paused_until: Option<String>,
    /// The status that paused it.
    pub paused_status: Option<u16>,
}

/// One line of the per-name table.
#[derive(Debug, Serialize)]
pub struct NameCount {
    /// The message type.
    #[serde(rename = "type")]
    pub kind: String,
    /// The event or screen name.
    pub name: Option<String>,
    /// Events.
    pub events: u64,
    /// Bytes.
    pub bytes: u64,
}

/// Reads everything `inspect` shows.
pub fn inspection(path: &Path) -> anyhow::Result<Inspection> {
    let Source {
        mut store,
        note,
        _copy,
    } = open_read_only(path)?;
    let snapshot = store.snapshot().context("reading the queue")?;
    let mut newest: Option<i64> = None;
    store
        .iter_events(|e| {
            newest = Some(newest.map_or(e.created_ms, |n| n.max(e.created_ms)));
            true
        })
        .context("reading the events")?;
    let by_name = store
        .counts_by_type_and_name()
        .context("counting events")?
        .into_iter()
        .map(|(kind, name, events, bytes)| NameCount {
            kind,
            name,
            events,
            bytes,
        })
        .collect();
    let state = snapshot.state.clone();
    // The first endpoint's (the only one before there were several).
    let retry = state
        .as_ref()
        .and_then(|s| s.endpoints.first())
        .map(|e| e.retry.clone())
        .unwrap_or_default();
    let saved = state
        .as_ref()
        .map(|s| s.endpoints.clone())
        .unwrap_or_default();
    // Each breaker's state now, as the engine would see it on starting.
    let now = Utc::now().timestamp_millis();
    let urls: Vec<String> = saved.iter().map(|e| e.url.clone()).collect();
    let (breakers, _) = Breakers::new(&urls, &saved, &Policy::default(), now);
    let live = breakers.stats(now);
    let endpoints = saved
        .iter()
        .zip(&live)
        .map(|(e, now)| SavedEndpoint {
            url: (!e.url.is_empty()).then(|| e.url.clone()),
            state: now.state.as_str(),
            reason: e.reason,
            attempts: e.retry.attempts,
            next_attempt: e.retry.next_attempt_ms.map(iso8601),
            server_directed: e.retry.server_directed,
            paused_until: e.retry.auth_paused_until_ms.map(iso8601),
            paused_status: e.retry.auth_status,
        })
        .collect();
    Ok(Inspection {
        path: db_path(path).display().to_string(),
        note,
        schema_version: store.schema_version(),
        events: snapshot.events,
        bytes: snapshot.bytes,
        oldest: snapshot.oldest_ms.map(iso8601),
        newest: newest.map(iso8601),
        by_name,
        anonymous_id: state.as_ref().map(|s| s.identity.anonymous_id.clone()),
        user_id: state.as_ref().and_then(|s| s.identity.user_id.clone()),
        opted_out: state.as_ref().is_some_and(|s| s.opted_out),
        retry_attempts: retry.attempts,
        next_attempt: retry.next_attempt_ms.map(iso8601),
        auth_paused_until: retry.auth_paused_until_ms.map(iso8601),
        endpoints,
    })
}

fn inspect(args: &InspectArgs) -> anyhow::Result<()> {
    let i = inspection(&args.path)?;
    let mut out = io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &i)?;
        writeln!(out)?;
        return Ok(());
    }
    let none = || "-".to_string();
    writeln!(out, "queue           {}", i.path)?;
    writeln!(out, "schema version  {}", i.schema_version)?;
    if let Some(note) = &i.note {
        writeln!(out, "note            {note}")?;
    }
    writeln!(out, "events          {} ({} bytes)", i.events, i.bytes)?;
    writeln!(
        out,
        "oldest          {}",
        i.oldest.clone().unwrap_or_else(none)
    )?;
    writeln!(
        out,
        "newest          {}",
        i.newest.clone().unwrap_or_else(none)
    )?;
    writeln!(
        out,
        "device id       {}",
        i.anonymous_id.clone().unwrap_or_else(none)
    )?;
    writeln!(
        out,
        "user id         {}",
        i.user_id.clone().unwrap_or_else(none)
    )?;
    writeln!(
        out,
        "opted out       {}",
        if i.opted_out { "yes" } else { "no" }
    )?;
    if i.endpoints.len() > 1 {
        for (n, e) in i.endpoints.iter().enumerate() {
            write_endpoint(&mut out, n + 1, e)?;
        }
    } else {
        writeln!(
            out,
            "retry           {} failed attempts; next attempt {}",
            i.retry_attempts,
            i.next_attempt.clone().unwrap_or_else(|| "any time".into())
        )?;
        if let Some(until) = &i.auth_paused_until {
            writeln!(out, "auth pause      until {until}")?;
        }
        if let Some(e) = i.endpoints.first().filter(|e| e.reason.is_some()) {
            writeln!(out, "breaker         {}", breaker_words(e))?;
        }
    }
    if !i.by_name.is_empty() {
        writeln!(
            out,
            "\n{:<10} {:<32} {:>8} {:>10}",
            "type", "name", "events", "bytes"
        )?;
        for n in &i.by_name {
            writeln!(
                out,
                "{:<10} {:<32} {:>8} {:>10}",
                n.kind,
                n.name.as_deref().unwrap_or("-"),
                n.events,
                n.bytes
            )?;
        }
    }
    Ok(())
}

/// An endpoint's breaker in words: `open (HTTP 503), 3 failed attempts`.
fn breaker_words(e: &SavedEndpoint) -> String {
    let why = match e.reason {
        Some(OpenReason::Network) => " (no answer)".to_owned(),
        Some(OpenReason::Status { status }) => format!(" (HTTP {status})"),
        Some(OpenReason::Paused { status }) => format!(" (paused after HTTP {status})"),
        Some(OpenReason::Blocked) => " (blocked)".to_owned(),
        None => String::new(),
    };
    format!("{}{why}, {} failed attempts", e.state, e.attempts)
}

/// One endpoint's lines of `inspect`'s text.
fn write_endpoint(out: &mut impl Write, n: usize, e: &SavedEndpoint) -> io::Result<()> {
    let url = e.url.as_deref().unwrap_or("(the configured endpoint)");
    writeln!(out, "endpoint {n:<6} {url}")?;
    writeln!(out, "  breaker       {}", breaker_words(e))?;
    if let Some(t) = &e.next_attempt {
        let whose = if e.server_directed {
            " (the server's Retry-After)"
        } else {
            ""
        };
        writeln!(out, "  next attempt  {t}{whose}")?;
    }
    if let Some(t) = &e.paused_until {
        writeln!(out, "  paused until  {t}")?;
    }
    Ok(())
}

/// Parses `--since`: an RFC 3339 time, a date, or an age before `now`.
pub fn parse_since(s: &str, now: DateTime<Utc>) -> anyhow::Result<i64> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d
            .and_time(chrono::NaiveTime::MIN)
            .and_utc()
            .timestamp_millis());
    }
    let unit_ms = match s.chars().last() {
        Some('s') => 1_000,
        Some('m') => 60_000,
        Some('h') => 3_600_000,
        Some('d') => 86_400_000,
        _ => 0,
    };
    let n: Option<i64> = s
        .get(..s.len().saturating_sub(1))
        .and_then(|n| n.parse().ok());
    match n {
        Some(n) if unit_ms > 0 && n >= 0 => Ok(n
            .checked_mul(unit_ms)
            .map_or(i64::MIN, |age| now.timestamp_millis().saturating_sub(age))),
        _ => bail!(
            "--since {s:?}: expected an RFC 3339 time (2026-11-26T09:00:00Z), a date \
             (2026-11-26) or an age (90s, 30m, 2h, 7d)"
        ),
    }
}

/// The filters of `export`.
#[derive(Debug, Default)]
pub struct Filter {
    /// Message type.
    pub kind: Option<String>,
    /// Event or screen name.
    pub name: Option<String>,
    /// Created at or after (ms since the epoch).
    pub since_ms: Option<i64>,
}

impl Filter {
    /// Whether an event passes.
    pub fn matches(&self, e: &QueuedEvent) -> bool {
        self.kind.as_deref().is_none_or(|k| e.kind.as_str() == k)
            && self
                .name
                .as_deref()
                .is_none_or(|n| e.name.as_deref() == Some(n))
            && self.since_ms.is_none_or(|t| e.created_ms >= t)
    }
}

const TYPES: [&str; 6] = ["track", "identify", "screen", "page", "group", "alias"];

fn export(args: &ExportArgs) -> anyhow::Result<()> {
    if let Some(k) = &args.kind {
        if !TYPES.contains(&k.as_str()) {
            bail!("--type {k:?}: expected one of {}", TYPES.join(", "));
        }
    }
    let filter = Filter {
        kind: args.kind.clone(),
        name: args.name.clone(),
        since_ms: args
            .since
            .as_deref()
            .map(|s| parse_since(s, Utc::now()))
            .transpose()?,
    };
    let source = open_read_only(&args.path)?;
    if let Some(note) = &source.note {
        eprintln!("note: {note}");
    }
    let store = &source.store;
    let sink: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(File::create(p).with_context(|| format!("{}", p.display()))?),
        None => Box::new(io::stdout().lock()),
    };
    let mut out = BufWriter::new(sink);
    let mut written = 0u64;
    let mut failed: Option<io::Error> = None;
    if args.format == Format::Json {
        out.write_all(b"[")?;
    }
    store
        .iter_events(|e| {
            if !filter.matches(&e) {
                return true;
            }
            let sep: &[u8] = match (args.format, written) {
                (Format::Ndjson, _) => b"",
                (Format::Json, 0) => b"\n",
                (Format::Json, _) => b",\n",
            };
            let r = out
                .write_all(sep)
                .and_then(|()| out.write_all(e.json.wire().as_bytes()))
                .and_then(|()| match args.format {
                    Format::Ndjson => out.write_all(b"\n"),
                    Format::Json => Ok(()),
                });
            written += 1;
            match r {
                Ok(()) => true,
                Err(e) => {
                    failed = Some(e);
                    false
                }
            }
        })
        .context("reading the events")?;
    if let Some(e) = failed {
        // A closed pipe (`| head`) is not an error worth reporting.
        if e.kind() == io::ErrorKind::BrokenPipe {
            return Ok(());
        }
        return Err(e.into());
    }
    if args.format == Format::Json {
        out.write_all(b"\n]\n")?;
    }
    out.flush()?;
    eprintln!("exported {written} events");
    Ok(())
}

/// What `import` did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Imported {
    /// Events added.
    pub added: u64,
    /// Events skipped because an event with the same `messageId` was already queued.
    pub already_queued: u64,
}

/// Reads NDJSON events, validating every line like a tracked event. Fails, naming every
/// bad line (up to 20), if any line is bad: an import is all or nothing.
pub fn read_ndjson(reader: impl BufRead, policy: &Policy) -> anyhow::Result<Vec<QueuedEvent>> {
    let mut events = Vec::new();
    let mut errors = Vec::new();
    let mut bad = 0usize;
    for (i, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("reading line {}", i + 1))?;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match QueuedEvent::from_json(line, policy) {
            Ok(e) => events.push(e),
            Err(e) => {
                bad += 1;
                if errors.len() < 20 {
                    errors.push(format!("  line {}: {e}", i + 1));
                }
            }
        }
    }
    if bad > 0 {
        bail!(
            "{bad} invalid line(s); nothing was imported:\n{}",
            errors.join("\n")
        );
    }
    Ok(events)
}

/// Adds events to a queue, after the events already there, skipping `messageId`s it
/// already holds. One transaction.
pub fn import_events(
    store: &mut SqliteStore,
    events: Vec<QueuedEvent>,
) -> anyhow::Result<Imported> {
    let snapshot = store.snapshot().context("reading the queue")?;
    let mut known = std::collections::HashSet::new();
    store
        .iter_events(|e| {
            known.insert(e.message_id);
            true
        })
        .context("reading the queue")?;
    let mut seq = snapshot.max_seq;
    let mut result = Imported::default();
    let mut fresh = Vec::with_capacity(events.len());
    for mut e in events {
        if !known.insert(e.message_id.clone()) {
            result.already_queued += 1;
            continue;
        }
        seq += 1;
        e.seq = seq;
        fresh.push(e);
    }
    store.insert(&fresh).context("writing the events")?;
    result.added = fresh.len() as u64;
    Ok(result)
}

fn import(args: &ImportArgs) -> anyhow::Result<()> {
    let policy = Policy::default();
    let events = if args.file.as_os_str() == "-" {
        read_ndjson(io::stdin().lock(), &policy)?
    } else {
        let f = File::open(&args.file).with_context(|| format!("{}", args.file.display()))?;
        read_ndjson(BufReader::new(f), &policy)
            .with_context(|| format!("{}", args.file.display()))?
    };
    let mut store = if args.into.is_file() {
        SqliteStore::open_file(&args.into, false)
            .with_context(|| format!("cannot open {}", args.into.display()))?
    } else {
        SqliteStore::open(&args.into)
            .with_context(|| format!("cannot open {}", args.into.display()))?
            .store
    };
    let r = import_events(&mut store, events)?;
    println!(
        "imported {} events into {} ({} already queued, skipped)",
        r.added,
        store.path().display(),
        r.already_queued
    );
    Ok(())
}
