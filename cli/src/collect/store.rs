//! Everything the collector received: the newest events in memory for the API and the
//! page, every event mirrored to SQLite (when a file is given) so that a QA session
//! survives a restart, and the dashboard numbers kept up to date as events come and go.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::path::Path;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use super::validate::Checked;
use super::violations::{self, EventRuleCount, PlanViolation, RuleCount, ViolationReport};

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
    /// The tracking-plan rules it broke (empty without `--plan`, or when it follows the
    /// plan), sorted by pointer then rule as the validator returns them.
    pub violations: Vec<PlanViolation>,
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
///
/// The totals count every event and request since the database was created (or the
/// collector started, without one); the top lists and `per_minute` describe the accepted
/// events still kept in memory (the newest [`DEFAULT_MAX_EVENTS`], or `--max-events`).
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
    /// Tracking requests answered with a non-2xx status or not at all (`--status 0`),
    /// injected faults included.
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
/// Events kept in memory by default: a long QA session (hours of one app at a few events
/// a second) in a few hundred MB at most, since an event is at most 32 KB and usually
/// well under 1 KB.
pub const DEFAULT_MAX_EVENTS: usize = 100_000;

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
    /// Only events that break the plan, or only those that do not.
    pub violating: Option<bool>,
}

impl Query {
    /// Whether `e` passes the filters other than `since_id` and `limit`.
    fn matches(&self, e: &StoredEvent) -> bool {
        self.kind
            .as_ref()
            .is_none_or(|k| e.kind.as_ref() == Some(k))
            && self
                .name
                .as_ref()
                .is_none_or(|n| e.name.as_ref() == Some(n))
            && self.valid.is_none_or(|v| e.valid == v)
            && self.violating.is_none_or(|v| e.violations.is_empty() != v)
    }

    /// No filter but `since_id` and `limit`.
    fn is_unfiltered(&self) -> bool {
        self.kind.is_none()
            && self.name.is_none()
            && self.valid.is_none()
            && self.violating.is_none()
    }
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
    /// Events stored (valid or not) that break the tracking plan.
    pub violating: usize,
}

/// The counters kept in the database's `counters` table.
#[derive(Clone, Copy, Debug, Default)]
struct Counters {
    duplicates: u64,
    requests: u64,
    failed_requests: u64,
}

/// How often each name (or other key) was seen, with the order kept up to date, so that
/// the top entries are read without looking at the others.
#[derive(Debug)]
struct Tally<K = String> {
    counts: HashMap<K, u64>,
    /// Most frequent first, ties by key: the order of the top lists.
    order: BTreeSet<(Reverse<u64>, K)>,
}

impl<K> Default for Tally<K> {
    fn default() -> Self {
        Tally {
            counts: HashMap::new(),
            order: BTreeSet::new(),
        }
    }
}

impl<K: Clone + Ord + std::hash::Hash> Tally<K> {
    fn add(&mut self, key: &K) {
        let count = self.counts.entry(key.clone()).or_default();
        if *count > 0 {
            self.order.remove(&(Reverse(*count), key.clone()));
        }
        *count += 1;
        self.order.insert((Reverse(*count), key.clone()));
    }

    fn remove(&mut self, key: &K) {
        let Some(count) = self.counts.get_mut(key) else {
            return;
        };
        self.order.remove(&(Reverse(*count), key.clone()));
        *count -= 1;
        if *count == 0 {
            self.counts.remove(key);
        } else {
            self.order.insert((Reverse(*count), key.clone()));
        }
    }

    fn top_n(&self, n: usize) -> impl Iterator<Item = (&K, u64)> {
        self.order
            .iter()
            .take(n)
            .map(|(Reverse(count), key)| (key, *count))
    }
}

impl Tally<String> {
    fn top(&self) -> Vec<Count> {
        self.top_n(TOP_N)
            .map(|(name, count)| Count {
                name: name.clone(),
                count,
            })
            .collect()
    }
}

