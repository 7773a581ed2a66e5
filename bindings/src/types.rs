//! Records and enums mirroring the core's types, built from them with `From`/`TryFrom`.
//! They live here so that the core stays free of UniFFI.

use std::collections::HashMap;

use trailhound::core::breaker::{EndpointStats as CoreEndpointStats, OpenReason as CoreOpenReason};
use trailhound::core::report::Dropped as CoreDropped;
use trailhound::core::retry::RetryState as CoreRetry;
use trailhound::{
    AppInfo as CoreAppInfo, ContextInfo as CoreContextInfo, DeviceConditions as CoreConditions,
    DropReason as CoreDropReason, Message, MessageType, Network as CoreNetwork,
    Notification as CoreNotification, Stats as CoreStats,
};

use crate::error::TrailhoundError;
use crate::int::{out_i32, out_i64, out_status, unsigned};
use crate::value::{from_properties, to_properties, Value};

/// The kind of network the device is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum Network {
    /// No connectivity: no upload is attempted.
    Offline,
    /// Wi-Fi.
    Wifi,
    /// Cellular data.
    Cellular,
    /// Wired.
    Ethernet,
    /// Not reported; treated as a fast link.
    Unknown,
}

impl From<Network> for CoreNetwork {
    fn from(n: Network) -> Self {
        match n {
            Network::Offline => CoreNetwork::Offline,
            Network::Wifi => CoreNetwork::Wifi,
            Network::Cellular => CoreNetwork::Cellular,
            Network::Ethernet => CoreNetwork::Ethernet,
            Network::Unknown => CoreNetwork::Unknown,
        }
    }
}

impl From<CoreNetwork> for Network {
    fn from(n: CoreNetwork) -> Self {
        match n {
            CoreNetwork::Offline => Network::Offline,
            CoreNetwork::Wifi => Network::Wifi,
            CoreNetwork::Cellular => Network::Cellular,
            CoreNetwork::Ethernet => Network::Ethernet,
            CoreNetwork::Unknown => Network::Unknown,
        }
    }
}

/// Device conditions that decide when uploads happen; forwarded by the platform glue.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct DeviceConditions {
    /// Battery charge from 0.0 to 1.0, if known.
    #[uniffi(default = None)]
    pub battery_level: Option<f32>,
    /// Whether the device is charging, if known.
    #[uniffi(default = None)]
    pub charging: Option<bool>,
    /// Low-power (iOS) or battery-saver (Android) mode.
    #[uniffi(default = false)]
    pub low_power_mode: bool,
    /// The current network.
    pub network: Network,
    /// Whether the network is metered.
    #[uniffi(default = false)]
    pub metered: bool,
}

impl From<DeviceConditions> for CoreConditions {
    fn from(c: DeviceConditions) -> Self {
        CoreConditions {
            battery_level: c.battery_level,
            charging: c.charging,
            low_power_mode: c.low_power_mode,
            network: c.network.into(),
            metered: c.metered,
        }
    }
}

/// The app, for `context.app`.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct AppInfo {
    /// Display name.
    pub name: String,
    /// Version string.
    pub version: String,
    /// Build number.
    pub build: String,
    /// Bundle id or package name.
    pub namespace: String,
}

/// What the platform knows about the app and device, for every event's `context`.
#[derive(Debug, Clone, PartialEq, Default, uniffi::Record)]
pub struct ContextInfo {
    /// The app.
    #[uniffi(default = None)]
    pub app: Option<AppInfo>,
    /// Device manufacturer.
    #[uniffi(default = None)]
    pub device_manufacturer: Option<String>,
    /// Device model.
    #[uniffi(default = None)]
    pub device_model: Option<String>,
    /// Device type (`android`, `ios`…).
    #[uniffi(default = None)]
    pub device_type: Option<String>,
    /// OS name.
    #[uniffi(default = None)]
    pub os_name: Option<String>,
    /// OS version.
    #[uniffi(default = None)]
    pub os_version: Option<String>,
    /// Locale (`en-US`).
    #[uniffi(default = None)]
    pub locale: Option<String>,
    /// IANA time zone.
    #[uniffi(default = None)]
    pub timezone: Option<String>,
    /// Screen width in points; not negative.
    #[uniffi(default = None)]
    pub screen_width: Option<i32>,
    /// Screen height in points; not negative.
    #[uniffi(default = None)]
    pub screen_height: Option<i32>,
    /// Pixels per point.
    #[uniffi(default = None)]
    pub screen_density: Option<f64>,
}

