//! Hostile input to every exported function that takes numbers or values: each gets an
//! error value or a sane result, and no panic happens anywhere (the FFI edge, the core's
//! background thread). A panic hook counts panics; this file has no test that panics on
//! purpose, so the count must stay zero.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};

use trailhound_ffi::client::{MAX_CALL_QUEUE_CAPACITY, MAX_DURATION_MS, MAX_POLICY_SIZE};
use trailhound_ffi::value::{from_json, properties_to_json, to_json, MAX_VALUE_DEPTH};
use trailhound_ffi::*;

static PANICS: AtomicUsize = AtomicUsize::new(0);

/// Counts every panic in this process (on any thread), then reports it as usual.
fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            default(info);
        }));
    });
}

fn assert_no_panic() {
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "a panic happened");
}

/// Answers every request with the next scripted status, then 200.
struct Scripted(Mutex<Vec<i32>>);
impl HttpTransport for Scripted {
    fn send(&self, _: HttpRequest) -> Result<HttpResponse, TrailhoundError> {
        let mut s = self.0.lock().unwrap();
        let status = if s.is_empty() { 200 } else { s.remove(0) };
        Ok(HttpResponse {
            status,
            retry_after: None,
        })
    }
}

fn config(dir: &std::path::Path, policy: Option<PolicyOverrides>) -> Config {
    Config {
        write_key: "key".into(),
        endpoint: "https://collector.example.com".into(),
        data_dir: dir.to_string_lossy().into_owned(),
        policy,
        context: None,
        conditions: None,
        // Negative on purpose: a seed is any 64 bits.
        jitter_seed: Some(i64::MIN),
        plan_json: None,
        plan_file: None,
        plan_mode: None,
        fallback_endpoints: vec![],
    }
}

fn client(
    dir: &std::path::Path,
    policy: Option<PolicyOverrides>,
    statuses: Vec<i32>,
) -> Result<Arc<TrailhoundClient>, TrailhoundError> {
    let t = Arc::new(Scripted(Mutex::new(statuses)));
    TrailhoundClient::new(config(dir, policy), Some(t), vec![], vec![])
}

