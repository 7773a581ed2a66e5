//! [`TrailhoundClient`]: the core's client behind the FFI, with its [`Config`].

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use trailhound::core::Policy;

use crate::error::TrailhoundError;
use crate::foreign::{
    DeliveryListener, EventPlugin, HttpTransport, ListenerAdapter, PluginAdapter, TransportAdapter,
};
use crate::int::{out_i64, unsigned};
use crate::types::{ContextInfo, DeviceConditions, PlanMode, Stats};
use crate::value::{to_properties, Value, MAX_VALUE_DEPTH};

/// Changes to the default limits and delays; unset fields keep the defaults documented
/// on the core's `Policy`. Durations are in milliseconds. No field may be negative (a
/// `Config` error naming it).
#[derive(Debug, Clone, Default, PartialEq, uniffi::Record)]
pub struct PolicyOverrides {
    /// Largest serialised event accepted.
    #[uniffi(default = None)]
    pub max_event_bytes: Option<i64>,
    /// Deepest nesting in properties or traits.
    #[uniffi(default = None)]
    pub max_nesting_depth: Option<i32>,
    /// Most events in one request.
    #[uniffi(default = None)]
    pub max_batch_events: Option<i32>,
    /// Largest request body before compression.
    #[uniffi(default = None)]
    pub max_batch_bytes: Option<i64>,
    /// Most events kept queued.
    #[uniffi(default = None)]
    pub max_queue_events: Option<i64>,
    /// Most bytes kept queued.
    #[uniffi(default = None)]
    pub max_queue_bytes: Option<i64>,
    /// Oldest an event may get while waiting.
    #[uniffi(default = None)]
    pub max_event_age_ms: Option<i64>,
    /// Longest an accepted event waits in memory before it is committed.
    #[uniffi(default = None)]
    pub commit_interval_ms: Option<i64>,
    /// Most events held in memory before a commit is forced.
    #[uniffi(default = None)]
    pub commit_max_events: Option<i32>,
    /// Calls that may wait for the background thread at once.
    #[uniffi(default = None)]
    pub call_queue_capacity: Option<i32>,
    /// Bytes of events that may wait for the background thread at once.
    #[uniffi(default = None)]
    pub call_queue_bytes: Option<i64>,
    /// Longest uploads wait while more than `commit_max_events` calls wait for the
    /// background thread (storage healthy): committing comes before sending.
    #[uniffi(default = None)]
    pub ingest_first_ms: Option<i64>,
    /// Events that make an upload worthwhile on an unconstrained link.
    #[uniffi(default = None)]
    pub flush_at: Option<i64>,
    /// How long an event waits on an unconstrained link before it is sent anyway.
    #[uniffi(default = None)]
    pub prompt_delay_ms: Option<i64>,
    /// On an unconstrained link, how long the oldest event is held once `flush_at` are
    /// queued, so that a burst goes out as a few full batches.
    #[uniffi(default = None)]
    pub prompt_gather_ms: Option<i64>,
    /// How long events wait on wifi while on battery.
    #[uniffi(default = None)]
    pub relaxed_delay_ms: Option<i64>,
    /// Longest any event waits while the network is up.
    #[uniffi(default = None)]
    pub max_delay_ms: Option<i64>,
    /// How long before `max_delay` held uploads start.
    #[uniffi(default = None)]
    pub upload_margin_ms: Option<i64>,
    /// Fraction of a queue cap at which held uploads go out regardless of the battery.
    #[uniffi(default = None)]
    pub near_cap_fraction: Option<f64>,
    /// Battery level (0.0 to 1.0) under which, when not charging, uploads are held.
    #[uniffi(default = None)]
    pub low_battery_level: Option<f32>,
    /// First retry delay.
    #[uniffi(default = None)]
    pub backoff_base_ms: Option<i64>,
    /// Longest retry delay.
    #[uniffi(default = None)]
    pub backoff_max_ms: Option<i64>,
    /// How long uploads stay paused after a 401 or 403 before a probe.
    #[uniffi(default = None)]
    pub auth_pause_ms: Option<i64>,
    /// Upload request timeout.
    #[uniffi(default = None)]
    pub request_timeout_ms: Option<i64>,
    /// How long the engine waits for any transport (the app's included) before it
    /// abandons an upload as a network error; at least `request_timeout_ms`.
    #[uniffi(default = None)]
    pub upload_timeout_ms: Option<i64>,
    /// Most accepted events held in memory while storage fails, before calls get
    /// `Backpressure`.
    #[uniffi(default = None)]
    pub max_uncommitted_events: Option<i64>,
    /// Most bytes of accepted events held in memory while storage fails.
    #[uniffi(default = None)]
    pub max_uncommitted_bytes: Option<i64>,
    /// Whether batches may be taken from the events just committed instead of read back
    /// from the queue.
    #[uniffi(default = None)]
    pub batches_from_memory: Option<bool>,
    /// Inactivity after which a new session starts.
    #[uniffi(default = None)]
    pub session_timeout_ms: Option<i64>,
    /// Most distinct (event, rule) pairs the tracking-plan counts keep; the rest are
    /// counted under `(other events)`.
    #[uniffi(default = None)]
    pub max_violation_kinds: Option<i32>,
    /// Most events in the probe sent to an endpoint whose circuit breaker is half-open.
    #[uniffi(default = None)]
    pub breaker_probe_events: Option<i32>,
    /// Most endpoints, the primary and its fallbacks together.
    #[uniffi(default = None)]
    pub max_endpoints: Option<i32>,
}

