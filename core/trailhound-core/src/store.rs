//! The queue's storage: the operations the engine asks for, the results it takes back,
//! the [`QueueStore`] trait that synchronous backends implement, an in-memory backend,
//! and the conformance suite every backend must pass.
//!
//! The engine never calls a store. It hands out [`StoreOp`]s from `poll_store` and takes
//! [`StoreResult`]s in `handle_store`, so that an asynchronous backend (IndexedDB) can
//! drive it exactly like SQLite does. [`execute`] is the glue for synchronous ones.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::breaker::EndpointState;
use crate::message::{Identity, QueuedEvent};
use crate::retry::RetryState;

/// Everything besides the events that survives a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "StoredState")]
pub struct PersistedState {
    /// The device and user identity.
    pub identity: Identity,
    /// The user opted out of collection.
    pub opted_out: bool,
    /// Each endpoint's breaker: backoff, `Retry-After` wait, pause ([`crate::breaker`]).
    pub endpoints: Vec<EndpointState>,
}

/// [`PersistedState`] as stored by any version: before there were several endpoints, the
/// one endpoint's retry state was saved as `retry`.
#[derive(Deserialize)]
struct StoredState {
    identity: Identity,
    opted_out: bool,
    #[serde(default)]
    endpoints: Vec<EndpointState>,
    #[serde(default)]
    retry: Option<RetryState>,
}

impl From<StoredState> for PersistedState {
    fn from(s: StoredState) -> Self {
        PersistedState {
            identity: s.identity,
            opted_out: s.opted_out,
            endpoints: PersistedState::endpoints_or_legacy(s.endpoints, s.retry),
        }
    }
}

impl PersistedState {
    /// The saved endpoints, or, from a store written before there were several, its one
    /// endpoint's retry state (no URL: it belongs to the first endpoint configured).
    pub fn endpoints_or_legacy(
        endpoints: Vec<EndpointState>,
        legacy: Option<RetryState>,
    ) -> Vec<EndpointState> {
        match legacy {
            Some(retry) if endpoints.is_empty() => vec![EndpointState {
                url: String::new(),
                retry,
                reason: None,
            }],
            _ => endpoints,
        }
    }
}

/// What a store holds when it is opened.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StoreSnapshot {
    /// The saved state, if the store has ever saved one.
    pub state: Option<PersistedState>,
    /// Queued events.
    pub events: u64,
    /// Their bytes, as [`QueuedEvent::stored_bytes`] counts them (a shared context not
    /// per event).
    pub bytes: u64,
    /// The largest `seq` stored, so that new events sort after it.
    pub max_seq: u64,
    /// The smallest `created_ms` of the events (after a clock jump, not always the
    /// first by `seq`).
    pub oldest_ms: Option<i64>,
}

/// Work for a store, handed out by the engine.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreOp {
    /// Commit these events in one transaction. An event whose `seq` is already stored
    /// replaces it.
    Insert(Vec<QueuedEvent>),
    /// Read the oldest events, in `seq` order: at most `max_events`, and no more than
    /// `max_bytes` in total except that the first event is always returned.
    Load {
        /// Most events.
        max_events: usize,
        /// Most bytes on the wire ([`QueuedEvent::bytes`]): it bounds a request body.
        max_bytes: usize,
    },
    /// Delete these events (delivered or rejected); missing ones are ignored.
    Delete(Vec<u64>),
    /// Enforce the caps: first delete events created before `min_created_ms`, then the
    /// oldest until at most `max_events` remain, then the oldest until at most `max_bytes`.
    /// Events with `seq <= spare_through` are never evicted: they are being uploaded, and
    /// their fate is the server's answer, not a cap.
    Evict {
        /// Count cap.
        max_events: u64,
        /// Bytes cap, in [`QueuedEvent::stored_bytes`].
        max_bytes: u64,
        /// Age cap, as the oldest `created_ms` kept.
        min_created_ms: i64,
        /// The events being uploaded end here (0: none).
        spare_through: u64,
    },
    /// Delete every event (opt-out), except those being uploaded (`seq <= spare_through`),
    /// whose fate is the server's answer.
    Clear {
        /// The events being uploaded end here (0: none).
        spare_through: u64,
    },
    /// Save the state.
    SaveState(PersistedState),
}

