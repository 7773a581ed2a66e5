//! What a Kotlin, Swift or Python app hands the FFI layer (crate `trailhound-ffi`):
//! property trees of `Value` (NaN, infinities, huge integers, deep nesting, any keys)
//! through the exported client methods (`track`, `identify`, `screen`, `page`, `group`,
//! `alias`) of a client that has no network (its transport always fails). The bindings
//! convert the values into the core's JSON, the core validates and stamps the event, and
//! a plugin (an `EventPlugin`, as a host implements it) sees the values converted back:
//! they must be exactly what was sent. When the input asks, the call goes to a client
//! built from a hostile `Config` instead (any endpoint, write key, policy overrides,
//! context and device conditions).
//!
//! No panic may cross the FFI boundary: libFuzzer aborts on any panic, on any thread (the
//! client's background threads included).
#![no_main]

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use trailhound_ffi::{
    AppInfo, Config, ContextInfo, DeviceConditions, Event, EventPlugin, HttpRequest, HttpResponse,
    HttpTransport, Network, PolicyOverrides, TrailhoundClient, TrailhoundError, Value,
};
use trailhound_fuzz::{tempdir, CallKind, Json};

/// A transport with no network: every upload is a network error (retried with backoff).
struct NoNetwork;

impl HttpTransport for NoNetwork {
    fn send(&self, _request: HttpRequest) -> Result<HttpResponse, TrailhoundError> {
        Err(TrailhoundError::Callback {
            detail: "no network in the fuzzer".into(),
        })
    }
}

thread_local! {
    /// The last event the plugin saw on this thread (plugins run on the caller's thread).
    static SEEN: RefCell<Option<Event>> = const { RefCell::new(None) };
    /// Whether the plugin keeps the event (else it drops it, so that the queue stays small).
    static KEEP: Cell<bool> = const { Cell::new(false) };
}

/// A plugin as a host writes one: records the event, then keeps it unchanged (the bindings
/// convert it back into the core's message) or drops it.
struct Recorder;

impl EventPlugin for Recorder {
    fn process(&self, event: Event) -> Result<Option<Event>, TrailhoundError> {
        SEEN.with(|s| *s.borrow_mut() = Some(event.clone()));
        Ok(KEEP.with(Cell::get).then_some(event))
    }
}

#[derive(Debug, Arbitrary)]
struct Overrides {
    max_event_bytes: Option<i64>,
    max_uncommitted_events: Option<i64>,
    max_uncommitted_bytes: Option<i64>,
    upload_timeout_ms: Option<i64>,
    max_nesting_depth: Option<i32>,
    max_batch_events: Option<i32>,
    max_batch_bytes: Option<i64>,
    max_queue_events: Option<i64>,
    max_queue_bytes: Option<i64>,
    max_event_age_ms: Option<i64>,
    commit_interval_ms: Option<i64>,
    commit_max_events: Option<i32>,
    call_queue_capacity: Option<i32>,
    call_queue_bytes: Option<i64>,
    flush_at: Option<i64>,
    prompt_delay_ms: Option<i64>,
    relaxed_delay_ms: Option<i64>,
    max_delay_ms: Option<i64>,
    upload_margin_ms: Option<i64>,
    near_cap_fraction: Option<f64>,
    low_battery_level: Option<f32>,
    backoff_base_ms: Option<i64>,
    backoff_max_ms: Option<i64>,
    auth_pause_ms: Option<i64>,
    request_timeout_ms: Option<i64>,
    session_timeout_ms: Option<i64>,
}

#[derive(Debug, Arbitrary)]
struct HostileConfig {
    write_key: String,
    endpoint: String,
    policy: Option<Overrides>,
    app: Option<(String, String)>,
    locale: Option<String>,
    screen_density: Option<f64>,
    battery_level: Option<f32>,
    offline: bool,
    jitter_seed: Option<i64>,
    plan_json: Option<String>,
    fallback_endpoints: Vec<String>,
}

