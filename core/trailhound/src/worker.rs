//! The background threads: one owns the engine and the SQLite store, one sends uploads.
//!
//! The engine thread is the quinn-style driver of the sans-IO engine: feed it commands,
//! run its store operations, hand its requests to the upload thread, pass notifications to
//! the listeners, sleep until its next timeout. Uploads run on their own thread so that a
//! slow server never delays group commits (and so never widens the crash window).

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use trailhound_core::store::{self, FailureKind};
use trailhound_core::{
    DeviceConditions, Engine, Identity, Lifecycle, Notification, Policy, Stats, UploadResult,
};

use crate::client::{now_ms, Listener, WriteKey};
use crate::error::Error;
use crate::store::SqliteStore;
use crate::transport::{HttpRequest, Transport};

/// Most commands handled between two store drives, so that a flood of `track()` calls
/// is committed in groups without starving timers.
const COMMAND_BATCH: usize = 4096;

pub(crate) enum Command {
    Event(trailhound_core::QueuedEvent),
    Identity(Identity),
    Conditions(DeviceConditions),
    Lifecycle(Lifecycle),
    Flush(Option<Sender<()>>),
    OptOut(bool),
    UploadDone(u64, UploadResult),
    Shutdown { deadline: Instant, done: Sender<()> },
}

pub(crate) struct WorkerConfig {
    pub policy: Policy,
    pub data_dir: PathBuf,
    pub url: String,
    pub write_key: WriteKey,
    pub transport: Arc<dyn Transport>,
    pub listeners: Arc<Vec<Arc<dyn Listener>>>,
    pub conditions: DeviceConditions,
    pub seed: u64,
    pub max_pages: Option<u32>,
    pub call_bytes: Arc<AtomicUsize>,
    pub self_tx: SyncSender<Command>,
}

type Ready = Result<(Identity, bool), Error>;

/// Calls a listener, containing any panic in it.
pub(crate) fn call_listener(listener: &dyn Listener, n: &Notification) {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| listener.on_notification(n)));
    if r.is_err() {
        log::error!("a Trailhound listener panicked; delivery goes on");
    }
}

pub(crate) fn spawn(
    config: WorkerConfig,
    rx: Receiver<Command>,
    ready: Sender<Ready>,
    stats: Arc<Mutex<Stats>>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("trailhound".into())
        .spawn(move || {
            let Some(mut worker) = Worker::open(config, &ready, stats) else {
                return;
            };
            worker.run(rx);
        })
}

struct Worker {
    engine: Engine,
    store: SqliteStore,
    upload_tx: Sender<(u64, HttpRequest)>,
    upload_thread: Option<JoinHandle<()>>,
    url: String,
    auth: String,
    listeners: Arc<Vec<Arc<dyn Listener>>>,
    stats: Arc<Mutex<Stats>>,
    flush_waiters: Vec<Sender<()>>,
    call_bytes: Arc<AtomicUsize>,
}