/// The longest duration any setting or timeout may take: 100 years in milliseconds.
/// Longer is indistinguishable from "never" for an app, and larger values would overflow
/// the engine's millisecond arithmetic (`now + delay`, `base * 2^n`) or `Instant` on some
/// platforms. Longer timeouts are clamped to it; longer policy settings are refused.
pub const MAX_DURATION_MS: u64 = 100 * 365 * 24 * 60 * 60 * 1000;

/// The largest size or count a policy setting may take: 2^53, far beyond any device and
/// far from overflowing when the engine adds an event's size to it (also the largest
/// integer a JavaScript number or an `f64` holds exactly).
pub const MAX_POLICY_SIZE: u64 = 1 << 53;

/// The most calls that may wait for the background thread (`call_queue_capacity`): 10
/// times the default. The queue's slots are allocated when the client starts.
pub const MAX_CALL_QUEUE_CAPACITY: u32 = 100_000;

/// A host timeout in milliseconds as a `Duration` no clock arithmetic can overflow with:
/// negative is zero (already passed), longer than [`MAX_DURATION_MS`] is that.
pub fn timeout_from_ms(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0).min(MAX_DURATION_MS))
}

fn bad_setting(setting: &str, why: String) -> TrailhoundError {
    TrailhoundError::Config {
        detail: format!("policy.{setting}: {why}"),
    }
}

fn duration(setting: &str, ms: u64) -> Result<Duration, TrailhoundError> {
    if ms > MAX_DURATION_MS {
        return Err(bad_setting(
            setting,
            format!("{ms} ms is longer than the maximum of {MAX_DURATION_MS} ms (100 years)"),
        ));
    }
    Ok(Duration::from_millis(ms))
}

fn size(setting: &str, v: u64) -> Result<u64, TrailhoundError> {
    if v > MAX_POLICY_SIZE {
        return Err(bad_setting(
            setting,
            format!("{v} is larger than the maximum of {MAX_POLICY_SIZE}"),
        ));
    }
    Ok(v)
}

/// A size as `usize`: on a 32-bit device (armeabi-v7a) `as` would silently truncate.
fn usize_size(setting: &str, v: u64) -> Result<usize, TrailhoundError> {
    let v = size(setting, v)?;
    usize::try_from(v)
        .map_err(|_| bad_setting(setting, format!("{v} does not fit this platform's usize")))
}

fn fraction(setting: &str, v: f64) -> Result<f64, TrailhoundError> {
    if !(0.0..=1.0).contains(&v) {
        return Err(bad_setting(setting, format!("{v} is not between 0 and 1")));
    }
    Ok(v)
}

