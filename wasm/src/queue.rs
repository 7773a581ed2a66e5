//! The queue backend in use: IndexedDB, or memory where IndexedDB is unavailable.

use trailhound_core::store::{self, StoreOp};
use trailhound_core::{MemoryStore, StoreFailure, StoreResult, StoreSnapshot};

use crate::idb::{IdbStore, Privacy, Seen};
use std::cell::RefCell;

/// Either backend, behind one asynchronous interface.
#[derive(Debug)]
pub enum Queue {
    /// Persistent.
    Idb(IdbStore),
    /// Lost with the page; `why` IndexedDB could not be used.
    Memory {
        /// The store.
        store: RefCell<MemoryStore>,
        /// Why IndexedDB was not used.
        why: String,
    },
}

impl Queue {
    /// Opens the IndexedDB database `name`, or falls back to memory, with what it holds:
    /// the snapshot that proves the database usable is the one the engine starts from (a
    /// second read would delay `load()` by four more IndexedDB requests); a new memory
    /// queue is empty.
    pub async fn open(name: &str) -> (Queue, StoreSnapshot) {
        let why = match IdbStore::open(name).await {
            Ok(s) => match s.snapshot().await {
                Ok(snapshot) => return (Queue::Idb(s), snapshot),
                Err(e) => e.to_string(),
            },
            Err(why) => why,
        };
        (Queue::memory(why), StoreSnapshot::default())
    }

    /// A memory queue, saying why.
    pub fn memory(why: String) -> Queue {
        Queue::Memory {
            store: RefCell::new(MemoryStore::new()),
            why,
        }
    }

    /// `"indexeddb"` or `"memory"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Queue::Idb(_) => "indexeddb",
            Queue::Memory { .. } => "memory",
        }
    }

    /// Why the queue is in memory, if it is.
    pub fn fallback_reason(&self) -> Option<&str> {
        match self {
            Queue::Idb(_) => None,
            Queue::Memory { why, .. } => Some(why),
        }
    }

    /// Runs one operation.
    pub async fn execute(&self, op: &StoreOp) -> StoreResult {
        match self {
            Queue::Idb(s) => s.execute(op).await,
            Queue::Memory { store, .. } => store::execute(&mut *store.borrow_mut(), op),
        }
    }

    /// What the queue holds.
    pub async fn snapshot(&self) -> Result<StoreSnapshot, StoreFailure> {
        match self {
            Queue::Idb(s) => s.snapshot().await,
            Queue::Memory { store, .. } => store::QueueStore::snapshot(&mut *store.borrow_mut()),
        }
    }

    /// Keep the other tabs' privacy choices from now on (IndexedDB: see [`crate::idb`]; a
    /// memory queue has no other tabs).
    pub fn share_state(&self, base: Privacy) {
        if let Queue::Idb(s) = self {
            s.share_state(base);
        }
    }

    /// Privacy choices another tab stored, seen by the last operations.
    pub fn take_seen(&self) -> Option<Seen> {
        match self {
            Queue::Idb(s) => s.take_seen(),
            Queue::Memory { .. } => None,
        }
    }

    /// Closes the database connection.
    pub fn close(&self) {
        if let Queue::Idb(s) = self {
            s.close();
        }
    }
}