/// A screen dimension from the host: negative is a `Config` error naming it.
fn screen(setting: &str, v: Option<i32>) -> Result<Option<u32>, TrailhoundError> {
    // A non-negative i32 always fits a u32: the fallback is never taken.
    v.map(|v| unsigned(setting, v.into()).map(|v| u32::try_from(v).unwrap_or(u32::MAX)))
        .transpose()
}

impl TryFrom<ContextInfo> for CoreContextInfo {
    type Error = TrailhoundError;

    fn try_from(c: ContextInfo) -> Result<Self, TrailhoundError> {
        Ok(CoreContextInfo {
            app: c.app.map(|a| CoreAppInfo {
                name: a.name,
                version: a.version,
                build: a.build,
                namespace: a.namespace,
            }),
            device_manufacturer: c.device_manufacturer,
            device_model: c.device_model,
            device_type: c.device_type,
            os_name: c.os_name,
            os_version: c.os_version,
            locale: c.locale,
            timezone: c.timezone,
            screen_width: screen("context.screen_width", c.screen_width)?,
            screen_height: screen("context.screen_height", c.screen_height)?,
            screen_density: c.screen_density,
            user_agent: None,
        })
    }
}

/// Why events were dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum DropReason {
    /// Over the queue's event cap; the oldest went.
    CountCap,
    /// Over the queue's bytes cap; the oldest went.
    BytesCap,
    /// Older than the age cap.
    Age,
    /// The server refused the event.
    Rejected {
        /// The HTTP status.
        status: i32,
    },
    /// 413 for the event alone.
    TooLarge,
    /// The disk was full at commit.
    DiskFull,
    /// The store was corrupt and replaced.
    StoreCorrupt,
    /// Storage kept failing until shutdown: accepted, never committed.
    StoreFailed,
    /// The user opted out.
    OptOut,
    /// A plugin dropped the event.
    Plugin,
    /// The event broke the tracking plan (an `enforce` mode).
    PlanViolation,
}

impl From<CoreDropReason> for DropReason {
    fn from(r: CoreDropReason) -> Self {
        match r {
            CoreDropReason::CountCap => DropReason::CountCap,
            CoreDropReason::BytesCap => DropReason::BytesCap,
            CoreDropReason::Age => DropReason::Age,
            CoreDropReason::Rejected { status } => DropReason::Rejected {
                status: out_status(status),
            },
            CoreDropReason::TooLarge => DropReason::TooLarge,
            CoreDropReason::DiskFull => DropReason::DiskFull,
            CoreDropReason::StoreCorrupt => DropReason::StoreCorrupt,
            CoreDropReason::StoreFailed => DropReason::StoreFailed,
            CoreDropReason::OptOut => DropReason::OptOut,
            CoreDropReason::Plugin => DropReason::Plugin,
            CoreDropReason::PlanViolation => DropReason::PlanViolation,
        }
    }
}

/// What the delivery listener hears.
#[derive(Debug, Clone, PartialEq, uniffi::Enum)]
pub enum Notification {
    /// A batch was acknowledged.
    Delivered {
        /// Its `messageId`s.
        message_ids: Vec<String>,
    },
    /// Events were dropped.
    Dropped {
        /// Why.
        reason: DropReason,
        /// How many.
        count: i64,
        /// Their `messageId`s, where known.
        message_ids: Vec<String>,
    },
    /// An upload failed and will be retried.
    UploadFailed {
        /// The HTTP status, or none for a network error.
        status: Option<i32>,
        /// What went wrong.
        error: String,
        /// Consecutive failures.
        attempts: i32,
        /// Milliseconds until the next attempt.
        retry_in_ms: i64,
    },
    /// The server refused the write key; uploads are paused.
    Paused {
        /// The HTTP status.
        status: i32,
        /// Milliseconds until a probe request.
        resume_in_ms: i64,
    },
    /// An event broke the tracking plan.
    PlanViolation {
        /// The event's `messageId`.
        message_id: String,
        /// `reported`, `stripped` or `dropped`.
        action: String,
        /// What it broke.
        violations: Vec<PlanViolation>,
    },
    /// An endpoint's circuit breaker opened: batches go to the next endpoint, if any.
    EndpointOpened {
        /// The endpoint's base URL.
        url: String,
        /// `network`, `status`, `paused` or `blocked`.
        reason: String,
        /// The HTTP status behind a `status` or `paused` reason.
        status: Option<i32>,
        /// Milliseconds until it is tried again.
        retry_in_ms: i64,
    },
    /// An endpoint that was open answered again.
    EndpointClosed {
        /// The endpoint's base URL.
        url: String,
    },
    /// Storage failed.
    StoreError {
        /// The failure.
        error: String,
    },
}