impl PolicyOverrides {
    /// Applies the set fields to `p`. Refuses values the core's own validation cannot
    /// see: negative ones, durations and sizes that would overflow its arithmetic, sizes
    /// that do not fit a 32-bit `usize`, NaN. Ranges and consistency are then the core's
    /// (`Policy::validate`, run by the builder).
    pub fn apply(&self, p: &mut Policy) -> Result<(), TrailhoundError> {
        // A set integer field, refused if negative, then converted by `$conv`.
        macro_rules! set {
            ($field:ident, $conv:ident, $target:ident) => {
                if let Some(v) = self.$field {
                    let v = unsigned(concat!("policy.", stringify!($field)), v.into())?;
                    p.$target = $conv(stringify!($field), v)?;
                }
            };
        }
        set!(max_event_bytes, usize_size, max_event_bytes);
        if let Some(v) = self.max_nesting_depth {
            let v = usize_size(
                "max_nesting_depth",
                unsigned("policy.max_nesting_depth", v.into())?,
            )?;
            if v > MAX_VALUE_DEPTH {
                return Err(bad_setting(
                    "max_nesting_depth",
                    format!("{v} is deeper than the bindings accept ({MAX_VALUE_DEPTH})"),
                ));
            }
            p.max_nesting_depth = v;
        }
        set!(max_batch_events, usize_size, max_batch_events);
        set!(max_batch_bytes, usize_size, max_batch_bytes);
        set!(max_queue_events, size, max_queue_events);
        set!(max_queue_bytes, size, max_queue_bytes);
        set!(max_event_age_ms, duration, max_event_age);
        set!(commit_interval_ms, duration, commit_interval);
        set!(commit_max_events, usize_size, commit_max_events);
        if let Some(v) = self.call_queue_capacity {
            let v = unsigned("policy.call_queue_capacity", v.into())?;
            // The runtime's call queue allocates every slot up front: i32::MAX slots
            // would be an allocation failure, which aborts rather than panics.
            if v > MAX_CALL_QUEUE_CAPACITY.into() {
                return Err(bad_setting(
                    "call_queue_capacity",
                    format!("{v} is larger than the maximum of {MAX_CALL_QUEUE_CAPACITY}"),
                ));
            }
            p.call_queue_capacity = usize_size("call_queue_capacity", v)?;
        }
        set!(call_queue_bytes, usize_size, call_queue_bytes);
        set!(ingest_first_ms, duration, ingest_first);
        set!(flush_at, size, flush_at);
        set!(prompt_delay_ms, duration, prompt_delay);
        set!(prompt_gather_ms, duration, prompt_gather);
        set!(relaxed_delay_ms, duration, relaxed_delay);
        set!(max_delay_ms, duration, max_delay);
        set!(upload_margin_ms, duration, upload_margin);
        if let Some(v) = self.near_cap_fraction {
            p.near_cap_fraction = fraction("near_cap_fraction", v)?;
        }
        if let Some(v) = self.low_battery_level {
            p.low_battery_level = fraction("low_battery_level", v.into())? as f32;
        }
        set!(backoff_base_ms, duration, backoff_base);
        set!(backoff_max_ms, duration, backoff_max);
        set!(auth_pause_ms, duration, auth_pause);
        set!(request_timeout_ms, duration, request_timeout);
        set!(upload_timeout_ms, duration, upload_timeout);
        set!(max_uncommitted_events, usize_size, max_uncommitted_events);
        set!(max_uncommitted_bytes, usize_size, max_uncommitted_bytes);
        if let Some(v) = self.batches_from_memory {
            p.batches_from_memory = v;
        }
        set!(session_timeout_ms, duration, session_timeout);
        set!(max_violation_kinds, usize_size, max_violation_kinds);
        set!(breaker_probe_events, usize_size, breaker_probe_events);
        set!(max_endpoints, usize_size, max_endpoints);
        Ok(())
    }
}