/// The dashboard numbers of the accepted events in memory, updated as each event comes
/// in and goes out, so that a poll of `/api/stats` costs the same after a million events
/// as after ten.
#[derive(Debug, Default)]
struct Aggregates {
    events: Tally,
    screens: Tally,
    users: Tally,
    devices: Tally,
    /// Minutes since the epoch (by receive time) and their accepted events.
    minutes: BTreeMap<i64, u64>,
}

impl Aggregates {
    /// Counts `e` in (`add`) or out. Invalid events are shown but not counted: a
    /// dashboard would not have counted them.
    fn apply(&mut self, e: &StoredEvent, add: bool) {
        if !e.valid {
            return;
        }
        let op = |t: &mut Tally, name: &str| {
            let name = name.to_owned();
            if add {
                t.add(&name)
            } else {
                t.remove(&name)
            }
        };
        match (e.kind.as_deref(), e.name.as_deref()) {
            (Some("track"), Some(n)) => op(&mut self.events, n),
            (Some("screen" | "page"), Some(n)) => op(&mut self.screens, n),
            _ => {}
        }
        if let Some(u) = e.user_id.as_deref().filter(|u| !u.is_empty()) {
            op(&mut self.users, u);
        }
        if let Some(d) = e.anonymous_id.as_deref().filter(|d| !d.is_empty()) {
            op(&mut self.devices, d);
        }
        let minute = e.received_at.timestamp().div_euclid(60);
        if add {
            *self.minutes.entry(minute).or_default() += 1;
        } else if let Some(n) = self.minutes.get_mut(&minute) {
            *n -= 1;
            if *n == 0 {
                self.minutes.remove(&minute);
            }
        }
    }
}

/// The plan-violation numbers of the events in memory, updated as each event comes in and
/// goes out (like [`Aggregates`]), so that the page's poll of `/api/violations` costs the
/// same at any size. Every event counts, valid or not: the plan's verdict is separate
/// from the Segment checks.
#[derive(Debug, Default)]
struct PlanAggregates {
    violating: u64,
    violations: u64,
    by_rule: Tally,
    by_event_rule: Tally<(String, String)>,
    unplanned: Tally,
}

impl PlanAggregates {
    fn apply(&mut self, e: &StoredEvent, add: bool) {
        if e.violations.is_empty() {
            return;
        }
        let n = e.violations.len() as u64;
        if add {
            self.violating += 1;
            self.violations += n;
        } else {
            self.violating -= 1;
            self.violations -= n;
        }
        for v in &e.violations {
            let pair = (v.event.clone(), v.rule.clone());
            if add {
                self.by_rule.add(&v.rule);
                self.by_event_rule.add(&pair);
            } else {
                self.by_rule.remove(&v.rule);
                self.by_event_rule.remove(&pair);
            }
            if v.rule == violations::UNPLANNED {
                if add {
                    self.unplanned.add(&v.event);
                } else {
                    self.unplanned.remove(&v.event);
                }
            }
        }
    }

    /// The report's numbers; `plan`, `violating_total` and the recent events are the
    /// caller's.
    fn report(&self, events: u64) -> ViolationReport {
        ViolationReport {
            events,
            violating: self.violating,
            violations: self.violations,
            by_rule: self
                .by_rule
                .top_n(violations::TOP_N)
                .map(|(rule, count)| RuleCount {
                    rule: rule.clone(),
                    count,
                })
                .collect(),
            by_event_rule: self
                .by_event_rule
                .top_n(violations::TOP_N)
                .map(|((event, rule), count)| EventRuleCount {
                    event: event.clone(),
                    rule: rule.clone(),
                    count,
                })
                .collect(),
            unplanned: self
                .unplanned
                .top_n(violations::TOP_N)
                .map(|(name, count)| Count {
                    name: name.clone(),
                    count,
                })
                .collect(),
            ..ViolationReport::default()
        }
    }
}