#[derive(Debug, Arbitrary)]
struct Input {
    method: CallKind,
    name: String,
    props: Vec<(String, Json)>,
    /// The plugin keeps the event: the values go back through the bindings into the core.
    keep: bool,
    /// Build a client from a hostile configuration for this input, instead of the shared one.
    hostile: Option<HostileConfig>,
}

fuzz_target!(|input: Input| {
    let props: HashMap<String, Value> = input
        .props
        .iter()
        .map(|(k, j)| (k.clone(), to_ffi(j)))
        .collect();

    let finite = props.values().all(all_finite);
    let sent = props.clone();
    let method = input.method;
    let carries_props = !matches!(method, CallKind::Alias);
    KEEP.with(|k| k.set(input.keep));
    SEEN.with(|s| s.borrow_mut().take());
    let result = match input.hostile {
        None => call(shared_client(), method, input.name, props),
        Some(h) => {
            let dir = tempdir();
            let client = TrailhoundClient::new(
                hostile_config(h, &dir),
                Some(Arc::new(NoNetwork)),
                vec![Arc::new(Recorder)],
                Vec::new(),
            );
            match client {
                Ok(client) => {
                    let r = call(&client, method, input.name, props);
                    let _ = client.flush();
                    r
                }
                // A refused configuration: there is no call to check.
                Err(_) => return,
            }
        }
    };
    // A non-finite number is refused, never sent as null or dropped silently.
    if carries_props && !finite {
        assert!(
            matches!(result, Err(TrailhoundError::Invalid { .. })),
            "a non-finite number was not refused: {result:?}"
        );
    }
    // What the plugin saw is what the host sent: integers stay integers, doubles doubles.
    if let Some(event) = SEEN.with(|s| s.borrow_mut().take()) {
        assert!(
            finite || !carries_props,
            "a plugin saw an event with a non-finite number"
        );
        if carries_props {
            let seen = event.properties.or(event.traits).unwrap_or_default();
            assert_eq!(
                seen, sent,
                "the values changed on the way through the bindings"
            );
        }
    }
});

fn call(
    client: &TrailhoundClient,
    method: CallKind,
    name: String,
    props: HashMap<String, Value>,
) -> Result<(), TrailhoundError> {
    match method {
        CallKind::Track => client.track(name, props),
        CallKind::Identify { anonymous } => client.identify((!anonymous).then_some(name), props),
        CallKind::Screen => client.screen(name, props),
        CallKind::Page => client.page(name, props),
        CallKind::Group => client.group(name, props),
        CallKind::Alias => client.alias(name),
    }
}

/// One client for the whole run: building one per input would measure thread start-up.
fn shared_client() -> &'static TrailhoundClient {
    // The directory is kept with the client: it must outlive it, and both live until exit.
    static CLIENT: OnceLock<(tempfile::TempDir, Arc<TrailhoundClient>)> = OnceLock::new();
    let (_, client) = CLIENT.get_or_init(|| {
        let dir = tempdir();
        let config = Config {
            write_key: "fuzz".into(),
            endpoint: "http://127.0.0.1:9".into(),
            data_dir: dir.path().to_string_lossy().into_owned(),
            policy: None,
            context: None,
            conditions: None,
            jitter_seed: Some(1),
            plan_json: None,
            plan_file: None,
            plan_mode: None,
            fallback_endpoints: Vec::new(),
        };
        let client = TrailhoundClient::new(
            config,
            Some(Arc::new(NoNetwork)),
            vec![Arc::new(Recorder)],
            Vec::new(),
        )
        .expect("the shared client starts");
        (dir, client)
    });
    client
}

