//! Everything the collector received: events in memory for the API and the page, mirrored
//! to SQLite (when a file is given) so that a QA session survives a restart.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use super::validate::Checked;

/// One event as stored: indexed fields, the validation result, the times, and the event
/// exactly as received. Serialises to the `/api/events` shape.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct StoredEvent {
    /// Increasing with arrival; never reused, also across restarts.
    pub id: u64,
    /// `messageId`, if it is a string.
    #[serde(rename = "messageId")]
    pub message_id: Option<String>,
    /// The event type (`track`, `screen`, …), if known.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// `event` for track, `name` for page and screen.
    pub name: Option<String>,
    /// `userId`, if it is a string.
    #[serde(rename = "userId")]
    pub user_id: Option<String>,
    /// `anonymousId` (the device), if it is a string.
    #[serde(rename = "anonymousId")]
    pub anonymous_id: Option<String>,
    /// Whether it passed every check.
    pub valid: bool,
    /// Why it is invalid: every problem, separated by `; `.
    pub error: Option<String>,
    /// When the collector received it.
    #[serde(rename = "receivedAt", serialize_with = "ser_time")]
    pub received_at: DateTime<Utc>,
    /// The clock-skew corrected time of the event.
    #[serde(serialize_with = "ser_time")]
    pub timestamp: DateTime<Utc>,
    /// When the device recorded it, by the device's clock.
    #[serde(rename = "originalTimestamp", serialize_with = "ser_opt_time")]
    pub original_timestamp: Option<DateTime<Utc>>,
    /// When the device sent it, by the device's clock.
    #[serde(rename = "sentAt", serialize_with = "ser_opt_time")]
    pub sent_at: Option<DateTime<Utc>>,
    /// The event as received.
    pub json: Value,
}

/// A name and how often it was seen.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Count {
    /// Event name, screen name, user id or device id.
    pub name: String,
    /// Accepted events with that name.
    pub count: u64,
}

/// Accepted events received in one minute.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct MinuteCount {
    /// `2026-11-26T12:03` (UTC, by receive time).
    pub minute: String,
    /// Accepted events received in that minute.
    pub count: u64,
}

/// The numbers of `/api/stats`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Stats {
    /// Valid events, each `messageId` once.
    pub accepted: u64,
    /// Invalid events kept with their reason.
    pub invalid: u64,
    /// Events not stored because their `messageId` was already stored.
    pub duplicates: u64,
    /// Tracking requests (`POST /v1/...`) received.
    pub requests: u64,
    /// Tracking requests answered with a non-2xx status, injected faults included.
    pub failed_requests: u64,
    /// Most frequent track event names.
    pub top_events: Vec<Count>,
    /// Most frequent screen and page names.
    pub top_screens: Vec<Count>,
    /// Users with the most events.
    pub top_users: Vec<Count>,
    /// Devices (`anonymousId`) with the most events.
    pub top_devices: Vec<Count>,
    /// Accepted events per minute, oldest first, the last [`PER_MINUTE_SPAN`] minutes
    /// that had any.
    pub per_minute: Vec<MinuteCount>,
}

/// How many entries the top lists keep: a dashboard shows a handful.
pub const TOP_N: usize = 10;
/// How many minutes `per_minute` keeps: one hour of a QA session.
pub const PER_MINUTE_SPAN: usize = 60;

/// Filters of `/api/events`.
#[derive(Clone, Debug, Default)]
pub struct Query {
    /// At most this many, newest first.
    pub limit: Option<usize>,
    /// Only this type.
    pub kind: Option<String>,
    /// Only this name (exact).
    pub name: Option<String>,
    /// Only valid or only invalid events.
    pub valid: Option<bool>,
    /// Only events with a greater id.
    pub since_id: Option<u64>,
}

/// What one request did to the store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Valid events stored.
    pub accepted: usize,
    /// Invalid events stored.
    pub invalid: usize,
    /// Events skipped as duplicates.
    pub duplicates: usize,
}

/// The counters that are not derived from the stored events.
#[derive(Clone, Copy, Debug, Default)]
struct Counters {
    duplicates: u64,
    requests: u64,
    failed_requests: u64,
}

