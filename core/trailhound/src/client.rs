//! The Rust API: [`Builder`] and [`Client`].
//!
//! Calls run on the caller's thread only as far as validating, stamping, enriching and
//! serialising the event; then it is handed to the background thread through a queue
//! bounded by the gate (see `worker`), usually without waking it. No call touches the disk
//! or the network.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use trailhound_core::context::ContextInfo;
use trailhound_core::message::{self, Properties};
use trailhound_core::plan::{Plan, PlanError, PlanGate, PlanMode, Verdict};
use trailhound_core::tracker::{IdentityChange, Tracker};
use trailhound_core::{
    Call, DeviceConditions, DropReason, Identity, Lifecycle, Message, Notification, Policy, Stats,
};

use crate::error::Error;
use crate::transport::Transport;
use crate::worker::{self, Command, Ended, Finish, Gate, Mailbox, Versioned, WorkerConfig};

/// How long `shutdown` waits beyond its timeout for the background thread to finish a
/// store operation already under way: SQLite cannot be interrupted mid-transaction
/// without losing what it was committing, and waits up to its 5 s busy timeout for a
/// database another connection holds locked.
const STORE_GRACE: Duration = Duration::from_secs(6);

/// Sees every event before it is queued, on the thread that called `track()`: it can add
/// context, scrub personal data, or drop the event by returning `None`.
pub trait Plugin: Send + Sync + 'static {
    /// Returns the event to queue, changed or not, or `None` to drop it.
    fn process(&self, message: Message) -> Option<Message>;
}

impl<F> Plugin for F
where
    F: Fn(Message) -> Option<Message> + Send + Sync + 'static,
{
    fn process(&self, message: Message) -> Option<Message> {
        self(message)
    }
}

/// Hears what became of events: delivered, dropped (and why), tracking-plan violations,
/// upload failures, pauses and storage errors. Called on the background thread: return quickly. A panic in a listener
/// is caught and logged; it never stops delivery. A listener may call the client (none of
/// its calls blocks that thread); the blocking ones, `flush_blocking` and `shutdown`,
/// return [`Error::FromListener`] at once instead of waiting for the thread they run on.
pub trait Listener: Send + Sync + 'static {
    /// One notification.
    fn on_notification(&self, notification: &Notification);
}

impl<F> Listener for F
where
    F: Fn(&Notification) + Send + Sync + 'static,
{
    fn on_notification(&self, notification: &Notification) {
        self(notification)
    }
}

/// Where a tracking plan comes from ([`Builder::plan`]). It is read and compiled by
/// [`Builder::build`], which fails with [`Error::Plan`] (naming the place in the plan) if
/// it cannot be read or is invalid.
#[derive(Debug, Clone)]
pub enum PlanSource {
    /// The plan file's JSON text (bundled with the app, `include_str!`).
    Json(String),
    /// The path of the plan file.
    File(PathBuf),
    /// A plan already compiled (shared between clients, or compiled with another
    /// [`trailhound_core::plan::PatternEngine`]).
    Compiled(Arc<Plan>),
}

impl PlanSource {
    /// Reads and compiles the plan.
    fn load(self) -> Result<Arc<Plan>, Error> {
        let (origin, json) = match self {
            PlanSource::Compiled(plan) => return Ok(plan),
            PlanSource::Json(json) => ("(JSON text)".to_owned(), json),
            PlanSource::File(path) => {
                let origin = format!("`{}`", path.display());
                match std::fs::read_to_string(&path) {
                    Ok(json) => (origin, json),
                    Err(e) => {
                        return Err(Error::Plan {
                            origin,
                            error: PlanError {
                                at: String::new(),
                                message: format!("cannot read the file: {e}"),
                            },
                        })
                    }
                }
            }
        };
        Plan::load(&json)
            .map(Arc::new)
            .map_err(|error| Error::Plan { origin, error })
    }
}

/// The write key, kept out of `Debug` output and logs.
#[derive(Clone)]
pub(crate) struct WriteKey(pub(crate) String);

impl std::fmt::Debug for WriteKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WriteKey(redacted)")
    }
}