/// The HTTP status behind a breaker's reason, if any.
fn reason_status(reason: CoreOpenReason) -> Option<i32> {
    match reason {
        CoreOpenReason::Status { status } | CoreOpenReason::Paused { status } => {
            Some(out_status(status))
        }
        CoreOpenReason::Network | CoreOpenReason::Blocked => None,
    }
}

/// One broken rule of a tracking plan.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct PlanViolation {
    /// The event (`track` name, `screen:Name`, `identify`, …).
    pub event: String,
    /// The stable rule id, such as `type` or `required`.
    pub rule: String,
    /// A JSON pointer into the message, such as `/properties/price`.
    pub pointer: String,
    /// What the plan expects there.
    pub expected: String,
    /// What was found.
    pub found: String,
}

impl From<trailhound::core::plan::Violation> for PlanViolation {
    fn from(v: trailhound::core::plan::Violation) -> Self {
        PlanViolation {
            event: v.event,
            rule: v.rule.as_str().to_owned(),
            pointer: v.pointer,
            expected: v.expected,
            found: v.found,
        }
    }
}

impl From<&CoreNotification> for Notification {
    fn from(n: &CoreNotification) -> Self {
        match n.clone() {
            CoreNotification::Delivered { message_ids } => Notification::Delivered { message_ids },
            CoreNotification::Dropped {
                reason,
                count,
                message_ids,
            } => Notification::Dropped {
                reason: reason.into(),
                count: out_i64(count),
                message_ids,
            },
            CoreNotification::UploadFailed {
                status,
                error,
                attempts,
                retry_in_ms,
            } => Notification::UploadFailed {
                status: status.map(out_status),
                error,
                attempts: out_i32(attempts),
                retry_in_ms: out_i64(retry_in_ms),
            },
            CoreNotification::Paused {
                status,
                resume_in_ms,
            } => Notification::Paused {
                status: out_status(status),
                resume_in_ms: out_i64(resume_in_ms),
            },
            CoreNotification::PlanViolation {
                message_id,
                action,
                violations,
            } => Notification::PlanViolation {
                message_id,
                action: action.to_owned(),
                violations: violations.into_iter().map(Into::into).collect(),
            },
            CoreNotification::EndpointOpened {
                url,
                reason,
                retry_in_ms,
            } => Notification::EndpointOpened {
                url,
                reason: reason.as_str().to_owned(),
                status: reason_status(reason),
                retry_in_ms: out_i64(retry_in_ms),
            },
            CoreNotification::EndpointClosed { url } => Notification::EndpointClosed { url },
            CoreNotification::StoreError { error } => Notification::StoreError { error },
        }
    }
}

/// What the device does with an event that breaks the tracking plan (see the core's
/// `plan::gate`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, uniffi::Enum)]
pub enum PlanMode {
    /// Events are not checked.
    Off,
    /// Violating events are sent with their rule ids in `context.plan`, counted and told.
    #[default]
    Report,
    /// Violating events are dropped (`PlanViolation`), counted and told.
    Enforce,
    /// Properties the plan does not allow are removed and the event sent (annotated);
    /// any other violation drops it.
    EnforceStrip,
}

impl From<PlanMode> for trailhound::core::plan::PlanMode {
    fn from(m: PlanMode) -> Self {
        use trailhound::core::plan::PlanMode as M;
        match m {
            PlanMode::Off => M::Off,
            PlanMode::Report => M::Report,
            PlanMode::Enforce => M::Enforce,
            PlanMode::EnforceStrip => M::EnforceStrip,
        }
    }
}

/// How many times one event broke one rule of the tracking plan.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PlanViolationCount {
    /// The event (`track` name, `screen:Name`, `identify`, …; `(other events)` past the
    /// policy's `max_violation_kinds`).
    pub event: String,
    /// The stable rule id, such as `type` or `required`.
    pub rule: String,
    /// How many violations.
    pub count: i64,
}

impl From<trailhound::core::plan::ViolationCount> for PlanViolationCount {
    fn from(c: trailhound::core::plan::ViolationCount) -> Self {
        PlanViolationCount {
            event: c.event,
            rule: c.rule.as_str().to_owned(),
            count: out_i64(c.count),
        }
    }
}