/// Events and counters, with an optional SQLite mirror.
///
/// Memory keeps the newest `max_events` events (the oldest go first); the database keeps
/// every event. Deduplication by `messageId` covers the events in memory and, with a
/// database, every stored one (an indexed lookup); without one, a repeat of an event
/// already dropped from memory is stored again.
pub struct Store {
    events: VecDeque<StoredEvent>,
    /// The `messageId`s of the events in `events`.
    seen: HashSet<String>,
    max_events: usize,
    /// Every event stored, also those no longer in memory.
    accepted: u64,
    invalid: u64,
    counters: Counters,
    aggregates: Aggregates,
    /// Every event stored with a plan violation, also those no longer in memory.
    violating: u64,
    plan_aggregates: PlanAggregates,
    /// The ids of the events in memory that break the plan, oldest first.
    violating_ids: VecDeque<u64>,
    next_id: u64,
    db: Option<Connection>,
}

/// The schema version this code writes: `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 3;

impl Store {
    /// An empty store kept in memory only, holding at most [`DEFAULT_MAX_EVENTS`].
    pub fn memory() -> Store {
        Store::memory_with(DEFAULT_MAX_EVENTS)
    }

    /// An empty store kept in memory only, holding at most `max_events` (at least 1).
    pub fn memory_with(max_events: usize) -> Store {
        Store {
            events: VecDeque::new(),
            seen: HashSet::new(),
            max_events: max_events.max(1),
            accepted: 0,
            invalid: 0,
            counters: Counters::default(),
            aggregates: Aggregates::default(),
            violating: 0,
            plan_aggregates: PlanAggregates::default(),
            violating_ids: VecDeque::new(),
            next_id: 1,
            db: None,
        }
    }

    /// Opens (or creates) the database at `path` and loads what it holds, keeping at
    /// most [`DEFAULT_MAX_EVENTS`] in memory.
    pub fn open(path: &Path) -> anyhow::Result<Store> {
        Store::open_with(path, DEFAULT_MAX_EVENTS)
    }

    /// Opens (or creates) the database at `path`; memory gets its newest `max_events`.
    pub fn open_with(path: &Path, max_events: usize) -> anyhow::Result<Store> {
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
        let mut store = Store::memory_with(max_events);
        store.load(&db)?;
        store.db = Some(db);
        Ok(store)
    }

