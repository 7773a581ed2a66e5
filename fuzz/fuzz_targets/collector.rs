//! Tracking requests as any client may send them to `trailhound collect`: a body (plain,
//! gzip of the fuzzer's bytes, or the raw bytes claimed to be gzip), a `Content-Encoding`,
//! an endpoint type and a receive time (layout: see `HEADER`), through `validate::decode_request` (which calls
//! `validate::check` per event), then into the collector's in-memory store and its
//! `/api/stats` and `/api/events` views.
//!
//! Never panics; an event without errors has a known type and a `messageId` of 1 to 100
//! characters.
#![no_main]

use std::io::Write as _;

use chrono::{DateTime, Utc};
use libfuzzer_sys::fuzz_target;
use trailhound_cli::collect::store::{Query, Store};
use trailhound_cli::collect::validate::{self, limits, TYPES};

/// Bytes before the body: `[encoding][endpoint][flags][8 bytes LE: received_at_ms]`.
const HEADER: usize = 11;

fuzz_target!(|data: &[u8]| {
    if data.len() < HEADER {
        return;
    }
    let (header, body) = data.split_at(HEADER);
    // The server's own clock: some time between 1970 and 2200, never a client's value.
    let received_at_ms = i64::from_le_bytes(header[3..11].try_into().unwrap());
    let received_at_ms = received_at_ms.rem_euclid(7_258_118_400_000);
    let received_at = DateTime::<Utc>::from_timestamp_millis(received_at_ms).unwrap_or_default();
    // 0x80 and up: `/v1/batch`; else a single-event endpoint (`/v1/track`…).
    let path_type = (header[1] < 0x80).then(|| TYPES[usize::from(header[1]) % TYPES.len()]);
    // A second request: duplicates and the store's counters across requests.
    let twice = header[2] & 1 == 1;
    let (raw, encoding) = match header[0] % 5 {
        0 => (body.to_vec(), None),
        // Gzip made here: reaches the JSON and event checks through the decoder.
        1 => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(body).unwrap();
            (gz.finish().unwrap(), Some("gzip"))
        }
        // The raw bytes claimed to be gzip: the decoder's refusals.
        2 => (body.to_vec(), Some(" GZip ")),
        3 => (body.to_vec(), Some("identity")),
        _ => (body.to_vec(), Some("br")),
    };
    let encoding: Option<&str> = encoding;
    let mut store = Store::memory();
    for _ in 0..(1 + usize::from(twice)) {
        let decoded = match validate::decode_request(&raw, encoding, path_type, received_at) {
            Ok(d) => d,
            Err(refusal) => {
                assert!(
                    matches!(refusal.status, 400 | 413),
                    "refused with {}",
                    refusal.status
                );
                let _ = store.record_request(refusal.status, Vec::new());
                continue;
            }
        };
        for (checked, _) in &decoded.events {
            if checked.errors.is_empty() {
                let kind = checked.kind.as_deref().expect("a valid event has a type");
                assert!(TYPES.contains(&kind), "valid with type {kind:?}");
                let id = checked
                    .message_id
                    .as_deref()
                    .expect("a valid event has a messageId");
                let n = id.chars().count();
                assert!(
                    (1..=limits::MAX_MESSAGE_ID_CHARS).contains(&n),
                    "valid with a {n}-character messageId"
                );
            }
        }
        store
            .record_request(200, decoded.events)
            .expect("a memory store records");
    }
    let stats = store.stats();
    let _ = serde_json::to_string(&stats).expect("stats serialise");
    let (events, total) = store.query(&Query {
        limit: Some(5),
        ..Query::default()
    });
    assert!(events.len() <= 5 && events.len() <= total);
    let _ = serde_json::to_string(&events).expect("events serialise");
});