/// How to start a client. No Android `Context` or iOS object in it: the platform glue
/// forwards device state separately.
///
/// Its `Debug` and `Display` leave the write key out, and the generated Kotlin
/// `toString()`, Python `repr()`/`str()` and Swift `description`/`debugDescription` are
/// those (exported below), so that logging a config never logs the key.
#[derive(Clone, PartialEq, uniffi::Record)]
#[uniffi::export(Debug, Display)]
pub struct Config {
    /// The source's write key.
    pub write_key: String,
    /// `https://host[:port][/prefix]`; plain `http` only to a loopback address.
    pub endpoint: String,
    /// A directory the app owns (Android `filesDir`, iOS Application Support).
    pub data_dir: String,
    /// Changes to the default limits.
    #[uniffi(default = None)]
    pub policy: Option<PolicyOverrides>,
    /// App and device facts for every event's context.
    #[uniffi(default = None)]
    pub context: Option<ContextInfo>,
    /// Device conditions at start.
    #[uniffi(default = None)]
    pub conditions: Option<DeviceConditions>,
    /// A fixed retry-jitter seed (tests); random by default. Any value, negative
    /// included: its 64 bits are the seed.
    #[uniffi(default = None)]
    pub jitter_seed: Option<i64>,
    /// The tracking plan's JSON text (bundled with the app). At most one of `plan_json`
    /// and `plan_file`.
    #[uniffi(default = None)]
    pub plan_json: Option<String>,
    /// The tracking plan file's path.
    #[uniffi(default = None)]
    pub plan_file: Option<String>,
    /// What the plan does to an event that breaks it; `Report` when a plan is given and
    /// this is not.
    #[uniffi(default = None)]
    pub plan_mode: Option<PlanMode>,
    /// Endpoints to fall back on, in order, after `endpoint` (none by default): each is
    /// checked like `endpoint`; duplicates and more than `max_endpoints` in all (4) are a
    /// `Config` error. A batch that fails on one goes to the next at once; see the core's
    /// `breaker` module for each endpoint's circuit breaker.
    // Last: Kotlin and Python callers that pass the fields in order need no change.
    #[uniffi(default)]
    pub fallback_endpoints: Vec<String>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("write_key", &format_args!("<redacted>"))
            .field("endpoint", &self.endpoint)
            .field("data_dir", &self.data_dir)
            .field("policy", &self.policy)
            .field("context", &self.context)
            .field("conditions", &self.conditions)
            .field("jitter_seed", &self.jitter_seed)
            // The plan's text can be long; whether there is one is what a log needs.
            .field("plan_json", &self.plan_json.as_ref().map(|_| "<set>"))
            .field("plan_file", &self.plan_file)
            .field("plan_mode", &self.plan_mode)
            .field("fallback_endpoints", &self.fallback_endpoints)
            .finish()
    }
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A running client. Every method is safe to call from any thread at once.
#[derive(Debug, uniffi::Object)]
pub struct TrailhoundClient {
    inner: trailhound::Client,
}

fn props(map: HashMap<String, Value>, path: &str) -> Result<serde_json::Value, TrailhoundError> {
    to_properties(map, path)
        .map(serde_json::Value::Object)
        .map_err(|e| trailhound::Error::from(e).into())
}

#[uniffi::export]
impl TrailhoundClient {
    /// Opens the data directory and starts the background threads. `transport` replaces
    /// the built-in HTTP client (required when the library is built without it); plugins
    /// run in order on the calling thread; listeners hear about deliveries and drops.
    #[uniffi::constructor]
    pub fn new(
        config: Config,
        transport: Option<Arc<dyn HttpTransport>>,
        plugins: Vec<Arc<dyn EventPlugin>>,
        listeners: Vec<Arc<dyn DeliveryListener>>,
    ) -> Result<Arc<Self>, TrailhoundError> {
        if config.data_dir.trim().is_empty() {
            // Would be the process's working directory: `/` on Android, not the app's.
            return Err(TrailhoundError::Config {
                detail: "data_dir is empty; pass a directory the app owns".into(),
            });
        }
        let mut policy = Policy::default();
        if let Some(o) = &config.policy {
            o.apply(&mut policy)?;
        }
        let mut b = trailhound::Builder::new(config.write_key, config.endpoint, config.data_dir)
            .policy(policy);
        for fallback in config.fallback_endpoints {
            b = b.fallback_endpoint(fallback);
        }
        if let Some(c) = config.context {
            b = b.context(c.try_into()?);
        }
        if let Some(c) = config.conditions {
            b = b.conditions(c.into());
        }
        if let Some(seed) = config.jitter_seed {
            b = b.jitter_seed(seed.cast_unsigned());
        }
        b = match (config.plan_json, config.plan_file) {
            (Some(_), Some(_)) => {
                return Err(TrailhoundError::Config {
                    detail: "plan_json and plan_file are both set; pass one plan".into(),
                })
            }
            (Some(json), None) => b.plan_json(json),
            (None, Some(path)) => b.plan_file(path),
            (None, None) => b,
        };
        if let Some(mode) = config.plan_mode {
            b = b.plan_mode(mode.into());
        }
        if let Some(t) = transport {
            b = b.transport(TransportAdapter(t));
        }
        for p in plugins {
            b = b.plugin(PluginAdapter(p));
        }
        for l in listeners {
            b = b.listener(ListenerAdapter(l));
        }
        Ok(Arc::new(TrailhoundClient { inner: b.build()? }))
    }

