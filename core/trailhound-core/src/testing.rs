//! A deterministic driver for the engine on a virtual clock, for tests and simulations.
//!
//! [`Harness`] plays the runtime. It executes store operations on a [`QueueStore`] (a
//! [`MemoryStore`] unless given another), answers uploads from a scripted server after a
//! configurable latency, collects notifications, and moves a virtual clock straight to the
//! next thing that can happen: the engine's [`Engine::poll_timeout`], a server's answer, or
//! the time the caller asked for. It never steps millisecond by millisecond, so a simulated
//! week runs in well under a second (quinn's `quinn-proto/src/tests/util.rs` does the same
//! for connections).
//!
//! Everything that crosses the engine's boundary is recorded: every request (as the
//! server decoded it), every notification, every store operation, and when each
//! `messageId` was tracked and acknowledged.
//!
//! ```
//! use trailhound_core::testing::{Harness, MINUTE};
//! use trailhound_core::Policy;
//!
//! let mut h = Harness::new(Policy::default(), 1, 1_700_000_000_000);
//! let id = h.track("Song Played");
//! h.advance(MINUTE);
//! // An unknown network and no battery is the Prompt tier: sent after `prompt_delay`.
//! assert_eq!(h.delivered_at(&id), Some(1_700_000_000_000 + 30_000));
//! ```

use std::collections::{BTreeMap, VecDeque};

use crate::conditions::{DeviceConditions, Network};
use crate::context::{self, ContextInfo};
use crate::engine::{Engine, Lifecycle, Transmit, UploadResult};
use crate::message::{self, Call, Identity, Properties};
use crate::policy::Policy;
use crate::report::{DropReason, Notification, Stats};
use crate::store::{execute, FailureKind, MemoryStore, QueueStore};

/// One second of virtual time, in milliseconds.
pub const SECOND: i64 = 1_000;
/// One minute of virtual time, in milliseconds.
pub const MINUTE: i64 = 60 * SECOND;
/// One hour of virtual time, in milliseconds.
pub const HOUR: i64 = 60 * MINUTE;
/// One day of virtual time, in milliseconds.
pub const DAY: i64 = 24 * HOUR;

/// Most store operations, requests and answers handled at one instant before the harness
/// decides the engine is looping without making progress.
const MAX_STEPS_PER_INSTANT: u32 = 1_000_000;

/// An answer with this HTTP status and no `Retry-After`.
pub fn status(status: u16) -> UploadResult {
    UploadResult::Response {
        status,
        retry_after: None,
    }
}

/// `200 OK`.
pub fn ok() -> UploadResult {
    status(200)
}

/// An answer with this HTTP status and a `Retry-After` header, verbatim.
pub fn retry_after(status: u16, value: &str) -> UploadResult {
    UploadResult::Response {
        status,
        retry_after: Some(value.to_owned()),
    }
}

/// No answer at all (connection reset).
pub fn network_error() -> UploadResult {
    UploadResult::NetworkError("connection reset by peer".to_owned())
}

/// The request was blocked on the device (an ad blocker, as the browser package sees it).
pub fn blocked() -> UploadResult {
    UploadResult::Blocked("net::ERR_BLOCKED_BY_CLIENT".to_owned())
}

/// No network.
pub fn offline() -> DeviceConditions {
    DeviceConditions {
        network: Network::Offline,
        ..DeviceConditions::default()
    }
}

/// A phone's context info (an Android music app), so that simulated and benchmarked events
/// have their real size on the wire.
pub fn phone_context() -> ContextInfo {
    ContextInfo {
        app: Some(crate::context::AppInfo {
            name: "Tunes".into(),
            version: "4.2.1".into(),
            build: "4210".into(),
            namespace: "com.example.tunes".into(),
        }),
        device_manufacturer: Some("Google".into()),
        device_model: Some("Pixel 8".into()),
        device_type: Some("android".into()),
        os_name: Some("Android".into()),
        os_version: Some("15".into()),
        locale: Some("en-GB".into()),
        timezone: Some("Europe/London".into()),
        screen_width: Some(412),
        screen_height: Some(915),
        screen_density: Some(2.625),
        user_agent: None,
    }
}