/// Configures and starts a [`Client`].
///
/// ```no_run
/// # fn main() -> Result<(), trailhound::Error> {
/// let client = trailhound::Builder::new("WRITE_KEY", "https://collector.example.com", "/tmp/th-data")
///     .build()?;
/// client.track("Song Played", serde_json::json!({"title": "Nachtmusik", "seconds": 215}))?;
/// client.shutdown(std::time::Duration::from_secs(2))?;
/// # Ok(()) }
/// ```
///
/// With a fallback: batches go to the first endpoint whose circuit breaker is not open,
/// in the order given ([`Builder::fallback_endpoint`]).
///
/// ```no_run
/// # fn main() -> Result<(), trailhound::Error> {
/// let client = trailhound::Builder::new("WRITE_KEY", "https://t.myapp.example", "/tmp/th-data")
///     .fallback_endpoint("https://eu.collector.example.com")
///     .build()?;
/// # Ok(()) }
/// ```
pub struct Builder {
    write_key: WriteKey,
    endpoint: String,
    fallbacks: Vec<String>,
    data_dir: PathBuf,
    policy: Policy,
    context: ContextInfo,
    conditions: DeviceConditions,
    transport: Option<Arc<dyn Transport>>,
    plugins: Vec<Arc<dyn Plugin>>,
    listeners: Vec<Arc<dyn Listener>>,
    seed: Option<u64>,
    max_pages: Option<u32>,
    plan: Option<PlanSource>,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("write_key", &self.write_key)
            .field("endpoint", &self.endpoint)
            .field("fallbacks", &self.fallbacks)
            .field("data_dir", &self.data_dir)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Builder {
    /// A client for `write_key`, sending to `endpoint` (`https://host[:port][/prefix]`;
    /// plain `http` only to a loopback address), keeping its queue in `data_dir`.
    ///
    /// Every limit has the default documented on [`Policy`]; change them with
    /// [`Builder::policy`].
    pub fn new(
        write_key: impl Into<String>,
        endpoint: impl Into<String>,
        data_dir: impl Into<PathBuf>,
    ) -> Self {
        Builder {
            write_key: WriteKey(write_key.into()),
            endpoint: endpoint.into(),
            fallbacks: Vec::new(),
            data_dir: data_dir.into(),
            policy: Policy::default(),
            context: ContextInfo {
                os_name: Some(std::env::consts::OS.to_owned()),
                ..ContextInfo::default()
            },
            conditions: DeviceConditions::default(),
            transport: None,
            plugins: Vec::new(),
            listeners: Vec::new(),
            seed: None,
            max_pages: None,
            plan: None,
        }
    }

    /// Adds an endpoint to fall back on, after the one given to [`Builder::new`] and any
    /// added before; call it once per fallback. Each is checked like the first one (by
    /// [`Builder::build`]; duplicates are refused), and there may be at most
    /// [`Policy::max_endpoints`] in all.
    ///
    /// Each endpoint has a circuit breaker: a batch that fails on one (no answer, a
    /// transient status, a refused key) goes to the next usable one at once, with the same
    /// `messageId`s; each flush starts at the first endpoint that is not open, and a failed
    /// endpoint gets traffic again after a small probe batch. The table of what opens a
    /// breaker and for how long is in [`trailhound_core::breaker`]. Breaker state survives
    /// a restart; the listener hears [`Notification::EndpointOpened`] and
    /// [`Notification::EndpointClosed`], and [`Stats::endpoints`] has each one's figures.
    pub fn fallback_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.fallbacks.push(endpoint.into());
        self
    }

    /// Replaces every limit and delay at once.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Changes some limits, keeping the others: `.with_policy(|p| p.max_queue_events = 5_000)`.
    pub fn with_policy(mut self, change: impl FnOnce(&mut Policy)) -> Self {
        change(&mut self.policy);
        self
    }

    /// What the platform knows about the app and device, for the `context` of every event.
    pub fn context(mut self, context: ContextInfo) -> Self {
        self.context = context;
        self
    }

    /// The device conditions at start (network, battery); later changes go through
    /// [`Client::set_device_conditions`].
    pub fn conditions(mut self, conditions: DeviceConditions) -> Self {
        self.conditions = conditions;
        self
    }

    /// Sends through this transport instead of the default ureq one.
    pub fn transport(mut self, transport: impl Transport) -> Self {
        self.transport = Some(Arc::new(transport));
        self
    }

    /// Sends through a shared transport.
    pub fn transport_arc(mut self, transport: Arc<dyn Transport>) -> Self {
        self.transport = Some(transport);
        self
    }

    /// Adds a plugin; plugins run in the order they were added.
    pub fn plugin(mut self, plugin: impl Plugin) -> Self {
        self.plugins.push(Arc::new(plugin));
        self
    }

    /// Adds a delivery listener.
    pub fn listener(mut self, listener: impl Listener) -> Self {
        self.listeners.push(Arc::new(listener));
        self
    }

    /// Checks every event against a tracking plan, on the caller's thread after the plugins
    /// (so the verdict is about what is sent), in the mode [`Policy::plan_mode`] sets
    /// (`report` by default; see [`Builder::plan_mode`] and [`trailhound_core::plan::gate`]).
    pub fn plan(mut self, source: PlanSource) -> Self {
        self.plan = Some(source);
        self
    }

    /// [`Builder::plan`] from the plan file's JSON text.
    pub fn plan_json(self, json: impl Into<String>) -> Self {
        self.plan(PlanSource::Json(json.into()))
    }

    /// [`Builder::plan`] from the plan file at `path`, read by [`Builder::build`].
    pub fn plan_file(self, path: impl Into<PathBuf>) -> Self {
        self.plan(PlanSource::File(path.into()))
    }

    /// What the plan does to an event that breaks it: sets [`Policy::plan_mode`] (so a
    /// later [`Builder::policy`] replaces it).
    pub fn plan_mode(mut self, mode: PlanMode) -> Self {
        self.policy.plan_mode = mode;
        self
    }

    /// Fixes the retry-jitter seed (tests and simulations); by default it is random.
    pub fn jitter_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Caps the database at this many pages, to inject a full disk in tests.
    #[doc(hidden)]
    pub fn sqlite_max_pages(mut self, pages: u32) -> Self {
        self.max_pages = Some(pages);
        self
    }