impl StoreOp {
    /// The operation's name, for errors and logs.
    pub fn name(&self) -> &'static str {
        match self {
            StoreOp::Insert(_) => "insert",
            StoreOp::Load { .. } => "load",
            StoreOp::Delete(_) => "delete",
            StoreOp::Evict { .. } => "evict",
            StoreOp::Clear { .. } => "clear",
            StoreOp::SaveState(_) => "save_state",
        }
    }
}

/// Events removed by one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Removed {
    /// How many.
    pub events: u64,
    /// Their bytes, in [`QueuedEvent::stored_bytes`].
    pub bytes: u64,
}

impl Removed {
    /// Adds another removal.
    pub fn add(&mut self, other: Removed) {
        // Saturating: sizes can come from a damaged file.
        self.events = self.events.saturating_add(other.events);
        self.bytes = self.bytes.saturating_add(other.bytes);
    }
}

/// What [`StoreOp::Evict`] removed, by reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Evicted {
    /// Older than the age cap.
    pub age: Removed,
    /// Over the count cap.
    pub count: Removed,
    /// Over the bytes cap.
    pub bytes: Removed,
}

/// The outcome of a successful [`StoreOp`]. Operations that remove events also report
/// the oldest `created_ms` left (the smallest, which after a clock jump is not always the
/// first by `seq`), so that the engine never scans the store.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreOutcome {
    /// Events committed.
    Inserted,
    /// Events read, oldest first.
    Loaded(Vec<QueuedEvent>),
    /// Events deleted.
    Deleted {
        /// What was removed.
        removed: Removed,
        /// `created_ms` of the oldest event left.
        oldest_ms: Option<i64>,
    },
    /// Caps enforced.
    Evicted {
        /// What was removed, by reason.
        evicted: Evicted,
        /// `created_ms` of the oldest event left.
        oldest_ms: Option<i64>,
    },
    /// Queue emptied.
    Cleared(Removed),
    /// State saved.
    StateSaved,
}

/// The ways a store operation fails that the engine treats differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FailureKind {
    /// The disk (or the store's quota) is full: new events are dropped and counted.
    Full,
    /// The store stayed locked past the busy timeout: the operation is retried later.
    Busy,
    /// The store is corrupt; the runtime moves it aside and starts a fresh one.
    Corrupt,
    /// Anything else; the operation is retried later.
    Other,
}

/// A failed store operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("store {op} failed ({kind:?}): {message}")]
pub struct StoreFailure {
    /// What kind of failure.
    pub kind: FailureKind,
    /// The operation.
    pub op: &'static str,
    /// The backend's message.
    pub message: String,
}

/// The result handed back to the engine.
pub type StoreResult = Result<StoreOutcome, StoreFailure>;

/// A synchronous queue backend (SQLite, memory). Each method is one transaction.
pub trait QueueStore {
    /// What the store holds now.
    fn snapshot(&mut self) -> Result<StoreSnapshot, StoreFailure>;
    /// See [`StoreOp::Insert`].
    fn insert(&mut self, events: &[QueuedEvent]) -> Result<(), StoreFailure>;
    /// See [`StoreOp::Load`].
    fn load(
        &mut self,
        max_events: usize,
        max_bytes: usize,
    ) -> Result<Vec<QueuedEvent>, StoreFailure>;
    /// See [`StoreOp::Delete`]; returns what was removed and the oldest `created_ms` left.
    fn delete(&mut self, seqs: &[u64]) -> Result<(Removed, Option<i64>), StoreFailure>;
    /// See [`StoreOp::Evict`]; returns what was removed and the oldest `created_ms` left.
    fn evict(
        &mut self,
        max_events: u64,
        max_bytes: u64,
        min_created_ms: i64,
        spare_through: u64,
    ) -> Result<(Evicted, Option<i64>), StoreFailure>;
    /// See [`StoreOp::Clear`].
    fn clear(&mut self, spare_through: u64) -> Result<Removed, StoreFailure>;
    /// See [`StoreOp::SaveState`].
    fn save_state(&mut self, state: &PersistedState) -> Result<(), StoreFailure>;
}

