//! The background threads: one owns the engine and the SQLite store, one sends uploads.
//!
//! The engine thread is the quinn-style driver of the sans-IO engine: feed it commands,
//! run its store operations, hand its requests to the upload thread, pass notifications to
//! the listeners, sleep until its next timeout. Uploads run on their own thread so that a
//! slow server never delays group commits (and so never widens the crash window).
//!
//! # Calls in, and the gate
//!
//! Every call reaches this thread through one unbounded queue, its [`Mailbox`], in order. What bounds it
//! is the [`Gate`]: an event is admitted only while fewer than `call_queue_capacity`
//! events (and `call_queue_bytes`) wait between the callers and the engine, counting from
//! the caller's admission until this thread hands the event to the engine. While storage
//! fails, the engine stops [`accepting`](Engine::accepting) more uncommitted events; this
//! thread then parks them instead of handing them over, the gate fills, and `track()`
//! returns `Backpressure`, while control calls (flush, opt-out, conditions, upload answers)
//! keep flowing: a control send never blocks, so a listener (which runs on this thread)
//! can call any method without deadlocking it.
//!
//! The gate also closes the client: admission and the closed flag are one atomic word, so
//! a call either is admitted before `shutdown` closes it, and is then always drained and
//! committed before this thread stops, or returns `Closed`.
//!
//! # Waking this thread: the bell
//!
//! This thread never blocks waiting for the queue (with a channel's `recv`, every send
//! would wake it: a futex syscall on the caller's thread, and two threads contending for
//! every event). It takes the whole queue at once and sleeps with
//! [`std::thread::park_timeout`] until the engine's [`poll_timeout`](Engine::poll_timeout).
//! A sender rings the [`Bell`] (unparks this thread) only when the engine must act now:
//!
//! - the first event while no commit is due (so that the engine arms its commit timer),
//!   and every `commit_max_events`-th event after it (group commit, bounded memory);
//! - every control call (flush, conditions, lifecycle, opt-out, identity, stop) and every
//!   upload answer.
//!
//! Any other event waits in the queue, at most until the commit timer that is already
//! armed, and is committed with the events of that timer: within `commit_interval` of its
//! own acceptance. See [`Bell`] for why no wake-up is ever lost.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

use trailhound_core::engine::Unsaved;
use trailhound_core::store::{self, FailureKind, StoreOp};
use trailhound_core::{
    DeviceConditions, Engine, Identity, Lifecycle, Notification, Policy, QueuedEvent, Stats,
    UploadResult,
};

use crate::client::{now_ms, Listener, WriteKey};
use crate::error::Error;
use crate::store::SqliteStore;
use crate::transport::{HttpRequest, Transport};

/// Events handed to the engine between two releases from the gate: one atomic operation
/// per group instead of per event (the callers' admissions share its cache line), while
/// a large drain still makes room as it goes.
const RELEASE_EVERY: u64 = 32;

/// The file, in the data directory, that keeps an opt-out the database could not save
/// before shutdown (storage failing). Read at the next start, which applies the opt-out
/// (purging the queue) and removes the file once the database holds the choice: a user's
/// opt-out is never lost to a failing disk.
pub(crate) const OPT_OUT_MARKER: &str = "trailhound.opted-out";

/// An identity to persist, numbered in the order the callers changed it. identify and
/// alias travel with their event; reset alone: the numbers put them back in order.
pub(crate) struct Versioned {
    pub version: u64,
    pub identity: Identity,
}

pub(crate) enum Command {
    /// An accepted event, with the identity it makes current (identify, alias).
    Event {
        event: QueuedEvent,
        /// Boxed: rare, and it would double the size of every event in the queue.
        identity: Option<Box<Versioned>>,
    },
    /// A new identity without an event (reset).
    Identity(Box<Versioned>),
    Conditions(DeviceConditions),
    Lifecycle(Lifecycle),
    Flush(Option<Sender<()>>),
    OptOut(bool),
    UploadDone(u64, UploadResult),
    /// Notifications a caller's thread produced (tracking-plan violations and drops), for
    /// the listeners, which run on this thread: a listener never runs inside `track()`,
    /// where a listener that tracks would re-enter it.
    Notify(Box<[Notification]>),
    /// Commit everything, then stop. `flush`: make one last upload attempt (`shutdown`),
    /// or start none (the client was dropped). `deadline`: `None` for no limit.
    Stop {
        deadline: Option<Instant>,
        flush: bool,
    },
}

impl Command {
    /// Sent under [`Gate::enter`] (and so counted in `controls_waiting`).
    fn is_gated_control(&self) -> bool {
        matches!(
            self,
            Command::Identity(_)
                | Command::Conditions(_)
                | Command::Lifecycle(_)
                | Command::Flush(_)
                | Command::OptOut(_)
                | Command::Notify(_)
        )
    }
}

/// Admission to the background thread: how many events (and bytes) wait between callers
/// and the engine, and whether the client is closed. See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    /// `CLOSED | events << EVENT_SHIFT | bytes`.
    word: AtomicU64,
    /// Control calls between their closed check and their send.
    controls: AtomicU64,
    /// Control calls sent and not yet taken by the background thread.
    controls_waiting: AtomicU64,
}