/// Wi-Fi while charging: the Prompt tier.
pub fn wifi_charging() -> DeviceConditions {
    DeviceConditions {
        battery_level: Some(0.6),
        charging: Some(true),
        network: Network::Wifi,
        ..DeviceConditions::default()
    }
}

/// Wi-Fi on battery at `level` (0.0 to 1.0): Relaxed, or Hold under the low-battery level.
pub fn wifi_battery(level: f32) -> DeviceConditions {
    DeviceConditions {
        battery_level: Some(level),
        charging: Some(false),
        network: Network::Wifi,
        ..DeviceConditions::default()
    }
}

/// Cellular on battery at `level`: the Cellular tier, or Hold under the low-battery level.
pub fn cellular(level: f32) -> DeviceConditions {
    DeviceConditions {
        battery_level: Some(level),
        charging: Some(false),
        network: Network::Cellular,
        ..DeviceConditions::default()
    }
}

/// The identity a harness gives a fresh device, derived from its seed.
pub fn identity(seed: u64) -> Identity {
    Identity::new(uuid::Uuid::from_u128(
        0x7a11_0000_0000_0000_0000_0000_0000_0000 | seed as u128,
    ))
}

/// One upload request, as the scripted server decoded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The engine's id for the request.
    pub id: u64,
    /// The endpoint it went to ([`Transmit::endpoint`]).
    pub endpoint: usize,
    /// When it was sent (virtual clock).
    pub at_ms: i64,
    /// Events in the batch, as the engine counted them.
    pub events: usize,
    /// Body bytes before compression.
    pub raw_bytes: usize,
    /// Body bytes on the wire (gzip).
    pub compressed_bytes: usize,
    /// The `messageId` of every event in the body, in order.
    pub message_ids: Vec<String>,
    /// The body's `sentAt`, verbatim.
    pub sent_at: String,
    /// What the server answered.
    pub result: UploadResult,
    /// When the answer reaches the engine (`at_ms` plus the latency).
    pub done_ms: i64,
}

impl Request {
    /// Whether the server acknowledged the batch (2xx).
    pub fn accepted(&self) -> bool {
        matches!(
            self.result,
            UploadResult::Response {
                status: 200..=299,
                ..
            }
        )
    }
}

/// One tracked event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracked {
    /// Its `messageId`.
    pub message_id: String,
    /// When it was tracked (virtual clock).
    pub at_ms: i64,
    /// Whether the network was up then.
    pub online: bool,
}

/// One store operation the harness executed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreCall {
    /// When (virtual clock).
    pub at_ms: i64,
    /// The operation's name (`"insert"`, `"load"`, …).
    pub op: &'static str,
    /// Events it carried (insert) or returned (load).
    pub events: usize,
    /// How it failed, if it did.
    pub failed: Option<FailureKind>,
}

/// A server answer on its way back to the engine.
#[derive(Debug)]
struct Arrival {
    at_ms: i64,
    request: usize,
}

type Responder = Box<dyn FnMut(&Request) -> UploadResult>;

/// Reads the `messageId`s a store holds, so that the harness can tell which events an
/// operation removed (evictions and purges report counts, not ids).
pub type IdProbe<S> = Box<dyn Fn(&S) -> Vec<String>>;

/// An event that left the store without an acknowledgement, as the harness saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    /// When (virtual clock).
    pub at_ms: i64,
    /// How: `"evict"`, `"clear"` (opt-out purge) or `"replaced"` (the store was corrupt
    /// and replaced while holding it).
    pub how: &'static str,
    /// The event.
    pub message_id: String,
}

/// The engine, a store, a scripted server and a virtual clock. See the
/// [module documentation](self).
pub struct Harness<S: QueueStore = MemoryStore> {
    engine: Engine,
    store: S,
    now_ms: i64,
    seed: u64,
    conditions: DeviceConditions,
    context_info: ContextInfo,
    context: crate::message::Context,
    next_message: u64,
    latency_ms: i64,
    script: VecDeque<UploadResult>,
    responder: Option<Responder>,
    arrivals: Vec<Arrival>,
    steps_at_instant: (i64, u32),
    probe: Option<IdProbe<S>>,
    /// The endpoints given to [`Harness::set_endpoints`], kept across restarts.
    endpoints: Vec<String>,