/// Runs one operation on a synchronous store.
pub fn execute<S: QueueStore + ?Sized>(store: &mut S, op: &StoreOp) -> StoreResult {
    Ok(match op {
        StoreOp::Insert(events) => {
            store.insert(events)?;
            StoreOutcome::Inserted
        }
        StoreOp::Load {
            max_events,
            max_bytes,
        } => StoreOutcome::Loaded(store.load(*max_events, *max_bytes)?),
        StoreOp::Delete(seqs) => {
            let (removed, oldest_ms) = store.delete(seqs)?;
            StoreOutcome::Deleted { removed, oldest_ms }
        }
        StoreOp::Evict {
            max_events,
            max_bytes,
            min_created_ms,
            spare_through,
        } => {
            let (evicted, oldest_ms) =
                store.evict(*max_events, *max_bytes, *min_created_ms, *spare_through)?;
            StoreOutcome::Evicted { evicted, oldest_ms }
        }
        StoreOp::Clear { spare_through } => StoreOutcome::Cleared(store.clear(*spare_through)?),
        StoreOp::SaveState(state) => {
            store.save_state(state)?;
            StoreOutcome::StateSaved
        }
    })
}

/// A queue in memory: the browser's fallback where IndexedDB is unavailable, and the store
/// of simulations and tests. Indexed by `seq` and by creation time, so that every
/// operation costs O(log n) per event it touches, like SQLite's.
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    events: BTreeMap<u64, QueuedEvent>,
    by_age: BTreeSet<(i64, u64)>,
    bytes: u64,
    state: Option<PersistedState>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn oldest_ms(&self) -> Option<i64> {
        self.by_age.first().map(|&(created, _)| created)
    }

    /// The `messageId`s held, in `seq` order (tests: which events an eviction took).
    pub fn message_ids(&self) -> Vec<String> {
        self.events.values().map(|e| e.message_id.clone()).collect()
    }

    fn remove(&mut self, seq: u64) -> Removed {
        match self.events.remove(&seq) {
            Some(ev) => {
                self.by_age.remove(&(ev.created_ms, seq));
                self.bytes -= ev.stored_bytes();
                Removed {
                    events: 1,
                    bytes: ev.stored_bytes(),
                }
            }
            None => Removed::default(),
        }
    }

    /// Removes the oldest events after `spare_through`, by `seq`, while `more` says so.
    fn remove_oldest_while(
        &mut self,
        spare_through: u64,
        mut more: impl FnMut(&Removed) -> bool,
    ) -> Removed {
        let mut removed = Removed::default();
        while more(&removed) {
            let Some(&seq) = self
                .events
                .range(spare_through + 1..)
                .next()
                .map(|(seq, _)| seq)
            else {
                break;
            };
            removed.add(self.remove(seq));
        }
        removed
    }
}

impl QueueStore for MemoryStore {
    fn snapshot(&mut self) -> Result<StoreSnapshot, StoreFailure> {
        Ok(StoreSnapshot {
            state: self.state.clone(),
            events: self.events.len() as u64,
            bytes: self.bytes,
            max_seq: self.events.keys().next_back().copied().unwrap_or(0),
            oldest_ms: self.oldest_ms(),
        })
    }

    fn insert(&mut self, events: &[QueuedEvent]) -> Result<(), StoreFailure> {
        for ev in events {
            self.remove(ev.seq);
            self.by_age.insert((ev.created_ms, ev.seq));
            self.bytes += ev.stored_bytes();
            self.events.insert(ev.seq, ev.clone());
        }
        Ok(())
    }

    fn load(
        &mut self,
        max_events: usize,
        max_bytes: usize,
    ) -> Result<Vec<QueuedEvent>, StoreFailure> {
        let mut out = Vec::new();
        let mut bytes = 0u64;
        for ev in self.events.values().take(max_events) {
            if !out.is_empty() && bytes + ev.bytes() > max_bytes as u64 {
                break;
            }
            bytes += ev.bytes();
            out.push(ev.clone());
        }
        Ok(out)
    }

    fn delete(&mut self, seqs: &[u64]) -> Result<(Removed, Option<i64>), StoreFailure> {
        let mut removed = Removed::default();
        for &seq in seqs {
            removed.add(self.remove(seq));
        }
        Ok((removed, self.oldest_ms()))
    }