    /// Records a user action. Returns once the event is validated and handed to the
    /// background thread; never waits for the disk or the network.
    pub fn track(
        &self,
        event: String,
        properties: HashMap<String, Value>,
    ) -> Result<(), TrailhoundError> {
        let p = props(properties, "properties")?;
        Ok(self.inner.track(event, p)?)
    }

    /// Records who the user is; a null user id only records traits.
    pub fn identify(
        &self,
        user_id: Option<String>,
        traits: HashMap<String, Value>,
    ) -> Result<(), TrailhoundError> {
        let t = props(traits, "traits")?;
        Ok(self.inner.identify(user_id.as_deref(), t)?)
    }

    /// Records that a screen was shown.
    pub fn screen(
        &self,
        name: String,
        properties: HashMap<String, Value>,
    ) -> Result<(), TrailhoundError> {
        let p = props(properties, "properties")?;
        Ok(self.inner.screen(name, p)?)
    }

    /// Records that a page was shown.
    pub fn page(
        &self,
        name: String,
        properties: HashMap<String, Value>,
    ) -> Result<(), TrailhoundError> {
        let p = props(properties, "properties")?;
        Ok(self.inner.page(name, p)?)
    }

    /// Records that the user belongs to a group.
    pub fn group(
        &self,
        group_id: String,
        traits: HashMap<String, Value>,
    ) -> Result<(), TrailhoundError> {
        let t = props(traits, "traits")?;
        Ok(self.inner.group(group_id, t)?)
    }

    /// Links the current user to `new_user_id`, which becomes the user id.
    pub fn alias(&self, new_user_id: String) -> Result<(), TrailhoundError> {
        Ok(self.inner.alias(new_user_id)?)
    }

    /// Asks for everything queued to be sent now; returns at once.
    pub fn flush(&self) -> Result<(), TrailhoundError> {
        Ok(self.inner.flush()?)
    }

    /// Sends everything queued now and waits until that flush is over (delivered, or
    /// stopped by an error, the network or backoff), at most `timeout_ms` (negative is 0,
    /// longer is clamped to [`MAX_DURATION_MS`]).
    pub fn flush_blocking(&self, timeout_ms: i64) -> Result<Stats, TrailhoundError> {
        Ok(self
            .inner
            .flush_blocking(timeout_from_ms(timeout_ms))?
            .into())
    }

    /// Forgets the user: new anonymous id, no user id, no traits, new session.
    pub fn reset(&self) -> Result<(), TrailhoundError> {
        Ok(self.inner.reset()?)
    }

    /// Stops collection and purges the queue; persisted.
    pub fn opt_out(&self) -> Result<(), TrailhoundError> {
        Ok(self.inner.opt_out()?)
    }

    /// Resumes collection; persisted.
    pub fn opt_in(&self) -> Result<(), TrailhoundError> {
        Ok(self.inner.opt_in()?)
    }

    /// Whether the user opted out.
    pub fn is_opted_out(&self) -> bool {
        self.inner.is_opted_out()
    }

    /// Reports a change of network, battery or power mode.
    pub fn set_device_conditions(
        &self,
        conditions: DeviceConditions,
    ) -> Result<(), TrailhoundError> {
        Ok(self.inner.set_device_conditions(conditions.into())?)
    }

