//! What the engine tells the app: counters ([`Stats`]) and notifications for the delivery
//! listener ([`Notification`]). Nothing is dropped without a reason in both.

use serde::Serialize;

use crate::conditions::Network;
use crate::retry::RetryState;

/// Why events were dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum DropReason {
    /// The queue was over its event count cap; the oldest went.
    CountCap,
    /// The queue was over its bytes cap; the oldest went.
    BytesCap,
    /// The event waited longer than the age cap.
    Age,
    /// The server refused the event (a 400 or 422 that isolated it, or another
    /// non-retryable status for its batch).
    Rejected {
        /// The HTTP status.
        status: u16,
    },
    /// The server said 413 for the event alone.
    TooLarge,
    /// The disk or storage quota was full when the event was committed.
    DiskFull,
    /// The store was corrupt and was replaced; its events were lost.
    StoreCorrupt,
    /// Storage kept failing until the client was shut down: these events were accepted
    /// but never committed.
    StoreFailed,
    /// The user opted out; the queue was purged.
    OptOut,
    /// A plugin dropped the event.
    Plugin,
    /// The event broke the tracking plan, in an `enforce` mode.
    PlanViolation,
}

/// Counts of dropped events, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Dropped {
    /// [`DropReason::CountCap`].
    pub count_cap: u64,
    /// [`DropReason::BytesCap`].
    pub bytes_cap: u64,
    /// [`DropReason::Age`].
    pub age: u64,
    /// [`DropReason::Rejected`].
    pub rejected: u64,
    /// [`DropReason::TooLarge`].
    pub too_large: u64,
    /// [`DropReason::DiskFull`].
    pub disk_full: u64,
    /// [`DropReason::StoreCorrupt`].
    pub store_corrupt: u64,
    /// [`DropReason::StoreFailed`].
    pub store_failed: u64,
    /// [`DropReason::OptOut`].
    pub opt_out: u64,
    /// [`DropReason::Plugin`].
    pub plugin: u64,
    /// [`DropReason::PlanViolation`].
    pub plan_violation: u64,
}

impl Dropped {
    /// Counts `n` drops for `reason`.
    pub fn add(&mut self, reason: DropReason, n: u64) {
        let slot = match reason {
            DropReason::CountCap => &mut self.count_cap,
            DropReason::BytesCap => &mut self.bytes_cap,
            DropReason::Age => &mut self.age,
            DropReason::Rejected { .. } => &mut self.rejected,
            DropReason::TooLarge => &mut self.too_large,
            DropReason::DiskFull => &mut self.disk_full,
            DropReason::StoreCorrupt => &mut self.store_corrupt,
            DropReason::StoreFailed => &mut self.store_failed,
            DropReason::OptOut => &mut self.opt_out,
            DropReason::Plugin => &mut self.plugin,
            DropReason::PlanViolation => &mut self.plan_violation,
        };
        *slot += n;
    }

    /// All drops.
    pub fn total(&self) -> u64 {
        self.count_cap
            + self.bytes_cap
            + self.age
            + self.rejected
            + self.too_large
            + self.disk_full
            + self.store_corrupt
            + self.store_failed
            + self.opt_out
            + self.plugin
            + self.plan_violation
    }
}

/// A snapshot of the engine's counters and state.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    /// Events handed to the engine.
    pub accepted: u64,
    /// Events waiting for delivery (committed or not).
    pub queued_events: u64,
    /// Their bytes.
    pub queued_bytes: u64,
    /// Of those, events not yet committed to storage (the crash window).
    pub uncommitted_events: u64,
    /// Events the server acknowledged.
    pub delivered: u64,
    /// Upload requests made.
    pub requests: u64,
    /// Requests that failed and will be retried.
    pub retries: u64,
    /// Batches acknowledged.
    pub batches_delivered: u64,
    /// Flushes started (each is one radio wake-up at most).
    pub flushes: u64,
    /// Request body bytes the engine handed over: gzipped where the core compresses
    /// (feature `gzip`, the native runtime); in the browser the JSON the page then
    /// compresses with `CompressionStream` where it can.
    pub bytes_sent: u64,
    /// Events dropped, by reason.
    pub dropped: Dropped,
    /// Backoff and auth pause of the endpoint the next upload waits for (with one
    /// endpoint, its own; see `endpoints` for each).
    pub retry: RetryState,
    /// Each endpoint's breaker and figures, in the configured order.
    pub endpoints: Vec<crate::breaker::EndpointStats>,
    /// The network as last reported.
    pub network: Network,
    /// The user opted out.
    pub opted_out: bool,
    /// The last error (upload or store), for display.
    pub last_error: Option<String>,
    /// Tracking-plan violations, by event and rule (the driver fills this in; empty
    /// without a plan).
    pub plan_violations: Vec<crate::plan::ViolationCount>,
}

/// Something the delivery listener should hear about.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Notification {
    /// A batch was acknowledged by the server.
    Delivered {
        /// The `messageId`s delivered.
        message_ids: Vec<String>,
    },
    /// Events were dropped.
    Dropped {
        /// Why.
        #[serde(flatten)]
        reason: DropReason,
        /// How many.
        count: u64,
        /// Their `messageId`s, where known (not for cap evictions, which happen in storage).
        message_ids: Vec<String>,
    },
    /// An upload failed and will be retried.
    UploadFailed {
        /// The HTTP status, or `None` for a network error.
        status: Option<u16>,
        /// What went wrong.
        error: String,
        /// Consecutive failures.
        attempts: u32,
        /// Milliseconds until the next attempt.
        retry_in_ms: u64,
    },
    /// Uploads are paused, events keep queuing within the caps: the server refused the
    /// write key (401, 403), or the endpoint is misconfigured (a redirect, 404, 405, 410,
    /// or any other status that is neither a delivery nor about the data).
    Paused {
        /// The HTTP status: 401/403 for the write key, anything else for the endpoint.
        status: u16,
        /// Milliseconds until a probe request (or the next `flush()`).
        resume_in_ms: u64,
    },
    /// An event broke the tracking plan.
    PlanViolation {
        /// The event's `messageId`.
        message_id: String,
        /// What was done: `reported` (sent, marked), `stripped` (unplanned properties
        /// removed, sent) or `dropped`.
        action: &'static str,
        /// What it broke.
        violations: Vec<crate::plan::Violation>,
    },
    /// An endpoint's breaker opened: batches go to the next endpoint (if any) until it
    /// has waited `retry_in_ms` and a probe succeeds. Told when it opens from closed, and
    /// each time it is found blocked.
    EndpointOpened {
        /// The endpoint's base URL.
        url: String,
        /// Why.
        reason: crate::breaker::OpenReason,
        /// Milliseconds until it is tried again.
        retry_in_ms: u64,
    },
    /// An endpoint that was open answered again: its breaker closed.
    EndpointClosed {
        /// The endpoint's base URL.
        url: String,
    },
    /// Storage failed; what the engine does about it is in `error`.
    StoreError {
        /// The failure.
        error: String,
    },
}
