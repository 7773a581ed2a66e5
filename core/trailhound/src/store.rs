//! The SQLite queue: the native runtime's [`QueueStore`].
//!
//! One database file, [`DB_FILE`], in the app's data directory, owned by one client at a
//! time: [`SqliteStore::open`] holds an advisory lock on [`LOCK_FILE`] beside it for the
//! store's lifetime. Each [`QueueStore`] method is one transaction, with cached prepared
//! statements.
//!
//! # Commit groups
//!
//! The runtime's commits go to a file beside the database, [`DB_FILE`] +
//! [`GROUPS_SUFFIX`] (`trailhound.db-groups`): one appended record per commit, filtered by
//! what the database says (the watermark, the gaps). See the `groups` module for why and
//! how. The rows of `events` below hold what the groups become when the queue is used
//! otherwise (see there), and what older versions queued. A copy of a device's queue is
//! the data directory, or at least `trailhound.db` *and* `trailhound.db-groups`: the
//! store's readers ([`SqliteStore::iter_events`], so `trailhound queue export`) read both,
//! while SQL alone sees the rows only ([`SqliteStore::expand_groups_into_rows`] turns the
//! groups into rows first).
//!
//! # Tables
//!
//! - `events`: one row per queued event that is not in a commit group. `seq`, the engine's queue position, is the
//!   primary key, so "oldest first" is a walk of the primary key and "the oldest left" one
//!   B-tree descent. `json` is the message as it will be sent, without its `context` when
//!   `context_id` names a row of `contexts` (see [`EventJson`]); `bytes` is the length of
//!   `json`, what the event itself takes in the queue ([`QueuedEvent::stored_bytes`]: a
//!   shared context counts once, not per event), the unit of the engine's caps and of
//!   every byte total the store reports. Rows of schema 2 hold their whole message, so
//!   their `bytes` is that too. (A load's `max_bytes` counts wire bytes,
//!   [`QueuedEvent::bytes`]: it bounds a request body.) `type`
//!   and `name` are copies kept for inspection (`trailhound queue stats`); an index on
//!   `created_ms` serves the age cap.
//!
//!   Delivered events are not deleted one by one: the rows up to the watermark
//!   `delivered_through` (a row of `state`) are delivered, and every reader skips them.
//!   They are deleted for real when no event is queued behind them (the whole table
//!   goes, which SQLite does without rewriting its pages), once more than
//!   [`DELIVERED_ROWS_MAX`] are left, and by the opt-out purge. A delivered batch that is
//!   not the oldest queued events (a batch refused in the middle of the queue) is
//!   deleted row by row. The watermark stays when the table empties, so that the largest
//!   seq never goes back (see [`StoreSnapshot::max_seq`]). In SQL, the queued events are
//!   `SELECT … FROM events WHERE seq > coalesce((SELECT CAST(value AS INTEGER) FROM
//!   state WHERE key = 'delivered_through'), -1)`.
//! - `contexts`: each context the queued events carry, once (it is most of a typical
//!   event's bytes, and changes rarely). Rows no event refers to are deleted when the
//!   queue empties (all but the newest, which the next events most likely carry), when
//!   it is cleared (all of them: the opt-out purge) and at open. QA readers
//!   ([`SqliteStore::iter_events`], and so `trailhound queue export`) see every message
//!   whole. With SQL: `SELECT CASE WHEN context_id IS NULL THEN e.json ELSE
//!   json_set(e.json, '$.context', json(c.json)) END FROM events e LEFT JOIN contexts c
//!   ON c.id = e.context_id` (the same JSON, though not byte for byte), with the
//!   watermark's `WHERE` above.
//! - `state`: [`PersistedState`], one row per piece (`anonymous_id`, `user_id`, `traits`,
//!   `opted_out`, `endpoints`), each value JSON, so that QA tools can read it with SQL:
//!   `SELECT value ->> '$' FROM state WHERE key = 'anonymous_id'`; and the store's own
//!   `delivered_through` and `group_gaps`, which saving the state leaves alone.
//!
//! # Versions
//!
//! The schema is versioned with `PRAGMA user_version` ([`SCHEMA_VERSION`]). A fresh
//! database is created at the current version; an older one is upgraded one step at a
//! time when opened read-write; a newer one is refused and left untouched. A test checks
//! that every upgrade path ends in exactly the schema of a fresh database.
//!
//! | version | change                                                                  |
//! |---------|-------------------------------------------------------------------------|
//! | 1       | `events(seq, message_id, created_ms, bytes, json)`, `state(key, value)` |
//! | 2       | `events.type`, `events.name` (backfilled from the JSON), index on `created_ms` |
//! | 3       | `contexts(id, json)`, `events.context_id` (NULL in rows from before)    |
//! | 4       | commits in the groups file (no change to the tables: the number keeps version 3 builds, which would not read the file, out) |
//!
//! Pragmas that are properties of the file rather than of the connection are part of the
//! schema too: every database opened read-write is brought to `auto_vacuum = INCREMENTAL`
//! and pages of [`PAGE_SIZE`] (a fresh one is created so; an older one gets a one-time
//! `VACUUM`), keyed on the file's own settings rather than on `user_version`, so that a
//! crash between the two, or an older build opening the file in between, cannot leave it
//! unconverted. (QA tools read older versions through a migrated copy: see
//! [`OpenError::OlderSchema`].)
//!
//! # Data at rest
//!
//! The queue holds what the app tracked, so the files are private to the app's user
//! (on Unix: the directory `0700` when the store creates it, every file `0600`, tightened
//! when found looser), rows deleted from pages that stay in use are overwritten
//! (`secure_delete = FAST`), free pages go back to the file system ([`SqliteStore`] runs
//! `VACUUM` once enough are free and the queue is empty, `incremental_vacuum` when events
//! are queued), and opting out ([`QueueStore::clear`]) overwrites everything it deletes
//! (`secure_delete = ON`), delivered rows included, gives back every free page (where
//! delivered events may still be), empties the WAL and deletes the copies of corrupt
//! databases. Of those copies, at most the newest is kept, and for at most
//! [`CORRUPT_COPY_MAX_AGE`]. Why FAST and not ON for deliveries: see
//! `schema::overwrite_freed_pages`.
//!
//! Delivered events stay readable in the file, as rows behind the watermark, until the
//! queue empties or more than [`DELIVERED_ROWS_MAX`] of them are left (and then in free
//! pages, until these are reused or given back); in the groups file, until every group is
//! delivered (the file is emptied) or the dead records are rewritten away; the opt-out
//! purge removes them all (the groups become rows, which it purges, and the file is
//! emptied). The groups file, like the WAL under `synchronous = NORMAL`, is synced when the
//! runtime idles with [`GROUPS_SYNC_BYTES`] appended, and when the store is closed: an app
//! crash loses nothing appended, a power cut what was not synced.
//!
//! # Failures
//!
//! Every failure of an operation is mapped, in one place, to the [`FailureKind`] the engine
//! acts on: a full disk drops the events being inserted, a busy or odd failure is retried,
//! and a corrupt database is moved aside by [`SqliteStore::replace_corrupt`]. A database
//! found corrupt when it is opened, or whose tables are not the ones its version says,
//! is moved aside by [`SqliteStore::open`] itself.

mod groups;

use std::collections::HashMap;
use std::fs::{self, File, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{
    params, CachedStatement, Connection, ErrorCode, OpenFlags, OptionalExtension, Params, Row,
    Statement, TransactionBehavior,
};
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use trailhound_core::message::{EventJson, Identity, MessageType, QueuedEvent, SharedContext};
use trailhound_core::retry::RetryState;
use trailhound_core::store::{
    Evicted, FailureKind, PersistedState, QueueStore, Removed, StoreFailure, StoreSnapshot,
};

use groups::Pending;

/// The database's file name in the data directory.
pub const DB_FILE: &str = "trailhound.db";

/// The lock file's name in the data directory. It stays after the store is closed:
/// deleting a lock file races with the next client taking it.
pub const LOCK_FILE: &str = "trailhound.lock";

/// The suffix of the file of commit groups beside the database (see the `groups`
/// module): `trailhound.db-groups`.
pub const GROUPS_SUFFIX: &str = "-groups";

/// Bytes appended to the groups file after which the idle runtime syncs it (see
/// [`SqliteStore::idle`]): 4 MiB, what the WAL holds before SQLite syncs it at a
/// checkpoint, so that a power cut can lose no more than before.
pub const GROUPS_SYNC_BYTES: u64 = 4 * 1024 * 1024;

/// The groups file is rewritten without its delivered and evicted records once it is at
/// least this many bytes and its queued events are at most a quarter of it (see
/// [`SqliteStore::idle`]): a queue that never empties does not grow its file forever, and
/// a rewrite copies at most a third of what it frees. Rewriting whenever the dead records
/// were half the file refused 8 000-13 000 calls of the report's burst, (g).
pub const GROUPS_REWRITE_BYTES: u64 = 4 * 1024 * 1024;

/// A queue being delivered (a delivery moved the watermark within this time) is rewritten
/// only if that copies at most [`GROUPS_REWRITE_SMALL`] bytes, or once the file reaches
/// [`GROUPS_REWRITE_LARGE`]: its file is emptied once everything in it is delivered, so
/// copying it on the way is wasted. In the report's burst, the rewrite at a quarter copied
/// 32 500 events (16 MB) 0.3 s before the file was emptied anyway, and was the moment of
/// the peak RSS; at a sixteenth, 2.4 MB and 18 ms of the engine thread, 40 ms before. 2 s:
/// longer than a round trip of a batch on a slow link, so that steady delivery counts as
/// delivering; after it, a queue left behind (the device went offline) is rewritten at
/// the next idle moment.
pub const GROUPS_REWRITE_QUIET: std::time::Duration = std::time::Duration::from_secs(2);

/// See [`GROUPS_REWRITE_QUIET`]: what a rewrite of a queue being delivered may copy,
/// about a millisecond of work. A queue delivered while events keep coming (so that its
/// file is never emptied) holds about this much or less unless the traffic is heavy.
pub const GROUPS_REWRITE_SMALL: u64 = 256 * 1024;

/// See [`GROUPS_REWRITE_QUIET`]: the file of a queue being delivered that always holds more
/// than [`GROUPS_REWRITE_SMALL`] (heavy traffic) is rewritten at this size, twice the
/// default `max_queue_bytes`, so that it stays bounded.
pub const GROUPS_REWRITE_LARGE: u64 = 64 * 1024 * 1024;

/// Queued events the store keeps as commit groups at most: past this, the idle runtime
/// turns the groups into rows (see [`SqliteStore::idle`]). What the store keeps in memory
/// per grouped event (16 bytes: its creation time and size, for the caps and the
/// oldest-event lookup) stays under 2 MB however long a device stays offline with a
/// roomy policy; with the default policy ([`Policy::max_queue_events`], the same 100 000)
/// the caps bind first and nothing is expanded for this.
///
/// [`Policy::max_queue_events`]: trailhound_core::policy::Policy::max_queue_events
pub const GROUPS_MAX_EVENTS: u64 = 250_000;

/// The newest schema version this build reads and writes.
pub const SCHEMA_VERSION: u32 = schema::VERSION;

/// How long an operation waits for a database that another connection holds locked.
///
/// The lock file keeps other clients out, but a QA tool reading the database, or a
/// checkpoint, can hold it for a moment; waiting is better than a failed operation. Five
/// seconds is far longer than any transaction of ours, and short enough that a database
/// stuck behind a hung process turns into a reported [`FailureKind::Busy`].
const BUSY_TIMEOUT: Duration = Duration::from_millis(5_000);

/// Prepared statements kept per connection: every statement below, with room to spare.
const STATEMENT_CACHE: usize = 32;

/// Free pages ([`PAGE_SIZE`] each) a write leaves alone before it gives them back to the
/// file system with `incremental_vacuum`: 1 MiB.
///
/// Pages freed by uploads are reused by the next inserts, so giving back a little only
/// makes the file grow again. And a vacuum moves the live pages at the end of the file
/// (the newest events) into the holes: write traffic. So a write vacuums only when more
/// than this many pages are free *and* the free pages are at least
/// [`VACUUM_FREE_EIGHTHS`] of the file, i.e. once the queue has drained to an eighth of
/// the peak it grew to. The file never grows past its peak (the queue caps bound it),
/// shrinks when the queue drains, and each vacuum moves at most an eighth of the file.
/// Measured on a 10 000-event insert-and-deliver cycle (`secure_delete_cost`): 4% more
/// bytes written than without vacuuming; vacuuming at half free instead, 14%.
const VACUUM_FREE_PAGES: i64 = 512;

/// The database's page size, in bytes: 2 KiB rather than SQLite's 4 KiB default.
///
/// Every commit writes each page it touched whole to the WAL (and a checkpoint writes it
/// again), so the pages that a commit only partly fills (the last leaf of `events`, the
/// last of its index, the free list's and pointer map's) are what a small commit mostly
/// writes. Measured with `write_amplification` (795-byte events, 100 000 of them, bytes
/// written per event, 4 KiB against 2 KiB pages): commits of 500 filled then drained
/// 2 202 against 2 031; interleaved with delivery 1 086 against 926; commits and
/// deliveries of 20, 2 275 against 1 357; commits of one event, 11 102 against 6 687.
/// 1 KiB pages write less still for the smallest commits (4 581) but more for large
/// ones, cost more CPU per insert, and put every event with its own context (about
/// 800 bytes) on a page of its own.
pub const PAGE_SIZE: i64 = 2048;

/// Delivered rows left in the table behind events still queued (see the module docs)
/// before they are deleted for real, in one range delete: as
/// many as the default queue cap ([`trailhound_core::Policy::max_queue_events`]), so that
/// a full queue drains to empty without it (and the file holds at most about twice a full
/// queue).
///
/// Deleting rows for real is what delivering cost in bytes: each page they were on is
/// written again, and the free pages they leave are written once more when they are given
/// back. Readers skip delivered rows by the primary key, and find the oldest queued event
/// without them (see `Ages`), so leaving them costs only file space. Measured by
/// `write_amplification` (100 000 events of 795 B, bytes written per event, row by row
/// against this bound): filled then drained 2 045 against 919; interleaved with about
/// 2 000 queued 930 against 910. A bound of 5 000 (deleting every ten batches) wrote
/// 1 980 and 1 212, one of 50 000 (hit once) 1 258 and 1 458: a queue that never empties
/// pays the range delete and the vacuum after it whenever the bound is reached.
pub const DELIVERED_ROWS_MAX: u64 = 100_000;

/// See [`VACUUM_FREE_PAGES`]: free pages must be at least this many eighths of the file.
const VACUUM_FREE_EIGHTHS: i64 = 7;

/// How long the copy of a corrupt database is kept for support to look at: a week.
/// It holds tracked events, which are not to be kept indefinitely; copies older than
/// this are deleted when the store is opened, and all of them when the user opts out.
pub const CORRUPT_COPY_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// One line of [`SqliteStore::counts_by_type_and_name`]: type, name, events, bytes.
pub type TypeCount = (String, Option<String>, u64, u64);

/// Why a queue database could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Another client (in this process or another) has the data directory open.
    #[error(
        "another Trailhound client has the data directory {} open; \
         only one client may use a data directory at a time",
        dir.display()
    )]
    Locked {
        /// The data directory.
        dir: PathBuf,
    },
    /// The database was written by a newer version of Trailhound. It is left untouched.
    #[error(
        "the queue database has schema version {found}, newer than the {supported} this \
         version of Trailhound knows; it was left untouched"
    )]
    NewerSchema {
        /// The database's version.
        found: u32,
        /// The newest version this build knows.
        supported: u32,
    },
    /// A read-only open found an older schema, which only a migration could make readable.
    #[error(
        "the queue database has schema version {found}, older than {supported}, and a \
         read-only open does not migrate; copy the file and open the copy read-write"
    )]
    OlderSchema {
        /// The database's version (0: empty, or not a Trailhound queue).
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// The store was opened read-only, so it cannot replace its database.
    #[error("{} was opened read-only; it cannot be replaced", path.display())]
    ReadOnly {
        /// The database file.
        path: PathBuf,
    },
    /// A file system operation failed (creating the directory, the lock file, moving a
    /// corrupt database aside).
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// SQLite refused to open, configure or migrate the database.
    #[error("queue database {}: {source}", path.display())]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// The error.
        source: rusqlite::Error,
    },
}

/// A store just opened by [`SqliteStore::open`].
#[derive(Debug)]
pub struct Opened {
    /// The store.
    pub store: SqliteStore,
    /// Set when the database was corrupt and has been replaced by an empty one: what
    /// happened and where the old file went, for the app's listener and the logs.
    pub recovered: Option<String>,
}

/// The queue in a SQLite database: the native runtime's [`QueueStore`].
///
/// `Send` but not `Sync`: one thread (the runtime's) owns it.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    read_only: bool,
    version: u32,
    /// Events and bytes stored, known after the first [`QueueStore::snapshot`] (or the
    /// first eviction) and kept up to date by every operation, so that eviction never
    /// sums the table. Safe because one process owns the database.
    totals: Option<Totals>,
    /// The delivered prefix, known after the first operation that needs it (a read-only
    /// connection reads it every time: another connection may be writing).
    delivered: Option<Delivered>,
    /// The order of creation times, known after the first delete or eviction.
    ages: Option<Ages>,
    /// [`DELIVERED_ROWS_MAX`], lowered by tests.
    delivered_rows_max: u64,
    /// Set by [`QueueStore::clear`] (the opt-out purge): the WAL still holds the cleared
    /// events' bytes until it is checkpointed and truncated, which waits until the events
    /// the clear spared (`seq <=` this) are gone too and no reader holds the WAL.
    wipe_through: Option<i64>,
    /// The rows of the `contexts` table this connection has written or read.
    contexts: Contexts,
    /// The queued events of the groups file (see the `groups` module), once
    /// `groups_known`.
    pending: Pending,
    /// `pending`, `gaps` and `groups_file` were read from the files (by
    /// [`SqliteStore::load_groups`]), after which every change goes through this store.
    /// Never set on a read-only connection, which reads the file each time instead.
    groups_known: bool,
    /// At least the largest seq stored (rows, groups, the watermark): a commit after it
    /// can go as a group. Read the first time; it never needs to go down.
    top: Option<i64>,
    /// Whether inserts may go as commit groups (tests of the row path turn it off).
    grouping: bool,
    /// Largest size of the groups file, set by tests that fill the disk (see
    /// [`SqliteStore::set_max_pages`]).
    groups_limit: Option<u64>,
    /// The file of commit groups, once opened (see `groups_known`).
    groups_file: Option<groups::GroupsFile>,
    /// Seq ranges (inclusive) evicted from the groups, which readers of the file skip.
    /// Saved in `state` (`group_gaps`), and kept until the watermark passes them (a rewrite
    /// or an emptied file no longer holds them, but the largest seq used must not go back
    /// below them: see [`StoreSnapshot::max_seq`]).
    gaps: Vec<(i64, i64)>,
    /// When a delivery last moved the watermark: a queue being delivered is not rewritten
    /// (see [`GROUPS_REWRITE_QUIET`]).
    delivered_at: Option<std::time::Instant>,
    /// [`GROUPS_REWRITE_LARGE`]; smaller in tests, which need not write 64 MiB.
    rewrite_large: u64,
    /// Declared after `conn`, so that it is dropped after it: the lock outlives the
    /// connection.
    _lock: Option<File>,
}

/// A context as a key of [`Contexts::ids`]: hashed and compared by its text, so that a
/// context equal to a stored one finds its row whichever copy it is.
#[derive(Debug, Clone)]
struct ContextKey(SharedContext);

impl PartialEq for ContextKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
    }
}

impl Eq for ContextKey {}

impl std::hash::Hash for ContextKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.get().hash(state);
    }
}

impl std::borrow::Borrow<str> for ContextKey {
    fn borrow(&self) -> &str {
        self.0.get()
    }
}

/// The rows of the `contexts` table known to the connection, both ways, so that inserting
/// an event with a known context costs no lookup in the table (usually not even a hash:
/// consecutive events share one `Arc`), and loaded events share one copy of each context.
///
/// Only rows that a committed transaction wrote, or that were read, are cached: a failed
/// insert forgets them all (see [`SqliteStore::do_insert`]), as does removing rows.
#[derive(Debug, Default)]
struct Contexts {
    /// The context of the last event inserted, and its row.
    last: Option<(SharedContext, i64)>,
    ids: HashMap<ContextKey, i64>,
    by_id: HashMap<i64, SharedContext>,
}

impl Contexts {
    /// Forgets every row but the last one written, after the others were deleted.
    fn forget_all_but_last(&mut self) {
        self.ids.clear();
        self.by_id.clear();
        if let Some((context, id)) = self.last.clone() {
            self.remember(&context, id);
        }
    }

    fn remember(&mut self, context: &SharedContext, id: i64) {
        self.ids.insert(ContextKey(Arc::clone(context)), id);
        self.by_id.insert(id, Arc::clone(context));
    }

    /// The row of `context`, written if the table has none yet.
    fn id_of(&mut self, tx: &Connection, context: &SharedContext) -> rusqlite::Result<i64> {
        if let Some((last, id)) = &self.last {
            if Arc::ptr_eq(last, context) {
                return Ok(*id);
            }
        }
        let id = match self.ids.get(context.get()) {
            Some(&id) => id,
            None => {
                let found = tx
                    .prepare_cached(sql::CONTEXT_ID)?
                    .query_row([context.get()], |r| r.get::<_, i64>(0))
                    .optional()?;
                let id = match found {
                    Some(id) => id,
                    None => tx
                        .prepare_cached(sql::INSERT_CONTEXT)?
                        .query_row([context.get()], |r| r.get::<_, i64>(0))?,
                };
                self.remember(context, id);
                id
            }
        };
        self.last = Some((Arc::clone(context), id));
        Ok(id)
    }

    /// The context of row `id`, read from the table the first time. `None` when the row
    /// is missing or is not JSON, which only damage to the file can cause.
    fn get(&mut self, conn: &Connection, id: i64) -> rusqlite::Result<Option<SharedContext>> {
        if let Some(context) = self.by_id.get(&id) {
            return Ok(Some(Arc::clone(context)));
        }
        // Not text (a damaged or hand-edited file): unreadable, like bad JSON.
        let text: Option<String> = conn
            .prepare_cached(sql::CONTEXT_JSON)?
            .query_row([id], |r| Ok(r.get_ref(0)?.as_str().ok().map(str::to_owned)))
            .optional()?
            .flatten();
        let Some(context) = text.and_then(|t| RawValue::from_string(t).ok()) else {
            return Ok(None);
        };
        let context = SharedContext::from(context);
        self.remember(&context, id);
        Ok(Some(context))
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Totals {
    events: u64,
    bytes: u64,
}

/// The delivered prefix of the queue: the rows with `seq <= through` are delivered events
/// that [`QueueStore::delete`] removed by moving the watermark (the `delivered_through`
/// row of `state`) instead of deleting them; `rows` of them are still in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Delivered {
    /// -1 until an event is delivered (seqs start at 0).
    through: i64,
    rows: u64,
}

/// What the store knows of the order of creation times, so that the oldest queued event
/// is found with one B-tree descent, not by walking the `created_ms` index past the
/// entries of delivered rows (they stay in it until the rows are deleted for real).
///
/// The rows from `sorted_from` on were created in `seq` order (each no earlier than the
/// one before), so when the first queued event is one of them, it is the oldest. An
/// insert at a seq already passed, or of an event created before the previous one (the
/// clock went back), restarts the run; until the rows before it are gone, the oldest
/// is found by the walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ages {
    sorted_from: i64,
    last_seq: i64,
    last_created: i64,
}

impl Ages {
    /// Reads the run from the table: from the newest queued row back to the first that
    /// was created later than the one after it. One walk of the queue, once.
    /// The commit groups come first: their seqs follow every row's.
    fn read(conn: &Connection, through: i64, pending: &Pending) -> rusqlite::Result<Ages> {
        // (newest seq and creation time, where the run starts and its creation time)
        let mut found: Option<((i64, i64), (i64, i64))> = None;
        // Whether the run goes on before (seq, created).
        let mut visit = |seq: i64, created: i64| -> bool {
            match &mut found {
                None => {
                    found = Some(((seq, created), (seq, created)));
                    true
                }
                Some((_, run)) if created <= run.1 => {
                    *run = (seq, created);
                    true
                }
                Some(_) => false,
            }
        };
        let mut on = true;
        for (seq, created) in pending.newest_first() {
            on = visit(seq, created);
            if !on {
                break;
            }
        }
        if on {
            let mut stmt = conn.prepare_cached(sql::SEQ_AGES_DESC)?;
            let mut rows = stmt.query([through])?;
            while let Some(row) = rows.next()? {
                if !visit(row.get(0)?, row.get(1)?) {
                    break;
                }
            }
        }
        Ok(match found {
            None => Ages {
                sorted_from: through.saturating_add(1),
                last_seq: through,
                last_created: i64::MIN,
            },
            Some(((last_seq, last_created), (sorted_from, _))) => Ages {
                sorted_from,
                last_seq,
                last_created,
            },
        })
    }

