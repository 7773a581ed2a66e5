//! Calls with arbitrary names, ids and properties (built trees, or raw bytes parsed as
//! JSON) through the core's validation, stamping and serialisation: `Tracker::stamp`,
//! `IdentityChange`, `seal`, and `QueuedEvent::from_json` on what `seal` produced.
//!
//! Never panics; an accepted event is within the size and nesting limits, is valid JSON,
//! and imports back into the same queued event.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use trailhound_core::context::{AppInfo, ContextInfo};
use trailhound_core::message::{self, Call, Identity, QueuedEvent, ValidationError};
use trailhound_core::tracker::{IdentityChange, Tracker};
use trailhound_core::{Network, Policy};
use trailhound_fuzz::{nesting, CallKind, Props};

#[derive(Debug, Arbitrary)]
struct FuzzCall {
    kind: CallKind,
    name: String,
    props: Props,
    message_id: String,
    now_ms: i64,
}

#[derive(Debug, Arbitrary)]
struct Input {
    /// Small limits reach the refusals; `None` keeps the defaults.
    max_nesting_depth: Option<u8>,
    max_event_bytes: Option<u16>,
    app: Option<(String, String)>,
    locale: Option<String>,
    screen_density: Option<f64>,
    calls: Vec<FuzzCall>,
}

fuzz_target!(|input: Input| {
    let mut policy = Policy::default();
    // Up to 64: deeper limits accept events that serde_json (recursion limit 128) cannot
    // read back, a policy question reported separately rather than found on every run.
    if let Some(d) = input.max_nesting_depth {
        policy.max_nesting_depth = usize::from(d % 65);
    }
    if let Some(b) = input.max_event_bytes {
        policy.max_event_bytes = usize::from(b);
    }
    let info = ContextInfo {
        app: input.app.map(|(name, version)| AppInfo {
            name,
            version,
            ..AppInfo::default()
        }),
        locale: input.locale,
        screen_density: input.screen_density,
        ..ContextInfo::default()
    };
    let identity = Identity {
        anonymous_id: "00000000-0000-4000-8000-000000000007".into(),
        user_id: None,
        traits: Default::default(),
    };
    let mut tracker = Tracker::new(identity, info, Network::Wifi);
    for call in input.calls.into_iter().take(8) {
        let Some(props) = call.props.to_map() else {
            continue;
        };
        // The core's rule, counted independently: a container inside a property value at
        // level L (the value itself is level 1) needs L < max_nesting_depth.
        let deepest = props.values().map(nesting).max().unwrap_or(0);
        let too_deep = deepest > 0 && deepest >= policy.max_nesting_depth;
        let c = match call.kind {
            CallKind::Track => Call::Track {
                event: call.name,
                properties: props,
            },
            CallKind::Identify { anonymous } => Call::Identify {
                user_id: (!anonymous).then_some(call.name),
                traits: props,
            },
            CallKind::Screen => Call::Screen {
                name: call.name,
                properties: props,
            },
            CallKind::Page => Call::Page {
                name: call.name,
                properties: props,
            },
            CallKind::Group => Call::Group {
                group_id: call.name,
                traits: props,
            },
            CallKind::Alias => Call::Alias { user_id: call.name },
        };
        let carries_props = !matches!(c, Call::Alias { .. });
        let msg = match tracker.stamp(c, call.message_id, call.now_ms, &policy) {
            Ok(msg) => msg,
            Err(ValidationError::TooDeep { max, .. }) => {
                assert!(
                    carries_props && too_deep,
                    "refused as too deep: {deepest}, limit {max}"
                );
                continue;
            }
            Err(_) => continue,
        };
        assert!(
            !(carries_props && too_deep),
            "accepted a value nested {deepest} deep, limit {}",
            policy.max_nesting_depth
        );
        let change = IdentityChange::of(&msg);
        let Ok(ev) = message::seal(msg, call.now_ms, &policy) else {
            continue;
        };
        assert!(ev.json.len() <= policy.max_event_bytes);
        let parsed: serde_json::Value =
            serde_json::from_str(&ev.json.wire()).expect("a sealed event is JSON");
        assert_eq!(parsed["messageId"].as_str(), Some(ev.message_id.as_str()));
        assert_eq!(parsed["type"].as_str(), Some(ev.kind.as_str()));
        // An exported line imports back into the same event (what `queue export` then
        // `queue import` does). RFC 3339 has four-digit years: an event stamped by a clock
        // outside years 0 to 9999 cannot be imported, and says so.
        let back = match QueuedEvent::from_json(&ev.json.wire(), &policy) {
            Ok(back) => back,
            Err(ValidationError::Unsupported { path, .. })
                if path == "timestamp" && !(0..=9999).contains(&year(call.now_ms)) =>
            {
                continue;
            }
            Err(e) => panic!("a sealed event does not import: {e}"),
        };
        // Times outside chrono's range are stamped as the epoch.
        let created_ms = if message::iso8601(call.now_ms) == message::iso8601(0) {
            0
        } else {
            call.now_ms
        };
        if back.json != ev.json {
            // serde_json parses floats best-effort (no `float_roundtrip` feature): a float
            // may come back an ULP off. Anything else is a real change.
            let (a, b): (serde_json::Value, serde_json::Value) = (
                serde_json::from_str(&ev.json.wire()).unwrap(),
                serde_json::from_str(&back.json.wire()).unwrap(),
            );
            assert!(
                trailhound_fuzz::same_up_to_float_ulp(&a, &b),
                "import changed the event:\n{}\n{}",
                ev.json,
                back.json
            );
        }
        assert_eq!(
            back,
            QueuedEvent {
                created_ms,
                json: back.json.clone(),
                ..ev
            }
        );
        if let Some(change) = change {
            tracker.apply(change);
        }
    }
});

/// The calendar year of a time in ms since the epoch (proleptic Gregorian, UTC).
fn year(ms: i64) -> i64 {
    use chrono::Datelike as _;
    chrono::DateTime::from_timestamp_millis(ms).map_or(1970, |t| i64::from(t.year()))
}
