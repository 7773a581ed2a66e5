//! What both benchmarks share: the typical event, a mobile app's context, and `track()`
//! that waits out backpressure.
// Each bench uses a different subset of these helpers.
#![allow(dead_code)]

pub mod collector;
pub mod sys;

use std::time::Duration;

use serde_json::{json, Value};
use trailhound::core::message::{self, Identity};
use trailhound::core::QueuedEvent;
use trailhound::{Call, Client, ContextInfo, Error, Message, Network, Policy};

/// The typical event's name.
pub const EVENT: &str = "Song Played";

/// A mobile app's context, so that events have their real size on the wire.
pub fn app_context() -> ContextInfo {
    trailhound::core::testing::phone_context()
}

/// The typical event's properties: five of the usual kinds.
pub fn properties(i: u64) -> Value {
    json!({
        "title": "Eine kleine Nachtmusik",
        "artist": "W. A. Mozart",
        "seconds": 215 + (i % 100),
        "shuffle": i.is_multiple_of(2),
        "rating": 4.5,
    })
}

/// No network (nothing is uploaded, everything is committed), and Wi-Fi while charging
/// (uploads go out promptly): the engine's own test conditions.
#[allow(unused_imports)] // Each bench uses a different subset, like the functions here.
pub use trailhound::core::testing::{offline, wifi_charging as wifi};

/// The `context` [`app_context`] gives the messages of `identity` on `network`, as
/// `track()` builds it (session started at a fixed time).
pub fn message_context(
    identity: &Identity,
    network: Network,
) -> trailhound::core::message::Context {
    trailhound::core::message::Context::new(trailhound::core::context::build(
        &app_context(),
        &identity.anonymous_id,
        network,
        Some(1_700_000_000_000),
    ))
}

/// `count` typical events, stamped and sealed exactly as `track()` does, with the messages
/// they were sealed from.
pub fn typical_events(count: u64) -> (Vec<Message>, Vec<QueuedEvent>) {
    let policy = Policy::default();
    let identity = Identity::new(uuid::Uuid::new_v4());
    let ctx = message_context(&identity, Network::Wifi);
    let now = 1_700_000_000_000;
    let mut messages = Vec::new();
    let mut events = Vec::new();
    for i in 0..count {
        let Value::Object(props) = properties(i) else {
            unreachable!("properties() is an object")
        };
        let call = Call::Track {
            event: EVENT.into(),
            properties: props,
        };
        let id = uuid::Uuid::new_v4().hyphenated().to_string();
        let msg = message::stamp(call, &identity, &ctx, id, now + i as i64, &policy)
            .expect("valid event");
        messages.push(msg.clone());
        let mut ev = message::seal(msg, now + i as i64, &policy).expect("valid event");
        ev.seq = i + 1;
        events.push(ev);
    }
    (messages, events)
}

/// The bytes one typical event adds to a batch body before gzip (its wire JSON and the
/// comma before it): what the disk figures are compared with.
pub fn wire_event_bytes() -> usize {
    let (_, events) = typical_events(2);
    let one = trailhound::core::wire::batch_json(&events[..1], 1_700_000_000_000).len();
    let two = trailhound::core::wire::batch_json(&events, 1_700_000_000_000).len();
    two - one
}

/// Tracks event `i`, retrying after `pause` while the background thread is behind
/// (`Error::Backpressure`); returns how many times it had to retry.
pub fn track_retry(client: &Client, i: u64, pause: Duration) -> u64 {
    let mut retries = 0;
    loop {
        match client.track(EVENT, properties(i)) {
            Ok(()) => return retries,
            Err(Error::Backpressure) => {
                retries += 1;
                if pause.is_zero() {
                    std::thread::yield_now();
                } else {
                    std::thread::sleep(pause);
                }
            }
            Err(e) => panic!("track failed: {e}"),
        }
    }
}