/// Every policy override at its type's extreme (i64::MAX, i32::MAX, i64::MIN, -1, NaN,
/// infinity) is a `Config` error naming the setting, not a panic or an abort.
#[test]
fn extreme_policy_overrides_are_config_errors() {
    count_panics();
    let d = PolicyOverrides::default;
    let cases: Vec<(&str, PolicyOverrides)> = vec![
        (
            "max_event_bytes",
            PolicyOverrides {
                max_event_bytes: Some(i64::MAX),
                ..d()
            },
        ),
        (
            "max_nesting_depth",
            PolicyOverrides {
                max_nesting_depth: Some(i32::MAX),
                ..d()
            },
        ),
        (
            "max_batch_events",
            PolicyOverrides {
                max_batch_events: Some(0),
                ..d()
            },
        ),
        (
            "max_batch_bytes",
            PolicyOverrides {
                max_batch_bytes: Some(i64::MAX),
                ..d()
            },
        ),
        (
            "max_queue_events",
            PolicyOverrides {
                max_queue_events: Some(i64::MAX),
                ..d()
            },
        ),
        (
            "max_queue_bytes",
            PolicyOverrides {
                max_queue_bytes: Some(i64::MAX),
                ..d()
            },
        ),
        (
            "max_event_age_ms",
            PolicyOverrides {
                max_event_age_ms: Some(i64::MAX),
                ..d()
            },
        ),
        (
            "commit_interval_ms",
            PolicyOverrides {
                commit_interval_ms: Some(i64::MAX),
                ..d()
            },
        ),
        (
            "call_queue_capacity",
            PolicyOverrides {
                call_queue_capacity: Some(i32::MAX),
                ..d()
            },
        ),
        (
            "call_queue_bytes",
            PolicyOverrides {
                call_queue_bytes: Some(i64::MAX),
                ..d()
            },
        ),
        (
            "flush_at",
            PolicyOverrides {
                flush_at: Some(i64::MAX),
                ..d()
            },
        ),
        (
            "prompt_delay_ms",
            PolicyOverrides {
                prompt_delay_ms: Some(i64::MAX),
                ..d()
            },
        ),
        (
            "relaxed_delay_ms",
            PolicyOverrides {
                relaxed_delay_ms: Some(i64::MAX),
                ..d()
            },
        ),
        (
            "max_delay_ms",
            PolicyOverrides {
                max_delay_ms: Some(i64::MAX),
                ..d()
            },
        ),
        (
            "upload_margin_ms",
            PolicyOverrides {
                upload_margin_ms: Some(i64::MAX),
                ..d()
            },
        ),
        (
            "near_cap_fraction",
            PolicyOverrides {
                near_cap_fraction: Some(f64::NAN),
                ..d()
            },
        ),
        (
            "near_cap_fraction",
            PolicyOverrides {
                near_cap_fraction: Some(f64::INFINITY),
                ..d()
            },
        ),
        (
            "low_battery_level",
            PolicyOverrides {
                low_battery_level: Some(f32::NAN),
                ..d()
            },
        ),
        (
            "low_battery_level",
            PolicyOverrides {
                low_battery_level: Some(-1.0),
                ..d()
            },
        ),
        (
            "backoff_base",
            PolicyOverrides {
                backoff_base_ms: Some(i64::MAX),
                ..d()
            },
        ),
        (
            "backoff_max_ms",
            PolicyOverrides {
                backoff_max_ms: Some(i64::MAX),
                ..d()
            },
        ),
        (
            "auth_pause_ms",
            PolicyOverrides {
                auth_pause_ms: Some(i64::MAX),
                ..d()
            },
        ),
        (
            "request_timeout_ms",
            PolicyOverrides {
                request_timeout_ms: Some(i64::MAX),
                ..d()
            },
        ),
        (
            "upload_timeout_ms",
            PolicyOverrides {
                upload_timeout_ms: Some(i64::MAX),
                ..d()
            },
        ),
        (
            "max_uncommitted_events",
            PolicyOverrides {
                max_uncommitted_events: Some(i64::MAX),
                ..d()
            },
        ),
        (
            "max_uncommitted_bytes",
            PolicyOverrides {
                max_uncommitted_bytes: Some(i64::MAX),
                ..d()
            },
        ),
        (
            "session_timeout_ms",
            PolicyOverrides {
                session_timeout_ms: Some(i64::MAX),
                ..d()
            },
        ),
        // Negative values, which the signed FFI types let a host pass.
        (
            "policy.flush_at: -1 is negative",
            PolicyOverrides {
                flush_at: Some(-1),
                ..d()
            },
        ),
        (
            "policy.commit_interval_ms: -9223372036854775808 is negative",
            PolicyOverrides {
                commit_interval_ms: Some(i64::MIN),
                ..d()
            },
        ),
        (
            "policy.max_batch_events: -1 is negative",
            PolicyOverrides {
                max_batch_events: Some(-1),
                ..d()
            },
        ),
        (
            "policy.max_endpoints: -2147483648 is negative",
            PolicyOverrides {
                max_endpoints: Some(i32::MIN),
                ..d()
            },
        ),
    ];
    for (setting, policy) in cases {
        let dir = tempfile::tempdir().unwrap();
        match client(dir.path(), Some(policy), vec![]) {
            Err(TrailhoundError::Config { detail }) => {
                assert!(detail.contains(setting), "{setting}: {detail}")
            }
            other => panic!("{setting}: expected a Config error, got {other:?}"),
        }
    }
    assert_no_panic();
}