const CLOSED: u64 = 1 << 63;
const EVENT_SHIFT: u32 = 40;
const ONE_EVENT: u64 = 1 << EVENT_SHIFT;
const BYTES_MASK: u64 = ONE_EVENT - 1;
/// Most control calls (flush, conditions, opt-out, reset, lifecycle) waiting for the
/// background thread, say while a store operation waits on a locked database: far more
/// than any app makes, few enough (a few MB) that a loop calling `flush()` cannot grow
/// memory without bound. Beyond it, they return `Backpressure`.
const MAX_CONTROLS_WAITING: u64 = 65_536;
/// Limits beyond the word's fields (with room for racing callers) are clamped.
const MAX_EVENTS: u64 = 1 << 21;
const MAX_BYTES: u64 = 1 << 38;

/// The events waiting in a value of [`Gate`]'s word.
fn events_in(word: u64) -> u64 {
    (word & !CLOSED) >> EVENT_SHIFT
}

/// A control call admitted by [`Gate::enter`]; the send must happen while it lives.
pub(crate) struct Pass<'a>(&'a Gate);

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        self.0.controls.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Gate {
    /// Admits one event of `bytes`, or refuses it: `Closed` after shutdown, `Backpressure`
    /// when the limits are reached. An admitted event must be sent; this thread releases
    /// it when the engine takes it.
    pub fn admit(&self, bytes: usize, max_events: usize, max_bytes: usize) -> Result<(), Error> {
        let bytes = bytes as u64;
        if bytes >= MAX_BYTES {
            return Err(Error::Backpressure);
        }
        let add = ONE_EVENT + bytes;
        let prev = self.word.fetch_add(add, Ordering::SeqCst);
        let waiting_events = events_in(prev);
        let waiting_bytes = prev & BYTES_MASK;
        let refused = if prev & CLOSED != 0 {
            Some(Error::Closed)
        } else if waiting_events >= (max_events as u64).min(MAX_EVENTS)
            || (waiting_bytes > 0 && waiting_bytes + bytes > (max_bytes as u64).min(MAX_BYTES))
        {
            Some(Error::Backpressure)
        } else {
            None
        };
        match refused {
            Some(e) => {
                self.word.fetch_sub(add, Ordering::SeqCst);
                Err(e)
            }
            None => Ok(()),
        }
    }

    /// An admitted event left the gate: taken by the engine, or its send failed.
    pub fn release(&self, bytes: usize) {
        self.release_many(1, bytes as u64);
    }

    /// `events` admitted events of `bytes` in all left the gate (one atomic operation for
    /// a whole drain: the callers' admissions share its cache line).
    fn release_many(&self, events: u64, bytes: u64) {
        if events > 0 {
            self.word
                .fetch_sub(events * ONE_EVENT + bytes, Ordering::SeqCst);
        }
    }

    /// Admits a control call, or `Closed` (or `Backpressure`, past
    /// [`MAX_CONTROLS_WAITING`]). The background thread calls [`Gate::took_control`] when
    /// it takes the command.
    pub fn enter(&self) -> Result<Pass<'_>, Error> {
        self.controls.fetch_add(1, Ordering::SeqCst);
        let pass = Pass(self);
        if self.is_closed() {
            return Err(Error::Closed);
        }
        if self.controls_waiting.fetch_add(1, Ordering::SeqCst) >= MAX_CONTROLS_WAITING {
            self.controls_waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(Error::Backpressure);
        }
        Ok(pass)
    }

    /// The background thread took a control call admitted by [`Gate::enter`] (or its send
    /// failed).
    pub fn took_control(&self) {
        self.controls_waiting.fetch_sub(1, Ordering::SeqCst);
    }

    /// Closes the gate; true for the call that closed it.
    pub fn close(&self) -> bool {
        self.word.fetch_or(CLOSED, Ordering::SeqCst) & CLOSED == 0
    }

    /// Events admitted and not yet taken by the background thread.
    pub fn waiting_events(&self) -> u64 {
        events_in(self.word.load(Ordering::Relaxed))
    }

    /// Whether the client is closed.
    pub fn is_closed(&self) -> bool {
        self.word.load(Ordering::SeqCst) & CLOSED != 0
    }

    /// No admitted event waits for the engine and no admitted control call is still
    /// being sent: after a drain, nothing admitted is left behind.
    fn quiet(&self) -> bool {
        events_in(self.word.load(Ordering::SeqCst)) == 0
            && self.controls.load(Ordering::SeqCst) == 0
    }
}

/// Wakes the engine thread when, and only when, the engine must act now (see the module
/// documentation).
///
/// `sent` counts the events sent since the engine thread last reset it, plus what the
/// engine thread adds while a commit is due ([`Bell::arm`]). A sender sends first and
/// counts after; it rings when its count is 1 (the first while no commit is due) or a
/// multiple of `commit_max_events`. Control calls always ring. The engine thread resets the
/// count (swap to 0) before each drain of the queue, and checks and clears `rung` right
/// before it parks.
///
/// No wake-up is lost. Take an event E whose send (a push under the queue's lock) happened
/// before its count C (an atomic read-modify-write of `sent`; every access is `SeqCst`).
/// 1. If a reset follows C in `sent`'s order, the drain after that reset (a swap under
///    the lock) takes E: E's send happened before C, C before the reset, the reset before
///    the drain. The engine thread never parks between a reset and its drain.
/// 2. Otherwise let R be the last reset before C. After R's drain the engine thread either
///    loops (its next reset follows C: case 1) or parks, and it parks only if `rung` was
///    clear. Then either
///    (a) it armed the bell: a commit is due, the park ends at its deadline at the latest,
///    and the reset after it (case 1) drains E into that commit, which is no later than
///    `commit_interval` after E was accepted (the timer started before E); or
///    (b) the count was 0 after R, so the first count after R (C or an earlier one) saw 1
///    and rang: set `rung`, then unparked. If `rung` was set before the engine thread
///    checked it, the thread did not park. If not, the unpark came after the check: it
///    wakes the park, or leaves a token that ends it at once (nothing runs between the
///    check and the park that could take the token). Either way the thread loops to a
///    reset after C: case 1.
///
/// `rung` is needed because code running on the engine thread (a listener that blocks on
/// a channel) may park too, and take a token meant for the loop.
#[derive(Debug)]
pub(crate) struct Bell {
    sent: AtomicUsize,
    /// `Policy::commit_max_events`.
    every: usize,
    rung: AtomicBool,
    /// The engine thread, set when it starts.
    thread: OnceLock<Thread>,
    /// Rings since start (tests count them).
    rings: AtomicU64,
}