    /// Opens the data directory and starts the background threads.
    ///
    /// Fails if a setting is invalid, an endpoint is not HTTPS (or loopback HTTP), two
    /// endpoints are the same, there are more than [`Policy::max_endpoints`], the
    /// tracking plan cannot be read or is invalid (all before anything is opened), or
    /// another client has the data directory open. A corrupt database is not an error: it
    /// is moved aside, a fresh one is used, and the listener hears about it.
    pub fn build(self) -> Result<Client, Error> {
        self.policy.validate()?;
        let endpoints = check_endpoints(&self.endpoint, &self.fallbacks, &self.policy)?;
        let plan = match self.plan {
            Some(source) => Some(PlanGate::new(
                source.load()?,
                self.policy.plan_mode,
                self.policy.max_violation_kinds,
            )),
            None => None,
        };
        let transport: Arc<dyn Transport> = match self.transport {
            Some(t) => t,
            None => default_transport(&self.policy)?,
        };
        let seed = self
            .seed
            .unwrap_or_else(|| uuid::Uuid::new_v4().as_u64_pair().0);
        let mailbox = Mailbox::new(self.policy.commit_max_events);
        // Listeners run on the background thread only (see `Client::notify_later`).
        let listeners = Arc::new(self.listeners);
        let (ready_tx, ready_rx) = mpsc::channel();
        let gate = Arc::new(Gate::default());
        let finish = Arc::new(Finish::default());
        let config = WorkerConfig {
            policy: self.policy.clone(),
            data_dir: self.data_dir,
            endpoints,
            write_key: self.write_key,
            transport,
            listeners,
            conditions: self.conditions,
            seed,
            max_pages: self.max_pages,
            gate: Arc::clone(&gate),
            mailbox: mailbox.clone(),
            finish: Arc::clone(&finish),
        };
        let shared_stats = Arc::new(Mutex::new(Stats::default()));
        let worker = worker::spawn(config, ready_tx, Arc::clone(&shared_stats))
            .map_err(|e| Error::Config(format!("cannot start the background thread: {e}")))?;
        let (identity, opted_out) = match ready_rx.recv() {
            Ok(Ok(ready)) => ready,
            Ok(Err(e)) => {
                let _ = worker.join();
                return Err(e);
            }
            Err(_) => {
                let _ = worker.join();
                return Err(Error::Closed);
            }
        };
        let tracker = Tracker::new(identity, self.context, self.conditions.network);
        Ok(Client {
            shared: Arc::new(Shared {
                policy: self.policy,
                tracker: Mutex::new(tracker),
                identity_version: AtomicU64::new(0),
                opted_out: AtomicBool::new(opted_out),
                plugins: self.plugins,
                plan,
                mailbox,
                gate,
                finish,
                worker_thread: Some(worker.thread().id()),
                stats: shared_stats,
                invalid: AtomicU64::new(0),
                plugin_dropped: AtomicU64::new(0),
                plan_dropped: AtomicU64::new(0),
                opted_out_calls: AtomicU64::new(0),
            }),
            worker: Mutex::new(Some(worker)),
        })
    }
}

#[cfg(feature = "ureq")]
fn default_transport(policy: &Policy) -> Result<Arc<dyn Transport>, Error> {
    let t = crate::transport::UreqTransport::new(policy.request_timeout).map_err(Error::Config)?;
    Ok(Arc::new(t))
}

#[cfg(not(feature = "ureq"))]
fn default_transport(_: &Policy) -> Result<Arc<dyn Transport>, Error> {
    Err(Error::Config(
        "built without the ureq feature: set a transport with Builder::transport".into(),
    ))
}

/// Checks an endpoint as [`Builder::build`] does: HTTPS, or plain HTTP to a loopback
/// host; no user name, password, query or fragment. Returns it normalised, without a
/// trailing slash. QA tools that send (replay) use it too, so that a write key never
/// travels in the clear.
///
/// The endpoint is parsed with a WHATWG URL parser (the `url` crate, the standard browsers
/// implement) and the rules are [`trailhound_core::endpoint::check`]'s, the same in the
/// browser package.
pub fn check_endpoint(endpoint: &str) -> Result<String, Error> {
    trailhound_core::endpoint::precheck(endpoint).map_err(|e| Error::Config(e.to_string()))?;
    let url = url::Url::parse(endpoint.trim()).map_err(|e| {
        Error::Config(format!(
            "endpoint `{endpoint}`: not a URL ({e}); expected https://host[:port][/prefix]"
        ))
    })?;
    let host = url.host_str().unwrap_or("");
    let parts = trailhound_core::endpoint::UrlParts {
        scheme: url.scheme(),
        username: url.username(),
        password: url.password(),
        host,
        port: url.port(),
        path: url.path(),
        query: url.query(),
        fragment: url.fragment(),
    };
    trailhound_core::endpoint::check(endpoint, &parts)
        .map(|e| e.base().to_owned())
        .map_err(|e| Error::Config(e.to_string()))
}