/// The largest accepted durations, with the retry and auth-pause arithmetic they feed
/// exercised by a 503 and a 401, and `i64::MAX` timeouts: sane results, no panic on
/// either side of the boundary.
#[test]
fn largest_accepted_settings_and_timeouts_work() {
    count_panics();
    let dir = tempfile::tempdir().unwrap();
    let longest = i64::try_from(MAX_DURATION_MS).unwrap();
    let largest = i64::try_from(MAX_POLICY_SIZE).unwrap();
    let max = Some(longest);
    let policy = PolicyOverrides {
        max_event_age_ms: max,
        commit_interval_ms: Some(longest - 1),
        // Uploads start only from the flushes below: with a prompt_delay of 0 the event's
        // own scheduled upload raced the first flush, and a third request (200) could
        // land before the second flush_blocking returned.
        prompt_delay_ms: max,
        relaxed_delay_ms: max,
        max_delay_ms: max,
        upload_margin_ms: Some(longest - 1),
        backoff_base_ms: max,
        backoff_max_ms: max,
        auth_pause_ms: max,
        request_timeout_ms: max,
        upload_timeout_ms: max,
        session_timeout_ms: max,
        max_queue_events: Some(largest),
        max_queue_bytes: Some(largest),
        flush_at: Some(largest),
        max_nesting_depth: Some(
            i32::try_from(trailhound::core::policy::MAX_NESTING_DEPTH).unwrap(),
        ),
        call_queue_capacity: Some(i32::try_from(MAX_CALL_QUEUE_CAPACITY).unwrap()),
        ..PolicyOverrides::default()
    };
    let c = client(dir.path(), Some(policy), vec![503, 401]).unwrap();
    c.track("a".into(), HashMap::new()).unwrap();
    // 503: a retry 100 years away. flush() probes again at once: 401, a pause as long.
    let first = c.flush_blocking(i64::MAX).unwrap();
    assert_eq!(first.delivered, 0);
    let second = c.flush_blocking(i64::MAX).unwrap();
    assert_eq!(second.delivered, 0);
    assert_eq!(second.retry.auth_status, Some(401));
    c.shutdown(i64::MAX).unwrap();
    assert!(matches!(
        c.flush_blocking(i64::MAX),
        Err(TrailhoundError::Closed)
    ));
    c.shutdown(i64::MAX).unwrap();
    assert_no_panic();
}

/// Zero, negative and i64::MAX timeouts, and flushes in a row, return stats or
/// `Timeout`/`Closed`; a negative one is zero.
#[test]
fn extreme_timeouts_are_sane() {
    count_panics();
    let dir = tempfile::tempdir().unwrap();
    let c = client(dir.path(), None, vec![]).unwrap();
    c.track("a".into(), HashMap::new()).unwrap();
    match c.flush_blocking(0) {
        Ok(_) | Err(TrailhoundError::Timeout { timeout_ms: 0 }) => {}
        other => panic!("flush_blocking(0): {other:?}"),
    }
    match c.flush_blocking(i64::MIN) {
        Ok(_) | Err(TrailhoundError::Timeout { timeout_ms: 0 }) => {}
        other => panic!("flush_blocking(i64::MIN): {other:?}"),
    }
    assert_eq!(c.flush_blocking(i64::MAX).unwrap().delivered, 1);
    c.shutdown(0).ok();
    c.shutdown(i64::MAX).unwrap();
    assert_no_panic();
}

/// NaN, infinite and negative device conditions and context numbers are taken without a
/// panic, and events still flow.
#[test]
fn nan_device_conditions_and_context_are_harmless() {
    count_panics();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), None);
    cfg.context = Some(ContextInfo {
        screen_density: Some(f64::NAN),
        screen_width: Some(i32::MAX),
        ..ContextInfo::default()
    });
    cfg.conditions = Some(DeviceConditions {
        battery_level: Some(f32::NEG_INFINITY),
        charging: None,
        low_power_mode: false,
        network: Network::Wifi,
        metered: false,
    });
    let t = Arc::new(Scripted(Mutex::new(vec![])));
    let c = TrailhoundClient::new(cfg, Some(t), vec![], vec![]).unwrap();
    for level in [f32::NAN, f32::INFINITY, -5.0, 7.0] {
        c.set_device_conditions(DeviceConditions {
            battery_level: Some(level),
            charging: Some(false),
            low_power_mode: false,
            network: Network::Wifi,
            metered: false,
        })
        .unwrap();
    }
    c.track("a".into(), HashMap::new()).unwrap();
    c.shutdown(i64::MAX).unwrap();
    assert_no_panic();
}