impl Bell {
    pub fn new(commit_max_events: usize) -> Bell {
        Bell {
            sent: AtomicUsize::new(0),
            every: commit_max_events.max(1),
            rung: AtomicBool::new(false),
            thread: OnceLock::new(),
            rings: AtomicU64::new(0),
        }
    }

    /// An event was sent: rings if it is the first while no commit is due, or completes a
    /// group of `commit_max_events`.
    fn event_sent(&self) {
        let n = self.sent.fetch_add(1, Ordering::SeqCst).wrapping_add(1);
        if n == 1 || n.is_multiple_of(self.every) {
            self.ring();
        }
    }

    /// Wakes the engine thread.
    fn ring(&self) {
        self.rings.fetch_add(1, Ordering::Relaxed);
        self.rung.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.get() {
            t.unpark();
        }
    }

    /// How many times the bell rang.
    #[cfg(test)]
    pub fn rings(&self) -> u64 {
        self.rings.load(Ordering::Relaxed)
    }

    /// The engine thread, before it drains the queue.
    fn reset(&self) {
        self.sent.swap(0, Ordering::SeqCst);
    }

    /// The engine thread, after its drain: a commit of `uncommitted` events is due and its
    /// timer will wake this thread, so the next event need not ring, and the group
    /// commit's ring comes when these and the new ones make `commit_max_events` (or
    /// earlier: events already drained may be counted twice).
    fn arm(&self, uncommitted: u64) {
        let base = usize::try_from(uncommitted)
            .unwrap_or(usize::MAX)
            .min(self.every - 1)
            .max(1);
        self.sent.fetch_add(base, Ordering::SeqCst);
    }

    /// The engine thread, right before it parks: whether a ring came since the last check.
    fn take_ring(&self) -> bool {
        self.rung.swap(false, Ordering::SeqCst)
    }
}

/// The engine thread is gone (it ended, or panicked): the command was dropped.
#[derive(Debug)]
pub(crate) struct Gone;

/// Commands kept beyond a drain, at most (about 120 KB): a burst grows the queue's buffers
/// once and reuses them while it lasts; when it is over they shrink back to this.
const QUEUE_KEEP: usize = 1024;

/// The way into the engine thread: its command queue and its [`Bell`]. Cheap to clone.
///
/// The queue is a vector behind a lock that the engine thread swaps for an empty one of
/// its own (double buffering), so that a call's hand-off is a lock, a push into memory
/// that is already there, and an unlock: no allocation (`std::sync::mpsc` allocates a
/// block every 31 messages, which was most of `track()`'s 99th percentile in a burst),
/// no syscall unless the bell rings.
#[derive(Clone)]
pub(crate) struct Mailbox(Arc<MailboxInner>);

struct MailboxInner {
    queue: Mutex<Queue>,
    bell: Bell,
}

#[derive(Default)]
struct Queue {
    commands: Vec<Command>,
    /// The engine thread ended: commands are refused.
    closed: bool,
}

impl Mailbox {
    pub fn new(commit_max_events: usize) -> Mailbox {
        Mailbox(Arc::new(MailboxInner {
            queue: Mutex::new(Queue::default()),
            bell: Bell::new(commit_max_events),
        }))
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        // Nothing panics while holding it (a push that cannot allocate aborts).
        self.0.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, cmd: Command) -> Result<(), Gone> {
        let mut queue = self.queue();
        if queue.closed {
            drop(queue);
            // `cmd` is dropped outside the lock.
            return Err(Gone);
        }
        queue.commands.push(cmd);
        Ok(())
    }

    /// Sends an accepted event; rings only as [`Bell`] says.
    pub fn post_event(&self, cmd: Command) -> Result<(), Gone> {
        self.push(cmd)?;
        self.0.bell.event_sent();
        Ok(())
    }

    /// Sends a command that can wait for the next wake-up, without ringing: one that
    /// follows an event just sent (whose bell, or the commit timer it arms, wakes this
    /// thread within `commit_interval`).
    pub fn post_quiet(&self, cmd: Command) -> Result<(), Gone> {
        self.push(cmd)
    }

    /// Sends a command the engine acts on at once, and rings.
    pub fn post(&self, cmd: Command) -> Result<(), Gone> {
        let sent = self.push(cmd);
        self.0.bell.ring();
        sent
    }

    /// The engine thread: swaps `into` (empty) for the commands waiting, in order.
    fn take(&self, into: &mut Vec<Command>) {
        debug_assert!(into.is_empty());
        std::mem::swap(&mut self.queue().commands, into);
    }