/// The primary endpoint and the fallbacks, each checked by [`check_endpoint`], as base URLs
/// in order of preference. Duplicates (after normalisation) and more than
/// [`Policy::max_endpoints`] are refused, naming the endpoint: a list cut short in silence
/// would lose the fallback the app counted on.
fn check_endpoints(
    primary: &str,
    fallbacks: &[String],
    policy: &Policy,
) -> Result<Vec<String>, Error> {
    let total = 1 + fallbacks.len();
    if total > policy.max_endpoints {
        return Err(Error::Config(format!(
            "{total} endpoints (1 + {} fallbacks): at most max_endpoints = {} are allowed; \
             every failed batch is tried on each in turn",
            fallbacks.len(),
            policy.max_endpoints
        )));
    }
    let mut bases = vec![check_endpoint(primary)?];
    for (i, raw) in fallbacks.iter().enumerate() {
        let base = check_endpoint(raw).map_err(|e| match e {
            Error::Config(why) => Error::Config(format!("fallback endpoint {}: {why}", i + 1)),
            other => other,
        })?;
        if let Some(same) = bases.iter().position(|b| *b == base) {
            return Err(Error::Config(format!(
                "fallback endpoint {} `{raw}` is the same endpoint as {} ({base})",
                i + 1,
                if same == 0 {
                    "the primary".to_owned()
                } else {
                    format!("fallback endpoint {same}")
                }
            )));
        }
        bases.push(base);
    }
    Ok(bases)
}

struct Shared {
    policy: Policy,
    tracker: Mutex<Tracker>,
    /// Numbers identity changes in the order they are applied (under the tracker lock),
    /// so that the background thread persists the last one even when a reset overtakes an
    /// identify whose event waits for storage.
    identity_version: AtomicU64,
    opted_out: AtomicBool,
    plugins: Vec<Arc<dyn Plugin>>,
    /// The tracking plan and its mode, if the app gave one.
    plan: Option<PlanGate>,
    /// To the background thread; unbounded: the gate bounds events, and a control call
    /// never blocks (a listener calling `flush()` on the background thread must not wait
    /// for itself).
    mailbox: Mailbox,
    /// Admits calls within the call queue's limits, and closes the client.
    gate: Arc<Gate>,
    /// How the background thread ended, once it has.
    finish: Arc<Finish>,
    /// The background thread, where listeners run.
    worker_thread: Option<ThreadId>,
    stats: Arc<Mutex<Stats>>,
    invalid: AtomicU64,
    plugin_dropped: AtomicU64,
    /// Events dropped for breaking the plan (`enforce` modes).
    plan_dropped: AtomicU64,
    opted_out_calls: AtomicU64,
}