    /// Accounts for a committed row.
    fn inserted(&mut self, seq: i64, created: i64) {
        if seq <= self.last_seq {
            // Nothing is known of the order up to the last seq any more.
            self.sorted_from = self.sorted_from.max(self.last_seq.saturating_add(1));
            return;
        }
        if created < self.last_created {
            self.sorted_from = seq;
        }
        self.last_seq = seq;
        self.last_created = created;
    }
}

impl Default for Delivered {
    fn default() -> Self {
        Delivered {
            through: -1,
            rows: 0,
        }
    }
}

/// How [`open_connection`] opens a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Read-write, creating the file if it is missing.
    Create,
    /// Read-write; the file must exist.
    ReadWrite,
    /// Read-only; never migrates.
    ReadOnly,
}

impl SqliteStore {
    /// Opens (or creates) the queue in the data directory `dir`, creating the directory
    /// if it is missing.
    ///
    /// Fails with [`OpenError::Locked`] while another client has `dir` open, and with
    /// [`OpenError::NewerSchema`] for a database written by a newer Trailhound. A corrupt
    /// database, or a file that is not a database, is moved aside (see
    /// [`SqliteStore::replace_corrupt`]) and replaced by an empty one; [`Opened::recovered`]
    /// says so. An older schema is migrated.
    ///
    /// On Unix the directory is created `0700` and the files `0600`; existing files of
    /// the store that are looser are tightened. Copies of corrupt databases older than
    /// [`CORRUPT_COPY_MAX_AGE`], and all but the newest, are deleted.
    pub fn open(dir: &Path) -> Result<Opened, OpenError> {
        private::create_dir(dir).map_err(io_error(dir))?;
        let lock = lock_dir(dir)?;
        let path = dir.join(DB_FILE);
        for suffix in ["", "-wal", "-shm", GROUPS_SUFFIX] {
            private::tighten(&companion(&path, suffix));
        }
        corrupt_copies::prune(&path, corrupt_copies::Keep::Newest(CORRUPT_COPY_MAX_AGE));
        let (conn, version, recovered) = match open_connection(&path, Mode::Create) {
            Ok((conn, version)) => (conn, version, None),
            Err(OpenError::Sqlite { source, .. }) if is_corrupt(&source) => {
                let aside = move_aside(&path)?;
                let message = format!(
                    "the queue database could not be read ({source}); it was kept as {}",
                    aside.display()
                );
                log::warn!("{message}");
                let (conn, version) = open_connection(&path, Mode::Create)?;
                (conn, version, Some(message))
            }
            Err(e) => return Err(e),
        };
        let store = SqliteStore::new(conn, path, false, version, lock);
        Ok(Opened { store, recovered })
    }

    /// Opens a database file directly, for QA tools working on a copy of a device's
    /// queue. No lock file is taken, and a corrupt file is an error, not replaced.
    ///
    /// Read-write opens migrate an older schema; the file must exist. Read-only opens
    /// (`SQLITE_OPEN_READ_ONLY`) never write: they refuse a newer schema with
    /// [`OpenError::NewerSchema`] and an older one with [`OpenError::OlderSchema`] (its
    /// rows lack columns that reads use; copy the file and open the copy read-write).
    pub fn open_file(path: &Path, read_only: bool) -> Result<SqliteStore, OpenError> {
        let mode = if read_only {
            Mode::ReadOnly
        } else {
            Mode::ReadWrite
        };
        let (conn, version) = open_connection(path, mode)?;
        Ok(SqliteStore::new(
            conn,
            path.to_owned(),
            read_only,
            version,
            None,
        ))
    }

    /// A store on an open connection, with nothing read yet.
    fn new(
        conn: Connection,
        path: PathBuf,
        read_only: bool,
        version: u32,
        lock: Option<File>,
    ) -> SqliteStore {
        SqliteStore {
            conn,
            path,
            read_only,
            version,
            totals: None,
            delivered: None,
            ages: None,
            delivered_rows_max: DELIVERED_ROWS_MAX,
            wipe_through: None,
            contexts: Contexts::default(),
            pending: Pending::default(),
            groups_known: false,
            top: None,
            grouping: true,
            groups_limit: None,
            groups_file: None,
            gaps: Vec::new(),
            delivered_at: None,
            rewrite_large: GROUPS_REWRITE_LARGE,
            _lock: lock,
        }
    }

