//! [`TrailhoundClient`]: the core's client behind the FFI, with its [`Config`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use trailhound::core::Policy;

use crate::error::TrailhoundError;
use crate::foreign::{
    DeliveryListener, EventPlugin, HttpTransport, ListenerAdapter, PluginAdapter, TransportAdapter,
};
use crate::types::{ContextInfo, DeviceConditions, Stats};
use crate::value::{to_properties, Value};

/// Changes to the default limits and delays; unset fields keep the defaults documented
/// on the core's `Policy`. Durations are in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, uniffi::Record)]
pub struct PolicyOverrides {
    /// Largest serialised event accepted.
    #[uniffi(default = None)]
    pub max_event_bytes: Option<u64>,
    /// Deepest nesting in properties or traits.
    #[uniffi(default = None)]
    pub max_nesting_depth: Option<u32>,
    /// Most events in one request.
    #[uniffi(default = None)]
    pub max_batch_events: Option<u32>,
    /// Largest request body before compression.
    #[uniffi(default = None)]
    pub max_batch_bytes: Option<u64>,
    /// Most events kept queued.
    #[uniffi(default = None)]
    pub max_queue_events: Option<u64>,
    /// Most bytes kept queued.
    #[uniffi(default = None)]
    pub max_queue_bytes: Option<u64>,
    /// Oldest an event may get while waiting.
    #[uniffi(default = None)]
    pub max_event_age_ms: Option<u64>,
    /// Longest an accepted event waits in memory before it is committed.
    #[uniffi(default = None)]
    pub commit_interval_ms: Option<u64>,
    /// Most events held in memory before a commit is forced.
    #[uniffi(default = None)]
    pub commit_max_events: Option<u32>,
    /// Calls that may wait for the background thread at once.
    #[uniffi(default = None)]
    pub call_queue_capacity: Option<u32>,
    /// Bytes of events that may wait for the background thread at once.
    #[uniffi(default = None)]
    pub call_queue_bytes: Option<u64>,
    /// Events that make an upload worthwhile on an unconstrained link.
    #[uniffi(default = None)]
    pub flush_at: Option<u64>,
    /// How long an event waits on an unconstrained link before it is sent anyway.
    #[uniffi(default = None)]
    pub prompt_delay_ms: Option<u64>,
    /// How long events wait on wifi while on battery.
    #[uniffi(default = None)]
    pub relaxed_delay_ms: Option<u64>,
    /// Longest any event waits while the network is up.
    #[uniffi(default = None)]
    pub max_delay_ms: Option<u64>,
    /// How long before `max_delay` held uploads start.
    #[uniffi(default = None)]
    pub upload_margin_ms: Option<u64>,
    /// Fraction of a queue cap at which held uploads go out regardless of the battery.
    #[uniffi(default = None)]
    pub near_cap_fraction: Option<f64>,
    /// Battery level (0.0 to 1.0) under which, when not charging, uploads are held.
    #[uniffi(default = None)]
    pub low_battery_level: Option<f32>,
    /// First retry delay.
    #[uniffi(default = None)]
    pub backoff_base_ms: Option<u64>,
    /// Longest retry delay.
    #[uniffi(default = None)]
    pub backoff_max_ms: Option<u64>,
    /// How long uploads stay paused after a 401 or 403 before a probe.
    #[uniffi(default = None)]
    pub auth_pause_ms: Option<u64>,
    /// Upload request timeout.
    #[uniffi(default = None)]
    pub request_timeout_ms: Option<u64>,
    /// Inactivity after which a new session starts.
    #[uniffi(default = None)]
    pub session_timeout_ms: Option<u64>,
}