/// Dropped events by reason.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Dropped {
    /// Queue event cap.
    pub count_cap: i64,
    /// Queue bytes cap.
    pub bytes_cap: i64,
    /// Age cap.
    pub age: i64,
    /// Refused by the server.
    pub rejected: i64,
    /// 413 alone.
    pub too_large: i64,
    /// Disk full.
    pub disk_full: i64,
    /// Corrupt store replaced.
    pub store_corrupt: i64,
    /// Storage failing until shutdown.
    pub store_failed: i64,
    /// Opt-out.
    pub opt_out: i64,
    /// Dropped by a plugin.
    pub plugin: i64,
    /// Dropped for breaking the tracking plan.
    pub plan_violation: i64,
    /// All of the above.
    pub total: i64,
}

impl From<CoreDropped> for Dropped {
    fn from(d: CoreDropped) -> Self {
        Dropped {
            count_cap: out_i64(d.count_cap),
            bytes_cap: out_i64(d.bytes_cap),
            age: out_i64(d.age),
            rejected: out_i64(d.rejected),
            too_large: out_i64(d.too_large),
            disk_full: out_i64(d.disk_full),
            store_corrupt: out_i64(d.store_corrupt),
            store_failed: out_i64(d.store_failed),
            opt_out: out_i64(d.opt_out),
            plugin: out_i64(d.plugin),
            plan_violation: out_i64(d.plan_violation),
            total: out_i64(d.total()),
        }
    }
}

/// Backoff and auth pause.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct RetryState {
    /// Consecutive failed attempts.
    pub attempts: i32,
    /// No upload before this time (ms since the epoch).
    pub next_attempt_ms: Option<i64>,
    /// Whether the wait came from the server's `Retry-After`.
    pub server_directed: bool,
    /// Uploads paused by a 401/403 until this time.
    pub auth_paused_until_ms: Option<i64>,
    /// The status that paused uploads.
    pub auth_status: Option<i32>,
}

impl From<CoreRetry> for RetryState {
    fn from(r: CoreRetry) -> Self {
        RetryState {
            attempts: out_i32(r.attempts),
            next_attempt_ms: r.next_attempt_ms,
            server_directed: r.server_directed,
            auth_paused_until_ms: r.auth_paused_until_ms,
            auth_status: r.auth_status.map(out_status),
        }
    }
}

/// One endpoint's circuit breaker and figures.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct EndpointStats {
    /// The endpoint's base URL.
    pub url: String,
    /// `closed`, `open` or `half_open`.
    pub state: String,
    /// Why it is open or half-open: `network`, `status`, `paused` or `blocked`.
    pub reason: Option<String>,
    /// The HTTP status behind a `status` or `paused` reason.
    pub status: Option<i32>,
    /// Requests sent to it.
    pub requests: i64,
    /// Of those, failed.
    pub failures: i64,
    /// Its latest failure.
    pub last_error: Option<String>,
    /// When it may be tried again, if open (ms since the epoch).
    pub retry_at_ms: Option<i64>,
}

impl From<CoreEndpointStats> for EndpointStats {
    fn from(e: CoreEndpointStats) -> Self {
        EndpointStats {
            url: e.url,
            state: e.state.as_str().to_owned(),
            reason: e.reason.map(|r| r.as_str().to_owned()),
            status: e.reason.and_then(reason_status),
            requests: out_i64(e.requests),
            failures: out_i64(e.failures),
            last_error: e.last_error,
            retry_at_ms: e.retry_at_ms,
        }
    }
}

/// Counters and state.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Stats {
    /// Events handed to the engine.
    pub accepted: i64,
    /// Events waiting for delivery.
    pub queued_events: i64,
    /// Their bytes.
    pub queued_bytes: i64,
    /// Of those, not yet committed to storage.
    pub uncommitted_events: i64,
    /// Events the server acknowledged.
    pub delivered: i64,
    /// Upload requests made.
    pub requests: i64,
    /// Failed requests that will be retried.
    pub retries: i64,
    /// Batches acknowledged.
    pub batches_delivered: i64,
    /// Flushes started.
    pub flushes: i64,
    /// Request body bytes sent, gzipped.
    pub bytes_sent: i64,
    /// Dropped events by reason.
    pub dropped: Dropped,
    /// Backoff and auth pause of the endpoint the next upload waits for.
    pub retry: RetryState,
    /// Each endpoint's circuit breaker, in the configured order.
    pub endpoints: Vec<EndpointStats>,
    /// The network as last reported.
    pub network: Network,
    /// The user opted out.
    pub opted_out: bool,
    /// The last upload or store error.
    pub last_error: Option<String>,
    /// Tracking-plan violations by event and rule (empty without a plan, or in `Off`).
    pub plan_violations: Vec<PlanViolationCount>,
}