    /// The app came to the foreground.
    pub fn app_foregrounded(&self) -> Result<(), TrailhoundError> {
        Ok(self.inner.app_foregrounded()?)
    }

    /// The app went to the background: everything is committed and one flush attempted.
    pub fn app_backgrounded(&self) -> Result<(), TrailhoundError> {
        Ok(self.inner.app_backgrounded()?)
    }

    /// The anonymous device id.
    pub fn anonymous_id(&self) -> String {
        self.inner.anonymous_id()
    }

    /// The user id, if known.
    pub fn user_id(&self) -> Option<String> {
        self.inner.user_id()
    }

    /// Counters and state.
    pub fn stats(&self) -> Stats {
        self.inner.stats().into()
    }

    /// Calls refused as invalid since start.
    pub fn invalid_calls(&self) -> i64 {
        out_i64(self.inner.invalid_calls())
    }

    /// Commits everything, makes one last flush attempt, and stops within `timeout_ms`
    /// (negative is 0, longer is clamped to [`MAX_DURATION_MS`]).
    /// Undelivered events stay queued for the next start; later calls fail with `Closed`.
    pub fn shutdown(&self, timeout_ms: i64) -> Result<(), TrailhoundError> {
        Ok(self.inner.shutdown(timeout_from_ms(timeout_ms))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unset overrides keep every default; a set one changes only its own field.
    #[test]
    fn overrides_change_only_what_is_set() {
        let mut p = Policy::default();
        PolicyOverrides::default().apply(&mut p).unwrap();
        assert_eq!(p, Policy::default());
        let o = PolicyOverrides {
            auth_pause_ms: Some(1_500),
            low_battery_level: Some(0.3),
            call_queue_capacity: Some(7),
            max_endpoints: Some(2),
            breaker_probe_events: Some(5),
            ingest_first_ms: Some(250),
            prompt_gather_ms: Some(0),
            batches_from_memory: Some(false),
            ..PolicyOverrides::default()
        };
        o.apply(&mut p).unwrap();
        let expected = Policy {
            auth_pause: Duration::from_millis(1_500),
            low_battery_level: 0.3,
            call_queue_capacity: 7,
            max_endpoints: 2,
            breaker_probe_events: 5,
            ingest_first: Duration::from_millis(250),
            prompt_gather: Duration::ZERO,
            batches_from_memory: false,
            ..Policy::default()
        };
        assert_eq!(p, expected);
    }

    /// A negative override is a `Config` error naming the setting, for i64 and i32 fields.
    #[test]
    fn negative_overrides_are_refused_by_name() {
        let cases = [
            (
                "policy.flush_at",
                PolicyOverrides {
                    flush_at: Some(-1),
                    ..PolicyOverrides::default()
                },
            ),
            (
                "policy.max_delay_ms",
                PolicyOverrides {
                    max_delay_ms: Some(i64::MIN),
                    ..PolicyOverrides::default()
                },
            ),
            (
                "policy.max_nesting_depth",
                PolicyOverrides {
                    max_nesting_depth: Some(-3),
                    ..PolicyOverrides::default()
                },
            ),
            (
                "policy.call_queue_capacity",
                PolicyOverrides {
                    call_queue_capacity: Some(i32::MIN),
                    ..PolicyOverrides::default()
                },
            ),
        ];
        for (setting, o) in cases {
            let mut p = Policy::default();
            match o.apply(&mut p) {
                Err(TrailhoundError::Config { detail }) => {
                    assert!(detail.starts_with(setting), "{setting}: {detail}");
                    assert!(detail.contains("negative"), "{setting}: {detail}");
                }
                other => panic!("{setting}: {other:?}"),
            }
            assert_eq!(p, Policy::default(), "{setting}: nothing applied");
        }
    }

    /// Timeouts from the host: negative is zero, huge is the longest duration.
    #[test]
    fn timeouts_are_clamped() {
        assert_eq!(timeout_from_ms(-5), Duration::ZERO);
        assert_eq!(timeout_from_ms(1_500), Duration::from_millis(1_500));
        assert_eq!(
            timeout_from_ms(i64::MAX),
            Duration::from_millis(MAX_DURATION_MS)
        );
    }
}
