//! `trailhound queue replay`: send a queue's events through the SDK's own delivery code.
//!
//! The events are copied into a [`MemoryStore`] and delivered by the same sans-IO
//! [`Engine`] and [`Transport`] the SDK uses, so batching, gzip, `sentAt`, retries,
//! backoff and `Retry-After` behave exactly as on the device. Each event keeps its
//! `messageId`, so a collector dedupes a replay of events it already has.
//!
//! The source is opened read-only unless `--drain` asks to delete what was delivered;
//! then only acknowledged events are deleted from it (rejected ones stay, for a look).
//!
//! Several `--to` endpoints fail over as the SDK does ([`Engine::set_endpoints`]): a
//! batch that fails on one goes to the next at once, with the same `messageId`s, and each
//! endpoint's circuit breaker decides when it is tried again.

use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use trailhound::core::breaker::OpenReason;
use trailhound::core::store::{self, QueueStore};
use trailhound::core::{
    wire, DeviceConditions, DropReason, Engine, Identity, MemoryStore, Network, Notification,
    PersistedState, Policy, QueuedEvent, UploadResult,
};
use trailhound::store::SqliteStore;
use trailhound::{HttpRequest, Transport};

use super::{db_path, open_read_only, Source};

/// `trailhound queue replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// A data directory or a queue database file.
    pub path: PathBuf,
    /// The collector's endpoint (`https://…`, or `http://` to a loopback address); `/v1/batch`
    /// is added unless the URL already ends with it. Give it again for fallbacks, in order
    /// of preference (at most 4): a batch that fails on one goes to the next.
    #[arg(long, value_name = "URL", required = true)]
    pub to: Vec<String>,
    /// The write key to send (Basic auth).
    #[arg(
        long,
        value_name = "K",
        env = "TRAILHOUND_WRITE_KEY",
        default_value = "trailhound-replay",
        hide_env_values = true
    )]
    pub write_key: String,
    /// At most N events per second (also caps a batch at N events). Accepts `N` or `N/s`.
    #[arg(long, value_name = "N/s", value_parser = parse_rate)]
    pub rate: Option<u32>,
    /// Show the batches that would be sent; send nothing and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Delete delivered events from the source (otherwise it is only read).
    #[arg(long, conflicts_with = "dry_run")]
    pub drain: bool,
    /// Give up after this many consecutive failed requests (to every endpoint, with several).
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub max_attempts: u32,
    /// Per-request timeout, in seconds.
    #[arg(long, default_value_t = 30, value_name = "S")]
    pub timeout: u64,
}

fn parse_rate(s: &str) -> Result<u32, String> {
    let n = s.strip_suffix("/s").unwrap_or(s);
    match n.parse::<u32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!(
            "{s:?}: expected a positive number of events per second, like 200 or 200/s"
        )),
    }
}

/// How a replay runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The endpoints' base URLs, checked, in order of preference.
    pub endpoints: Vec<String>,
    /// The write key.
    pub write_key: String,
    /// Events per second.
    pub rate: Option<u32>,
    /// Send nothing.
    pub dry_run: bool,
    /// Delete delivered events from the source.
    pub drain: bool,
    /// Consecutive failures before giving up.
    pub max_attempts: u32,
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Summary {
    /// Events in the source.
    pub events: u64,
    /// Events the collector acknowledged (or, in a dry run, that would have been sent).
    pub delivered: u64,
    /// Events the collector refused, by reason.
    pub rejected: BTreeMap<String, u64>,
    /// Requests that failed and were retried.
    pub retried: u64,
    /// Requests made.
    pub requests: u64,
    /// Compressed bytes sent.
    pub bytes_sent: u64,
    /// Events not sent because the replay stopped early.
    pub left: u64,
    /// Events deleted from the source (`--drain`).
    pub drained: u64,
    /// Why the replay stopped early, if it did.
    pub stopped: Option<String>,
    /// Each endpoint's requests, in the order given.
    pub endpoints: Vec<EndpointSummary>,
}

/// One endpoint's part in a replay.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct EndpointSummary {
    /// Its base URL.
    pub url: String,
    /// Requests sent to it.
    pub requests: u64,
    /// Of those, how many failed (no answer, a transient status, a pause).
    pub failures: u64,
    /// Its breaker at the end: `closed`, `open` or `half_open`.
    pub state: String,
}