impl Worker {
    fn open(
        config: WorkerConfig,
        ready: &Sender<Ready>,
        stats: Arc<Mutex<Stats>>,
    ) -> Option<Worker> {
        let opened = match SqliteStore::open(&config.data_dir) {
            Ok(o) => o,
            Err(e) => {
                let _ = ready.send(Err(e.into()));
                return None;
            }
        };
        let mut store = opened.store;
        if let Some(pages) = config.max_pages {
            store.set_max_pages(pages);
        }
        let snapshot = match store::QueueStore::snapshot(&mut store) {
            Ok(s) => s,
            Err(e) => {
                let _ = ready.send(Err(Error::Config(format!("cannot read the queue: {e}"))));
                return None;
            }
        };
        let now = now_ms();
        let mut engine = Engine::new(
            config.policy.clone(),
            config.seed,
            snapshot,
            Identity::new(uuid::Uuid::new_v4()),
            now,
        );
        engine.handle_conditions(config.conditions, now);
        if let Some(message) = opened.recovered {
            engine.handle_store_replaced(message, now);
        }
        let (upload_tx, upload_rx) = mpsc::channel::<(u64, HttpRequest)>();
        let transport = config.transport;
        let done_tx = config.self_tx;
        let upload_thread = std::thread::Builder::new()
            .name("trailhound-upload".into())
            .spawn(move || {
                for (id, request) in upload_rx {
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        transport.send(&request)
                    }))
                    .unwrap_or_else(|_| {
                        UploadResult::NetworkError("the transport panicked".into())
                    });
                    if done_tx.send(Command::UploadDone(id, result)).is_err() {
                        break;
                    }
                }
            });
        let upload_thread = match upload_thread {
            Ok(t) => t,
            Err(e) => {
                let _ = ready.send(Err(Error::Config(format!(
                    "cannot start the upload thread: {e}"
                ))));
                return None;
            }
        };
        *stats.lock().unwrap_or_else(|e| e.into_inner()) = engine.stats();
        let _ = ready.send(Ok((engine.identity().clone(), engine.opted_out())));
        Some(Worker {
            engine,
            store,
            upload_tx,
            upload_thread: Some(upload_thread),
            url: config.url,
            auth: trailhound_core::wire::basic_auth(&config.write_key.0),
            listeners: config.listeners,
            stats,
            flush_waiters: Vec::new(),
            call_bytes: config.call_bytes,
        })
    }

    fn run(&mut self, rx: Receiver<Command>) {
        let mut shutdown: Option<(Instant, Sender<()>)> = None;
        loop {
            self.drive();
            if let Some((deadline, _)) = &shutdown {
                if (!self.engine.is_flushing() && self.committed()) || Instant::now() >= *deadline {
                    break;
                }
            }
            let wait = self
                .engine
                .poll_timeout()
                .map(|t| (t - now_ms()).max(0) as u64);
            let wait = match &shutdown {
                Some((deadline, _)) => {
                    let left = deadline
                        .saturating_duration_since(Instant::now())
                        .as_millis() as u64;
                    Some(wait.map_or(left, |w| w.min(left)))
                }
                None => wait,
            };
            let first = match wait {
                Some(ms) => match rx.recv_timeout(Duration::from_millis(ms)) {
                    Ok(cmd) => Some(cmd),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break,
                },
                None => match rx.recv() {
                    Ok(cmd) => Some(cmd),
                    Err(_) => break,
                },
            };
            let now = now_ms();
            self.engine.handle_timeout(now);
            let mut next = first;
            let mut handled = 0;
            while let Some(cmd) = next {
                if let Some(stop) = self.handle(cmd, now) {
                    shutdown = Some(stop);
                }
                handled += 1;
                if handled >= COMMAND_BATCH {
                    break;
                }
                next = rx.try_recv().ok();
            }
        }
        // Whatever happened, commit what was accepted before stopping.
        self.engine.handle_commit_now(now_ms());
        self.drive_store();
        self.publish();
        self.release_flush_waiters();
        drop(std::mem::replace(&mut self.upload_tx, mpsc::channel().0));
        if let Some((_, done)) = shutdown {
            let _ = done.send(());
        }
        // The upload thread ends when its channel closes; a request under way finishes
        // (or times out) on its own, and its result is simply not recorded.
        drop(self.upload_thread.take());
    }

    /// Everything accepted is committed (no uncommitted events, no store work left).
    fn committed(&self) -> bool {
        self.engine.stats().uncommitted_events == 0
    }

    /// Feeds one command to the engine; returns the deadline and reply of a shutdown.
    fn handle(&mut self, cmd: Command, now: i64) -> Option<(Instant, Sender<()>)> {
        match cmd {
            Command::Event(ev) => {
                self.call_bytes.fetch_sub(ev.json.len(), Ordering::AcqRel);
                self.engine.handle_event(ev, now);
            }
            Command::Identity(identity) => self.engine.handle_identity(identity),
            Command::Conditions(c) => self.engine.handle_conditions(c, now),
            Command::Lifecycle(l) => self.engine.handle_lifecycle(l, now),
            Command::Flush(waiter) => {
                self.engine.handle_flush(now);
                if let Some(w) = waiter {
                    self.flush_waiters.push(w);
                }
            }
            Command::OptOut(out) => self.engine.handle_opt_out(out, now),
            Command::UploadDone(id, result) => self.engine.handle_upload(id, result, now),
            Command::Shutdown { deadline, done } => {
                // Like going to the background: commit everything, and one flush attempt
                // if the network, backoff and auth pause allow.
                self.engine.handle_lifecycle(Lifecycle::Background, now);
                return Some((deadline, done));
            }
        }
        None
    }

    fn drive(&mut self) {
        self.drive_store();
        let now = now_ms();
        if let Some(t) = self.engine.poll_transmit(now) {
            let request = HttpRequest::batch(&self.url, &self.auth, t.body);
            if self.upload_tx.send((t.id, request)).is_err() {
                self.engine.handle_upload(
                    t.id,
                    UploadResult::NetworkError("upload thread stopped".into()),
                    now,
                );
            }
        }
        self.drive_store();
        while let Some(n) = self.engine.poll_notification() {
            match &n {
                Notification::StoreError { error } => log::warn!("trailhound: {error}"),
                Notification::UploadFailed { error, .. } => {
                    log::info!("trailhound: upload failed: {error}")
                }
                _ => {}
            }
            for l in self.listeners.iter() {
                call_listener(l.as_ref(), &n);
            }
        }
        self.publish();
        if !self.engine.is_flushing() {
            self.release_flush_waiters();
        }
    }

    fn release_flush_waiters(&mut self) {
        for w in self.flush_waiters.drain(..) {
            let _ = w.send(());
        }
    }

    fn publish(&self) {
        let stats = self.engine.stats();
        *self.stats.lock().unwrap_or_else(|e| e.into_inner()) = stats;
    }

    /// Runs store operations until the engine has none left.
    fn drive_store(&mut self) {
        loop {
            let now = now_ms();
            let (result, replaced) = {
                let Some(op) = self.engine.poll_store(now) else {
                    break;
                };
                let result = store::execute(&mut self.store, op);
                match result {
                    Err(f) if f.kind == FailureKind::Corrupt => {
                        match self.store.replace_corrupt() {
                            Ok(message) => (store::execute(&mut self.store, op), Some(message)),
                            Err(e) => {
                                log::error!("trailhound: {f}; replacing the store failed: {e}");
                                (Err(f), None)
                            }
                        }
                    }
                    other => (other, None),
                }
            };
            if let Some(message) = replaced {
                self.engine.handle_store_replaced(message, now);
            }
            self.engine.handle_store(result, now_ms());
        }
    }
}
