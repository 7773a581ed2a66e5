//! The engine: the deterministic state machine that decides what to store, what to send
//! and when.
//!
//! # Driving it
//!
//! A runtime owns one `Engine` and, whenever something happens or a timer fires:
//!
//! 1. feeds it with the `handle_*` methods (an event, device conditions, a lifecycle
//!    change, a flush request, the result of a store operation or of an upload);
//! 2. executes every store operation from [`Engine::poll_store`] (one at a time: each
//!    result goes back through [`Engine::handle_store`] before the next poll);
//! 3. sends every request from [`Engine::poll_transmit`], reporting each result through
//!    [`Engine::handle_upload`] (uploads may take as long as they like; the engine keeps
//!    accepting and committing events meanwhile);
//! 4. hands every [`Engine::poll_notification`] to the app's listener;
//! 5. sleeps until [`Engine::poll_timeout`] or the next input.
//!
//! Running the store operations again after sending (as the native worker does) lets the
//! engine use the time a request is on the wire.
//!
//! # The delivery pipeline
//!
//! One request is in flight at a time (ordering, deduplication and backoff depend on it),
//! but nothing else waits for its answer:
//!
//! - a batch is taken from the events of recent commits when they are exactly the front of
//!   the stored queue ([`Policy::batches_from_memory`]), else loaded from the store;
//!   anything that makes the store's content uncertain (a failed operation, an eviction, a
//!   purge, a replaced store, another writer, a restart) forgets them until a load has
//!   read the whole queue or it is empty;
//! - a load reads two batches and keeps the second in memory;
//! - while a batch is on the wire the next one is taken from memory and compressed up to
//!   its `sentAt`, so that it goes out as soon as the answer comes; a failure, a split, an
//!   opt-out or going offline throws it away;
//! - the delete of an acknowledged batch is held until that next request has been handed
//!   out (or the runtime commits for the last time), and eviction spares it meanwhile.
//!
//! Time is always an argument: milliseconds since the Unix epoch from the wall clock.
//! Wall clocks jump; when `now` goes backwards the engine moves its own deadlines back with
//! it, so that a clock set back by a day does not stall uploads for a day.

use std::collections::VecDeque;

use crate::breaker::{Breakers, Failure};
use crate::conditions::DeviceConditions;
use crate::message::{Identity, QueuedEvent};
use crate::policy::{millis, Policy, BATCH_ENVELOPE_BYTES};
use crate::report::{DropReason, Notification, Stats};
use crate::retry::Jitter;
use crate::schedule::{self, QueueLoad, Tier};
use crate::store::FailureKind;
use crate::store::{
    Evicted, PersistedState, Removed, StoreOp, StoreOutcome, StoreResult, StoreSnapshot,
};
use crate::wire;

/// How long a failed store operation waits before it is tried again.
const STORE_RETRY_MS: i64 = 1_000;

/// A backwards step of the wall clock smaller than this is treated as jitter, not a jump.
const CLOCK_JUMP_MS: i64 = 1_000;

/// App lifecycle transitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// The app came to the foreground.
    Foreground,
    /// The app went to the background (and may be killed at any moment).
    Background,
}

/// One upload request for the runtime to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Identifies the request in [`Engine::handle_upload`].
    pub id: u64,
    /// `{"batch":[…],"sentAt":…}`, `sentAt` being the time of this poll; gzip-compressed
    /// when [`Transmit::gzipped`].
    pub body: Vec<u8>,
    /// Whether `body` is gzip-compressed: always with the `gzip` feature (the native
    /// runtime), never without it (the browser package, which compresses it with
    /// `CompressionStream` where the browser has one and sends it plain otherwise).
    pub gzipped: bool,
    /// Events in the batch.
    pub events: usize,
    /// Bytes before compression.
    pub raw_bytes: usize,
    /// Where it goes: the index of the endpoint in the configured list
    /// ([`Engine::set_endpoints`]); always 0 with one endpoint.
    pub endpoint: usize,
}

/// What became of an upload request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadResult {
    /// The server answered.
    Response {
        /// The HTTP status.
        status: u16,
        /// The `Retry-After` header, verbatim, if any.
        retry_after: Option<String>,
    },
    /// No answer: DNS, connect, TLS, reset, timeout.
    NetworkError(String),
    /// The request was blocked on the device (the browser package: a `fetch` that failed
    /// at once while online, an ad blocker): the endpoint's breaker opens for the longest
    /// wait ([`crate::breaker`]).
    Blocked(String),
}

/// A batch ready to be sent, and its body once built.
#[derive(Debug)]
struct Batch {
    events: Vec<QueuedEvent>,
    body: Option<wire::BatchBody>,
}

impl Batch {
    fn new(events: Vec<QueuedEvent>) -> Batch {
        Batch { events, body: None }
    }

    /// A batch whose body is compressed now, up to its `sentAt` (a batch prepared while
    /// another is on the wire).
    fn prepared(events: Vec<QueuedEvent>) -> Batch {
        let body = Some(wire::BatchBody::start(&events));
        Batch { events, body }
    }
}

/// What the engine's `recent` events are known to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Recent {
    /// Nothing (and `recent` is empty): batches are loaded.
    Unknown,
    /// The stored events right after those being uploaded or deleted; more may be stored
    /// after them (what a load read beyond one batch, or what was kept of recent commits
    /// that outgrew a batch), so later commits are not added.
    Prefix,
    /// Exactly the stored events after those being uploaded or deleted: later commits are
    /// added.
    Complete,
}

/// The batch after the one in flight, prepared while that one is on the wire.
///
/// Only from `recent`: a load while a batch is on the wire would read that batch again
/// (the store's front until its answer), and measured, that cost more CPU (7.5 % more
/// instructions on the engine thread, end to end) than the overlap saved.
#[derive(Debug)]
enum Next {
    None,
    Ready(Batch),
}

#[derive(Debug)]
enum Upload {
    Idle,
    Loading,
    Ready(Batch),
    InFlight {
        id: u64,
        events: Vec<QueuedEvent>,
        /// The endpoint it went to.
        endpoint: usize,
        /// No answer by then: abandoned, as a network error ([`Policy::upload_timeout`]).
        deadline_ms: i64,
    },
}

/// What [`Engine::handle_upload`] does with a response; see the table there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Delivered,
    Retry,
    Split,
    Drop(DropReason),
    Pause(u16),
}

/// The status column of the table on [`Engine::handle_upload`]; `None` is a network error.
///
/// Only an answer about the data itself (400, 413, 422, isolated to one event) ever drops
/// an event. Everything that is not a delivery, a transient failure or an answer about the
/// data is about the endpoint or the key, and pauses: a typo in a setting, a redirect to a
/// login page or a server that does not speak the protocol must never empty the queue.
fn classify(status: Option<u16>, events: usize) -> Verdict {
    match status {
        None | Some(408 | 429) => Verdict::Retry,
        Some(200..=299) => Verdict::Delivered,
        Some(501 | 505) => Verdict::Pause(status.unwrap_or_default()),
        Some(500..=599) => Verdict::Retry,
        Some(400 | 413 | 422) if events > 1 => Verdict::Split,
        Some(413) => Verdict::Drop(DropReason::TooLarge),
        Some(s @ (400 | 422)) => Verdict::Drop(DropReason::Rejected { status: s }),
        Some(s) => Verdict::Pause(s),
    }
}

/// Whether a pausing status is about the write key (rather than the endpoint).
fn is_auth_status(status: u16) -> bool {
    matches!(status, 401 | 403)
}

/// What a runtime could not save when it gave up on a failing store
/// ([`Engine::handle_give_up`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unsaved {
    /// Accepted events never committed, now counted dropped as
    /// [`DropReason::StoreFailed`].
    pub events: u64,
    /// The state (identity, opt-out, retry state) had changes that were not saved.
    pub state: bool,
    /// Of those, an opt-out or opt-in: the user's choice is not persisted.
    pub opt_out: bool,
}