    /// The engine thread ended: later commands are refused; those waiting are dropped
    /// (a flush waiter's sender with them, which ends its wait).
    fn close(&self) {
        let left = {
            let mut queue = self.queue();
            queue.closed = true;
            std::mem::take(&mut queue.commands)
        };
        drop(left);
    }

    pub fn bell(&self) -> &Bell {
        &self.0.bell
    }
}

/// Closes the mailbox when the engine thread ends, also if it panics.
struct CloseGuard(Mailbox);

impl Drop for CloseGuard {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// How the background thread ended, for `shutdown` (any number of callers) to wait on.
#[derive(Debug, Default)]
pub(crate) struct Finish {
    ended: Mutex<Option<Ended>>,
    cond: Condvar,
}

/// How the background thread ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// Everything accepted was committed (uploads not done stay queued).
    Clean,
    /// Storage kept failing until the deadline: this was not saved.
    Unsaved(Unsaved),
    /// The thread panicked (a bug): what it held in memory is lost.
    Crashed,
}

impl Finish {
    fn set(&self, ended: Ended) {
        let mut slot = self.ended.lock().unwrap_or_else(|e| e.into_inner());
        slot.get_or_insert(ended);
        self.cond.notify_all();
    }

    /// Waits until the thread ended, at most until `deadline` (`None`: no limit).
    pub fn wait(&self, deadline: Option<Instant>) -> Option<Ended> {
        let mut slot = self.ended.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(ended) = *slot {
                return Some(ended);
            }
            slot = match deadline {
                None => self.cond.wait(slot).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return None;
                    }
                    self.cond
                        .wait_timeout(slot, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
    }
}

/// Marks the thread crashed if it unwinds before reporting how it ended.
struct FinishGuard(Arc<Finish>);

impl Drop for FinishGuard {
    fn drop(&mut self) {
        self.0.set(Ended::Crashed);
    }
}

pub(crate) struct WorkerConfig {
    pub policy: Policy,
    pub data_dir: PathBuf,
    /// The checked endpoints' base URLs, in order of preference (at least one).
    pub endpoints: Vec<String>,
    pub write_key: WriteKey,
    pub transport: Arc<dyn Transport>,
    pub listeners: Arc<Vec<Arc<dyn Listener>>>,
    pub conditions: DeviceConditions,
    pub seed: u64,
    pub max_pages: Option<u32>,
    pub gate: Arc<Gate>,
    /// This thread's own mailbox, for the upload thread's answers.
    pub mailbox: Mailbox,
    pub finish: Arc<Finish>,
}

type Ready = Result<(Identity, bool), Error>;

/// Calls a listener, containing any panic in it.
pub(crate) fn call_listener(listener: &dyn Listener, n: &Notification) {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| listener.on_notification(n)));
    if r.is_err() {
        log::error!("a Trailhound listener panicked; delivery goes on");
    }
}

pub(crate) fn spawn(
    config: WorkerConfig,
    ready: Sender<Ready>,
    stats: Arc<Mutex<Stats>>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("trailhound".into())
        .spawn(move || {
            let _ = config.mailbox.bell().thread.set(std::thread::current());
            let finish = FinishGuard(Arc::clone(&config.finish));
            // Declared after `finish`, so dropped (closed) before it if this thread panics.
            let closing = CloseGuard(config.mailbox.clone());
            let Some(mut worker) = Worker::open(config, &ready, stats) else {
                return;
            };
            let ended = worker.run();
            // Dropped (the lock file released) before anyone waiting hears of the end, so
            // that a new client can open the directory as soon as `shutdown` returns.
            drop(worker);
            drop(closing);
            finish.0.set(ended);
        })
}

struct Worker {
    engine: Engine,
    store: SqliteStore,
    data_dir: PathBuf,
    transport: Arc<dyn Transport>,
    /// Where upload threads send their answers (this thread's own queue and bell).
    mailbox: Mailbox,
    /// The upload thread's queue; `None` until the first upload, and after a request was
    /// abandoned (its thread is left behind, blocked in the transport).
    upload_tx: Option<Sender<(u64, HttpRequest)>>,
    /// Upload threads alive, stuck ones included.
    upload_threads: Arc<AtomicUsize>,
    /// Each endpoint's batch URL, in the order given to the engine: a
    /// [`trailhound_core::Transmit`]'s `endpoint` indexes it.
    batch_urls: Vec<String>,
    auth: String,
    listeners: Arc<Vec<Arc<dyn Listener>>>,
    stats: Arc<Mutex<Stats>>,
    /// The engine's [`stats_version`](Engine::stats_version) when `stats` was published,
    /// and its uncommitted events then.
    published: (u64, u64),
    flush_waiters: Vec<Sender<()>>,
    gate: Arc<Gate>,
    /// Events handed to the engine and bytes, not yet released from the gate
    /// ([`Worker::release_taken`]).
    taken: (u64, u64),
    /// Events admitted but not handed to the engine while it is not accepting.
    parked: VecDeque<(QueuedEvent, Option<Box<Versioned>>)>,
    /// The newest identity version handed to the engine.
    identity_version: u64,
    /// The last store operation failed and the engine will retry it.
    store_retrying: bool,
    /// The opt-out marker file exists.
    marker: bool,
    /// Whether uploads may start (not once a dropped client is stopping).
    uploads: bool,
    /// Whether uploads wait for the callers ([`Worker::ingest_first`]).
    upload_hold: UploadHold,
}

