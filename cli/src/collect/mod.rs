//! `trailhound collect`: a local Segment-compatible collector that validates every event
//! the way real collectors do, keeps the invalid ones with their reason, and shows
//! everything on a live page.
//!
//! - [`validate`]: the per-event checks, the clock-skew correction and the decoding of a
//!   whole request body ([`validate::decode_request`]); pure.
//! - [`store`]: the newest events in memory (at most `--max-events`) with the dashboard
//!   numbers kept up to date, every event mirrored to SQLite.
//! - [`violations`]: with `--plan`, every event checked against the tracking plan by the
//!   one validator of `trailhound-core`; the violations are stored with the event and
//!   summed up by `/api/violations` (events are still accepted: it shows, not refuses).
//! - `server`: routing, the access rules below, auth, fault injection ([`Faults`]), the
//!   page's assets.
//! - `http`: a small HTTP/1.1 server where every read has a timeout and every request a
//!   deadline, so that slow or silent clients cannot stall the others; it resets a
//!   connection when the fault is "no answer" (`--status 0`).
//!
//! # Who may talk to it
//!
//! A QA session holds user ids and traits, so the collector is not a public service:
//!
//! - **`Host`** must name this machine: `localhost`, `*.localhost`, an IP address, or a
//!   name given with `--allow-host`. Anything else is refused with 403 on every route.
//!   This stops DNS rebinding, where a page on the internet points its own DNS name at
//!   127.0.0.1 and so becomes same-origin with the collector.
//! - **The page and the read API** (`/`, `/assets/*`, `/api/*`) get
//!   no CORS headers at all: only the collector's own page can read them. They answer
//!   403 to clients on other machines (when listening on `0.0.0.0` for a phone) unless
//!   `--allow-remote-read`.
//! - **The tracking endpoints** (`/v1/batch`, `/v1/track`, …) take events from apps
//!   without an `Origin` (native SDKs, curl) from anywhere the socket is reachable, and
//!   from browser pages whose `Origin` is on this machine (`http(s)://localhost`,
//!   `127.x.x.x`, `[::1]`, any port) or given with `--allow-origin` (`*` for any page).
//!   Those get the origin echoed with `Access-Control-Allow-Credentials: true`, which a
//!   `sendBeacon` of a non-safelisted type or a `fetch` with credentials needs. Pages of
//!   other origins are refused with 403 (and are not counted as requests), so that a
//!   site the tester visits cannot feed events into the session either.
//! - **`POST /api/faults`** follows the read API's rules and also wants
//!   `Content-Type: application/json`, which a page of another origin cannot send
//!   without a preflight that `/api` never answers; an `Origin` other than the
//!   collector's own is refused. So only a local client (a test, curl) or the
//!   collector's own page changes the faults.
//!
//! Why any IP address passes the `Host` check: a rebinding page's requests carry the
//! attacker's DNS name, and a page served from an IP address is of that address's
//! origin, so it is cross-origin to the collector and the rules above apply. This lets a
//! phone reach `0.0.0.0:8787` by the laptop's LAN address without naming it.
//!
//! # Limits
//!
//! - Memory keeps the newest `--max-events` events ([`DEFAULT_MAX_EVENTS`]); `--db`
//!   keeps every event on disk. `accepted`, `invalid` and the request counters count
//!   everything; the top lists and events per minute describe the events in memory and
//!   are updated as each event comes in or goes out, so `/api/stats` costs the same at
//!   any size; so are the numbers of `/api/violations` without filters (the page's
//!   poll), while filters sum up the matching events in memory. Deduplication covers the events in memory and, with `--db`, every stored
//!   one.
//! - Every read waits at most [`Config::read_timeout`]; a request must arrive whole
//!   within three times that (else 408); bodies over 500 KB are refused (413) without
//!   being kept; at most 128 connections are open at once (then 503).
//!
//! ```no_run
//! use trailhound_cli::collect::{Collector, Config};
//! let collector = Collector::start(Config::default())?;
//! println!("send events to {}", collector.url());
//! # anyhow::Ok(())
//! ```

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use trailhound_core::plan::Plan;