    fn load(&mut self, db: &Connection) -> anyhow::Result<()> {
        let mut stmt = db.prepare(
            "SELECT * FROM (
                 SELECT id, message_id, type, name, user_id, anonymous_id, valid, error,
                        received_at_ms, timestamp_ms, original_timestamp_ms, sent_at_ms, json,
                        violations
                 FROM events ORDER BY id DESC LIMIT ?1)
             ORDER BY id",
        )?;
        let rows = stmt.query_map([self.max_events as i64], |r| {
            let json: String = r.get(12)?;
            let violations: Option<String> = r.get(13)?;
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
                // Written by `persist` from the same type; NULL when there were none.
                violations: violations
                    .and_then(|v| serde_json::from_str(&v).ok())
                    .unwrap_or_default(),
            })
        })?;
        for ev in rows {
            let ev = ev?;
            if let Some(m) = &ev.message_id {
                self.seen.insert(m.clone());
            }
            self.count_in(&ev);
            self.events.push_back(ev);
        }
        let (max_id, accepted, invalid, violating): (i64, i64, i64, i64) = db.query_row(
            "SELECT COALESCE(MAX(id), 0), COALESCE(SUM(valid != 0), 0), COALESCE(SUM(valid = 0), 0),
                    COALESCE(SUM(violations IS NOT NULL), 0)
             FROM events",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?;
        self.next_id = max_id as u64 + 1;
        self.accepted = accepted as u64;
        self.invalid = invalid as u64;
        self.violating = violating as u64;
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

    /// Whether an event with this `messageId` is stored: in memory, else in the database.
    fn is_stored(&self, message_id: &str) -> anyhow::Result<bool> {
        if self.seen.contains(message_id) {
            return Ok(true);
        }
        let Some(db) = &self.db else {
            return Ok(false);
        };
        let mut stmt = db.prepare_cached("SELECT 1 FROM events WHERE message_id = ?1 LIMIT 1")?;
        Ok(stmt.exists([message_id])?)
    }

    /// Counts an event coming into memory in every aggregate.
    fn count_in(&mut self, e: &StoredEvent) {
        self.aggregates.apply(e, true);
        self.plan_aggregates.apply(e, true);
        if !e.violations.is_empty() {
            self.violating_ids.push_back(e.id);
        }
    }

    /// Counts the oldest event in memory out of every aggregate as it leaves.
    fn count_out(&mut self, e: &StoredEvent) {
        self.aggregates.apply(e, false);
        self.plan_aggregates.apply(e, false);
        if self.violating_ids.front() == Some(&e.id) {
            self.violating_ids.pop_front();
        }
    }

    /// Records one tracking request: its answer status and the events it carried (none
    /// if it was refused), without plan violations. Events whose `messageId` is already
    /// stored are counted as duplicates and not stored again.
    pub fn record_request(
        &mut self,
        status: u16,
        events: Vec<(Checked, Value)>,
    ) -> anyhow::Result<Outcome> {
        let events = events
            .into_iter()
            .map(|(checked, json)| (checked, json, Vec::new()))
            .collect();
        self.record_checked(status, events)
    }

    /// [`Store::record_request`] for events checked against a tracking plan too: each
    /// is stored with its violations.
    pub fn record_checked(
        &mut self,
        status: u16,
        events: Vec<(Checked, Value, Vec<PlanViolation>)>,
    ) -> anyhow::Result<Outcome> {
        let mut outcome = Outcome::default();
        let first_new = self.events.len();
        for (checked, json, violations) in events {
            if let Some(m) = &checked.message_id {
                if self.is_stored(m)? {
                    outcome.duplicates += 1;
                    continue;
                }
                self.seen.insert(m.clone());
            }
            let valid = checked.errors.is_empty();
            if valid {
                outcome.accepted += 1;
            } else {
                outcome.invalid += 1;
            }
            if !violations.is_empty() {
                outcome.violating += 1;
            }
            let event = StoredEvent {
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
                violations,
            };
            self.count_in(&event);
            self.events.push_back(event);
            self.next_id += 1;
        }
        self.counters.requests += 1;
        if !(200..300).contains(&status) {
            self.counters.failed_requests += 1;
        }
        self.counters.duplicates += outcome.duplicates as u64;
        self.accepted += outcome.accepted as u64;
        self.invalid += outcome.invalid as u64;
        self.violating += outcome.violating as u64;
        let persisted = match &mut self.db {
            Some(db) => persist(db, self.events.range(first_new..), self.counters),
            None => Ok(()),
        };
        // Only after the whole request, so that a repeat within one batch is always
        // found in `seen`, even when the batch alone is over the limit.
        while self.events.len() > self.max_events {
            if let Some(old) = self.events.pop_front() {
                self.count_out(&old);
                if let Some(m) = &old.message_id {
                    self.seen.remove(m);
                }
            }
        }
        persisted.map(|()| outcome)
    }

    /// The events in memory, oldest first.
    pub fn events(&self) -> impl DoubleEndedIterator<Item = &StoredEvent> + ExactSizeIterator {
        self.events.iter()
    }

    /// The events in memory matching `q`, newest first, and how many matched before the
    /// limit.
    pub fn query(&self, q: &Query) -> (Vec<&StoredEvent>, usize) {
        // Ids increase along the queue, so `since_id` (the page's poll) is a suffix.
        let start = q
            .since_id
            .map_or(0, |s| self.events.partition_point(|e| e.id <= s));
        let limit = q.limit.unwrap_or(usize::MAX);
        let newest_first = self.events.range(start..).rev();
        if q.is_unfiltered() {
            let total = self.events.len() - start;
            return (newest_first.take(limit).collect(), total);
        }
        let mut total = 0;
        let mut out = Vec::new();
        for e in newest_first.filter(|e| q.matches(e)) {
            total += 1;
            if out.len() < limit {
                out.push(e);
            }
        }
        (out, total)
    }

    /// The plan violations of the events in memory matching `q` (`limit`: how many
    /// recent violating events, default [`violations::DEFAULT_RECENT`]). Without filters
    /// (the page's poll) it reads the aggregates kept as events come and go; filters
    /// sum up the matching events. `plan` is left for the caller.
    pub fn violations(&self, q: &Query) -> ViolationReport {
        if q.is_unfiltered() && q.since_id.is_none() {
            self.violations_kept(q)
        } else {
            self.violations_summed(q)
        }
    }

    fn violations_kept(&self, q: &Query) -> ViolationReport {
        let limit = q.limit.unwrap_or(violations::DEFAULT_RECENT);
        let recent = self
            .violating_ids
            .iter()
            .rev()
            .take(limit)
            .filter_map(|id| self.by_id(*id).cloned())
            .collect();
        ViolationReport {
            violating_total: self.violating,
            recent_total: self.violating_ids.len() as u64,
            recent,
            ..self.plan_aggregates.report(self.events.len() as u64)
        }
    }

    fn violations_summed(&self, q: &Query) -> ViolationReport {
        let limit = q.limit.unwrap_or(violations::DEFAULT_RECENT);
        let start = q
            .since_id
            .map_or(0, |s| self.events.partition_point(|e| e.id <= s));
        let mut agg = PlanAggregates::default();
        let mut events = 0;
        let mut recent = Vec::new();
        for e in self.events.range(start..).rev().filter(|e| q.matches(e)) {
            events += 1;
            agg.apply(e, true);
            if !e.violations.is_empty() && recent.len() < limit {
                recent.push(e.clone());
            }
        }
        ViolationReport {
            violating_total: self.violating,
            recent_total: agg.violating,
            recent,
            ..agg.report(events)
        }
    }

    /// The event in memory with this id (ids increase along the queue).
    fn by_id(&self, id: u64) -> Option<&StoredEvent> {
        let i = self.events.partition_point(|e| e.id < id);
        self.events.get(i).filter(|e| e.id == id)
    }

    /// The dashboard numbers, from the totals and aggregates kept as events come and go.
    pub fn stats(&self) -> Stats {
        let skip = self
            .aggregates
            .minutes
            .len()
            .saturating_sub(PER_MINUTE_SPAN);
        let per_minute = self
            .aggregates
            .minutes
            .iter()
            .skip(skip)
            .map(|(m, count)| MinuteCount {
                minute: minute_label(*m),
                count: *count,
            })
            .collect();
        Stats {
            accepted: self.accepted,
            invalid: self.invalid,
            duplicates: self.counters.duplicates,
            requests: self.counters.requests,
            failed_requests: self.counters.failed_requests,
            top_events: self.aggregates.events.top(),
            top_screens: self.aggregates.screens.top(),
            top_users: self.aggregates.users.top(),
            top_devices: self.aggregates.devices.top(),
            per_minute,
        }
    }
}