/// A negative screen size in the context is a `Config` error naming it.
#[test]
fn negative_context_sizes_are_config_errors() {
    for (setting, width, height) in [
        ("context.screen_width: -1 is negative", Some(-1), None),
        (
            "context.screen_height: -2147483648 is negative",
            Some(1),
            Some(i32::MIN),
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path(), None);
        cfg.context = Some(ContextInfo {
            screen_width: width,
            screen_height: height,
            ..ContextInfo::default()
        });
        let t = Arc::new(Scripted(Mutex::new(vec![])));
        match TrailhoundClient::new(cfg, Some(t), vec![], vec![]) {
            Err(TrailhoundError::Config { detail }) => {
                assert!(detail.contains(setting), "{setting}: {detail}")
            }
            other => panic!("{setting}: expected a Config error, got {other:?}"),
        }
    }
}

fn nest(depth: usize) -> Value {
    let mut v = Value::Null;
    for i in 0..depth {
        v = if i % 2 == 0 {
            Value::Array { v: vec![v] }
        } else {
            Value::Object {
                v: [("k".to_owned(), v)].into(),
            }
        };
    }
    v
}

/// The public conversion refuses NaN, infinities and nesting past `MAX_VALUE_DEPTH` with
/// `Invalid`, takes the extremes of every number, and `from_json` inverts it.
#[test]
fn value_conversion_refuses_hostile_values() {
    count_panics();
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let r = to_json(Value::Array {
            v: vec![Value::Double { v: bad }],
        });
        assert!(
            matches!(r, Err(TrailhoundError::Invalid { ref detail }) if detail.contains("value[0]")),
            "{r:?}"
        );
    }
    assert!(to_json(nest(MAX_VALUE_DEPTH)).is_ok());
    match to_json(nest(MAX_VALUE_DEPTH + 1)) {
        Err(TrailhoundError::Invalid { detail }) => assert!(detail.contains("deeper")),
        other => panic!("{other:?}"),
    }
    let extremes = Value::Array {
        v: vec![
            Value::Int { v: i64::MIN },
            Value::Int { v: i64::MAX },
            Value::Double { v: f64::MAX },
            Value::Double {
                v: f64::MIN_POSITIVE,
            },
            Value::Double { v: -0.0 },
            Value::Text {
                v: "\u{0}\u{FFFF}".into(),
            },
        ],
    };
    let json = to_json(extremes.clone()).unwrap();
    assert_eq!(from_json(&json), extremes);
    let map: HashMap<String, Value> = [(String::new(), nest(3))].into();
    assert_eq!(properties_to_json(map, "properties").unwrap().len(), 1);
    assert_no_panic();
}

/// Hostile values through the exported calls: an `Invalid` error each, the client works on.
#[test]
fn hostile_values_through_calls_are_invalid_errors() {
    count_panics();
    let dir = tempfile::tempdir().unwrap();
    let c = client(dir.path(), None, vec![]).unwrap();
    let deep: HashMap<String, Value> = [("d".to_owned(), nest(MAX_VALUE_DEPTH * 4))].into();
    let nan: HashMap<String, Value> = [("n".to_owned(), Value::Double { v: f64::NAN })].into();
    let big: HashMap<String, Value> = [(
        "b".to_owned(),
        Value::Text {
            v: "x".repeat(2 * 1024 * 1024),
        },
    )]
    .into();
    for props in [deep, nan, big] {
        assert!(matches!(
            c.track("e".into(), props.clone()),
            Err(TrailhoundError::Invalid { .. })
        ));
        assert!(matches!(
            c.identify(Some(String::new()), props),
            Err(TrailhoundError::Invalid { .. })
        ));
    }
    assert!(matches!(
        c.track(String::new(), HashMap::new()),
        Err(TrailhoundError::Invalid { .. })
    ));
    assert!(c.alias(String::new()).is_err());
    c.track("ok".into(), HashMap::new()).unwrap();
    assert_eq!(c.flush_blocking(i64::MAX).unwrap().delivered, 1);
    assert_no_panic();
}

