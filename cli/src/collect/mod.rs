//! `trailhound collect`: a local Segment-compatible collector that validates every event
//! the way real collectors do, keeps the invalid ones with their reason, and shows
//! everything on a live page.
//!
//! - [`validate`]: the per-event checks and the clock-skew correction (pure).
//! - [`store`]: events and counters in memory, mirrored to SQLite.
//! - `server`: HTTP routing, CORS, auth, gzip, fault injection, the page's assets.
//!
//! ```no_run
//! use trailhound_cli::collect::{Collector, Config};
//! let collector = Collector::start(Config::default())?;
//! println!("send events to {}", collector.url());
//! # anyhow::Ok(())
//! ```

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::SystemTime;

use anyhow::Context as _;

mod server;
pub mod store;
pub mod validate;

use server::{lock, Jitter, Shared};
pub use store::{Count, MinuteCount, Stats, StoredEvent};

/// Server threads: the page's polls and a slow (`--latency`) batch do not hold each
/// other up, and a development collector needs no more.
const WORKERS: usize = 8;

/// The `--fail-rate` generator's seed: the same flags fail the same requests every run.
const FAULT_SEED: u64 = 0x7472_6169_6c68_6f75;

/// `trailhound collect` options.
#[derive(Debug, clap::Args)]
pub struct CollectArgs {
    /// Address to listen on (port 0 picks a free port).
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
    /// Answer every tracking request with this status.
    #[arg(long, value_name = "CODE", value_parser = clap::value_parser!(u16).range(100..=599))]
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
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let p: f64 = s.parse().map_err(|_| format!("not a number: {s}"))?;
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(format!("must be between 0 and 1, got {p}"))
    }
}

/// Runs `trailhound collect` until interrupted.
pub fn run_cli(args: CollectArgs) -> anyhow::Result<()> {
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
        }
    }
}

/// Faults injected into the answers to tracking requests (`POST /v1/...`). A request
/// answered with an injected non-2xx status stores nothing.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Fraction of requests answered 503, from 0 to 1 (seeded, so runs repeat).
    pub fail_rate: f64,
    /// Answer every request with this status (a 2xx one still stores the events).
    pub status: Option<u16>,
    /// `Retry-After` seconds on injected failures.
    pub retry_after: Option<u64>,
    /// Delay before every answer, in milliseconds.
    pub latency_ms: u64,
}

impl Faults {
    fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            (0.0..=1.0).contains(&self.fail_rate),
            "fail rate must be between 0 and 1, got {}",
            self.fail_rate
        );
        if let Some(s) = self.status {
            anyhow::ensure!((100..=599).contains(&s), "not an HTTP status: {s}");
        }
        Ok(())
    }
}

/// A running collector: its server threads stop when it is dropped.
pub struct Collector {
    shared: Arc<Shared>,
    url: String,
    threads: Vec<JoinHandle<()>>,
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
        config.faults.check()?;
        let store = match &config.db {
            Some(path) => store::Store::open(path)?,
            None => store::Store::memory(),
        };
        let server = tiny_http::Server::http(&config.listen)
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
        let mut addr = server
            .server_addr()
            .to_ip()
            .context("the listener has no IP address")?;
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
        let shared = Arc::new(Shared {
            store: Mutex::new(store),
            faults: Mutex::new(config.faults),
            rng: Mutex::new(Jitter::new(FAULT_SEED)),
            write_key: config.write_key,
            quiet: config.quiet,
            request_times: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            stopped: (Mutex::new(false), Condvar::new()),
        });
        let server = Arc::new(server);
        let mut threads = Vec::with_capacity(WORKERS);
        for i in 0..WORKERS {
            let (server, shared) = (Arc::clone(&server), Arc::clone(&shared));
            let t = std::thread::Builder::new()
                .name(format!("collect-{i}"))
                .spawn(move || server::serve(&server, &shared))
                .context("cannot start a server thread")?;
            threads.push(t);
        }
        Ok(Collector {
            shared,
            url,
            threads,
        })
    }

    /// `http://127.0.0.1:PORT`: the endpoint to give the SDK, and the live page.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Changes the injected faults; the next request sees them.
    pub fn set_faults(&self, faults: Faults) {
        let faults = Faults {
            fail_rate: faults.fail_rate.clamp(0.0, 1.0),
            ..faults
        };
        *lock(&self.shared.faults) = faults;
    }

    /// The numbers of `/api/stats`.
    pub fn stats(&self) -> Stats {
        lock(&self.shared.store).stats()
    }

    /// Every stored event (valid and invalid), oldest first.
    pub fn events(&self) -> Vec<StoredEvent> {
        lock(&self.shared.store).events().to_vec()
    }

    /// When each tracking request (`POST /v1/...`) arrived, refused ones included.
    pub fn request_times(&self) -> Vec<SystemTime> {
        lock(&self.shared.request_times).clone()
    }

    /// Stops serving; [`Collector::wait`] returns. Dropping the collector also stops it.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Release);
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
    fn drop(&mut self) {
        self.stop();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
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
    }
}
