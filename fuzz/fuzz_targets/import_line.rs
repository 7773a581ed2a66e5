//! One line of a `trailhound queue import` file (cli/src/queue: `QueuedEvent::from_json`
//! on each line) from arbitrary bytes.
//!
//! Never panics; an accepted line is within the size limit, keeps its `messageId`, and
//! imports again into the same event (import is idempotent; floats may move by an ULP,
//! see `same_up_to_float_ulp`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use trailhound_core::{Policy, QueuedEvent};

fuzz_target!(|data: &[u8]| {
    let policy = Policy::default();
    // The import reads lines as UTF-8 text; a line that is not UTF-8 never reaches the core.
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(ev) = QueuedEvent::from_json(line, &policy) else {
        return;
    };
    assert!(ev.json.len() <= policy.max_event_bytes);
    assert!(!ev.message_id.is_empty());
    let parsed: serde_json::Value =
        serde_json::from_str(&ev.json.wire()).expect("stored JSON parses");
    assert_eq!(parsed["messageId"].as_str(), Some(ev.message_id.as_str()));
    let again =
        QueuedEvent::from_json(&ev.json.wire(), &policy).expect("an imported event imports again");
    if again.json != ev.json {
        let (a, b): (serde_json::Value, serde_json::Value) = (
            serde_json::from_str(&ev.json.wire()).unwrap(),
            serde_json::from_str(&again.json.wire()).unwrap(),
        );
        assert!(
            trailhound_fuzz::same_up_to_float_ulp(&a, &b),
            "import is not idempotent:\n{}\n{}",
            ev.json,
            again.json
        );
    }
    assert_eq!(
        again,
        QueuedEvent {
            json: again.json.clone(),
            ..ev
        }
    );
});