impl PolicyOverrides {
    fn apply(&self, p: &mut Policy) {
        let ms = Duration::from_millis;
        if let Some(v) = self.max_event_bytes {
            p.max_event_bytes = v as usize;
        }
        if let Some(v) = self.max_nesting_depth {
            p.max_nesting_depth = v as usize;
        }
        if let Some(v) = self.max_batch_events {
            p.max_batch_events = v as usize;
        }
        if let Some(v) = self.max_batch_bytes {
            p.max_batch_bytes = v as usize;
        }
        if let Some(v) = self.max_queue_events {
            p.max_queue_events = v;
        }
        if let Some(v) = self.max_queue_bytes {
            p.max_queue_bytes = v;
        }
        if let Some(v) = self.max_event_age_ms {
            p.max_event_age = ms(v);
        }
        if let Some(v) = self.commit_interval_ms {
            p.commit_interval = ms(v);
        }
        if let Some(v) = self.commit_max_events {
            p.commit_max_events = v as usize;
        }
        if let Some(v) = self.call_queue_capacity {
            p.call_queue_capacity = v as usize;
        }
        if let Some(v) = self.call_queue_bytes {
            p.call_queue_bytes = v as usize;
        }
        if let Some(v) = self.flush_at {
            p.flush_at = v;
        }
        if let Some(v) = self.prompt_delay_ms {
            p.prompt_delay = ms(v);
        }
        if let Some(v) = self.relaxed_delay_ms {
            p.relaxed_delay = ms(v);
        }
        if let Some(v) = self.max_delay_ms {
            p.max_delay = ms(v);
        }
        if let Some(v) = self.upload_margin_ms {
            p.upload_margin = ms(v);
        }
        if let Some(v) = self.near_cap_fraction {
            p.near_cap_fraction = v;
        }
        if let Some(v) = self.low_battery_level {
            p.low_battery_level = v;
        }
        if let Some(v) = self.backoff_base_ms {
            p.backoff_base = ms(v);
        }
        if let Some(v) = self.backoff_max_ms {
            p.backoff_max = ms(v);
        }
        if let Some(v) = self.auth_pause_ms {
            p.auth_pause = ms(v);
        }
        if let Some(v) = self.request_timeout_ms {
            p.request_timeout = ms(v);
        }
        if let Some(v) = self.session_timeout_ms {
            p.session_timeout = ms(v);
        }
    }
}

/// How to start a client. No Android `Context` or iOS object in it: the platform glue
/// forwards device state separately.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
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
    /// A fixed retry-jitter seed (tests); random by default.
    #[uniffi(default = None)]
    pub jitter_seed: Option<u64>,
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
        let mut b = trailhound::Builder::new(config.write_key, config.endpoint, config.data_dir);
        if let Some(p) = &config.policy {
            b = b.with_policy(|policy| p.apply(policy));
        }
        if let Some(c) = config.context {
            b = b.context(c.into());
        }
        if let Some(c) = config.conditions {
            b = b.conditions(c.into());
        }
        if let Some(seed) = config.jitter_seed {
            b = b.jitter_seed(seed);
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
    /// stopped by an error, the network or backoff), at most `timeout_ms`.
    pub fn flush_blocking(&self, timeout_ms: u64) -> Result<Stats, TrailhoundError> {
        Ok(self
            .inner
            .flush_blocking(Duration::from_millis(timeout_ms))?
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
    pub fn invalid_calls(&self) -> u64 {
        self.inner.invalid_calls()
    }

    /// Commits everything, makes one last flush attempt, and stops within `timeout_ms`.
    /// Undelivered events stay queued for the next start; later calls fail with `Closed`.
    pub fn shutdown(&self, timeout_ms: u64) -> Result<(), TrailhoundError> {
        Ok(self.inner.shutdown(Duration::from_millis(timeout_ms))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unset overrides keep every default; a set one changes only its own field.
    #[test]
    fn overrides_change_only_what_is_set() {
        let mut p = Policy::default();
        PolicyOverrides::default().apply(&mut p);
        assert_eq!(p, Policy::default());
        let o = PolicyOverrides {
            auth_pause_ms: Some(1_500),
            low_battery_level: Some(0.3),
            call_queue_capacity: Some(7),
            ..PolicyOverrides::default()
        };
        o.apply(&mut p);
        let expected = Policy {
            auth_pause: Duration::from_millis(1_500),
            low_battery_level: 0.3,
            call_queue_capacity: 7,
            ..Policy::default()
        };
        assert_eq!(p, expected);
    }
}