/// Events and counters, with an optional SQLite mirror.
pub struct Store {
    events: Vec<StoredEvent>,
    seen: HashSet<String>,
    counters: Counters,
    next_id: u64,
    db: Option<Connection>,
}

/// The schema version this code writes: `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 1;

impl Store {
    /// An empty store kept in memory only.
    pub fn memory() -> Store {
        Store {
            events: Vec::new(),
            seen: HashSet::new(),
            counters: Counters::default(),
            next_id: 1,
            db: None,
        }
    }

    /// Opens (or creates) the database at `path` and loads what it holds.
    pub fn open(path: &Path) -> anyhow::Result<Store> {
        let db = Connection::open(path)
            .with_context(|| format!("cannot open the database {}", path.display()))?;
        // WAL: the page's reads never wait for a write; NORMAL sync still survives a
        // killed process (Ctrl-C), which is what a development collector meets.
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "NORMAL")?;
        // A second collector on the same file waits a little instead of failing at once.
        db.busy_timeout(std::time::Duration::from_secs(5))?;
        let version: i64 = db.pragma_query_value(None, "user_version", |r| r.get(0))?;
        upgrade_from(&db, version)
            .with_context(|| format!("cannot set up the database {}", path.display()))?;
        let mut store = Store::memory();
        store.load(&db)?;
        store.db = Some(db);
        Ok(store)
    }

    fn load(&mut self, db: &Connection) -> anyhow::Result<()> {
        let mut stmt = db.prepare(
            "SELECT id, message_id, type, name, user_id, anonymous_id, valid, error,
                    received_at_ms, timestamp_ms, original_timestamp_ms, sent_at_ms, json
             FROM events ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            let json: String = r.get(12)?;
            Ok(StoredEvent {
                id: r.get::<_, i64>(0)? as u64,
                message_id: r.get(1)?,
                kind: r.get(2)?,
                name: r.get(3)?,
                user_id: r.get(4)?,
                anonymous_id: r.get(5)?,
                valid: r.get(6)?,
                error: r.get(7)?,
                received_at: from_ms(r.get(8)?),
                timestamp: from_ms(r.get(9)?),
                original_timestamp: r.get::<_, Option<i64>>(10)?.map(from_ms),
                sent_at: r.get::<_, Option<i64>>(11)?.map(from_ms),
                json: serde_json::from_str(&json).unwrap_or(Value::String(json)),
            })
        })?;
        for ev in rows {
            let ev = ev?;
            self.next_id = self.next_id.max(ev.id + 1);
            if let Some(m) = &ev.message_id {
                self.seen.insert(m.clone());
            }
            self.events.push(ev);
        }
        let counter = |name: &str| -> rusqlite::Result<u64> {
            Ok(db
                .query_row("SELECT value FROM counters WHERE name = ?1", [name], |r| {
                    r.get::<_, i64>(0)
                })
                .optional()?
                .unwrap_or(0) as u64)
        };
        self.counters = Counters {
            duplicates: counter("duplicates")?,
            requests: counter("requests")?,
            failed_requests: counter("failed_requests")?,
        };
        Ok(())
    }

    /// Records one tracking request: its answer status and the events it carried (none
    /// if it was refused). Events whose `messageId` is already stored are counted as
    /// duplicates and not stored again.
    pub fn record_request(
        &mut self,
        status: u16,
        events: Vec<(Checked, Value)>,
    ) -> anyhow::Result<Outcome> {
        let mut outcome = Outcome::default();
        let first_new = self.events.len();
        for (checked, json) in events {
            if let Some(m) = &checked.message_id {
                if !self.seen.insert(m.clone()) {
                    outcome.duplicates += 1;
                    continue;
                }
            }
            let valid = checked.errors.is_empty();
            if valid {
                outcome.accepted += 1;
            } else {
                outcome.invalid += 1;
            }
            self.events.push(StoredEvent {
                id: self.next_id,
                message_id: checked.message_id,
                kind: checked.kind,
                name: checked.name,
                user_id: checked.user_id,
                anonymous_id: checked.anonymous_id,
                valid,
                error: (!valid).then(|| checked.errors.join("; ")),
                received_at: truncate_ms(checked.received_at),
                timestamp: truncate_ms(checked.timestamp),
                original_timestamp: checked.original_timestamp.map(truncate_ms),
                sent_at: checked.sent_at.map(truncate_ms),
                json,
            });
            self.next_id += 1;
        }
        self.counters.requests += 1;
        if !(200..300).contains(&status) {
            self.counters.failed_requests += 1;
        }
        self.counters.duplicates += outcome.duplicates as u64;
        if let Some(db) = &mut self.db {
            persist(db, &self.events[first_new..], self.counters)?;
        }
        Ok(outcome)
    }

    /// Every stored event, oldest first.
    pub fn events(&self) -> &[StoredEvent] {
        &self.events
    }

    /// The events matching `q`, newest first, and how many matched before the limit.
    pub fn query(&self, q: &Query) -> (Vec<&StoredEvent>, usize) {
        let matching = self.events.iter().rev().filter(|e| {
            q.since_id.is_none_or(|s| e.id > s)
                && q.kind.as_ref().is_none_or(|k| e.kind.as_ref() == Some(k))
                && q.name.as_ref().is_none_or(|n| e.name.as_ref() == Some(n))
                && q.valid.is_none_or(|v| e.valid == v)
        });
        let mut total = 0;
        let mut out = Vec::new();
        let limit = q.limit.unwrap_or(usize::MAX);
        for e in matching {
            total += 1;
            if out.len() < limit {
                out.push(e);
            }
        }
        (out, total)
    }

    /// The dashboard numbers. Top lists and the per-minute counts cover accepted events
    /// only: invalid ones are shown, but a dashboard would not have counted them.
    pub fn stats(&self) -> Stats {
        let mut events: HashMap<&str, u64> = HashMap::new();
        let mut screens: HashMap<&str, u64> = HashMap::new();
        let mut users: HashMap<&str, u64> = HashMap::new();
        let mut devices: HashMap<&str, u64> = HashMap::new();
        let mut minutes: HashMap<String, u64> = HashMap::new();
        let (mut accepted, mut invalid) = (0, 0);
        for e in &self.events {
            if !e.valid {
                invalid += 1;
                continue;
            }
            accepted += 1;
            match (e.kind.as_deref(), e.name.as_deref()) {
                (Some("track"), Some(n)) => *events.entry(n).or_default() += 1,
                (Some("screen" | "page"), Some(n)) => *screens.entry(n).or_default() += 1,
                _ => {}
            }
            if let Some(u) = e.user_id.as_deref().filter(|u| !u.is_empty()) {
                *users.entry(u).or_default() += 1;
            }
            if let Some(d) = e.anonymous_id.as_deref().filter(|d| !d.is_empty()) {
                *devices.entry(d).or_default() += 1;
            }
            *minutes
                .entry(e.received_at.format("%Y-%m-%dT%H:%M").to_string())
                .or_default() += 1;
        }
        let mut per_minute: Vec<MinuteCount> = minutes
            .into_iter()
            .map(|(minute, count)| MinuteCount { minute, count })
            .collect();
        per_minute.sort_by(|a, b| a.minute.cmp(&b.minute));
        let skip = per_minute.len().saturating_sub(PER_MINUTE_SPAN);
        per_minute.drain(..skip);
        Stats {
            accepted,
            invalid,
            duplicates: self.counters.duplicates,
            requests: self.counters.requests,
            failed_requests: self.counters.failed_requests,
            top_events: top(events),
            top_screens: top(screens),
            top_users: top(users),
            top_devices: top(devices),
            per_minute,
        }
    }
}