    fn evict(
        &mut self,
        max_events: u64,
        max_bytes: u64,
        min_created_ms: i64,
        spare_through: u64,
    ) -> Result<(Evicted, Option<i64>), StoreFailure> {
        // Every event created before the cutoff, not only a prefix by seq: after the wall
        // clock went back, creation times are not in seq order.
        let old: Vec<u64> = self
            .by_age
            .range(..(min_created_ms, 0))
            .map(|&(_, seq)| seq)
            .filter(|&seq| seq > spare_through)
            .collect();
        let mut age = Removed::default();
        for seq in old {
            age.add(self.remove(seq));
        }
        let len = self.events.len() as u64;
        let count = self.remove_oldest_while(spare_through, |r| len - r.events > max_events);
        let total = self.bytes;
        let bytes = self.remove_oldest_while(spare_through, |r| total - r.bytes > max_bytes);
        Ok((Evicted { age, count, bytes }, self.oldest_ms()))
    }

    fn clear(&mut self, spare_through: u64) -> Result<Removed, StoreFailure> {
        Ok(self.remove_oldest_while(spare_through, |_| true))
    }

    fn save_state(&mut self, state: &PersistedState) -> Result<(), StoreFailure> {
        self.state = Some(state.clone());
        Ok(())
    }
}

/// The conformance suite: the behaviour every queue backend must have.
///
/// The checks talk to a store only through [`StoreOp`]s and snapshots, as the engine does,
/// so that one copy of them runs against synchronous backends ([`conformance::run`], from a
/// plain `#[test]`) and asynchronous ones ([`conformance::run_async`], from IndexedDB's
/// tests in a browser).
pub mod conformance {
    use std::future::Future;

    use super::*;
    use crate::message::{EventJson, Identity, MessageType, SharedContext};

    /// A store as the suite drives it.
    pub trait Backend {
        /// Executes one operation, in its own transaction.
        fn execute(&mut self, op: StoreOp) -> impl Future<Output = StoreResult>;
        /// What the store holds now.
        fn snapshot(&mut self) -> impl Future<Output = Result<StoreSnapshot, StoreFailure>>;
    }

    /// A synchronous store as a [`Backend`] whose futures are ready at once.
    #[derive(Debug)]
    pub struct Blocking<S>(pub S);

    impl<S: QueueStore> Backend for Blocking<S> {
        fn execute(&mut self, op: StoreOp) -> impl Future<Output = StoreResult> {
            std::future::ready(execute(&mut self.0, &op))
        }
        fn snapshot(&mut self) -> impl Future<Output = Result<StoreSnapshot, StoreFailure>> {
            std::future::ready(self.0.snapshot())
        }
    }

