//! The queue's storage: the operations the engine asks for, the results it takes back,
//! the [`QueueStore`] trait that synchronous backends implement, an in-memory backend,
//! and the conformance suite every backend must pass.
//!
//! The engine never calls a store. It hands out [`StoreOp`]s from `poll_store` and takes
//! [`StoreResult`]s in `handle_store`, so that an asynchronous backend (IndexedDB) can
//! drive it exactly like SQLite does. [`execute`] is the glue for synchronous ones.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::message::{Identity, QueuedEvent};
use crate::retry::RetryState;

/// Everything besides the events that survives a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PersistedState {
    /// The device and user identity.
    pub identity: Identity,
    /// The user opted out of collection.
    pub opted_out: bool,
    /// Backoff and auth pause.
    pub retry: RetryState,
}

/// What a store holds when it is opened.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StoreSnapshot {
    /// The saved state, if the store has ever saved one.
    pub state: Option<PersistedState>,
    /// Queued events.
    pub events: u64,
    /// Their bytes.
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
        /// Most bytes.
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
        /// Bytes cap.
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
    /// Their bytes.
    pub bytes: u64,
}

impl Removed {
    /// Adds another removal.
    pub fn add(&mut self, other: Removed) {
        self.events += other.events;
        self.bytes += other.bytes;
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

    fn remove(&mut self, seq: u64) -> Removed {
        match self.events.remove(&seq) {
            Some(ev) => {
                self.by_age.remove(&(ev.created_ms, seq));
                self.bytes -= ev.bytes();
                Removed {
                    events: 1,
                    bytes: ev.bytes(),
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
            self.bytes += ev.bytes();
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

/// The conformance suite: the behaviour every queue backend must have. Backends call
/// [`conformance::run`] from their own tests with a factory for empty stores.
pub mod conformance {
    use super::*;
    use crate::message::{Identity, MessageType};

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
            json: format!("{head}{}\"}}", "x".repeat(pad)),
        }
    }

    fn seqs(events: &[QueuedEvent]) -> Vec<u64> {
        events.iter().map(|e| e.seq).collect()
    }

    /// Runs every check, each on a fresh store from `fresh`.
    pub fn run<S: QueueStore>(mut fresh: impl FnMut() -> S) {
        insert_load_in_order(&mut fresh());
        load_respects_limits(&mut fresh());
        delete_reports_removed_and_oldest(&mut fresh());
        evict_by_age_count_bytes(&mut fresh());
        clear_empties(&mut fresh());
        state_round_trips(&mut fresh());
        snapshot_counts(&mut fresh());
    }

    /// Events come back oldest first, exactly as inserted.
    pub fn insert_load_in_order<S: QueueStore>(s: &mut S) {
        let evs: Vec<_> = (1..=5).map(|i| event(i, 1000 + i as i64, 100)).collect();
        s.insert(&evs[2..]).unwrap();
        s.insert(&evs[..2]).unwrap();
        let back = s.load(100, 1 << 20).unwrap();
        assert_eq!(back, evs, "load returns every event in seq order");
    }

    /// Load stops at the count and byte limits but always returns one event.
    pub fn load_respects_limits<S: QueueStore>(s: &mut S) {
        assert!(
            s.load(10, 10).unwrap().is_empty(),
            "an empty store loads nothing"
        );
        let evs: Vec<_> = (1..=10).map(|i| event(i, i as i64, 100)).collect();
        s.insert(&evs).unwrap();
        assert_eq!(seqs(&s.load(3, 1 << 20).unwrap()), vec![1, 2, 3]);
        assert_eq!(seqs(&s.load(100, 350).unwrap()), vec![1, 2, 3]);
        assert_eq!(
            seqs(&s.load(100, 10).unwrap()),
            vec![1],
            "first event even if over max_bytes"
        );
    }

    /// Delete removes only the named events, ignores unknown ones, and reports the oldest left.
    pub fn delete_reports_removed_and_oldest<S: QueueStore>(s: &mut S) {
        let evs: Vec<_> = (1..=4).map(|i| event(i, 100 * i as i64, 50)).collect();
        s.insert(&evs).unwrap();
        let (removed, oldest) = s.delete(&[1, 3, 99]).unwrap();
        assert_eq!(
            removed,
            Removed {
                events: 2,
                bytes: 100
            }
        );
        assert_eq!(oldest, Some(200));
        assert_eq!(seqs(&s.load(10, 1 << 20).unwrap()), vec![2, 4]);
        let (_, oldest) = s.delete(&[2, 4]).unwrap();
        assert_eq!(oldest, None);
    }

    /// Eviction drops the oldest first and attributes each drop to age, count or bytes.
    pub fn evict_by_age_count_bytes<S: QueueStore>(s: &mut S) {
        let evs: Vec<_> = (1..=10).map(|i| event(i, 1000 * i as i64, 100)).collect();
        s.insert(&evs).unwrap();
        // Age: created before 3000 goes (seqs 1, 2). Count: keep 6 (drop 3, 4).
        // Bytes: keep 500 (drop 5).
        let (ev, oldest) = s.evict(6, 500, 3000, 0).unwrap();
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
        assert_eq!(seqs(&s.load(100, 1 << 20).unwrap()), vec![6, 7, 8, 9, 10]);
        let (ev, _) = s.evict(100, 1 << 20, 0, 0).unwrap();
        assert_eq!(ev, Evicted::default(), "nothing to evict under the caps");
        // After a clock jump, a newer seq can carry an older creation time.
        s.insert(&[event(11, 500, 100)]).unwrap();
        let (ev, oldest) = s.evict(100, 1 << 20, 1000, 0).unwrap();
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
        let (ev, _) = s.evict(2, 1 << 20, 7_500, 7).unwrap();
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
        assert_eq!(seqs(&s.load(100, 1 << 20).unwrap()), vec![6, 7]);
    }

    /// Clear removes everything but the events being uploaded, and says how much.
    pub fn clear_empties<S: QueueStore>(s: &mut S) {
        let evs: Vec<_> = (1..=5).map(|i| event(i, i as i64, 80)).collect();
        s.insert(&evs).unwrap();
        assert_eq!(
            s.clear(2).unwrap(),
            Removed {
                events: 3,
                bytes: 240
            }
        );
        assert_eq!(seqs(&s.load(10, 1 << 20).unwrap()), vec![1, 2], "spared");
        assert_eq!(
            s.clear(0).unwrap(),
            Removed {
                events: 2,
                bytes: 160
            }
        );
        assert!(s.load(10, 1 << 20).unwrap().is_empty());
        assert_eq!(s.snapshot().unwrap().events, 0);
    }

    /// The saved state comes back in the snapshot, and a later save replaces it.
    pub fn state_round_trips<S: QueueStore>(s: &mut S) {
        assert_eq!(s.snapshot().unwrap().state, None);
        let mut state = PersistedState {
            identity: Identity::new(uuid::Uuid::from_u128(99)),
            opted_out: false,
            retry: RetryState::default(),
        };
        s.save_state(&state).unwrap();
        assert_eq!(s.snapshot().unwrap().state.as_ref(), Some(&state));
        state.opted_out = true;
        state.identity.user_id = Some("u1".into());
        state.identity.traits.insert("plan".into(), "pro".into());
        state.retry.attempts = 3;
        state.retry.next_attempt_ms = Some(123);
        s.save_state(&state).unwrap();
        assert_eq!(s.snapshot().unwrap().state, Some(state));
    }

    /// The snapshot's counts, bytes, max seq and oldest match what was stored; "oldest" is
    /// the smallest creation time, even when a later seq was created earlier.
    pub fn snapshot_counts<S: QueueStore>(s: &mut S) {
        let evs: Vec<_> = (5..=9).map(|i| event(i, 10 * i as i64, 64)).collect();
        s.insert(&evs).unwrap();
        let snap = s.snapshot().unwrap();
        assert_eq!(
            (snap.events, snap.bytes, snap.max_seq, snap.oldest_ms),
            (5, 320, 9, Some(50))
        );
        s.insert(&[event(10, 20, 64)]).unwrap();
        assert_eq!(s.snapshot().unwrap().oldest_ms, Some(20));
        let (_, oldest) = s.delete(&[5]).unwrap();
        assert_eq!(oldest, Some(20), "the oldest by creation, not by seq");
        let (_, oldest) = s.delete(&[10]).unwrap();
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