/// Most frequent first; ties by name, so the order is stable between polls.
fn top(counts: HashMap<&str, u64>) -> Vec<Count> {
    let mut v: Vec<Count> = counts
        .into_iter()
        .map(|(name, count)| Count {
            name: name.to_owned(),
            count,
        })
        .collect();
    v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
    v.truncate(TOP_N);
    v
}

/// Brings a database at `version` to [`SCHEMA_VERSION`].
fn upgrade_from(db: &Connection, version: i64) -> anyhow::Result<()> {
    match version {
        0 => {
            db.execute_batch(
                "BEGIN;
                 CREATE TABLE events (
                     id INTEGER PRIMARY KEY,
                     message_id TEXT,
                     type TEXT,
                     name TEXT,
                     user_id TEXT,
                     anonymous_id TEXT,
                     valid INTEGER NOT NULL,
                     error TEXT,
                     received_at_ms INTEGER NOT NULL,
                     timestamp_ms INTEGER NOT NULL,
                     original_timestamp_ms INTEGER,
                     sent_at_ms INTEGER,
                     json TEXT NOT NULL
                 );
                 CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
                 PRAGMA user_version = 1;
                 COMMIT;",
            )?;
            Ok(())
        }
        SCHEMA_VERSION => Ok(()),
        v => anyhow::bail!(
            "schema version {v} is newer than this collector's ({SCHEMA_VERSION}): \
             use a newer trailhound or another --db"
        ),
    }
}