impl From<CoreStats> for Stats {
    fn from(s: CoreStats) -> Self {
        Stats {
            accepted: out_i64(s.accepted),
            queued_events: out_i64(s.queued_events),
            queued_bytes: out_i64(s.queued_bytes),
            uncommitted_events: out_i64(s.uncommitted_events),
            delivered: out_i64(s.delivered),
            requests: out_i64(s.requests),
            retries: out_i64(s.retries),
            batches_delivered: out_i64(s.batches_delivered),
            flushes: out_i64(s.flushes),
            bytes_sent: out_i64(s.bytes_sent),
            dropped: s.dropped.into(),
            retry: s.retry.into(),
            endpoints: s.endpoints.into_iter().map(Into::into).collect(),
            network: s.network.into(),
            opted_out: s.opted_out,
            last_error: s.last_error,
            plan_violations: s.plan_violations.into_iter().map(Into::into).collect(),
        }
    }
}

/// The kind of event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum EventType {
    /// `track`.
    Track,
    /// `identify`.
    Identify,
    /// `screen`.
    Screen,
    /// `page`.
    Page,
    /// `group`.
    Group,
    /// `alias`.
    Alias,
}

impl From<MessageType> for EventType {
    fn from(t: MessageType) -> Self {
        match t {
            MessageType::Track => EventType::Track,
            MessageType::Identify => EventType::Identify,
            MessageType::Screen => EventType::Screen,
            MessageType::Page => EventType::Page,
            MessageType::Group => EventType::Group,
            MessageType::Alias => EventType::Alias,
        }
    }
}

/// An event as a plugin sees it, stamped and about to be queued. A plugin may change the
/// names, ids, properties, traits and context; the type and `message_id` are kept.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Event {
    /// The kind; changes to it are ignored.
    pub kind: EventType,
    /// Unique per event; changes to it are ignored (servers dedupe on it).
    pub message_id: String,
    /// ISO-8601 time of the call.
    pub timestamp: String,
    /// The anonymous device id.
    pub anonymous_id: Option<String>,
    /// The user id.
    pub user_id: Option<String>,
    /// The event name (`track`).
    pub event: Option<String>,
    /// The screen or page name.
    pub name: Option<String>,
    /// The group id (`group`).
    pub group_id: Option<String>,
    /// The previous id (`alias`).
    pub previous_id: Option<String>,
    /// Properties (`track`, `screen`, `page`).
    pub properties: Option<HashMap<String, Value>>,
    /// Traits (`identify`, `group`).
    pub traits: Option<HashMap<String, Value>>,
    /// Library, app, device, os, network, session…
    pub context: HashMap<String, Value>,
}

impl From<&Message> for Event {
    fn from(m: &Message) -> Self {
        Event {
            kind: m.kind.into(),
            message_id: m.message_id.clone(),
            timestamp: m.timestamp.clone(),
            anonymous_id: m.anonymous_id.clone(),
            user_id: m.user_id.clone(),
            event: m.event.clone(),
            name: m.name.clone(),
            group_id: m.group_id.clone(),
            previous_id: m.previous_id.clone(),
            properties: m.properties.as_ref().map(from_properties),
            traits: m.traits.as_ref().map(from_properties),
            context: from_properties(&m.context),
        }
    }
}

/// Applies a plugin's changes to the original message. Fails if a changed value has no
/// JSON form (a NaN).
pub(crate) fn apply_event(
    mut m: Message,
    e: Event,
) -> Result<Message, trailhound::core::ValidationError> {
    m.timestamp = e.timestamp;
    m.anonymous_id = e.anonymous_id;
    m.user_id = e.user_id;
    m.event = e.event;
    m.name = e.name;
    m.group_id = e.group_id;
    m.previous_id = e.previous_id;
    m.properties = e
        .properties
        .map(|p| to_properties(p, "properties"))
        .transpose()?;
    m.traits = e.traits.map(|t| to_properties(t, "traits")).transpose()?;
    let context = to_properties(e.context, "context")?;
    // Unchanged (the usual case): keep the shared, already serialised context.
    if context != *m.context {
        m.context = context.into();
    }
    Ok(m)
}