/// Uploads waiting while the callers are behind ([`Policy::ingest_first`]).
#[derive(Debug, Default)]
struct UploadHold {
    /// When the callers were first seen behind, this time.
    since: Option<Instant>,
}

impl UploadHold {
    /// Whether uploads wait at `now`: while the callers are `behind`, for at most `max`
    /// since they fell behind.
    fn hold(&mut self, behind: bool, max: Duration, now: Instant) -> bool {
        if !behind {
            self.since = None;
            return false;
        }
        let since = *self.since.get_or_insert(now);
        now.saturating_duration_since(since) < max
    }
}

impl Worker {
    fn open(
        config: WorkerConfig,
        ready: &Sender<Ready>,
        stats: Arc<Mutex<Stats>>,
    ) -> Option<Worker> {
        let opened = match SqliteStore::open(&config.data_dir) {
            Ok(o) => o,
            Err(e) => {
                let _ = ready.send(Err(e.into()));
                return None;
            }
        };
        let mut store = opened.store;
        if let Some(pages) = config.max_pages {
            store.set_max_pages(pages);
        }
        let snapshot = match store::QueueStore::snapshot(&mut store) {
            Ok(s) => s,
            Err(e) => {
                let _ = ready.send(Err(Error::Config(format!("cannot read the queue: {e}"))));
                return None;
            }
        };
        let now = now_ms();
        let mut engine = Engine::new(
            config.policy.clone(),
            config.seed,
            snapshot,
            Identity::new(uuid::Uuid::new_v4()),
            now,
        );
        // Before anything else: the saved breaker state of each URL applies from the start.
        engine.set_endpoints(&config.endpoints);
        engine.handle_conditions(config.conditions, now);
        if let Some(message) = opened.recovered {
            engine.handle_store_replaced(message, now);
        }
        let mut marker = config.data_dir.join(OPT_OUT_MARKER).exists();
        if marker && engine.opted_out() {
            // The database got the opt-out after all.
            let _ = std::fs::remove_file(config.data_dir.join(OPT_OUT_MARKER));
            marker = false;
        }
        if marker {
            // An opt-out the database could not save last time: it holds now (the queue is
            // purged), and the marker goes once the database has saved it.
            log::warn!("trailhound: applying an opt-out that storage could not save before");
            engine.handle_opt_out(true, now);
        }
        let first = engine.stats();
        let published = (engine.stats_version(), first.uncommitted_events);
        *stats.lock().unwrap_or_else(|e| e.into_inner()) = first;
        let _ = ready.send(Ok((engine.identity().clone(), engine.opted_out())));
        Some(Worker {
            engine,
            store,
            data_dir: config.data_dir,
            transport: config.transport,
            mailbox: config.mailbox,
            upload_tx: None,
            upload_threads: Arc::new(AtomicUsize::new(0)),
            batch_urls: config
                .endpoints
                .iter()
                .map(|base| format!("{base}{}", trailhound_core::wire::BATCH_PATH))
                .collect(),
            auth: trailhound_core::wire::basic_auth(&config.write_key.0),
            listeners: config.listeners,
            published,
            stats,
            flush_waiters: Vec::new(),
            gate: config.gate,
            taken: (0, 0),
            parked: VecDeque::new(),
            identity_version: 0,
            store_retrying: false,
            marker,
            uploads: true,
            upload_hold: UploadHold::default(),
        })
    }

    fn run(&mut self) -> Ended {
        let mut commands = Vec::new();
        let (deadline, flush) = loop {
            // Reset before draining: see `Bell` for why no wake-up is lost.
            self.mailbox.bell().reset();
            self.mailbox.take(&mut commands);
            let now = now_ms();
            self.engine.handle_timeout(now);
            let taken = commands.len();
            let stop = self.handle_all(&mut commands, now);
            if let Some(stop) = stop {
                break stop;
            }
            loop {
                self.feed_parked(false);
                self.drive();
                // A commit makes room: hand over more parked events, until none are left or
                // the engine waits for storage again (its retry is a timer).
                if self.parked.is_empty() || !self.engine.accepting() {
                    break;
                }
            }
            let uncommitted = self.publish();
            if commands.capacity() > QUEUE_KEEP && taken <= QUEUE_KEEP / 4 {
                // The burst is over: give its memory back.
                commands.shrink_to(QUEUE_KEEP);
            }
            self.sleep(uncommitted);
        };
        self.stop(&mut commands, deadline, flush)
    }

    /// Hands `commands` to the engine, in order, leaving the vector empty. A stop ends it:
    /// the commands after it stay for [`Worker::stop`].
    fn handle_all(
        &mut self,
        commands: &mut Vec<Command>,
        now: i64,
    ) -> Option<(Option<Instant>, bool)> {
        let mut stop = None;
        let mut taken = commands.drain(..);
        for cmd in taken.by_ref() {
            if let Command::Stop { deadline, flush } = cmd {
                stop = Some((deadline, flush));
                break;
            }
            self.handle(cmd, now);
        }
        if stop.is_some() {
            let rest: Vec<Command> = taken.collect();
            *commands = rest;
        } else {
            // Empty, its memory kept for the next drain.
            drop(taken);
        }
        self.release_taken();
        stop
    }

