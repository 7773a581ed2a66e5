//! Every limit Trailhound applies, in one place, each with the reason for its value.
//!
//! The runtime's builder exposes each of these as a setting; the defaults here are what
//! an app gets when it sets nothing. Keep decisions out of platform code: Kotlin, Swift
//! and JavaScript read these values from the engine, they never hard-code their own.

use std::time::Duration;

/// The limits and timings that govern validation, the queue, batching, retries and
/// upload scheduling.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Largest serialised event accepted by `track()` and friends.
    ///
    /// 32 KB is Segment's per-event limit; anything larger would be rejected by every
    /// Segment-compatible collector, so it is refused at the call site instead.
    pub max_event_bytes: usize,

    /// Deepest nesting of objects and arrays in properties or traits.
    ///
    /// Deeper structures are almost always a serialisation accident (a cyclic model
    /// flattened by hand) and make warehouses' JSON columns unusable. 12 levels is more
    /// than any real event schema we have seen needs.
    pub max_nesting_depth: usize,

    /// Most events in one upload request.
    ///
    /// Large enough that a day of typical use goes out in a handful of radio bursts,
    /// small enough that a 413 split converges in a few round trips.
    pub max_batch_events: usize,

    /// Largest request body before compression.
    ///
    /// 500 KB is the Segment HTTP Tracking API's per-request limit.
    pub max_batch_bytes: usize,

    /// Most events kept in the queue; beyond it, the oldest are dropped.
    ///
    /// 100 000 small events are about 50 MB of JSON at worst and are far more than a week
    /// offline produces for any app we have measured (a heavy app: ~3 000 a day).
    pub max_queue_events: u64,

    /// Most bytes of serialised events kept in the queue; beyond it, the oldest are dropped.
    /// Each event counts its own bytes, not the context it shares with the events tracked
    /// under the same context (the queue keeps that once; see
    /// `QueuedEvent::stored_bytes`): what the queue takes on disk.
    ///
    /// 32 MiB keeps the SDK a small tenant of the app's storage quota (browsers give an
    /// origin far more, phones' "clear storage" screens make users notice far less), and
    /// holds [`Policy::max_queue_events`] typical events (about 300 bytes each of their
    /// own: `cargo bench -p trailhound --bench report`, (g)), so that for them the count is
    /// the cap that binds. At 20 MiB, a burst of 100 000 such events tracked faster than
    /// they could be sent lost 12 000 to 20 000 of them to this cap while the count cap
    /// allowed them.
    pub max_queue_bytes: u64,

    /// Oldest an event may get while waiting; older events are dropped.
    ///
    /// 30 days: most pipelines refuse or mis-attribute events much older than that, and
    /// a device that has been offline for a month is better served by fresh data.
    pub max_event_age: Duration,

    /// How long an accepted event may wait in memory before it is committed to storage.
    ///
    /// This, with [`Policy::commit_max_events`], bounds what a crash can lose. 200 ms is
    /// below human reaction time (a user cannot act on a tap and kill the app that fast)
    /// and still groups a burst of `track()` calls into one transaction.
    pub commit_interval: Duration,

    /// Most events held in memory before a commit is forced, whatever the time.
    pub commit_max_events: usize,

    /// Calls (`track()` and friends) that may wait for the background thread at once.
    ///
    /// A burst of 10 000 calls within one commit is far beyond any real app; past it,
    /// `track()` returns a backpressure error instead of letting memory grow without bound
    /// while storage is stalled.
    pub call_queue_capacity: usize,

    /// Bytes of serialised events that may wait for the background thread at once (each
    /// event's own bytes: the context it shares is held once).
    ///
    /// Bounds the SDK's memory whatever the event size: without it, 10 000 calls of 32 KB
    /// events could hold 320 MB. 4 MiB is still thousands of typical events.
    pub call_queue_bytes: usize,

    /// How long uploads may wait while the callers outrun storage (more than
    /// `commit_max_events` calls waiting for the background thread, storage healthy).
    ///
    /// Committing what was accepted comes before sending it: a burst of calls then gets
    /// the CPU that gzip, the batch loads and the network would take. On 2 cores, where
    /// the caller takes one and the engine, the upload thread and the collector share the
    /// other, the benchmark report's burst of 100 000 back-to-back `track()` calls ((g),
    /// 12 alternating rounds each) had a median p99 of 10.4 µs with uploads waiting and
    /// 12.5 µs without, 4 rounds at or under 6 µs against none, and CPU per event
    /// 4.2-6.5 µs against 4.4-8.6. Past this wait uploads go anyway, so that a caller
    /// that never slows down still has its events delivered. 1 s: far beyond any burst of
    /// a real app (the 100 000 calls took 0.2 s), short against `prompt_delay`. Native
    /// runtime only (a browser's calls do not wait for a background thread).
    pub ingest_first: Duration,

    /// Events that make an upload worthwhile on an unconstrained connection (wifi or
    /// ethernet while charging): the "flush at" of other SDKs. The upload then waits for
    /// `prompt_gather` after the oldest of them, so that a burst goes as full batches.
    pub flush_at: u64,

    /// How long an event waits on an unconstrained connection before it is sent anyway.
    pub prompt_delay: Duration,

    /// On an unconstrained connection, how long the oldest waiting event is held once
    /// `flush_at` events are queued, so that a burst of calls goes out as a few full
    /// batches instead of a request every `flush_at` events (a full batch goes at once).
    ///
    /// Measured on the engine's virtual clock (`tests/schedule.rs`, 50 ms round trips,
    /// `flush_at` 20): with no gathering, steady tracking at 200 events/s made 50 requests
    /// per 1,000 events (one every 20), at 2,000/s 10 (one per round trip); with 1 s, 5
    /// and 2 per 1,000 (at 2,000/s full batches, which go at once), for a delivery delay
    /// of 1.0 s and 0.29 s at the 95th percentile. 2 s and 5 s save little more (2.5 and 2
    /// per 1,000 at 200/s) for 2 to 2.4 s of delay. Calls at 10 per second and slower are
    /// unaffected: they reach `flush_at` after the gathering. Cut to `prompt_delay` if that
    /// is shorter.
    pub prompt_gather: Duration,

    /// How long events wait on wifi while on battery, so that several minutes of use go
    /// out in one burst. 10 minutes: a typical session of use is one radio wake-up.
    pub relaxed_delay: Duration,

    /// The longest any event waits while the network is up, whatever the battery or the
    /// kind of network. Cellular, metered, low-battery and low-power uploads are all
    /// held until the oldest event reaches this age (or the queue nears its caps).
    ///
    /// 15 minutes: long enough that a session of use coalesces into one or two radio
    /// wake-ups, short enough for "live" dashboards that refresh every quarter hour.
    pub max_delay: Duration,

    /// How long before `max_delay` held uploads start, so that an upload on a slow link
    /// still lands within `max_delay`. 30 s covers a large batch on a poor cellular link.
    pub upload_margin: Duration,

    /// Fraction of either queue cap at which held uploads go out regardless of the battery,
    /// so that holding never turns into dropping.
    pub near_cap_fraction: f64,

    /// Battery level (0.0 to 1.0) under which, when not charging, uploads are held.
    pub low_battery_level: f32,

    /// First retry delay after a failed upload.
    pub backoff_base: Duration,

    /// Longest retry delay, and the most a server's `Retry-After` is honoured for (a
    /// server or a proxy asking for a day would otherwise stall the queue into its age cap).
    pub backoff_max: Duration,

    /// How long uploads stay paused after a 401 or 403, or an answer that says the endpoint
    /// is misconfigured (a redirect, 404, 405, 410, …), before one probe request is made
    /// (a fixed write key or endpoint may have been deployed server side). `flush()`
    /// probes at once. Events keep queuing within the caps meanwhile: a typo in a setting
    /// must never empty a week of offline events.
    pub auth_pause: Duration,

    /// Most events in a probe: the first batch sent to an endpoint whose breaker is
    /// half-open while another endpoint could take the rest ([`crate::breaker`]).
    ///
    /// 20: enough to show the endpoint accepts real data (a proxy that answers 200 to an
    /// empty body proves nothing), small enough that a probe into a host that is still
    /// down, or that times out, holds back little before the batch moves on to the next
    /// endpoint. With one endpoint there is nothing to move to, and batches stay whole.
    pub breaker_probe_events: usize,

    /// Most endpoints an SDK may be configured with.
    ///
    /// 4: the app's first-party proxy, the vendor's regional and global hosts, and a
    /// spare. A failed batch is tried on each in turn inside the same radio burst, so a
    /// longer list (a list built from a config typo, say) turns one outage into that many
    /// failed requests per flush.
    pub max_endpoints: usize,

    /// How soon after it started a failed browser `fetch` counts as blocked on the device
    /// (an ad blocker, a privacy extension, a corporate filter) rather than as a network
    /// error: it failed with a `TypeError` within this time while `navigator.onLine` was
    /// true, and a same-origin request then got an answer. A blocked endpoint's breaker
    /// opens for [`Policy::backoff_max`] instead of a backoff that would retry it every few
    /// seconds ([`crate::breaker`]).
    ///
    /// Chromium fails a request an extension blocks (`net::ERR_BLOCKED_BY_CLIENT`) before
    /// it touches the network, in milliseconds; playwright's `route.abort("blockedbyclient")`,
    /// which adds a DevTools round trip, took 28 ms at the median (13 to 228) on a loaded
    /// 2-core machine. A network failure takes a round trip at least (a refused connection
    /// or a DNS answer from beyond the local network: tens of milliseconds, more on a
    /// phone), a timeout far more. 100 ms leaves room for a busy main thread to run the
    /// failure's callback late. What fails faster while the page's own origin answers (a
    /// host on the same machine refusing connections, a cached NXDOMAIN for a mistyped
    /// host) is taken as blocked: that endpoint waits `backoff_max`, and no event is lost.
    pub blocked_within: Duration,

    /// Upload request timeout, connect included.
    pub request_timeout: Duration,

    /// The engine's own bound on an upload in flight: with no answer by then, the request
    /// is abandoned and counted as a network error (retried with backoff).
    ///
    /// The built-in transport times out after `request_timeout`, but an app's transport
    /// (OkHttp, URLSession, a browser `fetch`) is not bound by it, and one that never
    /// returns would otherwise stop every later upload. 60 s: twice the default request
    /// timeout, so that the built-in transport's own timeout always fires first.
    pub upload_timeout: Duration,

    /// Most accepted events that may wait in the engine's memory uncommitted.
    ///
    /// Normally a commit takes them within `commit_interval`; while storage fails (busy,
    /// read-only, I/O errors) they pile up. Past this, the runtime stops taking calls
    /// from its call queue, which fills, so that `track()` returns `Backpressure` instead
    /// of memory growing until the OS kills the app (losing all of them). With the call
    /// queue, this bounds what a crash can lose while storage fails.
    pub max_uncommitted_events: usize,

    /// Most bytes of accepted events that may wait in the engine's memory uncommitted;
    /// see [`Policy::max_uncommitted_events`]. 4 MiB, like the call queue: together at most
    /// 8 MiB of events in memory whatever storage does.
    pub max_uncommitted_bytes: usize,

    /// Whether batches may be taken from the events the engine just committed, instead of
    /// being read back from the store ([`crate::Engine`]'s `recent` events).
    ///
    /// True where the engine is the store's only writer and the store keeps the `seq`s the
    /// engine gives (SQLite, whose directory lock admits one client; memory): it saves a
    /// store read per batch. False where another writer may add events unseen, or the
    /// store numbers events itself (IndexedDB shared by a site's tabs).
    pub batches_from_memory: bool,

    /// Inactivity after which the next event starts a new session.
    ///
    /// 30 minutes is the de facto industry definition (Google Analytics, Amplitude, Segment).
    pub session_timeout: Duration,

    /// What a tracking plan, when the app gives one, does to events that break it (see
    /// [`crate::plan::gate`]).
    ///
    /// `report` sends them, marked, and counts and tells every violation: production
    /// builds communicate failure without losing data to a plan that lags behind the app.
    pub plan_mode: crate::plan::PlanMode,

    /// Most distinct (event, rule) pairs whose violations `stats()` counts separately;
    /// past it, counts go to one "(other events)" entry.
    ///
    /// An app that builds event names from ids would otherwise grow the counts without
    /// bound. 1 000 pairs (~100 KB) is far more than a real plan has events times rules.
    pub max_violation_kinds: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_event_bytes: 32 * 1024,
            max_nesting_depth: 12,
            max_batch_events: 500,
            max_batch_bytes: 500 * 1024,
            max_queue_events: 100_000,
            max_queue_bytes: 32 * 1024 * 1024,
            max_event_age: Duration::from_secs(30 * 24 * 3600),
            commit_interval: Duration::from_millis(200),
            commit_max_events: 256,
            call_queue_capacity: 10_000,
            call_queue_bytes: 4 * 1024 * 1024,
            ingest_first: Duration::from_secs(1),
            flush_at: 20,
            prompt_delay: Duration::from_secs(30),
            prompt_gather: Duration::from_secs(1),
            relaxed_delay: Duration::from_secs(10 * 60),
            max_delay: Duration::from_secs(15 * 60),
            upload_margin: Duration::from_secs(30),
            near_cap_fraction: 0.8,
            low_battery_level: 0.2,
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(30 * 60),
            auth_pause: Duration::from_secs(60 * 60),
            breaker_probe_events: 20,
            max_endpoints: 4,
            blocked_within: Duration::from_millis(100),
            request_timeout: Duration::from_secs(30),
            upload_timeout: Duration::from_secs(60),
            max_uncommitted_events: 10_000,
            max_uncommitted_bytes: 4 * 1024 * 1024,
            batches_from_memory: true,
            session_timeout: Duration::from_secs(30 * 60),
            plan_mode: crate::plan::PlanMode::Report,
            max_violation_kinds: 1_000,
        }
    }
}