/// Writes one request's new events and the counters in one transaction, so that a
/// restart never sees the events without the counters or the reverse.
fn persist(db: &mut Connection, new: &[StoredEvent], c: Counters) -> anyhow::Result<()> {
    let tx = db.transaction()?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO events (id, message_id, type, name, user_id, anonymous_id, valid,
                 error, received_at_ms, timestamp_ms, original_timestamp_ms, sent_at_ms, json)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        )?;
        for e in new {
            insert.execute(params![
                e.id as i64,
                e.message_id,
                e.kind,
                e.name,
                e.user_id,
                e.anonymous_id,
                e.valid,
                e.error,
                e.received_at.timestamp_millis(),
                e.timestamp.timestamp_millis(),
                e.original_timestamp.map(|t| t.timestamp_millis()),
                e.sent_at.map(|t| t.timestamp_millis()),
                e.json.to_string(),
            ])?;
        }
        let mut counter = tx.prepare_cached(
            "INSERT INTO counters (name, value) VALUES (?1, ?2)
             ON CONFLICT(name) DO UPDATE SET value = excluded.value",
        )?;
        counter.execute(params!["duplicates", c.duplicates as i64])?;
        counter.execute(params!["requests", c.requests as i64])?;
        counter.execute(params!["failed_requests", c.failed_requests as i64])?;
    }
    tx.commit()?;
    Ok(())
}

fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// Times are kept to the millisecond, as SQLite keeps them, so that an event reads the
/// same before and after a restart.
fn truncate_ms(t: DateTime<Utc>) -> DateTime<Utc> {
    from_ms(t.timestamp_millis())
}

/// `2026-11-26T12:03:04.123Z`, the form the SDK sends.
pub fn iso(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn ser_time<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&iso(t))
}

fn ser_opt_time<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&iso(t)),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::validate::check;
    use serde_json::json;

    fn ev(id: &str, valid: bool) -> (Checked, Value) {
        let mut j = json!({"type": "track", "event": "Play", "userId": "u", "messageId": id});
        if !valid {
            j["type"] = json!("nope");
        }
        (check(&j, None, None, Utc::now()), j)
    }

    /// A fresh database and a reopened one hold the same events and counters.
    #[test]
    fn reopen_keeps_everything() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let mut s = Store::open(&path).unwrap();
        s.record_request(200, vec![ev("a", true), ev("b", false), ev("a", true)])
            .unwrap();
        s.record_request(503, vec![]).unwrap();
        let before = (s.events().to_vec(), s.stats());
        drop(s);
        let mut s = Store::open(&path).unwrap();
        assert_eq!((s.events().to_vec(), s.stats()), before);
        assert_eq!(before.1.duplicates, 1);
        assert_eq!(before.1.failed_requests, 1);
        // Dedup and ids carry on across the restart.
        let o = s
            .record_request(200, vec![ev("a", true), ev("c", true)])
            .unwrap();
        assert_eq!(o.duplicates, 1);
        assert_eq!(s.events().last().unwrap().id, 3);
    }

    /// A database from a newer collector is refused rather than misread.
    #[test]
    fn newer_schema_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 9)
            .unwrap();
        let err = Store::open(&path).err().unwrap();
        assert!(format!("{err:#}").contains("newer"), "{err:#}");
    }
}