    /// Parks until the engine's next timeout or a ring. With `uncommitted` events, a
    /// commit is due: its timer wakes this thread, and the bell is armed so that events
    /// sent meanwhile do not ring (they join that commit).
    fn sleep(&mut self, uncommitted: u64) {
        if uncommitted == 0 && self.gate.quiet() {
            // Idle: nothing waits to be committed (see `SqliteStore::idle`).
            self.store.idle();
        }
        let timeout = self.engine.poll_timeout();
        if uncommitted > 0 && timeout.is_some() {
            self.mailbox.bell().arm(uncommitted);
        }
        self.park(timeout.map(until));
    }

    /// Parks for at most `wait` (`None`: until a ring), unless a ring came since the last
    /// park.
    fn park(&self, wait: Option<Duration>) {
        if self.mailbox.bell().take_ring() {
            return;
        }
        match wait {
            Some(wait) if wait.is_zero() => {}
            Some(wait) => std::thread::park_timeout(wait),
            None => std::thread::park(),
        }
    }

    /// Stops: takes every call admitted before the gate closed, commits, makes the last
    /// flush attempt (`flush`), keeps retrying failing store operations until `deadline`,
    /// then gives up on what is left, reporting it.
    fn stop(
        &mut self,
        commands: &mut Vec<Command>,
        deadline: Option<Instant>,
        flush: bool,
    ) -> Ended {
        self.uploads = flush;
        // Everything admitted before the gate closed is taken, whatever the engine's
        // memory limit: it is in memory already, and is now committed or reported.
        self.feed_parked(true);
        loop {
            let quiet = self.gate.quiet();
            self.handle_all_stopping(commands);
            if quiet {
                break;
            }
            // A caller is between its admission and its send (microseconds).
            std::thread::sleep(Duration::from_micros(200));
        }
        let now = now_ms();
        if flush {
            // Like going to the background: commit everything, and one flush attempt if
            // the network, backoff and pause allow.
            self.engine.handle_lifecycle(Lifecycle::Background, now);
        } else {
            self.engine.handle_commit_now(now);
        }
        let past = |d: Option<Instant>| d.is_some_and(|d| Instant::now() >= d);
        loop {
            self.drive();
            let committed = !self.store_retrying && self.publish() == 0;
            if committed && !(flush && self.engine.is_flushing()) {
                break;
            }
            if past(deadline) {
                break;
            }
            let mut wait = self.engine.poll_timeout().map(until);
            if let Some(d) = deadline {
                let left = d.saturating_duration_since(Instant::now());
                wait = Some(wait.map_or(left, |w| w.min(left)));
            }
            // Every command that can still come (an upload's answer) rings.
            self.park(wait);
            self.engine.handle_timeout(now_ms());
            self.handle_all_stopping(commands);
            if past(deadline) {
                // Starting another store operation now could outlast the deadline by the
                // busy timeout; give up on what still fails instead.
                break;
            }
        }
        let now = now_ms();
        if !self.store_retrying {
            // Whatever happened (a flush still under way), commit what was accepted.
            self.engine.handle_commit_now(now);
            self.drive_store();
        }
        let ended = if self.store_retrying {
            let unsaved = self.engine.handle_give_up(now_ms());
            if unsaved.opt_out {
                self.keep_opt_out_choice();
            }
            log::error!(
                "trailhound: storage kept failing until shutdown: {} events not saved{}",
                unsaved.events,
                if unsaved.state { ", nor the state" } else { "" }
            );
            if unsaved.events == 0 && !unsaved.state {
                // Only a delete or a load was failing: nothing is lost (delivered events
                // not yet deleted go again at the next start, with the same messageIds).
                Ended::Clean
            } else {
                Ended::Unsaved(unsaved)
            }
        } else {
            Ended::Clean
        };
        self.notify();
        let _ = self.publish();
        self.release_flush_waiters();
        // The upload thread ends when its channel closes; a request under way finishes (or
        // times out) on its own, and its answer is not recorded: the batch stays queued
        // and goes again at the next start, with the same messageIds.
        self.upload_tx = None;
        ended
    }