    /// Polls a future that never waits (a [`Blocking`] store's) to its end.
    fn block_on<F: Future>(f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => unreachable!("a synchronous store never waits"),
        }
    }

    /// An event with a given seq, creation time and JSON size.
    pub fn event(seq: u64, created_ms: i64, size: usize) -> QueuedEvent {
        let head = format!("{{\"messageId\":\"m{seq}\",\"p\":\"");
        let pad = size.saturating_sub(head.len() + 2);
        QueuedEvent {
            seq,
            message_id: format!("m{seq}"),
            kind: MessageType::Track,
            name: Some(format!("Event {}", seq % 3)),
            created_ms,
            json: format!("{head}{}\"}}", "x".repeat(pad)).into(),
        }
    }

    /// A context for [`event_sharing`], holding `text`.
    pub fn context(text: &str) -> SharedContext {
        let json =
            serde_json::to_string(&serde_json::json!({"library": {"name": text}})).expect("JSON");
        SharedContext::from(serde_json::value::RawValue::from_string(json).expect("JSON"))
    }

    /// An event like [`event`] whose message leaves out `context`, which it shares.
    pub fn event_sharing(
        seq: u64,
        created_ms: i64,
        size: usize,
        context: &SharedContext,
    ) -> QueuedEvent {
        let whole = event(seq, created_ms, size);
        QueuedEvent {
            json: EventJson::with_context(whole.json.into_wire(), SharedContext::clone(context)),
            ..whole
        }
    }

    fn seqs(events: &[QueuedEvent]) -> Vec<u64> {
        events.iter().map(|e| e.seq).collect()
    }

    async fn run_op<B: Backend>(s: &mut B, op: StoreOp) -> StoreOutcome {
        let name = op.name();
        match s.execute(op).await {
            Ok(outcome) => outcome,
            Err(e) => panic!("{name} failed: {e}"),
        }
    }

    async fn insert<B: Backend>(s: &mut B, events: &[QueuedEvent]) {
        let outcome = run_op(s, StoreOp::Insert(events.to_vec())).await;
        assert_eq!(outcome, StoreOutcome::Inserted);
    }

    async fn load<B: Backend>(s: &mut B, max_events: usize, max_bytes: usize) -> Vec<QueuedEvent> {
        match run_op(
            s,
            StoreOp::Load {
                max_events,
                max_bytes,
            },
        )
        .await
        {
            StoreOutcome::Loaded(events) => events,
            other => panic!("load answered {other:?}"),
        }
    }

    async fn delete<B: Backend>(s: &mut B, seqs: &[u64]) -> (Removed, Option<i64>) {
        match run_op(s, StoreOp::Delete(seqs.to_vec())).await {
            StoreOutcome::Deleted { removed, oldest_ms } => (removed, oldest_ms),
            other => panic!("delete answered {other:?}"),
        }
    }

    async fn evict<B: Backend>(
        s: &mut B,
        max_events: u64,
        max_bytes: u64,
        min_created_ms: i64,
        spare_through: u64,
    ) -> (Evicted, Option<i64>) {
        let op = StoreOp::Evict {
            max_events,
            max_bytes,
            min_created_ms,
            spare_through,
        };
        match run_op(s, op).await {
            StoreOutcome::Evicted { evicted, oldest_ms } => (evicted, oldest_ms),
            other => panic!("evict answered {other:?}"),
        }
    }

    async fn clear<B: Backend>(s: &mut B, spare_through: u64) -> Removed {
        match run_op(s, StoreOp::Clear { spare_through }).await {
            StoreOutcome::Cleared(removed) => removed,
            other => panic!("clear answered {other:?}"),
        }
    }

    async fn save_state<B: Backend>(s: &mut B, state: &PersistedState) {
        let outcome = run_op(s, StoreOp::SaveState(state.clone())).await;
        assert_eq!(outcome, StoreOutcome::StateSaved);
    }

    async fn snapshot<B: Backend>(s: &mut B) -> StoreSnapshot {
        s.snapshot().await.expect("snapshot failed")
    }

    /// Runs every check on a synchronous store, each on a fresh store from `fresh`.
    pub fn run<S: QueueStore>(mut fresh: impl FnMut() -> S) {
        block_on(run_async(|| std::future::ready(Blocking(fresh()))));
    }

    /// Runs every check, each on a fresh store from `fresh`, awaiting every operation.
    pub async fn run_async<B, F, Fut>(mut fresh: F)
    where
        B: Backend,
        F: FnMut() -> Fut,
        Fut: Future<Output = B>,
    {
        insert_load_in_order(&mut fresh().await).await;
        load_respects_limits(&mut fresh().await).await;
        delete_reports_removed_and_oldest(&mut fresh().await).await;
        evict_by_age_count_bytes(&mut fresh().await).await;
        clear_empties(&mut fresh().await).await;
        state_round_trips(&mut fresh().await).await;
        snapshot_counts(&mut fresh().await).await;
        shared_contexts_round_trip(&mut fresh().await).await;
    }

    /// Events come back oldest first, exactly as inserted.
    pub async fn insert_load_in_order<B: Backend>(s: &mut B) {
        let evs: Vec<_> = (1..=5).map(|i| event(i, 1000 + i as i64, 100)).collect();
        insert(s, &evs[2..]).await;
        insert(s, &evs[..2]).await;
        let back = load(s, 100, 1 << 20).await;
        assert_eq!(back, evs, "load returns every event in seq order");
        // An insert with a stored seq replaces that event.
        let mut again = event(3, 7, 40);
        again.message_id = "replaced".into();
        insert(s, std::slice::from_ref(&again)).await;
        let back = load(s, 100, 1 << 20).await;
        assert_eq!(back.len(), 5);
        assert_eq!(back[2], again, "the same seq replaces the event");
        assert_eq!(snapshot(s).await.bytes, 440);
    }

    /// Load stops at the count and byte limits but always returns one event.
    pub async fn load_respects_limits<B: Backend>(s: &mut B) {
        assert!(
            load(s, 10, 10).await.is_empty(),
            "an empty store loads nothing"
        );
        let evs: Vec<_> = (1..=10).map(|i| event(i, i as i64, 100)).collect();
        insert(s, &evs).await;
        assert_eq!(seqs(&load(s, 3, 1 << 20).await), vec![1, 2, 3]);
        assert_eq!(seqs(&load(s, 100, 350).await), vec![1, 2, 3]);
        assert_eq!(
            seqs(&load(s, 100, 10).await),
            vec![1],
            "first event even if over max_bytes"
        );
    }

    /// Delete removes only the named events, ignores unknown ones, and reports the oldest left.
    pub async fn delete_reports_removed_and_oldest<B: Backend>(s: &mut B) {
        let evs: Vec<_> = (1..=4).map(|i| event(i, 100 * i as i64, 50)).collect();
        insert(s, &evs).await;
        let (removed, oldest) = delete(s, &[1, 3, 99]).await;
        assert_eq!(
            removed,
            Removed {
                events: 2,
                bytes: 100
            }
        );
        assert_eq!(oldest, Some(200));
        assert_eq!(seqs(&load(s, 10, 1 << 20).await), vec![2, 4]);
        let (_, oldest) = delete(s, &[2, 4]).await;
        assert_eq!(oldest, None);
    }

    /// Eviction drops the oldest first and attributes each drop to age, count or bytes.
    pub async fn evict_by_age_count_bytes<B: Backend>(s: &mut B) {
        let evs: Vec<_> = (1..=10).map(|i| event(i, 1000 * i as i64, 100)).collect();
        insert(s, &evs).await;
        // Age: created before 3000 goes (seqs 1, 2). Count: keep 6 (drop 3, 4).
        // Bytes: keep 500 (drop 5).
        let (ev, oldest) = evict(s, 6, 500, 3000, 0).await;
        assert_eq!(
            ev.age,
            Removed {
                events: 2,
                bytes: 200
            }
        );
        assert_eq!(
            ev.count,
            Removed {
                events: 2,
                bytes: 200
            }
        );
        assert_eq!(
            ev.bytes,
            Removed {
                events: 1,
                bytes: 100
            }
        );
        assert_eq!(oldest, Some(6000));
        assert_eq!(seqs(&load(s, 100, 1 << 20).await), vec![6, 7, 8, 9, 10]);
        let (ev, _) = evict(s, 100, 1 << 20, 0, 0).await;
        assert_eq!(ev, Evicted::default(), "nothing to evict under the caps");
        // After a clock jump, a newer seq can carry an older creation time.
        insert(s, &[event(11, 500, 100)]).await;
        let (ev, oldest) = evict(s, 100, 1 << 20, 1000, 0).await;
        assert_eq!(
            ev.age,
            Removed {
                events: 1,
                bytes: 100
            },
            "age eviction is not only a prefix"
        );
        assert_eq!(oldest, Some(6000));
        // Events being uploaded (seq <= 7 here) are spared; the caps take newer ones.
        let (ev, _) = evict(s, 2, 1 << 20, 7_500, 7).await;
        assert_eq!(
            ev.age,
            Removed::default(),
            "seqs 6 and 7 are old but spared"
        );
        assert_eq!(
            ev.count,
            Removed {
                events: 3,
                bytes: 300
            }
        );
        assert_eq!(seqs(&load(s, 100, 1 << 20).await), vec![6, 7]);
    }

    /// Clear removes everything but the events being uploaded, and says how much.
    pub async fn clear_empties<B: Backend>(s: &mut B) {
        let evs: Vec<_> = (1..=5).map(|i| event(i, i as i64, 80)).collect();
        insert(s, &evs).await;
        assert_eq!(
            clear(s, 2).await,
            Removed {
                events: 3,
                bytes: 240
            }
        );
        assert_eq!(seqs(&load(s, 10, 1 << 20).await), vec![1, 2], "spared");
        assert_eq!(
            clear(s, 0).await,
            Removed {
                events: 2,
                bytes: 160
            }
        );
        assert!(load(s, 10, 1 << 20).await.is_empty());
        assert_eq!(snapshot(s).await.events, 0);
    }

    /// The saved state comes back in the snapshot, and a later save replaces it.
    pub async fn state_round_trips<B: Backend>(s: &mut B) {
        assert_eq!(snapshot(s).await.state, None);
        let mut state = PersistedState {
            identity: Identity::new(uuid::Uuid::from_u128(99)),
            opted_out: false,
            endpoints: Vec::new(),
        };
        save_state(s, &state).await;
        assert_eq!(snapshot(s).await.state.as_ref(), Some(&state));
        state.opted_out = true;
        state.identity.user_id = Some("u1".into());
        state.identity.traits.insert("plan".into(), "pro".into());
        state.endpoints = vec![EndpointState {
            url: "https://a.example".into(),
            retry: RetryState {
                attempts: 3,
                next_attempt_ms: Some(123),
                ..Default::default()
            },
            reason: Some(crate::breaker::OpenReason::Blocked),
        }];
        save_state(s, &state).await;
        assert_eq!(snapshot(s).await.state, Some(state));
    }

    /// Events that share a context, alone or with others, come back as they are sent, and
    /// count their own bytes (the shared context not per event), also after the queue emptied and filled again
    /// and after an opt-out purge.
    pub async fn shared_contexts_round_trip<B: Backend>(s: &mut B) {
        let (a, b) = (context("a"), context("b"));
        let batch = |first: u64| {
            vec![
                event_sharing(first, 1, 100, &a),
                event_sharing(first + 1, 2, 100, &a),
                event(first + 2, 3, 100),
                event_sharing(first + 3, 4, 100, &b),
                event_sharing(first + 4, 5, 100, &a),
            ]
        };
        let wire = |evs: &[QueuedEvent]| -> Vec<String> {
            evs.iter().map(|e| e.json.wire().into_owned()).collect()
        };
        let evs = batch(1);
        let bytes: u64 = evs.iter().map(QueuedEvent::stored_bytes).sum();
        assert!(bytes < evs.iter().map(QueuedEvent::bytes).sum::<u64>());
        assert!(wire(&evs)[0].ends_with(r#","context":{"library":{"name":"a"}}}"#));
        insert(s, &evs).await;
        assert_eq!(
            snapshot(s).await.bytes,
            bytes,
            "each event's own bytes are counted"
        );
        let back = load(s, 100, 1 << 20).await;
        assert_eq!(wire(&back), wire(&evs));
        assert_eq!(back, evs);
        let (removed, _) = delete(s, &seqs(&evs)).await;
        assert_eq!(removed, Removed { events: 5, bytes });
        // Empty, then the same contexts again.
        let evs = batch(10);
        insert(s, &evs).await;
        assert_eq!(wire(&load(s, 100, 1 << 20).await), wire(&evs));
        assert_eq!(clear(s, 0).await, Removed { events: 5, bytes });
        let evs = batch(20);
        insert(s, &evs[..2]).await;
        insert(s, &evs[2..]).await;
        assert_eq!(wire(&load(s, 100, 1 << 20).await), wire(&evs));
    }

    /// The snapshot's counts, bytes, max seq and oldest match what was stored; "oldest" is
    /// the smallest creation time, even when a later seq was created earlier.
    pub async fn snapshot_counts<B: Backend>(s: &mut B) {
        let evs: Vec<_> = (5..=9).map(|i| event(i, 10 * i as i64, 64)).collect();
        insert(s, &evs).await;
        let snap = snapshot(s).await;
        assert_eq!(
            (snap.events, snap.bytes, snap.max_seq, snap.oldest_ms),
            (5, 320, 9, Some(50))
        );
        insert(s, &[event(10, 20, 64)]).await;
        assert_eq!(snapshot(s).await.oldest_ms, Some(20));
        let (_, oldest) = delete(s, &[5]).await;
        assert_eq!(oldest, Some(20), "the oldest by creation, not by seq");
        let (_, oldest) = delete(s, &[10]).await;
        assert_eq!(oldest, Some(60));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The memory store passes the conformance suite.
    #[test]
    fn memory_store_conforms() {
        conformance::run(MemoryStore::new);
    }
}