    /// Replaces a database that turned out to be corrupt (an operation failed with
    /// [`FailureKind::Corrupt`]) by an empty one, returning a message for the app's
    /// listener and the logs.
    ///
    /// The file and its `-wal` and `-shm` companions are moved aside to
    /// `trailhound.db.corrupt-<unix ms>` (and `…-wal`, `…-shm`), where support can still
    /// look at them; older copies are deleted. The state is lost with the events; the
    /// engine writes it again
    /// (`Engine::handle_store_replaced`). If this fails, every operation fails until a
    /// later call succeeds.
    pub fn replace_corrupt(&mut self) -> Result<String, OpenError> {
        if self.read_only {
            return Err(OpenError::ReadOnly {
                path: self.path.clone(),
            });
        }
        let placeholder = Connection::open_in_memory().map_err(sqlite_error(&self.path))?;
        // Close before moving: the old connection must not touch the files once the new
        // database has their names (and Windows cannot move an open file).
        let old = std::mem::replace(&mut self.conn, placeholder);
        // Keep the WAL as it is, with the file it belongs to.
        if let Err(e) = schema::keep_wal_on_close(&old, true) {
            log::warn!("closing the corrupt queue database: {e}");
        }
        if let Err((_, e)) = old.close() {
            log::warn!("closing the corrupt queue database: {e}");
        }
        self.totals = None;
        self.delivered = None;
        self.ages = None;
        let aside = move_aside(&self.path)?;
        let (conn, version) = open_connection(&self.path, Mode::Create)?;
        self.conn = conn;
        self.version = version;
        self.totals = Some(Totals::default());
        self.delivered = Some(Delivered::default());
        self.contexts = Contexts::default();
        self.pending.clear();
        self.groups_known = false;
        self.top = None;
        let message = format!(
            "the queue database is corrupt; it was kept as {}",
            aside.display()
        );
        log::warn!("{message}");
        Ok(message)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The database's schema version (always [`SCHEMA_VERSION`] once opened).
    pub fn schema_version(&self) -> u32 {
        self.version
    }

    /// Queued events and their bytes per `(type, name)`, sorted by type then name. Rows
    /// whose type is unknown (from a version 1 database with unreadable JSON) count
    /// under `"unknown"`.
    pub fn counts_by_type_and_name(&self) -> Result<Vec<TypeCount>, StoreFailure> {
        let run = || -> Result<_, Error> {
            let mut stmt = self.conn.prepare_cached(sql::COUNTS)?;
            let rows = stmt.query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, get_u64(r, 2)?, get_u64(r, 3)?))
            })?;
            let mut counts = std::collections::BTreeMap::new();
            for row in rows {
                let (kind, name, events, bytes): TypeCount = row?;
                counts.insert((kind, name), (events, bytes));
            }
            for_each_grouped(&self.conn, &self.path, |e| {
                let c = counts.entry((e.kind, e.name)).or_insert((0, 0));
                c.0 += 1;
                c.1 += e.body.len() as u64;
                Ok(true)
            })?;
            Ok(counts
                .into_iter()
                .map(|((kind, name), (events, bytes))| (kind, name, events, bytes))
                .collect())
        };
        run().map_err(failure("counts"))
    }

    /// Streams every queued event to `f`, oldest first, until `f` returns `false`.
    pub fn iter_events(&self, mut f: impl FnMut(QueuedEvent) -> bool) -> Result<(), StoreFailure> {
        let mut run = || -> Result<(), Error> {
            let mut stmt = self.conn.prepare_cached(sql::ITER)?;
            let mut rows = stmt.query([])?;
            let mut contexts = Contexts::default();
            while let Some(row) = rows.next()? {
                if !f(event_from_row(&self.conn, &mut contexts, row)?) {
                    return Ok(());
                }
            }
            // Then the commit groups, whose seqs follow every row's.
            for_each_grouped(&self.conn, &self.path, |e| {
                Ok(f(queued_event(&self.conn, &mut contexts, e)?))
            })
        };
        run().map_err(failure("iter_events"))
    }

    /// Turns the commit groups into rows of `events`, so that SQL sees every queued event
    /// (a QA tool, a test that edits rows). The store does it itself before any operation
    /// on rows.
    #[doc(hidden)]
    pub fn expand_groups_into_rows(&mut self) -> Result<(), StoreFailure> {
        self.expand_groups().map_err(failure("expand_groups"))
    }

    /// Whether inserts may be written as commit groups (on by default), so that tests can
    /// exercise the rows that groups become.
    #[doc(hidden)]
    pub fn set_grouping(&mut self, on: bool) {
        self.grouping = on;
    }

    /// Sets `PRAGMA max_page_count`, so that tests can fill the disk for real
    /// (`SQLITE_FULL`), and limits the groups file to as many bytes of pages (`ENOSPC`).
    /// A value below the current size means the current size.
    #[doc(hidden)]
    pub fn set_max_pages(&mut self, pages: u32) {
        // The groups file gets as much again: each stands for a disk that is full.
        self.groups_limit = Some(u64::from(pages) * PAGE_SIZE as u64);
        if let Some(file) = &mut self.groups_file {
            file.limit(self.groups_limit);
        }
        if let Err(e) = self
            .conn
            .pragma_update_and_check(None, "max_page_count", pages, |r| r.get::<_, i64>(0))
        {
            log::warn!("setting max_page_count: {e}");
        }
    }

    /// The cached totals, read from the table the first time.
    fn totals(&mut self) -> Result<Totals, Error> {
        if let Some(totals) = self.totals {
            return Ok(totals);
        }
        self.load_groups()?;
        let through = self.delivered()?.through;
        let (rows, _) = read_totals(&self.conn, through)?;
        let totals = Totals {
            events: rows.events + self.pending.live(),
            bytes: rows.bytes.saturating_add(self.pending.live_bytes()),
        };
        self.totals = Some(totals);
        Ok(totals)
    }

    /// The delivered prefix, read from the file the first time (every time on a
    /// read-only connection).
    fn delivered(&mut self) -> Result<Delivered, Error> {
        match self.delivered {
            Some(delivered) if !self.read_only => Ok(delivered),
            _ => {
                let delivered = read_delivered(&self.conn)?;
                self.delivered = Some(delivered);
                Ok(delivered)
            }
        }
    }

    /// The order of creation times, read from the table the first time.
    fn ages(&mut self, through: i64) -> Result<Ages, Error> {
        if let Some(ages) = self.ages {
            return Ok(ages);
        }
        self.load_groups()?;
        let ages = Ages::read(&self.conn, through, &self.pending)?;
        self.ages = Some(ages);
        Ok(ages)
    }

    /// Accounts for events that a committed transaction removed.
    fn forget(&mut self, removed: Removed) {
        if let Some(t) = &mut self.totals {
            t.events = t.events.saturating_sub(removed.events);
            t.bytes = t.bytes.saturating_sub(removed.bytes);
        }
    }

    /// Gives free pages back to the file system when many are free (see
    /// [`VACUUM_FREE_PAGES`]). Both counts are read from page 1, which is in the cache:
    /// the check after every delete costs next to nothing.
    ///
    /// With no event queued (`empty`: the usual case, the queue emptied by a delivery),
    /// `VACUUM` rewrites what is left (the state, a context: a few pages) into a fresh
    /// file. `incremental_vacuum` instead writes every page it gives back (each is taken
    /// off the free list as an allocation): measured by `write_amplification`, that was
    /// 470 of the 2 045 bytes written per event when a full queue drained. With events
    /// queued, `VACUUM` would copy them all (in memory: `temp_store`), so the pages go
    /// back one by one.
    ///
    /// It runs after the delete has committed, in a transaction of its own, so that a
    /// vacuum that fails (a disk too full even for the WAL frames of the pages it moves)
    /// never fails the delete: it is logged, and tried again after the next one.
    fn release_free_pages(&self, empty: bool) {
        let run = || -> rusqlite::Result<()> {
            let count = |q: &str| -> rusqlite::Result<i64> {
                self.conn.prepare_cached(q)?.query_row([], |r| r.get(0))
            };
            let free = count("PRAGMA freelist_count")?;
            if free <= VACUUM_FREE_PAGES
                || free.saturating_mul(8)
                    < count("PRAGMA page_count")?.saturating_mul(VACUUM_FREE_EIGHTHS)
            {
                return Ok(());
            }
            if empty {
                match self.conn.execute_batch("VACUUM") {
                    Ok(()) => return Ok(()),
                    // A reader (a QA tool) can keep it from running: one page at a time.
                    Err(e) => log::info!("VACUUM of the emptied queue database: {e}"),
                }
            }
            release_all_free_pages(&self.conn)
        };
        if let Err(e) = run() {
            log::warn!("giving free pages of the queue database back: {e}");
        }
    }

    /// Once an opt-out purge is complete (see `wipe_through`), checkpoints the WAL into
    /// the database, whose deleted rows `secure_delete` zeroed, and truncates it to zero
    /// bytes: the frames that still hold the events are gone from the disk's files.
    ///
    /// Failing here does not fail the operation that committed before it: the wipe is
    /// tried again after the next write, and closing the store checkpoints and deletes
    /// the WAL anyway.
    fn wipe_wal_if_purged(&mut self) {
        let Some(through) = self.wipe_through else {
            return;
        };
        let run = || -> rusqlite::Result<bool> {
            let spared: bool = self
                .conn
                .prepare_cached(sql::ANY_UP_TO)?
                .query_row([through], |r| r.get(0))?;
            if spared {
                return Ok(false);
            }
            // Free pages can hold delivered events (see `schema::configure_writer`):
            // all of them go, the live pages moved into their place and the file cut.
            release_all_free_pages(&self.conn)?;
            // TRUNCATE waits (busy timeout) for readers, then resets the WAL to 0 bytes.
            // Its first column is 1 when a reader kept it from completing.
            let busy: i64 = self
                .conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
            Ok(busy == 0)
        };
        match run() {
            Ok(true) => {
                self.wipe_through = None;
                if let Err(e) = schema::overwrite_freed_pages(&self.conn, false) {
                    log::warn!("setting secure_delete back to FAST: {e}");
                }
            }
            Ok(false) => {}
            Err(e) => log::warn!("emptying the WAL after opting out: {e}; trying again later"),
        }
    }

    /// Starts a write transaction.
    ///
    /// `IMMEDIATE` takes the write lock at `BEGIN`, where the busy timeout applies. A
    /// deferred transaction that reads first and then writes can fail at once with
    /// `SQLITE_BUSY` in WAL mode, when another connection wrote in between.
    fn write(&mut self) -> rusqlite::Result<rusqlite::Transaction<'_>> {
        write(&mut self.conn)
    }

    fn do_snapshot(&mut self) -> Result<StoreSnapshot, Error> {
        if !self.read_only {
            // Read again: a snapshot is where the store's caches start over.
            self.delivered = None;
            self.groups_known = false;
            self.load_groups()?;
        }
        // One read transaction, so that the counts, the oldest event and the state agree.
        let tx = self.conn.transaction()?;
        let delivered = read_delivered(&tx)?;
        let (rows, max_seq) = read_totals(&tx, delivered.through)?;
        let rows_oldest = oldest_ms(&tx, delivered.through, None)?;
        // The commit groups: (events, bytes, largest seq, oldest creation time) from
        // memory, or read whole (a read-only connection keeps none).
        let grouped = if self.read_only {
            let mut sum = (0u64, 0u64, None::<i64>, None::<i64>);
            for_each_grouped(&tx, &self.path, |e| {
                sum.0 += 1;
                sum.1 = sum.1.saturating_add(e.body.len() as u64);
                sum.2 = sum.2.max(Some(e.seq));
                sum.3 = Some(sum.3.map_or(e.created_ms, |o| o.min(e.created_ms)));
                Ok(true)
            })?;
            sum
        } else {
            let p = &self.pending;
            let oldest = p.oldest_after(delivered.through);
            (p.live(), p.live_bytes(), p.last_seq(), oldest)
        };
        // Evicted seqs count as used too.
        let gaps_max = if self.read_only {
            gaps_end(&read_gaps(&tx)?)
        } else {
            gaps_end(&self.gaps)
        };
        let state = read_state(&tx)?;
        tx.commit()?;
        let totals = Totals {
            events: rows.events + grouped.0,
            bytes: rows.bytes.saturating_add(grouped.1),
        };
        let last = grouped
            .2
            .max(gaps_max)
            .map_or(0, |s| u64::try_from(s).unwrap_or(0));
        let max_seq = max_seq.max(last);
        let oldest_ms = match (rows_oldest, grouped.3) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.totals = Some(totals);
        self.delivered = Some(delivered);
        // Read again when needed: a snapshot is where the store's caches start over.
        self.ages = None;
        Ok(StoreSnapshot {
            state,
            events: totals.events,
            bytes: totals.bytes,
            max_seq,
            oldest_ms,
        })
    }

    fn do_insert(&mut self, events: &[QueuedEvent]) -> Result<(), Error> {
        let result = self.insert_events(events);
        if result.is_err() {
            // The transaction may have written context rows that it then rolled back.
            self.contexts = Contexts::default();
        }
        result
    }

    fn insert_events(&mut self, events: &[QueuedEvent]) -> Result<(), Error> {
        if self.insert_group(events)? {
            return Ok(());
        }
        // As rows, after the groups: every group's seqs stay after every row's.
        self.expand_groups()?;
        // The row path may insert below the known top or move the watermark back: read
        // the top again when next needed.
        self.top = None;
        let mut delivered = self.delivered()?;
        let first = events.iter().map(|e| e.seq).min().unwrap_or(u64::MAX);
        let tx = write(&mut self.conn)?;
        if i64::try_from(first).is_ok_and(|first| first <= delivered.through) {
            // The engine never goes back below a seq it has used (the snapshot's `max_seq`
            // includes the delivered prefix); an event that does anyway (a tool inserting
            // at chosen seqs) must not land in the prefix, where no reader would see it:
            // the delivered rows go for real and the watermark moves back below it.
            tx.prepare_cached(sql::DELETE_DELIVERED)?
                .execute([delivered.through])?;
            delivered = Delivered {
                through: sql_seq(first)? - 1,
                rows: 0,
            };
            save_delivered(&tx, delivered.through)?;
        }
        let mut added = Totals::default();
        let mut replaced_bytes = 0;
        {
            let mut insert = tx.prepare_cached(sql::INSERT)?;
            for ev in events {
                let seq = sql_seq(ev.seq)?;
                let context_id = match ev.json.context() {
                    Some(context) => Some(self.contexts.id_of(&tx, context)?),
                    None => None,
                };
                let row = params![
                    seq,
                    ev.message_id,
                    ev.created_ms,
                    ev.stored_bytes() as i64,
                    ev.json.body(),
                    ev.kind.as_str(),
                    ev.name,
                    context_id,
                ];
                match insert.execute(row) {
                    Ok(_) => added.events += 1,
                    // The engine never reuses a seq; if it happens anyway, the new event
                    // replaces the stored one, as in `MemoryStore`.
                    Err(e) if is_duplicate_key(&e) => {
                        let old: u64 = tx
                            .prepare_cached(sql::BYTES_OF)?
                            .query_row([seq], |r| get_u64(r, 0))?;
                        tx.prepare_cached(sql::REPLACE)?.execute(row)?;
                        replaced_bytes += old;
                    }
                    Err(e) => return Err(e.into()),
                }
                added.bytes += ev.stored_bytes();
            }
        }
        tx.commit()?;
        self.delivered = Some(delivered);
        self.inserted(events, added, replaced_bytes);
        Ok(())
    }

    /// Writes `events` as one commit group (see the `groups` module) when they can be:
    /// consecutive seqs after every stored one. Returns whether it did; if not, nothing
    /// was written.
    fn insert_group(&mut self, events: &[QueuedEvent]) -> Result<bool, Error> {
        let (Some(first), Some(last)) = (events.first(), events.last()) else {
            return Ok(false);
        };
        if self.read_only
            || !self.grouping
            || !events
                .windows(2)
                .all(|w| w[0].seq.checked_add(1) == Some(w[1].seq))
            || events.iter().any(|e| {
                [
                    e.json.body(),
                    &e.message_id,
                    e.name.as_deref().unwrap_or(""),
                ]
                .iter()
                .any(|t| t.len() >= u32::MAX as usize)
            })
        {
            return Ok(false);
        }
        let (Ok(first), Ok(last)) = (i64::try_from(first.seq), i64::try_from(last.seq)) else {
            return Ok(false);
        };
        self.load_groups()?;
        if first <= self.top()? {
            return Ok(false);
        }
        // Known before the first group, so that it follows every group after (the table
        // holds the rows only).
        let through = self.delivered()?.through;
        self.ages(through)?;
        let capacity = events
            .iter()
            .map(|e| e.json.body().len() + e.message_id.len() + 64)
            .sum();
        let mut blob = groups::start(capacity);
        let mut meta = Vec::with_capacity(events.len());
        let mut added = Totals::default();
        for ev in events {
            // A context not seen yet is written by itself (autocommit): an event refers to
            // it only once its group is appended, and an unused context is deleted later.
            let context_id = match ev.json.context() {
                Some(context) => Some(self.contexts.id_of(&self.conn, context)?),
                None => None,
            };
            let fields = groups::Fields {
                seq: ev.seq as i64,
                created_ms: ev.created_ms,
                context_id,
                message_id: &ev.message_id,
                kind: ev.kind.as_str(),
                name: ev.name.as_deref(),
                body: ev.json.body(),
            };
            groups::encode(&mut blob, fields).expect("lengths checked above");
            meta.push((ev.created_ms, ev.stored_bytes()));
            added.events += 1;
            added.bytes += ev.stored_bytes();
        }
        let at = self.groups_file()?.append(&blob)?;
        self.pending.push(at, first, meta);
        self.top = Some(last);
        self.inserted(events, added, 0);
        Ok(true)
    }

    /// Accounts for stored `events` (as rows or a group): `added` to the totals, less the
    /// bytes of rows they replaced, and their creation times to the order of ages.
    fn inserted(&mut self, events: &[QueuedEvent], added: Totals, replaced_bytes: u64) {
        if let Some(ages) = &mut self.ages {
            for ev in events {
                // Stored, so within i64.
                ages.inserted(ev.seq as i64, ev.created_ms);
            }
        }
        if let Some(t) = &mut self.totals {
            t.events += added.events;
            t.bytes = (t.bytes + added.bytes).saturating_sub(replaced_bytes);
        }
    }

    /// Turns every commit group into rows of `events` (see the `groups` module), in one
    /// transaction, the delivered events left out, then empties the groups file. A crash
    /// between the two leaves events that are rows and still in the file: reading the file
    /// skips every seq up to the largest row's (see [`SqliteStore::load_groups`]).
    fn expand_groups(&mut self) -> Result<(), Error> {
        if self.read_only {
            return Ok(());
        }
        self.load_groups()?;
        let through = self.delivered()?.through;
        let file = self.groups_file.as_mut().expect("opened by load_groups");
        if self.pending.is_empty() {
            if file.len() > 0 {
                file.truncate()?;
            }
            return Ok(());
        }
        let tx = write(&mut self.conn)?;
        {
            let mut insert = tx.prepare_cached(sql::EXPAND)?;
            read_pieces(file, &self.pending, through, |_, e| {
                insert.execute(params![
                    e.seq,
                    e.message_id,
                    e.created_ms,
                    e.body.len() as i64,
                    e.body,
                    e.kind,
                    e.name,
                    e.context_id,
                ])?;
                Ok(true)
            })?;
        }
        tx.commit()?;
        self.pending.clear();
        file.truncate()?;
        Ok(())
    }

    /// Opens the groups file and reads what it holds into memory (see `groups_known`),
    /// once; never on a read-only connection. What a reader skips is left out: the events
    /// at or below the watermark (delivered), at or below the largest row's seq (expanded:
    /// see [`SqliteStore::expand_groups`]) and in the saved gaps (evicted). A record whose
    /// seqs are not what this build writes is damage (Corrupt).
    fn load_groups(&mut self) -> Result<(), Error> {
        if self.read_only || self.groups_known {
            return Ok(());
        }
        let through = self.delivered()?.through;
        let gaps = read_gaps(&self.conn)?;
        let max_row = max_row_seq(&self.conn)?;
        let mut pending = Pending::default();
        let mut consistent = true;
        let path = companion(&self.path, GROUPS_SUFFIX);
        let _ = fs::remove_file(groups::temp_path(&path));
        let mut file = groups::GroupsFile::open(&path, &private::options(), |at, blob| {
            let events = groups::decode(blob)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            let first = events[0].seq;
            consistent &= pending.last_seq().is_none_or(|l| l < first)
                && events
                    .windows(2)
                    .all(|w| w[0].seq.checked_add(1) == Some(w[1].seq));
            let meta = events
                .iter()
                .map(|e| (e.created_ms, e.body.len() as u64))
                .collect();
            pending.push(at, first, meta);
            Ok(())
        })?;
        if !consistent {
            return Err(damaged_groups("seqs out of order"));
        }
        pending.remove_range(i64::MIN, max_row);
        for &(from, to) in &gaps {
            pending.remove_range(from.saturating_sub(1), to);
        }
        pending.deliver_through(through);
        if pending.is_empty() && file.len() > 0 {
            file.truncate()?;
        }
        file.limit(self.groups_limit);
        self.pending = pending;
        self.gaps = gaps;
        self.groups_file = Some(file);
        self.groups_known = true;
        Ok(())
    }

    /// The open groups file.
    fn groups_file(&mut self) -> Result<&mut groups::GroupsFile, Error> {
        self.load_groups()?;
        Ok(self.groups_file.as_mut().expect("opened by load_groups"))
    }

    /// What the runtime's thread does when no event waits: turns the groups into rows once
    /// they hold more than [`GROUPS_MAX_EVENTS`] queued events, syncs the groups file once
    /// [`GROUPS_SYNC_BYTES`] were appended, and rewrites it without its delivered and
    /// evicted records (see [`GROUPS_REWRITE_BYTES`] for when).
    /// Failures are logged: the next idle moment tries again.
    pub fn idle(&mut self) {
        if self.read_only || !self.groups_known {
            return;
        }
        if self.pending.live() > GROUPS_MAX_EVENTS {
            if let Err(e) = self.expand_groups() {
                log::warn!("turning the queue's commit groups into rows: {e}");
            }
        }
        if let Err(e) = self.rewrite_groups_if_due() {
            log::warn!("rewriting the queue's commit groups: {e}");
        }
        if let Some(file) = &mut self.groups_file {
            file.sync_behind(GROUPS_SYNC_BYTES);
        }
    }

    fn rewrite_groups_if_due(&mut self) -> Result<(), Error> {
        let Some(file) = &mut self.groups_file else {
            return Ok(());
        };
        let queued = self.pending.live_bytes();
        let delivering = self
            .delivered_at
            .is_some_and(|at| at.elapsed() < GROUPS_REWRITE_QUIET);
        if file.len() < GROUPS_REWRITE_BYTES
            || file.len() < queued.saturating_mul(4)
            || (delivering && queued > GROUPS_REWRITE_SMALL && file.len() < self.rewrite_large)
        {
            return Ok(());
        }
        let through = self.delivered.map_or(-1, |d| d.through);
        // One record per group, holding its queued events only, written as they are read.
        let mut rewriter = file.rewriter(&private::options())?;
        let mut moved = Vec::new();
        let mut piece: Vec<groups::Encoded> = Vec::new();
        let mut last = None;
        read_pieces(file, &self.pending, through, |group, e| {
            if last != Some(group) && !piece.is_empty() {
                moved.push(rewriter.push(&groups::encode_all(&piece))?);
                piece.clear();
            }
            last = Some(group);
            piece.push(e);
            Ok(true)
        })?;
        if !piece.is_empty() {
            moved.push(rewriter.push(&groups::encode_all(&piece))?);
        }
        file.replace(rewriter)?;
        self.pending.compact(&moved);
        Ok(())
    }

    /// At least the largest seq stored: see `top`.
    fn top(&mut self) -> Result<i64, Error> {
        if let Some(top) = self.top {
            return Ok(top);
        }
        let through = self.delivered()?.through;
        let rows = max_row_seq(&self.conn)?;
        let top = rows
            .max(through)
            .max(self.pending.last_seq().unwrap_or(-1))
            .max(gaps_end(&self.gaps).unwrap_or(-1));
        self.top = Some(top);
        Ok(top)
    }

    fn do_load(&mut self, max_events: usize, max_bytes: usize) -> Result<Vec<QueuedEvent>, Error> {
        let limit = i64::try_from(max_events).unwrap_or(i64::MAX);
        let through = self.delivered()?.through;
        let mut out = Vec::new();
        let mut bytes = 0u64;
        // Whether `ev` fits in the batch (the first always does).
        let mut fits = |out: &[QueuedEvent], ev: &QueuedEvent| {
            if !out.is_empty() && bytes + ev.bytes() > max_bytes as u64 {
                return false;
            }
            bytes += ev.bytes();
            true
        };
        {
            let mut stmt = self.conn.prepare_cached(sql::LOAD)?;
            let mut rows = stmt.query([limit, through])?;
            while let Some(row) = rows.next()? {
                let ev = event_from_row(&self.conn, &mut self.contexts, row)?;
                if !fits(&out, &ev) {
                    return Ok(out);
                }
                out.push(ev);
            }
        }
        // Then the groups, whose seqs follow every row's.
        if out.len() >= max_events {
            return Ok(out);
        }
        let mut take = |ev: QueuedEvent| {
            if !fits(&out, &ev) {
                return false;
            }
            out.push(ev);
            out.len() < max_events
        };
        if self.read_only {
            let contexts = &mut self.contexts;
            for_each_grouped(&self.conn, &self.path, |e| {
                Ok(take(queued_event(&self.conn, contexts, e)?))
            })?;
        } else {
            self.load_groups()?;
            let file = self.groups_file.as_mut().expect("opened by load_groups");
            let contexts = &mut self.contexts;
            read_pieces(file, &self.pending, through, |_, e| {
                Ok(take(queued_event(&self.conn, contexts, e)?))
            })?;
        }
        Ok(out)
    }

    /// A removal of queued events (a delete, an eviction) in one write transaction:
    /// `remove` deletes rows or moves the watermark (`Delivered`), and returns its result
    /// and what it removed; then, in the same transaction, what every removal ends with:
    /// the new oldest queued event, the delivered rows removed for real when nothing is
    /// queued behind them (or past the bound), and the contexts no event needs once the
    /// queue is empty. After the commit, the caches follow and free pages go back.
    fn removing<T>(
        &mut self,
        remove: impl FnOnce(&Connection, &mut Delivered) -> Result<(T, Removed), Error>,
    ) -> Result<(T, Option<i64>), Error> {
        let mut delivered = self.delivered()?;
        let ages = self.ages(delivered.through)?;
        let tx = write(&mut self.conn)?;
        let (out, removed) = remove(&tx, &mut delivered)?;
        // Every group delivered: the file is emptied below.
        let groups_done = self.pending.first_queued_after(delivered.through).is_none();
        // Gaps the watermark passed are of no more use (see `gaps`).
        let mut gaps = self.gaps.clone();
        gaps.retain(|&(_, to)| to > delivered.through);
        if gaps.len() != self.gaps.len() {
            save_gaps(&tx, &gaps)?;
        }
        let oldest = oldest_queued(&tx, delivered.through, &ages, &self.pending)?;
        remove_delivered_rows(
            &tx,
            &mut delivered,
            oldest,
            self.delivered_rows_max,
            self.wipe_through.is_some(),
        )?;
        let purged = purge_contexts_if_empty(&tx, oldest, &self.contexts)?;
        tx.commit()?;
        self.delivered = Some(delivered);
        self.pending.deliver_through(delivered.through);
        self.gaps = gaps;
        if groups_done {
            if let Some(file) = self.groups_file.as_mut().filter(|f| f.len() > 0) {
                // Failing leaves delivered records, which every reader skips.
                if let Err(e) = file.truncate() {
                    log::warn!("emptying the queue's commit groups: {e}");
                }
            }
        }
        if purged {
            self.contexts.forget_all_but_last();
        }
        self.forget(removed);
        self.release_free_pages(oldest.is_none());
        self.wipe_wal_if_purged();
        Ok((out, oldest))
    }

    /// Deletes delivered (or rejected) events. A delivered batch is usually the oldest
    /// events of the queue, and then nothing is deleted: the watermark `delivered_through`
    /// moves past it (one row of `state`), in the same transaction, and every reader
    /// skips the rows at or below it.
    ///
    /// Deleting rows rewrites every page they were on, in the WAL and again at the
    /// checkpoint, and costs SQLite work per row; moving the watermark writes one page.
    /// The delivered rows go for real when nothing is queued behind them, with
    /// `DELETE FROM events`, which SQLite runs by handing the table's pages to the free
    /// list as they are (on a good link, after every upload), or once more than
    /// [`DELIVERED_ROWS_MAX`] of them are left, in one range delete. Measured by
    /// `write_amplification`: see [`DELIVERED_ROWS_MAX`].
    ///
    /// The watermark is saved also when the table empties, so that a restart never uses
    /// a delivered seq again: one page more per delivery. Measured on the paced pattern
    /// (commits and batches of 20, the queue emptying after each): 1 460 against 1 356
    /// bytes written per event when only `DELETE FROM events` ran.
    ///
    /// Seqs that are not the oldest queued events (a batch the server refused in the
    /// middle of the queue, gaps of evicted events between them and the oldest) are
    /// deleted row by row, one statement per run of consecutive seqs.
    fn do_delete(&mut self, seqs: &[u64]) -> Result<(Removed, Option<i64>), Error> {
        self.load_groups()?;
        if !self.pending.is_empty() {
            if let Some(done) = self.deliver_grouped(seqs)? {
                return Ok(done);
            }
            self.expand_groups()?;
        }
        self.removing(|tx, after| {
            let delivered = *after;
            // A seq too large for SQLite cannot be stored, so there is nothing to delete; nor
            // is there below the watermark.
            let mut sorted: Vec<i64> = seqs
                .iter()
                .filter_map(|&s| i64::try_from(s).ok())
                .filter(|&s| s > delivered.through)
                .collect();
            sorted.sort_unstable();
            sorted.dedup();
            let runs: Vec<(i64, i64)> = sorted
                .chunk_by(|a, b| a.checked_add(1) == Some(*b))
                .map(|run| (run[0], run[run.len() - 1]))
                .collect();
            let mut removed = Removed::default();
            if let (Some(&(first, _)), Some(&(_, last))) = (runs.first(), runs.last()) {
                // The rows between the watermark and the last seq: the seqs are a prefix when
                // these are all among them.
                let (live, bytes, min) = tx.prepare_cached(sql::LIVE_THROUGH)?.query_row(
                    [delivered.through, last],
                    |r| {
                        Ok((
                            get_u64(r, 0)?,
                            bytes_total(r, 1)?,
                            r.get::<_, Option<i64>>(2)?,
                        ))
                    },
                )?;
                let prefix = if runs.len() == 1 {
                    // None below the run: every row up to `last` is in it.
                    min.is_none_or(|min| min >= first)
                } else {
                    // None in the gaps between the runs either.
                    let mut count = tx.prepare_cached(sql::COUNT_IN)?;
                    let mut in_runs = 0u64;
                    for &(first, last) in &runs {
                        in_runs += count.query_row([first, last], |r| get_u64(r, 0))?;
                    }
                    in_runs == live
                };
                if prefix {
                    if live > 0 {
                        removed = Removed {
                            events: live,
                            bytes,
                        };
                        *after = Delivered {
                            through: last,
                            rows: delivered.rows.saturating_add(live),
                        };
                        save_delivered(tx, last)?;
                    }
                } else {
                    let mut delete = tx.prepare_cached(sql::DELETE_RANGE)?;
                    for &(first, last) in &runs {
                        removed = plus(removed, removed_by_stmt(&mut delete, [first, last])?);
                    }
                }
            }
            Ok((removed, removed))
        })
    }

    /// The delete of a delivered prefix that lies in the commit groups (no row queued):
    /// the watermark moves past it (the file is emptied once all of it is delivered).
    /// `None` when the seqs are not that (the caller expands the groups and deletes rows).
    fn deliver_grouped(&mut self, seqs: &[u64]) -> Result<Option<(Removed, Option<i64>)>, Error> {
        let through = self.delivered()?.through;
        let rows = self.totals()?.events.saturating_sub(self.pending.live());
        if rows > 0 {
            return Ok(None);
        }
        let mut sorted: Vec<i64> = seqs
            .iter()
            .filter_map(|&s| i64::try_from(s).ok())
            .filter(|&s| s > through)
            .collect();
        sorted.sort_unstable();
        sorted.dedup();
        let Some((events, bytes)) = self.pending.prefix(&sorted) else {
            return Ok(None);
        };
        let removed = Removed { events, bytes };
        let done = self.removing(|tx, after| {
            if let Some(&last) = sorted.last() {
                after.through = last;
                save_delivered(tx, last)?;
            }
            Ok(((), removed))
        })?;
        self.delivered_at = Some(std::time::Instant::now());
        Ok(Some((removed, done.1)))
    }

    /// [`QueueStore::evict`] when every queued event is in commit groups created in order
    /// (see `Ages`): then each step evicts the oldest events after the spared ones, so all
    /// of them together are one range of seqs, `(spare, cut]`, saved as a gap that readers
    /// of the file skip (the records stay until the file is rewritten). `None` otherwise
    /// (the caller expands the groups and evicts rows).
    fn evict_grouped(
        &mut self,
        max_events: u64,
        max_bytes: u64,
        min_created_ms: i64,
        spare_through: u64,
    ) -> Result<Option<(Evicted, Option<i64>)>, Error> {
        let delivered = self.delivered()?;
        let totals = self.totals()?;
        let ages = self.ages(delivered.through)?;
        if totals.events != self.pending.live() {
            return Ok(None);
        }
        let spare = i64::try_from(spare_through)
            .unwrap_or(i64::MAX)
            .max(delivered.through);
        if self
            .pending
            .first_queued_after(spare)
            .is_some_and(|(seq, _)| seq < ages.sorted_from)
        {
            return Ok(None);
        }
        // The same steps as the row path's statements, on the events after `spare`.
        let mut evicted = Evicted::default();
        let mut cut = None;
        {
            let mut events = self.pending.after(spare).peekable();
            let mut take = |removed: &mut Removed, (seq, _, bytes): (i64, i64, u64)| {
                removed.events += 1;
                removed.bytes = removed.bytes.saturating_add(bytes);
                cut = Some(seq);
            };
            while let Some(e) = events.next_if(|e| e.1 < min_created_ms) {
                take(&mut evicted.age, e);
            }
            let events_left = totals.events.saturating_sub(evicted.age.events);
            for _ in 0..events_left.saturating_sub(max_events) {
                let Some(e) = events.next() else { break };
                take(&mut evicted.count, e);
            }
            let bytes_left = totals
                .bytes
                .saturating_sub(evicted.age.bytes.saturating_add(evicted.count.bytes));
            let over = bytes_left.saturating_sub(max_bytes);
            while evicted.bytes.bytes < over {
                let Some(e) = events.next() else { break };
                take(&mut evicted.bytes, e);
            }
        }
        let removed = plus(plus(evicted.age, evicted.count), evicted.bytes);
        let Some(cut) = cut else {
            let oldest = oldest_queued(&self.conn, delivered.through, &ages, &self.pending)?;
            return Ok(Some((evicted, oldest)));
        };
        // The range becomes a gap, saved with the rest; the records stay as they are
        // until the file is rewritten (see `SqliteStore::idle`).
        let mut gaps = self.gaps.clone();
        add_gap(&mut gaps, (spare + 1, cut), delivered.through);
        let run = |store: &mut SqliteStore| -> Result<Option<i64>, Error> {
            let tx = write(&mut store.conn)?;
            save_gaps(&tx, &gaps)?;
            store.pending.remove_range(spare, cut);
            let oldest = oldest_queued(&tx, delivered.through, &ages, &store.pending)?;
            purge_contexts_if_empty(&tx, oldest, &store.contexts)?;
            tx.commit()?;
            Ok(oldest)
        };
        let oldest = match run(self) {
            Ok(oldest) => oldest,
            Err(e) => {
                // The memory may be ahead of the file: read it again when next needed.
                self.pending.clear();
                self.groups_known = false;
                self.contexts = Contexts::default();
                return Err(e);
            }
        };
        self.gaps = gaps;
        if oldest.is_none() {
            self.contexts.forget_all_but_last();
        }
        self.forget(removed);
        self.release_free_pages(oldest.is_none());
        self.wipe_wal_if_purged();
        // An eviction is what leaves a queue that never empties with dead records: they go
        // once they are three quarters of the file (see GROUPS_REWRITE_BYTES). Deliveries
        // wait for the runtime to idle.
        if let Err(e) = self.rewrite_groups_if_due() {
            log::warn!("rewriting the queue's commit groups: {e}");
        }
        Ok(Some((evicted, oldest)))
    }

    /// See [`QueueStore::evict`]. Each step touches only the rows it removes, plus one
    /// B-tree descent: the age step goes through the `created_ms` index, the count and
    /// bytes steps through the primary key, and the totals are cached. So with nothing to
    /// evict, nothing is scanned.
    fn do_evict(
        &mut self,
        max_events: u64,
        max_bytes: u64,
        min_created_ms: i64,
        spare_through: u64,
    ) -> Result<(Evicted, Option<i64>), Error> {
        self.load_groups()?;
        if !self.pending.is_empty() {
            if let Some(done) =
                self.evict_grouped(max_events, max_bytes, min_created_ms, spare_through)?
            {
                return Ok(done);
            }
            // The steps below work on rows.
            self.expand_groups()?;
        }
        let totals = self.totals()?;
        self.removing(|tx, delivered| {
            // Delivered rows are gone already: the caps count and take queued ones only.
            let spare = i64::try_from(spare_through)
                .unwrap_or(i64::MAX)
                .max(delivered.through);
            let mut evicted = Evicted {
                age: removed_by(tx.prepare_cached(sql::EVICT_AGE)?, [min_created_ms, spare])?,
                ..Evicted::default()
            };
            let events_left = totals.events.saturating_sub(evicted.age.events);
            if events_left > max_events {
                let n = i64::try_from(events_left - max_events).unwrap_or(i64::MAX);
                evicted.count = removed_by(tx.prepare_cached(sql::EVICT_OLDEST)?, [n, spare])?;
            }
            let bytes_left = totals
                .bytes
                .saturating_sub(evicted.age.bytes.saturating_add(evicted.count.bytes));
            if bytes_left > max_bytes {
                // Walk the oldest rows until enough bytes are found, then delete up to there.
                let over = bytes_left - max_bytes;
                let mut last = None;
                {
                    let mut walk = tx.prepare_cached(sql::WALK)?;
                    let mut rows = walk.query([spare])?;
                    let mut found = 0u64;
                    while found < over {
                        let Some(row) = rows.next()? else { break };
                        last = Some(row.get::<_, i64>(0)?);
                        found = found.saturating_add(get_u64(row, 1)?);
                    }
                }
                if let Some(last) = last {
                    evicted.bytes =
                        removed_by(tx.prepare_cached(sql::DELETE_UP_TO)?, [last, spare])?;
                }
            }
            let removed = plus(plus(evicted.age, evicted.count), evicted.bytes);
            Ok((evicted, removed))
        })
    }

    /// The opt-out purge. Besides the rows, it removes what else holds tracked events:
    /// the WAL's frames (see [`SqliteStore::wipe_wal_if_purged`]) and the copies of
    /// corrupt databases. `secure_delete` has zeroed the rows in the database's pages.
    fn do_clear(&mut self, spare_through: u64) -> Result<Removed, Error> {
        let delivered = self.delivered()?;
        let spare = i64::try_from(spare_through)
            .unwrap_or(i64::MAX)
            .max(delivered.through);
        // Until the purge is complete, every deleted byte is overwritten, whole pages
        // included; `wipe_wal_if_purged` goes back to FAST.
        schema::overwrite_freed_pages(&self.conn, true)?;
        // Rows, so that the purge below removes them (and the groups file is emptied).
        self.expand_groups()?;
        let tx = self.write()?;
        let removed = removed_by(tx.prepare_cached(sql::CLEAR)?, [spare])?;
        // The delivered rows are tracked events too; the watermark stays, so that seqs
        // never go back.
        tx.prepare_cached(sql::DELETE_DELIVERED)?
            .execute([delivered.through])?;
        // Contexts are personal data too: every one no spared event needs goes.
        tx.prepare_cached(sql::PURGE_CONTEXTS)?.execute([])?;
        // Recounted from the table rather than the cache: clearing is rare (opt-out), and
        // it puts the cache right if it ever was wrong.
        let (totals, _) = read_totals(&tx, delivered.through)?;
        tx.commit()?;
        self.totals = Some(totals);
        self.delivered = Some(Delivered {
            through: delivered.through,
            rows: 0,
        });
        self.contexts = Contexts::default();
        self.release_free_pages(totals.events == 0);
        self.wipe_through = Some(spare);
        self.wipe_wal_if_purged();
        corrupt_copies::prune(&self.path, corrupt_copies::Keep::None);
        Ok(removed)
    }

    fn do_save_state(&mut self, state: &PersistedState) -> Result<(), Error> {
        let pieces = [
            (
                state::ANONYMOUS_ID,
                serde_json::to_string(&state.identity.anonymous_id)?,
            ),
            (
                state::USER_ID,
                serde_json::to_string(&state.identity.user_id)?,
            ),
            (
                state::TRAITS,
                serde_json::to_string(&state.identity.traits)?,
            ),
            (state::OPTED_OUT, serde_json::to_string(&state.opted_out)?),
            (state::ENDPOINTS, serde_json::to_string(&state.endpoints)?),
        ];
        let tx = self.write()?;
        {
            let mut save = tx.prepare_cached(sql::SAVE_STATE)?;
            for (key, value) in &pieces {
                save.execute(params![key, value])?;
            }
            // Written by versions with one endpoint; `endpoints` replaces it.
            tx.prepare_cached(sql::DELETE_STATE)?
                .execute(params![state::LEGACY_RETRY])?;
        }
        tx.commit()?;
        Ok(())
    }
}

impl Drop for SqliteStore {
    /// Syncs what was appended to the groups file, as closing the database syncs its WAL
    /// into the file (a checkpoint).
    fn drop(&mut self) {
        if let Some(file) = &mut self.groups_file {
            if let Err(e) = file.sync(1) {
                log::warn!("syncing the queue's commit groups: {e}");
            }
        }
    }
}

impl QueueStore for SqliteStore {
    fn snapshot(&mut self) -> Result<StoreSnapshot, StoreFailure> {
        self.do_snapshot().map_err(failure("snapshot"))
    }

    fn insert(&mut self, events: &[QueuedEvent]) -> Result<(), StoreFailure> {
        self.do_insert(events).map_err(failure("insert"))
    }

    fn load(
        &mut self,
        max_events: usize,
        max_bytes: usize,
    ) -> Result<Vec<QueuedEvent>, StoreFailure> {
        self.do_load(max_events, max_bytes).map_err(failure("load"))
    }

    fn delete(&mut self, seqs: &[u64]) -> Result<(Removed, Option<i64>), StoreFailure> {
        self.do_delete(seqs).map_err(failure("delete"))
    }

    fn evict(
        &mut self,
        max_events: u64,
        max_bytes: u64,
        min_created_ms: i64,
        spare_through: u64,
    ) -> Result<(Evicted, Option<i64>), StoreFailure> {
        self.do_evict(max_events, max_bytes, min_created_ms, spare_through)
            .map_err(failure("evict"))
    }

    fn clear(&mut self, spare_through: u64) -> Result<Removed, StoreFailure> {
        self.do_clear(spare_through).map_err(failure("clear"))
    }

    fn save_state(&mut self, state: &PersistedState) -> Result<(), StoreFailure> {
        self.do_save_state(state).map_err(failure("save_state"))
    }
}

/// The statements of the store's operations.
mod sql {
    pub const INSERT: &str =
        "INSERT INTO events(seq, message_id, created_ms, bytes, json, type, name, context_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
    pub const BYTES_OF: &str = "SELECT bytes FROM events WHERE seq = ?1";
    pub const REPLACE: &str = "UPDATE events SET message_id = ?2, created_ms = ?3, bytes = ?4,
         json = ?5, type = ?6, name = ?7, context_id = ?8 WHERE seq = ?1";
    // Statements that take the watermark as a parameter (the writer knows it) say
    // `seq > ?n`; those of QA readers read it from `state` themselves, in the same
    // statement, with `queued!()`.