/// Hostile strings in the config (NUL bytes, empty, not URLs) are errors; a huge one is
/// no panic.
#[test]
fn hostile_config_strings_are_errors() {
    count_panics();
    let dir = tempfile::tempdir().unwrap();
    let ok_dir = dir.path().to_string_lossy().into_owned();
    let cases = [
        ("https://collector.example.com", "bad\0dir".to_owned()),
        ("https://collector.example.com", String::new()),
        ("", ok_dir.clone()),
        ("https://exa\0mple.com", ok_dir.clone()),
        ("http://[::1", ok_dir.clone()),
        ("https://", ok_dir.clone()),
    ];
    for (endpoint, data_dir) in cases {
        let mut c = config(dir.path(), None);
        c.endpoint = endpoint.into();
        c.data_dir = data_dir.clone();
        let t = Arc::new(Scripted(Mutex::new(vec![])));
        let r = TrailhoundClient::new(c, Some(t), vec![], vec![]);
        assert!(r.is_err(), "{endpoint:?} {data_dir:?} was accepted");
    }
    // A 1 MiB host name: accepted or refused, but no panic.
    let mut c = config(dir.path(), None);
    c.endpoint = format!("https://{}.example.com", "a".repeat(1 << 20));
    let t = Arc::new(Scripted(Mutex::new(vec![])));
    if let Ok(client) = TrailhoundClient::new(c, Some(t), vec![], vec![]) {
        client.shutdown(0).ok();
    }
    assert_no_panic();
}

/// Answers with the scripted status and `Retry-After`, then 200.
struct ScriptedRetryAfter(Mutex<Vec<(i32, Option<&'static str>)>>);
impl HttpTransport for ScriptedRetryAfter {
    fn send(&self, _: HttpRequest) -> Result<HttpResponse, TrailhoundError> {
        let mut s = self.0.lock().unwrap();
        let (status, retry_after) = if s.is_empty() {
            (200, None)
        } else {
            s.remove(0)
        };
        Ok(HttpResponse {
            status,
            retry_after: retry_after.map(str::to_owned),
        })
    }
}

/// A host transport answering nonsense (status 0, 1xx, 3xx, 600, 65535; `Retry-After` of
/// u64::MAX seconds, negative, year 9999, garbage) gets no panic out of the core.
#[test]
fn hostile_transport_answers_do_not_panic() {
    count_panics();
    let script: Vec<(i32, Option<&'static str>)> = vec![
        (0, None),
        (100, None),
        (199, None),
        (299, None),
        (304, None),
        (399, None),
        (429, Some("18446744073709551615")),
        (503, Some("-5")),
        (503, Some("Fri, 31 Dec 9999 23:59:59 GMT")),
        (503, Some("Thu, 01 Jan 1970 00:00:00 GMT")),
        (429, Some("1e308")),
        (503, Some("\u{0}\u{FFFF}")),
        (600, None),
        (65_535, None),
        // Not HTTP statuses at all: taken for a network error.
        (-1, None),
        (65_536, None),
        (i32::MIN, None),
    ];
    for answer in script {
        let dir = tempfile::tempdir().unwrap();
        let t = Arc::new(ScriptedRetryAfter(Mutex::new(vec![answer])));
        let policy = PolicyOverrides {
            backoff_base_ms: Some(1),
            backoff_max_ms: Some(10),
            ..PolicyOverrides::default()
        };
        let c = TrailhoundClient::new(config(dir.path(), Some(policy)), Some(t), vec![], vec![])
            .unwrap();
        c.track("a".into(), HashMap::new()).unwrap();
        let first = c.flush_blocking(i64::MAX).unwrap();
        assert!(first.requests >= 1, "{answer:?}");
        if u16::try_from(answer.0).is_err() {
            // A network error: retried (after 1 ms here), not taken for an answer.
            assert!(first.retries >= 1, "{answer:?}: {first:?}");
            assert!(first.requests >= 2, "{answer:?}: {first:?}");
        }
        c.flush_blocking(i64::MAX).unwrap();
        c.shutdown(i64::MAX).unwrap();
    }
    assert_no_panic();
}