/// The Trailhound engine. See the [module documentation](self) for how to drive it.
#[derive(Debug)]
pub struct Engine {
    /// The endpoints, in the configured order, and their breakers.
    breakers: Breakers,
    policy: Policy,
    jitter: Jitter,
    conditions: DeviceConditions,
    /// The app is in the foreground (or has no lifecycle: servers, desktop programs).
    foreground: bool,
    state: PersistedState,
    state_dirty: bool,
    next_seq: u64,
    last_now: i64,

    stored: Removed,
    stored_oldest_ms: Option<i64>,
    pending: Vec<QueuedEvent>,
    pending_bytes: u64,
    pending_since: Option<i64>,
    /// When, on the engine's clock, the oldest waiting event was first seen.
    waiting_since: Option<i64>,
    force_commit: bool,

    ops: VecDeque<StoreOp>,
    in_flight_op: Option<StoreOp>,
    store_retry_at: Option<i64>,
    evict_queued: bool,
    /// `(spare_through, stored events)` of the last eviction that removed nothing: until
    /// either changes (the upload ends, events come or go), another would be futile.
    futile_evict: Option<(u64, u64)>,

    upload: Upload,
    /// The batch after the one in flight, prepared while that one is on the wire, so that
    /// it goes out as soon as the answer comes.
    next: Next,
    /// Events settled (delivered, rejected) whose delete waits until the prepared batch
    /// that follows them has been handed out: the delete must not stand between an
    /// answer and the next request. Spared like the batch in flight.
    held_delete: Vec<u64>,
    splits: Vec<Vec<QueuedEvent>>,
    /// The store was corrupt and replaced while the current upload (ready, in flight,
    /// split) was out: its events were put back into `pending`, to be committed to the new
    /// store at once. Until the upload ends, an answer that settles them (delivered,
    /// rejected) also takes them out of `pending`, so that each is counted once.
    upload_orphaned: bool,
    /// The endpoint that answered about the data (400, 413, 422) and whose split halves
    /// are being sent: they stay on it while it is not open, so that isolating the bad
    /// event is not moved to another endpoint (which may judge the data differently)
    /// half-way.
    split_endpoint: Option<usize>,
    /// Requests given up on after [`Policy::upload_timeout`], for the runtime to cancel.
    abandoned: VecDeque<u64>,
    /// The opt-out choice changed and its state save has not succeeded yet.
    opt_out_unsaved: bool,
    flush_requested: bool,
    burst: bool,
    /// A burst goes on at least until every event up to this `seq` has been sent (the
    /// events waiting when it started, or when a flush was asked for).
    burst_through: u64,
    next_transmit_id: u64,

    /// Stored events kept in memory, oldest first, at most one batch's worth
    /// ([`Policy::max_batch_events`], [`Policy::max_batch_bytes`]): recent commits, kept
    /// after their insert succeeded, and what a load read beyond one batch, so that the
    /// next batch needs no store load. What they are is `recent_state`.
    recent: VecDeque<QueuedEvent>,
    recent_bytes: u64,
    recent_state: Recent,
    /// Changes whenever [`Engine::stats`] may have.
    stats_version: u64,

    notifications: VecDeque<Notification>,
    stats: Stats,
}

impl Engine {
    /// An engine for a store that was just opened.
    ///
    /// `seed` drives retry jitter (the runtime passes OS randomness; simulations a
    /// constant). `new_identity` is used only when the store holds no state yet: it is the
    /// device's first run, and the identity is persisted at once.
    pub fn new(
        policy: Policy,
        seed: u64,
        snapshot: StoreSnapshot,
        new_identity: Identity,
        now_ms: i64,
    ) -> Self {
        let policy_batches_from_memory = policy.batches_from_memory;
        let (state, new_state) = match snapshot.state {
            Some(state) => (state, false),
            None => (
                PersistedState {
                    identity: new_identity,
                    opted_out: false,
                    endpoints: Vec::new(),
                },
                true,
            ),
        };
        // Until the runtime names its endpoints (`set_endpoints`), those saved, or one.
        let mut urls: Vec<String> = state.endpoints.iter().map(|e| e.url.clone()).collect();
        if urls.is_empty() {
            urls.push(String::new());
        }
        let (breakers, clamped) = Breakers::new(&urls, &state.endpoints, &policy, now_ms);
        let state_dirty = new_state || clamped;
        let stats = Stats {
            opted_out: state.opted_out,
            ..Stats::default()
        };
        Engine {
            breakers,
            policy,
            jitter: Jitter::new(seed),
            conditions: DeviceConditions::default(),
            foreground: true,
            state,
            state_dirty,
            next_seq: snapshot.max_seq + 1,
            last_now: now_ms,
            stored: Removed {
                events: snapshot.events,
                bytes: snapshot.bytes,
            },
            stored_oldest_ms: snapshot.oldest_ms,
            pending: Vec::new(),
            pending_bytes: 0,
            pending_since: None,
            waiting_since: snapshot.oldest_ms.map(|t| t.min(now_ms)),
            force_commit: false,
            ops: VecDeque::new(),
            in_flight_op: None,
            store_retry_at: None,
            evict_queued: false,
            futile_evict: None,
            upload: Upload::Idle,
            next: Next::None,
            held_delete: Vec::new(),
            splits: Vec::new(),
            upload_orphaned: false,
            split_endpoint: None,
            abandoned: VecDeque::new(),
            opt_out_unsaved: false,
            flush_requested: false,
            burst: false,
            burst_through: 0,
            next_transmit_id: 1,
            recent: VecDeque::new(),
            recent_bytes: 0,
            recent_state: if snapshot.events == 0 && policy_batches_from_memory {
                Recent::Complete
            } else {
                Recent::Unknown
            },
            stats_version: 0,
            notifications: VecDeque::new(),
            stats,
        }
    }

    /// Names the endpoints batches go to, in order of preference (at most
    /// [`Policy::max_endpoints`]; the runtime checks each with [`crate::endpoint::check`]).
    /// [`Transmit::endpoint`] is an index into this list. Saved breaker state follows each
    /// URL; state of URLs no longer listed is forgotten. Without this call the engine has
    /// one endpoint.
    pub fn set_endpoints(&mut self, urls: &[String]) {
        let n = urls.len().clamp(1, self.policy.max_endpoints);
        let urls = if urls.is_empty() {
            vec![String::new()]
        } else {
            urls[..n].to_vec()
        };
        let (breakers, changed) = Breakers::new(
            &urls,
            &self.breakers.persisted(),
            &self.policy,
            self.last_now,
        );
        self.breakers = breakers;
        self.state_dirty |= changed;
        self.stats_version += 1;
    }

    // ----- getters -----

    /// The persisted identity.
    pub fn identity(&self) -> &Identity {
        &self.state.identity
    }