/// A running Trailhound client. Cheap to share: wrap it in an `Arc`; every method takes
/// `&self` and is safe to call from any thread.
pub struct Client {
    shared: Arc<Shared>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave them inconsistent (plain data).
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Accepts a JSON object (or `null`, meaning no properties) as properties or traits.
fn into_properties(value: serde_json::Value) -> Result<Properties, Error> {
    match value {
        serde_json::Value::Object(map) => Ok(map),
        serde_json::Value::Null => Ok(Properties::new()),
        other => Err(Error::Invalid(message::ValidationError::Unsupported {
            path: "properties".into(),
            detail: format!("expected an object, got {other}"),
        })),
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Client {
    /// Records a user action: `track("Song Played", json!({"title": "Nachtmusik"}))`.
    ///
    /// Returns once the event is validated and handed to the background thread; it never
    /// waits for the disk or the network. The event is committed to storage within the
    /// policy's commit interval.
    pub fn track(
        &self,
        event: impl Into<String>,
        properties: serde_json::Value,
    ) -> Result<(), Error> {
        let properties = self.check(into_properties(properties))?;
        self.record(Call::Track {
            event: event.into(),
            properties,
        })
    }

    /// Records who the user is. A `None` user id only records traits. Traits are merged
    /// into the stored ones and persisted.
    pub fn identify(&self, user_id: Option<&str>, traits: serde_json::Value) -> Result<(), Error> {
        let traits = self.check(into_properties(traits))?;
        self.record(Call::Identify {
            user_id: user_id.map(str::to_owned),
            traits,
        })
    }

    /// Records that a screen was shown.
    pub fn screen(
        &self,
        name: impl Into<String>,
        properties: serde_json::Value,
    ) -> Result<(), Error> {
        let properties = self.check(into_properties(properties))?;
        self.record(Call::Screen {
            name: name.into(),
            properties,
        })
    }

    /// Records that a page was shown.
    pub fn page(
        &self,
        name: impl Into<String>,
        properties: serde_json::Value,
    ) -> Result<(), Error> {
        let properties = self.check(into_properties(properties))?;
        self.record(Call::Page {
            name: name.into(),
            properties,
        })
    }

    /// Records that the user belongs to a group.
    pub fn group(
        &self,
        group_id: impl Into<String>,
        traits: serde_json::Value,
    ) -> Result<(), Error> {
        let traits = self.check(into_properties(traits))?;
        self.record(Call::Group {
            group_id: group_id.into(),
            traits,
        })
    }

    /// Links the current user (or anonymous id) to `new_user_id`, which becomes the user id.
    pub fn alias(&self, new_user_id: impl Into<String>) -> Result<(), Error> {
        self.record(Call::Alias {
            user_id: new_user_id.into(),
        })
    }

    /// Records any call: the common path of every method above, for bindings that build
    /// [`Call`]s themselves.
    pub fn record(&self, call: Call) -> Result<(), Error> {
        let shared = &*self.shared;
        if shared.gate.is_closed() {
            return Err(Error::Closed);
        }
        if shared.opted_out.load(Ordering::Acquire) {
            shared.opted_out_calls.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        let now = now_ms();
        // Encoded directly: `to_string` through the formatting machinery cost three times as
        // much (callgrind).
        let message_id = uuid::Uuid::new_v4()
            .hyphenated()
            .encode_lower(&mut uuid::Uuid::encode_buffer())
            .to_owned();
        let mut msg = {
            let mut t = lock(&shared.tracker);
            self.check(t.stamp(call, message_id, now, &shared.policy))?
        };
        for plugin in &shared.plugins {
            // A panicking plugin must not take the app down with it: the event is refused.
            let processed =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| plugin.process(msg)));
            let Ok(processed) = processed else {
                return self.check(Err(Error::Plugin(
                    "a plugin panicked; the event was not queued".into(),
                )));
            };
            match processed {
                Some(m) => msg = m,
                None => {
                    shared.plugin_dropped.fetch_add(1, Ordering::Relaxed);
                    self.notify_later(
                        vec![Notification::Dropped {
                            reason: DropReason::Plugin,
                            count: 1,
                            message_ids: Vec::new(),
                        }],
                        true,
                    );
                    return Ok(());
                }
            }
        }
        // After the plugins, so that the verdict is about what is sent; before the identity
        // change, so that a dropped identify changes nothing.
        let mut plan_verdict = None;
        if let Some(gate) = &shared.plan {
            // Settled (counted, told) only once the call is accepted (below), or dropped
            // here: a call refused with Backpressure and retried is one event.
            let verdict = gate.judge(&mut msg);
            if let Verdict::Dropped(_) = verdict {
                shared.plan_dropped.fetch_add(1, Ordering::Relaxed);
                self.notify_later(gate.settle(verdict, &msg.message_id), true);
                // Accepted and dropped, as a plugin's drop: not an error of the call.
                return Ok(());
            }
            if verdict != Verdict::Pass {
                plan_verdict = Some((verdict, msg.message_id.clone()));
            }
        }
        // identify and alias change who later events are from; only once the call is
        // accepted, so that a refused call changes nothing.
        let identity_change = IdentityChange::of(&msg);
        let event = self.check(message::seal(msg, now, &shared.policy))?;
        let bytes = event.stored_bytes() as usize;
        // Admitted, the event is sent and (the gate guarantees) taken and committed
        // before the background thread stops; refused, nothing changed.
        shared.gate.admit(
            bytes,
            shared.policy.call_queue_capacity,
            shared.policy.call_queue_bytes,
        )?;
        let sent = match identity_change {
            None => shared.mailbox.post_event(Command::Event {
                event,
                identity: None,
            }),
            Some(change) => {
                // The identity travels with its event: both are accepted, or neither.
                // Applied and numbered under the lock, so that concurrent changes are
                // persisted in the order applied.
                let mut t = lock(&shared.tracker);
                let identity = t.apply(change).clone();
                let version = shared.identity_version.fetch_add(1, Ordering::Relaxed) + 1;
                shared.mailbox.post_event(Command::Event {
                    event,
                    identity: Some(Box::new(Versioned { version, identity })),
                })
            }
        };
        sent.map_err(|_| {
            // The background thread is gone (it panicked): nothing was queued.
            shared.gate.release(bytes);
            Error::Closed
        })?;
        if let (Some(gate), Some((verdict, message_id))) = (&shared.plan, plan_verdict) {
            // Follows its event, which wakes the background thread soon enough.
            self.notify_later(gate.settle(verdict, &message_id), false);
        }
        Ok(())
    }

    /// Hands notifications to the background thread, where the listeners run (never on
    /// the caller's thread inside `track()`: a listener that tracks would re-enter it, and
    /// one that blocks would block the app's call): plugin drops and plan violations. `ring`: wake it now (nothing else
    /// will). Bounded like control calls; past the bound, or once closed, they are dropped
    /// (the counts in `stats()` keep them).
    fn notify_later(&self, notes: Vec<Notification>, ring: bool) {
        let shared = &*self.shared;
        let Ok(_pass) = shared.gate.enter() else {
            log::debug!("trailhound: a notification was not sent (closed, or a backlog)");
            return;
        };
        let cmd = Command::Notify(notes.into_boxed_slice());
        let sent = if ring {
            shared.mailbox.post(cmd)
        } else {
            shared.mailbox.post_quiet(cmd)
        };
        if sent.is_err() {
            shared.gate.took_control();
        }
    }

    fn check<T, E: Into<Error>>(&self, r: Result<T, E>) -> Result<T, Error> {
        r.map_err(|e| {
            self.shared.invalid.fetch_add(1, Ordering::Relaxed);
            e.into()
        })
    }

    /// Sends a control call; never blocks (listeners call these on the background thread).
    fn send_control(&self, cmd: Command) -> Result<(), Error> {
        let _pass = self.shared.gate.enter()?;
        self.send_admitted(cmd)
    }

    /// Sends a control call admitted by the gate (its pass held by the caller).
    fn send_admitted(&self, cmd: Command) -> Result<(), Error> {
        self.shared.mailbox.post(cmd).map_err(|_| {
            self.shared.gate.took_control();
            Error::Closed
        })
    }

    /// Whether this is the background thread (a listener is calling).
    fn in_listener(&self) -> bool {
        worker::on_thread(self.shared.worker_thread)
    }

    /// Asks for everything queued to be sent now; returns at once.
    pub fn flush(&self) -> Result<(), Error> {
        self.send_control(Command::Flush(None))
    }

    /// Sends everything queued now and waits until the flush is over (delivered, or
    /// stopped by an error, the network or backoff), at most `timeout`. Returns the stats.
    ///
    /// From a listener (which runs on the background thread that does the flush) it
    /// cannot wait: the flush is requested and [`Error::FromListener`] returned at once.
    pub fn flush_blocking(&self, timeout: Duration) -> Result<Stats, Error> {
        if self.in_listener() {
            self.send_control(Command::Flush(None))?;
            return Err(Error::FromListener("flush_blocking"));
        }
        let (tx, rx) = mpsc::channel();
        self.send_control(Command::Flush(Some(tx)))?;
        match rx.recv_timeout(timeout) {
            Ok(()) => Ok(self.stats()),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(Error::Timeout(timeout)),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(Error::Closed),
        }
    }

    /// Forgets the user: a new anonymous device id, no user id, no traits, a new session.
    pub fn reset(&self) -> Result<(), Error> {
        let shared = &*self.shared;
        let mut t = lock(&shared.tracker);
        let _pass = shared.gate.enter()?;
        let identity = t.reset(Identity::new(uuid::Uuid::new_v4())).clone();
        // Numbered under the lock: concurrent identity changes are persisted in order.
        let version = shared.identity_version.fetch_add(1, Ordering::Relaxed) + 1;
        self.send_admitted(Command::Identity(Box::new(Versioned { version, identity })))
    }

    /// Stops collection and purges every queued event; persists the choice.
    pub fn opt_out(&self) -> Result<(), Error> {
        let _pass = self.shared.gate.enter()?;
        self.shared.opted_out.store(true, Ordering::Release);
        self.send_admitted(Command::OptOut(true))
    }

    /// Resumes collection after [`Client::opt_out`]; persists the choice.
    pub fn opt_in(&self) -> Result<(), Error> {
        let _pass = self.shared.gate.enter()?;
        self.shared.opted_out.store(false, Ordering::Release);
        self.send_admitted(Command::OptOut(false))
    }

    /// Whether the user opted out.
    pub fn is_opted_out(&self) -> bool {
        self.shared.opted_out.load(Ordering::Acquire)
    }

    /// Reports a change of network, battery or power mode.
    pub fn set_device_conditions(&self, conditions: DeviceConditions) -> Result<(), Error> {
        let mut t = lock(&self.shared.tracker);
        let _pass = self.shared.gate.enter()?;
        t.set_network(conditions.network);
        // Sent under the lock: the engine sees concurrent changes in the same order.
        self.send_admitted(Command::Conditions(conditions))
    }

    /// The app came to the foreground.
    pub fn app_foregrounded(&self) -> Result<(), Error> {
        self.send_control(Command::Lifecycle(Lifecycle::Foreground))
    }

    /// The app went to the background: everything is committed at once and one flush is
    /// attempted.
    pub fn app_backgrounded(&self) -> Result<(), Error> {
        self.send_control(Command::Lifecycle(Lifecycle::Background))
    }

    /// The anonymous device id.
    pub fn anonymous_id(&self) -> String {
        lock(&self.shared.tracker).identity().anonymous_id.clone()
    }

    /// The user id, if known.
    pub fn user_id(&self) -> Option<String> {
        lock(&self.shared.tracker).identity().user_id.clone()
    }

    /// Counters and state, as of the background thread's last step.
    pub fn stats(&self) -> Stats {
        let mut s = lock(&self.shared.stats).clone();
        let d = &mut s.dropped;
        d.plugin += self.shared.plugin_dropped.load(Ordering::Relaxed);
        d.plan_violation += self.shared.plan_dropped.load(Ordering::Relaxed);
        d.opt_out += self.shared.opted_out_calls.load(Ordering::Relaxed);
        if let Some(gate) = &self.shared.plan {
            s.plan_violations = gate.counts();
        }
        s
    }

    /// The tracking plan's gate (plan, mode, counts), if the client has a plan.
    pub fn plan(&self) -> Option<&PlanGate> {
        self.shared.plan.as_ref()
    }

    /// Calls refused as invalid since start.
    pub fn invalid_calls(&self) -> u64 {
        self.shared.invalid.load(Ordering::Relaxed)
    }

    /// Commits everything, makes one last flush attempt if the network is up, and stops,
    /// within `timeout`. Events not delivered stay queued for the next start. Later calls
    /// return [`Error::Closed`]; a second `shutdown` waits for (and returns) the outcome
    /// of the first.
    ///
    /// Every call accepted before `shutdown` is committed (or reported). If storage keeps
    /// failing until `timeout`, what could not be saved is reported to the listener
    /// (`Dropped` with [`DropReason::StoreFailed`]) and returned as [`Error::Unsaved`]; an
    /// unsaved opt-out is kept in a marker file and applied at the next start. A store
    /// operation under way when `timeout` passes is let finish (SQLite cannot be
    /// interrupted without losing what it commits): up to a few seconds more with a
    /// database locked by another process. `Duration::MAX` waits as long as it takes.
    ///
    /// From a listener (which runs on the background thread) it cannot wait: the
    /// shutdown starts and [`Error::FromListener`] is returned at once.
    pub fn shutdown(&self, timeout: Duration) -> Result<(), Error> {
        self.stop(timeout, true)
    }

    fn stop(&self, timeout: Duration, flush: bool) -> Result<(), Error> {
        let shared = &*self.shared;
        let started = Instant::now();
        if shared.gate.close() {
            // The first to close: after the gate closed, no call is admitted, and the
            // background thread drains every call admitted before, then stops.
            let _ = shared.mailbox.post(Command::Stop {
                deadline: started.checked_add(timeout),
                flush,
            });
        }
        if self.in_listener() {
            // The background thread is the caller: it stops once the listener returns.
            return Err(Error::FromListener("shutdown"));
        }
        let wait_until = timeout
            .checked_add(STORE_GRACE)
            .and_then(|t| started.checked_add(t));
        let Some(ended) = shared.finish.wait(wait_until) else {
            return Err(Error::Timeout(timeout));
        };
        if let Some(handle) = lock(&self.worker).take() {
            let _ = handle.join();
        }
        match ended {
            Ended::Clean => Ok(()),
            Ended::Unsaved(u) => Err(Error::Unsaved {
                events: u.events,
                state: u.state,
                opt_out: u.opt_out,
            }),
            Ended::Crashed => Err(Error::Closed),
        }
    }
}

impl Drop for Client {
    /// Commits what is uncommitted and stops the threads. Starts no upload: an answer
    /// would have no one to hear it.
    fn drop(&mut self) {
        let _ = self.stop(Duration::ZERO, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// HTTPS anywhere, HTTP only to loopback; garbage refused.
    #[test]
    fn endpoint_rules() {
        assert_eq!(
            check_endpoint("https://api.example.com/").unwrap(),
            "https://api.example.com"
        );
        assert!(check_endpoint("http://127.0.0.1:8080").is_ok());
        assert!(check_endpoint("http://localhost:1/x").is_ok());
        assert!(check_endpoint("http://[::1]:99").is_ok());
        assert!(check_endpoint("http://example.com").is_err());
        assert!(check_endpoint("http://10.0.0.1").is_err());
        assert!(check_endpoint("ftp://localhost").is_err());
        assert!(check_endpoint("localhost:80").is_err());
        assert!(check_endpoint("https://").is_err());
    }

    /// The loopback test is on the parsed host: userinfo that looks like a loopback host,
    /// queries and fragments are refused (issue 9, defect 2).
    #[test]
    fn endpoint_bypasses_refused() {
        for bad in [
            "http://localhost:1@example.com",
            "http://[::1]@example.com",
            "http://127.0.0.1:80@example.com/",
            "http://user:pw@localhost",
            "https://user@example.com",
            "https://host.example/v1?x=1",
            "https://host.example/v1?",
            "https://host.example/v1#frag",
            "http://localhost.example.com",
            "http://127.0.0.1.nip.io",
            "javascript:alert(1)",
            "http://0x7f000001.example",
            // Found by the endpoint fuzz target: idna's ASCII-only adapter asserted.
            "https://Aé/",
            "https://A%C3%A9/",
            "http://xn--48FFFFssss02s",
            "https://XN--bcher-kva.example",
            "http:xn--ftgQQpQQOQQQQQQQ",
            // Found by the endpoint fuzz target (a fresh clone's run): URL parsers drop
            // tabs and newlines anywhere, so `x<TAB>n--` became `xn--` after the check.
            "http:x\tn--ftgQQpQQQQQpQQOQQQQQQQQQQQQQQOQQQQQhtttQQQQQQQ2QQQQQQQ73QQQ1QQQQQQQ730e",
            "https://x\nn--bcher-kva.example",
            "https://api.exa\rmple.com",
        ] {
            assert!(check_endpoint(bad).is_err(), "{bad} was accepted");
        }
        // WHATWG parsing normalises these to loopback hosts.
        assert_eq!(
            check_endpoint("http://0x7f.1:9/").unwrap(),
            "http://127.0.0.1:9"
        );
        assert_eq!(
            check_endpoint("HTTPS://API.Example.com:443/p/").unwrap(),
            "https://api.example.com/p"
        );
        assert_eq!(
            check_endpoint("https://api.example.com/Collect").unwrap(),
            "https://api.example.com/Collect"
        );
    }

    /// Fallbacks are checked like the primary, in order; a bad one is named, duplicates
    /// (after normalisation) are refused, and a list longer than `max_endpoints` is refused
    /// rather than cut.
    #[test]
    fn fallback_endpoints_are_checked() {
        let p = Policy::default();
        let fallbacks = |f: &[&str]| f.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            check_endpoints(
                "https://t.app.example/",
                &fallbacks(&["HTTPS://EU.Vendor.example/v1/", "http://127.0.0.1:9"]),
                &p
            )
            .unwrap(),
            [
                "https://t.app.example",
                "https://eu.vendor.example/v1",
                "http://127.0.0.1:9"
            ]
        );
        let err = |primary: &str, f: &[&str], p: &Policy| {
            check_endpoints(primary, &fallbacks(f), p)
                .unwrap_err()
                .to_string()
        };
        let e = err(
            "https://a.example",
            &["https://b.example", "http://c.example"],
            &p,
        );
        assert!(
            e.contains("fallback endpoint 2") && e.contains("`http://c.example`"),
            "{e}"
        );
        let e = err("https://a.example", &["https://A.example/"], &p);
        assert!(e.contains("same endpoint as the primary"), "{e}");
        let e = err(
            "https://a.example",
            &["https://b.example", "https://B.example:443"],
            &p,
        );
        assert!(e.contains("same endpoint as fallback endpoint 1"), "{e}");
        let e = err(
            "https://a.example",
            &[
                "https://b.example",
                "https://c.example",
                "https://d.example",
                "https://e.example",
            ],
            &p,
        );
        assert!(
            e.contains("5 endpoints") && e.contains("max_endpoints = 4"),
            "{e}"
        );
        let two = Policy {
            max_endpoints: 2,
            ..Policy::default()
        };
        assert!(check_endpoints(
            "https://a.example",
            &fallbacks(&["https://b.example"]),
            &two
        )
        .is_ok());
        assert!(err(
            "https://a.example",
            &["https://b.example", "https://c.example"],
            &two
        )
        .contains("max_endpoints = 2"));
    }

    /// A bad fallback fails `build` before the data directory is touched.
    #[test]
    fn bad_fallback_opens_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let e = Builder::new("k", "https://a.example", &data)
            .fallback_endpoint("ftp://b.example")
            .build()
            .unwrap_err();
        assert!(matches!(e, Error::Config(_)), "{e}");
        assert!(!data.exists(), "nothing opened");
    }

    /// The write key never shows in Debug output.
    #[test]
    fn write_key_is_redacted() {
        let b = Builder::new("sekrit-key", "https://x.example", "/tmp/x");
        assert!(!format!("{b:?}").contains("sekrit"));
    }

    /// The bell rings for the first event while no commit is due, for each group of
    /// `commit_max_events` and for each control call, not for each event.
    #[test]
    fn rings_only_when_the_engine_must_act() {
        let dir = tempfile::tempdir().unwrap();
        let client = Builder::new("k", "https://collector.invalid", dir.path())
            .conditions(trailhound_core::testing::offline())
            .with_policy(|p| {
                p.commit_interval = Duration::from_secs(30);
                p.commit_max_events = 50;
            })
            .build()
            .unwrap();
        let bell = client.shared.mailbox.bell();
        let rings = || bell.rings();
        for i in 0..200 {
            client
                .track("Rung?", serde_json::json!({ "i": i }))
                .unwrap();
            if i % 10 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        // The first event, each group of 50 and the first event after each group's commit
        // (7 or 8), with room for events that came while the engine thread was between its
        // drain and arming the bell on a loaded machine: far from one ring per event.
        let events = rings();
        assert!((5..=40).contains(&events), "{events} rings for 200 events");
        client.flush().unwrap();
        assert_eq!(rings(), events + 1, "a control call rings");
    }

    /// Reported plan violations reach the listener without waking the background thread
    /// for each event: their notices follow their events, which ring as without a plan.
    #[test]
    fn reported_violations_do_not_ring_per_event() {
        let dir = tempfile::tempdir().unwrap();
        let told = Arc::new(AtomicU64::new(0));
        let heard = Arc::clone(&told);
        let client = Builder::new("k", "https://collector.invalid", dir.path())
            .conditions(trailhound_core::testing::offline())
            .with_policy(|p| {
                p.commit_interval = Duration::from_secs(30);
                p.commit_max_events = 50;
            })
            .plan_json(r#"{"plan": "p", "version": "1-0-0", "events": []}"#)
            .listener(move |n: &Notification| {
                if let Notification::PlanViolation { .. } = n {
                    heard.fetch_add(1, Ordering::Relaxed);
                }
            })
            .build()
            .unwrap();
        let bell = client.shared.mailbox.bell();
        for i in 0..200 {
            client
                .track("Unplanned", serde_json::json!({ "i": i }))
                .unwrap();
            if i % 10 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let rings = bell.rings();
        assert!((5..=40).contains(&rings), "{rings} rings for 200 events");
        client.flush_blocking(Duration::from_secs(10)).unwrap();
        assert_eq!(told.load(Ordering::Relaxed), 200);
    }

    /// The client is shareable between threads.
    #[test]
    fn client_is_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<Client>();
    }
}