    /// Whether a row is queued, i.e. after the delivered prefix, the watermark read from
    /// `state` (what the module docs tell QA tools to write).
    macro_rules! queued {
        () => {
            "seq > coalesce((SELECT CAST(value AS INTEGER) FROM state
             WHERE key = 'delivered_through'), -1)"
        };
    }

    pub const LOAD: &str = "SELECT seq, message_id, type, name, created_ms, json, context_id
         FROM events WHERE seq > ?2 ORDER BY seq LIMIT ?1";
    pub const ITER: &str = concat!(
        "SELECT seq, message_id, type, name, created_ms, json, context_id FROM events WHERE ",
        queued!(),
        " ORDER BY seq"
    );
    pub const COUNTS: &str = concat!(
        "SELECT coalesce(type, 'unknown') AS t, name, count(*), sum(bytes) FROM events WHERE ",
        queued!(),
        " GROUP BY t, name ORDER BY t, name"
    );
    pub const TOTALS: &str = "SELECT count(*), total(bytes), coalesce(max(seq), 0)
         FROM events WHERE seq > ?1";
    /// The smallest creation time of the queued events: the `created_ms` index from its
    /// start, past the entries of delivered rows.
    pub const OLDEST: &str = "SELECT created_ms FROM events INDEXED BY events_created_ms
         WHERE seq > ?1 ORDER BY created_ms LIMIT 1";
    /// The first queued event.
    pub const FIRST_QUEUED: &str =
        "SELECT seq, created_ms FROM events WHERE seq > ?1 ORDER BY seq LIMIT 1";
    /// The queued events, newest first (see `Ages::read`).
    pub const SEQ_AGES_DESC: &str =
        "SELECT seq, created_ms FROM events WHERE seq > ?1 ORDER BY seq DESC";
    /// The watermark.
    pub const DELIVERED_THROUGH: &str =
        "SELECT CAST(value AS INTEGER) FROM state WHERE key = 'delivered_through'";
    /// The rows at or below the watermark.
    pub const COUNT_UP_TO: &str = "SELECT count(*) FROM events WHERE seq <= ?1";
    /// The rows after the watermark `?1` up to `?2`: a delete's prefix check.
    pub const LIVE_THROUGH: &str = "SELECT count(*), total(bytes), min(seq) FROM events
         WHERE seq > ?1 AND seq <= ?2";
    pub const COUNT_IN: &str = "SELECT count(*) FROM events WHERE seq >= ?1 AND seq <= ?2";
    /// Without a WHERE clause SQLite frees the table's pages without rewriting them.
    pub const DELETE_ALL: &str = "DELETE FROM events";
    /// The delivered rows, when events are queued behind them.
    pub const DELETE_DELIVERED: &str = "DELETE FROM events WHERE seq <= ?1";
    /// The events of one run of consecutive seqs (a delivered batch).
    pub const DELETE_RANGE: &str =
        "DELETE FROM events WHERE seq >= ?1 AND seq <= ?2 RETURNING bytes";
    // In the evictions, `seq > ?2` spares the events being uploaded.
    pub const EVICT_AGE: &str =
        "DELETE FROM events WHERE created_ms < ?1 AND seq > ?2 RETURNING bytes";
    pub const EVICT_OLDEST: &str = "DELETE FROM events
         WHERE seq IN (SELECT seq FROM events WHERE seq > ?2 ORDER BY seq LIMIT ?1)
         RETURNING bytes";
    pub const WALK: &str = "SELECT seq, bytes FROM events WHERE seq > ?1 ORDER BY seq";
    pub const DELETE_UP_TO: &str =
        "DELETE FROM events WHERE seq <= ?1 AND seq > ?2 RETURNING bytes";
    pub const CLEAR: &str = "DELETE FROM events WHERE seq > ?1 RETURNING bytes";
    /// Whether any row of the events a clear spared is left, delivered or not (while a
    /// purge waits on them, delivered rows are deleted for real).
    pub const ANY_UP_TO: &str = "SELECT EXISTS(SELECT 1 FROM events WHERE seq <= ?1)";
    /// The row of a context, by its text (the table holds a handful of rows).
    pub const CONTEXT_ID: &str = "SELECT id FROM contexts WHERE json = ?1";
    pub const INSERT_CONTEXT: &str = "INSERT INTO contexts(json) VALUES (?1) RETURNING id";
    pub const CONTEXT_JSON: &str = "SELECT json FROM contexts WHERE id = ?1";
    /// Every context no event refers to.
    pub const PURGE_CONTEXTS: &str = "DELETE FROM contexts WHERE id NOT IN
         (SELECT context_id FROM events WHERE context_id IS NOT NULL)";
    /// The contexts no row refers to.
    pub const UNUSED_CONTEXTS: &str = "SELECT id FROM contexts WHERE id NOT IN
         (SELECT context_id FROM events WHERE context_id IS NOT NULL)";
    /// Every context but one (the last written, which new events are likely to carry):
    /// for when the queue has just emptied.
    pub const PURGE_CONTEXTS_BUT: &str = "DELETE FROM contexts WHERE id IS NOT ?1";
    /// The saved gaps of the groups file.
    pub const READ_GAPS: &str = "SELECT value FROM state WHERE key = 'group_gaps'";
    /// An event of a group becoming a row. A row already at its seq (only damage makes
    /// one) gives way to the group's newer event.
    pub const EXPAND: &str = "INSERT OR REPLACE INTO events(seq, message_id, created_ms,
         bytes, json, type, name, context_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
    /// The largest seq of a row, delivered or not.
    pub const MAX_SEQ: &str = "SELECT coalesce(max(seq), -1) FROM events";
    pub const READ_STATE: &str = "SELECT key, value FROM state";
    pub const SAVE_STATE: &str = "INSERT INTO state(key, value) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value";
    pub const DELETE_STATE: &str = "DELETE FROM state WHERE key = ?1";
}

/// The keys of the `state` table.
mod state {
    pub const ANONYMOUS_ID: &str = "anonymous_id";
    pub const USER_ID: &str = "user_id";
    pub const TRAITS: &str = "traits";
    pub const OPTED_OUT: &str = "opted_out";
    /// Each endpoint's breaker ([`trailhound_core::breaker::EndpointState`]).
    pub const ENDPOINTS: &str = "endpoints";
    /// The one endpoint's retry state, as versions before several endpoints saved it:
    /// read when `endpoints` is absent, deleted by the next save.
    pub const LEGACY_RETRY: &str = "retry";
    /// The store's own, not [`PersistedState`]'s: the watermark of delivered events.
    pub const DELIVERED_THROUGH: &str = "delivered_through";
    /// The store's own too: the gaps of the groups file, `[[from, to], …]`.
    pub const GROUP_GAPS: &str = "group_gaps";
}

/// Connection settings, the current schema and the upgrades to it.
///
/// To change the schema: change [`create`], bump [`VERSION`], add the step from the
/// previous version to [`upgrade_from`], and add a `create_v<N>` snapshot of the old
/// schema to the tests so that the upgrade is checked against a fresh database.
mod schema {
    use rusqlite::config::DbConfig;
    use rusqlite::{ffi, Connection, Transaction};

    use super::{BUSY_TIMEOUT, STATEMENT_CACHE};

    /// The current schema version.
    pub const VERSION: u32 = 4;

    /// Settings for every connection, read-only ones included. They write nothing to the
    /// file, so they are safe before the version check.
    pub fn configure(conn: &Connection) -> rusqlite::Result<()> {
        // A locked database is waited on rather than failing at once; see BUSY_TIMEOUT.
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // Refuse what can corrupt a database through SQL alone (writable_schema, raw page
        // writes): QA tools copy this file around, and it must stay sound.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)?;
        // A double-quoted word is an identifier, never a silently accepted string literal.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DQS_DML, false)?;
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DQS_DDL, false)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        conn.execute_batch(
            "
            -- Sorting and grouping (the QA counts) stay in memory: they are small, and a
            -- temporary file is slow flash traffic on a phone.
            PRAGMA temp_store = MEMORY;
            -- foreign_keys stays off: the schema has no foreign keys.
            ",
        )
    }

    /// Settings for read-write connections. `journal_mode` is written into the file, so
    /// this runs only once the version is known to be ours.
    pub fn configure_writer(conn: &Connection) -> rusqlite::Result<()> {
        // Free pages are handed back to the file system by `incremental_vacuum` (see
        // VACUUM_FREE_PAGES), so that the file shrinks after a full queue drains; pages
        // are PAGE_SIZE. Only a database without tables takes these at once, so they are
        // set before anything else writes page 1; for an existing database they only take
        // effect at the next VACUUM, which `ensure_file_settings` runs.
        conn.execute_batch(&format!(
            "PRAGMA auto_vacuum = INCREMENTAL; PRAGMA page_size = {}",
            super::PAGE_SIZE
        ))?;
        // Write-ahead logging: a commit appends to the WAL instead of writing a rollback
        // journal and then the database, which is most of our insert throughput, and
        // readers (QA tools) never block the writer nor see a half-written queue.
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            log::warn!("the queue database stays in journal mode {mode}, not WAL");
        }
        conn.execute_batch(
            "
            -- In WAL mode, NORMAL syncs the WAL at checkpoints, not at every commit. A
            -- committed transaction survives the app crashing or being killed (it is in
            -- the OS's cache); only a power loss or OS crash can lose the last few
            -- committed since the last checkpoint, and the database stays consistent.
            -- FULL would add an fsync, often tens of milliseconds on phone flash, to
            -- every group commit of analytics events.
            PRAGMA synchronous = NORMAL;
            -- After a checkpoint, cut the WAL back to 1 MiB instead of leaving it as
            -- large as the largest transaction (a clear of a full queue) for good.
            -- (Keeping it at its checkpoint size writes no fewer bytes: measured.)
            PRAGMA journal_size_limit = 1048576;
            -- Checkpoint once the WAL holds 2000 pages: 4 MiB, what SQLite's default of
            -- 1000 pages gave with its 4 KiB pages (see PAGE_SIZE), so that the WAL, the
            -- longest commit (the one that runs the checkpoint) and what a power cut can
            -- lose stay as they were. Pages that deliveries freed and new events reused
            -- within one WAL reach the database once: measured by `write_amplification`,
            -- 1000 pages wrote 1 102 instead of 927 bytes per event with deliveries
            -- interleaved, 2 077 instead of 2 047 filled then drained.
            PRAGMA wal_autocheckpoint = 2000;
            ",
        )?;
        overwrite_freed_pages(conn, false)
    }

    /// `secure_delete`: ON (`all`) while an opt-out purge is under way, FAST otherwise.
    ///
    /// FAST overwrites deleted rows with zeros wherever that writes nothing more: rows
    /// deleted from a page that stays in use are zeroed in it. Whole pages that go to the
    /// free list keep their bytes until they are reused by the next inserts, or given
    /// back to the file system (see VACUUM_FREE_PAGES): zeroing them would write each
    /// delivered event once more, and emptying the queue with `DELETE FROM events`
    /// would lose its point, which is not to write the freed pages at all (measured by
    /// `write_amplification`: 2 232 against 1 208 bytes written per 795-byte event when
    /// delivered in batches of 500). Those are delivered events, which the collector
    /// holds anyway. Purged ones (opt-out) are another matter: the purge runs with ON,
    /// and before its WAL is emptied every free page is given back, delivered events'
    /// included, so that after an opt-out no event is left anywhere in the files.
    pub fn overwrite_freed_pages(conn: &Connection, all: bool) -> rusqlite::Result<()> {
        conn.execute_batch(if all {
            "PRAGMA secure_delete = ON"
        } else {
            "PRAGMA secure_delete = FAST"
        })
    }

    /// `PRAGMA auto_vacuum` of the file: 0 none, 1 full, 2 incremental.
    pub fn auto_vacuum(conn: &Connection) -> rusqlite::Result<i64> {
        conn.pragma_query_value(None, "auto_vacuum", |r| r.get(0))
    }

    /// `PRAGMA page_size` of the file.
    pub fn page_size(conn: &Connection) -> rusqlite::Result<i64> {
        conn.pragma_query_value(None, "page_size", |r| r.get(0))
    }

    /// Converts a database created without `auto_vacuum = INCREMENTAL` (by versions
    /// before it, schema version 2 and older) or with other pages than [`PAGE_SIZE`]
    /// (schema version 2 and older) with a one-time `VACUUM`, which rewrites the file and
    /// so drops every deleted byte too. The page size cannot change in WAL mode, so the
    /// `VACUUM` runs with a rollback journal, which needs the file to itself: with a
    /// reader (a QA tool) on it, the conversion waits for the next open. It needs free
    /// space for a copy of the database, and runs outside a transaction: a failure leaves
    /// the file as it was, and is retried at the next open; only a corrupt file fails the
    /// open. The file is in WAL mode again afterwards, whatever happened.
    pub fn ensure_file_settings(conn: &Connection) -> rusqlite::Result<()> {
        if auto_vacuum(conn)? == 2 && page_size(conn)? == super::PAGE_SIZE {
            return Ok(());
        }
        log::info!("converting the queue database to its file settings (one VACUUM)");
        let convert = || -> rusqlite::Result<()> {
            let mode: String =
                conn.pragma_update_and_check(None, "journal_mode", "DELETE", |r| r.get(0))?;
            if !mode.eq_ignore_ascii_case("delete") {
                log::warn!("the queue database stays in journal mode {mode}; converting it at the next open");
                return Ok(());
            }
            // Set again: the settings wait in the connection for the VACUUM.
            conn.execute_batch(&format!(
                "PRAGMA page_size = {}; PRAGMA auto_vacuum = INCREMENTAL; VACUUM;",
                super::PAGE_SIZE
            ))
        };
        let converted = match convert() {
            Err(e) if !super::is_corrupt(&e) => {
                log::warn!("converting the queue database: {e}; trying again at the next open");
                Ok(())
            }
            other => other,
        };
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            log::warn!("the queue database stays in journal mode {mode}, not WAL");
        }
        converted
    }

    /// Deletes the contexts no event refers to (left by the last run when it stopped with
    /// events queued under an older context). Housekeeping: a failure is logged, and the
    /// rows go when the queue next empties or at the next open. A corrupt file is left to
    /// the first operation to find, as it would be without this.
    pub fn purge_contexts(conn: &Connection, db: &std::path::Path) {
        // Without contexts, nothing to read: the events are not scanned.
        let purge = || -> Result<(), super::Error> {
            let any: bool =
                conn.query_row("SELECT EXISTS(SELECT 1 FROM contexts)", [], |r| r.get(0))?;
            if !any {
                return Ok(());
            }
            // The events of commit groups refer to contexts from their records (every
            // record: keeping a context a delivered event used is harmless).
            let mut used = std::collections::HashSet::new();
            let mut any_group = false;
            super::groups::read_records(&super::companion(db, super::GROUPS_SUFFIX), |_, blob| {
                any_group = true;
                if let Ok(events) = super::groups::decode(blob) {
                    used.extend(events.iter().filter_map(|e| e.context_id));
                }
                Ok(())
            })?;
            if !any_group {
                conn.execute(super::sql::PURGE_CONTEXTS, [])?;
                return Ok(());
            }
            let unused: Vec<i64> = conn
                .prepare(super::sql::UNUSED_CONTEXTS)?
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            for id in unused.into_iter().filter(|id| !used.contains(id)) {
                conn.execute("DELETE FROM contexts WHERE id = ?1", [id])?;
            }
            Ok(())
        };
        if let Err(e) = purge() {
            log::warn!("deleting unused contexts of the queue database: {e}");
        }
    }

    /// Checks that the tables are the ones the version says, by preparing every statement
    /// of the store: a database that says it is ours but is not (a damaged or foreign
    /// file) is reported as corrupt, to be moved aside, instead of failing every
    /// operation for good.
    pub fn check(conn: &Connection) -> rusqlite::Result<()> {
        use super::sql::*;
        for q in [
            INSERT,
            BYTES_OF,
            REPLACE,
            LOAD,
            ITER,
            COUNTS,
            TOTALS,
            OLDEST,
            FIRST_QUEUED,
            SEQ_AGES_DESC,
            DELIVERED_THROUGH,
            COUNT_UP_TO,
            LIVE_THROUGH,
            COUNT_IN,
            DELETE_RANGE,
            DELETE_ALL,
            DELETE_DELIVERED,
            EVICT_AGE,
            EVICT_OLDEST,
            WALK,
            DELETE_UP_TO,
            CLEAR,
            ANY_UP_TO,
            CONTEXT_ID,
            INSERT_CONTEXT,
            CONTEXT_JSON,
            PURGE_CONTEXTS,
            PURGE_CONTEXTS_BUT,
            READ_GAPS,
            EXPAND,
            MAX_SEQ,
            READ_STATE,
            SAVE_STATE,
        ] {
            if let Err(e) = conn.prepare_cached(q) {
                return Err(not_ours(e));
            }
        }
        Ok(())
    }

    /// A plain `SQLITE_ERROR` (no such table or column, a table that already exists) from
    /// setting up the schema means the file's tables are not ours: reported as corrupt.
    /// Anything else (full, busy, I/O) is what it is.
    pub fn not_ours(e: rusqlite::Error) -> rusqlite::Error {
        let code = match &e {
            rusqlite::Error::SqliteFailure(f, _) => Some(f.extended_code),
            // What a failed prepare gives (no such table, no such column).
            rusqlite::Error::SqlInputError { error, .. } => Some(error.extended_code),
            _ => None,
        };
        match code {
            Some(code) if code & 0xff == ffi::SQLITE_ERROR => rusqlite::Error::SqliteFailure(
                ffi::Error::new(ffi::SQLITE_CORRUPT),
                Some(format!(
                    "the tables are not those of a Trailhound queue: {e}"
                )),
            ),
            _ => e,
        }
    }

    /// Whether closing the connection leaves the WAL alone instead of checkpointing it
    /// into the database and deleting it.
    pub fn keep_wal_on_close(conn: &Connection, keep: bool) -> rusqlite::Result<()> {
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, keep)?;
        Ok(())
    }

    /// `PRAGMA user_version`. Reading it is the first read of the file, so this is where
    /// a file that is not a database fails (`SQLITE_NOTADB`).
    pub fn user_version(conn: &Connection) -> rusqlite::Result<u32> {
        let v: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        // A negative version is not one of ours: treat it as unknown and newer.
        Ok(u32::try_from(v).unwrap_or(u32::MAX))
    }

    /// Brings a database at `found` (0: empty) to [`VERSION`], in one transaction.
    pub fn init(conn: &mut Connection, found: u32) -> rusqlite::Result<()> {
        if found == VERSION {
            return Ok(());
        }
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        if found == 0 {
            create(&tx)?;
        } else {
            for version in found..VERSION {
                upgrade_from(&tx, version)?;
            }
        }
        tx.pragma_update(None, "user_version", VERSION)?;
        tx.commit()
    }

    /// Creates the current schema in an empty database.
    ///
    /// Column order matters: it must match what the upgrades produce (`ALTER TABLE ADD
    /// COLUMN` appends), so the columns added in versions 2 and 3 come last. No SQL
    /// comments inside the statements: SQLite keeps their text in `sqlite_master`.
    pub fn create(tx: &Transaction<'_>) -> rusqlite::Result<()> {
        tx.execute_batch(
            "
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
            CREATE TABLE state(
                key TEXT PRIMARY KEY,
                value TEXT NOT NULL
            );
            CREATE INDEX events_created_ms ON events(created_ms);
            CREATE TABLE contexts(
                id INTEGER PRIMARY KEY,
                json TEXT NOT NULL
            );
            ",
        )
    }

    /// Upgrades a database from `version` to `version + 1`.
    pub fn upgrade_from(tx: &Transaction<'_>, version: u32) -> rusqlite::Result<()> {
        match version {
            // Version 2: `type` and `name` beside the JSON for per-type and per-name
            // counts, and an index so that the age cap does not scan the queue.
            //
            // The backfill names events exactly as `message::seal` does (the event for a
            // track, the name for a screen or page, the group id for a group, the user id
            // for identify and alias), so that old and new rows agree. Rows whose JSON
            // is unreadable keep NULLs rather than failing the upgrade, which would make
            // the queue unopenable.
            1 => tx.execute_batch(
                "
                ALTER TABLE events ADD COLUMN type TEXT;
                ALTER TABLE events ADD COLUMN name TEXT;
                UPDATE events SET
                    type = json_extract(json, '$.type'),
                    name = CASE json_extract(json, '$.type')
                        WHEN 'track' THEN json_extract(json, '$.event')
                        WHEN 'screen' THEN json_extract(json, '$.name')
                        WHEN 'page' THEN json_extract(json, '$.name')
                        WHEN 'group' THEN json_extract(json, '$.groupId')
                        ELSE json_extract(json, '$.userId')
                    END
                WHERE json_valid(json);
                CREATE INDEX events_created_ms ON events(created_ms);
                ",
            ),
            // Version 3: each context stored once, in `contexts`, and referred to by the
            // events that carry it (their `json` is then the message without it). Rows
            // from before keep their whole JSON and a NULL `context_id`.
            2 => tx.execute_batch(
                "
                ALTER TABLE events ADD COLUMN context_id INTEGER;
                CREATE TABLE contexts(
                    id INTEGER PRIMARY KEY,
                    json TEXT NOT NULL
                );
                ",
            ),
            // Version 4: commits go to the groups file beside the database (see the
            // `groups` module), which a build of version 3 would not read: the number
            // keeps such a build from opening the queue and missing those events.
            3 => Ok(()),
            _ => Err(rusqlite::Error::SqliteFailure(
                ffi::Error::new(ffi::SQLITE_ERROR),
                Some(format!("no upgrade from schema version {version}")),
            )),
        }
    }
}

/// Opens, configures and (read-write) migrates one database file.
fn open_connection(path: &Path, mode: Mode) -> Result<(Connection, u32), OpenError> {
    let sqlite = sqlite_error(path);
    if mode == Mode::Create {
        private::create_file(path).map_err(io_error(path))?;
    }
    let flags = OpenFlags::SQLITE_OPEN_NO_MUTEX
        | match mode {
            Mode::Create => OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
            Mode::ReadWrite => OpenFlags::SQLITE_OPEN_READ_WRITE,
            Mode::ReadOnly => OpenFlags::SQLITE_OPEN_READ_ONLY,
        };
    let mut conn = if mode == Mode::ReadOnly && !companion(path, "-wal").exists() {
        // Without a WAL the file alone is the whole database. Opening it `immutable`
        // keeps SQLite from creating `-wal` and `-shm` beside a file a QA tool was only
        // asked to read. With a WAL, its frames must be read, which needs the `-shm`.
        Connection::open_with_flags(immutable_uri(path), flags | OpenFlags::SQLITE_OPEN_URI)
    } else {
        Connection::open_with_flags(path, flags)
    }
    .map_err(&sqlite)?;
    // Until the file is known to be sound (and ours), closing must not checkpoint: that
    // would fold the WAL into a damaged or newer file and delete it, when the WAL is part
    // of what `move_aside` keeps, or of what a newer version left.
    schema::keep_wal_on_close(&conn, true).map_err(&sqlite)?;
    schema::configure(&conn).map_err(&sqlite)?;
    // Check the version before anything writes to the file, so that a newer database is
    // left exactly as it was.
    let found = schema::user_version(&conn).map_err(&sqlite)?;
    let supported = schema::VERSION;
    if found > supported {
        return Err(OpenError::NewerSchema { found, supported });
    }
    if mode == Mode::ReadOnly {
        if found < supported {
            return Err(OpenError::OlderSchema { found, supported });
        }
    } else {
        schema::configure_writer(&conn).map_err(&sqlite)?;
        schema::init(&mut conn, found)
            .map_err(schema::not_ours)
            .map_err(&sqlite)?;
    }
    schema::check(&conn).map_err(&sqlite)?;
    if mode != Mode::ReadOnly {
        // After the check: a foreign file is moved aside, not rewritten first.
        schema::ensure_file_settings(&conn).map_err(&sqlite)?;
        schema::purge_contexts(&conn, path);
    }
    // Sound: closing checkpoints again, so that a closed database is one self-contained
    // file (QA tools copy just that file).
    schema::keep_wal_on_close(&conn, false).map_err(&sqlite)?;
    Ok((conn, supported))
}

/// `path` with a suffix appended (`trailhound.db` -> `trailhound.db-wal`).
fn companion(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

/// A `file:` URI for `path` with `immutable=1`, escaping what a URI path cannot hold.
fn immutable_uri(path: &Path) -> String {
    let mut uri = String::from("file:");
    for c in path.to_string_lossy().chars() {
        match c {
            '%' => uri.push_str("%25"),
            '?' => uri.push_str("%3f"),
            '#' => uri.push_str("%23"),
            c => uri.push(c),
        }
    }
    uri.push_str("?immutable=1");
    uri
}

/// Takes the single-writer lock of a data directory.
fn lock_dir(dir: &Path) -> Result<Option<File>, OpenError> {
    let path = dir.join(LOCK_FILE);
    private::tighten(&path);
    let file = private::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_error(&path))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(TryLockError::WouldBlock) => Err(OpenError::Locked {
            dir: dir.to_owned(),
        }),
        // A file system without locks must not make the SDK unusable.
        Err(TryLockError::Error(e)) if e.kind() == io::ErrorKind::Unsupported => {
            log::warn!(
                "{}: cannot lock ({e}); opening without the single-writer guard",
                path.display()
            );
            Ok(None)
        }
        Err(TryLockError::Error(e)) => Err(OpenError::Io { path, source: e }),
    }
}