mod http;
mod server;
pub mod store;
pub mod validate;
pub mod violations;

use server::{lock, Access, Jitter, Shared};
pub use store::{Count, MinuteCount, Query, Stats, StoredEvent, DEFAULT_MAX_EVENTS};
pub use violations::{PlanViolation, ViolationReport};

/// How long a client may take to send its next byte (and may stay idle between
/// keep-alive requests); a whole request must arrive within three times that. Ten
/// seconds is far more than a phone on Wi-Fi needs for a 500 KB batch.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The `--fail-rate` generator's seed: the same flags fail the same requests every run.
const FAULT_SEED: u64 = 0x7472_6169_6c68_6f75;

/// `trailhound collect` options.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Who may connect:
  Every request must name this machine in its Host header: localhost, *.localhost, an IP
  address, or a name given with --allow-host (refused with 403 otherwise, against DNS
  rebinding).
  The page and /api/* are same-origin only (no CORS headers) and, when listening on a
  non-loopback address such as 0.0.0.0, answer only clients on this machine unless
  --allow-remote-read.
  /v1/* takes events from apps without an Origin (native SDKs, curl) from anywhere the
  port is reachable, and from browser pages on this machine (http(s)://localhost,
  127.x.x.x, [::1], any port) or of an origin given with --allow-origin.

Faults (tracking requests only; the page and /api keep working):
  --status 0 (or 000) answers nothing: the connection is reset (TCP RST) once the request
  head is read, as a dead or blocked endpoint; nothing is stored, the request is counted
  as failed. Other codes are answered as they are; a 2xx one still stores the events.
  A running collector's faults change with POST /api/faults (like the rest of /api, from
  this machine unless --allow-remote-read; Content-Type: application/json), effective
  from the next request:
    curl -H 'Content-Type: application/json' -d '{\"status\": 0}' http://127.0.0.1:8787/api/faults
  The body {\"status\": 0|100..599|null, \"fail_rate\": 0..1, \"retry_after\": S|null,
  \"latency_ms\": MS} replaces every fault (a field left out is no fault: {} clears them);
  the answer is the faults now in effect, as GET /api/faults gives. A bad body or value
  is refused with 400 (415 without the JSON type) and changes nothing.")]
pub struct CollectArgs {
    /// Address to listen on (port 0 picks a free port); 0.0.0.0:PORT lets a phone on the
    /// LAN send events (the page and /api stay local, see below).
    #[arg(long, default_value = "127.0.0.1:8787", value_name = "ADDR")]
    pub listen: String,
    /// SQLite file keeping events and counters across restarts.
    #[arg(long, default_value = "./trailhound-collect.db", value_name = "PATH")]
    pub db: PathBuf,
    /// Keep everything in memory only (no database file).
    #[arg(long)]
    pub memory: bool,
    /// Accept only this write key (default: any non-empty key).
    #[arg(long, value_name = "K")]
    pub write_key: Option<String>,
    /// Answer this fraction of tracking requests with 503 (0 to 1).
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = parse_rate)]
    pub fail_rate: f64,
    /// Answer every tracking request with this status; 0 (or 000, as curl prints it)
    /// answers nothing: the connection is reset once the request head is read.
    #[arg(long, value_name = "CODE", value_parser = parse_status)]
    pub status: Option<u16>,
    /// Add `Retry-After: S` to injected failures.
    #[arg(long, value_name = "S")]
    pub retry_after: Option<u64>,
    /// Delay every answer to a tracking request by this many milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub latency: u64,
    /// Print only the first line (the URL), no line per request.
    #[arg(long)]
    pub quiet: bool,
    /// Events kept in memory for the page and /api (the oldest go first); totals still
    /// count every event, and --db keeps every event on disk.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_EVENTS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_events: usize,
    /// Also accept this Host header name (e.g. mymac.local, a tunnel's name); repeatable.
    #[arg(long, value_name = "H")]
    pub allow_host: Vec<String>,
    /// Also accept events from browser pages of this origin (e.g. http://192.168.1.5:3000,
    /// or * for any page); repeatable. They can never read /api.
    #[arg(long, value_name = "ORIGIN")]
    pub allow_origin: Vec<String>,
    /// Serve the page and /api to other machines too (they show user ids and traits).
    #[arg(long)]
    pub allow_remote_read: bool,
    /// Check every event against this tracking plan (JSON, or YAML named .yaml/.yml); violations are stored with
    /// the event, shown on the page and in /api/violations (events are still accepted).
    #[arg(long, value_name = "PATH")]
    pub plan: Option<PathBuf>,
}

/// Reads, lints and compiles a plan file; the error names the file and the place in it.
pub fn load_plan(path: &Path) -> anyhow::Result<Plan> {
    let text = crate::plan::plan_text(path)
        .with_context(|| format!("cannot read the plan {}", path.display()))?;
    Plan::parse(&text).with_context(|| format!("the plan {} is refused", path.display()))
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let p: f64 = s.parse().map_err(|_| format!("not a number: {s}"))?;
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(format!("must be between 0 and 1, got {p}"))
    }
}

/// `0`/`000` (no answer) or an HTTP status.
fn parse_status(s: &str) -> Result<u16, String> {
    let code: u16 = s.parse().map_err(|_| format!("not a status code: {s}"))?;
    Faults::check_status(code)?;
    Ok(code)
}

/// Runs `trailhound collect` until interrupted.
pub fn run_cli(args: CollectArgs) -> anyhow::Result<()> {
    // Before anything listens: a bad plan must not leave a half-started collector.
    let plan = match &args.plan {
        Some(path) => {
            let plan = load_plan(path)?;
            eprintln!(
                "trailhound collect: checking events against plan {} {} ({} events) from {}",
                plan.id(),
                plan.version(),
                plan.file().events.len(),
                path.display()
            );
            Some(Arc::new(plan))
        }
        None => None,
    };
    let db = (!args.memory).then_some(args.db);
    let config = Config {
        listen: args.listen,
        db: db.clone(),
        write_key: args.write_key,
        faults: Faults {
            fail_rate: args.fail_rate,
            status: args.status,
            retry_after: args.retry_after,
            latency_ms: args.latency,
        },
        quiet: args.quiet,
        max_events: args.max_events,
        allow_hosts: args.allow_host,
        allow_origins: args.allow_origin,
        allow_remote_read: args.allow_remote_read,
        plan,
        ..Config::default()
    };
    let collector = Collector::start_with(config, true)?;
    let stats = collector.stats();
    match db {
        Some(path) => eprintln!(
            "trailhound collect: database {} ({} accepted, {} invalid events kept); live page at {}/",
            path.display(),
            stats.accepted,
            stats.invalid,
            collector.url()
        ),
        None => eprintln!(
            "trailhound collect: in memory only; live page at {}/",
            collector.url()
        ),
    }
    collector.wait();
    Ok(())
}

/// How to run a [`Collector`].
#[derive(Clone, Debug)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port.
    pub listen: String,
    /// SQLite file for events and counters; `None` keeps them in memory only.
    pub db: Option<PathBuf>,
    /// Accept only this write key; `None` accepts any non-empty key.
    pub write_key: Option<String>,
    /// Injected faults, changeable later with [`Collector::set_faults`].
    pub faults: Faults,
    /// No log line per request.
    pub quiet: bool,
    /// Events kept in memory (the oldest go first); the database keeps every one.
    pub max_events: usize,
    /// More `Host` names to accept besides `localhost` and IP addresses (a port, if
    /// given, is ignored).
    pub allow_hosts: Vec<String>,
    /// More page origins that may send events besides those on this machine; `*`: any.
    pub allow_origins: Vec<String>,
    /// Serve the page and `/api` to clients on other machines too.
    pub allow_remote_read: bool,
    /// How long a client may take to send its next byte; a whole request must arrive
    /// within three times that.
    pub read_timeout: Duration,
    /// Check every event against this tracking plan and store its violations.
    pub plan: Option<Arc<Plan>>,
}

impl Default for Config {
    /// A free loopback port, in memory, any key, no faults, quiet: what tests want.
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:0".into(),
            db: None,
            write_key: None,
            faults: Faults::default(),
            quiet: true,
            max_events: DEFAULT_MAX_EVENTS,
            allow_hosts: Vec::new(),
            allow_origins: Vec::new(),
            allow_remote_read: false,
            read_timeout: DEFAULT_READ_TIMEOUT,
            plan: None,
        }
    }
}

/// Faults injected into the answers to tracking requests (`POST /v1/...`). A request
/// answered with an injected non-2xx status, or not at all, stores nothing.
///
/// Its JSON form is the body of `POST /api/faults`: a field left out is no fault.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Fraction of requests answered 503, from 0 to 1 (seeded, so runs repeat).
    pub fail_rate: f64,
    /// Answer every request with this status (a 2xx one still stores the events);
    /// [`Faults::NO_ANSWER`] resets the connection instead.
    pub status: Option<u16>,
    /// `Retry-After` seconds on injected failures.
    pub retry_after: Option<u64>,
    /// Delay before every answer (or reset), in milliseconds.
    pub latency_ms: u64,
}

impl Faults {
    /// The `status` of a dead or blocked endpoint: no HTTP answer at all, the connection
    /// is reset (TCP RST) right after the request head is read. Written `000` by curl.
    pub const NO_ANSWER: u16 = 0;

    /// Refuses values the collector cannot play, naming the field.
    pub fn check(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.fail_rate) {
            return Err(format!(
                "fail_rate must be between 0 and 1, got {}",
                self.fail_rate
            ));
        }
        match self.status {
            Some(code) => Faults::check_status(code).map_err(|e| format!("status {e}")),
            None => Ok(()),
        }
    }

    fn check_status(code: u16) -> Result<(), String> {
        if code == Faults::NO_ANSWER || (100..=599).contains(&code) {
            Ok(())
        } else {
            Err(format!(
                "must be 0 (no answer: the connection is reset) or an HTTP status from 100 \
                 to 599, got {code}"
            ))
        }
    }
}

/// A running collector: its server threads stop when it is dropped.
pub struct Collector {
    shared: Arc<Shared>,
    url: String,
    server: Mutex<http::Server>,
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collector")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Collector {
    /// Opens the database (if any), binds the address and starts serving.
    pub fn start(config: Config) -> anyhow::Result<Collector> {
        Collector::start_with(config, false)
    }

    /// `announce`: print the CLI's first line before any request can be logged.
    fn start_with(config: Config, announce: bool) -> anyhow::Result<Collector> {
        config.faults.check().map_err(anyhow::Error::msg)?;
        anyhow::ensure!(
            !config.read_timeout.is_zero(),
            "the read timeout must not be zero"
        );
        let store = match &config.db {
            Some(path) => store::Store::open_with(path, config.max_events)?,
            None => store::Store::memory_with(config.max_events),
        };
        let listener = std::net::TcpListener::bind(&config.listen)
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let mut addr = listener
            .local_addr()
            .context("the listener has no address")?;
        // Listening on every interface: the URL to give out is the loopback one.
        if addr.ip().is_unspecified() {
            addr.set_ip(if addr.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            });
        }
        let url = format!("http://{addr}");
        if announce {
            use std::io::Write as _;
            let mut out = std::io::stdout().lock();
            writeln!(out, "trailhound collect: listening on {url}")?;
            out.flush()?;
        }
        let host_name = |h: &String| {
            let h = h.trim().to_ascii_lowercase();
            match h.strip_prefix('[') {
                Some(v6) => v6.split(']').next().unwrap_or_default().to_owned(),
                None if h.matches(':').count() == 1 => {
                    h.split(':').next().unwrap_or_default().to_owned()
                }
                None => h,
            }
        };
        let access = Access {
            hosts: config.allow_hosts.iter().map(host_name).collect(),
            origins: config
                .allow_origins
                .iter()
                .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
                .collect(),
            remote_read: config.allow_remote_read,
        };
        let shared = Arc::new(Shared {
            store: Mutex::new(store),
            faults: Mutex::new(config.faults),
            rng: Mutex::new(Jitter::new(FAULT_SEED)),
            write_key: config.write_key,
            quiet: config.quiet,
            access,
            request_times: Mutex::new(std::collections::VecDeque::new()),
            max_request_times: config.max_events.max(1),
            stopped: (Mutex::new(false), Condvar::new()),
            plan: config.plan,
        });
        let limits = http::Limits {
            read_timeout: config.read_timeout,
            max_body: validate::limits::MAX_RAW_BYTES,
            max_drain: validate::limits::MAX_DRAIN_BYTES,
        };
        let handler: Arc<dyn http::Handler> = Arc::new(server::Routes(Arc::clone(&shared)));
        let server = http::Server::start(listener, limits, handler)
            .context("cannot start the server thread")?;
        Ok(Collector {
            shared,
            url,
            server: Mutex::new(server),
        })
    }

    /// `http://127.0.0.1:PORT`: the endpoint to give the SDK, and the live page.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Replaces the injected faults; the next request sees them (a request already
    /// being handled keeps the old ones). Values [`Faults::check`] refuses change nothing.
    pub fn set_faults(&self, faults: Faults) -> anyhow::Result<()> {
        faults.check().map_err(anyhow::Error::msg)?;
        *lock(&self.shared.faults) = faults;
        Ok(())
    }

    /// The injected faults now in effect.
    pub fn faults(&self) -> Faults {
        lock(&self.shared.faults).clone()
    }

    /// The numbers of `/api/stats`.
    pub fn stats(&self) -> Stats {
        lock(&self.shared.store).stats()
    }

    /// Every event in memory (valid and invalid), oldest first: the newest
    /// [`Config::max_events`].
    pub fn events(&self) -> Vec<StoredEvent> {
        lock(&self.shared.store).events().cloned().collect()
    }

    /// The numbers of `/api/violations` for the events in memory matching `q` (its
    /// `limit`: how many recent violating events).
    pub fn violations(&self, q: &Query) -> ViolationReport {
        let mut report = lock(&self.shared.store).violations(q);
        report.plan = self.shared.plan.as_ref().map(violations::PlanInfo::of);
        report
    }

    /// When each tracking request (`POST /v1/...`) arrived, refused ones included (but
    /// not those refused for their `Host` or `Origin`): the newest
    /// [`Config::max_events`].
    pub fn request_times(&self) -> Vec<SystemTime> {
        lock(&self.shared.request_times).iter().copied().collect()
    }

    /// Stops serving: closes the listener and every connection (a request being
    /// handled is answered first); [`Collector::wait`] returns. Dropping the collector
    /// also stops it.
    pub fn stop(&self) {
        lock(&self.server).stop();
        let (done, cvar) = &self.shared.stopped;
        *lock(done) = true;
        cvar.notify_all();
    }

    /// Blocks until [`Collector::stop`] is called from another thread; the CLI waits
    /// here until Ctrl-C ends the process (every request is committed when answered, so
    /// nothing is lost).
    pub fn wait(&self) {
        let (done, cvar) = &self.shared.stopped;
        let mut stopped = lock(done);
        while !*stopped {
            stopped = cvar.wait(stopped).unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl Drop for Collector {
    /// Stops, closes every connection and joins every server thread.
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The handle can move to and be shared between threads (the demo does both).
    #[test]
    fn collector_is_send_sync() {
        fn assert<T: Send + Sync>() {}
        assert::<Collector>();
        assert::<Stats>();
        assert::<StoredEvent>();
        assert::<Config>();
    }
}