impl Summary {
    /// Events rejected, all reasons together.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}

/// Something to show while a replay runs.
#[derive(Debug, Clone)]
pub enum Progress {
    /// A batch went out.
    Sent {
        /// Its events.
        events: usize,
        /// Its compressed bytes.
        bytes: usize,
        /// The endpoint it went to (an index into [`Options::endpoints`]).
        endpoint: usize,
    },
    /// An endpoint's breaker opened: batches go to the next endpoint, if any.
    EndpointOpened {
        /// The endpoint.
        url: String,
        /// Why, in words.
        reason: String,
        /// When it is tried again.
        retry_in: Duration,
    },
    /// An endpoint that had failed answered again.
    EndpointClosed {
        /// The endpoint.
        url: String,
    },
    /// Events were acknowledged.
    Delivered(u64),
    /// Events were refused.
    Rejected(u64, String),
    /// A request failed; the next attempt is in `retry_in`.
    Retrying {
        /// What went wrong.
        error: String,
        /// When the next attempt is.
        retry_in: Duration,
    },
}

/// The checked base URL of an endpoint given on the command line (with or without
/// `/v1/batch`).
pub fn base_url(endpoint: &str) -> anyhow::Result<String> {
    let trimmed = endpoint.trim_end_matches('/');
    let base = trimmed.strip_suffix(wire::BATCH_PATH).unwrap_or(trimmed);
    Ok(trailhound::client::check_endpoint(base)?.to_string())
}

/// The batch URL for an endpoint given on the command line.
pub fn batch_url(endpoint: &str) -> anyhow::Result<String> {
    Ok(format!("{}{}", base_url(endpoint)?, wire::BATCH_PATH))
}

/// The checked base URLs of the `--to` endpoints, in order: at most
/// [`Policy::max_endpoints`], each once.
pub fn endpoints(to: &[String]) -> anyhow::Result<Vec<String>> {
    let max = Policy::default().max_endpoints;
    if to.len() > max {
        bail!("--to: at most {max} endpoints, got {}", to.len());
    }
    let mut out: Vec<String> = Vec::with_capacity(to.len());
    for url in to {
        let base = base_url(url).with_context(|| format!("--to {url}"))?;
        if out.contains(&base) {
            bail!("--to {url}: given twice");
        }
        out.push(base);
    }
    Ok(out)
}

/// Why a breaker opened, in words.
pub fn open_reason_label(reason: OpenReason) -> String {
    match reason {
        OpenReason::Network => "no answer".into(),
        OpenReason::Status { status } => format!("HTTP {status}"),
        OpenReason::Paused { status } => format!("paused after HTTP {status}"),
        OpenReason::Blocked => "blocked".into(),
    }
}

/// A reason in words, for the summary.
pub fn reason_label(reason: &DropReason) -> String {
    match reason {
        DropReason::Rejected { status } => format!("rejected by the server (HTTP {status})"),
        DropReason::TooLarge => "too large (HTTP 413 for the event alone)".into(),
        other => serde_json::to_value(other)
            .ok()
            .and_then(|v| v.get("reason").and_then(|r| r.as_str()).map(str::to_owned))
            .unwrap_or_else(|| format!("{other:?}")),
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The engine's policy for a replay: the device's caps do not apply (the events were
/// already accepted on the device, and a replay of an old queue must not age them out).
fn replay_policy(rate: Option<u32>) -> Policy {
    let mut p = Policy {
        max_queue_events: u64::MAX / 2,
        max_queue_bytes: u64::MAX / 2,
        max_event_age: Duration::from_secs(100 * 365 * 86_400),
        ..Policy::default()
    };
    if let Some(rate) = rate {
        p.max_batch_events = p.max_batch_events.min(rate as usize);
    }
    p
}

/// Opens the queue to replay: read-only, or read-write when delivered events are to be
/// deleted (`--drain`).
pub fn open_source(path: &Path, drain: bool) -> anyhow::Result<Source> {
    if drain {
        let db = db_path(path);
        let store = SqliteStore::open_file(&db, false)
            .with_context(|| format!("cannot open {}", db.display()))?;
        Ok(Source::direct(store))
    } else {
        open_read_only(path)
    }
}

/// Replays the queue in `source` (from [`open_source`]) through `transport`.
pub fn replay(
    source: &mut Source,
    opts: &Options,
    transport: &dyn Transport,
    progress: &mut dyn FnMut(&Progress),
) -> anyhow::Result<Summary> {
    let src = &mut source.store;
    let snapshot = src.snapshot().context("reading the queue")?;
    let mut events: Vec<QueuedEvent> = Vec::with_capacity(snapshot.events as usize);
    src.iter_events(|e| {
        events.push(e);
        true
    })
    .context("reading the events")?;
    let seq_of: HashMap<String, u64> = events
        .iter()
        .map(|e| (e.message_id.clone(), e.seq))
        .collect();
    let mut summary = Summary {
        events: events.len() as u64,
        ..Summary::default()
    };

    let mut mem = MemoryStore::new();
    mem.insert(&events).context("copying the events")?;
    let mut mem_snapshot = mem.snapshot().context("copying the events")?;
    // The device's identity is irrelevant (each event carries its ids); its opt-out and
    // backoff must not stop a deliberate replay.
    mem_snapshot.state = Some(PersistedState {
        identity: snapshot
            .state
            .map(|s| s.identity)
            .unwrap_or_else(|| Identity {
                anonymous_id: "trailhound-replay".into(),
                user_id: None,
                traits: Default::default(),
            }),
        opted_out: false,
        endpoints: Vec::new(),
    });
    drop(events);

    let now = now_ms();
    let mut engine = Engine::new(
        replay_policy(opts.rate),
        now as u64,
        mem_snapshot,
        Identity {
            anonymous_id: "trailhound-replay".into(),
            user_id: None,
            traits: Default::default(),
        },
        now,
    );
    engine.handle_conditions(
        DeviceConditions {
            network: Network::Wifi,
            charging: Some(true),
            battery_level: Some(1.0),
            ..DeviceConditions::default()
        },
        now,
    );
    engine.set_endpoints(&opts.endpoints);
    engine.handle_flush(now);

    let auth = wire::basic_auth(&opts.write_key);
    let batch_urls: Vec<String> = opts
        .endpoints
        .iter()
        .map(|base| format!("{base}{}", wire::BATCH_PATH))
        .collect();
    // Consecutive failures of each endpoint; the replay gives up when every one has failed
    // `max_attempts` times in a row (with one endpoint: that many failed requests).
    let mut failures = vec![0u32; batch_urls.len().max(1)];
    let mut last_endpoint = 0;
    let mut next_send = Instant::now();
    loop {
        drive_store(&mut engine, &mut mem)?;
        if Instant::now() >= next_send {
            let now = now_ms();
            if let Some(t) = engine.poll_transmit(now) {
                summary.requests += 1;
                summary.bytes_sent += t.body.len() as u64;
                last_endpoint = t.endpoint.min(failures.len() - 1);
                progress(&Progress::Sent {
                    events: t.events,
                    bytes: t.body.len(),
                    endpoint: t.endpoint,
                });
                if let Some(rate) = opts.rate {
                    next_send =
                        Instant::now() + Duration::from_secs_f64(t.events as f64 / f64::from(rate));
                }
                let result = if opts.dry_run {
                    UploadResult::Response {
                        status: 200,
                        retry_after: None,
                    }
                } else {
                    let url = batch_urls.get(t.endpoint).unwrap_or(&batch_urls[0]);
                    let request = HttpRequest::batch(url, &auth, t.body);
                    transport.send(&request)
                };
                engine.handle_upload(t.id, result, now_ms());
                drive_store(&mut engine, &mut mem)?;
            }
        }
        let mut delivered_seqs = Vec::new();
        while let Some(n) = engine.poll_notification() {
            match n {
                Notification::Delivered { message_ids } => {
                    failures[last_endpoint] = 0;
                    summary.delivered += message_ids.len() as u64;
                    progress(&Progress::Delivered(message_ids.len() as u64));
                    if opts.drain {
                        delivered_seqs.extend(message_ids.iter().filter_map(|m| seq_of.get(m)));
                    }
                }
                Notification::Dropped { reason, count, .. } => {
                    let label = reason_label(&reason);
                    *summary.rejected.entry(label.clone()).or_default() += count;
                    progress(&Progress::Rejected(count, label));
                }
                Notification::UploadFailed {
                    status,
                    error,
                    attempts,
                    retry_in_ms,
                } => {
                    summary.retried += 1;
                    let error = match status {
                        Some(s) => format!("HTTP {s}: {error}"),
                        None => error,
                    };
                    failures[last_endpoint] = attempts;
                    if failures.iter().all(|&n| n >= opts.max_attempts) {
                        summary.stopped = Some(if failures.len() > 1 {
                            format!(
                                "gave up after {} failed attempts in a row at each of the {} \
                                 endpoints (last: {error})",
                                opts.max_attempts,
                                failures.len()
                            )
                        } else {
                            format!(
                                "gave up after {attempts} failed attempts in a row (last: {error})"
                            )
                        });
                    } else {
                        progress(&Progress::Retrying {
                            error,
                            retry_in: Duration::from_millis(retry_in_ms),
                        });
                    }
                }
                Notification::Paused { status, .. } => {
                    summary.stopped = Some(format!(
                        "the collector refused the write key (HTTP {status}); check --write-key"
                    ));
                }
                Notification::EndpointOpened {
                    url,
                    reason,
                    retry_in_ms,
                } => progress(&Progress::EndpointOpened {
                    url,
                    reason: open_reason_label(reason),
                    retry_in: Duration::from_millis(retry_in_ms),
                }),
                Notification::EndpointClosed { url } => progress(&Progress::EndpointClosed { url }),
                _ => {}
            }
        }
        if !delivered_seqs.is_empty() {
            let (removed, _) = src
                .delete(&delivered_seqs)
                .context("deleting delivered events from the source")?;
            summary.drained += removed.events;
        }
        let stats = engine.stats();
        if stats.queued_events == 0 && engine.is_settled() {
            break;
        }
        if summary.stopped.is_some() {
            summary.left = stats.queued_events;
            break;
        }
        // Sleep until the engine's next timer, or until the rate limit lets the next batch
        // go. A batch held back by the rate limit makes the engine's timer due at once, so
        // then only the rate limit counts.
        let now = now_ms();
        let timer = engine
            .poll_timeout()
            .map(|t| Duration::from_millis((t - now).max(0) as u64))
            .unwrap_or(Duration::from_millis(50));
        let until_send = next_send.saturating_duration_since(Instant::now());
        let wait = if until_send.is_zero() {
            timer
        } else if timer.is_zero() {
            until_send
        } else {
            timer.min(until_send)
        };
        if !wait.is_zero() {
            std::thread::sleep(wait.min(Duration::from_secs(1)));
        }
        engine.handle_timeout(now_ms());
    }
    summary.endpoints = engine
        .stats()
        .endpoints
        .into_iter()
        .map(|e| EndpointSummary {
            url: e.url,
            requests: e.requests,
            failures: e.failures,
            state: e.state.as_str().to_owned(),
        })
        .collect();
    Ok(summary)
}

/// Runs the engine's store operations on the in-memory copy.
fn drive_store(engine: &mut Engine, mem: &mut MemoryStore) -> anyhow::Result<()> {
    loop {
        let now = now_ms();
        let result = match engine.poll_store(now) {
            Some(op) => store::execute(mem, op),
            None => return Ok(()),
        };
        if let Err(e) = &result {
            bail!("replay store failed: {e}");
        }
        engine.handle_store(result, now);
    }
}

/// Runs `trailhound queue replay`.
pub fn run(args: &ReplayArgs) -> anyhow::Result<()> {
    let opts = Options {
        endpoints: endpoints(&args.to)?,
        write_key: args.write_key.clone(),
        rate: args.rate,
        dry_run: args.dry_run,
        drain: args.drain,
        max_attempts: args.max_attempts.max(1),
    };
    let transport = trailhound::UreqTransport::new(Duration::from_secs(args.timeout))
        .map_err(|e| anyhow::anyhow!("cannot set up HTTP: {e}"))?;
    let mut source = open_source(&args.path, opts.drain)?;
    let total = source.store.snapshot().context("reading the queue")?.events;
    let verb = if opts.dry_run {
        "dry run:"
    } else {
        "replaying"
    };
    let to: Vec<String> = opts
        .endpoints
        .iter()
        .map(|base| format!("{base}{}", wire::BATCH_PATH))
        .collect();
    eprintln!("{verb} {total} events to {}", to.join(", then "));
    let started = Instant::now();
    let summary = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} events  {elapsed}  {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        let s = replay(&mut source, &opts, &transport, &mut |p| match p {
            Progress::Delivered(n) | Progress::Rejected(n, _) => {
                bar.inc(*n);
                bar.set_message("");
            }
            Progress::Retrying { error, retry_in } => {
                bar.set_message(format!("{error}; retry in {:.1} s", retry_in.as_secs_f64()))
            }
            Progress::EndpointOpened { .. } | Progress::EndpointClosed { .. } => {
                bar.println(endpoint_line(p))
            }
            Progress::Sent { .. } => {}
        });
        bar.finish_and_clear();
        s?
    } else {
        let dry = opts.dry_run;
        // With several endpoints, each line says which one.
        let several = opts.endpoints.len() > 1;
        let to = |i: &usize| match opts.endpoints.get(*i) {
            Some(url) if several => format!(" to {url}"),
            _ => String::new(),
        };
        replay(&mut source, &opts, &transport, &mut |p| match p {
            Progress::Sent {
                events,
                bytes,
                endpoint,
            } if dry => println!(
                "would send a batch of {events} events ({bytes} bytes gzipped){}",
                to(endpoint)
            ),
            Progress::Sent {
                events,
                bytes,
                endpoint,
            } => println!(
                "sent a batch of {events} events ({bytes} bytes gzipped){}",
                to(endpoint)
            ),
            Progress::EndpointOpened { .. } | Progress::EndpointClosed { .. } => {
                println!("{}", endpoint_line(p))
            }
            Progress::Delivered(n) if !dry => println!("delivered {n}"),
            Progress::Delivered(_) => {}
            Progress::Rejected(n, why) => println!("rejected {n}: {why}"),
            // A failed batch that goes on to the next endpoint at once.
            Progress::Retrying { error, retry_in } if retry_in.is_zero() => {
                println!("failed ({error}); sent on to the next endpoint")
            }
            Progress::Retrying { error, retry_in } => {
                println!("failed ({error}); retry in {:.1} s", retry_in.as_secs_f64())
            }
        })?
    };
    print_summary(&summary, &opts, started.elapsed());
    if summary.stopped.is_some() || summary.left > 0 {
        bail!(
            "replay stopped: {}",
            summary.stopped.as_deref().unwrap_or("events left")
        );
    }
    if summary.rejected_total() > 0 {
        bail!("{} events were rejected", summary.rejected_total());
    }
    Ok(())
}

/// A breaker notification, as a line.
fn endpoint_line(p: &Progress) -> String {
    match p {
        Progress::EndpointOpened {
            url,
            reason,
            retry_in,
        } => format!(
            "endpoint {url} opened ({reason}); tried again in {:.1} s",
            retry_in.as_secs_f64()
        ),
        Progress::EndpointClosed { url } => format!("endpoint {url} closed: it answers again"),
        _ => String::new(),
    }
}

fn print_summary(s: &Summary, opts: &Options, elapsed: Duration) {
    println!();
    if opts.dry_run {
        println!("dry run: nothing was sent");
        println!("  events      {}", s.events);
        println!(
            "  would send  {} in {} batches ({} bytes gzipped)",
            s.delivered, s.requests, s.bytes_sent
        );
        return;
    }
    println!("replay summary");
    println!("  events      {}", s.events);
    println!("  delivered   {}", s.delivered);
    println!("  rejected    {}", s.rejected_total());
    for (why, n) in &s.rejected {
        println!("    {n:>8}  {why}");
    }
    println!("  retried     {} failed requests", s.retried);
    println!(
        "  requests    {} ({} bytes gzipped)",
        s.requests, s.bytes_sent
    );
    if s.endpoints.len() > 1 {
        for e in &s.endpoints {
            println!(
                "    {:>8}  to {} ({} failed; breaker {})",
                e.requests, e.url, e.failures, e.state
            );
        }
    }
    if s.left > 0 {
        println!("  not sent    {}", s.left);
    }
    if opts.drain {
        println!("  source      {} delivered events deleted", s.drained);
    } else {
        println!("  source      unchanged (opened read-only)");
    }
    println!("  elapsed     {:.1} s", elapsed.as_secs_f64());
    if let Some(why) = &s.stopped {
        println!("  stopped     {why}");
    }
}