/// Moves a database and its `-wal` and `-shm` files to `<path>.corrupt-<unix ms>`,
/// returning the new path, and deletes older copies. Files that do not exist are skipped.
fn move_aside(path: &Path) -> Result<PathBuf, OpenError> {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let mut aside = with_suffix(path, &format!(".corrupt-{ms}"));
    let mut n = 1;
    while aside.exists() {
        aside = with_suffix(path, &format!(".corrupt-{ms}-{n}"));
        n += 1;
    }
    // The companions keep their suffixes, so that SQLite can open the set as it was.
    for suffix in ["", "-wal", "-shm", GROUPS_SUFFIX] {
        let from = with_suffix(path, suffix);
        match fs::rename(&from, with_suffix(&aside, suffix)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(OpenError::Io {
                    path: from,
                    source: e,
                })
            }
        }
    }
    corrupt_copies::prune(path, corrupt_copies::Keep::Only(&aside));
    Ok(aside)
}

/// The copies [`move_aside`] makes: `<db>.corrupt-<unix ms>[-<n>]`, each with its
/// `-wal` and `-shm` if it had them. They hold tracked events, so they are few and short-lived.
mod corrupt_copies {
    use std::fs;
    use std::path::{Path, PathBuf};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    /// Which copy [`prune`] keeps.
    #[derive(Debug, Clone, Copy)]
    pub enum Keep<'a> {
        /// None (the opt-out purge).
        None,
        /// This one (just made).
        Only(&'a Path),
        /// The newest, unless its name says it is older than this.
        Newest(Duration),
    }

    /// One copy: its time and number from the name, and its files.
    struct Copy {
        key: (u128, u64),
        base: String,
        files: Vec<PathBuf>,
    }

    /// Deletes the copies of corrupt databases of `db` but the one `keep` says, and
    /// makes the kept one private. Failures are logged: they must not keep the store
    /// from working.
    pub fn prune(db: &Path, keep: Keep<'_>) {
        let copies = match list(db) {
            Ok(c) => c,
            Err(e) => {
                log::warn!("listing copies of corrupt queue databases: {e}");
                return;
            }
        };
        let newest = copies.iter().map(|c| c.key).max();
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        for copy in copies {
            let kept = match keep {
                Keep::None => false,
                Keep::Only(path) => path.file_name() == Some(copy.base.as_ref()),
                Keep::Newest(age) => {
                    Some(copy.key) == newest && now_ms.saturating_sub(copy.key.0) <= age.as_millis()
                }
            };
            for file in &copy.files {
                if kept {
                    super::private::tighten(file);
                } else if let Err(e) = fs::remove_file(file) {
                    log::warn!("deleting {}: {e}", file.display());
                }
            }
        }
    }

    fn list(db: &Path) -> std::io::Result<Vec<Copy>> {
        let (Some(dir), Some(name)) = (db.parent(), db.file_name()) else {
            return Ok(Vec::new());
        };
        let prefix = format!("{}.corrupt-", name.to_string_lossy());
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let mut copies: Vec<Copy> = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let file_name = entry.file_name();
            let Some(rest) = file_name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
                continue;
            };
            let stem = rest
                .strip_suffix("-wal")
                .or_else(|| rest.strip_suffix("-shm"))
                .or_else(|| rest.strip_suffix(super::GROUPS_SUFFIX))
                .unwrap_or(rest);
            // `<ms>` or `<ms>-<n>`; a name that does not parse sorts as the oldest.
            let mut parts = stem.splitn(2, '-');
            let ms = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
            let n = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
            let base = format!("{prefix}{stem}");
            let file = entry.path();
            match copies.iter_mut().find(|c| c.base == base) {
                Some(c) => c.files.push(file),
                None => copies.push(Copy {
                    key: (ms, n),
                    base,
                    files: vec![file],
                }),
            }
        }
        Ok(copies)
    }
}

/// Files and directories private to the app's user (Unix permissions; elsewhere the
/// platform's defaults, an app's sandbox, apply). SQLite creates the `-wal` and `-shm`
/// files with the database file's permissions, so the database is created here first.
mod private {
    use std::fs::{self, OpenOptions};
    use std::io;
    use std::path::Path;

    /// Creates `dir` (and missing parents) `0700`. An existing directory is left as it
    /// is: it may be the app's, shared with more than the queue.
    pub fn create_dir(dir: &Path) -> io::Result<()> {
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir)
    }

    /// Options that create a file `0600`.
    pub fn options() -> OpenOptions {
        let mut options = OpenOptions::new();
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        options
    }

    /// Creates `path` empty and `0600` if it is missing (an empty file is an empty
    /// SQLite database), or tightens it.
    pub fn create_file(path: &Path) -> io::Result<()> {
        tighten(path);
        options()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map(drop)
    }

    /// Removes group and other permissions from an existing file; a missing one is fine.
    /// A failure is logged, not returned: on a file system without Unix permissions
    /// (a FAT card) `chmod` fails, and that must not keep the queue from opening.
    pub fn tighten(path: &Path) {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let Ok(meta) = fs::symlink_metadata(path) else {
                return;
            };
            let mode = meta.permissions().mode();
            if meta.is_file() && mode & 0o077 != 0 {
                if let Err(e) = fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o700))
                {
                    log::warn!("making {} private: {e}", path.display());
                }
            }
        }
        #[cfg(not(unix))]
        let _ = path;
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn io_error(path: &Path) -> impl Fn(io::Error) -> OpenError + '_ {
    move |source| OpenError::Io {
        path: path.to_owned(),
        source,
    }
}

fn sqlite_error(path: &Path) -> impl Fn(rusqlite::Error) -> OpenError + '_ {
    move |source| OpenError::Sqlite {
        path: path.to_owned(),
        source,
    }
}

fn is_corrupt(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase)
    )
}

fn is_duplicate_key(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
}

/// A failed operation, before it is mapped to a [`StoreFailure`].
#[derive(Debug, thiserror::Error)]
enum Error {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("state is not serialisable: {0}")]
    Json(#[from] serde_json::Error),
    #[error("seq {0} does not fit in SQLite's integers")]
    SeqRange(u64),
    #[error("the commit groups file: {0}")]
    Groups(#[from] io::Error),
}

/// Maps a failure to the kind the engine acts on: the one place that decides it.
///
/// | SQLite result                     | kind                    |
/// |-----------------------------------|-------------------------|
/// | `SQLITE_FULL`                     | [`FailureKind::Full`]    |
/// | `SQLITE_BUSY`, `SQLITE_LOCKED`    | [`FailureKind::Busy`]    |
/// | `SQLITE_CORRUPT`, `SQLITE_NOTADB` | [`FailureKind::Corrupt`] |
/// | anything else, and non-SQLite     | [`FailureKind::Other`]   |
fn failure(op: &'static str) -> impl FnOnce(Error) -> StoreFailure {
    move |err| {
        let kind = match &err {
            Error::Sqlite(e) => match e.sqlite_error_code() {
                Some(ErrorCode::DiskFull) => FailureKind::Full,
                Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => FailureKind::Busy,
                Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => FailureKind::Corrupt,
                _ => FailureKind::Other,
            },
            Error::Json(_) | Error::SeqRange(_) => FailureKind::Other,
            // ENOSPC, and a quota (EDQUOT) as SQLite maps it too.
            Error::Groups(e) if matches!(e.raw_os_error(), Some(28 | 122)) => FailureKind::Full,
            Error::Groups(e) if e.kind() == io::ErrorKind::InvalidData => FailureKind::Corrupt,
            Error::Groups(_) => FailureKind::Other,
        };
        StoreFailure {
            kind,
            op,
            message: err.to_string(),
        }
    }
}

fn sql_seq(seq: u64) -> Result<i64, Error> {
    i64::try_from(seq).map_err(|_| Error::SeqRange(seq))
}

/// Runs a `DELETE … RETURNING bytes` and adds up what it removed.
fn removed_by(mut stmt: CachedStatement<'_>, params: impl Params) -> rusqlite::Result<Removed> {
    removed_by_stmt(&mut stmt, params)
}

/// [`removed_by`] for a statement run more than once.
fn removed_by_stmt(stmt: &mut Statement<'_>, params: impl Params) -> rusqlite::Result<Removed> {
    let mut removed = Removed::default();
    let mut rows = stmt.query(params)?;
    while let Some(row) = rows.next()? {
        let one = Removed {
            events: 1,
            bytes: get_u64(row, 0)?,
        };
        removed = plus(removed, one);
    }
    Ok(removed)
}

/// `a + b`, saturating: the bytes come from the file, which may hold anything.
fn plus(a: Removed, b: Removed) -> Removed {
    Removed {
        events: a.events.saturating_add(b.events),
        bytes: a.bytes.saturating_add(b.bytes),
    }
}

/// Gives every free page back to the file system: the live pages at the end of the file
/// move into the free ones, and the file is cut (at the next checkpoint, in WAL mode).
fn release_all_free_pages(conn: &Connection) -> rusqlite::Result<()> {
    // Each step of the statement frees one page, so it is stepped to the end.
    let mut stmt = conn.prepare_cached("PRAGMA incremental_vacuum")?;
    let mut rows = stmt.query([])?;
    while rows.next()?.is_some() {}
    Ok(())
}

/// Starts a write transaction; see [`SqliteStore::write`].
fn write(conn: &mut Connection) -> rusqlite::Result<rusqlite::Transaction<'_>> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
}

/// Once the queue is empty (`oldest` is `None`), deletes the rows of `contexts` but the
/// last one written: no event refers to them, and a context is personal data. The last
/// stays because new events most likely carry it: deleting it would write its row again
/// with the next event, and on an unconstrained link the queue empties after every
/// upload. Returns whether any row was deleted (the cache must then forget them).
fn purge_contexts_if_empty(
    tx: &Connection,
    oldest: Option<i64>,
    contexts: &Contexts,
) -> rusqlite::Result<bool> {
    if oldest.is_some() {
        return Ok(false);
    }
    let keep = contexts.last.as_ref().map(|(_, id)| *id);
    Ok(tx
        .prepare_cached(sql::PURGE_CONTEXTS_BUT)?
        .execute([keep])?
        > 0)
}

/// Events and bytes queued after the delivered prefix, and the largest seq ever used:
/// the last queued or, when none is, the watermark, so that seqs never go back.
fn read_totals(conn: &Connection, through: i64) -> rusqlite::Result<(Totals, u64)> {
    let (totals, max) = conn
        .prepare_cached(sql::TOTALS)?
        .query_row([through], |r| {
            Ok((
                Totals {
                    events: get_u64(r, 0)?,
                    bytes: bytes_total(r, 1)?,
                },
                get_u64(r, 2)?,
            ))
        })?;
    Ok((totals, max.max(u64::try_from(through).unwrap_or(0))))
}

/// The smallest `created_ms` of the queued events: the first queued event's, when
/// `ages` says the queue was created in order (one descent of the primary key), else
/// the first entry of the `created_ms` index after those of delivered rows.
fn oldest_ms(
    conn: &Connection,
    through: i64,
    ages: Option<&Ages>,
) -> rusqlite::Result<Option<i64>> {
    if let Some(ages) = ages {
        let first = conn
            .prepare_cached(sql::FIRST_QUEUED)?
            .query_row([through], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
            })
            .optional()?;
        match first {
            None => return Ok(None),
            Some((seq, created)) if seq >= ages.sorted_from => return Ok(Some(created)),
            Some(_) => {}
        }
    }
    conn.prepare_cached(sql::OLDEST)?
        .query_row([through], |r| r.get::<_, i64>(0))
        .optional()
}

/// The delivered prefix as the file has it: the watermark, and how many rows are left
/// at or below it (a walk of them: at most [`DELIVERED_ROWS_MAX`]).
fn read_delivered(conn: &Connection) -> rusqlite::Result<Delivered> {
    let through = conn
        .prepare_cached(sql::DELIVERED_THROUGH)?
        .query_row([], |r| r.get::<_, i64>(0))
        .optional()?
        // Only damage or an edit gives less: nothing is delivered then.
        .map_or(-1, |t| t.max(-1));
    let rows = conn
        .prepare_cached(sql::COUNT_UP_TO)?
        .query_row([through], |r| get_u64(r, 0))?;
    Ok(Delivered { through, rows })
}

/// Moves the watermark, in the caller's transaction.
fn save_delivered(tx: &Connection, through: i64) -> rusqlite::Result<()> {
    tx.prepare_cached(sql::SAVE_STATE)?
        .execute(params![state::DELIVERED_THROUGH, through.to_string()])?;
    Ok(())
}

/// Deletes the delivered rows for real when no event is queued behind them (`oldest` is
/// `None`: the whole table goes, the cheap way), when more than [`DELIVERED_ROWS_MAX`]
/// are left, or while an opt-out purge waits for the events it spared (`wiping`: they
/// are to leave the file, not to stay as delivered rows).
fn remove_delivered_rows(
    tx: &Connection,
    delivered: &mut Delivered,
    oldest: Option<i64>,
    max: u64,
    wiping: bool,
) -> rusqlite::Result<()> {
    if delivered.rows == 0 {
        return Ok(());
    }
    if oldest.is_none() {
        tx.prepare_cached(sql::DELETE_ALL)?.execute([])?;
    } else if delivered.rows > max || wiping {
        tx.prepare_cached(sql::DELETE_DELIVERED)?
            .execute([delivered.through])?;
    } else {
        return Ok(());
    }
    delivered.rows = 0;
    Ok(())
}

/// A total of `bytes` (a `total()`, a float, so that sizes from a damaged file cannot
/// make SQLite's integer `sum()` fail): exact up to 2^53, saturating beyond.
fn bytes_total(row: &Row<'_>, idx: usize) -> rusqlite::Result<u64> {
    let total: f64 = row.get(idx)?;
    // `as` saturates: negative sizes (damage) count as none.
    Ok(total as u64)
}

/// Reassembles the state; `None` until an anonymous id has been saved.
///
/// A piece that does not parse (edited by hand, say) is logged and replaced by its
/// default rather than failing: a failing snapshot would keep the SDK from starting.
fn read_state(conn: &Connection) -> rusqlite::Result<Option<PersistedState>> {
    let mut stmt = conn.prepare_cached(sql::READ_STATE)?;
    let mut pieces = HashMap::new();
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        // Not text (a file edited by hand, or damaged): unreadable, like bad JSON.
        if let (Ok(key), Ok(value)) = (r.get_ref(0)?.as_str(), r.get_ref(1)?.as_str()) {
            pieces.insert(key.to_owned(), value.to_owned());
        }
    }
    fn piece<T: DeserializeOwned>(pieces: &HashMap<String, String>, key: &str) -> Option<T> {
        let raw = pieces.get(key)?;
        serde_json::from_str(raw)
            .inspect_err(|e| log::warn!("state {key} is unreadable ({e}); using the default"))
            .ok()
    }
    let Some(anonymous_id) = piece::<String>(&pieces, state::ANONYMOUS_ID) else {
        return Ok(None);
    };
    Ok(Some(PersistedState {
        identity: Identity {
            anonymous_id,
            user_id: piece::<Option<String>>(&pieces, state::USER_ID).flatten(),
            traits: piece(&pieces, state::TRAITS).unwrap_or_default(),
        },
        opted_out: piece(&pieces, state::OPTED_OUT).unwrap_or_default(),
        endpoints: PersistedState::endpoints_or_legacy(
            piece(&pieces, state::ENDPOINTS).unwrap_or_default(),
            piece::<RetryState>(&pieces, state::LEGACY_RETRY),
        ),
    }))
}

/// Reads a non-negative integer (rusqlite reads `u64` only with its `fallible_uint` feature).
fn get_u64(row: &Row<'_>, idx: usize) -> rusqlite::Result<u64> {
    let v: i64 = row.get(idx)?;
    u64::try_from(v).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(idx, v))
}

/// A row of `seq, message_id, type, name, created_ms, json, context_id`, its context from
/// `contexts` (read from the table only the first time).
fn event_from_row(
    conn: &Connection,
    contexts: &mut Contexts,
    row: &Row<'_>,
) -> rusqlite::Result<QueuedEvent> {
    // A `context_id` that is no integer (damage) counts as none, like a missing row.
    let context_id = row.get_ref(6)?.as_i64().ok();
    queued_event(
        conn,
        contexts,
        groups::Encoded {
            seq: row.get(0)?,
            created_ms: row.get(4)?,
            context_id,
            message_id: row.get(1)?,
            kind: row.get::<_, Option<String>>(2)?.unwrap_or_default(),
            name: row.get(3)?,
            body: row.get(5)?,
        },
    )
}

