//! The buffer of a dropped event is the next event's: `track()` on one thread and the
//! background thread dropping what it stored neither allocate nor free event buffers in
//! steady traffic (`trailhound_core::buffers`). A test binary of its own, with one test,
//! so that no other test gives or takes buffers from the process's shelf meanwhile.

use serde_json::json;
use trailhound_core::buffers::EVENT_BUFFERS;
use trailhound_core::message::{seal, stamp, Context, Identity};
use trailhound_core::{Call, Policy, QueuedEvent};

fn event(n: u64) -> QueuedEvent {
    let context = Context::new(
        json!({"library": {"name": "trailhound"}})
            .as_object()
            .unwrap()
            .clone(),
    );
    let identity = Identity::new(uuid::Uuid::from_u128(7));
    let call = Call::Track {
        event: "Song Played".into(),
        properties: json!({"title": "Nachtmusik", "n": n})
            .as_object()
            .unwrap()
            .clone(),
    };
    let policy = Policy::default();
    let msg = stamp(
        call,
        &identity,
        &context,
        format!("m-{n}"),
        1_700_000_000_000,
        &policy,
    )
    .unwrap();
    seal(msg, 1_700_000_000_000, &policy).unwrap()
}

/// Sealing takes the buffer a dropped event gave back, on another thread too, and the
/// event is the same as one serialised into a new buffer.
#[test]
fn a_dropped_events_buffer_serialises_the_next() {
    let first = event(1);
    let buffer = first.json.body().as_ptr();
    let expected = event(2).json.wire().into_owned();
    // `event(2)` was dropped: its buffer is on the shelf, taken by the next event.
    let (count, _) = EVENT_BUFFERS.stock().unwrap();
    assert_eq!(count, 1);
    let again = event(2);
    assert_eq!(again.json.wire(), expected);
    assert_eq!(EVENT_BUFFERS.stock().unwrap().0, 0);
    // Dropped on another thread (as the background thread does), taken on this one.
    std::thread::spawn(move || drop(first)).join().unwrap();
    assert_eq!(
        event(3).json.body().as_ptr(),
        buffer,
        "the first event's buffer"
    );
}
