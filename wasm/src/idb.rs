//! The queue in IndexedDB: the browser's counterpart of the native SQLite store, passing the
//! same conformance suite (`tests/browser.rs`).
//!
//! Object stores: `events` (records keyed by `seq`, indexed by `createdMs` for eviction by
//! age) and `meta` (`state`: the persisted state as JSON; `counts`: events and bytes, kept
//! in the same transaction as every change so that a snapshot never scans the queue;
//! `nextSeq`: see [`IdbStore::allocate_seqs`]). Each operation is one transaction.
//!
//! # Privacy choices shared by tabs
//!
//! Every tab's engine saves its whole state record, so a plain write would let a tab that
//! has not heard of another tab's opt-out or `reset()` write the old choice back. Once
//! [`IdbStore::share_state`] is called, a state save is a read-modify-write in its
//! transaction that keeps the stored opt-out and identity unless this tab changed them
//! since it last saw the store ([`merge`]); and every operation reads the stored record,
//! so that the driver learns of the other tabs' changes ([`IdbStore::take_seen`]) before
//! its next one. A load while the stored state says opted out returns nothing: another
//! tab's opt-out stops this tab's uploads at once, before this tab's engine has heard.

use std::cell::RefCell;

use js_sys::{Object, Reflect};
use trailhound_core::message::MessageType;
use trailhound_core::store::{Evicted, FailureKind, Removed, StoreOp, StoreOutcome};
use trailhound_core::Identity;
use trailhound_core::{PersistedState, QueuedEvent, StoreFailure, StoreResult, StoreSnapshot};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    IdbCursorDirection, IdbCursorWithValue, IdbDatabase, IdbKeyRange, IdbObjectStore, IdbRequest,
    IdbTransaction, IdbTransactionMode,
};

use crate::platform::{self, get};

const EVENTS: &str = "events";
const META: &str = "meta";

/// A queue in one IndexedDB database.
#[derive(Debug)]
pub struct IdbStore {
    db: IdbDatabase,
    name: String,
    /// Inserts take their seqs from the database's own counter, in the inserting
    /// transaction, instead of the engine's: two tabs with one queue then never write the
    /// same seq (an insert with a stored seq replaces that event). Off for the conformance
    /// suite, which checks that the given seqs are kept.
    pub allocate_seqs: bool,
    /// The privacy choices as this tab last saw them in the store; `None` until
    /// [`IdbStore::share_state`]: state saves are then plain writes.
    base: RefCell<Option<Privacy>>,
    /// Choices another tab stored, not yet taken by the driver.
    seen: RefCell<Option<Seen>>,
}

/// The part of the persisted state that is the user's choice, and must never be undone
/// by another tab's stale copy.
#[derive(Debug, Clone, PartialEq)]
pub struct Privacy {
    /// The identity (`reset()` makes a new anonymous id; `identify` sets the user).
    pub identity: Identity,
    /// The opt-out.
    pub opted_out: bool,
}

impl Privacy {
    fn of(state: &PersistedState) -> Privacy {
        Privacy {
            identity: state.identity.clone(),
            opted_out: state.opted_out,
        }
    }
}

/// Another tab changed the stored choices: `store` is what is stored now, `ours` what this
/// tab believed it was. The driver applies `merge(ours, current, store)` to its engine.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    /// What this tab believed was stored.
    pub ours: Privacy,
    /// What is stored.
    pub store: Privacy,
}

/// A three-way merge of privacy choices: what `mine` changed since `base` wins, everything
/// else is taken from `theirs` (another tab's changes since `base`).
///
/// A new anonymous id is a `reset()`, which replaces the whole identity: this tab's reset
/// wins over anything, and another tab's reset wins over this tab's `identify` on the
/// identity it forgot (a forgotten user must not come back). Otherwise the user id and the
/// traits are taken, each, from whichever side changed them.
pub fn merge(base: &Privacy, mine: &Privacy, theirs: &Privacy) -> Privacy {
    let pick = |m: bool| if m { mine } else { theirs };
    let opted_out = pick(mine.opted_out != base.opted_out).opted_out;
    let (b, m, t) = (&base.identity, &mine.identity, &theirs.identity);
    let identity = if m.anonymous_id != b.anonymous_id {
        m.clone()
    } else if t.anonymous_id != b.anonymous_id {
        t.clone()
    } else {
        Identity {
            anonymous_id: m.anonymous_id.clone(),
            user_id: pick(m.user_id != b.user_id).identity.user_id.clone(),
            traits: pick(m.traits != b.traits).identity.traits.clone(),
        }
    };
    Privacy {
        identity,
        opted_out,
    }
}