    /// Every request sent, oldest first.
    pub requests: Vec<Request>,
    /// Every notification, with the time it was polled.
    pub notifications: Vec<(i64, Notification)>,
    /// Every event tracked through the harness, oldest first.
    pub tracked: Vec<Tracked>,
    /// For each `messageId` the engine heard acknowledged, each time it heard it.
    pub delivered: BTreeMap<String, Vec<i64>>,
    /// Every store operation executed, oldest first.
    pub store_calls: Vec<StoreCall>,
    /// Events that left the store without an acknowledgement (needs an id probe: set
    /// for a [`MemoryStore`], [`Harness::set_id_probe`] for others).
    pub removals: Vec<Removal>,
    /// Requests the engine abandoned ([`Engine::poll_abandoned`]).
    pub abandoned: Vec<u64>,
}

impl Harness<MemoryStore> {
    /// A fresh device at `start_ms` with an empty [`MemoryStore`], default (online,
    /// unknown network, no battery) conditions and a server that answers 200 at once.
    pub fn new(policy: Policy, seed: u64, start_ms: i64) -> Self {
        let mut h = Harness::with_store(MemoryStore::new(), policy, seed, start_ms);
        h.set_id_probe(MemoryStore::message_ids);
        h
    }
}

impl<S: QueueStore> Harness<S> {
    /// Like [`Harness::new`], on the given store. The engine starts from its snapshot.
    pub fn with_store(mut store: S, policy: Policy, seed: u64, start_ms: i64) -> Self {
        let snapshot = store.snapshot().expect("the store opens");
        let engine = Engine::new(policy, seed, snapshot, identity(seed), start_ms);
        let conditions = DeviceConditions::default();
        let mut h = Harness {
            engine,
            store,
            now_ms: start_ms,
            seed,
            conditions,
            context_info: ContextInfo::default(),
            context: crate::message::Context::new(Properties::new()),
            next_message: 0,
            latency_ms: 0,
            script: VecDeque::new(),
            responder: None,
            arrivals: Vec::new(),
            steps_at_instant: (start_ms, 0),
            requests: Vec::new(),
            notifications: Vec::new(),
            tracked: Vec::new(),
            delivered: BTreeMap::new(),
            store_calls: Vec::new(),
            probe: None,
            endpoints: Vec::new(),
            removals: Vec::new(),
            abandoned: Vec::new(),
        };
        h.rebuild_context();
        h.settle();
        h
    }

    // ----- getters -----

    /// The virtual clock.
    pub fn now(&self) -> i64 {
        self.now_ms
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The engine, to feed it directly (call [`Harness::run_until`] afterwards).
    pub fn engine_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The store, to inspect or to inject faults.
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    /// The engine's counters.
    pub fn stats(&self) -> Stats {
        self.engine.stats()
    }

    /// The conditions last set.
    pub fn conditions(&self) -> DeviceConditions {
        self.conditions
    }

    /// When the engine first heard `message_id` acknowledged.
    pub fn delivered_at(&self, message_id: &str) -> Option<i64> {
        self.delivered
            .get(message_id)
            .and_then(|t| t.first().copied())
    }

    /// How many times the engine heard `message_id` acknowledged.
    pub fn delivery_count(&self, message_id: &str) -> usize {
        self.delivered.get(message_id).map_or(0, Vec::len)
    }

    /// Events dropped for `reason`, summed over the `Dropped` notifications.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.notifications
            .iter()
            .filter_map(|(_, n)| match n {
                Notification::Dropped {
                    reason: r, count, ..
                } if *r == reason => Some(*count),
                _ => None,
            })
            .sum()
    }