/// Calls `f` with each queued event of the commit groups after `through`, in seq order
/// and with the index of its group, until it returns `false`: the writer's reads, from the
/// records `pending` points at (each read once, though pieces of it may be several groups).
fn read_pieces(
    file: &mut groups::GroupsFile,
    pending: &Pending,
    through: i64,
    mut f: impl FnMut(usize, groups::Encoded) -> Result<bool, Error>,
) -> Result<(), Error> {
    // Pieces of one record (an eviction cut it) follow each other: it is read once.
    let mut cached: Option<(groups::Location, Vec<u8>)> = None;
    for (index, (at, from, to)) in pending.pieces_after(through).enumerate() {
        if cached.as_ref().is_none_or(|(loc, _)| *loc != at) {
            cached = Some((at, file.read(at)?));
        }
        let (_, blob) = cached.as_ref().expect("just read");
        let events = groups::decode_where(blob, |seq| (from..=to).contains(&seq))
            .map_err(|e| damaged_groups(&e.to_string()))?;
        for e in events {
            if !f(index, e)? {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Calls `f` with each queued event of the groups file of the database at `db`, in seq
/// order, until it returns `false`: the QA readers' path, which reads the file as it is
/// (read-only; a damaged tail is left out, not cut off) and skips what the writer would:
/// seqs at or below the watermark and the largest row's, and those in the saved gaps.
fn for_each_grouped(
    conn: &Connection,
    db: &Path,
    mut f: impl FnMut(groups::Encoded) -> Result<bool, Error>,
) -> Result<(), Error> {
    let through = read_delivered(conn)?.through;
    let max_row = max_row_seq(conn)?;
    let gaps = read_gaps(conn)?;
    let skip = |seq: i64| {
        seq <= through || seq <= max_row || gaps.iter().any(|&(a, b)| (a..=b).contains(&seq))
    };
    let mut result = Ok(());
    let mut done = false;
    groups::read_records(&companion(db, GROUPS_SUFFIX), |_, blob| {
        if done {
            return Ok(());
        }
        let events = match groups::decode(blob) {
            Ok(events) => events,
            Err(e) => {
                result = Err(damaged_groups(&e.to_string()));
                done = true;
                return Ok(());
            }
        };
        for e in events.into_iter().filter(|e| !skip(e.seq)) {
            match f(e) {
                Ok(true) => {}
                Ok(false) => {
                    done = true;
                    break;
                }
                Err(e) => {
                    result = Err(e);
                    done = true;
                    break;
                }
            }
        }
        Ok(())
    })?;
    result
}

/// Adds `gap` to `gaps`, merging ranges that touch, and leaves out those at or below the
/// watermark `through` (readers skip them anyway), so that the list stays short.
fn add_gap(gaps: &mut Vec<(i64, i64)>, gap: (i64, i64), through: i64) {
    gaps.push(gap);
    gaps.retain(|&(_, to)| to > through);
    gaps.sort_unstable();
    let mut merged: Vec<(i64, i64)> = Vec::with_capacity(gaps.len());
    for &(from, to) in gaps.iter() {
        match merged.last_mut() {
            Some(last) if from <= last.1.saturating_add(1) => last.1 = last.1.max(to),
            _ => merged.push((from, to)),
        }
    }
    *gaps = merged;
}

/// The largest seq of a row, delivered or not; -1 without rows.
fn max_row_seq(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached(sql::MAX_SEQ)?
        .query_row([], |r| r.get(0))
}

/// The largest seq in `gaps`.
fn gaps_end(gaps: &[(i64, i64)]) -> Option<i64> {
    gaps.iter().map(|g| g.1).max()
}

/// The saved gaps of the groups file (see `SqliteStore::gaps`); none when unreadable
/// (damage: the events in them are then sent again rather than lost).
fn read_gaps(conn: &Connection) -> rusqlite::Result<Vec<(i64, i64)>> {
    let raw: Option<String> = conn
        .prepare_cached(sql::READ_GAPS)?
        .query_row([], |r| r.get(0))
        .optional()?;
    Ok(raw
        .and_then(|raw| {
            serde_json::from_str(&raw)
                .inspect_err(|e| log::warn!("unreadable group gaps ({e}); ignoring them"))
                .ok()
        })
        .unwrap_or_default())
}

/// Saves the gaps, in the caller's transaction (none: the row goes).
fn save_gaps(conn: &Connection, gaps: &[(i64, i64)]) -> rusqlite::Result<()> {
    if gaps.is_empty() {
        conn.prepare_cached(sql::DELETE_STATE)?
            .execute([state::GROUP_GAPS])?;
    } else {
        let json = serde_json::to_string(gaps).expect("integers serialise");
        conn.prepare_cached(sql::SAVE_STATE)?
            .execute(params![state::GROUP_GAPS, json])?;
    }
    Ok(())
}

/// Damage to the groups file (a record that is not what the store wrote).
fn damaged_groups(what: &str) -> Error {
    Error::Groups(io::Error::new(io::ErrorKind::InvalidData, what.to_owned()))
}

/// The smallest `created_ms` of the queued events, rows and groups.
fn oldest_queued(
    conn: &Connection,
    through: i64,
    ages: &Ages,
    pending: &Pending,
) -> rusqlite::Result<Option<i64>> {
    let rows = oldest_ms(conn, through, Some(ages))?;
    let grouped = match pending.first_queued_after(through) {
        None => None,
        // Created in order from there on: the first is the oldest.
        Some((seq, created)) if seq >= ages.sorted_from => Some(created),
        Some(_) => pending.oldest_after(through),
    };
    Ok(match (rows, grouped) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    })
}

/// An event read back, its context from `contexts` (read from the table only the first
/// time).
fn queued_event(
    conn: &Connection,
    contexts: &mut Contexts,
    e: groups::Encoded,
) -> rusqlite::Result<QueuedEvent> {
    let seq =
        u64::try_from(e.seq).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(0, e.seq))?;
    let kind = MessageType::parse(&e.kind).unwrap_or_else(|| {
        // Only a version 1 row with unreadable JSON has no type. The JSON is sent as it
        // is; the type is only a label here, and refusing the row would wedge the queue.
        log::warn!(
            "queued event {seq} has no known type ({:?}); labelling it track",
            e.kind
        );
        MessageType::Track
    });
    let body = e.body;
    let json = match e.context_id {
        None => EventJson::full(body),
        Some(id) => match contexts.get(conn, id)? {
            Some(context) => EventJson::with_context(body, context),
            None => {
                // Only damage to the file: the event goes without its context rather than
                // wedging the queue.
                log::warn!("queued event {seq} refers to a missing or unreadable context {id}");
                EventJson::full(body)
            }
        },
    };
    Ok(QueuedEvent {
        seq,
        message_id: e.message_id,
        kind,
        name: e.name,
        created_ms: e.created_ms,
        json,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::thread;
    use std::time::Instant;

    use serde_json::json;
    use trailhound_core::breaker::{EndpointState, OpenReason};
    use trailhound_core::message::{seal, stamp, Call, Properties};
    use trailhound_core::store::conformance::{self, event};
    use trailhound_core::Policy;

    use super::*;

    /// A store that writes rows, as the groups become (see `grouped` for one that
    /// writes commit groups).
    fn open(dir: &Path) -> SqliteStore {
        let mut store = grouped(dir);
        store.set_grouping(false);
        store
    }

    /// A store as the runtime opens it: commits go as groups.
    fn grouped(dir: &Path) -> SqliteStore {
        let opened = SqliteStore::open(dir).unwrap();
        assert_eq!(opened.recovered, None);
        opened.store
    }

    /// A grouped store holding `evs` (more than 256) as two commits: the first 256, then
    /// the rest.
    fn in_two_groups(dir: &Path, evs: &[QueuedEvent]) -> SqliteStore {
        let mut store = grouped(dir);
        store.insert(&evs[..256]).unwrap();
        store.insert(&evs[256..]).unwrap();
        store
    }

    fn events(seqs: std::ops::RangeInclusive<u64>, size: usize) -> Vec<QueuedEvent> {
        seqs.map(|i| event(i, 1000 * i as i64, size)).collect()
    }

    fn state() -> PersistedState {
        let mut identity = Identity::new(uuid::Uuid::from_u128(42));
        identity.user_id = Some("u1".into());
        identity.traits.insert("plan".into(), json!("pro"));
        PersistedState {
            identity,
            opted_out: false,
            endpoints: vec![EndpointState {
                url: "https://a.example".into(),
                retry: RetryState {
                    attempts: 2,
                    next_attempt_ms: Some(5_000),
                    ..RetryState::default()
                },
                reason: Some(OpenReason::Network),
            }],
        }
    }

    fn files_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    /// `sqlite_master` rows, `user_version`, and the pragmas stored in the file.
    type Schema = (Vec<(String, String, Option<String>)>, u32, Vec<String>);

    /// The schema as `sqlite_master` has it, whitespace normalised, plus `user_version`
    /// and the pragmas stored in the file.
    fn schema_of(conn: &Connection) -> Schema {
        fn normalise(sql: &str) -> String {
            let words = sql.split_whitespace().collect::<Vec<_>>().join(" ");
            words
                .replace(" (", "(")
                .replace("( ", "(")
                .replace(" )", ")")
                .replace(" ,", ",")
                .replace(", ", ",")
        }
        let mut stmt = conn
            .prepare("SELECT type, name, sql FROM sqlite_master ORDER BY type, name")
            .unwrap();
        let rows = stmt
            .query_map([], |r| {
                let sql: Option<String> = r.get(2)?;
                Ok((r.get(0)?, r.get(1)?, sql.as_deref().map(normalise)))
            })
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let pragmas = ["auto_vacuum", "page_size", "journal_mode", "encoding"]
            .iter()
            .map(|p| {
                let v = conn
                    .pragma_query_value(None, p, |r| r.get::<_, rusqlite::types::Value>(0))
                    .unwrap();
                format!("{p} = {v:?}")
            })
            .collect();
        (rows, schema::user_version(conn).unwrap(), pragmas)
    }

    /// Version 1 of the schema, exactly as it shipped.
    fn create_v1(path: &Path) -> Connection {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch(
            "
            PRAGMA journal_mode = WAL;
            CREATE TABLE events(
                seq INTEGER PRIMARY KEY,
                message_id TEXT NOT NULL,
                created_ms INTEGER NOT NULL,
                bytes INTEGER NOT NULL,
                json TEXT NOT NULL
            );
            CREATE TABLE state(
                key TEXT PRIMARY KEY,
                value TEXT NOT NULL
            );
            PRAGMA user_version = 1;
            ",
        )
        .unwrap();
        conn
    }

    /// Version 2 as it shipped before `auto_vacuum`: the current tables, no auto_vacuum.
    fn create_v2_without_auto_vacuum(path: &Path) -> Connection {
        let conn = create_v1(path);
        conn.execute_batch(
            "
            ALTER TABLE events ADD COLUMN type TEXT;
            ALTER TABLE events ADD COLUMN name TEXT;
            CREATE INDEX events_created_ms ON events(created_ms);
            PRAGMA user_version = 2;
            ",
        )
        .unwrap();
        conn
    }

    /// Version 2 as it shipped last, with incremental auto_vacuum: exactly what this
    /// module created before version 3.
    fn create_v2(path: &Path) -> Connection {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch(
            "
            PRAGMA auto_vacuum = INCREMENTAL;
            PRAGMA journal_mode = WAL;
            CREATE TABLE events(
                seq INTEGER PRIMARY KEY,
                message_id TEXT NOT NULL,
                created_ms INTEGER NOT NULL,
                bytes INTEGER NOT NULL,
                json TEXT NOT NULL,
                type TEXT,
                name TEXT
            );
            CREATE TABLE state(
                key TEXT PRIMARY KEY,
                value TEXT NOT NULL
            );
            CREATE INDEX events_created_ms ON events(created_ms);
            PRAGMA user_version = 2;
            ",
        )
        .unwrap();
        conn
    }

    /// Every schema version before the current one, as a creator of a filled database.
    type CreateOld = fn(&Path) -> Connection;
    const OLD_VERSIONS: [(u32, CreateOld); 3] = [
        (1, create_v1),
        (2, create_v2_without_auto_vacuum),
        (2, create_v2),
    ];

    /// Whether opening `conn`'s file converts it to auto_vacuum with a `VACUUM`.
    fn converted(conn: &Connection) -> bool {
        schema::auto_vacuum(conn).unwrap() != 2 || schema::page_size(conn).unwrap() != PAGE_SIZE
    }

    /// One sealed event of each kind, named exactly as `seal` names them.
    fn sealed_events() -> Vec<QueuedEvent> {
        let policy = Policy::default();
        let mut identity = Identity::new(uuid::Uuid::from_u128(7));
        identity.user_id = Some("u0".into());
        let ctx = trailhound_core::message::Context::new(Properties::new());
        let calls = [
            Call::Track {
                event: "Song Played".into(),
                properties: Properties::new(),
            },
            Call::Identify {
                user_id: Some("u1".into()),
                traits: Properties::new(),
            },
            Call::Screen {
                name: "Player".into(),
                properties: Properties::new(),
            },
            // No name: `seal` gives none, although the JSON has a userId.
            Call::Page {
                name: String::new(),
                properties: Properties::new(),
            },
            Call::Group {
                group_id: "g1".into(),
                traits: Properties::new(),
            },
            Call::Alias {
                user_id: "u2".into(),
            },
        ];
        calls
            .into_iter()
            .enumerate()
            .map(|(i, call)| {
                let ms = 1_700_000_000_000 + i as i64;
                let msg = stamp(call, &identity, &ctx, format!("m{i}"), ms, &policy).unwrap();
                let mut ev = seal(msg, ms, &policy).unwrap();
                ev.seq = i as u64 + 1;
                ev
            })
            .collect()
    }

    /// Records in the groups file (delivered ones included, until it is emptied or
    /// rewritten) and rows of `events`.
    fn group_and_event_rows(store: &SqliteStore) -> (i64, i64) {
        let mut records = 0;
        groups::read_records(&companion(&store.path, GROUPS_SUFFIX), |_, _| {
            records += 1;
            Ok(())
        })
        .unwrap();
        (records, value_of(store, "SELECT count(*) FROM events"))
    }

    /// A commit goes as one record of the groups file; loads read it back as the events inserted,
    /// across groups and limits, and after reopening (a crash leaves groups behind).
    #[test]
    fn commits_go_as_groups_and_load_back() {
        let dir = tempfile::tempdir().unwrap();
        let evs = typical(600);
        {
            let mut store = grouped(dir.path());
            for chunk in evs.chunks(256) {
                store.insert(chunk).unwrap();
            }
            assert_eq!(group_and_event_rows(&store), (3, 0));
            assert_eq!(store.load(1000, usize::MAX).unwrap(), evs);
            assert_eq!(store.load(300, usize::MAX).unwrap(), evs[..300]);
            let one = evs[0].bytes() as usize;
            assert_eq!(store.load(1000, one * 3).unwrap(), evs[..3]);
        }
        let mut store = grouped(dir.path());
        let snap = store.snapshot().unwrap();
        assert_eq!(snap.events, 600);
        assert_eq!(snap.max_seq, 600);
        assert_eq!(
            snap.bytes,
            evs.iter().map(QueuedEvent::stored_bytes).sum::<u64>()
        );
        assert_eq!(snap.oldest_ms, Some(evs[0].created_ms));
        assert_eq!(store.load(1000, usize::MAX).unwrap(), evs);
        // The next commit follows as a group of its own.
        let more: Vec<_> = typical(610)[600..].to_vec();
        store.insert(&more).unwrap();
        assert_eq!(group_and_event_rows(&store), (4, 0));
    }

    /// The idle runtime rewrites the groups file once its queued events are a quarter of
    /// it, but not while they are being delivered (the file is emptied at the end anyway)
    /// unless the copy is small; what is queued reads back the same.
    #[test]
    fn a_queue_being_delivered_is_rewritten_later() {
        let small = GROUPS_REWRITE_SMALL / 4_100;
        let rewrite_large = 8 << 20;
        let large = rewrite_large / 4_000 + 1_000;
        for (total, delivered, rewritten_at_once) in [
            (1_600, 1_280, false),
            (1_600, 1_600 - small, true),
            (large, large - 600, true),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let mut store = grouped(dir.path());
            store.rewrite_large = rewrite_large;
            let path = companion(&store.path, GROUPS_SUFFIX);
            let len = || fs::metadata(&path).unwrap().len();
            let evs = events(1..=total, 4_000);
            for chunk in evs.chunks(256) {
                store.insert(chunk).unwrap();
            }
            let full = len();
            assert!(full >= GROUPS_REWRITE_BYTES);
            store.delete(&(1..=delivered).collect::<Vec<_>>()).unwrap();
            store.idle();
            let queued = &evs[delivered as usize..];
            assert_eq!(len() < full, rewritten_at_once, "{delivered} delivered");
            if !rewritten_at_once {
                // Deliveries stopped a while ago.
                store.delivered_at = Some(std::time::Instant::now() - GROUPS_REWRITE_QUIET);
                store.idle();
                assert!(len() < full);
            }
            let queued_bytes: u64 = queued.iter().map(QueuedEvent::stored_bytes).sum();
            assert!(len() < queued_bytes * 2, "{} for {queued_bytes}", len());
            assert_eq!(store.load(10_000, usize::MAX).unwrap(), queued);
            drop(store);
            assert_eq!(
                grouped(dir.path()).load(10_000, usize::MAX).unwrap(),
                queued
            );
        }
    }

    /// A delivered prefix moves the watermark and deletes the groups it covers whole; a
    /// group it covers in part stays, its delivered events never read again, also after
    /// reopening; seqs never go back.
    #[test]
    fn delivered_prefix_of_groups_moves_the_watermark() {
        let dir = tempfile::tempdir().unwrap();
        let evs = typical(600);
        let seqs = |r: std::ops::RangeInclusive<u64>| r.collect::<Vec<_>>();
        {
            let mut store = grouped(dir.path());
            for chunk in evs.chunks(256) {
                store.insert(chunk).unwrap();
            }
            let (removed, oldest) = store.delete(&seqs(1..=300)).unwrap();
            let bytes: u64 = evs[..300].iter().map(QueuedEvent::stored_bytes).sum();
            assert_eq!(removed, Removed { events: 300, bytes });
            assert_eq!(oldest, Some(evs[300].created_ms));
            assert_eq!(
                group_and_event_rows(&store),
                (3, 0),
                "records stay until emptied"
            );
            assert_eq!(store.load(1000, usize::MAX).unwrap(), evs[300..]);
        }
        let mut store = grouped(dir.path());
        let snap = store.snapshot().unwrap();
        assert_eq!((snap.events, snap.max_seq), (300, 600));
        assert_eq!(store.load(1000, usize::MAX).unwrap(), evs[300..]);
        let (removed, oldest) = store.delete(&seqs(301..=600)).unwrap();
        assert_eq!((removed.events, oldest), (300, None));
        assert_eq!(
            group_and_event_rows(&store),
            (0, 0),
            "emptied once all delivered"
        );
        drop(store);
        let mut store = grouped(dir.path());
        let snap = store.snapshot().unwrap();
        assert_eq!((snap.events, snap.max_seq, snap.oldest_ms), (0, 600, None));
    }

    /// Anything but a delivered prefix (a batch in the middle, seqs not all queued) turns
    /// the groups into rows first and then deletes as rows do.
    #[test]
    fn middle_delete_expands_groups_into_rows() {
        let dir = tempfile::tempdir().unwrap();
        let evs = typical(300);
        let mut store = in_two_groups(dir.path(), &evs);
        let (removed, oldest) = store.delete(&[10, 11, 12]).unwrap();
        assert_eq!(removed.events, 3);
        assert_eq!(oldest, Some(evs[0].created_ms));
        assert_eq!(group_and_event_rows(&store), (0, 297));
        let mut want = evs.clone();
        want.drain(9..12);
        assert_eq!(store.load(1000, usize::MAX).unwrap(), want);
        // Rows queued: the next commit still goes as a group, after them.
        let more: Vec<_> = typical(310)[300..].to_vec();
        store.insert(&more).unwrap();
        assert_eq!(group_and_event_rows(&store), (1, 297));
        want.extend(more);
        assert_eq!(store.load(1000, usize::MAX).unwrap(), want);
        // A prefix with rows queued is deleted as rows (the groups expanded first).
        let (removed, _) = store.delete(&(1..=9).collect::<Vec<_>>()).unwrap();
        assert_eq!(removed.events, 9);
        assert_eq!(store.load(1000, usize::MAX).unwrap(), want[9..]);
    }

    /// Evictions by count and bytes take the oldest events after the spared ones, cutting
    /// through groups without expanding them; an eviction by age of events created out of
    /// order falls back to rows. The counts and totals match the row path's.
    #[test]
    fn evictions_cut_groups() {
        let evs = typical(600);
        let each = evs[0].stored_bytes();
        for spare in [0u64, 100, 300] {
            let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
            let mut stores = [open(dirs[0].path()), grouped(dirs[1].path())];
            let mut results = Vec::new();
            for store in &mut stores {
                for chunk in evs.chunks(256) {
                    store.insert(chunk).unwrap();
                }
                let count = store.evict(500, u64::MAX, 0, spare).unwrap();
                let bytes = store.evict(u64::MAX, 400 * each, 0, spare).unwrap();
                let age = store
                    .evict(u64::MAX, u64::MAX, evs[450].created_ms, spare)
                    .unwrap();
                let left = store.load(1000, usize::MAX).unwrap();
                let snap = store.snapshot().unwrap();
                results.push((count, bytes, age, left, snap.events, snap.bytes));
            }
            assert_eq!(results[0], results[1], "spare {spare}");
            let (count, bytes, _, left, _, _) = &results[1];
            assert_eq!(count.0.count.events, 100, "spare {spare}");
            assert_eq!(bytes.0.bytes.events, 100, "spare {spare}");
            assert_eq!(
                left.len(),
                400usize.min(600 - 450 + spare as usize).max(150)
            );
            assert_eq!(
                group_and_event_rows(&stores[1]).1,
                0,
                "no rows: spare {spare}"
            );
        }
        // Created out of order: the age step cannot take a prefix; rows do it.
        let dir = tempfile::tempdir().unwrap();
        let mut store = grouped(dir.path());
        let mut evs = typical(10);
        evs[5].created_ms = 0;
        store.insert(&evs).unwrap();
        let (evicted, _) = store.evict(u64::MAX, u64::MAX, 1, 0).unwrap();
        assert_eq!(evicted.age.events, 1);
        assert_eq!(group_and_event_rows(&store), (0, 9));
    }

    /// Evicted seqs stay used: after the newest events were evicted and the store
    /// reopened, the largest seq is still theirs, so the engine's next events are not taken
    /// for evicted ones (readers skip the gaps' seqs) and are read back.
    #[test]
    fn evicted_seqs_are_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        let evs = typical(120);
        {
            let mut store = grouped(dir.path());
            store.insert(&evs[..100]).unwrap();
            let (evicted, oldest) = store.evict(0, u64::MAX, 0, 0).unwrap();
            assert_eq!((evicted.count.events, oldest), (100, None));
        }
        let mut store = grouped(dir.path());
        let snap = store.snapshot().unwrap();
        assert_eq!((snap.events, snap.max_seq), (0, 100));
        store.insert(&evs[100..]).unwrap();
        assert_eq!(store.load(100, usize::MAX).unwrap(), evs[100..]);
        drop(store);
        let mut store = grouped(dir.path());
        assert_eq!(store.load(100, usize::MAX).unwrap(), evs[100..]);
    }

    /// Past `GROUPS_MAX_EVENTS` queued in groups, the idle runtime turns them into rows,
    /// so that the store's memory per grouped event stays bounded; the events are the same.
    #[test]
    fn idle_turns_many_groups_into_rows() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = grouped(dir.path());
        let n = GROUPS_MAX_EVENTS + 1;
        let evs: Vec<QueuedEvent> = (1..=n).map(|i| event(i, i as i64, 60)).collect();
        for chunk in evs.chunks(4096) {
            store.insert(chunk).unwrap();
        }
        store.idle();
        assert_eq!(group_and_event_rows(&store), (0, n as i64));
        assert!(store.pending.is_empty());
        let loaded = store.load(10, usize::MAX).unwrap();
        assert_eq!(loaded, evs[..10]);
        // One fewer and nothing happens.
        let dir = tempfile::tempdir().unwrap();
        let mut store = grouped(dir.path());
        for chunk in evs[..GROUPS_MAX_EVENTS as usize].chunks(4096) {
            store.insert(chunk).unwrap();
        }
        store.idle();
        assert_eq!(group_and_event_rows(&store).1, 0);
    }

    /// A read-only snapshot of a queue whose groups have a gap (an eviction behind the
    /// events being uploaded) counts what is queued and gives the largest seq used.
    #[test]
    fn read_only_snapshot_counts_groups_with_gaps() {
        let dir = tempfile::tempdir().unwrap();
        let evs = typical(300);
        let mut store = in_two_groups(dir.path(), &evs);
        let (evicted, _) = store.evict(250, u64::MAX, 0, 100).unwrap();
        assert_eq!(evicted.count.events, 50);
        let want = store.snapshot().unwrap();
        assert_eq!((want.events, want.max_seq), (250, 300));
        drop(store);
        let mut reader = SqliteStore::open_file(&dir.path().join(DB_FILE), true).unwrap();
        let got = reader.snapshot().unwrap();
        assert_eq!(
            (got.events, got.bytes, got.max_seq, got.oldest_ms),
            (want.events, want.bytes, want.max_seq, want.oldest_ms)
        );
    }

    /// QA readers of a device's copy see the groups' events (read-only: nothing is
    /// expanded or written), and the contexts they refer to survive the purge at open.
    #[test]
    fn readers_and_open_see_grouped_events() {
        let dir = tempfile::tempdir().unwrap();
        let mut evs = typical(300);
        evs.extend(changed_context(301..=305));
        {
            let mut store = in_two_groups(dir.path(), &evs);
            store.delete(&(1..=10).collect::<Vec<_>>()).unwrap();
            assert_eq!(group_and_event_rows(&store), (2, 0));
            // The shared one: events whose context a plugin changed carry theirs.
            assert_eq!(context_rows(&store), 1);
        }
        // A QA copy of a device's queue: the database and its groups file beside it.
        let copy_dir = tempfile::tempdir().unwrap();
        let copy = copy_dir.path().join("device.db");
        fs::copy(dir.path().join(DB_FILE), &copy).unwrap();
        fs::copy(
            companion(&dir.path().join(DB_FILE), GROUPS_SUFFIX),
            companion(&copy, GROUPS_SUFFIX),
        )
        .unwrap();
        let before = fs::read(&copy).unwrap();
        let mut reader = SqliteStore::open_file(&copy, true).unwrap();
        let mut seen = Vec::new();
        reader
            .iter_events(|e| {
                seen.push(e);
                true
            })
            .unwrap();
        assert_eq!(seen, evs[10..]);
        let counts = reader.counts_by_type_and_name().unwrap();
        let total: u64 = counts.iter().map(|c| c.2).sum();
        assert_eq!(total, 295);
        assert_eq!(reader.snapshot().unwrap().events, 295);
        drop(reader);
        assert_eq!(fs::read(&copy).unwrap(), before, "read-only");
        // Reopened read-write: the purge at open keeps the context that only groups refer
        // to (it deleted it before it read the groups).
        let mut store = grouped(dir.path());
        assert_eq!(context_rows(&store), 1);
        assert_eq!(store.load(1000, usize::MAX).unwrap(), evs[10..]);
    }

    /// A record that changed on disk is damage: reading it fails as Corrupt (the runtime
    /// then replaces the database), never with a panic; reopened, the file ends before it.
    #[test]
    fn damaged_group_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let evs = typical(300);
        let mut store = in_two_groups(dir.path(), &evs);
        let path = companion(&store.path, GROUPS_SUFFIX);
        let mut bytes = fs::read(&path).unwrap();
        let second = bytes.len() - 100;
        bytes[second] ^= 0x20;
        fs::write(&path, &bytes).unwrap();
        let err = store.load(1000, usize::MAX).unwrap_err();
        assert_eq!(err.kind, FailureKind::Corrupt, "{err}");
        drop(store);
        let mut store = grouped(dir.path());
        assert_eq!(store.snapshot().unwrap().events, 256);
        assert_eq!(store.load(1000, usize::MAX).unwrap(), evs[..256]);
    }

    /// The opt-out purge removes grouped events too, and spares those being uploaded.
    #[test]
    fn purge_clears_groups() {
        let dir = tempfile::tempdir().unwrap();
        let evs = typical(300);
        let mut store = in_two_groups(dir.path(), &evs);
        let removed = store.clear(20).unwrap();
        assert_eq!(removed.events, 280);
        assert_eq!(group_and_event_rows(&store), (0, 20));
        assert_eq!(store.load(1000, usize::MAX).unwrap(), evs[..20]);
    }

    /// The SQLite store passes the conformance suite every backend must pass, writing
    /// rows and writing commit groups.
    #[test]
    fn sqlite_store_conforms() {
        let root = tempfile::tempdir().unwrap();
        let mut n = 0;
        conformance::run(|| {
            n += 1;
            open(&root.path().join(n.to_string()))
        });
        conformance::run(|| {
            n += 1;
            grouped(&root.path().join(n.to_string()))
        });
    }

    /// Events, state and the largest seq survive closing and reopening the store.
    #[test]
    fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let evs = events(1..=5, 120);
        let before = {
            let mut store = open(dir.path());
            store.insert(&evs).unwrap();
            store.save_state(&state()).unwrap();
            store.delete(&[1]).unwrap();
            store.snapshot().unwrap()
        };
        let mut store = open(dir.path());
        let after = store.snapshot().unwrap();
        assert_eq!(after, before);
        assert_eq!(
            (after.events, after.bytes, after.max_seq, after.oldest_ms),
            (4, 480, 5, Some(2000))
        );
        assert_eq!(after.state, Some(state()));
        assert_eq!(store.load(10, 1 << 20).unwrap(), evs[1..]);
    }

    /// Each piece of the state is its own row of JSON, readable with plain SQL.
    #[test]
    fn state_is_readable_with_sql() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(dir.path());
        store.save_state(&state()).unwrap();
        let get = |key: &str| -> String {
            store
                .conn
                .query_row(
                    "SELECT value ->> '$' FROM state WHERE key = ?1",
                    [key],
                    |r| r.get::<_, rusqlite::types::Value>(0),
                )
                .map(|v| format!("{v:?}"))
                .unwrap()
        };
        assert!(get("anonymous_id").contains(&state().identity.anonymous_id));
        assert_eq!(get("user_id"), r#"Text("u1")"#);
        assert_eq!(get("opted_out"), "Integer(0)");
        let attempts = value_of(
            &store,
            "SELECT value ->> '$[0].attempts' FROM state WHERE key = 'endpoints'",
        );
        assert_eq!(attempts, 2);
    }

    /// A store written with one endpoint (its retry state under `retry`) gives that state
    /// to the first endpoint, and the next save replaces the row with `endpoints`.
    #[test]
    fn legacy_retry_state_is_read_then_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(dir.path());
        store.save_state(&state()).unwrap();
        store
            .conn
            .execute_batch(
                "DELETE FROM state WHERE key = 'endpoints';
                 INSERT INTO state(key, value) VALUES ('retry', '{\"attempts\":3,\"next_attempt_ms\":9000,\"server_directed\":false,\"auth_paused_until_ms\":null,\"auth_status\":null}');",
            )
            .unwrap();
        drop(store);
        let mut store = open(dir.path());
        let saved = store.snapshot().unwrap().state.unwrap();
        assert_eq!(saved.endpoints.len(), 1);
        assert_eq!(saved.endpoints[0].url, "");
        assert_eq!(saved.endpoints[0].retry.attempts, 3);
        assert_eq!(saved.endpoints[0].retry.next_attempt_ms, Some(9000));
        store.save_state(&state()).unwrap();
        let legacy = value_of(&store, "SELECT count(*) FROM state WHERE key = 'retry'");
        assert_eq!(legacy, 0);
        assert_eq!(store.snapshot().unwrap().state, Some(state()));
    }

    /// A file that is not a database is moved aside with its WAL, and an empty queue works.
    #[test]
    fn corrupt_file_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = b"this is no database, only garbage bytes. ".repeat(100);
        fs::write(dir.path().join(DB_FILE), &garbage).unwrap();
        fs::write(dir.path().join("trailhound.db-wal"), b"garbage wal").unwrap();

        let Opened {
            mut store,
            recovered,
        } = SqliteStore::open(dir.path()).unwrap();
        let message = recovered.expect("the corrupt file is reported");
        assert!(message.contains("corrupt-"), "{message}");

        store.insert(&events(1..=3, 100)).unwrap();
        assert_eq!(store.load(10, 1 << 20).unwrap().len(), 3);

        let names = files_in(dir.path());
        let aside = names
            .iter()
            .find(|n| n.starts_with("trailhound.db.corrupt-") && !n.ends_with("-wal"))
            .expect("the old file is kept");
        assert!(message.contains(aside.as_str()), "{message}");
        assert_eq!(fs::read(dir.path().join(aside)).unwrap(), garbage);
        assert_eq!(
            fs::read(dir.path().join(format!("{aside}-wal"))).unwrap(),
            b"garbage wal"
        );
    }

    /// Damage found after opening fails as Corrupt, and `replace_corrupt` starts afresh.
    #[test]
    fn corruption_at_runtime_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE);
        {
            let mut store = open(dir.path());
            store.insert(&events(1..=200, 1000)).unwrap();
        }
        // Keep page 1 (header and schema), overwrite every other page.
        let mut bytes = fs::read(&path).unwrap();
        let page = PAGE_SIZE as usize;
        assert!(bytes.len() > 16 * page);
        bytes[page..].fill(0xA5);
        fs::write(&path, &bytes).unwrap();

        let mut store = open(dir.path());
        let err = store.snapshot().unwrap_err();
        assert_eq!(err.kind, FailureKind::Corrupt, "{err}");

        let message = store.replace_corrupt().unwrap();
        assert!(message.contains("corrupt"), "{message}");
        assert_eq!(store.snapshot().unwrap(), StoreSnapshot::default());
        store.insert(&events(1..=2, 100)).unwrap();
        let (evicted, _) = store.evict(1, 1 << 20, 0, 0).unwrap();
        assert_eq!(evicted.count.events, 1, "the reset totals are right");
        assert!(files_in(dir.path())
            .iter()
            .any(|n| n.starts_with("trailhound.db.corrupt-")));
    }

    /// A second client on the same data directory is refused until the first closes.
    #[test]
    fn second_client_is_locked_out() {
        let dir = tempfile::tempdir().unwrap();
        let first = open(dir.path());
        let err = SqliteStore::open(dir.path()).unwrap_err();
        assert!(matches!(&err, OpenError::Locked { dir: d } if d == dir.path()));
        assert!(
            err.to_string()
                .contains("another Trailhound client has the data directory"),
            "{err}"
        );
        drop(first);
        open(dir.path());
    }

    /// Holds a write transaction on the database from another connection for `hold`.
    fn hold_write_lock(path: PathBuf, hold: Duration) -> thread::JoinHandle<()> {
        let (locked, is_locked) = mpsc::channel();
        let handle = thread::spawn(move || {
            let mut conn = Connection::open(path).unwrap();
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .unwrap();
            locked.send(()).unwrap();
            thread::sleep(hold);
            tx.commit().unwrap();
        });
        is_locked.recv().unwrap();
        handle
    }

    /// A database locked by another connection is waited on; without a timeout it is Busy.
    #[test]
    fn busy_database_is_waited_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE);
        let mut store = open(dir.path());

        let holder = hold_write_lock(path.clone(), Duration::from_millis(300));
        let start = Instant::now();
        store.insert(&events(1..=1, 100)).unwrap();
        assert!(start.elapsed() >= Duration::from_millis(200));
        holder.join().unwrap();

        store.conn.busy_timeout(Duration::ZERO).unwrap();
        let holder = hold_write_lock(path, Duration::from_millis(300));
        let err = store.insert(&events(2..=2, 100)).unwrap_err();
        assert_eq!(err.kind, FailureKind::Busy, "{err}");
        holder.join().unwrap();
        assert_eq!(store.snapshot().unwrap().events, 1);
    }

    /// A store holding ten small events whose file cannot grow: the next large insert
    /// fails as a full disk would make it.
    fn open_nearly_full(dir: &Path) -> SqliteStore {
        let mut store = open(dir);
        store.insert(&events(1..=10, 200)).unwrap();
        let pages: u32 = store
            .conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap();
        store.set_max_pages(pages);
        store
    }

    /// A full disk fails the insert as Full, keeps nothing of it, and deletes still work.
    #[test]
    fn full_disk_fails_insert_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open_nearly_full(dir.path());

        let err = store.insert(&events(11..=20, 8000)).unwrap_err();
        assert_eq!(err.kind, FailureKind::Full, "{err}");
        let snap = store.snapshot().unwrap();
        assert_eq!((snap.events, snap.bytes, snap.max_seq), (10, 2000, 10));

        let (removed, oldest) = store.delete(&[1, 2, 3]).unwrap();
        assert_eq!(
            removed,
            Removed {
                events: 3,
                bytes: 600
            }
        );
        assert_eq!(oldest, Some(4000));
        assert_eq!(store.load(100, 1 << 20).unwrap().len(), 7);

        store.set_max_pages(u32::MAX - 1);
        store.insert(&events(11..=20, 8000)).unwrap();
        assert_eq!(store.snapshot().unwrap().events, 17);
    }

    /// Every upgrade path ends in the schema of a fresh database, with the right backfill.
    #[test]
    fn upgrades_match_fresh_schema() {
        let fresh_dir = tempfile::tempdir().unwrap();
        let fresh = schema_of(&open(fresh_dir.path()).conn);
        assert_eq!(fresh.1, SCHEMA_VERSION);

        let sealed = sealed_events();
        for (version, create_old) in OLD_VERSIONS {
            let dir = tempfile::tempdir().unwrap();
            {
                let conn = create_old(&dir.path().join(DB_FILE));
                assert_eq!(schema::user_version(&conn).unwrap(), version);
                for ev in &sealed {
                    conn.execute(
                        "INSERT INTO events(seq, message_id, created_ms, bytes, json)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![
                            ev.seq as i64,
                            ev.message_id,
                            ev.created_ms,
                            ev.bytes() as i64,
                            ev.json.wire()
                        ],
                    )
                    .unwrap();
                    if version >= 2 {
                        conn.execute(
                            "UPDATE events SET type = ?2, name = ?3 WHERE seq = ?1",
                            params![ev.seq as i64, ev.kind.as_str(), ev.name],
                        )
                        .unwrap();
                    }
                }
                conn.execute(
                    "INSERT INTO events(seq, message_id, created_ms, bytes, json)
                     VALUES (99, 'bad', 5, 8, 'not json')",
                    [],
                )
                .unwrap();
                // Deleted rows, which the conversion's VACUUM drops from the file.
                if converted(&conn) {
                    conn.execute_batch(
                        "INSERT INTO events(seq, message_id, created_ms, bytes, json)
                         VALUES (200, 'gone', 5, 11, 'DELETED-ROW');
                         DELETE FROM events WHERE seq = 200;",
                    )
                    .unwrap();
                }
                conn.execute("INSERT INTO state VALUES ('anonymous_id', '\"a-1\"')", [])
                    .unwrap();
            }

            let mut store = open(dir.path());
            assert_eq!(
                schema_of(&store.conn),
                fresh,
                "upgrade from version {version}"
            );
            assert_eq!(store.schema_version(), SCHEMA_VERSION);

            let loaded = store.load(100, 1 << 20).unwrap();
            assert_eq!(
                loaded[..sealed.len()],
                sealed[..],
                "type and name backfilled"
            );
            let bad = &loaded[sealed.len()];
            assert_eq!(
                (bad.seq, bad.kind, bad.name.as_deref()),
                (99, MessageType::Track, None)
            );

            let old_rows = value_of(
                &store,
                "SELECT count(*) FROM events WHERE context_id IS NULL",
            );
            assert_eq!(
                old_rows,
                sealed.len() as i64 + 1,
                "old rows keep their JSON"
            );

            let snap = store.snapshot().unwrap();
            assert_eq!(snap.state.unwrap().identity.anonymous_id, "a-1");
            assert_eq!(snap.events, sealed.len() as u64 + 1);
            // New events store their context once, beside the old rows.
            let mut newer = sealed_events();
            for ev in &mut newer {
                ev.seq += 1000;
            }
            store.insert(&newer).unwrap();
            assert_eq!(
                store.load(100, 1 << 20).unwrap()[sealed.len() + 1..],
                newer[..]
            );
            drop(store);
            let bytes = fs::read(dir.path().join(DB_FILE)).unwrap();
            assert!(
                !bytes.windows(11).any(|w| w == b"DELETED-ROW"),
                "upgrade from version {version} keeps deleted bytes"
            );
        }
    }

    /// An older file that another connection (a QA tool) is reading when the store opens
    /// cannot change its page size then: it opens in WAL mode as it was, works, and is
    /// converted at the next open.
    #[test]
    fn conversion_waits_for_readers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE);
        drop(create_v2(&path));
        let mut reader = Connection::open(&path).unwrap();
        let read = reader.transaction().unwrap();
        let n: i64 = read
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
        {
            let mut store = open(dir.path());
            store.conn.busy_timeout(Duration::from_millis(50)).unwrap();
            assert_eq!(schema::page_size(&store.conn).unwrap(), 4096);
            let mode: String = store
                .conn
                .pragma_query_value(None, "journal_mode", |r| r.get(0))
                .unwrap();
            assert_eq!(mode, "wal");
            store.insert(&events(1..=3, 100)).unwrap();
            assert_eq!(store.load(10, 1 << 20).unwrap(), events(1..=3, 100));
        }
        read.commit().unwrap();
        drop(reader);
        let mut store = open(dir.path());
        assert_eq!(schema::page_size(&store.conn).unwrap(), PAGE_SIZE);
        assert_eq!(store.load(10, 1 << 20).unwrap(), events(1..=3, 100));
    }

    /// A database from a newer Trailhound is refused and left byte for byte as it was.
    #[test]
    fn newer_schema_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE);
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch("CREATE TABLE events(x); PRAGMA user_version = 5;")
                .unwrap();
        }
        let before = fs::read(&path).unwrap();

        let err = SqliteStore::open(dir.path()).unwrap_err();
        assert!(
            matches!(
                err,
                OpenError::NewerSchema {
                    found: 5,
                    supported: 4
                }
            ),
            "{err}"
        );
        let err = SqliteStore::open_file(&path, true).unwrap_err();
        assert!(
            matches!(err, OpenError::NewerSchema { found: 5, .. }),
            "{err}"
        );
        let err = SqliteStore::open_file(&path, false).unwrap_err();
        assert!(
            matches!(err, OpenError::NewerSchema { found: 5, .. }),
            "{err}"
        );

        assert_eq!(fs::read(&path).unwrap(), before);
        assert_eq!(files_in(dir.path()), vec![DB_FILE, LOCK_FILE]);
    }

    /// QA tools read a copied database read-only, without writing to it or migrating it.
    #[test]
    fn open_file_read_only() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut store = open(dir.path());
            store.insert(&events(1..=4, 100)).unwrap();
            store.save_state(&state()).unwrap();
        }
        let copy_dir = tempfile::tempdir().unwrap();
        let copy = copy_dir.path().join("device.db");
        fs::copy(dir.path().join(DB_FILE), &copy).unwrap();
        let before = fs::read(&copy).unwrap();

        let mut store = SqliteStore::open_file(&copy, true).unwrap();
        assert_eq!(store.schema_version(), SCHEMA_VERSION);
        let snap = store.snapshot().unwrap();
        assert_eq!((snap.events, snap.state), (4, Some(state())));
        assert_eq!(store.load(10, 1 << 20).unwrap(), events(1..=4, 100));
        assert_eq!(
            store.insert(&events(5..=5, 100)).unwrap_err().kind,
            FailureKind::Other
        );
        assert!(matches!(
            store.replace_corrupt(),
            Err(OpenError::ReadOnly { .. })
        ));
        drop(store);
        assert_eq!(fs::read(&copy).unwrap(), before);

        // An older schema needs a migration: refused read-only, migrated read-write.
        let old = copy_dir.path().join("old.db");
        drop(create_v1(&old));
        let err = SqliteStore::open_file(&old, true).unwrap_err();
        assert!(
            matches!(
                err,
                OpenError::OlderSchema {
                    found: 1,
                    supported: 4
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("copy the file"), "{err}");
        let store = SqliteStore::open_file(&old, false).unwrap();
        assert_eq!(store.schema_version(), SCHEMA_VERSION);

        // Read-write opens do not create a missing file.
        assert!(SqliteStore::open_file(&copy_dir.path().join("missing.db"), false).is_err());
    }

    /// The QA queries count per type and name, and stream every event oldest first.
    #[test]
    fn qa_queries() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(dir.path());
        let sealed = sealed_events();
        store.insert(&sealed).unwrap();
        store.insert(&events(10..=12, 50)).unwrap(); // tracks named "Event 1", "Event 2", "Event 0"

        let counts = store.counts_by_type_and_name().unwrap();
        let b = |i: usize| sealed[i].stored_bytes();
        let expected = vec![
            ("alias".to_string(), Some("u2".to_string()), 1, b(5)),
            ("group".into(), Some("g1".into()), 1, b(4)),
            ("identify".into(), Some("u1".into()), 1, b(1)),
            ("page".into(), None, 1, b(3)),
            ("screen".into(), Some("Player".into()), 1, b(2)),
            ("track".into(), Some("Event 0".into()), 1, 50),
            ("track".into(), Some("Event 1".into()), 1, 50),
            ("track".into(), Some("Event 2".into()), 1, 50),
            ("track".into(), Some("Song Played".into()), 1, b(0)),
        ];
        assert_eq!(counts, expected);

        let mut seen = Vec::new();
        store
            .iter_events(|ev| {
                seen.push(ev.seq);
                true
            })
            .unwrap();
        assert_eq!(seen, vec![1, 2, 3, 4, 5, 6, 10, 11, 12]);
        let mut first = Vec::new();
        store
            .iter_events(|ev| {
                first.push(ev);
                first.len() < 2
            })
            .unwrap();
        assert_eq!(first, sealed[..2]);
    }

    /// Re-inserting a stored seq replaces the event, as the memory store does.
    #[test]
    fn duplicate_seq_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(dir.path());
        store.snapshot().unwrap();
        store.insert(&events(1..=3, 100)).unwrap();
        let replacement = event(2, 7, 300);
        store.insert(std::slice::from_ref(&replacement)).unwrap();
        assert_eq!(store.load(10, 1 << 20).unwrap()[1], replacement);
        // The cached totals followed: evicting to 400 bytes drops exactly seq 1.
        let (evicted, oldest) = store.evict(100, 400, 0, 0).unwrap();
        assert_eq!(
            evicted.bytes,
            Removed {
                events: 1,
                bytes: 100
            }
        );
        assert_eq!(oldest, Some(7));
        let snap = store.snapshot().unwrap();
        assert_eq!((snap.events, snap.bytes), (2, 400));
    }

    /// Eviction, deletes and the oldest-event lookup use indexes, never a sort or a scan.
    #[test]
    fn hot_queries_use_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let plan = |sql: &str| -> String {
            let mut stmt = store
                .conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap();
            let n = stmt.parameter_count();
            let args = vec![0i64; n];
            stmt.query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(3))
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap()
                .join("; ")
        };
        let age = plan(sql::EVICT_AGE);
        assert!(age.contains("INDEX events_created_ms"), "{age}");
        for q in [
            sql::DELETE_RANGE,
            sql::DELETE_UP_TO,
            sql::BYTES_OF,
            sql::CONTEXT_JSON,
            sql::LIVE_THROUGH,
            sql::COUNT_IN,
            sql::COUNT_UP_TO,
            sql::FIRST_QUEUED,
            sql::DELETE_DELIVERED,
        ] {
            let p = plan(q);
            assert!(p.contains("INTEGER PRIMARY KEY"), "{q}: {p}");
        }
        for q in [
            sql::OLDEST,
            sql::LOAD,
            sql::EVICT_OLDEST,
            sql::WALK,
            sql::ITER,
            sql::SEQ_AGES_DESC,
        ] {
            let p = plan(q);
            assert!(!p.contains("TEMP B-TREE"), "{q}: {p}");
        }
    }

    /// The connection runs in WAL mode, with NORMAL sync, a 5 s busy timeout and the
    /// page size, checkpoints and secure_delete chosen for the bytes they write.
    #[test]
    fn pragmas_are_set() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let get = |p: &str| -> String {
            store
                .conn
                .pragma_query_value(None, p, |r| r.get::<_, rusqlite::types::Value>(0))
                .map(|v| format!("{v:?}"))
                .unwrap()
        };
        assert_eq!(get("journal_mode"), r#"Text("wal")"#);
        assert_eq!(get("synchronous"), "Integer(1)");
        assert_eq!(get("busy_timeout"), "Integer(5000)");
        assert_eq!(get("secure_delete"), "Integer(2)", "FAST");
        assert_eq!(get("page_size"), format!("Integer({PAGE_SIZE})"));
        assert_eq!(get("wal_autocheckpoint"), "Integer(2000)");
        assert_eq!(get("auto_vacuum"), "Integer(2)");
    }

    /// A file with the queue's version but other tables is moved aside like a corrupt one.
    #[test]
    fn foreign_tables_are_moved_aside() {
        for sql in [
            "CREATE TABLE other(x); PRAGMA user_version = 2;",
            "CREATE TABLE events(seq INTEGER PRIMARY KEY); CREATE TABLE state(key, value);
             PRAGMA user_version = 2;",
            // Version 0 (no version) with a table of the same name: creating ours fails.
            "CREATE TABLE events(x);",
        ] {
            let dir = tempfile::tempdir().unwrap();
            Connection::open(dir.path().join(DB_FILE))
                .unwrap()
                .execute_batch(sql)
                .unwrap();
            let Opened {
                mut store,
                recovered,
            } = SqliteStore::open(dir.path()).unwrap();
            let message = recovered.unwrap_or_else(|| panic!("not moved aside: {sql}"));
            assert!(
                message.contains("not those of a Trailhound queue"),
                "{message}"
            );
            store.insert(&events(1..=2, 100)).unwrap();
            assert_eq!(store.snapshot().unwrap().events, 2);
        }
    }

    /// A context row that is missing, not text or not JSON, or a `context_id` that is no
    /// integer, loads the event without its context instead of failing every load.
    #[test]
    fn damaged_contexts_are_tolerated() {
        use trailhound_core::store::conformance::{context, event_sharing};
        let c = context("c");
        let evs: Vec<_> = (1..=4).map(|i| event_sharing(i, 1, 200, &c)).collect();
        for damage in [
            "UPDATE contexts SET json = x'00ff'",
            "UPDATE contexts SET json = 'not json'",
            "DELETE FROM contexts",
            "UPDATE events SET context_id = 'seven'",
        ] {
            let dir = tempfile::tempdir().unwrap();
            open(dir.path()).insert(&evs).unwrap();
            let mut store = open(dir.path());
            store.conn.execute_batch(damage).unwrap();
            let loaded = store.load(10, 1 << 20).unwrap();
            assert_eq!(loaded.len(), 4, "{damage}");
            assert_eq!(loaded[0].json.wire(), evs[0].json.body(), "{damage}");
            store.iter_events(|_| true).unwrap();
            store.delete(&[1, 2, 3, 4]).unwrap();
        }
    }

    /// Values of any SQLite type in the state table read as unreadable pieces, not errors.
    #[test]
    fn state_of_other_types_is_tolerated() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(dir.path());
        store.save_state(&state()).unwrap();
        store
            .conn
            .execute_batch(
                "UPDATE state SET value = x'00ff' WHERE key = 'traits';
                 UPDATE state SET value = 7 WHERE key = 'user_id';
                 INSERT INTO state VALUES (x'01', 3.5);",
            )
            .unwrap();
        let snap = store.snapshot().unwrap().state.unwrap();
        assert_eq!(snap.identity.anonymous_id, state().identity.anonymous_id);
        assert_eq!(snap.identity.user_id, None);
        assert!(snap.identity.traits.is_empty());
    }

    /// Sizes near i64::MAX in the file are added up without overflowing (a panic in
    /// debug builds).
    #[test]
    fn huge_sizes_in_the_file_do_not_overflow() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(dir.path());
        store.insert(&events(1..=6, 100)).unwrap();
        store
            .conn
            .execute("UPDATE events SET bytes = 9223372036854775807", [])
            .unwrap();
        let (removed, _) = store.delete(&[1, 2, 3]).unwrap();
        assert_eq!((removed.events, removed.bytes), (3, u64::MAX));
        // The bytes cap walks past u64::MAX looking for enough bytes.
        store.totals = Some(Totals {
            events: 3,
            bytes: u64::MAX,
        });
        let (evicted, _) = store.evict(100, 0, 0, 0).unwrap();
        assert_eq!(evicted.bytes.events, 3);
        assert_eq!(store.clear(0).unwrap().events, 0);
    }

    /// Whatever bytes the file holds, opening the store and running every operation
    /// returns results or errors, never panics.
    #[test]
    fn arbitrary_files_never_panic() {
        let mut sound = Vec::new();
        {
            let dir = tempfile::tempdir().unwrap();
            let mut store = open(dir.path());
            store.insert(&sealed_events()).unwrap();
            store.save_state(&state()).unwrap();
            drop(store);
            sound = fs::read(dir.path().join(DB_FILE)).unwrap_or(sound);
        }
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for case in 0..60 {
            let mut bytes = sound.clone();
            match case % 3 {
                // Random bytes after a valid header.
                0 => bytes[100..].iter_mut().for_each(|b| *b = next() as u8),
                // A few hundred flipped bytes anywhere, header included.
                1 => {
                    for _ in 0..300 {
                        let i = next() as usize % bytes.len();
                        bytes[i] = next() as u8;
                    }
                }
                // Pure noise, of a random length.
                _ => bytes = (0..next() % 20_000).map(|_| next() as u8).collect(),
            }
            let dir = tempfile::tempdir().unwrap();
            fs::write(dir.path().join(DB_FILE), &bytes).unwrap();
            let Ok(Opened { mut store, .. }) = SqliteStore::open(dir.path()) else {
                continue;
            };
            let _ = store.snapshot();
            let _ = store.load(100, 1 << 20);
            let _ = store.iter_events(|_| true);
            let _ = store.counts_by_type_and_name();
            let _ = store.insert(&events(100..=102, 100));
            let _ = store.delete(&[1, 2, 3]);
            let _ = store.evict(2, 100, 1_700_000_000_002, 0);
            let _ = store.save_state(&state());
            let _ = store.clear(0);
        }
    }

    /// Rows of the `contexts` table.
    fn context_rows(store: &SqliteStore) -> i64 {
        value_of(store, "SELECT count(*) FROM contexts")
    }

    /// The one integer `sql` gives (a count, a sum) on the store's own connection.
    fn value_of(store: &SqliteStore, sql: &str) -> i64 {
        store.conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    /// [`typical`] events whose context a plugin changed: each carries its own.
    fn changed_context(seqs: std::ops::RangeInclusive<u64>) -> Vec<QueuedEvent> {
        let policy = Policy::default();
        let identity = Identity::new(uuid::Uuid::from_u128(7));
        let ctx = trailhound_core::message::Context::new(Properties::new());
        seqs.map(|seq| {
            let call = Call::Track {
                event: "Changed".into(),
                properties: Properties::new(),
            };
            let ms = 1_700_000_000_000 + seq as i64;
            let mut msg = stamp(call, &identity, &ctx, format!("c{seq}"), ms, &policy).unwrap();
            msg.context.make_mut().insert("plugin".into(), json!(seq));
            let mut ev = seal(msg, ms, &policy).unwrap();
            ev.seq = seq;
            ev
        })
        .collect()
    }

    /// A context shared by a thousand events is stored once, and their rows hold the
    /// message without it; loaded events are the messages as sent, sharing one copy of
    /// it, also after reopening; events with their own context keep it in their row; the
    /// documented SQL gives every message whole.
    #[test]
    fn shared_context_is_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut evs = typical(1_000);
        evs.extend(changed_context(1_001..=1_010));
        let context = evs[0].json.context().unwrap().get().to_owned();
        assert!(context.len() > 300, "{context}");
        {
            let mut store = open(dir.path());
            for chunk in evs.chunks(256) {
                store.insert(chunk).unwrap();
            }
            assert_eq!(context_rows(&store), 1);
            let with_context = value_of(
                &store,
                "SELECT count(*) FROM events WHERE instr(json, '\"context\"') > 0",
            );
            assert_eq!(
                with_context, 10,
                "only the changed contexts are in the rows"
            );
            let stored = value_of(&store, "SELECT sum(length(json)) FROM events");
            let sent: u64 = evs.iter().map(QueuedEvent::bytes).sum();
            assert!(
                stored as u64 * 2 < sent,
                "{stored} B stored for {sent} B sent"
            );
            let own: u64 = evs.iter().map(QueuedEvent::stored_bytes).sum();
            assert_eq!(
                store.snapshot().unwrap().bytes,
                own,
                "each event's own bytes"
            );

            let mut documented = store
                .conn
                .prepare(
                    "SELECT CASE WHEN context_id IS NULL THEN e.json
                     ELSE json_set(e.json, '$.context', json(c.json)) END
                     FROM events e LEFT JOIN contexts c ON c.id = e.context_id ORDER BY seq",
                )
                .unwrap();
            let whole: Vec<String> = documented
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            for (sql, ev) in whole.iter().zip(&evs) {
                let a: serde_json::Value = serde_json::from_str(sql).unwrap();
                let b: serde_json::Value = serde_json::from_str(&ev.json.wire()).unwrap();
                assert_eq!(a, b);
            }
        }
        let mut store = open(dir.path());
        let loaded = store.load(2_000, 1 << 30).unwrap();
        assert_eq!(loaded, evs);
        for (a, b) in loaded.iter().zip(&evs) {
            assert_eq!(a.json.wire(), b.json.wire());
        }
        let first = loaded[0].json.context().unwrap();
        assert!(loaded[..1_000]
            .iter()
            .all(|e| Arc::ptr_eq(e.json.context().unwrap(), first)));
        assert!(loaded[1_000..].iter().all(|e| e.json.context().is_none()));
        let mut exported = Vec::new();
        store
            .iter_events(|e| {
                exported.push(e.json.into_wire());
                true
            })
            .unwrap();
        assert_eq!(exported[0], evs[0].json.wire());
        // The same context from another copy (a restarted app's) finds its row.
        let mut later = typical(1_011);
        store.insert(&later.split_off(1_010)).unwrap();
        assert_eq!(context_rows(&store), 1);
    }

    /// Contexts no event carries any more are deleted: when the queue empties (all but
    /// the newest), when it is cleared (all), and at open.
    #[test]
    fn unused_contexts_are_deleted() {
        use trailhound_core::store::conformance::{context, event_sharing};
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (context("a"), context("b"));
        let mut store = open(dir.path());
        store
            .insert(
                &(1..=3)
                    .map(|i| event_sharing(i, 1, 200, &a))
                    .collect::<Vec<_>>(),
            )
            .unwrap();
        store
            .insert(
                &(4..=6)
                    .map(|i| event_sharing(i, 1, 200, &b))
                    .collect::<Vec<_>>(),
            )
            .unwrap();
        assert_eq!(context_rows(&store), 2);
        store.delete(&[1, 2, 3]).unwrap();
        assert_eq!(context_rows(&store), 2, "not before the queue is empty");
        store.delete(&[4, 5, 6]).unwrap();
        assert_eq!(
            context_rows(&store),
            1,
            "the newest stays for the next events"
        );
        store.insert(&[event_sharing(7, 1, 200, &b)]).unwrap();
        assert_eq!(context_rows(&store), 1);
        store.evict(0, u64::MAX, 0, 0).unwrap();
        assert_eq!(context_rows(&store), 1);
        store.insert(&[event_sharing(8, 1, 200, &a)]).unwrap();
        store.insert(&[event_sharing(9, 1, 200, &b)]).unwrap();
        assert_eq!(store.clear(8).unwrap().events, 1);
        assert_eq!(
            context_rows(&store),
            1,
            "the spared event keeps its context"
        );
        store.clear(0).unwrap();
        assert_eq!(context_rows(&store), 0, "the opt-out purge leaves none");
        store.insert(&[event_sharing(10, 1, 200, &a)]).unwrap();
        let ev = store.load(1, 1 << 20).unwrap().remove(0);
        assert_eq!(ev, event_sharing(10, 1, 200, &a));
        store
            .conn
            .execute("INSERT INTO contexts(json) VALUES ('{\"left\":1}')", [])
            .unwrap();
        assert_eq!(context_rows(&store), 2);
        drop(store);
        let store = open(dir.path());
        assert_eq!(context_rows(&store), 1, "at open, the unused one goes");
    }

    /// A failed insert that wrote a new context's row rolls it back, and the store does
    /// not go on referring to the row: the next events with that context come back whole.
    #[test]
    fn failed_insert_forgets_its_contexts() {
        use trailhound_core::store::conformance::{context, event_sharing};
        let dir = tempfile::tempdir().unwrap();
        let mut store = open_nearly_full(dir.path());
        let c = context(&"c".repeat(3000));
        let big: Vec<_> = (11..=20).map(|i| event_sharing(i, 1, 8000, &c)).collect();
        assert_eq!(store.insert(&big).unwrap_err().kind, FailureKind::Full);
        store.set_max_pages(u32::MAX - 1);
        let small = event_sharing(21, 1, 100, &c);
        store.insert(std::slice::from_ref(&small)).unwrap();
        let loaded = store.load(100, 1 << 20).unwrap();
        assert_eq!(loaded.last().unwrap().json.wire(), small.json.wire());
        assert_eq!(context_rows(&store), 1);
    }

    /// Deleting takes any seqs, in any order, with repeats and gaps, and removes exactly
    /// those stored, one statement per run of consecutive seqs.
    #[test]
    fn delete_takes_runs_in_any_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(dir.path());
        store.insert(&events(1..=10, 100)).unwrap();
        store.insert(&events(12..=12, 100)).unwrap();
        let (removed, oldest) = store
            .delete(&[9, 3, 1, 2, 2, 8, 11, 12, 13, u64::MAX, 7])
            .unwrap();
        assert_eq!(
            removed,
            Removed {
                events: 7,
                bytes: 700
            }
        );
        assert_eq!(oldest, Some(4000));
        let left: Vec<u64> = store
            .load(100, 1 << 20)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(left, vec![4, 5, 6, 10]);
        assert_eq!(store.snapshot().unwrap().bytes, 400);
    }

    /// Rows in the `events` table, delivered ones included.
    fn rows(store: &SqliteStore) -> i64 {
        value_of(store, "SELECT count(*) FROM events")
    }

    fn load_seqs(store: &mut SqliteStore) -> Vec<u64> {
        store
            .load(100_000, 1 << 30)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect()
    }

    /// A delivered prefix stays in the table until the queue empties, when every row goes.
    #[test]
    fn delivered_prefix_stays_until_queue_empties() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(dir.path());
        store.insert(&events(1..=2_000, 100)).unwrap();
        let (removed, oldest) = store.delete(&(1..=500).collect::<Vec<_>>()).unwrap();
        assert_eq!(
            (removed, oldest),
            (
                Removed {
                    events: 500,
                    bytes: 50_000
                },
                Some(501_000)
            )
        );
        assert_eq!(rows(&store), 2_000, "delivered rows stay");
        let (removed, oldest) = store.delete(&(501..=1_999).collect::<Vec<_>>()).unwrap();
        assert_eq!((removed.events, oldest), (1_499, Some(2_000_000)));
        assert_eq!(rows(&store), 2_000);
        store.delete(&[2_000]).unwrap();
        assert_eq!(rows(&store), 0, "the queue emptied: every row goes");
        assert_eq!(store.snapshot().unwrap().events, 0);
    }

    /// No reader sees a delivered row: load, the QA queries (also on a read-only
    /// connection), the snapshot, evictions and the opt-out purge count queued events only.
    #[test]
    fn readers_skip_delivered_rows() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(dir.path());
        store.insert(&events(1..=10, 100)).unwrap();
        store.delete(&[3, 1, 2]).unwrap();
        assert_eq!(rows(&store), 10);
        assert_eq!(load_seqs(&mut store), (4..=10).collect::<Vec<_>>());
        let mut seen = Vec::new();
        store
            .iter_events(|e| {
                seen.push(e.seq);
                true
            })
            .unwrap();
        assert_eq!(seen, (4..=10).collect::<Vec<_>>());
        let counted: u64 = store
            .counts_by_type_and_name()
            .unwrap()
            .iter()
            .map(|c| c.2)
            .sum();
        assert_eq!(counted, 7);
        let snap = store.snapshot().unwrap();
        assert_eq!(
            (snap.events, snap.bytes, snap.max_seq, snap.oldest_ms),
            (7, 700, 10, Some(4_000))
        );
        // A QA tool's read-only connection to the live file.
        let qa = SqliteStore::open_file(&dir.path().join(DB_FILE), true).unwrap();
        let mut seen = Vec::new();
        qa.iter_events(|e| {
            seen.push(e.seq);
            true
        })
        .unwrap();
        assert_eq!(seen, (4..=10).collect::<Vec<_>>());
        drop(qa);
        // The caps take queued events only: the age cap the one created before 5 000,
        // the count cap the oldest two left, the bytes cap one more.
        let (evicted, oldest) = store.evict(4, 300, 5_000, 0).unwrap();
        assert_eq!(
            (
                evicted.age.events,
                evicted.count.events,
                evicted.bytes.events
            ),
            (1, 2, 1)
        );
        assert_eq!(oldest, Some(8_000));
        assert_eq!(load_seqs(&mut store), vec![8, 9, 10]);
        assert_eq!(store.clear(8).unwrap().events, 2, "9 and 10; 8 is spared");
        assert_eq!(load_seqs(&mut store), vec![8]);
        assert_eq!(store.snapshot().unwrap().events, 1);
    }

    /// After a prefix delete, a reopened store (closed cleanly, or after a crash: the files
    /// copied as they were while it was open) holds the same queue, and its largest seq
    /// never goes back, even once the queue emptied.
    #[test]
    fn reopen_after_prefix_delete_keeps_queue_and_seqs() {
        let dir = tempfile::tempdir().unwrap();
        let crashed = tempfile::tempdir().unwrap();
        let mut store = open(dir.path());
        store.insert(&events(1..=10, 100)).unwrap();
        store.delete(&[1, 2, 3, 4]).unwrap();
        let before = store.snapshot().unwrap();
        for suffix in ["", "-wal"] {
            let name = format!("{DB_FILE}{suffix}");
            fs::copy(dir.path().join(&name), crashed.path().join(&name)).unwrap();
        }
        drop(store);
        for d in [dir.path(), crashed.path()] {
            let mut store = open(d);
            let snap = store.snapshot().unwrap();
            assert_eq!(snap, before, "{}", d.display());
            assert_eq!((snap.events, snap.max_seq), (6, 10));
            assert_eq!(load_seqs(&mut store), (5..=10).collect::<Vec<_>>());
            store.delete(&(5..=10).collect::<Vec<_>>()).unwrap();
            assert_eq!(rows(&store), 0);
        }
        let mut store = open(dir.path());
        assert_eq!(store.snapshot().unwrap().max_seq, 10, "not back to 0");
        store.insert(&events(11..=12, 100)).unwrap();
        assert_eq!(load_seqs(&mut store), vec![11, 12]);
    }

    /// Seqs that are not the oldest queued (a batch refused in the middle of the queue)
    /// are deleted for real; a prefix delete after gaps of such rows still moves the
    /// watermark.
    #[test]
    fn isolated_middle_delete_is_physical() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(dir.path());
        store.insert(&events(1..=10, 100)).unwrap();
        let (removed, oldest) = store.delete(&[5, 6]).unwrap();
        assert_eq!((removed.events, oldest), (2, Some(1_000)));
        assert_eq!(rows(&store), 8, "deleted for real");
        // 1..=4 and 7 are the oldest five queued, with the gap left by 5 and 6.
        let (removed, oldest) = store.delete(&[1, 2, 3, 4, 7]).unwrap();
        assert_eq!((removed.events, oldest), (5, Some(8_000)));
        assert_eq!(rows(&store), 8, "a prefix: the watermark moved");
        assert_eq!(load_seqs(&mut store), vec![8, 9, 10]);
        // Not a prefix (9 without 8): for real; 99 is not stored.
        store.delete(&[9, 99]).unwrap();
        assert_eq!(rows(&store), 7);
        assert_eq!(load_seqs(&mut store), vec![8, 10]);
        assert_eq!(store.snapshot().unwrap().events, 2);
    }

    /// Past the bound, the delivered rows are deleted for real, in one go, while events
    /// are still queued.
    #[test]
    fn delivered_rows_bound_deletes_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(dir.path());
        store.delivered_rows_max = 100;
        store.insert(&events(1..=300, 100)).unwrap();
        store.delete(&(1..=60).collect::<Vec<_>>()).unwrap();
        store.delete(&(61..=100).collect::<Vec<_>>()).unwrap();
        assert_eq!(rows(&store), 300, "100 delivered: at the bound");
        store.delete(&[101]).unwrap();
        assert_eq!(rows(&store), 199, "past it: all delivered rows go");
        assert_eq!(load_seqs(&mut store), (102..=300).collect::<Vec<_>>());
        let snap = store.snapshot().unwrap();
        assert_eq!((snap.events, snap.max_seq), (199, 300));
    }

    /// The opt-out purge deletes delivered rows for real too, and those of events it
    /// spared once they are delivered.
    #[test]
    fn purge_removes_delivered_rows() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(dir.path());
        store.insert(&events(1..=100, 100)).unwrap();
        store.delete(&(1..=50).collect::<Vec<_>>()).unwrap();
        assert_eq!(rows(&store), 100);
        assert_eq!(store.clear(60).unwrap().events, 40);
        assert_eq!(rows(&store), 10, "only the ten spared are left");
        store.delete(&(51..=55).collect::<Vec<_>>()).unwrap();
        assert_eq!(rows(&store), 5, "while the purge waits, deliveries delete");
        store.delete(&(56..=60).collect::<Vec<_>>()).unwrap();
        assert_eq!(rows(&store), 0);
        // The last delivered: seqs of purged events may come again (none was sent).
        assert_eq!(store.snapshot().unwrap().max_seq, 60);
    }

    /// The oldest queued event is found whatever the order of creation times: after the
    /// clock went back, after an insert at a seq already passed, and after reopening.
    #[test]
    fn oldest_follows_clock_jumps() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(dir.path());
        let mut evs = events(1..=8, 100);
        evs[5].created_ms = 50; // seq 6: the clock went back
        store.insert(&evs[..4]).unwrap();
        store.delete(&[1]).unwrap(); // the order is known from here on
        store.insert(&evs[4..]).unwrap();
        assert_eq!(store.delete(&[2]).unwrap().1, Some(50));
        assert_eq!(store.delete(&[3, 4, 5]).unwrap().1, Some(50));
        assert_eq!(store.delete(&[6]).unwrap().1, Some(7_000));
        // An event at a seq below the watermark: stored and queued, the oldest.
        store.insert(&[event(2, 10, 100)]).unwrap();
        assert_eq!(load_seqs(&mut store), vec![2, 7, 8]);
        assert_eq!(store.snapshot().unwrap().oldest_ms, Some(10));
        assert_eq!(store.delete(&[7]).unwrap().1, Some(10));
        drop(store);
        let mut store = open(dir.path());
        assert_eq!(store.delete(&[2]).unwrap().1, Some(8_000));
        assert_eq!(load_seqs(&mut store), vec![8]);
    }

    /// Bytes this thread has passed to `write` (Linux), for the measurement below.
    fn written_by_thread() -> u64 {
        fs::read_to_string("/proc/thread-self/io")
            .ok()
            .and_then(|io| {
                io.lines()
                    .find_map(|l| l.strip_prefix("wchar: ")?.trim().parse().ok())
            })
            .unwrap_or(0)
    }

    /// One 10 000-event insert and delete cycle: commits of 256 (the engine's group
    /// commits), then deliveries of 500 (its batches), events of 400 B.
    fn cycle(store: &mut SqliteStore) {
        let evs = events(1..=10_000, 400);
        for chunk in evs.chunks(256) {
            store.insert(chunk).unwrap();
        }
        loop {
            let batch = store.load(500, 1 << 20).unwrap();
            if batch.is_empty() {
                break;
            }
            store
                .delete(&batch.iter().map(|e| e.seq).collect::<Vec<_>>())
                .unwrap();
        }
    }

    /// The cycle as before the data-at-rest changes: no auto_vacuum, secure_delete off.
    #[inline(never)]
    fn cycle_before(store: &mut SqliteStore) {
        store
            .conn
            .execute_batch("PRAGMA auto_vacuum = NONE; VACUUM; PRAGMA secure_delete = OFF;")
            .unwrap();
        cycle(store);
    }

    /// The cycle with secure_delete on, no auto_vacuum.
    #[inline(never)]
    fn cycle_secure_delete(store: &mut SqliteStore) {
        store
            .conn
            .execute_batch("PRAGMA auto_vacuum = NONE; VACUUM;")
            .unwrap();
        cycle(store);
    }

    /// The cycle as the store runs it: secure_delete on, incremental auto_vacuum.
    #[inline(never)]
    fn cycle_now(store: &mut SqliteStore) {
        cycle(store);
    }

    type Cycle = fn(&mut SqliteStore);

    /// Measures what `secure_delete` (and incremental auto_vacuum) cost on a 10 000-event
    /// insert and delete cycle, against neither in the same run: time (the median of
    /// `TRAILHOUND_ROUNDS`, default 7) and bytes written. Under callgrind, the inclusive
    /// costs of `cycle_before`, `cycle_secure_delete` and `cycle_now` compare instructions.
    #[test]
    #[ignore = "measurement: cargo test --release -p trailhound --lib -- --ignored --nocapture secure_delete_cost"]
    fn secure_delete_cost() {
        let rounds: usize = std::env::var("TRAILHOUND_ROUNDS")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(7);
        let configs: [(&str, Cycle); 3] = [
            ("before (no secure_delete, no auto_vacuum)", cycle_before),
            ("secure_delete", cycle_secure_delete),
            ("secure_delete + incremental auto_vacuum", cycle_now),
        ];
        let mut results: Vec<Vec<(f64, u64)>> = vec![Vec::new(); configs.len()];
        for _round in 0..rounds {
            for (i, (_, run)) in configs.iter().enumerate() {
                let dir = tempfile::tempdir().unwrap();
                let mut store = open(dir.path());
                let (start, written) = (Instant::now(), written_by_thread());
                run(&mut store);
                // Closing checkpoints what is left in the WAL: part of the cycle's writes.
                drop(store);
                let secs = start.elapsed().as_secs_f64();
                results[i].push((secs, written_by_thread() - written));
            }
        }
        let (base_secs, base_bytes) = {
            let v = &mut results[0];
            v.sort_by(|a, b| a.0.total_cmp(&b.0));
            v[v.len() / 2]
        };
        for (i, (name, _)) in configs.iter().enumerate() {
            let v = &mut results[i];
            v.sort_by(|a, b| a.0.total_cmp(&b.0));
            let (secs, bytes) = v[v.len() / 2];
            eprintln!(
                "{name}: {:.1} ms (x{:.2}), {} KiB written (x{:.2})",
                secs * 1e3,
                secs / base_secs,
                bytes / 1024,
                bytes as f64 / base_bytes.max(1) as f64
            );
        }
    }

    /// `write_bytes` (bytes this process sent to the block layer, as the page cache
    /// accounts them) and `wchar` (bytes passed to `write`) from `/proc/self/io` (Linux).
    fn process_io() -> (u64, u64) {
        let io = fs::read_to_string("/proc/self/io").unwrap_or_default();
        let field = |name: &str| {
            io.lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
                .unwrap_or(0)
        };
        (field("write_bytes:"), field("wchar:"))
    }

    /// `n` typical events (a track with five properties and a phone's context), sealed as
    /// `track()` seals them.
    fn typical(n: u64) -> Vec<QueuedEvent> {
        let policy = Policy::default();
        let identity = Identity::new(uuid::Uuid::from_u128(7));
        let ctx = trailhound_core::message::Context::new(trailhound_core::context::build(
            &trailhound_core::testing::phone_context(),
            &identity.anonymous_id,
            trailhound_core::Network::Wifi,
            Some(1_700_000_000_000),
        ));
        (1..=n)
            .map(|i| {
                let call = Call::Track {
                    event: "Song Played".into(),
                    properties: json!({
                        "title": "Eine kleine Nachtmusik",
                        "artist": "W. A. Mozart",
                        "seconds": 215 + (i % 100),
                        "shuffle": i % 2 == 0,
                        "rating": 4.5,
                    })
                    .as_object()
                    .unwrap()
                    .clone(),
                };
                let id = uuid::Uuid::from_u128(u128::from(i) << 64 | 0xabcd).to_string();
                let ms = 1_700_000_000_000 + i as i64;
                let msg = stamp(call, &identity, &ctx, id, ms, &policy).unwrap();
                let mut ev = seal(msg, ms, &policy).unwrap();
                ev.seq = i;
                ev
            })
            .collect()
    }

    /// Measures the bytes written per event for typical events (`TRAILHOUND_EVENTS`,
    /// default 100 000) in three patterns: all inserted in commits of 500, then delivered
    /// (loaded and deleted) in batches of 500; the same interleaved, with about 2 000
    /// waiting; and a fifth as many in commits and batches of 20, the queue emptying after
    /// each (a paced app on a good link); and a fiftieth as many committed one by one,
    /// delivered by twenties (an app tracking now and then). Prints `write_bytes` and `wchar` per event
    /// against the event's wire size, and the insert rate.
    ///
    /// `TRAILHOUND_PRAGMAS` compares settings: `name=SQL|name=SQL…`, each SQL run after
    /// opening (an empty one: the store as it is); `TRAILHOUND_PAGE_SIZE` creates the
    /// files with another page size; `TRAILHOUND_DELIVERED_MAX` sets another
    /// [`DELIVERED_ROWS_MAX`].
    #[test]
    #[ignore = "measurement: cargo test --release -p trailhound --lib -- --ignored --nocapture write_amplification"]
    fn write_amplification() {
        let n: u64 = std::env::var("TRAILHOUND_EVENTS")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(100_000);
        let pragmas = std::env::var("TRAILHOUND_PRAGMAS").unwrap_or_else(|_| "as is=".into());
        let page_size: Option<u32> = std::env::var("TRAILHOUND_PAGE_SIZE")
            .ok()
            .and_then(|p| p.parse().ok());
        let delivered_max: Option<u64> = std::env::var("TRAILHOUND_DELIVERED_MAX")
            .ok()
            .and_then(|p| p.parse().ok());
        let evs = typical(n);
        let json = evs[0].bytes();
        let deliver = |store: &mut SqliteStore, size: usize| {
            let batch = store.load(size, 1 << 20).unwrap();
            let seqs: Vec<u64> = batch.iter().map(|e| e.seq).collect();
            store.delete(&seqs).unwrap();
            !batch.is_empty()
        };
        for config in pragmas.split('|') {
            let (name, sql) = config.split_once('=').unwrap_or((config, ""));
            for (scenario, count, commit, size, backlog) in [
                ("fill then drain", n, 500, 500, u64::MAX),
                ("interleaved", n, 500, 500, 2_000),
                ("paced", n / 5, 20, 20, 0),
                ("sporadic", n / 50, 1, 20, 20),
            ] {
                let dir = tempfile::tempdir().unwrap();
                if let Some(page_size) = page_size {
                    Connection::open(dir.path().join(DB_FILE))
                        .unwrap()
                        .execute_batch(&format!(
                            "PRAGMA page_size = {page_size}; PRAGMA auto_vacuum = INCREMENTAL;
                             CREATE TABLE x(a); DROP TABLE x;"
                        ))
                        .unwrap();
                }
                let mut store = open(dir.path());
                store.conn.execute_batch(sql).unwrap();
                if let Some(max) = delivered_max {
                    store.delivered_rows_max = max;
                }
                let (wb, wc) = process_io();
                let start = Instant::now();
                let (mut insert_secs, mut longest) = (0.0, 0.0f64);
                for chunk in evs[..count as usize].chunks(commit) {
                    let t = Instant::now();
                    store.insert(chunk).unwrap();
                    let secs = t.elapsed().as_secs_f64();
                    insert_secs += secs;
                    longest = longest.max(secs);
                    let last = chunk[chunk.len() - 1].seq;
                    if last > backlog && last % size as u64 == 0 {
                        deliver(&mut store, size);
                    }
                }
                let (_, wc_inserted) = process_io();
                while deliver(&mut store, size) {}
                let (_, wc_drained) = process_io();
                drop(store);
                let secs = start.elapsed().as_secs_f64();
                let (wb2, wc2) = process_io();
                eprintln!(
                    "  wchar per event: until the last insert {:.0}, drain {:.0}, close {:.0}",
                    (wc_inserted - wc) as f64 / count as f64,
                    (wc_drained - wc_inserted) as f64 / count as f64,
                    (wc2 - wc_drained) as f64 / count as f64
                );
                let per = |b: u64| b as f64 / count as f64;
                eprintln!(
                    "{name}: {scenario}: {count} events of {json} B: write_bytes {:.0} B/event \
                     (x{:.2}), wchar {:.0} B/event (x{:.2}); inserts {:.0} rows/s, the \
                     longest {:.1} ms; whole cycle {:.2} s",
                    per(wb2 - wb),
                    per(wb2 - wb) / json as f64,
                    per(wc2 - wc),
                    per(wc2 - wc) / json as f64,
                    count as f64 / insert_secs,
                    longest * 1e3,
                    secs
                );
            }
        }
    }

    /// The store can move to the runtime's thread, and open errors can cross threads.
    #[test]
    fn types_are_send() {
        fn send<T: Send>() {}
        fn send_sync<T: Send + Sync + 'static>() {}
        send::<SqliteStore>();
        send::<Opened>();
        send_sync::<OpenError>();
    }
}
