//! The native queue opened on arbitrary bytes: a database file (and optionally its `-wal`,
//! or its `-groups` file of commit groups) written into a fresh directory on tmpfs, `SqliteStore::open`, then what the runtime and
//! the QA tools do with a store: snapshot, iterate, count, insert, load, delete, evict,
//! clear, save the state, and replace it when an operation finds it corrupt.
//!
//! Never panics. Errors are fine; a corrupt database moved aside is fine.
//!
//! Input layout (so that seeds are real database files with a small prefix):
//! `[OPS_BYTES bytes: the operations][1 byte: flags][4 bytes LE: wal length][db][wal]`;
//! flag 1: there is a second file, flag 4: it is the groups file rather than the WAL.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use trailhound::store::{SqliteStore, DB_FILE};
use trailhound_core::breaker::EndpointState;
use trailhound_core::message::{EventJson, Identity, MessageType, QueuedEvent};
use trailhound_core::retry::RetryState;
use trailhound_core::store::{FailureKind, PersistedState, QueueStore, StoreFailure};

/// Bytes at the front that choose the operations.
const OPS_BYTES: usize = 32;

#[derive(Debug, Arbitrary)]
enum Op {
    Snapshot,
    Iter,
    Counts,
    Insert {
        seq: u32,
        created_ms: i64,
        name: String,
    },
    Load {
        max_events: u8,
        max_bytes: u16,
    },
    Delete(Vec<u32>),
    Evict {
        max_events: u8,
        max_bytes: u16,
        min_created_ms: i64,
        spare_through: u32,
    },
    Clear {
        spare_through: u32,
    },
    SaveState {
        user_id: Option<String>,
        opted_out: bool,
        attempts: u32,
    },
}

fuzz_target!(|data: &[u8]| {
    if data.len() < OPS_BYTES + 5 {
        return;
    }
    let (ops, rest) = data.split_at(OPS_BYTES);
    let flags = rest[0];
    let wal_len = u32::from_le_bytes(rest[1..5].try_into().unwrap()) as usize;
    let files = &rest[5..];
    let (db, wal) = if flags & 1 == 1 {
        files.split_at(files.len() - wal_len.min(files.len()))
    } else {
        (files, &[][..])
    };

    let dir = trailhound_fuzz::tempdir();
    let db_path = dir.path().join(DB_FILE);
    std::fs::write(&db_path, db).unwrap();
    if flags & 1 == 1 {
        let mut wal_path = db_path.clone().into_os_string();
        wal_path.push(if flags & 4 == 4 {
            trailhound::store::GROUPS_SUFFIX
        } else {
            "-wal"
        });
        std::fs::write(wal_path, wal).unwrap();
    }

    // The QA tools' read-only open of a copied queue.
    if flags & 2 == 2 {
        if let Ok(store) = SqliteStore::open_file(&db_path, true) {
            let _ = store.iter_events(|_| true);
            let _ = store.counts_by_type_and_name();
        }
    }

    let Ok(opened) = SqliteStore::open(dir.path()) else {
        return;
    };
    let mut store = opened.store;
    let mut u = Unstructured::new(ops);
    let mut max_seq = 0u64;
    for _ in 0..8 {
        let Ok(op) = Op::arbitrary(&mut u) else {
            break;
        };
        let result: Result<(), StoreFailure> = match op {
            Op::Snapshot => store.snapshot().map(|s| {
                max_seq = s.max_seq;
            }),
            Op::Iter => {
                let mut n = 0u32;
                store.iter_events(|_| {
                    n += 1;
                    n < 1000
                })
            }
            Op::Counts => store.counts_by_type_and_name().map(drop),
            Op::Insert {
                seq,
                created_ms,
                name,
            } => {
                let seq = max_seq.saturating_add(u64::from(seq));
                store.insert(&[event(seq, created_ms, name)])
            }
            Op::Load {
                max_events,
                max_bytes,
            } => store
                .load(usize::from(max_events), usize::from(max_bytes))
                .map(drop),
            Op::Delete(seqs) => store
                .delete(&seqs.into_iter().map(u64::from).collect::<Vec<_>>())
                .map(drop),
            Op::Evict {
                max_events,
                max_bytes,
                min_created_ms,
                spare_through,
            } => store
                .evict(
                    u64::from(max_events),
                    u64::from(max_bytes),
                    min_created_ms,
                    u64::from(spare_through),
                )
                .map(drop),
            Op::Clear { spare_through } => store.clear(u64::from(spare_through)).map(drop),
            Op::SaveState {
                user_id,
                opted_out,
                attempts,
            } => store.save_state(&PersistedState {
                identity: Identity {
                    anonymous_id: "00000000-0000-4000-8000-000000000001".into(),
                    user_id,
                    traits: Default::default(),
                },
                opted_out,
                endpoints: vec![EndpointState {
                    url: "https://api.example.com".into(),
                    retry: RetryState {
                        attempts,
                        ..RetryState::default()
                    },
                    reason: None,
                }],
            }),
        };
        // What the runtime does when an operation finds the file corrupt.
        if let Err(f) = result {
            if f.kind == FailureKind::Corrupt && store.replace_corrupt().is_err() {
                break;
            }
        }
    }
});

/// A queued event as the engine would hand it over: odd seqs with their whole JSON, even
/// ones with a context shared through the store's `contexts` table.
fn event(seq: u64, created_ms: i64, name: String) -> QueuedEvent {
    let message_id = format!("m-{seq}");
    let body = serde_json::json!({
        "type": "track",
        "messageId": message_id,
        "event": name,
        "timestamp": trailhound_core::message::iso8601(created_ms),
    })
    .to_string();
    let context = format!("{{\"n\":{}}}", seq % 4);
    let json = if seq % 2 == 0 {
        let context = serde_json::value::RawValue::from_string(context).expect("JSON");
        EventJson::with_context(body, context.into())
    } else {
        EventJson::full(format!(
            "{},\"context\":{context}}}",
            &body[..body.len() - 1]
        ))
    };
    QueuedEvent {
        seq,
        message_id,
        kind: MessageType::Track,
        name: Some(name),
        created_ms,
        json,
    }
}