    /// The opt-out (or opt-in) could not be saved in the database: a marker file keeps
    /// an opt-out for the next start; an unsaved opt-in removes it (the database, which
    /// never saw the opt-out, then says opted in).
    fn keep_opt_out_choice(&mut self) {
        let path = self.data_dir.join(OPT_OUT_MARKER);
        let result = if self.engine.opted_out() {
            write_private(&path, b"opted out; storage could not save it\n")
        } else {
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                other => other,
            }
        };
        if let Err(e) = result {
            log::error!(
                "trailhound: {}: {e}; the opt-out choice is lost",
                path.display()
            );
        }
    }

    /// The commands waiting, while stopping: events are taken whatever the engine's
    /// memory limit.
    fn handle_all_stopping(&mut self, commands: &mut Vec<Command>) {
        // Those left after the stop first, then those waiting in the mailbox.
        loop {
            let now = now_ms();
            for cmd in commands.drain(..) {
                match cmd {
                    Command::Event { event, identity } => self.take_event(event, identity, now),
                    other => self.handle(other, now),
                }
            }
            self.mailbox.take(commands);
            if commands.is_empty() {
                break;
            }
        }
        self.release_taken();
    }

    /// Feeds one command to the engine.
    fn handle(&mut self, cmd: Command, now: i64) {
        if cmd.is_gated_control() {
            self.gate.took_control();
        }
        match cmd {
            Command::Event { event, identity } => {
                if self.parked.is_empty() && self.engine.accepting() {
                    self.take_event(event, identity, now);
                } else {
                    self.parked.push_back((event, identity));
                }
            }
            Command::Identity(v) => self.take_identity(*v),
            Command::Conditions(c) => self.engine.handle_conditions(c, now),
            Command::Lifecycle(l) => self.engine.handle_lifecycle(l, now),
            Command::Flush(waiter) => {
                self.engine.handle_flush(now);
                if let Some(w) = waiter {
                    self.flush_waiters.push(w);
                }
            }
            Command::OptOut(out) => self.engine.handle_opt_out(out, now),
            Command::UploadDone(id, result) => self.engine.handle_upload(id, result, now),
            Command::Notify(notes) => {
                for n in notes.iter() {
                    for l in self.listeners.iter() {
                        call_listener(l.as_ref(), n);
                    }
                }
            }
            // Handled by the loops.
            Command::Stop { .. } => {}
        }
    }

    /// Hands parked events to the engine while it accepts them (`all`: regardless).
    fn feed_parked(&mut self, all: bool) {
        let now = now_ms();
        while all || self.engine.accepting() {
            let Some((event, identity)) = self.parked.pop_front() else {
                break;
            };
            self.take_event(event, identity, now);
        }
        self.release_taken();
    }

    /// Releases from the gate the events handed to the engine since the last call: after
    /// every batch of commands, before anything reads the gate.
    fn release_taken(&mut self) {
        let (events, bytes) = std::mem::take(&mut self.taken);
        self.gate.release_many(events, bytes);
    }

    /// Hands one event to the engine, at `now` (the time of the drain it came in: one
    /// clock read per drain, not per event).
    fn take_event(&mut self, event: QueuedEvent, identity: Option<Box<Versioned>>, now: i64) {
        self.taken.0 += 1;
        self.taken.1 += event.stored_bytes();
        if self.taken.0 >= RELEASE_EVERY {
            // Room for callers as the engine takes a large drain, not only at its end.
            self.release_taken();
        }
        if let Some(v) = identity {
            self.take_identity(*v);
        }
        self.engine.handle_event(event, now);
        if !self.store_retrying
            && self.engine.uncommitted() >= 2 * self.engine.policy().commit_max_events
        {
            // A long drain is committed as it comes, not after it ends: a long call queue
            // is then never held twice (in the queue and in the engine). From twice a
            // commit's worth, so that a drain of just over one (an app's paced calls,
            // rung at the 256th) commits after it, in one piece, as before. Not while
            // storage fails: each retry may wait out a locked database, and the loop
            // paces them.
            self.drive_store();
        }
    }

    /// Persists an identity unless a newer one was already handed over (a reset that
    /// overtook a parked identify).
    fn take_identity(&mut self, v: Versioned) {
        if v.version > self.identity_version {
            self.identity_version = v.version;
            self.engine.handle_identity(v.identity);
        }
    }

    fn drive(&mut self) {
        self.drive_store();
        while let Some(id) = self.engine.poll_abandoned() {
            // The engine gave up on this request (no answer within upload_timeout). The
            // thread sending it is left behind: it holds only the transport and a sender
            // for its answer, which will be ignored. Later requests get a fresh thread.
            if self.upload_tx.take().is_some() {
                log::warn!(
                    "trailhound: upload {id} got no answer in time; its thread is left behind \
                     ({} upload threads alive)",
                    self.upload_threads.load(Ordering::Relaxed)
                );
            }
        }
        let now = now_ms();
        if self.uploads && !self.ingest_first() {
            if let Some(t) = self.engine.poll_transmit(now) {
                // The engine only names endpoints it was given; the first is the fallback
                // for an index it never hands out.
                let url = self
                    .batch_urls
                    .get(t.endpoint)
                    .unwrap_or(&self.batch_urls[0]);
                let request = HttpRequest::batch(url, &self.auth, t.body);
                if let Err(error) = self.send_upload(t.id, request) {
                    self.engine
                        .handle_upload(t.id, UploadResult::NetworkError(error), now);
                }
            }
        }
        self.drive_store();
        self.notify();
        if !self.engine.is_flushing() && !self.flush_waiters.is_empty() {
            // The waiters read the stats next.
            self.publish();
            self.release_flush_waiters();
        }
    }

    /// Whether uploads wait for now ([`Policy::ingest_first`]): more than a commit's worth
    /// of calls wait for this thread and storage takes them, for no longer than the
    /// policy's wait since they started waiting. Not while storage fails: delivering is
    /// then what makes room.
    fn ingest_first(&mut self) -> bool {
        let policy = self.engine.policy();
        let behind = self.parked.is_empty()
            && self.engine.accepting()
            && self.gate.waiting_events() > policy.commit_max_events as u64;
        let max = policy.ingest_first;
        self.upload_hold.hold(behind, max, Instant::now())
    }

    /// Hands a request to the upload thread, starting one if there is none.
    fn send_upload(&mut self, id: u64, request: HttpRequest) -> Result<(), String> {
        if self.upload_tx.is_none() {
            self.upload_tx = Some(self.spawn_uploader()?);
        }
        let tx = self.upload_tx.as_ref().expect("just set");
        tx.send((id, request)).map_err(|_| {
            self.upload_tx = None;
            "the upload thread stopped".to_owned()
        })
    }

    fn spawn_uploader(&self) -> Result<Sender<(u64, HttpRequest)>, String> {
        let (tx, rx) = mpsc::channel::<(u64, HttpRequest)>();
        let transport = Arc::clone(&self.transport);
        let done_tx = self.mailbox.clone();
        let alive = Arc::clone(&self.upload_threads);
        alive.fetch_add(1, Ordering::Relaxed);
        let spawned = std::thread::Builder::new()
            .name("trailhound-upload".into())
            .spawn(move || {
                for (id, request) in rx {
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        transport.send(&request)
                    }))
                    .unwrap_or_else(|_| {
                        UploadResult::NetworkError("the transport panicked".into())
                    });
                    if done_tx.post(Command::UploadDone(id, result)).is_err() {
                        break;
                    }
                }
                alive.fetch_sub(1, Ordering::Relaxed);
            });
        match spawned {
            Ok(_) => Ok(tx),
            Err(e) => {
                self.upload_threads.fetch_sub(1, Ordering::Relaxed);
                Err(format!("cannot start an upload thread: {e}"))
            }
        }
    }

    fn notify(&mut self) {
        while let Some(n) = self.engine.poll_notification() {
            match &n {
                Notification::StoreError { error } => log::warn!("trailhound: {error}"),
                Notification::UploadFailed { error, .. } => {
                    log::info!("trailhound: upload failed: {error}")
                }
                Notification::EndpointOpened {
                    url,
                    reason,
                    retry_in_ms,
                } => log::warn!(
                    "trailhound: endpoint {url} set aside ({}) for {retry_in_ms} ms",
                    reason.as_str()
                ),
                Notification::EndpointClosed { url } => {
                    log::info!("trailhound: endpoint {url} answers again")
                }
                _ => {}
            }
            for l in self.listeners.iter() {
                call_listener(l.as_ref(), &n);
            }
        }
    }

    fn release_flush_waiters(&mut self) {
        for w in self.flush_waiters.drain(..) {
            let _ = w.send(());
        }
    }

    /// Makes the engine's stats what `Client::stats` reads, if they may have changed;
    /// returns the uncommitted events. Called once per wake-up (before parking, before
    /// releasing flush waiters, at the end), not per event or store operation.
    fn publish(&mut self) -> u64 {
        let version = self.engine.stats_version();
        if version != self.published.0 {
            let stats = self.engine.stats();
            self.published = (version, stats.uncommitted_events);
            *self.stats.lock().unwrap_or_else(|e| e.into_inner()) = stats;
        }
        // The bell is armed on this count: a stale one could hold events back.
        debug_assert_eq!(self.published.1, self.engine.stats().uncommitted_events);
        self.published.1
    }

    /// Runs store operations until the engine has none left (or waits to retry one).
    fn drive_store(&mut self) {
        loop {
            let now = now_ms();
            let (result, replaced, saved_state) = {
                let Some(op) = self.engine.poll_store(now) else {
                    break;
                };
                let insert = matches!(op, StoreOp::Insert(_));
                let saved_state = matches!(op, StoreOp::SaveState(_));
                let result = store::execute(&mut self.store, op);
                let (result, replaced) = match result {
                    Err(f) if f.kind == FailureKind::Corrupt => {
                        match self.store.replace_corrupt() {
                            Ok(message) => (store::execute(&mut self.store, op), Some(message)),
                            Err(e) => {
                                log::error!("trailhound: {f}; replacing the store failed: {e}");
                                (Err(f), None)
                            }
                        }
                    }
                    other => (other, None),
                };
                // A full disk drops the events of an insert (reported); every other
                // failure is retried by the engine.
                self.store_retrying = match &result {
                    Ok(_) => false,
                    Err(f) => !(insert && f.kind == FailureKind::Full),
                };
                let saved_state = saved_state && result.is_ok();
                (result, replaced, saved_state)
            };
            if saved_state && self.marker {
                // The database holds the opt-out choice now.
                let path = self.data_dir.join(OPT_OUT_MARKER);
                if let Err(e) = std::fs::remove_file(&path) {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        log::warn!("trailhound: {}: {e}", path.display());
                    }
                }
                self.marker = false;
            }
            if let Some(message) = replaced {
                self.engine.handle_store_replaced(message, now);
            }
            self.engine.handle_store(result, now_ms());
        }
    }
}