// Every override is set today; `..default()` keeps the target building when one is added.
#[allow(clippy::needless_update)]
fn hostile_config(h: HostileConfig, dir: &tempfile::TempDir) -> Config {
    let policy = h.policy.map(|o| PolicyOverrides {
        max_event_bytes: o.max_event_bytes,
        max_uncommitted_events: o.max_uncommitted_events,
        max_uncommitted_bytes: o.max_uncommitted_bytes,
        upload_timeout_ms: o.upload_timeout_ms,
        max_nesting_depth: o.max_nesting_depth,
        max_batch_events: o.max_batch_events,
        max_batch_bytes: o.max_batch_bytes,
        max_queue_events: o.max_queue_events,
        max_queue_bytes: o.max_queue_bytes,
        max_event_age_ms: o.max_event_age_ms,
        commit_interval_ms: o.commit_interval_ms,
        commit_max_events: o.commit_max_events,
        call_queue_capacity: o.call_queue_capacity,
        call_queue_bytes: o.call_queue_bytes,
        flush_at: o.flush_at,
        prompt_delay_ms: o.prompt_delay_ms,
        relaxed_delay_ms: o.relaxed_delay_ms,
        max_delay_ms: o.max_delay_ms,
        upload_margin_ms: o.upload_margin_ms,
        near_cap_fraction: o.near_cap_fraction,
        low_battery_level: o.low_battery_level,
        backoff_base_ms: o.backoff_base_ms,
        backoff_max_ms: o.backoff_max_ms,
        auth_pause_ms: o.auth_pause_ms,
        request_timeout_ms: o.request_timeout_ms,
        session_timeout_ms: o.session_timeout_ms,
        // Settings added later keep their defaults here until the target learns them.
        ..PolicyOverrides::default()
    });
    Config {
        write_key: h.write_key,
        endpoint: h.endpoint,
        data_dir: dir.path().to_string_lossy().into_owned(),
        policy,
        context: Some(ContextInfo {
            app: h.app.map(|(name, version)| AppInfo {
                name,
                version,
                build: String::new(),
                namespace: String::new(),
            }),
            locale: h.locale,
            screen_density: h.screen_density,
            ..ContextInfo::default()
        }),
        conditions: Some(DeviceConditions {
            battery_level: h.battery_level,
            charging: None,
            low_power_mode: false,
            network: if h.offline {
                Network::Offline
            } else {
                Network::Wifi
            },
            metered: false,
        }),
        jitter_seed: h.jitter_seed,
        // A hostile plan text: the client must refuse it with an error, never panic.
        plan_json: h.plan_json,
        plan_file: None,
        plan_mode: None,
        // Hostile fallback endpoints: refused with an error (bad, repeated, too many).
        fallback_endpoints: h.fallback_endpoints,
    }
}

/// The host's value for a fuzzer tree. Floats are passed as they are, NaN included: a
/// host can send any double.
fn to_ffi(j: &Json) -> Value {
    match j {
        Json::Null => Value::Null,
        Json::Bool(v) => Value::Bool { v: *v },
        Json::Int(v) => Value::Int { v: *v },
        // Host integers are i64; a larger one arrives as a double.
        Json::UInt(v) => Value::Double { v: *v as f64 },
        Json::Float(v) => Value::Double { v: *v },
        Json::Str(v) => Value::Text { v: v.clone() },
        Json::Array(v) => Value::Array {
            v: v.iter().map(to_ffi).collect(),
        },
        Json::Object(v) => Value::Object {
            v: v.iter().map(|(k, j)| (k.clone(), to_ffi(j))).collect(),
        },
        Json::Wrap {
            depth,
            objects,
            key,
            inner,
        } => {
            let mut v = to_ffi(inner);
            for _ in 0..*depth {
                v = if *objects {
                    Value::Object {
                        v: HashMap::from([(key.clone(), v)]),
                    }
                } else {
                    Value::Array { v: vec![v] }
                };
            }
            v
        }
    }
}

fn all_finite(v: &Value) -> bool {
    match v {
        Value::Double { v } => v.is_finite(),
        Value::Array { v } => v.iter().all(all_finite),
        Value::Object { v } => v.values().all(all_finite),
        _ => true,
    }
}