    /// The `messageId`s named by `Dropped` notifications for `reason`.
    pub fn dropped_ids(&self, reason: DropReason) -> Vec<String> {
        self.notifications
            .iter()
            .filter_map(|(_, n)| match n {
                Notification::Dropped {
                    reason: r,
                    message_ids,
                    ..
                } if *r == reason => Some(message_ids.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    // ----- the scripted server -----

    /// Queues answers for the next requests, in order. Once they are used up, the
    /// responder (if any) answers, else 200.
    pub fn script(&mut self, results: impl IntoIterator<Item = UploadResult>) {
        self.script.extend(results);
    }

    /// Answers every request the script does not cover with `f` (a server with a body
    /// limit, or one that refuses a given event).
    pub fn respond_with(&mut self, f: impl FnMut(&Request) -> UploadResult + 'static) {
        self.responder = Some(Box::new(f));
    }

    /// How long the server takes to answer, in virtual ms (0 by default). Events tracked
    /// meanwhile arrive during the upload.
    pub fn set_latency(&mut self, ms: i64) {
        self.latency_ms = ms;
    }

    // ----- inputs (each is processed at the current time) -----

    /// Tracks an event with no properties; returns its `messageId`.
    pub fn track(&mut self, name: &str) -> String {
        self.call(Call::Track {
            event: name.to_owned(),
            properties: Properties::new(),
        })
    }

    /// Tracks `n` events with no properties in one go, as a runtime hands over a drain of
    /// its call queue: the engine acts (commits, uploads) only after the last. Returns
    /// their `messageId`s.
    pub fn track_drain(&mut self, n: usize) -> Vec<String> {
        let ids = (0..n)
            .map(|i| {
                self.hand_over(Call::Track {
                    event: format!("Drained {i}"),
                    properties: Properties::new(),
                })
            })
            .collect();
        self.settle();
        ids
    }

    /// Stamps and seals any call through [`message::stamp`] and [`message::seal`], as a
    /// runtime does, and hands it to the engine; returns its `messageId` (`m1`, `m2`, …).
    pub fn call(&mut self, call: Call) -> String {
        let id = self.hand_over(call);
        self.settle();
        id
    }

    /// [`Harness::call`] without letting the engine act.
    fn hand_over(&mut self, call: Call) -> String {
        self.next_message += 1;
        let id = format!("m{}", self.next_message);
        let policy = self.engine.policy();
        let msg = message::stamp(
            call,
            self.engine.identity(),
            &self.context,
            id.clone(),
            self.now_ms,
            policy,
        )
        .expect("the harness tracks valid calls");
        let event =
            message::seal(msg, self.now_ms, policy).expect("the event is within the size limit");
        self.tracked.push(Tracked {
            message_id: id.clone(),
            at_ms: self.now_ms,
            online: self.conditions.network.is_online(),
        });
        self.engine.handle_event(event, self.now_ms);
        id
    }

    /// New device conditions.
    pub fn set_conditions(&mut self, conditions: DeviceConditions) {
        self.conditions = conditions;
        self.rebuild_context();
        self.engine.handle_conditions(conditions, self.now_ms);
        self.settle();
    }

    /// The context info put into every later event.
    pub fn set_context_info(&mut self, info: ContextInfo) {
        self.context_info = info;
        self.rebuild_context();
    }

    /// A lifecycle change.
    pub fn lifecycle(&mut self, lifecycle: Lifecycle) {
        self.engine.handle_lifecycle(lifecycle, self.now_ms);
        self.settle();
    }

    /// An explicit `flush()`.
    pub fn flush(&mut self) {
        self.engine.handle_flush(self.now_ms);
        self.settle();
    }

    /// `opt_out()` (true) or `opt_in()` (false).
    pub fn opt_out(&mut self, opted_out: bool) {
        self.engine.handle_opt_out(opted_out, self.now_ms);
        self.settle();
    }

    /// The wall clock jumps to `t` (forwards or back) without virtual time passing.
    /// Answers in flight keep their remaining latency.
    pub fn set_clock(&mut self, t: i64) {
        let delta = t - self.now_ms;
        for a in &mut self.arrivals {
            a.at_ms += delta;
        }
        self.now_ms = t;
        self.engine.handle_timeout(t);
        self.settle();
    }

    /// The app restarts: a new engine from the store's snapshot. Uncommitted events and
    /// requests in flight die with the old process; the records are kept.
    pub fn restart(&mut self) {
        let snapshot = self.store.snapshot().expect("the store opens");
        let policy = self.engine.policy().clone();
        self.engine = Engine::new(
            policy,
            self.seed,
            snapshot,
            identity(self.seed),
            self.now_ms,
        );
        if !self.endpoints.is_empty() {
            self.engine.set_endpoints(&self.endpoints);
        }
        self.engine.handle_conditions(self.conditions, self.now_ms);
        self.arrivals.clear();
        self.rebuild_context();
        self.settle();
    }

    /// Gives the engine several endpoints ([`Engine::set_endpoints`]), now and after every
    /// restart. [`Request::endpoint`] says where each request went.
    pub fn set_endpoints(&mut self, urls: &[&str]) {
        self.endpoints = urls.iter().map(|u| (*u).to_owned()).collect();
        self.engine.set_endpoints(&self.endpoints);
        self.settle();
    }

    /// Lets the harness read the `messageId`s `S` holds, to record [`Harness::removals`].
    pub fn set_id_probe(&mut self, probe: impl Fn(&S) -> Vec<String> + 'static) {
        self.probe = Some(Box::new(probe));
    }

    /// The `messageId`s of [`Harness::removals`] made by `how`.
    pub fn removed_ids(&self, how: &str) -> Vec<String> {
        self.removals
            .iter()
            .filter(|r| r.how == how)
            .map(|r| r.message_id.clone())
            .collect()
    }

    /// The runtime found the store corrupt and replaced it with `fresh`; returns the old
    /// one.
    pub fn replace_store(&mut self, fresh: S, error: &str) -> S {
        let old = std::mem::replace(&mut self.store, fresh);
        if let Some(probe) = &self.probe {
            for message_id in probe(&old) {
                self.removals.push(Removal {
                    at_ms: self.now_ms,
                    how: "replaced",
                    message_id,
                });
            }
        }
        self.engine
            .handle_store_replaced(error.to_owned(), self.now_ms);
        self.settle();
        old
    }

    // ----- the clock -----

    /// Runs until the virtual clock reads `until`, jumping from one wake-up to the next.
    ///
    /// Each round drains the store operations, requests and notifications, hands over the
    /// server answers that are due, and moves the clock to the earliest of the engine's
    /// timeout, the next answer and `until`.
    ///
    /// # Panics
    ///
    /// If the engine asks to be woken at a time that has come and then does nothing: a
    /// real driver would spin on that timer. That is an engine bug.
    pub fn run_until(&mut self, until: i64) {
        loop {
            self.pump();
            if self.deliver_due() {
                continue;
            }
            let timeout = self.engine.poll_timeout();
            if let Some(t) = timeout.filter(|&t| t <= self.now_ms) {
                self.engine.handle_timeout(self.now_ms);
                if self.pump() {
                    continue;
                }
                let stuck = self.engine.poll_timeout();
                if stuck.is_some_and(|s| s <= self.now_ms) {
                    panic!(
                        "engine bug: poll_timeout() is {t}, not after now ({now}), yet handle_timeout \
                         and every poll_* produced nothing; a driver would spin on this timer forever.\n\
                         stats: {stats:?}\ntier: {tier:?}",
                        now = self.now_ms,
                        stats = self.engine.stats(),
                        tier = self.engine.tier(),
                    );
                }
                continue;
            }
            let next_arrival = self.arrivals.iter().map(|a| a.at_ms).min();
            let next = [timeout, next_arrival, Some(until)]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(until);
            if next <= self.now_ms {
                return;
            }
            self.now_ms = next;
            self.engine.handle_timeout(next);
        }
    }

    /// Does everything due at the current instant, without moving the clock.
    pub fn settle(&mut self) {
        self.run_until(self.now_ms);
    }

    /// Runs for `ms` of virtual time.
    pub fn advance(&mut self, ms: i64) {
        self.run_until(self.now_ms + ms);
    }

    // ----- internals -----

    fn rebuild_context(&mut self) {
        let anonymous_id = self.engine.identity().anonymous_id.clone();
        self.context = crate::message::Context::new(context::build(
            &self.context_info,
            &anonymous_id,
            self.conditions.network,
            None,
        ));
    }

    /// Executes every store operation and sends every request the engine has at this
    /// instant, and collects its notifications. Returns whether anything happened.
    fn pump(&mut self) -> bool {
        let mut worked = false;
        loop {
            let mut progressed = false;
            while let Some(op) = self.engine.poll_store(self.now_ms).cloned() {
                let how = match op {
                    crate::StoreOp::Evict { .. } => Some("evict"),
                    crate::StoreOp::Clear { .. } => Some("clear"),
                    _ => None,
                };
                let before = how.and(self.probe.as_ref()).map(|p| p(&self.store));
                let result = execute(&mut self.store, &op);
                if let (Some(how), Some(before), Some(probe)) = (how, before, &self.probe) {
                    let after: std::collections::HashSet<String> =
                        probe(&self.store).into_iter().collect();
                    for message_id in before.into_iter().filter(|id| !after.contains(id)) {
                        self.removals.push(Removal {
                            at_ms: self.now_ms,
                            how,
                            message_id,
                        });
                    }
                }
                let events = match (&op, &result) {
                    (crate::StoreOp::Insert(evs), _) => evs.len(),
                    (_, Ok(crate::store::StoreOutcome::Loaded(evs))) => evs.len(),
                    _ => 0,
                };
                self.store_calls.push(StoreCall {
                    at_ms: self.now_ms,
                    op: op.name(),
                    events,
                    failed: result.as_ref().err().map(|f| f.kind),
                });
                self.engine.handle_store(result, self.now_ms);
                self.step();
                progressed = true;
            }
            while let Some(transmit) = self.engine.poll_transmit(self.now_ms) {
                self.send(transmit);
                self.step();
                progressed = true;
            }
            while let Some(n) = self.engine.poll_notification() {
                self.notifications.push((self.now_ms, n));
                progressed = true;
            }
            while let Some(id) = self.engine.poll_abandoned() {
                self.abandoned.push(id);
                progressed = true;
            }
            if !progressed {
                return worked;
            }
            worked = true;
        }
    }

    /// Counts work done at this instant, to catch an engine that never settles.
    fn step(&mut self) {
        let (at, n) = &mut self.steps_at_instant;
        if *at != self.now_ms {
            *at = self.now_ms;
            *n = 0;
        }
        *n += 1;
        assert!(
            *n < MAX_STEPS_PER_INSTANT,
            "engine bug: over {MAX_STEPS_PER_INSTANT} store operations and requests at t={at} without settling; \
             stats: {:?}",
            self.engine.stats()
        );
    }

    /// The scripted server receives a request and decides its answer now; the answer
    /// reaches the engine after the latency.
    fn send(&mut self, transmit: Transmit) {
        let plain = if transmit.gzipped {
            gunzip(&transmit.body)
        } else {
            transmit.body.clone()
        };
        let body: serde_json::Value = serde_json::from_slice(&plain).expect("the body is JSON");
        let message_ids = body["batch"]
            .as_array()
            .expect("the body has a batch")
            .iter()
            .map(|e| {
                e["messageId"]
                    .as_str()
                    .expect("every event has a messageId")
                    .to_owned()
            })
            .collect();
        let mut request = Request {
            id: transmit.id,
            endpoint: transmit.endpoint,
            at_ms: self.now_ms,
            events: transmit.events,
            raw_bytes: transmit.raw_bytes,
            compressed_bytes: transmit.body.len(),
            message_ids,
            sent_at: body["sentAt"].as_str().unwrap_or_default().to_owned(),
            result: ok(),
            done_ms: self.now_ms + self.latency_ms,
        };
        request.result = match (self.script.pop_front(), &mut self.responder) {
            (Some(scripted), _) => scripted,
            (None, Some(respond)) => respond(&request),
            (None, None) => ok(),
        };
        self.arrivals.push(Arrival {
            at_ms: request.done_ms,
            request: self.requests.len(),
        });
        self.requests.push(request);
    }

    /// Hands the engine the earliest answer that is due, if any.
    fn deliver_due(&mut self) -> bool {
        let Some(i) = (0..self.arrivals.len())
            .filter(|&i| self.arrivals[i].at_ms <= self.now_ms)
            .min_by_key(|&i| (self.arrivals[i].at_ms, self.arrivals[i].request))
        else {
            return false;
        };
        let arrival = self.arrivals.swap_remove(i);
        let request = &self.requests[arrival.request];
        if request.accepted() {
            for id in &request.message_ids {
                self.delivered
                    .entry(id.clone())
                    .or_default()
                    .push(self.now_ms);
            }
        }
        let (id, result) = (request.id, request.result.clone());
        self.engine.handle_upload(id, result, self.now_ms);
        self.step();
        true
    }
}

/// A [`MemoryStore`] that fails chosen operations a given number of times: busy, full,
/// I/O errors, injected where the engine meets them.
#[derive(Debug, Default)]
pub struct FlakyStore {
    /// The store underneath.
    pub inner: MemoryStore,
    /// The operation (`"insert"`, `"load"`, …) that fails, how, and how many more times.
    pub failing: Option<(&'static str, FailureKind, u32)>,
}

impl FlakyStore {
    /// Makes `op` fail with `kind` the next `times` times it is called.
    pub fn fail(&mut self, op: &'static str, kind: FailureKind, times: u32) {
        self.failing = Some((op, kind, times));
    }

    fn check(&mut self, op: &'static str) -> Result<(), crate::StoreFailure> {
        if let Some((failing, kind, left)) = &mut self.failing {
            if *failing == op && *left > 0 {
                *left -= 1;
                return Err(crate::StoreFailure {
                    kind: *kind,
                    op,
                    message: "injected".into(),
                });
            }
        }
        Ok(())
    }
}

impl QueueStore for FlakyStore {
    fn snapshot(&mut self) -> Result<crate::StoreSnapshot, crate::StoreFailure> {
        self.inner.snapshot()
    }
    fn insert(&mut self, events: &[crate::QueuedEvent]) -> Result<(), crate::StoreFailure> {
        self.check("insert")?;
        self.inner.insert(events)
    }
    fn load(
        &mut self,
        max_events: usize,
        max_bytes: usize,
    ) -> Result<Vec<crate::QueuedEvent>, crate::StoreFailure> {
        self.check("load")?;
        self.inner.load(max_events, max_bytes)
    }
    fn delete(
        &mut self,
        seqs: &[u64],
    ) -> Result<(crate::store::Removed, Option<i64>), crate::StoreFailure> {
        self.check("delete")?;
        self.inner.delete(seqs)
    }
    fn evict(
        &mut self,
        max_events: u64,
        max_bytes: u64,
        min_created_ms: i64,
        spare_through: u64,
    ) -> Result<(crate::store::Evicted, Option<i64>), crate::StoreFailure> {
        self.check("evict")?;
        self.inner
            .evict(max_events, max_bytes, min_created_ms, spare_through)
    }
    fn clear(&mut self, spare_through: u64) -> Result<crate::store::Removed, crate::StoreFailure> {
        self.check("clear")?;
        self.inner.clear(spare_through)
    }
    fn save_state(&mut self, state: &crate::PersistedState) -> Result<(), crate::StoreFailure> {
        self.check("save_state")?;
        self.inner.save_state(state)
    }
}

#[cfg(feature = "gzip")]
fn gunzip(body: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(body)
        .read_to_end(&mut plain)
        .expect("the body is gzip");
    plain
}

#[cfg(not(feature = "gzip"))]
fn gunzip(_body: &[u8]) -> Vec<u8> {
    unreachable!("without the gzip feature the engine sends plain bodies")
}