/// Time until the wall clock reads `at` (epoch ms) or later, to the microsecond: a park
/// that ends in the millisecond before `at` would find nothing due and park again.
fn until(at: i64) -> Duration {
    let Ok(at) = u64::try_from(at) else {
        return Duration::ZERO;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Duration::from_millis(at).saturating_sub(now)
}

/// Whether the current thread is this client's background thread (listeners run there).
pub(crate) fn on_thread(id: Option<std::thread::ThreadId>) -> bool {
    id == Some(std::thread::current().id())
}

/// Writes a small file readable by the app's user only (0600 on Unix), like the queue.
fn write_private(path: &std::path::Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Uploads wait while the callers are behind, for at most the policy's wait since they
    /// fell behind; catching up ends the wait and starts the count again.
    #[test]
    fn uploads_wait_while_behind_for_at_most_the_wait() {
        let max = Duration::from_secs(1);
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut hold = UploadHold::default();
        assert!(!hold.hold(false, max, at(0)));
        assert!(hold.hold(true, max, at(0)));
        assert!(hold.hold(true, max, at(999)));
        assert!(
            !hold.hold(true, max, at(1_000)),
            "a caller that never slows down"
        );
        assert!(!hold.hold(true, max, at(5_000)));
        assert!(!hold.hold(false, max, at(5_001)));
        assert!(hold.hold(true, max, at(5_002)), "behind again: a new wait");
        assert!(
            !hold.hold(true, Duration::ZERO, at(5_003)),
            "no wait at all"
        );
    }
}