struct Failure(&'static str);

impl Failure {
    fn of(&self, e: JsValue) -> StoreFailure {
        let name = get(&e, "name").as_string().unwrap_or_default();
        let kind = match name.as_str() {
            "QuotaExceededError" => FailureKind::Full,
            "InvalidStateError" | "TransactionInactiveError" => FailureKind::Busy,
            _ => FailureKind::Other,
        };
        StoreFailure {
            kind,
            op: self.0,
            message: platform::error_text(&e),
        }
    }
}

async fn wait(p: js_sys::Promise) -> Result<JsValue, JsValue> {
    JsFuture::from(p).await
}

async fn result(r: &IdbRequest) -> Result<JsValue, JsValue> {
    wait(platform::req(r)).await
}

#[derive(Default, Clone, Copy)]
struct Counts {
    events: u64,
    bytes: u64,
}

impl Counts {
    /// Saturating: counts written by an older or interrupted writer must not underflow.
    fn sub(&mut self, r: Removed) {
        self.events = self.events.saturating_sub(r.events);
        self.bytes = self.bytes.saturating_sub(r.bytes);
    }
}

fn set(obj: &Object, key: &str, v: impl Into<JsValue>) {
    let _ = Reflect::set(obj, &JsValue::from_str(key), &v.into());
}

fn to_record(ev: &QueuedEvent, seq: u64) -> JsValue {
    let o = Object::new();
    set(&o, "seq", seq as f64);
    set(&o, "createdMs", ev.created_ms as f64);
    set(&o, "messageId", ev.message_id.as_str());
    set(&o, "kind", ev.kind.as_str());
    match &ev.name {
        Some(n) => set(&o, "name", n.as_str()),
        None => set(&o, "name", JsValue::NULL),
    }
    // The whole message: records are per event (IndexedDB has no join), so the shared
    // context is stored with each, as before.
    set(&o, "json", ev.json.wire().as_ref());
    // The queue's byte caps count each event's own bytes, the context it shares with
    // other events not (the engine counts them so on every platform; see
    // `QueuedEvent::stored_bytes`).
    set(&o, "bytes", ev.stored_bytes() as f64);
    o.into()
}

fn from_record(v: &JsValue) -> Result<QueuedEvent, JsValue> {
    let num = |k: &str| get(v, k).as_f64();
    let text = |k: &str| get(v, k).as_string();
    let bad = || JsValue::from(js_sys::Error::new("a stored event is malformed"));
    Ok(QueuedEvent {
        seq: num("seq").ok_or_else(bad)? as u64,
        message_id: text("messageId").ok_or_else(bad)?,
        kind: text("kind")
            .and_then(|k| MessageType::parse(&k))
            .ok_or_else(bad)?,
        name: text("name"),
        created_ms: num("createdMs").ok_or_else(bad)? as i64,
        json: text("json").ok_or_else(bad)?.into(),
    })
}

fn record_bytes(v: &JsValue) -> u64 {
    get(v, "bytes").as_f64().unwrap_or(0.0) as u64
}

fn record_seq(v: &JsValue) -> u64 {
    get(v, "seq").as_f64().unwrap_or(0.0) as u64
}

async fn read_counts(meta: &IdbObjectStore) -> Result<Counts, JsValue> {
    let v = result(&meta.get(&"counts".into())?).await?;
    Ok(Counts {
        events: get(&v, "events").as_f64().unwrap_or(0.0) as u64,
        bytes: get(&v, "bytes").as_f64().unwrap_or(0.0) as u64,
    })
}

fn write_counts(meta: &IdbObjectStore, c: Counts) -> Result<(), JsValue> {
    let o = Object::new();
    set(&o, "events", c.events as f64);
    set(&o, "bytes", c.bytes as f64);
    meta.put_with_key(&o, &"counts".into())?;
    Ok(())
}

async fn read_state(meta: &IdbObjectStore) -> Result<Option<PersistedState>, JsValue> {
    let state = result(&meta.get(&"state".into())?).await?;
    Ok(match state.as_string() {
        Some(s) => Some(
            serde_json::from_str::<PersistedState>(&s)
                .map_err(|e| js_sys::Error::new(&format!("stored state: {e}")))?,
        ),
        None => None,
    })
}

/// The smallest `createdMs` stored.
async fn oldest(events: &IdbObjectStore) -> Result<Option<i64>, JsValue> {
    let req = events.index("created")?.open_cursor()?;
    let cur = result(&req).await?;
    Ok(cur
        .dyn_ref::<IdbCursorWithValue>()
        .and_then(|c| c.value().ok())
        .and_then(|v| get(&v, "createdMs").as_f64())
        .map(|t| t as i64))
}

/// Walks a cursor request, deleting each record for which `take` says so, until `take`
/// returns `None` (stop).
async fn delete_while(
    req: IdbRequest,
    mut take: impl FnMut(&JsValue) -> Option<bool>,
    removed: &mut Removed,
) -> Result<(), JsValue> {
    loop {
        let cur = result(&req).await?;
        let Some(cur) = cur.dyn_ref::<IdbCursorWithValue>() else {
            return Ok(());
        };
        let v = cur.value()?;
        match take(&v) {
            None => return Ok(()),
            Some(true) => {
                cur.delete()?;
                removed.events += 1;
                removed.bytes += record_bytes(&v);
            }
            Some(false) => {}
        }
        cur.continue_()?;
    }
}

fn after(seq: u64) -> Result<JsValue, JsValue> {
    IdbKeyRange::lower_bound_with_open(&(seq as f64).into(), true).map(Into::into)
}

impl IdbStore {
    /// Opens (creating if needed) the database `name`.
    pub async fn open(name: &str) -> Result<IdbStore, String> {
        let db = wait(platform::open_db(name))
            .await
            .map_err(|e| platform::error_text(&e))?;
        Ok(IdbStore {
            db: db.unchecked_into(),
            name: name.to_owned(),
            allocate_seqs: true,
            base: RefCell::new(None),
            seen: RefCell::new(None),
        })
    }

    /// From now on, state saves keep what other tabs chose (see the module docs); `base`
    /// is the engine's state as loaded (or as created, if the store had none).
    pub fn share_state(&self, base: Privacy) {
        *self.base.borrow_mut() = Some(base);
    }

    /// Another tab's changes to the privacy choices seen by the last operations, if any.
    pub fn take_seen(&self) -> Option<Seen> {
        self.seen.borrow_mut().take()
    }

    /// Notes the stored state read in a transaction: what differs from this tab's view
    /// was changed by another tab.
    fn observe(&self, stored: &Privacy) {
        let mut base = self.base.borrow_mut();
        let Some(ours) = base.as_mut() else { return };
        if ours != stored {
            let mut seen = self.seen.borrow_mut();
            // Several observations before the driver looks: the first belief, the last store.
            let first = seen.take().map_or_else(|| ours.clone(), |s| s.ours);
            *seen = Some(Seen {
                ours: first,
                store: stored.clone(),
            });
            *ours = stored.clone();
        }
    }

    /// Closes the connection and deletes the database (tests).
    pub async fn destroy(self) -> Result<(), JsValue> {
        self.db.close();
        wait(platform::delete_db(&self.name)).await.map(|_| ())
    }

    /// Closes the connection.
    pub fn close(&self) {
        self.db.close();
    }

    fn shared(&self) -> bool {
        self.base.borrow().is_some()
    }

    fn tx(&self, write: bool) -> Result<(IdbTransaction, IdbObjectStore, IdbObjectStore), JsValue> {
        let names = js_sys::Array::of2(&EVENTS.into(), &META.into());
        let mode = if write {
            IdbTransactionMode::Readwrite
        } else {
            IdbTransactionMode::Readonly
        };
        let tx = self
            .db
            .transaction_with_str_sequence_and_mode(&names, mode)?;
        let events = tx.object_store(EVENTS)?;
        let meta = tx.object_store(META)?;
        Ok((tx, events, meta))
    }

    /// What the store holds now.
    pub async fn snapshot(&self) -> Result<StoreSnapshot, StoreFailure> {
        self.snapshot_js()
            .await
            .map_err(|e| Failure("snapshot").of(e))
    }

    async fn snapshot_js(&self) -> Result<StoreSnapshot, JsValue> {
        let (_tx, events, meta) = self.tx(false)?;
        let state = read_state(&meta).await?;
        if let Some(st) = &state {
            self.observe(&Privacy::of(st));
        }
        let counts = read_counts(&meta).await?;
        let last = events
            .open_cursor_with_range_and_direction(&JsValue::UNDEFINED, IdbCursorDirection::Prev)?;
        let last = result(&last).await?;
        let max_seq = last
            .dyn_ref::<IdbCursorWithValue>()
            .and_then(|c| c.key().ok())
            .and_then(|k| k.as_f64())
            .map_or(0, |k| k as u64);
        Ok(StoreSnapshot {
            state,
            events: counts.events,
            bytes: counts.bytes,
            max_seq,
            oldest_ms: oldest(&events).await?,
        })
    }

    /// Runs one operation in its own transaction.
    pub async fn execute(&self, op: &StoreOp) -> StoreResult {
        let fail = Failure(op.name());
        let (tx, events, meta) = self
            .tx(!matches!(op, StoreOp::Load { .. }))
            .map_err(|e| fail.of(e))?;
        let done = platform::done(&tx);
        let outcome = self.run(op, &events, &meta).await;
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => {
                let _ = tx.abort();
                let _ = wait(done).await;
                return Err(fail.of(e));
            }
        };
        // Durable only once the transaction completes.
        wait(done).await.map_err(|e| fail.of(e))?;
        Ok(outcome)
    }

    async fn run(
        &self,
        op: &StoreOp,
        events: &IdbObjectStore,
        meta: &IdbObjectStore,
    ) -> Result<StoreOutcome, JsValue> {
        // Every operation reads the stored choices in its transaction: see the module docs.
        let stored = read_state(meta).await?;
        if let (Some(st), false) = (&stored, matches!(op, StoreOp::SaveState(_))) {
            self.observe(&Privacy::of(st));
        }
        Ok(match op {
            StoreOp::Insert(evs) => {
                let mut counts = read_counts(meta).await?;
                let next = result(&meta.get(&"nextSeq".into())?)
                    .await?
                    .as_f64()
                    .unwrap_or(1.0) as u64;
                let mut next = next.max(1);
                for ev in evs {
                    let seq = if self.allocate_seqs {
                        next
                    } else {
                        let old = result(&events.get(&(ev.seq as f64).into())?).await?;
                        if !old.is_undefined() {
                            counts.sub(Removed {
                                events: 1,
                                bytes: record_bytes(&old),
                            });
                        }
                        ev.seq
                    };
                    next = next.max(seq + 1);
                    events.put(&to_record(ev, seq))?;
                    counts.events += 1;
                    counts.bytes += ev.stored_bytes();
                }
                meta.put_with_key(&(next as f64).into(), &"nextSeq".into())?;
                write_counts(meta, counts)?;
                StoreOutcome::Inserted
            }
            StoreOp::Load {
                max_events,
                max_bytes,
            } => {
                if stored.as_ref().is_some_and(|s| s.opted_out) && self.shared() {
                    // Another tab opted out (this engine would not load if it had).
                    return Ok(StoreOutcome::Loaded(Vec::new()));
                }
                let limit = (*max_events).min(u32::MAX as usize) as u32;
                let all =
                    result(&events.get_all_with_key_and_limit(&JsValue::UNDEFINED, limit)?).await?;
                let all: js_sys::Array = all.unchecked_into();
                let mut out = Vec::new();
                let mut bytes = 0u64;
                for v in all.iter() {
                    let ev = from_record(&v)?;
                    if !out.is_empty() && bytes + ev.bytes() > *max_bytes as u64 {
                        break;
                    }
                    bytes += ev.bytes();
                    out.push(ev);
                }
                StoreOutcome::Loaded(out)
            }
            StoreOp::Delete(seqs) => {
                let mut counts = read_counts(meta).await?;
                let mut removed = Removed::default();
                for &seq in seqs {
                    let key: JsValue = (seq as f64).into();
                    let old = result(&events.get(&key)?).await?;
                    if !old.is_undefined() {
                        events.delete(&key)?;
                        removed.events += 1;
                        removed.bytes += record_bytes(&old);
                    }
                }
                counts.sub(removed);
                write_counts(meta, counts)?;
                StoreOutcome::Deleted {
                    removed,
                    oldest_ms: oldest(events).await?,
                }
            }
            StoreOp::Evict {
                max_events,
                max_bytes,
                min_created_ms,
                spare_through,
            } => {
                let spare = *spare_through;
                let mut counts = read_counts(meta).await?;
                let mut ev = Evicted::default();
                // Every event created before the cutoff, through the index: after the wall
                // clock went back, creation times are not in seq order.
                let range =
                    IdbKeyRange::upper_bound_with_open(&(*min_created_ms as f64).into(), true)?;
                let req = events.index("created")?.open_cursor_with_range(&range)?;
                delete_while(req, |v| Some(record_seq(v) > spare), &mut ev.age).await?;
                counts.sub(ev.age);
                if counts.events > *max_events {
                    let over = counts.events - max_events;
                    let req = events.open_cursor_with_range(&after(spare)?)?;
                    let mut n = 0;
                    delete_while(
                        req,
                        |_| {
                            (n < over).then(|| {
                                n += 1;
                                true
                            })
                        },
                        &mut ev.count,
                    )
                    .await?;
                    counts.sub(ev.count);
                }
                if counts.bytes > *max_bytes {
                    let over = counts.bytes - max_bytes;
                    let req = events.open_cursor_with_range(&after(spare)?)?;
                    let mut freed = 0;
                    delete_while(
                        req,
                        |v| {
                            (freed < over).then(|| {
                                freed += record_bytes(v);
                                true
                            })
                        },
                        &mut ev.bytes,
                    )
                    .await?;
                    counts.sub(ev.bytes);
                }
                write_counts(meta, counts)?;
                StoreOutcome::Evicted {
                    evicted: ev,
                    oldest_ms: oldest(events).await?,
                }
            }
            StoreOp::Clear { spare_through } => {
                let mut counts = read_counts(meta).await?;
                let mut removed = Removed::default();
                let req = events.open_cursor_with_range(&after(*spare_through)?)?;
                delete_while(req, |_| Some(true), &mut removed).await?;
                counts.sub(removed);
                write_counts(meta, counts)?;
                StoreOutcome::Cleared(removed)
            }
            StoreOp::SaveState(state) => {
                let mut state = state.clone();
                let base = self.base.borrow().clone();
                if let (Some(base), Some(stored)) = (base, &stored) {
                    let mine = Privacy::of(&state);
                    let merged = merge(&base, &mine, &Privacy::of(stored));
                    if merged != mine {
                        let mut seen = self.seen.borrow_mut();
                        let first = seen.take().map_or(mine, |s| s.ours);
                        *seen = Some(Seen {
                            ours: first,
                            store: merged.clone(),
                        });
                    }
                    state.identity = merged.identity.clone();
                    state.opted_out = merged.opted_out;
                    *self.base.borrow_mut() = Some(merged);
                } else if self.shared() {
                    *self.base.borrow_mut() = Some(Privacy::of(&state));
                }
                let json = serde_json::to_string(&state)
                    .map_err(|e| js_sys::Error::new(&e.to_string()))?;
                meta.put_with_key(&json.into(), &"state".into())?;
                StoreOutcome::StateSaved
            }
        })
    }
}