/// `2026-11-26T12:03` for a minute since the epoch.
fn minute_label(minute: i64) -> String {
    DateTime::from_timestamp(minute.saturating_mul(60), 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M")
        .to_string()
}

/// The stats of `events` computed from scratch, the way [`Store::stats`] keeps them:
/// for tests that check the incremental numbers. The counters not derived from events
/// (`duplicates`, `requests`, `failed_requests`) are zero, and `accepted` and `invalid`
/// count `events` only.
pub fn recompute<'a>(events: impl IntoIterator<Item = &'a StoredEvent>) -> Stats {
    let mut agg = Aggregates::default();
    let mut stats = Stats::default();
    for e in events {
        if e.valid {
            stats.accepted += 1;
        } else {
            stats.invalid += 1;
        }
        agg.apply(e, true);
    }
    let mut store = Store::memory();
    store.aggregates = agg;
    Stats {
        accepted: stats.accepted,
        invalid: stats.invalid,
        ..store.stats()
    }
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
            upgrade_from(db, 1)
        }
        1 => {
            // Deduplication looks up events no longer in memory.
            db.execute_batch(
                "BEGIN;
                 CREATE INDEX events_message_id ON events (message_id);
                 PRAGMA user_version = 2;
                 COMMIT;",
            )?;
            upgrade_from(db, 2)
        }
        2 => {
            // Tracking-plan violations (`--plan`): a JSON array of `PlanViolation`, NULL
            // when the event broke nothing or was received without a plan, so that the
            // events of older versions need no rewrite.
            db.execute_batch(
                "BEGIN;
                 ALTER TABLE events ADD COLUMN violations TEXT;
                 PRAGMA user_version = 3;
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
fn persist<'a>(
    db: &mut Connection,
    new: impl Iterator<Item = &'a StoredEvent>,
    c: Counters,
) -> anyhow::Result<()> {
    let tx = db.transaction()?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO events (id, message_id, type, name, user_id, anonymous_id, valid,
                 error, received_at_ms, timestamp_ms, original_timestamp_ms, sent_at_ms, json,
                 violations)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
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
                violations_column(&e.violations)?,
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

/// The `violations` column: NULL for none.
fn violations_column(v: &[PlanViolation]) -> anyhow::Result<Option<String>> {
    if v.is_empty() {
        return Ok(None);
    }
    Ok(Some(serde_json::to_string(v)?))
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
        let before = (s.events().cloned().collect::<Vec<_>>(), s.stats());
        drop(s);
        let mut s = Store::open(&path).unwrap();
        assert_eq!((s.events().cloned().collect::<Vec<_>>(), s.stats()), before);
        assert_eq!(before.1.duplicates, 1);
        assert_eq!(before.1.failed_requests, 1);
        // Dedup and ids carry on across the restart.
        let o = s
            .record_request(200, vec![ev("a", true), ev("c", true)])
            .unwrap();
        assert_eq!(o.duplicates, 1);
        assert_eq!(s.events().last().unwrap().id, 3);
    }

    /// A varied event: names, users, devices and validity cycle with `i`.
    fn varied(i: usize) -> (Checked, Value) {
        let kind = ["track", "screen", "page", "identify"][i % 4];
        let mut j = json!({"type": kind, "messageId": format!("m{i}"),
                           "anonymousId": format!("d{}", i % 7)});
        match kind {
            "track" => j["event"] = json!(format!("E{}", i % 13)),
            "screen" | "page" => j["name"] = json!(format!("S{}", i % 5)),
            _ => {}
        }
        if i.is_multiple_of(3) {
            j["userId"] = json!(format!("u{}", i % 11));
        }
        if i % 10 == 9 {
            j["type"] = json!("nope");
        }
        let at = DateTime::from_timestamp(1_790_000_000 + (i as i64) * 7, 0).unwrap();
        (check(&j, None, None, at), j)
    }

    /// The incremental numbers equal a recomputation over the events in memory, after
    /// many events and after the oldest were dropped; the totals count every event.
    #[test]
    fn stats_stay_equal_to_recomputation() {
        let mut s = Store::memory_with(500);
        let mut ever = Vec::new();
        for round in 0..12 {
            let batch: Vec<_> = (round * 150..(round + 1) * 150).map(varied).collect();
            ever.extend(batch.iter().map(|(c, _)| c.errors.is_empty()));
            s.record_request(200, batch).unwrap();
            let stats = s.stats();
            let again = recompute(s.events());
            assert_eq!(
                Stats {
                    accepted: again.accepted,
                    invalid: again.invalid,
                    duplicates: 0,
                    requests: 0,
                    failed_requests: 0,
                    ..stats.clone()
                },
                again,
                "round {round}"
            );
            assert!(s.events().len() <= 500);
            let valid = ever.iter().filter(|v| **v).count() as u64;
            assert_eq!(stats.accepted, valid);
            assert_eq!(stats.invalid, ever.len() as u64 - valid);
        }
        assert_eq!(s.events().len(), 500);
        assert_eq!(s.events().next().unwrap().id, 1800 - 500 + 1);
        // Everything that was evicted is gone from the aggregates too.
        assert!(s.stats().per_minute.len() <= PER_MINUTE_SPAN);
        assert_eq!(s.seen.len(), 500);
    }

    /// With a database, a repeat of an event no longer in memory is still a duplicate,
    /// the database keeps every event, and a reopen loads only the newest.
    #[test]
    fn database_dedups_past_memory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let mut s = Store::open_with(&path, 10).unwrap();
        s.record_request(200, (0..30).map(varied).collect())
            .unwrap();
        assert_eq!(s.events().len(), 10);
        let o = s.record_request(200, vec![varied(0), varied(31)]).unwrap();
        assert_eq!((o.duplicates, o.accepted + o.invalid), (1, 1));
        let stats = s.stats();
        drop(s);
        let s = Store::open_with(&path, 10).unwrap();
        assert_eq!(s.stats(), stats);
        assert_eq!(s.events().len(), 10);
        assert_eq!(s.events().last().unwrap().id, 31);
        let rows: i64 =
            s.db.as_ref()
                .unwrap()
                .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
                .unwrap();
        assert_eq!(rows, 31);

        // Without a database, memory is all there is.
        let mut m = Store::memory_with(10);
        m.record_request(200, (0..30).map(varied).collect())
            .unwrap();
        let o = m.record_request(200, vec![varied(0), varied(29)]).unwrap();
        assert_eq!((o.duplicates, o.accepted + o.invalid), (1, 1));
    }

    /// The schema's statements, with whitespace (which differs with the indentation of
    /// the code that wrote them) collapsed.
    fn schema(db: &Connection) -> Vec<String> {
        let mut st = db
            .prepare("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name")
            .unwrap();
        st.query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .map(|sql| {
                sql.unwrap()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    }

    /// The schema of version 2 (the collector before tracking plans), as it wrote it.
    const SCHEMA_V2: &str = "
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
        CREATE INDEX events_message_id ON events (message_id);
        PRAGMA user_version = 2;";

    /// Databases of versions 1 and 2 upgrade to the same schema as a fresh one.
    #[test]
    fn upgrade_matches_fresh() {
        let fresh = Connection::open_in_memory().unwrap();
        upgrade_from(&fresh, 0).unwrap();
        let v1 = Connection::open_in_memory().unwrap();
        v1.execute_batch(SCHEMA_V2).unwrap();
        v1.execute_batch("DROP INDEX events_message_id; PRAGMA user_version = 1;")
            .unwrap();
        upgrade_from(&v1, 1).unwrap();
        let v2 = Connection::open_in_memory().unwrap();
        v2.execute_batch(SCHEMA_V2).unwrap();
        upgrade_from(&v2, 2).unwrap();
        for old in [&v1, &v2] {
            assert_eq!(schema(old), schema(&fresh));
            let v: i64 = old
                .pragma_query_value(None, "user_version", |r| r.get(0))
                .unwrap();
            assert_eq!(v, SCHEMA_VERSION);
        }
    }

    fn violation(event: &str, rule: &str, pointer: &str) -> PlanViolation {
        PlanViolation {
            event: event.into(),
            rule: rule.into(),
            pointer: pointer.into(),
            expected: "integer".into(),
            found: "string \"x\"".into(),
        }
    }

    /// A version 2 database with events opens: its events and counters are kept (with
    /// no violations), new events are stored with theirs, and both survive a reopen.
    #[test]
    fn version_2_database_keeps_its_events() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v2.db");
        {
            let db = Connection::open(&path).unwrap();
            db.execute_batch(SCHEMA_V2).unwrap();
            db.execute(
                "INSERT INTO events (id, message_id, type, name, user_id, anonymous_id, valid,
                     error, received_at_ms, timestamp_ms, original_timestamp_ms, sent_at_ms, json)
                 VALUES (7, 'old-1', 'track', 'Song Played', 'u', 'd', 1, NULL,
                         1790000000000, 1790000000000, NULL, NULL,
                         '{\"type\":\"track\",\"event\":\"Song Played\",\"messageId\":\"old-1\"}')",
                [],
            )
            .unwrap();
            db.execute("INSERT INTO counters VALUES ('duplicates', 4)", [])
                .unwrap();
        }
        let mut s = Store::open(&path).unwrap();
        let old: Vec<_> = s.events().cloned().collect();
        assert_eq!(old.len(), 1);
        assert_eq!(old[0].id, 7);
        assert_eq!(old[0].name.as_deref(), Some("Song Played"));
        assert!(old[0].violations.is_empty());
        assert_eq!(s.stats().duplicates, 4);
        assert_eq!(s.violations(&Query::default()).violating_total, 0);

        let (c, j) = ev("new-1", true);
        let v = vec![violation("Play", "type", "/properties/price")];
        let o = s
            .record_checked(
                200,
                vec![
                    (c, j, v.clone()),
                    (ev("old-1", true).0, json!({}), v.clone()),
                ],
            )
            .unwrap();
        assert_eq!((o.accepted, o.duplicates, o.violating), (1, 1, 1));
        let before = (s.events().cloned().collect::<Vec<_>>(), s.stats());
        drop(s);
        let s = Store::open(&path).unwrap();
        assert_eq!((s.events().cloned().collect::<Vec<_>>(), s.stats()), before);
        assert_eq!(before.0[1].id, 8);
        assert_eq!(before.0[1].violations, v);
        let report = s.violations(&Query::default());
        assert_eq!(report.violating_total, 1);
        assert_eq!(report.recent.len(), 1);
        assert_eq!(report.recent[0].message_id.as_deref(), Some("new-1"));
        let v: i64 =
            s.db.as_ref()
                .unwrap()
                .pragma_query_value(None, "user_version", |r| r.get(0))
                .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
    }

    /// The violation numbers kept as events come and go equal a summing-up of the events
    /// in memory, also after the oldest were dropped; `violating_total` counts them all.
    #[test]
    fn violation_numbers_stay_equal_to_summing_up() {
        let mut s = Store::memory_with(40);
        let mut ever = 0;
        for round in 0..10 {
            let batch: Vec<_> = (round * 25..(round + 1) * 25)
                .map(|i| {
                    let (c, j) = varied(i);
                    let mut v = Vec::new();
                    if i % 3 == 0 {
                        v.push(violation(&format!("E{}", i % 4), "type", "/properties/a"));
                    }
                    if i % 5 == 0 {
                        v.push(violation(
                            &format!("E{}", i % 4),
                            "required",
                            "/properties/b",
                        ));
                    }
                    if i % 7 == 0 {
                        v.push(violation(
                            &format!("U{}", i % 2),
                            "unplanned_event",
                            "/event",
                        ));
                    }
                    ever += u64::from(!v.is_empty());
                    (c, j, v)
                })
                .collect();
            s.record_checked(200, batch).unwrap();
            for limit in [3, 1000] {
                let q = Query {
                    limit: Some(limit),
                    ..Query::default()
                };
                let kept = s.violations(&q);
                let summed = s.violations_summed(&q);
                assert_eq!(kept, summed, "round {round}");
                assert_eq!(kept.violating_total, ever);
                assert!(kept.recent.len() <= limit);
            }
        }
        let r = s.violations(&Query::default());
        assert_eq!(r.events, 40);
        // Newest first, each with violations.
        assert!(r.recent.windows(2).all(|w| w[0].id > w[1].id));
        assert!(r.recent.iter().all(|e| !e.violations.is_empty()));
        assert!(r.unplanned.iter().all(|c| c.name.starts_with('U')));
        let sum: u64 = r.by_rule.iter().map(|c| c.count).sum();
        assert_eq!(sum, r.violations);
        assert_eq!(s.violating_ids.len() as u64, r.violating);
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