/// A duration in whole milliseconds, saturating: `Duration::MAX` (or any wait longer
/// than `i64::MAX` ms) is "forever", never a wrapped negative number.
pub fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A setting that cannot work, found by [`Policy::validate`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid setting `{setting}`: {reason}")]
pub struct PolicyError {
    /// The field name.
    pub setting: &'static str,
    /// Why it cannot work.
    pub reason: &'static str,
}

/// Bytes a batch body spends on its envelope (`{"batch":[`, `],"sentAt":"…"}`), reserved
/// when filling a batch so that the whole body stays within [`Policy::max_batch_bytes`].
pub const BATCH_ENVELOPE_BYTES: usize = 64;

/// Deepest [`Policy::max_nesting_depth`] allowed: serde_json and most JSON parsers refuse
/// more than 128 levels, and the event envelope and a batch add levels of their own.
pub const MAX_NESTING_DEPTH: usize = 100;

/// Longest `messageId` collectors accept (Segment's limit).
pub const MAX_MESSAGE_ID_LEN: usize = 100;

/// Browsers cap the bodies of all `keepalive` requests in flight from one page at 64 KiB
/// (the Fetch standard's limit; `navigator.sendBeacon` shares it). A request that survives
/// the page being closed must fit in it, so the browser's batches do.
pub const KEEPALIVE_BUDGET_BYTES: usize = 64 * 1024;

impl Policy {
    /// The defaults for a web page: a batch's body (before compression, so after it too)
    /// stays under [`KEEPALIVE_BUDGET_BYTES`], so that every upload can be a `keepalive`
    /// request that finishes after the page is gone.
    pub fn browser() -> Self {
        Policy {
            max_batch_bytes: KEEPALIVE_BUDGET_BYTES - 4 * 1024,
            // Tabs share one IndexedDB queue, and IndexedDB numbers the events itself.
            batches_from_memory: false,
            ..Policy::default()
        }
    }

    /// Checks that the settings are usable together.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let err = |setting, reason| Err(PolicyError { setting, reason });
        if self.max_event_bytes == 0 {
            return err("max_event_bytes", "must be positive");
        }
        if self.max_nesting_depth > MAX_NESTING_DEPTH {
            return err(
                "max_nesting_depth",
                "must be at most 100: JSON parsers (serde_json among them, and so collectors) \
                 refuse documents nested deeper than 128 levels, and the event adds its own",
            );
        }
        if self.max_batch_bytes < self.max_event_bytes.saturating_add(BATCH_ENVELOPE_BYTES) {
            return err(
                "max_batch_bytes",
                "must fit at least one event of max_event_bytes",
            );
        }
        if self.max_batch_events == 0 {
            return err("max_batch_events", "must be positive");
        }
        if self.max_queue_events == 0 || self.max_queue_bytes < self.max_event_bytes as u64 {
            return err(
                "max_queue_events/max_queue_bytes",
                "must hold at least one event",
            );
        }
        if self.call_queue_capacity == 0 {
            return err("call_queue_capacity", "must be positive");
        }
        if self.call_queue_bytes < self.max_event_bytes {
            return err(
                "call_queue_bytes",
                "must hold at least one event of max_event_bytes",
            );
        }
        if self.breaker_probe_events == 0 {
            return err("breaker_probe_events", "must be positive");
        }
        if self.max_endpoints == 0 {
            return err("max_endpoints", "must be positive");
        }
        if self.commit_max_events == 0 {
            return err("commit_max_events", "must be positive");
        }
        if !(0.0..=1.0).contains(&self.near_cap_fraction) {
            return err("near_cap_fraction", "must be between 0 and 1");
        }
        if self.max_delay < self.prompt_delay || self.max_delay < self.relaxed_delay {
            return err(
                "max_delay",
                "must be at least prompt_delay and relaxed_delay",
            );
        }
        if self.upload_margin >= self.max_delay {
            return err("upload_margin", "must be shorter than max_delay");
        }
        if self.backoff_base.is_zero() || self.backoff_max < self.backoff_base {
            return err(
                "backoff_base/backoff_max",
                "base must be positive and at most max",
            );
        }
        if self.upload_timeout < self.request_timeout {
            return err(
                "upload_timeout",
                "must be at least request_timeout, so that the transport's own timeout fires first",
            );
        }
        if self.max_uncommitted_events < self.commit_max_events {
            return err(
                "max_uncommitted_events",
                "must be at least commit_max_events",
            );
        }
        if self.max_violation_kinds == 0 {
            return err("max_violation_kinds", "must be positive");
        }
        if self.max_uncommitted_bytes < self.max_event_bytes {
            return err(
                "max_uncommitted_bytes",
                "must hold at least one event of max_event_bytes",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The defaults are a valid policy.
    #[test]
    fn defaults_validate() {
        Policy::default().validate().unwrap();
    }

    /// Nesting deeper than JSON parsers read back is refused (found by the message fuzz
    /// target: at 128 levels events were accepted that no collector could parse).
    #[test]
    fn nesting_deeper_than_parsers_read_is_refused() {
        let p = Policy {
            max_nesting_depth: 128,
            ..Policy::default()
        };
        assert_eq!(p.validate().unwrap_err().setting, "max_nesting_depth");
        let p = Policy {
            max_nesting_depth: MAX_NESTING_DEPTH,
            ..Policy::default()
        };
        p.validate().unwrap();
    }

    /// A batch that cannot hold the largest event is refused.
    #[test]
    fn batch_smaller_than_event_is_refused() {
        let p = Policy {
            max_batch_bytes: 1000,
            ..Policy::default()
        };
        assert_eq!(p.validate().unwrap_err().setting, "max_batch_bytes");
    }
}