    /// Whether the user opted out.
    pub fn opted_out(&self) -> bool {
        self.state.opted_out
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Current counters.
    pub fn stats(&self) -> Stats {
        let mut s = self.stats.clone();
        s.queued_events = self.stored.events + self.pending.len() as u64;
        s.queued_bytes = self.stored.bytes + self.pending_bytes;
        s.uncommitted_events = self.pending.len() as u64;
        s.retry = self.breakers.gate(self.last_now);
        s.endpoints = self.breakers.stats(self.last_now);
        s.network = self.conditions.network;
        s.opted_out = self.state.opted_out;
        s
    }

    /// A number that changes whenever [`Engine::stats`] may have changed, so that a
    /// runtime can publish the counters only then instead of cloning them on every turn.
    pub fn stats_version(&self) -> u64 {
        self.stats_version
    }

    /// Events accepted and not yet committed.
    pub fn uncommitted(&self) -> usize {
        self.pending.len()
    }

    /// Whether the runtime may hand over more events: false while the events waiting in
    /// memory uncommitted (storage failing) reach [`Policy::max_uncommitted_events`] or
    /// [`Policy::max_uncommitted_bytes`]. The runtime then stops taking calls from its call
    /// queue, so that callers get backpressure instead of memory growing without bound.
    /// Events handed over anyway are still kept.
    pub fn accepting(&self) -> bool {
        self.pending.len() < self.policy.max_uncommitted_events
            && (self.pending_bytes as usize) < self.policy.max_uncommitted_bytes
    }

    /// The current upload tier.
    pub fn tier(&self) -> Tier {
        Tier::of(&self.conditions, self.foreground, &self.policy)
    }

    /// True when nothing is uncommitted, no store operation is outstanding and no flush
    /// is under way: what `shutdown` and blocking flushes wait for.
    pub fn is_settled(&self) -> bool {
        self.pending.is_empty()
            && self.ops.is_empty()
            && self.in_flight_op.is_none()
            && !self.state_dirty
            && matches!(self.upload, Upload::Idle)
            && !self.flush_requested
            && !self.burst
            && self.held_delete.is_empty()
            && matches!(self.next, Next::None)
    }

    /// True when nothing waits to be polled before [`Engine::poll_timeout`]: no store
    /// operation, request or notification to hand out, no state to save. A runtime may
    /// then leave an input (an event within a commit interval) unpolled until that
    /// timeout, instead of polling after each: the browser package spares each such
    /// `track()` a task.
    pub fn waits_for_timeout(&self) -> bool {
        self.ops.is_empty()
            && self.held_delete.is_empty()
            && !self.state_dirty
            && self.notifications.is_empty()
            && !matches!(self.upload, Upload::Ready(_))
    }

    /// The events settled (delivered, or dropped by the server's answer) whose delete the
    /// store has not confirmed yet, by `seq`, in order: still stored, and sent again by
    /// the next start if the program is gone before the delete completes. A runtime whose
    /// store operations may not outlive it (a page unloading while IndexedDB still works)
    /// keeps this list where a synchronous write survives, and deletes these events
    /// before anything else on its next start (the browser package: `localStorage`).
    pub fn deletes_owed(&self) -> Vec<u64> {
        let mut seqs = self.held_delete.clone();
        for op in self.ops.iter().chain(&self.in_flight_op) {
            if let StoreOp::Delete(more) = op {
                seqs.extend_from_slice(more);
            }
        }
        seqs.sort_unstable();
        seqs
    }

    /// True while a flush is under way or due now: a request is being loaded, sent or
    /// split, or one was asked for and nothing (network, backoff, auth pause) holds it.
    /// What blocking flushes wait on.
    pub fn is_flushing(&self) -> bool {
        if !matches!(self.upload, Upload::Idle) {
            return true;
        }
        (self.flush_requested || self.burst)
            && self.upload_due_at().is_some_and(|t| t <= self.last_now)
    }

    // ----- handle_* -----

    /// Deletes these stored events before any other store operation: events an earlier
    /// run settled but whose delete its store had not confirmed when it was gone, as
    /// [`Engine::deletes_owed`] listed them and the runtime kept them. Call after
    /// [`Engine::new`], before anything else; they count as owed until deleted.
    pub fn handle_owed_deletes(&mut self, seqs: Vec<u64>) {
        if !seqs.is_empty() {
            self.ops.push_front(StoreOp::Delete(seqs));
        }
    }

    /// Takes a validated event from `track()` and friends. It is committed within
    /// [`Policy::commit_interval`] or [`Policy::commit_max_events`], whichever comes first.
    pub fn handle_event(&mut self, mut event: QueuedEvent, now_ms: i64) {
        self.tick(now_ms);
        self.stats_version += 1;
        if self.state.opted_out {
            self.stats.dropped.add(DropReason::OptOut, 1);
            return;
        }
        event.seq = self.next_seq;
        self.next_seq += 1;
        self.stats.accepted += 1;
        self.pending_bytes += event.stored_bytes();
        self.pending_since.get_or_insert(now_ms);
        self.waiting_since.get_or_insert(now_ms);
        self.pending.push(event);
    }

    /// Records a new identity (after `identify`, `alias` or `reset`).
    pub fn handle_identity(&mut self, identity: Identity) {
        if self.state.identity != identity {
            self.state.identity = identity;
            self.state_dirty = true;
        }
    }

    /// Records new device conditions. The network coming back starts a flush and forgets
    /// our own backoff (most failures before it were the network's); a server's
    /// `Retry-After` still holds.
    pub fn handle_conditions(&mut self, conditions: DeviceConditions, now_ms: i64) {
        self.tick(now_ms);
        self.stats_version += 1;
        let was_online = self.conditions.network.is_online();
        self.conditions = conditions;
        if !was_online && conditions.network.is_online() {
            if self.breakers.clear_backoff() {
                self.state_dirty = true;
            }
            if self.has_waiting() {
                self.request_flush();
            }
        }
    }

    /// Records a lifecycle change. Going to the background commits everything at once and
    /// makes one flush attempt: the app may be killed next.
    pub fn handle_lifecycle(&mut self, lifecycle: Lifecycle, now_ms: i64) {
        self.tick(now_ms);
        self.foreground = lifecycle == Lifecycle::Foreground;
        if lifecycle == Lifecycle::Background {
            self.force_commit = true;
            if self.has_waiting() {
                self.request_flush();
            }
        }
    }

    /// An explicit `flush()`: commit everything and send it now. Overrides our own
    /// backoff and an auth pause (one probe request), but not a server's `Retry-After`.
    pub fn handle_flush(&mut self, now_ms: i64) {
        self.tick(now_ms);
        self.stats_version += 1;
        self.force_commit = true;
        if self.breakers.flush(now_ms) {
            self.state_dirty = true;
        }
        if self.has_waiting() {
            self.request_flush();
        }
    }

    /// Commits everything without waiting for the commit interval (shutdown). Deletes of
    /// delivered events held for a prepared batch go too: it may never be sent.
    pub fn handle_commit_now(&mut self, now_ms: i64) {
        self.tick(now_ms);
        self.force_commit = true;
        self.release_held_delete();
    }

    /// `opt_out()` (true) purges the queue and stops collection; `opt_in()` (false) resumes
    /// it. The choice is persisted.
    pub fn handle_opt_out(&mut self, opted_out: bool, now_ms: i64) {
        self.tick(now_ms);
        if self.state.opted_out == opted_out {
            return;
        }
        self.stats_version += 1;
        self.state.opted_out = opted_out;
        self.state_dirty = true;
        self.opt_out_unsaved = true;
        if opted_out {
            let mut dropped = std::mem::take(&mut self.pending);
            self.pending_bytes = 0;
            self.pending_since = None;
            if self.upload_orphaned {
                // Copies of the batch in flight: its answer decides their fate (below).
                if let Upload::InFlight { events, .. } = &self.upload {
                    let out: std::collections::HashSet<u64> =
                        events.iter().map(|e| e.seq).collect();
                    dropped.retain(|e| !out.contains(&e.seq));
                }
            }
            self.note_dropped(DropReason::OptOut, &dropped);
            self.splits.clear();
            self.split_endpoint = None;
            // A prepared batch is purged with the queue.
            self.next = Next::None;
            self.drop_recent();
            if matches!(self.upload, Upload::Ready(_)) {
                self.upload = Upload::Idle;
                self.release_held_delete();
            }
            if !matches!(self.upload, Upload::InFlight { .. }) {
                self.upload_orphaned = false;
            }
            // A batch in flight is left to the server's answer (see handle_upload), so that
            // it is counted once: delivered, or dropped for the opt-out.
            self.ops.push_back(StoreOp::Clear {
                spare_through: self.uploading_through(),
            });
            self.flush_requested = false;
            self.burst = false;
            self.waiting_since = None;
        }
    }

    /// Nothing but the passage of time (a timer fired).
    pub fn handle_timeout(&mut self, now_ms: i64) {
        self.tick(now_ms);
        if let Upload::InFlight {
            id, deadline_ms, ..
        } = self.upload
        {
            if now_ms >= deadline_ms {
                self.stats_version += 1;
                // The transport never answered: give up on it (the runtime cancels it via
                // poll_abandoned) and retry like any network error. A late answer is ignored.
                self.abandoned.push_back(id);
                let waited = self.policy.upload_timeout;
                self.handle_upload(
                    id,
                    UploadResult::NetworkError(format!(
                        "no answer within {waited:?}: the request was abandoned"
                    )),
                    now_ms,
                );
            }
        }
    }

    /// The runtime is stopping while storage still fails (its shutdown deadline passed
    /// with store operations unfinished): the uncommitted events are counted dropped as
    /// [`DropReason::StoreFailed`] and reported, so that no loss is silent. Returns what
    /// could not be saved, for the runtime to report to its caller.
    pub fn handle_give_up(&mut self, now_ms: i64) -> Unsaved {
        self.tick(now_ms);
        self.stats_version += 1;
        let mut lost = std::mem::take(&mut self.pending);
        // An insert is only ever the operation in flight: `ops` holds deletes, clears
        // and evictions.
        if let Some(StoreOp::Insert(events)) = &self.in_flight_op {
            lost.extend(events.iter().cloned());
        }
        self.pending_bytes = 0;
        self.pending_since = None;
        self.note_dropped(DropReason::StoreFailed, &lost);
        let state = self.state_dirty
            || matches!(self.in_flight_op, Some(StoreOp::SaveState(_)))
            || self.opt_out_unsaved;
        let unsaved = Unsaved {
            events: lost.len() as u64,
            state,
            opt_out: self.opt_out_unsaved,
        };
        if unsaved.state {
            self.notifications.push_back(Notification::StoreError {
                error: if unsaved.opt_out {
                    "storage failed until shutdown: the opt-out choice was not saved".into()
                } else {
                    "storage failed until shutdown: identity and retry state were not saved".into()
                },
            });
        }
        unsaved
    }

    /// The runtime replaced a corrupt store with an empty one: what was stored is lost.
    /// The identity and state are written to the new store. `error` says what happened
    /// and where the old store went; the listener hears it verbatim.
    ///
    /// The events of an upload under way are not lost yet: they are in memory, and their
    /// fate is the server's answer. Delivered, they count as delivered (and only that);
    /// otherwise they are inserted into the new store.
    pub fn handle_store_replaced(&mut self, error: String, now_ms: i64) {
        self.tick(now_ms);
        let mut lost = std::mem::take(&mut self.stored);
        // Events whose delete is still to run were settled already (delivered or dropped,
        // and counted then): not lost again.
        let settled = self.deletes_owed().len() as u64;
        lost.events = lost.events.saturating_sub(settled);
        self.ops.retain(|op| !matches!(op, StoreOp::Delete(_)));
        self.held_delete.clear();
        // A prepared batch was only in the lost store, like the rest of the queue.
        self.next = Next::None;
        self.drop_recent();
        let pending: std::collections::HashSet<u64> = self.pending.iter().map(|e| e.seq).collect();
        let mut uploading = self.upload_events();
        // Copies already waiting in `pending` (a store replaced twice during one upload)
        // were not in the store.
        uploading.retain(|e| !pending.contains(&e.seq));
        if !uploading.is_empty() {
            // Not lost: put back, to be committed to the new store at once.
            lost.events = lost.events.saturating_sub(uploading.len() as u64);
            self.upload_orphaned = true;
            self.readopt(uploading);
            self.force_commit = true;
        }
        self.stored_oldest_ms = None;
        self.stats
            .dropped
            .add(DropReason::StoreCorrupt, lost.events);
        self.notifications.push_back(Notification::StoreError {
            error: error.clone(),
        });
        if lost.events > 0 {
            self.notifications.push_back(Notification::Dropped {
                reason: DropReason::StoreCorrupt,
                count: lost.events,
                message_ids: Vec::new(),
            });
        }
        self.stats.last_error = Some(error);
        self.state_dirty = true;
        if self.pending.is_empty() {
            self.waiting_since = None;
        }
    }

    /// Another writer changed the shared store (a second browser tab on the same IndexedDB
    /// queue): takes its counts, read while no operation of this engine was outstanding, as
    /// the truth, so that caps, schedules and flushes see the other writer's events.
    pub fn handle_store_resync(&mut self, snapshot: &StoreSnapshot, now_ms: i64) {
        self.tick(now_ms);
        self.stats_version += 1;
        self.drop_recent();
        self.stored = Removed {
            events: snapshot.events,
            bytes: snapshot.bytes,
        };
        self.stored_oldest_ms = snapshot.oldest_ms;
        self.next_seq = self.next_seq.max(snapshot.max_seq + 1);
        self.futile_evict = None;
        if self.waiting_since.is_none() {
            self.waiting_since = snapshot.oldest_ms.map(|t| t.min(now_ms));
        } else if self.stored.events == 0 && self.pending.is_empty() {
            self.waiting_since = None;
        }
    }

    /// The result of the store operation last returned by [`Engine::poll_store`].
    pub fn handle_store(&mut self, result: StoreResult, now_ms: i64) {
        self.tick(now_ms);
        let Some(op) = self.in_flight_op.take() else {
            return;
        };
        self.stats_version += 1;
        let failure = match result {
            Ok(outcome) => {
                self.apply_store_outcome(op, outcome, now_ms);
                self.note_store_empty();
                return;
            }
            Err(failure) => failure,
        };
        // Whatever failed, what the store holds is no longer known for sure.
        self.drop_recent();
        self.stats.last_error = Some(failure.to_string());
        match (op, failure.kind) {
            (StoreOp::Insert(events), FailureKind::Full) => {
                self.note_dropped(DropReason::DiskFull, &events);
                if self.pending.is_empty() && self.stored.events == 0 {
                    self.waiting_since = None;
                }
            }
            (StoreOp::Insert(mut events), _) => {
                // Keep them, in order, ahead of anything accepted since.
                self.pending_bytes += events.iter().map(QueuedEvent::stored_bytes).sum::<u64>();
                events.append(&mut self.pending);
                self.pending = events;
                self.pending_since.get_or_insert(now_ms);
                self.store_retry_at = Some(now_ms + STORE_RETRY_MS);
            }
            (StoreOp::Load { .. }, _) => {
                // The flush goes on (`burst` stays set) once the store is retried.
                self.upload = Upload::Idle;
                self.store_retry_at = Some(now_ms + STORE_RETRY_MS);
            }
            (StoreOp::SaveState(_), _) => {
                self.state_dirty = true;
                self.store_retry_at = Some(now_ms + STORE_RETRY_MS);
            }
            (StoreOp::Evict { .. }, _) => {
                self.evict_queued = false;
                self.store_retry_at = Some(now_ms + STORE_RETRY_MS);
            }
            (op, _) => {
                // Delete and Clear: try again, first.
                self.ops.push_front(op);
                self.store_retry_at = Some(now_ms + STORE_RETRY_MS);
            }
        }
        self.notifications.push_back(Notification::StoreError {
            error: failure.to_string(),
        });
    }

    /// The result of the request [`Engine::poll_transmit`] returned with this `id`.
    ///
    /// | response | what happens |
    /// |---|---|
    /// | 2xx | delivered: deleted from the queue, listener told, backoff reset |
    /// | 408, 429, 5xx but 501 and 505 | retried after the longer of our own backoff (exponential, with jitter) and `Retry-After` (capped at `backoff_max`) |
    /// | network error, timeout, no answer within `upload_timeout` | retried with exponential backoff and jitter |
    /// | 413, several events | the batch is split in halves, each sent on its own |
    /// | 413, one event | the event is dropped as too large, and reported |
    /// | 400 or 422, several events | split in halves, to isolate the bad event |
    /// | 400 or 422, one event | the event is dropped as rejected, and reported |
    /// | 401, 403 | the write key was refused: uploads pause for `auth_pause` (or until `flush()`); events keep queuing within the caps; reported |
    /// | anything else: 1xx, 3xx (redirects are never followed), 404, 405, 410, other 4xx, 501, 505 | the endpoint is misconfigured: paused like 401/403, never dropped, never delivered |
    ///
    /// Only an answer about the data itself (400, 413, 422) drops an event, and only once
    /// it is isolated. A `Retry-After` of 0, negative, unreadable or a date already past
    /// never shortens our own backoff.
    ///
    /// Retry state is persisted, so a restart honours it.
    pub fn handle_upload(&mut self, id: u64, result: UploadResult, now_ms: i64) {
        self.tick(now_ms);
        let (events, endpoint) = match std::mem::replace(&mut self.upload, Upload::Idle) {
            Upload::InFlight {
                id: expected,
                events,
                endpoint,
                ..
            } if expected == id => (events, endpoint),
            other => {
                self.upload = other;
                return;
            }
        };
        self.stats_version += 1;
        let blocked = matches!(result, UploadResult::Blocked(_));
        let (status, retry_after, error) = match result {
            UploadResult::Response {
                status,
                retry_after,
            } => (Some(status), retry_after, format!("HTTP {status}")),
            UploadResult::NetworkError(e) => (None, None, e),
            UploadResult::Blocked(e) => (None, None, format!("blocked: {e}")),
        };
        let verdict = classify(status, events.len());
        if matches!(
            verdict,
            Verdict::Delivered | Verdict::Split | Verdict::Drop(_)
        ) {
            // An answer (about the data, at worst): the endpoint works.
            let (note, changed) = self.breakers.succeeded(endpoint);
            self.state_dirty |= changed;
            self.notifications.extend(note);
        }
        if self.state.opted_out && verdict != Verdict::Delivered {
            // Sent before the opt-out and not accepted: purged like the rest of the queue.
            self.splits.clear();
            self.split_endpoint = None;
            self.reject(events, DropReason::OptOut);
            return;
        }
        match verdict {
            Verdict::Delivered => {
                self.stats.delivered += events.len() as u64;
                self.stats.batches_delivered += 1;
                let seqs = events.iter().map(|e| e.seq).collect();
                // The events are done with: their ids move into the notification.
                self.notifications.push_back(Notification::Delivered {
                    message_ids: events.into_iter().map(|e| e.message_id).collect(),
                });
                self.remove_sent(seqs);
            }
            Verdict::Retry => {
                let failure = match status {
                    _ if blocked => Failure::Blocked,
                    None => Failure::Network,
                    Some(status) => Failure::Status {
                        status,
                        retry_after,
                    },
                };
                // The endpoint opens for our backoff, or its `Retry-After` if longer (never
                // shorter: `Retry-After: 0`, or a date already past, must not make a tight
                // loop against a server that is shedding load).
                let (opened, note) = self.breakers.failed(
                    endpoint,
                    &failure,
                    &error,
                    now_ms,
                    &self.policy,
                    &mut self.jitter,
                );
                self.state_dirty = true;
                self.stats.retries += 1;
                self.stats.last_error = Some(error.clone());
                self.notifications.extend(note);
                let retry_in_ms = self.fail_over(events, now_ms);
                self.notifications.push_back(Notification::UploadFailed {
                    status,
                    error,
                    attempts: opened.attempts,
                    retry_in_ms,
                });
            }
            Verdict::Split => {
                // The halves go before anything prepared after them.
                self.unprepare();
                let mut first = events;
                let second = first.split_off(first.len() / 2);
                self.splits.push(second);
                self.split_endpoint = Some(endpoint);
                self.upload = Upload::Ready(Batch::new(first));
            }
            Verdict::Pause(status) => {
                let note = self
                    .breakers
                    .paused(endpoint, status, &error, now_ms, &self.policy);
                self.notifications.extend(note);
                self.state_dirty = true;
                self.stats.last_error = Some(if is_auth_status(status) {
                    format!("HTTP {status}: the write key was refused; uploads paused")
                } else {
                    format!(
                        "HTTP {status}: the endpoint looks misconfigured (not a Segment-compatible \
                         batch endpoint); uploads paused, events kept"
                    )
                });
                // Paused is about every upload: told only when no other endpoint takes over
                // (the endpoint's own pause is told by EndpointOpened).
                if self.fail_over(events, now_ms) > 0 {
                    self.notifications.push_back(Notification::Paused {
                        status,
                        resume_in_ms: millis(self.policy.auth_pause) as u64,
                    });
                }
            }
            Verdict::Drop(reason) => {
                self.stats.last_error = Some(format!("{error}: events rejected"));
                self.reject(events, reason);
            }
        }
    }

    // ----- poll_* -----

    /// The next store operation to execute, if any. Call again after handing its result to
    /// [`Engine::handle_store`]; `None` while one is outstanding.
    pub fn poll_store(&mut self, now_ms: i64) -> Option<&StoreOp> {
        self.tick(now_ms);
        if self.in_flight_op.is_some() || self.store_retry_at.is_some_and(|t| now_ms < t) {
            return None;
        }
        self.store_retry_at = None;
        let op = self.next_store_op(now_ms)?;
        self.in_flight_op = Some(op);
        self.in_flight_op.as_ref()
    }

    /// The next upload request to send, if any. Its `sentAt` is `now_ms`.
    pub fn poll_transmit(&mut self, now_ms: i64) -> Option<Transmit> {
        self.tick(now_ms);
        if !matches!(self.upload, Upload::Ready(_)) {
            return None;
        }
        let sticky = self
            .split_endpoint
            .filter(|&i| !self.breakers.is_open(i, now_ms));
        let Some(endpoint) = sticky.or_else(|| self.breakers.pick(now_ms)) else {
            // Every endpoint opened since the batch was made ready (a clock step): it is
            // stored, and goes when the first one reopens.
            self.end_burst();
            self.request_flush();
            return None;
        };
        let Upload::Ready(Batch {
            mut events,
            mut body,
        }) = std::mem::replace(&mut self.upload, Upload::Idle)
        else {
            unreachable!("checked above");
        };
        if self.breakers.is_probe(endpoint, now_ms)
            && events.len() > self.policy.breaker_probe_events
        {
            // A probe of a half-open endpoint carries a small batch; the rest follows as a
            // split, before anything prepared after it.
            self.unprepare();
            let rest = events.split_off(self.policy.breaker_probe_events);
            self.splits.push(rest);
            body = None;
        }
        self.breakers.note_sent(endpoint);
        self.stats_version += 1;
        let (body, raw_len) = match body {
            Some(body) => body.finish(now_ms),
            None => wire::BatchBody::start(&events).finish(now_ms),
        };
        let id = self.next_transmit_id;
        self.next_transmit_id += 1;
        self.stats.requests += 1;
        self.stats.bytes_sent += body.len() as u64;
        let transmit = Transmit {
            id,
            body,
            gzipped: wire::GZIP,
            events: events.len(),
            raw_bytes: raw_len,
            endpoint,
        };
        self.upload = Upload::InFlight {
            id,
            events,
            endpoint,
            deadline_ms: now_ms.saturating_add(millis(self.policy.upload_timeout)),
        };
        Some(transmit)
    }

    /// A request the engine gave up on ([`Policy::upload_timeout`] passed without an
    /// answer): the runtime cancels it if it can (a browser aborts the `fetch`) and must not
    /// let it hold up later requests (the native runtime leaves the stuck upload thread
    /// behind). Its late answer, if any, is ignored.
    pub fn poll_abandoned(&mut self) -> Option<u64> {
        self.abandoned.pop_front()
    }

    /// The next notification for the delivery listener.
    pub fn poll_notification(&mut self) -> Option<Notification> {
        self.notifications.pop_front()
    }

    /// When the engine next needs [`Engine::handle_timeout`], if nothing else happens first.
    /// `None`: only an input can create work.
    pub fn poll_timeout(&self) -> Option<i64> {
        let mut next: Option<i64> = None;
        let mut at = |t: i64| next = Some(next.map_or(t, |n| n.min(t)));
        if let Some(since) = self.pending_since {
            at(if self.force_commit {
                self.last_now
            } else {
                since.saturating_add(millis(self.policy.commit_interval))
            });
        }
        if let Some(t) = self.upload_due_at() {
            at(t);
        }
        let in_flight = match self.upload {
            Upload::InFlight { deadline_ms, .. } => Some(deadline_ms),
            _ => None,
        };
        if let Some(oldest) = self.stored_oldest_ms.filter(|_| !self.evict_is_futile()) {
            // Eviction takes events strictly older than the cap: wake one ms later.
            at(oldest
                .saturating_add(millis(self.policy.max_event_age))
                .saturating_add(1));
        }
        // Every timer above leads to a store operation (a commit, a load, an eviction):
        // after a store failure, none is due before the retry, and the retry itself is a
        // timer (a failed state save or delete has no other). `None < Some`, so this is
        // the later of the two, or whichever exists.
        // The in-flight deadline needs no store operation: it holds even during a retry.
        let next = next.max(self.store_retry_at);
        match (next, in_flight) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ----- internals -----

    fn tick(&mut self, now_ms: i64) {
        let delta = now_ms - self.last_now;
        if delta < -CLOCK_JUMP_MS {
            self.stats_version += 1;
            // The wall clock went back: move our own deadlines back with it.
            let shift = |t: &mut Option<i64>| {
                if let Some(t) = t {
                    *t += delta;
                }
            };
            shift(&mut self.pending_since);
            shift(&mut self.waiting_since);
            shift(&mut self.store_retry_at);
            self.breakers.shift(delta);
            if let Upload::InFlight { deadline_ms, .. } = &mut self.upload {
                *deadline_ms += delta;
            }
        }
        self.last_now = now_ms;
    }

    fn has_waiting(&self) -> bool {
        self.stored.events > 0 || !self.pending.is_empty()
    }

    /// A batch failed on one endpoint (its breaker is open now): it goes to the next usable
    /// endpoint at once, with the same events and `messageId`s, inside the same burst (no
    /// extra wake-up). When every endpoint is open, the burst ends and the batch is
    /// retried when the first one reopens. Returns how long until it is retried (0: now).
    fn fail_over(&mut self, events: Vec<QueuedEvent>, now_ms: i64) -> u64 {
        if self.breakers.pick(now_ms).is_some() {
            self.upload = Upload::Ready(Batch::new(events));
            return 0;
        }
        self.end_burst();
        // These events were due: retry them when the wait is over, whatever the schedule
        // would say of a fresh queue.
        self.request_flush();
        self.breakers
            .ready_at(now_ms)
            .map_or(0, |t| t.saturating_sub(now_ms).max(0) as u64)
    }

    /// Asks for a flush: every event accepted so far goes, batch after batch.
    fn request_flush(&mut self) {
        self.flush_requested = true;
        self.burst_through = self.next_seq.saturating_sub(1);
    }

    fn end_burst(&mut self) {
        self.splits.clear();
        self.split_endpoint = None;
        // The failed batch is retried first: what was prepared and kept after it no longer
        // follows what is being uploaded.
        self.next = Next::None;
        self.drop_recent();
        self.burst = false;
        self.flush_requested = false;
        if !matches!(self.upload, Upload::InFlight { .. }) {
            self.upload = Upload::Idle;
            self.upload_orphaned = false;
        }
    }

    fn note_dropped(&mut self, reason: DropReason, events: &[QueuedEvent]) {
        if events.is_empty() {
            return;
        }
        self.stats.dropped.add(reason, events.len() as u64);
        self.notifications.push_back(Notification::Dropped {
            reason,
            count: events.len() as u64,
            message_ids: events.iter().map(|e| e.message_id.clone()).collect(),
        });
    }

    fn reject(&mut self, events: Vec<QueuedEvent>, reason: DropReason) {
        self.note_dropped(reason, &events);
        self.remove_sent(events.iter().map(|e| e.seq).collect());
    }

    /// Deletes sent (or rejected) events and moves on to the next split or batch.
    fn remove_sent(&mut self, seqs: Vec<u64>) {
        if self.upload_orphaned {
            let done: std::collections::HashSet<u64> = seqs.iter().copied().collect();
            let before = self.pending.len();
            self.pending.retain(|e| !done.contains(&e.seq));
            if self.pending.len() != before {
                self.pending_bytes = self.pending.iter().map(QueuedEvent::stored_bytes).sum();
                if self.pending.is_empty() {
                    self.pending_since = None;
                }
            }
        }
        if self.splits.is_empty() {
            self.split_endpoint = None;
        }
        if let Some(split) = self.splits.pop() {
            self.ops.push_back(StoreOp::Delete(seqs));
            self.upload = Upload::Ready(Batch::new(split));
            return;
        }
        self.upload_orphaned = false;
        self.upload = Upload::Idle;
        let last = seqs.iter().copied().max().unwrap_or(0);
        if self.burst && last >= self.burst_through && self.tier() == Tier::Prompt {
            // Everything waiting when the flush started is sent: on mains power, events
            // tracked since wait for the schedule (gathering), not a request per answer.
            self.burst = false;
        }
        let go_on = self.burst && self.upload_due_at().is_some_and(|t| t <= self.last_now);
        match std::mem::replace(&mut self.next, Next::None) {
            Next::Ready(batch) if go_on => {
                // The prepared batch goes now; the delete waits until it has been handed
                // out, so that it does not stand between this answer and that request.
                self.upload = Upload::Ready(batch);
                self.held_delete.extend(seqs);
                return;
            }
            other => {
                self.next = other;
                self.unprepare();
            }
        }
        self.ops.push_back(StoreOp::Delete(seqs));
    }

    /// Moves held deletes into the operations, ahead of what was queued after them.
    fn release_held_delete(&mut self) {
        if !self.held_delete.is_empty() {
            let seqs = std::mem::take(&mut self.held_delete);
            self.ops.push_front(StoreOp::Delete(seqs));
        }
    }

    /// Gives up the prepared batch: its events are stored and come right after what is
    /// being uploaded or deleted (a split, an acknowledged batch), so they go back to the
    /// front of `recent`. (After a failure the failed batch goes first: `end_burst`
    /// forgets both instead.)
    fn unprepare(&mut self) {
        if let Next::Ready(batch) = std::mem::replace(&mut self.next, Next::None) {
            if self.policy.batches_from_memory {
                if self.recent_state == Recent::Unknown {
                    self.recent_state = Recent::Prefix;
                }
                for e in batch.events.into_iter().rev() {
                    self.recent_bytes += e.bytes();
                    self.recent.push_front(e);
                }
                self.trim_recent();
            }
        }
    }

    /// Forgets `recent`: the next batches are loaded from the store until it is known
    /// again what the store holds.
    fn drop_recent(&mut self) {
        self.recent.clear();
        self.recent_bytes = 0;
        self.recent_state = Recent::Unknown;
    }

    /// Keeps `recent` within one batch's worth: the newest go (they stay stored), and what
    /// is left is a prefix of what is stored.
    fn trim_recent(&mut self) {
        while self.recent.len() > self.policy.max_batch_events
            || self.recent_bytes > self.policy.max_batch_bytes as u64
        {
            let Some(e) = self.recent.pop_back() else {
                break;
            };
            self.recent_bytes -= e.bytes();
            self.recent_state = Recent::Prefix;
        }
        if self.recent.is_empty() && self.recent_state == Recent::Prefix {
            self.recent_state = Recent::Unknown;
        }
    }

    /// Events of the upload (ready, in flight, prepared, split) and settled events whose
    /// delete is held: with `recent`, everything stored while it is [`Recent::Complete`].
    fn front_count(&self) -> u64 {
        let current = match &self.upload {
            Upload::Ready(b) => b.events.len(),
            Upload::InFlight { events, .. } => events.len(),
            Upload::Idle | Upload::Loading => 0,
        };
        let next = match &self.next {
            Next::Ready(b) => b.events.len(),
            Next::None => 0,
        };
        let splits: usize = self.splits.iter().map(Vec::len).sum();
        (current + next + splits + self.held_delete.len()) as u64
    }

    /// The next batch from `recent`, if it can be trusted to be the front of what is
    /// stored after the upload: no store operation is outstanding or queued (the callers
    /// make sure), and the counts agree. Otherwise `recent` is forgotten.
    fn take_recent(&mut self) -> Option<Vec<QueuedEvent>> {
        if self.recent_state == Recent::Unknown || self.recent.is_empty() {
            return None;
        }
        let after = self.uploading_through();
        let known = self.front_count() + self.recent.len() as u64;
        let counts_agree = match self.recent_state {
            Recent::Complete => self.stored.events == known,
            _ => self.stored.events >= known,
        };
        if !counts_agree || self.recent.front().is_some_and(|e| e.seq <= after) {
            self.drop_recent();
            return None;
        }
        let max_bytes = (self.policy.max_batch_bytes - BATCH_ENVELOPE_BYTES) as u64;
        let (mut n, mut bytes) = (0usize, 0u64);
        for e in &self.recent {
            if n >= self.policy.max_batch_events || (n > 0 && bytes + e.bytes() > max_bytes) {
                break;
            }
            bytes += e.bytes();
            n += 1;
        }
        self.recent_bytes -= bytes;
        let batch = self.recent.drain(..n).collect();
        if self.recent.is_empty() && self.recent_state == Recent::Prefix {
            self.recent_state = Recent::Unknown;
        }
        Some(batch)
    }

    /// Splits loaded events into the next batch and what stays in `recent` (a prefix of
    /// the rest of the store, or all of it when the load read the whole store).
    fn split_loaded(
        &mut self,
        mut events: Vec<QueuedEvent>,
        whole_store: bool,
    ) -> Vec<QueuedEvent> {
        let max_bytes = (self.policy.max_batch_bytes - BATCH_ENVELOPE_BYTES) as u64;
        let (mut n, mut bytes) = (0usize, 0u64);
        for e in &events {
            if n >= self.policy.max_batch_events || (n > 0 && bytes + e.bytes() > max_bytes) {
                break;
            }
            bytes += e.bytes();
            n += 1;
        }
        let rest = events.split_off(n);
        if self.policy.batches_from_memory && !self.state.opted_out {
            self.recent.clear();
            self.recent_bytes = rest.iter().map(QueuedEvent::bytes).sum();
            self.recent.extend(rest);
            self.recent_state = if whole_store {
                Recent::Complete
            } else {
                Recent::Prefix
            };
            self.trim_recent();
        }
        events
    }

    /// How many batches a load reads: two where the second stays in `recent` (one load
    /// for two batches, and the second is prepared while the first is on the wire), else
    /// one.
    fn load_batches(&self) -> usize {
        if self.policy.batches_from_memory {
            2
        } else {
            1
        }
    }

    /// With nothing stored and no upload, `recent` (empty) is exactly what is stored.
    fn note_store_empty(&mut self) {
        if self.policy.batches_from_memory
            && self.stored.events == 0
            && matches!(self.upload, Upload::Idle)
            && matches!(self.next, Next::None)
            && self.held_delete.is_empty()
        {
            self.recent.clear();
            self.recent_bytes = 0;
            self.recent_state = Recent::Complete;
        }
    }

    /// Whether to prepare the batch after the one in flight now: it will go as soon as
    /// the answer comes (the flush goes on after it), and nothing else decides first.
    fn may_prepare_next(&self) -> bool {
        let Upload::InFlight { events, .. } = &self.upload else {
            return false;
        };
        let last = events.iter().map(|e| e.seq).max().unwrap_or(0);
        let tier = self.tier();
        matches!(self.next, Next::None)
            && self.splits.is_empty()
            && !self.upload_orphaned
            && !self.state.opted_out
            && self.burst
            && tier != Tier::Offline
            && (last < self.burst_through || tier != Tier::Prompt)
    }

    /// The events of the current upload (ready, in flight, split).
    fn upload_events(&self) -> Vec<QueuedEvent> {
        let mut all: Vec<QueuedEvent> = match &self.upload {
            Upload::Ready(Batch { events, .. }) | Upload::InFlight { events, .. } => events.clone(),
            Upload::Idle | Upload::Loading => Vec::new(),
        };
        all.extend(self.splits.iter().flatten().cloned());
        all
    }

    /// Events of an upload whose store was replaced (see `upload_orphaned`): back into
    /// memory, ahead of what was accepted since, to be committed to the new store.
    fn readopt(&mut self, mut events: Vec<QueuedEvent>) {
        if events.is_empty() {
            return;
        }
        self.pending_bytes += events.iter().map(QueuedEvent::stored_bytes).sum::<u64>();
        let first = events.iter().map(|e| e.created_ms).min();
        events.append(&mut self.pending);
        events.sort_by_key(|e| e.seq);
        self.pending = events;
        self.pending_since.get_or_insert(self.last_now);
        if let Some(first) = first {
            self.waiting_since = Some(self.waiting_since.map_or(first, |w| w.min(first)));
        }
    }

    /// The last `seq` of the events being uploaded (ready, in flight, prepared or split) or
    /// settled with their delete held, 0 for none: eviction spares them, so that an event
    /// is never both delivered and dropped.
    fn uploading_through(&self) -> u64 {
        let last = |events: &[QueuedEvent]| events.iter().map(|e| e.seq).max().unwrap_or(0);
        let current = match &self.upload {
            Upload::Ready(Batch { events, .. }) | Upload::InFlight { events, .. } => last(events),
            Upload::Idle | Upload::Loading => 0,
        };
        let next = match &self.next {
            Next::Ready(b) => last(&b.events),
            Next::None => 0,
        };
        let held = self.held_delete.iter().copied().max().unwrap_or(0);
        self.splits
            .iter()
            .map(|s| last(s))
            .fold(current.max(next).max(held), u64::max)
    }

    /// An eviction now would remove nothing, like the last one: wait for a change.
    fn evict_is_futile(&self) -> bool {
        // Checked first: walking the batch in flight is only worth it after a futile one.
        self.futile_evict
            .is_some_and(|last| last == (self.uploading_through(), self.stored.events))
    }

    fn load(&self) -> QueueLoad {
        QueueLoad {
            events: self.stored.events + self.pending.len() as u64,
            bytes: self.stored.bytes + self.pending_bytes,
            oldest_since_ms: self.waiting_since,
        }
    }

    /// When the next upload may start, or `None` if none can (offline, nothing queued, or
    /// one under way).
    fn upload_due_at(&self) -> Option<i64> {
        if !matches!(self.upload, Upload::Idle) || self.state.opted_out || !self.has_waiting() {
            return None;
        }
        let tier = self.tier();
        if tier == Tier::Offline {
            return None;
        }
        let due = if self.flush_requested || self.burst {
            self.last_now
        } else {
            schedule::due_at(tier, self.load(), self.last_now, &self.policy)?
        };
        let not_before = self.breakers.ready_at(self.last_now).unwrap_or(i64::MIN);
        Some(due.max(not_before))
    }

    fn next_store_op(&mut self, now_ms: i64) -> Option<StoreOp> {
        if !matches!(self.upload, Upload::Ready(_)) {
            // The batch prepared after the deleted ones has been handed out.
            self.release_held_delete();
        }
        if let Some(op) = self.ops.pop_front() {
            return Some(op);
        }
        if self.state_dirty {
            self.state_dirty = false;
            self.state.endpoints = self.breakers.persisted();
            return Some(StoreOp::SaveState(self.state.clone()));
        }
        if self.breakers.expire(now_ms) {
            self.stats_version += 1;
            // A pause is over: the next upload to that endpoint is a probe.
            self.state_dirty = true;
        }
        let upload_due = self.upload_due_at().is_some_and(|t| t <= now_ms);
        if !self.pending.is_empty() {
            let commit_at = self
                .pending_since
                .unwrap_or(now_ms)
                .saturating_add(millis(self.policy.commit_interval));
            if self.force_commit
                || upload_due
                || now_ms >= commit_at
                || self.pending.len() >= self.policy.commit_max_events
            {
                // Commits of a commit's worth while more than two are waiting, then the rest
                // at once: a drain of a long call queue (or events kept while storage failed)
                // goes as several commits, so that no commit (a transaction, a group record
                // read back whole by each batch load) holds more than twice
                // `commit_max_events`. The rest is not left for its interval: a drain of
                // just over one commit's worth (the paced calls of an app, rung at the
                // 256th) would then commit its last few events apart, a timer and a write
                // more per cycle (the report's paced p99, (f): 22.4 -> 30.0 us).
                let max = self.policy.commit_max_events;
                let events = if self.pending.len() > 2 * max {
                    let events: Vec<QueuedEvent> = self.pending.drain(..max).collect();
                    self.pending_bytes -= events.iter().map(QueuedEvent::stored_bytes).sum::<u64>();
                    events
                } else {
                    self.pending_bytes = 0;
                    self.pending_since = None;
                    std::mem::take(&mut self.pending)
                };
                return Some(StoreOp::Insert(events));
            }
        }
        self.force_commit = false;
        let age_floor = now_ms.saturating_sub(millis(self.policy.max_event_age));
        let over_caps = self.stored.events > self.policy.max_queue_events
            || self.stored.bytes > self.policy.max_queue_bytes
            || self.stored_oldest_ms.is_some_and(|t| t < age_floor);
        if over_caps && !self.evict_queued && !self.evict_is_futile() {
            self.evict_queued = true;
            return Some(StoreOp::Evict {
                max_events: self.policy.max_queue_events,
                max_bytes: self.policy.max_queue_bytes,
                min_created_ms: age_floor,
                spare_through: self.uploading_through(),
            });
        }
        if !self.has_waiting() {
            // Everything was sent (or dropped): the flush is over.
            self.burst = false;
            self.flush_requested = false;
            return None;
        }
        if upload_due {
            if !self.burst {
                self.stats.flushes += 1;
                self.stats_version += 1;
                self.burst_through = self.burst_through.max(self.next_seq.saturating_sub(1));
            }
            self.burst = true;
            self.flush_requested = false;
            if let Some(events) = self.take_recent() {
                self.upload = Upload::Ready(Batch::new(events));
                return None;
            }
            self.upload = Upload::Loading;
            let batches = self.load_batches();
            return Some(StoreOp::Load {
                max_events: self.policy.max_batch_events * batches,
                max_bytes: (self.policy.max_batch_bytes - BATCH_ENVELOPE_BYTES) * batches,
            });
        }
        if self.may_prepare_next() {
            if let Some(events) = self.take_recent() {
                self.next = Next::Ready(Batch::prepared(events));
                return None;
            }
        }
        None
    }

    fn apply_store_outcome(&mut self, op: StoreOp, outcome: StoreOutcome, now_ms: i64) {
        match (op, outcome) {
            (StoreOp::Insert(events), StoreOutcome::Inserted) => {
                let first = events.iter().map(|e| e.created_ms).min();
                self.stored.events += events.len() as u64;
                self.stored.bytes += events.iter().map(QueuedEvent::stored_bytes).sum::<u64>();
                self.stored_oldest_ms = match (self.stored_oldest_ms, first) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                if self.recent_state == Recent::Complete {
                    self.recent_bytes += events.iter().map(QueuedEvent::bytes).sum::<u64>();
                    self.recent.extend(events);
                    self.trim_recent();
                }
            }
            (_, StoreOutcome::Loaded(events)) => {
                if !matches!(self.upload, Upload::Loading) {
                    return;
                }
                // The whole store came back: nothing is stored after these.
                let whole_store = events.len() as u64 == self.stored.events;
                // An opt-out may have arrived while an asynchronous store was loading.
                if events.is_empty() || self.state.opted_out {
                    self.upload = Upload::Idle;
                    self.burst = false;
                } else {
                    let batch = self.split_loaded(events, whole_store);
                    self.upload = Upload::Ready(Batch::new(batch));
                }
            }
            (StoreOp::Delete(seqs), StoreOutcome::Deleted { removed, oldest_ms }) => {
                // Deletes name settled events, which `recent` never holds; anything else
                // (events missing, or one of `recent`) means the counts cannot be trusted.
                let first_recent = self.recent.front().map_or(u64::MAX, |e| e.seq);
                if removed.events != seqs.len() as u64 || seqs.iter().any(|&s| s >= first_recent) {
                    self.drop_recent();
                }
                self.forget(removed, oldest_ms, now_ms)
            }
            (
                StoreOp::Evict { spare_through, .. },
                StoreOutcome::Evicted { evicted, oldest_ms },
            ) => {
                self.evict_queued = false;
                let Evicted { age, count, bytes } = evicted;
                if age.events + count.events + bytes.events > 0 {
                    self.drop_recent();
                }
                // Nothing evictable: what is over a cap is being uploaded.
                self.futile_evict = (age.events + count.events + bytes.events == 0)
                    .then_some((spare_through, self.stored.events));
                for (reason, r) in [
                    (DropReason::Age, age),
                    (DropReason::CountCap, count),
                    (DropReason::BytesCap, bytes),
                ] {
                    if r.events > 0 {
                        self.stats.dropped.add(reason, r.events);
                        self.notifications.push_back(Notification::Dropped {
                            reason,
                            count: r.events,
                            message_ids: Vec::new(),
                        });
                    }
                    self.forget(r, oldest_ms, now_ms);
                }
            }
            (StoreOp::SaveState(saved), StoreOutcome::StateSaved)
                if saved.opted_out == self.state.opted_out =>
            {
                self.opt_out_unsaved = false;
            }
            (_, StoreOutcome::Cleared(removed)) => {
                self.drop_recent();
                if removed.events > 0 {
                    self.stats.dropped.add(DropReason::OptOut, removed.events);
                    self.notifications.push_back(Notification::Dropped {
                        reason: DropReason::OptOut,
                        count: removed.events,
                        message_ids: Vec::new(),
                    });
                }
                self.forget(removed, None, now_ms);
            }
            _ => {}
        }
    }

    fn forget(&mut self, removed: Removed, oldest_ms: Option<i64>, now_ms: i64) {
        self.stored.events = self.stored.events.saturating_sub(removed.events);
        self.stored.bytes = self.stored.bytes.saturating_sub(removed.bytes);
        self.stored_oldest_ms = oldest_ms;
        let pending_oldest = self.pending.first().map(|e| e.created_ms);
        self.waiting_since = match (oldest_ms, pending_oldest, self.waiting_since) {
            (None, None, _) => None,
            // The new oldest waited at least since it was created, but never longer than
            // what was waiting before it.
            (a, b, prev) => {
                let created = a.into_iter().chain(b).min().unwrap_or(now_ms).min(now_ms);
                Some(prev.map_or(created, |p| created.max(p)))
            }
        };
    }
}
